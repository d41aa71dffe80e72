/* server.c - the webhook's HTTPS server and its housekeeping.
 *
 * evhttp over bufferevent_openssl (TLS 1.2/1.3 only), one thread. POST /mutate decodes
 * the AdmissionReview, asks the namespace cache when the decision needs it (the reply is
 * sent when the answer arrives; other connections are served meanwhile) and answers with
 * review.c's response. GET /healthz and /metrics. Every connection has read and write
 * timeouts and every body a size cap, so a slow or hostile client only costs its own
 * socket. A timer re-checks certificates and the webhook configuration's caBundle. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs.h"
#include "kube.h"
#include "review.h"

/* Latency histogram buckets (seconds) for /metrics. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct server {
    const struct st_injector_config *cfg;
    struct st_inject_config inject; /* cfg->inject with the resolved native default */
    struct event_base *base;
    struct evhttp *http;
    struct st_certs *certs;
    struct st_kube *kube;
    struct st_nscache *nscache;
    struct event *resync, *sigterm, *sigint;
    bool version_known;
    bool patching;             /* a caBundle GET/PATCH is in flight */
    char server_version[64];
    bool token_pending;        /* waiting for the token Secret */
    bool token_busy;           /* a Secret GET/POST is in flight */
    char token[256];
    char not_ready[200];
    /* metrics */
    unsigned long injected, skipped, bad_request, unsupported, not_found, errors;
    unsigned long hist[NBUCKETS + 1];
    double latency_sum;
    unsigned long ca_patched, ca_unchanged, ca_errors, cert_reloads;
    time_t started;
};

static void logf_(const char *f, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *f, ...)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, f);
    fprintf(stderr, "%s sidetap-injector: ", ts);
    vfprintf(stderr, f, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *type,
                       const char *body)
{
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add(out, body, strlen(body));
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

/* Errors are JSON {"error": "..."} so tools and people read the same message. */
static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    reply_text(req, code, reason, "application/json", s ? s : "{\"error\":\"(unprintable)\"}");
    free(s);
}

/* ---- /mutate ---------------------------------------------------------------------- */

struct pending {
    struct server *s;
    struct evhttp_request *req;
    struct st_review *review;
    double start;
};

static void finish_review(struct pending *p, const struct st_ns_info *ns)
{
    struct server *s = p->s;
    struct st_decision d;
    char *out = st_review_respond(p->review, &s->inject, ns, &d);
    if (out == NULL) {
        s->errors++;
        reply_error(p->req, HTTP_INTERNAL, "Internal Server Error", "cannot build the response");
    } else {
        if (d.verdict == ST_VERDICT_INJECT) {
            s->injected++;
            logf_("%s: %s", st_review_display_name(p->review), d.reason);
        } else {
            s->skipped++;
            logf_("%s: not injected: %s", st_review_display_name(p->review), d.reason);
        }
        reply_text(p->req, HTTP_OK, "OK", "application/json", out);
        free(out);
    }
    double took = now_seconds() - p->start;
    size_t b = 0;
    while (b < NBUCKETS && took > buckets[b]) b++;
    s->hist[b]++;
    s->latency_sum += took;
    st_review_free(p->review);
    free(p);
}

static void on_ns(const struct st_ns_info *ns, void *arg) { finish_review(arg, ns); }

static bool json_content_type(const char *ct)
{
    if (ct == NULL) return false;
    while (*ct == ' ') ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0) return false;
    const char *rest = ct + n;
    while (*rest == ' ') rest++;
    return *rest == '\0' || *rest == ';';
}

static void handle_mutate(struct server *s, struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_error(req, 405, "Method Not Allowed", "/mutate takes POST with an AdmissionReview");
        s->bad_request++;
        return;
    }
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    if (!json_content_type(ct)) {
        char msg[200];
        snprintf(msg, sizeof msg, "Content-Type must be application/json (got %.80s)",
                 ct ? ct : "none");
        reply_error(req, 415, "Unsupported Media Type", msg);
        s->unsupported++;
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0) {
        reply_error(req, HTTP_BADREQUEST, "Bad Request", "empty body: POST an AdmissionReview");
        s->bad_request++;
        return;
    }
    const char *body = (const char *)evbuffer_pullup(in, -1);
    char err[300];
    double start = now_seconds();
    struct st_review *r = body ? st_review_decode(body, len, err, sizeof err) : NULL;
    if (r == NULL) {
        if (body == NULL) snprintf(err, sizeof err, "out of memory");
        reply_error(req, HTTP_BADREQUEST, "Bad Request", err);
        logf_("400 from %s: %s", evhttp_request_get_uri(req), err);
        s->bad_request++;
        return;
    }
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL) {
        st_review_free(r);
        reply_error(req, HTTP_INTERNAL, "Internal Server Error", "out of memory");
        return;
    }
    p->s = s;
    p->req = req;
    p->review = r;
    p->start = start;
    if (!st_review_needs_namespace(r, &s->inject)) {
        struct st_ns_info none = {.known = false};
        snprintf(none.error, sizeof none.error, "not needed");
        finish_review(p, &none);
        return;
    }
    st_nscache_get(s->nscache, st_review_namespace(r), on_ns, p);
}

/* ---- /metrics ---------------------------------------------------------------------- */

static void handle_metrics(struct server *s, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    unsigned long hits = 0, misses = 0, nserr = 0;
    if (s->nscache) st_nscache_stats(s->nscache, &hits, &misses, &nserr);
    evbuffer_add_printf(b,
        "# HELP sidetap_injector_reviews_total AdmissionReviews answered, by decision.\n"
        "# TYPE sidetap_injector_reviews_total counter\n"
        "sidetap_injector_reviews_total{decision=\"injected\"} %lu\n"
        "sidetap_injector_reviews_total{decision=\"skipped\"} %lu\n"
        "# HELP sidetap_injector_rejected_requests_total Requests answered with an error.\n"
        "# TYPE sidetap_injector_rejected_requests_total counter\n"
        "sidetap_injector_rejected_requests_total{code=\"400\"} %lu\n"
        "sidetap_injector_rejected_requests_total{code=\"404\"} %lu\n"
        "sidetap_injector_rejected_requests_total{code=\"415\"} %lu\n"
        "sidetap_injector_rejected_requests_total{code=\"500\"} %lu\n",
        s->injected, s->skipped, s->bad_request, s->not_found, s->unsupported,
        s->errors);
    evbuffer_add_printf(b, "# HELP sidetap_injector_review_seconds Time to answer a review.\n"
                           "# TYPE sidetap_injector_review_seconds histogram\n");
    unsigned long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += s->hist[i];
        evbuffer_add_printf(b, "sidetap_injector_review_seconds_bucket{le=\"%g\"} %lu\n", buckets[i], cum);
    }
    cum += s->hist[NBUCKETS];
    evbuffer_add_printf(b,
        "sidetap_injector_review_seconds_bucket{le=\"+Inf\"} %lu\n"
        "sidetap_injector_review_seconds_sum %.6f\n"
        "sidetap_injector_review_seconds_count %lu\n"
        "# TYPE sidetap_injector_namespace_lookups_total counter\n"
        "sidetap_injector_namespace_lookups_total{result=\"hit\"} %lu\n"
        "sidetap_injector_namespace_lookups_total{result=\"miss\"} %lu\n"
        "sidetap_injector_namespace_lookups_total{result=\"error\"} %lu\n"
        "# TYPE sidetap_injector_cabundle_updates_total counter\n"
        "sidetap_injector_cabundle_updates_total{result=\"patched\"} %lu\n"
        "sidetap_injector_cabundle_updates_total{result=\"unchanged\"} %lu\n"
        "sidetap_injector_cabundle_updates_total{result=\"error\"} %lu\n"
        "# TYPE sidetap_injector_certificate_reloads_total counter\n"
        "sidetap_injector_certificate_reloads_total %lu\n"
        "# HELP sidetap_injector_certificate_expiry_seconds Seconds until the serving certificate expires.\n"
        "# TYPE sidetap_injector_certificate_expiry_seconds gauge\n"
        "sidetap_injector_certificate_expiry_seconds %ld\n"
        "# TYPE sidetap_injector_native_sidecars gauge\n"
        "sidetap_injector_native_sidecars %d\n"
        "# TYPE sidetap_injector_uptime_seconds gauge\n"
        "sidetap_injector_uptime_seconds %ld\n",
        cum, s->latency_sum, cum, hits, misses, nserr, s->ca_patched, s->ca_unchanged, s->ca_errors,
        s->cert_reloads, st_certs_seconds_left(s->certs, time(NULL)), s->inject.native_sidecars ? 1 : 0,
        (long)(time(NULL) - s->started));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evhttp_uri *u = uri ? evhttp_uri_parse(uri) : NULL;
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (path == NULL) path = "";
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (strcmp(path, "/mutate") == 0) {
        handle_mutate(s, req);
    } else if (strcmp(path, "/healthz") == 0 && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
        reply_text(req, HTTP_OK, "OK", "text/plain", "ok\n");
    } else if (strcmp(path, "/readyz") == 0 && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
        if (s->token_pending)
            reply_error(req, 503, "Service Unavailable", s->not_ready);
        else
            reply_text(req, HTTP_OK, "OK", "text/plain", "ok\n");
    } else if (strcmp(path, "/metrics") == 0 && cmd == EVHTTP_REQ_GET) {
        handle_metrics(s, req);
    } else {
        s->not_found++;
        reply_error(req, HTTP_NOTFOUND, "Not Found",
                    "unknown path: the webhook serves POST /mutate, GET /healthz and GET /metrics");
    }
    evhttp_uri_free(u);
}

static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
    struct server *s = arg;
    SSL *ssl = SSL_new(st_certs_ctx(s->certs));
    if (ssl == NULL) return NULL;
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

/* ---- caBundle, server version, certificate checks ------------------------------------ */

static void on_patched(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct server *s = arg;
    (void)len;
    s->patching = false;
    if (status >= 200 && status < 300) {
        s->ca_patched++;
        logf_("caBundle of MutatingWebhookConfiguration %s updated", s->cfg->webhook_config);
    } else {
        s->ca_errors++;
        logf_("cannot patch MutatingWebhookConfiguration %s: %s%.200s", s->cfg->webhook_config,
              status ? "HTTP error: " : "", status ? body : err);
    }
}

static void on_webhook_config(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct server *s = arg;
    const char *ca = st_certs_ca_bundle_b64(s->certs);
    if (status != 200 || ca == NULL) {
        s->patching = false;
        s->ca_errors++;
        if (status == 404)
            logf_("MutatingWebhookConfiguration %s does not exist (yet): apply manifests/",
                  s->cfg->webhook_config);
        else
            logf_("cannot read MutatingWebhookConfiguration %s: %s%d %s", s->cfg->webhook_config,
                  status ? "HTTP " : "", status, status ? "" : err);
        return;
    }
    char *patch = NULL, perr[200];
    /* Generated CAs (one per process) are merged so replicas and a rolling update's old and
     * new pods are all trusted; a mounted CA replaces whatever was there. */
    bool keep_others = s->cfg->tls_cert == NULL;
    int rc = st_cabundle_patch(body, len, ca, keep_others, &patch, perr, sizeof perr);
    if (rc <= 0) {
        s->patching = false;
        if (rc == 0) s->ca_unchanged++;
        else {
            s->ca_errors++;
            logf_("MutatingWebhookConfiguration %s: %s", s->cfg->webhook_config, perr);
        }
        return;
    }
    char path[400];
    snprintf(path, sizeof path, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/%s",
             s->cfg->webhook_config);
    if (st_kube_request(s->kube, "PATCH", path, "application/json-patch+json", patch, 5000,
                        on_patched, s) != 0) {
        s->patching = false;
        s->ca_errors++;
    }
    free(patch);
}

static void sync_ca_bundle(struct server *s)
{
    if (s->kube == NULL || s->patching || st_certs_ca_bundle_b64(s->certs) == NULL) return;
    char path[400];
    snprintf(path, sizeof path, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/%s",
             s->cfg->webhook_config);
    s->patching = true;
    if (st_kube_request(s->kube, "GET", path, NULL, NULL, 5000, on_webhook_config, s) != 0)
        s->patching = false;
}

static void on_version(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct server *s = arg;
    if (status != 200) {
        logf_("cannot read the server version (%s%d%s): native sidecars stay %s", status ? "HTTP " : "",
              status, status ? "" : err, s->inject.native_sidecars ? "on" : "off");
        return;
    }
    int native = st_kube_version_native(body, len, s->server_version, sizeof s->server_version);
    if (native < 0) return;
    s->version_known = true;
    s->inject.native_sidecars = native == 1;
    logf_("Kubernetes %s: native sidecars %s (--native-sidecars auto)", s->server_version,
          native ? "on" : "off");
}

/* ---- the ingest token Secret ------------------------------------------------------- */

static void fetch_token(struct server *s);

static void set_token(struct server *s, const char *token)
{
    bool changed = strcmp(s->token, token) != 0;
    snprintf(s->token, sizeof s->token, "%s", token);
    s->inject.token = s->token;
    if (s->token_pending || changed)
        logf_("ingest token loaded from Secret %s/%s", s->cfg->pod_namespace, s->cfg->token_secret_name);
    s->token_pending = false;
    s->inject.not_ready = NULL;
}

static bool printable_token(const char *t, size_t n)
{
    if (n < 16 || n >= 256) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e) return false;
    return true;
}

static void on_secret_created(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct server *s = arg;
    (void)len;
    s->token_busy = false;
    if (status == 201 || status == 200 || status == 409) {
        if (status != 409)
            logf_("created Secret %s/%s with a new ingest token", s->cfg->pod_namespace,
                  s->cfg->token_secret_name);
        fetch_token(s); /* 409: someone else made it first; read theirs */
        return;
    }
    logf_("cannot create Secret %s/%s: %s%d %.200s", s->cfg->pod_namespace, s->cfg->token_secret_name,
          status ? "HTTP " : "", status, status ? body : err);
}

static void create_token(struct server *s)
{
    unsigned char raw[24];
    char hex[49], b64[80], path[300];
    if (RAND_bytes(raw, sizeof raw) != 1) return;
    for (size_t i = 0; i < sizeof raw; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)hex, 48);
    json_t *secret = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:s, s:{s:s}}", "apiVersion", "v1",
                               "kind", "Secret", "metadata", "name", s->cfg->token_secret_name,
                               "namespace", s->cfg->pod_namespace, "labels", "app.kubernetes.io/part-of",
                               "sidetap", "app.kubernetes.io/component", "ingest-token", "type", "Opaque",
                               "data", "token", b64);
    char *body = secret ? json_dumps(secret, JSON_COMPACT) : NULL;
    json_decref(secret);
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets", s->cfg->pod_namespace);
    if (body && st_kube_request(s->kube, "POST", path, "application/json", body, 5000,
                                on_secret_created, s) == 0)
        s->token_busy = true;
    free(body);
}

static void on_secret(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct server *s = arg;
    s->token_busy = false;
    if (status == 404) {
        create_token(s);
        return;
    }
    if (status != 200) {
        logf_("cannot read Secret %s/%s: %s%d%s%s", s->cfg->pod_namespace, s->cfg->token_secret_name,
              status ? "HTTP " : "", status, status ? "" : " ", status ? "" : err);
        return;
    }
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *b64 = json_string_value(json_object_get(json_object_get(root, "data"), "token"));
    unsigned char tok[256];
    int n = -1;
    size_t blen = b64 ? strlen(b64) : 0;
    if (b64 && blen > 0 && blen < 330 && blen % 4 == 0) {
        n = EVP_DecodeBlock(tok, (const unsigned char *)b64, (int)blen);
        if (n > 0 && b64[blen - 1] == '=') n--;
        if (n > 0 && blen > 1 && b64[blen - 2] == '=') n--;
    }
    if (n > 0 && printable_token((const char *)tok, (size_t)n)) {
        tok[n] = '\0';
        set_token(s, (const char *)tok);
    } else {
        logf_("Secret %s/%s has no usable \"token\" key (16-255 printable characters)",
              s->cfg->pod_namespace, s->cfg->token_secret_name);
    }
    json_decref(root);
}

static void fetch_token(struct server *s)
{
    if (s->kube == NULL || s->token_busy || s->cfg->token_secret_name == NULL ||
        s->cfg->token_secret_name[0] == '\0' || (s->cfg->token_file && s->cfg->token_file[0]))
        return;
    char path[400];
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s", s->cfg->pod_namespace,
             s->cfg->token_secret_name);
    if (st_kube_request(s->kube, "GET", path, NULL, NULL, 5000, on_secret, s) == 0) s->token_busy = true;
}

static void on_resync(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct server *s = arg;
    char err[300];
    int rc = st_certs_check(s->certs, time(NULL), err, sizeof err);
    if (rc < 0) {
        logf_("certificate check failed, keeping the current one: %s", err);
    } else if (rc == 1) {
        s->cert_reloads++;
        logf_("serving certificate %s (expires in %ld s)", s->cfg->tls_cert ? "reloaded" : "renewed",
              st_certs_seconds_left(s->certs, time(NULL)));
    }
    sync_ca_bundle(s);
    fetch_token(s);
    if (s->cfg->native_mode == ST_NATIVE_AUTO && !s->version_known && s->kube)
        st_kube_request(s->kube, "GET", "/version", NULL, NULL, 5000, on_version, s);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct server *s = arg;
    logf_("signal %d: stopping", (int)sig);
    event_base_loopexit(s->base, NULL);
}

static int bind_listener(struct server *s, const char *listen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen) return -1;
    size_t hlen = (size_t)(colon - listen);
    if (listen[0] == '[' && hlen >= 2 && listen[hlen - 1] == ']') {
        snprintf(host, sizeof host, "%.*s", (int)hlen - 2, listen + 1);
    } else {
        snprintf(host, sizeof host, "%.*s", (int)hlen, listen);
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) return -1;
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
    if (bs == NULL) return -1;
    if (port == 0) {
        /* Tests ask for port 0: say which one we got. */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
        int p = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        printf("listening on port %d\n", p);
        fflush(stdout);
    }
    return 0;
}

int st_server_run(const struct st_injector_config *cfg)
{
    struct server s = {.cfg = cfg, .inject = cfg->inject, .started = time(NULL)};
    int rc = 1;
    signal(SIGPIPE, SIG_IGN);
    json_object_seed(0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char err[300];
    struct st_certs_options co = {.service = cfg->service, .days = cfg->cert_days,
                                  .cert_file = cfg->tls_cert, .key_file = cfg->tls_key,
                                  .ca_file = cfg->tls_ca, .out_dir = cfg->cert_dir};
    s.certs = st_certs_new(&co, err, sizeof err);
    if (s.certs == NULL) {
        logf_("TLS: %s", err);
        goto done;
    }
    s.base = event_base_new();
    s.http = s.base ? evhttp_new(s.base) : NULL;
    if (s.http == NULL) {
        logf_("cannot create the event loop");
        goto done;
    }
    evhttp_set_bevcb(s.http, on_new_connection, &s);
    evhttp_set_gencb(s.http, on_request, &s);
    evhttp_set_max_body_size(s.http, ST_REVIEW_MAX_BODY);
    evhttp_set_max_headers_size(s.http, 64 * 1024);
    evhttp_set_timeout(s.http, (int)cfg->timeout_seconds);
    evhttp_set_allowed_methods(s.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    if (bind_listener(&s, cfg->listen) != 0) {
        logf_("cannot listen on %s: %s", cfg->listen, strerror(errno));
        goto done;
    }
    if (strcmp(cfg->kube_api, "none") != 0) {
        s.kube = st_kube_new(s.base, cfg->kube_api, cfg->kube_token_file, cfg->kube_ca_file);
        if (s.kube == NULL) {
            logf_("cannot set up the Kubernetes API client");
            goto done;
        }
        s.nscache = st_nscache_new(s.kube, cfg->ns_cache_seconds, NULL);
    } else {
        /* No API: the webhook's namespaceSelector did the label check. */
        struct st_ns_info assumed = {.known = true, .inject_enabled = true};
        snprintf(assumed.psa_enforce, sizeof assumed.psa_enforce, "%s", cfg->assume_pod_security);
        s.nscache = st_nscache_new(NULL, 0, &assumed);
    }
    if (s.nscache == NULL) goto done;
    if (cfg->token_secret_name && cfg->token_secret_name[0] &&
        !(cfg->token_file && cfg->token_file[0])) {
        if (s.kube == NULL) {
            logf_("--token-secret-name needs the Kubernetes API (--kube-api)");
            goto done;
        }
        s.token_pending = true;
        snprintf(s.not_ready, sizeof s.not_ready, "waiting for the ingest token (Secret %s/%s)",
                 cfg->pod_namespace, cfg->token_secret_name);
        s.inject.not_ready = s.not_ready;
    }
    s.resync = event_new(s.base, -1, EV_PERSIST, on_resync, &s);
    s.sigterm = evsignal_new(s.base, SIGTERM, on_signal, &s);
    s.sigint = evsignal_new(s.base, SIGINT, on_signal, &s);
    struct timeval tv = {(time_t)cfg->resync_seconds, 0};
    if (!s.resync || !s.sigterm || !s.sigint || event_add(s.resync, &tv) || event_add(s.sigterm, NULL) ||
        event_add(s.sigint, NULL))
        goto done;
    logf_("%s listening on %s (service %s, %s certificate, API %s, native sidecars %s)",
          SIDETAP_VERSION, cfg->listen, cfg->service, cfg->tls_cert ? "mounted" : "generated",
          cfg->kube_api, cfg->native_mode == ST_NATIVE_AUTO ? "auto" : cfg->native_mode == ST_NATIVE_ON ? "on" : "off");
    on_resync(-1, 0, &s); /* caBundle and version right away */
    event_base_dispatch(s.base);
    rc = 0;
done:
    if (s.resync) event_free(s.resync);
    if (s.sigterm) event_free(s.sigterm);
    if (s.sigint) event_free(s.sigint);
    st_kube_free(s.kube);          /* runs pending callbacks: the cache must still exist */
    st_nscache_free(s.nscache);    /* answers waiting reviews before evhttp goes */
    if (s.http) evhttp_free(s.http);
    if (s.base) event_base_free(s.base);
    st_certs_free(s.certs);
    curl_global_cleanup();
    return rc;
}
