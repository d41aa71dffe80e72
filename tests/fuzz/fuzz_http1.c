/* libFuzzer target: the HTTP/1 module (parsers/http1.c) on both directions of a
 * conversation, including upgrades, CONNECT and h2c hand-overs to the next module. */
#include "fuzz_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_replay(data, size, ST_PROTO_HTTP, 80);
    return 0;
}
