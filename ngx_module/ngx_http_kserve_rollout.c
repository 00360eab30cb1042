
/*
 * Copyright (C) ngx_kserve authors
 *
 * The automated canary rollout of a routed name: the "rollout" line, the
 * state shared through Redis and the node's zone, the canary's share.
 * See ngx_http_kserve_rollout.h for the whole picture and ksv_rollout.h
 * for the decisions.
 *
 * Each poll is two round trips at most, on the Redis connection every
 * nginx worker already holds (ngx_http_kserve_redis.c), never on a
 * request's path:
 *
 *     EVAL read:  TIME, HGETALL kserve:rollout:NAME, HGETALL of each
 *                 variant's kserve:stats:NAME:VARIANT
 *     (decide)
 *     EVAL write: if epoch and command are still what was read, the
 *                 new state replaces the hash (or the command alone is
 *                 deleted); 1 when written, 0 when another got there
 *
 * The nginx worker whose write lands logs the step (or rollback) as a
 * [notice] and counts it; every nginx worker follows the hash.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_kserve_rollout.h"
#include "ksv_json_write.h"
#include "ksv_prometheus.h"
#include "ksv_rollout.h"


#define NGX_HTTP_KSERVE_ROLLOUT_ZONE_SIZE  (64 * 1024)
#define NGX_HTTP_KSERVE_ROLLOUT_SCALE      10000  /* weight of 1 % */
#define NGX_HTTP_KSERVE_ROLLOUT_MAX_ARGS   64


/* in the zone: what the node last knew, and its counters */
typedef struct {
    ngx_atomic_t                 steps;
    ngx_atomic_t                 completed;
    ngx_atomic_t                 stops[KSV_ROLLOUT_NCAUSES];
    ngx_atomic_t                 known;
    ksv_rollout_t                state;         /* under the zone's mutex */
} ngx_http_kserve_rollout_shm_t;


typedef struct ngx_http_kserve_rollout_slot_s  ngx_http_kserve_rollout_slot_t;

struct ngx_http_kserve_rollout_slot_s {
    ngx_http_kserve_rollout_slot_t  *next;
    ngx_http_kserve_rollout_shm_t    shm;
    size_t                           len;
    u_char                           key[1];
};


typedef struct {
    ngx_str_t                    canary_name;
    ngx_uint_t                   canary;        /* index into variants */
    ksv_rollout_conf_t           conf;
    ngx_str_t                    key;           /* kserve:rollout:NAME */
    ngx_str_t                   *stats_keys;    /* nrouted */
    ngx_uint_t                   line;
    ngx_flag_t                   ready_timeout_set;

    ngx_shm_zone_t              *zone;
    ngx_http_kserve_rollout_shm_t  *shm;

    /* per nginx worker */
    ksv_rollout_t                state;         /* followed */
    ksv_rollout_counts_t         canary_step;   /* at the last poll */
    ksv_rollout_counts_t         baseline_step;
    ngx_msec_t                   not_ready_since;
    uint64_t                     held_epoch;    /* hold logged */
    unsigned                     known:1;
    unsigned                     not_ready:1;
    unsigned                     polling:1;
    unsigned                     writing:1;
    ngx_uint_t                   complaint;     /* the last one logged */
} ngx_http_kserve_rollout_t;


/* what is wrong with what Redis says, logged once until it changes */
#define NGX_HTTP_KSERVE_ROLLOUT_EVAL_FAILED   1
#define NGX_HTTP_KSERVE_ROLLOUT_BAD_HASH      2
#define NGX_HTTP_KSERVE_ROLLOUT_OTHER_CANARY  3


/* a write on its way, and what it means if it lands */
typedef struct {
    ngx_http_kserve_routed_t    *rt;
    ksv_rollout_action_e         action;
    ksv_rollout_t                next;
} ngx_http_kserve_rollout_write_t;


static char *ngx_http_kserve_rollout_steps(ngx_conf_t *cf,
    ksv_rollout_conf_t *conf, ngx_str_t *s);
static ngx_int_t ngx_http_kserve_rollout_percent(ngx_str_t *s,
    uint32_t *bp);
static ngx_int_t ngx_http_kserve_rollout_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_kserve_rollout_polled(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_kserve_rollout_written(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_kserve_rollout_write(redisAsyncContext *ac,
    ngx_http_kserve_routed_t *rt, ngx_log_t *log, ksv_rollout_action_e a,
    const ksv_rollout_t *seen, ksv_rollout_t *next);
static void ngx_http_kserve_rollout_follow(ngx_http_kserve_routed_t *rt,
    ngx_log_t *log, const ksv_rollout_t *st);
static int ngx_http_kserve_rollout_ready(ngx_http_kserve_routed_t *rt);
static ngx_uint_t ngx_http_kserve_rollout_ours(ngx_http_kserve_rollout_t *ro,
    const ksv_rollout_t *st);
static void ngx_http_kserve_rollout_counts(ksv_rollout_counts_t *c,
    redisReply *hash);
static ksv_str_t ngx_http_kserve_rollout_str(redisReply *e);
static uint64_t ngx_http_kserve_rollout_reply_u64(redisReply *e);


static ngx_str_t  ngx_http_kserve_rollout_zone_name =
    ngx_string("kserve_rollout");


/* KEYS: the rollout's hash, then each variant's statistics */

static const char  ngx_http_kserve_rollout_read_lua[] =
    "local t = redis.call('TIME') "
    "local out = {t[1], t[2], redis.call('HGETALL', KEYS[1])} "
    "for i = 2, #KEYS do "
        "out[#out + 1] = redis.call('HGETALL', KEYS[i]) "
    "end "
    "return out";

/* ARGV: epoch read ("0": none), command read, "drop" or "set", fields */

static const char  ngx_http_kserve_rollout_write_lua[] =
    "local e = redis.call('HGET', KEYS[1], 'epoch') or '0' "
    "if e ~= ARGV[1] then return 0 end "
    "local c = redis.call('HGET', KEYS[1], 'command') or '' "
    "if c ~= ARGV[2] then return 0 end "
    "if ARGV[3] == 'drop' then "
        "redis.call('HDEL', KEYS[1], 'command') "
        "return 1 "
    "end "
    "redis.call('DEL', KEYS[1]) "
    "redis.call('HSET', KEYS[1], unpack(ARGV, 4)) "
    "return 1";


/* ---- configuration ------------------------------------------------------ */

/*
 * rollout CANARY [steps=P,P,..] [interval=TIME] [max_error_rate=PCT%]
 *         [max_p99=TIME] [min_requests=N] [margin=PCT%]
 *         [ready_timeout=TIME];
 */

char *
ngx_http_kserve_rollout_line(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_uint_t n)
{
    char                       *rv;
    ngx_int_t                   num;
    ngx_str_t                   s;
    ngx_uint_t                  i;
    ngx_msec_t                  ms;
    ngx_http_kserve_rollout_t  *ro;

    if (rt->rollout != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rollout\" is duplicate in kserve_route \"%V\"",
                           &rt->name);
        return NGX_CONF_ERROR;
    }

    ro = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_rollout_t));
    if (ro == NULL) {
        return NGX_CONF_ERROR;
    }

    ro->canary_name = value[1];
    ro->line = cf->conf_file->line;

    ro->conf.steps[0] = 5;
    ro->conf.steps[1] = 25;
    ro->conf.steps[2] = 50;
    ro->conf.steps[3] = 100;
    ro->conf.nsteps = 4;
    ro->conf.interval_ms = 30000;
    ro->conf.max_error_bp = 100;
    ro->conf.max_p99_us = 0;
    ro->conf.min_requests = 100;
    ro->conf.margin_bp = KSV_ROLLOUT_NO_MARGIN;

#define ngx_http_kserve_arg(name)                                            \
    (value[i].len > sizeof(name) - 1                                         \
     && ngx_strncmp(value[i].data, name, sizeof(name) - 1) == 0              \
     && (s.data = value[i].data + sizeof(name) - 1,                          \
         s.len = value[i].len - (sizeof(name) - 1), 1))

    for (i = 2; i <= n; i++) {

        if (ngx_http_kserve_arg("steps=")) {
            rv = ngx_http_kserve_rollout_steps(cf, &ro->conf, &s);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        if (ngx_http_kserve_arg("interval=")
            || ngx_http_kserve_arg("max_p99=")
            || ngx_http_kserve_arg("ready_timeout="))
        {
            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0
                || ms > 7 * 24 * 3600 * 1000)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid time in \"%V\" of rollout: "
                                   "from 1ms to 7d expected", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (value[i].data[0] == 'i') {
                ro->conf.interval_ms = ms;

            } else if (value[i].data[0] == 'm') {
                ro->conf.max_p99_us = (uint64_t) ms * 1000;

            } else {
                ro->conf.ready_timeout_ms = ms;
                ro->ready_timeout_set = 1;
            }

            continue;
        }

        if (ngx_http_kserve_arg("max_error_rate=")) {
            if (ngx_http_kserve_rollout_percent(&s, &ro->conf.max_error_bp)
                != NGX_OK)
            {
                goto percent;
            }

            continue;
        }

        if (ngx_http_kserve_arg("margin=")) {
            if (ngx_http_kserve_rollout_percent(&s, &ro->conf.margin_bp)
                != NGX_OK)
            {
                goto percent;
            }

            continue;
        }

        if (ngx_http_kserve_arg("min_requests=")) {
            num = ngx_atoi(s.data, s.len);

            if (num == NGX_ERROR || num > 100000000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" of rollout: an integer "
                                   "from 0 to 100000000 expected",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            ro->conf.min_requests = (uint64_t) num;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" of rollout: steps=, "
                           "interval=, max_error_rate=, max_p99=, "
                           "min_requests=, margin= or ready_timeout= "
                           "expected", &value[i]);
        return NGX_CONF_ERROR;
    }

#undef ngx_http_kserve_arg

    if (!ro->ready_timeout_set) {
        ro->conf.ready_timeout_ms = ro->conf.interval_ms;
    }

    rt->rollout = ro;

    return NGX_CONF_OK;

percent:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid percentage in \"%V\" of rollout: from 0%% "
                       "to 100%% expected, e.g. \"1%%\" or \"0.5%%\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


/* "5,25,50,100": percents, each above the one before */

static char *
ngx_http_kserve_rollout_steps(ngx_conf_t *cf, ksv_rollout_conf_t *conf,
    ngx_str_t *s)
{
    u_char      *p, *last, *comma;
    ngx_int_t    pct;
    ngx_uint_t   n;

    p = s->data;
    last = s->data + s->len;
    n = 0;

    while (p <= last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        pct = ngx_atoi(p, comma - p);

        if (pct == NGX_ERROR || pct < 1 || pct > 100
            || (n > 0 && (uint32_t) pct <= conf->steps[n - 1])
            || n == KSV_ROLLOUT_MAX_STEPS)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid rollout steps \"%V\": at most %d "
                               "percents from 1 to 100, each larger than "
                               "the one before, expected, e.g. "
                               "\"5,25,50,100\"", s, KSV_ROLLOUT_MAX_STEPS);
            return NGX_CONF_ERROR;
        }

        conf->steps[n++] = (uint32_t) pct;
        p = comma + 1;
    }

    conf->nsteps = (uint32_t) n;

    return NGX_CONF_OK;
}


/* "1%", "0.25%" as 1/100 %: 100, 25 */

static ngx_int_t
ngx_http_kserve_rollout_percent(ngx_str_t *s, uint32_t *bp)
{
    ngx_int_t  n;

    if (s->len < 2 || s->data[s->len - 1] != '%') {
        return NGX_ERROR;
    }

    n = ngx_atofp(s->data, s->len - 1, 2);

    if (n == NGX_ERROR || n > 10000) {
        return NGX_ERROR;
    }

    *bp = (uint32_t) n;

    return NGX_OK;
}


/*
 * Once the http block is read: the canary is one of the variants (not
 * the only one), the Redis keys are made, and the zone is added.
 */

ngx_int_t
ngx_http_kserve_rollout_postconfiguration(ngx_conf_t *cf,
    ngx_http_kserve_routing_t *routing)
{
    u_char                      *p;
    ngx_int_t                    idx;
    ngx_uint_t                   i, k, n;
    ngx_shm_zone_t              *zone;
    ngx_http_kserve_routed_t   **rtp, *rt;
    ngx_http_kserve_variant_t   *v;
    ngx_http_kserve_rollout_t   *ro;

    rtp = routing->routes.elts;
    n = 0;

    for (i = 0; i < routing->routes.nelts; i++) {
        rt = rtp[i];
        ro = rt->rollout;

        if (ro == NULL) {
            continue;
        }

        idx = ngx_http_kserve_find_variant(rt, &ro->canary_name, 0);

        if (idx < 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "rollout of kserve_route \"%V\" names \"%V\", "
                          "which is not one of its variants",
                          &rt->name, &ro->canary_name);
            return NGX_ERROR;
        }

        if (rt->nrouted < 2) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "rollout of kserve_route \"%V\" needs a variant "
                          "besides the canary \"%V\" (the baseline)",
                          &rt->name, &ro->canary_name);
            return NGX_ERROR;
        }

        if (routing->redis == NULL) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "rollout of kserve_route \"%V\" without "
                          "kserve_redis never starts: \"%V\" keeps weight "
                          "0", &rt->name, &ro->canary_name);
        }

        ro->canary = (ngx_uint_t) idx;

        ro->key.len = sizeof("kserve:rollout:") - 1 + rt->name.len;
        ro->key.data = ngx_pnalloc(cf->pool, ro->key.len);
        if (ro->key.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(ro->key.data, "kserve:rollout:",
                       sizeof("kserve:rollout:") - 1);
        ngx_memcpy(p, rt->name.data, rt->name.len);

        ro->stats_keys = ngx_palloc(cf->pool, rt->nrouted * sizeof(ngx_str_t));
        if (ro->stats_keys == NULL) {
            return NGX_ERROR;
        }

        v = rt->variants.elts;

        for (k = 0; k < rt->nrouted; k++) {
            ro->stats_keys[k].len = sizeof("kserve:stats::") - 1
                                    + rt->name.len + v[k].name.len;
            ro->stats_keys[k].data = ngx_pnalloc(cf->pool,
                                                 ro->stats_keys[k].len);
            if (ro->stats_keys[k].data == NULL) {
                return NGX_ERROR;
            }

            (void) ngx_sprintf(ro->stats_keys[k].data, "kserve:stats:%V:%V",
                               &rt->name, &v[k].name);
        }

        n++;
    }

    if (n == 0) {
        return NGX_OK;
    }

    zone = ngx_shared_memory_add(cf, &ngx_http_kserve_rollout_zone_name,
                                 ngx_max(NGX_HTTP_KSERVE_ROLLOUT_ZONE_SIZE,
                                         n * 2 * sizeof(
                                             ngx_http_kserve_rollout_slot_t)),
                                 &ngx_http_kserve_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_kserve_rollout_init_zone;
    zone->data = routing;

    for (i = 0; i < routing->routes.nelts; i++) {
        if (rtp[i]->rollout != NULL) {
            ((ngx_http_kserve_rollout_t *) rtp[i]->rollout)->zone = zone;
        }
    }

    return NGX_OK;
}


/* a slot per routed name, kept by a reload that keeps the zone's size */

static ngx_int_t
ngx_http_kserve_rollout_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_kserve_routing_t *routing = shm_zone->data;

    ngx_uint_t                        i;
    ngx_slab_pool_t                  *shpool;
    ngx_http_kserve_routed_t        **rt;
    ngx_http_kserve_rollout_t        *ro;
    ngx_http_kserve_rollout_slot_t  **head, *slot;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data != NULL || shm_zone->shm.exists) {
        head = shpool->data;

    } else {
        head = ngx_slab_calloc(shpool,
                               sizeof(ngx_http_kserve_rollout_slot_t *));
        if (head == NULL) {
            return NGX_ERROR;
        }

        shpool->data = head;
    }

    rt = routing->routes.elts;

    for (i = 0; i < routing->routes.nelts; i++) {
        ro = rt[i]->rollout;

        if (ro == NULL) {
            continue;
        }

        for (slot = *head; slot; slot = slot->next) {
            if (slot->len == rt[i]->name.len
                && ngx_strncmp(slot->key, rt[i]->name.data, slot->len) == 0)
            {
                break;
            }
        }

        if (slot == NULL) {
            slot = ngx_slab_calloc(shpool,
                                   sizeof(ngx_http_kserve_rollout_slot_t)
                                   + rt[i]->name.len);
            if (slot == NULL) {
                ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                              "kserve: shared zone \"%V\" is full",
                              &shm_zone->shm.name);
                return NGX_ERROR;
            }

            ngx_memcpy(slot->key, rt[i]->name.data, rt[i]->name.len);
            slot->len = rt[i]->name.len;
            slot->next = *head;
            *head = slot;
        }

        ro->shm = &slot->shm;
    }

    return NGX_OK;
}


/* ---- per nginx worker ---------------------------------------------------- */

ngx_int_t
ngx_http_kserve_rollout_init_process(ngx_cycle_t *cycle,
    ngx_http_kserve_routed_t *rt)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_kserve_rollout_t  *ro;

    ro = rt->rollout;

    if (ro == NULL || ro->shm == NULL) {
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) ro->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    /* another canary's (nginx.conf changed): the hash will tell */

    if (ro->shm->known) {
        ro->state = ro->shm->state;
        ro->known = 1;

        if (!ngx_http_kserve_rollout_ours(ro, &ro->state)) {
            ro->known = 0;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (ro->known) {
        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "kserve: rollout \"%V\" of \"%V\" goes on as the node "
                      "knew it: %s, step %uD, %uD%%", &rt->name,
                      &ro->canary_name,
                      ksv_rollout_state_name(ro->state.state),
                      ro->state.step + 1,
                      ksv_rollout_percent(&ro->conf, &ro->state));
    }

    return NGX_OK;
}


/*
 * The canary gets its step's share of 100 % (0 while nothing is known),
 * the others the rest, in the proportion of their own weights.
 */

void
ngx_http_kserve_rollout_weights(ngx_http_kserve_routed_t *rt, ngx_uint_t *w)
{
    uint64_t                    sum, rest;
    uint32_t                    pct;
    ngx_uint_t                  k, c;
    ngx_http_kserve_rollout_t  *ro;

    ro = rt->rollout;

    if (ro == NULL) {
        return;
    }

    c = ro->canary;
    pct = ro->known && ngx_http_kserve_rollout_ours(ro, &ro->state)
          ? ksv_rollout_percent(&ro->conf, &ro->state) : 0;

    sum = 0;

    for (k = 0; k < rt->nrouted; k++) {
        if (k != c) {
            sum += w[k];
        }
    }

    rest = (uint64_t) (100 - pct) * NGX_HTTP_KSERVE_ROLLOUT_SCALE;

    for (k = 0; k < rt->nrouted; k++) {
        if (k == c) {
            w[k] = (ngx_uint_t) pct * NGX_HTTP_KSERVE_ROLLOUT_SCALE;

        } else if (sum == 0) {
            /* the operator left the baseline nothing: share it evenly */
            w[k] = (ngx_uint_t) (rest / (rt->nrouted - 1));

        } else {
            w[k] = (ngx_uint_t) (rest * w[k] / sum);
        }
    }
}


/* ---- Redis: read, decide, write ----------------------------------------- */

void
ngx_http_kserve_rollout_poll(redisAsyncContext *ac,
    ngx_http_kserve_routed_t *rt)
{
    int                          argc;
    size_t                       argvlen[NGX_HTTP_KSERVE_ROLLOUT_MAX_ARGS];
    ngx_uint_t                   k;
    const char                  *argv[NGX_HTTP_KSERVE_ROLLOUT_MAX_ARGS];
    u_char                       nkeys[NGX_INT_T_LEN];
    ngx_http_kserve_rollout_t   *ro;

    ro = rt->rollout;

    if (ro == NULL || ro->polling || ro->writing) {
        return;
    }

    if (rt->nrouted + 4 > NGX_HTTP_KSERVE_ROLLOUT_MAX_ARGS) {
        return;     /* 60 variants and a rollout: not followed */
    }

    argc = 0;
    argv[argc] = "EVAL";
    argvlen[argc++] = 4;
    argv[argc] = ngx_http_kserve_rollout_read_lua;
    argvlen[argc++] = sizeof(ngx_http_kserve_rollout_read_lua) - 1;
    argv[argc] = (char *) nkeys;
    argvlen[argc++] = ngx_sprintf(nkeys, "%ui", rt->nrouted + 1) - nkeys;
    argv[argc] = (char *) ro->key.data;
    argvlen[argc++] = ro->key.len;

    for (k = 0; k < rt->nrouted; k++) {
        argv[argc] = (char *) ro->stats_keys[k].data;
        argvlen[argc++] = ro->stats_keys[k].len;
    }

    if (redisAsyncCommandArgv(ac, ngx_http_kserve_rollout_polled, rt, argc,
                              argv, argvlen)
        == REDIS_OK)
    {
        ro->polling = 1;
    }
}


static void
ngx_http_kserve_rollout_polled(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                *reply = r;
    ngx_http_kserve_routed_t  *rt = privdata;

    size_t                      i, n;
    ngx_log_t                  *log;
    ngx_uint_t                  k;
    ngx_msec_t                  now;
    ksv_str_t                   fv[64];
    redisReply                 *hash;
    ksv_rollout_t               seen, next;
    ksv_rollout_input_t         in;
    ksv_rollout_counts_t        c;
    ksv_rollout_action_e        a;
    ngx_http_kserve_rollout_t  *ro;

    ro = rt->rollout;
    ro->polling = 0;

    if (reply == NULL) {
        return;     /* disconnected: nothing decided, the share holds */
    }

    log = ngx_cycle->log;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3 + rt->nrouted
        || reply->element[2]->type != REDIS_REPLY_ARRAY)
    {
        if (ro->complaint != NGX_HTTP_KSERVE_ROLLOUT_EVAL_FAILED) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "kserve: rollout \"%V\": redis EVAL failed: %*s; "
                          "the share holds", &rt->name,
                          reply->type == REDIS_REPLY_ERROR ? reply->len : 0,
                          reply->type == REDIS_REPLY_ERROR ? reply->str : "");
            ro->complaint = NGX_HTTP_KSERVE_ROLLOUT_EVAL_FAILED;
        }

        return;
    }

    /* the hash */

    hash = reply->element[2];
    n = ngx_min(hash->elements, sizeof(fv) / sizeof(fv[0]));

    for (i = 0; i < n; i++) {
        fv[i] = ngx_http_kserve_rollout_str(hash->element[i]);
    }

    ksv_rollout_parse(&seen, fv, n);

    if (seen.state == KSV_ROLLOUT_INVALID) {
        if (ro->complaint != NGX_HTTP_KSERVE_ROLLOUT_BAD_HASH) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "kserve: rollout \"%V\": redis \"%V\" has a bad "
                          "\"%s\"; the share holds until \"command restart\"",
                          &rt->name, &ro->key, seen.invalid);
            ro->complaint = NGX_HTTP_KSERVE_ROLLOUT_BAD_HASH;
        }

    } else if (seen.state != KSV_ROLLOUT_NONE
               && !ngx_http_kserve_rollout_ours(ro, &seen))
    {
        if (ro->complaint != NGX_HTTP_KSERVE_ROLLOUT_OTHER_CANARY) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "kserve: rollout \"%V\": redis \"%V\" is the "
                          "rollout of \"%s\" (%s), not of \"%V\": left "
                          "alone while it runs, \"command restart\" takes "
                          "it over", &rt->name, &ro->key, seen.canary,
                          ksv_rollout_state_name(seen.state),
                          &ro->canary_name);
            ro->complaint = NGX_HTTP_KSERVE_ROLLOUT_OTHER_CANARY;
        }

    } else {
        ro->complaint = 0;
    }

    /* the statistics of every node, the canary's and the baseline's */

    ngx_memzero(&in, sizeof(ksv_rollout_input_t));

    for (k = 0; k < rt->nrouted; k++) {
        ngx_memzero(&c, sizeof(ksv_rollout_counts_t));
        ngx_http_kserve_rollout_counts(&c, reply->element[3 + k]);

        if (k == ro->canary) {
            in.canary_now = c;
            continue;
        }

        in.baseline_now.requests += c.requests;
        in.baseline_now.failures += c.failures;
        in.baseline_now.ejections += c.ejections;

        for (i = 0; i < KSV_ROLLOUT_NLE; i++) {
            in.baseline_now.le[i] += c.le[i];
        }
    }

    in.conf = &ro->conf;
    in.canary.data = (char *) ro->canary_name.data;
    in.canary.len = (uint32_t) ro->canary_name.len;
    in.seen = &seen;
    in.known = ro->known ? &ro->state : NULL;
    in.now_ms = ngx_http_kserve_rollout_reply_u64(reply->element[0]) * 1000
                + ngx_http_kserve_rollout_reply_u64(reply->element[1]) / 1000;

    /* how long this nginx worker has seen the canary not ready */

    now = ngx_current_msec;
    in.canary_ready = ngx_http_kserve_rollout_ready(rt);

    if (in.canary_ready == 0) {
        if (!ro->not_ready) {
            ro->not_ready = 1;
            ro->not_ready_since = now;
        }

        in.not_ready_ms = now - ro->not_ready_since;

    } else {
        ro->not_ready = 0;
    }

    /* follow what the hash says, then see whether it should move on */

    if (ro->complaint == 0 && seen.state != KSV_ROLLOUT_NONE) {
        ngx_http_kserve_rollout_follow(rt, log, &seen);
        ksv_rollout_window(&ro->canary_step, &in.canary_now,
                           &seen.canary_mark);
        ksv_rollout_window(&ro->baseline_step, &in.baseline_now,
                           &seen.baseline_mark);
    }

    a = ksv_rollout_decide(&in, &next);

    switch (a) {

    case KSV_ROLLOUT_KEEP:
        return;

    case KSV_ROLLOUT_HOLD:
        if (ro->held_epoch != seen.epoch) {
            ro->held_epoch = seen.epoch;
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "kserve: rollout \"%V\": %s", &rt->name,
                          next.reason);
        }

        return;

    default:
        ngx_http_kserve_rollout_write(ac, rt, log, a, &seen, &next);
    }
}


static void
ngx_http_kserve_rollout_write(redisAsyncContext *ac,
    ngx_http_kserve_routed_t *rt, ngx_log_t *log, ksv_rollout_action_e a,
    const ksv_rollout_t *seen, ksv_rollout_t *next)
{
    int                               argc;
    char                              buf[4096];
    size_t                            i, n;
    size_t                            argvlen[NGX_HTTP_KSERVE_ROLLOUT_MAX_ARGS];
    ksv_str_t                         fv[NGX_HTTP_KSERVE_ROLLOUT_MAX_ARGS - 8];
    const char                       *argv[NGX_HTTP_KSERVE_ROLLOUT_MAX_ARGS];
    u_char                            epoch[NGX_INT64_LEN];
    ngx_http_kserve_rollout_t        *ro;
    ngx_http_kserve_rollout_write_t  *wr;

    ro = rt->rollout;

    (void) ngx_snprintf((u_char *) next->node, sizeof(next->node) - 1,
                        "%V %P%Z", &ngx_cycle->hostname, ngx_pid);
    next->node[sizeof(next->node) - 1] = '\0';

    n = 0;

    if (a != KSV_ROLLOUT_DROP_COMMAND) {
        n = ksv_rollout_encode(&ro->conf, next, buf, sizeof(buf), fv,
                               sizeof(fv) / sizeof(fv[0]));
        if (n == 0) {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "kserve: rollout \"%V\": state too large",
                          &rt->name);
            return;
        }
    }

    wr = ngx_alloc(sizeof(ngx_http_kserve_rollout_write_t), log);
    if (wr == NULL) {
        return;
    }

    wr->rt = rt;
    wr->action = a;
    wr->next = *next;

    /* the compare-and-set: the epoch and the command that were read */

    argc = 0;
    argv[argc] = "EVAL";
    argvlen[argc++] = 4;
    argv[argc] = ngx_http_kserve_rollout_write_lua;
    argvlen[argc++] = sizeof(ngx_http_kserve_rollout_write_lua) - 1;
    argv[argc] = "1";
    argvlen[argc++] = 1;
    argv[argc] = (char *) ro->key.data;
    argvlen[argc++] = ro->key.len;
    argv[argc] = (char *) epoch;
    argvlen[argc++] = ngx_sprintf(epoch, "%uL", seen->epoch) - epoch;
    argv[argc] = seen->command_raw;
    argvlen[argc++] = ngx_strlen(seen->command_raw);
    argv[argc] = a == KSV_ROLLOUT_DROP_COMMAND ? "drop" : "set";
    argvlen[argc++] = a == KSV_ROLLOUT_DROP_COMMAND ? 4 : 3;

    for (i = 0; i < n; i++) {
        argv[argc] = fv[i].data;
        argvlen[argc++] = fv[i].len;
    }

    if (redisAsyncCommandArgv(ac, ngx_http_kserve_rollout_written, wr, argc,
                              argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(wr);
        return;
    }

    ro->writing = 1;
}


static void
ngx_http_kserve_rollout_written(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                       *reply = r;
    ngx_http_kserve_rollout_write_t  *wr = privdata;

    ngx_log_t                  *log;
    ngx_http_kserve_routed_t   *rt;
    ngx_http_kserve_rollout_t  *ro;

    (void) ac;

    rt = wr->rt;
    ro = rt->rollout;
    ro->writing = 0;
    log = ngx_cycle->log;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer != 1)
    {
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "kserve: rollout \"%V\": redis write failed: %*s",
                          &rt->name, reply->len, reply->str);
        }

        /* another nginx worker or node wrote first: the next poll shows */

        ngx_free(wr);
        return;
    }

    switch (wr->action) {

    case KSV_ROLLOUT_DROP_COMMAND:
        ngx_log_error(NGX_LOG_WARN, log, 0, "kserve: rollout \"%V\": %s",
                      &rt->name, wr->next.reason);
        ngx_free(wr);
        return;

    case KSV_ROLLOUT_ADVANCE:
        (void) ngx_atomic_fetch_add(&ro->shm->steps, 1);
        break;

    case KSV_ROLLOUT_FINISH:
        (void) ngx_atomic_fetch_add(&ro->shm->completed, 1);
        break;

    case KSV_ROLLOUT_ROLLBACK:
    case KSV_ROLLOUT_ABORT:
        (void) ngx_atomic_fetch_add(&ro->shm->stops[wr->next.cause], 1);
        break;

    default:
        break;
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "kserve: rollout \"%V\" of \"%V\": %s (%s, epoch %uL)",
                  &rt->name, &ro->canary_name, wr->next.reason,
                  ksv_rollout_action_name(wr->action), wr->next.epoch);

    ngx_http_kserve_rollout_follow(rt, log, &wr->next);

    ngx_free(wr);
}


/* the state this nginx worker and its node go by, and the weights */

static void
ngx_http_kserve_rollout_follow(ngx_http_kserve_routed_t *rt, ngx_log_t *log,
    const ksv_rollout_t *st)
{
    uint32_t                    before;
    ngx_slab_pool_t            *shpool;
    ngx_http_kserve_rollout_t  *ro;

    ro = rt->rollout;

    if (ro->known && ro->state.epoch == st->epoch
        && ro->state.state == st->state && ro->state.step == st->step)
    {
        return;
    }

    before = ro->known ? ksv_rollout_percent(&ro->conf, &ro->state) : 0;

    ro->state = *st;
    ro->state.command = KSV_ROLLOUT_CMD_NONE;
    ro->state.command_raw[0] = '\0';
    ro->known = 1;

    shpool = (ngx_slab_pool_t *) ro->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    ro->shm->state = ro->state;
    ro->shm->known = 1;
    ngx_shmtx_unlock(&shpool->mutex);

    if (before != ksv_rollout_percent(&ro->conf, &ro->state)) {
        ngx_http_kserve_route_effective(rt, log, "rollout");
    }
}


/* 1: ready in some worker's index, 0: in none, -1: no index known yet */

static int
ngx_http_kserve_rollout_ready(ngx_http_kserve_routed_t *rt)
{
    int                           known;
    ngx_uint_t                    i;
    ngx_http_kserve_variant_t    *v;
    ngx_http_kserve_backend_t   **b;
    ngx_http_kserve_rollout_t    *ro;
    ngx_http_kserve_main_conf_t  *kmcf;

    ro = rt->rollout;
    v = (ngx_http_kserve_variant_t *) rt->variants.elts + ro->canary;

    kmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_kserve_module);
    b = kmcf->backends.elts;
    known = 0;

    for (i = 0; i < kmcf->backends.nelts; i++) {
        if (ngx_http_kserve_index_state(b[i]) == NGX_HTTP_KSERVE_INDEX_NONE) {
            continue;
        }

        known = 1;

        if (ngx_http_kserve_variant_ready(b[i], v)) {
            return 1;
        }
    }

    return known ? 0 : -1;
}


/* a state of this rollout's canary */

static ngx_uint_t
ngx_http_kserve_rollout_ours(ngx_http_kserve_rollout_t *ro,
    const ksv_rollout_t *st)
{
    return ngx_strlen(st->canary) == ro->canary_name.len
           && ngx_strncmp(st->canary, ro->canary_name.data,
                          ro->canary_name.len) == 0;
}


static void
ngx_http_kserve_rollout_counts(ksv_rollout_counts_t *c, redisReply *hash)
{
    size_t  i;

    if (hash->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (i = 0; i + 1 < hash->elements; i += 2) {
        ksv_rollout_count_field(c,
                                ngx_http_kserve_rollout_str(hash->element[i]),
                                ngx_http_kserve_rollout_str(
                                    hash->element[i + 1]));
    }
}


static ksv_str_t
ngx_http_kserve_rollout_str(redisReply *e)
{
    ksv_str_t  s;

    s.data = "";
    s.len = 0;

    if ((e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
        && e->str != NULL)
    {
        s.data = e->str;
        s.len = (uint32_t) e->len;
    }

    return s;
}


static uint64_t
ngx_http_kserve_rollout_reply_u64(redisReply *e)
{
    ngx_int_t  n;

    if (e->type == REDIS_REPLY_INTEGER) {
        return e->integer > 0 ? (uint64_t) e->integer : 0;
    }

    if (e->type != REDIS_REPLY_STRING || e->str == NULL) {
        return 0;
    }

    n = ngx_atoi((u_char *) e->str, e->len);

    return n > 0 ? (uint64_t) n : 0;
}


/* ---- /metrics and /v2/routes --------------------------------------------- */

void
ngx_http_kserve_rollout_metrics(ksv_writer_t *w,
    ngx_http_kserve_routing_t *routing)
{
    ngx_uint_t                   i, f, c;
    const char                  *name;
    ngx_atomic_uint_t            n;
    ngx_http_kserve_routed_t   **rt;
    ngx_http_kserve_rollout_t   *ro;

    static struct {
        const char  *name;
        const char  *type;
        const char  *help;
    } families[] = {
        { "ngx_kserve_rollout_percent", "gauge",
          "The canary's share of the routed name's traffic, in percent, as "
          "this node last knew the rollout" },
        { "ngx_kserve_rollout_steps_total", "counter",
          "Steps of the rollout this node advanced" },
        { "ngx_kserve_rollout_completed_total", "counter",
          "Rollouts this node completed" },
        { "ngx_kserve_rollout_rollbacks_total", "counter",
          "Rollouts this node rolled back or aborted, by cause" }
    };

    rt = routing->routes.elts;

    for (i = 0; i < routing->routes.nelts; i++) {
        if (rt[i]->rollout != NULL) {
            break;
        }
    }

    if (i == routing->routes.nelts) {
        return;
    }

    for (f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
        ksv_prom_family(w, families[f].name, families[f].type,
                        families[f].help);

        for (i = 0; i < routing->routes.nelts; i++) {
            ro = rt[i]->rollout;

            if (ro == NULL || ro->shm == NULL) {
                continue;
            }

            for (c = 1; c < (f == 3 ? KSV_ROLLOUT_NCAUSES : 2); c++) {
                ksv_put_bytes(w, families[f].name,
                              ngx_strlen(families[f].name));
                ksv_json_lit(w, "{route=");
                ksv_prom_label_value(w, rt[i]->name.data, rt[i]->name.len);
                ksv_json_lit(w, ",canary=");
                ksv_prom_label_value(w, ro->canary_name.data,
                                     ro->canary_name.len);

                switch (f) {

                case 0:
                    name = ro->shm->known
                           ? ksv_rollout_state_name(ro->shm->state.state)
                           : "none";
                    ksv_json_lit(w, ",state=");
                    ksv_prom_label_value(w, name, ngx_strlen(name));
                    n = ro->shm->known
                        ? ksv_rollout_percent(&ro->conf, &ro->shm->state)
                        : 0;
                    break;

                case 1:
                    n = ro->shm->steps;
                    break;

                case 2:
                    n = ro->shm->completed;
                    break;

                default:
                    name = ksv_rollout_cause_name(c);
                    ksv_json_lit(w, ",cause=");
                    ksv_prom_label_value(w, name, ngx_strlen(name));
                    n = ro->shm->stops[c];
                }

                ksv_json_lit(w, "} ");
                ksv_json_u64(w, n);
                ksv_put_u8(w, '\n');
            }
        }
    }
}


void
ngx_http_kserve_rollout_json(ksv_writer_t *w, ngx_http_kserve_routed_t *rt)
{
    ksv_str_t                   canary;
    ksv_rollout_t               none;
    ngx_http_kserve_rollout_t  *ro;

    ro = rt->rollout;

    if (ro == NULL) {
        ksv_json_lit(w, "null");
        return;
    }

    canary.data = (char *) ro->canary_name.data;
    canary.len = (uint32_t) ro->canary_name.len;

    if (!ro->known) {
        ngx_memzero(&none, sizeof(ksv_rollout_t));
        ksv_rollout_json(w, &ro->conf, canary, &none, NULL, NULL);
        return;
    }

    ksv_rollout_json(w, &ro->conf, canary, &ro->state, &ro->canary_step,
                     &ro->baseline_step);
}
