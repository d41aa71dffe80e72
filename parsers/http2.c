/* http2.c - HTTP/2 over cleartext (prior knowledge h2c, or after an HTTP/1.1 Upgrade),
 * and gRPC on top of it (grpc.c).
 *
 * We see both directions but are neither endpoint, so nghttp2's session API (which wants
 * to be one of the peers and answer SETTINGS/PING/flow control) is not used. Instead our
 * own frame splitter walks each direction, and one nghttp2_hd_inflater per direction
 * decodes the header blocks: every block of the connection passes through it in order, so
 * the HPACK dynamic table stays in step with the real peers'. DATA payloads stream
 * through without being buffered; only header blocks are reassembled (HEADERS +
 * CONTINUATION), within a cap.
 *
 * One entry per stream: the request (pseudo-headers become method/url/path, other headers
 * are kept), the response (:status, headers, trailers merged), bodies within the body
 * cap. A stream ends when the response ends (END_STREAM), on RST_STREAM, on a GOAWAY that
 * excludes it, or at close; the last three set `error`. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "entry_json.h"
#include "grpc.h"
#include "proto.h"

#define H2_MAX_STREAMS 256            /* open streams tracked; more are not recorded */
#define H2_MAX_HEADER_BLOCK (64 * 1024) /* reassembled HEADERS+CONTINUATION payload */
#define H2_MAX_CONTINUATIONS 512      /* CONTINUATION frames in one block */
#define H2_MAX_HEADER_BYTES (64 * 1024) /* decoded header bytes kept per message */
#define H2_HPACK_TABLE (64 * 1024)    /* decoder table size we accept from the start */
#define H2_HPACK_TABLE_MAX (1024 * 1024) /* largest SETTINGS_HEADER_TABLE_SIZE we follow */

enum {
    FT_DATA = 0,
    FT_HEADERS = 1,
    FT_PRIORITY = 2,
    FT_RST_STREAM = 3,
    FT_SETTINGS = 4,
    FT_PUSH_PROMISE = 5,
    FT_PING = 6,
    FT_GOAWAY = 7,
    FT_WINDOW_UPDATE = 8,
    FT_CONTINUATION = 9,
};

enum {
    FL_END_STREAM = 0x1,
    FL_END_HEADERS = 0x4,
    FL_PADDED = 0x8,
    FL_PRIORITY = 0x20,
};

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

enum side_state { SIDE_IDLE, SIDE_HEADERS, SIDE_DONE };

struct h2_stream {
    int32_t id;
    struct st_entry *e;
    size_t charged;
    enum side_state req, resp;
    bool grpc;
    bool pushed;            /* promised by the server (PUSH_PROMISE) */
    bool resp_final;        /* a final (non-1xx) response header block was seen */
    size_t header_bytes[2]; /* decoded header bytes kept, per side */
    bool headers_cut[2];
    const char *authority, *scheme;
    struct st_grpc_msgs msgs[2];
};

struct h2_dir {
    nghttp2_hd_inflater *inf;
    size_t table_max;    /* the inflater's maximum table size */
    size_t table_charged;
    size_t preface_got;  /* client side: bytes of the connection preface seen */
    uint8_t hdr[9];
    size_t hdr_len;
    /* the frame being read */
    uint32_t len;
    uint8_t type, flags;
    int32_t sid;
    uint32_t got;        /* payload bytes consumed */
    uint32_t content_start, content_end; /* payload range without pad length/priority/padding */
    bool range_known;
    uint8_t ctl[8];      /* the first payload bytes (RST_STREAM, GOAWAY, PUSH_PROMISE...) */
    uint8_t setting[6];
    uint8_t setting_len;
    uint64_t frame_us;   /* time of the frame's first byte */
    /* header block being reassembled */
    bool in_block;
    int32_t block_sid, promised;
    uint8_t block_type;
    bool block_end_stream;
    unsigned continuations;
    uint64_t block_wire; /* bytes of the block's frames, headers included */
    uint8_t *block;
    size_t block_len, block_cap;
};

struct h2 {
    struct st_conn *conn;
    struct h2_dir dir[2];
    struct h2_stream *streams[H2_MAX_STREAMS];
    size_t nstreams;
    int32_t max_client_sid; /* highest client stream seen: lower ids are not new streams */
    uint64_t streams_dropped;
    uint64_t now_us;
};

/* ------------------------------------------------------------ streams */

static struct h2_stream *stream_find(struct h2 *h, int32_t id)
{
    for (size_t i = 0; i < h->nstreams; i++)
        if (h->streams[i]->id == id) return h->streams[i];
    return NULL;
}

static struct h2_stream *stream_new(struct h2 *h, int32_t id, struct st_entry *e)
{
    size_t cost = sizeof(struct h2_stream) + (e ? st_entry_mem(e) : 0);
    if (h->nstreams == H2_MAX_STREAMS || st_conn_mem_charge(h->conn, cost) < 0) {
        h->streams_dropped++;
        if (e != NULL) /* (without an entry, its loss was counted when it was made) */
            st_conn_count_dropped(h->conn, h->nstreams == H2_MAX_STREAMS ? ST_LIMIT_PENDING
                                                                       : ST_LIMIT_CONN_MEMORY, 1);
        st_entry_free(e);
        return NULL;
    }
    struct h2_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        st_conn_mem_refund(h->conn, cost);
        if (e != NULL) st_conn_count_dropped(h->conn, ST_LIMIT_OUT_OF_MEMORY, 1);
        st_entry_free(e);
        return NULL;
    }
    s->id = id;
    s->charged = cost;
    s->e = e;
    h->streams[h->nstreams++] = s;
    return s;
}

static void stream_remove(struct h2 *h, struct h2_stream *s)
{
    for (size_t i = 0; i < h->nstreams; i++) {
        if (h->streams[i] == s) {
            h->streams[i] = h->streams[--h->nstreams];
            break;
        }
    }
    st_conn_mem_refund(h->conn, s->charged);
    st_entry_free(s->e);
    free(s);
}

/* Completes and emits the stream's entry, then forgets the stream. `rst_code` >= 0 when
 * it was reset; `error` (may be NULL) says why it ended early. */
static void stream_finish(struct h2 *h, struct h2_stream *s, int64_t rst_code, const char *error)
{
    struct st_entry *e = s->e;
    s->e = NULL;
    if (e != NULL) {
        if (e->end_us < e->start_us || e->end_us == 0) e->end_us = h->now_us;
        if (s->grpc) {
            st_grpc_finish(e, s->id, s->authority, &s->msgs[0], &s->msgs[1], rst_code, error);
        } else {
            json_t *sec = json_object();
            if (sec != NULL) {
                json_object_set_new_nocheck(sec, "streamId", json_integer(s->id));
                if (s->authority)
                    json_object_set_new_nocheck(sec, "authority",
                                                st_json_bytes_string(s->authority, strlen(s->authority)));
                if (s->scheme)
                    json_object_set_new_nocheck(sec, "scheme",
                                                st_json_bytes_string(s->scheme, strlen(s->scheme)));
                if (s->pushed) json_object_set_new_nocheck(sec, "pushed", json_true());
                json_decref(e->section);
                e->section = sec;
                e->section_name = "http2";
            }
            if (rst_code >= 0)
                st_entry_set_error(e, "stream reset: %s", st_h2_error_name((uint32_t)rst_code));
            else if (error)
                st_entry_set_error(e, "%s", error);
            if (e->summary == NULL)
                st_entry_set_summary(e, "%s %s", e->request.method ? e->request.method : "?",
                                     e->request.path ? e->request.path : "?");
        }
        if (s->headers_cut[0] || s->headers_cut[1]) {
            json_t *sec = e->section;
            if (sec) json_object_set_new_nocheck(sec, "headersTruncated", json_true());
        }
        st_conn_emit(h->conn, e);
    }
    stream_remove(h, s);
}

/* ------------------------------------------------------------ headers */

static void add_query(struct st_entry *e, const char *q, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && q[end] != '&') end++;
        size_t eq = i;
        while (eq < end && q[eq] != '=') eq++;
        if (end > i) {
            /* percent-decoding and '+' as space, in place into a copy */
            char *name = st_arena_strndup(&e->arena, q + i, eq - i);
            char *val = st_arena_strndup(&e->arena, eq < end ? q + eq + 1 : "", eq < end ? end - eq - 1 : 0);
            if (name == NULL || val == NULL) return;
            char *parts[2] = {name, val};
            size_t lens[2];
            for (int p = 0; p < 2; p++) {
                char *s = parts[p], *o = s;
                for (; *s; s++) {
                    if (*s == '+') {
                        *o++ = ' ';
                    } else if (*s == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
                        char hex[3] = {s[1], s[2], 0};
                        *o++ = (char)strtol(hex, NULL, 16);
                        s += 2;
                    } else {
                        *o++ = *s;
                    }
                }
                lens[p] = (size_t)(o - parts[p]);
            }
            st_kv_list_add(e, &e->request.query, name, lens[0], val, lens[1]);
        }
        i = end + 1;
    }
}

static bool name_is(const nghttp2_nv *nv, const char *lit)
{
    size_t n = strlen(lit);
    return nv->namelen == n && memcmp(nv->name, lit, n) == 0;
}

/* One decoded header of a block from `dir` on stream `s`. `informational`: the block is
 * a 1xx response, whose fields are not kept. */
static void on_header(struct h2 *h, struct h2_stream *s, enum st_dir dir, const nghttp2_nv *nv,
                      bool *informational)
{
    struct st_entry *e = s->e;
    if (e == NULL || *informational) return;
    const char *name = (const char *)nv->name, *value = (const char *)nv->value;
    if (dir == ST_DIR_TO_SERVER) {
        if (name[0] == ':' && s->req == SIDE_IDLE) {
            if (name_is(nv, ":method")) {
                e->request.method = st_arena_strndup(&e->arena, value, nv->valuelen);
            } else if (name_is(nv, ":path")) {
                e->request.url = st_arena_strndup(&e->arena, value, nv->valuelen);
                const char *q = memchr(value, '?', nv->valuelen);
                size_t plen = q ? (size_t)(q - value) : nv->valuelen;
                e->request.path = st_arena_strndup(&e->arena, value, plen);
                if (q) add_query(e, q + 1, nv->valuelen - plen - 1);
            } else if (name_is(nv, ":authority")) {
                s->authority = st_arena_strndup(&e->arena, value, nv->valuelen);
            } else if (name_is(nv, ":scheme")) {
                s->scheme = st_arena_strndup(&e->arena, value, nv->valuelen);
            }
            return;
        }
        if (s->req == SIDE_IDLE && name_is(nv, "content-type") && st_grpc_is_content_type(value, nv->valuelen))
            s->grpc = true;
    } else {
        if (name[0] == ':') {
            if (name_is(nv, ":status") && !s->resp_final) {
                int status = 0;
                for (size_t i = 0; i < nv->valuelen && i < 3; i++)
                    status = status * 10 + (isdigit((unsigned char)value[i]) ? value[i] - '0' : 0);
                if (status >= 100 && status < 200) {
                    *informational = true; /* 100 Continue, 103 Early Hints */
                    return;
                }
                e->response.status = status;
            }
            return;
        }
    }
    int side = dir == ST_DIR_TO_SERVER ? 0 : 1;
    if (s->header_bytes[side] + nv->namelen + nv->valuelen > H2_MAX_HEADER_BYTES) {
        s->headers_cut[side] = true;
        return;
    }
    s->header_bytes[side] += nv->namelen + nv->valuelen;
    struct st_message *m = side == 0 ? &e->request : &e->response;
    st_conn_add_header(h->conn, e, &m->headers, name, nv->namelen, value, nv->valuelen);
}

/* Keeps the charge for both HPACK tables equal to what they hold. */
static void charge_tables(struct h2 *h)
{
    for (int d = 0; d < 2; d++) {
        struct h2_dir *x = &h->dir[d];
        size_t now = nghttp2_hd_inflate_get_dynamic_table_size(x->inf);
        if (now > x->table_charged) {
            if (st_conn_mem_charge(h->conn, now - x->table_charged) == 0) x->table_charged = now;
        } else if (now < x->table_charged) {
            st_conn_mem_refund(h->conn, x->table_charged - now);
            x->table_charged = now;
        }
    }
}

/* A complete header block from `dir`. Returns -1 after st_conn_fail(). */
static int decode_block(struct h2 *h, enum st_dir dir)
{
    struct h2_dir *x = &h->dir[dir];
    x->in_block = false;
    struct h2_stream *s = NULL;
    bool request_side = dir == ST_DIR_TO_SERVER;
    if (x->block_type == FT_PUSH_PROMISE) {
        /* The promise carries the request of a stream the server will answer. */
        struct st_entry *e = st_conn_entry_new(h->conn, ST_PROTO_HTTP2);
        if (e != NULL) {
            e->proto_version = "2";
            e->start_us = x->frame_us;
            e->request.present = true;
        }
        if (stream_find(h, x->promised) == NULL) {
            s = stream_new(h, x->promised, e);
        } else { /* a promise for a stream that exists: decode it, keep nothing */
            st_entry_free(e);
            s = NULL;
        }
        if (s != NULL) s->pushed = true;
        request_side = true;
    } else {
        s = stream_find(h, x->block_sid);
        if (s == NULL && dir == ST_DIR_TO_SERVER && (x->block_sid & 1) &&
            x->block_sid > h->max_client_sid) {
            h->max_client_sid = x->block_sid;
            struct st_entry *e = st_conn_entry_new(h->conn, ST_PROTO_HTTP2);
            if (e != NULL) {
                e->proto_version = "2";
                e->start_us = x->frame_us;
                e->request.present = true;
            }
            s = stream_new(h, x->block_sid, e);
        }
    }

    static const uint8_t empty[1];
    const uint8_t *in = x->block_len ? x->block : empty; /* an empty block is valid HPACK */
    size_t inlen = x->block_len;
    bool informational = false;
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(x->inf, &nv, &fl, (uint8_t *)in, inlen, 1);
        if (rv < 0) {
            st_conn_fail(h->conn, "http2: HPACK decoding failed on stream %d: %s", (int)x->block_sid,
                         nghttp2_strerror((int)rv));
            return -1;
        }
        in += rv;
        inlen -= (size_t)rv;
        if ((fl & NGHTTP2_HD_INFLATE_EMIT) && s != NULL) {
            enum st_dir as = request_side ? ST_DIR_TO_SERVER : ST_DIR_TO_CLIENT;
            on_header(h, s, as, &nv, &informational);
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(x->inf);
            break;
        }
        if (inlen == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT)) {
            st_conn_fail(h->conn, "http2: truncated header block on stream %d", (int)x->block_sid);
            return -1;
        }
    }
    charge_tables(h);
    if (s != NULL && s->e != NULL) {
        if (request_side) s->e->request.wire_bytes += x->block_wire;
        else s->e->response.wire_bytes += x->block_wire;
    }
    if (x->block_len > 16 * 1024) { /* give big blocks' memory back */
        st_conn_mem_refund(h->conn, x->block_cap);
        free(x->block);
        x->block = NULL;
        x->block_cap = 0;
    }
    x->block_len = 0;
    if (s == NULL || s->e == NULL) return 0;

    if (x->block_type == FT_PUSH_PROMISE) {
        s->req = SIDE_DONE;
        return 0;
    }
    if (dir == ST_DIR_TO_SERVER) {
        s->req = x->block_end_stream ? SIDE_DONE : SIDE_HEADERS;
        if (s->grpc) s->e->proto = ST_PROTO_GRPC;
    } else if (!informational) {
        s->e->response.present = true;
        s->resp_final = true;
        s->resp = SIDE_HEADERS;
        if (x->block_end_stream) {
            s->resp = SIDE_DONE;
            s->e->end_us = h->now_us;
            stream_finish(h, s, -1, NULL);
        }
    }
    return 0;
}

/* ------------------------------------------------------------ frames */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *frame_name(uint8_t type)
{
    static const char *const names[] = {"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS",
                                        "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE",
                                        "CONTINUATION"};
    return type < 10 ? names[type] : "unknown";
}

/* The frame header is complete. Returns -1 after st_conn_fail(). */
static int frame_begin(struct h2 *h, enum st_dir dir)
{
    struct h2_dir *x = &h->dir[dir];
    x->len = (uint32_t)x->hdr[0] << 16 | (uint32_t)x->hdr[1] << 8 | x->hdr[2];
    x->type = x->hdr[3];
    x->flags = x->hdr[4];
    x->sid = (int32_t)(be32(x->hdr + 5) & 0x7fffffff);
    x->got = 0;
    x->range_known = false;
    x->setting_len = 0;
    memset(x->ctl, 0, sizeof(x->ctl));
    if (x->in_block && x->type != FT_CONTINUATION) {
        st_conn_fail(h->conn, "http2: %s frame inside a header block of stream %d",
                     frame_name(x->type), (int)x->block_sid);
        return -1;
    }
    switch (x->type) {
    case FT_HEADERS:
    case FT_PUSH_PROMISE:
        if (x->sid == 0) goto bad_stream;
        x->in_block = true;
        x->block_sid = x->sid;
        x->block_type = x->type;
        x->block_end_stream = x->type == FT_HEADERS && (x->flags & FL_END_STREAM);
        x->block_len = 0;
        x->block_wire = 0;
        x->continuations = 0;
        break;
    case FT_CONTINUATION:
        if (!x->in_block || x->sid != x->block_sid) {
            st_conn_fail(h->conn, "http2: unexpected CONTINUATION on stream %d", (int)x->sid);
            return -1;
        }
        if (++x->continuations > H2_MAX_CONTINUATIONS) {
            st_conn_fail(h->conn, "http2: more than %d CONTINUATION frames in one header block",
                         H2_MAX_CONTINUATIONS);
            return -1;
        }
        break;
    case FT_DATA:
        if (x->sid == 0) goto bad_stream;
        break;
    case FT_SETTINGS:
        if ((x->flags & 1) == 0 && x->len % 6 != 0) {
            st_conn_fail(h->conn, "http2: SETTINGS length %u is not a multiple of 6", x->len);
            return -1;
        }
        break;
    default:
        break;
    }
    return 0;
bad_stream:
    st_conn_fail(h->conn, "http2: %s frame on stream 0", frame_name(x->type));
    return -1;
}

/* Where the frame's content lies once its first byte (pad length) is known. */
static int frame_range(struct h2 *h, struct h2_dir *x)
{
    uint32_t start = 0, pad = 0;
    bool paddable = x->type == FT_DATA || x->type == FT_HEADERS || x->type == FT_PUSH_PROMISE;
    if (paddable && (x->flags & FL_PADDED)) {
        start = 1;
        pad = x->ctl[0];
    }
    if (x->type == FT_HEADERS && (x->flags & FL_PRIORITY)) start += 5;
    if (x->type == FT_PUSH_PROMISE) start += 4;
    if ((uint64_t)start + pad > x->len) {
        st_conn_fail(h->conn, "http2: %s frame of %u bytes with %u bytes of padding",
                     frame_name(x->type), x->len, pad);
        return -1;
    }
    x->content_start = start;
    x->content_end = x->len - pad;
    x->range_known = true;
    return 0;
}

static int block_append(struct h2 *h, struct h2_dir *x, const uint8_t *p, size_t n)
{
    if (x->block_len + n > H2_MAX_HEADER_BLOCK) {
        st_conn_fail(h->conn, "http2: header block of stream %d larger than %d bytes",
                     (int)x->block_sid, H2_MAX_HEADER_BLOCK);
        return -1;
    }
    if (x->block_len + n > x->block_cap) {
        size_t cap = x->block_cap ? x->block_cap : 1024;
        while (cap < x->block_len + n) cap *= 2;
        if (cap > H2_MAX_HEADER_BLOCK) cap = H2_MAX_HEADER_BLOCK;
        if (st_conn_mem_charge(h->conn, cap - x->block_cap) < 0) {
            st_conn_fail(h->conn, "http2: out of parser memory for a header block");
            return -1;
        }
        uint8_t *b = realloc(x->block, cap);
        if (b == NULL) {
            st_conn_mem_refund(h->conn, cap - x->block_cap);
            st_conn_fail(h->conn, "http2: out of memory");
            return -1;
        }
        x->block = b;
        x->block_cap = cap;
    }
    memcpy(x->block + x->block_len, p, n);
    x->block_len += n;
    return 0;
}

static void on_setting(struct h2 *h, enum st_dir dir, uint16_t id, uint32_t value)
{
    if (id != 1) return; /* SETTINGS_HEADER_TABLE_SIZE: for the other side's encoder */
    struct h2_dir *peer = &h->dir[dir == ST_DIR_TO_SERVER ? ST_DIR_TO_CLIENT : ST_DIR_TO_SERVER];
    if (value <= peer->table_max) return;
    if (value > H2_HPACK_TABLE_MAX) value = H2_HPACK_TABLE_MAX;
    if (nghttp2_hd_inflate_change_table_size(peer->inf, value) == 0) peer->table_max = value;
}

/* DATA payload bytes of a stream. */
static void on_data(struct h2 *h, enum st_dir dir, int32_t sid, const uint8_t *p, size_t n)
{
    struct h2_stream *s = stream_find(h, sid);
    if (s == NULL || s->e == NULL || n == 0) return;
    struct st_message *m = dir == ST_DIR_TO_SERVER ? &s->e->request : &s->e->response;
    if (s->grpc) st_grpc_data(h->conn, s->e, &m->body, &s->msgs[dir == ST_DIR_TO_SERVER ? 0 : 1], p, n);
    else st_body_append(h->conn, s->e, &m->body, p, n);
}

/* Payload bytes [x->got, x->got + n) of the current frame. */
static int frame_payload(struct h2 *h, enum st_dir dir, const uint8_t *p, size_t n)
{
    struct h2_dir *x = &h->dir[dir];
    for (size_t i = 0; i < n && x->got + i < sizeof(x->ctl); i++) x->ctl[x->got + i] = p[i];
    if (!x->range_known && frame_range(h, x) < 0) return -1;
    /* the part of [got, got+n) that is content */
    uint32_t from = x->got, to = x->got + (uint32_t)n;
    uint32_t cs = from > x->content_start ? from : x->content_start;
    uint32_t ce = to < x->content_end ? to : x->content_end;
    if (cs >= ce) return 0;
    const uint8_t *c = p + (cs - from);
    size_t cn = ce - cs;
    switch (x->type) {
    case FT_DATA:
        on_data(h, dir, x->sid, c, cn);
        break;
    case FT_HEADERS:
    case FT_PUSH_PROMISE:
    case FT_CONTINUATION:
        return block_append(h, x, c, cn);
    case FT_SETTINGS:
        if (x->flags & 1) break; /* ACK */
        for (size_t i = 0; i < cn; i++) {
            x->setting[x->setting_len++] = c[i];
            if (x->setting_len == 6) {
                on_setting(h, dir, (uint16_t)(x->setting[0] << 8 | x->setting[1]), be32(x->setting + 2));
                x->setting_len = 0;
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

static void add_wire(struct h2 *h, enum st_dir dir, int32_t sid, uint64_t bytes)
{
    struct h2_stream *s = stream_find(h, sid);
    if (s == NULL || s->e == NULL) return;
    if (dir == ST_DIR_TO_SERVER) s->e->request.wire_bytes += bytes;
    else s->e->response.wire_bytes += bytes;
}

/* GOAWAY from `dir`: streams the sender will not process end with an error. */
static void on_goaway(struct h2 *h, enum st_dir dir, int32_t last, uint32_t code)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "connection going away (GOAWAY %s, last stream %d)",
             st_h2_error_name(code), (int)last);
    for (size_t i = 0; i < h->nstreams;) {
        struct h2_stream *s = h->streams[i];
        /* The server's GOAWAY covers client-initiated (odd) streams, and vice versa. */
        bool initiated_by_peer = dir == ST_DIR_TO_CLIENT ? (s->id & 1) : !(s->id & 1);
        if (initiated_by_peer && s->id > last) {
            stream_finish(h, s, -1, msg);
            continue; /* the array shrank into slot i */
        }
        i++;
    }
}

/* The frame's payload is complete. Returns -1 after st_conn_fail(). */
static int frame_end(struct h2 *h, enum st_dir dir)
{
    struct h2_dir *x = &h->dir[dir];
    if (!x->range_known && frame_range(h, x) < 0) return -1; /* empty payload */
    uint64_t wire = 9 + (uint64_t)x->len;
    switch (x->type) {
    case FT_DATA: {
        add_wire(h, dir, x->sid, wire);
        if (x->flags & FL_END_STREAM) {
            struct h2_stream *s = stream_find(h, x->sid);
            if (s == NULL) break;
            if (dir == ST_DIR_TO_SERVER) {
                s->req = SIDE_DONE;
            } else {
                s->resp = SIDE_DONE;
                if (s->e) s->e->end_us = h->now_us;
                stream_finish(h, s, -1, NULL);
            }
        }
        break;
    }
    case FT_HEADERS:
    case FT_CONTINUATION:
    case FT_PUSH_PROMISE:
        if (x->type == FT_PUSH_PROMISE) x->promised = (int32_t)(be32(x->ctl + (x->flags & FL_PADDED ? 1 : 0)) & 0x7fffffff);
        x->block_wire += wire;
        if (x->flags & FL_END_HEADERS) return decode_block(h, dir);
        break;
    case FT_RST_STREAM: {
        if (x->len != 4) {
            st_conn_fail(h->conn, "http2: RST_STREAM of %u bytes", x->len);
            return -1;
        }
        struct h2_stream *s = stream_find(h, x->sid);
        if (s == NULL) break;
        add_wire(h, dir, x->sid, wire);
        if (s->e) s->e->end_us = h->now_us;
        stream_finish(h, s, be32(x->ctl), NULL);
        break;
    }
    case FT_GOAWAY:
        if (x->len < 8) {
            st_conn_fail(h->conn, "http2: GOAWAY of %u bytes", x->len);
            return -1;
        }
        on_goaway(h, dir, (int32_t)(be32(x->ctl) & 0x7fffffff), be32(x->ctl + 4));
        break;
    default:
        break;
    }
    return 0;
}

static int h2_feed(void *state, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                   size_t len, uint64_t now_us)
{
    struct h2 *h = state;
    struct h2_dir *x = &h->dir[dir];
    (void)conn;
    h->now_us = now_us;
    size_t i = 0;
    while (i < len) {
        if (dir == ST_DIR_TO_SERVER && x->preface_got < H2_PREFACE_LEN) {
            size_t n = H2_PREFACE_LEN - x->preface_got;
            if (n > len - i) n = len - i;
            if (memcmp(data + i, h2_preface + x->preface_got, n) != 0) {
                st_conn_fail(h->conn, "http2: the client did not send the connection preface");
                return -1;
            }
            x->preface_got += n;
            i += n;
            continue;
        }
        if (x->hdr_len < 9) {
            if (x->hdr_len == 0) x->frame_us = now_us;
            size_t n = 9 - x->hdr_len;
            if (n > len - i) n = len - i;
            memcpy(x->hdr + x->hdr_len, data + i, n);
            x->hdr_len += n;
            i += n;
            if (x->hdr_len < 9) break;
            if (frame_begin(h, dir) < 0) return -1;
            if (x->len > 0) continue;
        } else {
            size_t n = x->len - x->got;
            if (n > len - i) n = len - i;
            if (frame_payload(h, dir, data + i, n) < 0) return -1;
            x->got += (uint32_t)n;
            i += n;
            if (x->got < x->len) break;
        }
        x->hdr_len = 0;
        if (frame_end(h, dir) < 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ module ops */

static void h2_destroy(void *state);

static void *h2_create(struct st_conn *conn)
{
    struct h2 *h = calloc(1, sizeof(*h));
    if (h == NULL) return NULL;
    h->conn = conn;
    for (int d = 0; d < 2; d++) {
        if (nghttp2_hd_inflate_new(&h->dir[d].inf) != 0) goto fail;
        /* Peers often advertise a larger table than the protocol's 4096 default (nghttpd
         * -c, grpc-go); accept one up to H2_HPACK_TABLE at once, follow SETTINGS above. */
        if (nghttp2_hd_inflate_change_table_size(h->dir[d].inf, H2_HPACK_TABLE) != 0) goto fail;
        h->dir[d].table_max = H2_HPACK_TABLE;
    }
    if (st_conn_mem_charge(conn, sizeof(*h)) < 0) goto fail;

    /* After an HTTP/1.1 Upgrade: h2c, the upgrade request is stream 1, already sent. */
    struct st_entry *up = st_conn_take_handover(conn);
    if (up != NULL) {
        up->proto = ST_PROTO_HTTP2;
        if (up->proto_version == NULL) up->proto_version = "2";
        struct h2_stream *s = stream_new(h, 1, up);
        h->max_client_sid = 1;
        if (s != NULL) {
            s->req = SIDE_DONE;
            const struct st_kv *host = st_kv_list_find(&up->request.headers, "host");
            if (host) s->authority = st_arena_strndup(&up->arena, host->value, host->value_len);
            s->scheme = "http";
            const struct st_kv *ct = st_kv_list_find(&up->request.headers, "content-type");
            if (ct && st_grpc_is_content_type(ct->value, ct->value_len)) {
                s->grpc = true;
                up->proto = ST_PROTO_GRPC;
            }
        }
    }
    return h;
fail:
    h2_destroy(h);
    return NULL;
}

static void h2_close(void *state, struct st_conn *conn, enum st_close_reason reason,
                     uint64_t now_us)
{
    struct h2 *h = state;
    (void)conn;
    h->now_us = now_us;
    const char *how = reason == ST_CLOSE_RESET     ? "connection reset"
                      : reason == ST_CLOSE_TIMEOUT ? "connection timed out"
                                                   : "connection closed";
    /* Oldest stream first, so entries come out in stream order. */
    while (h->nstreams > 0) {
        size_t min = 0;
        for (size_t i = 1; i < h->nstreams; i++)
            if (h->streams[i]->id < h->streams[min]->id) min = i;
        struct h2_stream *s = h->streams[min];
        char msg[96];
        snprintf(msg, sizeof(msg), "%s before the %s", how,
                 s->resp == SIDE_IDLE ? "response" : "end of the stream");
        if (s->e) s->e->end_us = now_us;
        stream_finish(h, s, -1, msg);
    }
}

static void h2_destroy(void *state)
{
    struct h2 *h = state;
    if (h == NULL) return;
    /* Streams left here (close() finishes them all) were open when parsing stopped. */
    while (h->nstreams > 0) {
        struct h2_stream *s = h->streams[h->nstreams - 1];
        if (s->e != NULL) st_conn_count_dropped(h->conn, ST_LIMIT_PARSE_STOPPED, 1);
        stream_remove(h, s);
    }
    for (int d = 0; d < 2; d++) {
        if (h->dir[d].inf) nghttp2_hd_inflate_del(h->dir[d].inf);
        free(h->dir[d].block);
    }
    free(h);
}

const struct st_proto_ops st_http2_ops = {
    .proto = ST_PROTO_HTTP2,
    .create = h2_create,
    .feed = h2_feed,
    .close = h2_close,
    .destroy = h2_destroy,
};
