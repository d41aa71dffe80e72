/* identity.c - the pod identity from the environment (see identity.h). */
#include "identity.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int add_label(json_t *labels, const char *k, size_t klen, const char *v, size_t vlen)
{
    json_t *val = st_json_bytes_string(v, vlen);
    char *key = strndup(k, klen);
    int rc = key && val ? json_object_set_new(labels, key, val) : -1;
    if (rc < 0 && val) json_decref(val);
    free(key);
    return rc;
}

/* "k=v,k2=v2"; spaces around items are ignored. */
static int parse_labels_env(json_t *labels, const char *text)
{
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        if (end == NULL) end = p + strlen(p);
        while (p < end && isspace((unsigned char)*p)) p++;
        const char *e = end;
        while (e > p && isspace((unsigned char)e[-1])) e--;
        if (e > p) {
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (eq == NULL || eq == p) {
                fprintf(stderr,
                        "sidetap-proxy: SIDETAP_LABELS: item \"%.*s\" at offset %zu is not key=value\n",
                        (int)(e - p), p, (size_t)(p - text));
                return -1;
            }
            if (add_label(labels, p, (size_t)(eq - p), eq + 1, (size_t)(e - eq - 1)) < 0) return -1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* Downward API: one `key="value"` per line, value in Go %q quoting. Handles the escapes
 * that can appear in label values (\" and \\); lines that do not parse are reported. */
static int parse_labels_file(json_t *labels, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "sidetap-proxy: SIDETAP_LABELS_FILE: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        if (n == 0) continue;
        char *eq = strchr(line, '=');
        if (eq == NULL || eq == line || eq[1] != '"' || n < (size_t)(eq - line) + 3 || line[n - 1] != '"') {
            fprintf(stderr, "sidetap-proxy: SIDETAP_LABELS_FILE: %s line %d is not key=\"value\"\n", path,
                    lineno);
            rc = -1;
            break;
        }
        char value[4096];
        size_t vlen = 0;
        for (char *c = eq + 2; c < line + n - 1; c++) {
            if (*c == '\\' && c + 1 < line + n - 1) c++;
            value[vlen++] = *c;
        }
        if (add_label(labels, line, (size_t)(eq - line), value, vlen) < 0) rc = -1;
    }
    fclose(f);
    return rc;
}

int st_pod_load(struct st_pod *pod)
{
    memset(pod, 0, sizeof(*pod));
    pod->id.name = env("POD_NAME");
    pod->id.namespace = env("POD_NAMESPACE");
    pod->id.node = env("NODE_NAME");
    pod->id.service_account = env("SERVICE_ACCOUNT");
    pod->id.workload = env("SIDETAP_WORKLOAD");
    pod->ip = env("POD_IP");
    pod->labels = json_object();
    pod->ips = json_array();
    if (pod->labels == NULL || pod->ips == NULL) goto fail;

    const char *ips = env("POD_IPS");
    if (ips != NULL) {
        const char *p = ips;
        while (*p) {
            size_t n = strcspn(p, ",");
            if (n > 0) json_array_append_new(pod->ips, st_json_bytes_string(p, n));
            p += n + (p[n] == ',');
        }
    } else if (pod->ip != NULL) {
        json_array_append_new(pod->ips, json_string(pod->ip));
    }

    const char *file = env("SIDETAP_LABELS_FILE");
    const char *text = env("SIDETAP_LABELS");
    if (file != NULL && parse_labels_file(pod->labels, file) < 0) goto fail;
    if (text != NULL && parse_labels_env(pod->labels, text) < 0) goto fail;
    pod->id.labels = json_object_size(pod->labels) > 0 ? pod->labels : NULL;
    return 0;
fail:
    st_pod_free(pod);
    return -1;
}

void st_pod_free(struct st_pod *pod)
{
    json_decref(pod->labels);
    json_decref(pod->ips);
    memset(pod, 0, sizeof(*pod));
}

static void set_opt(json_t *o, const char *key, const char *value)
{
    if (value != NULL) json_object_set_new(o, key, st_json_bytes_string(value, strlen(value)));
}

json_t *st_pod_register_json(const struct st_pod *pod)
{
    json_t *p = json_object();
    if (p == NULL) return NULL;
    set_opt(p, "name", pod->id.name);
    set_opt(p, "namespace", pod->id.namespace);
    set_opt(p, "node", pod->id.node);
    set_opt(p, "ip", pod->ip);
    json_object_set(p, "ips", pod->ips);
    set_opt(p, "workload", pod->id.workload);
    set_opt(p, "serviceAccount", pod->id.service_account);
    json_object_set(p, "labels", pod->labels);
    return json_pack("{s:o}", "pod", p);
}
