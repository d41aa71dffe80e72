/* HTTP/2 parser tests: nghttp against nghttpd (tests/captures/http2/record-http2.sh), the
 * h2c upgrade recorded by the HTTP/1 tests, then hand-made frames for resets, GOAWAY,
 * padding, limits and broken input. */
#include "h2_frames.h"
#include "replay_check.h"

#define E(arr, i) json_array_get(arr, i)
#define C2S ST_DIR_TO_SERVER
#define S2C ST_DIR_TO_CLIENT

static void test_concurrent(void)
{
    json_t *a = replay_checked("http2/concurrent.cap", NULL);
    if (a == NULL) return;
    /* nghttp -m 12 on two URIs: 24 streams, all open at once. */
    CHECK_INT(json_array_size(a), 24);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = E(a, i);
        bool ok = i < 12;
        CHECK_STR(JSTR(e, "protocol", "name"), "http2");
        CHECK_STR(JSTR(e, "protocol", "version"), "2");
        CHECK_INT(JINT(e, "http2", "streamId"), 13 + 2 * (long long)i);
        CHECK_STR(JSTR(e, "request", "method"), "GET");
        CHECK_STR(JSTR(e, "request", "path"), ok ? "/index.html" : "/missing");
        CHECK_STR(JSTR(e, "request", "url"), ok ? "/index.html?lang=en&q=a+b" : "/missing");
        /* the 1500-byte token: literal in the first request, an index into the
         * dynamic table (64 KiB announced) in the others */
        const char *tok = JSTR(e, "request", "headers", "x-request-token");
        CHECK(tok != NULL && strlen(tok) == 1500 && strspn(tok, "t") == 1500);
        CHECK_STR(JSTR(e, "request", "headers", "user-agent"), "sidetap-test");
        CHECK(jget(e, "request", "headers", ":path", NULL) == NULL); /* pseudo-headers are fields */
        CHECK_INT(JINT(e, "response", "status"), ok ? 200 : 404);
        CHECK_STR(JSTR(e, "response", "headers", "server"), "nghttpd nghttp2/1.52.0");
        CHECK_INT(JINT(e, "response", "body", "size"), ok ? 75 : 148);
        CHECK(jget(e, "error", NULL) == NULL);
        CHECK_STR(JSTR(e, "summary"), ok ? "GET /index.html" : "GET /missing");
    }
    CHECK_STR(JSTR(E(a, 0), "request", "queryString", "lang"), "en");
    CHECK_STR(JSTR(E(a, 0), "request", "queryString", "q"), "a b");
    CHECK_STR(JSTR(E(a, 0), "response", "body", "data"),
              "<!doctype html>\n<link rel=\"stylesheet\" href=\"/style.css\">\n<h1>sidetap</h1>\n");
    CHECK_STR(JSTR(E(a, 0), "response", "headers", "content-type"), "text/html");
    /* the first request carries the token literally; later ones index it */
    CHECK(JINT(E(a, 0), "request", "bytes") > 1000);
    CHECK(JINT(E(a, 1), "request", "bytes") < 100);
    json_decref(a);
}

static void test_upload_trailers(void)
{
    json_t *a = replay_checked("http2/upload-trailers.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 1);
    json_t *e = E(a, 0);
    CHECK_STR(JSTR(e, "summary"), "POST /echo");
    CHECK_INT(JINT(e, "request", "body", "size"), 17500);
    CHECK(strncmp(JSTR(e, "request", "body", "data") ?: "", "line 00000 of the upload\nline 00001", 35) == 0);
    /* --continuation: the request headers spread over CONTINUATION frames */
    CHECK(JSTR(e, "request", "headers", "continuation-test-1") != NULL);
    CHECK_INT(JINT(e, "response", "status"), 200);
    CHECK_INT(JINT(e, "response", "body", "size"), 17500);
    CHECK(!JTRUE(e, "response", "body", "truncated"));
    /* trailers are merged into the response headers */
    CHECK_STR(JSTR(e, "response", "headers", "x-checksum"), "8d3f");
    CHECK_STR(JSTR(e, "response", "headers", "x-served-by"), "nghttpd");
    CHECK_STR(JSTR(e, "response", "headers", "content-length"), "17500");
    CHECK(jget(e, "error", NULL) == NULL);
    json_decref(a);
}

static void test_push(void)
{
    json_t *a = replay_checked("http2/push.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(E(a, 0), "summary"), "GET /index.html");
    CHECK_STR(JSTR(E(a, 1), "summary"), "GET /style.css");
    CHECK(JTRUE(E(a, 1), "http2", "pushed"));
    CHECK_INT(JINT(E(a, 1), "http2", "streamId"), 2);
    CHECK_STR(JSTR(E(a, 1), "response", "body", "data"), "h1 { color: teal; }\n");
    json_decref(a);
}

static void test_upgrade(void)
{
    /* curl --http2 against a backend that accepts the upgrade (HTTP/1 tests' capture):
     * the upgrade request is stream 1, answered over HTTP/2. */
    json_t *a = replay_checked("http1/h2c-upgrade.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 1);
    json_t *e = E(a, 0);
    CHECK_STR(JSTR(e, "protocol", "name"), "http2");
    CHECK_STR(JSTR(e, "request", "method"), "GET");
    CHECK_STR(JSTR(e, "request", "path"), "/h2c");
    CHECK_INT(JINT(e, "http2", "streamId"), 1);
    CHECK_INT(JINT(e, "response", "status"), 200);
    CHECK_STR(JSTR(e, "response", "body", "data"), "hello over h2c\n");
    CHECK(jget(e, "error", NULL) == NULL);
    json_decref(a);
}

/* ---- hand-made frames ---- */

struct conv {
    nghttp2_hd_deflater *cd, *sd; /* client's and server's encoders */
    struct h2buf c, s;
};

static void conv_init(struct conv *v)
{
    memset(v, 0, sizeof(*v));
    nghttp2_hd_deflate_new(&v->cd, 4096);
    nghttp2_hd_deflate_new(&v->sd, 4096);
    h2b_put(&v->c, H2_PREFACE, 24);
    h2b_frame(&v->c, 4, 0, 0, NULL, 0);
}

static void conv_free(struct conv *v)
{
    nghttp2_hd_deflate_del(v->cd);
    nghttp2_hd_deflate_del(v->sd);
    free(v->c.p);
    free(v->s.p);
}

static const char *const get_a[] = {":method", "GET", ":scheme", "http", ":path", "/a",
                                    ":authority", "svc:8080", "authorization", "Bearer s3cret", NULL};
static const char *const get_b[] = {":method", "GET", ":scheme", "http", ":path", "/b",
                                    ":authority", "svc:8080", NULL};
static const char *const ok200[] = {":status", "200", "content-type", "text/plain", NULL};

static void test_reset_goaway(void)
{
    struct conv v;
    conv_init(&v);
    h2b_headers(&v.c, v.cd, 1, 1, get_a);
    h2b_headers(&v.c, v.cd, 1, 3, get_b);
    h2b_headers(&v.c, v.cd, 1, 5, get_b);
    uint8_t cancel[4] = {0, 0, 0, 8};
    h2b_frame(&v.c, 3, 0, 3, cancel, 4); /* the client cancels stream 3 */
    struct h2buf s = {0};
    h2b_headers(&s, v.sd, 0, 1, ok200);
    /* DATA with PADDED: pad length 4, "hi", 4 bytes of padding */
    uint8_t padded[] = {4, 'h', 'i', 0, 0, 0, 0};
    h2b_frame(&s, 0, 0x8 | 0x1, 1, padded, sizeof(padded));
    uint8_t goaway[8] = {0, 0, 0, 1, 0, 0, 0, 0}; /* last stream 1: stream 5 is dropped */
    h2b_frame(&s, 7, 0, 0, goaway, 8);
    struct feed_step st[] = {{C2S, v.c.p, v.c.len}, {S2C, s.p, s.len}};
    json_t *a = run_steps(st, 2, NULL, 80);
    CHECK_INT(json_array_size(a), 3);
    CHECK_STR(JSTR(E(a, 0), "summary"), "GET /b");
    CHECK_STR(JSTR(E(a, 0), "error", "message"), "stream reset: CANCEL");
    CHECK_INT(JINT(E(a, 0), "http2", "streamId"), 3);
    CHECK_STR(JSTR(E(a, 1), "summary"), "GET /a");
    CHECK_STR(JSTR(E(a, 1), "request", "headers", "authorization"), "[REDACTED]");
    CHECK_STR(JSTR(E(a, 1), "http2", "authority"), "svc:8080");
    CHECK_STR(JSTR(E(a, 1), "response", "body", "data"), "hi");
    CHECK_INT(JINT(E(a, 1), "response", "bytes"), (long long)(s.len - 17 /* GOAWAY */));
    CHECK(jget(E(a, 1), "error", NULL) == NULL);
    CHECK_INT(JINT(E(a, 2), "http2", "streamId"), 5);
    CHECK_STR(JSTR(E(a, 2), "error", "message"), "connection going away (GOAWAY NO_ERROR, last stream 1)");
    json_decref(a);
    free(s.p);
    conv_free(&v);
}

static void test_priority_informational_open(void)
{
    struct conv v;
    conv_init(&v);
    /* HEADERS with PADDED and PRIORITY, then a 100 Continue, then no final response. */
    uint8_t block[512];
    size_t n = h2_encode(v.cd, block, sizeof(block), get_a);
    uint8_t payload[600];
    payload[0] = 3; /* pad length */
    memcpy(payload + 1, "\x80\x00\x00\x00\x10", 5); /* exclusive dependency on 0, weight 17 */
    memcpy(payload + 6, block, n);
    memset(payload + 6 + n, 0, 3);
    h2b_frame(&v.c, 1, 0x4 | 0x8 | 0x20, 1, payload, 6 + n + 3);
    static const char *const cont[] = {":status", "100", NULL};
    struct h2buf s = {0};
    h2b_headers(&s, v.sd, 0, 1, cont);
    struct feed_step st[] = {{C2S, v.c.p, v.c.len}, {S2C, s.p, s.len}};
    json_t *a = run_steps(st, 2, NULL, 80);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(JSTR(E(a, 0), "request", "path"), "/a");
    CHECK(jget(E(a, 0), "response", NULL) == NULL); /* 1xx is not the response */
    CHECK_STR(JSTR(E(a, 0), "error", "message"), "connection closed before the response");
    json_decref(a);
    free(s.p);
    conv_free(&v);
}

static void test_broken(void)
{
    /* Unknown frame types are skipped; a SETTINGS frame of a bad size is an error. */
    struct conv v;
    conv_init(&v);
    h2b_frame(&v.c, 0xfa, 0, 0, "whatever", 8);
    h2b_frame(&v.c, 4, 0, 0, "\x00\x01\x00\x00\x10", 5);
    struct feed_step b1[] = {{C2S, v.c.p, v.c.len}};
    json_t *a = run_steps(b1, 1, NULL, 80);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(JSTR(E(a, 0), "error", "message"),
              "parse error: http2: SETTINGS length 5 is not a multiple of 6");
    json_decref(a);
    conv_free(&v);

    /* A header block that is not HPACK. */
    conv_init(&v);
    h2b_frame(&v.c, 1, 0x5, 1, "\xff\xff\xff\xff\xff", 5);
    struct feed_step b2[] = {{C2S, v.c.p, v.c.len}};
    a = run_steps(b2, 1, NULL, 80);
    CHECK_INT(json_array_size(a), 1);
    CHECK(strncmp(JSTR(E(a, 0), "error", "message") ?: "", "parse error: http2: HPACK decoding failed on stream 1", 53) == 0);
    json_decref(a);
    conv_free(&v);

    /* CONTINUATION flood: a header block that never ends. */
    conv_init(&v);
    h2b_frame(&v.c, 1, 0, 1, "\x82", 1);
    uint8_t junk[1000];
    memset(junk, 0x82, sizeof(junk)); /* :method GET, over and over */
    for (int i = 0; i < 80; i++) h2b_frame(&v.c, 9, 0, 1, junk, sizeof(junk));
    struct feed_step b3[] = {{C2S, v.c.p, v.c.len}};
    a = run_steps(b3, 1, NULL, 80);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(JSTR(E(a, 0), "error", "message"),
              "parse error: http2: header block of stream 1 larger than 65536 bytes");
    json_decref(a);
    conv_free(&v);

    /* Another frame in the middle of a header block. */
    conv_init(&v);
    h2b_frame(&v.c, 1, 0, 1, "\x82", 1);
    h2b_frame(&v.c, 0, 1, 1, "x", 1);
    struct feed_step b4[] = {{C2S, v.c.p, v.c.len}};
    a = run_steps(b4, 1, NULL, 80);
    CHECK_STR(JSTR(E(a, 0), "error", "message"),
              "parse error: http2: DATA frame inside a header block of stream 1");
    json_decref(a);
    conv_free(&v);

    /* Padding longer than the frame. */
    conv_init(&v);
    h2b_headers(&v.c, v.cd, 0, 1, get_b);
    h2b_frame(&v.c, 0, 0x8, 1, "\x09xy", 3);
    struct feed_step b5[] = {{C2S, v.c.p, v.c.len}};
    a = run_steps(b5, 1, NULL, 80);
    CHECK_STR(JSTR(E(a, 0), "error", "message"),
              "parse error: http2: DATA frame of 3 bytes with 9 bytes of padding");
    json_decref(a);
    conv_free(&v);
}

static void test_many_streams(void)
{
    /* 600 streams opened and never answered: the parser keeps a bounded number. */
    struct conv v;
    conv_init(&v);
    for (uint32_t id = 1; id < 1200; id += 2) h2b_headers(&v.c, v.cd, 1, id, get_b);
    struct feed_step st[] = {{C2S, v.c.p, v.c.len}};
    struct st_parse_stats stats;
    memset(&stats, 0, sizeof(stats));
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.stats = &stats;
    json_t *a = run_steps(st, 1, &cfg, 80);
    size_t n = json_array_size(a);
    CHECK(n >= 50 && n <= 256);
    CHECK_INT(JINT(E(a, 0), "http2", "streamId"), 1);
    /* The others are counted as lost, by the bound that refused them (twice: run_steps
     * feeds whole chunks and single bytes). */
    CHECK_INT(stats.dropped[ST_LIMIT_PENDING] + stats.dropped[ST_LIMIT_CONN_MEMORY], 2 * (600 - n));
    CHECK_INT(stats.dropped[n == 256 ? ST_LIMIT_CONN_MEMORY : ST_LIMIT_PENDING], 0);
    json_decref(a);

    /* With memory to spare, the stream bound (256 open streams) applies. */
    memset(&stats, 0, sizeof(stats));
    cfg.conn_mem_max = 0;
    a = run_steps(st, 1, &cfg, 80);
    CHECK_INT(json_array_size(a), 256);
    CHECK_INT(stats.dropped[ST_LIMIT_PENDING], 2 * (600 - 256));
    json_decref(a);
    conv_free(&v);
}

static void test_table_size(void)
{
    /* The client advertises a 128 KiB HPACK table; the server's encoder uses it (a table
     * size update at the start of its next block) and fills it with a 100 KiB entry. */
    struct conv v;
    memset(&v, 0, sizeof(v));
    nghttp2_hd_deflate_new(&v.cd, 4096);
    nghttp2_hd_deflate_new(&v.sd, 131072); /* the most this encoder may use */
    h2b_put(&v.c, H2_PREFACE, 24);
    uint8_t settings[6] = {0, 1, 0, 2, 0, 0}; /* HEADER_TABLE_SIZE = 131072 */
    h2b_frame(&v.c, 4, 0, 0, settings, 6);
    h2b_headers(&v.c, v.cd, 1, 1, get_b);
    h2b_headers(&v.c, v.cd, 1, 3, get_b);
    nghttp2_hd_deflate_change_table_size(v.sd, 131072);
    char *big = malloc(100 * 1024 + 1);
    memset(big, 'x', 100 * 1024);
    struct h2buf s = {0};
    /* A 40 KiB value (over CONTINUATION frames), then the same header again, indexed. */
    /* Three 30 KiB values on three streams, then the first again: it is still in the
     * table (and sent as a 1-byte index) only if the table is over 64 KiB. */
    big[30 * 1024] = '\0';
    char *big2 = strdup(big), *big3 = strdup(big);
    big2[0] = 'y';
    big3[0] = 'z';
    const char *const r1[] = {":status", "200", "x-big", big, NULL};
    const char *const r2[] = {":status", "200", "x-big2", big2, NULL};
    const char *const r3[] = {":status", "200", "x-big3", big3, NULL};
    h2b_headers(&v.c, v.cd, 1, 5, get_b);
    h2b_headers(&v.c, v.cd, 1, 7, get_b);
    h2b_headers(&s, v.sd, 1, 1, r1);
    h2b_headers(&s, v.sd, 1, 3, r2);
    h2b_headers(&s, v.sd, 1, 5, r3);
    h2b_headers(&s, v.sd, 1, 7, r1);
    struct feed_step st[] = {{C2S, v.c.p, v.c.len}, {S2C, s.p, s.len}};
    json_t *a = run_steps(st, 2, NULL, 80);
    CHECK_INT(json_array_size(a), 4);
    for (size_t i = 0; i < 4; i++) {
        CHECK_INT(JINT(E(a, i), "response", "status"), 200);
        CHECK(jget(E(a, i), "error", NULL) == NULL);
    }
    CHECK(strcmp(JSTR(E(a, 0), "response", "headers", "x-big") ?: "", big) == 0);
    CHECK(strcmp(JSTR(E(a, 1), "response", "headers", "x-big2") ?: "", big2) == 0);
    CHECK(strcmp(JSTR(E(a, 2), "response", "headers", "x-big3") ?: "", big3) == 0);
    CHECK(strcmp(JSTR(E(a, 3), "response", "headers", "x-big") ?: "", big) == 0);
    CHECK(JINT(E(a, 3), "response", "bytes") < 64); /* indexed from the 128 KiB table */
    json_decref(a);
    free(s.p);

    /* An encoder that goes beyond what its peer advertised: a clear error. */
    s = (struct h2buf){0};
    nghttp2_hd_deflater *rogue;
    nghttp2_hd_deflate_new(&rogue, 1 << 20);
    nghttp2_hd_deflate_change_table_size(rogue, 1 << 20);
    h2b_headers(&s, rogue, 1, 1, ok200);
    struct conv w;
    conv_init(&w);
    h2b_headers(&w.c, w.cd, 1, 1, get_b);
    struct feed_step st2[] = {{C2S, w.c.p, w.c.len}, {S2C, s.p, s.len}};
    a = run_steps(st2, 2, NULL, 80);
    CHECK_INT(json_array_size(a), 1);
    CHECK(strncmp(JSTR(E(a, 0), "error", "message") ?: "",
                  "parse error: http2: HPACK decoding failed on stream 1", 53) == 0);
    json_decref(a);
    free(s.p);
    nghttp2_hd_deflate_del(rogue);
    conv_free(&w);
    free(big);
    free(big2);
    free(big3);
    conv_free(&v);
}

static void test_duplicate_promise(void)
{
    /* Two PUSH_PROMISEs for the same stream (found by fuzz_http2: the second leaked). */
    struct conv v;
    conv_init(&v);
    h2b_headers(&v.c, v.cd, 1, 1, get_a);
    struct h2buf s = {0};
    uint8_t block[512];
    static const char *const promised[] = {":method", "GET", ":scheme", "http", ":path", "/p",
                                           ":authority", "svc:8080", NULL};
    for (int i = 0; i < 2; i++) {
        uint8_t payload[600] = {0, 0, 0, 2};
        size_t n = h2_encode(v.sd, block, sizeof(block), promised);
        memcpy(payload + 4, block, n);
        h2b_frame(&s, 5, 0x4, 1, payload, 4 + n);
    }
    h2b_headers(&s, v.sd, 1, 2, ok200);
    h2b_headers(&s, v.sd, 1, 1, ok200);
    struct feed_step st[] = {{C2S, v.c.p, v.c.len}, {S2C, s.p, s.len}};
    json_t *a = run_steps(st, 2, NULL, 80);
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(E(a, 0), "summary"), "GET /p");
    CHECK(JTRUE(E(a, 0), "http2", "pushed"));
    CHECK_STR(JSTR(E(a, 1), "summary"), "GET /a");
    json_decref(a);
    free(s.p);
    conv_free(&v);
}

int main(int argc, char **argv)
{
    maybe_dump(argc, argv);
    test_concurrent();
    test_upload_trailers();
    test_push();
    test_upgrade();
    test_reset_goaway();
    test_priority_informational_open();
    test_broken();
    test_many_streams();
    test_table_size();
    test_duplicate_promise();
    return CHECK_DONE();
}
