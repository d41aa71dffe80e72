/* identity.c - who is behind an IP: pods whose proxy registered (POST /api/v1/register)
 * and, in a cluster, pods and Services from the Kubernetes API (k8s.c). Entries arrive
 * with the reporting proxy's own side filled in; st_identity_fill() completes the peer.
 *
 * Lookups go registration first (the proxy knows its pod best), then Kubernetes pods,
 * then Services. Tables are jansson objects keyed by IP. */
#include <stdlib.h>
#include <string.h>

#include "collector.h"

#define MAX_IDENTITIES 200000 /* per table; registrations beyond are refused */

struct st_identity {
    json_t *registered; /* ip -> identity (name, namespace, node, workload, ...) */
    json_t *pods;       /* from the Kubernetes API */
    json_t *endpoints;  /* addresses behind a Service */
    json_t *services;
};

struct st_identity *st_identity_new(void)
{
    struct st_identity *id = calloc(1, sizeof(*id));
    if (!id)
        return NULL;
    id->registered = json_object();
    id->pods = json_object();
    id->services = json_object();
    id->endpoints = json_object();
    if (!id->registered || !id->pods || !id->services || !id->endpoints) {
        st_identity_free(id);
        return NULL;
    }
    return id;
}

void st_identity_free(struct st_identity *id)
{
    if (!id)
        return;
    json_decref(id->registered);
    json_decref(id->pods);
    json_decref(id->services);
    json_decref(id->endpoints);
    free(id);
}

static const char *const identity_fields[] = {"name", "namespace", "node", "workload",
                                              "serviceAccount", "labels", NULL};

int st_identity_register(struct st_identity *id, json_t *pod)
{
    json_t *ident = json_object();
    if (!ident)
        return -1;
    for (int i = 0; identity_fields[i]; i++) {
        json_t *v = json_object_get(pod, identity_fields[i]);
        if (v)
            json_object_set(ident, identity_fields[i], v);
    }
    int rc = 0;
    json_t *ip = json_object_get(pod, "ip");
    if (json_is_string(ip) && *json_string_value(ip)) {
        if (json_object_size(id->registered) >= MAX_IDENTITIES &&
            !json_object_get(id->registered, json_string_value(ip)))
            rc = -1;
        else
            json_object_set(id->registered, json_string_value(ip), ident);
    }
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(pod, "ips"), i, it)
    {
        if (!json_is_string(it) || !*json_string_value(it))
            continue;
        if (json_object_size(id->registered) >= MAX_IDENTITIES &&
            !json_object_get(id->registered, json_string_value(it)))
            rc = -1;
        else
            json_object_set(id->registered, json_string_value(it), ident);
    }
    json_decref(ident);
    return rc;
}

void st_identity_set_k8s(struct st_identity *id, const char *kind, const char *ip, json_t *identity)
{
    json_t *table = strcmp(kind, "service") == 0    ? id->services
                    : strcmp(kind, "endpoint") == 0 ? id->endpoints
                                                    : id->pods;
    if (!ip || !*ip)
        return;
    if (!identity)
        json_object_del(table, ip);
    else if (json_object_size(table) < MAX_IDENTITIES || json_object_get(table, ip))
        json_object_set(table, ip, identity);
}

static json_t *lookup(struct st_identity *id, const char *ip)
{
    json_t *v = json_object_get(id->registered, ip);
    if (!v)
        v = json_object_get(id->pods, ip);
    if (!v)
        v = json_object_get(id->endpoints, ip);
    if (!v)
        v = json_object_get(id->services, ip);
    return v;
}

static void fill_side(struct st_identity *id, json_t *side)
{
    const char *ip = json_string_value(json_object_get(side, "ip"));
    if (!ip)
        return;
    json_t *known = lookup(id, ip);
    if (!known)
        return;
    /* a side that already names a pod keeps it; only missing fields are added */
    const char *key;
    json_t *v;
    json_object_foreach(known, key, v)
    {
        if (!json_object_get(side, key))
            json_object_set(side, key, v);
    }
}

void st_identity_fill(struct st_identity *id, json_t *entry)
{
    fill_side(id, json_object_get(entry, "src"));
    fill_side(id, json_object_get(entry, "dst"));
}

bool st_identity_is_injected(struct st_identity *id, const char *ip)
{
    return ip && json_object_get(id->registered, ip) != NULL;
}

size_t st_identity_pods(struct st_identity *id)
{
    return json_object_size(id->registered) + json_object_size(id->pods);
}
