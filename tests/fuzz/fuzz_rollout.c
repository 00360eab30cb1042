/*
 * libFuzzer target for ngx_module/ksv_rollout.c: a kserve:rollout:NAME
 * hash as HGETALL returns it (fields and values separated by NUL bytes),
 * which anyone with access to Redis may have written.
 *
 * Whatever the hash says, parsing gives a state nginx can act on (or
 * INVALID, or NONE), every decision keeps to the configured steps, and
 * a state nginx writes reads back as the same state.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_json_write.h"
#include "ksv_rollout.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define MAX_FIELDS  64


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                  buf[4096];
    size_t                i, n, start;
    ksv_str_t             fv[MAX_FIELDS];
    ksv_writer_t          w;
    ksv_rollout_t         seen, next, back;
    ksv_rollout_conf_t    conf;
    ksv_rollout_input_t   in;
    ksv_rollout_action_e  a;

    n = 0;
    start = 0;

    for (i = 0; i <= size && n < MAX_FIELDS; i++) {
        if (i < size && data[i] != '\0') {
            continue;
        }

        fv[n].data = (const char *) data + start;
        fv[n].len = (uint32_t) (i - start);
        n++;
        start = i + 1;
    }

    ksv_rollout_parse(&seen, fv, n);

    FUZZ_CHECK(seen.state <= KSV_ROLLOUT_INVALID);
    FUZZ_CHECK(seen.command <= KSV_ROLLOUT_CMD_UNKNOWN);
    FUZZ_CHECK(seen.step < KSV_ROLLOUT_MAX_STEPS);
    FUZZ_CHECK(strlen(seen.canary) < sizeof(seen.canary));
    FUZZ_CHECK(seen.state != KSV_ROLLOUT_NONE || seen.epoch == 0);

    memset(&conf, 0, sizeof(conf));
    conf.steps[0] = 5;
    conf.steps[1] = 25;
    conf.steps[2] = 100;
    conf.nsteps = 3;
    conf.interval_ms = 1000;
    conf.max_error_bp = 100;
    conf.max_p99_us = 300000;
    conf.min_requests = 1;
    conf.margin_bp = size & 1 ? 50 : KSV_ROLLOUT_NO_MARGIN;
    conf.ready_timeout_ms = 1000;

    memset(&in, 0, sizeof(in));
    in.conf = &conf;
    in.canary = ksv_str_lit("fraud_v2");
    in.seen = &seen;
    in.known = size & 2 ? &seen : NULL;
    in.now_ms = seen.step_started_ms + (size & 4 ? 5000 : 10);
    in.canary_ready = (int) (size % 3) - 1;
    in.not_ready_ms = 2000;
    in.canary_now = seen.canary_mark;
    in.canary_now.requests += size;
    in.canary_now.failures += size & 8;
    in.baseline_now = seen.baseline_mark;

    FUZZ_CHECK(ksv_rollout_percent(&conf, &seen) <= 100);

    a = ksv_rollout_decide(&in, &next);

    FUZZ_CHECK(strlen(ksv_rollout_action_name(a)) > 0);
    FUZZ_CHECK(ksv_rollout_percent(&conf, &next) <= 100);

    if (a == KSV_ROLLOUT_KEEP || a == KSV_ROLLOUT_HOLD
        || a == KSV_ROLLOUT_DROP_COMMAND)
    {
        return 0;
    }

    FUZZ_CHECK(next.state >= KSV_ROLLOUT_RUNNING
               && next.state <= KSV_ROLLOUT_ABORTED);
    FUZZ_CHECK(next.step < conf.nsteps);
    FUZZ_CHECK(strcmp(next.canary, "fraud_v2") == 0);

    /* what nginx writes reads back the same */

    n = ksv_rollout_encode(&conf, &next, buf, sizeof(buf), fv, MAX_FIELDS);
    FUZZ_CHECK(n > 0);

    ksv_rollout_parse(&back, fv, n);

    FUZZ_CHECK(back.state == next.state);
    FUZZ_CHECK(back.step == next.step);
    FUZZ_CHECK(back.epoch == next.epoch);
    FUZZ_CHECK(back.cause == next.cause);
    FUZZ_CHECK(back.command == KSV_ROLLOUT_CMD_NONE);
    FUZZ_CHECK(strcmp(back.canary, next.canary) == 0);
    FUZZ_CHECK(memcmp(&back.canary_mark, &next.canary_mark,
                      sizeof(back.canary_mark)) == 0);
    FUZZ_CHECK(memcmp(&back.baseline_mark, &next.baseline_mark,
                      sizeof(back.baseline_mark)) == 0);

    ksv_writer_init(&w);
    ksv_rollout_json(&w, &conf, in.canary, &back, &in.canary_now,
                     &in.baseline_now);
    FUZZ_CHECK(!w.failed);
    ksv_writer_free(&w);

    return 0;
}
