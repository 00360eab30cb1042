
/*
 * Copyright (C) ngx_kserve authors
 *
 * Metrics: the gateway's own counters, shared by every nginx worker
 * process, and the Prometheus endpoint (kserve_metrics) that renders
 * them together with the model statistics the worker keeps.
 *
 * The counters sit in one shared memory zone and are only ever touched
 * with atomic adds: a request costs a few ngx_atomic_fetch_add() calls
 * in the log phase and no lock.  A scrape reads them without a lock too,
 * so a scrape that races with requests may see one counter a request
 * ahead of another; each counter on its own never goes back.  They
 * survive a reload (the zone is reused), not a restart.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_metrics.h"
#include "ngx_http_kserve_route.h"
#include "ngx_http_kserve_rollout.h"
#include "ksv_json_write.h"
#include "ksv_prometheus.h"
#include "ngx_http_kserve_shm.h"


/* statuses 100..599 by code; [0] counts anything else */
#define NGX_HTTP_KSERVE_STATUS_MAX   600

#define NGX_HTTP_KSERVE_ZONE_SIZE    (64 * 1024)


/* upper bounds of the duration histogram, in milliseconds */
static ngx_msec_t  ngx_http_kserve_buckets[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

#define NGX_HTTP_KSERVE_NBUCKETS                                             \
    (sizeof(ngx_http_kserve_buckets) / sizeof(ngx_msec_t))


typedef struct {
    ngx_atomic_t                 requests[NGX_HTTP_KSERVE_STATUS_MAX];
    ngx_atomic_t                 inflight;

    /* not cumulative: [NBUCKETS] holds those above the last bound */
    ngx_atomic_t                 duration[NGX_HTTP_KSERVE_NBUCKETS + 1];
    ngx_atomic_t                 duration_ms;
} ngx_http_kserve_counters_t;


static ngx_int_t ngx_http_kserve_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_kserve_metrics_log(ngx_http_request_t *r);
static ngx_http_kserve_counters_t *ngx_http_kserve_counters(
    ngx_http_request_t *r);
static void ngx_http_kserve_metrics_done(ngx_http_kserve_pending_t *p,
    zmq_msg_t *frames, ngx_uint_t nframes);
static ngx_int_t ngx_http_kserve_metrics_send(ngx_http_request_t *r,
    ksv_stats_t *stats);
static void ngx_http_kserve_metrics_gateway(ngx_http_request_t *r,
    ksv_writer_t *w);
static void ngx_http_kserve_metrics_routes(ngx_http_request_t *r,
    ksv_writer_t *w);
static void ngx_http_kserve_route_labels(ksv_writer_t *w,
    const char *family, ngx_http_kserve_routed_t *rt,
    ngx_http_kserve_variant_t *v);
static u_char *ngx_http_kserve_seconds(u_char *buf, ngx_atomic_uint_t ms);


static ngx_str_t  ngx_http_kserve_zone_name = ngx_string("kserve_metrics");
static ngx_str_t  ngx_http_kserve_prom_type =
    ngx_string(KSV_PROM_CONTENT_TYPE);


/* ---- configuration ------------------------------------------------------ */

ngx_int_t
ngx_http_kserve_metrics_zone(ngx_conf_t *cf,
    ngx_http_kserve_main_conf_t *kmcf)
{
    ngx_shm_zone_t  *shm_zone;

    if (kmcf->metrics_zone != NULL) {
        return NGX_OK;
    }

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_kserve_zone_name,
                                     NGX_HTTP_KSERVE_ZONE_SIZE,
                                     &ngx_http_kserve_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (shm_zone->data != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared zone \"%V\" is already used",
                           &ngx_http_kserve_zone_name);
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_kserve_metrics_init_zone;
    shm_zone->data = kmcf;

    kmcf->metrics_zone = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t             *shpool;
    ngx_http_kserve_counters_t  *counters;

    /* a reload keeps counting where the previous cycle was */

    if (data != NULL) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    counters = ngx_slab_calloc(shpool, sizeof(ngx_http_kserve_counters_t));
    if (counters == NULL) {
        return NGX_ERROR;
    }

    shpool->data = counters;
    shm_zone->data = counters;

    return NGX_OK;
}


ngx_int_t
ngx_http_kserve_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_kserve_metrics_log;

    return NGX_OK;
}


/* ---- counting ------------------------------------------------------------ */

static ngx_http_kserve_counters_t *
ngx_http_kserve_counters(ngx_http_request_t *r)
{
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_get_module_main_conf(r, ngx_http_kserve_module);

    return kmcf->metrics_zone->data;
}


void
ngx_http_kserve_metrics_inflight(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx)
{
    ngx_http_kserve_counters_t  *counters;

    counters = ngx_http_kserve_counters(r);

    (void) ngx_atomic_fetch_add(&counters->inflight, 1);
    ctx->inflight = 1;
}


void
ngx_http_kserve_metrics_answered(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx)
{
    ngx_http_kserve_counters_t  *counters;

    /* once per request: at the reply, the deadline, or the log phase
     * of a request whose client went away first */

    if (ctx == NULL || !ctx->inflight) {
        return;
    }

    counters = ngx_http_kserve_counters(r);

    (void) ngx_atomic_fetch_add(&counters->inflight, (ngx_atomic_int_t) -1);
    ctx->inflight = 0;
}


/*
 * Counts every request that a kserve_pass location finished, by the
 * status it was logged with (499 for a client that went away), and the
 * duration of inference requests as nginx's $request_time measures it.
 */

static ngx_int_t
ngx_http_kserve_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                   status, i;
    ngx_time_t                  *tp;
    ngx_msec_int_t               ms;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_counters_t  *counters;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    if (klcf->backend == NULL || klcf->metrics) {
        return NGX_OK;
    }

    counters = ngx_http_kserve_counters(r);
    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);

    ngx_http_kserve_metrics_answered(r, ctx);

    if (r->err_status) {
        status = r->err_status;

    } else {
        status = r->headers_out.status;
    }

    if (status < 100 || status >= NGX_HTTP_KSERVE_STATUS_MAX) {
        status = 0;
    }

    (void) ngx_atomic_fetch_add(&counters->requests[status], 1);

    if (ctx == NULL || ctx->uri.endpoint != NGX_HTTP_KSERVE_INFER) {
        return NGX_OK;
    }

    tp = ngx_timeofday();

    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    for (i = 0; i < NGX_HTTP_KSERVE_NBUCKETS; i++) {
        if ((ngx_msec_t) ms <= ngx_http_kserve_buckets[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&counters->duration[i], 1);
    (void) ngx_atomic_fetch_add(&counters->duration_ms, ms);

    return NGX_OK;
}


/* ---- the Prometheus endpoint ------------------------------------------ */

ngx_int_t
ngx_http_kserve_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    all;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_backend_t   *b;
    ngx_http_kserve_loc_conf_t  *klcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    b = klcf->backend;

    /* kserve_api_keys: Prometheus sends one as a bearer token */

    if (klcf->api_keys != NULL
        && ngx_http_kserve_keys_check(r, klcf->api_keys,
                                      &klcf->api_key_header)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "kserve: no valid API key in \"%V\"",
                      &klcf->api_key_header);
        return NGX_HTTP_UNAUTHORIZED;
    }

    /* a worker that is not there leaves only the gateway's own figures */

    if (ngx_http_kserve_index_state(b) == NGX_HTTP_KSERVE_INDEX_NONE) {
        return ngx_http_kserve_metrics_send(r, NULL);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->uri.endpoint = NGX_HTTP_KSERVE_METRICS;
    ngx_http_set_ctx(r, ctx, ngx_http_kserve_module);

    ctx->pending.request = r;
    ctx->pending.handler = ngx_http_kserve_metrics_done;

    ngx_str_null(&all);

    rc = ngx_http_kserve_send_stats(b, &ctx->pending, &all, &all,
                                    klcf->timeout);

    if (rc != NGX_OK) {
        return ngx_http_kserve_metrics_send(r, NULL);
    }

    return ngx_http_kserve_wait_reply(r);
}


static void
ngx_http_kserve_metrics_done(ngx_http_kserve_pending_t *p, zmq_msg_t *frames,
    ngx_uint_t nframes)
{
    ngx_int_t                    rc;
    ksv_error_t                  e;
    ksv_stats_t                  stats, *sp;
    ngx_http_request_t          *r;
    ngx_http_kserve_loc_conf_t  *klcf;

    r = p->request;
    sp = NULL;

    if (frames == NULL) {
        klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "kserve: no statistics from the worker within %M ms",
                      klcf->timeout);

    } else {
        rc = ngx_http_kserve_stats_reply(r->pool, frames, nframes, &stats,
                                         &e);

        if (rc == NGX_OK) {
            sp = &stats;

        } else if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "kserve: worker refused statistics: %*s",
                          (size_t) e.message.len, e.message.data);

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "kserve: malformed reply to STATS (%ui frames)",
                          nframes);
        }
    }

    /* strings point into the frames: render before they are closed */

    ngx_http_finalize_request(r, ngx_http_kserve_metrics_send(r, sp));
}


static ngx_int_t
ngx_http_kserve_metrics_send(ngx_http_request_t *r, ksv_stats_t *stats)
{
    ksv_writer_t  w;

    ksv_writer_init(&w);

    if (stats != NULL) {
        ksv_prom_model_stats(&w, stats);
    }

    ngx_http_kserve_metrics_gateway(r, &w);

    return ngx_http_kserve_send_writer(r, NGX_HTTP_OK,
                                       &ngx_http_kserve_prom_type, &w);
}


static void
ngx_http_kserve_metrics_gateway(ngx_http_request_t *r, ksv_writer_t *w)
{
    u_char                        buf[NGX_ATOMIC_T_LEN + 8], *p;
    ngx_str_t                    *ep;
    ngx_uint_t                    i, k;
    ngx_atomic_uint_t             n, total, ms;
    ngx_http_kserve_backend_t   **b;
    ngx_http_kserve_counters_t   *counters;
    ngx_http_kserve_main_conf_t  *kmcf;

    kmcf = ngx_http_get_module_main_conf(r, ngx_http_kserve_module);
    counters = kmcf->metrics_zone->data;

    ksv_prom_family(w, "ngx_kserve_requests_total", "counter",
                    "Requests finished by kserve_pass locations in all "
                    "nginx workers, by HTTP status (\"other\": outside "
                    "100-599)");

    for (i = 0; i < NGX_HTTP_KSERVE_STATUS_MAX; i++) {
        n = counters->requests[i];

        if (n == 0) {
            continue;
        }

        if (i == 0) {
            p = ngx_cpymem(buf, "other", 5);

        } else {
            p = ngx_sprintf(buf, "%ui", i);
        }

        ksv_json_lit(w, "ngx_kserve_requests_total{status=\"");
        ksv_put_bytes(w, buf, p - buf);
        ksv_json_lit(w, "\"} ");
        ksv_json_u64(w, n);
        ksv_put_u8(w, '\n');
    }

    ksv_prom_family(w, "ngx_kserve_inflight_requests", "gauge",
                    "Inference requests sent to kserve-worker by all nginx "
                    "workers and not answered yet");

    ksv_json_lit(w, "ngx_kserve_inflight_requests ");
    ksv_json_i64(w, (ngx_atomic_int_t) counters->inflight);
    ksv_put_u8(w, '\n');

    ksv_prom_family(w, "ngx_kserve_infer_duration_seconds", "histogram",
                    "Duration of inference requests in nginx, from the "
                    "first byte read to the log phase (millisecond "
                    "resolution)");

    total = 0;

    for (i = 0; i <= NGX_HTTP_KSERVE_NBUCKETS; i++) {
        total += counters->duration[i];

        if (i == NGX_HTTP_KSERVE_NBUCKETS) {
            p = ngx_cpymem(buf, "+Inf", 4);

        } else {
            p = ngx_http_kserve_seconds(buf, ngx_http_kserve_buckets[i]);
        }

        ksv_json_lit(w, "ngx_kserve_infer_duration_seconds_bucket{le=\"");
        ksv_put_bytes(w, buf, p - buf);
        ksv_json_lit(w, "\"} ");
        ksv_json_u64(w, total);
        ksv_put_u8(w, '\n');
    }

    ms = counters->duration_ms;
    p = ngx_http_kserve_seconds(buf, ms);

    ksv_json_lit(w, "ngx_kserve_infer_duration_seconds_sum ");
    ksv_put_bytes(w, buf, p - buf);
    ksv_json_lit(w, "\nngx_kserve_infer_duration_seconds_count ");
    ksv_json_u64(w, total);
    ksv_put_u8(w, '\n');

    /* this nginx worker's view: each polls the index on its own */

    ksv_prom_family(w, "ngx_kserve_worker_up", "gauge",
                    "Whether kserve-worker answers this nginx worker's "
                    "index polls (1) or not (0), per kserve_pass endpoint "
                    "list");

    b = kmcf->backends.elts;

    for (i = 0; i < kmcf->backends.nelts; i++) {
        ksv_json_lit(w, "ngx_kserve_worker_up{endpoint=\"");

        ep = b[i]->endpoints.elts;

        for (k = 0; k < b[i]->endpoints.nelts; k++) {
            if (k) {
                ksv_put_u8(w, ',');
            }

            ksv_prom_escape(w, ep[k].data, ep[k].len);
        }

        ksv_json_lit(w, "\"} ");
        ksv_put_u8(w, ngx_http_kserve_index_state(b[i])
                      == NGX_HTTP_KSERVE_INDEX_FRESH ? '1' : '0');
        ksv_put_u8(w, '\n');
    }

    /* routed names: per variant (kserve_route) */

    ngx_http_kserve_metrics_routes(r, w);

    /* shared memory regions (Triton's extensions) */

    ngx_http_kserve_shm_metrics(w);
}


/*
 * Routed names (kserve_route), per variant: the counters of the shared
 * zone "kserve_route" (ngx_http_kserve_route_health.c adds to them).
 */

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


static void
ngx_http_kserve_metrics_routes(ngx_http_request_t *r, ksv_writer_t *w)
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

            p = b == KSV_ROUTE_NBUCKETS
                ? ngx_cpymem(buf, "+Inf", 4)
                : ngx_http_kserve_seconds(buf, ksv_route_buckets_ms[b]);

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
        ksv_put_u8(w, ngx_http_kserve_variant_in_service(&v[k], now)
                      ? '0' : '1');
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

    /* rollouts: their share, steps and rollbacks */

    ngx_http_kserve_rollout_metrics(w, routing);
}


/* milliseconds as seconds, shortest: 5 -> "0.005", 2500 -> "2.5" */

static u_char *
ngx_http_kserve_seconds(u_char *buf, ngx_atomic_uint_t ms)
{
    u_char  *p;

    p = ngx_sprintf(buf, "%uA.%03uA", ms / 1000, ms % 1000);

    while (p[-1] == '0') {
        p--;
    }

    if (p[-1] == '.') {
        p--;
    }

    return p;
}
