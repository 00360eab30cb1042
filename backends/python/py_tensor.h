/*
 * ngx_kserve Python backend: tensors between ZeroMQ frames and numpy.
 *
 * Inputs reach numpy without copying: the received zmq frame is moved
 * into a small Python object that exports its bytes through the buffer
 * protocol, and numpy.frombuffer() views it, so the frame lives exactly
 * as long as the last array that looks at it.  (A frame whose data is not
 * aligned for its element type is copied once into aligned memory.)
 * BYTES inputs are decoded from Triton's serialization (u32 LE length +
 * bytes per element) into a numpy object array of bytes.
 *
 * Outputs are copied once into a fresh frame (numpy's buffer -> zmq
 * frame); BYTES outputs are serialized the same way as inputs arrive.
 *
 * All functions need the GIL.
 */

#ifndef KSV_PY_TENSOR_H
#define KSV_PY_TENSOR_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <zmq.h>

#include "ksv_proto.h"


/* An error bound for one request: code + malloc'd message. */
typedef struct {
    ksv_status_t     code;
    char            *msg;
} ksv_py_error_t;

void ksv_py_error_set(ksv_py_error_t *e, ksv_status_t code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ksv_py_error_clear(ksv_py_error_t *e);


/*
 * Caches numpy and triton_python_backend_utils objects.  Call once after
 * the interpreter is up and sys.path holds the utils directory.  Returns
 * -1 with a Python exception set.
 */
int ksv_py_tensor_init(void);

/*
 * Builds a pb_utils.Tensor for input `t` whose bytes are in `frame`.  The
 * frame is moved (left empty) on success and on failure alike.  Returns a
 * new reference, or NULL with *e set (INVALID_ARG for data that does not
 * match its description, INTERNAL for Python failures).
 */
PyObject *ksv_py_input_tensor(const ksv_tensor_t *t, zmq_msg_t *frame,
    ksv_py_error_t *e);

/*
 * The name of a pb_utils.Tensor (anything with name()), copied into the
 * arena.  Returns -1 with *e set.
 */
int ksv_py_tensor_name(PyObject *tensor, ksv_arena_t *arena, ksv_str_t *name,
    ksv_py_error_t *e);

/*
 * Converts an output pb_utils.Tensor into *frame (initialized here) and
 * describes it in *t (t->name is set by the caller).  Returns -1 with *e
 * set (INTERNAL) when the datatype or shape cannot be sent; *frame is
 * then not initialized.
 */
int ksv_py_output_tensor(PyObject *tensor, ksv_tensor_t *t, zmq_msg_t *frame,
    ksv_py_error_t *e);

#endif /* KSV_PY_TENSOR_H */
