/*
 * ngx_kserve: adaptive weights of a routed name (`strategy adaptive`),
 * nginx-free so that it can be unit-tested with a seeded generator;
 * ngx_http_kserve_adaptive.c holds the timer, the shared zone and Redis.
 *
 * Every interval the variants' shares of traffic are re-derived from
 * what the last window of requests says about each:
 *
 *  1. Quality.  A request is good when it succeeded within the SLO, bad
 *     when it failed (5xx, deadline); a success later than the SLO is
 *     good by slo / latency and bad by the rest (twice the SLO: half a
 *     success), so that when every variant misses the SLO (one set too
 *     tight, a loaded host) the faster one still wins; 4xx answers are
 *     the client's and count for nothing.  Over the window, variant i
 *     has g_i good and b_i bad requests, fractions included.
 *
 *  2. Thompson sampling, by Monte Carlo.  `draws` times, every eligible
 *     variant draws a success rate from its posterior Beta(1 + g_i,
 *     1 + b_i); each variant whose draw is within `tolerance` of the
 *     best one wins that draw.  P_i, the share of draws variant i won,
 *     is the chance that it is among the best.  Its target is
 *     proportional to P_i times its operator weight (nginx.conf or
 *     Redis: the prior), so variants that cannot be told apart, because
 *     they are equally good or because nothing is known yet, keep the
 *     operator's split instead of chasing noise: only a difference
 *     larger than the tolerance, seen in enough requests to stand out of
 *     the posterior's spread, moves traffic.
 *
 *  3. A floor.  Every eligible variant keeps at least min_share of the
 *     traffic, so a variant that got better is seen (if the variants
 *     cannot all have it, each gets 1/n).  Eligible: usable (not
 *     ejected, ready) with an operator weight above 0; the others get
 *     nothing at once.
 *
 *  4. A bounded step.  share += rate * (target - share): each interval a
 *     share moves a fraction `rate` (0.1, the reference design's
 *     learning rate) of its distance to the target, never more.  A
 *     variant that returns from ejection starts again at the floor.
 *
 * Shares are fractions summing to 1 over the eligible variants; the
 * weights the request path uses are shares in units of 1/10000
 * (KSV_ADAPT_SCALE), at least 1 for an eligible variant.
 *
 * The window is a ring of snapshots of cumulative counters taken once
 * per interval: window = now - the snapshot nslots intervals ago, so the
 * request path only ever increments counters.
 */

#ifndef KSV_ADAPTIVE_H
#define KSV_ADAPTIVE_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


#define KSV_ADAPT_SCALE         10000   /* a weight of 10000 = all traffic */
#define KSV_ADAPT_MAX_SLOTS     64      /* window / interval, at most */
#define KSV_ADAPT_MAX_DRAWS     100000
#define KSV_ADAPT_MAX_VARIANTS  256     /* beyond: left out */


/* what a window of requests says about one variant */
typedef struct {
    uint64_t   good;            /* succeeded within the SLO */
    uint64_t   slow;            /* succeeded, later than the SLO */
    uint64_t   credit;          /* sum of slo / latency of slow, * 1000 */
    uint64_t   failure;         /* 5xx or deadline */
    uint64_t   latency_us;      /* sum over good + slow + failure */
} ksv_adapt_counts_t;


/* cumulative snapshots, one per interval, nslots + 1 kept */
typedef struct {
    uint32_t             nslots;
    uint32_t             head;          /* the newest */
    uint32_t             filled;        /* snapshots kept, <= nslots + 1 */
    ksv_adapt_counts_t   snap[KSV_ADAPT_MAX_SLOTS + 1];
} ksv_adapt_ring_t;


typedef struct {
    double     min_share;       /* 0 .. 1, e.g. 0.05 */
    double     rate;            /* 0 < rate <= 1, e.g. 0.1 */
    double     tolerance;       /* success rates this close tie */
    uint32_t   draws;           /* Monte Carlo draws per derivation */
} ksv_adapt_conf_t;


typedef struct {
    ksv_adapt_counts_t   window;    /* in: this node's and the others' */
    uint32_t             prior;     /* in: operator weight, 0 drains */
    uint32_t             usable;    /* in: not ejected, ready */
    double               share;     /* in/out: the traffic share */
    double               target;    /* out: this interval's target */
} ksv_adapt_variant_t;


/*
 * A variant's derived state as the deriving nginx worker leaves it in
 * the shared zone for the others (one writer; a reader that meets a
 * half-written update sees old and new figures of the same scale).
 */
typedef struct {
    uint64_t             derived_at;    /* the writer's clock, ms; 0: never */
    uint64_t             weight;        /* of KSV_ADAPT_SCALE */
    uint64_t             share_ppm;     /* share * 1e6 */
    uint64_t             target_ppm;
    ksv_adapt_counts_t   window;        /* every node's, summed */
} ksv_adapt_shared_t;


/* a variant's window as another node published it (see below) */
typedef struct {
    const char          *name;      /* into the parsed text */
    size_t               len;
    ksv_adapt_counts_t   counts;
} ksv_adapt_named_t;


/* xorshift64*: seeded by the caller, so every result reproduces */
uint64_t ksv_adapt_random(uint64_t *state);

/* the credit of a success later than the SLO, in 1/1000: slo / latency */
uint64_t ksv_adapt_credit(uint64_t slo_us, uint64_t us);

/* uniform in (0, 1), and Beta(a, b) for a, b >= 1 */
double ksv_adapt_uniform(uint64_t *state);
double ksv_adapt_beta(uint64_t *state, double a, double b);


void ksv_adapt_ring_init(ksv_adapt_ring_t *r, uint32_t nslots);

/*
 * One interval's snapshot of the cumulative counters; *window gets the
 * counts since the snapshot nslots pushes ago (since the first one while
 * the ring fills).  Counters that went back (a zone that was reset)
 * restart the ring.
 */
void ksv_adapt_ring_push(ksv_adapt_ring_t *r, const ksv_adapt_counts_t *cum,
    ksv_adapt_counts_t *window);

void ksv_adapt_add(ksv_adapt_counts_t *to, const ksv_adapt_counts_t *c);


/*
 * Shares from the operator's weights, for the first interval: eligible
 * variants by prior, floored at min_share.
 */
void ksv_adapt_start(const ksv_adapt_conf_t *conf, ksv_adapt_variant_t *v,
    size_t n);

/*
 * One interval: targets by Thompson sampling, floored, and the shares a
 * bounded step toward them.  Returns the number of eligible variants
 * (0: nothing eligible, shares left as they were).
 */
size_t ksv_adapt_derive(const ksv_adapt_conf_t *conf, ksv_adapt_variant_t *v,
    size_t n, uint64_t *rng);

/* share as a request-path weight: 0 .. KSV_ADAPT_SCALE, >= 1 if share > 0 */
uint32_t ksv_adapt_weight(double share);


/*
 * A node's windows as it publishes them to Redis, one line per variant
 * after a header:
 *
 *     ksv1 TIME_MS
 *     VARIANT GOOD SLOW CREDIT FAILURE LATENCY_US
 *     ...
 *
 * format returns the length written (0: does not fit).  parse accepts
 * exactly that shape (decimal numbers of at most 19 digits without
 * leading zeros, one space
 * between fields, "\n" after each line, names without spaces, at most
 * max variants) and returns the number of variants, or -1.
 */
size_t ksv_adapt_format(char *buf, size_t size, uint64_t time_ms,
    const ksv_adapt_named_t *v, size_t n);
int ksv_adapt_parse(const char *s, size_t len, uint64_t *time_ms,
    ksv_adapt_named_t *v, size_t max);


/*
 * The members of the route status' "strategy" object after its name
 * (GET /v2/routes: {"name":"adaptive" + these + "}"), each after a ',':
 *   ,"interval_ms":..,"window_ms":..,"slo_ms":..,
 *    "min_share":..,"rate":..,"tolerance":..,"derived_ms_ago":..,
 *    "variants":[{"name":..,"share":..,"target":..,"weight":..,
 *                 "window":{"requests":..,"good":..,"slow":..,
 *                           "credit":..,"failure":..,"success_rate":..,
 *                           "within_slo":..,"mean_latency_ms":..}},..]
 * share and target are fractions, weight the request path's (of
 * KSV_ADAPT_SCALE); success_rate counts late successes, within_slo not;
 * both and the latency are null for a window without requests.
 * derived_ms_ago < 0: never derived yet (written as null).
 */
typedef struct {
    uint64_t   interval_ms;
    uint64_t   window_ms;
    uint64_t   slo_ms;
    int64_t    derived_ms_ago;
} ksv_adapt_timing_t;

void ksv_adapt_json(ksv_writer_t *w, const ksv_adapt_conf_t *conf,
    const ksv_adapt_timing_t *t, const ksv_str_t *names,
    const ksv_adapt_variant_t *v, const uint32_t *weights, size_t n);

#endif /* KSV_ADAPTIVE_H */
