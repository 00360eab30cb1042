
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_GZIP_H_INCLUDED_
#define _NGX_HTTP_KSERVE_GZIP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_tensor.h"


/*
 * Compressed inference bodies (ksv_gzip.h says what and why).
 *
 * ngx_http_kserve_gzip_body(): a request body whose Content-Encoding is
 * gzip or deflate is inflated, at most limit bytes of it, in steps of a
 * few MB, each on its own turn of the event loop, so a large or hostile
 * body never holds up the nginx worker for long.  Returns NGX_OK with
 * *kb the body to parse (the inflated one; the same for every later call
 * of this request, e.g. a routed name's fallback), NGX_AGAIN while the
 * inflation goes on (resume(r) is called when it ends: call this again
 * from there), NGX_ERROR, or the HTTP status of the client's mistake
 * (400: not a valid stream, or past the limit, found as soon as the
 * limit is crossed; 501: another encoding, with "Accept-Encoding: gzip,
 * deflate" added to the answer) with the reason in err, NUL-terminated.
 *
 * Replies are compressed by ngx_http_kserve_gzip_module's filter when
 * the request's Accept-Encoding prefers gzip or deflate (Triton's choice
 * of inference replies only): ngx_http_kserve_gzip_reply() marks the
 * request for it.
 */
ngx_int_t ngx_http_kserve_gzip_body(ngx_http_request_t *r,
    ngx_http_kserve_body_t **kb, size_t limit, u_char *err, size_t size,
    ngx_http_client_body_handler_pt resume);

/* Compress this request's 200 answer if its Accept-Encoding asks. */
ngx_int_t ngx_http_kserve_gzip_reply(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_kserve_gzip_module;


#endif /* _NGX_HTTP_KSERVE_GZIP_H_INCLUDED_ */
