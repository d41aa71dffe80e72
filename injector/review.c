/* review.c - AdmissionReview decoding, the injection decision, and the JSONPatch.
 *
 * The decision runs in a fixed order (docs/install.md): opt-out, never-inject cases,
 * opt-in or namespace label, per-pod annotations, Pod Security. Every skip has a reason
 * that travels back in the response's `warnings`; the pod is always allowed, so a pod
 * never fails admission because of sidetap. The patch is built by hand (no diff), with
 * the RFC 6902 cases the API server cares about: absent arrays and maps are added whole,
 * existing ones are appended to or inserted into. */
#include "review.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANNOT_PREFIX "sidetap.io/"
#define KEY_INJECT "sidetap.io/inject"
#define KEY_STATUS "sidetap.io/status"
#define VOLUME_PODINFO "sidetap-podinfo"
#define PODINFO_DIR "/etc/sidetap/podinfo"
#define BIN_DIR "/usr/local/bin/"
#define MAX_ANNOT_VALUE 2048
#define MAX_LIST_ITEMS 64

struct st_review {
    json_t *root;
    const char *uid;
    const char *ns;
    const char *operation;
    bool is_pod;
    char kind_desc[128];
    json_t *pod; /* request.object, borrowed from root; NULL when absent */
    char display[320];
};

/* Per-pod settings read from sidetap.io/ annotations, normalized. */
struct pod_opts {
    char include_inbound[1024];  /* "*" by default */
    char exclude_inbound[1024];  /* "" = none */
    char exclude_outbound[1024];
    char exclude_cidrs[2048];
    int capture_bodies;          /* -1: config default */
    int native;                  /* -1: config default */
    /* The proxy's limits, as the decimal text of its environment variable; "" = default */
    char body_cap[24], capture_memory[24], max_connections[24], threads[8];
};

/* Cuts s at the first byte that does not continue valid UTF-8, so a message truncated by
 * snprintf in the middle of a character still becomes a JSON string. */
static void utf8_clip(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3
              : (*p & 0xf8) == 0xf0 ? 4 : 0;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80) n = 0;
        if (n == 0) break;
        p += n;
    }
    *p = '\0';
}

static void fmt(char *dst, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *dst, size_t len, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(dst, len, f, ap);
    va_end(ap);
    utf8_clip(dst);
}

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *meta_map_get(json_t *pod, const char *map, const char *key)
{
    return jstr(json_object_get(json_object_get(pod, "metadata"), map), key);
}

/* ---- decoding ---------------------------------------------------------------------- */

struct st_review *st_review_decode(const char *body, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fmt(err, errlen, "body is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
            jerr.column);
        return NULL;
    }
    struct st_review *r = calloc(1, sizeof *r);
    if (r == NULL) {
        fmt(err, errlen, "out of memory");
        json_decref(root);
        return NULL;
    }
    r->root = root;
    if (!json_is_object(root)) {
        fmt(err, errlen, "not an AdmissionReview: the body is a JSON %s, not an object",
            json_is_array(root) ? "array" : "scalar");
        goto fail;
    }
    const char *api = jstr(root, "apiVersion"), *kind = jstr(root, "kind");
    if (kind == NULL || strcmp(kind, "AdmissionReview") != 0) {
        fmt(err, errlen, "not an AdmissionReview: kind is %s%s%s", kind ? "\"" : "",
            kind ? kind : "missing", kind ? "\"" : "");
        goto fail;
    }
    if (api == NULL || strcmp(api, "admission.k8s.io/v1") != 0) {
        fmt(err, errlen, "unsupported AdmissionReview apiVersion %s%s%s: only admission.k8s.io/v1",
            api ? "\"" : "", api ? api : "(missing)", api ? "\"" : "");
        goto fail;
    }
    json_t *req = json_object_get(root, "request");
    if (!json_is_object(req)) {
        fmt(err, errlen, "not an AdmissionReview request: \"request\" is missing");
        goto fail;
    }
    r->uid = jstr(req, "uid");
    if (r->uid == NULL || r->uid[0] == '\0' || strlen(r->uid) > 256) {
        fmt(err, errlen, "AdmissionReview request.uid is missing, empty or too long");
        goto fail;
    }
    json_t *rk = json_object_get(req, "kind");
    const char *group = jstr(rk, "group"), *version = jstr(rk, "version"), *k = jstr(rk, "kind");
    if (k == NULL) {
        fmt(err, errlen, "AdmissionReview request.kind.kind is missing");
        goto fail;
    }
    r->operation = jstr(req, "operation");
    if (r->operation == NULL) {
        fmt(err, errlen, "AdmissionReview request.operation is missing");
        goto fail;
    }
    r->ns = jstr(req, "namespace");
    if (r->ns == NULL) r->ns = "";
    fmt(r->kind_desc, sizeof r->kind_desc, "%s%s%s %s", group ? group : "",
        group && group[0] ? "/" : "", version ? version : "?", k);
    r->is_pod = (group == NULL || group[0] == '\0') && k && strcmp(k, "Pod") == 0;
    json_t *obj = json_object_get(req, "object");
    r->pod = json_is_object(obj) ? obj : NULL;

    const char *name = r->pod ? jstr(json_object_get(r->pod, "metadata"), "name") : NULL;
    const char *gen = r->pod ? jstr(json_object_get(r->pod, "metadata"), "generateName") : NULL;
    if (name == NULL || name[0] == '\0') name = jstr(req, "name");
    if (name && name[0])
        fmt(r->display, sizeof r->display, "%s/%s", r->ns, name);
    else
        fmt(r->display, sizeof r->display, "%s/%s*", r->ns, gen ? gen : "");
    return r;
fail:
    st_review_free(r);
    return NULL;
}

void st_review_free(struct st_review *r)
{
    if (r == NULL) return;
    json_decref(r->root);
    free(r);
}

const char *st_review_namespace(const struct st_review *r) { return r->ns; }
const char *st_review_display_name(const struct st_review *r) { return r->display; }

int st_ns_info_parse(const char *json, size_t len, struct st_ns_info *ns)
{
    memset(ns, 0, sizeof *ns);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!json_is_object(root)) {
        fmt(ns->error, sizeof ns->error, "namespace is not a JSON object%s%s", root ? "" : ": ",
            root ? "" : jerr.text);
        json_decref(root);
        return -1;
    }
    json_t *labels = root;
    if (json_object_get(root, "metadata") || json_object_get(root, "kind"))
        labels = json_object_get(json_object_get(root, "metadata"), "labels");
    const char *inj = jstr(labels, KEY_INJECT);
    const char *psa = jstr(labels, "pod-security.kubernetes.io/enforce");
    ns->known = true;
    ns->inject_enabled = inj && strcmp(inj, "enabled") == 0;
    fmt(ns->psa_enforce, sizeof ns->psa_enforce, "%s", psa ? psa : "");
    json_decref(root);
    return 0;
}

/* ---- annotations -------------------------------------------------------------------- */

static void trim(const char **s, size_t *n)
{
    while (*n && isspace((unsigned char)**s)) (*s)++, (*n)--;
    while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* One item of a list annotation, trimmed (and possibly empty): writes its normalized form
 * to norm, or returns -1 with the reason in why. */
typedef int (*list_item_fn)(const char *item, size_t len, char *norm, size_t normlen, char *why,
                            size_t whylen);

/* Normalizes the comma-separated list s[0..n) item by item ("80, 443" -> "80,443"); `noun`
 * names the items for the too-many error. */
static int parse_list(const char *s, size_t n, const char *noun, list_item_fn parse_item,
                      char *out, size_t outlen, char *why, size_t whylen)
{
    size_t used = 0, items = 0;
    out[0] = '\0';
    while (n > 0) {
        const char *comma = memchr(s, ',', n);
        size_t ilen = comma ? (size_t)(comma - s) : n;
        const char *item = s;
        size_t il = ilen;
        trim(&item, &il);
        char norm[80]; /* the longest item: an IPv6 address with a prefix */
        if (parse_item(item, il, norm, sizeof norm, why, whylen) < 0) return -1;
        if (++items > MAX_LIST_ITEMS) {
            fmt(why, whylen, "has more than %d %s", MAX_LIST_ITEMS, noun);
            return -1;
        }
        int w = snprintf(out + used, outlen - used, "%s%s", used ? "," : "", norm);
        if (w < 0 || (size_t)w >= outlen - used) {
            fmt(why, whylen, "is too long");
            return -1;
        }
        used += (size_t)w;
        if (comma == NULL) break;
        n -= ilen + 1;
        s = comma + 1;
        if (n == 0) {
            fmt(why, whylen, "ends with a comma");
            return -1;
        }
    }
    return 0;
}

static int parse_port(const char *item, size_t il, char *norm, size_t normlen, char *why,
                      size_t whylen)
{
    if (il == 0) {
        fmt(why, whylen, "has an empty item: use a list like \"80,8080\"");
        return -1;
    }
    unsigned long port = 0;
    bool digits = il <= 5;
    for (size_t i = 0; i < il && digits; i++) {
        if (!isdigit((unsigned char)item[i])) digits = false;
        else port = port * 10 + (unsigned long)(item[i] - '0');
    }
    if (!digits || port < 1 || port > 65535) {
        fmt(why, whylen, "has \"%.*s\", which is not a port (1-65535)", (int)(il > 40 ? 40 : il),
            item);
        return -1;
    }
    snprintf(norm, normlen, "%lu", port);
    return 0;
}

/* Normalizes a port list; `allow_star`: "*" (all ports) is allowed and empty is not. */
static int parse_ports(const char *v, bool allow_star, char *out, size_t outlen, char *why,
                       size_t whylen)
{
    const char *s = v;
    size_t n = strlen(v);
    trim(&s, &n);
    out[0] = '\0';
    if (n == 0 && allow_star) {
        fmt(why, whylen, "is empty: use a port list like \"80,8080\" or \"*\"");
        return -1;
    }
    if (allow_star && n == 1 && s[0] == '*') {
        snprintf(out, outlen, "*");
        return 0;
    }
    return parse_list(s, n, "ports", parse_port, out, outlen, why, whylen);
}

/* A CIDR; a bare address gets /32 or /128. */
static int parse_cidr(const char *item, size_t il, char *norm, size_t normlen, char *why,
                      size_t whylen)
{
    char buf[64];
    if (il == 0 || il >= sizeof buf) {
        fmt(why, whylen, il ? "has \"%.*s...\", which is not a CIDR" : "has an empty item%.*s",
            il ? 40 : 0, item);
        return -1;
    }
    memcpy(buf, item, il);
    buf[il] = '\0';
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        const char *p = slash + 1;
        bool ok = *p != '\0' && strlen(p) <= 3;
        prefix = 0;
        for (; *p && ok; p++) {
            if (!isdigit((unsigned char)*p)) ok = false;
            else prefix = prefix * 10 + (*p - '0');
        }
        if (!ok) prefix = 999;
    }
    unsigned char addr[16];
    int fam = strchr(buf, ':') ? AF_INET6 : AF_INET;
    int max = fam == AF_INET6 ? 128 : 32;
    if (inet_pton(fam, buf, addr) != 1 || prefix > max) {
        fmt(why, whylen, "has \"%.*s\", which is not a CIDR (like 10.0.0.0/8 or fd00::/8)",
            (int)il, item);
        return -1;
    }
    snprintf(norm, normlen, "%s/%ld", buf, prefix < 0 ? (long)max : prefix);
    return 0;
}

static int parse_cidrs(const char *v, char *out, size_t outlen, char *why, size_t whylen)
{
    const char *s = v;
    size_t n = strlen(v);
    trim(&s, &n);
    return parse_list(s, n, "CIDRs", parse_cidr, out, outlen, why, whylen);
}

static int parse_bool(const char *v, int *out)
{
    if (strcmp(v, "true") == 0) *out = 1;
    else if (strcmp(v, "false") == 0) *out = 0;
    else return -1;
    return 0;
}

/* A byte size as Kubernetes spells quantities: "65536", "64Ki", "16Mi", "1Gi" (binary
 * suffixes only: "64k" would be 64,000 for Kubernetes and 65,536 for many people). The
 * proxy gets the byte count. */
static int parse_bytes(const char *v, unsigned long long min, unsigned long long max, char *out,
                       size_t outlen, char *why, size_t whylen)
{
    unsigned long long n = 0;
    const char *p = v;
    if (*p < '0' || *p > '9') goto bad;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (max - (unsigned)(*p - '0')) / 10) goto range;
        n = n * 10 + (unsigned)(*p - '0');
    }
    unsigned shift = strcmp(p, "Ki") == 0 ? 10 : strcmp(p, "Mi") == 0 ? 20 : strcmp(p, "Gi") == 0 ? 30 : 0;
    if (shift == 0 && *p) goto bad;
    if (n > max >> shift) goto range;
    n <<= shift;
    if (n < min) goto range;
    snprintf(out, outlen, "%llu", n);
    return 0;
bad:
    fmt(why, whylen, "is not a size: use bytes or a Ki/Mi/Gi quantity like \"64Ki\"");
    return -1;
range:
    fmt(why, whylen, "must be from %llu to %llu bytes", min, max);
    return -1;
}

/* A whole number from min to max, for the proxy's counts. */
static int parse_count(const char *v, unsigned long min, unsigned long max, char *out, size_t outlen,
                       char *why, size_t whylen)
{
    unsigned long n = 0;
    const char *p = v;
    for (; *p >= '0' && *p <= '9' && n <= max; p++) n = n * 10 + (unsigned long)(*p - '0');
    if (p == v || *p || n < min || n > max) {
        fmt(why, whylen, "must be a whole number from %lu to %lu", min, max);
        return -1;
    }
    snprintf(out, outlen, "%lu", n);
    return 0;
}

/* Reads every sidetap.io/ setting annotation. On a bad value writes the whole user-facing
 * message (naming the annotation) into why and returns -1. */
static int read_pod_opts(json_t *pod, struct pod_opts *o, char *why, size_t whylen)
{
    memset(o, 0, sizeof *o);
    snprintf(o->include_inbound, sizeof o->include_inbound, "*");
    o->capture_bodies = -1;
    o->native = -1;
    static const char *const keys[] = {
        "sidetap.io/include-inbound-ports", "sidetap.io/exclude-inbound-ports",
        "sidetap.io/exclude-outbound-ports", "sidetap.io/exclude-outbound-cidrs",
        "sidetap.io/capture-bodies", "sidetap.io/native-sidecar",
        "sidetap.io/body-cap", "sidetap.io/capture-memory", "sidetap.io/max-connections",
        "sidetap.io/proxy-threads",
    };
    json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *jv = json_object_get(ann, keys[i]);
        if (jv == NULL || json_is_null(jv)) continue;
        char reason[200] = "";
        const char *v = json_string_value(jv);
        int rc = 0;
        if (v == NULL) {
            fmt(reason, sizeof reason, "is not a string");
            rc = -1;
        } else if (strlen(v) > MAX_ANNOT_VALUE || strlen(v) != json_string_length(jv)) {
            fmt(reason, sizeof reason, "is too long or holds a NUL byte");
            rc = -1;
        } else if (i == 0) {
            rc = parse_ports(v, true, o->include_inbound, sizeof o->include_inbound, reason,
                             sizeof reason);
        } else if (i == 1) {
            rc = parse_ports(v, false, o->exclude_inbound, sizeof o->exclude_inbound, reason,
                             sizeof reason);
        } else if (i == 2) {
            rc = parse_ports(v, false, o->exclude_outbound, sizeof o->exclude_outbound, reason,
                             sizeof reason);
        } else if (i == 3) {
            rc = parse_cidrs(v, o->exclude_cidrs, sizeof o->exclude_cidrs, reason, sizeof reason);
        } else if (i == 4 || i == 5) {
            rc = parse_bool(v, i == 4 ? &o->capture_bodies : &o->native);
            if (rc) fmt(reason, sizeof reason, "must be \"true\" or \"false\"");
        } else if (i == 6) { /* bytes kept per body: 0 = metadata only */
            rc = parse_bytes(v, 0, 64ull << 20, o->body_cap, sizeof o->body_cap, reason, sizeof reason);
        } else if (i == 7) {
            rc = parse_bytes(v, 64ull << 10, 1ull << 30, o->capture_memory, sizeof o->capture_memory,
                             reason, sizeof reason);
        } else if (i == 8) { /* parsed connections at once; more are relayed unparsed */
            rc = parse_count(v, 0, 1000000, o->max_connections, sizeof o->max_connections, reason,
                             sizeof reason);
        } else if (i == 9) {
            rc = parse_count(v, 1, 64, o->threads, sizeof o->threads, reason, sizeof reason);
        }
        if (rc) {
            if (v && strlen(v) <= 60 && strlen(v) == json_string_length(jv))
                fmt(why, whylen, "annotation %s=\"%s\" %s; not injected", keys[i], v, reason);
            else
                fmt(why, whylen, "annotation %s %s; not injected", keys[i], reason);
            return -1;
        }
    }
    return 0;
}

/* ---- the decision ------------------------------------------------------------------ */

/* Value of sidetap.io/inject: 1 true, 0 false, -1 unset. The label wins over the
 * annotation; an unknown value counts as unset and adds a warning. */
static int inject_setting(json_t *pod, json_t *warnings, const char **source)
{
    static const char *const maps[] = {"labels", "annotations"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(json_object_get(json_object_get(pod, "metadata"), maps[i]),
                                    KEY_INJECT);
        if (v == NULL || json_is_null(v)) continue;
        const char *s = json_string_value(v);
        int b;
        if (s && parse_bool(s, &b) == 0) {
            *source = i == 0 ? "label" : "annotation";
            return b;
        }
        char w[200];
        fmt(w, sizeof w, "sidetap: ignoring %s %s=%s%.40s%s: use \"true\" or \"false\"",
            i == 0 ? "label" : "annotation", KEY_INJECT, s ? "\"" : "", s ? s : "(not a string)",
            s ? "\"" : "");
        json_array_append_new(warnings, json_string(w));
    }
    return -1;
}

static bool is_system_namespace(const char *ns, const struct st_inject_config *cfg)
{
    return strcmp(ns, "kube-system") == 0 ||
           (cfg && cfg->system_namespace && strcmp(ns, cfg->system_namespace) == 0);
}

static bool has_named(json_t *arr, const char *prefix)
{
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) {
        const char *n = jstr(c, "name");
        if (n && strncmp(n, prefix, strlen(prefix)) == 0) return true;
    }
    return false;
}

/* The checks that need no namespace facts. Returns true with a reason when it skips. */
static bool early_skip(const struct st_review *r, const struct st_inject_config *cfg,
                       json_t *warnings, int *inject, const char **src, char *why, size_t wl)
{
    *inject = -1;
    if (!r->is_pod) {
        fmt(why, wl, "not a Pod (%s): nothing to inject", r->kind_desc);
        return true;
    }
    if (strcmp(r->operation, "CREATE") != 0) {
        fmt(why, wl, "operation %.20s: only CREATE is handled", r->operation);
        return true;
    }
    json_t *spec = json_object_get(r->pod, "spec");
    if (r->pod == NULL || !json_is_object(spec) || !json_is_array(json_object_get(spec, "containers")) ||
        json_array_size(json_object_get(spec, "containers")) == 0) {
        fmt(why, wl, "the request has no pod with spec.containers");
        return true;
    }
    *inject = inject_setting(r->pod, warnings, src);
    if (*inject == 0) {
        fmt(why, wl, "pod opted out (%s %s=\"false\")", *src, KEY_INJECT);
        return true;
    }
    if (is_system_namespace(r->ns, cfg)) {
        fmt(why, wl, "namespace %.64s is never injected", r->ns);
        return true;
    }
    if (json_is_true(json_object_get(spec, "hostNetwork"))) {
        fmt(why, wl, "pod uses hostNetwork: the tap's iptables rules would apply to the node");
        return true;
    }
    if (meta_map_get(r->pod, "annotations", KEY_STATUS) != NULL ||
        has_named(json_object_get(spec, "containers"), "sidetap-") ||
        has_named(json_object_get(spec, "initContainers"), "sidetap-")) {
        fmt(why, wl, "pod already has the tap (annotation %s or a sidetap- container)", KEY_STATUS);
        return true;
    }
    const char *os = jstr(json_object_get(spec, "os"), "name");
    if (os && strcmp(os, "linux") != 0) {
        fmt(why, wl, "pod runs on %.20s: the tap supports Linux pods only", os);
        return true;
    }
    if (has_named(json_object_get(spec, "volumes"), VOLUME_PODINFO)) {
        fmt(why, wl, "pod already has a volume named %s", VOLUME_PODINFO);
        return true;
    }
    return false;
}

bool st_review_needs_namespace(const struct st_review *r, const struct st_inject_config *cfg)
{
    json_t *w = json_array();
    int inject;
    const char *src = "";
    char why[320];
    bool skip = early_skip(r, cfg, w, &inject, &src, why, sizeof why);
    json_decref(w);
    return !skip;
}

static bool psa_allows_net_admin(const char *level)
{
    return level[0] == '\0' || strcmp(level, "privileged") == 0;
}

static void decide(const struct st_review *r, const struct st_inject_config *cfg,
                   const struct st_ns_info *ns, json_t *warnings, struct pod_opts *opts,
                   struct st_decision *d)
{
    int inject;
    const char *src = "";
    d->verdict = ST_VERDICT_SKIP;
    d->native_sidecar = false;
    if (early_skip(r, cfg, warnings, &inject, &src, d->reason, sizeof d->reason)) return;
    if (inject != 1) {
        if (!ns->known) {
            fmt(d->reason, sizeof d->reason, "cannot read namespace %.64s: %s", r->ns, ns->error);
            return;
        }
        if (!ns->inject_enabled) {
            fmt(d->reason, sizeof d->reason,
                "namespace %.64s is not labelled sidetap.io/inject=enabled and the pod has no "
                "sidetap.io/inject=\"true\"", r->ns);
            return;
        }
    }
    if (read_pod_opts(r->pod, opts, d->reason, sizeof d->reason) != 0) return;
    bool native = opts->native >= 0 ? opts->native == 1 : cfg->native_sidecars;
    const char *restart = jstr(json_object_get(r->pod, "spec"), "restartPolicy");
    if (!native && restart && strcmp(restart, "Always") != 0) {
        fmt(d->reason, sizeof d->reason,
            "restartPolicy %.20s without native sidecars: the proxy container would keep the pod "
            "from completing (set sidetap.io/native-sidecar=\"true\" on Kubernetes 1.29+)",
            restart);
        return;
    }
    if (!ns->known) {
        fmt(d->reason, sizeof d->reason,
            "cannot read namespace %.64s to check its Pod Security level: %s", r->ns, ns->error);
        return;
    }
    if (!psa_allows_net_admin(ns->psa_enforce)) {
        fmt(d->reason, sizeof d->reason,
            "namespace %.64s enforces Pod Security \"%.20s\", which rejects the NET_ADMIN init "
            "container: kubectl label namespace %.64s pod-security.kubernetes.io/enforce=privileged "
            "--overwrite", r->ns, ns->psa_enforce, r->ns);
        return;
    }
    if (cfg->not_ready) {
        fmt(d->reason, sizeof d->reason, "%s", cfg->not_ready);
        return;
    }
    d->verdict = ST_VERDICT_INJECT;
    d->native_sidecar = native;
    fmt(d->reason, sizeof d->reason, "injected (%s, by %s)",
        native ? "native sidecar" : "sidecar container",
        inject == 1 ? (strcmp(src, "label") == 0 ? "pod label" : "pod annotation")
                    : "namespace label");
}

/* ---- the patch --------------------------------------------------------------------- */

/* JSON Pointer segment escaping (RFC 6901): "~" -> "~0", "/" -> "~1". */
static void pointer_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 3 < outlen; in++) {
        if (*in == '~') out[o++] = '~', out[o++] = '0';
        else if (*in == '/') out[o++] = '~', out[o++] = '1';
        else out[o++] = *in;
    }
    out[o] = '\0';
}

static void op_add(json_t *patch, const char *path, json_t *value)
{
    json_array_append_new(patch, json_pack("{s:s, s:s, s:o}", "op", "add", "path", path, "value",
                                           value));
}

static bool lower_alnum(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i])) return false;
    return n > 0;
}

/* The workload that owns the pod: ReplicaSet hash stripped (Deployment name), CronJob
 * schedule suffix stripped, otherwise the owner's or the pod's own name. */
static void workload_of(json_t *pod, char *out, size_t outlen)
{
    json_t *meta = json_object_get(pod, "metadata");
    json_t *owners = json_object_get(meta, "ownerReferences"), *owner = NULL, *o;
    size_t i;
    json_array_foreach(owners, i, o) {
        if (!json_is_object(o)) continue;
        if (owner == NULL || json_is_true(json_object_get(o, "controller"))) owner = o;
    }
    const char *kind = jstr(owner, "kind"), *name = jstr(owner, "name");
    out[0] = '\0';
    if (name && name[0]) {
        size_t n = strlen(name);
        const char *dash = strrchr(name, '-');
        const char *hash = meta_map_get(pod, "labels", "pod-template-hash");
        if (kind && strcmp(kind, "ReplicaSet") == 0 && dash && dash != name) {
            size_t tail = n - (size_t)(dash - name) - 1;
            bool strip = hash ? strcmp(dash + 1, hash) == 0 : (tail >= 5 && tail <= 10 &&
                                                                lower_alnum(dash + 1, tail));
            if (strip) n = (size_t)(dash - name);
        } else if (kind && strcmp(kind, "Job") == 0 && dash && dash != name) {
            size_t tail = n - (size_t)(dash - name) - 1;
            bool digits = tail >= 8;
            for (size_t k = 0; k < tail && digits; k++)
                if (!isdigit((unsigned char)dash[1 + k])) digits = false;
            if (digits) n = (size_t)(dash - name);
        }
        fmt(out, outlen, "%.*s", (int)n, name);
        return;
    }
    const char *gen = jstr(meta, "generateName"), *pname = jstr(meta, "name");
    if (pname && pname[0]) {
        fmt(out, outlen, "%s", pname);
    } else if (gen && gen[0]) {
        size_t n = strlen(gen);
        while (n > 0 && gen[n - 1] == '-') n--;
        fmt(out, outlen, "%.*s", (int)n, gen);
    }
}

static json_t *field_env(const char *name, const char *path)
{
    return json_pack("{s:s, s:{s:{s:s, s:s}}}", "name", name, "valueFrom", "fieldRef", "apiVersion",
                     "v1", "fieldPath", path);
}

static json_t *value_env(const char *name, const char *value)
{
    return json_pack("{s:s, s:s}", "name", name, "value", value);
}

static json_t *restricted_security(bool root)
{
    if (root)
        return json_pack("{s:i, s:i, s:b, s:b, s:b, s:b, s:{s:[s,s], s:[s]}, s:{s:s}}",
                         "runAsUser", 0, "runAsGroup", 0, "runAsNonRoot", 0, "privileged", 0,
                         "allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 0,
                         "capabilities", "add", "NET_ADMIN", "NET_RAW", "drop", "ALL",
                         "seccompProfile", "type", "RuntimeDefault");
    return json_pack("{s:i, s:i, s:b, s:b, s:b, s:b, s:{s:[s]}, s:{s:s}}", "runAsUser", ST_PROXY_UID,
                     "runAsGroup", ST_PROXY_UID, "runAsNonRoot", 1, "privileged", 0,
                     "allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 1, "capabilities",
                     "drop", "ALL", "seccompProfile", "type", "RuntimeDefault");
}

static json_t *readyz_probe(int period, int failures)
{
    return json_pack("{s:{s:s, s:i, s:s}, s:i, s:i, s:i, s:i}", "httpGet", "path", "/readyz", "port",
                     ST_PORT_ADMIN, "scheme", "HTTP", "periodSeconds", period, "failureThreshold",
                     failures, "timeoutSeconds", 1, "successThreshold", 1);
}

static json_t *init_container(const struct st_inject_config *cfg, const struct pod_opts *o)
{
    char port[8];
    json_t *args = json_array();
    static const char *const fixed[][2] = {
        {"--outbound-port", "16001"}, {"--inbound-port", "16006"},
        {"--dns-port", "16053"},      {"--admin-port", "16020"},
    };
    snprintf(port, sizeof port, "%d", ST_PROXY_UID);
    json_array_append_new(args, json_string("--proxy-uid"));
    json_array_append_new(args, json_string(port));
    json_array_append_new(args, json_string("--proxy-gid"));
    json_array_append_new(args, json_string(port));
    for (size_t i = 0; i < 4; i++) {
        json_array_append_new(args, json_string(fixed[i][0]));
        json_array_append_new(args, json_string(fixed[i][1]));
    }
    json_array_append_new(args, json_string("--include-inbound-ports"));
    json_array_append_new(args, json_string(o->include_inbound));
    const char *opt[][2] = {{"--exclude-inbound-ports", o->exclude_inbound},
                            {"--exclude-outbound-ports", o->exclude_outbound},
                            {"--exclude-outbound-cidrs", o->exclude_cidrs}};
    for (size_t i = 0; i < 3; i++) {
        if (opt[i][1][0] == '\0') continue;
        json_array_append_new(args, json_string(opt[i][0]));
        json_array_append_new(args, json_string(opt[i][1]));
    }
    return json_pack("{s:s, s:s, s:s, s:[s], s:o, s:o, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:s}",
                     "name", "sidetap-init", "image", cfg->image, "imagePullPolicy",
                     cfg->pull_policy, "command", BIN_DIR "sidetap-init", "args", args,
                     "securityContext", restricted_security(true), "resources", "requests", "cpu",
                     "10m", "memory", "16Mi", "limits", "cpu", "200m", "memory", "64Mi",
                     "terminationMessagePolicy", "FallbackToLogsOnError");
}

static json_t *proxy_container(const struct st_inject_config *cfg, const struct pod_opts *o,
                               bool native, const char *workload)
{
    char cap[24];
    snprintf(cap, sizeof cap, "%u", cfg->body_cap);
    bool bodies = o->capture_bodies >= 0 ? o->capture_bodies == 1 : cfg->capture_bodies;
    json_t *env = json_array();
    json_array_append_new(env, field_env("POD_NAME", "metadata.name"));
    json_array_append_new(env, field_env("POD_NAMESPACE", "metadata.namespace"));
    json_array_append_new(env, field_env("POD_IP", "status.podIP"));
    json_array_append_new(env, field_env("NODE_NAME", "spec.nodeName"));
    json_array_append_new(env, field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"));
    json_array_append_new(env, value_env("SIDETAP_WORKLOAD", workload));
    json_array_append_new(env, value_env("SIDETAP_LABELS_FILE", PODINFO_DIR "/labels"));
    json_array_append_new(env, value_env("SIDETAP_COLLECTOR_URL", cfg->collector_url));
    if (cfg->token_secret && cfg->token_secret[0])
        json_array_append_new(env, json_pack("{s:s, s:{s:{s:s, s:s, s:b}}}", "name", "SIDETAP_TOKEN",
                                             "valueFrom", "secretKeyRef", "name", cfg->token_secret,
                                             "key", "token", "optional", 1));
    else if (cfg->token && cfg->token[0])
        json_array_append_new(env, value_env("SIDETAP_TOKEN", cfg->token));
    json_array_append_new(env, value_env("SIDETAP_CAPTURE_BODIES", bodies ? "true" : "false"));
    json_array_append_new(env, value_env("SIDETAP_BODY_CAP", o->body_cap[0] ? o->body_cap : cap));
    if (o->capture_memory[0])
        json_array_append_new(env, value_env("SIDETAP_CAPTURE_MEMORY", o->capture_memory));
    if (o->max_connections[0])
        json_array_append_new(env, value_env("SIDETAP_MAX_CONNECTIONS", o->max_connections));
    if (o->threads[0]) json_array_append_new(env, value_env("SIDETAP_THREADS", o->threads));

    json_t *c = json_pack(
        "{s:s, s:s, s:s, s:[s], s:o, s:[{s:s, s:s, s:b}], s:o, s:{s:{s:s, s:s}, s:{s:s, s:s}}, "
        "s:o, s:s}",
        "name", "sidetap-proxy", "image", cfg->image, "imagePullPolicy", cfg->pull_policy,
        "command", BIN_DIR "sidetap-proxy", "env", env, "volumeMounts", "name", VOLUME_PODINFO,
        "mountPath", PODINFO_DIR, "readOnly", 1, "securityContext", restricted_security(false),
        "resources", "requests", "cpu", cfg->cpu_request, "memory", cfg->memory_request, "limits",
        "cpu", cfg->cpu_limit, "memory", cfg->memory_limit, "readinessProbe", readyz_probe(5, 3),
        "terminationMessagePolicy", "FallbackToLogsOnError");
    if (native) {
        json_object_set_new(c, "restartPolicy", json_string("Always"));
        json_object_set_new(c, "startupProbe", readyz_probe(1, 120));
    } else {
        /* The kubelet starts containers in order and waits for postStart: the app starts
         * only once the proxy answers /readyz (or after 120 s, so a pod is never stuck). */
        json_object_set_new(c, "lifecycle",
                            json_pack("{s:{s:{s:[s,s,s]}}}", "postStart", "exec", "command",
                                      BIN_DIR "sidetap-await", "http://127.0.0.1:16020/readyz",
                                      "120"));
    }
    return c;
}

static json_t *build_patch(const struct st_review *r, const struct st_inject_config *cfg,
                           const struct pod_opts *o, bool native)
{
    json_t *spec = json_object_get(r->pod, "spec");
    json_t *meta = json_object_get(r->pod, "metadata");
    json_t *patch = json_array();
    char workload[256], key[128];
    workload_of(r->pod, workload, sizeof workload);

    json_t *status = json_pack(
        "{s:s, s:s, s:b, s:o, s:o, s:[s], s:{s:i, s:i, s:i, s:i}, s:s}", "version", SIDETAP_VERSION,
        "image", cfg->image, "nativeSidecar", native, "initContainers",
        native ? json_pack("[s,s]", "sidetap-init", "sidetap-proxy") : json_pack("[s]", "sidetap-init"),
        "containers", native ? json_array() : json_pack("[s]", "sidetap-proxy"), "volumes",
        VOLUME_PODINFO, "ports", "outbound", ST_PORT_OUTBOUND, "inbound", ST_PORT_INBOUND, "dns",
        ST_PORT_DNS, "admin", ST_PORT_ADMIN, "workload", workload);
    char *status_text = json_dumps(status, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(status);

    json_t *ann = json_object_get(meta, "annotations");
    if (!json_is_object(ann)) {
        op_add(patch, "/metadata/annotations", json_pack("{s:s}", KEY_STATUS, status_text));
    } else {
        char path[160];
        pointer_escape(KEY_STATUS, key, sizeof key);
        snprintf(path, sizeof path, "/metadata/annotations/%s", key);
        op_add(patch, path, json_string(status_text));
    }
    free(status_text);

    json_t *vol = json_pack("{s:s, s:{s:[{s:s, s:{s:s, s:s}}]}}", "name", VOLUME_PODINFO,
                            "downwardAPI", "items", "path", "labels", "fieldRef", "apiVersion", "v1",
                            "fieldPath", "metadata.labels");
    if (!json_is_array(json_object_get(spec, "volumes")))
        op_add(patch, "/spec/volumes", json_pack("[o]", vol));
    else
        op_add(patch, "/spec/volumes/-", vol);

    json_t *init = init_container(cfg, o);
    json_t *proxy = proxy_container(cfg, o, native, workload);
    bool has_inits = json_is_array(json_object_get(spec, "initContainers"));
    if (native) {
        /* sidetap-init sets the rules, then the proxy must be started before the app's own
         * init containers send their first packet. */
        if (!has_inits) {
            op_add(patch, "/spec/initContainers", json_pack("[o,o]", init, proxy));
        } else {
            op_add(patch, "/spec/initContainers/0", init);
            op_add(patch, "/spec/initContainers/1", proxy);
        }
    } else {
        /* Without native sidecars no proxy runs during init: the rules go in last, so the
         * app's init containers keep a working (untapped) network. */
        if (!has_inits) op_add(patch, "/spec/initContainers", json_pack("[o]", init));
        else op_add(patch, "/spec/initContainers/-", init);
        op_add(patch, "/spec/containers/0", proxy);
    }
    return patch;
}

/* ---- the response ------------------------------------------------------------------ */

static char *base64(const char *in, size_t len)
{
    size_t outlen = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(outlen);
    if (out) EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
    return out;
}

char *st_review_respond(const struct st_review *r, const struct st_inject_config *cfg,
                        const struct st_ns_info *ns, struct st_decision *out)
{
    struct st_decision local;
    struct st_decision *d = out ? out : &local;
    struct pod_opts opts;
    json_t *warnings = json_array();
    decide(r, cfg, ns, warnings, &opts, d);

    json_t *resp = json_pack("{s:s, s:b}", "uid", r->uid, "allowed", 1);
    if (d->verdict == ST_VERDICT_INJECT) {
        json_t *patch = build_patch(r, cfg, &opts, d->native_sidecar);
        char *text = json_dumps(patch, JSON_COMPACT);
        json_decref(patch);
        char *b64 = text ? base64(text, strlen(text)) : NULL;
        free(text);
        if (b64 == NULL) {
            d->verdict = ST_VERDICT_SKIP;
            fmt(d->reason, sizeof d->reason, "out of memory while building the patch");
        } else {
            json_object_set_new(resp, "patchType", json_string("JSONPatch"));
            json_object_set_new(resp, "patch", json_string(b64));
            free(b64);
        }
    }
    if (d->verdict == ST_VERDICT_SKIP) {
        char w[400];
        fmt(w, sizeof w, "sidetap: not injected: %s", d->reason);
        json_array_append_new(warnings, json_string(w));
    }
    if (json_array_size(warnings) > 0) json_object_set(resp, "warnings", warnings);
    json_decref(warnings);
    json_t *review = json_pack("{s:s, s:s, s:o}", "apiVersion", "admission.k8s.io/v1", "kind",
                               "AdmissionReview", "response", resp);
    char *text = json_dumps(review, JSON_COMPACT);
    json_decref(review);
    return text;
}
