/* libFuzzer target: the Redis module on arbitrary two-way traffic (input format in
 * fuzz_replay.h; seeds from tests/captures/redis via cap2seed.py). */
#include "fuzz_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_replay(data, size, ST_PROTO_REDIS, 6379);
    return 0;
}
