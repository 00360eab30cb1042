
/*
 * Copyright (C) ngx_kserve authors
 *
 * The kserve_route block: parsed once into ngx_http_kserve_routed_t, one
 * line at a time by a keyword -> handler table (as nginx's own inner
 * blocks, e.g. split_clients, hand each line to cf->handler), checked as
 * a whole at its end and against the other blocks once the http block is
 * read; and the shared zone "kserve_route" the variants' health and
 * counters live in.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"
#include "ngx_http_kserve_rollout.h"


#define NGX_HTTP_KSERVE_ROUTE_ZONE_SIZE  (256 * 1024)


/* the variants' counters in the shared zone, found by "route/variant" */
typedef struct ngx_http_kserve_slot_s  ngx_http_kserve_slot_t;

struct ngx_http_kserve_slot_s {
    ngx_http_kserve_slot_t         *next;
    ngx_http_kserve_variant_shm_t   counters;
    size_t                          len;
    u_char                          key[1];
};


/*
 * One line of the block: value[0] is the keyword, n the number of
 * arguments after it.
 */
typedef char *(*ngx_http_kserve_line_pt)(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);

typedef struct {
    ngx_str_t                    name;
    ngx_uint_t                   min;       /* arguments after the keyword */
    ngx_uint_t                   max;
    ngx_http_kserve_line_pt      handler;
} ngx_http_kserve_keyword_t;


static char *ngx_http_kserve_route_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static char *ngx_http_kserve_route_variant(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_strategy_line(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_sticky(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_rule(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_fallback(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_mirror(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_max_fails(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_eject_time(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_window_line(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n);
static char *ngx_http_kserve_route_duplicate(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *word);
static ngx_int_t ngx_http_kserve_variant_name(ngx_conf_t *cf, ngx_str_t *name,
    ngx_http_kserve_variant_t *v);
static char *ngx_http_kserve_route_finish(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt);
static ngx_int_t ngx_http_kserve_route_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


/*
 * The block's keywords.  A new one (e.g. "rollout") is a row here and a
 * handler below; the error message lists the keywords from this table.
 */

static ngx_http_kserve_keyword_t  ngx_http_kserve_route_keywords[] = {
    { ngx_string("variant"), 1, 2, ngx_http_kserve_route_variant },
    { ngx_string("strategy"), 1, 8, ngx_http_kserve_route_strategy_line },
    { ngx_string("sticky"), 1, 1, ngx_http_kserve_route_sticky },
    { ngx_string("rule"), 3, 3, ngx_http_kserve_route_rule },
    { ngx_string("fallback"), 1, 1, ngx_http_kserve_route_fallback },
    { ngx_string("mirror"), 2, 2, ngx_http_kserve_route_mirror },
    { ngx_string("max_fails"), 1, 1, ngx_http_kserve_route_max_fails },
    { ngx_string("eject_time"), 1, 2, ngx_http_kserve_route_eject_time },
    { ngx_string("rollout"), 1, 8, ngx_http_kserve_rollout_line },
    { ngx_string("window"), 1, 1, ngx_http_kserve_route_window_line },
    { ngx_null_string, 0, 0, NULL }
};


static ngx_str_t  ngx_http_kserve_route_zone_name = ngx_string("kserve_route");


ngx_http_kserve_routing_t *
ngx_http_kserve_routing(ngx_conf_t *cf)
{
    ngx_http_kserve_routing_t    *routing;
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kserve_module);

    if (kmcf->routing != NULL) {
        return kmcf->routing;
    }

    routing = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_routing_t));
    if (routing == NULL) {
        return NULL;
    }

    if (ngx_array_init(&routing->routes, cf->pool, 4,
                       sizeof(ngx_http_kserve_routed_t *))
        != NGX_OK)
    {
        return NULL;
    }

    kmcf->routing = routing;

    return routing;
}


/*
 * kserve_route NAME {
 *     variant   MODEL[:VERSION] [weight=N];
 *     strategy  random | swrr | least_outstanding | fastest;
 *     sticky    STRING;
 *     rule      STRING VALUE VARIANT;
 *     fallback  MODEL[:VERSION];
 *     mirror    MODEL[:VERSION] PERCENT%;
 *     max_fails N;
 *     eject_time TIME [MAX];
 *     window    TIME;
 * }
 */

char *
ngx_http_kserve_route_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                       *rv;
    u_char                     *p;
    ngx_str_t                  *value, *name;
    ngx_conf_t                  save;
    ngx_http_kserve_routed_t   *rt, **rtp;
    ngx_http_kserve_routing_t  *routing;

    value = cf->args->elts;
    name = &value[1];

    for (p = name->data; p < name->data + name->len; p++) {
        if (*p == '/' || *p == ':' || *p <= ' ') {
            break;
        }
    }

    if (name->len == 0 || p != name->data + name->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid routed model name \"%V\"", name);
        return NGX_CONF_ERROR;
    }

    routing = ngx_http_kserve_routing(cf);
    if (routing == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_kserve_routed(routing, name) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate kserve_route \"%V\"", name);
        return NGX_CONF_ERROR;
    }

    rt = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_routed_t));
    if (rt == NULL) {
        return NGX_CONF_ERROR;
    }

    rt->name = *name;
    rt->strategy = NGX_CONF_UNSET_UINT;
    rt->max_fails = NGX_CONF_UNSET_UINT;
    rt->eject_time = NGX_CONF_UNSET_MSEC;
    rt->eject_max = NGX_CONF_UNSET_MSEC;
    rt->window = NGX_CONF_UNSET_MSEC;
    rt->fallback = -1;
    rt->mirror = -1;
    rt->line = cf->conf_file->line;

    if (ngx_array_init(&rt->variants, cf->pool, 4,
                       sizeof(ngx_http_kserve_variant_t))
        != NGX_OK
        || ngx_array_init(&rt->rules, cf->pool, 1,
                          sizeof(ngx_http_kserve_rule_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    save = *cf;
    cf->handler = ngx_http_kserve_route_line;
    cf->handler_conf = (char *) rt;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rv = ngx_http_kserve_route_finish(cf, rt);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rtp = ngx_array_push(&routing->routes);
    if (rtp == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the name is checked against the variants of others at the end */

    *rtp = rt;

    return NGX_CONF_OK;
}


static char *
ngx_http_kserve_route_line(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_http_kserve_routed_t *rt = (ngx_http_kserve_routed_t *) conf;

    u_char                     *p, *last, buf[256];
    ngx_str_t                  *value;
    ngx_uint_t                  n;
    ngx_http_kserve_keyword_t  *kw;

    value = cf->args->elts;
    n = cf->args->nelts - 1;

    for (kw = ngx_http_kserve_route_keywords; kw->handler; kw++) {
        if (kw->name.len != value[0].len
            || ngx_strncmp(kw->name.data, value[0].data, value[0].len) != 0)
        {
            continue;
        }

        if (n < kw->min || n > kw->max) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid number of arguments in \"%V\" of "
                               "kserve_route \"%V\"", &value[0], &rt->name);
            return NGX_CONF_ERROR;
        }

        return kw->handler(cf, rt, value, n);
    }

    /* "variant, strategy, ... or eject_time" */

    p = buf;
    last = buf + sizeof(buf);

    for (kw = ngx_http_kserve_route_keywords; kw->handler; kw++) {
        p = ngx_slprintf(p, last, "%s%V",
                         kw == ngx_http_kserve_route_keywords ? ""
                         : kw[1].handler ? ", " : " or ", &kw->name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in kserve_route \"%V\": "
                       "%*s expected", &value[0], &rt->name, p - buf, buf);
    return NGX_CONF_ERROR;
}


/* variant MODEL[:VERSION] [weight=N] */

static char *
ngx_http_kserve_route_variant(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_uint_t n)
{
    ngx_int_t                   w;
    ngx_http_kserve_variant_t  *v;

    v = ngx_array_push(&rt->variants);
    if (v == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(v, sizeof(ngx_http_kserve_variant_t));

    if (ngx_http_kserve_variant_name(cf, &value[1], v) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_kserve_find_variant(rt, &v->name, 1)
        != (ngx_int_t) rt->variants.nelts - 1)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate variant \"%V\" in kserve_route "
                           "\"%V\"", &v->name, &rt->name);
        return NGX_CONF_ERROR;
    }

    v->routable = 1;
    v->conf_weight = 1;

    if (n == 2) {
        if (value[2].len < 7
            || ngx_strncmp(value[2].data, "weight=", 7) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": "
                               "\"weight=N\" expected", &value[2]);
            return NGX_CONF_ERROR;
        }

        w = ksv_route_parse_weight((char *) value[2].data + 7,
                                   value[2].len - 7);
        if (w < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid weight \"%V\" of variant \"%V\": "
                               "an integer from 0 to %d expected",
                               &value[2], &v->name, KSV_ROUTE_MAX_WEIGHT);
            return NGX_CONF_ERROR;
        }

        v->conf_weight = (ngx_uint_t) w;
    }

    rt->nrouted++;

    return NGX_CONF_OK;
}


/* strategy NAME [ARGS]: the strategies' table decides */

static char *
ngx_http_kserve_route_strategy_line(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n)
{
    if (rt->strategy != NGX_CONF_UNSET_UINT) {
        return ngx_http_kserve_route_duplicate(cf, rt, &value[0]);
    }

    return ngx_http_kserve_route_strategy(cf, rt, &value[1], n);
}


/* sticky STRING (variables: a complex value) */

static char *
ngx_http_kserve_route_sticky(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_uint_t n)
{
    ngx_http_compile_complex_value_t  ccv;

    if (rt->sticky != NULL) {
        return ngx_http_kserve_route_duplicate(cf, rt, &value[0]);
    }

    rt->sticky = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (rt->sticky == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = rt->sticky;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* rule STRING VALUE VARIANT (the variant is checked at the block's end) */

static char *
ngx_http_kserve_route_rule(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_uint_t n)
{
    ngx_http_kserve_rule_t            *rule;
    ngx_http_compile_complex_value_t   ccv;

    rule = ngx_array_push(&rt->rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &rule->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    rule->match = value[2];
    rule->target = value[3];

    return NGX_CONF_OK;
}


/* fallback MODEL[:VERSION] (resolved at the block's end) */

static char *
ngx_http_kserve_route_fallback(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_uint_t n)
{
    if (rt->fallback_name.len) {
        return ngx_http_kserve_route_duplicate(cf, rt, &value[0]);
    }

    rt->fallback_name = value[1];

    return NGX_CONF_OK;
}


/* mirror MODEL[:VERSION] PERCENT% */

static char *
ngx_http_kserve_route_mirror(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_uint_t n)
{
    u_char     *p;
    ngx_int_t   pct;

    if (rt->mirror_name.len) {
        return ngx_http_kserve_route_duplicate(cf, rt, &value[0]);
    }

    rt->mirror_name = value[1];

    p = value[2].data;
    pct = NGX_ERROR;

    if (value[2].len > 1 && p[value[2].len - 1] == '%') {
        pct = ngx_atofp(p, value[2].len - 1, 2);
    }

    if (pct <= 0 || pct > 10000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid mirror percentage \"%V\": "
                           "more than 0%% and at most 100%% expected, "
                           "e.g. \"5%%\" or \"0.5%%\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    rt->mirror_pct = (ngx_uint_t) pct;

    return NGX_CONF_OK;
}


/* max_fails N (0: never eject) */

static char *
ngx_http_kserve_route_max_fails(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_uint_t n)
{
    ngx_int_t  fails;

    if (rt->max_fails != NGX_CONF_UNSET_UINT) {
        return ngx_http_kserve_route_duplicate(cf, rt, &value[0]);
    }

    fails = ngx_atoi(value[1].data, value[1].len);
    if (fails == NGX_ERROR || fails > 1000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid max_fails \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    rt->max_fails = (ngx_uint_t) fails;

    return NGX_CONF_OK;
}


/* eject_time TIME [MAX] */

static char *
ngx_http_kserve_route_eject_time(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *value, ngx_uint_t n)
{
    if (rt->eject_time != NGX_CONF_UNSET_MSEC) {
        return ngx_http_kserve_route_duplicate(cf, rt, &value[0]);
    }

    rt->eject_time = ngx_parse_time(&value[1], 0);
    if (rt->eject_time == (ngx_msec_t) NGX_ERROR || rt->eject_time == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid eject_time \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (n == 2) {
        rt->eject_max = ngx_parse_time(&value[2], 0);

        if (rt->eject_max == (ngx_msec_t) NGX_ERROR
            || rt->eject_max < rt->eject_time)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid maximum eject_time \"%V\": "
                               "at least \"%V\" expected",
                               &value[2], &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* window TIME: of GET /v2/routes' per-variant figures */

static char *
ngx_http_kserve_route_window_line(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt, ngx_str_t *value, ngx_uint_t n)
{
    if (rt->window != NGX_CONF_UNSET_MSEC) {
        return ngx_http_kserve_route_duplicate(cf, rt, &value[0]);
    }

    rt->window = ngx_parse_time(&value[1], 0);

    if (rt->window == (ngx_msec_t) NGX_ERROR || rt->window < 100
        || rt->window > 3600000)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid window \"%V\": from 100ms to 1h "
                           "expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_kserve_route_duplicate(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt,
    ngx_str_t *word)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is duplicate in kserve_route \"%V\"",
                       word, &rt->name);
    return NGX_CONF_ERROR;
}


/* MODEL[:VERSION] */

static ngx_int_t
ngx_http_kserve_variant_name(ngx_conf_t *cf, ngx_str_t *name,
    ngx_http_kserve_variant_t *v)
{
    u_char  *colon;
    off_t    n;

    v->name = *name;
    v->model = *name;

    colon = ngx_strlchr(name->data, name->data + name->len, ':');

    if (colon != NULL) {
        v->model.len = colon - name->data;
        v->version.data = colon + 1;
        v->version.len = name->data + name->len - (colon + 1);

        n = ngx_atoof(v->version.data, v->version.len);

        if (n == NGX_ERROR || v->version.len > 18) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid model version in \"%V\": "
                               "MODEL[:VERSION] expected", name);
            return NGX_ERROR;
        }

        v->version_n = n;
    }

    if (v->model.len == 0
        || ngx_strlchr(v->model.data, v->model.data + v->model.len, '/')
           != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid model name in \"%V\": "
                           "MODEL[:VERSION] expected", name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_kserve_find_variant(ngx_http_kserve_routed_t *rt, ngx_str_t *name,
    ngx_uint_t all)
{
    ngx_uint_t                  i, n;
    ngx_http_kserve_variant_t  *v;

    v = rt->variants.elts;
    n = all ? rt->variants.nelts : rt->nrouted;

    for (i = 0; i < n; i++) {
        if (v[i].name.len == name->len
            && ngx_strncmp(v[i].name.data, name->data, name->len) == 0)
        {
            return i;
        }
    }

    return -1;
}


static char *
ngx_http_kserve_route_finish(ngx_conf_t *cf, ngx_http_kserve_routed_t *rt)
{
    char                       *rv;
    u_char                     *p;
    ngx_int_t                   i;
    ngx_str_t                  *name;
    ngx_uint_t                  k, sum, which;
    ngx_http_kserve_rule_t     *rule;
    ngx_http_kserve_variant_t  *v;

    if (rt->nrouted == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "kserve_route \"%V\" has no \"variant\"",
                           &rt->name);
        return NGX_CONF_ERROR;
    }

    v = rt->variants.elts;
    sum = 0;

    for (k = 0; k < rt->nrouted; k++) {
        sum += v[k].conf_weight;
    }

    if (sum == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "every variant of kserve_route \"%V\" has "
                           "weight 0: at least one must get traffic",
                           &rt->name);
        return NGX_CONF_ERROR;
    }

    rule = rt->rules.elts;

    for (k = 0; k < rt->rules.nelts; k++) {
        i = ngx_http_kserve_find_variant(rt, &rule[k].target, 0);

        if (i < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "rule of kserve_route \"%V\" names \"%V\", "
                               "which is not one of its variants",
                               &rt->name, &rule[k].target);
            return NGX_CONF_ERROR;
        }

        rule[k].variant = (ngx_uint_t) i;
    }

    /* fallback and mirror: a variant, or another model kept apart */

    for (which = 0; which < 2; which++) {
        name = which ? &rt->mirror_name : &rt->fallback_name;

        if (name->len == 0) {
            continue;
        }

        if (name->len == rt->name.len
            && ngx_strncmp(name->data, rt->name.data, name->len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s of kserve_route \"%V\" is the routed "
                               "name itself",
                               which ? "mirror" : "fallback", &rt->name);
            return NGX_CONF_ERROR;
        }

        i = ngx_http_kserve_find_variant(rt, name, 1);

        if (i < 0) {
            v = ngx_array_push(&rt->variants);
            if (v == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memzero(v, sizeof(ngx_http_kserve_variant_t));

            if (ngx_http_kserve_variant_name(cf, name, v) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            i = rt->variants.nelts - 1;
        }

        if (which) {
            rt->mirror = i;

        } else {
            rt->fallback = i;
        }
    }

    if (rt->strategy == NGX_CONF_UNSET_UINT) {
        rv = ngx_http_kserve_route_strategy(cf, rt, NULL, 0);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    ngx_conf_init_uint_value(rt->max_fails, 3);
    ngx_conf_init_msec_value(rt->eject_time, 10000);
    ngx_conf_init_msec_value(rt->eject_max,
                             ngx_max(rt->eject_time, 300000));
    ngx_conf_init_msec_value(rt->window, 10000);

    rt->redis_key.len = sizeof("kserve:route:") - 1 + rt->name.len;
    rt->redis_key.data = ngx_pnalloc(cf->pool, rt->redis_key.len + 1);
    if (rt->redis_key.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(rt->redis_key.data, "kserve:route:",
                   sizeof("kserve:route:") - 1);
    p = ngx_cpymem(p, rt->name.data, rt->name.len);
    *p = '\0';

    return NGX_CONF_OK;
}


/*
 * Once the whole http block is read: no routed name may stand for a
 * variant of another (one level of indirection only), and the shared
 * zone is sized for every variant.
 */

ngx_int_t
ngx_http_kserve_route_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                    i, k, n;
    ngx_shm_zone_t               *zone;
    ngx_http_kserve_routed_t    **rt;
    ngx_http_kserve_variant_t    *v;
    ngx_http_kserve_routing_t    *routing;
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kserve_module);
    routing = kmcf->routing;

    if (routing == NULL) {
        return NGX_OK;
    }

    rt = routing->routes.elts;
    n = 0;

    for (i = 0; i < routing->routes.nelts; i++) {
        v = rt[i]->variants.elts;

        for (k = 0; k < rt[i]->variants.nelts; k++) {
            if (ngx_http_kserve_routed(routing, &v[k].model) != NULL) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "kserve_route \"%V\" names the routed name "
                              "\"%V\" as a variant, fallback or mirror: "
                              "routes do not nest", &rt[i]->name,
                              &v[k].model);
                return NGX_ERROR;
            }

            n++;
        }
    }

    if (ngx_http_kserve_rollout_postconfiguration(cf, routing) != NGX_OK) {
        return NGX_ERROR;
    }

    if (n == 0) {
        return NGX_OK;
    }

    zone = ngx_shared_memory_add(cf, &ngx_http_kserve_route_zone_name,
                                 ngx_max(NGX_HTTP_KSERVE_ROUTE_ZONE_SIZE,
                                         n * 1024),
                                 &ngx_http_kserve_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_kserve_route_init_zone;
    zone->data = routing;

    routing->zone = zone;

    return NGX_OK;
}


/*
 * Each variant's counters are a slot found by "route/variant", so a
 * reload that keeps a variant keeps its counters and its health.
 */

static ngx_int_t
ngx_http_kserve_route_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_kserve_routing_t *routing = shm_zone->data;

    u_char                      *p;
    size_t                       len;
    ngx_uint_t                   i, k;
    ngx_slab_pool_t             *shpool;
    ngx_http_kserve_slot_t     **head, *slot;
    ngx_http_kserve_routed_t   **rt;
    ngx_http_kserve_variant_t   *v;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data != NULL || shm_zone->shm.exists) {
        head = shpool->data;

    } else {
        head = ngx_slab_calloc(shpool, sizeof(ngx_http_kserve_slot_t *));
        if (head == NULL) {
            return NGX_ERROR;
        }

        shpool->data = head;
    }

    rt = routing->routes.elts;

    for (i = 0; i < routing->routes.nelts; i++) {
        v = rt[i]->variants.elts;

        for (k = 0; k < rt[i]->variants.nelts; k++) {
            len = rt[i]->name.len + 1 + v[k].name.len;

            for (slot = *head; slot; slot = slot->next) {
                if (slot->len == len
                    && ngx_strncmp(slot->key, rt[i]->name.data,
                                   rt[i]->name.len) == 0
                    && slot->key[rt[i]->name.len] == '/'
                    && ngx_strncmp(slot->key + rt[i]->name.len + 1,
                                   v[k].name.data, v[k].name.len) == 0)
                {
                    break;
                }
            }

            if (slot == NULL) {
                slot = ngx_slab_calloc(shpool,
                                       sizeof(ngx_http_kserve_slot_t) + len);
                if (slot == NULL) {
                    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                                  "kserve: shared zone \"%V\" is full",
                                  &shm_zone->shm.name);
                    return NGX_ERROR;
                }

                p = ngx_cpymem(slot->key, rt[i]->name.data, rt[i]->name.len);
                *p++ = '/';
                ngx_memcpy(p, v[k].name.data, v[k].name.len);

                slot->len = len;
                slot->next = *head;
                *head = slot;
            }

            v[k].shm = &slot->counters;
        }
    }

    return NGX_OK;
}


ngx_http_kserve_routed_t *
ngx_http_kserve_routed(ngx_http_kserve_routing_t *routing, ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_http_kserve_routed_t  **rt;

    rt = routing->routes.elts;

    for (i = 0; i < routing->routes.nelts; i++) {
        if (rt[i]->name.len == name->len
            && ngx_strncmp(rt[i]->name.data, name->data, name->len) == 0)
        {
            return rt[i];
        }
    }

    return NULL;
}

