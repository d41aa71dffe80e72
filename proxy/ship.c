/* ship.c - the bounded entry queue and its way to the collector (see ship.h).
 *
 * Queue: a singly linked list of items allocated in each entry's own arena, so queueing
 * costs no malloc of its own. Bounded by entries and bytes; the oldest go first.
 * One batch and one registration request can be in flight at once; a batch is never
 * sent before the pod is registered. JSON is made here, in the batch timer:
 * st_entry_json_write() appends each entry's text straight into the batch body, one
 * buffer reused for every batch and handed to libevent by reference, so an entry's JSON
 * is written once and never copied on its way to the socket. */
#include "ship.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "entry_json.h"

#define RETRY_MAX_MS 30000u
#define RETRY_AFTER_MAX_S 300

struct item {
    struct item *next;
    struct st_entry *entry;
    const char *peer_name; /* in the entry's arena */
    size_t mem;
    bool outgoing;
};

enum req_kind { REQ_REGISTER, REQ_ENTRIES };

struct request {
    struct st_ship *ship;
    enum req_kind kind;
    struct st_json_buf body;
    bool busy;        /* in flight or waiting for a retry */
    bool in_flight;
    unsigned attempt; /* failures in a row */
    size_t n_entries; /* entries in the body (REQ_ENTRIES) */
    struct event *retry_timer;
};

struct st_ship {
    struct event_base *base;
    const struct st_proxy_config *cfg;
    const struct st_pod *pod;

    struct item *head, *tail;
    size_t count, bytes;
    struct event *batch_timer;
    bool batch_armed;
    struct st_json_buf line; /* file mode */
    FILE *file;

    /* The collector: one keep-alive HTTP/1.1 connection (libevent's evhttp client, with
     * evdns for a Service name). NULL without a collector. */
    struct evdns_base *dns;
    struct evhttp_connection *conn;
    char *host_header, *auth, *entries_path, *register_path;
    struct request reg, batch;
    struct event *reregister_timer;
    bool registered;
    int up; /* collector_up gauge */
    bool logged_reject, logged_down;

    uint64_t trimmed_s; /* last malloc_trim() */
    struct event *trim_timer;

    bool flushing;
    void (*done)(void *);
    void *done_arg;
    struct event *flush_deadline;
};

static void pump(struct st_ship *s);

static void item_drop(struct st_ship *s, enum st_drop why)
{
    struct item *it = s->head;
    s->head = it->next;
    if (s->head == NULL) s->tail = NULL;
    s->count--;
    s->bytes -= it->mem;
    st_metrics.dropped[why]++;
    st_entry_free(it->entry);
}

static void timer_after(struct event *ev, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* Arms the batch timer: at once when a batch is full (or on stop), else after batch_ms. */
static void schedule(struct st_ship *s)
{
    if (s->count == 0) return;
    bool now = s->flushing || s->count >= s->cfg->batch_entries || s->bytes >= s->cfg->batch_bytes;
    if (s->batch_armed && !now) return;
    timer_after(s->batch_timer, now ? 0 : s->cfg->batch_ms);
    s->batch_armed = true;
}

void st_ship_push(struct st_ship *s, struct st_entry *e, bool outgoing, const char *peer_name)
{
    if (s->conn == NULL && s->file == NULL) {
        st_metrics.dropped[ST_DROP_NO_COLLECTOR]++;
        st_entry_free(e);
        return;
    }
    struct item *it = st_arena_alloc(&e->arena, sizeof(*it));
    if (it == NULL) {
        st_metrics.dropped[ST_DROP_QUEUE_FULL]++;
        st_entry_free(e);
        return;
    }
    it->next = NULL;
    it->entry = e;
    it->outgoing = outgoing;
    it->peer_name = peer_name ? st_arena_strdup(&e->arena, peer_name) : NULL;
    it->mem = st_entry_mem(e);
    while (s->head != NULL &&
           (s->count + 1 > s->cfg->queue_entries || s->bytes + it->mem > s->cfg->queue_bytes))
        item_drop(s, ST_DROP_QUEUE_FULL);
    if (s->tail) s->tail->next = it;
    else s->head = it;
    s->tail = it;
    s->count++;
    s->bytes += it->mem;
    schedule(s);
}

/* Appends the JSON of the queue head to `b` and frees it. -1 when it could not be made
 * (counted, the entry is gone either way). */
static int take_head(struct st_ship *s, struct st_json_buf *b)
{
    struct item *it = s->head;
    s->head = it->next;
    if (s->head == NULL) s->tail = NULL;
    s->count--;
    s->bytes -= it->mem;

    struct st_identity peer = {.name = it->peer_name};
    struct st_json_context ctx = {
        .outgoing = it->outgoing,
        .reporter_node = s->pod->id.node,
        .src = it->outgoing ? &s->pod->id : NULL,
        .dst = it->outgoing ? (it->peer_name ? &peer : NULL) : &s->pod->id,
    };
    int rc = st_entry_json_write(b, it->entry, &ctx); /* leaves b as it was on failure */
    st_entry_free(it->entry);
    if (rc < 0) {
        st_metrics.dropped[ST_DROP_SERIALIZE]++;
        return -1;
    }
    return 0;
}

/* ---- file mode ---- */

static void write_file(struct st_ship *s)
{
    while (s->head != NULL) {
        s->line.len = 0;
        if (take_head(s, &s->line) < 0) continue;
        if (st_json_buf_append(&s->line, "\n", 1) < 0) continue;
        fwrite(s->line.data, 1, s->line.len, s->file);
    }
    fflush(s->file);
}

/* ---- HTTP ---- */

static void on_response(struct evhttp_request *req, void *arg);

static void start(struct st_ship *s, struct request *r, const char *path)
{
    r->busy = true;
    struct evhttp_request *req = evhttp_request_new(on_response, r);
    if (req == NULL) goto later;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", s->host_header);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "User-Agent", "sidetap-proxy/" SIDETAP_VERSION);
    if (s->auth != NULL) evhttp_add_header(h, "Authorization", s->auth);
    /* By reference: the body buffer stays put until the response (or the retry). */
    evbuffer_add_reference(evhttp_request_get_output_buffer(req), r->body.data, r->body.len, NULL, NULL);
    if (evhttp_make_request(s->conn, req, EVHTTP_REQ_POST, path) != 0) goto later; /* req is freed */
    r->in_flight = true;
    return;
later:
    timer_after(r->retry_timer, 1000);
}

static void start_register(struct st_ship *s)
{
    struct request *r = &s->reg;
    if (r->busy) return;
    json_t *j = st_pod_register_json(s->pod);
    r->body.len = 0;
    if (j == NULL || json_dump_callback(j, st_json_buf_dump_cb, &r->body, JSON_COMPACT) < 0) {
        json_decref(j);
        r->busy = true;
        timer_after(r->retry_timer, 1000);
        return;
    }
    json_decref(j);
    start(s, r, s->register_path);
}

static void start_batch(struct st_ship *s)
{
    struct request *r = &s->batch;
    r->body.len = 0;
    r->n_entries = 0;
    if (st_json_buf_append(&r->body, "{\"entries\":[", 12) < 0) return;
    while (s->head != NULL && r->n_entries < s->cfg->batch_entries && r->body.len < s->cfg->batch_bytes) {
        size_t mark = r->body.len;
        if (r->n_entries > 0 && st_json_buf_append(&r->body, ",", 1) < 0) break;
        if (take_head(s, &r->body) < 0) {
            r->body.len = mark;
            continue;
        }
        r->n_entries++;
    }
    if (r->n_entries == 0) return;
    if (st_json_buf_append(&r->body, "]}", 2) < 0) {
        st_metrics.dropped[ST_DROP_SERIALIZE] += r->n_entries;
        r->n_entries = 0;
        return;
    }
    start(s, r, s->entries_path);
}

static unsigned backoff_ms(unsigned attempt, long retry_after_s)
{
    unsigned ms = attempt >= 9 ? RETRY_MAX_MS : 100u << attempt;
    if (ms > RETRY_MAX_MS) ms = RETRY_MAX_MS;
    ms = ms / 2 + (unsigned)(rand() % (int)(ms / 2 + 1));
    if (retry_after_s > 0) {
        if (retry_after_s > RETRY_AFTER_MAX_S) retry_after_s = RETRY_AFTER_MAX_S;
        if ((unsigned)retry_after_s * 1000u > ms) ms = (unsigned)retry_after_s * 1000u;
    }
    return ms;
}

static void set_up(struct st_ship *s, bool up, const char *why)
{
    if (up && s->up != 1 && s->logged_down) fprintf(stderr, "sidetap-proxy: collector reachable again\n");
    if (!up && !s->logged_down) {
        fprintf(stderr, "sidetap-proxy: collector %s: %s (retrying with backoff)\n", s->cfg->collector_url, why);
        s->logged_down = true;
    }
    if (up) s->logged_down = false;
    s->up = up ? 1 : 0;
}

static void check_done(struct st_ship *s)
{
    if (!s->flushing || s->done == NULL) return;
    if (s->count > 0 || s->batch.busy) return;
    void (*done)(void *) = s->done;
    s->done = NULL;
    evtimer_del(s->flush_deadline);
    done(s->done_arg);
}

/* One request finished (status 0: no HTTP answer at all): success, retry or drop. */
static void finished(struct st_ship *s, struct request *r, int status, long retry_after)
{
    r->in_flight = false;
    bool ok = status >= 200 && status < 300;
    bool retry = status == 0 || status == 429 || status >= 500 || status < 200;
    char why[64];
    if (status == 0) snprintf(why, sizeof(why), "no answer (connect failed, reset or timed out)");
    else snprintf(why, sizeof(why), "HTTP %d", status);

    if (r->kind == REQ_REGISTER) {
        if (ok) {
            r->busy = false;
            r->attempt = 0;
            if (!s->registered && s->cfg->verbose) fprintf(stderr, "sidetap-proxy: registered with the collector\n");
            s->registered = true;
            st_metrics.registrations++;
            set_up(s, true, NULL);
            timer_after(s->reregister_timer, s->cfg->register_interval_ms);
            pump(s);
        } else {
            st_metrics.registration_failures++;
            if (!retry && !s->logged_reject) {
                fprintf(stderr, "sidetap-proxy: collector rejected the registration: %s\n", why);
                s->logged_reject = true;
            }
            set_up(s, status != 0 && !retry, why);
            timer_after(r->retry_timer, backoff_ms(r->attempt++, retry_after));
        }
        check_done(s);
        return;
    }

    if (ok) {
        st_metrics.batches_sent++;
        st_metrics.entries_shipped += r->n_entries;
        set_up(s, true, NULL);
        r->busy = false;
        r->attempt = 0;
        r->n_entries = 0;
        pump(s);
        return;
    }
    st_metrics.batches_failed++;
    if (retry) {
        set_up(s, false, why);
        st_metrics.batches_retried++;
        timer_after(r->retry_timer, backoff_ms(r->attempt++, retry_after));
        check_done(s);
        return;
    }
    /* 4xx other than 429: the collector will not take this batch, ever. */
    st_metrics.dropped[ST_DROP_COLLECTOR_REJECTED] += r->n_entries;
    if (!s->logged_reject) {
        fprintf(stderr, "sidetap-proxy: collector rejected a batch of %zu entries: %s (dropped; logged once)\n",
                r->n_entries, why);
        s->logged_reject = true;
    }
    set_up(s, true, NULL);
    r->busy = false;
    r->attempt = 0;
    r->n_entries = 0;
    pump(s);
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct request *r = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    long retry_after = 0;
    if (req != NULL && status > 0) {
        const char *ra = evhttp_find_header(evhttp_request_get_input_headers(req), "Retry-After");
        if (ra != NULL) retry_after = strtol(ra, NULL, 10);
    }
    finished(r->ship, r, status, retry_after);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct request *r = arg;
    struct st_ship *s = r->ship;
    if (r->kind == REQ_REGISTER) {
        r->busy = false;
        start_register(s);
    } else if (r->n_entries > 0) {
        start(s, r, s->entries_path); /* the same body again */
    } else {
        r->busy = false;
        pump(s);
    }
}

static void on_reregister(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    start_register(arg);
}

/* A burst of entries leaves freed memory in malloc's arenas; once the queue is empty,
 * hand it back to the kernel (at most every 10 s: trimming walks the heap). */
static void maybe_trim(struct st_ship *s)
{
    if (s->head != NULL) return;
    struct timeval tv;
    event_base_gettimeofday_cached(s->base, &tv);
    if ((uint64_t)tv.tv_sec < s->trimmed_s + 10) {
        if (!evtimer_pending(s->trim_timer, NULL)) timer_after(s->trim_timer, 10000);
        return;
    }
    s->trimmed_s = (uint64_t)tv.tv_sec;
    malloc_trim(0);
}

static void on_trim_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    maybe_trim(arg);
}

/* Moves queued entries on: to the file, or as the next batch once registered. */
static void pump(struct st_ship *s)
{
    if (s->file != NULL) {
        write_file(s);
    } else if (s->conn != NULL) {
        if (!s->registered) start_register(s);
        else if (!s->batch.busy && s->head != NULL) start_batch(s);
        if (s->head != NULL && !s->batch.busy) schedule(s);
    }
    maybe_trim(s);
    check_done(s);
}

static void on_batch_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct st_ship *s = arg;
    s->batch_armed = false;
    pump(s);
}

static void on_flush_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct st_ship *s = arg;
    while (s->head != NULL) item_drop(s, ST_DROP_SHUTDOWN);
    if (s->batch.busy) st_metrics.dropped[ST_DROP_SHUTDOWN] += s->batch.n_entries;
    s->batch.n_entries = 0;
    if (s->done) {
        void (*done)(void *) = s->done;
        s->done = NULL;
        done(s->done_arg);
    }
}

void st_ship_flush(struct st_ship *s, unsigned max_ms, void (*done)(void *arg), void *arg)
{
    s->flushing = true;
    s->done = done;
    s->done_arg = arg;
    timer_after(s->flush_deadline, max_ms);
    /* A batch or registration waiting for its backoff goes now. */
    struct request *rs[2] = {&s->reg, &s->batch};
    for (int i = 0; i < 2; i++) {
        if (rs[i]->busy && !rs[i]->in_flight && evtimer_pending(rs[i]->retry_timer, NULL)) {
            evtimer_del(rs[i]->retry_timer);
            on_retry(-1, 0, rs[i]);
        }
    }
    pump(s);
}

void st_ship_gauges(const struct st_ship *s, struct st_metrics_gauges *g)
{
    g->queue_entries = s->count;
    g->queue_bytes = s->bytes;
    g->collector_up = s->conn ? s->up : -1;
    g->registered = s->registered;
}

/* Splits the collector URL into what the requests need. Only http:// is spoken: the
 * collector is a Service inside the cluster. */
static int parse_collector(struct st_ship *s, const char *url)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (u == NULL || evhttp_uri_get_host(u) == NULL || evhttp_uri_get_scheme(u) == NULL ||
        strcasecmp(evhttp_uri_get_scheme(u), "http") != 0) {
        fprintf(stderr, "sidetap-proxy: SIDETAP_COLLECTOR_URL: \"%s\" is not valid, expected http://HOST[:PORT][/PREFIX]\n",
                url);
        if (u) evhttp_uri_free(u);
        return -1;
    }
    const char *host = evhttp_uri_get_host(u);
    int port = evhttp_uri_get_port(u);
    const char *prefix = evhttp_uri_get_path(u);
    size_t plen = prefix ? strlen(prefix) : 0;
    while (plen > 0 && prefix[plen - 1] == '/') plen--;
    size_t n = strlen(host) + 16;
    s->host_header = malloc(n);
    s->entries_path = malloc(plen + 32);
    s->register_path = malloc(plen + 32);
    if (!s->host_header || !s->entries_path || !s->register_path) {
        evhttp_uri_free(u);
        return -1;
    }
    bool v6 = strchr(host, ':') != NULL;
    if (port > 0) snprintf(s->host_header, n, v6 ? "[%s]:%d" : "%s:%d", host, port);
    else snprintf(s->host_header, n, v6 ? "[%s]" : "%s", host);
    snprintf(s->entries_path, plen + 32, "%.*s/api/v1/entries", (int)plen, prefix ? prefix : "");
    snprintf(s->register_path, plen + 32, "%.*s/api/v1/register", (int)plen, prefix ? prefix : "");

    /* evdns resolves a Service name without blocking the loop; a literal needs none. */
    s->dns = evdns_base_new(s->base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (s->dns != NULL) evdns_base_set_option(s->dns, "randomize-case:", "0");
    s->conn = evhttp_connection_base_new(s->base, s->dns, host, (unsigned short)(port > 0 ? port : 80));
    evhttp_uri_free(u);
    if (s->conn == NULL) return -1;
    evhttp_connection_set_timeout(s->conn, 10);
    evhttp_connection_set_max_body_size(s->conn, 1 << 20);
    evhttp_connection_set_max_headers_size(s->conn, 64 << 10);
    evhttp_connection_set_retries(s->conn, 0);
    return 0;
}

static int request_init(struct st_ship *s, struct request *r, enum req_kind kind)
{
    r->ship = s;
    r->kind = kind;
    r->retry_timer = evtimer_new(s->base, on_retry, r);
    return r->retry_timer ? 0 : -1;
}

static void request_free(struct request *r)
{
    if (r->retry_timer) event_free(r->retry_timer);
    st_json_buf_free(&r->body);
}

struct st_ship *st_ship_new(struct event_base *base, const struct st_proxy_config *cfg, const struct st_pod *pod)
{
    struct st_ship *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    s->base = base;
    s->cfg = cfg;
    s->pod = pod;
    s->up = -1;
    s->batch_timer = evtimer_new(base, on_batch_timer, s);
    s->flush_deadline = evtimer_new(base, on_flush_deadline, s);
    s->reregister_timer = evtimer_new(base, on_reregister, s);
    s->trim_timer = evtimer_new(base, on_trim_timer, s);
    if (!s->batch_timer || !s->flush_deadline || !s->reregister_timer || !s->trim_timer) goto oom;
    if (request_init(s, &s->reg, REQ_REGISTER) < 0 || request_init(s, &s->batch, REQ_ENTRIES) < 0) goto oom;

    if (cfg->collector_url != NULL) {
        if (parse_collector(s, cfg->collector_url) < 0) goto fail;
        if (cfg->token != NULL) {
            size_t n = strlen(cfg->token) + 8;
            s->auth = malloc(n);
            if (s->auth == NULL) goto oom;
            snprintf(s->auth, n, "Bearer %s", cfg->token);
        }
        s->up = 0;
        start_register(s);
    } else if (cfg->entries_file != NULL) {
        s->file = fopen(cfg->entries_file, "a");
        if (s->file == NULL) {
            fprintf(stderr, "sidetap-proxy: SIDETAP_ENTRIES_FILE: cannot open %s: %s\n", cfg->entries_file,
                    strerror(errno));
            goto fail;
        }
    }
    return s;
oom:
    fprintf(stderr, "sidetap-proxy: out of memory setting up shipping\n");
fail:
    st_ship_free(s);
    return NULL;
}

void st_ship_free(struct st_ship *s)
{
    if (s == NULL) return;
    while (s->head != NULL) item_drop(s, ST_DROP_SHUTDOWN);
    if (s->conn) evhttp_connection_free(s->conn); /* pending requests go with it */
    if (s->dns) evdns_base_free(s->dns, 0);
    request_free(&s->reg);
    request_free(&s->batch);
    if (s->reregister_timer) event_free(s->reregister_timer);
    if (s->batch_timer) event_free(s->batch_timer);
    if (s->trim_timer) event_free(s->trim_timer);
    if (s->flush_deadline) event_free(s->flush_deadline);
    if (s->file) fclose(s->file);
    st_json_buf_free(&s->line);
    free(s->host_header);
    free(s->auth);
    free(s->entries_path);
    free(s->register_path);
    free(s);
}
