/* kubeapi.h - what the collector (k8s.c: list + watch) and the injector (kube.c: namespace
 * and webhook configuration calls) share to talk to the Kubernetes API server: libcurl's
 * multi interface driven by their libevent loop, and the service-account token. */
#ifndef SIDETAP_KUBEAPI_H
#define SIDETAP_KUBEAPI_H

#include <curl/curl.h>
#include <event2/event.h>

/* Called for every finished transfer with the pointer the caller set as its
 * CURLOPT_PRIVATE, curl's result and the HTTP status (0 when there was none). The easy
 * handle is still in the multi: the callback removes it (and may add new ones). */
typedef void (*st_kubeapi_done_cb)(void *transfer, CURLcode result, long status);

/* A libcurl multi handle run by `base` (the pattern of curl's multi-event.c): one event
 * per socket curl asks about, one timer. NULL when out of memory. */
struct st_kubeapi *st_kubeapi_new(struct event_base *base, st_kubeapi_done_cb done);
/* The multi handle, borrowed: add and remove easy handles with it. */
CURLM *st_kubeapi_multi(const struct st_kubeapi *api);
/* Cleans up the multi handle (remove the easy handles first), then the events. */
void st_kubeapi_free(struct st_kubeapi *api);

/* Appends "Authorization: Bearer <token>" with the token in token_file; nothing when the
 * file is unset, unreadable or empty. Read on every call: the kubelet rotates tokens. */
struct curl_slist *st_kubeapi_add_auth(struct curl_slist *headers, const char *token_file);

#endif
