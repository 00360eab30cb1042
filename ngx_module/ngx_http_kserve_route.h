
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_ROUTE_H_INCLUDED_
#define _NGX_HTTP_KSERVE_ROUTE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ksv_route.h"


/*
 * Routed model names (kserve_route NAME { ... }): what clients call maps
 * to variants, each a model[:version] of the location's worker.  The
 * configuration is parsed once into these structs; the weights in effect,
 * the smooth WRR state and the statistics not yet sent to Redis are per
 * nginx worker; the health state (consecutive failures, ejection) and the
 * counters /metrics shows live in the shared zone "kserve_route", so every
 * nginx worker ejects and counts together.
 *
 * "route" in a name means a routed name, nothing else (the URI of a
 * request is ngx_http_kserve_uri_t).  The files, one concern each:
 *
 *   ngx_http_kserve_route_conf.c     the kserve_route block (a keyword ->
 *                                    handler table), its checks, the zone
 *   ngx_http_kserve_route.c          a request's hooks: resolve, mirror,
 *                                    reply (retry on the fallback), header
 *   ngx_http_kserve_route_choose.c   the strategies and the choice of a
 *                                    variant among the usable ones
 *   ngx_http_kserve_route_health.c   outcomes, counters, ejection, the
 *                                    windows of the counters
 *   ngx_http_kserve_route_weights.c  weights in effect (nginx.conf, Redis,
 *                                    then the hooks) and the per-route
 *                                    timer
 *   ngx_http_kserve_route_status.c   GET /v2/routes[/NAME]
 *   ngx_http_kserve_metrics.c        their /metrics families
 *   ksv_route.c                      the nginx-free selection functions
 *
 * Request content for rules and sticky keys: ngx_http_kserve_variables.h.
 */

#define NGX_HTTP_KSERVE_RANDOM    0
#define NGX_HTTP_KSERVE_SWRR      1
#define NGX_HTTP_KSERVE_LEAST     2
#define NGX_HTTP_KSERVE_FASTEST   3

/* one past the last: a new strategy takes this number and a table row */
#define NGX_HTTP_KSERVE_NSTRATEGIES  4


typedef enum {
    NGX_HTTP_KSERVE_SUCCESS = 0,
    NGX_HTTP_KSERVE_FAILURE,
    NGX_HTTP_KSERVE_CLIENT_ERROR
} ngx_http_kserve_outcome_e;


typedef struct ngx_http_kserve_routed_s    ngx_http_kserve_routed_t;
typedef struct ngx_http_kserve_strategy_s  ngx_http_kserve_strategy_t;


/* the counters at the start of a window (ngx_http_kserve_route_window) */
typedef struct {
    ngx_atomic_t                 start;          /* ngx_current_msec, 0 */
    ngx_atomic_t                 requests;
    ngx_atomic_t                 success;
    ngx_atomic_t                 failure;
    ngx_atomic_t                 client_error;
    ngx_atomic_t                 latency_us;
    ngx_atomic_t                 buckets[KSV_ROUTE_NBUCKETS + 1];
} ngx_http_kserve_snapshot_t;


/* in the shared zone, only touched with atomic operations */
typedef struct {
    ngx_atomic_t                 requests;
    ngx_atomic_t                 success;
    ngx_atomic_t                 failure;
    ngx_atomic_t                 client_error;
    ngx_atomic_t                 latency_us;
    ngx_atomic_t                 buckets[KSV_ROUTE_NBUCKETS + 1];
    ngx_atomic_t                 retries;
    ngx_atomic_t                 mirrored;
    ngx_atomic_t                 ejections;
    ngx_atomic_t                 outstanding;
    ngx_atomic_t                 fails;          /* consecutive */
    ngx_atomic_t                 level;          /* ejections in a row */
    ngx_atomic_t                 ejected_until;  /* ngx_current_msec */
    ngx_atomic_t                 ewma_us;

    /* the last window is [before, last), the current one [last, now) */
    ngx_http_kserve_snapshot_t   before;
    ngx_http_kserve_snapshot_t   last;
} ngx_http_kserve_variant_shm_t;


/* a variant's counts over a window, as ngx_http_kserve_route_window() */
typedef struct {
    uint64_t                     requests;
    uint64_t                     success;
    uint64_t                     failure;
    uint64_t                     client_error;
    uint64_t                     latency_us;
    uint64_t                     buckets[KSV_ROUTE_NBUCKETS + 1];
    ngx_msec_t                   length;         /* ms */
    ngx_msec_t                   age;            /* ms since its end */
    unsigned                     complete:1;     /* 0: the first, ongoing */
} ngx_http_kserve_window_t;


/* this nginx worker's counts not yet flushed to Redis */
typedef struct {
    uint64_t                     requests;
    uint64_t                     success;
    uint64_t                     failure;
    uint64_t                     client_error;
    uint64_t                     latency_us;
    uint64_t                     buckets[KSV_ROUTE_NBUCKETS + 1];
    uint64_t                     retries;
    uint64_t                     mirrored;
    uint64_t                     ejections;
} ngx_http_kserve_variant_stats_t;


typedef struct {
    ngx_str_t                    name;           /* model[:version] */
    ngx_str_t                    model;
    ngx_str_t                    version;        /* empty: model's policy */
    int64_t                      version_n;
    ngx_uint_t                   conf_weight;    /* nginx.conf */
    unsigned                     routable:1;     /* a "variant" line */

    /* per nginx worker */
    ngx_int_t                    redis_weight;   /* -1: none in Redis */
    ngx_uint_t                   base_weight;    /* nginx.conf or Redis */
    ngx_uint_t                   weight;         /* in effect */
    ngx_http_kserve_variant_shm_t    *shm;
    ngx_http_kserve_variant_stats_t   delta;     /* not sent yet */
    ngx_http_kserve_variant_stats_t   flight;    /* being sent */
} ngx_http_kserve_variant_t;


typedef struct {
    ngx_http_complex_value_t     value;
    ngx_str_t                    match;
    ngx_str_t                    target;
    ngx_uint_t                   variant;
} ngx_http_kserve_rule_t;


struct ngx_http_kserve_routed_s {
    ngx_str_t                    name;
    ngx_str_t                    redis_key;      /* kserve:route:NAME */

    /* the variants first (nrouted), then fallback and mirror if apart */
    ngx_array_t                  variants;       /* ngx_http_kserve_variant_t */
    ngx_uint_t                   nrouted;

    ngx_uint_t                   strategy;       /* NGX_HTTP_KSERVE_... */
    void                        *strategy_conf;  /* the strategy's own */
    ngx_msec_t                   interval;       /* the tick; 0: none */
    void                        *rollout;        /* NULL: no rollout */
    ngx_http_complex_value_t    *sticky;
    ngx_array_t                  rules;          /* ngx_http_kserve_rule_t */
    ngx_int_t                    fallback;       /* index, or -1 */
    ngx_int_t                    mirror;         /* index, or -1 */
    ngx_uint_t                   mirror_pct;     /* in 1/100 % */
    ngx_uint_t                   max_fails;      /* 0: never eject */
    ngx_msec_t                   eject_time;
    ngx_msec_t                   eject_max;
    ngx_msec_t                   window;         /* status and stats */

    ngx_str_t                    fallback_name;  /* while parsing */
    ngx_str_t                    mirror_name;
    ngx_uint_t                   line;

    /* per nginx worker */
    ksv_route_peer_t            *peers;          /* nrouted */
    void                        *strategy_state; /* the strategy's own */
    ngx_event_t                  tick;           /* every interval */
    ngx_event_t                  window_ev;      /* every window */
    uint32_t                     redis_hash;     /* last HGETALL seen */
    unsigned                     redis_seen:1;
    unsigned                     redis_weights:1;
    unsigned                     polling:1;
};


/*
 * A strategy: one row of ngx_http_kserve_strategies[], indexed by its
 * NGX_HTTP_KSERVE_ number (ngx_http_kserve_route_choose.c).  Only choose
 * is required.  A strategy that learns (e.g. weights recomputed from the
 * variants' counters) sets rt->interval in conf, keeps its state in
 * rt->strategy_state, recomputes it in tick and hands its weights over in
 * weights; choose then picks by the weights in effect.
 */

struct ngx_http_kserve_strategy_s {
    ngx_str_t                    name;

    /*
     * "strategy NAME ARGS...": the arguments after the name (n may be
     * 0); NULL: the strategy takes none.
     */
    char                      *(*conf)(ngx_conf_t *cf,
                                       ngx_http_kserve_routed_t *rt,
                                       ngx_str_t *args, ngx_uint_t n);

    /* in each nginx worker, before the first request */
    ngx_int_t                  (*init_process)(ngx_cycle_t *cycle,
                                               ngx_http_kserve_routed_t *rt);

    /*
     * A request's variant: an index below n among the peers (weight and
     * usable filled in), or -1 when none takes part.
     */
    ngx_int_t                  (*choose)(ngx_http_kserve_routed_t *rt,
                                         ksv_route_peer_t *peers,
                                         ngx_uint_t n);

    /* every rt->interval in each nginx worker */
    void                       (*tick)(ngx_http_kserve_routed_t *rt,
                                       ngx_log_t *log);

    /*
     * The weights in effect from the operator's (w[nrouted]: nginx.conf
     * or Redis, after a rollout's): rewrite w in place.
     */
    void                       (*weights)(ngx_http_kserve_routed_t *rt,
                                          ngx_uint_t *w);

    /*
     * GET /v2/routes: members of the "strategy" object after "name",
     * each written with a leading ',' (e.g. ,"weights":{...}).
     */
    void                       (*status)(ngx_http_kserve_routed_t *rt,
                                         ksv_writer_t *w);
};

extern const ngx_http_kserve_strategy_t
    ngx_http_kserve_strategies[NGX_HTTP_KSERVE_NSTRATEGIES];


typedef struct ngx_http_kserve_redis_s  ngx_http_kserve_redis_t;

struct ngx_http_kserve_routing_s {
    ngx_array_t                  routes;    /* ngx_http_kserve_routed_t * */
    ngx_shm_zone_t              *zone;
    ngx_http_kserve_redis_t     *redis;     /* kserve_redis, or NULL */
};


/* one request's choice */
struct ngx_http_kserve_pick_s {
    ngx_http_kserve_routed_t    *routed;
    ngx_http_kserve_variant_t   *variant;
    uint64_t                     start_us;
    unsigned                     outstanding:1;
    unsigned                     retried:1;
    unsigned                     sent:1;
};


/* ngx_http_kserve_route_conf.c: the kserve_route block, its checks */
ngx_http_kserve_routing_t *ngx_http_kserve_routing(ngx_conf_t *cf);
char *ngx_http_kserve_route_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_kserve_route_postconfiguration(ngx_conf_t *cf);

/* The routed name, or NULL. */
ngx_http_kserve_routed_t *ngx_http_kserve_routed(
    ngx_http_kserve_routing_t *routing, ngx_str_t *name);

/* A variant's index by name (all: fallback and mirror too), or -1. */
ngx_int_t ngx_http_kserve_find_variant(ngx_http_kserve_routed_t *rt,
    ngx_str_t *name, ngx_uint_t all);


/* ngx_http_kserve_route.c: a request's hooks */

ngx_int_t ngx_http_kserve_route_init_process(ngx_cycle_t *cycle);
void ngx_http_kserve_route_exit_process(ngx_cycle_t *cycle);

/*
 * Before a model's endpoint runs: a routed name becomes a variant in
 * uri (infer: the chosen one, *pick set; metadata, config: the first
 * variant, uri->alias the routed name; ready: a ready variant).
 * Returns NGX_DECLINED for a name that is not routed.
 */
ngx_int_t ngx_http_kserve_route_resolve(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri, ngx_http_kserve_pick_t **pick);

/* Right before the INFER frames are sent: the clock, and the mirror. */
void ngx_http_kserve_route_sending(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, ngx_http_kserve_backend_t *b,
    ksv_infer_t *m, zmq_msg_t *frames, ngx_uint_t nframes);

/*
 * The reply (frames == NULL: the deadline) of a routed INFER: accounted,
 * and the variant's health updated.  Returns NGX_AGAIN when the request
 * is to be sent again to the fallback (ctx->uri names it now).
 */
ngx_int_t ngx_http_kserve_route_done(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, zmq_msg_t *frames, ngx_uint_t nframes);

/* X-KServe-Variant on the response of a routed request. */
ngx_int_t ngx_http_kserve_route_header(ngx_http_request_t *r);

/* Monotonic microseconds, and 32 random bits. */
uint64_t ngx_http_kserve_route_now_us(void);
uint32_t ngx_http_kserve_route_random32(void);


/* ngx_http_kserve_route_choose.c: the strategies, the choice */

/*
 * "strategy NAME [ARGS]" of the block: rt->strategy, and the strategy's
 * own conf handler for its arguments.
 */
char *ngx_http_kserve_route_strategy(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *args, ngx_uint_t n);

/*
 * Rules first, then the sticky key, then the strategy, each among the
 * usable variants.  Never NULL.
 */
ngx_http_kserve_variant_t *ngx_http_kserve_route_choose(
    ngx_http_request_t *r, ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_backend_t *b);

/* Whether the worker's index has the variant ready (or knows nothing). */
ngx_uint_t ngx_http_kserve_variant_ready(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_variant_t *v);


/* ngx_http_kserve_route_health.c: outcomes, counters, ejection */

/* A reply's outcome (frames == NULL: the deadline). */
ngx_http_kserve_outcome_e ngx_http_kserve_route_outcome(zmq_msg_t *frames,
    ngx_uint_t nframes);

/* The counters of one answered request, shared and for Redis. */
void ngx_http_kserve_route_account(ngx_http_kserve_variant_t *v,
    ngx_http_kserve_outcome_e outcome, uint64_t us);

/* Consecutive failures and ejection, after one answered request. */
void ngx_http_kserve_route_health(ngx_log_t *log,
    ngx_http_kserve_routed_t *rt, ngx_http_kserve_variant_t *v,
    ngx_http_kserve_outcome_e outcome);

/* Not ejected now (ejected_until passed). */
ngx_uint_t ngx_http_kserve_variant_in_service(ngx_http_kserve_variant_t *v,
    ngx_msec_t now);

/*
 * Windows: every rt->window the counters of each variant are snapshot
 * in the shared zone (by whichever nginx worker's timer comes first), so
 * the last complete window reads the same from every worker.  w gets the
 * last complete window, or while there is none yet the one going on.
 */
void ngx_http_kserve_route_window(ngx_http_kserve_variant_t *v,
    ngx_http_kserve_window_t *w);
ngx_int_t ngx_http_kserve_route_window_init(ngx_cycle_t *cycle,
    ngx_http_kserve_routed_t *rt);
void ngx_http_kserve_route_window_exit(ngx_http_kserve_routed_t *rt);


/* ngx_http_kserve_route_status.c: GET /v2/routes[/NAME] */

/* name empty: every routed name */
ngx_int_t ngx_http_kserve_route_status(ngx_http_request_t *r,
    ngx_str_t *name);


/* ngx_http_kserve_route_weights.c: weights in effect, the tick */

/* Redis: weights read from a HGETALL reply (field, value pairs). */
void ngx_http_kserve_route_weights(ngx_http_kserve_routed_t *rt,
    ngx_log_t *log, ngx_str_t *fields, ngx_uint_t n);

/*
 * v->weight of every variant from v->base_weight through the hooks (a
 * rollout's share, the strategy's weights); logged when one changes,
 * with why (a short word such as "from redis").
 */
void ngx_http_kserve_route_effective(ngx_http_kserve_routed_t *rt,
    ngx_log_t *log, const char *why);

/* Starts and stops the tick of each routed name with an interval. */
ngx_int_t ngx_http_kserve_route_tick_init(ngx_cycle_t *cycle,
    ngx_http_kserve_routed_t *rt);
void ngx_http_kserve_route_tick_exit(ngx_http_kserve_routed_t *rt);


#endif /* _NGX_HTTP_KSERVE_ROUTE_H_INCLUDED_ */
