
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_SHM_H_INCLUDED_
#define _NGX_HTTP_KSERVE_SHM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_module.h"
#include "ksv_infer_request.h"


/*
 * Triton's system and CUDA shared memory extensions.
 *
 * The registry of regions is one shared memory zone, "kserve_shm",
 * used by every nginx worker under its mutex: a region registered
 * through one nginx worker is found by a request that another serves.
 * With kserve_api_keys, regions belong to the API key that registered
 * them (a SHA-1 of it is kept, never the key): each key sees, uses and
 * unregisters only its own, and names are per key; without keys there
 * is one namespace.  A region is a POSIX shm object (a key as
 * shm_open() takes it, under /dev/shm), checked when it is registered:
 * it opens and offset + byte_size lies within it.
 *
 * The nginx worker calls shm_open(), fstat() and mmap() itself (at a
 * register, and for the copied path the first time it uses a region):
 * calls on tmpfs that do not wait for a device, like open() of a static
 * file.
 *
 * An inference request names regions in its tensors' parameters.  Each
 * tensor's offset and byte_size are checked against its region, then
 * the bytes take one of two paths, by the instances of the chosen
 * version:
 *
 *   direct   every READY instance listens on ipc:// (nginx's host): the
 *            INFER names the shm object, offset and size instead of
 *            carrying the bytes; the instance maps the object itself
 *            (backends/common/ksv_shm_map.h), reads inputs there and
 *            writes outputs there.  No tensor byte passes through nginx.
 *
 *   copied   an instance on another host (tcp://): nginx maps the region
 *            (per nginx worker, kept while registered), copies inputs
 *            into the frames it sends and outputs from the frames it
 *            receives into the region.
 *
 * Unregistering a region that requests still use is Triton's: the zone
 * counts each region's requests (of every nginx worker), and one
 * unregistered meanwhile stays listed and usable until the last of them
 * ends.  It is safe on both paths: an instance's mapping lives until
 * its request ends, and so does an nginx worker's (unmapped when the
 * region is gone and its last user too).
 */


/* At configuration time (postconfiguration): the registry's zone. */
ngx_int_t ngx_http_kserve_shm_init_conf(ngx_conf_t *cf);

/*
 * The part of a /v2 path after "/systemsharedmemory" (cuda 0) or
 * "/cudasharedmemory" (cuda 1): fills uri (endpoint, region).
 * Returns NGX_OK or NGX_DECLINED.
 */
ngx_int_t ngx_http_kserve_shm_uri(u_char *p, u_char *end, ngx_uint_t cuda,
    ngx_http_kserve_uri_t *uri);

/* The status, register and unregister endpoints; a content handler's
 * return value. */
ngx_int_t ngx_http_kserve_shm_handler(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri);

/*
 * After the parser: the request's tensors in shared memory (m->shm)
 * found in the registry and checked, then made ready for version vs's
 * instances (direct: keys and offsets filled in; copied: input buffers
 * filled, the outputs kept in ctx, m->nshm set to 0).  Returns NGX_OK,
 * or NGX_DECLINED with err filled (the client's error).
 */
ngx_int_t ngx_http_kserve_shm_request(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, ksv_infer_t *m, ksv_infer_buf_t *bufs,
    ksv_version_status_t *vs, ksv_infer_error_t *err);

/*
 * The reply's outputs in shared memory: binary[i] becomes KSV_REPLY_SHM
 * for each (sizes[i] its byte_size), the copied path's written to their
 * regions.  Returns NGX_OK, or NGX_DECLINED with err filled (a region
 * too small: the client's error).
 */
ngx_int_t ngx_http_kserve_shm_reply(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, ksv_infer_reply_t *m, zmq_msg_t *frames,
    size_t *sizes, uint8_t *binary, ksv_infer_error_t *err);

/* The registry's Prometheus families, for /metrics. */
void ngx_http_kserve_shm_metrics(ksv_writer_t *w);


#endif /* _NGX_HTTP_KSERVE_SHM_H_INCLUDED_ */
