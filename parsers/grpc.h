/* grpc.h - gRPC on top of the HTTP/2 module (internal to parsers/).
 *
 * http2.c calls these for streams whose request content-type is application/grpc*:
 * the DATA bytes of each direction go through st_grpc_data() (Length-Prefixed-Message
 * reassembly across frames), and st_grpc_finish() turns the finished stream's entry into
 * a gRPC entry (section, status, error, summary). */
#ifndef SIDETAP_GRPC_H
#define SIDETAP_GRPC_H

#include "proto.h"

/* Message framing state of one direction of one call. */
struct st_grpc_msgs {
    uint8_t prefix[5];   /* compressed flag + 4-byte big-endian length */
    uint8_t prefix_len;
    uint64_t left;       /* bytes of the current message still to come */
    bool in_message;
    uint64_t count;      /* messages complete */
    uint64_t bytes;      /* payload bytes of all messages seen */
    uint64_t compressed; /* messages with the compressed flag */
    bool first_seen;     /* the first message started: only it goes to the body */
};

/* True for application/grpc, application/grpc+proto, application/grpc;... */
bool st_grpc_is_content_type(const char *value, size_t len);

/* DATA payload of one direction: counts messages and captures the first one's payload
 * (without its 5-byte prefix) into `body` within the body cap. */
void st_grpc_data(struct st_conn *conn, struct st_entry *entry, struct st_body *body,
                  struct st_grpc_msgs *msgs, const uint8_t *data, size_t len);

/* Completes a gRPC entry: `grpc` section, status from grpc-status (trailers, or a
 * trailers-only response, or synthesized from the HTTP status), `error` for a status
 * other than 0. `rst_code` >= 0 when the stream was reset (RST_STREAM error code);
 * `fallback_error` (may be NULL) when it ended without a status otherwise. */
void st_grpc_finish(struct st_entry *entry, int32_t stream_id, const char *authority,
                    const struct st_grpc_msgs *request, const struct st_grpc_msgs *response,
                    int64_t rst_code, const char *fallback_error);

/* "CANCEL" for 8, ... ("0x1f" for unknown codes, in a static buffer). */
const char *st_h2_error_name(uint32_t code);

#endif
