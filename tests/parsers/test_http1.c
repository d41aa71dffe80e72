/* HTTP/1 parser (parsers/http1.c): synthetic conversations with exact field asserts, and
 * every capture under tests/captures/http1/ replayed in recorded, 1-byte and random
 * chunking, which must all give the same entries. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "check.h"
#include "entry_json.h"
#include "parser.h"

/* One chunk of a conversation: direction, bytes (len 0 = strlen), time. */
struct step {
    enum st_dir dir;
    const char *data;
    size_t len;
    uint64_t t;
};

#define C2S(s, t) {ST_DIR_TO_SERVER, s, 0, t}
#define S2C(s, t) {ST_DIR_TO_CLIENT, s, 0, t}

static void collect(struct st_entry *e, void *arg)
{
    json_array_append_new(arg, st_entry_to_json(e, NULL));
    st_entry_free(e);
}

static json_t *run(const struct step *steps, size_t n, const struct st_parse_config *cfg,
                   enum st_split split, unsigned seed, enum st_close_reason reason)
{
    struct st_parse_config defaults;
    if (cfg == NULL) {
        st_parse_config_init(&defaults);
        cfg = &defaults;
    }
    json_t *out = json_array();
    struct st_conn_info info = {.start_us = 1000000, .transport = ST_TRANSPORT_TCP};
    strcpy(info.client.ip, "10.0.0.1");
    info.client.port = 40000;
    strcpy(info.server.ip, "10.0.0.2");
    info.server.port = 8080;
    struct st_conn *c = st_conn_new(&info, cfg, collect, out);
    uint64_t last = info.start_us;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *d = (const uint8_t *)steps[i].data;
        size_t len = steps[i].len ? steps[i].len : strlen(steps[i].data);
        last = steps[i].t;
        size_t off = 0;
        while (off < len) {
            size_t k = len - off;
            if (split == ST_SPLIT_BYTE) k = 1;
            if (split == ST_SPLIT_RANDOM) {
                seed = seed * 1103515245u + 12345u;
                k = 1 + (seed >> 16) % 23;
                if (k > len - off) k = len - off;
            }
            st_conn_feed(c, steps[i].dir, d + off, k, steps[i].t);
            off += k;
        }
    }
    st_conn_close(c, reason, last + 1000);
    st_conn_free(c);
    return out;
}

/* Runs a conversation in every chunking; all must agree. Returns the recorded result. */
static json_t *run_all_cfg(const struct step *steps, size_t n, const struct st_parse_config *cfg,
                           enum st_close_reason reason, int line)
{
    json_t *want = run(steps, n, cfg, ST_SPLIT_RECORDED, 0, reason);
    json_t *other[6];
    other[0] = run(steps, n, cfg, ST_SPLIT_BYTE, 0, reason);
    for (unsigned i = 1; i < 6; i++) other[i] = run(steps, n, cfg, ST_SPLIT_RANDOM, i * 7919, reason);
    for (int i = 0; i < 6; i++) {
        if (!json_equal(want, other[i])) {
            char *a = json_dumps(want, JSON_COMPACT), *b = json_dumps(other[i], JSON_COMPACT);
            fprintf(stderr, "line %d: chunking %d differs:\n  %s\n  %s\n", line, i, a, b);
            free(a);
            free(b);
            check_failures++;
        }
        json_decref(other[i]);
    }
    return want;
}

#define RUN(steps) run_all_cfg(steps, sizeof(steps) / sizeof(steps[0]), NULL, ST_CLOSE_FIN, __LINE__)
#define RUN_CFG(steps, cfg, reason)                                                               \
    run_all_cfg(steps, sizeof(steps) / sizeof(steps[0]), cfg, reason, __LINE__)

/* "a.b.c" path lookup in a JSON value. */
static json_t *jget(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok(buf, "."); tok && j; tok = strtok(NULL, "."))
        j = json_is_array(j) ? json_array_get(j, strtoul(tok, NULL, 10)) : json_object_get(j, tok);
    return j;
}

#define JSTR(j, path) json_string_value(jget(j, path))
#define JINT(j, path) json_integer_value(jget(j, path))
#define JTRUE(j, path) json_is_true(jget(j, path))

static void test_simple_get(void)
{
    struct step s[] = {
        C2S("GET /details/0?lang=en&q=a+b%20c%26d&flag&=x HTTP/1.1\r\nHost: details:9080\r\n"
            "Authorization: Bearer secret\r\nCookie: a=b\r\nX-Empty:\r\nAccept: */*\r\n\r\n",
            2000000),
        S2C("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"
            "Set-Cookie: s=1\r\nVary: a\r\nVary: b\r\n\r\n{\"id\":0}",
            2002431),
    };
    json_t *a = RUN(s);
    CHECK_INT(json_array_size(a), 1);
    json_t *e = json_array_get(a, 0);
    CHECK_STR(JSTR(e, "protocol.name"), "http");
    CHECK_STR(JSTR(e, "protocol.version"), "1.1");
    CHECK_STR(JSTR(e, "request.method"), "GET");
    CHECK_STR(JSTR(e, "request.path"), "/details/0");
    CHECK_STR(JSTR(e, "request.url"), "/details/0?lang=en&q=a+b%20c%26d&flag&=x");
    CHECK_STR(JSTR(e, "request.queryString.lang"), "en");
    CHECK_STR(JSTR(e, "request.queryString.q"), "a b c&d");
    CHECK_STR(JSTR(e, "request.queryString.flag"), "");
    CHECK_STR(JSTR(e, "request.queryString."), NULL); /* strtok skips empty names */
    CHECK_INT(json_object_size(jget(e, "request.queryString")), 4);
    CHECK_STR(JSTR(e, "request.headers.Host"), "details:9080");
    CHECK_STR(JSTR(e, "request.headers.Authorization"), "[REDACTED]");
    CHECK_STR(JSTR(e, "request.headers.Cookie"), "[REDACTED]");
    CHECK_STR(JSTR(e, "request.headers.X-Empty"), "");
    CHECK_STR(JSTR(e, "request.headers.Accept"), "*/*");
    CHECK_INT(JINT(e, "request.body.size"), 0);
    CHECK_INT(JINT(e, "request.bytes"), strlen(s[0].data));
    CHECK_INT(JINT(e, "response.status"), 200);
    CHECK_STR(JSTR(e, "response.statusText"), "OK");
    CHECK_STR(JSTR(e, "response.headers.Set-Cookie"), "[REDACTED]");
    CHECK_STR(JSTR(e, "response.headers.Vary"), "a, b");
    CHECK_STR(JSTR(e, "response.headers.Content-Type"), "application/json");
    CHECK_INT(JINT(e, "response.body.size"), 8);
    CHECK(!JTRUE(e, "response.body.truncated"));
    CHECK_STR(JSTR(e, "response.body.encoding"), "text");
    CHECK_STR(JSTR(e, "response.body.data"), "{\"id\":0}");
    CHECK_INT(JINT(e, "response.bytes"), strlen(s[1].data));
    CHECK_STR(JSTR(e, "summary"), "GET /details/0");
    CHECK_INT(JINT(e, "timestamp"), 2000);
    CHECK(json_real_value(jget(e, "elapsedTime")) == 2.431);
    CHECK(jget(e, "error") == NULL);
    CHECK_INT(JINT(e, "seq"), 0);
    json_decref(a);
}

static void test_pipelined(void)
{
    struct step s[] = {
        C2S("GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"
            "hello\r\nHEAD /c HTTP/1.1\r\nHost: h\r\n\r\n",
            10),
        S2C("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nbb"
            "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            20),
        C2S("GET /d HTTP/1.1\r\nHost: h\r\n\r\n", 30),
        S2C("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!", 40),
    };
    json_t *a = RUN(s);
    CHECK_INT(json_array_size(a), 4);
    CHECK_STR(JSTR(a, "0.summary"), "GET /a");
    CHECK_STR(JSTR(a, "0.response.body.data"), "a");
    CHECK_STR(JSTR(a, "1.summary"), "POST /b");
    CHECK_STR(JSTR(a, "1.request.body.data"), "hello");
    CHECK_INT(JINT(a, "1.response.status"), 201);
    CHECK_STR(JSTR(a, "1.response.body.data"), "bb");
    /* The CRLF after the POST body belongs to the next message's bytes. */
    CHECK_INT(JINT(a, "1.request.bytes"), strlen("POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"));
    CHECK_STR(JSTR(a, "2.summary"), "HEAD /c");
    CHECK_INT(JINT(a, "2.response.status"), 200);
    CHECK_INT(JINT(a, "2.response.body.size"), 0);
    CHECK_STR(JSTR(a, "2.response.headers.Content-Length"), "1000");
    CHECK_INT(JINT(a, "3.response.status"), 404);
    CHECK_STR(JSTR(a, "3.response.statusText"), "Not Found");
    CHECK_STR(JSTR(a, "3.response.body.data"), "no!");
    for (int i = 0; i < 4; i++) {
        char p[16];
        snprintf(p, sizeof(p), "%d.seq", i);
        CHECK_INT(JINT(a, p), i);
    }
    CHECK_INT(JINT(a, "0.timestamp"), 0);
    CHECK_INT(JINT(a, "3.timestamp"), 0);
    json_decref(a);
}

static void test_chunked_and_gzip(void)
{
    static const char gz[] = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "4\r\n\x1f\x8b\x08\x00\r\n3;ext=1\r\n\x01\x02\x03\r\n0\r\nX-Trailer: t\r\n\r\n";
    struct step s[] = {
        C2S("GET /gz HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n", 10),
        {ST_DIR_TO_CLIENT, gz, sizeof(gz) - 1, 20},
        C2S("POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 30),
        S2C("HTTP/1.1 204 No Content\r\n\r\n", 40),
    };
    json_t *a = RUN(s);
    CHECK_INT(json_array_size(a), 2);
    CHECK_INT(JINT(a, "0.response.body.size"), 7);
    CHECK_STR(JSTR(a, "0.response.body.encoding"), "base64");
    CHECK_STR(JSTR(a, "0.response.body.data"), "H4sIAAECAw==");
    CHECK_STR(JSTR(a, "0.response.headers.Content-Encoding"), "gzip");
    CHECK_STR(JSTR(a, "0.response.headers.X-Trailer"), "t");
    CHECK_INT(JINT(a, "0.response.bytes"), sizeof(gz) - 1);
    CHECK_INT(JINT(a, "1.request.body.size"), 11);
    CHECK_STR(JSTR(a, "1.request.body.data"), "hello world");
    CHECK_INT(JINT(a, "1.response.status"), 204);
    CHECK(jget(a, "1.error") == NULL);
    json_decref(a);
}

static void test_continue_and_304(void)
{
    struct step s[] = {
        C2S("PUT /f HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", 10),
        S2C("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n", 20),
        C2S("data", 30),
        S2C("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40),
        C2S("GET /e HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n", 50),
        S2C("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n", 60),
    };
    json_t *a = RUN(s);
    CHECK_INT(json_array_size(a), 2);
    CHECK_INT(JINT(a, "0.response.status"), 200);
    CHECK_STR(JSTR(a, "0.request.body.data"), "data");
    CHECK_STR(JSTR(a, "0.response.body.data"), "ok");
    CHECK(jget(a, "0.response.headers.X-Interim") == NULL);
    CHECK_INT(JINT(a, "0.response.bytes"), strlen(s[1].data) + strlen(s[3].data));
    CHECK_INT(JINT(a, "1.response.status"), 304);
    CHECK_INT(JINT(a, "1.response.body.size"), 0);
    CHECK_STR(JSTR(a, "1.response.headers.ETag"), "\"x\"");
    json_decref(a);
}

static void test_http10_eof_and_close(void)
{
    struct step s[] = {
        C2S("GET /old HTTP/1.0\r\n\r\n", 10),
        S2C("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ", 20),
        S2C("part two", 30),
    };
    json_t *a = RUN(s);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(JSTR(a, "0.protocol.version"), "1.0");
    CHECK_STR(JSTR(a, "0.response.body.data"), "part one, part two");
    CHECK(jget(a, "0.error") == NULL);
    json_decref(a);

    /* The same cut by a reset: incomplete. */
    a = RUN_CFG(s, NULL, ST_CLOSE_RESET);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(JSTR(a, "0.error.message"), "response incomplete: connection reset");
    CHECK_INT(JINT(a, "0.response.status"), 200);
    json_decref(a);

    /* Connection: close, then a lenient peer keeps talking: still parsed. */
    struct step k[] = {
        C2S("GET /1 HTTP/1.1\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", 10),
        S2C("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 20),
    };
    a = RUN(k);
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(a, "0.request.headers.Connection"), "close");
    CHECK(jget(a, "0.error") == NULL);
    CHECK_STR(JSTR(a, "1.summary"), "GET /2");
    CHECK_STR(JSTR(a, "1.error.message"), "no response before close");
    CHECK(jget(a, "1.response") == NULL);
    json_decref(a);
}

static void test_unanswered(void)
{
    struct step s[] = {
        C2S("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n", 10),
        C2S("POST /half HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 20),
    };
    json_t *a = RUN_CFG(s, NULL, ST_CLOSE_RESET);
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(a, "0.error.message"), "no response: connection reset");
    CHECK_INT(JINT(a, "0.timestamp"), 0);
    CHECK(json_real_value(jget(a, "0.elapsedTime")) == 1.01); /* closed 1 ms after the last byte */
    CHECK_STR(JSTR(a, "1.error.message"), "request incomplete: connection reset");
    CHECK_INT(JINT(a, "1.request.body.size"), 3);
    json_decref(a);
    a = RUN_CFG(s, NULL, ST_CLOSE_TIMEOUT);
    CHECK_STR(JSTR(a, "0.error.message"), "no response: connection timed out");
    json_decref(a);
}

static void test_websocket(void)
{
    static const char frame_c[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    static const char frame_s[] = "\x81\x05Hello";
    struct step s[] = {
        C2S("GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            10),
        S2C("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05Hello",
            20),
        {ST_DIR_TO_SERVER, frame_c, sizeof(frame_c) - 1, 30},
        {ST_DIR_TO_CLIENT, frame_s, sizeof(frame_s) - 1, 40},
    };
    json_t *a = RUN(s);
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(a, "0.protocol.name"), "http");
    CHECK_INT(JINT(a, "0.response.status"), 101);
    CHECK_STR(JSTR(a, "0.response.statusText"), "Switching Protocols");
    CHECK_STR(JSTR(a, "0.request.headers.Upgrade"), "websocket");
    CHECK_STR(JSTR(a, "0.summary"), "GET /chat");
    CHECK_STR(JSTR(a, "1.protocol.name"), "tcp");
    CHECK_INT(JINT(a, "1.tcp.bytesToServer"), sizeof(frame_c) - 1);
    CHECK_INT(JINT(a, "1.tcp.bytesToClient"), 2 * (sizeof(frame_s) - 1));
    CHECK_INT(JINT(a, "1.seq"), 1);
    json_decref(a);
}

static void test_connect(void)
{
    struct step s[] = {
        C2S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 10),
        S2C("HTTP/1.1 200 Connection Established\r\n\r\n", 20),
        {ST_DIR_TO_SERVER, "\x16\x03\x01\x00\x05hello", 10, 30},
        {ST_DIR_TO_CLIENT, "\x16\x03\x03\x00\x02hi", 7, 40},
    };
    json_t *a = RUN(s);
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(a, "0.summary"), "CONNECT example.com:443");
    CHECK_STR(JSTR(a, "0.request.path"), "example.com:443");
    CHECK_INT(JINT(a, "0.response.status"), 200);
    CHECK_INT(JINT(a, "1.tcp.bytesToServer"), 10);
    CHECK_INT(JINT(a, "1.tcp.bytesToClient"), 7);
    json_decref(a);

    /* Refused CONNECT: HTTP/1 goes on with what the client sent meanwhile. */
    struct step r[] = {
        C2S("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 10),
        C2S("GET /next HTTP/1.1\r\n\r\n", 15),
        S2C("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20),
    };
    a = RUN(r);
    CHECK_INT(json_array_size(a), 2);
    CHECK_INT(JINT(a, "0.response.status"), 403);
    CHECK_STR(JSTR(a, "1.summary"), "GET /next");
    CHECK_INT(JINT(a, "1.response.status"), 200);
    json_decref(a);
}

static void test_h2c(void)
{
    /* 101, then the server's SETTINGS and HEADERS(stream 1, END_STREAM, ":status 200"). */
    static const char h2c_101[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                  "Upgrade: h2c\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                                  "\x00\x00\x01\x01\x05\x00\x00\x00\x01\x88";
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    struct step s[] = {
        C2S("GET /h2c?x=1 HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            10),
        {ST_DIR_TO_SERVER, preface, sizeof(preface) - 1, 15},
        {ST_DIR_TO_CLIENT, h2c_101, sizeof(h2c_101) - 1, 20},
    };
    json_t *a = RUN(s);
    /* No HTTP/1 entry for the upgrade: HTTP/2 completes it as stream 1. */
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(JSTR(a, "0.protocol.name"), "http2");
    CHECK_STR(JSTR(a, "0.request.method"), "GET");
    CHECK_STR(JSTR(a, "0.request.path"), "/h2c");
    CHECK_STR(JSTR(a, "0.request.queryString.x"), "1");
    CHECK_STR(JSTR(a, "0.request.headers.HTTP2-Settings"), "AAMAAABkAARAAAAAAAIAAAAA");
    CHECK_INT(JINT(a, "0.response.status"), 200);
    CHECK_INT(JINT(a, "0.timestamp"), 0);
    json_decref(a);

    /* HTTP/2 fails on the very bytes it is handed at the switch: the error entry comes
     * from HTTP/2, and both modules are freed (a switch inside a switch). */
    struct step bad[] = {s[0], C2S("NOT THE HTTP/2 CONNECTION PREFACE AT ALL\r\n\r\n", 15), s[2]};
    a = RUN(bad);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(JSTR(a, "0.error.message"), "parse error: http2: the client did not send the connection preface");
    json_decref(a);

    /* Declined: the server answers 200 over HTTP/1.1 and keeps going. */
    struct step d[] = {
        C2S("GET /h2c HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /two HTTP/1.1\r\n\r\n",
            10),
        S2C("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nh1HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2", 20),
    };
    a = RUN(d);
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(a, "0.protocol.name"), "http");
    json_t *declined = a;

    /* Refused before the upgrade request's body even ended. */
    struct step early[] = {
        C2S("POST /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\nab", 10),
        S2C("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 20),
        C2S("cdeGET /next HTTP/1.1\r\n\r\n", 30),
        S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 40),
    };
    a = RUN(early);
    CHECK_INT(json_array_size(a), 2);
    CHECK_INT(JINT(a, "0.response.status"), 400);
    CHECK_STR(JSTR(a, "0.request.body.data"), "abcde");
    CHECK_STR(JSTR(a, "1.summary"), "GET /next");
    CHECK_INT(JINT(a, "1.response.status"), 200);
    json_decref(a);
    a = declined;
    CHECK_STR(JSTR(a, "0.response.body.data"), "h1");
    CHECK_STR(JSTR(a, "1.summary"), "GET /two");
    CHECK_STR(JSTR(a, "1.response.body.data"), "2");
    json_decref(a);
}

static void test_body_cap(void)
{
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.body_cap = 10;
    struct step s[] = {
        C2S("POST /big HTTP/1.1\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz", 10),
        S2C("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n", 20),
    };
    json_t *a = RUN_CFG(s, &cfg, ST_CLOSE_FIN);
    CHECK_INT(JINT(a, "0.request.body.size"), 26);
    CHECK(JTRUE(a, "0.request.body.truncated"));
    CHECK_STR(JSTR(a, "0.request.body.data"), "abcdefghij");
    CHECK_INT(JINT(a, "0.response.body.size"), 16);
    CHECK_STR(JSTR(a, "0.response.body.data"), "0123456789");
    json_decref(a);

    cfg.capture_bodies = false;
    a = RUN_CFG(s, &cfg, ST_CLOSE_FIN);
    CHECK_INT(JINT(a, "0.request.body.size"), 26);
    CHECK_STR(JSTR(a, "0.request.body.data"), "");
    json_decref(a);
}

/* The error entry, and nothing after it. */
static void check_fails(json_t *a, size_t want_entries, const char *want_error)
{
    CHECK_INT(json_array_size(a), want_entries);
    if (json_array_size(a) != want_entries) {
        char *d = json_dumps(a, JSON_COMPACT);
        fprintf(stderr, "  entries: %.2000s\n", d);
        free(d);
    }
    json_t *last = json_array_get(a, json_array_size(a) - 1);
    const char *msg = JSTR(last, "error.message");
    CHECK(msg != NULL && strstr(msg, want_error) != NULL);
    if (msg == NULL || strstr(msg, want_error) == NULL)
        fprintf(stderr, "  error was \"%s\", want \"%s\"\n", msg ? msg : "(none)", want_error);
    CHECK_STR(JSTR(last, "summary"), "HTTP parse error");
}

static void test_errors(void)
{
    /* Garbage status line: the pending request is reported, then the error. */
    struct step s[] = {
        C2S("GET / HTTP/1.1\r\n\r\n", 10),
        S2C("HTTX/1.1 200 OK\r\n\r\n", 20),
        C2S("GET /after HTTP/1.1\r\n\r\n", 30),
        S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 40),
    };
    json_t *a = RUN(s);
    check_fails(a, 2, "parse error: HTTP/1 response at byte 3: HPE_INVALID_CONSTANT");
    CHECK_STR(JSTR(a, "0.error.message"), "no response parsed: response stream unparsable");
    json_decref(a);

    /* A response nobody asked for. */
    struct step r[] = {
        C2S("GET / HTTP/1.1\r\n\r\n", 10),
        S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20),
    };
    a = RUN(r);
    check_fails(a, 2, "response without a request");
    CHECK_INT(JINT(a, "0.response.status"), 200);
    CHECK(jget(a, "0.error") == NULL);
    json_decref(a);

    /* Malformed request after a good exchange. */
    struct step q[] = {
        C2S("GET /ok HTTP/1.1\r\n\r\n", 10),
        S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20),
        C2S("GET /x HTTP/1.1\r\nBad Header\r\n\r\n", 30),
        S2C("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 40),
    };
    a = RUN(q);
    check_fails(a, 2, "HTTP/1 request at byte 47: HPE_INVALID_HEADER_TOKEN");
    json_decref(a);

    /* Conflicting framing (smuggling shape) is an error. */
    struct step sm[] = {
        C2S("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 10),
    };
    a = RUN(sm);
    check_fails(a, 1, "HPE_UNEXPECTED_CONTENT_LENGTH");
    json_decref(a);
}

static void test_limits(void)
{
    /* A header block over 64 KiB. */
    size_t big = 70 * 1024;
    char *req = malloc(big + 100);
    int n = sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\n\r\n");
    struct step s[] = {C2S(req, 10)};
    json_t *a = run(s, 1, NULL, ST_SPLIT_RECORDED, 0, ST_CLOSE_FIN);
    check_fails(a, 1, "header block too large");
    json_decref(a);
    a = run(s, 1, NULL, ST_SPLIT_RANDOM, 5, ST_CLOSE_FIN);
    check_fails(a, 1, "header block too large");
    json_decref(a);

    /* Per-connection memory: a small conn_mem_max is hit by headers of pending requests. */
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.conn_mem_max = 4096;
    struct st_parse_stats stats;
    memset(&stats, 0, sizeof(stats));
    cfg.stats = &stats;
    memset(req, 0, big);
    strcpy(req, "GET /m HTTP/1.1\r\nX-A: ");
    memset(req + strlen(req), 'b', 1000);
    strcat(req, "\r\n\r\n");
    struct step m[] = {C2S(req, 10), C2S(req, 20), C2S(req, 30), C2S(req, 40), C2S(req, 50)};
    a = RUN_CFG(m, &cfg, ST_CLOSE_FIN);
    check_fails(a, 2, "connection memory limit exceeded");
    CHECK_STR(JSTR(a, "0.error.message"), "no response parsed: request stream unparsable");
    /* Per run (7 chunkings): the first request went out without its response, the second
     * was lost while being read; both counted. */
    CHECK_INT(stats.unanswered[ST_LIMIT_CONN_MEMORY], 7);
    CHECK_INT(stats.dropped[ST_LIMIT_CONN_MEMORY], 7);
    json_decref(a);
    memset(&stats, 0, sizeof(stats));
    /* ... which is not hit when responses keep the FIFO short. */
    struct step m2[] = {C2S(req, 10), S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 11),
                        C2S(req, 20), S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 21),
                        C2S(req, 30), S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 31),
                        C2S(req, 40), S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 41),
                        C2S(req, 50), S2C("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 51)};
    a = RUN_CFG(m2, &cfg, ST_CLOSE_FIN);
    CHECK_INT(json_array_size(a), 5);
    CHECK(jget(a, "4.error") == NULL);
    for (int w = 0; w < ST_LIMIT_COUNT; w++) CHECK_INT(stats.dropped[w] + stats.unanswered[w], 0);
    json_decref(a);
    free(req);

    /* Pipelined FIFO depth. */
    char many[65 * 20 + 1] = "";
    for (int i = 0; i < 65; i++) strcat(many, "GET /p HTTP/1.1\r\n\r\n");
    struct step p[] = {C2S(many, 10)};
    cfg.conn_mem_max = 256 * 1024;
    a = RUN_CFG(p, &cfg, ST_CLOSE_FIN);
    check_fails(a, 65, "too many requests waiting for a response");
    CHECK_STR(JSTR(a, "0.error.message"), "no response parsed: request stream unparsable");
    /* Per run: 64 made without their response, the 65th lost. */
    CHECK_INT(stats.unanswered[ST_LIMIT_PENDING], 7 * 64);
    CHECK_INT(stats.dropped[ST_LIMIT_PENDING], 7);
    CHECK_INT(stats.dropped[ST_LIMIT_CONN_MEMORY] + stats.dropped[ST_LIMIT_PARSE_STOPPED], 0);
    json_decref(a);
}

/* Every capture of tests/captures/http1 in every chunking gives the same entries. */
static json_t *replay_all(const char *name)
{
    char rel[512];
    snprintf(rel, sizeof(rel), "http1/%s", name);
    struct st_capture cap;
    if (st_capture_load(st_capture_path(rel), &cap) < 0) {
        check_failures++;
        return json_array();
    }
    json_t *want = st_capture_replay(&cap, NULL, ST_SPLIT_RECORDED, 0);
    for (unsigned i = 0; i < 5; i++) {
        json_t *got = st_capture_replay(&cap, NULL, i == 0 ? ST_SPLIT_BYTE : ST_SPLIT_RANDOM, i * 31337);
        if (!json_equal(want, got)) {
            fprintf(stderr, "%s: chunking %u differs from the recorded one\n", name, i);
            check_failures++;
        }
        json_decref(got);
    }
    st_capture_free(&cap);
    return want;
}

/* Exact fields of the recorded conversations (tests/captures/record-http1.sh). */
static void check_capture(const char *name, json_t *a)
{
    if (strcmp(name, "curl-keepalive.cap") == 0) {
        CHECK_INT(json_array_size(a), 4);
        CHECK_STR(JSTR(a, "0.summary"), "GET /");
        CHECK_STR(JSTR(a, "0.request.headers.Authorization"), "[REDACTED]");
        CHECK_STR(JSTR(a, "0.request.headers.Cookie"), "[REDACTED]");
        CHECK_STR(JSTR(a, "0.request.headers.User-Agent"), "curl/7.88.1");
        CHECK_STR(JSTR(a, "0.response.body.data"),
                  "<!doctype html>\n<title>sidetap</title>\n<p>Hello from nginx.</p>\n");
        CHECK_STR(JSTR(a, "1.request.url"), "/index.html?lang=en&q=a%20b+c");
        CHECK_STR(JSTR(a, "1.request.path"), "/index.html");
        CHECK_STR(JSTR(a, "1.request.queryString.q"), "a b c");
        CHECK_STR(JSTR(a, "1.request.queryString.lang"), "en");
        CHECK_INT(JINT(a, "2.response.status"), 404);
        CHECK_STR(JSTR(a, "2.response.statusText"), "Not Found");
        CHECK_INT(JINT(a, "2.response.body.size"), 153);
        CHECK_STR(JSTR(a, "3.response.headers.Set-Cookie"), "[REDACTED]");
        CHECK_STR(JSTR(a, "3.response.body.data"), "welcome\n");
        for (int i = 0; i < 4; i++) {
            char p[32];
            snprintf(p, sizeof(p), "%d.error", i);
            CHECK(jget(a, p) == NULL);
        }
    } else if (strcmp(name, "head-304.cap") == 0) {
        CHECK_INT(json_array_size(a), 2);
        CHECK_STR(JSTR(a, "0.summary"), "HEAD /index.html");
        CHECK_STR(JSTR(a, "0.response.headers.Content-Length"), "64");
        CHECK_INT(JINT(a, "0.response.body.size"), 0);
        CHECK_INT(JINT(a, "1.response.status"), 304);
        CHECK_STR(JSTR(a, "1.response.statusText"), "Not Modified");
        CHECK_STR(JSTR(a, "1.request.headers.If-None-Match"), JSTR(a, "1.response.headers.ETag"));
    } else if (strcmp(name, "gzip-chunked.cap") == 0) {
        CHECK_INT(json_array_size(a), 1);
        CHECK_STR(JSTR(a, "0.response.headers.Content-Encoding"), "gzip");
        CHECK_STR(JSTR(a, "0.response.headers.Transfer-Encoding"), "chunked");
        CHECK_STR(JSTR(a, "0.response.body.encoding"), "base64");
        const char *d = JSTR(a, "0.response.body.data");
        CHECK(d && strncmp(d, "H4sI", 4) == 0); /* 1f 8b 08: gzip as it was */
        CHECK(JINT(a, "0.response.body.size") > 500 && JINT(a, "0.response.body.size") < 2000);
        CHECK(JINT(a, "0.response.bytes") > JINT(a, "0.response.body.size"));
    } else if (strcmp(name, "chunked-post.cap") == 0) {
        CHECK_INT(json_array_size(a), 2);
        CHECK_STR(JSTR(a, "0.response.body.data"), "first chunk\nsecond, longer chunk\nthird\n");
        CHECK_INT(JINT(a, "0.response.body.size"), 39);
        CHECK_STR(JSTR(a, "1.summary"), "POST /api/echo");
        CHECK_STR(JSTR(a, "1.request.headers.Expect"), "100-continue");
        CHECK_INT(JINT(a, "1.response.status"), 200);
        CHECK_STR(JSTR(a, "1.request.body.data"), "{\"name\":\"sidetap\",\"tags\":[\"http\",\"test\"]}");
        CHECK_STR(JSTR(a, "1.response.body.data"), JSTR(a, "1.request.body.data"));
    } else if (strcmp(name, "post-upload.cap") == 0) {
        CHECK_INT(json_array_size(a), 1);
        CHECK_STR(JSTR(a, "0.request.queryString.name"), "upload.txt");
        CHECK_INT(JINT(a, "0.request.body.size"), 82600);
        CHECK(JTRUE(a, "0.request.body.truncated"));
        CHECK_INT(json_string_length(jget(a, "0.request.body.data")), 65536);
        CHECK_INT(JINT(a, "0.response.status"), 201);
        CHECK_STR(JSTR(a, "0.response.body.data"), "{\"received\":82600}");
    } else if (strcmp(name, "pipelined.cap") == 0) {
        CHECK_INT(json_array_size(a), 3);
        CHECK_STR(JSTR(a, "0.summary"), "GET /index.html");
        CHECK_STR(JSTR(a, "1.summary"), "HEAD /fox.txt");
        CHECK_INT(JINT(a, "1.response.body.size"), 0);
        CHECK_STR(JSTR(a, "2.summary"), "GET /missing");
        CHECK_STR(JSTR(a, "2.request.headers.Connection"), "close");
        CHECK_INT(JINT(a, "2.response.status"), 404);
        CHECK_INT(JINT(a, "0.request.bytes") + JINT(a, "1.request.bytes") + JINT(a, "2.request.bytes"),
                  45 + 43 + 65);
    } else if (strcmp(name, "wrk-pipeline.cap") == 0) {
        CHECK_INT(json_array_size(a), 12);
        for (int i = 0; i < 12; i++) {
            static const int want[] = {200, 404, 200};
            char p[32];
            snprintf(p, sizeof(p), "%d.response.status", i);
            CHECK_INT(JINT(a, p), want[i % 3]);
        }
    } else if (strcmp(name, "http10-eof.cap") == 0) {
        CHECK_INT(json_array_size(a), 1);
        CHECK_STR(JSTR(a, "0.protocol.version"), "1.0");
        CHECK_STR(JSTR(a, "0.response.body.data"),
                  "an HTTP/1.0 body that ends when the connection closes\n");
        CHECK(jget(a, "0.error") == NULL);
    } else if (strcmp(name, "websocket.cap") == 0) {
        CHECK_INT(json_array_size(a), 2);
        CHECK_INT(JINT(a, "0.response.status"), 101);
        CHECK_STR(JSTR(a, "0.response.headers.Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        CHECK_STR(JSTR(a, "1.protocol.name"), "tcp");
        CHECK_INT(JINT(a, "1.tcp.bytesToServer"), 19 + 8);
        CHECK_INT(JINT(a, "1.tcp.bytesToClient"), 21 + 4);
    } else if (strcmp(name, "h2c-upgrade.cap") == 0) {
        /* No HTTP/1 entry: the upgrade request is HTTP/2 stream 1, answered over HTTP/2. */
        CHECK_INT(json_array_size(a), 1);
        CHECK_STR(JSTR(a, "0.protocol.name"), "http2");
        CHECK_STR(JSTR(a, "0.summary"), "GET /h2c");
        CHECK_STR(JSTR(a, "0.request.url"), "/h2c?via=upgrade");
        CHECK_STR(JSTR(a, "0.request.queryString.via"), "upgrade");
        CHECK_STR(JSTR(a, "0.request.headers.Upgrade"), "h2c");
        CHECK_INT(JINT(a, "0.request.bytes"), 187);
        CHECK_INT(JINT(a, "0.response.status"), 200);
        CHECK_STR(JSTR(a, "0.response.body.data"), "hello over h2c\n");
        CHECK_INT(JINT(a, "0.http2.streamId"), 1);
        CHECK(jget(a, "0.error") == NULL);
    } else if (strcmp(name, "h2c-declined.cap") == 0) {
        CHECK_INT(json_array_size(a), 2);
        CHECK_STR(JSTR(a, "0.request.headers.Upgrade"), "h2c");
        CHECK_INT(JINT(a, "0.response.status"), 200);
        CHECK_STR(JSTR(a, "1.summary"), "GET /login");
    } else {
        fprintf(stderr, "%s: no checks for this capture\n", name);
        check_failures++;
    }
}

static void test_captures(void)
{
    DIR *d = opendir(st_capture_path("http1"));
    CHECK(d != NULL);
    if (d == NULL) return;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".cap") != 0) continue;
        json_t *a = replay_all(de->d_name);
        check_capture(de->d_name, a);
        json_decref(a);
        n++;
    }
    closedir(d);
    CHECK_INT(n, 11);
}

int main(void)
{
    test_simple_get();
    test_pipelined();
    test_chunked_and_gzip();
    test_continue_and_304();
    test_http10_eof_and_close();
    test_unanswered();
    test_websocket();
    test_connect();
    test_h2c();
    test_body_cap();
    test_errors();
    test_limits();
    test_captures();
    return CHECK_DONE();
}
