/* config.h - sidetap-injector's settings: defaults, then SIDETAP_* environment, then flags.
 * Every flag is listed by `sidetap-injector --help` and in docs/install.md. */
#ifndef SIDETAP_INJECTOR_CONFIG_H
#define SIDETAP_INJECTOR_CONFIG_H

#include <stdbool.h>

#include "review.h"

enum st_native_mode { ST_NATIVE_OFF, ST_NATIVE_ON, ST_NATIVE_AUTO };

struct st_injector_config {
    struct st_inject_config inject; /* what goes into pods */
    enum st_native_mode native_mode;
    const char *listen;             /* "0.0.0.0:8443" */
    const char *tls_cert, *tls_key; /* mounted certificate; NULL = make our own CA */
    const char *tls_ca;             /* CA of the mounted certificate, for caBundle */
    const char *cert_dir;           /* where generated certificates are written ("" = memory) */
    unsigned cert_days;             /* validity of a generated serving certificate */
    const char *service;            /* "sidetap-injector.sidetap": certificate names */
    const char *webhook_config;     /* MutatingWebhookConfiguration to keep caBundle in */
    const char *kube_api;           /* API server URL; "none" = no API */
    const char *kube_token_file, *kube_ca_file;
    const char *token_file;         /* ingest token (Secret) read into inject.token */
    const char *token_secret_name;  /* or: this Secret in pod_namespace, created when missing */
    const char *pod_namespace;      /* the injector's namespace (POD_NAMESPACE) */
    const char *assume_pod_security; /* with --kube-api none: namespaces' level */
    unsigned ns_cache_seconds;
    unsigned timeout_seconds;       /* per-connection read/write timeout */
    unsigned resync_seconds;        /* caBundle / certificate check period */
    bool verbose;
    char *token_buf;                /* owned */
};

/* Fills cfg. Returns 0, 1 after printing --help/--version, 2 after printing an error that
 * names the flag or variable. argv[0] is the program, argv[1..] the flags. */
int st_injector_config_load(struct st_injector_config *cfg, int argc, char **argv);
void st_injector_config_free(struct st_injector_config *cfg);

#endif
