/* entry_json.h - entries to the JSON of docs/entries.md, off the data path.
 *
 * st_entry_json_write() appends an entry's JSON text straight into a growing buffer that
 * the caller reuses (the proxy's batch body): no tree, no allocation once the buffer has
 * grown to its working size. Protocol sections and identity labels are jansson values
 * (built by the parsers, off the hot HTTP/1 path) and are written by the same writer.
 *
 * Captured bytes are not trusted to be UTF-8: strings that are not valid UTF-8 are
 * escaped (\xNN) and bodies that are not text are base64, so one odd header never makes
 * a whole batch fail to serialize. */
#ifndef SIDETAP_ENTRY_JSON_H
#define SIDETAP_ENTRY_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "entry.h"

/* Who a side of the connection is. Any string may be NULL (unknown). */
struct st_identity {
    const char *name;      /* pod name, or the host name an app looked up */
    const char *namespace;
    const char *node;
    const char *workload;
    const char *service_account;
    json_t *labels;        /* object of strings, borrowed; may be NULL */
};

struct st_json_context {
    const char *id;               /* entry id; NULL: none in the JSON */
    bool outgoing;                /* the reporting proxy saw the call leave its pod */
    const char *reporter_node;    /* the reporting pod's node, for `node.name` */
    const struct st_identity *src; /* identities of client and server; may be NULL */
    const struct st_identity *dst;
};

/* A growing text buffer, reused across entries and batches. Zero-initialize it; free it
 * with st_json_buf_free(). The writer's scratch tables (merging repeated header names)
 * live here too, so a warm buffer makes no allocation per entry. */
struct st_json_buf {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed; the writer resets it */
    uint32_t *scratch;
    size_t scratch_cap; /* uint32 slots at scratch */
    char *names;        /* header names made valid UTF-8 (rare) */
    size_t names_len, names_cap;
};

void st_json_buf_free(struct st_json_buf *buf);
/* Appends len bytes. 0, or -1 on OOM (nothing appended). */
int st_json_buf_append(struct st_json_buf *buf, const char *data, size_t len);
/* For json_dump_callback(..., st_json_buf_dump_cb, buf, ...). */
int st_json_buf_dump_cb(const char *data, size_t len, void *buf);

/* Appends the entry's JSON object (compact, one line). 0, or -1 on OOM, with buf->len
 * as it was before the call. */
int st_entry_json_write(struct st_json_buf *buf, const struct st_entry *entry,
                        const struct st_json_context *ctx);

/* The entry as a new jansson object (parsed back from st_entry_json_write's text), for
 * tests and tools; the caller owns the reference. NULL on OOM. */
json_t *st_entry_to_json(const struct st_entry *entry, const struct st_json_context *ctx);

/* A JSON string for arbitrary bytes: valid UTF-8 is kept, other bytes and NULs become
 * \xNN text. */
json_t *st_json_bytes_string(const char *bytes, size_t len);

/* Base64 (RFC 4648, padded) of len bytes, as a new JSON string. */
json_t *st_json_base64(const uint8_t *data, size_t len);

/* True when the bytes are valid UTF-8 text without NULs or other C0 controls except
 * tab, CR and LF. */
bool st_bytes_are_text(const uint8_t *data, size_t len);

#endif
