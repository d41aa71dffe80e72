/* certs.c - TLS identity of the webhook.
 *
 * By default the injector makes its own CA (EC P-256, 10 years) and a serving certificate
 * for SERVICE.svc (and .svc.cluster.local), signed by that CA, valid --cert-days. The CA is
 * what goes into the webhook configuration's caBundle (kube.c patches it); a new serving
 * certificate from the same CA needs no patch, so rotation before expiry is invisible to
 * the API server. With --tls-cert/--tls-key (a Secret, e.g. from cert-manager) the files are
 * re-read on every check and swapped in when their content changes. */
#include "certs.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CA_DAYS 3650

struct st_certs {
    char *service, *cert_file, *key_file, *ca_file, *out_dir;
    unsigned days;
    long validity_seconds; /* serving certificate; from days, or SIDETAP_CERT_VALIDITY_SECONDS */
    SSL_CTX *ctx;
    bool generated;
    X509 *ca;
    EVP_PKEY *ca_key;
    char *ca_b64;
    time_t not_before, not_after;
    char *seen_cert, *seen_key, *seen_ca; /* mounted files as last loaded */
};

static void ssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static char *pem_of(X509 *x, EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) return NULL;
    int ok = x ? PEM_write_bio_X509(b, x) : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    char *data = NULL, *out = NULL;
    long n = BIO_get_mem_data(b, &data);
    if (ok && n > 0 && (out = malloc((size_t)n + 1)) != NULL) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(b);
    return out;
}

static char *b64_of(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
    return out;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL) return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate for key, signed by issuer (self-signed when issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                       long seconds, const char *san)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    if (x == NULL || bn == NULL) goto fail;
    X509_set_version(x, 2);
    if (!BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        goto fail;
    X509_gmtime_adj(X509_getm_notBefore(x), seconds >= 86400 ? -300 : 0); /* clock skew */
    X509_gmtime_adj(X509_getm_notAfter(x), seconds);
    if (!X509_set_pubkey(x, key)) goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"sidetap", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    if (issuer == NULL) {
        if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
            add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign") ||
            add_ext(x, &v3, NID_subject_key_identifier, "hash"))
            goto fail;
    } else {
        if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
            add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
            add_ext(x, &v3, NID_ext_key_usage, "serverAuth") ||
            add_ext(x, &v3, NID_subject_alt_name, san) ||
            add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
            add_ext(x, &v3, NID_authority_key_identifier, "keyid:always"))
            goto fail;
    }
    if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) goto fail;
    BN_free(bn);
    return x;
fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

SSL_CTX *st_certs_server_ctx(const char *cert_pem, const char *key_pem, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *leaf = NULL;
    EVP_PKEY *key = NULL;
    if (ctx == NULL || cb == NULL || kb == NULL) {
        ssl_error(err, errlen, "cannot create the TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    leaf = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    if (leaf == NULL || !SSL_CTX_use_certificate(ctx, leaf)) {
        ssl_error(err, errlen, "the certificate is not PEM");
        goto fail;
    }
    X509 *extra;
    while ((extra = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL)
        if (!SSL_CTX_add_extra_chain_cert(ctx, extra)) X509_free(extra);
    ERR_clear_error(); /* end of the chain */
    key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    if (key == NULL || !SSL_CTX_use_PrivateKey(ctx, key)) {
        ssl_error(err, errlen, "the key is not PEM");
        goto fail;
    }
    if (!SSL_CTX_check_private_key(ctx)) {
        ssl_error(err, errlen, "the key does not match the certificate");
        goto fail;
    }
    X509_free(leaf);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    return ctx;
fail:
    X509_free(leaf);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    SSL_CTX_free(ctx);
    return NULL;
}

static void validity_of(const char *pem, time_t *nb, time_t *na)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    struct tm tm;
    *nb = *na = 0;
    if (x && ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm)) *nb = timegm(&tm);
    if (x && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm)) *na = timegm(&tm);
    X509_free(x);
    BIO_free(b);
    ERR_clear_error();
}

static int write_file(const char *dir, const char *name, const char *data, mode_t mode)
{
    char path[1024], tmp[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) return -1;
    chmod(tmp, mode);
    fputs(data, f);
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

/* A new serving certificate from our CA; swaps the context in. */
static int generate_serving(struct st_certs *c, char *err, size_t errlen)
{
    char svc[300], san[1200];
    snprintf(svc, sizeof svc, "%s.svc", c->service);
    const char *dot = strchr(c->service, '.');
    int nlen = dot ? (int)(dot - c->service) : (int)strlen(c->service);
    snprintf(san, sizeof san, "DNS:%.*s,DNS:%s,DNS:%s.svc,DNS:%s.svc.cluster.local", nlen,
             c->service, c->service, c->service, c->service);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? make_cert(key, svc, c->ca, c->ca_key, c->validity_seconds, san) : NULL;
    char *cert_pem = x ? pem_of(x, NULL) : NULL, *key_pem = key ? pem_of(NULL, key) : NULL;
    int rc = -1;
    if (cert_pem == NULL || key_pem == NULL) {
        ssl_error(err, errlen, "cannot make the serving certificate");
        goto done;
    }
    SSL_CTX *ctx = st_certs_server_ctx(cert_pem, key_pem, err, errlen);
    if (ctx == NULL) goto done;
    SSL_CTX_free(c->ctx); /* live connections hold their own reference */
    c->ctx = ctx;
    validity_of(cert_pem, &c->not_before, &c->not_after);
    if (c->out_dir && c->out_dir[0]) {
        char *ca_pem = pem_of(c->ca, NULL);
        if (ca_pem == NULL || write_file(c->out_dir, "ca.crt", ca_pem, 0644) ||
            write_file(c->out_dir, "tls.crt", cert_pem, 0644) ||
            write_file(c->out_dir, "tls.key", key_pem, 0600))
            fprintf(stderr, "sidetap-injector: cannot write certificates to %s\n", c->out_dir);
        free(ca_pem);
    }
    rc = 0;
done:
    if (key_pem) OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    free(cert_pem);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static char *slurp(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
        if (n + 1 >= cap) {
            if (cap >= (1u << 20)) break;
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) break;
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static int load_mounted(struct st_certs *c, char *err, size_t errlen)
{
    char *cert = slurp(c->cert_file, err, errlen);
    char *key = cert ? slurp(c->key_file, err, errlen) : NULL;
    char *ca = (key && c->ca_file && c->ca_file[0]) ? slurp(c->ca_file, err, errlen) : NULL;
    int rc = -1;
    if (cert == NULL || key == NULL || (c->ca_file && c->ca_file[0] && ca == NULL)) goto done;
    bool same = c->seen_cert && strcmp(cert, c->seen_cert) == 0 && strcmp(key, c->seen_key) == 0 &&
                ((ca == NULL && c->seen_ca == NULL) || (ca && c->seen_ca && strcmp(ca, c->seen_ca) == 0));
    if (same) {
        rc = 0;
        goto done;
    }
    char e2[200];
    SSL_CTX *ctx = st_certs_server_ctx(cert, key, e2, sizeof e2);
    if (ctx == NULL) {
        snprintf(err, errlen, "%s / %s: %s", c->cert_file, c->key_file, e2);
        goto done;
    }
    SSL_CTX_free(c->ctx);
    c->ctx = ctx;
    validity_of(cert, &c->not_before, &c->not_after);
    free(c->ca_b64);
    c->ca_b64 = ca ? b64_of(ca) : NULL;
    free(c->seen_cert), free(c->seen_key), free(c->seen_ca);
    c->seen_cert = cert, c->seen_key = key, c->seen_ca = ca;
    return 1;
done:
    free(cert);
    if (key) OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(ca);
    return rc;
}

struct st_certs *st_certs_new(const struct st_certs_options *o, char *err, size_t errlen)
{
    struct st_certs *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->service = strdup(o->service);
    c->cert_file = o->cert_file ? strdup(o->cert_file) : NULL;
    c->key_file = o->key_file ? strdup(o->key_file) : NULL;
    c->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
    c->out_dir = o->out_dir ? strdup(o->out_dir) : NULL;
    c->days = o->days;
    c->validity_seconds = (long)o->days * 86400;
    const char *test_validity = getenv("SIDETAP_CERT_VALIDITY_SECONDS"); /* tests only */
    if (test_validity && atol(test_validity) >= 3) c->validity_seconds = atol(test_validity);
    if (c->cert_file) {
        if (load_mounted(c, err, errlen) < 0) goto fail;
        return c;
    }
    c->generated = true;
    char cn[64];
    snprintf(cn, sizeof cn, "sidetap-injector-ca-%ld", (long)time(NULL));
    c->ca_key = EVP_EC_gen("P-256");
    c->ca = c->ca_key ? make_cert(c->ca_key, cn, NULL, NULL, (long)CA_DAYS * 86400, NULL) : NULL;
    char *ca_pem = c->ca ? pem_of(c->ca, NULL) : NULL;
    if (ca_pem == NULL) {
        ssl_error(err, errlen, "cannot make the CA");
        goto fail;
    }
    c->ca_b64 = b64_of(ca_pem);
    free(ca_pem);
    if (generate_serving(c, err, errlen) != 0) goto fail;
    return c;
fail:
    st_certs_free(c);
    return NULL;
}

void st_certs_free(struct st_certs *c)
{
    if (c == NULL) return;
    SSL_CTX_free(c->ctx);
    X509_free(c->ca);
    EVP_PKEY_free(c->ca_key);
    free(c->ca_b64);
    free(c->service), free(c->cert_file), free(c->key_file), free(c->ca_file), free(c->out_dir);
    free(c->seen_cert), free(c->seen_ca);
    if (c->seen_key) OPENSSL_cleanse(c->seen_key, strlen(c->seen_key));
    free(c->seen_key);
    free(c);
}

SSL_CTX *st_certs_ctx(const struct st_certs *c) { return c->ctx; }
const char *st_certs_ca_bundle_b64(const struct st_certs *c) { return c->ca_b64; }
long st_certs_seconds_left(const struct st_certs *c, time_t now) { return (long)(c->not_after - now); }

int st_certs_check(struct st_certs *c, time_t now, char *err, size_t errlen)
{
    if (!c->generated) return load_mounted(c, err, errlen);
    long life = (long)(c->not_after - c->not_before);
    if ((long)(c->not_after - now) > life / 3) return 0;
    return generate_serving(c, err, errlen) == 0 ? 1 : -1;
}
