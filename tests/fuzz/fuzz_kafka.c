/* libFuzzer target: the Kafka module (framing, headers, request and response bodies). */
#include "fuzz_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_replay(data, size, ST_PROTO_KAFKA, 9092);
    return 0;
}
