/* sidetap-init backend: locating and running iptables-save / iptables-restore. Programs
 * run with their input, output and errors in memory files, so no pipe can deadlock. */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Seconds iptables-restore waits for the xtables lock (legacy only; nft ignores it). */
#define XTABLES_WAIT "10"

static int find_program(const char *name, char *path, size_t len)
{
    const char *env = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin:/usr/bin:/bin", env ? env : "");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (*d == '\0')
            continue;
        snprintf(path, len, "%s/%s", d, name);
        if (access(path, X_OK) == 0)
            return 0;
    }
    path[0] = '\0';
    return -1;
}

static char *read_all(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        return NULL;
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        return NULL;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return buf;
}

/* Runs argv with `input` on stdin; returns the exit status (or -1 if it could not run)
 * and hands back stdout and stderr (caller frees). */
static int run(char *const argv[], const char *input, char **out, char **err)
{
    int in_fd = memfd_create("sidetap-in", MFD_CLOEXEC);
    int out_fd = memfd_create("sidetap-out", MFD_CLOEXEC);
    int err_fd = memfd_create("sidetap-err", MFD_CLOEXEC);
    int status = -1;
    *out = *err = NULL;
    if (in_fd < 0 || out_fd < 0 || err_fd < 0)
        goto done;
    size_t len = input ? strlen(input) : 0, put = 0;
    while (put < len) {
        ssize_t w = write(in_fd, input + put, len - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto done;
        put += (size_t)w;
    }
    lseek(in_fd, 0, SEEK_SET);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        goto done;
    if (pid == 0) {
        if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
            _exit(127);
        execv(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            goto done;
    status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    *out = read_all(out_fd);
    *err = read_all(err_fd);
done:
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    return status;
}

static void print_output(const char *prog, const char *text)
{
    if (text == NULL || *text == '\0')
        return;
    fprintf(stderr, "sidetap-init: %s said:\n%s%s", prog, text,
            text[strlen(text) - 1] == '\n' ? "" : "\n");
}

char *st_backend_save(const char *save_prog)
{
    char *argv[] = {(char *)save_prog, "-t", "nat", NULL};
    char *out, *err;
    int rc = run(argv, NULL, &out, &err);
    if (rc != 0) {
        fprintf(stderr, "sidetap-init: %s -t nat failed (status %d)\n", save_prog, rc);
        print_output(save_prog, err);
        free(out);
        out = NULL;
    }
    free(err);
    return out;
}

int st_backend_restore(const char *restore_prog, const char *input)
{
    char *argv[] = {(char *)restore_prog, "--noflush", "--wait", XTABLES_WAIT, NULL};
    char *out, *err;
    int rc = run(argv, input, &out, &err);
    if (rc != 0) {
        fprintf(stderr, "sidetap-init: %s --noflush failed (status %d); no rule was changed\n",
                restore_prog, rc);
        print_output(restore_prog, err);
        print_output(restore_prog, out);
    }
    free(out);
    free(err);
    return rc == 0 ? 0 : -1;
}

/* True when `save_prog` exists and lists at least one rule in any table. */
static int has_rules(const char *save_name)
{
    char path[256];
    if (find_program(save_name, path, sizeof path) < 0)
        return 0;
    char *argv[] = {path, NULL};
    char *out, *err;
    int found = 0;
    if (run(argv, NULL, &out, &err) == 0 && out)
        found = strncmp(out, "-A ", 3) == 0 || strstr(out, "\n-A ") != NULL;
    free(out);
    free(err);
    return found;
}

static int works(const char *save_name)
{
    char path[256];
    if (find_program(save_name, path, sizeof path) < 0)
        return 0;
    char *argv[] = {path, "-t", "nat", NULL};
    char *out, *err;
    int ok = run(argv, NULL, &out, &err) == 0;
    free(out);
    free(err);
    return ok;
}

static int fill(struct st_backend *b, const char *name, const char *suffix)
{
    char prog[64];
    b->name = name;
    snprintf(prog, sizeof prog, "iptables%s-save", suffix);
    if (find_program(prog, b->save4, sizeof b->save4) < 0)
        goto missing;
    snprintf(prog, sizeof prog, "iptables%s-restore", suffix);
    if (find_program(prog, b->restore4, sizeof b->restore4) < 0)
        goto missing;
    snprintf(prog, sizeof prog, "ip6tables%s-save", suffix);
    find_program(prog, b->save6, sizeof b->save6);
    snprintf(prog, sizeof prog, "ip6tables%s-restore", suffix);
    find_program(prog, b->restore6, sizeof b->restore6);
    if (b->save6[0] == '\0' || b->restore6[0] == '\0')
        b->save6[0] = b->restore6[0] = '\0';
    return 0;
missing:
    fprintf(stderr, "sidetap-init: %s not found (backend %s; PATH and /usr/sbin, /sbin searched)\n",
            prog, name);
    return -1;
}

int st_backend_pick(enum st_init_backend want, struct st_backend *b)
{
    memset(b, 0, sizeof *b);
    switch (want) {
    case ST_INIT_BACKEND_NFT:
        return fill(b, "nft", "-nft");
    case ST_INIT_BACKEND_LEGACY:
        return fill(b, "legacy", "-legacy");
    case ST_INIT_BACKEND_AUTO:
        break;
    }
    if (has_rules("iptables-legacy-save") || has_rules("ip6tables-legacy-save"))
        return fill(b, "legacy", "-legacy");
    if (works("iptables-nft-save"))
        return fill(b, "nft", "-nft");
    if (works("iptables-legacy-save"))
        return fill(b, "legacy", "-legacy");
    return fill(b, "default", "");
}

int st_backend_has_ipv6(void)
{
    FILE *f = fopen("/proc/net/if_inet6", "r");
    if (f == NULL)
        return 0;
    char addr[40], dev[32];
    unsigned ifindex, plen, scope, flags;
    int found = 0;
    /* scope: 0x00 global, 0x10 host (loopback), 0x20 link, 0x40 site. */
    while (fscanf(f, "%39s %x %x %x %x %31s", addr, &ifindex, &plen, &scope, &flags, dev) == 6)
        if (scope != 0x10 && scope != 0x20)
            found = 1;
    fclose(f);
    return found;
}
