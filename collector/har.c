/* har.c - GET /api/v1/export.har: HTTP, HTTP/2 and gRPC exchanges as a HAR 1.2 file,
 * oldest first, for browsers' and proxies' tools. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "collector.h"
#include "kfl.h"

struct har_scan {
    const struct kfl_query *q;
    const struct st_rec **found;
    size_t n, limit;
};

static bool har_visit(const struct st_rec *r, void *arg)
{
    struct har_scan *hs = arg;
    if (r->proto != ST_RP_HTTP && r->proto != ST_RP_HTTP2 && r->proto != ST_RP_GRPC)
        return true;
    if (!(r->flags & ST_REC_HAS_REQUEST))
        return true;
    struct kfl_subject s = {.rec = r};
    bool m = kfl_match(hs->q, &s);
    kfl_subject_done(&s);
    if (m)
        hs->found[hs->n++] = r;
    return hs->n < hs->limit;
}

static json_t *name_values(json_t *map)
{
    json_t *arr = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v)
    {
        if (json_is_string(v))
            json_array_append_new(arr, json_pack("{s:s,s:O}", "name", k, "value", v));
    }
    return arr;
}

static const char *header(json_t *headers, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach(headers, k, v)
    {
        if (strcasecmp(k, name) == 0 && json_is_string(v))
            return json_string_value(v);
    }
    return NULL;
}

static json_int_t int_of(json_t *obj, const char *key, json_int_t def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

static json_t *har_entry(const struct st_rec *r)
{
    json_t *e = st_rec_load(r);
    if (!e)
        return NULL;
    json_t *req = json_object_get(e, "request"), *resp = json_object_get(e, "response");
    json_t *reqh = json_object_get(req, "headers"), *resph = json_object_get(resp, "headers");
    const char *http_version = r->proto == ST_RP_HTTP ? "HTTP/1.1" : "HTTP/2";
    const char *ver = json_string_value(json_object_get(json_object_get(e, "protocol"), "version"));
    char hv[32];
    if (r->proto == ST_RP_HTTP && ver) {
        snprintf(hv, sizeof(hv), "HTTP/%s", ver);
        http_version = hv;
    }

    /* absolute URL: scheme://host + target */
    const char *host = header(reqh, "Host");
    if (!host)
        host = header(reqh, ":authority");
    char hostbuf[80];
    if (!host) {
        const char *ip = st_rec_str(r, ST_RS_DST_IP) ? st_rec_str(r, ST_RS_DST_IP) : "unknown";
        if (r->dst_port != ST_REC_NO_PORT)
            snprintf(hostbuf, sizeof(hostbuf), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, r->dst_port);
        else
            snprintf(hostbuf, sizeof(hostbuf), "%s", ip);
        host = hostbuf;
    }
    const char *target = json_string_value(json_object_get(req, "url"));
    if (!target)
        target = json_string_value(json_object_get(req, "path"));
    if (!target || target[0] != '/')
        target = "/";
    json_t *url = json_sprintf("http://%s%s", host, target);

    time_t secs = (time_t)(r->timestamp / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char started[80];
    snprintf(started, sizeof(started), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(r->timestamp % 1000 + 1000) % 1000);

    json_t *reqbody = json_object_get(req, "body");
    json_t *hreq = json_pack("{s:s,s:o,s:s,s:[],s:o,s:o,s:i,s:I}", "method",
                             st_rec_str(r, ST_RS_METHOD) ? st_rec_str(r, ST_RS_METHOD) : "GET", "url", url,
                             "httpVersion", http_version, "cookies", "headers", name_values(reqh),
                             "queryString", name_values(json_object_get(req, "queryString")),
                             "headersSize", -1, "bodySize", int_of(reqbody, "size", 0));
    json_t *data = json_object_get(reqbody, "data");
    if (json_is_string(data) && json_string_length(data) > 0) {
        const char *ct = header(reqh, "Content-Type");
        json_t *pd = json_pack("{s:s,s:O}", "mimeType", ct ? ct : "application/octet-stream",
                               "text", data);
        const char *enc = json_string_value(json_object_get(reqbody, "encoding"));
        if (enc && strcmp(enc, "base64") == 0)
            json_object_set_new(pd, "comment", json_string("text is base64"));
        json_object_set_new(hreq, "postData", pd);
    }

    json_t *respbody = json_object_get(resp, "body");
    const char *rct = header(resph, "Content-Type");
    json_t *content = json_pack("{s:I,s:s}", "size", int_of(respbody, "size", 0), "mimeType",
                                rct ? rct : "");
    json_t *rdata = json_object_get(respbody, "data");
    if (json_is_string(rdata) && json_string_length(rdata) > 0) {
        json_object_set(content, "text", rdata);
        const char *enc = json_string_value(json_object_get(respbody, "encoding"));
        if (enc && strcmp(enc, "base64") == 0)
            json_object_set_new(content, "encoding", json_string("base64"));
    }
    const char *status_text = json_string_value(json_object_get(resp, "statusText"));
    json_t *hresp = json_pack("{s:I,s:s,s:s,s:[],s:o,s:o,s:s,s:i,s:I}", "status",
                              int_of(resp, "status", 0), "statusText", status_text ? status_text : "",
                              "httpVersion", http_version, "cookies", "headers",
                              name_values(resph), "content", content, "redirectURL",
                              header(resph, "Location") ? header(resph, "Location") : "",
                              "headersSize", -1, "bodySize", resp ? int_of(respbody, "size", 0) : -1);
    double elapsed = (r->flags & ST_REC_HAS_ELAPSED) ? r->elapsed : 0;
    json_t *out = json_pack("{s:s,s:f,s:o,s:o,s:{},s:{s:f,s:f,s:f},s:s}", "startedDateTime", started,
                            "time", elapsed, "request", hreq, "response", hresp, "cache", "timings",
                            "send", 0.0, "wait", elapsed, "receive", 0.0, "_id",
                            json_string_value(json_object_get(e, "id")) ? json_string_value(json_object_get(e, "id")) : "");
    if (out && st_rec_str(r, ST_RS_DST_IP))
        json_object_set_new(out, "serverIPAddress", json_string(st_rec_str(r, ST_RS_DST_IP)));
    if (out && json_object_get(e, "error"))
        json_object_set(out, "comment", json_object_get(json_object_get(e, "error"), "message"));
    json_decref(e);
    return out;
}

json_t *st_har_build(struct st_store *store, const struct kfl_query *q, size_t limit)
{
    struct har_scan hs = {.q = q, .limit = limit};
    hs.found = calloc(limit ? limit : 1, sizeof(*hs.found));
    if (!hs.found)
        return NULL;
    st_store_scan(store, 0, 0, har_visit, &hs);
    json_t *entries = json_array();
    for (size_t i = hs.n; i-- > 0;) {
        json_t *e = har_entry(hs.found[i]);
        if (e)
            json_array_append_new(entries, e);
    }
    free(hs.found);
    return json_pack("{s:{s:s,s:{s:s,s:s},s:[],s:o}}", "log", "version", "1.2", "creator", "name",
                     "sidetap", "version", SIDETAP_VERSION, "pages", "entries", entries);
}
