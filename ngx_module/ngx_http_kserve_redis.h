
/*
 * Copyright (C) ngx_kserve authors
 */


#ifndef _NGX_HTTP_KSERVE_REDIS_H_INCLUDED_
#define _NGX_HTTP_KSERVE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_route.h"


/*
 * Redis, never on a request's path: each nginx worker holds one hiredis
 * async connection driven by nginx's event loop and a cancelable timer
 * that, every interval, reads the weights of every routed name (HGETALL
 * kserve:route:NAME) and flushes the statistics gathered since the last
 * flush in one MULTI/EXEC pipeline (HINCRBY kserve:stats:NAME:VARIANT).
 * Without Redis routing goes on with the last weights known and the
 * statistics wait in memory (a fixed set of counters per variant), so
 * nothing a client sees depends on it.  See docs/redis.md.
 */

/* kserve_redis ADDRESS[:PORT] [interval=TIME]; */
char *ngx_http_kserve_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/*
 * strategy adaptive: this node's window into kserve:adaptive:NAME, and
 * with read the windows of every node back (see the .c file).
 * NGX_DECLINED: Redis is not up now.
 */
ngx_int_t ngx_http_kserve_redis_adaptive(ngx_http_kserve_redis_t *rs,
    ngx_http_kserve_routed_t *rt, ngx_str_t *key, ngx_str_t *node,
    u_char *value, size_t len, ngx_msec_t ttl, ngx_uint_t read);

ngx_int_t ngx_http_kserve_redis_init(ngx_cycle_t *cycle,
    ngx_http_kserve_routing_t *routing);
void ngx_http_kserve_redis_exit(ngx_cycle_t *cycle,
    ngx_http_kserve_routing_t *routing);


#endif /* _NGX_HTTP_KSERVE_REDIS_H_INCLUDED_ */
