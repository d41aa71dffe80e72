/* kubeapi.c - libcurl's multi interface on a libevent loop, and the service-account
 * token, for the two daemons that call the Kubernetes API (kubeapi.h). */
#include "kubeapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX 16384 /* projected service-account tokens are about 1 KiB */

struct st_kubeapi {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    st_kubeapi_done_cb done;
};

static void check_done(struct st_kubeapi *api)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(api->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        void *transfer = NULL;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&transfer);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        api->done(transfer, m->data.result, status);
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct st_kubeapi *api = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(api->multi, fd, flags, &running);
    check_done(api);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct st_kubeapi *api = arg;
    int running;
    curl_multi_socket_action(api->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(api);
}

static int on_curl_timer(CURLM *multi, long ms, void *arg)
{
    (void)multi;
    struct st_kubeapi *api = arg;
    if (ms < 0) {
        evtimer_del(api->timer);
    } else {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(api->timer, &tv);
    }
    return 0;
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
    (void)easy;
    struct st_kubeapi *api = arg;
    struct event *ev = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (ev) {
            event_free(ev);
            curl_multi_assign(api->multi, s, NULL);
        }
        return 0;
    }
    short flags = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
                  (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (ev) {
        event_del(ev);
        event_assign(ev, api->base, s, flags, on_socket_event, api);
    } else {
        ev = event_new(api->base, s, flags, on_socket_event, api);
        if (ev == NULL)
            return -1;
        curl_multi_assign(api->multi, s, ev);
    }
    event_add(ev, NULL);
    return 0;
}

struct st_kubeapi *st_kubeapi_new(struct event_base *base, st_kubeapi_done_cb done)
{
    struct st_kubeapi *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return NULL;
    api->base = base;
    api->done = done;
    api->multi = curl_multi_init();
    api->timer = evtimer_new(base, on_timer_event, api);
    if (api->multi == NULL || api->timer == NULL) {
        st_kubeapi_free(api);
        return NULL;
    }
    curl_multi_setopt(api->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(api->multi, CURLMOPT_SOCKETDATA, api);
    curl_multi_setopt(api->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(api->multi, CURLMOPT_TIMERDATA, api);
    return api;
}

CURLM *st_kubeapi_multi(const struct st_kubeapi *api)
{
    return api->multi;
}

void st_kubeapi_free(struct st_kubeapi *api)
{
    if (api == NULL)
        return;
    if (api->multi)
        curl_multi_cleanup(api->multi);
    if (api->timer)
        event_free(api->timer);
    free(api);
}

struct curl_slist *st_kubeapi_add_auth(struct curl_slist *headers, const char *token_file)
{
    if (token_file == NULL || token_file[0] == '\0')
        return headers;
    FILE *f = fopen(token_file, "r");
    if (f == NULL)
        return headers;
    static const char prefix[] = "Authorization: Bearer ";
    char *line = malloc(sizeof(prefix) - 1 + TOKEN_MAX);
    if (line == NULL) {
        fclose(f);
        return headers;
    }
    memcpy(line, prefix, sizeof(prefix) - 1);
    char *token = line + sizeof(prefix) - 1;
    size_t n = fread(token, 1, TOKEN_MAX - 1, f);
    fclose(f);
    while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r' || token[n - 1] == ' '))
        n--;
    token[n] = '\0';
    if (n > 0)
        headers = curl_slist_append(headers, line);
    free(line);
    return headers;
}
