/*
 * ngx_kserve: the canary rollout's state machine; see ksv_rollout.h.
 */

#include <stdio.h>
#include <string.h>

#include "ksv_json_write.h"
#include "ksv_rollout.h"


static const char  *ksv_rollout_states[] = {
    "none", "running", "paused", "complete", "rolled_back", "aborted",
    "invalid"
};

static const char  *ksv_rollout_causes[] = {
    "", "error_rate", "p99", "margin_error_rate", "margin_p99", "not_ready",
    "operator", "ejected"
};

static const char  *ksv_rollout_commands[] = {
    "", "pause", "resume", "abort", "restart"
};

static const char  *ksv_rollout_actions[] = {
    "keep", "hold", "start", "restore", "advance", "finish", "rollback",
    "abort", "pause", "resume", "restart", "drop_command"
};


static int ksv_rollout_u64(ksv_str_t s, uint64_t *v);
static int ksv_rollout_counts_parse(ksv_rollout_counts_t *c, ksv_str_t s);
static void ksv_rollout_copy(char *dst, size_t size, ksv_str_t s);
static void ksv_rollout_begin_step(ksv_rollout_t *next,
    const ksv_rollout_input_t *in, uint32_t step);
static int ksv_rollout_breach(const ksv_rollout_input_t *in,
    ksv_rollout_t *next);
static int ksv_rollout_eq(ksv_str_t a, const char *cstr);


const char *
ksv_rollout_state_name(uint32_t state)
{
    return state <= KSV_ROLLOUT_INVALID ? ksv_rollout_states[state] : "?";
}


const char *
ksv_rollout_cause_name(uint32_t cause)
{
    return cause < KSV_ROLLOUT_NCAUSES ? ksv_rollout_causes[cause] : "?";
}


const char *
ksv_rollout_action_name(ksv_rollout_action_e action)
{
    return (size_t) action < sizeof(ksv_rollout_actions)
                             / sizeof(ksv_rollout_actions[0])
           ? ksv_rollout_actions[action] : "?";
}


uint32_t
ksv_rollout_percent(const ksv_rollout_conf_t *conf, const ksv_rollout_t *st)
{
    uint32_t  step;

    if (conf->nsteps == 0) {
        return 0;
    }

    step = st->step < conf->nsteps ? st->step : conf->nsteps - 1;

    switch (st->state) {

    case KSV_ROLLOUT_RUNNING:
    case KSV_ROLLOUT_PAUSED:
        return conf->steps[step];

    case KSV_ROLLOUT_COMPLETE:
        return conf->steps[conf->nsteps - 1];

    default:
        return 0;
    }
}


uint64_t
ksv_rollout_quantile_us(const uint64_t *le, double q)
{
    size_t    i;
    double    rank, below, lo, hi, in;
    uint64_t  total;

    total = le[KSV_ROLLOUT_NLE - 1];

    if (total == 0) {
        return 0;
    }

    rank = q * (double) total;

    for (i = 0; i < KSV_ROUTE_NBUCKETS; i++) {
        if ((double) le[i] >= rank) {
            break;
        }
    }

    /* beyond the last finite bound: that bound, as Prometheus answers */

    if (i == KSV_ROUTE_NBUCKETS) {
        return (uint64_t) ksv_route_buckets_ms[KSV_ROUTE_NBUCKETS - 1] * 1000;
    }

    lo = i ? (double) ksv_route_buckets_ms[i - 1] * 1000 : 0;
    hi = (double) ksv_route_buckets_ms[i] * 1000;
    below = i ? (double) le[i - 1] : 0;
    in = (double) le[i] - below;

    if (in <= 0) {
        return (uint64_t) hi;
    }

    return (uint64_t) (lo + (hi - lo) * (rank - below) / in);
}


void
ksv_rollout_window(ksv_rollout_counts_t *w, const ksv_rollout_counts_t *now,
    const ksv_rollout_counts_t *mark)
{
    size_t  i;

    /* statistics deleted or reset since the mark: count from zero */

    if (now->requests < mark->requests || now->failures < mark->failures
        || now->ejections < mark->ejections)
    {
        *w = *now;
        return;
    }

    for (i = 0; i < KSV_ROLLOUT_NLE; i++) {
        if (now->le[i] < mark->le[i]) {
            *w = *now;
            return;
        }
    }

    w->requests = now->requests - mark->requests;
    w->failures = now->failures - mark->failures;
    w->ejections = now->ejections - mark->ejections;

    for (i = 0; i < KSV_ROLLOUT_NLE; i++) {
        w->le[i] = now->le[i] - mark->le[i];
    }
}


/* ---- deciding ----------------------------------------------------------- */

ksv_rollout_action_e
ksv_rollout_decide(const ksv_rollout_input_t *in, ksv_rollout_t *next)
{
    uint32_t                   step, last;
    uint64_t                   elapsed;
    const ksv_rollout_t       *seen;
    ksv_rollout_counts_t       cw;
    const ksv_rollout_conf_t  *conf;

    seen = in->seen;
    conf = in->conf;
    last = conf->nsteps - 1;

    *next = *seen;
    next->epoch = seen->epoch + 1;
    next->updated_ms = in->now_ms;
    next->command = KSV_ROLLOUT_CMD_NONE;
    next->command_raw[0] = '\0';
    next->invalid[0] = '\0';

    /* a hash of a longer step list (nginx.conf changed): its last step */

    if (next->step > last) {
        next->step = last;
    }

    /*
     * An operator's command first, whatever the state; without a hash
     * only restart means anything (the start below consumes the others).
     */

    switch (seen->state == KSV_ROLLOUT_NONE
            && seen->command != KSV_ROLLOUT_CMD_RESTART
            ? KSV_ROLLOUT_CMD_NONE : seen->command)
    {

    case KSV_ROLLOUT_CMD_NONE:
        break;

    case KSV_ROLLOUT_CMD_RESTART:
        ksv_rollout_copy(next->canary, sizeof(next->canary), in->canary);
        next->state = KSV_ROLLOUT_RUNNING;
        next->started_ms = in->now_ms;
        next->cause = KSV_ROLLOUT_CAUSE_NONE;
        ksv_rollout_begin_step(next, in, 0);
        snprintf(next->reason, sizeof(next->reason),
                 "restarted by operator at step 1 (%u%%)",
                 (unsigned) conf->steps[0]);
        return KSV_ROLLOUT_RESTART;

    case KSV_ROLLOUT_CMD_PAUSE:
        if (seen->state == KSV_ROLLOUT_RUNNING) {
            next->state = KSV_ROLLOUT_PAUSED;
            snprintf(next->reason, sizeof(next->reason),
                     "paused by operator at step %u (%u%%)",
                     (unsigned) seen->step + 1,
                     (unsigned) ksv_rollout_percent(conf, seen));
            return KSV_ROLLOUT_PAUSE;
        }

        goto drop;

    case KSV_ROLLOUT_CMD_RESUME:
        if (seen->state == KSV_ROLLOUT_PAUSED) {
            next->state = KSV_ROLLOUT_RUNNING;
            step = seen->step < last ? seen->step : last;
            ksv_rollout_begin_step(next, in, step);
            snprintf(next->reason, sizeof(next->reason),
                     "resumed by operator at step %u (%u%%)",
                     (unsigned) step + 1, (unsigned) conf->steps[step]);
            return KSV_ROLLOUT_RESUME;
        }

        goto drop;

    case KSV_ROLLOUT_CMD_ABORT:
        if (seen->state == KSV_ROLLOUT_RUNNING
            || seen->state == KSV_ROLLOUT_PAUSED)
        {
            next->state = KSV_ROLLOUT_ABORTED;
            next->cause = KSV_ROLLOUT_CAUSE_OPERATOR;
            snprintf(next->reason, sizeof(next->reason),
                     "aborted by operator at step %u (%u%%)",
                     (unsigned) seen->step + 1,
                     (unsigned) ksv_rollout_percent(conf, seen));
            return KSV_ROLLOUT_ABORT;
        }

        goto drop;

    default: /* KSV_ROLLOUT_CMD_UNKNOWN */
        snprintf(next->reason, sizeof(next->reason),
                 "unknown command \"%s\" ignored: pause, resume, abort or "
                 "restart expected", seen->command_raw);
        return KSV_ROLLOUT_DROP_COMMAND;
    }

    /* no hash: this node's last known state back, or a new rollout */

    if (seen->state == KSV_ROLLOUT_NONE) {

        if (in->known != NULL
            && in->known->state != KSV_ROLLOUT_NONE
            && in->known->state != KSV_ROLLOUT_INVALID
            && ksv_rollout_eq(in->canary, in->known->canary))
        {
            *next = *in->known;
            next->epoch = in->known->epoch + 1;
            next->updated_ms = in->now_ms;
            next->command = KSV_ROLLOUT_CMD_NONE;
            next->command_raw[0] = '\0';
            step = next->step < last ? next->step : last;
            ksv_rollout_begin_step(next, in, step);

            /* a finished rollout keeps its reason: why it finished */

            if (next->state == KSV_ROLLOUT_RUNNING
                || next->state == KSV_ROLLOUT_PAUSED)
            {
                snprintf(next->reason, sizeof(next->reason),
                         "restored as this node knew it (%s, step %u, "
                         "%u%%): the hash was gone",
                         ksv_rollout_state_name(next->state),
                         (unsigned) step + 1,
                         (unsigned) ksv_rollout_percent(conf, next));
            }

            return KSV_ROLLOUT_RESTORE;
        }

        goto start;
    }

    if (seen->state == KSV_ROLLOUT_INVALID) {
        return KSV_ROLLOUT_KEEP;
    }

    /*
     * Another canary's: a node with another nginx.conf, or this node's
     * before a reload.  Replaced once it is over, left alone while it
     * runs (a restart command takes it over at once), so two nginx.conf
     * never take turns writing it.
     */

    if (!ksv_rollout_eq(in->canary, seen->canary)) {
        if (seen->state == KSV_ROLLOUT_RUNNING
            || seen->state == KSV_ROLLOUT_PAUSED)
        {
            return KSV_ROLLOUT_KEEP;
        }

        goto start;
    }

    if (seen->state != KSV_ROLLOUT_RUNNING
        && seen->state != KSV_ROLLOUT_PAUSED)
    {
        return KSV_ROLLOUT_KEEP;
    }

    step = seen->step < last ? seen->step : last;

    if (in->canary_ready == 0 && in->not_ready_ms >= conf->ready_timeout_ms) {
        next->state = KSV_ROLLOUT_ABORTED;
        next->cause = KSV_ROLLOUT_CAUSE_NOT_READY;
        snprintf(next->reason, sizeof(next->reason),
                 "canary %s not ready for %llu ms at step %u (%u%%)",
                 seen->canary, (unsigned long long) in->not_ready_ms,
                 (unsigned) step + 1, (unsigned) conf->steps[step]);
        return KSV_ROLLOUT_ABORT;
    }

    if (seen->state == KSV_ROLLOUT_PAUSED) {
        return KSV_ROLLOUT_KEEP;
    }

    if (ksv_rollout_breach(in, next)) {
        next->state = KSV_ROLLOUT_ROLLED_BACK;
        return KSV_ROLLOUT_ROLLBACK;
    }

    elapsed = in->now_ms > seen->step_started_ms
              ? in->now_ms - seen->step_started_ms : 0;

    if (elapsed < conf->interval_ms) {
        return KSV_ROLLOUT_KEEP;
    }

    ksv_rollout_window(&cw, &in->canary_now, &seen->canary_mark);

    if (cw.requests < conf->min_requests) {
        snprintf(next->reason, sizeof(next->reason),
                 "holding step %u (%u%%): %llu of min_requests %llu "
                 "canary requests after %llu ms", (unsigned) step + 1,
                 (unsigned) conf->steps[step],
                 (unsigned long long) cw.requests,
                 (unsigned long long) conf->min_requests,
                 (unsigned long long) elapsed);
        return KSV_ROLLOUT_HOLD;
    }

    if (step >= last) {
        next->state = KSV_ROLLOUT_COMPLETE;
        next->step = last;
        next->cause = KSV_ROLLOUT_CAUSE_NONE;
        snprintf(next->reason, sizeof(next->reason),
                 "complete at %u%% after %llu ms",
                 (unsigned) conf->steps[last],
                 (unsigned long long) (in->now_ms > seen->started_ms
                                       ? in->now_ms - seen->started_ms : 0));
        return KSV_ROLLOUT_FINISH;
    }

    ksv_rollout_begin_step(next, in, step + 1);
    snprintf(next->reason, sizeof(next->reason),
             "step %u (%u%%) after %llu canary requests at %u%%",
             (unsigned) step + 2, (unsigned) conf->steps[step + 1],
             (unsigned long long) cw.requests, (unsigned) conf->steps[step]);

    return KSV_ROLLOUT_ADVANCE;

drop:

    snprintf(next->reason, sizeof(next->reason),
             "command \"%s\" ignored: the rollout is %s",
             ksv_rollout_commands[seen->command],
             ksv_rollout_state_name(seen->state));
    return KSV_ROLLOUT_DROP_COMMAND;

start:

    ksv_rollout_copy(next->canary, sizeof(next->canary), in->canary);
    next->state = KSV_ROLLOUT_RUNNING;
    next->started_ms = in->now_ms;
    next->cause = KSV_ROLLOUT_CAUSE_NONE;
    next->node[0] = '\0';
    ksv_rollout_begin_step(next, in, 0);
    snprintf(next->reason, sizeof(next->reason),
             "started at step 1 (%u%%)", (unsigned) conf->steps[0]);

    return KSV_ROLLOUT_START;
}


/* a step begins: its clock and the marks its counts are taken from */

static void
ksv_rollout_begin_step(ksv_rollout_t *next, const ksv_rollout_input_t *in,
    uint32_t step)
{
    next->step = step;
    next->step_started_ms = in->now_ms;
    next->canary_mark = in->canary_now;
    next->baseline_mark = in->baseline_now;
}


/* the bounds, over the step so far, once it has min_requests */

static int
ksv_rollout_breach(const ksv_rollout_input_t *in, ksv_rollout_t *next)
{
    double                     crate, brate, margin;
    uint64_t                   cp99, bp99, limit;
    ksv_rollout_counts_t       cw, bw;
    const ksv_rollout_conf_t  *conf;

    conf = in->conf;

    ksv_rollout_window(&cw, &in->canary_now, &in->seen->canary_mark);
    ksv_rollout_window(&bw, &in->baseline_now, &in->seen->baseline_mark);

    /* ejected: the canary fails in a row, whatever min_requests says */

    if (cw.ejections > 0) {
        next->cause = KSV_ROLLOUT_CAUSE_EJECTED;
        snprintf(next->reason, sizeof(next->reason),
                 "rolled back at step %u: canary ejected after max_fails "
                 "failures in a row (%llu of %llu requests failed)",
                 (unsigned) in->seen->step + 1,
                 (unsigned long long) cw.failures,
                 (unsigned long long) cw.requests);
        return 1;
    }

    if (cw.requests == 0 || cw.requests < conf->min_requests) {
        return 0;
    }

    crate = 100.0 * (double) cw.failures / (double) cw.requests;
    cp99 = ksv_rollout_quantile_us(cw.le, 0.99);

    if (cw.failures * 10000 > (uint64_t) conf->max_error_bp * cw.requests) {
        next->cause = KSV_ROLLOUT_CAUSE_ERROR_RATE;
        snprintf(next->reason, sizeof(next->reason),
                 "rolled back at step %u: canary error rate %.2f%% > "
                 "max_error_rate %.2f%% (%llu of %llu requests failed)",
                 (unsigned) in->seen->step + 1, crate,
                 conf->max_error_bp / 100.0,
                 (unsigned long long) cw.failures,
                 (unsigned long long) cw.requests);
        return 1;
    }

    if (conf->max_p99_us && cp99 > conf->max_p99_us) {
        next->cause = KSV_ROLLOUT_CAUSE_P99;
        snprintf(next->reason, sizeof(next->reason),
                 "rolled back at step %u: canary p99 %llu ms > max_p99 "
                 "%llu ms (%llu requests)", (unsigned) in->seen->step + 1,
                 (unsigned long long) (cp99 / 1000),
                 (unsigned long long) (conf->max_p99_us / 1000),
                 (unsigned long long) cw.requests);
        return 1;
    }

    /* against the baseline, when both have enough to compare */

    if (conf->margin_bp == KSV_ROLLOUT_NO_MARGIN || bw.requests == 0
        || bw.requests < conf->min_requests)
    {
        return 0;
    }

    brate = 100.0 * (double) bw.failures / (double) bw.requests;
    margin = conf->margin_bp / 100.0;

    if (crate > brate + margin) {
        next->cause = KSV_ROLLOUT_CAUSE_MARGIN_ERROR_RATE;
        snprintf(next->reason, sizeof(next->reason),
                 "rolled back at step %u: canary error rate %.2f%% exceeds "
                 "the baseline's %.2f%% by more than margin %.2f%%",
                 (unsigned) in->seen->step + 1, crate, brate, margin);
        return 1;
    }

    bp99 = ksv_rollout_quantile_us(bw.le, 0.99);
    limit = bp99 + bp99 * conf->margin_bp / 10000;

    if (cp99 > limit) {
        next->cause = KSV_ROLLOUT_CAUSE_MARGIN_P99;
        snprintf(next->reason, sizeof(next->reason),
                 "rolled back at step %u: canary p99 %llu ms exceeds the "
                 "baseline's %llu ms by more than margin %.2f%%",
                 (unsigned) in->seen->step + 1,
                 (unsigned long long) (cp99 / 1000),
                 (unsigned long long) (bp99 / 1000), margin);
        return 1;
    }

    return 0;
}


/* ---- the hash ------------------------------------------------------------ */

void
ksv_rollout_count_field(ksv_rollout_counts_t *c, ksv_str_t field,
    ksv_str_t value)
{
    size_t    i;
    uint64_t  v;
    char      name[32];

    if (ksv_rollout_u64(value, &v) != 0) {
        return;
    }

    if (ksv_rollout_eq(field, "requests")) {
        c->requests += v;
        return;
    }

    if (ksv_rollout_eq(field, "failure")) {
        c->failures += v;
        return;
    }

    if (ksv_rollout_eq(field, "ejections")) {
        c->ejections += v;
        return;
    }

    if (ksv_rollout_eq(field, "latency_le_inf")) {
        c->le[KSV_ROUTE_NBUCKETS] += v;
        return;
    }

    for (i = 0; i < KSV_ROUTE_NBUCKETS; i++) {
        snprintf(name, sizeof(name), "latency_le_%ums",
                 (unsigned) ksv_route_buckets_ms[i]);

        if (ksv_rollout_eq(field, name)) {
            c->le[i] += v;
            return;
        }
    }
}


void
ksv_rollout_parse(ksv_rollout_t *st, const ksv_str_t *fv, size_t n)
{
    int          have_epoch, have_state, have_step;
    size_t       i, k;
    uint64_t     v;
    ksv_str_t    f, val;
    const char  *bad;

    memset(st, 0, sizeof(ksv_rollout_t));

    have_epoch = 0;
    have_state = 0;
    have_step = 0;
    bad = NULL;

    for (i = 0; i + 1 < n; i += 2) {
        f = fv[i];
        val = fv[i + 1];

        if (ksv_rollout_eq(f, "command")) {
            ksv_rollout_copy(st->command_raw, sizeof(st->command_raw), val);
            st->command = KSV_ROLLOUT_CMD_UNKNOWN;

            /* an operator's "  pause" or "PAUSE" is not guessed at */

            for (k = 1; k <= KSV_ROLLOUT_CMD_RESTART; k++) {
                if (ksv_rollout_eq(val, ksv_rollout_commands[k])) {
                    st->command = (uint32_t) k;
                }
            }

            /* a command longer than its copy is unknown, not truncated */

            if (val.len >= sizeof(st->command_raw)) {
                st->command = KSV_ROLLOUT_CMD_UNKNOWN;
            }

            if (val.len == 0) {
                st->command = KSV_ROLLOUT_CMD_NONE;
            }

        } else if (ksv_rollout_eq(f, "state")) {
            have_state = 1;
            st->state = KSV_ROLLOUT_INVALID;

            for (k = KSV_ROLLOUT_RUNNING; k < KSV_ROLLOUT_INVALID; k++) {
                if (ksv_rollout_eq(val, ksv_rollout_states[k])) {
                    st->state = (uint32_t) k;
                }
            }

            if (st->state == KSV_ROLLOUT_INVALID) {
                bad = "state";
            }

        } else if (ksv_rollout_eq(f, "epoch")) {
            if (ksv_rollout_u64(val, &st->epoch) != 0 || st->epoch == 0) {
                bad = "epoch";
            }

            have_epoch = 1;

        } else if (ksv_rollout_eq(f, "step")) {
            if (ksv_rollout_u64(val, &v) != 0 || v == 0
                || v > KSV_ROLLOUT_MAX_STEPS)
            {
                bad = "step";

            } else {
                st->step = (uint32_t) (v - 1);
            }

            have_step = 1;

        } else if (ksv_rollout_eq(f, "canary")) {
            if (val.len == 0 || val.len >= sizeof(st->canary)) {
                bad = "canary";

            } else {
                ksv_rollout_copy(st->canary, sizeof(st->canary), val);
            }

        } else if (ksv_rollout_eq(f, "started_at")) {
            if (ksv_rollout_u64(val, &st->started_ms) != 0) {
                bad = "started_at";
            }

        } else if (ksv_rollout_eq(f, "step_started_at")) {
            if (ksv_rollout_u64(val, &st->step_started_ms) != 0) {
                bad = "step_started_at";
            }

        } else if (ksv_rollout_eq(f, "updated_at")) {
            (void) ksv_rollout_u64(val, &st->updated_ms);

        } else if (ksv_rollout_eq(f, "canary_mark")) {
            if (ksv_rollout_counts_parse(&st->canary_mark, val) != 0) {
                bad = "canary_mark";
            }

        } else if (ksv_rollout_eq(f, "baseline_mark")) {
            if (ksv_rollout_counts_parse(&st->baseline_mark, val) != 0) {
                bad = "baseline_mark";
            }

        } else if (ksv_rollout_eq(f, "reason")) {
            ksv_rollout_copy(st->reason, sizeof(st->reason), val);

        } else if (ksv_rollout_eq(f, "node")) {
            ksv_rollout_copy(st->node, sizeof(st->node), val);

        } else if (ksv_rollout_eq(f, "cause")) {
            for (k = 1; k < KSV_ROLLOUT_NCAUSES; k++) {
                if (ksv_rollout_eq(val, ksv_rollout_causes[k])) {
                    st->cause = (uint32_t) k;
                }
            }
        }
    }

    /* no epoch: nobody started it (an operator's command alone, or none) */

    if (!have_epoch) {
        st->state = KSV_ROLLOUT_NONE;
        st->epoch = 0;
        return;
    }

    if (bad == NULL && !have_state) {
        bad = "state";
    }

    if (bad == NULL && !have_step) {
        bad = "step";
    }

    if (bad == NULL && st->canary[0] == '\0') {
        bad = "canary";
    }

    if (bad != NULL) {
        st->state = KSV_ROLLOUT_INVALID;
        snprintf(st->invalid, sizeof(st->invalid), "%s", bad);
    }
}


size_t
ksv_rollout_encode(const ksv_rollout_conf_t *conf, const ksv_rollout_t *st,
    char *buf, size_t size, ksv_str_t *fv, size_t max)
{
    int                          len;
    char                        *p, *last;
    size_t                       n, i, k;
    const ksv_rollout_counts_t  *c;

    p = buf;
    last = buf + size;
    n = 0;

#define ksv_rollout_put(field, ...)                                          \
    do {                                                                     \
        if (n + 2 > max || p >= last) {                                      \
            return 0;                                                        \
        }                                                                    \
        len = snprintf(p, last - p, __VA_ARGS__);                            \
        if (len < 0 || len >= last - p) {                                    \
            return 0;                                                        \
        }                                                                    \
        fv[n++] = ksv_str_c(field);                                          \
        fv[n].data = p;                                                      \
        fv[n++].len = (uint32_t) len;                                        \
        p += len + 1;                                                        \
    } while (0)

    ksv_rollout_put("canary", "%s", st->canary);
    ksv_rollout_put("state", "%s", ksv_rollout_state_name(st->state));
    ksv_rollout_put("step", "%u", (unsigned) st->step + 1);
    ksv_rollout_put("percent", "%u", (unsigned) ksv_rollout_percent(conf, st));
    ksv_rollout_put("epoch", "%llu", (unsigned long long) st->epoch);
    ksv_rollout_put("started_at", "%llu",
                    (unsigned long long) st->started_ms);
    ksv_rollout_put("step_started_at", "%llu",
                    (unsigned long long) st->step_started_ms);
    ksv_rollout_put("updated_at", "%llu",
                    (unsigned long long) st->updated_ms);
    ksv_rollout_put("reason", "%s", st->reason);
    ksv_rollout_put("cause", "%s", ksv_rollout_cause_name(st->cause));
    ksv_rollout_put("node", "%s", st->node);

    /* the step list, for people reading the hash */

    if (n + 2 > max) {
        return 0;
    }

    fv[n++] = ksv_str_c("steps");
    fv[n].data = p;

    for (i = 0; i < conf->nsteps; i++) {
        len = snprintf(p, last - p, i ? ",%u" : "%u",
                       (unsigned) conf->steps[i]);
        if (len < 0 || len >= last - p) {
            return 0;
        }

        p += len;
    }

    if (p >= last) {
        return 0;
    }

    fv[n].len = (uint32_t) (p - fv[n].data);
    n++;
    *p++ = '\0';

    for (k = 0; k < 2; k++) {
        c = k ? &st->baseline_mark : &st->canary_mark;

        if (n + 2 > max) {
            return 0;
        }

        fv[n++] = ksv_str_c(k ? "baseline_mark" : "canary_mark");
        fv[n].data = p;

        len = snprintf(p, last - p, "%llu %llu %llu",
                       (unsigned long long) c->requests,
                       (unsigned long long) c->failures,
                       (unsigned long long) c->ejections);
        if (len < 0 || len >= last - p) {
            return 0;
        }

        p += len;

        for (i = 0; i < KSV_ROLLOUT_NLE; i++) {
            len = snprintf(p, last - p, " %llu",
                           (unsigned long long) c->le[i]);
            if (len < 0 || len >= last - p) {
                return 0;
            }

            p += len;
        }

        if (p >= last) {
            return 0;
        }

        fv[n].len = (uint32_t) (p - fv[n].data);
        n++;
        *p++ = '\0';
    }

#undef ksv_rollout_put

    return n;
}


/* ---- JSON ---------------------------------------------------------------- */

static void
ksv_rollout_json_counts(ksv_writer_t *w, const ksv_rollout_counts_t *c)
{
    ksv_json_lit(w, "{\"requests\":");
    ksv_json_u64(w, c->requests);
    ksv_json_lit(w, ",\"failures\":");
    ksv_json_u64(w, c->failures);
    ksv_json_lit(w, ",\"error_rate\":");
    ksv_json_f64(w, c->requests ? (double) c->failures / c->requests : 0);
    ksv_json_lit(w, ",\"p99_ms\":");
    ksv_json_f64(w, ksv_rollout_quantile_us(c->le, 0.99) / 1000.0);
    ksv_put_u8(w, '}');
}


void
ksv_rollout_json(ksv_writer_t *w, const ksv_rollout_conf_t *conf,
    ksv_str_t canary, const ksv_rollout_t *st,
    const ksv_rollout_counts_t *canary_step,
    const ksv_rollout_counts_t *baseline_step)
{
    uint32_t  i;

    ksv_json_lit(w, "{\"canary\":");
    ksv_json_string(w, canary.data, canary.len);
    ksv_json_lit(w, ",\"state\":");
    ksv_json_cstr(w, ksv_rollout_state_name(st->state));
    ksv_json_lit(w, ",\"step\":");
    ksv_json_u64(w, st->state == KSV_ROLLOUT_NONE ? 0 : st->step + 1);
    ksv_json_lit(w, ",\"percent\":");
    ksv_json_u64(w, ksv_rollout_percent(conf, st));
    ksv_json_lit(w, ",\"steps\":[");

    for (i = 0; i < conf->nsteps; i++) {
        if (i) {
            ksv_put_u8(w, ',');
        }

        ksv_json_u64(w, conf->steps[i]);
    }

    ksv_json_lit(w, "],\"epoch\":");
    ksv_json_u64(w, st->epoch);
    ksv_json_lit(w, ",\"started_at_ms\":");
    ksv_json_u64(w, st->started_ms);
    ksv_json_lit(w, ",\"step_started_at_ms\":");
    ksv_json_u64(w, st->step_started_ms);
    ksv_json_lit(w, ",\"reason\":");
    ksv_json_cstr(w, st->reason);
    ksv_json_lit(w, ",\"cause\":");
    ksv_json_cstr(w, ksv_rollout_cause_name(st->cause));

    if (st->state == KSV_ROLLOUT_INVALID) {
        ksv_json_lit(w, ",\"invalid_field\":");
        ksv_json_cstr(w, st->invalid);
    }

    ksv_json_lit(w, ",\"interval_ms\":");
    ksv_json_u64(w, conf->interval_ms);
    ksv_json_lit(w, ",\"max_error_rate\":");
    ksv_json_f64(w, conf->max_error_bp / 10000.0);
    ksv_json_lit(w, ",\"max_p99_ms\":");
    ksv_json_f64(w, conf->max_p99_us / 1000.0);
    ksv_json_lit(w, ",\"min_requests\":");
    ksv_json_u64(w, conf->min_requests);
    ksv_json_lit(w, ",\"margin\":");

    if (conf->margin_bp == KSV_ROLLOUT_NO_MARGIN) {
        ksv_json_lit(w, "null");

    } else {
        ksv_json_f64(w, conf->margin_bp / 10000.0);
    }

    ksv_json_lit(w, ",\"ready_timeout_ms\":");
    ksv_json_u64(w, conf->ready_timeout_ms);

    if (canary_step != NULL && baseline_step != NULL) {
        ksv_json_lit(w, ",\"this_step\":{\"canary\":");
        ksv_rollout_json_counts(w, canary_step);
        ksv_json_lit(w, ",\"baseline\":");
        ksv_rollout_json_counts(w, baseline_step);
        ksv_put_u8(w, '}');
    }

    ksv_put_u8(w, '}');
}


/* ---- helpers ------------------------------------------------------------- */

static int
ksv_rollout_eq(ksv_str_t a, const char *cstr)
{
    size_t  len;

    len = strlen(cstr);

    return a.len == len && (len == 0 || memcmp(a.data, cstr, len) == 0);
}


/* decimal digits only, at most 19 of them */

static int
ksv_rollout_u64(ksv_str_t s, uint64_t *v)
{
    uint32_t  i;
    uint64_t  n;

    if (s.len == 0 || s.len > 19) {
        return -1;
    }

    n = 0;

    for (i = 0; i < s.len; i++) {
        if (s.data[i] < '0' || s.data[i] > '9') {
            return -1;
        }

        n = n * 10 + (uint64_t) (s.data[i] - '0');
    }

    *v = n;

    return 0;
}


/* "REQUESTS FAILURES EJECTIONS LE_0 .. LE_INF", single spaces */

static int
ksv_rollout_counts_parse(ksv_rollout_counts_t *c, ksv_str_t s)
{
    size_t     n;
    uint32_t   i, start;
    uint64_t  *slot[3 + KSV_ROLLOUT_NLE];
    ksv_str_t  word;

    slot[0] = &c->requests;
    slot[1] = &c->failures;
    slot[2] = &c->ejections;

    for (n = 0; n < KSV_ROLLOUT_NLE; n++) {
        slot[3 + n] = &c->le[n];
    }

    n = 0;
    start = 0;

    for (i = 0; i <= s.len; i++) {
        if (i < s.len && s.data[i] != ' ') {
            continue;
        }

        if (n == sizeof(slot) / sizeof(slot[0])) {
            return -1;
        }

        word.data = s.data + start;
        word.len = i - start;

        if (ksv_rollout_u64(word, slot[n]) != 0) {
            return -1;
        }

        n++;
        start = i + 1;
    }

    return n == sizeof(slot) / sizeof(slot[0]) ? 0 : -1;
}


/* at most size - 1 bytes and a NUL; a NUL inside ends the copy */

static void
ksv_rollout_copy(char *dst, size_t size, ksv_str_t s)
{
    size_t  len;

    len = s.len < size - 1 ? s.len : size - 1;

    if (len) {
        memcpy(dst, s.data, len);
    }

    dst[len] = '\0';
    dst[strnlen(dst, len)] = '\0';
}
