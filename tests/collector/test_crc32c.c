/* test_crc32c - segment records' CRC-32C: the published check values, and the CPU's
 * crc32 instruction path equal to the table path at every length and alignment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

static int failures;

static void expect(const char *what, unsigned got, unsigned want)
{
    if (got != want) {
        fprintf(stderr, "FAIL %s: 0x%08x, want 0x%08x\n", what, got, want);
        failures++;
    }
}

int main(void)
{
    /* RFC 3720 B.4 and the common "123456789" check value */
    expect("123456789", st_crc32c("123456789", 9), 0xe3069283u);
    expect("portable 123456789", st_crc32c_portable("123456789", 9), 0xe3069283u);
    unsigned char zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof(ones));
    expect("32 zeros", st_crc32c(zeros, 32), 0x8a9136aau);
    expect("32 ones", st_crc32c(ones, 32), 0x62a8ab43u);
    unsigned char inc[32];
    for (int i = 0; i < 32; i++)
        inc[i] = (unsigned char)i;
    expect("0..31", st_crc32c(inc, 32), 0x46dd794eu);
    expect("empty", st_crc32c("", 0), 0);

    unsigned char buf[4096 + 16];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
    for (size_t off = 0; off < 16; off++)
        for (size_t len = 0; len <= 4096; len += len < 64 ? 1 : 61) {
            char what[64];
            snprintf(what, sizeof(what), "offset %zu length %zu", off, len);
            expect(what, st_crc32c(buf + off, len), st_crc32c_portable(buf + off, len));
        }
    if (failures == 0) printf("ok\n");
    return failures ? 1 : 0;
}
