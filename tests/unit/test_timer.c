/*
 * ngx_kserve: the instances' timers (backends/common/ksv_timer.c), a
 * binary min-heap keyed by due time.
 */

#include <stdint.h>
#include <string.h>

#include "ksv_timer.h"
#include "ksv_test.h"


#define NTIMERS  1000


/* what the handlers saw, in the order they ran */
static ksv_timer_t  *fired[4 * NTIMERS];
static size_t        nfired;


static void
record(ksv_timer_t *t)
{
    if (nfired < sizeof(fired) / sizeof(fired[0])) {
        fired[nfired] = t;
    }
    nfired++;
}


/* The heap's invariants: every parent is due no later than its
 * children, and every timer knows its slot. */

static int
heap_ok(const ksv_timers_t *ts)
{
    size_t  i;

    for (i = 1; i <= ts->n; i++) {
        if (ts->heap[i]->slot != i) {
            return 0;
        }
        if (i > 1 && ts->heap[i / 2]->due_ns > ts->heap[i]->due_ns) {
            return 0;
        }
    }
    return 1;
}


static void
timers(ksv_timer_t *t, size_t n)
{
    size_t  i;

    memset(t, 0, n * sizeof(ksv_timer_t));
    for (i = 0; i < n; i++) {
        t[i].handler = record;
        t[i].data = &t[i];
    }
}


static void
test_next(void)
{
    ksv_timer_t   t[2];
    ksv_timers_t  ts;

    ksv_timers_init(&ts);
    timers(t, 2);

    CHECK(ksv_timers_next(&ts, 0) == UINT64_MAX);

    CHECK(ksv_timer_add(&ts, &t[0], 100) == 0);
    CHECK(ksv_timer_is_set(&t[0]));
    CHECK(!ksv_timer_is_set(&t[1]));
    CHECK(ksv_timers_next(&ts, 40) == 60);
    CHECK(ksv_timers_next(&ts, 100) == 0);
    CHECK(ksv_timers_next(&ts, 150) == 0);      /* overdue */

    /* the earliest counts */
    CHECK(ksv_timer_add(&ts, &t[1], 70) == 0);
    CHECK(ksv_timers_next(&ts, 40) == 30);

    /* nothing due: nothing runs */
    nfired = 0;
    ksv_timers_run(&ts, 69);
    CHECK(nfired == 0);
    CHECK(ts.n == 2);

    ksv_timers_run(&ts, 70);
    CHECK(nfired == 1 && fired[0] == &t[1]);
    CHECK(!ksv_timer_is_set(&t[1]));
    CHECK(ksv_timers_next(&ts, 70) == 30);

    ksv_timers_free(&ts);
    CHECK(!ksv_timer_is_set(&t[0]));
    CHECK(ts.n == 0 && ts.heap == NULL);
    CHECK(ksv_timers_next(&ts, 0) == UINT64_MAX);
}


static void
test_many_fire_in_order(void)
{
    int           sorted, early, late, failed;
    size_t        i, left;
    uint64_t      now;
    ksv_timers_t  ts;

    static ksv_timer_t  t[NTIMERS];

    ksv_timers_init(&ts);
    timers(t, NTIMERS);

    /* due times in [0, 10000), many alike */
    failed = 0;
    for (i = 0; i < NTIMERS; i++) {
        failed += ksv_timer_add(&ts, &t[i], rnd32() % 10000) != 0;
    }
    CHECK(failed == 0);
    CHECK(ts.n == NTIMERS);
    CHECK(heap_ok(&ts));

    /* run in steps: each step fires exactly the timers due by then */
    nfired = 0;
    sorted = 1;
    early = 0;
    late = 0;
    for (now = 0; now < 10000; now += 97) {
        left = nfired;
        ksv_timers_run(&ts, now);
        for (i = left; i < nfired; i++) {
            if (fired[i]->due_ns > now) {
                early = 1;
            }
            if (i > 0 && fired[i - 1]->due_ns > fired[i]->due_ns) {
                sorted = 0;
            }
        }
        if (ts.n > 0 && ts.heap[1]->due_ns <= now) {
            late = 1;
        }
        if (!heap_ok(&ts)) {
            sorted = 0;
        }
    }
    ksv_timers_run(&ts, 10000);

    CHECK(sorted);
    CHECK(!early);
    CHECK(!late);
    CHECK(nfired == NTIMERS);
    CHECK(ts.n == 0);
    for (i = 0, left = 0; i < NTIMERS; i++) {
        left += ksv_timer_is_set(&t[i]);
    }
    CHECK(left == 0);

    ksv_timers_free(&ts);
}


static void
test_delete_from_the_middle(void)
{
    int           ok;
    size_t        i, n;
    ksv_timer_t  *last;
    ksv_timers_t  ts;

    static ksv_timer_t  t[100];

    ksv_timers_init(&ts);
    timers(t, 100);

    /* due in reverse order of adding, so the heap moves on every add */
    for (i = 0; i < 100; i++) {
        CHECK(ksv_timer_add(&ts, &t[i], 1000 - i) == 0);
    }

    /* the root (t[99]), the last slot, and every third one */
    ksv_timer_del(&ts, &t[99]);
    CHECK(ts.heap[1] == &t[98]);
    last = ts.heap[ts.n];
    ksv_timer_del(&ts, last);
    CHECK(!ksv_timer_is_set(last));
    n = ts.n;
    for (i = 0; i < 99; i += 3) {
        if (ksv_timer_is_set(&t[i])) {
            ksv_timer_del(&ts, &t[i]);
            n--;
        }
        CHECK(!ksv_timer_is_set(&t[i]));
    }
    CHECK(ts.n == n);
    CHECK(heap_ok(&ts));

    /* deleting an unset timer changes nothing */
    ksv_timer_del(&ts, &t[0]);
    CHECK(ts.n == n);

    nfired = 0;
    ksv_timers_run(&ts, 1000);
    CHECK(nfired == n);

    ok = !ksv_timer_is_set(&t[99]);
    for (i = 0; i < nfired; i++) {
        if (fired[i] == last || (fired[i] - t) % 3 == 0
            || (i > 0 && fired[i - 1]->due_ns > fired[i]->due_ns))
        {
            ok = 0;
        }
    }
    CHECK(ok);

    ksv_timers_free(&ts);
}


static void
test_add_again_moves(void)
{
    size_t        i;
    ksv_timers_t  ts;

    static ksv_timer_t  t[50];

    ksv_timers_init(&ts);
    timers(t, 50);

    for (i = 0; i < 50; i++) {
        CHECK(ksv_timer_add(&ts, &t[i], 100 + 10 * i) == 0);
    }

    /* earlier: t[30] is the next */
    CHECK(ksv_timer_add(&ts, &t[30], 10) == 0);
    CHECK(ts.n == 50);
    CHECK(ts.heap[1] == &t[30]);
    CHECK(ksv_timers_next(&ts, 0) == 10);
    CHECK(heap_ok(&ts));

    /* later: t[0], the old first, goes last */
    CHECK(ksv_timer_add(&ts, &t[0], 5000) == 0);
    CHECK(ts.n == 50);
    CHECK(heap_ok(&ts));

    nfired = 0;
    ksv_timers_run(&ts, 10000);
    CHECK(nfired == 50);
    CHECK(fired[0] == &t[30]);
    CHECK(fired[1] == &t[1]);
    CHECK(fired[49] == &t[0]);
    CHECK(t[0].due_ns == 5000);

    ksv_timers_free(&ts);
}


/* A periodic timer: its handler sets it again, 10 on. */

static int  ticks;

static void
tick(ksv_timer_t *t)
{
    ksv_timers_t  *ts = t->data;

    ticks++;
    CHECK(!ksv_timer_is_set(t));
    CHECK(ksv_timer_add(ts, t, t->due_ns + 10) == 0);
}


/* A handler that cancels another timer due at the same time. */

static ksv_timer_t  *victim;

static void
cancel(ksv_timer_t *t)
{
    record(t);
    ksv_timer_del(t->data, victim);
}


static void
test_handlers_may_arm_again(void)
{
    ksv_timer_t   p, t[3];
    ksv_timers_t  ts;

    ksv_timers_init(&ts);
    memset(&p, 0, sizeof(p));
    p.handler = tick;
    p.data = &ts;

    ticks = 0;
    CHECK(ksv_timer_add(&ts, &p, 10) == 0);
    ksv_timers_run(&ts, 5);
    CHECK(ticks == 0);

    ksv_timers_run(&ts, 10);
    CHECK(ticks == 1);
    CHECK(ksv_timer_is_set(&p) && p.due_ns == 20);

    /* one run catches up: due at 20 and again at 30, set for 40 */
    ksv_timers_run(&ts, 35);
    CHECK(ticks == 3);
    CHECK(ksv_timer_is_set(&p) && p.due_ns == 40);
    CHECK(ksv_timers_next(&ts, 35) == 5);

    ksv_timer_del(&ts, &p);
    CHECK(ts.n == 0);

    /* t[0] fires first and cancels t[1]; t[2] still runs */
    timers(t, 3);
    t[0].handler = cancel;
    t[0].data = &ts;
    victim = &t[1];
    CHECK(ksv_timer_add(&ts, &t[0], 100) == 0);
    CHECK(ksv_timer_add(&ts, &t[1], 101) == 0);
    CHECK(ksv_timer_add(&ts, &t[2], 101) == 0);

    nfired = 0;
    ksv_timers_run(&ts, 200);
    CHECK(nfired == 2);
    CHECK(fired[0] == &t[0] && fired[1] == &t[2]);
    CHECK(ts.n == 0);

    ksv_timers_free(&ts);
}


static void
test_now(void)
{
    uint64_t  a, b;

    a = ksv_timer_now();
    b = ksv_timer_now();
    CHECK(a > 0);
    CHECK(b >= a);
}


int
main(void)
{
    test_next();
    test_many_fire_in_order();
    test_delete_from_the_middle();
    test_add_again_moves();
    test_handlers_may_arm_again();
    test_now();

    KSV_TEST_END();
}
