/* kfl.h - KFL, the filter language of sidetap (docs/kfl.md), modelled on Kubeshark's.
 *
 * A query is compiled once (kfl_compile) into a tree whose field references are resolved
 * up front: fields of the index record (record.h) are read from it directly, any other
 * field from the entry's JSON, parsed on first use for that entry. Evaluation never fails:
 * a missing field is "absent" and compares unequal to everything but null. */
#ifndef SIDETAP_COLLECTOR_KFL_H
#define SIDETAP_COLLECTOR_KFL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "record.h"

#define KFL_MAX_QUERY 4096 /* characters */
#define KFL_MAX_DEPTH 64   /* nesting of parentheses and operators */

struct kfl_query;

/* Where and why a query did not compile. position is a 0-based offset into the query,
 * length >= 1 the number of characters to underline; message says it in words and ends
 * with "at position N". */
struct kfl_error {
    int position;
    int length;
    char message[256];
};

/* Compiles text (NUL-terminated). An empty or all-blank query matches everything.
 * Returns NULL and fills err on a syntax error. Free with kfl_free(). */
struct kfl_query *kfl_compile(const char *text, struct kfl_error *err);
void kfl_free(struct kfl_query *q);
/* True when the query reads fields that are not in the index record (so evaluation
 * parses the entry's JSON). */
bool kfl_needs_json(const struct kfl_query *q);
/* True when the query matches everything (empty text). */
bool kfl_is_all(const struct kfl_query *q);

/* What a query is evaluated against. Set rec, json or both; when only rec is set, the
 * JSON is parsed from rec->json on first need and kept in json (free it with
 * kfl_subject_done). When rec is NULL every field comes from json. */
struct kfl_subject {
    const struct st_rec *rec;
    json_t *json;
    bool json_owned;
};

bool kfl_match(const struct kfl_query *q, struct kfl_subject *s);
void kfl_subject_done(struct kfl_subject *s);

/* Parses an RFC 3339 time ("2026-11-25T10:00:00Z", fractions and offsets allowed) into
 * ms since the epoch; -1 when it is not one. */
int kfl_parse_datetime(const char *s, int64_t *ms);

#endif
