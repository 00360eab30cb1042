
/*
 * Copyright (C) ngx_kserve authors
 *
 * The ZeroMQ side of the module: one context and, per backend, one DEALER
 * socket in every nginx worker, driven by nginx's event loop.
 *
 * ZMQ_FD only says "look at ZMQ_EVENTS": it is registered edge-triggered
 * for reading, the handler drains messages while ZMQ_EVENTS has
 * ZMQ_POLLIN, and every send posts the read event again because a send
 * may consume the notification.  libzmq owns the descriptor, so the fake
 * connection around it is freed without closing it.
 *
 * Replies find their request through a table keyed by request id, never
 * through a stored pointer: a client may go away first.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_transport.h"


#define NGX_HTTP_KSERVE_MAX_FRAMES  (KSV_MAX_TENSORS + 1)

/* until an INDEX_REPLY arrives from a (re)connected worker, poll this often */
#define NGX_HTTP_KSERVE_INDEX_FIRST  100

/* how long a starting nginx worker waits for its first INDEX_REPLY */
#define NGX_HTTP_KSERVE_INDEX_PRIME  500


static ngx_int_t ngx_http_kserve_backend_init(ngx_cycle_t *cycle,
    ngx_http_kserve_backend_t *b);
static void ngx_http_kserve_read_handler(ngx_event_t *rev);
static void ngx_http_kserve_dispatch(ngx_http_kserve_backend_t *b,
    zmq_msg_t *frames, ngx_uint_t nframes, ngx_uint_t truncated);
static void ngx_http_kserve_index_reply(ngx_http_kserve_backend_t *b,
    zmq_msg_t *frame);
static void ngx_http_kserve_index_handler(ngx_event_t *ev);
static void ngx_http_kserve_index_prime(ngx_http_kserve_backend_t *b);
static void ngx_http_kserve_deadline_handler(ngx_event_t *ev);
static void ngx_http_kserve_cleanup(void *data);
static void *ngx_http_kserve_pool_alloc(void *ctx, size_t size);


static void               *ngx_http_kserve_zmq_ctx;
static uint64_t            ngx_http_kserve_last_id;

static ngx_rbtree_t        ngx_http_kserve_pending;
static ngx_rbtree_node_t   ngx_http_kserve_sentinel;

/* one reply at a time is being read: its frames live here */
static zmq_msg_t           ngx_http_kserve_frames[NGX_HTTP_KSERVE_MAX_FRAMES];


ngx_int_t
ngx_http_kserve_transport_init(ngx_cycle_t *cycle, ngx_array_t *backends)
{
    ngx_uint_t                   i;
    ngx_http_kserve_backend_t  **b;

    ngx_rbtree_init(&ngx_http_kserve_pending, &ngx_http_kserve_sentinel,
                    ngx_rbtree_insert_value);

    ngx_http_kserve_zmq_ctx = zmq_ctx_new();

    if (ngx_http_kserve_zmq_ctx == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "kserve: zmq_ctx_new() failed");
        return NGX_ERROR;
    }

    b = backends->elts;

    for (i = 0; i < backends->nelts; i++) {
        if (ngx_http_kserve_backend_init(cycle, b[i]) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_kserve_index_prime(b[i]);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_backend_init(ngx_cycle_t *cycle, ngx_http_kserve_backend_t *b)
{
    int                fd, one, zero;
    size_t             len;
    ngx_str_t         *ep;
    ngx_uint_t         i;
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    b->socket = zmq_socket(ngx_http_kserve_zmq_ctx, ZMQ_DEALER);

    if (b->socket == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "kserve: zmq_socket() failed: %s",
                      zmq_strerror(zmq_errno()));
        return NGX_ERROR;
    }

    one = 1;
    zero = 0;

    /* nothing may wait in a queue for a peer that is not there */

    if (zmq_setsockopt(b->socket, ZMQ_LINGER, &zero, sizeof(int)) != 0
        || zmq_setsockopt(b->socket, ZMQ_IMMEDIATE, &one, sizeof(int)) != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "kserve: zmq_setsockopt() failed: %s",
                      zmq_strerror(zmq_errno()));
        return NGX_ERROR;
    }

    ep = b->endpoints.elts;

    for (i = 0; i < b->endpoints.nelts; i++) {
        if (zmq_connect(b->socket, (char *) ep[i].data) != 0) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "kserve: zmq_connect(\"%V\") failed: %s",
                          &ep[i], zmq_strerror(zmq_errno()));
            return NGX_ERROR;
        }
    }

    len = sizeof(int);

    if (zmq_getsockopt(b->socket, ZMQ_FD, &fd, &len) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "kserve: zmq_getsockopt(ZMQ_FD) failed: %s",
                      zmq_strerror(zmq_errno()));
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = b;

    rev = c->read;
    rev->handler = ngx_http_kserve_read_handler;
    rev->log = cycle->log;
    c->write->log = cycle->log;

    b->connection = c;

    if (ngx_add_event(rev, NGX_READ_EVENT,
                      (ngx_event_flags & NGX_USE_CLEAR_EVENT)
                      ? NGX_CLEAR_EVENT : NGX_LEVEL_EVENT)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    b->index_event.handler = ngx_http_kserve_index_handler;
    b->index_event.data = b;
    b->index_event.log = cycle->log;
    b->index_event.cancelable = 1;

    ngx_add_timer(&b->index_event, 1);

    return NGX_OK;
}


void
ngx_http_kserve_transport_exit(ngx_cycle_t *cycle, ngx_array_t *backends)
{
    ngx_uint_t                   i;
    ngx_connection_t            *c;
    ngx_http_kserve_backend_t  **b;

    if (ngx_http_kserve_zmq_ctx == NULL) {
        return;
    }

    b = backends->elts;

    for (i = 0; i < backends->nelts; i++) {

        if (b[i]->index_event.timer_set) {
            ngx_del_timer(&b[i]->index_event);
        }

        c = b[i]->connection;

        if (c != NULL) {
            /* the descriptor is libzmq's: take it out, never close it */

            if (c->read->active) {
                ngx_del_event(c->read, NGX_READ_EVENT, 0);
            }

            if (c->read->posted) {
                ngx_delete_posted_event(c->read);
            }

            ngx_free_connection(c);
            c->fd = (ngx_socket_t) -1;
            b[i]->connection = NULL;
        }

        if (b[i]->socket != NULL) {
            zmq_close(b[i]->socket);
            b[i]->socket = NULL;
        }

        if (b[i]->index_pool != NULL) {
            ngx_destroy_pool(b[i]->index_pool);
            b[i]->index_pool = NULL;
        }
    }

    zmq_ctx_term(ngx_http_kserve_zmq_ctx);
    ngx_http_kserve_zmq_ctx = NULL;
}


uint64_t
ngx_http_kserve_next_id(void)
{
    return ++ngx_http_kserve_last_id;
}


ngx_int_t
ngx_http_kserve_send(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, uint64_t id, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_msec_t timeout)
{
    ngx_err_t            err;
    ngx_uint_t           i;
    ngx_http_cleanup_t  *cln;
    ngx_http_request_t  *r;

    r = p->request;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        goto failed;
    }

    for (i = 0; i < nframes; i++) {
        if (zmq_msg_send(&frames[i], b->socket,
                         ZMQ_DONTWAIT | (i + 1 < nframes ? ZMQ_SNDMORE : 0))
            == -1)
        {
            /*
             * only the first frame can meet a full queue or no peer:
             * the rest of a message that was started always follows
             */

            err = zmq_errno();

            if (i == 0 && err == EAGAIN) {
                /* not ready until the worker answers an INDEX again */
                b->unreachable = 1;

                for ( /* void */ ; i < nframes; i++) {
                    zmq_msg_close(&frames[i]);
                }

                return NGX_AGAIN;
            }

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "kserve: zmq_msg_send() failed: %s",
                          zmq_strerror(err));
            goto failed_at;
        }
    }

    ngx_post_event(b->connection->read, &ngx_posted_events);

    p->node.key = (ngx_rbtree_key_t) id;
    ngx_rbtree_insert(&ngx_http_kserve_pending, &p->node);
    p->waiting = 1;

    p->deadline.handler = ngx_http_kserve_deadline_handler;
    p->deadline.data = p;
    p->deadline.log = r->connection->log;
    ngx_add_timer(&p->deadline, timeout);

    cln->handler = ngx_http_kserve_cleanup;
    cln->data = p;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "kserve: sent request %uL", id);

    return NGX_OK;

failed:

    i = 0;

failed_at:

    for ( /* void */ ; i < nframes; i++) {
        zmq_msg_close(&frames[i]);
    }

    return NGX_ERROR;
}


ngx_int_t
ngx_http_kserve_send_oneway(ngx_http_kserve_backend_t *b, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_log_t *log)
{
    ngx_err_t   err;
    ngx_uint_t  i;

    for (i = 0; i < nframes; i++) {
        if (zmq_msg_send(&frames[i], b->socket,
                         ZMQ_DONTWAIT | (i + 1 < nframes ? ZMQ_SNDMORE : 0))
            == -1)
        {
            err = zmq_errno();

            for ( /* void */ ; i < nframes; i++) {
                zmq_msg_close(&frames[i]);
            }

            if (err == EAGAIN) {
                return NGX_AGAIN;
            }

            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "kserve: zmq_msg_send() failed: %s",
                          zmq_strerror(err));
            return NGX_ERROR;
        }
    }

    ngx_post_event(b->connection->read, &ngx_posted_events);

    return NGX_OK;
}


static void
ngx_http_kserve_cleanup(void *data)
{
    ngx_http_kserve_pending_t  *p = data;

    /* the request goes away first: a late reply finds nothing */

    if (p->waiting) {
        ngx_rbtree_delete(&ngx_http_kserve_pending, &p->node);
        p->waiting = 0;
    }

    if (p->deadline.timer_set) {
        ngx_del_timer(&p->deadline);
    }
}


static ngx_http_kserve_pending_t *
ngx_http_kserve_lookup(uint64_t id)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) id;

    node = ngx_http_kserve_pending.root;
    sentinel = ngx_http_kserve_pending.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        return (ngx_http_kserve_pending_t *) node;
    }

    return NULL;
}


static void
ngx_http_kserve_complete(ngx_http_kserve_pending_t *p, zmq_msg_t *frames,
    ngx_uint_t nframes)
{
    ngx_connection_t  *c;

    if (p->waiting) {
        ngx_rbtree_delete(&ngx_http_kserve_pending, &p->node);
        p->waiting = 0;
    }

    if (p->deadline.timer_set) {
        ngx_del_timer(&p->deadline);
    }

    c = p->request->connection;

    /* may free the request, and p with it */
    p->handler(p, frames, nframes);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_kserve_deadline_handler(ngx_event_t *ev)
{
    ngx_http_kserve_pending_t  *p = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "kserve: request %uL timed out", (uint64_t) p->node.key);

    ngx_http_kserve_complete(p, NULL, 0);
}


static void
ngx_http_kserve_read_handler(ngx_event_t *rev)
{
    int                         events, more;
    size_t                      len;
    ngx_uint_t                  n, i, truncated;
    zmq_msg_t                   extra, *frames;
    ngx_connection_t           *c;
    ngx_http_kserve_backend_t  *b;

    c = rev->data;
    b = c->data;
    frames = ngx_http_kserve_frames;

    for ( ;; ) {
        len = sizeof(int);

        if (zmq_getsockopt(b->socket, ZMQ_EVENTS, &events, &len) != 0) {
            ngx_log_error(NGX_LOG_ERR, rev->log, 0,
                          "kserve: zmq_getsockopt(ZMQ_EVENTS) failed: %s",
                          zmq_strerror(zmq_errno()));
            return;
        }

        if (!(events & ZMQ_POLLIN)) {
            return;
        }

        /* one multipart message; frames past the limit are dropped */

        n = 0;
        truncated = 0;

        for ( ;; ) {
            if (n < NGX_HTTP_KSERVE_MAX_FRAMES) {
                zmq_msg_init(&frames[n]);

                if (zmq_msg_recv(&frames[n], b->socket, ZMQ_DONTWAIT) == -1) {
                    zmq_msg_close(&frames[n]);

                    if (n == 0) {
                        /* ZMQ_EVENTS said POLLIN, yet nothing came */
                        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rev->log, 0,
                                       "kserve: zmq_msg_recv() failed: %s",
                                       zmq_strerror(zmq_errno()));
                        return;
                    }

                    break;
                }

                more = zmq_msg_more(&frames[n]);
                n++;

            } else {
                zmq_msg_init(&extra);

                if (zmq_msg_recv(&extra, b->socket, ZMQ_DONTWAIT) == -1) {
                    zmq_msg_close(&extra);
                    break;
                }

                more = zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                truncated = 1;
            }

            if (!more) {
                break;
            }
        }

        if (n) {
            ngx_http_kserve_dispatch(b, frames, n, truncated);
        }

        for (i = 0; i < n; i++) {
            zmq_msg_close(&frames[i]);
        }
    }
}


static void
ngx_http_kserve_dispatch(ngx_http_kserve_backend_t *b, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_uint_t truncated)
{
    ksv_reader_t                rd;
    ksv_prefix_t                prefix;
    ngx_http_kserve_pending_t  *p;

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));

    if (ksv_read_prefix(&rd, &prefix) != 0 || truncated) {
        if (!b->logged_malformed) {
            ngx_log_error(NGX_LOG_ERR, b->connection->log, 0,
                          "kserve: dropped a malformed message from the "
                          "worker (version %ud, kind %ud, %ui frames%s); "
                          "further ones are not logged",
                          (ngx_uint_t) prefix.version,
                          (ngx_uint_t) prefix.kind, nframes,
                          truncated ? ", too many" : "");
            b->logged_malformed = 1;
        }

        return;
    }

    switch (prefix.kind) {

    case KSV_MSG_INDEX_REPLY:
        ngx_http_kserve_index_reply(b, &frames[0]);
        return;

    case KSV_MSG_INFER_REPLY:
    case KSV_MSG_STATS_REPLY:
    case KSV_MSG_ERROR:
        break;

    default:
        if (!b->logged_malformed) {
            ngx_log_error(NGX_LOG_ERR, b->connection->log, 0,
                          "kserve: dropped an unexpected message of kind %ud "
                          "from the worker; further ones are not logged",
                          (ngx_uint_t) prefix.kind);
            b->logged_malformed = 1;
        }

        return;
    }

    p = ngx_http_kserve_lookup(prefix.id);

    if (p == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, b->connection->log, 0,
                       "kserve: dropped a late reply for request %uL",
                       prefix.id);
        return;
    }

    ngx_http_kserve_complete(p, frames, nframes);
}


/* ---- statistics ------------------------------------------------------ */

ngx_int_t
ngx_http_kserve_send_stats(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ngx_str_t *model, ngx_str_t *version,
    ngx_msec_t timeout)
{
    size_t        len;
    uint8_t      *header;
    uint64_t      id;
    ksv_str_t     m, v;
    zmq_msg_t     frame;
    ksv_writer_t  w;

    m.data = (char *) model->data;
    m.len = (uint32_t) model->len;
    v.data = (char *) version->data;
    v.len = (uint32_t) version->len;

    id = ngx_http_kserve_next_id();

    ksv_writer_init(&w);
    ksv_encode_stats(&w, id, m, v);

    if (w.failed) {
        ksv_writer_free(&w);
        return NGX_ERROR;
    }

    header = ksv_writer_detach(&w, &len);

    if (zmq_msg_init_data(&frame, header, len, ksv_writer_free_cb, NULL)
        != 0)
    {
        ksv_writer_free_cb(header, NULL);
        return NGX_ERROR;
    }

    return ngx_http_kserve_send(b, p, id, &frame, 1, timeout);
}


ngx_int_t
ngx_http_kserve_stats_reply(ngx_pool_t *pool, zmq_msg_t *frames,
    ngx_uint_t nframes, ksv_stats_t *stats, ksv_error_t *error)
{
    ksv_alloc_t   alloc;
    ksv_prefix_t  prefix;
    ksv_reader_t  rd;

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));
    (void) ksv_read_prefix(&rd, &prefix);

    if (prefix.kind == KSV_MSG_ERROR) {
        if (nframes != 1 || ksv_decode_error(&rd, error) != 0) {
            return NGX_ERROR;
        }

        return NGX_DECLINED;
    }

    alloc.alloc = ngx_http_kserve_pool_alloc;
    alloc.ctx = pool;

    if (prefix.kind != KSV_MSG_STATS_REPLY || nframes != 1
        || ksv_decode_stats_reply(&rd, &alloc, stats) != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* ---- the model index ------------------------------------------------- */

static void
ngx_http_kserve_index_handler(ngx_event_t *ev)
{
    ngx_msec_t                  next;
    ksv_writer_t                w;
    ngx_http_kserve_backend_t  *b;

    b = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ksv_writer_init(&w);
    ksv_encode_index(&w, ngx_http_kserve_next_id(),
                     b->index_known ? b->index.generation : 0);

    if (w.failed) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "kserve: cannot encode INDEX: out of memory");

    } else if (zmq_send(b->socket, w.buf, w.len, ZMQ_DONTWAIT) == -1) {
        /* EAGAIN: no worker connected (ZMQ_IMMEDIATE), or its queue full */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "kserve: INDEX not sent: %s",
                       zmq_strerror(zmq_errno()));

        b->unreachable = 1;

    } else {
        ngx_post_event(b->connection->read, &ngx_posted_events);
    }

    ksv_writer_free(&w);

    next = b->index_interval;

    /* look for a worker that is not there yet more often */

    if ((!b->index_known || b->unreachable)
        && next > NGX_HTTP_KSERVE_INDEX_FIRST)
    {
        next = NGX_HTTP_KSERVE_INDEX_FIRST;
    }

    ngx_add_timer(ev, next);
}


/*
 * A new nginx worker (start, reload, a replaced crashed one) asks for the
 * model index before it accepts connections, so its first requests find
 * the models instead of "kserve worker unavailable".  This is the one
 * place the module waits on ZeroMQ, and it is before the event loop
 * serves anything: clients that connect meanwhile wait in the listen
 * queue.  A kserve worker that is not there costs each nginx worker
 * NGX_HTTP_KSERVE_INDEX_PRIME ms once; the index timer takes over after.
 */

static void
ngx_http_kserve_index_prime(ngx_http_kserve_backend_t *b)
{
    ngx_msec_t      start;
    zmq_pollitem_t  item;

    ngx_time_update();
    start = ngx_current_msec;

    item.socket = b->socket;
    item.fd = -1;
    item.events = ZMQ_POLLIN;
    item.revents = 0;

    while (!b->index_known
           && ngx_current_msec - start < NGX_HTTP_KSERVE_INDEX_PRIME)
    {
        /* (re)sends INDEX; before the connection is up it cannot */
        ngx_http_kserve_index_handler(&b->index_event);

        if (zmq_poll(&item, 1, 20) > 0) {
            ngx_http_kserve_read_handler(b->connection->read);
        }

        ngx_time_update();
    }
}


static void
ngx_http_kserve_index_reply(ngx_http_kserve_backend_t *b, zmq_msg_t *frame)
{
    size_t         size;
    u_char        *copy;
    uint8_t        full;
    uint64_t       generation;
    ngx_log_t     *log;
    ngx_pool_t    *pool;
    ksv_alloc_t    alloc;
    ksv_index_t    index;
    ksv_prefix_t   prefix;
    ksv_reader_t   rd;

    log = b->connection->log;
    size = zmq_msg_size(frame);

    /* the common answer, "unchanged", is read without copying */

    ksv_reader_init(&rd, zmq_msg_data(frame), size);

    (void) ksv_read_prefix(&rd, &prefix);
    generation = ksv_get_u64(&rd);
    full = ksv_get_u8(&rd);

    if (rd.failed) {
        goto malformed;
    }

    if (!full) {
        if (b->index_known && generation == b->index.generation) {
            b->index_time = ngx_current_msec;
            b->unreachable = 0;
        }

        return;
    }

    /* decoded strings point into the frame: keep a copy with the index */

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        return;
    }

    copy = ngx_pnalloc(pool, size);
    if (copy == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    ngx_memcpy(copy, zmq_msg_data(frame), size);

    alloc.alloc = ngx_http_kserve_pool_alloc;
    alloc.ctx = pool;

    ksv_reader_init(&rd, copy, size);

    if (ksv_read_prefix(&rd, &prefix) != 0
        || ksv_decode_index_reply(&rd, &alloc, &index) != 0)
    {
        ngx_destroy_pool(pool);
        goto malformed;
    }

    if (!b->index_known || b->index.generation != index.generation) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "kserve: model index generation %uL, %ui models",
                      index.generation, (ngx_uint_t) index.nmodels);
    }

    if (b->index_pool != NULL) {
        ngx_destroy_pool(b->index_pool);
    }

    b->index_pool = pool;
    b->index = index;
    b->index_time = ngx_current_msec;
    b->index_known = 1;
    b->unreachable = 0;

    return;

malformed:

    if (!b->logged_malformed) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "kserve: dropped a malformed INDEX_REPLY from the "
                      "worker; further ones are not logged");
        b->logged_malformed = 1;
    }
}


static void *
ngx_http_kserve_pool_alloc(void *ctx, size_t size)
{
    return ngx_palloc(ctx, size);
}


ngx_http_kserve_index_state_e
ngx_http_kserve_index_state(ngx_http_kserve_backend_t *b)
{
    if (!b->index_known) {
        return NGX_HTTP_KSERVE_INDEX_NONE;
    }

    if (b->unreachable
        || ngx_current_msec - b->index_time > 3 * b->index_interval)
    {
        return NGX_HTTP_KSERVE_INDEX_STALE;
    }

    return NGX_HTTP_KSERVE_INDEX_FRESH;
}


ksv_model_status_t *
ngx_http_kserve_find_model(ngx_http_kserve_backend_t *b, ngx_str_t *name)
{
    uint32_t             i;
    ksv_model_status_t  *m;

    if (!b->index_known) {
        return NULL;
    }

    m = b->index.models;

    for (i = 0; i < b->index.nmodels; i++) {
        if (m[i].config.name.len == name->len
            && ngx_strncmp(m[i].config.name.data, name->data, name->len) == 0)
        {
            return &m[i];
        }
    }

    return NULL;
}


/* ---- configuration ---------------------------------------------------- */

ngx_http_kserve_backend_t *
ngx_http_kserve_backend_get(ngx_conf_t *cf, ngx_array_t *backends,
    ngx_str_t *value, ngx_uint_t n)
{
    ngx_str_t                   *ep;
    ngx_uint_t                   i, j;
    ngx_http_kserve_backend_t   *b, **bp;

    if (n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "no endpoint given");
        return NULL;
    }

    for (i = 0; i < n; i++) {
        if (!(value[i].len > 6
              && (ngx_strncmp(value[i].data, "ipc://", 6) == 0
                  || ngx_strncmp(value[i].data, "tcp://", 6) == 0)))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid endpoint \"%V\": "
                               "ipc:// or tcp:// expected", &value[i]);
            return NULL;
        }
    }

    /* the same endpoint list means the same socket */

    bp = backends->elts;

    for (i = 0; i < backends->nelts; i++) {
        if (bp[i]->endpoints.nelts != n) {
            continue;
        }

        ep = bp[i]->endpoints.elts;

        for (j = 0; j < n; j++) {
            if (ep[j].len != value[j].len
                || ngx_strncmp(ep[j].data, value[j].data, ep[j].len) != 0)
            {
                break;
            }
        }

        if (j == n) {
            return bp[i];
        }
    }

    b = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_backend_t));
    if (b == NULL) {
        return NULL;
    }

    if (ngx_array_init(&b->endpoints, cf->pool, n, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        ep = ngx_array_push(&b->endpoints);
        if (ep == NULL) {
            return NULL;
        }

        /* zmq_connect() wants a C string */

        ep->len = value[i].len;
        ep->data = ngx_pnalloc(cf->pool, value[i].len + 1);
        if (ep->data == NULL) {
            return NULL;
        }

        ngx_memcpy(ep->data, value[i].data, value[i].len);
        ep->data[ep->len] = '\0';
    }

    b->index_interval = NGX_CONF_UNSET_MSEC;

    bp = ngx_array_push(backends);
    if (bp == NULL) {
        return NULL;
    }

    *bp = b;

    return b;
}
