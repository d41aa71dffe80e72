/* DNS: real dig <-> dnsmasq captures over UDP and TCP in every chunking, and crafted
 * hostile messages (compression loops, out-of-range pointers, truncation). */
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

static json_t *replay_file(const char *name, enum st_split split)
{
    struct st_capture cap;
    if (st_capture_load(st_capture_path(name), &cap) < 0) return NULL;
    json_t *out = st_capture_replay(&cap, NULL, split, 7);
    st_capture_free(&cap);
    return out;
}

/* The 8 exchanges recorded by record-dns.sh, in order, for either transport. */
static void check_recorded(json_t *a, const char *transport)
{
    CHECK_INT(json_array_size(a), 8);
    if (json_array_size(a) != 8) {
        char *s = json_dumps(a, JSON_INDENT(1));
        fprintf(stderr, "%s\n", s);
        free(s);
        return;
    }
    for (size_t i = 0; i < 8; i++) {
        json_t *e = json_array_get(a, i);
        CHECK_STR(jstr(e, "protocol.name"), "dns");
        CHECK_STR(jstr(e, "dns.transport"), transport);
        CHECK_STR(jstr(e, "dns.opcode"), "QUERY");
        CHECK_INT(jint(e, "dns.id") >= 0, 1);
        CHECK(jpath(e, "request") != NULL && jpath(e, "response") != NULL);
        CHECK_INT(jint(e, "seq"), (long long)i);
    }
    json_t *e = json_array_get(a, 0);
    CHECK_STR(jstr(e, "request.method"), "A");
    CHECK_STR(jstr(e, "request.path"), "redis-leader.guestbook.svc.cluster.local");
    CHECK_STR(jstr(e, "summary"), "A redis-leader.guestbook.svc.cluster.local");
    CHECK_STR(jstr(e, "response.statusText"), "NOERROR");
    CHECK(jpath(e, "error") == NULL);
    CHECK_STR(jstr(e, "dns.rcode"), "NOERROR");
    CHECK_STR(jstr(e, "dns.questions.0.name"), "redis-leader.guestbook.svc.cluster.local");
    CHECK_STR(jstr(e, "dns.questions.0.type"), "A");
    CHECK_STR(jstr(e, "dns.questions.0.class"), "IN");
    CHECK_INT(json_array_size(jpath(e, "dns.answers")), 1);
    CHECK_STR(jstr(e, "dns.answers.0.name"), "redis-leader.guestbook.svc.cluster.local");
    CHECK_STR(jstr(e, "dns.answers.0.type"), "A");
    CHECK_INT(jint(e, "dns.answers.0.ttl"), 5);
    CHECK_STR(jstr(e, "dns.answers.0.data"), "10.1.0.7");
    CHECK(json_is_true(jpath(e, "dns.flags.aa")));
    CHECK(json_is_true(jpath(e, "dns.flags.rd")));

    e = json_array_get(a, 1);
    CHECK_STR(jstr(e, "request.method"), "AAAA");
    CHECK_STR(jstr(e, "dns.answers.0.type"), "AAAA");
    CHECK_STR(jstr(e, "dns.answers.0.data"), "fd00::7");

    e = json_array_get(a, 2); /* www -> web -> app -> 10.1.0.20 */
    CHECK_STR(jstr(e, "request.path"), "www.example.test");
    CHECK_INT(json_array_size(jpath(e, "dns.answers")), 3);
    CHECK_STR(jstr(e, "dns.answers.0.name"), "www.example.test");
    CHECK_STR(jstr(e, "dns.answers.0.type"), "CNAME");
    CHECK_STR(jstr(e, "dns.answers.0.data"), "web.example.test");
    CHECK_STR(jstr(e, "dns.answers.1.name"), "web.example.test");
    CHECK_STR(jstr(e, "dns.answers.1.data"), "app.example.test");
    CHECK_STR(jstr(e, "dns.answers.2.name"), "app.example.test");
    CHECK_STR(jstr(e, "dns.answers.2.type"), "A");
    CHECK_STR(jstr(e, "dns.answers.2.data"), "10.1.0.20");

    e = json_array_get(a, 3);
    CHECK_STR(jstr(e, "request.method"), "SRV");
    CHECK_STR(jstr(e, "dns.answers.0.data"), "0 5 6379 redis-leader.guestbook.svc.cluster.local");

    e = json_array_get(a, 4);
    CHECK_STR(jstr(e, "request.method"), "TXT");
    CHECK_STR(jstr(e, "dns.answers.0.data"), "v=spf1 -all second string");

    e = json_array_get(a, 5);
    CHECK_STR(jstr(e, "request.path"), "9.0.1.10.in-addr.arpa");
    CHECK_STR(jstr(e, "dns.answers.0.type"), "PTR");
    CHECK_STR(jstr(e, "dns.answers.0.data"), "db.example.test");
    e = json_array_get(a, 6);
    CHECK_STR(jstr(e, "dns.answers.0.data"), "redis-leader.guestbook.svc.cluster.local");

    e = json_array_get(a, 7);
    CHECK_STR(jstr(e, "request.path"), "missing.guestbook.svc.cluster.local");
    CHECK_INT(jint(e, "response.status"), 3);
    CHECK_STR(jstr(e, "response.statusText"), "NXDOMAIN");
    CHECK_STR(jstr(e, "dns.rcode"), "NXDOMAIN");
    CHECK_STR(jstr(e, "error.message"), "NXDOMAIN");
    CHECK_INT(json_array_size(jpath(e, "dns.answers")), 0);
    CHECK(jpath(e, "dns.authorities") == NULL); /* dnsmasq's local= zones send no SOA */
}

static void test_captures(void)
{
    json_t *udp = replay_file("dns/udp.cap", ST_SPLIT_RECORDED);
    CHECK(udp != NULL);
    if (udp) check_recorded(udp, "udp");
    json_decref(udp);

    json_t *tcp = replay_file("dns/tcp.cap", ST_SPLIT_RECORDED);
    CHECK(tcp != NULL);
    if (tcp) check_recorded(tcp, "tcp");
    json_t *tcp1 = replay_file("dns/tcp.cap", ST_SPLIT_BYTE);
    json_t *tcpr = replay_file("dns/tcp.cap", ST_SPLIT_RANDOM);
    CHECK(json_equal(tcp, tcp1));
    CHECK(json_equal(tcp, tcpr));
    /* Request/response sizes include the 2-byte length prefix over TCP. */
    CHECK_INT(jint(json_array_get(tcp, 0), "request.bytes") > 2, 1);
    json_decref(tcp);
    json_decref(tcp1);
    json_decref(tcpr);
}

/* --- crafted messages --- */

struct msg {
    uint8_t b[1024];
    size_t n;
};

static void put8(struct msg *m, unsigned v)
{
    m->b[m->n++] = (uint8_t)v;
}

static void put16(struct msg *m, unsigned v)
{
    put8(m, v >> 8);
    put8(m, v & 0xff);
}

static void put32(struct msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

static void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        put8(m, (unsigned)l);
        memcpy(m->b + m->n, name, l);
        m->n += l;
        name += l + (dot ? 1 : 0);
    }
    put8(m, 0);
}

static void put_header(struct msg *m, unsigned id, unsigned flags, unsigned qd, unsigned an)
{
    m->n = 0;
    put16(m, id), put16(m, flags), put16(m, qd), put16(m, an), put16(m, 0), put16(m, 0);
}

static void query(struct msg *m, unsigned id, const char *name, unsigned type)
{
    put_header(m, id, 0x0100, 1, 0);
    put_name(m, name);
    put16(m, type), put16(m, 1);
}

/* An answer with one A record whose owner name is a pointer to the question (0xC00C). */
static void answer_a(struct msg *m, unsigned id, const char *name, const uint8_t ip[4])
{
    put_header(m, id, 0x8180, 1, 1);
    put_name(m, name);
    put16(m, 1), put16(m, 1);
    put16(m, 0xC00C), put16(m, 1), put16(m, 1), put32(m, 30), put16(m, 4);
    memcpy(m->b + m->n, ip, 4);
    m->n += 4;
}

static struct st_entry *got[64];
static int ngot;

static void on_entry(struct st_entry *e, void *arg)
{
    (void)arg;
    if (ngot < 64) got[ngot++] = e;
    else st_entry_free(e);
}

static json_t *got_json(int i)
{
    return i < ngot ? st_entry_to_json(got[i], NULL) : NULL;
}

static void reset(void)
{
    for (int i = 0; i < ngot; i++) st_entry_free(got[i]);
    ngot = 0;
}

static struct st_conn *new_conn(enum st_transport t)
{
    static struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct st_conn_info info = {.start_us = 1000000, .transport = t, .guess = ST_PROTO_DNS};
    strcpy(info.client.ip, "10.1.0.2");
    info.client.port = 40000;
    strcpy(info.server.ip, "10.96.0.10");
    info.server.port = 53;
    return st_conn_new(&info, &cfg, on_entry, NULL);
}

static void feed(struct st_conn *c, enum st_dir dir, const struct msg *m, uint64_t t)
{
    st_conn_feed(c, dir, m->b, m->n, t);
}

/* A hostile answer over UDP: one error entry, and the connection keeps parsing. */
static void expect_udp_error(const struct msg *bad, const char *want_error)
{
    struct st_conn *c = new_conn(ST_TRANSPORT_UDP);
    feed(c, ST_DIR_TO_CLIENT, bad, 1000100);
    struct msg q, a;
    const uint8_t ip[4] = {10, 0, 0, 5};
    query(&q, 77, "ok.example", 1);
    answer_a(&a, 77, "ok.example", ip);
    feed(c, ST_DIR_TO_SERVER, &q, 1000200);
    feed(c, ST_DIR_TO_CLIENT, &a, 1000300);
    st_conn_close(c, ST_CLOSE_FIN, 1000400);
    st_conn_free(c);
    CHECK_INT(ngot, 2);
    json_t *e = got_json(0);
    CHECK_STR(jstr(e, "error.message"), want_error);
    json_decref(e);
    e = got_json(1);
    CHECK_STR(jstr(e, "dns.answers.0.data"), "10.0.0.5");
    CHECK(jpath(e, "error") == NULL);
    json_decref(e);
    reset();
}

static void test_hostile(void)
{
    struct msg m;

    /* A name that is a pointer to itself. */
    put_header(&m, 1, 0x8180, 1, 0);
    put16(&m, 0xC00C), put16(&m, 1), put16(&m, 1);
    expect_udp_error(&m, "parse error: compression pointer does not point backwards");

    /* Two labels pointing at each other: the second pointer goes forward after a jump back. */
    put_header(&m, 2, 0x8180, 1, 0);
    put8(&m, 1), put8(&m, 'a'), put16(&m, 0xC000 | 16); /* @12: "a" -> @16 (forward) */
    put16(&m, 1), put16(&m, 1);
    expect_udp_error(&m, "parse error: compression pointer does not point backwards");

    /* Ping-pong: @12 "a" -> @18; @18 "b" -> @12. The first jump is forward: rejected. An
     * answer owner at @22 pointing to @18, whose pointer goes back to @12 (< 18), then @12's
     * pointer to @18 is not < 12: rejected, no loop. */
    put_header(&m, 3, 0x8180, 0, 1);
    put8(&m, 1), put8(&m, 'a'), put16(&m, 0xC000 | 16); /* @12 */
    put8(&m, 1), put8(&m, 'b'), put16(&m, 0xC000 | 12); /* @16 */
    put16(&m, 0xC000 | 16), put16(&m, 1), put16(&m, 1), put32(&m, 1), put16(&m, 4), put32(&m, 0);
    expect_udp_error(&m, "parse error: compression pointer does not point backwards");

    /* A pointer past the end of the message. */
    put_header(&m, 4, 0x8180, 1, 0);
    put16(&m, 0xC000 | 0x3FF0), put16(&m, 1), put16(&m, 1);
    expect_udp_error(&m, "parse error: compression pointer does not point backwards");

    /* Reserved label type 01. */
    put_header(&m, 5, 0x8180, 1, 0);
    put8(&m, 0x41), put8(&m, 0), put16(&m, 1), put16(&m, 1);
    expect_udp_error(&m, "parse error: reserved label type");

    /* A name over 255 octets: 5 labels of 63. */
    put_header(&m, 6, 0x8180, 1, 0);
    for (int i = 0; i < 5; i++) {
        put8(&m, 63);
        memset(m.b + m.n, 'x', 63);
        m.n += 63;
    }
    put8(&m, 0), put16(&m, 1), put16(&m, 1);
    expect_udp_error(&m, "parse error: name longer than 255 octets");

    /* RDLENGTH past the end. */
    put_header(&m, 7, 0x8180, 0, 1);
    put8(&m, 0), put16(&m, 1), put16(&m, 1), put32(&m, 1), put16(&m, 200), put32(&m, 0);
    expect_udp_error(&m, "parse error: RDLENGTH runs past the message");

    /* An A record with 5 bytes of RDATA. */
    put_header(&m, 8, 0x8180, 0, 1);
    put8(&m, 0), put16(&m, 1), put16(&m, 1), put32(&m, 1), put16(&m, 5), put32(&m, 0), put8(&m, 0);
    expect_udp_error(&m, "parse error: RDATA does not match its type");

    /* Absurd counts. */
    put_header(&m, 9, 0x8180, 0xFFFF, 0xFFFF);
    expect_udp_error(&m, "parse error: section counts exceed the message");

    /* Truncated: 5 bytes. */
    m.n = 5;
    expect_udp_error(&m, "parse error: message shorter than the 12-byte header");

    /* A label running past the end. */
    put_header(&m, 10, 0x8180, 1, 0);
    put8(&m, 40);
    for (int i = 0; i < 8; i++) put8(&m, 'a');
    expect_udp_error(&m, "parse error: label runs past the message");
}

/* A backwards pointer beyond offset 255 decodes: all 14 offset bits are used. */
static void test_far_pointer(void)
{
    struct msg m;
    put_header(&m, 0x4242, 0x8180, 1, 2);
    put_name(&m, "far.example");
    put16(&m, 16), put16(&m, 1);
    /* answer 1: a TXT record with 300 bytes of RDATA to push the next name past 255 */
    put16(&m, 0xC00C), put16(&m, 16), put16(&m, 1), put32(&m, 9), put16(&m, 300);
    put8(&m, 255);
    memset(m.b + m.n, 't', 255);
    m.n += 255;
    put8(&m, 43);
    memset(m.b + m.n, 'u', 43);
    m.n += 43;
    size_t target = m.n; /* > 255 */
    /* answer 2: owner "sub" + pointer to question; then a CNAME whose data points at @target */
    put8(&m, 3), memcpy(m.b + m.n, "sub", 3), m.n += 3, put16(&m, 0xC00C);
    put16(&m, 5), put16(&m, 1), put32(&m, 9), put16(&m, 2), put16(&m, 0xC000 | (unsigned)target);
    CHECK(target > 255);

    struct st_conn *c = new_conn(ST_TRANSPORT_UDP);
    struct msg q;
    query(&q, 0x4242, "far.example", 16);
    feed(c, ST_DIR_TO_SERVER, &q, 1000100);
    feed(c, ST_DIR_TO_CLIENT, &m, 1000200);
    st_conn_close(c, ST_CLOSE_FIN, 1000300);
    st_conn_free(c);
    CHECK_INT(ngot, 1);
    json_t *e = got_json(0);
    CHECK(jpath(e, "error") == NULL);
    CHECK_INT(jint(e, "dns.id"), 0x4242);
    CHECK_STR(jstr(e, "dns.answers.1.name"), "sub.far.example");
    CHECK_STR(jstr(e, "dns.answers.1.data"), "sub.far.example");
    CHECK_INT(strlen(jstr(e, "dns.answers.0.data") ? jstr(e, "dns.answers.0.data") : ""), 255 + 1 + 43);
    json_decref(e);
    reset();
}

/* TCP: two pipelined queries answered in reverse order, fed one byte at a time. */
static void test_tcp_out_of_order(void)
{
    struct msg q1, q2, a1, a2;
    const uint8_t ip1[4] = {10, 0, 0, 1}, ip2[4] = {10, 0, 0, 2};
    query(&q1, 100, "one.example", 1);
    query(&q2, 200, "two.example", 1);
    answer_a(&a1, 100, "one.example", ip1);
    answer_a(&a2, 200, "two.example", ip2);
    uint8_t up[512], down[512];
    size_t nu = 0, nd = 0;
    up[nu++] = (uint8_t)(q1.n >> 8), up[nu++] = (uint8_t)q1.n;
    memcpy(up + nu, q1.b, q1.n), nu += q1.n;
    up[nu++] = (uint8_t)(q2.n >> 8), up[nu++] = (uint8_t)q2.n;
    memcpy(up + nu, q2.b, q2.n), nu += q2.n;
    down[nd++] = (uint8_t)(a2.n >> 8), down[nd++] = (uint8_t)a2.n;
    memcpy(down + nd, a2.b, a2.n), nd += a2.n;
    down[nd++] = (uint8_t)(a1.n >> 8), down[nd++] = (uint8_t)a1.n;
    memcpy(down + nd, a1.b, a1.n), nd += a1.n;

    struct st_conn *c = new_conn(ST_TRANSPORT_TCP);
    for (size_t i = 0; i < nu; i++) st_conn_feed(c, ST_DIR_TO_SERVER, up + i, 1, 1000100);
    for (size_t i = 0; i < nd; i++) st_conn_feed(c, ST_DIR_TO_CLIENT, down + i, 1, 1000200 + i);
    st_conn_close(c, ST_CLOSE_FIN, 1001000);
    st_conn_free(c);
    CHECK_INT(ngot, 2);
    json_t *e = got_json(0);
    CHECK_STR(jstr(e, "request.path"), "two.example");
    CHECK_INT(jint(e, "dns.id"), 200);
    CHECK_STR(jstr(e, "dns.answers.0.data"), "10.0.0.2");
    CHECK_INT(jint(e, "request.bytes"), (long long)q2.n + 2);
    json_decref(e);
    e = got_json(1);
    CHECK_STR(jstr(e, "request.path"), "one.example");
    CHECK_STR(jstr(e, "dns.answers.0.data"), "10.0.0.1");
    CHECK_STR(jstr(e, "dns.transport"), "tcp");
    json_decref(e);
    reset();

    /* A hostile message over TCP stops parsing with one error entry. */
    c = new_conn(ST_TRANSPORT_TCP);
    const uint8_t bad[] = {0, 18, 0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1};
    st_conn_feed(c, ST_DIR_TO_CLIENT, bad, sizeof(bad), 1000100);
    CHECK_INT(st_conn_proto(c), ST_PROTO_TCP);
    st_conn_close(c, ST_CLOSE_FIN, 1000200);
    st_conn_free(c);
    CHECK_INT(ngot, 1);
    e = got_json(0);
    CHECK_STR(jstr(e, "error.message"), "parse error: DNS: compression pointer does not point backwards");
    json_decref(e);
    reset();
}

/* Unanswered queries become entries with "no answer" at close; the same ID with a
 * different question does not match. */
static void test_unanswered(void)
{
    struct msg q, a;
    const uint8_t ip[4] = {10, 0, 0, 9};
    struct st_conn *c = new_conn(ST_TRANSPORT_UDP);
    query(&q, 5, "lost.example", 1);
    feed(c, ST_DIR_TO_SERVER, &q, 1000100);
    answer_a(&a, 5, "other.example", ip); /* same ID, other question: an answer on its own */
    feed(c, ST_DIR_TO_CLIENT, &a, 1000200);
    st_conn_close(c, ST_CLOSE_FIN, 1003000);
    st_conn_free(c);
    CHECK_INT(ngot, 2);
    json_t *e = got_json(0);
    CHECK(jpath(e, "request") == NULL);
    CHECK_STR(jstr(e, "request.path"), NULL);
    CHECK_STR(jstr(e, "dns.answers.0.data"), "10.0.0.9");
    CHECK_STR(jstr(e, "summary"), "A other.example");
    json_decref(e);
    e = got_json(1);
    CHECK_STR(jstr(e, "request.path"), "lost.example");
    CHECK_STR(jstr(e, "error.message"), "no answer");
    CHECK(jpath(e, "response") == NULL);
    CHECK_STR(jstr(e, "dns.questions.0.name"), "lost.example");
    CHECK_INT(jint(e, "timestamp"), 1000);
    json_decref(e);
    reset();
}

/* Detection path (no guess): a UDP datagram longer than ST_DETECT_MAX reaches the module whole. */
static void test_udp_detect_whole_datagram(void)
{
    static struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct st_conn_info info = {.start_us = 1000000, .transport = ST_TRANSPORT_UDP};
    strcpy(info.server.ip, "10.96.0.10");
    info.server.port = 53;
    struct st_conn *c = st_conn_new(&info, &cfg, on_entry, NULL);
    struct msg q, a;
    const uint8_t ip[4] = {10, 2, 3, 4};
    const char *longname = "a-rather-long-service-name.some-namespace.svc.cluster.local";
    query(&q, 9, longname, 1);
    CHECK(q.n > ST_DETECT_MAX);
    answer_a(&a, 9, longname, ip);
    feed(c, ST_DIR_TO_SERVER, &q, 1000100);
    feed(c, ST_DIR_TO_CLIENT, &a, 1000200);
    st_conn_close(c, ST_CLOSE_FIN, 1000300);
    st_conn_free(c);
    CHECK_INT(ngot, 1);
    json_t *e = got_json(0);
    CHECK_STR(jstr(e, "request.path"), longname);
    CHECK_STR(jstr(e, "dns.answers.0.data"), "10.2.3.4");
    json_decref(e);
    reset();
}

int main(void)
{
    test_captures();
    test_hostile();
    test_far_pointer();
    test_tcp_out_of_order();
    test_unanswered();
    test_udp_detect_whole_datagram();
    return CHECK_DONE();
}
