
/*
 * Copyright (C) ngx_kserve authors
 *
 * The weights in effect of a routed name, per nginx worker.  They are
 * derived in one place, ngx_http_kserve_route_effective(), from the
 * operator's weights (nginx.conf, or Redis's kserve:route:NAME when it
 * has the hash) through the hooks that may move them: a rollout's share
 * of its canary, then the strategy's own weights.  A routed name with an
 * interval (set by its strategy or its rollout) has a tick: a timer in
 * each nginx worker that lets the strategy and the rollout look at the
 * counters and derives the weights again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"
#include "ngx_http_kserve_rollout.h"


static void ngx_http_kserve_route_tick(ngx_event_t *ev);


/*
 * A HGETALL of kserve:route:NAME: fields name variants as written in the
 * block (model or model:version), values are weights.  A variant without
 * a field takes its nginx.conf weight; an unknown field or a bad value is
 * ignored (the variant keeps the weight it had), logged once per change
 * of the hash; a hash that would leave no traffic anywhere is ignored.
 */

void
ngx_http_kserve_route_weights(ngx_http_kserve_routed_t *rt, ngx_log_t *log,
    ngx_str_t *fields, ngx_uint_t n)
{
    int64_t                     w;
    ngx_int_t                   i;
    ngx_uint_t                  k, sum, *weights, stack[32];
    ngx_http_kserve_variant_t  *v;

    if (n == 0 && !rt->redis_weights) {
        return;     /* no hash, and none before: nginx.conf's still */
    }

    v = rt->variants.elts;

    weights = stack;

    /* weights[nrouted + k]: the Redis field of variant k, or -1 */

    if (rt->nrouted > 16) {
        weights = ngx_alloc(2 * rt->nrouted * sizeof(ngx_uint_t), log);
        if (weights == NULL) {
            return;
        }
    }

    for (k = 0; k < rt->nrouted; k++) {
        weights[k] = v[k].conf_weight;
        weights[rt->nrouted + k] = (ngx_uint_t) -1;
    }

    for (k = 0; k + 1 < n; k += 2) {
        i = ngx_http_kserve_find_variant(rt, &fields[k], 0);

        if (i < 0) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "kserve: redis \"%V\": \"%V\" is not a variant "
                          "of route \"%V\", ignored",
                          &rt->redis_key, &fields[k], &rt->name);
            continue;
        }

        w = ksv_route_parse_weight((char *) fields[k + 1].data,
                                   fields[k + 1].len);

        if (w < 0) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "kserve: redis \"%V\": weight \"%V\" of \"%V\" is "
                          "not an integer from 0 to %d, ignored (stays %ui)",
                          &rt->redis_key, &fields[k + 1], &fields[k],
                          KSV_ROUTE_MAX_WEIGHT, v[i].base_weight);
            weights[i] = v[i].base_weight;
            weights[rt->nrouted + i] = (ngx_uint_t) v[i].redis_weight;
            continue;
        }

        weights[i] = (ngx_uint_t) w;
        weights[rt->nrouted + i] = (ngx_uint_t) w;
    }

    sum = 0;

    for (k = 0; k < rt->nrouted; k++) {
        sum += weights[k];
    }

    if (sum == 0) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "kserve: redis \"%V\": every variant would get "
                      "weight 0, ignored", &rt->redis_key);
        goto done;
    }

    for (k = 0; k < rt->nrouted; k++) {
        v[k].base_weight = weights[k];
        v[k].redis_weight = (ngx_int_t) weights[rt->nrouted + k];
    }

    rt->redis_weights = (n > 0);

    ngx_http_kserve_route_effective(rt, log,
                                    n ? "from redis"
                                      : "nginx.conf, no hash in redis");

done:

    if (weights != stack) {
        ngx_free(weights);
    }
}


void
ngx_http_kserve_route_effective(ngx_http_kserve_routed_t *rt, ngx_log_t *log,
    const char *why)
{
    u_char                            *p, *last, buf[512];
    ngx_uint_t                         k, changed, *w, stack[16];
    ngx_http_kserve_variant_t         *v;
    const ngx_http_kserve_strategy_t  *s;

    v = rt->variants.elts;
    s = &ngx_http_kserve_strategies[rt->strategy];

    w = stack;

    if (rt->nrouted > 16) {
        w = ngx_alloc(rt->nrouted * sizeof(ngx_uint_t), log);
        if (w == NULL) {
            return;
        }
    }

    /* the operator's: nginx.conf, or Redis */

    for (k = 0; k < rt->nrouted; k++) {
        w[k] = v[k].base_weight;
    }

    /* a rollout: its canary's step share, the baseline the rest */

    ngx_http_kserve_rollout_weights(rt, w);

    /* hook: the strategy's own weights (e.g. learnt ones) */

    if (s->weights != NULL) {
        s->weights(rt, w);
    }

    p = buf;
    last = buf + sizeof(buf);
    changed = 0;

    for (k = 0; k < rt->nrouted; k++) {
        if (v[k].weight != w[k]) {
            v[k].weight = w[k];
            rt->peers[k].current = 0;
            changed = 1;
        }

        p = ngx_slprintf(p, last, " %V=%ui", &v[k].name, v[k].weight);
    }

    if (changed || why != NULL) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "kserve: route \"%V\" weights%*s (%s)", &rt->name,
                      p - buf, buf, why ? why : "in effect");
    }

    if (w != stack) {
        ngx_free(w);
    }
}


/* ---- the tick ------------------------------------------------------------ */

ngx_int_t
ngx_http_kserve_route_tick_init(ngx_cycle_t *cycle,
    ngx_http_kserve_routed_t *rt)
{
    if (rt->interval == 0) {
        return NGX_OK;
    }

    rt->tick.handler = ngx_http_kserve_route_tick;
    rt->tick.data = rt;
    rt->tick.log = cycle->log;
    rt->tick.cancelable = 1;

    ngx_add_timer(&rt->tick, rt->interval);

    return NGX_OK;
}


void
ngx_http_kserve_route_tick_exit(ngx_http_kserve_routed_t *rt)
{
    if (rt->tick.timer_set) {
        ngx_del_timer(&rt->tick);
    }
}


static void
ngx_http_kserve_route_tick(ngx_event_t *ev)
{
    ngx_http_kserve_routed_t          *rt;
    const ngx_http_kserve_strategy_t  *s;

    rt = ev->data;
    s = &ngx_http_kserve_strategies[rt->strategy];

    if (s->tick != NULL) {
        s->tick(rt, ev->log);
    }

    /* hook: a rollout (rt->rollout) judges its step here */

    ngx_http_kserve_route_effective(rt, ev->log, NULL);

    ngx_add_timer(ev, rt->interval);
}
