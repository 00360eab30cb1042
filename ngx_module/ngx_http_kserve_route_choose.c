
/*
 * Copyright (C) ngx_kserve authors
 *
 * Choosing a routed name's variant for one request: the rules, the
 * sticky key, then the strategy, among the usable variants (in service,
 * ready in the worker's index).  The strategies are rows of a table, each
 * a thin adapter over the nginx-free selection functions of ksv_route.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"


static ngx_int_t ngx_http_kserve_choose_random(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n);
static ngx_int_t ngx_http_kserve_choose_swrr(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n);
static ngx_int_t ngx_http_kserve_choose_least(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n);
static ngx_int_t ngx_http_kserve_choose_fastest(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n);


/*
 * Indexed by NGX_HTTP_KSERVE_RANDOM ...: a new strategy is a number in
 * ngx_http_kserve_route.h and a row here (conf, init_process, choose,
 * tick, weights, status: see ngx_http_kserve_strategy_t).
 */

const ngx_http_kserve_strategy_t
    ngx_http_kserve_strategies[NGX_HTTP_KSERVE_NSTRATEGIES] =
{
    { ngx_string("random"), NULL, NULL,
      ngx_http_kserve_choose_random, NULL, NULL, NULL },
    { ngx_string("swrr"), NULL, NULL,
      ngx_http_kserve_choose_swrr, NULL, NULL, NULL },
    { ngx_string("least_outstanding"), NULL, NULL,
      ngx_http_kserve_choose_least, NULL, NULL, NULL },
    { ngx_string("fastest"), NULL, NULL,
      ngx_http_kserve_choose_fastest, NULL, NULL, NULL }
};


/* args == NULL: the default strategy, at the block's end */

char *
ngx_http_kserve_route_strategy(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *args, ngx_uint_t n)
{
    u_char                            *p, *last, buf[256];
    ngx_uint_t                         i;
    const ngx_http_kserve_strategy_t  *s;

    if (args == NULL) {
        rt->strategy = NGX_HTTP_KSERVE_RANDOM;
        s = &ngx_http_kserve_strategies[rt->strategy];

        return s->conf ? s->conf(cf, rt, NULL, 0) : NGX_CONF_OK;
    }

    for (i = 0; i < NGX_HTTP_KSERVE_NSTRATEGIES; i++) {
        s = &ngx_http_kserve_strategies[i];

        if (s->name.len != args[0].len
            || ngx_strncmp(s->name.data, args[0].data, args[0].len) != 0)
        {
            continue;
        }

        rt->strategy = i;

        if (s->conf != NULL) {
            return s->conf(cf, rt, &args[1], n - 1);
        }

        if (n != 1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid number of arguments in \"strategy\" "
                               "of kserve_route \"%V\"", &rt->name);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    /* "random, swrr, least_outstanding or fastest" */

    p = buf;
    last = buf + sizeof(buf);

    for (i = 0; i < NGX_HTTP_KSERVE_NSTRATEGIES; i++) {
        p = ngx_slprintf(p, last, "%s%V",
                         i == 0 ? ""
                         : i + 1 < NGX_HTTP_KSERVE_NSTRATEGIES ? ", "
                         : " or ", &ngx_http_kserve_strategies[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown strategy \"%V\": %*s expected",
                       &args[0], p - buf, buf);
    return NGX_CONF_ERROR;
}


/*
 * When none is usable: the fallback if there is one, else panic: the
 * same choice as if every variant were healthy.
 */

ngx_http_kserve_variant_t *
ngx_http_kserve_route_choose(ngx_http_request_t *r,
    ngx_http_kserve_routed_t *rt, ngx_http_kserve_backend_t *b)
{
    ngx_int_t                   idx;
    ngx_str_t                   key, val;
    ngx_uint_t                  i, usable;
    ngx_msec_t                  now;
    ksv_route_peer_t           *peer;
    ngx_http_kserve_rule_t     *rule;
    ngx_http_kserve_variant_t  *v;

    v = rt->variants.elts;
    peer = rt->peers;
    now = ngx_current_msec;
    usable = 0;

    for (i = 0; i < rt->nrouted; i++) {
        peer[i].weight = (uint32_t) v[i].weight;
        peer[i].usable = ngx_http_kserve_variant_in_service(&v[i], now)
                         && ngx_http_kserve_variant_ready(b, &v[i]);
        peer[i].outstanding = v[i].shm->outstanding;
        peer[i].ewma_us = v[i].shm->ewma_us;

        usable += (peer[i].usable && peer[i].weight);
    }

    rule = rt->rules.elts;

    for (i = 0; i < rt->rules.nelts; i++) {
        if (ngx_http_complex_value(r, &rule[i].value, &val) != NGX_OK) {
            continue;
        }

        if (val.len == rule[i].match.len
            && ngx_strncmp(val.data, rule[i].match.data, val.len) == 0
            && peer[rule[i].variant].usable)
        {
            return &v[rule[i].variant];
        }
    }

    ngx_str_null(&key);

    if (rt->sticky != NULL
        && ngx_http_complex_value(r, rt->sticky, &key) != NGX_OK)
    {
        ngx_str_null(&key);
    }

    if (usable == 0) {
        if (rt->fallback >= 0) {
            return &v[rt->fallback];
        }

        for (i = 0; i < rt->nrouted; i++) {
            peer[i].usable = 1;
        }
    }

    if (key.len) {
        idx = ksv_route_sticky(peer, rt->nrouted, key.data, key.len);

    } else {
        idx = ngx_http_kserve_strategies[rt->strategy].choose(rt, peer,
                                                              rt->nrouted);
    }

    return &v[idx >= 0 ? idx : 0];
}


static ngx_int_t
ngx_http_kserve_choose_random(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n)
{
    return ksv_route_weighted(peers, n, ngx_http_kserve_route_random32());
}


static ngx_int_t
ngx_http_kserve_choose_swrr(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n)
{
    return ksv_route_swrr(peers, n);
}


static ngx_int_t
ngx_http_kserve_choose_least(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n)
{
    return ksv_route_least(peers, n, ngx_http_kserve_route_random32());
}


static ngx_int_t
ngx_http_kserve_choose_fastest(ngx_http_kserve_routed_t *rt,
    ksv_route_peer_t *peers, ngx_uint_t n)
{
    return ksv_route_fastest(peers, n, ngx_http_kserve_route_random32());
}


ngx_uint_t
ngx_http_kserve_variant_ready(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_variant_t *v)
{
    uint32_t             i;
    ksv_model_status_t  *ms;

    /* nothing known yet: the request will say what is wrong */

    if (b == NULL || ngx_http_kserve_index_state(b)
                     == NGX_HTTP_KSERVE_INDEX_NONE)
    {
        return 1;
    }

    ms = ngx_http_kserve_find_model(b, &v->model);

    if (ms == NULL) {
        return 0;
    }

    for (i = 0; i < ms->nversions; i++) {
        if (ms->versions[i].state == KSV_VERSION_READY
            && (v->version.len == 0 || ms->versions[i].version == v->version_n))
        {
            return 1;
        }
    }

    return 0;
}

