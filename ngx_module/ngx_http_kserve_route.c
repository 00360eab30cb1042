
/*
 * Copyright (C) ngx_kserve authors
 *
 * Routed model names on a request's path: a routed name resolved to a
 * variant before the endpoint runs, the clock and the mirror when the
 * INFER is sent, the reply accounted (and retried once on the fallback),
 * the variant named in the response; and the per nginx worker state.
 *
 * The other concerns of routed names have their own files (see
 * ngx_http_kserve_route.h): the block, the choice, health, weights.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"
#include "ngx_http_kserve_redis.h"
#include "ngx_http_kserve_rollout.h"
#include "ksv_json_write.h"


static void ngx_http_kserve_route_use(ngx_http_kserve_uri_t *uri,
    ngx_http_kserve_variant_t *v);
static void ngx_http_kserve_pick_acquire(ngx_http_kserve_pick_t *pick,
    ngx_http_kserve_variant_t *v);
static void ngx_http_kserve_pick_release(void *data);


static ngx_str_t  ngx_http_kserve_variant_header =
    ngx_string("X-KServe-Variant");


/* ---- per nginx worker ---------------------------------------------------- */

ngx_int_t
ngx_http_kserve_route_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                         i, k;
    ngx_http_kserve_routed_t         **rt;
    ngx_http_kserve_variant_t         *v;
    ngx_http_kserve_routing_t         *routing;
    ngx_http_kserve_main_conf_t       *kmcf;
    const ngx_http_kserve_strategy_t  *s;

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
            v[k].redis_weight = -1;
            v[k].base_weight = v[k].conf_weight;
            v[k].weight = v[k].conf_weight;
        }

        s = &ngx_http_kserve_strategies[rt[i]->strategy];

        if (s->init_process != NULL
            && s->init_process(cycle, rt[i]) != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* a rollout: the state its node knew, before the first poll */

        if (ngx_http_kserve_rollout_init_process(cycle, rt[i]) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_kserve_route_effective(rt[i], cycle->log, NULL);

        if (ngx_http_kserve_route_tick_init(cycle, rt[i]) != NGX_OK
            || ngx_http_kserve_route_window_init(cycle, rt[i]) != NGX_OK)
        {
            return NGX_ERROR;
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
    ngx_uint_t                    i;
    ngx_http_kserve_routed_t    **rt;
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_kserve_module);

    if (kmcf == NULL || kmcf->routing == NULL) {
        return;
    }

    rt = kmcf->routing->routes.elts;

    for (i = 0; i < kmcf->routing->routes.nelts; i++) {
        ngx_http_kserve_route_tick_exit(rt[i]);
        ngx_http_kserve_route_window_exit(rt[i]);
    }

    if (kmcf->routing->redis == NULL) {
        return;
    }

    ngx_http_kserve_redis_exit(cycle, kmcf->routing);
}


/* ---- resolving ----------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_route_resolve(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri, ngx_http_kserve_pick_t **pickp)
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

    if (kmcf->routing == NULL || uri->model.len == 0 || uri->version.len) {
        return NGX_DECLINED;
    }

    rt = ngx_http_kserve_routed(kmcf->routing, &uri->model);
    if (rt == NULL) {
        return NGX_DECLINED;
    }

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    v = rt->variants.elts;

    switch (uri->endpoint) {

    case NGX_HTTP_KSERVE_MODEL_METADATA:
    case NGX_HTTP_KSERVE_MODEL_CONFIG:

        /* the variants share one interface: the first speaks for all */

        uri->alias = uri->model;
        ngx_http_kserve_route_use(uri, &v[0]);

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

        ngx_http_kserve_route_use(uri, chosen ? chosen : &v[0]);

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

    chosen = ngx_http_kserve_route_choose(r, rt, klcf->backend);

    pick->routed = rt;
    ngx_http_kserve_pick_acquire(pick, chosen);

    uri->alias = uri->model;
    ngx_http_kserve_route_use(uri, chosen);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "kserve: route \"%V\" chose \"%V\"",
                   &rt->name, &chosen->name);

    *pickp = pick;

    return NGX_OK;
}


static void
ngx_http_kserve_route_use(ngx_http_kserve_uri_t *uri,
    ngx_http_kserve_variant_t *v)
{
    uri->model = v->model;
    uri->version = v->version;
    uri->version_n = v->version_n;
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

    pick->start_us = ngx_http_kserve_route_now_us();

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
        || ngx_http_kserve_route_random32() % 10000 >= rt->mirror_pct)
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
    ngx_http_kserve_pick_t     *pick;
    ngx_http_kserve_routed_t   *rt;
    ngx_http_kserve_variant_t  *v, *fb;
    ngx_http_kserve_outcome_e   outcome;

    pick = ctx->pick;
    rt = pick->routed;
    v = pick->variant;

    us = ngx_http_kserve_route_now_us() - pick->start_us;

    outcome = ngx_http_kserve_route_outcome(frames, nframes);

    ngx_http_kserve_route_account(v, outcome, us);
    ngx_http_kserve_route_health(r->connection->log, rt, v, outcome);
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
    ngx_http_kserve_route_use(&ctx->uri, fb);

    return NGX_AGAIN;
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


/* ---- helpers ------------------------------------------------------------- */

uint64_t
ngx_http_kserve_route_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


uint32_t
ngx_http_kserve_route_random32(void)
{
    /* random() gives 31 bits */
    return ((uint32_t) ngx_random() << 16) ^ (uint32_t) ngx_random();
}
