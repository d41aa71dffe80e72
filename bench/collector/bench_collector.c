/* bench_collector - figures for the collector's core, in process, one thread:
 *   ingest: batches of 1000 entries as JSON text -> parse -> validate -> store (entries/s)
 *   memory per stored entry (store accounting and RSS growth)
 *   KFL query latency over N stored entries: a list page (first 100 matches, newest first)
 *   plus the total count, as GET /api/v1/entries does, for selective and broad queries
 *   service-map computation over all stored entries.
 * usage: bench_collector [entries (default 1000000)]
 *        bench_collector --http PATH/sidetap-collector [entries (200000)] [batch (1000)] [data-dir]
 *          the real daemon over loopback HTTP (see bench_http below); with a data-dir, as
 *          deployed (manifests/collector.yaml): entries also written to segment files there,
 *          256 MiB in memory (the oldest evicted past it), 1 GiB on disk */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector.h"
#include "jscan.h"
#include "kfl.h"
#include "store.h"

/* CPU time of this (single-threaded) process: the figures stay meaningful on a busy
 * machine; wall-clock time is printed next to the ingest figure. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static const char *const namespaces[] = {"bookinfo", "guestbook", "shop", "payments", "infra",
                                         "kube-system", "monitoring", "default"};
static const char *const paths[] = {"/details/0", "/reviews/0", "/ratings/0", "/health",
                                    "/api/v1/items", "/productpage", "/healthz", "/login"};

/* One entry of a realistic mix: 60% HTTP, 20% DNS, 15% Redis, 5% gRPC. */
static int make_entry(char *out, size_t size, unsigned i, int64_t ts)
{
    unsigned r = (i * 2654435761u) >> 7;
    const char *ns = namespaces[r % 8], *dns = namespaces[(r / 8) % 8];
    unsigned kind = r % 20;
    char src[300], dst[300];
    snprintf(src, sizeof(src),
             "{\"ip\":\"10.1.%u.%u\",\"port\":%u,\"name\":\"app-%u-7d6cfb7dfd-x2x4b\",\"namespace\":\"%s\","
             "\"node\":\"node-%u\",\"workload\":\"app-%u\",\"labels\":{\"app\":\"app-%u\"}}",
             r % 50, r % 200 + 1, 30000 + r % 30000, r % 40, ns, r % 5, r % 40, r % 40);
    snprintf(dst, sizeof(dst),
             "{\"ip\":\"10.2.%u.%u\",\"port\":%u,\"name\":\"svc-%u-5f4d584748-8mk9p\",\"namespace\":\"%s\","
             "\"node\":\"node-%u\",\"workload\":\"svc-%u\"}",
             (r / 3) % 50, (r / 7) % 200 + 1, kind < 12 ? 9080 : kind < 16 ? 53 : kind < 19 ? 6379 : 2379,
             (r / 11) % 30, dns, (r / 5) % 5, (r / 11) % 30);
    const char *err = (r % 97) == 0 ? ",\"error\":{\"message\":\"connection reset\"}" : "";
    if (kind < 12) {
        const char *path = paths[(r / 13) % 8];
        unsigned status = (r % 23) == 0 ? 404 : (r % 101) == 0 ? 503 : 200;
        return snprintf(out, size,
                        "{\"timestamp\":%" PRId64 ",\"elapsedTime\":%.3f,\"protocol\":{\"name\":\"http\",\"version\":\"1.1\","
                        "\"abbr\":\"HTTP\"},\"src\":%s,\"dst\":%s,\"node\":{\"name\":\"node-%u\"},\"outgoing\":true,\"seq\":%u,"
                        "\"request\":{\"method\":\"GET\",\"path\":\"%s\",\"url\":\"%s?lang=en\",\"headers\":{\"Host\":"
                        "\"svc:9080\",\"User-Agent\":\"python-requests/2.28.1\",\"Accept\":\"*/*\"},\"queryString\":{\"lang\":\"en\"},"
                        "\"body\":{\"size\":0,\"truncated\":false,\"encoding\":\"text\",\"data\":\"\"},\"bytes\":143},"
                        "\"response\":{\"status\":%u,\"statusText\":\"OK\",\"headers\":{\"Content-Type\":\"application/json\","
                        "\"Content-Length\":\"17\"},\"body\":{\"size\":17,\"truncated\":false,\"encoding\":\"text\","
                        "\"data\":\"{\\\"id\\\":0,\\\"ok\\\":1}\"},\"bytes\":120},\"summary\":\"GET %s\"%s}",
                        ts, (double)(r % 5000) / 100.0, src, dst, r % 5, r % 10, path, path, status, path, err);
    }
    if (kind < 16)
        return snprintf(out, size,
                        "{\"timestamp\":%" PRId64 ",\"elapsedTime\":0.8,\"protocol\":{\"name\":\"dns\",\"abbr\":\"DNS\"},"
                        "\"src\":%s,\"dst\":%s,\"node\":{\"name\":\"node-%u\"},\"outgoing\":true,\"seq\":0,"
                        "\"request\":{\"method\":\"A\",\"path\":\"svc-%u.%s.svc.cluster.local\",\"bytes\":60},"
                        "\"response\":{\"bytes\":100},\"dns\":{\"id\":%u,\"questions\":[{\"name\":\"svc-%u.%s.svc.cluster.local\","
                        "\"type\":\"A\"}],\"answers\":[{\"type\":\"A\",\"data\":\"10.96.0.%u\",\"ttl\":30}],\"rcode\":\"NOERROR\"},"
                        "\"summary\":\"A svc-%u.%s.svc.cluster.local\"%s}",
                        ts, src, dst, r % 5, r % 30, dns, r % 65536, r % 30, dns, r % 250, r % 30, dns, err);
    if (kind < 19)
        return snprintf(out, size,
                        "{\"timestamp\":%" PRId64 ",\"elapsedTime\":0.3,\"protocol\":{\"name\":\"redis\",\"version\":\"RESP2\"},"
                        "\"src\":%s,\"dst\":%s,\"node\":{\"name\":\"node-%u\"},\"outgoing\":true,\"seq\":%u,"
                        "\"request\":{\"method\":\"GET\",\"path\":\"guestbook:%u\",\"bytes\":40},\"response\":{\"bytes\":12},"
                        "\"redis\":{\"command\":\"GET\",\"key\":\"guestbook:%u\",\"args\":[\"guestbook:%u\"]},"
                        "\"summary\":\"GET guestbook:%u\"%s}",
                        ts, src, dst, r % 5, r % 100, r % 1000, r % 1000, r % 1000, r % 1000, err);
    return snprintf(out, size,
                    "{\"timestamp\":%" PRId64 ",\"elapsedTime\":4.0,\"protocol\":{\"name\":\"grpc\",\"version\":\"2\"},"
                    "\"src\":%s,\"dst\":%s,\"node\":{\"name\":\"node-%u\"},\"outgoing\":true,\"seq\":%u,"
                    "\"request\":{\"method\":\"POST\",\"path\":\"/etcdserverpb.KV/Range\",\"headers\":{\"content-type\":"
                    "\"application/grpc\"},\"bytes\":80},\"response\":{\"status\":200,\"headers\":{\"grpc-status\":\"0\"},"
                    "\"bytes\":90},\"grpc\":{\"service\":\"etcdserverpb.KV\",\"method\":\"Range\",\"status\":0},"
                    "\"summary\":\"/etcdserverpb.KV/Range\"%s}",
                    ts, src, dst, r % 5, r % 100, err);
}

struct scan_page {
    const struct kfl_query *q;
    size_t found, limit;
    uint64_t total;
    bool counting;
};

static bool page_visit(const struct st_rec *rec, void *arg)
{
    struct scan_page *p = arg;
    struct kfl_subject s = {.rec = rec};
    bool m = kfl_match(p->q, &s);
    kfl_subject_done(&s);
    if (p->counting) {
        p->total += m;
        return true;
    }
    if (m && ++p->found >= p->limit)
        return false;
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_query(struct st_store *store, const char *text, int reps, bool count)
{
    struct kfl_error err;
    struct kfl_query *q = kfl_compile(text, &err);
    if (!q) {
        fprintf(stderr, "%s: %s\n", text, err.message);
        return;
    }
    double t[64];
    uint64_t total = 0;
    size_t found = 0;
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        struct scan_page p = {.q = q, .limit = 100};
        st_store_scan(store, 0, 0, page_visit, &p);
        found = p.found;
        if (count) {
            p.counting = true;
            st_store_scan(store, 0, 0, page_visit, &p);
            total = p.total;
        }
        t[i] = (now_s() - t0) * 1000;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    printf("  %-72s p50 %8.1f ms  max %8.1f ms  (page %zu, total %s%" PRIu64 ")\n", text, t[reps / 2],
           t[reps - 1], found, count ? "" : "not counted: ", total);
    kfl_free(q);
}


/* --http: the real daemon, fed as proxies feed it. sidetap-collector runs as a child on a
 * loopback port; batches go as HTTP/1.1 POSTs over one keep-alive connection (as
 * proxy/ship.c sends them), and the figure is the collector process's own CPU time, all
 * its threads (/proc/PID/stat), so the client's cost and the machine's load stay out of it. */
struct proc_cpu {
    double user_s, kernel_s;
};

static struct proc_cpu proc_cpu(pid_t pid)
{
    struct proc_cpu c = {0, 0};
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return c;
    /* fields 14 and 15, after "(comm)", which may itself hold spaces */
    const char *p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
    unsigned long long ut, st;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
        double hz = (double)sysconf(_SC_CLK_TCK);
        c.user_s = (double)ut / hz;
        c.kernel_s = (double)st / hz;
    }
    fclose(f);
    return c;
}

static long proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long v = 0;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One request/response on fd; the response body goes to body (NUL-terminated). */
static int http_call(int fd, const char *method, const char *path, const char *data, size_t len,
                     char *body, size_t size)
{
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, len);
    if (send_all(fd, head, (size_t)hl) < 0 || (len && send_all(fd, data, len) < 0))
        return -1;
    static char buf[1 << 20];
    size_t got = 0;
    char *end = NULL;
    while (!(end = memmem(buf, got, "\r\n\r\n", 4))) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    buf[got] = '\0';
    int status = atoi(buf + 9);
    char *cl = strcasestr(buf, "Content-Length:");
    size_t blen = cl && cl < end ? strtoull(cl + 15, NULL, 10) : 0, have = got - (size_t)(end + 4 - buf);
    size_t off = (size_t)(end + 4 - buf);
    while (have < blen) {
        if (off + blen >= sizeof(buf))
            return -1;
        ssize_t r = read(fd, buf + off + have, blen - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    size_t n = blen < size - 1 ? blen : size - 1;
    memcpy(body, buf + off, n);
    body[n] = '\0';
    return status;
}

static int bench_http(const char *collector, size_t n, size_t batch, const char *data_dir)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("port");
        return 1;
    }
    close(lfd);
    char listen_arg[64];
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%u", ntohs(sa.sin_port));
    pid_t pid = fork();
    if (pid == 0) {
        if (data_dir) /* as manifests/collector.yaml deploys it: evicting past 256 MiB */
            execl(collector, collector, "--listen", listen_arg, "--no-auth", "--no-k8s", "--memory",
                  "256Mi", "--retention-bytes", "1Gi", "--max-body", "64Mi", "--max-batch", "5000",
                  "--dedup-hold", "0", "--data-dir", data_dir, (char *)NULL);
        else
            execl(collector, collector, "--listen", listen_arg, "--no-auth", "--no-k8s", "--memory",
                  "16Gi", "--max-body", "64Mi", "--max-batch", "5000", "--dedup-hold", "0",
                  (char *)NULL);
        _exit(127);
    }
    int fd = -1;
    for (int i = 0; i < 200 && fd < 0; i++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            close(fd);
            fd = -1;
            usleep(20000);
        }
    }
    if (fd < 0) {
        fprintf(stderr, "collector did not start\n");
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char *text = malloc(batch * 2048 + 64), entry[2048], reply[4096];
    /* the servers are known pods, as in a cluster: every entry gets dst.serviceAccount and
     * dst.labels spliced in by identity fill (the generator's dst IPs: 10.2.0-49.1-200) */
    size_t rl = (size_t)sprintf(text, "{\"pod\":{\"name\":\"server\",\"namespace\":\"shop\","
                                      "\"serviceAccount\":\"server-sa\",\"labels\":{\"app\":\"server\","
                                      "\"tier\":\"backend\"},\"ips\":[");
    for (int a = 0; a < 50; a++)
        for (int b = 1; b <= 200; b++)
            rl += (size_t)sprintf(text + rl, "%s\"10.2.%d.%d\"", a || b > 1 ? "," : "", a, b);
    rl += (size_t)sprintf(text + rl, "]}}");
    if (http_call(fd, "POST", "/api/v1/register", text, rl, reply, sizeof(reply)) != 200) {
        fprintf(stderr, "register: %.300s\n", reply);
        free(text);
        close(fd);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return 1;
    }
    int64_t ts0 = (int64_t)time(NULL) * 1000 - (int64_t)n;
    struct proc_cpu cpu0 = proc_cpu(pid);
    long rss0 = proc_rss_kib(pid);
    double w0 = wall_s();
    size_t json_bytes = 0, accepted = 0;
    int rc = 0;
    for (size_t done = 0; done < n && rc == 0; done += batch) {
        size_t len = (size_t)sprintf(text, "{\"entries\":[");
        for (size_t i = 0; i < batch && done + i < n; i++) {
            int w = make_entry(entry, sizeof(entry), (unsigned)(done + i), ts0 + (int64_t)(done + i));
            if (i)
                text[len++] = ',';
            memcpy(text + len, entry, (size_t)w);
            len += (size_t)w;
        }
        len += (size_t)sprintf(text + len, "]}");
        json_bytes += len;
        int st = http_call(fd, "POST", "/api/v1/entries", text, len, reply, sizeof(reply));
        const char *acc = strstr(reply, "\"accepted\":");
        if (st != 200 || !acc) {
            fprintf(stderr, "POST answered %d: %.300s\n", st, reply);
            rc = 1;
            break;
        }
        accepted += strtoull(acc + 11, NULL, 10);
    }
    double wall = wall_s() - w0;
    struct proc_cpu cpu1 = proc_cpu(pid);
    double user_s = cpu1.user_s - cpu0.user_s, kernel_s = cpu1.kernel_s - cpu0.kernel_s;
    long rss1 = proc_rss_kib(pid);
    if (rc == 0) {
        int st = http_call(fd, "GET", "/api/v1/stats", NULL, 0, reply, sizeof(reply));
        const char *b = strstr(reply, "\"bytes\":");
        double cpu_s = user_s + kernel_s;
        printf("sidetap-collector over HTTP, %zu entries in batches of %zu (POST /api/v1/entries, keep-alive;\n"
               "  identity fill on every entry, --dedup-hold 0%s%s)\n",
               accepted, batch,
               data_dir ? ", --memory 256Mi --retention-bytes 1Gi --data-dir " : ", --memory 16Gi",
               data_dir ? data_dir : "");
        printf("ingest, collector process CPU time: %.0f entries/s  (%.1f MB/s of JSON; %.2f s CPU "
               "= %.2f user + %.2f kernel, %.2f s wall)\n",
               (double)accepted / cpu_s, (double)json_bytes / cpu_s / 1e6, cpu_s, user_s, kernel_s, wall);
        printf("average entry JSON: %.0f bytes; collector RSS growth %.0f bytes per entry",
               (double)json_bytes / (double)n, (double)(rss1 - rss0) * 1024.0 / (double)accepted);
        if (st == 200 && b)
            printf("; store accounting %.0f bytes per entry",
                   (double)strtoull(b + 8, NULL, 10) / (double)accepted);
        printf("\n");
        if (data_dir && http_call(fd, "GET", "/metrics", NULL, 0, reply, sizeof(reply)) == 200) {
            const char *m = strstr(reply, "\nsidetap_collector_disk_syncs_total ");
            if (m)
                printf("segment files: %llu fdatasync rounds during the run\n",
                       strtoull(m + 37, NULL, 10));
        }
        FILE *la = fopen("/proc/loadavg", "r");
        char load[64] = "";
        if (la && fgets(load, sizeof(load), la))
            printf("load average during the run: %s", load);
        if (la)
            fclose(la);
    }
    close(fd);
    free(text);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--http") == 0)
        return bench_http(argv[2], argc > 3 ? strtoull(argv[3], NULL, 10) : 200000,
                          argc > 4 ? strtoull(argv[4], NULL, 10) : 1000, argc > 5 ? argv[5] : NULL);
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    mallopt(M_MXFAST, 0); /* as sidetap-collector's main() does */
    const size_t batch = 1000;
    struct st_store_config cfg = {.memory_budget = (size_t)8 << 30};
    char err[256];
    long rss0 = rss_kib();
    struct st_store *store = st_store_mem_new(&cfg, err, sizeof(err));
    if (!store) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char *text = malloc(batch * 2048 + 64);
    char entry[2048];
    int64_t ts0 = (int64_t)time(NULL) * 1000 - (int64_t)n; /* one entry per ms up to now */
    double ingest_s = 0, make_s = 0, ingest_wall = 0;
    struct st_jtape tape = {0};
    size_t json_bytes = 0;
    for (size_t done = 0; done < n; done += batch) {
        double t0 = now_s();
        size_t len = (size_t)sprintf(text, "{\"entries\":[");
        for (size_t i = 0; i < batch && done + i < n; i++) {
            int w = make_entry(entry, sizeof(entry), (unsigned)(done + i), ts0 + (int64_t)(done + i));
            if (i)
                text[len++] = ',';
            memcpy(text + len, entry, (size_t)w);
            len += (size_t)w;
        }
        len += (size_t)sprintf(text + len, "]}");
        json_bytes += len;
        double t1 = now_s(), w1 = wall_s();
        make_s += t1 - t0;
        /* what POST /api/v1/entries does per batch, minus HTTP, identity and dedup */
        struct st_jerr jerr;
        if (st_jscan(text, len, &tape, &jerr) < 0) {
            fprintf(stderr, "generator bug: %s\n", jerr.text);
            return 1;
        }
        uint32_t arr = st_jget(text, &tape, 0, "entries");
        size_t i = 0;
        for (uint32_t k = arr + 1; k < tape.tok[arr].next; k = tape.tok[k].next, i++) {
            char verr[300];
            struct st_jentry e;
            st_jentry_pick(&e, text, &tape, k);
            if (st_validate_jentry(&e, i, verr, sizeof(verr)) < 0) {
                fprintf(stderr, "generator bug: %s\n", verr);
                return 1;
            }
            const char *aerr;
            if (!st_store_append(store, &e, &aerr)) {
                fprintf(stderr, "append: %s\n", aerr);
                return 1;
            }
        }
        ingest_s += now_s() - t1;
        ingest_wall += wall_s() - w1;
    }
    struct st_store_stats ss;
    st_store_stats(store, &ss);
    long rss1 = rss_kib();
    printf("sidetap-collector core benchmark, %zu entries (mix: 60%% HTTP, 20%% DNS, 15%% Redis, 5%% gRPC)\n", n);
    printf("ingest (parse + validate + index + store), one core: %.0f entries/s of CPU time  (%.1f MB/s of JSON; "
           "%.2f s CPU, %.2f s wall)\n",
           (double)n / ingest_s, (double)json_bytes / ingest_s / 1e6, ingest_s, ingest_wall);
    printf("average entry JSON: %.0f bytes\n", (double)json_bytes / (double)n);
    printf("memory per stored entry: %.0f bytes by store accounting, %.0f bytes RSS growth\n",
           (double)ss.bytes / (double)ss.entries, (double)(rss1 - rss0) * 1024.0 / (double)ss.entries);
    printf("query latency (CPU time) over %" PRIu64 " entries (first page of 100 newest-first + total count):\n",
           ss.entries);
    bench_query(store, "redis and src.namespace == \"guestbook\" and request.path == \"guestbook:7\"", 9, true);
    bench_query(store, "response.status == 503 and dst.namespace == \"payments\"", 9, true);
    bench_query(store, "!dns and !error", 9, true);
    bench_query(store, "!dns and !error and request.path != \"/health\" and request.path != \"/healthz\"", 9, true);
    bench_query(store, "http and request.path.startsWith(\"/api\") and elapsedTime > 40", 9, true);
    bench_query(store, "", 9, false);
    printf("queries reading the entries' JSON (no total; the API bounds these scans to 2 s):\n");
    bench_query(store, "request.headers[\"User-Agent\"] == \"curl/7.88.1\"", 1, false);
    bench_query(store, "grpc.method == \"Range\"", 1, false);

    struct kfl_query *all = kfl_compile("", NULL);
    double t[5];
    for (int i = 0; i < 5; i++) {
        double t0 = now_s();
        json_t *m = st_servicemap_build(store, all, 0, (int64_t)time(NULL) * 1000 + 1000, "requests");
        t[i] = (now_s() - t0) * 1000;
        if (i == 0)
            printf("service map over %" PRIu64 " entries: %zu nodes, %zu edges\n", ss.entries,
                   json_array_size(json_object_get(m, "nodes")), json_array_size(json_object_get(m, "edges")));
        json_decref(m);
    }
    qsort(t, 5, sizeof(double), cmp_double);
    printf("service map computation (CPU time): p50 %.1f ms, max %.1f ms\n", t[2], t[4]);
    kfl_free(all);
    free(text);
    st_jtape_free(&tape);
    st_store_close(store);
    (void)make_s;
    return 0;
}
