/*
 * kserve-worker: the ZeroMQ side.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_proto.h"
#include "kserve_log.h"
#include "kserve_scheduler.h"
#include "kserve_server.h"
#include "kserve_supervisor.h"
#include "kserve_worker.h"


/* Messages handled per readiness of a socket, so neither side starves. */
#define KSERVE_DRAIN_MAX     256

/* Parts of one message: a request with the most tensors fits, and so
 * does a batch answer of KSV_MAX_BATCH_REQUESTS with a few outputs each
 * (a power of two: the frame table grows by doubling). */
#define KSERVE_FRAMES_MAX    65536

#define KSERVE_HWM           100000


typedef struct {
    zmq_msg_t  *f;
    size_t      n;
    size_t      cap;
} kserve_frames_t;


static kserve_frames_t  kserve_in;       /* reused for every message */


/* ---- sockets -------------------------------------------------------------- */

static void *
kserve_router(int mandatory, int64_t maxmsg)
{
    int    hwm = KSERVE_HWM, linger = 200, one = 1;
    void  *s;

    s = zmq_socket(kserve.zctx, ZMQ_ROUTER);
    if (s == NULL) {
        return NULL;
    }

    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    if (mandatory) {
        /* an unknown routing id is an error, not a silent drop: a send
         * to a dead instance fails its batch at once */
        zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    }
    if (maxmsg > 0) {
        /* libzmq disconnects a peer that sends a bigger frame */
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    }
    return s;
}


int
kserve_server_open(void)
{
    int  i;

    kserve.zctx = zmq_ctx_new();
    if (kserve.zctx == NULL) {
        kserve_error("zmq_ctx_new: %s", zmq_strerror(errno));
        return -1;
    }

    kserve.frontend = kserve_router(0, (int64_t) kserve.max_frame_size);
    kserve.backend = kserve_router(1, -1);
    if (kserve.frontend == NULL || kserve.backend == NULL) {
        kserve_error("zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }

    for (i = 0; i < kserve.nlisten; i++) {
        if (zmq_bind(kserve.frontend, kserve.listen[i]) != 0) {
            kserve_error("cannot listen on %s: %s", kserve.listen[i],
                         zmq_strerror(errno));
            return -1;
        }
        kserve_info("listening on %s", kserve.listen[i]);
    }

    if (zmq_bind(kserve.backend, kserve.instances_endpoint) != 0) {
        kserve_error("cannot bind %s: %s", kserve.instances_endpoint,
                     zmq_strerror(errno));
        return -1;
    }

    return 0;
}


void
kserve_server_close(void)
{
    size_t  i;

    for (i = 0; i < kserve_in.n; i++) {
        zmq_msg_close(&kserve_in.f[i]);
    }
    free(kserve_in.f);
    kserve_in.f = NULL;
    kserve_in.n = 0;
    kserve_in.cap = 0;

    if (kserve.frontend != NULL) {
        zmq_close(kserve.frontend);
        kserve.frontend = NULL;
    }
    if (kserve.backend != NULL) {
        zmq_close(kserve.backend);
        kserve.backend = NULL;
    }
    if (kserve.zctx != NULL) {
        zmq_ctx_term(kserve.zctx);
        kserve.zctx = NULL;
    }
}


/* ---- framing ------------------------------------------------------------ */

static void
kserve_frames_clear(kserve_frames_t *m)
{
    size_t  i;

    for (i = 0; i < m->n; i++) {
        zmq_msg_close(&m->f[i]);
    }
    m->n = 0;
}


/* Discards the rest of a message whose first parts were read. */
static void
kserve_drain(void *socket)
{
    int        more;
    zmq_msg_t  junk;

    do {
        zmq_msg_init(&junk);
        if (zmq_msg_recv(&junk, socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&junk);
            return;
        }
        more = zmq_msg_more(&junk);
        zmq_msg_close(&junk);
    } while (more);
}


/*
 * Receives one whole multipart message into m (the parts of a message
 * arrive together, so only the first can find nothing).  Returns 1 when
 * one was read, 0 when none is waiting, -1 when one was dropped for
 * having more than KSERVE_FRAMES_MAX parts.
 */
static int
kserve_recv(void *socket, kserve_frames_t *m)
{
    size_t      cap;
    zmq_msg_t  *nf;

    kserve_frames_clear(m);

    for ( ;; ) {
        if (m->n == m->cap) {
            cap = m->cap ? 2 * m->cap : 64;
            nf = cap <= KSERVE_FRAMES_MAX
                 ? realloc(m->f, cap * sizeof(zmq_msg_t)) : NULL;
            if (nf == NULL) {
                kserve_drain(socket);
                kserve_frames_clear(m);
                return -1;
            }
            m->f = nf;
            m->cap = cap;
        }

        zmq_msg_init(&m->f[m->n]);
        if (zmq_msg_recv(&m->f[m->n], socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m->f[m->n]);
            kserve_frames_clear(m);
            return 0;
        }

        if (!zmq_msg_more(&m->f[m->n++])) {
            return 1;
        }
    }
}


int
kserve_server_send(void *socket, zmq_msg_t *frames, size_t n)
{
    int     failed, err;
    size_t  i;

    failed = 0;
    err = 0;

    for (i = 0; i < n; i++) {
        if (!failed
            && zmq_msg_send(&frames[i], socket,
                            (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
        {
            failed = 1;
            err = errno;
        }
        if (failed) {
            zmq_msg_close(&frames[i]);
        }
    }

    if (failed) {
        errno = err;
        return -1;
    }
    return 0;
}


/* Sends [identity copy][the writer's buffer]. */
static void
kserve_reply(zmq_msg_t *identity, ksv_writer_t *w)
{
    size_t      len;
    uint8_t    *buf;
    zmq_msg_t   frames[2];

    buf = ksv_writer_detach(w, &len);
    if (w->failed || buf == NULL) {
        free(buf);
        kserve_error("cannot encode a reply: out of memory");
        return;
    }

    zmq_msg_init(&frames[0]);
    zmq_msg_copy(&frames[0], identity);
    zmq_msg_init_data(&frames[1], buf, len, ksv_writer_free_cb, NULL);

    if (kserve_server_send(kserve.frontend, frames, 2) != 0) {
        kserve_debug("reply dropped: %s", zmq_strerror(errno));
    }
}


void
kserve_server_error(zmq_msg_t *identity, uint64_t id, ksv_status_t code,
    const char *message)
{
    ksv_writer_t  w;

    ksv_writer_init(&w);
    ksv_encode_error(&w, id, code, ksv_str_c(message));
    kserve_reply(identity, &w);
}


/* ---- frontend: INFER and INDEX ------------------------------------------- */

/* Checks each input frame against its description. */
static int
kserve_check_inputs(const ksv_infer_t *m, kserve_frames_t *in, char *err,
    size_t errlen)
{
    size_t               size;
    uint32_t             i;
    uint64_t             count, len;
    const ksv_tensor_t  *t;

    if (m->ninputs != in->n - 2) {
        snprintf(err, errlen, "request describes %u input tensor(s) but "
                 "carries %zu tensor frame(s)", m->ninputs, in->n - 2);
        return -1;
    }

    for (i = 0; i < m->ninputs; i++) {
        t = &m->inputs[i];
        len = zmq_msg_size(&in->f[2 + i]);

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


/* Finds the version an INFER asks for, or answers the error itself. */
static kserve_version_t *
kserve_resolve(const ksv_infer_t *m, zmq_msg_t *identity, uint64_t id)
{
    char               msg[KSERVE_REASON_MAX + 256], vbuf[32], *end;
    long long          num;
    kserve_model_t    *model;
    kserve_version_t  *v;

    model = kserve_repository_find(&kserve.repo, m->model_name.data,
                                   m->model_name.len);
    if (model == NULL) {
        snprintf(msg, sizeof(msg),
                 "Request for unknown model: '%.*s' is not found",
                 (int) m->model_name.len, m->model_name.data);
        kserve_server_error(identity, id, KSV_ERR_NOT_FOUND, msg);
        return NULL;
    }

    if (m->model_version.len == 0) {
        v = kserve_model_default_version(model);
        if (v == NULL) {
            snprintf(msg, sizeof(msg), "Request for unknown model: '%s' has "
                     "no available versions", model->name);
            kserve_server_error(identity, id, KSV_ERR_UNAVAILABLE, msg);
        }
        return v;
    }

    v = NULL;
    if (m->model_version.len < sizeof(vbuf)) {
        memcpy(vbuf, m->model_version.data, m->model_version.len);
        vbuf[m->model_version.len] = '\0';
        errno = 0;
        num = strtoll(vbuf, &end, 10);
        if (*end == '\0' && errno == 0 && vbuf[0] >= '0' && vbuf[0] <= '9') {
            v = kserve_model_version(model, num);
        }
    }

    if (v == NULL) {
        snprintf(msg, sizeof(msg),
                 "Request for unknown model: '%s' version %.*s is not found",
                 model->name, (int) (m->model_version.len < 64
                                     ? m->model_version.len : 64),
                 m->model_version.data);
        kserve_server_error(identity, id, KSV_ERR_NOT_FOUND, msg);
    }
    return v;
}


static void
kserve_on_infer(kserve_frames_t *in, ksv_reader_t *rd, uint64_t id)
{
    char               err[512];
    uint32_t           i;
    ksv_infer_t        m;
    ksv_alloc_t        alloc;
    ksv_arena_t        arena;
    kserve_request_t  *r;
    kserve_version_t  *v;

    ksv_arena_init(&arena);
    alloc = ksv_arena_allocator(&arena);

    if (ksv_decode_infer(rd, &alloc, &m) != 0) {
        kserve_server_error(&in->f[0], id, KSV_ERR_INVALID_ARG,
                            "malformed INFER message");
        goto done;
    }

    if (kserve_check_inputs(&m, in, err, sizeof(err)) != 0) {
        kserve_server_error(&in->f[0], id, KSV_ERR_INVALID_ARG, err);
        goto done;
    }

    if (kserve.shutting_down) {
        kserve_server_error(&in->f[0], id, KSV_ERR_UNAVAILABLE,
                            "server is shutting down");
        goto done;
    }

    v = kserve_resolve(&m, &in->f[0], id);
    if (v == NULL) {
        goto done;
    }

    r = kserve_request_new(m.ninputs);
    if (r == NULL) {
        kserve_server_error(&in->f[0], id, KSV_ERR_INTERNAL, "out of memory");
        goto done;
    }

    r->id = kserve_next_id();
    r->client_id = id;

    if (kserve_request_setup(v, r, &m, err, sizeof(err)) != 0) {
        kserve_request_free(r);
        kserve_server_error(&in->f[0], id, KSV_ERR_INVALID_ARG, err);
        goto done;
    }

    /* the frames move into the request: nothing is copied */
    zmq_msg_move(&r->identity, &in->f[0]);
    zmq_msg_move(&r->header, &in->f[1]);
    ksv_patch_id(zmq_msg_data(&r->header), zmq_msg_size(&r->header), r->id);
    for (i = 0; i < m.ninputs; i++) {
        zmq_msg_move(&r->inputs[i], &in->f[2 + i]);
    }

    kserve_debug("request %llu (client id %llu): '%s' version %lld, "
                 "%u input(s)", (unsigned long long) r->id,
                 (unsigned long long) id, v->model->name,
                 (long long) v->version, m.ninputs);

    kserve_scheduler_submit(v, r);

done:

    ksv_arena_free(&arena);
}


static void
kserve_on_index(kserve_frames_t *in, ksv_reader_t *rd, uint64_t id)
{
    uint64_t      known;
    ksv_index_t   index;
    ksv_arena_t   arena;
    ksv_writer_t  w;

    if (in->n != 2 || ksv_decode_index(rd, &known) != 0) {
        kserve_server_error(&in->f[0], id, KSV_ERR_INVALID_ARG,
                            "malformed INDEX message");
        return;
    }

    ksv_arena_init(&arena);
    if (kserve_repository_index(&kserve.repo, known, &arena, &index) != 0) {
        kserve_server_error(&in->f[0], id, KSV_ERR_INTERNAL, "out of memory");
        ksv_arena_free(&arena);
        return;
    }

    ksv_writer_init(&w);
    ksv_encode_index_reply(&w, id, &index);
    kserve_reply(&in->f[0], &w);
    ksv_writer_free(&w);
    ksv_arena_free(&arena);
}


/* One version's entry of a STATS_REPLY; strings from the arena. */
static int
kserve_stats_entry(kserve_version_t *v, ksv_arena_t *arena,
    ksv_model_stats_t *out)
{
    char  *num;

    num = ksv_arena_alloc(arena, 24);
    if (num == NULL) {
        return -1;
    }
    snprintf(num, 24, "%lld", (long long) v->version);

    memset(out, 0, sizeof(*out));
    kserve_stats_export(&v->sched.stats, out);
    out->name = ksv_str_c(v->model->name);
    out->version = ksv_str_c(num);
    return 0;
}


/*
 * STATS: every READY version when no model is named (the models a
 * client can use, as Triton lists its loaded models), every version of
 * a named model whatever its state, or the one version named.
 */
static void
kserve_on_stats(kserve_frames_t *in, ksv_reader_t *rd, uint64_t id)
{
    char               msg[KSERVE_REASON_MAX + 256], vbuf[32], *end;
    uint32_t           i, j, n;
    long long          num;
    ksv_str_t          name, version;
    ksv_stats_t        st;
    ksv_arena_t        arena;
    ksv_writer_t       w;
    kserve_model_t    *m;
    kserve_version_t  *v;

    if (in->n != 2 || ksv_decode_stats(rd, &name, &version) != 0) {
        kserve_server_error(&in->f[0], id, KSV_ERR_INVALID_ARG,
                            "malformed STATS message");
        return;
    }

    ksv_arena_init(&arena);
    memset(&st, 0, sizeof(st));
    m = NULL;
    v = NULL;

    if (name.len > 0) {
        m = kserve_repository_find(&kserve.repo, name.data, name.len);
        if (m == NULL) {
            snprintf(msg, sizeof(msg),
                     "Request for unknown model: '%.*s' is not found",
                     (int) (name.len < 256 ? name.len : 256), name.data);
            kserve_server_error(&in->f[0], id, KSV_ERR_NOT_FOUND, msg);
            goto done;
        }
    }

    if (m != NULL && version.len > 0) {
        if (version.len < sizeof(vbuf)) {
            memcpy(vbuf, version.data, version.len);
            vbuf[version.len] = '\0';
            errno = 0;
            num = strtoll(vbuf, &end, 10);
            if (*end == '\0' && errno == 0 && vbuf[0] >= '0'
                && vbuf[0] <= '9')
            {
                v = kserve_model_version(m, num);
            }
        }
        if (v == NULL) {
            snprintf(msg, sizeof(msg), "Request for unknown model: '%s' "
                     "version %.*s is not found", m->name,
                     (int) (version.len < 64 ? version.len : 64),
                     version.data);
            kserve_server_error(&in->f[0], id, KSV_ERR_NOT_FOUND, msg);
            goto done;
        }
    }

    /* count, then fill */
    n = 0;
    if (v != NULL) {
        n = 1;
    } else if (m != NULL) {
        n = m->nversions;
    } else {
        for (i = 0; i < kserve.repo.nmodels; i++) {
            for (j = 0; j < kserve.repo.models[i].nversions; j++) {
                n += kserve.repo.models[i].versions[j].state
                     == KSV_VERSION_READY;
            }
        }
    }
    if (n > KSV_MAX_STATS) {
        n = KSV_MAX_STATS;
    }

    if (n > 0) {
        st.models = ksv_arena_alloc(&arena, n * sizeof(ksv_model_stats_t));
        if (st.models == NULL) {
            goto nomem;
        }
    }

    if (v != NULL) {
        if (kserve_stats_entry(v, &arena, &st.models[st.nmodels++]) != 0) {
            goto nomem;
        }
    }
    for (i = 0; v == NULL && i < kserve.repo.nmodels; i++) {
        if (m != NULL && &kserve.repo.models[i] != m) {
            continue;
        }
        for (j = 0; j < kserve.repo.models[i].nversions && st.nmodels < n;
             j++)
        {
            v = &kserve.repo.models[i].versions[j];
            if (m == NULL && v->state != KSV_VERSION_READY) {
                v = NULL;
                continue;
            }
            if (kserve_stats_entry(v, &arena, &st.models[st.nmodels++])
                != 0)
            {
                goto nomem;
            }
            v = NULL;
        }
    }

    ksv_writer_init(&w);
    ksv_encode_stats_reply(&w, id, &st);
    kserve_reply(&in->f[0], &w);
    ksv_writer_free(&w);
    goto done;

nomem:

    kserve_server_error(&in->f[0], id, KSV_ERR_INTERNAL, "out of memory");

done:

    ksv_arena_free(&arena);
}


static void
kserve_on_client_message(kserve_frames_t *in)
{
    char           msg[128];
    size_t         len;
    const uint8_t *p;
    ksv_reader_t   rd;
    ksv_prefix_t   prefix;

    if (in->n < 2) {
        kserve_warn("client message without a header frame dropped");
        return;
    }

    p = zmq_msg_data(&in->f[1]);
    len = zmq_msg_size(&in->f[1]);
    ksv_reader_init(&rd, p, len);

    if (ksv_read_prefix(&rd, &prefix) != 0) {
        /* answerable only when it is our protocol far enough to carry
         * an id: the right magic and a whole prefix */
        if (len < KSV_PREFIX_SIZE
            || (p[0] | (p[1] << 8)) != KSV_PROTO_MAGIC)
        {
            kserve_warn("client message with an unreadable header "
                        "(%zu bytes) dropped", len);
            return;
        }
        if (prefix.version != KSV_PROTO_VERSION) {
            snprintf(msg, sizeof(msg), "protocol version %u is not "
                     "supported (the worker speaks %d)", prefix.version,
                     KSV_PROTO_VERSION);
        } else {
            snprintf(msg, sizeof(msg), "unknown message kind %u",
                     prefix.kind);
        }
        kserve_server_error(&in->f[0], prefix.id, KSV_ERR_INVALID_ARG, msg);
        return;
    }

    switch (prefix.kind) {
    case KSV_MSG_INFER:
        kserve_on_infer(in, &rd, prefix.id);
        break;

    case KSV_MSG_INDEX:
        kserve_on_index(in, &rd, prefix.id);
        break;

    case KSV_MSG_STATS:
        kserve_on_stats(in, &rd, prefix.id);
        break;

    default:
        snprintf(msg, sizeof(msg), "message kind %u is not a request",
                 prefix.kind);
        kserve_server_error(&in->f[0], prefix.id, KSV_ERR_INVALID_ARG, msg);
        break;
    }
}


void
kserve_server_frontend_readable(void)
{
    int  i, rc;

    for (i = 0; i < KSERVE_DRAIN_MAX; i++) {
        rc = kserve_recv(kserve.frontend, &kserve_in);
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            kserve_warn("client message with too many frames dropped");
            continue;
        }
        kserve_on_client_message(&kserve_in);
    }

    kserve_frames_clear(&kserve_in);
}


/* ---- backend: READY and EXECUTE_REPLY ----------------------------------- */

static void
kserve_on_instance_message(kserve_frames_t *in)
{
    int                 gone;
    ksv_ready_t         ready;
    ksv_reader_t        rd;
    ksv_prefix_t        prefix;
    kserve_instance_t  *inst;

    if (in->n < 2) {
        return;
    }

    inst = kserve_supervisor_find(zmq_msg_data(&in->f[0]),
                                  zmq_msg_size(&in->f[0]), &gone);
    if (inst != NULL && gone) {
        /* its process exited before we read this: only why it failed
         * to initialize is still worth knowing */
        ksv_reader_init(&rd, zmq_msg_data(&in->f[1]),
                        zmq_msg_size(&in->f[1]));
        if (ksv_read_prefix(&rd, &prefix) == 0
            && prefix.kind == KSV_MSG_READY
            && ksv_decode_ready(&rd, &ready) == 0)
        {
            kserve_supervisor_late_ready(inst, &ready);
        }
        return;
    }

    if (inst == NULL) {
        kserve_warn("message from unknown instance '%.*s' dropped",
                    (int) zmq_msg_size(&in->f[0]),
                    (char *) zmq_msg_data(&in->f[0]));
        return;
    }

    ksv_reader_init(&rd, zmq_msg_data(&in->f[1]), zmq_msg_size(&in->f[1]));
    if (ksv_read_prefix(&rd, &prefix) != 0) {
        kserve_supervisor_kill(inst, "it sent an unreadable message");
        return;
    }

    switch (prefix.kind) {
    case KSV_MSG_READY:
        if (ksv_decode_ready(&rd, &ready) != 0) {
            kserve_supervisor_kill(inst, "it sent a malformed READY");
            return;
        }
        kserve_supervisor_ready(inst, &ready);
        break;

    case KSV_MSG_EXECUTE_REPLY:
        kserve_scheduler_complete(inst, &in->f[1], in->n - 1);
        break;

    default:
        kserve_warn("instance %s: unexpected message kind %u dropped",
                    inst->label, prefix.kind);
        break;
    }
}


void
kserve_server_backend_readable(void)
{
    int  i, rc;

    for (i = 0; i < KSERVE_DRAIN_MAX; i++) {
        rc = kserve_recv(kserve.backend, &kserve_in);
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            kserve_warn("instance message with too many frames dropped");
            continue;
        }
        kserve_on_instance_message(&kserve_in);
    }

    kserve_frames_clear(&kserve_in);
}
