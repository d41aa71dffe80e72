/* proxy.c - the entry sink shared by relay.c and dnsfwd.c, and nameserver discovery. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "ship.h"
#include "workers.h"

/* The real clock, not libevent's cached loop time: that one comes from
 * CLOCK_MONOTONIC_COARSE and would round every elapsedTime to the kernel tick (4 ms). */
uint64_t st_proxy_now_us(const struct st_proxy *px)
{
    (void)px;
    return st_now_us();
}

void st_proxy_entry(struct st_proxy *px, struct st_entry *e, bool outgoing)
{
    if (px->is_worker) {
        st_workers_handoff(px, e, outgoing); /* counted and queued by the main thread */
        return;
    }
    if (e->proto < ST_PROTO_COUNT) st_metrics.entries[e->proto]++;
    if (e->error != NULL && strncmp(e->error, "parse error", 11) == 0 && e->proto < ST_PROTO_COUNT)
        st_metrics.parse_errors[e->proto]++;
    uint64_t now_s = st_proxy_now_us(px) / 1000000u;
    if (e->proto == ST_PROTO_DNS) st_metrics.names_learned += st_names_learn(px->names, e, now_s);
    const char *peer_name = outgoing ? st_names_get(px->names, e->server.ip, now_s) : NULL;
    st_ship_push(px->ship, e, outgoing, peer_name);
}

/* "10.0.0.1", "10.0.0.1:5353", "fd00::1", "[fd00::1]:5353", "fe80::1%eth0". */
static int parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    unsigned long port = 53;
    const char *colon = strrchr(spec, ':');
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL || (size_t)(close - spec - 1) >= sizeof(host)) return -1;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = 0;
        if (close[1] == ':') {
            char *end;
            port = strtoul(close + 2, &end, 10);
            if (*end || port == 0 || port > 65535) return -1;
        } else if (close[1] != 0) return -1;
    } else if (colon != NULL && strchr(spec, ':') == colon) {
        if ((size_t)(colon - spec) >= sizeof(host)) return -1;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = 0;
        char *end;
        port = strtoul(colon + 1, &end, 10);
        if (*end || port == 0 || port > 65535) return -1;
    } else {
        if (strlen(spec) >= sizeof(host)) return -1;
        strcpy(host, spec);
    }
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof(*s4);
        return 0;
    }
    char *pct = strchr(host, '%');
    if (pct != NULL) {
        *pct = 0;
        s6->sin6_scope_id = if_nametoindex(pct + 1);
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return 0;
    }
    return -1;
}

int st_proxy_set_dns_server(struct st_proxy *px, const char *spec, const char *resolv_conf)
{
    if (spec != NULL) {
        if (parse_addr(spec, &px->dns_server, &px->dns_server_len) < 0) {
            fprintf(stderr, "sidetap-proxy: SIDETAP_DNS_UPSTREAM: \"%s\" is not valid, expected IP or IP:PORT\n",
                    spec);
            return -1;
        }
        return 0;
    }
    int rc = st_proxy_read_resolv_conf(resolv_conf, &px->dns_server, &px->dns_server_len);
    if (rc == -1)
        fprintf(stderr, "sidetap-proxy: warning: SIDETAP_RESOLV_CONF: cannot open %s: %s; DNS queries "
                        "will not be forwarded until it has a nameserver\n",
                resolv_conf, strerror(errno));
    else if (rc == -2)
        fprintf(stderr, "sidetap-proxy: warning: no usable nameserver in %s; DNS queries will not be "
                        "forwarded until it has one\n",
                resolv_conf);
    return 0;
}

int st_proxy_read_resolv_conf(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    char line[512];
    int found = 0;
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        char ns[256];
        if (sscanf(line, " nameserver %255s", ns) == 1 && parse_addr(ns, &addr, &addr_len) == 0)
            found = 1;
    }
    fclose(f);
    if (!found) return -2;
    *ss = addr;
    *len = addr_len;
    return 0;
}
