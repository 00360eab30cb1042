/*
 * ngx_kserve: the automated canary rollout of a routed name, as a pure
 * state machine (nginx-free, so it is unit-tested on its own;
 * ngx_http_kserve_rollout.c holds the directive, the Redis round trips
 * and the weights).
 *
 * A rollout moves a canary variant's share through steps (5, 25, 50,
 * 100 %), one step per interval, while the canary's error rate and p99
 * over the step stay within bounds, and within a margin of the
 * baseline's (every other variant of the route).  A breach rolls it back
 * to 0 %, and so does an ejection of the canary (max_fails failures in a
 * row: an ejected canary gets no traffic, so its error rate would never
 * reach min_requests); a canary that is not ready for ready_timeout
 * aborts it.  A hash of another canary is left alone while it runs.
 *
 * The state lives in one Redis hash, kserve:rollout:NAME, so that every
 * nginx node follows one rollout: every nginx worker reads it each poll
 * together with the cumulative statistics of the variants
 * (kserve:stats:NAME:VARIANT, written by every node), asks
 * ksv_rollout_decide() what to do, and writes the next state with a
 * compare-and-set on "epoch": of two nodes that decide the same step,
 * one writes it.  The counts of a step are the statistics now minus the
 * marks taken when the step began (canary_mark, baseline_mark).
 *
 * Hash fields (see docs/redis.md):
 *
 *     canary           the variant rolled out
 *     state            running | paused | complete | rolled_back | aborted
 *     step, percent    1-based step, and the canary's share in it
 *     steps            "5,25,50,100" (for people; nginx.conf's rule)
 *     epoch            +1 on every write: the compare-and-set key
 *     started_at       unix ms, Redis' clock, the rollout's start
 *     step_started_at  unix ms, the current step's (or resume's) start
 *     updated_at       unix ms of the last write
 *     reason, cause    why it stopped or paused (cause: error_rate, p99,
 *                      margin_error_rate, margin_p99, ejected, not_ready,
 *                      operator)
 *     canary_mark      "REQUESTS FAILURES EJECTIONS LE_5MS .. LE_INF", the
 *                      canary's
 *     baseline_mark    and the baseline's cumulative counts at step start
 *     node             who wrote last ("host pid")
 *     command          written by operators: pause, resume, abort,
 *                      restart; consumed (deleted) by the next write
 */

#ifndef KSV_ROLLOUT_H
#define KSV_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"
#include "ksv_route.h"


#define KSV_ROLLOUT_MAX_STEPS   16
#define KSV_ROLLOUT_NAME_LEN    128
#define KSV_ROLLOUT_REASON_LEN  256
#define KSV_ROLLOUT_NO_MARGIN   UINT32_MAX

/* the buckets of one variant's latency, cumulative (le), as in Redis */
#define KSV_ROLLOUT_NLE         (KSV_ROUTE_NBUCKETS + 1)


typedef struct {
    uint32_t    steps[KSV_ROLLOUT_MAX_STEPS];  /* percent, ascending */
    uint32_t    nsteps;
    uint64_t    interval_ms;
    uint32_t    max_error_bp;       /* 1/100 %: 100 = 1 %; 10000: none */
    uint64_t    max_p99_us;         /* 0: none */
    uint64_t    min_requests;       /* per step, before any judgement */
    uint32_t    margin_bp;          /* KSV_ROLLOUT_NO_MARGIN: none */
    uint64_t    ready_timeout_ms;
} ksv_rollout_conf_t;


typedef enum {
    KSV_ROLLOUT_NONE = 0,           /* no state (no hash, or unknown) */
    KSV_ROLLOUT_RUNNING,
    KSV_ROLLOUT_PAUSED,
    KSV_ROLLOUT_COMPLETE,
    KSV_ROLLOUT_ROLLED_BACK,
    KSV_ROLLOUT_ABORTED,
    KSV_ROLLOUT_INVALID             /* a hash nobody can follow */
} ksv_rollout_state_e;


typedef enum {
    KSV_ROLLOUT_CMD_NONE = 0,
    KSV_ROLLOUT_CMD_PAUSE,
    KSV_ROLLOUT_CMD_RESUME,
    KSV_ROLLOUT_CMD_ABORT,
    KSV_ROLLOUT_CMD_RESTART,
    KSV_ROLLOUT_CMD_UNKNOWN
} ksv_rollout_cmd_e;


typedef enum {
    KSV_ROLLOUT_CAUSE_NONE = 0,
    KSV_ROLLOUT_CAUSE_ERROR_RATE,
    KSV_ROLLOUT_CAUSE_P99,
    KSV_ROLLOUT_CAUSE_MARGIN_ERROR_RATE,
    KSV_ROLLOUT_CAUSE_MARGIN_P99,
    KSV_ROLLOUT_CAUSE_NOT_READY,
    KSV_ROLLOUT_CAUSE_OPERATOR,
    KSV_ROLLOUT_CAUSE_EJECTED,
    KSV_ROLLOUT_NCAUSES
} ksv_rollout_cause_e;


/* cumulative counts of a variant (or the sum of the baseline's) */
typedef struct {
    uint64_t    requests;
    uint64_t    failures;
    uint64_t    ejections;      /* by max_fails failures in a row */
    uint64_t    le[KSV_ROLLOUT_NLE];
} ksv_rollout_counts_t;


typedef struct {
    uint32_t                state;          /* ksv_rollout_state_e */
    uint32_t                step;           /* 0-based index into steps */
    uint32_t                cause;          /* ksv_rollout_cause_e */
    uint32_t                command;        /* ksv_rollout_cmd_e */
    uint64_t                epoch;          /* 0: no hash */
    uint64_t                started_ms;
    uint64_t                step_started_ms;
    uint64_t                updated_ms;
    ksv_rollout_counts_t    canary_mark;
    ksv_rollout_counts_t    baseline_mark;
    char                    canary[KSV_ROLLOUT_NAME_LEN];
    char                    reason[KSV_ROLLOUT_REASON_LEN];
    char                    node[64];
    char                    command_raw[32]; /* as written, for the CAS */
    char                    invalid[64];    /* the field that was bad */
} ksv_rollout_t;


/* What one look at the shared state asks for. */
typedef enum {
    KSV_ROLLOUT_KEEP = 0,       /* nothing to write */
    KSV_ROLLOUT_HOLD,           /* the step is over, too few requests */
    KSV_ROLLOUT_START,          /* no hash (or another canary's): step 1 */
    KSV_ROLLOUT_RESTORE,        /* no hash, but this node knew the state */
    KSV_ROLLOUT_ADVANCE,
    KSV_ROLLOUT_FINISH,         /* the last step is over: complete */
    KSV_ROLLOUT_ROLLBACK,
    KSV_ROLLOUT_ABORT,
    KSV_ROLLOUT_PAUSE,
    KSV_ROLLOUT_RESUME,
    KSV_ROLLOUT_RESTART,
    KSV_ROLLOUT_DROP_COMMAND    /* a command that does not apply: only
                                   the command is deleted, nothing else
                                   written */
} ksv_rollout_action_e;


typedef struct {
    const ksv_rollout_conf_t  *conf;
    ksv_str_t                  canary;      /* the configured canary */
    const ksv_rollout_t       *seen;        /* parsed from Redis */
    const ksv_rollout_t       *known;       /* this node's last, or NULL */
    ksv_rollout_counts_t       canary_now;  /* cumulative, from Redis */
    ksv_rollout_counts_t       baseline_now;
    uint64_t                   now_ms;      /* Redis' clock */
    int                        canary_ready;    /* 1, 0, -1: unknown */
    uint64_t                   not_ready_ms;    /* for how long, if 0 */
} ksv_rollout_input_t;


/*
 * The next state for in: *next is in->seen with the action applied
 * (epoch + 1, the command consumed), to be written whole with a
 * compare-and-set on in->seen's epoch and command; KEEP and HOLD write
 * nothing, DROP_COMMAND only deletes the command.  For every action but
 * KEEP, next->reason says what happened, in words.
 */
ksv_rollout_action_e ksv_rollout_decide(const ksv_rollout_input_t *in,
    ksv_rollout_t *next);

/* The canary's share of the traffic in a state, 0 .. 100. */
uint32_t ksv_rollout_percent(const ksv_rollout_conf_t *conf,
    const ksv_rollout_t *st);

/*
 * The q-quantile (0 < q < 1) of cumulative bucket counts, in
 * microseconds, interpolated inside its bucket as Prometheus'
 * histogram_quantile() does; 0 without counts.
 */
uint64_t ksv_rollout_quantile_us(const uint64_t *le, double q);

/* One statistics field of kserve:stats:NAME:VARIANT added into c. */
void ksv_rollout_count_field(ksv_rollout_counts_t *c, ksv_str_t field,
    ksv_str_t value);

/*
 * A state from HGETALL's (field, value) pairs (n strings).  Fields it does
 * not know are ignored; an absent hash gives state NONE, a bad value of a
 * field it needs gives INVALID with st->invalid naming the field.
 */
void ksv_rollout_parse(ksv_rollout_t *st, const ksv_str_t *fv, size_t n);

/*
 * The hash fields of st as (field, value) pairs for HSET, the values
 * written into buf; returns the number of strings put in fv (at most
 * max), 0 when buf is too small.
 */
size_t ksv_rollout_encode(const ksv_rollout_conf_t *conf,
    const ksv_rollout_t *st, char *buf, size_t size, ksv_str_t *fv,
    size_t max);

/* "running", "rolled_back", ... */
const char *ksv_rollout_state_name(uint32_t state);
const char *ksv_rollout_cause_name(uint32_t cause);
const char *ksv_rollout_action_name(ksv_rollout_action_e action);

/*
 * The rollout as a JSON object for GET /v2/routes: canary, state, step,
 * steps, percent, epoch, times, reason and cause, the bounds, and the
 * current step's counts when given (NULL: left out).
 */
void ksv_rollout_json(ksv_writer_t *w, const ksv_rollout_conf_t *conf,
    ksv_str_t canary, const ksv_rollout_t *st,
    const ksv_rollout_counts_t *canary_step,
    const ksv_rollout_counts_t *baseline_step);

/* now minus mark, or now itself when the counts went backwards */
void ksv_rollout_window(ksv_rollout_counts_t *w,
    const ksv_rollout_counts_t *now, const ksv_rollout_counts_t *mark);

#endif /* KSV_ROLLOUT_H */
