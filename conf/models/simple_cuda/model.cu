/*
 * simple_cuda: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 on
 * INT32 [rows, 16] (backends/cuda/kserve_cuda_backend.h is the ABI).
 *
 * The smallest complete CUDA model: one kernel on the GPU path, the same
 * loop on the CPU path.  Built by nvcc when present, otherwise by gcc as
 * C (the __CUDACC__ parts drop out and only the CPU path remains).
 * Integer overflow wraps, as on the GPU (computed in uint32_t).
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kserve_cuda_backend.h"


KSV_CUDA_DEFINE_ABI_VERSION;

/* no state: the instance still gets a non-NULL pointer to hand back */
static int  simple_state;


#ifdef __CUDACC__

__global__ static void
simple_add_sub(const int32_t *a, const int32_t *b, int32_t *sum,
    int32_t *diff, uint64_t n)
{
    uint64_t  i = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x;

    if (i < n) {
        sum[i] = (int32_t) ((uint32_t) a[i] + (uint32_t) b[i]);
        diff[i] = (int32_t) ((uint32_t) a[i] - (uint32_t) b[i]);
    }
}

#endif


#ifdef __cplusplus
extern "C" {
#endif


int
ksv_cuda_model_create(const ksv_cuda_model_args_t *args, void **state,
    char *err, size_t errlen)
{
    (void) args;
    (void) err;
    (void) errlen;
    *state = &simple_state;
    return KSV_CUDA_OK;
}


void
ksv_cuda_model_destroy(void *state)
{
    (void) state;
}


/* the four tensors share one element count: the config fixes [-1, 16] */
static int
simple_check(const ksv_cuda_tensor_t *in, uint32_t nin,
    const ksv_cuda_tensor_t *out, uint32_t nout, char *err, size_t errlen)
{
    if (nin != 2 || nout != 2 || in[0].byte_size != in[1].byte_size
        || out[0].byte_size != in[0].byte_size
        || out[1].byte_size != in[0].byte_size)
    {
        snprintf(err, errlen, "simple_cuda expects two INT32 inputs and two "
                 "outputs of one shape");
        return KSV_CUDA_ERR_INVALID_ARG;
    }
    return KSV_CUDA_OK;
}


int
ksv_cuda_model_execute_cpu(void *state, const ksv_cuda_tensor_t *in,
    uint32_t nin, ksv_cuda_tensor_t *out, uint32_t nout, char *err,
    size_t errlen)
{
    int             rc;
    uint64_t        i, n;
    const int32_t  *a, *b;
    int32_t        *sum, *diff;

    (void) state;
    rc = simple_check(in, nin, out, nout, err, errlen);
    if (rc != KSV_CUDA_OK) {
        return rc;
    }

    n = in[0].byte_size / sizeof(int32_t);
    a = (const int32_t *) in[0].data;
    b = (const int32_t *) in[1].data;
    sum = (int32_t *) out[0].data;
    diff = (int32_t *) out[1].data;

    for (i = 0; i < n; i++) {
        sum[i] = (int32_t) ((uint32_t) a[i] + (uint32_t) b[i]);
        diff[i] = (int32_t) ((uint32_t) a[i] - (uint32_t) b[i]);
    }
    return KSV_CUDA_OK;
}


#ifdef __CUDACC__

int
ksv_cuda_model_execute(void *state, const ksv_cuda_tensor_t *in,
    uint32_t nin, ksv_cuda_tensor_t *out, uint32_t nout,
    ksv_cuda_stream_t stream, char *err, size_t errlen)
{
    int          rc;
    uint64_t     n;
    unsigned     blocks;
    cudaError_t  ce;

    (void) state;
    rc = simple_check(in, nin, out, nout, err, errlen);
    if (rc != KSV_CUDA_OK) {
        return rc;
    }

    n = in[0].byte_size / sizeof(int32_t);
    if (n == 0) {
        return KSV_CUDA_OK;
    }
    blocks = (unsigned) ((n + 255) / 256);
    simple_add_sub<<<blocks, 256, 0, stream>>>(
        (const int32_t *) in[0].data, (const int32_t *) in[1].data,
        (int32_t *) out[0].data, (int32_t *) out[1].data, n);

    ce = cudaGetLastError();
    if (ce != cudaSuccess) {
        snprintf(err, errlen, "simple_add_sub launch: %s",
                 cudaGetErrorString(ce));
        return KSV_CUDA_ERR_INTERNAL;
    }
    return KSV_CUDA_OK;
}

#endif


#ifdef __cplusplus
}
#endif
