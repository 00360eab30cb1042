/*
 * kserve-worker: model control (see kserve_lifecycle.h).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ksv_json_read.h"
#include "kserve_lifecycle.h"
#include "kserve_log.h"
#include "kserve_server.h"
#include "kserve_supervisor.h"
#include "kserve_worker.h"


#define KSERVE_NOT_EXPLICIT                                                   \
    "explicit model load / unload is not allowed if polling is enabled"

#define KSERVE_MAX_PENDING_LOADS  256


/* A load waiting for its model to settle before it is answered. */
typedef struct {
    zmq_msg_t   identity;
    uint64_t    id;
    char        model[256];
} kserve_pending_load_t;

static kserve_pending_load_t  kserve_loads[KSERVE_MAX_PENDING_LOADS];
static uint32_t               kserve_nloads;
static int64_t                kserve_next_poll_ms;
static uint64_t               kserve_load_seq;


/* ---- loading a model: its config, its versions ------------------------- */

static int
kserve_version_serves(kserve_version_t *v)
{
    return v->state == KSV_VERSION_READY;
}


/*
 * (Re)reads m from m->dir and brings its versions there: new ones start,
 * changed ones reload beside themselves, failed ones try again, and the
 * ones the policy no longer selects are left to kserve_retire().
 * Returns 0, or -1 with why in err when the new config cannot be used
 * while m still serves with its old one (which then stays).
 */
static int
kserve_apply(kserve_model_t *m, int force, char *err, size_t errlen)
{
    int                  rc, serving;
    int64_t             *vers;
    uint32_t             nvers, i;
    uint64_t             fp, vfp;
    ksv_arena_t          arena;
    kserve_version_t    *v;
    ksv_model_config_t   config;

    ksv_arena_init(&arena);
    rc = kserve_model_read(m, &arena, &config, &vers, &nvers, &fp, err,
                           errlen);

    serving = 0;
    for (i = 0; i < m->nversions; i++) {
        serving |= kserve_version_serves(&m->versions[i]);
    }

    if (rc != 0 && serving) {
        kserve_error("model '%s': %s; the loaded versions stay", m->name,
                     err);
        ksv_arena_free(&arena);
        free(vers);
        m->fingerprint = fp;
        return -1;
    }

    /* the new config is the model's from now on (instances already
     * running keep what they read); one its model completed stays until
     * the new instances complete theirs, so clients see no interface
     * without inputs meanwhile */
    if (serving && m->completed_fp != 0 && rc == 0) {
        ksv_arena_free(&arena);
    } else {
        ksv_arena_free(&m->arena);
        m->arena = arena;
        m->config = config;
        m->completed_fp = 0;
    }
    m->fingerprint = fp;
    m->loaded = 1;
    snprintf(m->error, sizeof(m->error), "%s", rc != 0 ? err : "");
    kserve_repository_touch(&kserve.repo);

    for (i = 0; i < m->nversions; i++) {
        m->versions[i].wanted = 0;
    }

    if (rc != 0) {
        kserve_error("model '%s': %s", m->name, err);
    }
    if (nvers == 0) {
        kserve_warn("model '%s': no version directory to serve", m->name);
    }

    for (i = 0; i < nvers; i++) {
        v = kserve_model_add_version(&kserve.repo, m, vers[i]);
        if (v == NULL) {
            kserve_error("model '%s': out of memory", m->name);
            continue;
        }
        v->wanted = 1;
        v->supported = rc == 0;
        if (rc != 0) {
            kserve_version_set_state(&kserve.repo, v, KSV_VERSION_UNAVAILABLE,
                                     err);
            continue;
        }

        vfp = kserve_version_fingerprint(m, v->version, m->config_fp);

        if (!force
            && ((v->nnext > 0 && v->next_fingerprint == vfp)
                || (v->nnext == 0 && v->ninstances > 0
                    && v->fingerprint == vfp
                    && (kserve_version_serves(v)
                        || !kserve_supervisor_settled(v)))))
        {
            continue;           /* loaded (or loading) as it is */
        }

        if (kserve_supervisor_load(v, vfp) != 0) {
            kserve_version_set_state(&kserve.repo, v, KSV_VERSION_UNAVAILABLE,
                                     "out of memory");
        }
    }

    free(vers);
    kserve_info("model '%s': %u version(s) selected%s%s", m->name, nvers,
                rc != 0 ? ", unavailable: " : "", rc != 0 ? err : "");
    return 0;
}


static void
kserve_unload_model(kserve_model_t *m)
{
    uint32_t           i;
    kserve_version_t  *v;

    m->loaded = 0;
    for (i = 0; i < m->nversions; i++) {
        v = &m->versions[i];
        v->wanted = 0;
        if (kserve_supervisor_busy(v) || v->state != KSV_VERSION_UNAVAILABLE
            || strcmp(v->reason, "unloaded") != 0)
        {
            kserve_supervisor_unload(v, "unloaded");
        }
    }
    kserve_info("model '%s': unloaded", m->name);
}


/*
 * Versions the policy no longer selects go once the selected ones have
 * settled with one of them READY; until then they serve on.
 */
static void
kserve_retire(kserve_model_t *m)
{
    int                ready, settled;
    uint32_t           i;
    kserve_version_t  *v;

    ready = 0;
    settled = 1;
    for (i = 0; i < m->nversions; i++) {
        v = &m->versions[i];
        if (!v->wanted) {
            continue;
        }
        ready |= v->state == KSV_VERSION_READY;
        settled &= kserve_supervisor_settled(v);
    }

    for (i = 0; i < m->nversions; i++) {
        v = &m->versions[i];
        if (v->wanted || v->ninstances + v->nnext == 0) {
            continue;
        }
        if ((ready && settled) || !m->loaded) {
            kserve_info("model '%s' version %lld: no longer selected: "
                        "unloading", m->name, (long long) v->version);
            kserve_supervisor_unload(v, "unloaded");
        }
    }
}


/* ---- answering loads ------------------------------------------------------ */

/* Whether m's load has settled; *msg gets Triton's failure text, "" when
 * every selected version is READY. */
static int
kserve_load_settled(kserve_model_t *m, char *msg, size_t len)
{
    int                n;
    size_t             used;
    uint32_t           i;
    kserve_version_t  *v;

    msg[0] = '\0';
    used = 0;
    n = 0;
    for (i = 0; i < m->nversions; i++) {
        v = &m->versions[i];
        if (!v->wanted) {
            continue;
        }
        n++;
        if (!kserve_supervisor_settled(v)) {
            return 0;
        }
        if (v->state != KSV_VERSION_READY || v->reload_failure[0] != '\0') {
            used += (size_t) snprintf(msg + used, used < len ? len - used : 0,
                                      "version %lld is at %s state: %s;",
                                      (long long) v->version,
                                      ksv_repo_state_name(v->state),
                                      v->state == KSV_VERSION_READY
                                      ? v->reload_failure : v->reason);
            if (used >= len) {
                used = len - 1;
            }
        }
    }
    if (n == 0 && m->error[0] == '\0') {
        snprintf(msg, len, "no version is available");
    }
    return 1;
}


static void
kserve_reply_empty(zmq_msg_t *identity, uint64_t id)
{
    ksv_writer_t            w;
    ksv_repository_reply_t  r;

    memset(&r, 0, sizeof(r));
    ksv_writer_init(&w);
    ksv_encode_repository_reply(&w, id, &r);
    kserve_server_reply(identity, &w);
    ksv_writer_free(&w);
}


static void
kserve_answer_loads(void)
{
    char                    msg[KSERVE_REASON_MAX * 4], out[sizeof(msg) + 300];
    uint32_t                i;
    kserve_model_t         *m;
    kserve_pending_load_t  *p;

    for (i = 0; i < kserve_nloads; i++) {
        p = &kserve_loads[i];
        m = kserve_repository_find(&kserve.repo, p->model, strlen(p->model));
        if (m != NULL && m->loaded && !kserve_load_settled(m, msg, sizeof(msg)))
        {
            continue;
        }

        /* every nginx worker has the index the answer speaks of before
         * the client can ask again (one socket each, in order) */
        kserve_server_push_index();

        if (m == NULL || !m->loaded) {
            snprintf(out, sizeof(out), "failed to load '%s', the model was "
                     "unloaded meanwhile", p->model);
            kserve_server_error(&p->identity, p->id, KSV_ERR_INTERNAL, out);

        } else if (strcmp(msg, "no version is available") == 0) {
            snprintf(out, sizeof(out), "failed to load '%s', no version is "
                     "available", p->model);
            kserve_server_error(&p->identity, p->id, KSV_ERR_INTERNAL, out);

        } else if (m->error[0] != '\0' || msg[0] != '\0') {
            snprintf(out, sizeof(out), "load failed for model '%s': %s\n",
                     p->model, msg[0] != '\0' ? msg : m->error);
            kserve_server_error(&p->identity, p->id, KSV_ERR_INVALID_ARG, out);

        } else {
            kserve_info("model '%s': loaded", p->model);
            kserve_reply_empty(&p->identity, p->id);
        }

        zmq_msg_close(&p->identity);
        kserve_loads[i] = kserve_loads[--kserve_nloads];
        i--;
    }
}


/* ---- poll ---------------------------------------------------------------- */

static int
kserve_dir_exists(const char *path)
{
    struct stat  st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}


static void
kserve_poll(void)
{
    DIR             *d;
    char             path[PATH_MAX], err[KSERVE_REASON_MAX];
    int64_t         *vers;
    uint32_t         i, nvers;
    uint64_t         fp;
    ksv_arena_t      arena;
    kserve_model_t  *m;
    struct dirent   *de;
    ksv_model_config_t  config;

    d = opendir(kserve.repository);
    if (d == NULL) {
        kserve_warn("poll: cannot open %s: %s", kserve.repository,
                    strerror(errno));
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", kserve.repository, de->d_name);
        if (!kserve_dir_exists(path)
            || kserve_repository_find(&kserve.repo, de->d_name,
                                      strlen(de->d_name)) != NULL)
        {
            continue;
        }
        m = kserve_repository_add(&kserve.repo, de->d_name);
        if (m == NULL) {
            kserve_error("poll: out of memory");
            break;
        }
        m->on_disk = 1;
        kserve_info("poll: new model '%s'", m->name);
        (void) kserve_apply(m, 0, err, sizeof(err));
    }
    closedir(d);

    for (i = 0; i < kserve.repo.nmodels; i++) {
        m = &kserve.repo.models[i];
        if (!kserve_dir_exists(m->dir)) {
            if (m->loaded) {
                kserve_info("poll: model '%s' is gone", m->name);
                kserve_unload_model(m);
            }
            m->on_disk = 0;
            continue;
        }
        m->on_disk = 1;

        ksv_arena_init(&arena);
        (void) kserve_model_read(m, &arena, &config, &vers, &nvers, &fp, err,
                                 sizeof(err));
        ksv_arena_free(&arena);
        free(vers);
        if (fp != m->fingerprint || !m->loaded) {
            kserve_info("poll: model '%s' changed: loading it", m->name);
            (void) kserve_apply(m, 0, err, sizeof(err));
        }
    }
}


/* ---- start and tick -------------------------------------------------------- */

static int
kserve_named_at_start(const char *name)
{
    int  i;

    for (i = 0; i < kserve.nload_models; i++) {
        if (strcmp(kserve.load_models[i], "*") == 0
            || strcmp(kserve.load_models[i], name) == 0)
        {
            return 1;
        }
    }
    return 0;
}


int
kserve_lifecycle_start(void)
{
    char             err[KSERVE_REASON_MAX];
    uint32_t         i;
    kserve_model_t  *m;

    kserve_supervisor_start();

    for (i = 0; i < kserve.repo.nmodels; i++) {
        m = &kserve.repo.models[i];
        if (kserve.control_mode == KSERVE_CONTROL_EXPLICIT
            && !kserve_named_at_start(m->name)
            && !kserve_supervisor_manifest_has(m->name))
        {
            continue;
        }
        (void) kserve_apply(m, 0, err, sizeof(err));
        /* kserve_apply may move models (never here: all are known) */
        m = &kserve.repo.models[i];
    }

    for (i = 0; kserve.control_mode == KSERVE_CONTROL_EXPLICIT
                && i < (uint32_t) kserve.nload_models; i++)
    {
        if (strcmp(kserve.load_models[i], "*") != 0
            && kserve_repository_find(&kserve.repo, kserve.load_models[i],
                                      strlen(kserve.load_models[i])) == NULL)
        {
            kserve_error("--load-model %s: no such model in %s",
                         kserve.load_models[i], kserve.repository);
        }
    }

    kserve_supervisor_started();
    kserve_next_poll_ms = kserve_now_ms() + kserve.poll_secs * 1000;
    return 0;
}


int64_t
kserve_lifecycle_tick(int64_t now)
{
    uint32_t  i;

    if (kserve.shutting_down) {
        return -1;
    }

    if (kserve.control_mode == KSERVE_CONTROL_POLL
        && now >= kserve_next_poll_ms)
    {
        kserve_poll();
        kserve_next_poll_ms = now + kserve.poll_secs * 1000;
    }

    for (i = 0; i < kserve.repo.nmodels; i++) {
        kserve_retire(&kserve.repo.models[i]);
    }

    kserve_answer_loads();

    if (kserve.control_mode == KSERVE_CONTROL_POLL) {
        return kserve_next_poll_ms > now ? kserve_next_poll_ms - now : 0;
    }
    return -1;
}


/* ---- the repository index ------------------------------------------------- */

static int
kserve_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


static void
kserve_on_index(zmq_msg_t *identity, uint64_t id, int ready_only)
{
    DIR                     *d;
    char                   **names, **nn;
    uint32_t                 n, cap, i, j, k, count;
    ksv_arena_t              arena;
    ksv_writer_t             w;
    kserve_model_t          *m;
    kserve_version_t        *v;
    struct dirent           *de;
    ksv_repo_entry_t        *e;
    ksv_repository_reply_t   r;

    /* the models of the repository directory (as Triton, read now) and
     * those loaded from elsewhere (file overrides) */
    names = NULL;
    n = 0;
    cap = 0;
    ksv_arena_init(&arena);

    d = opendir(kserve.repository);
    while (d != NULL && (de = readdir(d)) != NULL) {
        char  path[PATH_MAX];

        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", kserve.repository, de->d_name);
        if (!kserve_dir_exists(path)) {
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            nn = realloc(names, cap * sizeof(char *));
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        names[n] = ksv_arena_alloc(&arena, strlen(de->d_name) + 1);
        if (names[n] != NULL) {
            strcpy(names[n++], de->d_name);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    for (i = 0; i < kserve.repo.nmodels; i++) {
        m = &kserve.repo.models[i];
        if (m->on_disk && kserve_dir_exists(m->dir)
            && strcmp(m->root, kserve.repository) == 0)
        {
            continue;           /* listed above */
        }
        for (j = 0; j < n && strcmp(names[j], m->name) != 0; j++) {
            /* search */
        }
        if (j < n || (m->nversions == 0 && !m->loaded)) {
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            nn = realloc(names, cap * sizeof(char *));
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        names[n++] = m->name;
    }
    if (n > 0) {
        qsort(names, n, sizeof(char *), kserve_cmp_str);
    }

    count = 0;
    for (i = 0; i < n; i++) {
        m = kserve_repository_find(&kserve.repo, names[i], strlen(names[i]));
        count += (m != NULL && m->nversions > 0) ? m->nversions : 1;
    }

    memset(&r, 0, sizeof(r));
    r.entries = count ? ksv_arena_alloc(&arena, count * sizeof(*e)) : NULL;

    for (i = 0; r.entries != NULL && i < n; i++) {
        m = kserve_repository_find(&kserve.repo, names[i], strlen(names[i]));
        if (m == NULL || m->nversions == 0) {
            if (ready_only) {
                continue;
            }
            e = &r.entries[r.nentries++];
            e->name = ksv_str_c(names[i]);
            e->version = -1;
            e->state = (m != NULL && m->loaded) ? KSV_VERSION_UNAVAILABLE
                                                : KSV_REPO_NAME_ONLY;
            e->reason = ksv_str_c(m != NULL ? m->error : "");
            continue;
        }
        for (k = 0; k < m->nversions; k++) {
            v = &m->versions[k];
            if (ready_only && v->state != KSV_VERSION_READY) {
                continue;
            }
            e = &r.entries[r.nentries++];
            e->name = ksv_str_c(m->name);
            e->version = v->version;
            e->state = v->state;
            e->reason = ksv_str_c(v->state == KSV_VERSION_READY
                                  ? v->reload_failure : v->reason);
            if (v->state == KSV_VERSION_UNAVAILABLE && !v->wanted
                && kserve_supervisor_busy(v))
            {
                e->state = KSV_REPO_UNLOADING;
            }
        }
    }

    ksv_writer_init(&w);
    ksv_encode_repository_reply(&w, id, &r);
    kserve_server_reply(identity, &w);
    ksv_writer_free(&w);
    free(names);
    ksv_arena_free(&arena);
}


/* ---- load: the request's parameters, override directories -------------- */

static int
kserve_mkdirs(char *path)
{
    char  *p;

    for (p = path + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            *p = '/';
            return -1;
        }
        *p = '/';
    }
    return 0;
}


static int
kserve_write_file(const char *path, const void *data, size_t len)
{
    int       fd;
    ssize_t   n;
    size_t    done;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    for (done = 0; done < len; done += (size_t) n) {
        n = write(fd, (const char *) data + done, len - done);
        if (n < 0 && errno == EINTR) {
            n = 0;
            continue;
        }
        if (n <= 0) {
            close(fd);
            return -1;
        }
    }
    return close(fd);
}


/* A path of a file: parameter, relative to the model directory. */
static int
kserve_safe_relpath(const char *p, size_t len)
{
    size_t  i, start;

    if (len == 0 || p[0] == '/' || memchr(p, '\0', len) != NULL) {
        return 0;
    }
    start = 0;
    for (i = 0; i <= len; i++) {
        if (i == len || p[i] == '/') {
            if (i == start || (i - start == 2 && p[start] == '.'
                               && p[start + 1] == '.')
                || (i - start == 1 && p[start] == '.'))
            {
                return 0;
            }
            start = i + 1;
        }
    }
    return 1;
}


/*
 * Makes <run-dir>/loads/<n>/<model>/ from a load's overrides: its
 * config.pbtxt from the config parameter (JSON), then either the files
 * given, or links to the repository's version directories.  Returns the
 * new root (malloc'd) or NULL with Triton's code and words in *code, err.
 */
static char *
kserve_override_dir(const char *model, const ksv_jnode_t *params,
    ksv_status_t *code, char *err, size_t errlen)
{
    int                   nfiles;
    long                  n;
    char                  root[PATH_MAX], dir[PATH_MAX], path[PATH_MAX * 2];
    char                  src[PATH_MAX * 2], msg[256];
    uint8_t              *bytes;
    ksv_arena_t           arena;
    ksv_writer_t          w;
    ksv_jnode_t        *config, *cj;
    const ksv_jnode_t  *p;
    DIR                  *d;
    struct dirent        *de;

    *code = KSV_ERR_INVALID_ARG;
    config = ksv_json_get(params, "config");
    nfiles = 0;
    for (p = params->child; p != NULL; p = p->next) {
        nfiles += p->keylen > 5 && memcmp(p->key, "file:", 5) == 0;
    }
    if (nfiles > 0 && config == NULL) {
        snprintf(err, errlen, "Load parameter 'config' must be specified "
                 "for model file override");
        return NULL;
    }

    ksv_arena_init(&arena);
    ksv_writer_init(&w);
    if (config->type != KSV_JSON_STRING) {
        snprintf(err, errlen, "failed to load '%s': the 'config' parameter "
                 "must be a string", model);
        goto failed;
    }
    if (ksv_json_parse(config->text, config->len, &arena, &cj, msg,
                          sizeof(msg)) != 0
        || ksv_json_to_pbtxt(cj, &w, msg, sizeof(msg)) != 0)
    {
        snprintf(err, errlen, "failed to load '%s': the 'config' parameter "
                 "is not a model configuration: %s", model, msg);
        goto failed;
    }

    snprintf(root, sizeof(root), "%.200s/loads/%llu", kserve.run_dir,
             (unsigned long long) ++kserve_load_seq);
    snprintf(dir, sizeof(dir), "%.300s/%.255s/", root, model);
    snprintf(path, sizeof(path), "%s/config.pbtxt", dir);
    if (kserve_mkdirs(path) != 0
        || kserve_write_file(path, w.buf, w.len) != 0)
    {
        *code = KSV_ERR_INTERNAL;
        snprintf(err, errlen, "failed to load '%s': cannot write %.300s: %s",
                 model, path, strerror(errno));
        goto failed;
    }

    for (p = params->child; p != NULL; p = p->next) {
        if (p->keylen <= 5 || memcmp(p->key, "file:", 5) != 0) {
            continue;
        }
        if (p->type != KSV_JSON_STRING
            || !kserve_safe_relpath(p->key + 5, p->keylen - 5))
        {
            snprintf(err, errlen, "failed to load '%s': bad file parameter "
                     "'%.*s'", model, (int) (p->keylen < 200 ? p->keylen
                                                             : 200), p->key);
            goto failed;
        }
        bytes = malloc(p->len * 3 / 4 + 3);
        if (bytes == NULL) {
            *code = KSV_ERR_INTERNAL;
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
        n = ksv_base64_decode(p->text, p->len, bytes);
        if (n < 0) {
            free(bytes);
            snprintf(err, errlen, "failed to decode '%.*s': not base64",
                     (int) (p->keylen < 200 ? p->keylen : 200), p->key);
            goto failed;
        }
        snprintf(path, sizeof(path), "%s%.*s", dir, (int) (p->keylen - 5),
                 p->key + 5);
        if (kserve_mkdirs(path) != 0
            || kserve_write_file(path, bytes, (size_t) n) != 0)
        {
            free(bytes);
            *code = KSV_ERR_INTERNAL;
            snprintf(err, errlen, "failed to load '%s': cannot write %.300s: %s",
                     model, path, strerror(errno));
            goto failed;
        }
        free(bytes);
    }

    if (nfiles == 0) {
        /* the config alone: the repository's version directories */
        snprintf(src, sizeof(src), "%s/%s", kserve.repository, model);
        d = opendir(src);
        if (d == NULL) {
            /* NOT_FOUND: "not in this worker's repository" (ksv_merge.h) */
            *code = KSV_ERR_NOT_FOUND;
            snprintf(err, errlen, "failed to load '%s', failed to poll from "
                     "model repository", model);
            goto failed;
        }
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] < '0' || de->d_name[0] > '9') {
                continue;
            }
            snprintf(src, sizeof(src), "%s/%s/%s", kserve.repository, model,
                     de->d_name);
            snprintf(path, sizeof(path), "%s%s", dir, de->d_name);
            if (symlink(src, path) != 0) {
                kserve_warn("cannot link %s to %s: %s", path, src,
                            strerror(errno));
            }
        }
        closedir(d);
    }

    ksv_writer_free(&w);
    ksv_arena_free(&arena);
    return strdup(root);

failed:

    ksv_writer_free(&w);
    ksv_arena_free(&arena);
    return NULL;
}


static void
kserve_on_load(zmq_msg_t *identity, uint64_t id, const char *model,
    const void *body, size_t len)
{
    char                    err[KSERVE_REASON_MAX * 2], out[sizeof(err) + 64];
    char                   *root, path[PATH_MAX];
    ksv_status_t            code;
    ksv_arena_t             arena;
    ksv_jnode_t          *json, *params;
    kserve_model_t         *m;
    kserve_pending_load_t  *p;

    ksv_arena_init(&arena);
    params = NULL;
    root = NULL;

    if (len > 0) {
        if (ksv_json_parse(body, len, &arena, &json, err, sizeof(err))
            != 0)
        {
            snprintf(out, sizeof(out), "failed to parse the request JSON "
                     "buffer: %s", err);
            kserve_server_error(identity, id, KSV_ERR_INVALID_ARG, out);
            goto done;
        }
        params = ksv_json_get(json, "parameters");
        if (params != NULL && params->type != KSV_JSON_OBJECT) {
            kserve_server_error(identity, id, KSV_ERR_INVALID_ARG,
                                "'parameters' must be an object");
            goto done;
        }
    }

    if (params != NULL
        && (ksv_json_get(params, "config") != NULL || params->child != NULL))
    {
        const ksv_jnode_t  *c;
        int                   overrides = 0;

        for (c = params->child; c != NULL; c = c->next) {
            overrides |= (c->keylen == 6 && memcmp(c->key, "config", 6) == 0)
                         || (c->keylen > 5 && memcmp(c->key, "file:", 5) == 0);
        }
        if (overrides) {
            root = kserve_override_dir(model, params, &code, err,
                                       sizeof(err));
            if (root == NULL) {
                kserve_server_error(identity, id, code, err);
                goto done;
            }
        }
    }

    if (root == NULL) {
        snprintf(path, sizeof(path), "%s/%s", kserve.repository, model);
        if (!kserve_dir_exists(path)) {
            snprintf(out, sizeof(out), "failed to load '%s', failed to poll "
                     "from model repository", model);
            kserve_server_error(identity, id, KSV_ERR_NOT_FOUND, out);
            goto done;
        }
    }

    if (kserve_nloads == KSERVE_MAX_PENDING_LOADS) {
        free(root);
        kserve_server_error(identity, id, KSV_ERR_UNAVAILABLE,
                            "too many loads in progress");
        goto done;
    }

    m = kserve_repository_add(&kserve.repo, model);
    if (m == NULL) {
        free(root);
        kserve_server_error(identity, id, KSV_ERR_INTERNAL, "out of memory");
        goto done;
    }

    /* from the load's own directory, or back to the repository's */
    free(m->root);
    free(m->dir);
    m->root = root != NULL ? root : strdup(kserve.repository);
    m->dir = NULL;
    if (m->root != NULL
        && asprintf(&m->dir, "%s/%s", m->root, model) < 0)
    {
        m->dir = NULL;
    }
    if (m->root == NULL || m->dir == NULL) {
        kserve_server_error(identity, id, KSV_ERR_INTERNAL, "out of memory");
        goto done;
    }

    kserve_info("model '%s': load asked%s", model,
                root != NULL ? " (with overrides)" : "");

    if (kserve_apply(m, root != NULL, err, sizeof(err)) != 0) {
        snprintf(out, sizeof(out), "load failed for model '%s': %s\n", model,
                 err);
        kserve_server_error(identity, id, KSV_ERR_INVALID_ARG, out);
        goto done;
    }

    p = &kserve_loads[kserve_nloads++];
    zmq_msg_init(&p->identity);
    zmq_msg_copy(&p->identity, identity);
    p->id = id;
    snprintf(p->model, sizeof(p->model), "%s", model);

    kserve_answer_loads();

done:

    ksv_arena_free(&arena);
}


static void
kserve_on_unload(zmq_msg_t *identity, uint64_t id, const char *model)
{
    kserve_model_t  *m;

    m = kserve_repository_find(&kserve.repo, model, strlen(model));
    if (m != NULL && (m->loaded || m->nversions > 0)) {
        kserve_unload_model(m);
    }
    kserve_server_push_index();
    kserve_reply_empty(identity, id);
}


/*
 * The boolean member `key` of the body's object (under "parameters" when
 * params), as Triton reads it.  Returns 0 (*out set, 0 when absent or no
 * body), or -1 after answering the error.
 */
static int
kserve_body_flag(zmq_msg_t *identity, uint64_t id, const void *body,
    size_t len, int params, const char *key, int *out)
{
    int              rc;
    char             err[256], msg[400];
    ksv_arena_t      arena;
    ksv_jnode_t   *json, *v;

    *out = 0;
    if (len == 0) {
        return 0;
    }

    rc = 0;
    ksv_arena_init(&arena);
    if (ksv_json_parse(body, len, &arena, &json, err, sizeof(err)) != 0) {
        snprintf(msg, sizeof(msg), "failed to parse the request JSON "
                 "buffer: %s", err);
        kserve_server_error(identity, id, KSV_ERR_INVALID_ARG, msg);
        rc = -1;
        goto done;
    }
    v = params ? ksv_json_get(ksv_json_get(json, "parameters"), key)
               : ksv_json_get(json, key);
    if (v == NULL) {
        goto done;
    }
    if (v->type != KSV_JSON_TRUE && v->type != KSV_JSON_FALSE) {
        if (params) {
            snprintf(msg, sizeof(msg), "Unable to parse '%s': attempt to "
                     "access JSON non-boolean as boolean", key);
        } else {
            snprintf(msg, sizeof(msg), "Invalid value for '%s': expected a "
                     "boolean", key);
        }
        kserve_server_error(identity, id, KSV_ERR_INVALID_ARG, msg);
        rc = -1;
        goto done;
    }
    *out = v->type == KSV_JSON_TRUE;

done:

    ksv_arena_free(&arena);
    return rc;
}


void
kserve_lifecycle_request(zmq_msg_t *identity, uint64_t id,
    const ksv_repository_t *req, const void *body, size_t len)
{
    int   flag;
    char  model[256];

    if (req->action == KSV_REPO_INDEX) {
        if (kserve_body_flag(identity, id, body, len, 0, "ready", &flag)
            == 0)
        {
            kserve_on_index(identity, id,
                            flag || (req->flags & KSV_REPO_READY_ONLY));
        }
        return;
    }

    if (req->action == KSV_REPO_UNLOAD
        && kserve_body_flag(identity, id, body, len, 1, "unload_dependents",
                            &flag) != 0)
    {
        return;
    }

    if (kserve.control_mode != KSERVE_CONTROL_EXPLICIT) {
        kserve_server_error(identity, id, KSV_ERR_UNAVAILABLE,
                            KSERVE_NOT_EXPLICIT);
        return;
    }

    if (req->model.len == 0 || req->model.len >= sizeof(model)
        || memchr(req->model.data, '/', req->model.len) != NULL
        || memchr(req->model.data, '\0', req->model.len) != NULL
        || (req->model.len <= 2 && req->model.data[0] == '.'
            && (req->model.len == 1 || req->model.data[1] == '.')))
    {
        kserve_server_error(identity, id, KSV_ERR_INVALID_ARG,
                            "invalid model name");
        return;
    }
    memcpy(model, req->model.data, req->model.len);
    model[req->model.len] = '\0';

    if (req->action == KSV_REPO_LOAD) {
        kserve_on_load(identity, id, model, body, len);
    } else {
        kserve_on_unload(identity, id, model);
    }
}


static void
kserve_rmtree(const char *path)
{
    DIR            *d;
    char            sub[PATH_MAX];
    struct stat     st;
    struct dirent  *de;

    if (lstat(path, &st) != 0) {
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        (void) unlink(path);
        return;
    }
    d = opendir(path);
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        kserve_rmtree(sub);
    }
    if (d != NULL) {
        closedir(d);
    }
    (void) rmdir(path);
}


void
kserve_lifecycle_cleanup(void)
{
    char      path[PATH_MAX];
    uint32_t  i;

    for (i = 0; i < kserve_nloads; i++) {
        zmq_msg_close(&kserve_loads[i].identity);
    }
    kserve_nloads = 0;

    if (kserve.shutting_down) {
        /* load directories, unpacked execution environments */
        snprintf(path, sizeof(path), "%.200s/loads", kserve.run_dir);
        kserve_rmtree(path);
        snprintf(path, sizeof(path), "%.200s/envs", kserve.run_dir);
        kserve_rmtree(path);
    }
}
