/* proxy.h - the state one sidetap-proxy process shares between its modules, and the
 * entry sink every parsed connection reports to.
 *
 * main.c fills a struct st_proxy; listener.c, relay.c and dnsfwd.c make connections and
 * parsers from it; entries go through st_proxy_entry() to the ship queue. One event loop
 * thread owns all of it; with SIDETAP_THREADS > 1 each worker thread has a struct of its
 * own (workers.h) without names, ship or DNS, and hands its entries to the main one. */
#ifndef SIDETAP_PROXY_PROXY_H
#define SIDETAP_PROXY_PROXY_H

#include <stdbool.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "config.h"
#include "identity.h"
#include "metrics.h"
#include "parser.h"

struct st_names;
struct st_ship;
struct st_relays;
struct st_dnsfwd;
struct st_workers;

struct st_proxy {
    struct event_base *base;
    const struct st_proxy_config *cfg;
    struct st_parse_config parse;  /* shared by every parsed connection */
    struct st_mem_budget budget;   /* capture memory (SIDETAP_CAPTURE_MEMORY) */
    struct st_parse_stats parse_stats; /* entries the parsers lost or cut short, by reason */
    struct st_pod pod;
    struct st_names *names;
    struct st_ship *ship;
    struct st_relays *relays;
    struct st_dnsfwd *dnsfwd;
    struct st_workers *workers; /* the worker threads; on a worker: the set it belongs to */
    bool is_worker;
    unsigned max_parsed;        /* parsed connections at once: this thread's share */

    /* The nameserver DNS is forwarded to (resolv.conf or --dns-upstream); ss_family 0
     * when none is known. */
    struct sockaddr_storage dns_server;
    socklen_t dns_server_len;

    uint16_t own_ports[3]; /* listener ports, for the self-connect check */
    bool listening;        /* all listeners are up (readyz) */
    bool draining;         /* SIGTERM received */
};

/* Takes ownership of a finished entry: counts it, learns names from DNS answers and
 * queues it for shipping. `outgoing`: the entry is from the outbound or DNS side. */
void st_proxy_entry(struct st_proxy *px, struct st_entry *entry, bool outgoing);

/* Wall clock in µs and coarse ms from the loop's cached time (no syscall). */
uint64_t st_proxy_now_us(const struct st_proxy *px);

/* Reads the first `nameserver` of a resolv.conf into px->dns_server, or parses
 * `ip[:port]` / `[ipv6]:port` when `spec` is given. Returns 0 or -1 with a message. */
int st_proxy_set_dns_server(struct st_proxy *px, const char *spec, const char *resolv_conf);
/* The first usable `nameserver` of a resolv.conf. Returns 0, -1 when the file cannot be
 * read (errno says why) or -2 when it names no usable nameserver; `ss` is left alone then. */
int st_proxy_read_resolv_conf(const char *path, struct sockaddr_storage *ss, socklen_t *len);

#endif
