/* relay.h - one relayed TCP connection: client socket <-> upstream socket.
 *
 * Bytes read are sent to the peer at once (recv into a shared scratch buffer, send),
 * then fed to the connection's parser; only what the peer's socket does not take is kept,
 * and the source is not read again until it is written (backpressure: at most one read,
 * SIDETAP_BUFFER_SIZE, held per direction). A FIN is passed on with shutdown(SHUT_WR) once the peer's output drained
 * while the other direction keeps flowing; a reset (or a refused/timed out upstream
 * connect) reaches the other side as a reset (SO_LINGER {1,0}). */
#ifndef SIDETAP_PROXY_RELAY_H
#define SIDETAP_PROXY_RELAY_H

#include <sys/socket.h>

#include "metrics.h"
#include "proxy.h"

/* The set of open relays of a process (drain, abort, detect timer). */
struct st_relays *st_relays_new(struct st_proxy *px);
/* Resets every open relay, then frees the set. */
void st_relays_free(struct st_relays *relays);

/* Starts relaying accepted socket `fd` (from `peer`) to `dst`. Takes ownership of fd
 * (closed with a reset when the upstream cannot even be started). */
void st_relay_start(struct st_proxy *px, enum st_dirn kind, int fd, const struct sockaddr_storage *peer,
                    const struct sockaddr_storage *dst);

unsigned st_relays_open(const struct st_relays *relays);
/* Ends every open relay with a reset (drain deadline). */
void st_relays_abort_all(struct st_relays *relays);

/* Closes `fd` so that the peer sees a reset. */
void st_close_reset(int fd);

#endif
