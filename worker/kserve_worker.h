/*
 * kserve-worker: the daemon's shared state.
 *
 * One process, one thread, one zmq_poll loop (kserve_worker.c).  Like
 * Redis's `server`, the state every part of the daemon needs lives in one
 * global struct, `kserve`; each part owns its own fields:
 *
 *   kserve_repository  models, versions, their state, the generation
 *   kserve_supervisor  instance processes: spawn, reap, restart, adopt,
 *                      their endpoints and statistics pages
 *   kserve_server      the two ROUTER sockets: INDEX, STATS and
 *                      REPOSITORY for nginx, READY from instances
 *   kserve_lifecycle   model control: modes, poll, load and unload
 *
 * The worker is the control plane: requests go from nginx straight to
 * the instances (backends/common/ksv_instance.h), never through here.
 */

#ifndef KSERVE_WORKER_H
#define KSERVE_WORKER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kserve_repository.h"


#define KSERVE_MAX_LISTEN        16
#define KSERVE_MAX_LOAD_MODELS   256
#define KSERVE_DEFAULT_MAX_FRAME (1024ULL * 1024 * 1024)  /* 1 GiB */
#define KSERVE_SHUTDOWN_GRACE_MS 5000     /* finalize() budget at exit */
#define KSERVE_DEFAULT_EXECUTE_TIMEOUT_MS 60000  /* batches without a
                                                    deadline */
#define KSERVE_DEFAULT_ORPHAN_GRACE_S  30  /* instances without a worker */


typedef struct {
    /* options (kserve_worker.c) */
    const char           *repository;
    const char           *listen[KSERVE_MAX_LISTEN];
    int                   nlisten;
    char                  run_dir[PATH_MAX];
    int                   run_dir_created;
    char                  instances_endpoint[PATH_MAX + 16];
    char                  python_instance[PATH_MAX];
    char                  python_utils[PATH_MAX];
    char                  cuda_instance[PATH_MAX];
    uint64_t              max_frame_size;
    uint64_t              execute_timeout_ms;  /* 0: no watchdog without
                                                  a module deadline */
    int64_t               orphan_grace_s;
    char                  instance_bind[300];  /* "ipc" or tcp://IF:PORTS */
    const char           *advertise;           /* host for tcp endpoints */
    int                   lock_fd;             /* flock on worker.lock */
    int                   control_mode;        /* kserve_control_mode_t */
    const char           *load_models[KSERVE_MAX_LOAD_MODELS];
    int                   nload_models;        /* --load-model */
    int64_t               poll_secs;           /* --repository-poll-secs */

    /* sockets (kserve_server.c) */
    void                 *zctx;
    void                 *frontend;     /* ROUTER: nginx workers' DEALERs */
    void                 *backend;      /* ROUTER: instances' DEALERs */

    kserve_repository_t   repo;

    int                   shutting_down;
} kserve_worker_t;

extern kserve_worker_t  kserve;


#endif /* KSERVE_WORKER_H */
