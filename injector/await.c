/* sidetap-await URL [SECONDS]: the proxy container's postStart hook when native sidecars
 * are off. The kubelet starts containers in order and waits for postStart, so the app
 * containers start only once the proxy answers 200 on its admin port (Istio's
 * holdApplicationUntilProxyStarts, Linkerd's linkerd-await). Only http:// to a loopback
 * address; no shell, no libraries. Exit 0 when ready, 1 after SECONDS (default 120). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One GET; returns the HTTP status, or -1. */
static int probe(const struct sockaddr_storage *sa, socklen_t salen, const char *host,
                 const char *path)
{
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int status = -1;
    if (connect(fd, (const struct sockaddr *)sa, salen) == 0) {
        char req[600], resp[64];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sidetap-await\r\nConnection: close\r\n\r\n",
                         path, host);
        if (n > 0 && n < (int)sizeof req && send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
            size_t got = 0;
            ssize_t r;
            while (got < sizeof resp - 1 && (r = recv(fd, resp + got, sizeof resp - 1 - got, 0)) > 0)
                got += (size_t)r;
            resp[got] = '\0';
            if (got >= 12 && strncmp(resp, "HTTP/1.", 7) == 0) status = atoi(resp + 9);
        }
    }
    close(fd);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || strncmp(argv[1], "http://", 7) != 0) {
        fprintf(stderr, "usage: sidetap-await http://127.0.0.1:PORT/PATH [SECONDS]\n");
        return 2;
    }
    double limit = argc == 3 ? atof(argv[2]) : 120;
    if (limit <= 0) {
        fprintf(stderr, "sidetap-await: \"%s\" is not a number of seconds\n", argv[2]);
        return 2;
    }
    /* Parse http://HOST:PORT/PATH, HOST an IPv4 literal or [IPv6]. */
    char host[64], path[400] = "/";
    const char *p = argv[1] + 7, *hend, *port_s;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (hend == NULL || hend - p - 1 >= (long)sizeof host) goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(hend - p - 1), p + 1);
        port_s = hend + 1;
    } else {
        hend = p + strcspn(p, ":/");
        if (hend - p >= (long)sizeof host) goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(hend - p), p);
        port_s = hend;
    }
    if (*port_s != ':') goto bad;
    char *end;
    long port = strtol(port_s + 1, &end, 10);
    if (port < 1 || port > 65535 || (*end && *end != '/')) goto bad;
    if (*end == '/') snprintf(path, sizeof path, "%s", end);
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    socklen_t salen;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        salen = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        salen = sizeof *s6;
    } else {
        goto bad;
    }
    double start = now();
    int last = -1;
    while (now() - start < limit) {
        last = probe(&sa, salen, host, path);
        if (last == 200) return 0;
        usleep(100 * 1000);
    }
    fprintf(stderr, "sidetap-await: %s not ready after %.0f s (last status %d)\n", argv[1], limit, last);
    return 1;
bad:
    fprintf(stderr, "sidetap-await: \"%s\" is not http://IP:PORT/PATH with an IP literal\n", argv[1]);
    return 2;
}
