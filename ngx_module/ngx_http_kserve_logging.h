
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_LOGGING_H_INCLUDED_
#define _NGX_HTTP_KSERVE_LOGGING_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * GET / POST /v2/logging (Triton's logging extension): answers, or reads
 * the body and sends LOG to the location's kserve-worker.  Returns what
 * a content handler returns.
 */
ngx_int_t ngx_http_kserve_logging_handler(ngx_http_request_t *r);

/* A kserve location's request begins: log_verbose_level >= 2 turns on
 * nginx's http debug log for it. */
void ngx_http_kserve_logging_request(ngx_http_request_t *r);

/* The log_verbose_level every nginx worker shares (0: none). */
ngx_uint_t ngx_http_kserve_log_verbose(void);


extern ngx_module_t  ngx_http_kserve_logging_module;


#endif /* _NGX_HTTP_KSERVE_LOGGING_H_INCLUDED_ */
