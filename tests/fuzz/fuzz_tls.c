/* libFuzzer target: the TLS module (record walking, hello reassembly and parsing). */
#include "fuzz_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_replay(data, size, ST_PROTO_TLS, 443);
    return 0;
}
