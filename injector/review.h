/* review.h - the webhook's pure core: AdmissionReview in, AdmissionReview response out.
 *
 * Nothing here does I/O. The server (server.c) decodes a request body, looks up the
 * namespace (kube.c, cached), then asks for the response; the fuzz target and the
 * `sidetap-injector review` command call the very same functions. The decision and the
 * JSONPatch are documented in docs/install.md ("What the injector adds"). */
#ifndef SIDETAP_INJECTOR_REVIEW_H
#define SIDETAP_INJECTOR_REVIEW_H

#include <stdbool.h>
#include <stddef.h>

#define ST_PROXY_UID 1717
#define ST_PORT_OUTBOUND 16001
#define ST_PORT_INBOUND 16006
#define ST_PORT_DNS 16053
#define ST_PORT_ADMIN 16020

/* Largest request body the server reads (a Pod object is at most ~1.5 MB in etcd). */
#define ST_REVIEW_MAX_BODY (3u * 1024 * 1024)

/* What the injector adds, from flags and environment (main.c). Strings are borrowed and
 * must outlive every call that uses the config. */
struct st_inject_config {
    const char *image;           /* one image holds sidetap-init, sidetap-proxy, sidetap-await */
    const char *pull_policy;     /* "IfNotPresent" */
    const char *collector_url;   /* "http://sidetap-collector.sidetap.svc" */
    const char *token;           /* ingest token copied into the pod env, or NULL */
    const char *token_secret;    /* instead: secretKeyRef to this Secret in the pod's namespace */
    bool native_sidecars;        /* resolved default (flag, or by server version) */
    bool capture_bodies;
    unsigned body_cap;
    const char *cpu_request, *cpu_limit, *memory_request, *memory_limit;
    const char *system_namespace; /* "sidetap": never injected */
    const char *not_ready;       /* non-NULL: why the injector cannot inject yet (skip) */
};

/* The namespace facts a decision needs; the AdmissionReview does not carry them. */
struct st_ns_info {
    bool known;               /* false: the lookup failed, see error */
    bool inject_enabled;      /* label sidetap.io/inject=enabled */
    char psa_enforce[32];     /* label pod-security.kubernetes.io/enforce, "" when unset */
    char error[160];
};

/* Fills ns from a Namespace object's JSON (or a bare labels map). Returns 0, or -1 with
 * ns->known false and ns->error set. */
int st_ns_info_parse(const char *json, size_t len, struct st_ns_info *ns);

struct st_review;

/* Parses and checks an AdmissionReview. Returns NULL and writes a message naming what is
 * wrong into err (for a 400 reply). */
struct st_review *st_review_decode(const char *body, size_t len, char *err, size_t errlen);
void st_review_free(struct st_review *r);

/* The request's namespace ("" when absent) and a display name for logs ("ns/name"). */
const char *st_review_namespace(const struct st_review *r);
const char *st_review_display_name(const struct st_review *r);

/* True when the decision does not depend on the namespace (a non-Pod request, an opted-out
 * pod, a system namespace...), so the server can skip the namespace lookup. */
bool st_review_needs_namespace(const struct st_review *r, const struct st_inject_config *cfg);

enum st_verdict { ST_VERDICT_INJECT, ST_VERDICT_SKIP };

struct st_decision {
    enum st_verdict verdict;
    bool native_sidecar;
    char reason[320]; /* why it was skipped, or "injected (native sidecar)" */
};

/* Decides and builds the AdmissionReview response (JSON text, malloc'd, caller frees).
 * The response always allows the pod; a skip carries its reason in `warnings`. */
char *st_review_respond(const struct st_review *r, const struct st_inject_config *cfg,
                        const struct st_ns_info *ns, struct st_decision *out);

#endif
