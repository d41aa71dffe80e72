/* kube.c - Kubernetes API calls from the webhook's event loop.
 *
 * libcurl's multi interface is driven by libevent (kubeapi.c, shared with the
 * collector). Requests are few (a namespace GET on a
 * cache miss, a webhook configuration GET/PATCH per resync) and bounded by a timeout, so a
 * slow API server delays only the admission requests that wait for it. */
#include "kube.h"
#include "kubeapi.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RESPONSE (4u * 1024 * 1024)
#define NS_TIMEOUT_MS 2000
#define NS_CACHE_MAX 4096

struct call {
    struct st_kube *kube;
    CURL *easy;
    struct curl_slist *headers;
    char *body;          /* request body (owned) */
    char *resp;          /* response bytes */
    size_t resp_len, resp_cap;
    bool resp_too_big;
    char errbuf[CURL_ERROR_SIZE];
    st_kube_cb cb;
    void *arg;
    struct call *next, *prev;
};

struct st_kube {
    struct st_kubeapi *api;
    char *api_url, *token_file, *ca_file;
    struct call *calls; /* in flight */
};

static void finish(struct call *c, int status, const char *err);

/* A finished transfer (kubeapi.h): its curl error, if any, wins over its HTTP status. */
static void on_done(void *transfer, CURLcode res, long status)
{
    struct call *c = transfer;
    if (res != CURLE_OK) {
        char err[CURL_ERROR_SIZE + 64];
        snprintf(err, sizeof err, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(res));
        finish(c, 0, err);
    } else if (c->resp_too_big) {
        finish(c, 0, "response too large");
    } else {
        finish(c, (int)status, NULL);
    }
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct call *c = arg;
    size_t n = size * nmemb;
    if (c->resp_len + n > MAX_RESPONSE) {
        c->resp_too_big = true;
        return 0;
    }
    if (c->resp_len + n + 1 > c->resp_cap) {
        size_t cap = c->resp_cap ? c->resp_cap : 8192;
        while (cap < c->resp_len + n + 1) cap *= 2;
        char *nb = realloc(c->resp, cap);
        if (nb == NULL) return 0;
        c->resp = nb;
        c->resp_cap = cap;
    }
    memcpy(c->resp + c->resp_len, ptr, n);
    c->resp_len += n;
    c->resp[c->resp_len] = '\0';
    return n;
}

struct st_kube *st_kube_new(struct event_base *base, const char *api_url, const char *token_file,
                            const char *ca_file)
{
    struct st_kube *k = calloc(1, sizeof *k);
    if (k == NULL) return NULL;
    k->api_url = strdup(api_url);
    k->token_file = token_file ? strdup(token_file) : NULL;
    k->ca_file = ca_file ? strdup(ca_file) : NULL;
    k->api = st_kubeapi_new(base, on_done);
    if (k->api_url == NULL || k->api == NULL) {
        st_kube_free(k);
        return NULL;
    }
    while (strlen(k->api_url) && k->api_url[strlen(k->api_url) - 1] == '/')
        k->api_url[strlen(k->api_url) - 1] = '\0';
    curl_multi_setopt(st_kubeapi_multi(k->api), CURLMOPT_MAX_HOST_CONNECTIONS, 4L);
    return k;
}

static void finish(struct call *c, int status, const char *err)
{
    struct st_kube *k = c->kube;
    if (c->prev) c->prev->next = c->next;
    else k->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    curl_multi_remove_handle(st_kubeapi_multi(k->api), c->easy);
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    c->cb(status, c->resp ? c->resp : "", c->resp_len, err, c->arg);
    free(c->resp);
    free(c->body);
    free(c);
}

void st_kube_free(struct st_kube *k)
{
    if (k == NULL) return;
    while (k->calls) finish(k->calls, 0, "shutting down");
    st_kubeapi_free(k->api);
    free(k->api_url);
    free(k->token_file);
    free(k->ca_file);
    free(k);
}

int st_kube_request(struct st_kube *k, const char *method, const char *path,
                    const char *content_type, const char *body, long timeout_ms, st_kube_cb cb,
                    void *arg)
{
    struct call *c = calloc(1, sizeof *c);
    if (c == NULL) return -1;
    c->kube = k;
    c->cb = cb;
    c->arg = arg;
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        free(c);
        return -1;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s%s", k->api_url, path);
    c->headers = curl_slist_append(c->headers, "Accept: application/json");
    c->headers = curl_slist_append(c->headers, "User-Agent: sidetap-injector/" SIDETAP_VERSION);
    c->headers = curl_slist_append(c->headers, "Expect:");
    c->headers = st_kubeapi_add_auth(c->headers, k->token_file);
    if (content_type) {
        char ct[200];
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        c->headers = curl_slist_append(c->headers, ct);
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        c->body = strdup(body);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(c->body));
    }
    if (k->ca_file && k->ca_file[0]) curl_easy_setopt(c->easy, CURLOPT_CAINFO, k->ca_file);
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
    c->next = k->calls;
    if (k->calls) k->calls->prev = c;
    k->calls = c;
    if (curl_multi_add_handle(st_kubeapi_multi(k->api), c->easy) != CURLM_OK) {
        c->cb = NULL;
        k->calls = c->next;
        if (k->calls) k->calls->prev = NULL;
        curl_slist_free_all(c->headers);
        curl_easy_cleanup(c->easy);
        free(c->body);
        free(c);
        return -1;
    }
    return 0;
}

/* ---- namespace cache -------------------------------------------------------------- */

struct waiter {
    st_ns_cb cb;
    void *arg;
    struct waiter *next;
};

struct ns_entry {
    char *name;
    struct st_ns_info info;
    bool have;           /* info holds an answer (fresh or stale) */
    bool fetching;
    time_t fetched;
    struct waiter *waiters;
    struct ns_entry *next;
};

struct st_nscache {
    struct st_kube *kube;
    unsigned ttl;
    struct st_ns_info fallback;
    struct ns_entry *entries;
    size_t count;
    unsigned long hits, misses, errors;
};

struct st_nscache *st_nscache_new(struct st_kube *kube, unsigned ttl, const struct st_ns_info *fallback)
{
    struct st_nscache *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->kube = kube;
    c->ttl = ttl;
    if (fallback) c->fallback = *fallback;
    return c;
}

static void answer_waiters(struct ns_entry *e, const struct st_ns_info *info)
{
    struct waiter *w = e->waiters;
    e->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->cb(info, w->arg);
        free(w);
        w = next;
    }
}

void st_nscache_free(struct st_nscache *c)
{
    if (c == NULL) return;
    struct st_ns_info down = {.known = false};
    snprintf(down.error, sizeof down.error, "the injector is shutting down");
    for (struct ns_entry *e = c->entries; e; e = e->next) answer_waiters(e, &down);
    struct ns_entry *e = c->entries;
    while (e) {
        struct ns_entry *next = e->next;
        free(e->name);
        free(e);
        e = next;
    }
    free(c);
}

struct fetch {
    struct st_nscache *cache;
    char *name;
};

static struct ns_entry *find(struct st_nscache *c, const char *name)
{
    for (struct ns_entry *e = c->entries; e; e = e->next)
        if (strcmp(e->name, name) == 0) return e;
    return NULL;
}

static void on_namespace(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct fetch *f = arg;
    struct st_nscache *c = f->cache;
    /* st_kube_free runs callbacks after the cache may be gone: the cache outlives the
     * client in server.c's teardown order, so the entry is still there. */
    struct ns_entry *e = find(c, f->name);
    free(f->name);
    free(f);
    if (e == NULL) return;
    e->fetching = false;
    struct st_ns_info info = {.known = false};
    if (status == 200) {
        if (st_ns_info_parse(body, len, &info) != 0) c->errors++;
    } else {
        c->errors++;
        if (status == 0)
            snprintf(info.error, sizeof info.error, "Kubernetes API: %s", err ? err : "no answer");
        else if (status == 403)
            snprintf(info.error, sizeof info.error,
                     "Kubernetes API answered 403: the injector's ClusterRole needs get on namespaces");
        else
            snprintf(info.error, sizeof info.error, "Kubernetes API answered HTTP %d", status);
    }
    if (info.known || !e->have) {
        /* A failed refresh keeps the previous (stale) answer. */
        e->info = info;
        e->have = info.known;
        e->fetched = time(NULL);
    }
    answer_waiters(e, e->have ? &e->info : &info);
}

static void fetch(struct st_nscache *c, struct ns_entry *e)
{
    struct fetch *f = calloc(1, sizeof *f);
    char path[400];
    if (f == NULL || (f->name = strdup(e->name)) == NULL) {
        free(f);
        return;
    }
    f->cache = c;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s", e->name);
    e->fetching = true;
    if (st_kube_request(c->kube, "GET", path, NULL, NULL, NS_TIMEOUT_MS, on_namespace, f) != 0) {
        e->fetching = false;
        free(f->name);
        free(f);
    }
}

/* Namespace names are DNS labels; anything else is answered without asking the API. */
static bool valid_ns_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 63) return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '-'))
            return false;
    return true;
}

void st_nscache_get(struct st_nscache *c, const char *name, st_ns_cb cb, void *arg)
{
    if (c->kube == NULL) {
        cb(&c->fallback, arg);
        return;
    }
    if (!valid_ns_name(name)) {
        struct st_ns_info bad = {.known = false};
        snprintf(bad.error, sizeof bad.error, "\"%.63s\" is not a namespace name", name);
        cb(&bad, arg);
        return;
    }
    struct ns_entry *e = find(c, name);
    time_t now = time(NULL);
    if (e == NULL) {
        if (c->count >= NS_CACHE_MAX) {
            /* Drop answered entries without waiters (bounded memory). */
            struct ns_entry **pp = &c->entries;
            while (*pp) {
                struct ns_entry *x = *pp;
                if (!x->fetching && x->waiters == NULL) {
                    *pp = x->next;
                    free(x->name);
                    free(x);
                    c->count--;
                } else {
                    pp = &x->next;
                }
            }
        }
        e = calloc(1, sizeof *e);
        if (e == NULL || (e->name = strdup(name)) == NULL) {
            free(e);
            struct st_ns_info oom = {.known = false};
            snprintf(oom.error, sizeof oom.error, "out of memory");
            cb(&oom, arg);
            return;
        }
        e->next = c->entries;
        c->entries = e;
        c->count++;
    }
    if (e->have) {
        c->hits++;
        if (!e->fetching && now - e->fetched >= (time_t)c->ttl) fetch(c, e);
        cb(&e->info, arg);
        return;
    }
    c->misses++;
    struct waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        struct st_ns_info oom = {.known = false};
        snprintf(oom.error, sizeof oom.error, "out of memory");
        cb(&oom, arg);
        return;
    }
    w->cb = cb;
    w->arg = arg;
    w->next = e->waiters;
    e->waiters = w;
    if (!e->fetching) fetch(c, e);
    if (!e->fetching && e->waiters) {
        struct st_ns_info fail = {.known = false};
        snprintf(fail.error, sizeof fail.error, "could not start the Kubernetes API request");
        answer_waiters(e, &fail);
    }
}

void st_nscache_stats(const struct st_nscache *c, unsigned long *hits, unsigned long *misses,
                      unsigned long *errors)
{
    *hits = c->hits;
    *misses = c->misses;
    *errors = c->errors;
}

/* ---- caBundle and version (pure) ---------------------------------------------------- */

#define BUNDLE_MAX 4
#define OUR_CA_PREFIX "sidetap-injector-ca-"

struct bundle_cert {
    X509 *x;
    time_t not_before;
};

/* Appends the certificates of a base64 PEM bundle to list (deduplicated). */
static void bundle_add(const char *b64, struct bundle_cert *list, size_t *n, size_t cap, bool ours_only)
{
    size_t len = strlen(b64);
    if (len == 0 || len % 4 != 0 || len > (1u << 20)) return;
    unsigned char *pem = malloc(len);
    if (pem == NULL) return;
    int plen = EVP_DecodeBlock(pem, (const unsigned char *)b64, (int)len);
    BIO *bio = plen > 0 ? BIO_new_mem_buf(pem, plen) : NULL;
    X509 *x;
    time_t now = time(NULL);
    while (bio && *n < cap && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        char cn[128] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
        struct tm tm;
        time_t nb = 0, na = 0;
        if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm)) nb = timegm(&tm);
        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm)) na = timegm(&tm);
        bool dup = false;
        for (size_t i = 0; i < *n && !dup; i++) dup = X509_cmp(list[i].x, x) == 0;
        if (dup || na <= now || (ours_only && strncmp(cn, OUR_CA_PREFIX, strlen(OUR_CA_PREFIX)) != 0)) {
            X509_free(x);
            continue;
        }
        list[*n].x = x;
        list[*n].not_before = nb;
        (*n)++;
    }
    ERR_clear_error();
    BIO_free(bio);
    free(pem);
}

static int newest_first(const void *a, const void *b)
{
    const struct bundle_cert *x = a, *y = b;
    if (x->not_before != y->not_before) return x->not_before > y->not_before ? -1 : 1;
    return X509_cmp(x->x, y->x);
}

/* The bundle every webhook should carry, base64: ours plus, with keep_others, the other
 * unexpired sidetap injector CAs already there (other replicas, the previous pod of a
 * rolling update), newest first, at most BUNDLE_MAX. Sorted the same way by every replica,
 * so replicas agree instead of taking turns. */
static char *desired_bundle(json_t *hooks, const char *ca_b64, bool keep_others)
{
    struct bundle_cert list[64];
    size_t n = 0;
    bundle_add(ca_b64, list, &n, 1, false);
    if (n == 0) return strdup(ca_b64); /* not a PEM certificate: use as given */
    X509 *ours = list[0].x;
    if (keep_others) {
        size_t i;
        json_t *h;
        json_array_foreach(hooks, i, h) {
            const char *cur = json_string_value(json_object_get(json_object_get(h, "clientConfig"), "caBundle"));
            if (cur) bundle_add(cur, list, &n, sizeof list / sizeof list[0], true);
        }
    }
    qsort(list, n, sizeof list[0], newest_first);
    BIO *out = BIO_new(BIO_s_mem());
    size_t kept = 0;
    bool have_ours = false;
    for (size_t i = 0; i < n; i++) {
        bool is_ours = list[i].x == ours;
        if (kept < BUNDLE_MAX - (have_ours ? 0 : 1) || is_ours) {
            PEM_write_bio_X509(out, list[i].x);
            kept++;
            have_ours |= is_ours;
        }
    }
    for (size_t i = 0; i < n; i++) X509_free(list[i].x);
    char *data = NULL, *b64 = NULL;
    long len = BIO_get_mem_data(out, &data);
    if (len > 0 && (b64 = malloc(4 * (((size_t)len + 2) / 3) + 1)) != NULL)
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)data, (int)len);
    BIO_free(out);
    return b64;
}

int st_cabundle_patch(const char *mwc_json, size_t len, const char *ca_b64, bool keep_others,
                      char **patch, char *err, size_t errlen)
{
    *patch = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(mwc_json, len, 0, &jerr);
    json_t *hooks = json_object_get(root, "webhooks");
    if (!json_is_array(hooks) || json_array_size(hooks) == 0) {
        snprintf(err, errlen, "the MutatingWebhookConfiguration has no webhooks%s%s",
                 root ? "" : ": ", root ? "" : jerr.text);
        json_decref(root);
        return -1;
    }
    char *want = desired_bundle(hooks, ca_b64, keep_others);
    if (want == NULL) {
        snprintf(err, errlen, "out of memory");
        json_decref(root);
        return -1;
    }
    json_t *ops = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(hooks, i, h) {
        const char *name = json_string_value(json_object_get(h, "name"));
        json_t *cc = json_object_get(h, "clientConfig");
        const char *cur = json_string_value(json_object_get(cc, "caBundle"));
        if (name == NULL || !json_is_object(cc)) continue;
        if (cur && strcmp(cur, want) == 0) continue;
        char path[96];
        snprintf(path, sizeof path, "/webhooks/%zu/name", i);
        json_array_append_new(ops, json_pack("{s:s, s:s, s:s}", "op", "test", "path", path, "value", name));
        snprintf(path, sizeof path, "/webhooks/%zu/clientConfig/caBundle", i);
        json_array_append_new(ops, json_pack("{s:s, s:s, s:s}", "op", "add", "path", path, "value", want));
    }
    free(want);
    json_decref(root);
    if (json_array_size(ops) == 0) {
        json_decref(ops);
        return 0;
    }
    *patch = json_dumps(ops, JSON_COMPACT);
    json_decref(ops);
    if (*patch == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 1;
}

int st_kube_version_native(const char *json, size_t len, char *version, size_t vlen)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    const char *major = json_string_value(json_object_get(root, "major"));
    const char *minor = json_string_value(json_object_get(root, "minor"));
    const char *git = json_string_value(json_object_get(root, "gitVersion"));
    int rc = -1;
    if (major && minor) {
        snprintf(version, vlen, "%s", git ? git : "");
        long ma = strtol(major, NULL, 10), mi = strtol(minor, NULL, 10); /* "29+" on GKE */
        rc = (ma > 1 || (ma == 1 && mi >= 29)) ? 1 : 0;
    }
    json_decref(root);
    return rc;
}
