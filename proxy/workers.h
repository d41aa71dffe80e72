/* workers.h - extra event loop threads (SIDETAP_THREADS > 1).
 *
 * The main thread keeps what a pod has once: admin, DNS forwarding, learned names, the
 * ship queue and the signals, plus its own share of the connections. Each worker thread
 * runs its own event loop with its own outbound and inbound listeners (SO_REUSEPORT: the
 * kernel spreads new connections over every thread's sockets), relays, scratch buffer,
 * share of the capture budget and of SIDETAP_MAX_CONNECTIONS, and counters (summed by
 * /metrics). Nothing is shared on the data path: a worker hands each finished entry to
 * the main thread through a bounded, mutex-guarded list and an eventfd, and the main
 * thread counts, names and queues it exactly as one of its own. */
#ifndef SIDETAP_PROXY_WORKERS_H
#define SIDETAP_PROXY_WORKERS_H

#include <stdbool.h>

#include "metrics.h"
#include "proxy.h"

struct st_workers;

/* Starts `n` worker threads beside the main thread of `main_px` (listeners bound before
 * this returns). NULL after printing why. */
struct st_workers *st_workers_start(struct st_proxy *main_px, unsigned n);
/* Stops, joins and frees the workers (their open connections are reset); NULL is a no-op. */
void st_workers_free(struct st_workers *ws);

/* On a worker thread: passes a finished entry (ownership too) to the main thread. */
void st_workers_handoff(struct st_proxy *worker_px, struct st_entry *entry, bool outgoing);

/* Drain: the workers stop accepting; open connections go on. */
void st_workers_stop_accepting(struct st_workers *ws);
/* Connections open in the workers, as they last reported while draining. */
unsigned st_workers_open(const struct st_workers *ws);
/* Resets what the workers still relay, ends and joins their threads, and queues the
 * entries they handed over last (main thread). */
void st_workers_stop(struct st_workers *ws);

/* Adds the workers' capture budgets and parser limits to the main thread's figures. */
void st_workers_gauges(const struct st_workers *ws, struct st_metrics_gauges *g, struct st_parse_stats *sum);

#endif
