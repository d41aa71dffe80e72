/* jpath.h - reading fields of an entry's JSON in tests: jpath(j, "dns.answers.0.data"). */
#ifndef SIDETAP_TEST_JPATH_H
#define SIDETAP_TEST_JPATH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Walks "a.b.0.c" through objects and arrays; NULL when absent. */
static inline json_t *jpath(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && j; tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(j)) j = json_array_get(j, strtoul(tok, NULL, 10));
        else j = json_object_get(j, tok);
    }
    return j;
}

/* The integer at path, or -1 when absent. */
static inline long long jint(json_t *j, const char *path)
{
    json_t *v = jpath(j, path);
    return v ? json_integer_value(v) : -1;
}

#endif
