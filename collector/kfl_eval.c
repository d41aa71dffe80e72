/* kfl_eval.c - evaluates a compiled KFL query against one entry.
 *
 * Semantics (docs/kfl.md): a field that is missing is "absent"; `==`, `<` and friends are
 * false against an absent value (except `== null`), `!=` is exactly `not ==`, so
 * `request.path != "/health"` keeps entries that have no path. A number and a string
 * holding a number compare as numbers (`dst.port == "8080"`). A path that crosses an
 * array matches when any element does (`dns.questions.name == "x"`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kfl_int.h"

enum vtype { V_ABSENT, V_NULL, V_BOOL, V_NUM, V_STR, V_OBJ };

struct kval {
    enum vtype t;
    bool b;
    double n;
    const char *s; /* NUL-terminated */
    size_t len;
};

#define MAX_FANOUT 32 /* values of one path considered per entry */

struct vlist {
    struct kval v[MAX_FANOUT];
    int n;
    char scratch[24]; /* text of a value made up here (the id) */
};

static json_t *subject_json(struct kfl_subject *s)
{
    if (!s->json && s->rec) {
        s->json = st_rec_load(s->rec);
        s->json_owned = s->json != NULL;
    }
    return s->json;
}

void kfl_subject_done(struct kfl_subject *s)
{
    if (s->json_owned)
        json_decref(s->json);
    s->json = NULL;
    s->json_owned = false;
}

static void push(struct vlist *l, struct kval v)
{
    if (l->n < MAX_FANOUT)
        l->v[l->n++] = v;
}

static struct kval from_json(json_t *j)
{
    struct kval v = {.t = V_ABSENT};
    switch (json_typeof(j)) {
    case JSON_STRING:
        v.t = V_STR;
        v.s = json_string_value(j);
        v.len = json_string_length(j);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        v.t = V_NUM;
        v.n = json_number_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v.t = V_BOOL;
        v.b = json_is_true(j);
        break;
    case JSON_NULL:
        v.t = V_NULL;
        break;
    default:
        v.t = V_OBJ;
        break;
    }
    return v;
}

static json_t *object_get_ci(json_t *obj, const char *key, bool fold)
{
    json_t *v = json_object_get(obj, key);
    if (v || !fold)
        return v;
    const char *k;
    json_object_foreach(obj, k, v)
    {
        if (strcasecmp(k, key) == 0)
            return v;
    }
    return NULL;
}

static void walk(json_t *cur, const struct kfl_seg *segs, int i, int nsegs, struct vlist *out,
                 bool fold)
{
    if (!cur || out->n >= MAX_FANOUT)
        return;
    if (i == nsegs) {
        if (json_is_array(cur) && json_array_size(cur) > 0) {
            /* a list of values: compare against each element */
            size_t k;
            json_t *el;
            json_array_foreach(cur, k, el) push(out, from_json(el));
        } else {
            push(out, from_json(cur));
        }
        return;
    }
    const struct kfl_seg *seg = &segs[i];
    if (seg->name) {
        if (json_is_array(cur)) {
            size_t k;
            json_t *el;
            json_array_foreach(cur, k, el) walk(el, segs, i, nsegs, out, fold);
            return;
        }
        if (!json_is_object(cur))
            return;
        json_t *next = object_get_ci(cur, seg->name, fold);
        walk(next, segs, i + 1, nsegs, out, strcmp(seg->name, "headers") == 0);
    } else if (json_is_array(cur)) {
        walk(json_array_get(cur, (size_t)seg->index), segs, i + 1, nsegs, out, false);
    }
}

static struct kval vstr(const char *s)
{
    struct kval v = {.t = s ? V_STR : V_ABSENT, .s = s, .len = s ? strlen(s) : 0};
    return v;
}

static struct kval vatom(uint32_t id)
{
    struct kval v = {.t = id ? V_STR : V_ABSENT, .s = st_atom_str(id), .len = st_atom_len(id)};
    return v;
}

static struct kval vnum(double n)
{
    struct kval v = {.t = V_NUM, .n = n};
    return v;
}

static bool fast_value(const struct kfl_node *n, const struct st_rec *r, struct kval *v,
                       char *scratch, size_t size)
{
    switch (n->fast) {
    case KF_NONE: return false;
    case KF_ID:
        /* a string, as in the JSON; compares with numbers as a numeric string */
        snprintf(scratch, size, "%llu", (unsigned long long)r->id);
        *v = vstr(scratch);
        return true;
    case KF_TIMESTAMP: *v = vnum((double)r->timestamp); return true;
    case KF_ELAPSED:
        if (r->flags & ST_REC_HAS_ELAPSED)
            *v = vnum(r->elapsed);
        else
            v->t = V_ABSENT;
        return true;
    case KF_PROTO_NAME: *v = vatom(r->atom[ST_RS_PROTO_NAME]); return true;
    case KF_SRC_IP: *v = vatom(r->atom[ST_RS_SRC_IP]); return true;
    case KF_SRC_NAME: *v = vatom(r->atom[ST_RS_SRC_NAME]); return true;
    case KF_SRC_NS: *v = vatom(r->atom[ST_RS_SRC_NS]); return true;
    case KF_SRC_WORKLOAD: *v = vatom(r->atom[ST_RS_SRC_WORKLOAD]); return true;
    case KF_SRC_NODE: *v = vatom(r->atom[ST_RS_SRC_NODE]); return true;
    case KF_DST_IP: *v = vatom(r->atom[ST_RS_DST_IP]); return true;
    case KF_DST_NAME: *v = vatom(r->atom[ST_RS_DST_NAME]); return true;
    case KF_DST_NS: *v = vatom(r->atom[ST_RS_DST_NS]); return true;
    case KF_DST_WORKLOAD: *v = vatom(r->atom[ST_RS_DST_WORKLOAD]); return true;
    case KF_DST_NODE: *v = vatom(r->atom[ST_RS_DST_NODE]); return true;
    case KF_NODE_NAME: *v = vatom(r->atom[ST_RS_NODE_NAME]); return true;
    case KF_METHOD: *v = vatom(r->atom[ST_RS_METHOD]); return true;
    case KF_PATH: *v = vatom(r->atom[ST_RS_PATH]); return true;
    case KF_SUMMARY: *v = vatom(r->atom[ST_RS_SUMMARY]); return true;
    case KF_SRC_PORT:
    case KF_DST_PORT: {
        uint32_t port = n->fast == KF_SRC_PORT ? r->src_port : r->dst_port;
        if (port == ST_REC_NO_PORT)
            v->t = V_ABSENT;
        else
            *v = vnum(port);
        return true;
    }
    case KF_OUTGOING:
        v->t = (r->flags & ST_REC_HAS_OUTGOING) ? V_BOOL : V_ABSENT;
        v->b = (r->flags & ST_REC_OUTGOING) != 0;
        return true;
    case KF_STATUS:
        if (r->flags & ST_REC_HAS_STATUS)
            *v = vnum(r->status);
        else
            v->t = V_ABSENT;
        return true;
    case KF_ERROR:
        v->t = (r->flags & ST_REC_ERROR) ? V_OBJ : V_ABSENT;
        return true;
    }
    return false;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool truth(const struct kfl_node *n, struct kfl_subject *s);

/* The values of a node: one for literals and operators, zero or more for a field. */
static void values(const struct kfl_node *n, struct kfl_subject *s, struct vlist *out)
{
    out->n = 0;
    switch (n->kind) {
    case KN_LITERAL: {
        struct kval v = {.t = V_NULL};
        if (n->lit == KL_BOOL)
            v.t = V_BOOL, v.b = n->boolean;
        else if (n->lit == KL_NUM)
            v = vnum(n->num);
        else if (n->lit == KL_STR)
            v.t = V_STR, v.s = n->str, v.len = n->str_len;
        push(out, v);
        return;
    }
    case KN_FIELD: {
        struct kval v = {.t = V_ABSENT};
        if (s->rec && fast_value(n, s->rec, &v, out->scratch, sizeof(out->scratch))) {
            push(out, v);
            return;
        }
        json_t *j = subject_json(s);
        walk(j, n->segs, 0, n->nsegs, out, false);
        /* the record's id is authoritative (JSON built without rec: "id" string) */
        return;
    }
    case KN_NOW:
        push(out, vnum((double)now_ms()));
        return;
    case KN_ADD:
    case KN_SUB: {
        struct vlist a, b;
        values(n->a, s, &a);
        values(n->b, s, &b);
        if (a.n > 0 && b.n > 0 && a.v[0].t == V_NUM && b.v[0].t == V_NUM)
            push(out, vnum(n->kind == KN_ADD ? a.v[0].n + b.v[0].n : a.v[0].n - b.v[0].n));
        return;
    }
    default: {
        struct kval v = {.t = V_BOOL, .b = truth(n, s)};
        push(out, v);
        return;
    }
    }
}

/* A string that holds a whole number ("8080", " 1.5" is not) as a double. */
static bool str_number(const struct kval *v, double *out)
{
    if (v->len == 0 || v->len > 40)
        return false;
    char *end;
    const char *s = v->s;
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '+' || s[0] == '.'))
        return false;
    double d = strtod(s, &end);
    if (end != s + v->len)
        return false;
    *out = d;
    return true;
}

/* Text form of a scalar for string operations; buf must hold 40 bytes. */
static const char *as_text(const struct kval *v, char *buf, size_t size)
{
    switch (v->t) {
    case V_STR: return v->s;
    case V_NUM:
        if (v->n == (double)(long long)v->n && v->n > -1e18 && v->n < 1e18)
            snprintf(buf, size, "%lld", (long long)v->n);
        else
            snprintf(buf, size, "%.17g", v->n);
        return buf;
    case V_BOOL: return v->b ? "true" : "false";
    default: return NULL;
    }
}

/* Compares two scalars: sets *cmp (-1/0/1) and returns true when they are comparable. */
static bool compare(const struct kval *a, const struct kval *b, int *cmp)
{
    double x, y;
    if (a->t == V_NUM && b->t == V_NUM) {
        x = a->n;
        y = b->n;
    } else if (a->t == V_NUM && b->t == V_STR) {
        int64_t ms;
        x = a->n;
        if (!str_number(b, &y)) {
            if (kfl_parse_datetime(b->s, &ms) < 0)
                return false;
            y = (double)ms;
        }
    } else if (a->t == V_STR && b->t == V_NUM) {
        bool ok = compare(b, a, cmp);
        *cmp = -*cmp;
        return ok;
    } else if (a->t == V_STR && b->t == V_STR) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->s, b->s, n);
        if (c == 0)
            c = a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
        *cmp = c < 0 ? -1 : c > 0;
        return true;
    } else if (a->t == V_BOOL && b->t == V_BOOL) {
        *cmp = (int)a->b - (int)b->b;
        return true;
    } else if ((a->t == V_BOOL && b->t == V_STR) || (a->t == V_STR && b->t == V_BOOL)) {
        const struct kval *bv = a->t == V_BOOL ? a : b, *sv = a->t == V_BOOL ? b : a;
        *cmp = strcmp(bv->b ? "true" : "false", sv->s) == 0 ? 0 : 1;
        return true;
    } else {
        return false;
    }
    *cmp = x < y ? -1 : x > y ? 1 : 0;
    return x == x && y == y; /* NaN compares with nothing */
}

static bool equal(const struct kval *a, const struct kval *b)
{
    bool a_none = a->t == V_ABSENT || a->t == V_NULL, b_none = b->t == V_ABSENT || b->t == V_NULL;
    if (a_none || b_none)
        return a_none && b_none;
    int c;
    return compare(a, b, &c) && c == 0;
}

/* Index-record string fields, by kfl_fast. */
static int fast_string_index(enum kfl_fast f)
{
    switch (f) {
    case KF_PROTO_NAME: return ST_RS_PROTO_NAME;
    case KF_SRC_IP: return ST_RS_SRC_IP;
    case KF_SRC_NAME: return ST_RS_SRC_NAME;
    case KF_SRC_NS: return ST_RS_SRC_NS;
    case KF_SRC_WORKLOAD: return ST_RS_SRC_WORKLOAD;
    case KF_SRC_NODE: return ST_RS_SRC_NODE;
    case KF_DST_IP: return ST_RS_DST_IP;
    case KF_DST_NAME: return ST_RS_DST_NAME;
    case KF_DST_NS: return ST_RS_DST_NS;
    case KF_DST_WORKLOAD: return ST_RS_DST_WORKLOAD;
    case KF_DST_NODE: return ST_RS_DST_NODE;
    case KF_NODE_NAME: return ST_RS_NODE_NAME;
    case KF_METHOD: return ST_RS_METHOD;
    case KF_PATH: return ST_RS_PATH;
    case KF_SUMMARY: return ST_RS_SUMMARY;
    default: return -1;
    }
}

/* `field == "text"` / `!=` on an interned field: compare ids. The literal's id is looked
 * up once per change of the atom table (so once per scan). */
static bool atom_cmp(const struct kfl_node *n, const struct st_rec *r, bool *result)
{
    const struct kfl_node *field = n->a, *lit = n->b;
    if (field->kind != KN_FIELD) {
        field = n->b;
        lit = n->a;
    }
    if (field->kind != KN_FIELD || lit->kind != KN_LITERAL || lit->lit != KL_STR)
        return false;
    int idx = fast_string_index(field->fast);
    if (idx < 0)
        return false;
    struct kfl_node *m = (struct kfl_node *)n; /* the cache is not part of the query's meaning */
    uint64_t epoch = st_atom_epoch();
    if (!m->atom_valid || m->atom_epoch != epoch) {
        m->atom = st_atom_find(lit->str, lit->str_len);
        m->atom_epoch = epoch;
        m->atom_valid = true;
    }
    uint32_t v = r->atom[idx];
    bool eq = v != 0 && v == m->atom;
    *result = n->op == KT_EQ ? eq : !eq;
    return true;
}

static bool cmp_node(const struct kfl_node *n, struct kfl_subject *s)
{
    bool fast;
    if (s->rec && (n->op == KT_EQ || n->op == KT_NE) && atom_cmp(n, s->rec, &fast))
        return fast;
    struct vlist a, b;
    values(n->a, s, &a);
    values(n->b, s, &b);
    struct kval absent = {.t = V_ABSENT};
    if (a.n == 0)
        push(&a, absent);
    if (b.n == 0)
        push(&b, absent);
    bool eq_any = false;
    for (int i = 0; i < a.n; i++)
        for (int k = 0; k < b.n; k++) {
            int c;
            switch (n->op) {
            case KT_EQ:
            case KT_NE:
                if (equal(&a.v[i], &b.v[k]))
                    eq_any = true;
                break;
            case KT_LT:
                if (compare(&a.v[i], &b.v[k], &c) && c < 0)
                    return true;
                break;
            case KT_LE:
                if (compare(&a.v[i], &b.v[k], &c) && c <= 0)
                    return true;
                break;
            case KT_GT:
                if (compare(&a.v[i], &b.v[k], &c) && c > 0)
                    return true;
                break;
            case KT_GE:
                if (compare(&a.v[i], &b.v[k], &c) && c >= 0)
                    return true;
                break;
            default:
                break;
            }
        }
    if (n->op == KT_EQ)
        return eq_any;
    if (n->op == KT_NE)
        return !eq_any;
    return false;
}

static bool string_op(const struct kfl_node *n, struct kfl_subject *s)
{
    struct vlist a;
    values(n->a, s, &a);
    for (int i = 0; i < a.n; i++) {
        char buf[48];
        const char *t = as_text(&a.v[i], buf, sizeof(buf));
        if (!t)
            continue;
        size_t tl = a.v[i].t == V_STR ? a.v[i].len : strlen(t);
        switch (n->kind) {
        case KN_STARTS:
            if (tl >= n->str_len && memcmp(t, n->str, n->str_len) == 0)
                return true;
            break;
        case KN_ENDS:
            if (tl >= n->str_len && memcmp(t + tl - n->str_len, n->str, n->str_len) == 0)
                return true;
            break;
        case KN_CONTAINS:
            if (n->str_len == 0 || memmem(t, tl, n->str, n->str_len))
                return true;
            break;
        case KN_REGEX:
            if (n->re_ok && regexec(&n->re, t, 0, NULL, 0) == 0)
                return true;
            break;
        default:
            break;
        }
    }
    return false;
}

static bool proto_match(const struct kfl_node *n, struct kfl_subject *s)
{
    const char *name;
    if (s->rec) {
        if (n->proto_mask)
            return (n->proto_mask >> s->rec->proto) & 1u;
        name = st_rec_str(s->rec, ST_RS_PROTO_NAME);
    } else {
        name = json_string_value(json_object_get(json_object_get(subject_json(s), "protocol"),
                                                 "name"));
        enum st_rproto rp = st_rproto_from_name(name);
        if (n->proto_mask)
            return name && rp != ST_RP_OTHER && ((n->proto_mask >> rp) & 1u);
    }
    return name && n->proto_other && strcmp(name, n->proto_other) == 0;
}

static bool truthy(const struct kval *v)
{
    switch (v->t) {
    case V_BOOL: return v->b;
    case V_NUM: return v->n != 0;
    case V_STR: return v->len > 0;
    case V_OBJ: return true;
    default: return false;
    }
}

static bool truth(const struct kfl_node *n, struct kfl_subject *s)
{
    switch (n->kind) {
    case KN_AND: return truth(n->a, s) && truth(n->b, s);
    case KN_OR: return truth(n->a, s) || truth(n->b, s);
    case KN_NOT: return !truth(n->a, s);
    case KN_CMP: return cmp_node(n, s);
    case KN_PROTO: return proto_match(n, s);
    case KN_STARTS:
    case KN_ENDS:
    case KN_CONTAINS:
    case KN_REGEX: return string_op(n, s);
    default: {
        struct vlist l;
        values(n, s, &l);
        for (int i = 0; i < l.n; i++)
            if (truthy(&l.v[i]))
                return true;
        return false;
    }
    }
}

bool kfl_match(const struct kfl_query *q, struct kfl_subject *s)
{
    if (!q->root)
        return true;
    return truth(q->root, s);
}
