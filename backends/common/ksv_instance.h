/*
 * ngx_kserve: what every instance process shares, whatever its backend.
 *
 * kserve-python-instance and kserve-cuda-instance are started the same
 * way by kserve-worker (worker/kserve_supervisor.c) and speak the same
 * part of the protocol (docs/protocol.md): a DEALER socket with routing
 * id "i<pid>" connected to the daemon's ROUTER, one READY, then one
 * EXECUTE at a time answered by one EXECUTE_REPLY.  This file holds that
 * common part: the command line, signals, the socket, READY, the message
 * vector a multipart message is kept in, and reading config.pbtxt.
 *
 *   <instance> --connect ipc://<run>/instances.sock
 *       --repository <repo> --model <name> --version <v> --instance <n>
 *       --kind KIND_CPU|KIND_GPU|KIND_MODEL --device-id <d>
 *       [--utils-dir <dir>]
 */

#ifndef KSV_INSTANCE_H
#define KSV_INSTANCE_H

#include <signal.h>
#include <stddef.h>

#include <zmq.h>

#include "ksv_proto.h"


#define KSV_INSTANCE_POLL_MS    200     /* how soon SIGTERM is noticed */
#define KSV_INSTANCE_LINGER_MS  2000    /* to flush the last reply at exit */


typedef struct {
    const char  *prog;              /* for messages: "kserve-cuda-instance" */
    const char  *connect;
    const char  *repository;
    const char  *model;
    const char  *version;
    long         instance;
    const char  *kind;              /* "CPU", "GPU", "MODEL" */
    const char  *device_id;
    const char  *utils_dir;         /* NULL when not given */
} ksv_instance_opts_t;


/* Set by SIGTERM / SIGINT (and when the daemon is already gone). */
extern volatile sig_atomic_t  ksv_instance_terminate;

/*
 * Parses the command line into *o; prints the usage and exits 2 when it
 * is wrong.  need_utils_dir: --utils-dir is required (Python); other
 * backends accept and ignore it, so the daemon starts every instance
 * binary with the same arguments.
 */
void ksv_instance_parse_args(int argc, char **argv, const char *prog,
    int need_utils_dir, ksv_instance_opts_t *o);

/* SIGTERM/SIGINT set ksv_instance_terminate (no SA_RESTART, so a poll
 * returns); the daemon's death sends SIGTERM (PR_SET_PDEATHSIG). */
void ksv_instance_signals(const ksv_instance_opts_t *o);

/* What both backends hand their model about itself. */
typedef struct {
    ksv_model_config_t   config;        /* memory from the arena */
    char                *config_json;   /* the config as JSON text */
    char                *instance_name; /* Triton's "<group>_<index>" */
    char                *model_dir;     /* <repo>/<model>, absolute when
                                           it resolves, as in Triton */
} ksv_instance_model_t;

/*
 * Reads and parses <repo>/<model>/config.pbtxt with Triton's defaults
 * into m->config, and fills in the rest of *m (malloc'd strings: free
 * them with ksv_instance_model_free, also after a failure).  Returns -1
 * with a malloc'd message in *err.
 */
int ksv_instance_load_model(const ksv_instance_opts_t *o,
    ksv_arena_t *arena, ksv_instance_model_t *m, char **err);
void ksv_instance_model_free(ksv_instance_model_t *m);


/* A growable array of zmq messages: one multipart message. */
typedef struct {
    zmq_msg_t   *msgs;
    size_t       n;
    size_t       cap;
} ksv_msgvec_t;

void ksv_msgvec_init(ksv_msgvec_t *v);
/* A slot at the end, initialized empty; NULL when out of memory. */
zmq_msg_t *ksv_msgvec_push(ksv_msgvec_t *v);
/* Moves an encoded header into a new frame at the end of `v` (the
 * writer is emptied either way).  Returns -1 when out of memory. */
int ksv_msgvec_push_writer(ksv_msgvec_t *v, ksv_writer_t *w);
/* Closes every message; the array keeps its memory. */
void ksv_msgvec_clear(ksv_msgvec_t *v);
void ksv_msgvec_free(ksv_msgvec_t *v);


/* The DEALER socket, routing id "i<pid>", connected to --connect; NULL
 * (after a log line) on failure.  zctx may be NULL (zmq_ctx_new failed). */
void *ksv_instance_connect(void *zctx, const ksv_instance_opts_t *o);

/* Sends every frame of `v` as one multipart message; `v` is emptied. */
int ksv_instance_send(void *sock, ksv_msgvec_t *v);

/* Receives one whole multipart message into `v`. */
int ksv_instance_recv(void *sock, ksv_msgvec_t *v);

/* READY for the model this instance was started for (ok = 0: why not). */
int ksv_instance_send_ready(void *sock, const ksv_instance_opts_t *o,
    int ok, const char *message);

/* The model failed to load: logs why (err NULL: out of memory) and
 * says so in a READY with ok = 0. */
void ksv_instance_load_failed(void *sock, const ksv_instance_opts_t *o,
    const char *err);

/*
 * The serving loop: waits for one EXECUTE at a time, hands it to
 * s->run and sends the reply, until SIGTERM.  The backend's part:
 */
typedef struct {
    /* one EXECUTE in `in`, its EXECUTE_REPLY into `out`: 1 to send it,
     * 0 when there is nothing to send, -1 when out of memory */
    int   (*run)(void *data, ksv_msgvec_t *in, ksv_msgvec_t *out);
    /* NULL, or waits for the socket in place of zmq_poll (Python lets
     * the model's threads run meanwhile) */
    int   (*poll)(void *data, zmq_pollitem_t *item, long timeout_ms);
    /* NULL, or after each reply: non-zero ends the loop with that status */
    int   (*stop)(void *data);
    void   *data;
} ksv_instance_server_t;

/* Returns 0 after SIGTERM, 1 when the socket broke or memory ran out,
 * or what s->stop returned. */
int ksv_instance_serve(void *sock, const char *prog,
    const ksv_instance_server_t *s);


/*
 * Reads the EXECUTE header in in->msgs[0]: the batch's id and how many
 * requests follow.  Returns -1 (after a log line) for anything else.
 */
int ksv_instance_read_execute(const ksv_msgvec_t *in, const char *prog,
    const char *instance_name, uint64_t *batch_id, uint32_t *count);

/*
 * Decodes the request at in->msgs[*idx] (its INFER header, then its
 * input frames): sets *id, *infer and *frames (the first input frame) and
 * moves *idx past it.  Returns NULL, or why the request fails; a header
 * that cannot be decoded loses the frame boundaries of everything after
 * it, so *idx then goes to the end and the later requests fail too.
 */
const char *ksv_instance_next_request(ksv_msgvec_t *in, size_t *idx,
    ksv_alloc_t *alloc, uint64_t *id, ksv_infer_t *infer,
    zmq_msg_t **frames);

/* Whether the request asked for output `name` (no outputs named: all). */
int ksv_instance_output_wanted(const ksv_infer_t *in, ksv_str_t name);

/* Appends an ERROR answer for request `id` (msg NULL: out of memory). */
int ksv_instance_push_error(ksv_msgvec_t *reply, uint64_t id,
    ksv_status_t code, const char *msg);

/* Appends an INFER_REPLY answer for request `id` and moves its
 * ir->noutputs frames after it.  Returns -1 when out of memory. */
int ksv_instance_push_infer_reply(ksv_msgvec_t *reply, uint64_t id,
    const ksv_infer_reply_t *ir, zmq_msg_t *frames);

/*
 * Appends an EXECUTE_REPLY header placeholder's final form: encodes the
 * header for batch_id with `count` answers and `t`, and puts it into
 * reply->msgs[slot] (reserved earlier with ksv_msgvec_push, so the
 * durations can include the time spent building the answers).
 */
int ksv_instance_set_reply_header(ksv_msgvec_t *reply, size_t slot,
    uint64_t batch_id, uint32_t count, const ksv_exec_times_t *t);

/* Monotonic clock in ns, for the compute_* durations. */
uint64_t ksv_instance_now_ns(void);

#endif /* KSV_INSTANCE_H */
