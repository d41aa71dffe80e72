/* sidetap-init configuration: what to redirect, read from flags and SIDETAP_* environment
 * variables, validated before any rule is written. Every error names the flag (or the
 * environment variable) and the offending value. */
#ifndef SIDETAP_INIT_CONFIG_H
#define SIDETAP_INIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_INIT_MAX_PORTS 512
#define ST_INIT_MAX_CIDRS 128
#define ST_INIT_MAX_NAMESERVERS 8

enum st_init_ipv6 { ST_INIT_IPV6_AUTO, ST_INIT_IPV6_ON, ST_INIT_IPV6_OFF };
enum st_init_backend { ST_INIT_BACKEND_AUTO, ST_INIT_BACKEND_NFT, ST_INIT_BACKEND_LEGACY };

/* An address or a network; family is 4 or 6, addr holds 4 or 16 bytes in network order. */
struct st_init_net {
    int family;
    uint8_t addr[16];
    int prefix;
};

struct st_init_port_list {
    uint16_t ports[ST_INIT_MAX_PORTS]; /* sorted, unique */
    size_t n;
};

struct st_init_config {
    bool inbound_all; /* --include-inbound-ports '*' (the default) */
    struct st_init_port_list include_inbound; /* when !inbound_all; empty = no inbound capture */
    struct st_init_port_list exclude_inbound;
    struct st_init_port_list exclude_outbound;
    struct st_init_net exclude_cidrs[ST_INIT_MAX_CIDRS];
    size_t n_exclude_cidrs;
    uint32_t proxy_uid, proxy_gid;
    uint16_t outbound_port, inbound_port, dns_port, admin_port;
    bool dns; /* capture DNS to the resolv.conf nameservers */
    const char *resolv_conf;
    bool resolv_conf_explicit; /* given by flag/env: a missing file is an error */
    struct st_init_net nameservers[ST_INIT_MAX_NAMESERVERS]; /* prefix = full length */
    size_t n_nameservers;
    enum st_init_ipv6 ipv6;
    enum st_init_backend backend;
    bool dry_run, clean, quiet;
};

/* Fills cfg from argv and the environment. Returns 0, 1 when --help or --version was
 * printed (exit 0), or -1 after printing the error to stderr (exit 2). */
int st_init_config_parse(struct st_init_config *cfg, int argc, char **argv);

/* Reads the nameserver lines of cfg->resolv_conf into cfg->nameservers. Unusable lines
 * are skipped with a warning. Returns 0, or -1 (error printed) when an explicitly given
 * file cannot be read. */
int st_init_config_read_resolv(struct st_init_config *cfg);

/* Parsers exposed for the CLI and for tests. Each returns 0 or -1 with a message in err. */
int st_init_parse_port(const char *s, uint16_t *port, char *err, size_t errlen);
int st_init_parse_ports(const char *s, struct st_init_port_list *list, char *err, size_t errlen);
int st_init_parse_net(const char *s, struct st_init_net *net, char *err, size_t errlen);

/* Formats a network as "a.b.c.d/p" or "x::y/p" into buf (at least 64 bytes). */
const char *st_init_net_str(const struct st_init_net *net, char *buf, size_t len);

#endif
