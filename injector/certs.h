/* certs.h - the webhook's TLS identity: a CA and serving certificate made at start (or a
 * mounted certificate, reloaded when it changes), and the TLS 1.2/1.3 server context. */
#ifndef SIDETAP_INJECTOR_CERTS_H
#define SIDETAP_INJECTOR_CERTS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <time.h>

struct st_certs;

struct st_certs_options {
    const char *service;      /* "sidetap-injector.sidetap" */
    unsigned days;            /* serving certificate validity */
    const char *cert_file, *key_file; /* mounted; NULL = generate */
    const char *ca_file;      /* mounted CA for caBundle (optional) */
    const char *out_dir;      /* write generated ca.crt/tls.crt/tls.key here ("" = no) */
};

/* Returns NULL with err set. */
struct st_certs *st_certs_new(const struct st_certs_options *o, char *err, size_t errlen);
void st_certs_free(struct st_certs *c);

/* The server context for new connections (borrowed; replaced by st_certs_check). */
SSL_CTX *st_certs_ctx(const struct st_certs *c);

/* Base64 of the CA bundle (PEM) for caBundle, or NULL when unknown (mounted without CA). */
const char *st_certs_ca_bundle_b64(const struct st_certs *c);

/* Seconds until the serving certificate expires. */
long st_certs_seconds_left(const struct st_certs *c, time_t now);

/* Periodic check: reloads mounted files that changed; regenerates a generated serving
 * certificate when less than a third of its life is left. Returns 1 when the context
 * changed, 0 when nothing changed, -1 with err (the old context stays in use). */
int st_certs_check(struct st_certs *c, time_t now, char *err, size_t errlen);

/* A TLS 1.2+ server context from PEM strings (shared with the tests' tools). */
SSL_CTX *st_certs_server_ctx(const char *cert_pem, const char *key_pem, char *err, size_t errlen);

#endif
