/* validate.c - checks entries and registrations against docs/entries.md before they are
 * stored. Only the fields the collector relies on are typed; unknown fields and protocol
 * sections pass as they are. A failure names the field: "entries[3].protocol.name:
 * expected a string". */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "collector.h"

struct vctx {
    const char *prefix;
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
    snprintf(v->err, v->errlen, "%s%s%s: %s", v->prefix, *v->prefix && *field ? "." : "", field,
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

enum kind { K_STR, K_INT, K_NUM, K_BOOL, K_OBJ, K_STRMAP, K_PORT };

static const char *field_name(char *buf, size_t size, const char *parent, const char *key)
{
    snprintf(buf, size, "%s%s%s", parent, *parent ? "." : "", key);
    return buf;
}

#define FIELD() field_name(fb, sizeof(fb), parent, key)

static int check(struct vctx *v, json_t *obj, const char *parent, const char *key, enum kind k,
                 bool required)
{
    /* the field's name is only formatted when it is reported: check() runs ~40 times per entry */
    char fb[128];
    json_t *j = json_object_get(obj, key);
    if (!j) {
        if (required)
            return fail(v, FIELD(), "missing (required)");
        return 0;
    }
    switch (k) {
    case K_STR:
        if (!json_is_string(j))
            return fail(v, FIELD(), "expected a string, found %s", type_name(j));
        break;
    case K_INT:
        if (!json_is_integer(j) || json_integer_value(j) < 0)
            return fail(v, FIELD(), "expected a non-negative integer, found %s",
                        json_is_integer(j) ? "a negative number" : type_name(j));
        break;
    case K_PORT:
        if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > 65535)
            return fail(v, FIELD(), "expected a port number (0-65535), found %s",
                        json_is_integer(j) ? "an out-of-range number" : type_name(j));
        break;
    case K_NUM:
        if (!json_is_number(j) || json_number_value(j) < 0)
            return fail(v, FIELD(), "expected a non-negative number, found %s",
                        json_is_number(j) ? "a negative number" : type_name(j));
        break;
    case K_BOOL:
        if (!json_is_boolean(j))
            return fail(v, FIELD(), "expected a boolean, found %s", type_name(j));
        break;
    case K_OBJ:
        if (!json_is_object(j))
            return fail(v, FIELD(), "expected an object, found %s", type_name(j));
        break;
    case K_STRMAP: {
        if (!json_is_object(j))
            return fail(v, FIELD(), "expected an object of strings, found %s", type_name(j));
        const char *name;
        json_t *val;
        json_object_foreach(j, name, val)
        {
            if (!json_is_string(val)) {
                char sub[200];
                snprintf(sub, sizeof(sub), "%s[\"%.60s\"]", FIELD(), name);
                return fail(v, sub, "expected a string, found %s", type_name(val));
            }
        }
        break;
    }
    }
    return 0;
}

#undef FIELD

static int check_side(struct vctx *v, json_t *e, const char *name)
{
    json_t *s = json_object_get(e, name);
    if (!s)
        return 0;
    if (check(v, e, "", name, K_OBJ, false) < 0)
        return -1;
    static const char *const strs[] = {"ip", "name", "namespace", "node", "workload",
                                       "serviceAccount", NULL};
    for (int i = 0; strs[i]; i++)
        if (check(v, s, name, strs[i], K_STR, false) < 0)
            return -1;
    if (check(v, s, name, "port", K_PORT, false) < 0 ||
        check(v, s, name, "labels", K_STRMAP, false) < 0)
        return -1;
    return 0;
}

static int check_message(struct vctx *v, json_t *e, const char *name, bool is_response)
{
    json_t *m = json_object_get(e, name);
    if (!m)
        return 0;
    if (check(v, e, "", name, K_OBJ, false) < 0)
        return -1;
    if (!is_response) {
        if (check(v, m, name, "method", K_STR, false) < 0 ||
            check(v, m, name, "path", K_STR, false) < 0 ||
            check(v, m, name, "url", K_STR, false) < 0 ||
            check(v, m, name, "queryString", K_STRMAP, false) < 0)
            return -1;
    } else {
        if (check(v, m, name, "status", K_INT, false) < 0 ||
            check(v, m, name, "statusText", K_STR, false) < 0)
            return -1;
    }
    if (check(v, m, name, "headers", K_STRMAP, false) < 0 ||
        check(v, m, name, "bytes", K_INT, false) < 0 || check(v, m, name, "body", K_OBJ, false) < 0)
        return -1;
    json_t *body = json_object_get(m, "body");
    if (body) {
        char bname[32];
        snprintf(bname, sizeof(bname), "%s.body", name);
        if (check(v, body, bname, "size", K_INT, false) < 0 ||
            check(v, body, bname, "truncated", K_BOOL, false) < 0 ||
            check(v, body, bname, "encoding", K_STR, false) < 0 ||
            check(v, body, bname, "data", K_STR, false) < 0)
            return -1;
        const char *enc = json_string_value(json_object_get(body, "encoding"));
        if (enc && strcmp(enc, "text") != 0 && strcmp(enc, "base64") != 0) {
            char f[48];
            snprintf(f, sizeof(f), "%s.encoding", bname);
            return fail(v, f, "expected \"text\" or \"base64\", found \"%.40s\"", enc);
        }
    }
    return 0;
}

int st_validate_entry(json_t *e, const char *prefix, char *err, size_t errlen)
{
    struct vctx v = {prefix, err, errlen};
    if (!json_is_object(e))
        return fail(&v, "", "expected an entry object, found %s", type_name(e));
    if (check(&v, e, "", "timestamp", K_NUM, true) < 0 ||
        check(&v, e, "", "elapsedTime", K_NUM, false) < 0 ||
        check(&v, e, "", "protocol", K_OBJ, true) < 0)
        return -1;
    json_t *proto = json_object_get(e, "protocol");
    if (check(&v, proto, "protocol", "name", K_STR, true) < 0 ||
        check(&v, proto, "protocol", "version", K_STR, false) < 0 ||
        check(&v, proto, "protocol", "abbr", K_STR, false) < 0)
        return -1;
    const char *pname = json_string_value(json_object_get(proto, "name"));
    if (!*pname || strlen(pname) > 32)
        return fail(&v, "protocol.name", "expected a protocol name of 1 to 32 characters");
    if (check_side(&v, e, "src") < 0 || check_side(&v, e, "dst") < 0)
        return -1;
    if (check(&v, e, "", "node", K_OBJ, false) < 0 ||
        check(&v, json_object_get(e, "node"), "node", "name", K_STR, false) < 0 ||
        check(&v, e, "", "outgoing", K_BOOL, false) < 0 || check(&v, e, "", "seq", K_INT, false) < 0 ||
        check(&v, e, "", "summary", K_STR, false) < 0 || check(&v, e, "", "error", K_OBJ, false) < 0 ||
        check(&v, json_object_get(e, "error"), "error", "message", K_STR, false) < 0)
        return -1;
    if (check_message(&v, e, "request", false) < 0 || check_message(&v, e, "response", true) < 0)
        return -1;
    return 0;
}

int st_validate_pod(json_t *pod, char *err, size_t errlen)
{
    struct vctx v = {"pod", err, errlen};
    if (!json_is_object(pod))
        return fail(&v, "", "expected an object, found %s", pod ? type_name(pod) : "nothing");
    static const char *const strs[] = {"name", "namespace", "node", "workload", "serviceAccount",
                                       NULL};
    for (int i = 0; strs[i]; i++)
        if (check(&v, pod, "", strs[i], K_STR, false) < 0)
            return -1;
    if (check(&v, pod, "", "ip", K_STR, false) < 0 || check(&v, pod, "", "labels", K_STRMAP, false) < 0)
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
