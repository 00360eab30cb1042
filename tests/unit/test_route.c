/*
 * ngx_kserve: variant selection (ngx_module/ksv_route.c).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_route.h"
#include "ksv_test.h"


static void
peers(ksv_route_peer_t *p, size_t n, const uint32_t *w)
{
    size_t  i;

    memset(p, 0, n * sizeof(ksv_route_peer_t));

    for (i = 0; i < n; i++) {
        p[i].weight = w[i];
        p[i].usable = 1;
    }
}


static void
test_murmur(void)
{
    /* the values nginx's ngx_murmur_hash2() gives */
    CHECK(ksv_murmur2("", 0) == 0);
    CHECK(ksv_murmur2("a", 1) == ksv_murmur2("a", 1));
    CHECK(ksv_murmur2("abcd", 4) != ksv_murmur2("abce", 4));
}


static void
test_distribution(void)
{
    int               i, c[2];
    uint32_t          w[] = { 90, 10 };
    ksv_route_peer_t  p[2];

    peers(p, 2, w);
    c[0] = c[1] = 0;

    for (i = 0; i < 10000; i++) {
        c[ksv_route_weighted(p, 2, rnd32())]++;
    }

    /* 90/10 within +-2 points */
    CHECK(c[0] >= 8800 && c[0] <= 9200);
    CHECK(c[0] + c[1] == 10000);

    /* the range edges */
    CHECK(ksv_route_weighted(p, 2, 0) == 0);
    CHECK(ksv_route_weighted(p, 2, 0xffffffff) == 1);

    /* a weight of 0 or an unusable peer gets nothing */
    p[1].weight = 0;
    CHECK(ksv_route_weighted(p, 2, 0xffffffff) == 0);
    p[1].weight = 10;
    p[0].usable = 0;
    CHECK(ksv_route_weighted(p, 2, 0) == 1);
    p[1].usable = 0;
    CHECK(ksv_route_weighted(p, 2, 0) == -1);
    CHECK(ksv_route_swrr(p, 2) == -1);
    CHECK(ksv_route_least(p, 2, 0) == -1);
    CHECK(ksv_route_fastest(p, 2, 0) == -1);
}


static void
test_swrr(void)
{
    int               i;
    char              seq[16];
    uint32_t          w[] = { 5, 1, 1 };
    uint32_t          w2[] = { 2, 1 };
    ksv_route_peer_t  p[3];

    peers(p, 3, w);

    for (i = 0; i < 14; i++) {
        seq[i] = (char) ('a' + ksv_route_swrr(p, 3));
    }

    seq[14] = '\0';

    /* nginx's interleaving, twice over */
    CHECK(strcmp(seq, "aabacaaaabacaa") == 0);

    peers(p, 2, w2);

    for (i = 0; i < 6; i++) {
        seq[i] = (char) ('a' + ksv_route_swrr(p, 2));
    }

    seq[6] = '\0';
    CHECK(strcmp(seq, "abaaba") == 0);

    /* an ejected peer is skipped without disturbing the others' order */
    peers(p, 3, w);
    p[1].usable = 0;

    for (i = 0; i < 6; i++) {
        seq[i] = (char) ('a' + ksv_route_swrr(p, 3));
    }

    seq[6] = '\0';
    CHECK(strcmp(seq, "aaacaa") == 0);
}


static void
test_sticky(void)
{
    int               i, first[1000], again, moved, wrong;
    char              key[32];
    size_t            len;
    uint32_t          w[] = { 90, 10 }, w2[] = { 80, 20 };
    ksv_route_peer_t  p[2];

    peers(p, 2, w);

    for (i = 0; i < 1000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%d", i);
        first[i] = ksv_route_sticky(p, 2, key, len);
    }

    /* stable: the same key, the same variant */
    again = 0;

    for (i = 0; i < 1000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%d", i);
        again += (ksv_route_sticky(p, 2, key, len) == first[i]);
    }

    CHECK(again == 1000);

    /* 90/10 -> 80/20: only keys of v1 near the boundary move, to v2 */
    peers(p, 2, w2);
    moved = 0;
    wrong = 0;

    for (i = 0; i < 1000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%d", i);

        if (ksv_route_sticky(p, 2, key, len) != first[i]) {
            moved++;
            wrong += (first[i] != 0);
        }
    }

    CHECK(wrong == 0);
    CHECK(moved > 50 && moved < 150);     /* about 10% of the keys */
}


/*
 * An ejected variant takes only its own keys with it: over 1,000 keys
 * and three variants 50/30/20, ejecting the first moves its keys (and no
 * other: ranges over the usable ones only would shift the second's onto
 * the third's) to the others in about their 30:20 proportion, and they
 * all come back when it does.
 */
static void
test_sticky_ejection(void)
{
    int               i, first[1000], now, moved, stayed, to[3];
    char              key[32];
    size_t            len;
    uint32_t          w[] = { 50, 30, 20 };
    ksv_route_peer_t  p[3];

    peers(p, 3, w);

    for (i = 0; i < 1000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%d", i);
        first[i] = ksv_route_sticky(p, 3, key, len);
    }

    p[0].usable = 0;
    moved = 0;
    stayed = 0;
    to[0] = to[1] = to[2] = 0;

    for (i = 0; i < 1000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%d", i);
        now = ksv_route_sticky(p, 3, key, len);

        if (first[i] == 0) {
            moved++;
            to[now]++;

        } else {
            stayed += (now == first[i]);
        }
    }

    CHECK(moved > 400 && moved < 600);          /* about 50% */
    CHECK(stayed == 1000 - moved);              /* nobody else moved */
    CHECK(to[0] == 0);
    CHECK(to[1] > to[2] && to[2] > moved / 4);  /* 30:20 among the rest */

    /* the same ejected key always goes the same way */
    for (i = 0; i < 1000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%d", i);
        now = ksv_route_sticky(p, 3, key, len);
        CHECK(now == ksv_route_sticky(p, 3, key, len));
    }

    /* back: every key where it was */
    p[0].usable = 1;
    stayed = 0;

    for (i = 0; i < 1000; i++) {
        len = (size_t) snprintf(key, sizeof(key), "user-%d", i);
        stayed += (ksv_route_sticky(p, 3, key, len) == first[i]);
    }

    CHECK(stayed == 1000);

    /* nothing usable: -1, the caller's fallback or panic */
    p[0].usable = p[1].usable = p[2].usable = 0;
    CHECK(ksv_route_sticky(p, 3, "k", 1) == -1);
}


static void
test_least(void)
{
    int               i, c[2];
    uint32_t          w[] = { 1, 1 };
    ksv_route_peer_t  p[2];

    peers(p, 2, w);

    p[0].outstanding = 3;
    CHECK(ksv_route_least(p, 2, rnd32()) == 1);

    p[1].outstanding = 7;
    CHECK(ksv_route_least(p, 2, rnd32()) == 0);

    /* ties split evenly */
    p[0].outstanding = p[1].outstanding = 0;
    c[0] = c[1] = 0;

    for (i = 0; i < 1000; i++) {
        c[ksv_route_least(p, 2, rnd32())]++;
    }

    CHECK(c[0] > 400 && c[1] > 400);

    /* per unit of weight: 3 of weight 4 beats 1 of weight 1 */
    p[0].weight = 4;
    p[0].outstanding = 3;
    p[1].outstanding = 1;
    CHECK(ksv_route_least(p, 2, rnd32()) == 0);
}


static void
test_fastest(void)
{
    int               i, c[2];
    uint32_t          w[] = { 1, 1 };
    ksv_route_peer_t  p[2];

    peers(p, 2, w);

    p[0].ewma_us = 500;
    CHECK(ksv_route_fastest(p, 2, 0x100) == 1);    /* no sample yet */

    p[1].ewma_us = 900;
    c[0] = c[1] = 0;

    for (i = 0; i < 2000; i++) {
        c[ksv_route_fastest(p, 2, rnd32())]++;
    }

    /* mostly the fast one, a few explore */
    CHECK(c[0] > 1800 && c[1] > 5);

    CHECK(ksv_route_ewma(0, 100) == 100);
    CHECK(ksv_route_ewma(100, 900) == 200);
    CHECK(ksv_route_ewma(900, 100) == 800);
}


static void
test_helpers(void)
{
    CHECK(ksv_route_eject_ms(1000, 30000, 0) == 1000);
    CHECK(ksv_route_eject_ms(1000, 30000, 1) == 1000);
    CHECK(ksv_route_eject_ms(1000, 30000, 2) == 2000);
    CHECK(ksv_route_eject_ms(1000, 30000, 4) == 8000);
    CHECK(ksv_route_eject_ms(1000, 30000, 10) == 30000);
    CHECK(ksv_route_eject_ms(1000, 30000, 1000) == 30000);

    CHECK(ksv_route_parse_weight("0", 1) == 0);
    CHECK(ksv_route_parse_weight("50", 2) == 50);
    CHECK(ksv_route_parse_weight("1000000", 7) == 1000000);
    CHECK(ksv_route_parse_weight("1000001", 7) == -1);
    CHECK(ksv_route_parse_weight("-5", 2) == -1);
    CHECK(ksv_route_parse_weight("abc", 3) == -1);
    CHECK(ksv_route_parse_weight("5.5", 3) == -1);
    CHECK(ksv_route_parse_weight("", 0) == -1);
    CHECK(ksv_route_parse_weight("99999999999", 11) == -1);

    CHECK(ksv_route_bucket(0) == 0);
    CHECK(ksv_route_bucket(5000) == 0);
    CHECK(ksv_route_bucket(5001) == 1);
    CHECK(ksv_route_bucket(10000000) == KSV_ROUTE_NBUCKETS - 1);
    CHECK(ksv_route_bucket(10000001) == KSV_ROUTE_NBUCKETS);
}


/* quantiles of the latency buckets (5, 10, 25, ... 10000 ms, overflow) */
static void
test_quantile(void)
{
    uint64_t  c[KSV_ROUTE_NBUCKETS + 1];

    memset(c, 0, sizeof(c));
    CHECK(ksv_route_quantile(c, 0.5) == -1);            /* nothing yet */

    /* 100 in (5, 10]: the median half-way, p99 near the top */
    c[1] = 100;
    CHECK(ksv_route_quantile(c, 0.5) == 7.5);
    CHECK(ksv_route_quantile(c, 0.99) > 9.9
          && ksv_route_quantile(c, 0.99) <= 10);

    /* 90 in [0, 5], 10 in (100, 250]: p50 low, p99 in the slow bucket */
    memset(c, 0, sizeof(c));
    c[0] = 90;
    c[5] = 10;
    CHECK(ksv_route_quantile(c, 0.5) < 5);
    CHECK(ksv_route_quantile(c, 0.9) == 5);
    CHECK(ksv_route_quantile(c, 0.99) == 100 + 150 * 0.9);

    /* beyond the last bound: the last bound */
    memset(c, 0, sizeof(c));
    c[KSV_ROUTE_NBUCKETS] = 3;
    CHECK(ksv_route_quantile(c, 0.5) == 10000);
}


int
main(void)
{
    test_murmur();
    test_distribution();
    test_swrr();
    test_sticky();
    test_sticky_ejection();
    test_quantile();
    test_least();
    test_fastest();
    test_helpers();

    KSV_TEST_END();
}
