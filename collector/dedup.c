/* dedup.c - one entry per call when both proxies report it.
 *
 * The client's proxy reports a call with outgoing=true, the server's with outgoing=false;
 * both carry the same (src.ip, src.port, seq) because outbound entries use the port on
 * the wire. When a report arrives whose peer is an injected pod (its proxy registered),
 * the counterpart is expected: the report is held up to --dedup-hold (2 s) and stored
 * when the other arrives, as ONE entry: the outgoing report's request/response and src,
 * the incoming report's dst (the server as its own proxy sees itself), "merged": true.
 * A report whose counterpart never comes is stored alone when its time is up. Reports
 * from non-injected peers are stored at once. Holding (rather than storing and updating)
 * keeps ids, the live stream and queries consistent: every call appears once, complete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"

#define BUCKETS 65536

struct held {
    char key[96];
    json_t *entry;
    bool outgoing;
    int64_t deadline;
    struct held *next_in_bucket;
    struct held *prev, *next; /* arrival order == deadline order */
};

struct st_dedup {
    struct st_collector *c;
    struct held *buckets[BUCKETS];
    struct held *oldest, *newest;
    size_t count;
};

struct st_dedup *st_dedup_new(struct st_collector *c)
{
    struct st_dedup *d = calloc(1, sizeof(*d));
    if (d)
        d->c = c;
    return d;
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 16777619u;
    }
    return h;
}

static void unlink_held(struct st_dedup *d, struct held *h)
{
    struct held **pp = &d->buckets[hash(h->key) % BUCKETS];
    while (*pp && *pp != h)
        pp = &(*pp)->next_in_bucket;
    if (*pp)
        *pp = h->next_in_bucket;
    if (h->prev)
        h->prev->next = h->next;
    else
        d->oldest = h->next;
    if (h->next)
        h->next->prev = h->prev;
    else
        d->newest = h->prev;
    d->count--;
}

void st_dedup_free(struct st_dedup *d)
{
    if (!d)
        return;
    struct held *h = d->oldest;
    while (h) {
        struct held *next = h->next;
        json_decref(h->entry);
        free(h);
        h = next;
    }
    free(d);
}

static bool make_key(json_t *e, char *key, size_t size)
{
    json_t *src = json_object_get(e, "src");
    const char *ip = json_string_value(json_object_get(src, "ip"));
    json_t *port = json_object_get(src, "port"), *seq = json_object_get(e, "seq");
    if (!ip || !json_is_integer(port) || !json_is_integer(seq) ||
        !json_is_boolean(json_object_get(e, "outgoing")))
        return false;
    snprintf(key, size, "%s|%lld|%lld", ip, (long long)json_integer_value(port),
             (long long)json_integer_value(seq));
    return true;
}

/* Joins the two reports: takes out's references to both, returns the merged entry. */
static json_t *merge(json_t *out_report, json_t *in_report)
{
    json_t *in_dst = json_object_get(in_report, "dst"), *out_dst = json_object_get(out_report, "dst");
    if (json_is_object(in_dst)) {
        json_t *dst = json_deep_copy(in_dst);
        /* what only the client saw (e.g. the Service address it dialled) stays visible */
        const char *oip = json_string_value(json_object_get(out_dst, "ip"));
        const char *iip = json_string_value(json_object_get(in_dst, "ip"));
        if (dst && oip && iip && strcmp(oip, iip) != 0)
            json_object_set_new(dst, "dialedIp", json_string(oip));
        if (dst)
            json_object_set_new(out_report, "dst", dst);
    }
    static const char *const take_if_missing[] = {"response", "request", "error", NULL};
    for (int i = 0; take_if_missing[i]; i++) {
        json_t *v = json_object_get(in_report, take_if_missing[i]);
        if (v && !json_object_get(out_report, take_if_missing[i]))
            json_object_set(out_report, take_if_missing[i], v);
    }
    json_t *in_node = json_object_get(json_object_get(in_report, "node"), "name");
    if (json_is_string(in_node))
        json_object_set(out_report, "serverNode", in_node);
    json_object_set_new(out_report, "merged", json_true());
    json_decref(in_report);
    return out_report;
}

void st_dedup_offer(struct st_dedup *d, json_t *e)
{
    struct st_collector *c = d->c;
    char key[96];
    if (!make_key(e, key, sizeof(key))) {
        st_collector_deliver(c, e);
        return;
    }
    bool outgoing = json_is_true(json_object_get(e, "outgoing"));
    uint32_t b = hash(key) % BUCKETS;
    for (struct held *h = d->buckets[b]; h; h = h->next_in_bucket) {
        if (h->outgoing != outgoing && strcmp(h->key, key) == 0) {
            unlink_held(d, h);
            json_t *merged = outgoing ? merge(e, h->entry) : merge(h->entry, e);
            free(h);
            c->n.merged++;
            st_collector_deliver(c, merged);
            return;
        }
    }
    /* hold only when the peer reports too */
    const char *peer = json_string_value(
        json_object_get(json_object_get(e, outgoing ? "dst" : "src"), "ip"));
    if (c->cfg.dedup_hold_ms == 0 || !st_identity_is_injected(c->identity, peer) ||
        d->count >= c->cfg.dedup_max) {
        st_collector_deliver(c, e);
        return;
    }
    struct held *h = calloc(1, sizeof(*h));
    if (!h) {
        st_collector_deliver(c, e);
        return;
    }
    memcpy(h->key, key, sizeof(key));
    h->entry = e;
    h->outgoing = outgoing;
    h->deadline = st_now_ms() + c->cfg.dedup_hold_ms;
    h->next_in_bucket = d->buckets[b];
    d->buckets[b] = h;
    h->prev = d->newest;
    if (d->newest)
        d->newest->next = h;
    else
        d->oldest = h;
    d->newest = h;
    d->count++;
}

void st_dedup_expire(struct st_dedup *d, bool flush_all)
{
    int64_t now = st_now_ms();
    while (d->oldest && (flush_all || d->oldest->deadline <= now)) {
        struct held *h = d->oldest;
        unlink_held(d, h);
        d->c->n.held_alone++;
        json_t *e = h->entry;
        free(h);
        st_collector_deliver(d->c, e);
    }
}

size_t st_dedup_held(struct st_dedup *d)
{
    return d->count;
}
