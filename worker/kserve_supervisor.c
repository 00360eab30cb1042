/*
 * kserve-worker: instance processes.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <limits.h>
#include <unistd.h>

#include "kserve_log.h"
#include "kserve_supervisor.h"
#include "kserve_worker.h"


#define KSERVE_ARGV_MAX  40
#define KSERVE_MANIFEST  "instances.tab"


/* A walk over every instance of every version, in repository order:
 * zero it, then call kserve_instance_next() until it returns NULL. */
typedef struct {
    uint32_t  model;
    uint32_t  version;
    uint32_t  set;              /* 0: instances, 1: next */
    uint32_t  instance;
} kserve_instance_iter_t;


/* An instance that left its version's set while ready: it finishes what
 * nginx sent it (SIGUSR1: drain), then exits.  Listed in the index as
 * DRAINING under its model and version until it has gone. */
typedef struct {
    pid_t               pid;
    int                 adopted;
    int                 pidfd;
    int64_t             since_ms;
    int                 stopped;        /* SIGTERM sent after the limit */
    int64_t             version;
    char                model[256];
    char                name[300];
    char                endpoint[320];
    ksv_stats_page_t   *stats;
} kserve_drainer_t;

static kserve_drainer_t  *kserve_drainers;
static uint32_t           kserve_ndrainers;
static char              *kserve_manifest;     /* while starting */


static void kserve_supervisor_update(kserve_version_t *v);
static void kserve_instance_exited(kserve_instance_t *inst, int status,
    int64_t now);
static void kserve_instance_map_stats(kserve_instance_t *inst);
static void kserve_instance_retire(kserve_instance_t *inst);
static void kserve_manifest_write(void);
static char *kserve_manifest_read(void);
static int kserve_adopt(kserve_instance_t *inst, char *manifest);
static void kserve_adopt_failed(kserve_version_t *v, char *manifest);
static void kserve_drainers_check(int64_t now);


static kserve_instance_t *
kserve_instance_next(kserve_instance_iter_t *it)
{
    kserve_model_t    *m;
    kserve_version_t  *v;

    while (it->model < kserve.repo.nmodels) {
        m = &kserve.repo.models[it->model];
        if (it->version == m->nversions) {
            it->model++;
            it->version = 0;
            continue;
        }
        v = &m->versions[it->version];
        if (it->set == 0 && it->instance == v->ninstances) {
            it->set = 1;
            it->instance = 0;
            continue;
        }
        if (it->set == 1 && it->instance == v->nnext) {
            it->version++;
            it->set = 0;
            it->instance = 0;
            continue;
        }
        return it->set == 0 ? &v->instances[it->instance++]
                            : &v->next[it->instance++];
    }
    return NULL;
}


static const char *
kserve_kind_name(uint8_t kind)
{
    switch (kind) {
    case KSV_KIND_GPU:
        return "KIND_GPU";
    case KSV_KIND_MODEL:
        return "KIND_MODEL";
    default:
        return "KIND_CPU";
    }
}


/* Counts the instances a version's instance_group asks for. */
static uint32_t
kserve_instance_count(const ksv_model_config_t *c)
{
    uint32_t                     i, n;
    const ksv_instance_group_t  *g;

    n = 0;
    for (i = 0; i < c->ngroups; i++) {
        g = &c->groups[i];
        if (g->kind == KSV_KIND_GPU && g->ngpus > 0) {
            n += (uint32_t) g->count * g->ngpus;
        } else {
            n += (uint32_t) g->count;
        }
    }
    return n;
}


/*
 * Whether this machine has an NVIDIA GPU (the driver's device nodes).
 * Python models choose their device themselves, so a KIND_GPU instance
 * without one still runs, on CPU, with a warning.
 */
static int
kserve_have_gpu(void)
{
    static int  have = -1;

    if (have < 0) {
        have = access("/dev/nvidia0", F_OK) == 0
               || access("/proc/driver/nvidia/gpus", F_OK) == 0;
    }
    return have;
}


static int
kserve_is_cuda(const kserve_version_t *v)
{
    return ksv_str_eq(v->model->config.backend, "cuda");
}


/* A new set of instances for v, as its model's config asks (malloc'd;
 * *n = 0 and NULL when the config asks for none). */
static kserve_instance_t *
kserve_instance_set(kserve_version_t *v, uint32_t *nset, int in_next)
{
    uint32_t                     i, k, d, n, ndev;
    kserve_instance_t           *set, *inst;
    const ksv_instance_group_t  *g;
    const ksv_model_config_t    *c = &v->model->config;

    *nset = 0;
    n = kserve_instance_count(c);
    if (n == 0) {
        return NULL;
    }

    set = calloc(n, sizeof(kserve_instance_t));
    if (set == NULL) {
        return NULL;
    }

    n = 0;
    for (i = 0; i < c->ngroups; i++) {
        g = &c->groups[i];
        ndev = (g->kind == KSV_KIND_GPU && g->ngpus > 0) ? g->ngpus : 1;

        for (d = 0; d < ndev; d++) {
            for (k = 0; k < (uint32_t) g->count; k++) {
                inst = &set[n];
                inst->version = v;
                inst->index = n;
                inst->in_next = in_next;
                inst->kind = g->kind;
                inst->gpu_asked = g->kind == KSV_KIND_GPU;
                inst->device_id = (g->kind == KSV_KIND_GPU && g->ngpus > 0)
                                  ? g->gpus[d] : 0;
                inst->backoff_ms = KSERVE_BACKOFF_MIN_MS;
                inst->pidfd = -1;
                snprintf(inst->name, sizeof(inst->name), "%s_%u",
                         v->model->name, n);
                snprintf(inst->label, sizeof(inst->label), "%s (version %lld)",
                         inst->name, (long long) v->version);
                if (inst->kind == KSV_KIND_GPU && !kserve_have_gpu()
                    && !kserve_is_cuda(v))
                {
                    kserve_warn("instance %s: KIND_GPU but this machine has "
                                "no GPU; running it on CPU "
                                "(model_instance_kind CPU, "
                                "model_instance_device_id %d)", inst->label,
                                (int) inst->device_id);
                    inst->kind = KSV_KIND_CPU;
                }
                n++;
            }
        }
    }

    for (i = 0; i < n; i++) {
        set[i].count = n;
    }
    *nset = n;
    return set;
}


/*
 * CUDA_VISIBLE_DEVICES for a python KIND_GPU instance: its device id, or
 * the id-th entry of the list the daemon itself was given.
 */
static void
kserve_visible_devices(const kserve_instance_t *inst, char *buf, size_t len)
{
    int          i;
    size_t       n;
    const char  *list, *p, *comma;

    list = getenv("CUDA_VISIBLE_DEVICES");
    if (list != NULL && list[0] != '\0') {
        p = list;
        for (i = 0; p != NULL && i < inst->device_id; i++) {
            comma = strchr(p, ',');
            p = comma != NULL ? comma + 1 : NULL;
        }
        if (p != NULL) {
            comma = strchr(p, ',');
            n = comma != NULL ? (size_t) (comma - p) : strlen(p);
            snprintf(buf, len, "CUDA_VISIBLE_DEVICES=%.*s", (int) n, p);
            return;
        }
        kserve_warn("instance %s: device %d is not in CUDA_VISIBLE_DEVICES "
                    "'%s'", inst->label, (int) inst->device_id, list);
    }
    snprintf(buf, len, "CUDA_VISIBLE_DEVICES=%d", (int) inst->device_id);
}


/* environ with `entry` replacing its variable (malloc'd array). */
static char **
kserve_env_with(char *entry)
{
    size_t        n, k, name;
    char        **env;

    name = (size_t) (strchr(entry, '=') - entry) + 1;
    for (n = 0; environ[n] != NULL; n++) {
        /* count */
    }
    env = malloc((n + 2) * sizeof(char *));
    if (env == NULL) {
        return NULL;
    }
    for (n = 0, k = 0; environ[n] != NULL; n++) {
        if (strncmp(environ[n], entry, name) != 0) {
            env[k++] = environ[n];
        }
    }
    env[k++] = entry;
    env[k] = NULL;
    return env;
}


/*
 * fork + execve.  The child runs only async-signal-safe calls between the
 * two (the daemon has libzmq threads; nothing else is safe after fork):
 * everything it needs is prepared before the fork.
 */
static void
kserve_spawn(kserve_instance_t *inst, int64_t now)
{
    int                i;
    pid_t              pid;
    char               version[32], index[32], device[32], count[32];
    char               grace[32], timeout[32];
    char               errmsg[PATH_MAX + 64], visible[128];
    char              *argv[KSERVE_ARGV_MAX], **envp, *binary;
    size_t             errlen;
    sigset_t           all;
    kserve_version_t  *v = inst->version;

    snprintf(version, sizeof(version), "%lld", (long long) v->version);
    snprintf(index, sizeof(index), "%u", inst->index);
    snprintf(device, sizeof(device), "%d", (int) inst->device_id);
    snprintf(count, sizeof(count), "%u", inst->count);
    snprintf(grace, sizeof(grace), "%lld", (long long) kserve.orphan_grace_s);
    snprintf(timeout, sizeof(timeout), "%llu",
             (unsigned long long) kserve.execute_timeout_ms);

    binary = kserve_is_cuda(v) ? kserve.cuda_instance
                               : kserve.python_instance;
    envp = environ;
    if (inst->gpu_asked && !kserve_is_cuda(v)) {
        kserve_visible_devices(inst, visible, sizeof(visible));
        envp = kserve_env_with(visible);
        if (envp == NULL) {
            envp = environ;
            kserve_error("instance %s: out of memory, CUDA_VISIBLE_DEVICES "
                         "not set", inst->label);
        }
    }

    i = 0;
    argv[i++] = binary;
    argv[i++] = "--connect";
    argv[i++] = kserve.instances_endpoint;
    argv[i++] = "--repository";
    argv[i++] = v->model->root;
    argv[i++] = "--model";
    argv[i++] = v->model->name;
    argv[i++] = "--version";
    argv[i++] = version;
    argv[i++] = "--instance";
    argv[i++] = index;
    argv[i++] = "--kind";
    argv[i++] = (char *) kserve_kind_name(inst->kind);
    argv[i++] = "--device-id";
    argv[i++] = device;
    argv[i++] = "--utils-dir";
    argv[i++] = kserve.python_utils;
    argv[i++] = "--run-dir";
    argv[i++] = kserve.run_dir;
    argv[i++] = "--bind";
    argv[i++] = kserve.instance_bind;
    if (kserve.advertise != NULL) {
        argv[i++] = "--advertise";
        argv[i++] = (char *) kserve.advertise;
    }
    argv[i++] = "--instances";
    argv[i++] = count;
    argv[i++] = "--orphan-grace";
    argv[i++] = grace;
    argv[i++] = "--execute-timeout";
    argv[i++] = timeout;
    argv[i] = NULL;

    errlen = (size_t) snprintf(errmsg, sizeof(errmsg),
                               "kserve-worker: cannot exec %s\n",
                               binary);
    if (errlen >= sizeof(errmsg)) {
        errlen = sizeof(errmsg) - 1;
    }

    inst->started_ms = now;
    inst->init_failed = 0;
    inst->killed[0] = '\0';
    inst->state = KSERVE_INSTANCE_STARTING;

    pid = fork();

    if (pid == 0) {
        /* the child: default signal dispositions come with execv for
         * handled signals; the mask is inherited, so clear it */
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        execve(argv[0], argv, envp);
        if (write(2, errmsg, errlen) < 0) {
            /* nothing left to do */
        }
        _exit(127);
    }

    if (envp != environ) {
        free(envp);
    }

    if (pid < 0) {
        /* treated like an instance that died at once */
        kserve_error("instance %s: fork failed: %s", inst->label,
                     strerror(errno));
        inst->pid = 0;
        inst->failed = 1;
        inst->state = KSERVE_INSTANCE_BACKOFF;
        inst->restart_at_ms = now + inst->backoff_ms;
        snprintf(v->last_failure, sizeof(v->last_failure),
                 "instance %s could not be started: %s", inst->name,
                 strerror(errno));
        return;
    }

    inst->pid = pid;
    snprintf(inst->routing_id, sizeof(inst->routing_id), "i%d", (int) pid);
    kserve_info("instance %s: started pid %d (%s device %d)", inst->label,
                (int) pid, kserve_kind_name(inst->kind),
                (int) inst->device_id);
}


/* ---- statistics pages ------------------------------------------------------ */

static void
kserve_instance_map_stats(kserve_instance_t *inst)
{
    char  path[PATH_MAX + 32];

    if (inst->stats != NULL) {
        return;
    }
    snprintf(path, sizeof(path), "%s/%d.stats", kserve.run_dir,
             (int) inst->pid);
    inst->stats = ksv_stats_map(path, 0);
    if (inst->stats == NULL) {
        kserve_warn("instance %s: no statistics page %s: %s", inst->label,
                    path, strerror(errno));
    }
}


/* An instance is gone: its counts join the version's retired ones and
 * its page goes away. */
static void
kserve_instance_retire(kserve_instance_t *inst)
{
    char              path[PATH_MAX + 32];
    ksv_stats_page_t  page;

    if (inst->stats != NULL) {
        ksv_stats_read(inst->stats, &page);
        if (inst->version->retired != NULL) {
            ksv_stats_add(inst->version->retired, &page);
        }
        ksv_stats_unmap(inst->stats);
        inst->stats = NULL;
    }
    if (inst->pid > 0) {
        snprintf(path, sizeof(path), "%s/%d.stats", kserve.run_dir,
                 (int) inst->pid);
        (void) unlink(path);
    }
}


void
kserve_supervisor_version_stats(kserve_version_t *v, ksv_stats_page_t *out)
{
    uint32_t          i;
    ksv_stats_page_t  page;

    memset(out, 0, sizeof(*out));
    if (v->retired != NULL) {
        ksv_stats_add(out, v->retired);
    }
    for (i = 0; i < v->ninstances; i++) {
        if (v->instances[i].stats != NULL) {
            ksv_stats_read(v->instances[i].stats, &page);
            ksv_stats_add(out, &page);
        }
    }
    for (i = 0; i < v->nnext; i++) {
        if (v->next[i].stats != NULL) {
            ksv_stats_read(v->next[i].stats, &page);
            ksv_stats_add(out, &page);
        }
    }
    for (i = 0; i < kserve_ndrainers; i++) {
        if (kserve_drainers[i].stats != NULL
            && kserve_drainers[i].version == v->version
            && strcmp(kserve_drainers[i].model, v->model->name) == 0)
        {
            ksv_stats_read(kserve_drainers[i].stats, &page);
            ksv_stats_add(out, &page);
        }
    }
}


/* ---- the index ------------------------------------------------------------- */

static int
kserve_drainer_of(const kserve_drainer_t *d, const kserve_version_t *v)
{
    return d->version == v->version && strcmp(d->model, v->model->name) == 0;
}


/* v's instances as nginx sees them: the serving set's ready ones and
 * those that died (until replaced), and its draining ones. */
static int
kserve_version_index(kserve_version_t *v, ksv_arena_t *arena,
    ksv_version_status_t *vs)
{
    uint32_t                k, n;
    kserve_instance_t      *inst;
    kserve_drainer_t       *d;
    ksv_instance_status_t  *is;

    vs->version = v->version;
    vs->state = v->state;
    vs->reason = ksv_str_c(v->reason);
    vs->ninstances = 0;
    vs->instances = NULL;

    n = 0;
    for (k = 0; k < v->ninstances; k++) {
        inst = &v->instances[k];
        n += inst->state == KSERVE_INSTANCE_READY || inst->down_pid != 0;
    }
    for (k = 0; k < kserve_ndrainers; k++) {
        n += kserve_drainer_of(&kserve_drainers[k], v);
    }
    if (n == 0) {
        return 0;
    }
    vs->instances = ksv_arena_alloc(arena, n * sizeof(*is));
    if (vs->instances == NULL) {
        return -1;
    }

    for (k = 0; k < v->ninstances; k++) {
        inst = &v->instances[k];
        is = &vs->instances[vs->ninstances];
        is->name = ksv_str_c(inst->name);
        if (inst->state == KSERVE_INSTANCE_READY) {
            is->endpoint = ksv_str_c(inst->endpoint);
            is->pid = (uint32_t) inst->pid;
            is->state = KSV_VERSION_READY;
            is->reason = ksv_str_c("");
        } else if (inst->down_pid != 0) {
            is->endpoint = ksv_str_c(inst->down_endpoint);
            is->pid = (uint32_t) inst->down_pid;
            is->state = KSV_VERSION_UNAVAILABLE;
            is->reason = ksv_str_c(inst->down_reason);
        } else {
            continue;
        }
        vs->ninstances++;
    }

    for (k = 0; k < kserve_ndrainers; k++) {
        d = &kserve_drainers[k];
        if (!kserve_drainer_of(d, v)) {
            continue;
        }
        is = &vs->instances[vs->ninstances++];
        is->name = ksv_str_c(d->name);
        is->endpoint = ksv_str_c(d->endpoint);
        is->pid = (uint32_t) d->pid;
        is->state = KSV_VERSION_DRAINING;
        is->reason = ksv_str_c("");
    }
    return 0;
}


int
kserve_supervisor_index(uint64_t known, ksv_arena_t *arena, ksv_index_t *out)
{
    uint32_t             i, j, n;
    kserve_model_t      *m;
    ksv_model_status_t  *ms;

    memset(out, 0, sizeof(ksv_index_t));
    out->generation = kserve.repo.generation;
    if (known == kserve.repo.generation) {
        return 0;
    }
    out->full = 1;

    /* models never loaded are not there for nginx: unknown */
    n = 0;
    for (i = 0; i < kserve.repo.nmodels; i++) {
        n += kserve.repo.models[i].nversions > 0;
    }
    if (n == 0) {
        return 0;
    }
    out->models = ksv_arena_alloc(arena, n * sizeof(ksv_model_status_t));
    if (out->models == NULL) {
        return -1;
    }

    for (i = 0; i < kserve.repo.nmodels; i++) {
        m = &kserve.repo.models[i];
        if (m->nversions == 0) {
            continue;
        }
        ms = &out->models[out->nmodels++];
        ms->config = m->config;
        ms->nversions = m->nversions;
        ms->versions = ksv_arena_alloc(arena,
                                   m->nversions * sizeof(ksv_version_status_t));
        if (ms->versions == NULL) {
            return -1;
        }
        for (j = 0; j < m->nversions; j++) {
            if (kserve_version_index(&m->versions[j], arena, &ms->versions[j])
                != 0)
            {
                return -1;
            }
        }
    }
    return 0;
}


/* ---- the manifest and adoption -------------------------------------------- */

/*
 * <run>/instances.tab: one line per ready instance,
 *   pid TAB model TAB version TAB index TAB endpoint
 * rewritten (to a temporary file, then renamed) whenever one becomes
 * ready or goes, so a worker that is killed leaves the truth behind.
 */
static void
kserve_manifest_write(void)
{
    char                     path[PATH_MAX + 32], tmp[PATH_MAX + 64];
    FILE                    *f;
    kserve_instance_t       *inst;
    kserve_instance_iter_t   it = { 0, 0, 0, 0 };

    snprintf(path, sizeof(path), "%s/" KSERVE_MANIFEST, kserve.run_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);

    f = fopen(tmp, "w");
    if (f == NULL) {
        kserve_warn("cannot write %s: %s", tmp, strerror(errno));
        return;
    }
    while ((inst = kserve_instance_next(&it)) != NULL) {
        if (inst->state == KSERVE_INSTANCE_READY && inst->pid > 0
            && !inst->in_next)
        {
            fprintf(f, "%d\t%s\t%lld\t%u\t%s\n", (int) inst->pid,
                    inst->version->model->name,
                    (long long) inst->version->version, inst->index,
                    inst->endpoint);
        }
        /* a version that failed stays failed for an adopting worker,
         * rather than LOADING (not ready) until it fails again */
        if (inst->index == 0 && !inst->in_next
            && inst->version->state == KSV_VERSION_UNAVAILABLE
            && inst->version->supported && !kserve.shutting_down)
        {
            fprintf(f, "failed\t%s\t%lld\t%s\n", inst->version->model->name,
                    (long long) inst->version->version,
                    inst->version->reason);
        }
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        kserve_warn("cannot write %s: %s", path, strerror(errno));
        (void) unlink(tmp);
    }
}


/* The manifest's text (malloc'd), or NULL. */
static char *
kserve_manifest_read(void)
{
    char    path[PATH_MAX + 32], *text;
    long    len;
    FILE   *f;

    snprintf(path, sizeof(path), "%s/" KSERVE_MANIFEST, kserve.run_dir);
    f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    text = NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0
        && len < 16 * 1024 * 1024 && fseek(f, 0, SEEK_SET) == 0
        && (text = malloc((size_t) len + 1)) != NULL)
    {
        if (fread(text, 1, (size_t) len, f) != (size_t) len) {
            free(text);
            text = NULL;
        } else {
            text[len] = '\0';
        }
    }
    fclose(f);
    return text;
}


/* Whether pid runs an instance started for (model, version, index): its
 * command line has "--model M --version V --instance I" in a row. */
static int
kserve_is_instance(pid_t pid, kserve_instance_t *inst)
{
    int      fd;
    char     path[64], buf[8192], want[600];
    size_t   wlen, i;
    ssize_t  n;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n <= 0) {
        return 0;
    }

    wlen = (size_t) snprintf(want, sizeof(want),
                             "--model%c%s%c--version%c%lld%c--instance%c%u",
                             0, inst->version->model->name, 0, 0,
                             (long long) inst->version->version, 0, 0,
                             inst->index) + 1;
    if (wlen > sizeof(want)) {
        return 0;
    }
    for (i = 0; i + wlen <= (size_t) n; i++) {
        if (memcmp(buf + i, want, wlen) == 0) {
            return 1;
        }
    }
    return 0;
}


/* Adopts inst's process from a manifest a previous worker left, when it
 * still runs.  Returns 1 when adopted. */
static int
kserve_adopt(kserve_instance_t *inst, char *manifest)
{
    int          fd;
    char        *line, *next, model[300], endpoint[320];
    long long    version;
    unsigned     index;
    int          pid;

    for (line = manifest; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL) {
            next++;
        }
        if (sscanf(line, "%d\t%299[^\t]\t%lld\t%u\t%319[^\n]", &pid, model,
                   &version, &index, endpoint) != 5
            || strcmp(model, inst->version->model->name) != 0
            || version != inst->version->version || index != inst->index
            || pid <= 0)
        {
            continue;
        }
        if (kill(pid, 0) != 0 || !kserve_is_instance(pid, inst)) {
            kserve_info("instance %s: pid %d of the manifest is gone",
                        inst->label, pid);
            return 0;
        }

        fd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0) {
            kserve_warn("instance %s: pidfd_open(%d): %s; not adopted",
                        inst->label, pid, strerror(errno));
            return 0;
        }

        inst->pid = pid;
        inst->pidfd = fd;
        inst->adopted = 1;
        inst->started_ms = kserve_now_ms();
        inst->state = KSERVE_INSTANCE_READY;
        snprintf(inst->routing_id, sizeof(inst->routing_id), "i%d", pid);
        snprintf(inst->endpoint, sizeof(inst->endpoint), "%s", endpoint);
        kserve_instance_map_stats(inst);
        kserve_info("instance %s: adopted pid %d at %s", inst->label, pid,
                    endpoint);
        return 1;
    }
    return 0;
}


/* A version the previous worker had given up on: its instances start as
 * failed, with the reason, until one of them is ready. */
static void
kserve_adopt_failed(kserve_version_t *v, char *manifest)
{
    char        *line, *next, model[300], reason[KSERVE_REASON_MAX];
    uint32_t     k;
    long long    version;

    for (line = manifest; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL) {
            next++;
        }
        if (sscanf(line, "failed\t%299[^\t]\t%lld\t%511[^\n]", model,
                   &version, reason) != 3
            || strcmp(model, v->model->name) != 0 || version != v->version)
        {
            continue;
        }
        snprintf(v->last_failure, sizeof(v->last_failure), "%s", reason);
        for (k = 0; k < v->ninstances; k++) {
            v->instances[k].failed = 1;
        }
        return;
    }
}


int
kserve_supervisor_pollfds(zmq_pollitem_t *items, int max)
{
    int                      n;
    kserve_instance_t       *inst;
    kserve_instance_iter_t   it = { 0, 0, 0, 0 };

    n = 0;
    while (n < max && (inst = kserve_instance_next(&it)) != NULL) {
        if (inst->adopted && inst->pidfd >= 0) {
            memset(&items[n], 0, sizeof(items[n]));
            items[n].fd = inst->pidfd;
            items[n].events = ZMQ_POLLIN;
            n++;
        }
    }
    return n;
}


void
kserve_supervisor_check_adopted(void)
{
    int                      status;
    struct pollfd            p;
    kserve_instance_t       *inst;
    kserve_instance_iter_t   it = { 0, 0, 0, 0 };

    while ((inst = kserve_instance_next(&it)) != NULL) {
        if (!inst->adopted || inst->pidfd < 0) {
            continue;
        }
        p.fd = inst->pidfd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 0) == 1) {
            /* not our child: its exit status is its reaper's */
            status = -1;
            kserve_instance_exited(inst, status, kserve_now_ms());
        }
    }
}


void
kserve_supervisor_start(void)
{
    kserve_manifest = kserve_manifest_read();
}


void
kserve_supervisor_started(void)
{
    free(kserve_manifest);
    kserve_manifest = NULL;
    kserve_manifest_write();
}


int
kserve_supervisor_manifest_has(const char *model)
{
    int    pid;
    char  *line, *next, name[300];

    for (line = kserve_manifest; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL) {
            next++;
        }
        if (sscanf(line, "%d\t%299[^\t]\t", &pid, name) == 2
            && strcmp(name, model) == 0 && pid > 0 && kill(pid, 0) == 0)
        {
            return 1;
        }
    }
    return 0;
}


/* ---- sets of instances: reloads beside the serving set ------------------ */

/* Stops an instance that serves nobody (starting, waiting to restart, or
 * in a set that never went into the index): at once, and reaped here. */
static void
kserve_instance_discard(kserve_instance_t *inst)
{
    int  status;

    if (inst->pid > 0) {
        kserve_info("instance %s: stopping pid %d", inst->label,
                    (int) inst->pid);
        kill(inst->pid, SIGKILL);
        if (!inst->adopted) {
            while (waitpid(inst->pid, &status, 0) < 0 && errno == EINTR) {
                /* retry */
            }
        }
    }
    kserve_instance_retire(inst);
    if (inst->pidfd >= 0) {
        close(inst->pidfd);
        inst->pidfd = -1;
    }
    inst->last_pid = inst->pid;
    inst->pid = 0;
    inst->state = KSERVE_INSTANCE_STOPPED;
}


/* A ready instance leaves its set: it drains (SIGUSR1), listed as
 * DRAINING until it exits, so what nginx sent it is answered. */
static void
kserve_instance_drain(kserve_instance_t *inst)
{
    kserve_drainer_t  *d, *nd;

    if (inst->state != KSERVE_INSTANCE_READY || inst->pid <= 0) {
        kserve_instance_discard(inst);
        return;
    }

    nd = realloc(kserve_drainers,
                 (kserve_ndrainers + 1) * sizeof(kserve_drainer_t));
    if (nd == NULL) {
        kserve_error("instance %s: out of memory, stopping it without a "
                     "drain", inst->label);
        kill(inst->pid, SIGTERM);
        kserve_instance_discard(inst);
        return;
    }
    kserve_drainers = nd;
    d = &kserve_drainers[kserve_ndrainers++];
    memset(d, 0, sizeof(*d));
    d->pid = inst->pid;
    d->adopted = inst->adopted;
    d->pidfd = inst->pidfd;
    d->since_ms = kserve_now_ms();
    d->version = inst->version->version;
    snprintf(d->model, sizeof(d->model), "%s", inst->version->model->name);
    snprintf(d->name, sizeof(d->name), "%s", inst->name);
    snprintf(d->endpoint, sizeof(d->endpoint), "%s", inst->endpoint);
    d->stats = inst->stats;

    kill(d->pid, SIGUSR1);
    kserve_info("instance %s: pid %d drains: it finishes what it was sent, "
                "then exits", inst->label, (int) d->pid);

    inst->stats = NULL;
    inst->pidfd = -1;
    inst->adopted = 0;
    inst->last_pid = inst->pid;
    inst->pid = 0;
    inst->endpoint[0] = '\0';
    inst->state = KSERVE_INSTANCE_STOPPED;
    kserve_repository_touch(&kserve.repo);
}


static void
kserve_drainer_gone(uint32_t i, const char *how)
{
    char               path[PATH_MAX + 32];
    kserve_model_t    *m;
    kserve_drainer_t  *d = &kserve_drainers[i];
    kserve_version_t  *v;
    ksv_stats_page_t   page;

    kserve_info("instance %s (version %lld): pid %d drained and stopped "
                "(%s)", d->name, (long long) d->version, (int) d->pid, how);

    v = NULL;
    m = kserve_repository_find(&kserve.repo, d->model, strlen(d->model));
    if (m != NULL) {
        v = kserve_model_version(m, d->version);
    }
    if (d->stats != NULL) {
        ksv_stats_read(d->stats, &page);
        if (v != NULL && v->retired != NULL) {
            ksv_stats_add(v->retired, &page);
        }
        ksv_stats_unmap(d->stats);
    }
    snprintf(path, sizeof(path), "%s/%d.stats", kserve.run_dir, (int) d->pid);
    (void) unlink(path);
    if (d->pidfd >= 0) {
        close(d->pidfd);
    }

    memmove(d, d + 1, (kserve_ndrainers - i - 1) * sizeof(*d));
    kserve_ndrainers--;
    kserve_repository_touch(&kserve.repo);
}


/* The drainer behind pid, or -1. */
static int
kserve_drainer_find(pid_t pid)
{
    uint32_t  i;

    for (i = 0; i < kserve_ndrainers; i++) {
        if (kserve_drainers[i].pid == pid) {
            return (int) i;
        }
    }
    return -1;
}


static void
kserve_set_free(kserve_instance_t **set, uint32_t *n, int drain)
{
    uint32_t  i;

    for (i = 0; i < *n; i++) {
        if (drain) {
            kserve_instance_drain(&(*set)[i]);
        } else {
            kserve_instance_discard(&(*set)[i]);
        }
    }
    free(*set);
    *set = NULL;
    *n = 0;
}


int
kserve_supervisor_load(kserve_version_t *v, uint64_t fingerprint)
{
    int64_t   now;
    uint32_t  i, n, ready;

    now = kserve_now_ms();

    ready = 0;
    for (i = 0; i < v->ninstances; i++) {
        ready += v->instances[i].state == KSERVE_INSTANCE_READY;
    }

    /* a set already on its way is replaced by this newer one */
    kserve_set_free(&v->next, &v->nnext, 0);
    v->reload_failure[0] = '\0';

    if (ready > 0) {
        v->next = kserve_instance_set(v, &n, 1);
        if (v->next == NULL) {
            return -1;
        }
        v->nnext = n;
        v->next_fingerprint = fingerprint;
        kserve_info("model '%s' version %lld: %u new instance(s) start "
                    "beside the %u serving", v->model->name,
                    (long long) v->version, n, ready);
        for (i = 0; i < n; i++) {
            kserve_spawn(&v->next[i], now);
        }

    } else {
        kserve_set_free(&v->instances, &v->ninstances, 0);
        v->instances = kserve_instance_set(v, &n, 0);
        if (v->instances == NULL) {
            return -1;
        }
        v->ninstances = n;
        v->fingerprint = fingerprint;
        v->last_failure[0] = '\0';
        if (kserve_manifest != NULL) {
            kserve_adopt_failed(v, kserve_manifest);
        }
        for (i = 0; i < n; i++) {
            if (kserve_manifest == NULL
                || !kserve_adopt(&v->instances[i], kserve_manifest))
            {
                kserve_spawn(&v->instances[i], now);
            }
        }
    }

    kserve_supervisor_update(v);
    kserve_manifest_write();
    return 0;
}


void
kserve_supervisor_unload(kserve_version_t *v, const char *reason)
{
    kserve_set_free(&v->next, &v->nnext, 0);
    kserve_set_free(&v->instances, &v->ninstances, 1);
    v->reload_failure[0] = '\0';
    kserve_version_set_state(&kserve.repo, v, KSV_VERSION_UNAVAILABLE, reason);
    kserve_repository_touch(&kserve.repo);
    kserve_manifest_write();
}


static int
kserve_set_settled(kserve_instance_t *set, uint32_t n)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        if (set[i].state == KSERVE_INSTANCE_STARTING
            || set[i].state == KSERVE_INSTANCE_BACKOFF)
        {
            return 0;
        }
    }
    return 1;
}


int
kserve_supervisor_settled(kserve_version_t *v)
{
    return v->nnext == 0 && kserve_set_settled(v->instances, v->ninstances);
}


int
kserve_supervisor_busy(kserve_version_t *v)
{
    uint32_t  i;

    if (v->ninstances > 0 || v->nnext > 0) {
        return 1;
    }
    for (i = 0; i < kserve_ndrainers; i++) {
        if (kserve_drainer_of(&kserve_drainers[i], v)) {
            return 1;
        }
    }
    return 0;
}


/* The next set is whole: it serves, the old set drains. */
static void
kserve_supervisor_commit(kserve_version_t *v)
{
    uint32_t  i;

    kserve_info("model '%s' version %lld: the new instances are ready; "
                "the old ones drain", v->model->name, (long long) v->version);

    kserve_set_free(&v->instances, &v->ninstances, 1);
    v->instances = v->next;
    v->ninstances = v->nnext;
    v->next = NULL;
    v->nnext = 0;
    for (i = 0; i < v->ninstances; i++) {
        v->instances[i].in_next = 0;
    }
    v->fingerprint = v->next_fingerprint;
    v->last_failure[0] = '\0';
    v->reload_failure[0] = '\0';
    kserve_repository_touch(&kserve.repo);
    kserve_manifest_write();
}


/* Derives the version's state from its instances (see the header); a
 * next set that is whole replaces the serving one, one that cannot load
 * goes, and the serving one stays. */
static void
kserve_supervisor_update(kserve_version_t *v)
{
    uint32_t                  i, ready, failed;
    kserve_instance_state_t   s;

    if (v->nnext > 0) {
        ready = 0;
        failed = 0;
        for (i = 0; i < v->nnext; i++) {
            ready += v->next[i].state == KSERVE_INSTANCE_READY;
            failed += v->next[i].state == KSERVE_INSTANCE_GAVE_UP;
        }
        if (ready == v->nnext) {
            kserve_supervisor_commit(v);

        } else if (failed > 0) {
            kserve_error("model '%s' version %lld: the reload failed, the "
                         "serving instances stay: %s", v->model->name,
                         (long long) v->version, v->reload_failure);
            kserve_set_free(&v->next, &v->nnext, 0);
            kserve_repository_touch(&kserve.repo);
        }
    }

    if (!v->supported || v->ninstances == 0) {
        return;
    }

    ready = 0;
    failed = 0;
    for (i = 0; i < v->ninstances; i++) {
        s = v->instances[i].state;
        if (s == KSERVE_INSTANCE_READY) {
            ready++;
        } else if (v->instances[i].failed) {
            failed++;
        }
    }

    if (ready > 0) {
        kserve_version_set_state(&kserve.repo, v, KSV_VERSION_READY, "");

    } else if (failed == v->ninstances) {
        kserve_version_set_state(&kserve.repo, v, KSV_VERSION_UNAVAILABLE,
                                 v->last_failure[0] ? v->last_failure
                                                    : "no instance is running");
    } else {
        kserve_version_set_state(&kserve.repo, v, KSV_VERSION_LOADING, "");
    }
}


static kserve_instance_t *
kserve_find_pid(pid_t pid, int *gone)
{
    kserve_instance_t       *inst;
    kserve_instance_iter_t   it = { 0, 0, 0, 0 };

    while ((inst = kserve_instance_next(&it)) != NULL) {
        if (inst->pid == pid) {
            *gone = 0;
            return inst;
        }
        if (inst->last_pid == pid) {
            *gone = 1;
            return inst;
        }
    }
    return NULL;
}


kserve_instance_t *
kserve_supervisor_find(const void *routing_id, size_t len, int *gone)
{
    char        buf[24], *end;
    const char *p = routing_id;
    long        pid;

    if (len < 2 || len >= sizeof(buf) || p[0] != 'i') {
        return NULL;
    }
    memcpy(buf, p + 1, len - 1);
    buf[len - 1] = '\0';
    pid = strtol(buf, &end, 10);
    if (*end != '\0' || pid <= 0) {
        return NULL;
    }
    return kserve_find_pid((pid_t) pid, gone);
}


static void
kserve_instance_exited(kserve_instance_t *inst, int status, int64_t now)
{
    char               how[64], what[512], msg[KSERVE_REASON_MAX];
    int                listed;
    char               last_words[KSV_STATS_REASON];
    ksv_stats_page_t   page;
    kserve_version_t  *v = inst->version;

    if (status < 0) {
        snprintf(how, sizeof(how), "status unknown: adopted");
    } else if (WIFSIGNALED(status)) {
        snprintf(how, sizeof(how), "signal %d", WTERMSIG(status));
    } else {
        snprintf(how, sizeof(how), "exit code %d", WEXITSTATUS(status));
    }

    last_words[0] = '\0';
    if (inst->stats != NULL) {
        ksv_stats_read(inst->stats, &page);
        snprintf(last_words, sizeof(last_words), "%s", page.reason);
    }

    if (inst->init_failed) {
        /* the READY ok=0 message already said why; keep it */
        what[0] = '\0';
        msg[0] = '\0';
    } else if (inst->killed[0] != '\0') {
        snprintf(what, sizeof(what), "was killed (%s): %s", how,
                 inst->killed);
        snprintf(msg, sizeof(msg), "instance %s %.190s", inst->name, what);
    } else if (last_words[0] != '\0') {
        snprintf(what, sizeof(what), "%.200s (%s)", last_words, how);
        snprintf(msg, sizeof(msg), "instance %s %.190s", inst->name, what);
    } else {
        snprintf(what, sizeof(what), "exited %s (%s)",
                 inst->state == KSERVE_INSTANCE_STARTING
                 ? "before it was ready" : "unexpectedly", how);
        snprintf(msg, sizeof(msg), "instance %s %.190s", inst->name, what);
    }

    if (kserve.shutting_down) {
        kserve_info("instance %s: pid %d stopped (%s)", inst->label,
                    (int) inst->pid, how);
    } else if (inst->init_failed) {
        kserve_info("instance %s: pid %d gone after its failed "
                    "initialization (%s)", inst->label, (int) inst->pid, how);
    } else if (inst->killed[0] != '\0') {
        /* kserve_supervisor_kill() has said why */
        kserve_info("instance %s: pid %d killed (%s)", inst->label,
                    (int) inst->pid, how);
    } else {
        kserve_warn("instance %s: pid %d %s", inst->label, (int) inst->pid,
                    what);
    }

    /* what nginx tells the clients it had in flight there */
    listed = inst->state == KSERVE_INSTANCE_READY && !inst->in_next;
    inst->attempts = inst->state == KSERVE_INSTANCE_READY ? 1
                                                          : inst->attempts + 1;
    if (listed) {
        inst->down_pid = inst->pid;
        snprintf(inst->down_endpoint, sizeof(inst->down_endpoint), "%s",
                 inst->endpoint);
        snprintf(inst->down_reason, sizeof(inst->down_reason), "%s",
                 last_words[0] ? last_words : what);
    }
    kserve_instance_retire(inst);

    inst->last_pid = inst->pid;
    inst->pid = 0;
    inst->routing_id[0] = '\0';
    inst->endpoint[0] = '\0';
    if (inst->pidfd >= 0) {
        close(inst->pidfd);
        inst->pidfd = -1;
    }
    inst->adopted = 0;
    if (listed) {
        /* the index shows it down now (one that never was ready was
         * never listed: nothing changed) */
        kserve_repository_touch(&kserve.repo);
    }
    kserve_manifest_write();

    if (kserve.shutting_down) {
        inst->state = KSERVE_INSTANCE_STOPPED;
        return;
    }

    if (msg[0] != '\0') {
        if (inst->in_next) {
            snprintf(v->reload_failure, sizeof(v->reload_failure), "%s", msg);
        } else {
            snprintf(v->last_failure, sizeof(v->last_failure), "%s", msg);
        }
    }

    inst->failed = 1;
    if (inst->attempts >= KSERVE_LOAD_ATTEMPTS) {
        kserve_error("instance %s: %d starts in a row failed: not restarting "
                     "it until the model is loaded again", inst->label,
                     inst->attempts);
        inst->state = KSERVE_INSTANCE_GAVE_UP;
        kserve_supervisor_update(v);
        kserve_manifest_write();
        return;
    }

    /* an instance that stayed up long enough was healthy: start over */
    if (now - inst->started_ms >= KSERVE_BACKOFF_RESET_MS) {
        inst->backoff_ms = KSERVE_BACKOFF_MIN_MS;
    }

    inst->failed = 1;
    inst->state = KSERVE_INSTANCE_BACKOFF;
    inst->restart_at_ms = now + inst->backoff_ms;
    kserve_info("instance %s: restarting in %lld ms", inst->label,
                (long long) inst->backoff_ms);

    inst->backoff_ms *= 2;
    if (inst->backoff_ms > KSERVE_BACKOFF_MAX_MS) {
        inst->backoff_ms = KSERVE_BACKOFF_MAX_MS;
    }

    kserve_supervisor_update(v);
    kserve_manifest_write();            /* with the version's new state */
}


void
kserve_supervisor_reap(void)
{
    int                 status, gone, i;
    pid_t               pid;
    int64_t             now;
    kserve_instance_t  *inst;

    now = kserve_now_ms();

    for ( ;; ) {
        pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) {
            continue;
        }
        if (pid <= 0) {
            return;
        }

        inst = kserve_find_pid(pid, &gone);
        if (inst == NULL && (i = kserve_drainer_find(pid)) >= 0) {
            kserve_drainer_gone((uint32_t) i,
                                WIFSIGNALED(status) ? "killed by a signal"
                                : WEXITSTATUS(status) == 0 ? "exit code 0"
                                : "exited with an error");
            continue;
        }
        if (inst == NULL || gone) {
            kserve_debug("reaped unknown child %d", (int) pid);
            continue;
        }
        kserve_instance_exited(inst, status, now);
    }
}


/* Drainers that were adopted (not our children: their pidfds) and those
 * past their limit. */
static void
kserve_drainers_check(int64_t now)
{
    uint32_t           i;
    struct pollfd      p;
    kserve_drainer_t  *d;

    for (i = 0; i < kserve_ndrainers; i++) {
        d = &kserve_drainers[i];
        if (d->adopted && d->pidfd >= 0) {
            p.fd = d->pidfd;
            p.events = POLLIN;
            p.revents = 0;
            if (poll(&p, 1, 0) == 1) {
                kserve_drainer_gone(i--, "status unknown: adopted");
                continue;
            }
        }
        if (!d->stopped && now - d->since_ms >= KSERVE_DRAIN_MAX_MS) {
            kserve_warn("instance %s (version %lld): pid %d still drains "
                        "after %d ms: stopping it", d->name,
                        (long long) d->version, (int) d->pid,
                        KSERVE_DRAIN_MAX_MS);
            kill(d->pid, SIGTERM);
            d->stopped = 1;
        }
    }
}


int64_t
kserve_supervisor_tick(int64_t now)
{
    int64_t                  next, wait;
    kserve_instance_t       *inst;
    kserve_instance_iter_t   it = { 0, 0, 0, 0 };

    next = -1;
    if (kserve.shutting_down) {
        return next;
    }

    kserve_drainers_check(now);

    while ((inst = kserve_instance_next(&it)) != NULL) {
        if (inst->state != KSERVE_INSTANCE_BACKOFF) {
            continue;
        }
        if (inst->restart_at_ms <= now) {
            kserve_spawn(inst, now);
            continue;
        }
        wait = inst->restart_at_ms - now;
        if (next < 0 || wait < next) {
            next = wait;
        }
    }

    return next;
}


static void
kserve_init_failure(kserve_instance_t *inst, const ksv_ready_t *m)
{
    char              *to;
    kserve_version_t  *v = inst->version;

    to = inst->in_next ? v->reload_failure : v->last_failure;
    snprintf(to, KSERVE_REASON_MAX, "failed to load '%s' version %lld: %.*s",
             v->model->name, (long long) v->version, (int) m->message.len,
             m->message.data);
    kserve_error("instance %s: %s", inst->label, to);
}


void
kserve_supervisor_late_ready(kserve_instance_t *inst, const ksv_ready_t *m)
{
    if (m->ok || inst->state == KSERVE_INSTANCE_READY) {
        return;                 /* a newer process speaks for it now */
    }

    kserve_init_failure(inst, m);
    kserve_supervisor_update(inst->version);
}


void
kserve_supervisor_ready(kserve_instance_t *inst, const ksv_ready_t *m)
{
    kserve_version_t  *v = inst->version;

    if (inst->state != KSERVE_INSTANCE_STARTING) {
        kserve_warn("instance %s: unexpected READY, ignored", inst->label);
        return;
    }

    if (!ksv_str_eq(m->model_name, v->model->name)
        || m->version != v->version || m->instance != inst->index)
    {
        kserve_error("instance %s: READY for '%.*s' version %lld instance "
                     "%u does not match what it was started for",
                     inst->label, (int) m->model_name.len,
                     m->model_name.data, (long long) m->version,
                     m->instance);
        kserve_supervisor_kill(inst, "mismatched READY");
        return;
    }

    if (!m->ok) {
        /* initialize() raised: keep its message as the version's reason
         * and let the process go; the reaper schedules the retry */
        kserve_init_failure(inst, m);
        inst->init_failed = 1;
        inst->failed = 1;
        if (inst->pid > 0) {
            kill(inst->pid, SIGKILL);
        }
        kserve_supervisor_update(v);
        return;
    }

    if (m->endpoint.len == 0 || m->endpoint.len >= sizeof(inst->endpoint)) {
        kserve_supervisor_kill(inst, "READY without a usable endpoint");
        return;
    }
    memcpy(inst->endpoint, m->endpoint.data, m->endpoint.len);
    inst->endpoint[m->endpoint.len] = '\0';
    kserve_instance_map_stats(inst);

    if (m->message.len > 0) {
        /* the model completed its configuration (auto_complete_config) */
        (void) kserve_model_completed(&kserve.repo, v->model,
                                      m->message.data, m->message.len);
    }

    kserve_info("instance %s: ready at %s", inst->label, inst->endpoint);
    inst->failed = 0;
    inst->attempts = 0;
    inst->state = KSERVE_INSTANCE_READY;
    inst->down_pid = 0;
    inst->down_endpoint[0] = '\0';
    inst->down_reason[0] = '\0';
    kserve_repository_touch(&kserve.repo);
    kserve_supervisor_update(v);
    kserve_manifest_write();
}


void
kserve_supervisor_kill(kserve_instance_t *inst, const char *why)
{
    kserve_error("instance %s: killing pid %d: %s", inst->label,
                 (int) inst->pid, why);

    if (inst->pid > 0) {
        snprintf(inst->killed, sizeof(inst->killed), "%s", why);
        kill(inst->pid, SIGKILL);
    }

}


/* Sends sig to every instance process; instances waiting for a restart
 * stop waiting. */
static void
kserve_supervisor_signal(int sig)
{
    uint32_t                 i;
    kserve_instance_t       *inst;
    kserve_instance_iter_t   it = { 0, 0, 0, 0 };

    while ((inst = kserve_instance_next(&it)) != NULL) {
        if (inst->pid > 0) {
            kill(inst->pid, sig);
        } else {
            inst->state = KSERVE_INSTANCE_STOPPED;
        }
    }
    for (i = 0; i < kserve_ndrainers; i++) {
        kill(kserve_drainers[i].pid, sig);
    }
}


void
kserve_supervisor_terminate_all(void)
{
    kserve_supervisor_signal(SIGTERM);
}


int
kserve_supervisor_alive(void)
{
    int                      n;
    kserve_instance_t       *inst;
    kserve_instance_iter_t   it = { 0, 0, 0, 0 };

    n = (int) kserve_ndrainers;
    while ((inst = kserve_instance_next(&it)) != NULL) {
        n += inst->pid > 0;
    }
    return n;
}


void
kserve_supervisor_kill_all(void)
{
    int                      status;
    kserve_instance_t       *inst;
    kserve_instance_iter_t   it = { 0, 0, 0, 0 };

    while ((inst = kserve_instance_next(&it)) != NULL) {
        if (inst->pid <= 0) {
            continue;
        }
        kserve_warn("instance %s: pid %d did not stop in time, killing it",
                    inst->label, (int) inst->pid);
        kill(inst->pid, SIGKILL);
        if (inst->adopted) {
            status = -1;
        } else {
            while (waitpid(inst->pid, &status, 0) < 0 && errno == EINTR) {
                /* retry */
            }
        }
        kserve_instance_exited(inst, status, kserve_now_ms());
    }
    while (kserve_ndrainers > 0) {
        kill(kserve_drainers[0].pid, SIGKILL);
        if (!kserve_drainers[0].adopted) {
            while (waitpid(kserve_drainers[0].pid, &status, 0) < 0
                   && errno == EINTR)
            {
                /* retry */
            }
        }
        kserve_drainer_gone(0, "killed at exit");
    }
}


void
kserve_supervisor_free(void)
{
    uint32_t           i, j, k;
    kserve_model_t    *m;
    kserve_version_t  *v;

    for (i = 0; i < kserve.repo.nmodels; i++) {
        m = &kserve.repo.models[i];
        for (j = 0; j < m->nversions; j++) {
            v = &m->versions[j];
            for (k = 0; k < v->ninstances; k++) {
                ksv_stats_unmap(v->instances[k].stats);
                if (v->instances[k].pidfd >= 0) {
                    close(v->instances[k].pidfd);
                }
            }
            for (k = 0; k < v->nnext; k++) {
                ksv_stats_unmap(v->next[k].stats);
                if (v->next[k].pidfd >= 0) {
                    close(v->next[k].pidfd);
                }
            }
            free(v->instances);
            v->instances = NULL;
            v->ninstances = 0;
            free(v->next);
            v->next = NULL;
            v->nnext = 0;
        }
    }
}
