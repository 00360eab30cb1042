
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_TENSOR_H_INCLUDED_
#define _NGX_HTTP_KSERVE_TENSOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <zmq.h>

#include "ksv_proto.h"


/*
 * Triton's binary tensor extension on the nginx side: the request body
 * as one piece that tensor frames can point into, and replies whose
 * binary outputs are the worker's frames, sent as they are.
 *
 * A body is reference counted: the request holds one reference until
 * its pool goes, each frame handed to zmq_msg_init_data() one more,
 * dropped by libzmq (from its I/O thread) once the bytes are on the
 * socket, which may be after the request is gone.
 */

typedef struct {
    u_char                      *data;
    size_t                       len;
    void                        *base;      /* what to free() / munmap() */
    size_t                       size;
    int                          refs;      /* atomic */
    unsigned                     mapped:1;
} ngx_http_kserve_body_t;


/*
 * The request body in one piece, without copying where it can be
 * helped: a body nginx kept in one memory buffer is taken over from the
 * request pool, a body spooled to one temporary file is mmap()ed; only
 * a body in several pieces is copied, once.  Returns NGX_OK or
 * NGX_ERROR.
 */
ngx_int_t ngx_http_kserve_body_get(ngx_http_request_t *r,
    ngx_http_kserve_body_t **body);

/* One more reference, for a frame pointing into the body. */
void ngx_http_kserve_body_ref(ngx_http_kserve_body_t *body);

/* zmq_msg_init_data() free callback: hint is the body. */
void ngx_http_kserve_body_free_cb(void *data, void *hint);

/*
 * Inference-Header-Content-Length: NGX_OK with *len, NGX_DECLINED when
 * the request has none, NGX_ERROR when its value (in *value) is not a
 * decimal number of bytes, NGX_ABORT when the request has it twice with
 * different values (*value the second).
 */
ngx_int_t ngx_http_kserve_header_length(ngx_http_request_t *r,
    size_t *len, ngx_str_t *value);

/*
 * Sends a reply with binary outputs: the JSON header (w's bytes, freed
 * with the request) and then, for each i with binary[i], frames[i]'s
 * bytes, moved out of the frame (no copy) and released with the
 * request.  Sets Inference-Header-Content-Length and
 * application/octet-stream.
 */
ngx_int_t ngx_http_kserve_send_tensors(ngx_http_request_t *r,
    ksv_writer_t *w, zmq_msg_t *frames, const uint8_t *binary,
    ngx_uint_t n);


#endif /* _NGX_HTTP_KSERVE_TENSOR_H_INCLUDED_ */
