/*
 * ngx_kserve: kserve-cuda-instance, one instance of a CUDA model.
 *
 * The sibling of kserve-python-instance, started by kserve-worker for
 * models with `backend: "cuda"` with the same command line:
 *
 *   kserve-cuda-instance --connect ipc://<run>/instances.sock
 *       --run-dir <run> --repository <repo> --model <name> --version <v>
 *       --instance <n> --kind KIND_CPU|KIND_GPU --device-id <d>
 *       [--utils-dir <dir>]   (the rest: backends/common/ksv_instance.h)
 *
 * It parses the model's config.pbtxt, dlopen()s the model library
 * (cuda_loader.c), picks the GPU or the CPU path, creates the model's
 * state, reserves its buffers (cuda_batch.c) and announces itself with
 * READY and its data endpoint (ok = 0 with the reason when any of that
 * failed, then exits 1).  Then it serves nginx's requests
 * (ksv_instance_serve: the scheduler batches them, each batch runs as
 * one EXECUTE through cuda_batch.c on the main thread) until SIGTERM or
 * until it is an orphan past its grace.
 *
 * The path:
 *   KIND_GPU / KIND_MODEL with a GPU      GPU (execute), on --device-id
 *   KIND_GPU without a GPU                CPU (execute_cpu), one log line
 *   KIND_CPU                              CPU
 *   the model lacks the path's entry      the other one, one log line
 * KSV_REQUIRE_GPU=1 in the environment turns every fallback to the CPU
 * into a load failure (make test-gpu: proves the GPU path ran).
 *
 * Exit status: 0 after SIGTERM, 1 when the model failed to load or the
 * socket broke, 2 for a bad command line, 3 after a sticky CUDA error
 * (the batch was answered first; the supervisor restarts the instance).
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#if KSV_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "ksv_instance.h"
#include "ksv_warmup.h"
#include "ksv_proto.h"
#include "cuda_batch.h"
#include "cuda_loader.h"


static int
ksv_cuda_run(void *data, ksv_frames_t *in, ksv_frames_t *out)
{
    return ksv_cuda_batch_run(data, in, out);
}


/* after a sticky CUDA error (the batch was answered first) */
static int
ksv_cuda_stop(void *data)
{
    ksv_cuda_engine_t  *e = data;

    if (!e->fatal) {
        return 0;
    }
    fprintf(stderr, KSV_CUDA_PROG ": %s: exiting after a sticky CUDA "
            "error\n", e->instance_name);
    return 3;
}


static int
ksv_require_gpu(void)
{
    const char  *v = getenv("KSV_REQUIRE_GPU");

    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}


/*
 * Chooses the path: sets e->gpu and *device, or returns -1 with the
 * reason in err.  Logs every fallback to the CPU.
 */
static int
ksv_choose_path(const ksv_instance_opts_t *o, const ksv_cuda_lib_t *lib,
    ksv_cuda_engine_t *e, int *device, char *err, size_t errlen)
{
    int    want_gpu, ngpus;
    long   id;
    char  *end, why[256];

    want_gpu = strcmp(o->kind, "CPU") != 0;
    ngpus = 0;
    why[0] = '\0';

    errno = 0;
    id = strtol(o->device_id, &end, 10);
    if (errno != 0 || *end != '\0' || id < 0 || id > INT32_MAX) {
        snprintf(err, errlen, "bad --device-id '%s'", o->device_id);
        return -1;
    }
    *device = (int) id;

#if KSV_HAVE_CUDA
    if (want_gpu) {
        cudaError_t  ce = cudaGetDeviceCount(&ngpus);

        if (ce != cudaSuccess) {
            snprintf(why, sizeof(why), "%s", cudaGetErrorString(ce));
            (void) cudaGetLastError();
            ngpus = 0;
        } else if (ngpus == 0) {
            snprintf(why, sizeof(why), "no CUDA device");
        }
    }
#else
    snprintf(why, sizeof(why), "this instance was built without CUDA");
#endif

    if (!want_gpu) {
        if (lib->execute_cpu == NULL) {
            snprintf(err, errlen, "instance kind is KIND_CPU and the model "
                     "library %s has no CPU entry point "
                     "(ksv_cuda_model_execute_cpu)", lib->path);
            return -1;
        }
        e->gpu = 0;
        return 0;
    }

    if (ngpus == 0) {
        if (ksv_require_gpu()) {
            snprintf(err, errlen, "KSV_REQUIRE_GPU is set and there is no "
                     "GPU (%s)", why);
            return -1;
        }
        if (lib->execute_cpu == NULL) {
            snprintf(err, errlen, "no GPU (%s) and the model has no CPU "
                     "entry point (ksv_cuda_model_execute_cpu)", why);
            return -1;
        }
        fprintf(stderr, KSV_CUDA_PROG ": %s: no GPU (%s): running the model's "
                "CPU entry point\n", o->model, why);
        e->gpu = 0;
        return 0;
    }

    if (*device >= ngpus) {
        snprintf(err, errlen, "GPU %d does not exist (this machine has %d)",
                 *device, ngpus);
        return -1;
    }

    if (lib->execute == NULL) {
        if (ksv_require_gpu()) {
            snprintf(err, errlen, "KSV_REQUIRE_GPU is set and the model "
                     "library %s has no GPU entry point "
                     "(ksv_cuda_model_execute)", lib->path);
            return -1;
        }
        fprintf(stderr, KSV_CUDA_PROG ": %s: the model library has no GPU "
                "entry point: running its CPU entry point\n", o->model);
        e->gpu = 0;
        return 0;
    }

#if KSV_HAVE_CUDA
    {
        cudaError_t  ce = cudaSetDevice(*device);

        if (ce != cudaSuccess) {
            snprintf(err, errlen, "cannot use GPU %d: %s", *device,
                     cudaGetErrorString(ce));
            return -1;
        }
    }
#endif
    e->gpu = 1;
    return 0;
}


int
main(int argc, char **argv)
{
    int                    rc, device, created;
    char                  *err, *version_dir, *lib_path, msg[1024];
    void                  *state;
    ksv_instance_t        *inst;
    ksv_arena_t            arena;
    ksv_cuda_lib_t         lib;
    ksv_cuda_engine_t      engine;
    ksv_instance_opts_t    o;
    ksv_instance_model_t   m;
    ksv_cuda_model_args_t  args;
    ksv_instance_server_t  server;

    ksv_instance_parse_args(argc, argv, KSV_CUDA_PROG, 0, &o);
    ksv_instance_signals(&o);

    inst = ksv_instance_open(&o);
    if (inst == NULL) {
        return 1;
    }

    ksv_arena_init(&arena);
    memset(&lib, 0, sizeof(lib));
    memset(&engine, 0, sizeof(engine));
    err = NULL;
    version_dir = NULL;
    lib_path = NULL;
    state = NULL;
    created = 0;

    if (ksv_instance_load_model(&o, &arena, &m, &err) != 0) {
        goto failed;
    }

    if (asprintf(&version_dir, "%s/%s", m.model_dir, o.version) < 0) {
        version_dir = NULL;
        err = strdup("out of memory");
        goto failed;
    }

    /* Triton's default file name is the python backend's; ours model.so */
    if (ksv_str_eq(m.config.default_model_filename, "model.py")
        || m.config.default_model_filename.len == 0)
    {
        rc = asprintf(&lib_path, "%s/model.so", version_dir);
    } else {
        rc = asprintf(&lib_path, "%s/%.*s", version_dir,
                      (int) m.config.default_model_filename.len,
                      m.config.default_model_filename.data);
    }
    if (rc < 0) {
        lib_path = NULL;
        err = strdup("out of memory");
        goto failed;
    }

    if (ksv_cuda_lib_open(&lib, lib_path, &err) != 0) {
        goto failed;
    }

    if (ksv_choose_path(&o, &lib, &engine, &device, msg, sizeof(msg)) != 0) {
        err = strdup(msg);
        goto failed;
    }

    engine.lib = &lib;
    engine.config = &m.config;
    engine.model_name = ksv_str_c(o.model);
    engine.model_version = ksv_str_c(o.version);
    engine.instance_name = m.instance_name;

    if (ksv_cuda_engine_init(&engine, msg, sizeof(msg)) != 0) {
        err = strdup(msg);
        goto failed;
    }

    memset(&args, 0, sizeof(args));
    args.struct_size = sizeof(args);
    args.model_config = m.config_json;
    args.model_name = o.model;
    args.model_version = strtoll(o.version, NULL, 10);
    args.model_dir = m.model_dir;
    args.version_dir = version_dir;
    args.instance_name = m.instance_name;
    args.device = engine.gpu ? device : -1;
    args.max_batch_size = m.config.max_batch_size > 0
                          ? (uint32_t) m.config.max_batch_size : 0;

    msg[0] = '\0';
    rc = lib.create(&args, &state, msg, sizeof(msg));
    if (rc != 0) {
        if (asprintf(&err, "%s: %s", lib_path,
                     msg[0] ? msg : "ksv_cuda_model_create failed") < 0)
        {
            err = NULL;
        }
        goto failed;
    }
    created = 1;
    engine.state = state;

    if (ksv_cuda_engine_warmup(&engine, msg, sizeof(msg)) != 0) {
        err = strdup(msg);
        goto failed;
    }

    fprintf(stderr, KSV_CUDA_PROG ": %s: loaded %s on %s\n",
            m.instance_name, lib_path, engine.gpu ? "the GPU" : "the CPU");

    server.run = ksv_cuda_run;
    server.idle = NULL;
    server.stop = ksv_cuda_stop;
    server.data = &engine;

    /* config.pbtxt's model_warmup, before READY (ksv_warmup.h) */
    if (ksv_instance_warmup(&m.config, m.model_dir, o.model, o.version,
                            &server, &err) != 0)
    {
        goto failed;
    }

    if (ksv_instance_send_ready(inst, 1, NULL) != 0) {
        perror(KSV_CUDA_PROG ": sending READY");
        rc = 1;
    } else {
        rc = ksv_instance_serve(inst, &m, &server);
    }
    goto done;

failed:

    ksv_instance_load_failed(inst, err);
    rc = 1;

done:

    /* after a sticky error the context cannot be trusted with cleanup */
    if (!engine.fatal) {
        ksv_cuda_engine_free(&engine);
        if (created) {
            lib.destroy(state);
        }
        ksv_cuda_lib_close(&lib);
    }

    free(err);
    ksv_instance_model_free(&m);
    free(version_dir);
    free(lib_path);
    ksv_arena_free(&arena);
    ksv_instance_close(inst);
    return rc;
}
