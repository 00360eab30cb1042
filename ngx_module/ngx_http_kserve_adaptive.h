
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_ADAPTIVE_H_INCLUDED_
#define _NGX_HTTP_KSERVE_ADAPTIVE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"
#include "ksv_adaptive.h"


/*
 * strategy adaptive [interval=5s] [window=30s] [slo=200ms] [min_share=5%]
 *                   [rate=0.1] [tolerance=2%];
 *
 * Weights that follow the variants' measured quality (ksv_adaptive.h
 * says how they are derived).  Where each part lives:
 *
 *  - every request adds to its variant's cumulative counters in the
 *    shared zone (success, failure, latency, and here: "slow", the
 *    successes later than the SLO), so every nginx worker counts
 *    together, with no lock and no Redis;
 *  - one nginx worker (ngx_worker 0, whichever process holds that slot
 *    now) derives: on its tick it snapshots the counters into its
 *    window ring, adds the windows other nginx nodes published to Redis
 *    (kserve:adaptive:NAME), derives the shares and stores them, their
 *    targets, weights and the window in the shared zone;
 *  - every nginx worker's tick takes the stored weights as the ones in
 *    effect (a variant the operator weighs 0 gets 0 at once), and
 *    requests choose among them by smooth weighted round robin.
 *
 * With Redis, the deriving worker of each node sends, per interval, one
 * HSET of its window, one PEXPIRE and one HGETALL of the others'
 * (docs/redis.md); requests never talk to Redis.
 */

/* the strategy's row of ngx_http_kserve_strategies[] */
char *ngx_http_kserve_adaptive_conf(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *args, ngx_uint_t n);
ngx_int_t ngx_http_kserve_adaptive_init_process(ngx_cycle_t *cycle,
    ngx_http_kserve_routed_t *rt);
ngx_int_t ngx_http_kserve_adaptive_choose(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n);
void ngx_http_kserve_adaptive_tick(ngx_http_kserve_routed_t *rt,
    ngx_log_t *log);
void ngx_http_kserve_adaptive_weights(ngx_http_kserve_routed_t *rt,
    ngx_uint_t *w);

/* A routed reply: a success later than the SLO counts as slow. */
void ngx_http_kserve_adaptive_account(ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_variant_t *v, ngx_http_kserve_outcome_e outcome,
    uint64_t us);

/*
 * Redis: the HGETALL of kserve:adaptive:NAME (field, value pairs);
 * ok == 0: no answer (disconnected) or not a hash.
 */
void ngx_http_kserve_adaptive_remote(ngx_http_kserve_routed_t *rt,
    ngx_log_t *log, ngx_str_t *fields, ngx_uint_t n, ngx_uint_t ok);

/*
 * GET /v2/routes: the strategy object's members after its name (see
 * ksv_adapt_json()), from the shared zone: every nginx worker answers
 * the same.
 */
void ngx_http_kserve_adaptive_status(ngx_http_kserve_routed_t *rt,
    ksv_writer_t *w);

/* ngx_kserve_route_adaptive_share, the families of /metrics */
void ngx_http_kserve_adaptive_metrics(ksv_writer_t *w,
    ngx_http_kserve_routing_t *routing);


#endif /* _NGX_HTTP_KSERVE_ADAPTIVE_H_INCLUDED_ */
