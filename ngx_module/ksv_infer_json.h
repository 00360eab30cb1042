/*
 * ngx_kserve: KServe v2 JSON inference requests and responses
 * (nginx-free, so it can be unit-tested and fuzzed on its own).
 *
 * A request body is parsed and checked against the model's configuration
 * before anything reaches the worker: every failure a client can cause is
 * reported here as INVALID_ARG (or UNSUPPORTED) with a message in
 * Triton's words, never as a worker-side error.
 *
 * Each input's values are written, little-endian, into one malloc()ed
 * buffer that becomes the input's raw frame as it is (hand it to
 * zmq_msg_init_data with ksv_infer_json_free_cb).  BYTES elements are a
 * u32 little-endian length followed by the bytes.
 */

#ifndef KSV_INFER_JSON_H
#define KSV_INFER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


#define KSV_JSON_MAX_DEPTH  100


typedef struct {
    ksv_status_t     code;
    char             message[512];
} ksv_infer_error_t;


/*
 * Parses body into m for the model described by config.  Strings and
 * arrays of m come from a, except tensor names, which point into config
 * (encode m before config may go away); m->model_name, model_version
 * and timeout_ms are left for the caller (zeroed).  On success returns 0 and *data
 * (from a) holds m->ninputs buffers, data[i] of m->inputs[i].byte_size
 * bytes (NULL when that is 0); the caller owns them.  On failure returns
 * -1 with err filled and no buffer left to free.
 */
int ksv_infer_json_parse(const void *body, size_t len,
    const ksv_model_config_t *config, ksv_alloc_t *a, ksv_infer_t *m,
    uint8_t ***data, ksv_infer_error_t *err);

/* Frees the buffers that ksv_infer_json_parse() returned. */
void ksv_infer_json_free_data(uint8_t **data, uint32_t n);

/* zmq_msg_init_data() free callback for those buffers. */
void ksv_infer_json_free_cb(void *data, void *hint);


/*
 * Renders an INFER_REPLY and its output frames as Triton's JSON response:
 * {"model_name","model_version","id"?,"parameters"?,"outputs":[{"name",
 * "datatype","shape","data":[...]}]}, data always flat.  Returns -1 with
 * err filled when the reply does not describe its frames (wrong count,
 * sizes, malformed BYTES); w then holds garbage.
 */
int ksv_infer_json_reply(ksv_writer_t *w, const ksv_infer_reply_t *m,
    const void *const *frames, const size_t *sizes, uint32_t nframes,
    char *err, size_t errlen);

#endif /* KSV_INFER_JSON_H */
