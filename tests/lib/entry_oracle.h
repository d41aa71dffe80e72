/* entry_oracle.h - the test oracle for parsers/entry_json.c: the jansson tree builder the
 * proxy used before it wrote JSON text directly, kept here (not in the product) so tests
 * and fuzz targets can require that the writer says exactly what the tree said.
 *
 *   oracle_entry_json(entry, ctx)      the old tree (caller decrefs)
 *   oracle_check(entry, ctx, &buf)     0 when st_entry_json_write() agrees with it, else
 *                                      prints the difference and returns -1
 *
 * "Agrees": the writer's text parses (as jansson would) to a tree equal to the oracle's,
 * and is byte for byte jansson's compact dump of that tree except for the elapsedTime
 * number (jansson prints "%.17g", the writer the shortest decimal of the same double).
 * When jansson cannot dump the oracle's tree (a section string that is not UTF-8), the
 * writer's text must still be valid JSON. Header-only: fuzz targets include it too. */
#ifndef SIDETAP_ENTRY_ORACLE_H
#define SIDETAP_ENTRY_ORACLE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "entry_json.h"

static inline void oracle_set_str(json_t *obj, const char *key, const char *value)
{
    if (value != NULL)
        json_object_set_new_nocheck(obj, key, st_json_bytes_string(value, strlen(value)));
}

/* Headers as an object; a repeated name joins its values with ", ". */
static inline json_t *oracle_kv_object(const struct st_kv_list *list)
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
                if (kv->value_len) memcpy(joined + ol + 2, kv->value, kv->value_len);
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

static inline json_t *oracle_body(const struct st_body *b)
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

static inline json_t *oracle_message(const struct st_message *m, bool is_request)
{
    json_t *o = json_object();
    if (is_request) {
        oracle_set_str(o, "method", m->method);
        oracle_set_str(o, "path", m->path);
        oracle_set_str(o, "url", m->url);
        json_object_set_new_nocheck(o, "queryString", oracle_kv_object(&m->query));
    } else {
        if (m->status) json_object_set_new_nocheck(o, "status", json_integer(m->status));
        oracle_set_str(o, "statusText", m->status_text);
    }
    json_object_set_new_nocheck(o, "headers", oracle_kv_object(&m->headers));
    json_object_set_new_nocheck(o, "body", oracle_body(&m->body));
    json_object_set_new_nocheck(o, "bytes", json_integer((json_int_t)m->wire_bytes));
    return o;
}

static inline json_t *oracle_endpoint(const struct st_endpoint *ep, const struct st_identity *id)
{
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "ip", json_string(ep->ip));
    json_object_set_new_nocheck(o, "port", json_integer(ep->port));
    if (id != NULL) {
        oracle_set_str(o, "name", id->name);
        oracle_set_str(o, "namespace", id->namespace);
        oracle_set_str(o, "node", id->node);
        oracle_set_str(o, "workload", id->workload);
        oracle_set_str(o, "serviceAccount", id->service_account);
        if (id->labels != NULL) json_object_set_nocheck(o, "labels", id->labels);
    }
    return o;
}

static inline json_t *oracle_entry_json(const struct st_entry *e, const struct st_json_context *ctx)
{
    json_t *o = json_object();
    if (o == NULL) return NULL;
    if (ctx && ctx->id) oracle_set_str(o, "id", ctx->id);
    json_object_set_new_nocheck(o, "timestamp", json_integer((json_int_t)(e->start_us / 1000)));
    uint64_t elapsed_us = e->end_us > e->start_us ? e->end_us - e->start_us : 0;
    json_object_set_new_nocheck(o, "elapsedTime", json_real((double)elapsed_us / 1000.0));

    json_t *proto = json_object();
    json_object_set_new_nocheck(proto, "name", json_string_nocheck(st_proto_name(e->proto)));
    oracle_set_str(proto, "version", e->proto_version);
    json_object_set_new_nocheck(proto, "abbr", json_string_nocheck(st_proto_abbr(e->proto)));
    json_object_set_new_nocheck(o, "protocol", proto);

    json_object_set_new_nocheck(o, "src", oracle_endpoint(&e->client, ctx ? ctx->src : NULL));
    json_object_set_new_nocheck(o, "dst", oracle_endpoint(&e->server, ctx ? ctx->dst : NULL));
    if (ctx && ctx->reporter_node) {
        json_t *node = json_object();
        oracle_set_str(node, "name", ctx->reporter_node);
        json_object_set_new_nocheck(o, "node", node);
    }
    json_object_set_new_nocheck(o, "outgoing", json_boolean(ctx && ctx->outgoing));
    json_object_set_new_nocheck(o, "seq", json_integer(e->seq));

    if (e->request.present)
        json_object_set_new_nocheck(o, "request", oracle_message(&e->request, true));
    if (e->response.present)
        json_object_set_new_nocheck(o, "response", oracle_message(&e->response, false));
    if (e->error != NULL) {
        json_t *err = json_object();
        oracle_set_str(err, "message", e->error);
        json_object_set_new_nocheck(o, "error", err);
    }
    oracle_set_str(o, "summary", e->summary);
    if (e->section != NULL) {
        const char *name = e->section_name ? e->section_name : st_proto_name(e->proto);
        json_object_set_nocheck(o, name, e->section);
    }
    return o;
}

/* Removes `"elapsedTime":NUMBER` (and the comma before it) from a compact dump. */
static inline void oracle_cut_elapsed(char *s, size_t *len)
{
    static const char key[] = ",\"elapsedTime\":";
    char *at = strstr(s, key);
    if (at == NULL) return;
    char *end = at + sizeof(key) - 1;
    while (end < s + *len && *end != ',' && *end != '}') end++;
    memmove(at, end, (size_t)(s + *len - end) + 1);
    *len -= (size_t)(end - at);
}

static inline int oracle_check(const struct st_entry *e, const struct st_json_context *ctx,
                        struct st_json_buf *buf)
{
    buf->len = 0;
    if (st_entry_json_write(buf, e, ctx) < 0) {
        fprintf(stderr, "oracle: st_entry_json_write failed\n");
        return -1;
    }
    json_error_t err;
    json_t *got = json_loadb(buf->data, buf->len, JSON_ALLOW_NUL, &err);
    if (got == NULL) {
        fprintf(stderr, "oracle: the writer's JSON does not parse: %s at %d: %.*s\n", err.text,
                err.position, (int)buf->len, buf->data);
        return -1;
    }
    json_t *want = oracle_entry_json(e, ctx);
    char *text = want ? json_dumps(want, JSON_COMPACT) : NULL;
    int rc = 0;
    if (text == NULL) {
        /* jansson cannot write the old tree (bytes that are not UTF-8 in a section): the
         * writer's text parsed above, which is all that can be asked. */
    } else if (!json_equal(got, want)) {
        fprintf(stderr, "oracle: trees differ\n  writer: %.*s\n  oracle: %s\n", (int)buf->len,
                buf->data, text);
        rc = -1;
    } else {
        size_t tlen = strlen(text);
        char *mine = malloc(buf->len + 1);
        if (mine == NULL) abort();
        memcpy(mine, buf->data, buf->len);
        mine[buf->len] = '\0';
        size_t mlen = buf->len;
        oracle_cut_elapsed(mine, &mlen);
        oracle_cut_elapsed(text, &tlen);
        if (mlen != tlen || memcmp(mine, text, tlen) != 0) {
            fprintf(stderr, "oracle: texts differ\n  writer: %s\n  oracle: %s\n", mine, text);
            rc = -1;
        }
        free(mine);
    }
    free(text);
    json_decref(want);
    json_decref(got);
    return rc;
}

#endif
