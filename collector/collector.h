/* collector.h - the daemon's shared state and the modules' entry points.
 *
 * Data path: ingest.c (POST /api/v1/entries) -> validate.c -> identity.c fills the peer
 * -> dedup.c joins the two reports of one call -> st_collector_deliver() -> store
 * (store.h) + stream.c (live SSE). api.c answers queries; servicemap.c, har.c and
 * metrics.c build their documents from the store. Everything runs on one event loop. */
#ifndef SIDETAP_COLLECTOR_COLLECTOR_H
#define SIDETAP_COLLECTOR_COLLECTOR_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "store.h"

struct st_identity;
struct st_dedup;
struct st_stream;
struct st_k8s;
struct kfl_query;

struct st_config {
    char *listen_host;
    int listen_port;
    char *token;            /* ingest bearer token; NULL only with --no-auth */
    size_t max_body;        /* bytes of one request body */
    size_t max_batch;       /* entries in one batch */
    uint64_t max_rate;      /* entries/s accepted before 503; 0 = unbounded */
    size_t max_backlog;     /* bytes waiting for the disk before 503 */
    int dedup_hold_ms;      /* how long a first report waits for its counterpart */
    size_t dedup_max;       /* reports held at once */
    int stream_stall_ms;    /* a stream that cannot be written for this long is closed */
    size_t stream_buffer;   /* output bytes queued per stream before it falls behind */
    uint64_t stream_lag;    /* entries a stream may fall behind before it skips (drops) */
    int max_streams;
    struct st_store_config store;
    /* Kubernetes API (in-cluster, or overridden for tests) */
    char *k8s_api;          /* base URL; NULL: outside a cluster */
    char *k8s_token_file;
    char *k8s_ca_file;
};

/* Counters (each is a metric; see metrics.c). */
struct st_counters {
    uint64_t batches;            /* POST /api/v1/entries answered 200 */
    uint64_t entries_received;   /* entries in accepted batches */
    uint64_t entries_rejected;   /* entries refused by validation (in `rejected`) */
    uint64_t batches_rejected;   /* 4xx: malformed, schema, too large */
    uint64_t unauthorized;       /* 401 */
    uint64_t saturated;          /* 503 */
    uint64_t registrations;
    uint64_t merged;             /* calls reported by both sides, stored once */
    uint64_t held_alone;         /* held for a counterpart that never came */
    uint64_t stream_dropped;     /* entries not sent to slow streams */
    uint64_t streams_closed_slow;
    uint64_t queries;
    uint64_t query_errors;
    uint64_t http_requests;
};

struct st_collector {
    struct event_base *base;
    struct evhttp *http;
    struct st_config cfg;
    struct st_store *store;
    struct st_identity *identity;
    struct st_dedup *dedup;
    struct st_stream *stream;
    struct st_k8s *k8s;
    struct st_counters n;
    int64_t started_ms;
    /* ingest rate: entries stored per second, over the last full second */
    int64_t rate_second;
    uint64_t rate_count, rate_last;
    uint64_t rate_window_accepted; /* entries accepted in the current second (max_rate) */
    struct event *tick;
};

int64_t st_now_ms(void);

/* Stores a finished entry (copied; see st_store_append) and publishes it to live streams. */
void st_collector_deliver(struct st_collector *c, const struct st_jentry *entry);
/* Entries stored per second (last full second). */
double st_collector_rate(struct st_collector *c);

/* ingest.c */
void st_ingest_entries(struct evhttp_request *req, struct st_collector *c);
void st_ingest_register(struct evhttp_request *req, struct st_collector *c);
/* Frees the buffers ingest keeps between batches. */
void st_ingest_free(void);

/* validate.c: checks entry number index of a batch against docs/entries.md. On failure
 * writes "entries[index].field: expected ..." into err and returns -1. */
int st_validate_jentry(const struct st_jentry *entry, size_t index, char *err, size_t errlen);
int st_validate_pod(json_t *pod, char *err, size_t errlen);

/* identity.c */
struct st_identity *st_identity_new(void);
void st_identity_free(struct st_identity *id);
/* Records a proxy's pod (the "pod" object of /api/v1/register). */
int st_identity_register(struct st_identity *id, json_t *pod);
/* Kubernetes objects by IP (k8s.c): kind "pod", "endpoint" or "service"; NULL removes. */
void st_identity_set_k8s(struct st_identity *id, const char *kind, const char *ip, json_t *identity);
/* The identity fields that side (0 src, 1 dst) of entry lacks and that are known for its
 * IP, appended to out as JSON members, each preceded by a comma (",\"name\":\"x\""...).
 * Returns -1 on allocation failure. */
struct st_jbuf;
int st_identity_fill_text(struct st_identity *id, const struct st_jentry *entry, int side,
                          struct st_jbuf *out);
/* True when ip belongs to a pod whose proxy registered (so it reports calls too). */
bool st_identity_is_injected(struct st_identity *id, const char *ip);
size_t st_identity_pods(struct st_identity *id);

/* dedup.c */
struct st_dedup *st_dedup_new(struct st_collector *c);
void st_dedup_free(struct st_dedup *d);
/* Delivers the entry now, merges it with a held counterpart, or holds a copy of it. The
 * entry must be compact and carry no "merged", "serverNode" or "id" member (ingest.c). */
void st_dedup_offer(struct st_dedup *d, const struct st_jentry *entry);
/* Delivers held reports whose time is up (all of them when flush_all). */
void st_dedup_expire(struct st_dedup *d, bool flush_all);
size_t st_dedup_held(struct st_dedup *d);

/* stream.c */
struct st_stream *st_stream_new(struct st_collector *c);
void st_stream_free(struct st_stream *s);
void st_stream_open(struct st_stream *s, struct evhttp_request *req, struct kfl_query *q);
void st_stream_publish(struct st_stream *s, const struct st_rec *rec);
void st_stream_tick(struct st_stream *s);
size_t st_stream_count(struct st_stream *s);

/* k8s.c */
struct st_k8s *st_k8s_new(struct st_collector *c, char *err, size_t errlen);
void st_k8s_free(struct st_k8s *k);
bool st_k8s_synced(struct st_k8s *k);

/* api.c */
void st_api_handle(struct evhttp_request *req, void *arg);
/* Sends {"error": msg} with status. */
void st_api_error(struct evhttp_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sends a JSON document (steals the reference). */
void st_api_json(struct evhttp_request *req, int status, json_t *doc);
/* Copy of rec's entry with request/response body "data" removed (for lists). */
json_t *st_api_entry_brief(const struct st_rec *rec);

/* servicemap.c */
json_t *st_servicemap_build(struct st_store *store, const struct kfl_query *q, int64_t window_ms,
                            int64_t now_ms, const char *metric);
/* har.c */
json_t *st_har_build(struct st_store *store, const struct kfl_query *q, size_t limit);
/* metrics.c */
void st_metrics_write(struct st_collector *c, struct evbuffer *out);

#endif
