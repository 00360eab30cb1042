/*
 * ngx_kserve CUDA backend: loading a model library (see cuda_loader.h).
 */

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda_loader.h"


static int
ksv_cuda_fail(ksv_cuda_lib_t *lib, char **err, const char *fmt,
    const char *a, const char *b)
{
    if (asprintf(err, fmt, a, b) < 0) {
        *err = NULL;
    }
    ksv_cuda_lib_close(lib);
    return -1;
}


/* dlsym with dlerror cleared (a symbol may legitimately be NULL). */
static void *
ksv_cuda_sym(ksv_cuda_lib_t *lib, const char *name)
{
    (void) dlerror();
    return dlsym(lib->handle, name);
}


int
ksv_cuda_lib_open(ksv_cuda_lib_t *lib, const char *path, char **err)
{
    void            *p;
    const uint32_t  *version;
    struct stat      st;
    char             num[32];

    memset(lib, 0, sizeof(ksv_cuda_lib_t));
    lib->path = strdup(path);
    if (lib->path == NULL) {
        *err = strdup("out of memory");
        return -1;
    }

    if (stat(path, &st) != 0) {
        return ksv_cuda_fail(lib, err, "model library %s: %s", path,
                             strerror(errno));
    }

    /* RTLD_LOCAL: two models' symbols never meet; RTLD_NOW: a missing
     * dependency is reported here, not at the first request */
    lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib->handle == NULL) {
        const char  *why = dlerror();

        return ksv_cuda_fail(lib, err, "cannot load model library %s: %s",
                             path, why != NULL ? why : "dlopen failed");
    }

    version = ksv_cuda_sym(lib, "ksv_cuda_abi_version");
    if (version == NULL) {
        return ksv_cuda_fail(lib, err, "model library %s does not export "
                             "%s (it must be built against "
                             "kserve_cuda_backend.h)", path,
                             "ksv_cuda_abi_version");
    }
    lib->abi_version = *version;
    if (lib->abi_version != KSV_CUDA_ABI_VERSION) {
        snprintf(num, sizeof(num), "%u, this instance speaks %u",
                 lib->abi_version, KSV_CUDA_ABI_VERSION);
        return ksv_cuda_fail(lib, err, "model library %s has ABI version %s",
                             path, num);
    }

    /* ISO C has no cast from void * to a function pointer: memcpy */
#define KSV_CUDA_RESOLVE(field, name, required)                         \
    p = ksv_cuda_sym(lib, name);                                              \
    if (p == NULL && (required)) {                                            \
        return ksv_cuda_fail(lib, err, "model library %s does not export "    \
                             "%s", path, name);                               \
    }                                                                         \
    memcpy(&lib->field, &p, sizeof(void *));

    KSV_CUDA_RESOLVE(create, "ksv_cuda_model_create", 1);
    KSV_CUDA_RESOLVE(destroy, "ksv_cuda_model_destroy", 1);
    KSV_CUDA_RESOLVE(output_shapes, "ksv_cuda_model_output_shapes", 0);
    KSV_CUDA_RESOLVE(execute, "ksv_cuda_model_execute", 0);
    KSV_CUDA_RESOLVE(execute_cpu, "ksv_cuda_model_execute_cpu", 0);

#undef KSV_CUDA_RESOLVE

    if (lib->execute == NULL && lib->execute_cpu == NULL) {
        return ksv_cuda_fail(lib, err, "model library %s exports neither "
                             "%s nor ksv_cuda_model_execute_cpu", path,
                             "ksv_cuda_model_execute");
    }

    return 0;
}


void
ksv_cuda_lib_close(ksv_cuda_lib_t *lib)
{
    if (lib->handle != NULL) {
        dlclose(lib->handle);
    }
    free(lib->path);
    memset(lib, 0, sizeof(ksv_cuda_lib_t));
}
