/* bench_parsers - how fast the parsers library turns bytes into entries, on one core.
 *
 *   build/bench/parsers/bench_parsers [SECONDS_PER_CASE [FILTER]]   (default 0.5 s, all)
 *
 * FILTER runs only the cases whose name contains it ("http1/", "synthetic", "json").
 *
 * Cases: every capture tests/captures/PROTOCOL/NAME.cap (all protocols) replayed as recorded;
 * synthetic HTTP/1 traffic (many small pipelined request/response pairs; 60 KB bodies, all
 * captured; one 1 GiB body with Content-Length and one chunked, far beyond the capture cap,
 * where llhttp skips body bytes by length and they are only counted); and the cost of
 * JSON for the small-pair entries, which the proxy pays off the data path: the writer
 * (st_entry_json_write into a reused buffer, what the proxy runs) next to the jansson
 * tree + json_dump_callback it replaced (tests/lib/entry_oracle.h), for comparison. Entries are freed as they come, so
 * parsing figures exclude JSON. Every loop is bounded by a count and by time. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "entry_oracle.h"
#include "entry_json.h"
#include "parser.h"

static double seconds_per_case = 0.5;
static const char *filter;

static bool wanted(const char *name)
{
    return filter == NULL || strstr(name, filter) != NULL;
}

/* CPU time of this thread: the figures are per CPU-second of one core, so a busy machine
 * (other processes) skews them less than wall-clock time would. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct counter {
    uint64_t entries;
    uint64_t errors; /* entries with an error: a synthetic case must have none */
    size_t kept, keep_max; /* the JSON case keeps entries */
    struct st_entry **kept_list;
};

static void count_entry(struct st_entry *e, void *arg)
{
    struct counter *c = arg;
    c->entries++;
    if (e->error != NULL) c->errors++;
    if (c->kept < c->keep_max) c->kept_list[c->kept++] = e;
    else st_entry_free(e);
}

static struct st_conn *new_conn(uint16_t port, enum st_transport t, struct st_parse_config *cfg,
                                struct counter *ctr, enum st_proto guess)
{
    struct st_conn_info info = {.start_us = 1, .transport = t, .guess = guess};
    strcpy(info.client.ip, "10.0.0.1");
    info.client.port = 40000;
    strcpy(info.server.ip, "10.0.0.2");
    info.server.port = port;
    return st_conn_new(&info, cfg, count_entry, ctr);
}

static void report(const char *name, uint64_t bytes, const struct counter *ctr, uint64_t rounds,
                   double secs)
{
    printf("%-34s %9.1f MB/s %12.0f entries/s %8llu rounds", name, (double)bytes / secs / 1e6,
           (double)ctr->entries / secs, (unsigned long long)rounds);
    if (ctr->errors) printf("  (%llu carry an error)", (unsigned long long)ctr->errors);
    printf("\n");
}

/* --- captures --- */

static void bench_capture(const char *dir, const char *file)
{
    char rel[600], name[600];
    snprintf(rel, sizeof(rel), "%s/%s", dir, file);
    snprintf(name, sizeof(name), "%s", rel);
    if (!wanted(name)) return;
    struct st_capture cap;
    if (st_capture_load(st_capture_path(rel), &cap) < 0) return;
    uint64_t per_round = 0;
    for (size_t i = 0; i < cap.count; i++) per_round += cap.chunks[i].len;
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct counter ctr = {0};
    uint64_t rounds = 0;
    double t0 = now_s(), t = t0;
    while (rounds < 10000000 && t - t0 < seconds_per_case) {
        for (int k = 0; k < 64; k++, rounds++) {
            struct st_conn *c = new_conn(cap.server_port, cap.transport, &cfg, &ctr, ST_PROTO_UNKNOWN);
            uint64_t last = 1;
            for (size_t i = 0; i < cap.count; i++) {
                st_conn_feed(c, cap.chunks[i].dir, cap.chunks[i].data, cap.chunks[i].len,
                             cap.chunks[i].ts_us);
                last = cap.chunks[i].ts_us;
            }
            st_conn_close(c, ST_CLOSE_FIN, last);
            st_conn_free(c);
        }
        t = now_s();
    }
    report(name, per_round * rounds, &ctr, rounds, t - t0);
    st_capture_free(&cap);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every tests/captures/<protocol>/<name>.cap, in name order. */
static void bench_captures(void)
{
    char root[4096];
    snprintf(root, sizeof(root), "%s", st_capture_path(""));
    DIR *d = opendir(root);
    if (d == NULL) {
        printf("no captures under %s\n", root);
        return;
    }
    char *dirs[64];
    size_t nd = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && nd < 64)
        if (de->d_name[0] != '.' && de->d_type == DT_DIR) dirs[nd++] = strdup(de->d_name);
    closedir(d);
    qsort(dirs, nd, sizeof(dirs[0]), by_name);
    for (size_t i = 0; i < nd; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s%s", root, dirs[i]);
        DIR *sd = opendir(path);
        char *files[256];
        size_t nf = 0;
        while (sd && (de = readdir(sd)) != NULL && nf < 256) {
            size_t l = strlen(de->d_name);
            if (l > 4 && strcmp(de->d_name + l - 4, ".cap") == 0) files[nf++] = strdup(de->d_name);
        }
        if (sd) closedir(sd);
        qsort(files, nf, sizeof(files[0]), by_name);
        for (size_t j = 0; j < nf; j++) {
            bench_capture(dirs[i], files[j]);
            free(files[j]);
        }
        free(dirs[i]);
    }
}

/* --- synthetic HTTP/1 --- */

struct buf {
    char *data;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

#define PAIRS 1000
#define CHUNK 4096

/* PAIRS small requests and responses, typical of service-to-service calls. */
static void make_small_pairs(struct buf *req, struct buf *resp)
{
    for (int i = 0; i < PAIRS; i++) {
        char r[512];
        int n = snprintf(r, sizeof(r),
                         "GET /details/%d?lang=en HTTP/1.1\r\nHost: details:9080\r\n"
                         "User-Agent: python-requests/2.31\r\nAccept: */*\r\n"
                         "X-Request-Id: 9f1c2b7e-%08d\r\n\r\n",
                         i, i);
        buf_add(req, r, (size_t)n);
        const char *body = "{\"id\":0,\"author\":\"William Shakespeare\",\"year\":1595}";
        n = snprintf(r, sizeof(r),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Date: Wed, 25 Nov 2026 14:00:00 GMT\r\nServer: envoy\r\n\r\n%s",
                     strlen(body), body);
        buf_add(resp, r, (size_t)n);
    }
}

/* Feeds both directions in CHUNK-sized pieces, alternating, as a pipelining client and
 * its server would arrive. */
static void feed_pairs(struct st_conn *c, const struct buf *req, const struct buf *resp)
{
    size_t ro = 0, so = 0;
    uint64_t t = 2;
    while (ro < req->len || so < resp->len) {
        if (ro < req->len) {
            size_t n = req->len - ro < CHUNK ? req->len - ro : CHUNK;
            st_conn_feed(c, ST_DIR_TO_SERVER, (const uint8_t *)req->data + ro, n, t++);
            ro += n;
        }
        /* The server never runs ahead of the client. */
        size_t limit = (size_t)((double)ro / (double)req->len * (double)resp->len);
        while (so < limit) {
            size_t n = limit - so < CHUNK ? limit - so : CHUNK;
            st_conn_feed(c, ST_DIR_TO_CLIENT, (const uint8_t *)resp->data + so, n, t++);
            so += n;
        }
    }
}

static void bench_small_pairs(const struct buf *req, const struct buf *resp)
{
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct counter ctr = {0};
    uint64_t rounds = 0;
    double t0 = now_s(), t = t0;
    while (rounds < 100000 && t - t0 < seconds_per_case * 2) {
        struct st_conn *c = new_conn(80, ST_TRANSPORT_TCP, &cfg, &ctr, ST_PROTO_UNKNOWN);
        feed_pairs(c, req, resp);
        st_conn_close(c, ST_CLOSE_FIN, 1);
        st_conn_free(c);
        rounds++;
        t = now_s();
    }
    report("synthetic: small pairs (1000/conn)", (req->len + resp->len) * rounds, &ctr,
           rounds, t - t0);
    printf("  -> %.2f M request/response pairs per second (%zu + %zu bytes per pair)\n",
           (double)ctr.entries / (t - t0) / 1e6, req->len / PAIRS, resp->len / PAIRS);
}

/* One response whose body is `total` bytes (Content-Length or chunked), far beyond the
 * capture cap, so beyond 64 KiB the body is only counted. */
static void bench_large_body(bool chunked)
{
    const uint64_t total = 1ull << 30;
    const size_t piece = 64 * 1024;
    char *body = malloc(piece + 32);
    memset(body, 'x', piece + 32);
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct counter ctr = {0};
    static const char req[] = "GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
    char head[256];
    int hn = chunked ? snprintf(head, sizeof(head),
                                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                     : snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
                                (unsigned long long)total);
    /* chunked: each feed is one chunk "10000\r\n<64 KiB>\r\n" */
    char *chunk_buf = malloc(piece + 16);
    int ch = snprintf(chunk_buf, 16, "%zx\r\n", piece);
    memcpy(chunk_buf + ch, body, piece);
    memcpy(chunk_buf + ch + piece, "\r\n", 2);
    size_t chunk_len = (size_t)ch + piece + 2;

    uint64_t bytes = 0, rounds = 0;
    double t0 = now_s(), t = t0;
    while (rounds < 1000 && t - t0 < seconds_per_case * 2) {
        struct st_conn *c = new_conn(80, ST_TRANSPORT_TCP, &cfg, &ctr, ST_PROTO_UNKNOWN);
        st_conn_feed(c, ST_DIR_TO_SERVER, (const uint8_t *)req, sizeof(req) - 1, 2);
        st_conn_feed(c, ST_DIR_TO_CLIENT, (const uint8_t *)head, (size_t)hn, 3);
        bytes += sizeof(req) - 1 + (size_t)hn;
        for (uint64_t sent = 0; sent < total; sent += piece) {
            if (chunked) {
                st_conn_feed(c, ST_DIR_TO_CLIENT, (const uint8_t *)chunk_buf, chunk_len, 4);
                bytes += chunk_len;
            } else {
                st_conn_feed(c, ST_DIR_TO_CLIENT, (const uint8_t *)body, piece, 4);
                bytes += piece;
            }
        }
        if (chunked) {
            st_conn_feed(c, ST_DIR_TO_CLIENT, (const uint8_t *)"0\r\n\r\n", 5, 5);
            bytes += 5;
        }
        st_conn_close(c, ST_CLOSE_FIN, 6);
        st_conn_free(c);
        rounds++;
        t = now_s();
    }
    report(chunked ? "synthetic: 1 GiB chunked body" : "synthetic: 1 GiB body (length)", bytes,
           &ctr, rounds, t - t0);
    free(body);
    free(chunk_buf);
}

/* Responses of 60 000 bytes, under the 64 KiB cap: every body byte is copied into the
 * capture (the costly case below the cap). */
static void bench_captured_bodies(void)
{
    struct buf req = {0}, resp = {0};
    char *body = malloc(60000);
    memset(body, 'y', 60000);
    for (int i = 0; i < 100; i++) {
        char r[256];
        int n = snprintf(r, sizeof(r), "GET /blob/%03d HTTP/1.1\r\nHost: blobs\r\n\r\n", i);
        buf_add(&req, r, (size_t)n);
        n = snprintf(r, sizeof(r), "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                   "Content-Length: 60000\r\n\r\n");
        buf_add(&resp, r, (size_t)n);
        buf_add(&resp, body, 60000);
    }
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct counter ctr = {0};
    uint64_t rounds = 0;
    double t0 = now_s(), t = t0;
    while (rounds < 100000 && t - t0 < seconds_per_case * 2) {
        struct st_conn *c = new_conn(80, ST_TRANSPORT_TCP, &cfg, &ctr, ST_PROTO_UNKNOWN);
        /* One request, then its response in 16 KiB reads, like a relay sees them. */
        size_t ro = 0, so = 0, per_req = req.len / 100, per_resp = resp.len / 100;
        for (int i = 0; i < 100; i++) {
            st_conn_feed(c, ST_DIR_TO_SERVER, (const uint8_t *)req.data + ro, per_req, 2);
            ro += per_req;
            for (size_t end = so + per_resp; so < end;) {
                size_t n = end - so < 16384 ? end - so : 16384;
                st_conn_feed(c, ST_DIR_TO_CLIENT, (const uint8_t *)resp.data + so, n, 3);
                so += n;
            }
        }
        st_conn_close(c, ST_CLOSE_FIN, 4);
        st_conn_free(c);
        rounds++;
        t = now_s();
    }
    report("synthetic: 60 KB bodies, captured", (req.len + resp.len) * rounds, &ctr, rounds,
           t - t0);
    free(body);
    free(req.data);
    free(resp.data);
}

/* --- JSON --- */

struct sink {
    char *data;
    size_t len, cap;
};

static int sink_add(const char *buffer, size_t size, void *data)
{
    struct sink *s = data;
    if (s->len + size > s->cap) {
        s->cap = (s->len + size) * 2;
        s->data = realloc(s->data, s->cap);
        if (s->data == NULL) return -1;
    }
    memcpy(s->data + s->len, buffer, size);
    s->len += size;
    return 0;
}

static void bench_json(const struct buf *req, const struct buf *resp, bool tree)
{
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct st_entry *list[PAIRS];
    struct counter ctr = {.keep_max = PAIRS, .kept_list = list};
    struct st_conn *c = new_conn(80, ST_TRANSPORT_TCP, &cfg, &ctr, ST_PROTO_UNKNOWN);
    feed_pairs(c, req, resp);
    st_conn_close(c, ST_CLOSE_FIN, 1);
    st_conn_free(c);

    struct sink sink = {0};
    struct st_json_buf out = {0};
    struct st_json_context ctx = {.id = "1042", .outgoing = true, .reporter_node = "node-1"};
    uint64_t done = 0, bytes = 0;
    double t0 = now_s(), t = t0;
    while (done < 10000000 && t - t0 < seconds_per_case * 2) {
        for (size_t i = 0; i < ctr.kept; i++) {
            if (tree) {
                json_t *j = oracle_entry_json(list[i], &ctx);
                sink.len = 0;
                json_dump_callback(j, sink_add, &sink, JSON_COMPACT);
                bytes += sink.len;
                json_decref(j);
            } else {
                out.len = 0;
                st_entry_json_write(&out, list[i], &ctx);
                bytes += out.len;
            }
        }
        done += ctr.kept;
        t = now_s();
    }
    double secs = t - t0;
    printf("%-34s %9.1f MB/s %12.0f entries/s %6.0f ns/entry (%.0f bytes per entry)\n",
           tree ? "json: small pairs, jansson tree" : "json: small pairs, writer",
           (double)bytes / secs / 1e6, (double)done / secs, done ? secs * 1e9 / (double)done : 0.0,
           done ? (double)bytes / (double)done : 0.0);
    for (size_t i = 0; i < ctr.kept; i++) st_entry_free(list[i]);
    free(sink.data);
    st_json_buf_free(&out);
}

int main(int argc, char **argv)
{
    if (argc > 1) seconds_per_case = atof(argv[1]);
    if (seconds_per_case <= 0 || seconds_per_case > 60) seconds_per_case = 0.5;
    if (argc > 2) filter = argv[2];
    printf("%-34s %14s %22s   (per CPU-second of one core)\n", "case", "throughput", "entries");
    bench_captures();
    struct buf req = {0}, resp = {0};
    make_small_pairs(&req, &resp);
    if (wanted("synthetic: small pairs")) bench_small_pairs(&req, &resp);
    if (wanted("synthetic: captured bodies")) bench_captured_bodies();
    if (wanted("synthetic: large body")) bench_large_body(false);
    if (wanted("synthetic: large chunked body")) bench_large_body(true);
    if (wanted("json: small pairs, writer")) bench_json(&req, &resp, false);
    if (wanted("json: small pairs, jansson tree")) bench_json(&req, &resp, true);
    free(req.data);
    free(resp.data);
    return 0;
}
