/* jscan.h - a strict single-pass JSON scanner for the ingest path.
 *
 * st_jscan() checks a whole document against RFC 8259 exactly as jansson's json_loadb()
 * with flags 0 does (UTF-8, escapes, control characters, number ranges, no "\u0000",
 * depth <= 2048, an object or array at the top, nothing but whitespace after it) and
 * writes a "tape": one token per value, in document order, that points into the text.
 * Nothing is allocated per value and nothing is decoded: a field is read where it sits,
 * and an entry's text is kept as it came (splices add or remove members). Ingesting an
 * entry costs a few instructions per byte instead of building a jansson tree.
 *
 * Objects are tokens [object][key][value...][key][value...]; a token's `next` is the
 * index just past it and its children, so siblings are one hop apart. Duplicate keys
 * stay on the tape; lookups take the last one, as jansson does. */
#ifndef SIDETAP_COLLECTOR_JSCAN_H
#define SIDETAP_COLLECTOR_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum st_jtype {
    ST_J_OBJECT = 1,
    ST_J_ARRAY,
    ST_J_STRING,
    ST_J_INTEGER,
    ST_J_REAL,
    ST_J_TRUE,
    ST_J_FALSE,
    ST_J_NULL,
};

#define ST_JF_ESC 0x01 /* a string with backslash escapes (decode before use) */
#define ST_JF_WS 0x02  /* a container with whitespace between its tokens */

#define ST_JSCAN_MAX_DEPTH 2048 /* as jansson's JSON_PARSER_DEFAULT_MAX_DEPTH */
#define ST_JSCAN_MAX_LEN 0xffffffffu

struct st_jtok {
    uint32_t start; /* first byte of the value ('"' of a string) */
    uint32_t end;   /* one past its last byte */
    uint32_t next;  /* tape index after this value and its children */
    uint8_t type;   /* enum st_jtype */
    uint8_t flags;  /* ST_JF_* */
    uint16_t pad;
};

struct st_jtape {
    struct st_jtok *tok;
    uint32_t n, cap;
};

struct st_jerr {
    int line, column; /* 1-based; column in characters, as jansson counts */
    size_t position;  /* byte offset */
    char text[96];
};

/* Scans text[0, len) into tape (reused: its capacity grows and is kept). Returns 0, or
 * -1 with err filled (also on out of memory). */
int st_jscan(const char *text, size_t len, struct st_jtape *tape, struct st_jerr *err);
void st_jtape_free(struct st_jtape *tape);

/* Token i's value. Strings are decoded into buf when they hold escapes (the result is
 * then NUL-terminated); otherwise the result points into text and is NOT terminated. */
const char *st_jstr(const char *text, const struct st_jtok *t, char *buf, size_t size,
                    size_t *len);
/* Decoded length of a string token without decoding it into a buffer. */
size_t st_jstr_len(const char *text, const struct st_jtok *t);
/* True when string token t equals s (len bytes), escapes decoded. */
bool st_jstr_eq(const char *text, const struct st_jtok *t, const char *s, size_t len);
/* Integer value of an ST_J_INTEGER token (range-checked by the scan). */
int64_t st_jint(const char *text, const struct st_jtok *t);
/* Number value of an ST_J_INTEGER or ST_J_REAL token, as jansson's json_number_value. */
double st_jnum(const char *text, const struct st_jtok *t);

/* Index of the value of the last member named key in object obj, 0 when absent (index 0
 * is the document's root, never a member value). */
uint32_t st_jget(const char *text, const struct st_jtape *tape, uint32_t obj, const char *key);

/* A set of member names for st_jpick, hashed on first use (up to 32 names). */
struct st_jnames {
    const char *const *names; /* ends with NULL */
    int n;
    bool ready, linear; /* linear: two names share a hash slot, compare them all */
    uint8_t lens[32];
    int8_t slot[64];
    uint64_t word[32][2]; /* the names zero-padded to 16 bytes, compared a word at a time */
};
#define ST_JNAMES(list) {.names = (list)}

/* One walk over object obj that finds several members: out[k] gets the value index of
 * the last member named set->names[k] (0 when absent). A member costs a hash and at most
 * one comparison. */
void st_jpick(const char *text, const struct st_jtape *tape, uint32_t obj,
              struct st_jnames *set, uint32_t *out);

/* Appends tokens [from, to) of src to dst, for text copied byte for byte to its original
 * offset + delta: splicing an entry keeps its tape without scanning it again. */
int st_jtape_copy(struct st_jtape *dst, const struct st_jtape *src, uint32_t from, uint32_t to,
                  int64_t delta);
/* Appends a container token (start, end and next are the caller's to finish); its index,
 * or -1 when out of memory. */
int64_t st_jtape_open(struct st_jtape *dst, uint8_t type, uint32_t start);

/* A growable text buffer for building entries out of pieces of scanned ones. */
struct st_jbuf {
    char *data;
    size_t len, cap;
};
int st_jbuf_put(struct st_jbuf *b, const char *p, size_t n);
/* Appends value token i of text, without the whitespace between its tokens. */
int st_jbuf_value(struct st_jbuf *b, const char *text, const struct st_jtape *tape, uint32_t i);
void st_jbuf_free(struct st_jbuf *b);

#endif
