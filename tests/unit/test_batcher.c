/*
 * ngx_kserve: the dynamic batcher's decisions and the arrival estimate
 * (backends/common/ksv_batcher.c), driven with plain numbers as the
 * scheduler (ksv_sched.c) would drive them.
 */

#include <stdint.h>
#include <string.h>

#include "ksv_batcher.h"
#include "ksv_test.h"


#define US  1000ULL
#define MS  1000000ULL


/* a value decide() must overwrite, so a stale *wait_ns shows */
#define STALE  12345


/* The rules of a model, with max_preferred worked out as ksv_sched.c
 * does: the largest preferred size within max_batch, else max_batch. */

static ksv_batch_rules_t
rules(uint32_t max_batch, const int32_t *preferred, uint32_t npreferred,
    uint64_t delay_ns)
{
    uint32_t           i;
    ksv_batch_rules_t  r;

    r.max_batch = max_batch;
    r.max_preferred = 0;
    for (i = 0; i < npreferred; i++) {
        if (preferred[i] > 0 && (uint32_t) preferred[i] > r.max_preferred
            && (uint32_t) preferred[i] <= max_batch)
        {
            r.max_preferred = (uint32_t) preferred[i];
        }
    }
    if (r.max_preferred == 0) {
        r.max_preferred = max_batch;
    }
    r.preferred = preferred;
    r.npreferred = npreferred;
    r.delay_ns = delay_ns;
    return r;
}


static void
test_preferred_sizes_win(void)
{
    uint64_t           wait;
    ksv_batch_rules_t  r;

    static const int32_t   pref[] = { 4, 8 };
    static const uint32_t  ones[] = { 1, 1, 1, 1, 1 };
    static const uint32_t  twos[] = { 2, 2, 2, 2, 2 };
    static const uint32_t  fours[] = { 4, 4 };

    r = rules(16, pref, 2, 5 * MS);

    /* 5 rows wait: the first 4 are a preferred size and go now, even
     * though nothing has waited yet and company is expected */
    wait = STALE;
    CHECK(ksv_batcher_decide(&r, ones, 5, 0, 0, 0, &wait) == 4);
    CHECK(wait == 0);

    /* the longest preferred prefix: 8 rows, not 4 */
    CHECK(ksv_batcher_decide(&r, twos, 5, 0, 0, 0, &wait) == 4);
    CHECK(ksv_batcher_decide(&r, fours, 2, 0, 0, 0, &wait) == 2);

    /* a preferred prefix still wins after max_queue_delay and when the
     * batch is blocked: the rest goes in the next batch */
    CHECK(ksv_batcher_decide(&r, ones, 5, 0, 6 * MS, 0, &wait) == 4);
    CHECK(ksv_batcher_decide(&r, ones, 5, 1, 0, 0, &wait) == 4);

    /* 3 rows are not preferred (and less than 8): wait for more */
    wait = STALE;
    CHECK(ksv_batcher_decide(&r, ones, 3, 0, 0, 0, &wait) == 0);
    CHECK(wait == 5 * MS);
}


static void
test_longest_prefix_within_largest_preferred(void)
{
    uint64_t           wait;
    ksv_batch_rules_t  r;

    static const int32_t   pref[] = { 4, 8 };
    static const uint32_t  threes[] = { 3, 3, 3 };
    static const uint32_t  fives[] = { 5, 5 };
    static const uint32_t  ten[] = { 10 };

    r = rules(16, pref, 2, 5 * MS);

    /* 9 rows wait, none of the prefixes (3, 6, 9) is preferred: the
     * longest within 8 goes now, 6 rows */
    wait = STALE;
    CHECK(ksv_batcher_decide(&r, threes, 3, 0, 0, 0, &wait) == 2);
    CHECK(wait == 0);

    /* a first request alone past the largest preferred size */
    CHECK(ksv_batcher_decide(&r, fives, 2, 0, 0, 0, &wait) == 1);

    /* once the oldest has waited max_queue_delay, all of it goes */
    CHECK(ksv_batcher_decide(&r, threes, 3, 0, 5 * MS, 0, &wait) == 3);
    CHECK(ksv_batcher_decide(&r, fives, 2, 0, 5 * MS, 0, &wait) == 2);

    /* a request below the largest preferred size waits for company,
     * one above it goes alone */
    CHECK(ksv_batcher_decide(&r, fives, 1, 0, 0, 0, &wait) == 0);
    CHECK(ksv_batcher_decide(&r, ten, 1, 0, 0, 0, &wait) == 1);
}


static void
test_full_or_blocked_goes_at_once(void)
{
    uint64_t           wait;
    ksv_batch_rules_t  r;

    static const uint32_t  rows[] = { 1, 2, 1, 4 };

    /* no preferred sizes: max_batch is the size to wait for */
    r = rules(8, NULL, 0, 5 * MS);

    wait = STALE;
    CHECK(ksv_batcher_decide(&r, rows, 3, 0, 0, 0, &wait) == 0);
    CHECK(wait == 5 * MS);

    /* a request waits behind them that cannot join (shape, size): the
     * batch cannot grow, waiting gains nothing */
    wait = STALE;
    CHECK(ksv_batcher_decide(&r, rows, 3, 1, 0, 0, &wait) == 3);
    CHECK(wait == 0);

    /* reached max_batch */
    CHECK(ksv_batcher_decide(&r, rows, 4, 0, 0, 0, &wait) == 4);
}


static void
test_delay_exceeded_sends_everything(void)
{
    uint64_t           wait;
    ksv_batch_rules_t  r;

    static const uint32_t  rows[] = { 1, 1, 1 };

    r = rules(8, NULL, 0, 5 * MS);

    /* one ns short of the delay: wait that ns */
    wait = STALE;
    CHECK(ksv_batcher_decide(&r, rows, 3, 0, 5 * MS - 1, 0, &wait) == 0);
    CHECK(wait == 1);

    /* at and past it: everything */
    wait = STALE;
    CHECK(ksv_batcher_decide(&r, rows, 3, 0, 5 * MS, 0, &wait) == 3);
    CHECK(wait == 0);
    CHECK(ksv_batcher_decide(&r, rows, 3, 0, 60 * MS, 0, &wait) == 3);
}


static void
test_no_delay_sends_at_once(void)
{
    uint64_t           wait;
    ksv_batch_rules_t  r;

    static const int32_t   pref[] = { 4 };
    static const uint32_t  rows[] = { 1, 1, 3 };

    r = rules(8, NULL, 0, 0);

    wait = STALE;
    CHECK(ksv_batcher_decide(&r, rows, 1, 0, 0, 0, &wait) == 1);
    CHECK(wait == 0);
    CHECK(ksv_batcher_decide(&r, rows, 3, 0, 0, 0, &wait) == 3);

    /* with preferred sizes the rules still shape the batch: 2 rows go,
     * 1 + 1 + 3 would outgrow 4 */
    r = rules(8, pref, 1, 0);
    CHECK(ksv_batcher_decide(&r, rows, 2, 0, 0, 0, &wait) == 2);
    CHECK(ksv_batcher_decide(&r, rows, 3, 0, 0, 0, &wait) == 2);
}


static void
test_wait_until_no_one_is_expected(void)
{
    uint64_t           wait;
    ksv_batch_rules_t  r;

    static const uint32_t  rows[] = { 1, 1 };

    r = rules(8, NULL, 0, 5 * MS);

    /* waited 1 ms of 5, the next request is expected in 0.5 ms: look
     * again when the 4 ms left are down to the gap */
    wait = STALE;
    CHECK(ksv_batcher_decide(&r, rows, 2, 0, 1 * MS, 500 * US, &wait) == 0);
    CHECK(wait == 3500 * US);

    /* ... which is when it goes, the next one not having come */
    wait = STALE;
    CHECK(ksv_batcher_decide(&r, rows, 2, 0, 4500 * US, 500 * US, &wait)
          == 2);
    CHECK(wait == 0);

    /* the gap is as long as the time left, or longer: now */
    CHECK(ksv_batcher_decide(&r, rows, 2, 0, 1 * MS, 4 * MS, &wait) == 2);
    CHECK(ksv_batcher_decide(&r, rows, 2, 0, 0, UINT64_MAX, &wait) == 2);

    /* a ns shorter: wait a ns */
    CHECK(ksv_batcher_decide(&r, rows, 2, 0, 1 * MS, 4 * MS - 1, &wait)
          == 0);
    CHECK(wait == 1);
}


/* Whatever the queue, a decision is a prefix that fits, or a wait that
 * ends before the delay is up. */

static void
test_any_decision_is_sane(void)
{
    int                i, blocked, bad;
    uint32_t           n, k, j, total, max, rows[16];
    uint64_t           waited, gap, wait, delay;
    ksv_batch_rules_t  r;

    static const int32_t  pref[] = { 2, 6, 12 };

    bad = 0;
    for (i = 0; i < 20000; i++) {
        max = 1 + rnd32() % 16;
        delay = (rnd32() % 4) * MS;
        r = rules(max, pref, rnd32() % 4, delay);

        n = 0;
        total = 0;
        do {
            rows[n] = 1 + rnd32() % max;
            if (n > 0 && total + rows[n] > max) {
                break;
            }
            total += rows[n++];
        } while (n < 16 && rnd32() % 4 != 0);

        blocked = rnd32() % 2;
        waited = rnd32() % (5 * MS);
        gap = (rnd32() % 2) ? rnd32() % (5 * MS) : 0;
        wait = STALE;

        k = ksv_batcher_decide(&r, rows, n, blocked, waited, gap, &wait);

        if (k > n || (k > 0 && wait != 0)) {
            bad++;
            continue;
        }
        if (k == 0) {
            /* waiting is only for a batch that can grow, within the
             * delay, and ends no later than it */
            if (blocked || delay == 0 || waited >= delay || wait == 0
                || wait > delay - waited || total >= r.max_preferred)
            {
                bad++;
            }
            continue;
        }
        /* a partial batch stays within the largest preferred size, or
         * is a single request */
        if (k < n) {
            for (total = 0, j = 0; j < k; j++) {
                total += rows[j];
            }
            if (k > 1 && total > r.max_preferred) {
                bad++;
            }
        }
    }
    CHECK(bad == 0);
}


static void
test_arrivals_half_life(void)
{
    ksv_arrivals_t  a;

    ksv_arrivals_init(&a, 1 * MS, 0);
    CHECK(a.half_life_ns == KSV_ARRIVAL_HALF_LIFE_MS * MS);

    /* a long delay is remembered for 16 of them */
    ksv_arrivals_init(&a, 10 * MS, 0);
    CHECK(a.half_life_ns == 160 * MS);
}


/* One client in a closed loop: its next request comes only after the
 * answer, so no arrival ever finds work outstanding. */

static void
test_lone_client_goes_at_once(void)
{
    int                i, ok;
    uint64_t           t, wait;
    ksv_arrivals_t     a;
    ksv_batch_rules_t  r;

    static const uint32_t  one[] = { 1 };

    r = rules(8, NULL, 0, 5 * MS);
    ksv_arrivals_init(&a, r.delay_ns, 0);

    /* the very first request knows nothing yet: it waits */
    t = 1000 * MS;
    ksv_arrivals_in(&a, t);
    CHECK(ksv_arrivals_gap(&a, t) == 0);
    ksv_arrivals_out(&a, t + 1 * MS);

    /* a request every 2 ms, each answered within 1 ms */
    ok = 1;
    for (i = 1; i < 50; i++) {
        t = 1000 * MS + i * 2 * MS;
        ksv_arrivals_in(&a, t);
        wait = STALE;
        if (ksv_arrivals_gap(&a, t) != UINT64_MAX
            || ksv_batcher_decide(&r, one, 1, 0, 0,
                                  ksv_arrivals_gap(&a, t), &wait) != 1
            || wait != 0)
        {
            ok = 0;
        }
        ksv_arrivals_out(&a, t + 1 * MS);
    }
    CHECK(ok);
    CHECK(a.hits == 0);
    CHECK(a.outstanding == 0);

    /* a pause of a half-life or two is not a quiet spell... */
    t += 250 * MS;
    ksv_arrivals_in(&a, t);
    CHECK(ksv_arrivals_gap(&a, t) == UINT64_MAX);
    ksv_arrivals_out(&a, t + 1 * MS);

    /* ... ten seconds are: its next request waits for company again */
    t += 10000 * MS;
    ksv_arrivals_in(&a, t);
    CHECK(ksv_arrivals_gap(&a, t) == 0);
}


/* Eight requests arrive within 1 ms at an idle model: they form one
 * batch, not a batch of one followed by the rest. */

static void
test_burst_forms_one_batch(void)
{
    int                early;
    uint32_t           i, k, rows[8];
    uint64_t           t, t0, gap, wait;
    ksv_arrivals_t     a;
    ksv_batch_rules_t  r;

    r = rules(8, NULL, 0, 5 * MS);
    ksv_arrivals_init(&a, r.delay_ns, 0);

    t0 = 3000 * MS;
    early = 0;
    k = 0;

    for (i = 0; i < 8; i++) {
        t = t0 + i * 125 * US;
        ksv_arrivals_in(&a, t);
        rows[i] = 1;

        gap = ksv_arrivals_gap(&a, t);
        wait = STALE;
        k = ksv_batcher_decide(&r, rows, i + 1, 0, t - t0, gap, &wait);

        if (i == 0) {
            /* quiet before: expect company, wait the whole delay */
            CHECK(gap == 0);
            CHECK(k == 0 && wait == 5 * MS);

        } else if (i < 7) {
            /* busy arrivals 125 us apart */
            CHECK(gap == 125 * US);
            if (k != 0 || wait == 0 || t + wait > t0 + 5 * MS) {
                early = 1;
            }
        }
    }

    CHECK(!early);
    CHECK(k == 8);
    CHECK(wait == 0);
}


static void
test_busy_arrivals(void)
{
    ksv_arrivals_t  a;

    ksv_arrivals_init(&a, 1 * MS, 0);

    /* the first finds the model idle, the next two find it busy: 300 us
     * busy over 2 busy arrivals */
    ksv_arrivals_in(&a, 1000);
    ksv_arrivals_in(&a, 1000 + 100 * US);
    CHECK(ksv_arrivals_gap(&a, 1000 + 100 * US) == 100 * US);
    ksv_arrivals_in(&a, 1000 + 300 * US);
    CHECK(ksv_arrivals_gap(&a, 1000 + 300 * US) == 150 * US);
    CHECK(a.outstanding == 3);

    /* busy time runs on while work is outstanding */
    CHECK(ksv_arrivals_gap(&a, 1000 + 400 * US) == 200 * US);

    /* and stops when the last answer leaves: idle time is not counted */
    ksv_arrivals_out(&a, 1000 + 400 * US);
    ksv_arrivals_out(&a, 1000 + 400 * US);
    ksv_arrivals_out(&a, 1000 + 400 * US);
    CHECK(a.outstanding == 0);
    CHECK(ksv_arrivals_gap(&a, 50 * MS) == 200 * US);
    CHECK(a.busy_ns == 400 * US);

    /* an extra out (a request that was never counted) is ignored */
    ksv_arrivals_out(&a, 50 * MS);
    CHECK(a.outstanding == 0);

    /* one half-life on, every count is halved: the estimate stands */
    CHECK(ksv_arrivals_gap(&a, 100 * MS) == 200 * US);
    CHECK(a.busy_ns == 200 * US);
    CHECK(a.hits == 256);
    CHECK(a.arrivals == 3 * 256 / 2);

    /* the half-lives count from init, not from the last look: 250 ms
     * halves once more (the second), 300 ms again (the third) */
    CHECK(ksv_arrivals_gap(&a, 250 * MS) == 200 * US);
    CHECK(a.hits == 128);
    CHECK(ksv_arrivals_gap(&a, 300 * MS) == 200 * US);
    CHECK(a.busy_ns == 50 * US);
    CHECK(a.hits == 64);

    /* a new busy arrival now weighs four times the old ones */
    ksv_arrivals_in(&a, 350 * MS);
    ksv_arrivals_in(&a, 350 * MS + 10 * US);
    CHECK(a.hits == 64 + 256);
    CHECK(ksv_arrivals_gap(&a, 350 * MS + 10 * US)
          == (50 * US + 10 * US) * 256 / (64 + 256));
    ksv_arrivals_out(&a, 351 * MS);
    ksv_arrivals_out(&a, 351 * MS);

    /* after 32 half-lives everything is forgotten: a quiet spell */
    CHECK(ksv_arrivals_gap(&a, 351 * MS + 32 * 100 * MS) == 0);
    CHECK(a.hits == 0 && a.busy_ns == 0 && a.arrivals == 0);
}


int
main(void)
{
    test_preferred_sizes_win();
    test_longest_prefix_within_largest_preferred();
    test_full_or_blocked_goes_at_once();
    test_delay_exceeded_sends_everything();
    test_no_delay_sends_at_once();
    test_wait_until_no_one_is_expected();
    test_any_decision_is_sane();
    test_arrivals_half_life();
    test_lone_client_goes_at_once();
    test_burst_forms_one_batch();
    test_busy_arrivals();

    KSV_TEST_END();
}
