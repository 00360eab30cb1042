/*
 * ngx_kserve CUDA backend: loading a model library.
 *
 * dlopen()s <version dir>/<default_model_filename> and resolves the ABI
 * of kserve_cuda_backend.h.  Everything that can be wrong with the file
 * (missing, not a shared object, unresolved dependencies, missing or
 * mismatched symbols) is reported in one sentence that names the file,
 * because it becomes the version's not-ready reason a client reads.
 */

#ifndef KSV_CUDA_LOADER_H
#define KSV_CUDA_LOADER_H

#include "kserve_cuda_backend.h"


typedef struct {
    void                             *handle;
    char                             *path;
    uint32_t                          abi_version;
    ksv_cuda_model_create_fn          create;
    ksv_cuda_model_destroy_fn         destroy;
    ksv_cuda_model_output_shapes_fn   output_shapes;   /* optional */
    ksv_cuda_model_execute_fn         execute;         /* GPU path */
    ksv_cuda_model_execute_cpu_fn     execute_cpu;     /* CPU path */
} ksv_cuda_lib_t;


/* Returns 0, or -1 with a malloc'd message in *err (lib is then
 * closed). */
int ksv_cuda_lib_open(ksv_cuda_lib_t *lib, const char *path, char **err);

void ksv_cuda_lib_close(ksv_cuda_lib_t *lib);

#endif /* KSV_CUDA_LOADER_H */
