
/*
 * Copyright (C) ngx_kserve authors
 *
 * Triton's logging extension: GET and POST /v2/logging.
 *
 * The settings live in a shared memory zone, so every nginx worker
 * answers alike; a POST also goes to kserve-worker (LOG), which applies
 * them to its own log and to its instances' (common/ksv_logset.h), and
 * is answered once the worker has them.
 *
 * nginx's own error_log stays nginx's: its level is error_log's, and
 * log_info / log_warning / log_error do not silence it.  What the
 * settings change in nginx is verbosity, for requests to kserve
 * locations: log_verbose_level >= 1 adds one line per request at the
 * "info" level ("kserve verbose: POST /v2/models/m/infer 200 in 0.003
 * s"), so error_log must be at "info" to show them; >= 2 also turns on
 * nginx's debug log of the http module for the request (the module's
 * own debug lines, and nginx's, as debug_connection would), where nginx
 * is built --with-debug (Debian's is).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ngx_http_kserve_logging.h"
#include "ngx_http_kserve_tensor.h"
#include "ksv_logging.h"


typedef struct {
    uint32_t                     info;
    uint32_t                     warning;
    uint32_t                     error;
    uint32_t                     verbose;
    uint32_t                     format;
} ngx_http_kserve_logging_sh_t;


typedef struct {
    ngx_shm_zone_t              *zone;
} ngx_http_kserve_logging_main_conf_t;


static void ngx_http_kserve_logging_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_logging_post(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_logging_parse(ngx_http_request_t *r,
    ksv_log_settings_t *s, u_char *err, size_t size);
static void ngx_http_kserve_logging_done(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes);
static ngx_int_t ngx_http_kserve_logging_send(ngx_http_request_t *r);
static void ngx_http_kserve_logging_get(ksv_log_settings_t *s);
static void ngx_http_kserve_logging_set(const ksv_log_settings_t *s);
static ngx_int_t ngx_http_kserve_logging_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_logging_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void *ngx_http_kserve_logging_create_main_conf(ngx_conf_t *cf);
static ngx_int_t ngx_http_kserve_logging_init(ngx_conf_t *cf);


static ngx_http_module_t  ngx_http_kserve_logging_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kserve_logging_init,          /* postconfiguration */

    ngx_http_kserve_logging_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kserve_logging_module = {
    NGX_MODULE_V1,
    &ngx_http_kserve_logging_module_ctx,   /* module context */
    NULL,                                  /* module directives */
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


static ngx_http_kserve_logging_sh_t  *ngx_http_kserve_logging_sh;

static ngx_str_t  ngx_http_kserve_logging_type =
    ngx_string("application/json");


/* ---- the endpoint ------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_logging_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_kserve_logging_send(r);
    }

    if (!(r->method & NGX_HTTP_POST)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_kserve_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "Method Not Allowed");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_kserve_logging_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_kserve_logging_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_kserve_logging_post(r);

    if (rc == NGX_DONE) {
        return;                     /* the worker's answer finalizes it */
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_kserve_logging_post(ngx_http_request_t *r)
{
    u_char                      err[NGX_MAX_ERROR_STR];
    uint64_t                    id;
    ngx_int_t                   rc;
    zmq_msg_t                   frame;
    ksv_writer_t                w;
    ksv_log_settings_t          s;
    ngx_http_kserve_pending_t  *p;
    ngx_http_kserve_loc_conf_t *klcf;

    rc = ngx_http_kserve_logging_parse(r, &s, err, sizeof(err));

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_kserve_error(r, rc, "%s", err);
    }

    /* every nginx worker at once; then the worker and its instances */

    ngx_http_kserve_logging_set(&s);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "kserve: log settings: info %d, warning %d, error %d, "
                  "verbose %uD, format %s", s.info, s.warning, s.error,
                  s.verbose, ksv_log_format_name(s.format));

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    p = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_pending_t));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p->request = r;
    p->handler = ngx_http_kserve_logging_done;

    id = ngx_http_kserve_next_id();

    ksv_writer_init(&w);
    ksv_encode_log(&w, KSV_MSG_LOG, id, &s);

    if (ngx_http_kserve_writer_frame(&frame, &w) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_kserve_send_control(klcf->backend, p, id, &frame, 1,
                                      klcf->timeout);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "kserve worker unavailable: the log "
                                     "settings apply to nginx only");
    }

    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_kserve_logging_parse(ngx_http_request_t *r, ksv_log_settings_t *s,
    u_char *err, size_t size)
{
    int                      status;
    ngx_http_kserve_body_t  *kb;

    ngx_http_kserve_logging_get(s);

    if (ngx_http_kserve_body_get(r, &kb) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ksv_logging_update(s, kb->data, kb->len, (char *) err, size,
                           &status)
        != 0)
    {
        return status;
    }

    return NGX_OK;
}


static void
ngx_http_kserve_logging_done(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes)
{
    ngx_int_t            rc;
    ksv_error_t          e;
    ksv_prefix_t         prefix;
    ksv_reader_t         rd;
    ngx_http_request_t  *r;
    ksv_log_settings_t   s;

    r = p->request;

    if (frames == NULL) {
        rc = ngx_http_kserve_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                   "Deadline exceeded: the kserve worker did "
                                   "not take the log settings");
        goto done;
    }

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));
    (void) ksv_read_prefix(&rd, &prefix);

    if (prefix.kind == KSV_MSG_ERROR && ksv_decode_error(&rd, &e) == 0) {
        rc = ngx_http_kserve_error(r, ksv_status_http(e.code), "%*s",
                                   (size_t) e.message.len, e.message.data);
        goto done;
    }

    if (prefix.kind != KSV_MSG_LOG_REPLY || nframes != 1
        || ksv_decode_log(&rd, &s) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kserve: malformed reply to LOG (kind %ud)",
                      (ngx_uint_t) prefix.kind);

        rc = ngx_http_kserve_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "malformed reply from the kserve worker");
        goto done;
    }

    rc = ngx_http_kserve_logging_send(r);

done:

    ngx_http_finalize_request(r, rc);
}


/* {"log_file":"","log_info":true,...} as Triton answers */

static ngx_int_t
ngx_http_kserve_logging_send(ngx_http_request_t *r)
{
    ksv_writer_t        w;
    ksv_log_settings_t  s;

    ngx_http_kserve_logging_get(&s);

    ksv_writer_init(&w);
    ksv_logging_json(&w, &s);

    return ngx_http_kserve_send_writer(r, NGX_HTTP_OK,
                                       &ngx_http_kserve_logging_type, &w);
}


/* ---- the shared settings --------------------------------------------------- */

static void
ngx_http_kserve_logging_get(ksv_log_settings_t *s)
{
    ngx_http_kserve_logging_sh_t  *sh = ngx_http_kserve_logging_sh;

    if (sh == NULL) {
        ksv_log_settings_default(s);
        return;
    }

    s->info = __atomic_load_n(&sh->info, __ATOMIC_RELAXED) ? 1 : 0;
    s->warning = __atomic_load_n(&sh->warning, __ATOMIC_RELAXED) ? 1 : 0;
    s->error = __atomic_load_n(&sh->error, __ATOMIC_RELAXED) ? 1 : 0;
    s->verbose = __atomic_load_n(&sh->verbose, __ATOMIC_RELAXED);
    s->format = __atomic_load_n(&sh->format, __ATOMIC_RELAXED)
                ? KSV_LOG_FORMAT_ISO8601 : KSV_LOG_FORMAT_DEFAULT;
}


static void
ngx_http_kserve_logging_set(const ksv_log_settings_t *s)
{
    ngx_http_kserve_logging_sh_t  *sh = ngx_http_kserve_logging_sh;

    if (sh == NULL) {
        return;
    }

    __atomic_store_n(&sh->info, s->info, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->warning, s->warning, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->error, s->error, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->verbose, s->verbose, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->format, s->format, __ATOMIC_RELAXED);
}


void
ngx_http_kserve_logging_request(ngx_http_request_t *r)
{
    /* nginx sets the level again from error_log for the next request */

    if (ngx_http_kserve_log_verbose() >= 2) {
        r->connection->log->log_level |= NGX_LOG_DEBUG_HTTP;
    }
}


ngx_uint_t
ngx_http_kserve_log_verbose(void)
{
    ngx_http_kserve_logging_sh_t  *sh = ngx_http_kserve_logging_sh;

    return sh ? __atomic_load_n(&sh->verbose, __ATOMIC_RELAXED) : 0;
}


/* log_verbose_level >= 1: one line per request of a kserve location */

static ngx_int_t
ngx_http_kserve_logging_log_handler(ngx_http_request_t *r)
{
    ngx_msec_int_t               ms;
    ngx_time_t                  *tp;
    ngx_http_kserve_loc_conf_t  *klcf;

    if (ngx_http_kserve_log_verbose() == 0) {
        return NGX_OK;
    }

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    if (klcf == NULL || (klcf->backend == NULL && !klcf->metrics)) {
        return NGX_OK;
    }

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "kserve verbose: %V %V %ui in %T.%03M s",
                  &r->method_name, &r->uri, r->headers_out.status,
                  (time_t) ngx_max(ms, 0) / 1000, ngx_max(ms, 0) % 1000);

    return NGX_OK;
}


/* ---- configuration ------------------------------------------------------- */

static ngx_int_t
ngx_http_kserve_logging_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t               *shpool;
    ksv_log_settings_t             s;
    ngx_http_kserve_logging_sh_t  *sh;

    if (data != NULL) {
        /* a reload keeps the settings */
        zone->data = data;
        ngx_http_kserve_logging_sh = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        zone->data = shpool->data;
        ngx_http_kserve_logging_sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_kserve_logging_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ksv_log_settings_default(&s);
    ngx_http_kserve_logging_sh = sh;
    ngx_http_kserve_logging_set(&s);

    shpool->data = sh;
    zone->data = sh;

    return NGX_OK;
}


static void *
ngx_http_kserve_logging_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_kserve_logging_main_conf_t));
}


static ngx_int_t
ngx_http_kserve_logging_init(ngx_conf_t *cf)
{
    ngx_str_t                             name;
    ngx_http_handler_pt                  *h;
    ngx_http_core_main_conf_t            *cmcf;
    ngx_http_kserve_logging_main_conf_t  *lmcf;

    lmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_kserve_logging_module);

    ngx_str_set(&name, "kserve_logging");

    lmcf->zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                       &ngx_http_kserve_logging_module);
    if (lmcf->zone == NULL) {
        return NGX_ERROR;
    }

    lmcf->zone->init = ngx_http_kserve_logging_init_zone;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_kserve_logging_log_handler;

    return NGX_OK;
}
