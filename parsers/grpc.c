/* grpc.c - gRPC calls seen through the HTTP/2 module (grpc.h).
 *
 * Source of the rules: grpc/grpc doc/PROTOCOL-HTTP2.md (message framing, status in
 * trailers or Trailers-Only, RST_STREAM mapping) and doc/http-grpc-status-mapping.md
 * (status for non-200 HTTP responses). */
#include "grpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "entry_json.h"

static const char *const status_names[] = {
    "OK",          "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND",   "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",    "INTERNAL",
    "UNAVAILABLE", "DATA_LOSS",         "UNAUTHENTICATED",
};

static const char *status_name(int64_t status)
{
    return status >= 0 && status <= 16 ? status_names[status] : "UNKNOWN";
}

const char *st_h2_error_name(uint32_t code)
{
    static const char *const names[] = {
        "NO_ERROR",        "PROTOCOL_ERROR", "INTERNAL_ERROR",    "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR",  "REFUSED_STREAM",
        "CANCEL",          "COMPRESSION_ERROR", "CONNECT_ERROR",  "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
    };
    static char other[16];
    if (code < sizeof(names) / sizeof(names[0])) return names[code];
    snprintf(other, sizeof(other), "0x%x", code);
    return other;
}

bool st_grpc_is_content_type(const char *v, size_t n)
{
    static const char ct[] = "application/grpc";
    size_t l = sizeof(ct) - 1;
    if (n < l || strncasecmp(v, ct, l) != 0) return false;
    return n == l || v[l] == '+' || v[l] == ';';
}

void st_grpc_data(struct st_conn *conn, struct st_entry *e, struct st_body *body,
                  struct st_grpc_msgs *m, const uint8_t *data, size_t len)
{
    while (len > 0) {
        if (!m->in_message) {
            size_t take = 5 - m->prefix_len;
            if (take > len) take = len;
            memcpy(m->prefix + m->prefix_len, data, take);
            m->prefix_len += (uint8_t)take;
            data += take, len -= take;
            if (m->prefix_len < 5) return;
            m->prefix_len = 0;
            m->left = (uint64_t)m->prefix[1] << 24 | (uint64_t)m->prefix[2] << 16 |
                      (uint64_t)m->prefix[3] << 8 | m->prefix[4];
            if (m->prefix[0] & 1) m->compressed++;
            m->first_seen = true;
            m->in_message = true;
            if (m->left == 0) {
                m->in_message = false;
                m->count++;
            }
            continue;
        }
        size_t take = len < m->left ? len : (size_t)m->left;
        if (m->count == 0) st_body_append(conn, e, body, data, take);
        m->bytes += take;
        m->left -= take;
        data += take, len -= take;
        if (m->left == 0) {
            m->in_message = false;
            m->count++;
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* grpc-message is percent-encoded UTF-8 (PROTOCOL-HTTP2.md); undo it. */
static char *percent_decode(struct st_entry *e, const char *s, size_t n)
{
    char *out = st_arena_alloc(&e->arena, n + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void set_json(json_t *o, const char *k, json_t *v)
{
    if (v != NULL) json_object_set_new_nocheck(o, k, v);
}

/* HTTP status -> gRPC status, for responses that carry no grpc-status. */
static int64_t status_from_http(int http)
{
    switch (http) {
    case 400: return 13; /* INTERNAL */
    case 401: return 16; /* UNAUTHENTICATED */
    case 403: return 7;  /* PERMISSION_DENIED */
    case 404: return 12; /* UNIMPLEMENTED */
    case 429:
    case 502:
    case 503:
    case 504: return 14; /* UNAVAILABLE */
    default: return 2;   /* UNKNOWN */
    }
}

/* RST_STREAM error code -> gRPC status (PROTOCOL-HTTP2.md, "Errors"). */
static int64_t status_from_rst(uint32_t code)
{
    switch (code) {
    case 7: return 14;  /* REFUSED_STREAM -> UNAVAILABLE */
    case 8: return 1;   /* CANCEL -> CANCELLED */
    case 11: return 8;  /* ENHANCE_YOUR_CALM -> RESOURCE_EXHAUSTED */
    case 12: return 7;  /* INADEQUATE_SECURITY -> PERMISSION_DENIED */
    default: return 13; /* INTERNAL */
    }
}

void st_grpc_finish(struct st_entry *e, int32_t stream_id, const char *authority,
                    const struct st_grpc_msgs *req, const struct st_grpc_msgs *resp,
                    int64_t rst_code, const char *fallback_error)
{
    e->proto = ST_PROTO_GRPC;
    json_t *sec = json_object();
    if (sec == NULL) return;
    json_decref(e->section);
    e->section = sec;
    e->section_name = NULL;

    /* :path is /package.Service/Method */
    const char *path = e->request.path ? e->request.path : "";
    const char *slash = path[0] == '/' ? strrchr(path + 1, '/') : NULL;
    if (slash != NULL) {
        set_json(sec, "service", st_json_bytes_string(path + 1, (size_t)(slash - path - 1)));
        set_json(sec, "method", st_json_bytes_string(slash + 1, strlen(slash + 1)));
    }
    set_json(sec, "streamId", json_integer(stream_id));
    if (authority) set_json(sec, "authority", st_json_bytes_string(authority, strlen(authority)));
    set_json(sec, "requestMessages", json_integer((json_int_t)req->count));
    set_json(sec, "requestBytes", json_integer((json_int_t)req->bytes));
    set_json(sec, "responseMessages", json_integer((json_int_t)resp->count));
    set_json(sec, "responseBytes", json_integer((json_int_t)resp->bytes));
    if (req->compressed) set_json(sec, "requestCompressed", json_integer((json_int_t)req->compressed));
    if (resp->compressed) set_json(sec, "responseCompressed", json_integer((json_int_t)resp->compressed));
    const struct st_kv *enc = st_kv_list_find(&e->request.headers, "grpc-encoding");
    if (enc) set_json(sec, "encoding", st_json_bytes_string(enc->value, enc->value_len));

    int64_t status = -1;
    const char *message = NULL;
    const struct st_kv *st = e->response.present ? st_kv_list_find(&e->response.headers, "grpc-status") : NULL;
    if (st != NULL) {
        char *end;
        char tmp[16];
        size_t n = st->value_len < sizeof(tmp) - 1 ? st->value_len : sizeof(tmp) - 1;
        memcpy(tmp, st->value, n);
        tmp[n] = '\0';
        long v = strtol(tmp, &end, 10);
        status = end != tmp && *end == '\0' && v >= 0 ? v : 2; /* unparsable: UNKNOWN */
        const struct st_kv *msg = st_kv_list_find(&e->response.headers, "grpc-message");
        if (msg) message = percent_decode(e, msg->value, msg->value_len);
    } else if (rst_code >= 0) {
        status = status_from_rst((uint32_t)rst_code);
        message = st_arena_printf(&e->arena, "stream reset: %s", st_h2_error_name((uint32_t)rst_code));
    } else if (e->response.present && e->response.status != 0 && e->response.status != 200) {
        status = status_from_http(e->response.status);
        message = st_arena_printf(&e->arena, "HTTP status %d", e->response.status);
    } else if (e->response.present && fallback_error == NULL) {
        status = 13; /* a response that ended without grpc-status */
        message = "response ended without grpc-status";
    }
    if (status >= 0) {
        set_json(sec, "status", json_integer(status));
        set_json(sec, "statusName", json_string_nocheck(status_name(status)));
        if (message && *message) set_json(sec, "message", st_json_bytes_string(message, strlen(message)));
        if (status != 0) {
            if (message && *message)
                st_entry_set_error(e, "grpc status %lld %s: %s", (long long)status, status_name(status), message);
            else
                st_entry_set_error(e, "grpc status %lld %s", (long long)status, status_name(status));
        }
    }
    if (status < 0 && fallback_error) st_entry_set_error(e, "%s", fallback_error);
    st_entry_set_summary(e, "%s", path);
}
