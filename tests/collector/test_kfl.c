/* test_kfl.c - KFL over the fixture data set (fixtures/entries.json, entry i has id i):
 * every construct, the six queries users type most, and syntax errors with positions.
 * Each query is evaluated twice, from the index record and from the JSON alone, and both
 * must give the same exact id set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kfl.h"
#include "record.h"

#define MAX_ENTRIES 64

static struct st_rec *recs[MAX_ENTRIES];
static json_t *jsons[MAX_ENTRIES];
static int nentries;

static void load(const char *path)
{
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    if (!root) {
        fprintf(stderr, "%s:%d: %s\n", path, e.line, e.text);
        exit(2);
    }
    json_t *arr = json_object_get(root, "entries"), *it;
    size_t i;
    json_array_foreach(arr, i, it)
    {
        char id[32];
        snprintf(id, sizeof(id), "%zu", i + 1);
        json_object_set_new(it, "id", json_string(id));
        recs[nentries] = st_rec_new(it, i + 1);
        jsons[nentries] = json_incref(it);
        nentries++;
    }
    json_decref(root);
}

/* ids that match, as "1,2,3" */
static void run(const char *q, bool from_rec, char *out, size_t size)
{
    struct kfl_error err;
    struct kfl_query *kq = kfl_compile(q, &err);
    out[0] = '\0';
    if (!kq) {
        snprintf(out, size, "ERROR %s", err.message);
        return;
    }
    size_t off = 0;
    for (int i = 0; i < nentries; i++) {
        struct kfl_subject s = {.rec = from_rec ? recs[i] : NULL, .json = from_rec ? NULL : jsons[i]};
        if (kfl_match(kq, &s))
            off += (size_t)snprintf(out + off, size - off, "%s%d", off ? "," : "", i + 1);
        kfl_subject_done(&s);
    }
    kfl_free(kq);
}

static void expect(const char *q, const char *want, int line)
{
    char a[512], b[512];
    run(q, true, a, sizeof(a));
    run(q, false, b, sizeof(b));
    if (strcmp(a, want) != 0) {
        fprintf(stderr, "line %d: [%s] from the record matched {%s}, want {%s}\n", line, q, a, want);
        check_failures++;
    }
    if (strcmp(b, want) != 0) {
        fprintf(stderr, "line %d: [%s] from JSON matched {%s}, want {%s}\n", line, q, b, want);
        check_failures++;
    }
}
#define EXPECT(q, want) expect(q, want, __LINE__)

static void expect_error(const char *q, int pos, int len, const char *msg_part, int line)
{
    struct kfl_error err;
    struct kfl_query *kq = kfl_compile(q, &err);
    if (kq) {
        fprintf(stderr, "line %d: [%s] compiled, want an error\n", line, q);
        check_failures++;
        kfl_free(kq);
        return;
    }
    if (err.position != pos || (len && err.length != len) || !strstr(err.message, msg_part)) {
        fprintf(stderr, "line %d: [%s] error \"%s\" at %d len %d, want \"%s\" at %d len %d\n", line,
                q, err.message, err.position, err.length, msg_part, pos, len);
        check_failures++;
    }
}
#define EXPECT_ERROR(q, pos, len, msg) expect_error(q, pos, len, msg, __LINE__)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_kfl fixtures/entries.json\n");
        return 2;
    }
    load(argv[1]);
    CHECK_INT(nentries, 24);

    /* the six queries */
    EXPECT("!dns and !error", "1,2,3,4,5,6,8,9,10,11,15,16,18,19,21,22,23,24");
    EXPECT("!dns and !error and request.path != \"/health\" and request.path != \"/healthz\"",
           "1,2,3,4,9,10,11,15,16,18,19,21,22,23,24");
    EXPECT("!dns and !error and src.namespace == \"bookinfo\"", "1,2,3,4,8,9,10,11,21,22,23");
    EXPECT("redis and src.namespace == \"guestbook\"", "15,16,17");
    EXPECT("!dns and request.path != \"/health\" and request.path != \"/healthz\" and "
           "response.status == 404",
           "4,23,24");
    EXPECT("node.name == \"i-028d42e8587e84db7\" and dst.ip == \"127.0.0.1\" and dst.port == \"8080\"",
           "9");

    /* empty query, literals */
    EXPECT("", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24");
    EXPECT("  ", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24");
    EXPECT("true", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24");
    EXPECT("false", "");

    /* protocols as predicates: http is HTTP at any version */
    EXPECT("http", "1,2,3,4,5,6,7,8,9,10,11,23,24");
    EXPECT("http2", "23");
    EXPECT("grpc", "19,20");
    EXPECT("dns", "12,13,14");
    EXPECT("redis", "15,16,17,18");
    EXPECT("tcp", "21");
    EXPECT("tls", "22");
    EXPECT("kafka", "");
    EXPECT("amqp", ""); /* unknown protocol names are protocols, not errors */
    EXPECT("error", "7,13,17,20");
    EXPECT("protocol.name == \"http\"", "1,2,3,4,5,6,7,8,9,10,11,24");

    /* comparisons on strings, numbers, booleans */
    EXPECT("response.status == 404", "4,8,23,24");
    EXPECT("response.status != 200", "4,7,8,12,13,14,15,16,17,18,21,22,23,24");
    EXPECT("response.status >= 400 and response.status < 500", "4,8,23,24");
    EXPECT("response.status > 200", "4,8,23,24");
    EXPECT("response.status <= 200 and http", "1,2,3,5,6,9,10,11");
    EXPECT("elapsedTime > 30", "2");
    EXPECT("elapsedTime < 0.5", "15,16,17,18");
    EXPECT("outgoing == false", "5,6,24");
    EXPECT("outgoing", "1,2,3,4,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23");
    EXPECT("!outgoing", "5,6,24");
    EXPECT("dst.port == 8080", "9,11");
    EXPECT("dst.port == \"8080\"", "9,11");
    EXPECT("\"8080\" == dst.port", "9,11");
    EXPECT("dst.port > 9000 and dst.port < 9100", "1,2,3,4,5,6,7,8,10,23");
    EXPECT("src.port == 45000", "15,16");
    EXPECT("id == 3", "3");
    EXPECT("id == \"3\"", "3");
    EXPECT("id > 22", "23,24");
    EXPECT("dst.namespace == \"guestbook\" and !redis", "24");
    EXPECT("src.workload == \"reviews-v2\"", "3");
    EXPECT("src.node == \"node-2\"", "3,21");
    EXPECT("dst.node == \"node-2\" and http", "2,3,6,7");
    EXPECT("dst.name == \"example.com\"", "22");
    EXPECT("request.method == \"POST\"", "9,19,20");
    EXPECT("summary == \"SET guestbook:1\"", "15");
    EXPECT("\"a\" < \"b\"", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24");
    EXPECT("src.namespace < \"c\"", "1,2,3,4,7,8,9,10,11,12,13,21,22,23");

    /* absent fields: == false, != true, ordering false, == null true */
    EXPECT("src.namespace == null", "5,6,24");
    EXPECT("src.namespace != null", "1,2,3,4,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23");
    EXPECT("response.status < 1000 and tcp", "");
    EXPECT("nosuch.field == \"x\"", "");
    EXPECT("nosuch.field != \"x\"", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24");

    /* and, or, not, !, parentheses and precedence */
    EXPECT("redis or grpc", "15,16,17,18,19,20");
    EXPECT("redis || grpc and error", "15,16,17,18,20");
    EXPECT("(redis || grpc) && error", "17,20");
    EXPECT("not (redis or grpc or http)", "12,13,14,21,22");
    EXPECT("not redis and not http and not dns", "19,20,21,22");
    EXPECT("!(response.status == 200)", "4,7,8,12,13,14,15,16,17,18,21,22,23,24");
    EXPECT("!response.status == 200", "4,7,8,12,13,14,15,16,17,18,21,22,23,24");
    EXPECT("!!redis", "15,16,17,18");

    /* string methods and regular expressions */
    EXPECT("request.path.startsWith(\"/details\")", "1,4,23");
    EXPECT("request.path.endsWith(\"/0\")", "1,2,3");
    EXPECT("request.path.contains(\"guestbook\")", "14,15,16,17,24");
    EXPECT("summary.contains(\"etcd\")", "19,20");
    EXPECT("request.path matches \"^/(details|reviews)/[0-9]+$\"", "1,2,4,7,23");
    EXPECT("request.path =~ \"^/health\"", "5,6,8");
    EXPECT("request.path.matches(\"z$\")", "6");
    EXPECT("dst.port.startsWith(\"80\")", "9,11,24");
    EXPECT("error.message.contains(\"reset\")", "7");
    EXPECT("error.message == \"NXDOMAIN\"", "13");

    /* maps: headers case-insensitively, query strings */
    EXPECT("request.headers[\"User-Agent\"] == \"kube-probe/1.28\"", "5,6");
    EXPECT("request.headers[\"user-agent\"].startsWith(\"kube-probe\")", "5,6");
    EXPECT("request.headers[\"USER-AGENT\"] == \"Go-http-client/2.0\"", "23");
    EXPECT("request.headers[\"content-type\"] == \"application/grpc\"", "19,20");
    EXPECT("request.headers.Host == \"guestbook\"", "24");
    EXPECT("request.queryString[\"id\"] == \"99\"", "4");
    EXPECT("request.queryString[\"id\"] == 99", "4");
    EXPECT("request.queryString[\"lang\"] == \"en\"", "4");
    EXPECT("response.headers[\"grpc-status\"] == \"5\"", "20");
    EXPECT("src.labels[\"app\"] == \"guestbook\"", "14,15,16,17");
    EXPECT("src.labels.app == \"etcd-client\"", "19,20");

    /* protocol sections through generic access; arrays match when any element does */
    EXPECT("grpc.method == \"Range\"", "19");
    EXPECT("grpc.status != 0", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,20,21,22,23,24");
    EXPECT("grpc and grpc.status != 0", "20");
    EXPECT("redis.command == \"GET\"", "16");
    EXPECT("redis.key == \"guestbook:1\"", "15,16,17");
    EXPECT("dns.questions.name == \"redis-leader.guestbook.svc.cluster.local\"", "14");
    EXPECT("dns.questions[0].type == \"A\"", "12,13,14");
    EXPECT("dns.answers.data == \"10.96.1.14\"", "12");
    EXPECT("dns.rcode == \"NXDOMAIN\"", "13");
    EXPECT("tls.sni == \"example.com\"", "22");
    EXPECT("tls.alpn == \"h2\"", "22");
    EXPECT("tcp.bytesToClient > 1000", "21");
    EXPECT("redis.args[1] == \"hello\"", "15");
    EXPECT("request.body.size > 0 and http", "9");
    EXPECT("response.body.data.contains(\"not found\")", "23");
    EXPECT("dst.labels", "1,2,3,4,5,6,7,8,12,13,14,15,16,17,18,19,20,23,24");

    /* time: absolute, relative, arithmetic; timestamps are T0 + i s, T0 = 10:00:00Z */
    EXPECT("timestamp >= datetime(\"2025-11-25T10:00:22Z\")", "22,23,24");
    EXPECT("timestamp < datetime(\"2025-11-25T11:00:03+01:00\")", "1,2");
    EXPECT("timestamp >= datetime(\"2025-11-25T10:00:23.5Z\")", "24");
    EXPECT("timestamp > \"2025-11-25T10:00:23Z\"", "24");
    EXPECT("timestamp >= now() - 5m", "");
    EXPECT("timestamp < now() + 1h", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24");
    EXPECT("within(5m)", "");
    EXPECT("timestamp >= datetime(\"2025-11-25T10:00:00Z\") + 23s", "23,24");
    EXPECT("elapsedTime >= 35ms", "2");

    /* syntax errors: position, length, message */
    EXPECT_ERROR("request.path ==", 15, 1, "expected a value after '=='");
    EXPECT_ERROR("response.status == 200 and", 26, 1, "expected a value");
    EXPECT_ERROR("(http or dns", 12, 1, "missing ')'");
    EXPECT_ERROR("http)", 4, 1, "unmatched ')'");
    EXPECT_ERROR("request.path = \"/x\"", 13, 1, "use '=='");
    EXPECT_ERROR("request.path == \"/x", 16, 3, "unterminated string");
    EXPECT_ERROR("http dns", 5, 3, "expected 'and', 'or' or the end");
    EXPECT_ERROR("request.path.foo(\"x\")", 13, 3, "unknown method 'foo'");
    EXPECT_ERROR("request.path matches \"(\"", 21, 3, "bad regular expression");
    /* Nested repetition multiplies: regcomp would take ~200 MB for this, more when nested. */
    EXPECT_ERROR("request.path matches \"(a{1000}){1000}\"", 21, 17, "too complex");
    EXPECT_ERROR("request.path.matches(\"((x{30}){30}){30}\")", 21, 19, "too complex");
    EXPECT_ERROR("request.path matches \"a++++++++++++++++++++\"", 21, 23, "too complex");
    EXPECT_ERROR("timestamp > datetime(\"yesterday\")", 21, 11, "not an RFC 3339 time");
    EXPECT_ERROR("timestamp > now() - 5x", 21, 1, "unknown unit 'x'");
    EXPECT_ERROR("frobnicate(1)", 0, 10, "unknown function");
    EXPECT_ERROR("a & b", 2, 1, "use 'and'");
    EXPECT_ERROR("a # b", 2, 1, "unexpected character '#'");
    EXPECT_ERROR("request.headers[", 16, 1, "a key in quotes");
    EXPECT_ERROR("request.path.startsWith(5)", 24, 1, "a string argument");
    EXPECT_ERROR("== 3", 0, 2, "expected a value");

    char deep[400];
    memset(deep, '(', 200);
    strcpy(deep + 200, "http");
    EXPECT_ERROR(deep, 64, 1, "nested too deeply");

    for (int i = 0; i < nentries; i++) {
        st_rec_free(recs[i]);
        json_decref(jsons[i]);
    }
    return CHECK_DONE();
}
