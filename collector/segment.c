/* segment.c - append-only segment files (segment.h).
 *
 * The event loop never touches the disk's data path: it fills a buffer of whole records
 * and, every tick or FLUSH_AT bytes, hands it to the writer thread, which write()s it;
 * a syncer thread fdatasync()s what was written and drops the synced pages from the page
 * cache, at most once per SYNC_EVERY_MS (the writes of the pause coalesce). A slow or
 * full disk therefore never stalls ingest: the hand-over queue is the backlog the ingest
 * path answers 503 on, and past QUEUE_MAX buffers are dropped (counted). Opening, rolling
 * and deleting segments (metadata) stay on the loop. A new segment's directory entry is
 * synced too. */
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"

/* A record: magic + u32 len + u32 checksum + u64 stored_at, the JSON text, '\n'.
 * "SC" records carry a CRC-32C (crc32c.h: the CPU's crc32 instruction, ~25x cheaper
 * per byte than the FNV-1a that "ST" records of earlier builds carry; both are read). */
#define HDR 18
#define MAGIC_CRC 'C'
#define MAGIC_FNV 'T' /* written by earlier builds: read only */
/* Buffered bytes that trigger a write: small enough that the bytes are still in the
 * CPU cache when the kernel copies them (4 MiB cost ~15% more kernel time). */
#define FLUSH_AT (1u << 20)
#define SYNC_EVERY_MS 100
#define QUEUE_MAX (64u << 20) /* bytes waiting for the disk thread; more are dropped */
#define RECORD_MAX (64u << 20)

struct seg {
    uint64_t first_id;
    uint64_t bytes;
    int64_t last_ts; /* ms; newest entry written to it */
};

/* A buffer of whole records on its way to the disk thread. */
struct wjob {
    struct wjob *next;
    int fd;          /* a dup of its segment's descriptor */
    uint64_t seg_id; /* the segment's first id */
    char *data;
    size_t len, cap;
};

/* A segment the disk thread wrote to and has yet to sync: one per segment, so a closed
 * segment's tail gets its own sync. */
struct sync_req {
    int fd;
    uint64_t seg_id;
    uint64_t upto; /* file size after the last write: what the sync makes durable */
};

/* The disk side: a writer thread takes the loop's buffers and write()s them; a syncer
 * thread fdatasync()s what was written, so writes never wait behind a slow sync. */
struct disk {
    pthread_t writer, syncer;
    pthread_mutex_t mu;
    pthread_cond_t writer_cv, syncer_cv;
    struct wjob *head, *tail; /* to write, oldest first */
    size_t queued;            /* bytes in the queue */
    char *spare;              /* a written buffer handed back to the loop for reuse */
    size_t spare_cap;
    struct sync_req *reqs;    /* to sync, one per segment */
    size_t nreq, capreq;
    bool fsync;
    bool dir;         /* fsync the directory (a segment was created) */
    bool stop;        /* the loop is closing: write what is queued, then end */
    bool writer_done; /* the writer ended: sync what is left, then end */
    uint64_t syncs, errors, dropped;
    uint64_t last_ms; /* CLOCK_MONOTONIC ms when the last sync round started (syncer only) */
};

struct st_segs {
    struct disk *disk; /* NULL until st_segs_start */
    char *dir;
    struct seg *segs;
    size_t n, cap;
    int fd; /* the last segment, open for appending; -1 before the first append */
    uint64_t seg_max;
    char *buf;
    size_t len, bufcap;
    uint64_t total;
    uint64_t errors;
    uint64_t retention_bytes;
    int64_t retention_age_ms;
};

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void seg_path(const struct st_segs *s, uint64_t first_id, char *out, size_t size)
{
    snprintf(out, size, "%s/%020llu.seg", s->dir, (unsigned long long)first_id);
}

static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->first_id < y->first_id ? -1 : x->first_id > y->first_id;
}

static int add_seg(struct st_segs *s, uint64_t first_id, uint64_t bytes, int64_t last_ts)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct seg *p = realloc(s->segs, cap * sizeof(*p));
        if (!p)
            return -1;
        s->segs = p;
        s->cap = cap;
    }
    s->segs[s->n++] = (struct seg){first_id, bytes, last_ts};
    return 0;
}

struct st_segs *st_segs_open(const char *dir, uint64_t retention_bytes, int64_t retention_age_ms,
                             char *err, size_t errlen)
{
    struct st_segs *s = calloc(1, sizeof(*s));
    DIR *d = NULL;
    if (!s)
        goto nomem;
    s->fd = -1;
    s->retention_bytes = retention_bytes;
    s->retention_age_ms = retention_age_ms;
    s->seg_max = ST_SEG_MAX_BYTES;
    if (retention_bytes && retention_bytes / 4 < s->seg_max)
        s->seg_max = retention_bytes / 4 < 4096 ? 4096 : retention_bytes / 4;
    s->dir = strdup(dir);
    if (!s->dir)
        goto nomem;
    if (mkdir_p(dir) < 0) {
        snprintf(err, errlen, "cannot create data dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open data dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long long first;
        char tail[8];
        if (strlen(de->d_name) != 24 || sscanf(de->d_name, "%20llu%7s", &first, tail) != 2 ||
            strcmp(tail, ".seg") != 0)
            continue;
        char path[PATH_MAX];
        struct stat st;
        seg_path(s, first, path, sizeof(path));
        if (stat(path, &st) < 0)
            continue;
        if (add_seg(s, first, (uint64_t)st.st_size, (int64_t)st.st_mtime * 1000) < 0)
            goto nomem;
        s->total += (uint64_t)st.st_size;
    }
    closedir(d);
    d = NULL;
    if (s->n)
        qsort(s->segs, s->n, sizeof(*s->segs), cmp_seg);
    return s;
nomem:
    snprintf(err, errlen, "out of memory opening the data dir");
fail:
    if (d)
        closedir(d);
    st_segs_close(s);
    return NULL;
}

static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf)
        return -1;
    *out = buf;
    *len = got;
    return 0;
}

int st_segs_load(struct st_segs *s,
                 int (*fn)(const char *json, size_t len, int64_t stored_at, void *arg), void *arg,
                 uint64_t *torn)
{
    for (size_t i = 0; i < s->n; i++) {
        char path[PATH_MAX], *data;
        size_t len, off = 0;
        seg_path(s, s->segs[i].first_id, path, sizeof(path));
        if (read_file(path, &data, &len) < 0) {
            s->errors++;
            continue;
        }
        while (off < len) {
            const unsigned char *p = (const unsigned char *)data + off;
            if (len - off < HDR || p[0] != 'S' || (p[1] != MAGIC_CRC && p[1] != MAGIC_FNV))
                break;
            uint32_t rlen = get32(p + 2), sum = get32(p + 6);
            if (rlen > RECORD_MAX || len - off < HDR + (size_t)rlen + 1 ||
                data[off + HDR + rlen] != '\n')
                break;
            const char *json = data + off + HDR;
            if ((p[1] == MAGIC_CRC ? st_crc32c(json, rlen) : fnv1a(json, rlen)) != sum)
                break;
            int64_t stored_at = (int64_t)((uint64_t)get32(p + 10) | (uint64_t)get32(p + 14) << 32);
            if (stored_at > s->segs[i].last_ts)
                s->segs[i].last_ts = stored_at;
            if (fn(data + off + HDR, rlen, stored_at, arg) != 0) {
                free(data);
                return -1;
            }
            off += HDR + rlen + 1;
        }
        if (off < len) {
            /* damaged: cut the file at the last whole record */
            (*torn)++;
            if (truncate(path, (off_t)off) < 0)
                s->errors++;
            s->total -= s->segs[i].bytes - off;
            s->segs[i].bytes = off;
        }
        free(data);
    }
    return 0;
}

static void drop_oldest(struct st_segs *s)
{
    char path[PATH_MAX];
    seg_path(s, s->segs[0].first_id, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT)
        s->errors++;
    s->total -= s->segs[0].bytes;
    memmove(s->segs, s->segs + 1, (s->n - 1) * sizeof(*s->segs));
    s->n--;
}

static void apply_retention(struct st_segs *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    /* the segment being written is never dropped */
    while (s->n > 1) {
        bool too_big = s->retention_bytes && s->total > s->retention_bytes;
        bool too_old = s->retention_age_ms && s->segs[0].last_ts < now - s->retention_age_ms;
        if (!too_big && !too_old)
            break;
        drop_oldest(s);
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

/* Under mu: seg_id needs a sync up to upto; takes fd. */
static int want_sync(struct disk *d, int fd, uint64_t seg_id, uint64_t upto)
{
    for (size_t i = 0; i < d->nreq; i++) {
        if (d->reqs[i].seg_id == seg_id) {
            close(d->reqs[i].fd); /* the newer write covers the older one */
            d->reqs[i] = (struct sync_req){fd, seg_id, upto};
            return 0;
        }
    }
    if (d->nreq == d->capreq) {
        size_t cap = d->capreq ? d->capreq * 2 : 4;
        struct sync_req *p = realloc(d->reqs, cap * sizeof(*p));
        if (!p) {
            close(fd);
            return -1;
        }
        d->reqs = p;
        d->capreq = cap;
    }
    d->reqs[d->nreq++] = (struct sync_req){fd, seg_id, upto};
    return 0;
}

/* Writer: appends one buffer and returns the file's size after it (0 when unknown).
 * A failed write is cut back off the file, so the segment holds whole records only and
 * the records written after it still load. */
static uint64_t write_job(struct wjob *job, bool *bad)
{
    off_t before = lseek(job->fd, 0, SEEK_END);
    *bad = before < 0 || write_all(job->fd, job->data, job->len) < 0;
    if (*bad && before >= 0 && ftruncate(job->fd, before) < 0)
        before = -1;
    return before < 0 ? 0 : (uint64_t)before + (*bad ? 0 : job->len);
}

static void *writer_main(void *arg)
{
    struct disk *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        struct wjob *job = d->head;
        if (!job) {
            if (d->stop)
                break;
            pthread_cond_wait(&d->writer_cv, &d->mu);
            continue;
        }
        d->head = job->next;
        if (!d->head)
            d->tail = NULL;
        pthread_mutex_unlock(&d->mu);
        bool bad;
        uint64_t upto = write_job(job, &bad);
        pthread_mutex_lock(&d->mu);
        d->queued -= job->len;
        if (bad) {
            d->errors++;
            d->dropped += job->len;
        }
        if (want_sync(d, job->fd, job->seg_id, upto) < 0)
            d->errors++;
        pthread_cond_signal(&d->syncer_cv);
        if (!d->spare) {
            d->spare = job->data;
            d->spare_cap = job->cap;
        } else {
            free(job->data);
        }
        free(job);
    }
    d->writer_done = true;
    pthread_cond_signal(&d->syncer_cv);
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Syncer: makes each written segment durable, then lets its pages go (the store has its
 * own copy and segments are read only at start: cached pages would only count against
 * the pod's memory limit, and the next writes reuse them instead of taking fresh ones). */
static int sync_all(const struct disk *d, struct sync_req *reqs, size_t n, const char *dir,
                    bool sync_dir)
{
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (d->fsync) {
            int bad = fdatasync(reqs[i].fd) < 0;
            if (!bad && reqs[i].upto >= 4096)
                posix_fadvise(reqs[i].fd, 0, (off_t)(reqs[i].upto & ~(uint64_t)4095),
                              POSIX_FADV_DONTNEED);
            failed |= bad;
        }
        close(reqs[i].fd);
    }
    if (sync_dir && d->fsync) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        failed |= dfd < 0 || fsync(dfd) < 0;
        if (dfd >= 0)
            close(dfd);
    }
    return failed;
}

static void *syncer_main(void *arg)
{
    struct st_segs *s = arg;
    struct disk *d = s->disk;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        if (!d->nreq && !d->dir) {
            if (d->writer_done)
                break;
            pthread_cond_wait(&d->syncer_cv, &d->mu);
            continue;
        }
        /* At most one round per SYNC_EVERY_MS: a sync per write would commit the journal
         * and flush the disk cache hundreds of times a second under load; the writes of
         * the pause coalesce. */
        uint64_t now = now_ms();
        if (d->fsync && !d->writer_done && now < d->last_ms + SYNC_EVERY_MS) {
            uint64_t until = d->last_ms + SYNC_EVERY_MS;
            struct timespec deadline = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
            pthread_cond_timedwait(&d->syncer_cv, &d->mu, &deadline);
            continue;
        }
        struct sync_req *reqs = d->reqs;
        size_t n = d->nreq;
        bool dir = d->dir;
        d->reqs = NULL;
        d->nreq = d->capreq = 0;
        d->dir = false;
        pthread_mutex_unlock(&d->mu);
        d->last_ms = now;
        int failed = sync_all(d, reqs, n, s->dir, dir);
        free(reqs);
        pthread_mutex_lock(&d->mu);
        d->syncs += d->fsync;
        d->errors += (uint64_t)failed;
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int st_segs_start(struct st_segs *s, bool fsync)
{
    struct disk *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->fsync = fsync;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->writer_cv, NULL);
    pthread_condattr_t ca; /* the pause between syncs is timed on CLOCK_MONOTONIC */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->syncer_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->disk = d;
    if (pthread_create(&d->writer, NULL, writer_main, d) != 0)
        goto fail;
    if (pthread_create(&d->syncer, NULL, syncer_main, s) != 0) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_signal(&d->writer_cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->writer, NULL);
        goto fail;
    }
    return 0;
fail:
    pthread_cond_destroy(&d->writer_cv);
    pthread_cond_destroy(&d->syncer_cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
    s->disk = NULL;
    return -1;
}

/* The disk threads' counters, read together under their lock. */
struct disk_counts {
    size_t queued;
    uint64_t syncs, errors, dropped;
};

static struct disk_counts disk_counts(const struct st_segs *s)
{
    struct disk_counts n = {0, 0, 0, 0};
    if (s->disk) {
        pthread_mutex_lock(&s->disk->mu);
        n = (struct disk_counts){s->disk->queued, s->disk->syncs, s->disk->errors, s->disk->dropped};
        pthread_mutex_unlock(&s->disk->mu);
    }
    return n;
}

uint64_t st_segs_syncs(const struct st_segs *s)
{
    return disk_counts(s).syncs;
}

int st_segs_flush(struct st_segs *s)
{
    struct disk *d = s->disk;
    int rc = 0;
    if (s->len && s->fd >= 0 && d) {
        struct wjob *job = malloc(sizeof(*job));
        int fd = job ? dup(s->fd) : -1;
        pthread_mutex_lock(&d->mu);
        if (fd < 0 || d->queued + s->len > QUEUE_MAX) {
            /* out of descriptors or memory, or the disk is far behind: these records
             * stay in memory only */
            d->dropped += s->len;
            d->errors++;
            pthread_mutex_unlock(&d->mu);
            if (fd >= 0)
                close(fd);
            free(job);
            rc = -1;
        } else {
            *job = (struct wjob){NULL, fd, s->segs[s->n - 1].first_id, s->buf, s->len, s->bufcap};
            if (d->tail)
                d->tail->next = job;
            else
                d->head = job;
            d->tail = job;
            d->queued += s->len;
            s->buf = d->spare; /* NULL: st_segs_append allocates */
            s->bufcap = d->spare_cap;
            d->spare = NULL;
            d->spare_cap = 0;
            pthread_cond_signal(&d->writer_cv);
            pthread_mutex_unlock(&d->mu);
        }
    }
    s->len = 0;
    apply_retention(s);
    return rc;
}

static void post_dir_sync(struct st_segs *s)
{
    if (!s->disk)
        return;
    pthread_mutex_lock(&s->disk->mu);
    s->disk->dir = true;
    pthread_cond_signal(&s->disk->syncer_cv);
    pthread_mutex_unlock(&s->disk->mu);
}

static int open_segment(struct st_segs *s, uint64_t first_id, int64_t ts)
{
    char path[PATH_MAX];
    seg_path(s, first_id, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (add_seg(s, first_id, 0, ts) < 0) {
        close(fd);
        return -1;
    }
    s->fd = fd;
    post_dir_sync(s);
    return 0;
}

int st_segs_append(struct st_segs *s, uint64_t id, int64_t stored_at, const char *json, size_t len)
{
    size_t need = HDR + len + 1;
    if (len > RECORD_MAX)
        return -1;
    struct seg *cur = s->n ? &s->segs[s->n - 1] : NULL;
    if (s->fd < 0 || !cur || cur->bytes + need > s->seg_max) {
        if (s->len)
            st_segs_flush(s);
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        if (cur && cur->bytes + need <= s->seg_max && s->fd < 0 && cur->first_id < id) {
            /* reopen the last segment left by the previous run */
            char path[PATH_MAX];
            seg_path(s, cur->first_id, path, sizeof(path));
            s->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        }
        if (s->fd < 0 && open_segment(s, id, stored_at) < 0) {
            s->errors++;
            return -1;
        }
        apply_retention(s);
        cur = &s->segs[s->n - 1];
    }
    if (s->len + need > s->bufcap) {
        size_t cap = s->bufcap ? s->bufcap : 1 << 16;
        while (cap < s->len + need)
            cap *= 2;
        char *p = realloc(s->buf, cap);
        if (!p)
            return -1;
        s->buf = p;
        s->bufcap = cap;
    }
    unsigned char *h = (unsigned char *)s->buf + s->len;
    h[0] = 'S';
    h[1] = MAGIC_CRC;
    put32(h + 2, (uint32_t)len);
    put32(h + 6, st_crc32c(json, len));
    put64(h + 10, (uint64_t)stored_at);
    memcpy(s->buf + s->len + HDR, json, len);
    s->buf[s->len + HDR + len] = '\n';
    s->len += need;
    cur->bytes += need;
    s->total += need;
    if (stored_at > cur->last_ts)
        cur->last_ts = stored_at;
    if (s->len >= FLUSH_AT)
        return st_segs_flush(s);
    return 0;
}

size_t st_segs_pending(const struct st_segs *s)
{
    return s->len + disk_counts(s).queued;
}

uint64_t st_segs_bytes(const struct st_segs *s)
{
    return s->total;
}

uint64_t st_segs_count(const struct st_segs *s)
{
    return s->n;
}

uint64_t st_segs_errors(const struct st_segs *s)
{
    return s->errors + disk_counts(s).errors;
}

uint64_t st_segs_dropped(const struct st_segs *s)
{
    return disk_counts(s).dropped;
}

void st_segs_close(struct st_segs *s)
{
    if (!s)
        return;
    if (s->len && s->fd >= 0)
        st_segs_flush(s);
    struct disk *d = s->disk;
    if (d) {
        /* what is queued is written, then synced, before the threads end */
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_signal(&d->writer_cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->writer, NULL);
        pthread_join(d->syncer, NULL);
        free(d->reqs);
        free(d->spare);
        pthread_cond_destroy(&d->writer_cv);
        pthread_cond_destroy(&d->syncer_cv);
        pthread_mutex_destroy(&d->mu);
        free(d);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    free(s->segs);
    free(s->dir);
    free(s);
}
