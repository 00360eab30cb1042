/*
 * ngx_kserve: what every instance process shares (see ksv_instance.h).
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "ksv_instance.h"
#include "ksv_json.h"
#include "ksv_pbtxt.h"
#include "ksv_proto.h"


#define KSV_CONFIG_MAX  (16 * 1024 * 1024)


volatile sig_atomic_t  ksv_instance_terminate;


static void
ksv_instance_on_signal(int signo)
{
    (void) signo;
    ksv_instance_terminate = 1;
}


static void
ksv_instance_usage(const char *prog, int need_utils_dir)
{
    fprintf(stderr,
        "usage: %s --connect ENDPOINT --repository DIR\n"
        "         --model NAME --version V --instance N\n"
        "         [--kind KIND_CPU|KIND_GPU] [--device-id D] %s\n",
        prog, need_utils_dir ? "--utils-dir DIR" : "[--utils-dir DIR]");
    exit(2);
}


void
ksv_instance_parse_args(int argc, char **argv, const char *prog,
    int need_utils_dir, ksv_instance_opts_t *o)
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
    o->prog = prog;
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
        || strchr(o->model, '/') != NULL || strchr(o->version, '/') != NULL)
    {
        ksv_instance_usage(prog, need_utils_dir);
    }
}


void
ksv_instance_signals(const ksv_instance_opts_t *o)
{
    struct sigaction  sa;

    /* a daemon that dies without stopping us must not leave us behind */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        fprintf(stderr, "%s: prctl: %s\n", o->prog, strerror(errno));
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ksv_instance_on_signal;  /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    signal(SIGPIPE, SIG_IGN);

    /* the daemon died before prctl took effect */
    if (getppid() == 1) {
        ksv_instance_terminate = 1;
    }
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
    return 0;
}


void
ksv_instance_model_free(ksv_instance_model_t *m)
{
    free(m->config_json);
    free(m->instance_name);
    free(m->model_dir);
    m->config_json = NULL;
    m->instance_name = NULL;
    m->model_dir = NULL;
}


/* ---- message vectors ------------------------------------------------------ */

void
ksv_msgvec_init(ksv_msgvec_t *v)
{
    v->msgs = NULL;
    v->n = 0;
    v->cap = 0;
}


zmq_msg_t *
ksv_msgvec_push(ksv_msgvec_t *v)
{
    size_t      cap;
    zmq_msg_t  *msgs;

    if (v->n == v->cap) {
        cap = v->cap ? v->cap * 2 : 16;
        msgs = realloc(v->msgs, cap * sizeof(zmq_msg_t));
        if (msgs == NULL) {
            return NULL;
        }
        v->msgs = msgs;
        v->cap = cap;
    }
    zmq_msg_init(&v->msgs[v->n]);
    return &v->msgs[v->n++];
}


int
ksv_msgvec_push_writer(ksv_msgvec_t *v, ksv_writer_t *w)
{
    size_t      len;
    uint8_t    *buf;
    zmq_msg_t  *msg;

    if (w->failed) {
        ksv_writer_free(w);
        return -1;
    }
    msg = ksv_msgvec_push(v);
    if (msg == NULL) {
        ksv_writer_free(w);
        return -1;
    }
    buf = ksv_writer_detach(w, &len);
    if (zmq_msg_init_data(msg, buf, len, ksv_writer_free_cb, NULL) != 0) {
        free(buf);
        v->n--;
        return -1;
    }
    return 0;
}


void
ksv_msgvec_clear(ksv_msgvec_t *v)
{
    size_t  i;

    for (i = 0; i < v->n; i++) {
        zmq_msg_close(&v->msgs[i]);
    }
    v->n = 0;
}


void
ksv_msgvec_free(ksv_msgvec_t *v)
{
    ksv_msgvec_clear(v);
    free(v->msgs);
    ksv_msgvec_init(v);
}


/* ---- the socket ------------------------------------------------------------ */

void *
ksv_instance_connect(void *zctx, const ksv_instance_opts_t *o)
{
    int    linger = KSV_INSTANCE_LINGER_MS;
    char   id[32];
    void  *sock;

    sock = zctx != NULL ? zmq_socket(zctx, ZMQ_DEALER) : NULL;
    if (sock == NULL) {
        goto failed;
    }
    snprintf(id, sizeof(id), "i%ld", (long) getpid());
    if (zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, strlen(id)) != 0
        || zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0
        || zmq_connect(sock, o->connect) != 0)
    {
        zmq_close(sock);
        goto failed;
    }
    return sock;

failed:

    fprintf(stderr, "%s: cannot connect to %s: %s\n", o->prog, o->connect,
            zmq_strerror(errno));
    return NULL;
}


int
ksv_instance_send(void *sock, ksv_msgvec_t *v)
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


int
ksv_instance_recv(void *sock, ksv_msgvec_t *v)
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


int
ksv_instance_send_ready(void *sock, const ksv_instance_opts_t *o, int ok,
    const char *message)
{
    ksv_ready_t   ready;
    ksv_writer_t  w;
    ksv_msgvec_t  v;

    memset(&ready, 0, sizeof(ready));
    ready.model_name = ksv_str_c(o->model);
    ready.version = strtoll(o->version, NULL, 10);
    ready.instance = (uint32_t) o->instance;
    ready.ok = (uint8_t) ok;
    ready.message = ksv_str_c(message != NULL ? message : "");

    ksv_writer_init(&w);
    ksv_encode_ready(&w, &ready);

    ksv_msgvec_init(&v);
    if (ksv_msgvec_push_writer(&v, &w) != 0) {
        ksv_msgvec_free(&v);
        return -1;
    }
    if (ksv_instance_send(sock, &v) != 0) {
        ksv_msgvec_free(&v);
        return -1;
    }
    ksv_msgvec_free(&v);
    return 0;
}


void
ksv_instance_load_failed(void *sock, const ksv_instance_opts_t *o,
    const char *err)
{
    if (err == NULL) {
        err = "out of memory";
    }
    fprintf(stderr, "%s: %s: %s\n", o->prog, o->model, err);
    (void) ksv_instance_send_ready(sock, o, 0, err);
}


int
ksv_instance_serve(void *sock, const char *prog,
    const ksv_instance_server_t *s)
{
    int             rc = 0;
    ksv_msgvec_t    in, out;
    zmq_pollitem_t  item;

    ksv_msgvec_init(&in);
    ksv_msgvec_init(&out);

    while (!ksv_instance_terminate) {
        item.socket = sock;
        item.fd = 0;
        item.events = ZMQ_POLLIN;
        item.revents = 0;

        rc = s->poll != NULL
             ? s->poll(s->data, &item, KSV_INSTANCE_POLL_MS)
             : zmq_poll(&item, 1, KSV_INSTANCE_POLL_MS);
        if (rc < 0) {
            if (errno == EINTR) {
                rc = 0;
                continue;
            }
            fprintf(stderr, "%s: zmq_poll: %s\n", prog, strerror(errno));
            rc = 1;
            break;
        }
        if (rc == 0) {
            continue;
        }

        if (ksv_instance_recv(sock, &in) != 0) {
            fprintf(stderr, "%s: zmq_msg_recv: %s\n", prog, strerror(errno));
            rc = 1;
            break;
        }

        rc = s->run(s->data, &in, &out);
        ksv_msgvec_clear(&in);
        if (rc < 0) {
            fprintf(stderr, "%s: out of memory\n", prog);
            rc = 1;
            break;
        }

        if (rc > 0 && ksv_instance_send(sock, &out) != 0) {
            fprintf(stderr, "%s: zmq_msg_send: %s\n", prog, strerror(errno));
            rc = 1;
            break;
        }
        rc = 0;

        if (s->stop != NULL && (rc = s->stop(s->data)) != 0) {
            break;
        }
    }

    ksv_msgvec_free(&in);
    ksv_msgvec_free(&out);
    return rc;
}


/* ---- EXECUTE and EXECUTE_REPLY ------------------------------------------ */

int
ksv_instance_read_execute(const ksv_msgvec_t *in, const char *prog,
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
ksv_instance_next_request(ksv_msgvec_t *in, size_t *idx, ksv_alloc_t *alloc,
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
ksv_instance_push_error(ksv_msgvec_t *reply, uint64_t id, ksv_status_t code,
    const char *msg)
{
    ksv_writer_t  w;

    ksv_writer_init(&w);
    ksv_encode_error(&w, id, code,
                     ksv_str_c(msg != NULL ? msg : "out of memory"));
    return ksv_msgvec_push_writer(reply, &w);
}


int
ksv_instance_push_infer_reply(ksv_msgvec_t *reply, uint64_t id,
    const ksv_infer_reply_t *ir, zmq_msg_t *frames)
{
    uint32_t      j;
    zmq_msg_t    *msg;
    ksv_writer_t  w;

    ksv_writer_init(&w);
    ksv_encode_infer_reply(&w, id, ir);
    if (ksv_msgvec_push_writer(reply, &w) != 0) {
        return -1;
    }
    for (j = 0; j < ir->noutputs; j++) {
        msg = ksv_msgvec_push(reply);
        if (msg == NULL) {
            return -1;
        }
        zmq_msg_move(msg, &frames[j]);
    }
    return 0;
}


int
ksv_instance_set_reply_header(ksv_msgvec_t *reply, size_t slot,
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


uint64_t
ksv_instance_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}
