/*
 * Unit tests for the wire codec (common/ksv_proto.c) and the JSON writer
 * (common/ksv_json.c): round trips, and decoders fed every truncation
 * and corruption of a valid message.
 */

#include <stdlib.h>
#include <string.h>

#include "ksv_json.h"
#include "ksv_proto.h"
#include "ksv_test.h"


static void
test_infer_round_trip(void)
{
    ksv_tensor_t      in[2];
    ksv_output_req_t  out[1];
    ksv_param_t       params[2];
    ksv_infer_t       m, d;
    ksv_prefix_t      prefix;
    ksv_writer_t      w;
    ksv_reader_t      r;
    ksv_arena_t       arena;
    ksv_alloc_t       a;

    memset(in, 0, sizeof(in));
    in[0].name = ksv_str_lit("INPUT0");
    in[0].datatype = KSV_TYPE_INT32;
    in[0].ndims = 2;
    in[0].dims[0] = 1;
    in[0].dims[1] = 16;
    in[0].byte_size = 64;
    in[1].name = ksv_str_lit("INPUT1");
    in[1].datatype = KSV_TYPE_BYTES;
    in[1].ndims = 1;
    in[1].dims[0] = 3;
    in[1].byte_size = 20;

    out[0].name = ksv_str_lit("OUTPUT0");
    out[0].flags = KSV_OUTPUT_BINARY;

    memset(params, 0, sizeof(params));
    params[0].key = ksv_str_lit("priority");
    params[0].type = KSV_PARAM_INT;
    params[0].i = -7;
    params[1].key = ksv_str_lit("tag");
    params[1].type = KSV_PARAM_STRING;
    params[1].s = ksv_str_lit("abc");

    memset(&m, 0, sizeof(m));
    m.model_name = ksv_str_lit("simple");
    m.model_version = ksv_str_lit("");
    m.request_id = ksv_str_lit("req-1");
    m.timeout_ms = 30000;
    m.ninputs = 2;
    m.inputs = in;
    m.noutputs = 1;
    m.outputs = out;
    m.nparams = 2;
    m.params = params;

    ksv_writer_init(&w);
    ksv_encode_infer(&w, 0x1122334455667788ULL, &m);
    CHECK(!w.failed);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(prefix.kind == KSV_MSG_INFER);
    CHECK(prefix.id == 0x1122334455667788ULL);
    CHECK(ksv_decode_infer(&r, &a, &d) == 0);
    CHECK(ksv_str_eq(d.model_name, "simple"));
    CHECK(d.model_version.len == 0);
    CHECK(ksv_str_eq(d.request_id, "req-1"));
    CHECK(d.timeout_ms == 30000);
    CHECK(d.ninputs == 2);
    CHECK(ksv_str_eq(d.inputs[1].name, "INPUT1"));
    CHECK(d.inputs[0].dims[1] == 16 && d.inputs[0].byte_size == 64);
    CHECK(d.inputs[1].datatype == KSV_TYPE_BYTES);
    CHECK(d.noutputs == 1 && d.outputs[0].flags == KSV_OUTPUT_BINARY);
    CHECK(d.nparams == 2 && d.params[0].i == -7);
    CHECK(ksv_str_eq(d.params[1].s, "abc"));

    /* patching the id leaves the body alone */
    CHECK(ksv_patch_id(w.buf, w.len, 42) == 0);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0 && prefix.id == 42);
    CHECK(ksv_patch_id(w.buf, 3, 42) == -1);

    ksv_arena_free(&arena);
    ksv_writer_free(&w);
}


/* Every prefix of a valid message must fail to decode, never crash. */
static void
test_truncation(void)
{
    size_t        cut;
    int           failures = 0;
    ksv_tensor_t  in;
    ksv_infer_t   m, d;
    ksv_prefix_t  prefix;
    ksv_writer_t  w;
    ksv_reader_t  r;
    ksv_arena_t   arena;
    ksv_alloc_t   a;

    memset(&in, 0, sizeof(in));
    in.name = ksv_str_lit("x");
    in.datatype = KSV_TYPE_FP32;
    in.ndims = 1;
    in.dims[0] = 4;
    in.byte_size = 16;
    memset(&m, 0, sizeof(m));
    m.model_name = ksv_str_lit("identity_fp32");
    m.ninputs = 1;
    m.inputs = &in;

    ksv_writer_init(&w);
    ksv_encode_infer(&w, 1, &m);
    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    for (cut = 0; cut < w.len; cut++) {
        ksv_reader_init(&r, w.buf, cut);
        if (ksv_read_prefix(&r, &prefix) != 0
            || ksv_decode_infer(&r, &a, &d) != 0)
        {
            failures++;
        }
    }
    CHECK(failures == (int) w.len);

    ksv_arena_free(&arena);
    ksv_writer_free(&w);
}


static void
test_bad_prefix(void)
{
    uint8_t       frame[KSV_PREFIX_SIZE + 8];
    ksv_prefix_t  prefix;
    ksv_writer_t  w;
    ksv_reader_t  r;

    ksv_writer_init(&w);
    ksv_encode_index(&w, 9, 0);
    memcpy(frame, w.buf, w.len);

    frame[2] = KSV_PROTO_VERSION + 1;
    ksv_reader_init(&r, frame, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == -1);
    /* a wrong-version message can still be answered by id */
    CHECK(prefix.id == 9 && prefix.version == KSV_PROTO_VERSION + 1);

    memcpy(frame, w.buf, w.len);
    frame[0] ^= 0xff;
    ksv_reader_init(&r, frame, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == -1);

    memcpy(frame, w.buf, w.len);
    frame[3] = KSV_MSG_KIND_MAX;
    ksv_reader_init(&r, frame, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == -1);

    ksv_writer_free(&w);
}


static void
test_counts_are_capped(void)
{
    ksv_writer_t  w;
    ksv_reader_t  r;
    ksv_prefix_t  prefix;
    ksv_infer_t   d;
    ksv_arena_t   arena;
    ksv_alloc_t   a;

    /* an INFER claiming 2^32-1 inputs must fail without allocating */
    ksv_writer_init(&w);
    ksv_put_prefix(&w, KSV_MSG_INFER, 1);
    ksv_put_str(&w, ksv_str_lit("m"));
    ksv_put_str(&w, ksv_str_lit(""));
    ksv_put_str(&w, ksv_str_lit(""));
    ksv_put_u32(&w, 0);
    ksv_put_u32(&w, 0);
    ksv_put_u32(&w, 0xffffffffu);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(ksv_decode_infer(&r, &a, &d) == -1);
    CHECK(arena.head == NULL);

    ksv_arena_free(&arena);
    ksv_writer_free(&w);
}


static void
test_index_round_trip(void)
{
    int64_t               dims[1] = { 16 };
    int32_t               preferred[2] = { 4, 8 };
    ksv_io_config_t       io[2];
    ksv_instance_group_t  group;
    ksv_version_status_t  versions[2];
    ksv_model_status_t    model;
    ksv_index_t           idx, d;
    ksv_prefix_t          prefix;
    ksv_writer_t          w, j;
    ksv_reader_t          r;
    ksv_arena_t           arena;
    ksv_alloc_t           a;
    uint64_t              known;

    memset(io, 0, sizeof(io));
    io[0].name = ksv_str_lit("INPUT0");
    io[0].datatype = KSV_TYPE_INT32;
    io[0].ndims = 1;
    memcpy(io[0].dims, dims, sizeof(dims));
    io[1] = io[0];
    io[1].name = ksv_str_lit("OUTPUT0");
    io[1].optional = 1;

    memset(&group, 0, sizeof(group));
    group.name = ksv_str_lit("simple_0");
    group.count = 2;
    group.kind = KSV_KIND_CPU;

    memset(&model, 0, sizeof(model));
    model.config.name = ksv_str_lit("simple");
    model.config.backend = ksv_str_lit("python");
    model.config.default_model_filename = ksv_str_lit("model.py");
    model.config.max_batch_size = 8;
    model.config.ninputs = 1;
    model.config.inputs = &io[0];
    model.config.noutputs = 1;
    model.config.outputs = &io[1];
    model.config.ngroups = 1;
    model.config.groups = &group;
    model.config.version_policy.latest_num = 1;
    model.config.dynamic_batching.enabled = 1;
    model.config.dynamic_batching.npreferred = 2;
    model.config.dynamic_batching.preferred_batch_size = preferred;
    model.config.dynamic_batching.max_queue_delay_us = 2000;

    memset(versions, 0, sizeof(versions));
    versions[0].version = 1;
    versions[0].state = KSV_VERSION_UNAVAILABLE;
    versions[0].reason = ksv_str_lit("initialize() raised");
    versions[1].version = 2;
    versions[1].state = KSV_VERSION_READY;
    versions[1].reason = ksv_str_lit("");
    model.nversions = 2;
    model.versions = versions;

    idx.generation = 77;
    idx.full = 1;
    idx.nmodels = 1;
    idx.models = &model;

    ksv_writer_init(&w);
    ksv_encode_index_reply(&w, 5, &idx);
    CHECK(!w.failed);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(prefix.kind == KSV_MSG_INDEX_REPLY);
    CHECK(ksv_decode_index_reply(&r, &a, &d) == 0);
    CHECK(d.generation == 77 && d.nmodels == 1);
    CHECK(ksv_str_eq(d.models[0].config.name, "simple"));
    CHECK(d.models[0].config.max_batch_size == 8);
    CHECK(d.models[0].config.outputs[0].optional == 1);
    CHECK(d.models[0].config.groups[0].count == 2);
    CHECK(d.models[0].config.dynamic_batching.preferred_batch_size[1] == 8);
    CHECK(d.models[0].nversions == 2);
    CHECK(d.models[0].versions[1].state == KSV_VERSION_READY);
    CHECK(ksv_str_eq(d.models[0].versions[0].reason,
                     "initialize() raised"));

    /* the JSON the module serves for GET .../config */
    ksv_writer_init(&j);
    ksv_model_config_to_json(&j, &d.models[0].config);
    ksv_put_u8(&j, '\0');
    CHECK(strstr((char *) j.buf, "\"name\":\"simple\"") != NULL);
    CHECK(strstr((char *) j.buf, "\"data_type\":\"TYPE_INT32\"") != NULL);
    CHECK(strstr((char *) j.buf, "\"preferred_batch_size\":[4,8]") != NULL);
    CHECK(strstr((char *) j.buf, "\"kind\":\"KIND_CPU\"") != NULL);
    ksv_writer_free(&j);

    /* a not-full reply carries only the generation */
    ksv_writer_free(&w);
    ksv_writer_init(&w);
    idx.full = 0;
    ksv_encode_index_reply(&w, 6, &idx);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(ksv_decode_index_reply(&r, &a, &d) == 0);
    CHECK(d.full == 0 && d.generation == 77 && d.nmodels == 0);

    ksv_writer_free(&w);
    ksv_writer_init(&w);
    ksv_encode_index(&w, 7, 1234);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(ksv_decode_index(&r, &known) == 0 && known == 1234);

    ksv_arena_free(&arena);
    ksv_writer_free(&w);
}


static void
test_error_and_ready(void)
{
    ksv_writer_t  w;
    ksv_reader_t  r;
    ksv_prefix_t  prefix;
    ksv_error_t   e;
    ksv_ready_t   ready, d;

    ksv_writer_init(&w);
    ksv_encode_error(&w, 3, KSV_ERR_INVALID_ARG, ksv_str_lit("bad thing"));
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0 && prefix.kind == KSV_MSG_ERROR);
    CHECK(ksv_decode_error(&r, &e) == 0);
    CHECK(e.code == KSV_ERR_INVALID_ARG && ksv_str_eq(e.message, "bad thing"));
    CHECK(ksv_status_http(e.code) == 400);
    CHECK(ksv_status_http(KSV_ERR_UNAVAILABLE) == 503);
    CHECK(ksv_status_http(KSV_ERR_NOT_FOUND) == 404);
    CHECK(ksv_status_http((ksv_status_t) 99) == 500);
    ksv_writer_free(&w);

    memset(&ready, 0, sizeof(ready));
    ready.model_name = ksv_str_lit("simple");
    ready.version = 3;
    ready.instance = 1;
    ready.ok = 1;
    ksv_writer_init(&w);
    ksv_encode_ready(&w, &ready);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0 && prefix.kind == KSV_MSG_READY);
    CHECK(ksv_decode_ready(&r, &d) == 0);
    CHECK(d.version == 3 && d.instance == 1 && d.ok == 1);
    ksv_writer_free(&w);
}


static void
test_execute_reply(void)
{
    size_t            cut;
    int               failures = 0;
    uint32_t          count;
    ksv_writer_t      w;
    ksv_reader_t      r;
    ksv_prefix_t      prefix;
    ksv_exec_times_t  t, d;

    t.compute_input_ns = 11;
    t.compute_infer_ns = 2000000;
    t.compute_output_ns = 33;

    ksv_writer_init(&w);
    ksv_encode_execute_reply(&w, 9, 4, &t);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(prefix.kind == KSV_MSG_EXECUTE_REPLY && prefix.id == 9);
    CHECK(ksv_decode_execute_reply(&r, &count, &d) == 0);
    CHECK(count == 4 && d.compute_input_ns == 11
          && d.compute_infer_ns == 2000000 && d.compute_output_ns == 33);

    /* a reply without the durations (an instance that does not measure)
     * decodes with zeros; one cut inside them fails */
    for (cut = KSV_PREFIX_SIZE; cut < w.len; cut++) {
        ksv_reader_init(&r, w.buf, cut);
        CHECK(ksv_read_prefix(&r, &prefix) == 0);
        if (ksv_decode_execute_reply(&r, &count, &d) != 0) {
            failures++;
        } else {
            CHECK(cut == KSV_PREFIX_SIZE + 4 && count == 4
                  && d.compute_infer_ns == 0);
        }
    }
    CHECK(failures == (int) (w.len - KSV_PREFIX_SIZE) - 1);
    ksv_writer_free(&w);

    /* EXECUTE itself is unchanged */
    ksv_writer_init(&w);
    ksv_encode_execute(&w, KSV_MSG_EXECUTE, 10, 3);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(ksv_decode_execute(&r, &count) == 0 && count == 3);
    ksv_writer_free(&w);
}


static void
test_stats_round_trip(void)
{
    size_t              cut;
    int                 failures = 0;
    ksv_str_t           model, version;
    ksv_stats_t         st, d;
    ksv_model_stats_t   ms[2];
    ksv_batch_stats_t   bs[2];
    ksv_writer_t        w;
    ksv_reader_t        r;
    ksv_prefix_t        prefix;
    ksv_arena_t         arena;
    ksv_alloc_t         a;

    ksv_writer_init(&w);
    ksv_encode_stats(&w, 21, ksv_str_lit("simple"), ksv_str_lit(""));
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0 && prefix.kind == KSV_MSG_STATS);
    CHECK(ksv_decode_stats(&r, &model, &version) == 0);
    CHECK(ksv_str_eq(model, "simple") && version.len == 0);
    ksv_writer_free(&w);

    memset(ms, 0, sizeof(ms));
    memset(bs, 0, sizeof(bs));
    bs[0].batch_size = 1;
    bs[0].compute_infer.count = 3;
    bs[0].compute_infer.ns = 3000;
    bs[1].batch_size = 8;
    bs[1].compute_output.count = 1;
    bs[1].compute_output.ns = 77;
    ms[0].name = ksv_str_lit("simple");
    ms[0].version = ksv_str_lit("1");
    ms[0].last_inference = 1700000000123ULL;
    ms[0].inference_count = 11;
    ms[0].execution_count = 4;
    ms[0].success.count = 10;
    ms[0].success.ns = 123456789;
    ms[0].fail.count = 1;
    ms[0].queue.ns = 5;
    ms[0].compute_input.count = 10;
    ms[0].compute_infer.ns = 999;
    ms[0].compute_output.count = 10;
    ms[0].nbatch = 2;
    ms[0].batch = bs;
    ms[1].name = ksv_str_lit("simple");
    ms[1].version = ksv_str_lit("2");

    st.nmodels = 2;
    st.models = ms;

    ksv_writer_init(&w);
    ksv_encode_stats_reply(&w, 22, &st);
    CHECK(!w.failed);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(prefix.kind == KSV_MSG_STATS_REPLY && prefix.id == 22);
    CHECK(ksv_decode_stats_reply(&r, &a, &d) == 0);
    CHECK(d.nmodels == 2);
    CHECK(ksv_str_eq(d.models[0].name, "simple"));
    CHECK(ksv_str_eq(d.models[1].version, "2"));
    CHECK(d.models[0].last_inference == 1700000000123ULL);
    CHECK(d.models[0].inference_count == 11);
    CHECK(d.models[0].execution_count == 4);
    CHECK(d.models[0].success.count == 10);
    CHECK(d.models[0].success.ns == 123456789);
    CHECK(d.models[0].fail.count == 1 && d.models[0].queue.ns == 5);
    CHECK(d.models[0].compute_input.count == 10);
    CHECK(d.models[0].compute_infer.ns == 999);
    CHECK(d.models[0].compute_output.count == 10);
    CHECK(d.models[0].nbatch == 2);
    CHECK(d.models[0].batch[0].batch_size == 1);
    CHECK(d.models[0].batch[0].compute_infer.ns == 3000);
    CHECK(d.models[0].batch[1].batch_size == 8);
    CHECK(d.models[0].batch[1].compute_output.ns == 77);
    CHECK(d.models[1].nbatch == 0 && d.models[1].batch == NULL);

    /* every truncation fails */
    for (cut = 0; cut < w.len; cut++) {
        ksv_reader_init(&r, w.buf, cut);
        if (ksv_read_prefix(&r, &prefix) != 0
            || ksv_decode_stats_reply(&r, &a, &d) != 0)
        {
            failures++;
        }
    }
    CHECK(failures == (int) w.len);
    ksv_writer_free(&w);

    /* a count the frame cannot hold allocates nothing and fails */
    ksv_arena_free(&arena);
    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);
    ksv_writer_init(&w);
    ksv_put_prefix(&w, KSV_MSG_STATS_REPLY, 1);
    ksv_put_u32(&w, KSV_MAX_STATS);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(ksv_decode_stats_reply(&r, &a, &d) == -1);
    CHECK(arena.head == NULL);
    ksv_writer_free(&w);

    ksv_writer_init(&w);
    ksv_put_prefix(&w, KSV_MSG_STATS_REPLY, 1);
    ksv_put_u32(&w, KSV_MAX_STATS + 1);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(ksv_decode_stats_reply(&r, &a, &d) == -1);
    ksv_writer_free(&w);

    ksv_arena_free(&arena);
}


static void
test_shape_count(void)
{
    int64_t   ok[3] = { 2, 3, 4 };
    int64_t   neg[2] = { 2, -1 };
    int64_t   huge[3] = { INT64_MAX, INT64_MAX, 2 };
    int64_t   zero[2] = { 0, INT64_MAX };
    uint64_t  n;

    CHECK(ksv_shape_count(ok, 3, UINT64_MAX, &n) == 0 && n == 24);
    CHECK(ksv_shape_count(ok, 3, 23, &n) == -1);
    CHECK(ksv_shape_count(neg, 2, UINT64_MAX, &n) == -1);
    CHECK(ksv_shape_count(huge, 3, UINT64_MAX, &n) == -1);
    CHECK(ksv_shape_count(zero, 2, UINT64_MAX, &n) == 0 && n == 0);
    CHECK(ksv_shape_count(NULL, 0, UINT64_MAX, &n) == 0 && n == 1);
}


static void
test_datatypes(void)
{
    CHECK(ksv_datatype_from_name("FP32", 4) == KSV_TYPE_FP32);
    CHECK(ksv_datatype_from_name("FP3", 3) == KSV_TYPE_INVALID);
    CHECK(ksv_datatype_from_config_name("TYPE_STRING", 11) == KSV_TYPE_BYTES);
    CHECK(strcmp(ksv_datatype_name(KSV_TYPE_BYTES), "BYTES") == 0);
    CHECK(ksv_datatype_size(KSV_TYPE_INT64) == 8);
    CHECK(ksv_datatype_size(KSV_TYPE_BYTES) == 0);
    CHECK(strcmp(ksv_datatype_name((ksv_datatype_t) 200), "INVALID") == 0);
}


static void
test_json_strings(void)
{
    ksv_writer_t  w;
    ksv_str_t     s;

    ksv_writer_init(&w);
    s.data = "a\"b\\c\n\x01\xc3\xa9\xff";
    s.len = 10;
    ksv_json_put_str(&w, s);
    ksv_put_u8(&w, '\0');
    CHECK(strcmp((char *) w.buf,
                 "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\xef\xbf\xbd\"") == 0);
    ksv_writer_free(&w);
}


/* REPOSITORY and its reply survive the wire; a state outside the
 * names is refused. */
static void
test_repository_round_trip(void)
{
    ksv_alloc_t             a;
    ksv_arena_t             arena;
    ksv_prefix_t            pre;
    ksv_reader_t            r;
    ksv_writer_t            w;
    ksv_repository_t        req, got;
    ksv_repo_entry_t        e[2];
    ksv_repository_reply_t  rep, back;

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    req.action = KSV_REPO_UNLOAD;
    req.flags = KSV_REPO_DEPENDENTS;
    req.model = ksv_str_lit("simple");
    ksv_writer_init(&w);
    ksv_encode_repository(&w, 42, &req);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &pre) == 0 && pre.kind == KSV_MSG_REPOSITORY
          && pre.id == 42);
    CHECK(ksv_decode_repository(&r, &got) == 0);
    CHECK(got.action == KSV_REPO_UNLOAD && got.flags == KSV_REPO_DEPENDENTS
          && ksv_str_eq(got.model, "simple"));
    ksv_writer_free(&w);

    req.action = 9;
    ksv_writer_init(&w);
    ksv_encode_repository(&w, 1, &req);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &pre) == 0);
    CHECK(ksv_decode_repository(&r, &got) != 0);
    ksv_writer_free(&w);

    e[0].name = ksv_str_lit("later");
    e[0].version = -1;
    e[0].state = KSV_REPO_NAME_ONLY;
    e[0].reason = ksv_str_lit("");
    e[1].name = ksv_str_lit("simple");
    e[1].version = 3;
    e[1].state = KSV_REPO_UNLOADING;
    e[1].reason = ksv_str_lit("unloaded");
    rep.nentries = 2;
    rep.entries = e;
    ksv_writer_init(&w);
    ksv_encode_repository_reply(&w, 7, &rep);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &pre) == 0
          && pre.kind == KSV_MSG_REPOSITORY_REPLY);
    CHECK(ksv_decode_repository_reply(&r, &a, &back) == 0);
    CHECK(back.nentries == 2 && back.entries[0].version == -1
          && back.entries[0].state == KSV_REPO_NAME_ONLY
          && ksv_str_eq(back.entries[1].reason, "unloaded")
          && back.entries[1].version == 3);
    CHECK(strcmp(ksv_repo_state_name(KSV_REPO_UNLOADING), "UNLOADING") == 0);
    CHECK(strcmp(ksv_repo_state_name(KSV_VERSION_READY), "READY") == 0);

    ksv_writer_free(&w);

    /* a state byte that names nothing */
    e[1].state = 7;
    ksv_writer_init(&w);
    ksv_encode_repository_reply(&w, 7, &rep);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &pre) == 0);
    CHECK(ksv_decode_repository_reply(&r, &a, &back) != 0);
    ksv_writer_free(&w);

    ksv_arena_free(&arena);
}


int
main(void)
{
    test_infer_round_trip();
    test_truncation();
    test_bad_prefix();
    test_counts_are_capped();
    test_index_round_trip();
    test_error_and_ready();
    test_execute_reply();
    test_stats_round_trip();
    test_shape_count();
    test_datatypes();
    test_json_strings();
    test_repository_round_trip();

    KSV_TEST_END();
}
