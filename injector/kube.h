/* kube.h - a small asynchronous Kubernetes API client (libcurl multi on the server's
 * libevent loop) and the two things the injector asks of the API: namespace facts
 * (cached) and keeping the webhook configuration's caBundle current. */
#ifndef SIDETAP_INJECTOR_KUBE_H
#define SIDETAP_INJECTOR_KUBE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "review.h"

struct st_kube;

/* status is the HTTP status (0 when the request failed: err says why); body is valid
 * only during the call. */
typedef void (*st_kube_cb)(int status, const char *body, size_t len, const char *err, void *arg);

/* api_url: "https://10.96.0.1:443" or "http://127.0.0.1:PORT" (tests). The token file is
 * re-read for every request (projected tokens rotate); ca_file may be missing for http. */
struct st_kube *st_kube_new(struct event_base *base, const char *api_url, const char *token_file,
                            const char *ca_file);
void st_kube_free(struct st_kube *k); /* pending callbacks run with status 0, "shutting down" */

int st_kube_request(struct st_kube *k, const char *method, const char *path,
                    const char *content_type, const char *body, long timeout_ms, st_kube_cb cb,
                    void *arg);

/* ---- namespace cache -------------------------------------------------------------- */

struct st_nscache;
typedef void (*st_ns_cb)(const struct st_ns_info *ns, void *arg);

/* ttl: seconds an answer is fresh; a stale answer is served while a refresh runs. With
 * kube == NULL every namespace gets `fallback` (no API: --kube-api none). */
struct st_nscache *st_nscache_new(struct st_kube *kube, unsigned ttl, const struct st_ns_info *fallback);
void st_nscache_free(struct st_nscache *c); /* waiters are answered "shutting down" */
/* Calls cb now (fresh or stale entry) or once the API answers. */
void st_nscache_get(struct st_nscache *c, const char *name, st_ns_cb cb, void *arg);
void st_nscache_stats(const struct st_nscache *c, unsigned long *hits, unsigned long *misses,
                      unsigned long *errors);

/* ---- caBundle ---------------------------------------------------------------------- */

/* Pure: from a MutatingWebhookConfiguration's JSON, the JSON Patch that sets every
 * webhook's clientConfig.caBundle (guarded by `test` ops on the names) to our CA (ca_b64,
 * base64 PEM) plus, with keep_others, the other unexpired sidetap-injector CAs already in
 * the bundles (replicas, rolling updates), newest first, at most 4, in an order every
 * replica computes alike. Returns 1 with *patch (malloc'd), 0 when every caBundle already
 * matches, -1 with err. */
int st_cabundle_patch(const char *mwc_json, size_t len, const char *ca_b64, bool keep_others,
                      char **patch, char *err, size_t errlen);

/* Parses "/version" and says whether native sidecars are on by default (1.29+). Returns
 * -1 when the answer cannot be read. */
int st_kube_version_native(const char *json, size_t len, char *version, size_t vlen);

#endif
