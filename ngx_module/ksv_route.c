/*
 * ngx_kserve: variant selection strategies; see ksv_route.h.
 */

#include "ksv_route.h"


#define ksv_route_in(p)  ((p).weight > 0 && (p).usable)


/* the same bounds as the gateway's own duration histogram */
const uint32_t  ksv_route_buckets_ms[KSV_ROUTE_NBUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};


uint32_t
ksv_murmur2(const void *data, size_t len)
{
    uint32_t        h, k;
    const uint8_t  *d;

    d = data;
    h = 0 ^ (uint32_t) len;

    while (len >= 4) {
        k  = d[0];
        k |= (uint32_t) d[1] << 8;
        k |= (uint32_t) d[2] << 16;
        k |= (uint32_t) d[3] << 24;

        k *= 0x5bd1e995;
        k ^= k >> 24;
        k *= 0x5bd1e995;

        h *= 0x5bd1e995;
        h ^= k;

        d += 4;
        len -= 4;
    }

    switch (len) {
    case 3:
        h ^= (uint32_t) d[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t) d[1] << 8;
        /* fall through */
    case 1:
        h ^= d[0];
        h *= 0x5bd1e995;
    }

    h ^= h >> 13;
    h *= 0x5bd1e995;
    h ^= h >> 15;

    return h;
}


int
ksv_route_weighted(const ksv_route_peer_t *p, size_t n, uint32_t point)
{
    size_t    i;
    uint64_t  total, target, sum;

    total = 0;

    for (i = 0; i < n; i++) {
        if (ksv_route_in(p[i])) {
            total += p[i].weight;
        }
    }

    if (total == 0) {
        return -1;
    }

    /* point scaled onto 0 .. total-1: no modulo bias, no floating point */
    target = ((uint64_t) point * total) >> 32;
    sum = 0;

    for (i = 0; i < n; i++) {
        if (!ksv_route_in(p[i])) {
            continue;
        }

        sum += p[i].weight;

        if (target < sum) {
            return (int) i;
        }
    }

    return -1;  /* not reached */
}


/*
 * The key's range is laid out over every variant with a weight, usable
 * or not, so a variant that goes away takes only its own keys with it.
 * Those keys then take a second point, a function of the same hash,
 * among the usable variants by weight: the same key always moves to the
 * same place while the set of usable variants stays the same, and comes
 * back when its variant does.
 */

int
ksv_route_sticky(const ksv_route_peer_t *p, size_t n, const void *key,
    size_t len)
{
    int       i;
    size_t    k;
    uint32_t  h;
    uint64_t  total, target, sum;

    h = ksv_murmur2(key, len);

    total = 0;

    for (k = 0; k < n; k++) {
        total += p[k].weight;
    }

    if (total == 0) {
        return -1;
    }

    target = ((uint64_t) h * total) >> 32;
    sum = 0;
    i = -1;

    for (k = 0; k < n; k++) {
        sum += p[k].weight;

        if (target < sum) {
            i = (int) k;
            break;
        }
    }

    if (i >= 0 && p[i].usable) {
        return i;
    }

    /* murmur2's finalizer once more: a point apart from the first */

    h ^= 0x9e3779b9;
    h *= 0x5bd1e995;
    h ^= h >> 13;
    h *= 0x5bd1e995;
    h ^= h >> 15;

    return ksv_route_weighted(p, n, h);
}


int
ksv_route_swrr(ksv_route_peer_t *p, size_t n)
{
    int       best;
    size_t    i;
    int64_t   total;

    best = -1;
    total = 0;

    for (i = 0; i < n; i++) {
        if (!ksv_route_in(p[i])) {
            continue;
        }

        p[i].current += p[i].weight;
        total += p[i].weight;

        if (best == -1 || p[i].current > p[best].current) {
            best = (int) i;
        }
    }

    if (best != -1) {
        p[best].current -= total;
    }

    return best;
}


int
ksv_route_least(const ksv_route_peer_t *p, size_t n, uint32_t point)
{
    int       best;
    size_t    i;
    uint64_t  total, target, sum, a, b;

    best = -1;

    /* (outstanding + 1) / weight, compared by cross-multiplication */

    for (i = 0; i < n; i++) {
        if (!ksv_route_in(p[i])) {
            continue;
        }

        if (best == -1) {
            best = (int) i;
            continue;
        }

        a = (p[i].outstanding + 1) * p[best].weight;
        b = (p[best].outstanding + 1) * p[i].weight;

        if (a < b) {
            best = (int) i;
        }
    }

    if (best == -1) {
        return -1;
    }

    /* split the tie among every peer as loaded as the best, by weight */

    total = 0;

    for (i = 0; i < n; i++) {
        if (ksv_route_in(p[i])
            && (p[i].outstanding + 1) * p[best].weight
               == (p[best].outstanding + 1) * p[i].weight)
        {
            total += p[i].weight;
        }
    }

    target = ((uint64_t) point * total) >> 32;
    sum = 0;

    for (i = 0; i < n; i++) {
        if (ksv_route_in(p[i])
            && (p[i].outstanding + 1) * p[best].weight
               == (p[best].outstanding + 1) * p[i].weight)
        {
            sum += p[i].weight;

            if (target < sum) {
                return (int) i;
            }
        }
    }

    return best;
}


int
ksv_route_fastest(const ksv_route_peer_t *p, size_t n, uint32_t point)
{
    int     best;
    size_t  i;

    best = -1;

    for (i = 0; i < n; i++) {
        if (!ksv_route_in(p[i])) {
            continue;
        }

        if (p[i].ewma_us == 0) {
            return (int) i;
        }

        if (best == -1 || p[i].ewma_us < p[best].ewma_us) {
            best = (int) i;
        }
    }

    if (best != -1 && (point & 0xff) < 13) {
        return ksv_route_weighted(p, n, point);
    }

    return best;
}


uint64_t
ksv_route_ewma(uint64_t ewma, uint64_t sample)
{
    if (ewma == 0) {
        return sample ? sample : 1;
    }

    if (sample >= ewma) {
        return ewma + (sample - ewma) / 8;
    }

    ewma -= (ewma - sample) / 8;

    return ewma ? ewma : 1;
}


uint64_t
ksv_route_eject_ms(uint64_t base, uint64_t max, uint64_t level)
{
    uint64_t  t;

    t = base;

    while (level-- > 1 && t < max) {
        t *= 2;
    }

    return t < max ? t : max;
}


int64_t
ksv_route_parse_weight(const char *s, size_t len)
{
    size_t   i;
    int64_t  v;

    if (len == 0 || len > 7) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        v = v * 10 + (s[i] - '0');
    }

    return v <= KSV_ROUTE_MAX_WEIGHT ? v : -1;
}


size_t
ksv_route_bucket(uint64_t us)
{
    size_t  i;

    for (i = 0; i < KSV_ROUTE_NBUCKETS; i++) {
        if (us <= (uint64_t) ksv_route_buckets_ms[i] * 1000) {
            break;
        }
    }

    return i;
}


double
ksv_route_quantile(const uint64_t *counts, double q)
{
    size_t    b;
    double    rank, lower, upper;
    uint64_t  total, below;

    total = 0;

    for (b = 0; b <= KSV_ROUTE_NBUCKETS; b++) {
        total += counts[b];
    }

    if (total == 0) {
        return -1;
    }

    rank = q * (double) total;
    below = 0;

    for (b = 0; b < KSV_ROUTE_NBUCKETS; b++) {
        if ((double) (below + counts[b]) >= rank && counts[b] > 0) {
            lower = b ? ksv_route_buckets_ms[b - 1] : 0;
            upper = ksv_route_buckets_ms[b];

            return lower + (upper - lower) * (rank - (double) below)
                           / (double) counts[b];
        }

        below += counts[b];
    }

    return ksv_route_buckets_ms[KSV_ROUTE_NBUCKETS - 1];
}
