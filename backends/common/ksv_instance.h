/*
 * ngx_kserve: what every instance process shares, whatever its backend.
 *
 * kserve-python-instance and kserve-cuda-instance are started the same
 * way by kserve-worker (worker/kserve_supervisor.c) and serve the same
 * way (docs/protocol.md):
 *
 *   - a ROUTER socket of their own ("the data socket": ipc://<run>/<pid>
 *     .sock, or tcp:// on a port of --bind's range, announced with
 *     --advertise) that nginx workers send INFER and CANCEL to and get
 *     their answers from: one hop each way;
 *   - a DEALER socket, routing id "i<pid>", connected to the worker's
 *     control endpoint (--connect), for one READY that carries the data
 *     endpoint (or why the model failed to load);
 *   - the scheduler (ksv_sched.h), on a thread of its own with the one
 *     timer heap (ksv_timer.h): it queues and batches what arrives,
 *     expires deadlines, applies CANCELs and watches the running batch's
 *     deadline while the model runs; each batch goes to the executor
 *     (the main thread, the backend's run()) as one EXECUTE;
 *   - a statistics page (ksv_stats.h, <run>/<pid>.stats) that the worker
 *     reads.
 *
 * An instance does not need the worker to serve: when the worker's lock
 * (<run>/worker.lock) has been free for --orphan-grace seconds (the
 * worker died and did not come back to adopt it), it finishes its queue
 * and exits.
 *
 *   <instance> --connect ipc://<run>/instances.sock --run-dir <run>
 *       --repository <repo> --model <name> --version <v> --instance <n>
 *       [--bind ipc|tcp://IFACE:LOW-HIGH] [--advertise HOST]
 *       [--instances N] [--orphan-grace S] [--execute-timeout MS]
 *       [--kind KIND_CPU|KIND_GPU|KIND_MODEL] [--device-id <d>]
 *       [--utils-dir <dir>]
 */

#ifndef KSV_INSTANCE_H
#define KSV_INSTANCE_H

#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <zmq.h>

#include "ksv_frames.h"
#include "ksv_proto.h"
#include "ksv_classify.h"
#include "ksv_sched.h"
#include "ksv_stats.h"
#include "ksv_timer.h"


#define KSV_INSTANCE_POLL_MS    200     /* how soon SIGTERM is noticed */
#define KSV_INSTANCE_LINGER_MS  2000    /* to flush the last reply at exit */
#define KSV_INSTANCE_ORPHAN_MS  1000    /* how often the worker's lock is
                                           looked at */


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
    const char  *run_dir;
    const char  *bind;              /* "ipc" or tcp://IFACE:LOW-HIGH */
    const char  *advertise;         /* the host in a tcp endpoint */
    long         ninstances;        /* of the version (queue share) */
    long         orphan_grace_s;
    long         execute_timeout_ms;
} ksv_instance_opts_t;


/* Set by SIGTERM / SIGINT. */
extern volatile sig_atomic_t  ksv_instance_terminate;

/*
 * Set by SIGUSR1: the worker took this instance out of its version's set
 * (a reload replaced it, or its model was unloaded) and lists it as
 * DRAINING, so nginx sends it nothing new.  It serves what it has and
 * what is still on its way, and exits once it has been idle (nothing
 * queued, running or arriving) for KSV_INSTANCE_DRAIN_QUIET_MS.
 */
extern volatile sig_atomic_t  ksv_instance_drain_asked;

#define KSV_INSTANCE_DRAIN_QUIET_MS  1000

/*
 * Parses the command line into *o; prints the usage and exits 2 when it
 * is wrong.  need_utils_dir: --utils-dir is required (Python); other
 * backends accept and ignore it, so the daemon starts every instance
 * binary with the same arguments.
 */
void ksv_instance_parse_args(int argc, char **argv, const char *prog,
    int need_utils_dir, ksv_instance_opts_t *o);

/* SIGTERM/SIGINT set ksv_instance_terminate (no SA_RESTART, so a wait
 * returns). */
void ksv_instance_signals(const ksv_instance_opts_t *o);

void ksv_instance_signals(const ksv_instance_opts_t *o);

/* What both backends hand their model about itself. */
typedef struct {
    ksv_model_config_t   config;        /* memory from the arena */
    char                *config_json;   /* the config as JSON text */
    char                *instance_name; /* Triton's "<group>_<index>" */
    char                *model_dir;     /* <repo>/<model>, absolute when
                                           it resolves, as in Triton */
    ksv_labels_t        *labels;        /* per config output (its
                                           label_filename), for the
                                           classification extension */
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



/* The serving loop's hooks: the backend's part. */
typedef struct {
    /* one EXECUTE in `in`, its EXECUTE_REPLY into `out`: 1 when there is
     * a reply, 0 when there is none, -1 when out of memory */
    int   (*run)(void *data, ksv_frames_t *in, ksv_frames_t *out);
    /* NULL, or called with 1 before the executor waits for a batch and
     * with 0 after (Python lets the model's own threads run meanwhile) */
    void  (*idle)(void *data, int begin);
    /* NULL, or after each batch: non-zero ends the loop with that status */
    int   (*stop)(void *data);
    void   *data;
} ksv_instance_server_t;

/* An instance process: its two sockets, its scheduler, its page. */
typedef struct {
    const ksv_instance_opts_t  *opts;
    void                       *zctx;
    void                       *control;    /* DEALER to the worker */
    void                       *data;       /* ROUTER for nginx */
    char                        endpoint[320];
    char                        stats_path[320];
    ksv_stats_page_t           *stats;
    ksv_timers_t                timers;
    ksv_sched_t                 sched;
    int                         status;     /* the scheduler thread's */
    uint64_t                    batch_started_ns;
    ksv_timer_t                 watchdog;   /* the running batch's */
    int                         lock_fd;    /* the worker's lock, or -1 */
    uint64_t                    orphaned_ns;   /* lock free since; 0 */
    int                         draining;   /* orphaned: finish, exit */
    uint64_t                    drain_since_ns;  /* SIGUSR1; 0 */
    uint64_t                    last_rx_ns;      /* the last message */
    ksv_timer_t                 orphan_timer;
    const ksv_instance_model_t *model;      /* while serving */
} ksv_instance_t;

/*
 * Opens both sockets (binds the data socket, connects the control one)
 * and creates the statistics page.  NULL (after a log line) on failure.
 */
ksv_instance_t *ksv_instance_open(const ksv_instance_opts_t *o);
void ksv_instance_close(ksv_instance_t *inst);

/* READY for the model this instance was started for (ok = 0: why not). */
int ksv_instance_send_ready(ksv_instance_t *inst, int ok,
    const char *message);

/* The model failed to load: logs why (err NULL: out of memory) and says
 * so in a READY with ok = 0. */
void ksv_instance_load_failed(ksv_instance_t *inst, const char *err);

/*
 * The serving loop, until SIGTERM (or, orphaned, an empty queue):
 * receives, schedules, runs each batch through s->run, answers.
 * m: the model (its config is the scheduler's rules).  Returns 0 after SIGTERM
 * or an orphan's exit, 1 when a socket broke or memory ran out, or what
 * s->stop returned.
 */
int ksv_instance_serve(ksv_instance_t *inst, const ksv_instance_model_t *m,
    const ksv_instance_server_t *s);

/* Whether request `id` of the running batch was cancelled by its client
 * (the scheduler thread applies CANCELs while the model runs). */
int ksv_instance_is_cancelled(uint64_t id);

/*
 * Reads the EXECUTE header in in->msgs[0]: the batch's id and how many
 * requests follow.  Returns -1 (after a log line) for anything else.
 */
int ksv_instance_read_execute(const ksv_frames_t *in, const char *prog,
    const char *instance_name, uint64_t *batch_id, uint32_t *count);

/*
 * Decodes the request at in->msgs[*idx] (its INFER header, then its
 * input frames): sets *id, *infer and *frames (the first input frame) and
 * moves *idx past it.  Returns NULL, or why the request fails; a header
 * that cannot be decoded loses the frame boundaries of everything after
 * it, so *idx then goes to the end and the later requests fail too.
 */
const char *ksv_instance_next_request(ksv_frames_t *in, size_t *idx,
    ksv_alloc_t *alloc, uint64_t *id, ksv_infer_t *infer,
    zmq_msg_t **frames);

/* Whether the request asked for output `name` (no outputs named: all). */
int ksv_instance_output_wanted(const ksv_infer_t *in, ksv_str_t name);

/* Appends an ERROR answer for request `id` (msg NULL: out of memory). */
int ksv_instance_push_error(ksv_frames_t *reply, uint64_t id,
    ksv_status_t code, const char *msg);

/*
 * Appends an INFER_REPLY answer for request `id` (whose INFER is req)
 * and moves its ir->noutputs frames after it.  An output req asked to
 * classify goes as its classification (ksv_classify.h); one the request
 * asked for in a shared memory region is written there and goes as an
 * empty frame (ksv_shm_map.h); when either fails the answer is an ERROR.
 * Returns -1 when out of memory.
 */
int ksv_instance_push_infer_reply(ksv_frames_t *reply, uint64_t id,
    const ksv_infer_t *req, const ksv_infer_reply_t *ir, zmq_msg_t *frames);

/*
 * Appends an EXECUTE_REPLY header placeholder's final form: encodes the
 * header for batch_id with `count` answers and `t`, and puts it into
 * reply->msgs[slot] (reserved earlier with ksv_frames_push, so the
 * durations can include the time spent building the answers).
 */
int ksv_instance_set_reply_header(ksv_frames_t *reply, size_t slot,
    uint64_t batch_id, uint32_t count, const ksv_exec_times_t *t);


#endif /* KSV_INSTANCE_H */
