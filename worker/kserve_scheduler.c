/*
 * kserve-worker: per-version request queues and the dynamic batcher
 * (see kserve_scheduler.h for the rules).
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


static void kserve_answer(kserve_request_t *r, zmq_msg_t *out, size_t n,
    int ok, const ksv_exec_times_t *t);


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
    r->arrived_ns = kserve_now_ns();
    return r;
}


void
kserve_request_free(kserve_request_t *r)
{
    size_t  i;

    zmq_msg_close(&r->identity);
    zmq_msg_close(&r->header);
    for (i = 0; i < r->ninputs; i++) {
        zmq_msg_close(&r->inputs[i]);
    }
    for (i = 0; i < r->nanswer; i++) {
        zmq_msg_close(&r->answer[i]);
    }
    free(r->answer);
    free(r->inputs);
    free(r->shape);
    free(r);
}


void
kserve_request_fail(kserve_request_t *r, ksv_status_t code,
    const char *message)
{
    size_t        len;
    uint8_t      *buf;
    zmq_msg_t    *out;
    ksv_writer_t  w;

    kserve_debug("request %llu (client id %llu): %s %s",
                 (unsigned long long) r->id,
                 (unsigned long long) r->client_id, ksv_status_name(code),
                 message);

    if (r->version == NULL) {
        kserve_server_error(&r->identity, r->client_id, code, message);
        kserve_request_free(r);
        return;
    }

    /* through kserve_answer(), so statistics and ordering see it */
    out = malloc(2 * sizeof(zmq_msg_t));
    ksv_writer_init(&w);
    ksv_encode_error(&w, r->client_id, code, ksv_str_c(message));
    buf = ksv_writer_detach(&w, &len);
    if (out == NULL || w.failed || buf == NULL) {
        free(out);
        free(buf);
        kserve_error("cannot encode an error: out of memory");
        kserve_answer(r, NULL, 0, 0, NULL);     /* keeps the order going */
        return;
    }

    zmq_msg_init(&out[0]);
    zmq_msg_move(&out[0], &r->identity);
    zmq_msg_init_data(&out[1], buf, len, ksv_writer_free_cb, NULL);
    kserve_answer(r, out, 2, 0, NULL);
}


/* A parameter of the request, or NULL. */
static const ksv_param_t *
kserve_param(const ksv_infer_t *m, const char *key)
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
kserve_input_config(const ksv_model_config_t *c, ksv_str_t name)
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
kserve_request_shape(const ksv_model_config_t *c, kserve_request_t *r,
    const ksv_infer_t *m)
{
    uint32_t                i, d;
    ksv_writer_t            w;
    const ksv_tensor_t     *t;
    const ksv_io_config_t  *io;

    ksv_writer_init(&w);
    for (i = 0; i < m->ninputs; i++) {
        t = &m->inputs[i];
        io = kserve_input_config(c, t->name);
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


int
kserve_request_setup(kserve_version_t *v, kserve_request_t *r,
    const ksv_infer_t *m, char *err, size_t errlen)
{
    int64_t                        rows;
    uint32_t                       i;
    uint64_t                       now, us;
    const ksv_param_t             *p;
    const ksv_model_config_t      *c = &v->model->config;
    const ksv_dynamic_batching_t  *db = &c->dynamic_batching;

    now = r->arrived_ns;

    /* rows: dim 0, the same for every input (the module checks it too,
     * but a worker trusts no client) */
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
                     (int) c->max_batch_size, v->model->name,
                     (long long) rows);
            return -1;
        }
        if (rows != -1) {
            r->rows = (uint32_t) rows;
        }
    }

    /* priority: 1 is the highest; 0 or absent is the default level */
    r->level = 0;
    p = kserve_param(m, "priority");
    if (p != NULL && db->priority_levels > 0) {
        if (p->type != KSV_PARAM_INT || p->i < 0
            || p->i > (int64_t) v->sched.nlevels)
        {
            snprintf(err, errlen, "invalid priority for '%s': must be an "
                     "integer from 0 (the default level) to %u",
                     v->model->name, v->sched.nlevels);
            return -1;
        }
        r->level = (uint32_t) (p->i > 0 ? p->i - 1 : 0);
    }
    if ((p == NULL || p->i == 0 || db->priority_levels == 0)
        && v->sched.nlevels > 1)
    {
        r->level = db->default_priority_level > 0
                   ? db->default_priority_level - 1 : v->sched.nlevels - 1;
        if (r->level >= v->sched.nlevels) {
            r->level = v->sched.nlevels - 1;
        }
    }

    /* the queue policy's timeout, which the request may only lower */
    us = db->default_queue_policy.default_timeout_us;
    p = kserve_param(m, "timeout");
    if (p != NULL && db->default_queue_policy.allow_timeout_override) {
        if (p->type != KSV_PARAM_INT || p->i < 0) {
            snprintf(err, errlen, "invalid timeout for '%s': must be a "
                     "non-negative integer (microseconds)", v->model->name);
            return -1;
        }
        if (p->i > 0 && (us == 0 || (uint64_t) p->i < us)) {
            us = (uint64_t) p->i;
        }
    }
    r->timeout_ns = us > 0 ? now + us * 1000 : 0;

    if (m->timeout_ms > 0) {
        r->deadline_ns = now + (uint64_t) m->timeout_ms * 1000000;
    }

    if (db->enabled && c->max_batch_size > 0
        && kserve_request_shape(c, r, m) != 0)
    {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    return 0;
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


static kserve_queue_t *
kserve_queue_of(kserve_sched_t *s, kserve_request_t *r)
{
    kserve_level_t  *l = &s->levels[r->level];

    return r->delayed ? &l->delayed : &l->queue;
}


static void
kserve_sched_remove(kserve_sched_t *s, kserve_request_t *r)
{
    kserve_queue_remove(kserve_queue_of(s, r), r);
    r->queued = 0;
    s->queued--;
}


/* The first queued request in scheduling order at or after list k
 * (level k / 2, delayed when k is odd). */
static kserve_request_t *
kserve_sched_from(kserve_sched_t *s, uint32_t k)
{
    kserve_level_t  *l;

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
static kserve_request_t *
kserve_sched_next(kserve_sched_t *s, kserve_request_t *r)
{
    if (r->next != NULL) {
        return r->next;
    }
    return kserve_sched_from(s, 2 * r->level + (r->delayed ? 1 : 0) + 1);
}


/*
 * Handles a queued request whose time has come: answered when past the
 * module's deadline or a REJECT timeout, moved behind its level when
 * past a DELAY timeout.  Returns 1 when r left the queue it was in.
 */
static int
kserve_sched_expire(kserve_version_t *v, kserve_request_t *r, uint64_t now)
{
    kserve_sched_t  *s = &v->sched;

    if (r->deadline_ns != 0 && r->deadline_ns <= now) {
        kserve_sched_remove(s, r);
        kserve_request_fail(r, KSV_ERR_UNAVAILABLE, "Request timeout expired");
        return 1;
    }

    if (r->timeout_ns == 0 || r->timeout_ns > now || r->delayed) {
        return 0;
    }

    if (v->model->config.dynamic_batching.default_queue_policy
        .timeout_action == KSV_TIMEOUT_DELAY)
    {
        kserve_queue_remove(&s->levels[r->level].queue, r);
        r->delayed = 1;
        kserve_queue_push(&s->levels[r->level].delayed, r);
        return 1;
    }

    kserve_sched_remove(s, r);
    kserve_request_fail(r, KSV_ERR_UNAVAILABLE, "Request timeout expired");
    return 1;
}


/* ---- arrivals ("is another request coming?", see the header) ------------- */

/* hits are kept in 1/256ths of an arrival, so halving keeps precision */
#define KSERVE_HIT              256


static uint64_t
kserve_half_life_ns(kserve_version_t *v)
{
    uint64_t  ns;

    ns = (uint64_t) KSERVE_ARRIVAL_HALF_LIFE_MS * 1000000;
    if (16 * v->model->config.dynamic_batching.max_queue_delay_us * 1000 > ns)
    {
        ns = 16 * v->model->config.dynamic_batching.max_queue_delay_us * 1000;
    }
    return ns;
}


/* Brings the counts up to now: the running busy time is added, and both
 * counts are halved once per half-life gone by. */
static void
kserve_arrivals_sync(kserve_version_t *v, uint64_t now)
{
    uint64_t            half, k;
    kserve_arrivals_t  *a = &v->sched.arrivals;

    if (a->outstanding > 0 && now > a->busy_since) {
        a->busy_ns += now - a->busy_since;
        a->busy_since = now;
    }

    if (now <= a->decayed_at) {
        return;
    }
    half = kserve_half_life_ns(v);
    k = (now - a->decayed_at) / half;
    if (k == 0) {
        return;
    }
    if (k >= 32) {
        a->busy_ns = 0;
        a->hits = 0;
        a->decayed_at = now;
        return;
    }
    a->busy_ns >>= k;
    a->hits >>= k;
    a->decayed_at += k * half;
}


/* A request joins v's outstanding work. */
static void
kserve_arrivals_in(kserve_version_t *v, kserve_request_t *r, uint64_t now)
{
    kserve_arrivals_t  *a = &v->sched.arrivals;

    kserve_arrivals_sync(v, now);
    if (a->outstanding > 0) {
        a->hits += KSERVE_HIT;
    } else {
        a->busy_since = now;
    }
    a->outstanding++;
    r->outstanding = 1;
}


/* A request of v has been answered. */
static void
kserve_arrivals_out(kserve_version_t *v, kserve_request_t *r, uint64_t now)
{
    kserve_arrivals_t  *a = &v->sched.arrivals;

    if (!r->outstanding) {
        return;
    }
    r->outstanding = 0;
    kserve_arrivals_sync(v, now);
    a->outstanding--;
}


/* The expected ns until the next request arrives, now that v has work:
 * busy time per busy arrival (UINT64_MAX when none was seen). */
static uint64_t
kserve_arrivals_gap(kserve_version_t *v, uint64_t now)
{
    kserve_arrivals_t  *a = &v->sched.arrivals;

    kserve_arrivals_sync(v, now);
    if (a->hits == 0) {
        return UINT64_MAX;
    }
    return a->busy_ns * KSERVE_HIT / a->hits;
}


int
kserve_scheduler_init(kserve_version_t *v)
{
    kserve_sched_t                *s = &v->sched;
    const ksv_dynamic_batching_t  *db = &v->model->config.dynamic_batching;

    memset(s, 0, sizeof(*s));
    s->nlevels = db->priority_levels > 0 ? db->priority_levels : 1;
    s->levels = calloc(s->nlevels, sizeof(kserve_level_t));
    if (s->levels == NULL) {
        s->nlevels = 0;
        return -1;
    }
    s->max_queue = db->default_queue_policy.max_queue_size;
    if (s->max_queue == 0) {
        s->max_queue = KSERVE_DEFAULT_QUEUE;
    }
    s->next_seq = 1;
    s->next_out = 1;
    return 0;
}


void
kserve_scheduler_free(kserve_version_t *v)
{
    kserve_sched_t    *s = &v->sched;
    kserve_request_t  *r;

    /* answers still held for an earlier request that never finished */
    while ((r = s->held.head) != NULL) {
        kserve_queue_remove(&s->held, r);
        kserve_request_free(r);
    }
    free(s->levels);
    s->levels = NULL;
    s->nlevels = 0;
    kserve_stats_free(&s->stats);
}


/* Tells the loop that something is due at due_ns (0: nothing), so the
 * sweep (kserve_scheduler_expire) that normally runs every
 * KSERVE_TICK_MS catches it on time. */
static void
kserve_hint(uint64_t due_ns)
{
    int64_t  ms;

    if (due_ns == 0) {
        return;
    }
    ms = (int64_t) ((due_ns + 999999) / 1000000);
    if (kserve.expire_hint_ms == 0 || ms < kserve.expire_hint_ms) {
        kserve.expire_hint_ms = ms;
    }
}


/* ... for r's earliest deadline. */
static void
kserve_expire_hint(kserve_request_t *r)
{
    uint64_t  due;

    due = r->deadline_ns;
    if (r->timeout_ns != 0 && (due == 0 || r->timeout_ns < due)) {
        due = r->timeout_ns;
    }
    kserve_hint(due);
}


static int
kserve_version_ready(kserve_version_t *v)
{
    return v->state == KSV_VERSION_READY;
}


void
kserve_scheduler_submit(kserve_version_t *v, kserve_request_t *r)
{
    char             msg[KSERVE_REASON_MAX + 128];
    kserve_sched_t  *s = &v->sched;
    kserve_level_t  *l;

    r->version = v;

    if (!kserve_version_ready(v)) {
        snprintf(msg, sizeof(msg), "model '%s' version %lld is not ready: %s",
                 v->model->name, (long long) v->version,
                 v->reason[0] ? v->reason : "loading");
        kserve_request_fail(r, KSV_ERR_UNAVAILABLE, msg);
        return;
    }

    l = &s->levels[r->level];
    if (l->queue.len + l->delayed.len >= s->max_queue) {
        kserve_request_fail(r, KSV_ERR_UNAVAILABLE,
                            "Exceeds maximum queue size");
        return;
    }

    if (v->model->config.dynamic_batching.preserve_ordering) {
        r->seq = s->next_seq++;
    }

    kserve_queue_push(&l->queue, r);
    r->queued = 1;
    s->queued++;
    kserve_arrivals_in(v, r, kserve_now_ns());
    kserve_expire_hint(r);
    kserve_scheduler_dispatch(v);
}


/* ---- batches ------------------------------------------------------------- */

static int
kserve_is_preferred(const ksv_dynamic_batching_t *db, uint32_t rows)
{
    uint32_t  i;

    for (i = 0; i < db->npreferred; i++) {
        if (db->preferred_batch_size[i] == (int32_t) rows) {
            return 1;
        }
    }
    return 0;
}


static uint32_t
kserve_max_preferred(const ksv_model_config_t *c)
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


static int
kserve_same_shape(const kserve_request_t *a, const kserve_request_t *b)
{
    return a->shape_len == b->shape_len
           && (a->shape_len == 0
               || memcmp(a->shape, b->shape, a->shape_len) == 0);
}


/*
 * Picks the requests of the next batch into pick[] (see the header for
 * the rules).  Returns how many, and 0 with *wait_ns set when the batch
 * should wait for more requests (0: nothing to wait for).
 *
 * exact: the longest prefix whose rows are a preferred size; best: that,
 * or the longest prefix within the largest preferred size once the
 * queue holds more (Triton's "saturated" batch).  Unlike Triton, an
 * exact preferred size wins even after max_queue_delay has passed:
 * under load the delay has always passed by the time an instance is
 * free, and Triton would then ignore preferred sizes altogether.
 */
static uint32_t
kserve_pick(kserve_version_t *v, uint64_t now, kserve_request_t **pick,
    uint64_t *wait_ns)
{
    int                            send_now, exceeded;
    uint32_t                       n, best, exact, rows, max, max_pref;
    uint64_t                       oldest, delay, left, gap;
    kserve_sched_t                *s = &v->sched;
    kserve_request_t              *r, *rn;
    const ksv_model_config_t      *c = &v->model->config;
    const ksv_dynamic_batching_t  *db = &c->dynamic_batching;

    *wait_ns = 0;

    if (!db->enabled || c->max_batch_size <= 0) {
        for (r = kserve_sched_from(s, 0); r != NULL; r = rn) {
            rn = kserve_sched_next(s, r);
            if (!kserve_sched_expire(v, r, now)) {
                pick[0] = r;
                return 1;
            }
        }
        return 0;
    }

    max = (uint32_t) c->max_batch_size;
    max_pref = kserve_max_preferred(c);
    n = 0;
    best = 0;
    exact = 0;
    rows = 0;
    send_now = 0;
    oldest = UINT64_MAX;

    for (r = kserve_sched_from(s, 0); r != NULL; r = rn) {
        rn = kserve_sched_next(s, r);

        /* a request moved to the delayed queue is met again there */
        if (kserve_sched_expire(v, r, now)) {
            continue;
        }

        if (n > 0) {
            /* the batch would outgrow every preferred size: remember
             * the largest prefix within it */
            if (rows + r->rows > max_pref && best == 0) {
                best = n;
            }
            if (rows + r->rows > max || !kserve_same_shape(pick[0], r)) {
                send_now = 1;
                break;
            }
        }

        pick[n++] = r;
        rows += r->rows;
        if (r->arrived_ns < oldest) {
            oldest = r->arrived_ns;
        }
        if (kserve_is_preferred(db, rows)) {
            exact = n;
            best = n;
        }
        if (n == KSV_MAX_BATCH_REQUESTS) {
            send_now = 1;
            break;
        }
    }

    if (n == 0) {
        return 0;
    }

    delay = db->max_queue_delay_us * 1000;
    exceeded = delay != 0 && now - oldest >= delay;

    if (exact != 0 || (best != 0 && !exceeded)) {
        return exact != 0 ? exact : best;
    }
    if (send_now || rows >= max_pref || exceeded || delay == 0) {
        return n;
    }

    /* wait only while another request is expected before the delay is
     * up; look again when it no longer is */
    left = oldest + delay - now;
    gap = kserve_arrivals_gap(v, now);
    if (gap >= left) {
        return n;
    }

    *wait_ns = left - gap;
    return 0;
}


/*
 * The watchdog's deadline of a batch is the latest of its requests'
 * (the module's deadline, or --execute-timeout from dispatch for one
 * without), plus KSERVE_EXECUTE_GRACE_MS, added by the caller: a model
 * is only declared hung once every client of the batch has given up on
 * it.  0: no deadline (--execute-timeout 0 and no module deadline).
 */
static void
kserve_batch_deadline(kserve_batch_t *b, const kserve_request_t *r)
{
    uint64_t  due;

    due = r->deadline_ns;
    if (due == 0) {
        if (kserve.execute_timeout_ms == 0) {
            return;
        }
        due = b->dispatched_ns + kserve.execute_timeout_ms * 1000000ULL;
    }
    if (due > b->deadline_ns) {
        b->deadline_ns = due;
    }
}


static kserve_batch_t *
kserve_form_batch(kserve_version_t *v, uint64_t now, uint64_t *wait_ns)
{
    uint32_t           i, n;
    kserve_batch_t    *b;
    kserve_request_t  *r;

    static kserve_request_t  *pick[KSV_MAX_BATCH_REQUESTS];

    n = kserve_pick(v, now, pick, wait_ns);
    if (n == 0) {
        return NULL;
    }

    b = malloc(sizeof(kserve_batch_t) + n * sizeof(kserve_request_t *));
    if (b == NULL) {
        r = pick[0];
        kserve_sched_remove(&v->sched, r);
        kserve_request_fail(r, KSV_ERR_INTERNAL, "out of memory");
        return NULL;
    }

    b->id = kserve_next_id();
    b->instance = NULL;
    b->n = n;
    b->rows = 0;
    b->dispatched_ns = now;
    b->deadline_ns = 0;
    for (i = 0; i < n; i++) {
        r = pick[i];
        kserve_sched_remove(&v->sched, r);
        r->dispatched_ns = now;
        b->requests[i] = r;
        b->rows += r->rows;
        kserve_batch_deadline(b, r);
    }
    if (b->deadline_ns != 0) {
        b->deadline_ns += KSERVE_EXECUTE_GRACE_MS * 1000000ULL;
    }
    return b;
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
    uint32_t            i, k;
    uint64_t            now, wait;
    kserve_batch_t     *b;
    kserve_instance_t  *inst;
    kserve_sched_t     *s = &v->sched;

    s->due_ns = 0;
    if (s->queued == 0 || kserve.shutting_down) {
        return;
    }

    now = kserve_now_ns();

    /* round-robin over idle instances, so load spreads even when one
     * instance is always the first to become free */
    for (k = 0; k < v->ninstances && s->queued > 0; k++) {
        i = (v->next_instance + k) % v->ninstances;
        inst = &v->instances[i];
        if (inst->state != KSERVE_INSTANCE_IDLE) {
            continue;
        }

        b = kserve_form_batch(v, now, &wait);
        if (b == NULL) {
            if (wait > 0) {
                /* the batch may still grow: look again when the oldest
                 * request has waited max_queue_delay, or sooner when a
                 * request arrives */
                s->due_ns = now + wait;
                break;
            }
            if (s->queued == 0) {
                break;
            }
            k--;        /* a request failed on its way: this one again */
            continue;
        }

        b->instance = inst;
        inst->batch = b;
        inst->state = KSERVE_INSTANCE_BUSY;
        v->next_instance = i + 1;
        kserve_hint(b->deadline_ns);

        kserve_debug("batch %llu (%u request(s), %u row(s)) -> instance %s",
                     (unsigned long long) b->id, b->n, b->rows, inst->label);

        if (kserve_batch_send(inst, b) != 0) {
            kserve_scheduler_fail_batch(inst, KSV_ERR_INTERNAL,
                                        "instance is unreachable");
            kserve_supervisor_kill(inst, "cannot send it a batch");
        }
    }
}


int64_t
kserve_scheduler_tick(uint64_t now)
{
    int64_t            next;
    uint32_t           i, j;
    kserve_model_t    *m;
    kserve_version_t  *v;

    next = -1;

    for (i = 0; i < kserve.repo.nmodels; i++) {
        m = &kserve.repo.models[i];
        for (j = 0; j < m->nversions; j++) {
            v = &m->versions[j];
            if (v->sched.due_ns == 0) {
                continue;
            }
            if (v->sched.due_ns <= now) {
                kserve_scheduler_dispatch(v);
            }
            if (v->sched.due_ns != 0
                && (next < 0 || (int64_t) (v->sched.due_ns - now) < next))
            {
                next = v->sched.due_ns > now
                       ? (int64_t) (v->sched.due_ns - now) : 0;
            }
        }
    }

    return next;
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

    /* idle first: answering may dispatch more work to this version */
    inst->batch = NULL;
    if (inst->state == KSERVE_INSTANCE_BUSY) {
        inst->state = KSERVE_INSTANCE_IDLE;
    }

    for (i = 0; i < b->n; i++) {
        kserve_request_fail(b->requests[i], code, message);
        b->requests[i] = NULL;
    }
    free(b);
}


void
kserve_scheduler_fail_queue(kserve_version_t *v, ksv_status_t code,
    const char *message)
{
    kserve_request_t  *r;

    v->sched.due_ns = 0;
    while ((r = kserve_sched_from(&v->sched, 0)) != NULL) {
        kserve_sched_remove(&v->sched, r);
        kserve_request_fail(r, code, message);
    }
}


/*
 * The hung-model watchdog: inst's batch is past its deadline (see
 * kserve_batch_deadline).  Its requests are answered now (their clients
 * have most likely had their 504 from the module already, but
 * preserve_ordering holds every later answer of the version behind
 * them), and the instance is killed: it is stuck in execute() and its
 * capacity is lost until the supervisor has restarted it.
 */
static void
kserve_batch_overdue(kserve_instance_t *inst, uint64_t now)
{
    char             msg[KSERVE_REASON_MAX], why[128];
    uint64_t         ms;
    kserve_batch_t  *b = inst->batch;

    ms = (b->deadline_ns - b->dispatched_ns) / 1000000;
    snprintf(msg, sizeof(msg), "instance %s did not finish within %llu ms "
             "(its deadline + %d ms grace); it is being restarted",
             inst->name, (unsigned long long) ms, KSERVE_EXECUTE_GRACE_MS);
    snprintf(why, sizeof(why), "hung: batch %llu (%u request(s)) still "
             "running after %llu ms", (unsigned long long) b->id, b->n,
             (unsigned long long) ((now - b->dispatched_ns) / 1000000));

    /* fail first (that makes it IDLE), then kill (that makes it
     * STARTING, so nothing is dispatched to it before the restart) */
    kserve_scheduler_fail_batch(inst, KSV_ERR_UNAVAILABLE, msg);
    kserve_supervisor_kill(inst, why);
}


/* Runs the watchdog over v's busy instances.  Returns ns until the next
 * batch deadline, or -1 when none. */
static int64_t
kserve_watchdog(kserve_version_t *v, uint64_t now)
{
    int64_t             next;
    uint32_t            i;
    kserve_batch_t     *b;
    kserve_instance_t  *inst;

    next = -1;
    for (i = 0; i < v->ninstances; i++) {
        inst = &v->instances[i];
        b = inst->batch;
        if (inst->state != KSERVE_INSTANCE_BUSY || b == NULL
            || b->deadline_ns == 0)
        {
            continue;
        }
        if (b->deadline_ns <= now) {
            kserve_batch_overdue(inst, now);
            continue;
        }
        if (next < 0 || (int64_t) (b->deadline_ns - now) < next) {
            next = (int64_t) (b->deadline_ns - now);
        }
    }
    return next;
}


int64_t
kserve_scheduler_expire(int64_t now_ms)
{
    int64_t            next, left, hung;
    uint32_t           i, j;
    uint64_t           now, due;
    kserve_model_t    *m;
    kserve_version_t  *v;
    kserve_request_t  *r, *rn;

    (void) now_ms;              /* the same clock, read here in ns */
    now = kserve_now_ns();
    next = -1;

    for (i = 0; i < kserve.repo.nmodels; i++) {
        m = &kserve.repo.models[i];
        for (j = 0; j < m->nversions; j++) {
            v = &m->versions[j];

            hung = kserve_watchdog(v, now);
            if (hung >= 0) {
                left = (hung + 999999) / 1000000;
                if (next < 0 || left < next) {
                    next = left;
                }
            }

            if (v->sched.queued == 0) {
                continue;
            }
            for (r = kserve_sched_from(&v->sched, 0); r != NULL; r = rn) {
                rn = kserve_sched_next(&v->sched, r);
                if (kserve_sched_expire(v, r, now)) {
                    continue;
                }
                due = r->deadline_ns;
                if (r->timeout_ns != 0 && !r->delayed
                    && (due == 0 || r->timeout_ns < due))
                {
                    due = r->timeout_ns;
                }
                if (due == 0) {
                    continue;
                }
                left = (int64_t) ((due - now + 999999) / 1000000);
                if (next < 0 || left < next) {
                    next = left;
                }
            }
        }
    }

    return next;
}


/* ---- answers ------------------------------------------------------------- */

static void
kserve_answer_send(kserve_request_t *r, zmq_msg_t *out, size_t n)
{
    if (n > 0 && kserve_server_send(kserve.frontend, out, n) != 0) {
        kserve_debug("request %llu: client gone, answer dropped",
                     (unsigned long long) r->id);
    }
    free(out);
    kserve_request_free(r);
}


/*
 * The one exit of a request that reached a version: out[0..n) is
 * [identity][answer with the client's id][outputs...] (n = 0: nothing
 * can be sent), taken over.  Counts the statistics, then sends at once
 * or, under preserve_ordering, when every earlier request has gone.
 */
static void
kserve_answer(kserve_request_t *r, zmq_msg_t *out, size_t n, int ok,
    const ksv_exec_times_t *t)
{
    uint64_t           now;
    kserve_sched_t    *s = &r->version->sched;
    kserve_request_t  *h, *at;

    now = kserve_now_ns();
    kserve_arrivals_out(r->version, r, now);
    kserve_stats_request(&s->stats, ok, now - r->arrived_ns,
                         ok ? r->dispatched_ns - r->arrived_ns : 0, t);

    if (r->seq == 0 || r->seq == s->next_out) {
        if (r->seq != 0) {
            s->next_out++;
        }
        kserve_answer_send(r, out, n);

        /* the answers that waited for this one */
        while ((h = s->held.head) != NULL && h->seq == s->next_out) {
            kserve_queue_remove(&s->held, h);
            s->next_out++;
            out = h->answer;
            n = h->nanswer;
            h->answer = NULL;
            h->nanswer = 0;
            kserve_answer_send(h, out, n);
        }
        return;
    }

    /* early: keep it, in seq order (answers come nearly in order, so
     * the walk from the tail is short) */
    r->answer = out;
    r->nanswer = n;
    r->answer_ok = ok;
    for (at = s->held.tail; at != NULL && at->seq > r->seq; at = at->prev) {
        /* walk back */
    }
    if (at == NULL) {
        r->prev = NULL;
        r->next = s->held.head;
        if (s->held.head != NULL) {
            s->held.head->prev = r;
        } else {
            s->held.tail = r;
        }
        s->held.head = r;
    } else {
        r->prev = at;
        r->next = at->next;
        if (at->next != NULL) {
            at->next->prev = r;
        } else {
            s->held.tail = r;
        }
        at->next = r;
    }
    s->held.len++;
}


/*
 * Forwards one answer (frames[0] = INFER_REPLY or ERROR, then outputs) to
 * the client of r.  Returns the number of frames it used, or 0 when the
 * answer is malformed (r is then failed with why).
 */
static size_t
kserve_route_answer(kserve_request_t *r, zmq_msg_t *frames, size_t avail,
    const char *instance, const ksv_exec_times_t *t)
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

    kserve_answer(r, out, used + 1, prefix.kind == KSV_MSG_INFER_REPLY, t);
    return used;
}


void
kserve_scheduler_complete(kserve_instance_t *inst, zmq_msg_t *frames,
    size_t nframes)
{
    char               msg[KSERVE_REASON_MAX];
    size_t             pos, used;
    uint32_t           i, count;
    ksv_reader_t       rd;
    ksv_prefix_t       prefix;
    kserve_batch_t    *b = inst->batch;
    ksv_exec_times_t   t;

    ksv_reader_init(&rd, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]));
    if (ksv_read_prefix(&rd, &prefix) != 0
        || ksv_decode_execute_reply(&rd, &count, &t) != 0)
    {
        /* the instance thinks its batch is done and will never answer
         * it: fail it now, or it would stay BUSY with it for good */
        kserve_error("instance %s: malformed EXECUTE_REPLY", inst->label);
        if (b != NULL) {
            snprintf(msg, sizeof(msg), "instance %s sent a malformed answer",
                     inst->name);
            kserve_scheduler_fail_batch(inst, KSV_ERR_INTERNAL, msg);
        }
        kserve_supervisor_kill(inst, "it sent a malformed EXECUTE_REPLY");
        return;
    }

    if (b == NULL || prefix.id != b->id) {
        kserve_warn("instance %s: EXECUTE_REPLY for batch %llu it does not "
                    "hold, ignored", inst->label,
                    (unsigned long long) prefix.id);
        return;
    }

    /* the instance is free before the answers go: an answer may release
     * held ones, and dispatch below sees the right state */
    inst->batch = NULL;
    inst->state = KSERVE_INSTANCE_IDLE;

    if (count != b->n) {
        snprintf(msg, sizeof(msg), "instance %s returned %u responses for "
                 "%u requests", inst->name, count, b->n);
        kserve_error("%s", msg);
        for (i = 0; i < b->n; i++) {
            kserve_request_fail(b->requests[i], KSV_ERR_INTERNAL, msg);
            b->requests[i] = NULL;
        }
        free(b);
        kserve_scheduler_dispatch(inst->version);
        return;
    }

    kserve_stats_batch(&inst->version->sched.stats,
                       inst->version->model->config.max_batch_size > 0
                       ? b->rows : 1, &t);

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
                                   nframes - pos, inst->name, &t);
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

    kserve_batch_free(b);
    kserve_scheduler_dispatch(inst->version);
}
