/* entry_json.h - entries to the JSON of docs/entries.md, off the data path.
 *
 * Captured bytes are not trusted to be UTF-8: strings that are not valid UTF-8 are
 * escaped (\xNN) and bodies that are not text are base64, so one odd header never makes
 * a whole batch fail to serialize. */
#ifndef SIDETAP_ENTRY_JSON_H
#define SIDETAP_ENTRY_JSON_H

#include <stdbool.h>

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

/* New JSON object for the entry (the caller owns the reference); NULL on OOM. */
json_t *st_entry_to_json(const struct st_entry *entry, const struct st_json_context *ctx);

/* A JSON string for arbitrary bytes: valid UTF-8 is kept, other bytes become \xNN text. */
json_t *st_json_bytes_string(const char *bytes, size_t len);

/* Base64 (RFC 4648, padded) of len bytes, as a new JSON string. */
json_t *st_json_base64(const uint8_t *data, size_t len);

/* True when the bytes are valid UTF-8 text without NULs or other C0 controls except
 * tab, CR and LF. */
bool st_bytes_are_text(const uint8_t *data, size_t len);

#endif
