/*
 * ngx_kserve Python backend: tensors between ZeroMQ frames and numpy
 * (see py_tensor.h).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "ksv_datatype.h"
#include "ksv_proto.h"
#include "py_runtime.h"
#include "py_tensor.h"


/*
 * A received frame exposed through the buffer protocol.  It owns the
 * zmq message (or an aligned copy of its bytes) and is the base object
 * of the numpy arrays that view it.  The buffer is writable: the frame
 * belongs to this process alone, and models that modify an input in
 * place (x += 1) work as they do under Triton.
 */
typedef struct {
    PyObject_HEAD
    zmq_msg_t    msg;
    void        *copy;
    void        *data;
    size_t       size;
} ksv_py_frame_t;


static int ksv_py_frame_getbuffer(PyObject *obj, Py_buffer *view, int flags);
static void ksv_py_frame_dealloc(PyObject *obj);


static PyBufferProcs  ksv_py_frame_as_buffer = {
    .bf_getbuffer = ksv_py_frame_getbuffer,
    .bf_releasebuffer = NULL,
};

static PyTypeObject  ksv_py_frame_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kserve_instance.Frame",
    .tp_basicsize = sizeof(ksv_py_frame_t),
    .tp_dealloc = ksv_py_frame_dealloc,
    .tp_as_buffer = &ksv_py_frame_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A ZeroMQ frame holding tensor bytes.",
};


/* Objects looked up once (ksv_py_tensor_init). */
static PyObject  *ksv_np_frombuffer;
static PyObject  *ksv_np_ascontiguousarray;
static PyObject  *ksv_np_array;
static PyObject  *ksv_np_ndarray;
static PyObject  *ksv_np_dtypes[KSV_TYPE_COUNT];
static PyObject  *ksv_pb_tensor;             /* pb_utils._tensor */
static PyObject  *ksv_str_reshape;
static PyObject  *ksv_str_name;
static PyObject  *ksv_str_triton_dtype;
static PyObject  *ksv_str_as_numpy;


/* ---- errors --------------------------------------------------------------- */

void
ksv_py_error_set(ksv_py_error_t *e, ksv_status_t code, const char *fmt, ...)
{
    va_list  ap;

    free(e->msg);
    e->code = code;
    va_start(ap, fmt);
    if (vasprintf(&e->msg, fmt, ap) < 0) {
        e->msg = NULL;
    }
    va_end(ap);
}


void
ksv_py_error_clear(ksv_py_error_t *e)
{
    free(e->msg);
    e->msg = NULL;
    e->code = KSV_ERR_UNKNOWN;
}


/* Turns the pending Python exception into *e, prefixed with `what`. */
static void
ksv_py_error_from_exception(ksv_py_error_t *e, ksv_status_t code,
    const char *what, ksv_str_t name)
{
    char  *text = ksv_py_exception_text();

    ksv_py_error_set(e, code, "%s '%.*s': %s", what, (int) name.len,
                     name.data, text != NULL ? text : "unknown error");
    free(text);
}


/* ---- the frame type --------------------------------------------------------- */

static int
ksv_py_frame_getbuffer(PyObject *obj, Py_buffer *view, int flags)
{
    ksv_py_frame_t  *f = (ksv_py_frame_t *) obj;

    return PyBuffer_FillInfo(view, obj, f->data, (Py_ssize_t) f->size, 0,
                             flags);
}


static void
ksv_py_frame_dealloc(PyObject *obj)
{
    ksv_py_frame_t  *f = (ksv_py_frame_t *) obj;

    zmq_msg_close(&f->msg);
    free(f->copy);
    Py_TYPE(obj)->tp_free(obj);
}


/*
 * Moves `msg` into a new frame object.  `align` is the element size: data
 * that is not aligned to it (small messages live inside zmq_msg_t, large
 * ones may be slices of a receive buffer) is copied once so that numpy
 * and libraries downstream of it see aligned arrays.
 */
static PyObject *
ksv_py_frame_new(zmq_msg_t *msg, size_t align)
{
    size_t           cap;
    ksv_py_frame_t  *f;

    f = PyObject_New(ksv_py_frame_t, &ksv_py_frame_type);
    if (f == NULL) {
        zmq_msg_close(msg);
        zmq_msg_init(msg);
        return NULL;
    }

    zmq_msg_init(&f->msg);
    zmq_msg_move(&f->msg, msg);
    f->copy = NULL;
    f->data = zmq_msg_data(&f->msg);
    f->size = zmq_msg_size(&f->msg);

    if (align > 1 && f->size > 0 && (uintptr_t) f->data % align != 0) {
        cap = (f->size + 63) & ~(size_t) 63;
        f->copy = aligned_alloc(64, cap);
        if (f->copy == NULL) {
            Py_DECREF(f);
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(f->copy, f->data, f->size);
        f->data = f->copy;
        zmq_msg_close(&f->msg);
        zmq_msg_init(&f->msg);
    }

    return (PyObject *) f;
}


/* ---- setup ------------------------------------------------------------------- */

int
ksv_py_tensor_init(void)
{
    int        i;
    PyObject  *np, *pb;

    if (PyType_Ready(&ksv_py_frame_type) < 0) {
        return -1;
    }

    np = PyImport_ImportModule("numpy");
    if (np == NULL) {
        return -1;
    }
    ksv_np_frombuffer = PyObject_GetAttrString(np, "frombuffer");
    ksv_np_ascontiguousarray = PyObject_GetAttrString(np, "ascontiguousarray");
    ksv_np_array = PyObject_GetAttrString(np, "array");
    ksv_np_ndarray = PyObject_GetAttrString(np, "ndarray");

    for (i = 1; i < KSV_TYPE_COUNT; i++) {
        ksv_np_dtypes[i] = PyObject_CallMethod(np, "dtype", "s",
                                               ksv_datatype_numpy(i));
        if (ksv_np_dtypes[i] == NULL) {
            break;
        }
    }
    Py_DECREF(np);

    if (ksv_np_frombuffer == NULL || ksv_np_ascontiguousarray == NULL
        || ksv_np_array == NULL || ksv_np_ndarray == NULL
        || i < KSV_TYPE_COUNT)
    {
        return -1;
    }

    pb = PyImport_ImportModule("triton_python_backend_utils");
    if (pb == NULL) {
        return -1;
    }
    ksv_pb_tensor = PyObject_GetAttrString(pb, "_tensor");
    Py_DECREF(pb);
    if (ksv_pb_tensor == NULL) {
        return -1;
    }

    ksv_str_reshape = PyUnicode_InternFromString("reshape");
    ksv_str_name = PyUnicode_InternFromString("name");
    ksv_str_triton_dtype = PyUnicode_InternFromString("triton_dtype");
    ksv_str_as_numpy = PyUnicode_InternFromString("as_numpy");
    if (ksv_str_reshape == NULL || ksv_str_name == NULL
        || ksv_str_triton_dtype == NULL || ksv_str_as_numpy == NULL)
    {
        return -1;
    }

    return 0;
}


/* ---- inputs ------------------------------------------------------------------ */

static PyObject *
ksv_py_shape_tuple(const int64_t *dims, uint8_t ndims)
{
    uint8_t    i;
    PyObject  *shape, *d;

    shape = PyTuple_New(ndims);
    if (shape == NULL) {
        return NULL;
    }
    for (i = 0; i < ndims; i++) {
        d = PyLong_FromLongLong(dims[i]);
        if (d == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, i, d);
    }
    return shape;
}


/*
 * Decodes `count` serialized BYTES elements into a 1-D object array.
 * Returns NULL with *e set; a Python exception is never left pending.
 */
static PyObject *
ksv_py_bytes_decode(const ksv_tensor_t *t, const uint8_t *p, size_t size,
    uint64_t count, ksv_py_error_t *e)
{
    size_t     off = 0;
    uint32_t   len;
    uint64_t   i;
    PyObject  *list, *item, *arr;

    list = PyList_New((Py_ssize_t) count);
    if (list == NULL) {
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "input", t->name);
        return NULL;
    }

    for (i = 0; i < count; i++) {
        if (size - off < 4) {
            goto malformed;
        }
        len = (uint32_t) p[off] | (uint32_t) p[off + 1] << 8
              | (uint32_t) p[off + 2] << 16 | (uint32_t) p[off + 3] << 24;
        off += 4;
        if (size - off < len) {
            goto malformed;
        }
        item = PyBytes_FromStringAndSize((const char *) p + off, len);
        if (item == NULL) {
            Py_DECREF(list);
            ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "input",
                                        t->name);
            return NULL;
        }
        off += len;
        PyList_SET_ITEM(list, (Py_ssize_t) i, item);
    }

    if (off != size) {
        goto malformed;
    }

    /* bytes are scalars to numpy: this is a 1-D array of `count` objects */
    arr = PyObject_CallFunctionObjArgs(ksv_np_array, list,
                                       ksv_np_dtypes[KSV_TYPE_BYTES], NULL);
    Py_DECREF(list);
    if (arr == NULL) {
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "input", t->name);
    }
    return arr;

malformed:

    Py_DECREF(list);        /* unset slots are NULL: list_dealloc skips them */
    ksv_py_error_set(e, KSV_ERR_INVALID_ARG,
                     "input '%.*s': BYTES data does not hold %llu "
                     "length-prefixed elements in %zu bytes",
                     (int) t->name.len, t->name.data,
                     (unsigned long long) count, size);
    return NULL;
}


PyObject *
ksv_py_input_tensor(const ksv_tensor_t *t, zmq_msg_t *frame, ksv_py_error_t *e)
{
    size_t     size, esize;
    uint64_t   count, limit;
    PyObject  *arr, *frame_obj, *shape, *shaped, *name, *dtype, *tensor;

    size = zmq_msg_size(frame);
    esize = ksv_datatype_size(t->datatype);

    if (t->datatype == KSV_TYPE_INVALID || t->datatype >= KSV_TYPE_COUNT) {
        ksv_py_error_set(e, KSV_ERR_INVALID_ARG,
                         "input '%.*s': invalid datatype %u",
                         (int) t->name.len, t->name.data, t->datatype);
        goto fail;
    }

    if (t->byte_size != size) {
        ksv_py_error_set(e, KSV_ERR_INVALID_ARG,
                         "input '%.*s': byte_size %llu does not match its "
                         "data (%zu bytes)", (int) t->name.len, t->name.data,
                         (unsigned long long) t->byte_size, size);
        goto fail;
    }

    /* every element takes at least esize bytes (4 for BYTES): bounding
     * the product by that keeps a hostile shape from overflowing (at
     * least 1, so that partial products of an empty shape like [1, 0]
     * pass; the size checks below still apply) */
    limit = size / (esize > 0 ? esize : 4);
    if (limit == 0) {
        limit = 1;
    }
    if (ksv_shape_count(t->dims, t->ndims, limit, &count) != 0
        || (esize > 0 && count * esize != size))
    {
        ksv_py_error_set(e, KSV_ERR_INVALID_ARG,
                         "input '%.*s': shape does not match the %zu bytes "
                         "of %s data", (int) t->name.len, t->name.data, size,
                         ksv_datatype_name(t->datatype));
        goto fail;
    }

    if (t->datatype == KSV_TYPE_BYTES) {
        arr = ksv_py_bytes_decode(t, zmq_msg_data(frame), size, count, e);
        zmq_msg_close(frame);
        zmq_msg_init(frame);
        if (arr == NULL) {
            return NULL;
        }

    } else {
        frame_obj = ksv_py_frame_new(frame, esize);
        if (frame_obj == NULL) {
            ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "input",
                                        t->name);
            return NULL;
        }
        arr = PyObject_CallFunctionObjArgs(ksv_np_frombuffer, frame_obj,
                                           ksv_np_dtypes[t->datatype], NULL);
        Py_DECREF(frame_obj);
        if (arr == NULL) {
            ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "input",
                                        t->name);
            return NULL;
        }
    }

    shape = ksv_py_shape_tuple(t->dims, t->ndims);
    shaped = shape != NULL
             ? PyObject_CallMethodOneArg(arr, ksv_str_reshape, shape) : NULL;
    Py_XDECREF(shape);
    Py_DECREF(arr);

    name = PyUnicode_DecodeUTF8(t->name.data, t->name.len, "replace");
    dtype = PyLong_FromLong(t->datatype);
    tensor = NULL;
    if (shaped != NULL && name != NULL && dtype != NULL) {
        tensor = PyObject_CallFunctionObjArgs(ksv_pb_tensor, name, shaped,
                                              dtype, NULL);
    }
    Py_XDECREF(shaped);
    Py_XDECREF(name);
    Py_XDECREF(dtype);

    if (tensor == NULL) {
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "input", t->name);
    }
    return tensor;

fail:

    zmq_msg_close(frame);
    zmq_msg_init(frame);
    return NULL;
}


/* ---- outputs ------------------------------------------------------------------ */

int
ksv_py_tensor_name(PyObject *tensor, ksv_arena_t *arena, ksv_str_t *name,
    ksv_py_error_t *e)
{
    char        *copy;
    PyObject    *obj;
    Py_ssize_t   len;
    const char  *s;

    obj = PyObject_CallMethodNoArgs(tensor, ksv_str_name);
    if (obj == NULL) {
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "output",
                                    ksv_str_lit("?"));
        return -1;
    }

    s = PyUnicode_Check(obj) ? PyUnicode_AsUTF8AndSize(obj, &len) : NULL;
    if (s == NULL || len == 0 || len > KSV_MAX_STRING) {
        PyErr_Clear();
        Py_DECREF(obj);
        ksv_py_error_set(e, KSV_ERR_INTERNAL,
                         "an output tensor has no valid name (a non-empty "
                         "str is expected)");
        return -1;
    }

    copy = ksv_arena_alloc(arena, (size_t) len + 1);
    if (copy == NULL) {
        Py_DECREF(obj);
        ksv_py_error_set(e, KSV_ERR_INTERNAL, "out of memory");
        return -1;
    }
    memcpy(copy, s, (size_t) len + 1);
    Py_DECREF(obj);

    name->data = copy;
    name->len = (uint32_t) len;
    return 0;
}


/*
 * Serializes an object array (or bytes_ array) into *frame: per element
 * a u32 LE length and the bytes; str elements as UTF-8, anything else as
 * str(obj) in UTF-8, as Triton's serialize_byte_tensor does.
 */
static int
ksv_py_bytes_encode(PyObject *arr, ksv_tensor_t *t, zmq_msg_t *frame,
    ksv_py_error_t *e)
{
    char        *buf;
    size_t       total;
    uint8_t     *p;
    PyObject    *flat, *list, *item, *conv, **elts;
    Py_ssize_t   i, n, len;

    flat = PyObject_CallMethod(arr, "ravel", NULL);
    list = flat != NULL ? PyObject_CallMethod(flat, "tolist", NULL) : NULL;
    Py_XDECREF(flat);
    if (list == NULL || !PyList_Check(list)) {
        Py_XDECREF(list);
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "output", t->name);
        return -1;
    }

    /* replace every element by a bytes object, summing the sizes */
    n = PyList_GET_SIZE(list);
    elts = ((PyListObject *) list)->ob_item;
    total = 0;
    for (i = 0; i < n; i++) {
        item = elts[i];
        if (PyBytes_Check(item)) {
            conv = NULL;
        } else if (PyUnicode_Check(item)) {
            conv = PyUnicode_AsUTF8String(item);
        } else if (PyByteArray_Check(item)) {
            conv = PyBytes_FromObject(item);
        } else {
            conv = PyObject_Str(item);
            if (conv != NULL) {
                Py_SETREF(conv, PyUnicode_AsUTF8String(conv));
            }
        }
        if (conv != NULL) {
            PyList_SetItem(list, i, conv);      /* steals, drops the old */
        } else if (!PyBytes_Check(item)) {
            Py_DECREF(list);
            ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "output",
                                        t->name);
            return -1;
        }
        len = PyBytes_GET_SIZE(elts[i]);
        if ((uint64_t) len > UINT32_MAX) {
            Py_DECREF(list);
            ksv_py_error_set(e, KSV_ERR_INTERNAL,
                             "output '%.*s': element %zd is larger than 4 GiB",
                             (int) t->name.len, t->name.data, i);
            return -1;
        }
        total += 4 + (size_t) len;
    }

    if (zmq_msg_init_size(frame, total) != 0) {
        Py_DECREF(list);
        ksv_py_error_set(e, KSV_ERR_INTERNAL, "output '%.*s': out of memory",
                         (int) t->name.len, t->name.data);
        return -1;
    }

    p = zmq_msg_data(frame);
    for (i = 0; i < n; i++) {
        PyBytes_AsStringAndSize(elts[i], &buf, &len);
        p[0] = (uint8_t) len;
        p[1] = (uint8_t) (len >> 8);
        p[2] = (uint8_t) (len >> 16);
        p[3] = (uint8_t) (len >> 24);
        memcpy(p + 4, buf, (size_t) len);
        p += 4 + len;
    }

    Py_DECREF(list);
    t->byte_size = total;
    return 0;
}


int
ksv_py_output_tensor(PyObject *tensor, ksv_tensor_t *t, zmq_msg_t *frame,
    ksv_py_error_t *e)
{
    int          rc;
    long         dt;
    size_t       esize;
    uint64_t     count;
    PyObject    *obj, *arr, *shape, *dtype, *contig;
    Py_buffer    view;
    Py_ssize_t   i, ndims;

    /* datatype */
    obj = PyObject_CallMethodNoArgs(tensor, ksv_str_triton_dtype);
    if (obj == NULL) {
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "output", t->name);
        return -1;
    }
    dt = PyLong_Check(obj) ? PyLong_AsLong(obj) : -1;
    Py_DECREF(obj);
    if (dt <= KSV_TYPE_INVALID || dt >= KSV_TYPE_COUNT) {
        PyErr_Clear();
        ksv_py_error_set(e, KSV_ERR_INTERNAL,
                         "output '%.*s': the tensor has no valid Triton "
                         "datatype", (int) t->name.len, t->name.data);
        return -1;
    }
    t->datatype = (uint8_t) dt;

    /* the array and its shape */
    arr = PyObject_CallMethodNoArgs(tensor, ksv_str_as_numpy);
    if (arr == NULL) {
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "output", t->name);
        return -1;
    }
    rc = PyObject_IsInstance(arr, ksv_np_ndarray);
    if (rc != 1) {
        PyErr_Clear();
        Py_DECREF(arr);
        ksv_py_error_set(e, KSV_ERR_INTERNAL,
                         "output '%.*s': as_numpy() did not return a numpy "
                         "array", (int) t->name.len, t->name.data);
        return -1;
    }

    shape = PyObject_GetAttrString(arr, "shape");
    if (shape == NULL || !PyTuple_Check(shape)) {
        Py_XDECREF(shape);
        Py_DECREF(arr);
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "output", t->name);
        return -1;
    }
    ndims = PyTuple_GET_SIZE(shape);
    if (ndims > KSV_MAX_DIMS) {
        Py_DECREF(shape);
        Py_DECREF(arr);
        ksv_py_error_set(e, KSV_ERR_INTERNAL,
                         "output '%.*s': %zd dimensions (at most %d)",
                         (int) t->name.len, t->name.data, ndims, KSV_MAX_DIMS);
        return -1;
    }
    t->ndims = (uint8_t) ndims;
    for (i = 0; i < ndims; i++) {
        t->dims[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, i));
    }
    Py_DECREF(shape);
    if (PyErr_Occurred()) {
        Py_DECREF(arr);
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "output", t->name);
        return -1;
    }

    if (dt == KSV_TYPE_BYTES) {
        rc = ksv_py_bytes_encode(arr, t, frame, e);
        Py_DECREF(arr);
        return rc;
    }

    /* fixed-size elements: the array's dtype must be the datatype's */
    dtype = PyObject_GetAttrString(arr, "dtype");
    rc = dtype != NULL
         ? PyObject_RichCompareBool(dtype, ksv_np_dtypes[dt], Py_EQ) : -1;
    if (rc != 1) {
        obj = dtype != NULL ? PyObject_Str(dtype) : NULL;
        PyErr_Clear();
        ksv_py_error_set(e, KSV_ERR_INTERNAL,
                         "output '%.*s': numpy dtype %s cannot be sent as %s",
                         (int) t->name.len, t->name.data,
                         obj != NULL ? PyUnicode_AsUTF8(obj) : "?",
                         ksv_datatype_name(dt));
        Py_XDECREF(obj);
        Py_XDECREF(dtype);
        Py_DECREF(arr);
        return -1;
    }
    Py_DECREF(dtype);

    contig = PyObject_CallOneArg(ksv_np_ascontiguousarray, arr);
    Py_DECREF(arr);
    if (contig == NULL
        || PyObject_GetBuffer(contig, &view, PyBUF_C_CONTIGUOUS) != 0)
    {
        Py_XDECREF(contig);
        ksv_py_error_from_exception(e, KSV_ERR_INTERNAL, "output", t->name);
        return -1;
    }

    esize = ksv_datatype_size(dt);
    if (ksv_shape_count(t->dims, t->ndims, UINT64_MAX, &count) != 0
        || count > SIZE_MAX / esize
        || count * esize != (size_t) view.len)
    {
        ksv_py_error_set(e, KSV_ERR_INTERNAL,
                         "output '%.*s': %zd bytes do not match its shape "
                         "as %s", (int) t->name.len, t->name.data, view.len,
                         ksv_datatype_name(dt));
        PyBuffer_Release(&view);
        Py_DECREF(contig);
        return -1;
    }

    if (zmq_msg_init_size(frame, (size_t) view.len) != 0) {
        ksv_py_error_set(e, KSV_ERR_INTERNAL, "output '%.*s': out of memory",
                         (int) t->name.len, t->name.data);
        PyBuffer_Release(&view);
        Py_DECREF(contig);
        return -1;
    }
    if (view.len > 0) {
        memcpy(zmq_msg_data(frame), view.buf, (size_t) view.len);
    }
    t->byte_size = (uint64_t) view.len;

    PyBuffer_Release(&view);
    Py_DECREF(contig);
    return 0;
}
