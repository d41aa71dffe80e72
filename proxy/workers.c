/* workers.c - extra event loop threads (see workers.h). */
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "listener.h"
#include "relay.h"

/* Entries waiting for the main thread; beyond this a worker drops them (queue_full).
 * The main thread takes the whole list at every wake-up, so it only fills when the main
 * thread is starved for a long time. */
#define HANDOFF_MAX 4096
#define NOT_REPORTED UINT_MAX

enum { CMD_STOP_ACCEPTING = 'S', CMD_EXIT = 'X' };

struct handoff {
    struct st_entry *entry;
    bool outgoing;
};

struct worker {
    struct st_workers *ws;
    pthread_t thread;
    bool running;
    struct st_proxy px; /* this thread's: own base, relays, budget, parser stats */
    struct st_listeners *listeners;
    int cmd[2]; /* pipe: main thread -> worker */
    struct event *cmd_ev, *report_timer;
    _Atomic unsigned open; /* connections open, reported while draining */
};

struct st_workers {
    struct st_proxy *main;
    struct worker *w;
    unsigned n;

    pthread_mutex_t mu;
    struct handoff *list, *spare; /* HANDOFF_MAX each; spare is the main thread's */
    size_t len;
    int wake_fd; /* eventfd: the list went from empty to not empty */
    struct event *wake_ev;
};

/* ---- worker thread ---- */

static void report_open(struct worker *w)
{
    atomic_store(&w->open, st_relays_open(w->px.relays));
}

static void on_report(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct worker *w = arg;
    report_open(w);
    struct timeval tv = {0, 20 * 1000};
    evtimer_add(w->report_timer, &tv);
}

static void on_command(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    char cmd;
    while (read(fd, &cmd, 1) == 1) {
        if (cmd == CMD_STOP_ACCEPTING) {
            w->px.draining = true;
            st_listeners_close(w->listeners);
            on_report(-1, 0, w);
        } else if (cmd == CMD_EXIT) {
            w->px.draining = true;
            st_listeners_close(w->listeners);
            st_relays_abort_all(w->px.relays);
            event_base_loopbreak(w->px.base);
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    st_metrics_thread_register();
    event_base_dispatch(w->px.base);
    /* The relays left are reset by worker_free() on the main thread, which counts them. */
    st_metrics_thread_unregister();
    return NULL;
}

void st_workers_handoff(struct st_proxy *px, struct st_entry *e, bool outgoing)
{
    struct st_workers *ws = px->workers;
    pthread_mutex_lock(&ws->mu);
    if (ws->len == HANDOFF_MAX) {
        pthread_mutex_unlock(&ws->mu);
        st_metrics.dropped[ST_DROP_QUEUE_FULL]++;
        st_entry_free(e);
        return;
    }
    ws->list[ws->len++] = (struct handoff){e, outgoing};
    bool first = ws->len == 1;
    pthread_mutex_unlock(&ws->mu);
    if (first) { /* an eventfd write only fails on overflow; the next entry wakes it anyway */
        uint64_t one = 1;
        ssize_t w = write(ws->wake_fd, &one, sizeof(one));
        (void)w;
    }
}

/* ---- main thread ---- */

/* Takes what the workers handed over and treats it as the main thread's own entries. */
static void take_handoffs(struct st_workers *ws)
{
    pthread_mutex_lock(&ws->mu);
    struct handoff *got = ws->list;
    size_t n = ws->len;
    ws->list = ws->spare;
    ws->len = 0;
    pthread_mutex_unlock(&ws->mu);
    for (size_t i = 0; i < n; i++) st_proxy_entry(ws->main, got[i].entry, got[i].outgoing);
    ws->spare = got;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN) return;
    take_handoffs(arg);
}

static void send_command(struct worker *w, char cmd)
{
    if (w->cmd[1] >= 0 && write(w->cmd[1], &cmd, 1) != 1)
        fprintf(stderr, "sidetap-proxy: cannot signal a worker thread: %s\n", strerror(errno));
}

static int worker_init(struct st_workers *ws, struct worker *w, unsigned share_of)
{
    struct st_proxy *m = ws->main;
    w->ws = ws;
    w->cmd[0] = w->cmd[1] = -1;
    atomic_init(&w->open, 0);
    struct st_proxy *px = &w->px;
    px->cfg = m->cfg;
    px->pod = m->pod; /* borrowed: the main thread owns and frees it */
    px->dns_server = m->dns_server;
    px->dns_server_len = m->dns_server_len;
    memcpy(px->own_ports, m->own_ports, sizeof(px->own_ports));
    px->budget.limit = m->cfg->capture_memory / share_of;
    px->max_parsed = m->max_parsed;
    px->parse = m->parse;
    px->parse.budget = &px->budget;
    px->parse.stats = &px->parse_stats;
    px->is_worker = true;
    px->workers = ws;

    struct event_config *ec = event_config_new();
    if (ec != NULL) event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    px->base = ec ? event_base_new_with_config(ec) : NULL;
    event_config_free(ec);
    if (px->base == NULL || pipe2(w->cmd, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
    w->cmd_ev = event_new(px->base, w->cmd[0], EV_READ | EV_PERSIST, on_command, w);
    w->report_timer = evtimer_new(px->base, on_report, w);
    if (w->cmd_ev == NULL || w->report_timer == NULL || event_add(w->cmd_ev, NULL) < 0) return -1;
    if ((px->relays = st_relays_new(px)) == NULL) return -1;
    if ((w->listeners = st_listeners_new(px)) == NULL) return -2; /* said why */
    px->listening = true;
    return 0;
}

static void worker_free(struct worker *w)
{
    st_listeners_free(w->listeners);
    st_relays_free(w->px.relays); /* resets what is still open; its entries are handed over */
    if (w->cmd_ev) event_free(w->cmd_ev);
    if (w->report_timer) event_free(w->report_timer);
    if (w->px.base) event_base_free(w->px.base);
    if (w->cmd[0] >= 0) close(w->cmd[0]);
    if (w->cmd[1] >= 0) close(w->cmd[1]);
}

struct st_workers *st_workers_start(struct st_proxy *main_px, unsigned n)
{
    struct st_workers *ws = calloc(1, sizeof(*ws));
    if (ws == NULL) goto oom;
    ws->main = main_px;
    ws->wake_fd = -1;
    pthread_mutex_init(&ws->mu, NULL);
    ws->w = calloc(n, sizeof(*ws->w));
    ws->list = malloc(HANDOFF_MAX * sizeof(*ws->list));
    ws->spare = malloc(HANDOFF_MAX * sizeof(*ws->spare));
    if (ws->w == NULL || ws->list == NULL || ws->spare == NULL) goto oom;
    ws->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ws->wake_fd < 0) goto oom;
    ws->wake_ev = event_new(main_px->base, ws->wake_fd, EV_READ | EV_PERSIST, on_wake, ws);
    if (ws->wake_ev == NULL || event_add(ws->wake_ev, NULL) < 0) goto oom;
    for (unsigned i = 0; i < n; i++) {
        ws->n++;
        int rc = worker_init(ws, &ws->w[i], n + 1);
        if (rc == -1) goto oom;
        if (rc < 0) goto fail;
    }
    /* Every listener is bound before any loop runs, so readiness means all of them. */
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&ws->w[i].thread, NULL, worker_main, &ws->w[i]) != 0) {
            fprintf(stderr, "sidetap-proxy: cannot start event loop thread %u: %s\n", i + 1, strerror(errno));
            goto fail;
        }
        ws->w[i].running = true;
    }
    return ws;
oom:
    fprintf(stderr, "sidetap-proxy: cannot set up the worker threads: out of memory or descriptors\n");
fail:
    st_workers_free(ws);
    return NULL;
}

void st_workers_stop_accepting(struct st_workers *ws)
{
    if (ws == NULL) return;
    for (unsigned i = 0; i < ws->n; i++) {
        atomic_store(&ws->w[i].open, NOT_REPORTED);
        send_command(&ws->w[i], CMD_STOP_ACCEPTING);
    }
}

unsigned st_workers_open(const struct st_workers *ws)
{
    unsigned open = 0;
    for (unsigned i = 0; ws != NULL && i < ws->n; i++) {
        unsigned o = atomic_load(&((struct st_workers *)ws)->w[i].open);
        open += o == NOT_REPORTED ? 1 : o;
    }
    return open;
}

void st_workers_stop(struct st_workers *ws)
{
    if (ws == NULL) return;
    for (unsigned i = 0; i < ws->n; i++) {
        if (!ws->w[i].running) continue;
        send_command(&ws->w[i], CMD_EXIT);
        pthread_join(ws->w[i].thread, NULL);
        ws->w[i].running = false;
    }
    take_handoffs(ws);
}

void st_workers_free(struct st_workers *ws)
{
    if (ws == NULL) return;
    st_workers_stop(ws);
    for (unsigned i = 0; i < ws->n; i++) worker_free(&ws->w[i]);
    if (ws->list != NULL && ws->spare != NULL) take_handoffs(ws); /* from worker_free's resets */
    if (ws->wake_ev) event_free(ws->wake_ev);
    if (ws->wake_fd >= 0) close(ws->wake_fd);
    pthread_mutex_destroy(&ws->mu);
    free(ws->list);
    free(ws->spare);
    free(ws->w);
    free(ws);
}

void st_workers_gauges(const struct st_workers *ws, struct st_metrics_gauges *g, struct st_parse_stats *sum)
{
    /* Read while the workers run: word-sized loads of counters that only grow (or, for
     * `used`, move); a figure may be a few operations old, never torn on x86-64/arm64. */
    for (unsigned i = 0; ws != NULL && i < ws->n; i++) {
        const struct st_proxy *px = &ws->w[i].px;
        g->capture_used += px->budget.used;
        g->capture_limit += px->budget.limit;
        g->budget_entries_skipped += px->budget.entries_skipped;
        g->budget_bodies_truncated += px->budget.bodies_truncated;
        for (int k = 0; k < ST_LIMIT_COUNT; k++) {
            sum->dropped[k] += px->parse_stats.dropped[k];
            sum->unanswered[k] += px->parse_stats.unanswered[k];
        }
    }
}
