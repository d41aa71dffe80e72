/* bench_review: CPU cost of the webhook's pure path (decode + decide + patch + response)
 * for one AdmissionReview file, without TLS or sockets. Prints microseconds of CPU per
 * review (process CPU time, so a busy machine inflates it less than wall time).
 *   bench_review FILE [ITERATIONS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "review.h"

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_review FILE [ITERATIONS]\n");
        return 2;
    }
    int iterations = argc > 2 ? atoi(argv[2]) : 20000;
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 2;
    }
    static char body[1 << 20];
    size_t len = fread(body, 1, sizeof body, f);
    fclose(f);
    struct st_inject_config cfg = {
        .image = "registry.example/sidetap:0.1.0", .pull_policy = "IfNotPresent",
        .collector_url = "http://sidetap-collector.sidetap.svc", .token = "0123456789abcdef0123",
        .native_sidecars = true, .capture_bodies = true, .body_cap = 16384, .cpu_request = "50m",
        .cpu_limit = "1", .memory_request = "32Mi", .memory_limit = "256Mi",
        .system_namespace = "sidetap",
    };
    struct st_ns_info ns = {.known = true, .inject_enabled = true};
    size_t out_len = 0;
    double start = cpu_seconds();
    for (int i = 0; i < iterations; i++) {
        char err[300];
        struct st_review *r = st_review_decode(body, len, err, sizeof err);
        if (r == NULL) {
            fprintf(stderr, "bench_review: %s\n", err);
            return 1;
        }
        struct st_decision d;
        char *out = st_review_respond(r, &cfg, &ns, &d);
        out_len = strlen(out);
        free(out);
        st_review_free(r);
    }
    double took = cpu_seconds() - start;
    printf("review %zu bytes -> response %zu bytes: %.1f us CPU per review (%d iterations), "
           "%.0f reviews/s per core\n", len, out_len, took / iterations * 1e6, iterations,
           iterations / took);
    return 0;
}
