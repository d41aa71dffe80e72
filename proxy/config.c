/* config.c - settings from defaults, SIDETAP_* variables and flags (flags win).
 *
 * One table lists every setting once: its flag, its variable, its kind and its default, so
 * --help, the environment and the flags can never disagree. Values are checked here and a
 * bad one ends the process with exit code 2 and a message naming where it came from. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum kind { K_PORT, K_SECONDS, K_MS, K_SIZE, K_BOOL, K_STR, K_COUNT, K_LIST };

struct setting {
    const char *flag; /* without the dashes */
    const char *env;
    enum kind kind;
    size_t offset;
    const char *def; /* default, as text; NULL = unset */
    const char *help;
};

#define OFF(f) offsetof(struct st_proxy_config, f)

static const struct setting settings[] = {
    {"outbound-port", "SIDETAP_OUTBOUND_PORT", K_PORT, OFF(outbound_port), "16001",
     "outbound (redirected app connections) listener port"},
    {"inbound-port", "SIDETAP_INBOUND_PORT", K_PORT, OFF(inbound_port), "16006",
     "inbound (redirected incoming connections) listener port"},
    {"dns-port", "SIDETAP_DNS_PORT", K_PORT, OFF(dns_port), "16053", "DNS listener port (UDP and TCP)"},
    {"admin-port", "SIDETAP_ADMIN_PORT", K_PORT, OFF(admin_port), "16020",
     "admin HTTP port: /healthz /readyz /metrics"},
    {"admin-address", "SIDETAP_ADMIN_ADDRESS", K_STR, OFF(admin_address), "0.0.0.0",
     "address the admin port binds to"},
    {"connect-timeout", "SIDETAP_CONNECT_TIMEOUT", K_SECONDS, OFF(connect_timeout_ms), "10",
     "seconds to connect upstream"},
    {"idle-timeout", "SIDETAP_IDLE_TIMEOUT", K_SECONDS, OFF(idle_timeout_ms), "3600",
     "seconds without a byte in either direction before a connection is closed"},
    {"detect-ms", "SIDETAP_DETECT_MS", K_MS, OFF(detect_ms), "300",
     "client silence (ms) after which a connection is treated as server-first (opaque TCP)"},
    {"buffer-size", "SIDETAP_BUFFER_SIZE", K_SIZE, OFF(buffer_high), "256KiB",
     "bytes per read; at most this is held per direction for a peer that does not read (backpressure)"},
    {"max-connections", "SIDETAP_MAX_CONNECTIONS", K_COUNT, OFF(max_connections), "4096",
     "parsed connections at once; more are relayed without parsing, never refused"},
    {"drain-seconds", "SIDETAP_DRAIN_SECONDS", K_SECONDS, OFF(drain_ms), "5",
     "grace period for open connections on SIGTERM"},
    {"body-cap", "SIDETAP_BODY_CAP", K_SIZE, OFF(body_cap), "64KiB", "captured bytes per body"},
    {"capture-memory", "SIDETAP_CAPTURE_MEMORY", K_SIZE, OFF(capture_memory), "16MiB",
     "memory for what the parsers capture (bodies, headers) until an entry is made"},
    {"capture-bodies", "SIDETAP_CAPTURE_BODIES", K_BOOL, OFF(capture_bodies), "true",
     "capture bodies (false: metadata only)"},
    {"redact-headers", "SIDETAP_REDACT_HEADERS", K_LIST, OFF(redact), NULL,
     "comma list of header names whose values are redacted (replaces the default list)"},
    {"resolv-conf", "SIDETAP_RESOLV_CONF", K_STR, OFF(resolv_conf), "/etc/resolv.conf",
     "file naming the nameserver DNS queries are forwarded to"},
    {"dns-upstream", "SIDETAP_DNS_UPSTREAM", K_STR, OFF(dns_upstream), NULL,
     "nameserver as IP or IP:PORT (overrides --resolv-conf)"},
    {"dns-timeout", "SIDETAP_DNS_TIMEOUT", K_SECONDS, OFF(dns_timeout_ms), "5",
     "seconds to wait for a forwarded DNS answer"},
    {"dns-max-inflight", "SIDETAP_DNS_MAX_INFLIGHT", K_COUNT, OFF(dns_max_inflight), "1024",
     "DNS queries forwarded at once; more are dropped (the client retries)"},
    {"names-max", "SIDETAP_NAMES_MAX", K_COUNT, OFF(names_max), "4096",
     "IP -> host name cache entries learned from DNS answers"},
    {"collector-url", "SIDETAP_COLLECTOR_URL", K_STR, OFF(collector_url), NULL,
     "collector base URL, e.g. http://sidetap-collector.sidetap"},
    {"token", "SIDETAP_TOKEN", K_STR, OFF(token), NULL, "bearer token for the collector"},
    {"entries-file", "SIDETAP_ENTRIES_FILE", K_STR, OFF(entries_file), NULL,
     "without a collector: append entries as JSON lines to this file"},
    {"batch-entries", "SIDETAP_BATCH_ENTRIES", K_COUNT, OFF(batch_entries), "200",
     "entries per POST"},
    {"batch-bytes", "SIDETAP_BATCH_BYTES", K_SIZE, OFF(batch_bytes), "1MiB", "bytes per POST"},
    {"batch-ms", "SIDETAP_BATCH_MS", K_MS, OFF(batch_ms), "100", "longest wait before a POST (ms)"},
    {"queue-entries", "SIDETAP_QUEUE_ENTRIES", K_COUNT, OFF(queue_entries), "10000",
     "entries waiting to be shipped; the oldest are dropped beyond it"},
    {"queue-bytes", "SIDETAP_QUEUE_BYTES", K_SIZE, OFF(queue_bytes), "8MiB",
     "bytes of entries waiting to be shipped; the oldest are dropped beyond it"},
    {"register-interval", "SIDETAP_REGISTER_INTERVAL", K_SECONDS, OFF(register_interval_ms), "60",
     "seconds between re-registrations with the collector"},
    {"flush-seconds", "SIDETAP_FLUSH_SECONDS", K_SECONDS, OFF(flush_ms), "2",
     "longest wait for the final POST on stop"},
    {"threads", "SIDETAP_THREADS", K_COUNT, OFF(threads), "1",
     "event loop threads (1-64): connections are spread over them; DNS, admin and shipping stay on the first"},
    {"verbose", "SIDETAP_VERBOSE", K_BOOL, OFF(verbose), "false", "log every connection"},
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: sidetap-proxy [options]\n\n"
                 "Transparent proxy that relays redirected connections untouched, parses what\n"
                 "passes and ships entries to sidetap-collector. Every option can also be set\n"
                 "by the environment variable shown; flags win.\n\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s", s->flag, s->kind == K_BOOL ? "[=BOOL]" : " V");
        fprintf(out, "  %-26s %s\n  %-26s  env %s%s%s%s\n", left, s->help, "", s->env,
                s->def ? " (default " : "", s->def ? s->def : "", s->def ? ")" : "");
    }
    fprintf(out, "  %-26s %s\n  %-26s %s\n", "--help", "this text", "--version", "print the version");
    fprintf(out, "\nPod identity comes from POD_NAME, POD_NAMESPACE, POD_IP, NODE_NAME,\n"
                 "SERVICE_ACCOUNT, SIDETAP_WORKLOAD, SIDETAP_LABELS (k=v,k2=v2) or\n"
                 "SIDETAP_LABELS_FILE (downward API format). See docs/proxy.md.\n");
}

/* Parses "123", "64KiB", "16MiB", "1GiB", "64k", "16Mi" (binary multiples). */
static int parse_size(const char *v, size_t *out)
{
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || errno != 0 || *v == '-') return -1;
    unsigned long long mult = 1;
    if (*end) {
        char unit = (char)tolower((unsigned char)*end);
        if (unit == 'k') mult = 1ull << 10;
        else if (unit == 'm') mult = 1ull << 20;
        else if (unit == 'g') mult = 1ull << 30;
        else if (unit == 'b' && end[1] == 0) mult = 1;
        else return -1;
        end++;
        /* 64KiB, 64KB, 64K and the Kubernetes spelling 64Ki all mean 65536 */
        if (unit != 'b' && (strcasecmp(end, "ib") == 0 || strcasecmp(end, "b") == 0 || strcasecmp(end, "i") == 0))
            end += strlen(end);
        if (*end) return -1;
    }
    if (n > (unsigned long long)SIZE_MAX / mult) return -1;
    *out = (size_t)(n * mult);
    return 0;
}

/* Non-negative seconds, fractions allowed ("0.5"), stored as milliseconds. */
static int parse_seconds(const char *v, unsigned *ms)
{
    errno = 0;
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || errno != 0 || !(d >= 0) || d > 86400.0 * 365) return -1;
    *ms = (unsigned)(d * 1000.0 + 0.5);
    return 0;
}

static int parse_uint(const char *v, unsigned long max, unsigned long *out)
{
    errno = 0;
    char *end;
    if (*v == '-' || *v == '+' || *v == 0) return -1;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || errno != 0 || n > max) return -1;
    *out = n;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0) return *out = false, 0;
    }
    return -1;
}

static void free_list(char **list)
{
    if (list == NULL) return;
    for (char **p = list; *p; p++) free(*p);
    free(list);
}

/* "A, b ,c" -> {"a","b","c",NULL}; names are matched case-insensitively anyway. */
static char **parse_list(const char *v)
{
    size_t n = 1;
    for (const char *p = v; *p; p++) n += *p == ',';
    char **list = calloc(n + 1, sizeof(*list));
    if (list == NULL) return NULL;
    size_t k = 0;
    const char *p = v;
    while (*p) {
        const char *e = strchr(p, ',');
        if (e == NULL) e = p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a) {
            list[k] = strndup(a, (size_t)(b - a));
            if (list[k] == NULL) return free_list(list), NULL;
            for (char *c = list[k]; *c; c++) *c = (char)tolower((unsigned char)*c);
            k++;
        }
        p = *e ? e + 1 : e;
    }
    return list;
}

/* Applies one textual value; `from` names its origin for the error message. */
static int apply(struct st_proxy_config *cfg, const struct setting *s, const char *v, const char *from)
{
    void *field = (char *)cfg + s->offset;
    const char *expect = NULL;
    unsigned long n;
    switch (s->kind) {
    case K_PORT:
        if (parse_uint(v, 65535, &n) < 0 || n == 0) expect = "a port number 1-65535";
        else *(uint16_t *)field = (uint16_t)n;
        break;
    case K_SECONDS:
        if (parse_seconds(v, field) < 0) expect = "a number of seconds (e.g. 5 or 0.5)";
        break;
    case K_MS:
        if (parse_uint(v, 86400000ul, &n) < 0) expect = "a number of milliseconds";
        else *(unsigned *)field = (unsigned)n;
        break;
    case K_COUNT:
        if (parse_uint(v, 100000000ul, &n) < 0) expect = "a whole number";
        else if (strcmp(s->flag, "threads") == 0 && (n < 1 || n > 64))
            expect = "a number of threads from 1 to 64";
        else *(unsigned *)field = (unsigned)n;
        break;
    case K_SIZE:
        if (parse_size(v, field) < 0) expect = "a size in bytes (e.g. 65536, 64KiB, 16MiB)";
        break;
    case K_BOOL:
        if (parse_bool(v, field) < 0) expect = "true or false";
        break;
    case K_STR:
        *(const char **)field = v;
        break;
    case K_LIST: {
        char **list = parse_list(v);
        if (list == NULL) {
            fprintf(stderr, "sidetap-proxy: out of memory\n");
            return -1;
        }
        free_list(*(char ***)field);
        *(char ***)field = list;
        break;
    }
    }
    if (expect != NULL) {
        fprintf(stderr, "sidetap-proxy: %s: \"%s\" is not valid, expected %s\n", from, v, expect);
        return -1;
    }
    return 0;
}

/* Cross-field checks after everything is applied. */
static int check(const struct st_proxy_config *cfg)
{
    struct {
        uint16_t port;
        const char *name;
    } ports[] = {{cfg->outbound_port, "SIDETAP_OUTBOUND_PORT"},
                 {cfg->inbound_port, "SIDETAP_INBOUND_PORT"},
                 {cfg->dns_port, "SIDETAP_DNS_PORT"},
                 {cfg->admin_port, "SIDETAP_ADMIN_PORT"}};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = i + 1; j < 4; j++)
            if (ports[i].port == ports[j].port) {
                fprintf(stderr, "sidetap-proxy: %s and %s are both %u; they must differ\n",
                        ports[i].name, ports[j].name, ports[i].port);
                return -1;
            }
    if (cfg->buffer_high < 4096) {
        fprintf(stderr, "sidetap-proxy: SIDETAP_BUFFER_SIZE: %zu is too small, expected at least 4096\n",
                cfg->buffer_high);
        return -1;
    }
    if (cfg->batch_entries == 0 || cfg->queue_entries == 0) {
        fprintf(stderr, "sidetap-proxy: SIDETAP_BATCH_ENTRIES and SIDETAP_QUEUE_ENTRIES must be at least 1\n");
        return -1;
    }
    if (cfg->connect_timeout_ms == 0 || cfg->dns_timeout_ms == 0) {
        fprintf(stderr, "sidetap-proxy: SIDETAP_CONNECT_TIMEOUT and SIDETAP_DNS_TIMEOUT must be above 0\n");
        return -1;
    }
    if (cfg->collector_url != NULL && strncasecmp(cfg->collector_url, "http://", 7) != 0) {
        fprintf(stderr,
                "sidetap-proxy: SIDETAP_COLLECTOR_URL: \"%s\" is not valid, expected an http:// URL "
                "(the collector is a Service inside the cluster)\n",
                cfg->collector_url);
        return -1;
    }
    return 0;
}

int st_proxy_config_load(struct st_proxy_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (settings[i].def == NULL) continue;
        char from[96];
        snprintf(from, sizeof(from), "default of %s", settings[i].env);
        if (apply(cfg, &settings[i], settings[i].def, from) < 0) return 2;
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v == NULL || *v == 0) continue; /* empty = unset, as Kubernetes often renders it */
        if (apply(cfg, &settings[i], v, settings[i].env) < 0) return 2;
    }

    struct option opts[N_SETTINGS + 3];
    for (size_t i = 0; i < N_SETTINGS; i++)
        opts[i] = (struct option){settings[i].flag,
                                  settings[i].kind == K_BOOL ? optional_argument : required_argument,
                                  NULL, (int)(i + 1000)};
    opts[N_SETTINGS] = (struct option){"help", no_argument, NULL, 'h'};
    opts[N_SETTINGS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    opts[N_SETTINGS + 2] = (struct option){NULL, 0, NULL, 0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == 'V') {
            printf("sidetap-proxy %s\n", SIDETAP_VERSION);
            return 1;
        }
        if (c == '?' || c == ':') {
            const char *arg = argv[optind - 1];
            if (optopt >= 1000 && optopt < 1000 + (int)N_SETTINGS)
                fprintf(stderr, "sidetap-proxy: option --%s needs a value\n", settings[optopt - 1000].flag);
            else fprintf(stderr, "sidetap-proxy: unknown option %s (see --help)\n", arg);
            return 2;
        }
        const struct setting *s = &settings[c - 1000];
        char from[80];
        snprintf(from, sizeof(from), "--%s", s->flag);
        if (apply(cfg, s, optarg ? optarg : "true", from) < 0) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "sidetap-proxy: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return 2;
    }
    if (check(cfg) < 0) return 2;
    return 0;
}

void st_proxy_config_free(struct st_proxy_config *cfg)
{
    free_list(cfg->redact);
    cfg->redact = NULL;
}
