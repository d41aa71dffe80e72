/* segment.h - append-only segment files: the disk side of the embedded store.
 *
 * A data dir holds files NNNNNNNNNNNNNNNNNNNN.seg, named by the first id they hold.
 * A record is "SC" + u32 length + u32 CRC-32C of the JSON + u64 time it was stored (ms;
 * little endian) + the entry JSON + '\n' ("ST" records of earlier builds carry FNV-1a and
 * still load). Appends are buffered; st_segs_flush (a timer, or when the buffer is large)
 * hands the buffer to a writer thread; with fsync a syncer thread fdatasync()s what was
 * written at most every 100 ms: a crash of the machine loses at most the last flush
 * interval plus one sync; without fsync, what the kernel had not written back. A torn
 * last record is cut off at the next start. Retention drops whole segments, oldest
 * first. */
#ifndef SIDETAP_COLLECTOR_SEGMENT_H
#define SIDETAP_COLLECTOR_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct st_segs;

#define ST_SEG_MAX_BYTES (64u << 20)

struct st_segs *st_segs_open(const char *dir, uint64_t retention_bytes, int64_t retention_age_ms,
                             char *err, size_t errlen);
/* Replays every record, oldest first. fn returns 0 to go on. Counts damaged records in
 * *torn (a damaged tail is truncated away). */
int st_segs_load(struct st_segs *s,
                 int (*fn)(const char *json, size_t len, int64_t stored_at, void *arg), void *arg,
                 uint64_t *torn);
/* Buffers one record; id names a new segment, stored_at drives the retention age. */
int st_segs_append(struct st_segs *s, uint64_t id, int64_t stored_at, const char *json, size_t len);
/* Hands the buffer to the writer thread and applies the retention bounds. Returns -1 when
 * the buffer had to be dropped (the writer is QUEUE_MAX behind; counted). */
int st_segs_flush(struct st_segs *s);
/* Bytes not yet written: the buffer and the writer's queue (the ingest backlog). */
size_t st_segs_pending(const struct st_segs *s);
/* Starts the writer and syncer threads (segment.c); without fsync the syncer only closes
 * descriptors. Call it before the first append. -1 when it cannot. */
int st_segs_start(struct st_segs *s, bool fsync);
/* fdatasync rounds done so far. */
uint64_t st_segs_syncs(const struct st_segs *s);
/* Record bytes dropped because the disk was too far behind. */
uint64_t st_segs_dropped(const struct st_segs *s);
uint64_t st_segs_bytes(const struct st_segs *s);
uint64_t st_segs_count(const struct st_segs *s);
uint64_t st_segs_errors(const struct st_segs *s);
void st_segs_close(struct st_segs *s);

#endif
