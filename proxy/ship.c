/* ship.c - the bounded entry queue and its way to the collector (see ship.h).
 *
 * Queue: entries are serialized as they are pushed, straight into the text of the
 * batch they will go in (a chunk: up to SIDETAP_BATCH_ENTRIES / SIDETAP_BATCH_BYTES
 * entries joined by commas), and their parser memory is freed at once. A queued entry
 * then costs its ~1.5 KB of JSON instead of ~4 KB of arenas, and holds none of the
 * capture budget, so a collector that is slow for a moment costs 2.5x fewer drops.
 * Bounded by entries and bytes; the oldest go first, one by one (a chunk records where
 * each entry ends).
 * Up to BATCH_SLOTS batches are in flight at once, each on its own keep-alive
 * connection, so the collector's round trip does not cap the entries shipped per second
 * (one slot shipped at most a batch per round trip and fell behind a busy pod); a
 * batch is never sent before the pod is registered. A chunk's text is handed to libevent by reference
 * between the batch's two brackets, so an entry's JSON is written once and never copied
 * on its way to the socket. */
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
#define BATCH_SLOTS 2
#define RETRY_AFTER_MAX_S 300

/* Entries waiting to be shipped together: their JSON texts joined by ',' in `text`;
 * entry i ends at ends[i]. Entries before `first` were dropped. */
struct chunk {
    struct chunk *next;
    struct st_json_buf text;
    uint32_t *ends;
    size_t n, first, cap;
};

enum req_kind { REQ_REGISTER, REQ_ENTRIES };

struct request {
    struct st_ship *ship;
    enum req_kind kind;
    struct st_json_buf body; /* REQ_REGISTER */
    struct chunk *chunk;     /* REQ_ENTRIES: the entries in flight */
    struct evhttp_connection *conn;
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

    struct chunk *head, *tail; /* the oldest entries are in head */
    struct chunk *spare;       /* one emptied chunk kept for reuse */
    size_t count, bytes;       /* entries queued, bytes of their JSON */
    struct event *batch_timer;
    bool batch_armed, batch_now; /* batch_timer pending; with 0 ms */
    struct st_json_buf line; /* file mode */
    FILE *file;

    /* The collector: keep-alive HTTP/1.1 connections (libevent's evhttp client, with
     * evdns for a Service name), one per batch slot (batch[i].conn); the registration
     * shares the first. reg.conn is NULL without a collector. */
    struct evdns_base *dns;
    char *host_header, *auth, *entries_path, *register_path;
    struct request reg, batch[BATCH_SLOTS];
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

static size_t chunk_start(const struct chunk *c)
{
    return c->first == 0 ? 0 : c->ends[c->first - 1] + 1;
}

static size_t chunk_bytes(const struct chunk *c)
{
    return c->n > c->first ? c->ends[c->n - 1] - chunk_start(c) : 0;
}

static void chunk_free(struct chunk *c)
{
    if (c == NULL) return;
    st_json_buf_free(&c->text);
    free(c->ends);
    free(c);
}

/* An emptied chunk goes back as the spare (its buffers kept), or is freed. */
static void chunk_recycle(struct st_ship *s, struct chunk *c)
{
    c->next = NULL;
    c->n = c->first = 0;
    c->text.len = 0;
    if (s->spare == NULL) s->spare = c;
    else chunk_free(c);
}

/* Removes the head chunk from the queue and returns it. */
static struct chunk *chunk_take(struct st_ship *s)
{
    struct chunk *c = s->head;
    s->head = c->next;
    if (s->head == NULL) s->tail = NULL;
    c->next = NULL;
    s->count -= c->n - c->first;
    s->bytes -= chunk_bytes(c);
    return c;
}

/* Drops the oldest queued entry. */
static void item_drop(struct st_ship *s, enum st_drop why)
{
    struct chunk *c = s->head;
    size_t before = chunk_bytes(c);
    c->first++;
    s->count--;
    s->bytes -= before - chunk_bytes(c);
    st_metrics.dropped[why]++;
    if (c->first == c->n) chunk_recycle(s, chunk_take(s));
}

/* Full by what was written to it, dropped entries included, so that a chunk whose head
 * keeps being dropped (a queue bound below the batch size) cannot grow without end. */
static bool chunk_full(const struct st_ship *s, const struct chunk *c)
{
    return c->n >= s->cfg->batch_entries || c->text.len >= s->cfg->batch_bytes;
}

static void timer_after(struct event *ev, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* A batch slot with nothing in flight or waiting for a retry, or NULL. */
static struct request *free_slot(struct st_ship *s)
{
    for (int i = 0; i < BATCH_SLOTS; i++)
        if (!s->batch[i].busy) return &s->batch[i];
    return NULL;
}

static bool any_busy(const struct st_ship *s)
{
    for (int i = 0; i < BATCH_SLOTS; i++)
        if (s->batch[i].busy) return true;
    return false;
}

/* Arms the batch timer: at once when a batch is full (or on stop), else after batch_ms.
 * Not while a batch is in flight or waiting for its retry (its answer or its retry pumps
 * the next one), nor before the pod is registered (the registration's answer does):
 * arming it then re-armed a 0 ms timer at every loop turn, a core spinning for as long
 * as the collector was slow or down with a batch's worth of entries queued. */
static void schedule(struct st_ship *s)
{
    if (s->count == 0 || !s->registered || free_slot(s) == NULL) return;
    bool now = s->flushing || s->head != s->tail || chunk_full(s, s->head);
    if (s->batch_armed && (s->batch_now || !now)) return;
    timer_after(s->batch_timer, now ? 0 : s->cfg->batch_ms);
    s->batch_armed = true;
    s->batch_now = now;
}

/* Appends the entry's JSON to `b`. -1 when it could not be made (counted). */
static int serialize(struct st_ship *s, struct st_json_buf *b, const struct st_entry *e, bool outgoing,
                     const char *peer_name)
{
    struct st_identity peer = {.name = peer_name};
    struct st_json_context ctx = {
        .outgoing = outgoing,
        .reporter_node = s->pod->id.node,
        .src = outgoing ? &s->pod->id : NULL,
        .dst = outgoing ? (peer_name ? &peer : NULL) : &s->pod->id,
    };
    if (st_entry_json_write(b, e, &ctx) < 0) { /* leaves b as it was */
        st_metrics.dropped[ST_DROP_SERIALIZE]++;
        return -1;
    }
    return 0;
}

/* The chunk the next entry goes in: the tail, or a new one when the tail is full. */
static struct chunk *tail_chunk(struct st_ship *s)
{
    struct chunk *c = s->tail;
    if (c != NULL && !chunk_full(s, c)) return c;
    c = s->spare;
    if (c != NULL) s->spare = NULL;
    else if ((c = calloc(1, sizeof(*c))) == NULL) return NULL;
    if (s->tail) s->tail->next = c;
    else s->head = c;
    s->tail = c;
    return c;
}

/* Serializes the entry into the queue and frees it; drops the oldest beyond the bounds. */
static void enqueue(struct st_ship *s, struct st_entry *e, bool outgoing, const char *peer_name)
{
    struct chunk *c = tail_chunk(s);
    if (c != NULL && c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint32_t *ends = realloc(c->ends, cap * sizeof(*ends));
        if (ends != NULL) c->ends = ends, c->cap = cap;
    }
    if (c == NULL || c->n == c->cap) { /* out of memory: counted as not serialized */
        st_metrics.dropped[ST_DROP_SERIALIZE]++;
        st_entry_free(e);
        return;
    }
    size_t mark = c->text.len, before = chunk_bytes(c);
    if (c->n > c->first && st_json_buf_append(&c->text, ",", 1) < 0) {
        st_metrics.dropped[ST_DROP_SERIALIZE]++;
        st_entry_free(e);
        return;
    }
    int rc = serialize(s, &c->text, e, outgoing, peer_name);
    st_entry_free(e);
    if (rc < 0 || c->text.len > UINT32_MAX) {
        c->text.len = mark;
        return;
    }
    c->ends[c->n++] = (uint32_t)c->text.len;
    s->count++;
    s->bytes += chunk_bytes(c) - before;
    while (s->head != NULL && (s->count > s->cfg->queue_entries || s->bytes > s->cfg->queue_bytes))
        item_drop(s, ST_DROP_QUEUE_FULL);
}

void st_ship_push(struct st_ship *s, struct st_entry *e, bool outgoing, const char *peer_name)
{
    if (s->reg.conn == NULL && s->file == NULL) {
        st_metrics.dropped[ST_DROP_NO_COLLECTOR]++;
        st_entry_free(e);
        return;
    }
    if (s->file != NULL) {
        s->line.len = 0;
        int rc = serialize(s, &s->line, e, outgoing, peer_name);
        st_entry_free(e);
        if (rc == 0 && st_json_buf_append(&s->line, "\n", 1) == 0)
            fwrite(s->line.data, 1, s->line.len, s->file);
        if (!s->batch_armed) timer_after(s->batch_timer, s->cfg->batch_ms); /* flushes the file */
        s->batch_armed = true;
        return;
    }
    enqueue(s, e, outgoing, peer_name);
    schedule(s);
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
    /* By reference: the text stays put until the response (or the retry). */
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    if (r->kind == REQ_ENTRIES) {
        struct chunk *c = r->chunk;
        evbuffer_add_reference(out, "{\"entries\":[", 12, NULL, NULL);
        evbuffer_add_reference(out, c->text.data + chunk_start(c), chunk_bytes(c), NULL, NULL);
        evbuffer_add_reference(out, "]}", 2, NULL, NULL);
    } else {
        evbuffer_add_reference(out, r->body.data, r->body.len, NULL, NULL);
    }
    if (evhttp_make_request(r->conn, req, EVHTTP_REQ_POST, path) != 0) goto later; /* req is freed */
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

/* The oldest chunk becomes the batch in flight in slot r. */
static void start_batch(struct st_ship *s, struct request *r)
{
    if (r->chunk != NULL) chunk_recycle(s, r->chunk);
    r->chunk = chunk_take(s);
    r->n_entries = r->chunk->n - r->chunk->first;
    start(s, r, s->entries_path);
}

/* The batch in flight is done with (shipped or rejected). */
static void batch_done(struct st_ship *s, struct request *r)
{
    r->n_entries = 0;
    if (r->chunk != NULL) chunk_recycle(s, r->chunk);
    r->chunk = NULL;
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
    if (s->count > 0 || any_busy(s)) return;
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
        batch_done(s, r);
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
    batch_done(s, r);
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
        fflush(s->file);
    } else if (s->reg.conn != NULL) {
        if (!s->registered) start_register(s);
        else {
            /* a slot takes a full chunk at once, a partial one only when all were idle */
            struct request *r;
            while (s->head != NULL && (r = free_slot(s)) != NULL &&
                   (s->head != s->tail || chunk_full(s, s->head) || s->flushing || !any_busy(s)))
                start_batch(s, r);
        }
        if (s->head != NULL) schedule(s);
    }
    maybe_trim(s);
    check_done(s);
}

static void on_batch_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct st_ship *s = arg;
    s->batch_armed = s->batch_now = false;
    pump(s);
}

static void on_flush_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct st_ship *s = arg;
    while (s->head != NULL) item_drop(s, ST_DROP_SHUTDOWN);
    for (int i = 0; i < BATCH_SLOTS; i++) {
        if (s->batch[i].busy) st_metrics.dropped[ST_DROP_SHUTDOWN] += s->batch[i].n_entries;
        s->batch[i].n_entries = 0; /* its text stays: a request in flight still points at it */
    }
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
    struct request *rs[1 + BATCH_SLOTS] = {&s->reg};
    for (int i = 0; i < BATCH_SLOTS; i++) rs[1 + i] = &s->batch[i];
    for (int i = 0; i < 1 + BATCH_SLOTS; i++) {
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
    g->collector_up = s->reg.conn ? s->up : -1;
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
    for (int i = 0; i < BATCH_SLOTS; i++) {
        struct evhttp_connection *c =
            evhttp_connection_base_new(s->base, s->dns, host, (unsigned short)(port > 0 ? port : 80));
        if (c == NULL) break;
        evhttp_connection_set_timeout(c, 10);
        evhttp_connection_set_max_body_size(c, 1 << 20);
        evhttp_connection_set_max_headers_size(c, 64 << 10);
        evhttp_connection_set_retries(c, 0);
        s->batch[i].conn = c;
    }
    evhttp_uri_free(u);
    s->reg.conn = s->batch[0].conn;
    for (int i = 0; i < BATCH_SLOTS; i++)
        if (s->batch[i].conn == NULL) return -1;
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
    if (request_init(s, &s->reg, REQ_REGISTER) < 0) goto oom;
    for (int i = 0; i < BATCH_SLOTS; i++)
        if (request_init(s, &s->batch[i], REQ_ENTRIES) < 0) goto oom;

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
    for (int i = 0; i < BATCH_SLOTS; i++) /* pending requests go with them */
        if (s->batch[i].conn) evhttp_connection_free(s->batch[i].conn);
    for (int i = 0; i < BATCH_SLOTS; i++) batch_done(s, &s->batch[i]);
    chunk_free(s->spare);
    if (s->dns) evdns_base_free(s->dns, 0);
    request_free(&s->reg);
    for (int i = 0; i < BATCH_SLOTS; i++) request_free(&s->batch[i]);
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
