/* record.c - builds the compact index record of an entry (record.h). */
#include "record.h"

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

static uint32_t get_port(json_t *side)
{
    json_t *v = json_object_get(side, "port");
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535)
        return (uint32_t)json_integer_value(v);
    return ST_REC_NO_PORT;
}

static uint32_t get_u32(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return json_integer_value(v) > UINT32_MAX ? UINT32_MAX : (uint32_t)json_integer_value(v);
    return 0;
}

/* A growable buffer reused across calls, so serializing does not allocate per entry.
 * The collector is single-threaded; benchmarks and tests too. */
struct dump_buf {
    char *data;
    size_t len, cap;
};
static struct dump_buf dump_buf;

static int dump_sink(const char *buffer, size_t size, void *data)
{
    struct dump_buf *b = data;
    if (b->len + size + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + size + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, buffer, size);
    b->len += size;
    return 0;
}

static int build(struct st_rec *rec, json_t *entry, uint64_t id, const char *json, size_t json_len)
{
    json_t *src = json_object_get(entry, "src"), *dst = json_object_get(entry, "dst");
    json_t *req = json_object_get(entry, "request"), *resp = json_object_get(entry, "response");
    json_t *strs[ST_RS_COUNT] = {
        [ST_RS_PROTO_NAME] = json_object_get(json_object_get(entry, "protocol"), "name"),
        [ST_RS_SRC_IP] = json_object_get(src, "ip"),
        [ST_RS_SRC_NAME] = json_object_get(src, "name"),
        [ST_RS_SRC_NS] = json_object_get(src, "namespace"),
        [ST_RS_SRC_WORKLOAD] = json_object_get(src, "workload"),
        [ST_RS_SRC_NODE] = json_object_get(src, "node"),
        [ST_RS_DST_IP] = json_object_get(dst, "ip"),
        [ST_RS_DST_NAME] = json_object_get(dst, "name"),
        [ST_RS_DST_NS] = json_object_get(dst, "namespace"),
        [ST_RS_DST_WORKLOAD] = json_object_get(dst, "workload"),
        [ST_RS_DST_NODE] = json_object_get(dst, "node"),
        [ST_RS_NODE_NAME] = json_object_get(json_object_get(entry, "node"), "name"),
        [ST_RS_METHOD] = json_object_get(req, "method"),
        [ST_RS_PATH] = json_object_get(req, "path"),
        [ST_RS_SUMMARY] = json_object_get(entry, "summary"),
    };
    memset(rec, 0, sizeof(*rec));
    rec->json = malloc(json_len + 1);
    if (!rec->json)
        return -1;
    memcpy(rec->json, json, json_len);
    rec->json[json_len] = '\0';
    rec->json_len = (uint32_t)json_len;
    for (int i = 0; i < ST_RS_COUNT; i++)
        if (json_is_string(strs[i]))
            rec->atom[i] = st_atom_intern(json_string_value(strs[i]), json_string_length(strs[i]));
    rec->id = id;

    const char *pname = json_string_value(strs[ST_RS_PROTO_NAME]);
    json_t *v = json_object_get(entry, "timestamp");
    rec->timestamp = json_is_number(v) ? (int64_t)json_number_value(v) : 0;
    v = json_object_get(entry, "elapsedTime");
    if (json_is_number(v)) {
        rec->elapsed = json_number_value(v);
        rec->flags |= ST_REC_HAS_ELAPSED;
    }
    rec->src_port = get_port(src);
    rec->dst_port = get_port(dst);
    rec->proto = (uint8_t)st_rproto_from_name(pname);
    if (json_object_get(entry, "error"))
        rec->flags |= ST_REC_ERROR;
    v = json_object_get(entry, "outgoing");
    if (json_is_boolean(v)) {
        rec->flags |= ST_REC_HAS_OUTGOING;
        if (json_is_true(v))
            rec->flags |= ST_REC_OUTGOING;
    }
    if (json_is_object(req)) {
        rec->flags |= ST_REC_HAS_REQUEST;
        rec->req_bytes = get_u32(req, "bytes");
    }
    if (json_is_object(resp)) {
        rec->flags |= ST_REC_HAS_RESPONSE;
        rec->resp_bytes = get_u32(resp, "bytes");
        v = json_object_get(resp, "status");
        if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535) {
            rec->status = (uint16_t)json_integer_value(v);
            rec->flags |= ST_REC_HAS_STATUS;
        }
    }
    if (json_is_true(json_object_get(entry, "merged")))
        rec->flags |= ST_REC_MERGED;
    return 0;
}

int st_rec_build(struct st_rec *out, json_t *entry, uint64_t id)
{
    dump_buf.len = 0;
    if (json_dump_callback(entry, dump_sink, &dump_buf, JSON_COMPACT) != 0)
        return -1;
    return build(out, entry, id, dump_buf.data, dump_buf.len);
}

int st_rec_build_text(struct st_rec *out, const char *json, size_t len)
{
    json_t *entry = json_loadb(json, len, 0, NULL);
    if (!json_is_object(entry)) {
        json_decref(entry);
        return -1;
    }
    const char *ids = json_string_value(json_object_get(entry, "id"));
    char *end = NULL;
    unsigned long long id = ids ? strtoull(ids, &end, 10) : 0;
    int rc = -1;
    if (ids && *ids && end && *end == '\0' && id > 0)
        rc = build(out, entry, id, json, len);
    json_decref(entry);
    return rc;
}

void st_rec_clear(struct st_rec *rec)
{
    for (int i = 0; i < ST_RS_COUNT; i++)
        st_atom_release(rec->atom[i]);
    free(rec->json);
    memset(rec, 0, sizeof(*rec));
}

struct st_rec *st_rec_new(json_t *entry, uint64_t id)
{
    struct st_rec *r = malloc(sizeof(*r));
    if (r && st_rec_build(r, entry, id) < 0) {
        free(r);
        r = NULL;
    }
    return r;
}

struct st_rec *st_rec_from_text(const char *json, size_t len)
{
    struct st_rec *r = malloc(sizeof(*r));
    if (r && st_rec_build_text(r, json, len) < 0) {
        free(r);
        r = NULL;
    }
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
