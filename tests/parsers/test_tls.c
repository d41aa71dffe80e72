/* TLS: real openssl s_client / curl <-> openssl s_server captures (TLS 1.3 and 1.2, SNI,
 * ALPN, a protocol_version alert) in every chunking, and crafted hellos (split across
 * records, GREASE, HelloRetryRequest, garbage, oversize). */
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

/* Replays a capture in all three chunkings; they must agree. Returns the one entry. */
static json_t *replay_one(const char *name)
{
    struct st_capture cap;
    if (st_capture_load(st_capture_path(name), &cap) < 0) {
        CHECK(!"capture missing");
        return NULL;
    }
    json_t *rec = st_capture_replay(&cap, NULL, ST_SPLIT_RECORDED, 1);
    json_t *byte = st_capture_replay(&cap, NULL, ST_SPLIT_BYTE, 1);
    json_t *rnd = st_capture_replay(&cap, NULL, ST_SPLIT_RANDOM, 12345);
    CHECK(json_equal(rec, byte));
    CHECK(json_equal(rec, rnd));
    uint64_t up = 0, down = 0;
    for (size_t i = 0; i < cap.count; i++) *(cap.chunks[i].dir == ST_DIR_TO_SERVER ? &up : &down) += cap.chunks[i].len;
    st_capture_free(&cap);
    json_decref(byte);
    json_decref(rnd);
    CHECK_INT(json_array_size(rec), 1);
    json_t *e = json_incref(json_array_get(rec, 0));
    json_decref(rec);
    CHECK_STR(jstr(e, "protocol.name"), "tls");
    CHECK_INT(jint(e, "tls.bytesToServer"), (long long)up);
    CHECK_INT(jint(e, "tls.bytesToClient"), (long long)down);
    CHECK_INT(jint(e, "request.bytes"), (long long)up);
    CHECK_INT(jint(e, "response.bytes"), (long long)down);
    return e;
}

static bool list_has(json_t *list, const char *s)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (json_string_value(json_array_get(list, i)) && strcmp(json_string_value(json_array_get(list, i)), s) == 0)
            return true;
    return false;
}

static void test_captures(void)
{
    json_t *e = replay_one("tls/tls13-openssl.cap");
    CHECK_STR(jstr(e, "tls.sni"), "api.example.test");
    CHECK_INT(json_array_size(jpath(e, "tls.alpn")), 2);
    CHECK_STR(jstr(e, "tls.alpn.0"), "h2");
    CHECK_STR(jstr(e, "tls.alpn.1"), "http/1.1");
    CHECK(jpath(e, "tls.alpnSelected") == NULL); /* encrypted in TLS 1.3 */
    CHECK_INT(json_array_size(jpath(e, "tls.versionsOffered")), 1);
    CHECK_STR(jstr(e, "tls.versionsOffered.0"), "TLS 1.3");
    CHECK_STR(jstr(e, "tls.version"), "TLS 1.3");
    CHECK_STR(jstr(e, "protocol.version"), "1.3");
    CHECK_STR(jstr(e, "tls.cipher"), "TLS_AES_256_GCM_SHA384");
    CHECK_INT(jint(e, "tls.cipherSuitesOfferedCount"), 4);
    CHECK_STR(jstr(e, "tls.cipherSuitesOffered.2"), "TLS_AES_128_GCM_SHA256");
    CHECK_STR(jstr(e, "summary"), "TLS api.example.test h2,http/1.1");
    CHECK(jpath(e, "error") == NULL);
    json_decref(e);

    e = replay_one("tls/tls12-openssl.cap");
    CHECK_STR(jstr(e, "tls.sni"), "grpc.internal");
    CHECK_STR(jstr(e, "tls.alpnSelected"), "h2");
    CHECK_STR(jstr(e, "tls.versionsOffered.0"), "TLS 1.2");
    CHECK_STR(jstr(e, "tls.version"), "TLS 1.2");
    CHECK_STR(jstr(e, "tls.cipher"), "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    CHECK(list_has(jpath(e, "tls.cipherSuitesOffered"), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
    CHECK_STR(jstr(e, "summary"), "TLS grpc.internal h2");
    CHECK(jpath(e, "error") == NULL);
    json_decref(e);

    e = replay_one("tls/tls13-curl.cap");
    CHECK_STR(jstr(e, "tls.sni"), "api.example.test");
    CHECK_STR(jstr(e, "tls.alpn.0"), "http/1.1");
    CHECK_STR(jstr(e, "tls.versionsOffered.0"), "TLS 1.3");
    CHECK_STR(jstr(e, "tls.versionsOffered.1"), "TLS 1.2");
    CHECK_STR(jstr(e, "tls.version"), "TLS 1.3");
    CHECK_STR(jstr(e, "tls.cipher"), "TLS_AES_256_GCM_SHA384");
    CHECK_STR(jstr(e, "summary"), "TLS api.example.test http/1.1");
    json_decref(e);

    e = replay_one("tls/tls12-curl.cap");
    CHECK_STR(jstr(e, "tls.sni"), "api.example.test");
    CHECK_STR(jstr(e, "tls.alpnSelected"), "http/1.1");
    CHECK_STR(jstr(e, "tls.version"), "TLS 1.2");
    CHECK_STR(jstr(e, "protocol.version"), "1.2");
    CHECK_STR(jstr(e, "tls.cipher"), "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    json_decref(e);

    e = replay_one("tls/alert-version.cap"); /* a TLS 1.2 client, a TLS 1.3-only server */
    CHECK_STR(jstr(e, "tls.sni"), "api.example.test");
    CHECK_STR(jstr(e, "tls.versionsOffered.0"), "TLS 1.2");
    CHECK(jpath(e, "tls.version") == NULL);
    CHECK_STR(jstr(e, "error.message"), "server alert: protocol_version");
    json_decref(e);
}

/* --- crafted hellos --- */

struct buf {
    uint8_t b[40000];
    size_t n;
};

static void put8(struct buf *m, unsigned v)
{
    m->b[m->n++] = (uint8_t)v;
}

static void put16(struct buf *m, unsigned v)
{
    put8(m, v >> 8), put8(m, v & 0xff);
}

static void put24(struct buf *m, unsigned v)
{
    put8(m, v >> 16), put16(m, v & 0xffff);
}

static void putn(struct buf *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

/* A ClientHello handshake message (header included) with GREASE everywhere, SNI, ALPN,
 * supported_versions, and `pad` bytes of padding extension. */
static void client_hello(struct buf *m, const char *sni, size_t pad)
{
    struct buf body = {.n = 0};
    put16(&body, 0x0303);
    for (int i = 0; i < 32; i++) put8(&body, i);
    put8(&body, 0);
    put16(&body, 8), put16(&body, 0x2a2a), put16(&body, 0x1301), put16(&body, 0x1302), put16(&body, 0xc02f);
    put8(&body, 1), put8(&body, 0);
    struct buf ext = {.n = 0};
    put16(&ext, 0x3a3a), put16(&ext, 0); /* GREASE extension */
    size_t sl = strlen(sni);
    put16(&ext, 0), put16(&ext, (unsigned)sl + 5), put16(&ext, (unsigned)sl + 3), put8(&ext, 0);
    put16(&ext, (unsigned)sl), putn(&ext, sni, sl);
    /* ALPN: GREASE id, h2, http/1.1 */
    put16(&ext, 16), put16(&ext, 2 + 3 + 3 + 9), put16(&ext, 3 + 3 + 9);
    put8(&ext, 2), put8(&ext, 0x4a), put8(&ext, 0x4a);
    put8(&ext, 2), putn(&ext, "h2", 2), put8(&ext, 8), putn(&ext, "http/1.1", 8);
    put16(&ext, 43), put16(&ext, 7), put8(&ext, 6), put16(&ext, 0x5a5a), put16(&ext, 0x0304), put16(&ext, 0x0303);
    if (pad) {
        put16(&ext, 21), put16(&ext, (unsigned)pad);
        memset(ext.b + ext.n, 0, pad);
        ext.n += pad;
    }
    put16(&body, (unsigned)ext.n), putn(&body, ext.b, ext.n);
    m->n = 0;
    put8(m, 1), put24(m, (unsigned)body.n), putn(m, body.b, body.n);
}

static void server_hello(struct buf *m, bool hrr, unsigned cipher)
{
    static const uint8_t hrr_random[32] = {
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    };
    struct buf body = {.n = 0};
    put16(&body, 0x0303);
    if (hrr) putn(&body, hrr_random, 32);
    else for (int i = 0; i < 32; i++) put8(&body, 100 + i);
    put8(&body, 0), put16(&body, cipher), put8(&body, 0);
    put16(&body, 6), put16(&body, 43), put16(&body, 2), put16(&body, 0x0304);
    m->n = 0;
    put8(m, 2), put24(m, (unsigned)body.n), putn(m, body.b, body.n);
}

/* Wraps handshake bytes into records of at most `frag` bytes each. */
static void records(struct buf *out, uint8_t type, const struct buf *hs, size_t frag)
{
    out->n = 0;
    for (size_t off = 0; off < hs->n; off += frag) {
        size_t n = hs->n - off < frag ? hs->n - off : frag;
        put8(out, type), put16(out, 0x0301), put16(out, (unsigned)n), putn(out, hs->b + off, n);
    }
}

static struct st_entry *got[8];
static int ngot;

static void on_entry(struct st_entry *e, void *arg)
{
    (void)arg;
    if (ngot < 8) got[ngot++] = e;
    else st_entry_free(e);
}

/* Runs client bytes then server bytes through a TLS connection (detected, port 443) in
 * `step`-byte chunks and returns the single entry's JSON. */
static json_t *run(const struct buf *up, const struct buf *down, size_t step, enum st_close_reason why)
{
    static struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct st_conn_info info = {.start_us = 5000000, .transport = ST_TRANSPORT_TCP};
    strcpy(info.server.ip, "10.1.0.9");
    info.server.port = 443;
    struct st_conn *c = st_conn_new(&info, &cfg, on_entry, NULL);
    for (size_t off = 0; up && off < up->n; off += step)
        st_conn_feed(c, ST_DIR_TO_SERVER, up->b + off, up->n - off < step ? up->n - off : step, 5000100);
    for (size_t off = 0; down && off < down->n; off += step)
        st_conn_feed(c, ST_DIR_TO_CLIENT, down->b + off, down->n - off < step ? down->n - off : step, 5000200);
    st_conn_close(c, why, 5001000);
    st_conn_free(c);
    CHECK_INT(ngot, 1);
    json_t *j = ngot ? st_entry_to_json(got[0], NULL) : json_object();
    for (int i = 0; i < ngot; i++) st_entry_free(got[i]);
    ngot = 0;
    return j;
}

static void test_crafted(void)
{
    static struct buf hs, up, down, sh;
    /* A ClientHello split across two records (and fed 1 byte at a time), GREASE skipped. */
    client_hello(&hs, "split.example", 0);
    records(&up, 22, &hs, hs.n / 2 + 1);
    CHECK(up.n == hs.n + 10);
    server_hello(&sh, false, 0x1301);
    records(&down, 22, &sh, 4096);
    for (size_t step = 1; step <= 7; step += 6) {
        json_t *e = run(&up, &down, step, ST_CLOSE_FIN);
        CHECK_STR(jstr(e, "tls.sni"), "split.example");
        CHECK_INT(json_array_size(jpath(e, "tls.alpn")), 2);
        CHECK_STR(jstr(e, "tls.alpn.0"), "h2");
        CHECK_INT(json_array_size(jpath(e, "tls.versionsOffered")), 2);
        CHECK_STR(jstr(e, "tls.versionsOffered.0"), "TLS 1.3");
        CHECK_INT(jint(e, "tls.cipherSuitesOfferedCount"), 3);
        CHECK_STR(jstr(e, "tls.cipherSuitesOffered.0"), "TLS_AES_128_GCM_SHA256");
        CHECK_STR(jstr(e, "tls.cipher"), "TLS_AES_128_GCM_SHA256");
        CHECK_STR(jstr(e, "tls.version"), "TLS 1.3");
        CHECK(jpath(e, "error") == NULL);
        json_decref(e);
    }

    /* HelloRetryRequest then the real ServerHello, in one record. */
    struct buf both = {.n = 0};
    server_hello(&sh, true, 0x1302);
    putn(&both, sh.b, sh.n);
    server_hello(&sh, false, 0x1303);
    putn(&both, sh.b, sh.n);
    records(&down, 22, &both, 4096);
    json_t *e = run(&up, &down, 3, ST_CLOSE_FIN);
    CHECK(json_is_true(jpath(e, "tls.helloRetry")));
    CHECK_STR(jstr(e, "tls.cipher"), "TLS_CHACHA20_POLY1305_SHA256");
    json_decref(e);

    /* No ServerHello before the connection ended; a reset. */
    e = run(&up, NULL, 100, ST_CLOSE_RESET);
    CHECK_STR(jstr(e, "error.message"), "no ServerHello before the connection ended");
    CHECK_STR(jstr(e, "tls.sni"), "split.example");
    CHECK(jpath(e, "response") == NULL);
    json_decref(e);

    /* A ClientHello of 20 KB over several records: over the 16 KiB bound. */
    client_hello(&hs, "big.example", 20000);
    records(&up, 22, &hs, 16384);
    e = run(&up, NULL, 1000, ST_CLOSE_FIN);
    CHECK_STR(jstr(e, "error.message"), "parse error: ClientHello larger than 16388 bytes");
    CHECK_INT(jint(e, "tls.bytesToServer"), (long long)up.n);
    json_decref(e);

    /* A padded ClientHello of 10 KB is fine. */
    client_hello(&hs, "padded.example", 10000);
    records(&up, 22, &hs, 16384);
    e = run(&up, NULL, 1000, ST_CLOSE_FIN);
    CHECK_STR(jstr(e, "tls.sni"), "padded.example");
    json_decref(e);

    /* A truncated ClientHello: the SNI length runs past its extension. */
    client_hello(&hs, "trunc.example", 0);
    for (size_t i = 0; i + 4 < hs.n; i++)
        if (memcmp(hs.b + i, "trunc", 5) == 0) {
            hs.b[i - 1] = 200; /* host_name length */
            break;
        }
    records(&up, 22, &hs, 4096);
    e = run(&up, NULL, 5, ST_CLOSE_FIN);
    CHECK_STR(jstr(e, "error.message"), "parse error: malformed ClientHello: bad server_name extension");
    json_decref(e);

    /* A handshake record that is no TLS after the first header: the counts stay true. */
    up.n = 0;
    const uint8_t start[] = {0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00};
    putn(&up, start, sizeof(start));
    putn(&up, "GET / HTTP/1.1\r\n\r\n", 18);
    e = run(&up, NULL, 2, ST_CLOSE_FIN);
    CHECK_STR(jstr(e, "error.message"), "parse error: malformed ClientHello: bad cipher suite list");
    CHECK_INT(jint(e, "tls.bytesToServer"), (long long)up.n);
    json_decref(e);
}

int main(void)
{
    test_captures();
    test_crafted();
    return CHECK_DONE();
}
