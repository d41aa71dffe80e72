/* origdst.c - SO_ORIGINAL_DST and the self-connect check (see origdst.h). */
#include "origdst.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

void st_sockaddr_unmap(struct sockaddr_storage *sa)
{
    if (sa->ss_family != AF_INET6) return;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
    if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) return;
    struct sockaddr_in s4;
    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    s4.sin_port = s6->sin6_port;
    memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    memset(sa, 0, sizeof(*sa));
    memcpy(sa, &s4, sizeof(s4));
}

int st_origdst_get(int fd, const struct sockaddr_storage *local, struct sockaddr_storage *dst)
{
    socklen_t len = sizeof(*dst);
    memset(dst, 0, sizeof(*dst));
    int rc;
    if (local->ss_family == AF_INET6 &&
        !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)local)->sin6_addr))
        rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &len);
    else rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len);
    if (rc < 0) return -errno;
    st_sockaddr_unmap(dst);
    return 0;
}

uint16_t st_sockaddr_text(const struct sockaddr_storage *sa, char *ip, size_t iplen)
{
    struct sockaddr_storage copy = *sa;
    st_sockaddr_unmap(&copy);
    ip[0] = 0;
    if (copy.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&copy;
        inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)iplen);
        return ntohs(s4->sin_port);
    }
    if (copy.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&copy;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, (socklen_t)iplen);
        return ntohs(s6->sin6_port);
    }
    return 0;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return false;
}

bool st_origdst_is_self(const struct sockaddr_storage *dst, const struct sockaddr_storage *local,
                        const uint16_t *ports, int nports, const char *pod_ip)
{
    struct sockaddr_storage l = *local;
    st_sockaddr_unmap(&l);
    if (same_addr(dst, &l)) return true;
    char ip[64];
    uint16_t port = st_sockaddr_text(dst, ip, sizeof(ip));
    bool ours = false;
    for (int i = 0; i < nports; i++) ours |= ports[i] == port;
    if (!ours) return false;
    if (dst->ss_family == AF_INET &&
        (ntohl(((const struct sockaddr_in *)dst)->sin_addr.s_addr) >> 24) == 127)
        return true;
    if (dst->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)dst)->sin6_addr))
        return true;
    return pod_ip != NULL && strcmp(ip, pod_ip) == 0;
}
