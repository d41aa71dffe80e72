/* crc32c.c - CRC-32C for segment records (crc32c.h). */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u /* Castagnoli, reflected */

static uint32_t table[256];
static uint32_t (*impl)(uint32_t crc, const unsigned char *p, size_t n);
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

static uint32_t crc_table(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ crc >> 8;
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const unsigned char *p,
                                                            size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

static void choose(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? c >> 1 ^ POLY : c >> 1;
        table[i] = c;
    }
    impl = crc_table;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) impl = crc_sse42;
#endif
}

uint32_t st_crc32c(const void *data, size_t len)
{
    pthread_once(&chosen, choose);
    return ~impl(~0u, data, len);
}

uint32_t st_crc32c_portable(const void *data, size_t len)
{
    pthread_once(&chosen, choose); /* fills the table */
    return ~crc_table(~0u, data, len);
}
