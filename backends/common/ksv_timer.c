/*
 * ngx_kserve instances: the one timer structure (see ksv_timer.h).
 */

#include <stdlib.h>
#include <time.h>

#include "ksv_timer.h"


uint64_t
ksv_timer_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}


void
ksv_timers_init(ksv_timers_t *ts)
{
    ts->heap = NULL;
    ts->n = 0;
    ts->cap = 0;
}


void
ksv_timers_free(ksv_timers_t *ts)
{
    size_t  i;

    for (i = 1; i <= ts->n; i++) {
        ts->heap[i]->slot = 0;
    }
    free(ts->heap);
    ksv_timers_init(ts);
}


static void
ksv_heap_set(ksv_timers_t *ts, size_t i, ksv_timer_t *t)
{
    ts->heap[i] = t;
    t->slot = i;
}


static void
ksv_heap_up(ksv_timers_t *ts, size_t i)
{
    ksv_timer_t  *t = ts->heap[i];

    while (i > 1 && ts->heap[i / 2]->due_ns > t->due_ns) {
        ksv_heap_set(ts, i, ts->heap[i / 2]);
        i /= 2;
    }
    ksv_heap_set(ts, i, t);
}


static void
ksv_heap_down(ksv_timers_t *ts, size_t i)
{
    size_t        c;
    ksv_timer_t  *t = ts->heap[i];

    for ( ;; ) {
        c = 2 * i;
        if (c > ts->n) {
            break;
        }
        if (c + 1 <= ts->n && ts->heap[c + 1]->due_ns < ts->heap[c]->due_ns) {
            c++;
        }
        if (ts->heap[c]->due_ns >= t->due_ns) {
            break;
        }
        ksv_heap_set(ts, i, ts->heap[c]);
        i = c;
    }
    ksv_heap_set(ts, i, t);
}


int
ksv_timer_add(ksv_timers_t *ts, ksv_timer_t *t, uint64_t due_ns)
{
    size_t         cap;
    ksv_timer_t  **heap;

    if (t->slot != 0) {
        t->due_ns = due_ns;
        ksv_heap_up(ts, t->slot);
        ksv_heap_down(ts, t->slot);
        return 0;
    }

    if (ts->n + 1 >= ts->cap) {
        cap = ts->cap ? 2 * ts->cap : 64;
        heap = realloc(ts->heap, cap * sizeof(ksv_timer_t *));
        if (heap == NULL) {
            return -1;
        }
        ts->heap = heap;
        ts->cap = cap;
    }

    t->due_ns = due_ns;
    ts->n++;
    ksv_heap_set(ts, ts->n, t);
    ksv_heap_up(ts, ts->n);
    return 0;
}


void
ksv_timer_del(ksv_timers_t *ts, ksv_timer_t *t)
{
    size_t        i = t->slot;
    ksv_timer_t  *last;

    if (i == 0) {
        return;
    }
    t->slot = 0;

    last = ts->heap[ts->n--];
    if (last == t) {
        return;
    }
    ksv_heap_set(ts, i, last);
    ksv_heap_up(ts, i);
    ksv_heap_down(ts, last->slot);
}


uint64_t
ksv_timers_next(const ksv_timers_t *ts, uint64_t now)
{
    uint64_t  due;

    if (ts->n == 0) {
        return UINT64_MAX;
    }
    due = ts->heap[1]->due_ns;
    return due > now ? due - now : 0;
}


void
ksv_timers_run(ksv_timers_t *ts, uint64_t now)
{
    ksv_timer_t  *t;

    while (ts->n > 0 && ts->heap[1]->due_ns <= now) {
        t = ts->heap[1];
        ksv_timer_del(ts, t);
        t->handler(t);
    }
}
