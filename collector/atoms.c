/* atoms.c - the interned-string table (atoms.h): chained hash buckets over an array of
 * atoms indexed by id, with a free list of released ids. */
#include "atoms.h"

#include <stdlib.h>
#include <string.h>

struct atom {
    char *s; /* NULL when free */
    uint32_t len, hash, refs;
    uint32_t next; /* next in the bucket, or in the free list */
};

static struct atom *atoms; /* atoms[0] is unused */
static uint32_t natoms = 1, cap_atoms, free_head, live;
static uint32_t *buckets;
static uint32_t nbuckets;
static uint64_t epoch;
static size_t bytes;

static uint32_t hash_of(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int grow_buckets(void)
{
    uint32_t n = nbuckets ? nbuckets * 2 : 4096;
    uint32_t *b = calloc(n, sizeof(*b));
    if (!b)
        return -1;
    for (uint32_t id = 1; id < natoms; id++) {
        if (!atoms[id].s)
            continue;
        uint32_t k = atoms[id].hash & (n - 1);
        atoms[id].next = b[k];
        b[k] = id;
    }
    free(buckets);
    buckets = b;
    nbuckets = n;
    return 0;
}

uint32_t st_atom_find(const char *s, size_t len)
{
    if (!s || !nbuckets)
        return 0;
    uint32_t h = hash_of(s, len);
    for (uint32_t id = buckets[h & (nbuckets - 1)]; id; id = atoms[id].next)
        if (atoms[id].hash == h && atoms[id].len == len && memcmp(atoms[id].s, s, len) == 0)
            return id;
    return 0;
}

uint32_t st_atom_intern(const char *s, size_t len)
{
    if (!s || len > UINT32_MAX - 1)
        return 0;
    if (live + 1 > nbuckets && grow_buckets() < 0)
        return 0;
    uint32_t h = hash_of(s, len);
    uint32_t *head = &buckets[h & (nbuckets - 1)];
    for (uint32_t id = *head; id; id = atoms[id].next)
        if (atoms[id].hash == h && atoms[id].len == len && memcmp(atoms[id].s, s, len) == 0) {
            atoms[id].refs++;
            return id;
        }
    char *copy = malloc(len + 1);
    if (!copy)
        return 0;
    memcpy(copy, s, len);
    copy[len] = '\0';
    uint32_t id;
    if (free_head) {
        id = free_head;
        free_head = atoms[id].next;
    } else {
        if (natoms >= cap_atoms) {
            uint32_t cap = cap_atoms ? cap_atoms * 2 : 4096;
            struct atom *a = realloc(atoms, cap * sizeof(*a));
            if (!a) {
                free(copy);
                return 0;
            }
            atoms = a;
            cap_atoms = cap;
        }
        id = natoms++;
    }
    atoms[id] = (struct atom){.s = copy, .len = (uint32_t)len, .hash = h, .refs = 1, .next = *head};
    *head = id;
    live++;
    epoch++;
    bytes += len + 1 + sizeof(struct atom);
    return id;
}

void st_atom_release(uint32_t id)
{
    if (!id || id >= natoms || !atoms[id].s || --atoms[id].refs > 0)
        return;
    uint32_t *pp = &buckets[atoms[id].hash & (nbuckets - 1)];
    while (*pp && *pp != id)
        pp = &atoms[*pp].next;
    if (*pp)
        *pp = atoms[id].next;
    bytes -= atoms[id].len + 1 + sizeof(struct atom);
    free(atoms[id].s);
    atoms[id].s = NULL;
    atoms[id].next = free_head;
    free_head = id;
    live--;
    epoch++;
    if (live == 0) {
        /* everything released: give the memory back (tests check for leaks) */
        free(atoms);
        free(buckets);
        atoms = NULL;
        buckets = NULL;
        natoms = 1;
        cap_atoms = nbuckets = free_head = 0;
    }
}

const char *st_atom_str(uint32_t id)
{
    return id ? atoms[id].s : NULL;
}

uint32_t st_atom_len(uint32_t id)
{
    return id ? atoms[id].len : 0;
}

uint64_t st_atom_epoch(void)
{
    return epoch;
}

size_t st_atom_count(void)
{
    return live;
}

size_t st_atom_bytes(void)
{
    return bytes;
}
