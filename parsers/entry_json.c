/* entry_json.c - serialize entries (docs/entries.md). */
#include "entry_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

json_t *st_json_bytes_string(const char *bytes, size_t len)
{
    const uint8_t *p = (const uint8_t *)bytes;
    size_t i = 0;
    while (i < len) {
        size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;
        if (n == 0) break;
        i += n;
    }
    if (i == len) return json_stringn_nocheck(bytes, len);
    /* Slow path: escape what is not UTF-8 (and NULs) as \xNN. */
    char *out = malloc(len * 4 + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    for (i = 0; i < len;) {
        size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;
        if (n == 0) {
            o += (size_t)sprintf(out + o, "\\x%02x", p[i]);
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    json_t *s = json_stringn_nocheck(out, o);
    free(out);
    return s;
}

json_t *st_json_base64(const uint8_t *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out_len = (len + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (out == NULL) return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    json_t *s = json_stringn_nocheck(out, o);
    free(out);
    return s;
}

static void set_str(json_t *obj, const char *key, const char *value)
{
    if (value != NULL) json_object_set_new_nocheck(obj, key, st_json_bytes_string(value, strlen(value)));
}

/* Headers as an object; a repeated name joins its values with ", " (as HTTP allows). */
static json_t *kv_object(const struct st_kv_list *list)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < list->count; i++) {
        const struct st_kv *kv = &list->items[i];
        json_t *key = st_json_bytes_string(kv->name, kv->name_len);
        if (key == NULL) continue;
        const char *k = json_string_value(key);
        json_t *old = json_object_get(obj, k);
        if (old != NULL && json_is_string(old)) {
            size_t ol = json_string_length(old);
            char *joined = malloc(ol + 2 + kv->value_len);
            if (joined != NULL) {
                memcpy(joined, json_string_value(old), ol);
                memcpy(joined + ol, ", ", 2);
                memcpy(joined + ol + 2, kv->value, kv->value_len);
                json_object_set_new(obj, k, st_json_bytes_string(joined, ol + 2 + kv->value_len));
                free(joined);
            }
        } else {
            json_object_set_new(obj, k, st_json_bytes_string(kv->value, kv->value_len));
        }
        json_decref(key);
    }
    return obj;
}

static json_t *body_json(const struct st_body *b)
{
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "size", json_integer((json_int_t)b->size));
    json_object_set_new_nocheck(o, "truncated", json_boolean(b->truncated));
    if (b->len == 0) {
        json_object_set_new_nocheck(o, "encoding", json_string_nocheck("text"));
        json_object_set_new_nocheck(o, "data", json_string_nocheck(""));
    } else if (st_bytes_are_text(b->data, b->len)) {
        json_object_set_new_nocheck(o, "encoding", json_string_nocheck("text"));
        json_object_set_new_nocheck(o, "data", json_stringn_nocheck((const char *)b->data, b->len));
    } else {
        json_object_set_new_nocheck(o, "encoding", json_string_nocheck("base64"));
        json_object_set_new_nocheck(o, "data", st_json_base64(b->data, b->len));
    }
    return o;
}

static json_t *message_json(const struct st_message *m, bool is_request)
{
    json_t *o = json_object();
    if (is_request) {
        set_str(o, "method", m->method);
        set_str(o, "path", m->path);
        set_str(o, "url", m->url);
        json_object_set_new_nocheck(o, "queryString", kv_object(&m->query));
    } else {
        if (m->status) json_object_set_new_nocheck(o, "status", json_integer(m->status));
        set_str(o, "statusText", m->status_text);
    }
    json_object_set_new_nocheck(o, "headers", kv_object(&m->headers));
    json_object_set_new_nocheck(o, "body", body_json(&m->body));
    json_object_set_new_nocheck(o, "bytes", json_integer((json_int_t)m->wire_bytes));
    return o;
}

static json_t *endpoint_json(const struct st_endpoint *ep, const struct st_identity *id)
{
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "ip", json_string(ep->ip));
    json_object_set_new_nocheck(o, "port", json_integer(ep->port));
    if (id != NULL) {
        set_str(o, "name", id->name);
        set_str(o, "namespace", id->namespace);
        set_str(o, "node", id->node);
        set_str(o, "workload", id->workload);
        set_str(o, "serviceAccount", id->service_account);
        if (id->labels != NULL) json_object_set_nocheck(o, "labels", id->labels);
    }
    return o;
}

json_t *st_entry_to_json(const struct st_entry *e, const struct st_json_context *ctx)
{
    json_t *o = json_object();
    if (o == NULL) return NULL;
    if (ctx && ctx->id) set_str(o, "id", ctx->id);
    json_object_set_new_nocheck(o, "timestamp", json_integer((json_int_t)(e->start_us / 1000)));
    uint64_t elapsed_us = e->end_us > e->start_us ? e->end_us - e->start_us : 0;
    json_object_set_new_nocheck(o, "elapsedTime", json_real((double)elapsed_us / 1000.0));

    json_t *proto = json_object();
    json_object_set_new_nocheck(proto, "name", json_string_nocheck(st_proto_name(e->proto)));
    set_str(proto, "version", e->proto_version);
    json_object_set_new_nocheck(proto, "abbr", json_string_nocheck(st_proto_abbr(e->proto)));
    json_object_set_new_nocheck(o, "protocol", proto);

    json_object_set_new_nocheck(o, "src", endpoint_json(&e->client, ctx ? ctx->src : NULL));
    json_object_set_new_nocheck(o, "dst", endpoint_json(&e->server, ctx ? ctx->dst : NULL));
    if (ctx && ctx->reporter_node) {
        json_t *node = json_object();
        set_str(node, "name", ctx->reporter_node);
        json_object_set_new_nocheck(o, "node", node);
    }
    json_object_set_new_nocheck(o, "outgoing", json_boolean(ctx && ctx->outgoing));
    json_object_set_new_nocheck(o, "seq", json_integer(e->seq));

    if (e->request.present) json_object_set_new_nocheck(o, "request", message_json(&e->request, true));
    if (e->response.present)
        json_object_set_new_nocheck(o, "response", message_json(&e->response, false));
    if (e->error != NULL) {
        json_t *err = json_object();
        set_str(err, "message", e->error);
        json_object_set_new_nocheck(o, "error", err);
    }
    set_str(o, "summary", e->summary);
    if (e->section != NULL) {
        const char *name = e->section_name ? e->section_name : st_proto_name(e->proto);
        json_object_set_nocheck(o, name, e->section);
    }
    return o;
}
