/*
 * ngx_kserve CUDA backend: buffers reused from batch to batch
 * (see cuda_pool.h).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if KSV_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "cuda_pool.h"


void
ksv_pool_init(ksv_pool_t *p, ksv_pool_kind_t kind, const char *name)
{
    memset(p, 0, sizeof(ksv_pool_t));
    p->kind = kind;
    p->name = name;
}


size_t
ksv_pool_align(size_t off)
{
    if (off > SIZE_MAX - (KSV_POOL_ALIGN - 1)) {
        return SIZE_MAX;
    }
    return (off + KSV_POOL_ALIGN - 1) & ~((size_t) KSV_POOL_ALIGN - 1);
}


static void
ksv_pool_release(ksv_pool_t *p)
{
    if (p->ptr == NULL) {
        return;
    }

    switch (p->kind) {
#if KSV_HAVE_CUDA
    case KSV_POOL_PINNED:
        (void) cudaFreeHost(p->ptr);
        break;
    case KSV_POOL_DEVICE:
        (void) cudaFree(p->ptr);
        break;
#endif
    default:
        free(p->ptr);
    }
    p->ptr = NULL;
    p->cap = 0;
}


/* One allocation of `size` bytes; NULL when it failed (err says why). */
static void *
ksv_pool_alloc(ksv_pool_t *p, size_t size, char *err, size_t errlen)
{
    void  *ptr = NULL;

    switch (p->kind) {
#if KSV_HAVE_CUDA
    case KSV_POOL_PINNED: {
        cudaError_t  e = cudaHostAlloc(&ptr, size, cudaHostAllocDefault);

        if (e != cudaSuccess) {
            (void) cudaGetLastError();
            snprintf(err, errlen, "cannot allocate %zu bytes of pinned host "
                     "memory for the %s buffer: %s", size, p->name,
                     cudaGetErrorString(e));
            return NULL;
        }
        return ptr;
    }
    case KSV_POOL_DEVICE: {
        cudaError_t  e = cudaMalloc(&ptr, size);

        if (e != cudaSuccess) {
            (void) cudaGetLastError();
            snprintf(err, errlen, "out of GPU memory: cannot allocate %zu "
                     "bytes for the %s buffer: %s", size, p->name,
                     cudaGetErrorString(e));
            return NULL;
        }
        return ptr;
    }
#endif
    default:
        if (p->kind != KSV_POOL_HOST) {
            snprintf(err, errlen, "the %s buffer needs CUDA, and this "
                     "instance was built without it", p->name);
            return NULL;
        }
        /* 256-byte alignment, as the device pools have it */
        if (posix_memalign(&ptr, KSV_POOL_ALIGN, size) != 0) {
            snprintf(err, errlen, "out of memory: cannot allocate %zu bytes "
                     "for the %s buffer", size, p->name);
            return NULL;
        }
        return ptr;
    }
}


int
ksv_pool_reserve(ksv_pool_t *p, size_t need, int *grew, char *err,
    size_t errlen)
{
    size_t  size;
    void   *ptr;

    if (need <= p->cap && p->ptr != NULL) {
        return 0;
    }

    size = p->cap > SIZE_MAX / 2 ? SIZE_MAX : p->cap * 2;
    if (size < need) {
        size = need;
    }
    size = ksv_pool_align(size ? size : KSV_POOL_ALIGN);
    if (size == SIZE_MAX) {
        snprintf(err, errlen, "the %s buffer cannot hold %zu bytes",
                 p->name, need);
        return -1;
    }

    ksv_pool_release(p);
    *grew = 1;
    p->grows++;

    ptr = ksv_pool_alloc(p, size, err, errlen);
    if (ptr == NULL && size > need) {
        /* doubling overshot what is free: settle for what is asked */
        size = ksv_pool_align(need ? need : KSV_POOL_ALIGN);
        ptr = ksv_pool_alloc(p, size, err, errlen);
    }
    if (ptr == NULL) {
        return -1;
    }

    p->ptr = ptr;
    p->cap = size;
    return 0;
}


void
ksv_pool_free(ksv_pool_t *p)
{
    ksv_pool_release(p);
}
