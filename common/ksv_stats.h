/*
 * ngx_kserve: statistics pages (Triton's statistics extension).
 *
 * An instance counts what it answers in a page of shared memory, a file
 * under the worker's run directory that both map:
 *
 *   instance (writer)  ksv_stats_request()  a request got its answer
 *                      ksv_stats_batch()    a batch came back from the
 *                                           backend
 *   kserve-worker      ksv_stats_read()     a consistent copy, any time
 *   (reader)           ksv_stats_add()      sums pages: a version's
 *                                           instances, and the ones
 *                                           that have exited
 *
 * Why a page and not a message: the counters must include an answer the
 * moment its client has it (Triton's tests read statistics right after
 * an infer), and a busy instance cannot answer a question while its
 * model runs.  The instance updates the page before it sends the answer,
 * so any read that follows sees it; the worker reads without asking
 * anyone.  A page outlives both processes, so a restarted worker picks
 * up the counts of the instances it adopts.
 *
 * Consistency is a sequence lock: the writer makes seq odd, writes,
 * makes it even; a reader copies and retries while seq was odd or moved.
 * A writer killed mid-update leaves seq odd forever: the reader then
 * takes its copy after a few tries (a torn count is better than none).
 *
 * The meaning of every counter is documented once, on ksv_model_stats_t
 * in ksv_proto.h.  Nothing here allocates on the request path.
 */

#ifndef KSV_STATS_H
#define KSV_STATS_H

#include <stdint.h>

#include "ksv_proto.h"


#define KSV_STATS_MAGIC   0x4b535450u   /* "KSTP" */
#define KSV_STATS_REASON  256

typedef struct {
    uint32_t             magic;
    uint32_t             size;          /* sizeof(ksv_stats_page_t) */
    uint64_t             seq;           /* odd while being written */

    uint64_t             last_inference;
    uint64_t             inference_count;
    uint64_t             execution_count;
    ksv_stat_duration_t  success;
    ksv_stat_duration_t  fail;
    ksv_stat_duration_t  queue;
    ksv_stat_duration_t  compute_input;
    ksv_stat_duration_t  compute_infer;
    ksv_stat_duration_t  compute_output;

    /* the instance's last words when it kills itself (a hung batch),
     * read by the worker as the reason of its death */
    char                 reason[KSV_STATS_REASON];

    uint32_t             nbatch;        /* sorted by batch_size */
    ksv_batch_stats_t    batch[KSV_MAX_LIST];
} ksv_stats_page_t;


/*
 * Maps the page at path: create = 1 makes it (the instance; truncated
 * and zeroed), 0 maps an existing one (the worker).  Returns NULL with
 * errno on failure, or EINVAL for a file that is not a page.
 */
ksv_stats_page_t *ksv_stats_map(const char *path, int create);
void ksv_stats_unmap(ksv_stats_page_t *p);

/*
 * A request's final answer.  total_ns: arrival to answer.  For a
 * success, queue_ns (arrival to execution) and its batch's durations t
 * count too; t may be NULL for a failure.
 */
void ksv_stats_request(ksv_stats_page_t *p, int success, uint64_t total_ns,
    uint64_t queue_ns, const ksv_exec_times_t *t);

/* An executed batch of batch_size rows (1 per request for models without
 * max_batch_size). */
void ksv_stats_batch(ksv_stats_page_t *p, uint32_t batch_size,
    const ksv_exec_times_t *t);

/* The last words (truncated to KSV_STATS_REASON - 1). */
void ksv_stats_set_reason(ksv_stats_page_t *p, const char *reason);

/* A consistent copy of p into *out (see above). */
void ksv_stats_read(const ksv_stats_page_t *p, ksv_stats_page_t *out);

/* Adds the counters of `in` to `acc` (last_inference: the later one). */
void ksv_stats_add(ksv_stats_page_t *acc, const ksv_stats_page_t *in);

/* Fills *out from p (name and version are the caller's, kept);
 * out->batch points into p. */
void ksv_stats_export(const ksv_stats_page_t *p, ksv_model_stats_t *out);

#endif /* KSV_STATS_H */
