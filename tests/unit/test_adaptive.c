/*
 * ngx_kserve: adaptive weights (ngx_module/ksv_adaptive.c).
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ksv_adaptive.h"
#include "ksv_json_write.h"
#include "ksv_test.h"


static const ksv_adapt_conf_t  conf = {
    .min_share = 0.05, .rate = 0.1, .tolerance = 0.02, .draws = 1000
};


static void
variants(ksv_adapt_variant_t *v, size_t n, const uint32_t *prior)
{
    size_t  i;

    memset(v, 0, n * sizeof(ksv_adapt_variant_t));

    for (i = 0; i < n; i++) {
        v[i].prior = prior[i];
        v[i].usable = 1;
    }
}


static double
sum_shares(const ksv_adapt_variant_t *v, size_t n)
{
    size_t  i;
    double  s;

    for (i = 0, s = 0.0; i < n; i++) {
        s += v[i].share;
    }

    return s;
}


static void
test_random(void)
{
    int       i, low, bad;
    double    u, sum;
    uint64_t  a, b;

    a = 42;
    b = 42;

    /* the same seed, the same sequence */
    for (i = 0; i < 100; i++) {
        CHECK(ksv_adapt_random(&a) == ksv_adapt_random(&b));
    }

    /* a zero seed is not stuck at zero */
    a = 0;
    CHECK(ksv_adapt_random(&a) != 0 && a != 0);

    low = bad = 0;
    sum = 0.0;

    for (i = 0; i < 100000; i++) {
        u = ksv_adapt_uniform(&b);
        bad += !(u > 0.0 && u < 1.0);
        low += u < 0.5;
        sum += u;
    }

    CHECK(bad == 0);
    CHECK(low > 49000 && low < 51000);
    CHECK(fabs(sum / 100000 - 0.5) < 0.005);
}


static void
test_beta(void)
{
    int       i;
    double    x, sum, sq, mean, var;
    uint64_t  rng;

    rng = 7;
    sum = sq = 0.0;

    for (i = 0; i < 20000; i++) {
        x = ksv_adapt_beta(&rng, 3, 7);
        CHECK(x > 0.0 && x < 1.0);
        sum += x;
        sq += x * x;
    }

    /* Beta(3, 7): mean 0.3, variance 21 / 1100 */
    mean = sum / 20000;
    var = sq / 20000 - mean * mean;
    CHECK(fabs(mean - 0.3) < 0.005);
    CHECK(fabs(var - 21.0 / 1100) < 0.002);

    /* uniform prior, no data: Beta(1, 1) */
    for (i = 0, sum = 0.0; i < 20000; i++) {
        sum += ksv_adapt_beta(&rng, 1, 1);
    }

    CHECK(fabs(sum / 20000 - 0.5) < 0.01);

    /* large counts stay finite and sharp */
    for (i = 0; i < 100; i++) {
        x = ksv_adapt_beta(&rng, 1e6 + 1, 1e4 + 1);
        CHECK(fabs(x - 0.9901) < 0.001);
    }
}


static void
test_ring(void)
{
    int                 i;
    ksv_adapt_ring_t    r;
    ksv_adapt_counts_t  cum, win;

    ksv_adapt_ring_init(&r, 3);
    memset(&cum, 0, sizeof(cum));

    /* 10 good requests per interval: the window holds the last 3 */
    for (i = 1; i <= 10; i++) {
        cum.good += 10;
        cum.failure += (uint64_t) i;
        cum.latency_us += 1000;
        ksv_adapt_ring_push(&r, &cum, &win);

        if (i <= 3) {
            CHECK(win.good == (uint64_t) (i - 1) * 10);

        } else {
            CHECK(win.good == 30);
            /* failures i-2, i-1 and i */
            CHECK(win.failure == (uint64_t) (3 * i - 3));
            CHECK(win.latency_us == 3000);
        }
    }

    /* counters that went back (a new zone): the ring starts over */
    memset(&cum, 0, sizeof(cum));
    cum.good = 5;
    ksv_adapt_ring_push(&r, &cum, &win);
    CHECK(win.good == 0 && win.failure == 0);
    cum.good = 9;
    ksv_adapt_ring_push(&r, &cum, &win);
    CHECK(win.good == 4);

    /* nslots is bounded */
    ksv_adapt_ring_init(&r, 1000);
    CHECK(r.nslots == KSV_ADAPT_MAX_SLOTS);
    ksv_adapt_ring_init(&r, 0);
    CHECK(r.nslots == 1);
}


static void
test_start_and_floor(void)
{
    uint32_t             p3[] = { 100, 1, 0 }, p2[] = { 1, 1 };
    uint32_t             p30[30];
    size_t               i;
    ksv_adapt_variant_t  v[30];

    /* by prior, floored: 100:1 is 95/5; weight 0 gets nothing */
    variants(v, 3, p3);
    ksv_adapt_start(&conf, v, 3);
    CHECK(fabs(v[0].share - 0.95) < 1e-9);
    CHECK(fabs(v[1].share - 0.05) < 1e-9);
    CHECK(v[2].share == 0.0);

    /* an unusable variant gets nothing either */
    variants(v, 2, p2);
    v[0].usable = 0;
    ksv_adapt_start(&conf, v, 2);
    CHECK(v[0].share == 0.0 && fabs(v[1].share - 1.0) < 1e-9);

    /* more variants than the floor allows: each gets 1/n */
    for (i = 0; i < 30; i++) {
        p30[i] = i ? 1 : 1000;
    }

    variants(v, 30, p30);
    ksv_adapt_start(&conf, v, 30);

    for (i = 0; i < 30; i++) {
        CHECK(fabs(v[i].share - 1.0 / 30) < 1e-9);
    }

    /* nothing eligible: derive says so and leaves the shares */
    variants(v, 2, p2);
    v[0].usable = v[1].usable = 0;
    v[0].share = 0.3;
    CHECK(ksv_adapt_derive(&conf, v, 2, &(uint64_t) { 1 }) == 0);
    CHECK(v[0].share == 0.3);
}


static void
test_equal_variants_keep_the_prior(void)
{
    int                  k;
    uint32_t             p[] = { 3, 1 };
    uint64_t             rng;
    ksv_adapt_variant_t  v[2];

    /* as good as each other, known well: the operator's 3:1 stays */
    variants(v, 2, p);
    ksv_adapt_start(&conf, v, 2);
    rng = 1;

    for (k = 0; k < 50; k++) {
        v[0].window.good = 2970;
        v[0].window.failure = 30;
        v[1].window.good = 990;
        v[1].window.failure = 10;
        CHECK(ksv_adapt_derive(&conf, v, 2, &rng) == 2);
        CHECK(fabs(sum_shares(v, 2) - 1.0) < 1e-9);
    }

    CHECK(fabs(v[0].share - 0.75) < 0.05);

    /* no data at all: the prior too */
    memset(&v[0].window, 0, sizeof(v[0].window));
    memset(&v[1].window, 0, sizeof(v[1].window));

    for (k = 0; k < 50; k++) {
        (void) ksv_adapt_derive(&conf, v, 2, &rng);
    }

    CHECK(fabs(v[0].share - 0.75) < 0.05);
}


/*
 * The must-show scenario, simulated: two equal variants at 50/50 take
 * 200 requests a second; interval 1 s, window 3 s.  From t = 10 s the
 * second one is bad (every answer late, or 20 % failures), from
 * t = 40 s good again.
 */

static void
scenario(double bad_fraction, int late)
{
    int                  t, lost_at, back_at;
    double               before, step, low;
    uint32_t             p[] = { 1, 1 }, n;
    uint64_t             rng, bad;
    ksv_adapt_ring_t     ring[2];
    ksv_adapt_counts_t   cum[2], win;
    ksv_adapt_variant_t  v[2];
    size_t               i;

    variants(v, 2, p);
    ksv_adapt_start(&conf, v, 2);
    memset(cum, 0, sizeof(cum));
    ksv_adapt_ring_init(&ring[0], 3);
    ksv_adapt_ring_init(&ring[1], 3);

    rng = 2026;
    before = 0.0;
    lost_at = back_at = -1;
    low = 1.0;

    for (t = 0; t < 120; t++) {

        for (i = 0; i < 2; i++) {
            n = (uint32_t) (200 * v[i].share + 0.5);
            bad = 0;

            if (i == 1 && t >= 10 && t < 40) {
                bad = (uint64_t) (n * bad_fraction + 0.5);
            }

            cum[i].good += n - bad;
            cum[i].latency_us += (uint64_t) n * 30000;

            if (late) {
                /* three times the SLO: a third of a success each */
                cum[i].slow += bad;
                cum[i].credit += bad * ksv_adapt_credit(50000, 150000);
            } else {
                cum[i].failure += bad;
            }

            ksv_adapt_ring_push(&ring[i], &cum[i], &win);
            v[i].window = win;
        }

        step = v[1].share;
        (void) ksv_adapt_derive(&conf, v, 2, &rng);

        /* bounded: at most rate of the way, never under the floor */
        CHECK(fabs(v[1].share - step) <= conf.rate + 1e-9);
        CHECK(v[1].share >= conf.min_share - 1e-9);
        CHECK(fabs(sum_shares(v, 2) - 1.0) < 1e-9);

        if (t == 9) {
            before = v[1].share;
        }

        if (t >= 10 && t < 40) {
            if (lost_at < 0 && v[1].share <= 0.2 * before) {
                lost_at = t - 10;
            }

            if (v[1].share < low) {
                low = v[1].share;
            }
        }

        if (t >= 40 && back_at < 0 && v[1].share >= 0.8 * before) {
            back_at = t - 40;
        }
    }

    printf("  %s %.0f%%: share %.3f before, lost 80%% after %d s, "
           "lowest %.3f, back to 80%% after %d s, %.3f at the end\n",
           late ? "late" : "failing", bad_fraction * 100, before, lost_at,
           low, back_at, v[1].share);

    CHECK(fabs(before - 0.5) < 0.05);
    CHECK(lost_at >= 0 && lost_at <= 30);
    CHECK(back_at >= 0 && back_at <= 60);
    CHECK(low >= conf.min_share - 1e-9);
    CHECK(fabs(v[1].share - 0.5) < 0.1);
}


static void
test_scenarios(void)
{
    scenario(1.0, 1);       /* 3x slower: every answer over the SLO */
    scenario(0.2, 0);       /* failing 20 % */
}


/*
 * A loaded host: both variants miss the SLO on most answers, one at
 * 1.2 times it, the other at 3.6 times: the faster one still takes the
 * traffic, by the credit of its late answers.
 */

static void
test_late_everywhere(void)
{
    int                  k;
    uint32_t             p[] = { 1, 1 };
    uint64_t             rng;
    ksv_adapt_variant_t  v[2];

    CHECK(ksv_adapt_credit(50000, 40000) == 1000);
    CHECK(ksv_adapt_credit(50000, 50000) == 1000);
    CHECK(ksv_adapt_credit(50000, 100000) == 500);
    CHECK(ksv_adapt_credit(50000, 150000) == 333);

    variants(v, 2, p);
    ksv_adapt_start(&conf, v, 2);
    rng = 3;

    for (k = 0; k < 40; k++) {
        v[0].window = (ksv_adapt_counts_t) { .good = 20, .slow = 80,
            .credit = 80 * ksv_adapt_credit(50000, 60000) };
        v[1].window = (ksv_adapt_counts_t) { .good = 5, .slow = 95,
            .credit = 95 * ksv_adapt_credit(50000, 180000) };
        (void) ksv_adapt_derive(&conf, v, 2, &rng);
    }

    CHECK(v[1].share < 0.1);
    CHECK(v[1].target < 0.06);

    /*
     * A credit larger than the late answers (a bad peer) is capped: ten
     * late answers count as ten successes at most, less than a hundred
     * on time.
     */
    for (k = 0; k < 40; k++) {
        v[0].window = (ksv_adapt_counts_t) { .good = 100 };
        v[1].window = (ksv_adapt_counts_t) { .good = 0, .slow = 10,
                                             .credit = 1000000 };
        (void) ksv_adapt_derive(&conf, v, 2, &rng);
    }

    CHECK(v[1].target >= 0.05 && v[1].target <= 0.5);
}


static void
test_weight(void)
{
    CHECK(ksv_adapt_weight(0.0) == 0);
    CHECK(ksv_adapt_weight(-1.0) == 0);
    CHECK(ksv_adapt_weight(NAN) == 0);
    CHECK(ksv_adapt_weight(1e-9) == 1);
    CHECK(ksv_adapt_weight(0.05) == 500);
    CHECK(ksv_adapt_weight(1.0) == KSV_ADAPT_SCALE);
    CHECK(ksv_adapt_weight(2.0) == KSV_ADAPT_SCALE);
}


static void
test_format_parse(void)
{
    int                i;
    char               buf[256];
    size_t             len;
    uint64_t           ts;
    ksv_adapt_named_t  in[2], out[4];

    static const char  *bad[] = {
        "",
        "ksv1 ",
        "ksv2 1\n",
        "ksv1 1",
        "ksv1 x\n",
        "ksv1 1\nv1 1 2 3 4\n",
        "ksv1 1\nv1 1 2 3 4 5",
        "ksv1 1\nv1 1 2 3 4 5 6\n",
        "ksv1 1\n 1 2 3 4 5\n",
        "ksv1 1\nv1  1 2 3 4 5\n",
        "ksv1 1\nv1 1 2 -3 4 5\n",
        "ksv1 1\nv1 1 2 3 4 5\r\n",
        "ksv1 12345678901234567890\n",
        "ksv1 01\n",
        "ksv1 1\nv1 1 2 3 4 05\n",
        "ksv1 1\na 1 1 1 1 1\nb 1 1 1 1 1\nc 1 1 1 1 1\nd 1 1 1 1 1\n"
        "e 1 1 1 1 1\n",
    };

    in[0].name = "fraud_v1";
    in[0].len = 8;
    in[0].counts = (ksv_adapt_counts_t) { .good = 10, .slow = 2,
                                          .credit = 1500, .failure = 3,
                                          .latency_us = 123456 };
    in[1].name = "fraud_v2:3";
    in[1].len = 10;
    in[1].counts = (ksv_adapt_counts_t) { .latency_us = UINT64_MAX / 2 };

    len = ksv_adapt_format(buf, sizeof(buf), 1700000000123ULL, in, 2);
    CHECK(len > 0);
    CHECK(strncmp(buf, "ksv1 1700000000123\nfraud_v1 10 2 1500 3 123456\n",
                  47) == 0);

    CHECK(ksv_adapt_parse(buf, len, &ts, out, 4) == 2);
    CHECK(ts == 1700000000123ULL);
    CHECK(out[1].len == 10 && memcmp(out[1].name, "fraud_v2:3", 10) == 0);
    CHECK(out[0].counts.slow == 2 && out[0].counts.failure == 3);
    CHECK(out[0].counts.credit == 1500);
    CHECK(out[1].counts.latency_us == UINT64_MAX / 2);

    /* no variants is a valid window; too small a buffer is not */
    CHECK(ksv_adapt_parse("ksv1 5\n", 7, &ts, out, 4) == 0 && ts == 5);
    CHECK(ksv_adapt_format(buf, 20, 1, in, 2) == 0);

    /* a name the parser could not read back is refused */
    in[0].name = "a b";
    in[0].len = 3;
    CHECK(ksv_adapt_format(buf, sizeof(buf), 1, in, 1) == 0);

    for (i = 0; i < (int) (sizeof(bad) / sizeof(bad[0])); i++) {
        if (ksv_adapt_parse(bad[i], strlen(bad[i]), &ts, out, 4) != -1) {
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }
}


static void
test_json(void)
{
    uint32_t             weights[2] = { 9500, 500 };
    json_t              *root, *v1;
    ksv_str_t            names[2] = { { "a", 1 }, { "b\"", 2 } };
    ksv_writer_t         w;
    json_error_t         err;
    ksv_adapt_timing_t   t = { 1000, 3000, 60, -1 };
    ksv_adapt_variant_t  v[2];

    memset(v, 0, sizeof(v));
    v[0].share = 0.95;
    v[0].target = 0.95;
    v[0].window = (ksv_adapt_counts_t) { .good = 90, .slow = 5,
                                         .credit = 2500, .failure = 5,
                                         .latency_us = 3000000 };
    v[1].share = 0.05;

    /* the members after the name, as GET /v2/routes wraps them */
    ksv_writer_init(&w);
    ksv_json_lit(&w, "{\"name\":\"adaptive\"");
    ksv_adapt_json(&w, &conf, &t, names, v, weights, 2);
    ksv_put_u8(&w, '}');

    root = json_loadb((const char *) w.buf, w.len, 0, &err);
    CHECK(root != NULL);

    if (root != NULL) {
        CHECK(strcmp(json_string_value(json_object_get(root, "name")),
                     "adaptive") == 0);
        CHECK(json_is_null(json_object_get(root, "derived_ms_ago")));
        CHECK(json_integer_value(json_object_get(root, "slo_ms")) == 60);
        CHECK(json_real_value(json_object_get(root, "min_share")) == 0.05);

        v1 = json_array_get(json_object_get(root, "variants"), 0);
        CHECK(json_integer_value(json_object_get(v1, "weight")) == 9500);
        v1 = json_object_get(v1, "window");
        CHECK(json_integer_value(json_object_get(v1, "requests")) == 100);
        CHECK(json_real_value(json_object_get(v1, "success_rate")) == 0.95);
        CHECK(json_real_value(json_object_get(v1, "within_slo")) == 0.9);
        CHECK(json_number_value(json_object_get(v1, "mean_latency_ms"))
              == 30.0);

        v1 = json_array_get(json_object_get(root, "variants"), 1);
        CHECK(strcmp(json_string_value(json_object_get(v1, "name")), "b\"")
              == 0);
        CHECK(json_is_null(json_object_get(json_object_get(v1, "window"),
                                           "success_rate")));
        json_decref(root);
    }

    ksv_writer_free(&w);
}


int
main(void)
{
    test_random();
    test_beta();
    test_ring();
    test_start_and_floor();
    test_equal_variants_keep_the_prior();
    test_scenarios();
    test_late_everywhere();
    test_weight();
    test_format_parse();
    test_json();

    KSV_TEST_END();
}
