/*
 * ngx_kserve: the pure parts of Triton's shared memory extensions
 * (nginx-free, so they can be unit-tested and fuzzed on their own):
 * the endpoint paths, the register request bodies and the POSIX shm
 * object names a region may use.  The registry itself, shared by every
 * nginx worker, is ngx_http_kserve_shm.c.
 */

#ifndef KSV_SHM_H
#define KSV_SHM_H

#include <stddef.h>
#include <stdint.h>


#define KSV_SHM_NAME_MAX     255        /* region names and keys */
#define KSV_SHM_CUDA_HANDLE  64         /* sizeof(cudaIpcMemHandle_t) */


typedef enum {
    KSV_SHM_STATUS = 1,
    KSV_SHM_REGISTER,
    KSV_SHM_UNREGISTER
} ksv_shm_action_t;


/*
 * The part of a path after "/v2/systemsharedmemory" or
 * "/v2/cudasharedmemory": "[/region/{name}]/(status|register|unregister)"
 * (Triton's pattern; a name is one non-empty segment).  Returns the
 * action with the name set (name_len 0: no region named), or -1
 * when the path is none of these.
 */
int ksv_shm_uri(const char *p, size_t len, const char **name,
    size_t *name_len);


typedef struct {
    /* system: key, offset (0 when absent), byte_size */
    char             key[KSV_SHM_NAME_MAX + 1];
    uint64_t         offset;
    uint64_t         byte_size;

    /* CUDA: raw_handle.b64 decoded, device_id, byte_size */
    uint8_t          handle[KSV_SHM_CUDA_HANDLE];
    int64_t          device_id;
} ksv_shm_register_t;


/*
 * A register request's body (an empty body is an empty object), in
 * Triton's words when it is wrong: "Shared memory register request has
 * no 'key' field" and the like.  cuda selects the CUDA form.  Returns 0,
 * or -1 with err filled (every failure is INVALID_ARG).
 */
int ksv_shm_parse_register(const void *body, size_t len, int cuda,
    ksv_shm_register_t *req, char *err, size_t errlen);

/*
 * Whether key starts, after its leading '/'s, with the prefix Triton
 * reserves for its Python backend's own regions (refused, as Triton
 * does).  Which keys name a shm object at all: ksv_shm_key_valid()
 * (common/ksv_proto.h).
 */
#define KSV_SHM_RESERVED_PREFIX  "triton_python_backend_shm_region_"

int ksv_shm_key_reserved(const char *key, size_t len);

#endif /* KSV_SHM_H */
