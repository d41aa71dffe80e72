/* record.h - the compact index record kept for every stored entry.
 *
 * KFL evaluation, the service map and the stats read these fields without touching the
 * entry's JSON; anything else (headers, protocol sections) is read from the JSON, which
 * the record carries too. One allocation holds the record, its strings and the JSON. */
#ifndef SIDETAP_COLLECTOR_RECORD_H
#define SIDETAP_COLLECTOR_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

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
    const char *str[ST_RS_COUNT];
    const char *json; /* the whole entry, compact, with "id"; NUL-terminated */
    size_t alloc_size; /* bytes this record holds (memory accounting) */
};

#define ST_REC_NO_PORT UINT32_MAX

/* Builds a record from an entry object that already carries its "id" (decimal string).
 * The JSON is serialized once into the record. Returns NULL on allocation failure or
 * when the entry cannot be serialized. Free with st_rec_free(). */
struct st_rec *st_rec_new(json_t *entry, uint64_t id);
/* Builds a record from serialized entry JSON (e.g. read back from disk); NULL if it
 * does not parse or has no usable "id". */
struct st_rec *st_rec_from_text(const char *json, size_t len);
void st_rec_free(struct st_rec *rec);
/* Parses rec->json; the caller owns the result. */
json_t *st_rec_load(const struct st_rec *rec);

#endif
