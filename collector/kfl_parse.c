/* kfl_parse.c - recursive-descent parser for KFL (docs/kfl.md). Builds the tree that
 * kfl_eval.c walks; field paths are resolved here to index-record fields where possible,
 * regular expressions and datetimes are compiled here, once.
 *
 * Precedence, loosest first: or (||), and (&&), not (!), comparison (== != < <= > >=
 * =~ matches), + and -, postfix (.field, ["key"], [0], .startsWith(...)). */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kfl_int.h"

struct parser {
    struct kfl_lexer lx;
    struct kfl_error *err;
    int depth;
    bool needs_json;
};

static struct kfl_node *parse_or(struct parser *p);

static struct kfl_node *node_new(enum kfl_node_kind kind, int pos, int len)
{
    struct kfl_node *n = calloc(1, sizeof(*n));
    if (n) {
        n->kind = kind;
        n->pos = pos;
        n->len = len;
    }
    return n;
}

void kfl_node_free(struct kfl_node *n)
{
    if (!n)
        return;
    kfl_node_free(n->a);
    kfl_node_free(n->b);
    free(n->str);
    for (int i = 0; i < n->nsegs; i++)
        free(n->segs[i].name);
    free(n->segs);
    free(n->proto_other);
    if (n->re_ok)
        regfree(&n->re);
    free(n);
}

static int advance(struct parser *p)
{
    return kfl_lex_next(&p->lx);
}

static struct kfl_token *tok(struct parser *p)
{
    return &p->lx.tok;
}

static bool is_kw(struct parser *p, const char *kw)
{
    return tok(p)->kind == KT_IDENT && strcmp(tok(p)->text, kw) == 0;
}

static void oom(struct parser *p)
{
    kfl_set_error(p->err, tok(p)->pos, 1, "out of memory");
}

/* Enters one more level of '(' or '!' at the current token; the caller leaves it with
 * p->depth-- once the nested part is parsed. Recursion is bounded so a query cannot
 * exhaust the stack. */
static int nest(struct parser *p)
{
    if (++p->depth > KFL_MAX_DEPTH) {
        kfl_set_error(p->err, tok(p)->pos, 1, "query nested too deeply (limit %d)", KFL_MAX_DEPTH);
        return -1;
    }
    return 0;
}

/* The current token ends n: steps past it. Returns n, or NULL (n freed) when n is NULL or
 * the lexer fails, so callers can write `return advance_past(p, n);`. */
static struct kfl_node *advance_past(struct parser *p, struct kfl_node *n)
{
    if (n && advance(p) < 0) {
        kfl_node_free(n);
        return NULL;
    }
    return n;
}

/* A new operator node whose left operand is `a`. On out of memory, reports it and frees
 * `a`: either way the caller no longer owns `a`. */
static struct kfl_node *node_over(struct parser *p, enum kfl_node_kind kind, int pos, int len,
                                  struct kfl_node *a)
{
    struct kfl_node *n = node_new(kind, pos, len);
    if (!n) {
        oom(p);
        kfl_node_free(a);
        return NULL;
    }
    n->a = a;
    return n;
}

/* How many NFA positions glibc's regcomp would build, roughly: bounded repetition copies
 * its operand ({m,n} makes n copies), so nested counts multiply - "(a{1000}){1000}" costs
 * 200 MB and a third level exhausts memory. Counts atoms, multiplies by repetition bounds
 * through groups, and doubles for every '+' (glibc copies the operand). Returns the
 * estimate, saturating at SIZE_MAX / 2. */
#define KFL_REGEX_MAX_POSITIONS 10000
static size_t regex_positions(const char *re)
{
    enum { MAXG = 64 };
    size_t sum[MAXG + 1] = {0}, last[MAXG + 1] = {0};
    int depth = 0;
    const size_t cap = SIZE_MAX / 2;
    for (const char *c = re; *c;) {
        if (*c == '(') {
            if (depth == MAXG) return cap;
            depth++;
            sum[depth] = last[depth] = 0;
            c++;
        } else if (*c == ')' && depth > 0) {
            size_t g = sum[depth--];
            if (g == 0) g = 1;
            sum[depth] = sum[depth] + g < cap ? sum[depth] + g : cap;
            last[depth] = g;
            c++;
        } else if (*c == '+') {
            /* glibc builds x+ as x x*: every + copies its operand once more. */
            size_t grown = last[depth] > cap / 2 ? cap : last[depth] * 2;
            size_t base = sum[depth] - last[depth];
            sum[depth] = grown > cap - base ? cap : base + grown;
            last[depth] = grown;
            c++;
        } else if (*c == '*' || *c == '?') {
            c++;
        } else if (*c == '{') {
            unsigned long m = 0, n = 0;
            const char *q = c + 1;
            while (*q >= '0' && *q <= '9' && m < 100000) m = m * 10 + (unsigned long)(*q++ - '0');
            n = m;
            if (*q == ',') {
                q++;
                n = 0;
                while (*q >= '0' && *q <= '9' && n < 100000) n = n * 10 + (unsigned long)(*q++ - '0');
                if (n < m) n = m + 1; /* {m,} */
            }
            size_t times = n > 1 ? n : 1;
            /* The last atom (or group) now stands `times` times. */
            size_t grown = last[depth] && times > cap / last[depth] ? cap : last[depth] * times;
            size_t base = sum[depth] - last[depth];
            sum[depth] = grown > cap - base ? cap : base + grown;
            last[depth] = grown;
            c = *q == '}' ? q + 1 : q;
        } else {
            if (*c == '\\' && c[1]) c++;
            if (*c == '[') { /* a bracket expression is one position */
                const char *q = c + 1;
                if (*q == '^') q++;
                if (*q == ']') q++;
                while (*q && *q != ']') q++;
                c = *q ? q : q - 1;
            }
            if (sum[depth] < cap) sum[depth]++;
            last[depth] = 1;
            c++;
        }
    }
    while (depth > 0) { /* unclosed groups still cost (regcomp builds before it fails) */
        size_t g = sum[depth--];
        sum[depth] = sum[depth] + g < cap ? sum[depth] + g : cap;
    }
    return sum[0];
}

/* regcomp with a complexity bound, so a query can never exhaust the collector's memory. */
static int compile_regex(struct parser *p, regex_t *re, const char *str)
{
    for (const char *c = str; *c; c++) {
        if (*c == '\\' && c[1] >= '1' && c[1] <= '9') {
            /* Back-references make matching exponential in glibc. */
            kfl_set_error(p->err, tok(p)->pos, tok(p)->len,
                          "back-references (\\%c) are not supported in regular expressions",
                          c[1]);
            return -1;
        }
        if (*c == '\\' && c[1]) c++;
    }
    size_t positions = regex_positions(str);
    if (positions > KFL_REGEX_MAX_POSITIONS) {
        kfl_set_error(p->err, tok(p)->pos, tok(p)->len,
                      "regular expression too complex: its repetitions expand to about %zu "
                      "positions (limit %d); use smaller {m,n} counts or * and +",
                      positions, KFL_REGEX_MAX_POSITIONS);
        return -1;
    }
    int rc = regcomp(re, str, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char ebuf[100];
        regerror(rc, re, ebuf, sizeof(ebuf));
        kfl_set_error(p->err, tok(p)->pos, tok(p)->len, "bad regular expression: %s", ebuf);
        return -1;
    }
    return 0;
}

static void unexpected(struct parser *p, const char *what)
{
    char buf[80];
    struct kfl_token *t = tok(p);
    kfl_set_error(p->err, t->pos, t->kind == KT_END ? 1 : t->len, "expected %s, found %s", what,
                  kfl_tok_describe(t, buf, sizeof(buf)));
}

/* The current token must be `kind`; otherwise reports "expected <what>". */
static int expect(struct parser *p, enum kfl_tok_kind kind, const char *what)
{
    if (tok(p)->kind != kind) {
        unexpected(p, what);
        return -1;
    }
    return 0;
}

/* Steps to the next token, which must be `kind`. */
static int next_expect(struct parser *p, enum kfl_tok_kind kind, const char *what)
{
    return advance(p) < 0 ? -1 : expect(p, kind, what);
}

/* The current token must be the string argument of n (a method call or the regex
 * operator; `what` names it for the error). Moves its text into n, compiles it when n is a
 * regex, and steps past it. Returns 0, or -1 with the error set. */
static int string_operand(struct parser *p, struct kfl_node *n, const char *what)
{
    if (expect(p, KT_STRING, what) < 0)
        return -1;
    n->str = tok(p)->text;
    n->str_len = tok(p)->text_len;
    tok(p)->text = NULL;
    if (n->kind == KN_REGEX) {
        if (compile_regex(p, &n->re, n->str) < 0)
            return -1;
        n->re_ok = true;
    }
    return advance(p);
}

static const struct {
    const char *path;
    enum kfl_fast fast;
} fast_fields[] = {
    {"id", KF_ID},
    {"timestamp", KF_TIMESTAMP},
    {"elapsedTime", KF_ELAPSED},
    {"protocol.name", KF_PROTO_NAME},
    {"src.ip", KF_SRC_IP},
    {"src.name", KF_SRC_NAME},
    {"src.namespace", KF_SRC_NS},
    {"src.workload", KF_SRC_WORKLOAD},
    {"src.node", KF_SRC_NODE},
    {"src.port", KF_SRC_PORT},
    {"dst.ip", KF_DST_IP},
    {"dst.name", KF_DST_NAME},
    {"dst.namespace", KF_DST_NS},
    {"dst.workload", KF_DST_WORKLOAD},
    {"dst.node", KF_DST_NODE},
    {"dst.port", KF_DST_PORT},
    {"node.name", KF_NODE_NAME},
    {"outgoing", KF_OUTGOING},
    {"request.method", KF_METHOD},
    {"request.path", KF_PATH},
    {"response.status", KF_STATUS},
    {"summary", KF_SUMMARY},
    {"error", KF_ERROR},
};

/* Top-level fields of an entry: a bare name among these is a field, any other bare name
 * is a protocol (so protocols added later work without a change here). */
static const char *const entry_fields[] = {
    "id", "timestamp", "elapsedTime", "protocol", "src", "dst", "node", "outgoing", "seq",
    "request", "response", "summary", "error", "merged", NULL,
};

static void resolve_fast(struct parser *p, struct kfl_node *n)
{
    char path[128];
    size_t off = 0;
    for (int i = 0; i < n->nsegs; i++) {
        if (!n->segs[i].name) {
            p->needs_json = true;
            return;
        }
        int w = snprintf(path + off, sizeof(path) - off, "%s%s", i ? "." : "", n->segs[i].name);
        if (w < 0 || (size_t)w >= sizeof(path) - off) {
            p->needs_json = true;
            return;
        }
        off += (size_t)w;
    }
    for (size_t i = 0; i < sizeof(fast_fields) / sizeof(fast_fields[0]); i++)
        if (strcmp(path, fast_fields[i].path) == 0) {
            n->fast = fast_fields[i].fast;
            return;
        }
    p->needs_json = true;
}

static int add_seg(struct kfl_node *n, char *name, long index)
{
    struct kfl_seg *s = realloc(n->segs, sizeof(*s) * (size_t)(n->nsegs + 1));
    if (!s)
        return -1;
    n->segs = s;
    s[n->nsegs].name = name;
    s[n->nsegs].index = index;
    n->nsegs++;
    return 0;
}

static struct kfl_node *literal_str(struct parser *p)
{
    struct kfl_node *n = node_new(KN_LITERAL, tok(p)->pos, tok(p)->len);
    if (!n) {
        oom(p);
        return NULL;
    }
    n->lit = KL_STR;
    n->str = tok(p)->text;
    n->str_len = tok(p)->text_len;
    tok(p)->text = NULL;
    return n;
}

/* A function call: now(), datetime("..."), within(5m). The name token is current. */
static struct kfl_node *parse_call(struct parser *p)
{
    int pos = tok(p)->pos;
    char *name = tok(p)->text;
    tok(p)->text = NULL;
    struct kfl_node *n = NULL;
    if (advance(p) < 0 || advance(p) < 0) /* name, '(' */
        goto fail;
    if (strcmp(name, "now") == 0) {
        if (expect(p, KT_RPAREN, "')' (now() takes no argument)") < 0)
            goto fail;
        n = node_new(KN_NOW, pos, tok(p)->pos + 1 - pos);
    } else if (strcmp(name, "datetime") == 0) {
        if (expect(p, KT_STRING, "a time string like \"2026-11-25T10:00:00Z\"") < 0)
            goto fail;
        int64_t ms;
        if (kfl_parse_datetime(tok(p)->text, &ms) < 0) {
            kfl_set_error(p->err, tok(p)->pos, tok(p)->len,
                          "\"%.60s\" is not an RFC 3339 time like \"2026-11-25T10:00:00Z\"",
                          tok(p)->text);
            goto fail;
        }
        if (next_expect(p, KT_RPAREN, "')' after the datetime argument") < 0)
            goto fail;
        n = node_new(KN_LITERAL, pos, tok(p)->pos + 1 - pos);
        if (n) {
            n->lit = KL_NUM;
            n->num = (double)ms;
        }
    } else if (strcmp(name, "within") == 0) {
        /* within(5m) == timestamp >= now() - 5m */
        if (tok(p)->kind != KT_NUMBER || !tok(p)->is_duration) {
            unexpected(p, "a duration like 5m, 30s or 2h");
            goto fail;
        }
        double span = tok(p)->number;
        if (next_expect(p, KT_RPAREN, "')' after the duration") < 0)
            goto fail;
        int len = tok(p)->pos + 1 - pos;
        n = node_new(KN_CMP, pos, len);
        if (!n)
            goto nomem;
        n->op = KT_GE;
        n->a = node_new(KN_FIELD, pos, len);
        n->b = node_new(KN_SUB, pos, len);
        if (!n->a || !n->b)
            goto nomem;
        n->a->fast = KF_TIMESTAMP;
        char *ts = strdup("timestamp");
        if (!ts || add_seg(n->a, ts, 0) < 0) {
            free(ts);
            goto nomem;
        }
        n->b->a = node_new(KN_NOW, pos, len);
        n->b->b = node_new(KN_LITERAL, pos, len);
        if (!n->b->a || !n->b->b)
            goto nomem;
        n->b->b->lit = KL_NUM;
        n->b->b->num = span;
    } else {
        kfl_set_error(p->err, pos, (int)strlen(name),
                      "unknown function '%.40s' (known: now, datetime, within)", name);
        goto fail;
    }
    if (!n)
        goto nomem;
    free(name);
    return advance_past(p, n);
nomem:
    oom(p);
fail:
    kfl_node_free(n);
    free(name);
    return NULL;
}

static struct kfl_node *parse_primary(struct parser *p)
{
    struct kfl_token *t = tok(p);
    struct kfl_node *n = NULL;
    switch (t->kind) {
    case KT_LPAREN: {
        if (nest(p) < 0)
            return NULL;
        int open = t->pos;
        if (advance(p) < 0)
            return NULL;
        n = parse_or(p);
        if (!n)
            return NULL;
        if (tok(p)->kind != KT_RPAREN) {
            char buf[80];
            kfl_set_error(p->err, tok(p)->pos, tok(p)->kind == KT_END ? 1 : tok(p)->len,
                          "missing ')' to close the '(' at position %d, found %s", open,
                          kfl_tok_describe(tok(p), buf, sizeof(buf)));
            kfl_node_free(n);
            return NULL;
        }
        p->depth--;
        return advance_past(p, n);
    }
    case KT_STRING:
        return advance_past(p, literal_str(p));
    case KT_NUMBER:
    case KT_MINUS: {
        int pos = t->pos;
        double sign = 1;
        if (t->kind == KT_MINUS) {
            if (next_expect(p, KT_NUMBER, "a number after '-'") < 0)
                return NULL;
            sign = -1;
        }
        n = node_new(KN_LITERAL, pos, tok(p)->pos + tok(p)->len - pos);
        if (!n) {
            oom(p);
            return NULL;
        }
        n->lit = KL_NUM;
        n->num = sign * tok(p)->number;
        return advance_past(p, n);
    }
    case KT_IDENT:
        break;
    default:
        unexpected(p, "a value (a field, a string, a number or '(')");
        return NULL;
    }

    /* an identifier: keyword literal, function call, protocol or field path */
    const char *name = t->text;
    if (strcmp(name, "true") == 0 || strcmp(name, "false") == 0 || strcmp(name, "null") == 0) {
        n = node_new(KN_LITERAL, t->pos, t->len);
        if (!n) {
            oom(p);
            return NULL;
        }
        n->lit = name[0] == 'n' ? KL_NULL : KL_BOOL;
        n->boolean = name[0] == 't';
        return advance_past(p, n);
    }
    if (strcmp(name, "and") == 0 || strcmp(name, "or") == 0 || strcmp(name, "matches") == 0) {
        unexpected(p, "a value");
        return NULL;
    }
    if (p->lx.src[p->lx.pos] == '(')
        return parse_call(p);

    n = node_new(KN_FIELD, t->pos, t->len);
    if (!n || add_seg(n, t->text, 0) < 0) {
        kfl_node_free(n);
        oom(p);
        return NULL;
    }
    t->text = NULL;
    if (advance(p) < 0)
        goto fail;
    /* path continues with .name (not followed by '(' - that is a method) or [key] */
    for (;;) {
        if (tok(p)->kind == KT_DOT) {
            /* peek: a method call ends the path */
            int save = p->lx.pos;
            const char *s = p->lx.src;
            while (s[save] == ' ')
                save++;
            int e = save;
            while ((s[e] >= 'a' && s[e] <= 'z') || (s[e] >= 'A' && s[e] <= 'Z') ||
                   (s[e] >= '0' && s[e] <= '9') || s[e] == '_')
                e++;
            int f = e;
            while (s[f] == ' ')
                f++;
            if (e > save && s[f] == '(')
                break;
            if (next_expect(p, KT_IDENT, "a field name after '.'") < 0)
                goto fail;
            if (add_seg(n, tok(p)->text, 0) < 0) {
                oom(p);
                goto fail;
            }
            tok(p)->text = NULL;
            n->len = tok(p)->pos + tok(p)->len - n->pos;
            if (advance(p) < 0)
                goto fail;
        } else if (tok(p)->kind == KT_LBRACK) {
            if (advance(p) < 0)
                goto fail;
            if (tok(p)->kind == KT_STRING) {
                if (add_seg(n, tok(p)->text, 0) < 0) {
                    oom(p);
                    goto fail;
                }
                tok(p)->text = NULL;
            } else if (tok(p)->kind == KT_NUMBER && !tok(p)->is_duration && tok(p)->number >= 0 &&
                       tok(p)->number < 1e9 && tok(p)->number == (long)tok(p)->number) {
                if (add_seg(n, NULL, (long)tok(p)->number) < 0) {
                    oom(p);
                    goto fail;
                }
            } else {
                unexpected(p, "a key in quotes or an index after '['");
                goto fail;
            }
            if (next_expect(p, KT_RBRACK, "']'") < 0)
                goto fail;
            n->len = tok(p)->pos + 1 - n->pos;
            if (advance(p) < 0)
                goto fail;
        } else {
            break;
        }
    }
    if (n->nsegs == 1) {
        const char *bare = n->segs[0].name;
        enum st_rproto rp = st_rproto_from_name(bare);
        bool is_field = false;
        for (int i = 0; entry_fields[i]; i++)
            if (strcmp(bare, entry_fields[i]) == 0)
                is_field = true;
        if (rp != ST_RP_OTHER || !is_field) {
            struct kfl_node *pn = node_new(KN_PROTO, n->pos, n->len);
            if (!pn) {
                oom(p);
                goto fail;
            }
            if (rp == ST_RP_HTTP)
                pn->proto_mask = (1u << ST_RP_HTTP) | (1u << ST_RP_HTTP2);
            else if (rp != ST_RP_OTHER)
                pn->proto_mask = 1u << rp;
            else {
                pn->proto_other = n->segs[0].name;
                n->segs[0].name = NULL;
            }
            kfl_node_free(n);
            return pn;
        }
    }
    resolve_fast(p, n);
    return n;
fail:
    kfl_node_free(n);
    return NULL;
}

/* primary followed by method calls: .startsWith("x") .endsWith("x") .contains("x")
 * .matches("re") */
static struct kfl_node *parse_postfix(struct parser *p)
{
    struct kfl_node *n = parse_primary(p);
    while (n && tok(p)->kind == KT_DOT) {
        if (next_expect(p, KT_IDENT, "a method name after '.'") < 0)
            goto fail;
        enum kfl_node_kind kind;
        const char *m = tok(p)->text;
        if (strcmp(m, "startsWith") == 0)
            kind = KN_STARTS;
        else if (strcmp(m, "endsWith") == 0)
            kind = KN_ENDS;
        else if (strcmp(m, "contains") == 0)
            kind = KN_CONTAINS;
        else if (strcmp(m, "matches") == 0)
            kind = KN_REGEX;
        else {
            kfl_set_error(p->err, tok(p)->pos, tok(p)->len,
                          "unknown method '%.40s' (known: startsWith, endsWith, contains, matches)",
                          m);
            goto fail;
        }
        int mpos = tok(p)->pos;
        if (next_expect(p, KT_LPAREN, "'(' after the method name") < 0 || advance(p) < 0)
            goto fail;
        n = node_over(p, kind, mpos, 1, n);
        if (!n || string_operand(p, n, "a string argument in quotes") < 0)
            goto fail;
        if (expect(p, KT_RPAREN, "')' after the argument") < 0)
            goto fail;
        n->len = tok(p)->pos + 1 - mpos;
        if (advance(p) < 0)
            goto fail;
    }
    return n;
fail:
    kfl_node_free(n);
    return NULL;
}

/* One left-associative binary level: operand (operator operand)*. `op_at` says whether the
 * current token is this level's operator, and which node it makes. */
typedef struct kfl_node *(*operand_fn)(struct parser *p);
typedef bool (*binary_op_fn)(struct parser *p, enum kfl_node_kind *kind);

static struct kfl_node *parse_binary(struct parser *p, operand_fn operand, binary_op_fn op_at)
{
    struct kfl_node *n = operand(p);
    enum kfl_node_kind kind;
    while (n && op_at(p, &kind)) {
        n = node_over(p, kind, tok(p)->pos, tok(p)->len, n);
        if (!n || advance(p) < 0 || !(n->b = operand(p))) {
            kfl_node_free(n);
            return NULL;
        }
    }
    return n;
}

static bool sum_op(struct parser *p, enum kfl_node_kind *kind)
{
    *kind = tok(p)->kind == KT_PLUS ? KN_ADD : KN_SUB;
    return tok(p)->kind == KT_PLUS || tok(p)->kind == KT_MINUS;
}

static bool and_op(struct parser *p, enum kfl_node_kind *kind)
{
    *kind = KN_AND;
    return tok(p)->kind == KT_AND || is_kw(p, "and");
}

static bool or_op(struct parser *p, enum kfl_node_kind *kind)
{
    *kind = KN_OR;
    return tok(p)->kind == KT_OR || is_kw(p, "or");
}

static struct kfl_node *parse_sum(struct parser *p)
{
    return parse_binary(p, parse_postfix, sum_op);
}

/* sum, optionally compared with a sum (== != < <= > >=) or matched against a regular
 * expression (=~ or matches): comparisons do not chain. */
static struct kfl_node *parse_cmp(struct parser *p)
{
    struct kfl_node *n = parse_sum(p);
    if (!n)
        return NULL;
    enum kfl_tok_kind k = tok(p)->kind;
    if (k == KT_EQ || k == KT_NE || k == KT_LT || k == KT_LE || k == KT_GT || k == KT_GE) {
        char opname[8];
        snprintf(opname, sizeof(opname), "%.*s", tok(p)->len, p->lx.src + tok(p)->pos);
        n = node_over(p, KN_CMP, tok(p)->pos, tok(p)->len, n);
        if (!n || advance(p) < 0)
            goto fail;
        n->op = k;
        enum kfl_tok_kind v = tok(p)->kind;
        bool keyword = v == KT_IDENT && (is_kw(p, "and") || is_kw(p, "or") || is_kw(p, "matches"));
        if ((v != KT_IDENT && v != KT_STRING && v != KT_NUMBER && v != KT_LPAREN && v != KT_MINUS) ||
            keyword) {
            char buf[80];
            kfl_set_error(p->err, tok(p)->pos, tok(p)->kind == KT_END ? 1 : tok(p)->len,
                          "expected a value after '%s', found %s", opname,
                          kfl_tok_describe(tok(p), buf, sizeof(buf)));
            goto fail;
        }
        if (!(n->b = parse_sum(p)))
            goto fail;
    } else if (k == KT_MATCH || is_kw(p, "matches")) {
        n = node_over(p, KN_REGEX, tok(p)->pos, tok(p)->len, n);
        if (!n || advance(p) < 0 || string_operand(p, n, "a regular expression in quotes") < 0)
            goto fail;
    }
    return n;
fail:
    kfl_node_free(n);
    return NULL;
}

static struct kfl_node *parse_not(struct parser *p)
{
    if (tok(p)->kind == KT_NOT || is_kw(p, "not")) {
        if (nest(p) < 0)
            return NULL;
        struct kfl_node *n = node_new(KN_NOT, tok(p)->pos, tok(p)->len);
        if (!n) {
            oom(p);
            return NULL;
        }
        if (advance(p) < 0 || !(n->a = parse_not(p))) {
            kfl_node_free(n);
            return NULL;
        }
        p->depth--;
        return n;
    }
    return parse_cmp(p);
}

static struct kfl_node *parse_and(struct parser *p)
{
    return parse_binary(p, parse_not, and_op);
}

static struct kfl_node *parse_or(struct parser *p)
{
    return parse_binary(p, parse_and, or_op);
}

struct kfl_query *kfl_compile(const char *text, struct kfl_error *err)
{
    struct kfl_error scratch;
    if (!err)
        err = &scratch;
    memset(err, 0, sizeof(*err));
    if (!text)
        text = "";
    size_t len = strlen(text);
    if (len > KFL_MAX_QUERY) {
        kfl_set_error(err, KFL_MAX_QUERY, (int)(len - KFL_MAX_QUERY),
                      "query longer than %d characters", KFL_MAX_QUERY);
        return NULL;
    }
    struct kfl_query *q = calloc(1, sizeof(*q));
    if (!q) {
        kfl_set_error(err, 0, 1, "out of memory");
        return NULL;
    }
    struct parser p = {.lx = {.src = text, .err = err}, .err = err};
    if (advance(&p) < 0)
        goto fail;
    if (p.lx.tok.kind == KT_END) {
        kfl_lex_free(&p.lx);
        return q; /* empty: match all */
    }
    q->root = parse_or(&p);
    if (!q->root)
        goto fail;
    if (p.lx.tok.kind != KT_END) {
        if (p.lx.tok.kind == KT_RPAREN)
            kfl_set_error(err, p.lx.tok.pos, 1, "unmatched ')'");
        else
            unexpected(&p, "'and', 'or' or the end of the query");
        goto fail;
    }
    q->needs_json = p.needs_json;
    kfl_lex_free(&p.lx);
    return q;
fail:
    kfl_lex_free(&p.lx);
    kfl_free(q);
    return NULL;
}

void kfl_free(struct kfl_query *q)
{
    if (!q)
        return;
    kfl_node_free(q->root);
    free(q);
}

bool kfl_needs_json(const struct kfl_query *q)
{
    return q->needs_json;
}

bool kfl_is_all(const struct kfl_query *q)
{
    return q->root == NULL;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int kfl_parse_datetime(const char *s, int64_t *ms)
{
    int Y, M, D, h = 0, m = 0, sec = 0;
    size_t n = strlen(s);
    if (n < 10 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
        digits(s + 8, 2, &D))
        return -1;
    const char *p = s + 10;
    double frac = 0;
    int64_t offset_min = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 6 || digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &m))
            return -1;
        p += 6;
        if (*p == ':') {
            if (digits(p + 1, 2, &sec))
                return -1;
            p += 3;
            if (*p == '.') {
                double scale = 0.1;
                p++;
                if (*p < '0' || *p > '9')
                    return -1;
                while (*p >= '0' && *p <= '9') {
                    frac += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (strlen(p) < 6 || digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
                return -1;
            offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
            p += 6;
        }
    }
    if (*p != '\0' || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h,
                    .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - offset_min * 60) * 1000 + (int64_t)(frac * 1000 + 0.5);
    return 0;
}
