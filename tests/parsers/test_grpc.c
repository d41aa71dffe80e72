/* gRPC tests: etcdctl against etcd (tests/captures/grpc/record-grpc.sh), then hand-made
 * calls for message framing across DATA frames, compression, status mapping. */
#include "h2_frames.h"
#include "replay_check.h"

#define E(arr, i) json_array_get(arr, i)
#define C2S ST_DIR_TO_SERVER
#define S2C ST_DIR_TO_CLIENT

/* The one call of an etcdctl capture, after the common checks. */
static json_t *one_call(const char *cap, const char *path, const char *service, const char *method)
{
    json_t *a = replay_checked(cap, NULL);
    if (a == NULL) return NULL;
    CHECK_INT(json_array_size(a), 1);
    json_t *e = E(a, 0);
    CHECK_STR(JSTR(e, "protocol", "name"), "grpc");
    CHECK_STR(JSTR(e, "protocol", "abbr"), "gRPC");
    CHECK_STR(JSTR(e, "summary"), path);
    CHECK_STR(JSTR(e, "request", "method"), "POST");
    CHECK_STR(JSTR(e, "request", "path"), path);
    CHECK_STR(JSTR(e, "grpc", "service"), service);
    CHECK_STR(JSTR(e, "grpc", "method"), method);
    CHECK_STR(JSTR(e, "request", "headers", "content-type"), "application/grpc");
    CHECK_STR(JSTR(e, "request", "headers", "te"), "trailers");
    CHECK_INT(JINT(e, "response", "status"), 200);
    CHECK_INT(JINT(e, "grpc", "streamId"), 1);
    json_incref(e);
    json_decref(a);
    return e;
}

static void test_etcd(void)
{
    json_t *e = one_call("grpc/put.cap", "/etcdserverpb.KV/Put", "etcdserverpb.KV", "Put");
    if (e) {
        CHECK_INT(JINT(e, "grpc", "status"), 0);
        CHECK_STR(JSTR(e, "grpc", "statusName"), "OK");
        CHECK(jget(e, "error", NULL) == NULL);
        CHECK_INT(JINT(e, "grpc", "requestMessages"), 1);
        CHECK_INT(JINT(e, "grpc", "responseMessages"), 1);
        /* PutRequest{key: "/sidetap/greeting", value: "hello from etcdctl"}: 2+17+2+18 bytes */
        CHECK_INT(JINT(e, "grpc", "requestBytes"), 39);
        CHECK_INT(JINT(e, "request", "body", "size"), 39);
        CHECK_STR(JSTR(e, "request", "body", "encoding"), "base64");
        CHECK_STR(JSTR(e, "request", "body", "data"), "ChEvc2lkZXRhcC9ncmVldGluZxISaGVsbG8gZnJvbSBldGNkY3Rs");
        CHECK_STR(JSTR(e, "response", "headers", "grpc-status"), "0"); /* trailers merged */
        json_decref(e);
    }
    e = one_call("grpc/get.cap", "/etcdserverpb.KV/Range", "etcdserverpb.KV", "Range");
    if (e) {
        CHECK_INT(JINT(e, "grpc", "status"), 0);
        CHECK_INT(JINT(e, "grpc", "responseMessages"), 1);
        CHECK_INT(JINT(e, "grpc", "responseBytes"), 75);
        json_decref(e);
    }
    /* The watch stream: one request, the created event and two puts; still open when
     * etcdctl was stopped. */
    e = one_call("grpc/watch.cap", "/etcdserverpb.Watch/Watch", "etcdserverpb.Watch", "Watch");
    if (e) {
        CHECK_INT(JINT(e, "grpc", "requestMessages"), 1);
        CHECK_INT(JINT(e, "grpc", "responseMessages"), 3);
        CHECK(jget(e, "grpc", "status", NULL) == NULL);
        CHECK_STR(JSTR(e, "error", "message"), "connection closed before the end of the stream");
        json_decref(e);
    }
    /* keep-alive --once: one round trip, then the client cancels the stream. */
    e = one_call("grpc/lease-keepalive.cap", "/etcdserverpb.Lease/LeaseKeepAlive",
                 "etcdserverpb.Lease", "LeaseKeepAlive");
    if (e) {
        CHECK_INT(JINT(e, "grpc", "requestMessages"), 1);
        CHECK_INT(JINT(e, "grpc", "responseMessages"), 1);
        CHECK_INT(JINT(e, "grpc", "status"), 1);
        CHECK_STR(JSTR(e, "error", "message"), "grpc status 1 CANCELLED: stream reset: CANCEL");
        json_decref(e);
    }
    /* Trailers-only NOT_FOUND. */
    e = one_call("grpc/not-found.cap", "/etcdserverpb.Lease/LeaseRevoke", "etcdserverpb.Lease",
                 "LeaseRevoke");
    if (e) {
        CHECK_INT(JINT(e, "grpc", "status"), 5);
        CHECK_STR(JSTR(e, "grpc", "statusName"), "NOT_FOUND");
        CHECK_STR(JSTR(e, "grpc", "message"), "etcdserver: requested lease not found");
        CHECK_STR(JSTR(e, "error", "message"),
                  "grpc status 5 NOT_FOUND: etcdserver: requested lease not found");
        CHECK_INT(JINT(e, "grpc", "responseMessages"), 0);
        json_decref(e);
    }
}

static const char *const call[] = {
    ":method", "POST", ":scheme", "http", ":path", "/pkg.Greeter/SayHello", ":authority", "greeter:50051",
    "content-type", "application/grpc+proto", "te", "trailers", "grpc-encoding", "gzip",
    "authorization", "Bearer t0ken", NULL};

static void test_framing(void)
{
    nghttp2_hd_deflater *cd, *sd;
    nghttp2_hd_deflate_new(&cd, 4096);
    nghttp2_hd_deflate_new(&sd, 4096);
    struct h2buf c = {0}, s = {0};
    h2b_put(&c, H2_PREFACE, 24);
    h2b_frame(&c, 4, 0, 0, NULL, 0);
    h2b_headers(&c, cd, 0, 1, call);
    /* Two messages (5 + 3 payload bytes), the first compressed, cut at odd places across
     * three DATA frames; an empty DATA frame carries END_STREAM. */
    h2b_frame(&c, 0, 0, 1, "\x01\x00\x00", 3);
    h2b_frame(&c, 0, 0, 1, "\x00\x05hel", 5);
    h2b_frame(&c, 0, 0, 1, "lo\x00\x00\x00\x00\x03" "abc", 10);
    h2b_frame(&c, 0, 1, 1, NULL, 0);
    static const char *const resp[] = {":status", "200", "content-type", "application/grpc", NULL};
    static const char *const trailers[] = {"grpc-status", "3", "grpc-message", "bad%20name%3A %E2%9C%93", NULL};
    h2b_headers(&s, sd, 0, 1, resp);
    h2b_frame(&s, 0, 0, 1, "\x00\x00\x00\x00\x02ok", 7);
    h2b_headers(&s, sd, 1, 1, trailers);
    /* A second call answered with HTTP 503 and no grpc-status, a third refused. */
    static const char *const call2[] = {":method", "POST", ":scheme", "http", ":path", "/pkg.Greeter/Other",
                                        ":authority", "greeter:50051", "content-type", "application/grpc", NULL};
    h2b_headers(&c, cd, 1, 3, call2);
    h2b_headers(&c, cd, 1, 5, call2);
    static const char *const unavailable[] = {":status", "503", "content-type", "text/plain", NULL};
    h2b_headers(&s, sd, 1, 3, unavailable);
    h2b_frame(&s, 3, 0, 5, "\x00\x00\x00\x07", 4); /* REFUSED_STREAM */

    struct feed_step st[] = {{C2S, c.p, c.len}, {S2C, s.p, s.len}};
    json_t *a = run_steps(st, 2, NULL, 50051);
    CHECK_INT(json_array_size(a), 3);
    json_t *e = E(a, 0);
    CHECK_STR(JSTR(e, "summary"), "/pkg.Greeter/SayHello");
    CHECK_STR(JSTR(e, "grpc", "service"), "pkg.Greeter");
    CHECK_STR(JSTR(e, "grpc", "method"), "SayHello");
    CHECK_INT(JINT(e, "grpc", "requestMessages"), 2);
    CHECK_INT(JINT(e, "grpc", "requestBytes"), 8);
    CHECK_INT(JINT(e, "grpc", "requestCompressed"), 1);
    CHECK_STR(JSTR(e, "grpc", "encoding"), "gzip");
    CHECK_STR(JSTR(e, "request", "body", "data"), "hello"); /* the first message only */
    CHECK_INT(JINT(e, "request", "body", "size"), 5);
    CHECK_STR(JSTR(e, "request", "headers", "authorization"), "[REDACTED]");
    CHECK_INT(JINT(e, "grpc", "responseMessages"), 1);
    CHECK_STR(JSTR(e, "response", "body", "data"), "ok");
    CHECK_INT(JINT(e, "grpc", "status"), 3);
    CHECK_STR(JSTR(e, "grpc", "message"), "bad name: \xe2\x9c\x93");
    CHECK_STR(JSTR(e, "error", "message"), "grpc status 3 INVALID_ARGUMENT: bad name: \xe2\x9c\x93");
    CHECK_INT(JINT(E(a, 1), "grpc", "streamId"), 3);
    CHECK_INT(JINT(E(a, 1), "grpc", "status"), 14);
    CHECK_STR(JSTR(E(a, 1), "error", "message"), "grpc status 14 UNAVAILABLE: HTTP status 503");
    CHECK_INT(JINT(E(a, 2), "grpc", "streamId"), 5);
    CHECK_STR(JSTR(E(a, 2), "error", "message"), "grpc status 14 UNAVAILABLE: stream reset: REFUSED_STREAM");
    json_decref(a);
    free(c.p);
    free(s.p);
    nghttp2_hd_deflate_del(cd);
    nghttp2_hd_deflate_del(sd);
}

int main(int argc, char **argv)
{
    maybe_dump(argc, argv);
    test_etcd();
    test_framing();
    return CHECK_DONE();
}
