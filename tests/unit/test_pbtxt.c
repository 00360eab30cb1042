/*
 * Unit tests for common/ksv_pbtxt.c: Triton config.pbtxt parsing.
 * Each test reads as an example of a config and what it turns into.
 */

#include <stdio.h>
#include <string.h>

#include "ksv_pbtxt.h"
#include "ksv_test.h"


#define CHECK_STR(s, lit)  CHECK(ksv_str_eq((s), (lit)))


typedef struct {
    int   count;
    char  last[512];
} warnings_t;


static void
collect_warning(void *ctx, const char *msg)
{
    warnings_t  *w = ctx;

    w->count++;
    snprintf(w->last, sizeof(w->last), "%s", msg);
}


static ksv_arena_t         arena;
static ksv_model_config_t  cfg;
static warnings_t          warns;
static char                err[512];


static int
parse(const char *text)
{
    ksv_arena_free(&arena);
    ksv_arena_init(&arena);
    memset(&warns, 0, sizeof(warns));
    return ksv_pbtxt_parse(text, strlen(text), "config.pbtxt", &arena, &cfg,
                           err, sizeof(err), collect_warning, &warns);
}


/* Triton's quick-start "simple" model, verbatim. */
static void
test_triton_simple(void)
{
    const char  *text =
        "name: \"simple\"\n"
        "platform: \"tensorflow_graphdef\"\n"
        "max_batch_size: 8\n"
        "input [\n"
        "  {\n"
        "    name: \"INPUT0\"\n"
        "    data_type: TYPE_INT32\n"
        "    dims: [ 16 ]\n"
        "  },\n"
        "  {\n"
        "    name: \"INPUT1\"\n"
        "    data_type: TYPE_INT32\n"
        "    dims: [ 16 ]\n"
        "  }\n"
        "]\n"
        "output [\n"
        "  {\n"
        "    name: \"OUTPUT0\"\n"
        "    data_type: TYPE_INT32\n"
        "    dims: [ 16 ]\n"
        "  },\n"
        "  {\n"
        "    name: \"OUTPUT1\"\n"
        "    data_type: TYPE_INT32\n"
        "    dims: [ 16 ]\n"
        "  }\n"
        "]\n";

    CHECK(parse(text) == 0);
    CHECK(warns.count == 0);
    CHECK_STR(cfg.name, "simple");
    CHECK_STR(cfg.platform, "tensorflow_graphdef");
    CHECK(cfg.backend.len == 0);
    CHECK(cfg.max_batch_size == 8);
    CHECK(cfg.ninputs == 2);
    CHECK(cfg.noutputs == 2);
    CHECK_STR(cfg.inputs[0].name, "INPUT0");
    CHECK_STR(cfg.inputs[1].name, "INPUT1");
    CHECK(cfg.inputs[1].datatype == KSV_TYPE_INT32);
    CHECK(cfg.inputs[1].ndims == 1 && cfg.inputs[1].dims[0] == 16);
    CHECK_STR(cfg.outputs[1].name, "OUTPUT1");
    CHECK(cfg.outputs[1].datatype == KSV_TYPE_INT32);
    CHECK(cfg.ngroups == 0);
    CHECK(cfg.dynamic_batching.enabled == 0);

    /* what the server fills in */
    CHECK(ksv_pbtxt_defaults(&cfg, "simple", &arena, err, sizeof(err)) == 0);
    CHECK(cfg.ngroups == 1);
    CHECK(cfg.groups[0].kind == KSV_KIND_CPU);
    CHECK(cfg.groups[0].count == 1);
    CHECK_STR(cfg.groups[0].name, "simple_0");
    CHECK(cfg.version_policy.kind == KSV_VPOLICY_LATEST);
    CHECK(cfg.version_policy.latest_num == 1);
    CHECK_STR(cfg.default_model_filename, "model.py");
}


static void
test_io_fields(void)
{
    const char  *text =
        "backend: 'python'\n"
        "input { name: \"TEXT\" data_type: TYPE_STRING dims: -1 dims: 2\n"
        "        optional: true allow_ragged_batch: true\n"
        "        reshape: { shape: [ 2, -1 ] } }\n"
        "output: { name: \"P\", data_type: TYPE_FP16, dims: [] };\n"
        "output < name: \"B\" data_type: TYPE_BF16 dims: [1,2,3] >\n";

    CHECK(parse(text) == 0);
    CHECK_STR(cfg.backend, "python");
    CHECK(cfg.ninputs == 1);
    CHECK(cfg.inputs[0].datatype == KSV_TYPE_BYTES);
    CHECK(cfg.inputs[0].ndims == 2);
    CHECK(cfg.inputs[0].dims[0] == -1 && cfg.inputs[0].dims[1] == 2);
    CHECK(cfg.inputs[0].optional == 1);
    CHECK(cfg.inputs[0].allow_ragged_batch == 1);
    CHECK(cfg.inputs[0].has_reshape == 1);
    CHECK(cfg.inputs[0].reshape_ndims == 2);
    CHECK(cfg.inputs[0].reshape[1] == -1);
    CHECK(cfg.noutputs == 2);
    CHECK(cfg.outputs[0].datatype == KSV_TYPE_FP16);
    CHECK(cfg.outputs[0].ndims == 0);
    CHECK(cfg.outputs[0].optional == 0);
    CHECK(cfg.outputs[1].datatype == KSV_TYPE_BF16);
    CHECK(cfg.outputs[1].ndims == 3 && cfg.outputs[1].dims[2] == 3);
}


static void
test_instance_groups(void)
{
    const char  *text =
        "name: \"m\"\n"
        "instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] },\n"
        "                 { name: \"cpus\" kind: KIND_CPU count: 3 } ]\n"
        "instance_group { kind: KIND_MODEL }\n"
        "instance_group { }\n"
        "instance_group { gpus: 3 }\n";

    CHECK(parse(text) == 0);
    CHECK(cfg.ngroups == 5);
    CHECK(cfg.groups[0].count == 2);
    CHECK(cfg.groups[0].kind == KSV_KIND_GPU);
    CHECK(cfg.groups[0].ngpus == 2 && cfg.groups[0].gpus[1] == 1);
    CHECK_STR(cfg.groups[1].name, "cpus");
    CHECK(cfg.groups[1].count == 3 && cfg.groups[1].kind == KSV_KIND_CPU);
    CHECK(cfg.groups[2].kind == KSV_KIND_MODEL);
    CHECK(cfg.groups[2].count == 1);            /* Triton's default */
    CHECK(cfg.groups[3].kind == KSV_KIND_AUTO);

    CHECK(ksv_pbtxt_defaults(&cfg, "m", &arena, err, sizeof(err)) == 0);
    CHECK_STR(cfg.groups[0].name, "m_0");
    CHECK_STR(cfg.groups[1].name, "cpus");
    CHECK(cfg.groups[3].kind == KSV_KIND_CPU);  /* AUTO, no gpus */
    CHECK(cfg.groups[4].kind == KSV_KIND_GPU);  /* AUTO with gpus */

    CHECK(parse("instance_group { count: 0 }") == 0);
    CHECK(ksv_pbtxt_defaults(&cfg, "m", &arena, err, sizeof(err)) == -1);
    CHECK(strstr(err, "count 0") != NULL);

    CHECK(parse("instance_group { kind: KIND_TPU }") == -1);
    CHECK(strcmp(err, "config.pbtxt:1:24: unknown instance_group kind "
                      "'KIND_TPU'") == 0);
}


static void
test_dynamic_batching(void)
{
    const char  *text =
        "dynamic_batching {\n"
        "  preferred_batch_size: [ 4, 8 ]\n"
        "  max_queue_delay_microseconds: 100\n"
        "  preserve_ordering: true\n"
        "  priority_levels: 2\n"
        "  default_priority_level: 1\n"
        "  default_queue_policy {\n"
        "    timeout_action: DELAY\n"
        "    default_timeout_microseconds: 5000000\n"
        "    allow_timeout_override: true\n"
        "    max_queue_size: 16\n"
        "  }\n"
        "}\n";

    CHECK(parse(text) == 0);
    CHECK(cfg.dynamic_batching.enabled == 1);
    CHECK(cfg.dynamic_batching.npreferred == 2);
    CHECK(cfg.dynamic_batching.preferred_batch_size[1] == 8);
    CHECK(cfg.dynamic_batching.max_queue_delay_us == 100);
    CHECK(cfg.dynamic_batching.preserve_ordering == 1);
    CHECK(cfg.dynamic_batching.priority_levels == 2);
    CHECK(cfg.dynamic_batching.default_priority_level == 1);
    CHECK(cfg.dynamic_batching.default_queue_policy.timeout_action
          == KSV_TIMEOUT_DELAY);
    CHECK(cfg.dynamic_batching.default_queue_policy.default_timeout_us
          == 5000000);
    CHECK(cfg.dynamic_batching.default_queue_policy.allow_timeout_override);
    CHECK(cfg.dynamic_batching.default_queue_policy.max_queue_size == 16);

    CHECK(parse("dynamic_batching { }") == 0);
    CHECK(cfg.dynamic_batching.enabled == 1);
    CHECK(cfg.dynamic_batching.npreferred == 0);
}


static void
test_parameters(void)
{
    const char  *text =
        "parameters { key: \"EXECUTION_ENV_PATH\"\n"
        "             value: { string_value: \"$$TRITON_MODEL_DIRECTORY/e\" } }\n"
        "parameters: [ { key: \"a\" value { string_value: \"1\" } },\n"
        "              { key: \"b\" value { string_value: \"x\\ty\\\"\" } } ]\n"
        "parameters { key: \"empty\" }\n";

    CHECK(parse(text) == 0);
    CHECK(cfg.nparameters == 4);
    CHECK_STR(cfg.parameters[0].key, "EXECUTION_ENV_PATH");
    CHECK_STR(cfg.parameters[0].value, "$$TRITON_MODEL_DIRECTORY/e");
    CHECK_STR(cfg.parameters[1].key, "a");
    CHECK_STR(cfg.parameters[1].value, "1");
    CHECK_STR(cfg.parameters[2].value, "x\ty\"");
    CHECK_STR(cfg.parameters[3].key, "empty");
    CHECK(cfg.parameters[3].value.len == 0);

    CHECK(parse("parameters { value { string_value: \"v\" } }") == -1);
    CHECK(strstr(err, "without a key") != NULL);
}


static void
test_version_policy(void)
{
    CHECK(parse("version_policy: { latest: { num_versions: 2 } }") == 0);
    CHECK(cfg.version_policy.kind == KSV_VPOLICY_LATEST);
    CHECK(cfg.version_policy.latest_num == 2);

    CHECK(parse("version_policy { all { } }") == 0);
    CHECK(cfg.version_policy.kind == KSV_VPOLICY_ALL);

    CHECK(parse("version_policy { specific { versions: [1, 3] "
                "versions: 7 } }") == 0);
    CHECK(cfg.version_policy.kind == KSV_VPOLICY_SPECIFIC);
    CHECK(cfg.version_policy.nversions == 3);
    CHECK(cfg.version_policy.versions[0] == 1);
    CHECK(cfg.version_policy.versions[2] == 7);

    CHECK(parse("default_model_filename: \"net.py\"") == 0);
    CHECK_STR(cfg.default_model_filename, "net.py");
    CHECK(ksv_pbtxt_defaults(&cfg, "x", &arena, err, sizeof(err)) == 0);
    CHECK_STR(cfg.default_model_filename, "net.py");
    CHECK_STR(cfg.name, "x");
}


static void
test_syntax_details(void)
{
    /* comments, separators, adjacent strings, escapes, hex, octal */
    CHECK(parse("# leading comment\n"
                "name: \"ab\" 'cd' ; # trailing\n"
                "platform: \"\\x41\\102\\n\",\n"
                "max_batch_size: 0x10\n") == 0);
    CHECK_STR(cfg.name, "abcd");
    CHECK_STR(cfg.platform, "AB\n");
    CHECK(cfg.max_batch_size == 16);

    CHECK(parse("") == 0);
    CHECK(cfg.name.len == 0);

    /* unknown fields: skipped at any nesting, one warning each */
    CHECK(parse("name: \"m\"\n"
                "optimization { execution_accelerators {\n"
                "  gpu_execution_accelerator : [ { name : \"tensorrt\"\n"
                "    parameters { key: \"precision_mode\" value: \"FP16\" }}]\n"
                "}}\n"
                "model_warmup [ { batch_size: 1 inputs { key: \"x\" value: {\n"
                "  data_type: TYPE_FP32 dims: [1] zero_data: true } } } ]\n"
                "input { name: \"x\" format: FORMAT_NCHW data_type: TYPE_FP32"
                " dims: 3 }\n"
                "cc_model_filenames: [ \"a\", \"b\" ] ratio: -1.5e-3\n") == 0);
    CHECK(warns.count == 3);    /* model_warmup and format are known */
    CHECK(cfg.nwarmup == 1);
    CHECK(strcmp(warns.last, "config.pbtxt:9:34: unknown field 'ratio' "
                             "ignored") == 0);
    CHECK_STR(cfg.name, "m");
    CHECK(cfg.ninputs == 1 && cfg.inputs[0].ndims == 1);
    CHECK(cfg.inputs[0].datatype == KSV_TYPE_FP32);
    CHECK(cfg.inputs[0].format == KSV_FORMAT_NCHW);
    CHECK(parse("input { name: \"x\" format: FORMAT_NHWC }\n"
                "output { name: \"y\" label_filename: \"l.txt\" }") == 0);
    CHECK(cfg.inputs[0].format == KSV_FORMAT_NHWC);
    CHECK_STR(cfg.outputs[0].label_filename, "l.txt");
    CHECK(parse("input { name: \"x\" format: FORMAT_NCWH }") == -1);
}


static void
test_errors(void)
{
    CHECK(parse("name: \"m\"\nmax_batch_size 8\n") == -1);
    CHECK(strcmp(err, "config.pbtxt:2:16: expected ':', found number") == 0);

    CHECK(parse("input {\n  name: \"x\"\n") == -1);
    CHECK(strcmp(err, "config.pbtxt:3:1: unexpected end of file, "
                      "expected '}'") == 0);

    CHECK(parse("name: \"abc\n\"") == -1);
    CHECK(strcmp(err, "config.pbtxt:1:7: unterminated string") == 0);

    CHECK(parse("input { data_type: TYPE_FP128 }") == -1);
    CHECK(strcmp(err, "config.pbtxt:1:20: unknown data_type "
                      "'TYPE_FP128'") == 0);

    CHECK(parse("max_batch_size: -1") == -1);
    CHECK(strstr(err, "config.pbtxt:1:17: integer -1 out of range") == err);

    CHECK(parse("max_batch_size: 99999999999999999999999") == -1);
    CHECK(strstr(err, "out of range") != NULL);

    CHECK(parse("max_batch_size: 1.5") == -1);
    CHECK(strcmp(err, "config.pbtxt:1:17: expected an integer, "
                      "found '1.5'") == 0);

    CHECK(parse("input { dims: [ 1, -2 ] }") == -1);
    CHECK(strstr(err, "config.pbtxt:1:20: integer -2 out of range") == err);

    CHECK(parse("input { dims: [ 1 2 ] }") == -1);
    CHECK(strcmp(err, "config.pbtxt:1:19: expected ',' or ']', "
                      "found number") == 0);

    CHECK(parse("name: \"m\" }") == -1);
    CHECK(strcmp(err, "config.pbtxt:1:11: expected a field name, "
                      "found '}'") == 0);

    CHECK(parse("name: @") == -1);
    CHECK(strcmp(err, "config.pbtxt:1:7: unexpected character '@'") == 0);

    CHECK(parse("name: 5") == -1);
    CHECK(strstr(err, "expected a quoted string") != NULL);

    CHECK(parse("input { optional: maybe }") == -1);
    CHECK(strstr(err, "expected true or false") != NULL);

    CHECK(parse("name: \"m\"") == 0);
    CHECK(ksv_pbtxt_defaults(&cfg, "other", &arena, err, sizeof(err)) == -1);
    CHECK(strstr(err, "does not match") != NULL);

    /* found by tests/fuzz/fuzz_pbtxt: nameless or typeless tensors */
    CHECK(parse("input { data_type: TYPE_FP32 dims: 1 }") == 0);
    CHECK(ksv_pbtxt_defaults(&cfg, "m", &arena, err, sizeof(err)) == -1);
    CHECK(strstr(err, "input 0 of model 'm' has no name") != NULL);

    CHECK(parse("output { name: \"Y\" dims: 1 }") == 0);
    CHECK(ksv_pbtxt_defaults(&cfg, "m", &arena, err, sizeof(err)) == -1);
    CHECK(strstr(err, "output 'Y' of model 'm' has no data_type") != NULL);
}


static void
test_limits(void)
{
    char    text[40000];
    size_t  n;
    int     i;

    /* dims: KSV_MAX_DIMS fit, one more does not */
    n = (size_t) snprintf(text, sizeof(text), "input { dims: [");
    for (i = 0; i < KSV_MAX_DIMS; i++) {
        n += snprintf(text + n, sizeof(text) - n, "%s1", i ? "," : "");
    }
    snprintf(text + n, sizeof(text) - n, "] }");
    CHECK(parse(text) == 0);
    CHECK(cfg.inputs[0].ndims == KSV_MAX_DIMS);

    snprintf(text + n, sizeof(text) - n, ",1] }");
    CHECK(parse(text) == -1);
    CHECK(strstr(err, "too many dims") != NULL);

    /* list lengths: KSV_MAX_LIST gpus fit, one more does not */
    n = (size_t) snprintf(text, sizeof(text), "instance_group { gpus: [");
    for (i = 0; i < KSV_MAX_LIST; i++) {
        n += snprintf(text + n, sizeof(text) - n, "%s%d", i ? "," : "", i);
    }
    snprintf(text + n, sizeof(text) - n, "] }");
    CHECK(parse(text) == 0);
    CHECK(cfg.groups[0].ngpus == KSV_MAX_LIST);
    CHECK(cfg.groups[0].gpus[KSV_MAX_LIST - 1] == KSV_MAX_LIST - 1);

    snprintf(text + n, sizeof(text) - n, ",0] }");
    CHECK(parse(text) == -1);
    CHECK(strstr(err, "too many gpus") != NULL);

    /* nesting: bounded even inside skipped fields */
    n = (size_t) snprintf(text, sizeof(text), "x ");
    for (i = 0; i < 1000; i++) {
        n += snprintf(text + n, sizeof(text) - n, "{ a ");
    }
    CHECK(parse(text) == -1);
    CHECK(strstr(err, "nesting deeper than") != NULL);

    /* many repeated messages grow correctly */
    n = 0;
    for (i = 0; i < 100; i++) {
        n += snprintf(text + n, sizeof(text) - n,
                      "output { name: \"o%d\" dims: %d }\n", i, i);
    }
    CHECK(parse(text) == 0);
    CHECK(cfg.noutputs == 100);
    CHECK_STR(cfg.outputs[57].name, "o57");
    CHECK(cfg.outputs[99].dims[0] == 99);
}


static void
test_model_warmup(void)
{
    CHECK(parse("max_batch_size: 4\n"
                "model_warmup [ { name: \"w\" batch_size: 2 count: 3\n"
                "  inputs { key: \"IN\" value { data_type: TYPE_FP32\n"
                "    dims: [ 16 ] zero_data: true } }\n"
                "  inputs { key: \"T\" value { data_type: TYPE_STRING\n"
                "    dims: 1 input_data_file: \"t.bin\" } } },\n"
                "  { name: \"r\" inputs [ { key: \"IN\" value {\n"
                "    data_type: TYPE_FP32 dims: [2] random_data: true } } ] } ]")
          == 0);
    CHECK(ksv_pbtxt_defaults(&cfg, "m", &arena, err, sizeof(err)) == 0);
    CHECK(cfg.nwarmup == 2);
    CHECK(ksv_str_eq(cfg.warmup[0].name, "w")
          && cfg.warmup[0].batch_size == 2 && cfg.warmup[0].count == 3);
    CHECK(cfg.warmup[0].ninputs == 2
          && ksv_str_eq(cfg.warmup[0].inputs[0].tensor.name, "IN")
          && cfg.warmup[0].inputs[0].tensor.datatype == KSV_TYPE_FP32
          && cfg.warmup[0].inputs[0].tensor.ndims == 1
          && cfg.warmup[0].inputs[0].tensor.dims[0] == 16
          && cfg.warmup[0].inputs[0].source == KSV_WARMUP_ZERO);
    CHECK(cfg.warmup[0].inputs[1].source == KSV_WARMUP_FILE
          && ksv_str_eq(cfg.warmup[0].inputs[1].file, "t.bin")
          && cfg.warmup[0].inputs[1].tensor.datatype == KSV_TYPE_BYTES);
    CHECK(cfg.warmup[1].batch_size == 1 && cfg.warmup[1].count == 0
          && cfg.warmup[1].inputs[0].source == KSV_WARMUP_RANDOM);

    /* a model that does not batch takes batches of one */
    CHECK(parse("model_warmup { name: \"w\" batch_size: 2 inputs { key: "
                "\"IN\" value { data_type: TYPE_FP32 dims: 1 } } }") == 0);
    CHECK(ksv_pbtxt_defaults(&cfg, "m", &arena, err, sizeof(err)) != 0);
    CHECK(strstr(err, "batch_size 2, but the model does not batch") != NULL);

    /* a file outside the warmup directory, an input without a type */
    CHECK(parse("model_warmup { inputs { key: \"IN\" value { data_type: "
                "TYPE_FP32 input_data_file: \"../x\" } } }") == 0);
    CHECK(ksv_pbtxt_defaults(&cfg, "m", &arena, err, sizeof(err)) != 0);
    CHECK(parse("model_warmup { inputs { key: \"IN\" value { dims: 1 } } }")
          == 0);
    CHECK(ksv_pbtxt_defaults(&cfg, "m", &arena, err, sizeof(err)) != 0);
}


int
main(void)
{
    ksv_arena_init(&arena);

    test_triton_simple();
    test_io_fields();
    test_instance_groups();
    test_dynamic_batching();
    test_parameters();
    test_version_policy();
    test_syntax_details();
    test_errors();
    test_limits();
    test_model_warmup();

    ksv_arena_free(&arena);

    KSV_TEST_END();
}
