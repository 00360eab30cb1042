/*
 * kserve-worker: the ZeroMQ side of the control plane.
 *
 * Two ROUTER sockets.  The frontend faces the nginx workers' DEALERs
 * (ipc:// or tcp://): INDEX (the model index, with every instance's
 * endpoint) and STATS (read from the instances' statistics pages).  The
 * index is also pushed, unasked, to every nginx worker that polled it
 * lately, as soon as it changes.  The backend faces the instances'
 * DEALERs (routing id "i<pid>"), which send one READY each.  Inference
 * never comes here: nginx sends it to the instances directly.
 *
 *   [identity][INDEX header]  -> INDEX_REPLY
 *   [identity][STATS header]  -> STATS_REPLY | ERROR
 *   [identity][REPOSITORY header]([load body]) -> REPOSITORY_REPLY | ERROR
 *                               (a load: once it has settled)
 *   [i<pid>][READY]
 *
 * Nothing a client sends can crash the daemon: malformed messages get an
 * ERROR INVALID_ARG when their id can be read and are dropped (one log
 * line) otherwise.
 */

#ifndef KSERVE_SERVER_H
#define KSERVE_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "ksv_status.h"


int kserve_server_open(void);
void kserve_server_close(void);

/* Drain a readable socket (bounded per call, for fairness). */
void kserve_server_frontend_readable(void);
void kserve_server_backend_readable(void);

/* Pushes the index to the nginx workers when its generation moved. */
void kserve_server_push_index(void);


/* Sends the writer's message to a client; identity is copied. */
void kserve_server_reply(zmq_msg_t *identity, ksv_writer_t *w);

/* ERROR reply to a client; identity is copied, not consumed. */
void kserve_server_error(zmq_msg_t *identity, uint64_t id,
    ksv_status_t code, const char *message);

#endif /* KSERVE_SERVER_H */
