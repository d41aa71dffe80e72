/* identity.c - who is behind an IP: pods whose proxy registered (POST /api/v1/register)
 * and, in a cluster, pods and Services from the Kubernetes API (k8s.c). Entries arrive
 * with the reporting proxy's own side filled in; st_identity_fill() completes the peer.
 *
 * Lookups go registration first (the proxy knows its pod best), then Kubernetes pods,
 * then Services. Tables are jansson objects keyed by IP. */
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "jscan.h"

#define MAX_IDENTITIES 200000 /* per table; registrations beyond are refused */

/* The members an identity adds, serialized once: fill runs for nearly every entry, and
 * jansson's dump cost ~5,000 instructions per entry. Keyed by the identity object, which
 * the slot references, so its address cannot be reused while cached; identities are
 * replaced, never modified, once in a table. */
#define FILL_CACHE 1024
#define FILL_MAX_KEYS 8
struct fill_cached {
    json_t *known;
    int n;
    struct {
        int field;       /* enum st_je_side, or -1: looked up by name */
        const char *key; /* owned by known */
        uint32_t off, len;
    } piece[FILL_MAX_KEYS];
    struct st_jbuf text; /* ,"key":value for each member of known */
};

/* The answer of lookup() per IP: every entry asks for both sides (and dedup asks again),
 * and a miss costs four jansson hash lookups. A slot is valid while `gen` equals the
 * tables' generation, which every change bumps; `known` is borrowed from a table. */
#define LOOKUP_CACHE 512
#define LOOKUP_IP_MAX 47 /* an IPv6 text address fits in 46 */
struct lookup_cached {
    uint64_t gen;
    json_t *known;
    bool injected; /* registered by a proxy */
    char ip[LOOKUP_IP_MAX + 1];
};

struct st_identity {
    struct fill_cached *cache; /* FILL_CACHE slots */
    struct lookup_cached *lookups; /* LOOKUP_CACHE slots */
    uint64_t gen;                  /* bumped by every change of the tables; starts at 1 */
    json_t *registered; /* ip -> identity (name, namespace, node, workload, ...) */
    json_t *pods;       /* from the Kubernetes API */
    json_t *endpoints;  /* addresses behind a Service */
    json_t *services;
};

struct st_identity *st_identity_new(void)
{
    struct st_identity *id = calloc(1, sizeof(*id));
    if (!id)
        return NULL;
    id->registered = json_object();
    id->pods = json_object();
    id->services = json_object();
    id->endpoints = json_object();
    id->cache = calloc(FILL_CACHE, sizeof(*id->cache));
    id->lookups = calloc(LOOKUP_CACHE, sizeof(*id->lookups));
    id->gen = 1;
    if (!id->cache || !id->lookups || !id->registered || !id->pods || !id->services || !id->endpoints) {
        st_identity_free(id);
        return NULL;
    }
    return id;
}

void st_identity_free(struct st_identity *id)
{
    if (!id)
        return;
    json_decref(id->registered);
    json_decref(id->pods);
    json_decref(id->services);
    json_decref(id->endpoints);
    for (size_t i = 0; id->cache && i < FILL_CACHE; i++) {
        json_decref(id->cache[i].known);
        st_jbuf_free(&id->cache[i].text);
    }
    free(id->cache);
    free(id->lookups);
    free(id);
}

static const char *const identity_fields[] = {"name", "namespace", "node", "workload",
                                              "serviceAccount", "labels", NULL};

int st_identity_register(struct st_identity *id, json_t *pod)
{
    json_t *ident = json_object();
    if (!ident)
        return -1;
    id->gen++;
    for (int i = 0; identity_fields[i]; i++) {
        json_t *v = json_object_get(pod, identity_fields[i]);
        if (v)
            json_object_set(ident, identity_fields[i], v);
    }
    int rc = 0;
    json_t *ip = json_object_get(pod, "ip");
    if (json_is_string(ip) && *json_string_value(ip)) {
        if (json_object_size(id->registered) >= MAX_IDENTITIES &&
            !json_object_get(id->registered, json_string_value(ip)))
            rc = -1;
        else
            json_object_set(id->registered, json_string_value(ip), ident);
    }
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(pod, "ips"), i, it)
    {
        if (!json_is_string(it) || !*json_string_value(it))
            continue;
        if (json_object_size(id->registered) >= MAX_IDENTITIES &&
            !json_object_get(id->registered, json_string_value(it)))
            rc = -1;
        else
            json_object_set(id->registered, json_string_value(it), ident);
    }
    json_decref(ident);
    return rc;
}

void st_identity_set_k8s(struct st_identity *id, const char *kind, const char *ip, json_t *identity)
{
    json_t *table = strcmp(kind, "service") == 0    ? id->services
                    : strcmp(kind, "endpoint") == 0 ? id->endpoints
                                                    : id->pods;
    if (!ip || !*ip)
        return;
    id->gen++;
    if (!identity)
        json_object_del(table, ip);
    else if (json_object_size(table) < MAX_IDENTITIES || json_object_get(table, ip))
        json_object_set(table, ip, identity);
}

static json_t *lookup_tables(struct st_identity *id, const char *ip, bool *injected)
{
    json_t *v = json_object_get(id->registered, ip);
    *injected = v != NULL;
    if (!v)
        v = json_object_get(id->pods, ip);
    if (!v)
        v = json_object_get(id->endpoints, ip);
    if (!v)
        v = json_object_get(id->services, ip);
    return v;
}

/* The identity known for ip (borrowed until the tables change), through the cache. */
static json_t *lookup(struct st_identity *id, const char *ip, bool *injected)
{
    size_t n = strlen(ip);
    if (n > LOOKUP_IP_MAX)
        return lookup_tables(id, ip, injected);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)ip[i]) * 16777619u;
    struct lookup_cached *c = &id->lookups[h % LOOKUP_CACHE];
    if (c->gen != id->gen || memcmp(c->ip, ip, n + 1) != 0) {
        c->known = lookup_tables(id, ip, &c->injected);
        memcpy(c->ip, ip, n + 1);
        c->gen = id->gen;
    }
    *injected = c->injected;
    return c->known;
}

static int side_field(const char *key)
{
    static const char *const names[ST_JS_COUNT] = {
        [ST_JS_IP] = "ip",     [ST_JS_NAME] = "name",         [ST_JS_NAMESPACE] = "namespace",
        [ST_JS_NODE] = "node", [ST_JS_WORKLOAD] = "workload", [ST_JS_SERVICE_ACCOUNT] = "serviceAccount",
        [ST_JS_PORT] = "port", [ST_JS_LABELS] = "labels",
    };
    for (int i = 0; i < ST_JS_COUNT; i++)
        if (strcmp(key, names[i]) == 0)
            return i;
    return -1;
}

/* The cache slot of known, (re)built when it holds another identity; NULL when known
 * cannot be cached (too many keys, out of memory). */
static struct fill_cached *cached(struct st_identity *id, json_t *known)
{
    uintptr_t h = (uintptr_t)known;
    struct fill_cached *c = &id->cache[(h >> 4 ^ h >> 14) % FILL_CACHE];
    if (c->known == known)
        return c;
    if (json_object_size(known) > FILL_MAX_KEYS)
        return NULL;
    json_decref(c->known);
    c->known = NULL;
    c->n = 0;
    c->text.len = 0;
    const char *key;
    json_t *v;
    json_object_foreach(known, key, v)
    {
        size_t off = c->text.len, n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        if (n == 0)
            continue;
        char small[512], *val = n <= sizeof(small) ? small : malloc(n);
        if (!val || json_dumpb(v, val, n, JSON_COMPACT | JSON_ENCODE_ANY) != n) {
            if (val != small)
                free(val);
            return NULL;
        }
        /* keys are the collector's own field names (identity_fields, k8s.c): plain ASCII */
        int rc = st_jbuf_put(&c->text, ",\"", 2) | st_jbuf_put(&c->text, key, strlen(key)) |
                 st_jbuf_put(&c->text, "\":", 2) | st_jbuf_put(&c->text, val, n);
        if (val != small)
            free(val);
        if (rc < 0)
            return NULL;
        c->piece[c->n].field = side_field(key);
        c->piece[c->n].key = key;
        c->piece[c->n].off = (uint32_t)off;
        c->piece[c->n].len = (uint32_t)(c->text.len - off);
        c->n++;
    }
    c->known = json_incref(known);
    return c;
}

/* Appends ,"key":value for what known has and the side lacks: a side that already names
 * a pod keeps it; only missing fields are added. */
static int fill_side(struct st_identity *id, json_t *known, const struct st_jentry *e, int s,
                     uint32_t side, struct st_jbuf *out)
{
    struct fill_cached *c = cached(id, known);
    if (c) {
        for (int i = 0; i < c->n; i++) {
            int f = c->piece[i].field;
            if (f >= 0 ? e->side[s][f] != 0 : st_jget(e->text, e->tape, side, c->piece[i].key) != 0)
                continue;
            if (st_jbuf_put(out, c->text.data + c->piece[i].off, c->piece[i].len) < 0)
                return -1;
        }
        return 0;
    }
    const char *key;
    json_t *v;
    json_object_foreach(known, key, v)
    {
        if (st_jget(e->text, e->tape, side, key))
            continue;
        char small[512];
        size_t n = json_dumpb(v, small, sizeof(small), JSON_COMPACT | JSON_ENCODE_ANY);
        char *val = small;
        if (n == 0)
            continue;
        if (n > sizeof(small)) {
            val = malloc(n);
            if (!val || json_dumpb(v, val, n, JSON_COMPACT | JSON_ENCODE_ANY) != n) {
                free(val);
                return -1;
            }
        }
        int rc = st_jbuf_put(out, ",\"", 2) | st_jbuf_put(out, key, strlen(key)) |
                 st_jbuf_put(out, "\":", 2) | st_jbuf_put(out, val, n);
        if (val != small)
            free(val);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int st_identity_fill_text(struct st_identity *id, const struct st_jentry *e, int side,
                          struct st_jbuf *out)
{
    uint32_t obj = e->top[side ? ST_JE_DST : ST_JE_SRC], ipt = e->side[side][ST_JS_IP];
    if (!obj || !ipt || e->tape->tok[obj].type != ST_J_OBJECT ||
        e->tape->tok[ipt].type != ST_J_STRING)
        return 0;
    char small[128];
    const struct st_jtok *t = &e->tape->tok[ipt];
    size_t n = t->end - t->start, len;
    char *buf = n <= sizeof(small) ? small : malloc(n);
    if (!buf)
        return -1;
    const char *ip = st_jstr(e->text, t, buf, n, &len);
    if (ip != buf) {
        memcpy(buf, ip, len);
        buf[len] = '\0';
    }
    bool injected;
    json_t *known = lookup(id, buf, &injected);
    int rc = known ? fill_side(id, known, e, side, obj, out) : 0;
    if (buf != small)
        free(buf);
    return rc;
}

bool st_identity_is_injected(struct st_identity *id, const char *ip)
{
    bool injected = false;
    if (ip)
        lookup(id, ip, &injected);
    return injected;
}

size_t st_identity_pods(struct st_identity *id)
{
    return json_object_size(id->registered) + json_object_size(id->pods);
}
