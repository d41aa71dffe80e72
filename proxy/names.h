/* names.h - IP address -> host name, learned from the DNS answers this proxy relays.
 *
 * When the app resolves "api.example.com" and then connects to one of its addresses,
 * the outbound entry names the peer `dst.name = "api.example.com"`. The cache is bounded
 * (oldest learned pairs go first) and pairs expire with the answer's TTL. */
#ifndef SIDETAP_PROXY_NAMES_H
#define SIDETAP_PROXY_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "entry.h"

struct st_names;

/* NULL on OOM. `max` bounds the pairs kept. */
struct st_names *st_names_new(size_t max);
void st_names_free(struct st_names *names);

/* Remembers `ip` (textual) -> `name` for `ttl_s` seconds from `now_s`. */
void st_names_put(struct st_names *names, const char *ip, const char *name, uint32_t ttl_s,
                  uint64_t now_s);
/* The name for `ip`, or NULL. Valid until the next put. */
const char *st_names_get(struct st_names *names, const char *ip, uint64_t now_s);
size_t st_names_count(const struct st_names *names);

/* Learns from a DNS entry's "dns" section: every A/AAAA answer maps to the first
 * question's name (so CNAME chains name the address after what the app asked for).
 * Returns the pairs learned. */
size_t st_names_learn(struct st_names *names, const struct st_entry *entry, uint64_t now_s);

#endif
