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
 * keeps ids, the live stream and queries consistent: every call appears once, complete.
 *
 * A held report is kept as its text (one allocation with the bookkeeping). Merging
 * re-scans it and splices the two texts (jscan.h): no jansson tree is built. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "jscan.h"

#define BUCKETS 65536

struct held {
    char key[96];
    bool outgoing;
    int64_t deadline;
    struct held *next_in_bucket;
    struct held *prev, *next; /* arrival order == deadline order */
    size_t len;
    char text[]; /* the report */
};

struct st_dedup {
    struct st_collector *c;
    struct held *buckets[BUCKETS];
    struct held *oldest, *newest;
    size_t count;
    struct st_jtape held_tape, out_tape;
    struct st_jbuf out;
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
        free(h);
        h = next;
    }
    st_jtape_free(&d->held_tape);
    st_jtape_free(&d->out_tape);
    st_jbuf_free(&d->out);
    free(d);
}

static bool is_type(const struct st_jentry *e, uint32_t i, int type)
{
    return i && e->tape->tok[i].type == type;
}

static bool make_key(const struct st_jentry *e, char *key, size_t size)
{
    uint32_t ip = e->side[0][ST_JS_IP], port = e->side[0][ST_JS_PORT], seq = e->top[ST_JE_SEQ];
    uint32_t out = e->top[ST_JE_OUTGOING];
    if (!is_type(e, ip, ST_J_STRING) || !is_type(e, port, ST_J_INTEGER) ||
        !is_type(e, seq, ST_J_INTEGER) ||
        !(is_type(e, out, ST_J_TRUE) || is_type(e, out, ST_J_FALSE)))
        return false;
    const struct st_jtok *t = e->tape->tok;
    char ipbuf[64];
    size_t iplen;
    if (st_jstr_len(e->text, &t[ip]) >= sizeof(ipbuf))
        return false; /* no address is that long; jansson-era keys were cut at 96 bytes */
    const char *ips = st_jstr(e->text, &t[ip], ipbuf, sizeof(ipbuf), &iplen);
    /* "ip|port|seq" with the numbers as sent (integers without sign or leading zeros are
     * their own decimal form; others are rare and take snprintf) */
    const struct st_jtok *pt = &t[port], *st = &t[seq];
    size_t pl = pt->end - pt->start, sl = st->end - st->start;
    if (e->text[pt->start] == '-' || e->text[st->start] == '-' || iplen + pl + sl + 3 > size) {
        snprintf(key, size, "%.*s|%lld|%lld", (int)iplen, ips, (long long)st_jint(e->text, pt),
                 (long long)st_jint(e->text, st));
        return true;
    }
    char *o = key;
    memcpy(o, ips, iplen);
    o += iplen;
    *o++ = '|';
    memcpy(o, e->text + pt->start, pl);
    o += pl;
    *o++ = '|';
    memcpy(o, e->text + st->start, sl);
    o += sl;
    *o = '\0';
    return true;
}

/* Decoded string at tape index i into buf (NUL-terminated), or NULL when not a string. */
static const char *str_at(const struct st_jentry *e, uint32_t i, char *buf, size_t size)
{
    if (!is_type(e, i, ST_J_STRING))
        return NULL;
    size_t len;
    const struct st_jtok *t = &e->tape->tok[i];
    if (st_jstr_len(e->text, t) >= size)
        return NULL;
    const char *s = st_jstr(e->text, t, buf, size, &len);
    if (s != buf) {
        memcpy(buf, s, len);
        buf[len] = '\0';
    }
    return buf;
}

static int put_member(struct st_jbuf *b, bool *first, const char *key, const struct st_jentry *e,
                      uint32_t val)
{
    int rc = st_jbuf_put(b, *first ? "\"" : ",\"", *first ? 1 : 2) |
             st_jbuf_put(b, key, strlen(key)) | st_jbuf_put(b, "\":", 2) |
             st_jbuf_value(b, e->text, e->tape, val);
    *first = false;
    return rc;
}

/* The merged dst: the server's own view, plus the address the client dialled when it
 * differs (e.g. a Service IP). */
static int put_dst(struct st_jbuf *b, const struct st_jentry *out, const struct st_jentry *in)
{
    uint32_t in_dst = in->top[ST_JE_DST];
    char oip[256], iip[256];
    const char *o = str_at(out, out->side[1][ST_JS_IP], oip, sizeof(oip));
    const char *i = str_at(in, in->side[1][ST_JS_IP], iip, sizeof(iip));
    if (!o || !i || strcmp(o, i) == 0)
        return st_jbuf_value(b, in->text, in->tape, in_dst);
    const struct st_jtok *t = in->tape->tok;
    bool first = true;
    int rc = st_jbuf_put(b, "{", 1);
    for (uint32_t k = in_dst + 1; k < t[in_dst].next; k = t[k + 1].next) {
        if (st_jstr_eq(in->text, &t[k], "dialedIp", 8))
            continue;
        rc |= st_jbuf_put(b, first ? "" : ",", first ? 0 : 1);
        rc |= st_jbuf_put(b, in->text + t[k].start, t[k].end - t[k].start);
        rc |= st_jbuf_put(b, ":", 1) | st_jbuf_value(b, in->text, in->tape, k + 1);
        first = false;
    }
    rc |= put_member(b, &first, "dialedIp", out, out->side[1][ST_JS_IP]);
    return rc | st_jbuf_put(b, "}", 1);
}

/* Joins the two reports into d->out: the outgoing report with the incoming one's dst,
 * what it lacks of request/response/error, "serverNode" and "merged": true. Members
 * replaced keep their place; added ones go last (as jansson's json_object_set did). */
static int merge(struct st_jbuf *b, const struct st_jentry *out, const struct st_jentry *in)
{
    const struct st_jtok *t = out->tape->tok;
    bool in_dst = is_type(in, in->top[ST_JE_DST], ST_J_OBJECT), first = true;
    int rc = 0;
    b->len = 0;
    rc |= st_jbuf_put(b, "{", 1);
    for (uint32_t k = out->root + 1; k < t[out->root].next; k = t[k + 1].next) {
        rc |= st_jbuf_put(b, first ? "" : ",", first ? 0 : 1);
        rc |= st_jbuf_put(b, out->text + t[k].start, t[k].end - t[k].start);
        rc |= st_jbuf_put(b, ":", 1);
        if (in_dst && k + 1 == out->top[ST_JE_DST])
            rc |= put_dst(b, out, in);
        else
            rc |= st_jbuf_value(b, out->text, out->tape, k + 1);
        first = false;
    }
    if (in_dst && !out->top[ST_JE_DST]) {
        rc |= st_jbuf_put(b, first ? "\"dst\":" : ",\"dst\":", first ? 6 : 7);
        rc |= put_dst(b, out, in);
        first = false;
    }
    static const struct {
        const char *name;
        int field;
    } take_if_missing[] = {{"response", ST_JE_RESPONSE}, {"request", ST_JE_REQUEST},
                           {"error", ST_JE_ERROR}};
    for (size_t i = 0; i < sizeof(take_if_missing) / sizeof(take_if_missing[0]); i++) {
        uint32_t v = in->top[take_if_missing[i].field];
        if (v && !out->top[take_if_missing[i].field])
            rc |= put_member(b, &first, take_if_missing[i].name, in, v);
    }
    if (is_type(in, in->node_name, ST_J_STRING))
        rc |= put_member(b, &first, "serverNode", in, in->node_name);
    rc |= st_jbuf_put(b, first ? "\"merged\":true}" : ",\"merged\":true}", first ? 14 : 15);
    return rc;
}

/* Scans a held report's text back into an entry view. */
static int rescan(struct st_jtape *tape, const char *text, size_t len, struct st_jentry *e)
{
    struct st_jerr err;
    if (st_jscan(text, len, tape, &err) < 0)
        return -1;
    st_jentry_pick(e, text, tape, 0);
    return 0;
}

static void deliver_merged(struct st_dedup *d, const struct st_jentry *e, struct held *h)
{
    struct st_collector *c = d->c;
    struct st_jentry held, merged;
    if (rescan(&d->held_tape, h->text, h->len, &held) < 0) {
        st_collector_deliver(c, e); /* cannot happen: we wrote it */
        return;
    }
    const struct st_jentry *out = h->outgoing ? &held : e, *in = h->outgoing ? e : &held;
    if (merge(&d->out, out, in) < 0 || rescan(&d->out_tape, d->out.data, d->out.len, &merged) < 0) {
        st_collector_deliver(c, &held);
        st_collector_deliver(c, e);
        return;
    }
    c->n.merged++;
    st_collector_deliver(c, &merged);
}

void st_dedup_offer(struct st_dedup *d, const struct st_jentry *e)
{
    struct st_collector *c = d->c;
    char key[96];
    if (!make_key(e, key, sizeof(key))) {
        st_collector_deliver(c, e);
        return;
    }
    bool outgoing = e->tape->tok[e->top[ST_JE_OUTGOING]].type == ST_J_TRUE;
    uint32_t b = hash(key) % BUCKETS;
    for (struct held *h = d->buckets[b]; h; h = h->next_in_bucket) {
        if (h->outgoing != outgoing && strcmp(h->key, key) == 0) {
            unlink_held(d, h);
            deliver_merged(d, e, h);
            free(h);
            return;
        }
    }
    /* hold only when the peer reports too */
    char peerbuf[256];
    const char *peer = str_at(e, e->side[outgoing ? 1 : 0][ST_JS_IP], peerbuf, sizeof(peerbuf));
    if (c->cfg.dedup_hold_ms == 0 || !st_identity_is_injected(c->identity, peer) ||
        d->count >= c->cfg.dedup_max) {
        st_collector_deliver(c, e);
        return;
    }
    size_t len;
    const char *text = st_jentry_text(e, &len);
    struct held *h = malloc(sizeof(*h) + len + 1);
    if (!h) {
        st_collector_deliver(c, e);
        return;
    }
    memset(h, 0, sizeof(*h));
    memcpy(h->text, text, len);
    h->text[len] = '\0';
    h->len = len;
    memcpy(h->key, key, sizeof(key));
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
        struct st_jentry e;
        if (rescan(&d->held_tape, h->text, h->len, &e) == 0)
            st_collector_deliver(d->c, &e);
        free(h);
    }
}

size_t st_dedup_held(struct st_dedup *d)
{
    return d->count;
}
