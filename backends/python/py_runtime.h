/*
 * ngx_kserve Python backend: the embedded interpreter and the model.
 *
 * One instance process runs one TritonPythonModel object, as Triton's
 * python stub does: the model file is imported as "<version>.<file>" with
 * the version directory and the model directory on sys.path, the class
 * is instantiated, initialize(args) is called once, execute(requests)
 * once per batch, finalize() at exit.
 *
 * The interpreter is isolated from the environment and the user's site
 * directory (PYTHON* variables are ignored); the system site (Debian's
 * dist-packages, where numpy lives) stays on sys.path.  The calling
 * thread holds the GIL from ksv_py_start() on; release it around
 * blocking calls that do not touch Python.
 */

#ifndef KSV_PY_RUNTIME_H
#define KSV_PY_RUNTIME_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>


#define KSV_PY_PROG  "kserve-python-instance"     /* in log lines */

/* What initialize(args) receives; every value is a string (Triton). */
typedef struct {
    const char  *model_config;          /* JSON text */
    const char  *model_instance_kind;   /* "CPU", "GPU" */
    const char  *model_instance_name;
    const char  *model_instance_device_id;
    const char  *model_repository;      /* the model's own directory */
    const char  *model_version;
    const char  *model_name;

    /*
     * NULL, or called when the class has auto_complete_config: with the
     * completed configuration's JSON, before initialize(); returns 0
     * with the JSON initialize() gets in *json (the backend's own
     * rendering of it), or -1 with a malloc'd message in *err.
     */
    int        (*completed)(void *data, const char *in, const char **json,
                            char **err);
    void        *completed_data;
} ksv_py_args_t;

typedef struct {
    PyObject    *instance;              /* the TritonPythonModel object */
    PyObject    *execute;               /* its bound execute method */
    PyObject    *make_request;          /* pb_utils._request */
    PyObject    *response_type;         /* pb_utils.InferenceResponse */
    PyObject    *model_name;            /* str, for requests */
    PyObject    *model_version;         /* int, for requests */
    const char  *instance_name;
} ksv_py_model_t;


/*
 * Starts the interpreter with utils_dir first on sys.path, then env_site
 * (an execution environment's site-packages, py_env.h; may be NULL).
 * Returns -1 with a malloc'd message in *err.
 */
int ksv_py_start(const char *utils_dir, const char *env_site, char **err);

/*
 * Imports <model_dir>/<version>/<filename>, runs the class's static
 * auto_complete_config (Triton's) when it has one (args->completed
 * learns the result), instantiates TritonPythonModel and calls
 * initialize(args) if the class has it.
 * Returns -1 with a malloc'd message in *err (the Python exception as
 * "Type: message"; its traceback goes to stderr).
 */
int ksv_py_model_load(ksv_py_model_t *m, const char *model_dir,
    const char *filename, const ksv_py_args_t *args, char **err);

/* Calls finalize() if the model has it; errors are only logged. */
void ksv_py_model_finalize(ksv_py_model_t *m);

/* Finalizes the interpreter (flushes stdio, runs atexit handlers). */
void ksv_py_stop(void);

/*
 * The pending Python exception as a malloc'd "Type: message" (NULL when
 * out of memory); prints its traceback to stderr and clears it.  Never
 * exits the process, even for SystemExit.
 */
char *ksv_py_exception_text(void);

#endif /* KSV_PY_RUNTIME_H */
