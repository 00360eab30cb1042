
/*
 * Copyright (C) ngx_kserve authors
 *
 * strategy adaptive: weights that follow the variants' measured quality.
 * The derivation itself is nginx-free (ksv_adaptive.c); this file holds
 * its configuration, the deriving nginx worker's tick, the shared zone's
 * part of it, the exchange of windows between nginx nodes through Redis,
 * and what the route status and /metrics show.  See
 * ngx_http_kserve_adaptive.h for who does what.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_adaptive.h"
#include "ngx_http_kserve_redis.h"
#include "ksv_json_write.h"
#include "ksv_prometheus.h"


#define NGX_HTTP_KSERVE_ADAPTIVE_DRAWS  1000


typedef struct {
    ksv_adapt_conf_t             adapt;
    ngx_msec_t                   interval;
    ngx_msec_t                   window;
    ngx_msec_t                   slo;
    ngx_str_t                    redis_key;      /* kserve:adaptive:NAME */
} ngx_http_kserve_adaptive_conf_t;


/* per nginx worker; only the deriving one fills more than the header */
typedef struct {
    ksv_adapt_ring_t            *rings;          /* nrouted */
    ksv_adapt_variant_t         *vars;           /* nrouted */
    ksv_adapt_counts_t          *local;          /* nrouted: this node's */
    ksv_adapt_counts_t          *remote;         /* nrouted: other nodes */
    ngx_msec_t                   remote_at;      /* when read; 0: never */
    ngx_str_t                    node;           /* hostname/master pid */
    uint64_t                     rng;
    unsigned                     deriver:1;
    unsigned                     started:1;
    unsigned                     reading:1;      /* HGETALL in flight */
} ngx_http_kserve_adaptive_state_t;


static char *ngx_http_kserve_adaptive_time(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_msec_t *t);
static char *ngx_http_kserve_adaptive_fraction(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t pct,
    double *x);
static void ngx_http_kserve_adaptive_derive(ngx_http_kserve_routed_t *rt,
    ngx_log_t *log);
static void ngx_http_kserve_adaptive_publish(ngx_http_kserve_routed_t *rt,
    ngx_log_t *log);
static uint64_t ngx_http_kserve_adaptive_wall_ms(void);


/* ---- configuration ------------------------------------------------------ */

char *
ngx_http_kserve_adaptive_conf(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *args, ngx_uint_t n)
{
    char                             *rv;
    u_char                           *p;
    ngx_str_t                         s;
    ngx_uint_t                        i;
    ngx_http_kserve_adaptive_conf_t  *ac;

    ac = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_adaptive_conf_t));
    if (ac == NULL) {
        return NGX_CONF_ERROR;
    }

    ac->interval = 5000;
    ac->window = 30000;
    ac->slo = 200;
    ac->adapt.min_share = 0.05;
    ac->adapt.rate = 0.1;
    ac->adapt.tolerance = 0.02;
    ac->adapt.draws = NGX_HTTP_KSERVE_ADAPTIVE_DRAWS;

#define ngx_http_kserve_param(name)                                          \
    (args[i].len > sizeof(name) - 1                                          \
     && ngx_strncmp(args[i].data, name, sizeof(name) - 1) == 0               \
     && (s.data = args[i].data + sizeof(name) - 1,                           \
         s.len = args[i].len - (sizeof(name) - 1), 1))

    for (i = 0; i < n; i++) {

        if (ngx_http_kserve_param("interval=")) {
            rv = ngx_http_kserve_adaptive_time(cf, rt, &s, &ac->interval);

        } else if (ngx_http_kserve_param("window=")) {
            rv = ngx_http_kserve_adaptive_time(cf, rt, &s, &ac->window);

        } else if (ngx_http_kserve_param("slo=")) {
            rv = ngx_http_kserve_adaptive_time(cf, rt, &s, &ac->slo);

        } else if (ngx_http_kserve_param("min_share=")) {
            rv = ngx_http_kserve_adaptive_fraction(cf, rt, &s, 1,
                                                   &ac->adapt.min_share);
            if (rv == NGX_CONF_OK && ac->adapt.min_share > 0.5) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "min_share \"%V\" of kserve_route \"%V\" "
                                   "is more than 50%%", &s, &rt->name);
                return NGX_CONF_ERROR;
            }

        } else if (ngx_http_kserve_param("rate=")) {
            rv = ngx_http_kserve_adaptive_fraction(cf, rt, &s, 0,
                                                   &ac->adapt.rate);
            if (rv == NGX_CONF_OK && ac->adapt.rate == 0.0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "rate of kserve_route \"%V\" must be "
                                   "more than 0", &rt->name);
                return NGX_CONF_ERROR;
            }

        } else if (ngx_http_kserve_param("tolerance=")) {
            rv = ngx_http_kserve_adaptive_fraction(cf, rt, &s, 1,
                                                   &ac->adapt.tolerance);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of \"strategy "
                               "adaptive\" in kserve_route \"%V\": "
                               "interval=, window=, slo=, min_share=, rate= "
                               "or tolerance= expected", &args[i], &rt->name);
            return NGX_CONF_ERROR;
        }

        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

#undef ngx_http_kserve_param

    if (ac->interval < 100) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "interval of kserve_route \"%V\" is less than "
                           "100ms", &rt->name);
        return NGX_CONF_ERROR;
    }

    if (ac->window < ac->interval
        || ac->window / ac->interval > KSV_ADAPT_MAX_SLOTS)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "window of kserve_route \"%V\" must be from 1 to "
                           "%d intervals", &rt->name, KSV_ADAPT_MAX_SLOTS);
        return NGX_CONF_ERROR;
    }

    ac->redis_key.len = sizeof("kserve:adaptive:") - 1 + rt->name.len;
    ac->redis_key.data = ngx_pnalloc(cf->pool, ac->redis_key.len);
    if (ac->redis_key.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(ac->redis_key.data, "kserve:adaptive:",
                   sizeof("kserve:adaptive:") - 1);
    ngx_memcpy(p, rt->name.data, rt->name.len);

    rt->strategy_conf = ac;
    rt->interval = ac->interval;

    return NGX_CONF_OK;
}


static char *
ngx_http_kserve_adaptive_time(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_msec_t *t)
{
    *t = ngx_parse_time(value, 0);

    if (*t == (ngx_msec_t) NGX_ERROR || *t == 0 || *t > 3600000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time \"%V\" in \"strategy adaptive\" of "
                           "kserve_route \"%V\": from 1ms to 1h expected",
                           value, &rt->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* "5%" or "0.5%" (pct), else "0.1": a fraction from 0 to 1 */

static char *
ngx_http_kserve_adaptive_fraction(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t pct,
    double *x)
{
    ngx_int_t  v;

    v = NGX_ERROR;

    if (pct) {
        if (value->len > 1 && value->data[value->len - 1] == '%') {
            v = ngx_atofp(value->data, value->len - 1, 2);
        }

        if (v >= 0 && v <= 10000) {
            *x = (double) v / 10000.0;
            return NGX_CONF_OK;
        }

    } else {
        v = ngx_atofp(value->data, value->len, 3);

        if (v >= 0 && v <= 1000) {
            *x = (double) v / 1000.0;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"strategy adaptive\" of "
                       "kserve_route \"%V\": %s expected", value, &rt->name,
                       pct ? "a percentage from 0% to 100%, e.g. \"5%\""
                           : "a number from 0 to 1, e.g. \"0.1\"");
    return NGX_CONF_ERROR;
}


/* ---- per nginx worker ---------------------------------------------------- */

ngx_int_t
ngx_http_kserve_adaptive_init_process(ngx_cycle_t *cycle,
    ngx_http_kserve_routed_t *rt)
{
    u_char                            *p;
    ngx_uint_t                         k, n;
    ngx_http_kserve_adaptive_conf_t   *ac;
    ngx_http_kserve_adaptive_state_t  *st;

    ac = rt->strategy_conf;
    n = rt->nrouted;

    st = ngx_pcalloc(cycle->pool, sizeof(ngx_http_kserve_adaptive_state_t));
    if (st == NULL) {
        return NGX_ERROR;
    }

    rt->strategy_state = st;

    /* one deriving nginx worker per node: the others read its weights */

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    st->deriver = 1;
    st->rng = ((uint64_t) ngx_pid * 0x9e3779b97f4a7c15ULL)
              ^ (uint64_t) ngx_time();

    st->rings = ngx_pcalloc(cycle->pool, n * sizeof(ksv_adapt_ring_t));
    st->vars = ngx_pcalloc(cycle->pool, n * sizeof(ksv_adapt_variant_t));
    st->local = ngx_pcalloc(cycle->pool, n * sizeof(ksv_adapt_counts_t));
    st->remote = ngx_pcalloc(cycle->pool, n * sizeof(ksv_adapt_counts_t));

    st->node.data = ngx_pnalloc(cycle->pool,
                                cycle->hostname.len + 1 + NGX_INT64_LEN);

    if (st->rings == NULL || st->vars == NULL || st->local == NULL
        || st->remote == NULL || st->node.data == NULL)
    {
        return NGX_ERROR;
    }

    for (k = 0; k < n; k++) {
        ksv_adapt_ring_init(&st->rings[k],
                            (uint32_t) (ac->window / ac->interval));
    }

    /* other nodes tell this one apart by host and master process */

    p = ngx_sprintf(st->node.data, "%V/%P", &cycle->hostname, getppid());
    st->node.len = p - st->node.data;

    return NGX_OK;
}


ngx_int_t
ngx_http_kserve_adaptive_choose(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n)
{
    return ksv_route_swrr(peers, n);
}


void
ngx_http_kserve_adaptive_account(ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_variant_t *v, ngx_http_kserve_outcome_e outcome,
    uint64_t us)
{
    ngx_http_kserve_adaptive_conf_t  *ac;

    if (outcome != NGX_HTTP_KSERVE_SUCCESS
        || rt->strategy != NGX_HTTP_KSERVE_ADAPTIVE)
    {
        return;
    }

    ac = rt->strategy_conf;

    if (us > (uint64_t) ac->slo * 1000) {
        (void) ngx_atomic_fetch_add(&v->shm->slow, 1);
        (void) ngx_atomic_fetch_add(&v->shm->credit,
                                    ksv_adapt_credit(ac->slo * 1000, us));
        v->delta.slow++;
    }
}


/* ---- the tick ------------------------------------------------------------ */

void
ngx_http_kserve_adaptive_tick(ngx_http_kserve_routed_t *rt, ngx_log_t *log)
{
    ngx_http_kserve_adaptive_state_t  *st;

    st = rt->strategy_state;

    if (st == NULL || !st->deriver) {
        return;     /* the weights come from the zone: see weights() */
    }

    ngx_http_kserve_adaptive_derive(rt, log);
    ngx_http_kserve_adaptive_publish(rt, log);
}


static void
ngx_http_kserve_adaptive_derive(ngx_http_kserve_routed_t *rt, ngx_log_t *log)
{
    u_char                            *p, *last, buf[512];
    double                             moved;
    uint64_t                           slow;
    ngx_uint_t                         k, n, remote;
    ngx_msec_t                         now;
    ksv_adapt_counts_t                 cum;
    ksv_adapt_shared_t                *sh;
    ksv_adapt_variant_t               *av;
    ngx_http_kserve_variant_t         *v;
    ngx_http_kserve_variant_shm_t     *shm;
    ngx_http_kserve_adaptive_conf_t   *ac;
    ngx_http_kserve_adaptive_state_t  *st;

    ac = rt->strategy_conf;
    st = rt->strategy_state;
    v = rt->variants.elts;
    av = st->vars;
    n = rt->nrouted;
    now = ngx_current_msec;

    /* the others' windows count while they are at most 3 intervals old */

    remote = st->remote_at != 0
             && now - st->remote_at <= 3 * ac->interval;

    for (k = 0; k < n; k++) {
        shm = v[k].shm;

        /* slow first: success, read later, is never less */

        slow = shm->slow;
        cum.slow = slow;
        cum.credit = shm->credit;
        cum.good = shm->success - slow;
        cum.failure = shm->failure;
        cum.latency_us = shm->latency_us;

        ksv_adapt_ring_push(&st->rings[k], &cum, &st->local[k]);
        av[k].window = st->local[k];

        if (remote) {
            ksv_adapt_add(&av[k].window, &st->remote[k]);
        }

        av[k].prior = (uint32_t) v[k].base_weight;
        av[k].usable = ngx_http_kserve_variant_in_service(&v[k], now);
    }

    /*
     * A new ring (this worker just started) knows nothing yet: the first
     * derivation waits for one interval of answers, instead of pulling
     * the shares toward the prior for want of data.
     */

    if (st->rings[0].filled < 2) {
        return;
    }

    if (!st->started) {
        st->started = 1;

        /* a new deriving worker (reload, respawn) goes on from the zone */

        for (k = 0; k < n; k++) {
            if (v[k].shm->adaptive.derived_at == 0) {
                break;
            }

            av[k].share = (double) v[k].shm->adaptive.share_ppm / 1e6;
        }

        if (k < n) {
            ksv_adapt_start(&ac->adapt, av, n);
        }
    }

    if (ksv_adapt_derive(&ac->adapt, av, n, &st->rng) == 0) {
        return;     /* nothing eligible: the weights stay */
    }

    p = buf;
    last = buf + sizeof(buf);
    moved = 0.0;

    for (k = 0; k < n; k++) {
        sh = &v[k].shm->adaptive;

        moved += ngx_abs((double) sh->share_ppm / 1e6 - av[k].share);

        sh->weight = (av[k].usable && av[k].prior)
                     ? ksv_adapt_weight(av[k].share) : 0;
        sh->share_ppm = (uint64_t) (av[k].share * 1e6 + 0.5);
        sh->target_ppm = (uint64_t) (av[k].target * 1e6 + 0.5);
        sh->window = av[k].window;
        sh->derived_at = now ? now : 1;

        p = ngx_slprintf(p, last, " %V=%.1f%% (%uL/%uL/%uL)", &v[k].name,
                         av[k].share * 100, av[k].window.good,
                         av[k].window.slow, av[k].window.failure);
    }

    /* the shares always move a little: say so when it is worth reading */

    if (moved >= 0.01) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "kserve: route \"%V\" adaptive shares%*s "
                      "(good/slow/failed in the window%s)", &rt->name,
                      p - buf, buf, remote ? ", every node" : "");
    }
}


/*
 * The weights in effect, in every nginx worker: the deriving worker's,
 * once it has derived for every variant (until then the operator's);
 * a variant the operator weighs 0 gets 0 at once.
 */

void
ngx_http_kserve_adaptive_weights(ngx_http_kserve_routed_t *rt, ngx_uint_t *w)
{
    ngx_uint_t                  k, sum;
    ngx_http_kserve_variant_t  *v;

    v = rt->variants.elts;

    for (k = 0; k < rt->nrouted; k++) {
        if (v[k].shm->adaptive.derived_at == 0) {
            return;
        }
    }

    sum = 0;

    for (k = 0; k < rt->nrouted; k++) {
        if (w[k] > 0) {
            sum += (ngx_uint_t) v[k].shm->adaptive.weight;
        }
    }

    if (sum == 0) {
        return;     /* learnt weights on drained variants only: keep w */
    }

    for (k = 0; k < rt->nrouted; k++) {
        w[k] = w[k] > 0 ? (ngx_uint_t) v[k].shm->adaptive.weight : 0;
    }
}


/* ---- other nginx nodes, through Redis ----------------------------------- */

static void
ngx_http_kserve_adaptive_publish(ngx_http_kserve_routed_t *rt, ngx_log_t *log)
{
    u_char                            *buf;
    size_t                             len, size;
    ngx_uint_t                         k, n;
    ksv_adapt_named_t                 *named;
    ngx_http_kserve_variant_t         *v;
    ngx_http_kserve_routing_t         *routing;
    ngx_http_kserve_main_conf_t       *kmcf;
    ngx_http_kserve_adaptive_conf_t   *ac;
    ngx_http_kserve_adaptive_state_t  *st;

    kmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_kserve_module);
    routing = kmcf->routing;

    if (routing->redis == NULL) {
        return;
    }

    ac = rt->strategy_conf;
    st = rt->strategy_state;
    v = rt->variants.elts;
    n = rt->nrouted;

    /* this node's own window only: the others add theirs */

    size = 32;

    for (k = 0; k < n; k++) {
        size += v[k].name.len + 5 * (NGX_INT64_LEN + 1) + 1;
    }

    buf = ngx_alloc(size, log);
    named = ngx_alloc(n * sizeof(ksv_adapt_named_t), log);

    if (buf == NULL || named == NULL) {
        goto done;
    }

    for (k = 0; k < n; k++) {
        named[k].name = (const char *) v[k].name.data;
        named[k].len = v[k].name.len;
        named[k].counts = st->local[k];
    }

    len = ksv_adapt_format((char *) buf, size,
                           ngx_http_kserve_adaptive_wall_ms(), named, n);

    if (len == 0) {
        goto done;      /* a variant name with a space: not published */
    }

    if (ngx_http_kserve_redis_adaptive(routing->redis, rt, &ac->redis_key,
                                       &st->node, buf, len,
                                       ngx_max(10 * ac->interval, 10000),
                                       !st->reading)
        == NGX_OK && !st->reading)
    {
        st->reading = 1;
    }

done:

    if (buf != NULL) {
        ngx_free(buf);
    }

    if (named != NULL) {
        ngx_free(named);
    }
}


/*
 * The HGETALL of kserve:adaptive:NAME: field = node, value = its window
 * (ksv_adapt_format).  This node's own field is skipped, so are values
 * that do not parse (logged) and windows older than 3 intervals by the
 * wall clock (a node that stopped; nodes' clocks are taken to agree
 * within that).  ok == 0: no reply (disconnected) or not a hash.
 */

void
ngx_http_kserve_adaptive_remote(ngx_http_kserve_routed_t *rt, ngx_log_t *log,
    ngx_str_t *fields, ngx_uint_t n, ngx_uint_t ok)
{
    int                                nv, j;
    uint64_t                           ts, now, fresh;
    ngx_int_t                          k;
    ngx_str_t                          name;
    ngx_uint_t                         i;
    ksv_adapt_named_t                  named[KSV_ADAPT_MAX_VARIANTS];
    ngx_http_kserve_adaptive_conf_t   *ac;
    ngx_http_kserve_adaptive_state_t  *st;

    ac = rt->strategy_conf;
    st = rt->strategy_state;

    st->reading = 0;

    if (!ok || !st->deriver) {
        return;
    }

    ngx_memzero(st->remote, rt->nrouted * sizeof(ksv_adapt_counts_t));

    now = ngx_http_kserve_adaptive_wall_ms();
    fresh = 3 * ac->interval;

    for (i = 0; i + 1 < n; i += 2) {
        if (fields[i].len == st->node.len
            && ngx_strncmp(fields[i].data, st->node.data, st->node.len) == 0)
        {
            continue;
        }

        nv = ksv_adapt_parse((const char *) fields[i + 1].data,
                             fields[i + 1].len, &ts, named,
                             KSV_ADAPT_MAX_VARIANTS);

        if (nv < 0) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "kserve: redis \"%V\": the window of \"%V\" does "
                          "not parse, ignored", &ac->redis_key, &fields[i]);
            continue;
        }

        if (ts + fresh < now || ts > now + fresh) {
            continue;
        }

        for (j = 0; j < nv; j++) {
            name.data = (u_char *) named[j].name;
            name.len = named[j].len;

            k = ngx_http_kserve_find_variant(rt, &name, 0);

            if (k >= 0) {
                ksv_adapt_add(&st->remote[k], &named[j].counts);
            }
        }
    }

    st->remote_at = ngx_current_msec ? ngx_current_msec : 1;
}


static uint64_t
ngx_http_kserve_adaptive_wall_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/* ---- what the route status and /metrics show ---------------------------- */

void
ngx_http_kserve_adaptive_status(ngx_http_kserve_routed_t *rt, ksv_writer_t *w)
{
    uint32_t                         *weights;
    uint64_t                          at;
    ksv_str_t                        *names;
    ngx_uint_t                        k, n;
    ksv_adapt_timing_t                t;
    ksv_adapt_shared_t               *sh;
    ksv_adapt_variant_t              *av;
    ngx_http_kserve_variant_t        *v;
    ngx_http_kserve_adaptive_conf_t  *ac;

    ac = rt->strategy_conf;
    v = rt->variants.elts;
    n = rt->nrouted;

    names = ngx_alloc(n * (sizeof(ksv_str_t) + sizeof(uint32_t)
                           + sizeof(ksv_adapt_variant_t)), ngx_cycle->log);
    if (names == NULL) {
        return;
    }

    av = (ksv_adapt_variant_t *) (names + n);
    weights = (uint32_t *) (av + n);
    at = 0;

    for (k = 0; k < n; k++) {
        sh = &v[k].shm->adaptive;

        names[k].data = (const char *) v[k].name.data;
        names[k].len = (uint32_t) v[k].name.len;

        ngx_memzero(&av[k], sizeof(ksv_adapt_variant_t));
        av[k].window = sh->window;
        av[k].share = (double) sh->share_ppm / 1e6;
        av[k].target = (double) sh->target_ppm / 1e6;
        weights[k] = (uint32_t) sh->weight;

        if (sh->derived_at > at) {
            at = sh->derived_at;
        }
    }

    t.interval_ms = ac->interval;
    t.window_ms = ac->window;
    t.slo_ms = ac->slo;
    t.derived_ms_ago = at ? (int64_t) (ngx_msec_int_t) (ngx_current_msec - at)
                          : -1;

    if (t.derived_ms_ago < -1) {
        t.derived_ms_ago = 0;
    }

    ksv_adapt_json(w, &ac->adapt, &t, names, av, weights, n);

    ngx_free(names);
}


void
ngx_http_kserve_adaptive_metrics(ksv_writer_t *w,
    ngx_http_kserve_routing_t *routing)
{
    u_char                      buf[32], *p;
    ngx_uint_t                  i, k, any, f;
    ngx_http_kserve_routed_t  **rt;
    ngx_http_kserve_variant_t  *v;

    rt = routing->routes.elts;
    any = 0;

    for (i = 0; i < routing->routes.nelts; i++) {
        any |= (rt[i]->strategy == NGX_HTTP_KSERVE_ADAPTIVE);
    }

    if (!any) {
        return;
    }

    for (f = 0; f < 2; f++) {
        if (f == 0) {
            ksv_prom_family(w, "ngx_kserve_route_adaptive_share", "gauge",
                            "The share of the routed name's traffic "
                            "strategy adaptive gives the variant now");
        } else {
            ksv_prom_family(w, "ngx_kserve_route_over_slo_total", "counter",
                            "Successful answers of the variant later than "
                            "the adaptive strategy's slo");
        }

        for (i = 0; i < routing->routes.nelts; i++) {
            if (rt[i]->strategy != NGX_HTTP_KSERVE_ADAPTIVE) {
                continue;
            }

            v = rt[i]->variants.elts;

            for (k = 0; k < rt[i]->nrouted; k++) {
                if (f == 0 && v[k].shm->adaptive.derived_at == 0) {
                    continue;       /* no share derived yet: none shown */
                }

                ksv_put_bytes(w, f ? "ngx_kserve_route_over_slo_total"
                                   : "ngx_kserve_route_adaptive_share",
                              f ? sizeof("ngx_kserve_route_over_slo_total")
                                  - 1
                                : sizeof("ngx_kserve_route_adaptive_share")
                                  - 1);
                ksv_json_lit(w, "{route=");
                ksv_prom_label_value(w, rt[i]->name.data, rt[i]->name.len);
                ksv_json_lit(w, ",variant=");
                ksv_prom_label_value(w, v[k].name.data, v[k].name.len);
                ksv_json_lit(w, "} ");

                if (f) {
                    ksv_json_u64(w, v[k].shm->slow);

                } else {
                    p = ngx_sprintf(buf, "%uL.%06uL",
                                    v[k].shm->adaptive.share_ppm / 1000000,
                                    v[k].shm->adaptive.share_ppm % 1000000);
                    ksv_put_bytes(w, buf, p - buf);
                }

                ksv_put_u8(w, '\n');
            }
        }
    }
}
