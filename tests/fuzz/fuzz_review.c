/* libFuzzer target: the webhook's whole pure path, AdmissionReview bytes in, response out
 * (decode, decide, patch). The first byte picks the namespace facts and the defaults, so
 * every branch of the decision table is reachable. A response must always be produced and
 * must itself be valid JSON. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "review.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t ctl = data[0];
    data++, size--;
    struct st_inject_config cfg = {
        .image = "sidetap:fuzz", .pull_policy = "IfNotPresent",
        .collector_url = "http://sidetap-collector.sidetap.svc",
        .token = (ctl & 1) ? "tok" : NULL, .token_secret = (ctl & 2) ? "sidetap-token" : NULL,
        .native_sidecars = (ctl & 4) != 0, .capture_bodies = (ctl & 8) != 0, .body_cap = 1024,
        .cpu_request = "50m", .cpu_limit = "1", .memory_request = "32Mi", .memory_limit = "256Mi",
        .system_namespace = "sidetap",
    };
    static const char *const levels[] = {"", "privileged", "baseline", "restricted"};
    struct st_ns_info ns = {.known = (ctl & 16) == 0, .inject_enabled = (ctl & 32) == 0};
    strcpy(ns.psa_enforce, levels[(ctl >> 6) & 3]);
    strcpy(ns.error, "fuzz");

    char err[300];
    struct st_review *r = st_review_decode((const char *)data, size, err, sizeof err);
    if (r == NULL) {
        if (err[0] == '\0') __builtin_trap(); /* a rejection always says why */
        return 0;
    }
    (void)st_review_needs_namespace(r, &cfg);
    struct st_decision d;
    char *out = st_review_respond(r, &cfg, &ns, &d);
    if (out == NULL) __builtin_trap();
    json_t *back = json_loads(out, 0, NULL);
    if (back == NULL) __builtin_trap();
    json_t *resp = json_object_get(back, "response");
    if (!json_is_true(json_object_get(resp, "allowed"))) __builtin_trap();
    if ((json_object_get(resp, "patch") != NULL) != (d.verdict == ST_VERDICT_INJECT)) __builtin_trap();
    json_decref(back);
    free(out);
    st_review_free(r);
    return 0;
}
