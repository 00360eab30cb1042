
/*
 * Copyright (C) ngx_kserve authors
 *
 * GET /v2/routes and GET /v2/routes/NAME: what a routed name does now,
 * as JSON (docs/protocol.md).  Weights are those of the nginx worker
 * that answers (each polls Redis on its own); health, outstanding and
 * the window's figures come from the shared zone, the same from every
 * worker.  The strategy and the rollout write their own objects through
 * the hooks below.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"
#include "ngx_http_kserve_rollout.h"
#include "ksv_json_write.h"


static void ngx_http_kserve_status_route(ksv_writer_t *w,
    ngx_http_kserve_routed_t *rt, ngx_http_kserve_backend_t *b);
static void ngx_http_kserve_status_variant(ksv_writer_t *w,
    ngx_http_kserve_routed_t *rt, ngx_http_kserve_variant_t *v,
    ngx_uint_t k, ngx_http_kserve_backend_t *b);
static void ngx_http_kserve_status_window(ksv_writer_t *w,
    ngx_http_kserve_variant_t *v);
static void ngx_http_kserve_status_strategy(ksv_writer_t *w,
    ngx_http_kserve_routed_t *rt);
static void ngx_http_kserve_status_rollout(ksv_writer_t *w,
    ngx_http_kserve_routed_t *rt);
static void ngx_http_kserve_status_ms(ksv_writer_t *w, double ms);


static ngx_str_t  ngx_http_kserve_status_type =
    ngx_string("application/json");


ngx_int_t
ngx_http_kserve_route_status(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char                       *p, msg[NGX_MAX_ERROR_STR];
    ngx_uint_t                    i, status;
    ksv_writer_t                  w;
    ngx_http_kserve_routed_t    **rt, *one;
    ngx_http_kserve_routing_t    *routing;
    ngx_http_kserve_loc_conf_t   *klcf;
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_get_module_main_conf(r, ngx_http_kserve_module);
    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    routing = kmcf->routing;

    ksv_writer_init(&w);
    status = NGX_HTTP_OK;

    if (name->len == 0) {
        ksv_json_lit(&w, "{\"routes\":[");

        if (routing != NULL && routing->zone != NULL) {
            rt = routing->routes.elts;

            for (i = 0; i < routing->routes.nelts; i++) {
                if (i) {
                    ksv_put_u8(&w, ',');
                }

                ngx_http_kserve_status_route(&w, rt[i], klcf->backend);
            }
        }

        ksv_json_lit(&w, "]}");

    } else {
        one = (routing != NULL && routing->zone != NULL)
              ? ngx_http_kserve_routed(routing, name) : NULL;

        if (one != NULL) {
            ngx_http_kserve_status_route(&w, one, klcf->backend);

        } else {
            p = ngx_snprintf(msg, sizeof(msg),
                             "Request for unknown route: '%V' is not found",
                             name);
            ksv_json_error(&w, (char *) msg, p - msg);
            status = NGX_HTTP_NOT_FOUND;
        }
    }

    return ngx_http_kserve_send_writer(r, status,
                                       &ngx_http_kserve_status_type, &w);
}


static void
ngx_http_kserve_status_route(ksv_writer_t *w, ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_backend_t *b)
{
    ngx_uint_t                  k;
    ngx_http_kserve_variant_t  *v;

    v = rt->variants.elts;

    ksv_json_lit(w, "{\"name\":");
    ksv_json_string(w, rt->name.data, rt->name.len);

    ksv_json_lit(w, ",\"strategy\":");
    ngx_http_kserve_status_strategy(w, rt);

    ksv_json_lit(w, ",\"rollout\":");
    ngx_http_kserve_status_rollout(w, rt);

    ksv_json_lit(w, ",\"redis\":{\"key\":");
    ksv_json_string(w, rt->redis_key.data, rt->redis_key.len);
    ksv_json_lit(w, ",\"weights\":");

    if (rt->redis_weights) {
        ksv_json_lit(w, "true}");

    } else {
        ksv_json_lit(w, "false}");
    }

    ksv_json_lit(w, ",\"window_seconds\":");
    ksv_json_f64(w, (double) rt->window / 1000);

    ksv_json_lit(w, ",\"variants\":[");

    for (k = 0; k < rt->variants.nelts; k++) {
        if (k) {
            ksv_put_u8(w, ',');
        }

        ngx_http_kserve_status_variant(w, rt, &v[k], k, b);
    }

    ksv_json_lit(w, "]}");
}


static void
ngx_http_kserve_status_variant(ksv_writer_t *w, ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_variant_t *v, ngx_uint_t k, ngx_http_kserve_backend_t *b)
{
    ngx_uint_t                      ready, in_service;
    ngx_msec_t                      now, left;
    ngx_time_t                     *tp;
    ngx_http_kserve_variant_shm_t  *shm;

    shm = v->shm;
    now = ngx_current_msec;

    ksv_json_lit(w, "{\"name\":");
    ksv_json_string(w, v->name.data, v->name.len);

    ksv_json_lit(w, ",\"role\":");

    if (v->routable) {
        ksv_json_lit(w, "\"variant\"");

    } else if ((ngx_int_t) k == rt->fallback) {
        ksv_json_lit(w, "\"fallback\"");

    } else {
        ksv_json_lit(w, "\"mirror\"");
    }

    if ((ngx_int_t) k == rt->fallback && v->routable) {
        ksv_json_lit(w, ",\"fallback\":true");
    }

    /* configured: nginx.conf; redis: the hash's field; effective: used */

    ksv_json_lit(w, ",\"weight\":{\"configured\":");
    ksv_json_u64(w, v->conf_weight);
    ksv_json_lit(w, ",\"redis\":");

    if (v->routable && v->redis_weight >= 0) {
        ksv_json_u64(w, (uint64_t) v->redis_weight);

    } else {
        ksv_json_lit(w, "null");
    }

    ksv_json_lit(w, ",\"effective\":");
    ksv_json_u64(w, v->routable ? v->weight : 0);
    ksv_put_u8(w, '}');

    in_service = ngx_http_kserve_variant_in_service(v, now);
    ready = ngx_http_kserve_variant_ready(b, v);

    ksv_json_lit(w, ",\"ready\":");

    if (ready) {
        ksv_json_lit(w, "true");

    } else {
        ksv_json_lit(w, "false");
    }

    ksv_json_lit(w, ",\"usable\":");

    if (ready && in_service) {
        ksv_json_lit(w, "true");

    } else {
        ksv_json_lit(w, "false");
    }

    /* ejected: for how long still, and until when (Unix ms) */

    ksv_json_lit(w, ",\"ejected\":");

    if (in_service) {
        ksv_json_lit(w, "null");

    } else {
        left = shm->ejected_until - now;

        ksv_json_lit(w, "{\"remaining_ms\":");
        ksv_json_u64(w, left);
        ksv_json_lit(w, ",\"until_unix_ms\":");
        tp = ngx_timeofday();
        ksv_json_u64(w, (uint64_t) tp->sec * 1000 + tp->msec + left);
        ksv_json_lit(w, ",\"in_a_row\":");
        ksv_json_u64(w, shm->level);
        ksv_put_u8(w, '}');
    }

    ksv_json_lit(w, ",\"outstanding\":");
    ksv_json_u64(w, shm->outstanding);

    ksv_json_lit(w, ",\"consecutive_failures\":");
    ksv_json_u64(w, shm->fails);

    ksv_json_lit(w, ",\"window\":");
    ngx_http_kserve_status_window(w, v);

    ksv_json_lit(w, ",\"total\":{\"requests\":");
    ksv_json_u64(w, shm->requests);
    ksv_json_lit(w, ",\"success\":");
    ksv_json_u64(w, shm->success);
    ksv_json_lit(w, ",\"failure\":");
    ksv_json_u64(w, shm->failure);
    ksv_json_lit(w, ",\"client_error\":");
    ksv_json_u64(w, shm->client_error);
    ksv_json_lit(w, ",\"ejections\":");
    ksv_json_u64(w, shm->ejections);
    ksv_json_lit(w, ",\"retries\":");
    ksv_json_u64(w, shm->retries);
    ksv_json_lit(w, ",\"mirrored\":");
    ksv_json_u64(w, shm->mirrored);
    ksv_json_lit(w, "}}");
}


/*
 * The last complete window (or the first, still going on): counts, the
 * success rate among answers that are not client errors, latency
 * quantiles from the histogram buckets.
 */

static void
ngx_http_kserve_status_window(ksv_writer_t *w, ngx_http_kserve_variant_t *v)
{
    uint64_t                  judged;
    ngx_http_kserve_window_t  win;

    ngx_http_kserve_route_window(v, &win);

    ksv_json_lit(w, "{\"complete\":");

    if (win.complete) {
        ksv_json_lit(w, "true");

    } else {
        ksv_json_lit(w, "false");
    }

    ksv_json_lit(w, ",\"seconds\":");
    ksv_json_f64(w, (double) win.length / 1000);
    ksv_json_lit(w, ",\"ended_seconds_ago\":");
    ksv_json_f64(w, (double) win.age / 1000);

    ksv_json_lit(w, ",\"requests\":");
    ksv_json_u64(w, win.requests);
    ksv_json_lit(w, ",\"success\":");
    ksv_json_u64(w, win.success);
    ksv_json_lit(w, ",\"failure\":");
    ksv_json_u64(w, win.failure);
    ksv_json_lit(w, ",\"client_error\":");
    ksv_json_u64(w, win.client_error);

    judged = win.success + win.failure;

    ksv_json_lit(w, ",\"success_rate\":");

    if (judged) {
        ksv_json_f64(w, (double) win.success / (double) judged);

    } else {
        ksv_json_lit(w, "null");
    }

    ksv_json_lit(w, ",\"latency_ms\":");

    if (win.requests == 0) {
        ksv_json_lit(w, "null}");
        return;
    }

    ksv_json_lit(w, "{\"mean\":");
    ngx_http_kserve_status_ms(w, (double) win.latency_us / 1000
                                 / (double) win.requests);
    ksv_json_lit(w, ",\"p50\":");
    ngx_http_kserve_status_ms(w, ksv_route_quantile(win.buckets, 0.50));
    ksv_json_lit(w, ",\"p90\":");
    ngx_http_kserve_status_ms(w, ksv_route_quantile(win.buckets, 0.90));
    ksv_json_lit(w, ",\"p99\":");
    ngx_http_kserve_status_ms(w, ksv_route_quantile(win.buckets, 0.99));
    ksv_json_lit(w, "}}");
}


/* hook: the strategy's own members after its name */

static void
ngx_http_kserve_status_strategy(ksv_writer_t *w, ngx_http_kserve_routed_t *rt)
{
    const ngx_http_kserve_strategy_t  *s;

    s = &ngx_http_kserve_strategies[rt->strategy];

    ksv_json_lit(w, "{\"name\":");
    ksv_json_string(w, s->name.data, s->name.len);

    if (s->status != NULL) {
        s->status(rt, w);
    }

    ksv_put_u8(w, '}');
}


/* the rollout's object (ngx_http_kserve_rollout.c); none: null */

static void
ngx_http_kserve_status_rollout(ksv_writer_t *w, ngx_http_kserve_routed_t *rt)
{
    ngx_http_kserve_rollout_json(w, rt);
}


/* milliseconds to 3 decimals */

static void
ngx_http_kserve_status_ms(ksv_writer_t *w, double ms)
{
    ksv_json_f64(w, (double) (int64_t) (ms * 1000 + 0.5) / 1000);
}
