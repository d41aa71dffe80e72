/* replay_check.h - replay a capture in recorded, 1-byte and random chunking and require
 * identical entries; shared by the HTTP/2, gRPC and Redis parser tests. */
#ifndef SIDETAP_REPLAY_CHECK_H
#define SIDETAP_REPLAY_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "entry_json.h"
#include "check.h"

/* The entries of a capture (recorded chunking) after checking that 1-byte and three
 * random chunkings give the same JSON. NULL (and a failed check) if it cannot load. */
static inline json_t *replay_checked(const char *relative, const struct st_parse_config *cfg)
{
    struct st_capture cap;
    if (st_capture_load(st_capture_path(relative), &cap) != 0) {
        CHECK(!"capture loads");
        return NULL;
    }
    json_t *want = st_capture_replay(&cap, cfg, ST_SPLIT_RECORDED, 0);
    json_t *bytes = st_capture_replay(&cap, cfg, ST_SPLIT_BYTE, 0);
    if (!json_equal(want, bytes)) {
        fprintf(stderr, "%s: 1-byte chunking differs from recorded\n", relative);
        check_failures++;
    }
    json_decref(bytes);
    for (unsigned seed = 1; seed <= 3; seed++) {
        json_t *rnd = st_capture_replay(&cap, cfg, ST_SPLIT_RANDOM, seed);
        if (!json_equal(want, rnd)) {
            fprintf(stderr, "%s: random chunking (seed %u) differs from recorded\n", relative, seed);
            check_failures++;
        }
        json_decref(rnd);
    }
    st_capture_free(&cap);
    return want;
}

/* Path lookups into an entry: jget(e, "request", "method", NULL). */
static inline json_t *jget(json_t *j, ...)
{
    va_list ap;
    va_start(ap, j);
    const char *k;
    while (j && (k = va_arg(ap, const char *)) != NULL) j = json_object_get(j, k);
    va_end(ap);
    return j;
}

#define JSTR(...) json_string_value(jget(__VA_ARGS__, NULL))
#define JINT(...) json_integer_value(jget(__VA_ARGS__, NULL))
#define JTRUE(...) json_is_true(jget(__VA_ARGS__, NULL))

/* `prog --dump CAPTURE`: print the entries, for writing tests. */
static inline int maybe_dump(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--dump") != 0) return 0;
    struct st_capture cap;
    if (st_capture_load(argv[2], &cap) != 0) exit(1);
    json_t *j = st_capture_replay(&cap, NULL, ST_SPLIT_RECORDED, 0);
    json_dumpf(j, stdout, JSON_INDENT(1));
    putchar('\n');
    json_decref(j);
    st_capture_free(&cap);
    exit(0);
}


/* ---- hand-made connections: steps fed whole and 1 byte at a time must agree ---- */

struct feed_step {
    enum st_dir dir;
    const uint8_t *data;
    size_t len;
};

static inline void steps_collect(struct st_entry *e, void *arg)
{
    json_array_append_new((json_t *)arg, st_entry_to_json(e, NULL));
    st_entry_free(e);
}

/* The entries (caller frees) of a connection to `port` fed with the steps. */
static inline json_t *run_steps(const struct feed_step *steps, size_t n, const struct st_parse_config *cfg,
                                uint16_t port)
{
    struct st_parse_config defaults;
    if (cfg == NULL) {
        st_parse_config_init(&defaults);
        cfg = &defaults;
    }
    json_t *results[2];
    for (int mode = 0; mode < 2; mode++) {
        json_t *got = json_array();
        struct st_conn_info info = {.start_us = 1000000, .transport = ST_TRANSPORT_TCP};
        strcpy(info.client.ip, "10.0.0.1");
        strcpy(info.server.ip, "10.0.0.2");
        info.server.port = port;
        struct st_conn *c = st_conn_new(&info, cfg, steps_collect, got);
        for (size_t i = 0; i < n; i++) {
            if (mode == 0) st_conn_feed(c, steps[i].dir, steps[i].data, steps[i].len, 1000000 + i);
            else
                for (size_t k = 0; k < steps[i].len; k++)
                    st_conn_feed(c, steps[i].dir, steps[i].data + k, 1, 1000000 + i);
        }
        st_conn_close(c, ST_CLOSE_FIN, 2000000);
        st_conn_free(c);
        results[mode] = got;
    }
    if (!json_equal(results[0], results[1])) {
        fprintf(stderr, "1-byte feeding differs from whole chunks\n");
        check_failures++;
    }
    json_decref(results[1]);
    return results[0];
}

#endif
