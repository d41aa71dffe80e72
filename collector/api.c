/* api.c - the HTTP API (docs/api.md): routing, entry lists and lookups, stats, health,
 * and the embedded web UI. Queries run on the event loop; a scan that needs the entries'
 * JSON is bounded in time (SCAN_BUDGET_MS) and answers with a cursor to continue. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "collector.h"
#include "kfl.h"

#ifdef ST_HAVE_UI
#include "ui_assets.h"
#endif

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define SCAN_BUDGET_MS 2000
#define HAR_DEFAULT 1000
#define HAR_MAX 10000

static int dump_to_evbuffer(const char *buffer, size_t size, void *data)
{
    return evbuffer_add(data, buffer, size);
}

void st_api_json(struct evhttp_request *req, int status, json_t *doc)
{
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    if (!doc || json_dump_callback(doc, dump_to_evbuffer, out, JSON_COMPACT) != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        evbuffer_add_printf(out, "{\"error\":\"internal error: the answer could not be encoded\"}");
        status = 500;
    }
    evbuffer_add(out, "\n", 1);
    const char *reason = status == 200 ? "OK" : NULL;
    evhttp_send_reply(req, status, reason, out);
    evbuffer_free(out);
    json_decref(doc);
}

void st_api_error(struct evhttp_request *req, int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* messages may quote user input: make sure it is valid UTF-8 for jansson */
    json_t *s = json_string(msg);
    if (!s) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        s = json_string(msg);
    }
    st_api_json(req, status, json_pack("{s:o}", "error", s));
}

static void kfl_error_reply(struct evhttp_request *req, struct st_collector *c, const char *q,
                            const struct kfl_error *e)
{
    c->n.query_errors++;
    json_t *qs = json_string(q);
    if (!qs)
        qs = json_string("(query is not valid UTF-8)");
    st_api_json(req, 400, json_pack("{s:s,s:i,s:i,s:o}", "error", e->message, "position",
                                    e->position, "length", e->length, "query", qs));
}

/* Compiles ?q=; answers 400 and returns NULL on error. */
static struct kfl_query *query_param(struct evhttp_request *req, struct st_collector *c,
                                     struct evkeyvalq *params)
{
    const char *q = evhttp_find_header(params, "q");
    struct kfl_error err;
    struct kfl_query *kq = kfl_compile(q ? q : "", &err);
    if (!kq)
        kfl_error_reply(req, c, q ? q : "", &err);
    c->n.queries++;
    return kq;
}

/* Parses a decimal id parameter; 0 when absent; -1 after answering 400. */
static int id_param(struct evhttp_request *req, struct evkeyvalq *params, const char *name,
                    uint64_t *out)
{
    const char *v = evhttp_find_header(params, name);
    *out = 0;
    if (!v || !*v || strcmp(v, "null") == 0)
        return 0;
    char *end;
    unsigned long long id = strtoull(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end) {
        st_api_error(req, 400, "%s: \"%.40s\" is not an entry id (a decimal number)", name, v);
        return -1;
    }
    *out = id;
    return 0;
}

static int count_param(struct evhttp_request *req, struct evkeyvalq *params, const char *name,
                       size_t def, size_t max, size_t *out)
{
    const char *v = evhttp_find_header(params, name);
    *out = def;
    if (!v || !*v)
        return 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end || n < 1 || (size_t)n > max) {
        st_api_error(req, 400, "%s: \"%.40s\" is not a number between 1 and %zu", name, v, max);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

static void strip_body_data(json_t *msg)
{
    json_t *body = json_object_get(msg, "body");
    if (json_is_object(body))
        json_object_del(body, "data");
}

json_t *st_api_entry_brief(const struct st_rec *rec)
{
    json_t *e = st_rec_load(rec);
    if (!e)
        return NULL;
    strip_body_data(json_object_get(e, "request"));
    strip_body_data(json_object_get(e, "response"));
    return e;
}

/* ---- GET /api/v1/entries ---- */

struct list_scan {
    const struct kfl_query *q;
    const struct st_rec **found; /* newest first, or a ring of the oldest when ascending */
    size_t limit, n, seen;
    bool ascending; /* after= without before=: keep the oldest `limit` matches */
    bool more;
    bool out_of_time;
    uint64_t last_scanned;
    struct timespec start;
    size_t visited;
};

static bool over_budget(struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000 >
           SCAN_BUDGET_MS;
}

static bool list_visit(const struct st_rec *rec, void *arg)
{
    struct list_scan *ls = arg;
    if ((++ls->visited & 1023) == 0 && kfl_needs_json(ls->q) && over_budget(&ls->start)) {
        ls->out_of_time = true;
        return false;
    }
    ls->last_scanned = rec->id;
    struct kfl_subject s = {.rec = rec};
    bool m = kfl_match(ls->q, &s);
    kfl_subject_done(&s);
    if (!m)
        return true;
    if (ls->ascending) {
        ls->found[ls->seen % ls->limit] = rec;
        ls->seen++;
        return true;
    }
    if (ls->n == ls->limit) {
        ls->more = true;
        return false;
    }
    ls->found[ls->n++] = rec;
    return true;
}

struct count_scan {
    const struct kfl_query *q;
    uint64_t n;
};

static bool count_visit(const struct st_rec *rec, void *arg)
{
    struct count_scan *cs = arg;
    struct kfl_subject s = {.rec = rec};
    if (kfl_match(cs->q, &s))
        cs->n++;
    return true;
}

static void handle_list(struct evhttp_request *req, struct st_collector *c, struct evkeyvalq *params)
{
    uint64_t before, after;
    size_t limit;
    if (id_param(req, params, "before", &before) < 0 || id_param(req, params, "after", &after) < 0 ||
        count_param(req, params, "limit", LIST_DEFAULT, LIST_MAX, &limit) < 0)
        return;
    struct kfl_query *q = query_param(req, c, params);
    if (!q)
        return;
    struct list_scan ls = {.q = q, .limit = limit, .ascending = after && !before};
    ls.found = calloc(limit, sizeof(*ls.found));
    clock_gettime(CLOCK_MONOTONIC, &ls.start);
    st_store_scan(c->store, before, after, list_visit, &ls);

    json_t *arr = json_array();
    const struct st_rec **order = ls.found;
    size_t n = ls.n;
    if (ls.ascending) {
        /* the ring holds the `limit` oldest matches; emit newest first */
        n = ls.seen < limit ? ls.seen : limit;
        ls.more = ls.seen > limit;
        order = calloc(n ? n : 1, sizeof(*order));
        for (size_t i = 0; i < n; i++)
            order[i] = ls.found[(ls.seen - n + i) % limit];
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = st_api_entry_brief(order[i]);
        if (e)
            json_array_append_new(arr, e);
    }
    json_t *next = json_null();
    char buf[24];
    if (ls.out_of_time) {
        /* continue below the last record looked at */
        snprintf(buf, sizeof(buf), "%" PRIu64, ls.last_scanned);
        next = json_string(buf);
    } else if (ls.more && n) {
        snprintf(buf, sizeof(buf), "%" PRIu64, ls.ascending ? order[0]->id : order[n - 1]->id);
        next = json_string(buf);
    }
    json_t *total = json_null();
    if (kfl_is_all(q)) {
        struct st_store_stats ss;
        st_store_stats(c->store, &ss);
        total = json_integer((json_int_t)ss.entries);
    } else if (!kfl_needs_json(q)) {
        struct count_scan cs = {.q = q};
        st_store_scan(c->store, 0, 0, count_visit, &cs);
        total = json_integer((json_int_t)cs.n);
    }
    if (order != ls.found)
        free(order);
    free(ls.found);
    kfl_free(q);
    st_api_json(req, 200, json_pack("{s:o,s:o,s:o}", "entries", arr, "next", next, "total", total));
}

static void handle_get(struct evhttp_request *req, struct st_collector *c, const char *idtext)
{
    char *end;
    unsigned long long id = strtoull(idtext, &end, 10);
    const struct st_rec *rec = NULL;
    if (isdigit((unsigned char)idtext[0]) && *end == '\0')
        rec = st_store_get(c->store, id);
    if (!rec) {
        st_api_error(req, 404, "no entry %.40s", idtext);
        return;
    }
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, rec->json, rec->json_len);
    evbuffer_add(out, "\n", 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* ---- stats ---- */

struct ns_scan {
    json_t *namespaces; /* set: name -> true */
    json_t *pods;
    size_t left;
};

static void add_ns_pod(struct ns_scan *ns, const char *n, const char *pod)
{
    if (!n)
        return;
    if (!json_object_get(ns->namespaces, n))
        json_object_set_new(ns->namespaces, n, json_true());
    if (pod) {
        char key[300];
        snprintf(key, sizeof(key), "%s/%s", n, pod);
        if (!json_object_get(ns->pods, key))
            json_object_set_new(ns->pods, key, json_true());
    }
}

static bool ns_visit(const struct st_rec *r, void *arg)
{
    struct ns_scan *ns = arg;
    add_ns_pod(ns, st_rec_str(r, ST_RS_SRC_NS), st_rec_str(r, ST_RS_SRC_NAME));
    add_ns_pod(ns, st_rec_str(r, ST_RS_DST_NS), st_rec_str(r, ST_RS_DST_NAME));
    return --ns->left > 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void handle_stats(struct evhttp_request *req, struct st_collector *c)
{
    struct st_store_stats ss;
    st_store_stats(c->store, &ss);
    json_t *protos = json_object();
    for (int p = 1; p < ST_RP_COUNT; p++)
        json_object_set_new(protos, st_rproto_name((enum st_rproto)p),
                            json_integer((json_int_t)ss.per_proto[p]));
    if (ss.per_proto[ST_RP_OTHER])
        json_object_set_new(protos, "other", json_integer((json_int_t)ss.per_proto[ST_RP_OTHER]));
    /* namespaces and pods seen in the newest 200,000 entries */
    struct ns_scan ns = {json_object(), json_object(), 200000};
    st_store_scan(c->store, 0, 0, ns_visit, &ns);
    size_t nn = json_object_size(ns.namespaces), i = 0;
    const char **names = calloc(nn ? nn : 1, sizeof(*names));
    const char *k;
    json_t *v;
    json_object_foreach(ns.namespaces, k, v) names[i++] = k;
    qsort(names, nn, sizeof(*names), cmp_str);
    json_t *nsarr = json_array();
    for (i = 0; i < nn; i++)
        json_array_append_new(nsarr, json_string(names[i]));
    free(names);
    json_t *doc = json_pack(
        "{s:I,s:I,s:I,s:f,s:I,s:o,s:o,s:I,s:I}", "entries", (json_int_t)ss.entries, "evicted",
        (json_int_t)ss.evicted, "rejected", (json_int_t)c->n.entries_rejected, "rate",
        st_collector_rate(c), "bytes", (json_int_t)ss.bytes, "protocols", protos, "namespaces", nsarr,
        "pods", (json_int_t)json_object_size(ns.pods), "uptime",
        (json_int_t)((st_now_ms() - c->started_ms) / 1000));
    json_object_set_new(doc, "stored", json_integer((json_int_t)ss.appended));
    json_object_set_new(doc, "merged", json_integer((json_int_t)c->n.merged));
    json_object_set_new(doc, "held", json_integer((json_int_t)st_dedup_held(c->dedup)));
    json_object_set_new(doc, "registeredPods", json_integer((json_int_t)st_identity_pods(c->identity)));
    json_object_set_new(doc, "streams", json_integer((json_int_t)st_stream_count(c->stream)));
    json_object_set_new(doc, "oldestId", ss.oldest_id ? json_sprintf("%" PRIu64, ss.oldest_id) : json_null());
    json_object_set_new(doc, "newestId", ss.newest_id ? json_sprintf("%" PRIu64, ss.newest_id) : json_null());
    json_object_set_new(doc, "disk",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "bytes", (json_int_t)ss.disk_bytes,
                                  "segments", (json_int_t)ss.disk_segments, "errors",
                                  (json_int_t)ss.disk_errors, "droppedBytes",
                                  (json_int_t)ss.disk_dropped, "loaded", (json_int_t)ss.loaded,
                                  "torn", (json_int_t)ss.torn));
    json_decref(ns.namespaces);
    json_decref(ns.pods);
    st_api_json(req, 200, doc);
}

/* ---- service map, HAR ---- */

static int parse_window(const char *w, int64_t *ms)
{
    if (!w || !*w) {
        *ms = 15 * 60000;
        return 0;
    }
    if (strcmp(w, "all") == 0) {
        *ms = 0;
        return 0;
    }
    char *end;
    double v = strtod(w, &end);
    double mult = 0;
    if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    if (end == w || mult == 0 || v <= 0 || v * mult > 30.0 * 86400000)
        return -1;
    *ms = (int64_t)(v * mult);
    return 0;
}

static void handle_servicemap(struct evhttp_request *req, struct st_collector *c,
                              struct evkeyvalq *params)
{
    const char *w = evhttp_find_header(params, "window");
    const char *metric = evhttp_find_header(params, "metric");
    int64_t window;
    if (parse_window(w, &window) < 0) {
        st_api_error(req, 400, "window: \"%.40s\" is not a duration like 30s, 15m, 1h, 7d or \"all\"",
                     w);
        return;
    }
    if (metric && strcmp(metric, "requests") != 0 && strcmp(metric, "bytes") != 0) {
        st_api_error(req, 400, "metric: \"%.40s\" is not \"requests\" or \"bytes\"", metric);
        return;
    }
    struct kfl_query *q = query_param(req, c, params);
    if (!q)
        return;
    json_t *doc = st_servicemap_build(c->store, q, window, st_now_ms(), metric ? metric : "requests");
    kfl_free(q);
    if (doc)
        json_object_set_new(doc, "window", json_string(w && *w ? w : "15m"));
    st_api_json(req, doc ? 200 : 500, doc);
}

static void handle_har(struct evhttp_request *req, struct st_collector *c, struct evkeyvalq *params)
{
    size_t limit;
    if (count_param(req, params, "limit", HAR_DEFAULT, HAR_MAX, &limit) < 0)
        return;
    struct kfl_query *q = query_param(req, c, params);
    if (!q)
        return;
    json_t *doc = st_har_build(c->store, q, limit);
    kfl_free(q);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Disposition",
                      "attachment; filename=\"sidetap.har\"");
    st_api_json(req, doc ? 200 : 500, doc);
}

static void handle_metrics(struct evhttp_request *req, struct st_collector *c)
{
    struct evbuffer *out = evbuffer_new();
    st_metrics_write(c, out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void send_text(struct evhttp_request *req, int status, const char *text)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, text, strlen(text));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, status, NULL, out);
    evbuffer_free(out);
}

/* ---- the web UI ---- */

#ifndef ST_HAVE_UI
static const char placeholder_page[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>sidetap</title></head>\n"
    "<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\n"
    "<h1>sidetap collector</h1>\n<p>The web UI was not built into this binary (meson "
    "<code>-Dui=disabled</code>, or npm was not available at build time).</p>\n"
    "<p>The API works: try <a href=\"/api/v1/entries\">/api/v1/entries</a>, "
    "<a href=\"/api/v1/stats\">/api/v1/stats</a> or <a href=\"/api/v1/servicemap\">"
    "/api/v1/servicemap</a>.</p>\n</body></html>\n";
#endif

static bool accepts_gzip(struct evhttp_request *req)
{
    const char *ae = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept-Encoding");
    if (!ae)
        return false;
    const char *p = strcasestr(ae, "gzip");
    if (!p)
        return false;
    /* "gzip;q=0" refuses it */
    const char *q = p + 4;
    while (*q == ' ')
        q++;
    if (*q == ';') {
        const char *qv = strstr(q, "q=");
        if (qv && atof(qv + 2) == 0)
            return false;
    }
    return true;
}

static void handle_ui(struct evhttp_request *req, const char *path)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
#ifdef ST_HAVE_UI
    const struct st_ui_asset *asset = NULL, *index = NULL;
    const char *want = strcmp(path, "/") == 0 ? "/index.html" : path;
    for (size_t i = 0; i < st_ui_asset_count; i++) {
        if (strcmp(st_ui_assets[i].path, want) == 0)
            asset = &st_ui_assets[i];
        if (strcmp(st_ui_assets[i].path, "/index.html") == 0)
            index = &st_ui_assets[i];
    }
    if (!asset) {
        /* SPA routes fall back to index.html; missing files under /assets/ do not */
        if (strncmp(path, "/assets/", 8) == 0 || !index) {
            st_api_error(req, 404, "no such file %.100s", path);
            return;
        }
        asset = index;
    }
    evhttp_add_header(oh, "Content-Type", asset->content_type);
    evhttp_add_header(oh, "ETag", asset->etag);
    evhttp_add_header(oh, "Vary", "Accept-Encoding");
    evhttp_add_header(oh, "Cache-Control", asset->immutable ? "public, max-age=31536000, immutable"
                                                            : "no-cache");
    evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (inm && (strstr(inm, asset->etag) || strcmp(inm, "*") == 0)) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    struct evbuffer *out = evbuffer_new();
    if (asset->gzip && asset->gzip_len && accepts_gzip(req)) {
        evhttp_add_header(oh, "Content-Encoding", "gzip");
        evbuffer_add_reference(out, asset->gzip, asset->gzip_len, NULL, NULL);
    } else {
        evbuffer_add_reference(out, asset->data, asset->len, NULL, NULL);
    }
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
#else
    (void)path;
    (void)accepts_gzip;
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_reference(out, placeholder_page, sizeof(placeholder_page) - 1, NULL, NULL);
    evhttp_add_header(oh, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(oh, "Cache-Control", "no-cache");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
#endif
}

/* ---- routing ---- */

static bool is_get(struct evhttp_request *req)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
}

void st_api_handle(struct evhttp_request *req, void *arg)
{
    struct st_collector *c = arg;
    c->n.http_requests++;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!path || !*path)
        path = "/";
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (query && evhttp_parse_query_str(query, &params) < 0) {
        st_api_error(req, 400, "malformed query string");
        return;
    }
    if (strcmp(path, "/api/v1/entries") == 0 && evhttp_request_get_command(req) == EVHTTP_REQ_POST)
        st_ingest_entries(req, c);
    else if (strcmp(path, "/api/v1/register") == 0)
        st_ingest_register(req, c);
    else if (!is_get(req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        st_api_error(req, 405, "%s takes GET", path);
    } else if (strcmp(path, "/api/v1/entries") == 0)
        handle_list(req, c, &params);
    else if (strncmp(path, "/api/v1/entries/", 16) == 0)
        handle_get(req, c, path + 16);
    else if (strcmp(path, "/api/v1/stream") == 0) {
        struct kfl_query *q = query_param(req, c, &params);
        if (q)
            st_stream_open(c->stream, req, q);
    } else if (strcmp(path, "/api/v1/servicemap") == 0)
        handle_servicemap(req, c, &params);
    else if (strcmp(path, "/api/v1/export.har") == 0)
        handle_har(req, c, &params);
    else if (strcmp(path, "/api/v1/stats") == 0)
        handle_stats(req, c);
    else if (strcmp(path, "/healthz") == 0)
        send_text(req, 200, "ok\n");
    else if (strcmp(path, "/readyz") == 0) {
        if (c->k8s && !st_k8s_synced(c->k8s))
            send_text(req, 503, "waiting for the Kubernetes API\n");
        else
            send_text(req, 200, "ok\n");
    } else if (strcmp(path, "/metrics") == 0)
        handle_metrics(req, c);
    else if (strncmp(path, "/api/", 5) == 0)
        st_api_error(req, 404, "no API endpoint %.100s (see docs/api.md)", path);
    else
        handle_ui(req, path);
    evhttp_clear_headers(&params);
}
