
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_TRACE_H_INCLUDED_
#define _NGX_HTTP_KSERVE_TRACE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ksv_infer_request.h"
#include "ksv_trace.h"


/*
 * Triton's trace extension (ksv_trace.h has the settings and the file
 * format; docs/protocol.md the whole story).
 *
 * An inference request meets it three times: ngx_http_kserve_trace_start()
 * once it is parsed (sampled here: KSV_INFER_TRACE for the INFER's flags,
 * else 0; recv_end is when its body was read), _mark() before it is sent
 * (REQUEST_START) and when its answer came (HTTP_SEND_START), _reply()
 * with the instance's timestamps.  The record is written when the
 * request ends (HTTP_SEND_END), whatever the answer was.
 */
uint32_t ngx_http_kserve_trace_start(ngx_http_request_t *r,
    ksv_str_t *model, int64_t version, ksv_str_t *request_id,
    uint64_t recv_end);
void ngx_http_kserve_trace_mark(ngx_http_request_t *r, ksv_trace_point_t p);
void ngx_http_kserve_trace_reply(ngx_http_request_t *r,
    const ksv_infer_reply_t *m);

/*
 * trace_level TENSORS: the inputs once parsed (TENSOR_QUEUE_INPUT; an
 * input in shared memory has no data here) and the outputs as they came
 * back (TENSOR_BACKEND_OUTPUT) join the record.
 */
void ngx_http_kserve_trace_inputs(ngx_http_request_t *r,
    const ksv_infer_t *m, ksv_infer_buf_t *bufs);
void ngx_http_kserve_trace_outputs(ngx_http_request_t *r,
    const ksv_infer_reply_t *m, const void **data, const size_t *sizes);

/* CLOCK_MONOTONIC ns, the instances' clock. */
uint64_t ngx_http_kserve_trace_now(void);

/* GET / POST /v2[/models/{m}]/trace/setting */
ngx_int_t ngx_http_kserve_trace_handler(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri);


extern ngx_module_t  ngx_http_kserve_trace_module;


#endif /* _NGX_HTTP_KSERVE_TRACE_H_INCLUDED_ */
