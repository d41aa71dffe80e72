/* redis.c - Redis (RESP2, RESP3, inline commands, pub/sub, MONITOR, replication).
 *
 * Commands from the client are matched to replies in order (FIFO), which covers
 * pipelining and MULTI/EXEC (QUEUED replies, then EXEC's array). Server pushes (pub/sub
 * messages, RESP3 `>` pushes, MONITOR lines) become entries of their own, without a
 * request. A replica's connection is followed through PSYNC/SYNC: the RDB payload is
 * skipped without buffering (only counted), then the master's command stream (commands
 * flowing server->client) and the replica's REPLCONF ACKs become request-only entries.
 *
 * RESP2 messages (client commands, replies + - : $ *) go through hiredis 0.14's
 * redisReader, with object functions that build no reply tree (see "hiredis" below).
 * Our own streaming tokenizer keeps what hiredis 0.14 cannot do: inline commands, RESP3
 * types, the RDB transfer (no trailing CRLF), messages over REDIS_HIREDIS_MAX (hiredis
 * holds a whole message in memory) and input hiredis refuses or does not check (depth
 * over 7, bytes after bulk data). The tokenizer streams values of any size: only the
 * first body_cap bytes of each message (the RESP bytes as on the wire) and a short
 * rendering are kept. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <hiredis/sds.h>

#include "entry_json.h"
#include "proto.h"

#define RESP_MAX_DEPTH 32      /* nested aggregates; deeper input stops parsing */
#define RESP_LINE_MAX 1024     /* length/number lines ($5, :42, ,3.14, (big numbers) */
#define REDIS_ELEM_KEEP 4      /* top-level elements kept (command name, key, ...) */
#define REDIS_ARG_MAX 256      /* bytes kept of each of those elements */
#define REDIS_RENDER_MAX 200   /* bytes of the short rendering of a reply */
#define REDIS_NAME_MAX 64       /* bytes kept of a command or subcommand name */
/* Commands awaiting replies that are kept (conn_mem_max usually binds first); the
 * replies of more are skipped and their entries made at once, without the reply. */
#define REDIS_MAX_PENDING 16384
#define RDB_MARK_LEN 40        /* diskless sync: $EOF:<40 bytes> ... <40 bytes> */
/* hiredis 0.14 buffers a whole message before returning it: a message that grows past
 * this many bytes is handed to the streaming tokenizer instead (memory bound). */
#define REDIS_HIREDIS_MAX (64 * 1024)

enum rd_state {
    RS_START,    /* expecting a type byte */
    RS_LINE,     /* a short line into `line` */
    RS_LINE_LF,  /* '\r' seen, expecting '\n' */
    RS_TEXT,     /* +simple / -error text, streamed */
    RS_TEXT_LF,  /* '\r' seen */
    RS_BULK,     /* bulk payload */
    RS_BULK_CR,  /* CRLF after the payload */
    RS_BULK_LF,
    RS_INLINE,   /* an inline command line (client side) */
    RS_RDB,      /* $<len> RDB payload, no trailing CRLF */
    RS_RDB_EOF,  /* $EOF:<mark> RDB payload, ends with the mark */
    RS_HIREDIS,  /* a RESP2 message inside the hiredis reader */
};

struct frame {
    uint8_t type;
    bool attr;      /* an attribute (|): does not count as an element of its parent */
    int64_t left;   /* elements still to come */
    uint64_t idx;   /* elements seen */
};

struct elem {
    char data[REDIS_ARG_MAX];
    uint32_t len;  /* bytes kept */
    uint64_t full; /* bytes seen */
    bool is_int;   /* an integer reply element */
};

/* The top-level value being read in one direction. */
struct value {
    bool started;
    bool is_inline;
    uint8_t type;
    uint64_t nchildren;
    struct elem elem[REDIS_ELEM_KEEP];
    char render[REDIS_RENDER_MAX];
    size_t render_len;
    bool render_cut;
    uint64_t wire;
    uint64_t start_us;
    uint8_t *cap; /* the first body_cap bytes of the value as on the wire */
    size_t cap_len, cap_size;
};

struct reader {
    enum st_dir dir;
    enum rd_state st;
    uint8_t cur_type; /* the scalar being read */
    char line[RESP_LINE_MAX];
    size_t line_len;
    uint64_t bulk_left;
    struct frame stack[RESP_MAX_DEPTH];
    int depth;
    int attr_depth;   /* inside attributes: not rendered */
    int cur_elem;     /* index into value.elem receiving bytes, or -1 */
    struct value v;
    /* inline tokenizer */
    bool in_token;
    char quote;
    bool esc;
    /* RDB transfer */
    uint64_t rdb_left, rdb_bytes, rdb_wire;
    uint8_t mark[RDB_MARK_LEN];
    uint8_t kmp[RDB_MARK_LEN];
    int matched;
    /* hiredis */
    redisReader *hr;
    bool own;            /* this message goes to the streaming tokenizer */
    uint64_t replay_us;  /* start time of a message replayed into the tokenizer */
    uint8_t *pend;       /* the current hiredis message's bytes from earlier chunks */
    size_t pend_len, pend_size;
};

enum cmd_kind {
    K_NORMAL,
    K_SUBSCRIBE,   /* one confirmation per channel */
    K_UNSUBSCRIBE, /* one per channel; without channels until the count drops to 0 */
    K_MONITOR,
    K_SYNC,        /* PSYNC/SYNC: +FULLRESYNC then an RDB, or SYNC's bare RDB */
    K_HELLO, /* HELLO <protover>: a successful reply switches RESP2/RESP3 */
    K_RESET,
    K_GAP,   /* not a command: `left` replies of commands that were not kept */
};

/* What an entry needs of a command. Built from a value (pointing into it), or kept in a
 * pending command's blob (pointing there). */
struct cmd {
    const char *name;    /* upper case, NUL-terminated */
    const char *key;     /* NULL: no key */
    const char *sub;     /* upper-case subcommand (CONFIG GET...), or NULL */
    const uint8_t *body; /* the command's first bytes as on the wire (capture) */
    size_t name_len, key_len, sub_len, body_len;
    uint64_t nargs; /* arguments after the name */
    uint64_t wire;  /* bytes on the wire */
    uint64_t start_us;
    bool is_inline;
};

/* A command waiting for its reply. Until the reply comes it holds only the strings its
 * entry needs, in one blob (a pipelined GET costs ~100 bytes, not an entry's ~2 KiB), so a
 * pipeline of thousands of commands fits in conn_mem_max. The entry is made when the
 * first reply arrives (subscriptions get several). */
struct pending {
    struct st_entry *e;
    uint8_t *blob; /* name\0 key\0 sub\0 body */
    uint64_t start_us, wire;
    int64_t left; /* replies still expected; -1: until the subscription count is 0 */
    uint32_t nargs, key_len, body_len, charged;
    uint8_t name_len, sub_len;
    uint8_t kind;      /* enum cmd_kind */
    bool has_key, has_sub, is_inline;
    int8_t hello_proto;
};

struct redis {
    struct st_conn *conn;
    struct reader rd[2];
    struct pending *q; /* ring of commands awaiting replies, and gaps */
    size_t qhead, qlen, qcap, qcharged;
    bool resp3, subscribed, monitor, replication, reply_off;
    int reply_skip;
    struct st_entry *sync_entry; /* PSYNC/SYNC waiting for its RDB */
    bool rdb_expected;
    bool failed;
};

/* ---------------------------------------------------------------- rendering */

static void render_put(struct value *v, const char *s, size_t n)
{
    size_t room = sizeof(v->render) - v->render_len;
    if (n > room) {
        n = room;
        v->render_cut = true;
    }
    memcpy(v->render + v->render_len, s, n);
    v->render_len += n;
}

static void render_str(struct reader *r, const char *s)
{
    if (r->attr_depth == 0) render_put(&r->v, s, strlen(s));
}

/* Bytes of the scalar being read: rendering and the kept top-level element. */
static void scalar_bytes(struct reader *r, const uint8_t *p, size_t n)
{
    if (r->attr_depth > 0) return;
    render_put(&r->v, (const char *)p, n);
    if (r->cur_elem >= 0) {
        struct elem *el = &r->v.elem[r->cur_elem];
        size_t room = sizeof(el->data) - el->len;
        size_t take = n < room ? n : room;
        memcpy(el->data + el->len, p, take);
        el->len += (uint32_t)take;
        el->full += n;
    }
}

/* ------------------------------------------------------------ redis logic */

static int redis_on_value(struct redis *s, enum st_dir dir, uint64_t now_us);
static bool redis_rdb_starts(struct redis *s);
static void redis_rdb_done(struct redis *s, uint64_t now_us);

/* ------------------------------------------------------------------ reader */

static void value_reset(struct reader *r)
{
    struct value *v = &r->v;
    uint8_t *cap = v->cap;
    size_t cap_size = v->cap_size;
    memset(v, 0, sizeof(*v));
    v->cap = cap;
    v->cap_size = cap_size;
    r->depth = 0;
    r->attr_depth = 0;
    r->cur_elem = -1;
    r->own = false;
}

/* Accounts the bytes [from, to) to the current value: wire size and capture. */
static void value_span(struct redis *s, struct reader *r, const uint8_t *from, size_t n)
{
    struct value *v = &r->v;
    v->wire += n;
    const struct st_parse_config *cfg = st_conn_config(s->conn);
    if (!cfg->capture_bodies || v->cap_len >= cfg->body_cap) return;
    size_t take = cfg->body_cap - v->cap_len;
    if (take > n) take = n;
    if (v->cap_len + take > v->cap_size) {
        size_t want = v->cap_size ? v->cap_size : 256;
        while (want < v->cap_len + take) want *= 2;
        if (want > cfg->body_cap) want = cfg->body_cap;
        if (st_conn_mem_charge(s->conn, want - v->cap_size) < 0) return; /* keep what we have */
        uint8_t *p = realloc(v->cap, want);
        if (p == NULL) {
            st_conn_mem_refund(s->conn, want - v->cap_size);
            return;
        }
        v->cap = p;
        v->cap_size = want;
    }
    memcpy(v->cap + v->cap_len, from, take);
    v->cap_len += take;
}

/* Starts an element (or the top-level value) whose type byte is `type`. */
static void elem_begin(struct reader *r, uint8_t type)
{
    r->cur_elem = -1;
    if (r->depth == 0) return;
    struct frame *f = &r->stack[r->depth - 1];
    if (r->attr_depth == 0 && f->idx > 0) render_str(r, f->type == '%' && f->idx % 2 ? ": " : ", ");
    bool scalar = !strchr("*%~>|", type);
    if (scalar && r->depth == 1 && r->attr_depth == 0 && f->idx < REDIS_ELEM_KEEP) {
        r->cur_elem = (int)f->idx;
        r->v.elem[r->cur_elem].is_int = type == ':';
    }
}

/* An element is complete: count it in its parent, closing finished aggregates. Returns
 * 1 when the top-level value is complete. */
static int child_done(struct reader *r)
{
    r->cur_elem = -1;
    for (;;) {
        if (r->depth == 0) return 1;
        struct frame *f = &r->stack[r->depth - 1];
        f->idx++;
        if (r->depth == 1 && !f->attr) r->v.nchildren++;
        if (--f->left > 0) return 0;
        /* The aggregate is complete. */
        bool attr = f->attr;
        r->depth--;
        if (attr) {
            r->attr_depth--;
            return 0; /* the value the attribute describes follows */
        }
        render_str(r, f->type == '%' ? "}" : "]");
    }
}

static bool parse_int(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 19) return false;
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        if (++i == n) return false;
    }
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

/* A complete short line of type r->cur_type. Returns <0 on a protocol error, 1 when
 * the top-level value is complete, 0 otherwise. */
static int line_done(struct redis *s, struct reader *r)
{
    uint8_t t = r->cur_type;
    int64_t n = 0;
    switch (t) {
    case ':':
    case ',':
    case '(':
        if (t == ':' && !parse_int(r->line, r->line_len, &n)) return -1;
        scalar_bytes(r, (const uint8_t *)r->line, r->line_len);
        return child_done(r);
    case '#':
        if (r->line_len != 1 || (r->line[0] != 't' && r->line[0] != 'f')) return -1;
        scalar_bytes(r, (const uint8_t *)(r->line[0] == 't' ? "true" : "false"),
                     r->line[0] == 't' ? 4 : 5);
        return child_done(r);
    case '_':
        if (r->line_len != 0) return -1;
        render_str(r, "(nil)");
        return child_done(r);
    case '$':
    case '=':
    case '!':
        if (t == '$' && r->depth == 0 && r->dir == ST_DIR_TO_CLIENT && redis_rdb_starts(s)) {
            r->rdb_wire = 1 + r->line_len + 2;
            r->rdb_bytes = 0;
            if (r->line_len == 4 + RDB_MARK_LEN && memcmp(r->line, "EOF:", 4) == 0) {
                memcpy(r->mark, r->line + 4, RDB_MARK_LEN);
                /* KMP failure table, so the end mark is found in one pass. */
                r->kmp[0] = 0;
                for (int i = 1, k = 0; i < RDB_MARK_LEN; i++) {
                    while (k > 0 && r->mark[i] != r->mark[k]) k = r->kmp[k - 1];
                    if (r->mark[i] == r->mark[k]) k++;
                    r->kmp[i] = (uint8_t)k;
                }
                r->matched = 0;
                r->st = RS_RDB_EOF;
                return 0;
            }
            if (!parse_int(r->line, r->line_len, &n) || n < 0) return -1;
            r->rdb_left = (uint64_t)n;
            r->st = RS_RDB;
            return 0;
        }
        if (!parse_int(r->line, r->line_len, &n) || n < -1) return -1;
        if (n == -1) {
            render_str(r, "(nil)");
            return child_done(r);
        }
        r->bulk_left = (uint64_t)n;
        r->st = n > 0 ? RS_BULK : RS_BULK_CR;
        return 0;
    default: /* aggregates */
        if (!parse_int(r->line, r->line_len, &n) || n < -1 || n > (int64_t)1 << 32) return -1;
        if (n == -1) {
            render_str(r, "(nil)");
            return child_done(r);
        }
        if (t == '%' || t == '|') n *= 2;
        if (n == 0) {
            if (t == '|') return 0; /* empty attribute: the value follows */
            render_str(r, t == '%' ? "{}" : "[]");
            return child_done(r);
        }
        if (r->depth == RESP_MAX_DEPTH) return -2;
        if (t != '|') render_str(r, t == '%' ? "{" : "[");
        struct frame *f = &r->stack[r->depth++];
        f->type = t;
        f->attr = t == '|';
        f->left = n;
        f->idx = 0;
        if (f->attr) r->attr_depth++;
        return 0;
    }
}

/* Inline tokenizer: a token ends. */
static void inline_token_end(struct reader *r)
{
    if (!r->in_token) return;
    r->in_token = false;
    r->v.nchildren++;
    r->cur_elem = -1;
}

static void inline_token_start(struct reader *r)
{
    if (r->in_token) return;
    r->in_token = true;
    r->cur_elem = r->v.nchildren < REDIS_ELEM_KEEP ? (int)r->v.nchildren : -1;
}

static void inline_token_byte(struct reader *r, uint8_t c)
{
    inline_token_start(r);
    if (r->cur_elem >= 0) {
        struct elem *el = &r->v.elem[r->cur_elem];
        if (el->len < sizeof(el->data)) el->data[el->len++] = (char)c;
        el->full++;
    }
}

/* One byte of an inline command line: words split on blanks, "double" (with
 * backslash escapes) and 'single' quotes, as the server's sdssplitargs does. */
static void inline_byte(struct reader *r, uint8_t c)
{
    if (r->quote == 0) {
        if (c == ' ' || c == '\t' || c == '\r') {
            inline_token_end(r);
        } else if ((c == '"' || c == '\'') && !r->in_token) {
            r->quote = (char)c;
            inline_token_start(r);
        } else {
            inline_token_byte(r, c);
        }
    } else if (r->quote == '"') {
        if (r->esc) {
            r->esc = false;
            inline_token_byte(r, c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c);
        } else if (c == '\\') {
            r->esc = true;
        } else if (c == '"') {
            r->quote = 0;
        } else {
            inline_token_byte(r, c);
        }
    } else {
        if (c == '\'') r->quote = 0;
        else inline_token_byte(r, c);
    }
    if (c != '\r') render_put(&r->v, (const char *)&c, 1);
}

static const char *type_error(uint8_t c)
{
    static char msg[64];
    if (isprint(c)) snprintf(msg, sizeof(msg), "unexpected byte '%c' where a RESP type was expected", c);
    else snprintf(msg, sizeof(msg), "unexpected byte 0x%02x where a RESP type was expected", c);
    return msg;
}

/* Runs the tokenizer over one chunk. Returns 0, or -1 after st_conn_fail(). */
/* ------------------------------------------------------------------ hiredis */

/* hiredis's reader parses RESP2 messages (client commands, replies + - : $ *). Its
 * object functions below build no reply tree: each call feeds the same element events
 * the streaming tokenizer produces (elem_begin / scalar bytes / child_done), so entries
 * are identical whichever reader saw the message. Returning NULL makes hiredis stop with
 * an error; the message is then replayed into the streaming tokenizer, which also checks
 * what hiredis 0.14 does not (the CRLF after bulk data, LF inside simple strings, nesting
 * deeper than 7) and gives the precise error. */
static char hr_obj; /* dummy object: hiredis only needs non-NULL */

static void *hr_string(const redisReadTask *t, char *str, size_t len)
{
    struct reader *r = t->privdata;
    uint8_t type = t->type == REDIS_REPLY_STATUS ? '+' : t->type == REDIS_REPLY_ERROR ? '-' : '$';
    if (type == '$') {
        /* hiredis 0.14 skips the two bytes after bulk data without looking at them;
         * they are in its buffer here. */
        if (str[len] != '\r' || str[len + 1] != '\n') return NULL;
    } else if (memchr(str, '\n', len) != NULL || memchr(str, '\r', len) != NULL) {
        return NULL;
    }
    elem_begin(r, type);
    scalar_bytes(r, (const uint8_t *)str, len);
    child_done(r);
    return &hr_obj;
}

static void *hr_integer(const redisReadTask *t, long long value)
{
    struct reader *r = t->privdata;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%lld", value);
    elem_begin(r, ':');
    scalar_bytes(r, (const uint8_t *)buf, (size_t)n);
    child_done(r);
    return &hr_obj;
}

static void *hr_nil(const redisReadTask *t)
{
    struct reader *r = t->privdata;
    elem_begin(r, '$');
    render_str(r, "(nil)");
    child_done(r);
    return &hr_obj;
}

static void *hr_array(const redisReadTask *t, int n)
{
    struct reader *r = t->privdata;
    if (n < 0 || r->depth == RESP_MAX_DEPTH) return NULL; /* the tokenizer says why */
    elem_begin(r, '*');
    if (n == 0) {
        render_str(r, "[]");
        child_done(r);
        return &hr_obj;
    }
    render_str(r, "[");
    struct frame *f = &r->stack[r->depth++];
    f->type = '*';
    f->attr = false;
    f->left = n;
    f->idx = 0;
    return &hr_obj;
}

static void hr_free(void *obj)
{
    (void)obj;
}

static redisReplyObjectFunctions hr_functions = {
    .createString = hr_string,
    .createArray = hr_array,
    .createInteger = hr_integer,
    .createNil = hr_nil,
    .freeObject = hr_free,
};

static redisReader *hr_new(struct reader *r)
{
    redisReader *hr = redisReaderCreateWithFunctions(&hr_functions);
    if (hr != NULL) hr->privdata = r;
    return hr;
}

/* Whether a message starting with `c` goes to hiredis. Our own tokenizer keeps what
 * hiredis 0.14 cannot read: inline commands (client side, first byte not '*'), RESP3
 * types after HELLO 3 (% ~ > , # _ ( = ! |) and the RDB payload after +FULLRESYNC
 * (no trailing CRLF, or a $EOF:<mark> diskless transfer). */
static bool hr_takes(struct redis *s, struct reader *r, uint8_t c)
{
    if (r->hr == NULL || r->own) return false;
    if (r->dir == ST_DIR_TO_SERVER) return c == '*';
    if (c == '$') return !redis_rdb_starts(s);
    return c == '+' || c == '-' || c == ':' || c == '*';
}

/* Keeps the bytes of a message hiredis has not finished, for a replay (hiredis trims
 * its buffer while parsing, so the message's start cannot be found there). */
static int pend_add(struct reader *r, const uint8_t *p, size_t n)
{
    if (r->pend_len + n > r->pend_size) {
        size_t want = r->pend_size ? r->pend_size : 1024;
        while (want < r->pend_len + n) want *= 2;
        uint8_t *np = realloc(r->pend, want);
        if (np == NULL) return -1;
        r->pend = np;
        r->pend_size = want;
    }
    memcpy(r->pend + r->pend_len, p, n);
    r->pend_len += n;
    return 0;
}

static int reader_feed(struct redis *s, struct reader *r, const uint8_t *data, size_t len,
                       uint64_t now_us);

/* The message being read by hiredis goes to the streaming tokenizer instead: it grew
 * past REDIS_HIREDIS_MAX, or hiredis refused it (its errors are sticky, so the reader is
 * recreated). Its bytes so far are pend + data[from, to). Returns 0 or -1 (failed). */
static int hr_replay(struct redis *s, struct reader *r, const uint8_t *data, size_t from, size_t to,
                     uint64_t now_us)
{
    redisReaderFree(r->hr);
    r->hr = hr_new(r);
    uint8_t *pend = r->pend;
    size_t pend_len = r->pend_len;
    r->pend = NULL;
    r->pend_len = r->pend_size = 0;
    r->replay_us = r->v.start_us;
    value_reset(r);
    r->own = true;
    r->st = RS_START;
    int rc = reader_feed(s, r, pend, pend_len, now_us);
    free(pend);
    if (rc == 0 && to > from) rc = reader_feed(s, r, data + from, to - from, now_us);
    return rc;
}

/* Runs hiredis over data[*pi, len): messages it completes are handled like the
 * tokenizer's; a following message it cannot read returns to the tokenizer. */
static int hr_run(struct redis *s, struct reader *r, const uint8_t *data, size_t len, size_t *pi,
                  size_t *pspan, uint64_t now_us)
{
    redisReader *hr = r->hr;
    while (*pi < len) {
        size_t have = r->pend_len + (*pi - *pspan);
        size_t piece = len - *pi;
        if (have + piece > REDIS_HIREDIS_MAX) piece = REDIS_HIREDIS_MAX - have;
        if (piece == 0 || redisReaderFeed(hr, (const char *)data + *pi, piece) != REDIS_OK) {
            size_t from = *pspan;
            *pspan = *pi;
            return hr_replay(s, r, data, from, *pi, now_us);
        }
        size_t fed_end = *pi + piece;
        for (;;) {
            void *rep = NULL;
            if (redisReaderGetReply(hr, &rep) != REDIS_OK) {
                size_t from = *pspan;
                *pi = *pspan = fed_end;
                return hr_replay(s, r, data, from, fed_end, now_us);
            }
            if (rep == NULL) {
                *pi = fed_end;
                break;
            }
            /* A message is complete; what hiredis still holds follows it. */
            size_t rest = hr->len - hr->pos;
            *pi = fed_end - rest;
            value_span(s, r, data + *pspan, *pi - *pspan);
            *pspan = *pi;
            r->pend_len = 0;
            if (redis_on_value(s, r->dir, now_us) < 0) return -1;
            value_reset(r);
            if (rest == 0) {
                r->st = RS_START;
                return 0;
            }
            uint8_t c = data[*pi];
            if (!hr_takes(s, r, c)) {
                sdsclear(hr->buf);
                hr->pos = hr->len = 0;
                r->st = RS_START;
                return 0;
            }
            r->v.started = true;
            r->v.start_us = now_us;
            r->v.type = c;
        }
    }
    return 0;
}

static int reader_feed(struct redis *s, struct reader *r, const uint8_t *data, size_t len,
                       uint64_t now_us)
{
    size_t i = 0;
    size_t span = 0; /* start of the bytes not yet accounted to the value */
    while (i < len) {
        uint8_t c = data[i];
        int done = 0;
        switch (r->st) {
        case RS_START:
            if (r->depth == 0 && !r->v.started) {
                if (c == '\r' || c == '\n') { /* empty lines, replication keep-alives */
                    i++;
                    span = i;
                    continue;
                }
                r->v.started = true;
                r->v.start_us = r->replay_us ? r->replay_us : now_us;
                r->replay_us = 0;
                if (hr_takes(s, r, c)) {
                    r->v.type = c;
                    r->st = RS_HIREDIS;
                    continue;
                }
                span = i;
                if (!strchr("+-:$*%~>|,#_(=!", c) || c == 0) {
                    if (r->dir == ST_DIR_TO_SERVER) {
                        r->v.is_inline = true;
                        r->v.type = 'i';
                        r->st = RS_INLINE;
                        r->in_token = false;
                        r->quote = 0;
                        r->esc = false;
                        continue; /* the byte is part of the line */
                    }
                    st_conn_fail(s->conn, "redis: %s", type_error(c));
                    return -1;
                }
            } else if (!strchr("+-:$*%~>|,#_(=!", c) || c == 0) {
                st_conn_fail(s->conn, "redis: %s", type_error(c));
                return -1;
            }
            if (r->depth == 0) r->v.type = c; /* also the value after a top-level attribute */
            elem_begin(r, c);
            r->cur_type = c;
            r->line_len = 0;
            r->st = (c == '+' || c == '-') ? RS_TEXT : RS_LINE;
            i++;
            break;
        case RS_LINE:
            if (c == '\r') {
                r->st = RS_LINE_LF;
            } else if (r->line_len == sizeof(r->line)) {
                st_conn_fail(s->conn, "redis: line longer than %d bytes", RESP_LINE_MAX);
                return -1;
            } else {
                r->line[r->line_len++] = (char)c;
            }
            i++;
            break;
        case RS_LINE_LF:
            if (c != '\n') {
                st_conn_fail(s->conn, "redis: expected LF after CR");
                return -1;
            }
            i++;
            r->st = RS_START;
            done = line_done(s, r);
            if (done == -2) {
                st_conn_fail(s->conn, "redis: aggregates nested deeper than %d", RESP_MAX_DEPTH);
                return -1;
            }
            if (done < 0) {
                st_conn_fail(s->conn, "redis: bad '%c' line \"%.*s\"", r->cur_type,
                             (int)(r->line_len < 40 ? r->line_len : 40), r->line);
                return -1;
            }
            if (r->st == RS_RDB || r->st == RS_RDB_EOF) {
                span = i; /* the RDB is not part of a value */
                r->v.started = false;
            }
            break;
        case RS_TEXT: {
            const uint8_t *cr = memchr(data + i, '\r', len - i);
            size_t n = cr ? (size_t)(cr - (data + i)) : len - i;
            if (memchr(data + i, '\n', n) != NULL) {
                st_conn_fail(s->conn, "redis: LF inside a simple string");
                return -1;
            }
            scalar_bytes(r, data + i, n);
            i += n;
            if (cr) {
                r->st = RS_TEXT_LF;
                i++;
            }
            break;
        }
        case RS_TEXT_LF:
            if (c != '\n') {
                st_conn_fail(s->conn, "redis: expected LF after CR");
                return -1;
            }
            i++;
            r->st = RS_START;
            done = child_done(r);
            break;
        case RS_BULK: {
            size_t n = len - i;
            if (n > r->bulk_left) n = (size_t)r->bulk_left;
            scalar_bytes(r, data + i, n);
            i += n;
            r->bulk_left -= n;
            if (r->bulk_left == 0) r->st = RS_BULK_CR;
            break;
        }
        case RS_BULK_CR:
        case RS_BULK_LF:
            if (c != (r->st == RS_BULK_CR ? '\r' : '\n')) {
                st_conn_fail(s->conn, "redis: bulk string not followed by CRLF");
                return -1;
            }
            i++;
            if (r->st == RS_BULK_CR) {
                r->st = RS_BULK_LF;
            } else {
                r->st = RS_START;
                done = child_done(r);
            }
            break;
        case RS_INLINE:
            if (c == '\n') {
                inline_token_end(r);
                i++;
                r->st = RS_START;
                done = 1;
            } else {
                inline_byte(r, c);
                i++;
            }
            break;
        case RS_RDB: {
            size_t n = len - i;
            if (n > r->rdb_left) n = (size_t)r->rdb_left;
            i += n;
            span = i;
            r->rdb_left -= n;
            r->rdb_bytes += n;
            r->rdb_wire += n;
            if (r->rdb_left == 0) {
                r->st = RS_START;
                value_reset(r);
                redis_rdb_done(s, now_us);
            }
            break;
        }
        case RS_HIREDIS: {
            int rc = hr_run(s, r, data, len, &i, &span, now_us);
            if (rc < 0) return -1;
            continue;
        }
        case RS_RDB_EOF:
            i++;
            span = i;
            r->rdb_wire++;
            r->rdb_bytes++;
            while (r->matched > 0 && c != r->mark[r->matched]) r->matched = r->kmp[r->matched - 1];
            if (c == r->mark[r->matched]) r->matched++;
            if (r->matched == RDB_MARK_LEN) {
                r->rdb_bytes -= RDB_MARK_LEN;
                r->st = RS_START;
                value_reset(r);
                redis_rdb_done(s, now_us);
            }
            break;
        }
        if (done == 1) {
            value_span(s, r, data + span, i - span);
            span = i;
            if (redis_on_value(s, r->dir, now_us) < 0) return -1;
            value_reset(r);
        }
    }
    if (r->v.started && i > span) {
        if (r->st == RS_HIREDIS && pend_add(r, data + span, i - span) < 0) {
            st_conn_fail(s->conn, "redis: out of memory");
            return -1;
        }
        value_span(s, r, data + span, i - span);
    }
    return 0;
}

/* ------------------------------------------------------------ commands */

static const char *const no_key_commands[] = {
    "PING", "ECHO", "AUTH", "HELLO", "SELECT", "INFO", "MULTI", "EXEC", "DISCARD", "QUIT",
    "FLUSHALL", "FLUSHDB", "DBSIZE", "TIME", "KEYS", "SCAN", "RANDOMKEY", "MONITOR", "SYNC",
    "PSYNC", "SAVE", "BGSAVE", "BGREWRITEAOF", "LASTSAVE", "SHUTDOWN", "ROLE", "WAIT",
    "WAITAOF", "RESET", "READONLY", "READWRITE", "SWAPDB", "UNWATCH", "REPLICAOF", "SLAVEOF",
    "FAILOVER", "LOLWUT", "XREAD", "XREADGROUP",
    "SCRIPT", "FUNCTION", "EVAL_RO", NULL,
};

/* Commands whose first argument is a subcommand (CONFIG GET, CLIENT SETNAME...). */
static const char *const container_commands[] = {
    "CLIENT", "CONFIG", "COMMAND", "SCRIPT", "CLUSTER", "ACL", "SLOWLOG", "FUNCTION",
    "LATENCY", "MODULE", "DEBUG", "PUBSUB", "REPLCONF", "MEMORY", "OBJECT", "XINFO",
    "XGROUP", "SENTINEL", NULL,
};

static bool in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return true;
    return false;
}

static bool elem_is(const struct value *v, int i, const char *lit)
{
    size_t n = strlen(lit);
    return v->nchildren > (uint64_t)i && v->elem[i].full == n &&
           strncasecmp(v->elem[i].data, lit, n) == 0;
}

static int64_t elem_int(const struct value *v, int i)
{
    int64_t n = 0;
    if (v->nchildren <= (uint64_t)i || !parse_int(v->elem[i].data, v->elem[i].len, &n)) return -1;
    return n;
}

/* Index of the element that is the command's key, or -1. */
static int key_index(const struct value *v, const char *cmd)
{
    if (strcmp(cmd, "EVAL") == 0 || strcmp(cmd, "EVALSHA") == 0 || strcmp(cmd, "EVALSHA_RO") == 0 ||
        strcmp(cmd, "FCALL") == 0 || strcmp(cmd, "FCALL_RO") == 0)
        return elem_int(v, 2) > 0 ? 3 : -1;
    if (strcmp(cmd, "MEMORY") == 0 || strcmp(cmd, "OBJECT") == 0 || strcmp(cmd, "XINFO") == 0 ||
        strcmp(cmd, "XGROUP") == 0 || strcmp(cmd, "BITOP") == 0)
        return 2;
    if (in_list(no_key_commands, cmd) || in_list(container_commands, cmd)) return -1;
    return 1;
}

static const char *reply_type_name(uint8_t t)
{
    switch (t) {
    case '+': return "simple";
    case '-': return "error";
    case ':': return "integer";
    case '$': return "bulk";
    case '*': return "array";
    case '%': return "map";
    case '~': return "set";
    case '>': return "push";
    case '_': return "null";
    case ',': return "double";
    case '#': return "boolean";
    case '(': return "bignumber";
    case '=': return "verbatim";
    case '!': return "blobError";
    default: return "unknown";
    }
}

static const char *render_text(struct st_entry *e, const struct value *v)
{
    return st_arena_printf(&e->arena, "%.*s%s", (int)v->render_len, v->render,
                           v->render_cut ? "..." : "");
}

/* Moves the value's captured bytes into a body. */
static void take_body(struct redis *s, struct st_entry *e, struct st_body *body,
                      const struct value *v)
{
    st_body_append(s->conn, e, body, v->cap, v->cap_len);
    if (v->wire > v->cap_len) {
        body->size += v->wire - v->cap_len;
        body->truncated = true;
    }
}

static void set_int(json_t *o, const char *k, json_int_t v)
{
    json_object_set_new_nocheck(o, k, json_integer(v));
}

/* NULL when out of memory (counted). */
static struct st_entry *new_entry(struct redis *s)
{
    struct st_entry *e = st_conn_entry_new(s->conn, ST_PROTO_REDIS);
    if (e == NULL) return NULL;
    e->proto_version = s->resp3 ? "RESP3" : "RESP2";
    e->section = json_object();
    if (e->section == NULL) {
        st_entry_free(e);
        st_conn_count_dropped(s->conn, ST_LIMIT_OUT_OF_MEMORY, 1);
        return NULL;
    }
    return e;
}

/* The command in a value; false when it has no elements. `name` and `sub` are buffers
 * of REDIS_NAME_MAX bytes for the upper-cased strings. */
static bool cmd_from_value(struct cmd *c, const struct value *v, char *name, char *sub)
{
    if (v->nchildren == 0) return false;
    memset(c, 0, sizeof(*c));
    const struct elem *el = &v->elem[0];
    size_t n = el->len < REDIS_NAME_MAX - 1 ? el->len : REDIS_NAME_MAX - 1;
    for (size_t i = 0; i < n; i++) name[i] = (char)toupper((unsigned char)el->data[i]);
    name[n] = '\0';
    c->name = name;
    c->name_len = strlen(name); /* a NUL inside the name ends it */
    int k = key_index(v, name);
    if (k > 0 && v->nchildren > (uint64_t)k && k < REDIS_ELEM_KEEP) {
        c->key = v->elem[k].data;
        c->key_len = v->elem[k].len;
    }
    if (in_list(container_commands, name) && v->nchildren > 1) {
        size_t m = v->elem[1].len < REDIS_NAME_MAX - 1 ? v->elem[1].len : REDIS_NAME_MAX - 1;
        for (size_t i = 0; i < m; i++) sub[i] = (char)toupper((unsigned char)v->elem[1].data[i]);
        sub[m] = '\0';
        c->sub = sub;
        c->sub_len = m;
    }
    c->body = v->cap;
    c->body_len = v->cap_len;
    c->nargs = v->nchildren - 1;
    c->wire = v->wire;
    c->start_us = v->start_us;
    c->is_inline = v->is_inline;
    return true;
}

/* An entry for a command, request side only; NULL when out of memory (counted). */
static struct st_entry *cmd_entry(struct redis *s, const struct cmd *c)
{
    struct st_entry *e = new_entry(s);
    if (e == NULL) return NULL;
    e->start_us = c->start_us;
    e->end_us = c->start_us;
    e->request.present = true;
    e->request.method = st_arena_strndup(&e->arena, c->name, c->name_len);
    e->request.wire_bytes = c->wire;
    st_body_append(s->conn, e, &e->request.body, c->body, c->body_len);
    if (c->wire > c->body_len) {
        e->request.body.size += c->wire - c->body_len;
        e->request.body.truncated = true;
    }
    json_t *sec = e->section;
    json_object_set_new_nocheck(sec, "command", st_json_bytes_string(c->name, c->name_len));
    const char *key = NULL;
    if (c->key != NULL) {
        key = st_arena_strndup(&e->arena, c->key, c->key_len);
        e->request.path = key;
        json_object_set_new_nocheck(sec, "key", st_json_bytes_string(c->key, c->key_len));
    }
    if (c->sub != NULL)
        json_object_set_new_nocheck(sec, "subcommand", st_json_bytes_string(c->sub, c->sub_len));
    set_int(sec, "args", (json_int_t)c->nargs);
    if (c->is_inline) json_object_set_new_nocheck(sec, "inline", json_true());
    if (key) st_entry_set_summary(e, "%s %s", c->name, key);
    else if (c->sub) st_entry_set_summary(e, "%s %s", c->name, c->sub);
    else st_entry_set_summary(e, "%s", c->name);
    return e;
}

static void reply_into(struct redis *s, struct st_entry *e, const struct value *v, uint64_t now_us)
{
    e->response.present = true;
    e->response.wire_bytes += v->wire;
    take_body(s, e, &e->response.body, v);
    e->end_us = now_us;
    if (json_object_get(e->section, "replyType") != NULL) return; /* later confirmations */
    json_object_set_new_nocheck(e->section, "replyType", json_string_nocheck(reply_type_name(v->type)));
    const char *text = render_text(e, v);
    if (text) json_object_set_new_nocheck(e->section, "reply", st_json_bytes_string(text, strlen(text)));
    if ((v->type == '-' || v->type == '!') && text) st_entry_set_error(e, "%s", text);
}

static void emit(struct redis *s, struct st_entry *e)
{
    st_conn_emit(s->conn, e);
}

/* ------------------------------------------------------------ pending commands */

static struct pending *queue_head(struct redis *s)
{
    return s->qlen ? &s->q[s->qhead] : NULL;
}

static struct pending *queue_tail(struct redis *s)
{
    return s->qlen ? &s->q[(s->qhead + s->qlen - 1) % s->qcap] : NULL;
}

static void queue_pop(struct redis *s)
{
    struct pending *p = &s->q[s->qhead];
    st_conn_mem_refund(s->conn, p->charged);
    free(p->blob);
    st_entry_free(p->e); /* callers take the entry first */
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
}

/* Makes room for `want` slots in the ring, charging its growth. Returns 0 or the limit
 * that refused it. */
static int queue_reserve(struct redis *s, size_t want, enum st_parse_limit *why)
{
    if (want <= s->qcap) return 0;
    size_t cap = s->qcap ? s->qcap * 2 : 16;
    while (cap < want) cap *= 2;
    size_t grow = (cap - s->qcap) * sizeof(struct pending);
    if (st_conn_mem_charge(s->conn, grow) < 0) {
        *why = ST_LIMIT_CONN_MEMORY;
        return -1;
    }
    struct pending *q = malloc(cap * sizeof(*q));
    if (q == NULL) {
        st_conn_mem_refund(s->conn, grow);
        *why = ST_LIMIT_OUT_OF_MEMORY;
        return -1;
    }
    for (size_t i = 0; i < s->qlen; i++) q[i] = s->q[(s->qhead + i) % s->qcap];
    free(s->q);
    s->q = q;
    s->qhead = 0;
    s->qcap = cap;
    s->qcharged += grow;
    return 0;
}

/* Copies what the entry will need into p's blob; the body only when the connection's
 * memory allows (then metadata only). Returns 0 or the limit that refused it. */
static int pending_keep(struct redis *s, struct pending *p, const struct cmd *c,
                        enum st_parse_limit *why)
{
    size_t body_len = c->body_len;
    size_t strings = c->name_len + 1 + c->key_len + 1 + c->sub_len + 1;
    size_t charge = strings + body_len + 16; /* + the allocator's overhead */
    if (st_conn_mem_charge(s->conn, charge) < 0) {
        body_len = 0;
        charge = strings + 16;
        if (st_conn_mem_charge(s->conn, charge) < 0) {
            *why = ST_LIMIT_CONN_MEMORY;
            return -1;
        }
    }
    uint8_t *b = malloc(strings + body_len);
    if (b == NULL) {
        st_conn_mem_refund(s->conn, charge);
        *why = ST_LIMIT_OUT_OF_MEMORY;
        return -1;
    }
    size_t o = 0;
    memcpy(b + o, c->name, c->name_len);
    o += c->name_len;
    b[o++] = 0;
    if (c->key_len) memcpy(b + o, c->key, c->key_len);
    o += c->key_len;
    b[o++] = 0;
    if (c->sub_len) memcpy(b + o, c->sub, c->sub_len);
    o += c->sub_len;
    b[o++] = 0;
    if (body_len) memcpy(b + o, c->body, body_len);
    p->blob = b;
    p->charged = (uint32_t)charge;
    p->start_us = c->start_us;
    p->wire = c->wire;
    p->nargs = c->nargs > UINT32_MAX ? UINT32_MAX : (uint32_t)c->nargs;
    p->key_len = (uint32_t)c->key_len;
    p->body_len = (uint32_t)body_len;
    p->name_len = (uint8_t)c->name_len;
    p->sub_len = (uint8_t)c->sub_len;
    p->has_key = c->key != NULL;
    p->has_sub = c->sub != NULL;
    p->is_inline = c->is_inline;
    return 0;
}

/* The pending command's entry, made from its blob at the first reply. NULL when out of
 * memory (counted): the caller goes on without it. */
static struct st_entry *pending_entry(struct redis *s, struct pending *p)
{
    if (p->e != NULL || p->blob == NULL) return p->e;
    const char *b = (const char *)p->blob;
    struct cmd c = {
        .name = b,
        .name_len = p->name_len,
        .key = p->has_key ? b + p->name_len + 1 : NULL,
        .key_len = p->key_len,
        .sub = p->has_sub ? b + p->name_len + 1 + p->key_len + 1 : NULL,
        .sub_len = p->sub_len,
        .body = p->blob + p->name_len + 1 + p->key_len + 1 + p->sub_len + 1,
        .body_len = p->body_len,
        .nargs = p->nargs,
        .wire = p->wire,
        .start_us = p->start_us,
        .is_inline = p->is_inline,
    };
    p->e = cmd_entry(s, &c);
    free(p->blob);
    p->blob = NULL;
    st_conn_mem_refund(s->conn, p->charged);
    p->charged = 0;
    return p->e;
}

/* Takes the head's entry (made now if needed) and removes the head. */
static struct st_entry *queue_take(struct redis *s)
{
    struct pending *p = queue_head(s);
    struct st_entry *e = pending_entry(s, p);
    p->e = NULL;
    queue_pop(s);
    return e;
}

/* Replies the queue skips: appended to the gap at the tail, or a new gap. A slot for it
 * is always free: kept commands leave one (queue_push). */
static void queue_gap(struct redis *s, int64_t replies)
{
    struct pending *t = queue_tail(s);
    if (t != NULL && t->kind == K_GAP) {
        t->left += replies;
        return;
    }
    struct pending *p = &s->q[(s->qhead + s->qlen) % s->qcap];
    memset(p, 0, sizeof(*p));
    p->kind = K_GAP;
    p->left = replies;
    s->qlen++;
}

/* Queues a command for its reply. When a limit refuses it, its entry is made at once
 * without the reply (counted), and its reply will be skipped. */
static void queue_push(struct redis *s, const struct cmd *c, enum cmd_kind kind, int64_t left,
                       int hello_proto)
{
    enum st_parse_limit why = ST_LIMIT_PENDING;
    /* Two slots: this command and a gap that may have to follow it. */
    if (s->qlen + 2 <= REDIS_MAX_PENDING && queue_reserve(s, s->qlen + 2, &why) == 0) {
        struct pending *p = &s->q[(s->qhead + s->qlen) % s->qcap];
        memset(p, 0, sizeof(*p));
        if (pending_keep(s, p, c, &why) == 0) {
            p->kind = (uint8_t)kind;
            p->left = left;
            p->hello_proto = (int8_t)hello_proto;
            s->qlen++;
            return;
        }
    }
    struct st_entry *e = cmd_entry(s, c);
    if (e != NULL) {
        st_entry_set_error(e, "reply not tracked: %s",
                           why == ST_LIMIT_CONN_MEMORY ? "the connection's parser memory is full"
                           : why == ST_LIMIT_PENDING   ? "too many commands awaiting replies"
                                                       : "out of memory");
        st_conn_count_unanswered(s->conn, why, 1);
        emit(s, e);
    }
    /* Its replies: one per channel for subscriptions, else one. */
    queue_gap(s, kind == K_SUBSCRIBE || kind == K_UNSUBSCRIBE ? (left > 0 ? left : 1) : 1);
}

static void on_command(struct redis *s, const struct value *v, bool from_master)
{
    char name[REDIS_NAME_MAX], sub[REDIS_NAME_MAX];
    struct cmd c;
    if (!cmd_from_value(&c, v, name, sub)) return;
    const char *cmd = name;
    bool no_reply = false;
    if (from_master || s->replication) {
        no_reply = true;
    } else if (strcmp(cmd, "REPLCONF") == 0 && (elem_is(v, 1, "ACK") || elem_is(v, 1, "GETACK"))) {
        no_reply = true;
    } else if (strcmp(cmd, "CLIENT") == 0 && elem_is(v, 1, "REPLY")) {
        if (elem_is(v, 2, "ON")) {
            s->reply_off = false;
            s->reply_skip = 0;
        } else if (elem_is(v, 2, "OFF")) {
            s->reply_off = true;
            no_reply = true;
        } else if (elem_is(v, 2, "SKIP")) {
            if (!s->reply_off) s->reply_skip = 2; /* this command and the next */
        }
    }
    if (!from_master && !s->replication) {
        if (s->reply_off) no_reply = true;
        if (s->reply_skip > 0) {
            s->reply_skip--;
            no_reply = true;
        }
    }
    if (no_reply) {
        struct st_entry *e = cmd_entry(s, &c);
        if (e == NULL) return;
        if (from_master || s->replication) {
            /* The replication stream: the master's commands, the replica's ACKs. */
            json_object_set_new_nocheck(e->section, "replication", json_true());
        } else {
            json_object_set_new_nocheck(e->section, "noReply", json_true());
        }
        emit(s, e);
        return;
    }
    enum cmd_kind kind = K_NORMAL;
    int64_t left = 1;
    int64_t channels = (int64_t)v->nchildren - 1;
    if (!strcmp(cmd, "SUBSCRIBE") || !strcmp(cmd, "PSUBSCRIBE") || !strcmp(cmd, "SSUBSCRIBE")) {
        kind = K_SUBSCRIBE;
        left = channels > 0 ? channels : 1;
    } else if (!strcmp(cmd, "UNSUBSCRIBE") || !strcmp(cmd, "PUNSUBSCRIBE") ||
               !strcmp(cmd, "SUNSUBSCRIBE")) {
        kind = K_UNSUBSCRIBE;
        left = channels > 0 ? channels : -1;
    } else if (!strcmp(cmd, "MONITOR")) {
        kind = K_MONITOR;
    } else if (!strcmp(cmd, "PSYNC") || !strcmp(cmd, "SYNC")) {
        kind = K_SYNC;
    } else if (!strcmp(cmd, "HELLO")) {
        kind = K_HELLO;
    } else if (!strcmp(cmd, "RESET")) {
        kind = K_RESET;
    }
    int hello = kind == K_HELLO ? (int)elem_int(v, 1) : 0;
    queue_push(s, &c, kind, left, hello == 2 || hello == 3 ? hello : 0);
}

static bool is_confirmation(const struct value *v)
{
    static const char *const kinds[] = {"subscribe", "psubscribe", "ssubscribe", "unsubscribe",
                                        "punsubscribe", "sunsubscribe", NULL};
    for (const char *const *k = kinds; *k; k++)
        if (elem_is(v, 0, *k)) return true;
    return false;
}

static bool is_message(const struct value *v)
{
    return elem_is(v, 0, "message") || elem_is(v, 0, "pmessage") || elem_is(v, 0, "smessage");
}

/* A server push (pub/sub message, RESP3 push, MONITOR line): an entry of its own. */
static void on_push(struct redis *s, const struct value *v, uint64_t now_us)
{
    struct st_entry *e = new_entry(s);
    if (e == NULL) return;
    e->start_us = v->start_us;
    reply_into(s, e, v, now_us);
    json_t *sec = e->section;
    if (v->type == '+') { /* MONITOR: +1700000000.123456 [0 127.0.0.1:5000] "SET" "k" "v" */
        json_object_set_new_nocheck(sec, "push", json_string_nocheck("monitor"));
        const char *line = v->render;
        size_t n = v->render_len;
        const char *b = memchr(line, ']', n);
        size_t off = b && (size_t)(b - line) + 2 <= n ? (size_t)(b - line) + 2 : 0;
        st_entry_set_summary(e, "monitor %.*s", (int)(n - off > 80 ? 80 : n - off), line + off);
        emit(s, e);
        return;
    }
    char kind[32] = "push";
    if (v->nchildren > 0 && !v->elem[0].is_int) {
        size_t n = v->elem[0].len < sizeof(kind) - 1 ? v->elem[0].len : sizeof(kind) - 1;
        memcpy(kind, v->elem[0].data, n);
        kind[n] = '\0';
    }
    json_object_set_new_nocheck(sec, "push", st_json_bytes_string(kind, strlen(kind)));
    bool pattern = elem_is(v, 0, "pmessage");
    int ch = pattern ? 2 : 1;
    if (pattern && v->nchildren > 1)
        json_object_set_new_nocheck(sec, "pattern", st_json_bytes_string(v->elem[1].data, v->elem[1].len));
    if (is_message(v) && v->nchildren > (uint64_t)ch) {
        const struct elem *c = &v->elem[ch];
        json_object_set_new_nocheck(sec, "channel", st_json_bytes_string(c->data, c->len));
        st_entry_set_summary(e, "%s %.*s", kind, (int)c->len, c->data);
    } else {
        st_entry_set_summary(e, "%s", kind);
    }
    emit(s, e);
}

/* PSYNC/SYNC's RDB payload starts when the head command is a sync that got
 * +FULLRESYNC (or SYNC, whose reply is the payload itself). */
static bool redis_rdb_starts(struct redis *s)
{
    if (s->rdb_expected && s->sync_entry != NULL) return true;
    struct pending *p = queue_head(s);
    if (p != NULL && p->kind == K_SYNC) {
        s->sync_entry = queue_take(s);
        s->rdb_expected = true;
        return true;
    }
    return false;
}

static void redis_rdb_done(struct redis *s, uint64_t now_us)
{
    struct reader *r = &s->rd[ST_DIR_TO_CLIENT];
    struct st_entry *e = s->sync_entry;
    s->sync_entry = NULL;
    s->rdb_expected = false;
    s->replication = true;
    if (e == NULL) return;
    e->response.present = true;
    e->response.wire_bytes += r->rdb_wire;
    e->response.body.size += r->rdb_wire;
    if (e->response.body.size > e->response.body.len) e->response.body.truncated = true;
    e->end_us = now_us;
    if (json_object_get(e->section, "replyType") == NULL)
        json_object_set_new_nocheck(e->section, "replyType", json_string_nocheck("rdb"));
    set_int(e->section, "rdbBytes", (json_int_t)r->rdb_bytes);
    emit(s, e);
}

static void on_reply(struct redis *s, const struct value *v, uint64_t now_us)
{
    struct pending *p = queue_head(s);
    bool gap = p != NULL && p->kind == K_GAP;
    bool confirmation = (v->type == '>' || v->type == '*') && is_confirmation(v);
    if (confirmation && p != NULL && (p->kind == K_SUBSCRIBE || p->kind == K_UNSUBSCRIBE)) {
        struct st_entry *e = pending_entry(s, p);
        if (e != NULL) reply_into(s, e, v, now_us);
        int64_t count = v->nchildren > 2 && v->elem[2].is_int ? elem_int(v, 2) : 0;
        s->subscribed = count > 0;
        if (p->left > 0) p->left--;
        if (p->left == 0 || (p->left < 0 && count <= 0)) {
            e = queue_take(s);
            if (e != NULL) emit(s, e);
        }
        return;
    }
    if ((v->type == '>' && !(gap && confirmation)) ||
        (s->subscribed && v->type == '*' && is_message(v)) ||
        (s->monitor && v->type == '+' && (p == NULL || p->kind != K_MONITOR))) {
        on_push(s, v, now_us);
        return;
    }
    if (gap) {
        /* The reply of a command whose entry went out without it. */
        if (confirmation) s->subscribed = v->nchildren > 2 && elem_int(v, 2) > 0;
        if (--p->left <= 0) queue_pop(s);
        return;
    }
    if (p == NULL) {
        /* A reply nobody asked for (we joined late, or the client's command was not
         * understood): keep it visible. */
        struct st_entry *e = new_entry(s);
        if (e == NULL) return;
        e->start_us = v->start_us;
        reply_into(s, e, v, now_us);
        if (e->error == NULL) st_entry_set_error(e, "reply without a command");
        st_entry_set_summary(e, "reply %s", reply_type_name(v->type));
        emit(s, e);
        return;
    }
    enum cmd_kind kind = p->kind;
    int hello_proto = p->hello_proto;
    struct st_entry *e = queue_take(s); /* NULL: out of memory, counted; state goes on */
    bool ok = v->type != '-' && v->type != '!';
    if (e != NULL) reply_into(s, e, v, now_us);
    if (kind == K_SYNC && ok && v->type == '+' && v->render_len >= 11 &&
        memcmp(v->render, "FULLRESYNC ", 11) == 0) {
        /* The RDB payload follows; the entry ends with it. */
        s->sync_entry = e;
        s->rdb_expected = true;
        return;
    }
    if (kind == K_SYNC && ok && v->type == '+' && v->render_len >= 8 &&
        memcmp(v->render, "CONTINUE", 8) == 0)
        s->replication = true;
    if (kind == K_MONITOR && ok) s->monitor = true;
    if (kind == K_HELLO && ok && hello_proto != 0) {
        s->resp3 = hello_proto == 3;
        if (e != NULL) e->proto_version = s->resp3 ? "RESP3" : "RESP2";
    }
    if (kind == K_RESET && ok) {
        s->resp3 = false;
        s->subscribed = false;
        s->monitor = false;
        if (e != NULL) e->proto_version = "RESP2";
    }
    if (e != NULL) emit(s, e);
}

static int redis_on_value(struct redis *s, enum st_dir dir, uint64_t now_us)
{
    const struct value *v = &s->rd[dir].v;
    if (dir == ST_DIR_TO_SERVER) {
        if (v->type != '*' && v->type != 'i') {
            st_conn_fail(s->conn, "redis: client sent a RESP %s, not a command",
                         reply_type_name(v->type));
            return -1;
        }
        on_command(s, v, false);
    } else if (s->replication && v->type == '*') {
        on_command(s, v, true);
    } else {
        on_reply(s, v, now_us);
    }
    return 0;
}

/* ------------------------------------------------------------ module ops */

static void *redis_create(struct st_conn *conn)
{
    struct redis *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    if (st_conn_mem_charge(conn, sizeof(*s)) < 0) {
        free(s);
        return NULL;
    }
    s->conn = conn;
    enum st_parse_limit why;
    if (queue_reserve(s, 16, &why) < 0) { /* a gap always finds a slot (queue_gap) */
        st_conn_mem_refund(conn, sizeof(*s));
        free(s);
        return NULL;
    }
    for (int d = 0; d < 2; d++) {
        s->rd[d].dir = (enum st_dir)d;
        s->rd[d].cur_elem = -1;
        s->rd[d].hr = hr_new(&s->rd[d]);
    }
    return s;
}

static int redis_feed(void *state, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                      size_t len, uint64_t now_us)
{
    struct redis *s = state;
    (void)conn;
    return reader_feed(s, &s->rd[dir], data, len, now_us);
}

static void redis_close(void *state, struct st_conn *conn, enum st_close_reason reason,
                        uint64_t now_us)
{
    struct redis *s = state;
    (void)conn;
    const char *why = reason == ST_CLOSE_RESET     ? "connection reset before the reply"
                      : reason == ST_CLOSE_TIMEOUT ? "connection timed out before the reply"
                                                   : "connection closed before the reply";
    if (s->sync_entry != NULL) {
        struct st_entry *e = s->sync_entry;
        s->sync_entry = NULL;
        e->end_us = now_us;
        st_entry_set_error(e, "connection closed during the RDB transfer");
        emit(s, e);
    }
    while (s->qlen > 0) {
        if (queue_head(s)->kind == K_GAP) { /* their entries are out already */
            queue_pop(s);
            continue;
        }
        struct st_entry *e = queue_take(s);
        if (e == NULL) continue;
        if (!e->response.present) {
            e->end_us = now_us;
            st_entry_set_error(e, "%s", why);
        }
        emit(s, e);
    }
}

static void redis_destroy(void *state)
{
    struct redis *s = state;
    if (s == NULL) return;
    /* Commands left here (close() emits them all) were waiting when parsing stopped. */
    uint64_t lost = s->sync_entry != NULL;
    while (s->qlen > 0) {
        struct pending *p = queue_head(s);
        if (p->kind != K_GAP && (p->e != NULL || p->blob != NULL)) lost++;
        queue_pop(s);
    }
    if (lost) st_conn_count_dropped(s->conn, ST_LIMIT_PARSE_STOPPED, lost);
    st_conn_mem_refund(s->conn, s->qcharged);
    free(s->q);
    st_entry_free(s->sync_entry);
    for (int d = 0; d < 2; d++) {
        free(s->rd[d].v.cap);
        free(s->rd[d].pend);
        if (s->rd[d].hr) redisReaderFree(s->rd[d].hr);
    }
    free(s);
}

const struct st_proto_ops st_redis_ops = {
    .proto = ST_PROTO_REDIS,
    .create = redis_create,
    .feed = redis_feed,
    .close = redis_close,
    .destroy = redis_destroy,
};
