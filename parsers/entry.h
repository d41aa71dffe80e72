/* entry.h - one observed exchange (an HTTP call, a Redis command, a DNS query...).
 *
 * Parsers fill a struct st_entry and hand it to the connection's callback. Everything an
 * entry points to lives in its own arena, so st_entry_free() releases it all at once and
 * an entry can cross threads or queues by pointer. JSON is made later, off the data path,
 * by st_entry_json_write() (entry_json.h). The JSON shape is documented in docs/entries.md. */
#ifndef SIDETAP_ENTRY_H
#define SIDETAP_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct st_mem_budget;

enum st_proto {
    ST_PROTO_UNKNOWN = 0, /* not decided yet */
    ST_PROTO_TCP,         /* opaque bytes: one entry per connection */
    ST_PROTO_HTTP,        /* HTTP/1.x */
    ST_PROTO_HTTP2,
    ST_PROTO_GRPC, /* never detected from bytes: HTTP/2 entries with content-type application/grpc */
    ST_PROTO_REDIS,
    ST_PROTO_DNS,
    ST_PROTO_KAFKA,
    ST_PROTO_TLS,
    ST_PROTO_COUNT
};

/* "http", "http2", ... as used in JSON, KFL and metrics labels. */
const char *st_proto_name(enum st_proto proto);
/* "HTTP", "HTTP/2", ... a short label for list views. */
const char *st_proto_abbr(enum st_proto proto);
/* ST_PROTO_UNKNOWN when the name is not a protocol. */
enum st_proto st_proto_from_name(const char *name);

/* Bump allocator that owns every byte of one entry. */
struct st_arena_chunk;
struct st_arena {
    struct st_arena_chunk *head;
    size_t bytes; /* total allocated, for memory accounting */
};

void *st_arena_alloc(struct st_arena *arena, size_t size);
/* Copies len bytes and NUL-terminates; the copy may contain NULs (use the length). */
char *st_arena_strndup(struct st_arena *arena, const char *s, size_t len);
char *st_arena_strdup(struct st_arena *arena, const char *s);
char *st_arena_printf(struct st_arena *arena, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void st_arena_release(struct st_arena *arena);

/* A header or query parameter. Values of redacted headers are "[REDACTED]". */
struct st_kv {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct st_kv_list {
    struct st_kv *items;
    size_t count, cap;
};

/* A captured body: the first `len` bytes of `size` seen on the wire. */
struct st_body {
    uint8_t *data;  /* NULL when nothing was captured */
    size_t len;     /* bytes captured, <= the capture cap */
    size_t cap;     /* bytes allocated at data */
    uint64_t size;  /* bytes seen (decoded of chunking, not of gzip) */
    bool truncated; /* size > len: the cap or the memory budget cut it */
};

struct st_endpoint {
    char ip[46]; /* textual, "" when unknown */
    uint16_t port;
};

struct st_message {
    bool present;                /* false: no request/response seen (e.g. server push) */
    const char *method;          /* request: GET, or a command name for non-HTTP protocols */
    const char *path;            /* request: path without query, or a key */
    const char *url;             /* request: the request target as sent */
    int status;                  /* response: 200, 404... 0 when not applicable */
    const char *status_text;     /* response: "OK" */
    struct st_kv_list headers;   /* in wire order; duplicates kept */
    struct st_kv_list query;     /* request: parsed query string */
    struct st_body body;
    uint64_t wire_bytes;         /* bytes on the wire for this message, framing included */
};

struct st_entry {
    struct st_arena arena;

    enum st_proto proto;
    const char *proto_version; /* "1.1", "2", "RESP2" ... may be NULL */

    uint64_t start_us;  /* request start, µs since the epoch */
    uint64_t end_us;    /* response end (or last byte seen), µs since the epoch */

    struct st_endpoint client, server; /* from the connection's 5-tuple */
    uint32_t seq; /* index of this exchange on its connection (set by st_conn_emit) */

    struct st_message request, response;

    const char *error;   /* NULL when the exchange succeeded */
    const char *summary; /* one line for list views */

    /* Protocol-specific fields, serialized under the protocol's name (grpc, dns, redis,
     * kafka, tls, tcp...). Owned by the entry (decref'd by st_entry_free); NULL if none. */
    json_t *section;
    const char *section_name; /* defaults to st_proto_name(proto) */

    struct st_entry *next; /* free for the current owner's queues */

    /* Capture memory charged to a shared budget, refunded by st_entry_free(). */
    struct st_mem_budget *budget;
    size_t budget_charged;
};

/* New zeroed entry; the caller owns it and frees it with st_entry_free(). NULL on OOM. */
struct st_entry *st_entry_new(enum st_proto proto);
void st_entry_free(struct st_entry *entry);

/* Appends a copy of name/value to a list in the entry's arena. Returns 0 or -1 on OOM. */
int st_kv_list_add(struct st_entry *entry, struct st_kv_list *list, const char *name,
                   size_t name_len, const char *value, size_t value_len);
/* First value for a case-insensitive name, or NULL. */
const struct st_kv *st_kv_list_find(const struct st_kv_list *list, const char *name);

void st_entry_set_error(struct st_entry *entry, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void st_entry_set_summary(struct st_entry *entry, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Bytes the entry holds, for memory accounting. */
size_t st_entry_mem(const struct st_entry *entry);

uint64_t st_now_us(void);

#endif
