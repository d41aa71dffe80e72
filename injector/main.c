/* main.c - sidetap-injector: parse configuration, then either answer one AdmissionReview
 * from a file (`review`, for tests and debugging) or serve the webhook (server.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "review.h"
#include "server.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (f != stdin) fclose(f);
    *len = n;
    return buf;
}

/* review [--ns-labels JSON] [injector flags] FILE: prints the response, and the decision
 * on stderr. Exit 0 on a response, 2 when the review was rejected (400). */
static int cmd_review(int argc, char **argv)
{
    const char *ns_labels = NULL, *file = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ns-labels") == 0 && i + 1 < argc) ns_labels = argv[++i];
        else if (strncmp(argv[i], "--", 2) == 0) {
            rest[nrest++] = argv[i];
            if (strchr(argv[i], '=') == NULL && strcmp(argv[i], "--help") != 0 && i + 1 < argc)
                rest[nrest++] = argv[++i];
        } else file = argv[i];
    }
    struct st_injector_config cfg;
    int rc = st_injector_config_load(&cfg, nrest, rest);
    free(rest);
    if (rc) return rc == 1 ? 0 : 2;
    if (file == NULL) {
        fprintf(stderr, "sidetap-injector review: name a file holding an AdmissionReview (or -)\n");
        st_injector_config_free(&cfg);
        return 2;
    }
    struct st_ns_info ns = {0};
    if (ns_labels) {
        if (st_ns_info_parse(ns_labels, strlen(ns_labels), &ns) != 0) {
            fprintf(stderr, "sidetap-injector review: --ns-labels: %s\n", ns.error);
            st_injector_config_free(&cfg);
            return 2;
        }
    } else {
        snprintf(ns.error, sizeof ns.error, "no namespace labels given (--ns-labels)");
    }
    size_t len = 0;
    char *body = read_file(file, &len);
    if (body == NULL) {
        fprintf(stderr, "sidetap-injector review: %s: %s\n", file, strerror(errno));
        st_injector_config_free(&cfg);
        return 2;
    }
    char err[300];
    struct st_review *r = st_review_decode(body, len, err, sizeof err);
    free(body);
    if (r == NULL) {
        fprintf(stderr, "sidetap-injector review: %s: %s\n", file, err);
        st_injector_config_free(&cfg);
        return 2;
    }
    struct st_decision d;
    char *out = st_review_respond(r, &cfg.inject, &ns, &d);
    fprintf(stderr, "%s: %s\n", st_review_display_name(r), d.reason);
    if (out) printf("%s\n", out);
    free(out);
    st_review_free(r);
    st_injector_config_free(&cfg);
    return out ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "review") == 0) return cmd_review(argc - 1, argv + 1);
    struct st_injector_config cfg;
    int rc = st_injector_config_load(&cfg, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    rc = st_server_run(&cfg);
    st_injector_config_free(&cfg);
    return rc;
}
