/* parser.h - the parsers library's public surface: turn the two byte streams of one
 * connection into entries.
 *
 *   struct st_conn *c = st_conn_new(&info, &config, on_entry, arg);
 *   st_conn_feed(c, ST_DIR_TO_SERVER, bytes, n, now_us);   // any split, any order of calls
 *   st_conn_feed(c, ST_DIR_TO_CLIENT, bytes, n, now_us);
 *   st_conn_close(c, ST_CLOSE_FIN, now_us);                 // flushes what is pending
 *   st_conn_free(c);
 *
 * Feeding never fails from the caller's point of view: a parse error or an exhausted
 * budget only stops parsing (an entry with `error` says why) and the connection is
 * counted as opaque bytes from then on. The parser never reads past `len` and never keeps
 * a pointer into the caller's buffer. Entries are handed to `on_entry`, which takes
 * ownership. Not thread-safe: one connection is fed from one thread. */
#ifndef SIDETAP_PARSER_H
#define SIDETAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "entry.h"

enum st_dir {
    ST_DIR_TO_SERVER = 0, /* bytes the client sent */
    ST_DIR_TO_CLIENT = 1, /* bytes the server sent */
};

enum st_transport { ST_TRANSPORT_TCP = 0, ST_TRANSPORT_UDP };

enum st_close_reason {
    ST_CLOSE_FIN = 0, /* both sides closed cleanly */
    ST_CLOSE_RESET,   /* a side reset the connection */
    ST_CLOSE_TIMEOUT, /* idle or connect timeout */
    ST_CLOSE_ABORT,   /* the relay gave up (shutdown, out of memory) */
};

/* Memory shared by every connection of one process. Parsers charge captured bytes here
 * and degrade when it is spent: first bodies are truncated, then only metadata is kept,
 * then nothing. Single-threaded, like the connections that use it. */
struct st_mem_budget {
    size_t limit; /* bytes; 0 = unlimited */
    size_t used;
    uint64_t bodies_truncated; /* body bytes refused because of the budget */
    uint64_t entries_skipped;  /* entries not made because of the budget */
};

/* Why a parser made an entry without its response, or made none at all. Every bound a
 * parser applies maps to one of these, so nothing is lost without a count. */
enum st_parse_limit {
    ST_LIMIT_CONN_MEMORY = 0, /* the connection's parser memory (conn_mem_max) is spent */
    ST_LIMIT_PENDING,         /* too many exchanges waiting for their response */
    ST_LIMIT_OUT_OF_MEMORY,   /* an allocation failed */
    ST_LIMIT_PARSE_STOPPED,   /* the exchange was being parsed when parsing stopped */
    ST_LIMIT_COUNT
};

/* "conn_memory", "pending_limit", "out_of_memory", "parse_stopped": metrics labels. */
const char *st_parse_limit_name(enum st_parse_limit why);

/* Counters shared by every connection of one process, like st_mem_budget. */
struct st_parse_stats {
    uint64_t dropped[ST_LIMIT_COUNT];    /* entries not made at all */
    uint64_t unanswered[ST_LIMIT_COUNT]; /* entries made without their response (the reply
                                            could not be waited for) */
};

struct st_parse_config {
    size_t body_cap;               /* max captured bytes per body (default 64 KiB) */
    size_t conn_mem_max;           /* max parser state per connection (default 256 KiB) */
    bool capture_bodies;           /* false: metadata only */
    const char *const *redact;     /* NULL-terminated header names (case-insensitive);
                                      NULL = st_default_redact */
    struct st_mem_budget *budget;  /* may be NULL: no shared budget */
    struct st_parse_stats *stats;  /* may be NULL: losses are not counted */
};

extern const char *const st_default_redact[];

/* Fills `config` with the defaults above. */
void st_parse_config_init(struct st_parse_config *config);

struct st_conn_info {
    struct st_endpoint client, server;
    enum st_transport transport;
    enum st_proto guess; /* ST_PROTO_UNKNOWN: detect from the first client bytes */
    uint64_t start_us;
};

/* Called for every finished entry; the callee owns `entry`. */
typedef void (*st_entry_cb)(struct st_entry *entry, void *arg);

struct st_conn;

/* `config` and its strings must outlive the connection. NULL on OOM. */
struct st_conn *st_conn_new(const struct st_conn_info *info, const struct st_parse_config *config,
                            st_entry_cb on_entry, void *arg);
void st_conn_feed(struct st_conn *conn, enum st_dir dir, const uint8_t *data, size_t len,
                  uint64_t now_us);
/* The relay tells that the client has been silent for the detect window while the
 * server may speak first: the connection is opaque TCP from now on. */
void st_conn_client_silent(struct st_conn *conn);
/* End of the connection: pending exchanges are emitted (unanswered ones with an error). */
void st_conn_close(struct st_conn *conn, enum st_close_reason reason, uint64_t now_us);
void st_conn_free(struct st_conn *conn);

/* The protocol in use now (UNKNOWN while detecting; TCP after a parse error). */
enum st_proto st_conn_proto(const struct st_conn *conn);
/* The parse error that stopped parsing, or NULL. Valid until st_conn_free(). */
const char *st_conn_parse_error(const struct st_conn *conn);

/* Detection from the first client bytes and the server port.
 * Returns the protocol, or ST_PROTO_UNKNOWN when more bytes are needed to decide
 * (`len` == 0 always needs more). Never needs more than ST_DETECT_MAX bytes: at that
 * size it always decides. */
#define ST_DETECT_MAX 64
enum st_proto st_detect(const uint8_t *data, size_t len, uint16_t server_port,
                        enum st_transport transport);

#endif
