/* replay_check.h - replay a capture in recorded, 1-byte and random chunking and require
 * identical entries; shared by the HTTP/2, gRPC and Redis parser tests. */
#ifndef SIDETAP_REPLAY_CHECK_H
#define SIDETAP_REPLAY_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
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

#endif
