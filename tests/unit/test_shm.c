/*
 * Unit tests for the shared memory extensions' pure parts
 * (ngx_module/ksv_shm.c) and the INFER / INFER_REPLY shared memory
 * sections of the wire codec (common/ksv_proto.c).
 */

#include <string.h>

#include "ksv_proto.h"
#include "ksv_shm.h"
#include "ksv_test.h"


static void
test_uri(void)
{
    size_t       len;
    const char  *name;

#define ROUTE(s)  ksv_shm_uri((s), sizeof(s) - 1, &name, &len)

    CHECK(ROUTE("/status") == KSV_SHM_STATUS && len == 0);
    CHECK(ROUTE("/unregister") == KSV_SHM_UNREGISTER && len == 0);
    CHECK(ROUTE("/region/in0/register") == KSV_SHM_REGISTER);
    CHECK(len == 3 && memcmp(name, "in0", 3) == 0);
    CHECK(ROUTE("/region/a.b:c/status") == KSV_SHM_STATUS && len == 5);
    CHECK(ROUTE("/region//status") == -1);
    CHECK(ROUTE("/region/x") == -1);
    CHECK(ROUTE("/region/x/y/status") == -1);
    CHECK(ROUTE("") == -1);
    CHECK(ROUTE("/status/") == -1);
    CHECK(ROUTE("/registers") == -1);

#undef ROUTE
}


static void
test_register_body(void)
{
    char                err[512];
    ksv_shm_register_t  req;

#define REG(s, cuda)  ksv_shm_parse_register((s), sizeof(s) - 1, (cuda),   \
                                             &req, err, sizeof(err))

    CHECK(REG("{\"key\":\"/in\",\"offset\":8,\"byte_size\":64}", 0) == 0);
    CHECK(strcmp(req.key, "/in") == 0 && req.offset == 8
          && req.byte_size == 64);
    CHECK(REG("{\"key\":\"/in\",\"byte_size\":1}", 0) == 0
          && req.offset == 0);

    CHECK(REG("", 0) == -1);
    CHECK(strcmp(err, "Shared memory register request has no 'key' field")
          == 0);
    CHECK(REG("{\"key\":\"/in\"}", 0) == -1);
    CHECK(strcmp(err, "Shared memory register request has no 'byte_size' "
                 "field") == 0);
    CHECK(REG("{\"key\":7,\"byte_size\":1}", 0) == -1);
    CHECK(REG("{\"key\":\"/in\",\"byte_size\":-1}", 0) == -1);
    CHECK(REG("{\"key\":\"/in\",\"byte_size\":1.5}", 0) == -1);
    CHECK(REG("[1]", 0) == -1);
    CHECK(REG("{\"key\":\"/a\",\"key\":\"/b\",\"byte_size\":1}", 0) == -1);
    CHECK(REG("{", 0) == -1);
    CHECK(strncmp(err, "failed to parse the request JSON buffer", 39) == 0);

    /* CUDA: a 64-byte handle, base64 */
    CHECK(REG("{\"raw_handle\":{\"b64\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
              "GBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==\"},"
              "\"device_id\":1,\"byte_size\":4096}", 1) == 0);
    CHECK(req.handle[0] == 0 && req.handle[63] == 63
          && req.device_id == 1 && req.byte_size == 4096);
    CHECK(REG("{\"raw_handle\":{\"b64\":\"AAAA\"},\"device_id\":0,"
              "\"byte_size\":1}", 1) == -1);
    CHECK(strcmp(err, "'raw_handle' must be a valid base64 encoded "
                 "cudaIpcMemHandle_t") == 0);
    CHECK(REG("{\"raw_handle\":{\"b64\":\"A=AA\"},\"device_id\":0,"
              "\"byte_size\":1}", 1) == -1);
    CHECK(REG("{\"device_id\":0,\"byte_size\":1}", 1) == -1);
    CHECK(strcmp(err, "Shared memory register request has no 'raw_handle' "
                 "field") == 0);

#undef REG
}


static void
test_keys(void)
{
#define KEY(s)  ksv_shm_key_valid((s), sizeof(s) - 1)

    /* as glibc's shm_open() takes them: leading slashes, one name */
    CHECK(KEY("/input_simple"));
    CHECK(KEY("/a"));
    CHECK(KEY("input"));
    CHECK(KEY("///input"));
    CHECK(!KEY("/"));
    CHECK(!KEY("///"));
    CHECK(!KEY(""));
    CHECK(!KEY("/dev/shm/x"));
    CHECK(!KEY("/."));
    CHECK(!KEY("/.."));
    CHECK(!KEY("/a\0b"));
    CHECK(KEY("/..."));

    CHECK(ksv_shm_key_reserved("triton_python_backend_shm_region_x", 34));
    CHECK(ksv_shm_key_reserved("///triton_python_backend_shm_region_", 36));
    CHECK(!ksv_shm_key_reserved("/triton_python_backend", 22));

#undef KEY
}


static void
test_wire_sections(void)
{
    uint32_t           shm_out[1] = { 1 };
    ksv_alloc_t        a;
    ksv_arena_t        arena;
    ksv_reader_t       r;
    ksv_writer_t       w;
    ksv_prefix_t       prefix;
    ksv_tensor_t       in[1], out[2];
    ksv_shm_ref_t      refs[2];
    ksv_infer_t        m, d;
    ksv_output_req_t   req[1];
    ksv_infer_reply_t  rm, rd;
    size_t             plain;

    memset(in, 0, sizeof(in));
    in[0].name = ksv_str_lit("INPUT0");
    in[0].datatype = KSV_TYPE_FP32;
    in[0].ndims = 1;
    in[0].dims[0] = 4;
    in[0].byte_size = 16;
    req[0].name = ksv_str_lit("OUTPUT0");
    req[0].flags = KSV_OUTPUT_SHM;

    memset(&m, 0, sizeof(m));
    m.model_name = ksv_str_lit("identity_fp32");
    m.ninputs = 1;
    m.inputs = in;
    m.noutputs = 1;
    m.outputs = req;

    /* without tensors in shared memory: the bytes of before */
    ksv_writer_init(&w);
    ksv_encode_infer(&w, 9, &m);
    plain = w.len;
    ksv_writer_free(&w);

    memset(refs, 0, sizeof(refs));
    refs[0].io = KSV_SHM_INPUT;
    refs[0].region = ksv_str_lit("in");
    refs[0].key = ksv_str_lit("/k_in");
    refs[0].offset = 4096;
    refs[0].byte_size = 16;
    refs[1].io = KSV_SHM_OUTPUT;
    refs[1].region = ksv_str_lit("out");
    refs[1].key = ksv_str_lit("/k_out");
    refs[1].byte_size = 16;
    m.nshm = 2;
    m.shm = refs;

    ksv_writer_init(&w);
    ksv_encode_infer(&w, 9, &m);
    CHECK(!w.failed && w.len > plain);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);
    ksv_reader_init(&r, w.buf, w.len);
    CHECK(ksv_read_prefix(&r, &prefix) == 0);
    CHECK(ksv_decode_infer(&r, &a, &d) == 0);
    CHECK(d.nshm == 2 && d.shm[0].io == KSV_SHM_INPUT
          && ksv_str_eq(d.shm[0].key, "/k_in") && d.shm[0].offset == 4096
          && d.shm[1].io == KSV_SHM_OUTPUT
          && ksv_str_eq(d.shm[1].region, "out"));

    /* a ref to a tensor that is not there, or twice the same: refused */
    refs[1].index = 1;
    ksv_writer_free(&w);
    ksv_writer_init(&w);
    ksv_encode_infer(&w, 9, &m);
    ksv_reader_init(&r, w.buf, w.len);
    (void) ksv_read_prefix(&r, &prefix);
    CHECK(ksv_decode_infer(&r, &a, &d) == -1);
    refs[1] = refs[0];
    ksv_writer_free(&w);
    ksv_writer_init(&w);
    ksv_encode_infer(&w, 9, &m);
    ksv_reader_init(&r, w.buf, w.len);
    (void) ksv_read_prefix(&r, &prefix);
    CHECK(ksv_decode_infer(&r, &a, &d) == -1);
    ksv_writer_free(&w);

    /* INFER_REPLY: which outputs went to their regions */
    memset(out, 0, sizeof(out));
    out[0].name = ksv_str_lit("OUTPUT0");
    out[1].name = ksv_str_lit("OUTPUT1");
    out[0].datatype = KSV_TYPE_FP32;
    out[1].datatype = KSV_TYPE_FP32;
    memset(&rm, 0, sizeof(rm));
    rm.noutputs = 2;
    rm.outputs = out;
    rm.nshm = 1;
    rm.shm = shm_out;
    ksv_writer_init(&w);
    ksv_encode_infer_reply(&w, 9, &rm);
    ksv_reader_init(&r, w.buf, w.len);
    (void) ksv_read_prefix(&r, &prefix);
    CHECK(ksv_decode_infer_reply(&r, &a, &rd) == 0);
    CHECK(rd.nshm == 1 && rd.shm[0] == 1);
    ksv_writer_free(&w);

    shm_out[0] = 2;                     /* no such output */
    ksv_writer_init(&w);
    ksv_encode_infer_reply(&w, 9, &rm);
    ksv_reader_init(&r, w.buf, w.len);
    (void) ksv_read_prefix(&r, &prefix);
    CHECK(ksv_decode_infer_reply(&r, &a, &rd) == -1);
    ksv_writer_free(&w);

    ksv_arena_free(&arena);
}


int
main(void)
{
    test_uri();
    test_register_body();
    test_keys();
    test_wire_sections();

    KSV_TEST_END();
}
