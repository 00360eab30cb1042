
/*
 * Copyright (C) ngx_kserve authors
 *
 * The ZeroMQ side of the module: one context and, per backend, a
 * control DEALER per kserve-worker and the data ROUTER (instances) in
 * every nginx worker, driven by nginx's event loop; the header says why
 * the data socket is a ROUTER connected to every instance (the Freelance
 * pattern, model three), and how what several workers say is merged.
 *
 * ZMQ_FD only says "look at ZMQ_EVENTS": it is registered edge-triggered
 * for reading, the handler drains messages while ZMQ_EVENTS has
 * ZMQ_POLLIN, and every send posts the read event again because a send
 * may consume the notification.  libzmq owns the descriptor, so the fake
 * connection around it is freed without closing it.
 *
 * Replies find their request through a table keyed by request id, never
 * through a stored pointer: a client may go away first.  Each instance
 * (a peer) also keeps the requests out there, so those fail at once,
 * with the reason, when the index says the instance died.
 *
 * How many requests each instance has from all nginx workers of the host
 * is a table in the backend's shared memory zone (the header says why);
 * each nginx worker also keeps its own count per peer, which is what it
 * must take back from the table when it lets go of the peer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ngx_http_kserve_transport.h"
#include "ksv_merge.h"


/* a reply's frames, and the routing id before them on the data socket */
#define NGX_HTTP_KSERVE_MAX_FRAMES  (KSV_MAX_TENSORS + 2)

/* until an INDEX_REPLY arrives from a (re)connected worker, poll this often */
#define NGX_HTTP_KSERVE_INDEX_FIRST  100

/* how long a starting nginx worker waits for its first INDEX_REPLY */
#define NGX_HTTP_KSERVE_INDEX_PRIME  500

/* the workers of a backend it waits for so (the others come later) */
#define NGX_HTTP_KSERVE_PRIME_MAX    64

/*
 * Messages the control socket may hold for a connected worker that does
 * not read them (stopped, stuck): far more than are ever outstanding, so
 * a send refused (EAGAIN) means no worker is connected, not a full queue.
 */
#define NGX_HTTP_KSERVE_CONTROL_HWM  65536

/* how long an instance that left the index stays connected, unused */
#define NGX_HTTP_KSERVE_PEER_LINGER  10000

/* a backend's shared outstanding counts: about 2000 instances */
#define NGX_HTTP_KSERVE_SHPEERS_SIZE  (256 * 1024)


/*
 * An instance's entry in the shared table, by its endpoint (sn.str, right
 * after the entry): the requests out there from every nginx worker, and
 * how many peers of every nginx worker point here.  refs changes under
 * the zone's mutex, with index updates and sweeps only; outstanding is
 * changed by atomic adds, per request.
 */
typedef struct {
    ngx_str_node_t               sn;
    ngx_atomic_t                 outstanding;
    ngx_uint_t                   refs;
} ngx_http_kserve_shpeer_t;


/*
 * The zone's table, keyed by ngx_crc32_short() of the endpoint.  Its
 * insert function is nginx's own ngx_str_rbtree_insert_value(): the
 * pointer lives in shared memory across reloads, so it must not point
 * into this module, which a reload may map elsewhere.
 */
struct ngx_http_kserve_shpeers_s {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
};


/*
 * An instance process of the index, by its endpoint (sn.str, NUL ended,
 * also its routing id).  What it serves and its state are rewritten by
 * every full index; the peer itself lives from the index that lists it
 * first until NGX_HTTP_KSERVE_PEER_LINGER after the last one that did.
 */
struct ngx_http_kserve_peer_s {
    ngx_str_node_t               sn;
    ngx_queue_t                  link;           /* in b->peer_list */
    ngx_queue_t                  pending;        /* requests out there */
    ngx_http_kserve_backend_t   *backend;
    ngx_str_t                    name;           /* ngx_alloc()ed */
    ngx_str_t                    model;          /* ngx_alloc()ed */
    int64_t                      version;
    ngx_uint_t                   pid;
    ngx_uint_t                   outstanding;    /* length of pending */
    ngx_http_kserve_shpeer_t    *sh;             /* all nginx workers' */
    ngx_msec_t                   gone_time;
    unsigned                     state:2;        /* ksv_version_state_t */
    unsigned                     listed:1;       /* by the index just read */
    unsigned                     gone:1;         /* left the index */
    unsigned                     tried:1;        /* during one send */
};


/* the READY instances of one version */
struct ngx_http_kserve_ready_s {
    ngx_http_kserve_peer_t     **peer;
    ngx_uint_t                   npeers;
};


/* requests of one version with preserve_ordering, in the order sent */
struct ngx_http_kserve_order_s {
    ngx_queue_t                  link;           /* in b->orders */
    ngx_queue_t                  requests;       /* p->order_queue */
    ngx_event_t                  release;
    ngx_str_t                    model;
    int64_t                      version;
};


/*
 * A control request sent to several kserve-workers: each one's reply
 * (the header frame, copied into the request's pool) by the worker's
 * place in b->controls, until all have answered.
 */
typedef struct {
    ksv_str_t                    reply;          /* data NULL: none yet */
    unsigned                     sent:1;
} ngx_http_kserve_part_t;

struct ngx_http_kserve_gather_s {
    ngx_http_kserve_part_t      *parts;
    ngx_uint_t                   nparts;
    ngx_uint_t                   outstanding;
    unsigned                     every:1;        /* load, unload */
};


/* what an index update fails at once: the requests of one instance */
typedef struct {
    ngx_queue_t                  link;
    ngx_queue_t                  requests;
    ngx_str_t                    message;
} ngx_http_kserve_doomed_t;


static ngx_int_t ngx_http_kserve_backend_init(ngx_cycle_t *cycle,
    ngx_http_kserve_backend_t *b);
static ngx_int_t ngx_http_kserve_control_init(ngx_cycle_t *cycle,
    ngx_http_kserve_backend_t *b);
static ngx_int_t ngx_http_kserve_socket_open(ngx_cycle_t *cycle,
    void *data, ngx_event_handler_pt handler, ngx_http_kserve_socket_t *s,
    int type);
static void ngx_http_kserve_socket_close(ngx_http_kserve_socket_t *s);
static ngx_int_t ngx_http_kserve_send_frames(ngx_http_kserve_socket_t *s,
    ngx_str_t *to, zmq_msg_t *frames, ngx_uint_t nframes, ngx_err_t *err);
static void ngx_http_kserve_close_frames(zmq_msg_t *frames,
    ngx_uint_t nframes);
static ngx_http_kserve_ready_t *ngx_http_kserve_ready_peers(
    ngx_http_kserve_backend_t *b, ksv_model_status_t *ms,
    ksv_version_status_t *vs);
static ngx_int_t ngx_http_kserve_send_instance(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_ready_t *rd, zmq_msg_t *frames, ngx_uint_t nframes,
    ngx_log_t *log, ngx_http_kserve_peer_t **sent);
static ngx_http_kserve_peer_t *ngx_http_kserve_peer_pick(
    ngx_http_kserve_backend_t *b, ngx_http_kserve_ready_t *rd);
static ngx_uint_t ngx_http_kserve_peer_outstanding(
    ngx_http_kserve_peer_t *peer);
static void ngx_http_kserve_peer_count(ngx_http_kserve_peer_t *peer,
    ngx_int_t n);
static ngx_uint_t ngx_http_kserve_control_every(zmq_msg_t *frame);
static void ngx_http_kserve_wait(ngx_http_kserve_pending_t *p, uint64_t id,
    ngx_msec_t timeout, ngx_http_cleanup_t *cln);
static ngx_int_t ngx_http_kserve_order(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ksv_model_status_t *ms,
    ksv_version_status_t *vs);
static void ngx_http_kserve_order_release(ngx_event_t *ev);
static void ngx_http_kserve_cleanup(void *data);
static void ngx_http_kserve_forget(ngx_http_kserve_pending_t *p,
    ngx_uint_t cancel);
static void ngx_http_kserve_cancel(ngx_http_kserve_peer_t *peer,
    uint64_t id, ngx_log_t *log);
static void ngx_http_kserve_complete(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes);
static void ngx_http_kserve_deliver_held(ngx_http_kserve_pending_t *p);
static void ngx_http_kserve_fail(ngx_http_kserve_pending_t *p,
    ksv_status_t code, ngx_str_t *message);
static void ngx_http_kserve_deadline_handler(ngx_event_t *ev);
static void ngx_http_kserve_data_read_handler(ngx_event_t *rev);
static void ngx_http_kserve_control_read_handler(ngx_event_t *rev);
static ngx_uint_t ngx_http_kserve_readable(ngx_http_kserve_socket_t *s,
    ngx_log_t *log);
static ngx_uint_t ngx_http_kserve_recv(ngx_http_kserve_socket_t *s,
    zmq_msg_t *frames, ngx_uint_t *truncated, ngx_log_t *log);
static ngx_http_kserve_pending_t *ngx_http_kserve_lookup(uint64_t id);
static void ngx_http_kserve_worker_reply(ngx_http_kserve_control_t *ctl,
    zmq_msg_t *frames, ngx_uint_t nframes, ngx_uint_t truncated);
static void ngx_http_kserve_gather_reply(ngx_http_kserve_control_t *ctl,
    ngx_http_kserve_pending_t *p, zmq_msg_t *frames, ngx_uint_t nframes);
static void ngx_http_kserve_gather_done(ngx_http_kserve_pending_t *p);
static void ngx_http_kserve_instance_reply(ngx_http_kserve_backend_t *b,
    zmq_msg_t *frames, ngx_uint_t nframes, ngx_uint_t truncated);
static void ngx_http_kserve_malformed(ngx_http_kserve_backend_t *b,
    const char *from, ksv_prefix_t *prefix, ngx_uint_t nframes,
    ngx_uint_t truncated);
static void ngx_http_kserve_index_reply(ngx_http_kserve_control_t *ctl,
    zmq_msg_t *frame);
static void ngx_http_kserve_index_merge(ngx_http_kserve_backend_t *b);
static void ngx_http_kserve_index_handler(ngx_event_t *ev);
static void ngx_http_kserve_index_prime(ngx_http_kserve_backend_t *b);
static void ngx_http_kserve_peers_update(ngx_http_kserve_backend_t *b,
    ngx_queue_t *doomed);
static ngx_http_kserve_peer_t *ngx_http_kserve_peer_get(
    ngx_http_kserve_backend_t *b, ksv_instance_status_t *is);
static void ngx_http_kserve_peer_set(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_peer_t *peer, ksv_model_status_t *ms,
    ksv_version_status_t *vs, ksv_instance_status_t *is,
    ngx_queue_t *doomed);
static void ngx_http_kserve_peer_doom(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_peer_t *peer, ngx_queue_t *doomed, const char *fmt,
    ...);
static void ngx_http_kserve_peers_fail(ngx_queue_t *doomed);
static void ngx_http_kserve_peers_sweep(ngx_http_kserve_backend_t *b,
    ngx_uint_t all);
static void ngx_http_kserve_shpeer_attach(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_peer_t *peer);
static void ngx_http_kserve_shpeer_detach(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_peer_t *peer);
static ngx_int_t ngx_http_kserve_copy_str(ngx_str_t *dst, ksv_str_t *src,
    ngx_log_t *log);
static ngx_int_t ngx_http_kserve_shpeers_zone(ngx_conf_t *cf,
    ngx_http_kserve_backend_t *b);
static ngx_int_t ngx_http_kserve_shpeers_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_kserve_endpoint_valid(ngx_str_t *ep);
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
    int         one;
    u_char      id[NGX_INT64_LEN + 24], *last;

    ngx_rbtree_init(&b->peers, &b->peers_sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&b->peer_list);
    ngx_queue_init(&b->orders);

    if (ngx_http_kserve_control_init(cycle, b) != NGX_OK
        || ngx_http_kserve_socket_open(cycle, b,
                                       ngx_http_kserve_data_read_handler,
                                       &b->data, ZMQ_ROUTER)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * data: see the header; the routing id is this socket's alone, among
     * every nginx worker of every host an instance talks to
     */

    one = 1;

    last = ngx_sprintf(id, "n%P.%08xD%08xD", ngx_pid,
                       (uint32_t) ngx_random(),
                       (uint32_t) (ngx_random() ^ ngx_current_msec));

    if (zmq_setsockopt(b->data.zmq, ZMQ_ROUTING_ID, id, last - id) != 0
        || zmq_setsockopt(b->data.zmq, ZMQ_ROUTER_MANDATORY, &one,
                          sizeof(int))
           != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "kserve: zmq_setsockopt() failed: %s",
                      zmq_strerror(zmq_errno()));
        return NGX_ERROR;
    }

    b->index_event.handler = ngx_http_kserve_index_handler;
    b->index_event.data = b;
    b->index_event.log = cycle->log;
    b->index_event.cancelable = 1;

    ngx_add_timer(&b->index_event, 1);

    return NGX_OK;
}


/*
 * A DEALER per kserve-worker: nothing may wait in a queue for a worker
 * that is not there (ZMQ_IMMEDIATE), and the queue for one that is never
 * fills.
 */

static ngx_int_t
ngx_http_kserve_control_init(ngx_cycle_t *cycle, ngx_http_kserve_backend_t *b)
{
    int                         one, hwm;
    ngx_str_t                  *ep;
    ngx_uint_t                  i;
    ngx_http_kserve_control_t  *ctl;

    b->controls = ngx_pcalloc(cycle->pool, b->endpoints.nelts
                                           * sizeof(ngx_http_kserve_control_t));
    if (b->controls == NULL) {
        return NGX_ERROR;
    }

    b->ncontrols = b->endpoints.nelts;

    one = 1;
    hwm = NGX_HTTP_KSERVE_CONTROL_HWM;
    ep = b->endpoints.elts;

    for (i = 0; i < b->ncontrols; i++) {
        ctl = &b->controls[i];
        ctl->endpoint = &ep[i];
        ctl->backend = b;

        if (ngx_http_kserve_socket_open(cycle, ctl,
                                        ngx_http_kserve_control_read_handler,
                                        &ctl->socket, ZMQ_DEALER)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (zmq_setsockopt(ctl->socket.zmq, ZMQ_IMMEDIATE, &one, sizeof(int))
            != 0
            || zmq_setsockopt(ctl->socket.zmq, ZMQ_SNDHWM, &hwm, sizeof(int))
               != 0)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "kserve: zmq_setsockopt() failed: %s",
                          zmq_strerror(zmq_errno()));
            return NGX_ERROR;
        }

        if (zmq_connect(ctl->socket.zmq, (char *) ep[i].data) != 0) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "kserve: zmq_connect(\"%V\") failed: %s",
                          &ep[i], zmq_strerror(zmq_errno()));
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_socket_open(ngx_cycle_t *cycle, void *data,
    ngx_event_handler_pt handler, ngx_http_kserve_socket_t *s, int type)
{
    int                fd, zero;
    size_t             len;
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    s->zmq = zmq_socket(ngx_http_kserve_zmq_ctx, type);

    if (s->zmq == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "kserve: zmq_socket() failed: %s",
                      zmq_strerror(zmq_errno()));
        return NGX_ERROR;
    }

    zero = 0;
    len = sizeof(int);

    if (zmq_setsockopt(s->zmq, ZMQ_LINGER, &zero, sizeof(int)) != 0
        || zmq_getsockopt(s->zmq, ZMQ_FD, &fd, &len) != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "kserve: zmq_setsockopt(ZMQ_LINGER) or "
                      "zmq_getsockopt(ZMQ_FD) failed: %s",
                      zmq_strerror(zmq_errno()));
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = data;

    rev = c->read;
    rev->handler = handler;
    rev->log = cycle->log;
    c->write->log = cycle->log;

    s->connection = c;

    if (ngx_add_event(rev, NGX_READ_EVENT,
                      (ngx_event_flags & NGX_USE_CLEAR_EVENT)
                      ? NGX_CLEAR_EVENT : NGX_LEVEL_EVENT)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_kserve_transport_exit(ngx_cycle_t *cycle, ngx_array_t *backends)
{
    ngx_uint_t                   i, j;
    ngx_queue_t                 *q;
    ngx_http_kserve_order_t     *order;
    ngx_http_kserve_control_t   *ctl;
    ngx_http_kserve_backend_t  **b;

    if (ngx_http_kserve_zmq_ctx == NULL) {
        return;
    }

    b = backends->elts;

    for (i = 0; i < backends->nelts; i++) {

        if (b[i]->peer_list.next == NULL) {
            /* init_process stopped before this one */
            continue;
        }

        if (b[i]->index_event.timer_set) {
            ngx_del_timer(&b[i]->index_event);
        }

        while (!ngx_queue_empty(&b[i]->orders)) {
            q = ngx_queue_head(&b[i]->orders);
            order = ngx_queue_data(q, ngx_http_kserve_order_t, link);

            if (order->release.posted) {
                ngx_delete_posted_event(&order->release);
            }

            ngx_queue_remove(q);
            ngx_free(order);
        }

        ngx_http_kserve_peers_sweep(b[i], 1);

        for (j = 0; j < b[i]->ncontrols; j++) {
            ctl = &b[i]->controls[j];

            ngx_http_kserve_socket_close(&ctl->socket);

            if (ctl->index_pool != NULL) {
                ngx_destroy_pool(ctl->index_pool);
                ctl->index_pool = NULL;
            }
        }

        ngx_http_kserve_socket_close(&b[i]->data);

        if (b[i]->index_pool != NULL) {
            ngx_destroy_pool(b[i]->index_pool);
            b[i]->index_pool = NULL;
            b[i]->ready = NULL;
        }
    }

    zmq_ctx_term(ngx_http_kserve_zmq_ctx);
    ngx_http_kserve_zmq_ctx = NULL;
}


static void
ngx_http_kserve_socket_close(ngx_http_kserve_socket_t *s)
{
    ngx_connection_t  *c;

    c = s->connection;

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
        s->connection = NULL;
    }

    if (s->zmq != NULL) {
        zmq_close(s->zmq);
        s->zmq = NULL;
    }
}


uint64_t
ngx_http_kserve_next_id(void)
{
    return ++ngx_http_kserve_last_id;
}


ngx_int_t
ngx_http_kserve_writer_frame(zmq_msg_t *frame, ksv_writer_t *w)
{
    size_t    len;
    uint8_t  *data;

    if (w->failed) {
        ksv_writer_free(w);
        return NGX_ERROR;
    }

    data = ksv_writer_detach(w, &len);

    if (zmq_msg_init_data(frame, data, len, ksv_writer_free_cb, NULL) != 0) {
        ksv_writer_free_cb(data, NULL);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* ---- sending ---------------------------------------------------------- */

/*
 * The one send loop: a multipart message, on the data socket after a
 * frame with the peer's routing id (to).  Only the first frame can meet
 * a full queue or no peer; once it is taken, the rest of the message
 * always follows.  Returns NGX_OK with the frames consumed; NGX_AGAIN
 * with the frames untouched and *err set (EAGAIN: the queue is full, or
 * no worker is connected to the DEALER; EHOSTUNREACH: no such peer); or
 * NGX_ERROR with the frames closed.
 */

static ngx_int_t
ngx_http_kserve_send_frames(ngx_http_kserve_socket_t *s, ngx_str_t *to,
    zmq_msg_t *frames, ngx_uint_t nframes, ngx_err_t *err)
{
    int         flags;
    ngx_uint_t  i;

    i = 0;

    if (to != NULL
        && zmq_send(s->zmq, to->data, to->len, ZMQ_DONTWAIT|ZMQ_SNDMORE)
           == -1)
    {
        *err = zmq_errno();
        goto failed;
    }

    for ( /* void */ ; i < nframes; i++) {
        flags = ZMQ_DONTWAIT | (i + 1 < nframes ? ZMQ_SNDMORE : 0);

        if (zmq_msg_send(&frames[i], s->zmq, flags) == -1) {
            *err = zmq_errno();
            goto failed;
        }
    }

    ngx_post_event(s->connection->read, &ngx_posted_events);

    return NGX_OK;

failed:

    if (i == 0 && (*err == EAGAIN || *err == EHOSTUNREACH)) {
        return NGX_AGAIN;
    }

    ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                  "kserve: zmq_msg_send() failed: %s", zmq_strerror(*err));

    ngx_http_kserve_close_frames(&frames[i], nframes - i);

    return NGX_ERROR;
}


static void
ngx_http_kserve_close_frames(zmq_msg_t *frames, ngx_uint_t nframes)
{
    ngx_uint_t  i;

    for (i = 0; i < nframes; i++) {
        zmq_msg_close(&frames[i]);
    }
}


ngx_int_t
ngx_http_kserve_send_infer(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ksv_model_status_t *ms,
    ksv_version_status_t *vs, uint64_t id, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_msec_t timeout)
{
    ngx_int_t                 rc;
    ngx_http_cleanup_t       *cln;
    ngx_http_request_t       *r;
    ngx_http_kserve_peer_t   *peer;
    ngx_http_kserve_ready_t  *rd;

    r = p->request;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_kserve_close_frames(frames, nframes);
        return NGX_ERROR;
    }

    rd = ngx_http_kserve_ready_peers(b, ms, vs);

    rc = ngx_http_kserve_send_instance(b, rd, frames, nframes,
                                       r->connection->log, &peer);
    if (rc != NGX_OK) {
        return rc;
    }

    p->peer = peer;
    ngx_http_kserve_peer_count(peer, 1);
    ngx_queue_insert_tail(&peer->pending, &p->queue);
    p->queued = 1;

    if (ms->config.dynamic_batching.preserve_ordering
        && ngx_http_kserve_order(b, p, ms, vs) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "kserve: out of memory: the reply to request %uL may "
                      "overtake earlier ones", id);
    }

    ngx_http_kserve_wait(p, id, timeout, cln);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "kserve: sent request %uL to \"%V\"", id, &peer->sn.str);

    return NGX_OK;
}


ngx_int_t
ngx_http_kserve_send_oneway(ngx_http_kserve_backend_t *b,
    ksv_model_status_t *ms, ksv_version_status_t *vs, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_log_t *log)
{
    ngx_http_kserve_peer_t  *peer;

    return ngx_http_kserve_send_instance(b,
                                         ngx_http_kserve_ready_peers(b, ms, vs),
                                         frames, nframes, log, &peer);
}


static ngx_http_kserve_ready_t *
ngx_http_kserve_ready_peers(ngx_http_kserve_backend_t *b,
    ksv_model_status_t *ms, ksv_version_status_t *vs)
{
    ngx_uint_t  i, j;

    /* ms and vs are b's current index's, so their places index b->ready */

    i = ms - b->index.models;
    j = vs - ms->versions;

    if (b->ready == NULL || i >= b->index.nmodels || j >= ms->nversions
        || b->ready[i] == NULL)
    {
        return NULL;
    }

    return &b->ready[i][j];
}


/*
 * To the READY instance of rd with the fewest requests outstanding from
 * all nginx workers, else the next one.  The frames are always consumed;
 * *sent is the peer that took them.
 */

static ngx_int_t
ngx_http_kserve_send_instance(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_ready_t *rd, zmq_msg_t *frames, ngx_uint_t nframes,
    ngx_log_t *log, ngx_http_kserve_peer_t **sent)
{
    ngx_int_t                rc;
    ngx_err_t                err;
    ngx_uint_t               i, busy;
    ngx_http_kserve_peer_t  *peer;

    rc = NGX_DECLINED;
    busy = 0;
    peer = NULL;

    if (rd != NULL) {

        for ( ;; ) {
            peer = ngx_http_kserve_peer_pick(b, rd);

            if (peer == NULL) {
                rc = busy ? NGX_AGAIN : NGX_DECLINED;
                break;
            }

            rc = ngx_http_kserve_send_frames(&b->data, &peer->sn.str, frames,
                                             nframes, &err);
            if (rc != NGX_AGAIN) {
                /* NGX_OK, or NGX_ERROR with the frames closed */
                break;
            }

            /* EAGAIN: its queue is full; EHOSTUNREACH: its pipe is gone */

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                           "kserve: instance \"%V\" cannot take it: %s",
                           &peer->sn.str, zmq_strerror(err));

            peer->tried = 1;
            busy |= (err == EAGAIN);
        }

        for (i = 0; i < rd->npeers; i++) {
            rd->peer[i]->tried = 0;
        }
    }

    if (rc == NGX_OK) {
        *sent = peer;
        return NGX_OK;
    }

    if (rc != NGX_ERROR) {
        ngx_http_kserve_close_frames(frames, nframes);
    }

    return rc;
}


static ngx_http_kserve_peer_t *
ngx_http_kserve_peer_pick(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_ready_t *rd)
{
    ngx_uint_t               i, start, n, fewest;
    ngx_http_kserve_peer_t  *peer, *best;

    if (rd->npeers == 0) {
        return NULL;
    }

    /* the fewest outstanding; among equals, a different one each time */

    best = NULL;
    fewest = 0;
    start = b->next_peer++ % rd->npeers;

    for (i = 0; i < rd->npeers; i++) {
        peer = rd->peer[(start + i) % rd->npeers];

        if (peer->tried) {
            continue;
        }

        n = ngx_http_kserve_peer_outstanding(peer);

        if (best == NULL || n < fewest) {
            best = peer;
            fewest = n;
        }
    }

    return best;
}


/*
 * What every nginx worker has out on the peer: the shared count, read
 * once and clamped at 0 (the adds of a crashed nginx worker stay; no
 * decrement may make it look below nothing), or this nginx worker's own
 * when the zone had no room for the instance.
 */

static ngx_uint_t
ngx_http_kserve_peer_outstanding(ngx_http_kserve_peer_t *peer)
{
    ngx_atomic_int_t  n;

    if (peer->sh == NULL) {
        return peer->outstanding;
    }

    n = (ngx_atomic_int_t) peer->sh->outstanding;

    return (n > 0) ? (ngx_uint_t) n : 0;
}


/* n requests more (or fewer) out on the peer: here and in the zone */

static void
ngx_http_kserve_peer_count(ngx_http_kserve_peer_t *peer, ngx_int_t n)
{
    peer->outstanding += n;

    if (peer->sh != NULL) {
        (void) ngx_atomic_fetch_add(&peer->sh->outstanding,
                                    (ngx_atomic_int_t) n);
    }
}


ngx_int_t
ngx_http_kserve_send_control(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, uint64_t id, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_msec_t timeout)
{
    ngx_int_t                   rc;
    ngx_err_t                   err;
    ngx_uint_t                  i, k;
    zmq_msg_t                   copy[2];
    ngx_http_cleanup_t         *cln;
    ngx_http_kserve_gather_t   *g;
    ngx_http_kserve_control_t  *ctl;

    cln = ngx_http_cleanup_add(p->request, 0);
    if (cln == NULL || nframes > 2) {
        ngx_http_kserve_close_frames(frames, nframes);
        return NGX_ERROR;
    }

    p->peer = NULL;
    p->gather = NULL;

    if (b->ncontrols == 1) {
        ctl = &b->controls[0];

        rc = ngx_http_kserve_send_frames(&ctl->socket, NULL, frames, nframes,
                                         &err);

        if (rc == NGX_AGAIN) {
            /* not ready until the worker answers an INDEX again */
            ctl->unreachable = 1;
            b->unreachable = 1;
            ngx_http_kserve_close_frames(frames, nframes);
            return NGX_AGAIN;
        }

        if (rc != NGX_OK) {
            return rc;
        }

        ngx_http_kserve_wait(p, id, timeout, cln);

        return NGX_OK;
    }

    /* every worker gets the same frames (libzmq shares the bytes) */

    g = ngx_pcalloc(p->request->pool, sizeof(ngx_http_kserve_gather_t)
                    + b->ncontrols * sizeof(ngx_http_kserve_part_t));
    if (g == NULL) {
        ngx_http_kserve_close_frames(frames, nframes);
        return NGX_ERROR;
    }

    g->parts = (ngx_http_kserve_part_t *) (g + 1);
    g->nparts = b->ncontrols;
    g->every = ngx_http_kserve_control_every(&frames[0]);

    rc = NGX_OK;

    for (i = 0; i < b->ncontrols && rc == NGX_OK; i++) {
        ctl = &b->controls[i];

        for (k = 0; k < nframes; k++) {
            zmq_msg_init(&copy[k]);
            (void) zmq_msg_copy(&copy[k], &frames[k]);
        }

        rc = ngx_http_kserve_send_frames(&ctl->socket, NULL, copy, nframes,
                                         &err);

        if (rc == NGX_AGAIN) {
            ctl->unreachable = 1;
            ngx_http_kserve_close_frames(copy, nframes);
            rc = NGX_OK;
            continue;
        }

        if (rc == NGX_OK) {
            g->parts[i].sent = 1;
            g->outstanding++;
        }
    }

    ngx_http_kserve_close_frames(frames, nframes);

    if (rc != NGX_OK) {
        /* what was sent gets no one to answer: its replies are dropped */
        return rc;
    }

    if (g->outstanding == 0) {
        b->unreachable = 1;
        return NGX_AGAIN;
    }

    p->gather = g;
    ngx_http_kserve_wait(p, id, timeout, cln);

    return NGX_OK;
}


/* a load or an unload must reach every worker: the others may not */

static ngx_uint_t
ngx_http_kserve_control_every(zmq_msg_t *frame)
{
    ksv_prefix_t      prefix;
    ksv_reader_t      rd;
    ksv_repository_t  req;

    ksv_reader_init(&rd, zmq_msg_data(frame), zmq_msg_size(frame));

    if (ksv_read_prefix(&rd, &prefix) != 0
        || prefix.kind != KSV_MSG_REPOSITORY
        || ksv_decode_repository(&rd, &req) != 0)
    {
        return 0;
    }

    return req.action != KSV_REPO_INDEX;
}


static void
ngx_http_kserve_wait(ngx_http_kserve_pending_t *p, uint64_t id,
    ngx_msec_t timeout, ngx_http_cleanup_t *cln)
{
    p->node.key = (ngx_rbtree_key_t) id;
    ngx_rbtree_insert(&ngx_http_kserve_pending, &p->node);
    p->waiting = 1;

    p->deadline.handler = ngx_http_kserve_deadline_handler;
    p->deadline.data = p;
    p->deadline.log = p->request->connection->log;
    ngx_add_timer(&p->deadline, timeout);

    cln->handler = ngx_http_kserve_cleanup;
    cln->data = p;
}


/* ---- preserve_ordering ------------------------------------------------ */

/*
 * dynamic_batching { preserve_ordering: true } is kept per nginx worker:
 * a reply that arrives before those of requests this nginx worker sent
 * earlier to the same version (through any of its instances) is held
 * until they are answered, failed or gone.
 */

static ngx_int_t
ngx_http_kserve_order(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ksv_model_status_t *ms,
    ksv_version_status_t *vs)
{
    ngx_queue_t              *q;
    ngx_http_kserve_order_t  *order;

    for (q = ngx_queue_head(&b->orders);
         q != ngx_queue_sentinel(&b->orders);
         q = ngx_queue_next(q))
    {
        order = ngx_queue_data(q, ngx_http_kserve_order_t, link);

        if (order->version == vs->version
            && order->model.len == ms->config.name.len
            && ngx_strncmp(order->model.data, ms->config.name.data,
                           order->model.len)
               == 0)
        {
            goto found;
        }
    }

    order = ngx_alloc(sizeof(ngx_http_kserve_order_t) + ms->config.name.len,
                      p->request->connection->log);
    if (order == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(order, sizeof(ngx_http_kserve_order_t));

    order->model.data = (u_char *) (order + 1);
    order->model.len = ms->config.name.len;
    ngx_memcpy(order->model.data, ms->config.name.data, order->model.len);
    order->version = vs->version;

    order->release.handler = ngx_http_kserve_order_release;
    order->release.data = order;
    order->release.log = ngx_cycle->log;

    ngx_queue_init(&order->requests);
    ngx_queue_insert_tail(&b->orders, &order->link);

found:

    ngx_queue_insert_tail(&order->requests, &p->order_queue);
    p->order = order;

    return NGX_OK;
}


/* posted when the first of an order left: hand out what is held */

static void
ngx_http_kserve_order_release(ngx_event_t *ev)
{
    ngx_queue_t                *q;
    ngx_http_kserve_order_t    *order;
    ngx_http_kserve_pending_t  *p;

    order = ev->data;

    while (!ngx_queue_empty(&order->requests)) {
        q = ngx_queue_head(&order->requests);
        p = ngx_queue_data(q, ngx_http_kserve_pending_t, order_queue);

        if (p->held == NULL) {
            return;
        }

        /* takes p out of the order, and posts this event again */
        ngx_http_kserve_deliver_held(p);
    }

    if (ev->posted) {
        ngx_delete_posted_event(ev);
    }

    ngx_queue_remove(&order->link);
    ngx_free(order);
}


/* ---- a request leaves ------------------------------------------------- */

static void
ngx_http_kserve_cleanup(void *data)
{
    ngx_http_kserve_pending_t  *p = data;

    /* the request goes away first: a late reply finds nothing */

    ngx_http_kserve_forget(p, 1);
}


/*
 * Takes p out of everything it is in: the id table, its peer (telling the
 * instance when cancel is set and the request is still out there), its
 * order, the deadline.
 */

static void
ngx_http_kserve_forget(ngx_http_kserve_pending_t *p, ngx_uint_t cancel)
{
    uint64_t                  id;
    ngx_http_kserve_order_t  *order;

    if (p->waiting) {
        /* ngx_rbtree_delete() clears the key */
        id = (uint64_t) p->node.key;

        ngx_rbtree_delete(&ngx_http_kserve_pending, &p->node);
        p->waiting = 0;

        if (cancel && p->peer != NULL) {
            ngx_http_kserve_cancel(p->peer, id, p->deadline.log);
        }
    }

    if (p->queued) {
        ngx_queue_remove(&p->queue);
        p->queued = 0;
    }

    if (p->peer != NULL) {
        ngx_http_kserve_peer_count(p->peer, -1);
        p->peer = NULL;
    }

    if (p->order != NULL) {
        order = p->order;

        ngx_queue_remove(&p->order_queue);
        p->order = NULL;

        /* the next one may have been waiting for this one */

        if (!order->release.posted) {
            ngx_post_event(&order->release, &ngx_posted_events);
        }
    }

    if (p->held != NULL) {
        ngx_http_kserve_close_frames(p->held, p->nheld);
        p->held = NULL;
    }

    if (p->deadline.timer_set) {
        ngx_del_timer(&p->deadline);
    }
}


/* CANCEL: best effort, the instance's queue may be full */

static void
ngx_http_kserve_cancel(ngx_http_kserve_peer_t *peer, uint64_t id,
    ngx_log_t *log)
{
    ngx_err_t     err;
    zmq_msg_t     frame;
    ksv_writer_t  w;

    ksv_writer_init(&w);
    ksv_encode_cancel(&w, id);

    if (ngx_http_kserve_writer_frame(&frame, &w) != NGX_OK) {
        return;
    }

    if (ngx_http_kserve_send_frames(&peer->backend->data, &peer->sn.str,
                                    &frame, 1, &err)
        == NGX_AGAIN)
    {
        zmq_msg_close(&frame);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "kserve: cancelled request %uL on \"%V\"",
                   id, &peer->sn.str);
}


static void
ngx_http_kserve_complete(ngx_http_kserve_pending_t *p, zmq_msg_t *frames,
    ngx_uint_t nframes)
{
    ngx_connection_t  *c;

    /* no reply (the deadline): the instance may stop working on it */
    ngx_http_kserve_forget(p, frames == NULL);

    c = p->request->connection;

    /* may free the request, and p with it */
    p->handler(p, frames, nframes);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_kserve_deliver_held(ngx_http_kserve_pending_t *p)
{
    zmq_msg_t   *frames;
    ngx_uint_t   nframes;

    frames = p->held;
    nframes = p->nheld;
    p->held = NULL;

    ngx_http_kserve_complete(p, frames, nframes);

    ngx_http_kserve_close_frames(frames, nframes);
}


/* an ERROR reply made here, for a request whose instance cannot answer */

static void
ngx_http_kserve_fail(ngx_http_kserve_pending_t *p, ksv_status_t code,
    ngx_str_t *message)
{
    ksv_str_t     s;
    zmq_msg_t     frame;
    ksv_writer_t  w;

    s.data = (char *) message->data;
    s.len = (uint32_t) ngx_min(message->len, KSV_MAX_STRING);

    ksv_writer_init(&w);
    ksv_encode_error(&w, (uint64_t) p->node.key, code, s);

    if (ngx_http_kserve_writer_frame(&frame, &w) != NGX_OK) {
        /* out of memory: the deadline answers it */
        if (p->queued) {
            ngx_queue_remove(&p->queue);
            p->queued = 0;
        }

        return;
    }

    ngx_http_kserve_complete(p, &frame, 1);

    zmq_msg_close(&frame);
}


static void
ngx_http_kserve_deadline_handler(ngx_event_t *ev)
{
    ngx_http_kserve_pending_t  *p = ev->data;

    if (p->held != NULL) {
        /* answered in time, but earlier requests were not: out of order */
        ngx_http_kserve_deliver_held(p);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "kserve: request %uL timed out", (uint64_t) p->node.key);

    if (p->gather != NULL && !p->gather->every
        && p->gather->outstanding < p->gather->nparts)
    {
        /* some workers answered: what they said is the answer */
        ngx_http_kserve_gather_done(p);
        return;
    }

    ngx_http_kserve_complete(p, NULL, 0);
}


/* ---- receiving -------------------------------------------------------- */

/*
 * Both read handlers drain their socket while ZMQ_EVENTS has ZMQ_POLLIN
 * (ZMQ_FD is edge-triggered); each message's frames live in
 * ngx_http_kserve_frames until its reply has been handled.
 */

static void
ngx_http_kserve_data_read_handler(ngx_event_t *rev)
{
    zmq_msg_t                  *frames;
    ngx_uint_t                  n, truncated;
    ngx_connection_t           *c;
    ngx_http_kserve_backend_t  *b;

    c = rev->data;
    b = c->data;
    frames = ngx_http_kserve_frames;

    while (ngx_http_kserve_readable(&b->data, rev->log)) {
        n = ngx_http_kserve_recv(&b->data, frames, &truncated, rev->log);

        if (n == 0) {
            return;
        }

        ngx_http_kserve_instance_reply(b, frames, n, truncated);
        ngx_http_kserve_close_frames(frames, n);
    }
}


static void
ngx_http_kserve_control_read_handler(ngx_event_t *rev)
{
    zmq_msg_t                  *frames;
    ngx_uint_t                  n, truncated;
    ngx_connection_t           *c;
    ngx_http_kserve_control_t  *ctl;

    c = rev->data;
    ctl = c->data;
    frames = ngx_http_kserve_frames;

    while (ngx_http_kserve_readable(&ctl->socket, rev->log)) {
        n = ngx_http_kserve_recv(&ctl->socket, frames, &truncated, rev->log);

        if (n == 0) {
            return;
        }

        ngx_http_kserve_worker_reply(ctl, frames, n, truncated);
        ngx_http_kserve_close_frames(frames, n);
    }
}


static ngx_uint_t
ngx_http_kserve_readable(ngx_http_kserve_socket_t *s, ngx_log_t *log)
{
    int     events;
    size_t  len;

    len = sizeof(int);

    if (zmq_getsockopt(s->zmq, ZMQ_EVENTS, &events, &len) != 0) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "kserve: zmq_getsockopt(ZMQ_EVENTS) failed: %s",
                      zmq_strerror(zmq_errno()));
        return 0;
    }

    return (events & ZMQ_POLLIN) != 0;
}


/* One multipart message into frames; frames past the limit are dropped. */

static ngx_uint_t
ngx_http_kserve_recv(ngx_http_kserve_socket_t *s, zmq_msg_t *frames,
    ngx_uint_t *truncated, ngx_log_t *log)
{
    int         more;
    zmq_msg_t   extra;
    ngx_uint_t  n;

    n = 0;
    *truncated = 0;

    for ( ;; ) {
        if (n < NGX_HTTP_KSERVE_MAX_FRAMES) {
            zmq_msg_init(&frames[n]);

            if (zmq_msg_recv(&frames[n], s->zmq, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close(&frames[n]);

                if (n == 0) {
                    /* ZMQ_EVENTS said POLLIN, yet nothing came */
                    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                                   "kserve: zmq_msg_recv() failed: %s",
                                   zmq_strerror(zmq_errno()));
                }

                return n;
            }

            more = zmq_msg_more(&frames[n]);
            n++;

        } else {
            zmq_msg_init(&extra);

            if (zmq_msg_recv(&extra, s->zmq, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close(&extra);
                return n;
            }

            more = zmq_msg_more(&extra);
            zmq_msg_close(&extra);
            *truncated = 1;
        }

        if (!more) {
            return n;
        }
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


/* control: INDEX_REPLY, and the replies to STATS, LOG and REPOSITORY */

static void
ngx_http_kserve_worker_reply(ngx_http_kserve_control_t *ctl,
    zmq_msg_t *frames, ngx_uint_t nframes, ngx_uint_t truncated)
{
    ksv_reader_t                rd;
    ksv_prefix_t                prefix;
    ngx_http_kserve_backend_t  *b;
    ngx_http_kserve_pending_t  *p;

    b = ctl->backend;

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));

    if (ksv_read_prefix(&rd, &prefix) != 0 || truncated) {
        ngx_http_kserve_malformed(b, "the worker", &prefix, nframes,
                                  truncated);
        return;
    }

    switch (prefix.kind) {

    case KSV_MSG_INDEX_REPLY:
        ngx_http_kserve_index_reply(ctl, &frames[0]);
        return;

    case KSV_MSG_STATS_REPLY:
    case KSV_MSG_LOG_REPLY:
    case KSV_MSG_REPOSITORY_REPLY:
    case KSV_MSG_ERROR:
        break;

    default:
        ngx_http_kserve_malformed(b, "the worker", &prefix, nframes, 0);
        return;
    }

    p = ngx_http_kserve_lookup(prefix.id);

    if (p == NULL || p->peer != NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctl->socket.connection->log, 0,
                       "kserve: dropped a late reply for request %uL",
                       prefix.id);
        return;
    }

    if (p->gather != NULL) {
        ngx_http_kserve_gather_reply(ctl, p, frames, nframes);
        return;
    }

    ngx_http_kserve_complete(p, frames, nframes);
}


/* one worker's reply to a request sent to several: kept until the last */

static void
ngx_http_kserve_gather_reply(ngx_http_kserve_control_t *ctl,
    ngx_http_kserve_pending_t *p, zmq_msg_t *frames, ngx_uint_t nframes)
{
    u_char                    *copy;
    size_t                     size;
    ngx_http_kserve_part_t    *part;
    ngx_http_kserve_gather_t  *g;

    g = p->gather;
    part = &g->parts[ctl - ctl->backend->controls];

    if (!part->sent || part->reply.data != NULL || nframes != 1) {
        ngx_log_error(NGX_LOG_ERR, ctl->socket.connection->log, 0,
                      "kserve: dropped an unexpected reply from the worker "
                      "at \"%V\"", ctl->endpoint);
        return;
    }

    size = zmq_msg_size(&frames[0]);

    copy = ngx_pnalloc(p->request->pool, size ? size : 1);
    if (copy == NULL) {
        return;
    }

    ngx_memcpy(copy, zmq_msg_data(&frames[0]), size);

    part->reply.data = (char *) copy;
    part->reply.len = (uint32_t) size;

    if (--g->outstanding == 0) {
        ngx_http_kserve_gather_done(p);
    }
}


/* the replies there are, merged into the one p's handler reads */

static void
ngx_http_kserve_gather_done(ngx_http_kserve_pending_t *p)
{
    ksv_str_t                 *replies;
    zmq_msg_t                  frame;
    ngx_str_t                  message;
    ngx_uint_t                 i;
    ksv_alloc_t                alloc;
    ksv_writer_t               w;
    ngx_http_kserve_gather_t  *g;

    g = p->gather;

    replies = ngx_palloc(p->request->pool, g->nparts * sizeof(ksv_str_t));
    if (replies == NULL) {
        return;
    }

    for (i = 0; i < g->nparts; i++) {
        replies[i] = g->parts[i].reply;
    }

    alloc.alloc = ngx_http_kserve_pool_alloc;
    alloc.ctx = p->request->pool;

    ksv_writer_init(&w);

    if (ksv_replies_merge(replies, (uint32_t) g->nparts, &alloc, &w) != 0
        || ngx_http_kserve_writer_frame(&frame, &w) != NGX_OK)
    {
        ksv_writer_free(&w);
        ngx_str_set(&message, "the kserve workers' replies could not be "
                              "merged");
        ngx_http_kserve_fail(p, KSV_ERR_INTERNAL, &message);
        return;
    }

    ngx_http_kserve_complete(p, &frame, 1);

    zmq_msg_close(&frame);
}


/* data: [routing id][INFER_REPLY or ERROR header][output frames...] */

static void
ngx_http_kserve_instance_reply(ngx_http_kserve_backend_t *b,
    zmq_msg_t *frames, ngx_uint_t nframes, ngx_uint_t truncated)
{
    ngx_str_t                   *id;
    ngx_uint_t                   i;
    ksv_reader_t                 rd;
    ksv_prefix_t                 prefix;
    ngx_http_kserve_pending_t   *p;

    ngx_memzero(&prefix, sizeof(ksv_prefix_t));

    if (nframes < 2) {
        ngx_http_kserve_malformed(b, "an instance", &prefix, nframes,
                                  truncated);
        return;
    }

    ksv_reader_init(&rd, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]));

    if (ksv_read_prefix(&rd, &prefix) != 0 || truncated
        || (prefix.kind != KSV_MSG_INFER_REPLY && prefix.kind != KSV_MSG_ERROR))
    {
        ngx_http_kserve_malformed(b, "an instance", &prefix, nframes,
                                  truncated);
        return;
    }

    p = ngx_http_kserve_lookup(prefix.id);

    if (p == NULL || p->peer == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, b->data.connection->log, 0,
                       "kserve: dropped a late reply for request %uL",
                       prefix.id);
        return;
    }

    /* ids are this nginx worker's: only the instance sent it can answer */

    id = &p->peer->sn.str;

    if (zmq_msg_size(&frames[0]) != id->len
        || ngx_memcmp(zmq_msg_data(&frames[0]), id->data, id->len) != 0)
    {
        if (!b->logged_stray) {
            ngx_log_error(NGX_LOG_ERR, b->data.connection->log, 0,
                          "kserve: dropped a reply for request %uL from "
                          "another instance than \"%V\"; further ones are "
                          "not logged", prefix.id, id);
            b->logged_stray = 1;
        }

        return;
    }

    if (p->order == NULL
        || ngx_queue_head(&p->order->requests) == &p->order_queue)
    {
        ngx_http_kserve_complete(p, &frames[1], nframes - 1);
        return;
    }

    /* preserve_ordering: earlier requests are still out, hold the reply */

    p->held = ngx_palloc(p->request->pool, (nframes - 1) * sizeof(zmq_msg_t));

    if (p->held == NULL) {
        ngx_http_kserve_complete(p, &frames[1], nframes - 1);
        return;
    }

    for (i = 1; i < nframes; i++) {
        zmq_msg_init(&p->held[i - 1]);
        (void) zmq_msg_move(&p->held[i - 1], &frames[i]);
    }

    p->nheld = nframes - 1;

    /* no longer out there; the deadline stays */

    ngx_rbtree_delete(&ngx_http_kserve_pending, &p->node);
    p->waiting = 0;

    ngx_queue_remove(&p->queue);
    p->queued = 0;
    ngx_http_kserve_peer_count(p->peer, -1);
    p->peer = NULL;
}


static void
ngx_http_kserve_malformed(ngx_http_kserve_backend_t *b, const char *from,
    ksv_prefix_t *prefix, ngx_uint_t nframes, ngx_uint_t truncated)
{
    if (b->logged_malformed) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, b->data.connection->log, 0,
                  "kserve: dropped a malformed or unexpected message from "
                  "%s (version %ud, kind %ud, %ui frames%s); further ones "
                  "are not logged", from, (ngx_uint_t) prefix->version,
                  (ngx_uint_t) prefix->kind, nframes,
                  truncated ? ", too many" : "");

    b->logged_malformed = 1;
}


/* ---- statistics ------------------------------------------------------ */

ngx_int_t
ngx_http_kserve_send_stats(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ngx_str_t *model, ngx_str_t *version,
    ngx_msec_t timeout)
{
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

    if (ngx_http_kserve_writer_frame(&frame, &w) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_kserve_send_control(b, p, id, &frame, 1, timeout);
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


/* ---- the repository extension ----------------------------------------- */

ngx_int_t
ngx_http_kserve_send_repository(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ksv_repository_t *req, u_char *body,
    size_t len, ngx_msec_t timeout)
{
    uint64_t      id;
    zmq_msg_t     frames[2];
    ngx_uint_t    n;
    ksv_writer_t  w;

    id = ngx_http_kserve_next_id();

    ksv_writer_init(&w);
    ksv_encode_repository(&w, id, req);

    if (ngx_http_kserve_writer_frame(&frames[0], &w) != NGX_OK) {
        return NGX_ERROR;
    }

    n = 1;

    if (req->action == KSV_REPO_LOAD || len > 0) {
        /* the body as the client sent it: the worker reads it */

        if (zmq_msg_init_size(&frames[1], len) != 0) {
            zmq_msg_close(&frames[0]);
            return NGX_ERROR;
        }

        if (len) {
            ngx_memcpy(zmq_msg_data(&frames[1]), body, len);
        }

        n = 2;
    }

    return ngx_http_kserve_send_control(b, p, id, frames, n, timeout);
}


ngx_int_t
ngx_http_kserve_repository_reply(ngx_pool_t *pool, zmq_msg_t *frames,
    ngx_uint_t nframes, ksv_repository_reply_t *reply, ksv_error_t *error)
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

    if (prefix.kind != KSV_MSG_REPOSITORY_REPLY || nframes != 1
        || ksv_decode_repository_reply(&rd, &alloc, reply) != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* ---- the model index ------------------------------------------------- */

static void
ngx_http_kserve_index_handler(ngx_event_t *ev)
{
    ngx_err_t                   err;
    ngx_uint_t                  i, missing;
    zmq_msg_t                   frame;
    ngx_msec_t                  next;
    ksv_writer_t                w;
    ngx_http_kserve_control_t  *ctl;
    ngx_http_kserve_backend_t  *b;

    b = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_http_kserve_peers_sweep(b, 0);

    missing = 0;

    for (i = 0; i < b->ncontrols; i++) {
        ctl = &b->controls[i];

        ksv_writer_init(&w);
        ksv_encode_index(&w, ngx_http_kserve_next_id(),
                         ctl->index_known ? ctl->index.generation : 0);

        if (ngx_http_kserve_writer_frame(&frame, &w) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "kserve: cannot encode INDEX: out of memory");

        } else if (ngx_http_kserve_send_frames(&ctl->socket, NULL, &frame,
                                               1, &err)
                   == NGX_AGAIN)
        {
            /* not connected (ZMQ_IMMEDIATE) */
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                           "kserve: INDEX not sent to \"%V\": %s",
                           ctl->endpoint, zmq_strerror(err));

            zmq_msg_close(&frame);
            ctl->unreachable = 1;
        }

        if (!ctl->index_known || ctl->unreachable) {
            missing++;
        }
    }

    b->unreachable = (missing == b->ncontrols);

    next = b->index_interval;

    /* look for a worker that is not there yet more often */

    if (missing && next > NGX_HTTP_KSERVE_INDEX_FIRST) {
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
 * queue.  Workers that are not there cost each nginx worker
 * NGX_HTTP_KSERVE_INDEX_PRIME ms once; the index timer takes over after.
 */

static void
ngx_http_kserve_index_prime(ngx_http_kserve_backend_t *b)
{
    ngx_uint_t                  i, known;
    ngx_msec_t                  start;
    zmq_pollitem_t              items[NGX_HTTP_KSERVE_PRIME_MAX];
    ngx_http_kserve_control_t  *ctl;

    ngx_time_update();
    start = ngx_current_msec;

    for ( ;; ) {
        known = 0;

        for (i = 0; i < b->ncontrols; i++) {
            known += b->controls[i].index_known;
        }

        if (known == b->ncontrols
            || ngx_current_msec - start >= NGX_HTTP_KSERVE_INDEX_PRIME)
        {
            return;
        }

        /* (re)sends INDEX; before the connection is up it cannot */
        ngx_http_kserve_index_handler(&b->index_event);

        for (i = 0; i < b->ncontrols && i < NGX_HTTP_KSERVE_PRIME_MAX; i++) {
            items[i].socket = b->controls[i].socket.zmq;
            items[i].fd = -1;
            items[i].events = ZMQ_POLLIN;
            items[i].revents = 0;
        }

        if (zmq_poll(items, (int) i, 20) > 0) {
            for (i = 0; i < b->ncontrols && i < NGX_HTTP_KSERVE_PRIME_MAX;
                 i++)
            {
                if (items[i].revents & ZMQ_POLLIN) {
                    ctl = &b->controls[i];
                    ngx_http_kserve_control_read_handler(
                                                ctl->socket.connection->read);
                }
            }
        }

        ngx_time_update();
    }
}


static void
ngx_http_kserve_index_reply(ngx_http_kserve_control_t *ctl, zmq_msg_t *frame)
{
    size_t                      size;
    u_char                     *copy;
    uint8_t                     full;
    uint64_t                    generation;
    ngx_log_t                  *log;
    ngx_pool_t                 *pool, *old;
    ksv_alloc_t                 alloc;
    ksv_index_t                 index;
    ksv_prefix_t                prefix;
    ksv_reader_t                rd;
    ngx_http_kserve_backend_t  *b;

    b = ctl->backend;
    log = ctl->socket.connection->log;
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
        if (ctl->index_known && generation == ctl->index.generation) {
            ctl->index_time = ngx_current_msec;
            ctl->unreachable = 0;
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

    if (!ctl->index_known || ctl->index.generation != index.generation) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "kserve: model index generation %uL, %ui models, "
                      "from \"%V\"", index.generation,
                      (ngx_uint_t) index.nmodels, ctl->endpoint);
    }

    old = ctl->index_pool;

    ctl->index_pool = pool;
    ctl->index = index;
    ctl->index_time = ngx_current_msec;
    ctl->index_known = 1;
    ctl->unreachable = 0;

    /* the merged index points into ctl's: made anew before old goes */

    ngx_http_kserve_index_merge(b);

    if (old != NULL) {
        ngx_destroy_pool(old);
    }

    return;

malformed:

    if (!b->logged_malformed) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "kserve: dropped a malformed INDEX_REPLY from the "
                      "worker at \"%V\"; further ones are not logged",
                      ctl->endpoint);
        b->logged_malformed = 1;
    }
}


/*
 * The index nginx serves by: every worker's that is known, merged
 * (ksv_merge.h), and the peer table following it.
 */

static void
ngx_http_kserve_index_merge(ngx_http_kserve_backend_t *b)
{
    ngx_log_t                  *log;
    ngx_uint_t                  i, n;
    ngx_pool_t                 *pool, *old;
    ksv_alloc_t                 alloc;
    ksv_index_t                *in, index;
    ngx_queue_t                 doomed;
    ngx_http_kserve_control_t  *ctl;

    log = b->data.connection->log;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        return;
    }

    in = ngx_palloc(pool, b->ncontrols * sizeof(ksv_index_t));
    if (in == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    n = 0;

    for (i = 0; i < b->ncontrols; i++) {
        ctl = &b->controls[i];

        if (ctl->index_known) {
            in[n++] = ctl->index;
        }
    }

    alloc.alloc = ngx_http_kserve_pool_alloc;
    alloc.ctx = pool;

    if (n == 0 || ksv_index_merge(in, (uint32_t) n, &alloc, &index) != 0) {
        ngx_destroy_pool(pool);
        return;
    }

    old = b->index_pool;

    b->index_pool = pool;
    b->index = index;
    b->index_time = ngx_current_msec;
    b->index_known = 1;
    b->unreachable = 0;

    /*
     * The instances follow the index; what was out on those that died
     * fails once the table is whole again, since a failed request may be
     * sent again at once (a routed name's fallback).
     */

    ngx_queue_init(&doomed);
    ngx_http_kserve_peers_update(b, &doomed);

    if (old != NULL) {
        ngx_destroy_pool(old);
    }

    ngx_http_kserve_peers_fail(&doomed);
}


/* ---- the instances ---------------------------------------------------- */

/*
 * Rebuilds the peer table from b's (new) index: one peer per endpoint
 * listed, kept with its requests when the endpoint was there before,
 * connected when it is new; the READY ones of each version in b->ready.
 */

static void
ngx_http_kserve_peers_update(ngx_http_kserve_backend_t *b,
    ngx_queue_t *doomed)
{
    int                       events;
    size_t                    len;
    uint32_t                  i, j, k;
    ngx_pool_t               *pool;
    ngx_queue_t              *q;
    ksv_model_status_t       *ms;
    ksv_version_status_t     *vs;
    ngx_http_kserve_peer_t   *peer;
    ngx_http_kserve_ready_t  *rd;

    pool = b->index_pool;

    for (q = ngx_queue_head(&b->peer_list);
         q != ngx_queue_sentinel(&b->peer_list);
         q = ngx_queue_next(q))
    {
        peer = ngx_queue_data(q, ngx_http_kserve_peer_t, link);
        peer->listed = 0;
    }

    /*
     * Let libzmq finish what disconnects started before connecting.  Like
     * a send, this may consume ZMQ_FD's notification: look again after.
     */

    len = sizeof(int);
    (void) zmq_getsockopt(b->data.zmq, ZMQ_EVENTS, &events, &len);

    ngx_post_event(b->data.connection->read, &ngx_posted_events);

    b->ready = ngx_pcalloc(pool, (b->index.nmodels + 1)
                                 * sizeof(ngx_http_kserve_ready_t *));

    for (i = 0; i < b->index.nmodels; i++) {
        ms = &b->index.models[i];

        rd = NULL;

        if (b->ready != NULL) {
            rd = ngx_pcalloc(pool, (ms->nversions + 1)
                                   * sizeof(ngx_http_kserve_ready_t));
            b->ready[i] = rd;
        }

        for (j = 0; j < ms->nversions; j++) {
            vs = &ms->versions[j];

            if (rd != NULL && vs->ninstances) {
                rd[j].peer = ngx_palloc(pool, vs->ninstances * sizeof(void *));
            }

            for (k = 0; k < vs->ninstances; k++) {
                peer = ngx_http_kserve_peer_get(b, &vs->instances[k]);

                if (peer == NULL) {
                    continue;
                }

                ngx_http_kserve_peer_set(b, peer, ms, vs, &vs->instances[k],
                                         doomed);

                if (peer->state == KSV_VERSION_READY
                    && rd != NULL && rd[j].peer != NULL)
                {
                    rd[j].peer[rd[j].npeers++] = peer;
                }
            }
        }
    }

    /* those no longer listed: what they had out there fails now */

    for (q = ngx_queue_head(&b->peer_list);
         q != ngx_queue_sentinel(&b->peer_list);
         q = ngx_queue_next(q))
    {
        peer = ngx_queue_data(q, ngx_http_kserve_peer_t, link);

        if (peer->listed || peer->gone) {
            continue;
        }

        if (!ngx_queue_empty(&peer->pending)) {
            ngx_http_kserve_peer_doom(b, peer, doomed,
                                      "instance '%V' (pid %ui) of model '%V' "
                                      "version %L is no longer in the model "
                                      "index", &peer->name, peer->pid,
                                      &peer->model, peer->version);
        }

        ngx_log_error(NGX_LOG_INFO, b->data.connection->log, 0,
                      "kserve: instance \"%V\" at \"%V\" left the model "
                      "index", &peer->name, &peer->sn.str);

        peer->gone = 1;
        peer->gone_time = ngx_current_msec;
        peer->state = KSV_VERSION_UNAVAILABLE;
    }
}


/* The peer of an instance's endpoint: found, or made and connected. */

static ngx_http_kserve_peer_t *
ngx_http_kserve_peer_get(ngx_http_kserve_backend_t *b,
    ksv_instance_status_t *is)
{
    uint32_t                 hash;
    ngx_str_t                ep;
    ngx_log_t               *log;
    ngx_http_kserve_peer_t  *peer;

    log = b->data.connection->log;

    ep.data = (u_char *) is->endpoint.data;
    ep.len = is->endpoint.len;

    if (ep.len == 0) {
        /* not bound yet (loading) */
        return NULL;
    }

    if (ngx_http_kserve_endpoint_valid(&ep) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "kserve: instance \"%*s\" has an invalid endpoint "
                      "\"%V\"", (size_t) is->name.len, is->name.data, &ep);
        return NULL;
    }

    hash = ngx_crc32_long(ep.data, ep.len);

    peer = (ngx_http_kserve_peer_t *) ngx_str_rbtree_lookup(&b->peers, &ep,
                                                            hash);
    if (peer != NULL) {
        /* listed twice: the first one counts */
        return peer->listed ? NULL : peer;
    }

    peer = ngx_calloc(sizeof(ngx_http_kserve_peer_t) + ep.len + 1, log);
    if (peer == NULL) {
        return NULL;
    }

    /* zmq_connect() wants a C string: calloc put the NUL */

    peer->sn.str.data = (u_char *) (peer + 1);
    peer->sn.str.len = ep.len;
    ngx_memcpy(peer->sn.str.data, ep.data, ep.len);

    if (zmq_setsockopt(b->data.zmq, ZMQ_CONNECT_ROUTING_ID, ep.data, ep.len)
        != 0
        || zmq_connect(b->data.zmq, (char *) peer->sn.str.data) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "kserve: cannot connect to instance \"%*s\" at \"%V\": "
                      "%s", (size_t) is->name.len, is->name.data, &ep,
                      zmq_strerror(zmq_errno()));
        ngx_free(peer);
        return NULL;
    }

    peer->sn.node.key = hash;
    ngx_rbtree_insert(&b->peers, &peer->sn.node);
    ngx_queue_insert_tail(&b->peer_list, &peer->link);

    ngx_queue_init(&peer->pending);
    peer->backend = b;
    peer->pid = is->pid;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "kserve: connected to instance \"%V\"", &ep);

    return peer;
}


static void
ngx_http_kserve_peer_set(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_peer_t *peer, ksv_model_status_t *ms,
    ksv_version_status_t *vs, ksv_instance_status_t *is,
    ngx_queue_t *doomed)
{
    ngx_uint_t   state;
    ngx_log_t   *log;

    log = b->data.connection->log;

    /*
     * DRAINING: replaced by a reload or unloaded; it answers what it was
     * sent (its requests stay out there) and gets nothing new.
     */

    state = (is->state <= KSV_VERSION_DRAINING) ? is->state
                                                : KSV_VERSION_UNAVAILABLE;

    /* what was out on an instance that died, or was replaced, fails now */

    if (!ngx_queue_empty(&peer->pending)) {

        if (is->pid != peer->pid) {
            ngx_http_kserve_peer_doom(b, peer, doomed,
                                      "instance '%V' (pid %ui) of model '%V' "
                                      "version %L failed: replaced by pid %uD",
                                      &peer->name, peer->pid, &peer->model,
                                      peer->version, is->pid);

        } else if (state == KSV_VERSION_UNAVAILABLE) {
            ngx_http_kserve_peer_doom(b, peer, doomed,
                                      "instance '%*s' (pid %uD) of model "
                                      "'%*s' version %L failed%s%*s",
                                      (size_t) is->name.len, is->name.data,
                                      is->pid, (size_t) ms->config.name.len,
                                      ms->config.name.data, vs->version,
                                      is->reason.len ? ": " : "",
                                      (size_t) is->reason.len,
                                      is->reason.data);
        }
    }

    if (state != peer->state || is->pid != peer->pid || peer->gone
        || peer->name.data == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "kserve: instance \"%*s\" (pid %uD) of \"%*s\" "
                      "version %L at \"%V\": %s%s%*s",
                      (size_t) is->name.len, is->name.data, is->pid,
                      (size_t) ms->config.name.len, ms->config.name.data,
                      vs->version, &peer->sn.str,
                      state == KSV_VERSION_READY ? "ready"
                      : state == KSV_VERSION_LOADING ? "loading"
                      : state == KSV_VERSION_DRAINING ? "draining"
                                                      : "unavailable",
                      is->reason.len ? ": " : "", (size_t) is->reason.len,
                      is->reason.data);
    }

    /* the index's strings go with its pool: the peer keeps copies */

    if (ngx_http_kserve_copy_str(&peer->name, &is->name, log) != NGX_OK
        || ngx_http_kserve_copy_str(&peer->model, &ms->config.name, log)
           != NGX_OK)
    {
        /* out of memory: no requests for it until the next index */
        state = KSV_VERSION_UNAVAILABLE;
    }

    peer->version = vs->version;
    peer->pid = is->pid;
    peer->state = state;
    peer->listed = 1;
    peer->gone = 0;

    if (peer->sh == NULL) {
        /* a new peer, or one the zone had no room for before */
        ngx_http_kserve_shpeer_attach(b, peer);
    }
}


/*
 * Moves the requests out on peer to the doomed list, to fail with the
 * message once the peer table is whole.
 */

static void
ngx_http_kserve_peer_doom(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_peer_t *peer, ngx_queue_t *doomed, const char *fmt, ...)
{
    u_char                     *last, msg[NGX_MAX_ERROR_STR];
    va_list                     args;
    ngx_queue_t                *q;
    ngx_http_kserve_doomed_t   *d;
    ngx_http_kserve_pending_t  *p;

    va_start(args, fmt);
    last = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    d = ngx_palloc(b->index_pool, sizeof(ngx_http_kserve_doomed_t)
                                  + (last - msg));
    if (d == NULL) {
        /* their deadlines answer them */
        return;
    }

    d->message.data = (u_char *) (d + 1);
    d->message.len = last - msg;
    ngx_memcpy(d->message.data, msg, d->message.len);

    ngx_log_error(NGX_LOG_WARN, b->data.connection->log, 0,
                  "kserve: %V: failing its %ui requests from this nginx "
                  "worker", &d->message, peer->outstanding);

    /* no longer the peer's: it may take new ones meanwhile */

    for (q = ngx_queue_head(&peer->pending);
         q != ngx_queue_sentinel(&peer->pending);
         q = ngx_queue_next(q))
    {
        p = ngx_queue_data(q, ngx_http_kserve_pending_t, queue);
        p->peer = NULL;
    }

    ngx_queue_init(&d->requests);
    ngx_queue_add(&d->requests, &peer->pending);
    ngx_queue_init(&peer->pending);
    ngx_http_kserve_peer_count(peer, -(ngx_int_t) peer->outstanding);

    ngx_queue_insert_tail(doomed, &d->link);
}


static void
ngx_http_kserve_peers_fail(ngx_queue_t *doomed)
{
    ngx_queue_t                *q, *rq;
    ngx_http_kserve_doomed_t   *d;
    ngx_http_kserve_pending_t  *p;

    for (q = ngx_queue_head(doomed);
         q != ngx_queue_sentinel(doomed);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_kserve_doomed_t, link);

        /* each one leaves the list, whatever its handler does after */

        while (!ngx_queue_empty(&d->requests)) {
            rq = ngx_queue_head(&d->requests);
            p = ngx_queue_data(rq, ngx_http_kserve_pending_t, queue);

            ngx_http_kserve_fail(p, KSV_ERR_UNAVAILABLE, &d->message);
        }
    }
}


/* Disconnects and frees the peers gone long enough (all: every peer). */

static void
ngx_http_kserve_peers_sweep(ngx_http_kserve_backend_t *b, ngx_uint_t all)
{
    ngx_queue_t             *q, *next;
    ngx_http_kserve_peer_t  *peer;

    for (q = ngx_queue_head(&b->peer_list);
         q != ngx_queue_sentinel(&b->peer_list);
         q = next)
    {
        next = ngx_queue_next(q);
        peer = ngx_queue_data(q, ngx_http_kserve_peer_t, link);

        if (!all) {
            if (!peer->gone
                || ngx_current_msec - peer->gone_time
                   < NGX_HTTP_KSERVE_PEER_LINGER
                || !ngx_queue_empty(&peer->pending))
            {
                continue;
            }

            (void) zmq_disconnect(b->data.zmq, (char *) peer->sn.str.data);

            /* as a send, this may consume ZMQ_FD's notification */
            ngx_post_event(b->data.connection->read, &ngx_posted_events);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, b->data.connection->log, 0,
                           "kserve: disconnected from instance \"%V\"",
                           &peer->sn.str);
        }

        ngx_rbtree_delete(&b->peers, &peer->sn.node);
        ngx_queue_remove(q);

        /* what is still out on it (only when exiting) leaves the zone */
        ngx_http_kserve_shpeer_detach(b, peer);

        if (peer->name.data != NULL) {
            ngx_free(peer->name.data);
        }

        if (peer->model.data != NULL) {
            ngx_free(peer->model.data);
        }

        ngx_free(peer);
    }
}


/*
 * The peer's entry in the shared table: found, or made for an endpoint
 * no nginx worker counts yet.  A peer that comes to it late (the zone was
 * full before) brings along what it has out already.  No room: the peer
 * is counted here alone.
 */

static void
ngx_http_kserve_shpeer_attach(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_peer_t *peer)
{
    uint32_t                   hash;
    ngx_uint_t                 refs;
    ngx_http_kserve_shpeer_t  *sp;

    if (b->sh == NULL) {
        return;
    }

    hash = ngx_crc32_short(peer->sn.str.data, peer->sn.str.len);

    ngx_shmtx_lock(&b->shpool->mutex);

    sp = (ngx_http_kserve_shpeer_t *)
             ngx_str_rbtree_lookup(&b->sh->rbtree, &peer->sn.str, hash);

    if (sp == NULL) {
        sp = ngx_slab_alloc_locked(b->shpool, sizeof(ngx_http_kserve_shpeer_t)
                                              + peer->sn.str.len);
        if (sp == NULL) {
            ngx_shmtx_unlock(&b->shpool->mutex);

            if (!b->logged_full) {
                ngx_log_error(NGX_LOG_WARN, b->data.connection->log, 0,
                              "kserve: shared zone \"%V\" is full: "
                              "instance \"%V\" is counted by this nginx "
                              "worker alone; further ones are not logged",
                              &b->shm_zone->shm.name, &peer->sn.str);
                b->logged_full = 1;
            }

            return;
        }

        sp->sn.str.data = (u_char *) (sp + 1);
        sp->sn.str.len = peer->sn.str.len;
        ngx_memcpy(sp->sn.str.data, peer->sn.str.data, peer->sn.str.len);

        sp->sn.node.key = hash;
        sp->outstanding = 0;
        sp->refs = 0;

        ngx_rbtree_insert(&b->sh->rbtree, &sp->sn.node);
    }

    refs = ++sp->refs;

    (void) ngx_atomic_fetch_add(&sp->outstanding,
                                (ngx_atomic_int_t) peer->outstanding);

    ngx_shmtx_unlock(&b->shpool->mutex);

    peer->sh = sp;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, b->data.connection->log, 0,
                   "kserve: instance \"%V\" counted by %ui peers",
                   &peer->sn.str, refs);
}


/*
 * The peer lets go of its entry, taking back what it still has out (only
 * when exiting: a swept peer has nothing out); the last one frees it.
 */

static void
ngx_http_kserve_shpeer_detach(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_peer_t *peer)
{
    ngx_http_kserve_shpeer_t  *sp;

    sp = peer->sh;

    if (sp == NULL) {
        return;
    }

    peer->sh = NULL;

    ngx_shmtx_lock(&b->shpool->mutex);

    (void) ngx_atomic_fetch_add(&sp->outstanding,
                                -(ngx_atomic_int_t) peer->outstanding);

    if (--sp->refs == 0) {
        ngx_rbtree_delete(&b->sh->rbtree, &sp->sn.node);
        ngx_slab_free_locked(b->shpool, sp);
    }

    ngx_shmtx_unlock(&b->shpool->mutex);
}


static ngx_int_t
ngx_http_kserve_copy_str(ngx_str_t *dst, ksv_str_t *src, ngx_log_t *log)
{
    u_char  *p;

    if (dst->data != NULL && dst->len == src->len
        && ngx_memcmp(dst->data, src->data, src->len) == 0)
    {
        return NGX_OK;
    }

    p = ngx_alloc(src->len + 1, log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, src->data, src->len);

    if (dst->data != NULL) {
        ngx_free(dst->data);
    }

    dst->data = p;
    dst->len = src->len;

    return NGX_OK;
}


static void *
ngx_http_kserve_pool_alloc(void *ctx, size_t size)
{
    return ngx_palloc(ctx, size);
}


/* ---- lookups in the index ------------------------------------------- */

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


ksv_version_status_t *
ngx_http_kserve_find_version(ksv_model_status_t *ms, int64_t version)
{
    uint32_t  i;

    for (i = 0; i < ms->nversions; i++) {
        if (ms->versions[i].version == version) {
            return &ms->versions[i];
        }
    }

    return NULL;
}


ksv_version_status_t *
ngx_http_kserve_ready_version(ksv_model_status_t *ms)
{
    uint32_t  i;

    for (i = ms->nversions; i > 0; i--) {
        if (ms->versions[i - 1].state == KSV_VERSION_READY) {
            return &ms->versions[i - 1];
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
        if (ngx_http_kserve_endpoint_valid(&value[i]) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid endpoint \"%V\": "
                               "ipc:// or tcp:// expected", &value[i]);
            return NULL;
        }
    }

    /* the same endpoint list means the same sockets */

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

    if (ngx_http_kserve_shpeers_zone(cf, b) != NGX_OK) {
        return NULL;
    }

    bp = ngx_array_push(backends);
    if (bp == NULL) {
        return NULL;
    }

    *bp = b;

    return b;
}


/*
 * The zone of the backend's shared outstanding counts.  It is named by
 * the endpoint list, "kserve_instances:<endpoint> <endpoint>...", so a
 * reload that keeps the list keeps the zone: the nginx workers of the old
 * cycle, still finishing their requests, and those of the new one count
 * in the same table.
 */

static ngx_int_t
ngx_http_kserve_shpeers_zone(ngx_conf_t *cf, ngx_http_kserve_backend_t *b)
{
    u_char          *p;
    size_t           len;
    ngx_str_t        name, *ep;
    ngx_uint_t       i;
    ngx_shm_zone_t  *shm_zone;

    ep = b->endpoints.elts;
    len = sizeof("kserve_instances:") - 1;

    for (i = 0; i < b->endpoints.nelts; i++) {
        len += ep[i].len + 1;
    }

    name.data = ngx_pnalloc(cf->pool, len);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(name.data, "kserve_instances:",
                   sizeof("kserve_instances:") - 1);

    for (i = 0; i < b->endpoints.nelts; i++) {
        if (i > 0) {
            *p++ = ' ';
        }

        p = ngx_cpymem(p, ep[i].data, ep[i].len);
    }

    name.len = p - name.data;

    shm_zone = ngx_shared_memory_add(cf, &name, NGX_HTTP_KSERVE_SHPEERS_SIZE,
                                     &ngx_http_kserve_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (shm_zone->data != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared zone \"%V\" is already used", &name);
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_kserve_shpeers_init_zone;
    shm_zone->data = b;

    b->shm_zone = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_shpeers_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_kserve_backend_t  *ob = data;

    size_t                      len;
    ngx_http_kserve_backend_t  *b;

    b = shm_zone->data;

    if (ob != NULL) {
        /* a reload: the counts go on */
        b->sh = ob->sh;
        b->shpool = ob->shpool;

        return NGX_OK;
    }

    b->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        b->sh = b->shpool->data;

        return NGX_OK;
    }

    b->sh = ngx_slab_alloc(b->shpool, sizeof(ngx_http_kserve_shpeers_t));
    if (b->sh == NULL) {
        return NGX_ERROR;
    }

    b->shpool->data = b->sh;

    ngx_rbtree_init(&b->sh->rbtree, &b->sh->sentinel,
                    ngx_str_rbtree_insert_value);

    len = sizeof(" in kserve zone \"\"") + shm_zone->shm.name.len;

    b->shpool->log_ctx = ngx_slab_alloc(b->shpool, len);
    if (b->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(b->shpool->log_ctx, " in kserve zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is not an error: the instance is counted locally */
    b->shpool->log_nomem = 0;

    return NGX_OK;
}


/* ipc:// or tcp:// and something after it, no NUL inside */

static ngx_int_t
ngx_http_kserve_endpoint_valid(ngx_str_t *ep)
{
    if (ep->len <= 6
        || (ngx_strncmp(ep->data, "ipc://", 6) != 0
            && ngx_strncmp(ep->data, "tcp://", 6) != 0)
        || ngx_strlchr(ep->data, ep->data + ep->len, '\0') != NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
