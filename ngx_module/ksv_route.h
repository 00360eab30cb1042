/*
 * ngx_kserve: choosing a variant of a routed model name (nginx-free, so
 * it can be unit-tested on its own; ngx_http_kserve_route*.c hold the
 * configuration, the health state and the request hooks, see
 * ngx_http_kserve_route.h).
 *
 * The caller describes each variant as a ksv_route_peer_t and asks one
 * of the strategies below for an index.  A peer takes part when its
 * weight is positive and it is usable (not ejected, ready); every
 * function returns -1 when none does, so the caller can fall back or
 * panic as configured.
 *
 * Weighted choices map a 32-bit point onto cumulative weight ranges laid
 * out in the peers' order.  A uniform random point gives the weighted
 * random split; a hash of a sticky key gives split_clients' behaviour: the
 * same key always lands in the same range, and when the weights change
 * only keys near a moved boundary change variant.  A sticky key's ranges
 * cover every peer with a weight, usable or not, so while one is ejected
 * only its own keys move (and come back after).
 */

#ifndef KSV_ROUTE_H
#define KSV_ROUTE_H

#include <stddef.h>
#include <stdint.h>


typedef struct {
    uint32_t   weight;          /* effective weight, 0: no traffic */
    uint32_t   usable;          /* 0: ejected or not ready */
    int64_t    current;         /* smooth WRR state, kept by the caller */
    uint64_t   outstanding;     /* requests in flight now */
    uint64_t   ewma_us;         /* latency EWMA, 0: no sample yet */
} ksv_route_peer_t;


/* nginx's ngx_murmur_hash2(), as split_clients uses it. */
uint32_t ksv_murmur2(const void *data, size_t len);

/* The peer whose cumulative weight range holds point (0 .. 2^32-1). */
int ksv_route_weighted(const ksv_route_peer_t *p, size_t n, uint32_t point);

/*
 * The same, with the point a MurmurHash2 of the sticky key, over the
 * ranges of every peer with a weight; a key whose peer is not usable
 * takes a second point (a function of the first) among the usable ones.
 */
int ksv_route_sticky(const ksv_route_peer_t *p, size_t n, const void *key,
    size_t len);

/*
 * nginx's smooth weighted round robin (ngx_http_upstream_round_robin.c):
 * every peer's current weight grows by its weight, the largest wins and
 * loses the total.  Weights 5,1,1 give a a b a c a a.
 */
int ksv_route_swrr(ksv_route_peer_t *p, size_t n);

/*
 * The peer with the fewest requests in flight per unit of weight; ties
 * are split by weight with the random point.
 */
int ksv_route_least(const ksv_route_peer_t *p, size_t n, uint32_t point);

/*
 * The peer with the lowest latency EWMA.  A peer without a sample yet is
 * tried first, and about 1 request in 20 (chosen by the low byte of
 * point) goes by weight instead, so a peer that got faster is noticed.
 */
int ksv_route_fastest(const ksv_route_peer_t *p, size_t n, uint32_t point);

/* The EWMA after one more sample, weight 1/8 for the new sample. */
uint64_t ksv_route_ewma(uint64_t ewma, uint64_t sample);

/*
 * How long the level-th ejection in a row lasts: base doubled for each
 * earlier one, never more than max (level 0 counts as 1).
 */
uint64_t ksv_route_eject_ms(uint64_t base, uint64_t max, uint64_t level);

/*
 * A weight as Redis or nginx.conf spells it: decimal digits only,
 * 0 .. KSV_ROUTE_MAX_WEIGHT.  Returns -1 for anything else.
 */
#define KSV_ROUTE_MAX_WEIGHT  1000000

int64_t ksv_route_parse_weight(const char *s, size_t len);

/*
 * The latency histogram of every variant (Redis stats and /metrics):
 * upper bounds in milliseconds; bucket KSV_ROUTE_NBUCKETS holds the rest.
 */
#define KSV_ROUTE_NBUCKETS  11

extern const uint32_t  ksv_route_buckets_ms[KSV_ROUTE_NBUCKETS];

/* The bucket of a latency in microseconds: 0 .. KSV_ROUTE_NBUCKETS. */
size_t ksv_route_bucket(uint64_t us);

/*
 * The q-quantile (0 < q <= 1) in milliseconds of counts per bucket
 * (KSV_ROUTE_NBUCKETS + 1 of them, not cumulative), interpolated
 * linearly inside its bucket as Prometheus' histogram_quantile() does;
 * in the last, unbounded bucket: the largest bound.  -1 when every
 * count is 0.
 */
double ksv_route_quantile(const uint64_t *counts, double q);

#endif /* KSV_ROUTE_H */
