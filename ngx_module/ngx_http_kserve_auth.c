
/*
 * Copyright (C) ngx_kserve authors
 *
 * API keys (kserve_api_keys): loading the key file, checking a request.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_kserve_auth.h"


#define NGX_HTTP_KSERVE_KEYS_MAX_FILE  (1024 * 1024)


static ngx_int_t ngx_http_kserve_keys_parse(ngx_conf_t *cf,
    ngx_http_kserve_keys_t *keys, u_char *p, u_char *end);
static ngx_uint_t ngx_http_kserve_keys_equal(ngx_str_t *presented,
    ngx_str_t *key);


ngx_http_kserve_keys_t *
ngx_http_kserve_keys_load(ngx_conf_t *cf, ngx_str_t *file)
{
    u_char                  *buf;
    ssize_t                  n;
    ngx_int_t                rc;
    ngx_file_t               f;
    ngx_file_info_t          fi;
    ngx_http_kserve_keys_t  *keys;

    keys = ngx_pcalloc(cf->pool, sizeof(ngx_http_kserve_keys_t));
    if (keys == NULL) {
        return NULL;
    }

    keys->file = *file;

    if (ngx_conf_full_name(cf->cycle, &keys->file, 1) != NGX_OK) {
        return NULL;
    }

    ngx_memzero(&f, sizeof(ngx_file_t));
    f.name = keys->file;
    f.log = cf->log;

    f.fd = ngx_open_file(f.name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (f.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &f.name);
        return NULL;
    }

    buf = NULL;
    rc = NGX_ERROR;

    if (ngx_fd_info(f.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &f.name);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_KSERVE_KEYS_MAX_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "API key file \"%V\" is larger than 1m",
                           &f.name);
        goto done;
    }

    buf = ngx_pnalloc(cf->temp_pool, ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_file(&f, buf, ngx_file_size(&fi), 0);

    if (n != ngx_file_size(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot read API key file \"%V\"", &f.name);
        goto done;
    }

    rc = ngx_http_kserve_keys_parse(cf, keys, buf, buf + n);

    /* the file's bytes hold keys: leave none behind in a temporary pool */
    ngx_explicit_memzero(buf, n);

done:

    if (ngx_close_file(f.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &f.name);
    }

    return (rc == NGX_OK) ? keys : NULL;
}


/* One key a line; blank lines and lines starting with '#' are skipped. */

static ngx_int_t
ngx_http_kserve_keys_parse(ngx_conf_t *cf, ngx_http_kserve_keys_t *keys,
    u_char *p, u_char *end)
{
    u_char     *line, *last;
    ngx_str_t  *key;

    keys->keys = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (keys->keys == NULL) {
        return NGX_ERROR;
    }

    while (p < end) {
        line = p;

        while (p < end && *p != '\n') {
            p++;
        }

        last = p;
        p++;

        while (line < last && (*line == ' ' || *line == '\t')) {
            line++;
        }

        while (last > line && (last[-1] == ' ' || last[-1] == '\t'
                               || last[-1] == '\r'))
        {
            last--;
        }

        if (line == last || *line == '#') {
            continue;
        }

        key = ngx_array_push(keys->keys);
        if (key == NULL) {
            return NGX_ERROR;
        }

        key->len = last - line;
        key->data = ngx_pnalloc(cf->pool, key->len);

        if (key->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(key->data, line, key->len);
    }

    if (keys->keys->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "API key file \"%V\" holds no key", &keys->file);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_kserve_keys_check(ngx_http_request_t *r,
    ngx_http_kserve_keys_t *keys, ngx_str_t *header)
{
    ngx_str_t   value, *k;
    ngx_uint_t  i, ok;

    if (ngx_http_kserve_keys_presented(r, header, &value) == NULL) {
        return NGX_DECLINED;
    }

    /* every key is compared, whatever matched: no early exit */

    ok = 0;
    k = keys->keys->elts;

    for (i = 0; i < keys->keys->nelts; i++) {
        ok |= ngx_http_kserve_keys_equal(&value, &k[i]);
    }

    return ok ? NGX_OK : NGX_DECLINED;
}


ngx_str_t *
ngx_http_kserve_keys_presented(ngx_http_request_t *r, ngx_str_t *header,
    ngx_str_t *value)
{
    u_char           *p, *end;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (header->len == sizeof("authorization") - 1
        && ngx_strncmp(header->data, "authorization", header->len) == 0)
    {
        h = r->headers_in.authorization;

        if (h == NULL) {
            return NULL;
        }

        p = h->value.data;
        end = p + h->value.len;

        if (end - p < 7 || ngx_strncasecmp(p, (u_char *) "Bearer ", 7) != 0)
        {
            return NULL;
        }

        for (p += 7; p < end && *p == ' '; p++) { /* void */ }

        while (end > p && end[-1] == ' ') {
            end--;
        }

        value->data = p;
        value->len = end - p;

        return value->len ? value : NULL;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == header->len
            && ngx_strncasecmp(h[i].key.data, header->data, header->len) == 0)
        {
            *value = h[i].value;
            return value->len ? value : NULL;
        }
    }
}


/*
 * Time depends on the stored key's length and on nothing the two
 * strings hold in common.
 */

static ngx_uint_t
ngx_http_kserve_keys_equal(ngx_str_t *presented, ngx_str_t *key)
{
    size_t           i;
    volatile u_char  d;

    d = (presented->len != key->len);

    for (i = 0; i < key->len; i++) {
        d |= key->data[i] ^ (i < presented->len ? presented->data[i] : 0);
    }

    return d == 0;
}
