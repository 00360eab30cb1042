/*
 * ngx_kserve instances: the dynamic batcher's decisions (see
 * ksv_batcher.h and the rules in ksv_sched.h).
 */

#include <stddef.h>

#include "ksv_batcher.h"


/* counts are kept in 1/256ths of an arrival, so halving keeps precision */
#define KSV_HIT  256


static int
ksv_is_preferred(const ksv_batch_rules_t *rules, uint32_t rows)
{
    uint32_t  i;

    for (i = 0; i < rules->npreferred; i++) {
        if (rules->preferred[i] == (int32_t) rows) {
            return 1;
        }
    }
    return 0;
}


uint32_t
ksv_batcher_decide(const ksv_batch_rules_t *rules, const uint32_t *rows,
    uint32_t n, int blocked, uint64_t waited_ns, uint64_t gap_ns,
    uint64_t *wait_ns)
{
    int       exceeded;
    uint32_t  i, best, exact, total;
    uint64_t  left;

    *wait_ns = 0;

    best = 0;
    exact = 0;
    total = 0;
    for (i = 0; i < n; i++) {
        /* the batch would outgrow every preferred size: remember the
         * largest prefix within it */
        if (i > 0 && total + rows[i] > rules->max_preferred && best == 0) {
            best = i;
        }
        total += rows[i];
        if (ksv_is_preferred(rules, total)) {
            exact = i + 1;
            best = i + 1;
        }
    }

    exceeded = rules->delay_ns != 0 && waited_ns >= rules->delay_ns;

    if (exact != 0 || (best != 0 && !exceeded)) {
        return exact != 0 ? exact : best;
    }
    if (blocked || total >= rules->max_preferred || exceeded
        || rules->delay_ns == 0)
    {
        return n;
    }

    /* wait only while another request is expected before the delay is
     * up; look again when it no longer is */
    left = rules->delay_ns - waited_ns;
    if (gap_ns >= left) {
        return n;
    }
    *wait_ns = left - gap_ns;
    return 0;
}


void
ksv_arrivals_init(ksv_arrivals_t *a, uint64_t delay_ns, uint64_t now)
{
    a->outstanding = 0;
    a->busy_since = 0;
    a->busy_ns = 0;
    a->hits = 0;
    a->arrivals = 0;
    a->decayed_at = now;
    a->half_life_ns = (uint64_t) KSV_ARRIVAL_HALF_LIFE_MS * 1000000;
    if (16 * delay_ns > a->half_life_ns) {
        a->half_life_ns = 16 * delay_ns;
    }
}


/* Brings the counts up to now: the running busy time is added, and the
 * counts are halved once per half-life gone by. */
static void
ksv_arrivals_sync(ksv_arrivals_t *a, uint64_t now)
{
    uint64_t  k;

    if (a->outstanding > 0 && now > a->busy_since) {
        a->busy_ns += now - a->busy_since;
        a->busy_since = now;
    }
    if (now <= a->decayed_at) {
        return;
    }
    k = (now - a->decayed_at) / a->half_life_ns;
    if (k == 0) {
        return;
    }
    if (k >= 32) {
        a->busy_ns = 0;
        a->hits = 0;
        a->arrivals = 0;
        a->decayed_at = now;
        return;
    }
    a->busy_ns >>= k;
    a->hits >>= k;
    a->arrivals >>= k;
    a->decayed_at += k * a->half_life_ns;
}


void
ksv_arrivals_in(ksv_arrivals_t *a, uint64_t now)
{
    ksv_arrivals_sync(a, now);
    if (a->outstanding > 0) {
        a->hits += KSV_HIT;
    } else {
        a->busy_since = now;
    }
    a->arrivals += KSV_HIT;
    a->outstanding++;
}


void
ksv_arrivals_out(ksv_arrivals_t *a, uint64_t now)
{
    if (a->outstanding == 0) {
        return;
    }
    ksv_arrivals_sync(a, now);
    a->outstanding--;
}


uint64_t
ksv_arrivals_gap(ksv_arrivals_t *a, uint64_t now)
{
    ksv_arrivals_sync(a, now);
    if (a->hits > 0) {
        return a->busy_ns * KSV_HIT / a->hits;
    }
    /* only the request just counted (under one arrival's weight left
     * from before it): a quiet spell ends, maybe with a burst */
    if (a->arrivals < 2 * KSV_HIT) {
        return 0;
    }
    return UINT64_MAX;
}
