/*
 * Unit tests for ngx_module/ksv_infer_request.c, ksv_infer_reply.c and
 * ksv_json_write.c: JSON inference requests checked against a model
 * configuration, and the JSON answers rendered from instance replies
 * (inference, metadata, statistics).
 */

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_infer_reply.h"
#include "ksv_infer_request.h"
#include "ksv_json_write.h"
#include "ksv_test.h"


static ksv_io_config_t     simple_inputs[2];
static ksv_io_config_t     simple_outputs[2];
static ksv_model_config_t  simple;

static ksv_io_config_t     typed_inputs[KSV_TYPE_COUNT];
static ksv_io_config_t     typed_outputs[1];
static ksv_model_config_t  typed;
static char                typed_names[KSV_TYPE_COUNT][32];


static void
io(ksv_io_config_t *t, const char *name, ksv_datatype_t dt, int64_t dim)
{
    memset(t, 0, sizeof(*t));
    t->name = ksv_str_c(name);
    t->datatype = (uint8_t) dt;
    t->ndims = 1;
    t->dims[0] = dim;
}


static void
setup(void)
{
    int  i;

    /* Triton's "simple": two INT32 [16] inputs, batching up to 8 */
    io(&simple_inputs[0], "INPUT0", KSV_TYPE_INT32, 16);
    io(&simple_inputs[1], "INPUT1", KSV_TYPE_INT32, 16);
    io(&simple_outputs[0], "OUTPUT0", KSV_TYPE_INT32, 16);
    io(&simple_outputs[1], "OUTPUT1", KSV_TYPE_INT32, 16);

    simple.name = ksv_str_c("simple");
    simple.backend = ksv_str_c("python");
    simple.max_batch_size = 8;
    simple.ninputs = 2;
    simple.inputs = simple_inputs;
    simple.noutputs = 2;
    simple.outputs = simple_outputs;

    /* one optional input per datatype, any shape, no batching */
    for (i = 1; i < KSV_TYPE_COUNT; i++) {
        snprintf(typed_names[i], sizeof(typed_names[i]), "IN_%s",
                 ksv_datatype_name((ksv_datatype_t) i));
        io(&typed_inputs[i - 1], typed_names[i], (ksv_datatype_t) i, -1);
        typed_inputs[i - 1].optional = 1;
    }

    /* INT16 is 3-d, for shapes whose product overflows */
    typed_inputs[KSV_TYPE_INT16 - 1].ndims = 3;
    typed_inputs[KSV_TYPE_INT16 - 1].dims[1] = -1;
    typed_inputs[KSV_TYPE_INT16 - 1].dims[2] = -1;

    io(&typed_outputs[0], "OUT", KSV_TYPE_FP32, -1);

    typed.name = ksv_str_c("typed");
    typed.platform = ksv_str_c("custom_platform");
    typed.ninputs = KSV_TYPE_COUNT - 1;
    typed.inputs = typed_inputs;
    typed.noutputs = 1;
    typed.outputs = typed_outputs;
}


/* Parses body for config; keeps the result for the checks that follow. */

static ksv_arena_t         arena;
static ksv_infer_t         m;
static ksv_infer_buf_t    *json_bufs;
static uint8_t            *data[KSV_MAX_TENSORS];
static ksv_infer_error_t   err;


static int
parse(const ksv_model_config_t *config, const char *body)
{
    uint32_t     i;
    ksv_alloc_t  a;

    ksv_arena_free(&arena);
    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    memset(&err, 0, sizeof(err));
    memset(data, 0, sizeof(data));

    if (ksv_infer_parse(body, strlen(body), KSV_INFER_JSON_ONLY, config,
                        NULL, &a, &m, &json_bufs, &err)
        != 0)
    {
        return -1;
    }

    for (i = 0; i < m.ninputs; i++) {
        data[i] = json_bufs[i].data;
    }

    return 0;
}


static void
release(void)
{
    ksv_infer_free_bufs(json_bufs, m.ninputs);
}


/* Parse must fail with code and a message containing words. */

static int
fails(const ksv_model_config_t *config, const char *body, ksv_status_t code,
    const char *words)
{
    if (parse(config, body) == 0) {
        release();
        fprintf(stderr, "  accepted: %s\n", body);
        return 0;
    }

    if (err.code != code || strstr(err.message, words) == NULL) {
        fprintf(stderr, "  %s -> %d \"%s\"\n", body, err.code, err.message);
        return 0;
    }

    return 1;
}


#define ONES16  "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]"
#define IN0     "{\"name\":\"INPUT0\",\"shape\":[1,16],\"datatype\":\"INT32\"," \
                "\"data\":" ONES16 "}"
#define IN1     "{\"name\":\"INPUT1\",\"shape\":[1,16],\"datatype\":\"INT32\"," \
                "\"data\":" ONES16 "}"


static void
test_simple_request(void)
{
    int32_t  v;

    CHECK(parse(&simple,
          "{\"id\":\"req-1\",\"parameters\":{\"binary_data_output\":true,"
          "\"n\":-3,\"x\":1.5,\"s\":\"str\"},"
          "\"inputs\":[{\"name\":\"INPUT1\",\"shape\":[2,16],"
          "\"datatype\":\"INT32\",\"data\":[" ONES16 ",[0,1,2,3,4,5,6,7,8,9,"
          "10,11,12,13,14,-2147483648]]}," 
          "{\"name\":\"INPUT0\",\"shape\":[2,16],\"datatype\":\"INT32\","
          "\"data\":[[" ONES16 "," ONES16 "]]}],"
          "\"outputs\":[{\"name\":\"OUTPUT1\",\"parameters\":"
          "{\"binary_data\":true}}]}") == 0);

    CHECK(ksv_str_eq(m.request_id, "req-1"));
    CHECK(m.flags == KSV_INFER_ALL_BINARY);
    CHECK(m.model_name.len == 0 && m.timeout_ms == 0);

    CHECK(m.nparams == 4);
    CHECK(ksv_str_eq(m.params[0].key, "binary_data_output")
          && m.params[0].type == KSV_PARAM_BOOL && m.params[0].i == 1);
    CHECK(m.params[1].type == KSV_PARAM_INT && m.params[1].i == -3);
    CHECK(m.params[2].type == KSV_PARAM_DOUBLE && m.params[2].d == 1.5);
    CHECK(m.params[3].type == KSV_PARAM_STRING
          && ksv_str_eq(m.params[3].s, "str"));

    /* inputs keep the request's order */
    CHECK(m.ninputs == 2);
    CHECK(ksv_str_eq(m.inputs[0].name, "INPUT1"));
    CHECK(m.inputs[0].datatype == KSV_TYPE_INT32);
    CHECK(m.inputs[0].ndims == 2 && m.inputs[0].dims[0] == 2
          && m.inputs[0].dims[1] == 16);
    CHECK(m.inputs[0].byte_size == 2 * 16 * 4);

    /* little-endian, row-major, nested data flattened */
    CHECK(data[0][0] == 1 && data[0][1] == 0 && data[0][4] == 1);
    memcpy(&v, data[0] + (16 + 15) * 4, 4);
    CHECK(v == INT32_MIN);
    memcpy(&v, data[0] + (16 + 14) * 4, 4);
    CHECK(v == 14);
    CHECK(data[1] != NULL && m.inputs[1].byte_size == 128);

    CHECK(m.noutputs == 1);
    CHECK(ksv_str_eq(m.outputs[0].name, "OUTPUT1"));
    CHECK(m.outputs[0].flags == KSV_OUTPUT_BINARY);

    release();

    /* no outputs: every output; no id, no parameters */
    CHECK(parse(&simple, "{\"inputs\":[" IN0 "," IN1 "]}") == 0);
    CHECK(m.noutputs == 0 && m.nparams == 0 && m.request_id.len == 0);
    CHECK(m.flags == 0);
    release();
}


static void
test_types(void)
{
    float     f;
    double    d;
    uint16_t  u16;
    uint64_t  u64;
    int64_t   i64;

    CHECK(parse(&typed,
          "{\"inputs\":["
          "{\"name\":\"IN_BOOL\",\"shape\":[3],\"datatype\":\"BOOL\","
          "\"data\":[true,false,true]},"
          "{\"name\":\"IN_UINT16\",\"shape\":[2],\"datatype\":\"UINT16\","
          "\"data\":[0,65535]},"
          "{\"name\":\"IN_UINT64\",\"shape\":[3],\"datatype\":\"UINT64\","
          "\"data\":[18446744073709551615,9223372036854775808,7]},"
          "{\"name\":\"IN_INT64\",\"shape\":[2],\"datatype\":\"INT64\","
          "\"data\":[-9223372036854775808,9223372036854775807]},"
          "{\"name\":\"IN_FP32\",\"shape\":[2],\"datatype\":\"FP32\","
          "\"data\":[3,0.1]},"
          "{\"name\":\"IN_FP64\",\"shape\":[1],\"datatype\":\"FP64\","
          "\"data\":[2.5e-300]},"
          "{\"name\":\"IN_BYTES\",\"shape\":[3],\"datatype\":\"BYTES\","
          "\"data\":[\"ab\",\"\",\"\\u0000\\u00e9\"]}"
          "]}") == 0);

    CHECK(m.ninputs == 7);

    CHECK(m.inputs[0].byte_size == 3 && data[0][0] == 1 && data[0][1] == 0
          && data[0][2] == 1);

    memcpy(&u16, data[1] + 2, 2);
    CHECK(m.inputs[1].byte_size == 4 && u16 == 65535);

    /* beyond INT64_MAX, which jansson alone cannot read */
    CHECK(m.inputs[2].byte_size == 24);
    memcpy(&u64, data[2], 8);
    CHECK(u64 == UINT64_MAX);
    memcpy(&u64, data[2] + 8, 8);
    CHECK(u64 == 9223372036854775808ULL);
    memcpy(&u64, data[2] + 16, 8);
    CHECK(u64 == 7);

    memcpy(&i64, data[3], 8);
    CHECK(i64 == INT64_MIN);

    memcpy(&f, data[4], 4);
    CHECK(f == 3.0f);
    memcpy(&f, data[4] + 4, 4);
    CHECK(f == 0.1f);

    memcpy(&d, data[5], 8);
    CHECK(d == 2.5e-300);

    /* BYTES: u32 length + bytes each; \u0000 kept */
    CHECK(m.inputs[6].byte_size == (4 + 2) + 4 + (4 + 3));
    CHECK(memcmp(data[6], "\2\0\0\0ab\0\0\0\0\3\0\0\0\0\xc3\xa9", 17) == 0);

    release();

    /* zero elements: no buffer at all */
    CHECK(parse(&typed, "{\"inputs\":[{\"name\":\"IN_FP32\",\"shape\":[0],"
                        "\"datatype\":\"FP32\",\"data\":[]}]}") == 0);
    CHECK(m.inputs[0].byte_size == 0 && data[0] == NULL);
    release();

    /* big integers only count where a UINT64 is expected */
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_INT64\",\"shape\":[1],"
                        "\"datatype\":\"INT64\","
                        "\"data\":[9223372036854775808]}]}",
                KSV_ERR_INVALID_ARG, "not a valid INT64"));
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_UINT64\",\"shape\":[1],"
                        "\"datatype\":\"UINT64\","
                        "\"data\":[18446744073709551616]}]}",
                KSV_ERR_INVALID_ARG, "failed to parse"));
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_UINT64\",\"shape\":[1],"
                        "\"datatype\":\"UINT64\",\"data\":[-1]}]}",
                KSV_ERR_INVALID_ARG, "not a valid UINT64"));
    CHECK(fails(&typed, "{\"parameters\":{\"p\":18446744073709551615},"
                        "\"inputs\":[]}",
                KSV_ERR_INVALID_ARG, "out of range"));

    /* digits of a fraction are not integers */
    CHECK(parse(&typed, "{\"inputs\":[{\"name\":\"IN_FP64\",\"shape\":[1],"
                        "\"datatype\":\"FP64\","
                        "\"data\":[0.12345678901234567890]}]}") == 0);
    release();
}


static void
test_errors(void)
{
    CHECK(fails(&simple, "", KSV_ERR_INVALID_ARG, "empty"));
    CHECK(fails(&simple, "{not json", KSV_ERR_INVALID_ARG,
                "failed to parse"));
    CHECK(fails(&simple, "[1]", KSV_ERR_INVALID_ARG, "object"));
    CHECK(fails(&simple, "{\"inputs\":{}}", KSV_ERR_INVALID_ARG, "inputs"));
    CHECK(fails(&simple, "{\"id\":5,\"inputs\":[]}", KSV_ERR_INVALID_ARG,
                "'id'"));
    CHECK(fails(&simple, "{\"inputs\":[],\"inputs\":[]}",
                KSV_ERR_INVALID_ARG, "duplicate"));
    CHECK(fails(&simple, "{\"parameters\":{\"a\":[1]},\"inputs\":[]}",
                KSV_ERR_INVALID_ARG, "parameter 'a'"));

    /* Triton's words, lists included */
    CHECK(fails(&simple, "{\"inputs\":[" IN0 "]}", KSV_ERR_INVALID_ARG,
                "expected 2 inputs but got 1 inputs for model 'simple'. "
                "Got input(s) ['INPUT0'], but missing required input(s) "
                "['INPUT1']. Please provide all required input(s)."));
    CHECK(fails(&simple, "{\"inputs\":[]}", KSV_ERR_INVALID_ARG,
                "Got input(s) [], but missing required input(s) "
                "['INPUT0','INPUT1']."));
    CHECK(fails(&simple, "{\"inputs\":[" IN0 ",{\"name\":\"X\","
                "\"shape\":[1],\"datatype\":\"INT32\",\"data\":[1]}]}",
                KSV_ERR_INVALID_ARG,
                "unexpected inference input 'X' for model 'simple'"));
    CHECK(fails(&simple, "{\"inputs\":[" IN0 "," IN1 ",{\"name\":\"X\"}]}",
                KSV_ERR_INVALID_ARG,
                "Input must set only one of the following fields: 'data', "
                "'binary_data_size' in 'parameters', 'shared_memory_region' "
                "in 'parameters'. But no field is set"));
    CHECK(fails(&simple, "{\"inputs\":[" IN0 "," IN0 "]}",
                KSV_ERR_INVALID_ARG,
                "input 'INPUT0' already exists in request"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,16],\"datatype\":\"FP32\",\"data\":" ONES16
                "}]}", KSV_ERR_INVALID_ARG,
                "inference input 'INPUT0' data-type is 'FP32', but model "
                "'simple' expects 'INT32'"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,16],\"datatype\":\"INT33\",\"data\":[]}]}",
                KSV_ERR_INVALID_ARG, "invalid datatype 'INT33'"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,8],\"datatype\":\"INT32\",\"data\":"
                "[1,1,1,1,1,1,1,1]}]}", KSV_ERR_INVALID_ARG,
                "unexpected shape for input 'INPUT0' for model 'simple'. "
                "Expected [-1,16], got [1,8]. NOTE: Setting a non-zero "
                "max_batch_size in the model config requires a batch "
                "dimension to be prepended to each input shape."));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,16,1],\"datatype\":\"INT32\",\"data\":"
                ONES16 "}]}", KSV_ERR_INVALID_ARG, "unexpected shape"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[16],\"datatype\":\"INT32\",\"data\":" ONES16
                "}]}", KSV_ERR_INVALID_ARG,
                "input 'INPUT0' batch size does not match other inputs for "
                "'simple'"));
    CHECK(fails(&simple, "{\"inputs\":[{\"name\":\"INPUT1\","
                "\"shape\":[9,0],\"datatype\":\"INT32\",\"data\":[]},"
                "{\"name\":\"INPUT0\",\"shape\":[9,0],\"datatype\":"
                "\"INT32\",\"data\":[]}]}", KSV_ERR_INVALID_ARG,
                "inference request batch-size must be <= 8 for 'simple'"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[2,16],\"datatype\":\"INT32\",\"data\":["
                ONES16 "," ONES16 "]}]}", KSV_ERR_INVALID_ARG,
                "batch size does not match"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[-1,16],\"datatype\":\"INT32\",\"data\":[]}]}",
                KSV_ERR_INVALID_ARG,
                "Unable to parse 'shape': attempt to access JSON "
                "non-unsigned-integer as unsigned-integer"));

    /* Triton's order: the data against the request's own shape first,
     * then the count of inputs, then the model's shapes */
    CHECK(fails(&simple, "{\"inputs\":[{\"name\":\"INPUT0\","
                "\"shape\":[1,16],\"datatype\":\"INT32\",\"data\":[1]}]}",
                KSV_ERR_INVALID_ARG,
                "Failed to parse 'data' field: shape does not match"));
    CHECK(fails(&simple, "{\"inputs\":[{\"name\":\"INPUT0\","
                "\"shape\":[1,8],\"datatype\":\"INT32\",\"data\":"
                "[1,1,1,1,1,1,1,1]}]}", KSV_ERR_INVALID_ARG,
                "expected 2 inputs but got 1 inputs"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,8],\"datatype\":\"FP32\",\"data\":"
                "[1,1,1,1,1,1,1,1]}]}", KSV_ERR_INVALID_ARG,
                "data-type is 'FP32'"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,16],\"datatype\":\"INT32\","
                "\"data\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}",
                KSV_ERR_INVALID_ARG, "shape does not match true shape"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,16],\"datatype\":\"INT32\","
                "\"data\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1.5]}]}",
                KSV_ERR_INVALID_ARG, "element 15 is not a valid INT32"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,16],\"datatype\":\"INT32\","
                "\"data\":[2147483648,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}",
                KSV_ERR_INVALID_ARG, "not a valid INT32"));
    CHECK(fails(&simple, "{\"inputs\":[" IN1 ",{\"name\":\"INPUT0\","
                "\"shape\":[1,16],\"datatype\":\"INT32\"}]}",
                KSV_ERR_INVALID_ARG, "But no field is set"));
    CHECK(fails(&simple, "{\"inputs\":[" IN0 "," IN1 "],\"outputs\":"
                "[{\"name\":\"OUTPUT9\"}]}", KSV_ERR_INVALID_ARG,
                "unexpected inference output 'OUTPUT9'"));
    CHECK(fails(&simple, "{\"inputs\":[" IN0 "," IN1 "],\"outputs\":"
                "[{\"name\":\"OUTPUT0\"},{\"name\":\"OUTPUT0\"}]}",
                KSV_ERR_INVALID_ARG,
                "output 'OUTPUT0' already exists in request"));
    CHECK(fails(&simple, "{\"inputs\":[" IN0 "," IN1 "],\"outputs\":\"x\"}",
                KSV_ERR_INVALID_ARG, "'outputs'"));

    /* overflowing shapes never allocate */
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_INT16\",\"shape\":"
                "[4294967296,4294967296,4294967296],\"datatype\":\"INT16\","
                "\"data\":[1]}]}", KSV_ERR_INVALID_ARG,
                "invalid shape for input 'IN_INT16': shape "
                "[4294967296,4294967296,4294967296] causes total element "
                "count to exceed maximum size of 9223372036854775807"));
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_INT16\",\"shape\":"
                "[4,1152921504606846978,1],\"datatype\":\"INT16\","
                "\"data\":[1]}]}", KSV_ERR_INVALID_ARG,
                "byte size overflow for input 'IN_INT16': element count "
                "(4611686018427387912) * data type size (2) exceeds maximum "
                "allowed size (9223372036854775807)"));

    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_BOOL\",\"shape\":[1],"
                "\"datatype\":\"BOOL\",\"data\":[1]}]}", KSV_ERR_INVALID_ARG,
                "not a valid BOOL"));
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_BYTES\",\"shape\":[1],"
                "\"datatype\":\"BYTES\",\"data\":[1]}]}",
                KSV_ERR_INVALID_ARG, "not a valid BYTES"));
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_UINT8\",\"shape\":[1],"
                "\"datatype\":\"UINT8\",\"data\":[256]}]}",
                KSV_ERR_INVALID_ARG, "not a valid UINT8"));
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_INT8\",\"shape\":[1],"
                "\"datatype\":\"INT8\",\"data\":[-129]}]}",
                KSV_ERR_INVALID_ARG, "not a valid INT8"));
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_FP16\",\"shape\":[1],"
                "\"datatype\":\"FP16\",\"data\":[1.0]}]}",
                KSV_ERR_INVALID_ARG,
                "receiving FP16 data via JSON is not supported. Please use "
                "the binary data format for input IN_FP16"));
    CHECK(fails(&typed, "{\"inputs\":[{\"name\":\"IN_FP32\",\"shape\":[1],"
                "\"datatype\":\"FP32\",\"parameters\":"
                "{\"binary_data_size\":4}}]}",
                KSV_ERR_INVALID_ARG,
                "must specify valid 'Infer-Header-Content-Length' in request "
                "header and 'binary_data_size' when passing inputs in binary "
                "data format"));
    CHECK(fails(&typed, "{\"inputs\":[],\"outputs\":[{\"name\":\"OUT\","
                "\"parameters\":{\"classification\":\"2\"}}]}",
                KSV_ERR_INVALID_ARG, "Unable to set 'classification'"));
    CHECK(fails(&typed, "{\"inputs\":[],\"outputs\":[{\"name\":\"OUT\","
                "\"parameters\":{\"classification\":-1}}]}",
                KSV_ERR_INVALID_ARG, "Unable to set 'classification'"));
}


/* ---- binary tensor data ---------------------------------------------- */

static ksv_infer_buf_t  *bufs;

#define HDR_LEN  ((size_t) -2)      /* the JSON's own length */

/* header (JSON) + tail (binary, tlen bytes) with header_len = strlen(hdr) */

static int
parse_bin(const ksv_model_config_t *config, const char *hdr,
    const void *tail, size_t tlen, size_t header_len,
    const ksv_infer_limits_t *limits, uint8_t *body)
{
    size_t       hl;
    ksv_alloc_t  a;

    ksv_arena_free(&arena);
    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    memset(&err, 0, sizeof(err));

    hl = strlen(hdr);
    memcpy(body, hdr, hl);

    if (header_len == HDR_LEN) {
        header_len = hl;
    }

    memcpy(body + hl, tail, tlen);

    return ksv_infer_parse(body, hl + tlen, header_len, config, limits, &a,
                           &m, &bufs, &err);
}


static int
bin_fails(const ksv_model_config_t *config, const char *hdr,
    const void *tail, size_t tlen, size_t header_len,
    const ksv_infer_limits_t *limits, const char *words)
{
    static uint8_t  body[4096];

    if (parse_bin(config, hdr, tail, tlen, header_len, limits, body) == 0) {
        ksv_infer_free_bufs(bufs, m.ninputs);
        fprintf(stderr, "  accepted: %s\n", hdr);
        return 0;
    }

    if (err.code != KSV_ERR_INVALID_ARG || strstr(err.message, words) == NULL)
    {
        fprintf(stderr, "  %s -> %d \"%s\"\n", hdr, err.code, err.message);
        return 0;
    }

    return 1;
}


#define BIN_FP16  "{\"inputs\":[{\"name\":\"IN_FP16\",\"shape\":[2]," \
                  "\"datatype\":\"FP16\",\"parameters\":" \
                  "{\"binary_data_size\":4}}]}"
#define BIN_STR   "{\"inputs\":[{\"name\":\"IN_BYTES\",\"shape\":[2]," \
                  "\"datatype\":\"BYTES\",\"parameters\":" \
                  "{\"binary_data_size\":%d}}]}"

static void
test_binary(void)
{
    char                hdr[512];
    size_t              hl;
    uint8_t             body[4096];
    ksv_infer_limits_t  lim;

    static const uint8_t  fp16[4] = { 0x00, 0x3c, 0x00, 0xc0 };
    static const uint8_t  strs[13] = { 2, 0, 0, 0, 'h', 'i',
                                       3, 0, 0, 0, 'y', 'o', 'u' };

    /* FP16 works through binary data, and the frame is the body itself */

    hl = strlen(BIN_FP16);
    CHECK(parse_bin(&typed, BIN_FP16, fp16, 4, hl, NULL, body) == 0);
    CHECK(m.ninputs == 1 && m.inputs[0].byte_size == 4);
    CHECK(bufs[0].owned == 0 && bufs[0].data == body + hl);
    ksv_infer_free_bufs(bufs, m.ninputs);

    /* BYTES: walked element by element */

    snprintf(hdr, sizeof(hdr), BIN_STR, 13);
    CHECK(parse_bin(&typed, hdr, strs, 13, strlen(hdr), NULL, body) == 0);
    CHECK(m.inputs[0].byte_size == 13 && bufs[0].owned == 0);
    ksv_infer_free_bufs(bufs, m.ninputs);

    /* a binary input beside a JSON one, in the order of "inputs" */

    snprintf(hdr, sizeof(hdr), "{\"inputs\":[{\"name\":\"IN_INT8\","
             "\"shape\":[2],\"datatype\":\"INT8\",\"data\":[1,2]},"
             "{\"name\":\"IN_FP16\",\"shape\":[2],\"datatype\":\"FP16\","
             "\"parameters\":{\"binary_data_size\":4}}],\"outputs\":"
             "[{\"name\":\"OUT\"}],\"parameters\":"
             "{\"binary_data_output\":true}}");
    CHECK(parse_bin(&typed, hdr, fp16, 4, strlen(hdr), NULL, body) == 0);
    CHECK(bufs[0].owned == 1 && bufs[0].data[1] == 2);
    CHECK(bufs[1].owned == 0 && m.inputs[1].byte_size == 4);
    CHECK(m.flags & KSV_INFER_ALL_BINARY);
    ksv_infer_free_bufs(bufs, m.ninputs);

    /* a listed output is JSON unless its binary_data says so, whatever
     * binary_data_output says (Triton: that one is for unlisted ones) */
    CHECK(m.noutputs == 1 && !(m.outputs[0].flags & KSV_OUTPUT_BINARY));

    snprintf(hdr, sizeof(hdr), "{\"inputs\":[],\"outputs\":[{\"name\":"
             "\"OUT\",\"parameters\":{\"binary_data\":true}}]}");
    CHECK(parse_bin(&typed, hdr, "", 0, strlen(hdr), NULL, body) == 0);
    CHECK(m.outputs[0].flags & KSV_OUTPUT_BINARY);
    CHECK(!(m.flags & KSV_INFER_ALL_BINARY));

    /* binary_data: false wins over binary_data_output */
    snprintf(hdr, sizeof(hdr), "{\"inputs\":[],\"outputs\":[{\"name\":"
             "\"OUT\",\"parameters\":{\"binary_data\":false}}],"
             "\"parameters\":{\"binary_data_output\":true}}");
    CHECK(parse_bin(&typed, hdr, "", 0, strlen(hdr), NULL, body) == 0);
    CHECK(!(m.outputs[0].flags & KSV_OUTPUT_BINARY));

    /* sizes that lie */

    CHECK(bin_fails(&typed, BIN_FP16, fp16, 3, strlen(BIN_FP16), NULL,
                    "unexpected size for input 'IN_FP16', expecting 1 "
                    "additional bytes for model 'typed'"));
    CHECK(bin_fails(&typed, BIN_FP16, strs, 6, strlen(BIN_FP16), NULL,
                    "unexpected additional input data for model 'typed'"));
    CHECK(bin_fails(&typed, "{\"inputs\":[{\"name\":\"IN_FP16\",\"shape\":"
                    "[2],\"datatype\":\"FP16\",\"parameters\":"
                    "{\"binary_data_size\":2}}]}", fp16, 2, HDR_LEN, NULL,
                    "input byte size mismatch for input 'IN_FP16' for model "
                    "'typed'. Expected 4, got 2"));
    CHECK(bin_fails(&typed, BIN_FP16, fp16, 4, 4000, NULL,
                    "inference header size should be in range (0, "));
    CHECK(bin_fails(&typed, "{\"inputs\":[{\"name\":\"IN_FP16\",\"shape\":"
                    "[2],\"datatype\":\"FP16\",\"parameters\":"
                    "{\"binary_data_size\":-4}}]}", fp16, 4, HDR_LEN, NULL,
                    "non-negative"));
    CHECK(bin_fails(&typed, "{\"inputs\":[{\"name\":\"IN_FP16\",\"shape\":"
                    "[2],\"datatype\":\"FP16\",\"data\":[1,2],\"parameters\":"
                    "{\"binary_data_size\":4}}]}", fp16, 4, HDR_LEN, NULL,
                    "But set 'data' 'binary_data_size'"));

    snprintf(hdr, sizeof(hdr), BIN_STR, 12);
    CHECK(bin_fails(&typed, hdr, strs, 12, strlen(hdr), NULL,
                    "beyond its binary_data_size"));
    snprintf(hdr, sizeof(hdr), BIN_STR, 6);
    CHECK(bin_fails(&typed, hdr, strs, 6, strlen(hdr), NULL,
                    "expected 2 string elements for inference input "
                    "'IN_BYTES' for model 'typed', got 1"));
    snprintf(hdr, sizeof(hdr), BIN_STR, 8);
    CHECK(bin_fails(&typed, hdr, strs, 8, strlen(hdr), NULL,
                    "incomplete string length indicator for inference input "
                    "'IN_BYTES' for model 'typed', expecting 4 bytes but only "
                    "2 bytes available."));
    snprintf(hdr, sizeof(hdr), "{\"inputs\":[{\"name\":\"IN_BYTES\","
             "\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":"
             "{\"binary_data_size\":13}}]}");
    CHECK(bin_fails(&typed, hdr, strs, 13, strlen(hdr), NULL,
                    "unexpected number of string elements 2 for inference "
                    "input 'IN_BYTES' for model 'typed', expecting 1"));

    /* limits */

    memset(&lim, 0, sizeof(lim));
    lim.max_bytes_element = 2;
    snprintf(hdr, sizeof(hdr), BIN_STR, 13);
    CHECK(bin_fails(&typed, hdr, strs, 13, strlen(hdr), &lim,
                    "longer than the limit"));
    CHECK(bin_fails(&typed, "{\"inputs\":[{\"name\":\"IN_BYTES\",\"shape\":"
                    "[1],\"datatype\":\"BYTES\",\"data\":[\"abc\"]}]}",
                    "", 0, KSV_INFER_JSON_ONLY, &lim,
                    "longer than the limit"));

    memset(&lim, 0, sizeof(lim));
    lim.max_elements = 1;
    CHECK(bin_fails(&typed, BIN_FP16, fp16, 4, strlen(BIN_FP16), &lim,
                    "more than 1 elements"));

    memset(&lim, 0, sizeof(lim));
    lim.max_inputs = 1;
    lim.max_outputs = 0;
    CHECK(bin_fails(&typed, "{\"inputs\":[{\"name\":\"IN_INT8\",\"shape\":"
                    "[1],\"datatype\":\"INT8\",\"data\":[1]},{\"name\":"
                    "\"IN_UINT8\",\"shape\":[1],\"datatype\":\"UINT8\","
                    "\"data\":[1]}]}", "", 0, KSV_INFER_JSON_ONLY, &lim,
                    "too many inputs"));

    memset(&lim, 0, sizeof(lim));
    lim.max_depth = 3;
    CHECK(bin_fails(&typed, "{\"inputs\":[{\"name\":\"IN_INT8\",\"shape\":"
                    "[1],\"datatype\":\"INT8\",\"data\":[[1]]}]}", "", 0,
                    KSV_INFER_JSON_ONLY, &lim,
                    "JSON nesting depth exceeds maximum allowed limit (3)"));

    /* raw: the body is the only input; BYTES is one element */

    CHECK(bin_fails(&typed, "", fp16, 4, 0, NULL,
                    "Raw request must only have 1 input (found 1) to be "
                    "deduced but got 14 inputs in 'typed' model "
                    "configuration"));
    CHECK(parse_bin(&simple, "", "", 0, 0, NULL, body) != 0);

    {
        ksv_io_config_t     rin, rout;
        ksv_model_config_t  raw;

        io(&rin, "X", KSV_TYPE_FP32, -1);
        io(&rout, "Y", KSV_TYPE_FP32, -1);
        memset(&raw, 0, sizeof(raw));
        raw.name = ksv_str_c("raw");
        raw.max_batch_size = 4;
        raw.ninputs = 1;
        raw.inputs = &rin;
        raw.noutputs = 1;
        raw.outputs = &rout;

        CHECK(parse_bin(&raw, "", strs, 12, 0, NULL, body) == 0);
        CHECK(m.ninputs == 1 && m.inputs[0].ndims == 2
              && m.inputs[0].dims[0] == 1 && m.inputs[0].dims[1] == 3);
        CHECK(bufs[0].data == body && bufs[0].owned == 0);
        CHECK(m.flags & KSV_INFER_ALL_BINARY);
        ksv_infer_free_bufs(bufs, m.ninputs);

        CHECK(bin_fails(&raw, "", strs, 13, 0, NULL,
                        "input byte size mismatch for input 'X' for model "
                        "'raw'. Expected 12, got 13"));

        /* Triton: a raw BYTES input needs the shape [1] */
        rin.datatype = KSV_TYPE_BYTES;
        CHECK(bin_fails(&raw, "", "hello", 5, 0, NULL,
                        "For BYTE datatype raw input 'X', the model must "
                        "have input shape [1]"));

        rin.dims[0] = 1;
        CHECK(parse_bin(&raw, "", "hello", 5, 0, NULL, body) == 0);
        CHECK(m.inputs[0].byte_size == 9 && bufs[0].owned == 1
              && memcmp(bufs[0].data, "\5\0\0\0hello", 9) == 0);
        ksv_infer_free_bufs(bufs, m.ninputs);
    }
}


/* The reply header of binary outputs: binary_data_size, no data. */

static void
test_reply_binary(void)
{
    size_t             sizes[2];
    uint8_t            binary[2] = { 1, 0 };
    const void        *frames[2];
    ksv_tensor_t       outs[2];
    ksv_writer_t       w;
    ksv_infer_reply_t  r;
    char               e[256];

    static const uint8_t  f0[4] = { 0, 0, 0x80, 0x3f };
    static const uint8_t  f1[2] = { 1, 0 };

    memset(&r, 0, sizeof(r));
    memset(outs, 0, sizeof(outs));
    r.model_name = ksv_str_c("m");
    r.model_version = ksv_str_c("1");
    r.noutputs = 2;
    r.outputs = outs;
    outs[0].name = ksv_str_c("A");
    outs[0].datatype = KSV_TYPE_FP32;
    outs[0].ndims = 1;
    outs[0].dims[0] = 1;
    outs[0].byte_size = 4;
    outs[1].name = ksv_str_c("B");
    outs[1].datatype = KSV_TYPE_BOOL;
    outs[1].ndims = 1;
    outs[1].dims[0] = 2;
    outs[1].byte_size = 2;
    frames[0] = f0;
    frames[1] = f1;
    sizes[0] = 4;
    sizes[1] = 2;

    ksv_writer_init(&w);
    CHECK(ksv_infer_reply_header(&w, &r, frames, sizes, 2, binary, e,
                                 sizeof(e)) == 0);
    ksv_put_u8(&w, 0);
    CHECK(strcmp((char *) w.buf, "{\"model_name\":\"m\",\"model_version\":"
                 "\"1\",\"outputs\":[{\"name\":\"A\",\"datatype\":\"FP32\","
                 "\"shape\":[1],\"parameters\":{\"binary_data_size\":4}},"
                 "{\"name\":\"B\",\"datatype\":\"BOOL\",\"shape\":[2],"
                 "\"data\":[true,false]}]}") == 0);
    ksv_writer_free(&w);
}


static void
test_depth(void)
{
    int    i;
    char   body[1024], *p;

    /* 101 levels of arrays inside "data" */
    p = body + sprintf(body, "{\"inputs\":[{\"name\":\"IN_FP32\","
                             "\"shape\":[1],\"datatype\":\"FP32\",\"data\":");
    for (i = 0; i < 99; i++) {
        *p++ = '[';
    }
    *p++ = '1';
    for (i = 0; i < 99; i++) {
        *p++ = ']';
    }
    strcpy(p, "}]}");

    CHECK(fails(&typed, body, KSV_ERR_INVALID_ARG, "nesting"));

    /* brackets inside strings do not count */
    p = body + sprintf(body, "{\"id\":\"");
    for (i = 0; i < 200; i++) {
        *p++ = '[';
    }
    strcpy(p, "\\\"\",\"inputs\":[]}");

    CHECK(parse(&typed, body) == 0);
    CHECK(m.request_id.len == 201);
    release();
}


/* ---- responses ---------------------------------------------------------- */

static ksv_writer_t  w;


static const char *
text(void)
{
    ksv_put_u8(&w, '\0');
    w.len--;
    return (const char *) w.buf;
}


static void
test_reply(void)
{
    char               err[256];
    float              f[4];
    size_t             sizes[3];
    int32_t            i32[3] = { -1, 0, 2147483647 };
    uint16_t           h[3] = { 0x3c00, 0xc000, 0x7c00 };
    const void        *frames[3];
    ksv_param_t        param;
    ksv_tensor_t       out[3];
    ksv_infer_reply_t  r;
    static const char  bytes[] = "\3\0\0\0a\"b" "\2\0\0\0\xff\n";

    memset(&r, 0, sizeof(r));
    memset(out, 0, sizeof(out));

    r.model_name = ksv_str_c("m");
    r.model_version = ksv_str_c("1");
    r.request_id = ksv_str_c("id-7");

    out[0].name = ksv_str_c("I");
    out[0].datatype = KSV_TYPE_INT32;
    out[0].ndims = 2;
    out[0].dims[0] = 1;
    out[0].dims[1] = 3;
    out[0].byte_size = sizeof(i32);
    frames[0] = i32;
    sizes[0] = sizeof(i32);

    f[0] = 0.1f;
    f[1] = NAN;
    f[2] = -INFINITY;
    f[3] = 3.4028235e38f;
    out[1].name = ksv_str_c("F");
    out[1].datatype = KSV_TYPE_FP32;
    out[1].ndims = 1;
    out[1].dims[0] = 4;
    out[1].byte_size = sizeof(f);
    frames[1] = f;
    sizes[1] = sizeof(f);

    out[2].name = ksv_str_c("B");
    out[2].datatype = KSV_TYPE_BYTES;
    out[2].ndims = 1;
    out[2].dims[0] = 2;
    out[2].byte_size = sizeof(bytes) - 1;
    frames[2] = bytes;
    sizes[2] = sizeof(bytes) - 1;

    param.key = ksv_str_c("sequence_end");
    param.type = KSV_PARAM_BOOL;
    param.i = 1;

    r.noutputs = 3;
    r.outputs = out;
    r.nparams = 1;
    r.params = &param;

    ksv_writer_init(&w);
    CHECK(ksv_infer_reply_header(&w, &r, frames, sizes, 3, NULL, err,
                                 sizeof(err)) == 0);
    CHECK(strcmp(text(),
          "{\"model_name\":\"m\",\"model_version\":\"1\",\"id\":\"id-7\","
          "\"parameters\":{\"sequence_end\":true},\"outputs\":["
          "{\"name\":\"I\",\"datatype\":\"INT32\",\"shape\":[1,3],"
          "\"data\":[-1,0,2147483647]},"
          "{\"name\":\"F\",\"datatype\":\"FP32\",\"shape\":[4],"
          "\"data\":[0.1,NaN,-Infinity,3.4028235e+38]},"
          "{\"name\":\"B\",\"datatype\":\"BYTES\",\"shape\":[2],"
          "\"data\":[\"a\\\"b\",\"\xef\xbf\xbd\\n\"]}]}") == 0);
    ksv_writer_free(&w);

    /* FP16 is widened for JSON */
    out[0].name = ksv_str_c("H");
    out[0].datatype = KSV_TYPE_FP16;
    out[0].ndims = 1;
    out[0].dims[0] = 3;
    out[0].byte_size = sizeof(h);
    frames[0] = h;
    sizes[0] = sizeof(h);
    r.noutputs = 1;
    r.nparams = 0;
    r.request_id = ksv_str_c("");

    ksv_writer_init(&w);
    CHECK(ksv_infer_reply_header(&w, &r, frames, sizes, 1, NULL, err,
                                 sizeof(err)) == 0);
    CHECK(strcmp(text(),
          "{\"model_name\":\"m\",\"model_version\":\"1\",\"outputs\":["
          "{\"name\":\"H\",\"datatype\":\"FP16\",\"shape\":[3],"
          "\"data\":[1,-2,Infinity]}]}") == 0);
    ksv_writer_free(&w);

    /* frames that do not match what the header says */
    sizes[0] = 5;
    out[0].byte_size = 5;
    ksv_writer_init(&w);
    CHECK(ksv_infer_reply_header(&w, &r, frames, sizes, 1, NULL, err,
                                 sizeof(err)) == -1);
    CHECK(strstr(err, "output 'H'") != NULL);
    ksv_writer_free(&w);

    sizes[0] = 6;
    ksv_writer_init(&w);
    CHECK(ksv_infer_reply_header(&w, &r, frames, sizes, 1, NULL, err,
                                 sizeof(err)) == -1);
    ksv_writer_free(&w);

    ksv_writer_init(&w);
    CHECK(ksv_infer_reply_header(&w, &r, frames, sizes, 2, NULL, err,
                                 sizeof(err)) == -1);
    ksv_writer_free(&w);

    /* BYTES whose lengths run past the frame */
    out[0].datatype = KSV_TYPE_BYTES;
    out[0].dims[0] = 2;
    out[0].byte_size = 8;
    frames[0] = "\3\0\0\0abc\0";
    sizes[0] = 8;
    ksv_writer_init(&w);
    CHECK(ksv_infer_reply_header(&w, &r, frames, sizes, 1, NULL, err,
                                 sizeof(err)) == -1);
    ksv_writer_free(&w);
}


static void
test_render(void)
{
    ksv_version_status_t  versions[3];
    ksv_model_status_t    ms;

    ksv_writer_init(&w);
    ksv_json_error(&w, "bad \"x\"\n", 8);
    CHECK(strcmp(text(), "{\"error\":\"bad \\\"x\\\"\\n\"}") == 0);
    ksv_writer_free(&w);

    ksv_writer_init(&w);
    ksv_json_i64(&w, INT64_MIN);
    ksv_put_u8(&w, ' ');
    ksv_json_u64(&w, UINT64_MAX);
    ksv_put_u8(&w, ' ');
    ksv_json_f64(&w, 0.1);
    CHECK(strcmp(text(),
                 "-9223372036854775808 18446744073709551615 "
                 "0.1") == 0);
    ksv_writer_free(&w);

    memset(versions, 0, sizeof(versions));
    versions[0].version = 1;
    versions[0].state = KSV_VERSION_READY;
    versions[1].version = 2;
    versions[1].state = KSV_VERSION_LOADING;
    versions[2].version = 3;
    versions[2].state = KSV_VERSION_READY;

    ms.config = simple;
    ms.nversions = 3;
    ms.versions = versions;

    ksv_writer_init(&w);
    ksv_json_model_metadata(&w, &ms);
    CHECK(strcmp(text(),
          "{\"name\":\"simple\",\"versions\":[\"1\",\"3\"],"
          "\"platform\":\"python\",\"inputs\":["
          "{\"name\":\"INPUT0\",\"datatype\":\"INT32\",\"shape\":[-1,16]},"
          "{\"name\":\"INPUT1\",\"datatype\":\"INT32\",\"shape\":[-1,16]}],"
          "\"outputs\":["
          "{\"name\":\"OUTPUT0\",\"datatype\":\"INT32\",\"shape\":[-1,16]},"
          "{\"name\":\"OUTPUT1\",\"datatype\":\"INT32\",\"shape\":[-1,16]}]}")
          == 0);
    ksv_writer_free(&w);

    /* no batching: shapes as configured; platform wins over backend */
    ms.config = typed;
    ms.config.ninputs = 1;
    ms.nversions = 0;

    ksv_writer_init(&w);
    ksv_json_model_metadata(&w, &ms);
    CHECK(strcmp(text(),
          "{\"name\":\"typed\",\"versions\":[],"
          "\"platform\":\"custom_platform\",\"inputs\":["
          "{\"name\":\"IN_BOOL\",\"datatype\":\"BOOL\",\"shape\":[-1]}],"
          "\"outputs\":["
          "{\"name\":\"OUT\",\"datatype\":\"FP32\",\"shape\":[-1]}]}") == 0);
    ksv_writer_free(&w);
}


static void
test_stats(void)
{
    ksv_stats_t        st;
    ksv_batch_stats_t  batch[2];
    ksv_model_stats_t  models[2];

    memset(models, 0, sizeof(models));
    memset(batch, 0, sizeof(batch));

    models[0].name = ksv_str_c("simple");
    models[0].version = ksv_str_c("1");
    models[0].last_inference = 1700000000123ULL;
    models[0].inference_count = 6;
    models[0].execution_count = 2;
    models[0].success = (ksv_stat_duration_t) { 3, 3000 };
    models[0].fail = (ksv_stat_duration_t) { 1, 10 };
    models[0].queue = (ksv_stat_duration_t) { 3, 300 };
    models[0].compute_input = (ksv_stat_duration_t) { 3, 30 };
    models[0].compute_infer = (ksv_stat_duration_t) { 3, 2000 };
    models[0].compute_output = (ksv_stat_duration_t) { 3, 40 };
    models[0].nbatch = 2;
    models[0].batch = batch;
    batch[0].batch_size = 2;
    batch[0].compute_input = (ksv_stat_duration_t) { 1, 5 };
    batch[0].compute_infer = (ksv_stat_duration_t) { 1, 600 };
    batch[0].compute_output = (ksv_stat_duration_t) { 1, 7 };
    batch[1].batch_size = 4;
    batch[1].compute_infer = (ksv_stat_duration_t) { UINT64_MAX, 1 };

    /* a version never used: zeros, no batch sizes */
    models[1].name = ksv_str_c("quo\"te");
    models[1].version = ksv_str_c("12");

    st.nmodels = 2;
    st.models = models;

    ksv_writer_init(&w);
    ksv_json_model_stats(&w, &st);
    CHECK(strcmp(text(),
          "{\"model_stats\":[{\"name\":\"simple\",\"version\":\"1\","
          "\"last_inference\":1700000000123,\"inference_count\":6,"
          "\"execution_count\":2,\"inference_stats\":{"
          "\"success\":{\"count\":3,\"ns\":3000},"
          "\"fail\":{\"count\":1,\"ns\":10},"
          "\"queue\":{\"count\":3,\"ns\":300},"
          "\"compute_input\":{\"count\":3,\"ns\":30},"
          "\"compute_infer\":{\"count\":3,\"ns\":2000},"
          "\"compute_output\":{\"count\":3,\"ns\":40},"
          "\"cache_hit\":{\"count\":0,\"ns\":0},"
          "\"cache_miss\":{\"count\":0,\"ns\":0}},"
          "\"response_stats\":{},\"batch_stats\":["
          "{\"batch_size\":2,\"compute_input\":{\"count\":1,\"ns\":5},"
          "\"compute_infer\":{\"count\":1,\"ns\":600},"
          "\"compute_output\":{\"count\":1,\"ns\":7}},"
          "{\"batch_size\":4,\"compute_input\":{\"count\":0,\"ns\":0},"
          "\"compute_infer\":{\"count\":18446744073709551615,\"ns\":1},"
          "\"compute_output\":{\"count\":0,\"ns\":0}}],"
          "\"memory_usage\":[]},"
          "{\"name\":\"quo\\\"te\",\"version\":\"12\","
          "\"last_inference\":0,\"inference_count\":0,"
          "\"execution_count\":0,\"inference_stats\":{"
          "\"success\":{\"count\":0,\"ns\":0},"
          "\"fail\":{\"count\":0,\"ns\":0},"
          "\"queue\":{\"count\":0,\"ns\":0},"
          "\"compute_input\":{\"count\":0,\"ns\":0},"
          "\"compute_infer\":{\"count\":0,\"ns\":0},"
          "\"compute_output\":{\"count\":0,\"ns\":0},"
          "\"cache_hit\":{\"count\":0,\"ns\":0},"
          "\"cache_miss\":{\"count\":0,\"ns\":0}},"
          "\"response_stats\":{},\"batch_stats\":[],"
          "\"memory_usage\":[]}]}") == 0);
    ksv_writer_free(&w);

    /* no model at all is still a document */
    st.nmodels = 0;
    ksv_writer_init(&w);
    ksv_json_model_stats(&w, &st);
    CHECK(strcmp(text(), "{\"model_stats\":[]}") == 0);
    ksv_writer_free(&w);

    ksv_writer_init(&w);
    ksv_json_server_metadata(&w, "triton", 6);
    CHECK(strncmp(text(), "{\"name\":\"triton\",", 16) == 0);
    CHECK(strstr(text(), "\"extensions\":[\"classification\","
                         "\"model_repository\","
                         "\"model_repository(unload_dependents)\","
                         "\"schedule_policy\",\"model_configuration\","
                         "\"system_shared_memory\",\"cuda_shared_memory\","
                         "\"binary_tensor_data\","
                         "\"parameters\",\"statistics\"") != NULL);
    ksv_writer_free(&w);
}


/* ---- floats: the fewest digits that read back as the same value --------- */

static uint64_t  rnd_state = 0x9e3779b97f4a7c15ULL;


static uint64_t
rnd(void)
{
    /* xorshift64: the same numbers on every run */
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;

    return rnd_state;
}


static const char *
f32s(float v)
{
    static char  buf[KSV_JSON_F32_MAX + 1];

    buf[ksv_json_fmt_f32(buf, v)] = '\0';

    return buf;
}


static const char *
f64s(double v)
{
    static char  buf[KSV_JSON_F64_MAX + 1];

    buf[ksv_json_fmt_f64(buf, v)] = '\0';

    return buf;
}


/* significant digits of a number as written (no sign, exponent, zeros) */

static int
significant(const char *s)
{
    int          n, lead, zeros;
    const char  *p;

    n = 0;
    zeros = 0;
    lead = 1;

    for (p = s; *p != '\0' && *p != 'e'; p++) {
        if (*p < '0' || *p > '9' || (lead && *p == '0')) {
            continue;
        }

        lead = 0;
        zeros = (*p == '0') ? zeros + 1 : 0;
        n++;
    }

    return n - zeros;
}


/* read back as a client does: strtof, and strtod then to float (Python) */

static int
f32_round_trips(float v, const char *s)
{
    float  a, b;

    a = strtof(s, NULL);
    b = (float) strtod(s, NULL);

    return memcmp(&a, &v, 4) == 0 && memcmp(&b, &v, 4) == 0;
}


/* no shorter printf rendering reads back as v: ours is the shortest */

static int
f32_shortest(float v, const char *s)
{
    int   prec;
    char  buf[64];

    for (prec = 1; prec < 9; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, (double) v);

        if (strtof(buf, NULL) == v) {
            break;
        }
    }

    return significant(s) <= prec;
}


static int
f64_shortest(double v, const char *s)
{
    int   prec;
    char  buf[64];

    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);

        if (strtod(buf, NULL) == v) {
            break;
        }
    }

    return significant(s) <= prec;
}


static void
test_floats(void)
{
    int       fails, longer, i;
    char      buf[KSV_JSON_INT_MAX + 1], want[32];
    float     f, g;
    double    d, e;
    uint32_t  b32;
    uint64_t  b64, n;

    /* the spellings that stay as they were */
    CHECK(strcmp(f32s(0.0f), "0") == 0);
    CHECK(strcmp(f32s(-0.0f), "-0") == 0);
    CHECK(strcmp(f32s(1.0f), "1") == 0);
    CHECK(strcmp(f32s(-16.0f), "-16") == 0);
    CHECK(strcmp(f32s(16777215.0f), "16777215") == 0);
    CHECK(strcmp(f32s(100000000.0f), "100000000") == 0);
    CHECK(strcmp(f32s(1e10f), "1e+10") == 0);
    CHECK(strcmp(f32s(0.5f), "0.5") == 0);
    CHECK(strcmp(f32s(-0.25f), "-0.25") == 0);
    CHECK(strcmp(f32s(0.0001f), "0.0001") == 0);
    CHECK(strcmp(f32s(0.00001f), "1e-05") == 0);
    CHECK(strcmp(f32s(1.5e-7f), "1.5e-07") == 0);
    CHECK(strcmp(f32s(NAN), "NaN") == 0);
    CHECK(strcmp(f32s(INFINITY), "Infinity") == 0);
    CHECK(strcmp(f32s(-INFINITY), "-Infinity") == 0);
    CHECK(strcmp(f64s(0.0), "0") == 0);
    CHECK(strcmp(f64s(-0.0), "-0") == 0);
    CHECK(strcmp(f64s(9007199254740991.0), "9007199254740991") == 0);
    CHECK(strcmp(f64s(1e100), "1e+100") == 0);
    CHECK(strcmp(f64s(-NAN), "NaN") == 0);
    CHECK(strcmp(f64s(-INFINITY), "-Infinity") == 0);

    /* the ones that got shorter: the fewest digits, printf's layout */
    CHECK(strcmp(f32s(0.1f), "0.1") == 0);
    CHECK(strcmp(f32s(3.14159274f), "3.1415927") == 0);
    CHECK(strcmp(f32s(FLT_MAX), "3.4028235e+38") == 0);
    CHECK(strcmp(f32s(FLT_MIN), "1.1754944e-38") == 0);
    CHECK(strcmp(f32s(FLT_TRUE_MIN), "1e-45") == 0);
    CHECK(strcmp(f32s(-FLT_TRUE_MIN), "-1e-45") == 0);
    CHECK(strcmp(f32s(16777217.0f), "16777216") == 0);
    CHECK(strcmp(f32s(123456792.0f), "123456790") == 0);
    CHECK(strcmp(f64s(0.1), "0.1") == 0);
    CHECK(strcmp(f64s(0.3), "0.3") == 0);
    CHECK(strcmp(f64s(0.1 + 0.2), "0.30000000000000004") == 0);
    CHECK(strcmp(f64s(DBL_MAX), "1.7976931348623157e+308") == 0);
    CHECK(strcmp(f64s(DBL_MIN), "2.2250738585072014e-308") == 0);
    CHECK(strcmp(f64s(5e-324), "5e-324") == 0);
    CHECK(strcmp(f64s(1e23), "1e+23") == 0);
    CHECK(strcmp(f64s(9007199254740993.0), "9007199254740992") == 0);
    CHECK(strcmp(f64s(2.0 / 3), "0.6666666666666666") == 0);

    /* powers of two (the nearer lower bound) and every float exponent */
    fails = 0;

    for (i = 0; i < 255; i++) {
        for (n = 0; n < 4; n++) {
            b32 = ((uint32_t) i << 23) | (uint32_t) (n == 3 ? 0x7fffff : n);
            memcpy(&f, &b32, 4);

            if (!f32_round_trips(f, f32s(f))) {
                fails++;
            }
        }
    }

    for (i = 0; i < 2047; i++) {
        for (n = 0; n < 4; n++) {
            b64 = ((uint64_t) i << 52)
                  | (n == 3 ? 0xfffffffffffffULL : n);
            memcpy(&d, &b64, 8);
            e = strtod(f64s(d), NULL);

            if (memcmp(&d, &e, 8) != 0) {
                fails++;
            }
        }
    }

    CHECK(fails == 0);

    /*
     * Random bit patterns, so every exponent, denormals included, and
     * random values near 1, where tensors live: each reads back exactly;
     * one in 64 is checked against printf's shortest precision too.
     */

    fails = 0;
    longer = 0;

    for (n = 0; n < 1000000; n++) {
        b32 = (uint32_t) rnd();

        if (n & 1) {
            b32 = 0x3e000000 + (b32 & 0x01ffffff);      /* 0.125 .. 2 */
        }

        if ((b32 & 0x7f800000) == 0x7f800000) {
            continue;
        }

        memcpy(&f, &b32, 4);

        if (!f32_round_trips(f, f32s(f))) {
            if (fails++ < 5) {
                fprintf(stderr, "float %08x written %s\n", b32, f32s(f));
            }
        }

        if (n % 64 == 0 && !f32_shortest(f, f32s(f))) {
            longer++;
        }
    }

    CHECK(fails == 0);
    CHECK(longer == 0);

    fails = 0;
    longer = 0;

    for (n = 0; n < 1000000; n++) {
        b64 = rnd();

        if (n & 1) {
            b64 = 0x3fc0000000000000ULL + (b64 & 0x003fffffffffffffULL);
        }

        if ((b64 & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL) {
            continue;
        }

        memcpy(&d, &b64, 8);
        e = strtod(f64s(d), NULL);

        if (memcmp(&d, &e, 8) != 0) {
            if (fails++ < 5) {
                fprintf(stderr, "double %016llx written %s\n",
                        (unsigned long long) b64, f64s(d));
            }
        }

        if (n % 64 == 0 && !f64_shortest(d, f64s(d))) {
            longer++;
        }
    }

    CHECK(fails == 0);
    CHECK(longer == 0);

    /* whole numbers, both sides of the integer fast path */
    fails = 0;

    for (n = 0; n < 100000; n++) {
        f = (float) (int32_t) (rnd() % 67108864) - 33554432.0f;
        d = (double) (int64_t) (rnd() % (1ULL << 55)) - (double) (1ULL << 54);
        e = strtod(f64s(d), NULL);
        g = f;

        if (!f32_round_trips(g, f32s(g)) || memcmp(&d, &e, 8) != 0) {
            fails++;
        }
    }

    CHECK(fails == 0);

    /* integers of every length */
    for (n = 1, i = 0; i < 20; i++, n *= 10) {
        snprintf(want, sizeof(want), "%llu", (unsigned long long) (n - 1));
        buf[ksv_json_fmt_u64(buf, n - 1)] = '\0';
        CHECK(strcmp(buf, want) == 0);

        if (i < 19) {
            snprintf(want, sizeof(want), "%lld", -(long long) n);
            buf[ksv_json_fmt_i64(buf, -(int64_t) n)] = '\0';
            CHECK(strcmp(buf, want) == 0);
        }
    }
}


int
main(void)
{
    setup();
    ksv_arena_init(&arena);

    test_simple_request();
    test_types();
    test_errors();
    test_binary();
    test_reply_binary();
    test_depth();
    test_reply();
    test_render();
    test_stats();
    test_floats();

    ksv_arena_free(&arena);

    KSV_TEST_END();
}
