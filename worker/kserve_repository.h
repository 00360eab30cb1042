/*
 * kserve-worker: the model repository.
 *
 * A repository is a directory laid out as Triton lays it out:
 *
 *   <root>/<model>/config.pbtxt
 *   <root>/<model>/<version>/model.py      (numeric version directories)
 *
 * kserve_repository_load() scans it once at startup: every model gets its
 * parsed config (with Triton's defaults) and the versions its
 * version_policy selects, in ascending order.  The repository then holds
 * the live state of each version (LOADING, READY, UNAVAILABLE + reason),
 * which the supervisor drives and the INDEX reply reports.
 *
 * The generation counter starts at a random value and moves on every
 * change of any config or state, so an nginx worker that asks with the
 * generation it already holds gets a short "nothing changed" answer, and
 * a restarted daemon is always noticed.
 */

#ifndef KSERVE_REPOSITORY_H
#define KSERVE_REPOSITORY_H

#include <stdint.h>
#include <sys/types.h>

#include "ksv_proto.h"
#include "ksv_stats.h"


#define KSERVE_REASON_MAX  512

typedef struct kserve_version_s  kserve_version_t;
typedef struct kserve_model_s    kserve_model_t;
typedef struct kserve_instance_s kserve_instance_t;

struct kserve_version_s {
    kserve_model_t       *model;
    int64_t               version;
    uint8_t               state;        /* ksv_version_state_t */
    int                   supported;    /* a backend we can run */
    char                  reason[KSERVE_REASON_MAX];   /* when not READY */
    char                  last_failure[KSERVE_REASON_MAX];

    kserve_instance_t    *instances;    /* owned by the supervisor */
    uint32_t              ninstances;

    /* the counters of its instances that have exited (their pages are
     * gone); the live ones' are read from their pages */
    ksv_stats_page_t     *retired;
};

struct kserve_model_s {
    char                 *name;         /* the directory name */
    char                 *dir;          /* <root>/<name> */
    ksv_arena_t           arena;        /* config strings and arrays */
    ksv_model_config_t    config;
    char                  error[KSERVE_REASON_MAX];  /* config unusable */
    kserve_version_t     *versions;     /* ascending */
    uint32_t              nversions;
};

typedef struct {
    const char           *root;
    kserve_model_t       *models;       /* sorted by name */
    uint32_t              nmodels;
    uint64_t              generation;
} kserve_repository_t;


/* Scans root.  Returns -1 (logged) only when root cannot be read at all;
 * a broken model becomes an UNAVAILABLE model with its reason. */
int kserve_repository_load(kserve_repository_t *repo, const char *root);
void kserve_repository_free(kserve_repository_t *repo);

kserve_model_t *kserve_repository_find(kserve_repository_t *repo,
    const char *name, size_t len);
kserve_version_t *kserve_model_version(kserve_model_t *model,
    int64_t version);

/* The version an INFER without a version goes to: the highest READY one,
 * else the highest one (whose state says why it cannot serve); NULL when
 * the model has no versions at all. */
kserve_version_t *kserve_model_default_version(kserve_model_t *model);

/* Sets state and reason; moves the generation when either changed. */
void kserve_version_set_state(kserve_repository_t *repo,
    kserve_version_t *v, ksv_version_state_t state, const char *reason);

/* Moves the generation: something the index shows (an instance) changed. */
void kserve_repository_touch(kserve_repository_t *repo);

/* Fills an INDEX_REPLY for an asker holding generation `known`;
 * temporary arrays come from the arena. */
int kserve_repository_index(kserve_repository_t *repo, uint64_t known,
    ksv_arena_t *arena, ksv_index_t *out);

#endif /* KSERVE_REPOSITORY_H */
