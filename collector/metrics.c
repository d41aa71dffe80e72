/* metrics.c - GET /metrics: the collector's counters in Prometheus text format. */
#include <inttypes.h>

#include <event2/buffer.h>

#include "collector.h"

static void metric(struct evbuffer *out, const char *name, const char *type, const char *help,
                   uint64_t value)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
                        name, value);
}

void st_metrics_write(struct st_collector *c, struct evbuffer *out)
{
    struct st_store_stats ss;
    st_store_stats(c->store, &ss);
    metric(out, "sidetap_collector_entries_stored", "gauge", "Entries held by the store.", ss.entries);
    metric(out, "sidetap_collector_store_bytes", "gauge", "Memory held by stored entries.", ss.bytes);
    metric(out, "sidetap_collector_entries_appended_total", "counter", "Entries stored since start.",
           ss.appended);
    metric(out, "sidetap_collector_entries_evicted_total", "counter",
           "Entries dropped by the memory budget or the retention age.", ss.evicted);
    metric(out, "sidetap_collector_entries_loaded_total", "counter",
           "Entries read back from disk at start.", ss.loaded);
    metric(out, "sidetap_collector_disk_bytes", "gauge", "Bytes in segment files.", ss.disk_bytes);
    metric(out, "sidetap_collector_disk_segments", "gauge", "Segment files.", ss.disk_segments);
    metric(out, "sidetap_collector_disk_errors_total", "counter", "Failed disk operations.",
           ss.disk_errors);
    metric(out, "sidetap_collector_disk_syncs_total", "counter",
           "fdatasync rounds of segment files (off the event loop).", ss.disk_syncs);
    metric(out, "sidetap_collector_disk_dropped_bytes_total", "counter",
           "Record bytes kept in memory only: the disk was too far behind or failing.",
           ss.disk_dropped);
    metric(out, "sidetap_collector_disk_torn_total", "counter",
           "Damaged records skipped at load.", ss.torn);
    metric(out, "sidetap_collector_ingest_batches_total", "counter", "Batches accepted.", c->n.batches);
    metric(out, "sidetap_collector_ingest_entries_total", "counter", "Entries accepted.",
           c->n.entries_received);
    metric(out, "sidetap_collector_ingest_entries_rejected_total", "counter",
           "Entries refused by validation.", c->n.entries_rejected);
    metric(out, "sidetap_collector_ingest_batches_rejected_total", "counter",
           "Batches refused (malformed, wrong shape, too large).", c->n.batches_rejected);
    metric(out, "sidetap_collector_ingest_unauthorized_total", "counter",
           "Requests without the right token.", c->n.unauthorized);
    metric(out, "sidetap_collector_ingest_saturated_total", "counter",
           "Batches answered 503 (rate limit or disk backlog).", c->n.saturated);
    metric(out, "sidetap_collector_registrations_total", "counter", "Proxy registrations.",
           c->n.registrations);
    metric(out, "sidetap_collector_dedup_merged_total", "counter",
           "Calls reported by both proxies and stored once.", c->n.merged);
    metric(out, "sidetap_collector_dedup_alone_total", "counter",
           "Held reports stored alone (no counterpart in time).", c->n.held_alone);
    metric(out, "sidetap_collector_dedup_held", "gauge", "Reports waiting for a counterpart.",
           st_dedup_held(c->dedup));
    metric(out, "sidetap_collector_streams", "gauge", "Open live streams.", st_stream_count(c->stream));
    metric(out, "sidetap_collector_stream_dropped_total", "counter",
           "Entries not sent to slow live streams.", c->n.stream_dropped);
    metric(out, "sidetap_collector_streams_closed_slow_total", "counter",
           "Live streams closed because they stopped reading.", c->n.streams_closed_slow);
    metric(out, "sidetap_collector_queries_total", "counter", "KFL queries compiled.", c->n.queries);
    metric(out, "sidetap_collector_query_errors_total", "counter", "KFL queries with errors.",
           c->n.query_errors);
    metric(out, "sidetap_collector_http_requests_total", "counter", "HTTP requests served.",
           c->n.http_requests);
    evbuffer_add_printf(out, "# HELP sidetap_collector_entries_by_protocol Entries held, by protocol.\n"
                             "# TYPE sidetap_collector_entries_by_protocol gauge\n");
    for (int p = 0; p < ST_RP_COUNT; p++)
        evbuffer_add_printf(out, "sidetap_collector_entries_by_protocol{protocol=\"%s\"} %" PRIu64 "\n",
                            p ? st_rproto_name((enum st_rproto)p) : "other", ss.per_proto[p]);
    metric(out, "sidetap_collector_ingest_rate", "gauge", "Entries stored in the last second.",
           (uint64_t)st_collector_rate(c));
}
