/* http1.c - HTTP/1.x on llhttp: two parsers (one per direction) turn a connection's byte
 * streams into one entry per request/response exchange.
 *
 * Requests open an exchange and join a FIFO; responses complete the oldest exchange still
 * waiting, so pipelining works and a response that answers nothing is a parse error. An
 * exchange is emitted once both its messages are complete, in request order. The response
 * parser cannot know what it answers, so the FIFO tells it: HEAD responses have no body,
 * a 2xx to CONNECT and any 101 end HTTP/1 on the connection.
 *
 * Upgrades: llhttp pauses the request parser after a request that asks for an upgrade
 * (or CONNECT). Client bytes after it are held (bounded) until the server answers: a 101
 * (or a 2xx to CONNECT) hands the connection over to st_conn_switch() - HTTP/2 for h2c,
 * opaque TCP otherwise - and a refusal resumes HTTP/1 with the held bytes.
 *
 * Spans (URL, header names and values, status text) may arrive split across feeds, so they
 * are gathered in a per-direction buffer and copied into the entry when complete. Every
 * on_message_complete pauses the parser, which gives exact message boundaries for the
 * wire byte counts. Bodies go to st_body_append(), which only counts beyond the cap. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "proto.h"

/* Bounds on what one connection can make us hold. */
#define HTTP1_HEADER_BLOCK_MAX (64 * 1024) /* URL + header names/values of one message */
#define HTTP1_PENDING_MAX 64               /* exchanges waiting for their response */
#define HTTP1_HELD_MAX (64 * 1024)         /* client bytes held across an upgrade request */
#define HTTP1_ACC_KEEP 4096                /* span buffer kept between messages */

/* One request and its response; lives in its entry's arena. */
struct exchange {
    struct st_entry *entry;
    struct exchange *next;
    size_t charged;      /* bytes charged with st_conn_mem_charge, refunded at emit */
    uint8_t method;      /* llhttp_method_t */
    bool req_done;       /* request message complete */
    bool resp_begun;     /* a response (maybe interim) started */
    bool resp_done;      /* final response complete */
    bool upgrade;        /* the request paused the parser (Upgrade or CONNECT) */
    bool h2c;            /* Upgrade: h2c with HTTP2-Settings */
    bool has_settings;   /* HTTP2-Settings seen */
};

struct http1;

/* One direction: its parser and the span being gathered. */
struct side {
    llhttp_t parser; /* first member: callbacks get back to the side from it */
    struct http1 *h;
    enum st_dir dir;
    struct exchange *cur; /* the exchange whose message is being parsed */
    char *acc;            /* gathered span: header name then value, or URL, or status */
    size_t acc_len, acc_cap, name_len;
    size_t header_bytes;  /* of the current message, against HTTP1_HEADER_BLOCK_MAX */
    uint64_t msg_bytes;   /* wire bytes since the last message boundary */
    uint64_t offset;      /* bytes of this direction given to the parser */
    bool completed;       /* on_message_complete fired during the last execute */
};

struct http1 {
    struct st_conn *conn;
    struct side side[2];
    struct exchange *head, *tail; /* FIFO, oldest first */
    struct exchange *resp_next;   /* oldest exchange without a final response */
    size_t pending;

    /* Client bytes after an upgrade request, until the server's answer. */
    struct exchange *held_for;
    uint8_t *held;
    size_t held_len, held_cap;

    uint64_t now_us;
    const char *cb_error; /* set by a callback before it returns an error */
    size_t mem_charged;   /* acc buffers and held bytes */
    bool dead;            /* failed or switched: ignore everything */
    bool upgrade_refused_early; /* see message_done() */
};

static const llhttp_settings_t request_settings, response_settings;

/* --- memory --- */

static int charge(struct http1 *h, size_t *account, size_t bytes)
{
    if (st_conn_mem_charge(h->conn, bytes) < 0) return -1;
    *account += bytes;
    return 0;
}

/* Grows a buffer to hold `need` bytes, charging the growth to the connection. */
static int grow(struct http1 *h, char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need) ncap *= 2;
    if (charge(h, &h->mem_charged, ncap - *cap) < 0) return -1;
    char *p = realloc(*buf, ncap);
    if (p == NULL) {
        st_conn_mem_refund(h->conn, ncap - *cap);
        h->mem_charged -= ncap - *cap;
        return -1;
    }
    *buf = p;
    *cap = ncap;
    return 0;
}

/* --- spans --- */

static int acc_append(struct side *s, const char *at, size_t len)
{
    if (len == 0) return 0;
    s->header_bytes += len;
    if (s->header_bytes > HTTP1_HEADER_BLOCK_MAX) {
        s->h->cb_error = "header block too large";
        return HPE_USER;
    }
    if (grow(s->h, &s->acc, &s->acc_cap, s->acc_len + len) < 0) {
        s->h->cb_error = "connection memory limit exceeded";
        return HPE_USER;
    }
    memcpy(s->acc + s->acc_len, at, len);
    s->acc_len += len;
    return 0;
}

static struct side *side_of(llhttp_t *p)
{
    return (struct side *)p;
}

/* The gathered span; never NULL, even before the first byte (an empty URL is possible). */
static const char *acc_data(const struct side *s)
{
    return s->acc ? s->acc : "";
}

/* Charges bytes kept in an exchange's entry while it waits in the FIFO. */
static int charge_exchange(struct side *s, size_t bytes)
{
    if (s->cur == NULL) return 0;
    if (charge(s->h, &s->cur->charged, bytes) < 0) {
        s->h->cb_error = "connection memory limit exceeded";
        return -1;
    }
    return 0;
}

/* --- URL and query --- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes (and '+' to space) src into dst, which has room for len bytes. */
static size_t url_decode(char *dst, const char *src, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len) {
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (char)(hi << 4 | lo);
                i += 2;
            }
        }
        dst[o++] = c;
    }
    return o;
}

/* Fills url, path and query from the request target. Absolute-form targets
 * ("http://host/p?q") get the path of the URL; authority-form (CONNECT) and "*" are
 * their own path. */
static int set_target(struct st_entry *e, const char *url, size_t len)
{
    struct st_message *m = &e->request;
    m->url = st_arena_strndup(&e->arena, url, len);
    if (m->url == NULL) return -1;
    const char *start = url, *end = url + len;
    const char *scheme = memchr(url, ':', len);
    if (len > 0 && url[0] != '/' && scheme && end - scheme >= 3 && scheme[1] == '/' &&
        scheme[2] == '/') {
        const char *slash = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
        const char *q = memchr(scheme + 3, '?', (size_t)(end - scheme - 3));
        if (slash == NULL || (q && q < slash)) {
            /* "http://host" or "http://host?x": the path is "/" */
            m->path = "/";
            start = q ? q : end;
        } else {
            start = slash;
        }
    }
    const char *qmark = memchr(start, '?', (size_t)(end - start));
    const char *hash = memchr(start, '#', (size_t)(end - start));
    const char *path_end = qmark ? qmark : hash ? hash : end;
    if (m->path == NULL) {
        m->path = path_end == end && start == url ? m->url
                                                   : st_arena_strndup(&e->arena, start,
                                                                      (size_t)(path_end - start));
        if (m->path == NULL) return -1;
    }
    if (qmark == NULL) return 0;
    const char *q = qmark + 1;
    const char *qend = hash && hash > qmark ? hash : end;
    if (q >= qend) return 0;
    char *scratch = st_arena_alloc(&e->arena, (size_t)(qend - q));
    if (scratch == NULL) return -1;
    while (q < qend) {
        const char *amp = memchr(q, '&', (size_t)(qend - q));
        const char *pair_end = amp ? amp : qend;
        if (pair_end > q) {
            const char *eq = memchr(q, '=', (size_t)(pair_end - q));
            const char *name_end = eq ? eq : pair_end;
            size_t nl = url_decode(scratch, q, (size_t)(name_end - q));
            size_t vl = eq ? url_decode(scratch + nl, eq + 1, (size_t)(pair_end - eq - 1)) : 0;
            if (st_kv_list_add(e, &m->query, scratch, nl, scratch + nl, vl) < 0) return -1;
        }
        q = pair_end + (amp ? 1 : 0);
    }
    return 0;
}

/* --- the FIFO --- */

static const char *method_name(uint8_t method)
{
    return llhttp_method_name((llhttp_method_t)method);
}

static void emit(struct http1 *h, struct exchange *x)
{
    struct st_entry *e = x->entry;
    const char *path = e->request.path ? e->request.path : e->request.url;
    if (e->request.method != NULL) {
        /* "METHOD path", without printf: this runs for every exchange. */
        size_t ml = strlen(e->request.method), pl = path ? strlen(path) : 0;
        char *sum = st_arena_alloc(&e->arena, ml + 1 + pl + 1);
        if (sum != NULL) {
            memcpy(sum, e->request.method, ml);
            sum[ml] = ' ';
            if (pl) memcpy(sum + ml + 1, path, pl);
            sum[ml + 1 + pl] = '\0';
            e->summary = sum;
        }
    } else {
        e->summary = "HTTP request (incomplete)";
    }
    if (e->end_us < e->start_us) e->end_us = e->start_us;
    st_conn_mem_refund(h->conn, x->charged);
    x->charged = 0;
    st_conn_emit(h->conn, e);
}

/* Removes the oldest exchange from the FIFO; the caller now owns its entry. */
static struct exchange *pop_head(struct http1 *h)
{
    struct exchange *x = h->head;
    h->head = x->next;
    if (h->head == NULL) h->tail = NULL;
    if (h->resp_next == x) h->resp_next = x->next;
    for (int d = 0; d < 2; d++)
        if (h->side[d].cur == x) h->side[d].cur = NULL;
    if (h->held_for == x) h->held_for = NULL;
    h->pending--;
    return x;
}

static void emit_done(struct http1 *h)
{
    while (h->head && h->head->req_done && h->head->resp_done) emit(h, pop_head(h));
}

static void free_exchange(struct http1 *h, struct exchange *x)
{
    st_conn_mem_refund(h->conn, x->charged);
    st_entry_free(x->entry);
}

/* --- request callbacks --- */

static int req_message_begin(llhttp_t *p)
{
    struct side *s = side_of(p);
    struct http1 *h = s->h;
    if (h->pending >= HTTP1_PENDING_MAX) {
        h->cb_error = "too many requests waiting for a response";
        return -1;
    }
    struct st_entry *e = st_conn_entry_new(h->conn, ST_PROTO_HTTP);
    struct exchange *x = e ? st_arena_alloc(&e->arena, sizeof(*x)) : NULL;
    if (x == NULL) {
        if (e != NULL) st_conn_count_dropped(h->conn, ST_LIMIT_OUT_OF_MEMORY, 1);
        st_entry_free(e);
        h->cb_error = "out of memory";
        return -1;
    }
    memset(x, 0, sizeof(*x));
    x->entry = e;
    e->start_us = h->now_us;
    e->end_us = h->now_us;
    e->request.present = true;
    if (h->tail) h->tail->next = x;
    else h->head = x;
    h->tail = x;
    if (h->resp_next == NULL) h->resp_next = x;
    h->pending++;
    s->cur = x;
    s->acc_len = 0;
    s->header_bytes = 0;
    if (charge_exchange(s, sizeof(*e) + sizeof(*x)) < 0) return -1;
    return 0;
}

static int on_span(llhttp_t *p, const char *at, size_t len)
{
    return acc_append(side_of(p), at, len);
}

static int req_url_complete(llhttp_t *p)
{
    struct side *s = side_of(p);
    struct st_entry *e = s->cur->entry;
    e->request.method = method_name(p->method);
    s->cur->method = p->method;
    if (charge_exchange(s, s->acc_len * 2) < 0) return -1;
    if (set_target(e, acc_data(s), s->acc_len) < 0) {
        s->h->cb_error = "out of memory";
        return -1;
    }
    s->acc_len = 0;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct side *s = side_of(p);
    s->name_len = s->acc_len;
    return 0;
}

/* Is `token` one of the comma-separated values? */
static bool has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t start = i;
        while (i < len && v[i] != ',') i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0) return true;
    }
    return false;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct side *s = side_of(p);
    struct exchange *x = s->cur;
    const char *name = acc_data(s), *value = acc_data(s) + s->name_len;
    size_t name_len = s->name_len, value_len = s->acc_len - s->name_len;
    s->acc_len = s->name_len = 0;
    if (x == NULL) return 0;
    struct st_message *m = s->dir == ST_DIR_TO_SERVER ? &x->entry->request : &x->entry->response;
    if (charge_exchange(s, name_len + value_len + 2 + sizeof(struct st_kv)) < 0) return -1;
    if (st_conn_add_header(s->h->conn, x->entry, &m->headers, name, name_len, value, value_len) <
        0) {
        s->h->cb_error = "out of memory";
        return -1;
    }
    if (s->dir == ST_DIR_TO_SERVER) {
        if (name_len == 7 && strncasecmp(name, "upgrade", 7) == 0 &&
            has_token(value, value_len, "h2c"))
            x->h2c = true;
        else if (name_len == 14 && strncasecmp(name, "http2-settings", 14) == 0)
            x->has_settings = true;
    }
    return 0;
}

static const char *version_string(struct st_entry *e, const llhttp_t *p)
{
    if (p->http_major == 1 && p->http_minor == 1) return "1.1";
    if (p->http_major == 1 && p->http_minor == 0) return "1.0";
    return st_arena_printf(&e->arena, "%u.%u", p->http_major, p->http_minor);
}

static int req_headers_complete(llhttp_t *p)
{
    struct side *s = side_of(p);
    s->cur->entry->proto_version = version_string(s->cur->entry, p);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct side *s = side_of(p);
    struct exchange *x = s->cur;
    if (x == NULL) return 0;
    struct st_message *m = s->dir == ST_DIR_TO_SERVER ? &x->entry->request : &x->entry->response;
    st_body_append(s->h->conn, x->entry, &m->body, (const uint8_t *)at, len);
    return 0;
}

/* Both directions pause here so the caller learns where the message ended. */
static int on_message_complete(llhttp_t *p)
{
    side_of(p)->completed = true;
    return HPE_PAUSED;
}

/* --- response callbacks --- */

static int resp_message_begin(llhttp_t *p)
{
    struct side *s = side_of(p);
    struct http1 *h = s->h;
    struct exchange *x = h->resp_next;
    if (x == NULL) {
        h->cb_error = "response without a request";
        return -1;
    }
    s->cur = x;
    s->acc_len = 0;
    s->header_bytes = 0;
    struct st_message *m = &x->entry->response;
    if (x->resp_begun) {
        /* The final response after an interim 1xx replaces it (wire bytes add up). */
        m->headers.count = 0;
        m->status = 0;
        m->status_text = NULL;
    }
    x->resp_begun = true;
    m->present = true;
    return 0;
}

static int resp_status_complete(llhttp_t *p)
{
    struct side *s = side_of(p);
    struct st_entry *e = s->cur->entry;
    if (charge_exchange(s, s->acc_len + 1) < 0) return -1;
    e->response.status = p->status_code;
    e->response.status_text = st_arena_strndup(&e->arena, acc_data(s), s->acc_len);
    if (e->response.status_text == NULL) {
        s->h->cb_error = "out of memory";
        return -1;
    }
    s->acc_len = 0;
    return 0;
}

/* 0: as llhttp decides, 1: no body (HEAD), 2: no body and the protocol ends here (101,
 * 2xx to CONNECT). */
static int resp_headers_complete(llhttp_t *p)
{
    struct side *s = side_of(p);
    struct exchange *x = s->cur;
    if (p->status_code == 101) return 2;
    if (x->method == HTTP_CONNECT && p->status_code >= 200 && p->status_code < 300) return 2;
    if (x->method == HTTP_HEAD) return 1;
    return 0;
}

static const llhttp_settings_t request_settings = {
    .on_message_begin = req_message_begin,
    .on_url = on_span,
    .on_header_field = on_span,
    .on_header_value = on_span,
    .on_url_complete = req_url_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = req_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static const llhttp_settings_t response_settings = {
    .on_message_begin = resp_message_begin,
    .on_status = on_span,
    .on_header_field = on_span,
    .on_header_value = on_span,
    .on_status_complete = resp_status_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = resp_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- driving the parsers --- */

/* Stops parsing: exchanges whose request was complete are emitted with an error (what was
 * seen is still true), the one being parsed is dropped, and the connection's error entry
 * comes last. */
static int fail(struct http1 *h, struct side *s, const char *what)
{
    uint64_t at = s->offset; /* the parser stopped there */
    const char *dir = s->dir == ST_DIR_TO_SERVER ? "request" : "response";
    /* What is lost is counted, by the limit that stopped parsing (if one did). */
    const char *cause = h->cb_error ? h->cb_error : "";
    enum st_parse_limit why = !strcmp(cause, "connection memory limit exceeded") ? ST_LIMIT_CONN_MEMORY
                              : !strcmp(cause, "out of memory")                 ? ST_LIMIT_OUT_OF_MEMORY
                              : !strcmp(cause, "too many requests waiting for a response")
                                  ? ST_LIMIT_PENDING
                                  : ST_LIMIT_PARSE_STOPPED;
    if (why == ST_LIMIT_PENDING) st_conn_count_dropped(h->conn, why, 1); /* never got an exchange */
    while (h->head) {
        struct exchange *x = pop_head(h);
        if (x->req_done) {
            struct st_entry *e = x->entry;
            e->end_us = h->now_us;
            st_entry_set_error(e, "no response parsed: %s stream unparsable", dir);
            st_conn_count_unanswered(h->conn, why, 1);
            emit(h, x);
        } else {
            st_conn_count_dropped(h->conn, why, 1);
            free_exchange(h, x);
        }
    }
    h->dead = true;
    st_conn_fail(h->conn, "HTTP/1 %s at byte %llu: %s", dir, (unsigned long long)at, what);
    return -1;
}

static int hold(struct http1 *h, const uint8_t *data, size_t len)
{
    if (h->held_len + len > HTTP1_HELD_MAX) return -1;
    if (grow(h, (char **)&h->held, &h->held_cap, h->held_len + len) < 0) return -1;
    if (len) memcpy(h->held + h->held_len, data, len);
    h->held_len += len;
    return 0;
}

static int side_feed(struct http1 *h, enum st_dir dir, const uint8_t *data, size_t len);

/* The server answered an upgrade request (or CONNECT) with its final response. Returns 1
 * when the connection left HTTP/1 (the caller must stop), 0 to go on, -1 on failure. */
static int upgrade_answered(struct http1 *h, struct exchange *x, const uint8_t *rest,
                            size_t rest_len)
{
    struct st_entry *e = x->entry;
    int status = e->response.status;
    bool switched = status == 101 || (x->method == HTTP_CONNECT && status >= 200 && status < 300);
    if (switched) {
        /* Earlier exchanges are complete (responses come in order); emit them first. */
        while (h->head && h->head != x) emit(h, pop_head(h));
        pop_head(h);
        const uint8_t *to_server = h->held;
        size_t to_server_len = h->held_len;
        h->dead = true;
        if (x->h2c && x->has_settings && status == 101) {
            /* HTTP/2 completes the request as stream 1. */
            e->proto = ST_PROTO_HTTP2;
            e->proto_version = "2";
            free(e->response.body.data);
            memset(&e->response, 0, sizeof(e->response));
            st_conn_mem_refund(h->conn, x->charged);
            x->charged = 0;
            st_conn_set_handover(h->conn, e);
            st_conn_switch(h->conn, ST_PROTO_HTTP2, to_server, to_server_len, rest, rest_len,
                           h->now_us);
        } else {
            emit(h, x);
            st_conn_switch(h->conn, ST_PROTO_TCP, to_server, to_server_len, rest, rest_len,
                           h->now_us);
        }
        return 1;
    }
    if (h->held_for != x) return 0;
    /* Refused: the held bytes are HTTP/1 again. */
    uint8_t *held = h->held;
    size_t held_len = h->held_len, held_cap = h->held_cap;
    h->held = NULL;
    h->held_len = h->held_cap = 0;
    h->held_for = NULL;
    llhttp_resume_after_upgrade(&h->side[ST_DIR_TO_SERVER].parser);
    int r = side_feed(h, ST_DIR_TO_SERVER, held, held_len);
    free(held);
    st_conn_mem_refund(h->conn, held_cap);
    h->mem_charged -= held_cap;
    return r < 0 ? -1 : h->dead ? 1 : 0;
}

/* The message of this direction ended `consumed` bytes into the current chunk. */
static int message_done(struct http1 *h, struct side *s, const uint8_t *rest, size_t rest_len)
{
    struct exchange *x = s->cur;
    s->completed = false;
    s->cur = NULL;
    if (s->acc_cap > HTTP1_ACC_KEEP) {
        /* A rare big header block: give its buffer back rather than keep it all along. */
        free(s->acc);
        st_conn_mem_refund(h->conn, s->acc_cap);
        h->mem_charged -= s->acc_cap;
        s->acc = NULL;
        s->acc_len = s->acc_cap = 0;
    }
    if (x == NULL) return 0;
    struct st_entry *e = x->entry;
    if (s->dir == ST_DIR_TO_SERVER) {
        e->request.wire_bytes = s->msg_bytes;
        s->msg_bytes = 0;
        x->req_done = true;
        x->upgrade = s->parser.upgrade;
        /* Answered already (a 101 would have switched): the upgrade pause that follows
         * must not hold anything. */
        if (x->upgrade && x->resp_done) h->upgrade_refused_early = true;
        if (x->resp_done) emit_done(h);
        return 0;
    }
    e->response.wire_bytes += s->msg_bytes;
    s->msg_bytes = 0;
    e->end_us = h->now_us;
    int status = e->response.status;
    if (status >= 100 && status < 200 && status != 101) return 0; /* interim */
    x->resp_done = true;
    h->resp_next = x->next;
    if (x->upgrade || status == 101) {
        int r = upgrade_answered(h, x, rest, rest_len);
        if (r != 0) return r;
    }
    emit_done(h);
    return 0;
}

/* Runs one direction's parser over a chunk, handling every pause it makes. */
static int side_feed(struct http1 *h, enum st_dir dir, const uint8_t *data, size_t len)
{
    static const uint8_t nothing[1];
    struct side *s = &h->side[dir];
    if (data == NULL) data = nothing, len = 0;
    if (dir == ST_DIR_TO_SERVER && h->held_for != NULL) {
        if (hold(h, data, len) < 0)
            return fail(h, s, "too many client bytes before the answer to an upgrade");
        return 0;
    }
    for (;;) {
        llhttp_errno_t err = llhttp_execute(&s->parser, (const char *)data, len);
        size_t used = len;
        if (err != HPE_OK) {
            const char *pos = llhttp_get_error_pos(&s->parser);
            used = pos && pos >= (const char *)data ? (size_t)(pos - (const char *)data) : 0;
            if (used > len) used = len;
        }
        s->msg_bytes += used;
        s->offset += used;
        data += used;
        len -= used;
        if (err == HPE_OK) return 0;
        if (err == HPE_PAUSED && s->completed) {
            llhttp_resume(&s->parser);
            int r = message_done(h, s, data, len);
            if (r != 0 || h->dead) return r < 0 ? -1 : 0;
            continue; /* even with len == 0: lets the parser reach an upgrade pause */
        }
        if (err == HPE_PAUSED_UPGRADE && dir == ST_DIR_TO_SERVER) {
            /* After an upgrade request or CONNECT: hold until the server answers. */
            if (h->upgrade_refused_early) {
                /* The server refused before the request ended: HTTP/1 goes on. */
                h->upgrade_refused_early = false;
                llhttp_resume_after_upgrade(&s->parser);
                continue;
            }
            h->held_for = h->tail;
            if (hold(h, data, len) < 0)
                return fail(h, s, "too many client bytes before the answer to an upgrade");
            return 0;
        }
        if (err == HPE_PAUSED_UPGRADE) {
            /* A response paused without a switch (cannot happen: handled at completion). */
            return fail(h, s, "unexpected protocol switch");
        }
        const char *what = h->cb_error ? h->cb_error : llhttp_get_error_reason(&s->parser);
        if (err == HPE_PAUSED_H2_UPGRADE) what = "HTTP/2 preface inside HTTP/1";
        char msg[200];
        snprintf(msg, sizeof(msg), "%s%s%s", h->cb_error ? "" : llhttp_errno_name(err),
                 h->cb_error ? "" : " ", what ? what : "");
        return fail(h, s, msg);
    }
}

/* --- module interface --- */

static void *http1_create(struct st_conn *conn)
{
    struct http1 *h = calloc(1, sizeof(*h));
    if (h == NULL) return NULL;
    h->conn = conn;
    for (int d = 0; d < 2; d++) {
        struct side *s = &h->side[d];
        llhttp_init(&s->parser, d == ST_DIR_TO_SERVER ? HTTP_REQUEST : HTTP_RESPONSE,
                    d == ST_DIR_TO_SERVER ? &request_settings : &response_settings);
        /* An observer must follow whatever the peers accept. */
        llhttp_set_lenient_keep_alive(&s->parser, 1);
        s->h = h;
        s->dir = (enum st_dir)d;
    }
    return h;
}

static int http1_feed(void *state, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                      size_t len, uint64_t now_us)
{
    (void)conn;
    struct http1 *h = state;
    if (h->dead) return 0;
    h->now_us = now_us;
    return side_feed(h, dir, data, len);
}

static const char *close_words(enum st_close_reason reason)
{
    switch (reason) {
    case ST_CLOSE_FIN: return "before close";
    case ST_CLOSE_RESET: return "connection reset";
    case ST_CLOSE_TIMEOUT: return "connection timed out";
    case ST_CLOSE_ABORT: return "connection aborted";
    }
    return "before close";
}

static void http1_close(void *state, struct st_conn *conn, enum st_close_reason reason,
                        uint64_t now_us)
{
    (void)conn;
    struct http1 *h = state;
    if (h->dead) return;
    h->now_us = now_us;
    struct side *rs = &h->side[ST_DIR_TO_CLIENT];
    /* A response delimited by the end of the connection (HTTP/1.0 style) is complete on a
     * clean close. */
    if (reason == ST_CLOSE_FIN && rs->cur != NULL && llhttp_message_needs_eof(&rs->parser)) {
        llhttp_finish(&rs->parser);
        if (rs->completed && message_done(h, rs, NULL, 0) != 0) return;
        if (h->dead) return;
    }
    const char *why = close_words(reason);
    bool sep = reason != ST_CLOSE_FIN;
    while (h->head) {
        struct exchange *x = pop_head(h);
        struct st_entry *e = x->entry;
        if (!x->req_done) {
            e->request.wire_bytes = h->side[ST_DIR_TO_SERVER].msg_bytes;
            st_entry_set_error(e, "request incomplete%s%s", sep ? ": " : " ", why);
        } else if (x->resp_begun && !x->resp_done) {
            e->response.wire_bytes += rs->msg_bytes;
            st_entry_set_error(e, "response incomplete%s%s", sep ? ": " : " ", why);
        } else if (!x->resp_begun) {
            st_entry_set_error(e, "no response%s%s", sep ? ": " : " ", why);
        }
        if (!x->resp_done) e->end_us = now_us;
        emit(h, x);
    }
    h->dead = true;
}

static void http1_destroy(void *state)
{
    struct http1 *h = state;
    if (h == NULL) return;
    while (h->head) free_exchange(h, pop_head(h));
    for (int d = 0; d < 2; d++) free(h->side[d].acc);
    free(h->held);
    st_conn_mem_refund(h->conn, h->mem_charged);
    free(h);
}

const struct st_proto_ops st_http1_ops = {
    .proto = ST_PROTO_HTTP,
    .create = http1_create,
    .feed = http1_feed,
    .close = http1_close,
    .destroy = http1_destroy,
};
