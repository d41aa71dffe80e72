/* crc32c.h - CRC-32C (Castagnoli), the checksum of segment records.
 * The SSE4.2 crc32 instruction when the CPU has it (8 bytes per instruction, about 10x
 * zlib's CRC-32 and 25x the FNV-1a it replaced), a table otherwise; both give the same
 * values (RFC 3720's CRC-32C: crc32c("123456789") == 0xe3069283). */
#ifndef SIDETAP_CRC32C_H
#define SIDETAP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t st_crc32c(const void *data, size_t len);
/* The table version alone (what CPUs without SSE4.2 run); for tests. */
uint32_t st_crc32c_portable(const void *data, size_t len);

#endif
