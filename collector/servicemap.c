/* servicemap.c - GET /api/v1/servicemap: who talks to whom over the entries in a window.
 *
 * One pass over the index records (no JSON parsing) builds edges per (source node, target
 * node, protocol), keyed by interned-string ids so the pass does no string work: request
 * counts, bytes, errors, latencies and operation counts. Nodes (a workload, else a pod,
 * else a host name or address) and the JSON are made at the end, once per edge. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "kfl.h"

#define TOP_NAMES 5
#define TOP_TRACK 256   /* distinct operations counted per edge */
#define MAX_NODES 20000
#define MAX_EDGES 50000

enum node_kind { NK_WORKLOAD, NK_POD, NK_EXTERNAL };

struct node_key {
    uint32_t ns, name; /* atoms; name 0 = "unknown" */
    uint8_t kind;
};

struct op_count {
    uint32_t a, b; /* method + path atoms, or summary atom (b = 0) */
    uint64_t count;
};

struct edge {
    struct node_key src, dst;
    uint32_t proto;
    uint64_t requests, bytes, errors;
    double *lat;
    size_t nlat, cap;
    struct op_count *ops;
    size_t nops;
};

struct map_scan {
    const struct kfl_query *q;
    int64_t from, to;
    struct edge *edges;
    size_t nedges, cap;
    uint32_t *table; /* open addressing: edge index + 1, 0 = empty */
    size_t tsize;
    bool truncated;
};

static struct node_key node_of(const struct st_rec *r, bool src)
{
    uint32_t ns = r->atom[src ? ST_RS_SRC_NS : ST_RS_DST_NS];
    uint32_t wl = r->atom[src ? ST_RS_SRC_WORKLOAD : ST_RS_DST_WORKLOAD];
    uint32_t pod = r->atom[src ? ST_RS_SRC_NAME : ST_RS_DST_NAME];
    uint32_t ip = r->atom[src ? ST_RS_SRC_IP : ST_RS_DST_IP];
    if (wl && ns)
        return (struct node_key){ns, wl, NK_WORKLOAD};
    if (pod && ns)
        return (struct node_key){ns, pod, NK_POD};
    /* a host name learned from DNS, or an address, outside the cluster */
    return (struct node_key){0, pod ? pod : ip, NK_EXTERNAL};
}

static uint32_t hash_edge(const struct node_key *a, const struct node_key *b, uint32_t proto)
{
    uint64_t h = 1469598103934665603ull;
    uint32_t v[7] = {a->ns, a->name, a->kind, b->ns, b->name, b->kind, proto};
    for (int i = 0; i < 7; i++) {
        h ^= v[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static bool same_node(const struct node_key *x, const struct node_key *y)
{
    return x->ns == y->ns && x->name == y->name && x->kind == y->kind;
}

static int grow_table(struct map_scan *ms)
{
    size_t n = ms->tsize ? ms->tsize * 2 : 1024;
    uint32_t *t = calloc(n, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < ms->nedges; i++) {
        struct edge *e = &ms->edges[i];
        size_t k = hash_edge(&e->src, &e->dst, e->proto) & (n - 1);
        while (t[k])
            k = (k + 1) & (n - 1);
        t[k] = (uint32_t)i + 1;
    }
    free(ms->table);
    ms->table = t;
    ms->tsize = n;
    return 0;
}

static struct edge *find_edge(struct map_scan *ms, const struct node_key *a, const struct node_key *b,
                              uint32_t proto)
{
    if ((ms->nedges + 1) * 2 > ms->tsize && grow_table(ms) < 0)
        return NULL;
    size_t k = hash_edge(a, b, proto) & (ms->tsize - 1);
    while (ms->table[k]) {
        struct edge *e = &ms->edges[ms->table[k] - 1];
        if (e->proto == proto && same_node(&e->src, a) && same_node(&e->dst, b))
            return e;
        k = (k + 1) & (ms->tsize - 1);
    }
    if (ms->nedges >= MAX_EDGES) {
        ms->truncated = true;
        return NULL;
    }
    if (ms->nedges == ms->cap) {
        size_t cap = ms->cap ? ms->cap * 2 : 64;
        struct edge *p = realloc(ms->edges, cap * sizeof(*p));
        if (!p)
            return NULL;
        ms->edges = p;
        ms->cap = cap;
    }
    struct edge *e = &ms->edges[ms->nedges];
    memset(e, 0, sizeof(*e));
    e->src = *a;
    e->dst = *b;
    e->proto = proto;
    ms->table[k] = (uint32_t)++ms->nedges;
    return e;
}

static void count_op(struct edge *e, uint32_t a, uint32_t b)
{
    for (size_t i = 0; i < e->nops; i++)
        if (e->ops[i].a == a && e->ops[i].b == b) {
            e->ops[i].count++;
            /* keep the busiest near the front: later lookups stop early */
            if (i > 0 && e->ops[i].count > e->ops[i - 1].count) {
                struct op_count t = e->ops[i];
                e->ops[i] = e->ops[i - 1];
                e->ops[i - 1] = t;
            }
            return;
        }
    if (e->nops == TOP_TRACK)
        return;
    if (!e->ops && !(e->ops = malloc(TOP_TRACK * sizeof(*e->ops))))
        return;
    e->ops[e->nops++] = (struct op_count){a, b, 1};
}

static bool map_visit(const struct st_rec *r, void *arg)
{
    struct map_scan *ms = arg;
    if (ms->from && (r->timestamp < ms->from || r->timestamp > ms->to))
        return true;
    struct kfl_subject s = {.rec = r};
    bool m = kfl_match(ms->q, &s);
    kfl_subject_done(&s);
    if (!m)
        return true;
    struct node_key a = node_of(r, true), b = node_of(r, false);
    struct edge *e = find_edge(ms, &a, &b, r->atom[ST_RS_PROTO_NAME]);
    if (!e)
        return true;
    e->requests++;
    e->bytes += (uint64_t)r->req_bytes + r->resp_bytes;
    if (r->flags & ST_REC_ERROR)
        e->errors++;
    if (r->flags & ST_REC_HAS_ELAPSED) {
        if (e->nlat == e->cap) {
            size_t cap = e->cap ? e->cap * 2 : 16;
            double *p = realloc(e->lat, cap * sizeof(*p));
            if (p) {
                e->lat = p;
                e->cap = cap;
            }
        }
        if (e->nlat < e->cap)
            e->lat[e->nlat++] = r->elapsed;
    }
    uint32_t method = r->atom[ST_RS_METHOD], path = r->atom[ST_RS_PATH];
    if (method)
        count_op(e, method, path && st_atom_len(path) ? path : 0);
    else
        count_op(e, 0, r->atom[ST_RS_SUMMARY] ? r->atom[ST_RS_SUMMARY] : r->atom[ST_RS_PROTO_NAME]);
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct named_op {
    char name[600];
    uint64_t count;
};

static int cmp_named(const void *a, const void *b)
{
    const struct named_op *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

static double round3(double v)
{
    return round(v * 1000) / 1000;
}

static const char *node_kind_name(uint8_t k)
{
    return k == NK_WORKLOAD ? "workload" : k == NK_POD ? "pod" : "external";
}

static void node_id(const struct node_key *k, char *out, size_t size)
{
    const char *ns = st_atom_str(k->ns), *name = k->name ? st_atom_str(k->name) : "unknown";
    snprintf(out, size, "%s%s%s", ns ? ns : "", ns ? "/" : "", name);
}

/* Adds the node to nodes (by id) and counts the edge's requests on it. */
static void add_node(json_t *nodes, const struct node_key *k, uint64_t requests, bool *truncated)
{
    char id[600];
    node_id(k, id, sizeof(id));
    json_t *node = json_object_get(nodes, id);
    if (!node) {
        if (json_object_size(nodes) >= MAX_NODES) {
            *truncated = true;
            return;
        }
        const char *ns = st_atom_str(k->ns);
        node = json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", id, "name",
                         k->name ? st_atom_str(k->name) : "unknown", "namespace", ns ? ns : "",
                         "kind", node_kind_name(k->kind), "requests", (json_int_t)0);
        if (!node)
            return;
        json_object_set_new(nodes, id, node);
    }
    json_t *r = json_object_get(node, "requests");
    json_integer_set(r, json_integer_value(r) + (json_int_t)requests);
}

json_t *st_servicemap_build(struct st_store *store, const struct kfl_query *q, int64_t window_ms,
                            int64_t now_ms, const char *metric)
{
    struct map_scan ms = {.q = q, .from = window_ms ? now_ms - window_ms : 0, .to = now_ms};
    st_store_scan(store, 0, 0, map_visit, &ms);

    json_t *nodes_by_id = json_object(), *edges = json_array();
    double span_s = window_ms ? (double)window_ms / 1000.0 : 0;
    if (!window_ms) {
        struct st_store_stats ss;
        st_store_stats(store, &ss);
        const struct st_rec *oldest = ss.oldest_id ? st_store_get(store, ss.oldest_id) : NULL;
        span_s = oldest && now_ms > oldest->timestamp ? (double)(now_ms - oldest->timestamp) / 1000.0 : 1;
    }
    for (size_t i = 0; i < ms.nedges; i++) {
        struct edge *e = &ms.edges[i];
        char src[600], dst[600], id[1300];
        node_id(&e->src, src, sizeof(src));
        node_id(&e->dst, dst, sizeof(dst));
        add_node(nodes_by_id, &e->src, e->requests, &ms.truncated);
        if (!same_node(&e->src, &e->dst))
            add_node(nodes_by_id, &e->dst, e->requests, &ms.truncated);
        qsort(e->lat, e->nlat, sizeof(double), cmp_double);
        struct named_op *named = calloc(e->nops ? e->nops : 1, sizeof(*named));
        for (size_t t = 0; named && t < e->nops; t++) {
            const struct op_count *o = &e->ops[t];
            if (o->a && o->b)
                snprintf(named[t].name, sizeof(named[t].name), "%s %s", st_atom_str(o->a), st_atom_str(o->b));
            else
                snprintf(named[t].name, sizeof(named[t].name), "%s",
                         o->a ? st_atom_str(o->a) : o->b ? st_atom_str(o->b) : "?");
            named[t].count = o->count;
        }
        if (named)
            qsort(named, e->nops, sizeof(*named), cmp_named);
        json_t *top = json_array();
        for (size_t t = 0; named && t < e->nops && t < TOP_NAMES; t++)
            json_array_append_new(top, json_pack("{s:s,s:I}", "name", named[t].name, "count",
                                                 (json_int_t)named[t].count));
        free(named);
        const char *proto = e->proto ? st_atom_str(e->proto) : "unknown";
        snprintf(id, sizeof(id), "%s->%s:%s", src, dst, proto);
        json_array_append_new(
            edges, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:f,s:f,s:f,s:o}", "id", id, "source",
                             src, "target", dst, "protocol", proto, "requests",
                             (json_int_t)e->requests, "bytes", (json_int_t)e->bytes, "errors",
                             (json_int_t)e->errors, "p50", round3(percentile(e->lat, e->nlat, 50)),
                             "p99", round3(percentile(e->lat, e->nlat, 99)), "rate",
                             round3(span_s > 0 ? (double)e->requests / span_s : 0), "top", top));
        free(e->ops);
        free(e->lat);
    }
    free(ms.edges);
    free(ms.table);
    json_t *nodes = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(nodes_by_id, k, v) json_array_append(nodes, v);
    json_decref(nodes_by_id);
    return json_pack("{s:o,s:o,s:I,s:I,s:s,s:b}", "nodes", nodes, "edges", edges, "from",
                     (json_int_t)ms.from, "to", (json_int_t)now_ms, "metric", metric, "truncated",
                     ms.truncated);
}
