
/*
 * Copyright (C) ngx_kserve authors
 *
 * Triton's system and CUDA shared memory extensions: the registry every
 * nginx worker shares, its endpoints, and the tensors of inference
 * requests that live in clients' regions (ngx_http_kserve_shm.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include <sys/mman.h>
#include <sys/stat.h>

#include "ngx_http_kserve_shm.h"
#include "ngx_http_kserve_tensor.h"
#include "ksv_infer_reply.h"
#include "ksv_json_write.h"
#include "ksv_prometheus.h"
#include "ksv_shm.h"


#define NGX_HTTP_KSERVE_SHM_ZONE_SIZE  (1024 * 1024)
#define NGX_HTTP_KSERVE_SHM_OWNER      20               /* SHA-1 */


/* A registered region, in the zone: name and key follow, NUL ended. */
typedef struct {
    ngx_queue_t                  queue;
    u_char                       owner[NGX_HTTP_KSERVE_SHM_OWNER];
    ngx_uint_t                   cuda;
    uint64_t                     generation;    /* unique per register */
    uint64_t                     offset;
    uint64_t                     byte_size;
    int64_t                      device_id;
    ngx_uint_t                   inflight;      /* requests that use it */
    ngx_uint_t                   doomed;        /* unregistered meanwhile */
    size_t                       name_len;
    size_t                       key_len;
    u_char                       data[1];
} ngx_http_kserve_shm_region_t;


typedef struct {
    ngx_queue_t                  regions;
    uint64_t                     generation;
    ngx_uint_t                   count[2];      /* system, CUDA */
    ngx_atomic_t                 registered;
    ngx_atomic_t                 unregistered;
    ngx_atomic_t                 direct;        /* tensors, by path */
    ngx_atomic_t                 copied;
} ngx_http_kserve_shm_sh_t;


/* A region mapped by this nginx worker (the copied path). */
typedef struct {
    ngx_queue_t                  queue;
    uint64_t                     generation;
    u_char                      *base;          /* of the mmap() */
    size_t                       len;
    u_char                      *addr;          /* the region's start */
    uint64_t                     byte_size;
    ngx_uint_t                   refs;
} ngx_http_kserve_shm_map_t;


typedef struct {
    ngx_str_t                    name;
    ngx_http_kserve_shm_map_t   *map;
    u_char                      *addr;
    uint64_t                     byte_size;
} ngx_http_kserve_shm_out_t;


/* A request's state: what its regions need at the reply and after. */
typedef struct {
    ngx_array_t                  held;          /* uint64_t generations */
    ngx_array_t                  maps;          /* held, to release */
    ngx_array_t                  outs;          /* the copied path */
} ngx_http_kserve_shm_ctx_t;


static ngx_int_t ngx_http_kserve_shm_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_kserve_shm_owner(ngx_http_request_t *r, u_char *owner);
static ngx_http_kserve_shm_region_t *ngx_http_kserve_shm_find(
    ngx_http_kserve_shm_sh_t *sh, u_char *owner, u_char *name, size_t len);
static void ngx_http_kserve_shm_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_kserve_shm_register(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri, u_char *body, size_t len);
static ngx_int_t ngx_http_kserve_shm_add(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri, ksv_shm_register_t *req);
static ngx_int_t ngx_http_kserve_shm_unregister(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri);
static ngx_int_t ngx_http_kserve_shm_status(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri);
static ngx_int_t ngx_http_kserve_shm_ok(ngx_http_request_t *r);
static ngx_uint_t ngx_http_kserve_shm_direct(ksv_version_status_t *vs);
static ngx_int_t ngx_http_kserve_shm_copy(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, ksv_infer_t *m, ksv_infer_buf_t *bufs,
    uint64_t *generations, ksv_infer_error_t *err);
static ngx_http_kserve_shm_ctx_t *ngx_http_kserve_shm_ctx(
    ngx_http_request_t *r, ngx_http_kserve_ctx_t *ctx);
static ngx_http_kserve_shm_map_t *ngx_http_kserve_shm_map(uint64_t gen,
    ngx_log_t *log);
static void ngx_http_kserve_shm_ctx_cleanup(void *data);
static void ngx_http_kserve_shm_unhold(uint64_t *gens, ngx_uint_t n);
static void ngx_http_kserve_shm_release(void *data);
static void ngx_http_kserve_shm_sweep(void);
static ngx_int_t ngx_http_kserve_shm_fail(ksv_infer_error_t *err,
    ksv_status_t code, const char *fmt, ...);


static ngx_str_t        ngx_http_kserve_shm_zone_name =
                            ngx_string("kserve_shm");
static ngx_shm_zone_t  *ngx_http_kserve_shm_zone;
static ngx_queue_t      ngx_http_kserve_shm_maps;

static const char  ngx_http_kserve_shm_disabled[] =
    "Client shared memory is disabled. Set 'kserve_shared_memory on;' "
    "to enable.";


/* ---- configuration ------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_shm_init_conf(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_kserve_shm_zone_name,
                                     NGX_HTTP_KSERVE_SHM_ZONE_SIZE,
                                     &ngx_http_kserve_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_kserve_shm_init_zone;
    ngx_http_kserve_shm_zone = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kserve_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t           *shpool;
    ngx_http_kserve_shm_sh_t  *sh;

    if (data != NULL) {
        /* a reload: the regions stay registered */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_kserve_shm_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&sh->regions);
    sh->generation = 1;

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


/* ---- the endpoints ------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_shm_uri(u_char *p, u_char *end, ngx_uint_t cuda,
    ngx_http_kserve_uri_t *uri)
{
    int          action;
    size_t       len;
    const char  *name;

    action = ksv_shm_uri((const char *) p, end - p, &name, &len);

    switch (action) {

    case KSV_SHM_STATUS:
        uri->endpoint = NGX_HTTP_KSERVE_SHM_STATUS;
        break;

    case KSV_SHM_REGISTER:
        uri->endpoint = NGX_HTTP_KSERVE_SHM_REGISTER;
        break;

    case KSV_SHM_UNREGISTER:
        uri->endpoint = NGX_HTTP_KSERVE_SHM_UNREGISTER;
        break;

    default:
        return NGX_DECLINED;
    }

    uri->region.data = (u_char *) name;
    uri->region.len = len;
    uri->shm_cuda = cuda;

    return NGX_OK;
}


ngx_int_t
ngx_http_kserve_shm_handler(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri)
{
    ngx_int_t                    rc;
    ngx_http_kserve_ctx_t       *ctx;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    if (uri->endpoint == NGX_HTTP_KSERVE_SHM_REGISTER
        && (r->method & NGX_HTTP_POST))
    {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kserve_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->uri = *uri;
        ngx_http_set_ctx(r, ctx, ngx_http_kserve_module);

        rc = ngx_http_read_client_request_body(r, ngx_http_kserve_shm_body);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (uri->endpoint == NGX_HTTP_KSERVE_SHM_STATUS) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_kserve_error(r, NGX_HTTP_NOT_ALLOWED,
                                         "Method Not Allowed");
        }

        return ngx_http_kserve_shm_status(r, uri);
    }

    if (!(r->method & NGX_HTTP_POST)) {
        return ngx_http_kserve_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "Method Not Allowed");
    }

    if (!klcf->shared_memory) {
        return ngx_http_kserve_error(r, NGX_HTTP_NOT_IMPLEMENTED, "%s",
                                     ngx_http_kserve_shm_disabled);
    }

    return ngx_http_kserve_shm_unregister(r, uri);
}


static void
ngx_http_kserve_shm_body(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_http_kserve_ctx_t   *ctx;
    ngx_http_kserve_body_t  *kb;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kserve_module);

    if (ngx_http_kserve_body_get(r, &kb) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_kserve_shm_register(r, &ctx->uri, kb->data, kb->len);

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_kserve_shm_register(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri, u_char *body, size_t len)
{
    char                         err[512];
    const char                  *kind;
    ksv_shm_register_t           req;
    ngx_http_kserve_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);
    kind = uri->shm_cuda ? "cuda" : "system";

    if (!klcf->shared_memory) {
        return ngx_http_kserve_error(r, NGX_HTTP_NOT_IMPLEMENTED, "%s",
                                     ngx_http_kserve_shm_disabled);
    }

    if (uri->region.len == 0) {
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "'region name' is necessary to "
                                     "register %s shared memory region",
                                     kind);
    }

    if (uri->region.len > KSV_SHM_NAME_MAX) {
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "failed to register shared memory "
                                     "region: the name is longer than %d "
                                     "bytes", KSV_SHM_NAME_MAX);
    }

    if (ksv_shm_parse_register(body, len, (int) uri->shm_cuda, &req, err,
                               sizeof(err))
        != 0)
    {
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST, "%s", err);
    }

    if (uri->shm_cuda) {
        /*
         * nginx holds no CUDA context, and opening the IPC handle in a
         * CUDA instance is not built yet: answered as Triton does when
         * it has no GPU support.
         */
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "failed to register CUDA shared memory "
                                     "region: '%V', GPUs not supported",
                                     &uri->region);
    }

    return ngx_http_kserve_shm_add(r, uri, &req);
}


static ngx_int_t
ngx_http_kserve_shm_add(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri, ksv_shm_register_t *req)
{
    int                            fd;
    size_t                         klen, size;
    u_char                         owner[NGX_HTTP_KSERVE_SHM_OWNER];
    struct stat                    st;
    ngx_slab_pool_t               *shpool;
    ngx_http_kserve_shm_sh_t      *sh;
    ngx_http_kserve_shm_region_t  *rg;

    klen = ngx_strlen(req->key);

    if (ksv_shm_key_reserved(req->key, klen)) {
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "cannot register shared memory region "
                                     "'%V' with key '%s' as the key contains "
                                     "the reserved prefix '%s'",
                                     &uri->region, req->key,
                                     KSV_SHM_RESERVED_PREFIX);
    }

    if (!ksv_shm_key_valid(req->key, klen)) {
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "cannot register shared memory region "
                                     "'%V' - invalid shm key '%s'",
                                     &uri->region, req->key);
    }

    /* the object as it is now: it opens, and the region lies within */

    fd = shm_open(req->key, O_RDWR, 0);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, ngx_errno,
                      "kserve: shm_open(\"%s\") failed", req->key);

        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "Unable to open shared memory region: "
                                     "'%s'", req->key);
    }

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0) {
        close(fd);
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "Invalid shared memory region: '%s'",
                                     req->key);
    }

    close(fd);

    if (req->offset > (uint64_t) st.st_size
        || req->byte_size > (uint64_t) st.st_size - req->offset)
    {
        return ngx_http_kserve_error(r, NGX_HTTP_BAD_REQUEST,
                                     "failed to register shared memory "
                                     "region '%V': invalid args",
                                     &uri->region);
    }

    ngx_http_kserve_shm_owner(r, owner);

    shpool = (ngx_slab_pool_t *) ngx_http_kserve_shm_zone->shm.addr;
    sh = ngx_http_kserve_shm_zone->data;

    size = offsetof(ngx_http_kserve_shm_region_t, data)
           + uri->region.len + 1 + klen + 1;

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_kserve_shm_find(sh, owner, uri->region.data,
                                 uri->region.len)
        != NULL)
    {
        ngx_shmtx_unlock(&shpool->mutex);

        return ngx_http_kserve_error(r, NGX_HTTP_CONFLICT,
                                     "shared memory region '%V' already in "
                                     "manager", &uri->region);
    }

    rg = ngx_slab_alloc_locked(shpool, size);

    if (rg == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);

        return ngx_http_kserve_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "failed to register shared memory "
                                     "region '%V': the registry is full",
                                     &uri->region);
    }

    ngx_memcpy(rg->owner, owner, NGX_HTTP_KSERVE_SHM_OWNER);
    rg->cuda = 0;
    rg->generation = sh->generation++;
    rg->offset = req->offset;
    rg->byte_size = req->byte_size;
    rg->device_id = 0;
    rg->inflight = 0;
    rg->doomed = 0;
    rg->name_len = uri->region.len;
    rg->key_len = klen;

    ngx_memcpy(rg->data, uri->region.data, uri->region.len);
    rg->data[uri->region.len] = '\0';
    ngx_memcpy(rg->data + uri->region.len + 1, req->key, klen + 1);

    ngx_queue_insert_tail(&sh->regions, &rg->queue);
    sh->count[0]++;

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&sh->registered, 1);

    ngx_http_kserve_shm_sweep();

    return ngx_http_kserve_shm_ok(r);
}


/* One region, or all of the caller's of the kind (a name not registered
 * is no error: Triton's).  A region that requests use stays, listed and
 * usable, until the last of them ends (Triton's too). */

static ngx_int_t
ngx_http_kserve_shm_unregister(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri)
{
    u_char                         owner[NGX_HTTP_KSERVE_SHM_OWNER];
    ngx_uint_t                     n;
    ngx_queue_t                   *q, *next;
    ngx_slab_pool_t               *shpool;
    ngx_http_kserve_shm_sh_t      *sh;
    ngx_http_kserve_shm_region_t  *rg;

    ngx_http_kserve_shm_owner(r, owner);

    shpool = (ngx_slab_pool_t *) ngx_http_kserve_shm_zone->shm.addr;
    sh = ngx_http_kserve_shm_zone->data;
    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->regions);
         q != ngx_queue_sentinel(&sh->regions);
         q = next)
    {
        next = ngx_queue_next(q);
        rg = ngx_queue_data(q, ngx_http_kserve_shm_region_t, queue);

        if (rg->cuda != uri->shm_cuda
            || ngx_memcmp(rg->owner, owner, NGX_HTTP_KSERVE_SHM_OWNER) != 0)
        {
            continue;
        }

        if (uri->region.len
            && (rg->name_len != uri->region.len
                || ngx_memcmp(rg->data, uri->region.data, rg->name_len)
                   != 0))
        {
            continue;
        }

        n++;

        if (rg->inflight > 0) {
            /* Triton's: listed and usable until its requests end */
            rg->doomed = 1;
            continue;
        }

        ngx_queue_remove(q);
        sh->count[rg->cuda ? 1 : 0]--;
        ngx_slab_free_locked(shpool, rg);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&sh->unregistered, n);

    /* this nginx worker's mappings of them go now, or with their last
     * request; other workers' at their next look */
    ngx_http_kserve_shm_sweep();

    return ngx_http_kserve_shm_ok(r);
}


static ngx_int_t
ngx_http_kserve_shm_status(ngx_http_request_t *r,
    ngx_http_kserve_uri_t *uri)
{
    u_char                         owner[NGX_HTTP_KSERVE_SHM_OWNER];
    ngx_uint_t                     first;
    ngx_queue_t                   *q;
    ksv_writer_t                   w;
    ngx_slab_pool_t               *shpool;
    ngx_http_kserve_shm_sh_t      *sh;
    ngx_http_kserve_loc_conf_t    *klcf;
    ngx_http_kserve_shm_region_t  *rg;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    ngx_http_kserve_shm_owner(r, owner);

    shpool = (ngx_slab_pool_t *) ngx_http_kserve_shm_zone->shm.addr;
    sh = ngx_http_kserve_shm_zone->data;

    ksv_writer_init(&w);
    ksv_put_u8(&w, '[');
    first = 1;

    /* off here: no client region exists for this location (Triton's
     * answer without --allow-client-shm), whatever others registered */

    if (!klcf->shared_memory) {
        if (uri->region.len) {
            ksv_writer_free(&w);
            return ngx_http_kserve_error(r, NGX_HTTP_NOT_FOUND,
                                         "Unable to find %s shared memory "
                                         "region: '%V'",
                                         uri->shm_cuda ? "cuda" : "system",
                                         &uri->region);
        }

        ksv_put_u8(&w, ']');
        return ngx_http_kserve_send_json(r, NGX_HTTP_OK, &w);
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (uri->region.len) {
        rg = ngx_http_kserve_shm_find(sh, owner, uri->region.data,
                                      uri->region.len);

        if (rg == NULL || rg->cuda != uri->shm_cuda) {
            ngx_shmtx_unlock(&shpool->mutex);
            ksv_writer_free(&w);

            if (rg != NULL) {
                return ngx_http_kserve_error(r, NGX_HTTP_NOT_FOUND,
                                             "The region named '%V' is "
                                             "registered as %s shared "
                                             "memory, not %s shared memory",
                                             &uri->region,
                                             rg->cuda ? "CUDA" : "system",
                                             rg->cuda ? "system" : "CUDA");
            }

            return ngx_http_kserve_error(r, NGX_HTTP_NOT_FOUND,
                                         "Unable to find %s shared memory "
                                         "region: '%V'",
                                         uri->shm_cuda ? "cuda" : "system",
                                         &uri->region);
        }
    }

    for (q = ngx_queue_head(&sh->regions);
         q != ngx_queue_sentinel(&sh->regions);
         q = ngx_queue_next(q))
    {
        rg = ngx_queue_data(q, ngx_http_kserve_shm_region_t, queue);

        if (rg->cuda != uri->shm_cuda
            || ngx_memcmp(rg->owner, owner, NGX_HTTP_KSERVE_SHM_OWNER) != 0
            || (uri->region.len
                && (rg->name_len != uri->region.len
                    || ngx_memcmp(rg->data, uri->region.data,
                                  rg->name_len) != 0)))
        {
            continue;
        }

        if (!first) {
            ksv_put_u8(&w, ',');
        }

        first = 0;

        ksv_json_lit(&w, "{\"name\":");
        ksv_json_string(&w, rg->data, rg->name_len);

        if (rg->cuda) {
            ksv_json_lit(&w, ",\"device_id\":");
            ksv_json_i64(&w, rg->device_id);

        } else {
            ksv_json_lit(&w, ",\"key\":");
            ksv_json_string(&w, rg->data + rg->name_len + 1, rg->key_len);
            ksv_json_lit(&w, ",\"offset\":");
            ksv_json_u64(&w, rg->offset);
        }

        ksv_json_lit(&w, ",\"byte_size\":");
        ksv_json_u64(&w, rg->byte_size);
        ksv_put_u8(&w, '}');
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ksv_put_u8(&w, ']');

    return ngx_http_kserve_send_json(r, NGX_HTTP_OK, &w);
}


/* Triton answers a register or unregister with 200 and no body. */

static ngx_int_t
ngx_http_kserve_shm_ok(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    return (rc == NGX_ERROR || rc > NGX_OK) ? rc : NGX_HTTP_OK;
}


/* Regions are per API key when keys are on: a SHA-1 of the key the
 * request presented (zero without keys, one namespace). */

static void
ngx_http_kserve_shm_owner(ngx_http_request_t *r, u_char *owner)
{
    ngx_str_t                    value;
    ngx_sha1_t                   sha1;
    ngx_http_kserve_loc_conf_t  *klcf;

    ngx_memzero(owner, NGX_HTTP_KSERVE_SHM_OWNER);

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    if (klcf->api_keys == NULL
        || ngx_http_kserve_keys_presented(r, &klcf->api_key_header, &value)
           == NULL)
    {
        return;
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, value.data, value.len);
    ngx_sha1_final(owner, &sha1);
}


/* Under the zone's mutex. */

static ngx_http_kserve_shm_region_t *
ngx_http_kserve_shm_find(ngx_http_kserve_shm_sh_t *sh, u_char *owner,
    u_char *name, size_t len)
{
    ngx_queue_t                   *q;
    ngx_http_kserve_shm_region_t  *rg;

    for (q = ngx_queue_head(&sh->regions);
         q != ngx_queue_sentinel(&sh->regions);
         q = ngx_queue_next(q))
    {
        rg = ngx_queue_data(q, ngx_http_kserve_shm_region_t, queue);

        if (rg->name_len == len && ngx_memcmp(rg->data, name, len) == 0
            && ngx_memcmp(rg->owner, owner, NGX_HTTP_KSERVE_SHM_OWNER) == 0)
        {
            return rg;
        }
    }

    return NULL;
}


/* ---- inference --------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_shm_request(ngx_http_request_t *r,
    ngx_http_kserve_ctx_t *ctx, ksv_infer_t *m, ksv_infer_buf_t *bufs,
    ksv_version_status_t *vs, ksv_infer_error_t *err)
{
    u_char                         owner[NGX_HTTP_KSERVE_SHM_OWNER], *key;
    void                          *p;
    uint32_t                       i;
    uint64_t                      *gens, *gen;
    ngx_int_t                      rc;
    ngx_uint_t                     direct;
    ngx_array_t                    held;
    ksv_shm_ref_t                 *ref;
    ngx_http_kserve_shm_ctx_t     *sctx;
    ngx_slab_pool_t               *shpool;
    ngx_http_kserve_shm_sh_t      *sh;
    ngx_http_kserve_shm_region_t  *rg;
    ngx_http_kserve_loc_conf_t    *klcf;

    if (m->nshm == 0) {
        return NGX_OK;
    }

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kserve_module);

    if (!klcf->shared_memory) {
        return ngx_http_kserve_shm_fail(err, KSV_ERR_UNSUPPORTED, "%s",
                                        ngx_http_kserve_shm_disabled);
    }

    gens = ngx_palloc(r->pool, 2 * m->nshm * sizeof(uint64_t));
    sctx = ngx_http_kserve_shm_ctx(r, ctx);

    if (gens == NULL || sctx == NULL
        || ngx_array_init(&held, r->pool, m->nshm, sizeof(uint64_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_kserve_shm_owner(r, owner);

    shpool = (ngx_slab_pool_t *) ngx_http_kserve_shm_zone->shm.addr;
    sh = ngx_http_kserve_shm_zone->data;
    rc = NGX_OK;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < m->nshm; i++) {
        ref = &m->shm[i];

        rg = ngx_http_kserve_shm_find(sh, owner, (u_char *) ref->region.data,
                                      ref->region.len);

        if (rg == NULL) {
            rc = ngx_http_kserve_shm_fail(err, KSV_ERR_NOT_FOUND,
                                          "Unable to find shared memory "
                                          "region: '%*s'",
                                          (size_t) ref->region.len,
                                          ref->region.data);
            break;
        }

        if (rg->cuda) {
            rc = ngx_http_kserve_shm_fail(err, KSV_ERR_INVALID_ARG,
                                          "shared memory region '%*s' is "
                                          "CUDA shared memory: GPUs not "
                                          "supported",
                                          (size_t) ref->region.len,
                                          ref->region.data);
            break;
        }

        /* Triton's checks, in its words */

        if (ref->offset >= rg->byte_size) {
            rc = ngx_http_kserve_shm_fail(err, KSV_ERR_INVALID_ARG,
                                          "Invalid offset for shared memory "
                                          "region: '%*s'",
                                          (size_t) ref->region.len,
                                          ref->region.data);
            break;
        }

        if (ref->byte_size > UINT64_MAX - ref->offset) {
            rc = ngx_http_kserve_shm_fail(err, KSV_ERR_INVALID_ARG,
                                          "Integer overflow detected: "
                                          "byte_size (%uL) + offset (%uL) "
                                          "exceeds maximum value (%uL) for "
                                          "region '%*s'", ref->byte_size,
                                          ref->offset, (uint64_t) UINT64_MAX,
                                          (size_t) ref->region.len,
                                          ref->region.data);
            break;
        }

        if (ref->byte_size > rg->byte_size - ref->offset) {
            rc = ngx_http_kserve_shm_fail(err, KSV_ERR_INVALID_ARG,
                                          "Invalid offset + byte size for "
                                          "shared memory region: '%*s'",
                                          (size_t) ref->region.len,
                                          ref->region.data);
            break;
        }

        key = ngx_pnalloc(r->pool, rg->key_len);
        gen = ngx_array_push(&held);

        if (key == NULL || gen == NULL) {
            rc = NGX_ERROR;
            break;
        }

        /* in use until the request ends: an unregister waits for it */
        rg->inflight++;
        *gen = rg->generation;

        ngx_memcpy(key, rg->data + rg->name_len + 1, rg->key_len);

        ref->key.data = (char *) key;
        ref->key.len = (uint32_t) rg->key_len;
        gens[2 * i] = rg->generation;
        gens[2 * i + 1] = ref->offset;          /* within the region */
        ref->offset += rg->offset;              /* from the object's start */
    }

    ngx_shmtx_unlock(&shpool->mutex);

    /* released by the request's cleanup, whatever happens next */
    p = ngx_array_push_n(&sctx->held, held.nelts);
    if (p == NULL) {
        ngx_http_kserve_shm_unhold(held.elts, held.nelts);
        return NGX_ERROR;
    }

    ngx_memcpy(p, held.elts, held.nelts * sizeof(uint64_t));

    if (rc != NGX_OK) {
        return rc;
    }

    direct = ngx_http_kserve_shm_direct(vs);

    (void) ngx_atomic_fetch_add(direct ? &sh->direct : &sh->copied,
                                m->nshm);

    if (direct) {
        return NGX_OK;
    }

    return ngx_http_kserve_shm_copy(r, ctx, m, bufs, gens, err);
}


/* The direct path when every READY instance of vs is on this host. */

static ngx_uint_t
ngx_http_kserve_shm_direct(ksv_version_status_t *vs)
{
    uint32_t                i;
    ngx_uint_t              n;
    ksv_instance_status_t  *is;

    n = 0;

    for (i = 0; i < vs->ninstances; i++) {
        is = &vs->instances[i];

        if (is->state != KSV_VERSION_READY) {
            continue;
        }

        if (is->endpoint.len < 6
            || ngx_strncmp(is->endpoint.data, "ipc://", 6) != 0)
        {
            return 0;
        }

        n++;
    }

    return n > 0;
}


/*
 * The copied path: this nginx worker maps each region; inputs are copied
 * into the buffers that become their frames, outputs kept for the reply.
 * Nothing about shared memory goes on the wire.  regions[2 i] is the
 * generation of m->shm[i]'s region, regions[2 i + 1] the tensor's offset
 * within it.
 */

static ngx_int_t
ngx_http_kserve_shm_copy(ngx_http_request_t *r, ngx_http_kserve_ctx_t *ctx,
    ksv_infer_t *m, ksv_infer_buf_t *bufs, uint64_t *regions,
    ksv_infer_error_t *err)
{
    u_char                      *p, *addr;
    uint32_t                     i;
    ksv_str_t                   *name;
    ksv_shm_ref_t               *ref;
    ngx_http_kserve_shm_map_t   *map, **held;
    ngx_http_kserve_shm_out_t   *out;
    ngx_http_kserve_shm_ctx_t   *sctx;

    sctx = ngx_http_kserve_shm_ctx(r, ctx);
    if (sctx == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < m->nshm; i++) {
        ref = &m->shm[i];

        map = ngx_http_kserve_shm_map(regions[2 * i], r->connection->log);

        if (map == NULL) {
            return ngx_http_kserve_shm_fail(err, KSV_ERR_INVALID_ARG,
                                            "Unable to open shared memory "
                                            "region: '%*s'",
                                            (size_t) ref->key.len,
                                            ref->key.data);
        }

        held = ngx_array_push(&sctx->maps);
        if (held == NULL) {
            ngx_http_kserve_shm_release(map);
            return NGX_ERROR;
        }

        *held = map;
        addr = map->addr + regions[2 * i + 1];

        if (ref->io == KSV_SHM_INPUT) {
            if (ref->byte_size == 0) {
                continue;
            }

            p = malloc(ref->byte_size);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(p, addr, ref->byte_size);

            bufs[ref->index].data = p;
            bufs[ref->index].owned = 1;
            continue;
        }

        out = ngx_array_push(&sctx->outs);
        if (out == NULL) {
            return NGX_ERROR;
        }

        /* the name outlives the index it points into */
        name = &m->outputs[ref->index].name;

        out->name.len = name->len;
        out->name.data = ngx_pnalloc(r->pool, name->len + 1);
        if (out->name.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(out->name.data, name->data, name->len);

        out->map = map;
        out->addr = addr;
        out->byte_size = ref->byte_size;
    }

    m->nshm = 0;

    return NGX_OK;
}


static ngx_http_kserve_shm_ctx_t *
ngx_http_kserve_shm_ctx(ngx_http_request_t *r, ngx_http_kserve_ctx_t *ctx)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_kserve_shm_ctx_t  *sctx;

    sctx = ctx->shm;

    if (sctx != NULL) {
        /* a routed name's fallback: parsed again, the same regions */
        sctx->outs.nelts = 0;
        return sctx;
    }

    sctx = ngx_palloc(r->pool, sizeof(ngx_http_kserve_shm_ctx_t));
    if (sctx == NULL) {
        return NULL;
    }

    if (ngx_array_init(&sctx->held, r->pool, 4, sizeof(uint64_t))
        != NGX_OK
        || ngx_array_init(&sctx->maps, r->pool, 4,
                          sizeof(ngx_http_kserve_shm_map_t *))
           != NGX_OK
        || ngx_array_init(&sctx->outs, r->pool, 2,
                          sizeof(ngx_http_kserve_shm_out_t))
           != NGX_OK)
    {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_kserve_shm_ctx_cleanup;
    cln->data = sctx;

    ctx->shm = sctx;

    return sctx;
}


static void
ngx_http_kserve_shm_ctx_cleanup(void *data)
{
    ngx_http_kserve_shm_ctx_t  *sctx = data;

    ngx_uint_t                   i;
    ngx_http_kserve_shm_map_t  **map;

    ngx_http_kserve_shm_unhold(sctx->held.elts, sctx->held.nelts);
    sctx->held.nelts = 0;

    map = sctx->maps.elts;

    for (i = 0; i < sctx->maps.nelts; i++) {
        ngx_http_kserve_shm_release(map[i]);
    }

    sctx->maps.nelts = 0;

    ngx_http_kserve_shm_sweep();
}


/* A request's regions let go: those unregistered meanwhile go now if it
 * was their last. */

static void
ngx_http_kserve_shm_unhold(uint64_t *gens, ngx_uint_t n)
{
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_slab_pool_t               *shpool;
    ngx_http_kserve_shm_sh_t      *sh;
    ngx_http_kserve_shm_region_t  *rg;

    if (n == 0) {
        return;
    }

    shpool = (ngx_slab_pool_t *) ngx_http_kserve_shm_zone->shm.addr;
    sh = ngx_http_kserve_shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < n; i++) {
        for (q = ngx_queue_head(&sh->regions);
             q != ngx_queue_sentinel(&sh->regions);
             q = ngx_queue_next(q))
        {
            rg = ngx_queue_data(q, ngx_http_kserve_shm_region_t, queue);

            if (rg->generation != gens[i]) {
                continue;
            }

            if (rg->inflight > 0) {
                rg->inflight--;
            }

            if (rg->doomed && rg->inflight == 0) {
                ngx_queue_remove(q);
                sh->count[rg->cuda ? 1 : 0]--;
                ngx_slab_free_locked(shpool, rg);
            }

            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * This nginx worker's mapping of the region registered as generation
 * gen, with a reference taken: found, or made (the object opened and its
 * size checked against the region again).  NULL when it cannot be.
 */

static ngx_http_kserve_shm_map_t *
ngx_http_kserve_shm_map(uint64_t gen, ngx_log_t *log)
{
    int                            fd;
    u_char                         key[KSV_SHM_NAME_MAX + 1];
    off_t                          start;
    size_t                         len;
    uint64_t                       offset, byte_size;
    ngx_uint_t                     found;
    ngx_queue_t                   *q;
    struct stat                    st;
    ngx_slab_pool_t               *shpool;
    ngx_http_kserve_shm_sh_t      *sh;
    ngx_http_kserve_shm_map_t     *map;
    ngx_http_kserve_shm_region_t  *rg;

    if (ngx_queue_next(&ngx_http_kserve_shm_maps) == NULL) {
        ngx_queue_init(&ngx_http_kserve_shm_maps);
    }

    for (q = ngx_queue_head(&ngx_http_kserve_shm_maps);
         q != ngx_queue_sentinel(&ngx_http_kserve_shm_maps);
         q = ngx_queue_next(q))
    {
        map = ngx_queue_data(q, ngx_http_kserve_shm_map_t, queue);

        if (map->generation == gen) {
            map->refs++;
            return map;
        }
    }

    /* the region as registered */

    shpool = (ngx_slab_pool_t *) ngx_http_kserve_shm_zone->shm.addr;
    sh = ngx_http_kserve_shm_zone->data;
    found = 0;
    offset = 0;
    byte_size = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->regions);
         q != ngx_queue_sentinel(&sh->regions);
         q = ngx_queue_next(q))
    {
        rg = ngx_queue_data(q, ngx_http_kserve_shm_region_t, queue);

        if (rg->generation == gen) {
            ngx_memcpy(key, rg->data + rg->name_len + 1, rg->key_len + 1);
            offset = rg->offset;
            byte_size = rg->byte_size;
            found = 1;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (!found) {
        return NULL;
    }

    fd = shm_open((char *) key, O_RDWR, 0);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_INFO, log, ngx_errno,
                      "kserve: shm_open(\"%s\") failed", key);
        return NULL;
    }

    if (fstat(fd, &st) != 0 || st.st_size < 0
        || offset > (uint64_t) st.st_size
        || byte_size > (uint64_t) st.st_size - offset)
    {
        close(fd);
        return NULL;
    }

    map = ngx_alloc(sizeof(ngx_http_kserve_shm_map_t), log);
    if (map == NULL) {
        close(fd);
        return NULL;
    }

    /* mmap() wants a page-aligned offset */

    start = (off_t) (offset & ~((uint64_t) ngx_pagesize - 1));
    len = (size_t) (offset - start + byte_size);

    map->base = (len > 0) ? mmap(NULL, len, PROT_READ | PROT_WRITE,
                                 MAP_SHARED, fd, start)
                          : NULL;
    close(fd);

    if (map->base == MAP_FAILED) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "kserve: mmap(\"%s\") failed", key);
        ngx_free(map);
        return NULL;
    }

    map->generation = gen;
    map->len = len;
    map->addr = map->base + (offset - start);
    map->byte_size = byte_size;
    map->refs = 1;

    ngx_queue_insert_head(&ngx_http_kserve_shm_maps, &map->queue);

    return map;
}


static void
ngx_http_kserve_shm_release(void *data)
{
    ngx_http_kserve_shm_map_t  *map = data;

    if (--map->refs == 0) {
        ngx_http_kserve_shm_sweep();
    }
}


/* Unmaps what nobody uses of regions no longer registered. */

static void
ngx_http_kserve_shm_sweep(void)
{
    ngx_uint_t                     found;
    ngx_queue_t                   *q, *next, *k;
    ngx_slab_pool_t               *shpool;
    ngx_http_kserve_shm_sh_t      *sh;
    ngx_http_kserve_shm_map_t     *map;
    ngx_http_kserve_shm_region_t  *rg;

    if (ngx_queue_next(&ngx_http_kserve_shm_maps) == NULL
        || ngx_queue_empty(&ngx_http_kserve_shm_maps))
    {
        return;
    }

    shpool = (ngx_slab_pool_t *) ngx_http_kserve_shm_zone->shm.addr;
    sh = ngx_http_kserve_shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&ngx_http_kserve_shm_maps);
         q != ngx_queue_sentinel(&ngx_http_kserve_shm_maps);
         q = next)
    {
        next = ngx_queue_next(q);
        map = ngx_queue_data(q, ngx_http_kserve_shm_map_t, queue);

        if (map->refs > 0) {
            continue;
        }

        found = 0;

        for (k = ngx_queue_head(&sh->regions);
             k != ngx_queue_sentinel(&sh->regions);
             k = ngx_queue_next(k))
        {
            rg = ngx_queue_data(k, ngx_http_kserve_shm_region_t, queue);

            if (rg->generation == map->generation) {
                found = 1;
                break;
            }
        }

        if (found) {
            continue;
        }

        ngx_queue_remove(q);

        if (map->len > 0) {
            (void) munmap(map->base, map->len);
        }

        ngx_free(map);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* ---- the reply --------------------------------------------------------- */

ngx_int_t
ngx_http_kserve_shm_reply(ngx_http_request_t *r, ngx_http_kserve_ctx_t *ctx,
    ksv_infer_reply_t *m, zmq_msg_t *frames, size_t *sizes, uint8_t *binary,
    ksv_infer_error_t *err)
{
    size_t                      size;
    uint32_t                    i, k;
    ksv_tensor_t               *t;
    ngx_http_kserve_shm_ctx_t  *sctx;
    ngx_http_kserve_shm_out_t  *out;

    /* the direct path: the instance wrote them, and says which */

    for (k = 0; k < m->nshm; k++) {
        i = m->shm[k];
        binary[i] = KSV_REPLY_SHM;
        sizes[i] = m->outputs[i].byte_size;
    }

    sctx = ctx->shm;

    if (sctx == NULL || sctx->outs.nelts == 0) {
        return NGX_OK;
    }

    /* the copied path: from the frames into the regions */

    out = sctx->outs.elts;

    for (i = 0; i < m->noutputs; i++) {
        t = &m->outputs[i];

        for (k = 0; k < sctx->outs.nelts; k++) {
            if (out[k].name.len == t->name.len
                && ngx_strncmp(out[k].name.data, t->name.data, t->name.len)
                   == 0)
            {
                break;
            }
        }

        if (k == sctx->outs.nelts) {
            continue;
        }

        size = zmq_msg_size(&frames[i]);

        if (size > out[k].byte_size) {
            return ngx_http_kserve_shm_fail(err, KSV_ERR_INVALID_ARG,
                                            "shared memory size specified "
                                            "with the request for output "
                                            "'%V' (%uL bytes) should be at "
                                            "least %uz bytes to hold the "
                                            "results", &out[k].name,
                                            out[k].byte_size, size);
        }

        if (size > 0) {
            ngx_memcpy(out[k].addr, zmq_msg_data(&frames[i]), size);
        }

        binary[i] = KSV_REPLY_SHM;
    }

    return NGX_OK;
}


/* ---- metrics ----------------------------------------------------------- */

void
ngx_http_kserve_shm_metrics(ksv_writer_t *w)
{
    ngx_http_kserve_shm_sh_t  *sh;

    if (ngx_http_kserve_shm_zone == NULL) {
        return;
    }

    sh = ngx_http_kserve_shm_zone->data;

    ksv_prom_family(w, "ngx_kserve_shm_regions", "gauge",
                    "Shared memory regions registered (every API key), by "
                    "kind");
    ksv_json_lit(w, "ngx_kserve_shm_regions{kind=\"system\"} ");
    ksv_json_u64(w, sh->count[0]);
    ksv_json_lit(w, "\nngx_kserve_shm_regions{kind=\"cuda\"} ");
    ksv_json_u64(w, sh->count[1]);
    ksv_put_u8(w, '\n');

    ksv_prom_family(w, "ngx_kserve_shm_registrations_total", "counter",
                    "Shared memory regions registered and unregistered");
    ksv_json_lit(w, "ngx_kserve_shm_registrations_total{op=\"register\"} ");
    ksv_json_u64(w, sh->registered);
    ksv_json_lit(w, "\nngx_kserve_shm_registrations_total"
                    "{op=\"unregister\"} ");
    ksv_json_u64(w, sh->unregistered);
    ksv_put_u8(w, '\n');

    ksv_prom_family(w, "ngx_kserve_shm_tensors_total", "counter",
                    "Inference tensors in shared memory, by path: direct "
                    "(the instance maps the region) or copied (nginx does, "
                    "for an instance on another host)");
    ksv_json_lit(w, "ngx_kserve_shm_tensors_total{path=\"direct\"} ");
    ksv_json_u64(w, sh->direct);
    ksv_json_lit(w, "\nngx_kserve_shm_tensors_total{path=\"copied\"} ");
    ksv_json_u64(w, sh->copied);
    ksv_put_u8(w, '\n');
}


static ngx_int_t
ngx_http_kserve_shm_fail(ksv_infer_error_t *err, ksv_status_t code,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf((u_char *) err->message,
                      (u_char *) err->message + sizeof(err->message) - 1,
                      fmt, args);
    va_end(args);

    *p = '\0';
    err->code = code;

    return NGX_DECLINED;
}
