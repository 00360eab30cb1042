
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_MODULE_H_INCLUDED_
#define _NGX_HTTP_KSERVE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_transport.h"
#include "ngx_http_kserve_auth.h"
#include "ngx_http_kserve_tensor.h"
#include "ksv_request_fields.h"


/*
 * The configuration and per-request state that the module's files share:
 * ngx_http_kserve_module.c (directives, the KServe v2 endpoints) and
 * ngx_http_kserve_metrics.c (shared counters, the Prometheus endpoint).
 */

/* routed names and Redis: ngx_http_kserve_route.h */
typedef struct ngx_http_kserve_routing_s  ngx_http_kserve_routing_t;
typedef struct ngx_http_kserve_pick_s     ngx_http_kserve_pick_t;


typedef struct {
    ngx_array_t                  backends;  /* ngx_http_kserve_backend_t * */
    ngx_shm_zone_t              *metrics_zone;
    ngx_http_kserve_routing_t   *routing;   /* kserve_route, kserve_redis */
} ngx_http_kserve_main_conf_t;


typedef struct {
    ngx_http_kserve_backend_t   *backend;
    ngx_msec_t                   timeout;
    size_t                       max_body_size;
    ngx_msec_t                   index_interval;

    /* limits of one inference request (kserve_max_*) */
    ngx_uint_t                   max_inputs;
    ngx_uint_t                   max_outputs;
    ngx_uint_t                   max_json_depth;
    ngx_uint_t                   max_elements;
    size_t                       max_bytes_element;

    /* kserve_api_keys: NULL when no key is required */
    ngx_http_kserve_keys_t      *api_keys;
    ngx_str_t                    api_key_header;    /* lower case */
    ngx_flag_t                   api_key_health;    /* health needs one */
    ngx_str_t                    server_name;   /* kserve_server_name */

    ngx_flag_t                   shared_memory;     /* kserve_shared_memory */

    unsigned                     metrics:1;     /* kserve_metrics */
} ngx_http_kserve_loc_conf_t;


typedef enum {
    NGX_HTTP_KSERVE_SERVER_METADATA = 0,
    NGX_HTTP_KSERVE_LIVE,
    NGX_HTTP_KSERVE_READY,
    NGX_HTTP_KSERVE_MODEL_METADATA,
    NGX_HTTP_KSERVE_MODEL_READY,
    NGX_HTTP_KSERVE_MODEL_CONFIG,
    NGX_HTTP_KSERVE_MODEL_STATS,
    NGX_HTTP_KSERVE_INFER,
    NGX_HTTP_KSERVE_METRICS,
    NGX_HTTP_KSERVE_TRACE,          /* [/models/{m}]/trace/setting */
    NGX_HTTP_KSERVE_LOGGING,        /* /v2/logging */
    NGX_HTTP_KSERVE_ROUTES,         /* model: the routed name, or none */
    NGX_HTTP_KSERVE_REPOSITORY_INDEX,     /* ngx_http_kserve_repository.c */
    NGX_HTTP_KSERVE_REPOSITORY_LOAD,
    NGX_HTTP_KSERVE_REPOSITORY_UNLOAD,
    NGX_HTTP_KSERVE_REPOSITORY_NAMED,     /* /v2/repository/{r}/...: Triton
                                             does not support these */
    NGX_HTTP_KSERVE_SHM_STATUS,             /* ngx_http_kserve_shm.c */
    NGX_HTTP_KSERVE_SHM_REGISTER,
    NGX_HTTP_KSERVE_SHM_UNREGISTER
} ngx_http_kserve_endpoint_e;


/* what a request's URI names (ngx_http_kserve_parse_uri) */

typedef struct {
    ngx_http_kserve_endpoint_e   endpoint;
    ngx_str_t                    model;     /* empty: none in the URI */
    ngx_str_t                    version;   /* empty: none in the URI */
    int64_t                      version_n;
    ngx_str_t                    alias;     /* routed name resolved */
    ngx_str_t                    region;    /* shared memory: empty = all */
    ngx_uint_t                   shm_cuda;  /* cudasharedmemory */
} ngx_http_kserve_uri_t;


/* Only requests that wait for a reply (or read a body) have one. */

typedef struct {
    ngx_http_kserve_pending_t    pending;
    ngx_http_kserve_uri_t        uri;
    ngx_http_kserve_pick_t      *pick;          /* routed name's variant */
    ngx_http_kserve_body_t      *body;          /* once read */
    ngx_str_t                    model_version; /* once the INFER is sent */

    /* "id", "parameters": ngx_http_kserve_variables.c, when asked */
    ksv_request_fields_t         fields;

    /* outputs asked for, to answer binary_data (binary tensor data) */
    ngx_uint_t                   noutputs;      /* 0: all of them */
    ngx_str_t                   *output_names;
    u_char                      *output_binary;

    void                        *shm;           /* its shared memory */

    unsigned                     inflight:1;    /* counted in the gauge */
    unsigned                     all_binary:1;  /* binary_data_output, raw */
    unsigned                     fields_scanned:1;
    unsigned                     fields_ok:1;
} ngx_http_kserve_ctx_t;


/*
 * Sends the writer's bytes as the whole response with status and
 * content type; the buffer is freed with the request, w is left empty.
 */
ngx_int_t ngx_http_kserve_send_writer(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ksv_writer_t *w);

/* The JSON in w as the whole response (w is left empty). */
ngx_int_t ngx_http_kserve_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ksv_writer_t *w);

/* {"error": "..."} with the status; fmt is ngx_vslprintf()'s. */
ngx_int_t ngx_http_kserve_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...);

/*
 * The writer's bytes, freed with the request; w is left empty.  NULL
 * when the writer failed or is empty, or out of memory.
 */
u_char *ngx_http_kserve_writer_detach(ngx_http_request_t *r,
    ksv_writer_t *w, size_t *len);

/*
 * Sends {"error": "..."} with the status (fmt is ngx_vslprintf()'s):
 * the one shape of every error the module answers.
 */
ngx_int_t ngx_http_kserve_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...);

/*
 * After a message went to kserve-worker: keeps the request open until
 * its pending handler finalizes it (the reply or the deadline), watching
 * for a client that goes away.  Returns NGX_DONE.
 */
ngx_int_t ngx_http_kserve_wait_reply(ngx_http_request_t *r);

/* {"error": "..."} with the status; fmt is ngx_vslprintf()'s. */
ngx_int_t ngx_http_kserve_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...);

/* The writer's JSON as the response, with status. */
ngx_int_t ngx_http_kserve_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ksv_writer_t *w);

/*
 * POST /v2/repository/index, /v2/repository/models/{m}/load|unload
 * (Triton's repository extension), from the content handler: reads the
 * body and forwards it to kserve-worker (ngx_http_kserve_repository.c).
 */
ngx_int_t ngx_http_kserve_repository(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri);


extern ngx_module_t  ngx_http_kserve_module;


#endif /* _NGX_HTTP_KSERVE_MODULE_H_INCLUDED_ */
