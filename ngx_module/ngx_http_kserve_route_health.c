
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
