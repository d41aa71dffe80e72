/* config.c - flags and SIDETAP_* variables of sidetap-injector. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct flag {
    const char *name, *env, *help;
    const char **str;
    unsigned *num;
};

static const char *native_text = "auto";
static const char *bodies_text = "true";
static const char *verbose_text = "false";

static char kube_default[300];

static void defaults(struct st_injector_config *c)
{
    memset(c, 0, sizeof *c);
    c->inject.image = "sidetap:" SIDETAP_VERSION;
    c->inject.pull_policy = "IfNotPresent";
    c->inject.collector_url = "http://sidetap-collector.sidetap.svc";
    c->inject.capture_bodies = true;
    c->inject.body_cap = 16384;
    c->inject.cpu_request = "50m";
    c->inject.cpu_limit = "1";
    c->inject.memory_request = "32Mi";
    c->inject.memory_limit = "256Mi";
    c->inject.system_namespace = "sidetap";
    c->native_mode = ST_NATIVE_AUTO;
    c->listen = "0.0.0.0:8443";
    c->cert_dir = "";
    c->cert_days = 90;
    c->service = "sidetap-injector.sidetap";
    c->webhook_config = "sidetap-injector";
    const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
    if (h && h[0]) {
        snprintf(kube_default, sizeof kube_default, strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s",
                 h, p && p[0] ? p : "443");
        c->kube_api = kube_default;
    } else {
        c->kube_api = "none";
    }
    c->kube_token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    c->kube_ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
    c->assume_pod_security = "privileged";
    c->pod_namespace = "sidetap";
    c->ns_cache_seconds = 30;
    c->timeout_seconds = 10;
    c->resync_seconds = 10;
    native_text = "auto";
    bodies_text = "true";
    verbose_text = "false";
}

static int parse_num(const char *what, const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || n > 1000000000ul) {
        fprintf(stderr, "sidetap-injector: %s: \"%s\" is not a number\n", what, v);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

static void usage(const struct flag *flags, size_t n)
{
    printf("usage: sidetap-injector [flags]            serve the admission webhook\n"
           "       sidetap-injector review [flags] FILE  answer one AdmissionReview (JSON) on stdout\n"
           "         review flags: --ns-labels JSON (the namespace's labels; default: unknown)\n\n"
           "flags (each also read from the variable shown):\n");
    for (size_t i = 0; i < n; i++)
        printf("  --%-22s %-30s %s\n", flags[i].name, flags[i].env, flags[i].help);
}

int st_injector_config_load(struct st_injector_config *c, int argc, char **argv)
{
    defaults(c);
    const char *cert_days = NULL, *cache = NULL, *timeout = NULL, *resync = NULL, *body_cap = NULL;
    struct flag flags[] = {
        {"image", "SIDETAP_IMAGE", "image of sidetap-init and sidetap-proxy", &c->inject.image, NULL},
        {"pull-policy", "SIDETAP_PULL_POLICY", "their imagePullPolicy", &c->inject.pull_policy, NULL},
        {"collector-url", "SIDETAP_COLLECTOR_URL", "where proxies ship entries",
         &c->inject.collector_url, NULL},
        {"token-file", "SIDETAP_TOKEN_FILE", "ingest token copied into each proxy's env",
         &c->token_file, NULL},
        {"token-secret-name", "SIDETAP_TOKEN_SECRET_NAME",
         "ingest token Secret in our namespace (made when missing)", &c->token_secret_name, NULL},
        {"namespace", "POD_NAMESPACE", "the injector's own namespace", &c->pod_namespace, NULL},
        {"token-secret", "SIDETAP_TOKEN_SECRET",
         "instead: Secret (key token) in each pod's namespace", &c->inject.token_secret, NULL},
        {"native-sidecars", "SIDETAP_NATIVE_SIDECARS", "on | off | auto (server >= 1.29)",
         &native_text, NULL},
        {"capture-bodies", "SIDETAP_CAPTURE_BODIES", "proxies' default: true | false", &bodies_text,
         NULL},
        {"body-cap", "SIDETAP_BODY_CAP", "bytes of each body the proxies keep", &body_cap, NULL},
        {"proxy-cpu-request", "SIDETAP_PROXY_CPU_REQUEST", "", &c->inject.cpu_request, NULL},
        {"proxy-cpu-limit", "SIDETAP_PROXY_CPU_LIMIT", "", &c->inject.cpu_limit, NULL},
        {"proxy-memory-request", "SIDETAP_PROXY_MEMORY_REQUEST", "", &c->inject.memory_request, NULL},
        {"proxy-memory-limit", "SIDETAP_PROXY_MEMORY_LIMIT", "", &c->inject.memory_limit, NULL},
        {"listen", "SIDETAP_LISTEN", "HTTPS address of the webhook", &c->listen, NULL},
        {"tls-cert", "SIDETAP_TLS_CERT", "mounted certificate (PEM); default: own CA", &c->tls_cert,
         NULL},
        {"tls-key", "SIDETAP_TLS_KEY", "its key (PEM)", &c->tls_key, NULL},
        {"tls-ca", "SIDETAP_TLS_CA", "CA to put in caBundle with a mounted certificate", &c->tls_ca,
         NULL},
        {"cert-dir", "SIDETAP_CERT_DIR", "write generated ca.crt/tls.crt here (debugging)",
         &c->cert_dir, NULL},
        {"cert-days", "SIDETAP_CERT_DAYS", "validity of a generated serving certificate", &cert_days,
         NULL},
        {"service", "SIDETAP_SERVICE", "SERVICE.NAMESPACE named by the certificate", &c->service, NULL},
        {"webhook-config", "SIDETAP_WEBHOOK_CONFIG", "MutatingWebhookConfiguration to patch",
         &c->webhook_config, NULL},
        {"kube-api", "SIDETAP_KUBE_API", "API server URL, or none", &c->kube_api, NULL},
        {"kube-token-file", "SIDETAP_KUBE_TOKEN_FILE", "", &c->kube_token_file, NULL},
        {"kube-ca-file", "SIDETAP_KUBE_CA_FILE", "", &c->kube_ca_file, NULL},
        {"assume-pod-security", "SIDETAP_ASSUME_POD_SECURITY",
         "with --kube-api none: every namespace's level", &c->assume_pod_security, NULL},
        {"namespace-cache", "SIDETAP_NAMESPACE_CACHE", "seconds a namespace lookup is kept", &cache,
         NULL},
        {"timeout", "SIDETAP_TIMEOUT", "seconds a client may take per request", &timeout, NULL},
        {"resync", "SIDETAP_RESYNC", "seconds between caBundle/certificate checks", &resync, NULL},
        {"verbose", "SIDETAP_VERBOSE", "log every decision (default: skips and injections)",
         &verbose_text, NULL},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    for (size_t i = 0; i < nflags; i++) {
        const char *v = getenv(flags[i].env);
        if (v && v[0]) *flags[i].str = v;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(flags, nflags);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("sidetap-injector %s\n", SIDETAP_VERSION);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sidetap-injector: unexpected argument \"%s\" (see --help)\n", a);
            return 2;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        size_t k;
        for (k = 0; k < nflags; k++)
            if (strlen(flags[k].name) == nlen && strncmp(flags[k].name, name, nlen) == 0) break;
        if (k == nflags) {
            fprintf(stderr, "sidetap-injector: unknown flag %s (see --help)\n", a);
            return 2;
        }
        if (eq) {
            *flags[k].str = eq + 1;
        } else if (i + 1 < argc) {
            *flags[k].str = argv[++i];
        } else {
            fprintf(stderr, "sidetap-injector: flag --%s needs a value\n", flags[k].name);
            return 2;
        }
    }
    if (strcmp(native_text, "on") == 0 || strcmp(native_text, "true") == 0) c->native_mode = ST_NATIVE_ON;
    else if (strcmp(native_text, "off") == 0 || strcmp(native_text, "false") == 0) c->native_mode = ST_NATIVE_OFF;
    else if (strcmp(native_text, "auto") == 0) c->native_mode = ST_NATIVE_AUTO;
    else {
        fprintf(stderr, "sidetap-injector: --native-sidecars: \"%s\" is not on, off or auto\n", native_text);
        return 2;
    }
    c->inject.native_sidecars = c->native_mode == ST_NATIVE_ON;
    if (strcmp(bodies_text, "true") != 0 && strcmp(bodies_text, "false") != 0) {
        fprintf(stderr, "sidetap-injector: --capture-bodies: \"%s\" is not true or false\n", bodies_text);
        return 2;
    }
    c->inject.capture_bodies = strcmp(bodies_text, "true") == 0;
    c->verbose = strcmp(verbose_text, "true") == 0 || strcmp(verbose_text, "1") == 0;
    if ((cert_days && parse_num("--cert-days", cert_days, &c->cert_days)) ||
        (cache && parse_num("--namespace-cache", cache, &c->ns_cache_seconds)) ||
        (timeout && parse_num("--timeout", timeout, &c->timeout_seconds)) ||
        (resync && parse_num("--resync", resync, &c->resync_seconds)) ||
        (body_cap && parse_num("--body-cap", body_cap, &c->inject.body_cap)))
        return 2;
    if (c->cert_days < 2) {
        fprintf(stderr, "sidetap-injector: --cert-days must be at least 2\n");
        return 2;
    }
    if (c->resync_seconds < 1) c->resync_seconds = 1;
    if ((c->tls_cert == NULL) != (c->tls_key == NULL)) {
        fprintf(stderr, "sidetap-injector: --tls-cert and --tls-key go together\n");
        return 2;
    }
    static const char *const levels[] = {"privileged", "baseline", "restricted"};
    bool level_ok = false;
    for (size_t i = 0; i < 3; i++)
        if (strcmp(c->assume_pod_security, levels[i]) == 0) level_ok = true;
    if (!level_ok) {
        fprintf(stderr, "sidetap-injector: --assume-pod-security: \"%s\" is not privileged, baseline or restricted\n",
                c->assume_pod_security);
        return 2;
    }
    if (c->token_file && c->token_file[0]) {
        FILE *f = fopen(c->token_file, "r");
        if (f == NULL) {
            fprintf(stderr, "sidetap-injector: --token-file %s: %s\n", c->token_file, strerror(errno));
            return 2;
        }
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e) {
                fprintf(stderr, "sidetap-injector: --token-file %s: the token must be printable ASCII\n",
                        c->token_file);
                return 2;
            }
        }
        c->token_buf = strdup(buf);
        c->inject.token = c->token_buf;
    }
    return 0;
}

void st_injector_config_free(struct st_injector_config *c)
{
    free(c->token_buf);
    c->token_buf = NULL;
}
