/*
 * kserve-worker: the ZeroMQ side.
 *
 * Two ROUTER sockets make a "load-balancing broker" (ZeroMQ guide,
 * chapter 3): the frontend faces the clients (the nginx module's DEALER
 * sockets, over ipc:// or tcp://); the backend faces the instance
 * processes, which connect as DEALERs with routing id "i<pid>", announce
 * themselves with READY and then take one batch at a time.  Unlike the
 * guide's broker, requests are not routed to "any" worker but to an idle
 * instance of the requested model version, which the scheduler picks.
 *
 * Frontend messages (ROUTER adds the identity frame; DEALER sends no
 * empty delimiter):
 *   [identity][INFER header][input frames...]  -> INFER_REPLY | ERROR
 *   [identity][INDEX header]                   -> INDEX_REPLY
 * Backend messages:
 *   [i<pid>][READY]
 *   [i<pid>][EXECUTE_REPLY][INFER_REPLY + outputs | ERROR]...
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

/* Sends frames[0..n) as one message; every frame is consumed (sent or
 * closed) whatever happens.  Returns 0, or -1 with errno. */
int kserve_server_send(void *socket, zmq_msg_t *frames, size_t n);

/* ERROR reply to a client; identity is copied, not consumed. */
void kserve_server_error(zmq_msg_t *identity, uint64_t id,
    ksv_status_t code, const char *message);

#endif /* KSERVE_SERVER_H */
