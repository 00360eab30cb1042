/*
 * ngx_kserve instances: queue, batcher and answers (see ksv_sched.h).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_datatype.h"
#include "ksv_sched.h"
#include "ksv_shm_map.h"


static void ksv_request_timer(ksv_timer_t *t);
static void ksv_sched_answer(ksv_sched_t *s, ksv_request_t *r,
    ksv_frames_t *out, int ok, const ksv_exec_times_t *t);


/* ---- requests ------------------------------------------------------------ */

static ksv_request_t *
ksv_request_new(ksv_sched_t *s, uint32_t ninputs)
{
    uint32_t        i;
    ksv_request_t  *r;

    r = calloc(1, sizeof(ksv_request_t));
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
    r->timer.handler = ksv_request_timer;
    r->timer.data = s;
    r->arrived_ns = ksv_timer_now();
    return r;
}


static void
ksv_request_free(ksv_request_t *r)
{
    uint32_t  i;

    zmq_msg_close(&r->identity);
    zmq_msg_close(&r->header);
    for (i = 0; i < r->ninputs; i++) {
        zmq_msg_close(&r->inputs[i]);
    }
    for (i = 0; i < r->npins; i++) {
        ksv_shm_unpin(r->pins[i]);
    }
    free(r->pins);
    free(r->inputs);
    free(r->shape);
    free(r);
}


/* The id table: requests by (sender, client id), for CANCEL. */

static ksv_request_t **
ksv_table_slot(ksv_sched_t *s, zmq_msg_t *identity, uint64_t client_id)
{
    size_t           len;
    ksv_request_t  **p;

    len = zmq_msg_size(identity);
    for (p = &s->table[client_id % KSV_REQUEST_BUCKETS]; *p != NULL;
         p = &(*p)->hnext)
    {
        if ((*p)->client_id == client_id
            && zmq_msg_size(&(*p)->identity) == len
            && memcmp(zmq_msg_data(&(*p)->identity), zmq_msg_data(identity),
                      len) == 0)
        {
            break;
        }
    }
    return p;
}


static void
ksv_table_insert(ksv_sched_t *s, ksv_request_t *r)
{
    ksv_request_t  **head = &s->table[r->client_id % KSV_REQUEST_BUCKETS];

    r->hnext = *head;
    *head = r;
}


static void
ksv_table_remove(ksv_sched_t *s, ksv_request_t *r)
{
    ksv_request_t  **p;

    for (p = &s->table[r->client_id % KSV_REQUEST_BUCKETS]; *p != NULL;
         p = &(*p)->hnext)
    {
        if (*p == r) {
            *p = r->hnext;
            r->hnext = NULL;
            return;
        }
    }
}


/* Sends an answer for a request that has not become a ksv_request_t
 * (malformed, or out of memory): nothing is counted. */
static void
ksv_sched_reject(ksv_sched_t *s, zmq_msg_t *identity, uint64_t client_id,
    ksv_status_t code, const char *message)
{
    ksv_writer_t  w;
    ksv_frames_t  out;

    ksv_frames_init(&out);
    ksv_writer_init(&w);
    ksv_encode_error(&w, client_id, code, ksv_str_c(message));
    if (ksv_frames_push_move(&out, identity) == 0
        && ksv_frames_push_writer(&out, &w) == 0)
    {
        (void) ksv_frames_send(s->socket, &out, ZMQ_DONTWAIT);
    }
    ksv_frames_free(&out);
}


/* Answers r with an error (counted as a failure) and frees it. */
static void
ksv_request_fail(ksv_sched_t *s, ksv_request_t *r, ksv_status_t code,
    const char *message)
{
    ksv_writer_t  w;
    ksv_frames_t  out;

    ksv_frames_init(&out);
    ksv_writer_init(&w);
    ksv_encode_error(&w, r->client_id, code, ksv_str_c(message));
    if (ksv_frames_push_writer(&out, &w) != 0) {
        ksv_frames_clear(&out);
    }
    ksv_sched_answer(s, r, &out, 0, NULL);
    ksv_frames_free(&out);
}


/* ---- what a request needs scheduled -------------------------------------- */

static const ksv_param_t *
ksv_param(const ksv_infer_t *m, const char *key)
{
    uint32_t  i;

    for (i = 0; i < m->nparams; i++) {
        if (ksv_str_eq(m->params[i].key, key)) {
            return &m->params[i];
        }
    }
    return NULL;
}


static const ksv_io_config_t *
ksv_input_config(const ksv_model_config_t *c, ksv_str_t name)
{
    uint32_t  i;

    for (i = 0; i < c->ninputs; i++) {
        if (c->inputs[i].name.len == name.len
            && memcmp(c->inputs[i].name.data, name.data, name.len) == 0)
        {
            return &c->inputs[i];
        }
    }
    return NULL;
}


/*
 * The bytes two requests must share to be batched: per input, in the
 * request's order, its name, datatype and the dims after dim 0 (only
 * the name for allow_ragged_batch inputs).  Inputs listed in another
 * order make another signature: such requests are not merged, which is
 * never wrong, only less batching.
 */
static int
ksv_request_shape(const ksv_model_config_t *c, ksv_request_t *r,
    const ksv_infer_t *m)
{
    uint32_t                i, d;
    ksv_writer_t            w;
    const ksv_tensor_t     *t;
    const ksv_io_config_t  *io;

    ksv_writer_init(&w);
    for (i = 0; i < m->ninputs; i++) {
        t = &m->inputs[i];
        io = ksv_input_config(c, t->name);
        ksv_put_str(&w, t->name);
        ksv_put_u8(&w, t->datatype);
        if (io != NULL && io->allow_ragged_batch) {
            ksv_put_u8(&w, 0xff);
            continue;
        }
        ksv_put_u8(&w, t->ndims);
        for (d = 1; d < t->ndims; d++) {
            ksv_put_i64(&w, t->dims[d]);
        }
    }
    if (w.failed) {
        ksv_writer_free(&w);
        return -1;
    }
    r->shape = ksv_writer_detach(&w, &r->shape_len);
    return 0;
}


/* Inputs in a client's shared memory region: their (empty) frames
 * become views of the region (ksv_shm_map.h). */
static int
ksv_map_inputs(const ksv_infer_t *m, ksv_frames_t *msg, char *err,
    size_t errlen)
{
    uint32_t             i;
    const ksv_shm_ref_t  *ref;

    for (i = 0; i < m->nshm; i++) {
        ref = &m->shm[i];
        if (ref->io != KSV_SHM_INPUT) {
            continue;
        }
        if (2 + (size_t) ref->index >= msg->n
            || ref->byte_size != m->inputs[ref->index].byte_size)
        {
            snprintf(err, errlen, "input '%.*s': shared memory byte_size "
                     "%" PRIu64 " does not match its byte_size",
                     (int) m->inputs[ref->index].name.len,
                     m->inputs[ref->index].name.data, ref->byte_size);
            return -1;
        }
        if (ksv_shm_map_input(ref, &msg->msgs[2 + ref->index], err, errlen)
            != 0)
        {
            return -1;
        }
    }
    return 0;
}


/* Outputs in a client's shared memory region: mapped now, held until
 * the request is freed. */
static int
ksv_pin_outputs(ksv_request_t *r, const ksv_infer_t *m, char *err,
    size_t errlen)
{
    uint32_t  i;

    for (i = 0; i < m->nshm; i++) {
        if (m->shm[i].io != KSV_SHM_OUTPUT) {
            continue;
        }
        if (r->pins == NULL) {
            r->pins = calloc(m->nshm, sizeof(void *));
            if (r->pins == NULL) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
        r->pins[r->npins] = ksv_shm_pin(&m->shm[i], err, errlen);
        if (r->pins[r->npins] == NULL) {
            return -1;
        }
        r->npins++;
    }
    return 0;
}


/* Checks each input frame against its description. */
static int
ksv_check_inputs(const ksv_infer_t *m, const ksv_frames_t *msg, char *err,
    size_t errlen)
{
    size_t               size;
    uint32_t             i;
    uint64_t             count, len;
    const ksv_tensor_t  *t;

    if (m->ninputs != msg->n - 2) {
        snprintf(err, errlen, "request describes %u input tensor(s) but "
                 "carries %zu tensor frame(s)", m->ninputs, msg->n - 2);
        return -1;
    }
    for (i = 0; i < m->ninputs; i++) {
        t = &m->inputs[i];
        len = zmq_msg_size(&msg->msgs[2 + i]);
        if (len != t->byte_size) {
            snprintf(err, errlen, "input '%.*s': byte_size %" PRIu64
                     " does not match its frame of %" PRIu64 " bytes",
                     (int) t->name.len, t->name.data, t->byte_size, len);
            return -1;
        }
        size = ksv_datatype_size(t->datatype);
        if (size == 0) {
            continue;           /* BYTES: the backend checks the elements */
        }
        if (ksv_shape_count(t->dims, t->ndims, UINT64_MAX / size, &count)
            != 0 || count * size != t->byte_size)
        {
            snprintf(err, errlen, "input '%.*s': %" PRIu64 " bytes do not "
                     "match its shape and datatype %s",
                     (int) t->name.len, t->name.data, t->byte_size,
                     ksv_datatype_name(t->datatype));
            return -1;
        }
    }
    return 0;
}


/* Reads rows, priority, timeouts and shapes.  -1 with an INVALID_ARG
 * message in err. */
static int
ksv_request_setup(ksv_sched_t *s, ksv_request_t *r, const ksv_infer_t *m,
    char *err, size_t errlen)
{
    int64_t                        rows;
    uint32_t                       i;
    uint64_t                       us;
    const ksv_param_t             *p;
    const ksv_model_config_t      *c = s->config;
    const ksv_dynamic_batching_t  *db = &c->dynamic_batching;

    /* rows: dim 0, the same for every input (nginx checks it too, but
     * an instance trusts no client) */
    r->rows = 1;
    if (c->max_batch_size > 0) {
        rows = -1;
        for (i = 0; i < m->ninputs; i++) {
            if (m->inputs[i].ndims == 0
                || (rows != -1 && m->inputs[i].dims[0] != rows))
            {
                snprintf(err, errlen, "input '%.*s' does not have the "
                         "batch size of the other inputs",
                         (int) m->inputs[i].name.len,
                         m->inputs[i].name.data);
                return -1;
            }
            rows = m->inputs[i].dims[0];
        }
        if (rows != -1 && (rows < 1 || rows > c->max_batch_size)) {
            snprintf(err, errlen, "inference request batch-size must be "
                     "<= %d for '%s' (and at least 1), got %lld",
                     (int) c->max_batch_size, s->model_name,
                     (long long) rows);
            return -1;
        }
        if (rows != -1) {
            r->rows = (uint32_t) rows;
        }
    }

    /* priority: 1 is the highest; 0 or absent is the default level */
    r->level = 0;
    p = ksv_param(m, "priority");
    if (p != NULL && db->priority_levels > 0) {
        if (p->type != KSV_PARAM_INT || p->i < 0
            || p->i > (int64_t) s->nlevels)
        {
            snprintf(err, errlen, "invalid priority for '%s': must be an "
                     "integer from 0 (the default level) to %u",
                     s->model_name, s->nlevels);
            return -1;
        }
        r->level = (uint32_t) (p->i > 0 ? p->i - 1 : 0);
    }
    if ((p == NULL || p->i == 0 || db->priority_levels == 0)
        && s->nlevels > 1)
    {
        r->level = db->default_priority_level > 0
                   ? db->default_priority_level - 1 : s->nlevels - 1;
        if (r->level >= s->nlevels) {
            r->level = s->nlevels - 1;
        }
    }

    /* the queue policy's timeout, which the request may only lower */
    us = db->default_queue_policy.default_timeout_us;
    p = ksv_param(m, "timeout");
    if (p != NULL && db->default_queue_policy.allow_timeout_override) {
        if (p->type != KSV_PARAM_INT || p->i < 0) {
            snprintf(err, errlen, "invalid timeout for '%s': must be a "
                     "non-negative integer (microseconds)", s->model_name);
            return -1;
        }
        if (p->i > 0 && (us == 0 || (uint64_t) p->i < us)) {
            us = (uint64_t) p->i;
        }
    }
    r->timeout_ns = us > 0 ? r->arrived_ns + us * 1000 : 0;

    if (m->timeout_ms > 0) {
        r->deadline_ns = r->arrived_ns + (uint64_t) m->timeout_ms * 1000000;
    }

    if (s->batching && ksv_request_shape(c, r, m) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}


/* ---- queues -------------------------------------------------------------- */

static void
ksv_queue_push(ksv_queue_t *q, ksv_request_t *r)
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
ksv_queue_remove(ksv_queue_t *q, ksv_request_t *r)
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


/* Takes r out of its queue (and its timer off the heap). */
static void
ksv_sched_unqueue(ksv_sched_t *s, ksv_request_t *r)
{
    ksv_level_t  *l = &s->levels[r->level];

    ksv_queue_remove(r->delayed ? &l->delayed : &l->queue, r);
    ksv_timer_del(s->timers, &r->timer);
    r->queued = 0;
    s->queued--;
}


/* The first queued request in scheduling order at or after list k
 * (level k / 2, delayed when k is odd). */
static ksv_request_t *
ksv_sched_from(ksv_sched_t *s, uint32_t k)
{
    ksv_level_t  *l;

    for ( ; k < 2 * s->nlevels; k++) {
        l = &s->levels[k / 2];
        if ((k & 1) == 0 && l->queue.head != NULL) {
            return l->queue.head;
        }
        if ((k & 1) == 1 && l->delayed.head != NULL) {
            return l->delayed.head;
        }
    }
    return NULL;
}


/* The request after r in scheduling order. */
static ksv_request_t *
ksv_sched_after(ksv_sched_t *s, ksv_request_t *r)
{
    if (r->next != NULL) {
        return r->next;
    }
    return ksv_sched_from(s, 2 * r->level + (r->delayed ? 1 : 0) + 1);
}


/* Sets r's timer for its earliest deadline still to come. */
static void
ksv_request_arm(ksv_sched_t *s, ksv_request_t *r)
{
    uint64_t  due;

    due = r->deadline_ns;
    if (r->timeout_ns != 0 && !r->delayed
        && (due == 0 || r->timeout_ns < due))
    {
        due = r->timeout_ns;
    }
    if (due != 0 && ksv_timer_add(s->timers, &r->timer, due) != 0) {
        /* out of memory: the request keeps no timer; the module's own
         * deadline still answers its client */
        return;
    }
}


/* A queued request's deadline or queue timeout has come: answered when
 * past the module's deadline or a REJECT timeout, moved behind its
 * level when past a DELAY timeout. */
static void
ksv_request_timer(ksv_timer_t *t)
{
    uint64_t        now;
    ksv_sched_t    *s = t->data;
    ksv_request_t  *r;

    r = (ksv_request_t *) ((char *) t - offsetof(ksv_request_t, timer));
    now = ksv_timer_now();

    if ((r->deadline_ns != 0 && r->deadline_ns <= now)
        || s->config->dynamic_batching.default_queue_policy.timeout_action
           != KSV_TIMEOUT_DELAY)
    {
        ksv_sched_unqueue(s, r);
        ksv_request_fail(s, r, KSV_ERR_UNAVAILABLE, "Request timeout expired");
        s->due = 1;
        return;
    }

    ksv_queue_remove(&s->levels[r->level].queue, r);
    r->delayed = 1;
    ksv_queue_push(&s->levels[r->level].delayed, r);
    ksv_request_arm(s, r);
    s->due = 1;
}


static void
ksv_batch_timer(ksv_timer_t *t)
{
    ksv_sched_t  *s = t->data;

    s->due = 1;
}


/* ---- life of the scheduler ------------------------------------------------ */

static uint32_t
ksv_max_preferred(const ksv_model_config_t *c)
{
    uint32_t                       i, max;
    const ksv_dynamic_batching_t  *db = &c->dynamic_batching;

    max = 0;
    for (i = 0; i < db->npreferred; i++) {
        if (db->preferred_batch_size[i] > 0
            && (uint32_t) db->preferred_batch_size[i] > max
            && db->preferred_batch_size[i] <= c->max_batch_size)
        {
            max = (uint32_t) db->preferred_batch_size[i];
        }
    }
    return max > 0 ? max : (uint32_t) c->max_batch_size;
}


int
ksv_sched_init(ksv_sched_t *s)
{
    uint32_t                       n;
    const ksv_model_config_t      *c = s->config;
    const ksv_dynamic_batching_t  *db = &c->dynamic_batching;

    s->nlevels = db->priority_levels > 0 ? db->priority_levels : 1;
    s->levels = calloc(s->nlevels, sizeof(ksv_level_t));
    s->running = calloc(KSV_MAX_BATCH_REQUESTS, sizeof(ksv_request_t *));
    if (s->levels == NULL || s->running == NULL) {
        free(s->levels);
        free(s->running);
        return -1;
    }
    s->queued = 0;
    s->nrunning = 0;
    s->next_id = 0;
    s->due = 0;
    memset(s->table, 0, sizeof(s->table));

    /* max_queue_size bounds the version: its share per instance */
    n = s->ninstances > 0 ? s->ninstances : 1;
    s->max_queue = db->default_queue_policy.max_queue_size;
    s->max_queue = s->max_queue == 0 ? KSV_DEFAULT_QUEUE
                                     : (s->max_queue + n - 1) / n;

    s->batching = db->enabled && c->max_batch_size > 0;
    s->rules.max_batch = c->max_batch_size > 0 ? c->max_batch_size : 1;
    s->rules.max_preferred = s->batching ? ksv_max_preferred(c) : 1;
    s->rules.preferred = db->preferred_batch_size;
    s->rules.npreferred = db->npreferred;
    s->rules.delay_ns = db->max_queue_delay_us * 1000;
    ksv_arrivals_init(&s->arrivals, s->rules.delay_ns, ksv_timer_now());

    memset(&s->batch_timer, 0, sizeof(s->batch_timer));
    s->batch_timer.handler = ksv_batch_timer;
    s->batch_timer.data = s;
    return 0;
}


void
ksv_sched_free(ksv_sched_t *s, const char *why)
{
    ksv_request_t  *r;

    while ((r = ksv_sched_from(s, 0)) != NULL) {
        ksv_sched_unqueue(s, r);
        ksv_request_fail(s, r, KSV_ERR_UNAVAILABLE, why);
    }
    ksv_timer_del(s->timers, &s->batch_timer);
    free(s->levels);
    free(s->running);
    s->levels = NULL;
    s->running = NULL;
    s->nlevels = 0;
}


/* ---- arrivals ------------------------------------------------------------ */

static void
ksv_sched_infer(ksv_sched_t *s, ksv_frames_t *msg, ksv_reader_t *rd,
    uint64_t client_id)
{
    char            err[512];
    uint32_t        i;
    ksv_infer_t     m;
    ksv_alloc_t     alloc;
    ksv_arena_t     arena;
    ksv_level_t    *l;
    ksv_request_t  *r;

    ksv_arena_init(&arena);
    alloc = ksv_arena_allocator(&arena);

    if (ksv_decode_infer(rd, &alloc, &m) != 0) {
        ksv_sched_reject(s, &msg->msgs[0], client_id, KSV_ERR_INVALID_ARG,
                         "malformed INFER message");
        goto done;
    }
    if (ksv_map_inputs(&m, msg, err, sizeof(err)) != 0
        || ksv_check_inputs(&m, msg, err, sizeof(err)) != 0)
    {
        ksv_sched_reject(s, &msg->msgs[0], client_id, KSV_ERR_INVALID_ARG,
                         err);
        goto done;
    }
    if (!ksv_str_eq(m.model_name, s->model_name)
        || (m.model_version.len != 0
            && !ksv_str_eq(m.model_version, s->model_version)))
    {
        /* nginx's index is behind: this process serves another model */
        snprintf(err, sizeof(err), "instance '%s' serves model '%s' "
                 "version %s, not '%.*s' version %.*s", s->instance_name,
                 s->model_name, s->model_version,
                 (int) (m.model_name.len < 256 ? m.model_name.len : 256),
                 m.model_name.data,
                 (int) (m.model_version.len < 32 ? m.model_version.len : 32),
                 m.model_version.data);
        ksv_sched_reject(s, &msg->msgs[0], client_id, KSV_ERR_UNAVAILABLE,
                         err);
        goto done;
    }

    r = ksv_request_new(s, m.ninputs);
    if (r == NULL) {
        ksv_sched_reject(s, &msg->msgs[0], client_id, KSV_ERR_INTERNAL,
                         "out of memory");
        goto done;
    }

    r->id = ++s->next_id;
    r->client_id = client_id;
    r->traced = (m.flags & KSV_INFER_TRACE) ? 1 : 0;
    zmq_msg_move(&r->identity, &msg->msgs[0]);
    zmq_msg_move(&r->header, &msg->msgs[1]);
    for (i = 0; i < m.ninputs; i++) {
        zmq_msg_move(&r->inputs[i], &msg->msgs[2 + i]);
    }
    ksv_patch_id(zmq_msg_data(&r->header), zmq_msg_size(&r->header), r->id);
    ksv_table_insert(s, r);

    if (ksv_pin_outputs(r, &m, err, sizeof(err)) != 0) {
        ksv_request_fail(s, r, KSV_ERR_INVALID_ARG, err);
        goto done;
    }

    if (ksv_request_setup(s, r, &m, err, sizeof(err)) != 0) {
        ksv_request_fail(s, r, KSV_ERR_INVALID_ARG, err);
        goto done;
    }

    l = &s->levels[r->level];
    if (l->queue.len + l->delayed.len >= s->max_queue) {
        ksv_request_fail(s, r, KSV_ERR_UNAVAILABLE,
                         "Exceeds maximum queue size");
        goto done;
    }

    ksv_queue_push(&l->queue, r);
    r->queued = 1;
    s->queued++;
    ksv_arrivals_in(&s->arrivals, r->arrived_ns);
    r->outstanding = 1;
    ksv_request_arm(s, r);
    s->due = 1;

done:

    ksv_arena_free(&arena);
}


/* The client of (sender, client_id) went away. */
static void
ksv_sched_cancel(ksv_sched_t *s, zmq_msg_t *identity, uint64_t client_id)
{
    uint64_t        now;
    ksv_request_t  *r;

    r = *ksv_table_slot(s, identity, client_id);
    if (r == NULL) {
        return;                 /* answered already */
    }
    if (r->running) {
        /* the model may look (is_cancelled), from the executor thread */
        __atomic_store_n(&r->cancelled, 1, __ATOMIC_RELEASE);
        return;
    }

    /* never runs, never answered: nobody is waiting for it */
    ksv_sched_unqueue(s, r);
    ksv_table_remove(s, r);
    now = ksv_timer_now();
    if (r->outstanding) {
        ksv_arrivals_out(&s->arrivals, now);
    }
    ksv_request_free(r);
    s->due = 1;
}


void
ksv_sched_receive(ksv_sched_t *s, ksv_frames_t *msg)
{
    ksv_reader_t  rd;
    ksv_prefix_t  prefix;

    if (msg->n < 2) {
        goto done;              /* not from a module: nothing to answer */
    }

    ksv_reader_init(&rd, zmq_msg_data(&msg->msgs[1]),
                    zmq_msg_size(&msg->msgs[1]));
    if (ksv_read_prefix(&rd, &prefix) != 0) {
        ksv_sched_reject(s, &msg->msgs[0], prefix.id, KSV_ERR_INVALID_ARG,
                         "malformed message header");
        goto done;
    }

    switch (prefix.kind) {
    case KSV_MSG_INFER:
        ksv_sched_infer(s, msg, &rd, prefix.id);
        break;
    case KSV_MSG_CANCEL:
        ksv_sched_cancel(s, &msg->msgs[0], prefix.id);
        break;
    default:
        ksv_sched_reject(s, &msg->msgs[0], prefix.id, KSV_ERR_INVALID_ARG,
                         "unexpected message kind for an instance");
        break;
    }

done:

    ksv_frames_clear(msg);
}


/* ---- batches ------------------------------------------------------------- */

static int
ksv_same_shape(const ksv_request_t *a, const ksv_request_t *b)
{
    return a->shape_len == b->shape_len
           && (a->shape_len == 0
               || memcmp(a->shape, b->shape, a->shape_len) == 0);
}


/*
 * Picks the requests of the next batch into s->running (by the rules of
 * ksv_batcher.h).  Returns how many, or 0 (*wait_ns: look again then,
 * 0 when nothing waits).
 */
static uint32_t
ksv_sched_pick(ksv_sched_t *s, uint64_t now, uint64_t *wait_ns)
{
    int             blocked;
    uint32_t        n, total;
    uint64_t        oldest;
    ksv_request_t  *r;

    static uint32_t  rows[KSV_MAX_BATCH_REQUESTS];

    *wait_ns = 0;
    r = ksv_sched_from(s, 0);
    if (r == NULL) {
        return 0;
    }
    if (!s->batching) {
        s->running[0] = r;
        return 1;
    }

    n = 0;
    total = 0;
    blocked = 0;
    oldest = UINT64_MAX;
    for ( ; r != NULL; r = ksv_sched_after(s, r)) {
        if (n > 0 && (total + r->rows > s->rules.max_batch
                      || !ksv_same_shape(s->running[0], r)))
        {
            blocked = 1;
            break;
        }
        s->running[n] = r;
        rows[n++] = r->rows;
        total += r->rows;
        if (r->arrived_ns < oldest) {
            oldest = r->arrived_ns;
        }
        if (n == KSV_MAX_BATCH_REQUESTS) {
            blocked = 1;
            break;
        }
    }

    return ksv_batcher_decide(&s->rules, rows, n, blocked, now - oldest,
                              ksv_arrivals_gap(&s->arrivals, now), wait_ns);
}


/*
 * The watchdog's deadline of a batch is the latest of its requests' (the
 * module's deadline, or --execute-timeout from the start for one
 * without), plus KSV_EXECUTE_GRACE_MS: a model is only declared hung
 * once every client of the batch has given up on it.
 */
static uint64_t
ksv_batch_deadline(ksv_sched_t *s, uint64_t now)
{
    uint32_t   i;
    uint64_t   due, latest;

    latest = 0;
    for (i = 0; i < s->nrunning; i++) {
        due = s->running[i]->deadline_ns;
        if (due == 0) {
            if (s->execute_timeout_ns == 0) {
                continue;
            }
            due = now + s->execute_timeout_ns;
        }
        if (due > latest) {
            latest = due;
        }
    }
    return latest ? latest + KSV_EXECUTE_GRACE_MS * 1000000ULL : 0;
}


int
ksv_sched_next_batch(ksv_sched_t *s, ksv_frames_t *in, uint64_t *deadline_ns)
{
    uint32_t        i, k, n;
    uint64_t        now, wait;
    ksv_writer_t    w;
    ksv_request_t  *r;

    ksv_frames_clear(in);
    if (!s->due || s->queued == 0) {
        s->due = 0;
        return 0;
    }
    s->due = 0;

    now = ksv_timer_now();
    n = ksv_sched_pick(s, now, &wait);
    if (n == 0) {
        if (wait > 0) {
            (void) ksv_timer_add(s->timers, &s->batch_timer, now + wait);
        }
        return 0;
    }
    ksv_timer_del(s->timers, &s->batch_timer);

    s->running_id++;
    ksv_writer_init(&w);
    ksv_encode_execute(&w, KSV_MSG_EXECUTE, s->running_id, n);
    if (ksv_frames_push_writer(in, &w) != 0) {
        s->due = 1;
        return -1;
    }

    for (i = 0; i < n; i++) {
        r = s->running[i];
        ksv_sched_unqueue(s, r);
        r->running = 1;
        r->started_ns = now;
        if (ksv_frames_push_move(in, &r->header) != 0) {
            goto failed;
        }
        for (k = 0; k < r->ninputs; k++) {
            if (ksv_frames_push_move(in, &r->inputs[k]) != 0) {
                goto failed;
            }
        }
    }
    s->nrunning = n;
    *deadline_ns = ksv_batch_deadline(s, now);
    return 1;

failed:

    /* the frames of the requests taken so far are gone with `in` */
    s->nrunning = i + 1;
    ksv_frames_clear(in);
    ksv_sched_complete(s, in, -1);
    return -1;
}


/* ---- answers ------------------------------------------------------------- */

/* A traced request's INFER_REPLY header gets the timestamps appended
 * (ksv_trace_times_t); the batch's durations place the compute stages
 * from the moment it was handed over.  Left as it is when it cannot. */
static void
ksv_sched_trace(ksv_request_t *r, zmq_msg_t *header,
    const ksv_exec_times_t *t, uint64_t now)
{
    int                has_shm;
    size_t             len;
    uint8_t           *buf;
    ksv_alloc_t        alloc;
    ksv_arena_t        arena;
    ksv_reader_t       rd;
    ksv_prefix_t       prefix;
    ksv_writer_t       w;
    ksv_infer_reply_t  reply;
    ksv_trace_times_t  tt;

    ksv_reader_init(&rd, zmq_msg_data(header), zmq_msg_size(header));
    if (ksv_read_prefix(&rd, &prefix) != 0
        || prefix.kind != KSV_MSG_INFER_REPLY)
    {
        return;
    }

    /* the timestamps follow the shared memory section, which a traced
     * reply has even when empty */
    ksv_arena_init(&arena);
    alloc = ksv_arena_allocator(&arena);
    has_shm = ksv_decode_infer_reply(&rd, &alloc, &reply) == 0
              && reply.nshm > 0;
    ksv_arena_free(&arena);

    tt.queue_start = r->arrived_ns;
    tt.compute_start = r->started_ns;
    tt.compute_end = now;
    if (t != NULL && t->compute_input_ns + t->compute_infer_ns
                     + t->compute_output_ns > 0)
    {
        tt.compute_end = r->started_ns + t->compute_input_ns
                         + t->compute_infer_ns + t->compute_output_ns;
    }
    tt.compute_input_end = r->started_ns + (t ? t->compute_input_ns : 0);
    tt.compute_output_start = tt.compute_end - (t ? t->compute_output_ns : 0);
    tt.request_end = now;

    ksv_writer_init(&w);
    ksv_put_bytes(&w, zmq_msg_data(header), zmq_msg_size(header));
    if (!has_shm) {
        ksv_put_u32(&w, 0);
    }
    ksv_put_trace_times(&w, &tt);
    if (w.failed) {
        ksv_writer_free(&w);
        return;
    }

    buf = ksv_writer_detach(&w, &len);
    zmq_msg_close(header);
    if (zmq_msg_init_data(header, buf, len, ksv_writer_free_cb, NULL) != 0) {
        free(buf);
        zmq_msg_init(header);
    }
}


/* The one exit of a request that was accepted: `out` is [answer with the
 * client's id][outputs...] (empty: nothing can be sent).  Counts the
 * statistics, then sends [identity][out...]. */
static void
ksv_sched_answer(ksv_sched_t *s, ksv_request_t *r, ksv_frames_t *out, int ok,
    const ksv_exec_times_t *t)
{
    size_t        i;
    uint64_t      now;
    ksv_frames_t  msg;

    now = ksv_timer_now();
    ksv_table_remove(s, r);
    if (r->outstanding) {
        ksv_arrivals_out(&s->arrivals, now);
    }
    if (s->stats != NULL) {
        ksv_stats_request(s->stats, ok, now - r->arrived_ns,
                          ok ? r->started_ns - r->arrived_ns : 0, t);
    }

    if (r->traced && ok && out->n > 0) {
        ksv_sched_trace(r, &out->msgs[0], t, now);
    }

    ksv_frames_init(&msg);
    if (out->n > 0 && !r->cancelled
        && ksv_frames_push_move(&msg, &r->identity) == 0)
    {
        for (i = 0; i < out->n; i++) {
            if (ksv_frames_push_move(&msg, &out->msgs[i]) != 0) {
                break;
            }
        }
        if (i == out->n) {
            /* a client gone meanwhile: ROUTER drops it, as it should */
            (void) ksv_frames_send(s->socket, &msg, ZMQ_DONTWAIT);
        }
    }
    ksv_frames_free(&msg);
    ksv_frames_clear(out);
    ksv_request_free(r);
}


/* Whether output i went to shared memory (its frame is then empty). */
static int
ksv_reply_in_shm(const ksv_infer_reply_t *reply, uint32_t i)
{
    uint32_t  k;

    for (k = 0; k < reply->nshm; k++) {
        if (reply->shm[k] == i) {
            return 1;
        }
    }
    return 0;
}


/* How many frames the answer at frames[0] spans (its header and
 * outputs), 0 when it is not an answer for request id. */
static size_t
ksv_answer_frames(const zmq_msg_t *frames, size_t avail, uint64_t id,
    int *ok)
{
    size_t             used;
    uint32_t           i;
    ksv_alloc_t        alloc;
    ksv_arena_t        arena;
    ksv_reader_t       rd;
    ksv_prefix_t       prefix;
    ksv_infer_reply_t  reply;

    ksv_reader_init(&rd, zmq_msg_data((zmq_msg_t *) &frames[0]),
                    zmq_msg_size((zmq_msg_t *) &frames[0]));
    if (ksv_read_prefix(&rd, &prefix) != 0 || prefix.id != id) {
        return 0;
    }
    if (prefix.kind == KSV_MSG_ERROR) {
        *ok = 0;
        return 1;
    }
    if (prefix.kind != KSV_MSG_INFER_REPLY) {
        return 0;
    }

    ksv_arena_init(&arena);
    alloc = ksv_arena_allocator(&arena);
    used = 0;
    if (ksv_decode_infer_reply(&rd, &alloc, &reply) == 0
        && reply.noutputs < avail)
    {
        used = 1 + reply.noutputs;
        for (i = 0; i < reply.noutputs; i++) {
            if (zmq_msg_size((zmq_msg_t *) &frames[1 + i])
                != (ksv_reply_in_shm(&reply, i)
                    ? 0 : reply.outputs[i].byte_size))
            {
                used = 0;
                break;
            }
        }
    }
    ksv_arena_free(&arena);
    *ok = 1;
    return used;
}


void
ksv_sched_complete(ksv_sched_t *s, ksv_frames_t *out, int rc)
{
    int               ok;
    char              msg[512];
    size_t            pos, used, k;
    uint32_t          i, count, rows;
    ksv_reader_t      rd;
    ksv_prefix_t      prefix;
    ksv_frames_t      answer;
    ksv_request_t    *r;
    ksv_exec_times_t  t;

    s->due = 1;
    msg[0] = '\0';
    count = 0;
    memset(&t, 0, sizeof(t));

    if (rc <= 0 || out->n == 0) {
        snprintf(msg, sizeof(msg), "instance '%s' could not run the batch "
                 "(out of memory)", s->instance_name);

    } else {
        ksv_reader_init(&rd, zmq_msg_data(&out->msgs[0]),
                        zmq_msg_size(&out->msgs[0]));
        if (ksv_read_prefix(&rd, &prefix) != 0
            || prefix.kind != KSV_MSG_EXECUTE_REPLY
            || prefix.id != s->running_id
            || ksv_decode_execute_reply(&rd, &count, &t) != 0)
        {
            snprintf(msg, sizeof(msg), "instance '%s' produced a malformed "
                     "EXECUTE_REPLY", s->instance_name);

        } else if (count != s->nrunning) {
            snprintf(msg, sizeof(msg), "instance '%s' returned %u responses "
                     "for %u requests", s->instance_name, count,
                     s->nrunning);
        }
    }

    if (msg[0] == '\0') {
        rows = 0;
        for (i = 0; i < s->nrunning; i++) {
            rows += s->running[i]->rows;
        }
        if (s->stats != NULL) {
            ksv_stats_batch(s->stats, s->batching ? rows : 1, &t);
        }
    }

    ksv_frames_init(&answer);
    pos = 1;
    for (i = 0; i < s->nrunning; i++) {
        r = s->running[i];
        s->running[i] = NULL;

        used = 0;
        if (msg[0] == '\0' && pos < out->n) {
            used = ksv_answer_frames(&out->msgs[pos], out->n - pos, r->id,
                                     &ok);
        }
        if (used == 0) {
            if (msg[0] == '\0') {
                /* the frame layout is lost: fail the rest, never guess */
                snprintf(msg, sizeof(msg), "instance '%s' sent a malformed "
                         "answer", s->instance_name);
            }
            ksv_request_fail(s, r, KSV_ERR_INTERNAL, msg);
            continue;
        }

        ksv_patch_id(zmq_msg_data(&out->msgs[pos]),
                     zmq_msg_size(&out->msgs[pos]), r->client_id);
        for (k = 0; k < used; k++) {
            (void) ksv_frames_push_move(&answer, &out->msgs[pos + k]);
        }
        pos += used;
        if (answer.n != used) {
            ksv_frames_clear(&answer);
        }
        ksv_sched_answer(s, r, &answer, ok, &t);
    }
    ksv_frames_free(&answer);
    ksv_frames_clear(out);
    s->nrunning = 0;
}


/*
 * The watchdog's: the model still runs (and may call is_cancelled(), which
 * reads s->running), so the requests are answered from copies of their
 * identities and kept: the process is about to end.
 */
void
ksv_sched_fail_running(ksv_sched_t *s, ksv_status_t code, const char *message)
{
    uint32_t        i;
    uint64_t        now;
    ksv_writer_t    w;
    ksv_frames_t    out;
    ksv_request_t  *r;

    now = ksv_timer_now();
    ksv_frames_init(&out);
    for (i = 0; i < s->nrunning; i++) {
        r = s->running[i];
        if (s->stats != NULL) {
            ksv_stats_request(s->stats, 0, now - r->arrived_ns, 0, NULL);
        }
        ksv_writer_init(&w);
        ksv_encode_error(&w, r->client_id, code, ksv_str_c(message));
        if (ksv_frames_push(&out) != NULL
            && zmq_msg_copy(&out.msgs[0], &r->identity) == 0
            && ksv_frames_push_writer(&out, &w) == 0)
        {
            (void) ksv_frames_send(s->socket, &out, ZMQ_DONTWAIT);
        }
        ksv_frames_clear(&out);
    }
    ksv_frames_free(&out);
}


int
ksv_sched_is_cancelled(const ksv_sched_t *s, uint64_t id)
{
    uint32_t  i;

    for (i = 0; i < s->nrunning; i++) {
        if (s->running[i] != NULL && s->running[i]->id == id) {
            return __atomic_load_n(&s->running[i]->cancelled,
                                   __ATOMIC_ACQUIRE);
        }
    }
    return 0;
}
