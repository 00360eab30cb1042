/*
 * ngx_kserve instances: the request queue, the dynamic batcher and the
 * answers of one instance process.
 *
 * An instance binds its own ROUTER socket; nginx workers send their
 * INFERs straight to it (one hop) and it batches what it receives.
 * Requests keep the frames they arrived in (the INFER header with its id
 * rewritten to the instance's own, then the input frames, moved, never
 * copied); a batch is handed to the backend as one EXECUTE message
 * (ksv_proto.h), and its EXECUTE_REPLY is split back into one answer per
 * client, sent with the client's id.
 *
 * Triton's config.pbtxt semantics, per instance:
 *
 *   no dynamic_batching, or max_batch_size 0
 *       every request executes alone, in queue order.
 *
 *   dynamic_batching { }  with max_batch_size > 0
 *       dim 0 of every input is the batch; a request brings dim 0 rows.
 *       Requests join the batch in scheduling order while the rows fit
 *       max_batch_size and the request's shapes (every input's dims
 *       after dim 0, unless the input has allow_ragged_batch) equal the
 *       first request's; the first request that does not fit or match
 *       ends the batch (never skipped over).  What then goes, and when,
 *       is ksv_batcher.h's (preferred sizes, max_queue_delay, and "is
 *       another request coming?").  Every new request and the batch
 *       timer re-run the decision.
 *
 *   scheduling order
 *       priority level 1 (highest) first; within a level, arrival
 *       order, then the requests delayed past their queue timeout
 *       (timeout_action DELAY).  The request parameter "priority" (INT;
 *       0 or absent: default_priority_level) picks the level; above
 *       priority_levels is INVALID_ARG.  Without priority_levels there
 *       is one level and the parameter is ignored.
 *
 *   default_queue_policy
 *       max_queue_size bounds the version as a whole: each of its
 *       instances takes ceil(max_queue_size / instances) per level
 *       (UNAVAILABLE "Exceeds maximum queue size"; KSV_DEFAULT_QUEUE
 *       when unset).  nginx sends each request to the instance with the
 *       fewest outstanding, so the instances fill alike.
 *       default_timeout_microseconds bounds the wait in the queue
 *       (REJECT: UNAVAILABLE "Request timeout expired"; DELAY: the
 *       request moves behind its level's other requests);
 *       allow_timeout_override lets the request parameter "timeout"
 *       (INT, microseconds) lower that timeout, never raise it.
 *
 *   preserve_ordering
 *       kept by nginx, per nginx worker (where arrival order is
 *       defined): an instance answers in the order it executes.
 *
 * Independently of the queue policy every request has the module's
 * deadline (INFER timeout_ms): past it, it is answered UNAVAILABLE
 * "Request timeout expired" without being run.  A CANCEL from the
 * client's nginx worker (its client went away) drops a queued request
 * unanswered; one whose batch runs is marked, for the model to see
 * (request.is_cancelled()).
 *
 *   hung models (not in Triton, which waits for execute() forever)
 *       a batch has an execution deadline: the latest of its requests'
 *       deadlines (--execute-timeout after it started for a request
 *       without one) plus KSV_EXECUTE_GRACE_MS, a timer on the scheduler
 *       thread (ksv_instance.c); past it the batch's clients are
 *       answered UNAVAILABLE with why, the reason goes into the
 *       statistics page, and the instance kills itself (nginx fails
 *       anything else it had sent there with that reason).
 *
 * Every timer (deadlines, queue timeouts, the batch delay) is a
 * ksv_timer_t on the loop's one timer heap.
 */

#ifndef KSV_SCHED_H
#define KSV_SCHED_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "ksv_batcher.h"
#include "ksv_frames.h"
#include "ksv_proto.h"
#include "ksv_stats.h"
#include "ksv_timer.h"


#define KSV_DEFAULT_QUEUE        10000  /* when the config sets none */
#define KSV_EXECUTE_GRACE_MS     1000   /* past a batch's deadline
                                           before it counts as hung */
#define KSV_REQUEST_BUCKETS      1024   /* the id table (CANCEL) */


typedef struct ksv_request_s  ksv_request_t;

struct ksv_request_s {
    ksv_request_t      *next;           /* queue links */
    ksv_request_t      *prev;
    ksv_request_t      *hnext;          /* id table chain */
    ksv_timer_t         timer;          /* deadline or queue timeout */
    uint64_t            id;             /* ours, seen by the backend */
    uint64_t            client_id;      /* the nginx worker's */
    zmq_msg_t           identity;       /* the nginx worker's routing id */
    zmq_msg_t           header;         /* INFER frame, id patched */
    zmq_msg_t          *inputs;
    uint32_t            ninputs;
    void              **pins;           /* output regions held mapped */
    uint32_t            npins;

    uint32_t            rows;           /* dim 0, or 1 without batching */
    uint32_t            level;          /* priority level - 1 */
    unsigned            delayed:1;      /* in its level's delayed queue */
    unsigned            queued:1;
    unsigned            running:1;
    unsigned            outstanding:1;  /* counted in the arrivals */
    unsigned            traced:1;       /* KSV_INFER_TRACE: timestamps in
                                           the answer */
    uint8_t             cancelled;      /* atomic: the executor reads it */
    uint64_t            arrived_ns;
    uint64_t            started_ns;     /* handed to the backend */
    uint64_t            deadline_ns;    /* the module's; 0: none */
    uint64_t            timeout_ns;     /* the queue policy's; 0: none */

    uint8_t            *shape;          /* what must match to batch */
    size_t              shape_len;
};

typedef struct {
    ksv_request_t      *head;
    ksv_request_t      *tail;
    uint32_t            len;
} ksv_queue_t;

typedef struct {
    ksv_queue_t         queue;          /* arrival order */
    ksv_queue_t         delayed;        /* past the DELAY timeout */
} ksv_level_t;

typedef struct {
    /* set by the caller before ksv_sched_init */
    const ksv_model_config_t  *config;
    const char                *model_name;
    const char                *model_version;
    const char                *instance_name;
    void                      *socket;          /* ROUTER to nginx */
    ksv_timers_t              *timers;
    ksv_stats_page_t          *stats;
    uint32_t                   ninstances;      /* of the version */
    uint64_t                   execute_timeout_ns;  /* 0: no watchdog
                                                       without a deadline */

    /* the scheduler's own */
    ksv_level_t               *levels;          /* [0] is priority 1 */
    uint32_t                   nlevels;
    uint32_t                   queued;          /* over all levels */
    uint32_t                   max_queue;       /* per level */
    int                        batching;
    ksv_batch_rules_t          rules;
    ksv_arrivals_t             arrivals;
    ksv_timer_t                batch_timer;     /* "look again then" */
    int                        due;             /* decide again now */
    uint64_t                   next_id;
    ksv_request_t             *table[KSV_REQUEST_BUCKETS];

    /* the batch the backend runs */
    ksv_request_t            **running;
    uint32_t                   nrunning;
    uint64_t                   running_id;
} ksv_sched_t;


/* Returns -1 when out of memory. */
int ksv_sched_init(ksv_sched_t *s);
/* Answers everything still queued with UNAVAILABLE (why), frees all. */
void ksv_sched_free(ksv_sched_t *s, const char *why);

/* One message from the ROUTER socket (frames[0] the sender's routing
 * id): an INFER is queued or answered at once, a CANCEL applied.  Every
 * frame is taken over. */
void ksv_sched_receive(ksv_sched_t *s, ksv_frames_t *msg);

/*
 * The next batch, when one should run now: its EXECUTE message into
 * `in` (emptied first) and 1, its execution deadline in *deadline_ns
 * (0: none).  0 when none is due (the batch timer will say when).
 * -1 when out of memory.
 */
int ksv_sched_next_batch(ksv_sched_t *s, ksv_frames_t *in,
    uint64_t *deadline_ns);

/* The backend's EXECUTE_REPLY for the running batch (rc: what run()
 * returned; 0 or -1: nothing usable came back).  Answers every client
 * of the batch; `out` is emptied. */
void ksv_sched_complete(ksv_sched_t *s, ksv_frames_t *out, int rc);

/* Answers every request of the running batch with an error (the
 * watchdog's, before the process ends: the requests are kept). */
void ksv_sched_fail_running(ksv_sched_t *s, ksv_status_t code,
    const char *message);

/* Whether the running request `id` (the backend's id) was cancelled;
 * safe from the executor thread while the batch runs. */
int ksv_sched_is_cancelled(const ksv_sched_t *s, uint64_t id);

#endif /* KSV_SCHED_H */
