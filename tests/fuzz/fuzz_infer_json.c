/*
 * libFuzzer target for ngx_module/ksv_infer_request.c and
 * ksv_infer_reply.c, the code that reads
 * what an HTTP client and the worker send the nginx module.
 *
 * An input that starts with the frame magic ("VK", 0x4B56 little-endian,
 * which no JSON document starts with) is an INFER_REPLY as the module
 * receives it: the header frame, then the output frames carved from the
 * rest of the input by the byte sizes the header announces (the last
 * one gets what is left), each in its own allocation so an overread of
 * one frame is caught.  It is rendered as Triton's JSON answer.
 *
 * The reserved byte of that frame's prefix (offset 4), which receivers
 * ignore, picks the outputs rendered binary (bit i % 8 for output i),
 * through ksv_infer_reply_header().
 *
 * An input that starts with 0x01 is a request with Triton's binary
 * tensor extension: u16 LE Inference-Header-Content-Length (0: raw
 * request), one byte selecting limits (0: none), then the body: JSON
 * header followed by the tensors' bytes.  It goes through
 * ksv_infer_parse() for each model below.
 *
 * Anything else is a KServe v2 JSON request body, parsed and checked
 * against each of the model configurations below.  What the parser
 * accepts must hold its promises:
 *   - every input buffer is exactly byte_size long and holds the shape's
 *     element count (BYTES: u32 length + bytes, exactly filling it);
 *   - with max_batch_size > 0, dim 0 is the same batch 1..max in every
 *     input;
 *   - the INFER frame built from it decodes to the same message;
 *   - rendered back as a reply (an identity model's answer) and sent
 *     again as a request, it parses to the same bytes.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_infer_reply.h"
#include "ksv_infer_request.h"
#include "ksv_json_write.h"
#include "ksv_pbtxt.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


/* Models the requests are checked against: batching and not, fixed and
 * variable dims, every datatype class (BYTES, BOOL, UINT64, floats). */
static const char  *model_texts[] = {

    /* Triton's "simple" */
    "name: \"simple\" backend: \"python\" max_batch_size: 8\n"
    "input [ { name: \"INPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },\n"
    "        { name: \"INPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n"
    "output [ { name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ] },\n"
    "         { name: \"OUTPUT1\" data_type: TYPE_INT32 dims: [ 16 ] } ]\n",

    /* batching, mixed types, one required BYTES input */
    "name: \"mixed\" backend: \"python\" max_batch_size: 4\n"
    "input [\n"
    "  { name: \"TEXT\" data_type: TYPE_STRING dims: [ -1 ] },\n"
    "  { name: \"MASK\" data_type: TYPE_BOOL dims: [ 2, -1 ] optional: true },\n"
    "  { name: \"IDS\" data_type: TYPE_UINT64 dims: [ 3 ] optional: true },\n"
    "  { name: \"EMB\" data_type: TYPE_FP32 dims: [ -1, -1 ] optional: true },\n"
    "  { name: \"W\" data_type: TYPE_FP64 dims: [ 1 ] optional: true },\n"
    "  { name: \"Q\" data_type: TYPE_INT8 dims: [ -1 ] optional: true }\n"
    "]\n"
    "output [ { name: \"OUT\" data_type: TYPE_STRING dims: [ -1 ] },\n"
    "         { name: \"SCORE\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n",

    /* no batching: one optional input per datatype, any shape */
    "name: \"all_types\" backend: \"python\" max_batch_size: 0\n"
    "input [\n"
    "  { name: \"IN_BOOL\" data_type: TYPE_BOOL dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_UINT8\" data_type: TYPE_UINT8 dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_UINT16\" data_type: TYPE_UINT16 dims: [ -1 ] "
    "optional: true },\n"
    "  { name: \"IN_UINT32\" data_type: TYPE_UINT32 dims: [ -1 ] "
    "optional: true },\n"
    "  { name: \"IN_UINT64\" data_type: TYPE_UINT64 dims: [ -1 ] "
    "optional: true },\n"
    "  { name: \"IN_INT8\" data_type: TYPE_INT8 dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_INT16\" data_type: TYPE_INT16 dims: [ -1, -1, -1 ] "
    "optional: true },\n"
    "  { name: \"IN_INT32\" data_type: TYPE_INT32 dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_INT64\" data_type: TYPE_INT64 dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_FP16\" data_type: TYPE_FP16 dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_BF16\" data_type: TYPE_BF16 dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_FP32\" data_type: TYPE_FP32 dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_FP64\" data_type: TYPE_FP64 dims: [ -1 ] optional: true },\n"
    "  { name: \"IN_BYTES\" data_type: TYPE_STRING dims: [ -1 ] "
    "optional: true }\n"
    "]\n"
    "output [ { name: \"OUT\" data_type: TYPE_FP32 dims: [ -1 ] } ]\n",

    /* one input each, for raw (header length 0) requests */
    "name: \"single_fp32\" backend: \"python\" max_batch_size: 4\n"
    "input [ { name: \"X\" data_type: TYPE_FP32 dims: [ -1 ] } ]\n"
    "output [ { name: \"Y\" data_type: TYPE_FP32 dims: [ -1 ] } ]\n",

    "name: \"single_bytes\" backend: \"python\" max_batch_size: 0\n"
    "input [ { name: \"S\" data_type: TYPE_STRING dims: [ 1 ] } ]\n"
    "output [ { name: \"T\" data_type: TYPE_STRING dims: [ 1 ] } ]\n",
};

#define NMODELS  (sizeof(model_texts) / sizeof(model_texts[0]))

static ksv_arena_t         models_arena;
static ksv_model_config_t  models[NMODELS];

/* KSV_FUZZ_VERBOSE=1: say what each model made of each input, to check
 * that seeds reach the paths they are meant for */
static int                 verbose;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t  i;
    char    err[256];

    (void) argc;
    (void) argv;

    ksv_arena_init(&models_arena);
    verbose = getenv("KSV_FUZZ_VERBOSE") != NULL;

    for (i = 0; i < NMODELS; i++) {
        if (ksv_pbtxt_parse(model_texts[i], strlen(model_texts[i]),
                            "fuzz", &models_arena, &models[i], err,
                            sizeof(err), NULL, NULL) != 0
            || ksv_pbtxt_defaults(&models[i], models[i].name.data,
                                  &models_arena, err, sizeof(err)) != 0)
        {
            fprintf(stderr, "model %zu: %s\n", i, err);
            abort();
        }
    }

    return 0;
}


/* ---- INFER_REPLY frames -> JSON ------------------------------------------ */

static void
fuzz_reply(const uint8_t *buf, size_t len)
{
    char               err[256];
    size_t             rest, n;
    size_t            *sizes;
    uint8_t           *binary, prefix_byte;
    uint32_t           i;
    const uint8_t     *p;
    ksv_alloc_t        a;
    ksv_arena_t        arena;
    ksv_prefix_t       prefix;
    ksv_reader_t       r;
    ksv_writer_t       w;
    uint8_t          **frames;
    ksv_infer_reply_t  m;

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    prefix_byte = len > 4 ? buf[4] : 0;

    ksv_reader_init(&r, buf, len);
    (void) ksv_read_prefix(&r, &prefix);

    if (ksv_decode_infer_reply(&r, &a, &m) != 0) {
        ksv_arena_free(&arena);
        return;
    }

    frames = calloc(m.noutputs + 1, sizeof(uint8_t *));
    sizes = calloc(m.noutputs + 1, sizeof(size_t));
    FUZZ_CHECK(frames != NULL && sizes != NULL);

    p = r.p;
    rest = (size_t) (r.end - r.p);

    for (i = 0; i < m.noutputs; i++) {
        n = rest;
        if (i + 1 < m.noutputs && m.outputs[i].byte_size < rest) {
            n = (size_t) m.outputs[i].byte_size;
        }

        /* malloc(0) may return NULL: frames are never NULL in zmq */
        frames[i] = malloc(n ? n : 1);
        FUZZ_CHECK(frames[i] != NULL);
        memcpy(frames[i], p, n);
        sizes[i] = n;
        p += n;
        rest -= n;
    }

    binary = calloc(m.noutputs + 1, 1);
    FUZZ_CHECK(binary != NULL);

    for (i = 0; i < m.noutputs; i++) {
        binary[i] = (prefix_byte >> (i % 8)) & 1;
    }

    ksv_writer_init(&w);
    if (ksv_infer_reply_header(&w, &m, (const void *const *) frames, sizes,
                               m.noutputs, binary, err, sizeof(err))
        == 0)
    {
        FUZZ_CHECK(!w.failed);
    }
    ksv_writer_free(&w);
    free(binary);

    ksv_writer_init(&w);
    if (ksv_infer_reply_header(&w, &m, (const void *const *) frames, sizes,
                               m.noutputs, NULL, err, sizeof(err))
        == 0)
    {
        FUZZ_CHECK(!w.failed);
        if (verbose) {
            fprintf(stderr, "reply: %.*s\n", (int) w.len, (char *) w.buf);
        }

    } else if (verbose) {
        fprintf(stderr, "reply refused: %s\n", err);
    }
    ksv_writer_free(&w);

    for (i = 0; i < m.noutputs; i++) {
        free(frames[i]);
    }
    free(frames);
    free(sizes);
    ksv_arena_free(&arena);
}


/* ---- JSON request -> frames ---------------------------------------------- */

/* The buffer holds exactly the shape's elements. */
static void
check_buffer(const ksv_tensor_t *t, const uint8_t *d)
{
    size_t          es;
    uint32_t        len;
    uint64_t        count, i;
    const uint8_t  *p, *end;

    FUZZ_CHECK(ksv_shape_count(t->dims, t->ndims, UINT64_MAX, &count) == 0);
    FUZZ_CHECK((t->byte_size == 0) == (d == NULL));

    if (t->datatype != KSV_TYPE_BYTES) {
        es = ksv_datatype_size(t->datatype);
        FUZZ_CHECK(es != 0);
        FUZZ_CHECK(count * es == t->byte_size);

        /* touch every byte: ASan checks the allocation's extent */
        if (t->byte_size) {
            volatile uint8_t  sink = d[0] ^ d[t->byte_size - 1];
            (void) sink;
        }
        return;
    }

    if (t->byte_size == 0) {
        FUZZ_CHECK(count == 0);
        return;
    }

    p = d;
    end = d + t->byte_size;

    for (i = 0; i < count; i++) {
        FUZZ_CHECK(end - p >= 4);
        len = (uint32_t) p[0] | (uint32_t) p[1] << 8
              | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
        p += 4;
        FUZZ_CHECK((size_t) (end - p) >= len);
        p += len;
    }

    FUZZ_CHECK(p == end);
}


/* The INFER header frame decodes to what was encoded. */
static void
check_frame(const ksv_infer_t *m)
{
    size_t        len1, len2;
    uint8_t      *f1, *f2;
    ksv_alloc_t   a;
    ksv_arena_t   arena;
    ksv_prefix_t  prefix;
    ksv_reader_t  r;
    ksv_writer_t  w;
    ksv_infer_t   d;

    ksv_writer_init(&w);
    ksv_encode_infer(&w, 42, m);
    FUZZ_CHECK(!w.failed);
    f1 = ksv_writer_detach(&w, &len1);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    ksv_reader_init(&r, f1, len1);
    FUZZ_CHECK(ksv_read_prefix(&r, &prefix) == 0);
    FUZZ_CHECK(prefix.kind == KSV_MSG_INFER && prefix.id == 42);
    FUZZ_CHECK(ksv_decode_infer(&r, &a, &d) == 0);
    FUZZ_CHECK(r.p == r.end);
    FUZZ_CHECK(d.ninputs == m->ninputs && d.noutputs == m->noutputs
               && d.nparams == m->nparams && d.flags == m->flags);

    ksv_writer_init(&w);
    ksv_encode_infer(&w, 42, &d);
    f2 = ksv_writer_detach(&w, &len2);
    FUZZ_CHECK(len1 == len2 && memcmp(f1, f2, len1) == 0);

    free(f1);
    free(f2);
    ksv_arena_free(&arena);
}


/* Two buffers of a datatype hold the same values (floats by value, so
 * -0.0 printed as "-0" and read back as 0 still compares equal). */
static int
same_values(ksv_datatype_t dt, const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t  i;
    float   fa, fb;
    double  da, db;

    if (n == 0) {
        return 1;
    }

    if (dt == KSV_TYPE_FP32) {
        for (i = 0; i < n; i += 4) {
            memcpy(&fa, a + i, 4);
            memcpy(&fb, b + i, 4);
            if (fa != fb) {
                return 0;
            }
        }
        return 1;
    }

    if (dt == KSV_TYPE_FP64) {
        for (i = 0; i < n; i += 8) {
            memcpy(&da, a + i, 8);
            memcpy(&db, b + i, 8);
            if (da != db) {
                return 0;
            }
        }
        return 1;
    }

    return memcmp(a, b, n) == 0;
}


/*
 * A JSON-only request: ksv_infer_parse() without binary data, its buffers
 * also as a plain array (*data, calloc()ed) for the checks.
 */
static int
parse_json(const uint8_t *buf, size_t len, const ksv_model_config_t *config,
    ksv_alloc_t *a, ksv_infer_t *m, ksv_infer_buf_t **bufs, uint8_t ***data,
    ksv_infer_error_t *err)
{
    uint32_t  i;

    if (ksv_infer_parse(buf, len, KSV_INFER_JSON_ONLY, config, NULL, a, m,
                        bufs, err)
        != 0)
    {
        return -1;
    }

    *data = calloc(m->ninputs + 1, sizeof(uint8_t *));
    FUZZ_CHECK(*data != NULL);

    for (i = 0; i < m->ninputs; i++) {
        FUZZ_CHECK((*bufs)[i].owned || (*bufs)[i].data == NULL);
        (*data)[i] = (*bufs)[i].data;
    }

    return 0;
}


/*
 * Renders the parsed inputs as an identity model's reply and parses that
 * JSON again as a request: same tensors, same bytes.
 */
static void
check_round_trip(const ksv_model_config_t *config, const ksv_infer_t *m,
    uint8_t **data)
{
    int                rc;
    char               err[256];
    size_t             len, *sizes;
    uint8_t           *json, *req, *outputs, **data2;
    uint32_t           i, k;
    const void       **frames;
    ksv_alloc_t        a;
    ksv_arena_t        arena;
    ksv_writer_t       w;
    ksv_infer_t        m2;
    ksv_infer_buf_t   *bufs2;
    ksv_infer_reply_t  reply;
    ksv_infer_error_t  perr;

    memset(&reply, 0, sizeof(reply));
    reply.model_name = ksv_str_lit("");
    reply.model_version = ksv_str_lit("");
    reply.request_id = ksv_str_lit("");
    reply.noutputs = m->ninputs;
    reply.outputs = m->inputs;

    frames = calloc(m->ninputs + 1, sizeof(void *));
    sizes = calloc(m->ninputs + 1, sizeof(size_t));
    FUZZ_CHECK(frames != NULL && sizes != NULL);

    for (i = 0; i < m->ninputs; i++) {
        frames[i] = data[i] != NULL ? (const void *) data[i] : "";
        sizes[i] = m->inputs[i].byte_size;
    }

    ksv_writer_init(&w);
    rc = ksv_infer_reply_header(&w, &reply, frames, sizes, m->ninputs, NULL,
                                err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "accepted request renders as no reply: %s\n", err);
        abort();
    }
    FUZZ_CHECK(!w.failed);
    ksv_put_u8(&w, '\0');
    json = ksv_writer_detach(&w, &len);

    free(frames);
    free(sizes);

    /* no JSON spelling for non-finite values (FP32 overflows from large
     * doubles): the renderer writes Python's, which requests cannot use */
    if (strstr((char *) json, "Infinity") != NULL
        || strstr((char *) json, "NaN") != NULL)
    {
        free(json);
        return;
    }

    /* {"model_name":"","model_version":"","outputs":[...]} ->
     * {"inputs":[...]} */
    outputs = (uint8_t *) strstr((char *) json, "\"outputs\":");
    FUZZ_CHECK(outputs != NULL);
    outputs += sizeof("\"outputs\":") - 1;
    req = malloc(len + 16);
    FUZZ_CHECK(req != NULL);
    len = (size_t) snprintf((char *) req, len + 16, "{\"inputs\":%s",
                            (char *) outputs);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    if (parse_json(req, len, config, &a, &m2, &bufs2, &data2, &perr) != 0) {
        fprintf(stderr, "rendered request refused: %s\n%s\n", perr.message,
                (char *) req);
        abort();
    }

    FUZZ_CHECK(m2.ninputs == m->ninputs);

    for (i = 0; i < m->ninputs; i++) {
        FUZZ_CHECK(m2.inputs[i].name.data == m->inputs[i].name.data);
        FUZZ_CHECK(m2.inputs[i].datatype == m->inputs[i].datatype);
        FUZZ_CHECK(m2.inputs[i].ndims == m->inputs[i].ndims);
        for (k = 0; k < m->inputs[i].ndims; k++) {
            FUZZ_CHECK(m2.inputs[i].dims[k] == m->inputs[i].dims[k]);
        }
        FUZZ_CHECK(m2.inputs[i].byte_size == m->inputs[i].byte_size);

        if (!same_values(m->inputs[i].datatype, data[i], data2[i],
                         m->inputs[i].byte_size))
        {
            fprintf(stderr, "input %u differs after a round trip:\n%s\n", i,
                    (char *) req);
            abort();
        }
    }

    ksv_infer_free_bufs(bufs2, m2.ninputs);
    free(data2);
    ksv_arena_free(&arena);
    free(req);
    free(json);
}


/* What any accepted request must be. */
static void
check_accepted(const ksv_model_config_t *config, ksv_infer_t *m,
    uint8_t **data)
{
    int64_t              batch;
    uint32_t             i, k;
    const ksv_tensor_t  *t;

    FUZZ_CHECK(m->ninputs <= config->ninputs);
    FUZZ_CHECK(m->noutputs <= config->noutputs);

    batch = -1;

    for (i = 0; i < m->ninputs; i++) {
        t = &m->inputs[i];

        for (k = 0; k < config->ninputs; k++) {
            if (t->name.data == config->inputs[k].name.data) {
                break;
            }
        }
        FUZZ_CHECK(k < config->ninputs);
        FUZZ_CHECK(t->datatype == config->inputs[k].datatype);
        FUZZ_CHECK(t->ndims <= KSV_MAX_DIMS);

        if (config->max_batch_size > 0) {
            FUZZ_CHECK(t->ndims >= 1);
            FUZZ_CHECK(t->dims[0] >= 1
                       && t->dims[0] <= config->max_batch_size);
            FUZZ_CHECK(batch == -1 || batch == t->dims[0]);
            batch = t->dims[0];
        }

        check_buffer(t, data[i]);
    }

    m->model_name = config->name;
    check_frame(m);
}


/* A refusal is the client's mistake: a 4xx with a message. */
static void
check_refused(const ksv_model_config_t *config, const ksv_infer_error_t *err)
{
    if (verbose) {
        fprintf(stderr, "%s: %s\n", config->name.data, err->message);
    }

    FUZZ_CHECK(err->code == KSV_ERR_INVALID_ARG
               || err->code == KSV_ERR_UNSUPPORTED);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL);
}


static void
fuzz_request(const uint8_t *buf, size_t len, const ksv_model_config_t *config)
{
    uint8_t           **data;
    ksv_infer_buf_t    *bufs;
    ksv_alloc_t         a;
    ksv_arena_t         arena;
    ksv_infer_t         m;
    ksv_infer_error_t   err;

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    if (parse_json(buf, len, config, &a, &m, &bufs, &data, &err) != 0) {
        check_refused(config, &err);
        ksv_arena_free(&arena);
        return;
    }

    if (verbose) {
        fprintf(stderr, "%s: accepted\n", config->name.data);
    }

    check_accepted(config, &m, data);
    check_round_trip(config, &m, data);

    ksv_infer_free_bufs(bufs, m.ninputs);
    free(data);
    ksv_arena_free(&arena);
}


/* Triton's binary extension: JSON header, then the tensors' bytes. */
static void
fuzz_binary(const uint8_t *buf, size_t len, const ksv_model_config_t *config)
{
    size_t               header_len;
    uint8_t             *body, **data;
    uint32_t             i;
    uint64_t             count;
    ksv_alloc_t          a;
    ksv_arena_t          arena;
    ksv_infer_t          m;
    ksv_infer_buf_t     *bufs;
    ksv_infer_error_t    err;
    ksv_infer_limits_t   limits, *lim;

    if (len < 4) {
        return;
    }

    header_len = (size_t) buf[1] | (size_t) buf[2] << 8;

    memset(&limits, 0, sizeof(limits));
    limits.max_inputs = 2;
    limits.max_outputs = 1;
    limits.max_depth = 8;
    limits.max_elements = 64;
    limits.max_bytes_element = 16;
    lim = buf[3] ? &limits : NULL;

    /* the body in an allocation of its own: views must stay inside */
    len -= 4;
    body = malloc(len ? len : 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, buf + 4, len);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    if (ksv_infer_parse(body, len, header_len, config, lim, &a, &m, &bufs,
                        &err)
        != 0)
    {
        check_refused(config, &err);
        goto done;
    }

    if (verbose) {
        fprintf(stderr, "%s: accepted\n", config->name.data);
    }

    data = calloc(m.ninputs + 1, sizeof(uint8_t *));
    FUZZ_CHECK(data != NULL);

    for (i = 0; i < m.ninputs; i++) {
        data[i] = bufs[i].data;

        if (!bufs[i].owned && data[i] != NULL) {
            FUZZ_CHECK(data[i] >= body
                       && m.inputs[i].byte_size <= len
                       && (size_t) (data[i] - body)
                          <= len - m.inputs[i].byte_size);
        }

        if (lim != NULL) {
            FUZZ_CHECK(ksv_shape_count(m.inputs[i].dims, m.inputs[i].ndims,
                                       UINT64_MAX, &count) == 0);
            FUZZ_CHECK(count <= lim->max_elements);
        }
    }

    if (lim != NULL) {
        FUZZ_CHECK(m.ninputs <= lim->max_inputs);
        FUZZ_CHECK(m.noutputs <= lim->max_outputs);
    }

    check_accepted(config, &m, data);

    free(data);
    ksv_infer_free_bufs(bufs, m.ninputs);

done:

    ksv_arena_free(&arena);
    free(body);
}


int
LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    size_t  i;

    if (len >= 2 && buf[0] == (KSV_PROTO_MAGIC & 0xff)
        && buf[1] == KSV_PROTO_MAGIC >> 8)
    {
        fuzz_reply(buf, len);
        return 0;
    }

    if (len >= 1 && buf[0] == 0x01) {
        for (i = 0; i < NMODELS; i++) {
            fuzz_binary(buf, len, &models[i]);
        }
        return 0;
    }

    for (i = 0; i < NMODELS; i++) {
        fuzz_request(buf, len, &models[i]);
    }

    return 0;
}
