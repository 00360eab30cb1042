/*
 * ngx_kserve: what every instance process shares (see ksv_instance.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "ksv_instance.h"
#include "ksv_logset.h"
#include "ksv_shm_map.h"
#include "ksv_json.h"
#include "ksv_pbtxt.h"
#include "ksv_proto.h"


#define KSV_CONFIG_MAX  (16 * 1024 * 1024)


volatile sig_atomic_t  ksv_instance_terminate;
volatile sig_atomic_t  ksv_instance_drain_asked;


static void
ksv_instance_on_signal(int signo)
{
    if (signo == SIGUSR1) {
        ksv_instance_drain_asked = 1;
        return;
    }
    ksv_instance_terminate = 1;
}


static void
ksv_instance_usage(const char *prog, int need_utils_dir)
{
    fprintf(stderr,
        "usage: %s --connect ENDPOINT --repository DIR\n"
        "         --model NAME --version V --instance N --run-dir DIR\n"
        "         [--bind ipc|tcp://IFACE:LOW-HIGH] [--advertise HOST]\n"
        "         [--instances N] [--orphan-grace SECS]\n"
        "         [--execute-timeout MS]\n"
        "         [--kind KIND_CPU|KIND_GPU] [--device-id D] %s\n",
        prog, need_utils_dir ? "--utils-dir DIR" : "[--utils-dir DIR]");
    exit(2);
}


void
ksv_instance_parse_args(int argc, char **argv, const char *prog,
    int need_utils_dir, ksv_instance_opts_t *o)
{
    int    c;
    long   num;
    char  *end;

    static const struct option  longopts[] = {
        { "connect",    required_argument, NULL, 'c' },
        { "repository", required_argument, NULL, 'r' },
        { "model",      required_argument, NULL, 'm' },
        { "version",    required_argument, NULL, 'v' },
        { "instance",   required_argument, NULL, 'i' },
        { "kind",       required_argument, NULL, 'k' },
        { "device-id",  required_argument, NULL, 'd' },
        { "utils-dir",  required_argument, NULL, 'u' },
        { "run-dir",    required_argument, NULL, 'R' },
        { "bind",       required_argument, NULL, 'b' },
        { "advertise",  required_argument, NULL, 'a' },
        { "instances",  required_argument, NULL, 'n' },
        { "orphan-grace", required_argument, NULL, 'g' },
        { "execute-timeout", required_argument, NULL, 'e' },
        { "help",       no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(o, 0, sizeof(*o));
    o->prog = prog;
    o->instance = -1;
    o->kind = "CPU";
    o->device_id = "0";
    o->bind = "ipc";
    o->ninstances = 1;
    o->orphan_grace_s = 30;
    o->execute_timeout_ms = 60000;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->connect = optarg; break;
        case 'r': o->repository = optarg; break;
        case 'm': o->model = optarg; break;
        case 'v': o->version = optarg; break;
        case 'd': o->device_id = optarg; break;
        case 'u': o->utils_dir = optarg; break;
        case 'R': o->run_dir = optarg; break;
        case 'b': o->bind = optarg; break;
        case 'a': o->advertise = optarg; break;
        case 'n':
        case 'g':
        case 'e':
            errno = 0;
            num = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || num < 0 || num > INT32_MAX) {
                ksv_instance_usage(prog, need_utils_dir);
            }
            if (c == 'n') {
                o->ninstances = num > 0 ? num : 1;
            } else if (c == 'g') {
                o->orphan_grace_s = num;
            } else {
                o->execute_timeout_ms = num;
            }
            break;
        case 'i':
            errno = 0;
            o->instance = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || o->instance < 0
                || o->instance > INT32_MAX)
            {
                ksv_instance_usage(prog, need_utils_dir);
            }
            break;
        case 'k':
            /* Triton's KIND_GPU is "GPU" in args['model_instance_kind'] */
            o->kind = strncmp(optarg, "KIND_", 5) == 0 ? optarg + 5 : optarg;
            if (strcmp(o->kind, "AUTO") == 0) {
                o->kind = "CPU";
            }
            if (strcmp(o->kind, "CPU") != 0 && strcmp(o->kind, "GPU") != 0
                && strcmp(o->kind, "MODEL") != 0)
            {
                ksv_instance_usage(prog, need_utils_dir);
            }
            break;
        default:
            ksv_instance_usage(prog, need_utils_dir);
        }
    }

    if (optind != argc || o->connect == NULL || o->repository == NULL
        || o->model == NULL || o->version == NULL || o->instance < 0
        || (need_utils_dir && o->utils_dir == NULL)
        || (o->run_dir == NULL && strcmp(o->bind, "ipc") == 0)
        || strchr(o->model, '/') != NULL || strchr(o->version, '/') != NULL)
    {
        ksv_instance_usage(prog, need_utils_dir);
    }

    /* the worker's log settings page: the backend's logger reads it
     * (common/ksv_logset.h); set before any thread or interpreter */
    if (o->run_dir != NULL) {
        char  page[4200];

        snprintf(page, sizeof(page), "%s/" KSV_LOG_PAGE_FILE, o->run_dir);
        (void) setenv(KSV_LOG_PAGE_ENV, page, 1);
    }
}


void
ksv_instance_signals(const ksv_instance_opts_t *o)
{
    struct sigaction  sa;

    /* no PR_SET_PDEATHSIG: the data plane outlives the control plane
     * (an orphan notices on its own, see ksv_instance_orphan_check) */
    (void) o;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ksv_instance_on_signal;  /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    signal(SIGPIPE, SIG_IGN);
}


/* ---- configuration ---------------------------------------------------------- */

typedef struct {
    const char  *prog;
    const char  *model;
} ksv_instance_warn_ctx_t;


static void
ksv_instance_pbtxt_warn(void *ctx, const char *msg)
{
    ksv_instance_warn_ctx_t  *w = ctx;

    fprintf(stderr, "%s: %s: %s\n", w->prog, w->model, msg);
}


static int
ksv_instance_load_config(const ksv_instance_opts_t *o, ksv_arena_t *arena,
    ksv_model_config_t *c, char **err)
{
    int                       rc;
    char                     *path, *text, msg[1024];
    long                      len;
    FILE                     *f;
    ksv_instance_warn_ctx_t   wctx;

    if (asprintf(&path, "%s/%s/config.pbtxt", o->repository, o->model) < 0) {
        *err = strdup("out of memory");
        return -1;
    }

    text = NULL;
    errno = 0;
    f = fopen(path, "rb");
    if (f == NULL
        || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0
        || len > KSV_CONFIG_MAX || fseek(f, 0, SEEK_SET) != 0
        || (text = malloc((size_t) len + 1)) == NULL
        || fread(text, 1, (size_t) len, f) != (size_t) len)
    {
        rc = asprintf(err, "cannot read %s: %s", path,
                      errno ? strerror(errno) : "too large");
        if (rc < 0) {
            *err = NULL;
        }
        if (f != NULL) {
            fclose(f);
        }
        free(text);
        free(path);
        return -1;
    }
    fclose(f);

    wctx.prog = o->prog;
    wctx.model = o->model;
    rc = ksv_pbtxt_parse(text, (size_t) len, path, arena, c, msg, sizeof(msg),
                         ksv_instance_pbtxt_warn, &wctx);
    if (rc == 0) {
        rc = ksv_pbtxt_defaults(c, o->model, arena, msg, sizeof(msg));
    }
    free(text);
    free(path);

    if (rc != 0) {
        *err = strdup(msg);
        return -1;
    }
    return 0;
}


/*
 * Triton names instances "<group name>_<index within the group>", group
 * names defaulting to "<model>_<group index>" (e.g. "simple_0_0").  The
 * daemon numbers instances across groups in config order, so --instance
 * is mapped back onto (group, index) here.
 */
static char *
ksv_instance_name(const ksv_model_config_t *c, const ksv_instance_opts_t *o)
{
    char      *name;
    long       n = o->instance;
    uint32_t   g;

    for (g = 0; g < c->ngroups; g++) {
        if (n < c->groups[g].count) {
            if (c->groups[g].name.len > 0) {
                if (asprintf(&name, "%.*s_%ld", (int) c->groups[g].name.len,
                             c->groups[g].name.data, n) < 0)
                {
                    return NULL;
                }
            } else if (asprintf(&name, "%s_%u_%ld", o->model, g, n) < 0) {
                return NULL;
            }
            return name;
        }
        n -= c->groups[g].count;
    }

    if (asprintf(&name, "%s_%ld", o->model, o->instance) < 0) {
        return NULL;
    }
    return name;
}


static int ksv_instance_load_labels(ksv_instance_model_t *m, char **err);


int
ksv_instance_load_model(const ksv_instance_opts_t *o, ksv_arena_t *arena,
    ksv_instance_model_t *m, char **err)
{
    char          *abs;
    size_t         len;
    ksv_writer_t   w;

    memset(m, 0, sizeof(*m));

    if (ksv_instance_load_config(o, arena, &m->config, err) != 0) {
        return -1;
    }

    ksv_writer_init(&w);
    ksv_model_config_to_json(&w, &m->config);
    ksv_put_u8(&w, '\0');
    m->instance_name = ksv_instance_name(&m->config, o);
    if (w.failed || m->instance_name == NULL
        || asprintf(&m->model_dir, "%s/%s", o->repository, o->model) < 0)
    {
        ksv_writer_free(&w);
        m->model_dir = NULL;
        *err = strdup("out of memory");
        return -1;
    }
    m->config_json = (char *) ksv_writer_detach(&w, &len);

    abs = realpath(m->model_dir, NULL);
    if (abs != NULL) {
        free(m->model_dir);
        m->model_dir = abs;
    }
    return ksv_instance_load_labels(m, err);
}


/* Each output's label_filename (relative to the model's directory), as
 * Triton loads them at model load: a missing file fails the load. */
static int
ksv_instance_load_labels(ksv_instance_model_t *m, char **err)
{
    char                    msg[512], *path;
    uint32_t                i;
    const ksv_io_config_t  *out;

    if (m->config.noutputs == 0) {
        return 0;
    }
    m->labels = calloc(m->config.noutputs, sizeof(ksv_labels_t));
    if (m->labels == NULL) {
        *err = strdup("out of memory");
        return -1;
    }

    for (i = 0; i < m->config.noutputs; i++) {
        out = &m->config.outputs[i];
        if (out->label_filename.len == 0) {
            continue;
        }
        if (asprintf(&path, "%s/%.*s", m->model_dir,
                     (int) out->label_filename.len,
                     out->label_filename.data) < 0)
        {
            *err = strdup("out of memory");
            return -1;
        }
        if (ksv_labels_load(path, &m->labels[i], msg, sizeof(msg)) != 0) {
            free(path);
            *err = strdup(msg);
            return -1;
        }
        free(path);
    }
    return 0;
}


void
ksv_instance_model_free(ksv_instance_model_t *m)
{
    uint32_t  i;

    if (m->labels != NULL) {
        for (i = 0; i < m->config.noutputs; i++) {
            ksv_labels_free(&m->labels[i]);
        }
        free(m->labels);
        m->labels = NULL;
    }
    free(m->config_json);
    free(m->instance_name);
    free(m->model_dir);
    m->config_json = NULL;
    m->instance_name = NULL;
    m->model_dir = NULL;
}


/* ---- the sockets and the page --------------------------------------------- */

static ksv_instance_t  *ksv_instance_current;


/* Binds the data socket: ipc://<run>/<pid>.sock, or the first free port
 * of tcp://IFACE:LOW-HIGH, advertised as tcp://<advertise>:<port>. */
static int
ksv_instance_bind(ksv_instance_t *inst)
{
    int                         zero = 0, one = 1;
    char                        iface[256], bound[320], *colon, *end;
    size_t                      len;
    long                        low, high, port;
    const char                 *host;
    const ksv_instance_opts_t  *o = inst->opts;

    /* the scheduler bounds the queue, not libzmq; a restarted nginx
     * worker reusing a routing id takes its connection over */
    if (zmq_setsockopt(inst->data, ZMQ_SNDHWM, &zero, sizeof(zero)) != 0
        || zmq_setsockopt(inst->data, ZMQ_RCVHWM, &zero, sizeof(zero)) != 0
        || zmq_setsockopt(inst->data, ZMQ_ROUTER_HANDOVER, &one, sizeof(one))
           != 0)
    {
        return -1;
    }

    if (strcmp(o->bind, "ipc") == 0) {
        snprintf(inst->endpoint, sizeof(inst->endpoint), "%s/%ld.sock",
                 o->run_dir, (long) getpid());
        (void) unlink(inst->endpoint);          /* a pid used before */
        snprintf(inst->endpoint, sizeof(inst->endpoint), "ipc://%s/%ld.sock",
                 o->run_dir, (long) getpid());
        return zmq_bind(inst->data, inst->endpoint);
    }

    /* tcp://IFACE:LOW-HIGH */
    if (strncmp(o->bind, "tcp://", 6) != 0
        || (colon = strrchr(o->bind, ':')) == NULL || colon < o->bind + 6
        || (size_t) (colon - o->bind - 6) >= sizeof(iface))
    {
        errno = EINVAL;
        return -1;
    }
    memcpy(iface, o->bind + 6, colon - o->bind - 6);
    iface[colon - o->bind - 6] = '\0';
    host = o->advertise != NULL ? o->advertise : iface;

    if (strcmp(colon + 1, "*") == 0) {
        /* any free port: ask libzmq which one it took */
        if (zmq_bind(inst->data, o->bind) != 0) {
            return -1;
        }
        len = sizeof(bound);
        if (zmq_getsockopt(inst->data, ZMQ_LAST_ENDPOINT, bound, &len) != 0
            || (colon = strrchr(bound, ':')) == NULL)
        {
            return -1;
        }
        snprintf(inst->endpoint, sizeof(inst->endpoint), "tcp://%s%s", host,
                 colon);
        return 0;
    }

    low = strtol(colon + 1, &end, 10);
    high = *end == '-' ? strtol(end + 1, &end, 10) : low;
    if (*end != '\0' || low < 1 || high > 65535 || low > high) {
        errno = EINVAL;
        return -1;
    }
    for (port = low; port <= high; port++) {
        snprintf(inst->endpoint, sizeof(inst->endpoint), "tcp://%s:%ld",
                 iface, port);
        if (zmq_bind(inst->data, inst->endpoint) == 0) {
            snprintf(inst->endpoint, sizeof(inst->endpoint), "tcp://%s:%ld",
                     host, port);
            return 0;
        }
        if (errno != EADDRINUSE) {
            return -1;
        }
    }
    errno = EADDRINUSE;
    return -1;
}


ksv_instance_t *
ksv_instance_open(const ksv_instance_opts_t *o)
{
    int              linger = KSV_INSTANCE_LINGER_MS;
    char             id[32], path[PATH_MAX];
    const char      *what;
    ksv_instance_t  *inst;

    inst = calloc(1, sizeof(ksv_instance_t));
    if (inst == NULL) {
        fprintf(stderr, "%s: out of memory\n", o->prog);
        return NULL;
    }
    inst->opts = o;
    inst->lock_fd = -1;
    ksv_timers_init(&inst->timers);

    what = "zmq_ctx_new";
    inst->zctx = zmq_ctx_new();
    if (inst->zctx == NULL) {
        goto failed;
    }

    what = o->connect;
    inst->control = zmq_socket(inst->zctx, ZMQ_DEALER);
    snprintf(id, sizeof(id), "i%ld", (long) getpid());
    if (inst->control == NULL
        || zmq_setsockopt(inst->control, ZMQ_ROUTING_ID, id, strlen(id)) != 0
        || zmq_setsockopt(inst->control, ZMQ_LINGER, &linger, sizeof(linger))
           != 0
        || zmq_connect(inst->control, o->connect) != 0)
    {
        goto failed;
    }

    what = o->bind;
    inst->data = zmq_socket(inst->zctx, ZMQ_ROUTER);
    if (inst->data == NULL
        || zmq_setsockopt(inst->data, ZMQ_LINGER, &linger, sizeof(linger))
           != 0
        || ksv_instance_bind(inst) != 0)
    {
        goto failed;
    }

    if (o->run_dir != NULL) {
        snprintf(inst->stats_path, sizeof(inst->stats_path), "%s/%ld.stats",
                 o->run_dir, (long) getpid());
        what = inst->stats_path;
        inst->stats = ksv_stats_map(inst->stats_path, 1);
        if (inst->stats == NULL) {
            goto failed;
        }
        snprintf(path, sizeof(path), "%s/worker.lock", o->run_dir);
        inst->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
    }

    return inst;

failed:

    fprintf(stderr, "%s: %s: %s\n", o->prog, what, zmq_strerror(errno));
    ksv_instance_close(inst);
    return NULL;
}


void
ksv_instance_close(ksv_instance_t *inst)
{
    if (inst == NULL) {
        return;
    }
    if (inst->control != NULL) {
        zmq_close(inst->control);
    }
    if (inst->data != NULL) {
        zmq_close(inst->data);
    }
    if (inst->zctx != NULL) {
        zmq_ctx_term(inst->zctx);
    }
    if (strncmp(inst->endpoint, "ipc://", 6) == 0) {
        (void) unlink(inst->endpoint + 6);
    }
    ksv_stats_unmap(inst->stats);
    if (inst->stats_path[0] != '\0' && inst->lock_fd >= 0
        && flock(inst->lock_fd, LOCK_SH | LOCK_NB) == 0)
    {
        /* no worker to read our page one last time */
        (void) unlink(inst->stats_path);
    }
    if (inst->lock_fd >= 0) {
        close(inst->lock_fd);
    }
    ksv_timers_free(&inst->timers);
    free(inst);
}


int
ksv_instance_send_ready(ksv_instance_t *inst, int ok, const char *message)
{
    ksv_ready_t                 ready;
    ksv_writer_t                w;
    ksv_frames_t                v;
    const ksv_instance_opts_t  *o = inst->opts;

    memset(&ready, 0, sizeof(ready));
    ready.model_name = ksv_str_c(o->model);
    ready.version = strtoll(o->version, NULL, 10);
    ready.instance = (uint32_t) o->instance;
    ready.ok = (uint8_t) ok;
    ready.message = ksv_str_c(message != NULL ? message : "");
    ready.endpoint = ksv_str_c(inst->endpoint);

    ksv_writer_init(&w);
    ksv_encode_ready(&w, &ready);
    ksv_frames_init(&v);
    if (ksv_frames_push_writer(&v, &w) != 0
        || ksv_frames_send(inst->control, &v, 0) != 0)
    {
        ksv_frames_free(&v);
        return -1;
    }
    ksv_frames_free(&v);
    return 0;
}


void
ksv_instance_load_failed(ksv_instance_t *inst, const char *err)
{
    if (err == NULL) {
        err = "out of memory";
    }
    fprintf(stderr, "%s: %s: %s\n", inst->opts->prog, inst->opts->model, err);
    (void) ksv_instance_send_ready(inst, 0, err);
}


/* ---- the worker's lock: orphans ------------------------------------------ */

static void
ksv_instance_orphan_check(ksv_timer_t *t)
{
    uint64_t         now;
    ksv_instance_t  *inst = t->data;

    now = ksv_timer_now();

    if (flock(inst->lock_fd, LOCK_SH | LOCK_NB) == 0) {
        /* nobody holds it: the worker is gone */
        (void) flock(inst->lock_fd, LOCK_UN);
        if (inst->orphaned_ns == 0) {
            inst->orphaned_ns = now;
            fprintf(stderr, "%s: %s: the worker is gone; serving on, and "
                    "exiting if it is not back within %ld s\n",
                    inst->opts->prog, inst->sched.instance_name,
                    inst->opts->orphan_grace_s);
        } else if (now - inst->orphaned_ns
                   >= (uint64_t) inst->opts->orphan_grace_s * 1000000000ULL)
        {
            inst->draining = 1;
        }
    } else if (inst->orphaned_ns != 0) {
        inst->orphaned_ns = 0;
        fprintf(stderr, "%s: %s: the worker is back\n", inst->opts->prog,
                inst->sched.instance_name);
    }

    if (!inst->draining) {
        (void) ksv_timer_add(&inst->timers, t,
                             now + KSV_INSTANCE_ORPHAN_MS * 1000000ULL);
    }
}


/* ---- the executor: the thread that runs the model ------------------------- */

/*
 * Two threads share the scheduler under one mutex.  The scheduler thread
 * owns the wait: it sleeps in ppoll on both sockets and the timer heap,
 * and whenever it wakes it receives, expires, cancels and, when the
 * executor is idle, decides the next batch and hands it over.  The
 * executor is the process's main thread (the one the backend
 * initialized, where Python wants its model to run): it runs a batch
 * without the mutex, then takes it to answer the batch's clients itself,
 * read what arrived meanwhile and decide the next batch, so a busy model
 * goes from batch to batch without waking the other thread.  It only
 * waits (on a condition variable) when nothing is due, and then tells
 * the scheduler thread through an eventfd, since its sends may have
 * swallowed the sockets' readiness and its batcher may have set a timer.
 */

typedef enum {
    KSV_EXEC_IDLE = 0,
    KSV_EXEC_READY,                     /* a batch waits for the executor */
    KSV_EXEC_RUNNING,
    KSV_EXEC_STOP
} ksv_exec_state_e;

typedef struct {
    pthread_mutex_t   lock;             /* the scheduler, sockets, timers */
    pthread_cond_t    cond;
    ksv_exec_state_e  state;
    ksv_frames_t      in;               /* the batch handed over */
    int               wake_fd;          /* eventfd: executor -> scheduler */
} ksv_exec_t;

static ksv_exec_t  ksv_exec = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, KSV_EXEC_IDLE,
    { NULL, 0, 0 }, -1
};


static int ksv_instance_drain(ksv_instance_t *inst, ksv_frames_t *msg);
static void ksv_instance_control(ksv_instance_t *inst, ksv_frames_t *msg);


/* Under the lock: the next batch into `in`, with its watchdog set.
 * Returns 1 when there is one. */
static int
ksv_instance_next(ksv_instance_t *inst, ksv_frames_t *in)
{
    int       rc;
    uint64_t  deadline;

    if (ksv_instance_terminate) {
        return 0;
    }
    rc = ksv_sched_next_batch(&inst->sched, in, &deadline);
    if (rc <= 0) {
        if (rc < 0) {
            fprintf(stderr, "%s: out of memory\n", inst->opts->prog);
        }
        return 0;
    }
    inst->batch_started_ns = ksv_timer_now();
    if (deadline != 0) {
        (void) ksv_timer_add(&inst->timers, &inst->watchdog, deadline);
    }
    return 1;
}


/* Executor side: runs batches until STOP.  Returns s->stop's status. */
static int
ksv_exec_loop(ksv_instance_t *inst, const ksv_instance_server_t *s)
{
    int           rc, stop, more;
    uint64_t      one = 1;
    ksv_frames_t  in, out, msg, tmp;

    stop = 0;
    ksv_frames_init(&in);
    ksv_frames_init(&out);
    ksv_frames_init(&msg);

    for ( ;; ) {
        if (s->idle != NULL) {
            s->idle(s->data, 1);        /* Python: the GIL goes */
        }
        pthread_mutex_lock(&ksv_exec.lock);
        while (ksv_exec.state != KSV_EXEC_READY
               && ksv_exec.state != KSV_EXEC_STOP)
        {
            pthread_cond_wait(&ksv_exec.cond, &ksv_exec.lock);
        }
        more = ksv_exec.state == KSV_EXEC_READY;
        if (more) {
            tmp = ksv_exec.in;
            ksv_exec.in = in;
            in = tmp;
            ksv_exec.state = KSV_EXEC_RUNNING;
        }
        pthread_mutex_unlock(&ksv_exec.lock);
        if (s->idle != NULL) {
            s->idle(s->data, 0);
        }
        if (!more) {
            break;
        }

        while (more) {
            rc = s->run(s->data, &in, &out);
            ksv_frames_clear(&in);

            pthread_mutex_lock(&ksv_exec.lock);
            ksv_timer_del(&inst->timers, &inst->watchdog);
            ksv_sched_complete(&inst->sched, &out, rc);

            /* what came while the model ran, then straight on */
            ksv_instance_control(inst, &msg);
            if (ksv_instance_drain(inst, &msg) != 0) {
                ksv_instance_terminate = 1;
            }
            if (s->stop != NULL && (stop = s->stop(s->data)) != 0) {
                ksv_instance_terminate = 1;
            }
            more = ksv_instance_next(inst, &in);
            if (!more && ksv_exec.state == KSV_EXEC_RUNNING) {
                ksv_exec.state = KSV_EXEC_IDLE;
            }
            pthread_mutex_unlock(&ksv_exec.lock);
        }

        /* the scheduler thread: look again (timers, a swallowed wake-up) */
        if (write(ksv_exec.wake_fd, &one, sizeof(one)) < 0) {
            /* the counter is far from full */
        }
        if (stop != 0) {
            break;
        }
    }

    ksv_frames_free(&in);
    ksv_frames_free(&out);
    ksv_frames_free(&msg);
    return stop;
}


/* ---- the watchdog: a batch past its deadline ------------------------------ */

/*
 * The executor is inside the model when it matters, so the scheduler
 * thread watches: past the running batch's deadline it answers the
 * batch's clients with why, writes the reason into the statistics page
 * (the worker reports it as the cause of death), lets the answers leave
 * and kills the process; the supervisor starts a fresh instance.
 */
static void
ksv_instance_hung(ksv_timer_t *t)
{
    char             why[KSV_STATS_REASON];
    uint64_t         ms;
    ksv_instance_t  *inst = t->data;

    ms = (ksv_timer_now() - inst->batch_started_ns) / 1000000;
    snprintf(why, sizeof(why), "did not finish a batch of %u request(s) "
             "within %llu ms (its deadline + %d ms grace): killed as hung",
             inst->sched.nrunning, (unsigned long long) ms,
             KSV_EXECUTE_GRACE_MS);
    fprintf(stderr, "%s: %s: %s\n", inst->opts->prog,
            inst->sched.instance_name, why);

    if (inst->stats != NULL) {
        ksv_stats_set_reason(inst->stats, why);
    }
    ksv_sched_fail_running(&inst->sched, KSV_ERR_UNAVAILABLE, why);

    /* the answers are in libzmq's queues: closing with linger sends them */
    zmq_close(inst->data);
    zmq_close(inst->control);
    inst->data = NULL;
    inst->control = NULL;
    zmq_ctx_term(inst->zctx);
    kill(getpid(), SIGKILL);
}


/* ---- the scheduler thread ---------------------------------------------------- */

/* Moves every message waiting on the data socket into the scheduler.
 * Returns -1 when the socket broke. */
static int
ksv_instance_drain(ksv_instance_t *inst, ksv_frames_t *msg)
{
    int  truncated;

    for ( ;; ) {
        if (ksv_frames_recv(inst->data, msg, ZMQ_DONTWAIT,
                            KSV_MAX_TENSORS + 2, &truncated) != 0)
        {
            ksv_frames_clear(msg);
            return errno == EAGAIN ? 0 : -1;
        }
        inst->last_rx_ns = ksv_timer_now();
        if (truncated) {
            ksv_frames_clear(msg);      /* more inputs than any request */
            continue;
        }
        ksv_sched_receive(&inst->sched, msg);
    }
}


/* Drops whatever the worker sends on the control socket (nothing yet). */
static void
ksv_instance_control(ksv_instance_t *inst, ksv_frames_t *msg)
{
    while (ksv_frames_recv(inst->control, msg, ZMQ_DONTWAIT, 16, NULL) == 0) {
        ksv_frames_clear(msg);
    }
    ksv_frames_clear(msg);
}


static int
ksv_instance_pending(void *sock)
{
    int     events = 0;
    size_t  len = sizeof(events);

    if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) != 0) {
        return 1;               /* let the recv say what is wrong */
    }
    return (events & ZMQ_POLLIN) != 0;
}


/*
 * Waits for a message on either socket, the executor or the next timer
 * (bounded, so SIGTERM is seen).  Called with the lock held: the sockets
 * are looked at under it (the executor may be using them), and only the
 * ppoll itself runs without it.
 */
static int
ksv_instance_wait(ksv_instance_t *inst)
{
    int              rc;
    int              fd;
    size_t           len;
    uint64_t         ns;
    struct pollfd    fds[3];
    struct timespec  ts;

    if (ksv_instance_pending(inst->data) || ksv_instance_pending(inst->control))
    {
        return 1;
    }

    ns = ksv_timers_next(&inst->timers, ksv_timer_now());
    if (ns > KSV_INSTANCE_POLL_MS * 1000000ULL) {
        ns = KSV_INSTANCE_POLL_MS * 1000000ULL;
    }
    if (ns == 0) {
        return 0;
    }
    ts.tv_sec = (time_t) (ns / 1000000000ULL);
    ts.tv_nsec = (long) (ns % 1000000000ULL);

    /* ZMQ_FD only says "look at ZMQ_EVENTS", which was just done */
    len = sizeof(fd);
    zmq_getsockopt(inst->data, ZMQ_FD, &fd, &len);
    fds[0].fd = fd;
    len = sizeof(fd);
    zmq_getsockopt(inst->control, ZMQ_FD, &fd, &len);
    fds[1].fd = fd;
    fds[2].fd = ksv_exec.wake_fd;
    fds[0].events = fds[1].events = fds[2].events = POLLIN;
    fds[0].revents = fds[1].revents = fds[2].revents = 0;

    pthread_mutex_unlock(&ksv_exec.lock);
    rc = ppoll(fds, 3, &ts, NULL);
    pthread_mutex_lock(&ksv_exec.lock);
    return rc;
}


/* After SIGUSR1: whether nothing is left to do, and nothing has arrived
 * for a while (nginx may still have sent something before it read the
 * index that lists this instance as draining). */
static int
ksv_instance_drained(ksv_instance_t *inst)
{
    uint64_t  now, quiet;

    if (!ksv_instance_drain_asked) {
        return 0;
    }
    now = ksv_timer_now();
    if (inst->drain_since_ns == 0) {
        inst->drain_since_ns = now;
        fprintf(stderr, "%s: %s: draining: serving what it was sent, then "
                "exiting\n", inst->opts->prog, inst->sched.instance_name);
    }
    quiet = KSV_INSTANCE_DRAIN_QUIET_MS * 1000000ULL;
    if (inst->sched.queued != 0 || now - inst->drain_since_ns < quiet
        || now - inst->last_rx_ns < quiet)
    {
        return 0;
    }
    fprintf(stderr, "%s: %s: drained: exiting\n", inst->opts->prog,
            inst->sched.instance_name);
    return 1;
}


static void *
ksv_instance_scheduler(void *arg)
{
    uint64_t         n;
    ksv_frames_t     msg, in;
    ksv_instance_t  *inst = arg;

    ksv_frames_init(&msg);
    ksv_frames_init(&in);

    pthread_mutex_lock(&ksv_exec.lock);

    /* after SIGTERM: no new batch, but the running one is seen through,
     * watchdog included */
    for ( ;; ) {
        if (ksv_instance_terminate && ksv_exec.state == KSV_EXEC_IDLE) {
            break;
        }
        if (read(ksv_exec.wake_fd, &n, sizeof(n)) < 0) {
            /* EAGAIN: the executor did not call */
        }
        ksv_instance_control(inst, &msg);
        if (ksv_instance_drain(inst, &msg) != 0) {
            fprintf(stderr, "%s: zmq_msg_recv: %s\n", inst->opts->prog,
                    zmq_strerror(errno));
            inst->status = 1;
            ksv_instance_terminate = 1;
            continue;
        }
        ksv_timers_run(&inst->timers, ksv_timer_now());

        if (ksv_exec.state == KSV_EXEC_IDLE) {
            if (ksv_instance_next(inst, &in)) {
                ksv_frames_t  tmp = ksv_exec.in;

                ksv_exec.in = in;
                in = tmp;
                ksv_exec.state = KSV_EXEC_READY;
                pthread_cond_signal(&ksv_exec.cond);
                continue;
            }
            if (inst->draining && inst->sched.queued == 0) {
                fprintf(stderr, "%s: %s: the worker did not come back "
                        "within %ld s: exiting\n", inst->opts->prog,
                        inst->sched.instance_name,
                        inst->opts->orphan_grace_s);
                break;
            }
            if (ksv_instance_drained(inst)) {
                break;
            }
        }

        if (ksv_instance_wait(inst) < 0 && errno != EINTR) {
            fprintf(stderr, "%s: poll: %s\n", inst->opts->prog,
                    strerror(errno));
            inst->status = 1;
            ksv_instance_terminate = 1;
        }
    }

    ksv_exec.state = KSV_EXEC_STOP;
    pthread_cond_signal(&ksv_exec.cond);
    ksv_sched_free(&inst->sched, "the instance is shutting down");
    pthread_mutex_unlock(&ksv_exec.lock);

    ksv_frames_free(&msg);
    ksv_frames_free(&in);
    return NULL;
}


int
ksv_instance_serve(ksv_instance_t *inst, const ksv_instance_model_t *m,
    const ksv_instance_server_t *s)
{
    int                         rc;
    pthread_t                   scheduler;
    const ksv_instance_opts_t  *o = inst->opts;

    inst->model = m;
    inst->sched.config = &m->config;
    inst->sched.model_name = o->model;
    inst->sched.model_version = o->version;
    inst->sched.instance_name = m->instance_name;
    inst->sched.socket = inst->data;
    inst->sched.timers = &inst->timers;
    inst->sched.stats = inst->stats;
    inst->sched.ninstances = (uint32_t) o->ninstances;
    inst->sched.execute_timeout_ns = (uint64_t) o->execute_timeout_ms
                                     * 1000000ULL;
    if (ksv_sched_init(&inst->sched) != 0) {
        fprintf(stderr, "%s: out of memory\n", o->prog);
        return 1;
    }

    ksv_exec.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ksv_exec.wake_fd < 0) {
        fprintf(stderr, "%s: eventfd: %s\n", o->prog, strerror(errno));
        return 1;
    }

    inst->watchdog.handler = ksv_instance_hung;
    inst->watchdog.data = inst;
    if (inst->lock_fd >= 0) {
        inst->orphan_timer.handler = ksv_instance_orphan_check;
        inst->orphan_timer.data = inst;
        (void) ksv_timer_add(&inst->timers, &inst->orphan_timer,
                             ksv_timer_now()
                             + KSV_INSTANCE_ORPHAN_MS * 1000000ULL);
    }

    ksv_instance_current = inst;
    inst->status = 0;

    /* the sockets belong to the scheduler thread from here on */
    if (pthread_create(&scheduler, NULL, ksv_instance_scheduler, inst) != 0) {
        fprintf(stderr, "%s: pthread_create: %s\n", o->prog, strerror(errno));
        return 1;
    }

    rc = ksv_exec_loop(inst, s);
    pthread_join(scheduler, NULL);

    ksv_instance_current = NULL;
    close(ksv_exec.wake_fd);
    ksv_exec.wake_fd = -1;
    return rc != 0 ? rc : inst->status;
}


int
ksv_instance_is_cancelled(uint64_t id)
{
    ksv_instance_t  *inst = ksv_instance_current;

    if (inst == NULL) {
        return 0;
    }
    return ksv_sched_is_cancelled(&inst->sched, id);
}


/* ---- EXECUTE and EXECUTE_REPLY ------------------------------------------ */

int
ksv_instance_read_execute(const ksv_frames_t *in, const char *prog,
    const char *instance_name, uint64_t *batch_id, uint32_t *count)
{
    ksv_reader_t  rd;
    ksv_prefix_t  prefix;

    memset(&prefix, 0, sizeof(prefix));
    ksv_reader_init(&rd, zmq_msg_data(&in->msgs[0]),
                    zmq_msg_size(&in->msgs[0]));
    if (ksv_read_prefix(&rd, &prefix) != 0
        || prefix.kind != KSV_MSG_EXECUTE
        || ksv_decode_execute(&rd, count) != 0)
    {
        fprintf(stderr, "%s: %s: ignored a message that is not a valid "
                "EXECUTE (kind %u, %zu frames)\n", prog, instance_name,
                prefix.kind, in->n);
        return -1;
    }
    *batch_id = prefix.id;
    return 0;
}


const char *
ksv_instance_next_request(ksv_frames_t *in, size_t *idx, ksv_alloc_t *alloc,
    uint64_t *id, ksv_infer_t *infer, zmq_msg_t **frames)
{
    ksv_reader_t  rd;
    ksv_prefix_t  prefix;

    if (*idx >= in->n) {
        return "malformed EXECUTE: fewer frames than requests";
    }

    ksv_reader_init(&rd, zmq_msg_data(&in->msgs[*idx]),
                    zmq_msg_size(&in->msgs[*idx]));
    memset(&prefix, 0, sizeof(prefix));
    if (ksv_read_prefix(&rd, &prefix) != 0
        || prefix.kind != KSV_MSG_INFER
        || ksv_decode_infer(&rd, alloc, infer) != 0)
    {
        *id = prefix.id;
        *idx = in->n;
        return "malformed INFER header in EXECUTE";
    }
    *id = prefix.id;

    if (in->n - *idx - 1 < infer->ninputs) {
        *idx = in->n;
        return "malformed EXECUTE: missing input frames";
    }

    *frames = &in->msgs[*idx + 1];
    *idx += 1 + infer->ninputs;
    return NULL;
}


int
ksv_instance_output_wanted(const ksv_infer_t *in, ksv_str_t name)
{
    uint32_t  i;

    if (in->noutputs == 0) {
        return 1;
    }
    for (i = 0; i < in->noutputs; i++) {
        if (in->outputs[i].name.len == name.len
            && memcmp(in->outputs[i].name.data, name.data, name.len) == 0)
        {
            return 1;
        }
    }
    return 0;
}


int
ksv_instance_push_error(ksv_frames_t *reply, uint64_t id, ksv_status_t code,
    const char *msg)
{
    ksv_writer_t  w;

    ksv_writer_init(&w);
    ksv_encode_error(&w, id, code,
                     ksv_str_c(msg != NULL ? msg : "out of memory"));
    return ksv_frames_push_writer(reply, &w);
}


/* The class_count the request asked of output `name`, 0 for none. */
static uint32_t
ksv_instance_class_count(const ksv_infer_t *req, ksv_str_t name)
{
    uint32_t  i;

    for (i = 0; i < req->noutputs; i++) {
        if (req->outputs[i].name.len == name.len
            && memcmp(req->outputs[i].name.data, name.data, name.len) == 0)
        {
            return req->outputs[i].class_count;
        }
    }
    return 0;
}


/* The labels of the model's output `name`, NULL when it has none. */
static const ksv_labels_t *
ksv_instance_labels(ksv_str_t name)
{
    uint32_t                     i;
    const ksv_instance_model_t  *m;

    m = ksv_instance_current != NULL ? ksv_instance_current->model : NULL;
    if (m == NULL || m->labels == NULL) {
        return NULL;
    }
    for (i = 0; i < m->config.noutputs; i++) {
        if (m->config.outputs[i].name.len == name.len
            && memcmp(m->config.outputs[i].name.data, name.data, name.len)
               == 0)
        {
            return m->labels[i].n > 0 ? &m->labels[i] : NULL;
        }
    }
    return NULL;
}


/* Replaces output j by its classification: *t and frame j. */
static int
ksv_instance_classify(ksv_tensor_t *t, zmq_msg_t *frame, uint32_t k,
    char *err, size_t errlen)
{
    int            batched;
    size_t         len;
    uint8_t       *bytes;
    ksv_tensor_t   res;
    ksv_writer_t   w;

    batched = ksv_instance_current != NULL
              && ksv_instance_current->model != NULL
              && ksv_instance_current->model->config.max_batch_size > 0;

    ksv_writer_init(&w);
    if (ksv_classify(t, zmq_msg_data(frame), k, batched,
                     ksv_instance_labels(t->name), &w, &res, err, errlen)
        != 0)
    {
        ksv_writer_free(&w);
        return -1;
    }

    bytes = ksv_writer_detach(&w, &len);
    zmq_msg_close(frame);
    if (zmq_msg_init_data(frame, bytes, len, ksv_writer_free_cb, NULL) != 0) {
        free(bytes);
        zmq_msg_init(frame);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *t = res;
    return 0;
}


/* The request's shared memory ref for output `name`, or NULL. */
static const ksv_shm_ref_t *
ksv_instance_output_shm(const ksv_infer_t *in, ksv_str_t name)
{
    uint32_t  k;

    for (k = 0; in->nshm > 0 && k < in->noutputs; k++) {
        if (in->outputs[k].name.len == name.len
            && memcmp(in->outputs[k].name.data, name.data, name.len) == 0)
        {
            return ksv_shm_find(in, KSV_SHM_OUTPUT, k);
        }
    }
    return NULL;
}


int
ksv_instance_push_infer_reply(ksv_frames_t *reply, uint64_t id,
    const ksv_infer_t *req, const ksv_infer_reply_t *ir, zmq_msg_t *frames)
{
    char                  err[512];
    uint32_t              j, k, nshm, *shm;
    zmq_msg_t            *msg;
    ksv_status_t          code;
    ksv_writer_t          w;
    ksv_tensor_t         *outs;
    ksv_infer_reply_t     r;
    const ksv_shm_ref_t  *ref;

    r = *ir;

    /* outputs asked to classify: their classification instead */
    outs = NULL;
    for (j = 0; req != NULL && j < ir->noutputs; j++) {
        k = ksv_instance_class_count(req, ir->outputs[j].name);
        if (k == 0) {
            continue;
        }
        if (outs == NULL) {
            outs = malloc(ir->noutputs * sizeof(ksv_tensor_t));
            if (outs == NULL) {
                return -1;
            }
            memcpy(outs, ir->outputs, ir->noutputs * sizeof(ksv_tensor_t));
            r.outputs = outs;
        }
        if (ksv_instance_classify(&outs[j], &frames[j], k, err, sizeof(err))
            != 0)
        {
            free(outs);
            return ksv_instance_push_error(reply, id, KSV_ERR_INVALID_ARG,
                                           err);
        }
    }

    /* outputs asked for in shared memory: written there, sent empty */
    nshm = 0;
    shm = NULL;
    if (req != NULL && req->nshm > 0 && ir->noutputs > 0) {
        shm = malloc(ir->noutputs * sizeof(uint32_t));
        if (shm == NULL) {
            free(outs);
            return -1;
        }
        for (j = 0; j < ir->noutputs; j++) {
            ref = ksv_instance_output_shm(req, ir->outputs[j].name);
            if (ref == NULL) {
                continue;
            }
            if (ksv_shm_write_output(ref, ir->outputs[j].name,
                                     zmq_msg_data(&frames[j]),
                                     zmq_msg_size(&frames[j]), &code, err,
                                     sizeof(err))
                != 0)
            {
                free(shm);
                free(outs);
                return ksv_instance_push_error(reply, id, code, err);
            }
            shm[nshm++] = j;
        }
    }

    r.nshm = nshm;
    r.shm = shm;

    ksv_writer_init(&w);
    ksv_encode_infer_reply(&w, id, &r);
    free(shm);
    free(outs);
    if (ksv_frames_push_writer(reply, &w) != 0) {
        return -1;
    }
    for (j = 0; j < ir->noutputs; j++) {
        msg = ksv_frames_push(reply);
        if (msg == NULL) {
            return -1;
        }
        if (nshm > 0 && ksv_instance_output_shm(req, ir->outputs[j].name)
                        != NULL)
        {
            continue;           /* an empty frame: the bytes are there */
        }
        zmq_msg_move(msg, &frames[j]);
    }
    return 0;
}


int
ksv_instance_set_reply_header(ksv_frames_t *reply, size_t slot,
    uint64_t batch_id, uint32_t count, const ksv_exec_times_t *t)
{
    size_t        len;
    uint8_t      *buf;
    ksv_writer_t  w;

    ksv_writer_init(&w);
    ksv_encode_execute_reply(&w, batch_id, count, t);
    if (w.failed) {
        ksv_writer_free(&w);
        return -1;
    }
    buf = ksv_writer_detach(&w, &len);
    zmq_msg_close(&reply->msgs[slot]);
    if (zmq_msg_init_data(&reply->msgs[slot], buf, len, ksv_writer_free_cb,
                          NULL) != 0)
    {
        free(buf);
        zmq_msg_init(&reply->msgs[slot]);
        return -1;
    }
    return 0;
}
