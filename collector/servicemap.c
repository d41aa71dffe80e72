/* servicemap.c - GET /api/v1/servicemap: who talks to whom over the entries in a window.
 *
 * One pass over the index records (no JSON parsing) builds nodes (a workload, else a pod,
 * else a Service, else an address) and edges per (source, target, protocol) with request
 * counts, bytes, errors, latency percentiles and the most frequent operations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "kfl.h"

#define TOP_NAMES 5
#define TOP_TRACK 256   /* distinct operation names counted per edge */
#define MAX_NODES 20000
#define MAX_EDGES 50000

struct name_count {
    char *name;
    uint64_t count;
};

struct edge {
    char *source, *target;
    const char *protocol;
    uint64_t requests, bytes, errors;
    double *lat;
    size_t nlat, cap;
    struct name_count top[TOP_TRACK];
    size_t ntop;
    uint64_t top_other;
};

struct map_scan {
    const struct kfl_query *q;
    int64_t from, to;
    json_t *nodes;   /* id -> node object */
    json_t *edge_ix; /* edge id -> index into edges */
    struct edge *edges;
    size_t nedges, cap;
    bool truncated;
};

static const char *side_str(const struct st_rec *r, bool src, int field_src, int field_dst)
{
    return r->str[src ? field_src : field_dst];
}

/* Node id and fields for one side of a record. */
static json_t *node_for(struct map_scan *ms, const struct st_rec *r, bool src)
{
    const char *ns = side_str(r, src, ST_RS_SRC_NS, ST_RS_DST_NS);
    const char *workload = side_str(r, src, ST_RS_SRC_WORKLOAD, ST_RS_DST_WORKLOAD);
    const char *pod = side_str(r, src, ST_RS_SRC_NAME, ST_RS_DST_NAME);
    const char *ip = side_str(r, src, ST_RS_SRC_IP, ST_RS_DST_IP);
    const char *name, *kind;
    if (workload && ns) {
        name = workload;
        kind = "workload";
    } else if (pod && ns) {
        name = pod;
        kind = "pod";
    } else if (pod) {
        name = pod; /* a host name learned from DNS, outside the cluster */
        kind = "external";
    } else {
        name = ip ? ip : "unknown";
        kind = "external";
    }
    char id[512];
    snprintf(id, sizeof(id), "%s%s%s", ns ? ns : "", ns ? "/" : "", name);
    json_t *node = json_object_get(ms->nodes, id);
    if (!node) {
        if (json_object_size(ms->nodes) >= MAX_NODES) {
            ms->truncated = true;
            return NULL;
        }
        node = json_pack("{s:s,s:s,s:s?,s:s,s:I}", "id", id, "name", name, "namespace", ns, "kind",
                         kind, "requests", (json_int_t)0);
        if (!node)
            return NULL;
        if (ns == NULL)
            json_object_set_new(node, "namespace", json_string(""));
        json_object_set_new(ms->nodes, id, node);
    }
    return node;
}

static void add_name(struct edge *e, const char *name)
{
    for (size_t i = 0; i < e->ntop; i++)
        if (strcmp(e->top[i].name, name) == 0) {
            e->top[i].count++;
            return;
        }
    if (e->ntop < TOP_TRACK) {
        e->top[e->ntop].name = strdup(name);
        if (e->top[e->ntop].name)
            e->top[e->ntop++].count = 1;
    } else {
        e->top_other++;
    }
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
    json_t *a = node_for(ms, r, true), *b = node_for(ms, r, false);
    if (!a || !b)
        return true;
    const char *aid = json_string_value(json_object_get(a, "id"));
    const char *bid = json_string_value(json_object_get(b, "id"));
    const char *proto = r->str[ST_RS_PROTO_NAME] ? r->str[ST_RS_PROTO_NAME] : "unknown";
    char eid[1200];
    snprintf(eid, sizeof(eid), "%s->%s:%s", aid, bid, proto);
    json_t *ix = json_object_get(ms->edge_ix, eid);
    struct edge *e;
    if (!ix) {
        if (ms->nedges >= MAX_EDGES) {
            ms->truncated = true;
            return true;
        }
        if (ms->nedges == ms->cap) {
            size_t cap = ms->cap ? ms->cap * 2 : 64;
            struct edge *p = realloc(ms->edges, cap * sizeof(*p));
            if (!p)
                return false;
            ms->edges = p;
            ms->cap = cap;
        }
        e = &ms->edges[ms->nedges];
        memset(e, 0, sizeof(*e));
        e->source = strdup(aid);
        e->target = strdup(bid);
        e->protocol = proto;
        json_object_set_new(ms->edge_ix, eid, json_integer((json_int_t)ms->nedges));
        ms->nedges++;
    } else {
        e = &ms->edges[json_integer_value(ix)];
    }
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
    char op[600];
    const char *method = r->str[ST_RS_METHOD], *path = r->str[ST_RS_PATH];
    if (method && path && *path)
        snprintf(op, sizeof(op), "%s %s", method, path);
    else if (method)
        snprintf(op, sizeof(op), "%s", method);
    else
        snprintf(op, sizeof(op), "%s", r->str[ST_RS_SUMMARY] ? r->str[ST_RS_SUMMARY] : proto);
    add_name(e, op);
    json_t *ra = json_object_get(a, "requests"), *rb = json_object_get(b, "requests");
    json_integer_set(ra, json_integer_value(ra) + 1);
    if (b != a)
        json_integer_set(rb, json_integer_value(rb) + 1);
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_count(const void *a, const void *b)
{
    const struct name_count *x = a, *y = b;
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

json_t *st_servicemap_build(struct st_store *store, const struct kfl_query *q, int64_t window_ms,
                            int64_t now_ms, const char *metric)
{
    struct map_scan ms = {.q = q, .from = window_ms ? now_ms - window_ms : 0, .to = now_ms};
    ms.nodes = json_object();
    ms.edge_ix = json_object();
    st_store_scan(store, 0, 0, map_visit, &ms);

    json_t *nodes = json_array(), *edges = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(ms.nodes, k, v) json_array_append(nodes, v);
    double span_s = window_ms ? (double)window_ms / 1000.0 : 0;
    if (!window_ms) {
        struct st_store_stats ss;
        st_store_stats(store, &ss);
        const struct st_rec *oldest = ss.oldest_id ? st_store_get(store, ss.oldest_id) : NULL;
        span_s = oldest && now_ms > oldest->timestamp ? (double)(now_ms - oldest->timestamp) / 1000.0 : 1;
    }
    for (size_t i = 0; i < ms.nedges; i++) {
        struct edge *e = &ms.edges[i];
        qsort(e->lat, e->nlat, sizeof(double), cmp_double);
        qsort(e->top, e->ntop, sizeof(e->top[0]), cmp_count);
        json_t *top = json_array();
        for (size_t t = 0; t < e->ntop && t < TOP_NAMES; t++)
            json_array_append_new(top, json_pack("{s:s,s:I}", "name", e->top[t].name, "count",
                                                 (json_int_t)e->top[t].count));
        char id[1200];
        snprintf(id, sizeof(id), "%s->%s:%s", e->source, e->target, e->protocol);
        json_array_append_new(
            edges, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:f,s:f,s:f,s:o}", "id", id, "source",
                             e->source, "target", e->target, "protocol", e->protocol, "requests",
                             (json_int_t)e->requests, "bytes", (json_int_t)e->bytes, "errors",
                             (json_int_t)e->errors, "p50", round3(percentile(e->lat, e->nlat, 50)),
                             "p99", round3(percentile(e->lat, e->nlat, 99)), "rate",
                             round3(span_s > 0 ? (double)e->requests / span_s : 0), "top", top));
        for (size_t t = 0; t < e->ntop; t++)
            free(e->top[t].name);
        free(e->lat);
        free(e->source);
        free(e->target);
    }
    free(ms.edges);
    json_decref(ms.nodes);
    json_decref(ms.edge_ix);
    return json_pack("{s:o,s:o,s:I,s:I,s:s,s:b}", "nodes", nodes, "edges", edges, "from",
                     (json_int_t)ms.from, "to", (json_int_t)now_ms, "metric", metric, "truncated",
                     ms.truncated);
}
