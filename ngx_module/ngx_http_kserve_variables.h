
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_VARIABLES_H_INCLUDED_
#define _NGX_HTTP_KSERVE_VARIABLES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * Variables from an inference request's own content, for kserve_route's
 * rule and sticky, kserve_pipeline's conditions and any nginx directive
 * that takes variables (log_format, add_header, map):
 *
 *   $kserve_param_NAME     the top-level request parameter NAME
 *                          ("parameters": {"NAME": ...}) of the JSON
 *                          body, or of the JSON header of a binary
 *                          request: a string's characters, a number,
 *                          true or false as written, an object or an
 *                          array as JSON; not found when absent or null
 *   $kserve_request_id     the request's "id", the same way
 *   $kserve_model_version  the version the URI names (/versions/N), or
 *                          once the INFER is sent, the version serving it
 *
 * They are known once the body is read (an inference request's routed
 * name is resolved after that, so rules and sticky keys see them) and
 * are not found before, or for a request without a body.  The body is
 * scanned for "id" and "parameters" the first time one is asked for,
 * and never when none is (ksv_request_fields.c).  nginx lowercases
 * variable names, and a name is letters, digits and '_' only:
 * $kserve_param_NAME finds the parameter of that name in lower case.
 */

/* Registers the variables (preconfiguration). */
ngx_int_t ngx_http_kserve_variables_add(ngx_conf_t *cf);

/*
 * The same values for C callers: NGX_OK with *value (from the request
 * pool), NGX_DECLINED when there is none (yet), NGX_ERROR.
 */
ngx_int_t ngx_http_kserve_request_param(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
ngx_int_t ngx_http_kserve_request_id(ngx_http_request_t *r,
    ngx_str_t *value);


#endif /* _NGX_HTTP_KSERVE_VARIABLES_H_INCLUDED_ */
