/*
 * ngx_kserve CUDA backend: buffers reused from batch to batch.
 *
 * A pool is one allocation of host (malloc), pinned host (cudaHostAlloc)
 * or device (cudaMalloc) memory that a batch's tensors are laid out in
 * at 256-byte aligned offsets.  It only grows, geometrically (to twice
 * its size, or to what is asked when that is more), so after warm-up
 * (the instance reserves room for max_batch_size rows at start) the
 * request path allocates nothing.  Growing frees the old block first:
 * call it only while no copy or kernel uses the pool.
 */

#ifndef KSV_CUDA_POOL_H
#define KSV_CUDA_POOL_H

#include <stddef.h>
#include <stdint.h>


#define KSV_POOL_ALIGN  256             /* cudaMalloc's own alignment */

typedef enum {
    KSV_POOL_HOST = 0,
    KSV_POOL_PINNED,
    KSV_POOL_DEVICE
} ksv_pool_kind_t;

typedef struct {
    ksv_pool_kind_t  kind;
    const char      *name;              /* for log lines */
    void            *ptr;
    size_t           cap;
    uint64_t         grows;             /* allocations since start */
} ksv_pool_t;


void ksv_pool_init(ksv_pool_t *p, ksv_pool_kind_t kind, const char *name);

/*
 * Makes room for `need` bytes.  Returns 0, or -1 with the reason in err
 * (out of memory: the pool is then empty, a later call tries again).
 * *grew is set when an allocation happened.
 */
int ksv_pool_reserve(ksv_pool_t *p, size_t need, int *grew, char *err,
    size_t errlen);

void ksv_pool_free(ksv_pool_t *p);

/* off rounded up to KSV_POOL_ALIGN; -1 (SIZE_MAX) on overflow. */
size_t ksv_pool_align(size_t off);

#endif /* KSV_CUDA_POOL_H */
