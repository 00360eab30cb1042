
/*
 * Copyright (C) ngx_kserve authors
 *
 * Redis for routed names: weights in, statistics out, per nginx worker,
 * never on a request's path.
 *
 * hiredis (0.14) runs on nginx's event loop through the small adapter
 * below: its addRead/delRead/addWrite/delWrite hooks map to nginx events
 * on a connection wrapped around hiredis' descriptor, registered
 * level-triggered because hiredis reads at most 16 KB per call; cleanup
 * frees that connection without closing the descriptor, which hiredis
 * closes itself.  A cancelable timer drives everything else, so a
 * graceful shutdown never waits for it:
 *
 *     down --(after a backoff: 100 ms, doubling to 2 s)--> connecting
 *       ^                                                      |
 *       +---- error, or not connected within a second ---------+
 *       |                                                      v
 *       +------------------- error, closed -------------------- up
 *
 * Up, every interval: HGETALL kserve:route:NAME for each routed name
 * (weights), and the statistics counted since the last flush in one
 * pipelined MULTI/EXEC of HINCRBY.  A flush that fails puts its counts
 * back, so they go out with the next one; down, counts simply add up in
 * the fixed counters of each variant.  One log line per state change.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_kserve_redis.h"
#include "ngx_http_kserve_rollout.h"


#define NGX_HTTP_KSERVE_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_KSERVE_REDIS_BACKOFF_MAX   2000
#define NGX_HTTP_KSERVE_REDIS_CONNECT_TIME  1000


typedef enum {
    NGX_HTTP_KSERVE_REDIS_DOWN = 0,
    NGX_HTTP_KSERVE_REDIS_CONNECTING,
    NGX_HTTP_KSERVE_REDIS_UP
} ngx_http_kserve_redis_state_e;


/* An address of the Redis server, resolved when the configuration is read */
typedef struct {
    u_char                      *host;          /* numeric, NUL ended */
    ngx_str_t                    name;          /* "ip:port", for the log */
} ngx_http_kserve_redis_addr_t;


struct ngx_http_kserve_redis_s {
    ngx_str_t                    addr;          /* as written */
    ngx_http_kserve_redis_addr_t  *addrs;
    ngx_uint_t                   naddrs;
    ngx_int_t                    port;
    ngx_msec_t                   interval;
    unsigned                     numeric:1;     /* addr is its one address */

    /* per nginx worker */
    ngx_http_kserve_routing_t   *routing;
    redisAsyncContext           *ac;
    ngx_connection_t            *conn;
    ngx_event_t                  timer;
    ngx_log_t                   *log;
    ngx_uint_t                   state;
    ngx_int_t                    logged;        /* -1 none, 0 down, 1 up */
    ngx_msec_t                   backoff;
    ngx_msec_t                   next_try;
    ngx_msec_t                   since;
    ngx_uint_t                   current;       /* index into addrs */
    unsigned                     flushing:1;
};


static void ngx_http_kserve_redis_timer(ngx_event_t *ev);
static void ngx_http_kserve_redis_connect(ngx_http_kserve_redis_t *rs);
static void ngx_http_kserve_redis_down(ngx_http_kserve_redis_t *rs,
    const char *why);
static void ngx_http_kserve_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_kserve_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_http_kserve_redis_discover(ngx_http_kserve_redis_t *rs);
static void ngx_http_kserve_redis_poll(ngx_http_kserve_redis_t *rs);
static void ngx_http_kserve_redis_polled(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_kserve_redis_flush(ngx_http_kserve_redis_t *rs);
static void ngx_http_kserve_redis_flushed(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_kserve_redis_settle(ngx_http_kserve_redis_t *rs,
    ngx_uint_t sent);

static void ngx_http_kserve_redis_add_read(void *data);
static void ngx_http_kserve_redis_del_read(void *data);
static void ngx_http_kserve_redis_add_write(void *data);
static void ngx_http_kserve_redis_del_write(void *data);
static void ngx_http_kserve_redis_cleanup(void *data);
static void ngx_http_kserve_redis_read_handler(ngx_event_t *ev);
static void ngx_http_kserve_redis_write_handler(ngx_event_t *ev);


/* ---- configuration ------------------------------------------------------ */

/*
 * The name is resolved here, once, as nginx resolves the servers of an
 * upstream block: hiredis would resolve it with a blocking getaddrinfo()
 * on every (re)connect, inside the event loop.  Reconnects go to the
 * numeric addresses, the next one after each failure; a reload
 * re-resolves.
 */
char *
ngx_http_kserve_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char                     *p;
    size_t                      len;
    ngx_str_t                  *value, s;
    ngx_url_t                   u;
    ngx_uint_t                  i;
    ngx_http_kserve_redis_t    *rs;
    ngx_http_kserve_routing_t  *routing;
    u_char                      text[NGX_SOCKADDR_STRLEN];

    routing = ngx_http_kserve_routing(cf);
    if (routing == NULL) {
        return NGX_CONF_ERROR;
    }

    if (routing->redis != NULL) {
        return "is duplicate";
    }

    rs = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_redis_t));
    if (rs == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    rs->addr = value[1];
    rs->interval = 500;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in kserve_redis \"%V\"", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.family == AF_UNIX || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "kserve_redis \"%V\": HOST[:PORT] expected",
                           &u.url);
        return NGX_CONF_ERROR;
    }

    rs->port = u.port;
    rs->naddrs = u.naddrs;
    rs->addrs = ngx_pcalloc(cf->pool,
                            u.naddrs * sizeof(ngx_http_kserve_redis_addr_t));
    if (rs->addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < u.naddrs; i++) {
        len = ngx_sock_ntop(u.addrs[i].sockaddr, u.addrs[i].socklen, text,
                            NGX_SOCKADDR_STRLEN, 0);

        p = ngx_pnalloc(cf->pool, len + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn(p, text, len + 1);

        rs->addrs[i].host = p;
        rs->addrs[i].name = u.addrs[i].name;
    }

    rs->numeric = (u.naddrs == 1
                   && u.addrs[0].name.len == value[1].len
                   && ngx_strncmp(u.addrs[0].name.data, value[1].data,
                                  value[1].len) == 0);

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len > 9
            && ngx_strncmp(value[i].data, "interval=", 9) == 0)
        {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            rs->interval = ngx_parse_time(&s, 0);

            if (rs->interval == (ngx_msec_t) NGX_ERROR || rs->interval == 0
                || rs->interval > 60000)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid kserve_redis interval \"%V\": "
                                   "from 1ms to 60s expected", &s);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": \"interval=TIME\" "
                           "expected", &value[i]);
        return NGX_CONF_ERROR;
    }

    routing->redis = rs;

    return NGX_CONF_OK;
}


/* ---- per nginx worker ---------------------------------------------------- */

ngx_int_t
ngx_http_kserve_redis_init(ngx_cycle_t *cycle,
    ngx_http_kserve_routing_t *routing)
{
    ngx_http_kserve_redis_t  *rs;

    rs = routing->redis;

    rs->routing = routing;
    rs->log = cycle->log;
    rs->logged = -1;
    rs->state = NGX_HTTP_KSERVE_REDIS_DOWN;
    rs->backoff = NGX_HTTP_KSERVE_REDIS_BACKOFF_MIN;
    rs->next_try = ngx_current_msec;

    rs->timer.handler = ngx_http_kserve_redis_timer;
    rs->timer.data = rs;
    rs->timer.log = cycle->log;
    rs->timer.cancelable = 1;

    ngx_add_timer(&rs->timer, 1);

    return NGX_OK;
}


void
ngx_http_kserve_redis_exit(ngx_cycle_t *cycle,
    ngx_http_kserve_routing_t *routing)
{
    redisAsyncContext        *ac;
    ngx_http_kserve_redis_t  *rs;

    rs = routing->redis;

    if (rs->timer.timer_set) {
        ngx_del_timer(&rs->timer);
    }

    ac = rs->ac;

    if (ac == NULL) {
        return;
    }

    /* the last counts: written now if the socket takes them, unanswered */

    if (rs->state == NGX_HTTP_KSERVE_REDIS_UP && !rs->flushing) {
        ngx_http_kserve_redis_flush(rs);
        redisAsyncHandleWrite(ac);

        /*
         * a write that failed (the server went away unnoticed) has freed
         * the context already: the disconnect callback cleared rs->ac
         */

        if (rs->ac == NULL) {
            return;
        }
    }

    /* frees rs->conn through the cleanup hook, closes the descriptor */

    rs->ac = NULL;
    redisAsyncFree(ac);
}


static void
ngx_http_kserve_redis_timer(ngx_event_t *ev)
{
    ngx_msec_t                next;
    ngx_msec_int_t            left;
    redisAsyncContext        *ac;
    ngx_http_kserve_redis_t  *rs;

    rs = ev->data;
    next = rs->interval;

    switch (rs->state) {

    case NGX_HTTP_KSERVE_REDIS_DOWN:

        left = (ngx_msec_int_t) (rs->next_try - ngx_current_msec);

        if (left <= 0) {
            ngx_http_kserve_redis_connect(rs);

        } else if ((ngx_msec_t) left < next) {
            next = left;
        }

        break;

    case NGX_HTTP_KSERVE_REDIS_CONNECTING:

        if (ngx_current_msec - rs->since
            < ngx_max(NGX_HTTP_KSERVE_REDIS_CONNECT_TIME, rs->interval))
        {
            break;
        }

        /* not connected: no disconnect callback, only the cleanup hook */

        ac = rs->ac;
        rs->ac = NULL;
        redisAsyncFree(ac);

        ngx_http_kserve_redis_down(rs, "connection timed out");
        next = ngx_min(next, rs->backoff);
        break;

    default: /* NGX_HTTP_KSERVE_REDIS_UP */
        ngx_http_kserve_redis_poll(rs);
        ngx_http_kserve_redis_flush(rs);
    }

    ngx_add_timer(ev, next ? next : 1);
}


static void
ngx_http_kserve_redis_connect(ngx_http_kserve_redis_t *rs)
{
    redisAsyncContext  *ac;
    ngx_connection_t   *c;

    /* numeric: hiredis' getaddrinfo() does not touch the network */

    ac = redisAsyncConnect((char *) rs->addrs[rs->current].host,
                           (int) rs->port);

    if (ac == NULL) {
        ngx_http_kserve_redis_down(rs, "out of memory");
        return;
    }

    if (ac->err) {
        ngx_http_kserve_redis_down(rs, ac->c.errstr);
        redisAsyncFree(ac);
        return;
    }

    c = ngx_get_connection(ac->c.fd, rs->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_kserve_redis_down(rs, "no free connection");
        return;
    }

    c->data = rs;
    c->read->handler = ngx_http_kserve_redis_read_handler;
    c->write->handler = ngx_http_kserve_redis_write_handler;
    c->read->log = rs->log;
    c->write->log = rs->log;

    rs->conn = c;
    rs->ac = ac;
    rs->state = NGX_HTTP_KSERVE_REDIS_CONNECTING;
    rs->since = ngx_current_msec;

    ac->data = rs;
    ac->ev.data = rs;
    ac->ev.addRead = ngx_http_kserve_redis_add_read;
    ac->ev.delRead = ngx_http_kserve_redis_del_read;
    ac->ev.addWrite = ngx_http_kserve_redis_add_write;
    ac->ev.delWrite = ngx_http_kserve_redis_del_write;
    ac->ev.cleanup = ngx_http_kserve_redis_cleanup;

    /* the hooks first: setting the connect callback asks for writing */

    (void) redisAsyncSetConnectCallback(ac, ngx_http_kserve_redis_connected);
    (void) redisAsyncSetDisconnectCallback(ac,
                                           ngx_http_kserve_redis_disconnected);
}


static void
ngx_http_kserve_redis_down(ngx_http_kserve_redis_t *rs, const char *why)
{
    ngx_str_t  *name;

    name = &rs->addrs[rs->current].name;

    rs->state = NGX_HTTP_KSERVE_REDIS_DOWN;
    rs->flushing = 0;
    rs->next_try = ngx_current_msec + rs->backoff;
    rs->backoff = ngx_min(rs->backoff * 2, NGX_HTTP_KSERVE_REDIS_BACKOFF_MAX);

    /* the name's next address, if it has more than one */
    rs->current = (rs->current + 1) % rs->naddrs;

    if (rs->logged != 0) {
        if (rs->numeric) {
            ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                          "kserve: redis %V unavailable: %s; routing goes "
                          "on with the weights known, statistics wait in "
                          "memory", &rs->addr, why);
        } else {
            ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                          "kserve: redis %V (%V) unavailable: %s; routing "
                          "goes on with the weights known, statistics wait "
                          "in memory", &rs->addr, name, why);
        }
        rs->logged = 0;
    }
}


static void
ngx_http_kserve_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_kserve_redis_t  *rs = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns */
        rs->ac = NULL;
        ngx_http_kserve_redis_down(rs, ac->c.errstr);
        return;
    }

    rs->state = NGX_HTTP_KSERVE_REDIS_UP;
    rs->backoff = NGX_HTTP_KSERVE_REDIS_BACKOFF_MIN;

    if (rs->logged != 1) {
        if (rs->numeric) {
            ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                          "kserve: redis %V connected", &rs->addr);
        } else {
            ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                          "kserve: redis %V (%V) connected", &rs->addr,
                          &rs->addrs[rs->current].name);
        }
        rs->logged = 1;
    }

    ngx_http_kserve_redis_discover(rs);
    ngx_http_kserve_redis_poll(rs);
}


static void
ngx_http_kserve_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_http_kserve_redis_t  *rs = ac->data;

    /* pending callbacks have had their NULL replies; hiredis frees ac */

    if (rs->ac != ac) {
        return;
    }

    rs->ac = NULL;

    ngx_http_kserve_redis_down(rs, status == REDIS_OK
                                   ? "connection closed" : ac->c.errstr);
}


/* ---- weights --------------------------------------------------------- */

/* the routed names and their variants, for a reader that discovers them */

static void
ngx_http_kserve_redis_discover(ngx_http_kserve_redis_t *rs)
{
    ngx_uint_t                   i, k;
    ngx_http_kserve_routed_t   **rt;
    ngx_http_kserve_variant_t   *v;

    rt = rs->routing->routes.elts;

    for (i = 0; i < rs->routing->routes.nelts; i++) {
        (void) redisAsyncCommand(rs->ac, NULL, NULL, "SADD kserve:routes %b",
                                 rt[i]->name.data, rt[i]->name.len);

        v = rt[i]->variants.elts;

        for (k = 0; k < rt[i]->variants.nelts; k++) {
            (void) redisAsyncCommand(rs->ac, NULL, NULL,
                                     "SADD kserve:variants:%b %b",
                                     rt[i]->name.data, rt[i]->name.len,
                                     v[k].name.data, v[k].name.len);
        }
    }
}


static void
ngx_http_kserve_redis_poll(ngx_http_kserve_redis_t *rs)
{
    ngx_uint_t                  i;
    ngx_http_kserve_routed_t  **rt;

    rt = rs->routing->routes.elts;

    for (i = 0; i < rs->routing->routes.nelts; i++) {

        /* a rollout's state and the statistics it judges by */

        ngx_http_kserve_rollout_poll(rs->ac, rt[i]);

        if (rt[i]->polling) {
            continue;
        }

        if (redisAsyncCommand(rs->ac, ngx_http_kserve_redis_polled, rt[i],
                              "HGETALL %b", rt[i]->redis_key.data,
                              rt[i]->redis_key.len)
            == REDIS_OK)
        {
            rt[i]->polling = 1;
        }
    }
}


static void
ngx_http_kserve_redis_polled(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                *reply = r;
    ngx_http_kserve_routed_t  *rt = privdata;

    size_t                    i;
    uint32_t                  hash;
    ngx_str_t                *fields;
    redisReply               *e;
    ngx_http_kserve_redis_t  *rs;

    rt->polling = 0;

    if (reply == NULL) {
        return;     /* disconnected: the weights stay */
    }

    rs = ac->data;

    /* nothing changed since the last poll: nothing to do, nothing to log */

    hash = (uint32_t) reply->type * 0x9e3779b1;

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements; i++) {
            e = reply->element[i];

            hash = hash * 31 + ksv_murmur2(e->str, e->str ? e->len : 0)
                   + (uint32_t) e->len;
        }

    } else if (reply->type == REDIS_REPLY_ERROR) {
        hash = hash * 31 + ksv_murmur2(reply->str, reply->len);
    }

    if (rt->redis_seen && hash == rt->redis_hash) {
        return;
    }

    rt->redis_seen = 1;
    rt->redis_hash = hash;

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                      "kserve: redis HGETALL \"%V\" failed: %*s; "
                      "the weights stay", &rt->redis_key,
                      reply->type == REDIS_REPLY_ERROR ? reply->len : 0,
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        return;
    }

    fields = NULL;

    if (reply->elements) {
        fields = ngx_alloc(reply->elements * sizeof(ngx_str_t), rs->log);
        if (fields == NULL) {
            rt->redis_seen = 0;
            return;
        }
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        fields[i].data = (u_char *) (e->str ? e->str : "");
        fields[i].len = e->str ? e->len : 0;
    }

    ngx_http_kserve_route_weights(rt, rs->log, fields, reply->elements);

    if (fields != NULL) {
        ngx_free(fields);
    }
}


/* ---- statistics ------------------------------------------------------- */

static ngx_int_t
ngx_http_kserve_redis_incr(ngx_http_kserve_redis_t *rs, ngx_str_t *key,
    const char *field, uint64_t n)
{
    if (n == 0) {
        return NGX_OK;
    }

    if (redisAsyncCommand(rs->ac, NULL, NULL, "HINCRBY %b %s %llu",
                          key->data, key->len, field,
                          (unsigned long long) n)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_kserve_redis_flush(ngx_http_kserve_redis_t *rs)
{
    u_char                            *p, kbuf[512];
    char                               field[32];
    uint64_t                           cum;
    ngx_str_t                          key;
    ngx_int_t                          rc;
    ngx_uint_t                         i, k, b, any;
    ngx_time_t                        *tp;
    ngx_http_kserve_routed_t         **rt;
    ngx_http_kserve_variant_t         *v;
    ngx_http_kserve_variant_stats_t   *f;

    if (rs->flushing || rs->ac == NULL) {
        return;
    }

    rt = rs->routing->routes.elts;
    any = 0;
    rc = NGX_OK;
    tp = ngx_timeofday();

    for (i = 0; i < rs->routing->routes.nelts; i++) {
        v = rt[i]->variants.elts;

        for (k = 0; k < rt[i]->variants.nelts; k++) {
            f = &v[k].delta;

            if (f->requests == 0 && f->retries == 0 && f->mirrored == 0
                && f->ejections == 0)
            {
                continue;
            }

            if (!any) {
                if (redisAsyncCommand(rs->ac, NULL, NULL, "MULTI")
                    != REDIS_OK)
                {
                    return;
                }

                any = 1;
            }

            /* the counts go out of delta; back into it if EXEC fails */

            v[k].flight = v[k].delta;
            ngx_memzero(&v[k].delta, sizeof(ngx_http_kserve_variant_stats_t));
            f = &v[k].flight;

            p = ngx_slprintf(kbuf, kbuf + sizeof(kbuf), "kserve:stats:%V:%V",
                             &rt[i]->name, &v[k].name);
            key.data = kbuf;
            key.len = p - kbuf;

            rc |= ngx_http_kserve_redis_incr(rs, &key, "requests",
                                             f->requests);
            rc |= ngx_http_kserve_redis_incr(rs, &key, "success", f->success);
            rc |= ngx_http_kserve_redis_incr(rs, &key, "failure", f->failure);
            rc |= ngx_http_kserve_redis_incr(rs, &key, "client_error",
                                             f->client_error);
            rc |= ngx_http_kserve_redis_incr(rs, &key, "latency_sum_us",
                                             f->latency_us);
            rc |= ngx_http_kserve_redis_incr(rs, &key, "retries", f->retries);
            rc |= ngx_http_kserve_redis_incr(rs, &key, "mirrored",
                                             f->mirrored);
            rc |= ngx_http_kserve_redis_incr(rs, &key, "ejections",
                                             f->ejections);

            /* cumulative, as Prometheus: le_inf is the count */

            cum = 0;

            for (b = 0; b <= KSV_ROUTE_NBUCKETS; b++) {
                cum += f->buckets[b];

                if (b == KSV_ROUTE_NBUCKETS) {
                    ngx_sprintf((u_char *) field, "latency_le_inf%Z");

                } else {
                    ngx_sprintf((u_char *) field, "latency_le_%uDms%Z",
                                ksv_route_buckets_ms[b]);
                }

                rc |= ngx_http_kserve_redis_incr(rs, &key, field, cum);
            }

            p = ngx_sprintf((u_char *) field, "%T%03M%Z", tp->sec, tp->msec);

            if (redisAsyncCommand(rs->ac, NULL, NULL,
                                  "HSET %b last_update_ms %s",
                                  key.data, key.len, field)
                != REDIS_OK)
            {
                rc = NGX_ERROR;
            }
        }
    }

    if (!any) {
        return;
    }

    if (rc != NGX_OK
        || redisAsyncCommand(rs->ac, ngx_http_kserve_redis_flushed, rs, "EXEC")
           != REDIS_OK)
    {
        ngx_http_kserve_redis_settle(rs, 0);
        return;
    }

    rs->flushing = 1;
}


static void
ngx_http_kserve_redis_flushed(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply               *reply = r;
    ngx_http_kserve_redis_t  *rs = privdata;

    rs->flushing = 0;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                      "kserve: redis statistics flush failed: %*s",
                      reply->len, reply->str);
    }

    ngx_http_kserve_redis_settle(rs, reply != NULL
                                     && reply->type == REDIS_REPLY_ARRAY);
}


/* after a flush: its counts are done with, or back for the next one */

static void
ngx_http_kserve_redis_settle(ngx_http_kserve_redis_t *rs, ngx_uint_t sent)
{
    ngx_uint_t                         i, k, b;
    ngx_http_kserve_routed_t         **rt;
    ngx_http_kserve_variant_t         *v;
    ngx_http_kserve_variant_stats_t   *d, *f;

    rt = rs->routing->routes.elts;

    for (i = 0; i < rs->routing->routes.nelts; i++) {
        v = rt[i]->variants.elts;

        for (k = 0; k < rt[i]->variants.nelts; k++) {
            d = &v[k].delta;
            f = &v[k].flight;

            if (!sent) {
                d->requests += f->requests;
                d->success += f->success;
                d->failure += f->failure;
                d->client_error += f->client_error;
                d->latency_us += f->latency_us;
                d->retries += f->retries;
                d->mirrored += f->mirrored;
                d->ejections += f->ejections;

                for (b = 0; b <= KSV_ROUTE_NBUCKETS; b++) {
                    d->buckets[b] += f->buckets[b];
                }
            }

            ngx_memzero(f, sizeof(ngx_http_kserve_variant_stats_t));
        }
    }
}


/* ---- the hiredis adapter ---------------------------------------------- */

static void
ngx_http_kserve_redis_add_read(void *data)
{
    ngx_http_kserve_redis_t  *rs = data;

    if (rs->conn != NULL && !rs->conn->read->active) {
        if (ngx_add_event(rs->conn->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                          "kserve: redis: cannot add the read event");
        }
    }
}


static void
ngx_http_kserve_redis_del_read(void *data)
{
    ngx_http_kserve_redis_t  *rs = data;

    if (rs->conn != NULL && rs->conn->read->active) {
        (void) ngx_del_event(rs->conn->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_kserve_redis_add_write(void *data)
{
    ngx_http_kserve_redis_t  *rs = data;

    if (rs->conn != NULL && !rs->conn->write->active) {
        if (ngx_add_event(rs->conn->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                          "kserve: redis: cannot add the write event");
        }
    }
}


static void
ngx_http_kserve_redis_del_write(void *data)
{
    ngx_http_kserve_redis_t  *rs = data;

    if (rs->conn != NULL && rs->conn->write->active) {
        (void) ngx_del_event(rs->conn->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis may call this more than once; it closes the descriptor itself */

static void
ngx_http_kserve_redis_cleanup(void *data)
{
    ngx_http_kserve_redis_t  *rs = data;

    ngx_connection_t  *c;

    c = rs->conn;

    if (c == NULL) {
        return;
    }

    rs->conn = NULL;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


static void
ngx_http_kserve_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t         *c = ev->data;
    ngx_http_kserve_redis_t  *rs = c->data;

    /* may free the context and, through cleanup, c */

    if (rs->ac != NULL) {
        redisAsyncHandleRead(rs->ac);
    }
}


static void
ngx_http_kserve_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t         *c = ev->data;
    ngx_http_kserve_redis_t  *rs = c->data;

    if (rs->ac != NULL) {
        redisAsyncHandleWrite(rs->ac);
    }
}
