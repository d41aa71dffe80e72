/* The injection decision table, one check per row, plus decoding errors, annotation
 * parsing and workload names. Each case builds a real AdmissionReview (JSON text), runs
 * it through st_review_decode + st_review_respond and checks the exact reason, the
 * warning and whether a patch came back. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "review.h"

static struct st_inject_config cfg = {
    .image = "registry.example/sidetap:1",
    .pull_policy = "IfNotPresent",
    .collector_url = "http://sidetap-collector.sidetap.svc",
    .token = "tok",
    .native_sidecars = false,
    .capture_bodies = true,
    .body_cap = 4096,
    .cpu_request = "50m", .cpu_limit = "1", .memory_request = "32Mi", .memory_limit = "256Mi",
    .system_namespace = "sidetap",
};

static const struct st_ns_info NS_LABELLED = {.known = true, .inject_enabled = true};
static const struct st_ns_info NS_PLAIN = {.known = true, .inject_enabled = false};

/* A pod as a controller creates it; `extra` is merged into the pod (json_object_update_recursive). */
static char *make_review(const char *ns, const char *extra_json)
{
    json_t *pod = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}, s:[{s:s, s:s, s:s, s:b}]}, "
        "s:{s:[{s:s, s:s}], s:s}}",
        "apiVersion", "v1", "kind", "Pod", "metadata", "generateName", "web-7d9f8c6b5d-",
        "namespace", ns, "labels", "app", "web", "pod-template-hash", "7d9f8c6b5d",
        "ownerReferences", "apiVersion", "apps/v1", "kind", "ReplicaSet", "name",
        "web-7d9f8c6b5d", "controller", 1, "spec", "containers", "name", "web", "image",
        "nginx:1.25", "restartPolicy", "Always");
    if (extra_json) {
        json_t *extra = json_loads(extra_json, 0, NULL);
        if (extra == NULL) {
            fprintf(stderr, "bad test JSON: %s\n", extra_json);
            abort();
        }
        json_object_update_recursive(pod, extra);
        json_decref(extra);
    }
    json_t *r = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:o}}", "apiVersion",
                          "admission.k8s.io/v1", "kind", "AdmissionReview", "request", "uid",
                          "0b7c3a5e-1111-2222-3333-444455556666", "kind", "group", "", "version", "v1",
                          "kind", "Pod", "namespace", ns, "operation", "CREATE", "object", pod);
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return s;
}

struct outcome {
    bool patched;
    bool native;
    char reason[400];
    char warnings[1200]; /* joined by " | " */
    json_t *patch;       /* decoded, or NULL */
};

static void run_review(const char *text, const struct st_ns_info *ns, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    char err[300];
    struct st_review *r = st_review_decode(text, strlen(text), err, sizeof err);
    if (r == NULL) {
        snprintf(o->reason, sizeof o->reason, "DECODE: %s", err);
        return;
    }
    struct st_decision d;
    char *out = st_review_respond(r, &cfg, ns, &d);
    CHECK(out != NULL);
    snprintf(o->reason, sizeof o->reason, "%s", d.reason);
    o->native = d.native_sidecar;
    json_t *resp = json_loads(out, 0, NULL);
    json_t *res = json_object_get(resp, "response");
    CHECK(json_is_true(json_object_get(res, "allowed")));
    CHECK_STR(json_string_value(json_object_get(res, "uid")), "0b7c3a5e-1111-2222-3333-444455556666");
    const char *b64 = json_string_value(json_object_get(res, "patch"));
    o->patched = b64 != NULL;
    CHECK_INT(o->patched, d.verdict == ST_VERDICT_INJECT);
    if (b64) {
        unsigned char buf[65536];
        int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)strlen(b64));
        CHECK(n > 0);
        while (n > 0 && buf[n - 1] == '\0') n--; /* EVP_DecodeBlock keeps padding zeros */
        o->patch = json_loadb((const char *)buf, (size_t)n, 0, NULL);
        CHECK(json_is_array(o->patch));
        CHECK_STR(json_string_value(json_object_get(res, "patchType")), "JSONPatch");
    }
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(res, "warnings"), i, w) {
        size_t used = strlen(o->warnings);
        snprintf(o->warnings + used, sizeof o->warnings - used, "%s%s", i ? " | " : "",
                 json_string_value(w));
    }
    json_decref(resp);
    free(out);
    st_review_free(r);
}

static void expect(const char *ns, const char *extra, const struct st_ns_info *nsinfo,
                   bool patched, const char *reason, int line)
{
    char *text = make_review(ns, extra);
    struct outcome o;
    run_review(text, nsinfo, &o);
    if (o.patched != patched || strcmp(o.reason, reason) != 0) {
        fprintf(stderr, "line %d: got patched=%d reason \"%s\", want patched=%d \"%s\"\n", line,
                o.patched, o.reason, patched, reason);
        check_failures++;
    }
    if (!patched) {
        char want[500];
        snprintf(want, sizeof want, "sidetap: not injected: %s", reason);
        const char *last = strrchr(o.warnings, '|');
        last = last ? last + 2 : o.warnings;
        if (strcmp(last, want) != 0) {
            fprintf(stderr, "line %d: warning \"%s\", want \"%s\"\n", line, last, want);
            check_failures++;
        }
    }
    json_decref(o.patch);
    free(text);
}
#define EXPECT(ns, extra, info, patched, reason) expect(ns, extra, info, patched, reason, __LINE__)

static const char *init_args_of(json_t *patch, char *buf, size_t len)
{
    size_t i;
    json_t *op;
    buf[0] = '\0';
    json_array_foreach(patch, i, op) {
        json_t *v = json_object_get(op, "value");
        json_t *c = json_is_array(v) ? json_array_get(v, 0) : v;
        const char *n = json_string_value(json_object_get(c, "name"));
        if (n && strcmp(n, "sidetap-init") == 0) {
            size_t k;
            json_t *a;
            json_array_foreach(json_object_get(c, "args"), k, a) {
                size_t used = strlen(buf);
                snprintf(buf + used, len - used, "%s%s", k ? " " : "", json_string_value(a));
            }
        }
    }
    return buf;
}

static const char *env_value(json_t *patch, const char *name)
{
    size_t i, k;
    json_t *op, *e;
    json_array_foreach(patch, i, op) {
        json_t *v = json_object_get(op, "value");
        json_t *cs[2] = {v, json_is_array(v) ? json_array_get(v, 1) : NULL};
        for (int j = 0; j < 2; j++) {
            const char *n = json_string_value(json_object_get(cs[j], "name"));
            if (n == NULL || strcmp(n, "sidetap-proxy") != 0) continue;
            json_array_foreach(json_object_get(cs[j], "env"), k, e) {
                if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
                    return json_string_value(json_object_get(e, "value"));
            }
        }
    }
    return NULL;
}

static void decision_table(void)
{
    /* Namespace label. */
    EXPECT("shop", NULL, &NS_LABELLED, true, "injected (sidecar container, by namespace label)");
    EXPECT("shop", NULL, &NS_PLAIN, false,
           "namespace shop is not labelled sidetap.io/inject=enabled and the pod has no "
           "sidetap.io/inject=\"true\"");
    /* Opt-out, label or annotation; the label wins over the annotation. */
    EXPECT("shop", "{\"metadata\":{\"labels\":{\"sidetap.io/inject\":\"false\"}}}", &NS_LABELLED,
           false, "pod opted out (label sidetap.io/inject=\"false\")");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/inject\":\"false\"}}}",
           &NS_LABELLED, false, "pod opted out (annotation sidetap.io/inject=\"false\")");
    EXPECT("shop",
           "{\"metadata\":{\"labels\":{\"sidetap.io/inject\":\"false\"},"
           "\"annotations\":{\"sidetap.io/inject\":\"true\"}}}",
           &NS_LABELLED, false, "pod opted out (label sidetap.io/inject=\"false\")");
    /* Opt-in without the namespace label. */
    EXPECT("shop", "{\"metadata\":{\"labels\":{\"sidetap.io/inject\":\"true\"}}}", &NS_PLAIN, true,
           "injected (sidecar container, by pod label)");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/inject\":\"true\"}}}", &NS_PLAIN,
           true, "injected (sidecar container, by pod annotation)");
    /* Never: hostNetwork, system namespaces, already injected, even when opted in. */
    EXPECT("shop",
           "{\"metadata\":{\"labels\":{\"sidetap.io/inject\":\"true\"}},\"spec\":{\"hostNetwork\":true}}",
           &NS_LABELLED, false,
           "pod uses hostNetwork: the tap's iptables rules would apply to the node");
    EXPECT("kube-system", "{\"metadata\":{\"labels\":{\"sidetap.io/inject\":\"true\"}}}",
           &NS_LABELLED, false, "namespace kube-system is never injected");
    EXPECT("sidetap", NULL, &NS_LABELLED, false, "namespace sidetap is never injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/status\":\"{}\"}}}", &NS_LABELLED,
           false, "pod already has the tap (annotation sidetap.io/status or a sidetap- container)");
    EXPECT("shop",
           "{\"spec\":{\"initContainers\":[{\"name\":\"sidetap-init\",\"image\":\"x\"}]}}",
           &NS_LABELLED, false,
           "pod already has the tap (annotation sidetap.io/status or a sidetap- container)");
    EXPECT("shop", "{\"spec\":{\"os\":{\"name\":\"windows\"}}}", &NS_LABELLED, false,
           "pod runs on windows: the tap supports Linux pods only");
    /* Bad annotations name the annotation. */
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/exclude-inbound-ports\":\"80,http\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/exclude-inbound-ports=\"80,http\" has \"http\", which is not a "
           "port (1-65535); not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/exclude-outbound-ports\":\"0\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/exclude-outbound-ports=\"0\" has \"0\", which is not a port "
           "(1-65535); not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/exclude-outbound-ports\":\"65536\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/exclude-outbound-ports=\"65536\" has \"65536\", which is not a "
           "port (1-65535); not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/include-inbound-ports\":\"\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/include-inbound-ports=\"\" is empty: use a port list like "
           "\"80,8080\" or \"*\"; not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/exclude-inbound-ports\":\"80,\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/exclude-inbound-ports=\"80,\" ends with a comma; not injected");
    EXPECT("shop",
           "{\"metadata\":{\"annotations\":{\"sidetap.io/exclude-outbound-cidrs\":\"10.0.0.0/33\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/exclude-outbound-cidrs=\"10.0.0.0/33\" has \"10.0.0.0/33\", which "
           "is not a CIDR (like 10.0.0.0/8 or fd00::/8); not injected");
    EXPECT("shop",
           "{\"metadata\":{\"annotations\":{\"sidetap.io/exclude-outbound-cidrs\":\"10.0.0/8\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/exclude-outbound-cidrs=\"10.0.0/8\" has \"10.0.0/8\", which is "
           "not a CIDR (like 10.0.0.0/8 or fd00::/8); not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/capture-bodies\":\"yes\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/capture-bodies=\"yes\" must be \"true\" or \"false\"; not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/native-sidecar\":\"1\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/native-sidecar=\"1\" must be \"true\" or \"false\"; not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/body-cap\":\"64k\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/body-cap=\"64k\" is not a size: use bytes or a Ki/Mi/Gi quantity "
           "like \"64Ki\"; not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/body-cap\":\"65Mi\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/body-cap=\"65Mi\" must be from 0 to 67108864 bytes; not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/capture-memory\":\"1Ki\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/capture-memory=\"1Ki\" must be from 65536 to 1073741824 bytes; "
           "not injected");
    EXPECT("shop",
           "{\"metadata\":{\"annotations\":{\"sidetap.io/capture-memory\":\"99999999999999999999999\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/capture-memory=\"99999999999999999999999\" must be from 65536 to "
           "1073741824 bytes; not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/max-connections\":\"-1\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/max-connections=\"-1\" must be a whole number from 0 to 1000000; "
           "not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/proxy-threads\":\"0\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/proxy-threads=\"0\" must be a whole number from 1 to 64; not injected");
    EXPECT("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/proxy-threads\":\"99999999999999999999\"}}}",
           &NS_LABELLED, false,
           "annotation sidetap.io/proxy-threads=\"99999999999999999999\" must be a whole number from "
           "1 to 64; not injected");
    /* Pod Security: baseline and restricted reject NET_ADMIN. */
    struct st_ns_info restricted = {.known = true, .inject_enabled = true};
    snprintf(restricted.psa_enforce, sizeof restricted.psa_enforce, "restricted");
    EXPECT("shop", NULL, &restricted, false,
           "namespace shop enforces Pod Security \"restricted\", which rejects the NET_ADMIN init "
           "container: kubectl label namespace shop pod-security.kubernetes.io/enforce=privileged "
           "--overwrite");
    snprintf(restricted.psa_enforce, sizeof restricted.psa_enforce, "baseline");
    EXPECT("shop", "{\"metadata\":{\"labels\":{\"sidetap.io/inject\":\"true\"}}}", &restricted, false,
           "namespace shop enforces Pod Security \"baseline\", which rejects the NET_ADMIN init "
           "container: kubectl label namespace shop pod-security.kubernetes.io/enforce=privileged "
           "--overwrite");
    snprintf(restricted.psa_enforce, sizeof restricted.psa_enforce, "privileged");
    EXPECT("shop", NULL, &restricted, true, "injected (sidecar container, by namespace label)");
    /* The namespace could not be read. */
    struct st_ns_info unknown = {.known = false};
    snprintf(unknown.error, sizeof unknown.error, "API answered 403");
    EXPECT("shop", NULL, &unknown, false, "cannot read namespace shop: API answered 403");
    EXPECT("shop", "{\"metadata\":{\"labels\":{\"sidetap.io/inject\":\"true\"}}}", &unknown, false,
           "cannot read namespace shop to check its Pod Security level: API answered 403");
    /* Jobs: a plain sidecar container would never exit. */
    EXPECT("batch", "{\"spec\":{\"restartPolicy\":\"Never\"}}", &NS_LABELLED, false,
           "restartPolicy Never without native sidecars: the proxy container would keep the pod "
           "from completing (set sidetap.io/native-sidecar=\"true\" on Kubernetes 1.29+)");
    EXPECT("batch",
           "{\"metadata\":{\"annotations\":{\"sidetap.io/native-sidecar\":\"true\"}},"
           "\"spec\":{\"restartPolicy\":\"Never\"}}",
           &NS_LABELLED, true, "injected (native sidecar, by namespace label)");
}

static void native_override(void)
{
    struct outcome o;
    char *t = make_review("shop", "{\"metadata\":{\"annotations\":{\"sidetap.io/native-sidecar\":\"false\"}}}");
    cfg.native_sidecars = true;
    run_review(t, &NS_LABELLED, &o);
    CHECK(o.patched);
    CHECK(!o.native);
    json_decref(o.patch);
    free(t);
    t = make_review("shop", NULL);
    run_review(t, &NS_LABELLED, &o);
    CHECK(o.native);
    CHECK_STR(o.reason, "injected (native sidecar, by namespace label)");
    json_decref(o.patch);
    free(t);
    cfg.native_sidecars = false;
}

static void other_requests(void)
{
    struct outcome o;
    const char *deploy =
        "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
        "\"uid\":\"0b7c3a5e-1111-2222-3333-444455556666\",\"kind\":{\"group\":\"apps\","
        "\"version\":\"v1\",\"kind\":\"Deployment\"},\"namespace\":\"shop\",\"operation\":\"CREATE\","
        "\"object\":{}}}";
    run_review(deploy, &NS_LABELLED, &o);
    CHECK(!o.patched);
    CHECK_STR(o.reason, "not a Pod (apps/v1 Deployment): nothing to inject");
    char *t = make_review("shop", NULL);
    char *upd = strstr(t, "\"CREATE\"");
    memcpy(upd, "\"UPDATE\"", 8);
    run_review(t, &NS_LABELLED, &o);
    CHECK(!o.patched);
    CHECK_STR(o.reason, "operation UPDATE: only CREATE is handled");
    free(t);

    /* A value other than true/false is ignored with its own warning. */
    t = make_review("shop", "{\"metadata\":{\"labels\":{\"sidetap.io/inject\":\"enabled\"}}}");
    run_review(t, &NS_LABELLED, &o);
    CHECK(o.patched);
    CHECK_STR(o.warnings, "sidetap: ignoring label sidetap.io/inject=\"enabled\": use \"true\" or \"false\"");
    json_decref(o.patch);
    free(t);
}

static void decode_errors(void)
{
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"{\"apiVersion\":", "body is not JSON: unexpected token near end of file (line 1, column 14)"},
        {"[1,2]", "not an AdmissionReview: the body is a JSON array, not an object"},
        {"{\"kind\":\"Pod\"}", "not an AdmissionReview: kind is \"Pod\""},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1beta1\"}",
         "unsupported AdmissionReview apiVersion \"admission.k8s.io/v1beta1\": only admission.k8s.io/v1"},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\"}",
         "not an AdmissionReview request: \"request\" is missing"},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{}}",
         "AdmissionReview request.uid is missing, empty or too long"},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\"}}",
         "AdmissionReview request.kind.kind is missing"},
        {"{\"kind\":\"AdmissionReview\",\"kind\":\"AdmissionReview\"}",
         "body is not JSON: duplicate object key near '\"kind\"' (line 1, column 32)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[300] = "";
        struct st_review *r = st_review_decode(cases[i].body, strlen(cases[i].body), err, sizeof err);
        CHECK(r == NULL);
        CHECK_STR(err, cases[i].msg);
        st_review_free(r);
    }
}

static void annotations_normalized(void)
{
    struct outcome o;
    char args[1000];
    char *t = make_review("shop",
        "{\"metadata\":{\"annotations\":{"
        "\"sidetap.io/include-inbound-ports\":\" 8080 ,9090\","
        "\"sidetap.io/exclude-inbound-ports\":\"15020\","
        "\"sidetap.io/exclude-outbound-ports\":\"5432, 6379\","
        "\"sidetap.io/exclude-outbound-cidrs\":\"169.254.169.254, 10.0.0.0/8 ,2001:db8::/32,::1\","
        "\"sidetap.io/capture-bodies\":\"false\","
        "\"sidetap.io/body-cap\":\"16Ki\",\"sidetap.io/capture-memory\":\"32Mi\","
        "\"sidetap.io/max-connections\":\"500\",\"sidetap.io/proxy-threads\":\"2\"}}}");
    run_review(t, &NS_LABELLED, &o);
    CHECK(o.patched);
    CHECK_STR(init_args_of(o.patch, args, sizeof args),
              "--proxy-uid 1717 --proxy-gid 1717 --outbound-port 16001 --inbound-port 16006 "
              "--dns-port 16053 --admin-port 16020 --include-inbound-ports 8080,9090 "
              "--exclude-inbound-ports 15020 --exclude-outbound-ports 5432,6379 "
              "--exclude-outbound-cidrs 169.254.169.254/32,10.0.0.0/8,2001:db8::/32,::1/128");
    CHECK_STR(env_value(o.patch, "SIDETAP_CAPTURE_BODIES"), "false");
    CHECK_STR(env_value(o.patch, "SIDETAP_BODY_CAP"), "16384");
    CHECK_STR(env_value(o.patch, "SIDETAP_CAPTURE_MEMORY"), "33554432");
    CHECK_STR(env_value(o.patch, "SIDETAP_MAX_CONNECTIONS"), "500");
    CHECK_STR(env_value(o.patch, "SIDETAP_THREADS"), "2");
    json_decref(o.patch);
    free(t);
    /* without the annotations: the injector's body cap, the proxy's own defaults */
    t = make_review("shop", NULL);
    run_review(t, &NS_LABELLED, &o);
    CHECK(o.patched);
    CHECK_STR(env_value(o.patch, "SIDETAP_BODY_CAP"), "4096");
    CHECK(env_value(o.patch, "SIDETAP_CAPTURE_MEMORY") == NULL);
    CHECK(env_value(o.patch, "SIDETAP_MAX_CONNECTIONS") == NULL);
    CHECK(env_value(o.patch, "SIDETAP_THREADS") == NULL);
    json_decref(o.patch);
    free(t);
}

static void workloads(void)
{
    static const struct {
        const char *extra, *want;
    } cases[] = {
        {NULL, "web"}, /* ReplicaSet + pod-template-hash */
        {"{\"metadata\":{\"labels\":{\"pod-template-hash\":\"other\"}}}", "web-7d9f8c6b5d"},
        {"{\"metadata\":{\"ownerReferences\":[{\"kind\":\"StatefulSet\",\"name\":\"etcd\",\"controller\":true}]}}", "etcd"},
        {"{\"metadata\":{\"ownerReferences\":[{\"kind\":\"Job\",\"name\":\"report-28473620\",\"controller\":true}]}}", "report"},
        {"{\"metadata\":{\"ownerReferences\":[{\"kind\":\"Job\",\"name\":\"migrate-v2\",\"controller\":true}]}}", "migrate-v2"},
        {"{\"metadata\":{\"ownerReferences\":[],\"generateName\":\"manual-\"}}", "manual"},
        {"{\"metadata\":{\"ownerReferences\":[],\"name\":\"debug\"}}", "debug"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct outcome o;
        char *t = make_review("shop", cases[i].extra);
        run_review(t, &NS_LABELLED, &o);
        CHECK(o.patched);
        const char *got = env_value(o.patch, "SIDETAP_WORKLOAD");
        if (got == NULL || strcmp(got, cases[i].want) != 0) {
            fprintf(stderr, "workload case %zu: got %s, want %s\n", i, got ? got : "(null)", cases[i].want);
            check_failures++;
        }
        json_decref(o.patch);
        free(t);
    }
}

static void namespace_parse(void)
{
    struct st_ns_info ns;
    const char *nsj = "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\","
                      "\"labels\":{\"sidetap.io/inject\":\"enabled\","
                      "\"pod-security.kubernetes.io/enforce\":\"baseline\"}}}";
    CHECK_INT(st_ns_info_parse(nsj, strlen(nsj), &ns), 0);
    CHECK(ns.known && ns.inject_enabled);
    CHECK_STR(ns.psa_enforce, "baseline");
    CHECK_INT(st_ns_info_parse("nope", 4, &ns), -1);
    CHECK(!ns.known);
}

int main(void)
{
    decision_table();
    native_override();
    other_requests();
    decode_errors();
    annotations_normalized();
    workloads();
    namespace_parse();
    return CHECK_DONE();
}
