/*
 * kserve-worker: the model repository.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ksv_pbtxt.h"
#include "kserve_log.h"
#include "kserve_repository.h"
#include "kserve_worker.h"


#define KSERVE_CONFIG_MAX  (4 * 1024 * 1024)    /* bytes of config.pbtxt */


typedef struct {
    const char  *model;
} kserve_warn_ctx_t;


static void
kserve_pbtxt_warning(void *ctx, const char *msg)
{
    kserve_warn_ctx_t  *w = ctx;

    kserve_warn("model '%s': %s", w->model, msg);
}


static int
kserve_is_dir(const char *path)
{
    struct stat  st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}


static int
kserve_is_file(const char *path)
{
    struct stat  st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}


/* Reads a whole small file; NULL with errno set. */
static char *
kserve_read_file(const char *path, size_t max, size_t *len)
{
    int          fd;
    char        *buf;
    ssize_t      n;
    size_t       got;
    struct stat  st;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }

    if (fstat(fd, &st) != 0 || (size_t) st.st_size > max) {
        close(fd);
        errno = EFBIG;
        return NULL;
    }

    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return NULL;
    }

    got = 0;
    while (got < (size_t) st.st_size) {
        n = read(fd, buf + got, (size_t) st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t) n;
    }

    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}


static int
kserve_cmp_version(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return x < y ? -1 : x > y;
}


/* Numeric subdirectories of the model directory, ascending. */
static int64_t *
kserve_scan_versions(const char *dir, uint32_t *n)
{
    DIR            *d;
    char           *end, path[PATH_MAX];
    int64_t        *v, *nv;
    uint32_t        cap;
    long long       num;
    struct dirent  *de;

    *n = 0;
    cap = 0;
    v = NULL;

    d = opendir(dir);
    if (d == NULL) {
        return NULL;
    }

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        errno = 0;
        num = strtoll(de->d_name, &end, 10);
        if (*end != '\0' || errno != 0 || num < 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (!kserve_is_dir(path)) {
            continue;
        }
        if (*n >= KSV_MAX_LIST) {
            kserve_warn("%s: more than %d versions, ignoring the rest", dir,
                        KSV_MAX_LIST);
            break;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            nv = realloc(v, cap * sizeof(int64_t));
            if (nv == NULL) {
                break;
            }
            v = nv;
        }
        v[(*n)++] = num;
    }

    closedir(d);
    if (*n > 0) {
        qsort(v, *n, sizeof(int64_t), kserve_cmp_version);
    }
    return v;
}


static int
kserve_policy_selects(const ksv_version_policy_t *vp, const int64_t *all,
    uint32_t nall, uint32_t i)
{
    uint32_t  k;

    switch (vp->kind) {
    case KSV_VPOLICY_ALL:
        return 1;

    case KSV_VPOLICY_SPECIFIC:
        for (k = 0; k < vp->nversions; k++) {
            if (vp->versions[k] == all[i]) {
                return 1;
            }
        }
        return 0;

    default:                    /* latest N: the N highest */
        return nall - i <= (vp->latest_num ? vp->latest_num : 1);
    }
}


/*
 * Decides whether the daemon can run the model: the python or the cuda
 * backend, or (as Triton auto-completes) no backend and no platform but
 * a model.py.  A cuda model's library is checked by its instance, whose
 * READY says what is wrong with it.
 */
static void
kserve_check_backend(kserve_model_t *m, int64_t highest)
{
    char                 path[PATH_MAX];
    ksv_model_config_t  *c = &m->config;

    if (ksv_str_eq(c->backend, "python") || ksv_str_eq(c->backend, "cuda")) {
        return;
    }

    if (c->backend.len == 0 && c->platform.len == 0) {
        snprintf(path, sizeof(path), "%s/%lld/%.*s", m->dir,
                 (long long) highest, (int) c->default_model_filename.len,
                 c->default_model_filename.data);
        if (kserve_is_file(path)) {
            c->backend = ksv_str_lit("python");
            return;
        }
        snprintf(m->error, sizeof(m->error),
                 "no backend or platform in config.pbtxt and no '%.*s' in "
                 "version %lld", (int) c->default_model_filename.len,
                 c->default_model_filename.data, (long long) highest);
        return;
    }

    if (c->backend.len > 0) {
        snprintf(m->error, sizeof(m->error), "backend '%.*s' is not supported",
                 (int) c->backend.len, c->backend.data);
    } else {
        snprintf(m->error, sizeof(m->error),
                 "platform '%.*s' is not supported", (int) c->platform.len,
                 c->platform.data);
    }
}


static void
kserve_model_load(kserve_model_t *m, const char *root, const char *name)
{
    char               path[PATH_MAX], err[KSERVE_REASON_MAX];
    char              *text;
    size_t             len, plen;
    int64_t           *all;
    uint32_t           nall, i, k;
    kserve_version_t  *v;
    kserve_warn_ctx_t  wctx;

    memset(m, 0, sizeof(kserve_model_t));
    ksv_arena_init(&m->arena);

    m->name = strdup(name);
    plen = strlen(root) + strlen(name) + 2;
    m->dir = malloc(plen);
    if (m->name == NULL || m->dir == NULL) {
        snprintf(m->error, sizeof(m->error), "out of memory");
        return;
    }
    snprintf(m->dir, plen, "%s/%s", root, name);

    /* config.pbtxt: optional, as with Triton's auto-complete */
    snprintf(path, sizeof(path), "%s/config.pbtxt", m->dir);
    text = kserve_read_file(path, KSERVE_CONFIG_MAX, &len);
    if (text == NULL && errno != ENOENT) {
        snprintf(m->error, sizeof(m->error), "cannot read %.300s: %s", path,
                 strerror(errno));
    }

    wctx.model = name;
    if (m->error[0] == '\0'
        && ksv_pbtxt_parse(text ? text : "", text ? len : 0, path, &m->arena,
                           &m->config, err, sizeof(err),
                           kserve_pbtxt_warning, &wctx) != 0)
    {
        snprintf(m->error, sizeof(m->error), "%s", err);
    }
    free(text);

    if (m->error[0] == '\0'
        && ksv_pbtxt_defaults(&m->config, name, &m->arena, err, sizeof(err))
           != 0)
    {
        snprintf(m->error, sizeof(m->error), "%s", err);
    }

    if (m->error[0] != '\0') {
        /* keep the model visible, by name, with why it cannot load */
        memset(&m->config, 0, sizeof(ksv_model_config_t));
        m->config.name = ksv_str_c(m->name);
        m->config.version_policy.kind = KSV_VPOLICY_LATEST;
        m->config.version_policy.latest_num = 1;
        kserve_error("model '%s': %s", name, m->error);
    }

    all = kserve_scan_versions(m->dir, &nall);

    if (m->error[0] == '\0' && nall > 0) {
        kserve_check_backend(m, all[nall - 1]);
        if (m->error[0] != '\0') {
            kserve_error("model '%s': %s", name, m->error);
        }
    }

    if (nall > 0) {
        m->versions = calloc(nall, sizeof(kserve_version_t));
    }

    for (i = 0, k = 0; i < nall && m->versions != NULL; i++) {
        if (!kserve_policy_selects(&m->config.version_policy, all, nall, i)) {
            continue;
        }
        v = &m->versions[k++];
        v->model = m;
        v->version = all[i];
        v->supported = m->error[0] == '\0';
        v->state = v->supported ? KSV_VERSION_LOADING
                                : KSV_VERSION_UNAVAILABLE;
        snprintf(v->reason, sizeof(v->reason), "%s", m->error);

        v->retired = calloc(1, sizeof(ksv_stats_page_t));
        if (v->retired == NULL) {
            v->supported = 0;
            v->state = KSV_VERSION_UNAVAILABLE;
            snprintf(v->reason, sizeof(v->reason), "out of memory");
        }
    }
    m->nversions = k;

    if (m->config.version_policy.kind == KSV_VPOLICY_SPECIFIC) {
        for (i = 0; i < m->config.version_policy.nversions; i++) {
            if (kserve_model_version(m, m->config.version_policy.versions[i])
                == NULL)
            {
                kserve_warn("model '%s': version %lld in version_policy has "
                            "no directory", name,
                            (long long) m->config.version_policy.versions[i]);
            }
        }
    }

    if (m->nversions == 0) {
        kserve_warn("model '%s': no version directory to serve", name);
    }

    free(all);
}


static int
kserve_cmp_model(const void *a, const void *b)
{
    return strcmp(((const kserve_model_t *) a)->name,
                  ((const kserve_model_t *) b)->name);
}


int
kserve_repository_load(kserve_repository_t *repo, const char *root)
{
    DIR            *d;
    char            path[PATH_MAX];
    uint32_t        cap;
    kserve_model_t *nm;
    struct dirent  *de;

    memset(repo, 0, sizeof(kserve_repository_t));
    repo->root = root;

    if (getrandom(&repo->generation, sizeof(repo->generation), 0)
        != sizeof(repo->generation))
    {
        repo->generation = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
    }

    d = opendir(root);
    if (d == NULL) {
        kserve_error("cannot open model repository %s: %s", root,
                     strerror(errno));
        return -1;
    }

    cap = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
        if (!kserve_is_dir(path)) {
            continue;
        }
        if (repo->nmodels >= KSV_MAX_MODELS) {
            kserve_warn("more than %d models in %s, ignoring the rest",
                        KSV_MAX_MODELS, root);
            break;
        }
        if (repo->nmodels == cap) {
            cap = cap ? 2 * cap : 16;
            nm = realloc(repo->models, cap * sizeof(kserve_model_t));
            if (nm == NULL) {
                break;
            }
            repo->models = nm;
        }
        kserve_model_load(&repo->models[repo->nmodels++], root, de->d_name);
    }
    closedir(d);

    if (repo->nmodels > 0) {
        qsort(repo->models, repo->nmodels, sizeof(kserve_model_t),
              kserve_cmp_model);
    }

    /* versions point at their model: fix them up after the sort moved
     * the models */
    for (cap = 0; cap < repo->nmodels; cap++) {
        nm = &repo->models[cap];
        for (uint32_t i = 0; i < nm->nversions; i++) {
            nm->versions[i].model = nm;
        }
        kserve_info("model '%s': %u version(s)%s%s", nm->name, nm->nversions,
                    nm->error[0] ? ", unavailable: " : "", nm->error);
    }

    return 0;
}


void
kserve_repository_free(kserve_repository_t *repo)
{
    uint32_t         i, j;
    kserve_model_t  *m;

    for (i = 0; i < repo->nmodels; i++) {
        m = &repo->models[i];
        for (j = 0; j < m->nversions; j++) {
            free(m->versions[j].retired);
        }
        free(m->name);
        free(m->dir);
        free(m->versions);
        ksv_arena_free(&m->arena);
    }
    free(repo->models);
    repo->models = NULL;
    repo->nmodels = 0;
}


kserve_model_t *
kserve_repository_find(kserve_repository_t *repo, const char *name,
    size_t len)
{
    int              c;
    size_t           n;
    uint32_t         lo, hi, mid;
    kserve_model_t  *m;

    lo = 0;
    hi = repo->nmodels;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        m = &repo->models[mid];
        n = strlen(m->name);
        c = memcmp(m->name, name, n < len ? n : len);
        if (c == 0) {
            c = n < len ? -1 : n > len;
        }
        if (c == 0) {
            return m;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}


kserve_version_t *
kserve_model_version(kserve_model_t *model, int64_t version)
{
    uint32_t  i;

    for (i = 0; i < model->nversions; i++) {
        if (model->versions[i].version == version) {
            return &model->versions[i];
        }
    }
    return NULL;
}


kserve_version_t *
kserve_model_default_version(kserve_model_t *model)
{
    uint32_t  i;

    for (i = model->nversions; i > 0; i--) {
        if (model->versions[i - 1].state == KSV_VERSION_READY) {
            return &model->versions[i - 1];
        }
    }
    return model->nversions ? &model->versions[model->nversions - 1] : NULL;
}


void
kserve_repository_touch(kserve_repository_t *repo)
{
    repo->generation++;
}


void
kserve_version_set_state(kserve_repository_t *repo, kserve_version_t *v,
    ksv_version_state_t state, const char *reason)
{
    static const char  *names[] = { "UNAVAILABLE", "LOADING", "READY" };

    if (v->state == state && strcmp(v->reason, reason) == 0) {
        return;
    }

    v->state = (uint8_t) state;
    snprintf(v->reason, sizeof(v->reason), "%s", reason);
    repo->generation++;

    kserve_info("model '%s' version %lld: %s%s%s", v->model->name,
                (long long) v->version, names[state], reason[0] ? ": " : "",
                reason);
}


int
kserve_repository_index(kserve_repository_t *repo, uint64_t known,
    ksv_arena_t *arena, ksv_index_t *out)
{
    uint32_t             i, j;
    kserve_model_t      *m;
    ksv_model_status_t  *ms;

    memset(out, 0, sizeof(ksv_index_t));
    out->generation = repo->generation;

    if (known == repo->generation) {
        return 0;
    }

    out->full = 1;
    out->nmodels = repo->nmodels;
    if (repo->nmodels == 0) {
        return 0;
    }

    out->models = ksv_arena_alloc(arena,
                                  repo->nmodels * sizeof(ksv_model_status_t));
    if (out->models == NULL) {
        return -1;
    }

    for (i = 0; i < repo->nmodels; i++) {
        m = &repo->models[i];
        ms = &out->models[i];
        ms->config = m->config;
        ms->nversions = m->nversions;
        ms->versions = NULL;
        if (m->nversions == 0) {
            continue;
        }
        ms->versions = ksv_arena_alloc(arena,
                                   m->nversions * sizeof(ksv_version_status_t));
        if (ms->versions == NULL) {
            return -1;
        }
        for (j = 0; j < m->nversions; j++) {
            ms->versions[j].version = m->versions[j].version;
            ms->versions[j].state = m->versions[j].state;
            ms->versions[j].reason = ksv_str_c(m->versions[j].reason);
        }
    }

    return 0;
}
