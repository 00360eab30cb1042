/*
 * kserve-worker: model control, as Triton's --model-control-mode.
 *
 *   none      every model of the repository is loaded at start; nothing
 *             changes while the worker runs (the default)
 *   poll      the same at start; then every --repository-poll-secs the
 *             repository is read again: a new model directory is
 *             loaded, a removed one unloaded, a model whose config.pbtxt
 *             or version directories changed (files, sizes, mtimes) is
 *             reloaded
 *   explicit  only the --load-model models at start ("*": all); then
 *             POST /v2/repository/models/{m}/load and .../unload
 *
 * Loads and unloads in the other modes are refused with Triton's words
 * (UNAVAILABLE "explicit model load / unload is not allowed if polling
 * is enabled").
 *
 * Reloads never leave a gap (kserve_supervisor.h): a version that serves
 * keeps serving while its new instances start beside it; nginx switches
 * to them when all are ready, and the old ones drain (finish what they
 * were sent, then exit).  A new version replaces the ones its policy no
 * longer selects the same way: those are unloaded (they drain) only once
 * every selected version has settled and one of them is READY, so a new
 * version that fails leaves the old one serving, with the failure as the
 * new version's reason.  A reload of a serving version that fails keeps
 * the old instances, the failure in the index's reason for that version.
 *
 * A load answers when it has settled (Triton's load is synchronous):
 * every selected version READY, or failed after its bounded retries,
 * with "load failed for model 'm': version v is at UNAVAILABLE state:
 * <reason>;" as Triton says it.
 */

#ifndef KSERVE_LIFECYCLE_H
#define KSERVE_LIFECYCLE_H

#include <stdint.h>
#include <zmq.h>

#include "ksv_proto.h"


typedef enum {
    KSERVE_CONTROL_NONE = 0,
    KSERVE_CONTROL_POLL,
    KSERVE_CONTROL_EXPLICIT
} kserve_control_mode_t;


/* Loads what the mode loads at start (adopting what the manifest of the
 * run directory lists).  Returns -1 when out of memory. */
int kserve_lifecycle_start(void);

/* Once per loop round: polls the repository when due, unloads versions
 * that new ones have replaced, answers loads that have settled.
 * Returns ms until it wants to run again, -1 when it does not care. */
int64_t kserve_lifecycle_tick(int64_t now);

/* A REPOSITORY message from an nginx worker (identity copied when the
 * answer has to wait); body is the LOAD's second frame (NULL, 0 none). */
void kserve_lifecycle_request(zmq_msg_t *identity, uint64_t id,
    const ksv_repository_t *req, const void *body, size_t len);

/* The load directories of this run (config and file overrides) go. */
void kserve_lifecycle_cleanup(void);

#endif /* KSERVE_LIFECYCLE_H */
