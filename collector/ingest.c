/* ingest.c - POST /api/v1/entries and /api/v1/register: what proxies send.
 *
 * Work per request is bounded by --max-body and --max-batch. Saturation (--max-rate
 * entries/s, or more than --max-backlog bytes waiting for the disk) answers 503 with
 * Retry-After before parsing, so a flood costs little. A bad entry is rejected alone and
 * reported by index; a bad batch (malformed JSON, wrong shape) is refused whole.
 *
 * A batch is scanned once by jscan.c into a tape (no jansson tree); each entry is
 * validated and indexed where it sits, and its text goes to the store as it came
 * (compacted if it had whitespace, with identity fields spliced into src/dst and any
 * client-sent "merged"/"serverNode"/"id" cut out). The store copies it once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "collector.h"
#include "jscan.h"

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

/* Common checks; returns the body's bytes (contiguous) or NULL after answering. */
static bool saturated(struct evhttp_request *req, struct st_collector *c, size_t incoming);

static const char *read_text(struct evhttp_request *req, struct st_collector *c, const char *what,
                             bool ingest, size_t *lenp)
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
    *lenp = len;
    return (const char *)evbuffer_pullup(in, -1);
}

static json_t *read_body(struct evhttp_request *req, struct st_collector *c, const char *what,
                         bool ingest)
{
    size_t len;
    const char *text = read_text(req, c, what, ingest, &len);
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
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

/* Scratch reused by every batch (one event loop): the batch's tape, and the text and
 * tape of an entry that had to be rewritten. */
static struct {
    struct st_jtape batch, entry, ins_tape;
    struct st_jbuf text, ins[2], ins_doc;
} scratch;

void st_ingest_free(void)
{
    st_jtape_free(&scratch.batch);
    st_jtape_free(&scratch.entry);
    st_jbuf_free(&scratch.text);
    st_jbuf_free(&scratch.ins[0]);
    st_jbuf_free(&scratch.ins[1]);
    st_jtape_free(&scratch.ins_tape);
    st_jbuf_free(&scratch.ins_doc);
}

static bool is_removed(const char *text, const struct st_jtok *key)
{
    /* what only the collector may set: a client's copy is dropped */
    return st_jstr_eq(text, key, "merged", 6) || st_jstr_eq(text, key, "serverNode", 10) ||
           st_jstr_eq(text, key, "id", 2);
}

/* Writes e's text into scratch.text without its whitespace and removed members, with the
 * identity members in scratch.ins spliced into src and dst. */
static int rewrite(const struct st_jentry *e)
{
    const struct st_jtok *t = e->tape->tok;
    struct st_jbuf *b = &scratch.text;
    bool first = true;
    int rc = 0;
    b->len = 0;
    rc |= st_jbuf_put(b, "{", 1);
    /* a member of these names exists iff the pick found one (it keeps the last) */
    bool removals = e->top[ST_JE_MERGED] || e->top[ST_JE_SERVER_NODE] || e->top[ST_JE_ID];
    for (uint32_t k = e->root + 1; k < t[e->root].next; k = t[k + 1].next) {
        if (removals && is_removed(e->text, &t[k]))
            continue;
        rc |= st_jbuf_put(b, first ? "" : ",", first ? 0 : 1);
        rc |= st_jbuf_put(b, e->text + t[k].start, t[k].end - t[k].start);
        rc |= st_jbuf_put(b, ":", 1);
        first = false;
        int side = k + 1 == e->top[ST_JE_SRC] ? 0 : k + 1 == e->top[ST_JE_DST] ? 1 : -1;
        if (side < 0 || !scratch.ins[side].len || t[k + 1].type != ST_J_OBJECT) {
            rc |= st_jbuf_value(b, e->text, e->tape, k + 1);
            continue;
        }
        /* the side without its closing brace, then the new members */
        size_t before = b->len;
        rc |= st_jbuf_value(b, e->text, e->tape, k + 1);
        if (rc < 0)
            return -1;
        b->len--;
        bool empty = b->len == before + 1;
        const struct st_jbuf *ins = &scratch.ins[side];
        rc |= st_jbuf_put(b, ins->data + empty, ins->len - empty);
        rc |= st_jbuf_put(b, "}", 1);
    }
    rc |= st_jbuf_put(b, "}", 1);
    return rc;
}

/* The tokens of the members ins (",\"k\":v,...") spliced at text offset at of
 * scratch.text: scanned alone as {...}, then shifted into place. */
static int splice_ins_tokens(const struct st_jbuf *ins, size_t at, bool with_comma)
{
    struct st_jbuf *d = &scratch.ins_doc;
    struct st_jerr jerr;
    d->len = 0;
    if (st_jbuf_put(d, "{", 1) < 0 || st_jbuf_put(d, ins->data + 1, ins->len - 1) < 0 ||
        st_jbuf_put(d, "}", 1) < 0 || st_jscan(d->data, d->len, &scratch.ins_tape, &jerr) < 0)
        return -1;
    /* d's member text starts at 1; in scratch.text it starts after the comma, if any */
    int64_t delta = (int64_t)at + (with_comma ? 1 : 0) - 1;
    return st_jtape_copy(&scratch.entry, &scratch.ins_tape, 1, scratch.ins_tape.tok[0].next, delta);
}

/* rewrite() for an entry without whitespace: the kept members are copied byte for byte,
 * so their tokens are copied too (shifted) and only the spliced identity members are
 * scanned. Fills scratch.text and scratch.entry. */
static int rewrite_spliced(const struct st_jentry *e, uint32_t new_top[ST_JE_TOP_COUNT])
{
    memset(new_top, 0, ST_JE_TOP_COUNT * sizeof(*new_top));
    const struct st_jtok *t = e->tape->tok;
    struct st_jbuf *b = &scratch.text;
    struct st_jtape *nt = &scratch.entry;
    bool first = true;
    int rc = 0;
    b->len = 0;
    nt->n = 0;
    if (st_jtape_open(nt, ST_J_OBJECT, 0) < 0)
        return -1;
    rc |= st_jbuf_put(b, "{", 1);
    bool removals = e->top[ST_JE_MERGED] || e->top[ST_JE_SERVER_NODE] || e->top[ST_JE_ID];
    for (uint32_t k = e->root + 1; k < t[e->root].next; k = t[k + 1].next) {
        if (removals && is_removed(e->text, &t[k]))
            continue;
        rc |= st_jbuf_put(b, first ? "" : ",", first ? 0 : 1);
        first = false;
        uint32_t v = k + 1;
        int side = v == e->top[ST_JE_SRC] ? 0 : v == e->top[ST_JE_DST] ? 1 : -1;
        bool splice = side >= 0 && scratch.ins[side].len && t[v].type == ST_J_OBJECT;
        /* key, ':' and value are contiguous in the source: one copy */
        size_t at = b->len;
        uint32_t end = splice ? t[v].end - 1 : t[v].end;
        rc |= st_jbuf_put(b, e->text + t[k].start, end - t[k].start);
        if (rc < 0)
            return -1;
        uint32_t side_tok = nt->n + 1;
        for (int f = 0; f < ST_JE_TOP_COUNT; f++)
            if (e->top[f] == v)
                new_top[f] = side_tok;
        if (st_jtape_copy(nt, e->tape, k, t[v].next, (int64_t)at - t[k].start) < 0)
            return -1;
        if (!splice)
            continue;
        const struct st_jbuf *ins = &scratch.ins[side];
        bool empty = t[v].next == v + 1;
        size_t ins_at = b->len;
        rc |= st_jbuf_put(b, ins->data + empty, ins->len - empty);
        if (rc < 0 || splice_ins_tokens(ins, ins_at, !empty) < 0)
            return -1;
        rc |= st_jbuf_put(b, "}", 1);
        nt->tok[side_tok].end = (uint32_t)b->len;
        nt->tok[side_tok].next = nt->n;
    }
    rc |= st_jbuf_put(b, "}", 1);
    nt->tok[0].end = (uint32_t)b->len;
    nt->tok[0].next = nt->n;
    return rc;
}

#ifndef __OPTIMIZE__
/* Debug builds (the test suite) check every spliced tape against a fresh scan, and the
 * moved fields against a fresh pick. */
static void check_spliced(const struct st_jentry *moved)
{
    struct st_jtape fresh = {0};
    struct st_jerr jerr;
    struct st_jentry picked;
    bool same = st_jscan(scratch.text.data, scratch.text.len, &fresh, &jerr) == 0 &&
                fresh.n == scratch.entry.n &&
                memcmp(fresh.tok, scratch.entry.tok, fresh.n * sizeof(*fresh.tok)) == 0;
    if (same) {
        st_jentry_pick(&picked, scratch.text.data, &scratch.entry, 0);
        same = memcmp(&picked, moved, sizeof(picked)) == 0;
    }
    if (!same) {
        fprintf(stderr, "ingest: spliced tape differs from a scan of %.*s\n", (int)scratch.text.len,
                scratch.text.data);
        abort();
    }
    st_jtape_free(&fresh);
}
#endif

/* Validates entry i of the batch, prepares its text and hands it on. Returns -1 with err
 * filled when the entry is rejected. */
static int ingest_one(struct st_collector *c, const char *text, uint32_t tok, size_t i, char *err,
                      size_t errlen)
{
    struct st_jentry e;
    st_jentry_pick(&e, text, &scratch.batch, tok);
    if (st_validate_jentry(&e, i, err, errlen) < 0)
        return -1;
    scratch.ins[0].len = scratch.ins[1].len = 0;
    if (st_identity_fill_text(c->identity, &e, 0, &scratch.ins[0]) < 0 ||
        st_identity_fill_text(c->identity, &e, 1, &scratch.ins[1]) < 0) {
        snprintf(err, errlen, "entries[%zu]: out of memory", i);
        return -1;
    }
    if (scratch.ins[0].len || scratch.ins[1].len || e.top[ST_JE_MERGED] ||
        e.top[ST_JE_SERVER_NODE] || e.top[ST_JE_ID] ||
        (scratch.batch.tok[tok].flags & ST_JF_WS)) {
        struct st_jerr jerr;
        bool ws = scratch.batch.tok[tok].flags & ST_JF_WS;
        uint32_t new_top[ST_JE_TOP_COUNT];
        int rc = ws ? rewrite(&e) | st_jscan(scratch.text.data, scratch.text.len, &scratch.entry, &jerr)
                    : rewrite_spliced(&e, new_top);
        if (rc < 0) {
            snprintf(err, errlen, "entries[%zu]: out of memory", i);
            return -1;
        }
        if (ws) {
            st_jentry_pick(&e, scratch.text.data, &scratch.entry, 0);
        } else {
            /* the fields moved with their members: no second pick */
            struct st_jentry moved;
            const bool repick[2] = {scratch.ins[0].len > 0, scratch.ins[1].len > 0};
            st_jentry_moved(&moved, &e, scratch.text.data, &scratch.entry, new_top, repick);
#ifndef __OPTIMIZE__
            check_spliced(&moved);
#endif
            e = moved;
        }
    }
    st_dedup_offer(c->dedup, &e);
    return 0;
}

static void batch_error(struct evhttp_request *req, struct st_collector *c, int status,
                        const char *msg)
{
    c->n.batches_rejected++;
    st_api_error(req, status, "%s", msg);
}

void st_ingest_entries(struct evhttp_request *req, struct st_collector *c)
{
    size_t len;
    const char *text = read_text(req, c, "/api/v1/entries", true, &len);
    if (!text)
        return;
    struct st_jerr jerr;
    if (st_jscan(text, len, &scratch.batch, &jerr) < 0) {
        c->n.batches_rejected++;
        st_api_error(req, 400, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                     jerr.text);
        return;
    }
    const struct st_jtok *t = scratch.batch.tok;
    uint32_t entries = st_jget(text, &scratch.batch, 0, "entries");
    if (t[0].type != ST_J_OBJECT || !entries || t[entries].type != ST_J_ARRAY) {
        batch_error(req, c, 400,
                    t[0].type == ST_J_OBJECT ? "entries: expected an object {\"entries\": [...]}"
                                             : "body: expected an object {\"entries\": [...]}");
        return;
    }
    size_t n = 0;
    for (uint32_t k = entries + 1; k < t[entries].next; k = t[k].next)
        n++;
    if (n > c->cfg.max_batch) {
        c->n.batches_rejected++;
        st_api_error(req, 413, "batch of %zu entries exceeds the limit of %zu (--max-batch)", n,
                     c->cfg.max_batch);
        return;
    }
    if (saturated(req, c, n))
        return;
    json_t *rejected = json_array();
    size_t accepted = 0, i = 0;
    for (uint32_t k = entries + 1; k < t[entries].next; k = t[k].next, i++) {
        char err[300];
        if (ingest_one(c, text, k, i, err, sizeof(err)) < 0) {
            json_array_append_new(rejected, json_pack("{s:I,s:s}", "index", (json_int_t)i, "error", err));
            c->n.entries_rejected++;
            continue;
        }
        accepted++;
    }
    c->n.batches++;
    c->n.entries_received += accepted;
    c->rate_window_accepted += accepted;
    st_api_json(req, 200, json_pack("{s:I,s:o}", "accepted", (json_int_t)accepted, "rejected", rejected));
    /* a huge batch must not pin its tape forever */
    if (scratch.batch.cap > (1u << 20)) {
        st_jtape_free(&scratch.batch);
        st_jbuf_free(&scratch.text);
    }
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
