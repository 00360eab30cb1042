/*
 * ngx_kserve instances: the dynamic batcher's decisions, as pure
 * functions (tests/unit/test_batcher.c drives them with plain numbers).
 *
 * The scheduler (ksv_sched.c) walks its queue in scheduling order and
 * hands over the rows of the requests that could join the next batch:
 * every one that fits max_batch_size and has the first one's shapes, up
 * to the first that does not ("blocked": the batch cannot grow past it,
 * order is never skipped).  ksv_batcher_decide() then says how many go
 * now, or how long to wait for more, by Triton's rules (the full text
 * is in ksv_sched.h):
 *
 *   - the longest prefix whose rows are a preferred_batch_size goes now
 *     (also after max_queue_delay, unlike Triton: under load the delay
 *     has always passed by the time the instance is free);
 *   - else, when more rows wait than the largest preferred size, the
 *     longest prefix within it goes now, unless the oldest request has
 *     waited max_queue_delay (then all of it);
 *   - everything goes now when the batch cannot grow (blocked), reached
 *     the largest preferred size (max_batch_size without any), the
 *     oldest request has waited max_queue_delay, or the delay is 0;
 *   - everything also goes when no other request is expected before the
 *     oldest one's delay is up (ksv_arrivals_gap below);
 *   - otherwise nothing goes yet: wait until the rule above would send
 *     it, or a new request arrives.
 */

#ifndef KSV_BATCHER_H
#define KSV_BATCHER_H

#include <stdint.h>


typedef struct {
    uint32_t         max_batch;         /* max_batch_size (> 0) */
    uint32_t         max_preferred;     /* largest usable preferred size,
                                           else max_batch */
    const int32_t   *preferred;
    uint32_t         npreferred;
    uint64_t         delay_ns;          /* max_queue_delay */
} ksv_batch_rules_t;


/*
 * rows[0..n): the candidates' rows in scheduling order (n > 0, all of
 * them fitting max_batch together); blocked: a request waits behind
 * them that cannot join; waited_ns: how long the oldest candidate has
 * waited; gap_ns: when the next request is expected (ksv_arrivals_gap).
 * Returns how many candidates go now, or 0 with *wait_ns: look again
 * then (or at the next arrival).
 */
uint32_t ksv_batcher_decide(const ksv_batch_rules_t *rules,
    const uint32_t *rows, uint32_t n, int blocked, uint64_t waited_ns,
    uint64_t gap_ns, uint64_t *wait_ns);


/*
 * "Is another request coming?" (not in Triton, which always waits).
 *
 * Waiting only pays when a request arrives while the batch waits, so the
 * instance estimates how soon one will from the arrivals that found it
 * with work outstanding (a request queued or running): expected gap =
 * busy time / busy arrivals.  Counting all time instead would be fooled
 * by a closed loop: one client sending back to back arrives every model
 * time + round trip, maybe well under the delay, but never while its own
 * request is pending.  All counts halve every KSV_ARRIVAL_HALF_LIFE_MS
 * (or 16 delays when longer), so an old burst is forgotten.
 *
 *   - a steady lone client (arrivals, none while busy): nobody is
 *     coming, the batch goes at once and the batcher adds nothing;
 *   - the first request after a quiet spell (no recent arrivals at all):
 *     nothing is known, so it waits as Triton would, and a burst that
 *     arrives together forms one batch instead of a batch of one
 *     followed by the rest;
 *   - under load the gap is far below the delay and batches form by the
 *     rules above.
 */

#define KSV_ARRIVAL_HALF_LIFE_MS  100

typedef struct {
    uint32_t         outstanding;       /* queued or running requests */
    uint64_t         busy_since;        /* when outstanding left 0 */
    uint64_t         busy_ns;           /* time with outstanding > 0 */
    uint64_t         hits;              /* busy arrivals, 1/256ths */
    uint64_t         arrivals;          /* all arrivals, 1/256ths */
    uint64_t         decayed_at;        /* last halving */
    uint64_t         half_life_ns;
} ksv_arrivals_t;

void ksv_arrivals_init(ksv_arrivals_t *a, uint64_t delay_ns, uint64_t now);
/* A request arrives (joins the outstanding work) / leaves it. */
void ksv_arrivals_in(ksv_arrivals_t *a, uint64_t now);
void ksv_arrivals_out(ksv_arrivals_t *a, uint64_t now);
/* ns until the next arrival is expected: 0 after a quiet spell (expect
 * company), UINT64_MAX when arrivals never find work (expect none). */
uint64_t ksv_arrivals_gap(ksv_arrivals_t *a, uint64_t now);

#endif /* KSV_BATCHER_H */
