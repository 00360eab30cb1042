/*
 * kserve-worker: the ZeroMQ side.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_proto.h"
#include "kserve_lifecycle.h"
#include "kserve_log.h"
#include "ksv_frames.h"
#include "ksv_stats.h"
#include "kserve_server.h"
#include "kserve_supervisor.h"
#include "kserve_worker.h"


/* Messages handled per readiness of a socket, so neither side starves. */
#define KSERVE_DRAIN_MAX     256

/* Parts of one control message: [identity][header] */
#define KSERVE_FRAMES_MAX    16

#define KSERVE_HWM           100000


static ksv_frames_t  kserve_in;          /* reused for every message */


/*
 * The nginx workers that asked for the index lately: the index is
 * pushed to them the moment it changes (an instance died or became
 * ready), so they stop sending to a dead instance and fail what they
 * had in flight there within milliseconds rather than an index
 * interval.  A client forgotten after KSERVE_CLIENT_TTL_MS without an
 * INDEX is still served by its own poll.
 */
#define KSERVE_MAX_CLIENTS    256
#define KSERVE_CLIENT_TTL_MS  60000

typedef struct {
    zmq_msg_t   identity;
    int64_t     seen_ms;
    int         used;
} kserve_client_t;

static kserve_client_t  kserve_clients[KSERVE_MAX_CLIENTS];
static uint64_t         kserve_pushed_generation;


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

    ksv_frames_free(&kserve_in);
    for (i = 0; i < KSERVE_MAX_CLIENTS; i++) {
        if (kserve_clients[i].used) {
            zmq_msg_close(&kserve_clients[i].identity);
            kserve_clients[i].used = 0;
        }
    }

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


/* ---- replies ------------------------------------------------------------- */

/* Sends [identity copy][the writer's buffer]. */
void
kserve_server_reply(zmq_msg_t *identity, ksv_writer_t *w)
{
    ksv_frames_t  out;

    ksv_frames_init(&out);
    if (ksv_frames_push(&out) == NULL
        || zmq_msg_copy(&out.msgs[0], identity) != 0
        || ksv_frames_push_writer(&out, w) != 0)
    {
        kserve_error("cannot encode a reply: out of memory");

    } else if (ksv_frames_send(kserve.frontend, &out, ZMQ_DONTWAIT) != 0) {
        kserve_debug("reply dropped: %s", zmq_strerror(errno));
    }
    ksv_frames_free(&out);
}


void
kserve_server_error(zmq_msg_t *identity, uint64_t id, ksv_status_t code,
    const char *message)
{
    ksv_writer_t  w;

    ksv_writer_init(&w);
    ksv_encode_error(&w, id, code, ksv_str_c(message));
    kserve_server_reply(identity, &w);
}


/* ---- frontend: INDEX and STATS ------------------------------------------- */

/* Remembers an nginx worker's routing id for index pushes. */
static void
kserve_client_seen(zmq_msg_t *identity)
{
    int      i, free_slot, oldest;
    size_t   len;
    int64_t  now;

    now = kserve_now_ms();
    len = zmq_msg_size(identity);
    free_slot = -1;
    oldest = 0;

    for (i = 0; i < KSERVE_MAX_CLIENTS; i++) {
        if (!kserve_clients[i].used) {
            if (free_slot < 0) {
                free_slot = i;
            }
            continue;
        }
        if (zmq_msg_size(&kserve_clients[i].identity) == len
            && memcmp(zmq_msg_data(&kserve_clients[i].identity),
                      zmq_msg_data(identity), len) == 0)
        {
            kserve_clients[i].seen_ms = now;
            return;
        }
        if (kserve_clients[i].seen_ms < kserve_clients[oldest].seen_ms) {
            oldest = i;
        }
    }

    if (free_slot < 0) {
        free_slot = oldest;
        zmq_msg_close(&kserve_clients[oldest].identity);
    }
    zmq_msg_init(&kserve_clients[free_slot].identity);
    zmq_msg_copy(&kserve_clients[free_slot].identity, identity);
    kserve_clients[free_slot].seen_ms = now;
    kserve_clients[free_slot].used = 1;
}


static void
kserve_on_index(ksv_frames_t *in, ksv_reader_t *rd, uint64_t id)
{
    uint64_t      known;
    ksv_index_t   index;
    ksv_arena_t   arena;
    ksv_writer_t  w;

    if (in->n != 2 || ksv_decode_index(rd, &known) != 0) {
        kserve_server_error(&in->msgs[0], id, KSV_ERR_INVALID_ARG,
                            "malformed INDEX message");
        return;
    }

    ksv_arena_init(&arena);
    if (kserve_supervisor_index(known, &arena, &index) != 0) {
        kserve_server_error(&in->msgs[0], id, KSV_ERR_INTERNAL, "out of memory");
        ksv_arena_free(&arena);
        return;
    }

    ksv_writer_init(&w);
    ksv_encode_index_reply(&w, id, &index);
    kserve_server_reply(&in->msgs[0], &w);
    ksv_writer_free(&w);
    ksv_arena_free(&arena);

    kserve_client_seen(&in->msgs[0]);
}


void
kserve_server_push_index(void)
{
    int64_t       now;
    uint32_t      i;
    ksv_index_t   index;
    ksv_arena_t   arena;
    ksv_writer_t  w;

    if (kserve.repo.generation == kserve_pushed_generation) {
        return;
    }
    kserve_pushed_generation = kserve.repo.generation;

    ksv_arena_init(&arena);
    if (kserve_supervisor_index(0, &arena, &index) != 0) {
        ksv_arena_free(&arena);
        return;
    }

    now = kserve_now_ms();
    for (i = 0; i < KSERVE_MAX_CLIENTS; i++) {
        if (!kserve_clients[i].used) {
            continue;
        }
        if (now - kserve_clients[i].seen_ms > KSERVE_CLIENT_TTL_MS) {
            zmq_msg_close(&kserve_clients[i].identity);
            kserve_clients[i].used = 0;
            continue;
        }
        ksv_writer_init(&w);
        ksv_encode_index_reply(&w, 0, &index);
        kserve_server_reply(&kserve_clients[i].identity, &w);
        ksv_writer_free(&w);
    }
    ksv_arena_free(&arena);
}


/* One version's entry of a STATS_REPLY; strings from the arena. */
static int
kserve_stats_entry(kserve_version_t *v, ksv_arena_t *arena,
    ksv_model_stats_t *out)
{
    char              *num;
    ksv_stats_page_t  *page;

    num = ksv_arena_alloc(arena, 24);
    if (num == NULL) {
        return -1;
    }
    snprintf(num, 24, "%lld", (long long) v->version);

    page = ksv_arena_alloc(arena, sizeof(ksv_stats_page_t));
    if (page == NULL) {
        return -1;
    }
    kserve_supervisor_version_stats(v, page);

    memset(out, 0, sizeof(*out));
    ksv_stats_export(page, out);
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
kserve_on_stats(ksv_frames_t *in, ksv_reader_t *rd, uint64_t id)
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
        kserve_server_error(&in->msgs[0], id, KSV_ERR_INVALID_ARG,
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
            ksv_unknown_model(msg, sizeof(msg), name.data, name.len,
                              NULL, 0);
            kserve_server_error(&in->msgs[0], id, KSV_ERR_NOT_FOUND, msg);
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
            ksv_unknown_model(msg, sizeof(msg), m->name, strlen(m->name),
                              version.data, version.len);
            kserve_server_error(&in->msgs[0], id, KSV_ERR_NOT_FOUND, msg);
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
    kserve_server_reply(&in->msgs[0], &w);
    ksv_writer_free(&w);
    goto done;

nomem:

    kserve_server_error(&in->msgs[0], id, KSV_ERR_INTERNAL, "out of memory");

done:

    ksv_arena_free(&arena);
}


/* Triton's logging extension: apply, answer with what now holds. */
static void
kserve_on_log(ksv_frames_t *in, ksv_reader_t *rd, uint64_t id)
{
    ksv_writer_t        w;
    ksv_log_settings_t  s;

    if (in->n != 2 || ksv_decode_log(rd, &s) != 0) {
        kserve_server_error(&in->msgs[0], id, KSV_ERR_INVALID_ARG,
                            "malformed LOG message");
        return;
    }

    kserve_log_apply(&s);
    kserve_log_settings(&s);
    kserve_debug("log settings: info %d, warning %d, error %d, verbose %u, "
                 "format %s", s.info, s.warning, s.error, s.verbose,
                 ksv_log_format_name(s.format));

    ksv_writer_init(&w);
    ksv_encode_log(&w, KSV_MSG_LOG_REPLY, id, &s);
    kserve_server_reply(&in->msgs[0], &w);
    ksv_writer_free(&w);
}


/* REPOSITORY: Triton's repository extension (kserve_lifecycle.c). */
static void
kserve_on_repository(ksv_frames_t *in, ksv_reader_t *rd, uint64_t id)
{
    ksv_repository_t  req;

    if (in->n < 2 || in->n > 3 || ksv_decode_repository(rd, &req) != 0) {
        kserve_server_error(&in->msgs[0], id, KSV_ERR_INVALID_ARG,
                            "malformed REPOSITORY message");
        return;
    }

    kserve_lifecycle_request(&in->msgs[0], id, &req,
                             in->n == 3 ? zmq_msg_data(&in->msgs[2]) : NULL,
                             in->n == 3 ? zmq_msg_size(&in->msgs[2]) : 0);
    kserve_client_seen(&in->msgs[0]);
}


static void
kserve_on_client_message(ksv_frames_t *in)
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

    p = zmq_msg_data(&in->msgs[1]);
    len = zmq_msg_size(&in->msgs[1]);
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
        kserve_server_error(&in->msgs[0], prefix.id, KSV_ERR_INVALID_ARG, msg);
        return;
    }

    switch (prefix.kind) {
    case KSV_MSG_INFER:
        /* the data plane is the instances' (the index names them) */
        kserve_server_error(&in->msgs[0], prefix.id, KSV_ERR_UNAVAILABLE,
                            "kserve-worker does not run models: send INFER "
                            "to an instance endpoint of the model index");
        break;

    case KSV_MSG_INDEX:
        kserve_on_index(in, &rd, prefix.id);
        break;

    case KSV_MSG_STATS:
        kserve_on_stats(in, &rd, prefix.id);
        break;

    case KSV_MSG_LOG:
        kserve_on_log(in, &rd, prefix.id);
        break;

    case KSV_MSG_REPOSITORY:
        kserve_on_repository(in, &rd, prefix.id);
        break;

    default:
        snprintf(msg, sizeof(msg), "message kind %u is not a request",
                 prefix.kind);
        kserve_server_error(&in->msgs[0], prefix.id, KSV_ERR_INVALID_ARG, msg);
        break;
    }
}


/* Handles up to KSERVE_DRAIN_MAX waiting messages of a socket (the rest
 * wait for the next round, so neither socket starves the other). */
static void
kserve_drain(void *socket, void (*handle)(ksv_frames_t *in))
{
    int  i, truncated;

    for (i = 0; i < KSERVE_DRAIN_MAX; i++) {
        ksv_frames_clear(&kserve_in);
        if (ksv_frames_recv(socket, &kserve_in, ZMQ_DONTWAIT,
                            KSERVE_FRAMES_MAX, &truncated) != 0)
        {
            break;
        }
        if (truncated) {
            kserve_warn("message with too many frames dropped");
            continue;
        }
        handle(&kserve_in);
    }

    ksv_frames_clear(&kserve_in);
}


void
kserve_server_frontend_readable(void)
{
    kserve_drain(kserve.frontend, kserve_on_client_message);
}


/* ---- backend: READY ----------------------------------- */

static void
kserve_on_instance_message(ksv_frames_t *in)
{
    int                 gone;
    ksv_ready_t         ready;
    ksv_reader_t        rd;
    ksv_prefix_t        prefix;
    kserve_instance_t  *inst;

    if (in->n < 2) {
        return;
    }

    inst = kserve_supervisor_find(zmq_msg_data(&in->msgs[0]),
                                  zmq_msg_size(&in->msgs[0]), &gone);
    if (inst != NULL && gone) {
        /* its process exited before we read this: only why it failed
         * to initialize is still worth knowing */
        ksv_reader_init(&rd, zmq_msg_data(&in->msgs[1]),
                        zmq_msg_size(&in->msgs[1]));
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
                    (int) zmq_msg_size(&in->msgs[0]),
                    (char *) zmq_msg_data(&in->msgs[0]));
        return;
    }

    ksv_reader_init(&rd, zmq_msg_data(&in->msgs[1]), zmq_msg_size(&in->msgs[1]));
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

    default:
        kserve_warn("instance %s: unexpected message kind %u dropped",
                    inst->label, prefix.kind);
        break;
    }
}


void
kserve_server_backend_readable(void)
{
    kserve_drain(kserve.backend, kserve_on_instance_message);
}
