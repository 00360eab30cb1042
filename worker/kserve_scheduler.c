/*
 * kserve-worker: per-version request queues and batches.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_proto.h"
#include "kserve_log.h"
#include "kserve_scheduler.h"
#include "kserve_server.h"
#include "kserve_supervisor.h"
#include "kserve_worker.h"


/* ---- requests ------------------------------------------------------------ */

kserve_request_t *
kserve_request_new(uint32_t ninputs)
{
    uint32_t           i;
    kserve_request_t  *r;

    r = calloc(1, sizeof(kserve_request_t));
    if (r == NULL) {
        return NULL;
    }

    if (ninputs > 0) {
        r->inputs = calloc(ninputs, sizeof(zmq_msg_t));
        if (r->inputs == NULL) {
            free(r);
            return NULL;
        }
    }

    zmq_msg_init(&r->identity);
    zmq_msg_init(&r->header);
    for (i = 0; i < ninputs; i++) {
        zmq_msg_init(&r->inputs[i]);
    }
    r->ninputs = ninputs;
    return r;
}


void
kserve_request_free(kserve_request_t *r)
{
    uint32_t  i;

    zmq_msg_close(&r->identity);
    zmq_msg_close(&r->header);
    for (i = 0; i < r->ninputs; i++) {
        zmq_msg_close(&r->inputs[i]);
    }
    free(r->inputs);
    free(r);
}


void
kserve_request_fail(kserve_request_t *r, ksv_status_t code,
    const char *message)
{
    kserve_debug("request %llu (client id %llu): %s %s",
                 (unsigned long long) r->id,
                 (unsigned long long) r->client_id, ksv_status_name(code),
                 message);
    kserve_server_error(&r->identity, r->client_id, code, message);
    kserve_request_free(r);
}


/* ---- queues -------------------------------------------------------------- */

static void
kserve_queue_push(kserve_queue_t *q, kserve_request_t *r)
{
    r->next = NULL;
    r->prev = q->tail;
    if (q->tail != NULL) {
        q->tail->next = r;
    } else {
        q->head = r;
    }
    q->tail = r;
    q->len++;
}


static void
kserve_queue_remove(kserve_queue_t *q, kserve_request_t *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        q->head = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    } else {
        q->tail = r->prev;
    }
    r->next = NULL;
    r->prev = NULL;
    q->len--;
}


static int
kserve_version_ready(kserve_version_t *v)
{
    return v->state == KSV_VERSION_READY;
}


void
kserve_scheduler_submit(kserve_version_t *v, kserve_request_t *r)
{
    char  msg[KSERVE_REASON_MAX + 128];

    r->version = v;

    if (!kserve_version_ready(v)) {
        snprintf(msg, sizeof(msg), "model '%s' version %lld is not ready: %s",
                 v->model->name, (long long) v->version,
                 v->reason[0] ? v->reason : "loading");
        kserve_request_fail(r, KSV_ERR_UNAVAILABLE, msg);
        return;
    }

    if (v->queue.len >= v->max_queue) {
        kserve_request_fail(r, KSV_ERR_UNAVAILABLE,
                            "Exceeds maximum queue size");
        return;
    }

    kserve_queue_push(&v->queue, r);
    kserve_scheduler_dispatch(v);
}


/* ---- batches ------------------------------------------------------------- */

/*
 * Takes the requests for the next batch off the queue.  Batches of one
 * for now; dynamic batching (preferred sizes, max_queue_delay, up to
 * max_batch_size) replaces only this function.
 */
static kserve_batch_t *
kserve_scheduler_form_batch(kserve_version_t *v, int64_t now)
{
    kserve_batch_t    *b;
    kserve_request_t  *r;

    while ((r = v->queue.head) != NULL) {
        kserve_queue_remove(&v->queue, r);

        if (r->deadline_ms != 0 && r->deadline_ms <= now) {
            kserve_request_fail(r, KSV_ERR_UNAVAILABLE,
                                "Request timeout expired");
            continue;
        }

        b = malloc(sizeof(kserve_batch_t) + sizeof(kserve_request_t *));
        if (b == NULL) {
            kserve_request_fail(r, KSV_ERR_INTERNAL, "out of memory");
            return NULL;
        }
        b->id = kserve_next_id();
        b->instance = NULL;
        b->n = 1;
        b->requests[0] = r;
        return b;
    }

    return NULL;
}


static void
kserve_batch_free(kserve_batch_t *b)
{
    uint32_t  i;

    for (i = 0; i < b->n; i++) {
        if (b->requests[i] != NULL) {
            kserve_request_free(b->requests[i]);
        }
    }
    free(b);
}


/*
 * [routing id][EXECUTE][INFER + inputs]...  The request frames are moved
 * into the message: after this the requests keep only what routing the
 * answers needs (identity, ids).
 */
static int
kserve_batch_send(kserve_instance_t *inst, kserve_batch_t *b)
{
    int                rc;
    size_t             n, nframes, len;
    uint8_t           *buf;
    uint32_t           i, k;
    zmq_msg_t         *frames;
    ksv_writer_t       w;
    kserve_request_t  *r;

    nframes = 2;
    for (i = 0; i < b->n; i++) {
        nframes += 1 + b->requests[i]->ninputs;
    }

    frames = malloc(nframes * sizeof(zmq_msg_t));
    if (frames == NULL) {
        return -1;
    }

    ksv_writer_init(&w);
    ksv_encode_execute(&w, KSV_MSG_EXECUTE, b->id, b->n);
    buf = ksv_writer_detach(&w, &len);
    if (w.failed || buf == NULL) {
        free(buf);
        free(frames);
        return -1;
    }

    n = strlen(inst->routing_id);
    zmq_msg_init_size(&frames[0], n);
    memcpy(zmq_msg_data(&frames[0]), inst->routing_id, n);
    zmq_msg_init_data(&frames[1], buf, len, ksv_writer_free_cb, NULL);

    n = 2;
    for (i = 0; i < b->n; i++) {
        r = b->requests[i];
        zmq_msg_init(&frames[n]);
        zmq_msg_move(&frames[n++], &r->header);
        for (k = 0; k < r->ninputs; k++) {
            zmq_msg_init(&frames[n]);
            zmq_msg_move(&frames[n++], &r->inputs[k]);
        }
    }

    rc = kserve_server_send(kserve.backend, frames, nframes);
    free(frames);
    return rc;
}


void
kserve_scheduler_dispatch(kserve_version_t *v)
{
    int64_t             now;
    uint32_t            i, k;
    kserve_batch_t     *b;
    kserve_instance_t  *inst;

    if (v->queue.len == 0 || kserve.shutting_down) {
        return;
    }

    now = kserve_now_ms();

    /* round-robin over idle instances, so load spreads even when one
     * instance is always the first to become free */
    for (k = 0; k < v->ninstances && v->queue.len > 0; k++) {
        i = (v->next_instance + k) % v->ninstances;
        inst = &v->instances[i];
        if (inst->state != KSERVE_INSTANCE_IDLE) {
            continue;
        }

        b = kserve_scheduler_form_batch(v, now);
        if (b == NULL) {
            break;
        }

        b->instance = inst;
        inst->batch = b;
        inst->state = KSERVE_INSTANCE_BUSY;
        v->next_instance = i + 1;

        kserve_debug("batch %llu (%u request(s)) -> instance %s",
                     (unsigned long long) b->id, b->n, inst->label);

        if (kserve_batch_send(inst, b) != 0) {
            kserve_scheduler_fail_batch(inst, KSV_ERR_INTERNAL,
                                        "instance is unreachable");
            kserve_supervisor_kill(inst, "cannot send it a batch");
        }
    }
}


void
kserve_scheduler_fail_batch(kserve_instance_t *inst, ksv_status_t code,
    const char *message)
{
    uint32_t         i;
    kserve_batch_t  *b = inst->batch;

    if (b == NULL) {
        return;
    }

    for (i = 0; i < b->n; i++) {
        kserve_request_fail(b->requests[i], code, message);
        b->requests[i] = NULL;
    }

    inst->batch = NULL;
    if (inst->state == KSERVE_INSTANCE_BUSY) {
        inst->state = KSERVE_INSTANCE_IDLE;
    }
    free(b);
}


void
kserve_scheduler_fail_queue(kserve_version_t *v, ksv_status_t code,
    const char *message)
{
    kserve_request_t  *r;

    while ((r = v->queue.head) != NULL) {
        kserve_queue_remove(&v->queue, r);
        kserve_request_fail(r, code, message);
    }
}


int64_t
kserve_scheduler_expire(int64_t now)
{
    int64_t            next;
    uint32_t           i, j;
    kserve_model_t    *m;
    kserve_version_t  *v;
    kserve_request_t  *r, *rn;

    next = -1;

    for (i = 0; i < kserve.repo.nmodels; i++) {
        m = &kserve.repo.models[i];
        for (j = 0; j < m->nversions; j++) {
            v = &m->versions[j];
            for (r = v->queue.head; r != NULL; r = rn) {
                rn = r->next;
                if (r->deadline_ms == 0) {
                    continue;
                }
                if (r->deadline_ms <= now) {
                    kserve_queue_remove(&v->queue, r);
                    kserve_request_fail(r, KSV_ERR_UNAVAILABLE,
                                        "Request timeout expired");
                } else if (next < 0 || r->deadline_ms - now < next) {
                    next = r->deadline_ms - now;
                }
            }
        }
    }

    return next;
}


/* ---- answers ------------------------------------------------------------- */

/*
 * Forwards one answer (frames[0] = INFER_REPLY or ERROR, then outputs) to
 * the client of r.  Returns the number of frames it used, or 0 when the
 * answer is malformed (r is then failed with why).
 */
static size_t
kserve_route_answer(kserve_request_t *r, zmq_msg_t *frames, size_t avail,
    const char *instance)
{
    int                rc;
    char               msg[KSERVE_REASON_MAX];
    size_t             i, used;
    zmq_msg_t         *out;
    ksv_alloc_t        alloc;
    ksv_arena_t        arena;
    ksv_reader_t       rd;
    ksv_prefix_t       prefix;
    ksv_infer_reply_t  reply;

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));
    if (ksv_read_prefix(&rd, &prefix) != 0 || prefix.id != r->id
        || (prefix.kind != KSV_MSG_INFER_REPLY && prefix.kind != KSV_MSG_ERROR))
    {
        snprintf(msg, sizeof(msg), "instance %s sent a malformed answer",
                 instance);
        kserve_request_fail(r, KSV_ERR_INTERNAL, msg);
        return 0;
    }

    used = 1;
    if (prefix.kind == KSV_MSG_INFER_REPLY) {
        ksv_arena_init(&arena);
        alloc = ksv_arena_allocator(&arena);
        rc = ksv_decode_infer_reply(&rd, &alloc, &reply);
        if (rc == 0 && reply.noutputs > avail - 1) {
            rc = -1;
        }
        for (i = 0; rc == 0 && i < reply.noutputs; i++) {
            if (zmq_msg_size(&frames[1 + i]) != reply.outputs[i].byte_size) {
                rc = -1;
            }
        }
        if (rc == 0) {
            used += reply.noutputs;
        }
        ksv_arena_free(&arena);

        if (rc != 0) {
            snprintf(msg, sizeof(msg), "instance %s sent a malformed "
                     "INFER_REPLY (outputs do not match their frames)",
                     instance);
            kserve_request_fail(r, KSV_ERR_INTERNAL, msg);
            return 0;
        }
    }

    /* [identity][answer with the client's id][outputs...] */
    out = malloc((used + 1) * sizeof(zmq_msg_t));
    if (out == NULL) {
        kserve_request_fail(r, KSV_ERR_INTERNAL, "out of memory");
        return 0;
    }

    ksv_patch_id(zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]),
                 r->client_id);

    zmq_msg_init(&out[0]);
    zmq_msg_move(&out[0], &r->identity);
    for (i = 0; i < used; i++) {
        zmq_msg_init(&out[1 + i]);
        zmq_msg_move(&out[1 + i], &frames[i]);
    }

    if (kserve_server_send(kserve.frontend, out, used + 1) != 0) {
        kserve_debug("request %llu: client gone, answer dropped",
                     (unsigned long long) r->id);
    }

    free(out);
    kserve_request_free(r);
    return used;
}


void
kserve_scheduler_complete(kserve_instance_t *inst, zmq_msg_t *frames,
    size_t nframes)
{
    char              msg[KSERVE_REASON_MAX];
    size_t            pos, used;
    uint32_t          i, count;
    ksv_reader_t      rd;
    ksv_prefix_t      prefix;
    kserve_batch_t   *b = inst->batch;

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));
    if (ksv_read_prefix(&rd, &prefix) != 0
        || ksv_decode_execute(&rd, &count) != 0)
    {
        kserve_error("instance %s: malformed EXECUTE_REPLY", inst->label);
        return;
    }

    if (b == NULL || prefix.id != b->id) {
        kserve_warn("instance %s: EXECUTE_REPLY for batch %llu it does not "
                    "hold, ignored", inst->label,
                    (unsigned long long) prefix.id);
        return;
    }

    if (count != b->n) {
        snprintf(msg, sizeof(msg), "instance %s returned %u responses for "
                 "%u requests", inst->name, count, b->n);
        kserve_error("%s", msg);
        kserve_scheduler_fail_batch(inst, KSV_ERR_INTERNAL, msg);
        kserve_scheduler_dispatch(inst->version);
        return;
    }

    pos = 1;
    for (i = 0; i < b->n; i++) {
        if (pos >= nframes) {
            snprintf(msg, sizeof(msg), "instance %s returned too few frames",
                     inst->name);
            kserve_request_fail(b->requests[i], KSV_ERR_INTERNAL, msg);
            b->requests[i] = NULL;
            continue;
        }

        used = kserve_route_answer(b->requests[i], &frames[pos],
                                   nframes - pos, inst->name);
        b->requests[i] = NULL;

        if (used == 0) {
            /* the frame layout is lost: fail the rest instead of guessing */
            pos = nframes;
        } else {
            pos += used;
        }
    }

    kserve_debug("batch %llu done by instance %s", (unsigned long long) b->id,
                 inst->label);

    inst->batch = NULL;
    inst->state = KSERVE_INSTANCE_IDLE;
    kserve_batch_free(b);
    kserve_scheduler_dispatch(inst->version);
}
