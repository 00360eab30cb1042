/*
 * ngx_kserve Python backend: the embedded interpreter and the model
 * (see py_runtime.h).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_instance.h"
#include "py_runtime.h"
#include "py_tensor.h"


/*
 * The interpreter whose standard library and dist-packages we use.  As
 * program_name it makes sys.prefix and sys.executable point at it (the
 * latter matters to models using multiprocessing or subprocess).
 */
#ifndef KSV_PYTHON_EXECUTABLE
#define KSV_PYTHON_EXECUTABLE  "/usr/bin/python3.11"
#endif


static char *ksv_strdup_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));


static char *
ksv_strdup_printf(const char *fmt, ...)
{
    char     *s;
    va_list   ap;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
    }
    va_end(ap);
    return s;
}


char *
ksv_py_exception_text(void)
{
    char        *text;
    PyObject    *type, *value, *tb, *name, *msg, *mod, *rc;
    const char  *n, *m;

    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return strdup("unknown error (no Python exception set)");
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }

    name = PyObject_GetAttrString(type, "__name__");
    msg = value != NULL ? PyObject_Str(value) : NULL;
    PyErr_Clear();

    n = name != NULL && PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    m = msg != NULL ? PyUnicode_AsUTF8(msg) : NULL;
    PyErr_Clear();

    if (m != NULL && m[0] != '\0') {
        text = ksv_strdup_printf("%s: %s", n != NULL ? n : "Exception", m);
    } else {
        text = ksv_strdup_printf("%s", n != NULL ? n : "Exception");
    }
    Py_XDECREF(name);
    Py_XDECREF(msg);

    /* the traceback goes to stderr (the worker's log); not through
     * PyErr_Print, which would exit the process on SystemExit */
    mod = PyImport_ImportModule("traceback");
    rc = mod != NULL
         ? PyObject_CallMethod(mod, "print_exception", "OOO", type,
                               value != NULL ? value : Py_None,
                               tb != NULL ? tb : Py_None)
         : NULL;
    Py_XDECREF(rc);
    Py_XDECREF(mod);
    PyErr_Clear();

    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return text;
}


/* Like ksv_py_exception_text, prefixed with `what`. */
static char *
ksv_py_exception_with(const char *what)
{
    char  *text, *s;

    text = ksv_py_exception_text();
    s = ksv_strdup_printf("%s: %s", what, text != NULL ? text : "?");
    free(text);
    return s;
}


/*
 * _kserve_instance: what triton_python_backend_utils asks of the
 * instance process itself (InferenceRequest.is_cancelled()).
 */

static PyObject *
ksv_py_is_cancelled(PyObject *self, PyObject *arg)
{
    unsigned long long  id;

    (void) self;

    id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long) -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyBool_FromLong(ksv_instance_is_cancelled((uint64_t) id));
}


static PyMethodDef  ksv_py_instance_methods[] = {
    { "is_cancelled", ksv_py_is_cancelled, METH_O,
      "Whether the client of running request `id` went away." },
    { NULL, NULL, 0, NULL }
};

static struct PyModuleDef  ksv_py_instance_module = {
    PyModuleDef_HEAD_INIT, "_kserve_instance", NULL, -1,
    ksv_py_instance_methods, NULL, NULL, NULL, NULL
};


static PyObject *
ksv_py_instance_init(void)
{
    return PyModule_Create(&ksv_py_instance_module);
}


int
ksv_py_start(const char *utils_dir, const char *env_site, char **err)
{
    int        rc;
    PyObject  *path, *dir;
    PyConfig   config;
    PyStatus   status;

    PyImport_AppendInittab("_kserve_instance", ksv_py_instance_init);

    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;   /* SIGTERM/SIGINT are ours */
    config.buffered_stdio = 0;            /* model prints reach the log */
    config.parse_argv = 0;
    config.site_import = 1;               /* Debian's dist-packages */

    status = PyConfig_SetBytesString(&config, &config.program_name,
                                     KSV_PYTHON_EXECUTABLE);
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);

    if (PyStatus_Exception(status)) {
        *err = ksv_strdup_printf("cannot start Python: %s",
                                 status.err_msg != NULL ? status.err_msg
                                                        : "error");
        return -1;
    }

    /* our triton_python_backend_utils must win over any installed one */
    path = PySys_GetObject("path");                /* borrowed */
    dir = PyUnicode_DecodeFSDefault(utils_dir);
    rc = path != NULL && dir != NULL ? PyList_Insert(path, 0, dir) : -1;
    Py_XDECREF(dir);

    /* EXECUTION_ENV_PATH: its packages ahead of the system's (py_env.h) */
    if (rc == 0 && env_site != NULL) {
        dir = PyUnicode_DecodeFSDefault(env_site);
        rc = dir != NULL ? PyList_Insert(path, 1, dir) : -1;
        Py_XDECREF(dir);
    }

    if (rc != 0 || ksv_py_tensor_init() != 0) {
        *err = ksv_py_exception_with("cannot import numpy or "
                                     "triton_python_backend_utils");
        return -1;
    }

    return 0;
}


static int
ksv_py_path_append(const char *dir)
{
    int        rc;
    PyObject  *path, *d;

    path = PySys_GetObject("path");
    d = PyUnicode_DecodeFSDefault(dir);
    rc = path != NULL && d != NULL ? PyList_Append(path, d) : -1;
    Py_XDECREF(d);
    return rc;
}


/* Triton's auto_complete_config: the completed configuration's JSON
 * (malloc'd), or NULL with *err set. */
static char *
ksv_py_auto_complete(PyObject *cls, const char *config, char **err)
{
    char        *out;
    PyObject    *pb, *res;
    const char  *text;

    pb = PyImport_ImportModule("triton_python_backend_utils");
    if (pb == NULL) {
        *err = ksv_py_exception_with("triton_python_backend_utils");
        return NULL;
    }
    res = PyObject_CallMethod(pb, "_auto_complete", "Os", cls, config);
    Py_DECREF(pb);
    if (res == NULL) {
        *err = ksv_py_exception_with("auto_complete_config() failed");
        return NULL;
    }
    text = PyUnicode_AsUTF8(res);
    out = text != NULL ? strdup(text) : NULL;
    Py_DECREF(res);
    if (out == NULL) {
        *err = ksv_py_exception_with("auto_complete_config()");
    }
    return out;
}


static PyObject *
ksv_py_args_dict(const ksv_py_args_t *a)
{
    size_t       i;
    PyObject    *dict, *v;
    const char  *kv[][2] = {
        { "model_config", a->model_config },
        { "model_instance_kind", a->model_instance_kind },
        { "model_instance_name", a->model_instance_name },
        { "model_instance_device_id", a->model_instance_device_id },
        { "model_repository", a->model_repository },
        { "model_version", a->model_version },
        { "model_name", a->model_name },
    };

    dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    for (i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        v = PyUnicode_DecodeUTF8(kv[i][1], strlen(kv[i][1]), "replace");
        if (v == NULL || PyDict_SetItemString(dict, kv[i][0], v) != 0) {
            Py_XDECREF(v);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(v);
    }
    return dict;
}


int
ksv_py_model_load(ksv_py_model_t *m, const char *model_dir,
    const char *filename, const ksv_py_args_t *args, char **err)
{
    int            rc;
    char          *version_dir, *module_name, *completed;
    const char    *json;
    ksv_py_args_t  a;
    size_t      flen;
    PyObject   *module, *cls, *pb, *dict, *res;

    memset(m, 0, sizeof(*m));
    m->instance_name = args->model_instance_name;

    flen = strlen(filename);
    if (flen <= 3 || strcmp(filename + flen - 3, ".py") != 0
        || strchr(filename, '/') != NULL)
    {
        *err = ksv_strdup_printf("model file name must end with '.py' and "
                                 "name a file in the version directory: "
                                 "\"%s\"", filename);
        return -1;
    }

    /* as Triton's stub: version dir and model dir on sys.path, then
     * import "<version>.<file>" (the version dir is a namespace package,
     * so a model may import its siblings both ways) */
    version_dir = ksv_strdup_printf("%s/%s", model_dir, args->model_version);
    module_name = ksv_strdup_printf("%s.%.*s", args->model_version,
                                    (int) (flen - 3), filename);
    if (version_dir == NULL || module_name == NULL) {
        free(version_dir);
        free(module_name);
        *err = strdup("out of memory");
        return -1;
    }

    rc = ksv_py_path_append(version_dir);
    if (rc == 0) {
        rc = ksv_py_path_append(model_dir);
    }
    free(version_dir);
    if (rc != 0) {
        free(module_name);
        *err = ksv_py_exception_with("cannot set sys.path");
        return -1;
    }

    module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        char  *what = ksv_strdup_printf("failed to load %s/%s", model_dir,
                                        filename);
        free(module_name);
        *err = ksv_py_exception_with(what != NULL ? what : "import");
        free(what);
        return -1;
    }
    free(module_name);

    cls = PyObject_GetAttrString(module, "TritonPythonModel");
    Py_DECREF(module);
    if (cls == NULL) {
        PyErr_Clear();
        *err = ksv_strdup_printf("%s defines no class TritonPythonModel",
                                 filename);
        return -1;
    }

    /* Triton calls it at load, before the model exists */
    a = *args;
    if (args->completed != NULL
        && PyObject_HasAttrString(cls, "auto_complete_config"))
    {
        completed = ksv_py_auto_complete(cls, args->model_config, err);
        if (completed == NULL) {
            Py_DECREF(cls);
            return -1;
        }
        rc = args->completed(args->completed_data, completed, &json, err);
        free(completed);
        if (rc != 0) {
            Py_DECREF(cls);
            return -1;
        }
        a.model_config = json;
    }
    args = &a;

    m->instance = PyObject_CallNoArgs(cls);
    Py_DECREF(cls);
    if (m->instance == NULL) {
        *err = ksv_py_exception_with("TritonPythonModel() failed");
        return -1;
    }

    m->execute = PyObject_GetAttrString(m->instance, "execute");
    if (m->execute == NULL) {
        PyErr_Clear();
        *err = strdup("TritonPythonModel has no execute() method");
        return -1;
    }

    pb = PyImport_ImportModule("triton_python_backend_utils");
    if (pb != NULL) {
        m->make_request = PyObject_GetAttrString(pb, "_request");
        m->response_type = PyObject_GetAttrString(pb, "InferenceResponse");
        Py_DECREF(pb);
    }
    m->model_name = PyUnicode_DecodeUTF8(args->model_name,
                                         strlen(args->model_name), "replace");
    m->model_version = PyLong_FromString(args->model_version, NULL, 10);
    if (m->make_request == NULL || m->response_type == NULL
        || m->model_name == NULL || m->model_version == NULL)
    {
        *err = ksv_py_exception_with("triton_python_backend_utils");
        return -1;
    }

    if (!PyObject_HasAttrString(m->instance, "initialize")) {
        return 0;
    }

    dict = ksv_py_args_dict(args);
    if (dict == NULL) {
        *err = ksv_py_exception_with("cannot build initialize() args");
        return -1;
    }
    res = PyObject_CallMethod(m->instance, "initialize", "O", dict);
    Py_DECREF(dict);
    if (res == NULL) {
        *err = ksv_py_exception_with("initialize() failed");
        return -1;
    }
    Py_DECREF(res);

    return 0;
}


void
ksv_py_model_finalize(ksv_py_model_t *m)
{
    char      *text;
    PyObject  *res;

    if (m->instance != NULL && PyObject_HasAttrString(m->instance, "finalize"))
    {
        res = PyObject_CallMethod(m->instance, "finalize", NULL);
        if (res == NULL) {
            text = ksv_py_exception_text();
            fprintf(stderr, KSV_PY_PROG ": %s: finalize() "
                    "failed: %s\n", m->instance_name, text ? text : "?");
            free(text);
        }
        Py_XDECREF(res);
    }

    Py_CLEAR(m->execute);
    Py_CLEAR(m->instance);
    Py_CLEAR(m->make_request);
    Py_CLEAR(m->response_type);
    Py_CLEAR(m->model_name);
    Py_CLEAR(m->model_version);
}


void
ksv_py_stop(void)
{
    if (Py_IsInitialized()) {
        (void) Py_FinalizeEx();
    }
}
