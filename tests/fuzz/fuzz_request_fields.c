/*
 * libFuzzer target for ngx_module/ksv_request_fields.c, the scan of a
 * request's "id" and "parameters" that routing rules, sticky keys and
 * log lines read before the request is parsed.
 *
 * The input is a request's JSON.  Every span found must lie inside the
 * input and every text fit in its span.  And jansson is the oracle: a
 * document jansson reads as an object (no duplicates, nesting the scan
 * allows) must scan, with the same "id" and, for each member of
 * "parameters" (names under 256 bytes), the same value (strings
 * compared unescaped).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ksv_request_fields.h"


static void
check_span(const uint8_t *data, size_t size, const char *p, size_t len)
{
    if (p == NULL) {
        return;
    }

    if ((const uint8_t *) p < data || (const uint8_t *) p + len > data + size
        || len == 0)
    {
        abort();
    }
}


static int64_t
text_of(const char *v, size_t len, char **out)
{
    int64_t  n;

    *out = malloc(len ? len : 1);
    if (*out == NULL) {
        abort();
    }

    n = ksv_json_text(v, len, *out);

    if (n > (int64_t) len) {
        abort();
    }

    return n;
}


static size_t
depth_of(const uint8_t *data, size_t size)
{
    size_t  i, n;

    for (i = 0, n = 0; i < size; i++) {
        n += (data[i] == '[' || data[i] == '{');
    }

    return n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc;
    char                 *text;
    size_t                vlen;
    json_t               *root, *params, *v;
    int64_t               n;
    const char           *key, *value;
    json_error_t          jerr;
    ksv_request_fields_t  f;

    rc = ksv_request_fields((const char *) data, size, &f);

    check_span(data, size, f.id, f.id_len);
    check_span(data, size, f.parameters, f.parameters_len);

    if (rc == 0 && f.id != NULL) {
        n = text_of(f.id, f.id_len, &text);
        free(text);
        (void) n;
    }

    /* a few names, and the input's first bytes as one */

    if (rc == 0 && f.parameters != NULL) {
        static const char  *names[] = { "tier", "user", "id", "" };
        size_t              k;

        for (k = 0; k < 5; k++) {
            const char  *name = k < 4 ? names[k] : (const char *) data;
            size_t       nlen = k < 4 ? strlen(name) : (size < 8 ? size : 8);

            if (ksv_json_member(f.parameters, f.parameters_len, name, nlen,
                                &value, &vlen)
                == 0)
            {
                check_span(data, size, value, vlen);
                n = text_of(value, vlen, &text);
                free(text);
            }
        }
    }

    /* the oracle */

    /* jansson takes a raw NUL byte as the end of its input: not JSON */

    if (depth_of(data, size) > KSV_FIELDS_MAX_DEPTH
        || memchr(data, '\0', size) != NULL)
    {
        return 0;
    }

    root = json_loadb((const char *) data, size,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);

    if (root == NULL) {
        return 0;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        return 0;
    }

    if (rc != 0) {
        abort();
    }

    if ((json_object_get(root, "id") != NULL) != (f.id != NULL)) {
        abort();
    }

    params = json_object_get(root, "parameters");

    if ((params != NULL) != (f.parameters != NULL)) {
        abort();
    }

    if (json_is_object(params)) {
        json_object_foreach(params, key, v) {
            /* an escaped name is compared in a 256-byte buffer */

            if (strlen(key) >= 256) {
                continue;
            }

            if (ksv_json_member(f.parameters, f.parameters_len, key,
                                strlen(key), &value, &vlen)
                != 0)
            {
                abort();
            }

            n = text_of(value, vlen, &text);

            if (json_is_null(v) != (n < 0)) {
                abort();
            }

            if (json_is_string(v)
                && ((size_t) n != json_string_length(v)
                    || memcmp(text, json_string_value(v), (size_t) n) != 0))
            {
                abort();
            }

            free(text);
        }
    }

    json_decref(root);

    return 0;
}
