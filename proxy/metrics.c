/* metrics.c - Prometheus text format for the proxy's counters (served by admin.c). */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__thread struct st_metrics st_metrics;

static struct st_metrics *threads[ST_METRICS_THREADS_MAX];
static unsigned n_threads;
static struct st_metrics retired; /* counts of threads that have ended */
static pthread_mutex_t threads_mu = PTHREAD_MUTEX_INITIALIZER;

_Static_assert(sizeof(struct st_metrics) % sizeof(uint64_t) == 0, "st_metrics holds uint64_t only");

static void add_counts(struct st_metrics *to, const struct st_metrics *from)
{
    uint64_t *t = (uint64_t *)to;
    const volatile uint64_t *f = (const volatile uint64_t *)from;
    for (size_t i = 0; i < sizeof(*to) / sizeof(uint64_t); i++) t[i] += f[i];
}

void st_metrics_thread_unregister(void)
{
    pthread_mutex_lock(&threads_mu);
    for (unsigned t = 0; t < n_threads; t++) {
        if (threads[t] != &st_metrics) continue;
        add_counts(&retired, &st_metrics);
        memmove(threads + t, threads + t + 1, (n_threads - t - 1) * sizeof(threads[0]));
        n_threads--;
        break;
    }
    pthread_mutex_unlock(&threads_mu);
}

int st_metrics_thread_register(void)
{
    pthread_mutex_lock(&threads_mu);
    int rc = n_threads < ST_METRICS_THREADS_MAX ? 0 : -1;
    if (rc == 0) threads[n_threads++] = &st_metrics;
    pthread_mutex_unlock(&threads_mu);
    return rc;
}

/* The sum of every thread's counters. Other threads' counters are read while they run:
 * aligned 64-bit loads of counters that only grow, at worst a few increments old. */
static void sum_threads(struct st_metrics *sum)
{
    pthread_mutex_lock(&threads_mu);
    *sum = retired;
    if (n_threads == 0) add_counts(sum, &st_metrics); /* nothing registered: this thread */
    for (unsigned t = 0; t < n_threads; t++) add_counts(sum, threads[t]);
    pthread_mutex_unlock(&threads_mu);
}

static const char *const dirn_names[ST_DIRN_COUNT] = {"outbound", "inbound", "dns"};
static const char *const drop_names[ST_DROP_COUNT] = {"queue_full", "collector_rejected",
                                                      "no_collector", "shutdown", "serialize"};

uint64_t st_metrics_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2) return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct evbuffer *out, const char *name, const char *type, const char *help, uint64_t v)
{
    head(out, name, type, help);
    evbuffer_add_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void per_dirn(struct evbuffer *out, const char *name, const char *type, const char *help,
                     const uint64_t *v)
{
    head(out, name, type, help);
    for (int d = 0; d < ST_DIRN_COUNT; d++)
        evbuffer_add_printf(out, "%s{direction=\"%s\"} %llu\n", name, dirn_names[d],
                            (unsigned long long)v[d]);
}

static void per_proto(struct evbuffer *out, const char *name, const char *help, const uint64_t *v)
{
    head(out, name, "counter", help);
    for (int p = ST_PROTO_TCP; p < ST_PROTO_COUNT; p++)
        evbuffer_add_printf(out, "%s{protocol=\"%s\"} %llu\n", name, st_proto_name((enum st_proto)p),
                            (unsigned long long)v[p]);
}

void st_metrics_render(struct evbuffer *out, const struct st_metrics_gauges *g)
{
    struct st_metrics total;
    sum_threads(&total);
    const struct st_metrics *m = &total;
    per_dirn(out, "sidetap_connections_open", "gauge", "Relayed connections open now.", m->conn_open);
    per_dirn(out, "sidetap_connections_total", "counter", "Relayed connections accepted.", m->conn_total);
    head(out, "sidetap_thread_connections_total", "counter",
         "Relayed connections accepted by each event loop thread (SIDETAP_THREADS; 0 is the main one).");
    pthread_mutex_lock(&threads_mu);
    for (unsigned t = 0; t < n_threads; t++) {
        const volatile uint64_t *c = threads[t]->conn_total;
        evbuffer_add_printf(out, "sidetap_thread_connections_total{thread=\"%u\"} %llu\n", t,
                            (unsigned long long)(c[ST_DIRN_OUTBOUND] + c[ST_DIRN_INBOUND] + c[ST_DIRN_DNS]));
    }
    pthread_mutex_unlock(&threads_mu);
    head(out, "sidetap_bytes_total", "counter", "Bytes relayed, by listener and flow.");
    for (int d = 0; d < ST_DIRN_COUNT; d++) {
        evbuffer_add_printf(out, "sidetap_bytes_total{direction=\"%s\",flow=\"to_server\"} %llu\n",
                            dirn_names[d], (unsigned long long)m->bytes_to_server[d]);
        evbuffer_add_printf(out, "sidetap_bytes_total{direction=\"%s\",flow=\"to_client\"} %llu\n",
                            dirn_names[d], (unsigned long long)m->bytes_to_client[d]);
    }
    per_dirn(out, "sidetap_connect_failures_total", "counter",
             "Upstream connects that failed (refused, unreachable, timed out).", m->connect_failures);
    per_dirn(out, "sidetap_resets_total", "counter", "Connections ended by a reset from either side.",
             m->resets);
    head(out, "sidetap_timeouts_total", "counter", "Timeouts by kind.");
    evbuffer_add_printf(out, "sidetap_timeouts_total{kind=\"connect\"} %llu\n",
                        (unsigned long long)m->connect_timeouts);
    evbuffer_add_printf(out, "sidetap_timeouts_total{kind=\"idle\"} %llu\n",
                        (unsigned long long)m->idle_timeouts);
    evbuffer_add_printf(out, "sidetap_timeouts_total{kind=\"dns\"} %llu\n",
                        (unsigned long long)m->dns_timeouts);
    one(out, "sidetap_self_connect_rejected_total", "counter",
        "Connections whose original destination was the proxy itself (loop), closed.",
        m->self_connect_rejected);
    one(out, "sidetap_origdst_failures_total", "counter",
        "Accepted connections without a recoverable original destination, closed.",
        m->origdst_failures);
    one(out, "sidetap_accept_errors_total", "counter", "accept() failures (e.g. out of descriptors).",
        m->accept_errors);
    one(out, "sidetap_unparsed_connections_total", "counter",
        "Connections relayed without parsing (over SIDETAP_MAX_CONNECTIONS or out of memory).",
        m->unparsed_connections);

    per_proto(out, "sidetap_entries_total", "Entries made, by protocol.", m->entries);
    per_proto(out, "sidetap_parse_errors_total", "Connections whose parsing stopped on an error.",
              m->parse_errors);
    head(out, "sidetap_entries_dropped_total", "counter", "Entries lost, by reason.");
    for (int r = 0; r < ST_DROP_COUNT; r++)
        evbuffer_add_printf(out, "sidetap_entries_dropped_total{reason=\"%s\"} %llu\n", drop_names[r],
                            (unsigned long long)m->dropped[r]);
    evbuffer_add_printf(out, "sidetap_entries_dropped_total{reason=\"budget\"} %llu\n",
                        (unsigned long long)g->budget_entries_skipped);
    const struct st_parse_stats *ps = g->parse_stats;
    for (int r = 0; r < ST_LIMIT_COUNT; r++)
        evbuffer_add_printf(out, "sidetap_entries_dropped_total{reason=\"%s\"} %llu\n",
                            st_parse_limit_name((enum st_parse_limit)r),
                            (unsigned long long)(ps ? ps->dropped[r] : 0));
    head(out, "sidetap_entries_unanswered_total", "counter",
         "Entries made without their response because a parser limit was hit, by reason.");
    for (int r = 0; r < ST_LIMIT_COUNT; r++)
        evbuffer_add_printf(out, "sidetap_entries_unanswered_total{reason=\"%s\"} %llu\n",
                            st_parse_limit_name((enum st_parse_limit)r),
                            (unsigned long long)(ps ? ps->unanswered[r] : 0));
    one(out, "sidetap_body_bytes_truncated_total", "counter",
        "Body bytes not captured because the capture memory was short.", g->budget_bodies_truncated);

    one(out, "sidetap_dns_queries_total", "counter", "DNS queries forwarded (UDP).", m->dns_queries);
    one(out, "sidetap_dns_answers_total", "counter", "DNS answers returned (UDP).", m->dns_answers);
    one(out, "sidetap_dns_dropped_total", "counter",
        "DNS queries dropped because SIDETAP_DNS_MAX_INFLIGHT were in flight.", m->dns_dropped_inflight);
    one(out, "sidetap_dns_upstream_errors_total", "counter", "DNS forwarding socket errors.",
        m->dns_upstream_errors);
    one(out, "sidetap_dns_inflight", "gauge", "DNS queries waiting for an answer.", g->dns_inflight);
    one(out, "sidetap_names_learned_total", "counter", "IP -> host name pairs learned from DNS answers.",
        m->names_learned);
    one(out, "sidetap_names_cached", "gauge", "IP -> host name pairs cached.", g->names_cached);

    one(out, "sidetap_ship_queue_entries", "gauge", "Entries waiting to be shipped.", g->queue_entries);
    one(out, "sidetap_ship_queue_bytes", "gauge", "Bytes of entries waiting to be shipped.",
        g->queue_bytes);
    one(out, "sidetap_batches_sent_total", "counter", "Batches the collector accepted.", m->batches_sent);
    one(out, "sidetap_batches_failed_total", "counter",
        "Batch POSTs that failed (connect error, 5xx, 429, 4xx).", m->batches_failed);
    one(out, "sidetap_entries_shipped_total", "counter", "Entries the collector accepted.",
        m->entries_shipped);
    one(out, "sidetap_registrations_total", "counter", "Successful pod registrations.", m->registrations);
    one(out, "sidetap_registration_failures_total", "counter", "Failed pod registration attempts.",
        m->registration_failures);
    head(out, "sidetap_collector_up", "gauge",
         "1 when the last request to the collector succeeded, 0 when it failed, -1 without a collector.");
    evbuffer_add_printf(out, "sidetap_collector_up %d\n", g->collector_up);

    one(out, "sidetap_capture_memory_bytes", "gauge", "Capture memory in use (entries, bodies).",
        g->capture_used);
    one(out, "sidetap_capture_memory_limit_bytes", "gauge", "Capture memory budget (SIDETAP_CAPTURE_MEMORY).",
        g->capture_limit);
    one(out, "sidetap_resident_memory_bytes", "gauge", "Resident set size of the process.",
        st_metrics_rss());
}
