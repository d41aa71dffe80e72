/* admin.c - evhttp server for health and metrics (see admin.h). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "dnsfwd.h"
#include "names.h"
#include "workers.h"
#include "ship.h"

struct st_admin {
    struct st_proxy *px;
    struct evhttp *http;
};

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(b, text, strlen(text));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; charset=utf-8");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct st_admin *a = arg;
    struct st_proxy *px = a->px;
    const char *uri = evhttp_request_get_uri(req);
    size_t n = strcspn(uri, "?");
    if (n == 8 && strncmp(uri, "/healthz", n) == 0) {
        reply_text(req, 200, "OK", "ok\n");
    } else if (n == 7 && strncmp(uri, "/readyz", n) == 0) {
        if (px->draining) reply_text(req, 503, "Service Unavailable", "draining\n");
        else if (!px->listening) reply_text(req, 503, "Service Unavailable", "starting\n");
        else reply_text(req, 200, "OK", "ready\n");
    } else if (n == 8 && strncmp(uri, "/metrics", n) == 0) {
        struct st_metrics_gauges g;
        memset(&g, 0, sizeof(g));
        st_ship_gauges(px->ship, &g);
        g.capture_used = px->budget.used;
        g.capture_limit = px->budget.limit;
        g.budget_entries_skipped = px->budget.entries_skipped;
        g.budget_bodies_truncated = px->budget.bodies_truncated;
        struct st_parse_stats parse_stats = px->parse_stats;
        st_workers_gauges(px->workers, &g, &parse_stats);
        g.parse_stats = &parse_stats;
        g.names_cached = st_names_count(px->names);
        g.dns_inflight = st_dnsfwd_inflight(px->dnsfwd);
        struct evbuffer *b = evbuffer_new();
        if (b == NULL) {
            evhttp_send_error(req, 500, NULL);
            return;
        }
        st_metrics_render(b, &g);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    } else {
        reply_text(req, 404, "Not Found", "not found: try /healthz, /readyz or /metrics\n");
    }
}

struct st_admin *st_admin_new(struct st_proxy *px)
{
    struct st_admin *a = calloc(1, sizeof(*a));
    if (a == NULL) return NULL;
    a->px = px;
    a->http = evhttp_new(px->base);
    if (a->http == NULL) goto fail;
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 4096);
    evhttp_set_timeout(a->http, 10);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(a->http, on_request, a);
    if (evhttp_bind_socket(a->http, px->cfg->admin_address, px->cfg->admin_port) != 0) {
        fprintf(stderr, "sidetap-proxy: cannot listen on admin %s port %u (SIDETAP_ADMIN_PORT)\n",
                px->cfg->admin_address, px->cfg->admin_port);
        goto fail;
    }
    return a;
fail:
    st_admin_free(a);
    return NULL;
}

void st_admin_free(struct st_admin *a)
{
    if (a == NULL) return;
    if (a->http) evhttp_free(a->http);
    free(a);
}
