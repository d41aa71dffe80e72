/* sidetap-init configuration: flags override SIDETAP_* environment variables, which
 * override the defaults. Every value is validated here, so rules.c only formats and
 * nothing is applied when an input is wrong. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_id {
    OPT_INCLUDE_INBOUND = 1000,
    OPT_EXCLUDE_INBOUND,
    OPT_EXCLUDE_OUTBOUND,
    OPT_EXCLUDE_CIDRS,
    OPT_PROXY_UID,
    OPT_PROXY_GID,
    OPT_OUTBOUND_PORT,
    OPT_INBOUND_PORT,
    OPT_DNS_PORT,
    OPT_ADMIN_PORT,
    OPT_RESOLV_CONF,
    OPT_NO_DNS,
    OPT_IPV6,
    OPT_BACKEND,
    OPT_DRY_RUN,
    OPT_CLEAN,
    OPT_QUIET,
    OPT_HELP,
    OPT_VERSION,
    OPT_END
};

/* Options that take a value (or a boolean) and may also come from the environment. */
struct opt_source {
    enum opt_id id;
    const char *flag;
    const char *env;
};

static const struct opt_source sources[] = {
    {OPT_INCLUDE_INBOUND, "--include-inbound-ports", "SIDETAP_INCLUDE_INBOUND_PORTS"},
    {OPT_EXCLUDE_INBOUND, "--exclude-inbound-ports", "SIDETAP_EXCLUDE_INBOUND_PORTS"},
    {OPT_EXCLUDE_OUTBOUND, "--exclude-outbound-ports", "SIDETAP_EXCLUDE_OUTBOUND_PORTS"},
    {OPT_EXCLUDE_CIDRS, "--exclude-outbound-cidrs", "SIDETAP_EXCLUDE_OUTBOUND_CIDRS"},
    {OPT_PROXY_UID, "--proxy-uid", "SIDETAP_PROXY_UID"},
    {OPT_PROXY_GID, "--proxy-gid", "SIDETAP_PROXY_GID"},
    {OPT_OUTBOUND_PORT, "--outbound-port", "SIDETAP_OUTBOUND_PORT"},
    {OPT_INBOUND_PORT, "--inbound-port", "SIDETAP_INBOUND_PORT"},
    {OPT_DNS_PORT, "--dns-port", "SIDETAP_DNS_PORT"},
    {OPT_ADMIN_PORT, "--admin-port", "SIDETAP_ADMIN_PORT"},
    {OPT_RESOLV_CONF, "--resolv-conf", "SIDETAP_RESOLV_CONF"},
    {OPT_NO_DNS, "--no-dns", "SIDETAP_NO_DNS"},
    {OPT_IPV6, "--ipv6", "SIDETAP_IPV6"},
    {OPT_BACKEND, "--iptables-backend", "SIDETAP_IPTABLES_BACKEND"},
};
#define N_SOURCES (sizeof sources / sizeof sources[0])

static const struct option long_options[] = {
    {"include-inbound-ports", required_argument, NULL, OPT_INCLUDE_INBOUND},
    {"exclude-inbound-ports", required_argument, NULL, OPT_EXCLUDE_INBOUND},
    {"exclude-outbound-ports", required_argument, NULL, OPT_EXCLUDE_OUTBOUND},
    {"exclude-outbound-cidrs", required_argument, NULL, OPT_EXCLUDE_CIDRS},
    {"proxy-uid", required_argument, NULL, OPT_PROXY_UID},
    {"proxy-gid", required_argument, NULL, OPT_PROXY_GID},
    {"outbound-port", required_argument, NULL, OPT_OUTBOUND_PORT},
    {"inbound-port", required_argument, NULL, OPT_INBOUND_PORT},
    {"dns-port", required_argument, NULL, OPT_DNS_PORT},
    {"admin-port", required_argument, NULL, OPT_ADMIN_PORT},
    {"resolv-conf", required_argument, NULL, OPT_RESOLV_CONF},
    {"no-dns", no_argument, NULL, OPT_NO_DNS},
    {"ipv6", required_argument, NULL, OPT_IPV6},
    {"iptables-backend", required_argument, NULL, OPT_BACKEND},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"clean", no_argument, NULL, OPT_CLEAN},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static const char usage_text[] =
    "usage: sidetap-init [options]\n"
    "Writes the pod's nat rules that send its TCP traffic through sidetap-proxy,\n"
    "atomically with iptables-restore --noflush (and ip6tables-restore when the pod has IPv6).\n"
    "\n"
    "  --include-inbound-ports LIST  inbound ports to capture, '*' = all (default), '' = none\n"
    "  --exclude-inbound-ports LIST  inbound ports never captured (the admin port always is)\n"
    "  --exclude-outbound-ports LIST outbound TCP ports never captured\n"
    "  --exclude-outbound-cidrs LIST outbound destinations never captured (IPv4/IPv6 CIDRs)\n"
    "  --proxy-uid N, --proxy-gid N  the proxy's ids, exempt from capture (default 1717)\n"
    "  --outbound-port N             proxy outbound listener (default 16001)\n"
    "  --inbound-port N              proxy inbound listener (default 16006)\n"
    "  --dns-port N                  proxy DNS listener, UDP and TCP (default 16053)\n"
    "  --admin-port N                proxy admin port, never captured (default 16020)\n"
    "  --resolv-conf PATH            nameservers whose DNS is captured (default /etc/resolv.conf)\n"
    "  --no-dns                      do not capture DNS\n"
    "  --ipv6 auto|on|off            also write ip6tables rules (auto: pod has a global IPv6 "
    "address)\n"
    "  --iptables-backend auto|nft|legacy  (auto: legacy if legacy rules exist, else nft)\n"
    "  --dry-run                     print the restore input, apply nothing\n"
    "  --clean                       remove every rule and chain sidetap-init added\n"
    "  --quiet                       no summary line on success\n"
    "  --help, --version\n"
    "LIST is comma-separated. Each flag can also be given as an environment variable:\n"
    "--exclude-outbound-ports is SIDETAP_EXCLUDE_OUTBOUND_PORTS, --no-dns is SIDETAP_NO_DNS=true.\n"
    "Exit status: 0 done, 1 applying failed, 2 bad input (nothing was written).\n";

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    if (*s == '\0' || strlen(s) > 10)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int st_init_parse_port(const char *s, uint16_t *port, char *err, size_t errlen)
{
    uint32_t v;
    if (parse_u32(s, 65535, &v) < 0 || v == 0) {
        snprintf(err, errlen, "\"%s\" is not a port (1-65535)", s);
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

static int cmp_port(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

int st_init_parse_ports(const char *s, struct st_init_port_list *list, char *err, size_t errlen)
{
    char *copy = strdup(s), *save = NULL;
    int rc = -1;
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    list->n = 0;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        item = trim(item);
        if (*item == '\0')
            continue;
        uint16_t port;
        if (st_init_parse_port(item, &port, err, errlen) < 0)
            goto out;
        if (list->n == ST_INIT_MAX_PORTS) {
            snprintf(err, errlen, "more than %d ports", ST_INIT_MAX_PORTS);
            goto out;
        }
        list->ports[list->n++] = port;
    }
    qsort(list->ports, list->n, sizeof list->ports[0], cmp_port);
    size_t w = 0;
    for (size_t i = 0; i < list->n; i++)
        if (w == 0 || list->ports[w - 1] != list->ports[i])
            list->ports[w++] = list->ports[i];
    list->n = w;
    rc = 0;
out:
    free(copy);
    return rc;
}

int st_init_parse_net(const char *s, struct st_init_net *net, char *err, size_t errlen)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof addr) {
        snprintf(err, errlen, "\"%s\" is not an IP address or CIDR", s);
        return -1;
    }
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(net, 0, sizeof *net);
    if (inet_pton(AF_INET, addr, net->addr) == 1)
        net->family = 4;
    else if (inet_pton(AF_INET6, addr, net->addr) == 1)
        net->family = 6;
    else {
        snprintf(err, errlen, "\"%s\" is not an IP address or CIDR", s);
        return -1;
    }
    int maxp = net->family == 4 ? 32 : 128;
    net->prefix = maxp;
    if (slash) {
        uint32_t p;
        if (parse_u32(slash + 1, (uint32_t)maxp, &p) < 0) {
            snprintf(err, errlen, "\"%s\": prefix length must be 0-%d", s, maxp);
            return -1;
        }
        net->prefix = (int)p;
    }
    /* Clear host bits, as iptables would: 10.1.2.3/8 means 10.0.0.0/8. */
    int bytes = maxp / 8;
    for (int i = 0; i < bytes; i++) {
        int keep = net->prefix - i * 8;
        if (keep >= 8)
            continue;
        net->addr[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
    return 0;
}

const char *st_init_net_str(const struct st_init_net *net, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];
    inet_ntop(net->family == 4 ? AF_INET : AF_INET6, net->addr, a, sizeof a);
    snprintf(buf, len, "%s/%d", a, net->prefix);
    return buf;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    return -1;
}

static int parse_cidrs(const char *s, struct st_init_config *cfg, char *err, size_t errlen)
{
    char *copy = strdup(s), *save = NULL;
    int rc = -1;
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cfg->n_exclude_cidrs = 0;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        item = trim(item);
        if (*item == '\0')
            continue;
        if (cfg->n_exclude_cidrs == ST_INIT_MAX_CIDRS) {
            snprintf(err, errlen, "more than %d CIDRs", ST_INIT_MAX_CIDRS);
            goto out;
        }
        if (st_init_parse_net(item, &cfg->exclude_cidrs[cfg->n_exclude_cidrs], err, errlen) < 0)
            goto out;
        cfg->n_exclude_cidrs++;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

/* Applies one value; `name` is the flag or the environment variable it came from. */
static int apply_value(struct st_init_config *cfg, enum opt_id id, const char *name,
                       const char *raw)
{
    char err[256] = "";
    char *value = strdup(raw);
    int rc = -1;
    if (value == NULL) {
        fprintf(stderr, "sidetap-init: out of memory\n");
        return -1;
    }
    char *v = trim(value);
    uint32_t n;
    switch (id) {
    case OPT_INCLUDE_INBOUND:
        if (strcmp(v, "*") == 0) {
            cfg->inbound_all = true;
            cfg->include_inbound.n = 0;
        } else {
            cfg->inbound_all = false;
            if (strchr(v, '*')) {
                snprintf(err, sizeof err, "\"%s\": '*' must be the whole value", raw);
                goto out;
            }
            if (st_init_parse_ports(v, &cfg->include_inbound, err, sizeof err) < 0)
                goto out;
        }
        break;
    case OPT_EXCLUDE_INBOUND:
        if (st_init_parse_ports(v, &cfg->exclude_inbound, err, sizeof err) < 0)
            goto out;
        break;
    case OPT_EXCLUDE_OUTBOUND:
        if (st_init_parse_ports(v, &cfg->exclude_outbound, err, sizeof err) < 0)
            goto out;
        break;
    case OPT_EXCLUDE_CIDRS:
        if (parse_cidrs(v, cfg, err, sizeof err) < 0)
            goto out;
        break;
    case OPT_PROXY_UID:
    case OPT_PROXY_GID:
        if (parse_u32(v, 4294967294u, &n) < 0) {
            snprintf(err, sizeof err, "\"%s\" is not a numeric id (0-4294967294)", raw);
            goto out;
        }
        *(id == OPT_PROXY_UID ? &cfg->proxy_uid : &cfg->proxy_gid) = n;
        break;
    case OPT_OUTBOUND_PORT:
    case OPT_INBOUND_PORT:
    case OPT_DNS_PORT:
    case OPT_ADMIN_PORT: {
        uint16_t *dst = id == OPT_OUTBOUND_PORT  ? &cfg->outbound_port
                        : id == OPT_INBOUND_PORT ? &cfg->inbound_port
                        : id == OPT_DNS_PORT     ? &cfg->dns_port
                                                 : &cfg->admin_port;
        if (st_init_parse_port(v, dst, err, sizeof err) < 0)
            goto out;
        break;
    }
    case OPT_RESOLV_CONF:
        if (*v == '\0') {
            snprintf(err, sizeof err, "empty path");
            goto out;
        }
        cfg->resolv_conf = raw; /* argv or environ: outlives cfg */
        cfg->resolv_conf_explicit = true;
        break;
    case OPT_NO_DNS: {
        bool off;
        if (parse_bool(v, &off) < 0) {
            snprintf(err, sizeof err, "\"%s\" is not a boolean (true/false)", raw);
            goto out;
        }
        cfg->dns = !off;
        break;
    }
    case OPT_IPV6:
        if (strcmp(v, "auto") == 0)
            cfg->ipv6 = ST_INIT_IPV6_AUTO;
        else if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0)
            cfg->ipv6 = ST_INIT_IPV6_ON;
        else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0)
            cfg->ipv6 = ST_INIT_IPV6_OFF;
        else {
            snprintf(err, sizeof err, "\"%s\": expected auto, on or off", raw);
            goto out;
        }
        break;
    case OPT_BACKEND:
        if (strcmp(v, "auto") == 0)
            cfg->backend = ST_INIT_BACKEND_AUTO;
        else if (strcmp(v, "nft") == 0)
            cfg->backend = ST_INIT_BACKEND_NFT;
        else if (strcmp(v, "legacy") == 0)
            cfg->backend = ST_INIT_BACKEND_LEGACY;
        else {
            snprintf(err, sizeof err, "\"%s\": expected auto, nft or legacy", raw);
            goto out;
        }
        break;
    default:
        break;
    }
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "sidetap-init: %s: %s\n", name, err);
    free(value);
    return rc;
}

static void set_defaults(struct st_init_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->inbound_all = true;
    cfg->proxy_uid = 1717;
    cfg->proxy_gid = 1717;
    cfg->outbound_port = 16001;
    cfg->inbound_port = 16006;
    cfg->dns_port = 16053;
    cfg->admin_port = 16020;
    cfg->dns = true;
    cfg->resolv_conf = "/etc/resolv.conf";
    cfg->ipv6 = ST_INIT_IPV6_AUTO;
    cfg->backend = ST_INIT_BACKEND_AUTO;
}

static int check_distinct_ports(const struct st_init_config *cfg)
{
    const struct {
        const char *flag;
        uint16_t port;
    } p[] = {{"--outbound-port", cfg->outbound_port},
             {"--inbound-port", cfg->inbound_port},
             {"--dns-port", cfg->dns_port},
             {"--admin-port", cfg->admin_port}};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = i + 1; j < 4; j++)
            if (p[i].port == p[j].port) {
                fprintf(stderr, "sidetap-init: %s and %s are both %u; they must differ\n",
                        p[i].flag, p[j].flag, p[i].port);
                return -1;
            }
    return 0;
}

int st_init_config_parse(struct st_init_config *cfg, int argc, char **argv)
{
    const char *flag_value[N_SOURCES] = {0};
    bool flag_seen[N_SOURCES] = {0};
    set_defaults(cfg);

    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_DRY_RUN:
            cfg->dry_run = true;
            continue;
        case OPT_CLEAN:
            cfg->clean = true;
            continue;
        case OPT_QUIET:
            cfg->quiet = true;
            continue;
        case 'h':
        case OPT_HELP:
            fputs(usage_text, stdout);
            return 1;
        case OPT_VERSION:
            printf("sidetap-init %s\n", SIDETAP_VERSION);
            return 1;
        case ':':
            fprintf(stderr, "sidetap-init: %s needs a value\n", argv[optind - 1]);
            return -1;
        case '?':
            fprintf(stderr, "sidetap-init: unknown option %s (see --help)\n", argv[optind - 1]);
            return -1;
        default:
            break;
        }
        for (size_t i = 0; i < N_SOURCES; i++)
            if (sources[i].id == (enum opt_id)c) {
                flag_seen[i] = true;
                flag_value[i] = c == OPT_NO_DNS ? "true" : optarg;
            }
    }
    if (optind < argc) {
        fprintf(stderr, "sidetap-init: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return -1;
    }
    if (cfg->dry_run && cfg->clean) {
        fprintf(stderr, "sidetap-init: --dry-run and --clean cannot be combined\n");
        return -1;
    }
    for (size_t i = 0; i < N_SOURCES; i++) {
        const char *value = flag_seen[i] ? flag_value[i] : getenv(sources[i].env);
        if (value == NULL)
            continue;
        if (apply_value(cfg, sources[i].id, flag_seen[i] ? sources[i].flag : sources[i].env,
                        value) < 0)
            return -1;
    }
    if (check_distinct_ports(cfg) < 0)
        return -1;
    return 0;
}

int st_init_config_read_resolv(struct st_init_config *cfg)
{
    cfg->n_nameservers = 0;
    FILE *f = fopen(cfg->resolv_conf, "r");
    if (f == NULL) {
        if (cfg->resolv_conf_explicit) {
            fprintf(stderr, "sidetap-init: --resolv-conf: cannot read %s: %s\n", cfg->resolv_conf,
                    strerror(errno));
            return -1;
        }
        fprintf(stderr, "sidetap-init: warning: cannot read %s (%s); DNS is not captured\n",
                cfg->resolv_conf, strerror(errno));
        return 0;
    }
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *save = NULL;
        char *key = strtok_r(line, " \t\r\n", &save);
        if (key == NULL || strcmp(key, "nameserver") != 0)
            continue;
        char *addr = strtok_r(NULL, " \t\r\n", &save);
        char err[160];
        struct st_init_net ns;
        if (addr == NULL || strchr(addr, '/') || strchr(addr, '%') ||
            st_init_parse_net(addr, &ns, err, sizeof err) < 0) {
            fprintf(stderr, "sidetap-init: warning: %s:%d: skipping unusable nameserver \"%s\"\n",
                    cfg->resolv_conf, lineno, addr ? addr : "");
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < cfg->n_nameservers; i++)
            dup |= cfg->nameservers[i].family == ns.family &&
                   memcmp(cfg->nameservers[i].addr, ns.addr, 16) == 0;
        if (dup)
            continue;
        if (cfg->n_nameservers == ST_INIT_MAX_NAMESERVERS) {
            fprintf(stderr, "sidetap-init: warning: %s: more than %d nameservers, ignoring %s\n",
                    cfg->resolv_conf, ST_INIT_MAX_NAMESERVERS, addr);
            continue;
        }
        cfg->nameservers[cfg->n_nameservers++] = ns;
    }
    fclose(f);
    return 0;
}
