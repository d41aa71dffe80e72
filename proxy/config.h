/* config.h - sidetap-proxy's settings: defaults, then environment, then flags.
 *
 * Every value a user can set has a flag and a SIDETAP_* variable (docs/proxy.md). A bad
 * value is reported with the name of the variable or flag that carried it. */
#ifndef SIDETAP_PROXY_CONFIG_H
#define SIDETAP_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct st_proxy_config {
    uint16_t outbound_port, inbound_port, dns_port, admin_port;
    const char *admin_address; /* "0.0.0.0" */

    /* relay */
    unsigned connect_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned detect_ms;        /* client silence after which a connection is server-first */
    size_t buffer_high;        /* bytes per read = most held per direction (backpressure) */
    unsigned max_connections;  /* parsed connections; more are relayed unparsed */
    unsigned drain_ms;         /* grace period on SIGTERM */

    /* capture */
    size_t body_cap;
    size_t capture_memory;
    bool capture_bodies;
    char **redact; /* NULL-terminated, lower case; NULL = parser defaults */

    /* DNS */
    const char *resolv_conf;
    const char *dns_upstream; /* "ip" or "ip:port"; overrides resolv.conf */
    unsigned dns_timeout_ms;
    unsigned dns_max_inflight;
    unsigned names_max;

    /* shipping */
    const char *collector_url; /* NULL: no collector */
    const char *token;
    const char *entries_file;  /* JSON lines, when no collector */
    unsigned batch_entries;
    size_t batch_bytes;
    unsigned batch_ms;
    unsigned queue_entries;
    size_t queue_bytes;
    unsigned register_interval_ms;
    unsigned flush_ms;         /* bounded wait for the final POST on stop */

    int threads;
    bool verbose;
};

/* Fills `cfg` from defaults, the environment and argv. Returns 0, 1 when --help or
 * --version was printed (exit 0), or 2 after printing an error naming the setting. */
int st_proxy_config_load(struct st_proxy_config *cfg, int argc, char **argv);
void st_proxy_config_free(struct st_proxy_config *cfg);

#endif
