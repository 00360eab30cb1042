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
#include "ksv_json.h"
#include "ksv_json_read.h"
#include "ksv_pbtxt.h"
#include "ksv_proto.h"
#include "ksv_warmup.h"
#include "py_batch.h"
#include "py_env.h"
#include "py_runtime.h"


/* ---- auto_complete_config ----------------------------------------------- */

typedef struct {
    ksv_instance_model_t  *m;
    ksv_arena_t           *arena;
    const char            *model;
    char                  *pbtxt;       /* the completed config, for READY */
} ksv_py_complete_t;


/*
 * The model completed its configuration (Triton's auto_complete_config):
 * it goes through the one config parser, as protobuf text, so the
 * scheduler batches by it and initialize() gets it rendered as every
 * config is; READY hands the same text to the worker, which publishes it.
 */
static int
ksv_py_completed(void *data, const char *in, const char **json, char **err)
{
    char                 msg[512];
    size_t               len;
    ksv_writer_t         w, jw;
    ksv_jnode_t         *tree;
    ksv_py_complete_t   *c = data;
    ksv_model_config_t   config;

    ksv_writer_init(&w);
    if (ksv_json_parse(in, strlen(in), c->arena, &tree, msg, sizeof(msg))
        != 0
        || ksv_json_to_pbtxt(tree, &w, msg, sizeof(msg)) != 0
        || ksv_pbtxt_parse(w.buf ? (char *) w.buf : "", w.len,
                           "auto_complete_config", c->arena, &config, msg,
                           sizeof(msg), NULL, NULL) != 0
        || ksv_pbtxt_defaults(&config, c->model, c->arena, msg, sizeof(msg))
           != 0)
    {
        ksv_writer_free(&w);
        if (asprintf(err, "auto_complete_config() completed the "
                     "configuration into one that cannot be used: %s", msg)
            < 0)
        {
            *err = NULL;
        }
        return -1;
    }

    ksv_writer_init(&jw);
    ksv_model_config_to_json(&jw, &config);
    ksv_put_u8(&jw, '\0');
    ksv_put_u8(&w, '\0');
    if (jw.failed || w.failed) {
        ksv_writer_free(&w);
        ksv_writer_free(&jw);
        *err = strdup("out of memory");
        return -1;
    }

    /* model_warmup is not part of what a model completes */
    config.nwarmup = c->m->config.nwarmup;
    config.warmup = c->m->config.warmup;
    c->m->config = config;
    free(c->m->config_json);
    c->m->config_json = (char *) ksv_writer_detach(&jw, &len);
    free(c->pbtxt);
    c->pbtxt = (char *) ksv_writer_detach(&w, &len);
    *json = c->m->config_json;
    return 0;
}


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
    ksv_py_complete_t      complete;
    char                  *env_site = NULL;
    ksv_instance_server_t  server;

    ksv_instance_parse_args(argc, argv, KSV_PY_PROG, 1, &o);
    ksv_instance_signals(&o);

    ksv_arena_init(&arena);
    memset(&model, 0, sizeof(model));
    memset(&complete, 0, sizeof(complete));

    /* the config, and the execution environment it names, before the
     * sockets: preparing the environment may exec this program again */
    rc = ksv_instance_load_model(&o, &arena, &m, &err);
    if (rc == 0) {
        rc = ksv_py_env_prepare(&o, &m.config, m.model_dir, argv, &env_site,
                                &err);
    }

    inst = ksv_instance_open(&o);
    if (inst == NULL) {
        free(err);
        free(env_site);
        ksv_instance_model_free(&m);
        ksv_arena_free(&arena);
        return 1;
    }

    if (rc != 0) {
        goto failed;
    }

    if (ksv_py_start(o.utils_dir, env_site, &err) != 0) {
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
    complete.m = &m;
    complete.arena = &arena;
    complete.model = o.model;
    complete.pbtxt = NULL;
    args.completed = ksv_py_completed;
    args.completed_data = &complete;

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

    ctx.model = &model;
    ctx.model_name = ksv_str_c(o.model);
    ctx.model_version = ksv_str_c(o.version);
    server.run = ksv_py_run;
    server.idle = ksv_py_idle;
    server.stop = NULL;
    server.data = &ctx;

    /* model_warmup runs before the version can turn READY */
    if (ksv_instance_warmup(&m.config, m.model_dir, o.model, o.version,
                            &server, &err) != 0)
    {
        goto failed;
    }

    /* with the completed configuration, if the model completed it */
    rc = ksv_instance_send_ready(inst, 1, complete.pbtxt);
    free(complete.pbtxt);
    complete.pbtxt = NULL;
    if (rc != 0) {
        perror(KSV_PY_PROG ": sending READY");
        rc = 1;
    } else {
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
    free(env_site);
    free(complete.pbtxt);
    ksv_instance_model_free(&m);
    ksv_arena_free(&arena);
    ksv_instance_close(inst);
    return rc;
}
