/*
 * kserve-worker: per-version request queues and the dynamic batcher.
 *
 * Every model version has its scheduler state (kserve_sched_t): queues,
 * the batch timer, the answers held for preserve_ordering, statistics.
 * Whenever one of the version's instances is idle and requests wait,
 * kserve_scheduler_dispatch() forms a batch and hands it to that
 * instance as one EXECUTE message.  Requests travel as the frames they
 * arrived in (the client's INFER header frame with its id rewritten to
 * ours, then the input frames, moved, never copied) and the instance's
 * answers are routed back to each client by the order of the batch.
 * The batch is a list of requests, nothing backend-specific: the Python
 * instance hands it to execute() as a list, a CUDA backend would
 * concatenate the inputs (equal shapes are guaranteed, see below).
 *
 * Triton's config.pbtxt semantics:
 *
 *   no dynamic_batching, or max_batch_size 0
 *       every request executes alone, in queue order.
 *
 *   dynamic_batching { }  with max_batch_size > 0
 *       dim 0 of every input is the batch; a request brings dim 0 rows.
 *       Requests join the batch in scheduling order (below) while the
 *       rows fit max_batch_size and the request's shapes (every input's
 *       dims after dim 0, unless the input has allow_ragged_batch) equal
 *       the first request's; the first request that does not fit or
 *       does not match ends the batch (never skipped over: order is
 *       kept).  Then, as Triton's dynamic batcher decides:
 *         - the longest prefix of the batch whose rows are a
 *           preferred_batch_size goes now (Triton drops this rule once
 *           the oldest request has waited max_queue_delay; we keep it,
 *           or preferred sizes would mean nothing under load);
 *         - else, when more rows wait than the largest preferred size,
 *           the longest prefix within it goes now, unless the oldest
 *           request has waited max_queue_delay (then all of it goes);
 *         - the whole batch goes now when it cannot grow (the next
 *           request does not fit or match), reaches the largest
 *           preferred size (max_batch_size without preferred sizes),
 *           the oldest request has waited max_queue_delay, or that
 *           delay is 0;
 *         - the whole batch also goes now when no other request is
 *           expected before the oldest one's max_queue_delay is up
 *           (below: "is another request coming?");
 *         - otherwise nothing goes: the version's timer is set for when
 *           the rule above would send it (at the latest when the oldest
 *           request will have waited max_queue_delay), and every new
 *           request re-runs the decision.
 *
 *   is another request coming?  (not in Triton, which always waits)
 *       Waiting only pays when a request arrives while the batch waits,
 *       so the version estimates how soon one will: the rate of
 *       arrivals *while the version has work* (a request queued or
 *       running), i.e. arrivals that found work outstanding divided by
 *       the time work was outstanding.  A waiting batch is by definition
 *       such a time, so this is the rate it will see; counting all time
 *       instead would be fooled by a closed loop: one client sending
 *       back to back arrives every model-time + round-trip, which may
 *       well be under the delay, yet never while its own request is
 *       pending.  Expected gap = busy time / busy arrivals (infinite
 *       with none); the batch goes at once when that gap is at least
 *       what is left of the oldest request's delay, and the timer is set
 *       for when it will be.  Both counts are halved every
 *       KSERVE_ARRIVAL_HALF_LIFE_MS of wall time, or 16 delays when
 *       longer (an exponentially weighted estimate that forgets an old
 *       burst), so:
 *         - a lone client (concurrency 1), or the first request after a
 *           quiet spell, is dispatched at once: the batcher adds
 *           nothing;
 *         - under load (requests arriving faster than the delay) the gap
 *           is far below the delay and batches form exactly as above;
 *         - in between, with Poisson arrivals, a batch waits while the
 *           chance of company before the delay ends is over 1 - 1/e.
 *
 *   scheduling order
 *       priority level 1 (highest) first; within a level, arrival
 *       order, then the requests delayed past their queue timeout
 *       (timeout_action DELAY).  The request parameter "priority"
 *       (INT; 0 or absent: default_priority_level) picks the level;
 *       above priority_levels is INVALID_ARG.  Without priority_levels
 *       there is one level and the parameter is ignored.
 *
 *   default_queue_policy
 *       max_queue_size bounds each level's queue (UNAVAILABLE "Exceeds
 *       maximum queue size"; KSERVE_DEFAULT_QUEUE when unset);
 *       default_timeout_microseconds bounds the wait in the queue
 *       (REJECT: UNAVAILABLE "Request timeout expired"; DELAY: the
 *       request moves behind its level's other requests);
 *       allow_timeout_override lets the request parameter "timeout"
 *       (INT, microseconds) lower that timeout, never raise it.
 *
 *   preserve_ordering
 *       answers leave in arrival order: one that is ready early is held
 *       until every earlier request of the version has been answered.
 *
 * Independently of the queue policy every request has the module's
 * deadline (INFER timeout_ms): past it, it is answered UNAVAILABLE
 * "Request timeout expired" without being run.
 *
 *   hung models (not in Triton, which waits for execute() forever)
 *       a batch handed to an instance has a deadline: the latest of its
 *       requests' deadlines (--execute-timeout after dispatch for a
 *       request without one) plus KSERVE_EXECUTE_GRACE_MS.  Past it the
 *       instance is taken as hung: the batch's requests are answered
 *       UNAVAILABLE "instance X did not finish within N ms ..." (which
 *       also releases the answers preserve_ordering holds behind them)
 *       and the instance is killed, so the supervisor restarts it with
 *       its usual backoff.  The deadline sweep (kserve_scheduler_expire)
 *       checks it, woken on time by the loop's deadline hint.
 */

#ifndef KSERVE_SCHEDULER_H
#define KSERVE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "ksv_proto.h"
#include "ksv_status.h"
#include "kserve_stats.h"


/* How fast the arrival estimate forgets: its counts halve every this
 * much wall time, or every 16 max_queue_delays when that is longer. */
#define KSERVE_ARRIVAL_HALF_LIFE_MS  100


typedef struct kserve_version_s   kserve_version_t;
typedef struct kserve_instance_s  kserve_instance_t;
typedef struct kserve_request_s   kserve_request_t;

struct kserve_request_s {
    kserve_request_t   *next;           /* queue links */
    kserve_request_t   *prev;
    uint64_t            id;             /* ours, seen by the instance */
    uint64_t            client_id;      /* the nginx worker's */
    zmq_msg_t           identity;       /* the client's ROUTER identity */
    zmq_msg_t           header;         /* INFER frame, id patched */
    zmq_msg_t          *inputs;
    uint32_t            ninputs;
    kserve_version_t   *version;

    uint32_t            rows;           /* dim 0, or 1 without batching */
    uint32_t            level;          /* priority level - 1 */
    uint8_t             delayed;        /* in its level's delayed queue */
    uint8_t             queued;
    uint8_t             outstanding;    /* counted in the arrivals */
    uint64_t            arrived_ns;     /* monotonic, at the worker */
    uint64_t            dispatched_ns;
    uint64_t            deadline_ns;    /* the module's; 0: none */
    uint64_t            timeout_ns;     /* the queue policy's; 0: none */
    uint64_t            seq;            /* arrival number when ordered */

    uint8_t            *shape;          /* what must match to batch */
    size_t              shape_len;

    zmq_msg_t          *answer;         /* held for preserve_ordering */
    size_t              nanswer;
    int                 answer_ok;
};

typedef struct {
    kserve_request_t   *head;
    kserve_request_t   *tail;
    uint32_t            len;
} kserve_queue_t;

typedef struct {
    kserve_queue_t      queue;          /* arrival order */
    kserve_queue_t      delayed;        /* past the DELAY timeout */
} kserve_level_t;

/* Arrivals while the version has work ("is another request coming?"). */
typedef struct {
    uint32_t            outstanding;    /* queued or running requests */
    uint64_t            busy_since;     /* when outstanding left 0 */
    uint64_t            busy_ns;        /* time with outstanding > 0 */
    uint64_t            hits;           /* arrivals finding outstanding > 0 */
    uint64_t            decayed_at;     /* last halving */
} kserve_arrivals_t;

typedef struct {
    kserve_level_t     *levels;         /* [0] is priority 1 */
    uint32_t            nlevels;
    uint32_t            queued;         /* over all levels */
    uint32_t            max_queue;      /* per level */
    uint64_t            due_ns;         /* batch timer; 0: none */
    uint64_t            next_seq;       /* preserve_ordering */
    uint64_t            next_out;
    kserve_queue_t      held;           /* answered early, by seq */
    kserve_arrivals_t   arrivals;
    kserve_stats_t      stats;
} kserve_sched_t;

typedef struct {
    uint64_t            id;
    kserve_instance_t  *instance;
    uint64_t            dispatched_ns;
    uint64_t            deadline_ns;    /* the watchdog's; 0: none */
    uint32_t            rows;
    uint32_t            n;
    kserve_request_t   *requests[];
} kserve_batch_t;


/* Sets up v's scheduler from its model's config.  Returns -1 when out of
 * memory. */
int kserve_scheduler_init(kserve_version_t *v);
void kserve_scheduler_free(kserve_version_t *v);

/*
 * Reads what the scheduler needs from a request for v (rows, priority,
 * timeouts, shapes); m is the decoded INFER.  Returns -1 with an
 * INVALID_ARG message in err when the request cannot be scheduled.
 */
int kserve_request_setup(kserve_version_t *v, kserve_request_t *r,
    const ksv_infer_t *m, char *err, size_t errlen);

/* Takes ownership of a request: queues it or answers it at once
 * (not ready, queue full). */
void kserve_scheduler_submit(kserve_version_t *v, kserve_request_t *r);

/* Hands queued requests to idle instances of v; call when an instance
 * becomes idle or requests arrive. */
void kserve_scheduler_dispatch(kserve_version_t *v);

/* Runs the batch timers that are due.  Returns ns until the next one
 * (or -1 when none). */
int64_t kserve_scheduler_tick(uint64_t now_ns);

/* Answers queued requests past their deadline (DELAY ones move to their
 * level's delayed queue) and runs the watchdog over in-flight batches.
 * Returns ms until the next deadline (or -1 when none). */
int64_t kserve_scheduler_expire(int64_t now_ms);

/* Routes an EXECUTE_REPLY (frames after the routing id) of inst's batch
 * back to the clients; the instance becomes idle. */
void kserve_scheduler_complete(kserve_instance_t *inst, zmq_msg_t *frames,
    size_t nframes);

/* Answers every request of inst's in-flight batch with an error. */
void kserve_scheduler_fail_batch(kserve_instance_t *inst, ksv_status_t code,
    const char *message);

/* Answers every queued request of v with an error. */
void kserve_scheduler_fail_queue(kserve_version_t *v, ksv_status_t code,
    const char *message);

/* Requests. */
kserve_request_t *kserve_request_new(uint32_t ninputs);
void kserve_request_free(kserve_request_t *r);
void kserve_request_fail(kserve_request_t *r, ksv_status_t code,
    const char *message);

#endif /* KSERVE_SCHEDULER_H */
