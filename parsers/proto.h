/* proto.h - what a protocol module implements to plug into st_conn (conn.c).
 *
 * Adding a protocol = one .c file exporting a `const struct st_proto_ops` and one line in
 * the table in conn.c. Modules see the connection only through the helpers below. */
#ifndef SIDETAP_PROTO_H
#define SIDETAP_PROTO_H

#include "parser.h"

struct st_proto_ops {
    enum st_proto proto;
    /* Per-connection state; NULL on OOM (the connection then falls back to TCP). */
    void *(*create)(struct st_conn *conn);
    /* Bytes in one direction, any split. Returns 0, or -1 after calling
     * st_conn_fail() when the stream cannot be parsed any further. */
    int (*feed)(void *state, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                size_t len, uint64_t now_us);
    /* The connection ended: emit what is pending. */
    void (*close)(void *state, struct st_conn *conn, enum st_close_reason reason,
                  uint64_t now_us);
    void (*destroy)(void *state);
};

/* Registered modules; a protocol without one is treated as TCP. */
extern const struct st_proto_ops st_http1_ops;
extern const struct st_proto_ops st_dns_ops;
extern const struct st_proto_ops st_tls_ops;
extern const struct st_proto_ops st_redis_ops;
extern const struct st_proto_ops st_kafka_ops;
extern const struct st_proto_ops st_http2_ops;

/* --- helpers for modules --- */
const struct st_conn_info *st_conn_info(const struct st_conn *conn);
const struct st_parse_config *st_conn_config(const struct st_conn *conn);

/* New entry stamped with the connection's endpoints and the given protocol; NULL when
 * out of memory (counted as a dropped entry). */
struct st_entry *st_conn_entry_new(struct st_conn *conn, enum st_proto proto);

/* A module lost `n` entries (`dropped`), or made them without their response, because
 * of a limit: counted in the config's st_parse_stats. */
void st_conn_count_dropped(struct st_conn *conn, enum st_parse_limit why, uint64_t n);
void st_conn_count_unanswered(struct st_conn *conn, enum st_parse_limit why, uint64_t n);
/* Hands a finished entry to the connection's callback. */
void st_conn_emit(struct st_conn *conn, struct st_entry *entry);

/* Stops parsing: emits an `error` entry with the message (printf-style) and counts the
 * rest of the connection as opaque bytes. */
void st_conn_fail(struct st_conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Switch to another protocol mid-stream (h2c upgrade, WebSocket -> ST_PROTO_TCP).
 * `to_server`/`to_client` hold bytes already received in each direction that belong to
 * the new protocol; they are fed to it at once (client's first). Returns 0, or -1 when no
 * module exists for `proto` (the connection becomes TCP). The calling module's state is
 * destroyed after its feed() returns, so it must not touch its state after this call. */
int st_conn_switch(struct st_conn *conn, enum st_proto proto, const uint8_t *to_server,
                   size_t to_server_len, const uint8_t *to_client, size_t to_client_len,
                   uint64_t now_us);

/* An entry handed from the old module to the new one across st_conn_switch(): the h2c
 * upgrade request, which HTTP/2 completes as stream 1. Set before switching; the new
 * module takes it (and owns it) in create(). Left over ones are freed by the connection. */
void st_conn_set_handover(struct st_conn *conn, struct st_entry *entry);
struct st_entry *st_conn_take_handover(struct st_conn *conn);

/* Body capture within the config's cap and the shared budget. */
void st_body_append(struct st_conn *conn, struct st_entry *entry, struct st_body *body,
                    const uint8_t *data, size_t len);
/* Header capture with redaction (per the config). */
int st_conn_add_header(struct st_conn *conn, struct st_entry *entry, struct st_kv_list *list,
                       const char *name, size_t name_len, const char *value, size_t value_len);
bool st_conn_is_redacted(const struct st_conn *conn, const char *name, size_t name_len);

/* Charge or refund bytes of parser state against conn_mem_max. Returns -1 when the
 * charge would exceed it (nothing charged). */
int st_conn_mem_charge(struct st_conn *conn, size_t bytes);
void st_conn_mem_refund(struct st_conn *conn, size_t bytes);

#endif
