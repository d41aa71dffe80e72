/* admin.h - the admin HTTP port: /healthz, /readyz, /metrics (Prometheus text).
 *
 * /healthz answers 200 while the event loop runs; /readyz 200 once every listener is up
 * and 503 while draining; /metrics renders metrics.c plus gauges sampled from the other
 * modules. */
#ifndef SIDETAP_PROXY_ADMIN_H
#define SIDETAP_PROXY_ADMIN_H

#include "proxy.h"

struct st_admin;

/* NULL after printing why (port in use). */
struct st_admin *st_admin_new(struct st_proxy *px);
void st_admin_free(struct st_admin *admin);

#endif
