/* libFuzzer target: the ingest JSON scanner (collector/jscan.c) against jansson. The
 * scanner must accept exactly what json_loadb(flags 0) accepts, and every value it
 * extracts (strings decoded, integers, reals, the last of duplicate keys) must equal
 * jansson's. One known difference: jansson skips a NUL byte after a number ("[1\0]" loads
 * as [1]; its reader treats NUL as "refill"), the scanner rejects raw NUL bytes anywhere,
 * as RFC 8259 does. An accepted document then goes through what ingest does to a batch:
 * each element of "entries" (or the document itself) is picked, validated and indexed. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "collector.h"
#include "jscan.h"
#include "record.h"

static const char *doc;
static const struct st_jtape *tape;

static void mismatch(const char *what, uint32_t i)
{
    fprintf(stderr, "jscan and jansson disagree: %s at token %u\n", what, (unsigned)i);
    abort();
}

static void same(json_t *j, uint32_t i)
{
    const struct st_jtok *t = &tape->tok[i];
    switch (t->type) {
    case ST_J_OBJECT: {
        size_t distinct = 0;
        for (uint32_t k = i + 1; k < t->next; k = tape->tok[k + 1].next) {
            size_t n = st_jstr_len(doc, &tape->tok[k]), got;
            char *key = malloc(n + 1);
            const char *kv = st_jstr(doc, &tape->tok[k], key, n + 1, &got);
            if (got != n)
                mismatch("decoded key length", k);
            if (kv != key) {
                memcpy(key, kv, n);
                key[n] = '\0';
            }
            json_t *v = json_object_getn(j, key, n);
            if (!v)
                mismatch("key missing in jansson", k);
            uint32_t last = st_jget(doc, tape, i, key);
            if (last == k + 1) {
                distinct++;
                same(v, k + 1);
            }
            free(key);
        }
        if (!json_is_object(j) || distinct != json_object_size(j))
            mismatch("object size", i);
        break;
    }
    case ST_J_ARRAY: {
        size_t n = 0;
        if (!json_is_array(j))
            mismatch("array", i);
        for (uint32_t k = i + 1; k < t->next; k = tape->tok[k].next, n++) {
            if (n >= json_array_size(j))
                mismatch("array size", i);
            same(json_array_get(j, n), k);
        }
        if (n != json_array_size(j))
            mismatch("array size", i);
        break;
    }
    case ST_J_STRING: {
        size_t n = st_jstr_len(doc, t), got;
        char *buf = malloc(n + 1);
        const char *v = st_jstr(doc, t, buf, n + 1, &got);
        if (!json_is_string(j) || got != n || json_string_length(j) != n ||
            memcmp(json_string_value(j), v, n) != 0 || !st_jstr_eq(doc, t, json_string_value(j), n))
            mismatch("string", i);
        free(buf);
        break;
    }
    case ST_J_INTEGER:
        if (!json_is_integer(j) || json_integer_value(j) != st_jint(doc, t) ||
            json_number_value(j) != st_jnum(doc, t))
            mismatch("integer", i);
        break;
    case ST_J_REAL: {
        double a = json_real_value(j), b = st_jnum(doc, t);
        if (!json_is_real(j) || memcmp(&a, &b, sizeof(a)) != 0)
            mismatch("real", i);
        break;
    }
    case ST_J_TRUE:
        if (!json_is_true(j))
            mismatch("true", i);
        break;
    case ST_J_FALSE:
        if (!json_is_false(j))
            mismatch("false", i);
        break;
    case ST_J_NULL:
        if (!json_is_null(j))
            mismatch("null", i);
        break;
    default:
        mismatch("token type", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct st_jtape t;
    struct st_jerr err;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, 0, &jerr);
    int rc = st_jscan((const char *)data, size, &t, &err);
    bool nul = memchr(data, 0, size) != NULL;
    if ((j != NULL) != (rc == 0) && !(j && nul)) {
        fprintf(stderr, "jansson %s (%s), jscan %s (%s at %d:%d)\n", j ? "accepts" : "rejects",
                j ? "" : jerr.text, rc == 0 ? "accepts" : "rejects", rc == 0 ? "" : err.text,
                err.line, err.column);
        abort();
    }
    if (j && rc == 0) {
        doc = (const char *)data;
        tape = &t;
        same(j, 0);
        if (t.tok[0].next != t.n)
            mismatch("tape length", 0);
        uint32_t arr = st_jget(doc, &t, 0, "entries");
        uint32_t from = arr && t.tok[arr].type == ST_J_ARRAY ? arr + 1 : 0;
        uint32_t to = from ? t.tok[arr].next : 1;
        size_t i = 0;
        for (uint32_t k = from; k < to; k = t.tok[k].next, i++) {
            struct st_jentry e;
            char verr[300];
            st_jentry_pick(&e, doc, &t, k);
            if (st_validate_jentry(&e, i, verr, sizeof(verr)) < 0 && strncmp(verr, "entries[", 8) != 0)
                abort();
            struct st_rec r;
            memset(&r, 0, sizeof(r));
            st_rec_index(&r, &e);
            st_rec_clear(&r);
            (void)st_jentry_id(&e);
        }
    } else if (err.position > size) {
        abort();
    }
    json_decref(j);
    return 0;
}
