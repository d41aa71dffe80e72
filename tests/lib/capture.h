/* capture.h - recorded connections (tests/captures/README.md) and their replay through
 * the parsers in any chunking, for tests, fuzz seeds and benchmarks. */
#ifndef SIDETAP_TEST_CAPTURE_H
#define SIDETAP_TEST_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "parser.h"

struct st_capture_chunk {
    enum st_dir dir;
    uint64_t ts_us;
    const uint8_t *data;
    size_t len;
};

struct st_capture {
    uint16_t server_port;
    enum st_transport transport;
    struct st_capture_chunk *chunks;
    size_t count;
    uint8_t *buf; /* the file, which chunks point into */
    size_t buf_len;
};

/* Loads a .cap file. Returns 0, or -1 with a message on stderr. */
int st_capture_load(const char *path, struct st_capture *cap);
void st_capture_free(struct st_capture *cap);

enum st_split {
    ST_SPLIT_RECORDED = 0, /* chunks as recorded */
    ST_SPLIT_BYTE,         /* every chunk fed 1 byte at a time */
    ST_SPLIT_RANDOM,       /* every chunk cut at random points (seeded) */
};

/* Feeds the capture into a fresh connection and returns the entries as a JSON array
 * (the caller owns it). `config` may be NULL for the defaults. Ends with ST_CLOSE_FIN. */
json_t *st_capture_replay(const struct st_capture *cap, const struct st_parse_config *config,
                          enum st_split split, unsigned seed);

/* Path of a capture under tests/captures, from $SIDETAP_SOURCE_ROOT or the build's
 * source root. Returns a static buffer. */
const char *st_capture_path(const char *relative);

#endif
