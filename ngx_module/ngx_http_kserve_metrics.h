
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_METRICS_H_INCLUDED_
#define _NGX_HTTP_KSERVE_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"


/*
 * The gateway's own counters live in one shared memory zone, so every
 * nginx worker process adds to the same numbers with atomic adds (no
 * lock); the worker's model statistics are asked for at each scrape.
 */

/* Adds the zone once per configuration (kserve_pass, kserve_metrics). */
ngx_int_t ngx_http_kserve_metrics_zone(ngx_conf_t *cf,
    ngx_http_kserve_main_conf_t *kmcf);

/* Registers the log phase handler that counts finished requests. */
ngx_int_t ngx_http_kserve_metrics_init(ngx_conf_t *cf);

/* An inference request was sent to the worker / was answered. */
void ngx_http_kserve_metrics_inflight(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx);
void ngx_http_kserve_metrics_answered(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx);

/* The content handler of kserve_metrics locations. */
ngx_int_t ngx_http_kserve_metrics_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_KSERVE_METRICS_H_INCLUDED_ */
