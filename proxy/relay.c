/* relay.c - one relayed TCP connection (see relay.h) and the set of open ones.
 *
 * Per connection: two bufferevents, an optional parser and a few flags - about 1 KiB
 * while idle, because empty evbuffers hold no chains. Side 0 is the client (the accepted
 * socket), side 1 the upstream. The parser is fed before the chains move to the peer's
 * output; the write itself happens on the next loop turn either way, so parsing never
 * holds bytes back. Server-first protocols: connections whose client is silent for
 * SIDETAP_DETECT_MS are declared opaque by one shared timer, not a timer per connection. */
#include "relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "origdst.h"

#define CLIENT 0
#define UPSTREAM 1
#define PEEK_IOV 16
/* Bytes per read(2) and write(2); larger than libevent's 16 KiB default for throughput,
 * smaller than the watermark so backpressure stays fine-grained. */
#define IO_CHUNK (64 * 1024)
/* EVBUFFER_MAX_READ in libevent 2.1's buffer.c: the most one bufferevent read takes. */
#define LIBEVENT_MAX_READ 4096

struct relay {
    struct st_proxy *px;
    struct bufferevent *bev[2];
    struct st_conn *parser;
    TAILQ_ENTRY(relay) all;
    TAILQ_ENTRY(relay) detecting; /* waiting for the client's first byte */
    uint64_t start_us;
    uint64_t active_ms; /* last byte moved, either direction */
    uint8_t kind;       /* enum st_dirn */
    uint8_t connected : 1, in_detect : 1;
    uint8_t eof[2];           /* read EOF seen on side i */
    uint8_t shut[2];          /* shutdown(SHUT_WR) done on side i */
    uint8_t paused[2];        /* reading side i paused: the peer's output is full */
    uint8_t reset_pending[2]; /* reset side i once its output drained */
    uint8_t read_error[2];    /* pull_more() saw a read error (a reset) on side i */
};

TAILQ_HEAD(relay_list, relay);

struct st_relays {
    struct st_proxy *px;
    struct relay_list all, detecting;
    unsigned open, parsed;
    struct event *detect_timer;
    bool detect_armed;
};

static uint64_t now_ms(const struct st_proxy *px)
{
    return st_proxy_now_us(px) / 1000u;
}

void st_close_reset(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

static void arm_detect(struct st_relays *rs)
{
    if (rs->detect_armed || TAILQ_EMPTY(&rs->detecting)) return;
    unsigned step = rs->px->cfg->detect_ms / 4;
    if (step < 10) step = 10;
    struct timeval tv = {step / 1000, (step % 1000) * 1000};
    evtimer_add(rs->detect_timer, &tv);
    rs->detect_armed = true;
}

static void leave_detect(struct st_relays *rs, struct relay *r)
{
    if (!r->in_detect) return;
    TAILQ_REMOVE(&rs->detecting, r, detecting);
    r->in_detect = 0;
}

/* The client said nothing for detect_ms: tell the parsers (server-first protocols). */
static void on_detect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct st_relays *rs = arg;
    rs->detect_armed = false;
    uint64_t cutoff = st_proxy_now_us(rs->px) - (uint64_t)rs->px->cfg->detect_ms * 1000u;
    struct relay *r;
    while ((r = TAILQ_FIRST(&rs->detecting)) != NULL && r->start_us <= cutoff) {
        leave_detect(rs, r);
        if (r->parser) st_conn_client_silent(r->parser);
    }
    arm_detect(rs);
}

static void on_entry(struct st_entry *e, void *arg)
{
    struct relay *r = arg;
    st_proxy_entry(r->px, e, r->kind != ST_DIRN_INBOUND);
}

/* Ends the relay. `rst` bit i: close side i with a reset. */
static void finish(struct relay *r, enum st_close_reason reason, unsigned rst)
{
    struct st_relays *rs = r->px->relays;
    leave_detect(rs, r);
    TAILQ_REMOVE(&rs->all, r, all);
    rs->open--;
    st_metrics.conn_open[r->kind]--;
    if (reason == ST_CLOSE_RESET) st_metrics.resets[r->kind]++;
    if (r->parser) {
        st_conn_close(r->parser, reason, st_proxy_now_us(r->px));
        st_conn_free(r->parser);
        rs->parsed--;
    }
    for (int s = 0; s < 2; s++) {
        if (r->bev[s] == NULL) continue;
        evutil_socket_t fd = bufferevent_getfd(r->bev[s]);
        if ((rst >> s) & 1 && fd >= 0) {
            struct linger l = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        bufferevent_free(r->bev[s]);
    }
    if (r->px->cfg->verbose)
        fprintf(stderr, "sidetap-proxy: %s connection closed (%s)\n",
                r->kind == ST_DIRN_INBOUND ? "inbound" : r->kind == ST_DIRN_DNS ? "dns" : "outbound",
                reason == ST_CLOSE_FIN ? "fin" : reason == ST_CLOSE_RESET ? "reset"
                                             : reason == ST_CLOSE_TIMEOUT ? "timeout" : "abort");
    free(r);
}

/* Passes side `from`'s FIN on to the other side once its output drained. Returns true
 * when the relay was freed. */
static bool pass_fin(struct relay *r, int to)
{
    if (r->shut[to] || !r->eof[1 - to]) return false;
    if (to == UPSTREAM && !r->connected) return false;
    if (evbuffer_get_length(bufferevent_get_output(r->bev[to])) > 0) return false;
    shutdown(bufferevent_getfd(r->bev[to]), SHUT_WR);
    r->shut[to] = 1;
    if (r->shut[CLIENT] && r->shut[UPSTREAM]) {
        finish(r, ST_CLOSE_FIN, 0);
        return true;
    }
    return false;
}

/* libevent 2.1 reads at most 4 KiB per wakeup (EVBUFFER_MAX_READ), which costs a
 * readv, an ioctl and a loop turn per 4 KiB. So once woken, read on ourselves in
 * IO_CHUNK steps up to the watermark. EOF is left for libevent to find on its next read
 * (a socket at EOF stays readable); an error is remembered, because after a reset the
 * next read returns EOF and the reset would look like a FIN. */
static void pull_loop(struct relay *r, int side, struct evbuffer *in, int fd, size_t high);

static void pull_more(struct relay *r, int side, struct evbuffer *in)
{
    size_t high = r->px->cfg->buffer_high;
    int fd = bufferevent_getfd(r->bev[side]);
    /* A bufferevent keeps its input's end frozen except while it reads itself. */
    evbuffer_unfreeze(in, 0);
    pull_loop(r, side, in, fd, high);
    evbuffer_freeze(in, 0);
}

static void pull_loop(struct relay *r, int side, struct evbuffer *in, int fd, size_t high)
{
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len >= high) return;
        size_t want = high - len < IO_CHUNK ? high - len : IO_CHUNK;
        struct evbuffer_iovec v[2];
        int n = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
        if (n <= 0) return;
        struct iovec iov[2];
        size_t room = 0;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = v[i].iov_base;
            iov[i].iov_len = v[i].iov_len < want - room ? v[i].iov_len : want - room;
            room += iov[i].iov_len;
        }
        ssize_t got = readv(fd, iov, n);
        if (got <= 0) {
            if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) r->read_error[side] = 1;
            evbuffer_commit_space(in, v, 0);
            return;
        }
        size_t left = (size_t)got;
        for (int i = 0; i < n; i++) {
            v[i].iov_len = left < iov[i].iov_len ? left : iov[i].iov_len;
            left -= v[i].iov_len;
        }
        evbuffer_commit_space(in, v, n);
        if ((size_t)got < room) return; /* drained */
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct relay *r = arg;
    int side = bev == r->bev[CLIENT] ? CLIENT : UPSTREAM;
    struct evbuffer *in = bufferevent_get_input(bev);
    /* Less than libevent's 4 KiB cap means the socket is drained: no reserve, no syscall. */
    if (evbuffer_get_length(in) >= LIBEVENT_MAX_READ) pull_more(r, side, in);
    size_t len = evbuffer_get_length(in);
    if (len == 0) return;
    uint64_t now_us = st_proxy_now_us(r->px);
    r->active_ms = now_us / 1000u;

    if (side == CLIENT) {
        leave_detect(r->px->relays, r);
        st_metrics.bytes_to_server[r->kind] += len;
    } else {
        st_metrics.bytes_to_client[r->kind] += len;
    }
    if (r->parser) {
        struct evbuffer_iovec v[PEEK_IOV];
        enum st_dir dir = side == CLIENT ? ST_DIR_TO_SERVER : ST_DIR_TO_CLIENT;
        struct evbuffer_ptr pos;
        evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
        size_t fed = 0;
        while (fed < len) {
            int n = evbuffer_peek(in, (ev_ssize_t)(len - fed), fed ? &pos : NULL, v, PEEK_IOV);
            if (n <= 0) break;
            int use = n < PEEK_IOV ? n : PEEK_IOV;
            for (int i = 0; i < use; i++) {
                size_t take = v[i].iov_len < len - fed ? v[i].iov_len : len - fed;
                st_conn_feed(r->parser, dir, v[i].iov_base, take, now_us);
                fed += take;
            }
            if (fed < len && evbuffer_ptr_set(in, &pos, fed, EVBUFFER_PTR_SET) < 0) break;
        }
    }

    if (r->reset_pending[1 - side]) {
        evbuffer_drain(in, len); /* the peer is going away with a reset */
        return;
    }
    struct evbuffer *out = bufferevent_get_output(r->bev[1 - side]);
    /* Fast path: when nothing is queued for the peer, write straight to its socket. In
     * the common case the kernel takes it all and no write event is ever armed (no
     * epoll_ctl, no extra loop turn). What it does not take, and any error, is left to
     * the bufferevent as usual; order is kept because the queue was empty. */
    if (evbuffer_get_length(out) == 0 && (side == UPSTREAM || r->connected) && !r->shut[1 - side]) {
        evbuffer_write_atmost(in, bufferevent_getfd(r->bev[1 - side]), -1);
        if (evbuffer_get_length(in) == 0) return;
    }
    evbuffer_add_buffer(out, in);
    size_t high = r->px->cfg->buffer_high;
    if (evbuffer_get_length(out) >= high) {
        bufferevent_disable(bev, EV_READ);
        r->paused[side] = 1;
        bufferevent_setwatermark(r->bev[1 - side], EV_WRITE, high / 2, 0);
    }
}

/* Side `side`'s output dropped to its low watermark (0, or half the buffer while the
 * other side is paused). */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct relay *r = arg;
    int side = bev == r->bev[CLIENT] ? CLIENT : UPSTREAM;
    int other = 1 - side;
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));
    r->active_ms = now_ms(r->px);
    if (r->paused[other] && left <= r->px->cfg->buffer_high / 2) {
        r->paused[other] = 0;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        if (!r->eof[other]) bufferevent_enable(r->bev[other], EV_READ);
    }
    if (left > 0) return;
    if (r->reset_pending[side]) {
        finish(r, ST_CLOSE_RESET, 1u << side);
        return;
    }
    pass_fin(r, side);
}

static void on_connected(struct relay *r)
{
    r->connected = 1;
    struct bufferevent *up = r->bev[UPSTREAM];
    int one = 1;
    setsockopt(bufferevent_getfd(up), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval idle = {r->px->cfg->idle_timeout_ms / 1000, (r->px->cfg->idle_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(up, r->px->cfg->idle_timeout_ms ? &idle : NULL,
                             r->px->cfg->idle_timeout_ms ? &idle : NULL);
    if (!r->paused[UPSTREAM]) bufferevent_enable(up, EV_READ);
    pass_fin(r, UPSTREAM);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct relay *r = arg;
    int side = bev == r->bev[CLIENT] ? CLIENT : UPSTREAM;
    int other = 1 - side;
    int err = EVUTIL_SOCKET_ERROR();

    if (what & BEV_EVENT_CONNECTED) {
        on_connected(r);
        return;
    }
    if (side == UPSTREAM && !r->connected && (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT | BEV_EVENT_EOF))) {
        /* What the app would have seen without us: a refusal. The closest is a reset. */
        st_metrics.connect_failures[r->kind]++;
        if (what & BEV_EVENT_TIMEOUT) st_metrics.connect_timeouts++;
        if (r->px->cfg->verbose)
            fprintf(stderr, "sidetap-proxy: upstream connect failed: %s\n",
                    what & BEV_EVENT_TIMEOUT ? "timed out" : strerror(err));
        finish(r, what & BEV_EVENT_TIMEOUT ? ST_CLOSE_TIMEOUT : ST_CLOSE_RESET, 1u << CLIENT);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        uint64_t idle = r->px->cfg->idle_timeout_ms;
        if (now_ms(r->px) - r->active_ms >= idle || (what & BEV_EVENT_WRITING) || r->reset_pending[side]) {
            st_metrics.idle_timeouts++;
            finish(r, ST_CLOSE_TIMEOUT, r->reset_pending[0] | r->reset_pending[1] << 1);
            return;
        }
        /* Only this direction was quiet; the other one moved recently. */
        if ((what & BEV_EVENT_READING) && !r->eof[side] && !r->paused[side])
            bufferevent_enable(bev, EV_READ);
        return;
    }
    if ((what & BEV_EVENT_EOF) && r->read_error[side]) what = BEV_EVENT_ERROR | BEV_EVENT_READING;
    if (what & BEV_EVENT_ERROR) {
        /* A reset (or a write to a closed peer): the other side gets what was already
         * read for it, then a reset. */
        if (r->reset_pending[other] || evbuffer_get_length(bufferevent_get_output(r->bev[other])) == 0 ||
            (other == UPSTREAM && !r->connected)) {
            finish(r, ST_CLOSE_RESET, 1u << other);
            return;
        }
        r->reset_pending[other] = 1;
        r->eof[side] = 1;
        bufferevent_disable(r->bev[side], EV_READ | EV_WRITE);
        bufferevent_disable(r->bev[other], EV_READ);
        struct timeval tv = {r->px->cfg->connect_timeout_ms / 1000,
                             (r->px->cfg->connect_timeout_ms % 1000) * 1000};
        bufferevent_set_timeouts(r->bev[other], NULL, &tv);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        r->eof[side] = 1;
        if (side == CLIENT) leave_detect(r->px->relays, r);
        pass_fin(r, other);
    }
}

void st_relay_start(struct st_proxy *px, enum st_dirn kind, int fd, const struct sockaddr_storage *peer,
                    const struct sockaddr_storage *dst)
{
    struct st_relays *rs = px->relays;
    const struct st_proxy_config *cfg = px->cfg;
    struct relay *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        st_close_reset(fd);
        return;
    }
    r->px = px;
    r->kind = (uint8_t)kind;
    r->start_us = st_proxy_now_us(px);
    r->active_ms = r->start_us / 1000u;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(fd);
    r->bev[CLIENT] = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (r->bev[CLIENT] == NULL) {
        st_close_reset(fd);
        free(r);
        return;
    }
    r->bev[UPSTREAM] = bufferevent_socket_new(px->base, -1, BEV_OPT_CLOSE_ON_FREE);
    TAILQ_INSERT_TAIL(&rs->all, r, all);
    rs->open++;
    st_metrics.conn_open[kind]++;
    st_metrics.conn_total[kind]++;
    if (r->bev[UPSTREAM] == NULL) {
        finish(r, ST_CLOSE_ABORT, 1u << CLIENT);
        return;
    }
    for (int s = 0; s < 2; s++) {
        bufferevent_setcb(r->bev[s], on_read, on_write, on_event, r);
        bufferevent_setwatermark(r->bev[s], EV_READ, 0, cfg->buffer_high);
        bufferevent_set_max_single_read(r->bev[s], IO_CHUNK);
        bufferevent_set_max_single_write(r->bev[s], IO_CHUNK);
    }
    struct timeval idle = {cfg->idle_timeout_ms / 1000, (cfg->idle_timeout_ms % 1000) * 1000};
    struct timeval conn = {cfg->connect_timeout_ms / 1000, (cfg->connect_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(r->bev[CLIENT], cfg->idle_timeout_ms ? &idle : NULL,
                             cfg->idle_timeout_ms ? &idle : NULL);
    bufferevent_set_timeouts(r->bev[UPSTREAM], &conn, &conn);

    socklen_t dlen = dst->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bufferevent_socket_connect(r->bev[UPSTREAM], (const struct sockaddr *)dst, (int)dlen) < 0) {
        st_metrics.connect_failures[kind]++;
        finish(r, ST_CLOSE_RESET, 1u << CLIENT);
        return;
    }
    bufferevent_enable(r->bev[CLIENT], EV_READ | EV_WRITE);

    /* Parse unless over the connection budget; the relay works the same either way. */
    if (rs->parsed >= cfg->max_connections) {
        st_metrics.unparsed_connections++;
        return;
    }
    struct st_conn_info info;
    memset(&info, 0, sizeof(info));
    info.transport = ST_TRANSPORT_TCP;
    info.guess = kind == ST_DIRN_DNS ? ST_PROTO_DNS : ST_PROTO_UNKNOWN;
    info.start_us = r->start_us;
    info.server.port = st_sockaddr_text(dst, info.server.ip, sizeof(info.server.ip));
    if (kind == ST_DIRN_INBOUND) {
        info.client.port = st_sockaddr_text(peer, info.client.ip, sizeof(info.client.ip));
    } else {
        /* What the server (and its proxy) sees on the wire: our upstream socket. */
        struct sockaddr_storage local;
        socklen_t llen = sizeof(local);
        if (getsockname(bufferevent_getfd(r->bev[UPSTREAM]), (struct sockaddr *)&local, &llen) == 0)
            info.client.port = st_sockaddr_text(&local, info.client.ip, sizeof(info.client.ip));
        if (px->pod.ip != NULL && (info.client.ip[0] == 0 || strcmp(info.client.ip, "0.0.0.0") == 0))
            snprintf(info.client.ip, sizeof(info.client.ip), "%s", px->pod.ip);
    }
    r->parser = st_conn_new(&info, &px->parse, on_entry, r);
    if (r->parser == NULL) {
        st_metrics.unparsed_connections++;
        return;
    }
    rs->parsed++;
    if (info.guess == ST_PROTO_UNKNOWN) {
        TAILQ_INSERT_TAIL(&rs->detecting, r, detecting);
        r->in_detect = 1;
        arm_detect(rs);
    }
}

struct st_relays *st_relays_new(struct st_proxy *px)
{
    struct st_relays *rs = calloc(1, sizeof(*rs));
    if (rs == NULL) return NULL;
    rs->px = px;
    TAILQ_INIT(&rs->all);
    TAILQ_INIT(&rs->detecting);
    rs->detect_timer = evtimer_new(px->base, on_detect_timer, rs);
    if (rs->detect_timer == NULL) {
        free(rs);
        return NULL;
    }
    return rs;
}

unsigned st_relays_open(const struct st_relays *rs)
{
    return rs ? rs->open : 0;
}

void st_relays_abort_all(struct st_relays *rs)
{
    struct relay *r;
    while ((r = TAILQ_FIRST(&rs->all)) != NULL) finish(r, ST_CLOSE_ABORT, 3);
}

void st_relays_free(struct st_relays *rs)
{
    if (rs == NULL) return;
    st_relays_abort_all(rs);
    event_free(rs->detect_timer);
    free(rs);
}
