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
    char *json; /* the whole entry, compact, with "id"; NUL-terminated; owned */
};

static inline const char *st_rec_str(const struct st_rec *r, enum st_rec_str i)
{
    return st_atom_str(r->atom[i]);
}

/* Memory a record holds: the struct (in the store's array) and its JSON allocation; the
 * interned strings are shared and counted by st_atom_bytes(). */
static inline size_t st_rec_size(const struct st_rec *r)
{
    return sizeof(*r) + r->json_len + 1 + 16;
}

#define ST_REC_NO_PORT UINT32_MAX

/* Fills *out from an entry object that already carries its "id" (decimal string); the
 * JSON is serialized once. Returns -1 on allocation failure or when the entry cannot be
 * serialized. Release with st_rec_clear(). */
int st_rec_build(struct st_rec *out, json_t *entry, uint64_t id);
/* The same from serialized entry JSON (e.g. read back from disk); -1 if it does not parse
 * or has no usable "id". */
int st_rec_build_text(struct st_rec *out, const char *json, size_t len);
/* Releases what a built record holds (its strings and JSON). */
void st_rec_clear(struct st_rec *rec);
/* Heap-allocated variants for tests: NULL on failure; st_rec_free(NULL) is a no-op. */
struct st_rec *st_rec_new(json_t *entry, uint64_t id);
struct st_rec *st_rec_from_text(const char *json, size_t len);
void st_rec_free(struct st_rec *rec);
/* Parses rec->json; the caller owns the result. */
json_t *st_rec_load(const struct st_rec *rec);

#endif
