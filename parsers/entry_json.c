/* entry_json.c - serialize entries (docs/entries.md) by appending JSON text to a buffer.
 *
 * The proxy pays this for every entry, so it builds no tree: each field is written in
 * place, strings are escaped a machine word at a time while they are plain ASCII, bodies
 * are checked for text while they are copied (and rewritten as base64 if they are not),
 * integers are formatted by hand. The text is exactly what jansson would dump for the
 * equivalent tree (tests/lib/entry_oracle.h keeps that tree builder as the test oracle),
 * except that elapsedTime is written as the shortest decimal of the same double. */
#include "entry_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const uint8_t *p, size_t len)
{
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) n = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) n = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) n = 4, cp = c & 0x07;
    else return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* Word-at-a-time tests (exact as "any byte" tests, which is all they are used for). */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Some byte of w is below n (n <= 128). */
static inline uint64_t any_below(uint64_t w, uint8_t n)
{
    return (w - ONES * n) & ~w & HIGHS;
}

static inline uint64_t any_equal(uint64_t w, uint8_t c)
{
    return any_below(w ^ (ONES * c), 1);
}

/* All 8 bytes are printable ASCII that JSON keeps as is (no '"', '\\', DEL). */
static inline bool word_plain(uint64_t w)
{
    return ((w & HIGHS) | any_below(w, 0x20) | any_equal(w, '"') | any_equal(w, '\\') |
            any_equal(w, 0x7f)) == 0;
}

/* Valid UTF-8 without NULs: such bytes are their own JSON string text. */
static bool bytes_clean(const uint8_t *p, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = load64(p + i);
        if (((w & HIGHS) | any_below(w, 1)) != 0) break;
    }
    while (i < len) {
        size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;
        if (n == 0) return false;
        i += n;
    }
    return true;
}

bool st_bytes_are_text(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint8_t c = data[i];
        if (c < 0x20 && c != '\t' && c != '\r' && c != '\n') return false;
        if (c == 0x7f) return false;
        size_t n = utf8_seq(data + i, len - i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* The \xNN form of bytes that are not UTF-8 (or are NUL) into out (room for 4*len). */
static size_t sanitize(char *out, const uint8_t *p, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;
        if (n == 0) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex_lower[p[i] >> 4];
            out[o++] = hex_lower[p[i] & 15];
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    return o;
}

json_t *st_json_bytes_string(const char *bytes, size_t len)
{
    if (bytes_clean((const uint8_t *)bytes, len)) return json_stringn_nocheck(bytes, len);
    char *out = malloc(len * 4 + 1);
    if (out == NULL) return NULL;
    size_t o = sanitize(out, (const uint8_t *)bytes, len);
    json_t *s = json_stringn_nocheck(out, o);
    free(out);
    return s;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of len bytes into out (room for (len + 2) / 3 * 4); returns the length. */
static size_t base64(char *out, const uint8_t *data, size_t len)
{
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

json_t *st_json_base64(const uint8_t *data, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (out == NULL) return NULL;
    json_t *s = json_stringn_nocheck(out, base64(out, data, len));
    free(out);
    return s;
}

/* ---- the buffer ---- */

void st_json_buf_free(struct st_json_buf *b)
{
    if (b == NULL) return;
    free(b->data);
    free(b->scratch);
    free(b->names);
    memset(b, 0, sizeof(*b));
}

__attribute__((noinline)) static char *grow(struct st_json_buf *b, size_t more)
{
    if (b->failed) return NULL;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) goto oom;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) goto oom;
    b->data = p;
    b->cap = cap;
    return p + b->len;
oom:
    b->failed = true;
    return NULL;
}

/* Room for `more` bytes at the end, or NULL (and b->failed) on OOM. */
static inline char *need(struct st_json_buf *b, size_t more)
{
    if (b->cap - b->len >= more) return b->data + b->len;
    return grow(b, more);
}

int st_json_buf_append(struct st_json_buf *b, const char *data, size_t len)
{
    char *o = need(b, len);
    if (o == NULL) {
        b->failed = false;
        return -1;
    }
    if (len) memcpy(o, data, len);
    b->len += len;
    return 0;
}

int st_json_buf_dump_cb(const char *data, size_t len, void *b)
{
    return st_json_buf_append(b, data, len);
}

static inline void put_raw(struct st_json_buf *b, const char *s, size_t n)
{
    char *o = need(b, n);
    if (o == NULL) return;
    memcpy(o, s, n);
    b->len += n;
}

#define PUT_LIT(b, lit) put_raw((b), lit, sizeof(lit) - 1)

static inline void put_char(struct st_json_buf *b, char c)
{
    char *o = need(b, 1);
    if (o == NULL) return;
    *o = c;
    b->len++;
}

/* Decimal digits of v, written backwards ending at end; returns the first. */
static char *u64_digits(char *end, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100);
        v /= 100;
        end -= 2;
        memcpy(end, pairs + 2 * d, 2);
    }
    if (v >= 10) {
        end -= 2;
        memcpy(end, pairs + 2 * v, 2);
    } else {
        *--end = (char)('0' + v);
    }
    return end;
}

static void put_u64(struct st_json_buf *b, uint64_t v)
{
    char tmp[24], *end = tmp + sizeof(tmp);
    char *s = u64_digits(end, v);
    put_raw(b, s, (size_t)(end - s));
}

static void put_i64(struct st_json_buf *b, int64_t v)
{
    char tmp[24], *end = tmp + sizeof(tmp);
    char *s = u64_digits(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    if (v < 0) *--s = '-';
    put_raw(b, s, (size_t)(end - s));
}

/* A real as jansson writes it ("%.17g", a ".0" when it would read back as an integer,
 * no '+' or leading zeros in the exponent), whatever the locale's decimal point. */
static void put_real(struct st_json_buf *b, double v)
{
    char tmp[40];
    if (!isfinite(v)) { /* jansson holds no such real */
        PUT_LIT(b, "null");
        return;
    }
    int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    if (n <= 0 || (size_t)n >= sizeof(tmp) - 3) {
        PUT_LIT(b, "null");
        return;
    }
    bool dot_or_e = false;
    for (int i = 0; i < n; i++) {
        char c = tmp[i];
        if (c == 'e') dot_or_e = true;
        else if ((c < '0' || c > '9') && c != '-' && c != '+') tmp[i] = '.', dot_or_e = true;
    }
    if (!dot_or_e) {
        tmp[n++] = '.';
        tmp[n++] = '0';
    }
    char *e = memchr(tmp, 'e', (size_t)n);
    if (e != NULL) {
        char *start = e + 1, *end = start + 1;
        if (*start == '-') start++;
        while (end < tmp + n && *end == '0') end++;
        if (end == tmp + n) end--; /* keep one digit */
        if (end != start) {
            memmove(start, end, (size_t)(tmp + n - end));
            n -= (int)(end - start);
        }
    }
    put_raw(b, tmp, (size_t)n);
}

/* ---- strings ---- */

enum esc {
    ESC_BYTES,   /* captured bytes: NUL and bytes that are not UTF-8 become \xNN text */
    ESC_JANSSON, /* a jansson string: NUL is \u0000 (bytes that are not UTF-8: \xNN) */
    ESC_BODY,    /* a body as text: fails at anything st_bytes_are_text refuses */
};

/* 1: JSON keeps the byte as is. */
static const uint8_t plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20: '"' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50: '\\' */
    R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x70: DEL */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

/* Appends the escaped text of p (without quotes). false only for ESC_BODY bytes that are
 * not text; the caller then drops what was written. */
static bool put_escaped(struct st_json_buf *b, const uint8_t *p, size_t len, enum esc mode)
{
    /* Worst case: 6 bytes out per byte in (\u0001; \\xff is 5). */
    if (len > (SIZE_MAX - 8) / 6) {
        b->failed = true;
        return true;
    }
    char *o = need(b, len * 6);
    if (o == NULL) return true;
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (i + 8 <= len && word_plain(load64(p + i))) i += 8;
        while (i < len && plain[p[i]]) i++;
        memcpy(o, p + run, i - run);
        o += i - run;
        if (i == len) break;
        uint8_t c = p[i];
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (n != 0) {
                memcpy(o, p + i, n);
                o += n;
                i += n;
                continue;
            }
            if (mode == ESC_BODY) return false;
            goto xnn;
        }
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == 0x7f) {
            if (mode == ESC_BODY) return false;
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\', *o++ = 'n';
        } else if (c == '\r') {
            *o++ = '\\', *o++ = 'r';
        } else if (c == '\t') {
            *o++ = '\\', *o++ = 't';
        } else if (mode == ESC_BODY) {
            return false;
        } else if (c == 0 && mode == ESC_BYTES) {
            goto xnn;
        } else if (c == '\b') {
            *o++ = '\\', *o++ = 'b';
        } else if (c == '\f') {
            *o++ = '\\', *o++ = 'f';
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = hex_upper[c >> 4];
            o[5] = hex_upper[c & 15];
            o += 6;
        }
        i++;
        continue;
    xnn:
        /* "\xNN" as text: the backslash itself is escaped in JSON. */
        memcpy(o, "\\\\x", 3);
        o[3] = hex_lower[p[i] >> 4];
        o[4] = hex_lower[p[i] & 15];
        o += 5;
        i++;
    }
    b->len = (size_t)(o - b->data);
    return true;
}

static void put_str(struct st_json_buf *b, const char *s, size_t len, enum esc mode)
{
    put_char(b, '"');
    put_escaped(b, (const uint8_t *)s, len, mode);
    put_char(b, '"');
}

/* `,"key":` (the comma unless first) for keys that need no escaping. */
/* Inlined so that the length of a literal key is known when compiling (no strlen). */
static inline __attribute__((always_inline)) void put_key(struct st_json_buf *b, const char *key,
                                                          bool *first)
{
    size_t n = strlen(key);
    char *o = need(b, n + 4);
    if (o == NULL) return;
    size_t i = 0;
    if (!*first) o[i++] = ',';
    *first = false;
    o[i++] = '"';
    memcpy(o + i, key, n);
    i += n;
    o[i++] = '"';
    o[i++] = ':';
    b->len += i;
}

/* A C string field, left out when NULL. */
static inline __attribute__((always_inline)) void put_str_field(struct st_json_buf *b, const char *key,
                                                                const char *value, bool *first)
{
    if (value == NULL) return;
    put_key(b, key, first);
    put_str(b, value, strlen(value), ESC_BYTES);
}

static inline __attribute__((always_inline)) void put_u64_field(struct st_json_buf *b, const char *key,
                                                                uint64_t v, bool *first)
{
    put_key(b, key, first);
    put_u64(b, v);
}

static void put_i64_field(struct st_json_buf *b, const char *key, int64_t v, bool *first)
{
    put_key(b, key, first);
    put_i64(b, v);
}

static void put_bool_field(struct st_json_buf *b, const char *key, bool v, bool *first)
{
    put_key(b, key, first);
    if (v) PUT_LIT(b, "true");
    else PUT_LIT(b, "false");
}

/* ---- jansson values (protocol sections, labels) ---- */

#define VALUE_DEPTH_MAX 2048 /* as jansson's encoder */

static void put_value(struct st_json_buf *b, const json_t *v, unsigned depth)
{
    if (depth > VALUE_DEPTH_MAX) {
        b->failed = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        put_char(b, '{');
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it != NULL;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first) put_char(b, ',');
            first = false;
            put_str(b, json_object_iter_key(it), json_object_iter_key_len(it), ESC_JANSSON);
            put_char(b, ':');
            put_value(b, json_object_iter_value(it), depth + 1);
        }
        put_char(b, '}');
        break;
    }
    case JSON_ARRAY:
        put_char(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) put_char(b, ',');
            put_value(b, json_array_get(v, i), depth + 1);
        }
        put_char(b, ']');
        break;
    case JSON_STRING:
        put_str(b, json_string_value(v), json_string_length(v), ESC_JANSSON);
        break;
    case JSON_INTEGER:
        put_i64(b, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        put_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        PUT_LIT(b, "true");
        break;
    case JSON_FALSE:
        PUT_LIT(b, "false");
        break;
    default:
        PUT_LIT(b, "null");
        break;
    }
}

/* ---- headers and query strings ---- */

/* What the merge of repeated names knows of one item. Names are compared as they appear
 * in the JSON (\xNN form), which for clean names (nearly all) is the raw bytes. */
struct kv_meta {
    uint32_t hash;
    uint32_t len;  /* of the name in \xNN form */
    uint32_t off;  /* UINT32_MAX: clean, the raw bytes; else at b->names + off */
    uint32_t next; /* next item with this name, UINT32_MAX: none */
    uint32_t last; /* first item of a name: the last of its chain; UINT32_MAX: a repeat */
};

#define KV_NONE UINT32_MAX
#define KV_LINEAR_MAX 16 /* lists up to this size compare names pairwise */

static uint32_t fnv1a(const char *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static const char *kv_name(const struct st_json_buf *b, const struct st_kv *kv,
                           const struct kv_meta *m)
{
    return m->off == KV_NONE ? kv->name : b->names + m->off;
}

/* Fills m for kv (the \xNN form goes to b->names when the name is not clean). */
static int kv_meta_init(struct st_json_buf *b, const struct st_kv *kv, struct kv_meta *m)
{
    m->next = KV_NONE;
    m->off = KV_NONE;
    if (kv->name_len > UINT32_MAX / 4) return -1;
    if (bytes_clean((const uint8_t *)kv->name, kv->name_len)) {
        m->len = (uint32_t)kv->name_len;
    } else {
        size_t want = b->names_len + kv->name_len * 4;
        if (want > UINT32_MAX) return -1;
        if (want > b->names_cap) {
            size_t cap = b->names_cap ? b->names_cap : 256;
            while (cap < want) cap *= 2;
            char *p = realloc(b->names, cap);
            if (p == NULL) return -1;
            b->names = p;
            b->names_cap = cap;
        }
        m->off = (uint32_t)b->names_len;
        m->len = (uint32_t)sanitize(b->names + b->names_len, (const uint8_t *)kv->name,
                                    kv->name_len);
        b->names_len += m->len;
    }
    m->hash = fnv1a(kv_name(b, kv, m), m->len);
    return 0;
}

static bool kv_same(const struct st_json_buf *b, const struct st_kv_list *list,
                    const struct kv_meta *meta, uint32_t i, uint32_t j)
{
    return meta[i].hash == meta[j].hash && meta[i].len == meta[j].len &&
           memcmp(kv_name(b, &list->items[i], &meta[i]), kv_name(b, &list->items[j], &meta[j]),
                  meta[i].len) == 0;
}

/* Links every repeat of a name into the chain of its first item. */
static int kv_merge(struct st_json_buf *b, const struct st_kv_list *list, struct kv_meta **out)
{
    size_t n = list->count;
    size_t table = 0;
    if (n > KV_LINEAR_MAX) {
        table = 32;
        while (table < n * 2) table *= 2;
    }
    if (n > UINT32_MAX / 8) return -1;
    size_t slots = n * (sizeof(struct kv_meta) / sizeof(uint32_t)) + table;
    if (slots > b->scratch_cap) {
        uint32_t *p = realloc(b->scratch, slots * sizeof(uint32_t));
        if (p == NULL) return -1;
        b->scratch = p;
        b->scratch_cap = slots;
    }
    struct kv_meta *meta = (struct kv_meta *)b->scratch;
    uint32_t *slot = b->scratch + n * (sizeof(struct kv_meta) / sizeof(uint32_t));
    if (table) memset(slot, 0xff, table * sizeof(uint32_t));
    b->names_len = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (kv_meta_init(b, &list->items[i], &meta[i]) < 0) return -1;
        uint32_t first = KV_NONE;
        if (table == 0) {
            for (uint32_t j = 0; j < i && first == KV_NONE; j++)
                if (meta[j].last != KV_NONE && kv_same(b, list, meta, i, j)) first = j;
        } else {
            size_t k = meta[i].hash & (table - 1);
            for (; slot[k] != KV_NONE; k = (k + 1) & (table - 1))
                if (kv_same(b, list, meta, i, slot[k])) {
                    first = slot[k];
                    break;
                }
            if (first == KV_NONE) slot[k] = i;
        }
        if (first == KV_NONE) {
            meta[i].last = i;
        } else {
            meta[meta[first].last].next = i;
            meta[first].last = i;
            meta[i].last = KV_NONE;
        }
    }
    *out = meta;
    return 0;
}

/* Headers as an object; a repeated name joins its values with ", " (as HTTP allows),
 * at the place of its first occurrence. */
static void put_kv_object(struct st_json_buf *b, const struct st_kv_list *list)
{
    put_char(b, '{');
    struct kv_meta *meta = NULL;
    if (list->count > 1 && kv_merge(b, list, &meta) < 0) {
        b->failed = true;
        return;
    }
    for (uint32_t i = 0; i < list->count; i++) {
        if (meta != NULL && meta[i].last == KV_NONE) continue;
        const struct st_kv *kv = &list->items[i];
        if (i) put_char(b, ',');
        put_str(b, kv->name, kv->name_len, ESC_BYTES);
        PUT_LIT(b, ":\"");
        put_escaped(b, (const uint8_t *)kv->value, kv->value_len, ESC_BYTES);
        for (uint32_t k = meta ? meta[i].next : KV_NONE; k != KV_NONE; k = meta[k].next) {
            PUT_LIT(b, ", ");
            const struct st_kv *more = &list->items[k];
            put_escaped(b, (const uint8_t *)more->value, more->value_len, ESC_BYTES);
        }
        put_char(b, '"');
    }
    put_char(b, '}');
}

/* ---- the entry ---- */

static void put_body(struct st_json_buf *b, const struct st_body *body)
{
    PUT_LIT(b, "{\"size\":");
    put_i64(b, (int64_t)body->size);
    if (body->truncated) PUT_LIT(b, ",\"truncated\":true");
    else PUT_LIT(b, ",\"truncated\":false");
    if (body->len == 0) {
        PUT_LIT(b, ",\"encoding\":\"text\",\"data\":\"\"}");
        return;
    }
    PUT_LIT(b, ",\"encoding\":\"text\",\"data\":\"");
    size_t mark = b->len;
    if (put_escaped(b, body->data, body->len, ESC_BODY)) {
        PUT_LIT(b, "\"}");
        return;
    }
    /* Not text: rewrite as base64. */
    if (b->failed) return;
    b->len = mark - (sizeof("text\",\"data\":\"") - 1);
    PUT_LIT(b, "base64\",\"data\":\"");
    if (body->len > SIZE_MAX / 2) {
        b->failed = true;
        return;
    }
    char *o = need(b, (body->len + 2) / 3 * 4);
    if (o == NULL) return;
    b->len += base64(o, body->data, body->len);
    PUT_LIT(b, "\"}");
}

static void put_message(struct st_json_buf *b, const struct st_message *m, bool is_request)
{
    bool first = true;
    put_char(b, '{');
    if (is_request) {
        put_str_field(b, "method", m->method, &first);
        put_str_field(b, "path", m->path, &first);
        put_str_field(b, "url", m->url, &first);
        put_key(b, "queryString", &first);
        put_kv_object(b, &m->query);
    } else {
        if (m->status) put_i64_field(b, "status", m->status, &first);
        put_str_field(b, "statusText", m->status_text, &first);
    }
    put_key(b, "headers", &first);
    put_kv_object(b, &m->headers);
    put_key(b, "body", &first);
    put_body(b, &m->body);
    put_i64_field(b, "bytes", (int64_t)m->wire_bytes, &first);
    put_char(b, '}');
}

static void put_endpoint(struct st_json_buf *b, const struct st_endpoint *ep,
                         const struct st_identity *id)
{
    bool first = true;
    put_char(b, '{');
    size_t ip_len = strnlen(ep->ip, sizeof(ep->ip));
    /* As json_string(): an address that is not UTF-8 is left out. */
    if (ip_len < sizeof(ep->ip) && bytes_clean((const uint8_t *)ep->ip, ip_len)) {
        put_key(b, "ip", &first);
        put_str(b, ep->ip, ip_len, ESC_BYTES);
    }
    put_u64_field(b, "port", ep->port, &first);
    if (id != NULL) {
        put_str_field(b, "name", id->name, &first);
        put_str_field(b, "namespace", id->namespace, &first);
        put_str_field(b, "node", id->node, &first);
        put_str_field(b, "workload", id->workload, &first);
        put_str_field(b, "serviceAccount", id->service_account, &first);
        if (id->labels != NULL) {
            put_key(b, "labels", &first);
            put_value(b, id->labels, 1);
        }
    }
    put_char(b, '}');
}

/* elapsedTime in milliseconds: "2.431" reads back as the same double as 2431 / 1000.0
 * (both are the double nearest to 2.431), without printf. */
static void put_elapsed(struct st_json_buf *b, uint64_t us)
{
    if (us >= (1ull << 53)) {
        put_real(b, (double)us / 1000.0);
        return;
    }
    put_u64(b, us / 1000);
    unsigned frac = (unsigned)(us % 1000);
    char tmp[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                   (char)('0' + frac % 10)};
    size_t n = 4;
    while (n > 2 && tmp[n - 1] == '0') n--;
    put_raw(b, tmp, n);
}

int st_entry_json_write(struct st_json_buf *b, const struct st_entry *e,
                        const struct st_json_context *ctx)
{
    size_t mark = b->len;
    b->failed = false;
    bool first = true;
    put_char(b, '{');
    if (ctx && ctx->id) put_str_field(b, "id", ctx->id, &first);
    put_i64_field(b, "timestamp", (int64_t)(e->start_us / 1000), &first);
    put_key(b, "elapsedTime", &first);
    put_elapsed(b, e->end_us > e->start_us ? e->end_us - e->start_us : 0);

    PUT_LIT(b, ",\"protocol\":{\"name\":");
    const char *name = st_proto_name(e->proto);
    put_str(b, name, strlen(name), ESC_BYTES);
    if (e->proto_version) {
        PUT_LIT(b, ",\"version\":");
        put_str(b, e->proto_version, strlen(e->proto_version), ESC_BYTES);
    }
    PUT_LIT(b, ",\"abbr\":");
    const char *abbr = st_proto_abbr(e->proto);
    put_str(b, abbr, strlen(abbr), ESC_BYTES);
    put_char(b, '}');

    PUT_LIT(b, ",\"src\":");
    put_endpoint(b, &e->client, ctx ? ctx->src : NULL);
    PUT_LIT(b, ",\"dst\":");
    put_endpoint(b, &e->server, ctx ? ctx->dst : NULL);
    if (ctx && ctx->reporter_node) {
        PUT_LIT(b, ",\"node\":{\"name\":");
        put_str(b, ctx->reporter_node, strlen(ctx->reporter_node), ESC_BYTES);
        put_char(b, '}');
    }
    put_bool_field(b, "outgoing", ctx && ctx->outgoing, &first);
    put_u64_field(b, "seq", e->seq, &first);

    if (e->request.present) {
        put_key(b, "request", &first);
        put_message(b, &e->request, true);
    }
    if (e->response.present) {
        put_key(b, "response", &first);
        put_message(b, &e->response, false);
    }
    if (e->error != NULL) {
        PUT_LIT(b, ",\"error\":{\"message\":");
        put_str(b, e->error, strlen(e->error), ESC_BYTES);
        put_char(b, '}');
    }
    put_str_field(b, "summary", e->summary, &first);
    if (e->section != NULL) {
        const char *sec = e->section_name ? e->section_name : st_proto_name(e->proto);
        put_char(b, ',');
        put_str(b, sec, strlen(sec), ESC_JANSSON);
        put_char(b, ':');
        put_value(b, e->section, 1);
    }
    put_char(b, '}');
    if (b->failed) {
        b->failed = false;
        b->len = mark;
        return -1;
    }
    return 0;
}

json_t *st_entry_to_json(const struct st_entry *e, const struct st_json_context *ctx)
{
    struct st_json_buf b = {0};
    json_t *j = NULL;
    if (st_entry_json_write(&b, e, ctx) == 0) {
        json_error_t err;
        j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &err);
    }
    st_json_buf_free(&b);
    return j;
}
