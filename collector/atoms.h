/* atoms.h - interned strings for the index records.
 *
 * Namespaces, pod names, IPs, methods and paths repeat across millions of entries: each
 * distinct string is stored once, records hold 32-bit ids, and KFL compares ids instead of
 * bytes. Ids are reference counted (a record holds a reference per field) and reused after
 * the last release. The table is process-wide and not thread-safe (the collector runs
 * one event loop). */
#ifndef SIDETAP_COLLECTOR_ATOMS_H
#define SIDETAP_COLLECTOR_ATOMS_H

#include <stddef.h>
#include <stdint.h>

/* 0 is "no string". */
uint32_t st_atom_intern(const char *s, size_t len);
void st_atom_release(uint32_t id);
/* The id of s if it is interned now, else 0 (nothing holds that string). */
uint32_t st_atom_find(const char *s, size_t len);
/* NUL-terminated; NULL for 0. Valid until the atom is released or another is interned. */
const char *st_atom_str(uint32_t id);
uint32_t st_atom_len(uint32_t id);
/* Changes whenever an id starts or stops naming a string (cached lookups check it). */
uint64_t st_atom_epoch(void);
size_t st_atom_count(void);
size_t st_atom_bytes(void);

#endif
