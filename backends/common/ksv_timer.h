/*
 * ngx_kserve instances: the one timer structure.
 *
 * Everything in an instance that happens at a time rather than on a
 * message is a timer here: a request's deadline and queue timeout, the
 * batcher's "wait for more until ..." and the check that the worker is
 * still there.  Like nginx's event timers (ngx_event_timer.c) it is an
 * ordered set keyed by the time a timer is due; unlike them it is a
 * binary min-heap over an array, since an instance has one thread and a
 * few thousand timers at most.  Each timer knows its slot, so deleting
 * or moving one is O(log n) and the loop asks only for the earliest.
 *
 * Times are CLOCK_MONOTONIC nanoseconds (ksv_timer_now()).
 */

#ifndef KSV_TIMER_H
#define KSV_TIMER_H

#include <stddef.h>
#include <stdint.h>


typedef struct ksv_timer_s  ksv_timer_t;

typedef void (*ksv_timer_handler_pt)(ksv_timer_t *t);

struct ksv_timer_s {
    uint64_t               due_ns;
    ksv_timer_handler_pt   handler;
    void                  *data;
    size_t                 slot;        /* in the heap; 0: not set */
};

typedef struct {
    ksv_timer_t          **heap;        /* heap[1..n] */
    size_t                 n;
    size_t                 cap;
} ksv_timers_t;


uint64_t ksv_timer_now(void);

void ksv_timers_init(ksv_timers_t *ts);
void ksv_timers_free(ksv_timers_t *ts);

/* Sets (or moves) t to fire at due_ns.  Returns -1 when out of memory
 * (t is then not set). */
int ksv_timer_add(ksv_timers_t *ts, ksv_timer_t *t, uint64_t due_ns);
void ksv_timer_del(ksv_timers_t *ts, ksv_timer_t *t);

#define ksv_timer_is_set(t)  ((t)->slot != 0)

/* ns until the earliest timer is due (0: overdue), UINT64_MAX: none. */
uint64_t ksv_timers_next(const ksv_timers_t *ts, uint64_t now);

/* Runs the handlers of every timer due at now (each is unset first, so
 * a handler may set it again). */
void ksv_timers_run(ksv_timers_t *ts, uint64_t now);

#endif /* KSV_TIMER_H */
