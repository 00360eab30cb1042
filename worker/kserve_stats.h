/*
 * kserve-worker: per-version statistics (Triton's statistics extension).
 *
 * Every nginx worker of every host sends its requests here, so this is
 * the one place where the counters can add up; the module asks for them
 * with STATS and only renders the answer.  The meaning of each field is
 * documented once, on ksv_model_stats_t in common/ksv_proto.h.
 *
 * The scheduler reports two kinds of events:
 *   kserve_stats_request()  a request got its final answer
 *   kserve_stats_batch()    an instance returned an executed batch
 * Nothing here allocates on the request path except the first batch of
 * a size never seen before (one slot in a sorted table).
 */

#ifndef KSERVE_STATS_H
#define KSERVE_STATS_H

#include <stdint.h>

#include "ksv_proto.h"


/* The counters as STATS_REPLY carries them (m.name and m.version stay
 * empty: kserve_stats_export leaves them to the caller), and the room
 * of the batch-size table m.batch. */
typedef struct {
    ksv_model_stats_t     m;
    uint32_t              cap;
} kserve_stats_t;


/*
 * A request's final answer.  total_ns: arrival to answer.  For a
 * success, queue_ns (arrival to dispatch) and its batch's durations t
 * count too; t may be NULL for a failure.
 */
void kserve_stats_request(kserve_stats_t *s, int success, uint64_t total_ns,
    uint64_t queue_ns, const ksv_exec_times_t *t);

/* An executed batch of batch_size rows (1 per request for models
 * without max_batch_size). */
void kserve_stats_batch(kserve_stats_t *s, uint32_t batch_size,
    const ksv_exec_times_t *t);

/* Fills *out (name and version are the caller's); out->batch points
 * into s, valid until the next kserve_stats_batch(). */
void kserve_stats_export(const kserve_stats_t *s, ksv_model_stats_t *out);

void kserve_stats_free(kserve_stats_t *s);

#endif /* KSERVE_STATS_H */
