/*
 * ngx_kserve Python backend: one EXECUTE in, one EXECUTE_REPLY out.
 *
 * The daemon's EXECUTE carries a batch of INFER requests (ksv_proto.h);
 * they become pb_utils.InferenceRequest objects handed to execute() in a
 * single call, as Triton does, and every request gets exactly one answer
 * in the reply, in order: an INFER_REPLY with its output frames or an
 * ERROR.
 *
 *   request that cannot be decoded or whose tensors do not match their
 *   description                         -> ERROR for that request only
 *   execute() raises                    -> INTERNAL for the whole batch
 *   execute() returns the wrong count   -> INTERNAL for the whole batch
 *   response.error() set                -> its code and message
 *   an output that cannot be converted  -> INTERNAL for that request
 *
 * Only the outputs a request names are sent (all when it names none); a
 * named output the model did not produce is left out, as in Triton.
 */

#ifndef KSV_PY_BATCH_H
#define KSV_PY_BATCH_H

#include <stddef.h>

#include <zmq.h>

#include "ksv_instance.h"
#include "py_runtime.h"


typedef struct {
    ksv_py_model_t  *model;
    ksv_str_t        model_name;        /* echoed in INFER_REPLY */
    ksv_str_t        model_version;
} ksv_py_batch_ctx_t;

/*
 * Runs the EXECUTE in `in` and appends the EXECUTE_REPLY to `reply`.
 * Input frames are moved out of `in` (the caller still clears it).
 * Returns 1 when there is a reply to send, 0 when the message was not an
 * EXECUTE at all (logged, nothing to answer), -1 when out of memory.
 */
int ksv_py_batch_run(ksv_py_batch_ctx_t *ctx, ksv_frames_t *in,
    ksv_frames_t *reply);

#endif /* KSV_PY_BATCH_H */
