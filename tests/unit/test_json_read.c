/*
 * Unit tests for common/ksv_json_read.c: the load request's JSON, and
 * a ModelConfig in protobuf's JSON mapping turned into config.pbtxt text
 * that the one pbtxt parser reads as the same configuration.
 */

#include <stdio.h>
#include <string.h>

#include "ksv_test.h"
#include "ksv_json_read.h"
#include "ksv_pbtxt.h"


static void
test_parse_and_get(void)
{
    char          err[128];
    ksv_arena_t   arena;
    ksv_jnode_t  *t, *p;
    const char   *text = " {\"parameters\": {\"config\": \"{\\\"a\\\":1}\","
                         " \"file:1/model.py\": \"aGk=\", \"x\": [1, -2.5e3,"
                         " true, null]}, \"u\": \"\\u00e9\\ud83d\\ude00\"} ";

    ksv_arena_init(&arena);
    CHECK(ksv_json_parse(text, strlen(text), &arena, &t, err, sizeof(err))
          == 0);
    p = ksv_json_get(t, "parameters");
    CHECK(p != NULL && p->type == KSV_JSON_OBJECT);
    CHECK(strcmp(ksv_json_get(p, "config")->text, "{\"a\":1}") == 0);
    CHECK(ksv_json_get(p, "x")->child->next->type == KSV_JSON_NUMBER);
    CHECK(strcmp(ksv_json_get(t, "u")->text, "\xc3\xa9\xf0\x9f\x98\x80")
          == 0);
    CHECK(ksv_json_get(t, "missing") == NULL);

    CHECK(ksv_json_parse("{\"a\":", 5, &arena, &t, err, sizeof(err)) != 0);
    CHECK(strncmp(err, "offset 5", 8) == 0);
    CHECK(ksv_json_parse("[1] x", 5, &arena, &t, err, sizeof(err)) != 0);
    CHECK(ksv_json_parse("\"a\x01\"", 4, &arena, &t, err, sizeof(err))
          != 0);
    ksv_arena_free(&arena);
}


static void
test_nesting_is_bounded(void)
{
    char          err[128], deep[200];
    ksv_arena_t   arena;
    ksv_jnode_t  *t;

    memset(deep, '[', sizeof(deep));
    ksv_arena_init(&arena);
    CHECK(ksv_json_parse(deep, sizeof(deep), &arena, &t, err, sizeof(err))
          != 0);
    CHECK(strstr(err, "nested too deeply") != NULL);
    ksv_arena_free(&arena);
}


static void
test_config_to_pbtxt(void)
{
    char                 err[256];
    ksv_arena_t          arena;
    ksv_writer_t         w;
    ksv_jnode_t         *t;
    ksv_model_config_t   c;
    const char          *json =
        "{\"name\": \"m\", \"backend\": \"python\", \"max_batch_size\": \"16\","
        " \"input\": [{\"name\": \"IN\", \"data_type\": \"TYPE_FP32\","
        " \"dims\": [\"4\", -1]}],"
        " \"output\": [{\"name\": \"7\", \"data_type\": \"TYPE_INT64\","
        " \"dims\": [1]}],"
        " \"instance_group\": [{\"count\": 3, \"kind\": \"KIND_CPU\"}],"
        " \"dynamic_batching\": {\"preferred_batch_size\": [2, 4],"
        " \"default_queue_policy\": {\"timeout_action\": \"DELAY\"}},"
        " \"parameters\": {\"EXECUTION_ENV_PATH\": {\"string_value\":"
        " \"a \\\"b\\\"\\n\"}}, \"unknown_thing\": {\"deep\": [[1]]}}";

    ksv_arena_init(&arena);
    ksv_writer_init(&w);
    CHECK(ksv_json_parse(json, strlen(json), &arena, &t, err, sizeof(err))
          == 0);
    CHECK(ksv_json_to_pbtxt(t, &w, err, sizeof(err)) == 0);
    CHECK(ksv_pbtxt_parse((const char *) w.buf, w.len, "override", &arena,
                          &c, err, sizeof(err), NULL, NULL) == 0);
    CHECK(ksv_str_eq(c.name, "m") && ksv_str_eq(c.backend, "python"));
    CHECK(c.max_batch_size == 16);
    CHECK(c.ninputs == 1 && c.inputs[0].ndims == 2
          && c.inputs[0].dims[0] == 4 && c.inputs[0].dims[1] == -1);
    CHECK(c.noutputs == 1 && ksv_str_eq(c.outputs[0].name, "7"));
    CHECK(c.ngroups == 1 && c.groups[0].count == 3
          && c.groups[0].kind == KSV_KIND_CPU);
    CHECK(c.dynamic_batching.enabled && c.dynamic_batching.npreferred == 2
          && c.dynamic_batching.default_queue_policy.timeout_action
             == KSV_TIMEOUT_DELAY);
    CHECK(c.nparameters == 1
          && ksv_str_eq(c.parameters[0].key, "EXECUTION_ENV_PATH")
          && ksv_str_eq(c.parameters[0].value, "a \"b\"\n"));

    CHECK(ksv_json_parse("[1]", 3, &arena, &t, err, sizeof(err)) == 0);
    CHECK(ksv_json_to_pbtxt(t, &w, err, sizeof(err)) != 0);

    ksv_writer_free(&w);
    ksv_arena_free(&arena);
}


static void
test_base64(void)
{
    long     n;
    uint8_t  out[16];

    n = ksv_base64_decode("aGVsbG8=", 8, out);
    CHECK(n == 5 && memcmp(out, "hello", 5) == 0);
    n = ksv_base64_decode("aGVsbG8", 7, out);
    CHECK(n == 5 && memcmp(out, "hello", 5) == 0);
    CHECK(ksv_base64_decode("", 0, out) == 0);
    CHECK(ksv_base64_decode("a b=", 4, out) == -1);
}


int
main(void)
{
    test_parse_and_get();
    test_nesting_is_bounded();
    test_config_to_pbtxt();
    test_base64();

    KSV_TEST_END();
}
