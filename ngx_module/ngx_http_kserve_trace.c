
/*
 * Copyright (C) ngx_kserve authors
 *
 * Triton's trace extension: the settings every nginx worker shares (a
 * shared memory zone), sampling inference requests, their timestamps
 * (nginx's own and the instance's, from the INFER_REPLY), and the trace
 * file in Triton's format.
 *
 * Writing the file stays off the request's way and short: a record is
 * rendered into memory when its request ends; with log_frequency 0 it is
 * appended to the trace file at once (one pwrite of a few hundred bytes
 * into the page cache, under the zone's lock, so the file of all nginx
 * workers stays one valid JSON array); with log_frequency N each nginx
 * worker keeps its records and writes every N of them with one write to
 * the next "<trace_file>.<index>" (the index shared by all nginx
 * workers), and what is left when it exits.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ngx_http_kserve_trace.h"
#include "ngx_http_kserve_tensor.h"
#include "ksv_json_write.h"


typedef struct {
    ksv_trace_table_t            table;
    ngx_atomic_t                 on;        /* ksv_trace_any(), unlocked */
    ngx_atomic_t                 next_id;
    ngx_atomic_t                 file_index;
    ngx_atomic_t                 started;   /* trace_file begun */
} ngx_http_kserve_trace_sh_t;


typedef struct {
    ngx_str_t                    file;      /* "" or NUL-terminated */
    ngx_str_t                    shown;     /* as configured, for GET */
    ksv_trace_setting_t          initial;
    ngx_shm_zone_t              *zone;
} ngx_http_kserve_trace_main_conf_t;


typedef struct {
    ksv_trace_record_t           rec;
    ksv_writer_t                 tensors;   /* TENSORS records, ","-led */
    uint32_t                     level;
    uint32_t                     log_frequency;
    unsigned                     last:1;    /* the count's last trace */
} ngx_http_kserve_trace_ctx_t;


static void ngx_http_kserve_trace_done(void *data);
static void ngx_http_kserve_trace_write(ngx_http_kserve_trace_ctx_t *t,
    ngx_log_t *log);
static void ngx_http_kserve_trace_append(ngx_log_t *log, u_char *data,
    size_t len);
static void ngx_http_kserve_trace_flush(ngx_log_t *log);
static void ngx_http_kserve_trace_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_trace_send(ngx_http_request_t *r,
    ngx_str_t *model);
static char *ngx_http_kserve_trace_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_kserve_trace_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void *ngx_http_kserve_trace_create_main_conf(ngx_conf_t *cf);
static ngx_int_t ngx_http_kserve_trace_init(ngx_conf_t *cf);
static void ngx_http_kserve_trace_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_kserve_trace_commands[] = {

    { ngx_string("kserve_trace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_kserve_trace_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kserve_trace_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kserve_trace_init,            /* postconfiguration */

    ngx_http_kserve_trace_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kserve_trace_module = {
    NGX_MODULE_V1,
    &ngx_http_kserve_trace_module_ctx,     /* module context */
    ngx_http_kserve_trace_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_kserve_trace_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_kserve_trace_sh_t         *ngx_http_kserve_trace_sh;
static ngx_slab_pool_t                    *ngx_http_kserve_trace_pool;
static ngx_http_kserve_trace_main_conf_t  *ngx_http_kserve_trace_conf_p;

/* this nginx worker's records waiting for log_frequency */
static ksv_writer_t                        ngx_http_kserve_trace_buf;
static ngx_uint_t                          ngx_http_kserve_trace_nbuf;

static ngx_str_t  ngx_http_kserve_trace_type =
    ngx_string("application/json");


uint64_t
ngx_http_kserve_trace_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


/* ---- an inference request ------------------------------------------------ */

uint32_t
ngx_http_kserve_trace_start(ngx_http_request_t *r, ksv_str_t *model,
    int64_t version, ksv_str_t *request_id, uint64_t recv_end)
{
    u_char                       *p;
    uint64_t                      now, age;
    ngx_int_t                     sampled;
    ngx_time_t                   *tp;
    ksv_trace_view_t              v;
    ngx_pool_cleanup_t           *cln;
    ngx_http_kserve_trace_sh_t   *sh;
    ngx_http_kserve_trace_ctx_t  *t;

    sh = ngx_http_kserve_trace_sh;

    if (sh == NULL || !sh->on) {
        return 0;
    }

    t = ngx_http_get_module_ctx(r, ngx_http_kserve_trace_module);
    if (t != NULL) {
        return KSV_INFER_TRACE;     /* once more, on a routed fallback */
    }

    ngx_shmtx_lock(&ngx_http_kserve_trace_pool->mutex);
    sampled = ksv_trace_sample(&sh->table, model->data, model->len, &v);
    sh->on = ksv_trace_any(&sh->table);
    ngx_shmtx_unlock(&ngx_http_kserve_trace_pool->mutex);

    if (!sampled) {
        return 0;
    }

    t = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_trace_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    p = ngx_pnalloc(r->pool, model->len + request_id->len + 1);

    if (t == NULL || cln == NULL || p == NULL) {
        return 0;
    }

    /* names and ids copied: the index and the body may be gone by the
     * time the record is written */

    ngx_memcpy(p, model->data, model->len);

    if (request_id->len) {
        ngx_memcpy(p + model->len, request_id->data, request_id->len);
    }

    t->rec.id = ngx_atomic_fetch_add(&sh->next_id, 1);
    t->rec.model_name.data = (char *) p;
    t->rec.model_name.len = model->len;
    t->rec.model_version = version;
    t->rec.request_id.data = (char *) p + model->len;
    t->rec.request_id.len = request_id->len;
    t->level = v.level;
    t->log_frequency = v.log_frequency;
    t->last = (v.count == 1);

    /* nginx took the request line at r->start_*, by the wall clock */

    now = ngx_http_kserve_trace_now();
    tp = ngx_timeofday();
    age = (uint64_t) ((tp->sec - r->start_sec) * 1000
                      + (tp->msec - r->start_msec)) * 1000000;

    /* (to the millisecond of nginx's cached time: never after the end) */

    t->rec.ns[KSV_TS_HTTP_RECV_END] = recv_end ? recv_end : now;
    t->rec.ns[KSV_TS_HTTP_RECV_START] =
                         ngx_min((now > age) ? now - age : now,
                                 t->rec.ns[KSV_TS_HTTP_RECV_END]);

    cln->handler = ngx_http_kserve_trace_done;
    cln->data = t;

    ngx_http_set_ctx(r, t, ngx_http_kserve_trace_module);

    return KSV_INFER_TRACE;
}


void
ngx_http_kserve_trace_mark(ngx_http_request_t *r, ksv_trace_point_t p)
{
    ngx_http_kserve_trace_ctx_t  *t;

    t = ngx_http_get_module_ctx(r, ngx_http_kserve_trace_module);

    if (t != NULL && (unsigned) p < KSV_TS_COUNT) {
        t->rec.ns[p] = ngx_http_kserve_trace_now();
    }
}


void
ngx_http_kserve_trace_reply(ngx_http_request_t *r, const ksv_infer_reply_t *m)
{
    ngx_http_kserve_trace_ctx_t  *t;

    t = ngx_http_get_module_ctx(r, ngx_http_kserve_trace_module);

    if (t == NULL || !m->has_trace) {
        return;
    }

    t->rec.ns[KSV_TS_QUEUE_START] = m->trace.queue_start;
    t->rec.ns[KSV_TS_COMPUTE_START] = m->trace.compute_start;
    t->rec.ns[KSV_TS_COMPUTE_INPUT_END] = m->trace.compute_input_end;
    t->rec.ns[KSV_TS_COMPUTE_OUTPUT_START] = m->trace.compute_output_start;
    t->rec.ns[KSV_TS_COMPUTE_END] = m->trace.compute_end;
    t->rec.ns[KSV_TS_REQUEST_END] = m->trace.request_end;
}


void
ngx_http_kserve_trace_inputs(ngx_http_request_t *r, const ksv_infer_t *m,
    ksv_infer_buf_t *bufs)
{
    uint32_t                      i;
    ngx_http_kserve_trace_ctx_t  *t;

    t = ngx_http_get_module_ctx(r, ngx_http_kserve_trace_module);

    if (t == NULL || !(t->level & KSV_TRACE_TENSORS) || t->tensors.len) {
        return;
    }

    for (i = 0; i < m->ninputs; i++) {
        ksv_trace_tensor_json(&t->tensors, t->rec.id, "TENSOR_QUEUE_INPUT",
                              &m->inputs[i], bufs[i].data,
                              bufs[i].data ? m->inputs[i].byte_size : 0);
    }
}


void
ngx_http_kserve_trace_outputs(ngx_http_request_t *r,
    const ksv_infer_reply_t *m, const void **data, const size_t *sizes)
{
    uint32_t                      i;
    ngx_http_kserve_trace_ctx_t  *t;

    t = ngx_http_get_module_ctx(r, ngx_http_kserve_trace_module);

    if (t == NULL || !(t->level & KSV_TRACE_TENSORS)) {
        return;
    }

    for (i = 0; i < m->noutputs; i++) {
        ksv_trace_tensor_json(&t->tensors, t->rec.id,
                              "TENSOR_BACKEND_OUTPUT", &m->outputs[i],
                              data[i], sizes[i]);
    }
}


/* The request ends: its answer has gone (or its client has). */

static void
ngx_http_kserve_trace_done(void *data)
{
    ngx_http_kserve_trace_ctx_t  *t = data;

    t->rec.ns[KSV_TS_HTTP_SEND_END] = ngx_http_kserve_trace_now();

    ngx_http_kserve_trace_write(t, ngx_cycle->log);

    ksv_writer_free(&t->tensors);
}


static void
ngx_http_kserve_trace_write(ngx_http_kserve_trace_ctx_t *t, ngx_log_t *log)
{
    size_t        len;
    ksv_writer_t  w, *buf;

    if (ngx_http_kserve_trace_conf_p == NULL
        || ngx_http_kserve_trace_conf_p->file.len == 0)
    {
        return;
    }

    if (t->log_frequency == 0) {
        ksv_writer_init(&w);
        ksv_trace_record_json(&w, &t->rec);

        if (!t->tensors.failed && t->tensors.len) {
            ksv_put_bytes(&w, t->tensors.buf, t->tensors.len);
        }

        if (!w.failed) {
            len = w.len;
            ngx_http_kserve_trace_append(log, w.buf, len);
        }

        ksv_writer_free(&w);
        return;
    }

    buf = &ngx_http_kserve_trace_buf;

    if (ngx_http_kserve_trace_nbuf > 0) {
        ksv_put_u8(buf, ',');
    }

    ksv_trace_record_json(buf, &t->rec);

    if (!t->tensors.failed && t->tensors.len) {
        ksv_put_bytes(buf, t->tensors.buf, t->tensors.len);
    }

    ngx_http_kserve_trace_nbuf++;

    if (ngx_http_kserve_trace_nbuf >= t->log_frequency || t->last) {
        ngx_http_kserve_trace_flush(log);
    }
}


/*
 * log_frequency 0: the record goes into trace_file, which stays one JSON
 * array: "[" rec "]" for the first, then "," rec "]" over the "]".
 */

static void
ngx_http_kserve_trace_append(ngx_log_t *log, u_char *data, size_t len)
{
    u_char           *p;
    off_t             size;
    ngx_fd_t          fd;
    ngx_str_t        *file;
    ngx_file_info_t   fi;

    file = &ngx_http_kserve_trace_conf_p->file;

    p = ngx_alloc(len + 2, log);
    if (p == NULL) {
        return;
    }

    ngx_shmtx_lock(&ngx_http_kserve_trace_pool->mutex);

    fd = ngx_open_file(file->data, NGX_FILE_RDWR, NGX_FILE_CREATE_OR_OPEN,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_shmtx_unlock(&ngx_http_kserve_trace_pool->mutex);
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "kserve: cannot open the trace file \"%V\"", file);
        ngx_free(p);
        return;
    }

    size = (ngx_fd_info(fd, &fi) == 0) ? ngx_file_size(&fi) : 0;

    if (!ngx_http_kserve_trace_sh->started || size < 2) {
        p[0] = '[';
        size = 0;
        ngx_http_kserve_trace_sh->started = 1;

        if (ftruncate(fd, 0) != 0) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "kserve: cannot truncate the trace file \"%V\"",
                          file);
        }

    } else {
        p[0] = ',';
        size -= 1;                  /* over the closing "]" */
    }

    ngx_memcpy(p + 1, data, len);
    p[len + 1] = ']';

    if (pwrite(fd, p, len + 2, size) != (ssize_t) (len + 2)) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "kserve: cannot write the trace file \"%V\"", file);
    }

    ngx_close_file(fd);
    ngx_shmtx_unlock(&ngx_http_kserve_trace_pool->mutex);

    ngx_free(p);
}


/* log_frequency N: this nginx worker's records to the next indexed file */

static void
ngx_http_kserve_trace_flush(ngx_log_t *log)
{
    u_char        name[NGX_MAX_PATH + NGX_ATOMIC_T_LEN + 2];
    ngx_fd_t      fd;
    ngx_str_t    *file;
    ngx_uint_t    index;
    ksv_writer_t *buf;

    buf = &ngx_http_kserve_trace_buf;

    if (ngx_http_kserve_trace_nbuf == 0 || ngx_http_kserve_trace_sh == NULL) {
        return;
    }

    file = &ngx_http_kserve_trace_conf_p->file;
    index = ngx_atomic_fetch_add(&ngx_http_kserve_trace_sh->file_index, 1);

    *ngx_snprintf(name, sizeof(name) - 1, "%V.%ui", file, index) = '\0';

    fd = ngx_open_file(name, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "kserve: cannot open the trace file \"%s\"", name);

    } else {
        if (ngx_write_fd(fd, "[", 1) != 1
            || ngx_write_fd(fd, buf->buf, buf->len) != (ssize_t) buf->len
            || ngx_write_fd(fd, "]", 1) != 1)
        {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "kserve: cannot write the trace file \"%s\"", name);
        }

        ngx_close_file(fd);
    }

    buf->len = 0;
    buf->failed = 0;
    ngx_http_kserve_trace_nbuf = 0;
}


/* ---- the endpoint ------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_trace_handler(ngx_http_request_t *r,
    ngx_http_kserve_backend_t *b, ngx_http_kserve_uri_t *uri)
{
    ngx_int_t  rc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST))) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_kserve_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "Method Not Allowed");
    }

    if (ngx_http_kserve_trace_sh == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a model's settings: a model the index knows (Triton's words) */

    if (uri->model.len
        && (ngx_http_kserve_index_state(b) == NGX_HTTP_KSERVE_INDEX_NONE
            || ngx_http_kserve_find_model(b, &uri->model) == NULL))
    {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "Request for unknown model : %V",
                                     &uri->model);
    }

    if (!(r->method & NGX_HTTP_POST)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_kserve_trace_send(r, &uri->model);
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_kserve_trace_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_kserve_trace_body(ngx_http_request_t *r)
{
    u_char                   err[NGX_MAX_ERROR_STR];
    int                      status, rc;
    ngx_str_t                model;
    ngx_http_kserve_body_t  *kb;

    /* the model name again: the URI is the request's, still there */

    ngx_str_null(&model);

    if (r->uri.len > sizeof("/v2/models/") - 1 + sizeof("/trace/setting") - 1
        && ngx_strncmp(r->uri.data, "/v2/models/", 11) == 0)
    {
        model.data = r->uri.data + 11;
        model.len = r->uri.len - 11 - (sizeof("/trace/setting") - 1);
    }

    if (ngx_http_kserve_body_get(r, &kb) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_shmtx_lock(&ngx_http_kserve_trace_pool->mutex);

    rc = ksv_trace_update(&ngx_http_kserve_trace_sh->table,
                          (char *) model.data, (uint32_t) model.len,
                          kb->data, kb->len, (char *) err, sizeof(err),
                          &status);

    ngx_http_kserve_trace_sh->on =
                         ksv_trace_any(&ngx_http_kserve_trace_sh->table);

    ngx_shmtx_unlock(&ngx_http_kserve_trace_pool->mutex);

    if (rc != 0) {
        ngx_http_finalize_request(r, ngx_http_kserve_error(r, status, "%s",
                                                           err));
        return;
    }

    ngx_http_finalize_request(r, ngx_http_kserve_trace_send(r, &model));
}


static ngx_int_t
ngx_http_kserve_trace_send(ngx_http_request_t *r, ngx_str_t *model)
{
    ksv_writer_t  w;

    ksv_writer_init(&w);

    ngx_shmtx_lock(&ngx_http_kserve_trace_pool->mutex);

    ksv_trace_settings_json(&w, &ngx_http_kserve_trace_sh->table,
                            (char *) model->data, (uint32_t) model->len,
                            ngx_http_kserve_trace_conf_p->shown.len
                            ? (char *) ngx_http_kserve_trace_conf_p->shown.data
                            : "");

    ngx_shmtx_unlock(&ngx_http_kserve_trace_pool->mutex);

    return ngx_http_kserve_send_writer(r, NGX_HTTP_OK,
                                       &ngx_http_kserve_trace_type, &w);
}


/* ---- configuration ------------------------------------------------------- */

/*
 * kserve_trace [file=PATH] [level=OFF|TIMESTAMPS|TENSORS[,...]]
 *              [rate=N] [count=N] [log_frequency=N];
 */

static char *
ngx_http_kserve_trace_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kserve_trace_main_conf_t *tmcf = conf;

    u_char      *p, *last, *comma;
    ngx_int_t    n;
    ngx_str_t   *value, v;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "file=", 5) == 0) {
            v.data = value[i].data + 5;
            v.len = value[i].len - 5;

            if (v.len == 0) {
                return "has an empty file";
            }

            tmcf->shown.data = ngx_pnalloc(cf->pool, v.len + 1);
            if (tmcf->shown.data == NULL) {
                return NGX_CONF_ERROR;
            }

            tmcf->shown.len = v.len;
            *ngx_cpymem(tmcf->shown.data, v.data, v.len) = '\0';

            if (ngx_conf_full_name(cf->cycle, &v, 0) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            tmcf->file = v;         /* ngx_conf_full_name: NUL-terminated */
            continue;
        }

        if (ngx_strncmp(value[i].data, "level=", 6) == 0) {
            tmcf->initial.level = 0;
            p = value[i].data + 6;
            last = value[i].data + value[i].len;

            while (p < last) {
                comma = ngx_strlchr(p, last, ',');
                if (comma == NULL) {
                    comma = last;
                }

                if (comma - p == 3 && ngx_strncmp(p, "OFF", 3) == 0) {
                    /* nothing */

                } else if (comma - p == 10
                           && ngx_strncmp(p, "TIMESTAMPS", 10) == 0)
                {
                    tmcf->initial.level |= KSV_TRACE_TIMESTAMPS;

                } else if (comma - p == 7
                           && ngx_strncmp(p, "TENSORS", 7) == 0)
                {
                    tmcf->initial.level |= KSV_TRACE_TENSORS;

                } else {
                    return "has an unknown level";
                }

                p = comma + 1;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n == NGX_ERROR || n > (ngx_int_t) UINT32_MAX) {
                return "has an invalid rate";
            }
            tmcf->initial.rate = (uint32_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "count=", 6) == 0) {
            if (value[i].len == 8
                && ngx_strncmp(value[i].data + 6, "-1", 2) == 0)
            {
                tmcf->initial.count = -1;
                continue;
            }

            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n == NGX_ERROR || n > INT32_MAX) {
                return "has an invalid count";
            }
            tmcf->initial.count = (int32_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "log_frequency=", 14) == 0) {
            n = ngx_atoi(value[i].data + 14, value[i].len - 14);
            if (n == NGX_ERROR || n > (ngx_int_t) UINT32_MAX) {
                return "has an invalid log_frequency";
            }
            tmcf->initial.log_frequency = (uint32_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kserve_trace_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t                    *shpool;
    ngx_http_kserve_trace_sh_t         *sh;
    ngx_http_kserve_trace_main_conf_t  *tmcf;

    tmcf = ngx_http_kserve_trace_conf_p;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    ngx_http_kserve_trace_pool = shpool;

    if (data != NULL) {
        /* a reload keeps what clients set; null now goes back to the new
         * configuration's values */
        sh = data;
        sh->table.initial.level = tmcf->initial.level;
        sh->table.initial.rate = tmcf->initial.rate;
        sh->table.initial.count = tmcf->initial.count;
        sh->table.initial.log_frequency = tmcf->initial.log_frequency;
        goto done;
    }

    if (zone->shm.exists) {
        sh = shpool->data;
        goto done;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_kserve_trace_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(sh, sizeof(ngx_http_kserve_trace_sh_t));
    ksv_trace_table_init(&sh->table, &tmcf->initial);
    sh->on = ksv_trace_any(&sh->table);
    sh->next_id = 1;
    shpool->data = sh;

done:

    zone->data = sh;
    ngx_http_kserve_trace_sh = sh;

    return NGX_OK;
}


static void *
ngx_http_kserve_trace_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_kserve_trace_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_trace_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /* Triton's defaults */
    tmcf->initial.level = 0;
    tmcf->initial.rate = 1000;
    tmcf->initial.count = -1;
    tmcf->initial.log_frequency = 0;

    return tmcf;
}


static ngx_int_t
ngx_http_kserve_trace_init(ngx_conf_t *cf)
{
    ngx_str_t                           name;
    ngx_http_kserve_trace_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_kserve_trace_module);

    ngx_str_set(&name, "kserve_trace");

    tmcf->zone = ngx_shared_memory_add(cf, &name,
                       ngx_align(sizeof(ngx_http_kserve_trace_sh_t)
                                 + 8 * ngx_pagesize, ngx_pagesize),
                       &ngx_http_kserve_trace_module);
    if (tmcf->zone == NULL) {
        return NGX_ERROR;
    }

    tmcf->zone->init = ngx_http_kserve_trace_init_zone;

    ngx_http_kserve_trace_conf_p = tmcf;

    return NGX_OK;
}


static void
ngx_http_kserve_trace_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_kserve_trace_flush(cycle->log);
    ksv_writer_free(&ngx_http_kserve_trace_buf);
}
