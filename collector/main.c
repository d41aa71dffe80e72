/* main.c - sidetap-collector: parses the configuration, wires the modules (collector.h)
 * and runs the event loop. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>

#include "collector.h"
#include "kfl.h"

#define TICK_MS 100

int64_t st_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void st_collector_deliver(struct st_collector *c, const struct st_jentry *entry)
{
    const char *err = NULL;
    const struct st_rec *rec = st_store_append(c->store, entry, &err);
    if (rec) {
        c->rate_count++;
        st_stream_publish(c->stream, rec);
    }
}

double st_collector_rate(struct st_collector *c)
{
    return (double)c->rate_last;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sidetap-collector [options]\n"
            "  --listen HOST:PORT       address to serve on (default 0.0.0.0:8080)\n"
            "  --token-file PATH        file holding the ingest bearer token (or env SIDETAP_TOKEN)\n"
            "  --no-auth                accept entries without a token (local testing only)\n"
            "  --data-dir DIR           keep entries in segment files here (default: memory only)\n"
            "  --no-fsync               do not fdatasync segment files (a thread does it, at most every 100 ms)\n"
            "  --memory SIZE            memory budget for stored entries (default 256Mi)\n"
            "  --retention-bytes SIZE   disk budget for segment files (default 1Gi, 0 = none)\n"
            "  --retention-age DUR      drop entries older than this (default 24h, 0 = never)\n"
            "  --max-body SIZE          largest request body (default 8Mi)\n"
            "  --max-batch N            most entries in one batch (default 5000)\n"
            "  --max-rate N             entries/s accepted before answering 503 (default 0 = no limit)\n"
            "  --max-backlog SIZE       bytes waiting for the disk before answering 503 (default 32Mi)\n"
            "  --dedup-hold DUR         wait for the other side's report of a call (default 2s)\n"
            "  --stream-buffer SIZE     bytes queued per live stream before it reads from the store (default 256Ki)\n"
            "  --stream-lag N           entries a live stream may fall behind before it drops them (default 10000)\n"
            "  --stream-stall DUR       close a live stream that cannot be written for this long (default 30s)\n"
            "  --k8s-api URL            Kubernetes API (default: in-cluster when KUBERNETES_SERVICE_HOST is set)\n"
            "  --k8s-token-file PATH    service-account token (default /var/run/secrets/kubernetes.io/serviceaccount/token)\n"
            "  --k8s-ca-file PATH       API CA bundle (default /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)\n"
            "  --no-k8s                 do not watch the Kubernetes API\n"
            "  --version, --help\n"
            "SIZE takes K, M, G (or Ki, Mi, Gi; KiB...) suffixes; DUR takes ms, s, m, h, d.\n");
}

/* "256Mi", "8MiB", "1G", "4096" -> bytes; -1 when malformed. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    uint64_t mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1024ull * 1024 * 1024, end++;
    else if (*end == 't' || *end == 'T')
        mult = 1024ull * 1024 * 1024 * 1024, end++;
    if (mult > 1 && *end == 'i')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0' || v * (double)mult > 1e18)
        return -1;
    *out = (uint64_t)(v * (double)mult);
    return 0;
}

/* "2s", "500ms", "24h", "0" -> ms; -1 when malformed. */
static int parse_duration(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    double mult;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else if (*end == '\0' && v == 0)
        mult = 0;
    else
        return -1;
    if (v * mult > 1e15)
        return -1;
    *out = (int64_t)(v * mult);
    return 0;
}

static char *read_token(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read --token-file %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "--token-file %s is empty", path);
        return NULL;
    }
    return strdup(buf);
}

enum {
    OPT_LISTEN = 256, OPT_TOKEN_FILE, OPT_NO_AUTH, OPT_DATA_DIR, OPT_MEMORY, OPT_RET_BYTES,
    OPT_RET_AGE, OPT_MAX_BODY, OPT_MAX_BATCH, OPT_MAX_RATE, OPT_MAX_BACKLOG, OPT_DEDUP_HOLD, OPT_STREAM_BUFFER,
    OPT_STREAM_STALL, OPT_STREAM_LAG, OPT_K8S_API, OPT_K8S_TOKEN, OPT_K8S_CA, OPT_NO_K8S, OPT_VERSION, OPT_HELP,
    OPT_NO_FSYNC,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"no-auth", no_argument, NULL, OPT_NO_AUTH},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"no-fsync", no_argument, NULL, OPT_NO_FSYNC},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"retention-bytes", required_argument, NULL, OPT_RET_BYTES},
    {"retention-age", required_argument, NULL, OPT_RET_AGE},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
    {"max-rate", required_argument, NULL, OPT_MAX_RATE},
    {"max-backlog", required_argument, NULL, OPT_MAX_BACKLOG},
    {"dedup-hold", required_argument, NULL, OPT_DEDUP_HOLD},
    {"stream-buffer", required_argument, NULL, OPT_STREAM_BUFFER},
    {"stream-stall", required_argument, NULL, OPT_STREAM_STALL},
    {"stream-lag", required_argument, NULL, OPT_STREAM_LAG},
    {"k8s-api", required_argument, NULL, OPT_K8S_API},
    {"k8s-token-file", required_argument, NULL, OPT_K8S_TOKEN},
    {"k8s-ca-file", required_argument, NULL, OPT_K8S_CA},
    {"no-k8s", no_argument, NULL, OPT_NO_K8S},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void free_config(struct st_config *cfg)
{
    free(cfg->listen_host);
    free(cfg->token);
    free(cfg->k8s_api);
    free(cfg->k8s_token_file);
    free(cfg->k8s_ca_file);
}

/* Returns 0, 1 (--help/--version: exit 0) or -1 with err filled (exit 2). */
static int parse_config(int argc, char **argv, struct st_config *cfg, char *err, size_t errlen)
{
    const char *listen = "0.0.0.0:8080", *token_file = NULL;
    bool no_auth = false, no_k8s = false;
    uint64_t u;
    int64_t d;
    *cfg = (struct st_config){
        .max_body = 8u << 20,
        .max_batch = 5000,
        .max_backlog = 32u << 20, /* under segment.c's QUEUE_MAX: 503 before dropping */
        .dedup_hold_ms = 2000,
        .dedup_max = 200000,
        .stream_stall_ms = 30000,
        .stream_buffer = 256u << 10,
        .stream_lag = 10000,
        .max_streams = 256,
        .store = {.memory_budget = 256u << 20, .retention_bytes = 1ull << 30,
                  .retention_age_ms = 24 * 3600 * 1000},
    };
    int opt;
    opterr = 0;
    optind = 1;
    int longindex = 0;
    while ((opt = getopt_long(argc, argv, "", options, &longindex)) != -1) {
        char name[40];
        snprintf(name, sizeof(name), "--%s", options[longindex].name);
        switch (opt) {
        case OPT_LISTEN: listen = optarg; break;
        case OPT_TOKEN_FILE: token_file = optarg; break;
        case OPT_NO_AUTH: no_auth = true; break;
        case OPT_DATA_DIR: cfg->store.data_dir = optarg; break;
        case OPT_NO_FSYNC: cfg->store.no_fsync = true; break;
        case OPT_MEMORY:
            if (parse_size(optarg, &u) < 0 || u < (1u << 20))
                goto bad_size;
            cfg->store.memory_budget = u;
            break;
        case OPT_RET_BYTES:
            if (parse_size(optarg, &u) < 0)
                goto bad_size;
            cfg->store.retention_bytes = u;
            break;
        case OPT_RET_AGE:
            if (parse_duration(optarg, &d) < 0)
                goto bad_duration;
            cfg->store.retention_age_ms = d;
            break;
        case OPT_MAX_BACKLOG:
            if (parse_size(optarg, &u) < 0 || u < (1u << 20))
                goto bad_size;
            cfg->max_backlog = u;
            break;
        case OPT_MAX_BODY:
            if (parse_size(optarg, &u) < 0 || u < 1024 || u > (1u << 30))
                goto bad_size;
            cfg->max_body = u;
            break;
        case OPT_MAX_BATCH:
        case OPT_STREAM_LAG:
        case OPT_MAX_RATE: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*optarg == '-' || end == optarg || *end || errno || v > 100000000ull ||
                (opt != OPT_MAX_RATE && v == 0)) {
                snprintf(err, errlen, "%s: \"%s\" is not a count%s", name, optarg,
                         opt != OPT_MAX_RATE ? " between 1 and 100000000" : "");
                return -1;
            }
            if (opt == OPT_MAX_BATCH)
                cfg->max_batch = v;
            else if (opt == OPT_STREAM_LAG)
                cfg->stream_lag = v;
            else
                cfg->max_rate = v;
            break;
        }
        case OPT_DEDUP_HOLD:
            if (parse_duration(optarg, &d) < 0 || d > 60000)
                goto bad_duration;
            cfg->dedup_hold_ms = (int)d;
            break;
        case OPT_STREAM_BUFFER:
            if (parse_size(optarg, &u) < 0 || u < 1024 || u > (1u << 30))
                goto bad_size;
            cfg->stream_buffer = u;
            break;
        case OPT_STREAM_STALL:
            if (parse_duration(optarg, &d) < 0 || d < 100 || d > 3600000)
                goto bad_duration;
            cfg->stream_stall_ms = (int)d;
            break;
        case OPT_K8S_API: cfg->k8s_api = strdup(optarg); break;
        case OPT_K8S_TOKEN: cfg->k8s_token_file = strdup(optarg); break;
        case OPT_K8S_CA: cfg->k8s_ca_file = strdup(optarg); break;
        case OPT_NO_K8S: no_k8s = true; break;
        case OPT_VERSION: printf("sidetap-collector %s\n", SIDETAP_VERSION); return 1;
        case OPT_HELP: usage(stdout); return 1;
        case ':':
            snprintf(err, errlen, "%s needs a value (see --help)", argv[optind - 1]);
            return -1;
        default:
            snprintf(err, errlen, "unknown option %s (see --help)", argv[optind - 1]);
            return -1;
        }
        continue;
    bad_size:
        snprintf(err, errlen, "%s: \"%s\" is not a valid size (e.g. 256Mi, 8MiB, 1G)", name, optarg);
        return -1;
    bad_duration:
        snprintf(err, errlen, "%s: \"%s\" is not a valid duration (e.g. 500ms, 2s, 24h)", name,
                 optarg);
        return -1;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return -1;
    }
    /* listen address: HOST:PORT, [v6]:PORT or :PORT */
    const char *colon = strrchr(listen, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon[1] == '\0' || *end || port < 0 || port > 65535) {
        snprintf(err, errlen, "--listen: \"%s\" is not HOST:PORT (e.g. 0.0.0.0:8080)", listen);
        return -1;
    }
    size_t hl = (size_t)(colon - listen);
    if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']')
        cfg->listen_host = strndup(listen + 1, hl - 2);
    else
        cfg->listen_host = hl ? strndup(listen, hl) : strdup("0.0.0.0");
    cfg->listen_port = (int)port;

    if (token_file) {
        cfg->token = read_token(token_file, err, errlen);
        if (!cfg->token)
            return -1;
    } else if (getenv("SIDETAP_TOKEN") && *getenv("SIDETAP_TOKEN")) {
        cfg->token = strdup(getenv("SIDETAP_TOKEN"));
    } else if (!no_auth) {
        snprintf(err, errlen,
                 "no ingest token: pass --token-file PATH or set SIDETAP_TOKEN (--no-auth to accept "
                 "entries from anyone)");
        return -1;
    }
    if (!no_k8s && !cfg->k8s_api && getenv("KUBERNETES_SERVICE_HOST")) {
        const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
        char url[300];
        snprintf(url, sizeof(url), strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s", h,
                 p && *p ? p : "443");
        cfg->k8s_api = strdup(url);
    }
    if (no_k8s) {
        free(cfg->k8s_api);
        cfg->k8s_api = NULL;
    }
    if (!cfg->k8s_token_file)
        cfg->k8s_token_file = strdup("/var/run/secrets/kubernetes.io/serviceaccount/token");
    if (!cfg->k8s_ca_file)
        cfg->k8s_ca_file = strdup("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
    return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct st_collector *c = arg;
    st_dedup_expire(c->dedup, false);
    st_store_tick(c->store);
    int64_t sec = st_now_ms() / 1000;
    if (sec != c->rate_second) {
        c->rate_last = sec == c->rate_second + 1 ? c->rate_count : 0;
        c->rate_count = 0;
        c->rate_window_accepted = 0;
        c->rate_second = sec;
        st_stream_tick(c->stream);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct st_collector *c = arg;
    fprintf(stderr, "sidetap-collector: signal %d, shutting down\n", (int)sig);
    event_base_loopexit(c->base, NULL);
}

int main(int argc, char **argv)
{
    struct st_collector c;
    char err[512];
    int rc = 1;
    struct event *sigterm = NULL, *sigint = NULL;
    memset(&c, 0, sizeof(c));

    int pr = parse_config(argc, argv, &c.cfg, err, sizeof(err));
    if (pr != 0) {
        if (pr < 0)
            fprintf(stderr, "sidetap-collector: %s\n", err);
        free_config(&c.cfg);
        return pr < 0 ? 2 : 0;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Ingest frees a whole batch of small jansson objects at once; with fastbins glibc
     * then spends a fifth of the time consolidating them (measured: ingest doubles
     * without them, bench/collector). */
    mallopt(M_MXFAST, 0);
    json_object_seed(0);
    c.started_ms = st_now_ms();
    c.rate_second = c.started_ms / 1000;

    c.base = event_base_new();
    if (!c.base) {
        fprintf(stderr, "sidetap-collector: cannot create the event loop\n");
        goto fail;
    }
    c.store = st_store_mem_new(&c.cfg.store, err, sizeof(err));
    if (!c.store) {
        fprintf(stderr, "sidetap-collector: %s\n", err);
        goto fail;
    }
    c.identity = st_identity_new();
    c.dedup = st_dedup_new(&c);
    c.stream = st_stream_new(&c);
    if (!c.identity || !c.dedup || !c.stream) {
        fprintf(stderr, "sidetap-collector: out of memory\n");
        goto fail;
    }
    c.http = evhttp_new(c.base);
    if (!c.http)
        goto fail;
    /* The hard cap protects memory (libevent answers 413 itself); up to it, api.c checks
     * --max-body and answers with a message. */
    evhttp_set_max_body_size(c.http, (ev_ssize_t)c.cfg.max_body * 4);
    evhttp_set_max_headers_size(c.http, 64 * 1024);
    evhttp_set_timeout(c.http, 60);
    evhttp_set_allowed_methods(c.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(c.http, st_api_handle, &c);
    if (!evhttp_bind_socket_with_handle(c.http, c.cfg.listen_host, (ev_uint16_t)c.cfg.listen_port)) {
        fprintf(stderr, "sidetap-collector: cannot listen on %s:%d: %s\n", c.cfg.listen_host,
                c.cfg.listen_port, strerror(errno));
        goto fail;
    }
    if (c.cfg.k8s_api) {
        c.k8s = st_k8s_new(&c, err, sizeof(err));
        if (!c.k8s) {
            fprintf(stderr, "sidetap-collector: kubernetes: %s\n", err);
            goto fail;
        }
    }
    c.tick = event_new(c.base, -1, EV_PERSIST, on_tick, &c);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(c.tick, &tv);
    sigterm = evsignal_new(c.base, SIGTERM, on_signal, &c);
    sigint = evsignal_new(c.base, SIGINT, on_signal, &c);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);

    struct st_store_stats ss;
    st_store_stats(c.store, &ss);
    fprintf(stderr,
            "sidetap-collector %s: listening on %s:%d, %llu entries loaded%s%s, memory budget %zu MiB\n",
            SIDETAP_VERSION, c.cfg.listen_host, c.cfg.listen_port, (unsigned long long)ss.entries,
            c.cfg.store.data_dir ? " from " : "", c.cfg.store.data_dir ? c.cfg.store.data_dir : "",
            c.cfg.store.memory_budget >> 20);
    event_base_dispatch(c.base);
    st_dedup_expire(c.dedup, true);
    rc = 0;
fail:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (c.tick)
        event_free(c.tick);
    st_k8s_free(c.k8s);
    st_stream_free(c.stream);
    if (c.http)
        evhttp_free(c.http);
    st_dedup_free(c.dedup);
    st_ingest_free();
    st_identity_free(c.identity);
    st_store_close(c.store);
    if (c.base)
        event_base_free(c.base);
    free_config(&c.cfg);
    return rc;
}
