/* listener.h - the TCP listeners: outbound, inbound and DNS-over-TCP.
 *
 * Each listens on 0.0.0.0 and, where the kernel has IPv6, on [::] (IPV6_V6ONLY), so
 * REDIRECTed IPv4 and IPv6 connections both arrive. An accepted connection's original
 * destination comes from SO_ORIGINAL_DST; connections to the proxy itself are closed
 * and counted (loop guard); the rest go to st_relay_start(). */
#ifndef SIDETAP_PROXY_LISTENER_H
#define SIDETAP_PROXY_LISTENER_H

#include <stdbool.h>

#include "metrics.h"
#include "proxy.h"

struct st_listeners;

/* Binds every TCP listener. NULL after printing which port failed. */
struct st_listeners *st_listeners_new(struct st_proxy *px);
/* Stops accepting (drain); open connections are not touched. */
void st_listeners_close(struct st_listeners *ls);
void st_listeners_free(struct st_listeners *ls);

/* A bound, listening socket for `family` on `port` with `type` (SOCK_STREAM or
 * SOCK_DGRAM), non-blocking; -errno on failure (-EAFNOSUPPORT when the family is
 * missing). For AF_INET6 IPV6_V6ONLY is set. `addr` may be NULL (the wildcard). */
int st_listen_socket(int family, int type, const char *addr, uint16_t port);
/* The same, with SO_REUSEPORT when `shared` (one socket per event loop thread). */
int st_listen_socket_shared(int family, int type, const char *addr, uint16_t port, bool shared);

#endif
