
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_TRANSPORT_H_INCLUDED_
#define _NGX_HTTP_KSERVE_TRANSPORT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <zmq.h>

#include "ksv_proto.h"


/*
 * A backend is one kserve_pass endpoint list: where kserve-worker, the
 * control plane, listens.  Locations naming the same list share it.  Each
 * nginx worker holds per backend two ZeroMQ sockets on its event loop:
 *
 *   control  a DEALER per endpoint of the list (one per kserve-worker,
 *            each a host's control plane), for INDEX, STATS, LOG and
 *            REPOSITORY.  Each worker's model index (which instance
 *            serves which model version, and where) is polled every
 *            index_interval and pushed by the worker (an INDEX_REPLY with
 *            id 0) whenever it changes; nginx serves by the merge of
 *            them all (ksv_merge.h).  Any other control request goes to
 *            every worker and their replies are merged into one: a
 *            statistic sums over hosts, a load reaches every host, a
 *            worker that lacks a model (NOT_FOUND) is left out.  With
 *            one DEALER per worker, a send refused means that worker is
 *            not connected, and the others are still asked.
 *
 *   data     a ROUTER connected to every instance process the index
 *            lists: INFER and CANCEL out, INFER_REPLY and ERROR back, one
 *            hop each way.  kserve-worker is never on this path, so the
 *            instances keep serving with the last index when it is down.
 *
 * The data socket is the client of the ZeroMQ guide's Freelance pattern,
 * model three (brokerless, ROUTER to ROUTER).  The client ROUTER connects
 * to every server and names each connection itself: ZMQ_CONNECT_ROUTING_ID
 * set to the endpoint string right before each zmq_connect(), so a message
 * goes to an instance by starting it with a frame holding the endpoint,
 * and a reply arrives as [endpoint][header][frames...].  A DEALER could
 * only spread messages blindly; addressing lets nginx send each request
 * to the instance with the fewest requests outstanding, and fail exactly
 * those that were out on an instance that died.
 *
 * "Outstanding" counts the requests of every nginx worker of the host: a
 * request that hangs on an instance, sent by one nginx worker, keeps the
 * others from queueing behind it.  The counts are a table in a shared
 * memory zone per backend, "kserve_instances:" followed by the endpoint
 * list, created at configuration time and kept across reloads: an entry
 * per instance endpoint, made (under the zone's mutex) when an index
 * first lists the endpoint, found once per peer and the pointer kept, so
 * a request costs one atomic add when it is sent and one when it leaves.
 * An entry lives while any nginx worker still has a peer for it (a
 * reference count): the last one to let the endpoint go, when it stops
 * lingering, frees it.  An instance the zone has no room for is counted
 * by each nginx worker alone, as before.  Known limit: an nginx worker that
 * crashes leaves what it had outstanding in the counts, and its
 * references, for as long as the zone lives (until nginx restarts), so
 * those instances look that much busier; reads are clamped at 0, never
 * below.  One that exits gracefully takes back all it still held.
 *
 * ZMQ_ROUTER_MANDATORY makes an unknown peer EHOSTUNREACH and a full
 * queue EAGAIN instead of a silent drop.  ZMQ_ROUTING_ID "n<pid>.<random
 * hex>", one per socket, is how instances address their replies; it must
 * be unique among everything connected to an instance, since a ROUTER
 * ignores a second peer with an id it already has.
 *
 * ZMQ_IMMEDIATE stays 0 on the data socket: libzmq applies the connect
 * routing id to the pipe zmq_connect() creates, which then exists until
 * zmq_disconnect(), across reconnects; a request for an instance not
 * connected yet waits in that pipe.  (With ZMQ_IMMEDIATE=1 the pipe is
 * made only once connected, and the connect routing id is not used at
 * all.)  libzmq aborts the process when a connect routing id is still
 * taken, and a disconnected endpoint keeps its id until libzmq has torn
 * the pipe down, asynchronously; so an instance that left the index stays
 * connected, unused, for a while (NGX_HTTP_KSERVE_PEER_LINGER) before it
 * is disconnected, and one that comes back meanwhile is used again as it
 * is.
 */

typedef struct ngx_http_kserve_peer_s     ngx_http_kserve_peer_t;
typedef struct ngx_http_kserve_shpeers_s  ngx_http_kserve_shpeers_t;
typedef struct ngx_http_kserve_ready_s    ngx_http_kserve_ready_t;
typedef struct ngx_http_kserve_order_s    ngx_http_kserve_order_t;


/* one ZeroMQ socket and the fake connection around its ZMQ_FD */
typedef struct {
    void                        *zmq;
    ngx_connection_t            *connection;
} ngx_http_kserve_socket_t;


typedef struct ngx_http_kserve_backend_s  ngx_http_kserve_backend_t;


/* one kserve-worker of a backend, as an nginx worker knows it */
typedef struct {
    ngx_http_kserve_socket_t     socket;         /* DEALER, its endpoint */
    ngx_str_t                   *endpoint;
    ngx_http_kserve_backend_t   *backend;
    ngx_pool_t                  *index_pool;
    ksv_index_t                  index;          /* its own */
    ngx_msec_t                   index_time;     /* last INDEX_REPLY */
    unsigned                     index_known:1;
    unsigned                     unreachable:1;
} ngx_http_kserve_control_t;


struct ngx_http_kserve_backend_s {
    ngx_array_t                  endpoints;      /* of ngx_str_t, NUL ended */
    ngx_msec_t                   index_interval;

    /* the outstanding counts of every nginx worker, by instance */
    ngx_shm_zone_t              *shm_zone;
    ngx_slab_pool_t             *shpool;
    ngx_http_kserve_shpeers_t   *sh;

    /* per nginx worker, set up in init_process */
    ngx_http_kserve_control_t   *controls;       /* by endpoint */
    ngx_uint_t                   ncontrols;
    ngx_http_kserve_socket_t     data;           /* ROUTER: instances */
    ngx_event_t                  index_event;

    /* the merged index every lookup uses, and its ready lists */
    ngx_pool_t                  *index_pool;
    ksv_index_t                  index;
    ngx_msec_t                   index_time;     /* the latest of any */

    /*
     * The instances: every endpoint connected, by endpoint (peers) and
     * in a list (peer_list); the READY ones of each version of the index,
     * ready[model][version], in index_pool.
     */
    ngx_rbtree_t                 peers;
    ngx_rbtree_node_t            peers_sentinel;
    ngx_queue_t                  peer_list;
    ngx_http_kserve_ready_t    **ready;
    ngx_uint_t                   next_peer;      /* round robin among ties */

    /* model versions with preserve_ordering and replies outstanding */
    ngx_queue_t                  orders;

    unsigned                     index_known:1;  /* from any worker */
    unsigned                     unreachable:1;  /* INDEX found none */
    unsigned                     logged_malformed:1;
    unsigned                     logged_stray:1;
    unsigned                     logged_full:1;  /* no room in the zone */
};


typedef enum {
    NGX_HTTP_KSERVE_INDEX_NONE = 0,              /* never heard from */
    NGX_HTTP_KSERVE_INDEX_STALE,                 /* no reply lately, or
                                                    no worker to ask */
    NGX_HTTP_KSERVE_INDEX_FRESH
} ngx_http_kserve_index_state_e;


typedef struct ngx_http_kserve_pending_s  ngx_http_kserve_pending_t;
typedef struct ngx_http_kserve_gather_s   ngx_http_kserve_gather_t;

/*
 * Called once per sent request: with the reply's frames (frames[0] is the
 * header frame; they are closed after the call), or with frames == NULL
 * when the deadline passed.  The handler finalizes the request; the
 * transport runs the connection's posted requests afterwards.
 */
typedef void (*ngx_http_kserve_reply_pt)(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes);

struct ngx_http_kserve_pending_s {
    ngx_rbtree_node_t            node;           /* key: request id */
    ngx_queue_t                  queue;          /* its peer's requests */
    ngx_event_t                  deadline;
    ngx_http_request_t          *request;
    ngx_http_kserve_reply_pt     handler;
    ngx_http_kserve_peer_t      *peer;           /* NULL: kserve-worker's */
    ngx_http_kserve_gather_t    *gather;         /* sent to several */

    /* preserve_ordering: its place, and a reply held until its turn */
    ngx_http_kserve_order_t     *order;
    ngx_queue_t                  order_queue;
    zmq_msg_t                   *held;
    ngx_uint_t                   nheld;

    unsigned                     waiting:1;      /* in the id table */
    unsigned                     queued:1;       /* queue is linked */
};


/*
 * At configuration time: the backend for an endpoint list (n > 0
 * arguments, checked here), shared with every location naming the same
 * list in the same order, with its shared memory zone added; or NULL
 * after logging why.
 */
ngx_http_kserve_backend_t *ngx_http_kserve_backend_get(ngx_conf_t *cf,
    ngx_array_t *backends, ngx_str_t *value, ngx_uint_t n);

ngx_int_t ngx_http_kserve_transport_init(ngx_cycle_t *cycle,
    ngx_array_t *backends);
void ngx_http_kserve_transport_exit(ngx_cycle_t *cycle,
    ngx_array_t *backends);

uint64_t ngx_http_kserve_next_id(void);

/*
 * The writer's bytes as a frame that frees them when libzmq is done; the
 * writer is left empty.  Returns NGX_ERROR when the writer failed or out
 * of memory.
 */
ngx_int_t ngx_http_kserve_writer_frame(zmq_msg_t *frame, ksv_writer_t *w);

/*
 * Sends an INFER (frames[0] its header frame, carrying id and the
 * version's number as model_version) to an instance of version vs of
 * model ms, both from b's current index: the READY instance with the
 * fewest requests outstanding from all nginx workers, ties in turn, the
 * next one when an instance's connection is gone or its queue full.
 * Waits for the reply for at most timeout; a client that goes away, or
 * the deadline, sends CANCEL to that instance.  The frames are always
 * consumed.  Returns NGX_OK, NGX_AGAIN when every instance's queue is
 * full, NGX_DECLINED when the version has no READY instance that can be
 * reached, or NGX_ERROR.
 */
ngx_int_t ngx_http_kserve_send_infer(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ksv_model_status_t *ms,
    ksv_version_status_t *vs, uint64_t id, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_msec_t timeout);

/*
 * Sends an INFER nobody waits for (a mirror's shadow INFER) to an
 * instance of vs, chosen as above: no entry in the id table, so its
 * reply is dropped when it arrives.  The frames are always consumed.
 * Returns as ngx_http_kserve_send_infer().
 */
ngx_int_t ngx_http_kserve_send_oneway(ngx_http_kserve_backend_t *b,
    ksv_model_status_t *ms, ksv_version_status_t *vs, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_log_t *log);

/*
 * Sends a control message (frames, id in its header frame) to every
 * connected kserve-worker of b as p's request; the reply (the merge of
 * theirs, ksv_merge.h) reaches p->handler, or the deadline after
 * timeout.  At the deadline, what the workers that answered said is the
 * reply, except for a load or an unload, which every worker asked must
 * have answered.  The frames are taken either way.  Returns NGX_OK,
 * NGX_AGAIN when no worker is connected, or NGX_ERROR.
 */
ngx_int_t ngx_http_kserve_send_control(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, uint64_t id, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_msec_t timeout);

/*
 * Sends STATS for model and version (empty: all) to kserve-worker as p's
 * request; the reply reaches p->handler like any other.  Returns NGX_OK,
 * NGX_AGAIN when no worker is connected (the queue to one that is does
 * not fill: NGX_HTTP_KSERVE_CONTROL_HWM), or NGX_ERROR.
 */
ngx_int_t ngx_http_kserve_send_stats(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ngx_str_t *model, ngx_str_t *version,
    ngx_msec_t timeout);

/*
 * Decodes the reply to STATS into stats (allocated from pool, strings
 * pointing into the frame).  Returns NGX_OK, NGX_DECLINED when the worker
 * answered ERROR (error filled), or NGX_ERROR when the reply is malformed.
 */
ngx_int_t ngx_http_kserve_stats_reply(ngx_pool_t *pool, zmq_msg_t *frames,
    ngx_uint_t nframes, ksv_stats_t *stats, ksv_error_t *error);

/*
 * Sends REPOSITORY (Triton's repository extension) to kserve-worker as
 * p's request, with the client's body as its second frame (a load
 * always has one, possibly empty).  Returns as ngx_http_kserve_send_stats.
 */
ngx_int_t ngx_http_kserve_send_repository(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, ksv_repository_t *req, u_char *body,
    size_t len, ngx_msec_t timeout);

/* Decodes the reply to REPOSITORY as ngx_http_kserve_stats_reply. */
ngx_int_t ngx_http_kserve_repository_reply(ngx_pool_t *pool,
    zmq_msg_t *frames, ngx_uint_t nframes, ksv_repository_reply_t *reply,
    ksv_error_t *error);

/*
 * How current b's index is: STALE means kserve-worker did not answer
 * lately.  The index is still what nginx serves by: the instances it
 * lists keep taking requests while the worker is away.
 */
ngx_http_kserve_index_state_e ngx_http_kserve_index_state(
    ngx_http_kserve_backend_t *b);

/* Lookups in b's current index; NULL when not found. */
ksv_model_status_t *ngx_http_kserve_find_model(ngx_http_kserve_backend_t *b,
    ngx_str_t *name);
ksv_version_status_t *ngx_http_kserve_find_version(ksv_model_status_t *ms,
    int64_t version);
/* the highest READY version */
ksv_version_status_t *ngx_http_kserve_ready_version(ksv_model_status_t *ms);


#endif /* _NGX_HTTP_KSERVE_TRANSPORT_H_INCLUDED_ */
