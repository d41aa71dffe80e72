/* sidetap-init backend: finds the iptables-save/-restore programs (nft or legacy, chosen
 * as Istio does) and runs them. */
#ifndef SIDETAP_INIT_BACKEND_H
#define SIDETAP_INIT_BACKEND_H

#include "config.h"

struct st_backend {
    const char *name; /* "nft", "legacy" or "default" (plain iptables-restore) */
    char save4[256], restore4[256];
    char save6[256], restore6[256]; /* empty when not installed */
};

/* Picks the programs. auto: legacy when iptables-legacy-save shows rules already (the
 * node or an earlier init used legacy), else nft when iptables-nft-save works, else
 * legacy, else plain iptables-restore. Returns 0 or -1 (error printed). */
int st_backend_pick(enum st_init_backend want, struct st_backend *b);

/* Runs `save -t nat` and returns its output (caller frees), NULL on failure (printed). */
char *st_backend_save(const char *save_prog);

/* Runs `restore --noflush --wait 10` with input on stdin. Returns 0, or -1 after
 * printing the program's error output. */
int st_backend_restore(const char *restore_prog, const char *input);

/* True when the current network namespace has an IPv6 address that is neither loopback
 * nor link-local. */
int st_backend_has_ipv6(void);

#endif
