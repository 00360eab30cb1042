
/*
 * Copyright (C) ngx_kserve authors
 *
 * Every answer is a KServe error: what nginx itself rejects (its
 * "special responses": a body over client_max_body_size, a bad chunked
 * body, an internal error, a method nginx refuses, ...) is answered as
 * {"error": "..."} with application/json instead of nginx's HTML page.
 *
 * Under a kserve location this is always so: the module needs nothing
 * in nginx.conf.  What nginx rejects before a location is chosen (a
 * request line or header too large: 414, 494; a request with both
 * Content-Length and Transfer-Encoding: 400) belongs to a server, so it
 * is shaped only where the server says "kserve_errors on;".  A user's
 * own error_page is left alone; 408 (a client too slow) has no answer at
 * all, nginx closes the connection.
 *
 * How: nginx sends its page through the filters.  The header filter
 * holds the header back; the body filter reads the page's title (the
 * reason nginx gives), builds the JSON, sets the headers and sends both.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ksv_json_write.h"


typedef struct {
    ngx_flag_t                   enable;
} ngx_http_kserve_errors_srv_conf_t;


typedef struct {
    ngx_uint_t                   status;    /* as nginx set it */
    unsigned                     held:1;    /* the header waits for us */
    unsigned                     sent:1;
} ngx_http_kserve_errors_ctx_t;


static ngx_int_t ngx_http_kserve_errors_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_errors_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_kserve_errors_wanted(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_errors_send(ngx_http_request_t *r,
    ngx_http_kserve_errors_ctx_t *ctx, ngx_chain_t *in);
static size_t ngx_http_kserve_errors_message(ngx_http_request_t *r,
    ngx_uint_t *status, ngx_chain_t *in, u_char *buf, size_t size);
static void *ngx_http_kserve_errors_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_kserve_errors_merge_srv_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_kserve_errors_init(ngx_conf_t *cf);


static ngx_command_t  ngx_http_kserve_errors_commands[] = {

    { ngx_string("kserve_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_kserve_errors_srv_conf_t, enable),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kserve_errors_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kserve_errors_init,           /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_kserve_errors_create_srv_conf, /* create server configuration */
    ngx_http_kserve_errors_merge_srv_conf, /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kserve_errors_module = {
    NGX_MODULE_V1,
    &ngx_http_kserve_errors_module_ctx,    /* module context */
    ngx_http_kserve_errors_commands,       /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

static ngx_str_t  ngx_http_kserve_errors_type =
    ngx_string("application/json");


static ngx_int_t
ngx_http_kserve_errors_header_filter(ngx_http_request_t *r)
{
    ngx_http_kserve_errors_ctx_t  *ctx;

    if (ngx_http_kserve_errors_wanted(r) != NGX_OK) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_errors_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->status = r->headers_out.status;
    ngx_http_set_ctx(r, ctx, ngx_http_kserve_errors_module);

    if (r->header_only) {
        /* no page follows: the reason is the status' */
        return ngx_http_kserve_errors_send(r, ctx, NULL);
    }

    ctx->held = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_errors_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                   *cl;
    ngx_http_kserve_errors_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_errors_module);

    if (ctx == NULL || r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx->sent) {
        /* nginx's page is replaced: its buffers are taken as sent */

        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
        }

        return NGX_OK;
    }

    if (!ctx->held) {
        return ngx_http_next_body_filter(r, in);
    }

    return ngx_http_kserve_errors_send(r, ctx, in);
}


/*
 * nginx's own error response (ngx_http_special_response_handler() sets
 * err_status; the module's answers never do), in a kserve location or a
 * server with kserve_errors on, and not a user's error_page.
 */

static ngx_int_t
ngx_http_kserve_errors_wanted(ngx_http_request_t *r)
{
    ngx_http_kserve_loc_conf_t         *klcf;
    ngx_http_kserve_errors_srv_conf_t  *escf;

    if (r->err_status < NGX_HTTP_BAD_REQUEST || r->error_page
        || r != r->main
        || r->headers_out.status < NGX_HTTP_BAD_REQUEST)
    {
        return NGX_DECLINED;
    }

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    if (klcf != NULL && (klcf->backend != NULL || klcf->metrics)) {
        return NGX_OK;
    }

    escf = ngx_http_get_module_srv_conf(r, ngx_http_kserve_errors_module);

    if (escf != NULL && escf->enable == 1) {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_kserve_errors_send(ngx_http_request_t *r,
    ngx_http_kserve_errors_ctx_t *ctx, ngx_chain_t *in)
{
    u_char        msg[NGX_MAX_ERROR_STR], *data;
    size_t        len, n;
    ngx_int_t     rc;
    ngx_uint_t    status;
    ngx_buf_t    *b;
    ngx_chain_t   out, *cl;
    ksv_writer_t  w;

    status = ctx->status;
    n = ngx_http_kserve_errors_message(r, &status, in, msg, sizeof(msg));

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
    }

    ksv_writer_init(&w);
    ksv_json_error(&w, (char *) msg, n);

    data = ngx_http_kserve_writer_detach(r, &w, &len);
    if (data == NULL) {
        return NGX_ERROR;
    }

    ctx->sent = 1;

    r->err_status = status;
    r->headers_out.status = status;
    r->headers_out.status_line.len = 0;
    r->headers_out.content_type = ngx_http_kserve_errors_type;
    r->headers_out.content_type_len = ngx_http_kserve_errors_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/*
 * The reason: Triton's words where Triton has them, else the one nginx
 * put in its page's <title> ("413 Request Entity Too Large").  A body
 * over client_max_body_size is Triton's 400.
 */

static size_t
ngx_http_kserve_errors_message(ngx_http_request_t *r, ngx_uint_t *statusp,
    ngx_chain_t *in, u_char *buf, size_t size)
{
    off_t                      length;
    u_char                    *p, *end, *t;
    ngx_buf_t                 *b;
    ngx_uint_t                 status;
    ngx_http_core_loc_conf_t  *clcf;

    status = *statusp;

    if (status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        *statusp = NGX_HTTP_BAD_REQUEST;

        /* the header's value: discarding the body counts _n down */

        length = (r->headers_in.content_length != NULL)
                 ? ngx_atoof(r->headers_in.content_length->value.data,
                             r->headers_in.content_length->value.len)
                 : -1;

        if (length >= 0) {
            p = ngx_snprintf(buf, size, "request body of %O bytes exceeds "
                             "the maximum allowed value of %O bytes. Use "
                             "client_max_body_size to increase the limit.",
                             length, clcf->client_max_body_size);
        } else {
            p = ngx_snprintf(buf, size, "request body exceeds the maximum "
                             "allowed value of %O bytes. Use "
                             "client_max_body_size to increase the limit.",
                             clcf->client_max_body_size);
        }

        return p - buf;
    }

    if (status == NGX_HTTP_BAD_REQUEST
        && r->headers_in.content_length != NULL
        && r->headers_in.transfer_encoding != NULL)
    {
        p = ngx_snprintf(buf, size, "Bad Request: a request may not have "
                         "both Content-Length and Transfer-Encoding");
        return p - buf;
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        p = ngx_snprintf(buf, size, "Method Not Allowed");
        return p - buf;
    }

    /* "<head><title>400 Request Header Or Cookie Too Large</title>" */

    b = (in != NULL) ? in->buf : NULL;

    if (b != NULL && b->pos != NULL && !b->in_file) {
        t = ngx_strlcasestrn(b->pos, b->last, (u_char *) "<title>", 7 - 1);

        if (t != NULL) {
            t += 7;
            end = ngx_strlcasestrn(t, b->last, (u_char *) "</title>", 8 - 1);

            while (t < end && *t != ' ') {
                t++;
            }

            if (end != NULL && t < end && end - t - 1 < (ssize_t) size) {
                t++;
                return ngx_cpymem(buf, t, end - t) - buf;
            }
        }
    }

    p = ngx_snprintf(buf, size, "HTTP error %ui", status);

    return p - buf;
}


static void *
ngx_http_kserve_errors_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_kserve_errors_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_errors_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_kserve_errors_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_kserve_errors_srv_conf_t *prev = parent;
    ngx_http_kserve_errors_srv_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kserve_errors_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_kserve_errors_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_kserve_errors_body_filter;

    return NGX_OK;
}
