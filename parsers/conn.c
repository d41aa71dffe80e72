/* conn.c - one observed connection: detection, dispatch to a protocol module, and the
 * opaque-TCP fallback.
 *
 * Until the protocol is known the first client bytes are kept in a small buffer (at most
 * ST_DETECT_MAX). After that every chunk goes straight to the module. When a module fails,
 * or none exists for the protocol, the connection only counts bytes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

/* The modules that exist. Adding a protocol adds one line here. */
static const struct st_proto_ops *const modules[] = {
    &st_http1_ops,
    &st_dns_ops,
    &st_tls_ops,
    &st_redis_ops,
    &st_kafka_ops,
    &st_http2_ops,
};

const char *const st_default_redact[] = {
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    "x-auth-token",  "x-csrf-token",        "x-amz-security-token", NULL,
};

enum conn_mode {
    MODE_DETECTING, /* collecting the first client bytes */
    MODE_PARSING,   /* a module owns the stream */
    MODE_OPAQUE,    /* counting bytes; one tcp entry at close */
    MODE_FAILED,    /* parsing stopped; counting bytes, no more entries */
};

struct st_conn {
    struct st_conn_info info;
    const struct st_parse_config *config;
    st_entry_cb on_entry;
    void *arg;

    enum conn_mode mode;
    enum st_proto proto;
    const struct st_proto_ops *ops;
    void *state;
    /* Modules replaced mid-feed by st_conn_switch() or st_conn_fail(): destroyed once the
     * outermost feed returns. Two at most in practice: HTTP/1 switches to HTTP/2 (h2c),
     * which fails on the bytes it is handed at once. */
    const struct st_proto_ops *retired_ops[4];
    void *retired_state[4];
    int retired_count;
    int feeding; /* depth of module feed() calls, to defer the above */

    uint8_t detect_buf[ST_DETECT_MAX];
    size_t detect_len;

    uint64_t bytes[2];    /* per direction, whole connection */
    uint32_t emitted;     /* entries emitted, numbers them (entry->seq) */
    uint64_t opaque_from[2]; /* byte counts when opaque counting began */
    uint64_t opaque_start_us, last_us;
    size_t mem_used;
    char *error;
    struct st_entry *handover; /* see st_conn_set_handover() */
    uint8_t *server_early;     /* server bytes before the client's first (bounded) */
    size_t server_early_len;
};

#define SERVER_EARLY_MAX 4096

static const struct st_proto_ops *module_for(enum st_proto proto)
{
    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
        if (modules[i]->proto == proto) return modules[i];
    return NULL;
}

void st_parse_config_init(struct st_parse_config *config)
{
    memset(config, 0, sizeof(*config));
    config->body_cap = 64 * 1024;
    config->conn_mem_max = 256 * 1024;
    config->capture_bodies = true;
    config->redact = NULL;
    config->budget = NULL;
}

struct st_conn *st_conn_new(const struct st_conn_info *info, const struct st_parse_config *config,
                            st_entry_cb on_entry, void *arg)
{
    struct st_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    c->info = *info;
    c->config = config;
    c->on_entry = on_entry;
    c->arg = arg;
    c->mode = MODE_DETECTING;
    c->proto = ST_PROTO_UNKNOWN;
    c->opaque_start_us = info->start_us;
    c->last_us = info->start_us;
    if (info->guess != ST_PROTO_UNKNOWN) {
        /* The caller knows (a DNS listener, a configured port): skip detection. */
        st_conn_switch(c, info->guess, NULL, 0, NULL, 0, info->start_us);
    }
    return c;
}

static void begin_opaque(struct st_conn *c, enum conn_mode mode, uint64_t now_us)
{
    c->mode = mode;
    c->opaque_from[0] = c->bytes[0];
    c->opaque_from[1] = c->bytes[1];
    if (mode == MODE_OPAQUE) {
        c->proto = ST_PROTO_TCP;
        c->opaque_start_us = now_us;
    }
}

static void retire_module(struct st_conn *c)
{
    if (c->ops == NULL) return;
    if (c->feeding && c->retired_count < 4) {
        c->retired_ops[c->retired_count] = c->ops;
        c->retired_state[c->retired_count++] = c->state;
    } else {
        c->ops->destroy(c->state);
    }
    c->ops = NULL;
    c->state = NULL;
}

static void destroy_retired(struct st_conn *c)
{
    while (c->retired_count > 0) {
        c->retired_count--;
        c->retired_ops[c->retired_count]->destroy(c->retired_state[c->retired_count]);
    }
}

static void module_feed(struct st_conn *c, enum st_dir dir, const uint8_t *data, size_t len,
                        uint64_t now_us)
{
    const struct st_proto_ops *ops = c->ops;
    void *state = c->state;
    c->feeding++;
    ops->feed(state, c, dir, data, len, now_us);
    c->feeding--;
    if (c->feeding == 0) destroy_retired(c);
}

int st_conn_switch(struct st_conn *c, enum st_proto proto, const uint8_t *to_server,
                   size_t to_server_len, const uint8_t *to_client, size_t to_client_len,
                   uint64_t now_us)
{
    retire_module(c);
    const struct st_proto_ops *ops = proto == ST_PROTO_TCP ? NULL : module_for(proto);
    void *state = ops ? ops->create(c) : NULL;
    if (state == NULL) {
        begin_opaque(c, MODE_OPAQUE, now_us);
        /* The pending bytes were counted by the caller's feed but belong to the tail. */
        c->opaque_from[0] -= to_server_len <= c->opaque_from[0] ? to_server_len : c->opaque_from[0];
        c->opaque_from[1] -= to_client_len <= c->opaque_from[1] ? to_client_len : c->opaque_from[1];
        return proto == ST_PROTO_TCP ? 0 : -1;
    }
    c->ops = ops;
    c->state = state;
    c->proto = proto;
    c->mode = MODE_PARSING;
    if (to_server_len > 0) module_feed(c, ST_DIR_TO_SERVER, to_server, to_server_len, now_us);
    if (to_client_len > 0 && c->mode == MODE_PARSING)
        module_feed(c, ST_DIR_TO_CLIENT, to_client, to_client_len, now_us);
    return 0;
}

void st_conn_set_handover(struct st_conn *c, struct st_entry *entry)
{
    st_entry_free(c->handover);
    c->handover = entry;
}

struct st_entry *st_conn_take_handover(struct st_conn *c)
{
    struct st_entry *e = c->handover;
    c->handover = NULL;
    return e;
}

void st_conn_fail(struct st_conn *c, const char *fmt, ...)
{
    if (c->mode == MODE_FAILED) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(c->error);
    c->error = strdup(msg);

    struct st_entry *e = st_conn_entry_new(c, c->proto == ST_PROTO_UNKNOWN ? ST_PROTO_TCP : c->proto);
    if (e != NULL) {
        e->start_us = c->last_us;
        e->end_us = c->last_us;
        st_entry_set_error(e, "parse error: %s", msg);
        st_entry_set_summary(e, "%s parse error", st_proto_abbr(e->proto));
        st_conn_emit(c, e);
    }
    retire_module(c);
    begin_opaque(c, MODE_FAILED, c->last_us);
}

static void detect_and_start(struct st_conn *c, const uint8_t *data, size_t len, uint64_t now_us)
{
    size_t take = ST_DETECT_MAX - c->detect_len;
    if (take > len) take = len;
    memcpy(c->detect_buf + c->detect_len, data, take);
    c->detect_len += take;

    enum st_proto p = st_detect(c->detect_buf, c->detect_len, c->info.server.port, c->info.transport);
    if (p == ST_PROTO_UNKNOWN) return; /* need more, and everything so far is buffered */
    if (p == ST_PROTO_TCP) {
        begin_opaque(c, MODE_OPAQUE, c->info.start_us);
        c->opaque_from[0] = c->opaque_from[1] = 0;
        return;
    }

    if (c->info.transport == ST_TRANSPORT_UDP) {
        /* UDP decides on the first datagram, which must reach the module whole. */
        st_conn_switch(c, p, data, len, NULL, 0, now_us);
        return;
    }
    /* Start the module with the buffered bytes, then the rest of this chunk. */
    size_t buffered = c->detect_len;
    if (st_conn_switch(c, p, c->detect_buf, buffered, NULL, 0, now_us) != 0) {
        /* No module state (out of memory): nothing was emitted yet, so the whole
         * connection so far, this chunk included, is the opaque tail. */
        c->opaque_from[0] = c->opaque_from[1] = 0;
        c->opaque_start_us = c->info.start_us;
        return;
    }
    if (c->mode == MODE_PARSING && len > take)
        module_feed(c, ST_DIR_TO_SERVER, data + take, len - take, now_us);
    if (c->mode == MODE_PARSING && c->server_early_len > 0)
        module_feed(c, ST_DIR_TO_CLIENT, c->server_early, c->server_early_len, now_us);
    free(c->server_early);
    c->server_early = NULL;
    c->server_early_len = 0;
}

void st_conn_feed(struct st_conn *c, enum st_dir dir, const uint8_t *data, size_t len,
                  uint64_t now_us)
{
    if (len == 0) return;
    c->bytes[dir] += len;
    c->last_us = now_us;
    switch (c->mode) {
    case MODE_DETECTING:
        if (dir == ST_DIR_TO_SERVER) {
            detect_and_start(c, data, len, now_us);
        } else if (c->detect_len == 0 && c->server_early_len + len <= SERVER_EARLY_MAX) {
            /* The server spoke first. It may be a greeting the client waits for (then the
             * relay calls st_conn_client_silent() after its detect window), or a client-first
             * protocol whose server talks at accept (HTTP/2 SETTINGS): keep the bytes until
             * the client's first bytes decide. */
            uint8_t *p = realloc(c->server_early, c->server_early_len + len);
            if (p == NULL) {
                begin_opaque(c, MODE_OPAQUE, c->info.start_us);
                c->opaque_from[0] = c->opaque_from[1] = 0;
                break;
            }
            c->server_early = p;
            memcpy(p + c->server_early_len, data, len);
            c->server_early_len += len;
        } else {
            /* Too much from the server, or it answered a partial client hello: opaque. */
            begin_opaque(c, MODE_OPAQUE, c->info.start_us);
            c->opaque_from[0] = 0;
            c->opaque_from[1] = 0;
        }
        break;
    case MODE_PARSING:
        module_feed(c, dir, data, len, now_us);
        break;
    case MODE_OPAQUE:
    case MODE_FAILED:
        break;
    }
}

void st_conn_client_silent(struct st_conn *c)
{
    if (c->mode != MODE_DETECTING || c->detect_len > 0) return;
    begin_opaque(c, MODE_OPAQUE, c->info.start_us);
    c->opaque_from[0] = c->opaque_from[1] = 0; /* the server's greeting counts */
    free(c->server_early);
    c->server_early = NULL;
    c->server_early_len = 0;
}

static void emit_tcp_entry(struct st_conn *c, enum st_close_reason reason, uint64_t now_us)
{
    struct st_entry *e = st_conn_entry_new(c, ST_PROTO_TCP);
    if (e == NULL) return;
    uint64_t to_server = c->bytes[0] - c->opaque_from[0];
    uint64_t to_client = c->bytes[1] - c->opaque_from[1];
    e->start_us = c->opaque_start_us;
    e->end_us = now_us > e->start_us ? now_us : e->start_us;
    e->request.present = true;
    e->request.wire_bytes = to_server;
    e->response.present = true;
    e->response.wire_bytes = to_client;
    e->section = json_pack("{s:I,s:I}", "bytesToServer", (json_int_t)to_server, "bytesToClient",
                           (json_int_t)to_client);
    if (reason == ST_CLOSE_RESET) st_entry_set_error(e, "connection reset");
    else if (reason == ST_CLOSE_TIMEOUT) st_entry_set_error(e, "connection timed out");
    st_entry_set_summary(e, "%s:%u %llu bytes out, %llu bytes in", c->info.server.ip,
                         c->info.server.port, (unsigned long long)to_server,
                         (unsigned long long)to_client);
    st_conn_emit(c, e);
}

void st_conn_close(struct st_conn *c, enum st_close_reason reason, uint64_t now_us)
{
    switch (c->mode) {
    case MODE_DETECTING:
        if (c->info.transport == ST_TRANSPORT_TCP && c->bytes[0] + c->bytes[1] > 0) {
            c->opaque_from[0] = c->opaque_from[1] = 0;
            emit_tcp_entry(c, reason, now_us);
        }
        break;
    case MODE_PARSING:
        c->feeding++;
        c->ops->close(c->state, c, reason, now_us);
        c->feeding--;
        break;
    case MODE_OPAQUE:
        emit_tcp_entry(c, reason, now_us);
        break;
    case MODE_FAILED:
        break;
    }
    retire_module(c);
    c->mode = MODE_FAILED; /* nothing more after close */
}

void st_conn_free(struct st_conn *c)
{
    if (c == NULL) return;
    if (c->ops) c->ops->destroy(c->state);
    destroy_retired(c);
    if (c->handover != NULL) st_conn_count_dropped(c, ST_LIMIT_OUT_OF_MEMORY, 1); /* no module took it */
    st_entry_free(c->handover);
    free(c->server_early);
    free(c->error);
    free(c);
}

enum st_proto st_conn_proto(const struct st_conn *c)
{
    return c->mode == MODE_FAILED && c->error ? ST_PROTO_TCP : c->proto;
}

const char *st_conn_parse_error(const struct st_conn *c)
{
    return c->error;
}

const struct st_conn_info *st_conn_info(const struct st_conn *c)
{
    return &c->info;
}

const struct st_parse_config *st_conn_config(const struct st_conn *c)
{
    return c->config;
}

const char *st_parse_limit_name(enum st_parse_limit why)
{
    switch (why) {
    case ST_LIMIT_CONN_MEMORY: return "conn_memory";
    case ST_LIMIT_PENDING: return "pending_limit";
    case ST_LIMIT_OUT_OF_MEMORY: return "out_of_memory";
    case ST_LIMIT_PARSE_STOPPED: return "parse_stopped";
    case ST_LIMIT_COUNT: break;
    }
    return "unknown";
}

void st_conn_count_dropped(struct st_conn *c, enum st_parse_limit why, uint64_t n)
{
    struct st_parse_stats *st = c->config->stats;
    if (st != NULL && (unsigned)why < ST_LIMIT_COUNT) st->dropped[why] += n;
}

void st_conn_count_unanswered(struct st_conn *c, enum st_parse_limit why, uint64_t n)
{
    struct st_parse_stats *st = c->config->stats;
    if (st != NULL && (unsigned)why < ST_LIMIT_COUNT) st->unanswered[why] += n;
}

struct st_entry *st_conn_entry_new(struct st_conn *c, enum st_proto proto)
{
    struct st_entry *e = st_entry_new(proto);
    if (e == NULL) {
        st_conn_count_dropped(c, ST_LIMIT_OUT_OF_MEMORY, 1);
        return NULL;
    }
    e->client = c->info.client;
    e->server = c->info.server;
    e->budget = c->config->budget;
    return e;
}

void st_conn_emit(struct st_conn *c, struct st_entry *e)
{
    e->seq = c->emitted++;
    struct st_mem_budget *b = c->config->budget;
    if (b != NULL) {
        size_t mem = st_entry_mem(e);
        size_t extra = mem > e->budget_charged ? mem - e->budget_charged : 0;
        if (b->limit && b->used + extra > b->limit) {
            b->entries_skipped++;
            st_entry_free(e);
            return;
        }
        b->used += extra;
        e->budget_charged += extra;
    }
    c->on_entry(e, c->arg);
}

/* Captures bodies while the budget allows: below 3/4 of the limit fully (to the cap),
 * above it nothing (metadata only). */
void st_body_append(struct st_conn *c, struct st_entry *e, struct st_body *body,
                    const uint8_t *data, size_t len)
{
    const struct st_parse_config *cfg = c->config;
    body->size += len;
    size_t room = cfg->capture_bodies && cfg->body_cap > body->len ? cfg->body_cap - body->len : 0;
    size_t take = len < room ? len : room;
    struct st_mem_budget *b = cfg->budget;
    if (take && b && b->limit && b->used + take > b->limit / 4 * 3) {
        b->bodies_truncated += take;
        take = 0;
    }
    if (take && body->len + take > body->cap) {
        /* Grow geometrically (up to the cap): parsers may append a byte at a time. */
        size_t want = body->cap ? body->cap * 2 : 512;
        if (want < body->len + take) want = body->len + take;
        if (want > cfg->body_cap) want = cfg->body_cap;
        uint8_t *p = realloc(body->data, want);
        if (p == NULL) {
            take = 0;
        } else {
            body->data = p;
            body->cap = want;
        }
    }
    if (take) {
        {
            uint8_t *p = body->data;
            memcpy(p + body->len, data, take);
            body->len += take;
            if (b) {
                b->used += take;
                e->budget_charged += take;
            }
        }
    }
    if (body->size > body->len) body->truncated = true;
}

bool st_conn_is_redacted(const struct st_conn *c, const char *name, size_t name_len)
{
    const char *const *list = c->config->redact ? c->config->redact : st_default_redact;
    for (; *list; list++)
        if (strlen(*list) == name_len && strncasecmp(*list, name, name_len) == 0) return true;
    return false;
}

int st_conn_add_header(struct st_conn *c, struct st_entry *e, struct st_kv_list *list,
                       const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (st_conn_is_redacted(c, name, name_len)) {
        static const char redacted[] = "[REDACTED]";
        return st_kv_list_add(e, list, name, name_len, redacted, sizeof(redacted) - 1);
    }
    return st_kv_list_add(e, list, name, name_len, value, value_len);
}

int st_conn_mem_charge(struct st_conn *c, size_t bytes)
{
    size_t max = c->config->conn_mem_max;
    if (max && c->mem_used + bytes > max) return -1;
    c->mem_used += bytes;
    return 0;
}

void st_conn_mem_refund(struct st_conn *c, size_t bytes)
{
    c->mem_used = c->mem_used > bytes ? c->mem_used - bytes : 0;
}
