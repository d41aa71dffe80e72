/* libFuzzer target: the HTTP/2 module (and gRPC on top) on arbitrary two-way traffic
 * (input format in fuzz_replay.h; seeds from tests/captures/http2 and grpc via
 * cap2seed.py). Detection is skipped, so the client preface is checked too. */
#include "fuzz_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_replay(data, size, ST_PROTO_HTTP2, 80);
    return 0;
}
