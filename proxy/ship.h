/* ship.h - entries to the collector, batched, off the data path.
 *
 * st_ship_push() serializes the entry into a bounded queue of JSON text (oldest dropped
 * when full) and frees it. A batch timer POSTs up to SIDETAP_BATCH_ENTRIES of them as
 * {"entries":[...]} to $SIDETAP_COLLECTOR_URL/api/v1/entries over one
 * keep-alive connection driven by the same event loop (libevent's HTTP client: libcurl
 * would triple the idle memory), after the pod has registered itself
 * (POST /api/v1/register, repeated every SIDETAP_REGISTER_INTERVAL). Failures are
 * retried with exponential backoff and jitter (Retry-After honoured); a 4xx other than
 * 429 drops the batch. Without a collector, entries go to SIDETAP_ENTRIES_FILE as JSON
 * lines, or are counted and dropped. */
#ifndef SIDETAP_PROXY_SHIP_H
#define SIDETAP_PROXY_SHIP_H

#include <stdbool.h>

#include <event2/event.h>

#include "config.h"
#include "entry.h"
#include "identity.h"
#include "metrics.h"

struct st_ship;

/* NULL after printing why (cannot open the entries file, curl init failed). */
struct st_ship *st_ship_new(struct event_base *base, const struct st_proxy_config *cfg,
                            const struct st_pod *pod);
void st_ship_free(struct st_ship *ship);

/* Queues an entry's JSON and frees the entry (takes ownership). `peer_name` (may be NULL)
 * is the host name of the server for outgoing entries. */
void st_ship_push(struct st_ship *ship, struct st_entry *entry, bool outgoing, const char *peer_name);

/* Sends everything queued without waiting for batch timers; calls `done(arg)` once the
 * queue is empty and nothing is in flight, or after `max_ms` (what is left is dropped
 * and counted as shutdown). */
void st_ship_flush(struct st_ship *ship, unsigned max_ms, void (*done)(void *arg), void *arg);

void st_ship_gauges(const struct st_ship *ship, struct st_metrics_gauges *g);

#endif
