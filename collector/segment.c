/* segment.c - append-only segment files (segment.h).
 *
 * Durability: the event loop only write()s (every tick or FLUSH_AT bytes). A syncer
 * thread then fdatasync()s what was written, on its own duplicate of the descriptor, so
 * a slow disk never stalls ingest; requests coalesce (one sync covers every write before
 * it, at most one sync per SYNC_EVERY_MS). A new segment's directory entry is synced too. */
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
#define PENDING_MAX (64u << 20)   /* buffered bytes kept while the disk fails */
#define RECORD_MAX (64u << 20)

struct seg {
    uint64_t first_id;
    uint64_t bytes;
    int64_t last_ts; /* ms; newest entry written to it */
};

/* A segment to fdatasync: a dup of its descriptor and its size when posted. */
struct sync_req {
    int fd;
    uint64_t seg_id; /* first_id: a newer request for the same segment replaces this one */
    uint64_t upto;
};

/* The syncer thread's mailbox: the loop posts, the thread takes. One request per
 * segment: when a segment is closed its tail still needs its own sync. */
struct syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sync_req *reqs;
    size_t nreq, capreq;
    bool dir; /* also fsync the directory (a segment was created) */
    bool stop;
    uint64_t syncs, errors;
    uint64_t last_ms; /* CLOCK_MONOTONIC ms when the last sync started (syncer thread only) */
};

struct st_segs {
    struct syncer *sync; /* NULL: no fsync */
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

static uint64_t ts_ms(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000u + (uint64_t)ts->tv_nsec / 1000000u;
}

static void *syncer_main(void *arg)
{
    struct st_segs *s = arg;
    struct syncer *y = s->sync;
    pthread_mutex_lock(&y->mu);
    for (;;) {
        while (!y->nreq && !y->dir && !y->stop)
            pthread_cond_wait(&y->cv, &y->mu);
        if (!y->nreq && !y->dir && y->stop)
            break;
        /* At most one sync per SYNC_EVERY_MS: writes come every tick or FLUSH_AT bytes,
         * and a sync per write would commit the journal and flush the disk cache hundreds
         * of times a second under load; the requests of the pause coalesce. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!y->stop && ts_ms(&now) < y->last_ms + SYNC_EVERY_MS) {
            uint64_t until = y->last_ms + SYNC_EVERY_MS;
            struct timespec deadline = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
            while (!y->stop && pthread_cond_timedwait(&y->cv, &y->mu, &deadline) == 0)
                ;
        }
        struct sync_req *reqs = y->reqs;
        size_t nreq = y->nreq;
        bool dir = y->dir;
        y->reqs = NULL;
        y->nreq = y->capreq = 0;
        y->dir = false;
        pthread_mutex_unlock(&y->mu);
        clock_gettime(CLOCK_MONOTONIC, &now);
        y->last_ms = ts_ms(&now);
        int failed = 0;
        for (size_t i = 0; i < nreq; i++) {
            int bad = fdatasync(reqs[i].fd) < 0;
            /* The store keeps its own copy in memory and segments are read only at start:
             * synced pages have no use in the page cache (they count against the pod's
             * memory limit), and reusing them for the next writes is cheaper than new ones. */
            if (!bad && reqs[i].upto >= 4096)
                posix_fadvise(reqs[i].fd, 0, (off_t)(reqs[i].upto & ~(uint64_t)4095),
                              POSIX_FADV_DONTNEED);
            failed |= bad;
            close(reqs[i].fd);
        }
        free(reqs);
        if (dir) {
            int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            failed |= dfd < 0 || fsync(dfd) < 0;
            if (dfd >= 0)
                close(dfd);
        }
        pthread_mutex_lock(&y->mu);
        y->syncs++;
        y->errors += (uint64_t)failed;
    }
    pthread_mutex_unlock(&y->mu);
    return NULL;
}

static int grow_reqs(struct syncer *y)
{
    size_t cap = y->capreq ? y->capreq * 2 : 4;
    struct sync_req *p = realloc(y->reqs, cap * sizeof(*p));
    if (!p)
        return -1;
    y->reqs = p;
    y->capreq = cap;
    return 0;
}

/* Asks the syncer to make what was written so far durable (dir: the directory too). */
static void post_sync(struct st_segs *s, bool dir)
{
    struct syncer *y = s->sync;
    if (!y || s->fd < 0)
        return;
    const struct seg *cur = &s->segs[s->n - 1];
    struct sync_req req = {dup(s->fd), cur->first_id, cur->bytes};
    pthread_mutex_lock(&y->mu);
    if (req.fd < 0) {
        y->errors++;
    } else {
        size_t i = 0;
        while (i < y->nreq && y->reqs[i].seg_id != req.seg_id)
            i++;
        if (i < y->nreq) {
            close(y->reqs[i].fd); /* the newer request covers the older one */
            y->reqs[i] = req;
        } else if (y->nreq < y->capreq || grow_reqs(y) == 0) {
            y->reqs[y->nreq++] = req;
        } else {
            close(req.fd);
            y->errors++;
        }
    }
    y->dir |= dir;
    pthread_cond_signal(&y->cv);
    pthread_mutex_unlock(&y->mu);
}

int st_segs_enable_fsync(struct st_segs *s)
{
    struct syncer *y = calloc(1, sizeof(*y));
    if (!y)
        return -1;
    pthread_mutex_init(&y->mu, NULL);
    pthread_condattr_t ca; /* the pause between syncs is timed on CLOCK_MONOTONIC */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&y->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->sync = y;
    if (pthread_create(&y->thread, NULL, syncer_main, s) != 0) {
        pthread_cond_destroy(&y->cv);
        pthread_mutex_destroy(&y->mu);
        free(y);
        s->sync = NULL;
        return -1;
    }
    return 0;
}

uint64_t st_segs_syncs(const struct st_segs *s)
{
    if (!s->sync)
        return 0;
    pthread_mutex_lock(&s->sync->mu);
    uint64_t n = s->sync->syncs;
    pthread_mutex_unlock(&s->sync->mu);
    return n;
}

int st_segs_flush(struct st_segs *s)
{
    if (s->len && s->fd >= 0) {
        if (write_all(s->fd, s->buf, s->len) < 0) {
            s->errors++;
            if (s->len > PENDING_MAX)
                s->len = 0; /* the disk is gone: stop holding memory for it */
            return -1;
        }
        s->len = 0;
        post_sync(s, false);
    }
    apply_retention(s);
    return 0;
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
    post_sync(s, true);
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
    return s->len;
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
    uint64_t sync_errors = 0;
    if (s->sync) {
        pthread_mutex_lock(&s->sync->mu);
        sync_errors = s->sync->errors;
        pthread_mutex_unlock(&s->sync->mu);
    }
    return s->errors + sync_errors;
}

void st_segs_close(struct st_segs *s)
{
    if (!s)
        return;
    if (s->len && s->fd >= 0)
        st_segs_flush(s);
    if (s->sync) {
        /* the last writes are synced before the thread ends */
        pthread_mutex_lock(&s->sync->mu);
        s->sync->stop = true;
        pthread_cond_signal(&s->sync->cv);
        pthread_mutex_unlock(&s->sync->mu);
        pthread_join(s->sync->thread, NULL);
        for (size_t i = 0; i < s->sync->nreq; i++) /* none: the thread took them */
            close(s->sync->reqs[i].fd);
        free(s->sync->reqs);
        pthread_cond_destroy(&s->sync->cv);
        pthread_mutex_destroy(&s->sync->mu);
        free(s->sync);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    free(s->segs);
    free(s->dir);
    free(s);
}
