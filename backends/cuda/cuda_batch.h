/*
 * ngx_kserve CUDA backend: one EXECUTE in, one EXECUTE_REPLY out.
 *
 * The batch engine of kserve-cuda-instance.  An EXECUTE's requests are
 * checked against the model's config, then grouped into *launches*: runs
 * of consecutive requests whose inputs agree beyond dim 0 (with
 * max_batch_size > 0; otherwise one request per launch).  A launch's
 * inputs are concatenated along dim 0 into a pinned host buffer, copied
 * to the device in one cudaMemcpyAsync, run by the model's execute on
 * the compute stream, copied back in one cudaMemcpyAsync, and split per
 * request by rows into the reply's frames.
 *
 * Streams and buffers (the instance's "stream set"):
 *
 *   h2d stream      pinned in[s]  --copy-->  device in[s]     event h2d_done[s]
 *   compute stream  waits h2d_done[s]; model execute          event compute_done[s]
 *   d2h stream      waits compute_done[s]; device out[s] --> pinned out[s]
 *
 * with two buffer slots s (double buffering): while launch k computes,
 * launch k+1 is packed into the other slot's pinned buffer and its copy
 * runs on the h2d stream; launch k's outputs come back on the d2h
 * stream meanwhile.  A slot is reused only after its previous launch's
 * d2h_done, so no buffer is overwritten while in use.  The model's
 * kernels all run on the one compute stream, in launch order, so its
 * workspaces need no locking.  Across EXECUTEs the protocol allows no
 * overlap (the daemon sends the next batch after this one's reply).
 *
 * Buffers come from pools (cuda_pool.h) reserved at start for
 * max_batch_size rows and grown, rarely, only between launches of the
 * same slot.
 *
 * Errors: a request that does not match the config gets INVALID_ARG
 * alone; a failed launch (model error, CUDA error, out of memory) fails
 * its requests with INTERNAL (or the model's code); a sticky CUDA error
 * (the context is lost, e.g. a faulting kernel) fails the rest of the
 * batch and sets `fatal`: the instance answers, then exits so the
 * supervisor starts a fresh process.
 *
 * On the CPU path (no GPU, or KIND_CPU) the same engine runs with one
 * slot of plain host buffers and the model's execute_cpu.
 */

#ifndef KSV_CUDA_BATCH_H
#define KSV_CUDA_BATCH_H

#include <stdint.h>

#if KSV_HAVE_CUDA
#include <cuda_runtime_api.h>
#else
typedef struct CUstream_st  *cudaStream_t;
typedef struct CUevent_st   *cudaEvent_t;
#endif

#include "ksv_instance.h"
#include "ksv_proto.h"
#include "cuda_loader.h"
#include "cuda_pool.h"


#define KSV_CUDA_PROG  "kserve-cuda-instance"    /* in log lines */


#define KSV_CUDA_SLOTS  2

typedef struct {
    ksv_pool_t      host_in;            /* pinned on the GPU path */
    ksv_pool_t      host_out;
    ksv_pool_t      dev_in;             /* GPU path only */
    ksv_pool_t      dev_out;
    cudaEvent_t     h2d_start;
    cudaEvent_t     h2d_done;
    cudaEvent_t     compute_start;
    cudaEvent_t     compute_done;
    cudaEvent_t     d2h_done;
    void           *launch;             /* in flight here, or NULL */
} ksv_cuda_slot_t;

typedef struct {
    ksv_cuda_lib_t            *lib;
    void                      *state;   /* the model's */
    const ksv_model_config_t  *config;
    ksv_str_t                  model_name;     /* echoed in INFER_REPLY */
    ksv_str_t                  model_version;
    const char                *instance_name;  /* for log lines */
    int                        gpu;            /* 1: GPU path */

    cudaStream_t               h2d;
    cudaStream_t               compute;
    cudaStream_t               d2h;
    ksv_cuda_slot_t            slots[KSV_CUDA_SLOTS];
    uint32_t                   nslots;  /* 2 on the GPU path, 1 on CPU */

    int                        warm;    /* pools reserved: log growth */
    int                        fatal;   /* sticky CUDA error: exit */
    char                       fatal_msg[1280];
} ksv_cuda_engine_t;


/*
 * Streams, events and pools.  On the GPU path the device must be current.
 * Returns -1 with the reason in err.
 */
int ksv_cuda_engine_init(ksv_cuda_engine_t *e, char *err, size_t errlen);

/*
 * Reserves every pool for a launch of max_batch_size rows (1 request
 * when max_batch_size is 0) where the config's dims are all known, so
 * that serving allocates nothing.  Logs what it reserved.
 */
int ksv_cuda_engine_warmup(ksv_cuda_engine_t *e, char *err, size_t errlen);

/* Waits for the device, frees streams, events and pools. */
void ksv_cuda_engine_free(ksv_cuda_engine_t *e);

/*
 * Runs the EXECUTE in `in` and appends the EXECUTE_REPLY to `reply`.
 * Returns 1 when there is a reply to send, 0 when the message was not an
 * EXECUTE (logged, nothing to answer), -1 when out of memory.  Check
 * e->fatal after sending.
 */
int ksv_cuda_batch_run(ksv_cuda_engine_t *e, ksv_frames_t *in,
    ksv_frames_t *reply);

#endif /* KSV_CUDA_BATCH_H */
