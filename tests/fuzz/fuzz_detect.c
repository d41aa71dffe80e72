/* libFuzzer target: detection, then the whole connection pipeline on arbitrary bytes.
 * The first byte picks the port class and how the rest is split between directions. */
#include "fuzz_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint16_t ports[] = {80, 6379, 53, 9092, 443, 2379, 8080, 4000};
    if (size < 1) return 0;
    uint8_t ctl = data[0];
    data++, size--;
    (void)st_detect(data, size, ports[ctl & 7], (ctl & 8) ? ST_TRANSPORT_UDP : ST_TRANSPORT_TCP);

    struct st_parse_config cfg;
    st_parse_config_init(&cfg);
    cfg.body_cap = 512;
    struct st_conn_info info = {.start_us = 1, .transport = (ctl & 8) ? ST_TRANSPORT_UDP : ST_TRANSPORT_TCP};
    strcpy(info.client.ip, "10.0.0.1");
    strcpy(info.server.ip, "10.0.0.2");
    info.server.port = ports[ctl & 7];
    struct st_conn *c = st_conn_new(&info, &cfg, fuzz_on_entry, NULL);
    /* Alternate directions every (ctl>>4)+1 bytes, client first. */
    size_t step = (size_t)(ctl >> 4) + 1;
    enum st_dir dir = ST_DIR_TO_SERVER;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        st_conn_feed(c, dir, data + off, n, 2 + off);
        if ((off / step) % 3 == 2) dir = dir == ST_DIR_TO_SERVER ? ST_DIR_TO_CLIENT : ST_DIR_TO_SERVER;
    }
    st_conn_close(c, ST_CLOSE_FIN, 3 + size);
    st_conn_free(c);
    return 0;
}
