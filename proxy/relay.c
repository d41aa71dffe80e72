/* relay.c - one relayed TCP connection (see relay.h) and the set of open ones.
 *
 * The relay path does what HAProxy's TCP mode does, because every syscall and every
 * loop turn here is paid once per request by every tapped pod:
 *   recv() into one shared scratch buffer, send() the bytes to the peer at once, and
 *   only if the peer's socket is full keep the unsent rest (the sole per-connection
 *   allocation, freed once written) and wait for EV_WRITE on the peer. While bytes are
 *   waiting for a peer, the source is not read: its kernel window closes (backpressure),
 *   so at most one read (SIDETAP_BUFFER_SIZE) is held per direction.
 * The parser is fed the same bytes right after they were handed to the kernel, so
 * parsing never holds bytes back. Read events are registered once per socket and stay;
 * a write event is registered only while a peer has bytes waiting, or while connecting.
 * An idle connection holds its ~700-byte struct and four libevent events, no buffer.
 * libevent's bufferevents, used before, cost an ioctl(FIONREAD) per read, capped reads
 * at 4 KiB and re-armed two timers per read (docs/proxy.md, "Relay cost").
 *
 * Timeouts (connect, idle, reset flush, client silence for server-first detection) are
 * not a timer per connection: each is a queue ordered by deadline with one timer for
 * its head. Activity moves a connection to the tail of its queue (no syscall). */
#include "relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
/* struct event embedded in struct relay (event_assign): four fewer allocations per
 * connection, at the price of depending on libevent 2.1's struct layout, which the
 * Debian package's ABI fixes anyway. */
#include <event2/event_struct.h>

#include "origdst.h"

#define CLIENT 0
#define UPSTREAM 1
/* The scratch buffer one read goes to: SIDETAP_BUFFER_SIZE, at most this. */
#define SCRATCH_MAX (1024 * 1024)
/* Reads in a row from one socket per wakeup (when each one filled the buffer), so one
 * bulk transfer cannot starve the other connections. */
#define MAX_READS 4

struct relay;

/* A set of relays that share one timeout: ordered by `since_ms` (a relay is appended
 * with the current time), with one libevent timer for the head. */
struct deadline_q {
    TAILQ_HEAD(deadline_list, deadline) list;
    uint64_t duration_ms;
    struct event *timer;
    bool armed;
    void (*expire)(struct relay *r);
};

struct deadline {
    TAILQ_ENTRY(deadline) link;
    struct deadline_q *q; /* NULL: in no queue */
    uint64_t since_ms;
    struct relay *r;
};

struct side {
    int fd;
    struct event rd, wr;
    char *out;        /* bytes read from the other side that this socket did not take yet */
    size_t out_off, out_len;
    uint8_t reading : 1, writing : 1;
    uint8_t eof : 1;           /* read EOF on this side */
    uint8_t shut : 1;          /* shutdown(SHUT_WR) done on this side */
    uint8_t reset_pending : 1; /* reset this side once `out` is written */
    uint8_t dead : 1;          /* this side was reset: no more reads or writes */
};

struct relay {
    struct st_proxy *px;
    struct st_conn *parser;
    struct side side[2];
    TAILQ_ENTRY(relay) all;
    struct deadline timed;  /* connect_q while connecting or flushing before a reset, else idle_q */
    struct deadline detect; /* detect_q: waiting for the client's first byte */
    uint64_t start_us;
    uint8_t kind; /* enum st_dirn */
    uint8_t connected : 1, unknown_proto : 1;
};

TAILQ_HEAD(relay_list, relay);

struct st_relays {
    struct st_proxy *px;
    struct relay_list all;
    unsigned open, parsed;
    struct deadline_q connect_q, idle_q, detect_q;
    uint8_t *scratch;
    size_t chunk; /* bytes per read */
};

static bool finish(struct relay *r, enum st_close_reason reason, unsigned rst);
static bool pump(struct relay *r, int from);

/* Monotonic ms for the timeout queues (vDSO, no syscall). */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void st_close_reset(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

/* ---------------------------------------------------------------- deadline queues */

static void dl_arm(struct deadline_q *q, uint64_t now)
{
    struct deadline *head = TAILQ_FIRST(&q->list);
    if (q->armed || head == NULL) return;
    uint64_t due = head->since_ms + q->duration_ms;
    uint64_t wait = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(wait / 1000u), (suseconds_t)(wait % 1000u) * 1000};
    evtimer_add(q->timer, &tv);
    q->armed = true;
}

static void dl_remove(struct deadline *d)
{
    if (d->q == NULL) return;
    TAILQ_REMOVE(&d->q->list, d, link);
    d->q = NULL;
}

static void dl_insert(struct deadline_q *q, struct deadline *d, uint64_t now)
{
    dl_remove(d);
    d->q = q;
    d->since_ms = now;
    TAILQ_INSERT_TAIL(&q->list, d, link);
    dl_arm(q, now);
}

/* Activity: restart the timeout. The queue stays ordered (now >= every since_ms), and
 * its timer is already armed for an earlier head. */
static void dl_touch(struct deadline *d, uint64_t now)
{
    if (d->q == NULL || d->since_ms == now) return;
    TAILQ_REMOVE(&d->q->list, d, link);
    d->since_ms = now;
    TAILQ_INSERT_TAIL(&d->q->list, d, link);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct deadline_q *q = arg;
    q->armed = false;
    uint64_t now = mono_ms();
    struct deadline *d;
    while ((d = TAILQ_FIRST(&q->list)) != NULL && d->since_ms + q->duration_ms <= now) {
        dl_remove(d);
        q->expire(d->r); /* may free d->r, which leaves every queue */
    }
    dl_arm(q, now);
}

static int dl_init(struct deadline_q *q, struct event_base *base, uint64_t duration_ms,
                   void (*expire)(struct relay *r))
{
    TAILQ_INIT(&q->list);
    q->duration_ms = duration_ms;
    q->expire = expire;
    q->timer = evtimer_new(base, on_deadline, q);
    return q->timer ? 0 : -1;
}

/* ---------------------------------------------------------------- events */

static void start_reading(struct side *s)
{
    if (s->reading || s->dead) return;
    event_add(&s->rd, NULL);
    s->reading = 1;
}

static void stop_reading(struct side *s)
{
    if (!s->reading) return;
    event_del(&s->rd);
    s->reading = 0;
}

static void start_writing(struct side *s)
{
    if (s->writing) return;
    event_add(&s->wr, NULL);
    s->writing = 1;
}

static void stop_writing(struct side *s)
{
    if (!s->writing) return;
    event_del(&s->wr);
    s->writing = 0;
}

static void drop_out(struct side *s)
{
    free(s->out);
    s->out = NULL;
    s->out_off = s->out_len = 0;
}

/* Bytes moved: the idle (or flush) timeout starts again. No bytes move while connecting. */
static void activity(struct relay *r)
{
    if (r->timed.q != NULL) dl_touch(&r->timed, mono_ms());
}

static void leave_detect(struct relay *r)
{
    dl_remove(&r->detect);
}

/* ---------------------------------------------------------------- relay */

static void on_entry(struct st_entry *e, void *arg)
{
    struct relay *r = arg;
    st_proxy_entry(r->px, e, r->kind != ST_DIRN_INBOUND);
}

/* Ends the relay. `rst` bit i: close side i with a reset. Always returns true (freed),
 * so callers can `return finish(...)`. */
static bool finish(struct relay *r, enum st_close_reason reason, unsigned rst)
{
    struct st_relays *rs = r->px->relays;
    dl_remove(&r->timed);
    dl_remove(&r->detect);
    TAILQ_REMOVE(&rs->all, r, all);
    rs->open--;
    st_metrics.conn_open[r->kind]--;
    if (reason == ST_CLOSE_RESET) st_metrics.resets[r->kind]++;
    if (r->parser) {
        st_conn_close(r->parser, reason, st_proxy_now_us(r->px));
        st_conn_free(r->parser);
        rs->parsed--;
    }
    for (int i = 0; i < 2; i++) {
        struct side *s = &r->side[i];
        drop_out(s);
        if (s->fd < 0) continue;
        stop_reading(s);
        stop_writing(s);
        if ((rst >> i) & 1) st_close_reset(s->fd);
        else close(s->fd);
    }
    if (r->px->cfg->verbose)
        fprintf(stderr, "sidetap-proxy: %s connection closed (%s)\n",
                r->kind == ST_DIRN_INBOUND ? "inbound" : r->kind == ST_DIRN_DNS ? "dns" : "outbound",
                reason == ST_CLOSE_FIN ? "fin" : reason == ST_CLOSE_RESET ? "reset"
                                             : reason == ST_CLOSE_TIMEOUT ? "timeout" : "abort");
    free(r);
    return true;
}

/* Passes the FIN read on the other side on to side `to` once its queue is written.
 * Returns true when the relay was freed (both directions ended). */
static bool pass_fin(struct relay *r, int to)
{
    struct side *t = &r->side[to];
    if (t->shut || !r->side[1 - to].eof || t->out_len > 0) return false;
    if (to == UPSTREAM && !r->connected) return false;
    shutdown(t->fd, SHUT_WR);
    t->shut = 1;
    if (r->side[CLIENT].shut && r->side[UPSTREAM].shut) return finish(r, ST_CLOSE_FIN, 0);
    return false;
}

/* Side `dead` was reset (a read error, or a write it refused). The other side gets what
 * was already read for it, bounded by the connect timeout, then a reset. */
static bool peer_reset(struct relay *r, int dead)
{
    int other = 1 - dead;
    struct side *d = &r->side[dead], *o = &r->side[other];
    if (o->reset_pending || o->out_len == 0 || (other == UPSTREAM && !r->connected))
        return finish(r, ST_CLOSE_RESET, 1u << other);
    o->reset_pending = 1;
    d->dead = 1;
    d->eof = 1;
    stop_reading(d);
    stop_writing(d);
    drop_out(d);
    stop_reading(o);
    leave_detect(r);
    dl_insert(&r->px->relays->connect_q, &r->timed, mono_ms());
    return false;
}

/* Writes what is queued for side `to`; once all is written, resumes reading the other
 * side (and reads it at once: it most likely has bytes waiting). Returns true when the
 * relay was freed. */
static bool drain_out(struct relay *r, int to)
{
    struct side *t = &r->side[to];
    while (t->out_len > 0) {
        ssize_t w = send(t->fd, t->out + t->out_off, t->out_len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
            return peer_reset(r, to);
        }
        t->out_off += (size_t)w;
        t->out_len -= (size_t)w;
        activity(r);
    }
    drop_out(t);
    stop_writing(t);
    if (t->reset_pending) return finish(r, ST_CLOSE_RESET, 1u << to);
    struct side *src = &r->side[1 - to];
    if (src->eof) return pass_fin(r, to);
    start_reading(src);
    return pump(r, 1 - to);
}

/* Reads side `from` and sends to the other side at once (see the top of the file).
 * Returns true when the relay was freed. */
static bool pump(struct relay *r, int from)
{
    struct st_relays *rs = r->px->relays;
    struct side *src = &r->side[from], *dst = &r->side[1 - from];
    for (int round = 0; round < MAX_READS; round++) {
        ssize_t n = recv(src->fd, rs->scratch, rs->chunk, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
            return peer_reset(r, from);
        }
        if (n == 0) {
            src->eof = 1;
            stop_reading(src);
            if (from == CLIENT) leave_detect(r);
            return pass_fin(r, 1 - from);
        }
        activity(r);
        size_t len = (size_t)n, sent = 0;
        int werr = 0;
        ssize_t w = send(dst->fd, rs->scratch, len, MSG_NOSIGNAL);
        if (w >= 0) sent = (size_t)w;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) werr = 1;
        if (from == CLIENT) {
            leave_detect(r);
            st_metrics.bytes_to_server[r->kind] += len;
        } else {
            st_metrics.bytes_to_client[r->kind] += len;
        }
        if (r->parser)
            st_conn_feed(r->parser, from == CLIENT ? ST_DIR_TO_SERVER : ST_DIR_TO_CLIENT, rs->scratch, len,
                         st_proxy_now_us(r->px));
        if (werr) return peer_reset(r, 1 - from);
        if (sent < len) {
            /* The peer is full: keep the rest, stop reading until it is written. */
            dst->out = malloc(len - sent);
            if (dst->out == NULL) return finish(r, ST_CLOSE_ABORT, 3);
            memcpy(dst->out, rs->scratch + sent, len - sent);
            dst->out_len = len - sent;
            stop_reading(src);
            start_writing(dst);
            return false;
        }
        if (len < rs->chunk) return false; /* most likely drained: let epoll say */
    }
    return false;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct relay *r = arg;
    pump(r, fd == r->side[CLIENT].fd ? CLIENT : UPSTREAM);
}

static void connect_failed(struct relay *r, int err, bool timed_out)
{
    /* What the app would have seen without us: a refusal. The closest is a reset. */
    st_metrics.connect_failures[r->kind]++;
    if (timed_out) st_metrics.connect_timeouts++;
    if (r->px->cfg->verbose)
        fprintf(stderr, "sidetap-proxy: upstream connect failed: %s\n", timed_out ? "timed out" : strerror(err));
    finish(r, timed_out ? ST_CLOSE_TIMEOUT : ST_CLOSE_RESET, 1u << CLIENT);
}

/* The upstream connect finished. Only now is the client read: its bytes wait in the
 * kernel meanwhile, and the detect window starts when both ends can talk. */
static void on_connected(struct relay *r)
{
    struct side *up = &r->side[UPSTREAM];
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(up->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == EINPROGRESS || err == EINTR) return;
    if (err != 0) {
        connect_failed(r, err, false);
        return;
    }
    r->connected = 1;
    stop_writing(up);
    int one = 1;
    setsockopt(up->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct st_relays *rs = r->px->relays;
    uint64_t now = mono_ms();
    dl_remove(&r->timed);
    if (r->px->cfg->idle_timeout_ms) dl_insert(&rs->idle_q, &r->timed, now);
    if (r->parser && r->unknown_proto) dl_insert(&rs->detect_q, &r->detect, now);
    start_reading(up);
    start_reading(&r->side[CLIENT]);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct relay *r = arg;
    int to = fd == r->side[CLIENT].fd ? CLIENT : UPSTREAM;
    if (to == UPSTREAM && !r->connected) on_connected(r);
    else drain_out(r, to);
}

/* connect_q: the upstream connect, or the flush before a reset, took too long. */
static void on_connect_deadline(struct relay *r)
{
    if (!r->connected) {
        connect_failed(r, ETIMEDOUT, true);
        return;
    }
    st_metrics.idle_timeouts++;
    finish(r, ST_CLOSE_TIMEOUT, (unsigned)r->side[CLIENT].reset_pending | (unsigned)r->side[UPSTREAM].reset_pending << 1);
}

static void on_idle_deadline(struct relay *r)
{
    st_metrics.idle_timeouts++;
    finish(r, ST_CLOSE_TIMEOUT, 0);
}

/* The client said nothing for detect_ms: tell the parser (server-first protocols). */
static void on_detect_deadline(struct relay *r)
{
    if (r->parser) st_conn_client_silent(r->parser);
}

static void side_init(struct relay *r, int i, int fd)
{
    struct side *s = &r->side[i];
    s->fd = fd;
    event_assign(&s->rd, r->px->base, fd, EV_READ | EV_PERSIST, on_readable, r);
    event_assign(&s->wr, r->px->base, fd, EV_WRITE | EV_PERSIST, on_writable, r);
}

static void start_parser(struct relay *r, const struct sockaddr_storage *peer, const struct sockaddr_storage *dst)
{
    struct st_relays *rs = r->px->relays;
    struct st_proxy *px = r->px;
    /* Parse unless over the connection budget; the relay works the same either way. */
    if (rs->parsed >= px->max_parsed) {
        st_metrics.unparsed_connections++;
        return;
    }
    struct st_conn_info info;
    memset(&info, 0, sizeof(info));
    info.transport = ST_TRANSPORT_TCP;
    info.guess = r->kind == ST_DIRN_DNS ? ST_PROTO_DNS : ST_PROTO_UNKNOWN;
    info.start_us = r->start_us;
    info.server.port = st_sockaddr_text(dst, info.server.ip, sizeof(info.server.ip));
    if (r->kind == ST_DIRN_INBOUND) {
        info.client.port = st_sockaddr_text(peer, info.client.ip, sizeof(info.client.ip));
    } else {
        /* What the server (and its proxy) sees on the wire: our upstream socket. */
        struct sockaddr_storage local;
        socklen_t llen = sizeof(local);
        if (getsockname(r->side[UPSTREAM].fd, (struct sockaddr *)&local, &llen) == 0)
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
    r->unknown_proto = info.guess == ST_PROTO_UNKNOWN;
}

void st_relay_start(struct st_proxy *px, enum st_dirn kind, int fd, const struct sockaddr_storage *peer,
                    const struct sockaddr_storage *dst)
{
    struct st_relays *rs = px->relays;
    struct relay *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        st_close_reset(fd);
        return;
    }
    r->px = px;
    r->kind = (uint8_t)kind;
    r->start_us = st_proxy_now_us(px);
    r->timed.r = r->detect.r = r;
    r->side[UPSTREAM].fd = -1;
    /* The listener's sockets are already non-blocking (accept4). */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    side_init(r, CLIENT, fd);
    TAILQ_INSERT_TAIL(&rs->all, r, all);
    rs->open++;
    st_metrics.conn_open[kind]++;
    st_metrics.conn_total[kind]++;

    int up = socket(dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (up < 0) {
        finish(r, ST_CLOSE_ABORT, 1u << CLIENT);
        return;
    }
    side_init(r, UPSTREAM, up);
    socklen_t dlen = dst->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (connect(up, (const struct sockaddr *)dst, dlen) < 0 && errno != EINPROGRESS) {
        connect_failed(r, errno, false);
        return;
    }
    start_writing(&r->side[UPSTREAM]); /* writable = connected (or failed) */
    dl_insert(&rs->connect_q, &r->timed, mono_ms());
    start_parser(r, peer, dst);
}

struct st_relays *st_relays_new(struct st_proxy *px)
{
    struct st_relays *rs = calloc(1, sizeof(*rs));
    if (rs == NULL) return NULL;
    const struct st_proxy_config *cfg = px->cfg;
    rs->px = px;
    TAILQ_INIT(&rs->all);
    rs->chunk = cfg->buffer_high < SCRATCH_MAX ? cfg->buffer_high : SCRATCH_MAX;
    /* Pages are only resident once a read used them. */
    rs->scratch = malloc(rs->chunk);
    if (rs->scratch == NULL || dl_init(&rs->connect_q, px->base, cfg->connect_timeout_ms, on_connect_deadline) < 0 ||
        dl_init(&rs->idle_q, px->base, cfg->idle_timeout_ms, on_idle_deadline) < 0 ||
        dl_init(&rs->detect_q, px->base, cfg->detect_ms, on_detect_deadline) < 0) {
        st_relays_free(rs);
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
    struct deadline_q *qs[] = {&rs->connect_q, &rs->idle_q, &rs->detect_q};
    for (size_t i = 0; i < 3; i++)
        if (qs[i]->timer) event_free(qs[i]->timer);
    free(rs->scratch);
    free(rs);
}
