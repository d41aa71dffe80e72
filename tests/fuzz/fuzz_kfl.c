/* libFuzzer target: KFL compile, then evaluate against a fixed entry both from its index
 * record and from its JSON; the two must agree, and errors must carry a sane position. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kfl.h"
#include "record.h"

static const char entry_text[] =
    "{\"id\":\"7\",\"timestamp\":1764064800000,\"elapsedTime\":2.5,"
    "\"protocol\":{\"name\":\"http\",\"version\":\"1.1\"},"
    "\"src\":{\"ip\":\"10.1.0.12\",\"port\":41872,\"name\":\"productpage-v1-x\",\"namespace\":\"bookinfo\","
    "\"workload\":\"productpage-v1\",\"labels\":{\"app\":\"productpage\"}},"
    "\"dst\":{\"ip\":\"127.0.0.1\",\"port\":8080},\"node\":{\"name\":\"node-1\"},\"outgoing\":true,\"seq\":0,"
    "\"request\":{\"method\":\"GET\",\"path\":\"/health\",\"url\":\"/health?x=1\","
    "\"headers\":{\"User-Agent\":\"curl/7.88.1\"},\"queryString\":{\"x\":\"1\"},\"bytes\":80},"
    "\"response\":{\"status\":404,\"headers\":{\"Content-Type\":\"text/plain\"},"
    "\"body\":{\"size\":3,\"truncated\":false,\"encoding\":\"text\",\"data\":\"no\\n\"},\"bytes\":60},"
    "\"dns\":{\"questions\":[{\"name\":\"a.b\",\"type\":\"A\"}]},\"error\":{\"message\":\"reset\"},"
    "\"summary\":\"GET /health\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct st_rec *rec;
    static json_t *json;
    if (!rec) {
        rec = st_rec_from_text(entry_text, sizeof(entry_text) - 1);
        json = json_loads(entry_text, 0, NULL);
        if (!rec || !json)
            __builtin_trap();
    }
    if (size > KFL_MAX_QUERY + 16)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct kfl_error err;
    struct kfl_query *q = kfl_compile(text, &err);
    if (!q) {
        size_t len = strlen(text);
        if (err.position < 0 || (size_t)err.position > len || err.length < 1 || !err.message[0])
            __builtin_trap();
    } else {
        struct kfl_subject a = {.rec = rec}, b = {.json = json};
        bool ma = kfl_match(q, &a), mb = kfl_match(q, &b);
        kfl_subject_done(&a);
        kfl_subject_done(&b);
        /* now() may differ between the two evaluations only by a millisecond; queries
         * comparing with now() exactly are rare enough to accept the noise */
        if (ma != mb && !strstr(text, "now") && !strstr(text, "within"))
            __builtin_trap();
        kfl_free(q);
    }
    free(text);
    return 0;
}
