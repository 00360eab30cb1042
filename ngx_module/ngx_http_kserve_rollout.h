
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_ROLLOUT_H_INCLUDED_
#define _NGX_HTTP_KSERVE_ROLLOUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/async.h>

#include "ngx_http_kserve_route.h"


/*
 * The automated canary rollout of a routed name (the "rollout" line of
 * kserve_route).  The decisions are ksv_rollout.c's; this file parses
 * the line, keeps the state, talks to Redis and sets the weights:
 *
 *  - the state is the hash kserve:rollout:NAME.  Every nginx worker of
 *    every node reads it with each Redis poll (kserve_redis interval),
 *    in one EVAL together with Redis' clock and the variants' statistics
 *    (kserve:stats:NAME:VARIANT, which every node flushes), decides, and
 *    writes a new state with an EVAL that compares the epoch (and the
 *    operator's command) it read: of the nginx workers and nodes that
 *    decide the same step, one writes it, the others follow it;
 *  - each node keeps the state it last knew in the shared zone
 *    "kserve_rollout", so nginx workers started by a reload route as the
 *    old ones did before their first poll, and a hash lost with a Redis
 *    restarted empty is written back rather than started over;
 *  - without Redis (down, or no kserve_redis at all) nothing is decided:
 *    the canary keeps the share last known (0 before any);
 *  - the canary's share is a step's percent of the traffic, the other
 *    variants share the rest in the proportion of their weights
 *    (nginx.conf or kserve:route:NAME).
 */


/* rollout CANARY [steps=..] [interval=..] [max_error_rate=..] ... */
char *ngx_http_kserve_rollout_line(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);

/* After the http block: the canary checked, the shared zone added. */
ngx_int_t ngx_http_kserve_rollout_postconfiguration(ngx_conf_t *cf,
    ngx_http_kserve_routing_t *routing);

/* In each nginx worker: the state the node last knew. */
ngx_int_t ngx_http_kserve_rollout_init_process(ngx_cycle_t *cycle,
    ngx_http_kserve_routed_t *rt);

/* The weights hook: the canary's share in w[nrouted], the rest scaled. */
void ngx_http_kserve_rollout_weights(ngx_http_kserve_routed_t *rt,
    ngx_uint_t *w);

/* Each Redis poll (connected): read, decide, maybe write. */
void ngx_http_kserve_rollout_poll(redisAsyncContext *ac,
    ngx_http_kserve_routed_t *rt);

/* The rollout families of /metrics, every routed name with a rollout. */
void ngx_http_kserve_rollout_metrics(ksv_writer_t *w,
    ngx_http_kserve_routing_t *routing);

/* The rollout as a JSON object (GET /v2/routes): ksv_rollout_json(). */
void ngx_http_kserve_rollout_json(ksv_writer_t *w,
    ngx_http_kserve_routed_t *rt);


#endif /* _NGX_HTTP_KSERVE_ROLLOUT_H_INCLUDED_ */
