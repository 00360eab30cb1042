/*
 * ngx_kserve: a request's own fields, scanned without parsing tensors
 * (ngx_module/ksv_request_fields.c).
 */

#include <string.h>

#include "ksv_request_fields.h"
#include "ksv_test.h"


/* The text of parameters.name of body, or NULL; into buf. */
static const char *
param(const char *body, const char *name, char *buf)
{
    size_t                vlen;
    int64_t               n;
    const char           *v;
    ksv_request_fields_t  f;

    if (ksv_request_fields(body, strlen(body), &f) != 0
        || f.parameters == NULL
        || ksv_json_member(f.parameters, f.parameters_len, name,
                           strlen(name), &v, &vlen) != 0)
    {
        return NULL;
    }

    n = ksv_json_text(v, vlen, buf);
    if (n < 0) {
        return NULL;
    }

    buf[n] = '\0';

    return buf;
}


static int
is(const char *got, const char *want)
{
    return got != NULL && strcmp(got, want) == 0;
}


static void
test_top_level_members(void)
{
    char                  buf[256];
    const char           *body;
    ksv_request_fields_t  f;

    body = "{\"id\": \"req-7\", \"inputs\": [{\"name\": \"x\", \"shape\": [2],"
           " \"datatype\": \"FP32\", \"data\": [1.5, -2e3]}],"
           " \"parameters\": {\"tier\": \"gold\", \"n\": 42, \"on\": true,"
           " \"off\": false, \"none\": null, \"obj\": {\"a\": [1, 2]}}}";

    CHECK(ksv_request_fields(body, strlen(body), &f) == 0);
    CHECK(f.id_len == 7 && memcmp(f.id, "\"req-7\"", 7) == 0);
    CHECK(f.parameters != NULL && f.parameters[0] == '{');

    CHECK(is(param(body, "tier", buf), "gold"));
    CHECK(is(param(body, "n", buf), "42"));
    CHECK(is(param(body, "on", buf), "true"));
    CHECK(is(param(body, "off", buf), "false"));
    CHECK(is(param(body, "obj", buf), "{\"a\": [1, 2]}"));
    CHECK(param(body, "none", buf) == NULL);        /* null: no value */
    CHECK(param(body, "missing", buf) == NULL);
    CHECK(param(body, "a", buf) == NULL);           /* nested: not a param */

    /* an "id" or "parameters" inside inputs is not the request's */
    body = "{\"inputs\": [{\"name\": \"x\", \"id\": \"inner\","
           " \"parameters\": {\"tier\": \"inner\"}}]}";
    CHECK(ksv_request_fields(body, strlen(body), &f) == 0);
    CHECK(f.id == NULL && f.parameters == NULL);

    /* no parameters at all, an empty object */
    CHECK(ksv_request_fields("{}", 2, &f) == 0 && f.parameters == NULL);
    CHECK(param("{\"parameters\": {}}", "tier", buf) == NULL);
}


static void
test_escapes(void)
{
    char  buf[256];

    /* escaped names and values are compared and given unescaped */
    CHECK(is(param("{\"\\u0070arameters\": {\"ti\\u0065r\": \"a\\\"b\"}}",
                   "tier", buf), "a\"b"));
    CHECK(is(param("{\"parameters\": {\"s\": \"\\u00e9\\u20ac\\ud83d\\ude00"
                   "\\n\\/\"}}", "s", buf),
             "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n/"));

    /* a lone surrogate or a bad escape: no value */
    CHECK(param("{\"parameters\": {\"s\": \"\\ud83d\"}}", "s", buf) == NULL);
    CHECK(param("{\"parameters\": {\"s\": \"\\x\"}}", "s", buf) == NULL);

    /* braces inside strings do not count */
    CHECK(is(param("{\"inputs\": [\"}]{\"], \"parameters\": {\"k\": \"]\"}}",
                   "k", buf), "]"));
}


/* {"a": [[...]]} with depth arrays */
static char *
nest(char *buf, int depth)
{
    int  i;

    strcpy(buf, "{\"a\": ");

    for (i = 0; i < depth; i++) {
        strcat(buf, "[");
    }

    for (i = 0; i < depth; i++) {
        strcat(buf, "]");
    }

    strcat(buf, "}");

    return buf;
}


static void
test_malformed(void)
{
    int                    i;
    char                   deep[400];
    ksv_request_fields_t   f;
    static const char     *bad[] = {
        "", "[]", "\"s\"", "{", "{\"id\"", "{\"id\":}", "{\"id\": 1,}",
        "{\"a\": [1, 2}", "{\"a\": {\"b\": 1]}", "{\"a\": \"unterminated}",
        "{\"a\" 1}", "{1: 2}", "{\"a\": 1 \"b\": 2}", "{\"a\": \"\x01\"}"
    };

    for (i = 0; i < (int) (sizeof(bad) / sizeof(bad[0])); i++) {
        CHECK(ksv_request_fields(bad[i], strlen(bad[i]), &f) == -1);
        CHECK(f.id == NULL && f.parameters == NULL);
    }

    /* nesting: the top object and KSV_FIELDS_MAX_DEPTH more, no deeper */
    nest(deep, KSV_FIELDS_MAX_DEPTH);
    CHECK(ksv_request_fields(deep, strlen(deep), &f) == 0);
    nest(deep, KSV_FIELDS_MAX_DEPTH + 1);
    CHECK(ksv_request_fields(deep, strlen(deep), &f) == -1);

    /* only the JSON header of a binary request: len bounds the scan */
    CHECK(ksv_request_fields("{\"id\": \"x\"}\x00\xff\xfe", 11, &f) == 0);
    CHECK(f.id_len == 3);
}


int
main(void)
{
    test_top_level_members();
    test_escapes();
    test_malformed();

    KSV_TEST_END();
}
