
/*
 * Copyright (C) ngx_kserve authors
 *
 * $kserve_param_NAME, $kserve_request_id, $kserve_model_version: an
 * inference request's own content as nginx variables; see
 * ngx_http_kserve_variables.h.  The scan itself is nginx-free
 * (ksv_request_fields.c); this file finds the request's JSON (the body
 * that ngx_http_kserve_module.c keeps in the request's context, or its
 * binary header) and hands the values over.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ngx_http_kserve_variables.h"
#include "ngx_http_kserve_tensor.h"
#include "ksv_request_fields.h"


#define NGX_HTTP_KSERVE_PARAM_PREFIX  "kserve_param_"


static ksv_request_fields_t *ngx_http_kserve_fields(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_text(ngx_http_request_t *r, const char *v,
    size_t len, ngx_str_t *value);
static ngx_int_t ngx_http_kserve_param_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *vv, uintptr_t data);
static ngx_int_t ngx_http_kserve_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *vv, uintptr_t data);
static ngx_int_t ngx_http_kserve_model_version_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *vv, uintptr_t data);
static void ngx_http_kserve_variable_set(ngx_http_variable_value_t *vv,
    ngx_int_t rc, ngx_str_t *value);


static ngx_http_variable_t  ngx_http_kserve_vars[] = {

    { ngx_string(NGX_HTTP_KSERVE_PARAM_PREFIX), NULL,
      ngx_http_kserve_param_variable, 0,
      NGX_HTTP_VAR_PREFIX|NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kserve_request_id"), NULL,
      ngx_http_kserve_request_id_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kserve_model_version"), NULL,
      ngx_http_kserve_model_version_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_kserve_variables_add(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_kserve_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_kserve_request_param(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    size_t                 len;
    const char            *v;
    ksv_request_fields_t  *f;

    f = ngx_http_kserve_fields(r);

    if (f == NULL || f->parameters == NULL
        || ksv_json_member(f->parameters, f->parameters_len,
                           (const char *) name->data, name->len, &v, &len)
           != 0)
    {
        return NGX_DECLINED;
    }

    return ngx_http_kserve_text(r, v, len, value);
}


ngx_int_t
ngx_http_kserve_request_id(ngx_http_request_t *r, ngx_str_t *value)
{
    ksv_request_fields_t  *f;

    f = ngx_http_kserve_fields(r);

    if (f == NULL || f->id == NULL) {
        return NGX_DECLINED;
    }

    return ngx_http_kserve_text(r, f->id, f->id_len, value);
}


/*
 * The request's top-level fields, scanned once; NULL when it has no
 * body (yet) or its JSON is not an object.
 */

static ksv_request_fields_t *
ngx_http_kserve_fields(ngx_http_request_t *r)
{
    size_t                  len;
    ngx_int_t               rc;
    ngx_str_t               value;
    ngx_http_kserve_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);

    if (ctx == NULL || ctx->body == NULL) {
        return NULL;
    }

    if (ctx->fields_scanned) {
        return ctx->fields_ok ? &ctx->fields : NULL;
    }

    ctx->fields_scanned = 1;

    /* binary tensor data: only the JSON header; 0 is a raw request */

    len = ctx->body->len;
    rc = ngx_http_kserve_header_length(r, &len, &value);

    if (rc == NGX_ERROR || rc == NGX_ABORT
        || (rc == NGX_OK && len > ctx->body->len))
    {
        return NULL;
    }

    if (rc == NGX_DECLINED) {
        len = ctx->body->len;
    }

    if (len == 0
        || ksv_request_fields((const char *) ctx->body->data, len,
                              &ctx->fields)
           != 0)
    {
        return NULL;
    }

    ctx->fields_ok = 1;

    return &ctx->fields;
}


static ngx_int_t
ngx_http_kserve_text(ngx_http_request_t *r, const char *v, size_t len,
    ngx_str_t *value)
{
    u_char   *p;
    int64_t   n;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    n = ksv_json_text(v, len, (char *) p);

    if (n < 0) {
        return NGX_DECLINED;
    }

    value->data = p;
    value->len = (size_t) n;

    return NGX_OK;
}


/* data: the variable's whole name, lower case, "kserve_param_NAME" */

static ngx_int_t
ngx_http_kserve_param_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *vv, uintptr_t data)
{
    ngx_str_t  *var = (ngx_str_t *) data;

    ngx_int_t  rc;
    ngx_str_t  name, value;

    name.data = var->data + sizeof(NGX_HTTP_KSERVE_PARAM_PREFIX) - 1;
    name.len = var->len - (sizeof(NGX_HTTP_KSERVE_PARAM_PREFIX) - 1);

    rc = ngx_http_kserve_request_param(r, &name, &value);

    ngx_http_kserve_variable_set(vv, rc, &value);

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_kserve_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *vv, uintptr_t data)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    rc = ngx_http_kserve_request_id(r, &value);

    ngx_http_kserve_variable_set(vv, rc, &value);

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_kserve_model_version_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *vv, uintptr_t data)
{
    ngx_str_t               value;
    ngx_http_kserve_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);

    if (ctx == NULL) {
        ngx_http_kserve_variable_set(vv, NGX_DECLINED, NULL);
        return NGX_OK;
    }

    value = ctx->model_version.len ? ctx->model_version : ctx->uri.version;

    ngx_http_kserve_variable_set(vv, value.len ? NGX_OK : NGX_DECLINED,
                                 &value);

    return NGX_OK;
}


static void
ngx_http_kserve_variable_set(ngx_http_variable_value_t *vv, ngx_int_t rc,
    ngx_str_t *value)
{
    if (rc != NGX_OK) {
        vv->not_found = 1;
        return;
    }

    vv->len = value->len;
    vv->data = value->data;
    vv->valid = 1;
    vv->no_cacheable = 1;
    vv->not_found = 0;
}
