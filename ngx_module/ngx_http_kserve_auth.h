
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_AUTH_H_INCLUDED_
#define _NGX_HTTP_KSERVE_AUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * API keys: a set of keys read from a file at configuration time (so
 * `nginx -s reload` rereads it), and the header a client presents one
 * in.  With the Authorization header the value is "Bearer <key>"; with
 * any other header it is the key itself.  Keys are compared in constant
 * time and never logged.
 */

typedef struct {
    ngx_array_t                 *keys;      /* of ngx_str_t */
    ngx_str_t                    file;
} ngx_http_kserve_keys_t;


/* Reads the key file (one key a line, '#' comments); NULL on error. */
ngx_http_kserve_keys_t *ngx_http_kserve_keys_load(ngx_conf_t *cf,
    ngx_str_t *file);

/*
 * Checks the request's key against keys.  header is the header's name
 * in lower case ("authorization" for Bearer).  Returns NGX_OK, or
 * NGX_DECLINED when the key is missing or not one of keys.
 */
ngx_int_t ngx_http_kserve_keys_check(ngx_http_request_t *r,
    ngx_http_kserve_keys_t *keys, ngx_str_t *header);

/* The key the request presents in header (not checked), or NULL. */
ngx_str_t *ngx_http_kserve_keys_presented(ngx_http_request_t *r,
    ngx_str_t *header, ngx_str_t *value);


#endif /* _NGX_HTTP_KSERVE_AUTH_H_INCLUDED_ */
