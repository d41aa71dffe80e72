/* entry.c - entries and the arena that owns their strings. */
#include "entry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "parser.h"

struct st_arena_chunk {
    struct st_arena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define ARENA_MIN_CHUNK 1024

static const struct {
    const char *name, *abbr;
} proto_names[ST_PROTO_COUNT] = {
    [ST_PROTO_UNKNOWN] = {"unknown", "?"}, [ST_PROTO_TCP] = {"tcp", "TCP"},
    [ST_PROTO_HTTP] = {"http", "HTTP"},    [ST_PROTO_HTTP2] = {"http2", "HTTP/2"},
    [ST_PROTO_GRPC] = {"grpc", "gRPC"},    [ST_PROTO_REDIS] = {"redis", "REDIS"},
    [ST_PROTO_DNS] = {"dns", "DNS"},       [ST_PROTO_KAFKA] = {"kafka", "KAFKA"},
    [ST_PROTO_TLS] = {"tls", "TLS"},
};

const char *st_proto_name(enum st_proto proto)
{
    return (unsigned)proto < ST_PROTO_COUNT ? proto_names[proto].name : "unknown";
}

const char *st_proto_abbr(enum st_proto proto)
{
    return (unsigned)proto < ST_PROTO_COUNT ? proto_names[proto].abbr : "?";
}

enum st_proto st_proto_from_name(const char *name)
{
    for (int i = 1; i < ST_PROTO_COUNT; i++)
        if (strcmp(name, proto_names[i].name) == 0) return (enum st_proto)i;
    return ST_PROTO_UNKNOWN;
}

void *st_arena_alloc(struct st_arena *arena, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct st_arena_chunk *c = arena->head;
    if (c == NULL || c->size - c->used < size) {
        size_t want = size > ARENA_MIN_CHUNK ? size : ARENA_MIN_CHUNK;
        if (c != NULL && want < c->size * 2 && c->size < 16384) want = c->size * 2;
        c = malloc(sizeof(*c) + want);
        if (c == NULL) return NULL;
        c->next = arena->head;
        c->size = want;
        c->used = 0;
        arena->head = c;
        arena->bytes += sizeof(*c) + want;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

char *st_arena_strndup(struct st_arena *arena, const char *s, size_t len)
{
    char *p = st_arena_alloc(arena, len + 1);
    if (p == NULL) return NULL;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *st_arena_strdup(struct st_arena *arena, const char *s)
{
    return st_arena_strndup(arena, s, strlen(s));
}

static char *arena_vprintf(struct st_arena *arena, const char *fmt, va_list ap)
{
    char small[256];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (n < 0) return NULL;
    if ((size_t)n < sizeof(small)) return st_arena_strndup(arena, small, (size_t)n);
    char *p = st_arena_alloc(arena, (size_t)n + 1);
    if (p != NULL) vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *st_arena_printf(struct st_arena *arena, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vprintf(arena, fmt, ap);
    va_end(ap);
    return p;
}

void st_arena_release(struct st_arena *arena)
{
    struct st_arena_chunk *c = arena->head;
    while (c != NULL) {
        struct st_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    arena->head = NULL;
    arena->bytes = 0;
}

struct st_entry *st_entry_new(enum st_proto proto)
{
    struct st_entry *e = calloc(1, sizeof(*e));
    if (e == NULL) return NULL;
    e->proto = proto;
    return e;
}

void st_entry_free(struct st_entry *entry)
{
    if (entry == NULL) return;
    if (entry->budget != NULL) {
        struct st_mem_budget *b = entry->budget;
        b->used = b->used > entry->budget_charged ? b->used - entry->budget_charged : 0;
    }
    free(entry->request.body.data);
    free(entry->response.body.data);
    json_decref(entry->section);
    st_arena_release(&entry->arena);
    free(entry);
}

int st_kv_list_add(struct st_entry *entry, struct st_kv_list *list, const char *name,
                   size_t name_len, const char *value, size_t value_len)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        struct st_kv *items = st_arena_alloc(&entry->arena, cap * sizeof(*items));
        if (items == NULL) return -1;
        if (list->count) memcpy(items, list->items, list->count * sizeof(*items));
        list->items = items; /* the old array stays in the arena until the entry dies */
        list->cap = cap;
    }
    struct st_kv *kv = &list->items[list->count];
    kv->name = st_arena_strndup(&entry->arena, name, name_len);
    kv->value = st_arena_strndup(&entry->arena, value, value_len);
    if (kv->name == NULL || kv->value == NULL) return -1;
    kv->name_len = name_len;
    kv->value_len = value_len;
    list->count++;
    return 0;
}

const struct st_kv *st_kv_list_find(const struct st_kv_list *list, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i].name_len == n && strncasecmp(list->items[i].name, name, n) == 0)
            return &list->items[i];
    return NULL;
}

void st_entry_set_error(struct st_entry *entry, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    entry->error = arena_vprintf(&entry->arena, fmt, ap);
    va_end(ap);
}

void st_entry_set_summary(struct st_entry *entry, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    entry->summary = arena_vprintf(&entry->arena, fmt, ap);
    va_end(ap);
}

size_t st_entry_mem(const struct st_entry *entry)
{
    return sizeof(*entry) + entry->arena.bytes + entry->request.body.len +
           entry->response.body.len;
}

uint64_t st_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
