/*
 * digits_mlp: a 64-64-10 MLP classifying 8x8 handwritten digits
 * (scikit-learn's load_digits; train.py trains it and writes the
 * weights next to this library as .npy files).
 *
 *   INPUT0  FP32 [rows, 64]   pixel values 0..16
 *   OUTPUT0 FP32 [rows, 10]   softmax(relu(x W1 + b1) W2 + b2)
 *
 * GPU path: two cuBLAS SGEMMs (FP32, no TF32) with a bias + ReLU kernel
 * between them and a bias + softmax kernel after, all on the instance's
 * compute stream; the hidden activations live in a workspace sized for
 * max_batch_size rows at create.  CPU path: the same arithmetic in C.
 * Built by nvcc when present (links cuBLAS), otherwise by gcc as C with
 * the CPU path only.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __CUDACC__
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

#include "kserve_cuda_backend.h"


#define DIGITS_IN       64
#define DIGITS_CLASSES  10
#define DIGITS_HIDDEN_MAX 4096


typedef struct {
    uint32_t     hidden;
    uint32_t     max_rows;
    float       *w1, *b1, *w2, *b2;     /* host copies (CPU path) */
    int          gpu;
#ifdef __CUDACC__
    float       *d_w1, *d_b1, *d_w2, *d_b2;
    float       *d_h;                   /* [max_rows, hidden] workspace */
    cublasHandle_t  blas;
#endif
} digits_t;


KSV_CUDA_DEFINE_ABI_VERSION;


/* ---- weights ----------------------------------------------------------- */

/*
 * Reads a float32 C-order .npy file of 1 or 2 dims into a malloc'd
 * array; rows/cols receive the shape (cols = 1 for 1-D).  Returns NULL
 * with the reason in err.
 */
static float *
digits_load_npy(const char *dir, const char *name, uint32_t *rows,
    uint32_t *cols, char *err, size_t errlen)
{
    FILE           *f;
    char            path[4096], header[1024], *p;
    float          *data;
    size_t          hlen, n;
    unsigned long   d0, d1;
    unsigned char   pre[10];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s (run `make models`)", path);
        return NULL;
    }

    /* magic, version 1.0, u16 header length, then a Python dict */
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0
        || pre[6] != 1)
    {
        snprintf(err, errlen, "%s is not a version 1 .npy file", path);
        fclose(f);
        return NULL;
    }
    hlen = (size_t) pre[8] | ((size_t) pre[9] << 8);
    if (hlen >= sizeof(header) || fread(header, 1, hlen, f) != hlen) {
        snprintf(err, errlen, "%s: bad .npy header", path);
        fclose(f);
        return NULL;
    }
    header[hlen] = '\0';

    p = strstr(header, "'shape': (");
    d1 = 1;
    if (strstr(header, "'descr': '<f4'") == NULL
        || strstr(header, "'fortran_order': False") == NULL || p == NULL
        || (sscanf(p, "'shape': (%lu, %lu)", &d0, &d1) < 1)
        || d0 == 0 || d1 == 0 || d0 > 65536 || d1 > 65536)
    {
        snprintf(err, errlen, "%s: expected a C-order float32 array of 1 or "
                 "2 dims", path);
        fclose(f);
        return NULL;
    }

    n = (size_t) d0 * d1;
    data = (float *) malloc(n * sizeof(float));
    if (data == NULL || fread(data, sizeof(float), n, f) != n) {
        snprintf(err, errlen, "%s: short read", path);
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);

    *rows = (uint32_t) d0;
    *cols = (uint32_t) d1;
    return data;
}


static void
digits_free(digits_t *m)
{
#ifdef __CUDACC__
    if (m->gpu) {
        cudaFree(m->d_w1);
        cudaFree(m->d_b1);
        cudaFree(m->d_w2);
        cudaFree(m->d_b2);
        cudaFree(m->d_h);
        if (m->blas != NULL) {
            cublasDestroy(m->blas);
        }
    }
#endif
    free(m->w1);
    free(m->b1);
    free(m->w2);
    free(m->b2);
    free(m);
}


/* ---- the CPU path ------------------------------------------------------ */

/* One row: softmax(relu(x W1 + b1) W2 + b2), W in (in, out) layout. */
static void
digits_row_cpu(const digits_t *m, const float *x, float *h, float *y)
{
    uint32_t  i, j;
    float     max, sum;

    for (j = 0; j < m->hidden; j++) {
        h[j] = m->b1[j];
    }
    for (i = 0; i < DIGITS_IN; i++) {
        const float  xi = x[i];
        const float *w = &m->w1[(size_t) i * m->hidden];

        for (j = 0; j < m->hidden; j++) {
            h[j] += xi * w[j];
        }
    }
    for (j = 0; j < m->hidden; j++) {
        h[j] = h[j] > 0.0f ? h[j] : 0.0f;
    }

    for (j = 0; j < DIGITS_CLASSES; j++) {
        y[j] = m->b2[j];
    }
    for (i = 0; i < m->hidden; i++) {
        const float  hi = h[i];
        const float *w = &m->w2[(size_t) i * DIGITS_CLASSES];

        for (j = 0; j < DIGITS_CLASSES; j++) {
            y[j] += hi * w[j];
        }
    }

    max = y[0];
    for (j = 1; j < DIGITS_CLASSES; j++) {
        max = y[j] > max ? y[j] : max;
    }
    sum = 0.0f;
    for (j = 0; j < DIGITS_CLASSES; j++) {
        y[j] = expf(y[j] - max);
        sum += y[j];
    }
    for (j = 0; j < DIGITS_CLASSES; j++) {
        y[j] /= sum;
    }
}


/* ---- the GPU path ------------------------------------------------------ */

#ifdef __CUDACC__

/* h[r, j] = max(h[r, j] + b[j], 0) */
__global__ static void
digits_bias_relu(float *h, const float *b, uint32_t rows, uint32_t cols)
{
    uint64_t  i = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x;

    if (i < (uint64_t) rows * cols) {
        float  v = h[i] + b[i % cols];

        h[i] = v > 0.0f ? v : 0.0f;
    }
}


/* y[r, :] = softmax(y[r, :] + b), one thread per row (10 classes) */
__global__ static void
digits_bias_softmax(float *y, const float *b, uint32_t rows)
{
    uint32_t  r = blockIdx.x * blockDim.x + threadIdx.x;
    uint32_t  j;
    float     v[DIGITS_CLASSES], max, sum;
    float    *row;

    if (r >= rows) {
        return;
    }
    row = y + (size_t) r * DIGITS_CLASSES;
    max = -INFINITY;
    for (j = 0; j < DIGITS_CLASSES; j++) {
        v[j] = row[j] + b[j];
        max = v[j] > max ? v[j] : max;
    }
    sum = 0.0f;
    for (j = 0; j < DIGITS_CLASSES; j++) {
        v[j] = expf(v[j] - max);
        sum += v[j];
    }
    for (j = 0; j < DIGITS_CLASSES; j++) {
        row[j] = v[j] / sum;
    }
}


static int
digits_upload(float **dst, const float *src, size_t n, char *err,
    size_t errlen)
{
    cudaError_t  ce;

    ce = cudaMalloc((void **) dst, n * sizeof(float));
    if (ce == cudaSuccess) {
        ce = cudaMemcpy(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice);
    }
    if (ce != cudaSuccess) {
        snprintf(err, errlen, "uploading the weights: %s",
                 cudaGetErrorString(ce));
        return -1;
    }
    return 0;
}


static int
digits_create_gpu(digits_t *m, char *err, size_t errlen)
{
    cudaError_t     ce;
    cublasStatus_t  bs;

    m->gpu = 1;
    if (digits_upload(&m->d_w1, m->w1, (size_t) DIGITS_IN * m->hidden, err,
                      errlen) != 0
        || digits_upload(&m->d_b1, m->b1, m->hidden, err, errlen) != 0
        || digits_upload(&m->d_w2, m->w2,
                         (size_t) m->hidden * DIGITS_CLASSES, err, errlen)
           != 0
        || digits_upload(&m->d_b2, m->b2, DIGITS_CLASSES, err, errlen) != 0)
    {
        return -1;
    }

    ce = cudaMalloc((void **) &m->d_h,
                    (size_t) m->max_rows * m->hidden * sizeof(float));
    if (ce != cudaSuccess) {
        snprintf(err, errlen, "allocating the hidden-layer workspace: %s",
                 cudaGetErrorString(ce));
        return -1;
    }

    bs = cublasCreate(&m->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        m->blas = NULL;
        snprintf(err, errlen, "cublasCreate: %s", cublasGetStatusString(bs));
        return -1;
    }
    /* plain FP32: results must agree with the numpy twin to 1e-5 */
    cublasSetMathMode(m->blas, CUBLAS_DEFAULT_MATH);
    return 0;
}

#endif


/* ---- the ABI ----------------------------------------------------------- */

#ifdef __cplusplus
extern "C" {
#endif


int
ksv_cuda_model_create(const ksv_cuda_model_args_t *args, void **state,
    char *err, size_t errlen)
{
    uint32_t   r, c, r2, c2, rb, cb;
    digits_t  *m;

    m = (digits_t *) calloc(1, sizeof(digits_t));
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return KSV_CUDA_ERR_INTERNAL;
    }
    m->max_rows = args->max_batch_size ? args->max_batch_size : 1;

    m->w1 = digits_load_npy(args->version_dir, "W1.npy", &r, &c, err, errlen);
    if (m->w1 == NULL) {
        goto failed;
    }
    m->hidden = c;
    m->b1 = digits_load_npy(args->version_dir, "b1.npy", &rb, &cb, err,
                            errlen);
    if (m->b1 == NULL) {
        goto failed;
    }
    m->w2 = digits_load_npy(args->version_dir, "W2.npy", &r2, &c2, err,
                            errlen);
    if (m->w2 == NULL) {
        goto failed;
    }
    if (r != DIGITS_IN || c > DIGITS_HIDDEN_MAX || rb != c || cb != 1
        || r2 != c || c2 != DIGITS_CLASSES)
    {
        snprintf(err, errlen, "weights do not form a %d-h-%d MLP "
                 "(W1 [%u, %u], b1 [%u], W2 [%u, %u])", DIGITS_IN,
                 DIGITS_CLASSES, r, c, rb, r2, c2);
        goto failed;
    }
    m->b2 = digits_load_npy(args->version_dir, "b2.npy", &rb, &cb, err,
                            errlen);
    if (m->b2 == NULL) {
        goto failed;
    }
    if (rb != DIGITS_CLASSES || cb != 1) {
        snprintf(err, errlen, "b2 has %u elements, expected %d", rb,
                 DIGITS_CLASSES);
        goto failed;
    }

    if (args->device >= 0) {
#ifdef __CUDACC__
        if (digits_create_gpu(m, err, errlen) != 0) {
            goto failed;
        }
#else
        snprintf(err, errlen, "this library was built without CUDA");
        goto failed;
#endif
    }

    *state = m;
    return KSV_CUDA_OK;

failed:

    digits_free(m);
    return KSV_CUDA_ERR_INTERNAL;
}


void
ksv_cuda_model_destroy(void *state)
{
    digits_free((digits_t *) state);
}


static int
digits_check(const digits_t *m, const ksv_cuda_tensor_t *in, uint32_t nin,
    const ksv_cuda_tensor_t *out, uint32_t nout, uint64_t *rows, char *err,
    size_t errlen)
{
    if (nin != 1 || nout != 1 || in[0].ndims != 2
        || in[0].dims[1] != DIGITS_IN || out[0].ndims != 2
        || out[0].dims[1] != DIGITS_CLASSES || out[0].dims[0] != in[0].dims[0]
        || in[0].dims[0] < 0 || (uint64_t) in[0].dims[0] > m->max_rows)
    {
        snprintf(err, errlen, "digits_mlp expects INPUT0 [rows <= %u, %d] "
                 "and OUTPUT0 [rows, %d]", m->max_rows, DIGITS_IN,
                 DIGITS_CLASSES);
        return KSV_CUDA_ERR_INVALID_ARG;
    }
    *rows = (uint64_t) in[0].dims[0];
    return KSV_CUDA_OK;
}


int
ksv_cuda_model_execute_cpu(void *state, const ksv_cuda_tensor_t *in,
    uint32_t nin, ksv_cuda_tensor_t *out, uint32_t nout, char *err,
    size_t errlen)
{
    int            rc;
    float          h[DIGITS_HIDDEN_MAX];
    uint64_t       rows, r;
    const float   *x;
    float         *y;
    digits_t      *m = (digits_t *) state;

    rc = digits_check(m, in, nin, out, nout, &rows, err, errlen);
    if (rc != KSV_CUDA_OK) {
        return rc;
    }

    x = (const float *) in[0].data;
    y = (float *) out[0].data;
    for (r = 0; r < rows; r++) {
        digits_row_cpu(m, x + r * DIGITS_IN, h, y + r * DIGITS_CLASSES);
    }
    return KSV_CUDA_OK;
}


#ifdef __CUDACC__

int
ksv_cuda_model_execute(void *state, const ksv_cuda_tensor_t *in,
    uint32_t nin, ksv_cuda_tensor_t *out, uint32_t nout,
    ksv_cuda_stream_t stream, char *err, size_t errlen)
{
    int             rc, n;
    uint64_t        rows;
    cudaError_t     ce;
    cublasStatus_t  bs;
    const float     one = 1.0f, zero = 0.0f;
    digits_t       *m = (digits_t *) state;

    rc = digits_check(m, in, nin, out, nout, &rows, err, errlen);
    if (rc != KSV_CUDA_OK || rows == 0) {
        return rc;
    }
    n = (int) rows;

    bs = cublasSetStream(m->blas, stream);

    /*
     * Row-major X [n, 64] is column-major X^T; so H^T [hidden, n] =
     * W1^T [hidden, 64] . X^T [64, n], W1 row-major [64, hidden] being
     * column-major W1^T with leading dimension hidden.
     */
    if (bs == CUBLAS_STATUS_SUCCESS) {
        bs = cublasSgemm(m->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int) m->hidden,
                         n, DIGITS_IN, &one, m->d_w1, (int) m->hidden,
                         (const float *) in[0].data, DIGITS_IN, &zero,
                         m->d_h, (int) m->hidden);
    }
    if (bs == CUBLAS_STATUS_SUCCESS) {
        uint64_t  total = rows * m->hidden;

        digits_bias_relu<<<(unsigned) ((total + 255) / 256), 256, 0,
                           stream>>>(m->d_h, m->d_b1, (uint32_t) rows,
                                     m->hidden);
        bs = cublasSgemm(m->blas, CUBLAS_OP_N, CUBLAS_OP_N, DIGITS_CLASSES,
                         n, (int) m->hidden, &one, m->d_w2, DIGITS_CLASSES,
                         m->d_h, (int) m->hidden, &zero,
                         (float *) out[0].data, DIGITS_CLASSES);
    }
    if (bs != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cuBLAS: %s", cublasGetStatusString(bs));
        return KSV_CUDA_ERR_INTERNAL;
    }

    digits_bias_softmax<<<(unsigned) ((rows + 127) / 128), 128, 0, stream>>>(
        (float *) out[0].data, m->d_b2, (uint32_t) rows);

    ce = cudaGetLastError();
    if (ce != cudaSuccess) {
        snprintf(err, errlen, "kernel launch: %s", cudaGetErrorString(ce));
        return KSV_CUDA_ERR_INTERNAL;
    }
    return KSV_CUDA_OK;
}

#endif


#ifdef __cplusplus
}
#endif
