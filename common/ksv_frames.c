/*
 * ngx_kserve: multipart messages (see ksv_frames.h).
 */

#include <errno.h>
#include <stdlib.h>

#include "ksv_frames.h"


void
ksv_frames_init(ksv_frames_t *v)
{
    v->msgs = NULL;
    v->n = 0;
    v->cap = 0;
}


zmq_msg_t *
ksv_frames_push(ksv_frames_t *v)
{
    size_t      cap;
    zmq_msg_t  *msgs;

    if (v->n == v->cap) {
        cap = v->cap ? v->cap * 2 : 16;
        msgs = realloc(v->msgs, cap * sizeof(zmq_msg_t));
        if (msgs == NULL) {
            return NULL;
        }
        v->msgs = msgs;
        v->cap = cap;
    }
    zmq_msg_init(&v->msgs[v->n]);
    return &v->msgs[v->n++];
}


int
ksv_frames_push_move(ksv_frames_t *v, zmq_msg_t *msg)
{
    zmq_msg_t  *slot;

    slot = ksv_frames_push(v);
    if (slot == NULL) {
        zmq_msg_close(msg);
        zmq_msg_init(msg);
        return -1;
    }
    zmq_msg_move(slot, msg);
    return 0;
}


int
ksv_frames_push_writer(ksv_frames_t *v, ksv_writer_t *w)
{
    size_t      len;
    uint8_t    *buf;
    zmq_msg_t  *msg;

    if (w->failed) {
        ksv_writer_free(w);
        return -1;
    }
    msg = ksv_frames_push(v);
    if (msg == NULL) {
        ksv_writer_free(w);
        return -1;
    }
    buf = ksv_writer_detach(w, &len);
    if (zmq_msg_init_data(msg, buf, len, ksv_writer_free_cb, NULL) != 0) {
        free(buf);
        v->n--;
        return -1;
    }
    return 0;
}


void
ksv_frames_clear(ksv_frames_t *v)
{
    size_t  i;

    for (i = 0; i < v->n; i++) {
        zmq_msg_close(&v->msgs[i]);
    }
    v->n = 0;
}


void
ksv_frames_free(ksv_frames_t *v)
{
    ksv_frames_clear(v);
    free(v->msgs);
    ksv_frames_init(v);
}


int
ksv_frames_send(void *sock, ksv_frames_t *v, int flags)
{
    int     rc = 0, err = 0;
    size_t  i;

    for (i = 0; i < v->n; i++) {
        /* only the first frame can meet a full queue or no peer: the
         * rest of a message that was started always follows */
        while (zmq_msg_send(&v->msgs[i], sock,
                            flags | (i + 1 < v->n ? ZMQ_SNDMORE : 0)) < 0)
        {
            if (errno != EINTR) {
                err = errno;
                rc = -1;
                break;
            }
        }
        if (rc != 0) {
            break;
        }
    }
    ksv_frames_clear(v);
    if (rc != 0) {
        errno = err;
    }
    return rc;
}


int
ksv_frames_recv(void *sock, ksv_frames_t *v, int flags, size_t max,
    int *truncated)
{
    int         more;
    size_t      len, n;
    zmq_msg_t  *msg, extra;

    if (truncated != NULL) {
        *truncated = 0;
    }

    n = 0;
    do {
        if (n < max) {
            msg = ksv_frames_push(v);
            if (msg == NULL) {
                return -1;
            }
        } else {
            zmq_msg_init(&extra);
            msg = &extra;
            if (truncated != NULL) {
                *truncated = 1;
            }
        }
        while (zmq_msg_recv(msg, sock, n == 0 ? flags : 0) < 0) {
            if (errno != EINTR) {
                if (msg == &extra) {
                    zmq_msg_close(&extra);
                } else {
                    zmq_msg_close(msg);
                    v->n--;
                }
                return -1;
            }
        }
        len = sizeof(more);
        if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) != 0) {
            more = 0;
        }
        if (msg == &extra) {
            zmq_msg_close(&extra);
        }
        n++;
    } while (more);

    return 0;
}
