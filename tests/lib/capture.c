/* capture.c - load and replay .cap files. */
#include "capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry_json.h"

#ifndef SIDETAP_SOURCE_ROOT
#define SIDETAP_SOURCE_ROOT "."
#endif

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

int st_capture_load(const char *path, struct st_capture *cap)
{
    memset(cap, 0, sizeof(*cap));
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "capture: cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    cap->buf = malloc(size > 0 ? (size_t)size : 1);
    cap->buf_len = size > 0 ? (size_t)size : 0;
    if (cap->buf == NULL || fread(cap->buf, 1, cap->buf_len, f) != cap->buf_len) {
        fclose(f);
        fprintf(stderr, "capture: cannot read %s\n", path);
        st_capture_free(cap);
        return -1;
    }
    fclose(f);

    uint8_t *nl = memchr(cap->buf, '\n', cap->buf_len);
    char transport[8] = "";
    unsigned port = 0;
    if (nl == NULL || sscanf((char *)cap->buf, "STCAP1 port=%u transport=%7s", &port, transport) != 2) {
        fprintf(stderr, "capture: %s: bad header\n", path);
        st_capture_free(cap);
        return -1;
    }
    cap->server_port = (uint16_t)port;
    cap->transport = strcmp(transport, "udp") == 0 ? ST_TRANSPORT_UDP : ST_TRANSPORT_TCP;

    size_t off = (size_t)(nl - cap->buf) + 1, cap_chunks = 0;
    while (off < cap->buf_len) {
        if (cap->buf_len - off < 13) goto bad;
        size_t len = (size_t)be(cap->buf + off + 1, 4);
        if (cap->buf_len - off - 13 < len || cap->buf[off] > 1) goto bad;
        if (cap->count == cap_chunks) {
            cap_chunks = cap_chunks ? cap_chunks * 2 : 64;
            cap->chunks = realloc(cap->chunks, cap_chunks * sizeof(*cap->chunks));
        }
        struct st_capture_chunk *c = &cap->chunks[cap->count++];
        c->dir = cap->buf[off] ? ST_DIR_TO_CLIENT : ST_DIR_TO_SERVER;
        c->ts_us = be(cap->buf + off + 5, 8);
        c->data = cap->buf + off + 13;
        c->len = len;
        off += 13 + len;
    }
    return 0;
bad:
    fprintf(stderr, "capture: %s: truncated record at offset %zu\n", path, off);
    st_capture_free(cap);
    return -1;
}

void st_capture_free(struct st_capture *cap)
{
    free(cap->chunks);
    free(cap->buf);
    memset(cap, 0, sizeof(*cap));
}

static void collect(struct st_entry *e, void *arg)
{
    json_t *arr = arg;
    json_array_append_new(arr, st_entry_to_json(e, NULL));
    st_entry_free(e);
}

json_t *st_capture_replay(const struct st_capture *cap, const struct st_parse_config *config,
                          enum st_split split, unsigned seed)
{
    struct st_parse_config defaults;
    if (config == NULL) {
        st_parse_config_init(&defaults);
        config = &defaults;
    }
    json_t *out = json_array();
    struct st_conn_info info = {.transport = cap->transport};
    strcpy(info.client.ip, "10.0.0.1");
    info.client.port = 40000;
    strcpy(info.server.ip, "10.0.0.2");
    info.server.port = cap->server_port;
    info.start_us = cap->count ? cap->chunks[0].ts_us : 0;
    struct st_conn *conn = st_conn_new(&info, config, collect, out);
    uint64_t last = info.start_us;
    for (size_t i = 0; i < cap->count; i++) {
        const struct st_capture_chunk *c = &cap->chunks[i];
        last = c->ts_us;
        if (split == ST_SPLIT_RECORDED || cap->transport == ST_TRANSPORT_UDP) {
            st_conn_feed(conn, c->dir, c->data, c->len, c->ts_us);
            continue;
        }
        size_t off = 0;
        while (off < c->len) {
            size_t n = 1;
            if (split == ST_SPLIT_RANDOM) {
                seed = seed * 1103515245u + 12345u;
                n = 1 + (seed >> 16) % 97;
            }
            if (n > c->len - off) n = c->len - off;
            st_conn_feed(conn, c->dir, c->data + off, n, c->ts_us);
            off += n;
        }
    }
    st_conn_close(conn, ST_CLOSE_FIN, last);
    st_conn_free(conn);
    return out;
}

const char *st_capture_path(const char *relative)
{
    static char path[4096];
    const char *root = getenv("SIDETAP_SOURCE_ROOT");
    snprintf(path, sizeof(path), "%s/tests/captures/%s", root ? root : SIDETAP_SOURCE_ROOT, relative);
    return path;
}
