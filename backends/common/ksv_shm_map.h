/*
 * ngx_kserve instances: clients' system shared memory regions, mapped
 * by the instance itself (Triton's shared memory extension on nginx's
 * host, docs/protocol.md "Shared memory").
 *
 * nginx checked the region when the client registered it and checks
 * each tensor's offset and size against it; an INFER then names the
 * POSIX shm object (ksv_shm_ref_t: key, offset from the object's start,
 * byte_size) instead of carrying the bytes.  The instance opens the
 * object, checks again that offset + byte_size lies inside it (the
 * client may have shrunk or replaced it since), and maps it:
 *
 *   an input becomes a frame that points into the mapping (no copy: a
 *   Python model's numpy array reads the client's memory);
 *   an output's region is mapped (pinned) when the request arrives; the
 *   backend's frame is copied into it, and the reply's frame is empty.
 *
 * Mappings are kept per shm object (by key, device and inode) and
 * shared by the requests that use them, with a reference count: a
 * frame holds one until libzmq or the backend frees it, whichever
 * thread that is.  A mapping nobody holds is unmapped when a newer
 * object replaces it, or when more than KSV_SHM_MAP_KEEP are open.
 * The client unregistering the region in nginx changes nothing for a
 * request already sent: its mapping lives until the request ends.
 *
 * Known limit (Triton's too): a client that truncates the object while
 * a request reads it makes the instance fault (SIGBUS); the instance
 * then dies like any crashed instance and is restarted.
 */

#ifndef KSV_SHM_MAP_H
#define KSV_SHM_MAP_H

#include <stddef.h>
#include <zmq.h>

#include "ksv_proto.h"


#define KSV_SHM_MAP_KEEP  16


/*
 * Replaces *frame (which must be empty) with one that points at the
 * input's bytes in its region.  Returns 0, or -1 with an INVALID_ARG
 * message in err.
 */
int ksv_shm_map_input(const ksv_shm_ref_t *ref, zmq_msg_t *frame, char *err,
    size_t errlen);

/*
 * Maps an output's region when its request arrives and holds the
 * mapping until ksv_shm_unpin(): the output is written there even if
 * the client unregisters and unlinks the object meanwhile.  NULL with
 * an INVALID_ARG message in err.
 */
void *ksv_shm_pin(const ksv_shm_ref_t *ref, char *err, size_t errlen);
void ksv_shm_unpin(void *pin);

/*
 * Writes output name's size bytes to its region (ref->byte_size is what
 * the client set aside).  Returns 0, or -1 with a message in err
 * (*code INVALID_ARG when the region is too small, INTERNAL when it
 * cannot be opened).
 */
int ksv_shm_write_output(const ksv_shm_ref_t *ref, ksv_str_t name,
    const void *data, size_t size, ksv_status_t *code, char *err,
    size_t errlen);

/* The ref for inputs[index] or outputs[index] of m, or NULL. */
const ksv_shm_ref_t *ksv_shm_find(const ksv_infer_t *m, uint8_t io,
    uint32_t index);

#endif /* KSV_SHM_MAP_H */
