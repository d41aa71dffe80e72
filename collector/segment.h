/* segment.h - append-only segment files: the disk side of the embedded store.
 *
 * A data dir holds files NNNNNNNNNNNNNNNNNNNN.seg, named by the first id they hold.
 * A record is "ST" + u32 length + u32 FNV-1a checksum of the JSON + u64 time it was
 * stored (ms; little endian) + the entry JSON + '\n'. Appends are buffered and written
 * by st_segs_flush (a timer, or when the buffer is large). With st_segs_enable_fsync a
 * thread fdatasync()s after each write, off the event loop: a crash of the machine loses
 * at most the last flush interval plus one sync; without it, what the kernel had not
 * written back. A torn last record is cut off at the next start. Retention drops whole
 * segments, oldest first. */
#ifndef SIDETAP_COLLECTOR_SEGMENT_H
#define SIDETAP_COLLECTOR_SEGMENT_H

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
/* Writes the buffer, rolls to a new segment when the current one is full, and applies
 * the retention bounds. Returns -1 on a write error (counted; the data stays buffered up
 * to a bound, then is dropped). */
int st_segs_flush(struct st_segs *s);
size_t st_segs_pending(const struct st_segs *s);
/* Starts the syncer thread (segment.c); -1 when it cannot. */
int st_segs_enable_fsync(struct st_segs *s);
/* fdatasync rounds done so far. */
uint64_t st_segs_syncs(const struct st_segs *s);
uint64_t st_segs_bytes(const struct st_segs *s);
uint64_t st_segs_count(const struct st_segs *s);
uint64_t st_segs_errors(const struct st_segs *s);
void st_segs_close(struct st_segs *s);

#endif
