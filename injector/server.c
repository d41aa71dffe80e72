/* server.c - placeholder until the TLS server lands. */
#include "server.h"

#include <stdio.h>

int st_server_run(const struct st_injector_config *cfg)
{
    (void)cfg;
    fprintf(stderr, "sidetap-injector: server not built yet\n");
    return 1;
}
