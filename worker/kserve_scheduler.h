/*
 * kserve-worker: per-version request queues and batches.
 *
 * Every model version has a FIFO queue of requests.  Whenever the queue
 * is not empty and one of the version's instances is idle, the scheduler
 * forms a batch and hands it to that instance as one EXECUTE message.
 * Requests travel as the frames they arrived in (the client's INFER
 * header frame with its id rewritten to ours, then the input frames,
 * moved, never copied) and the instance's answers are routed back to
 * each client by the order of the batch.
 *
 * Today a batch holds exactly one request.  The batch object is already
 * backend-neutral and sized for many so Triton's dynamic batching
 * (preferred sizes, max_queue_delay) only has to change how
 * kserve_scheduler_form_batch() picks requests.
 *
 * Every queued request has a deadline (its timeout_ms, and the model's
 * default_queue_policy timeout); kserve_scheduler_expire() answers the
 * ones past it with UNAVAILABLE "Request timeout expired".  Queues are
 * bounded by default_queue_policy.max_queue_size (or a default cap).
 */

#ifndef KSERVE_SCHEDULER_H
#define KSERVE_SCHEDULER_H

#include <stdint.h>
#include <zmq.h>

#include "ksv_status.h"


typedef struct kserve_version_s   kserve_version_t;
typedef struct kserve_instance_s  kserve_instance_t;
typedef struct kserve_request_s   kserve_request_t;

struct kserve_request_s {
    kserve_request_t   *next;           /* queue links */
    kserve_request_t   *prev;
    uint64_t            id;             /* ours, seen by the instance */
    uint64_t            client_id;      /* the nginx worker's */
    zmq_msg_t           identity;       /* the client's ROUTER identity */
    zmq_msg_t           header;         /* INFER frame, id patched */
    zmq_msg_t          *inputs;
    uint32_t            ninputs;
    int64_t             deadline_ms;    /* monotonic; 0: none */
    kserve_version_t   *version;
};

typedef struct {
    kserve_request_t   *head;
    kserve_request_t   *tail;
    uint32_t            len;
} kserve_queue_t;

typedef struct {
    uint64_t            id;
    kserve_instance_t  *instance;
    uint32_t            n;
    kserve_request_t   *requests[];
} kserve_batch_t;


/* Takes ownership of a request: queues it or answers it at once
 * (not ready, queue full). */
void kserve_scheduler_submit(kserve_version_t *v, kserve_request_t *r);

/* Hands queued requests to idle instances of v; call when an instance
 * becomes idle or requests arrive. */
void kserve_scheduler_dispatch(kserve_version_t *v);

/* Answers queued requests past their deadline.  Returns ms until the
 * next deadline (or -1 when none). */
int64_t kserve_scheduler_expire(int64_t now);

/* Routes an EXECUTE_REPLY (frames after the routing id) of inst's batch
 * back to the clients; the instance becomes idle. */
void kserve_scheduler_complete(kserve_instance_t *inst, zmq_msg_t *frames,
    size_t nframes);

/* Answers every request of inst's in-flight batch with an error. */
void kserve_scheduler_fail_batch(kserve_instance_t *inst, ksv_status_t code,
    const char *message);

/* Answers every queued request of v with an error. */
void kserve_scheduler_fail_queue(kserve_version_t *v, ksv_status_t code,
    const char *message);

/* Requests. */
kserve_request_t *kserve_request_new(uint32_t ninputs);
void kserve_request_free(kserve_request_t *r);
void kserve_request_fail(kserve_request_t *r, ksv_status_t code,
    const char *message);

#endif /* KSERVE_SCHEDULER_H */
