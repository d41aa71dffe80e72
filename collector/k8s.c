/* k8s.c - placeholder until the Kubernetes watch lands. */
#include <stdio.h>

#include "collector.h"

struct st_k8s *st_k8s_new(struct st_collector *c, char *err, size_t errlen)
{
    (void)c;
    snprintf(err, errlen, "the Kubernetes API client is not built yet (use --no-k8s)");
    return NULL;
}

void st_k8s_free(struct st_k8s *k)
{
    (void)k;
}

bool st_k8s_synced(struct st_k8s *k)
{
    (void)k;
    return true;
}
