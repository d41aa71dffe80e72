/* test_ui_assets.c - checks the web UI asset table that collector/ui/gen_assets.py generates:
 * index.html is there and not cacheable forever, every asset it references is in the table
 * and content-hashed, each gzip copy inflates to exactly the identity bytes, ETags are
 * quoted and unique, and content types match the file names. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "ui_assets.h"

static const struct st_ui_asset *find(const char *path)
{
    for (size_t i = 0; i < st_ui_asset_count; i++)
        if (strcmp(st_ui_assets[i].path, path) == 0)
            return &st_ui_assets[i];
    return NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Inflates a gzip member and compares it with the identity bytes. */
static int gzip_matches(const struct st_ui_asset *a)
{
    unsigned char *out = malloc(a->len + 1);
    z_stream z = {0};
    int ok = 0;
    if (!out || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        goto done;
    z.next_in = (unsigned char *)a->gzip;
    z.avail_in = (uInt)a->gzip_len;
    z.next_out = out;
    z.avail_out = (uInt)a->len + 1;
    int rc = inflate(&z, Z_FINISH);
    ok = rc == Z_STREAM_END && z.total_out == a->len && memcmp(out, a->data, a->len) == 0;
    inflateEnd(&z);
done:
    free(out);
    return ok;
}

int main(void)
{
    CHECK(st_ui_asset_count >= 2);
    const struct st_ui_asset *index = find("/index.html");
    CHECK(index != NULL);
    if (!index)
        return CHECK_DONE();
    CHECK_STR(index->content_type, "text/html; charset=utf-8");
    CHECK_INT(index->immutable, 0);

    /* Every /assets/ reference in index.html resolves to an immutable table entry. */
    char *html = malloc(index->len + 1);
    if (!html)
        return 1;
    memcpy(html, index->data, index->len);
    html[index->len] = '\0';
    int refs = 0, has_js = 0;
    for (char *p = strstr(html, "\"/assets/"); p; p = strstr(p + 1, "\"/assets/")) {
        char *end = strchr(p + 1, '"');
        CHECK(end != NULL);
        if (!end)
            break;
        *end = '\0';
        const struct st_ui_asset *a = find(p + 1);
        if (!a)
            fprintf(stderr, "index.html references %s, not in the table\n", p + 1);
        CHECK(a != NULL);
        if (a) {
            CHECK_INT(a->immutable, 1);
            has_js |= ends_with(a->path, ".js");
        }
        refs++;
        *end = '"';
        p = end;
    }
    free(html);
    CHECK(refs >= 1);
    CHECK(has_js);

    for (size_t i = 0; i < st_ui_asset_count; i++) {
        const struct st_ui_asset *a = &st_ui_assets[i];
        CHECK(a->path[0] == '/');
        CHECK(a->len > 0);
        size_t el = strlen(a->etag);
        CHECK(el > 2 && a->etag[0] == '"' && a->etag[el - 1] == '"');
        for (size_t j = i + 1; j < st_ui_asset_count; j++)
            CHECK(strcmp(a->etag, st_ui_assets[j].etag) != 0);
        if (ends_with(a->path, ".js"))
            CHECK_STR(a->content_type, "text/javascript; charset=utf-8");
        if (ends_with(a->path, ".css"))
            CHECK_STR(a->content_type, "text/css; charset=utf-8");
        if (a->gzip) {
            CHECK(a->gzip_len > 0 && a->gzip_len < a->len);
            if (!gzip_matches(a))
                fprintf(stderr, "%s: gzip copy does not inflate to the identity bytes\n", a->path);
            CHECK(gzip_matches(a));
        } else {
            CHECK_INT(a->gzip_len, 0);
        }
    }
    /* The JavaScript bundle is large enough that it must be served compressed. */
    for (size_t i = 0; i < st_ui_asset_count; i++)
        if (ends_with(st_ui_assets[i].path, ".js"))
            CHECK(st_ui_assets[i].gzip != NULL);
    return CHECK_DONE();
}
