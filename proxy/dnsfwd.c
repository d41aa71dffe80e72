/* dnsfwd.c - UDP DNS forwarding (see dnsfwd.h). */
#include "dnsfwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "listener.h"
#include "origdst.h"

#define DNS_MAX 65535
#define RESOLV_CHECK_US 1000000 /* resolv.conf is looked at no more than once a second */

struct query {
    struct st_dnsfwd *d;
    int upstream_fd;
    int listen_fd; /* the socket the query came in on: the answer leaves from it */
    struct event ev;
    struct sockaddr_storage client;
    socklen_t client_len;
    /* Where the client sent the query (after REDIRECT): the answer's source. */
    int family;
    struct in_addr dst4;
    struct in6_addr dst6;
    int ifindex;
    uint16_t id;
    uint64_t deadline_us;
    struct st_conn *parser;
    TAILQ_ENTRY(query) link;
};

struct st_dnsfwd {
    struct st_proxy *px;
    int fd[2];
    struct event *ev[2];
    TAILQ_HEAD(, query) inflight;
    size_t n_inflight;
    /* resolv.conf as last read (all zero: not yet), and when it was last looked at. */
    struct stat resolv_seen;
    uint64_t resolv_checked_us;
    uint8_t buf[DNS_MAX];
};

static void on_entry(struct st_entry *e, void *arg)
{
    struct query *q = arg;
    st_proxy_entry(q->d->px, e, true);
}

static void end_query(struct query *q, enum st_close_reason reason)
{
    struct st_dnsfwd *d = q->d;
    if (q->parser) {
        st_conn_close(q->parser, reason, st_proxy_now_us(d->px));
        st_conn_free(q->parser);
    }
    event_del(&q->ev);
    close(q->upstream_fd);
    TAILQ_REMOVE(&d->inflight, q, link);
    d->n_inflight--;
    free(q);
}

/* Sends `len` bytes to the client from the address it sent its query to. */
static void answer(struct query *q, const uint8_t *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    union {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr msg = {.msg_name = &q->client, .msg_namelen = q->client_len, .msg_iov = &iov,
                         .msg_iovlen = 1, .msg_control = ctl.buf};
    struct cmsghdr *c = (struct cmsghdr *)ctl.buf;
    if (q->family == AF_INET) {
        struct in_pktinfo pi;
        memset(&pi, 0, sizeof(pi));
        pi.ipi_spec_dst = q->dst4;
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        msg.msg_controllen = CMSG_SPACE(sizeof(pi));
    } else if (q->family == AF_INET6) {
        struct in6_pktinfo pi;
        memset(&pi, 0, sizeof(pi));
        pi.ipi6_addr = q->dst6;
        pi.ipi6_ifindex = (unsigned)q->ifindex;
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        msg.msg_controllen = CMSG_SPACE(sizeof(pi));
    } else {
        msg.msg_control = NULL;
    }
    if (sendmsg(q->listen_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) st_metrics.dns_upstream_errors++;
}

static void on_upstream(evutil_socket_t fd, short what, void *arg)
{
    struct query *q = arg;
    struct st_dnsfwd *d = q->d;
    uint64_t now = st_proxy_now_us(d->px);
    if (what & EV_TIMEOUT) {
        st_metrics.dns_timeouts++;
        end_query(q, ST_CLOSE_TIMEOUT);
        return;
    }
    ssize_t n = recv(fd, d->buf, sizeof(d->buf), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) goto wait;
        st_metrics.dns_upstream_errors++; /* ECONNREFUSED: nothing listens on the nameserver */
        end_query(q, ST_CLOSE_RESET);
        return;
    }
    /* A connected socket only receives from the nameserver; still require the ID. */
    if (n < 2 || (uint16_t)(d->buf[0] << 8 | d->buf[1]) != q->id) goto wait;
    answer(q, d->buf, (size_t)n);
    st_metrics.dns_answers++;
    st_metrics.bytes_to_client[ST_DIRN_DNS] += (uint64_t)n;
    if (q->parser) st_conn_feed(q->parser, ST_DIR_TO_CLIENT, d->buf, (size_t)n, now);
    end_query(q, ST_CLOSE_FIN);
    return;
wait:
    if (now >= q->deadline_us) {
        st_metrics.dns_timeouts++;
        end_query(q, ST_CLOSE_TIMEOUT);
        return;
    }
    uint64_t left = q->deadline_us - now;
    struct timeval tv = {(time_t)(left / 1000000u), (suseconds_t)(left % 1000000u)};
    event_add(&q->ev, &tv);
}

/* Follows the nameserver in resolv.conf without a restart (the kubelet or the app may
 * rewrite it): on a query, at most once a second, a stat(); the file is read again only
 * when its inode, size or mtime changed. A file that cannot be read or names no
 * nameserver keeps the last one. Not with --dns-upstream, which is fixed. */
static void resolv_follow(struct st_dnsfwd *d, uint64_t now_us)
{
    struct st_proxy *px = d->px;
    const char *path = px->cfg->resolv_conf;
    if (px->cfg->dns_upstream != NULL || path == NULL) return;
    if (d->resolv_checked_us != 0 && now_us - d->resolv_checked_us < RESOLV_CHECK_US) return;
    d->resolv_checked_us = now_us;
    struct stat st;
    if (stat(path, &st) != 0) return;
    struct stat *seen = &d->resolv_seen;
    if (st.st_ino == seen->st_ino && st.st_dev == seen->st_dev && st.st_size == seen->st_size &&
        st.st_mtim.tv_sec == seen->st_mtim.tv_sec && st.st_mtim.tv_nsec == seen->st_mtim.tv_nsec)
        return;
    *seen = st;
    struct sockaddr_storage ss;
    socklen_t ss_len;
    if (st_proxy_read_resolv_conf(path, &ss, &ss_len) != 0) return;
    if (ss_len == px->dns_server_len && memcmp(&ss, &px->dns_server, ss_len) == 0) return;
    px->dns_server = ss;
    px->dns_server_len = ss_len;
    char ip[INET6_ADDRSTRLEN + 8];
    uint16_t port = st_sockaddr_text(&ss, ip, sizeof(ip));
    fprintf(stderr, "sidetap-proxy: %s changed: DNS queries now go to %s port %u\n", path, ip, port);
}

static void forward(struct st_dnsfwd *d, int listen_fd, const uint8_t *data, size_t len,
                    const struct sockaddr_storage *client, socklen_t client_len, struct msghdr *msg)
{
    struct st_proxy *px = d->px;
    if (len < 12) return; /* not DNS */
    resolv_follow(d, st_proxy_now_us(px));
    if (px->dns_server.ss_family == 0) return; /* nowhere to send it */
    if (d->n_inflight >= px->cfg->dns_max_inflight) {
        st_metrics.dns_dropped_inflight++;
        return;
    }
    struct query *q = calloc(1, sizeof(*q));
    if (q == NULL) return;
    q->d = d;
    q->listen_fd = listen_fd;
    q->client = *client;
    q->client_len = client_len;
    q->id = (uint16_t)(data[0] << 8 | data[1]);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            q->family = AF_INET;
            q->dst4 = pi.ipi_addr;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            q->family = AF_INET6;
            q->dst6 = pi.ipi6_addr;
            q->ifindex = (int)pi.ipi6_ifindex;
        }
    }
    q->upstream_fd = socket(px->dns_server.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->upstream_fd < 0 ||
        connect(q->upstream_fd, (const struct sockaddr *)&px->dns_server, px->dns_server_len) < 0 ||
        send(q->upstream_fd, data, len, MSG_NOSIGNAL) < 0) {
        st_metrics.dns_upstream_errors++;
        if (q->upstream_fd >= 0) close(q->upstream_fd);
        free(q);
        return;
    }
    uint64_t now = st_proxy_now_us(px);
    q->deadline_us = now + (uint64_t)px->cfg->dns_timeout_ms * 1000u;
    event_assign(&q->ev, px->base, q->upstream_fd, EV_READ, on_upstream, q);
    struct timeval tv = {px->cfg->dns_timeout_ms / 1000, (px->cfg->dns_timeout_ms % 1000) * 1000};
    event_add(&q->ev, &tv);
    TAILQ_INSERT_TAIL(&d->inflight, q, link);
    d->n_inflight++;
    st_metrics.dns_queries++;
    st_metrics.conn_total[ST_DIRN_DNS]++;
    st_metrics.bytes_to_server[ST_DIRN_DNS] += len;

    {
        struct st_conn_info info;
        memset(&info, 0, sizeof(info));
        info.transport = ST_TRANSPORT_UDP;
        info.guess = ST_PROTO_DNS;
        info.start_us = now;
        info.server.port = st_sockaddr_text(&px->dns_server, info.server.ip, sizeof(info.server.ip));
        struct sockaddr_storage local;
        socklen_t llen = sizeof(local);
        if (getsockname(q->upstream_fd, (struct sockaddr *)&local, &llen) == 0)
            info.client.port = st_sockaddr_text(&local, info.client.ip, sizeof(info.client.ip));
        q->parser = st_conn_new(&info, &px->parse, on_entry, q);
        if (q->parser) st_conn_feed(q->parser, ST_DIR_TO_SERVER, data, len, now);
    }
}

static void on_query(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct st_dnsfwd *d = arg;
    /* Bounded batch per wakeup so a flood cannot starve the relays. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage client;
        union {
            char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {d->buf, sizeof(d->buf)};
        struct msghdr msg = {.msg_name = &client, .msg_namelen = sizeof(client), .msg_iov = &iov,
                             .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
        if (n < 0) return;
        forward(d, fd, d->buf, (size_t)n, &client, msg.msg_namelen, &msg);
    }
}

struct st_dnsfwd *st_dnsfwd_new(struct st_proxy *px)
{
    struct st_dnsfwd *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    d->px = px;
    d->fd[0] = d->fd[1] = -1;
    TAILQ_INIT(&d->inflight);
    const int families[2] = {AF_INET, AF_INET6};
    for (int i = 0; i < 2; i++) {
        int fd = st_listen_socket(families[i], SOCK_DGRAM, NULL, px->cfg->dns_port);
        if (i == 1 && (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)) continue;
        if (fd < 0) {
            fprintf(stderr, "sidetap-proxy: cannot listen on UDP %s port %u: %s\n",
                    i ? "[::]" : "0.0.0.0", px->cfg->dns_port, strerror(-fd));
            goto fail;
        }
        d->fd[i] = fd;
        int one = 1;
        if (i == 0) setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
        else setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
        d->ev[i] = event_new(px->base, fd, EV_READ | EV_PERSIST, on_query, d);
        if (d->ev[i] == NULL || event_add(d->ev[i], NULL) < 0) goto fail;
    }
    return d;
fail:
    st_dnsfwd_free(d);
    return NULL;
}

void st_dnsfwd_stop(struct st_dnsfwd *d)
{
    if (d == NULL) return;
    for (int i = 0; i < 2; i++)
        if (d->ev[i]) event_del(d->ev[i]);
}

void st_dnsfwd_abort_all(struct st_dnsfwd *d)
{
    if (d == NULL) return;
    struct query *q;
    while ((q = TAILQ_FIRST(&d->inflight)) != NULL) end_query(q, ST_CLOSE_ABORT);
}

size_t st_dnsfwd_inflight(const struct st_dnsfwd *d)
{
    return d ? d->n_inflight : 0;
}

void st_dnsfwd_free(struct st_dnsfwd *d)
{
    if (d == NULL) return;
    st_dnsfwd_abort_all(d);
    for (int i = 0; i < 2; i++) {
        if (d->ev[i]) event_free(d->ev[i]);
        if (d->fd[i] >= 0) close(d->fd[i]);
    }
    free(d);
}
