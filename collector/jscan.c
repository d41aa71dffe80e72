/* jscan.c - the strict JSON scanner of the ingest path (jscan.h).
 *
 * One pass, no recursion (an explicit stack of open containers), no allocation but the
 * tape. Strings are checked eight bytes at a time: a word with no quote, backslash,
 * control character or non-ASCII byte is skipped whole, which is most of an entry. The
 * rules and their order follow jansson 2.14's load.c, so both accept the same documents
 * (tests/fuzz/fuzz_jscan.c checks it); the error texts are our own. */
#include "jscan.h"

#include <errno.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const unsigned char *p;
    size_t len, pos;
    struct st_jtape *tape;
    struct st_jerr *err;
};

static int fail_at(struct scan *s, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct scan *s, size_t pos, const char *fmt, ...)
{
    struct st_jerr *e = s->err;
    if (pos > s->len)
        pos = s->len;
    int line = 1, col = 0;
    for (size_t i = 0; i < pos; i++) {
        unsigned char c = s->p[i];
        if (c == '\n') {
            line++;
            col = 0;
        } else if ((c & 0xc0) != 0x80) {
            col++;
        }
    }
    e->line = line;
    e->column = col + 1;
    e->position = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    return -1;
}

static int grow(struct scan *s)
{
    struct st_jtape *t = s->tape;
    uint32_t cap = t->cap ? t->cap * 2 : 1024;
    if (cap < t->cap)
        return fail_at(s, s->pos, "document too large");
    struct st_jtok *tok = realloc(t->tok, (size_t)cap * sizeof(*tok));
    if (!tok)
        return fail_at(s, s->pos, "out of memory");
    t->tok = tok;
    t->cap = cap;
    return 0;
}

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Non-zero when a byte of w is '"', '\\', < 0x20 or >= 0x80. */
static inline uint64_t special8(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
    return ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w) | w;
}

static int hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Length of the UTF-8 sequence at p (n bytes available), 0 when invalid: the same
 * rules as jansson's utf8_check_first/utf8_check_full (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0xc2 || c > 0xf4)
        return 0;
    if (c < 0xe0)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c < 0xf0) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))
            return 0;
        return 3;
    }
    if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
        return 0;
    if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return 4;
}

/* A string at s->pos (the opening quote). */
static int scan_string(struct scan *s, uint8_t *flags)
{
    const unsigned char *p = s->p;
    size_t i = s->pos + 1, len = s->len;
    for (;;) {
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            uint64_t m = special8(w) & HIGHS;
            if (m) {
                /* the lowest flagged byte is exact (borrows only run upwards) */
                i += (size_t)__builtin_ctzll(m) >> 3;
                break;
            }
            i += 8;
        }
        if (i >= len)
            return fail_at(s, len, "premature end of input in a string");
        unsigned char c = p[i];
        if (c == '"') {
            s->pos = i + 1;
            return 0;
        }
        if (c == '\\') {
            *flags |= ST_JF_ESC;
            if (i + 1 >= len)
                return fail_at(s, len, "premature end of input in a string");
            c = p[i + 1];
            if (c == 'u') {
                uint32_t u;
                if (i + 6 > len || hex4(p + i + 2, &u) < 0)
                    return fail_at(s, i, "invalid \\u escape");
                if (u == 0)
                    return fail_at(s, i, "\\u0000 is not allowed in a string");
                if (u >= 0xdc00 && u <= 0xdfff)
                    return fail_at(s, i, "invalid Unicode '\\u%04X' (a lone low surrogate)",
                                   (unsigned)u);
                if (u >= 0xd800 && u <= 0xdbff) {
                    uint32_t lo;
                    if (i + 12 > len || p[i + 6] != '\\' || p[i + 7] != 'u' ||
                        hex4(p + i + 8, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                        return fail_at(s, i, "invalid Unicode '\\u%04X' (a high surrogate not "
                                             "followed by a low one)",
                                       (unsigned)u);
                    i += 12;
                } else {
                    i += 6;
                }
                continue;
            }
            if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' &&
                c != 'r' && c != 't')
                return fail_at(s, i, "invalid escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
            i += 2;
            continue;
        }
        if (c < 0x20)
            return fail_at(s, i, "control character 0x%02x in a string", c);
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (!n)
                return fail_at(s, i, "invalid UTF-8");
            i += n;
            continue;
        }
        i++;
    }
}

/* A number at s->pos; sets *real. Range rules as jansson: integers must fit in 64 bits,
 * reals must not overflow a double. */
static int scan_number(struct scan *s, bool *real)
{
    const unsigned char *p = s->p;
    size_t i = s->pos, len = s->len, start = s->pos;
    bool neg = false;
    if (p[i] == '-') {
        neg = true;
        i++;
    }
    size_t int_start = i;
    if (i < len && p[i] == '0') {
        i++;
    } else if (i < len && p[i] >= '1' && p[i] <= '9') {
        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
    } else {
        return fail_at(s, start, "invalid number");
    }
    size_t int_digits = i - int_start;
    bool has_exp = false;
    *real = false;
    if (i < len && p[i] == '.') {
        *real = true;
        i++;
        if (i >= len || p[i] < '0' || p[i] > '9')
            return fail_at(s, start, "invalid number");
        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        *real = has_exp = true;
        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= len || p[i] < '0' || p[i] > '9')
            return fail_at(s, start, "invalid number");
        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    s->pos = i;
    if (!*real) {
        if (int_digits > 19 ||
            (int_digits == 19 &&
             memcmp(p + int_start, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0))
            return fail_at(s, start, neg ? "too big negative integer" : "too big integer");
        return 0;
    }
    if (has_exp || int_digits > 300) {
        struct st_jtok t = {.start = (uint32_t)start, .end = (uint32_t)i, .type = ST_J_REAL};
        double v = st_jnum((const char *)p, &t);
        if (isinf(v))
            return fail_at(s, start, "real number overflow");
    }
    return 0;
}

/* The fast path of scan_string: the index after the closing quote, 0 when the string is
 * invalid or unterminated (scan_string then walks it again to say why). */
static inline __attribute__((always_inline)) size_t string_end(const unsigned char *p, size_t i,
                                                               size_t len, uint8_t *flags)
{
    i++;
    for (;;) {
#ifdef __SSE2__
        /* 16 bytes at a time; a signed compare below 0x20 also flags bytes >= 0x80 */
        while (i + 16 <= len) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
            __m128i hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
            unsigned m = (unsigned)_mm_movemask_epi8(hit);
            if (m) {
                i += (size_t)__builtin_ctz(m);
                goto special;
            }
            i += 16;
        }
#endif
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            uint64_t m = special8(w) & HIGHS;
            if (m) {
                /* the lowest flagged byte is exact (borrows only run upwards) */
                i += (size_t)__builtin_ctzll(m) >> 3;
                goto special;
            }
            i += 8;
        }
        if (i >= len)
            return 0;
    special:;
        unsigned char c = p[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            *flags |= ST_JF_ESC;
            if (i + 1 >= len)
                return 0;
            c = p[i + 1];
            if (c == 'u') {
                uint32_t u;
                if (i + 6 > len || hex4(p + i + 2, &u) < 0 || u == 0 || (u >= 0xdc00 && u <= 0xdfff))
                    return 0;
                if (u >= 0xd800 && u <= 0xdbff) {
                    uint32_t lo;
                    if (i + 12 > len || p[i + 6] != '\\' || p[i + 7] != 'u' ||
                        hex4(p + i + 8, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                        return 0;
                    i += 12;
                } else {
                    i += 6;
                }
                continue;
            }
            if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' &&
                c != 'r' && c != 't')
                return 0;
            i += 2;
            continue;
        }
        if (c < 0x20)
            return 0;
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (!n)
                return 0;
            i += n;
            continue;
        }
        i++;
    }
}

static struct st_jtok *grow_tape(struct scan *s, uint32_t n)
{
    s->tape->n = n;
    s->pos = s->len;
    return grow(s) < 0 ? NULL : s->tape->tok;
}

/* Whitespace at pos is skipped; the open container top (NONE at the top level) learns it
 * had some, so copying it later knows whether it must compact. */
#define NONE UINT32_MAX
#define SKIP_WS(top)                                                                           \
    do {                                                                                       \
        if (pos < len && p[pos] <= ' ') {                                                      \
            size_t ws0_ = pos;                                                                 \
            while (pos < len && is_ws(p[pos]))                                                 \
                pos++;                                                                         \
            if (pos != ws0_ && (top) != NONE)                                                  \
                tok[top].flags |= ST_JF_WS;                                                    \
        }                                                                                      \
    } while (0)
#define PUSH(type_, start_)                                                                    \
    do {                                                                                       \
        if (n == cap) {                                                                        \
            if (!(tok = grow_tape(&s, n)))                                                     \
                return -1;                                                                     \
            cap = tape->cap;                                                                   \
        }                                                                                      \
        struct st_jtok *k_ = &tok[n++];                                                        \
        k_->start = k_->end = (uint32_t)(start_);                                              \
        k_->next = n;                                                                          \
        k_->type = (type_);                                                                    \
        k_->flags = 0;                                                                         \
        k_->pad = 0;                                                                           \
    } while (0)
/* A string token at pos (the opening quote); reports through the slow path on failure. */
#define STRING()                                                                               \
    do {                                                                                       \
        PUSH(ST_J_STRING, pos);                                                                \
        uint8_t fl_ = 0;                                                                       \
        size_t e_ = string_end(p, pos, len, &fl_);                                             \
        if (!e_) {                                                                             \
            s.pos = pos;                                                                       \
            uint8_t ignored_;                                                                  \
            if (scan_string(&s, &ignored_) < 0)                                                \
                return -1;                                                                     \
            return fail_at(&s, pos, "invalid string");                                         \
        }                                                                                      \
        pos = e_;                                                                              \
        tok[n - 1].end = (uint32_t)pos;                                                        \
        tok[n - 1].flags = fl_;                                                                \
    } while (0)

/* The main loop keeps its state in locals (position, tape, stack) so that the compiler
 * holds them in registers: about 40 instructions per token. */
int st_jscan(const char *text, size_t len, struct st_jtape *tape, struct st_jerr *err)
{
    struct scan s = {(const unsigned char *)text, len, 0, tape, err};
    const unsigned char *p = s.p;
    uint32_t stack[ST_JSCAN_MAX_DEPTH];
    uint32_t depth = 0, n = 0, cap = tape->cap;
    struct st_jtok *tok = tape->tok;
    size_t pos = 0;
    tape->n = 0;
    if (len >= ST_JSCAN_MAX_LEN)
        return fail_at(&s, 0, "document too large");
    SKIP_WS(NONE);
    if (pos >= len)
        return fail_at(&s, pos, "'[' or '{' expected near end of input");
    if (p[pos] != '{' && p[pos] != '[')
        return fail_at(&s, pos, "'[' or '{' expected");

value:
    /* a value at pos; depth containers are open */
    if (pos >= len)
        return fail_at(&s, pos, "premature end of input");
    if (depth >= ST_JSCAN_MAX_DEPTH)
        return fail_at(&s, pos, "maximum nesting depth (%d) reached", ST_JSCAN_MAX_DEPTH);
    switch (p[pos]) {
    case '"':
        STRING();
        break;
    case '{':
        PUSH(ST_J_OBJECT, pos);
        stack[depth++] = n - 1;
        pos++;
        SKIP_WS(n - 1);
        if (pos < len && p[pos] == '}') {
            pos++;
            goto close;
        }
        goto key;
    case '[':
        PUSH(ST_J_ARRAY, pos);
        stack[depth++] = n - 1;
        pos++;
        SKIP_WS(n - 1);
        if (pos < len && p[pos] == ']') {
            pos++;
            goto close;
        }
        goto value;
    case 't':
    case 'f':
    case 'n': {
        unsigned char c = p[pos];
        const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t wl = c == 'f' ? 5 : 4;
        PUSH(c == 't' ? ST_J_TRUE : c == 'f' ? ST_J_FALSE : ST_J_NULL, pos);
        if (len - pos < wl || memcmp(p + pos, word, wl) != 0)
            return fail_at(&s, pos, "invalid token");
        pos += wl;
        tok[n - 1].end = (uint32_t)pos;
        break;
    }
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': {
        PUSH(ST_J_INTEGER, pos);
        size_t i = pos;
        if (p[i] == '-')
            i++;
        if (i < len && p[i] >= '1' && p[i] <= '9') {
            i++;
            while (i < len && p[i] >= '0' && p[i] <= '9')
                i++;
        } else if (i < len && p[i] == '0') {
            i++;
        }
        /* short plain integers are done here; the rest (and every error) take scan_number */
        if (i - pos < 19 && p[i - 1] >= '0' && p[i - 1] <= '9' &&
            (i >= len || (p[i] != '.' && p[i] != 'e' && p[i] != 'E'))) {
            pos = i;
        } else {
            bool real = false;
            s.pos = pos;
            if (scan_number(&s, &real) < 0)
                return -1;
            pos = s.pos;
            if (real)
                tok[n - 1].type = ST_J_REAL;
        }
        tok[n - 1].end = (uint32_t)pos;
        break;
    }
    default:
        return fail_at(&s, pos, "invalid token");
    }

after:
    /* a value just ended; what follows it in the open container */
    if (!depth)
        goto done;
    {
        uint32_t top = stack[depth - 1];
        SKIP_WS(top);
        if (pos >= len)
            return fail_at(&s, pos, "premature end of input");
        unsigned char c = p[pos];
        bool obj = tok[top].type == ST_J_OBJECT;
        if (c == ',') {
            pos++;
            SKIP_WS(top);
            if (obj)
                goto key;
            goto value;
        }
        if (c == (obj ? '}' : ']')) {
            pos++;
            goto close;
        }
        return fail_at(&s, pos, obj ? "',' or '}' expected" : "',' or ']' expected");
    }

key : {
    uint32_t top = stack[depth - 1];
    if (pos >= len || p[pos] != '"')
        return fail_at(&s, pos, "string or '}' expected");
    STRING();
    SKIP_WS(top);
    if (pos >= len || p[pos] != ':')
        return fail_at(&s, pos, "':' expected");
    pos++;
    SKIP_WS(top);
    goto value;
}

close : {
    /* the container on top of the stack ended at pos */
    uint32_t top = stack[--depth];
    struct st_jtok *k = &tok[top];
    k->end = (uint32_t)pos;
    k->next = n;
    if (depth && (k->flags & ST_JF_WS))
        tok[stack[depth - 1]].flags |= ST_JF_WS;
    goto after;
}

done:
    SKIP_WS(NONE);
    tape->n = n;
    if (pos != len)
        return fail_at(&s, pos, "end of input expected after the document");
    return 0;
}

#undef SKIP_WS
#undef PUSH
#undef STRING
#undef NONE

void st_jtape_free(struct st_jtape *tape)
{
    free(tape->tok);
    tape->tok = NULL;
    tape->n = tape->cap = 0;
}

/* Appends code point u as UTF-8. */
static size_t put_utf8(char *o, uint32_t u)
{
    if (u < 0x80) {
        o[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        o[0] = (char)(0xc0 | u >> 6);
        o[1] = (char)(0x80 | (u & 0x3f));
        return 2;
    }
    if (u < 0x10000) {
        o[0] = (char)(0xe0 | u >> 12);
        o[1] = (char)(0x80 | ((u >> 6) & 0x3f));
        o[2] = (char)(0x80 | (u & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | u >> 18);
    o[1] = (char)(0x80 | ((u >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((u >> 6) & 0x3f));
    o[3] = (char)(0x80 | (u & 0x3f));
    return 4;
}

/* Decodes the escape at p (after the backslash); *used gets the bytes consumed. The scan
 * already checked it. */
static size_t unescape(const unsigned char *p, char *o, size_t *used)
{
    static const char simple[128] = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
                                     ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t'};
    if (p[0] != 'u') {
        *used = 1;
        o[0] = simple[p[0] & 0x7f];
        return 1;
    }
    uint32_t u = 0, lo = 0;
    hex4(p + 1, &u);
    *used = 5;
    if (u >= 0xd800 && u <= 0xdbff) {
        hex4(p + 7, &lo);
        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        *used = 11;
    }
    return put_utf8(o, u);
}

size_t st_jstr_len(const char *text, const struct st_jtok *t)
{
    size_t n = t->end - t->start - 2;
    if (!(t->flags & ST_JF_ESC))
        return n;
    const unsigned char *p = (const unsigned char *)text + t->start + 1, *e = p + n;
    size_t out = 0;
    char tmp[4];
    while (p < e) {
        if (*p != '\\') {
            p++;
            out++;
            continue;
        }
        size_t used;
        out += unescape(p + 1, tmp, &used);
        p += 1 + used;
    }
    return out;
}

const char *st_jstr(const char *text, const struct st_jtok *t, char *buf, size_t size,
                    size_t *len)
{
    const char *raw = text + t->start + 1;
    size_t n = t->end - t->start - 2;
    if (!(t->flags & ST_JF_ESC)) {
        *len = n;
        return raw;
    }
    /* decoding never grows a string: size n + 1 always holds it whole */
    const unsigned char *p = (const unsigned char *)raw, *e = p + n;
    size_t o = 0;
    while (p < e) {
        if (*p != '\\') {
            if (o + 1 >= size)
                break;
            buf[o++] = (char)*p++;
            continue;
        }
        char tmp[4];
        size_t used, k = unescape(p + 1, tmp, &used);
        if (o + k >= size)
            break;
        memcpy(buf + o, tmp, k);
        o += k;
        p += 1 + used;
    }
    if (size)
        buf[o] = '\0';
    *len = o;
    return buf;
}

bool st_jstr_eq(const char *text, const struct st_jtok *t, const char *s, size_t len)
{
    size_t n = t->end - t->start - 2;
    if (!(t->flags & ST_JF_ESC))
        return n == len && memcmp(text + t->start + 1, s, len) == 0;
    if (len > n)
        return false;
    char small[256];
    char *buf = n < sizeof(small) ? small : malloc(n + 1);
    if (!buf)
        return false;
    size_t got;
    const char *v = st_jstr(text, t, buf, n + 1, &got);
    bool eq = got == len && memcmp(v, s, len) == 0;
    if (buf != small)
        free(buf);
    return eq;
}

int64_t st_jint(const char *text, const struct st_jtok *t)
{
    const char *p = text + t->start, *e = text + t->end;
    bool neg = *p == '-';
    if (neg)
        p++;
    uint64_t v = 0;
    while (p < e)
        v = v * 10 + (uint64_t)(*p++ - '0');
    return neg ? (int64_t)(0 - v) : (int64_t)v;
}

double st_jnum(const char *text, const struct st_jtok *t)
{
    if (t->type == ST_J_INTEGER)
        return (double)st_jint(text, t);
    const char *p = text + t->start, *e = text + t->end;
    /* exact fast path: up to 15 significant digits and no exponent is m / 10^k with both
     * exactly representable, which IEEE division rounds correctly (as strtod does) */
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    if (e - p <= 17) {
        const char *q = p;
        bool neg = *q == '-';
        if (neg)
            q++;
        uint64_t m = 0;
        int digits = 0, frac = -1;
        for (; q < e; q++) {
            if (*q == '.') {
                frac = 0;
                continue;
            }
            if (*q < '0' || *q > '9')
                break;
            m = m * 10 + (uint64_t)(*q - '0');
            digits++;
            if (frac >= 0)
                frac++;
        }
        if (q == e && digits <= 15 && frac >= 0) {
            double v = (double)m / pow10[frac];
            return neg ? -v : v;
        }
    }
    char small[64];
    size_t n = (size_t)(e - p);
    char *buf = n < sizeof(small) ? small : malloc(n + 1);
    if (!buf)
        return 0;
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    return v;
}

uint32_t st_jget(const char *text, const struct st_jtape *tape, uint32_t obj, const char *key)
{
    const struct st_jtok *t = tape->tok;
    if (t[obj].type != ST_J_OBJECT)
        return 0;
    size_t klen = strlen(key);
    uint32_t found = 0;
    for (uint32_t i = obj + 1; i < t[obj].next; i = t[i + 1].next)
        if (st_jstr_eq(text, &t[i], key, klen))
            found = i + 1;
    return found;
}

/* Length, first two and last bytes, mixed by a multiplier chosen so that the collector's
 * name sets (record.c) have no collision; a set that collides still works, linearly. */
static inline unsigned name_hash(const char *k, size_t len)
{
    uint32_t x = (uint32_t)len << 24 | (uint32_t)(unsigned char)k[0] << 16 |
                 (uint32_t)(len > 1 ? (unsigned char)k[1] : 0) << 8 | (unsigned char)k[len - 1];
    return (x * 0x1027c4d1u) >> 26;
}

static void names_prepare(struct st_jnames *set)
{
    memset(set->slot, -1, sizeof(set->slot));
    for (set->n = 0; set->names[set->n] && set->n < 32; set->n++) {
        int j = set->n;
        set->lens[j] = (uint8_t)strlen(set->names[j]);
        char pad[16] = {0};
        memcpy(pad, set->names[j], set->lens[j] < 16 ? set->lens[j] : 16);
        memcpy(set->word[j], pad, 16);
        unsigned h = name_hash(set->names[j], set->lens[j]);
        if (set->slot[h] >= 0)
            set->linear = true;
        set->slot[h] = (int8_t)j;
    }
    set->ready = true;
}

void st_jpick(const char *text, const struct st_jtape *tape, uint32_t obj,
              struct st_jnames *set, uint32_t *out)
{
    if (!set->ready)
        names_prepare(set);
    const struct st_jtok *t = tape->tok;
    memset(out, 0, (size_t)set->n * sizeof(*out));
    if (t[obj].type != ST_J_OBJECT)
        return;
    /* the document (token 0) ends at or before the end of the text */
    const char *doc_end = text + t[0].end;
    for (uint32_t i = obj + 1; i < t[obj].next; i = t[i + 1].next) {
        const struct st_jtok *k = &t[i];
        size_t kl = k->end - k->start - 2;
        const char *kp = text + k->start + 1;
        if ((k->flags & ST_JF_ESC) || set->linear) {
            for (int j = 0; j < set->n; j++)
                if (st_jstr_eq(text, k, set->names[j], set->lens[j]))
                    out[j] = i + 1;
            continue;
        }
        if (!kl)
            continue;
        int j = set->slot[name_hash(kp, kl)];
        if (j < 0 || set->lens[j] != kl)
            continue;
        if (kl <= 16 && kp + 16 <= doc_end) {
            /* 16 bytes can be read: compare words, masked to the key's length */
            uint64_t w0, w1;
            memcpy(&w0, kp, 8);
            memcpy(&w1, kp + 8, 8);
            if (kl < 8) {
                w0 &= ((uint64_t)1 << (8 * kl)) - 1;
                w1 = 0;
            } else if (kl < 16) {
                w1 &= kl == 8 ? 0 : ((uint64_t)1 << (8 * (kl - 8))) - 1;
            }
            if (w0 == set->word[j][0] && w1 == set->word[j][1])
                out[j] = i + 1;
        } else if (memcmp(kp, set->names[j], kl) == 0) {
            out[j] = i + 1;
        }
    }
}

static int tape_reserve(struct st_jtape *t, uint32_t more)
{
    if (t->n + (uint64_t)more <= t->cap)
        return 0;
    uint64_t cap = t->cap ? t->cap : 256;
    while (cap < t->n + (uint64_t)more)
        cap *= 2;
    if (cap > UINT32_MAX)
        return -1;
    struct st_jtok *tok = realloc(t->tok, (size_t)cap * sizeof(*tok));
    if (!tok)
        return -1;
    t->tok = tok;
    t->cap = (uint32_t)cap;
    return 0;
}

int st_jtape_copy(struct st_jtape *dst, const struct st_jtape *src, uint32_t from, uint32_t to,
                  int64_t delta)
{
    if (to <= from)
        return 0;
    if (tape_reserve(dst, to - from) < 0)
        return -1;
    uint32_t shift = dst->n - from;
    struct st_jtok *o = dst->tok + dst->n;
    for (uint32_t i = from; i < to; i++, o++) {
        *o = src->tok[i];
        o->start = (uint32_t)(o->start + delta);
        o->end = (uint32_t)(o->end + delta);
        o->next += shift;
    }
    dst->n += to - from;
    return 0;
}

int64_t st_jtape_open(struct st_jtape *dst, uint8_t type, uint32_t start)
{
    if (tape_reserve(dst, 1) < 0)
        return -1;
    struct st_jtok *o = &dst->tok[dst->n++];
    memset(o, 0, sizeof(*o));
    o->type = type;
    o->start = o->end = start;
    o->next = dst->n;
    return dst->n - 1;
}

static int jbuf_grow(struct st_jbuf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int st_jbuf_put(struct st_jbuf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap && jbuf_grow(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int st_jbuf_value(struct st_jbuf *b, const char *text, const struct st_jtape *tape, uint32_t i)
{
    const struct st_jtok *t = &tape->tok[i];
    size_t n = t->end - t->start;
    if (!(t->flags & ST_JF_WS))
        return st_jbuf_put(b, text + t->start, n);
    if (b->len + n + 1 > b->cap && jbuf_grow(b, n) < 0)
        return -1;
    const char *p = text + t->start, *e = p + n;
    char *o = b->data + b->len;
    bool in_string = false;
    while (p < e) {
        char c = *p++;
        if (in_string) {
            *o++ = c;
            if (c == '\\')
                *o++ = *p++;
            else if (c == '"')
                in_string = false;
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        } else {
            *o++ = c;
            in_string = c == '"';
        }
    }
    b->len = (size_t)(o - b->data);
    return 0;
}

void st_jbuf_free(struct st_jbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
