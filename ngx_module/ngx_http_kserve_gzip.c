
/*
 * Copyright (C) ngx_kserve authors
 *
 * Compressed inference bodies: inflating a gzip or deflate request body,
 * and the filter that compresses an inference reply when the client's
 * Accept-Encoding asks (ngx_http_kserve_gzip.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/mman.h>

#include "ngx_http_kserve_module.h"
#include "ngx_http_kserve_gzip.h"
#include "ksv_gzip.h"


typedef struct {
    /* the request body: inflated in steps (ngx_http_kserve_gzip_body) */
    ngx_http_request_t          *request;
    ngx_http_kserve_body_t      *source;    /* inflated in place at the end */
    ngx_http_kserve_body_t      *body;      /* the result, once done */
    ksv_inflate_t                inflate;
    size_t                       fed;
    size_t                       limit;
    ksv_gzip_kind_t              encoding;
    ngx_event_t                  ev;
    ngx_http_client_body_handler_pt  resume;
    ngx_int_t                    status;    /* NGX_OK or the answer's */
    u_char                       err[NGX_MAX_ERROR_STR];

    /* the reply (the filter) */
    ksv_gzip_kind_t              kind;
    ngx_chain_t                 *pending;   /* the reply so far */

    unsigned                     inflating:1;
    unsigned                     done:1;    /* inflation ended */
    unsigned                     held:1;    /* the header waits for us */
    unsigned                     sent:1;
} ngx_http_kserve_gzip_ctx_t;


static void ngx_http_kserve_gzip_step(ngx_http_kserve_gzip_ctx_t *ctx);
static void ngx_http_kserve_gzip_handler(ngx_event_t *ev);
static void ngx_http_kserve_gzip_cleanup(void *data);
static ngx_table_elt_t *ngx_http_kserve_gzip_header(ngx_http_request_t *r,
    const char *name, size_t len);
static ngx_int_t ngx_http_kserve_gzip_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_gzip_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_kserve_gzip_send(ngx_http_request_t *r,
    ngx_http_kserve_gzip_ctx_t *ctx);
static ngx_int_t ngx_http_kserve_gzip_init(ngx_conf_t *cf);


static ngx_http_module_t  ngx_http_kserve_gzip_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kserve_gzip_init,             /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kserve_gzip_module = {
    NGX_MODULE_V1,
    &ngx_http_kserve_gzip_module_ctx,      /* module context */
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


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/* ---- request bodies ------------------------------------------------------ */

/*
 * Inflation is cut into steps: each feeds the compressed body in
 * NGX_HTTP_KSERVE_GZIP_PIECE pieces until it has made STEP bytes (or
 * read STEP), so a step costs a few milliseconds whatever the ratio;
 * between steps the event loop serves everyone else.
 */

#define NGX_HTTP_KSERVE_GZIP_PIECE  4096
#define NGX_HTTP_KSERVE_GZIP_STEP   (4 * 1024 * 1024)


ngx_int_t
ngx_http_kserve_gzip_body(ngx_http_request_t *r,
    ngx_http_kserve_body_t **kb, size_t limit, u_char *err, size_t size,
    ngx_http_client_body_handler_pt resume)
{
    ngx_int_t                    rc;
    ngx_table_elt_t             *h;
    ksv_gzip_kind_t              kind;
    ngx_pool_cleanup_t          *cln;
    ngx_http_kserve_gzip_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_gzip_module);

    if (ctx != NULL && ctx->inflating) {
        if (!ctx->done) {
            return NGX_AGAIN;
        }

        if (ctx->status != NGX_OK) {
            *ngx_cpystrn(err, ctx->err, size) = '\0';
            return ctx->status;
        }

        *kb = ctx->body;            /* inflated once, for every try */
        return NGX_OK;
    }

    h = ngx_http_kserve_gzip_header(r, "Content-Encoding",
                                    sizeof("Content-Encoding") - 1);
    if (h == NULL) {
        return NGX_OK;
    }

    kind = ksv_gzip_content_encoding((char *) h->value.data, h->value.len);

    if (kind == KSV_GZIP_IDENTITY) {
        return NGX_OK;
    }

    if (kind == KSV_GZIP_UNKNOWN) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Accept-Encoding");
        ngx_str_set(&h->value, "gzip, deflate");

        *ngx_cpystrn(err, (u_char *) "Unsupported compression type", size)
            = '\0';

        return NGX_HTTP_NOT_IMPLEMENTED;
    }

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_gzip_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_kserve_gzip_module);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL || ksv_inflate_init(&ctx->inflate, limit) != 0) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_kserve_gzip_cleanup;
    cln->data = ctx;

    ctx->inflating = 1;
    ctx->request = r;
    ctx->source = *kb;
    ctx->limit = limit;
    ctx->encoding = kind;
    ctx->resume = resume;

    ngx_http_kserve_gzip_step(ctx);

    if (!ctx->done) {
        /* the next turn of the event loop goes on; the client may leave */

        ctx->ev.handler = ngx_http_kserve_gzip_handler;
        ctx->ev.data = ctx;
        ctx->ev.log = r->connection->log;
        ngx_post_event(&ctx->ev, &ngx_posted_next_events);

        r->read_event_handler = ngx_http_test_reading;

        return NGX_AGAIN;
    }

    rc = ngx_http_kserve_gzip_body(r, kb, limit, err, size, resume);

    return rc;
}


/* One step of inflation; sets done (and status) at the end. */

static void
ngx_http_kserve_gzip_step(ngx_http_kserve_gzip_ctx_t *ctx)
{
    u_char                  *out;
    size_t                   len, made, read, n;
    ksv_inflate_rc_t         rc;
    ngx_http_kserve_body_t  *src;

    src = ctx->source;
    made = ctx->inflate.len;
    read = ctx->fed;
    rc = KSV_INFLATE_MORE;

    while (ctx->fed < src->len
           && ctx->inflate.len - made < NGX_HTTP_KSERVE_GZIP_STEP
           && ctx->fed - read < NGX_HTTP_KSERVE_GZIP_STEP)
    {
        n = ngx_min(src->len - ctx->fed, NGX_HTTP_KSERVE_GZIP_PIECE);

        rc = ksv_inflate_feed(&ctx->inflate, src->data + ctx->fed, n);
        ctx->fed += n;

        if (rc < 0) {
            break;
        }
    }

    if (rc >= 0 && ctx->fed < src->len) {
        return;                     /* more next turn */
    }

    if (rc >= 0) {
        rc = ksv_inflate_end(&ctx->inflate);
    }

    ctx->done = 1;

    switch (rc) {

    case KSV_INFLATE_DONE:
        break;

    case KSV_INFLATE_TOO_BIG:
        ctx->status = NGX_HTTP_BAD_REQUEST;
        ngx_snprintf(ctx->err, sizeof(ctx->err) - 1, "Decompressed data size "
                     "exceeds the maximum allowed value of %uz bytes. Use "
                     "kserve_max_body_size to increase the limit.%Z",
                     ctx->limit);
        ksv_inflate_free(&ctx->inflate);
        return;

    case KSV_INFLATE_NOMEM:
        ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        ngx_snprintf(ctx->err, sizeof(ctx->err) - 1, "out of memory "
                     "inflating the request body%Z");
        ksv_inflate_free(&ctx->inflate);
        return;

    default:
        ctx->status = NGX_HTTP_BAD_REQUEST;
        ngx_snprintf(ctx->err, sizeof(ctx->err) - 1, "failed to decompress "
                     "the request body: not a valid %s stream%Z",
                     ctx->encoding == KSV_GZIP_GZIP ? "gzip" : "deflate");
        ksv_inflate_free(&ctx->inflate);
        return;
    }

    out = ksv_inflate_take(&ctx->inflate, &len);
    ksv_inflate_free(&ctx->inflate);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "kserve: body of %uz bytes inflated to %uz",
                   src->len, len);

    /* the source body holds the inflated bytes from now on */

    if (src->mapped) {
        (void) munmap(src->base, src->size);

    } else if (src->base != NULL) {
        ngx_free(src->base);
    }

    src->base = out;
    src->size = len;
    src->mapped = 0;
    src->data = out;
    src->len = len;

    ctx->body = src;
    ctx->status = NGX_OK;
}


static void
ngx_http_kserve_gzip_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_kserve_gzip_ctx_t  *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    ngx_http_kserve_gzip_step(ctx);

    if (!ctx->done) {
        ngx_post_event(&ctx->ev, &ngx_posted_next_events);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;

    ctx->resume(r);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_kserve_gzip_cleanup(void *data)
{
    ngx_http_kserve_gzip_ctx_t  *ctx = data;

    if (ctx->ev.posted) {
        ngx_delete_posted_event(&ctx->ev);
    }

    ksv_inflate_free(&ctx->inflate);
}


static ngx_table_elt_t *
ngx_http_kserve_gzip_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/* ---- replies ------------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_gzip_reply(ngx_http_request_t *r)
{
    ngx_table_elt_t             *h;
    ksv_gzip_kind_t              kind;
    ngx_http_kserve_gzip_ctx_t  *ctx;

    h = ngx_http_kserve_gzip_header(r, "Accept-Encoding",
                                    sizeof("Accept-Encoding") - 1);
    if (h == NULL) {
        return NGX_OK;
    }

    kind = ksv_gzip_accept((char *) h->value.data, h->value.len);

    if (kind == KSV_GZIP_IDENTITY) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_gzip_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_gzip_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_kserve_gzip_module);
    }

    ctx->kind = kind;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_gzip_header_filter(ngx_http_request_t *r)
{
    ngx_http_kserve_gzip_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_gzip_module);

    if (ctx == NULL || ctx->kind == KSV_GZIP_IDENTITY || r != r->main
        || r->header_only || r->headers_out.status != NGX_HTTP_OK
        || r->err_status != 0)
    {
        return ngx_http_next_header_filter(r);
    }

    /* the length is known once the whole reply is compressed */

    ctx->held = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_gzip_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                 *cl;
    ngx_http_kserve_gzip_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_gzip_module);

    if (ctx == NULL || !ctx->held) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx->sent) {
        return (in == NULL) ? ngx_http_next_body_filter(r, NULL) : NGX_OK;
    }

    /* the module sends its replies from memory that lives as long as the
     * request: the links are kept until the last buffer comes */

    if (ngx_chain_add_copy(r->pool, &ctx->pending, in) != NGX_OK) {
        return NGX_ERROR;
    }

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf || cl->buf->last_in_chain) {
            return ngx_http_kserve_gzip_send(r, ctx);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_gzip_send(ngx_http_request_t *r,
    ngx_http_kserve_gzip_ctx_t *ctx)
{
    u_char            *data;
    size_t             len, *sizes;
    ngx_int_t          rc;
    ngx_buf_t         *b;
    ngx_uint_t         n, i;
    const void       **pieces;
    ngx_chain_t        out, *cl;
    ksv_writer_t       w;
    ngx_table_elt_t   *h;

    n = 0;
    for (cl = ctx->pending; cl; cl = cl->next) {
        n++;
    }

    pieces = ngx_palloc(r->pool, (n + 1) * sizeof(void *));
    sizes = ngx_palloc(r->pool, (n + 1) * sizeof(size_t));

    if (pieces == NULL || sizes == NULL) {
        return NGX_ERROR;
    }

    i = 0;
    for (cl = ctx->pending; cl; cl = cl->next) {
        if (cl->buf->in_file || !ngx_buf_in_memory(cl->buf)) {
            if (ngx_buf_size(cl->buf) == 0) {
                continue;
            }

            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "kserve: a reply to compress is not in memory");
            return NGX_ERROR;
        }

        pieces[i] = cl->buf->pos;
        sizes[i] = cl->buf->last - cl->buf->pos;
        cl->buf->pos = cl->buf->last;
        i++;
    }

    ksv_writer_init(&w);

    if (ksv_deflate_pieces(ctx->kind, pieces, sizes, i, &w) != 0) {
        ksv_writer_free(&w);
        return NGX_ERROR;
    }

    data = ngx_http_kserve_writer_detach(r, &w, &len);
    if (data == NULL) {
        return NGX_ERROR;
    }

    ctx->sent = 1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Encoding");

    if (ctx->kind == KSV_GZIP_GZIP) {
        ngx_str_set(&h->value, "gzip");

    } else {
        ngx_str_set(&h->value, "deflate");
    }

    r->headers_out.content_encoding = h;
    r->headers_out.content_length_n = len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_http_clear_accept_ranges(r);
    ngx_http_weak_etag(r);

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


static ngx_int_t
ngx_http_kserve_gzip_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_kserve_gzip_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_kserve_gzip_body_filter;

    return NGX_OK;
}
