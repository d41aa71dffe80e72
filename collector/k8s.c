/* k8s.c - names for IPs from the Kubernetes API: list + watch of pods, services and
 * endpoints with libcurl's multi interface on the collector's event loop (kubeapi.c).
 *
 * In a cluster (KUBERNETES_SERVICE_HOST) the collector uses its service-account token and
 * CA; --k8s-api, --k8s-token-file and --k8s-ca-file override them (tests use a fake API
 * server). Each resource is listed (pages of 500), then watched from the list's
 * resourceVersion; a watch that ends is resumed, one that reports 410 Gone relists. What
 * is learned goes to identity.c keyed by IP: pods by their IPs (hostNetwork pods are
 * skipped: their IP is the node's), Services by their cluster IPs, endpoints add the
 * Service name to the addresses behind it. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "kubeapi.h"

#define MAX_BODY (256u << 20) /* a list answer */
#define MAX_LINE (16u << 20)  /* one watch event */
#define RETRY_MS 1000
#define WATCH_SECONDS 300

enum res_kind { RES_PODS, RES_SERVICES, RES_ENDPOINTS, RES_COUNT };
static const char *const res_path[RES_COUNT] = {"pods", "services", "endpoints"};

struct resource {
    struct st_k8s *k;
    enum res_kind kind;
    CURL *easy;
    struct curl_slist *headers;
    bool watching;
    bool synced;
    char *rv;         /* resourceVersion to watch from */
    char *cont;       /* list continue token */
    json_t *listed;   /* items gathered over list pages */
    char *buf;        /* body (list) or partial line (watch) */
    size_t len, cap;
    bool overflow;
    struct event *retry;
    unsigned long errors;
};

struct st_k8s {
    struct st_collector *c;
    struct st_kubeapi *api;
    struct resource res[RES_COUNT];
};

static void start(struct resource *r);

static void schedule_retry(struct resource *r, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(r->retry, &tv);
}

/* ---- what the objects mean ---- */

static const char *jstr(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    return json_string_value(v);
}

/* Deployment pods are owned by ReplicaSet "<deployment>-<hash>": strip the hash. */
static json_t *workload_of(json_t *meta)
{
    size_t i;
    json_t *ref;
    json_array_foreach(json_object_get(meta, "ownerReferences"), i, ref)
    {
        const char *kind = jstr(ref, "kind", NULL), *name = jstr(ref, "name", NULL);
        if (!kind || !name)
            continue;
        if (strcmp(kind, "ReplicaSet") == 0) {
            const char *dash = strrchr(name, '-');
            if (dash && dash > name)
                return json_stringn(name, (size_t)(dash - name));
        }
        return json_string(name);
    }
    return NULL;
}

static void pod_ips(json_t *pod, void (*fn)(struct st_k8s *k, const char *ip, json_t *ident),
                    struct st_k8s *k, json_t *ident)
{
    json_t *status = json_object_get(pod, "status");
    const char *ip = jstr(status, "podIP", NULL);
    if (ip && *ip)
        fn(k, ip, ident);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(status, "podIPs"), i, it)
    {
        const char *x = jstr(it, "ip", NULL);
        if (x && *x && (!ip || strcmp(x, ip) != 0))
            fn(k, x, ident);
    }
}

static void set_pod(struct st_k8s *k, const char *ip, json_t *ident)
{
    st_identity_set_k8s(k->c->identity, "pod", ip, ident);
}

static void apply_pod(struct st_k8s *k, json_t *pod, bool deleted)
{
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    if (json_is_true(json_object_get(spec, "hostNetwork")))
        return;
    const char *phase = jstr(pod, "status", "phase");
    if (deleted || (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0))) {
        pod_ips(pod, set_pod, k, NULL);
        return;
    }
    json_t *ident = json_object();
    const char *v;
    if ((v = jstr(meta, "name", NULL)))
        json_object_set_new(ident, "name", json_string(v));
    if ((v = jstr(meta, "namespace", NULL)))
        json_object_set_new(ident, "namespace", json_string(v));
    if ((v = jstr(spec, "nodeName", NULL)))
        json_object_set_new(ident, "node", json_string(v));
    if ((v = jstr(spec, "serviceAccountName", NULL)))
        json_object_set_new(ident, "serviceAccount", json_string(v));
    json_t *wl = workload_of(meta);
    if (wl)
        json_object_set_new(ident, "workload", wl);
    json_t *labels = json_object_get(meta, "labels");
    if (json_is_object(labels))
        json_object_set(ident, "labels", labels);
    pod_ips(pod, set_pod, k, ident);
    json_decref(ident);
}

static void apply_service(struct st_k8s *k, json_t *svc, bool deleted)
{
    json_t *meta = json_object_get(svc, "metadata"), *spec = json_object_get(svc, "spec");
    const char *name = jstr(meta, "name", NULL), *ns = jstr(meta, "namespace", NULL);
    json_t *ident = deleted || !name ? NULL : json_pack("{s:s,s:s?,s:s}", "name", name, "namespace", ns,
                                                         "service", name);
    const char *ip = jstr(spec, "clusterIP", NULL);
    if (ip && *ip && strcmp(ip, "None") != 0)
        st_identity_set_k8s(k->c->identity, "service", ip, ident);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(spec, "clusterIPs"), i, it)
    {
        const char *x = json_string_value(it);
        if (x && *x && strcmp(x, "None") != 0)
            st_identity_set_k8s(k->c->identity, "service", x, ident);
    }
    json_decref(ident);
}

static void apply_endpoints(struct st_k8s *k, json_t *ep, bool deleted)
{
    json_t *meta = json_object_get(ep, "metadata");
    const char *name = jstr(meta, "name", NULL), *ns = jstr(meta, "namespace", NULL);
    size_t i, j;
    json_t *subset, *addr;
    json_array_foreach(json_object_get(ep, "subsets"), i, subset)
    {
        json_array_foreach(json_object_get(subset, "addresses"), j, addr)
        {
            const char *ip = jstr(addr, "ip", NULL);
            json_t *ref = json_object_get(addr, "targetRef");
            json_t *ident = NULL;
            if (!deleted && name) {
                const char *pod = jstr(ref, "kind", NULL) && strcmp(jstr(ref, "kind", NULL), "Pod") == 0
                                      ? jstr(ref, "name", NULL)
                                      : NULL;
                ident = json_pack("{s:s,s:s?,s:s}", "name", pod ? pod : name, "namespace", ns,
                                  "service", name);
                if (jstr(addr, "nodeName", NULL))
                    json_object_set_new(ident, "node", json_string(jstr(addr, "nodeName", NULL)));
            }
            st_identity_set_k8s(k->c->identity, "endpoint", ip, ident);
            json_decref(ident);
        }
    }
}

static void apply(struct resource *r, json_t *obj, bool deleted)
{
    switch (r->kind) {
    case RES_PODS: apply_pod(r->k, obj, deleted); break;
    case RES_SERVICES: apply_service(r->k, obj, deleted); break;
    case RES_ENDPOINTS: apply_endpoints(r->k, obj, deleted); break;
    default: break;
    }
}

/* ---- transfers ---- */

static void set_rv(struct resource *r, const char *rv)
{
    if (!rv)
        return;
    free(r->rv);
    r->rv = strdup(rv);
}

static void watch_line(struct resource *r, const char *line, size_t len)
{
    json_t *ev = json_loadb(line, len, 0, NULL);
    const char *type = jstr(ev, "type", NULL);
    json_t *obj = json_object_get(ev, "object");
    if (!type || !json_is_object(obj)) {
        r->errors++;
    } else if (strcmp(type, "ERROR") == 0) {
        /* 410 Gone: the resourceVersion is too old, list again */
        free(r->rv);
        r->rv = NULL;
    } else {
        if (strcmp(type, "BOOKMARK") != 0)
            apply(r, obj, strcmp(type, "DELETED") == 0);
        set_rv(r, jstr(obj, "metadata", "resourceVersion"));
    }
    json_decref(ev);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct resource *r = arg;
    size_t n = size * nmemb;
    size_t limit = r->watching ? MAX_LINE : MAX_BODY;
    if (r->len + n > limit) {
        r->overflow = true;
        return 0; /* aborts the transfer */
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *p = realloc(r->buf, cap);
        if (!p)
            return 0;
        r->buf = p;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, ptr, n);
    r->len += n;
    if (r->watching) {
        size_t startl = 0;
        for (size_t i = 0; i < r->len; i++) {
            if (r->buf[i] == '\n') {
                if (i > startl)
                    watch_line(r, r->buf + startl, i - startl);
                startl = i + 1;
            }
        }
        memmove(r->buf, r->buf + startl, r->len - startl);
        r->len -= startl;
    }
    return n;
}

static bool all_synced(struct st_k8s *k)
{
    for (int i = 0; i < RES_COUNT; i++)
        if (!k->res[i].synced)
            return false;
    return true;
}

static void list_done(struct resource *r)
{
    json_t *doc = json_loadb(r->buf, r->len, 0, NULL);
    json_t *items = json_object_get(doc, "items");
    if (!json_is_array(items)) {
        r->errors++;
        json_decref(doc);
        free(r->cont);
        r->cont = NULL;
        schedule_retry(r, RETRY_MS);
        return;
    }
    if (!r->listed)
        r->listed = json_array();
    json_array_extend(r->listed, items);
    const char *cont = jstr(doc, "metadata", "continue");
    free(r->cont);
    r->cont = cont && *cont ? strdup(cont) : NULL;
    if (!r->cont) {
        /* complete: apply, then watch from here */
        size_t i;
        json_t *it;
        json_array_foreach(r->listed, i, it) apply(r, it, false);
        json_decref(r->listed);
        r->listed = NULL;
        set_rv(r, jstr(doc, "metadata", "resourceVersion"));
        if (!r->synced) {
            r->synced = true;
            if (all_synced(r->k))
                fprintf(stderr, "sidetap-collector: kubernetes: pods, services and endpoints synced\n");
        }
    }
    json_decref(doc);
    start(r);
}

static void transfer_done(void *transfer, CURLcode code, long status)
{
    struct resource *r = transfer;
    curl_multi_remove_handle(st_kubeapi_multi(r->k->api), r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    bool was_watch = r->watching;
    if (code != CURLE_OK || status != 200) {
        r->errors++;
        if (r->errors < 5 || r->errors % 60 == 0)
            fprintf(stderr, "sidetap-collector: kubernetes: %s %s: %s (HTTP %ld)\n",
                    was_watch ? "watch" : "list", res_path[r->kind],
                    r->overflow ? "answer too large" : curl_easy_strerror(code), status);
        if (status == 410 || !was_watch) {
            free(r->rv);
            r->rv = NULL;
        }
        json_decref(r->listed);
        r->listed = NULL;
        free(r->cont);
        r->cont = NULL;
        r->len = 0;
        r->overflow = false;
        schedule_retry(r, RETRY_MS);
        return;
    }
    if (was_watch) {
        r->len = 0;
        start(r); /* the server ended the watch: resume (or relist after 410) */
        return;
    }
    list_done(r);
    r->len = 0;
}

static void start(struct resource *r)
{
    struct st_k8s *k = r->k;
    const struct st_config *cfg = &k->c->cfg;
    char url[2048];
    r->watching = r->rv != NULL && r->cont == NULL;
    r->len = 0;
    r->overflow = false;
    if (r->watching)
        snprintf(url, sizeof(url),
                 "%s/api/v1/%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s",
                 cfg->k8s_api, res_path[r->kind], WATCH_SECONDS, r->rv);
    else {
        char *esc = r->cont ? curl_easy_escape(NULL, r->cont, 0) : NULL;
        snprintf(url, sizeof(url), "%s/api/v1/%s?limit=500%s%s", cfg->k8s_api, res_path[r->kind],
                 esc ? "&continue=" : "", esc ? esc : "");
        curl_free(esc);
    }
    r->easy = curl_easy_init();
    if (!r->easy) {
        schedule_retry(r, RETRY_MS);
        return;
    }
    r->headers = st_kubeapi_add_auth(r->headers, cfg->k8s_token_file);
    r->headers = curl_slist_append(r->headers, "Accept: application/json");
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, r->watching ? (long)(WATCH_SECONDS + 30) * 1000 : 60000L);
    if (access(cfg->k8s_ca_file, R_OK) == 0)
        curl_easy_setopt(r->easy, CURLOPT_CAINFO, cfg->k8s_ca_file);
    curl_multi_add_handle(st_kubeapi_multi(k->api), r->easy);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start(arg);
}

struct st_k8s *st_k8s_new(struct st_collector *c, char *err, size_t errlen)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        snprintf(err, errlen, "libcurl initialisation failed");
        return NULL;
    }
    struct st_k8s *k = calloc(1, sizeof(*k));
    if (!k)
        goto nomem;
    k->c = c;
    k->api = st_kubeapi_new(c->base, transfer_done);
    if (!k->api)
        goto nomem;
    for (int i = 0; i < RES_COUNT; i++) {
        struct resource *r = &k->res[i];
        r->k = k;
        r->kind = (enum res_kind)i;
        r->retry = evtimer_new(c->base, on_retry, r);
        if (!r->retry)
            goto nomem;
    }
    fprintf(stderr, "sidetap-collector: kubernetes: watching %s\n", c->cfg.k8s_api);
    for (int i = 0; i < RES_COUNT; i++)
        start(&k->res[i]);
    return k;
nomem:
    snprintf(err, errlen, "out of memory");
    st_k8s_free(k);
    return NULL;
}

void st_k8s_free(struct st_k8s *k)
{
    if (!k)
        return;
    for (int i = 0; i < RES_COUNT; i++) {
        struct resource *r = &k->res[i];
        if (r->easy) {
            curl_multi_remove_handle(st_kubeapi_multi(k->api), r->easy);
            curl_easy_cleanup(r->easy);
        }
        curl_slist_free_all(r->headers);
        if (r->retry)
            event_free(r->retry);
        json_decref(r->listed);
        free(r->buf);
        free(r->rv);
        free(r->cont);
    }
    st_kubeapi_free(k->api);
    free(k);
    curl_global_cleanup();
}

bool st_k8s_synced(struct st_k8s *k)
{
    return all_synced(k);
}
