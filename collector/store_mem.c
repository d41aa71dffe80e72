/* store_mem.c - the embedded storage engine: entries in memory, newest kept within the
 * memory budget, mirrored to segment files so a restart reloads them.
 *
 * Index records sit by value in one ring ordered by id (ids increase; gaps are possible
 * after a damaged disk record), so "newest first from a cursor" is a binary search and a
 * sequential walk over memory. The entries' JSON texts are packed one after the other
 * into 1 MiB slabs (mmap'ed): records are appended and evicted in id order, so a slab is
 * released whole once its last record is evicted. No allocation per entry, no heap
 * fragmentation, and memory goes back to the system as the window moves. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "jscan.h"

#include "segment.h"
#include "store.h"

#define SLAB_BYTES ((size_t)1 << 20)
/* Released standard slabs kept mapped for the next ones: at the memory budget every new
 * slab follows an evicted one, and reusing it saves 256 page faults and 1 MiB of zeroing
 * (about 7% of ingest CPU in bench_collector's deployed configuration). */
#define SPARE_SLABS 2

struct slab {
    struct slab *next; /* newer */
    size_t size, used; /* bytes mapped (this header included), bytes handed out */
    size_t live;       /* records whose JSON is here */
    char data[];
};

struct mem_store {
    struct st_store base;
    struct st_store_config cfg;
    struct st_rec *ring; /* cap is a power of two */
    size_t cap, head, count;
    uint64_t next_id;
    size_t bytes;
    struct st_store_stats st;
    struct st_segs *segs;
    struct slab *oldest_slab, *newest_slab;
    struct slab *spare[SPARE_SLABS];
    size_t n_spare;
    size_t slab_bytes; /* mapped, spares included */
    struct st_jtape load_tape;
};

static void slab_unmap(struct mem_store *m, struct slab *sl)
{
    m->slab_bytes -= sl->size;
    munmap(sl, sl->size);
}

/* A released slab: kept as a spare when it has the standard size and there is room. */
static void slab_release(struct mem_store *m, struct slab *sl)
{
    if (sl->size == SLAB_BYTES && m->n_spare < SPARE_SLABS)
        m->spare[m->n_spare++] = sl;
    else
        slab_unmap(m, sl);
}

/* Releases the oldest slabs that no record uses any more (the newest stays for reuse). */
static void slab_trim(struct mem_store *m)
{
    while (m->oldest_slab && m->oldest_slab->live == 0 && m->oldest_slab != m->newest_slab) {
        struct slab *sl = m->oldest_slab;
        m->oldest_slab = sl->next;
        slab_release(m, sl);
    }
    if (m->newest_slab && m->newest_slab->live == 0)
        m->newest_slab->used = 0;
}

/* n bytes for the next record's JSON, in the newest slab or a new one. */
static char *slab_alloc(struct mem_store *m, size_t n)
{
    struct slab *sl = m->newest_slab;
    if (!sl || sl->size - offsetof(struct slab, data) - sl->used < n) {
        size_t size = SLAB_BYTES;
        if (n + offsetof(struct slab, data) > size)
            size = (n + offsetof(struct slab, data) + 4095) & ~(size_t)4095;
        if (size == SLAB_BYTES && m->n_spare > 0) {
            sl = m->spare[--m->n_spare];
            m->slab_bytes -= size; /* counted again below */
        } else {
            void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return NULL;
            sl = p;
        }
        sl->next = NULL;
        sl->size = size;
        sl->used = sl->live = 0;
        if (m->newest_slab)
            m->newest_slab->next = sl;
        else
            m->oldest_slab = sl;
        m->newest_slab = sl;
        m->slab_bytes += size;
        slab_trim(m);
    }
    char *p = sl->data + sl->used;
    sl->used += n;
    sl->live++;
    return p;
}

/* The oldest record's JSON is in the oldest slab that still has live records. */
static void slab_release_oldest(struct mem_store *m)
{
    slab_trim(m);
    if (m->oldest_slab) {
        m->oldest_slab->live--;
        slab_trim(m);
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct st_rec *at(const struct mem_store *m, size_t i)
{
    return &m->ring[(m->head + i) & (m->cap - 1)];
}

static void evict_oldest(struct mem_store *m)
{
    struct st_rec *r = &m->ring[m->head];
    m->bytes -= st_rec_size(r);
    m->st.per_proto[r->proto]--;
    st_rec_clear(r);
    slab_release_oldest(m);
    m->head = (m->head + 1) & (m->cap - 1);
    m->count--;
    m->st.evicted++;
}

/* The next free slot, growing the ring when full; NULL when out of memory. */
static struct st_rec *slot(struct mem_store *m)
{
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        struct st_rec *ring = malloc(cap * sizeof(*ring));
        if (!ring)
            return NULL;
        for (size_t i = 0; i < m->count; i++)
            ring[i] = *at(m, i);
        free(m->ring);
        m->ring = ring;
        m->cap = cap;
        m->head = 0;
    }
    return &m->ring[(m->head + m->count) & (m->cap - 1)];
}

/* Accounts for the record just built in the slot, then applies the budget. */
static const struct st_rec *commit(struct mem_store *m)
{
    struct st_rec *r = at(m, m->count);
    m->count++;
    m->bytes += st_rec_size(r);
    m->st.per_proto[r->proto]++;
    /* interned strings are shared by all records: they count once, in the total */
    while (m->bytes + st_atom_bytes() > m->cfg.memory_budget && m->count > 1)
        evict_oldest(m);
    return at(m, m->count - 1);
}

/* ,"id":"123"} without snprintf (it cost 1,000 instructions per entry). */
static size_t put_id_member(char *o, uint64_t id, bool comma)
{
    char digits[24];
    size_t n = 0, w = 0;
    do {
        digits[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    if (comma)
        o[w++] = ',';
    memcpy(o + w, "\"id\":\"", 6);
    w += 6;
    while (n)
        o[w++] = digits[--n];
    memcpy(o + w, "\"}", 2);
    return w + 2;
}

/* Copies text (an object's JSON) into a slab as the record's JSON, with "id" added
 * as its last member unless with_id is false (the text carries it). */
static int store_text(struct mem_store *m, struct st_rec *r, const char *text, size_t len,
                      uint64_t id, bool with_id)
{
    char idm[40];
    int idl = 0;
    if (with_id)
        idl = (int)put_id_member(idm, id, len > 2);
    size_t keep = with_id ? len - 1 : len; /* the closing brace moves after "id" */
    size_t n = keep + (size_t)idl;
    if (n >= UINT32_MAX)
        return -1;
    char *p = slab_alloc(m, n + 1);
    if (!p)
        return -1;
    memcpy(p, text, keep);
    memcpy(p + keep, idm, (size_t)idl);
    p[n] = '\0';
    r->json = p;
    r->json_len = (uint32_t)n;
    return 0;
}

static const struct st_rec *mem_append(struct st_store *s, const struct st_jentry *e,
                                       const char **error)
{
    struct mem_store *m = (struct mem_store *)s;
    uint64_t id = m->next_id;
    size_t len;
    const char *text = st_jentry_text(e, &len);
    if (e->tape->tok[e->root].type != ST_J_OBJECT || len < 2) {
        *error = "not an object";
        return NULL;
    }
    struct st_rec *r = slot(m);
    if (!r || store_text(m, r, text, len, id, true) < 0) {
        *error = "out of memory";
        return NULL;
    }
    st_rec_index(r, e);
    r->id = id;
    r->stored_at = now_ms();
    r = (struct st_rec *)commit(m);
    m->next_id++;
    m->st.appended++;
    if (m->segs)
        st_segs_append(m->segs, id, r->stored_at, r->json, r->json_len);
    return r;
}

/* Index of the first record with id >= id (count when none). */
static size_t lower_bound(const struct mem_store *m, uint64_t id)
{
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(m, mid)->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const struct st_rec *mem_get(struct st_store *s, uint64_t id)
{
    struct mem_store *m = (struct mem_store *)s;
    size_t i = lower_bound(m, id);
    if (i < m->count && at(m, i)->id == id)
        return at(m, i);
    return NULL;
}

static void mem_scan(struct st_store *s, uint64_t before, uint64_t after, st_store_visit_fn fn,
                     void *arg)
{
    struct mem_store *m = (struct mem_store *)s;
    size_t end = before ? lower_bound(m, before) : m->count;
    for (size_t i = end; i-- > 0;) {
        const struct st_rec *r = at(m, i);
        if (after && r->id <= after)
            break;
        if (!fn(r, arg))
            break;
    }
}

static void mem_stats(struct st_store *s, struct st_store_stats *out)
{
    struct mem_store *m = (struct mem_store *)s;
    *out = m->st;
    out->entries = m->count;
    out->bytes = m->bytes + st_atom_bytes();
    out->oldest_id = m->count ? at(m, 0)->id : 0;
    out->newest_id = m->count ? at(m, m->count - 1)->id : 0;
    if (m->segs) {
        out->disk_bytes = st_segs_bytes(m->segs);
        out->disk_segments = st_segs_count(m->segs);
        out->disk_errors = st_segs_errors(m->segs);
        out->disk_syncs = st_segs_syncs(m->segs);
        out->disk_dropped = st_segs_dropped(m->segs);
    }
}

static void mem_tick(struct st_store *s)
{
    struct mem_store *m = (struct mem_store *)s;
    if (m->cfg.retention_age_ms) {
        int64_t now = now_ms();
        while (m->count && at(m, 0)->stored_at < now - m->cfg.retention_age_ms)
            evict_oldest(m);
    }
    if (m->segs)
        st_segs_flush(m->segs);
}

static size_t mem_backlog(struct st_store *s)
{
    struct mem_store *m = (struct mem_store *)s;
    return m->segs ? st_segs_pending(m->segs) : 0;
}

static void mem_close(struct st_store *s)
{
    struct mem_store *m = (struct mem_store *)s;
    st_segs_close(m->segs);
    for (size_t i = 0; i < m->count; i++)
        st_rec_clear(at(m, i));
    while (m->oldest_slab) {
        struct slab *sl = m->oldest_slab;
        m->oldest_slab = sl->next;
        slab_unmap(m, sl);
    }
    while (m->n_spare > 0)
        slab_unmap(m, m->spare[--m->n_spare]);
    st_jtape_free(&m->load_tape);
    free(m->ring);
    free(m);
}

static const struct st_store_ops mem_ops = {
    .append = mem_append,
    .get = mem_get,
    .scan = mem_scan,
    .stats = mem_stats,
    .tick = mem_tick,
    .backlog = mem_backlog,
    .close = mem_close,
};

static int load_one(const char *json, size_t len, int64_t stored_at, void *arg)
{
    struct mem_store *m = arg;
    struct st_rec *r = slot(m);
    if (!r)
        return -1;
    struct st_jerr err;
    struct st_jentry e;
    if (st_jscan(json, len, &m->load_tape, &err) < 0 || m->load_tape.tok[0].type != ST_J_OBJECT) {
        m->st.torn++;
        return 0;
    }
    st_jentry_pick(&e, json, &m->load_tape, 0);
    uint64_t id = st_jentry_id(&e);
    if (!id || (m->count && id <= at(m, m->count - 1)->id)) {
        m->st.torn++; /* no id, or out of order: a damaged or foreign record */
        return 0;
    }
    if (store_text(m, r, json, len, id, false) < 0)
        return -1;
    st_rec_index(r, &e);
    r->id = id;
    r->stored_at = stored_at;
    commit(m);
    m->st.loaded++;
    if (id >= m->next_id)
        m->next_id = id + 1;
    return 0;
}

struct st_store *st_store_mem_new(const struct st_store_config *cfg, char *err, size_t errlen)
{
    struct mem_store *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->base.ops = &mem_ops;
    m->cfg = *cfg;
    m->cfg.data_dir = NULL;
    m->next_id = 1;
    if (cfg->data_dir) {
        m->segs = st_segs_open(cfg->data_dir, cfg->retention_bytes, cfg->retention_age_ms, err,
                               errlen);
        if (!m->segs)
            goto fail;
        if (st_segs_start(m->segs, !cfg->no_fsync) < 0) {
            snprintf(err, errlen, "cannot start the segment writer thread");
            goto fail;
        }
        uint64_t torn = 0;
        if (st_segs_load(m->segs, load_one, m, &torn) < 0) {
            snprintf(err, errlen, "out of memory loading %s", cfg->data_dir);
            goto fail;
        }
        m->st.torn += torn;
        m->st.evicted = 0; /* evictions while loading are not news */
    }
    return &m->base;
fail:
    mem_close(&m->base);
    return NULL;
}
