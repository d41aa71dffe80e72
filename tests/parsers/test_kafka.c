/* Kafka: real kcat (librdkafka 2.0) <-> kafka_broker.py captures in every chunking, and
 * crafted flexible-version requests and responses, out-of-order responses, acks=0, big
 * frames and hostile sizes. */
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "check.h"
#include "entry_json.h"
#include "jpath.h"
#include "parser.h"

static const char *jstr(json_t *j, const char *path)
{
    return json_string_value(jpath(j, path));
}

/* All three chunkings agree; returns the recorded one. */
static json_t *replay(const char *name)
{
    struct st_capture cap;
    if (st_capture_load(st_capture_path(name), &cap) < 0) {
        CHECK(!"capture missing");
        return json_array();
    }
    json_t *rec = st_capture_replay(&cap, NULL, ST_SPLIT_RECORDED, 1);
    json_t *byte = st_capture_replay(&cap, NULL, ST_SPLIT_BYTE, 1);
    json_t *rnd = st_capture_replay(&cap, NULL, ST_SPLIT_RANDOM, 99);
    CHECK(json_equal(rec, byte));
    CHECK(json_equal(rec, rnd));
    st_capture_free(&cap);
    json_decref(byte);
    json_decref(rnd);
    for (size_t i = 0; i < json_array_size(rec); i++) {
        json_t *e = json_array_get(rec, i);
        CHECK_STR(jstr(e, "protocol.name"), "kafka");
        CHECK_STR(jstr(e, "kafka.clientId"), "sidetap-test");
        CHECK_STR(jstr(e, "request.method"), jstr(e, "kafka.apiName"));
    }
    return rec;
}

static void check_api_versions(json_t *e)
{
    CHECK_STR(jstr(e, "kafka.apiName"), "ApiVersions");
    CHECK_INT(jint(e, "kafka.apiKey"), 18);
    CHECK_INT(jint(e, "kafka.apiVersion"), 3); /* flexible request, response header v0 */
    CHECK_INT(jint(e, "kafka.correlationId"), 1);
    CHECK_INT(jint(e, "kafka.errorCode"), 0);
    CHECK_STR(jstr(e, "kafka.errorName"), "NONE");
    CHECK_STR(jstr(e, "summary"), "ApiVersions");
    CHECK(jpath(e, "error") == NULL);
}

static void test_captures(void)
{
    json_t *a = replay("kafka/produce.cap");
    CHECK_INT(json_array_size(a), 3);
    check_api_versions(json_array_get(a, 0));
    json_t *e = json_array_get(a, 1);
    CHECK_STR(jstr(e, "kafka.apiName"), "Metadata");
    CHECK_INT(jint(e, "kafka.apiVersion"), 4);
    CHECK_STR(jstr(e, "kafka.topic"), "orders");
    CHECK_INT(jint(e, "kafka.correlationId"), 2);
    e = json_array_get(a, 2);
    CHECK_STR(jstr(e, "summary"), "Produce orders");
    CHECK_STR(jstr(e, "request.path"), "orders");
    CHECK_INT(jint(e, "kafka.apiVersion"), 7);
    CHECK_INT(jint(e, "kafka.correlationId"), 3);
    CHECK_INT(jint(e, "kafka.acks"), -1);
    CHECK_INT(json_array_size(jpath(e, "kafka.topics")), 1);
    CHECK_INT(jint(e, "kafka.partitions.0"), 0);
    CHECK_STR(jstr(e, "response.statusText"), "NONE");
    CHECK(jint(e, "request.bytes") > 100); /* the 3 records */
    CHECK(jpath(e, "error") == NULL);
    json_decref(a);

    a = replay("kafka/consume.cap");
    /* How many empty Fetches follow the first depends on timing when recording. */
    CHECK(json_array_size(a) >= 6);
    check_api_versions(json_array_get(a, 0));
    const char *apis[] = {"ApiVersions", "Metadata", "Metadata", "ListOffsets", "Fetch"};
    for (size_t i = 0; i < json_array_size(a); i++) {
        e = json_array_get(a, i);
        CHECK_STR(jstr(e, "kafka.apiName"), apis[i < 4 ? i : 4]);
        CHECK_INT(jint(e, "kafka.correlationId"), (long long)i + 1); /* each response matched */
        CHECK(jpath(e, "response") != NULL);
        if (i > 0) CHECK_STR(jstr(e, "kafka.topic"), "orders");
    }
    e = json_array_get(a, 4);
    CHECK_INT(jint(e, "kafka.apiVersion"), 11);
    CHECK_STR(jstr(e, "summary"), "Fetch orders");
    CHECK(jint(e, "response.bytes") > jint(json_array_get(a, 5), "response.bytes")); /* the records */
    CHECK_INT(jint(json_array_get(a, 3), "kafka.apiVersion"), 2);
    json_decref(a);

    a = replay("kafka/acks0.cap");
    CHECK_INT(json_array_size(a), 3);
    e = json_array_get(a, 2);
    CHECK_STR(jstr(e, "summary"), "Produce events");
    CHECK_INT(jint(e, "kafka.acks"), 0);
    CHECK(jpath(e, "response") == NULL); /* none expected, none waited for */
    CHECK(jpath(e, "error") == NULL);
    CHECK(jpath(e, "kafka.errorCode") == NULL);
    json_decref(a);

    a = replay("kafka/idempotent.cap");
    CHECK_INT(json_array_size(a), 4);
    e = json_array_get(a, 2);
    CHECK_STR(jstr(e, "kafka.apiName"), "InitProducerId");
    CHECK_INT(jint(e, "kafka.apiVersion"), 4); /* flexible: header v2 and response header v1 */
    CHECK_INT(jint(e, "kafka.errorCode"), 0);
    e = json_array_get(a, 3);
    CHECK_STR(jstr(e, "summary"), "Produce payments");
    CHECK_INT(jint(e, "kafka.correlationId"), 4);
    CHECK_STR(jstr(e, "kafka.errorName"), "NONE");
    json_decref(a);

    a = replay("kafka/missing.cap");
    CHECK(json_array_size(a) >= 2);
    e = json_array_get(a, 1);
    CHECK_STR(jstr(e, "summary"), "Metadata missing-topic");
    CHECK_INT(jint(e, "kafka.errorCode"), 3);
    CHECK_STR(jstr(e, "kafka.errorName"), "UNKNOWN_TOPIC_OR_PARTITION");
    CHECK_STR(jstr(e, "error.message"), "UNKNOWN_TOPIC_OR_PARTITION");
    json_decref(a);
}

/* --- crafted frames --- */

struct w {
    uint8_t b[200000];
    size_t n;
    bool flex;
};

static void i8(struct w *w, int v)
{
    w->b[w->n++] = (uint8_t)v;
}

static void i16(struct w *w, int v)
{
    i8(w, v >> 8), i8(w, v & 0xff);
}

static void i32(struct w *w, int64_t v)
{
    i16(w, (int)((v >> 16) & 0xffff)), i16(w, (int)(v & 0xffff));
}

static void i64(struct w *w, int64_t v)
{
    i32(w, v >> 32), i32(w, v & 0xffffffff);
}

static void uv(struct w *w, uint32_t v)
{
    while (v >= 0x80) i8(w, (int)(v & 0x7f) | 0x80), v >>= 7;
    i8(w, (int)v);
}

static void str(struct w *w, const char *s)
{
    size_t l = s ? strlen(s) : 0;
    if (w->flex) uv(w, s ? (uint32_t)l + 1 : 0);
    else i16(w, s ? (int)l : -1);
    if (s) memcpy(w->b + w->n, s, l), w->n += l;
}

static void arr(struct w *w, int n)
{
    if (w->flex) uv(w, (uint32_t)(n + 1));
    else i32(w, n);
}

static void tags(struct w *w)
{
    if (w->flex) uv(w, 0);
}

/* Request header: v1, or v2 with a tagged field (that must be skipped) when flexible. */
static void req_header(struct w *w, int api, int ver, int32_t corr, bool flex)
{
    w->n = 4;
    w->flex = false;
    i16(w, api), i16(w, ver), i32(w, corr);
    str(w, "crafted"); /* always the int16 form, also in header v2 */
    if (flex) {
        uv(w, 1), uv(w, 7), uv(w, 2), i16(w, 0x4242); /* one unknown tagged field */
        w->flex = true;
    }
}

static void resp_header(struct w *w, int32_t corr, bool header_tags, bool flex)
{
    w->n = 4;
    w->flex = flex;
    i32(w, corr);
    if (header_tags) uv(w, 0);
}

static void finish(struct w *w)
{
    uint32_t len = (uint32_t)(w->n - 4);
    w->b[0] = (uint8_t)(len >> 24), w->b[1] = (uint8_t)(len >> 16), w->b[2] = (uint8_t)(len >> 8), w->b[3] = (uint8_t)len;
}

static struct st_entry *got[300];
static int ngot;

static void on_entry(struct st_entry *e, void *arg)
{
    (void)arg;
    if (ngot < 300) got[ngot++] = e;
    else st_entry_free(e);
}

static json_t *got_json(int i)
{
    return i < ngot ? st_entry_to_json(got[i], NULL) : json_object();
}

static void reset(void)
{
    for (int i = 0; i < ngot; i++) st_entry_free(got[i]);
    ngot = 0;
}

static struct st_parse_stats stats; /* of every connection conn_new() makes */

static struct st_conn *conn_new(void)
{
    static struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.stats = &stats;
    struct st_conn_info info = {.start_us = 7000000, .transport = ST_TRANSPORT_TCP};
    strcpy(info.server.ip, "10.1.0.30");
    info.server.port = 9092;
    return st_conn_new(&info, &cfg, on_entry, NULL);
}

/* Feeds a frame in `step`-byte pieces. */
static void feed(struct st_conn *c, enum st_dir dir, const struct w *w, size_t step, uint64_t t)
{
    for (size_t off = 0; off < w->n; off += step)
        st_conn_feed(c, dir, w->b + off, w->n - off < step ? w->n - off : step, t);
}

static struct w q, r; /* big: static */

static void produce_v9(int32_t corr, const char *topic, int acks, size_t record_bytes)
{
    req_header(&q, 0, 9, corr, true);
    str(&q, NULL); /* transactional_id */
    i16(&q, acks), i32(&q, 30000);
    arr(&q, 2);
    str(&q, topic);
    arr(&q, 2);
    for (int p = 3; p <= 4; p++) {
        i32(&q, p);
        uv(&q, (uint32_t)record_bytes + 1);
        memset(q.b + q.n, 0xab, record_bytes), q.n += record_bytes;
        tags(&q);
    }
    tags(&q);
    str(&q, "second-topic"), arr(&q, 0), tags(&q);
    tags(&q);
    finish(&q);
}

static void produce_v9_response(int32_t corr, int error)
{
    resp_header(&r, corr, true, true);
    arr(&r, 1);
    str(&r, "orders");
    arr(&r, 1);
    i32(&r, 3), i16(&r, error), i64(&r, 42), i64(&r, -1), i64(&r, 0);
    arr(&r, 0), str(&r, NULL), tags(&r);
    tags(&r);
    i32(&r, 0), tags(&r);
    finish(&r);
}

static void test_flexible_and_order(void)
{
    for (size_t step = 1; step <= 1000; step *= 10) {
        struct st_conn *c = conn_new();
        /* Three requests in flight: Produce v9 (flexible), Metadata v12 (flexible, topic
         * ids), Fetch v12 (flexible); answered Fetch, Produce, Metadata. */
        produce_v9(100, "orders", -1, 300);
        feed(c, ST_DIR_TO_SERVER, &q, step, 7000100);

        req_header(&q, 3, 12, 101, true);
        arr(&q, 2);
        for (int i = 0; i < 16; i++) i8(&q, i);
        str(&q, "inventory"), tags(&q);
        for (int i = 0; i < 16; i++) i8(&q, 0);
        str(&q, NULL), tags(&q); /* by id only */
        i8(&q, 1), i8(&q, 0), tags(&q);
        finish(&q);
        feed(c, ST_DIR_TO_SERVER, &q, step, 7000200);

        req_header(&q, 1, 12, 102, true);
        i32(&q, -1), i32(&q, 500), i32(&q, 1), i32(&q, 1 << 20), i8(&q, 0), i32(&q, 0), i32(&q, -1);
        arr(&q, 1);
        str(&q, "payments");
        arr(&q, 2);
        for (int p = 7; p <= 8; p++) i32(&q, p), i32(&q, 0), i64(&q, 10), i32(&q, -1), i64(&q, 0), i32(&q, 1 << 20), tags(&q);
        tags(&q);
        arr(&q, 0), str(&q, ""), tags(&q);
        finish(&q);
        feed(c, ST_DIR_TO_SERVER, &q, step, 7000300);

        /* Fetch v12 response: NOT_LEADER_OR_FOLLOWER on the second partition. */
        resp_header(&r, 102, true, true);
        i32(&r, 0), i16(&r, 0), i32(&r, 0);
        arr(&r, 1);
        str(&r, "payments");
        arr(&r, 2);
        for (int p = 7; p <= 8; p++) {
            i32(&r, p), i16(&r, p == 8 ? 6 : 0), i64(&r, 10), i64(&r, 10), i64(&r, 0);
            arr(&r, 0), i32(&r, -1);
            uv(&r, 4), i8(&r, 1), i8(&r, 2), i8(&r, 3); /* 3 bytes of records */
            tags(&r);
        }
        tags(&r), tags(&r);
        finish(&r);
        feed(c, ST_DIR_TO_CLIENT, &r, step, 7000400);

        produce_v9_response(100, 0);
        feed(c, ST_DIR_TO_CLIENT, &r, step, 7000500);

        /* Metadata v12 response: "inventory" is fine, the second topic is unknown by id. */
        resp_header(&r, 101, true, true);
        i32(&r, 0);
        arr(&r, 1), i32(&r, 1), str(&r, "10.1.0.30"), i32(&r, 9092), str(&r, NULL), tags(&r);
        str(&r, "cluster"), i32(&r, 1);
        arr(&r, 2);
        i16(&r, 0), str(&r, "inventory");
        for (int i = 0; i < 16; i++) i8(&r, i);
        i8(&r, 0);
        arr(&r, 1), i16(&r, 0), i32(&r, 0), i32(&r, 1), i32(&r, 0);
        arr(&r, 1), i32(&r, 1), arr(&r, 1), i32(&r, 1), arr(&r, 0), tags(&r);
        i32(&r, 0), tags(&r);
        i16(&r, 100), str(&r, NULL);
        for (int i = 0; i < 16; i++) i8(&r, 0);
        i8(&r, 0), arr(&r, 0), i32(&r, 0), tags(&r);
        tags(&r);
        finish(&r);
        feed(c, ST_DIR_TO_CLIENT, &r, step, 7000600);

        st_conn_close(c, ST_CLOSE_FIN, 7001000);
        st_conn_free(c);
        CHECK_INT(ngot, 3);
        json_t *e = got_json(0);
        CHECK_STR(jstr(e, "summary"), "Fetch payments");
        CHECK_INT(jint(e, "kafka.correlationId"), 102);
        CHECK_INT(jint(e, "kafka.apiVersion"), 12);
        CHECK_INT(json_array_size(jpath(e, "kafka.partitions")), 2);
        CHECK_INT(jint(e, "kafka.partitions.1"), 8);
        CHECK_INT(jint(e, "kafka.errorCode"), 6);
        CHECK_STR(jstr(e, "error.message"), "NOT_LEADER_OR_FOLLOWER");
        CHECK_INT(jint(e, "timestamp"), 7000);
        json_decref(e);
        e = got_json(1);
        CHECK_STR(jstr(e, "summary"), "Produce orders");
        CHECK_INT(jint(e, "kafka.correlationId"), 100);
        CHECK_INT(jint(e, "kafka.acks"), -1);
        CHECK_INT(json_array_size(jpath(e, "kafka.topics")), 2);
        CHECK_STR(jstr(e, "kafka.topics.1"), "second-topic");
        CHECK_INT(jint(e, "kafka.partitions.0"), 3);
        CHECK_INT(jint(e, "kafka.partitions.1"), 4);
        CHECK_STR(jstr(e, "kafka.clientId"), "crafted");
        CHECK_INT(jint(e, "kafka.errorCode"), 0);
        CHECK(jpath(e, "error") == NULL);
        json_decref(e);
        e = got_json(2);
        CHECK_STR(jstr(e, "summary"), "Metadata inventory");
        CHECK_INT(json_array_size(jpath(e, "kafka.topics")), 1);
        CHECK_INT(jint(e, "kafka.errorCode"), 100);
        CHECK_STR(jstr(e, "kafka.errorName"), "UNKNOWN_TOPIC_ID");
        json_decref(e);
        reset();
    }
}

/* acks=0 in a flexible Produce: an entry at once, nothing waited for; the next request's
 * response still matches. Unanswered requests end as "no response" at close. */
static void test_acks0_and_close(void)
{
    struct st_conn *c = conn_new();
    produce_v9(5, "metrics", 0, 50);
    feed(c, ST_DIR_TO_SERVER, &q, 7, 7000100);
    CHECK_INT(ngot, 1);
    produce_v9(6, "metrics", 1, 50);
    feed(c, ST_DIR_TO_SERVER, &q, 7, 7000200);
    req_header(&q, 18, 3, 7, true);
    str(&q, "kcat"), str(&q, "1.7.1"), tags(&q);
    finish(&q);
    feed(c, ST_DIR_TO_SERVER, &q, 3, 7000300);
    /* ApiVersions v3 answers with header v0 (no tagged fields after the id). */
    resp_header(&r, 7, false, true);
    i16(&r, 35), arr(&r, 0), i32(&r, 0), tags(&r);
    finish(&r);
    feed(c, ST_DIR_TO_CLIENT, &r, 2, 7000400);
    st_conn_close(c, ST_CLOSE_RESET, 7009000);
    st_conn_free(c);
    CHECK_INT(ngot, 3);
    json_t *e = got_json(0);
    CHECK_INT(jint(e, "kafka.acks"), 0);
    CHECK(jpath(e, "response") == NULL && jpath(e, "error") == NULL);
    json_decref(e);
    e = got_json(1);
    CHECK_STR(jstr(e, "kafka.apiName"), "ApiVersions");
    CHECK_STR(jstr(e, "kafka.errorName"), "UNSUPPORTED_VERSION");
    CHECK_STR(jstr(e, "error.message"), "UNSUPPORTED_VERSION");
    json_decref(e);
    e = got_json(2);
    CHECK_INT(jint(e, "kafka.correlationId"), 6);
    CHECK_STR(jstr(e, "error.message"), "no response (connection reset)");
    CHECK(jpath(e, "response") == NULL);
    CHECK(json_real_value(jpath(e, "elapsedTime")) == 8.8);
    json_decref(e);
    reset();
}

/* A Produce of 150 KB (most of it past the kept head) still names its topic and matches. */
static void test_big_frame(void)
{
    struct st_conn *c = conn_new();
    produce_v9(9, "bulk", -1, 75000);
    CHECK(q.n > 150000);
    feed(c, ST_DIR_TO_SERVER, &q, 4096, 7000100);
    produce_v9_response(9, 10); /* MESSAGE_TOO_LARGE */
    feed(c, ST_DIR_TO_CLIENT, &r, 4096, 7000200);
    st_conn_close(c, ST_CLOSE_FIN, 7000300);
    st_conn_free(c);
    CHECK_INT(ngot, 1);
    json_t *e = got_json(0);
    CHECK_STR(jstr(e, "kafka.topic"), "bulk");
    CHECK_INT(jint(e, "request.bytes"), (long long)q.n);
    CHECK_STR(jstr(e, "error.message"), "MESSAGE_TOO_LARGE");
    json_decref(e);
    reset();
}

/* Non-flexible ListOffsets v1 and OffsetCommit v2, then hostile input. */
static void test_misc_and_hostile(void)
{
    struct st_conn *c = conn_new();
    req_header(&q, 2, 1, 20, false);
    i32(&q, -1), arr(&q, 1), str(&q, "clicks"), arr(&q, 1), i32(&q, 2), i64(&q, -1);
    finish(&q);
    feed(c, ST_DIR_TO_SERVER, &q, 5, 7000100);
    req_header(&q, 8, 2, 21, false);
    str(&q, "billing"), i32(&q, 3), str(&q, "member-1"), i64(&q, -1);
    arr(&q, 1), str(&q, "invoices"), arr(&q, 1), i32(&q, 0), i64(&q, 77), str(&q, NULL);
    finish(&q);
    feed(c, ST_DIR_TO_SERVER, &q, 5, 7000200);
    resp_header(&r, 21, false, false);
    arr(&r, 1), str(&r, "invoices"), arr(&r, 1), i32(&r, 0), i16(&r, 25);
    finish(&r);
    feed(c, ST_DIR_TO_CLIENT, &r, 5, 7000300);
    resp_header(&r, 20, false, false);
    arr(&r, 1), str(&r, "clicks"), arr(&r, 1), i32(&r, 2), i16(&r, 0), i64(&r, -1), i64(&r, 1234);
    finish(&r);
    feed(c, ST_DIR_TO_CLIENT, &r, 5, 7000400);
    /* A response nobody asked for. */
    resp_header(&r, 999, false, false);
    i16(&r, 0);
    finish(&r);
    feed(c, ST_DIR_TO_CLIENT, &r, 5, 7000500);
    /* A frame size over 100 MiB stops parsing. */
    const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 0, 1};
    st_conn_feed(c, ST_DIR_TO_SERVER, huge, sizeof(huge), 7000600);
    CHECK_INT(st_conn_proto(c), ST_PROTO_TCP);
    st_conn_close(c, ST_CLOSE_FIN, 7001000);
    st_conn_free(c);
    CHECK_INT(ngot, 4);
    json_t *e = got_json(0);
    CHECK_STR(jstr(e, "summary"), "OffsetCommit invoices");
    CHECK_STR(jstr(e, "kafka.groupId"), "billing");
    CHECK_STR(jstr(e, "error.message"), "UNKNOWN_MEMBER_ID");
    json_decref(e);
    e = got_json(1);
    CHECK_STR(jstr(e, "summary"), "ListOffsets clicks");
    CHECK_INT(jint(e, "kafka.partitions.0"), 2);
    CHECK(jpath(e, "error") == NULL);
    json_decref(e);
    e = got_json(2);
    CHECK_STR(jstr(e, "error.message"), "response to an unknown correlation id 999");
    json_decref(e);
    e = got_json(3);
    CHECK_STR(jstr(e, "error.message"), "parse error: Kafka: request frame size 2147483647 out of range");
    json_decref(e);
    reset();

    /* The in-flight list is bounded: the oldest request gives way (counted). */
    memset(&stats, 0, sizeof(stats));
    c = conn_new();
    for (int i = 0; i < 260; i++) {
        req_header(&q, 12, 0, i, false);
        str(&q, "g"), i32(&q, 1), str(&q, "m");
        finish(&q);
        feed(c, ST_DIR_TO_SERVER, &q, 100, 7000100);
    }
    CHECK_INT(ngot, 4);
    json_t *first = got_json(0);
    CHECK_STR(jstr(first, "error.message"), "no response (too many requests in flight)");
    CHECK_STR(jstr(first, "summary"), "Heartbeat g");
    CHECK_INT(jint(first, "kafka.correlationId"), 0);
    json_decref(first);
    st_conn_close(c, ST_CLOSE_FIN, 7000200);
    st_conn_free(c);
    CHECK_INT(ngot, 260);
    CHECK_INT(stats.unanswered[ST_LIMIT_PENDING], 4);
    CHECK_INT(stats.dropped[ST_LIMIT_PENDING] + stats.dropped[ST_LIMIT_PARSE_STOPPED], 0);
    reset();
}

/* Flexible ListOffsets v7 and OffsetCommit v8, answered in reverse order. */
static void test_flexible_offsets(void)
{
    struct st_conn *c = conn_new();
    req_header(&q, 2, 7, 30, true);
    i32(&q, -1), i8(&q, 0);
    arr(&q, 1), str(&q, "audit"), arr(&q, 2);
    for (int p = 0; p < 2; p++) i32(&q, p), i32(&q, -1), i64(&q, -2), tags(&q);
    tags(&q), tags(&q);
    finish(&q);
    feed(c, ST_DIR_TO_SERVER, &q, 3, 7000100);
    req_header(&q, 8, 8, 31, true);
    str(&q, "reporting"), i32(&q, 4), str(&q, "member-9"), str(&q, NULL);
    arr(&q, 1), str(&q, "ledger"), arr(&q, 1), i32(&q, 5), i64(&q, 100), i32(&q, 3), str(&q, "meta"), tags(&q);
    tags(&q), tags(&q);
    finish(&q);
    feed(c, ST_DIR_TO_SERVER, &q, 3, 7000200);
    resp_header(&r, 31, true, true);
    i32(&r, 0), arr(&r, 1), str(&r, "ledger"), arr(&r, 1), i32(&r, 5), i16(&r, 0), tags(&r), tags(&r), tags(&r);
    finish(&r);
    feed(c, ST_DIR_TO_CLIENT, &r, 3, 7000300);
    resp_header(&r, 30, true, true);
    i32(&r, 0), arr(&r, 1), str(&r, "audit"), arr(&r, 2);
    for (int p = 0; p < 2; p++) i32(&r, p), i16(&r, p ? 75 : 0), i64(&r, -1), i64(&r, 0), i32(&r, 0), tags(&r);
    tags(&r), tags(&r);
    finish(&r);
    feed(c, ST_DIR_TO_CLIENT, &r, 3, 7000400);
    st_conn_close(c, ST_CLOSE_FIN, 7000500);
    st_conn_free(c);
    CHECK_INT(ngot, 2);
    json_t *e = got_json(0);
    CHECK_STR(jstr(e, "summary"), "OffsetCommit ledger");
    CHECK_STR(jstr(e, "kafka.groupId"), "reporting");
    CHECK_INT(jint(e, "kafka.partitions.0"), 5);
    CHECK_INT(jint(e, "kafka.errorCode"), 0);
    json_decref(e);
    e = got_json(1);
    CHECK_STR(jstr(e, "summary"), "ListOffsets audit");
    CHECK_INT(json_array_size(jpath(e, "kafka.partitions")), 2);
    CHECK_STR(jstr(e, "error.message"), "UNKNOWN_LEADER_EPOCH");
    json_decref(e);
    reset();
}

int main(void)
{
    test_flexible_offsets();
    test_captures();
    test_flexible_and_order();
    test_acks0_and_close();
    test_big_frame();
    test_misc_and_hostile();
    return CHECK_DONE();
}
