/* ingest.c - POST /api/v1/entries and /api/v1/register: what proxies send.
 *
 * Work per request is bounded by --max-body and --max-batch. Saturation (--max-rate
 * entries/s, or more than --max-backlog bytes waiting for the disk) answers 503 with
 * Retry-After before parsing, so a flood costs little. A bad entry is rejected alone and
 * reported by index; a bad batch (malformed JSON, wrong shape) is refused whole. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "collector.h"

/* Constant-time comparison of the bearer token. */
static bool authorized(struct evhttp_request *req, struct st_collector *c)
{
    if (!c->cfg.token)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *got = h + 7;
    while (*got == ' ')
        got++;
    size_t gl = strlen(got), tl = strlen(c->cfg.token);
    unsigned diff = gl != tl;
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned)(unsigned char)c->cfg.token[i] ^ (unsigned char)(i < gl ? got[i] : 0);
    return diff == 0;
}

/* Common checks; returns the parsed body or NULL after answering. */
static bool saturated(struct evhttp_request *req, struct st_collector *c, size_t incoming);

static json_t *read_body(struct evhttp_request *req, struct st_collector *c, const char *what,
                         bool ingest)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        st_api_error(req, 405, "%s takes POST", what);
        return NULL;
    }
    if (!authorized(req, c)) {
        c->n.unauthorized++;
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"sidetap\"");
        st_api_error(req, 401, "missing or wrong bearer token (Authorization: Bearer <token>)");
        return NULL;
    }
    if (ingest && saturated(req, c, 0))
        return NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > c->cfg.max_body) {
        c->n.batches_rejected++;
        st_api_error(req, 413, "request body of %zu bytes exceeds the limit of %zu bytes (--max-body)",
                     len, c->cfg.max_body);
        return NULL;
    }
    if (len == 0) {
        c->n.batches_rejected++;
        st_api_error(req, 400, "empty body: expected a JSON object");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
    if (!doc) {
        c->n.batches_rejected++;
        st_api_error(req, 400, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                     jerr.text);
        return NULL;
    }
    return doc;
}

static bool saturated(struct evhttp_request *req, struct st_collector *c, size_t incoming)
{
    const char *why = NULL;
    if (c->cfg.max_rate && c->rate_window_accepted + incoming > c->cfg.max_rate)
        why = "ingest rate limit reached (--max-rate)";
    else if (st_store_backlog(c->store) > c->cfg.max_backlog)
        why = "storage is behind (disk writes pending)";
    if (!why)
        return false;
    c->n.saturated++;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    st_api_error(req, 503, "collector saturated: %s; retry later", why);
    return true;
}

void st_ingest_entries(struct evhttp_request *req, struct st_collector *c)
{
    json_t *doc = read_body(req, c, "/api/v1/entries", true);
    if (!doc)
        return;
    json_t *entries = json_object_get(doc, "entries");
    if (!json_is_object(doc) || !json_is_array(entries)) {
        c->n.batches_rejected++;
        st_api_error(req, 400, "%s: expected an object {\"entries\": [...]}",
                     json_is_object(doc) ? "entries" : "body");
        json_decref(doc);
        return;
    }
    size_t n = json_array_size(entries);
    if (n > c->cfg.max_batch) {
        c->n.batches_rejected++;
        st_api_error(req, 413, "batch of %zu entries exceeds the limit of %zu (--max-batch)", n,
                     c->cfg.max_batch);
        json_decref(doc);
        return;
    }
    if (saturated(req, c, n)) {
        json_decref(doc);
        return;
    }
    json_t *rejected = json_array();
    size_t accepted = 0, i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        char prefix[32], err[300];
        snprintf(prefix, sizeof(prefix), "entries[%zu]", i);
        if (st_validate_entry(e, prefix, err, sizeof(err)) < 0) {
            json_array_append_new(rejected, json_pack("{s:I,s:s}", "index", (json_int_t)i, "error", err));
            c->n.entries_rejected++;
            continue;
        }
        json_object_del(e, "merged");
        json_object_del(e, "serverNode");
        st_identity_fill(c->identity, e);
        st_dedup_offer(c->dedup, json_incref(e));
        accepted++;
    }
    c->n.batches++;
    c->n.entries_received += accepted;
    c->rate_window_accepted += accepted;
    json_decref(doc);
    st_api_json(req, 200, json_pack("{s:I,s:o}", "accepted", (json_int_t)accepted, "rejected", rejected));
}

void st_ingest_register(struct evhttp_request *req, struct st_collector *c)
{
    json_t *doc = read_body(req, c, "/api/v1/register", false);
    if (!doc)
        return;
    char err[300];
    if (st_validate_pod(json_object_get(doc, "pod"), err, sizeof(err)) < 0) {
        c->n.batches_rejected++;
        st_api_error(req, 400, "%s", err);
        json_decref(doc);
        return;
    }
    if (st_identity_register(c->identity, json_object_get(doc, "pod")) < 0) {
        json_decref(doc);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "60");
        st_api_error(req, 503, "too many registered pods");
        return;
    }
    c->n.registrations++;
    json_decref(doc);
    st_api_json(req, 200, json_pack("{s:b}", "ok", 1));
}
