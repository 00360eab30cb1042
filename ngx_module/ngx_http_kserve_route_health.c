
/*
 * Copyright (C) ngx_kserve authors
 *
 * The variants' health: the outcome of each reply, the counters it adds
 * to (the shared zone for /metrics, the nginx worker's delta for Redis),
 * and ejection after max_fails failures in a row, counted by every nginx
 * worker together in the shared zone.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"
#include "ksv_status.h"


/* failures: the deadline, and errors the worker maps to 5xx */

ngx_http_kserve_outcome_e
ngx_http_kserve_route_outcome(zmq_msg_t *frames, ngx_uint_t nframes)
{
    ksv_error_t   e;
    ksv_prefix_t  prefix;
    ksv_reader_t  rd;

    if (frames == NULL) {
        return NGX_HTTP_KSERVE_FAILURE;
    }

    /* the first frame says: INFER_OK, or ERROR with a code */

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));

    if (ksv_read_prefix(&rd, &prefix) != 0 || prefix.kind != KSV_MSG_ERROR) {
        return NGX_HTTP_KSERVE_SUCCESS;
    }

    if (ksv_decode_error(&rd, &e) != 0
        || ksv_status_http(e.code) >= NGX_HTTP_INTERNAL_SERVER_ERROR)
    {
        return NGX_HTTP_KSERVE_FAILURE;
    }

    return NGX_HTTP_KSERVE_CLIENT_ERROR;
}


void
ngx_http_kserve_route_account(ngx_http_kserve_variant_t *v,
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

void
ngx_http_kserve_route_health(ngx_log_t *log, ngx_http_kserve_routed_t *rt,
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

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "kserve: route \"%V\": variant \"%V\" ejected for %M ms "
                  "after %ui failures in a row (ejection %uA in a row)",
                  &rt->name, &v->name, t, rt->max_fails, level);
}


ngx_uint_t
ngx_http_kserve_variant_in_service(ngx_http_kserve_variant_t *v,
    ngx_msec_t now)
{
    return (ngx_msec_int_t) (v->shm->ejected_until - now) <= 0;
}


/* ---- windows ------------------------------------------------------------- */

static void ngx_http_kserve_route_window_timer(ngx_event_t *ev);
static void ngx_http_kserve_snapshot(ngx_http_kserve_snapshot_t *s,
    ngx_http_kserve_variant_shm_t *shm, ngx_msec_t start);


ngx_int_t
ngx_http_kserve_route_window_init(ngx_cycle_t *cycle,
    ngx_http_kserve_routed_t *rt)
{
    rt->window_ev.handler = ngx_http_kserve_route_window_timer;
    rt->window_ev.data = rt;
    rt->window_ev.log = cycle->log;
    rt->window_ev.cancelable = 1;

    /* the first window starts when the first nginx worker comes up */

    ngx_http_kserve_route_window_timer(&rt->window_ev);

    return NGX_OK;
}


void
ngx_http_kserve_route_window_exit(ngx_http_kserve_routed_t *rt)
{
    if (rt->window_ev.timer_set) {
        ngx_del_timer(&rt->window_ev);
    }
}


/*
 * Every nginx worker's timer fires about every window; the first to see
 * the current window old enough (9/10 of it: timers drift) claims the
 * rotation with a compare-and-set on its start, the others find it
 * fresh.  Readers take no lock: a snapshot being copied may be read
 * half new, a count or two off for one window.
 */

static void
ngx_http_kserve_route_window_timer(ngx_event_t *ev)
{
    ngx_uint_t                      k;
    ngx_msec_t                      now;
    ngx_atomic_uint_t               start;
    ngx_http_kserve_routed_t       *rt;
    ngx_http_kserve_variant_t      *v;
    ngx_http_kserve_variant_shm_t  *shm;

    rt = ev->data;
    v = rt->variants.elts;
    now = ngx_current_msec;

    for (k = 0; k < rt->variants.nelts; k++) {
        shm = v[k].shm;
        start = shm->last.start;

        if (start != 0 && now - start < rt->window - rt->window / 10) {
            continue;
        }

        if (!ngx_atomic_cmp_set(&shm->last.start, start, now ? now : 1)) {
            continue;
        }

        if (start != 0) {
            shm->before = shm->last;
            shm->before.start = start;
        }

        ngx_http_kserve_snapshot(&shm->last, shm, now ? now : 1);
    }

    ngx_add_timer(ev, rt->window);
}


static void
ngx_http_kserve_snapshot(ngx_http_kserve_snapshot_t *s,
    ngx_http_kserve_variant_shm_t *shm, ngx_msec_t start)
{
    ngx_uint_t  b;

    s->requests = shm->requests;
    s->success = shm->success;
    s->failure = shm->failure;
    s->client_error = shm->client_error;
    s->latency_us = shm->latency_us;

    for (b = 0; b <= KSV_ROUTE_NBUCKETS; b++) {
        s->buckets[b] = shm->buckets[b];
    }

    s->start = start;
}


void
ngx_http_kserve_route_window(ngx_http_kserve_variant_t *v,
    ngx_http_kserve_window_t *w)
{
    ngx_uint_t                      b;
    ngx_msec_t                      now;
    ngx_http_kserve_snapshot_t      from, to;
    ngx_http_kserve_variant_shm_t  *shm;

    shm = v->shm;
    now = ngx_current_msec;

    ngx_memzero(w, sizeof(ngx_http_kserve_window_t));

    if (shm->before.start != 0) {
        from = shm->before;
        to = shm->last;
        w->complete = 1;
        w->age = now - to.start;

    } else {
        /* the first window: from its start (or the zone's) until now */

        from = shm->last;
        ngx_http_kserve_snapshot(&to, shm, now);

        if (from.start == 0) {
            ngx_memzero(&from, sizeof(ngx_http_kserve_snapshot_t));
            from.start = now;
        }
    }

    w->length = to.start - from.start;

#define ngx_http_kserve_delta(f)                                             \
    (to.f >= from.f ? (uint64_t) (to.f - from.f) : 0)

    w->requests = ngx_http_kserve_delta(requests);
    w->success = ngx_http_kserve_delta(success);
    w->failure = ngx_http_kserve_delta(failure);
    w->client_error = ngx_http_kserve_delta(client_error);
    w->latency_us = ngx_http_kserve_delta(latency_us);

    for (b = 0; b <= KSV_ROUTE_NBUCKETS; b++) {
        w->buckets[b] = ngx_http_kserve_delta(buckets[b]);
    }

#undef ngx_http_kserve_delta
}
