/* server.h - the HTTPS webhook server: POST /mutate, /healthz, /metrics. */
#ifndef SIDETAP_INJECTOR_SERVER_H
#define SIDETAP_INJECTOR_SERVER_H

#include "config.h"

/* Runs until SIGTERM/SIGINT. Returns the process exit code. */
int st_server_run(const struct st_injector_config *cfg);

#endif
