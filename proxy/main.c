/* main.c - sidetap-proxy: read the configuration, wire the modules, run the loop.
 *
 * Stop sequence (SIGTERM/SIGINT): stop accepting and reading DNS queries, /readyz turns
 * 503, open connections get SIDETAP_DRAIN_SECONDS to finish (then they are reset), the
 * queued entries are shipped (bounded by SIDETAP_FLUSH_SECONDS), exit 0. A second
 * signal skips the waiting. With SIDETAP_THREADS > 1 the worker threads (workers.h)
 * drain alongside and are joined before the final flush. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "admin.h"
#include "config.h"
#include "dnsfwd.h"
#include "identity.h"
#include "listener.h"
#include "names.h"
#include "proxy.h"
#include "relay.h"
#include "ship.h"
#include "workers.h"

struct app {
    struct st_proxy px;
    struct st_proxy_config cfg;
    struct st_listeners *listeners;
    struct st_admin *admin;
    struct event *sig_term, *sig_int, *drain_tick, *drain_deadline;
    bool flushing;
};

static void on_flushed(void *arg)
{
    struct app *app = arg;
    event_base_loopbreak(app->px.base);
}

static void flush_and_exit(struct app *app)
{
    if (app->flushing) return;
    app->flushing = true;
    evtimer_del(app->drain_tick);
    evtimer_del(app->drain_deadline);
    st_relays_abort_all(app->px.relays);
    st_dnsfwd_abort_all(app->px.dnsfwd);
    st_workers_stop(app->px.workers); /* their last entries are queued now */
    st_ship_flush(app->px.ship, app->cfg.flush_ms, on_flushed, app);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct app *app = arg;
    if (st_relays_open(app->px.relays) == 0 && st_workers_open(app->px.workers) == 0 &&
        st_dnsfwd_inflight(app->px.dnsfwd) == 0)
        flush_and_exit(app);
    else {
        struct timeval tv = {0, 50 * 1000};
        evtimer_add(app->drain_tick, &tv);
    }
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct app *app = arg;
    unsigned left = st_relays_open(app->px.relays) + st_workers_open(app->px.workers);
    if (left) fprintf(stderr, "sidetap-proxy: drain period over, resetting %u connection(s)\n", left);
    flush_and_exit(app);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct app *app = arg;
    if (app->px.draining) {
        fprintf(stderr, "sidetap-proxy: second signal, stopping now\n");
        if (app->flushing) event_base_loopbreak(app->px.base);
        else flush_and_exit(app);
        return;
    }
    fprintf(stderr, "sidetap-proxy: %s: draining %u connection(s) for up to %u ms\n", strsignal((int)sig),
            st_relays_open(app->px.relays), app->cfg.drain_ms);
    app->px.draining = true;
    st_listeners_close(app->listeners);
    st_workers_stop_accepting(app->px.workers);
    st_dnsfwd_stop(app->px.dnsfwd);
    struct timeval tv = {app->cfg.drain_ms / 1000, (app->cfg.drain_ms % 1000) * 1000};
    evtimer_add(app->drain_deadline, &tv);
    on_drain_tick(-1, 0, app);
}

int main(int argc, char **argv)
{
    static struct app app; /* static: zeroed, and no large stack frame */
    int rc = st_proxy_config_load(&app.cfg, argc, argv);
    if (rc != 0) {
        st_proxy_config_free(&app.cfg);
        return rc == 1 ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Two descriptors per relayed connection: take every descriptor we are allowed. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    st_metrics_thread_register();
    json_object_seed(0);

    struct st_proxy *px = &app.px;
    px->cfg = &app.cfg;
    int exit_code = 1;
    if (st_pod_load(&px->pod) < 0) {
        st_proxy_config_free(&app.cfg);
        return 2;
    }
    if (st_proxy_set_dns_server(px, app.cfg.dns_upstream, app.cfg.resolv_conf) < 0) {
        exit_code = 2;
        goto out;
    }

    st_parse_config_init(&px->parse);
    px->parse.body_cap = app.cfg.body_cap;
    px->parse.capture_bodies = app.cfg.capture_bodies;
    px->parse.redact = (const char *const *)app.cfg.redact;
    /* Each event loop thread gets an equal share of the capture budget and of the parsed
     * connections, so no limit is shared (or locked) on the data path. */
    unsigned threads = app.cfg.threads > 1 ? (unsigned)app.cfg.threads : 1;
    px->budget.limit = app.cfg.capture_memory - app.cfg.capture_memory / threads * (threads - 1);
    px->max_parsed = app.cfg.max_connections / threads;
    if (px->max_parsed == 0 && app.cfg.max_connections > 0) px->max_parsed = 1;
    px->parse.budget = &px->budget;
    px->parse.stats = &px->parse_stats;
    px->own_ports[0] = app.cfg.outbound_port;
    px->own_ports[1] = app.cfg.inbound_port;
    px->own_ports[2] = app.cfg.dns_port;

    struct event_config *ec = event_config_new();
    if (ec != NULL) event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    px->base = ec ? event_base_new_with_config(ec) : NULL;
    event_config_free(ec);
    if (px->base == NULL) {
        fprintf(stderr, "sidetap-proxy: cannot create the event loop\n");
        goto out;
    }
    px->names = st_names_new(app.cfg.names_max);
    px->relays = st_relays_new(px);
    if (px->names == NULL || px->relays == NULL) {
        fprintf(stderr, "sidetap-proxy: out of memory\n");
        goto out;
    }
    if ((px->ship = st_ship_new(px->base, &app.cfg, &px->pod)) == NULL) {
        exit_code = 2;
        goto out;
    }
    if ((app.admin = st_admin_new(px)) == NULL || (app.listeners = st_listeners_new(px)) == NULL ||
        (px->dnsfwd = st_dnsfwd_new(px)) == NULL)
        goto out;
    if (threads > 1 && (px->workers = st_workers_start(px, threads - 1)) == NULL) goto out;
    px->listening = true;

    app.sig_term = evsignal_new(px->base, SIGTERM, on_signal, &app);
    app.sig_int = evsignal_new(px->base, SIGINT, on_signal, &app);
    app.drain_tick = evtimer_new(px->base, on_drain_tick, &app);
    app.drain_deadline = evtimer_new(px->base, on_drain_deadline, &app);
    if (!app.sig_term || !app.sig_int || !app.drain_tick || !app.drain_deadline) goto out;
    evsignal_add(app.sig_term, NULL);
    evsignal_add(app.sig_int, NULL);

    fprintf(stderr,
            "sidetap-proxy %s: outbound :%u, inbound :%u, dns :%u, admin %s:%u, %u thread%s, collector %s\n",
            SIDETAP_VERSION, app.cfg.outbound_port, app.cfg.inbound_port, app.cfg.dns_port,
            app.cfg.admin_address, app.cfg.admin_port, threads, threads == 1 ? "" : "s",
            app.cfg.collector_url ? app.cfg.collector_url
                                  : app.cfg.entries_file ? app.cfg.entries_file : "none (entries dropped)");
    event_base_dispatch(px->base);
    exit_code = 0;

out:
    if (app.sig_term) event_free(app.sig_term);
    if (app.sig_int) event_free(app.sig_int);
    if (app.drain_tick) event_free(app.drain_tick);
    if (app.drain_deadline) event_free(app.drain_deadline);
    st_listeners_free(app.listeners);
    st_workers_free(px->workers); /* joined; entries of connections they reset are queued */
    px->workers = NULL;
    st_relays_free(px->relays);
    st_dnsfwd_free(px->dnsfwd);
    px->relays = NULL;
    px->dnsfwd = NULL;
    st_admin_free(app.admin);
    st_ship_free(px->ship);
    st_names_free(px->names);
    if (px->base) event_base_free(px->base);
    st_pod_free(&px->pod);
    st_proxy_config_free(&app.cfg);
    if (exit_code == 0) fprintf(stderr, "sidetap-proxy: stopped\n");
    return exit_code;
}
