/* h2_frames.h - build HTTP/2 frames for the HTTP/2 and gRPC tests (HPACK through
 * nghttp2's deflater, one per direction as real peers have). */
#ifndef SIDETAP_H2_FRAMES_H
#define SIDETAP_H2_FRAMES_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

struct h2buf {
    uint8_t *p;
    size_t len, cap;
};

static inline void h2b_put(struct h2buf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static inline void h2b_frame(struct h2buf *b, uint8_t type, uint8_t flags, uint32_t sid,
                             const void *payload, size_t n)
{
    uint8_t h[9] = {(uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, type, flags,
                    (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    h2b_put(b, h, 9);
    if (n) h2b_put(b, payload, n);
}

/* A header block for name/value pairs (NULL-terminated list) into `out`; returns its length. */
static inline size_t h2_encode(nghttp2_hd_deflater *d, uint8_t *out, size_t cap, const char *const *kv)
{
    nghttp2_nv nv[32];
    size_t n = 0;
    for (; kv[2 * n]; n++) {
        nv[n].name = (uint8_t *)kv[2 * n];
        nv[n].namelen = strlen(kv[2 * n]);
        nv[n].value = (uint8_t *)kv[2 * n + 1];
        nv[n].valuelen = strlen(kv[2 * n + 1]);
        nv[n].flags = NGHTTP2_NV_FLAG_NONE;
    }
    ssize_t r = nghttp2_hd_deflate_hd(d, out, cap, nv, n);
    return r > 0 ? (size_t)r : 0;
}

/* HEADERS (+ CONTINUATION frames of at most 16 KiB) for the pairs; `flags` may carry
 * END_STREAM, END_HEADERS is set on the last frame. */
static inline void h2b_headers(struct h2buf *b, nghttp2_hd_deflater *d, uint8_t flags, uint32_t sid,
                               const char *const *kv)
{
    size_t cap = 256 * 1024;
    uint8_t *block = malloc(cap);
    size_t n = h2_encode(d, block, cap, kv), off = 0;
    uint8_t type = 1;
    do {
        size_t k = n - off > 16384 ? 16384 : n - off;
        bool last = off + k == n;
        h2b_frame(b, type, (uint8_t)((type == 1 ? flags : 0) | (last ? 0x4 : 0)), sid, block + off, k);
        off += k;
        type = 9;
    } while (off < n);
    free(block);
}

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#endif
