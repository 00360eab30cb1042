/*
 * ngx_kserve: KServe v2 JSON inference requests and responses.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ksv_infer_json.h"
#include "ksv_json_write.h"


typedef struct {
    const ksv_model_config_t  *config;
    const ksv_infer_limits_t  *limits;
    ksv_alloc_t               *alloc;
    ksv_infer_error_t         *err;
} ksv_parse_t;


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


static void ksv_doc_begin(ksv_doc_arena_t *ar, uint8_t *first,
    size_t size);
static void ksv_doc_end(ksv_doc_arena_t *ar);
static void *ksv_doc_malloc(size_t size);
static void ksv_doc_free(void *p);
static int ksv_fail(ksv_parse_t *ps, ksv_status_t code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int ksv_prescan(const uint8_t *p, size_t len, int max,
    size_t *nbig);
static const uint8_t *ksv_big_token(const uint8_t *begin, const uint8_t *p,
    const uint8_t *end, int *big);
static uint8_t *ksv_quote_big(const uint8_t *p, size_t len, size_t nbig,
    size_t *out);
static int ksv_big_value(json_t *v, uint64_t *value);
static char *ksv_dup(ksv_alloc_t *a, const char *s, size_t len);
static int ksv_parse_params(ksv_parse_t *ps, json_t *obj, const char *what,
    ksv_param_t **params, uint32_t *nparams);
static int ksv_parse_input(ksv_parse_t *ps, json_t *in,
    const ksv_io_config_t **io, ksv_tensor_t *t, int64_t *bsize);
static int ksv_parse_raw(ksv_parse_t *ps, const uint8_t *body, size_t len,
    ksv_infer_t *m, ksv_infer_buf_t **bufs);
static int ksv_check_binary(ksv_parse_t *ps, const ksv_tensor_t *t,
    const uint8_t *p, uint64_t size, uint64_t count);
static int ksv_check_shape(ksv_parse_t *ps, const ksv_io_config_t *io,
    const ksv_tensor_t *t, int64_t *batch);
static int ksv_count_data(ksv_parse_t *ps, json_t *v, const ksv_tensor_t *t,
    int depth, uint64_t *count, uint64_t *bytes);
static int ksv_check_leaf(json_t *v, ksv_datatype_t dt);
static void ksv_write_data(json_t *v, ksv_datatype_t dt, uint8_t **p);
static int ksv_parse_outputs(ksv_parse_t *ps, json_t *outputs,
    ksv_infer_t *m);
static const ksv_io_config_t *ksv_find_io(const ksv_io_config_t *io,
    uint32_t n, const char *name, size_t len, uint32_t *index);


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


int
ksv_infer_json_parse(const void *body, size_t len,
    const ksv_model_config_t *config, ksv_alloc_t *a, ksv_infer_t *m,
    uint8_t ***data, ksv_infer_error_t *err)
{
    uint8_t          **out;
    uint32_t           i;
    ksv_infer_buf_t   *bufs;

    *data = NULL;

    if (ksv_infer_parse(body, len, KSV_INFER_JSON_ONLY, config, NULL, a, m,
                        &bufs, err)
        != 0)
    {
        return -1;
    }

    /* without binary data every buffer is the parser's own */

    out = a->alloc(a->ctx, (m->ninputs ? m->ninputs : 1) * sizeof(uint8_t *));
    if (out == NULL) {
        ksv_infer_free_bufs(bufs, m->ninputs);
        err->code = KSV_ERR_INTERNAL;
        snprintf(err->message, sizeof(err->message), "out of memory");
        return -1;
    }

    for (i = 0; i < m->ninputs; i++) {
        out[i] = bufs[i].data;
    }

    *data = out;

    return 0;
}


int
ksv_infer_parse(const void *body, size_t len, size_t header_len,
    const ksv_model_config_t *config, const ksv_infer_limits_t *limits,
    ksv_alloc_t *a, ksv_infer_t *m, ksv_infer_buf_t **bufs_out,
    ksv_infer_error_t *err)
{
    int                     rc, depth;
    json_t                 *root, *v, *inputs, *in;
    size_t                  i, n, blen, off;
    size_t                  nbig, qlen;
    int64_t                 batch, bsize;
    uint8_t                *seen, *p, *quoted;
    uint32_t                required, optional, ninputs, k, maxn;
    uint64_t                count, bytes, expected, limit;
    const char             *name;
    ksv_tensor_t           *t;
    ksv_parse_t             ps;
    json_error_t            jerr;
    const uint8_t          *bin;
    ksv_infer_buf_t        *bufs;
    ksv_doc_arena_t        arena;
    const ksv_io_config_t  *io;
    uint8_t                 first[KSV_DOC_FIRST]
                                __attribute__((aligned(KSV_DOC_ALIGN)));

    static const ksv_infer_limits_t  no_limits;

    memset(m, 0, sizeof(ksv_infer_t));
    *bufs_out = NULL;

    ps.config = config;
    ps.limits = limits ? limits : &no_limits;
    ps.alloc = a;
    ps.err = err;

    if (header_len == 0) {
        return ksv_parse_raw(&ps, body, len, m, bufs_out);
    }

    /* the JSON, then the binary data of the inputs, in their order */

    blen = 0;

    if (header_len != KSV_INFER_JSON_ONLY) {
        if (header_len > len) {
            return ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                            "Inference-Header-Content-Length %zu is beyond "
                            "the end of the %zu-byte body", header_len, len);
        }

        blen = len - header_len;
        len = header_len;
    }

    bin = (const uint8_t *) body + len;
    off = 0;

    depth = KSV_JSON_MAX_DEPTH;

    if (ps.limits->max_depth && ps.limits->max_depth < KSV_JSON_MAX_DEPTH) {
        depth = (int) ps.limits->max_depth;
    }

    if (len == 0) {
        return ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                        "failed to parse the request JSON buffer: "
                        "the body is empty");
    }

    if (!ksv_prescan(body, len, depth, &nbig)) {
        return ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                        "failed to parse the request JSON buffer: "
                        "nesting deeper than %d levels", depth);
    }

    quoted = NULL;

    if (nbig != 0) {
        /* UINT64 values past INT64_MAX: see ksv_quote_big() */

        quoted = ksv_quote_big(body, len, nbig, &qlen);
        if (quoted == NULL) {
            return ksv_fail(&ps, KSV_ERR_INTERNAL, "out of memory");
        }
    }

    ksv_doc_begin(&arena, first, sizeof(first));

    if (quoted == NULL) {
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                          &jerr);

    } else {
        root = json_loadb((char *) quoted, qlen,
                          JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        free(quoted);
    }

    if (root == NULL) {
        ksv_doc_end(&arena);

        return ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                        "failed to parse the request JSON buffer: %s "
                        "at line %d column %d",
                        jerr.text, jerr.line, jerr.column);
    }

    rc = -1;
    bufs = NULL;
    ninputs = 0;

    if (!json_is_object(root)) {
        ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                 "the request JSON must be an object");
        goto done;
    }

    /* "id" */

    v = json_object_get(root, "id");

    if (v != NULL) {
        if (!json_is_string(v)) {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "the request 'id' must be a string");
            goto done;
        }

        m->request_id.len = json_string_length(v);
        m->request_id.data = ksv_dup(a, json_string_value(v),
                                     m->request_id.len);
        if (m->request_id.data == NULL) {
            goto nomem;
        }
    }

    /* "parameters" */

    v = json_object_get(root, "parameters");

    if (v != NULL) {
        if (ksv_parse_params(&ps, v, "request", &m->params, &m->nparams)
            != 0)
        {
            goto done;
        }

        for (i = 0; i < m->nparams; i++) {
            if (ksv_str_eq(m->params[i].key, "binary_data_output")
                && m->params[i].type == KSV_PARAM_BOOL
                && m->params[i].i)
            {
                m->flags |= KSV_INFER_ALL_BINARY;
            }
        }
    }

    /* "inputs" */

    inputs = json_object_get(root, "inputs");

    if (!json_is_array(inputs)) {
        ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                 "the request must have an 'inputs' array");
        goto done;
    }

    n = json_array_size(inputs);

    maxn = KSV_MAX_TENSORS;

    if (ps.limits->max_inputs && ps.limits->max_inputs < maxn) {
        maxn = ps.limits->max_inputs;
    }

    if (n > maxn) {
        ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                 "too many inputs (%zu, at most %u)", n, maxn);
        goto done;
    }

    m->inputs = a->alloc(a->ctx, (n ? n : 1) * sizeof(ksv_tensor_t));
    bufs = a->alloc(a->ctx, (n ? n : 1) * sizeof(ksv_infer_buf_t));
    seen = a->alloc(a->ctx, config->ninputs + 1);

    if (m->inputs == NULL || bufs == NULL || seen == NULL) {
        goto nomem;
    }

    memset(m->inputs, 0, (n ? n : 1) * sizeof(ksv_tensor_t));
    memset(bufs, 0, (n ? n : 1) * sizeof(ksv_infer_buf_t));
    memset(seen, 0, config->ninputs + 1);

    /* names first: a misspelt input is reported as such, not as a count */

    for (i = 0; i < n; i++) {
        in = json_array_get(inputs, i);
        v = json_is_object(in) ? json_object_get(in, "name") : NULL;

        if (!json_is_string(v)) {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "input %zu must be an object with a string 'name'", i);
            goto done;
        }

        name = json_string_value(v);

        if (ksv_find_io(config->inputs, config->ninputs, name,
                        json_string_length(v), &k)
            == NULL)
        {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "unexpected inference input '%s' for model '%.*s'",
                     name, (int) config->name.len, config->name.data);
            goto done;
        }

        if (seen[k]) {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "input '%s' is specified more than once", name);
            goto done;
        }

        seen[k] = 1;
    }

    required = 0;
    optional = 0;

    for (i = 0; i < config->ninputs; i++) {
        if (config->inputs[i].optional) {
            optional++;

        } else {
            required++;
        }
    }

    if (n < required || n > required + optional) {
        if (optional) {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "expected number of inputs between %u and %u but got "
                     "%zu inputs for model '%.*s'",
                     required, required + optional, n,
                     (int) config->name.len, config->name.data);

        } else {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "expected %u inputs but got %zu inputs for model "
                     "'%.*s'", required, n,
                     (int) config->name.len, config->name.data);
        }

        goto done;
    }

    for (i = 0; i < config->ninputs; i++) {
        if (!seen[i] && !config->inputs[i].optional) {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "missing required input '%.*s' for model '%.*s'",
                     (int) config->inputs[i].name.len,
                     config->inputs[i].name.data,
                     (int) config->name.len, config->name.data);
            goto done;
        }
    }

    /* then each input: datatype, shape, data */

    batch = -1;
    limit = ps.limits->max_elements ? ps.limits->max_elements : UINT64_MAX;

    for (i = 0; i < n; i++) {
        in = json_array_get(inputs, i);
        t = &m->inputs[i];

        if (ksv_parse_input(&ps, in, &io, t, &bsize) != 0
            || ksv_check_shape(&ps, io, t, &batch) != 0)
        {
            goto done;
        }

        /* the shape alone is bounded first: no overflow, no huge counts */

        if (ksv_shape_count(t->dims, t->ndims, limit, &expected) != 0) {
            if (limit == UINT64_MAX) {
                ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                         "input '%.*s': the number of elements of its "
                         "'shape' overflows", (int) t->name.len, t->name.data);

            } else {
                ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                         "input '%.*s': its 'shape' has more than %llu "
                         "elements, the limit", (int) t->name.len,
                         t->name.data, (unsigned long long) limit);
            }

            goto done;
        }

        v = json_object_get(in, "data");

        if (bsize >= 0) {

            if (v != NULL) {
                ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                         "input '%.*s' has both 'data' and "
                         "'binary_data_size'",
                         (int) t->name.len, t->name.data);
                goto done;
            }

            if (header_len == KSV_INFER_JSON_ONLY) {
                ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                         "input '%.*s' has 'binary_data_size' but the "
                         "request has no Inference-Header-Content-Length "
                         "header", (int) t->name.len, t->name.data);
                goto done;
            }

            if ((uint64_t) bsize > blen - off) {
                ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                         "input '%.*s': binary_data_size %lld is beyond "
                         "the end of the body (%zu bytes of binary data "
                         "left)", (int) t->name.len, t->name.data,
                         (long long) bsize, blen - off);
                goto done;
            }

            if (ksv_check_binary(&ps, t, bin + off, (uint64_t) bsize,
                                 expected)
                != 0)
            {
                goto done;
            }

            t->byte_size = (uint64_t) bsize;
            bufs[i].data = bsize ? (uint8_t *) bin + off : NULL;
            bufs[i].owned = 0;
            off += (size_t) bsize;
            ninputs = (uint32_t) i + 1;
            continue;
        }

        if (t->datatype == KSV_TYPE_FP16 || t->datatype == KSV_TYPE_BF16) {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "input '%.*s': datatype %s can only be sent as "
                     "binary tensor data, not in JSON",
                     (int) t->name.len, t->name.data,
                     ksv_datatype_name(t->datatype));
            goto done;
        }

        if (v == NULL) {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "input '%s' has no 'data'",
                     json_string_value(json_object_get(in, "name")));
            goto done;
        }

        count = 0;
        bytes = 0;

        if (ksv_count_data(&ps, v, t, 0, &count, &bytes) != 0) {
            goto done;
        }

        if (expected != count) {
            ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                     "unexpected number of elements in 'data' of input "
                     "'%.*s': got %llu, which does not match its 'shape'",
                     (int) t->name.len, t->name.data,
                     (unsigned long long) count);
            goto done;
        }

        if (t->datatype != KSV_TYPE_BYTES) {
            bytes = count * ksv_datatype_size(t->datatype);
        }

        t->byte_size = bytes;
        ninputs = (uint32_t) i + 1;

        if (bytes == 0) {
            continue;
        }

        bufs[i].data = malloc(bytes);
        if (bufs[i].data == NULL) {
            goto nomem;
        }

        bufs[i].owned = 1;

        p = bufs[i].data;
        ksv_write_data(v, t->datatype, &p);
    }

    m->ninputs = (uint32_t) n;

    if (off != blen) {
        ksv_fail(&ps, KSV_ERR_INVALID_ARG,
                 "the request has %zu bytes of binary data but its inputs' "
                 "binary_data_size add up to %zu", blen, off);
        goto done;
    }

    /* "outputs" */

    v = json_object_get(root, "outputs");

    if (v != NULL && ksv_parse_outputs(&ps, v, m) != 0) {
        goto done;
    }

    *bufs_out = bufs;
    rc = 0;
    goto done;

nomem:

    ksv_fail(&ps, KSV_ERR_INTERNAL, "out of memory");

done:

    if (rc != 0 && bufs != NULL) {
        ksv_infer_free_bufs(bufs, ninputs);
        m->ninputs = 0;
    }

    /* no json_decref(root): the document goes with its arena */

    ksv_doc_end(&arena);

    return rc;
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
ksv_infer_json_free_data(uint8_t **data, uint32_t n)
{
    uint32_t  i;

    if (data == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        free(data[i]);
        data[i] = NULL;
    }
}


void
ksv_infer_json_free_cb(void *data, void *hint)
{
    (void) hint;

    free(data);
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


static int
ksv_parse_input(ksv_parse_t *ps, json_t *in, const ksv_io_config_t **io,
    ksv_tensor_t *t, int64_t *bsize)
{
    json_t                    *v, *d;
    size_t                     i, n;
    const char                *name, *dtname;
    json_int_t                 dim;
    ksv_datatype_t             dt;
    const ksv_model_config_t  *c;

    c = ps->config;
    *bsize = -1;

    v = json_object_get(in, "name");
    name = json_string_value(v);

    *io = ksv_find_io(c->inputs, c->ninputs, name, json_string_length(v),
                      NULL);

    t->name = (*io)->name;

    /* "datatype" */

    v = json_object_get(in, "datatype");

    if (!json_is_string(v)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%s' must have a string 'datatype'", name);
    }

    dtname = json_string_value(v);
    dt = ksv_datatype_from_name(dtname, json_string_length(v));

    if (dt == KSV_TYPE_INVALID) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "invalid datatype '%s' for input '%s'",
                        dtname, name);
    }

    if (dt != (*io)->datatype) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "inference input '%s' data-type is '%s', but model "
                        "'%.*s' expects '%s'", name, ksv_datatype_name(dt),
                        (int) c->name.len, c->name.data,
                        ksv_datatype_name((*io)->datatype));
    }

    t->datatype = (uint8_t) dt;

    /* "parameters": only binary_data_size matters (-1: JSON "data") */

    v = json_object_get(in, "parameters");

    if (v != NULL) {
        if (!json_is_object(v)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%s' 'parameters' must be an object",
                            name);
        }

        d = json_object_get(v, "binary_data_size");

        if (d != NULL) {
            if (!json_is_integer(d) || json_integer_value(d) < 0) {
                return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                                "input '%s': 'binary_data_size' must be a "
                                "non-negative integer", name);
            }

            *bsize = json_integer_value(d);
        }

        if (json_object_get(v, "shared_memory_region") != NULL) {
            return ksv_fail(ps, KSV_ERR_UNSUPPORTED,
                            "input '%s': shared memory is not supported",
                            name);
        }
    }

    /* "shape" */

    v = json_object_get(in, "shape");

    if (!json_is_array(v)) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%s' must have a 'shape' array", name);
    }

    n = json_array_size(v);

    if (n > KSV_MAX_DIMS) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%s' has %zu dimensions, at most %d are "
                        "supported", name, n, KSV_MAX_DIMS);
    }

    for (i = 0; i < n; i++) {
        d = json_array_get(v, i);

        if (!json_is_integer(d) || (dim = json_integer_value(d)) < 0) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%s': 'shape' must be an array of "
                            "non-negative integers", name);
        }

        t->dims[i] = dim;
    }

    t->ndims = (uint8_t) n;

    return 0;
}


static int
ksv_check_shape(ksv_parse_t *ps, const ksv_io_config_t *io,
    const ksv_tensor_t *t, int64_t *batch)
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

        ksv_fail(ps, KSV_ERR_INVALID_ARG, "%.*s",
                 w.failed ? 0 : (int) w.len, (char *) w.buf);
        ksv_writer_free(&w);

        return -1;
    }

    if (!first) {
        return 0;
    }

    if (t->dims[0] < 1 || t->dims[0] > c->max_batch_size) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "inference request batch-size must be <= %d for "
                        "'%.*s' (and at least 1), got %lld",
                        (int) c->max_batch_size,
                        (int) c->name.len, c->name.data,
                        (long long) t->dims[0]);
    }

    if (*batch != -1 && *batch != t->dims[0]) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%.*s' has batch size %lld, but other inputs "
                        "have %lld", (int) t->name.len, t->name.data,
                        (long long) t->dims[0], (long long) *batch);
    }

    *batch = t->dims[0];

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
                            "'data' of input '%.*s' is nested too deeply",
                            (int) t->name.len, t->name.data);
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


static int
ksv_parse_outputs(ksv_parse_t *ps, json_t *outputs, ksv_infer_t *m)
{
    json_t                    *o, *v, *b;
    size_t                     i, n;
    uint8_t                   *seen;
    uint32_t                   k, maxn;
    const char                *name;
    ksv_output_req_t          *out;
    const ksv_model_config_t  *c;

    c = ps->config;

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
    seen = ps->alloc->alloc(ps->alloc->ctx, c->noutputs + 1);

    if (m->outputs == NULL || seen == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    memset(seen, 0, c->noutputs + 1);

    for (i = 0; i < n; i++) {
        o = json_array_get(outputs, i);
        v = json_is_object(o) ? json_object_get(o, "name") : NULL;

        if (!json_is_string(v)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "output %zu must be an object with a string "
                            "'name'", i);
        }

        name = json_string_value(v);

        if (ksv_find_io(c->outputs, c->noutputs, name,
                        json_string_length(v), &k)
            == NULL)
        {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "unexpected inference output '%s' for model "
                            "'%.*s'", name, (int) c->name.len, c->name.data);
        }

        if (seen[k]) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "output '%s' is requested more than once", name);
        }

        seen[k] = 1;

        out = &m->outputs[i];
        out->name = c->outputs[k].name;

        /* binary_data, else the request's binary_data_output */
        out->flags = (m->flags & KSV_INFER_ALL_BINARY) ? KSV_OUTPUT_BINARY
                                                       : 0;

        v = json_object_get(o, "parameters");

        if (v == NULL) {
            continue;
        }

        if (!json_is_object(v)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "output '%s' 'parameters' must be an object",
                            name);
        }

        b = json_object_get(v, "binary_data");

        if (b != NULL) {
            if (!json_is_boolean(b)) {
                return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                                "output '%s': 'binary_data' must be a bool",
                                name);
            }

            if (json_is_true(b)) {
                out->flags |= KSV_OUTPUT_BINARY;

            } else {
                out->flags &= ~KSV_OUTPUT_BINARY;
            }
        }

        if (json_object_get(v, "classification") != NULL) {
            return ksv_fail(ps, KSV_ERR_UNSUPPORTED,
                            "output '%s': classification is not supported",
                            name);
        }

        if (json_object_get(v, "shared_memory_region") != NULL) {
            return ksv_fail(ps, KSV_ERR_UNSUPPORTED,
                            "output '%s': shared memory is not supported",
                            name);
        }
    }

    m->noutputs = (uint32_t) n;

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
    size_t          es;
    uint32_t        len;
    uint64_t        n, max;
    const uint8_t  *end;

    if (t->datatype != KSV_TYPE_BYTES) {
        es = ksv_datatype_size(t->datatype);

        if (es == 0 || count > UINT64_MAX / es || count * es != size) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s': unexpected binary_data_size "
                            "%llu, its shape and datatype %s need %llu "
                            "bytes", (int) t->name.len, t->name.data,
                            (unsigned long long) size,
                            ksv_datatype_name(t->datatype),
                            (unsigned long long) (es && count
                                                  <= UINT64_MAX / es
                                                  ? count * es : 0));
        }

        return 0;
    }

    max = ps->limits->max_bytes_element;
    end = p + size;

    for (n = 0; p < end; n++) {
        if (n == count) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s': binary data holds more than the "
                            "%llu BYTES elements of its shape",
                            (int) t->name.len, t->name.data,
                            (unsigned long long) count);
        }

        if (end - p < 4) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s': BYTES element %llu has a "
                            "truncated length prefix",
                            (int) t->name.len, t->name.data,
                            (unsigned long long) n);
        }

        len = (uint32_t) p[0] | (uint32_t) p[1] << 8
              | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
        p += 4;

        if ((uint64_t) len > (uint64_t) (end - p)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s': BYTES element %llu of %u bytes "
                            "is beyond its binary_data_size",
                            (int) t->name.len, t->name.data,
                            (unsigned long long) n, len);
        }

        if (max && len > max) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "input '%.*s': BYTES element %llu is %u "
                            "bytes, longer than the limit",
                            (int) t->name.len, t->name.data,
                            (unsigned long long) n, len);
        }

        p += len;
    }

    if (n != count) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "input '%.*s': binary data holds %llu BYTES "
                        "elements but its shape has %llu",
                        (int) t->name.len, t->name.data,
                        (unsigned long long) n, (unsigned long long) count);
    }

    return 0;
}


/*
 * Inference-Header-Content-Length: 0, Triton's raw request: the body is
 * the data of the model's only input, its shape the configuration's
 * (batch 1 first when batching) with one -1 dimension deduced from the
 * size; a BYTES input is one element, the body.
 */

static int
ksv_parse_raw(ksv_parse_t *ps, const uint8_t *body, size_t len,
    ksv_infer_t *m, ksv_infer_buf_t **bufs_out)
{
    int                        wild;
    size_t                     es;
    uint8_t                   *p;
    uint32_t                   i, nd;
    uint64_t                   count, per, limit;
    ksv_tensor_t              *t;
    ksv_infer_buf_t           *bufs;
    const ksv_io_config_t     *io;
    const ksv_model_config_t  *c;

    c = ps->config;

    if (c->ninputs != 1) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "raw request must only have 1 input (found %u) to "
                        "be deduced but model '%.*s' has %u inputs",
                        1u, (int) c->name.len, c->name.data, c->ninputs);
    }

    io = &c->inputs[0];

    m->inputs = ps->alloc->alloc(ps->alloc->ctx, sizeof(ksv_tensor_t));
    bufs = ps->alloc->alloc(ps->alloc->ctx, sizeof(ksv_infer_buf_t));

    if (m->inputs == NULL || bufs == NULL) {
        return ksv_fail(ps, KSV_ERR_INTERNAL, "out of memory");
    }

    memset(m->inputs, 0, sizeof(ksv_tensor_t));
    memset(bufs, 0, sizeof(ksv_infer_buf_t));

    t = m->inputs;
    t->name = io->name;
    t->datatype = io->datatype;

    nd = 0;
    wild = -1;
    count = 1;
    limit = ps->limits->max_elements ? ps->limits->max_elements
                                     : UINT64_MAX;

    if (c->max_batch_size > 0) {
        t->dims[nd++] = 1;
    }

    if (io->ndims + nd > KSV_MAX_DIMS) {
        return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                        "raw input '%.*s' has too many dimensions",
                        (int) io->name.len, io->name.data);
    }

    for (i = 0; i < io->ndims; i++) {
        if (io->dims[i] < 0) {
            if (wild != -1) {
                return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                                "the shape of the raw input '%.*s' can not "
                                "be deduced because there are more than "
                                "one variable-sized dimension",
                                (int) io->name.len, io->name.data);
            }

            wild = (int) nd;
            t->dims[nd++] = 1;
            continue;
        }

        if (io->dims[i] && count > limit / (uint64_t) io->dims[i]) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "raw input '%.*s': too many elements",
                            (int) io->name.len, io->name.data);
        }

        count *= (uint64_t) io->dims[i];
        t->dims[nd++] = io->dims[i];
    }

    t->ndims = (uint8_t) nd;

    if (t->datatype == KSV_TYPE_BYTES) {
        if (count != 1) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "raw input '%.*s' is one BYTES element, but "
                            "its shape has %llu",
                            (int) io->name.len, io->name.data,
                            (unsigned long long) count);
        }

        if (len > UINT32_MAX
            || (ps->limits->max_bytes_element
                && len > ps->limits->max_bytes_element))
        {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "raw input '%.*s': BYTES element of %zu bytes "
                            "is longer than the limit",
                            (int) io->name.len, io->name.data, len);
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

        bufs[0].data = p;
        bufs[0].owned = 1;
        t->byte_size = 4 + len;

    } else {
        es = ksv_datatype_size(t->datatype);

        if (es == 0 || count > UINT64_MAX / es) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "raw input '%.*s': too many elements",
                            (int) io->name.len, io->name.data);
        }

        per = count * es;

        if (wild != -1 && per != 0 && len % per == 0) {
            t->dims[wild] = (int64_t) (len / per);
            count = len / per;

            if (count > limit) {
                return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                                "raw input '%.*s': more than %llu elements",
                                (int) io->name.len, io->name.data,
                                (unsigned long long) limit);
            }

        } else if (per != len || (wild != -1 && per == 0)) {
            return ksv_fail(ps, KSV_ERR_INVALID_ARG,
                            "raw input '%.*s': %zu bytes do not make a "
                            "whole %s tensor of its shape",
                            (int) io->name.len, io->name.data, len,
                            ksv_datatype_name(t->datatype));
        }

        bufs[0].data = len ? (uint8_t *) body : NULL;
        bufs[0].owned = 0;
        t->byte_size = len;
    }

    m->ninputs = 1;
    m->flags |= KSV_INFER_ALL_BINARY;
    *bufs_out = bufs;

    return 0;
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


/* ---- responses --------------------------------------------------------- */

static float
ksv_half_to_float(uint16_t h)
{
    float     f;
    uint32_t  sign, exp, mant, bits;

    sign = (uint32_t) (h >> 15) << 31;
    exp = (h >> 10) & 0x1f;
    mant = h & 0x3ff;

    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (mant << 13);

    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);

    } else if (mant == 0) {
        bits = sign;

    } else {
        /* subnormal half: normalize */
        exp = 113;

        while ((mant & 0x400) == 0) {
            mant <<= 1;
            exp--;
        }

        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }

    memcpy(&f, &bits, 4);

    return f;
}


static uint64_t
ksv_get_le(const uint8_t *p, size_t n)
{
    size_t    i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < n; i++) {
        v |= (uint64_t) p[i] << (8 * i);
    }

    return v;
}


/* The most one element of each datatype takes in "data", with its ','. */

static size_t
ksv_reply_element_max(ksv_datatype_t dt)
{
    switch (dt) {

    case KSV_TYPE_BOOL:
        return sizeof("false,") - 1;

    case KSV_TYPE_UINT8:
    case KSV_TYPE_INT8:
        return sizeof("-128,") - 1;

    case KSV_TYPE_UINT16:
    case KSV_TYPE_INT16:
        return sizeof("-32768,") - 1;

    case KSV_TYPE_UINT32:
    case KSV_TYPE_INT32:
        return sizeof("-2147483648,") - 1;

    case KSV_TYPE_FP16:
    case KSV_TYPE_BF16:
    case KSV_TYPE_FP32:
        return sizeof("-1.17549435e-38,") - 1;

    default:
        return sizeof("-2.2250738585072014e-308,") - 1;
    }
}


static int
ksv_reply_data(ksv_writer_t *w, const ksv_tensor_t *t, const uint8_t *p,
    size_t size, uint64_t count, char *err, size_t errlen)
{
    char           *q;
    float           f;
    double          d;
    size_t          es;
    uint8_t        *room;
    uint32_t        u32, len;
    uint64_t        i, u64;
    const uint8_t  *end;

    end = p + size;

    if (t->datatype == KSV_TYPE_BYTES) {
        for (i = 0; i < count; i++) {
            if (end - p < 4) {
                goto bad;
            }

            len = (uint32_t) ksv_get_le(p, 4);
            p += 4;

            if ((size_t) (end - p) < len) {
                goto bad;
            }

            if (i) {
                ksv_put_u8(w, ',');
            }

            ksv_json_string(w, p, len);
            p += len;
        }

        if (p != end) {
            goto bad;
        }

        return 0;
    }

    es = ksv_datatype_size(t->datatype);

    if (es == 0 || count > size / es || count * es != size) {
        goto bad;
    }

    /* each element written in place: the room for the longest, then it */

    for (i = 0; i < count; i++, p += es) {
        room = ksv_writer_room(w, 1 + KSV_JSON_F64_MAX);
        if (room == NULL) {
            return 0;           /* w->failed tells the caller */
        }

        q = (char *) room;

        if (i) {
            *q++ = ',';
        }

        switch (t->datatype) {

        case KSV_TYPE_BOOL:
            if (*p) {
                memcpy(q, "true", 4);
                q += 4;

            } else {
                memcpy(q, "false", 5);
                q += 5;
            }

            break;

        case KSV_TYPE_UINT8:
        case KSV_TYPE_UINT16:
        case KSV_TYPE_UINT32:
        case KSV_TYPE_UINT64:
            q += ksv_json_fmt_u64(q, ksv_get_le(p, es));
            break;

        case KSV_TYPE_INT8:
            q += ksv_json_fmt_i64(q, (int8_t) p[0]);
            break;

        case KSV_TYPE_INT16:
            q += ksv_json_fmt_i64(q, (int16_t) ksv_get_le(p, 2));
            break;

        case KSV_TYPE_INT32:
            q += ksv_json_fmt_i64(q, (int32_t) ksv_get_le(p, 4));
            break;

        case KSV_TYPE_INT64:
            q += ksv_json_fmt_i64(q, (int64_t) ksv_get_le(p, 8));
            break;

        case KSV_TYPE_FP16:
            q += ksv_json_fmt_f32(q,
                                  ksv_half_to_float((uint16_t)
                                                    ksv_get_le(p, 2)));
            break;

        case KSV_TYPE_BF16:
            u32 = (uint32_t) ksv_get_le(p, 2) << 16;
            memcpy(&f, &u32, 4);
            q += ksv_json_fmt_f32(q, f);
            break;

        case KSV_TYPE_FP32:
            u32 = (uint32_t) ksv_get_le(p, 4);
            memcpy(&f, &u32, 4);
            q += ksv_json_fmt_f32(q, f);
            break;

        case KSV_TYPE_FP64:
            u64 = ksv_get_le(p, 8);
            memcpy(&d, &u64, 8);
            q += ksv_json_fmt_f64(q, d);
            break;

        default:
            goto bad;
        }

        w->len += q - (char *) room;
    }

    return 0;

bad:

    snprintf(err, errlen, "output '%.*s': %llu-byte frame does not hold "
             "%llu %s elements", (int) t->name.len, t->name.data,
             (unsigned long long) size, (unsigned long long) count,
             ksv_datatype_name(t->datatype));

    return -1;
}


int
ksv_infer_json_reply(ksv_writer_t *w, const ksv_infer_reply_t *m,
    const void *const *frames, const size_t *sizes, uint32_t nframes,
    char *err, size_t errlen)
{
    return ksv_infer_reply_header(w, m, frames, sizes, nframes, NULL, err,
                                  errlen);
}


int
ksv_infer_reply_header(ksv_writer_t *w, const ksv_infer_reply_t *m,
    const void *const *frames, const size_t *sizes, uint32_t nframes,
    const uint8_t *binary, char *err, size_t errlen)
{
    size_t               need;
    uint32_t             i;
    uint64_t             count;
    const ksv_tensor_t  *t;

    if (nframes != m->noutputs) {
        snprintf(err, errlen, "reply has %u outputs but %u frames",
                 m->noutputs, nframes);
        return -1;
    }

    /*
     * One allocation for the whole answer: room for the longest spelling
     * of every element (BYTES: the bytes, quoted; escapes may grow it)
     */

    need = 256 + m->model_name.len + m->model_version.len
           + m->request_id.len + 64 * (size_t) m->nparams;

    for (i = 0; i < m->noutputs; i++) {
        t = &m->outputs[i];
        need += 128 + t->name.len;

        if (binary != NULL && binary[i]) {
            continue;
        }

        if (t->datatype == KSV_TYPE_BYTES) {
            need += sizes[i] + sizes[i] / 2;

        } else if (ksv_datatype_size(t->datatype) != 0) {
            need += sizes[i] / ksv_datatype_size(t->datatype)
                    * ksv_reply_element_max(t->datatype);
        }
    }

    (void) ksv_writer_room(w, need);

    ksv_json_lit(w, "{\"model_name\":");
    ksv_json_string(w, m->model_name.data, m->model_name.len);
    ksv_json_lit(w, ",\"model_version\":");
    ksv_json_string(w, m->model_version.data, m->model_version.len);

    if (m->request_id.len) {
        ksv_json_lit(w, ",\"id\":");
        ksv_json_string(w, m->request_id.data, m->request_id.len);
    }

    if (m->nparams) {
        ksv_json_lit(w, ",\"parameters\":");
        ksv_json_params(w, m->params, m->nparams);
    }

    ksv_json_lit(w, ",\"outputs\":[");

    for (i = 0; i < m->noutputs; i++) {
        t = &m->outputs[i];

        if (t->datatype == KSV_TYPE_INVALID || t->datatype >= KSV_TYPE_COUNT
            || t->byte_size != sizes[i]
            || ksv_shape_count(t->dims, t->ndims, UINT64_MAX, &count) != 0)
        {
            snprintf(err, errlen, "output '%.*s' is malformed",
                     (int) t->name.len, t->name.data);
            return -1;
        }

        if (i) {
            ksv_put_u8(w, ',');
        }

        ksv_json_lit(w, "{\"name\":");
        ksv_json_string(w, t->name.data, t->name.len);
        ksv_json_lit(w, ",\"datatype\":");
        ksv_json_cstr(w, ksv_datatype_name(t->datatype));
        ksv_json_lit(w, ",\"shape\":");
        ksv_json_dims(w, t->dims, t->ndims);

        if (binary != NULL && binary[i]) {
            /* the frame follows the JSON as it is: Triton's layout */
            ksv_json_lit(w, ",\"parameters\":{\"binary_data_size\":");
            ksv_json_u64(w, sizes[i]);
            ksv_json_lit(w, "}}");
            continue;
        }

        ksv_json_lit(w, ",\"data\":[");

        if (ksv_reply_data(w, t, frames[i], sizes[i], count, err, errlen)
            != 0)
        {
            return -1;
        }

        ksv_json_lit(w, "]}");
    }

    ksv_json_lit(w, "]}");

    return 0;
}
