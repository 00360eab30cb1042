
/*
 * Copyright (C) ngx_kserve authors
 *
 * Binary tensor data: request bodies that tensor frames point into, and
 * replies made of a JSON header and the worker's output frames.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/mman.h>

#include "ngx_http_kserve_module.h"
#include "ngx_http_kserve_route.h"
#include "ngx_http_kserve_tensor.h"
#include "ksv_infer_reply.h"


typedef struct {
    zmq_msg_t                   *msgs;
    ngx_uint_t                   n;
} ngx_http_kserve_msgs_t;


static ngx_int_t ngx_http_kserve_body_take(ngx_http_request_t *r,
    ngx_buf_t *buf, ngx_http_kserve_body_t *body);
static ngx_int_t ngx_http_kserve_body_map(ngx_http_request_t *r,
    ngx_buf_t *buf, ngx_http_kserve_body_t *body);
static ngx_int_t ngx_http_kserve_body_copy(ngx_http_request_t *r,
    ngx_http_kserve_body_t *body);
static void ngx_http_kserve_body_release(void *data);
static void ngx_http_kserve_body_unref(ngx_http_kserve_body_t *body);
static void ngx_http_kserve_msgs_close(void *data);


static ngx_str_t  ngx_http_kserve_octet_type =
    ngx_string("application/octet-stream");
static ngx_str_t  ngx_http_kserve_header_name =
    ngx_string("Inference-Header-Content-Length");

static u_char     ngx_http_kserve_empty[1];


ngx_int_t
ngx_http_kserve_body_get(ngx_http_request_t *r,
    ngx_http_kserve_body_t **body)
{
    char                    *how;
    ngx_int_t                rc;
    ngx_buf_t               *buf;
    ngx_chain_t             *cl;
    ngx_pool_cleanup_t      *cln;
    ngx_http_kserve_body_t  *b;

    *body = NULL;

    /* it may outlive the request (libzmq frees it): not from the pool */

    b = ngx_calloc(sizeof(ngx_http_kserve_body_t), r->connection->log);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->refs = 1;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(b);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_kserve_body_release;
    cln->data = b;

    *body = b;

    cl = (r->request_body != NULL) ? r->request_body->bufs : NULL;

    if (cl == NULL) {
        b->data = ngx_http_kserve_empty;
        return NGX_OK;
    }

    rc = NGX_DECLINED;
    buf = cl->buf;
    how = "taken over";

    if (cl->next == NULL && !buf->in_file) {
        rc = ngx_http_kserve_body_take(r, buf, b);

    } else if (cl->next == NULL && buf->file != NULL) {
        rc = ngx_http_kserve_body_map(r, buf, b);
        how = "mapped";
    }

    if (rc == NGX_DECLINED) {
        rc = ngx_http_kserve_body_copy(r, b);
        how = "copied";
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "kserve: body of %uz bytes %s, %ui pieces", b->len, how,
                   (ngx_uint_t) (cl->next ? 2 : 1));

    return rc;
}


/*
 * A body in one buffer of the request pool (its own large allocation,
 * as nginx makes for a body beyond a few KB) is taken out of the pool:
 * the pool forgets it, the body frees it.
 */

static ngx_int_t
ngx_http_kserve_body_take(ngx_http_request_t *r, ngx_buf_t *buf,
    ngx_http_kserve_body_t *body)
{
    ngx_pool_large_t  *l;

    if (buf->start == NULL || buf->pos < buf->start || buf->last < buf->pos
        || buf->last > buf->end)
    {
        return NGX_DECLINED;
    }

    for (l = r->pool->large; l; l = l->next) {
        if (l->alloc == buf->start) {
            l->alloc = NULL;

            body->base = buf->start;
            body->size = buf->end - buf->start;
            body->data = buf->pos;
            body->len = buf->last - buf->pos;

            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* A body spooled whole to a temporary file is mapped, not read. */

static ngx_int_t
ngx_http_kserve_body_map(ngx_http_request_t *r, ngx_buf_t *buf,
    ngx_http_kserve_body_t *body)
{
    u_char  *p;
    size_t   size;

    if (buf->file->fd == NGX_INVALID_FILE || buf->file_pos < 0
        || buf->file_last <= buf->file_pos)
    {
        return NGX_DECLINED;
    }

    size = (size_t) buf->file_last;

    p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, buf->file->fd, 0);

    if (p == MAP_FAILED) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, ngx_errno,
                      "kserve: mmap(\"%V\") failed, reading it instead",
                      &buf->file->name);
        return NGX_DECLINED;
    }

    body->base = p;
    body->size = size;
    body->mapped = 1;
    body->data = p + buf->file_pos;
    body->len = (size_t) (buf->file_last - buf->file_pos);

    return NGX_OK;
}


/* Several pieces (in memory or a file): gathered once into one buffer. */

static ngx_int_t
ngx_http_kserve_body_copy(ngx_http_request_t *r,
    ngx_http_kserve_body_t *body)
{
    off_t         size;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *buf;
    ngx_chain_t  *cl;

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    p = ngx_alloc(size ? size : 1, r->connection->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->base = p;
    body->size = size;
    body->data = p;
    body->len = size;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        buf = cl->buf;

        if (ngx_buf_size(buf) == 0) {
            /* an empty buffer may have no memory at all (pos == NULL) */
            continue;
        }

        if (!buf->in_file) {
            p = ngx_cpymem(p, buf->pos, buf->last - buf->pos);
            continue;
        }

        /* spooled to a temporary file: a blocking read, as nginx does */

        size = buf->file_last - buf->file_pos;
        n = ngx_read_file(buf->file, p, size, buf->file_pos);

        if (n != size) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "kserve: read %z of %O bytes from \"%V\"",
                          n, size, &buf->file->name);
            return NGX_ERROR;
        }

        p += size;
    }

    return NGX_OK;
}


void
ngx_http_kserve_body_ref(ngx_http_kserve_body_t *body)
{
    (void) __atomic_add_fetch(&body->refs, 1, __ATOMIC_RELAXED);
}


void
ngx_http_kserve_body_free_cb(void *data, void *hint)
{
    (void) data;

    ngx_http_kserve_body_unref(hint);
}


static void
ngx_http_kserve_body_release(void *data)
{
    ngx_http_kserve_body_unref(data);
}


/* Called from nginx and from libzmq's I/O thread: no log, no pool. */

static void
ngx_http_kserve_body_unref(ngx_http_kserve_body_t *body)
{
    if (__atomic_sub_fetch(&body->refs, 1, __ATOMIC_ACQ_REL) != 0) {
        return;
    }

    if (body->mapped) {
        (void) munmap(body->base, body->size);

    } else {
        ngx_free(body->base);
    }

    ngx_free(body);
}


ngx_int_t
ngx_http_kserve_header_length(ngx_http_request_t *r, size_t *len,
    ngx_str_t *value)
{
    off_t             n;
    ngx_int_t         rc;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    rc = NGX_DECLINED;
    part = &r->headers_in.headers.part;
    h = part->elts;

    /* every one of them: a second one that differs is refused */

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return rc;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != ngx_http_kserve_header_name.len
            || ngx_strncasecmp(h[i].key.data,
                               ngx_http_kserve_header_name.data,
                               ngx_http_kserve_header_name.len)
               != 0)
        {
            continue;
        }

        if (rc == NGX_OK) {
            if (h[i].value.len != value->len
                || ngx_strncmp(h[i].value.data, value->data, value->len)
                   != 0)
            {
                *value = h[i].value;
                return NGX_ABORT;
            }

            continue;
        }

        *value = h[i].value;

        n = ngx_atoof(h[i].value.data, h[i].value.len);

        if (n == NGX_ERROR || (uint64_t) n > (size_t) -2) {
            return NGX_ERROR;
        }

        *len = (size_t) n;
        rc = NGX_OK;
    }
}


ngx_int_t
ngx_http_kserve_send_tensors(ngx_http_request_t *r, ksv_writer_t *w,
    zmq_msg_t *frames, const uint8_t *binary, ngx_uint_t n)
{
    off_t                    total;
    u_char                  *p;
    size_t                   hlen, size;
    ngx_int_t                rc;
    ngx_buf_t               *b;
    ngx_uint_t               i, k;
    ngx_chain_t             *out, **ll, *cl;
    ngx_table_elt_t         *h;
    ngx_pool_cleanup_t      *cln;
    ngx_http_kserve_msgs_t  *msgs;

    p = ngx_http_kserve_writer_detach(r, w, &hlen);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the frames live as long as the request: nginx sends from them */

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_kserve_msgs_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    msgs = cln->data;
    msgs->n = 0;
    msgs->msgs = ngx_palloc(r->pool, (n ? n : 1) * sizeof(zmq_msg_t));

    if (msgs->msgs == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_kserve_msgs_close;

    b = ngx_calloc_buf(r->pool);
    out = ngx_alloc_chain_link(r->pool);

    if (b == NULL || out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = p;
    b->last = p + hlen;
    b->memory = 1;

    out->buf = b;
    ll = &out->next;
    total = hlen;

    for (i = 0; i < n; i++) {
        if (binary[i] != KSV_REPLY_BINARY
            || zmq_msg_size(&frames[i]) == 0)
        {
            continue;
        }

        k = msgs->n;

        if (zmq_msg_init(&msgs->msgs[k]) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        msgs->n++;

        if (zmq_msg_move(&msgs->msgs[k], &frames[i]) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        size = zmq_msg_size(&msgs->msgs[k]);

        b = ngx_calloc_buf(r->pool);
        cl = ngx_alloc_chain_link(r->pool);

        if (b == NULL || cl == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = zmq_msg_data(&msgs->msgs[k]);
        b->last = b->pos + size;
        b->memory = 1;

        cl->buf = b;
        *ll = cl;
        ll = &cl->next;
        total += size;
    }

    *ll = NULL;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, NGX_SIZE_T_LEN);

    if (h == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    h->key = ngx_http_kserve_header_name;
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%uz", hlen) - p;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = total;
    r->headers_out.content_type = ngx_http_kserve_octet_type;
    r->headers_out.content_type_len = ngx_http_kserve_octet_type.len;

    /* a routed name says which variant answered, as JSON replies do */

    if (ngx_http_kserve_route_header(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out);
}


static void
ngx_http_kserve_msgs_close(void *data)
{
    ngx_http_kserve_msgs_t  *msgs = data;

    ngx_uint_t  i;

    for (i = 0; i < msgs->n; i++) {
        zmq_msg_close(&msgs->msgs[i]);
    }
}
