/* fuzz_replay.h - shared by the fuzz targets: fuzz_on_entry (below) for all of them,
 * fuzz_replay for the protocol ones (fuzz_dns, fuzz_kafka, fuzz_tls...), where
 * the input is a recorded conversation in a compact form, fed to one connection whose
 * protocol is known, so every byte exercises the module rather than detection.
 *
 *   u8 ctl: bit 0 = UDP, bits 4..7 = TCP chunk size - 1 (0 = chunks as recorded)
 *   { u8 direction (bit 0: 1 = server->client), u16 big-endian length, bytes }*
 *
 * cap2seed.py converts the .cap files under tests/captures into seeds of this form.
 * Every entry made is also written by parsers/entry_json.c and compared with the jansson
 * tree it replaced (tests/lib/entry_oracle.h): a difference is a crash. */
#ifndef SIDETAP_FUZZ_REPLAY_H
#define SIDETAP_FUZZ_REPLAY_H

#include <stdlib.h>
#include <string.h>

#include "../lib/entry_oracle.h"
#include "entry_json.h"
#include "parser.h"

static struct st_json_buf fuzz_json; /* reused, as the proxy reuses its batch buffer */

static void fuzz_on_entry(struct st_entry *e, void *arg)
{
    (void)arg;
    /* Serialization must never fail, and must say what the jansson tree said. */
    if (oracle_check(e, NULL, &fuzz_json) < 0) __builtin_trap();
    st_entry_free(e);
}

static inline void fuzz_replay(const uint8_t *data, size_t size, enum st_proto proto, uint16_t port)
{
    if (size < 1) return;
    uint8_t ctl = data[0];
    data++, size--;
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.body_cap = 512;
    enum st_transport t = (ctl & 1) ? ST_TRANSPORT_UDP : ST_TRANSPORT_TCP;
    struct st_conn_info info = {.start_us = 1, .transport = t, .guess = proto};
    strcpy(info.client.ip, "10.0.0.1");
    strcpy(info.server.ip, "10.0.0.2");
    info.client.port = 40000;
    info.server.port = port;
    struct st_conn *c = st_conn_new(&info, &cfg, fuzz_on_entry, NULL);
    size_t step = (size_t)(ctl >> 4);
    uint64_t now = 2;
    while (size >= 3) {
        enum st_dir dir = (data[0] & 1) ? ST_DIR_TO_CLIENT : ST_DIR_TO_SERVER;
        size_t len = (size_t)data[1] << 8 | data[2];
        data += 3, size -= 3;
        if (len > size) len = size;
        if (t == ST_TRANSPORT_UDP || step == 0) {
            st_conn_feed(c, dir, data, len, now++);
        } else {
            for (size_t off = 0; off < len; off += step)
                st_conn_feed(c, dir, data + off, len - off < step ? len - off : step, now++);
        }
        data += len, size -= len;
    }
    st_conn_close(c, (ctl & 2) ? ST_CLOSE_RESET : ST_CLOSE_FIN, now);
    st_conn_free(c);
}

#endif
