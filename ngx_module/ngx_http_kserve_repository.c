
/*
 * Copyright (C) ngx_kserve authors
 */


/*
 * Triton's repository extension:
 *
 *   POST /v2/repository/index                  {"ready": bool} optional
 *   POST /v2/repository/models/{m}/load        {"parameters": {"config":
 *                                              ..., "file:<path>": ...}}
 *   POST /v2/repository/models/{m}/unload      {"parameters":
 *                                              {"unload_dependents": b}}
 *
 * The body goes to kserve-worker as it came (REPOSITORY, common/
 * ksv_proto.h): the worker parses it, decides and answers with Triton's
 * codes and words, and a load is answered when it has settled.  Here the
 * index is rendered as Triton renders it:
 * [{"name": ..., "version": ..., "state": ..., "reason": ...}], version,
 * state and reason left out where Triton leaves them out.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ngx_http_kserve_tensor.h"
#include "ksv_json.h"


static void ngx_http_kserve_repository_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_repository_send(ngx_http_request_t *r);
static void ngx_http_kserve_repository_done(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes);
static void ngx_http_kserve_repository_json(ksv_writer_t *w,
    ksv_repository_reply_t *reply);


ngx_int_t
ngx_http_kserve_repository(ngx_http_request_t *r, ngx_http_kserve_uri_t *uri)
{
    ngx_int_t                    rc;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    if (!(r->method & NGX_HTTP_POST)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_kserve_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "Method Not Allowed");
    }

    if (uri->endpoint == NGX_HTTP_KSERVE_REPOSITORY_NAMED) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_kserve_error(r, NGX_HTTP_NOT_IMPLEMENTED,
                                     "'repository_name' specification is "
                                     "not supported");
    }

    if (r->headers_in.content_length_n > (off_t) klcf->max_body_size) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_kserve_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                     "request body of %O bytes exceeds "
                                     "kserve_max_body_size %uz",
                                     r->headers_in.content_length_n,
                                     klcf->max_body_size);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->uri = *uri;
    ngx_http_set_ctx(r, ctx, ngx_http_kserve_module);

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_kserve_repository_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_kserve_repository_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_kserve_repository_send(r);

    if (rc == NGX_DONE) {
        /* sent; the reply or the deadline finalizes the request */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_kserve_repository_send(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_uint_t                   fresh;
    ksv_repository_t             req;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_body_t      *kb;
    ngx_http_kserve_backend_t   *b;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);
    b = klcf->backend;

    if (ngx_http_kserve_body_get(r, &kb) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (kb->len > klcf->max_body_size) {
        return ngx_http_kserve_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                     "request body of %uz bytes exceeds "
                                     "kserve_max_body_size %uz",
                                     kb->len, klcf->max_body_size);
    }

    if (ngx_http_kserve_index_state(b) == NGX_HTTP_KSERVE_INDEX_NONE) {
        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "kserve worker unavailable");
    }

    ngx_memzero(&req, sizeof(ksv_repository_t));

    switch (ctx->uri.endpoint) {

    case NGX_HTTP_KSERVE_REPOSITORY_LOAD:
        req.action = KSV_REPO_LOAD;
        break;

    case NGX_HTTP_KSERVE_REPOSITORY_UNLOAD:
        req.action = KSV_REPO_UNLOAD;
        break;

    default: /* NGX_HTTP_KSERVE_REPOSITORY_INDEX */
        req.action = KSV_REPO_INDEX;
        break;
    }

    req.model.data = (char *) ctx->uri.model.data;
    req.model.len = (uint32_t) ctx->uri.model.len;

    ctx->pending.request = r;
    ctx->pending.handler = ngx_http_kserve_repository_done;

    fresh = (ngx_http_kserve_index_state(b) == NGX_HTTP_KSERVE_INDEX_FRESH);

    rc = ngx_http_kserve_send_repository(b, &ctx->pending, &req, kb->data,
                                         kb->len, klcf->timeout);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     fresh ? "kserve worker busy"
                                           : "kserve worker unavailable");
    }

    /* notice a client that goes away while the model loads */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


static void
ngx_http_kserve_repository_done(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes)
{
    ngx_int_t                    rc, status;
    ksv_error_t                  e;
    ksv_writer_t                 w;
    ngx_http_request_t          *r;
    ngx_http_kserve_ctx_t       *ctx;
    ksv_repository_reply_t       reply;
    ngx_http_kserve_loc_conf_t  *klcf;

    r = p->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);

    if (frames == NULL) {
        klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

        rc = ngx_http_kserve_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                   "Deadline exceeded: no reply from the "
                                   "kserve worker within %M ms",
                                   klcf->timeout);
        goto done;
    }

    rc = ngx_http_kserve_repository_reply(r->pool, frames, nframes, &reply,
                                          &e);

    if (rc == NGX_DECLINED) {
        /*
         * A worker answers NOT_FOUND for a model its repository lacks, so
         * that the answers of several can be merged (ksv_merge.h); Triton
         * answers that load INTERNAL.
         */
        status = (e.code == KSV_ERR_NOT_FOUND
                  && ctx->uri.endpoint == NGX_HTTP_KSERVE_REPOSITORY_LOAD)
                 ? NGX_HTTP_INTERNAL_SERVER_ERROR : ksv_status_http(e.code);

        rc = ngx_http_kserve_error(r, status, "%*s",
                                   (size_t) e.message.len, e.message.data);
        goto done;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kserve: malformed reply to REPOSITORY (%ui frames)",
                      nframes);

        rc = ngx_http_kserve_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "malformed reply from the kserve worker");
        goto done;
    }

    if (ctx->uri.endpoint != NGX_HTTP_KSERVE_REPOSITORY_INDEX) {
        /* load, unload: 200 and nothing more, as Triton */

        r->headers_out.status = NGX_HTTP_OK;
        r->headers_out.content_length_n = 0;
        ngx_str_set(&r->headers_out.content_type, "application/json");
        r->headers_out.content_type_len = r->headers_out.content_type.len;
        r->header_only = 1;

        rc = ngx_http_send_header(r);
        goto done;
    }

    /* strings point into the frames: render before they are closed */

    ksv_writer_init(&w);
    ngx_http_kserve_repository_json(&w, &reply);

    rc = ngx_http_kserve_send_json(r, NGX_HTTP_OK, &w);

done:

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_kserve_repository_json(ksv_writer_t *w,
    ksv_repository_reply_t *reply)
{
    u_char             num[NGX_INT64_LEN];
    uint32_t           i;
    ksv_str_t          s;
    ksv_repo_entry_t  *e;

    ksv_json_put_raw(w, "[");

    for (i = 0; i < reply->nentries; i++) {
        e = &reply->entries[i];

        ksv_json_put_raw(w, i ? ",{\"name\":" : "{\"name\":");
        ksv_json_put_str(w, e->name);

        if (e->state != KSV_REPO_NAME_ONLY) {
            if (e->version >= 0) {
                s.data = (char *) num;
                s.len = (uint32_t) (ngx_sprintf(num, "%L", e->version) - num);

                ksv_json_put_raw(w, ",\"version\":");
                ksv_json_put_str(w, s);
            }

            ksv_json_put_raw(w, ",\"state\":\"");
            ksv_json_put_raw(w, ksv_repo_state_name(e->state));
            ksv_json_put_raw(w, "\"");

            if (e->reason.len) {
                ksv_json_put_raw(w, ",\"reason\":");
                ksv_json_put_str(w, e->reason);
            }
        }

        ksv_json_put_raw(w, "}");
    }

    ksv_json_put_raw(w, "]");
}
