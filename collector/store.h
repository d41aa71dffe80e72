/* store.h - where entries live: the interface every storage engine implements.
 *
 * The embedded engine (store_mem.c) keeps entries in memory within a budget, newest
 * wins, and mirrors them to append-only segment files (segment.c) so a restart finds
 * them again. A later engine (an external database) implements the same operations.
 * Ids are assigned by the store: decimal, increasing in append order, never reused. */
#ifndef SIDETAP_COLLECTOR_STORE_H
#define SIDETAP_COLLECTOR_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct st_store_config {
    size_t memory_budget;       /* bytes of records + JSON kept in memory */
    const char *data_dir;       /* NULL: memory only */
    uint64_t retention_bytes;   /* on disk; 0 = unbounded */
    int64_t retention_age_ms;   /* on disk and in memory; 0 = unbounded */
    bool no_fsync;              /* segments are written but not fdatasync'ed */
};

struct st_store_stats {
    uint64_t entries;   /* stored now */
    uint64_t bytes;     /* memory held by stored entries */
    uint64_t appended;  /* since start (loaded from disk not counted) */
    uint64_t evicted;   /* by the memory budget or the retention age */
    uint64_t loaded;    /* read back from disk at start */
    uint64_t disk_bytes;
    uint64_t disk_segments;
    uint64_t disk_errors;
    uint64_t disk_syncs;   /* fdatasync rounds (segment.c's disk thread) */
    uint64_t disk_dropped; /* bytes never written: the disk was too far behind */
    uint64_t torn;      /* damaged records skipped or truncated at load */
    uint64_t per_proto[ST_RP_COUNT];
    uint64_t oldest_id, newest_id; /* 0 when empty */
};

/* Called for each record, newest first; return false to stop. */
typedef bool (*st_store_visit_fn)(const struct st_rec *rec, void *arg);

struct st_store;

struct st_store_ops {
    /* Stores a scanned entry (an object without an "id" member, see record.h): its text is
     * copied once, with "id" added as the last member, and the stored record is returned
     * (valid until the next append), or NULL with a message. */
    const struct st_rec *(*append)(struct st_store *s, const struct st_jentry *entry,
                                   const char **error);
    const struct st_rec *(*get)(struct st_store *s, uint64_t id);
    /* Visits ids in (after, before) exclusive, newest first; before = 0 means no upper
     * bound, after = 0 no lower bound. */
    void (*scan)(struct st_store *s, uint64_t before, uint64_t after, st_store_visit_fn fn,
                 void *arg);
    void (*stats)(struct st_store *s, struct st_store_stats *out);
    /* Periodic work: flush buffered disk writes, apply the retention age. */
    void (*tick)(struct st_store *s);
    /* Bytes accepted but not yet on disk (ingest back-pressure). */
    size_t (*backlog)(struct st_store *s);
    void (*close)(struct st_store *s);
};

struct st_store {
    const struct st_store_ops *ops;
};

/* The embedded engine. Loads what data_dir holds. NULL with err filled on failure. */
struct st_store *st_store_mem_new(const struct st_store_config *cfg, char *err, size_t errlen);

static inline const struct st_rec *st_store_append(struct st_store *s, const struct st_jentry *e,
                                                   const char **err)
{
    return s->ops->append(s, e, err);
}
static inline const struct st_rec *st_store_get(struct st_store *s, uint64_t id)
{
    return s->ops->get(s, id);
}
static inline void st_store_scan(struct st_store *s, uint64_t before, uint64_t after,
                                 st_store_visit_fn fn, void *arg)
{
    s->ops->scan(s, before, after, fn, arg);
}
static inline void st_store_stats(struct st_store *s, struct st_store_stats *out)
{
    s->ops->stats(s, out);
}
static inline void st_store_tick(struct st_store *s)
{
    s->ops->tick(s);
}
static inline size_t st_store_backlog(struct st_store *s)
{
    return s->ops->backlog(s);
}
/* st_store_close(NULL) is a no-op. */
static inline void st_store_close(struct st_store *s)
{
    if (s)
        s->ops->close(s);
}

#endif
