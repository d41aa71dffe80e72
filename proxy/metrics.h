/* metrics.h - the proxy's counters and their Prometheus text rendering.
 *
 * One process-wide struct; modules bump fields directly (single event loop thread).
 * Gauges that other modules own (queue depth, budget use) are read at render time
 * through st_metrics_gauges. */
#ifndef SIDETAP_PROXY_METRICS_H
#define SIDETAP_PROXY_METRICS_H

#include <stdint.h>

#include <event2/buffer.h>

#include "entry.h"
#include "parser.h"

enum st_dirn { ST_DIRN_OUTBOUND = 0, ST_DIRN_INBOUND, ST_DIRN_DNS, ST_DIRN_COUNT };

enum st_drop {
    ST_DROP_QUEUE_FULL = 0,      /* ship queue over its entry or byte bound: oldest dropped */
    ST_DROP_COLLECTOR_REJECTED,  /* collector answered 4xx (not 429) to a batch */
    ST_DROP_NO_COLLECTOR,        /* no collector URL and no entries file */
    ST_DROP_SHUTDOWN,            /* still queued when the flush deadline passed */
    ST_DROP_SERIALIZE,           /* could not be turned into JSON */
    ST_DROP_COUNT
};

struct st_metrics {
    uint64_t conn_open[ST_DIRN_COUNT];
    uint64_t conn_total[ST_DIRN_COUNT];
    uint64_t bytes_to_server[ST_DIRN_COUNT];
    uint64_t bytes_to_client[ST_DIRN_COUNT];
    uint64_t connect_failures[ST_DIRN_COUNT];
    uint64_t resets[ST_DIRN_COUNT];       /* connections ended by a reset from either side */
    uint64_t connect_timeouts, idle_timeouts, dns_timeouts;
    uint64_t self_connect_rejected;
    uint64_t origdst_failures;
    uint64_t accept_errors;
    uint64_t unparsed_connections;        /* relayed without parsing: over max_connections or OOM */

    uint64_t entries[ST_PROTO_COUNT];
    uint64_t parse_errors[ST_PROTO_COUNT];
    uint64_t dropped[ST_DROP_COUNT];

    uint64_t dns_queries, dns_answers, dns_dropped_inflight, dns_upstream_errors;
    uint64_t names_learned;

    uint64_t batches_sent, batches_failed, batches_retried;
    uint64_t entries_shipped;
    uint64_t registrations, registration_failures;
};

/* Values other modules own, sampled when /metrics is rendered. */
struct st_metrics_gauges {
    uint64_t queue_entries, queue_bytes;
    int collector_up;   /* 1, 0; -1 = no collector configured */
    int registered;
    uint64_t capture_used, capture_limit;
    uint64_t budget_entries_skipped, budget_bodies_truncated;
    const struct st_parse_stats *parse_stats; /* may be NULL */
    uint64_t names_cached;
    uint64_t dns_inflight;
};

/* Each event loop thread counts in its own copy (no atomics, no shared cache lines on
 * the data path); /metrics shows the sum over every registered thread. Every member is
 * a uint64_t or an array of them (st_metrics_render sums them as one array). */
extern __thread struct st_metrics st_metrics;

/* Adds the calling thread's counters to what /metrics sums; once per thread, before it
 * counts anything. Returns -1 beyond ST_METRICS_THREADS_MAX threads. */
#define ST_METRICS_THREADS_MAX 65
int st_metrics_thread_register(void);
/* Before a registered thread ends: its counts are kept in the sums, its copy (which dies
 * with the thread) is no longer read. */
void st_metrics_thread_unregister(void);

/* Appends the Prometheus text exposition of everything to `out`. */
void st_metrics_render(struct evbuffer *out, const struct st_metrics_gauges *g);

/* Resident set size in bytes from /proc/self/statm, 0 if unknown. */
uint64_t st_metrics_rss(void);

#endif
