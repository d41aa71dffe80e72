/* validate.c - checks entries and registrations against docs/entries.md before they are
 * stored. Only the fields the collector relies on are typed; unknown fields and protocol
 * sections pass as they are. A failure names the field: "entries[3].protocol.name:
 * expected a string". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "jscan.h"

struct vctx {
    const char *prefix; /* NULL: "entries[index]" */
    size_t index;
    char *err;
    size_t errlen;
};

static int fail(struct vctx *v, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct vctx *v, const char *field, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char entry[32];
    const char *prefix = v->prefix;
    if (!prefix) {
        /* formatted only here: most entries pass */
        snprintf(entry, sizeof(entry), "entries[%zu]", v->index);
        prefix = entry;
    }
    snprintf(v->err, v->errlen, "%s%s%s: %s", prefix, *prefix && *field ? "." : "", field,
             msg);
    return -1;
}

static const char *type_name(json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* The same names for a tape token, so both paths word errors alike. */
static const char *jtype_name(const struct st_jtok *t)
{
    switch (t->type) {
    case ST_J_OBJECT: return "an object";
    case ST_J_ARRAY: return "an array";
    case ST_J_STRING: return "a string";
    case ST_J_INTEGER: return "an integer";
    case ST_J_REAL: return "a number";
    case ST_J_TRUE:
    case ST_J_FALSE: return "a boolean";
    case ST_J_NULL: return "null";
    }
    return "?";
}

enum kind { K_STR, K_INT, K_NUM, K_BOOL, K_OBJ, K_STRMAP, K_PORT };

static const char *field_name(char *buf, size_t size, const char *parent, const char *key)
{
    snprintf(buf, size, "%s%s%s", parent, *parent ? "." : "", key);
    return buf;
}

#define FIELD() field_name(fb, sizeof(fb), parent, key)

/* Reports the first member of a string map whose value is not a string, in jansson's
 * order (a key's first position, its last value). Only runs once a map failed. */
static int strmap_fail(struct vctx *v, const struct st_jentry *e, uint32_t obj, const char *field)
{
    const struct st_jtape *tape = e->tape;
    const struct st_jtok *t = tape->tok;
    for (uint32_t i = obj + 1; i < t[obj].next; i = t[i + 1].next) {
        size_t n = st_jstr_len(e->text, &t[i]), len;
        char *key = malloc(n + 1);
        if (!key)
            return fail(v, field, "out of memory");
        const char *k = st_jstr(e->text, &t[i], key, n + 1, &len);
        if (k != key) {
            memcpy(key, k, len);
            key[len] = '\0';
        }
        bool first = true;
        for (uint32_t j = obj + 1; j < i && first; j = t[j + 1].next)
            first = !st_jstr_eq(e->text, &t[j], key, len);
        uint32_t val = first ? st_jget(e->text, tape, obj, key) : 0;
        if (val && t[val].type != ST_J_STRING) {
            char sub[200];
            snprintf(sub, sizeof(sub), "%s[\"%.60s\"]", field, key);
            free(key);
            return fail(v, sub, "expected a string, found %s", jtype_name(&t[val]));
        }
        free(key);
    }
    return 0;
}

/* Checks member key (tape index i, 0 when absent) of parent. */
static int check(struct vctx *v, const struct st_jentry *e, uint32_t i, const char *parent,
                 const char *key, enum kind k, bool required)
{
    /* the field's name is only formatted when it is reported: check() runs ~40 times per entry */
    char fb[128];
    if (!i) {
        if (required)
            return fail(v, FIELD(), "missing (required)");
        return 0;
    }
    const struct st_jtok *t = &e->tape->tok[i];
    switch (k) {
    case K_STR:
        if (t->type != ST_J_STRING)
            return fail(v, FIELD(), "expected a string, found %s", jtype_name(t));
        break;
    case K_INT:
        if (t->type != ST_J_INTEGER || (e->text[t->start] == '-' && st_jint(e->text, t) < 0))
            return fail(v, FIELD(), "expected a non-negative integer, found %s",
                        t->type == ST_J_INTEGER ? "a negative number" : jtype_name(t));
        break;
    case K_PORT:
        if (t->type != ST_J_INTEGER || st_jint(e->text, t) < 0 || st_jint(e->text, t) > 65535)
            return fail(v, FIELD(), "expected a port number (0-65535), found %s",
                        t->type == ST_J_INTEGER ? "an out-of-range number" : jtype_name(t));
        break;
    case K_NUM: {
        bool number = t->type == ST_J_INTEGER || t->type == ST_J_REAL;
        if (!number || (e->text[t->start] == '-' && st_jnum(e->text, t) < 0))
            return fail(v, FIELD(), "expected a non-negative number, found %s",
                        number ? "a negative number" : jtype_name(t));
        break;
    }
    case K_BOOL:
        if (t->type != ST_J_TRUE && t->type != ST_J_FALSE)
            return fail(v, FIELD(), "expected a boolean, found %s", jtype_name(t));
        break;
    case K_OBJ:
        if (t->type != ST_J_OBJECT)
            return fail(v, FIELD(), "expected an object, found %s", jtype_name(t));
        break;
    case K_STRMAP: {
        if (t->type != ST_J_OBJECT)
            return fail(v, FIELD(), "expected an object of strings, found %s", jtype_name(t));
        const struct st_jtok *tok = e->tape->tok;
        for (uint32_t m = i + 1; m < t->next; m = tok[m + 1].next)
            if (tok[m + 1].type != ST_J_STRING)
                return strmap_fail(v, e, i, FIELD());
        break;
    }
    }
    return 0;
}

#undef FIELD

static int check_side(struct vctx *v, const struct st_jentry *e, int s)
{
    const char *name = s ? "dst" : "src";
    uint32_t obj = e->top[s ? ST_JE_DST : ST_JE_SRC];
    if (!obj)
        return 0;
    if (check(v, e, obj, "", name, K_OBJ, false) < 0)
        return -1;
    static const char *const strs[] = {"ip", "name", "namespace", "node", "workload",
                                       "serviceAccount", NULL};
    static const int idx[] = {ST_JS_IP, ST_JS_NAME, ST_JS_NAMESPACE, ST_JS_NODE, ST_JS_WORKLOAD,
                              ST_JS_SERVICE_ACCOUNT};
    const uint32_t *f = e->side[s];
    for (int i = 0; strs[i]; i++)
        if (check(v, e, f[idx[i]], name, strs[i], K_STR, false) < 0)
            return -1;
    if (check(v, e, f[ST_JS_PORT], name, "port", K_PORT, false) < 0 ||
        check(v, e, f[ST_JS_LABELS], name, "labels", K_STRMAP, false) < 0)
        return -1;
    return 0;
}

static int check_message(struct vctx *v, const struct st_jentry *e, int is_response)
{
    const char *name = is_response ? "response" : "request";
    uint32_t obj = e->top[is_response ? ST_JE_RESPONSE : ST_JE_REQUEST];
    if (!obj)
        return 0;
    if (check(v, e, obj, "", name, K_OBJ, false) < 0)
        return -1;
    const uint32_t *m = e->msg[is_response];
    if (!is_response) {
        if (check(v, e, m[ST_JM_METHOD], name, "method", K_STR, false) < 0 ||
            check(v, e, m[ST_JM_PATH], name, "path", K_STR, false) < 0 ||
            check(v, e, m[ST_JM_URL], name, "url", K_STR, false) < 0 ||
            check(v, e, m[ST_JM_QUERY], name, "queryString", K_STRMAP, false) < 0)
            return -1;
    } else {
        if (check(v, e, m[ST_JM_STATUS], name, "status", K_INT, false) < 0 ||
            check(v, e, m[ST_JM_STATUS_TEXT], name, "statusText", K_STR, false) < 0)
            return -1;
    }
    if (check(v, e, m[ST_JM_HEADERS], name, "headers", K_STRMAP, false) < 0 ||
        check(v, e, m[ST_JM_BYTES], name, "bytes", K_INT, false) < 0 ||
        check(v, e, m[ST_JM_BODY], name, "body", K_OBJ, false) < 0)
        return -1;
    if (m[ST_JM_BODY]) {
        const uint32_t *b = e->body[is_response];
        const char *bname = is_response ? "response.body" : "request.body";
        if (check(v, e, b[ST_JB_SIZE], bname, "size", K_INT, false) < 0 ||
            check(v, e, b[ST_JB_TRUNCATED], bname, "truncated", K_BOOL, false) < 0 ||
            check(v, e, b[ST_JB_ENCODING], bname, "encoding", K_STR, false) < 0 ||
            check(v, e, b[ST_JB_DATA], bname, "data", K_STR, false) < 0)
            return -1;
        uint32_t enc = b[ST_JB_ENCODING];
        if (enc) {
            const struct st_jtok *t = &e->tape->tok[enc];
            if (!st_jstr_eq(e->text, t, "text", 4) && !st_jstr_eq(e->text, t, "base64", 6)) {
                size_t n = t->end - t->start, len = 0;
                char f[48], *buf = malloc(n);
                const char *str = buf ? st_jstr(e->text, t, buf, n, &len) : "";
                snprintf(f, sizeof(f), "%s.encoding", bname);
                int rc = fail(v, f, "expected \"text\" or \"base64\", found \"%.*s\"",
                              (int)(len < 40 ? len : 40), str);
                free(buf);
                return rc;
            }
        }
    }
    return 0;
}

int st_validate_jentry(const struct st_jentry *e, size_t index, char *err, size_t errlen)
{
    struct vctx v = {NULL, index, err, errlen};
    const struct st_jtok *root = &e->tape->tok[e->root];
    if (root->type != ST_J_OBJECT)
        return fail(&v, "", "expected an entry object, found %s", jtype_name(root));
    if (check(&v, e, e->top[ST_JE_TIMESTAMP], "", "timestamp", K_NUM, true) < 0 ||
        check(&v, e, e->top[ST_JE_ELAPSED], "", "elapsedTime", K_NUM, false) < 0 ||
        check(&v, e, e->top[ST_JE_PROTOCOL], "", "protocol", K_OBJ, true) < 0)
        return -1;
    if (check(&v, e, e->proto_name, "protocol", "name", K_STR, true) < 0 ||
        check(&v, e, e->proto_version, "protocol", "version", K_STR, false) < 0 ||
        check(&v, e, e->proto_abbr, "protocol", "abbr", K_STR, false) < 0)
        return -1;
    size_t plen = st_jstr_len(e->text, &e->tape->tok[e->proto_name]);
    if (plen == 0 || plen > 32)
        return fail(&v, "protocol.name", "expected a protocol name of 1 to 32 characters");
    if (check_side(&v, e, 0) < 0 || check_side(&v, e, 1) < 0)
        return -1;
    if (check(&v, e, e->top[ST_JE_NODE], "", "node", K_OBJ, false) < 0 ||
        check(&v, e, e->node_name, "node", "name", K_STR, false) < 0 ||
        check(&v, e, e->top[ST_JE_OUTGOING], "", "outgoing", K_BOOL, false) < 0 ||
        check(&v, e, e->top[ST_JE_SEQ], "", "seq", K_INT, false) < 0 ||
        check(&v, e, e->top[ST_JE_SUMMARY], "", "summary", K_STR, false) < 0 ||
        check(&v, e, e->top[ST_JE_ERROR], "", "error", K_OBJ, false) < 0 ||
        check(&v, e, e->error_message, "error", "message", K_STR, false) < 0)
        return -1;
    if (check_message(&v, e, 0) < 0 || check_message(&v, e, 1) < 0)
        return -1;
    return 0;
}

/* Registrations are rare and small: they keep jansson. */
static int check_json(struct vctx *v, json_t *obj, const char *key, enum kind k)
{
    char fb[128];
    json_t *j = json_object_get(obj, key);
    if (!j)
        return 0;
    if (k == K_STR && !json_is_string(j))
        return fail(v, field_name(fb, sizeof(fb), "", key), "expected a string, found %s",
                    type_name(j));
    if (k == K_STRMAP) {
        if (!json_is_object(j))
            return fail(v, key, "expected an object of strings, found %s", type_name(j));
        const char *name;
        json_t *val;
        json_object_foreach(j, name, val)
        {
            if (!json_is_string(val)) {
                char sub[200];
                snprintf(sub, sizeof(sub), "%s[\"%.60s\"]", key, name);
                return fail(v, sub, "expected a string, found %s", type_name(val));
            }
        }
    }
    return 0;
}

int st_validate_pod(json_t *pod, char *err, size_t errlen)
{
    struct vctx v = {"pod", 0, err, errlen};
    if (!json_is_object(pod))
        return fail(&v, "", "expected an object, found %s", pod ? type_name(pod) : "nothing");
    static const char *const strs[] = {"name", "namespace", "node", "workload", "serviceAccount",
                                       NULL};
    for (int i = 0; strs[i]; i++)
        if (check_json(&v, pod, strs[i], K_STR) < 0)
            return -1;
    if (check_json(&v, pod, "ip", K_STR) < 0 || check_json(&v, pod, "labels", K_STRMAP) < 0)
        return -1;
    json_t *ips = json_object_get(pod, "ips");
    if (ips) {
        if (!json_is_array(ips))
            return fail(&v, "ips", "expected an array of strings, found %s", type_name(ips));
        size_t i;
        json_t *ip;
        json_array_foreach(ips, i, ip) if (!json_is_string(ip))
        {
            char f[32];
            snprintf(f, sizeof(f), "ips[%zu]", i);
            return fail(&v, f, "expected a string, found %s", type_name(ip));
        }
    }
    if (!json_object_get(pod, "ip") && json_array_size(ips) == 0)
        return fail(&v, "ip", "missing: a registration needs \"ip\" or \"ips\"");
    if (!json_object_get(pod, "name"))
        return fail(&v, "name", "missing (required)");
    return 0;
}
