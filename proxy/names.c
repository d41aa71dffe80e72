/* names.c - bounded IP -> host name cache (see names.h).
 *
 * A chained hash keyed by the binary address (v4 as v4-mapped v6, so "10.0.0.1" and a
 * differently spelled form agree) plus one list in learning order for eviction. Apps
 * commonly keep using an address past its TTL, so a pair lives at least NAMES_MIN_TTL. */
#include "names.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define NAMES_MIN_TTL 600u
#define NAMES_MAX_TTL 86400u

struct name_pair {
    uint8_t addr[16];
    char *name;
    uint64_t expires_s;
    struct name_pair *hash_next;
    struct name_pair *older, *newer; /* learning order */
};

struct st_names {
    struct name_pair **buckets;
    size_t nbuckets, count, max;
    struct name_pair *oldest, *newest;
};

static int to_key(const char *ip, uint8_t key[16])
{
    struct in_addr v4;
    if (inet_pton(AF_INET, ip, &v4) == 1) {
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, ip, key) == 1 ? 0 : -1;
}

static size_t hash_key(const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)h;
}

struct st_names *st_names_new(size_t max)
{
    struct st_names *n = calloc(1, sizeof(*n));
    if (n == NULL) return NULL;
    n->max = max ? max : 1;
    n->nbuckets = 64;
    while (n->nbuckets < n->max) n->nbuckets <<= 1;
    n->buckets = calloc(n->nbuckets, sizeof(*n->buckets));
    if (n->buckets == NULL) {
        free(n);
        return NULL;
    }
    return n;
}

static struct name_pair **find_slot(struct st_names *n, const uint8_t key[16])
{
    struct name_pair **slot = &n->buckets[hash_key(key) & (n->nbuckets - 1)];
    while (*slot && memcmp((*slot)->addr, key, 16) != 0) slot = &(*slot)->hash_next;
    return slot;
}

static void unlink_order(struct st_names *n, struct name_pair *p)
{
    if (p->older) p->older->newer = p->newer;
    else n->oldest = p->newer;
    if (p->newer) p->newer->older = p->older;
    else n->newest = p->older;
    p->older = p->newer = NULL;
}

static void append_order(struct st_names *n, struct name_pair *p)
{
    p->older = n->newest;
    p->newer = NULL;
    if (n->newest) n->newest->newer = p;
    else n->oldest = p;
    n->newest = p;
}

static void remove_pair(struct st_names *n, struct name_pair *p)
{
    struct name_pair **slot = find_slot(n, p->addr);
    if (*slot == p) *slot = p->hash_next;
    unlink_order(n, p);
    free(p->name);
    free(p);
    n->count--;
}

void st_names_free(struct st_names *n)
{
    if (n == NULL) return;
    while (n->oldest) remove_pair(n, n->oldest);
    free(n->buckets);
    free(n);
}

void st_names_put(struct st_names *n, const char *ip, const char *name, uint32_t ttl_s, uint64_t now_s)
{
    uint8_t key[16];
    if (to_key(ip, key) < 0 || name == NULL || *name == 0) return;
    if (ttl_s < NAMES_MIN_TTL) ttl_s = NAMES_MIN_TTL;
    if (ttl_s > NAMES_MAX_TTL) ttl_s = NAMES_MAX_TTL;
    struct name_pair **slot = find_slot(n, key);
    struct name_pair *p = *slot;
    if (p != NULL) {
        if (strcmp(p->name, name) != 0) {
            char *copy = strdup(name);
            if (copy == NULL) return;
            free(p->name);
            p->name = copy;
        }
        unlink_order(n, p);
    } else {
        p = calloc(1, sizeof(*p));
        if (p == NULL) return;
        p->name = strdup(name);
        if (p->name == NULL) {
            free(p);
            return;
        }
        memcpy(p->addr, key, 16);
        *slot = p;
        n->count++;
    }
    p->expires_s = now_s + ttl_s;
    append_order(n, p);
    while (n->count > n->max) remove_pair(n, n->oldest);
}

const char *st_names_get(struct st_names *n, const char *ip, uint64_t now_s)
{
    uint8_t key[16];
    if (n == NULL || to_key(ip, key) < 0) return NULL;
    struct name_pair *p = *find_slot(n, key);
    if (p == NULL) return NULL;
    if (p->expires_s < now_s) {
        remove_pair(n, p);
        return NULL;
    }
    return p->name;
}

size_t st_names_count(const struct st_names *n)
{
    return n ? n->count : 0;
}

static bool is_addr_type(json_t *type)
{
    if (json_is_string(type))
        return strcmp(json_string_value(type), "A") == 0 || strcmp(json_string_value(type), "AAAA") == 0;
    if (json_is_integer(type)) return json_integer_value(type) == 1 || json_integer_value(type) == 28;
    return false;
}

size_t st_names_learn(struct st_names *n, const struct st_entry *e, uint64_t now_s)
{
    if (n == NULL || e->proto != ST_PROTO_DNS || !json_is_object(e->section)) return 0;
    json_t *questions = json_object_get(e->section, "questions");
    json_t *answers = json_object_get(e->section, "answers");
    const char *qname = json_string_value(json_object_get(json_array_get(questions, 0), "name"));
    if (qname == NULL || !json_is_array(answers)) return 0;
    /* Drop the root dot: "example.com." and "example.com" name the same host. */
    char name[256];
    size_t len = strlen(qname);
    if (len >= sizeof(name)) return 0;
    memcpy(name, qname, len + 1);
    if (len > 1 && name[len - 1] == '.') name[len - 1] = 0;

    size_t learned = 0, i;
    json_t *a;
    json_array_foreach(answers, i, a)
    {
        if (!is_addr_type(json_object_get(a, "type"))) continue;
        const char *data = json_string_value(json_object_get(a, "data"));
        json_t *ttl = json_object_get(a, "ttl");
        if (data == NULL) continue;
        json_int_t t = json_is_integer(ttl) ? json_integer_value(ttl) : 0;
        st_names_put(n, data, name, t < 0 ? 0 : t > 0x7fffffff ? 0x7fffffff : (uint32_t)t, now_s);
        learned++;
    }
    return learned;
}
