/* test_units.c - the proxy modules that can be tested without sockets: the IP -> name
 * cache (bounds, TTL, learning from DNS entries) and the self-connect check. */
#include <arpa/inet.h>
#include <string.h>

#include "check.h"
#include "names.h"
#include "origdst.h"

static struct st_entry *dns_entry(const char *qname, const char *answers_json)
{
    struct st_entry *e = st_entry_new(ST_PROTO_DNS);
    json_error_t err;
    json_t *answers = json_loads(answers_json, 0, &err);
    e->section = json_pack("{s:[{s:s,s:s,s:s}],s:o,s:s}", "questions", "name", qname, "type", "A", "class",
                           "IN", "answers", answers, "rcode", "NOERROR");
    return e;
}

static void test_names(void)
{
    struct st_names *n = st_names_new(3);
    st_names_put(n, "10.0.0.1", "a.example", 30, 1000);
    CHECK_STR(st_names_get(n, "10.0.0.1", 1000), "a.example");
    /* kept at least 10 minutes, whatever the TTL says */
    CHECK_STR(st_names_get(n, "10.0.0.1", 1000 + 599), "a.example");
    CHECK(st_names_get(n, "10.0.0.1", 1000 + 601) == NULL);
    CHECK_INT(st_names_count(n), 0);

    /* bounded: the oldest learned pair goes first; re-learning refreshes */
    st_names_put(n, "10.0.0.1", "a", 3600, 0);
    st_names_put(n, "10.0.0.2", "b", 3600, 0);
    st_names_put(n, "10.0.0.3", "c", 3600, 0);
    st_names_put(n, "10.0.0.1", "a2", 3600, 0);
    st_names_put(n, "10.0.0.4", "d", 3600, 0);
    CHECK_INT(st_names_count(n), 3);
    CHECK(st_names_get(n, "10.0.0.2", 1) == NULL);
    CHECK_STR(st_names_get(n, "10.0.0.1", 1), "a2");
    CHECK_STR(st_names_get(n, "10.0.0.4", 1), "d");

    /* addresses compare by value, not spelling; garbage is ignored */
    st_names_put(n, "fd00:0:0::1", "v6", 3600, 0);
    CHECK_STR(st_names_get(n, "fd00::1", 1), "v6");
    st_names_put(n, "not an ip", "x", 3600, 0);
    CHECK(st_names_get(n, "not an ip", 1) == NULL);
    st_names_free(n);
    st_names_free(NULL);
}

static void test_learn(void)
{
    struct st_names *n = st_names_new(16);
    /* a CNAME chain names the addresses after the question */
    struct st_entry *e = dns_entry("www.example.com.",
                                   "[{\"name\":\"www.example.com\",\"type\":\"CNAME\",\"ttl\":60,\"data\":\"edge.cdn.net\"},"
                                   "{\"name\":\"edge.cdn.net\",\"type\":\"A\",\"ttl\":20,\"data\":\"93.184.216.34\"},"
                                   "{\"name\":\"edge.cdn.net\",\"type\":\"AAAA\",\"ttl\":20,\"data\":\"2606:2800::1\"}]");
    CHECK_INT(st_names_learn(n, e, 0), 2);
    CHECK_STR(st_names_get(n, "93.184.216.34", 1), "www.example.com");
    CHECK_STR(st_names_get(n, "2606:2800::1", 1), "www.example.com");
    CHECK(st_names_get(n, "edge.cdn.net", 1) == NULL);
    st_entry_free(e);

    /* odd sections learn nothing and do not crash */
    e = dns_entry("x.test", "[{\"type\":\"A\"},{\"type\":\"A\",\"data\":5},{\"data\":\"1.2.3.4\"},7]");
    CHECK_INT(st_names_learn(n, e, 0), 0);
    st_entry_free(e);
    e = st_entry_new(ST_PROTO_HTTP);
    CHECK_INT(st_names_learn(n, e, 0), 0);
    st_entry_free(e);
    st_names_free(n);
}

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    inet_pton(AF_INET, ip, &s->sin_addr);
    return ss;
}

static void test_self(void)
{
    const uint16_t ports[3] = {16001, 16006, 16053};
    struct sockaddr_storage local = v4("127.0.0.1", 16001);
    struct sockaddr_storage d;
    d = v4("127.0.0.1", 16001);
    CHECK(st_origdst_is_self(&d, &local, ports, 3, "10.0.0.5"));
    d = v4("127.0.0.9", 16006);
    CHECK(st_origdst_is_self(&d, &local, ports, 3, "10.0.0.5"));
    d = v4("10.0.0.5", 16053);
    CHECK(st_origdst_is_self(&d, &local, ports, 3, "10.0.0.5"));
    d = v4("10.0.0.6", 16001);
    CHECK(!st_origdst_is_self(&d, &local, ports, 3, "10.0.0.5"));
    d = v4("127.0.0.1", 8080);
    CHECK(!st_origdst_is_self(&d, &local, ports, 3, NULL));

    /* v4-mapped IPv6 prints and compares as IPv4 */
    struct sockaddr_storage m;
    memset(&m, 0, sizeof(m));
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&m;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(16001);
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6->sin6_addr);
    char ip[64];
    CHECK_INT(st_sockaddr_text(&m, ip, sizeof(ip)), 16001);
    CHECK_STR(ip, "127.0.0.1");
    d = v4("127.0.0.1", 16001);
    CHECK(st_origdst_is_self(&d, &m, ports, 3, NULL));
}

int main(void)
{
    test_names();
    test_learn();
    test_self();
    return CHECK_DONE();
}
