/* listener.c - accept, original destination, loop guard, hand over to relay.c. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>

#include "origdst.h"
#include "relay.h"

#define MAX_LISTENERS 6

struct listener {
    struct st_proxy *px;
    struct evconnlistener *lev;
    enum st_dirn kind;
    struct event *pause_timer; /* re-enables accepting after an accept error */
};

struct st_listeners {
    struct listener l[MAX_LISTENERS];
    int n;
};

int st_listen_socket(int family, int type, const char *addr, uint16_t port)
{
    return st_listen_socket_shared(family, type, addr, port, false);
}

int st_listen_socket_shared(int family, int type, const char *addr, uint16_t port, bool shared)
{
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        s6->sin6_addr = in6addr_any;
        if (addr != NULL && inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) {
            close(fd);
            return -EINVAL;
        }
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        if (addr != NULL && inet_pton(AF_INET, addr, &s4->sin_addr) != 1) {
            close(fd);
            return -EINVAL;
        }
        len = sizeof(*s4);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || (type == SOCK_STREAM && listen(fd, 1024) < 0)) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)lev;
    struct listener *l = arg;
    struct st_proxy *px = l->px;
    struct sockaddr_storage peer, local, dst;
    memset(&peer, 0, sizeof(peer));
    memcpy(&peer, sa, (size_t)salen < sizeof(peer) ? (size_t)salen : sizeof(peer));
    socklen_t llen = sizeof(local);
    if (px->draining || getsockname(fd, (struct sockaddr *)&local, &llen) < 0) {
        st_close_reset(fd);
        return;
    }
    int rc = st_origdst_get(fd, &local, &dst);
    if (rc < 0) {
        if (l->kind == ST_DIRN_DNS && px->dns_server.ss_family != 0) {
            dst = px->dns_server; /* TCP DNS sent to us directly: forward to the nameserver */
        } else {
            st_metrics.origdst_failures++;
            if (px->cfg->verbose)
                fprintf(stderr, "sidetap-proxy: no original destination: %s\n", strerror(-rc));
            st_close_reset(fd);
            return;
        }
    } else if (st_origdst_is_self(&dst, &local, px->own_ports, 3, px->pod.ip)) {
        st_metrics.self_connect_rejected++;
        st_close_reset(fd);
        return;
    }
    st_relay_start(px, l->kind, fd, &peer, &dst);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct listener *l = arg;
    if (l->lev != NULL) evconnlistener_enable(l->lev);
}

/* accept() failed, typically EMFILE: pause this listener briefly instead of spinning. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    st_metrics.accept_errors++;
    if (err == EINTR || err == EAGAIN || err == ECONNABORTED) return;
    fprintf(stderr, "sidetap-proxy: accept: %s\n", strerror(err));
    evconnlistener_disable(lev);
    struct timeval tv = {0, 100 * 1000};
    evtimer_add(l->pause_timer, &tv);
}

static int add(struct st_listeners *ls, struct st_proxy *px, enum st_dirn kind, int family, uint16_t port)
{
    /* With several threads every thread binds its own socket to the port (SO_REUSEPORT)
     * and the kernel spreads new connections over them. */
    int fd = st_listen_socket_shared(family, SOCK_STREAM, NULL, port, px->cfg->threads > 1);
    if (fd == -EAFNOSUPPORT || (family == AF_INET6 && fd == -EADDRNOTAVAIL)) return 0; /* no IPv6 */
    if (fd < 0) {
        fprintf(stderr, "sidetap-proxy: cannot listen on %s port %u: %s\n",
                family == AF_INET6 ? "[::]" : "0.0.0.0", port, strerror(-fd));
        return -1;
    }
    struct listener *l = &ls->l[ls->n];
    l->px = px;
    l->kind = kind;
    l->lev = evconnlistener_new(px->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    l->pause_timer = evtimer_new(px->base, on_resume, l);
    if (l->lev == NULL || l->pause_timer == NULL) {
        if (l->lev != NULL) evconnlistener_free(l->lev);
        else close(fd);
        l->lev = NULL;
        fprintf(stderr, "sidetap-proxy: out of memory\n");
        return -1;
    }
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    ls->n++;
    return 0;
}

struct st_listeners *st_listeners_new(struct st_proxy *px)
{
    struct st_listeners *ls = calloc(1, sizeof(*ls));
    if (ls == NULL) return NULL;
    const struct st_proxy_config *cfg = px->cfg;
    const struct {
        enum st_dirn kind;
        uint16_t port;
    } want[] = {{ST_DIRN_OUTBOUND, cfg->outbound_port}, {ST_DIRN_INBOUND, cfg->inbound_port},
                {ST_DIRN_DNS, cfg->dns_port}};
    for (size_t i = 0; i < 3; i++) {
        if (px->is_worker && want[i].kind == ST_DIRN_DNS) continue; /* DNS stays on the main thread */
        if (add(ls, px, want[i].kind, AF_INET, want[i].port) < 0 ||
            add(ls, px, want[i].kind, AF_INET6, want[i].port) < 0) {
            st_listeners_free(ls);
            return NULL;
        }
    }
    return ls;
}

void st_listeners_close(struct st_listeners *ls)
{
    if (ls == NULL) return;
    for (int i = 0; i < ls->n; i++) {
        if (ls->l[i].lev) evconnlistener_free(ls->l[i].lev);
        ls->l[i].lev = NULL;
        if (ls->l[i].pause_timer) evtimer_del(ls->l[i].pause_timer);
    }
}

void st_listeners_free(struct st_listeners *ls)
{
    if (ls == NULL) return;
    st_listeners_close(ls);
    for (int i = 0; i < MAX_LISTENERS; i++)
        if (ls->l[i].pause_timer) event_free(ls->l[i].pause_timer);
    free(ls);
}
