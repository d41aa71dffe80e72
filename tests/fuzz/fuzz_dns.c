/* libFuzzer target: the DNS module over UDP (one datagram per record) and TCP. */
#include "fuzz_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_replay(data, size, ST_PROTO_DNS, 53);
    return 0;
}
