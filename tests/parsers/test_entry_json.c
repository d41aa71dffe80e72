/* The entry JSON writer (parsers/entry_json.c) against the jansson tree it replaced
 * (tests/lib/entry_oracle.h): every entry of every recorded capture, with and without
 * identities, in every chunking; then hand-made entries for what captures do not hold
 * (bytes that are not UTF-8, NULs, repeated header names past the hashed-merge threshold,
 * binary bodies, odd numbers, sections with reals and nested values), plus exact texts. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "check.h"
#include "entry_oracle.h"

static struct st_json_buf buf;
static json_t *labels;
static unsigned entries_checked;

static const struct st_identity pod = {
    .name = "productpage-v1-7d6cfb7dfd-x2x4b",
    .namespace = "bookinfo",
    .node = "node-1",
    .workload = "productpage-v1",
    .service_account = "bookinfo-productpage",
};

/* Every entry is checked bare and in the contexts the proxy uses (out- and inbound). */
static void check_entry(const struct st_entry *e)
{
    struct st_identity self = pod, peer = {.name = "details.example.test"};
    self.labels = labels;
    const struct st_json_context ctxs[] = {
        {0},
        {.id = "1042", .outgoing = true, .reporter_node = "node-1", .src = &self, .dst = &peer},
        {.outgoing = false, .reporter_node = "node-\xff", .dst = &self},
    };
    for (size_t i = 0; i < sizeof(ctxs) / sizeof(ctxs[0]); i++) {
        if (oracle_check(e, &ctxs[i], &buf) < 0) {
            fprintf(stderr, "  (context %zu, summary %s)\n", i, e->summary ? e->summary : "-");
            check_failures++;
        }
    }
    entries_checked++;
}

static void on_entry(struct st_entry *e, void *arg)
{
    (void)arg;
    check_entry(e);
    st_entry_free(e);
}

static void replay(const char *relative, enum st_split split)
{
    struct st_capture cap;
    if (st_capture_load(st_capture_path(relative), &cap) != 0) {
        CHECK(!"capture loads");
        return;
    }
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct st_conn_info info = {.transport = cap.transport};
    strcpy(info.client.ip, "10.0.0.1");
    info.client.port = 40000;
    strcpy(info.server.ip, "fd00::2");
    info.server.port = cap.server_port;
    info.start_us = cap.count ? cap.chunks[0].ts_us : 0;
    struct st_conn *c = st_conn_new(&info, &cfg, on_entry, NULL);
    uint64_t last = info.start_us;
    unsigned seed = 7;
    for (size_t i = 0; i < cap.count; i++) {
        const struct st_capture_chunk *ch = &cap.chunks[i];
        last = ch->ts_us;
        if (split == ST_SPLIT_RECORDED || cap.transport == ST_TRANSPORT_UDP) {
            st_conn_feed(c, ch->dir, ch->data, ch->len, ch->ts_us);
            continue;
        }
        for (size_t off = 0; off < ch->len;) {
            seed = seed * 1103515245u + 12345u;
            size_t n = 1 + (seed >> 16) % 61;
            if (n > ch->len - off) n = ch->len - off;
            st_conn_feed(c, ch->dir, ch->data + off, n, ch->ts_us);
            off += n;
        }
    }
    st_conn_close(c, ST_CLOSE_RESET, last + 1500);
    st_conn_free(c);
    st_capture_free(&cap);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every tests/captures/<protocol>/<name>.cap; returns how many. */
static unsigned replay_all(void)
{
    char root[4096];
    snprintf(root, sizeof(root), "%s", st_capture_path(""));
    char *names[512];
    size_t n = 0;
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || de->d_type != DT_DIR) continue;
        char path[4400];
        snprintf(path, sizeof(path), "%s%s", root, de->d_name);
        DIR *sd = opendir(path);
        struct dirent *fe;
        while (sd && (fe = readdir(sd)) != NULL && n < 512) {
            size_t l = strlen(fe->d_name);
            if (l > 4 && strcmp(fe->d_name + l - 4, ".cap") == 0) {
                char rel[600];
                snprintf(rel, sizeof(rel), "%s/%s", de->d_name, fe->d_name);
                names[n++] = strdup(rel);
            }
        }
        if (sd) closedir(sd);
    }
    if (d) closedir(d);
    qsort(names, n, sizeof(names[0]), by_name);
    for (size_t i = 0; i < n; i++) {
        replay(names[i], ST_SPLIT_RECORDED);
        replay(names[i], ST_SPLIT_RANDOM);
        free(names[i]);
    }
    return (unsigned)n;
}

/* ---- hand-made entries ---- */

static void add_header(struct st_entry *e, struct st_kv_list *l, const char *name, size_t nl,
                       const char *value, size_t vl)
{
    CHECK(st_kv_list_add(e, l, name, nl, value, vl) == 0);
}

#define ADD(e, l, n, v) add_header(e, l, n, sizeof(n) - 1, v, sizeof(v) - 1)

static void set_body(struct st_body *b, const void *data, size_t len, uint64_t size)
{
    b->data = malloc(len ? len : 1);
    memcpy(b->data, data, len);
    b->len = b->cap = len;
    b->size = size;
    b->truncated = size > len;
}

/* The writer's text for e (no context), NUL-terminated in buf. */
static const char *text_of(const struct st_entry *e)
{
    buf.len = 0;
    if (st_entry_json_write(&buf, e, NULL) < 0) return "(failed)";
    st_json_buf_append(&buf, "", 1);
    return buf.data;
}

static struct st_entry *http_entry(void)
{
    struct st_entry *e = st_entry_new(ST_PROTO_HTTP);
    strcpy(e->client.ip, "10.1.0.12");
    e->client.port = 41872;
    strcpy(e->server.ip, "10.1.0.13");
    e->server.port = 9080;
    e->start_us = 1764081381123456;
    e->end_us = e->start_us + 2431;
    e->proto_version = "1.1";
    e->request.present = true;
    e->request.method = "GET";
    e->request.path = "/details/0";
    e->request.url = "/details/0?lang=en";
    return e;
}

static void test_exact_text(void)
{
    struct st_entry *e = http_entry();
    ADD(e, &e->request.query, "lang", "en");
    ADD(e, &e->request.headers, "Host", "details:9080");
    ADD(e, &e->request.headers, "Accept", "*/*");
    ADD(e, &e->request.headers, "accept", "x");
    ADD(e, &e->request.headers, "Accept", "text/html");
    e->request.wire_bytes = 143;
    e->response.present = true;
    e->response.status = 200;
    e->response.status_text = "OK";
    set_body(&e->response.body, "{\"id\":0}\n", 9, 9);
    e->response.wire_bytes = 290;
    e->summary = "GET /details/0";
    CHECK_STR(text_of(e),
              "{\"timestamp\":1764081381123,\"elapsedTime\":2.431,"
              "\"protocol\":{\"name\":\"http\",\"version\":\"1.1\",\"abbr\":\"HTTP\"},"
              "\"src\":{\"ip\":\"10.1.0.12\",\"port\":41872},\"dst\":{\"ip\":\"10.1.0.13\",\"port\":9080},"
              "\"outgoing\":false,\"seq\":0,"
              "\"request\":{\"method\":\"GET\",\"path\":\"/details/0\",\"url\":\"/details/0?lang=en\","
              "\"queryString\":{\"lang\":\"en\"},"
              "\"headers\":{\"Host\":\"details:9080\",\"Accept\":\"*/*, text/html\",\"accept\":\"x\"},"
              "\"body\":{\"size\":0,\"truncated\":false,\"encoding\":\"text\",\"data\":\"\"},\"bytes\":143},"
              "\"response\":{\"status\":200,\"statusText\":\"OK\",\"headers\":{},"
              "\"body\":{\"size\":9,\"truncated\":false,\"encoding\":\"text\",\"data\":\"{\\\"id\\\":0}\\n\"},"
              "\"bytes\":290},\"summary\":\"GET /details/0\"}");
    check_entry(e);

    /* elapsedTime: always a real, shortest form, same double as us / 1000.0. */
    static const struct {
        uint64_t us;
        const char *text;
    } el[] = {{0, "0.0"}, {1, "0.001"}, {10, "0.01"}, {999, "0.999"}, {1000, "1.0"},
              {2400, "2.4"}, {123456789, "123456.789"}, {(1ull << 53) - 1, "9007199254740.991"}};
    for (size_t i = 0; i < sizeof(el) / sizeof(el[0]); i++) {
        e->end_us = e->start_us + el[i].us;
        const char *t = text_of(e);
        const char *at = strstr(t, "\"elapsedTime\":");
        char want[64];
        snprintf(want, sizeof(want), "\"elapsedTime\":%s,", el[i].text);
        CHECK(at != NULL && strncmp(at, want, strlen(want)) == 0);
        if (at) CHECK(strtod(at + 14, NULL) == (double)el[i].us / 1000.0);
        check_entry(e);
    }
    e->start_us = 5;
    e->end_us = UINT64_MAX; /* beyond 2^53 µs: printed as jansson would */
    check_entry(e);
    e->end_us = 1; /* ends before it starts: 0 */
    check_entry(e);
    st_entry_free(e);
}

static void test_odd_bytes(void)
{
    struct st_entry *e = http_entry();
    e->request.method = "G\xc3\xa9T\x01";
    e->request.path = "/\xff\xfe/\xe2\x82\xac/\x7f\"\\";
    e->request.url = "/\xed\xa0\x80"; /* a surrogate: not UTF-8 */
    ADD(e, &e->request.query, "a\0b", "c\0d");
    ADD(e, &e->request.query, "a\\x00b", "same name once \\x-escaped");
    ADD(e, &e->request.headers, "X-\xc0\xaf", "overlong \xc0\xaf");
    ADD(e, &e->request.headers, "X-Ctl", "\b\f\n\r\t\x1f\x7f end");
    ADD(e, &e->request.headers, "X-\xc0\xaf", "again");
    ADD(e, &e->request.headers, "X-4byte", "\xf0\x9f\x98\x80 \xf4\x90\x80\x80 \xf0\x9f\x98");
    ADD(e, &e->request.headers, "", "empty name");
    ADD(e, &e->request.headers, "", "");
    static const char text[] = "text\twith\r\nnewlines \xe2\x82\xac \"quoted\" \\";
    set_body(&e->request.body, text, sizeof(text) - 1, 1000);
    e->response.present = true;
    e->response.status = -7;
    e->response.status_text = "\xff";
    set_body(&e->response.body, "\x00\x01\x02\xff", 4, 4);
    e->response.wire_bytes = UINT64_MAX; /* as json_int_t: -1 */
    e->error = "bad \xfe\xff";
    e->summary = "\xc3";
    e->seq = UINT32_MAX;
    e->client.port = 65535;
    strcpy(e->server.ip, "\xff\xfe"); /* not UTF-8: left out, as json_string() did */
    check_entry(e);
    CHECK(strstr(text_of(e), "\"dst\":{\"port\":9080}") != NULL);
    CHECK(strstr(text_of(e), "\"path\":\"/\\\\xff\\\\xfe/\xe2\x82\xac/\x7f\\\"\\\\\"") != NULL);
    CHECK(strstr(text_of(e), "\"encoding\":\"base64\",\"data\":\"AAEC/w==\"") != NULL);
    CHECK(strstr(text_of(e), "\"a\\\\x00b\":\"c\\\\x00d, same name once \\\\x-escaped\"") != NULL);

    /* Bodies: each way a body stops being text, at the start, middle and end. */
    static const char *const bodies[] = {"", "a", "ab", "abc", "\x7f", "abcdefgh\x7f", "abcdefghij\x01",
                                         "\xe2\x82", "x\xe2\x82\xac", "12345678\"\\12345678",
                                         "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        free(e->response.body.data);
        set_body(&e->response.body, bodies[i], strlen(bodies[i]), strlen(bodies[i]));
        check_entry(e);
    }
    st_entry_free(e);
}

/* More headers than the pairwise merge handles: the hashed merge, with repeats spread
 * out and names that differ only in case or in bytes that are not UTF-8. */
static void test_many_headers(void)
{
    struct st_entry *e = http_entry();
    for (int i = 0; i < 300; i++) {
        char name[32], value[32];
        int nl = snprintf(name, sizeof(name), "X-H%d", i % 37);
        if (i % 5 == 0) name[0] = 'x';
        if (i % 11 == 0) name[1] = (char)0xff;
        int vl = snprintf(value, sizeof(value), "v%d", i);
        add_header(e, &e->response.headers, name, (size_t)nl, value, (size_t)vl);
    }
    e->response.present = true;
    check_entry(e);
    st_entry_free(e);

    /* 2 to 20 headers, each with every pattern of repeats of two names. */
    for (int n = 2; n <= 20; n++) {
        e = http_entry();
        for (int i = 0; i < n; i++) {
            char v[8];
            snprintf(v, sizeof(v), "%d", i);
            if (i % 3 == 0) add_header(e, &e->request.headers, "A", 1, v, strlen(v));
            else if (i % 3 == 1) add_header(e, &e->request.headers, "B\xff", 2, v, strlen(v));
            else add_header(e, &e->request.headers, "B\\xff", 5, v, strlen(v));
        }
        check_entry(e);
        st_entry_free(e);
    }
}

static void test_sections(void)
{
    struct st_entry *e = st_entry_new(ST_PROTO_REDIS);
    strcpy(e->client.ip, "::1");
    strcpy(e->server.ip, "::1");
    e->section = json_pack("{s:i,s:f,s:f,s:f,s:f,s:b,s:n,s:[i,s,{s:[]}],s:{}}", "int", -42, "real",
                           2.431, "tiny", 1e-300, "big", 1e300, "whole", 3.0, "yes", 1, "nothing",
                           "list", 1, "two", "nested", "object");
    json_object_set_new(e->section, "nul", json_stringn_nocheck("a\0b", 3));
    json_object_set_new(e->section, "ctl", json_string("\x01\x1f\t\"\\/"));
    check_entry(e);
    e->section_name = "custom";
    check_entry(e);

    /* A string jansson itself cannot dump: the writer still makes valid JSON. */
    json_object_set_new(e->section, "raw", json_stringn_nocheck("\xff", 1));
    buf.len = 0;
    CHECK(st_entry_json_write(&buf, e, NULL) == 0);
    json_t *j = json_loadb(buf.data, buf.len, JSON_ALLOW_NUL, NULL);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "custom"), "raw")), "\\xff");
    CHECK(json_real_value(json_object_get(json_object_get(j, "custom"), "tiny")) == 1e-300);
    json_decref(j);
    st_entry_free(e);

    /* Labels and a section in every protocol's name. */
    for (int p = 0; p <= ST_PROTO_COUNT; p++) {
        e = st_entry_new((enum st_proto)p);
        e->section = json_pack("{s:s}", "k", "v");
        check_entry(e);
        st_entry_free(e);
    }
}

/* The buffer keeps what was there: entries append, a batch is one text. */
static void test_appends(void)
{
    struct st_json_buf b = {0};
    CHECK(st_json_buf_append(&b, "[", 1) == 0);
    struct st_entry *e = http_entry();
    for (int i = 0; i < 200; i++) {
        if (i) st_json_buf_append(&b, ",", 1);
        e->seq = (uint32_t)i;
        CHECK(st_entry_json_write(&b, e, NULL) == 0);
    }
    st_json_buf_append(&b, "]", 1);
    json_t *arr = json_loadb(b.data, b.len, 0, NULL);
    CHECK(json_array_size(arr) == 200);
    CHECK_INT(json_integer_value(json_object_get(json_array_get(arr, 199), "seq")), 199);
    json_decref(arr);
    st_entry_free(e);
    st_json_buf_free(&b);
    st_json_buf_free(NULL);
}

int main(void)
{
    labels = json_pack("{s:s,s:s}", "app", "productpage", "version", "v\xc3\xa9");
    test_exact_text();
    test_odd_bytes();
    test_many_headers();
    test_sections();
    test_appends();
    unsigned hand = entries_checked;
    unsigned caps = replay_all();
    CHECK(caps >= 40);
    CHECK(entries_checked - hand >= 200);
    fprintf(stderr, "checked %u hand-made and %u captured entries (%u captures)\n", hand,
            entries_checked - hand, caps);
    json_decref(labels);
    st_json_buf_free(&buf);
    return CHECK_DONE();
}
