/*
 * ngx_kserve: kserve-python-instance, one instance of a Python model.
 *
 * Started by kserve-worker (fork + exec), one process per instance of an
 * instance_group, like Triton's python stub:
 *
 *   kserve-python-instance --connect ipc://<run>/instances.sock
 *       --run-dir <run> --repository <repo> --model <name> --version <v>
 *       --instance <n> --kind KIND_CPU|KIND_GPU --device-id <d>
 *       --utils-dir <dir>   (the rest: backends/common/ksv_instance.h)
 *
 * It binds its data socket, parses <repo>/<name>/config.pbtxt, embeds
 * CPython, loads the model (py_runtime.c) and announces itself to the
 * worker with READY and its endpoint (ok = 0 with the reason when
 * loading failed, then exits 1).  Then it serves nginx's requests
 * (ksv_instance_serve: the scheduler batches them, each batch runs
 * through py_batch.c on this, the main, thread) until SIGTERM, or until
 * it is an orphan past its grace, and calls the model's finalize() on
 * the way out.
 *
 * Exit status: 0 after SIGTERM, 1 when the model failed to load or the
 * socket broke, 2 for a bad command line.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "ksv_instance.h"
#include "ksv_proto.h"
#include "py_batch.h"
#include "py_runtime.h"


/* ---- main ------------------------------------------------------------------ */

/* the model's own threads run while the executor waits for a batch */
static void
ksv_py_idle(void *data, int begin)
{
    static PyThreadState  *saved;

    (void) data;

    if (begin) {
        saved = PyEval_SaveThread();
    } else {
        PyEval_RestoreThread(saved);
    }
}


static int
ksv_py_run(void *data, ksv_frames_t *in, ksv_frames_t *out)
{
    return ksv_py_batch_run(data, in, out);
}


int
main(int argc, char **argv)
{
    int                    rc;
    char                  *err = NULL, *filename;
    char                   device_id[32];
    ksv_instance_t        *inst;
    ksv_arena_t            arena;
    ksv_py_args_t          args;
    ksv_py_model_t         model;
    ksv_py_batch_ctx_t     ctx;
    ksv_instance_opts_t    o;
    ksv_instance_model_t   m;
    ksv_instance_server_t  server;

    ksv_instance_parse_args(argc, argv, KSV_PY_PROG, 1, &o);
    ksv_instance_signals(&o);

    inst = ksv_instance_open(&o);
    if (inst == NULL) {
        return 1;
    }

    ksv_arena_init(&arena);
    memset(&model, 0, sizeof(model));

    if (ksv_instance_load_model(&o, &arena, &m, &err) != 0) {
        goto failed;
    }

    if (ksv_py_start(o.utils_dir, &err) != 0) {
        goto failed;
    }

    snprintf(device_id, sizeof(device_id), "%s", o.device_id);

    /* model_repository: the model's own directory, as in Triton */
    args.model_config = m.config_json;
    args.model_instance_kind = o.kind;
    args.model_instance_name = m.instance_name;
    args.model_instance_device_id = device_id;
    args.model_repository = m.model_dir;
    args.model_version = o.version;
    args.model_name = o.model;

    filename = strndup(m.config.default_model_filename.data,
                       m.config.default_model_filename.len);
    if (filename == NULL) {
        err = strdup("out of memory");
        goto failed;
    }
    rc = ksv_py_model_load(&model, m.model_dir, filename, &args, &err);
    free(filename);
    if (rc != 0) {
        goto failed;
    }

    if (ksv_instance_send_ready(inst, 1, NULL) != 0) {
        perror(KSV_PY_PROG ": sending READY");
        rc = 1;
    } else {
        ctx.model = &model;
        ctx.model_name = ksv_str_c(o.model);
        ctx.model_version = ksv_str_c(o.version);
        server.run = ksv_py_run;
        server.idle = ksv_py_idle;
        server.stop = NULL;
        server.data = &ctx;
        rc = ksv_instance_serve(inst, &m, &server);
    }

    ksv_py_model_finalize(&model);
    ksv_py_stop();
    goto done;

failed:

    ksv_instance_load_failed(inst, err);
    ksv_py_model_finalize(&model);
    ksv_py_stop();
    rc = 1;

done:

    free(err);
    ksv_instance_model_free(&m);
    ksv_arena_free(&arena);
    ksv_instance_close(inst);
    return rc;
}
