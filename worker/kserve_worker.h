/*
 * kserve-worker: the daemon's shared state.
 *
 * One process, one thread, one zmq_poll loop (kserve_worker.c).  Like
 * Redis's `server`, the state every part of the daemon needs lives in one
 * global struct, `kserve`; each part owns its own fields:
 *
 *   kserve_repository  models, versions, their state, the generation
 *   kserve_supervisor  instance processes: spawn, reap, restart
 *   kserve_scheduler   request queues, batches, replies
 *   kserve_server      the two ROUTER sockets and the message formats
 */

#ifndef KSERVE_WORKER_H
#define KSERVE_WORKER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kserve_repository.h"


#define KSERVE_MAX_LISTEN        16
#define KSERVE_DEFAULT_MAX_FRAME (1024ULL * 1024 * 1024)  /* 1 GiB */
#define KSERVE_DEFAULT_QUEUE     10000    /* when the config sets none */
#define KSERVE_SHUTDOWN_GRACE_MS 5000     /* finalize() budget at exit */
#define KSERVE_DEFAULT_EXECUTE_TIMEOUT_MS 60000  /* batches without a
                                                    deadline */
#define KSERVE_EXECUTE_GRACE_MS  1000     /* past a batch's deadline
                                             before it counts as hung */


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

    /* sockets (kserve_server.c) */
    void                 *zctx;
    void                 *frontend;     /* ROUTER: nginx workers' DEALERs */
    void                 *backend;      /* ROUTER: instances' DEALERs */

    kserve_repository_t   repo;

    uint64_t              next_id;      /* daemon-side request/batch ids */
    int64_t               expire_hint_ms;  /* a new deadline is due then;
                                              0: none (scheduler sets it,
                                              the loop clears it) */
    int                   shutting_down;
} kserve_worker_t;

extern kserve_worker_t  kserve;


/* A fresh daemon-side id, never 0. */
uint64_t kserve_next_id(void);

#endif /* KSERVE_WORKER_H */
