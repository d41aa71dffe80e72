/* libFuzzer target: the entry JSON writer (parsers/entry_json.c) on entries built from the
 * input, including what no parser makes today: any bytes in every string, repeated header
 * names (past the hashed-merge threshold too), binary and text bodies, any numbers, and
 * sections and labels of nested jansson values. The writer's text must parse and agree
 * with the jansson tree it replaced (tests/lib/entry_oracle.h); a difference is a crash. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/entry_oracle.h"
#include "entry_json.h"

struct input {
    const uint8_t *p;
    size_t left;
};

static uint8_t u8(struct input *in)
{
    if (in->left == 0) return 0;
    in->left--;
    return *in->p++;
}

static uint64_t u64(struct input *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) v = v << 8 | u8(in);
    return v;
}

/* Up to max bytes of the input (a pointer into it) and their count. */
static const char *bytes(struct input *in, size_t max, size_t *len)
{
    size_t n = u8(in) % (max + 1);
    if (n > in->left) n = in->left;
    const char *s = (const char *)in->p;
    in->p += n, in->left -= n;
    *len = n;
    return s;
}

static const char *cstr(struct input *in, struct st_entry *e, size_t max)
{
    size_t n;
    const char *s = bytes(in, max, &n);
    if (n == 0 && (u8(in) & 1)) return NULL;
    return st_arena_strndup(&e->arena, s, n); /* strlen() stops at a NUL, as for parsers */
}

static json_t *value(struct input *in, int depth)
{
    uint8_t t = u8(in);
    size_t n;
    const char *s;
    switch (depth > 3 ? t % 6 : t % 8) {
    case 0:
        return json_integer((json_int_t)u64(in, 8));
    case 1: {
        uint64_t bits = u64(in, 8);
        double d;
        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d)) d = (double)(int64_t)bits / 1000.0;
        return json_real(d);
    }
    case 2:
        s = bytes(in, 24, &n);
        return (t & 0x80) ? json_stringn_nocheck(s, n) : st_json_bytes_string(s, n);
    case 3:
        return json_boolean(t & 0x40);
    case 4:
        return json_null();
    case 5:
        s = bytes(in, 40, &n);
        return st_json_base64((const uint8_t *)s, n);
    case 6: {
        json_t *a = json_array();
        for (int i = u8(in) % 5; i > 0; i--) json_array_append_new(a, value(in, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = u8(in) % 6; i > 0; i--) {
            /* Keys made by parsers are UTF-8 C strings (controls and quotes allowed). */
            s = bytes(in, 16, &n);
            json_t *key = st_json_bytes_string(s, n);
            json_object_set_new_nocheck(o, json_string_value(key), value(in, depth + 1));
            json_decref(key);
        }
        return o;
    }
    }
}

static const char *const common_names[] = {"Host", "host", "Accept", "X-A\xff", "X-A\\xff", "", "a\0b"};

static void headers(struct input *in, struct st_entry *e, struct st_kv_list *l)
{
    unsigned n = u8(in);
    n = n & 0x80 ? n % 48 : n % 12;
    for (unsigned i = 0; i < n && in->left > 0; i++) {
        uint8_t pick = u8(in);
        size_t nl, vl;
        const char *name;
        if (pick < 160) {
            unsigned k = pick % (sizeof(common_names) / sizeof(common_names[0]));
            name = common_names[k];
            nl = k == 6 ? 3 : strlen(name);
        } else {
            name = bytes(in, 12, &nl);
        }
        const char *v = bytes(in, 40, &vl);
        if (st_kv_list_add(e, l, name, nl, v, vl) < 0) abort();
    }
}

static void body(struct input *in, struct st_body *b)
{
    size_t n;
    const char *s = bytes(in, 255, &n);
    unsigned rep = u8(in) % 4 + 1; /* longer bodies: the input repeated */
    b->size = u64(in, 2) + n * rep;
    if (n == 0) return;
    b->data = malloc(n * rep);
    if (b->data == NULL) abort();
    for (unsigned r = 0; r < rep; r++) memcpy(b->data + r * n, s, n);
    b->len = b->cap = n * rep;
    b->truncated = b->size > b->len;
}

static void message(struct input *in, struct st_entry *e, struct st_message *m, bool request)
{
    m->present = true;
    if (request) {
        m->method = cstr(in, e, 12);
        m->path = cstr(in, e, 24);
        m->url = cstr(in, e, 32);
        headers(in, e, &m->query);
    } else {
        m->status = (int)(int16_t)u64(in, 2);
        m->status_text = cstr(in, e, 16);
    }
    headers(in, e, &m->headers);
    body(in, &m->body);
    m->wire_bytes = u64(in, u8(in) % 9);
}

static struct st_json_buf out;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    uint8_t flags = u8(&in);
    struct st_entry *e = st_entry_new((enum st_proto)(u8(&in) % (ST_PROTO_COUNT + 1)));
    if (e == NULL) return 0;
    e->start_us = u64(&in, u8(&in) % 9);
    e->end_us = e->start_us + u64(&in, u8(&in) % 9);
    e->seq = (uint32_t)u64(&in, 4);
    e->client.port = (uint16_t)u64(&in, 2);
    e->server.port = (uint16_t)u64(&in, 2);
    size_t n;
    const char *ip = bytes(&in, 45, &n);
    memcpy(e->client.ip, ip, n);
    strcpy(e->server.ip, (flags & 0x80) ? "fd00::7" : "10.1.0.7");
    const char *version = cstr(&in, e, 8);
    e->proto_version = version;
    if (flags & 1) message(&in, e, &e->request, true);
    if (flags & 2) message(&in, e, &e->response, false);
    if (flags & 4) e->error = cstr(&in, e, 40);
    if (flags & 8) e->summary = cstr(&in, e, 40);
    if (flags & 16) {
        e->section = value(&in, 0);
        if (u8(&in) & 1) e->section_name = "custom";
    }

    struct st_identity self = {.name = "pod-1", .namespace = "ns", .node = "node-1"};
    struct st_identity peer = {0};
    peer.name = cstr(&in, e, 20);
    self.workload = cstr(&in, e, 20);
    if (flags & 32) self.labels = value(&in, 1);
    struct st_json_context ctx = {
        .id = (flags & 64) ? "7" : NULL,
        .outgoing = flags & 1,
        .reporter_node = cstr(&in, e, 10),
        .src = (flags & 32) ? &self : &peer,
        .dst = (flags & 64) ? &self : NULL,
    };
    if (oracle_check(e, &ctx, &out) < 0) __builtin_trap();
    if (oracle_check(e, NULL, &out) < 0) __builtin_trap();
    json_decref(self.labels);
    st_entry_free(e);
    return 0;
}
