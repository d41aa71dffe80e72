/* Detection from first bytes: every recogniser, partial input, and tie-breaks. */
#include <string.h>

#include "check.h"
#include "parser.h"

static enum st_proto detect_str(const char *s, uint16_t port)
{
    return st_detect((const uint8_t *)s, strlen(s), port, ST_TRANSPORT_TCP);
}

int main(void)
{
    CHECK_INT(detect_str("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 80), ST_PROTO_HTTP);
    CHECK_INT(detect_str("POST /api HTTP/1.1\r\n", 8080), ST_PROTO_HTTP);
    CHECK_INT(detect_str("GE", 80), ST_PROTO_UNKNOWN);          /* needs more */
    CHECK_INT(detect_str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 80), ST_PROTO_HTTP2);
    CHECK_INT(detect_str("PRI * HTTP/2", 80), ST_PROTO_UNKNOWN);
    CHECK_INT(detect_str("*1\r\n$4\r\nPING\r\n", 6379), ST_PROTO_REDIS);
    CHECK_INT(detect_str("*3\r\n$3\r\nSET\r\n", 7000), ST_PROTO_REDIS);
    CHECK_INT(detect_str("PING\r\n", 6379), ST_PROTO_REDIS);
    CHECK_INT(detect_str("GET user:1\r\n", 6379), ST_PROTO_REDIS);
    CHECK_INT(detect_str("GET / HTTP/1.1\r\n", 6379), ST_PROTO_HTTP);
    CHECK_INT(detect_str("SSH-2.0-OpenSSH_9.2\r\n", 22), ST_PROTO_TCP);

    const uint8_t tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
    CHECK_INT(st_detect(tls, sizeof(tls), 443, ST_TRANSPORT_TCP), ST_PROTO_TLS);
    CHECK_INT(st_detect(tls, 3, 443, ST_TRANSPORT_TCP), ST_PROTO_UNKNOWN);

    /* ApiVersions v3, correlation 1, client "kcat" */
    const uint8_t kafka[] = {0, 0, 0, 20, 0, 18, 0, 3, 0, 0, 0, 1, 0, 4, 'k', 'c', 'a', 't', 0};
    CHECK_INT(st_detect(kafka, sizeof(kafka), 9092, ST_TRANSPORT_TCP), ST_PROTO_KAFKA);

    /* DNS over TCP: length 29, id 0x1234, RD, one question */
    const uint8_t dns[] = {0, 29, 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'f', 'o', 'o'};
    CHECK_INT(st_detect(dns, sizeof(dns), 53, ST_TRANSPORT_TCP), ST_PROTO_DNS);
    CHECK_INT(st_detect(dns + 2, sizeof(dns) - 2, 53, ST_TRANSPORT_UDP), ST_PROTO_DNS);

    /* Binary garbage decides TCP at the latest at ST_DETECT_MAX bytes. */
    uint8_t junk[ST_DETECT_MAX];
    memset(junk, 0xee, sizeof(junk));
    CHECK_INT(st_detect(junk, 1, 4000, ST_TRANSPORT_TCP), ST_PROTO_TCP);
    memset(junk, 'G', sizeof(junk));
    CHECK_INT(st_detect(junk, sizeof(junk), 4000, ST_TRANSPORT_TCP), ST_PROTO_TCP);
    return CHECK_DONE();
}
