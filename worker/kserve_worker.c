/*
 * kserve-worker: the control plane of a host: the model repository, the
 * instance processes it starts, supervises and adopts, the model index
 * (where each instance listens) and statistics.  Inference goes from
 * nginx straight to the instances, never through here.
 *
 *   kserve-worker --repository DIR --listen ENDPOINT [--listen ...]
 *                 [--run-dir DIR] [--python-instance PATH]
 *                 [--python-utils DIR] [--cuda-instance PATH]
 *                 [--max-frame-size BYTES] [--execute-timeout MS]
 *                 [--instance-ports LOW-HIGH] [--advertise HOST]
 *                 [--orphan-grace SECS]
 *                 [--model-control-mode none|poll|explicit]
 *                 [--load-model NAME ...] [--repository-poll-secs N]
 *                 [--log-level debug|info|warn|error]
 *
 * This file holds main(): options, signals and the one event loop.  The
 * loop polls the client socket, the instance socket, a self-pipe that
 * the signal handlers write to (SIGCHLD, SIGTERM, SIGINT) and the pidfds
 * of adopted instances, so a dead instance or a stop request is handled
 * within one poll wakeup, never from inside a signal handler; after
 * each round the index is pushed to nginx if it changed.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <sys/file.h>

#include "kserve_lifecycle.h"
#include "kserve_log.h"
#include "kserve_server.h"
#include "kserve_supervisor.h"
#include "kserve_worker.h"


/* The loop's longest sleep (restarts are timed by the supervisor). */
#define KSERVE_TICK_MS        1000

/* Adopted instances watched through their pidfds per poll round. */
#define KSERVE_MAX_ADOPTED    64


kserve_worker_t  kserve;

static int                    kserve_signal_pipe[2] = { -1, -1 };

static volatile sig_atomic_t  kserve_stop_requested;


/* ---- options ------------------------------------------------------------- */

static void
kserve_usage(FILE *f)
{
    fprintf(f,
        "usage: kserve-worker --repository DIR --listen ENDPOINT "
        "[--listen ENDPOINT ...]\n"
        "                     [--run-dir DIR] [--python-instance PATH] "
        "[--python-utils DIR]\n"
        "                     [--cuda-instance PATH] "
        "[--max-frame-size BYTES]\n"
        "                     [--execute-timeout MS] "
        "[--log-level debug|info|warn|error]\n"
        "                     [--instance-ports LOW-HIGH] [--advertise HOST] "
        "[--orphan-grace SECS]\n"
        "                     [--model-control-mode none|poll|explicit] "
        "[--load-model NAME ...]\n"
        "                     [--repository-poll-secs N]\n"
        "\n"
        "  --repository DIR        Triton model repository\n"
        "  --listen ENDPOINT       ZeroMQ endpoint for the nginx module "
        "(ipc://PATH or tcp://HOST:PORT);\n"
        "                          repeatable\n"
        "  --run-dir DIR           sockets of the instances "
        "(default /tmp/kserve-worker.<pid>)\n"
        "  --python-instance PATH  instance binary (default: "
        "kserve-python-instance next to this one)\n"
        "  --python-utils DIR      triton_python_backend_utils "
        "(default: <dir of this binary>/../backends/python)\n"
        "  --cuda-instance PATH    instance binary of backend \"cuda\" "
        "models\n"
        "                          (default: kserve-cuda-instance next to "
        "this one)\n"
        "  --max-frame-size BYTES  largest frame a client may send "
        "(default 1 GiB)\n"
        "  --execute-timeout MS    a batch whose requests have no deadline "
        "counts as hung\n"
        "                          after this (default 60000; 0: never); "
        "its instance is\n"
        "                          restarted\n"
        "  --instance-ports LOW-HIGH  with a tcp:// --listen: the ports "
        "instances bind\n"
        "                          (default: any free one)\n"
        "  --advertise HOST        the host nginx reaches tcp instances on\n"
        "                          (default: the --listen interface)\n"
        "  --orphan-grace SECS     instances outlive a dead worker this "
        "long, waiting to be\n"
        "                          adopted by its restart (default 30)\n"
        "  --model-control-mode M  none (default): load every model at "
        "start; poll: and\n"
        "                          follow the repository's changes; "
        "explicit: load what\n"
        "                          --load-model names, then what clients "
        "load and unload\n"
        "  --load-model NAME       explicit: a model to load at start "
        "(repeatable; * = all)\n"
        "  --repository-poll-secs N  poll: seconds between reads of the "
        "repository (default 15)\n"
        "  --log-level LEVEL       default info\n");
}


static int
kserve_options(int argc, char **argv)
{
    int            c;
    char          *end, exe[PATH_MAX], real[PATH_MAX], *dir;
    ssize_t        n;
    const char    *run_dir, *python_instance, *python_utils;
    const char    *cuda_instance, *ports, *tcp;
    unsigned long long  size;

    static const struct option  opts[] = {
        { "repository", required_argument, NULL, 'r' },
        { "listen", required_argument, NULL, 'l' },
        { "run-dir", required_argument, NULL, 'd' },
        { "python-instance", required_argument, NULL, 'p' },
        { "python-utils", required_argument, NULL, 'u' },
        { "cuda-instance", required_argument, NULL, 'c' },
        { "max-frame-size", required_argument, NULL, 'm' },
        { "execute-timeout", required_argument, NULL, 't' },
        { "instance-ports", required_argument, NULL, 'P' },
        { "advertise", required_argument, NULL, 'a' },
        { "orphan-grace", required_argument, NULL, 'g' },
        { "log-level", required_argument, NULL, 'v' },
        { "model-control-mode", required_argument, NULL, 'C' },
        { "load-model", required_argument, NULL, 'L' },
        { "repository-poll-secs", required_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    run_dir = NULL;
    python_instance = NULL;
    python_utils = NULL;
    cuda_instance = NULL;
    ports = NULL;
    kserve.lock_fd = -1;
    kserve.orphan_grace_s = KSERVE_DEFAULT_ORPHAN_GRACE_S;
    kserve.max_frame_size = KSERVE_DEFAULT_MAX_FRAME;
    kserve.execute_timeout_ms = KSERVE_DEFAULT_EXECUTE_TIMEOUT_MS;
    kserve.control_mode = KSERVE_CONTROL_NONE;
    kserve.poll_secs = 15;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            kserve.repository = optarg;
            break;

        case 'l':
            if (kserve.nlisten == KSERVE_MAX_LISTEN) {
                fprintf(stderr, "kserve-worker: at most %d --listen\n",
                        KSERVE_MAX_LISTEN);
                return -1;
            }
            kserve.listen[kserve.nlisten++] = optarg;
            break;

        case 'd':
            run_dir = optarg;
            break;

        case 'p':
            python_instance = optarg;
            break;

        case 'u':
            python_utils = optarg;
            break;

        case 'c':
            cuda_instance = optarg;
            break;

        case 'm':
            errno = 0;
            size = strtoull(optarg, &end, 10);
            if (*end != '\0' || errno != 0 || size == 0
                || size > (unsigned long long) INT64_MAX)
            {
                fprintf(stderr, "kserve-worker: bad --max-frame-size '%s'\n",
                        optarg);
                return -1;
            }
            kserve.max_frame_size = size;
            break;

        case 't':
            errno = 0;
            size = strtoull(optarg, &end, 10);
            if (*end != '\0' || optarg[0] == '\0' || optarg[0] == '-'
                || errno != 0 || size > 365ULL * 24 * 3600 * 1000)
            {
                fprintf(stderr, "kserve-worker: bad --execute-timeout '%s' "
                        "(milliseconds, 0 to 31536000000)\n", optarg);
                return -1;
            }
            kserve.execute_timeout_ms = size;
            break;

        case 'P':
            ports = optarg;
            break;

        case 'a':
            kserve.advertise = optarg;
            break;

        case 'g':
            errno = 0;
            size = strtoull(optarg, &end, 10);
            if (*end != '\0' || optarg[0] == '\0' || optarg[0] == '-'
                || errno != 0 || size > 86400)
            {
                fprintf(stderr, "kserve-worker: bad --orphan-grace '%s' "
                        "(seconds, 0 to 86400)\n", optarg);
                return -1;
            }
            kserve.orphan_grace_s = (int64_t) size;
            break;

        case 'C':
            if (strcmp(optarg, "none") == 0) {
                kserve.control_mode = KSERVE_CONTROL_NONE;
            } else if (strcmp(optarg, "poll") == 0) {
                kserve.control_mode = KSERVE_CONTROL_POLL;
            } else if (strcmp(optarg, "explicit") == 0) {
                kserve.control_mode = KSERVE_CONTROL_EXPLICIT;
            } else {
                fprintf(stderr, "kserve-worker: bad --model-control-mode "
                        "'%s' (none, poll or explicit)\n", optarg);
                return -1;
            }
            break;

        case 'L':
            if (kserve.nload_models == KSERVE_MAX_LOAD_MODELS) {
                fprintf(stderr, "kserve-worker: at most %d --load-model\n",
                        KSERVE_MAX_LOAD_MODELS);
                return -1;
            }
            kserve.load_models[kserve.nload_models++] = optarg;
            break;

        case 'S':
            errno = 0;
            size = strtoull(optarg, &end, 10);
            if (*end != '\0' || optarg[0] == '\0' || optarg[0] == '-'
                || errno != 0 || size < 1 || size > 86400)
            {
                fprintf(stderr, "kserve-worker: bad --repository-poll-secs "
                        "'%s' (seconds, 1 to 86400)\n", optarg);
                return -1;
            }
            kserve.poll_secs = (int64_t) size;
            break;

        case 'v':
            if (strcmp(optarg, "debug") == 0) {
                kserve_log_level = KSERVE_LOG_DEBUG;
            } else if (strcmp(optarg, "info") == 0) {
                kserve_log_level = KSERVE_LOG_INFO;
            } else if (strcmp(optarg, "warn") == 0) {
                kserve_log_level = KSERVE_LOG_WARN;
            } else if (strcmp(optarg, "error") == 0) {
                kserve_log_level = KSERVE_LOG_ERROR;
            } else {
                fprintf(stderr, "kserve-worker: bad --log-level '%s'\n",
                        optarg);
                return -1;
            }
            break;

        case 'h':
            kserve_usage(stdout);
            exit(0);

        default:
            kserve_usage(stderr);
            return -1;
        }
    }

    if (optind != argc || kserve.repository == NULL || kserve.nlisten == 0) {
        kserve_usage(stderr);
        return -1;
    }

    if (kserve.nload_models > 0
        && kserve.control_mode != KSERVE_CONTROL_EXPLICIT)
    {
        fprintf(stderr, "kserve-worker: --load-model needs "
                "--model-control-mode explicit\n");
        return -1;
    }

    /* as Triton: "*" only alone */
    for (c = 0; kserve.nload_models > 1 && c < kserve.nload_models; c++) {
        if (strcmp(kserve.load_models[c], "*") == 0) {
            fprintf(stderr, "kserve-worker: --load-model * must be the "
                    "only --load-model\n");
            return -1;
        }
    }

    /* binaries sit together in build/; the Python sources in the tree */
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0) {
        fprintf(stderr, "kserve-worker: readlink /proc/self/exe: %s\n",
                strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    dir = dirname(exe);

    if (python_instance != NULL) {
        snprintf(kserve.python_instance, sizeof(kserve.python_instance),
                 "%s", python_instance);
    } else {
        snprintf(kserve.python_instance, sizeof(kserve.python_instance),
                 "%s/kserve-python-instance", dir);
    }

    if (cuda_instance != NULL) {
        snprintf(kserve.cuda_instance, sizeof(kserve.cuda_instance), "%s",
                 cuda_instance);
    } else {
        snprintf(kserve.cuda_instance, sizeof(kserve.cuda_instance),
                 "%s/kserve-cuda-instance", dir);
    }

    if (python_utils != NULL) {
        snprintf(kserve.python_utils, sizeof(kserve.python_utils), "%s",
                 python_utils);
    } else {
        snprintf(kserve.python_utils, sizeof(kserve.python_utils),
                 "%s/../backends/python", dir);
    }
    if (realpath(kserve.python_utils, real) != NULL) {
        snprintf(kserve.python_utils, sizeof(kserve.python_utils), "%s", real);
    }

    if (run_dir != NULL) {
        snprintf(kserve.run_dir, sizeof(kserve.run_dir), "%s", run_dir);
    } else {
        snprintf(kserve.run_dir, sizeof(kserve.run_dir),
                 "/tmp/kserve-worker.%d", (int) getpid());
    }

    if (strlen(kserve.run_dir) > 90) {
        /* ipc:// paths are sun_path: 108 bytes with the socket name */
        fprintf(stderr, "kserve-worker: --run-dir path too long for an "
                "ipc socket: %s\n", kserve.run_dir);
        return -1;
    }

    snprintf(kserve.instances_endpoint, sizeof(kserve.instances_endpoint),
             "ipc://%s/instances.sock", kserve.run_dir);

    /* instances listen where the worker does: ipc on a host, tcp on the
     * interface of the first tcp:// --listen, ports from --instance-ports
     * (any free one without it), announced as --advertise HOST */
    tcp = NULL;
    for (c = 0; c < kserve.nlisten; c++) {
        if (strncmp(kserve.listen[c], "tcp://", 6) == 0) {
            tcp = kserve.listen[c] + 6;
            break;
        }
    }
    if (tcp == NULL) {
        snprintf(kserve.instance_bind, sizeof(kserve.instance_bind), "ipc");
    } else {
        end = strrchr(tcp, ':');
        n = end != NULL ? end - tcp : (ssize_t) strlen(tcp);
        snprintf(kserve.instance_bind, sizeof(kserve.instance_bind),
                 "tcp://%.*s:%s", (int) n, tcp, ports != NULL ? ports : "*");
        if (kserve.advertise == NULL
            && (strncmp(tcp, "*", 1) == 0 || strncmp(tcp, "0.0.0.0", 7) == 0))
        {
            fprintf(stderr, "kserve-worker: --listen %s needs --advertise "
                    "HOST (what nginx connects instances on)\n", tcp);
            return -1;
        }
    }

    return 0;
}


/* ---- the lock ---------------------------------------------------------------- */

/*
 * An exclusive flock on <run>/worker.lock for the worker's lifetime:
 * instances test it to know whether a worker looks after them (they
 * take it shared for an instant, so a starting worker may have to try
 * again), and a second worker on the same run directory is refused.
 */
static int
kserve_lock(void)
{
    int   i;
    char  path[PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/worker.lock", kserve.run_dir);
    kserve.lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (kserve.lock_fd < 0) {
        kserve_error("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    for (i = 0; i < 200; i++) {
        if (flock(kserve.lock_fd, LOCK_EX | LOCK_NB) == 0) {
            return 0;
        }
        usleep(5000);
    }
    kserve_error("another kserve-worker holds %s", path);
    close(kserve.lock_fd);
    kserve.lock_fd = -1;
    return -1;
}


/* ---- signals ------------------------------------------------------------- */

static void
kserve_on_signal(int sig)
{
    int   saved = errno;
    char  c = (char) sig;

    if (sig == SIGTERM || sig == SIGINT) {
        kserve_stop_requested = 1;
    }
    if (write(kserve_signal_pipe[1], &c, 1) < 0) {
        /* full pipe: a wakeup is already pending */
    }
    errno = saved;
}


static int
kserve_signals(void)
{
    struct sigaction  sa;

    if (pipe2(kserve_signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        kserve_error("pipe2: %s", strerror(errno));
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kserve_on_signal;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);

    if (sigaction(SIGCHLD, &sa, NULL) != 0
        || sigaction(SIGTERM, &sa, NULL) != 0
        || sigaction(SIGINT, &sa, NULL) != 0)
    {
        kserve_error("sigaction: %s", strerror(errno));
        return -1;
    }

    signal(SIGPIPE, SIG_IGN);
    return 0;
}


/* Empties the pipe, then reaps; a SIGCHLD arriving meanwhile writes
 * again, so nothing is lost. */
static void
kserve_signal_readable(void)
{
    char  buf[64];

    while (read(kserve_signal_pipe[0], buf, sizeof(buf)) > 0) {
        /* drain */
    }
    kserve_supervisor_reap();
}


/* ---- the loop ------------------------------------------------------------ */

static int64_t
kserve_min_wait(int64_t a, int64_t b)
{
    if (a < 0) {
        return b;
    }
    if (b < 0) {
        return a;
    }
    return a < b ? a : b;
}


/* One zmq_poll round plus housekeeping. */
static void
kserve_poll_once(int64_t max_wait)
{
    int             rc, n, i;
    int64_t         now, wait;
    zmq_pollitem_t  items[3 + KSERVE_MAX_ADOPTED];

    now = kserve_now_ms();
    wait = kserve_min_wait(kserve_supervisor_tick(now), max_wait);
    wait = kserve_min_wait(kserve_lifecycle_tick(now), wait);
    if (wait < 0 || wait > KSERVE_TICK_MS) {
        wait = KSERVE_TICK_MS;
    }

    memset(items, 0, 3 * sizeof(zmq_pollitem_t));
    items[0].socket = kserve.frontend;
    items[0].events = ZMQ_POLLIN;
    items[1].socket = kserve.backend;
    items[1].events = ZMQ_POLLIN;
    items[2].fd = kserve_signal_pipe[0];
    items[2].events = ZMQ_POLLIN;
    n = 3 + kserve_supervisor_pollfds(&items[3], KSERVE_MAX_ADOPTED);

    rc = zmq_poll(items, n, (long) wait);
    if (rc < 0) {
        if (errno != EINTR) {
            kserve_error("zmq_poll: %s", zmq_strerror(errno));
        }
        return;
    }

    /* instance messages before deaths, so what a dying instance said
     * last (a READY ok=0) is used */
    if (items[1].revents & ZMQ_POLLIN) {
        kserve_server_backend_readable();
    }
    if (items[2].revents & ZMQ_POLLIN) {
        kserve_signal_readable();
    }
    for (i = 3; i < n; i++) {
        if (items[i].revents & ZMQ_POLLIN) {
            kserve_supervisor_check_adopted();
            break;
        }
    }
    if (items[0].revents & ZMQ_POLLIN) {
        kserve_server_frontend_readable();
    }

    /* replaced versions go, settled loads are answered */
    (void) kserve_lifecycle_tick(kserve_now_ms());

    /* an instance came or went: tell every nginx worker now */
    kserve_server_push_index();
}


/*
 * Stop: let instances answer what they hold and run finalize()
 * (SIGTERM), and after the grace period kill what is left.
 */
static void
kserve_shutdown(void)
{
    int64_t   deadline, now;
    uint32_t  i, j;

    kserve_info("shutting down");
    kserve.shutting_down = 1;

    /* nginx stops sending at once (the instances are about to go) */
    for (i = 0; i < kserve.repo.nmodels; i++) {
        for (j = 0; j < kserve.repo.models[i].nversions; j++) {
            kserve_version_set_state(&kserve.repo,
                                     &kserve.repo.models[i].versions[j],
                                     KSV_VERSION_UNAVAILABLE,
                                     "server is shutting down");
        }
    }
    kserve_server_push_index();

    kserve_supervisor_terminate_all();

    deadline = kserve_now_ms() + KSERVE_SHUTDOWN_GRACE_MS;
    while (kserve_supervisor_alive() > 0) {
        now = kserve_now_ms();
        if (now >= deadline) {
            break;
        }
        kserve_poll_once(deadline - now);
    }

    kserve_supervisor_kill_all();
}


static void
kserve_cleanup(void)
{
    char  path[PATH_MAX + 32];

    kserve_server_close();

    snprintf(path, sizeof(path), "%s/instances.sock", kserve.run_dir);
    unlink(path);
    if (kserve.shutting_down) {
        /* nothing is left to adopt */
        snprintf(path, sizeof(path), "%s/instances.tab", kserve.run_dir);
        unlink(path);
    }
    kserve_log_page_close(kserve.run_dir, kserve.shutting_down);
    if (kserve.lock_fd >= 0) {
        /* instances hold it open: a new file would be a new lock */
        if (kserve.run_dir_created && kserve.shutting_down) {
            snprintf(path, sizeof(path), "%s/worker.lock", kserve.run_dir);
            unlink(path);
        }
        close(kserve.lock_fd);
        kserve.lock_fd = -1;
    }
    if (kserve.run_dir_created && rmdir(kserve.run_dir) != 0) {
        kserve_warn("cannot remove %s: %s", kserve.run_dir, strerror(errno));
    }

    kserve_lifecycle_cleanup();
    kserve_supervisor_free();
    kserve_repository_free(&kserve.repo);
}


int
main(int argc, char **argv)
{
    if (kserve_options(argc, argv) != 0) {
        return 2;
    }

    if (mkdir(kserve.run_dir, 0700) == 0) {
        kserve.run_dir_created = 1;
    } else if (errno != EEXIST) {
        kserve_error("cannot create run dir %s: %s", kserve.run_dir,
                     strerror(errno));
        return 1;
    }

    if (kserve_signals() != 0) {
        return 1;
    }

    if (kserve_lock() != 0) {
        return 1;
    }

    /* the log settings instances read (Triton's logging extension) */
    if (kserve_log_page_open(kserve.run_dir) != 0) {
        return 1;
    }

    kserve_info("starting: repository %s, instance binary %s, python "
                "utils %s, instances on %s", kserve.repository,
                kserve.python_instance, kserve.python_utils,
                kserve.instances_endpoint);

    if (access(kserve.python_instance, X_OK) != 0) {
        /* not fatal: models then report why they cannot load */
        kserve_error("instance binary %s: %s", kserve.python_instance,
                     strerror(errno));
    }
    if (access(kserve.cuda_instance, X_OK) != 0) {
        kserve_warn("cuda instance binary %s: %s (backend \"cuda\" models "
                    "cannot load)", kserve.cuda_instance, strerror(errno));
    }

    if (kserve_repository_load(&kserve.repo, kserve.repository) != 0
        || kserve_server_open() != 0)
    {
        kserve_cleanup();
        return 1;
    }

    if (kserve_lifecycle_start() != 0) {
        kserve.shutting_down = 1;
        kserve_supervisor_kill_all();
        kserve_cleanup();
        return 1;
    }

    while (!kserve_stop_requested) {
        kserve_poll_once(-1);
    }

    kserve_shutdown();
    kserve_cleanup();
    kserve_info("stopped");
    return 0;
}
