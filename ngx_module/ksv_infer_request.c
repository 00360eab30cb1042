/*
 * ngx_kserve: KServe v2 inference requests, JSON and Triton's binary
 * tensor extension.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ksv_infer_request.h"
#include "ksv_json_write.h"


/*
 * One parse: what the steps below share.  bufs[0, nbufs) are freed if a
 * step fails; bin[0, blen) is the binary data after the JSON, off how
 * much of it the inputs so far took.  Tensor names point into the JSON
 * document until ksv_check_outputs() and ksv_find_inputs() replace them
 * with the configuration's.
 */

typedef struct {
    const ksv_model_config_t  *config;
    const ksv_infer_limits_t  *limits;
    ksv_alloc_t               *alloc;
    ksv_infer_error_t         *err;
    ksv_infer_t               *m;
    ksv_infer_buf_t           *bufs;
    uint32_t                   nbufs;
    int                        json_only;
    const uint8_t             *bin;
    size_t                     blen;
    size_t                     off;
    uint8_t                   *binary;      /* per input: binary data */
    const ksv_io_config_t    **io;          /* per input: its config */
    uint32_t                   shm_cap;     /* room in m->shm */
} ksv_parse_t;


/* Triton's note after an unexpected shape of a batching model's input */
#define KSV_BATCH_NOTE                                                        \
    "NOTE: Setting a non-zero max_batch_size in the model config requires "  \
    "a batch dimension to be prepended to each input shape. If you want to " \
    "specify the full shape including the batch dim in your input dims "     \
    "config, try setting max_batch_size to zero. See the model "             \
    "configuration docs for more info on max_batch_size."


/*
 * jansson's document of one request lives in a bump arena: a first
 * block on the parser's stack (a small request's whole document), then
 * malloc()ed blocks, all dropped at once when the parse is over.
 */

#define KSV_DOC_FIRST  (16 * 1024)
#define KSV_DOC_ALIGN  16             /* malloc()'s own alignment */

typedef struct ksv_doc_block_s  ksv_doc_block_t;

struct ksv_doc_block_s {
    ksv_doc_block_t        *next;
};

typedef struct {
    uint8_t                  *pos;
    uint8_t                  *end;
    ksv_doc_block_t        *blocks;   /* the malloc()ed ones */
    size_t                    next_size;
    json_malloc_t             saved_malloc;
    json_free_t               saved_free;
} ksv_doc_arena_t;


static int ksv_parse_raw(ksv_parse_t *ps, const uint8_t *body, size_t len);
static int ksv_raw_shape(ksv_parse_t *ps, const ksv_io_config_t *io,
    ksv_tensor_t *t, int *wild, uint64_t *count);
static int ksv_raw_bytes(ksv_parse_t *ps, const uint8_t *body, size_t len,
    ksv_tensor_t *t, int wild, uint64_t count);
static int ksv_raw_fixed(ksv_parse_t *ps, const uint8_t *body, size_t len,
    ksv_tensor_t *t, int wild, uint64_t count);
static int ksv_parse_split(ksv_parse_t *ps, const uint8_t *body,
    size_t *len, size_t header_len);
static json_t *ksv_parse_load(ksv_parse_t *ps, const uint8_t *body,
    size_t len);
static int ksv_prescan(const uint8_t *p, size_t len, int max,
    size_t *nbig);
static const uint8_t *ksv_big_token(const uint8_t *begin, const uint8_t *p,
    const uint8_t *end, int *big);
static uint8_t *ksv_quote_big(const uint8_t *p, size_t len, size_t nbig,
    size_t *out);
static int ksv_parse_id(ksv_parse_t *ps, json_t *root);
static int ksv_parse_request_params(ksv_parse_t *ps, json_t *root);
static int ksv_parse_params(ksv_parse_t *ps, json_t *obj, const char *what,
    ksv_param_t **params, uint32_t *nparams);
static int ksv_parse_inputs(ksv_parse_t *ps, json_t *inputs);
static int ksv_read_input(ksv_parse_t *ps, json_t *in, size_t i);
static int ksv_parse_input(ksv_parse_t *ps, json_t *in, size_t i,
    ksv_tensor_t *t, int64_t *bsize);
static int ksv_check_content(ksv_parse_t *ps, json_t *in);
static int ksv_input_elements(ksv_parse_t *ps, const ksv_tensor_t *t,
    uint64_t *count);
static int ksv_take_binary(ksv_parse_t *ps, ksv_tensor_t *t, uint64_t bsize,
    ksv_infer_buf_t *buf);
static int ksv_take_json(ksv_parse_t *ps, json_t *data, ksv_tensor_t *t,
    uint64_t count, ksv_infer_buf_t *buf);
static int ksv_check_shape(ksv_parse_t *ps, const ksv_io_config_t *io,
    const ksv_tensor_t *t);
static int ksv_check_binary(ksv_parse_t *ps, const ksv_tensor_t *t,
    const uint8_t *p, uint64_t size, uint64_t count);
static int ksv_count_data(ksv_parse_t *ps, json_t *v, const ksv_tensor_t *t,
    int depth, uint64_t *count, uint64_t *bytes);
static int ksv_check_leaf(json_t *v, ksv_datatype_t dt);
static void ksv_write_data(json_t *v, ksv_datatype_t dt, uint8_t **p);
static int ksv_parse_outputs(ksv_parse_t *ps, json_t *outputs);
static int ksv_parse_output(ksv_parse_t *ps, json_t *o, size_t i);
static int ksv_check_outputs(ksv_parse_t *ps);
static int ksv_check_inputs(ksv_parse_t *ps);
static int ksv_check_input_count(ksv_parse_t *ps);
static int ksv_find_inputs(ksv_parse_t *ps);
static int ksv_check_batch(ksv_parse_t *ps);
static int ksv_check_input(ksv_parse_t *ps, uint32_t i);
static int ksv_str_same(const ksv_str_t *a, const ksv_str_t *b);
static void ksv_dims_text(char *buf, size_t size, const int64_t *dims,
    uint32_t n);
static int ksv_parse_shm(ksv_parse_t *ps, json_t *params, const char *name,
    uint8_t io, uint32_t index);
static int ksv_shm_uint(json_t *v, uint64_t *value);
static const ksv_shm_ref_t *ksv_input_shm(ksv_parse_t *ps, size_t i);
static int ksv_shm_input_size(ksv_parse_t *ps, ksv_tensor_t *t,
    const ksv_shm_ref_t *ref, uint64_t count);
static int ksv_big_value(json_t *v, uint64_t *value);
static char *ksv_dup(ksv_alloc_t *a, const char *s, size_t len);
static const ksv_io_config_t *ksv_find_io(const ksv_io_config_t *io,
    uint32_t n, const char *name, size_t len, uint32_t *index);
static int ksv_fail(ksv_parse_t *ps, ksv_status_t code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void ksv_doc_begin(ksv_doc_arena_t *ar, uint8_t *first,
    size_t size);
static void ksv_doc_end(ksv_doc_arena_t *ar);
static void *ksv_doc_malloc(size_t size);
static void ksv_doc_free(void *p);


/*
 * The steps in the order a request meets them, which is Triton's order
 * of checks (so a request with several mistakes gets the same first
 * message): a raw body is the one input; else the JSON is split from
 * the binary data and loaded, then "id", "parameters", "inputs" as the
 * request has them (each input's name, datatype, shape and data) and
 * "outputs"; then the model: its outputs, its inputs' count, names and
 * batch size, each input's datatype, shape and bytes.  Each step fills
 * ps->err when it fails.
 */

int
ksv_infer_parse(const void *body, size_t len, size_t header_len,
    const ksv_model_config_t *config, const ksv_infer_limits_t *limits,
    ksv_alloc_t *a, ksv_infer_t *m, ksv_infer_buf_t **bufs,
    ksv_infer_error_t *err)
{
    int               rc;
    json_t           *root;
    ksv_parse_t       ps;
    ksv_doc_arena_t   arena;
    uint8_t           first[KSV_DOC_FIRST]
                          __attribute__((aligned(KSV_DOC_ALIGN)));

    static const ksv_infer_limits_t  no_limits;

    memset(m, 0, sizeof(ksv_infer_t));
    memset(&ps, 0, sizeof(ksv_parse_t));
    *bufs = NULL;

    ps.config = config;
    ps.limits = limits ? limits : &no_limits;
    ps.alloc = a;
    ps.err = err;
    ps.m = m;

    if (header_len == 0) {
        rc = ksv_parse_raw(&ps, body, len);
        *bufs = (rc == 0) ? ps.bufs : NULL;
        return rc;
    }

    if (ksv_parse_split(&ps, body, &len, header_len) != 0) {
        return -1;
    }

    ksv_doc_begin(&arena, first, sizeof(first));

    root = ksv_parse_load(&ps, body, len);

    if (root != NULL) {
        /* at most one shared memory entry per tensor */
        ps.shm_cap = (uint32_t) (
                         json_array_size(json_object_get(root, "inputs"))
                         + json_array_size(json_object_get(root, "outputs")));

        if (ps.shm_cap > 2 * KSV_MAX_TENSORS) {
            ps.shm_cap = 2 * KSV_MAX_TENSORS;
        }
    }

    rc = (root != NULL
          && ksv_parse_id(&ps, root) == 0
          && ksv_parse_request_params(&ps, root) == 0
          && ksv_parse_inputs(&ps, json_object_get(root, "inputs")) == 0
          && ksv_parse_outputs(&ps, json_object_get(root, "outputs")) == 0
          && ksv_check_outputs(&ps) == 0
          && ksv_check_inputs(&ps) == 0)
         ? 0 : -1;

    if (rc == 0) {
        *bufs = ps.bufs;

    } else {
        ksv_infer_free_bufs(ps.bufs, ps.nbufs);
        m->ninputs = 0;
    }

    /* no json_decref(root): the document goes with its arena */

    ksv_doc_end(&arena);

    return rc;
}


/*
 * Inference-Header-Content-Length: 0, Triton's raw request: the body is
 * the data of the model's only input, its shape the configuration's
 * (batch 1 first when batching) with one -1 dimension deduced from the
 * size; a BYTES input is one element, the body.
 */

static int
ksv_parse_raw(ksv_parse_t *ps, const uint8_t *body, size_t len)
{
    int                        wild;
    uint64_t                   count;
    ksv_tensor_t              *t;
    ksv_infer_t               *m;
    const ksv_model_config_t  *c;

    m = ps->m;
    c = ps->config;

    if (c->ninputs != 1) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "Raw request must only have 1 input (found 1) to be "
                        "deduced but got %u inputs in '%.*s' model "
                        "configuration", c->ninputs,
                        (int) c->name.len, c->name.data);
    }

    m->inputs = ps->alloc->alloc(ps->alloc->ctx, sizeof(ksv_tensor_t));
    ps->bufs = ps->alloc->alloc(ps->alloc->ctx, sizeof(ksv_infer_buf_t));

    if (m->inputs == NULL || ps->bufs == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    memset(m->inputs, 0, sizeof(ksv_tensor_t));
    memset(ps->bufs, 0, sizeof(ksv_infer_buf_t));

    t = m->inputs;
    t->name = c->inputs[0].name;
    t->datatype = c->inputs[0].datatype;

    if (ksv_raw_shape(ps, &c->inputs[0], t, &wild, &count) != 0) {
        return -1;
    }

    if (t->datatype == KSV_TYPE_BYTES) {
        if (ksv_raw_bytes(ps, body, len, t, wild, count) != 0) {
            return -1;
        }

    } else if (ksv_raw_fixed(ps, body, len, t, wild, count) != 0) {
        return -1;
    }

    m->ninputs = 1;
    m->flags |= KSV_INFER_ALL_BINARY;

    return 0;
}


/*
 * The raw input's shape from the configuration: *wild is the index of
 * its one -1 dimension (set to 1 for now) or -1, *count the product of
 * the others.
 */

static int
ksv_raw_shape(ksv_parse_t *ps, const ksv_io_config_t *io, ksv_tensor_t *t,
    int *wild, uint64_t *count)
{
    uint32_t  i, nd;
    uint64_t  limit;

    nd = 0;
    *wild = -1;
    *count = 1;
    limit = ps->limits->max_elements ? ps->limits->max_elements
                                     : UINT64_MAX;

    if (ps->config->max_batch_size > 0) {
        t->dims[nd++] = 1;
    }

    if (io->ndims + nd > KSV_MAX_DIMS) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "raw input '%.*s' has too many dimensions",
                        (int) io->name.len, io->name.data);
    }

    for (i = 0; i < io->ndims; i++) {
        if (io->dims[i] < 0) {
            if (*wild != -1) {
                return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                                "The shape of the raw input '%.*s' can not "
                                "be deduced because there are more than "
                                "one variable-sized dimension",
                                (int) io->name.len, io->name.data);
            }

            *wild = (int) nd;
            t->dims[nd++] = 1;
            continue;
        }

        if (io->dims[i] && *count > limit / (uint64_t) io->dims[i]) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "raw input '%.*s': too many elements",
                            (int) io->name.len, io->name.data);
        }

        *count *= (uint64_t) io->dims[i];
        t->dims[nd++] = io->dims[i];
    }

    t->ndims = (uint8_t) nd;

    return 0;
}


/*
 * A raw BYTES input: the body is its one element, copied after a length;
 * the model's shape must be that one element, no -1 (Triton's rule).
 */

static int
ksv_raw_bytes(ksv_parse_t *ps, const uint8_t *body, size_t len,
    ksv_tensor_t *t, int wild, uint64_t count)
{
    uint8_t  *p;

    if (wild != -1 || count != 1) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "For BYTE datatype raw input '%.*s', the model must "
                        "have input shape [1]",
                        (int) t->name.len, t->name.data);
    }

    if (len > UINT32_MAX
        || (ps->limits->max_bytes_element
            && len > ps->limits->max_bytes_element))
    {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "raw input '%.*s': BYTES element of %zu bytes "
                        "is longer than the limit",
                        (int) t->name.len, t->name.data, len);
    }

    /* the one copy of a raw request: the element needs its length */

    p = malloc(4 + len);
    if (p == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    p[0] = (uint8_t) len;
    p[1] = (uint8_t) (len >> 8);
    p[2] = (uint8_t) (len >> 16);
    p[3] = (uint8_t) (len >> 24);
    memcpy(p + 4, body, len);

    ps->bufs[0].data = p;
    ps->bufs[0].owned = 1;
    t->byte_size = 4 + len;

    return 0;
}


/* A raw fixed-size input: the body as it is, the -1 dimension its size. */

static int
ksv_raw_fixed(ksv_parse_t *ps, const uint8_t *body, size_t len,
    ksv_tensor_t *t, int wild, uint64_t count)
{
    size_t    es;
    uint64_t  per, limit;

    es = ksv_datatype_size(t->datatype);
    limit = ps->limits->max_elements ? ps->limits->max_elements
                                     : UINT64_MAX;

    if (es == 0 || count > UINT64_MAX / es) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "raw input '%.*s': too many elements",
                        (int) t->name.len, t->name.data);
    }

    per = count * es;

    if (wild != -1 && per != 0 && len % per == 0) {
        t->dims[wild] = (int64_t) (len / per);

        if (len / per > limit) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "raw input '%.*s': more than %llu elements",
                            (int) t->name.len, t->name.data,
                            (unsigned long long) limit);
        }

    } else if (wild != -1 && per == 0) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "raw input '%.*s': %zu bytes do not make a "
                        "whole %s tensor of its shape",
                        (int) t->name.len, t->name.data, len,
                        ksv_datatype_name(t->datatype));

    } else if (per != len) {
        /* Triton deduces the -1 dimension by division, then compares */
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input byte size mismatch for input '%.*s' for "
                        "model '%.*s'. Expected %llu, got %zu",
                        (int) t->name.len, t->name.data,
                        (int) ps->config->name.len, ps->config->name.data,
                        (unsigned long long) (wild != -1 ? len / per * per
                                                         : per), len);
    }

    ps->bufs[0].data = len ? (uint8_t *) body : NULL;
    ps->bufs[0].owned = 0;
    t->byte_size = len;

    return 0;
}


/* The JSON, then the binary data of the inputs, in their order. */

static int
ksv_parse_split(ksv_parse_t *ps, const uint8_t *body, size_t *len,
    size_t header_len)
{
    ps->json_only = (header_len == KSV_INFER_JSON_ONLY);

    if (!ps->json_only) {
        if (header_len > *len) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "inference header size should be in range (0, "
                            "%zu), got: %zu", *len, header_len);
        }

        ps->blen = *len - header_len;
        *len = header_len;
    }

    ps->bin = body + *len;

    return 0;
}


/*
 * The JSON document, into the arena of the parse: nesting bounded and
 * big UINT64 values kept before jansson sees the bytes.
 */

static json_t *
ksv_parse_load(ksv_parse_t *ps, const uint8_t *body, size_t len)
{
    int            depth;
    size_t         nbig, qlen;
    json_t        *root;
    uint8_t       *quoted;
    json_error_t   jerr;

    depth = KSV_JSON_MAX_DEPTH;

    if (ps->limits->max_depth && ps->limits->max_depth < KSV_JSON_MAX_DEPTH) {
        depth = (int) ps->limits->max_depth;
    }

    if (len == 0) {
        ksv_fail(ps, KSV_ERR_INVALID_ARG,
                 "failed to parse the request JSON buffer: "
                 "the body is empty");
        return NULL;
    }

    if (!ksv_prescan(body, len, depth, &nbig)) {
        ksv_fail(ps, KSV_ERR_INVALID_ARG,
                 "JSON nesting depth exceeds maximum allowed limit (%d)",
                 depth);
        return NULL;
    }

    if (nbig == 0) {
        root = json_loadb((const char *) body, len,
                          JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);

    } else {
        /* UINT64 values past INT64_MAX: see ksv_quote_big() */

        quoted = ksv_quote_big(body, len, nbig, &qlen);
        if (quoted == NULL) {
            ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
            return NULL;
        }

        root = json_loadb((char *) quoted, qlen,
                          JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        free(quoted);
    }

    if (root == NULL) {
        ksv_fail(ps, KSV_ERR_INVALID_ARG,
                 "failed to parse the request JSON buffer: %s "
                 "at line %d column %d", jerr.text, jerr.line, jerr.column);
        return NULL;
    }

    if (!json_is_object(root)) {
        ksv_fail(ps, KSV_ERR_INVALID_ARG,
                 "the request JSON must be an object");
        return NULL;
    }

    return root;
}


/*
 * One linear pass over the raw bytes before jansson sees them: nesting is
 * limited to KSV_JSON_MAX_DEPTH (jansson allows 2048), and integers that
 * only UINT64 can hold are counted (jansson stops at INT64_MAX).
 */

static int
ksv_prescan(const uint8_t *p, size_t len, int max, size_t *nbig)
{
    int             depth, big;
    const uint8_t  *begin, *end;

    depth = 0;
    *nbig = 0;
    begin = p;

    for (end = p + len; p < end; p++) {

        switch (*p) {

        case '"':
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end) {
                    p++;
                }
            }

            break;

        case '[':
        case '{':
            if (++depth > max) {
                return 0;
            }

            break;

        case ']':
        case '}':
            depth--;
            break;

        default:
            if (*p >= '0' && *p <= '9') {
                p = ksv_big_token(begin, p, end, &big) - 1;
                *nbig += big;
            }
        }
    }

    return 1;
}


/*
 * Skips the digits at p; *big tells whether they are a whole integer
 * (not negative, not part of a fraction or an exponent) in
 * (INT64_MAX, UINT64_MAX].  Returns
 * the end of the digits.
 */

static const uint8_t *
ksv_big_token(const uint8_t *begin, const uint8_t *p, const uint8_t *end,
    int *big)
{
    size_t          n;
    const uint8_t  *start;

    for (start = p; p < end && *p >= '0' && *p <= '9'; p++) {
        /* void */
    }

    n = p - start;

    *big = ((n == 19 && memcmp(start, "9223372036854775807", 19) > 0)
            || (n == 20 && memcmp(start, "18446744073709551615", 20) <= 0))
           && (start == begin || strchr("-+.eE", start[-1]) == NULL)
           && (p == end || (*p != '.' && *p != 'e' && *p != 'E'));

    return p;
}


#define KSV_BIG_MARK      "\\u0000u64:"
#define KSV_BIG_MARK_LEN  (sizeof(KSV_BIG_MARK) - 1)

/*
 * Rewrites each such integer as the string "\u0000u64:<digits>", which
 * jansson keeps and ksv_big_value() turns back into a number where a
 * UINT64 is expected (and nowhere else, so it is an error elsewhere).
 */

static uint8_t *
ksv_quote_big(const uint8_t *p, size_t len, size_t nbig, size_t *out)
{
    int             big;
    uint8_t        *buf, *q;
    const uint8_t  *begin, *end, *start, *copied;

    buf = malloc(len + nbig * (KSV_BIG_MARK_LEN + 2));
    if (buf == NULL) {
        return NULL;
    }

    q = buf;
    begin = p;
    copied = p;

    for (end = p + len; p < end; p++) {

        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end) {
                    p++;
                }
            }

            continue;
        }

        if (*p < '0' || *p > '9') {
            continue;
        }

        start = p;
        p = ksv_big_token(begin, p, end, &big) - 1;

        if (big) {
            memcpy(q, copied, start - copied);
            q += start - copied;
            *q++ = '"';
            memcpy(q, KSV_BIG_MARK, KSV_BIG_MARK_LEN);
            q += KSV_BIG_MARK_LEN;
            memcpy(q, start, p + 1 - start);
            q += p + 1 - start;
            *q++ = '"';
            copied = p + 1;
        }
    }

    memcpy(q, copied, end - copied);
    q += end - copied;

    *out = q - buf;

    return buf;
}


static int
ksv_parse_id(ksv_parse_t *ps, json_t *root)
{
    json_t       *v;
    ksv_infer_t  *m;

    v = json_object_get(root, "id");

    if (v == NULL) {
        return 0;
    }

    if (!json_is_string(v)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "the request 'id' must be a string");
    }

    if (json_string_length(v) > KSV_MAX_STRING) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "the request 'id' is %zu bytes, longer than the %d "
                        "the gateway carries", json_string_length(v),
                        KSV_MAX_STRING);
    }

    m = ps->m;
    m->request_id.len = json_string_length(v);
    m->request_id.data = ksv_dup(ps->alloc, json_string_value(v),
                                 m->request_id.len);
    if (m->request_id.data == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    return 0;
}


/* The request's "parameters"; binary_data_output: true makes every
 * output binary unless it says otherwise. */

static int
ksv_parse_request_params(ksv_parse_t *ps, json_t *root)
{
    json_t       *v;
    uint32_t      i;
    ksv_infer_t  *m;

    v = json_object_get(root, "parameters");

    if (v == NULL) {
        return 0;
    }

    m = ps->m;

    if (ksv_parse_params(ps, v, "request", &m->params, &m->nparams) != 0) {
        return -1;
    }

    for (i = 0; i < m->nparams; i++) {
        if (ksv_str_eq(m->params[i].key, "binary_data_output")
            && m->params[i].type == KSV_PARAM_BOOL
            && m->params[i].i)
        {
            m->flags |= KSV_INFER_ALL_BINARY;
        }
    }

    return 0;
}


static int
ksv_parse_params(ksv_parse_t *ps, json_t *obj, const char *what,
    ksv_param_t **params, uint32_t *nparams)
{
    size_t        n;
    json_t       *v;
    uint64_t      big;
    const char   *key;
    ksv_param_t  *p;

    if (!json_is_object(obj)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "%s 'parameters' must be an object", what);
    }

    n = json_object_size(obj);

    if (n > KSV_MAX_PARAMS) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "too many %s parameters (%zu, at most %d)",
                        what, n, KSV_MAX_PARAMS);
    }

    *nparams = 0;
    *params = ps->alloc->alloc(ps->alloc->ctx,
                               (n ? n : 1) * sizeof(ksv_param_t));
    if (*params == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    json_object_foreach(obj, key, v) {
        p = &(*params)[(*nparams)++];
        memset(p, 0, sizeof(ksv_param_t));

        p->key.len = (uint32_t) strlen(key);
        p->key.data = ksv_dup(ps->alloc, key, p->key.len);

        if (p->key.data == NULL) {
            return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
        }

        if (p->key.len > KSV_MAX_STRING) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "%s parameter name too long", what);
        }

        switch (json_typeof(v)) {

        case JSON_TRUE:
        case JSON_FALSE:
            p->type = KSV_PARAM_BOOL;
            p->i = json_is_true(v);
            break;

        case JSON_INTEGER:
            p->type = KSV_PARAM_INT;
            p->i = json_integer_value(v);
            break;

        case JSON_REAL:
            p->type = KSV_PARAM_DOUBLE;
            p->d = json_real_value(v);
            break;

        case JSON_STRING:
            if (ksv_big_value(v, &big)) {
                return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                                "%s parameter '%s' is out of range",
                                what, key);
            }

            p->type = KSV_PARAM_STRING;
            p->s.len = (uint32_t) json_string_length(v);

            if (json_string_length(v) > KSV_MAX_STRING) {
                return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                                "%s parameter '%s' is too long", what, key);
            }

            p->s.data = ksv_dup(ps->alloc, json_string_value(v), p->s.len);
            if (p->s.data == NULL) {
                return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
            }

            break;

        default:
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "%s parameter '%s' must be a bool, integer, "
                            "double or string", what, key);
        }
    }

    return 0;
}


/*
 * "inputs", read as the request has them (Triton's HTTP front end): each
 * input's name, datatype and shape, then its data, binary or JSON,
 * against that shape.  The model is looked at afterwards, in
 * ksv_check_inputs().
 */

static int
ksv_parse_inputs(ksv_parse_t *ps, json_t *inputs)
{
    size_t                     i, n;
    uint32_t                   maxn;
    ksv_alloc_t               *a;
    ksv_infer_t               *m;
    const ksv_model_config_t  *c;

    m = ps->m;
    a = ps->alloc;
    c = ps->config;

    if (!json_is_array(inputs)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "the request must have an 'inputs' array");
    }

    n = json_array_size(inputs);
    maxn = KSV_MAX_TENSORS;

    if (ps->limits->max_inputs && ps->limits->max_inputs < maxn) {
        maxn = ps->limits->max_inputs;
    }

    if (n > maxn) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "too many inputs (%zu, at most %u)", n, maxn);
    }

    m->inputs = a->alloc(a->ctx, (n ? n : 1) * sizeof(ksv_tensor_t));
    ps->bufs = a->alloc(a->ctx, (n ? n : 1) * sizeof(ksv_infer_buf_t));
    ps->binary = a->alloc(a->ctx, n ? n : 1);

    if (m->inputs == NULL || ps->bufs == NULL || ps->binary == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    memset(m->inputs, 0, (n ? n : 1) * sizeof(ksv_tensor_t));
    memset(ps->bufs, 0, (n ? n : 1) * sizeof(ksv_infer_buf_t));
    memset(ps->binary, 0, n ? n : 1);

    ps->nbufs = (uint32_t) n;

    for (i = 0; i < n; i++) {
        if (ksv_read_input(ps, json_array_get(inputs, i), i) != 0) {
            return -1;
        }
    }

    m->ninputs = (uint32_t) n;

    if (ps->off != ps->blen) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "unexpected additional input data for model '%.*s'",
                        (int) c->name.len, c->name.data);
    }

    return 0;
}


/*
 * Input i: its name (the request's spelling until ksv_check_inputs()
 * finds it in the model), datatype and shape, then its data.
 */

static int
ksv_read_input(ksv_parse_t *ps, json_t *in, size_t i)
{
    size_t                k;
    int64_t               bsize;
    uint64_t              count;
    ksv_tensor_t         *t;
    const ksv_shm_ref_t  *ref;

    t = &ps->m->inputs[i];

    if (ksv_parse_input(ps, in, i, t, &bsize) != 0) {
        return -1;
    }

    for (k = 0; k < i; k++) {
        if (ksv_str_same(&ps->m->inputs[k].name, &t->name)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s' already exists in request",
                            (int) t->name.len, t->name.data);
        }
    }

    if (ksv_input_elements(ps, t, &count) != 0) {
        return -1;
    }

    ref = ksv_input_shm(ps, i);

    if (ref != NULL) {
        return ksv_shm_input_size(ps, t, ref, count);
    }

    if (bsize >= 0) {
        ps->binary[i] = 1;
        return ksv_take_binary(ps, t, (uint64_t) bsize, &ps->bufs[i]);
    }

    return ksv_take_json(ps, json_object_get(in, "data"), t, count,
                         &ps->bufs[i]);
}


/* An input's "name", "datatype", "parameters" and "shape". */

static int
ksv_parse_input(ksv_parse_t *ps, json_t *in, size_t i, ksv_tensor_t *t,
    int64_t *bsize)
{
    int              nlen;
    json_t          *v, *d;
    size_t           k, n;
    const char      *name, *dtname;
    json_int_t       dim;
    ksv_datatype_t   dt;

    *bsize = -1;

    v = json_is_object(in) ? json_object_get(in, "name") : NULL;

    if (!json_is_string(v)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input %zu must be an object with a string 'name'", i);
    }

    if (ksv_check_content(ps, in) != 0) {
        return -1;
    }

    name = json_string_value(v);
    t->name.data = (char *) name;
    t->name.len = (uint32_t) json_string_length(v);
    nlen = (int) t->name.len;

    /* "datatype": the request's, compared with the model's later */

    v = json_object_get(in, "datatype");

    if (!json_is_string(v)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%.*s' must have a string 'datatype'",
                        nlen, name);
    }

    dtname = json_string_value(v);
    dt = ksv_datatype_from_name(dtname, json_string_length(v));

    if (dt == KSV_TYPE_INVALID) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "invalid datatype '%s' for input '%.*s'",
                        dtname, nlen, name);
    }

    t->datatype = (uint8_t) dt;

    /* "parameters": only binary_data_size matters (-1: JSON "data") */

    v = json_object_get(in, "parameters");

    if (v != NULL) {
        if (!json_is_object(v)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s' 'parameters' must be an object",
                            nlen, name);
        }

        d = json_object_get(v, "binary_data_size");

        if (d != NULL) {
            if (!json_is_integer(d) || json_integer_value(d) < 0) {
                return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                                "input '%.*s': 'binary_data_size' must be a "
                                "non-negative integer", nlen, name);
            }

            *bsize = json_integer_value(d);
        }

        if (json_object_get(v, "shared_memory_region") != NULL
            && ksv_parse_shm(ps, v, name, KSV_SHM_INPUT, (uint32_t) i) != 0)
        {
            return -1;
        }
    }

    /* "shape" */

    v = json_object_get(in, "shape");

    if (!json_is_array(v)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%.*s' must have a 'shape' array", nlen, name);
    }

    n = json_array_size(v);

    if (n > KSV_MAX_DIMS) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%.*s' has %zu dimensions, at most %d are "
                        "supported", nlen, name, n, KSV_MAX_DIMS);
    }

    for (k = 0; k < n; k++) {
        d = json_array_get(v, k);

        if (!json_is_integer(d) || (dim = json_integer_value(d)) < 0) {
            /* Triton's words (TritonJson's), for input 'name' */
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "Unable to parse 'shape': attempt to access JSON "
                            "non-unsigned-integer as unsigned-integer "
                            "(input '%.*s')", nlen, name);
        }

        t->dims[k] = dim;
    }

    t->ndims = (uint8_t) n;

    return 0;
}


/* Exactly one of "data", binary_data_size and shared_memory_region. */

static int
ksv_check_content(ksv_parse_t *ps, json_t *in)
{
    int      data, binary, shm;
    json_t  *p;

    p = json_object_get(in, "parameters");

    data = (json_object_get(in, "data") != NULL);
    binary = json_is_object(p)
             && json_object_get(p, "binary_data_size") != NULL;
    shm = json_is_object(p)
          && json_object_get(p, "shared_memory_region") != NULL;

    if (data + binary + shm == 1) {
        return 0;
    }

    return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                    "Input must set only one of the following fields: "
                    "'data', 'binary_data_size' in 'parameters', "
                    "'shared_memory_region' in 'parameters'. But%s%s%s%s",
                    (data + binary + shm) ? " set" : " no field is set",
                    data ? " 'data'" : "", binary ? " 'binary_data_size'" : "",
                    shm ? " 'shared_memory_region'" : "");
}


/*
 * The shape alone is bounded first, as Triton does: its element count
 * and byte size must fit an int64; then kserve_max_elements.
 */

static int
ksv_input_elements(ksv_parse_t *ps, const ksv_tensor_t *t, uint64_t *count)
{
    char      dims[KSV_MAX_DIMS * 21 + 3];
    size_t    es;
    uint64_t  limit;

    if (ksv_shape_count(t->dims, t->ndims, INT64_MAX, count) != 0) {
        ksv_dims_text(dims, sizeof(dims), t->dims, t->ndims);

        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "invalid shape for input '%.*s': shape %s causes "
                        "total element count to exceed maximum size of %lld",
                        (int) t->name.len, t->name.data, dims,
                        (long long) INT64_MAX);
    }

    es = ksv_datatype_size(t->datatype);

    if (es > 1 && *count > (uint64_t) INT64_MAX / es) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "byte size overflow for input '%.*s': element count "
                        "(%llu) * data type size (%zu) exceeds maximum "
                        "allowed size (%lld)", (int) t->name.len,
                        t->name.data, (unsigned long long) *count, es,
                        (long long) INT64_MAX);
    }

    limit = ps->limits->max_elements;

    if (limit && *count > limit) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%.*s': its 'shape' has more than %llu "
                        "elements, the limit", (int) t->name.len,
                        t->name.data, (unsigned long long) limit);
    }

    return 0;
}


/*
 * An input with binary_data_size: the next bsize bytes after the JSON;
 * what they hold is checked against the model's shape and datatype in
 * ksv_check_input().
 */

static int
ksv_take_binary(ksv_parse_t *ps, ksv_tensor_t *t, uint64_t bsize,
    ksv_infer_buf_t *buf)
{
    const ksv_model_config_t  *c;

    c = ps->config;

    if (ps->json_only && bsize != 0) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "must specify valid 'Infer-Header-Content-Length' "
                        "in request header and 'binary_data_size' when "
                        "passing inputs in binary data format");
    }

    if (bsize > ps->blen - ps->off) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "unexpected size for input '%.*s', expecting %llu "
                        "additional bytes for model '%.*s'",
                        (int) t->name.len, t->name.data,
                        (unsigned long long) (bsize - (ps->blen - ps->off)),
                        (int) c->name.len, c->name.data);
    }

    t->byte_size = bsize;
    buf->data = bsize ? (uint8_t *) ps->bin + ps->off : NULL;
    buf->owned = 0;
    ps->off += (size_t) bsize;

    return 0;
}


/* An input's JSON "data": checked, counted, then written to a buffer. */

static int
ksv_take_json(ksv_parse_t *ps, json_t *data, ksv_tensor_t *t,
    uint64_t count, ksv_infer_buf_t *buf)
{
    uint8_t   *p;
    uint64_t   n, bytes;

    if (t->datatype == KSV_TYPE_FP16 || t->datatype == KSV_TYPE_BF16) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "receiving %s data via JSON is not supported. Please "
                        "use the binary data format for input %.*s",
                        ksv_datatype_name(t->datatype),
                        (int) t->name.len, t->name.data);
    }

    if (data == NULL) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%.*s' has no 'data'",
                        (int) t->name.len, t->name.data);
    }

    n = 0;
    bytes = 0;

    if (ksv_count_data(ps, data, t, 0, &n, &bytes) != 0) {
        return -1;
    }

    /* Triton's words exactly (its qa tests compare the whole body) */

    if (n < count) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "Failed to parse 'data' field: shape does not match "
                        "true shape");
    }

    if (n > count) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "Unable to parse 'data': Shape does not match true "
                        "shape of 'data' field");
    }

    if (t->datatype != KSV_TYPE_BYTES) {
        bytes = n * ksv_datatype_size(t->datatype);
    }

    t->byte_size = bytes;

    if (bytes == 0) {
        return 0;
    }

    buf->data = malloc(bytes);
    if (buf->data == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    buf->owned = 1;

    p = buf->data;
    ksv_write_data(data, t->datatype, &p);

    return 0;
}


/*
 * The shape against the configuration's, the batch dimension first
 * when batching (ksv_check_batch() checked it).
 */

static int
ksv_check_shape(ksv_parse_t *ps, const ksv_io_config_t *io,
    const ksv_tensor_t *t)
{
    int                        ok;
    uint32_t                   i, first;
    ksv_writer_t               w;
    const ksv_model_config_t  *c;

    c = ps->config;
    first = c->max_batch_size > 0 ? 1 : 0;

    ok = (t->ndims == io->ndims + first);

    for (i = 0; ok && i < io->ndims; i++) {
        if (io->dims[i] != -1 && io->dims[i] != t->dims[i + first]) {
            ok = 0;
        }
    }

    if (!ok) {
        ksv_writer_init(&w);
        ksv_json_lit(&w, "unexpected shape for input '");
        ksv_put_bytes(&w, t->name.data, t->name.len);
        ksv_json_lit(&w, "' for model '");
        ksv_put_bytes(&w, c->name.data, c->name.len);
        ksv_json_lit(&w, "'. Expected [");

        if (first) {
            ksv_json_lit(&w, "-1");
        }

        for (i = 0; i < io->ndims; i++) {
            if (i || first) {
                ksv_put_u8(&w, ',');
            }

            ksv_json_i64(&w, io->dims[i]);
        }

        ksv_json_lit(&w, "], got ");
        ksv_json_dims(&w, t->dims, t->ndims);
        ksv_json_lit(&w, ". ");

        if (first) {
            ksv_json_lit(&w, KSV_BATCH_NOTE);
        }

        ksv_fail(ps, KSV_ERR_INVALID_ARG, "%.*s",
                 w.failed ? 0 : (int) w.len, (char *) w.buf);
        ksv_writer_free(&w);

        return -1;
    }

    return 0;
}


/*
 * An input's binary data against its shape: fixed-size types by their
 * byte count; BYTES element by element (u32 LE length + bytes), each
 * read bounded by size, the walk by the shape's count.
 */

static int
ksv_check_binary(ksv_parse_t *ps, const ksv_tensor_t *t, const uint8_t *p,
    uint64_t size, uint64_t count)
{
    int                        nlen, mlen;
    size_t                     es;
    uint32_t                   len;
    uint64_t                   n, max;
    const uint8_t             *end;
    const ksv_model_config_t  *c;

    c = ps->config;
    nlen = (int) t->name.len;
    mlen = (int) c->name.len;

    if (t->datatype != KSV_TYPE_BYTES) {
        es = ksv_datatype_size(t->datatype);

        if (count * es != size) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input byte size mismatch for input '%.*s' for "
                            "model '%.*s'. Expected %llu, got %llu",
                            nlen, t->name.data, mlen, c->name.data,
                            (unsigned long long) (count * es),
                            (unsigned long long) size);
        }

        return 0;
    }

    max = ps->limits->max_bytes_element;
    end = p + size;

    for (n = 0; p < end; n++) {
        if (n == count) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "unexpected number of string elements %llu for "
                            "inference input '%.*s' for model '%.*s', "
                            "expecting %llu", (unsigned long long) n + 1,
                            nlen, t->name.data, mlen, c->name.data,
                            (unsigned long long) count);
        }

        if (end - p < 4) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "incomplete string length indicator for "
                            "inference input '%.*s' for model '%.*s', "
                            "expecting 4 bytes but only %zu bytes "
                            "available. Please make sure the string length "
                            "indicator is in one buffer.",
                            nlen, t->name.data, mlen, c->name.data,
                            (size_t) (end - p));
        }

        len = (uint32_t) p[0] | (uint32_t) p[1] << 8
              | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
        p += 4;

        if ((uint64_t) len > (uint64_t) (end - p)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s': BYTES element %llu of %u bytes "
                            "is beyond its binary_data_size",
                            nlen, t->name.data, (unsigned long long) n, len);
        }

        if (max && len > max) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s': BYTES element %llu is %u "
                            "bytes, longer than the limit",
                            nlen, t->name.data, (unsigned long long) n, len);
        }

        p += len;
    }

    if (n != count) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "expected %llu string elements for inference input "
                        "'%.*s' for model '%.*s', got %llu",
                        (unsigned long long) count, nlen, t->name.data,
                        mlen, c->name.data, (unsigned long long) n);
    }

    return 0;
}


/* Counts the leaves of (possibly nested) "data" and checks their type. */

static int
ksv_count_data(ksv_parse_t *ps, json_t *v, const ksv_tensor_t *t, int depth,
    uint64_t *count, uint64_t *bytes)
{
    size_t  i, n;

    if (json_is_array(v)) {

        if (depth >= KSV_JSON_MAX_DEPTH) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "JSON nesting depth exceeds maximum allowed "
                            "limit (%d)", KSV_JSON_MAX_DEPTH);
        }

        n = json_array_size(v);

        for (i = 0; i < n; i++) {
            if (ksv_count_data(ps, json_array_get(v, i), t, depth + 1,
                               count, bytes)
                != 0)
            {
                return -1;
            }
        }

        return 0;
    }

    if (!ksv_check_leaf(v, t->datatype)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "unable to parse 'data' of input '%.*s': element "
                        "%llu is not a valid %s value",
                        (int) t->name.len, t->name.data,
                        (unsigned long long) *count,
                        ksv_datatype_name(t->datatype));
    }

    if (t->datatype == KSV_TYPE_BYTES) {
        if (json_string_length(v) > UINT32_MAX
            || (ps->limits->max_bytes_element
                && json_string_length(v) > ps->limits->max_bytes_element))
        {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s': BYTES element %llu is %zu "
                            "bytes, longer than the limit",
                            (int) t->name.len, t->name.data,
                            (unsigned long long) *count,
                            json_string_length(v));
        }

        *bytes += 4 + json_string_length(v);
    }

    (*count)++;

    return 0;
}


static int
ksv_check_leaf(json_t *v, ksv_datatype_t dt)
{
    uint64_t    u;
    json_int_t  i;

    switch (dt) {

    case KSV_TYPE_BOOL:
        return json_is_boolean(v);

    case KSV_TYPE_UINT64:
        if (ksv_big_value(v, &u)) {
            return 1;
        }

        break;

    case KSV_TYPE_FP32:
    case KSV_TYPE_FP64:
        return json_is_number(v);

    case KSV_TYPE_BYTES:
        return json_is_string(v);

    default:
        break;
    }

    if (!json_is_integer(v)) {
        return 0;
    }

    i = json_integer_value(v);

    switch (dt) {

    case KSV_TYPE_UINT8:
        return i >= 0 && i <= UINT8_MAX;

    case KSV_TYPE_UINT16:
        return i >= 0 && i <= UINT16_MAX;

    case KSV_TYPE_UINT32:
        return i >= 0 && i <= (json_int_t) UINT32_MAX;

    case KSV_TYPE_UINT64:
        return i >= 0;          /* beyond INT64_MAX: ksv_big_value() */

    case KSV_TYPE_INT8:
        return i >= INT8_MIN && i <= INT8_MAX;

    case KSV_TYPE_INT16:
        return i >= INT16_MIN && i <= INT16_MAX;

    case KSV_TYPE_INT32:
        return i >= INT32_MIN && i <= INT32_MAX;

    case KSV_TYPE_INT64:
        return 1;

    default:
        return 0;
    }
}


static void
ksv_put_le(uint8_t **p, uint64_t v, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        (*p)[i] = (uint8_t) (v >> (8 * i));
    }

    *p += n;
}


/* Writes the leaves that ksv_count_data() checked. */

static void
ksv_write_data(json_t *v, ksv_datatype_t dt, uint8_t **p)
{
    float     f;
    double    d;
    size_t    i, n;
    uint32_t  u32;
    uint64_t  u64;

    if (json_is_array(v)) {
        n = json_array_size(v);

        for (i = 0; i < n; i++) {
            ksv_write_data(json_array_get(v, i), dt, p);
        }

        return;
    }

    switch (dt) {

    case KSV_TYPE_BOOL:
        *(*p)++ = json_is_true(v) ? 1 : 0;
        break;

    case KSV_TYPE_FP32:
        f = (float) json_number_value(v);
        memcpy(&u32, &f, 4);
        ksv_put_le(p, u32, 4);
        break;

    case KSV_TYPE_FP64:
        d = json_number_value(v);
        memcpy(&u64, &d, 8);
        ksv_put_le(p, u64, 8);
        break;

    case KSV_TYPE_BYTES:
        n = json_string_length(v);
        ksv_put_le(p, n, 4);
        memcpy(*p, json_string_value(v), n);
        *p += n;
        break;

    default:
        if (dt == KSV_TYPE_UINT64 && ksv_big_value(v, &u64)) {
            ksv_put_le(p, u64, 8);
            break;
        }

        /* two's complement: the low bytes are the narrow value */
        ksv_put_le(p, (uint64_t) json_integer_value(v),
                   ksv_datatype_size(dt));
    }
}


/*
 * "outputs": the outputs asked for and how each is answered (binary_data,
 * else the request's binary_data_output); none means every output, as
 * the instance answers.
 */

static int
ksv_parse_outputs(ksv_parse_t *ps, json_t *outputs)
{
    size_t        i, n;
    uint32_t      maxn;
    ksv_infer_t  *m;

    if (outputs == NULL) {
        return 0;
    }

    m = ps->m;

    if (!json_is_array(outputs)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "'outputs' must be an array");
    }

    n = json_array_size(outputs);
    maxn = KSV_MAX_TENSORS;

    if (ps->limits->max_outputs && ps->limits->max_outputs < maxn) {
        maxn = ps->limits->max_outputs;
    }

    if (n > maxn) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "too many outputs (%zu, at most %u)", n, maxn);
    }

    m->outputs = ps->alloc->alloc(ps->alloc->ctx,
                                  (n ? n : 1) * sizeof(ksv_output_req_t));
    if (m->outputs == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    for (i = 0; i < n; i++) {
        if (ksv_parse_output(ps, json_array_get(outputs, i), i) != 0) {
            return -1;
        }
    }

    m->noutputs = (uint32_t) n;

    return 0;
}


/*
 * Output i of "outputs": its name and how it is answered.  A listed
 * output is JSON unless its own binary_data says otherwise, whatever
 * binary_data_output says (that one is for the outputs not listed), as
 * Triton's HTTP front end does.
 */

static int
ksv_parse_output(ksv_parse_t *ps, json_t *o, size_t i)
{
    json_t            *v, *b;
    size_t             k;
    const char        *name;
    ksv_output_req_t  *out;

    v = json_is_object(o) ? json_object_get(o, "name") : NULL;

    if (!json_is_string(v)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "output %zu must be an object with a string "
                        "'name'", i);
    }

    name = json_string_value(v);

    /* the request's spelling until ksv_check_outputs() */

    out = &ps->m->outputs[i];
    out->name.data = (char *) name;
    out->name.len = (uint32_t) json_string_length(v);
    out->flags = 0;
    out->class_count = 0;

    for (k = 0; k < i; k++) {
        if (ksv_str_same(&ps->m->outputs[k].name, &out->name)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "output '%.*s' already exists in request",
                            (int) out->name.len, name);
        }
    }

    v = json_object_get(o, "parameters");

    if (v == NULL) {
        return 0;
    }

    if (!json_is_object(v)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "output '%s' 'parameters' must be an object", name);
    }

    b = json_object_get(v, "binary_data");

    if (b != NULL) {
        if (!json_is_boolean(b)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "output '%s': 'binary_data' must be a bool",
                            name);
        }

        out->flags = json_is_true(b) ? KSV_OUTPUT_BINARY : 0;
    }

    if (json_object_get(v, "shared_memory_region") != NULL) {
        if (json_object_get(v, "classification") != NULL) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "Output can't set both 'shared_memory_region' "
                            "and 'classification'");
        }

        if (json_is_true(b)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "Output can't set both 'shared_memory_region' "
                            "and 'binary_data'");
        }

        out->flags = KSV_OUTPUT_SHM;

        return ksv_parse_shm(ps, v, name, KSV_SHM_OUTPUT, (uint32_t) i);
    }

    b = json_object_get(v, "classification");

    if (b != NULL) {
        /* Triton's AsUInt; 0 asks for no classification */
        if (!json_is_integer(b) || json_integer_value(b) < 0
            || json_integer_value(b) > UINT32_MAX)
        {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "Unable to set 'classification'");
        }

        out->class_count = (uint32_t) json_integer_value(b);
    }

    return 0;
}


/*
 * Triton's shared memory parameters of a tensor (the registry lookup
 * and the bounds are nginx's, ngx_http_kserve_shm.c): region, offset
 * (default 0) and byte_size, into m->shm.  The region's key is left
 * empty for the caller.
 */

static int
ksv_parse_shm(ksv_parse_t *ps, json_t *params, const char *name, uint8_t io,
    uint32_t index)
{
    json_t         *v;
    ksv_infer_t    *m;
    ksv_shm_ref_t  *ref;

    m = ps->m;

    if (m->shm == NULL) {
        m->shm = ps->alloc->alloc(ps->alloc->ctx,
                                  (ps->shm_cap ? ps->shm_cap : 1)
                                  * sizeof(ksv_shm_ref_t));
        if (m->shm == NULL) {
            return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
        }
    }

    if (m->nshm >= ps->shm_cap) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "too many tensors in shared memory");
    }

    ref = &m->shm[m->nshm];
    memset(ref, 0, sizeof(ksv_shm_ref_t));
    ref->io = io;
    ref->index = index;

    v = json_object_get(params, "shared_memory_region");

    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > KSV_MAX_STRING)
    {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "Unable to parse 'shared_memory_region'");
    }

    ref->region.data = ksv_dup(ps->alloc, json_string_value(v),
                               json_string_length(v));
    ref->region.len = (uint32_t) json_string_length(v);

    if (ref->region.data == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    /* unsigned 64-bit, as Triton reads them (beyond INT64_MAX too) */

    v = json_object_get(params, "shared_memory_offset");

    if (v != NULL && !ksv_shm_uint(v, &ref->offset)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "Unable to parse 'shared_memory_offset'");
    }

    v = json_object_get(params, "shared_memory_byte_size");

    if (!ksv_shm_uint(v, &ref->byte_size)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "%s '%s': Unable to parse 'shared_memory_byte_size'",
                        io == KSV_SHM_INPUT ? "input" : "output", name);
    }

    m->nshm++;

    return 0;
}


static int
ksv_shm_uint(json_t *v, uint64_t *value)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *value = (uint64_t) json_integer_value(v);
        return 1;
    }

    return ksv_big_value(v, value);
}


/* Input i's shared memory entry, or NULL. */

static const ksv_shm_ref_t *
ksv_input_shm(ksv_parse_t *ps, size_t i)
{
    uint32_t  k;

    for (k = 0; k < ps->m->nshm; k++) {
        if (ps->m->shm[k].io == KSV_SHM_INPUT && ps->m->shm[k].index == i) {
            return &ps->m->shm[k];
        }
    }

    return NULL;
}


/*
 * An input in shared memory has a byte_size its shape and datatype fix
 * (BYTES elements are checked where they are read, in the instance).
 * Its frame is empty: the bytes come from the region.
 */

static int
ksv_shm_input_size(ksv_parse_t *ps, ksv_tensor_t *t, const ksv_shm_ref_t *ref,
    uint64_t count)
{
    size_t                     size;
    const ksv_model_config_t  *c;

    c = ps->config;
    size = ksv_datatype_size(t->datatype);

    if (size != 0 && (count > UINT64_MAX / size
                      || count * size != ref->byte_size))
    {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input byte size mismatch for input '%.*s' for "
                        "model '%.*s'. Expected %llu, got %llu",
                        (int) t->name.len, t->name.data,
                        (int) c->name.len, c->name.data,
                        (unsigned long long) (count * size),
                        (unsigned long long) ref->byte_size);
    }

    t->byte_size = ref->byte_size;

    return 0;
}


/* The outputs asked for against the model's (Triton's core, first). */

static int
ksv_check_outputs(ksv_parse_t *ps)
{
    uint32_t                   i, k;
    ksv_output_req_t          *out;
    const ksv_model_config_t  *c;

    c = ps->config;

    for (i = 0; i < ps->m->noutputs; i++) {
        out = &ps->m->outputs[i];

        if (ksv_find_io(c->outputs, c->noutputs, out->name.data,
                        out->name.len, &k)
            == NULL)
        {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "unexpected inference output '%.*s' for model "
                            "'%.*s'", (int) out->name.len, out->name.data,
                            (int) c->name.len, c->name.data);
        }

        out->name = c->outputs[k].name;
    }

    return 0;
}


/*
 * The inputs against the model, in the order of Triton's core
 * (InferenceRequest::Normalize): their count, their names, the batch
 * size, then each input's datatype, shape and bytes.
 */

static int
ksv_check_inputs(ksv_parse_t *ps)
{
    uint32_t  i;

    if (ksv_check_input_count(ps) != 0
        || ksv_find_inputs(ps) != 0
        || ksv_check_batch(ps) != 0)
    {
        return -1;
    }

    for (i = 0; i < ps->m->ninputs; i++) {
        if (ksv_check_input(ps, i) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
ksv_check_input_count(ksv_parse_t *ps)
{
    uint32_t                   i, k, n, required, optional, missing, first;
    ksv_writer_t               w;
    const ksv_tensor_t        *in;
    const ksv_model_config_t  *c;

    c = ps->config;
    in = ps->m->inputs;
    n = ps->m->ninputs;
    required = 0;
    optional = 0;

    for (i = 0; i < c->ninputs; i++) {
        if (c->inputs[i].optional) {
            optional++;

        } else {
            required++;
        }
    }

    if (n >= required && n <= required + optional) {
        return 0;
    }

    /* Triton's text, its lists included */

    ksv_writer_init(&w);

    if (optional) {
        ksv_json_lit(&w, "expected number of inputs between ");
        ksv_json_u64(&w, required);
        ksv_json_lit(&w, " and ");
        ksv_json_u64(&w, required + optional);

    } else {
        ksv_json_lit(&w, "expected ");
        ksv_json_u64(&w, required);
        ksv_json_lit(&w, " inputs");
    }

    ksv_json_lit(&w, " but got ");
    ksv_json_u64(&w, n);
    ksv_json_lit(&w, " inputs for model '");
    ksv_put_bytes(&w, c->name.data, c->name.len);
    ksv_json_lit(&w, "'. Got input(s) [");

    for (i = 0; i < n; i++) {
        if (i) {
            ksv_put_u8(&w, ',');
        }

        ksv_put_u8(&w, '\'');
        ksv_put_bytes(&w, in[i].name.data, in[i].name.len);
        ksv_put_u8(&w, '\'');
    }

    /* none missing: Triton's list loses its '[' */
    ksv_json_lit(&w, "], but missing required input(s) ");
    first = 1;

    for (i = 0; i < c->ninputs; i++) {
        if (c->inputs[i].optional) {
            continue;
        }

        missing = 1;

        for (k = 0; k < n; k++) {
            if (ksv_str_same(&in[k].name, &c->inputs[i].name)) {
                missing = 0;
                break;
            }
        }

        if (missing) {
            ksv_put_u8(&w, first ? '[' : ',');
            ksv_put_u8(&w, '\'');
            ksv_put_bytes(&w, c->inputs[i].name.data, c->inputs[i].name.len);
            ksv_put_u8(&w, '\'');
            first = 0;
        }
    }

    ksv_json_lit(&w, "]. Please provide all required input(s).");

    ksv_fail(ps, KSV_ERR_INVALID_ARG, "%.*s",
             w.failed ? 0 : (int) w.len, (char *) w.buf);
    ksv_writer_free(&w);

    return -1;
}


/* Each input's name in the model, which its tensor takes from now on. */

static int
ksv_find_inputs(ksv_parse_t *ps)
{
    uint8_t                   *seen;
    uint32_t                   i, k;
    ksv_tensor_t              *t;
    const ksv_model_config_t  *c;

    c = ps->config;

    ps->io = ps->alloc->alloc(ps->alloc->ctx, (ps->m->ninputs + 1)
                                              * sizeof(ksv_io_config_t *));
    seen = ps->alloc->alloc(ps->alloc->ctx, c->ninputs + 1);

    if (ps->io == NULL || seen == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    memset(seen, 0, c->ninputs + 1);

    for (i = 0; i < ps->m->ninputs; i++) {
        t = &ps->m->inputs[i];

        ps->io[i] = ksv_find_io(c->inputs, c->ninputs, t->name.data,
                                t->name.len, &k);

        if (ps->io[i] == NULL) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "unexpected inference input '%.*s' for model "
                            "'%.*s'", (int) t->name.len, t->name.data,
                            (int) c->name.len, c->name.data);
        }

        t->name = ps->io[i]->name;
        seen[k] = 1;
    }

    for (i = 0; i < c->ninputs; i++) {
        if (!seen[i] && !c->inputs[i].optional) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "missing required input '%.*s' for model "
                            "'%.*s'", (int) c->inputs[i].name.len,
                            c->inputs[i].name.data,
                            (int) c->name.len, c->name.data);
        }
    }

    return 0;
}


/* With max_batch_size > 0, dim 0 of every input is the one batch size. */

static int
ksv_check_batch(ksv_parse_t *ps)
{
    int64_t                    batch;
    uint32_t                   i;
    const ksv_tensor_t        *t;
    const ksv_model_config_t  *c;

    c = ps->config;

    if (c->max_batch_size <= 0) {
        return 0;
    }

    batch = -1;

    for (i = 0; i < ps->m->ninputs; i++) {
        t = &ps->m->inputs[i];

        if (t->ndims == 0) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s' has no shape but model requires "
                            "batch dimension for '%.*s'",
                            (int) t->name.len, t->name.data,
                            (int) c->name.len, c->name.data);
        }

        if (batch != -1 && t->dims[0] != batch) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s' batch size does not match other "
                            "inputs for '%.*s'",
                            (int) t->name.len, t->name.data,
                            (int) c->name.len, c->name.data);
        }

        batch = t->dims[0];
    }

    if (batch > c->max_batch_size) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "inference request batch-size must be <= %d for "
                        "'%.*s'", (int) c->max_batch_size,
                        (int) c->name.len, c->name.data);
    }

    if (batch == 0) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "inference request batch-size must be >= 1 for "
                        "'%.*s'", (int) c->name.len, c->name.data);
    }

    return 0;
}


/* Input i against its configuration: datatype, shape, binary bytes. */

static int
ksv_check_input(ksv_parse_t *ps, uint32_t i)
{
    uint64_t                   count;
    const ksv_tensor_t        *t;
    const ksv_io_config_t     *io;
    const ksv_model_config_t  *c;

    c = ps->config;
    t = &ps->m->inputs[i];
    io = ps->io[i];

    if (t->datatype != io->datatype) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "inference input '%.*s' data-type is '%s', but model "
                        "'%.*s' expects '%s'", (int) t->name.len,
                        t->name.data, ksv_datatype_name(t->datatype),
                        (int) c->name.len, c->name.data,
                        ksv_datatype_name(io->datatype));
    }

    if (ksv_check_shape(ps, io, t) != 0) {
        return -1;
    }

    if (!ps->binary[i]) {
        return 0;
    }

    (void) ksv_shape_count(t->dims, t->ndims, UINT64_MAX, &count);

    return ksv_check_binary(ps, t, ps->bufs[i].data, t->byte_size, count);
}


static int
ksv_big_value(json_t *v, uint64_t *value)
{
    size_t       n;
    const char  *s;

    if (!json_is_string(v)) {
        return 0;
    }

    s = json_string_value(v);
    n = json_string_length(v);

    if (n < 6 || memcmp(s, "\0u64:", 5) != 0) {
        return 0;
    }

    *value = strtoull(s + 5, NULL, 10);

    return 1;
}


static char *
ksv_dup(ksv_alloc_t *a, const char *s, size_t len)
{
    char  *p;

    p = a->alloc(a->ctx, len + 1);
    if (p == NULL) {
        return NULL;
    }

    memcpy(p, s, len);
    p[len] = '\0';

    return p;
}


static const ksv_io_config_t *
ksv_find_io(const ksv_io_config_t *io, uint32_t n, const char *name,
    size_t len, uint32_t *index)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        if (io[i].name.len == len && memcmp(io[i].name.data, name, len) == 0)
        {
            if (index != NULL) {
                *index = i;
            }

            return &io[i];
        }
    }

    return NULL;
}


static int
ksv_str_same(const ksv_str_t *a, const ksv_str_t *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}


/* Triton's spelling of a shape: [2,3] */

static void
ksv_dims_text(char *buf, size_t size, const int64_t *dims, uint32_t n)
{
    size_t    len;
    uint32_t  i;

    len = (size_t) snprintf(buf, size, "[");

    for (i = 0; i < n && len < size; i++) {
        len += (size_t) snprintf(buf + len, size - len, "%s%lld",
                                 i ? "," : "", (long long) dims[i]);
    }

    if (len < size) {
        snprintf(buf + len, size - len, "]");
    }
}


static int
ksv_fail(ksv_parse_t *ps, ksv_status_t code, const char *fmt, ...)
{
    va_list  args;

    ps->err->code = code;

    va_start(args, fmt);
    vsnprintf(ps->err->message, sizeof(ps->err->message), fmt, args);
    va_end(args);

    return -1;
}


/*
 * json_set_alloc_funcs() is process-wide: the arena's functions are
 * installed for one parse and the previous ones put back after it, and
 * the arena being used is a static.  So one thread parses at a time
 * (nginx's event loop, the tests, the fuzzers), and nothing made by
 * jansson outlives the parse.
 */

static ksv_doc_arena_t  *ksv_doc;


static void
ksv_doc_begin(ksv_doc_arena_t *ar, uint8_t *first, size_t size)
{
    ar->pos = first;
    ar->end = first + size;
    ar->blocks = NULL;
    ar->next_size = 4 * size;

    json_get_alloc_funcs(&ar->saved_malloc, &ar->saved_free);
    json_set_alloc_funcs(ksv_doc_malloc, ksv_doc_free);

    ksv_doc = ar;
}


static void
ksv_doc_end(ksv_doc_arena_t *ar)
{
    ksv_doc_block_t  *b, *next;

    json_set_alloc_funcs(ar->saved_malloc, ar->saved_free);
    ksv_doc = NULL;

    for (b = ar->blocks; b != NULL; b = next) {
        next = b->next;
        free(b);
    }

    ar->blocks = NULL;
}


static void *
ksv_doc_malloc(size_t size)
{
    size_t              room, hdr;
    uint8_t            *p;
    ksv_doc_arena_t   *ar;
    ksv_doc_block_t  *b;

    ar = ksv_doc;

    if (size > SIZE_MAX / 4) {
        return NULL;
    }

    size = (size + KSV_DOC_ALIGN - 1) & ~((size_t) KSV_DOC_ALIGN - 1);

    if ((size_t) (ar->end - ar->pos) < size) {
        /* a new block, doubling, big enough for this allocation */

        hdr = (sizeof(ksv_doc_block_t) + KSV_DOC_ALIGN - 1)
              & ~((size_t) KSV_DOC_ALIGN - 1);
        room = ar->next_size;

        while (room < size) {
            room *= 2;
        }

        b = malloc(hdr + room);
        if (b == NULL) {
            return NULL;
        }

        b->next = ar->blocks;
        ar->blocks = b;
        ar->pos = (uint8_t *) b + hdr;
        ar->end = ar->pos + room;
        ar->next_size = room * 2;
    }

    p = ar->pos;
    ar->pos += size;

    return p;
}


static void
ksv_doc_free(void *p)
{
    /* the arena goes as a whole */

    (void) p;
}


void
ksv_infer_free_bufs(ksv_infer_buf_t *bufs, uint32_t n)
{
    uint32_t  i;

    if (bufs == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (bufs[i].owned) {
            free(bufs[i].data);
        }

        bufs[i].data = NULL;
        bufs[i].owned = 0;
    }
}


void
ksv_infer_free_cb(void *data, void *hint)
{
    (void) hint;

    free(data);
}
