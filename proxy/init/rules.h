/* sidetap-init rule text: the iptables-restore input that installs (or removes) the
 * redirection chains in the nat table. Pure functions of the configuration and of the
 * current `iptables-save -t nat` text, so they are tested by exact comparison. */
#ifndef SIDETAP_INIT_RULES_H
#define SIDETAP_INIT_RULES_H

#include "config.h"

#define ST_CHAIN_INBOUND "SIDETAP_INBOUND"
#define ST_CHAIN_IN_REDIRECT "SIDETAP_IN_REDIRECT"
#define ST_CHAIN_OUTPUT "SIDETAP_OUTPUT"
#define ST_CHAIN_REDIRECT "SIDETAP_REDIRECT"
#define ST_CHAIN_DNS "SIDETAP_DNS"

/* Returns the restore input (caller frees) that makes the nat table of `family` (4 or 6)
 * hold exactly sidetap's rules: the five chains are declared (which flushes them under
 * --noflush) and refilled, and the two jumps from PREROUTING and OUTPUT are added unless
 * `existing` (the current save text, NULL for a fresh table) already has them; any other
 * jump from a built-in chain to a SIDETAP_ chain is deleted. One COMMIT: all or nothing.
 * *n_rules receives the number of rules the table will hold in sidetap's chains and jumps.
 * Returns NULL when out of memory. */
char *st_rules_apply_text(const struct st_init_config *cfg, int family, const char *existing,
                          int *n_rules);

/* Returns the restore input (caller frees) that deletes the jumps to SIDETAP_ chains from
 * the built-in chains and then flushes and deletes every SIDETAP_ chain found in
 * `existing`; *n_changes is 0 (and the text has no commands) when there is nothing to do.
 * Returns NULL when out of memory. */
char *st_rules_clean_text(const char *existing, int *n_changes);

#endif
