/* record.h - the compact index record kept for every stored entry.
 *
 * KFL evaluation, the service map and the stats read these fields without touching the
 * entry's JSON; anything else (headers, protocol sections) is read from the JSON, which
 * the record points to. Strings are interned (atoms.h), so a record is a small fixed-size
 * struct the store keeps in one contiguous array: a scan over a million of them reads
 * memory in order instead of chasing a pointer per entry. */
#ifndef SIDETAP_COLLECTOR_RECORD_H
#define SIDETAP_COLLECTOR_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atoms.h"

enum st_rproto {
    ST_RP_OTHER = 0, /* a protocol name the collector does not know: kept, matched by name */
    ST_RP_HTTP,
    ST_RP_HTTP2,
    ST_RP_GRPC,
    ST_RP_REDIS,
    ST_RP_DNS,
    ST_RP_KAFKA,
    ST_RP_TLS,
    ST_RP_TCP,
    ST_RP_COUNT
};

const char *st_rproto_name(enum st_rproto p);
/* ST_RP_OTHER when name is not one of the known protocols. */
enum st_rproto st_rproto_from_name(const char *name);

#define ST_REC_ERROR 0x01
#define ST_REC_OUTGOING 0x02 /* "outgoing": true */
#define ST_REC_HAS_OUTGOING 0x04 /* "outgoing" present */
#define ST_REC_HAS_REQUEST 0x08
#define ST_REC_HAS_RESPONSE 0x10
#define ST_REC_HAS_STATUS 0x20
#define ST_REC_HAS_ELAPSED 0x40
#define ST_REC_MERGED 0x80 /* both proxies reported it */

/* String fields of the record, in the order of st_rec.str[]; NULL when absent. */
enum st_rec_str {
    ST_RS_PROTO_NAME, /* protocol.name as sent */
    ST_RS_SRC_IP,
    ST_RS_SRC_NAME,
    ST_RS_SRC_NS,
    ST_RS_SRC_WORKLOAD,
    ST_RS_SRC_NODE,
    ST_RS_DST_IP,
    ST_RS_DST_NAME,
    ST_RS_DST_NS,
    ST_RS_DST_WORKLOAD,
    ST_RS_DST_NODE,
    ST_RS_NODE_NAME,
    ST_RS_METHOD,
    ST_RS_PATH,
    ST_RS_SUMMARY,
    ST_RS_COUNT
};

struct st_rec {
    uint64_t id;
    int64_t timestamp; /* ms since the epoch */
    double elapsed;    /* ms */
    uint32_t src_port, dst_port; /* UINT32_MAX when absent */
    uint32_t req_bytes, resp_bytes; /* wire bytes; 0 when absent */
    uint16_t status;
    uint8_t proto; /* enum st_rproto */
    uint8_t flags; /* ST_REC_* */
    uint32_t json_len;
    int64_t stored_at; /* ms since the epoch when the collector stored it (retention) */
    uint32_t atom[ST_RS_COUNT]; /* enum st_rec_str -> interned string, 0 when absent */
    char *json; /* the whole entry, compact, with "id"; NUL-terminated; owned by the store */
};

static inline const char *st_rec_str(const struct st_rec *r, enum st_rec_str i)
{
    return st_atom_str(r->atom[i]);
}

/* Memory a record holds: the struct (in the store's array) and its JSON text (the store
 * packs texts into large slabs, so there is no per-entry allocation overhead); the
 * interned strings are shared and counted by st_atom_bytes(). */
static inline size_t st_rec_size(const struct st_rec *r)
{
    return sizeof(*r) + r->json_len + 1;
}

#define ST_REC_NO_PORT UINT32_MAX

/* An entry on a jscan tape (jscan.h) with the members the collector reads located in one
 * walk per object: each field is a tape index, 0 when absent (the last of duplicates). */
enum st_je_top {
    ST_JE_TIMESTAMP, ST_JE_ELAPSED, ST_JE_PROTOCOL, ST_JE_SRC, ST_JE_DST, ST_JE_NODE,
    ST_JE_OUTGOING, ST_JE_SEQ, ST_JE_SUMMARY, ST_JE_ERROR, ST_JE_REQUEST, ST_JE_RESPONSE,
    ST_JE_MERGED, ST_JE_SERVER_NODE, ST_JE_ID, ST_JE_TOP_COUNT
};
enum st_je_side {
    ST_JS_IP, ST_JS_NAME, ST_JS_NAMESPACE, ST_JS_NODE, ST_JS_WORKLOAD, ST_JS_SERVICE_ACCOUNT,
    ST_JS_PORT, ST_JS_LABELS, ST_JS_COUNT
};
enum st_je_msg {
    ST_JM_METHOD, ST_JM_PATH, ST_JM_URL, ST_JM_QUERY, ST_JM_STATUS, ST_JM_STATUS_TEXT,
    ST_JM_HEADERS, ST_JM_BYTES, ST_JM_BODY, ST_JM_COUNT
};
enum st_je_body { ST_JB_SIZE, ST_JB_TRUNCATED, ST_JB_ENCODING, ST_JB_DATA, ST_JB_COUNT };

struct st_jtape;
struct st_jentry {
    const char *text;
    const struct st_jtape *tape;
    uint32_t root; /* the entry's token (an object, or anything when invalid) */
    uint32_t top[ST_JE_TOP_COUNT];
    uint32_t proto_name, proto_version, proto_abbr;
    uint32_t side[2][ST_JS_COUNT]; /* [0] src, [1] dst */
    uint32_t node_name, error_message;
    uint32_t msg[2][ST_JM_COUNT];  /* [0] request, [1] response */
    uint32_t body[2][ST_JB_COUNT];
};

/* Locates the fields of the entry at tape index root. */
void st_jentry_pick(struct st_jentry *e, const char *text, const struct st_jtape *tape,
                    uint32_t root);
/* The same entry after its members were copied to a new tape in order, each member
 * subtree whole: top[f] is the new value index of field f (0: dropped). Indices inside
 * a member move with it; the sides in repick[] (whose members changed) are picked again. */
void st_jentry_moved(struct st_jentry *out, const struct st_jentry *in, const char *text,
                     const struct st_jtape *tape, const uint32_t top[ST_JE_TOP_COUNT],
                     const bool repick[2]);
/* The entry's text (from its first to its last byte). */
const char *st_jentry_text(const struct st_jentry *e, size_t *len);
/* Fills rec's index fields (atoms, numbers, flags) from a picked entry; rec->json, json_len,
 * id and stored_at are the caller's. Release with st_rec_clear(). */
void st_rec_index(struct st_rec *rec, const struct st_jentry *e);
/* Releases the record's interned strings (not its JSON, which its owner frees). */
void st_rec_clear(struct st_rec *rec);
/* Parses the "id" member ("123") of a picked entry; 0 when absent or invalid. */
uint64_t st_jentry_id(const struct st_jentry *e);

/* Heap-allocated records for tests and tools (one allocation holds record and JSON):
 * NULL on failure; st_rec_free(NULL) is a no-op. st_rec_new serializes entry compactly;
 * st_rec_from_text needs a usable "id". */
struct st_rec *st_rec_new(json_t *entry, uint64_t id);
struct st_rec *st_rec_from_text(const char *json, size_t len);
void st_rec_free(struct st_rec *rec);
/* Parses rec->json; the caller owns the result. */
json_t *st_rec_load(const struct st_rec *rec);

#endif
