
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

ngx_int_t ngx_http_kserve_redis_init(ngx_cycle_t *cycle,
    ngx_http_kserve_routing_t *routing);
void ngx_http_kserve_redis_exit(ngx_cycle_t *cycle,
    ngx_http_kserve_routing_t *routing);


#endif /* _NGX_HTTP_KSERVE_REDIS_H_INCLUDED_ */
