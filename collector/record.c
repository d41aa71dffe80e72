/* record.c - locates an entry's fields on its jscan tape and builds the compact index
 * record from them (record.h). Nothing here builds a jansson tree: ingest, the disk load
 * and the tests all read entries through st_jentry_pick(). */
#include "record.h"

#include "jscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const rproto_names[ST_RP_COUNT] = {
    [ST_RP_OTHER] = "", [ST_RP_HTTP] = "http", [ST_RP_HTTP2] = "http2",
    [ST_RP_GRPC] = "grpc", [ST_RP_REDIS] = "redis", [ST_RP_DNS] = "dns",
    [ST_RP_KAFKA] = "kafka", [ST_RP_TLS] = "tls", [ST_RP_TCP] = "tcp",
};

const char *st_rproto_name(enum st_rproto p)
{
    return (unsigned)p < ST_RP_COUNT ? rproto_names[p] : "";
}

enum st_rproto st_rproto_from_name(const char *name)
{
    if (!name)
        return ST_RP_OTHER;
    for (int i = 1; i < ST_RP_COUNT; i++)
        if (strcmp(name, rproto_names[i]) == 0)
            return (enum st_rproto)i;
    return ST_RP_OTHER;
}


static const char *const top_names[] = {
    [ST_JE_TIMESTAMP] = "timestamp", [ST_JE_ELAPSED] = "elapsedTime",
    [ST_JE_PROTOCOL] = "protocol",   [ST_JE_SRC] = "src",
    [ST_JE_DST] = "dst",             [ST_JE_NODE] = "node",
    [ST_JE_OUTGOING] = "outgoing",   [ST_JE_SEQ] = "seq",
    [ST_JE_SUMMARY] = "summary",     [ST_JE_ERROR] = "error",
    [ST_JE_REQUEST] = "request",     [ST_JE_RESPONSE] = "response",
    [ST_JE_MERGED] = "merged",       [ST_JE_SERVER_NODE] = "serverNode",
    [ST_JE_ID] = "id",               [ST_JE_TOP_COUNT] = NULL,
};
static const char *const side_names[] = {
    [ST_JS_IP] = "ip",     [ST_JS_NAME] = "name",         [ST_JS_NAMESPACE] = "namespace",
    [ST_JS_NODE] = "node", [ST_JS_WORKLOAD] = "workload", [ST_JS_SERVICE_ACCOUNT] = "serviceAccount",
    [ST_JS_PORT] = "port", [ST_JS_LABELS] = "labels",     [ST_JS_COUNT] = NULL,
};
static const char *const msg_names[] = {
    [ST_JM_METHOD] = "method",   [ST_JM_PATH] = "path",
    [ST_JM_URL] = "url",         [ST_JM_QUERY] = "queryString",
    [ST_JM_STATUS] = "status",   [ST_JM_STATUS_TEXT] = "statusText",
    [ST_JM_HEADERS] = "headers", [ST_JM_BYTES] = "bytes",
    [ST_JM_BODY] = "body",       [ST_JM_COUNT] = NULL,
};
static const char *const body_names[] = {
    [ST_JB_SIZE] = "size",         [ST_JB_TRUNCATED] = "truncated",
    [ST_JB_ENCODING] = "encoding", [ST_JB_DATA] = "data",
    [ST_JB_COUNT] = NULL,
};
static const char *const proto_names[] = {"name", "version", "abbr", NULL};
static const char *const one_name[] = {"name", NULL};
static const char *const one_message[] = {"message", NULL};
static struct st_jnames top_set = ST_JNAMES(top_names), side_set = ST_JNAMES(side_names),
                        msg_set = ST_JNAMES(msg_names), body_set = ST_JNAMES(body_names),
                        proto_set = ST_JNAMES(proto_names), name_set = ST_JNAMES(one_name),
                        message_set = ST_JNAMES(one_message);

static bool is_obj(const struct st_jtape *t, uint32_t i)
{
    return i && t->tok[i].type == ST_J_OBJECT;
}

void st_jentry_pick(struct st_jentry *e, const char *text, const struct st_jtape *tape,
                    uint32_t root)
{
    memset(e, 0, sizeof(*e));
    e->text = text;
    e->tape = tape;
    e->root = root;
    if (tape->tok[root].type != ST_J_OBJECT)
        return;
    st_jpick(text, tape, root, &top_set, e->top);
    uint32_t v = e->top[ST_JE_PROTOCOL];
    if (is_obj(tape, v)) {
        uint32_t p[3];
        st_jpick(text, tape, v, &proto_set, p);
        e->proto_name = p[0];
        e->proto_version = p[1];
        e->proto_abbr = p[2];
    }
    for (int s = 0; s < 2; s++) {
        v = e->top[s ? ST_JE_DST : ST_JE_SRC];
        if (is_obj(tape, v))
            st_jpick(text, tape, v, &side_set, e->side[s]);
        v = e->top[s ? ST_JE_RESPONSE : ST_JE_REQUEST];
        if (is_obj(tape, v)) {
            st_jpick(text, tape, v, &msg_set, e->msg[s]);
            if (is_obj(tape, e->msg[s][ST_JM_BODY]))
                st_jpick(text, tape, e->msg[s][ST_JM_BODY], &body_set, e->body[s]);
        }
    }
    if (is_obj(tape, e->top[ST_JE_NODE]))
        st_jpick(text, tape, e->top[ST_JE_NODE], &name_set, &e->node_name);
    if (is_obj(tape, e->top[ST_JE_ERROR]))
        st_jpick(text, tape, e->top[ST_JE_ERROR], &message_set, &e->error_message);
}

static void move(uint32_t *idx, size_t n, int64_t shift)
{
    for (size_t i = 0; i < n; i++)
        if (idx[i])
            idx[i] = (uint32_t)(idx[i] + shift);
}

void st_jentry_moved(struct st_jentry *out, const struct st_jentry *in, const char *text,
                     const struct st_jtape *tape, const uint32_t top[ST_JE_TOP_COUNT],
                     const bool repick[2])
{
    *out = *in;
    out->text = text;
    out->tape = tape;
    out->root = 0;
    memcpy(out->top, top, sizeof(out->top));
#define SHIFT(f) (top[f] ? (int64_t)top[f] - (int64_t)in->top[f] : 0)
    int64_t sh = SHIFT(ST_JE_PROTOCOL);
    if (!top[ST_JE_PROTOCOL])
        out->proto_name = out->proto_version = out->proto_abbr = 0;
    move(&out->proto_name, 1, sh);
    move(&out->proto_version, 1, sh);
    move(&out->proto_abbr, 1, sh);
    if (top[ST_JE_NODE])
        move(&out->node_name, 1, SHIFT(ST_JE_NODE));
    else
        out->node_name = 0;
    if (top[ST_JE_ERROR])
        move(&out->error_message, 1, SHIFT(ST_JE_ERROR));
    else
        out->error_message = 0;
    for (int s = 0; s < 2; s++) {
        int f = s ? ST_JE_RESPONSE : ST_JE_REQUEST;
        if (top[f]) {
            move(out->msg[s], ST_JM_COUNT, SHIFT(f));
            move(out->body[s], ST_JB_COUNT, SHIFT(f));
        } else {
            memset(out->msg[s], 0, sizeof(out->msg[s]));
            memset(out->body[s], 0, sizeof(out->body[s]));
        }
        f = s ? ST_JE_DST : ST_JE_SRC;
        if (repick[s] && is_obj(tape, top[f]))
            st_jpick(text, tape, top[f], &side_set, out->side[s]);
        else if (top[f])
            move(out->side[s], ST_JS_COUNT, SHIFT(f));
        else
            memset(out->side[s], 0, sizeof(out->side[s]));
    }
#undef SHIFT
}

const char *st_jentry_text(const struct st_jentry *e, size_t *len)
{
    const struct st_jtok *t = &e->tape->tok[e->root];
    *len = t->end - t->start;
    return e->text + t->start;
}

static uint32_t intern(const struct st_jentry *e, uint32_t i)
{
    if (!i || e->tape->tok[i].type != ST_J_STRING)
        return 0;
    const struct st_jtok *t = &e->tape->tok[i];
    if (!(t->flags & ST_JF_ESC))
        return st_atom_intern(e->text + t->start + 1, t->end - t->start - 2);
    size_t n = t->end - t->start, len;
    char small[512];
    char *buf = n < sizeof(small) ? small : malloc(n);
    if (!buf)
        return 0;
    const char *s = st_jstr(e->text, t, buf, n, &len);
    uint32_t a = st_atom_intern(s, len);
    if (buf != small)
        free(buf);
    return a;
}

static bool is_int(const struct st_jentry *e, uint32_t i)
{
    return i && e->tape->tok[i].type == ST_J_INTEGER;
}

static bool is_num(const struct st_jentry *e, uint32_t i)
{
    return i && (e->tape->tok[i].type == ST_J_INTEGER || e->tape->tok[i].type == ST_J_REAL);
}

static uint32_t get_port(const struct st_jentry *e, uint32_t i)
{
    if (!is_int(e, i))
        return ST_REC_NO_PORT;
    int64_t v = st_jint(e->text, &e->tape->tok[i]);
    return v >= 0 && v <= 65535 ? (uint32_t)v : ST_REC_NO_PORT;
}

static uint32_t get_u32(const struct st_jentry *e, uint32_t i)
{
    if (!is_int(e, i))
        return 0;
    int64_t v = st_jint(e->text, &e->tape->tok[i]);
    return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void st_rec_index(struct st_rec *rec, const struct st_jentry *e)
{
    const uint32_t *src = e->side[0], *dst = e->side[1];
    const uint32_t strs[ST_RS_COUNT] = {
        [ST_RS_PROTO_NAME] = e->proto_name,
        [ST_RS_SRC_IP] = src[ST_JS_IP],
        [ST_RS_SRC_NAME] = src[ST_JS_NAME],
        [ST_RS_SRC_NS] = src[ST_JS_NAMESPACE],
        [ST_RS_SRC_WORKLOAD] = src[ST_JS_WORKLOAD],
        [ST_RS_SRC_NODE] = src[ST_JS_NODE],
        [ST_RS_DST_IP] = dst[ST_JS_IP],
        [ST_RS_DST_NAME] = dst[ST_JS_NAME],
        [ST_RS_DST_NS] = dst[ST_JS_NAMESPACE],
        [ST_RS_DST_WORKLOAD] = dst[ST_JS_WORKLOAD],
        [ST_RS_DST_NODE] = dst[ST_JS_NODE],
        [ST_RS_NODE_NAME] = e->node_name,
        [ST_RS_METHOD] = e->msg[0][ST_JM_METHOD],
        [ST_RS_PATH] = e->msg[0][ST_JM_PATH],
        [ST_RS_SUMMARY] = e->top[ST_JE_SUMMARY],
    };
    const struct st_jtok *t = e->tape->tok;
    for (int i = 0; i < ST_RS_COUNT; i++)
        rec->atom[i] = intern(e, strs[i]);
    uint32_t v = e->top[ST_JE_TIMESTAMP];
    rec->timestamp = is_num(e, v) ? (int64_t)st_jnum(e->text, &t[v]) : 0;
    rec->elapsed = 0;
    rec->flags = 0;
    v = e->top[ST_JE_ELAPSED];
    if (is_num(e, v)) {
        rec->elapsed = st_jnum(e->text, &t[v]);
        rec->flags |= ST_REC_HAS_ELAPSED;
    }
    rec->src_port = get_port(e, src[ST_JS_PORT]);
    rec->dst_port = get_port(e, dst[ST_JS_PORT]);
    rec->proto = ST_RP_OTHER;
    if (strs[ST_RS_PROTO_NAME] && rec->atom[ST_RS_PROTO_NAME])
        rec->proto = (uint8_t)st_rproto_from_name(st_atom_str(rec->atom[ST_RS_PROTO_NAME]));
    if (e->top[ST_JE_ERROR])
        rec->flags |= ST_REC_ERROR;
    v = e->top[ST_JE_OUTGOING];
    if (v && (t[v].type == ST_J_TRUE || t[v].type == ST_J_FALSE)) {
        rec->flags |= ST_REC_HAS_OUTGOING;
        if (t[v].type == ST_J_TRUE)
            rec->flags |= ST_REC_OUTGOING;
    }
    rec->req_bytes = rec->resp_bytes = 0;
    rec->status = 0;
    if (is_obj(e->tape, e->top[ST_JE_REQUEST])) {
        rec->flags |= ST_REC_HAS_REQUEST;
        rec->req_bytes = get_u32(e, e->msg[0][ST_JM_BYTES]);
    }
    if (is_obj(e->tape, e->top[ST_JE_RESPONSE])) {
        rec->flags |= ST_REC_HAS_RESPONSE;
        rec->resp_bytes = get_u32(e, e->msg[1][ST_JM_BYTES]);
        v = e->msg[1][ST_JM_STATUS];
        if (is_int(e, v)) {
            int64_t st = st_jint(e->text, &t[v]);
            if (st >= 0 && st <= 65535) {
                rec->status = (uint16_t)st;
                rec->flags |= ST_REC_HAS_STATUS;
            }
        }
    }
    v = e->top[ST_JE_MERGED];
    if (v && t[v].type == ST_J_TRUE)
        rec->flags |= ST_REC_MERGED;
}

uint64_t st_jentry_id(const struct st_jentry *e)
{
    uint32_t v = e->top[ST_JE_ID];
    if (!v || e->tape->tok[v].type != ST_J_STRING)
        return 0;
    char buf[32];
    size_t len;
    if (st_jstr_len(e->text, &e->tape->tok[v]) >= sizeof(buf))
        return 0;
    const char *s = st_jstr(e->text, &e->tape->tok[v], buf, sizeof(buf), &len);
    if (!len || len > 20)
        return 0;
    uint64_t id = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (id > (UINT64_MAX - d) / 10)
            return 0;
        id = id * 10 + d;
    }
    return id;
}

void st_rec_clear(struct st_rec *rec)
{
    for (int i = 0; i < ST_RS_COUNT; i++)
        st_atom_release(rec->atom[i]);
    memset(rec, 0, sizeof(*rec));
}

/* A record and its JSON in one allocation. */
static struct st_rec *rec_alloc(const char *json, size_t len)
{
    struct st_rec *r = malloc(sizeof(*r) + len + 1);
    if (!r)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->json = (char *)(r + 1);
    memcpy(r->json, json, len);
    r->json[len] = '\0';
    r->json_len = (uint32_t)len;
    return r;
}

struct st_rec *st_rec_new(json_t *entry, uint64_t id)
{
    char *text = json_dumps(entry, JSON_COMPACT);
    if (!text)
        return NULL;
    struct st_rec *r = rec_alloc(text, strlen(text));
    free(text);
    struct st_jtape tape = {0};
    struct st_jerr err;
    if (!r || st_jscan(r->json, r->json_len, &tape, &err) < 0) {
        free(r);
        st_jtape_free(&tape);
        return NULL;
    }
    struct st_jentry e;
    st_jentry_pick(&e, r->json, &tape, 0);
    st_rec_index(r, &e);
    r->id = id;
    st_jtape_free(&tape);
    return r;
}

struct st_rec *st_rec_from_text(const char *json, size_t len)
{
    struct st_rec *r = rec_alloc(json, len);
    struct st_jtape tape = {0};
    struct st_jerr err;
    if (!r || st_jscan(r->json, r->json_len, &tape, &err) < 0 || tape.tok[0].type != ST_J_OBJECT) {
        free(r);
        st_jtape_free(&tape);
        return NULL;
    }
    struct st_jentry e;
    st_jentry_pick(&e, r->json, &tape, 0);
    r->id = st_jentry_id(&e);
    if (!r->id) {
        free(r);
        st_jtape_free(&tape);
        return NULL;
    }
    st_rec_index(r, &e);
    st_jtape_free(&tape);
    return r;
}

void st_rec_free(struct st_rec *rec)
{
    if (!rec)
        return;
    st_rec_clear(rec);
    free(rec);
}

json_t *st_rec_load(const struct st_rec *rec)
{
    return json_loadb(rec->json, rec->json_len, 0, NULL);
}
