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

/*
 * Limits on what a request may ask for (each a 400 when exceeded); a
 * zero field means the protocol's own bound (KSV_MAX_TENSORS,
 * KSV_JSON_MAX_DEPTH) or none (elements: only overflow; BYTES elements:
 * only the body).
 */
typedef struct {
    uint32_t         max_inputs;
    uint32_t         max_outputs;
    uint32_t         max_depth;         /* JSON nesting, <= 100 */
    uint64_t         max_elements;      /* per tensor: product of the shape */
    uint64_t         max_bytes_element; /* length of one BYTES element */
} ksv_infer_limits_t;

/* One input's frame: malloc()ed by the parser, or a view of the body. */
typedef struct {
    uint8_t         *data;              /* NULL when the size is 0 */
    uint8_t          owned;             /* free() it, else points into body */
} ksv_infer_buf_t;

/* header_len of a request without Inference-Header-Content-Length */
#define KSV_INFER_JSON_ONLY  ((size_t) -1)

/*
 * ksv_infer_json_parse() with Triton's binary tensor extension and
 * limits.  header_len is the Inference-Header-Content-Length: the JSON
 * is body[0, header_len) and the binary data of the inputs that carry
 * parameters.binary_data_size follow, in the order of "inputs", filling
 * the body exactly (BYTES elements are u32 LE length + bytes, BOOL one
 * byte, other types little-endian).  header_len 0 is a raw request: the
 * whole body is the only input of a one-input model, its shape deduced
 * from the configuration (one -1 dimension at most; a BYTES input is
 * one element), and every output binary.  limits may be NULL.
 *
 * On success *bufs (from a) holds m->ninputs entries; binary inputs are
 * views into body, so body must outlive the frames built from them
 * (nothing is copied but a raw BYTES input, which needs its length
 * prefix).  Each output request's KSV_OUTPUT_BINARY flag is already
 * resolved against binary_data_output, and m->flags has
 * KSV_INFER_ALL_BINARY for binary_data_output and raw requests.
 *
 * jansson allocates from an arena of the call while it runs (see
 * ksv_doc_begin()): one thread at a time may parse.
 */
int ksv_infer_parse(const void *body, size_t len, size_t header_len,
    const ksv_model_config_t *config, const ksv_infer_limits_t *limits,
    ksv_alloc_t *a, ksv_infer_t *m, ksv_infer_buf_t **bufs,
    ksv_infer_error_t *err);

/* Frees the owned buffers of ksv_infer_parse(). */
void ksv_infer_free_bufs(ksv_infer_buf_t *bufs, uint32_t n);

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

/*
 * The same, for a reply with binary outputs: an output with binary[i]
 * set gets "parameters":{"binary_data_size":N} instead of "data"; its
 * bytes (the frame as it is) follow the JSON in the HTTP body, in the
 * order of the outputs.  binary may be NULL (all JSON).
 */
int ksv_infer_reply_header(ksv_writer_t *w, const ksv_infer_reply_t *m,
    const void *const *frames, const size_t *sizes, uint32_t nframes,
    const uint8_t *binary, char *err, size_t errlen);

#endif /* KSV_INFER_JSON_H */
