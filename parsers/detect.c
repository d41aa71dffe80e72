/* detect.c - which protocol a connection speaks, from its first client bytes and port.
 *
 * Each recogniser answers yes, no, or "need more bytes". Detection waits while any
 * recogniser needs more (up to ST_DETECT_MAX bytes), then takes the first yes in priority
 * order. Ports only break ties (GET is both HTTP and a Redis inline command). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "parser.h"

enum verdict { NO = 0, YES, MORE };

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static bool is_redis_port(uint16_t port)
{
    return port == 6379 || port == 6380 || port == 26379;
}

static enum verdict match_prefix(const uint8_t *d, size_t len, const char *lit, size_t lit_len)
{
    size_t n = len < lit_len ? len : lit_len;
    if (memcmp(d, lit, n) != 0) return NO;
    return len >= lit_len ? YES : MORE;
}

static enum verdict detect_h2(const uint8_t *d, size_t len)
{
    return match_prefix(d, len, h2_preface, sizeof(h2_preface) - 1);
}

/* A TLS record carrying a ClientHello: 16 03 0x LL LL 01. */
static enum verdict detect_tls(const uint8_t *d, size_t len)
{
    if (d[0] != 0x16) return NO;
    if (len < 2) return MORE;
    if (d[1] != 0x03) return NO;
    if (len < 3) return MORE;
    if (d[2] > 0x04) return NO;
    if (len < 6) return MORE;
    return d[5] == 0x01 ? YES : NO;
}

static const char *const http_methods[] = {
    "GET",       "POST",   "PUT",    "DELETE",   "HEAD",   "OPTIONS", "PATCH",
    "CONNECT",   "TRACE",  "PROPFIND", "PROPPATCH", "MKCOL", "COPY",  "MOVE",
    "LOCK",      "UNLOCK", "REPORT", "SEARCH",   "PURGE",  "LINK",    "UNLINK",
    NULL,
};

/* "METHOD SP": a known method followed by a space and a request target. */
static enum verdict detect_http1(const uint8_t *d, size_t len)
{
    enum verdict best = NO;
    for (const char *const *m = http_methods; *m; m++) {
        size_t ml = strlen(*m);
        size_t n = len < ml ? len : ml;
        if (memcmp(d, *m, n) != 0) continue;
        if (len <= ml) {
            best = MORE;
            continue;
        }
        if (d[ml] != ' ') continue;
        if (len == ml + 1) {
            best = MORE;
            continue;
        }
        uint8_t t = d[ml + 1];
        if (t == '/' || t == '*' || isalpha(t)) return YES; /* origin, asterisk, absolute, authority */
    }
    return best;
}

/* Does the first line end in " HTTP/1.x"? Needed to tell `GET k` (Redis) from `GET / HTTP/1.1`. */
static enum verdict request_line_is_http(const uint8_t *d, size_t len)
{
    const uint8_t *nl = memchr(d, '\n', len);
    if (nl == NULL) return MORE;
    size_t line = (size_t)(nl - d);
    if (line > 0 && d[line - 1] == '\r') line--;
    return line >= 9 && memcmp(d + line - 9, " HTTP/1.", 8) == 0 ? YES : NO;
}

/* RESP array of bulk strings: "*<n>\r\n$". */
static enum verdict detect_resp(const uint8_t *d, size_t len)
{
    if (d[0] != '*') return NO;
    size_t i = 1;
    while (i < len && isdigit(d[i]) && i < 8) i++;
    if (i == len) return MORE;
    if (i == 1 || d[i] != '\r') return NO;
    if (++i == len) return MORE;
    if (d[i] != '\n') return NO;
    if (++i == len) return MORE;
    return d[i] == '$' ? YES : NO;
}

static const char *const redis_inline[] = {
    "PING", "ECHO", "AUTH", "HELLO", "SELECT", "INFO", "GET", "SET", "DEL", "EXISTS", "INCR",
    "DECR", "KEYS", "MGET", "MSET", "EXPIRE", "TTL", "HGET", "HSET", "LPUSH", "RPUSH", "LPOP",
    "RPOP", "SADD", "SMEMBERS", "ZADD", "PUBLISH", "SUBSCRIBE", "PSUBSCRIBE", "MULTI", "EXEC",
    "CLIENT", "CONFIG", "QUIT", "REPLCONF", "PSYNC", "SYNC", "MONITOR", "DBSIZE", "FLUSHALL",
    "FLUSHDB", "SCAN", "TYPE", NULL,
};

/* An inline command: a known command name, case-insensitive, then space or CRLF. */
static enum verdict detect_redis_inline(const uint8_t *d, size_t len)
{
    enum verdict best = NO;
    for (const char *const *c = redis_inline; *c; c++) {
        size_t cl = strlen(*c);
        size_t n = len < cl ? len : cl;
        if (strncasecmp((const char *)d, *c, n) != 0) continue;
        if (len <= cl) {
            best = MORE;
            continue;
        }
        if (d[cl] == ' ' || d[cl] == '\r' || d[cl] == '\n') return YES;
    }
    return best;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A DNS query header: QR=0, a standard opcode, one question, no answers. */
static enum verdict dns_header_ok(const uint8_t *h)
{
    uint16_t flags = be16(h + 2);
    unsigned opcode = (flags >> 11) & 0xf;
    if (flags & 0x8000) return NO;
    if (opcode != 0 && opcode != 2 && opcode != 4 && opcode != 5) return NO;
    if (be16(h + 4) != 1) return NO;
    if (opcode != 5 && (be16(h + 6) != 0 || be16(h + 8) != 0)) return NO;
    if (be16(h + 10) > 2) return NO;
    return YES;
}

static enum verdict detect_dns_tcp(const uint8_t *d, size_t len, uint16_t port)
{
    /* DNS is binary with no magic: only trusted on the DNS ports. */
    if (port != 53 && port != 5353) return NO;
    if (len >= 2 && be16(d) < 17) return NO;
    if (len >= 5 && (d[4] & 0x80)) return NO; /* QR: a response */
    if (len < 14) return MORE;
    return dns_header_ok(d + 2);
}

/* Kafka request: int32 size, int16 api_key, int16 api_version, int32 correlation id,
 * int16 client_id length (-1 or a printable string). */
static enum verdict detect_kafka(const uint8_t *d, size_t len)
{
    if (d[0] > 0x06) return NO; /* a size over 100 MiB */
    if (len < 4) return MORE;
    uint32_t size = be32(d);
    if (size < 10 || size > 100 * 1024 * 1024) return NO;
    if (len < 14) return MORE;
    int16_t api_key = (int16_t)be16(d + 4);
    int16_t api_version = (int16_t)be16(d + 6);
    int16_t client_len = (int16_t)be16(d + 12);
    if (api_key < 0 || api_key > 90 || api_version < 0 || api_version > 20) return NO;
    if (client_len < -1 || (client_len > 0 && (uint32_t)client_len > size - 10)) return NO;
    if (client_len <= 0) return YES;
    size_t have = len - 14 < (size_t)client_len ? len - 14 : (size_t)client_len;
    for (size_t i = 0; i < have; i++)
        if (!isprint(d[14 + i])) return NO;
    return have == (size_t)client_len || len >= ST_DETECT_MAX ? YES : MORE;
}

enum st_proto st_detect(const uint8_t *data, size_t len, uint16_t server_port,
                        enum st_transport transport)
{
    if (len == 0) return ST_PROTO_UNKNOWN;
    if (len > ST_DETECT_MAX) len = ST_DETECT_MAX;
    bool final = len >= ST_DETECT_MAX;

    if (transport == ST_TRANSPORT_UDP) {
        /* One datagram is a whole message: decide now. */
        if (server_port == 53 || server_port == 5353) return ST_PROTO_DNS;
        return len >= 12 && dns_header_ok(data) == YES ? ST_PROTO_DNS : ST_PROTO_TCP;
    }

    struct {
        enum st_proto proto;
        enum verdict v;
    } r[8];
    size_t n = 0;
    r[n].proto = ST_PROTO_TLS, r[n++].v = detect_tls(data, len);
    r[n].proto = ST_PROTO_HTTP2, r[n++].v = detect_h2(data, len);
    r[n].proto = ST_PROTO_REDIS, r[n++].v = detect_resp(data, len);

    enum verdict http = detect_http1(data, len);
    /* Inline commands are plain words ("hello", "ping"): trusted on Redis ports only. */
    enum verdict inline_cmd = is_redis_port(server_port) ? detect_redis_inline(data, len) : NO;
    if (http == YES && inline_cmd == YES) {
        /* `GET k` or `GET / HTTP/1.1`: the request line decides, the port breaks ties. */
        enum verdict is_http = request_line_is_http(data, len);
        if (is_http == MORE && !final) return ST_PROTO_UNKNOWN;
        if (is_http == YES) inline_cmd = NO;
        else if (is_http == NO) http = NO;
        else if (is_redis_port(server_port)) http = NO;
        else inline_cmd = NO;
    }
    if (is_redis_port(server_port)) {
        r[n].proto = ST_PROTO_REDIS, r[n++].v = inline_cmd;
        r[n].proto = ST_PROTO_HTTP, r[n++].v = http;
    } else {
        r[n].proto = ST_PROTO_HTTP, r[n++].v = http;
        r[n].proto = ST_PROTO_REDIS, r[n++].v = inline_cmd;
    }
    if (server_port == 53) {
        r[n].proto = ST_PROTO_DNS, r[n++].v = detect_dns_tcp(data, len, server_port);
        r[n].proto = ST_PROTO_KAFKA, r[n++].v = detect_kafka(data, len);
    } else {
        r[n].proto = ST_PROTO_KAFKA, r[n++].v = detect_kafka(data, len);
        r[n].proto = ST_PROTO_DNS, r[n++].v = detect_dns_tcp(data, len, server_port);
    }

    for (size_t i = 0; i < n; i++) {
        if (r[i].v == YES) return r[i].proto;
        if (r[i].v == MORE && !final) return ST_PROTO_UNKNOWN; /* a higher priority may still match */
    }
    return ST_PROTO_TCP;
}
