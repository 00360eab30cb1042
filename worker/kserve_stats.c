/*
 * kserve-worker: per-version statistics (see kserve_stats.h).
 */

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "kserve_stats.h"


static void
kserve_stats_add(ksv_stat_duration_t *d, uint64_t count, uint64_t ns)
{
    d->count += count;
    d->ns += ns;
}


void
kserve_stats_request(kserve_stats_t *s, int success, uint64_t total_ns,
    uint64_t queue_ns, const ksv_exec_times_t *t)
{
    if (!success) {
        kserve_stats_add(&s->fail, 1, total_ns);
        return;
    }

    kserve_stats_add(&s->success, 1, total_ns);
    kserve_stats_add(&s->queue, 1, queue_ns);
    if (t != NULL) {
        kserve_stats_add(&s->compute_input, 1, t->compute_input_ns);
        kserve_stats_add(&s->compute_infer, 1, t->compute_infer_ns);
        kserve_stats_add(&s->compute_output, 1, t->compute_output_ns);
    }
}


/* The slot of batch_size in the sorted table, made when missing; NULL
 * when the table is full (KSV_MAX_LIST sizes) or memory is short. */
static ksv_batch_stats_t *
kserve_stats_slot(kserve_stats_t *s, uint32_t batch_size)
{
    uint32_t            lo, hi, mid, cap;
    ksv_batch_stats_t  *nb;

    lo = 0;
    hi = s->nbatch;
    while (lo < hi) {
        mid = (lo + hi) / 2;
        if (s->batch[mid].batch_size < batch_size) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < s->nbatch && s->batch[lo].batch_size == batch_size) {
        return &s->batch[lo];
    }

    if (s->nbatch == KSV_MAX_LIST) {
        return NULL;
    }
    if (s->nbatch == s->cap) {
        cap = s->cap ? 2 * s->cap : 8;
        nb = realloc(s->batch, cap * sizeof(ksv_batch_stats_t));
        if (nb == NULL) {
            return NULL;
        }
        s->batch = nb;
        s->cap = cap;
    }

    memmove(&s->batch[lo + 1], &s->batch[lo],
            (s->nbatch - lo) * sizeof(ksv_batch_stats_t));
    memset(&s->batch[lo], 0, sizeof(ksv_batch_stats_t));
    s->batch[lo].batch_size = batch_size;
    s->nbatch++;
    return &s->batch[lo];
}


void
kserve_stats_batch(kserve_stats_t *s, uint32_t batch_size,
    const ksv_exec_times_t *t)
{
    struct timeval      tv;
    ksv_batch_stats_t  *b;

    gettimeofday(&tv, NULL);
    s->last_inference = (uint64_t) tv.tv_sec * 1000
                        + (uint64_t) tv.tv_usec / 1000;
    s->inference_count += batch_size;
    s->execution_count++;

    b = kserve_stats_slot(s, batch_size);
    if (b != NULL) {
        kserve_stats_add(&b->compute_input, 1, t->compute_input_ns);
        kserve_stats_add(&b->compute_infer, 1, t->compute_infer_ns);
        kserve_stats_add(&b->compute_output, 1, t->compute_output_ns);
    }
}


void
kserve_stats_export(const kserve_stats_t *s, ksv_model_stats_t *out)
{
    out->last_inference = s->last_inference;
    out->inference_count = s->inference_count;
    out->execution_count = s->execution_count;
    out->success = s->success;
    out->fail = s->fail;
    out->queue = s->queue;
    out->compute_input = s->compute_input;
    out->compute_infer = s->compute_infer;
    out->compute_output = s->compute_output;
    out->nbatch = s->nbatch;
    out->batch = s->batch;
}


void
kserve_stats_free(kserve_stats_t *s)
{
    free(s->batch);
    memset(s, 0, sizeof(*s));
}
