/*
 * ngx_kserve: KServe v2 inference requests, JSON and Triton's binary
 * tensor extension (nginx-free, so it can be unit-tested and fuzzed on
 * its own).
 *
 * A request body is parsed and checked against the model's configuration
 * before anything reaches an instance: every failure a client can cause
 * is reported here as INVALID_ARG (or UNSUPPORTED) with a message in
 * Triton's words, never as an instance-side error.
 *
 * Each input becomes one buffer that is the input's raw frame as it is:
 * values little-endian, BOOL one byte, BYTES elements a u32 little-endian
 * length followed by the bytes.
 */

#ifndef KSV_INFER_REQUEST_H
#define KSV_INFER_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


#define KSV_JSON_MAX_DEPTH  100


typedef struct {
    ksv_status_t     code;
    char             message[512];
} ksv_infer_error_t;

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
 * Parses body into m for the model described by config.  header_len is
 * the Inference-Header-Content-Length: the JSON is body[0, header_len)
 * and the binary data of the inputs that carry
 * parameters.binary_data_size follow, in the order of "inputs", filling
 * the body exactly; KSV_INFER_JSON_ONLY when the header is absent (the
 * whole body is JSON).  header_len 0 is a raw request: the whole body is
 * the only input of a one-input model, its shape deduced from the
 * configuration (one -1 dimension at most; a BYTES input is one
 * element), and every output binary.  limits may be NULL.
 *
 * Strings and arrays of m come from a, except tensor names, which point
 * into config (encode m before config may go away); m->model_name,
 * model_version and timeout_ms are left for the caller (zeroed).
 *
 * On success returns 0 and *bufs (from a) holds m->ninputs entries;
 * binary inputs are views into body, so body must outlive the frames
 * built from them (nothing is copied but a raw BYTES input, which needs
 * its length prefix); the others are malloc()ed (hand them to
 * zmq_msg_init_data() with ksv_infer_free_cb).  Each output request's
 * KSV_OUTPUT_BINARY flag is already resolved against binary_data_output,
 * and m->flags has KSV_INFER_ALL_BINARY for binary_data_output and raw
 * requests.  On failure returns -1 with err filled and no buffer left
 * to free.
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

/* zmq_msg_init_data() free callback for an owned buffer. */
void ksv_infer_free_cb(void *data, void *hint);

#endif /* KSV_INFER_REQUEST_H */
