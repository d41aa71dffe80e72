/* dnsfwd.h - the UDP DNS listener: forward each query to the nameserver, return the
 * answer unchanged, record the pair.
 *
 * SO_ORIGINAL_DST does not exist for UDP, so queries go to the first nameserver of
 * resolv.conf (the one the REDIRECT rule matched). Each query gets its own connected
 * upstream socket (random source port, no ID rewriting), bounded by
 * SIDETAP_DNS_MAX_INFLIGHT and SIDETAP_DNS_TIMEOUT. The answer leaves from the listening
 * socket with the query's destination address as source (IP_PKTINFO), so conntrack
 * maps it back to the nameserver's address and the client accepts it. */
#ifndef SIDETAP_PROXY_DNSFWD_H
#define SIDETAP_PROXY_DNSFWD_H

#include <stddef.h>

#include "proxy.h"

/* Binds UDP dns_port on 0.0.0.0 and [::]. NULL after printing why. */
struct st_dnsfwd *st_dnsfwd_new(struct st_proxy *px);
/* Stops reading new queries; answers to queries in flight are still returned. */
void st_dnsfwd_stop(struct st_dnsfwd *d);
/* Ends every query in flight (recorded as timed out). */
void st_dnsfwd_abort_all(struct st_dnsfwd *d);
size_t st_dnsfwd_inflight(const struct st_dnsfwd *d);
void st_dnsfwd_free(struct st_dnsfwd *d);

#endif
