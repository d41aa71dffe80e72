/* http1.c - HTTP/1.x on llhttp. (Placeholder until the module lands: falls back to TCP.) */
#include <stddef.h>

#include "proto.h"

static void *http1_create(struct st_conn *conn)
{
    (void)conn;
    return NULL;
}

static int http1_feed(void *state, struct st_conn *conn, enum st_dir dir, const uint8_t *data,
                      size_t len, uint64_t now_us)
{
    (void)state, (void)conn, (void)dir, (void)data, (void)len, (void)now_us;
    return 0;
}

static void http1_close(void *state, struct st_conn *conn, enum st_close_reason reason,
                        uint64_t now_us)
{
    (void)state, (void)conn, (void)reason, (void)now_us;
}

static void http1_destroy(void *state)
{
    (void)state;
}

const struct st_proto_ops st_http1_ops = {
    .proto = ST_PROTO_HTTP,
    .create = http1_create,
    .feed = http1_feed,
    .close = http1_close,
    .destroy = http1_destroy,
};
