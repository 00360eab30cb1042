/*
 * Unit tests for ngx_module/ksv_rollout.c: a canary rollout's steps,
 * holds, rollbacks and operator commands, decided from counts, and the
 * Redis hash it lives in, read and written back.
 */

#include <stdlib.h>
#include <string.h>

#include "ksv_rollout.h"
#include "ksv_test.h"


static ksv_rollout_conf_t  conf;


static void
setup(void)
{
    memset(&conf, 0, sizeof(conf));

    /* steps=5,25,50,100 interval=30s max_error_rate=1% max_p99=300ms
     * min_requests=200 */
    conf.steps[0] = 5;
    conf.steps[1] = 25;
    conf.steps[2] = 50;
    conf.steps[3] = 100;
    conf.nsteps = 4;
    conf.interval_ms = 30000;
    conf.max_error_bp = 100;
    conf.max_p99_us = 300000;
    conf.min_requests = 200;
    conf.margin_bp = KSV_ROLLOUT_NO_MARGIN;
    conf.ready_timeout_ms = 30000;
}


/* n requests, failures of them failed, all taking ms milliseconds */
static void
add(ksv_rollout_counts_t *c, uint64_t n, uint64_t failures, uint32_t ms)
{
    size_t  b, i;

    b = ksv_route_bucket((uint64_t) ms * 1000);

    c->requests += n;
    c->failures += failures;

    for (i = b; i < KSV_ROLLOUT_NLE; i++) {
        c->le[i] += n;
    }
}


static void
input(ksv_rollout_input_t *in, const ksv_rollout_t *seen, uint64_t now)
{
    memset(in, 0, sizeof(*in));
    in->conf = &conf;
    in->canary = ksv_str_lit("fraud_v2");
    in->seen = seen;
    in->now_ms = now;
    in->canary_ready = 1;
}


/* what Redis would hold after writing next: encoded, then parsed back */
static void
roundtrip(const ksv_rollout_t *next, ksv_rollout_t *back)
{
    char       buf[4096];
    size_t     n;
    ksv_str_t  fv[64];

    n = ksv_rollout_encode(&conf, next, buf, sizeof(buf), fv, 64);
    CHECK(n > 0 && n % 2 == 0);
    ksv_rollout_parse(back, fv, n);
}


static void
test_a_rollout_that_completes(void)
{
    uint32_t             k;
    uint64_t             t;
    ksv_rollout_t        none, st, next;
    ksv_rollout_input_t  in;

    memset(&none, 0, sizeof(none));

    /* no hash: the first look starts it at 5 % */

    input(&in, &none, 1000);
    add(&in.canary_now, 7, 0, 3);
    add(&in.baseline_now, 900, 2, 3);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_START);
    CHECK(next.state == KSV_ROLLOUT_RUNNING && next.step == 0);
    CHECK(next.epoch == 1 && next.started_ms == 1000);
    CHECK(strcmp(next.canary, "fraud_v2") == 0);
    CHECK(next.canary_mark.requests == 7);
    CHECK(ksv_rollout_percent(&conf, &next) == 5);

    roundtrip(&next, &st);
    CHECK(st.state == KSV_ROLLOUT_RUNNING && st.epoch == 1);
    CHECK(st.canary_mark.requests == 7 && st.baseline_mark.failures == 2);
    CHECK(memcmp(&st.canary_mark, &next.canary_mark,
                 sizeof(st.canary_mark)) == 0);

    t = 1000;

    for (k = 0; k < 4; k++) {

        /* within the interval: nothing to do, even with many requests */

        input(&in, &st, t + 29999);
        in.canary_now = st.canary_mark;
        in.baseline_now = st.baseline_mark;
        add(&in.canary_now, 250, 1, 20);
        add(&in.baseline_now, 2000, 4, 20);
        CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);

        /* the interval is over, the counts are good: the next step */

        in.now_ms = t + 30000;

        if (k < 3) {
            CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ADVANCE);
            CHECK(next.step == k + 1);
            CHECK(next.step_started_ms == t + 30000);
            CHECK(next.canary_mark.requests == in.canary_now.requests);
            CHECK(ksv_rollout_percent(&conf, &next) == conf.steps[k + 1]);

        } else {
            CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_FINISH);
            CHECK(next.state == KSV_ROLLOUT_COMPLETE);
            CHECK(ksv_rollout_percent(&conf, &next) == 100);
            CHECK(strstr(next.reason, "complete at 100%") != NULL);
        }

        CHECK(next.epoch == st.epoch + 1);

        roundtrip(&next, &st);
        t += 30000;
    }

    /* complete stays complete */

    input(&in, &st, t + 100000);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);
}


static void
test_too_few_requests_hold_the_step(void)
{
    ksv_rollout_t        st, next;
    ksv_rollout_input_t  in;

    memset(&st, 0, sizeof(st));
    st.state = KSV_ROLLOUT_RUNNING;
    st.step = 1;
    st.epoch = 5;
    strcpy(st.canary, "fraud_v2");

    input(&in, &st, 90000);
    add(&in.canary_now, 199, 0, 2);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_HOLD);
    CHECK(strstr(next.reason, "199 of min_requests 200") != NULL);

    /* many errors, but too few requests to judge: still a hold */

    input(&in, &st, 90000);
    add(&in.canary_now, 199, 150, 2);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_HOLD);

    input(&in, &st, 90000);
    add(&in.canary_now, 200, 0, 2);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ADVANCE);
    CHECK(next.step == 2);
}


static void
test_breaches_roll_back(void)
{
    ksv_rollout_t        st, next, back;
    ksv_rollout_input_t  in;

    memset(&st, 0, sizeof(st));
    st.state = KSV_ROLLOUT_RUNNING;
    st.step = 2;
    st.epoch = 9;
    st.step_started_ms = 1000;
    strcpy(st.canary, "fraud_v2");
    add(&st.canary_mark, 5000, 4000, 1);  /* an earlier step's, not ours */
    st.canary_mark.ejections = 4;

    /* errors: 3 of 200 is 1.5 % > 1 %, before the interval is over */

    input(&in, &st, 2000);
    in.canary_now = st.canary_mark;
    add(&in.canary_now, 197, 0, 4);
    add(&in.canary_now, 3, 3, 4);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ROLLBACK);
    CHECK(next.state == KSV_ROLLOUT_ROLLED_BACK);
    CHECK(next.cause == KSV_ROLLOUT_CAUSE_ERROR_RATE);
    CHECK(ksv_rollout_percent(&conf, &next) == 0);
    CHECK(strstr(next.reason, "error rate 1.50% > max_error_rate 1.00% "
                 "(3 of 200 requests failed)") != NULL);

    roundtrip(&next, &back);
    CHECK(back.state == KSV_ROLLOUT_ROLLED_BACK);
    CHECK(back.cause == KSV_ROLLOUT_CAUSE_ERROR_RATE);
    CHECK(strcmp(back.reason, next.reason) == 0);

    /* exactly 1 %: within the bound */

    input(&in, &st, 2000);
    in.canary_now = st.canary_mark;
    add(&in.canary_now, 198, 0, 4);
    add(&in.canary_now, 2, 2, 4);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);

    /* latency: 3 of 200 at 400 ms put p99 in (250, 500] ms */

    input(&in, &st, 2000);
    in.canary_now = st.canary_mark;
    add(&in.canary_now, 197, 0, 40);
    add(&in.canary_now, 3, 0, 400);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ROLLBACK);
    CHECK(next.cause == KSV_ROLLOUT_CAUSE_P99);
    CHECK(strstr(next.reason, "> max_p99 300 ms (200 requests)") != NULL);

    /* ejected (max_fails in a row): at once, before min_requests */

    input(&in, &st, 1100);
    in.canary_now = st.canary_mark;
    add(&in.canary_now, 3, 3, 4);
    in.canary_now.ejections++;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ROLLBACK);
    CHECK(next.cause == KSV_ROLLOUT_CAUSE_EJECTED);
    CHECK(strstr(next.reason, "canary ejected after max_fails failures in "
                 "a row (3 of 3 requests failed)") != NULL);

    roundtrip(&next, &back);
    CHECK(back.cause == KSV_ROLLOUT_CAUSE_EJECTED);
    CHECK(back.canary_mark.ejections == 4);

    /* 1 of 200 slow: p99 stays in the 50 ms bucket */

    input(&in, &st, 2000);
    in.canary_now = st.canary_mark;
    add(&in.canary_now, 199, 0, 40);
    add(&in.canary_now, 1, 0, 400);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);
}


static void
test_the_baseline_margin(void)
{
    ksv_rollout_t        st, next;
    ksv_rollout_input_t  in;

    memset(&st, 0, sizeof(st));
    st.state = KSV_ROLLOUT_RUNNING;
    st.epoch = 2;
    strcpy(st.canary, "fraud_v2");

    conf.max_error_bp = 1000;           /* 10 % */
    conf.margin_bp = 50;                /* 0.5 points, or p99 + 0.5 % */

    /* canary 2 %, baseline 1 %: more than 0.5 points worse */

    input(&in, &st, 10);
    add(&in.canary_now, 196, 0, 3);
    add(&in.canary_now, 4, 4, 3);
    add(&in.baseline_now, 990, 0, 3);
    add(&in.baseline_now, 10, 10, 3);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ROLLBACK);
    CHECK(next.cause == KSV_ROLLOUT_CAUSE_MARGIN_ERROR_RATE);

    /* without the baseline's min_requests, no comparison */

    input(&in, &st, 10);
    add(&in.canary_now, 196, 0, 3);
    add(&in.canary_now, 4, 4, 3);
    add(&in.baseline_now, 199, 0, 3);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);

    /* latency: the canary 40 ms, the baseline 4 ms */

    input(&in, &st, 10);
    add(&in.canary_now, 200, 0, 40);
    add(&in.baseline_now, 1000, 0, 4);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ROLLBACK);
    CHECK(next.cause == KSV_ROLLOUT_CAUSE_MARGIN_P99);

    input(&in, &st, 10);
    add(&in.canary_now, 200, 0, 4);
    add(&in.baseline_now, 1000, 0, 4);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);

    setup();
}


static void
test_a_canary_not_ready_aborts(void)
{
    ksv_rollout_t        st, next;
    ksv_rollout_input_t  in;

    memset(&st, 0, sizeof(st));
    st.state = KSV_ROLLOUT_RUNNING;
    st.epoch = 3;
    strcpy(st.canary, "fraud_v2");

    input(&in, &st, 100);
    in.canary_ready = 0;
    in.not_ready_ms = 29999;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);

    in.not_ready_ms = 30000;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ABORT);
    CHECK(next.state == KSV_ROLLOUT_ABORTED);
    CHECK(next.cause == KSV_ROLLOUT_CAUSE_NOT_READY);
    CHECK(strstr(next.reason, "canary fraud_v2 not ready for 30000 ms")
          != NULL);

    /* no model index yet: not known, so no abort */

    in.canary_ready = -1;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);

    /* paused rollouts abort too */

    st.state = KSV_ROLLOUT_PAUSED;
    in.canary_ready = 0;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ABORT);
}


static void
test_operator_commands(void)
{
    ksv_rollout_t        st, next, back;
    ksv_rollout_input_t  in;

    memset(&st, 0, sizeof(st));
    st.state = KSV_ROLLOUT_RUNNING;
    st.step = 1;
    st.epoch = 4;
    st.step_started_ms = 0;
    strcpy(st.canary, "fraud_v2");
    st.command = KSV_ROLLOUT_CMD_PAUSE;
    strcpy(st.command_raw, "pause");

    /* pause wins over an advance that is due */

    input(&in, &st, 60000);
    add(&in.canary_now, 500, 0, 1);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_PAUSE);
    CHECK(next.state == KSV_ROLLOUT_PAUSED && next.step == 1);
    CHECK(next.command == KSV_ROLLOUT_CMD_NONE);
    CHECK(ksv_rollout_percent(&conf, &next) == 25);

    /* paused: the interval passes, nothing moves */

    roundtrip(&next, &st);
    input(&in, &st, 999999);
    add(&in.canary_now, 5000, 0, 1);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);

    /* resume: the same step, a fresh window */

    st.command = KSV_ROLLOUT_CMD_RESUME;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_RESUME);
    CHECK(next.state == KSV_ROLLOUT_RUNNING && next.step == 1);
    CHECK(next.step_started_ms == 999999);
    CHECK(next.canary_mark.requests == 5000);

    /* resume of a running rollout: the command only is dropped */

    roundtrip(&next, &st);
    st.command = KSV_ROLLOUT_CMD_RESUME;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_DROP_COMMAND);
    CHECK(strstr(next.reason, "\"resume\" ignored: the rollout is running")
          != NULL);

    st.command = KSV_ROLLOUT_CMD_ABORT;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_ABORT);
    CHECK(next.state == KSV_ROLLOUT_ABORTED);
    CHECK(next.cause == KSV_ROLLOUT_CAUSE_OPERATOR);
    CHECK(ksv_rollout_percent(&conf, &next) == 0);

    /* restart: from anything, step 1 again */

    roundtrip(&next, &back);
    back.command = KSV_ROLLOUT_CMD_RESTART;
    input(&in, &back, 1234567);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_RESTART);
    CHECK(next.state == KSV_ROLLOUT_RUNNING && next.step == 0);
    CHECK(next.started_ms == 1234567);
    CHECK(next.cause == KSV_ROLLOUT_CAUSE_NONE);

    back.command = KSV_ROLLOUT_CMD_UNKNOWN;
    strcpy(back.command_raw, "PAUSE");
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_DROP_COMMAND);
    CHECK(strstr(next.reason, "unknown command \"PAUSE\"") != NULL);
}


static void
test_no_hash_and_other_canaries(void)
{
    ksv_rollout_t        none, known, st, next;
    ksv_rollout_input_t  in;

    memset(&none, 0, sizeof(none));

    /* the hash is gone (a Redis restarted empty): this node's state back */

    memset(&known, 0, sizeof(known));
    known.state = KSV_ROLLOUT_RUNNING;
    known.step = 2;
    known.epoch = 17;
    strcpy(known.canary, "fraud_v2");

    input(&in, &none, 5000);
    in.known = &known;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_RESTORE);
    CHECK(next.step == 2 && next.epoch == 18);
    CHECK(next.step_started_ms == 5000);
    CHECK(ksv_rollout_percent(&conf, &next) == 50);
    CHECK(strstr(next.reason, "restored as this node knew it (running, "
                 "step 3, 50%)") != NULL);

    /* a finished one comes back finished, with its reason */

    known.state = KSV_ROLLOUT_ROLLED_BACK;
    strcpy(known.reason, "p99 too high");
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_RESTORE);
    CHECK(next.state == KSV_ROLLOUT_ROLLED_BACK);
    CHECK(strcmp(next.reason, "p99 too high") == 0);
    CHECK(ksv_rollout_percent(&conf, &next) == 0);
    known.state = KSV_ROLLOUT_RUNNING;

    /* what it knew was another canary's: a new rollout */

    strcpy(known.canary, "fraud_v3");
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_START);

    /* a hash with only an operator's command: the start consumes it */

    none.command = KSV_ROLLOUT_CMD_PAUSE;
    in.known = NULL;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_START);
    CHECK(next.command == KSV_ROLLOUT_CMD_NONE);

    /* the hash names another canary (nginx.conf changed): a new one */

    memset(&st, 0, sizeof(st));
    st.state = KSV_ROLLOUT_COMPLETE;
    st.step = 3;
    st.epoch = 30;
    strcpy(st.canary, "fraud_v1");
    input(&in, &st, 7000);
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_START);
    CHECK(next.epoch == 31 && next.step == 0);
    CHECK(strcmp(next.canary, "fraud_v2") == 0);

    /* another canary's, still running: left alone, until a restart */

    st.state = KSV_ROLLOUT_RUNNING;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);
    st.state = KSV_ROLLOUT_PAUSED;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);
    st.command = KSV_ROLLOUT_CMD_RESTART;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_RESTART);
    CHECK(strcmp(next.canary, "fraud_v2") == 0);
    st.command = KSV_ROLLOUT_CMD_NONE;

    /* a hash nobody can follow: left alone, until a restart */

    st.state = KSV_ROLLOUT_INVALID;
    strcpy(st.canary, "fraud_v2");
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_KEEP);
    st.command = KSV_ROLLOUT_CMD_RESTART;
    CHECK(ksv_rollout_decide(&in, &next) == KSV_ROLLOUT_RESTART);
}


static void
test_parse_the_hash(void)
{
    size_t         n;
    ksv_str_t      fv[16];
    ksv_rollout_t  st;

#define kv(f, v)                                                             \
    do { fv[n++] = ksv_str_lit(f); fv[n++] = ksv_str_lit(v); } while (0)

    /* nothing, or only a command */

    ksv_rollout_parse(&st, NULL, 0);
    CHECK(st.state == KSV_ROLLOUT_NONE && st.epoch == 0);

    n = 0;
    kv("command", "restart");
    ksv_rollout_parse(&st, fv, n);
    CHECK(st.state == KSV_ROLLOUT_NONE);
    CHECK(st.command == KSV_ROLLOUT_CMD_RESTART);

    n = 0;
    kv("canary", "v2");
    kv("state", "paused");
    kv("step", "3");
    kv("epoch", "12");
    kv("command", "resume");
    kv("extra", "ignored");
    ksv_rollout_parse(&st, fv, n);
    CHECK(st.state == KSV_ROLLOUT_PAUSED && st.step == 2);
    CHECK(st.epoch == 12 && st.command == KSV_ROLLOUT_CMD_RESUME);

    /* bad values of the fields it needs */

    n = 0;
    kv("canary", "v2");
    kv("state", "Running");
    kv("step", "1");
    kv("epoch", "1");
    ksv_rollout_parse(&st, fv, n);
    CHECK(st.state == KSV_ROLLOUT_INVALID);
    CHECK(strcmp(st.invalid, "state") == 0);

    n = 0;
    kv("canary", "v2");
    kv("state", "running");
    kv("step", "0");
    kv("epoch", "1");
    ksv_rollout_parse(&st, fv, n);
    CHECK(st.state == KSV_ROLLOUT_INVALID);

    n = 0;
    kv("canary", "v2");
    kv("state", "running");
    kv("step", "1");
    kv("epoch", "1");
    kv("canary_mark", "1 2 3");
    ksv_rollout_parse(&st, fv, n);
    CHECK(st.state == KSV_ROLLOUT_INVALID);
    CHECK(strcmp(st.invalid, "canary_mark") == 0);

    n = 0;
    kv("canary", "v2");
    kv("state", "running");
    kv("step", "1");
    kv("epoch", "-1");
    ksv_rollout_parse(&st, fv, n);
    CHECK(st.state == KSV_ROLLOUT_INVALID);

    n = 0;
    kv("state", "running");
    kv("step", "1");
    kv("epoch", "1");
    ksv_rollout_parse(&st, fv, n);
    CHECK(st.state == KSV_ROLLOUT_INVALID);
    CHECK(strcmp(st.invalid, "canary") == 0);

    n = 0;
    kv("command", "pause-please-and-then-some-more-words");
    ksv_rollout_parse(&st, fv, n);
    CHECK(st.command == KSV_ROLLOUT_CMD_UNKNOWN);

#undef kv
}


static void
test_statistics_fields_and_quantiles(void)
{
    uint64_t              p;
    ksv_rollout_counts_t  c;

    memset(&c, 0, sizeof(c));

    ksv_rollout_count_field(&c, ksv_str_lit("requests"), ksv_str_lit("40"));
    ksv_rollout_count_field(&c, ksv_str_lit("failure"), ksv_str_lit("4"));
    ksv_rollout_count_field(&c, ksv_str_lit("success"), ksv_str_lit("36"));
    ksv_rollout_count_field(&c, ksv_str_lit("latency_le_250ms"),
                            ksv_str_lit("20"));
    ksv_rollout_count_field(&c, ksv_str_lit("latency_le_500ms"),
                            ksv_str_lit("40"));
    ksv_rollout_count_field(&c, ksv_str_lit("latency_le_inf"),
                            ksv_str_lit("40"));
    ksv_rollout_count_field(&c, ksv_str_lit("requests"), ksv_str_lit("x"));
    ksv_rollout_count_field(&c, ksv_str_lit("ejections"), ksv_str_lit("2"));

    CHECK(c.requests == 40 && c.failures == 4 && c.ejections == 2);
    CHECK(c.le[5] == 20 && c.le[6] == 40 && c.le[KSV_ROUTE_NBUCKETS] == 40);

    /* not cumulative for the buckets it was not given: fill them in */
    c.le[7] = c.le[8] = c.le[9] = c.le[10] = 40;

    /* the median is the top of the 250 ms bucket, p99 near 500 ms */
    CHECK(ksv_rollout_quantile_us(c.le, 0.5) == 250000);
    p = ksv_rollout_quantile_us(c.le, 0.99);
    CHECK(p > 490000 && p <= 500000);

    memset(&c, 0, sizeof(c));
    CHECK(ksv_rollout_quantile_us(c.le, 0.99) == 0);

    /* everything past 10 s: the last finite bound */
    c.le[KSV_ROUTE_NBUCKETS] = 10;
    CHECK(ksv_rollout_quantile_us(c.le, 0.99) == 10000000);
}


static void
test_json(void)
{
    ksv_writer_t          w;
    ksv_rollout_t         st;
    ksv_rollout_counts_t  c, b;

    memset(&st, 0, sizeof(st));
    memset(&c, 0, sizeof(c));
    memset(&b, 0, sizeof(b));
    st.state = KSV_ROLLOUT_RUNNING;
    st.step = 1;
    st.epoch = 3;
    strcpy(st.reason, "step 2 \"quoted\"");
    add(&c, 10, 1, 3);

    ksv_writer_init(&w);
    ksv_rollout_json(&w, &conf, ksv_str_lit("fraud_v2"), &st, &c, &b);
    ksv_put_u8(&w, '\0');
    CHECK(!w.failed);
    CHECK(strstr((char *) w.buf, "{\"canary\":\"fraud_v2\",\"state\":"
                 "\"running\",\"step\":2,\"percent\":25,\"steps\":"
                 "[5,25,50,100],\"epoch\":3,") != NULL);
    CHECK(strstr((char *) w.buf, "\"reason\":\"step 2 \\\"quoted\\\"\"")
          != NULL);
    CHECK(strstr((char *) w.buf, "\"margin\":null") != NULL);
    CHECK(strstr((char *) w.buf, "\"this_step\":{\"canary\":{\"requests\":10,"
                 "\"failures\":1,\"error_rate\":0.1,") != NULL);
    ksv_writer_free(&w);
}


int
main(void)
{
    setup();

    test_a_rollout_that_completes();
    test_too_few_requests_hold_the_step();
    test_breaches_roll_back();
    test_the_baseline_margin();
    test_a_canary_not_ready_aborts();
    test_operator_commands();
    test_no_hash_and_other_canaries();
    test_parse_the_hash();
    test_statistics_fields_and_quantiles();
    test_json();

    KSV_TEST_END();
}
