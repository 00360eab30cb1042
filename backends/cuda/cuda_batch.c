/*
 * ngx_kserve CUDA backend: one EXECUTE in, one EXECUTE_REPLY out
 * (see cuda_batch.h).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "ksv_datatype.h"
#include "ksv_instance.h"
#include "ksv_proto.h"
#include "cuda_batch.h"


#define KSV_CUDA_MAX_BYTES (1ULL << 40)     /* bound on one tensor */
#define KSV_CUDA_ERRLEN    1024


/* the wire's datatype numbers are the ABI's */
_Static_assert((int) KSV_CUDA_TYPE_INT32 == (int) KSV_TYPE_INT32
               && (int) KSV_CUDA_TYPE_FP32 == (int) KSV_TYPE_FP32
               && (int) KSV_CUDA_TYPE_BF16 == (int) KSV_TYPE_BF16
               && (int) KSV_CUDA_TYPE_BOOL == (int) KSV_TYPE_BOOL,
               "ksv_cuda_datatype_t must match ksv_datatype_t");


/* One request of the batch. */
typedef struct {
    uint64_t           id;
    ksv_infer_t        infer;
    zmq_msg_t         *frames;          /* its input frames, in `in` */
    int32_t           *input_of;        /* config input -> infer input */
    uint64_t           rows;            /* dim 0 (1 without batching) */
    uint64_t           row_off;         /* first row within its launch */
    int                failed;
    uint16_t           code;
    char              *msg;             /* malloc'd */

    uint32_t           nout;            /* the answer */
    ksv_tensor_t      *outs;
    zmq_msg_t         *out_frames;
} ksv_cuda_req_t;

/* Requests [first, end) that are not failed, run as one model call. */
typedef struct {
    uint32_t           first;
    uint32_t           end;
    uint64_t           rows;
    ksv_cuda_tensor_t *inputs;          /* config order */
    ksv_cuda_tensor_t *outputs;
    size_t            *in_off;          /* within the slot's in buffers */
    size_t            *out_off;
    size_t             in_total;
    size_t             out_total;
    int                failed;
} ksv_cuda_launch_t;

/* One EXECUTE on its way through the engine. */
typedef struct {
    ksv_cuda_engine_t  *e;
    ksv_cuda_req_t     *reqs;
    uint32_t            count;
    ksv_arena_t         arena;
    ksv_alloc_t         alloc;
    ksv_exec_times_t    times;
} ksv_cuda_batch_t;


/* ---- errors --------------------------------------------------------------- */

static void
ksv_cuda_req_fail(ksv_cuda_req_t *r, uint16_t code, const char *fmt, ...)
{
    va_list  ap;

    if (r->failed) {
        return;                 /* the first reason is the useful one */
    }
    r->failed = 1;
    r->code = code;
    va_start(ap, fmt);
    if (vasprintf(&r->msg, fmt, ap) < 0) {
        r->msg = NULL;
    }
    va_end(ap);
}


static void
ksv_cuda_launch_fail(ksv_cuda_batch_t *b, ksv_cuda_launch_t *l,
    uint16_t code, const char *msg)
{
    uint32_t  i;

    l->failed = 1;
    for (i = l->first; i < l->end; i++) {
        ksv_cuda_req_fail(&b->reqs[i], code, "%s", msg);
    }
}


#if KSV_HAVE_CUDA

/*
 * Whether a CUDA error leaves the context unusable.  Such errors
 * ("sticky") keep being returned by every later call; the only cure is
 * a new process.  Clears the error state when it is not sticky.
 */
static int
ksv_cuda_is_sticky(cudaError_t err)
{
    (void) cudaGetLastError();

    switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
        return 1;
    default:
        break;
    }

    /* still failing right after being read: the context is gone */
    return cudaGetLastError() != cudaSuccess;
}


/*
 * A CUDA call failed for launch l: fail it, and when the error is
 * sticky mark the engine fatal (the rest of the batch fails too).
 */
static void
ksv_cuda_launch_cuda_error(ksv_cuda_batch_t *b, ksv_cuda_launch_t *l,
    cudaError_t err, const char *what, const char *model_msg)
{
    char                msg[KSV_CUDA_ERRLEN];
    ksv_cuda_engine_t  *e = b->e;

    snprintf(msg, sizeof(msg), "CUDA error in %s of model '%.*s': %s (%s)%s%s",
             what, (int) e->model_name.len, e->model_name.data,
             cudaGetErrorString(err), cudaGetErrorName(err),
             model_msg != NULL && model_msg[0] ? "; the model said: " : "",
             model_msg != NULL ? model_msg : "");

    if (ksv_cuda_is_sticky(err) && !e->fatal) {
        e->fatal = 1;
        snprintf(e->fatal_msg, sizeof(e->fatal_msg), "%.1100s; the CUDA context "
                 "is lost, the instance restarts", msg);
        fprintf(stderr, "%s: %s: %s\n", KSV_CUDA_PROG, e->instance_name,
                e->fatal_msg);
    }

    ksv_cuda_launch_fail(b, l, KSV_ERR_INTERNAL,
                         e->fatal ? e->fatal_msg : msg);
}

#endif


/* ---- requests ------------------------------------------------------------- */

static void
ksv_cuda_put_dims(char *buf, size_t len, const int64_t *dims, uint32_t n,
    int batch)
{
    size_t    o = 0;
    uint32_t  i;

    o += (size_t) snprintf(buf + o, len - o, "[");
    if (batch && o < len) {
        o += (size_t) snprintf(buf + o, len - o, n ? "-1," : "-1");
    }
    for (i = 0; i < n && o < len; i++) {
        o += (size_t) snprintf(buf + o, len - o, "%s%lld", i ? "," : "",
                               (long long) dims[i]);
    }
    if (o < len) {
        snprintf(buf + o, len - o, "]");
    }
}


static int
ksv_cuda_config_input(const ksv_model_config_t *c, ksv_str_t name)
{
    uint32_t  i;

    for (i = 0; i < c->ninputs; i++) {
        if (c->inputs[i].name.len == name.len
            && memcmp(c->inputs[i].name.data, name.data, name.len) == 0)
        {
            return (int) i;
        }
    }
    return -1;
}


static int
ksv_cuda_config_output(const ksv_model_config_t *c, ksv_str_t name)
{
    uint32_t  i;

    for (i = 0; i < c->noutputs; i++) {
        if (c->outputs[i].name.len == name.len
            && memcmp(c->outputs[i].name.data, name.data, name.len) == 0)
        {
            return (int) i;
        }
    }
    return -1;
}


/*
 * Checks one decoded request against the config: every input known,
 * once, of the configured type and shape, its frame the declared size;
 * every required input present; every asked output known.  The module
 * checks the same, but an instance trusts no one.
 */
static void
ksv_cuda_req_check(ksv_cuda_batch_t *b, ksv_cuda_req_t *r)
{
    int                        ci;
    char                       want[256], got[256];
    size_t                     esize;
    uint32_t                   i, k, batch;
    uint64_t                   count;
    ksv_tensor_t              *t;
    const ksv_io_config_t     *io;
    const ksv_model_config_t  *c = b->e->config;
    const char                *m = c->name.data;
    int                        mlen = (int) c->name.len;

    batch = c->max_batch_size > 0;
    r->rows = 1;

    r->input_of = ksv_arena_alloc(&b->arena,
                                  (c->ninputs ? c->ninputs : 1)
                                  * sizeof(int32_t));
    if (r->input_of == NULL) {
        ksv_cuda_req_fail(r, KSV_ERR_INTERNAL, "out of memory");
        return;
    }
    for (i = 0; i < c->ninputs; i++) {
        r->input_of[i] = -1;
    }

    for (i = 0; i < r->infer.ninputs; i++) {
        t = &r->infer.inputs[i];
        ci = ksv_cuda_config_input(c, t->name);
        if (ci < 0) {
            ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                              "unexpected inference input '%.*s' for model "
                              "'%.*s'", (int) t->name.len, t->name.data,
                              mlen, m);
            return;
        }
        if (r->input_of[ci] >= 0) {
            ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                              "input '%.*s' appears twice in the request",
                              (int) t->name.len, t->name.data);
            return;
        }
        r->input_of[ci] = (int32_t) i;
        io = &c->inputs[ci];

        if (t->datatype != io->datatype) {
            ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                              "inference input '%.*s' data-type is '%s', but "
                              "model '%.*s' expects '%s'", (int) t->name.len,
                              t->name.data,
                              ksv_datatype_name((ksv_datatype_t) t->datatype),
                              mlen, m,
                              ksv_datatype_name((ksv_datatype_t) io->datatype));
            return;
        }

        /* shape: [rows] + config dims, -1 matching anything */
        {
            int  bad = t->ndims != io->ndims + batch;

            for (k = 0; !bad && k < io->ndims; k++) {
                bad = io->dims[k] >= 0 && t->dims[k + batch] != io->dims[k];
            }
            if (!bad && batch
                && (t->dims[0] < 1 || t->dims[0] > c->max_batch_size))
            {
                ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                                  "inference request batch-size must be <= "
                                  "%d for '%.*s', got %lld",
                                  (int) c->max_batch_size, mlen, m,
                                  (long long) t->dims[0]);
                return;
            }
            if (bad) {
                ksv_cuda_put_dims(want, sizeof(want), io->dims, io->ndims,
                                  (int) batch);
                ksv_cuda_put_dims(got, sizeof(got), t->dims, t->ndims, 0);
                ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                                  "unexpected shape for input '%.*s' for "
                                  "model '%.*s'. Expected %s, got %s",
                                  (int) t->name.len, t->name.data, mlen, m,
                                  want, got);
                return;
            }
        }

        if (batch) {
            if (i > 0 && (uint64_t) t->dims[0] != r->rows) {
                ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                                  "inputs of one request must agree on the "
                                  "batch size (dim 0)");
                return;
            }
            r->rows = (uint64_t) t->dims[0];
        }

        esize = ksv_datatype_size((ksv_datatype_t) t->datatype);
        if (esize == 0) {
            ksv_cuda_req_fail(r, KSV_ERR_UNSUPPORTED,
                              "input '%.*s': the cuda backend does not "
                              "support %s tensors", (int) t->name.len,
                              t->name.data,
                              ksv_datatype_name((ksv_datatype_t)
                                                t->datatype));
            return;
        }
        if (ksv_shape_count(t->dims, t->ndims, KSV_CUDA_MAX_BYTES / esize,
                            &count) != 0
            || count * esize != t->byte_size
            || zmq_msg_size(&r->frames[i]) != t->byte_size)
        {
            ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                              "input '%.*s': %zu bytes do not match its "
                              "shape and data type", (int) t->name.len,
                              t->name.data, zmq_msg_size(&r->frames[i]));
            return;
        }
    }

    for (i = 0; i < c->ninputs; i++) {
        if (r->input_of[i] < 0 && !c->inputs[i].optional) {
            ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                              "expected %u inputs but got %u inputs for "
                              "model '%.*s'", c->ninputs, r->infer.ninputs,
                              mlen, m);
            return;
        }
    }

    for (i = 0; i < r->infer.noutputs; i++) {
        if (ksv_cuda_config_output(c, r->infer.outputs[i].name) < 0) {
            ksv_cuda_req_fail(r, KSV_ERR_INVALID_ARG,
                              "unexpected inference output '%.*s' for model "
                              "'%.*s'", (int) r->infer.outputs[i].name.len,
                              r->infer.outputs[i].name.data, mlen, m);
            return;
        }
    }
}


/*
 * Splits the EXECUTE into requests.  A header that cannot be decoded
 * loses the frame boundaries of everything after it, so those requests
 * fail too; each still gets its place in the reply.
 */
static void
ksv_cuda_batch_decode(ksv_cuda_batch_t *b, ksv_frames_t *in)
{
    size_t           idx = 1;
    uint32_t         i;
    const char      *why;
    ksv_cuda_req_t  *r;

    for (i = 0; i < b->count; i++) {
        r = &b->reqs[i];

        why = ksv_instance_next_request(in, &idx, &b->alloc, &r->id,
                                        &r->infer, &r->frames);
        if (why != NULL) {
            ksv_cuda_req_fail(r, KSV_ERR_INTERNAL, "%s", why);
            continue;
        }
        ksv_cuda_req_check(b, r);
    }

    if (idx < in->n) {
        fprintf(stderr, "%s: %s: %zu extra frames after an EXECUTE of %u "
                "requests, ignored\n", KSV_CUDA_PROG, b->e->instance_name,
                in->n - idx, b->count);
    }
}


/* ---- launches ------------------------------------------------------------- */

/* Whether request r may join a launch begun by request f. */
static int
ksv_cuda_same_launch(const ksv_model_config_t *c, const ksv_cuda_req_t *f,
    const ksv_cuda_req_t *r, uint64_t rows)
{
    uint32_t             i;
    const ksv_tensor_t  *a, *b;

    if (c->max_batch_size <= 0
        || rows + r->rows > (uint64_t) c->max_batch_size)
    {
        return 0;
    }
    for (i = 0; i < c->ninputs; i++) {
        if ((f->input_of[i] < 0) != (r->input_of[i] < 0)) {
            return 0;
        }
        if (f->input_of[i] < 0) {
            continue;
        }
        a = &f->infer.inputs[f->input_of[i]];
        b = &r->infer.inputs[r->input_of[i]];
        if (a->ndims != b->ndims || a->ndims < 1
            || memcmp(&a->dims[1], &b->dims[1],
                      (a->ndims - 1) * sizeof(int64_t)) != 0)
        {
            return 0;
        }
    }
    return 1;
}


/* Groups the requests that passed their checks into launches. */
static ksv_cuda_launch_t *
ksv_cuda_batch_group(ksv_cuda_batch_t *b, uint32_t *nlaunch)
{
    uint32_t            i, n, f;
    uint64_t            rows;
    ksv_cuda_launch_t  *ls;
    ksv_cuda_req_t     *r;

    ls = ksv_arena_alloc(&b->arena, (b->count ? b->count : 1)
                                    * sizeof(ksv_cuda_launch_t));
    if (ls == NULL) {
        return NULL;
    }

    n = 0;
    i = 0;
    while (i < b->count) {
        if (b->reqs[i].failed) {
            i++;
            continue;
        }
        f = i;
        rows = 0;
        memset(&ls[n], 0, sizeof(ksv_cuda_launch_t));
        ls[n].first = f;
        for ( ; i < b->count; i++) {
            r = &b->reqs[i];
            if (r->failed) {
                continue;       /* skipped inside the launch */
            }
            if (i != f && !ksv_cuda_same_launch(b->e->config, &b->reqs[f],
                                                r, rows))
            {
                break;
            }
            r->row_off = rows;
            rows += r->rows;
        }
        ls[n].end = i;
        ls[n].rows = rows;
        n++;
    }

    *nlaunch = n;
    return ls;
}


/*
 * The launch's tensors: inputs concatenated along dim 0, outputs from
 * the config (and the model's output_shapes), and where each sits in the
 * slot's buffers.
 */
static int
ksv_cuda_launch_plan(ksv_cuda_batch_t *b, ksv_cuda_launch_t *l)
{
    int                        rc;
    char                       err[KSV_CUDA_ERRLEN];
    size_t                     off, esize;
    uint32_t                   i, k, batch;
    uint64_t                   count;
    ksv_cuda_req_t            *f, *r;
    ksv_cuda_tensor_t         *t;
    const ksv_tensor_t        *src;
    const ksv_io_config_t     *io;
    ksv_cuda_engine_t         *e = b->e;
    const ksv_model_config_t  *c = e->config;

    batch = c->max_batch_size > 0;
    f = &b->reqs[l->first];

    l->inputs = ksv_arena_alloc(&b->arena, (c->ninputs + 1)
                                           * sizeof(ksv_cuda_tensor_t));
    l->outputs = ksv_arena_alloc(&b->arena, (c->noutputs + 1)
                                            * sizeof(ksv_cuda_tensor_t));
    l->in_off = ksv_arena_alloc(&b->arena, (c->ninputs + 1) * sizeof(size_t));
    l->out_off = ksv_arena_alloc(&b->arena,
                                 (c->noutputs + 1) * sizeof(size_t));
    if (l->inputs == NULL || l->outputs == NULL || l->in_off == NULL
        || l->out_off == NULL)
    {
        ksv_cuda_launch_fail(b, l, KSV_ERR_INTERNAL, "out of memory");
        return -1;
    }

    off = 0;
    for (i = 0; i < c->ninputs; i++) {
        t = &l->inputs[i];
        memset(t, 0, sizeof(ksv_cuda_tensor_t));
        io = &c->inputs[i];
        t->name = io->name.data;        /* NUL-terminated by the parser */
        t->datatype = io->datatype;
        l->in_off[i] = off;
        if (f->input_of[i] < 0) {
            continue;                   /* optional, absent: data NULL */
        }
        src = &f->infer.inputs[f->input_of[i]];
        t->ndims = src->ndims;
        memcpy(t->dims, src->dims, src->ndims * sizeof(int64_t));
        if (batch) {
            t->dims[0] = (int64_t) l->rows;
        }
        for (k = l->first; k < l->end; k++) {
            r = &b->reqs[k];
            if (!r->failed) {
                t->byte_size += r->infer.inputs[r->input_of[i]].byte_size;
            }
        }
        off = ksv_pool_align(off + t->byte_size);
    }
    l->in_total = off;

    for (i = 0; i < c->noutputs; i++) {
        t = &l->outputs[i];
        memset(t, 0, sizeof(ksv_cuda_tensor_t));
        io = &c->outputs[i];
        if (io->ndims + batch > KSV_CUDA_MAX_DIMS) {
            ksv_cuda_launch_fail(b, l, KSV_ERR_UNSUPPORTED, "an output has "
                                 "more dims than the cuda backend supports");
            return -1;
        }
        t->name = io->name.data;
        t->datatype = io->datatype;
        t->ndims = io->ndims + batch;
        if (batch) {
            t->dims[0] = (int64_t) l->rows;
        }
        memcpy(&t->dims[batch], io->dims, io->ndims * sizeof(int64_t));
    }

    if (e->lib->output_shapes != NULL) {
        err[0] = '\0';
        rc = e->lib->output_shapes(e->state, l->inputs, c->ninputs,
                                   l->outputs, c->noutputs, err, sizeof(err));
        if (rc != 0) {
            ksv_cuda_launch_fail(b, l, rc < KSV_ERR_COUNT
                                       ? (uint16_t) rc : KSV_ERR_INTERNAL,
                                 err[0] ? err : "output_shapes failed");
            return -1;
        }
    }

    off = 0;
    for (i = 0; i < c->noutputs; i++) {
        t = &l->outputs[i];
        esize = ksv_datatype_size((ksv_datatype_t) t->datatype);
        if (t->ndims > KSV_CUDA_MAX_DIMS
            || (batch && (t->ndims < 1 || t->dims[0] != (int64_t) l->rows))
            || esize == 0
            || ksv_shape_count(t->dims, t->ndims, KSV_CUDA_MAX_BYTES / esize,
                               &count) != 0)
        {
            snprintf(err, sizeof(err), "model '%.*s' has no usable shape for "
                     "output '%s' (set -1 dims in ksv_cuda_model_output_"
                     "shapes; dim 0 must stay the batch)", (int) c->name.len,
                     c->name.data, t->name);
            ksv_cuda_launch_fail(b, l, KSV_ERR_INTERNAL, err);
            return -1;
        }
        t->byte_size = count * esize;
        l->out_off[i] = off;
        off = ksv_pool_align(off + t->byte_size);
    }
    l->out_total = off;

    return 0;
}


/* Copies the launch's requests' input frames into `base`. */
static void
ksv_cuda_launch_pack(ksv_cuda_batch_t *b, ksv_cuda_launch_t *l,
    uint8_t *base)
{
    size_t                     at, n;
    uint32_t                   i, k;
    ksv_cuda_req_t            *r;
    const ksv_model_config_t  *c = b->e->config;

    for (i = 0; i < c->ninputs; i++) {
        if (b->reqs[l->first].input_of[i] < 0) {
            continue;
        }
        at = l->in_off[i];
        for (k = l->first; k < l->end; k++) {
            r = &b->reqs[k];
            if (r->failed) {
                continue;
            }
            n = zmq_msg_size(&r->frames[r->input_of[i]]);
            memcpy(base + at, zmq_msg_data(&r->frames[r->input_of[i]]), n);
            at += n;
        }
    }
}


/* Splits the launch's outputs in `base` into each request's frames. */
static void
ksv_cuda_launch_unpack(ksv_cuda_batch_t *b, ksv_cuda_launch_t *l,
    const uint8_t *base)
{
    size_t                     row_bytes, size;
    uint32_t                   i, k, batch;
    ksv_tensor_t              *o;
    ksv_cuda_req_t            *r;
    ksv_cuda_tensor_t         *t;
    const ksv_model_config_t  *c = b->e->config;

    batch = c->max_batch_size > 0;

    for (k = l->first; k < l->end; k++) {
        r = &b->reqs[k];
        if (r->failed) {
            continue;
        }
        r->outs = ksv_arena_alloc(&b->arena, (c->noutputs + 1)
                                             * sizeof(ksv_tensor_t));
        r->out_frames = calloc(c->noutputs + 1, sizeof(zmq_msg_t));
        if (r->outs == NULL || r->out_frames == NULL) {
            ksv_cuda_req_fail(r, KSV_ERR_INTERNAL, "out of memory");
            continue;
        }

        for (i = 0; i < c->noutputs; i++) {
            if (!ksv_instance_output_wanted(&r->infer, c->outputs[i].name)) {
                continue;
            }
            t = &l->outputs[i];
            row_bytes = batch ? t->byte_size / l->rows : t->byte_size;
            size = batch ? row_bytes * r->rows : t->byte_size;

            if (zmq_msg_init_size(&r->out_frames[r->nout], size) != 0) {
                ksv_cuda_req_fail(r, KSV_ERR_INTERNAL, "out of memory");
                break;
            }
            memcpy(zmq_msg_data(&r->out_frames[r->nout]),
                   base + l->out_off[i] + (batch ? row_bytes * r->row_off : 0),
                   size);

            o = &r->outs[r->nout];
            memset(o, 0, sizeof(ksv_tensor_t));
            o->name = c->outputs[i].name;
            o->datatype = (uint8_t) t->datatype;
            o->ndims = (uint8_t) t->ndims;
            memcpy(o->dims, t->dims, t->ndims * sizeof(int64_t));
            if (batch) {
                o->dims[0] = (int64_t) r->rows;
            }
            o->byte_size = size;
            r->nout++;
        }
    }
}


/* Makes every buffer of slot s big enough for launch l. */
static int
ksv_cuda_slot_reserve(ksv_cuda_engine_t *e, ksv_cuda_slot_t *s,
    size_t in_total, size_t out_total, char *err, size_t errlen)
{
    int          grew = 0;
    uint32_t     i;
    ksv_pool_t  *p[4];
    size_t       need[4];

    p[0] = &s->host_in;   need[0] = in_total;
    p[1] = &s->host_out;  need[1] = out_total;
    p[2] = &s->dev_in;    need[2] = in_total;
    p[3] = &s->dev_out;   need[3] = out_total;

    for (i = 0; i < (e->gpu ? 4u : 2u); i++) {
        if (ksv_pool_reserve(p[i], need[i], &grew, err, errlen) != 0) {
            return -1;
        }
    }

    if (grew && e->warm) {
        /* the request path allocated: worth knowing when tuning */
        fprintf(stderr, "%s: %s: buffer pools grew to %zu bytes in, %zu "
                "out (a launch larger than max_batch_size rows of the "
                "configured shapes)\n", KSV_CUDA_PROG, e->instance_name,
                s->host_in.cap, s->host_out.cap);
    }
    return 0;
}


/*
 * Starts launch l in slot s: pack, copy in, execute, copy out (GPU:
 * enqueued on the streams, CPU: done).  The slot must be free.
 */
static void
ksv_cuda_launch_start(ksv_cuda_batch_t *b, ksv_cuda_slot_t *s,
    ksv_cuda_launch_t *l)
{
    int                        rc;
    char                       err[KSV_CUDA_ERRLEN];
    uint8_t                   *in_base, *out_base;
    uint32_t                   i;
    uint64_t                   t0, t1;
    ksv_cuda_engine_t         *e = b->e;
    const ksv_model_config_t  *c = e->config;

    t0 = ksv_timer_now();

    if (ksv_cuda_launch_plan(b, l) != 0) {
        return;
    }
    if (ksv_cuda_slot_reserve(e, s, l->in_total, l->out_total, err,
                              sizeof(err)) != 0)
    {
        ksv_cuda_launch_fail(b, l, KSV_ERR_INTERNAL, err);
        return;
    }

    ksv_cuda_launch_pack(b, l, s->host_in.ptr);

    in_base = e->gpu ? s->dev_in.ptr : s->host_in.ptr;
    out_base = e->gpu ? s->dev_out.ptr : s->host_out.ptr;
    for (i = 0; i < c->ninputs; i++) {
        if (l->inputs[i].ndims > 0) {
            l->inputs[i].data = in_base + l->in_off[i];
        }
    }
    for (i = 0; i < c->noutputs; i++) {
        l->outputs[i].data = out_base + l->out_off[i];
    }

    t1 = ksv_timer_now();
    b->times.compute_input_ns += t1 - t0;
    err[0] = '\0';

    if (!e->gpu) {
        rc = e->lib->execute_cpu(e->state, l->inputs, c->ninputs, l->outputs,
                                 c->noutputs, err, sizeof(err));
        b->times.compute_infer_ns += ksv_timer_now() - t1;
        if (rc != 0) {
            ksv_cuda_launch_fail(b, l, rc < KSV_ERR_COUNT
                                       ? (uint16_t) rc : KSV_ERR_INTERNAL,
                                 err[0] ? err : "execute_cpu failed");
            return;
        }
        s->launch = l;
        return;
    }

#if KSV_HAVE_CUDA
    {
        cudaError_t  ce;

        /* H2D on its own stream, so it overlaps the previous compute */
        cudaEventRecord(s->h2d_start, e->h2d);
        ce = cudaMemcpyAsync(s->dev_in.ptr, s->host_in.ptr, l->in_total,
                             cudaMemcpyHostToDevice, e->h2d);
        if (ce == cudaSuccess) {
            ce = cudaEventRecord(s->h2d_done, e->h2d);
        }
        if (ce == cudaSuccess) {
            ce = cudaStreamWaitEvent(e->compute, s->h2d_done, 0);
        }
        if (ce == cudaSuccess) {
            ce = cudaEventRecord(s->compute_start, e->compute);
        }
        if (ce != cudaSuccess) {
            ksv_cuda_launch_cuda_error(b, l, ce, "the input copy", NULL);
            s->launch = l;      /* the copy may be in flight: sync first */
            return;
        }

        rc = e->lib->execute(e->state, l->inputs, c->ninputs, l->outputs,
                             c->noutputs, e->compute, err, sizeof(err));
        ce = cudaGetLastError();
        s->launch = l;

        if (ce != cudaSuccess) {
            ksv_cuda_launch_cuda_error(b, l, ce, "execute", err);
            return;
        }
        if (rc != 0) {
            ksv_cuda_launch_fail(b, l, rc < KSV_ERR_COUNT
                                       ? (uint16_t) rc : KSV_ERR_INTERNAL,
                                 err[0] ? err : "execute failed");
            return;
        }

        ce = cudaEventRecord(s->compute_done, e->compute);
        if (ce == cudaSuccess) {
            ce = cudaStreamWaitEvent(e->d2h, s->compute_done, 0);
        }
        if (ce == cudaSuccess) {
            ce = cudaMemcpyAsync(s->host_out.ptr, s->dev_out.ptr,
                                 l->out_total, cudaMemcpyDeviceToHost,
                                 e->d2h);
        }
        if (ce == cudaSuccess) {
            ce = cudaEventRecord(s->d2h_done, e->d2h);
        }
        if (ce != cudaSuccess) {
            ksv_cuda_launch_cuda_error(b, l, ce, "the output copy", NULL);
        }
    }
#endif
}


/* Waits for slot s's launch, then splits its outputs per request. */
static void
ksv_cuda_launch_finish(ksv_cuda_batch_t *b, ksv_cuda_slot_t *s)
{
    uint64_t            t0;
    ksv_cuda_launch_t  *l = s->launch;
    ksv_cuda_engine_t  *e = b->e;

    if (l == NULL) {
        return;
    }
    s->launch = NULL;
    (void) e;

#if KSV_HAVE_CUDA
    if (e->gpu) {
        cudaError_t  ce;
        float        h2d_ms, compute_ms, d2h_ms;

        if (e->fatal) {
            /* nothing can be waited for any more */
            ksv_cuda_launch_fail(b, l, KSV_ERR_INTERNAL, e->fatal_msg);
            return;
        }

        /* whatever was enqueued must be done before the slot is reused */
        ce = l->failed ? cudaStreamSynchronize(e->d2h) : cudaSuccess;
        if (ce == cudaSuccess) {
            ce = l->failed ? cudaStreamSynchronize(e->compute)
                           : cudaEventSynchronize(s->d2h_done);
        }
        if (ce == cudaSuccess && l->failed) {
            ce = cudaStreamSynchronize(e->h2d);
        }
        if (ce != cudaSuccess) {
            /* a kernel faulted (or a copy): reported at the sync */
            ksv_cuda_launch_cuda_error(b, l, ce, "the batch", NULL);
            l->failed = 1;
            return;
        }
        if (l->failed) {
            return;
        }

        if (cudaEventElapsedTime(&h2d_ms, s->h2d_start, s->h2d_done)
                == cudaSuccess
            && cudaEventElapsedTime(&compute_ms, s->compute_start,
                                    s->compute_done) == cudaSuccess
            && cudaEventElapsedTime(&d2h_ms, s->compute_done, s->d2h_done)
                == cudaSuccess)
        {
            b->times.compute_input_ns += (uint64_t) (h2d_ms * 1e6);
            b->times.compute_infer_ns += (uint64_t) (compute_ms * 1e6);
            b->times.compute_output_ns += (uint64_t) (d2h_ms * 1e6);
        } else {
            (void) cudaGetLastError();
        }
    }
#endif

    if (l->failed) {
        return;
    }

    t0 = ksv_timer_now();
    ksv_cuda_launch_unpack(b, l, s->host_out.ptr);
    b->times.compute_output_ns += ksv_timer_now() - t0;
}


/* Runs the launches through the slots, two in flight on the GPU path. */
static void
ksv_cuda_batch_exec(ksv_cuda_batch_t *b, ksv_cuda_launch_t *ls, uint32_t n)
{
    uint32_t            k, from;
    ksv_cuda_slot_t    *s;
    ksv_cuda_engine_t  *e = b->e;

    for (k = 0; k < n; k++) {
        s = &e->slots[k % e->nslots];
        ksv_cuda_launch_finish(b, s);
        if (e->fatal) {
            ksv_cuda_launch_fail(b, &ls[k], KSV_ERR_INTERNAL, e->fatal_msg);
            continue;
        }
        ksv_cuda_launch_start(b, s, &ls[k]);
    }

    /* drain, oldest first */
    from = n > e->nslots ? n - e->nslots : 0;
    for (k = from; k < n; k++) {
        ksv_cuda_launch_finish(b, &e->slots[k % e->nslots]);
    }
}


/* ---- the reply ---------------------------------------------------------- */

static int
ksv_cuda_batch_reply(ksv_cuda_batch_t *b, ksv_frames_t *reply)
{
    uint32_t            i;
    ksv_cuda_req_t     *r;
    ksv_infer_reply_t   ir;

    for (i = 0; i < b->count; i++) {
        r = &b->reqs[i];

        if (r->failed) {
            if (ksv_instance_push_error(reply, r->id, (ksv_status_t) r->code,
                                        r->msg) != 0)
            {
                return -1;
            }
            continue;
        }

        memset(&ir, 0, sizeof(ir));
        ir.model_name = b->e->model_name;
        ir.model_version = b->e->model_version;
        ir.request_id = r->infer.request_id;
        ir.noutputs = r->nout;
        ir.outputs = r->outs;
        if (ksv_instance_push_infer_reply(reply, r->id, &r->infer, &ir,
                                          r->out_frames)
            != 0)
        {
            return -1;
        }
    }
    return 0;
}


int
ksv_cuda_batch_run(ksv_cuda_engine_t *e, ksv_frames_t *in,
    ksv_frames_t *reply)
{
    int                 rc = 1;
    size_t              hdr;
    uint32_t            count, nlaunch, i, j;
    uint64_t            t0, batch_id;
    ksv_cuda_batch_t    b;
    ksv_cuda_launch_t  *ls;

    if (in->n == 0
        || ksv_instance_read_execute(in, KSV_CUDA_PROG, e->instance_name,
                                     &batch_id, &count) != 0)
    {
        return 0;
    }

    memset(&b, 0, sizeof(b));
    b.e = e;
    b.count = count;
    b.reqs = calloc(count ? count : 1, sizeof(ksv_cuda_req_t));
    if (b.reqs == NULL) {
        return -1;
    }
    ksv_arena_init(&b.arena);
    b.alloc = ksv_arena_allocator(&b.arena);

    t0 = ksv_timer_now();
    ksv_cuda_batch_decode(&b, in);
    b.times.compute_input_ns += ksv_timer_now() - t0;

    ls = ksv_cuda_batch_group(&b, &nlaunch);
    if (ls == NULL) {
        rc = -1;
        goto done;
    }
    ksv_cuda_batch_exec(&b, ls, nlaunch);

    /* the header's place; it is encoded once the output time is known */
    hdr = reply->n;
    if (ksv_frames_push(reply) == NULL) {
        rc = -1;
        goto done;
    }
    t0 = ksv_timer_now();
    if (ksv_cuda_batch_reply(&b, reply) != 0) {
        rc = -1;
        goto done;
    }
    b.times.compute_output_ns += ksv_timer_now() - t0;

    if (ksv_instance_set_reply_header(reply, hdr, batch_id, count,
                                      &b.times) != 0)
    {
        rc = -1;
    }

done:

    for (i = 0; i < count; i++) {
        if (b.reqs[i].out_frames != NULL) {
            for (j = 0; j < e->config->noutputs + 1; j++) {
                zmq_msg_close(&b.reqs[i].out_frames[j]);
            }
            free(b.reqs[i].out_frames);
        }
        free(b.reqs[i].msg);
    }
    free(b.reqs);
    ksv_arena_free(&b.arena);

    if (rc != 1) {
        ksv_frames_clear(reply);
    }
    return rc;
}


/* ---- the engine --------------------------------------------------------- */

int
ksv_cuda_engine_init(ksv_cuda_engine_t *e, char *err, size_t errlen)
{
    uint32_t          i;
    ksv_cuda_slot_t  *s;

    e->nslots = e->gpu ? KSV_CUDA_SLOTS : 1;

    for (i = 0; i < KSV_CUDA_SLOTS; i++) {
        s = &e->slots[i];
        ksv_pool_init(&s->host_in, e->gpu ? KSV_POOL_PINNED : KSV_POOL_HOST,
                      "input (host)");
        ksv_pool_init(&s->host_out, e->gpu ? KSV_POOL_PINNED : KSV_POOL_HOST,
                      "output (host)");
        ksv_pool_init(&s->dev_in, KSV_POOL_DEVICE, "input (device)");
        ksv_pool_init(&s->dev_out, KSV_POOL_DEVICE, "output (device)");
    }

    if (!e->gpu) {
        return 0;
    }

#if KSV_HAVE_CUDA
    {
        cudaError_t  ce;

        ce = cudaStreamCreateWithFlags(&e->h2d, cudaStreamNonBlocking);
        if (ce == cudaSuccess) {
            ce = cudaStreamCreateWithFlags(&e->compute,
                                           cudaStreamNonBlocking);
        }
        if (ce == cudaSuccess) {
            ce = cudaStreamCreateWithFlags(&e->d2h, cudaStreamNonBlocking);
        }
        for (i = 0; ce == cudaSuccess && i < e->nslots; i++) {
            s = &e->slots[i];
            ce = cudaEventCreate(&s->h2d_start);
            if (ce == cudaSuccess) {
                ce = cudaEventCreate(&s->h2d_done);
            }
            if (ce == cudaSuccess) {
                ce = cudaEventCreate(&s->compute_start);
            }
            if (ce == cudaSuccess) {
                ce = cudaEventCreate(&s->compute_done);
            }
            if (ce == cudaSuccess) {
                ce = cudaEventCreate(&s->d2h_done);
            }
        }
        if (ce != cudaSuccess) {
            snprintf(err, errlen, "cannot create CUDA streams and events: %s",
                     cudaGetErrorString(ce));
            return -1;
        }
        return 0;
    }
#else
    snprintf(err, errlen, "this instance was built without CUDA");
    return -1;
#endif
}


int
ksv_cuda_engine_warmup(ksv_cuda_engine_t *e, char *err, size_t errlen)
{
    size_t                     in, out, esize;
    uint32_t                   i, batch;
    uint64_t                   rows, count;
    const ksv_io_config_t     *io;
    const ksv_model_config_t  *c = e->config;

    batch = c->max_batch_size > 0;
    rows = batch ? (uint64_t) c->max_batch_size : 1;

    in = 0;
    out = 0;
    for (i = 0; i < c->ninputs + c->noutputs; i++) {
        io = i < c->ninputs ? &c->inputs[i] : &c->outputs[i - c->ninputs];
        esize = ksv_datatype_size((ksv_datatype_t) io->datatype);
        if (esize == 0) {
            snprintf(err, errlen, "%s '%.*s' is %s: the cuda backend does "
                     "not support it", i < c->ninputs ? "input" : "output",
                     (int) io->name.len, io->name.data,
                     ksv_datatype_name((ksv_datatype_t) io->datatype));
            return -1;
        }
        if (ksv_shape_count(io->dims, io->ndims, KSV_CUDA_MAX_BYTES, &count)
            != 0)
        {
            /* -1 dims: sized by the first batches instead */
            e->warm = 1;
            fprintf(stderr, "%s: %s: variable dims, buffer pools grow with "
                    "the first batches\n", KSV_CUDA_PROG, e->instance_name);
            return 0;
        }
        if (i < c->ninputs) {
            in = ksv_pool_align(in + count * rows * esize);
        } else {
            out = ksv_pool_align(out + count * rows * esize);
        }
    }

    for (i = 0; i < e->nslots; i++) {
        if (ksv_cuda_slot_reserve(e, &e->slots[i], in, out, err, errlen)
            != 0)
        {
            return -1;
        }
    }
    e->warm = 1;

    fprintf(stderr, "%s: %s: %u buffer slot%s of %zu bytes in, %zu out "
            "(%s) reserved for %llu rows\n", KSV_CUDA_PROG, e->instance_name,
            e->nslots, e->nslots > 1 ? "s" : "", in, out,
            e->gpu ? "pinned host + device" : "host",
            (unsigned long long) rows);
    return 0;
}


void
ksv_cuda_engine_free(ksv_cuda_engine_t *e)
{
    uint32_t          i;
    ksv_cuda_slot_t  *s;

#if KSV_HAVE_CUDA
    if (e->gpu && !e->fatal) {
        (void) cudaDeviceSynchronize();
    }
#endif

    for (i = 0; i < KSV_CUDA_SLOTS; i++) {
        s = &e->slots[i];
        ksv_pool_free(&s->host_in);
        ksv_pool_free(&s->host_out);
        ksv_pool_free(&s->dev_in);
        ksv_pool_free(&s->dev_out);
#if KSV_HAVE_CUDA
        if (s->h2d_start != NULL) {
            cudaEventDestroy(s->h2d_start);
        }
        if (s->h2d_done != NULL) {
            cudaEventDestroy(s->h2d_done);
        }
        if (s->compute_start != NULL) {
            cudaEventDestroy(s->compute_start);
        }
        if (s->compute_done != NULL) {
            cudaEventDestroy(s->compute_done);
        }
        if (s->d2h_done != NULL) {
            cudaEventDestroy(s->d2h_done);
        }
#endif
    }

#if KSV_HAVE_CUDA
    if (e->h2d != NULL) {
        cudaStreamDestroy(e->h2d);
    }
    if (e->compute != NULL) {
        cudaStreamDestroy(e->compute);
    }
    if (e->d2h != NULL) {
        cudaStreamDestroy(e->d2h);
    }
#endif
}
