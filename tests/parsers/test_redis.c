/* Redis parser tests: real captures (tests/captures/redis/record-redis.sh) replayed in
 * every chunking, then hand-made edge cases (RESP3 types, SYNC with a sized RDB, huge
 * values, bad input, unanswered commands, pipelines deeper than the queue). */
#include "entry_json.h"
#include "replay_check.h"

#define E(arr, i) json_array_get(arr, i)

static void test_basic(void)
{
    json_t *a = replay_checked("redis/basic.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 9);
    /* redis-cli first asks for COMMAND DOCS: a 172 KB nested reply. */
    CHECK_STR(JSTR(E(a, 0), "summary"), "COMMAND DOCS");
    CHECK_INT(JINT(E(a, 0), "response", "bytes"), 172298);
    CHECK_INT(JINT(E(a, 0), "response", "body", "size"), 172298);
    CHECK(JTRUE(E(a, 0), "response", "body", "truncated"));
    CHECK_STR(JSTR(E(a, 1), "summary"), "SET user:1");
    CHECK_STR(JSTR(E(a, 1), "request", "method"), "SET");
    CHECK_STR(JSTR(E(a, 1), "request", "path"), "user:1");
    CHECK_STR(JSTR(E(a, 1), "redis", "key"), "user:1");
    CHECK_INT(JINT(E(a, 1), "redis", "args"), 2);
    CHECK_STR(JSTR(E(a, 1), "redis", "reply"), "OK");
    CHECK_STR(JSTR(E(a, 1), "request", "body", "data"), "*3\r\n$3\r\nSET\r\n$6\r\nuser:1\r\n$5\r\nalice\r\n");
    CHECK_STR(JSTR(E(a, 1), "response", "body", "data"), "+OK\r\n");
    CHECK_STR(JSTR(E(a, 1), "protocol", "name"), "redis");
    CHECK_STR(JSTR(E(a, 1), "protocol", "version"), "RESP2");
    CHECK_STR(JSTR(E(a, 2), "redis", "replyType"), "bulk");
    CHECK_STR(JSTR(E(a, 2), "redis", "reply"), "alice");
    CHECK_STR(JSTR(E(a, 3), "redis", "reply"), "(nil)");
    CHECK(jget(E(a, 3), "error", NULL) == NULL);
    CHECK_STR(JSTR(E(a, 4), "summary"), "INCR user:1");
    CHECK_STR(JSTR(E(a, 4), "error", "message"), "ERR value is not an integer or out of range");
    CHECK_STR(JSTR(E(a, 4), "redis", "replyType"), "error");
    CHECK_STR(JSTR(E(a, 6), "redis", "reply"), "[name, bob, age, 42]");
    CHECK_STR(JSTR(E(a, 7), "redis", "reply"), "2");
    CHECK_STR(JSTR(E(a, 8), "summary"), "PING");
    CHECK(jget(E(a, 8), "request", "path", NULL) == NULL);
    for (size_t i = 0; i < json_array_size(a); i++) CHECK_INT(JINT(E(a, i), "seq"), (long long)i);
    json_decref(a);
}

static void test_pipeline(void)
{
    const char *caps[] = {"redis/pipeline-set.cap", "redis/pipeline-get.cap"};
    for (int c = 0; c < 2; c++) {
        json_t *a = replay_checked(caps[c], NULL);
    if (a == NULL) return;
        CHECK_INT(json_array_size(a), 10);
        /* redis-benchmark -P 5: two writes of five commands, replies in order. */
        int same_start = 0;
        for (size_t i = 0; i < json_array_size(a); i++) {
            CHECK_STR(JSTR(E(a, i), "request", "method"), c == 0 ? "SET" : "GET");
            CHECK_STR(JSTR(E(a, i), "redis", "reply"), c == 0 ? "OK" : "(nil)");
            CHECK(strncmp(JSTR(E(a, i), "request", "path") ?: "", "key:0000000000", 14) == 0);
            if (i % 5 && JINT(E(a, i), "timestamp") == JINT(E(a, i - 1), "timestamp")) same_start++;
        }
        CHECK_INT(same_start, 8);
        json_decref(a);
    }
    json_t *a = replay_checked("redis/pipeline-set.cap", NULL);
    if (a == NULL) return;
    CHECK_STR(JSTR(E(a, 0), "summary"), "SET key:000000000045");
    CHECK_STR(JSTR(E(a, 9), "summary"), "SET key:000000000022");
    json_decref(a);
}

static void test_multi(void)
{
    json_t *a = replay_checked("redis/multi.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 10);
    const char *want[][2] = {
        {"MULTI", "OK"}, {"SET counter", "QUEUED"}, {"INCR counter", "QUEUED"},
        {"GET counter", "QUEUED"}, {"EXEC", "[OK, 11, 11]"}, {"MULTI", "OK"},
        {"SET other", "QUEUED"},
        {"NOSUCHCMD", "ERR unknown command 'NOSUCHCMD', with args beginning with: "},
        {"EXEC", "EXECABORT Transaction discarded because of previous errors."},
    };
    for (size_t i = 0; i < 9; i++) {
        CHECK_STR(JSTR(E(a, i), "summary"), want[i][0]);
        CHECK_STR(JSTR(E(a, i), "redis", "reply"), want[i][1]);
    }
    CHECK_STR(JSTR(E(a, 4), "redis", "replyType"), "array");
    CHECK_STR(JSTR(E(a, 4), "response", "body", "data"), "*3\r\n+OK\r\n:11\r\n$2\r\n11\r\n");
    CHECK_STR(JSTR(E(a, 8), "error", "message"), want[8][1]);
    CHECK_STR(JSTR(E(a, 9), "summary"), "ECHO"); /* redis-cli --pipe's end marker */
    json_decref(a);
}

static void test_inline(void)
{
    json_t *a = replay_checked("redis/inline.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 4);
    CHECK_STR(JSTR(E(a, 0), "summary"), "PING");
    CHECK(JTRUE(E(a, 0), "redis", "inline"));
    CHECK_STR(JSTR(E(a, 0), "redis", "reply"), "PONG");
    CHECK_STR(JSTR(E(a, 1), "summary"), "SET greeting");
    CHECK_INT(JINT(E(a, 1), "redis", "args"), 2); /* "hello world" is one argument */
    CHECK_STR(JSTR(E(a, 1), "request", "body", "data"), "SET greeting \"hello world\"\r\n");
    CHECK_STR(JSTR(E(a, 2), "redis", "reply"), "hello world");
    CHECK_STR(JSTR(E(a, 3), "summary"), "EXISTS greeting");
    CHECK_INT(JINT(E(a, 3), "redis", "args"), 2);
    CHECK_STR(JSTR(E(a, 3), "redis", "reply"), "1");
    json_decref(a);
}

static void test_resp3(void)
{
    json_t *a = replay_checked("redis/resp3.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 7);
    CHECK_STR(JSTR(E(a, 0), "summary"), "HELLO");
    CHECK_STR(JSTR(E(a, 0), "redis", "replyType"), "map");
    CHECK_STR(JSTR(E(a, 0), "protocol", "version"), "RESP3");
    CHECK(strstr(JSTR(E(a, 0), "redis", "reply") ?: "", "proto: 3") != NULL);
    CHECK_STR(JSTR(E(a, 1), "redis", "replyType"), "map"); /* COMMAND DOCS in RESP3 */
    CHECK_STR(JSTR(E(a, 2), "redis", "reply"), "{f1: v1, f2: v2}");
    CHECK_STR(JSTR(E(a, 3), "redis", "replyType"), "set");
    CHECK_STR(JSTR(E(a, 4), "redis", "replyType"), "double");
    CHECK_STR(JSTR(E(a, 4), "redis", "reply"), "1.5");
    CHECK_STR(JSTR(E(a, 5), "redis", "replyType"), "null");
    CHECK_STR(JSTR(E(a, 6), "protocol", "version"), "RESP3");
    json_decref(a);
}

static void test_pubsub(void)
{
    json_t *a = replay_checked("redis/pubsub.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 3);
    CHECK_STR(JSTR(E(a, 0), "summary"), "SUBSCRIBE news");
    CHECK_INT(JINT(E(a, 0), "response", "bytes"), 68); /* both confirmations */
    CHECK_STR(JSTR(E(a, 1), "summary"), "message news");
    CHECK(jget(E(a, 1), "request", NULL) == NULL);
    CHECK_STR(JSTR(E(a, 1), "redis", "push"), "message");
    CHECK_STR(JSTR(E(a, 1), "redis", "channel"), "news");
    CHECK_STR(JSTR(E(a, 1), "redis", "reply"), "[message, news, hello subscribers]");
    CHECK_STR(JSTR(E(a, 2), "summary"), "message alerts");
    CHECK(jget(E(a, 2), "error", NULL) == NULL);
    json_decref(a);

    a = replay_checked("redis/monitor.cap", NULL);
    CHECK_INT(json_array_size(a), 3);
    CHECK_STR(JSTR(E(a, 0), "summary"), "MONITOR");
    CHECK_STR(JSTR(E(a, 1), "summary"), "monitor \"SET\" \"mon:key\" \"1\"");
    CHECK_STR(JSTR(E(a, 1), "redis", "push"), "monitor");
    CHECK_STR(JSTR(E(a, 2), "summary"), "monitor \"GET\" \"mon:key\"");
    json_decref(a);
}

static void test_replica(void)
{
    json_t *a = replay_checked("redis/replica.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 10);
    CHECK_STR(JSTR(E(a, 1), "summary"), "REPLCONF LISTENING-PORT");
    CHECK_STR(JSTR(E(a, 3), "summary"), "PSYNC");
    CHECK(strncmp(JSTR(E(a, 3), "redis", "reply") ?: "", "FULLRESYNC ", 11) == 0);
    CHECK_INT(JINT(E(a, 3), "redis", "rdbBytes"), 503);
    /* +FULLRESYNC line (56) + "$EOF:<40>\r\n" (47) + 503 RDB bytes + the 40-byte mark */
    CHECK_INT(JINT(E(a, 3), "response", "bytes"), 56 + 47 + 503 + 40);
    const char *want[] = {"REPLCONF ACK", "SELECT", "SET repl:key", "INCR repl:counter",
                          "DEL repl:seed", "REPLCONF ACK"};
    for (size_t i = 4; i < 10; i++) {
        CHECK_STR(JSTR(E(a, i), "summary"), want[i - 4]);
        CHECK(JTRUE(E(a, i), "redis", "replication"));
        CHECK(jget(E(a, i), "response", NULL) == NULL);
        CHECK(jget(E(a, i), "error", NULL) == NULL);
    }
    CHECK_STR(JSTR(E(a, 6), "request", "body", "data"), "*3\r\n$3\r\nSET\r\n$8\r\nrepl:key\r\n$6\r\nvalue1\r\n");
    json_decref(a);
}

static void test_replica_disk_and_patterns(void)
{
    /* Disk-based sync: $<len> RDB without a trailing CRLF, then the command stream. */
    json_t *a = replay_checked("redis/replica-disk.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 7);
    CHECK_STR(JSTR(E(a, 3), "summary"), "PSYNC");
    CHECK_INT(JINT(E(a, 3), "redis", "rdbBytes"), 523);
    /* "+FULLRESYNC <40-char id> 123\r\n" (58) + "$523\r\n" (6) + 523 */
    CHECK_INT(JINT(E(a, 3), "response", "bytes"), 58 + 6 + 523);
    CHECK_STR(JSTR(E(a, 4), "summary"), "SELECT");
    CHECK_STR(JSTR(E(a, 5), "summary"), "SET repl:disk");
    CHECK(JTRUE(E(a, 5), "redis", "replication"));
    CHECK_STR(JSTR(E(a, 6), "summary"), "REPLCONF ACK");
    json_decref(a);

    a = replay_checked("redis/psubscribe.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(E(a, 0), "summary"), "PSUBSCRIBE orders.*");
    CHECK_STR(JSTR(E(a, 1), "summary"), "pmessage orders.eu");
    CHECK_STR(JSTR(E(a, 1), "redis", "pattern"), "orders.*");
    CHECK_STR(JSTR(E(a, 1), "redis", "channel"), "orders.eu");
    CHECK_STR(JSTR(E(a, 1), "redis", "reply"), "[pmessage, orders.*, orders.eu, order 17]");
    json_decref(a);
}

static void test_resp3_push(void)
{
    /* RESP3 from a raw socket: a client-tracking invalidation push between replies, and
     * pub/sub whose confirmation and message are both `>` pushes. */
    json_t *a = replay_checked("redis/resp3-push.cap", NULL);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 7);
    CHECK_STR(JSTR(E(a, 2), "summary"), "GET trk:1");
    CHECK_STR(JSTR(E(a, 2), "redis", "replyType"), "null");
    CHECK_STR(JSTR(E(a, 3), "summary"), "invalidate");
    CHECK_STR(JSTR(E(a, 3), "redis", "push"), "invalidate");
    CHECK_STR(JSTR(E(a, 3), "redis", "reply"), "[invalidate, [trk:1]]");
    CHECK(jget(E(a, 3), "redis", "channel", NULL) == NULL);
    CHECK(jget(E(a, 3), "request", NULL) == NULL);
    CHECK_STR(JSTR(E(a, 4), "summary"), "SUBSCRIBE news");
    CHECK_STR(JSTR(E(a, 4), "redis", "replyType"), "push");
    CHECK_STR(JSTR(E(a, 4), "redis", "reply"), "[subscribe, news, 1]");
    CHECK_STR(JSTR(E(a, 5), "summary"), "message news");
    CHECK_STR(JSTR(E(a, 5), "redis", "reply"), "[message, news, resp3 hello]");
    CHECK_STR(JSTR(E(a, 6), "summary"), "PING");
    CHECK_STR(JSTR(E(a, 6), "redis", "reply"), "PONG");
    CHECK_STR(JSTR(E(a, 6), "protocol", "version"), "RESP3");
    json_decref(a);
}

/* ---- hand-made connections ---- */

static json_t *got;

static void collect(struct st_entry *e, void *arg)
{
    (void)arg;
    json_array_append_new(got, st_entry_to_json(e, NULL));
    st_entry_free(e);
}

struct step {
    enum st_dir dir;
    const char *data;
    size_t len; /* 0: strlen */
};

/* Runs the steps through a Redis connection fed whole and 1 byte at a time; the two
 * must agree. Returns the entries (caller frees). */
static json_t *run(const struct step *steps, size_t n, const struct st_parse_config *cfg)
{
    struct st_parse_config defaults;
    if (cfg == NULL) {
        st_parse_config_init(&defaults);
        cfg = &defaults;
    }
    json_t *results[2];
    for (int mode = 0; mode < 2; mode++) {
        got = json_array();
        struct st_conn_info info = {.start_us = 1000000, .transport = ST_TRANSPORT_TCP};
        strcpy(info.client.ip, "10.0.0.1");
        strcpy(info.server.ip, "10.0.0.2");
        info.server.port = 6379;
        struct st_conn *c = st_conn_new(&info, cfg, collect, NULL);
        for (size_t i = 0; i < n; i++) {
            size_t len = steps[i].len ? steps[i].len : strlen(steps[i].data);
            const uint8_t *d = (const uint8_t *)steps[i].data;
            if (mode == 0) st_conn_feed(c, steps[i].dir, d, len, 1000000 + i);
            else
                for (size_t k = 0; k < len; k++) st_conn_feed(c, steps[i].dir, d + k, 1, 1000000 + i);
        }
        st_conn_close(c, ST_CLOSE_FIN, 2000000);
        st_conn_free(c);
        results[mode] = got;
    }
    if (!json_equal(results[0], results[1])) {
        fprintf(stderr, "1-byte feeding differs:\n%s\n%s\n", json_dumps(results[0], 0), json_dumps(results[1], 0));
        check_failures++;
    }
    json_decref(results[1]);
    return results[0];
}

#define C2S ST_DIR_TO_SERVER
#define S2C ST_DIR_TO_CLIENT

static void test_resp3_types(void)
{
    struct step s[] = {
        {C2S, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", 0},
        {S2C, "%1\r\n+proto\r\n:3\r\n", 0},
        {C2S, "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n", 0},
        /* an attribute before the reply, a push in between, a verbatim string */
        {S2C, "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n+PONG\r\n", 0},
        {S2C, ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", 0},
        {S2C, "=15\r\ntxt:Some string\r\n", 0},
        {S2C, "#t\r\n", 0},
        {C2S, "*1\r\n$4\r\nINCR\r\n*2\r\n$3\r\nGET\r\n$1\r\nx\r\n", 0},
        {S2C, "(3492890328409238509324850943850943825024385\r\n!21\r\nSYNTAX invalid syntax\r\n", 0},
    };
    json_t *a = run(s, sizeof(s) / sizeof(s[0]), NULL);
    CHECK_INT(json_array_size(a), 7);
    CHECK_STR(JSTR(E(a, 0), "protocol", "version"), "RESP3");
    CHECK_STR(JSTR(E(a, 1), "summary"), "PING");
    CHECK_STR(JSTR(E(a, 1), "redis", "reply"), "PONG"); /* the attribute is skipped */
    CHECK_STR(JSTR(E(a, 1), "redis", "replyType"), "simple");
    CHECK_STR(JSTR(E(a, 2), "summary"), "message ch");
    CHECK_STR(JSTR(E(a, 2), "redis", "replyType"), "push");
    CHECK_STR(JSTR(E(a, 3), "summary"), "GET k");
    CHECK_STR(JSTR(E(a, 3), "redis", "replyType"), "verbatim");
    CHECK_STR(JSTR(E(a, 3), "redis", "reply"), "txt:Some string");
    CHECK_STR(JSTR(E(a, 4), "redis", "reply"), "true");
    CHECK_STR(JSTR(E(a, 5), "redis", "replyType"), "bignumber");
    CHECK_STR(JSTR(E(a, 6), "error", "message"), "SYNTAX invalid syntax");
    json_decref(a);
}

static void test_sync_sized_rdb(void)
{
    /* Old SYNC: the reply is the RDB itself, $<len> with no trailing CRLF, then the
     * command stream; newlines are the master's keep-alives. */
    struct step s[] = {
        {C2S, "*1\r\n$4\r\nSYNC\r\n", 0},
        {S2C, "\n\n$10\r\n\r\n*1\r\n$4\r\n", 0}, /* RDB bytes that look like RESP */
        {S2C, "*2\r\n$4\r\nPING\r\n$1\r\nx\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n", 0},
        {C2S, "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n57\r\n", 0},
    };
    json_t *a = run(s, 4, NULL);
    CHECK_INT(json_array_size(a), 4);
    CHECK_STR(JSTR(E(a, 0), "summary"), "SYNC");
    CHECK_INT(JINT(E(a, 0), "redis", "rdbBytes"), 10);
    CHECK_STR(JSTR(E(a, 0), "redis", "replyType"), "rdb");
    CHECK_INT(JINT(E(a, 0), "response", "bytes"), 15);
    CHECK_STR(JSTR(E(a, 1), "summary"), "PING");
    CHECK(JTRUE(E(a, 1), "redis", "replication"));
    CHECK_STR(JSTR(E(a, 2), "summary"), "SET a");
    CHECK_STR(JSTR(E(a, 3), "summary"), "REPLCONF ACK");
    CHECK(JTRUE(E(a, 3), "redis", "replication"));
    json_decref(a);
}

static void test_huge_value(void)
{
    /* A 3 MB value streams through: the body keeps body_cap bytes, the size is exact. */
    size_t n = 3 * 1024 * 1024;
    char *big = malloc(n + 64);
    int h = sprintf(big, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%zu\r\n", n);
    memset(big + h, 'v', n);
    memcpy(big + h + n, "\r\n", 2);
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.body_cap = 1000;
    got = json_array();
    struct st_conn_info info = {.start_us = 1, .transport = ST_TRANSPORT_TCP};
    info.server.port = 6379;
    struct st_conn *c = st_conn_new(&info, &cfg, collect, NULL);
    for (size_t off = 0; off < h + n + 2; off += 4096) {
        size_t k = h + n + 2 - off < 4096 ? h + n + 2 - off : 4096;
        st_conn_feed(c, C2S, (uint8_t *)big + off, k, 2);
    }
    st_conn_feed(c, S2C, (const uint8_t *)"+OK\r\n", 5, 3);
    st_conn_close(c, ST_CLOSE_FIN, 4);
    st_conn_free(c);
    CHECK_INT(json_array_size(got), 1);
    CHECK_INT(JINT(E(got, 0), "request", "bytes"), (long long)(h + n + 2));
    CHECK_INT(JINT(E(got, 0), "request", "body", "size"), (long long)(h + n + 2));
    CHECK(JTRUE(E(got, 0), "request", "body", "truncated"));
    CHECK_INT(strlen(JSTR(E(got, 0), "request", "body", "data") ?: ""), 1000);
    CHECK_STR(JSTR(E(got, 0), "summary"), "SET k");
    json_decref(got);
    free(big);
}

static void test_errors(void)
{
    /* Unanswered at close; then a server that speaks garbage. */
    struct step s[] = {
        {C2S, "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n", 0},
        {S2C, "$1\r\nx\r\n", 0},
    };
    json_t *a = run(s, 2, NULL);
    CHECK_INT(json_array_size(a), 2);
    CHECK(jget(E(a, 0), "error", NULL) == NULL);
    CHECK_STR(JSTR(E(a, 1), "summary"), "GET b");
    CHECK_STR(JSTR(E(a, 1), "error", "message"), "connection closed before the reply");
    json_decref(a);

    struct step bad[] = {
        {C2S, "*1\r\n$4\r\nPING\r\n", 0},
        {S2C, "@garbage\r\n", 0},
        {C2S, "*1\r\n$4\r\nPING\r\n", 0},
    };
    a = run(bad, 3, NULL);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(JSTR(E(a, 0), "error", "message"),
              "parse error: redis: unexpected byte '@' where a RESP type was expected");
    json_decref(a);

    struct step badlen[] = {{C2S, "*1\r\n$x4\r\nPING\r\n", 0}};
    a = run(badlen, 1, NULL);
    CHECK_STR(JSTR(E(a, 0), "error", "message"), "parse error: redis: bad '$' line \"x4\"");
    json_decref(a);

    /* Nesting deeper than the reader keeps: a clear error, no crash. */
    char deep[200] = "";
    for (int i = 0; i < 40; i++) strcat(deep, "*1\r\n");
    struct step nest[] = {{C2S, "*1\r\n$4\r\nPING\r\n", 0}, {S2C, deep, 0}};
    a = run(nest, 2, NULL);
    CHECK_STR(JSTR(E(a, 0), "error", "message"), "parse error: redis: aggregates nested deeper than 32");
    json_decref(a);
}

/* What hiredis 0.14's reader lets through or refuses is still read the strict way:
 * the CRLF after bulk data is checked, arrays nest deeper than hiredis's 7 levels and
 * integers keep their spelling. */
static void test_hiredis_gaps(void)
{
    struct step crlf[] = {{C2S, "*1\r\n$4\r\nPING\r\n", 0}, {S2C, "$1\r\nabc\r\n+OK\r\n", 0}};
    json_t *a = run(crlf, 2, NULL);
    CHECK_STR(JSTR(E(a, 0), "error", "message"), "parse error: redis: bulk string not followed by CRLF");
    json_decref(a);

    char deep[200] = "";
    for (int i = 0; i < 10; i++) strcat(deep, "*1\r\n");
    strcat(deep, ":007\r\n");
    struct step nest[] = {{C2S, "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", 0},
                          {S2C, deep, 0}, {S2C, ":-0\r\n", 0}};
    a = run(nest, 3, NULL);
    CHECK_INT(json_array_size(a), 2);
    CHECK_STR(JSTR(E(a, 0), "redis", "replyType"), "array");
    CHECK_STR(JSTR(E(a, 0), "redis", "reply"), "[[[[[[[[[[007]]]]]]]]]]");
    CHECK(jget(E(a, 0), "error", NULL) == NULL);
    CHECK_STR(JSTR(E(a, 1), "redis", "reply"), "-0");
    json_decref(a);
}

static void test_client_reply(void)
{
    struct step s[] = {
        {C2S, "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n", 0},
        {C2S, "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n", 0},
        {S2C, "+OK\r\n", 0},
    };
    json_t *a = run(s, 3, NULL);
    CHECK_INT(json_array_size(a), 3);
    CHECK(JTRUE(E(a, 0), "redis", "noReply"));
    CHECK(JTRUE(E(a, 1), "redis", "noReply"));
    CHECK_STR(JSTR(E(a, 2), "summary"), "CLIENT REPLY");
    CHECK_STR(JSTR(E(a, 2), "redis", "reply"), "OK");
    json_decref(a);
}

/* Big real pipelines: every command gets its entry, with its reply, in order, and
 * nothing is counted as lost. */
static void test_big_pipelines(void)
{
    struct st_parse_stats stats;
    memset(&stats, 0, sizeof(stats));
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.stats = &stats;

    /* redis-cli --pipe: 3000 SETs (up to ~1400 waiting for replies), then its ECHO. */
    json_t *a = replay_checked("redis/pipe-mass.cap", &cfg);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 3001);
    for (size_t i = 0; i < 3000 && i < json_array_size(a); i++) {
        char key[32];
        snprintf(key, sizeof(key), "mass:%04zu", i);
        CHECK_INT(JINT(E(a, i), "seq"), (long long)i);
        CHECK_STR(JSTR(E(a, i), "request", "method"), "SET");
        CHECK_STR(JSTR(E(a, i), "request", "path"), key);
        CHECK_STR(JSTR(E(a, i), "redis", "reply"), "OK");
        CHECK(jget(E(a, i), "error", NULL) == NULL);
        if (check_failures) break;
    }
    CHECK_STR(JSTR(E(a, 0), "request", "body", "data"), "*3\r\n$3\r\nSET\r\n$9\r\nmass:0000\r\n$5\r\nv0000\r\n");
    CHECK_STR(JSTR(E(a, 3000), "request", "method"), "ECHO");
    json_decref(a);

    /* redis-benchmark -P 200: five batches of 200 GETs. */
    a = replay_checked("redis/pipe-bench.cap", &cfg);
    if (a == NULL) return;
    CHECK_INT(json_array_size(a), 1000);
    for (size_t i = 0; i < json_array_size(a); i++) {
        CHECK_INT(JINT(E(a, i), "seq"), (long long)i);
        CHECK_STR(JSTR(E(a, i), "summary"), "GET key:__rand_int__");
        CHECK_STR(JSTR(E(a, i), "redis", "reply"), "x");
        CHECK_STR(JSTR(E(a, i), "response", "body", "data"), "$1\r\nx\r\n");
        if (check_failures) break;
    }
    json_decref(a);
    for (int w = 0; w < ST_LIMIT_COUNT; w++) {
        CHECK_INT(stats.dropped[w], 0);
        CHECK_INT(stats.unanswered[w], 0);
    }
}

/* GETs of keys from..from+n-1 ("%05zu") in one buffer, and their integer replies. */
struct gets {
    char *cmds, *reps;
    size_t cl, rl;
};

static void gets_make(struct gets *g, size_t from, size_t n)
{
    g->cmds = malloc(n * 32);
    g->reps = malloc(n * 16);
    g->cl = g->rl = 0;
    for (size_t i = from; i < from + n; i++) {
        g->cl += (size_t)sprintf(g->cmds + g->cl, "*2\r\n$3\r\nGET\r\n$5\r\n%05zu\r\n", i);
        g->rl += (size_t)sprintf(g->reps + g->rl, ":%zu\r\n", i);
    }
}

static void gets_free(struct gets *g)
{
    free(g->cmds);
    free(g->reps);
}

/* Checks entries [at, at+n) are GETs of keys from..from+n-1, answered or not. */
static void check_gets(json_t *a, size_t at, size_t from, size_t n, bool answered, const char *error)
{
    for (size_t i = 0; i < n; i++) {
        json_t *e = E(a, at + i);
        char key[24], num[24];
        snprintf(key, sizeof(key), "%05zu", from + i);
        snprintf(num, sizeof(num), "%zu", from + i);
        CHECK_INT(JINT(e, "seq"), (long long)(at + i));
        CHECK_STR(JSTR(e, "request", "path"), key);
        CHECK_STR(JSTR(e, "redis", "reply"), answered ? num : NULL);
        CHECK_STR(JSTR(e, "error", "message"), error);
        if (check_failures) break;
    }
}

/* More commands waiting than a limit allows: the extra ones get their entry at once,
 * without the reply and with an error saying why, counted in st_parse_stats; their
 * replies are skipped, the kept ones pair correctly, and pairing resumes afterwards. */
static void test_pending_limits(void)
{
    struct st_parse_stats stats;
    memset(&stats, 0, sizeof(stats));
    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.stats = &stats;

    /* 6000 GETs at once: conn_mem_max (256 KiB) keeps the first `kept`. */
    size_t n = 6000;
    struct gets g;
    gets_make(&g, 0, n);
    struct step p[] = {
        {C2S, g.cmds, g.cl}, {S2C, g.reps, g.rl}, {C2S, "*1\r\n$4\r\nPING\r\n", 0}, {S2C, "+PONG\r\n", 0}};
    json_t *a = run(p, 4, &cfg);
    CHECK_INT(json_array_size(a), n + 1);
    size_t over = (size_t)stats.unanswered[ST_LIMIT_CONN_MEMORY] / 2; /* run() feeds twice */
    size_t kept = n - over;
    CHECK(kept > 1500); /* about 120 bytes per waiting command, not an entry's 1.5 KiB */
    CHECK(over > 0);
    /* The ones over the limit come out at once, then the kept ones with their replies. */
    check_gets(a, 0, kept, over, false, "reply not tracked: the connection's parser memory is full");
    check_gets(a, over, 0, kept, true, NULL);
    CHECK_STR(JSTR(E(a, n), "summary"), "PING");
    CHECK_STR(JSTR(E(a, n), "redis", "reply"), "PONG");
    for (int w = 0; w < ST_LIMIT_COUNT; w++) {
        CHECK_INT(stats.dropped[w], 0);
        if (w != ST_LIMIT_CONN_MEMORY) CHECK_INT(stats.unanswered[w], 0);
    }
    json_decref(a);

    /* Pairing resumes behind the skipped replies while they are still outstanding: 3000
     * GETs, half of the replies, 10 more GETs (kept again), then the rest. */
    gets_free(&g);
    memset(&stats, 0, sizeof(stats));
    gets_make(&g, 0, 3000);
    struct gets g2;
    gets_make(&g2, 3000, 10);
    size_t half = g.rl / 2;
    while (g.reps[half - 1] != '\n') half++;
    struct step q[] = {{C2S, g.cmds, g.cl}, {S2C, g.reps, half}, {C2S, g2.cmds, g2.cl},
                       {S2C, g.reps + half, g.rl - half}, {S2C, g2.reps, g2.rl}};
    a = run(q, 5, &cfg);
    over = (size_t)stats.unanswered[ST_LIMIT_CONN_MEMORY] / 2;
    kept = 3000 - over;
    CHECK(over > 0 && kept > 1500);
    CHECK_INT(json_array_size(a), 3010);
    check_gets(a, 0, kept, over, false, "reply not tracked: the connection's parser memory is full");
    check_gets(a, over, 0, kept, true, NULL);
    check_gets(a, 3000, 3000, 10, true, NULL);
    json_decref(a);
    gets_free(&g);
    gets_free(&g2);

    /* Without a memory limit, the count bound (16384 waiting) applies. */
    memset(&stats, 0, sizeof(stats));
    cfg.conn_mem_max = 0;
    n = 16400;
    gets_make(&g, 0, n);
    struct step r[] = {{C2S, g.cmds, g.cl}, {S2C, g.reps, g.rl}};
    a = run(r, 2, &cfg);
    CHECK_INT(json_array_size(a), n);
    over = (size_t)stats.unanswered[ST_LIMIT_PENDING] / 2;
    CHECK_INT(over, n - 16383); /* one slot stays free for the skipped replies */
    check_gets(a, 0, n - over, over, false, "reply not tracked: too many commands awaiting replies");
    check_gets(a, over, 0, n - over, true, NULL);
    CHECK_INT(stats.unanswered[ST_LIMIT_CONN_MEMORY], 0);
    json_decref(a);
    gets_free(&g);
}

int main(int argc, char **argv)
{
    maybe_dump(argc, argv);
    test_basic();
    test_pipeline();
    test_multi();
    test_inline();
    test_resp3();
    test_pubsub();
    test_replica();
    test_replica_disk_and_patterns();
    test_resp3_push();
    test_resp3_types();
    test_sync_sized_rdb();
    test_huge_value();
    test_errors();
    test_hiredis_gaps();
    test_client_reply();
    test_big_pipelines();
    test_pending_limits();
    return CHECK_DONE();
}
