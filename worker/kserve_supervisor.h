/*
 * kserve-worker: instance processes.
 *
 * Each model version runs as many instance processes as its
 * instance_group asks (count per group, and per listed GPU for KIND_GPU).
 * An instance is a separate process (kserve-python-instance, or
 * kserve-cuda-instance for backend "cuda") so a model that crashes,
 * leaks or hangs in C code takes down only itself.
 *
 * GPUs: a KIND_GPU instance gets --device-id; a python one also gets
 * CUDA_VISIBLE_DEVICES set to that GPU (so frameworks in it see only
 * their own device, as device 0; an inherited CUDA_VISIBLE_DEVICES list
 * is indexed by the id).  A cuda instance sees every GPU and selects
 * its own with cudaSetDevice, and decides itself what to do on a
 * machine without one.
 *
 * Each instance serves requests itself (backends/common/ksv_instance.h):
 * it binds its own data endpoint and announces it in READY; the worker
 * publishes it in the model index, and nginx talks to it directly.  The
 * worker is never on the infer path.
 *
 * Life of an instance:
 *
 *   STARTING --READY ok=1--> READY (in the index, with its endpoint)
 *      |  \--READY ok=0---> (terminated, restarted after backoff)
 *      \--exit------------> BACKOFF --timer--> STARTING
 *   KSERVE_LOAD_ATTEMPTS failed starts in a row: GAVE_UP (until a load)
 *   READY --replaced or unloaded--> draining (SIGUSR1; listed DRAINING
 *                                    until it exits on its own)
 *
 * A version has a serving set of instances and, while it reloads, a next
 * set starting beside it (kserve_supervisor_load); the next set replaces
 * the serving one when all of it is READY, and the serving one drains.
 *
 * A death (SIGCHLD, read through a self-pipe in the main loop; for an
 * adopted instance, its pidfd) is published at once: the instance stays
 * in the index as UNAVAILABLE with the reason (its exit status, or the
 * last words it wrote into its statistics page: "did not finish a batch
 * ... killed as hung"), so nginx fails what it had sent there, and a
 * restart is scheduled: 100 ms doubling to 10 s, back to 100 ms once an
 * instance has stayed up 30 s.  Its statistics page is folded into the
 * version's retired counters and removed.
 *
 * The data plane outlives the control plane.  Instances are not killed
 * with the worker (no PR_SET_PDEATHSIG); the worker holds an exclusive
 * flock on <run>/worker.lock, which instances test every second, and
 * keeps <run>/instances.tab, the manifest of its ready instances (pid,
 * model, version, index, endpoint).  A worker started on the same run
 * directory adopts the manifest's instances that are still alive and
 * still the same program (their /proc cmdline), instead of starting new
 * ones; instances whose worker stays away for their --orphan-grace
 * finish their queue and exit.  SIGTERM to the worker stops them all.
 *
 * The version's state follows its instances: READY while one is ready,
 * UNAVAILABLE (with the last failure as reason) when every instance has
 * failed since it last was ready, LOADING otherwise.
 */

#ifndef KSERVE_SUPERVISOR_H
#define KSERVE_SUPERVISOR_H

#include <stdint.h>
#include <sys/types.h>

#include "ksv_proto.h"
#include "kserve_repository.h"
#include "ksv_stats.h"
#include <zmq.h>


#define KSERVE_BACKOFF_MIN_MS    100
#define KSERVE_BACKOFF_MAX_MS    10000
#define KSERVE_BACKOFF_RESET_MS  30000

/* starts in a row that fail before the instance is ready (its
 * initialize() raises, it dies loading) before the supervisor gives up
 * on it: its version is then UNAVAILABLE with the reason until a load
 * or a change under poll tries again */
#define KSERVE_LOAD_ATTEMPTS     3

/* a draining instance still alive after this is stopped (SIGTERM) */
#define KSERVE_DRAIN_MAX_MS      120000

typedef enum {
    KSERVE_INSTANCE_STOPPED = 0,
    KSERVE_INSTANCE_STARTING,       /* spawned, no READY yet */
    KSERVE_INSTANCE_READY,          /* serving at its endpoint */
    KSERVE_INSTANCE_BACKOFF,        /* dead, restart at restart_at_ms */
    KSERVE_INSTANCE_GAVE_UP         /* failed KSERVE_LOAD_ATTEMPTS starts */
} kserve_instance_state_t;

struct kserve_instance_s {
    kserve_version_t   *version;
    uint32_t            index;          /* --instance, within the version */
    uint32_t            count;          /* --instances: its set's size */
    int                 in_next;        /* in its version's next set */
    int                 attempts;       /* failed starts in a row */
    uint8_t             kind;           /* ksv_instance_kind_t */
    uint8_t             gpu_asked;      /* its group is KIND_GPU */
    int32_t             device_id;
    pid_t               pid;
    pid_t               last_pid;       /* its previous process */
    kserve_instance_state_t  state;
    char                routing_id[24]; /* "i<pid>", set by the instance */
    char                name[300];      /* "<model>_<index>", for clients */
    char                label[340];     /* name + version, for the log */
    int                 failed;         /* failed since it was last ready */
    int                 init_failed;    /* READY ok=0: its exit is expected */
    char                killed[128];    /* why we killed it; "" otherwise */
    int64_t             started_ms;
    int64_t             restart_at_ms;
    int64_t             backoff_ms;
    int                 adopted;        /* not our child: watched by pidfd */
    int                 pidfd;          /* adopted: -1 when none */
    char                endpoint[320];  /* its data socket, once READY */
    ksv_stats_page_t   *stats;          /* its page, once READY */
    pid_t               down_pid;       /* exited, not yet replaced */
    char                down_endpoint[320];
    char                down_reason[KSERVE_REASON_MAX];
};


/* Reads the run directory's manifest, for kserve_supervisor_load() to
 * adopt from; kserve_supervisor_started() forgets it. */
void kserve_supervisor_start(void);
void kserve_supervisor_started(void);

/* Whether the manifest lists a live instance of the model (a restarted
 * worker in explicit mode keeps what its predecessor had loaded). */
int kserve_supervisor_manifest_has(const char *model);

/*
 * Starts v's instances as the model's config asks (fingerprint: what
 * they will run).  When v serves already, the new set starts beside the
 * old one and replaces it once all of it is ready; the old instances
 * then drain.  When it does not, the new set replaces whatever was
 * starting.  Instances of the manifest are adopted instead of started.
 */
int kserve_supervisor_load(kserve_version_t *v, uint64_t fingerprint);

/* Takes v out of service: ready instances drain (they finish what they
 * were sent, then exit), the others stop; v becomes UNAVAILABLE with
 * reason. */
void kserve_supervisor_unload(kserve_version_t *v, const char *reason);

/* Whether v's instances have settled: none starting or waiting to
 * restart, no new set on its way. */
int kserve_supervisor_settled(kserve_version_t *v);

/* Whether v has instances (serving, starting or draining). */
int kserve_supervisor_busy(kserve_version_t *v);

/* The INDEX_REPLY for an asker holding generation `known` (arrays from
 * arena): every model with versions, their instances, the draining ones
 * included. */
int kserve_supervisor_index(uint64_t known, ksv_arena_t *arena,
    ksv_index_t *out);

/* The statistics of v: its retired counters plus every live page. */
void kserve_supervisor_version_stats(kserve_version_t *v,
    ksv_stats_page_t *out);

/* The pidfds of adopted instances, for the loop's poll set: fills up to
 * max items (fd, POLLIN) and returns how many. */
int kserve_supervisor_pollfds(zmq_pollitem_t *items, int max);

/* Looks at adopted instances whose pidfd became readable. */
void kserve_supervisor_check_adopted(void);

/* Reaps exited children (after SIGCHLD). */
void kserve_supervisor_reap(void);

/* Restarts instances whose backoff has passed.  Returns ms until the
 * next restart is due, -1 when none is pending. */
int64_t kserve_supervisor_tick(int64_t now);

/* The instance behind a routing id, or NULL; *gone is set when the id
 * is that of its previous, exited process. */
kserve_instance_t *kserve_supervisor_find(const void *routing_id,
    size_t len, int *gone);

/* A READY ok=0 that arrived after its process was reaped: keep its
 * message as the reason. */
void kserve_supervisor_late_ready(kserve_instance_t *inst,
    const ksv_ready_t *m);

/* A READY message from inst. */
void kserve_supervisor_ready(kserve_instance_t *inst, const ksv_ready_t *m);

/* inst cannot be reached or misbehaves: kill it; the reaper restarts it. */
void kserve_supervisor_kill(kserve_instance_t *inst, const char *why);

/* Shutdown: SIGTERM all (finalize() runs), later SIGKILL the rest. */
void kserve_supervisor_terminate_all(void);
int kserve_supervisor_alive(void);
void kserve_supervisor_kill_all(void);

/* Frees the instance tables (after kill_all). */
void kserve_supervisor_free(void);

#endif /* KSERVE_SUPERVISOR_H */
