/*
 * ngx_kserve: what several kserve-workers behind one kserve_pass say,
 * merged into what one would say (nginx-free, unit-tested on its own;
 * the transport, ngx_http_kserve_transport.c, sends and gathers).
 *
 * Each kserve-worker knows only its own host's repository and instances.
 * nginx asks every worker of a backend and merges:
 *
 *   the model index    a model any worker has is listed once; a version
 *                      any worker has is listed once, with the instances
 *                      of every worker, in the best state any of them
 *                      reports (READY, then LOADING, DRAINING,
 *                      UNAVAILABLE) and that one's reason; the config is
 *                      that of a worker where the model has a READY
 *                      version (else the first to list it).
 *
 *   control replies    (STATS_REPLY, REPOSITORY_REPLY, LOG_REPLY, ERROR)
 *                      NOT_FOUND means "this worker lacks it": it is
 *                      dropped when another worker answered.  Any other
 *                      ERROR is the answer (a load that failed on one
 *                      host failed).  Statistics are summed per model
 *                      version (last_inference: the latest); repository
 *                      index entries are merged as the index above (a
 *                      name-only entry gives way to versions of the same
 *                      name); a LOG_REPLY is the first one.
 */

#ifndef KSV_MERGE_H
#define KSV_MERGE_H

#include "ksv_proto.h"


/*
 * The merged index of n indexes into out, allocated from a; strings and
 * instance entries point into the inputs, which must outlive out.  With
 * n == 1, out is in[0].  Returns 0, or -1 when out of memory.
 */
int ksv_index_merge(const ksv_index_t *in, uint32_t n, ksv_alloc_t *a,
    ksv_index_t *out);

/*
 * The one reply (a header frame) that stands for the n replies given to
 * one request (each a whole header frame with the request's id; data
 * NULL: that worker did not answer, which is skipped), written to w;
 * decoding allocates from a.  Returns 0; -1 when no reply was given,
 * when one is malformed, or out of memory.
 */
int ksv_replies_merge(const ksv_str_t *replies, uint32_t n, ksv_alloc_t *a,
    ksv_writer_t *w);


#endif /* KSV_MERGE_H */
