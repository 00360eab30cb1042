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
        kserve_stats_add(&s->m.fail, 1, total_ns);
        return;
    }

    kserve_stats_add(&s->m.success, 1, total_ns);
    kserve_stats_add(&s->m.queue, 1, queue_ns);
    if (t != NULL) {
        kserve_stats_add(&s->m.compute_input, 1, t->compute_input_ns);
        kserve_stats_add(&s->m.compute_infer, 1, t->compute_infer_ns);
        kserve_stats_add(&s->m.compute_output, 1, t->compute_output_ns);
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
    hi = s->m.nbatch;
    while (lo < hi) {
        mid = (lo + hi) / 2;
        if (s->m.batch[mid].batch_size < batch_size) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < s->m.nbatch && s->m.batch[lo].batch_size == batch_size) {
        return &s->m.batch[lo];
    }

    if (s->m.nbatch == KSV_MAX_LIST) {
        return NULL;
    }
    if (s->m.nbatch == s->cap) {
        cap = s->cap ? 2 * s->cap : 8;
        nb = realloc(s->m.batch, cap * sizeof(ksv_batch_stats_t));
        if (nb == NULL) {
            return NULL;
        }
        s->m.batch = nb;
        s->cap = cap;
    }

    memmove(&s->m.batch[lo + 1], &s->m.batch[lo],
            (s->m.nbatch - lo) * sizeof(ksv_batch_stats_t));
    memset(&s->m.batch[lo], 0, sizeof(ksv_batch_stats_t));
    s->m.batch[lo].batch_size = batch_size;
    s->m.nbatch++;
    return &s->m.batch[lo];
}


void
kserve_stats_batch(kserve_stats_t *s, uint32_t batch_size,
    const ksv_exec_times_t *t)
{
    struct timeval      tv;
    ksv_batch_stats_t  *b;

    gettimeofday(&tv, NULL);
    s->m.last_inference = (uint64_t) tv.tv_sec * 1000
                          + (uint64_t) tv.tv_usec / 1000;
    s->m.inference_count += batch_size;
    s->m.execution_count++;

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
    ksv_str_t  name, version;

    name = out->name;
    version = out->version;
    *out = s->m;
    out->name = name;
    out->version = version;
}


void
kserve_stats_free(kserve_stats_t *s)
{
    free(s->m.batch);
    memset(s, 0, sizeof(*s));
}
