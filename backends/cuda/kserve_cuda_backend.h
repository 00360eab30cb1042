/*
 * ngx_kserve CUDA backend: the C ABI a model library implements.
 *
 * A model with `backend: "cuda"` in its config.pbtxt is a shared library,
 * <repo>/<model>/<version>/<default_model_filename> ("model.so" unless
 * the config names another file).  kserve-cuda-instance dlopen()s it and
 * owns everything around the model's arithmetic: the process, the CUDA
 * device and streams, pinned-host and device buffer pools, batching
 * (requests concatenated along dim 0), the copies, splitting the outputs
 * back per request, errors.  The library only turns input tensors into
 * output tensors.  docs/cuda-backend.md is the prose version of this
 * file; change both.
 *
 * Symbols (all extern "C"; a missing required one, or an ABI version the
 * instance does not know, makes the version UNAVAILABLE with the reason):
 *
 *   ksv_cuda_abi_version          required  const uint32_t, = KSV_CUDA_ABI_VERSION
 *   ksv_cuda_model_create         required
 *   ksv_cuda_model_destroy        required
 *   ksv_cuda_model_execute        GPU path  device pointers, a stream
 *   ksv_cuda_model_execute_cpu    CPU path  host pointers
 *   ksv_cuda_model_output_shapes  optional  outputs whose dims depend on
 *                                           the inputs beyond the batch
 *
 * At least one of the two execute entry points must exist.  The instance
 * picks the GPU path when a GPU is present and the instance_group is
 * KIND_GPU (or KIND_MODEL); the CPU path for KIND_CPU, or when there is
 * no GPU (with one log line), unless KSV_REQUIRE_GPU=1 is set.
 *
 * Threading: every call for one state comes from the same thread, one at
 * a time.  The instance runs one batch at a time, but it may enqueue the
 * next launch's input copy while the model's kernels of the previous one
 * still run (on other streams), so the model must not keep pointers to
 * input or output buffers beyond one execute call.
 *
 * Errors: every function returns 0 on success or a KServe error code
 * (KSV_CUDA_ERR_*, Triton's TRITONSERVER_Error_Code numbers) and writes a
 * NUL-terminated message into err (errlen bytes, always > 0).  The
 * message reaches the client as {"error": "..."} with the code's HTTP
 * status; for create it becomes the version's not-ready reason.
 *
 * This header is plain C99, usable from .c and .cu sources, and needs no
 * CUDA header: ksv_cuda_stream_t is the same type as cudaStream_t.
 */

#ifndef KSERVE_CUDA_BACKEND_H
#define KSERVE_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif


#define KSV_CUDA_ABI_VERSION  1
#define KSV_CUDA_MAX_DIMS     16


/* KServe error codes (Triton's numbering; 0 here means success). */
#define KSV_CUDA_OK               0
#define KSV_CUDA_ERR_INTERNAL     1
#define KSV_CUDA_ERR_NOT_FOUND    2
#define KSV_CUDA_ERR_INVALID_ARG  3
#define KSV_CUDA_ERR_UNAVAILABLE  4
#define KSV_CUDA_ERR_UNSUPPORTED  5


/* Element types; the numbers are the wire protocol's (common/ksv_datatype.h).
 * BYTES (variable-length strings) is not supported by this backend. */
typedef enum {
    KSV_CUDA_TYPE_BOOL = 1,             /* one byte per element */
    KSV_CUDA_TYPE_UINT8 = 2,
    KSV_CUDA_TYPE_UINT16 = 3,
    KSV_CUDA_TYPE_UINT32 = 4,
    KSV_CUDA_TYPE_UINT64 = 5,
    KSV_CUDA_TYPE_INT8 = 6,
    KSV_CUDA_TYPE_INT16 = 7,
    KSV_CUDA_TYPE_INT32 = 8,
    KSV_CUDA_TYPE_INT64 = 9,
    KSV_CUDA_TYPE_FP16 = 10,
    KSV_CUDA_TYPE_FP32 = 11,
    KSV_CUDA_TYPE_FP64 = 12,
    KSV_CUDA_TYPE_BF16 = 14
} ksv_cuda_datatype_t;


/* cudaStream_t without including cuda_runtime.h. */
struct CUstream_st;
typedef struct CUstream_st  *ksv_cuda_stream_t;


/*
 * One tensor of a launch.  Inputs and outputs come in config.pbtxt order
 * (input [ ... ] / output [ ... ]), each with its name.
 *
 * dims is the whole launch's shape: with max_batch_size > 0, dims[0] is
 * the number of rows of the launch (the requests' dim 0 summed) and the
 * rest are the requests' own dims; with max_batch_size = 0, the request's
 * shape as sent.  data is a device pointer for execute, a host pointer
 * for execute_cpu, 256-byte aligned, byte_size bytes (row-major, little
 * endian).  An optional input no request sent has data NULL, ndims 0.
 */
typedef struct {
    const char  *name;
    uint32_t     datatype;              /* ksv_cuda_datatype_t */
    uint32_t     ndims;
    int64_t      dims[KSV_CUDA_MAX_DIMS];
    void        *data;
    uint64_t     byte_size;
} ksv_cuda_tensor_t;


/* What create is told.  Fields are only ever added at the end (the
 * instance sets struct_size); read a field only when struct_size covers
 * it. */
typedef struct {
    uint32_t     struct_size;           /* sizeof(ksv_cuda_model_args_t) */
    const char  *model_config;          /* Triton's config JSON, as
                                           GET /v2/models/{m}/config */
    const char  *model_name;
    int64_t      model_version;
    const char  *model_dir;             /* <repo>/<model>, absolute */
    const char  *version_dir;           /* <repo>/<model>/<version>,
                                           where weights usually live */
    const char  *instance_name;         /* e.g. "digits_mlp_0_0" */
    int32_t      device;                /* CUDA device ordinal, already
                                           current (cudaSetDevice); -1:
                                           the CPU path, no CUDA call may
                                           be made at all */
    uint32_t     max_batch_size;        /* 0: no batch dimension */
} ksv_cuda_model_args_t;


/*
 * ksv_cuda_abi_version: define it with KSV_CUDA_DEFINE_ABI_VERSION; the
 * instance refuses a library whose number differs from its own.
 */
#define KSV_CUDA_DEFINE_ABI_VERSION \
    const uint32_t ksv_cuda_abi_version = KSV_CUDA_ABI_VERSION

extern const uint32_t ksv_cuda_abi_version;

/*
 * Loads the model for one instance: weights, workspaces (size them for
 * max_batch_size rows: execute runs on the request path, where nothing
 * should be allocated), cuBLAS handles.  *state is handed back to every
 * other call.  On the GPU path the device is current; with device -1 the
 * library must not touch CUDA (the machine may have no driver).
 */
int ksv_cuda_model_create(const ksv_cuda_model_args_t *args, void **state,
    char *err, size_t errlen);

/* Frees what create allocated.  The instance has synchronized the
 * device before the call.  Never called with a NULL state. */
void ksv_cuda_model_destroy(void *state);

/*
 * Optional: output shape negotiation, called before each launch.
 * outputs[i].dims arrive filled from the config (dims[0] = rows when
 * max_batch_size > 0) with -1 where the config says -1; set every -1
 * (data is NULL; do not touch byte_size).  Without this function a
 * config with -1 in an output's dims cannot be served.
 */
int ksv_cuda_model_output_shapes(void *state,
    const ksv_cuda_tensor_t *inputs, uint32_t ninputs,
    ksv_cuda_tensor_t *outputs, uint32_t noutputs, char *err, size_t errlen);

/*
 * The GPU path: enqueue the launch on `stream` (inputs already copied,
 * outputs allocated, both in device memory) and return; the instance
 * synchronizes.  Launch kernels and cuBLAS calls on `stream` only (use
 * cublasSetStream).  A nonzero return fails every request of the launch
 * with that code and message; so does a CUDA error the instance finds
 * after the call (cudaGetLastError, or at the stream's synchronization).
 * A sticky error (a faulting kernel) restarts the instance.
 */
int ksv_cuda_model_execute(void *state, const ksv_cuda_tensor_t *inputs,
    uint32_t ninputs, ksv_cuda_tensor_t *outputs, uint32_t noutputs,
    ksv_cuda_stream_t stream, char *err, size_t errlen);

/* The CPU path: the same contract on host memory, synchronously. */
int ksv_cuda_model_execute_cpu(void *state, const ksv_cuda_tensor_t *inputs,
    uint32_t ninputs, ksv_cuda_tensor_t *outputs, uint32_t noutputs,
    char *err, size_t errlen);


/* Function types, for dlsym. */
typedef int (*ksv_cuda_model_create_fn)(const ksv_cuda_model_args_t *,
    void **, char *, size_t);
typedef void (*ksv_cuda_model_destroy_fn)(void *);
typedef int (*ksv_cuda_model_output_shapes_fn)(void *,
    const ksv_cuda_tensor_t *, uint32_t, ksv_cuda_tensor_t *, uint32_t,
    char *, size_t);
typedef int (*ksv_cuda_model_execute_fn)(void *, const ksv_cuda_tensor_t *,
    uint32_t, ksv_cuda_tensor_t *, uint32_t, ksv_cuda_stream_t, char *,
    size_t);
typedef int (*ksv_cuda_model_execute_cpu_fn)(void *,
    const ksv_cuda_tensor_t *, uint32_t, ksv_cuda_tensor_t *, uint32_t,
    char *, size_t);

#ifdef __cplusplus
}
#endif

#endif /* KSERVE_CUDA_BACKEND_H */
