/* bench_mutate: load client for sidetap-injector's POST /mutate over TLS with keep-alive.
 *
 * Each of N threads holds one TLS connection and sends the same AdmissionReview. With
 * --rate R the run is open-loop: request i of a thread is due at start + i*N/R and its
 * latency is counted from that due time (a slow server is not hidden by waiting clients).
 * Without --rate each thread sends as fast as answers come back (throughput). Bounded by
 * --requests and --seconds. Prints requests/s and latency percentiles.
 *
 *   bench_mutate --port P --ca ca.crt --body review.json [--connections 50] [--rate 500]
 *                [--seconds 10] [--requests 100000]
 * Traffic goes to 127.0.0.1 only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct worker {
    pthread_t thread;
    int index;
    double *lat; /* seconds */
    size_t n, cap;
    unsigned long errors, not_injected;
};

static int port, connections = 50, max_requests = 100000;
static double rate = 0, seconds = 10, start_time;
static const char *ca_file;
static char *request;
static size_t request_len;
static SSL_CTX *ctx;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static SSL *dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "sidetap-injector.sidetap.svc");
    SSL_set1_host(ssl, "sidetap-injector.sidetap.svc");
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    return ssl;
}

static void hangup(SSL *ssl)
{
    if (ssl == NULL) return;
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    close(fd);
}

/* Reads one response; returns 0 with *injected set, -1 on error. */
static int read_response(SSL *ssl, int *injected)
{
    static __thread char buf[1 << 16];
    size_t got = 0;
    char *hdr_end = NULL;
    while (hdr_end == NULL) {
        int r = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got));
        if (r <= 0) return -1;
        got += (size_t)r;
        buf[got] = '\0';
        hdr_end = strstr(buf, "\r\n\r\n");
        if (got >= sizeof buf - 1) return -1;
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) return -1;
    char *cl = strcasestr(buf, "Content-Length:");
    if (cl == NULL) return -1;
    size_t len = strtoul(cl + 15, NULL, 10);
    size_t have = got - (size_t)(hdr_end + 4 - buf);
    size_t body_off = (size_t)(hdr_end + 4 - buf);
    while (have < len) {
        if (body_off + len >= sizeof buf) return -1;
        int r = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got));
        if (r <= 0) return -1;
        got += (size_t)r;
        have += (size_t)r;
    }
    buf[body_off + len] = '\0';
    *injected = strstr(buf + body_off, "\"patch\":") != NULL;
    return 0;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    SSL *ssl = dial();
    double interval = rate > 0 ? connections / rate : 0;
    double due = start_time + (rate > 0 ? interval * w->index / connections : 0);
    int per_thread = max_requests / connections;
    for (int i = 0; i < per_thread; i++) {
        double t = now();
        if (t - start_time > seconds) break;
        if (rate > 0) {
            if (due > t) usleep((useconds_t)((due - t) * 1e6));
        } else {
            due = t;
        }
        int injected = 0;
        if (ssl == NULL) ssl = dial();
        if (ssl == NULL || SSL_write(ssl, request, (int)request_len) != (int)request_len ||
            read_response(ssl, &injected) != 0) {
            w->errors++;
            hangup(ssl);
            ssl = NULL;
        } else {
            if (!injected) w->not_injected++;
            if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 1024;
                w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
            }
            w->lat[w->n++] = now() - due;
        }
        due += interval;
    }
    hangup(ssl);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *body_file = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ca")) ca_file = argv[i + 1];
        else if (!strcmp(argv[i], "--body")) body_file = argv[i + 1];
        else if (!strcmp(argv[i], "--connections")) connections = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests")) max_requests = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_mutate: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (!port || !ca_file || !body_file || connections < 1 || connections > 1000 || seconds > 120) {
        fprintf(stderr, "usage: bench_mutate --port P --ca CA --body FILE [--connections N<=1000] "
                        "[--rate R] [--seconds S<=120] [--requests N]\n");
        return 2;
    }
    FILE *f = fopen(body_file, "rb");
    if (f == NULL) {
        perror(body_file);
        return 2;
    }
    static char body[1 << 20];
    size_t blen = fread(body, 1, sizeof body, f);
    fclose(f);
    request = malloc(blen + 512);
    request_len = (size_t)sprintf(request,
                                  "POST /mutate?timeout=5s HTTP/1.1\r\nHost: sidetap-injector.sidetap.svc:443\r\n"
                                  "Content-Type: application/json\r\nAccept: application/json\r\n"
                                  "Content-Length: %zu\r\n\r\n", blen);
    memcpy(request + request_len, body, blen);
    request_len += blen;

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        fprintf(stderr, "bench_mutate: cannot load %s\n", ca_file);
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    struct worker *ws = calloc((size_t)connections, sizeof *ws);
    start_time = now() + 0.2; /* let every thread connect first */
    for (int i = 0; i < connections; i++) {
        ws[i].index = i;
        pthread_create(&ws[i].thread, NULL, run, &ws[i]);
    }
    size_t total = 0;
    unsigned long errors = 0, not_injected = 0;
    for (int i = 0; i < connections; i++) {
        pthread_join(ws[i].thread, NULL);
        total += ws[i].n;
        errors += ws[i].errors;
        not_injected += ws[i].not_injected;
    }
    double elapsed = now() - start_time;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < connections; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n * sizeof *all);
        k += ws[i].n;
        free(ws[i].lat);
    }
    qsort(all, total, sizeof *all, cmp);
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p))] * 1000 : 0)
    printf("mutate: %d connections, %s, %.1f s: %zu requests, %.0f req/s, errors %lu, not injected %lu\n",
           connections, rate > 0 ? "open loop" : "closed loop (max throughput)", elapsed, total,
           total / elapsed, errors, not_injected);
    if (rate > 0) printf("  target rate %.0f req/s\n", rate);
    printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", PCT(0.5), PCT(0.9),
           PCT(0.99), PCT(0.999), total ? all[total - 1] * 1000 : 0);
    free(all);
    free(ws);
    free(request);
    SSL_CTX_free(ctx);
    return errors ? 1 : 0;
}
