/* The connection framework: opaque TCP fallback, server-first, counting. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "entry_json.h"
#include "parser.h"

static struct st_entry *got[16];
static int ngot;

static void on_entry(struct st_entry *e, void *arg)
{
    (void)arg;
    if (ngot < 16) got[ngot++] = e;
    else st_entry_free(e);
}

static void reset(void)
{
    for (int i = 0; i < ngot; i++) st_entry_free(got[i]);
    ngot = 0;
}

static struct st_conn *new_conn(uint16_t port)
{
    static struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    struct st_conn_info info = {.start_us = 1000000, .transport = ST_TRANSPORT_TCP};
    strcpy(info.client.ip, "10.1.0.2");
    info.client.port = 40000;
    strcpy(info.server.ip, "10.1.0.3");
    info.server.port = port;
    return st_conn_new(&info, &cfg, on_entry, NULL);
}

static void feed_str(struct st_conn *c, enum st_dir dir, const char *s, uint64_t t)
{
    st_conn_feed(c, dir, (const uint8_t *)s, strlen(s), t);
}

int main(void)
{
    /* Unknown binary protocol: one tcp entry with exact byte counts. */
    struct st_conn *c = new_conn(4000);
    const uint8_t blob[] = {0xde, 0xad, 0xbe, 0xef, 0x00, 0x01};
    st_conn_feed(c, ST_DIR_TO_SERVER, blob, sizeof(blob), 1000100);
    st_conn_feed(c, ST_DIR_TO_CLIENT, blob, 4, 1000200);
    CHECK_INT(st_conn_proto(c), ST_PROTO_TCP);
    st_conn_close(c, ST_CLOSE_FIN, 1002000);
    CHECK_INT(ngot, 1);
    if (ngot == 1) {
        json_t *j = st_entry_to_json(got[0], NULL);
        CHECK_STR(json_string_value(json_object_get(json_object_get(j, "protocol"), "name")), "tcp");
        CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "tcp"), "bytesToServer")), 6);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "tcp"), "bytesToClient")), 4);
        CHECK_INT(json_integer_value(json_object_get(j, "timestamp")), 1000);
        CHECK(json_real_value(json_object_get(j, "elapsedTime")) == 2.0);
        CHECK_STR(json_string_value(json_object_get(json_object_get(j, "dst"), "ip")), "10.1.0.3");
        CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "dst"), "port")), 4000);
        CHECK(json_object_get(j, "error") == NULL);
        json_decref(j);
    }
    st_conn_free(c);
    reset();

    /* Server-first (SMTP-like banner): decided at once, client bytes counted after. */
    c = new_conn(2525);
    feed_str(c, ST_DIR_TO_CLIENT, "220 mail.example ESMTP\r\n", 1000100);
    CHECK_INT(st_conn_proto(c), ST_PROTO_UNKNOWN); /* the client may still speak first */
    st_conn_client_silent(c);                      /* the relay's detect window passed */
    CHECK_INT(st_conn_proto(c), ST_PROTO_TCP);
    feed_str(c, ST_DIR_TO_SERVER, "HELO x\r\n", 1000200);
    st_conn_close(c, ST_CLOSE_RESET, 1000300);
    CHECK_INT(ngot, 1);
    if (ngot == 1) {
        json_t *j = st_entry_to_json(got[0], NULL);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "tcp"), "bytesToServer")), 8);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "tcp"), "bytesToClient")), 24);
        CHECK_STR(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                  "connection reset");
        json_decref(j);
    }
    st_conn_free(c);
    reset();

    /* Client silent for the detect window: TCP, no entry for an empty connection. */
    c = new_conn(3306);
    st_conn_client_silent(c);
    CHECK_INT(st_conn_proto(c), ST_PROTO_TCP);
    st_conn_free(c);
    reset();

    /* Non-UTF-8 strings never break serialization. */
    struct st_entry *e = st_entry_new(ST_PROTO_HTTP);
    e->request.present = true;
    e->request.method = "GET";
    e->request.path = st_arena_strdup(&e->arena, "/caf\xe9");
    const uint8_t bin[] = {0, 1, 2, 0xff};
    e->request.body.data = malloc(sizeof(bin));
    memcpy(e->request.body.data, bin, sizeof(bin));
    e->request.body.len = e->request.body.size = sizeof(bin);
    json_t *j = st_entry_to_json(e, NULL);
    char *dump = json_dumps(j, JSON_COMPACT);
    CHECK(dump != NULL);
    json_t *req = json_object_get(j, "request");
    CHECK_STR(json_string_value(json_object_get(req, "path")), "/caf\\xe9");
    CHECK_STR(json_string_value(json_object_get(json_object_get(req, "body"), "encoding")), "base64");
    CHECK_STR(json_string_value(json_object_get(json_object_get(req, "body"), "data")), "AAEC/w==");
    free(dump);
    json_decref(j);
    st_entry_free(e);
    return CHECK_DONE();
}
