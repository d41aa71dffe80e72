/* origdst.h - where a redirected connection was going before iptables REDIRECT.
 *
 * The kernel's conntrack keeps the original destination; SO_ORIGINAL_DST (IPv4, also
 * for v4-mapped peers on a dual-stack socket) and IP6T_SO_ORIGINAL_DST (IPv6) read it.
 * A connection made straight to the listener also has a conntrack entry, whose original
 * destination is the listener itself: st_origdst_is_self() spots that loop. */
#ifndef SIDETAP_PROXY_ORIGDST_H
#define SIDETAP_PROXY_ORIGDST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Fills `dst` for the accepted socket `fd` whose local address is `local`. Returns 0 or
 * -errno (ENOENT: no conntrack entry, i.e. not redirected). v4-mapped results are
 * returned as plain AF_INET. */
int st_origdst_get(int fd, const struct sockaddr_storage *local, struct sockaddr_storage *dst);

/* True when `dst` is the proxy itself: equal to the socket's local address, or one of
 * the proxy's `ports` on a loopback address or on `pod_ip` (may be NULL). */
bool st_origdst_is_self(const struct sockaddr_storage *dst, const struct sockaddr_storage *local,
                        const uint16_t *ports, int nports, const char *pod_ip);

/* Textual address and port of a sockaddr ("" and 0 for unknown families); v4-mapped
 * IPv6 addresses are printed as IPv4. `ip` holds at least 46 bytes. */
uint16_t st_sockaddr_text(const struct sockaddr_storage *sa, char *ip, size_t iplen);

/* Rewrites a v4-mapped AF_INET6 address as AF_INET in place. */
void st_sockaddr_unmap(struct sockaddr_storage *sa);

#endif
