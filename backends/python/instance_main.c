/*
 * ngx_kserve: kserve-python-instance, one instance of a Python model.
 *
 * Started by kserve-worker (fork + exec), one process per instance of an
 * instance_group, like Triton's python stub:
 *
 *   kserve-python-instance --connect ipc://<run>/instances.sock
 *       --repository <repo> --model <name> --version <v> --instance <n>
 *       --kind KIND_CPU|KIND_GPU --device-id <d> --utils-dir <dir>
 *
 * It parses <repo>/<name>/config.pbtxt, embeds CPython, loads the model
 * (py_runtime.c), connects a DEALER socket (routing id "i<pid>") to the
 * daemon's ROUTER and announces itself with READY (ok = 0 with the reason
 * when loading failed, then exits 1).  Then it serves EXECUTE messages
 * one at a time (py_batch.c) until SIGTERM, or until the daemon dies
 * (PR_SET_PDEATHSIG), and calls the model's finalize() on the way out.
 *
 * Exit status: 0 after SIGTERM, 1 when the model failed to load or the
 * socket broke, 2 for a bad command line.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <zmq.h>

#include "ksv_json.h"
#include "ksv_pbtxt.h"
#include "ksv_proto.h"
#include "py_batch.h"
#include "py_runtime.h"


#define KSV_POLL_MS        200      /* how soon SIGTERM is noticed */
#define KSV_LINGER_MS      2000     /* to flush the last reply at exit */
#define KSV_CONFIG_MAX     (16 * 1024 * 1024)


typedef struct {
    const char  *connect;
    const char  *repository;
    const char  *model;
    const char  *version;
    long         instance;
    const char  *kind;              /* "CPU", "GPU", "MODEL" */
    const char  *device_id;
    const char  *utils_dir;
} ksv_opts_t;


static volatile sig_atomic_t  ksv_terminate;


static void
ksv_on_signal(int signo)
{
    (void) signo;
    ksv_terminate = 1;
}


static void
usage(void)
{
    fprintf(stderr,
        "usage: kserve-python-instance --connect ENDPOINT --repository DIR\n"
        "         --model NAME --version V --instance N\n"
        "         [--kind KIND_CPU|KIND_GPU] [--device-id D] --utils-dir DIR\n");
    exit(2);
}


static void
ksv_parse_args(int argc, char **argv, ksv_opts_t *o)
{
    int    c;
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
        { "help",       no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(o, 0, sizeof(*o));
    o->instance = -1;
    o->kind = "CPU";
    o->device_id = "0";

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->connect = optarg; break;
        case 'r': o->repository = optarg; break;
        case 'm': o->model = optarg; break;
        case 'v': o->version = optarg; break;
        case 'd': o->device_id = optarg; break;
        case 'u': o->utils_dir = optarg; break;
        case 'i':
            errno = 0;
            o->instance = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || o->instance < 0
                || o->instance > INT32_MAX)
            {
                usage();
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
                usage();
            }
            break;
        default:
            usage();
        }
    }

    if (optind != argc || o->connect == NULL || o->repository == NULL
        || o->model == NULL || o->version == NULL || o->instance < 0
        || o->utils_dir == NULL || strchr(o->model, '/') != NULL
        || strchr(o->version, '/') != NULL)
    {
        usage();
    }
}


static void
ksv_install_signals(void)
{
    struct sigaction  sa;

    /* a daemon that dies without stopping us must not leave us behind */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        perror("kserve-python-instance: prctl");
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ksv_on_signal;      /* no SA_RESTART: poll returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    signal(SIGPIPE, SIG_IGN);

    /* the daemon died before prctl took effect */
    if (getppid() == 1) {
        ksv_terminate = 1;
    }
}


/* ---- configuration ---------------------------------------------------------- */

static void
ksv_pbtxt_warn(void *ctx, const char *msg)
{
    fprintf(stderr, "kserve-python-instance: %s: %s\n", (const char *) ctx,
            msg);
}


/*
 * Reads and parses the model's config.pbtxt into *c (memory from the
 * arena).  Returns -1 with a malloc'd message in *err.
 */
static int
ksv_load_config(const ksv_opts_t *o, ksv_arena_t *arena,
    ksv_model_config_t *c, char **err)
{
    int      rc;
    char    *path, *text, msg[1024];
    long     len;
    FILE    *f;

    if (asprintf(&path, "%s/%s/config.pbtxt", o->repository, o->model) < 0) {
        *err = strdup("out of memory");
        return -1;
    }

    text = NULL;
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

    rc = ksv_pbtxt_parse(text, (size_t) len, path, arena, c, msg, sizeof(msg),
                         ksv_pbtxt_warn, (void *) o->model);
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
ksv_instance_name(const ksv_model_config_t *c, const ksv_opts_t *o)
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


/* ---- the socket ------------------------------------------------------------ */

static void *
ksv_connect(void *zctx, const char *endpoint)
{
    int    linger = KSV_LINGER_MS;
    char   id[32];
    void  *sock;

    sock = zmq_socket(zctx, ZMQ_DEALER);
    if (sock == NULL) {
        return NULL;
    }
    snprintf(id, sizeof(id), "i%ld", (long) getpid());
    if (zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, strlen(id)) != 0
        || zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0
        || zmq_connect(sock, endpoint) != 0)
    {
        zmq_close(sock);
        return NULL;
    }
    return sock;
}


/* Sends every frame of `v` as one multipart message; `v` is emptied. */
static int
ksv_send(void *sock, ksv_msgvec_t *v)
{
    int     rc = 0;
    size_t  i;

    for (i = 0; i < v->n; i++) {
        while (zmq_msg_send(&v->msgs[i], sock,
                            i + 1 < v->n ? ZMQ_SNDMORE : 0) < 0)
        {
            if (errno != EINTR) {
                rc = -1;
                break;
            }
        }
        if (rc != 0) {
            break;
        }
    }
    ksv_msgvec_clear(v);
    return rc;
}


static int
ksv_send_ready(void *sock, const ksv_opts_t *o, int ok, const char *message)
{
    zmq_msg_t     msg;
    ksv_ready_t   ready;
    ksv_writer_t  w;
    ksv_msgvec_t  v;
    uint8_t      *buf;
    size_t        len;
    int           rc;

    memset(&ready, 0, sizeof(ready));
    ready.model_name = ksv_str_c(o->model);
    ready.version = strtoll(o->version, NULL, 10);
    ready.instance = (uint32_t) o->instance;
    ready.ok = (uint8_t) ok;
    ready.message = ksv_str_c(message != NULL ? message : "");

    ksv_writer_init(&w);
    ksv_encode_ready(&w, &ready);
    if (w.failed) {
        ksv_writer_free(&w);
        return -1;
    }
    buf = ksv_writer_detach(&w, &len);
    zmq_msg_init_data(&msg, buf, len, ksv_writer_free_cb, NULL);

    v.msgs = &msg;
    v.n = 1;
    v.cap = 1;
    rc = ksv_send(sock, &v);
    return rc;
}


/* Receives one whole multipart message into `v`. */
static int
ksv_recv(void *sock, ksv_msgvec_t *v)
{
    int         more;
    size_t      len;
    zmq_msg_t  *msg;

    do {
        msg = ksv_msgvec_push(v);
        if (msg == NULL) {
            return -1;
        }
        while (zmq_msg_recv(msg, sock, 0) < 0) {
            if (errno != EINTR) {
                return -1;
            }
        }
        len = sizeof(more);
        if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) != 0) {
            return -1;
        }
    } while (more);

    return 0;
}


/* ---- main ------------------------------------------------------------------ */

static int
ksv_serve(void *sock, ksv_py_batch_ctx_t *ctx)
{
    int             rc = 0;
    ksv_msgvec_t    in, out;
    zmq_pollitem_t  item;

    ksv_msgvec_init(&in);
    ksv_msgvec_init(&out);

    while (!ksv_terminate) {
        item.socket = sock;
        item.fd = 0;
        item.events = ZMQ_POLLIN;
        item.revents = 0;

        /* model threads may run while we wait */
        Py_BEGIN_ALLOW_THREADS
        rc = zmq_poll(&item, 1, KSV_POLL_MS);
        Py_END_ALLOW_THREADS

        if (rc < 0) {
            if (errno == EINTR) {
                rc = 0;
                continue;
            }
            perror("kserve-python-instance: zmq_poll");
            rc = -1;
            break;
        }
        if (rc == 0) {
            continue;
        }

        if (ksv_recv(sock, &in) != 0) {
            perror("kserve-python-instance: zmq_msg_recv");
            rc = -1;
            break;
        }

        rc = ksv_py_batch_run(ctx, &in, &out);
        ksv_msgvec_clear(&in);
        if (rc < 0) {
            fprintf(stderr, "kserve-python-instance: out of memory\n");
            break;
        }

        if (rc > 0 && ksv_send(sock, &out) != 0) {
            perror("kserve-python-instance: zmq_msg_send");
            rc = -1;
            break;
        }
        rc = 0;
    }

    ksv_msgvec_free(&in);
    ksv_msgvec_free(&out);
    return rc;
}


int
main(int argc, char **argv)
{
    int                  rc;
    char                *err = NULL, *model_dir, *instance_name, *json;
    char                *filename;
    char                 device_id[32];
    void                *zctx, *sock;
    size_t               len;
    ksv_opts_t           o;
    ksv_arena_t          arena;
    ksv_writer_t         w;
    ksv_py_args_t        args;
    ksv_py_model_t       model;
    ksv_model_config_t   config;
    ksv_py_batch_ctx_t   ctx;

    ksv_parse_args(argc, argv, &o);
    ksv_install_signals();

    zctx = zmq_ctx_new();
    sock = zctx != NULL ? ksv_connect(zctx, o.connect) : NULL;
    if (sock == NULL) {
        fprintf(stderr, "kserve-python-instance: cannot connect to %s: %s\n",
                o.connect, zmq_strerror(errno));
        return 1;
    }

    ksv_arena_init(&arena);
    memset(&model, 0, sizeof(model));
    json = NULL;
    instance_name = NULL;
    model_dir = NULL;

    if (ksv_load_config(&o, &arena, &config, &err) != 0) {
        goto failed;
    }

    ksv_writer_init(&w);
    ksv_model_config_to_json(&w, &config);
    ksv_put_u8(&w, '\0');
    instance_name = ksv_instance_name(&config, &o);
    if (w.failed || instance_name == NULL
        || asprintf(&model_dir, "%s/%s", o.repository, o.model) < 0)
    {
        ksv_writer_free(&w);
        err = strdup("out of memory");
        goto failed;
    }
    json = (char *) ksv_writer_detach(&w, &len);

    if (ksv_py_start(o.utils_dir, &err) != 0) {
        goto failed;
    }

    /* model_repository: the model's own directory, absolute as in Triton */
    {
        char  *abs = realpath(model_dir, NULL);

        if (abs != NULL) {
            free(model_dir);
            model_dir = abs;
        }
    }
    snprintf(device_id, sizeof(device_id), "%s", o.device_id);

    args.model_config = json;
    args.model_instance_kind = o.kind;
    args.model_instance_name = instance_name;
    args.model_instance_device_id = device_id;
    args.model_repository = model_dir;
    args.model_version = o.version;
    args.model_name = o.model;

    filename = strndup(config.default_model_filename.data,
                       config.default_model_filename.len);
    if (filename == NULL) {
        err = strdup("out of memory");
        goto failed;
    }
    rc = ksv_py_model_load(&model, model_dir, filename, &args, &err);
    free(filename);
    if (rc != 0) {
        goto failed;
    }

    if (ksv_send_ready(sock, &o, 1, NULL) != 0) {
        perror("kserve-python-instance: sending READY");
        rc = 1;
    } else {
        ctx.model = &model;
        ctx.model_name = ksv_str_c(o.model);
        ctx.model_version = ksv_str_c(o.version);
        rc = ksv_serve(sock, &ctx) == 0 ? 0 : 1;
    }

    ksv_py_model_finalize(&model);
    ksv_py_stop();
    goto done;

failed:

    fprintf(stderr, "kserve-python-instance: %s: %s\n", o.model,
            err != NULL ? err : "out of memory");
    (void) ksv_send_ready(sock, &o, 0, err != NULL ? err : "out of memory");
    ksv_py_model_finalize(&model);
    ksv_py_stop();
    rc = 1;

done:

    free(err);
    free(json);
    free(instance_name);
    free(model_dir);
    ksv_arena_free(&arena);
    zmq_close(sock);
    zmq_ctx_term(zctx);
    return rc;
}
