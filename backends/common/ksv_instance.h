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

/*
 * Reads and parses <repo>/<model>/config.pbtxt with Triton's defaults
 * into *c (memory from the arena).  Returns -1 with a malloc'd message
 * in *err.
 */
int ksv_instance_load_config(const ksv_instance_opts_t *o,
    ksv_arena_t *arena, ksv_model_config_t *c, char **err);

/* Triton's instance name, "<group name>_<index in the group>" (malloc). */
char *ksv_instance_name(const ksv_model_config_t *c,
    const ksv_instance_opts_t *o);


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


/* The DEALER socket, routing id "i<pid>", connected; NULL on failure. */
void *ksv_instance_connect(void *zctx, const char *endpoint);

/* Sends every frame of `v` as one multipart message; `v` is emptied. */
int ksv_instance_send(void *sock, ksv_msgvec_t *v);

/* Receives one whole multipart message into `v`. */
int ksv_instance_recv(void *sock, ksv_msgvec_t *v);

/* READY for the model this instance was started for (ok = 0: why not). */
int ksv_instance_send_ready(void *sock, const ksv_instance_opts_t *o,
    int ok, const char *message);

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
