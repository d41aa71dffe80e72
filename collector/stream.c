/* stream.c - GET /api/v1/stream: live entries as server-sent events.
 *
 * Publishing never waits for a client, and the store is the buffer: each stream has a
 * cursor (the next id to consider). While its connection has at most --stream-buffer bytes
 * queued, new matching entries are written at once. Beyond that the stream falls behind;
 * when libevent reports the output drained (evhttp_send_reply_chunk_with_cb) or on the
 * next tick, it resumes from its cursor, reading entries back from the store. A stream more
 * than --stream-lag entries behind skips ahead: the matching entries it skipped are counted
 * as dropped and the client is told with `event: notice`. A stream that cannot be written
 * for --stream-stall is closed. Every second each stream gets `event: stats`. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "collector.h"
#include "kfl.h"

#define STREAM_SNDBUF (64 * 1024)

struct client {
    struct st_stream *owner;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct kfl_query *q;
    uint64_t matched, dropped, dropped_unreported;
    uint64_t cursor;    /* next id to consider */
    bool behind;        /* entries from cursor on wait in the store */
    int64_t full_since; /* ms; 0 while it drains */
    struct client *prev, *next;
};

struct st_stream {
    struct st_collector *c;
    struct client *clients;
    size_t count;
    struct evbuffer *scratch;
};

struct st_stream *st_stream_new(struct st_collector *c)
{
    struct st_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->c = c;
    s->scratch = evbuffer_new();
    if (!s->scratch) {
        free(s);
        return NULL;
    }
    return s;
}

static void unlink_client(struct st_stream *s, struct client *cl)
{
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        s->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    s->count--;
}

static void client_free(struct client *cl)
{
    kfl_free(cl->q);
    free(cl);
}

/* The client went away: evhttp detached the request; ending it frees it. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct client *cl = arg;
    unlink_client(cl->owner, cl);
    evhttp_send_reply_end(cl->req);
    client_free(cl);
}

/* We end a stream (shutdown or stalled): close the connection outright. */
static void client_close(struct st_stream *s, struct client *cl)
{
    unlink_client(s, cl);
    evhttp_connection_set_closecb(cl->evcon, NULL, NULL);
    evhttp_connection_free(cl->evcon); /* frees the request too */
    client_free(cl);
}

void st_stream_free(struct st_stream *s)
{
    if (!s)
        return;
    while (s->clients)
        client_close(s, s->clients);
    evbuffer_free(s->scratch);
    free(s);
}

static size_t queued(struct client *cl)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(cl->evcon);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void send_event(struct client *cl, struct evbuffer *buf)
{
    evhttp_send_reply_chunk(cl->req, buf);
}

static void send_notice(struct st_stream *s, struct client *cl)
{
    evbuffer_add_printf(s->scratch,
                        "event: notice\ndata: {\"message\":\"slow consumer: %" PRIu64
                        " entries dropped\",\"dropped\":%" PRIu64 "}\n\n",
                        cl->dropped_unreported, cl->dropped_unreported);
    send_event(cl, s->scratch);
    cl->dropped_unreported = 0;
}

void st_stream_open(struct st_stream *s, struct evhttp_request *req, struct kfl_query *q)
{
    if ((int)s->count >= s->c->cfg.max_streams) {
        kfl_free(q);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
        st_api_error(req, 503, "too many live streams (limit %d)", s->c->cfg.max_streams);
        return;
    }
    struct client *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        kfl_free(q);
        st_api_error(req, 503, "out of memory");
        return;
    }
    cl->owner = s;
    cl->req = req;
    cl->q = q;
    cl->evcon = evhttp_request_get_connection(req);
    struct st_store_stats ss;
    st_store_stats(s->c->store, &ss);
    cl->cursor = ss.newest_id + 1;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(cl->evcon);
    if (bev) {
        int fd = bufferevent_getfd(bev), sz = STREAM_SNDBUF;
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    }
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", "text/event-stream");
    evhttp_add_header(oh, "Cache-Control", "no-store");
    evhttp_add_header(oh, "X-Accel-Buffering", "no");
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_connection_set_closecb(cl->evcon, on_close, cl);
    cl->next = s->clients;
    if (s->clients)
        s->clients->prev = cl;
    s->clients = cl;
    s->count++;
    evbuffer_add_printf(s->scratch, ": sidetap live stream\nretry: 2000\n\n");
    send_event(cl, s->scratch);
}

static void write_entry(struct st_stream *s, struct client *cl, const struct st_rec *rec,
                        char **brief);
static void catch_up(struct st_stream *s, struct client *cl);

/* libevent wrote everything queued for this stream. */
static void on_drained(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct client *cl = arg;
    if (cl->behind)
        catch_up(cl->owner, cl);
}

static void write_entry(struct st_stream *s, struct client *cl, const struct st_rec *rec,
                        char **brief)
{
    if (cl->dropped_unreported)
        send_notice(s, cl);
    char *own = NULL;
    if (!brief || !*brief) {
        json_t *e = st_api_entry_brief(rec);
        own = e ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
        if (!own)
            return;
        if (brief)
            *brief = own, own = NULL;
    }
    evbuffer_add_printf(s->scratch, "id: %" PRIu64 "\nevent: entry\ndata: %s\n\n", rec->id,
                        brief ? *brief : own);
    free(own);
    if (cl->behind)
        evhttp_send_reply_chunk_with_cb(cl->req, s->scratch, on_drained, cl);
    else
        send_event(cl, s->scratch);
}

static bool matches(struct client *cl, const struct st_rec *rec)
{
    struct kfl_subject subj = {.rec = rec};
    bool m = kfl_match(cl->q, &subj);
    kfl_subject_done(&subj);
    return m;
}

#define CATCH_UP_WORK 4000 /* records examined per call */

/* Sends what the stream missed, from its cursor, while the connection takes it. */
static void catch_up(struct st_stream *s, struct client *cl)
{
    struct st_store_stats ss;
    st_store_stats(s->c->store, &ss);
    uint64_t lag = s->c->cfg.stream_lag;
    if (ss.newest_id && ss.newest_id + 1 > cl->cursor + lag) {
        /* too far behind: skip, counting the matching entries skipped */
        uint64_t to = ss.newest_id + 1 - lag;
        uint64_t from = cl->cursor;
        if (from < ss.oldest_id) {
            cl->dropped += ss.oldest_id - from; /* evicted before we got to them */
            cl->dropped_unreported += ss.oldest_id - from;
            s->c->n.stream_dropped += ss.oldest_id - from;
            from = ss.oldest_id;
        }
        for (uint64_t id = from; id < to; id++) {
            const struct st_rec *rec = st_store_get(s->c->store, id);
            if (rec && matches(cl, rec)) {
                cl->matched++;
                cl->dropped++;
                cl->dropped_unreported++;
                s->c->n.stream_dropped++;
            }
        }
        cl->cursor = to;
    }
    for (int work = 0; work < CATCH_UP_WORK; work++) {
        if (cl->cursor > ss.newest_id || !ss.newest_id) {
            cl->behind = false;
            return;
        }
        if (queued(cl) > s->c->cfg.stream_buffer) {
            if (!cl->full_since)
                cl->full_since = st_now_ms();
            return;
        }
        cl->full_since = 0;
        const struct st_rec *rec = st_store_get(s->c->store, cl->cursor);
        cl->cursor++;
        if (rec && matches(cl, rec)) {
            cl->matched++;
            write_entry(s, cl, rec, NULL);
        }
    }
}

void st_stream_publish(struct st_stream *s, const struct st_rec *rec)
{
    if (!s->clients)
        return;
    char *brief = NULL; /* the list form of the entry, made once for all streams */
    for (struct client *cl = s->clients; cl; cl = cl->next) {
        if (cl->behind)
            continue; /* it reads this entry back from the store when it catches up */
        if (rec->id < cl->cursor)
            continue;
        if (!matches(cl, rec)) {
            cl->cursor = rec->id + 1;
            continue;
        }
        if (queued(cl) > s->c->cfg.stream_buffer) {
            cl->behind = true;
            cl->cursor = rec->id;
            if (!cl->full_since)
                cl->full_since = st_now_ms();
            /* be told when the connection drains: an SSE comment carries the callback
             * (libevent ignores an empty chunk) */
            evbuffer_add(s->scratch, ":\n\n", 3);
            evhttp_send_reply_chunk_with_cb(cl->req, s->scratch, on_drained, cl);
            continue;
        }
        cl->matched++;
        cl->cursor = rec->id + 1;
        write_entry(s, cl, rec, &brief);
    }
    free(brief);
}

void st_stream_tick(struct st_stream *s)
{
    struct st_store_stats ss;
    st_store_stats(s->c->store, &ss);
    int64_t now = st_now_ms();
    struct client *cl = s->clients;
    while (cl) {
        struct client *next = cl->next;
        if (cl->behind)
            catch_up(s, cl);
        size_t q = queued(cl);
        if (q > s->c->cfg.stream_buffer) {
            if (!cl->full_since)
                cl->full_since = now;
            if (now - cl->full_since >= s->c->cfg.stream_stall_ms) {
                s->c->n.streams_closed_slow++;
                client_close(s, cl);
            }
            cl = next;
            continue;
        }
        cl->full_since = 0;
        if (cl->dropped_unreported)
            send_notice(s, cl);
        evbuffer_add_printf(s->scratch,
                            "event: stats\ndata: {\"rate\":%.0f,\"matched\":%" PRIu64
                            ",\"dropped\":%" PRIu64 ",\"total\":%" PRIu64 "}\n\n",
                            st_collector_rate(s->c), cl->matched, cl->dropped, ss.entries);
        send_event(cl, s->scratch);
        cl = next;
    }
}

size_t st_stream_count(struct st_stream *s)
{
    return s->count;
}
