/* tls.c - TLS metadata without decrypting: one entry per connection, emitted at close.
 *
 * Both directions are walked record by record (5-byte headers only, never the encrypted
 * payload). Handshake bytes are reassembled across records and TCP segments, bounded by
 * TLS_HELLO_MAX, until the ClientHello (SNI, ALPN offered, versions offered, cipher suites)
 * and the ServerHello (chosen version and cipher; ALPN too for TLS 1.2, where it is not
 * encrypted) are in. A plaintext fatal alert (2-byte alert record: before encryption
 * starts) becomes the entry's error. GREASE values (RFC 8701) are skipped everywhere.
 *
 * Nothing here stops the connection from being counted: a malformed hello only makes
 * the entry carry a parse error, and the byte counts stay true. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry_json.h"
#include "proto.h"

#define TLS_HELLO_MAX (16384 + 4)     /* handshake bytes buffered per direction */
#define TLS_RECORD_MAX (16384 + 2048) /* largest record length accepted (RFC 5246 §6.2.3) */
#define TLS_LIST_MAX 64               /* items listed per offered list (counted beyond) */

enum { REC_CCS = 20, REC_ALERT = 21, REC_HANDSHAKE = 22, REC_APPDATA = 23, REC_HEARTBEAT = 24 };
enum { HS_CLIENT_HELLO = 1, HS_SERVER_HELLO = 2 };
enum { EXT_SNI = 0, EXT_ALPN = 16, EXT_SUPPORTED_VERSIONS = 43, EXT_ECH = 0xfe0d };

struct tls_dir {
    uint8_t hdr[5];
    size_t hdr_len;    /* header bytes of the current record seen (5 = in the body) */
    size_t rec_len;    /* body length of the current record */
    size_t rec_left;   /* body bytes still to come */
    bool walking;      /* false once a record header made no sense */
    bool want_hello;   /* still reassembling this side's hello */
    uint8_t *hs;       /* handshake bytes while want_hello */
    size_t hs_len, hs_cap;
    uint8_t alert[2];
    size_t alert_len;
    uint64_t bytes;
};

struct tls_state {
    struct tls_dir dir[2];
    bool client_hello, server_hello, hello_retry, ech;
    char *sni;                 /* malloc'd bytes, sni_len long; NULL without SNI */
    size_t sni_len;
    json_t *alpn_offered;      /* NULL without the extension */
    json_t *versions_offered;
    json_t *suites_offered;
    size_t suites_count;
    char *alpn_selected;       /* TLS 1.2 only: TLS 1.3 hides it */
    size_t alpn_selected_len;
    uint16_t version, cipher;
    char error[160];           /* first failure; "" when none */
    uint64_t start_us;
};

/* --- names --- */

static const struct {
    uint16_t id;
    const char *name;
} suites[] = {
    {0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"},
    {0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"},
    {0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
    {0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"},
    {0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"},
    {0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
    {0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"},
    {0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256"},
    {0x0040, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256"},
    {0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
    {0x006a, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256"},
    {0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
    {0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384"},
    {0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0x00a2, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"},
    {0x00a3, "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384"},
    {0x00ff, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"},
    {0x1301, "TLS_AES_128_GCM_SHA256"},
    {0x1302, "TLS_AES_256_GCM_SHA384"},
    {0x1303, "TLS_CHACHA20_POLY1305_SHA256"},
    {0x1304, "TLS_AES_128_CCM_SHA256"},
    {0x1305, "TLS_AES_128_CCM_8_SHA256"},
    {0x5600, "TLS_FALLBACK_SCSV"},
    {0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
    {0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"},
    {0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
    {0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"},
    {0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"},
    {0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"},
    {0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"},
    {0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
    {0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
    {0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
    {0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0xc09c, "TLS_RSA_WITH_AES_128_CCM"},
    {0xc09d, "TLS_RSA_WITH_AES_256_CCM"},
    {0xc09e, "TLS_DHE_RSA_WITH_AES_128_CCM"},
    {0xc09f, "TLS_DHE_RSA_WITH_AES_256_CCM"},
    {0xc0a0, "TLS_RSA_WITH_AES_128_CCM_8"},
    {0xc0a1, "TLS_RSA_WITH_AES_256_CCM_8"},
    {0xc0a2, "TLS_DHE_RSA_WITH_AES_128_CCM_8"},
    {0xc0a3, "TLS_DHE_RSA_WITH_AES_256_CCM_8"},
    {0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"},
    {0xc0ad, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"},
    {0xc0ae, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"},
    {0xc0af, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"},
    {0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
};

/* IANA name of a cipher suite (table above, sorted by id), else "0x1234". */
static json_t *suite_json(uint16_t id)
{
    size_t lo = 0, hi = sizeof(suites) / sizeof(suites[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (suites[mid].id == id) return json_string(suites[mid].name);
        if (suites[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    char buf[8];
    snprintf(buf, sizeof(buf), "0x%04x", id);
    return json_string(buf);
}

static const char *version_name(uint16_t v, char *buf, size_t cap)
{
    switch (v) {
    case 0x0300: return "SSL 3.0";
    case 0x0301: return "TLS 1.0";
    case 0x0302: return "TLS 1.1";
    case 0x0303: return "TLS 1.2";
    case 0x0304: return "TLS 1.3";
    }
    if ((v & 0xff00) == 0x7f00) snprintf(buf, cap, "TLS 1.3 draft %u", v & 0xff);
    else snprintf(buf, cap, "0x%04x", v);
    return buf;
}

static const char *alert_name(unsigned d)
{
    switch (d) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 113: return "bad_certificate_status_response";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    }
    return NULL;
}

/* RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA. */
static bool is_grease(uint16_t v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 12) == ((v >> 4) & 0xf);
}

/* --- a bounds-checked reader: once past the end it only returns zeros and `bad` --- */

struct rd {
    const uint8_t *p;
    size_t n;
    bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
    if (r->bad || r->n < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->n -= n;
    return p;
}

static unsigned get8(struct rd *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

static unsigned get16(struct rd *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (unsigned)(p[0] << 8 | p[1]) : 0;
}

/* A sub-reader over the next n bytes (the length prefix read by the caller). */
static struct rd sub(struct rd *r, size_t n)
{
    const uint8_t *p = take(r, n);
    struct rd s = {p, p ? n : 0, p == NULL};
    return s;
}

static void set_error(struct tls_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct tls_state *s, const char *fmt, ...)
{
    if (s->error[0]) return; /* the first failure explains the rest */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
}

/* --- hellos --- */

static void append_limited(json_t *list, json_t *item)
{
    if (json_array_size(list) < TLS_LIST_MAX) json_array_append_new(list, item);
    else json_decref(item);
}

static int client_hello(struct tls_state *s, struct rd *r, const char **why)
{
    unsigned legacy = get16(r);
    take(r, 32); /* random */
    struct rd sid = sub(r, get8(r));
    (void)sid;
    struct rd cs = sub(r, get16(r));
    if (r->bad || cs.n % 2 || cs.n == 0) {
        *why = "bad cipher suite list";
        return -1;
    }
    while (cs.n) {
        uint16_t id = (uint16_t)get16(&cs);
        if (is_grease(id)) continue;
        s->suites_count++;
        append_limited(s->suites_offered, suite_json(id));
    }
    struct rd comp = sub(r, get8(r));
    if (r->bad || comp.n == 0) {
        *why = "bad compression methods";
        return -1;
    }
    bool have_versions = false;
    if (r->n > 0) {
        struct rd exts = sub(r, get16(r));
        if (r->bad) {
            *why = "extensions run past the message";
            return -1;
        }
        while (exts.n > 0 && !exts.bad) {
            unsigned type = get16(&exts);
            struct rd x = sub(&exts, get16(&exts));
            if (exts.bad) break;
            switch (type) {
            case EXT_SNI: {
                struct rd list = sub(&x, get16(&x));
                while (list.n > 0 && !list.bad) {
                    unsigned name_type = get8(&list);
                    size_t len = get16(&list);
                    const uint8_t *name = take(&list, len);
                    if (name && name_type == 0 && s->sni == NULL && len > 0 && len <= 255) {
                        s->sni = malloc(len);
                        if (s->sni) memcpy(s->sni, name, len), s->sni_len = len;
                    }
                }
                if (list.bad || x.bad) {
                    *why = "bad server_name extension";
                    return -1;
                }
                break;
            }
            case EXT_ALPN: {
                struct rd list = sub(&x, get16(&x));
                if (s->alpn_offered == NULL) s->alpn_offered = json_array();
                while (list.n > 0 && !list.bad) {
                    size_t len = get8(&list);
                    const uint8_t *proto = take(&list, len);
                    if (proto == NULL || len == 0) break;
                    if (len == 2 && is_grease((uint16_t)(proto[0] << 8 | proto[1]))) continue;
                    if (s->alpn_offered)
                        append_limited(s->alpn_offered, st_json_bytes_string((const char *)proto, len));
                }
                if (list.bad || x.bad) {
                    *why = "bad ALPN extension";
                    return -1;
                }
                break;
            }
            case EXT_SUPPORTED_VERSIONS: {
                struct rd list = sub(&x, get8(&x));
                if (x.bad || list.n % 2) {
                    *why = "bad supported_versions extension";
                    return -1;
                }
                have_versions = true;
                while (list.n > 0) {
                    uint16_t v = (uint16_t)get16(&list);
                    char buf[24];
                    if (!is_grease(v))
                        append_limited(s->versions_offered, json_string(version_name(v, buf, sizeof(buf))));
                }
                break;
            }
            case EXT_ECH:
                s->ech = true;
                break;
            }
        }
        if (exts.bad) {
            *why = "bad extension";
            return -1;
        }
    }
    if (!have_versions) {
        char buf[24];
        json_array_append_new(s->versions_offered,
                              json_string(version_name((uint16_t)legacy, buf, sizeof(buf))));
    }
    s->client_hello = true;
    return 0;
}

/* RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest. */
static const uint8_t hrr_random[32] = {
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
};

/* Returns 1 for a real ServerHello, 0 for a HelloRetryRequest (another follows), -1 bad. */
static int server_hello(struct tls_state *s, struct rd *r, const char **why)
{
    unsigned legacy = get16(r);
    const uint8_t *random = take(r, 32);
    sub(r, get8(r));
    unsigned cipher = get16(r);
    get8(r); /* compression */
    if (r->bad) {
        *why = "ServerHello too short";
        return -1;
    }
    unsigned version = legacy;
    if (r->n > 0) {
        struct rd exts = sub(r, get16(r));
        while (exts.n > 0 && !exts.bad) {
            unsigned type = get16(&exts);
            struct rd x = sub(&exts, get16(&exts));
            if (type == EXT_SUPPORTED_VERSIONS) {
                unsigned v = get16(&x);
                if (!x.bad) version = v;
            } else if (type == EXT_ALPN) {
                struct rd list = sub(&x, get16(&x));
                size_t len = get8(&list);
                const uint8_t *proto = take(&list, len);
                if (proto && len > 0 && s->alpn_selected == NULL) {
                    s->alpn_selected = malloc(len);
                    if (s->alpn_selected) memcpy(s->alpn_selected, proto, len), s->alpn_selected_len = len;
                }
            }
            if (x.bad) exts.bad = true;
        }
        if (r->bad || exts.bad) {
            *why = "bad ServerHello extensions";
            return -1;
        }
    }
    s->version = (uint16_t)version;
    s->cipher = (uint16_t)cipher;
    if (memcmp(random, hrr_random, sizeof(hrr_random)) == 0) {
        s->hello_retry = true;
        return 0;
    }
    s->server_hello = true;
    return 1;
}

static void stop_hello(struct st_conn *conn, struct tls_dir *d)
{
    st_conn_mem_refund(conn, d->hs_cap);
    free(d->hs);
    d->hs = NULL;
    d->hs_len = d->hs_cap = 0;
    d->want_hello = false;
}

/* Handshake bytes of one direction: buffers them and parses whole messages. */
static void handshake_bytes(struct tls_state *s, struct st_conn *conn, enum st_dir dir,
                            const uint8_t *data, size_t len)
{
    struct tls_dir *d = &s->dir[dir];
    const char *side = dir == ST_DIR_TO_SERVER ? "ClientHello" : "ServerHello";
    if (d->hs_len + len > d->hs_cap) {
        size_t need = d->hs_len + len, cap = d->hs_cap ? d->hs_cap * 2 : 1024;
        if (need > TLS_HELLO_MAX) {
            set_error(s, "parse error: %s larger than %d bytes", side, TLS_HELLO_MAX);
            stop_hello(conn, d);
            return;
        }
        if (cap < need) cap = need;
        if (cap > TLS_HELLO_MAX) cap = TLS_HELLO_MAX;
        if (st_conn_mem_charge(conn, cap - d->hs_cap) < 0) {
            set_error(s, "parse error: no memory for the %s", side);
            stop_hello(conn, d);
            return;
        }
        uint8_t *nb = realloc(d->hs, cap);
        if (nb == NULL) {
            st_conn_mem_refund(conn, cap - d->hs_cap);
            set_error(s, "parse error: no memory for the %s", side);
            stop_hello(conn, d);
            return;
        }
        d->hs = nb;
        d->hs_cap = cap;
    }
    memcpy(d->hs + d->hs_len, data, len);
    d->hs_len += len;

    while (d->want_hello && d->hs_len >= 4) {
        unsigned type = d->hs[0];
        size_t mlen = (size_t)d->hs[1] << 16 | (size_t)d->hs[2] << 8 | d->hs[3];
        if (4 + mlen > TLS_HELLO_MAX) {
            set_error(s, "parse error: %s larger than %d bytes", side, TLS_HELLO_MAX);
            stop_hello(conn, d);
            return;
        }
        if (d->hs_len < 4 + mlen) return; /* more records to come */
        struct rd r = {d->hs + 4, mlen, false};
        const char *why = NULL;
        if (dir == ST_DIR_TO_SERVER) {
            if (type != HS_CLIENT_HELLO) set_error(s, "parse error: first handshake message is type %u, not ClientHello", type);
            else if (client_hello(s, &r, &why) < 0) set_error(s, "parse error: malformed ClientHello: %s", why);
            stop_hello(conn, d);
            return;
        }
        if (type != HS_SERVER_HELLO) {
            set_error(s, "parse error: handshake message type %u before the ServerHello", type);
            stop_hello(conn, d);
            return;
        }
        int rc = server_hello(s, &r, &why);
        if (rc != 0) {
            if (rc < 0) set_error(s, "parse error: malformed ServerHello: %s", why);
            stop_hello(conn, d);
            return;
        }
        /* HelloRetryRequest: drop it, the real ServerHello follows. */
        memmove(d->hs, d->hs + 4 + mlen, d->hs_len - 4 - mlen);
        d->hs_len -= 4 + mlen;
    }
}

static void alert_bytes(struct tls_state *s, enum st_dir dir, struct tls_dir *d, const uint8_t *data,
                        size_t len)
{
    if (d->rec_len != 2) return; /* longer alerts are encrypted */
    while (len-- > 0 && d->alert_len < 2) d->alert[d->alert_len++] = *data++;
    if (d->alert_len < 2 || d->alert[0] != 2) return; /* warnings (close_notify) are fine */
    const char *name = alert_name(d->alert[1]);
    const char *who = dir == ST_DIR_TO_SERVER ? "client" : "server";
    if (name) set_error(s, "%s alert: %s", who, name);
    else set_error(s, "%s alert: %u", who, d->alert[1]);
}

/* --- module --- */

static void *tls_create(struct st_conn *conn)
{
    struct tls_state *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    s->suites_offered = json_array();
    s->versions_offered = json_array();
    if (s->suites_offered == NULL || s->versions_offered == NULL) {
        json_decref(s->suites_offered);
        json_decref(s->versions_offered);
        free(s);
        return NULL;
    }
    for (int i = 0; i < 2; i++) s->dir[i].walking = s->dir[i].want_hello = true;
    s->start_us = st_conn_info(conn)->start_us;
    return s;
}

static int tls_feed(void *state, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                    size_t len, uint64_t now_us)
{
    (void)now_us;
    struct tls_state *s = state;
    struct tls_dir *d = &s->dir[dir];
    d->bytes += len;
    while (len > 0 && d->walking) {
        if (d->hdr_len < 5) {
            size_t n = 5 - d->hdr_len < len ? 5 - d->hdr_len : len;
            memcpy(d->hdr + d->hdr_len, data, n);
            d->hdr_len += n, data += n, len -= n;
            if (d->hdr_len < 5) break;
            d->rec_len = d->rec_left = (size_t)d->hdr[3] << 8 | d->hdr[4];
            if (d->hdr[0] < REC_CCS || d->hdr[0] > REC_HEARTBEAT || d->hdr[1] != 3 ||
                d->rec_len > TLS_RECORD_MAX) {
                /* Not TLS records (any more): keep counting, say so if it matters. */
                d->walking = false;
                if (d->want_hello)
                    set_error(s, "parse error: not a TLS record (%02x %02x %02x) from the %s",
                              d->hdr[0], d->hdr[1], d->hdr[2], dir == ST_DIR_TO_SERVER ? "client" : "server");
                stop_hello(conn, d);
                break;
            }
            d->alert_len = 0;
            if (d->rec_len == 0) d->hdr_len = 0;
            continue;
        }
        size_t n = d->rec_left < len ? d->rec_left : len;
        if (d->hdr[0] == REC_HANDSHAKE && d->want_hello) handshake_bytes(s, conn, dir, data, n);
        else if (d->hdr[0] == REC_ALERT) alert_bytes(s, dir, d, data, n);
        else if (d->want_hello && d->hdr[0] != REC_CCS) {
            /* Application data before the hello: the handshake is already encrypted or
             * this is not the start of a TLS stream. */
            set_error(s, "parse error: record type %u before the %s", d->hdr[0],
                      dir == ST_DIR_TO_SERVER ? "ClientHello" : "ServerHello");
            stop_hello(conn, d);
        }
        d->rec_left -= n, data += n, len -= n;
        if (d->rec_left == 0) d->hdr_len = 0;
    }
    return 0;
}

static void tls_close(void *state, struct st_conn *conn, enum st_close_reason reason,
                      uint64_t now_us)
{
    struct tls_state *s = state;
    struct st_entry *e = st_conn_entry_new(conn, ST_PROTO_TLS);
    if (e == NULL) return;
    char vb[24];
    const struct st_conn_info *info = st_conn_info(conn);
    e->start_us = s->start_us;
    e->end_us = now_us > s->start_us ? now_us : s->start_us;
    e->request.present = true;
    e->request.wire_bytes = s->dir[ST_DIR_TO_SERVER].bytes;
    e->response.present = s->dir[ST_DIR_TO_CLIENT].bytes > 0;
    e->response.wire_bytes = s->dir[ST_DIR_TO_CLIENT].bytes;

    json_t *sec = json_object();
    if (s->sni) json_object_set_new(sec, "sni", st_json_bytes_string(s->sni, s->sni_len));
    if (s->alpn_offered) json_object_set(sec, "alpn", s->alpn_offered);
    if (s->alpn_selected)
        json_object_set_new(sec, "alpnSelected", st_json_bytes_string(s->alpn_selected, s->alpn_selected_len));
    if (s->client_hello) {
        json_object_set(sec, "versionsOffered", s->versions_offered);
        json_object_set(sec, "cipherSuitesOffered", s->suites_offered);
        json_object_set_new(sec, "cipherSuitesOfferedCount", json_integer((json_int_t)s->suites_count));
    }
    if (s->server_hello) {
        const char *v = version_name(s->version, vb, sizeof(vb));
        json_object_set_new(sec, "version", json_string(v));
        json_object_set_new(sec, "cipher", suite_json(s->cipher));
        if (strncmp(v, "TLS ", 4) == 0) e->proto_version = st_arena_strdup(&e->arena, v + 4);
    }
    if (s->hello_retry) json_object_set_new(sec, "helloRetry", json_true());
    if (s->ech) json_object_set_new(sec, "ech", json_true());
    json_object_set_new(sec, "bytesToServer", json_integer((json_int_t)s->dir[ST_DIR_TO_SERVER].bytes));
    json_object_set_new(sec, "bytesToClient", json_integer((json_int_t)s->dir[ST_DIR_TO_CLIENT].bytes));
    e->section = sec;

    if (s->error[0]) st_entry_set_error(e, "%s", s->error);
    else if (s->client_hello && !s->server_hello) st_entry_set_error(e, "no ServerHello before the connection ended");
    else if (reason == ST_CLOSE_RESET) st_entry_set_error(e, "connection reset");
    else if (reason == ST_CLOSE_TIMEOUT) st_entry_set_error(e, "connection timed out");

    /* "TLS api.example.com h2": the name asked for, and the protocol chosen (or offered). */
    char target[300], alpn[128] = "";
    if (s->sni) {
        json_t *j = json_object_get(sec, "sni");
        snprintf(target, sizeof(target), "%s", json_string_value(j) ? json_string_value(j) : "");
    } else {
        snprintf(target, sizeof(target), "%s:%u", info->server.ip, info->server.port);
    }
    json_t *sel = json_object_get(sec, "alpnSelected");
    if (sel) {
        snprintf(alpn, sizeof(alpn), " %s", json_string_value(sel));
    } else if (s->alpn_offered && json_array_size(s->alpn_offered) > 0) {
        size_t o = 0;
        for (size_t i = 0; i < json_array_size(s->alpn_offered) && o < sizeof(alpn); i++) {
            int n = snprintf(alpn + o, sizeof(alpn) - o, "%s%s", i ? "," : " ",
                             json_string_value(json_array_get(s->alpn_offered, i)));
            if (n < 0) break;
            o += (size_t)n;
        }
    }
    st_entry_set_summary(e, "TLS %s%s", target, alpn);
    st_conn_emit(conn, e);
}

static void tls_destroy(void *state)
{
    struct tls_state *s = state;
    if (s == NULL) return;
    for (int i = 0; i < 2; i++) free(s->dir[i].hs);
    free(s->sni);
    free(s->alpn_selected);
    json_decref(s->alpn_offered);
    json_decref(s->versions_offered);
    json_decref(s->suites_offered);
    free(s);
}

const struct st_proto_ops st_tls_ops = {
    .proto = ST_PROTO_TLS,
    .create = tls_create,
    .feed = tls_feed,
    .close = tls_close,
    .destroy = tls_destroy,
};
