/*
 * ngx_kserve: Triton's trace and logging extensions, the nginx-free
 * parts: trace settings (ngx_module/ksv_trace.c) as Triton keeps them,
 * sampling, records; log settings (ngx_module/ksv_logging.c) and their
 * page (common/ksv_logset.c); the INFER_REPLY's trace timestamps
 * (common/ksv_proto.c).
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ksv_datatype.h"
#include "ksv_logging.h"
#include "ksv_logset.h"
#include "ksv_trace.h"
#include "ksv_test.h"


#define UPDATE(t, name, body)                                                \
    ksv_trace_update((t), (name), strlen(name), (body), strlen(body), err,   \
                     sizeof(err), &status)

static char  err[256];
static int   status;
static ksv_trace_table_t  t;


static void
table(uint32_t level, uint32_t rate, int32_t count)
{
    ksv_trace_setting_t  init;

    memset(&init, 0, sizeof(init));
    init.level = level;
    init.rate = rate;
    init.count = count;
    ksv_trace_table_init(&t, &init);
}


static int
json_is(ksv_writer_t *w, const char *expect)
{
    int  ok;

    ok = w->len == strlen(expect) && memcmp(w->buf, expect, w->len) == 0;
    if (!ok) {
        fprintf(stderr, "got %.*s\n", (int) w->len, (char *) w->buf);
    }
    ksv_writer_free(w);
    return ok;
}


static void
test_settings_json_as_triton(void)
{
    ksv_writer_t  w;

    table(0, 1000, -1);
    ksv_writer_init(&w);
    ksv_trace_settings_json(&w, &t, "", 0, "/tmp/t.json");
    CHECK(json_is(&w, "{\"trace_level\":[\"OFF\"],\"trace_rate\":\"1000\","
                      "\"trace_count\":\"-1\",\"log_frequency\":\"0\","
                      "\"trace_file\":\"/tmp/t.json\","
                      "\"trace_mode\":\"triton\"}"));

    CHECK(UPDATE(&t, "", "{\"trace_level\":[\"TIMESTAMPS\",\"TENSORS\"],"
                         "\"trace_rate\":\"5\",\"log_frequency\":3}") == 0);
    ksv_writer_init(&w);
    ksv_trace_settings_json(&w, &t, "", 0, "");
    CHECK(json_is(&w, "{\"trace_level\":[\"TIMESTAMPS\",\"TENSORS\"],"
                      "\"trace_rate\":\"5\",\"trace_count\":\"-1\","
                      "\"log_frequency\":\"3\",\"trace_file\":\"\","
                      "\"trace_mode\":\"triton\"}"));
}


static void
test_model_fields_fall_back_to_global(void)
{
    ksv_trace_view_t  v;

    table(KSV_TRACE_TIMESTAMPS, 1, -1);

    CHECK(UPDATE(&t, "m", "{\"trace_rate\":\"4\"}") == 0);
    ksv_trace_view(&t, "m", 1, &v);
    CHECK(v.rate == 4 && v.level == KSV_TRACE_TIMESTAMPS);

    /* a later global change reaches what the model does not set */
    CHECK(UPDATE(&t, "", "{\"trace_level\":[\"OFF\"],\"trace_rate\":\"9\"}")
          == 0);
    ksv_trace_view(&t, "m", 1, &v);
    CHECK(v.rate == 4 && v.level == 0);
    CHECK(ksv_trace_any(&t) == 0);

    /* null: the model's field goes; the global one back to its start */
    CHECK(UPDATE(&t, "m", "{\"trace_rate\":null}") == 0);
    CHECK(t.nmodels == 0);
    CHECK(UPDATE(&t, "", "{\"trace_level\":null,\"trace_rate\":null}") == 0);
    ksv_trace_view(&t, "m", 1, &v);
    CHECK(v.rate == 1 && v.level == KSV_TRACE_TIMESTAMPS);
}


static void
test_refused_bodies_change_nothing(void)
{
    ksv_trace_table_t  before;

    table(KSV_TRACE_TIMESTAMPS, 1, -1);
    before = t;

    CHECK(UPDATE(&t, "", "{\"trace_rate\":\"7\",\"trace_file\":\"x\"}") != 0
          && status == 501
          && strstr(err, "trace file location can not be updated") != NULL);
    CHECK(UPDATE(&t, "", "{\"trace_level\":[\"OFF\",\"TIMESTAMPS\"]}") != 0
          && strcmp(err, "Expect only one trace level 'OFF' is specified")
             == 0);
    CHECK(UPDATE(&t, "", "{\"trace_rate\":\"x\"}") != 0
          && strcmp(err, "Unable to parse 'trace_rate', got: x") == 0);
    CHECK(UPDATE(&t, "", "{\"trace_count\":\"-5\"}") != 0
          && strstr(err, "Expecting value >= -1") != NULL);
    CHECK(UPDATE(&t, "", "[1]") != 0 && status == 400);
    CHECK(UPDATE(&t, "", "{") != 0 && status == 400);
    CHECK(memcmp(&t, &before, sizeof(t)) == 0);
}


static void
test_rate_and_count(void)
{
    int               i, n;
    ksv_trace_view_t  v;

    table(KSV_TRACE_TIMESTAMPS, 3, 2);

    for (i = 0, n = 0; i < 20; i++) {
        n += ksv_trace_sample(&t, "m", 1, &v);
    }
    CHECK(n == 2 && t.global.count == 0);

    table(KSV_TRACE_TIMESTAMPS, 3, -1);
    for (i = 0, n = 0; i < 30; i++) {
        n += ksv_trace_sample(&t, "m", 1, &v);
    }
    CHECK(n == 10 && t.global.count == -1);

    /* a model's own count is its own */
    table(KSV_TRACE_TIMESTAMPS, 1, -1);
    CHECK(UPDATE(&t, "m", "{\"trace_count\":\"1\"}") == 0);
    for (i = 0, n = 0; i < 5; i++) {
        n += ksv_trace_sample(&t, "m", 1, &v);
    }
    CHECK(n == 1);
    CHECK(ksv_trace_sample(&t, "other", 5, &v) == 1);
}


static void
test_record_json(void)
{
    ksv_writer_t        w;
    ksv_trace_record_t  rec;

    memset(&rec, 0, sizeof(rec));
    rec.id = 3;
    rec.model_name = ksv_str_lit("simple");
    rec.model_version = 1;
    rec.request_id = ksv_str_lit("r\"1");
    rec.ns[KSV_TS_HTTP_RECV_START] = 10;
    rec.ns[KSV_TS_COMPUTE_END] = 20;

    ksv_writer_init(&w);
    ksv_trace_record_json(&w, &rec);
    CHECK(json_is(&w, "{\"id\":3,\"model_name\":\"simple\","
                      "\"model_version\":1,\"request_id\":\"r\\\"1\"},"
                      "{\"id\":3,\"timestamps\":[{\"name\":"
                      "\"HTTP_RECV_START\",\"ns\":10}]},"
                      "{\"id\":3,\"timestamps\":[{\"name\":\"COMPUTE_END\","
                      "\"ns\":20}]}"));
}


static void
test_tensor_json(void)
{
    int32_t        v[3] = { 1, -2, 3 };
    uint8_t        bytes[] = { 2, 0, 0, 0, 'h', 'i', 1, 0, 0, 0, '"' };
    float          f[2] = { 0.5f, 1e10f };
    ksv_tensor_t   t;
    ksv_writer_t   w;

    memset(&t, 0, sizeof(t));
    t.name = ksv_str_lit("INPUT0");
    t.datatype = KSV_TYPE_INT32;
    t.ndims = 2;
    t.dims[0] = 1;
    t.dims[1] = 3;

    ksv_writer_init(&w);
    ksv_trace_tensor_json(&w, 7, "TENSOR_QUEUE_INPUT", &t, v, sizeof(v));
    CHECK(json_is(&w, ",{\"id\":7,\"activity\":\"TENSOR_QUEUE_INPUT\","
                      "\"tensor\":{\"name\":\"INPUT0\",\"data\":\"1,-2,3\","
                      "\"shape\":\"1,3\",\"dtype\":\"INT32\"}}"));

    t.datatype = KSV_TYPE_BYTES;
    t.ndims = 1;
    t.dims[0] = 2;
    ksv_writer_init(&w);
    ksv_trace_tensor_json(&w, 7, "TENSOR_BACKEND_OUTPUT", &t, bytes,
                          sizeof(bytes));
    CHECK(json_is(&w, ",{\"id\":7,\"activity\":\"TENSOR_BACKEND_OUTPUT\","
                      "\"tensor\":{\"name\":\"INPUT0\",\"data\":"
                      "\"\\\"hi\\\",\\\"\\\"\\\"\",\"shape\":\"2\","
                      "\"dtype\":\"BYTES\"}}"));

    /* a BYTES length past the end: what came before, then "..." */
    bytes[6] = 9;
    ksv_writer_init(&w);
    ksv_trace_tensor_json(&w, 7, "X", &t, bytes, sizeof(bytes));
    CHECK(w.len > 0 && strstr((char *) w.buf, "hi\\\",...") != NULL);
    ksv_writer_free(&w);

    t.datatype = KSV_TYPE_FP32;
    ksv_writer_init(&w);
    ksv_trace_tensor_json(&w, 1, "X", &t, f, sizeof(f));
    CHECK(w.len > 0 && strstr((char *) w.buf, "\"0.5,1e+10\"") != NULL);
    ksv_writer_free(&w);
}


static void
test_logging_settings(void)
{
    ksv_writer_t        w;
    ksv_log_settings_t  s, before;

    ksv_log_settings_default(&s);
    ksv_writer_init(&w);
    ksv_logging_json(&w, &s);
    CHECK(json_is(&w, "{\"log_file\":\"\",\"log_info\":true,"
                      "\"log_warning\":true,\"log_error\":true,"
                      "\"log_verbose_level\":0,\"log_format\":\"default\"}"));

#define LOG_UPDATE(body)                                                     \
    ksv_logging_update(&s, body, strlen(body), err, sizeof(err), &status)

    CHECK(LOG_UPDATE("{\"log_info\":false,\"log_verbose_level\":2,"
                     "\"log_format\":\"ISO8601\",\"other\":1,"
                     "\"log_error\":null}") == 0);
    CHECK(!s.info && s.warning && s.error && s.verbose == 2
          && s.format == KSV_LOG_FORMAT_ISO8601);

    before = s;
    CHECK(LOG_UPDATE("{\"log_warning\":false,\"log_file\":\"f\"}") != 0
          && status == 501);
    CHECK(LOG_UPDATE("{\"log_warning\":false,\"log_format\":\"x\"}") != 0
          && status == 503
          && strcmp(err, "invalid argument for --log_format, got: x") == 0);
    CHECK(LOG_UPDATE("{\"log_verbose_level\":-1}") != 0 && status == 400);
    CHECK(LOG_UPDATE("{\"log_info\":1}") != 0 && status == 400);
    CHECK(memcmp(&s, &before, sizeof(s)) == 0);
    CHECK(LOG_UPDATE("") == 0);
}


static void
test_log_page(void)
{
    char                 dir[] = "/tmp/ksv_test_logset.XXXXXX", path[64];
    ksv_log_page_t      *w, *r;
    ksv_log_settings_t   s, got;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/" KSV_LOG_PAGE_FILE, dir);

    CHECK(ksv_log_page_map(path, 0) == NULL);   /* an instance: none yet */

    w = ksv_log_page_map(path, 1);
    CHECK(w != NULL);
    ksv_log_page_read(w, &got);
    CHECK(got.info && got.warning && got.error && got.verbose == 0);

    r = ksv_log_page_map(path, 0);
    CHECK(r != NULL);
    s = got;
    s.error = 0;
    s.verbose = 3;
    s.format = KSV_LOG_FORMAT_ISO8601;
    ksv_log_page_write(w, &s);
    ksv_log_page_read(r, &got);
    CHECK(memcmp(&got, &s, sizeof(s)) == 0);

    /* a restarted worker keeps what is there */
    ksv_log_page_unmap(w);
    w = ksv_log_page_map(path, 1);
    ksv_log_page_read(w, &got);
    CHECK(got.verbose == 3 && !got.error);

    ksv_log_page_unmap(w);
    ksv_log_page_unmap(r);
    unlink(path);
    rmdir(dir);
}


static void
test_reply_trace_times_round_trip(void)
{
    ksv_alloc_t        a;
    ksv_arena_t        arena;
    ksv_prefix_t       prefix;
    ksv_reader_t       rd;
    ksv_writer_t       w;
    ksv_infer_reply_t  m, back;

    memset(&m, 0, sizeof(m));
    m.model_name = ksv_str_lit("simple");
    m.model_version = ksv_str_lit("1");

    /* without: decodes with has_trace 0 */
    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);
    ksv_writer_init(&w);
    ksv_encode_infer_reply(&w, 9, &m);
    ksv_reader_init(&rd, w.buf, w.len);
    CHECK(ksv_read_prefix(&rd, &prefix) == 0);
    CHECK(ksv_decode_infer_reply(&rd, &a, &back) == 0 && !back.has_trace);
    ksv_writer_free(&w);

    m.has_trace = 1;
    m.trace.queue_start = 1;
    m.trace.compute_start = 2;
    m.trace.compute_input_end = 3;
    m.trace.compute_output_start = 4;
    m.trace.compute_end = 5;
    m.trace.request_end = 6;
    ksv_writer_init(&w);
    ksv_encode_infer_reply(&w, 9, &m);
    ksv_reader_init(&rd, w.buf, w.len);
    CHECK(ksv_read_prefix(&rd, &prefix) == 0);
    CHECK(ksv_decode_infer_reply(&rd, &a, &back) == 0 && back.has_trace);
    CHECK(memcmp(&back.trace, &m.trace, sizeof(m.trace)) == 0);
    CHECK(rd.p == rd.end);

    /* a short trailer is malformed */
    ksv_reader_init(&rd, w.buf, w.len - 1);
    CHECK(ksv_read_prefix(&rd, &prefix) == 0);
    CHECK(ksv_decode_infer_reply(&rd, &a, &back) != 0);
    ksv_writer_free(&w);

    /* after an output written to shared memory: both sections */
    {
        uint32_t      shm_index = 0;
        ksv_tensor_t  out;

        memset(&out, 0, sizeof(out));
        out.name = ksv_str_lit("OUTPUT0");
        out.datatype = KSV_TYPE_FP32;
        out.ndims = 1;
        out.dims[0] = 4;
        out.byte_size = 16;
        m.noutputs = 1;
        m.outputs = &out;
        m.nshm = 1;
        m.shm = &shm_index;

        ksv_writer_init(&w);
        ksv_encode_infer_reply(&w, 9, &m);
        ksv_reader_init(&rd, w.buf, w.len);
        CHECK(ksv_read_prefix(&rd, &prefix) == 0);
        CHECK(ksv_decode_infer_reply(&rd, &a, &back) == 0);
        CHECK(back.nshm == 1 && back.shm[0] == 0 && back.has_trace);
        CHECK(back.trace.request_end == 6 && rd.p == rd.end);
        ksv_writer_free(&w);
    }

    ksv_arena_free(&arena);
}


int
main(void)
{
    test_settings_json_as_triton();
    test_model_fields_fall_back_to_global();
    test_refused_bodies_change_nothing();
    test_rate_and_count();
    test_record_json();
    test_tensor_json();
    test_logging_settings();
    test_log_page();
    test_reply_trace_times_round_trip();

    KSV_TEST_END();
}
