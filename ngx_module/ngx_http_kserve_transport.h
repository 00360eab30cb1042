
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
 * A backend is one kserve_pass endpoint list.  Locations naming the same
 * list share it; each nginx worker holds one DEALER socket per backend,
 * connected to every endpoint, and its own copy of the worker's model
 * index, refreshed by polling INDEX every index_interval.
 */

typedef struct {
    ngx_array_t                  endpoints;      /* of ngx_str_t, NUL ended */
    ngx_msec_t                   index_interval;

    /* per nginx worker, set up in init_process */
    void                        *socket;
    ngx_connection_t            *connection;
    ngx_event_t                  index_event;
    ngx_pool_t                  *index_pool;
    ksv_index_t                  index;
    ngx_msec_t                   index_time;     /* last INDEX_REPLY */
    unsigned                     index_known:1;
    unsigned                     unreachable:1;  /* a send found no peer */
    unsigned                     logged_malformed:1;
    unsigned                     logged_stray:1;
} ngx_http_kserve_backend_t;


typedef enum {
    NGX_HTTP_KSERVE_INDEX_NONE = 0,              /* never heard from */
    NGX_HTTP_KSERVE_INDEX_STALE,                 /* no reply lately, or
                                                    no peer to send to */
    NGX_HTTP_KSERVE_INDEX_FRESH
} ngx_http_kserve_index_state_e;


typedef struct ngx_http_kserve_pending_s  ngx_http_kserve_pending_t;

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
    ngx_event_t                  deadline;
    ngx_http_request_t          *request;
    ngx_http_kserve_reply_pt     handler;
    unsigned                     waiting:1;     /* in the id table */
};


/*
 * At configuration time: the backend for an endpoint list (n > 0
 * arguments, checked here), shared with every location naming the same
 * list in the same order, or NULL after logging why.
 */
ngx_http_kserve_backend_t *ngx_http_kserve_backend_get(ngx_conf_t *cf,
    ngx_array_t *backends, ngx_str_t *value, ngx_uint_t n);

ngx_int_t ngx_http_kserve_transport_init(ngx_cycle_t *cycle,
    ngx_array_t *backends);
void ngx_http_kserve_transport_exit(ngx_cycle_t *cycle,
    ngx_array_t *backends);

uint64_t ngx_http_kserve_next_id(void);

/*
 * Sends a multipart message whose header frame carries id, and waits for
 * the reply for at most timeout.  The frames are always consumed.
 * Returns NGX_OK, NGX_AGAIN when the socket would block (no peer or its
 * queue is full), or NGX_ERROR.
 */
ngx_int_t ngx_http_kserve_send(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_pending_t *p, uint64_t id, zmq_msg_t *frames,
    ngx_uint_t nframes, ngx_msec_t timeout);

/*
 * Sends a multipart message nobody waits for (a mirror's shadow INFER):
 * no entry in the id table, so its reply is dropped when it arrives.
 * The frames are always consumed.  Returns NGX_OK, NGX_AGAIN when the
 * socket would block, or NGX_ERROR.
 */
ngx_int_t ngx_http_kserve_send_oneway(ngx_http_kserve_backend_t *b,
    zmq_msg_t *frames, ngx_uint_t nframes, ngx_log_t *log);

/*
 * Sends STATS for model and version (empty: all) as p's request; the
 * reply reaches p->handler like any other.  Returns as
 * ngx_http_kserve_send().
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

ngx_http_kserve_index_state_e ngx_http_kserve_index_state(
    ngx_http_kserve_backend_t *b);
ksv_model_status_t *ngx_http_kserve_find_model(ngx_http_kserve_backend_t *b,
    ngx_str_t *name);


#endif /* _NGX_HTTP_KSERVE_TRANSPORT_H_INCLUDED_ */
