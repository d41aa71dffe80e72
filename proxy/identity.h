/* identity.h - who this pod is, from the environment the injector sets.
 *
 * POD_NAME, POD_NAMESPACE, POD_IP (POD_IPS, comma list, for dual stack), NODE_NAME,
 * SERVICE_ACCOUNT, SIDETAP_WORKLOAD, and labels from SIDETAP_LABELS ("k=v,k2=v2") or
 * SIDETAP_LABELS_FILE (downward API format: lines `key="value"`). Every entry is stamped
 * with it, and the collector learns it from the registration body. */
#ifndef SIDETAP_PROXY_IDENTITY_H
#define SIDETAP_PROXY_IDENTITY_H

#include <jansson.h>

#include "entry_json.h"

struct st_pod {
    struct st_identity id; /* name, namespace, node, workload, serviceAccount, labels */
    const char *ip;        /* POD_IP, NULL if unset */
    json_t *ips;           /* array of strings: POD_IPS or [POD_IP] */
    json_t *labels;        /* object; id.labels borrows it */
};

/* Reads the environment. Returns 0, or -1 after printing an error naming the variable
 * (an unreadable SIDETAP_LABELS_FILE, a label without '='). */
int st_pod_load(struct st_pod *pod);
void st_pod_free(struct st_pod *pod);

/* {"pod": {...}} for POST /api/v1/register; the caller owns the reference. */
json_t *st_pod_register_json(const struct st_pod *pod);

#endif
