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
    int                   wanted;       /* loaded and its policy selects it */
    char                  reason[KSERVE_REASON_MAX];   /* when not READY */
    char                  last_failure[KSERVE_REASON_MAX];
    uint64_t              fingerprint;  /* of what its instances run */

    /* owned by the supervisor: the set that serves, and a reload's set
     * starting beside it (NULL when none), which replaces it once every
     * one of its instances is ready (kserve_lifecycle.h) */
    kserve_instance_t    *instances;
    uint32_t              ninstances;
    kserve_instance_t    *next;
    uint32_t              nnext;
    uint64_t              next_fingerprint;
    char                  reload_failure[KSERVE_REASON_MAX];  /* the last
                                           reload that did not take */

    /* the counters of its instances that have exited (their pages are
     * gone); the live ones' are read from their pages */
    ksv_stats_page_t     *retired;
};

struct kserve_model_s {
    char                 *name;         /* the directory name */
    char                 *root;         /* the repository it is served
                                           from (a load's own directory
                                           for config/file overrides) */
    char                 *dir;          /* <root>/<name> */
    int                   loaded;       /* to be served (kserve_lifecycle) */
    int                   on_disk;      /* <repository>/<name> exists */
    uint64_t              fingerprint;  /* config and version list */
    uint64_t              config_fp;    /* the config text's */
    uint64_t              completed_fp; /* the config an instance completed
                                           (auto_complete_config); 0 none */
    ksv_arena_t           arena;        /* config strings and arrays */
    ksv_model_config_t    config;
    char                  error[KSERVE_REASON_MAX];  /* config unusable */
    kserve_version_t     *versions;     /* ascending */
    uint32_t              nversions;
};

typedef struct {
    const char           *root;
    kserve_model_t       *models;       /* sorted by name; they and their
                                           versions move when one is added
                                           (kserve_repository_relink) */
    uint32_t              nmodels;
    uint64_t              generation;
} kserve_repository_t;


/* Lists root's model directories (nothing is read or loaded yet: see
 * kserve_model_read).  Returns -1 (logged) only when root cannot be read
 * at all. */
int kserve_repository_load(kserve_repository_t *repo, const char *root);
void kserve_repository_free(kserve_repository_t *repo);

/* The model named, added (unloaded, no versions) when new; NULL when out
 * of memory.  Moves models: pointers into the table are stale after. */
kserve_model_t *kserve_repository_add(kserve_repository_t *repo,
    const char *name);

/* Points every version at its model and every instance at its version
 * again, after models or versions moved. */
void kserve_repository_relink(kserve_repository_t *repo);

/*
 * Reads m's config.pbtxt from m->dir into *config (a fresh arena) and
 * lists the version directories the policy selects into *versions
 * (malloc'd, ascending).  Returns 0, or -1 with why in err (the config
 * cannot be used; *config then holds the bare name and policy).
 * *fingerprint covers the config text and the selected versions.
 */
int kserve_model_read(kserve_model_t *m, ksv_arena_t *arena,
    ksv_model_config_t *config, int64_t **versions, uint32_t *nversions,
    uint64_t *fingerprint, char *err, size_t errlen);

/* The configuration an instance completed (Triton's auto_complete_config),
 * as protobuf text: m's from now on.  Returns -1 (logged) when it does not
 * parse. */
int kserve_model_completed(kserve_repository_t *repo, kserve_model_t *m,
    const char *text, size_t len);

/* The version, added (UNAVAILABLE, unwanted) when new; NULL when out of
 * memory.  Moves versions (relinked). */
kserve_version_t *kserve_model_add_version(kserve_repository_t *repo,
    kserve_model_t *m, int64_t version);

/* A hash of what a version directory holds (names, sizes, mtimes,
 * recursively) and of the model's config text; 0 when unreadable. */
uint64_t kserve_version_fingerprint(kserve_model_t *m, int64_t version,
    uint64_t config_fp);

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

#endif /* KSERVE_REPOSITORY_H */
