/*
 * ngx_kserve Python backend: one EXECUTE in, one EXECUTE_REPLY out
 * (see py_batch.h).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "ksv_json.h"
#include "ksv_proto.h"
#include "py_batch.h"
#include "py_runtime.h"
#include "py_tensor.h"


/* One request of the batch. */
typedef struct {
    uint64_t          id;
    ksv_infer_t       infer;
    PyObject         *request;          /* pb_utils.InferenceRequest */
    int               failed;
    ksv_py_error_t    err;
} ksv_py_slot_t;


/* ---- requests ------------------------------------------------------------- */

static void
ksv_py_slot_fail(ksv_py_slot_t *s, ksv_status_t code, const char *msg)
{
    s->failed = 1;
    ksv_py_error_set(&s->err, code, "%s", msg);
}


/* The request's parameters as the JSON object Triton hands to models. */
static PyObject *
ksv_py_params_json(const ksv_infer_t *in)
{
    char           num[32];
    size_t         len;
    uint8_t       *buf;
    uint32_t       i;
    PyObject      *s;
    ksv_writer_t   w;
    ksv_param_t   *p;

    ksv_writer_init(&w);
    ksv_put_u8(&w, '{');
    for (i = 0; i < in->nparams; i++) {
        p = &in->params[i];
        if (i > 0) {
            ksv_put_u8(&w, ',');
        }
        ksv_json_put_str(&w, p->key);
        ksv_put_u8(&w, ':');
        switch (p->type) {
        case KSV_PARAM_BOOL:
            ksv_json_put_raw(&w, p->i ? "true" : "false");
            break;
        case KSV_PARAM_INT:
            ksv_json_put_int(&w, p->i);
            break;
        case KSV_PARAM_DOUBLE:
            if (isfinite(p->d)) {
                snprintf(num, sizeof(num), "%.17g", p->d);
                ksv_json_put_raw(&w, num);
            } else {
                ksv_json_put_raw(&w, "null");
            }
            break;
        default:
            ksv_json_put_str(&w, p->s);
        }
    }
    ksv_put_u8(&w, '}');

    if (w.failed) {
        ksv_writer_free(&w);
        return PyErr_NoMemory();
    }
    buf = ksv_writer_detach(&w, &len);
    s = PyUnicode_DecodeUTF8((const char *) buf, (Py_ssize_t) len, "replace");
    free(buf);
    return s;
}


/*
 * Builds the InferenceRequest of slot `s`, whose input frames start at
 * `frames` (moved out).
 */
static void
ksv_py_slot_build(ksv_py_batch_ctx_t *ctx, ksv_py_slot_t *s,
    zmq_msg_t *frames)
{
    char      *text;
    uint32_t   i;
    PyObject  *inputs, *tensor, *rid, *names, *name, *params, *timeout;

    inputs = PyList_New(s->infer.ninputs);
    if (inputs == NULL) {
        goto python_error;
    }
    for (i = 0; i < s->infer.ninputs; i++) {
        tensor = ksv_py_input_tensor(&s->infer.inputs[i], &frames[i],
                                     &s->err);
        if (tensor == NULL) {
            s->failed = 1;
            Py_DECREF(inputs);
            return;
        }
        PyList_SET_ITEM(inputs, i, tensor);
    }

    rid = PyUnicode_DecodeUTF8(s->infer.request_id.data,
                               s->infer.request_id.len, "replace");
    names = PyList_New(s->infer.noutputs);
    for (i = 0; names != NULL && i < s->infer.noutputs; i++) {
        name = PyUnicode_DecodeUTF8(s->infer.outputs[i].name.data,
                                    s->infer.outputs[i].name.len, "replace");
        if (name == NULL) {
            Py_CLEAR(names);
            break;
        }
        PyList_SET_ITEM(names, i, name);
    }
    params = ksv_py_params_json(&s->infer);
    timeout = PyLong_FromUnsignedLongLong(
                  (unsigned long long) s->infer.timeout_ms * 1000);

    if (rid != NULL && names != NULL && params != NULL && timeout != NULL) {
        s->request = PyObject_CallFunctionObjArgs(ctx->model->make_request,
                                                  inputs, rid, names, params,
                                                  timeout,
                                                  ctx->model->model_name,
                                                  ctx->model->model_version,
                                                  NULL);
    }
    Py_DECREF(inputs);
    Py_XDECREF(rid);
    Py_XDECREF(names);
    Py_XDECREF(params);
    Py_XDECREF(timeout);

    if (s->request != NULL) {
        /* the instance's own id: is_cancelled() asks about it */
        rid = PyLong_FromUnsignedLongLong((unsigned long long) s->id);
        if (rid != NULL
            && PyObject_SetAttrString(s->request, "_kserve_id", rid) == 0)
        {
            Py_DECREF(rid);
            return;
        }
        Py_XDECREF(rid);
        Py_CLEAR(s->request);
    }

python_error:

    text = ksv_py_exception_text();
    ksv_py_slot_fail(s, KSV_ERR_INTERNAL, text != NULL ? text : "?");
    free(text);
}


/*
 * Splits the EXECUTE into slots.  A header that cannot be decoded loses
 * the frame boundaries of everything after it, so those requests fail
 * too; each still gets its place in the reply.
 */
static void
ksv_py_batch_decode(ksv_py_batch_ctx_t *ctx, ksv_frames_t *in,
    ksv_py_slot_t *slots, uint32_t count, ksv_alloc_t *alloc)
{
    size_t          idx = 1;
    uint32_t        i;
    zmq_msg_t      *frames;
    const char     *why;
    ksv_py_slot_t  *s;

    for (i = 0; i < count; i++) {
        s = &slots[i];

        why = ksv_instance_next_request(in, &idx, alloc, &s->id, &s->infer,
                                        &frames);
        if (why != NULL) {
            ksv_py_slot_fail(s, KSV_ERR_INTERNAL, why);
            continue;
        }
        ksv_py_slot_build(ctx, s, frames);
    }

    if (idx < in->n) {
        fprintf(stderr, KSV_PY_PROG ": %s: %zu extra frames after an "
                "EXECUTE of %u requests, ignored\n",
                ctx->model->instance_name, in->n - idx, count);
    }
}


/* ---- responses -------------------------------------------------------- */

/* response.error() set: its code (if a valid one) and message. */
static void
ksv_py_slot_model_error(ksv_py_slot_t *s, PyObject *error)
{
    long         code = KSV_ERR_INTERNAL;
    char        *text;
    PyObject    *obj, *msg;
    const char  *m;

    obj = PyObject_CallMethod(error, "code", NULL);
    if (obj != NULL && PyLong_Check(obj)) {
        code = PyLong_AsLong(obj);
    }
    Py_XDECREF(obj);
    PyErr_Clear();
    if (code < 0 || code >= KSV_ERR_COUNT) {
        code = KSV_ERR_INTERNAL;
    }

    msg = PyObject_CallMethod(error, "message", NULL);
    if (msg == NULL || !PyUnicode_Check(msg)) {
        PyErr_Clear();
        Py_XDECREF(msg);
        msg = PyObject_Str(error);
    }
    m = msg != NULL ? PyUnicode_AsUTF8(msg) : NULL;
    if (m == NULL) {
        text = ksv_py_exception_text();
        ksv_py_slot_fail(s, (ksv_status_t) code, text ? text : "?");
        free(text);
    } else {
        ksv_py_slot_fail(s, (ksv_status_t) code, m);
    }
    Py_XDECREF(msg);
}


/*
 * Converts one InferenceResponse and appends INFER_REPLY + outputs to
 * `reply`, or marks the slot failed (the caller then appends an ERROR).
 * Returns -1 only when out of memory.
 */
static int
ksv_py_slot_reply(ksv_py_batch_ctx_t *ctx, ksv_py_slot_t *s, PyObject *resp,
    ksv_arena_t *arena, ksv_frames_t *reply)
{
    int                 rc = 0;
    char               *text;
    PyObject           *error, *list, *seq, **items;
    zmq_msg_t          *frames;
    Py_ssize_t          i, n;
    ksv_str_t           name;
    uint32_t            nout, j;
    ksv_tensor_t       *outs;
    ksv_infer_reply_t   r;

    if (PyObject_IsInstance(resp, ctx->model->response_type) != 1) {
        PyErr_Clear();
        ksv_py_error_set(&s->err, KSV_ERR_INTERNAL,
                         "execute() returned a %s where an "
                         "InferenceResponse was expected",
                         Py_TYPE(resp)->tp_name);
        s->failed = 1;
        return 0;
    }

    error = PyObject_CallMethod(resp, "error", NULL);
    if (error == NULL) {
        goto python_error;
    }
    if (error != Py_None) {
        ksv_py_slot_model_error(s, error);
        Py_DECREF(error);
        return 0;
    }
    Py_DECREF(error);

    list = PyObject_CallMethod(resp, "output_tensors", NULL);
    seq = list != NULL
          ? PySequence_Fast(list, "output_tensors() must be a list") : NULL;
    Py_XDECREF(list);
    if (seq == NULL) {
        goto python_error;
    }

    n = PySequence_Fast_GET_SIZE(seq);
    items = PySequence_Fast_ITEMS(seq);
    if (n > KSV_MAX_TENSORS) {
        Py_DECREF(seq);
        ksv_py_error_set(&s->err, KSV_ERR_INTERNAL,
                         "the response has %zd outputs (at most %d)", n,
                         KSV_MAX_TENSORS);
        s->failed = 1;
        return 0;
    }

    outs = ksv_arena_alloc(arena, (n ? n : 1) * sizeof(ksv_tensor_t));
    frames = malloc((n ? n : 1) * sizeof(zmq_msg_t));
    if (outs == NULL || frames == NULL) {
        Py_DECREF(seq);
        free(frames);
        return -1;
    }

    nout = 0;
    for (i = 0; i < n; i++) {
        if (ksv_py_tensor_name(items[i], arena, &name, &s->err) != 0) {
            s->failed = 1;
            break;
        }
        if (!ksv_instance_output_wanted(&s->infer, name)) {
            continue;
        }
        memset(&outs[nout], 0, sizeof(ksv_tensor_t));
        outs[nout].name = name;
        if (ksv_py_output_tensor(items[i], &outs[nout], &frames[nout],
                                 &s->err) != 0)
        {
            s->failed = 1;
            break;
        }
        nout++;
    }
    Py_DECREF(seq);

    if (!s->failed) {
        memset(&r, 0, sizeof(r));
        r.model_name = ctx->model_name;
        r.model_version = ctx->model_version;
        r.request_id = s->infer.request_id;
        r.noutputs = nout;
        r.outputs = outs;
        rc = ksv_instance_push_infer_reply(reply, s->id, &s->infer, &r,
                                           frames);
    }

    for (j = 0; j < nout; j++) {
        zmq_msg_close(&frames[j]);
    }
    free(frames);
    return rc;

python_error:

    text = ksv_py_exception_text();
    ksv_py_slot_fail(s, KSV_ERR_INTERNAL, text != NULL ? text : "?");
    free(text);
    return 0;
}


/* Calls execute() on the slots that reached it and answers them. */
static int
ksv_py_batch_execute(ksv_py_batch_ctx_t *ctx, ksv_py_slot_t *slots,
    uint32_t count, PyObject **responses)
{
    char        *text;
    uint32_t     i;
    PyObject    *list, *res, *seq;
    Py_ssize_t   n = 0, k;

    *responses = NULL;

    for (i = 0; i < count; i++) {
        n += slots[i].failed ? 0 : 1;
    }
    if (n == 0) {
        return 0;
    }

    list = PyList_New(n);
    if (list == NULL) {
        return -1;
    }
    for (i = 0, k = 0; i < count; i++) {
        if (!slots[i].failed) {
            Py_INCREF(slots[i].request);
            PyList_SET_ITEM(list, k++, slots[i].request);
        }
    }

    res = PyObject_CallOneArg(ctx->model->execute, list);
    Py_DECREF(list);

    seq = NULL;
    text = NULL;
    if (res == NULL) {
        char  *exc = ksv_py_exception_text();

        if (asprintf(&text, "Failed to process the request(s) for model "
                     "'%s', message: %s", ctx->model->instance_name,
                     exc != NULL ? exc : "?") < 0)
        {
            text = NULL;
        }
        free(exc);

    } else if (res == Py_None) {
        if (asprintf(&text, "execute() returned None; a list of %zd "
                     "InferenceResponse objects is expected (decoupled "
                     "models are not supported)", n) < 0)
        {
            text = NULL;
        }

    } else {
        seq = PySequence_Fast(res, "");
        if (seq == NULL) {
            PyErr_Clear();
            if (asprintf(&text, "execute() must return a list of "
                         "InferenceResponse objects, not %s",
                         Py_TYPE(res)->tp_name) < 0)
            {
                text = NULL;
            }

        } else if (PySequence_Fast_GET_SIZE(seq) != n) {
            if (asprintf(&text, "Number of InferenceResponse objects does "
                         "not match number of InferenceRequest objects: "
                         "%zd requests, %zd responses", n,
                         PySequence_Fast_GET_SIZE(seq)) < 0)
            {
                text = NULL;
            }
            Py_CLEAR(seq);
        }
    }
    Py_XDECREF(res);

    if (seq == NULL) {
        for (i = 0; i < count; i++) {
            if (!slots[i].failed) {
                ksv_py_slot_fail(&slots[i], KSV_ERR_INTERNAL,
                                 text != NULL ? text : "execute() failed");
            }
        }
        free(text);
        return 0;
    }

    *responses = seq;
    return 0;
}


int
ksv_py_batch_run(ksv_py_batch_ctx_t *ctx, ksv_frames_t *in,
    ksv_frames_t *reply)
{
    int              rc = 1;
    size_t           hdr;
    uint32_t         count, i;
    uint64_t         batch_id, t0, t1, t2;
    PyObject        *responses, **items;
    Py_ssize_t       k;
    ksv_alloc_t      alloc;
    ksv_arena_t      arena;
    ksv_py_slot_t   *slots, *s;
    ksv_exec_times_t times;

    if (in->n == 0
        || ksv_instance_read_execute(in, KSV_PY_PROG,
                                     ctx->model->instance_name, &batch_id,
                                     &count) != 0)
    {
        return 0;
    }

    slots = calloc(count ? count : 1, sizeof(ksv_py_slot_t));
    if (slots == NULL) {
        return -1;
    }
    ksv_arena_init(&arena);
    alloc = ksv_arena_allocator(&arena);

    /* Triton's three phases, timed for the whole batch: building the
     * request objects, execute(), converting its responses */
    t0 = ksv_timer_now();
    ksv_py_batch_decode(ctx, in, slots, count, &alloc);
    t1 = ksv_timer_now();

    if (ksv_py_batch_execute(ctx, slots, count, &responses) != 0) {
        rc = -1;
        goto done;
    }
    t2 = ksv_timer_now();

    /* the header's place; it is encoded once the output time is known */
    hdr = reply->n;
    if (ksv_frames_push(reply) == NULL) {
        rc = -1;
        goto done;
    }

    items = responses != NULL ? PySequence_Fast_ITEMS(responses) : NULL;
    for (i = 0, k = 0; i < count; i++) {
        s = &slots[i];
        if (!s->failed && items != NULL) {
            if (ksv_py_slot_reply(ctx, s, items[k++], &arena, reply) != 0) {
                rc = -1;
                break;
            }
            if (!s->failed) {
                continue;
            }
        }

        if (ksv_instance_push_error(reply, s->id, s->err.code, s->err.msg)
            != 0)
        {
            rc = -1;
            break;
        }
    }
    Py_XDECREF(responses);

    if (rc == 1) {
        times.compute_input_ns = t1 - t0;
        times.compute_infer_ns = t2 - t1;
        times.compute_output_ns = ksv_timer_now() - t2;

        if (ksv_instance_set_reply_header(reply, hdr, batch_id, count,
                                          &times) != 0)
        {
            rc = -1;
        }
    }

done:

    for (i = 0; i < count; i++) {
        Py_XDECREF(slots[i].request);
        ksv_py_error_clear(&slots[i].err);
    }
    free(slots);
    ksv_arena_free(&arena);

    if (rc != 1) {
        ksv_frames_clear(reply);
    }
    return rc;
}
