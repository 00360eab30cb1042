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
#include "kserve_supervisor.h"
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


/* ---- fingerprints: what changed on disk -------------------------------- */

#define KSERVE_FNV_OFFSET  0xcbf29ce484222325ULL
#define KSERVE_FNV_PRIME   0x100000001b3ULL

static uint64_t
kserve_fnv(uint64_t h, const void *data, size_t len)
{
    size_t          i;
    const uint8_t  *p = data;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= KSERVE_FNV_PRIME;
    }
    return h;
}


/* Names, sizes and mtimes under dir, in directory order sorted away by
 * xor-ing each entry's own hash (order-free), depth-bounded. */
static uint64_t
kserve_dir_fingerprint(const char *dir, int depth)
{
    DIR            *d;
    char            path[PATH_MAX];
    uint64_t        h, e;
    struct stat     st;
    struct dirent  *de;

    h = 0;
    d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0
            || strcmp(de->d_name, "__pycache__") == 0)
        {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0) {
            continue;
        }
        e = kserve_fnv(KSERVE_FNV_OFFSET, de->d_name, strlen(de->d_name));
        if (S_ISDIR(st.st_mode)) {
            if (depth < 8) {
                e ^= kserve_dir_fingerprint(path, depth + 1) * 31;
            }
        } else {
            e = kserve_fnv(e, &st.st_size, sizeof(st.st_size));
            e = kserve_fnv(e, &st.st_mtim, sizeof(st.st_mtim));
            e = kserve_fnv(e, &st.st_ino, sizeof(st.st_ino));
        }
        h ^= e;
    }
    closedir(d);
    return h;
}


uint64_t
kserve_version_fingerprint(kserve_model_t *m, int64_t version,
    uint64_t config_fp)
{
    char  path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%lld", m->dir, (long long) version);
    return kserve_fnv(kserve_dir_fingerprint(path, 0) ^ config_fp, &version,
                      sizeof(version)) | 1;
}


int
kserve_model_read(kserve_model_t *m, ksv_arena_t *arena,
    ksv_model_config_t *config, int64_t **versions, uint32_t *nversions,
    uint64_t *fingerprint, char *err, size_t errlen)
{
    char               path[PATH_MAX], msg[KSERVE_REASON_MAX];
    char              *text;
    size_t             len;
    int64_t           *all;
    uint32_t           nall, i, k;
    uint64_t           cfp;
    kserve_model_t     tmp;
    kserve_warn_ctx_t  wctx;

    memset(config, 0, sizeof(ksv_model_config_t));
    *versions = NULL;
    *nversions = 0;
    err[0] = '\0';
    msg[0] = '\0';

    /* config.pbtxt: optional, as with Triton's auto-complete */
    snprintf(path, sizeof(path), "%s/config.pbtxt", m->dir);
    text = kserve_read_file(path, KSERVE_CONFIG_MAX, &len);
    if (text == NULL && errno != ENOENT) {
        snprintf(msg, sizeof(msg), "cannot read %.300s: %s", path,
                 strerror(errno));
    }
    cfp = kserve_fnv(KSERVE_FNV_OFFSET, text ? text : "", text ? len : 0);

    wctx.model = m->name;
    if (msg[0] == '\0'
        && ksv_pbtxt_parse(text ? text : "", text ? len : 0, path, arena,
                           config, msg, sizeof(msg), kserve_pbtxt_warning,
                           &wctx) != 0)
    {
        /* msg says why */
    } else if (msg[0] == '\0'
               && ksv_pbtxt_defaults(config, m->name, arena, msg, sizeof(msg))
                  != 0)
    {
        /* msg says why */
    }
    free(text);

    if (msg[0] != '\0') {
        /* keep the model visible, by name, with why it cannot load */
        memset(config, 0, sizeof(ksv_model_config_t));
        config->name = ksv_str_c(m->name);
        config->version_policy.kind = KSV_VPOLICY_LATEST;
        config->version_policy.latest_num = 1;
    }

    all = kserve_scan_versions(m->dir, &nall);

    if (msg[0] == '\0' && nall > 0) {
        /* kserve_check_backend works on a model: lend it the config */
        memset(&tmp, 0, sizeof(tmp));
        tmp.dir = m->dir;
        tmp.config = *config;
        kserve_check_backend(&tmp, all[nall - 1]);
        *config = tmp.config;
        snprintf(msg, sizeof(msg), "%s", tmp.error);
    }

    *fingerprint = kserve_fnv(cfp, msg, strlen(msg));

    if (nall > 0) {
        *versions = malloc(nall * sizeof(int64_t));
    }
    for (i = 0, k = 0; i < nall && *versions != NULL; i++) {
        if (!kserve_policy_selects(&config->version_policy, all, nall, i)) {
            continue;
        }
        (*versions)[k++] = all[i];
        *fingerprint = kserve_fnv(*fingerprint, &all[i], sizeof(int64_t));
        *fingerprint ^= kserve_version_fingerprint(m, all[i], cfp) * 7;
    }
    *nversions = k;

    if (config->version_policy.kind == KSV_VPOLICY_SPECIFIC) {
        for (i = 0; i < config->version_policy.nversions; i++) {
            for (k = 0; k < *nversions; k++) {
                if ((*versions)[k] == config->version_policy.versions[i]) {
                    break;
                }
            }
            if (k == *nversions) {
                kserve_warn("model '%s': version %lld in version_policy has "
                            "no directory", m->name,
                            (long long) config->version_policy.versions[i]);
            }
        }
    }

    free(all);

    /* the version fingerprints go with the config text's hash */
    m->config_fp = cfp;

    if (msg[0] != '\0') {
        snprintf(err, errlen, "%s", msg);
        return -1;
    }
    return 0;
}


int
kserve_model_completed(kserve_repository_t *repo, kserve_model_t *m,
    const char *text, size_t len)
{
    char                msg[KSERVE_REASON_MAX];
    uint64_t            fp;
    ksv_arena_t         arena;
    kserve_warn_ctx_t   wctx;
    ksv_model_config_t  config;

    fp = kserve_fnv(KSERVE_FNV_OFFSET, text, len) | 1;
    if (fp == m->completed_fp) {
        return 0;
    }

    ksv_arena_init(&arena);
    wctx.model = m->name;
    if (ksv_pbtxt_parse(text, len, "auto_complete_config", &arena, &config,
                        msg, sizeof(msg), kserve_pbtxt_warning, &wctx) != 0
        || ksv_pbtxt_defaults(&config, m->name, &arena, msg, sizeof(msg))
           != 0)
    {
        kserve_error("model '%s': the configuration its instance completed "
                     "is not usable: %s", m->name, msg);
        ksv_arena_free(&arena);
        return -1;
    }

    ksv_arena_free(&m->arena);
    m->arena = arena;
    m->config = config;
    m->completed_fp = fp;
    repo->generation++;
    kserve_info("model '%s': configuration completed by its model "
                "(auto_complete_config)", m->name);
    return 0;
}


static int
kserve_model_init(kserve_model_t *m, const char *root, const char *name)
{
    size_t  plen;

    memset(m, 0, sizeof(kserve_model_t));
    ksv_arena_init(&m->arena);
    m->config.name = ksv_str_c("");

    m->name = strdup(name);
    m->root = strdup(root);
    plen = strlen(root) + strlen(name) + 2;
    m->dir = malloc(plen);
    if (m->name == NULL || m->root == NULL || m->dir == NULL) {
        return -1;
    }
    snprintf(m->dir, plen, "%s/%s", root, name);
    m->config.name = ksv_str_c(m->name);
    return 0;
}


static int
kserve_cmp_model(const void *a, const void *b)
{
    return strcmp(((const kserve_model_t *) a)->name,
                  ((const kserve_model_t *) b)->name);
}


void
kserve_repository_relink(kserve_repository_t *repo)
{
    uint32_t           i, j, k;
    kserve_model_t    *m;
    kserve_version_t  *v;

    for (i = 0; i < repo->nmodels; i++) {
        m = &repo->models[i];
        for (j = 0; j < m->nversions; j++) {
            v = &m->versions[j];
            v->model = m;
            for (k = 0; k < v->ninstances; k++) {
                v->instances[k].version = v;
            }
            for (k = 0; k < v->nnext; k++) {
                v->next[k].version = v;
            }
        }
    }
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
        if (kserve_model_init(&repo->models[repo->nmodels], root,
                              de->d_name) != 0)
        {
            kserve_error("out of memory");
            break;
        }
        repo->models[repo->nmodels++].on_disk = 1;
    }
    closedir(d);

    if (repo->nmodels > 0) {
        qsort(repo->models, repo->nmodels, sizeof(kserve_model_t),
              kserve_cmp_model);
    }

    return 0;
}


kserve_model_t *
kserve_repository_add(kserve_repository_t *repo, const char *name)
{
    kserve_model_t  *m, *nm;

    m = kserve_repository_find(repo, name, strlen(name));
    if (m != NULL) {
        return m;
    }
    if (repo->nmodels >= KSV_MAX_MODELS) {
        return NULL;
    }

    nm = realloc(repo->models, (repo->nmodels + 1) * sizeof(kserve_model_t));
    if (nm == NULL) {
        return NULL;
    }
    repo->models = nm;
    if (kserve_model_init(&repo->models[repo->nmodels], repo->root, name)
        != 0)
    {
        return NULL;
    }
    repo->nmodels++;
    qsort(repo->models, repo->nmodels, sizeof(kserve_model_t),
          kserve_cmp_model);
    kserve_repository_relink(repo);
    repo->generation++;

    return kserve_repository_find(repo, name, strlen(name));
}


kserve_version_t *
kserve_model_add_version(kserve_repository_t *repo, kserve_model_t *m,
    int64_t version)
{
    uint32_t           i;
    kserve_version_t  *v, *nv;

    v = kserve_model_version(m, version);
    if (v != NULL) {
        return v;
    }
    if (m->nversions >= KSV_MAX_LIST) {
        return NULL;
    }

    nv = realloc(m->versions, (m->nversions + 1) * sizeof(kserve_version_t));
    if (nv == NULL) {
        return NULL;
    }
    m->versions = nv;

    /* ascending: find its place */
    for (i = m->nversions; i > 0 && nv[i - 1].version > version; i--) {
        /* shift below */
    }
    memmove(&nv[i + 1], &nv[i], (m->nversions - i) * sizeof(kserve_version_t));
    m->nversions++;

    v = &nv[i];
    memset(v, 0, sizeof(kserve_version_t));
    v->model = m;
    v->version = version;
    v->state = KSV_VERSION_UNAVAILABLE;
    v->retired = calloc(1, sizeof(ksv_stats_page_t));

    kserve_repository_relink(repo);
    repo->generation++;

    return v->retired != NULL ? v : NULL;
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
        free(m->root);
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
    static const char  *names[] = { "UNAVAILABLE", "LOADING", "READY",
                                    "DRAINING" };

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
