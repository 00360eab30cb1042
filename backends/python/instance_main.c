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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "ksv_instance.h"
#include "ksv_json.h"
#include "ksv_proto.h"
#include "py_batch.h"
#include "py_runtime.h"


/* ---- main ------------------------------------------------------------------ */

static int
ksv_serve(void *sock, ksv_py_batch_ctx_t *ctx)
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

        /* model threads may run while we wait */
        Py_BEGIN_ALLOW_THREADS
        rc = zmq_poll(&item, 1, KSV_INSTANCE_POLL_MS);
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

        if (ksv_instance_recv(sock, &in) != 0) {
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

        if (rc > 0 && ksv_instance_send(sock, &out) != 0) {
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
    ksv_instance_opts_t  o;
    ksv_arena_t          arena;
    ksv_writer_t         w;
    ksv_py_args_t        args;
    ksv_py_model_t       model;
    ksv_model_config_t   config;
    ksv_py_batch_ctx_t   ctx;

    ksv_instance_parse_args(argc, argv, "kserve-python-instance", 1, &o);
    ksv_instance_signals(&o);

    zctx = zmq_ctx_new();
    sock = zctx != NULL ? ksv_instance_connect(zctx, o.connect) : NULL;
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

    if (ksv_instance_load_config(&o, &arena, &config, &err) != 0) {
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

    if (ksv_instance_send_ready(sock, &o, 1, NULL) != 0) {
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
    (void) ksv_instance_send_ready(sock, &o, 0, err != NULL ? err : "out of memory");
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
