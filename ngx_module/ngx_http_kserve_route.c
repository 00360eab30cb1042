
/*
 * Copyright (C) ngx_kserve authors
 *
 * Routed model names: the kserve_route block, the choice of a variant for
 * each request, the variants' health (consecutive failures, ejection),
 * fallback and mirroring, and the per-variant counters.
 *
 * Selection itself is nginx-free (ksv_route.c).  Health and the counters
 * /metrics shows live in the shared zone "kserve_route", touched with
 * atomic operations only; weights in effect and the statistics waiting
 * for Redis are per nginx worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"
#include "ngx_http_kserve_redis.h"
#include "ksv_json_write.h"
#include "ksv_prometheus.h"
#include "ksv_status.h"


#define NGX_HTTP_KSERVE_ROUTE_ZONE_SIZE  (256 * 1024)


typedef enum {
    NGX_HTTP_KSERVE_SUCCESS = 0,
    NGX_HTTP_KSERVE_FAILURE,
    NGX_HTTP_KSERVE_CLIENT_ERROR
} ngx_http_kserve_outcome_e;


/* the variants' counters in the shared zone, found by "route/variant" */
typedef struct ngx_http_kserve_slot_s  ngx_http_kserve_slot_t;

struct ngx_http_kserve_slot_s {
    ngx_http_kserve_slot_t         *next;
    ngx_http_kserve_variant_shm_t   counters;
    size_t                          len;
    u_char                          key[1];
};


static char *ngx_http_kserve_route_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static char *ngx_http_kserve_route_finish(ngx_conf_t *cf,
    ngx_http_kserve_routed_t *rt);
static ngx_int_t ngx_http_kserve_variant_name(ngx_conf_t *cf, ngx_str_t *name,
    ngx_http_kserve_variant_t *v);
static ngx_int_t ngx_http_kserve_find_variant(ngx_http_kserve_routed_t *rt,
    ngx_str_t *name, ngx_uint_t all);
static ngx_int_t ngx_http_kserve_route_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_kserve_routed_t *ngx_http_kserve_routed(
    ngx_http_kserve_routing_t *routing, ngx_str_t *name);
static ngx_uint_t ngx_http_kserve_variant_ready(ngx_http_kserve_backend_t *b,
    ngx_http_kserve_variant_t *v);
static ngx_http_kserve_variant_t *ngx_http_kserve_choose(
    ngx_http_request_t *r, ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_backend_t *b);
static void ngx_http_kserve_route_use(ngx_http_kserve_route_t *route,
    ngx_http_kserve_variant_t *v);
static void ngx_http_kserve_pick_acquire(ngx_http_kserve_pick_t *pick,
    ngx_http_kserve_variant_t *v);
static void ngx_http_kserve_pick_release(void *data);
static void ngx_http_kserve_account(ngx_http_kserve_variant_t *v,
    ngx_http_kserve_outcome_e outcome, uint64_t us);
static void ngx_http_kserve_health(ngx_http_request_t *r,
    ngx_http_kserve_routed_t *rt, ngx_http_kserve_variant_t *v,
    ngx_http_kserve_outcome_e outcome);
static uint64_t ngx_http_kserve_now_us(void);
static uint32_t ngx_http_kserve_random32(void);


static ngx_str_t  ngx_http_kserve_route_zone_name = ngx_string("kserve_route");
static ngx_str_t  ngx_http_kserve_variant_header =
    ngx_string("X-KServe-Variant");


/* ---- configuration ------------------------------------------------------ */

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

    u_char                            *p;
    ngx_int_t                          n;
    ngx_str_t                         *value, *word;
    ngx_uint_t                         nargs;
    ngx_http_kserve_rule_t            *rule;
    ngx_http_kserve_variant_t         *v;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;
    word = &value[0];
    nargs = cf->args->nelts;

#define ngx_http_kserve_is(s)                                                \
    (word->len == sizeof(s) - 1 && ngx_strncmp(word->data, s, word->len) == 0)

    if (ngx_http_kserve_is("variant")) {

        if (nargs != 2 && nargs != 3) {
            goto args;
        }

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

        if (nargs == 3) {
            if (value[2].len < 7
                || ngx_strncmp(value[2].data, "weight=", 7) != 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": "
                                   "\"weight=N\" expected", &value[2]);
                return NGX_CONF_ERROR;
            }

            n = ksv_route_parse_weight((char *) value[2].data + 7,
                                       value[2].len - 7);
            if (n < 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid weight \"%V\" of variant \"%V\": "
                                   "an integer from 0 to %d expected",
                                   &value[2], &v->name, KSV_ROUTE_MAX_WEIGHT);
                return NGX_CONF_ERROR;
            }

            v->conf_weight = (ngx_uint_t) n;
        }

        rt->nrouted++;

        return NGX_CONF_OK;
    }

    if (ngx_http_kserve_is("strategy")) {

        if (nargs != 2) {
            goto args;
        }

        if (rt->strategy != NGX_CONF_UNSET_UINT) {
            goto duplicate;
        }

        word = &value[1];

        if (ngx_http_kserve_is("random")) {
            rt->strategy = NGX_HTTP_KSERVE_RANDOM;

        } else if (ngx_http_kserve_is("swrr")) {
            rt->strategy = NGX_HTTP_KSERVE_SWRR;

        } else if (ngx_http_kserve_is("least_outstanding")) {
            rt->strategy = NGX_HTTP_KSERVE_LEAST;

        } else if (ngx_http_kserve_is("fastest")) {
            rt->strategy = NGX_HTTP_KSERVE_FASTEST;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown strategy \"%V\": random, swrr, "
                               "least_outstanding or fastest expected",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_kserve_is("sticky")) {

        if (nargs != 2) {
            goto args;
        }

        if (rt->sticky != NULL) {
            goto duplicate;
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

    if (ngx_http_kserve_is("rule")) {

        if (nargs != 4) {
            goto args;
        }

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

    if (ngx_http_kserve_is("fallback")) {

        if (nargs != 2) {
            goto args;
        }

        if (rt->fallback_name.len) {
            goto duplicate;
        }

        rt->fallback_name = value[1];

        return NGX_CONF_OK;
    }

    if (ngx_http_kserve_is("mirror")) {

        if (nargs != 3) {
            goto args;
        }

        if (rt->mirror_name.len) {
            goto duplicate;
        }

        rt->mirror_name = value[1];

        p = value[2].data;
        n = NGX_ERROR;

        if (value[2].len > 1 && p[value[2].len - 1] == '%') {
            n = ngx_atofp(p, value[2].len - 1, 2);
        }

        if (n <= 0 || n > 10000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid mirror percentage \"%V\": "
                               "more than 0%% and at most 100%% expected, "
                               "e.g. \"5%%\" or \"0.5%%\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        rt->mirror_pct = (ngx_uint_t) n;

        return NGX_CONF_OK;
    }

    if (ngx_http_kserve_is("max_fails")) {

        if (nargs != 2) {
            goto args;
        }

        if (rt->max_fails != NGX_CONF_UNSET_UINT) {
            goto duplicate;
        }

        n = ngx_atoi(value[1].data, value[1].len);
        if (n == NGX_ERROR || n > 1000000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid max_fails \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        rt->max_fails = (ngx_uint_t) n;

        return NGX_CONF_OK;
    }

    if (ngx_http_kserve_is("eject_time")) {

        if (nargs != 2 && nargs != 3) {
            goto args;
        }

        if (rt->eject_time != NGX_CONF_UNSET_MSEC) {
            goto duplicate;
        }

        rt->eject_time = ngx_parse_time(&value[1], 0);
        if (rt->eject_time == (ngx_msec_t) NGX_ERROR || rt->eject_time == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid eject_time \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        if (nargs == 3) {
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

#undef ngx_http_kserve_is

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in kserve_route \"%V\": "
                       "variant, strategy, sticky, rule, fallback, mirror, "
                       "max_fails or eject_time expected",
                       word, &rt->name);
    return NGX_CONF_ERROR;

args:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of arguments in \"%V\" of "
                       "kserve_route \"%V\"", word, &rt->name);
    return NGX_CONF_ERROR;

duplicate:

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


static ngx_int_t
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

    ngx_conf_init_uint_value(rt->strategy, NGX_HTTP_KSERVE_RANDOM);
    ngx_conf_init_uint_value(rt->max_fails, 3);
    ngx_conf_init_msec_value(rt->eject_time, 10000);
    ngx_conf_init_msec_value(rt->eject_max,
                             ngx_max(rt->eject_time, 300000));

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


/* ---- per nginx worker ---------------------------------------------------- */

ngx_int_t
ngx_http_kserve_route_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i, k;
    ngx_http_kserve_routed_t    **rt;
    ngx_http_kserve_variant_t    *v;
    ngx_http_kserve_routing_t    *routing;
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_kserve_module);

    if (kmcf == NULL || kmcf->routing == NULL) {
        return NGX_OK;
    }

    routing = kmcf->routing;
    rt = routing->routes.elts;

    for (i = 0; i < routing->routes.nelts; i++) {
        rt[i]->peers = ngx_pcalloc(cycle->pool,
                                   rt[i]->nrouted * sizeof(ksv_route_peer_t));
        if (rt[i]->peers == NULL) {
            return NGX_ERROR;
        }

        v = rt[i]->variants.elts;

        for (k = 0; k < rt[i]->variants.nelts; k++) {
            v[k].weight = v[k].conf_weight;
        }
    }

    if (routing->redis == NULL) {
        return NGX_OK;
    }

    return ngx_http_kserve_redis_init(cycle, routing);
}


void
ngx_http_kserve_route_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_kserve_module);

    if (kmcf == NULL || kmcf->routing == NULL
        || kmcf->routing->redis == NULL)
    {
        return;
    }

    ngx_http_kserve_redis_exit(cycle, kmcf->routing);
}


/* ---- choosing ------------------------------------------------------------ */

static ngx_http_kserve_routed_t *
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


ngx_int_t
ngx_http_kserve_route_resolve(ngx_http_request_t *r,
    ngx_http_kserve_route_t *route, ngx_http_kserve_pick_t **pickp)
{
    ngx_uint_t                    i;
    ngx_pool_cleanup_t           *cln;
    ngx_http_kserve_pick_t       *pick;
    ngx_http_kserve_routed_t     *rt;
    ngx_http_kserve_variant_t    *v, *chosen;
    ngx_http_kserve_loc_conf_t   *klcf;
    ngx_http_kserve_main_conf_t  *kmcf;

    *pickp = NULL;

    kmcf = ngx_http_get_module_main_conf(r, ngx_http_kserve_module);

    /* a routed name has no versions: /versions/N is the worker's to judge */

    if (kmcf->routing == NULL || route->model.len == 0 || route->version.len) {
        return NGX_DECLINED;
    }

    rt = ngx_http_kserve_routed(kmcf->routing, &route->model);
    if (rt == NULL) {
        return NGX_DECLINED;
    }

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    v = rt->variants.elts;

    switch (route->endpoint) {

    case NGX_HTTP_KSERVE_MODEL_METADATA:
    case NGX_HTTP_KSERVE_MODEL_CONFIG:

        /* the variants share one interface: the first speaks for all */

        route->alias = route->model;
        ngx_http_kserve_route_use(route, &v[0]);

        return NGX_OK;

    case NGX_HTTP_KSERVE_MODEL_READY:

        /* ready when a request would be answered */

        chosen = NULL;

        for (i = 0; i < rt->nrouted; i++) {
            if (v[i].weight > 0
                && ngx_http_kserve_variant_ready(klcf->backend, &v[i]))
            {
                chosen = &v[i];
                break;
            }
        }

        if (chosen == NULL && rt->fallback >= 0) {
            chosen = &v[rt->fallback];
        }

        ngx_http_kserve_route_use(route, chosen ? chosen : &v[0]);

        return NGX_OK;

    case NGX_HTTP_KSERVE_INFER:
        break;

    default:
        return NGX_DECLINED;
    }

    pick = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_pick_t));
    if (pick == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_kserve_pick_release;
    cln->data = pick;

    chosen = ngx_http_kserve_choose(r, rt, klcf->backend);

    pick->routed = rt;
    ngx_http_kserve_pick_acquire(pick, chosen);

    route->alias = route->model;
    ngx_http_kserve_route_use(route, chosen);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "kserve: route \"%V\" chose \"%V\"",
                   &rt->name, &chosen->name);

    *pickp = pick;

    return NGX_OK;
}


static void
ngx_http_kserve_route_use(ngx_http_kserve_route_t *route,
    ngx_http_kserve_variant_t *v)
{
    route->model = v->model;
    route->version = v->version;
    route->version_n = v->version_n;
}


/*
 * Rules first, then the sticky key, then the strategy, each among the
 * usable variants (not ejected, ready in the worker's index).  When none
 * is usable: the fallback if there is one, else panic: the same choice
 * as if every variant were healthy.
 */

static ngx_http_kserve_variant_t *
ngx_http_kserve_choose(ngx_http_request_t *r, ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_backend_t *b)
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
        peer[i].usable =
            (ngx_msec_int_t) (v[i].shm->ejected_until - now) <= 0
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
        switch (rt->strategy) {

        case NGX_HTTP_KSERVE_SWRR:
            idx = ksv_route_swrr(peer, rt->nrouted);
            break;

        case NGX_HTTP_KSERVE_LEAST:
            idx = ksv_route_least(peer, rt->nrouted,
                                  ngx_http_kserve_random32());
            break;

        case NGX_HTTP_KSERVE_FASTEST:
            idx = ksv_route_fastest(peer, rt->nrouted,
                                    ngx_http_kserve_random32());
            break;

        default: /* NGX_HTTP_KSERVE_RANDOM */
            idx = ksv_route_weighted(peer, rt->nrouted,
                                     ngx_http_kserve_random32());
        }
    }

    return &v[idx >= 0 ? idx : 0];
}


static ngx_uint_t
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


static void
ngx_http_kserve_pick_acquire(ngx_http_kserve_pick_t *pick,
    ngx_http_kserve_variant_t *v)
{
    ngx_http_kserve_pick_release(pick);

    pick->variant = v;
    pick->outstanding = 1;

    (void) ngx_atomic_fetch_add(&v->shm->outstanding, 1);
}


static void
ngx_http_kserve_pick_release(void *data)
{
    ngx_http_kserve_pick_t  *pick = data;

    if (!pick->outstanding) {
        return;
    }

    pick->outstanding = 0;

    (void) ngx_atomic_fetch_add(&pick->variant->shm->outstanding,
                                (ngx_atomic_int_t) -1);
}


/* ---- sending: the clock and the mirror ---------------------------------- */

void
ngx_http_kserve_route_sending(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, ngx_http_kserve_backend_t *b,
    ksv_infer_t *m, zmq_msg_t *frames, ngx_uint_t nframes)
{
    u_char                     *p;
    uint64_t                    id;
    ksv_str_t                   name, version;
    ngx_uint_t                  i, k;
    zmq_msg_t                  *copy;
    ksv_writer_t                w;
    ksv_model_status_t         *ms;
    ksv_version_status_t       *vs;
    ngx_http_kserve_pick_t     *pick;
    ngx_http_kserve_routed_t   *rt;
    ngx_http_kserve_variant_t  *mv;

    pick = ctx->pick;

    if (pick == NULL) {
        return;
    }

    pick->start_us = ngx_http_kserve_now_us();

    rt = pick->routed;

    if (pick->sent || rt->mirror < 0) {
        pick->sent = 1;
        return;
    }

    pick->sent = 1;

    if (m->nshm > 0) {
        /* its instance would write into the client's regions */
        return;
    }

    mv = (ngx_http_kserve_variant_t *) rt->variants.elts + rt->mirror;

    if (mv == pick->variant
        || ngx_http_kserve_random32() % 10000 >= rt->mirror_pct)
    {
        return;
    }

    /*
     * A shadow INFER of the same inputs to the mirror's version, chosen
     * as for any request: its own header, the input frames shared
     * (zmq_msg_copy counts references, the buffers are freed with the
     * last), no entry in the reply table, so its reply is dropped on
     * arrival and the client never waits for it.
     */

    ms = ngx_http_kserve_find_model(b, &mv->model);
    if (ms == NULL) {
        return;
    }

    vs = mv->version.len ? ngx_http_kserve_find_version(ms, mv->version_n)
                         : ngx_http_kserve_ready_version(ms);

    if (vs == NULL || vs->state != KSV_VERSION_READY) {
        return;
    }

    copy = ngx_palloc(r->pool, nframes * sizeof(zmq_msg_t));
    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);

    if (copy == NULL || p == NULL) {
        return;
    }

    name = m->model_name;
    version = m->model_version;

    m->model_name = ms->config.name;
    m->model_version.data = (char *) p;
    m->model_version.len = (uint32_t) (ngx_sprintf(p, "%L", vs->version) - p);

    id = ngx_http_kserve_next_id();

    ksv_writer_init(&w);
    ksv_encode_infer(&w, id, m);

    m->model_name = name;
    m->model_version = version;

    if (ngx_http_kserve_writer_frame(&copy[0], &w) != NGX_OK) {
        return;
    }

    for (i = 1; i < nframes; i++) {
        zmq_msg_init(&copy[i]);

        if (zmq_msg_copy(&copy[i], &frames[i]) != 0) {
            for (k = 0; k <= i; k++) {
                zmq_msg_close(&copy[k]);
            }

            return;
        }
    }

    if (ngx_http_kserve_send_oneway(b, ms, vs, copy, nframes,
                                    r->connection->log)
        != NGX_OK)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&mv->shm->mirrored, 1);
    mv->delta.mirrored++;
}


/* ---- the reply ---------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_route_done(ngx_http_request_t *r, ngx_http_kserve_ctx_t *ctx,
    zmq_msg_t *frames, ngx_uint_t nframes)
{
    uint64_t                    us;
    ksv_error_t                 e;
    ksv_prefix_t                prefix;
    ksv_reader_t                rd;
    ngx_http_kserve_pick_t     *pick;
    ngx_http_kserve_routed_t   *rt;
    ngx_http_kserve_variant_t  *v, *fb;
    ngx_http_kserve_outcome_e   outcome;

    pick = ctx->pick;
    rt = pick->routed;
    v = pick->variant;

    us = ngx_http_kserve_now_us() - pick->start_us;

    /* failures: the deadline, and errors the worker maps to 5xx */

    outcome = NGX_HTTP_KSERVE_SUCCESS;

    if (frames == NULL) {
        outcome = NGX_HTTP_KSERVE_FAILURE;

    } else {
        ksv_reader_init(&rd, zmq_msg_data(&frames[0]),
                        zmq_msg_size(&frames[0]));

        if (ksv_read_prefix(&rd, &prefix) == 0
            && prefix.kind == KSV_MSG_ERROR)
        {
            if (ksv_decode_error(&rd, &e) != 0
                || ksv_status_http(e.code) >= NGX_HTTP_INTERNAL_SERVER_ERROR)
            {
                outcome = NGX_HTTP_KSERVE_FAILURE;

            } else {
                outcome = NGX_HTTP_KSERVE_CLIENT_ERROR;
            }
        }
    }

    (void) nframes;

    ngx_http_kserve_account(v, outcome, us);
    ngx_http_kserve_health(r, rt, v, outcome);
    ngx_http_kserve_pick_release(pick);

    if (outcome != NGX_HTTP_KSERVE_FAILURE || pick->retried
        || rt->fallback < 0)
    {
        return NGX_OK;
    }

    fb = (ngx_http_kserve_variant_t *) rt->variants.elts + rt->fallback;

    if (fb == v) {
        return NGX_OK;
    }

    /* once, on the fallback: inference is taken as idempotent */

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "kserve: route \"%V\": \"%V\" failed, retrying on "
                  "fallback \"%V\"", &rt->name, &v->name, &fb->name);

    (void) ngx_atomic_fetch_add(&v->shm->retries, 1);
    v->delta.retries++;

    pick->retried = 1;
    ngx_http_kserve_pick_acquire(pick, fb);
    ngx_http_kserve_route_use(&ctx->route, fb);

    return NGX_AGAIN;
}


static void
ngx_http_kserve_account(ngx_http_kserve_variant_t *v,
    ngx_http_kserve_outcome_e outcome, uint64_t us)
{
    size_t                          bucket;
    ngx_http_kserve_variant_shm_t  *shm;

    shm = v->shm;
    bucket = ksv_route_bucket(us);

    (void) ngx_atomic_fetch_add(&shm->requests, 1);
    (void) ngx_atomic_fetch_add(&shm->latency_us, us);
    (void) ngx_atomic_fetch_add(&shm->buckets[bucket], 1);

    v->delta.requests++;
    v->delta.latency_us += us;
    v->delta.buckets[bucket]++;

    switch (outcome) {

    case NGX_HTTP_KSERVE_SUCCESS:
        (void) ngx_atomic_fetch_add(&shm->success, 1);
        v->delta.success++;

        /* a racy read-modify-write: an EWMA forgives a lost sample */
        shm->ewma_us = ksv_route_ewma(shm->ewma_us, us);
        break;

    case NGX_HTTP_KSERVE_FAILURE:
        (void) ngx_atomic_fetch_add(&shm->failure, 1);
        v->delta.failure++;
        break;

    default: /* NGX_HTTP_KSERVE_CLIENT_ERROR */
        (void) ngx_atomic_fetch_add(&shm->client_error, 1);
        v->delta.client_error++;
    }
}


/*
 * max_fails failures in a row, counted by every nginx worker together,
 * eject the variant for eject_time, doubled for each ejection since its
 * last success, at most the maximum.  The nginx worker whose failure
 * reaches the count ejects; any answer that is not a failure resets it.
 */

static void
ngx_http_kserve_health(ngx_http_request_t *r, ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_variant_t *v, ngx_http_kserve_outcome_e outcome)
{
    ngx_msec_t                      t;
    ngx_atomic_uint_t               fails, level;
    ngx_http_kserve_variant_shm_t  *shm;

    shm = v->shm;

    if (outcome != NGX_HTTP_KSERVE_FAILURE) {
        if (shm->fails) {
            shm->fails = 0;
        }

        if (shm->level) {
            shm->level = 0;
        }

        return;
    }

    if (rt->max_fails == 0) {
        return;
    }

    fails = ngx_atomic_fetch_add(&shm->fails, 1) + 1;

    if (fails != rt->max_fails) {
        return;
    }

    level = ngx_atomic_fetch_add(&shm->level, 1) + 1;
    t = (ngx_msec_t) ksv_route_eject_ms(rt->eject_time, rt->eject_max, level);

    shm->ejected_until = ngx_current_msec + t;
    shm->fails = 0;

    (void) ngx_atomic_fetch_add(&shm->ejections, 1);
    v->delta.ejections++;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "kserve: route \"%V\": variant \"%V\" ejected for %M ms "
                  "after %ui failures in a row (ejection %uA in a row)",
                  &rt->name, &v->name, t, rt->max_fails, level);
}


/* ---- the response -------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_route_header(ngx_http_request_t *r)
{
    ngx_table_elt_t        *h;
    ngx_http_kserve_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);

    if (ctx == NULL || ctx->pick == NULL || ctx->pick->variant == NULL) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = ngx_http_kserve_variant_header;
    h->value = ctx->pick->variant->name;

    return NGX_OK;
}


/* ---- Redis weights ------------------------------------------------------- */

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
    u_char                     *p, *last, buf[512];
    int64_t                     w;
    ngx_int_t                   i;
    ngx_uint_t                  k, sum, *weights, stack[16];
    ngx_http_kserve_variant_t  *v;

    if (n == 0 && !rt->redis_weights) {
        return;     /* no hash, and none before: nginx.conf's still */
    }

    v = rt->variants.elts;

    weights = stack;

    if (rt->nrouted > 16) {
        weights = ngx_alloc(rt->nrouted * sizeof(ngx_uint_t), log);
        if (weights == NULL) {
            return;
        }
    }

    for (k = 0; k < rt->nrouted; k++) {
        weights[k] = v[k].conf_weight;
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
                          KSV_ROUTE_MAX_WEIGHT, v[i].weight);
            weights[i] = v[i].weight;
            continue;
        }

        weights[i] = (ngx_uint_t) w;
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

    p = buf;
    last = buf + sizeof(buf);

    for (k = 0; k < rt->nrouted; k++) {
        if (v[k].weight != weights[k]) {
            v[k].weight = weights[k];
            rt->peers[k].current = 0;
        }

        p = ngx_slprintf(p, last, " %V=%ui", &v[k].name, v[k].weight);
    }

    rt->redis_weights = (n > 0);

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "kserve: route \"%V\" weights%*s (%s)", &rt->name,
                  p - buf, buf,
                  n ? "from redis" : "nginx.conf, no hash in redis");

done:

    if (weights != stack) {
        ngx_free(weights);
    }
}


/* ---- /metrics ------------------------------------------------------------ */

static void
ngx_http_kserve_route_labels(ksv_writer_t *w, const char *family,
    ngx_http_kserve_routed_t *rt, ngx_http_kserve_variant_t *v)
{
    ksv_put_bytes(w, family, ngx_strlen(family));
    ksv_json_lit(w, "{route=");
    ksv_prom_label_value(w, rt->name.data, rt->name.len);
    ksv_json_lit(w, ",variant=");
    ksv_prom_label_value(w, v->name.data, v->name.len);
}


void
ngx_http_kserve_route_metrics(ngx_http_request_t *r, ksv_writer_t *w)
{
    u_char                        buf[NGX_ATOMIC_T_LEN + 8], *p;
    ngx_uint_t                    f, i, k, b;
    ngx_msec_t                    now;
    ngx_atomic_uint_t             n, total;
    ngx_http_kserve_routed_t    **rt;
    ngx_http_kserve_variant_t    *v;
    ngx_http_kserve_routing_t    *routing;
    ngx_http_kserve_main_conf_t  *kmcf;

    static const char  *outcomes[] = { "success", "failure", "client_error" };

    static struct {
        const char  *name;
        const char  *type;
        const char  *help;
        size_t       offset;
    } simple[] = {
        { "ngx_kserve_route_outstanding", "gauge",
          "Requests of a routed name in flight to the variant",
          offsetof(ngx_http_kserve_variant_shm_t, outstanding) },
        { "ngx_kserve_route_ejections_total", "counter",
          "Times the variant was ejected after max_fails failures in a row",
          offsetof(ngx_http_kserve_variant_shm_t, ejections) },
        { "ngx_kserve_route_retries_total", "counter",
          "Failed requests of the variant sent again to the fallback",
          offsetof(ngx_http_kserve_variant_shm_t, retries) },
        { "ngx_kserve_route_mirrored_total", "counter",
          "Shadow copies sent to the variant as a mirror",
          offsetof(ngx_http_kserve_variant_shm_t, mirrored) }
    };

    kmcf = ngx_http_get_module_main_conf(r, ngx_http_kserve_module);
    routing = kmcf->routing;

    if (routing == NULL || routing->zone == NULL) {
        return;
    }

    rt = routing->routes.elts;

#define ngx_http_kserve_each_variant                                         \
    for (i = 0; i < routing->routes.nelts; i++)                              \
        for (k = 0, v = rt[i]->variants.elts; k < rt[i]->variants.nelts;     \
             k++)

    ksv_prom_family(w, "ngx_kserve_route_requests_total", "counter",
                    "Inference requests of a routed name answered by the "
                    "variant (failure: 5xx, unavailable or deadline; "
                    "client_error: 4xx from the model)");

    ngx_http_kserve_each_variant {
        for (f = 0; f < 3; f++) {
            n = f == 0 ? v[k].shm->success
                       : f == 1 ? v[k].shm->failure : v[k].shm->client_error;

            ngx_http_kserve_route_labels(w, "ngx_kserve_route_requests_total",
                                         rt[i], &v[k]);
            ksv_json_lit(w, ",outcome=\"");
            ksv_put_bytes(w, outcomes[f], ngx_strlen(outcomes[f]));
            ksv_json_lit(w, "\"} ");
            ksv_json_u64(w, n);
            ksv_put_u8(w, '\n');
        }
    }

    ksv_prom_family(w, "ngx_kserve_route_duration_seconds", "histogram",
                    "Time from sending a routed request to the variant to "
                    "its reply");

    ngx_http_kserve_each_variant {
        total = 0;

        for (b = 0; b <= KSV_ROUTE_NBUCKETS; b++) {
            total += v[k].shm->buckets[b];

            if (b == KSV_ROUTE_NBUCKETS) {
                p = ngx_cpymem(buf, "+Inf", 4);

            } else {
                p = ngx_sprintf(buf, "%ui.%03ui",
                                (ngx_uint_t) ksv_route_buckets_ms[b] / 1000,
                                (ngx_uint_t) ksv_route_buckets_ms[b] % 1000);

                /* shortest: "0.005", "2.5", "10" */

                while (p[-1] == '0') {
                    p--;
                }

                if (p[-1] == '.') {
                    p--;
                }
            }

            ngx_http_kserve_route_labels(w,
                                  "ngx_kserve_route_duration_seconds_bucket",
                                  rt[i], &v[k]);
            ksv_json_lit(w, ",le=\"");
            ksv_put_bytes(w, buf, p - buf);
            ksv_json_lit(w, "\"} ");
            ksv_json_u64(w, total);
            ksv_put_u8(w, '\n');
        }

        n = v[k].shm->latency_us;
        p = ngx_sprintf(buf, "%uA.%06uA", n / 1000000, n % 1000000);

        ngx_http_kserve_route_labels(w, "ngx_kserve_route_duration_seconds_sum",
                                     rt[i], &v[k]);
        ksv_json_lit(w, "} ");
        ksv_put_bytes(w, buf, p - buf);
        ksv_put_u8(w, '\n');

        ngx_http_kserve_route_labels(w,
                                     "ngx_kserve_route_duration_seconds_count",
                                     rt[i], &v[k]);
        ksv_json_lit(w, "} ");
        ksv_json_u64(w, total);
        ksv_put_u8(w, '\n');
    }

    for (f = 0; f < sizeof(simple) / sizeof(simple[0]); f++) {
        ksv_prom_family(w, simple[f].name, simple[f].type, simple[f].help);

        ngx_http_kserve_each_variant {
            n = *(ngx_atomic_t *) ((u_char *) v[k].shm + simple[f].offset);

            ngx_http_kserve_route_labels(w, simple[f].name, rt[i], &v[k]);
            ksv_json_lit(w, "} ");
            ksv_json_u64(w, n);
            ksv_put_u8(w, '\n');
        }
    }

    now = ngx_current_msec;

    ksv_prom_family(w, "ngx_kserve_route_ejected", "gauge",
                    "Whether the variant is ejected now (1) or not (0)");

    ngx_http_kserve_each_variant {
        ngx_http_kserve_route_labels(w, "ngx_kserve_route_ejected",
                                     rt[i], &v[k]);
        ksv_json_lit(w, "} ");
        ksv_put_u8(w, (ngx_msec_int_t) (v[k].shm->ejected_until - now) > 0
                      ? '1' : '0');
        ksv_put_u8(w, '\n');
    }

    ksv_prom_family(w, "ngx_kserve_route_weight", "gauge",
                    "The variant's weight in effect in the nginx worker "
                    "that answered the scrape (nginx.conf or Redis; "
                    "fallback and mirror only: 0)");

    ngx_http_kserve_each_variant {
        ngx_http_kserve_route_labels(w, "ngx_kserve_route_weight",
                                     rt[i], &v[k]);
        ksv_json_lit(w, "} ");
        ksv_json_u64(w, v[k].weight);
        ksv_put_u8(w, '\n');
    }

#undef ngx_http_kserve_each_variant
}


/* ---- helpers ------------------------------------------------------------- */

static uint64_t
ngx_http_kserve_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static uint32_t
ngx_http_kserve_random32(void)
{
    /* random() gives 31 bits */
    return ((uint32_t) ngx_random() << 16) ^ (uint32_t) ngx_random();
}
