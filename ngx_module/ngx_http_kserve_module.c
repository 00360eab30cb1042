
/*
 * Copyright (C) ngx_kserve authors
 *
 * KServe v2 (Open Inference Protocol) / Triton HTTP in nginx: directives,
 * URI dispatch and the endpoint handlers.  Requests are validated here
 * and forwarded over ZeroMQ (ngx_http_kserve_transport.c): inference to
 * an instance of the model version, statistics to kserve-worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ngx_http_kserve_gzip.h"
#include "ngx_http_kserve_logging.h"
#include "ngx_http_kserve_trace.h"
#include "ngx_http_kserve_metrics.h"
#include "ngx_http_kserve_route.h"
#include "ngx_http_kserve_variables.h"
#include "ngx_http_kserve_redis.h"
#include "ngx_http_kserve_tensor.h"
#include "ngx_http_kserve_shm.h"
#include "ksv_infer_reply.h"
#include "ksv_infer_request.h"
#include "ksv_json.h"
#include "ksv_json_write.h"


static ngx_int_t ngx_http_kserve_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_segment(u_char **p, u_char *end,
    ngx_str_t *seg);
static ngx_int_t ngx_http_kserve_parse_repository(u_char *p, u_char *end,
    ngx_http_kserve_uri_t *uri);
static ngx_int_t ngx_http_kserve_parse_uri(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri);
static ngx_int_t ngx_http_kserve_server_metadata(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_health_ready(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b);
static ngx_int_t ngx_http_kserve_model_ready(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri);
static ngx_int_t ngx_http_kserve_find(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri,
    ksv_model_status_t **model);
static ngx_int_t ngx_http_kserve_model_json(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri);
static ngx_int_t ngx_http_kserve_model_stats(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri);
static void ngx_http_kserve_stats_done(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes);
static void ngx_http_kserve_infer_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_infer(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_valid_name(ngx_str_t *name);
static ngx_int_t ngx_http_kserve_keep_outputs(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, ksv_infer_t *m);
static ngx_uint_t ngx_http_kserve_output_binary(ngx_http_kserve_ctx_t *ctx,
    ksv_str_t *name);
static void ngx_http_kserve_infer_done(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes);
static ngx_int_t ngx_http_kserve_infer_reply(ngx_http_request_t *r,
    zmq_msg_t *frames, ngx_uint_t nframes);
static ngx_int_t ngx_http_kserve_send_empty(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_http_kserve_free(void *data);
static void *ngx_http_kserve_pool_alloc(void *ctx, size_t size);

static void *ngx_http_kserve_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_kserve_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_kserve_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_kserve_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_kserve_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_kserve_location(ngx_conf_t *cf,
    ngx_http_kserve_loc_conf_t *klcf, ngx_http_handler_pt handler);
static char *ngx_http_kserve_api_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_kserve_json_depth(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_kserve_lowcase(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_kserve_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_kserve_init_process(ngx_cycle_t *cycle);
static void ngx_http_kserve_exit_process(ngx_cycle_t *cycle);


static ngx_conf_post_t  ngx_http_kserve_json_depth_post =
    { ngx_http_kserve_json_depth };
static ngx_conf_post_t  ngx_http_kserve_lowcase_post =
    { ngx_http_kserve_lowcase };


static ngx_command_t  ngx_http_kserve_commands[] = {

    { ngx_string("kserve_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_kserve_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kserve_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_kserve_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kserve_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, timeout),
      NULL },

    { ngx_string("kserve_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("kserve_index_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, index_interval),
      NULL },

    { ngx_string("kserve_max_inputs"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, max_inputs),
      NULL },

    { ngx_string("kserve_max_outputs"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, max_outputs),
      NULL },

    { ngx_string("kserve_max_json_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, max_json_depth),
      &ngx_http_kserve_json_depth_post },

    { ngx_string("kserve_max_tensor_elements"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, max_elements),
      NULL },

    { ngx_string("kserve_max_bytes_element"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, max_bytes_element),
      NULL },

    { ngx_string("kserve_api_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_kserve_api_keys,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kserve_api_key_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, api_key_header),
      &ngx_http_kserve_lowcase_post },

    { ngx_string("kserve_server_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, server_name),
      NULL },

    { ngx_string("kserve_api_key_health"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, api_key_health),
      NULL },

    { ngx_string("kserve_shared_memory"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kserve_loc_conf_t, shared_memory),
      NULL },

    { ngx_string("kserve_route"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_kserve_route_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kserve_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_kserve_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kserve_module_ctx = {
    ngx_http_kserve_variables_add,         /* preconfiguration */
    ngx_http_kserve_postconfiguration,     /* postconfiguration */

    ngx_http_kserve_create_main_conf,      /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_kserve_create_loc_conf,       /* create location configuration */
    ngx_http_kserve_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_kserve_module = {
    NGX_MODULE_V1,
    &ngx_http_kserve_module_ctx,           /* module context */
    ngx_http_kserve_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_kserve_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_kserve_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_kserve_json_type = ngx_string("application/json");
static ngx_str_t  ngx_http_kserve_bearer = ngx_string("Bearer realm=\"kserve\"");


static ngx_int_t
ngx_http_kserve_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_kserve_uri_t        uri;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_pick_t      *pick;
    ngx_http_kserve_backend_t   *b;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    b = klcf->backend;

    ngx_http_kserve_logging_request(r);

    rc = ngx_http_kserve_parse_uri(r, &uri);

    /* API key first: nothing about the server for a client without one */

    if (klcf->api_keys != NULL
        && (klcf->api_key_health || rc != NGX_OK
            || (uri.endpoint != NGX_HTTP_KSERVE_LIVE
                && uri.endpoint != NGX_HTTP_KSERVE_READY))
        && ngx_http_kserve_keys_check(r, klcf->api_keys,
                                      &klcf->api_key_header)
           != NGX_OK)
    {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "kserve: no valid API key in \"%V\"",
                      &klcf->api_key_header);

        if (klcf->api_key_header.len == sizeof("authorization") - 1
            && ngx_strcmp(klcf->api_key_header.data, "authorization") == 0)
        {
            r->headers_out.www_authenticate =
                                   ngx_list_push(&r->headers_out.headers);
            if (r->headers_out.www_authenticate == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            r->headers_out.www_authenticate->hash = 1;
            ngx_str_set(&r->headers_out.www_authenticate->key,
                        "WWW-Authenticate");
            r->headers_out.www_authenticate->value = ngx_http_kserve_bearer;
        }

        return ngx_http_kserve_error(r, NGX_HTTP_UNAUTHORIZED,
                                     "Unauthorized: a valid API key is "
                                     "required");
    }

    /* the shared memory extensions: regions are no models */

    if (rc == NGX_OK
        && (uri.endpoint == NGX_HTTP_KSERVE_SHM_STATUS
            || uri.endpoint == NGX_HTTP_KSERVE_SHM_REGISTER
            || uri.endpoint == NGX_HTTP_KSERVE_SHM_UNREGISTER))
    {
        return ngx_http_kserve_shm_handler(r, &uri);
    }

    /* model names are names, never paths */

    if (rc == NGX_OK && uri.model.len
        && ngx_http_kserve_valid_name(&uri.model) != NGX_OK)
    {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid model name: only letters, "
                                     "digits, '_', '-' and '.' are allowed, "
                                     "and it may not start with '.'");
    }

    /*
     * A routed name (kserve_route) becomes one of its variants: here, or
     * for an inference request once its body is read (its rules and
     * sticky key may use the request's own content, $kserve_param_...).
     */

    pick = NULL;

    if (rc == NGX_OK && uri.endpoint != NGX_HTTP_KSERVE_INFER
        && ngx_http_kserve_route_resolve(r, &uri, &pick) == NGX_ERROR)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK && uri.endpoint >= NGX_HTTP_KSERVE_REPOSITORY_INDEX) {
        return ngx_http_kserve_repository(r, &uri);
    }

    if (rc == NGX_OK && uri.endpoint == NGX_HTTP_KSERVE_INFER
        && (r->method & NGX_HTTP_POST))
    {
        if (r->headers_in.content_length_n > (off_t) klcf->max_body_size) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            /* Triton's 400, in Triton's words */

            return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                         "request body of %O bytes exceeds "
                                         "the maximum allowed value of %uz "
                                         "bytes. Use kserve_max_body_size "
                                         "to increase the limit.",
                                         r->headers_in.content_length_n,
                                         klcf->max_body_size);
        }

        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->uri = uri;
        ngx_http_set_ctx(r, ctx, ngx_http_kserve_module);

        rc = ngx_http_read_client_request_body(r, ngx_http_kserve_infer_body);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    /* Triton's logging and trace extensions read their own bodies */

    if (rc == NGX_OK && uri.endpoint == NGX_HTTP_KSERVE_LOGGING) {
        return ngx_http_kserve_logging_handler(r);
    }

    if (rc == NGX_OK && uri.endpoint == NGX_HTTP_KSERVE_TRACE) {
        return ngx_http_kserve_trace_handler(r, b, &uri);
    }

    /* everything else has no body worth reading */

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_kserve_error(r, NGX_HTTP_NOT_FOUND,
                                     "Not Found: no KServe endpoint at "
                                     "\"%V\"", &r->uri);
    }

    if (rc != NGX_OK) {
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid model version in \"%V\"",
                                     &r->uri);
    }

    if (uri.endpoint == NGX_HTTP_KSERVE_INFER) {
        return ngx_http_kserve_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "Method Not Allowed: %V needs POST",
                                     &r->uri);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_kserve_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "Method Not Allowed: %V needs GET",
                                     &r->uri);
    }

    switch (uri.endpoint) {

    case NGX_HTTP_KSERVE_LIVE:
        return ngx_http_kserve_send_empty(r, NGX_HTTP_OK);

    case NGX_HTTP_KSERVE_READY:
        return ngx_http_kserve_health_ready(r, b);

    case NGX_HTTP_KSERVE_MODEL_READY:
        return ngx_http_kserve_model_ready(r, b, &uri);

    case NGX_HTTP_KSERVE_MODEL_METADATA:
    case NGX_HTTP_KSERVE_MODEL_CONFIG:
        return ngx_http_kserve_model_json(r, b, &uri);

    case NGX_HTTP_KSERVE_MODEL_STATS:
        return ngx_http_kserve_model_stats(r, b, &uri);

    case NGX_HTTP_KSERVE_ROUTES:
        return ngx_http_kserve_route_status(r, &uri.model);

    default: /* NGX_HTTP_KSERVE_SERVER_METADATA */
        return ngx_http_kserve_server_metadata(r);
    }
}


/*
 * /v2[/]
 * /v2/health/live, /v2/health/ready
 * /v2/models/{m}[/versions/{v}][/ready|/config|/stats|/infer]
 * /v2/models/stats
 * /v2/routes[/{name}]
 * /v2/repository/index, /v2/repository/models/{m}/load|unload
 * /v2/systemsharedmemory|cudasharedmemory[/region/{r}]/status|register|
 *     unregister
 *
 * r->uri is already percent-decoded, so a model name never holds "/".
 * Returns NGX_OK, NGX_DECLINED for an unknown path, or NGX_ERROR for a
 * version that is not a number.
 */

/* One non-empty path segment at *p, up to the next '/' or the end. */

static ngx_int_t
ngx_http_kserve_segment(u_char **p, u_char *end, ngx_str_t *seg)
{
    seg->data = *p;

    while (*p < end && **p != '/') {
        (*p)++;
    }

    seg->len = *p - seg->data;

    return seg->len ? NGX_OK : NGX_DECLINED;
}


/*
 * After "/v2/repository/": "index", "models/{m}/load|unload", and the same
 * under a repository name ("{r}/index", ...), which Triton refuses.
 */

static ngx_int_t
ngx_http_kserve_parse_repository(u_char *p, u_char *end,
    ngx_http_kserve_uri_t *uri)
{
    ngx_str_t  seg;
    ngx_uint_t named;

    named = 0;

    for ( ;; ) {
        if (end - p == 5 && ngx_strncmp(p, "index", 5) == 0) {
            uri->endpoint = named ? NGX_HTTP_KSERVE_REPOSITORY_NAMED
                                  : NGX_HTTP_KSERVE_REPOSITORY_INDEX;
            return NGX_OK;
        }

        if (end - p > 7 && ngx_strncmp(p, "models/", 7) == 0) {
            p += 7;

            if (ngx_http_kserve_segment(&p, end, &uri->model) != NGX_OK) {
                return NGX_DECLINED;
            }

            if (end - p == 5 && ngx_strncmp(p, "/load", 5) == 0) {
                uri->endpoint = NGX_HTTP_KSERVE_REPOSITORY_LOAD;

            } else if (end - p == 7 && ngx_strncmp(p, "/unload", 7) == 0) {
                uri->endpoint = NGX_HTTP_KSERVE_REPOSITORY_UNLOAD;

            } else {
                return NGX_DECLINED;
            }

            if (named) {
                uri->endpoint = NGX_HTTP_KSERVE_REPOSITORY_NAMED;
            }

            return NGX_OK;
        }

        if (named || ngx_http_kserve_segment(&p, end, &seg) != NGX_OK
            || p == end)
        {
            return NGX_DECLINED;
        }

        p++;
        named = 1;
    }
}


static ngx_int_t
ngx_http_kserve_parse_uri(ngx_http_request_t *r, ngx_http_kserve_uri_t *uri)
{
    off_t    v;
    u_char  *p, *end;

    ngx_memzero(uri, sizeof(ngx_http_kserve_uri_t));

    p = r->uri.data;
    end = p + r->uri.len;

#define ngx_http_kserve_match(s)                                              \
    ((size_t) (end - p) >= sizeof(s) - 1                                      \
     && ngx_strncmp(p, s, sizeof(s) - 1) == 0                                 \
     && (p += sizeof(s) - 1))

    if (!ngx_http_kserve_match("/v2")) {
        return NGX_DECLINED;
    }

    if (p == end || (p + 1 == end && *p == '/')) {
        uri->endpoint = NGX_HTTP_KSERVE_SERVER_METADATA;
        return NGX_OK;
    }

    if (end - p == 8 && ngx_strncmp(p, "/logging", 8) == 0) {
        uri->endpoint = NGX_HTTP_KSERVE_LOGGING;
        return NGX_OK;
    }

    if (end - p == 14 && ngx_strncmp(p, "/trace/setting", 14) == 0) {
        uri->endpoint = NGX_HTTP_KSERVE_TRACE;
        return NGX_OK;
    }

    if (ngx_http_kserve_match("/health/")) {
        if (end - p == 4 && ngx_strncmp(p, "live", 4) == 0) {
            uri->endpoint = NGX_HTTP_KSERVE_LIVE;
            return NGX_OK;
        }

        if (end - p == 5 && ngx_strncmp(p, "ready", 5) == 0) {
            uri->endpoint = NGX_HTTP_KSERVE_READY;
            return NGX_OK;
        }

        return NGX_DECLINED;
    }

    /* routed names' status: /v2/routes, /v2/routes/NAME */

    if (ngx_http_kserve_match("/routes")) {
        uri->endpoint = NGX_HTTP_KSERVE_ROUTES;

        if (p == end || (p + 1 == end && *p == '/')) {
            return NGX_OK;
        }

        if (*p++ != '/'
            || ngx_http_kserve_segment(&p, end, &uri->model) != NGX_OK
            || p != end)
        {
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    if (ngx_http_kserve_match("/repository/")) {
        return ngx_http_kserve_parse_repository(p, end, uri);
    }

    if (ngx_http_kserve_match("/systemsharedmemory")) {
        return ngx_http_kserve_shm_uri(p, end, 0, uri);
    }

    if (ngx_http_kserve_match("/cudasharedmemory")) {
        return ngx_http_kserve_shm_uri(p, end, 1, uri);
    }

    if (!ngx_http_kserve_match("/models/")) {
        return NGX_DECLINED;
    }

    /* every model's statistics: a model named "stats" needs a version */

    if (end - p == 5 && ngx_strncmp(p, "stats", 5) == 0) {
        uri->endpoint = NGX_HTTP_KSERVE_MODEL_STATS;
        return NGX_OK;
    }

    if (ngx_http_kserve_segment(&p, end, &uri->model) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ngx_http_kserve_match("/versions/")) {
        if (ngx_http_kserve_segment(&p, end, &uri->version) != NGX_OK) {
            return NGX_DECLINED;
        }

        v = ngx_atoof(uri->version.data, uri->version.len);
        if (v == NGX_ERROR) {
            return NGX_ERROR;
        }

        uri->version_n = v;
    }

    if (p == end) {
        uri->endpoint = NGX_HTTP_KSERVE_MODEL_METADATA;
        return NGX_OK;
    }

    if (end - p == 6 && ngx_strncmp(p, "/ready", 6) == 0) {
        uri->endpoint = NGX_HTTP_KSERVE_MODEL_READY;
        return NGX_OK;
    }

    if (end - p == 7 && ngx_strncmp(p, "/config", 7) == 0) {
        uri->endpoint = NGX_HTTP_KSERVE_MODEL_CONFIG;
        return NGX_OK;
    }

    if (end - p == 6 && ngx_strncmp(p, "/stats", 6) == 0) {
        uri->endpoint = NGX_HTTP_KSERVE_MODEL_STATS;
        return NGX_OK;
    }

    if (end - p == 6 && ngx_strncmp(p, "/infer", 6) == 0) {
        uri->endpoint = NGX_HTTP_KSERVE_INFER;
        return NGX_OK;
    }

    if (end - p == 14 && ngx_strncmp(p, "/trace/setting", 14) == 0
        && uri->version.len == 0)
    {
        uri->endpoint = NGX_HTTP_KSERVE_TRACE;
        return NGX_OK;
    }

#undef ngx_http_kserve_match

    return NGX_DECLINED;
}


/* [A-Za-z0-9_.-]+, not starting with '.' (no "..", no hidden names) */

static ngx_int_t
ngx_http_kserve_valid_name(ngx_str_t *name)
{
    u_char  *p, *end, c;

    if (name->len == 0 || name->len > KSV_MAX_STRING
        || name->data[0] == '.')
    {
        return NGX_ERROR;
    }

    end = name->data + name->len;

    for (p = name->data; p < end; p++) {
        c = *p;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/* ---- health and metadata ------------------------------------------------ */

static ngx_int_t
ngx_http_kserve_server_metadata(ngx_http_request_t *r)
{
    ksv_writer_t                 w;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    ksv_writer_init(&w);
    ksv_json_server_metadata(&w, (const char *) klcf->server_name.data,
                             klcf->server_name.len);

    return ngx_http_kserve_send_json(r, NGX_HTTP_OK, &w);
}


static ngx_int_t
ngx_http_kserve_health_ready(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b)
{
    uint32_t             i, k;
    ngx_uint_t           serving;
    ksv_model_status_t  *ms;

    serving = 0;

    /*
     * By the last index this nginx worker holds, also while kserve-worker
     * does not answer: the instances it lists serve without it.
     */

    if (ngx_http_kserve_index_state(b) == NGX_HTTP_KSERVE_INDEX_NONE) {
        return ngx_http_kserve_send_empty(r, NGX_HTTP_BAD_REQUEST);
    }

    /*
     * Triton's strict readiness, as with --exit-on-error=false: versions
     * still loading make the server not ready; versions that failed do
     * not (they answer 503 with their reason until fixed).
     */

    for (i = 0; i < b->index.nmodels; i++) {
        ms = &b->index.models[i];

        if (ms->nversions == 0) {
            return ngx_http_kserve_send_empty(r, NGX_HTTP_BAD_REQUEST);
        }

        for (k = 0; k < ms->nversions; k++) {
            if (ms->versions[k].state == KSV_VERSION_LOADING) {
                return ngx_http_kserve_send_empty(r, NGX_HTTP_BAD_REQUEST);
            }

            if (ms->versions[k].state == KSV_VERSION_READY) {
                serving = 1;
            }
        }
    }

    /* a server whose every version is down (stopped, shutting down) is
     * not ready, though each of them alone would not count */

    if (b->index.nmodels > 0 && !serving) {
        return ngx_http_kserve_send_empty(r, NGX_HTTP_BAD_REQUEST);
    }

    return ngx_http_kserve_send_empty(r, NGX_HTTP_OK);
}


static ngx_int_t
ngx_http_kserve_model_ready(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri)
{
    ksv_model_status_t    *ms;
    ksv_version_status_t  *vs;

    /* as Triton: the answer is the status; unknown is simply not ready */

    if (ngx_http_kserve_index_state(b) == NGX_HTTP_KSERVE_INDEX_NONE) {
        return ngx_http_kserve_send_empty(r, NGX_HTTP_BAD_REQUEST);
    }

    ms = ngx_http_kserve_find_model(b, &uri->model);

    if (ms == NULL) {
        return ngx_http_kserve_send_empty(r, NGX_HTTP_BAD_REQUEST);
    }

    if (uri->version.len) {
        vs = ngx_http_kserve_find_version(ms, uri->version_n);

        if (vs == NULL || vs->state != KSV_VERSION_READY) {
            vs = NULL;
        }

    } else {
        vs = ngx_http_kserve_ready_version(ms);
    }

    return ngx_http_kserve_send_empty(r, vs ? NGX_HTTP_OK
                                            : NGX_HTTP_BAD_REQUEST);
}


/*
 * Finds the model (and the version, when the URI names one) for the
 * metadata, config and infer endpoints.  Returns NGX_OK, or the response
 * to the client's mistake, already sent.
 */

static ngx_int_t
ngx_http_kserve_find(ngx_http_request_t *r, ngx_http_kserve_backend_t *b,
    ngx_http_kserve_uri_t *uri, ksv_model_status_t **model)
{
    char                 msg[KSV_UNKNOWN_MODEL_LEN];
    ksv_model_status_t  *ms;

    *model = NULL;

    if (ngx_http_kserve_index_state(b) == NGX_HTTP_KSERVE_INDEX_NONE) {
        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "kserve worker unavailable");
    }

    ms = ngx_http_kserve_find_model(b, &uri->model);

    if (ms == NULL
        || (uri->version.len
            && ngx_http_kserve_find_version(ms, uri->version_n) == NULL))
    {
        ksv_unknown_model(msg, sizeof(msg), (char *) uri->model.data,
                          uri->model.len,
                          ms ? (char *) uri->version.data : NULL,
                          ms ? uri->version.len : 0);

        return ngx_http_kserve_error(r, NGX_HTTP_NOT_FOUND, "%s", msg);
    }

    *model = ms;

    return NGX_OK;
}


/*
 * The model's metadata, or with NGX_HTTP_KSERVE_MODEL_CONFIG its
 * configuration, as JSON.
 */

static ngx_int_t
ngx_http_kserve_model_json(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri)
{
    ngx_int_t            rc;
    ksv_writer_t         w;
    ksv_model_status_t  *ms, alias;

    rc = ngx_http_kserve_find(r, b, uri, &ms);
    if (ms == NULL) {
        return rc;
    }

    if (uri->alias.len) {
        /* a routed name: its first variant, under the name asked for */
        alias = *ms;
        alias.config.name.data = (char *) uri->alias.data;
        alias.config.name.len = (uint32_t) uri->alias.len;
        ms = &alias;
    }

    ksv_writer_init(&w);

    if (uri->endpoint == NGX_HTTP_KSERVE_MODEL_CONFIG) {
        ksv_model_config_to_json(&w, &ms->config);

    } else {
        ksv_json_model_metadata(&w, ms);
    }

    return ngx_http_kserve_send_json(r, NGX_HTTP_OK, &w);
}


/* ---- statistics ---------------------------------------------------------- */

/*
 * The worker keeps the statistics, summed over every nginx worker and
 * host, and knows its models best: it is asked each time, and an unknown
 * model is its NOT_FOUND.
 */

static ngx_int_t
ngx_http_kserve_model_stats(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri)
{
    u_char                      *p;
    ngx_int_t                    rc;
    ngx_str_t                    version;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    if (ngx_http_kserve_index_state(b) == NGX_HTTP_KSERVE_INDEX_NONE) {
        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "kserve worker unavailable");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->uri = *uri;
    ngx_http_set_ctx(r, ctx, ngx_http_kserve_module);

    /* the version as the worker spells it: "01" is version 1 */

    ngx_str_null(&version);

    if (uri->version.len) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        version.data = p;
        version.len = ngx_sprintf(p, "%L", uri->version_n) - p;
    }

    ctx->pending.request = r;
    ctx->pending.handler = ngx_http_kserve_stats_done;


    rc = ngx_http_kserve_send_stats(b, &ctx->pending, &uri->model,
                                    &version, klcf->timeout);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        /* no worker connected, though the index may still look fresh */
        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "kserve worker unavailable");
    }

    return ngx_http_kserve_wait_reply(r);
}


static void
ngx_http_kserve_stats_done(ngx_http_kserve_pending_t *p, zmq_msg_t *frames,
    ngx_uint_t nframes)
{
    ngx_int_t                    rc;
    ksv_error_t                  e;
    ksv_stats_t                  stats;
    ksv_writer_t                 w;
    ngx_http_request_t          *r;
    ngx_http_kserve_loc_conf_t  *klcf;

    r = p->request;

    if (frames == NULL) {
        klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

        rc = ngx_http_kserve_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                   "Deadline exceeded: no reply from the "
                                   "kserve worker within %M ms",
                                   klcf->timeout);
        goto done;
    }

    rc = ngx_http_kserve_stats_reply(r->pool, frames, nframes, &stats, &e);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_kserve_error(r, ksv_status_http(e.code), "%*s",
                                   (size_t) e.message.len, e.message.data);
        goto done;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kserve: malformed reply to STATS (%ui frames)",
                      nframes);

        rc = ngx_http_kserve_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "malformed reply from the kserve worker");
        goto done;
    }

    /* strings point into the frames: render before they are closed */

    ksv_writer_init(&w);
    ksv_json_model_stats(&w, &stats);

    rc = ngx_http_kserve_send_json(r, NGX_HTTP_OK, &w);

done:

    ngx_http_finalize_request(r, rc);
}


/* ---- inference ---------------------------------------------------------- */

static void
ngx_http_kserve_infer_body(ngx_http_request_t *r)
{
    u_char                       errstr[NGX_MAX_ERROR_STR];
    ngx_int_t                    rc;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_body_t      *kb;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);

    /* the body in one piece, kept for a retry and for the variables */

    if (ngx_http_kserve_body_get(r, &kb) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (kb->len > klcf->max_body_size) {
        ngx_http_finalize_request(r,
            ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                  "request body of %uz bytes exceeds the "
                                  "maximum allowed value of %uz bytes. "
                                  "Use kserve_max_body_size to increase "
                                  "the limit.",
                                  kb->len, klcf->max_body_size));
        return;
    }

    /* Content-Encoding: gzip or deflate, bounded after inflation; this
     * handler is called again once the body is inflated */

    rc = ngx_http_kserve_gzip_body(r, &kb, klcf->max_body_size, errstr,
                                   sizeof(errstr), ngx_http_kserve_infer_body);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc == NGX_ERROR
                                     ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                     : ngx_http_kserve_error(r, rc, "%s",
                                                             errstr));
        return;
    }

    ctx->body = kb;

    if (ngx_http_kserve_gzip_reply(r) != NGX_OK
        || ngx_http_kserve_route_resolve(r, &ctx->uri, &ctx->pick)
           == NGX_ERROR)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_kserve_infer(r);

    if (rc == NGX_DONE) {
        /* sent; the reply or the deadline finalizes the request */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_kserve_infer(ngx_http_request_t *r)
{
    size_t                       len, header_len;
    u_char                      *body, *p;
    uint32_t                     i;
    uint64_t                     id, recv_end;
    ngx_int_t                    rc;
    ngx_str_t                    hvalue;
    zmq_msg_t                   *frames;
    ksv_alloc_t                  alloc;
    ksv_infer_t                  m;
    ksv_writer_t                 w;
    ksv_infer_buf_t             *data;
    ksv_infer_error_t            err;
    ksv_model_status_t          *ms;
    ksv_infer_limits_t           limits;
    ksv_version_status_t        *vs;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_body_t      *kb;
    ngx_http_kserve_backend_t   *b;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);
    b = klcf->backend;
    recv_end = ngx_http_kserve_trace_now();

    /* binary tensor data: a JSON header of this length, then tensors */

    rc = ngx_http_kserve_header_length(r, &header_len, &hvalue);

    if (rc == NGX_DECLINED) {
        header_len = KSV_INFER_JSON_ONLY;

    } else if (rc == NGX_ABORT) {
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "Inference-Header-Content-Length is "
                                     "given twice with different values, "
                                     "got: %V", &hvalue);

    } else if (rc != NGX_OK) {
        /* Triton's words (it reads an int, so a sign is a range error) */
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "Unable to parse "
                                     "Inference-Header-Content-Length, "
                                     "got: %V", &hvalue);
    }

    kb = ctx->body;
    body = kb->data;
    len = kb->len;

    rc = ngx_http_kserve_find(r, b, &ctx->uri, &ms);
    if (ms == NULL) {
        return rc;
    }

    /* the version is chosen here, and named in the INFER: */

    if (ctx->uri.version.len) {
        vs = ngx_http_kserve_find_version(ms, ctx->uri.version_n);

        if (vs->state != KSV_VERSION_READY) {
            return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "Request for unavailable model: "
                                         "'%V' version %V is not ready: %*s",
                                         &ctx->uri.model,
                                         &ctx->uri.version,
                                         (size_t) vs->reason.len,
                                         vs->reason.data);
        }

    } else {
        vs = ngx_http_kserve_ready_version(ms);

        if (vs == NULL) {
            vs = ms->nversions ? &ms->versions[ms->nversions - 1] : NULL;

            return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "Request for unavailable model: "
                                         "'%V' has no ready version%s%*s",
                                         &ctx->uri.model,
                                         (vs && vs->reason.len) ? ": " : "",
                                         (size_t) (vs ? vs->reason.len : 0),
                                         vs ? vs->reason.data : "");
        }
    }

    alloc.alloc = ngx_http_kserve_pool_alloc;
    alloc.ctx = r->pool;

    limits.max_inputs = (uint32_t) klcf->max_inputs;
    limits.max_outputs = (uint32_t) klcf->max_outputs;
    limits.max_depth = (uint32_t) klcf->max_json_depth;
    limits.max_elements = klcf->max_elements;
    limits.max_bytes_element = klcf->max_bytes_element;

    if (ksv_infer_parse(body, len, header_len, &ms->config, &limits, &alloc,
                        &m, &data, &err)
        != 0)
    {
        return ngx_http_kserve_error(r, ksv_status_http(err.code), "%s",
                                     err.message);
    }

    /* tensors in the client's shared memory regions */

    rc = ngx_http_kserve_shm_request(r, ctx, &m, data, vs, &err);

    if (rc != NGX_OK) {
        ksv_infer_free_bufs(data, m.ninputs);

        if (rc == NGX_DECLINED) {
            return ngx_http_kserve_error(r, ksv_status_http(err.code), "%s",
                                         err.message);
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_kserve_keep_outputs(r, ctx, &m) != NGX_OK) {
        ksv_infer_free_bufs(data, m.ninputs);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        ksv_infer_free_bufs(data, m.ninputs);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the instance checks it is the version it serves */

    m.model_name = ms->config.name;
    m.model_version.data = (char *) p;
    m.model_version.len = (uint32_t) (ngx_sprintf(p, "%L", vs->version) - p);
    ctx->model_version.data = p;
    ctx->model_version.len = m.model_version.len;
    m.timeout_ms = (uint32_t) ngx_min(klcf->timeout, (ngx_msec_t) UINT32_MAX);

    /* Triton's trace extension: sampled here, timestamps in the reply */
    m.flags |= ngx_http_kserve_trace_start(r, &ms->config.name, vs->version,
                                           &m.request_id, recv_end);
    ngx_http_kserve_trace_inputs(r, &m, data);

    id = ngx_http_kserve_next_id();

    ksv_writer_init(&w);
    ksv_encode_infer(&w, id, &m);

    frames = ngx_palloc(r->pool, (m.ninputs + 1) * sizeof(zmq_msg_t));

    if (frames == NULL) {
        ksv_writer_free(&w);
        ksv_infer_free_bufs(data, m.ninputs);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * The header frame, then each input's buffer as it is: the parser's
     * own (JSON data) or a view of the body (binary data), which the
     * frame keeps alive until libzmq is done with it.
     */

    if (ngx_http_kserve_writer_frame(&frames[0], &w) != NGX_OK) {
        ksv_infer_free_bufs(data, m.ninputs);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < m.ninputs; i++) {
        if (data[i].data == NULL) {
            rc = zmq_msg_init(&frames[i + 1]);

        } else if (data[i].owned) {
            rc = zmq_msg_init_data(&frames[i + 1], data[i].data,
                                   m.inputs[i].byte_size,
                                   ksv_infer_free_cb, NULL);

        } else {
            ngx_http_kserve_body_ref(kb);

            rc = zmq_msg_init_data(&frames[i + 1], data[i].data,
                                   m.inputs[i].byte_size,
                                   ngx_http_kserve_body_free_cb, kb);
            if (rc != 0) {
                ngx_http_kserve_body_free_cb(NULL, kb);
            }
        }

        if (rc != 0) {
            data[i].owned = (data[i].owned && data[i].data != NULL);
            ksv_infer_free_bufs(&data[i], m.ninputs - i);

            while (i-- > 0) {
                zmq_msg_close(&frames[i + 1]);
            }

            zmq_msg_close(&frames[0]);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        data[i].data = NULL;
        data[i].owned = 0;
    }

    ctx->pending.request = r;
    ctx->pending.handler = ngx_http_kserve_infer_done;

    ngx_http_kserve_route_sending(r, ctx, b, &m, frames, m.ninputs + 1);
    ngx_http_kserve_trace_mark(r, KSV_TS_REQUEST_START);

    rc = ngx_http_kserve_send_infer(b, &ctx->pending, ms, vs, id, frames,
                                    m.ninputs + 1, klcf->timeout);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "kserve instance busy: the queue to "
                                     "every instance of model '%V' version "
                                     "%L is full", &ctx->uri.model,
                                     vs->version);
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "Request for unavailable model: '%V' "
                                     "version %L has no ready instance",
                                     &ctx->uri.model, vs->version);
    }

    ngx_http_kserve_metrics_inflight(r, ctx);

    /* notice a client that goes away while the model works */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


/*
 * The outputs asked for and which of them are binary, copied: the reply
 * comes after the model index (whose names m points into) may change.
 */

static ngx_int_t
ngx_http_kserve_keep_outputs(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, ksv_infer_t *m)
{
    uint32_t    i;
    ngx_str_t  *name;

    ctx->all_binary = (m->flags & KSV_INFER_ALL_BINARY) ? 1 : 0;
    ctx->noutputs = m->noutputs;

    if (m->noutputs == 0) {
        return NGX_OK;
    }

    ctx->output_names = ngx_palloc(r->pool, m->noutputs * sizeof(ngx_str_t));
    ctx->output_binary = ngx_pnalloc(r->pool, m->noutputs);

    if (ctx->output_names == NULL || ctx->output_binary == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < m->noutputs; i++) {
        name = &ctx->output_names[i];

        name->len = m->outputs[i].name.len;
        name->data = ngx_pnalloc(r->pool, name->len + 1);

        if (name->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(name->data, m->outputs[i].name.data, name->len);

        ctx->output_binary[i] =
                       (m->outputs[i].flags & KSV_OUTPUT_BINARY) ? 1 : 0;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_kserve_output_binary(ngx_http_kserve_ctx_t *ctx, ksv_str_t *name)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->noutputs; i++) {
        if (ctx->output_names[i].len == name->len
            && ngx_strncmp(ctx->output_names[i].data, name->data, name->len)
               == 0)
        {
            return ctx->output_binary[i];
        }
    }

    return ctx->all_binary;
}


static void
ngx_http_kserve_infer_done(ngx_http_kserve_pending_t *p, zmq_msg_t *frames,
    ngx_uint_t nframes)
{
    ngx_int_t                    rc;
    ngx_http_request_t          *r;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_loc_conf_t  *klcf;

    r = p->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);

    ngx_http_kserve_metrics_answered(r, ctx);

    /* a routed name's variant failed: once more, on the fallback */

    if (ctx->pick != NULL
        && ngx_http_kserve_route_done(r, ctx, frames, nframes) == NGX_AGAIN)
    {
        rc = ngx_http_kserve_infer(r);

        if (rc != NGX_DONE) {
            ngx_http_finalize_request(r, rc);
        }

        return;
    }

    if (frames == NULL) {
        klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

        rc = ngx_http_kserve_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                   "Deadline exceeded: no reply from the "
                                   "model instance within %M ms",
                                   klcf->timeout);

    } else {
        rc = ngx_http_kserve_infer_reply(r, frames, nframes);
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_kserve_infer_reply(ngx_http_request_t *r, zmq_msg_t *frames,
    ngx_uint_t nframes)
{
    u_char                  errstr[256], *binary;
    size_t                 *sizes;
    uint32_t                i;
    ngx_uint_t              nbinary;
    const void            **data;
    ksv_error_t             e;
    ksv_alloc_t             alloc;
    ksv_prefix_t            prefix;
    ksv_reader_t            rd;
    ksv_writer_t            w;
    ksv_infer_reply_t       m;
    ksv_infer_error_t       err;
    ngx_http_kserve_ctx_t  *ctx;

    ngx_http_kserve_trace_mark(r, KSV_TS_HTTP_SEND_START);

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));
    (void) ksv_read_prefix(&rd, &prefix);

    if (prefix.kind == KSV_MSG_ERROR) {
        if (ksv_decode_error(&rd, &e) != 0) {
            goto malformed;
        }

        return ngx_http_kserve_error(r, ksv_status_http(e.code), "%*s",
                                     (size_t) e.message.len, e.message.data);
    }

    alloc.alloc = ngx_http_kserve_pool_alloc;
    alloc.ctx = r->pool;

    if (ksv_decode_infer_reply(&rd, &alloc, &m) != 0
        || m.noutputs != nframes - 1)
    {
        goto malformed;
    }

    ngx_http_kserve_trace_reply(r, &m);

    data = ngx_palloc(r->pool, (nframes + 1) * sizeof(void *));
    sizes = ngx_palloc(r->pool, (nframes + 1) * sizeof(size_t));
    binary = ngx_pnalloc(r->pool, nframes + 1);

    if (data == NULL || sizes == NULL || binary == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);
    nbinary = 0;

    for (i = 0; i < m.noutputs; i++) {
        data[i] = zmq_msg_data(&frames[i + 1]);
        sizes[i] = zmq_msg_size(&frames[i + 1]);
        binary[i] = ngx_http_kserve_output_binary(ctx, &m.outputs[i].name);
    }

    /* outputs in the client's shared memory regions: no data here */

    if (ngx_http_kserve_shm_reply(r, ctx, &m, &frames[1], sizes, binary,
                                  &err)
        != NGX_OK)
    {
        return ngx_http_kserve_error(r, ksv_status_http(err.code), "%s",
                                     err.message);
    }

    ngx_http_kserve_trace_outputs(r, &m, data, sizes);

    for (i = 0; i < m.noutputs; i++) {
        nbinary += (binary[i] == KSV_REPLY_BINARY);
    }

    ksv_writer_init(&w);

    if (ksv_infer_reply_header(&w, &m, data, sizes, m.noutputs, binary,
                               (char *) errstr, sizeof(errstr))
        != 0)
    {
        ksv_writer_free(&w);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kserve: malformed INFER_REPLY: %s", errstr);

        return ngx_http_kserve_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "malformed reply from the model "
                                     "instance: %s", errstr);
    }

    if (nbinary) {
        /* the JSON header, then the binary outputs' frames as they are */
        return ngx_http_kserve_send_tensors(r, &w, &frames[1], binary,
                                            m.noutputs);
    }

    return ngx_http_kserve_send_json(r, NGX_HTTP_OK, &w);

malformed:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "kserve: malformed reply (kind %ud, %ui frames)",
                  (ngx_uint_t) prefix.kind, nframes);

    return ngx_http_kserve_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                 "malformed reply from the model instance");
}


ngx_int_t
ngx_http_kserve_wait_reply(ngx_http_request_t *r)
{
    /* the reply or the deadline finalizes the request */

    r->main->count++;

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    return NGX_DONE;
}


/* ---- responses ---------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ksv_writer_t *w)
{
    return ngx_http_kserve_send_writer(r, status, &ngx_http_kserve_json_type,
                                       w);
}


ngx_int_t
ngx_http_kserve_send_writer(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ksv_writer_t *w)
{
    size_t        len;
    u_char       *data;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    data = ngx_http_kserve_writer_detach(r, w, &len);
    if (data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;

    if (ngx_http_kserve_route_header(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}


u_char *
ngx_http_kserve_writer_detach(ngx_http_request_t *r, ksv_writer_t *w,
    size_t *len)
{
    u_char              *data;
    ngx_pool_cleanup_t  *cln;

    if (w->failed || w->len == 0) {
        ksv_writer_free(w);
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ksv_writer_free(w);
        return NULL;
    }

    /* the writer's buffer is sent as it is and freed with the request */

    data = ksv_writer_detach(w, len);

    cln->handler = ngx_http_kserve_free;
    cln->data = data;

    return data;
}


static ngx_int_t
ngx_http_kserve_send_empty(ngx_http_request_t *r, ngx_uint_t status)
{
    r->headers_out.status = status;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


/* {"error": "..."} with the status; fmt is ngx_vslprintf()'s. */

ngx_int_t
ngx_http_kserve_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...)
{
    u_char        *p, msg[NGX_MAX_ERROR_STR];
    va_list        args;
    ksv_writer_t   w;

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "kserve: %ui \"%*s\"", status, p - msg, msg);

    ksv_writer_init(&w);
    ksv_json_error(&w, (char *) msg, p - msg);

    return ngx_http_kserve_send_json(r, status, &w);
}


static void
ngx_http_kserve_free(void *data)
{
    free(data);
}


static void *
ngx_http_kserve_pool_alloc(void *ctx, size_t size)
{
    return ngx_palloc(ctx, size);
}


/* ---- configuration ------------------------------------------------------ */

static void *
ngx_http_kserve_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_main_conf_t));
    if (kmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&kmcf->backends, cf->pool, 1,
                       sizeof(ngx_http_kserve_backend_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return kmcf;
}


static void *
ngx_http_kserve_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_kserve_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->backend = NULL;
     *     conf->metrics = 0;
     */

    conf->timeout = NGX_CONF_UNSET_MSEC;
    conf->max_body_size = NGX_CONF_UNSET_SIZE;
    conf->index_interval = NGX_CONF_UNSET_MSEC;
    conf->max_inputs = NGX_CONF_UNSET_UINT;
    conf->max_outputs = NGX_CONF_UNSET_UINT;
    conf->max_json_depth = NGX_CONF_UNSET_UINT;
    conf->max_elements = NGX_CONF_UNSET_UINT;
    conf->max_bytes_element = NGX_CONF_UNSET_SIZE;
    conf->api_keys = NGX_CONF_UNSET_PTR;
    conf->api_key_health = NGX_CONF_UNSET;
    conf->shared_memory = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_kserve_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_kserve_loc_conf_t *prev = parent;
    ngx_http_kserve_loc_conf_t *conf = child;

    ngx_http_kserve_main_conf_t  *kmcf;

    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 30000);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              64 * 1024 * 1024);
    ngx_conf_merge_msec_value(conf->index_interval, prev->index_interval,
                              1000);
    ngx_conf_merge_uint_value(conf->max_inputs, prev->max_inputs,
                              KSV_MAX_TENSORS);
    ngx_conf_merge_uint_value(conf->max_outputs, prev->max_outputs,
                              KSV_MAX_TENSORS);
    ngx_conf_merge_uint_value(conf->max_json_depth, prev->max_json_depth,
                              KSV_JSON_MAX_DEPTH);
    ngx_conf_merge_uint_value(conf->max_elements, prev->max_elements,
                              1024 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->max_bytes_element,
                              prev->max_bytes_element, 0);
    ngx_conf_merge_ptr_value(conf->api_keys, prev->api_keys, NULL);
    ngx_conf_merge_str_value(conf->api_key_header, prev->api_key_header,
                             "authorization");
    ngx_conf_merge_value(conf->api_key_health, prev->api_key_health, 0);
    ngx_conf_merge_str_value(conf->server_name, prev->server_name,
                             KSV_SERVER_NAME);
    ngx_conf_merge_value(conf->shared_memory, prev->shared_memory, 0);

    if (conf->max_inputs == 0 || conf->max_inputs > KSV_MAX_TENSORS
        || conf->max_outputs == 0 || conf->max_outputs > KSV_MAX_TENSORS)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kserve_max_inputs\" and \"kserve_max_outputs\" "
                           "must be between 1 and %d", KSV_MAX_TENSORS);
        return NGX_CONF_ERROR;
    }

    if (conf->timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kserve_timeout\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (conf->index_interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kserve_index_interval\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (conf->metrics && conf->backend == NULL) {
        kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kserve_module);

        if (kmcf->backends.nelts != 1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"kserve_metrics\" without endpoints needs "
                               "exactly one endpoint list in the http block, "
                               "%ui found",
                               kmcf->backends.nelts);
            return NGX_CONF_ERROR;
        }

        conf->backend = ((ngx_http_kserve_backend_t **)
                         kmcf->backends.elts)[0];
    }

    /* a backend shared by locations is polled as often as any asks */

    if (conf->backend != NULL
        && (conf->backend->index_interval == NGX_CONF_UNSET_MSEC
            || conf->index_interval < conf->backend->index_interval))
    {
        conf->backend->index_interval = conf->index_interval;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_kserve_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_kserve_location(cf, conf, ngx_http_kserve_handler);
}


/*
 * kserve_metrics [ENDPOINT ...]: the worker to ask for model statistics
 * is the one named, else the only endpoint list of the http block,
 * resolved in merge_loc_conf once every kserve_pass has been read.
 */

static char *
ngx_http_kserve_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kserve_loc_conf_t *klcf = conf;

    char  *rv;

    rv = ngx_http_kserve_location(cf, conf, ngx_http_kserve_metrics_handler);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    klcf->metrics = 1;

    return NGX_CONF_OK;
}


/*
 * What kserve_pass and kserve_metrics share: one of them per location,
 * the endpoint list named (kserve_metrics may name none), the gateway
 * counters' zone and the location's handler.
 */

static char *
ngx_http_kserve_location(ngx_conf_t *cf, ngx_http_kserve_loc_conf_t *klcf,
    ngx_http_handler_pt handler)
{
    ngx_str_t                    *value;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_kserve_main_conf_t  *kmcf;

    if (klcf->backend != NULL || klcf->metrics) {
        return "is duplicate";
    }

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kserve_module);
    value = cf->args->elts;

    if (cf->args->nelts > 1) {
        klcf->backend = ngx_http_kserve_backend_get(cf, &kmcf->backends,
                                                    &value[1],
                                                    cf->args->nelts - 1);
        if (klcf->backend == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_kserve_metrics_zone(cf, kmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = handler;

    return NGX_CONF_OK;
}


/* kserve_api_keys FILE | off */

static char *
ngx_http_kserve_api_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kserve_loc_conf_t *klcf = conf;

    ngx_str_t  *value;

    if (klcf->api_keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        klcf->api_keys = NULL;
        return NGX_CONF_OK;
    }

    klcf->api_keys = ngx_http_kserve_keys_load(cf, &value[1]);
    if (klcf->api_keys == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_kserve_json_depth(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *np = data;

    if (*np == 0 || *np > KSV_JSON_MAX_DEPTH) {
        return "must be between 1 and 100";
    }

    return NGX_CONF_OK;
}


/* header names are compared in lower case */

static char *
ngx_http_kserve_lowcase(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *s = data;

    ngx_strlow(s->data, s->data, s->len);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kserve_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_kserve_main_conf_t  *kmcf;

    if (ngx_http_kserve_route_postconfiguration(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kserve_module);

    if (kmcf->backends.nelts > 0
        && ngx_http_kserve_shm_init_conf(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (kmcf->metrics_zone == NULL) {
        return NGX_OK;
    }

    return ngx_http_kserve_metrics_init(cf);
}


/* ---- per nginx worker ---------------------------------------------------- */

static ngx_int_t
ngx_http_kserve_init_process(ngx_cycle_t *cycle)
{
    ngx_http_kserve_main_conf_t  *kmcf;

    /* libzmq's threads do not survive fork(): workers only, never master */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_http_kserve_route_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    kmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_kserve_module);

    if (kmcf == NULL || kmcf->backends.nelts == 0) {
        return NGX_OK;
    }

    return ngx_http_kserve_transport_init(cycle, &kmcf->backends);
}


static void
ngx_http_kserve_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_kserve_module);

    if (kmcf == NULL) {
        return;
    }

    ngx_http_kserve_route_exit_process(cycle);
    ngx_http_kserve_transport_exit(cycle, &kmcf->backends);
}
