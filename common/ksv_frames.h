/*
 * ngx_kserve: one multipart ZeroMQ message as a growable array of
 * frames, and the one send and receive loop every process uses.
 */

#ifndef KSV_FRAMES_H
#define KSV_FRAMES_H

#include <stddef.h>
#include <zmq.h>

#include "ksv_proto.h"


typedef struct {
    zmq_msg_t   *msgs;
    size_t       n;
    size_t       cap;
} ksv_frames_t;

void ksv_frames_init(ksv_frames_t *v);
/* A slot at the end, initialized empty; NULL when out of memory. */
zmq_msg_t *ksv_frames_push(ksv_frames_t *v);
/* Moves msg into a new slot at the end.  -1 when out of memory (msg is
 * then closed). */
int ksv_frames_push_move(ksv_frames_t *v, zmq_msg_t *msg);
/* Moves an encoded header into a new frame at the end of `v` (the
 * writer is emptied either way).  Returns -1 when out of memory. */
int ksv_frames_push_writer(ksv_frames_t *v, ksv_writer_t *w);
/* Closes every message; the array keeps its memory. */
void ksv_frames_clear(ksv_frames_t *v);
void ksv_frames_free(ksv_frames_t *v);

/*
 * Sends every frame as one multipart message; `v` is emptied whatever
 * happens.  flags: ZMQ_DONTWAIT or 0.  Returns 0, or -1 with errno
 * (EAGAIN, EHOSTUNREACH, ...) when the first frame could not go.
 */
int ksv_frames_send(void *sock, ksv_frames_t *v, int flags);

/*
 * Receives one whole multipart message, appended to `v` (frames past
 * max are read and dropped; *truncated says so when not NULL).  flags:
 * ZMQ_DONTWAIT or 0.  Returns 0, or -1 with errno (EAGAIN: nothing).
 */
int ksv_frames_recv(void *sock, ksv_frames_t *v, int flags, size_t max,
    int *truncated);

#endif /* KSV_FRAMES_H */
