/*
 * ngx_kserve: compressed request and reply bodies (see ksv_gzip.h).
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "ksv_gzip.h"


#define KSV_INFLATE_FIRST  (64 * 1024)


static int
ksv_token_eq(const char *s, size_t len, const char *token)
{
    return strlen(token) == len && strncasecmp(s, token, len) == 0;
}


ksv_gzip_kind_t
ksv_gzip_content_encoding(const char *s, size_t len)
{
    while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }

    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }

    if (len == 0 || ksv_token_eq(s, len, "identity")) {
        return KSV_GZIP_IDENTITY;
    }

    if (ksv_token_eq(s, len, "gzip")) {
        return KSV_GZIP_GZIP;
    }

    if (ksv_token_eq(s, len, "deflate")) {
        return KSV_GZIP_DEFLATE;
    }

    return KSV_GZIP_UNKNOWN;
}


/* q of ";q=0.5" (the text after "q="); -1 when it is not a number. */

static double
ksv_accept_q(const char *s, size_t len)
{
    char    buf[32], *end;
    double  q;

    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }

    memcpy(buf, s, len);
    buf[len] = '\0';

    q = strtod(buf, &end);

    if (end == buf || *end != '\0' || !(q >= 0 && q <= 1000)) {
        return -1;
    }

    return q;
}


ksv_gzip_kind_t
ksv_gzip_accept(const char *s, size_t len)
{
    double           weight, q;
    size_t           n, tlen;
    const char      *p, *end, *item, *semi;
    ksv_gzip_kind_t  best, kind;

    best = KSV_GZIP_IDENTITY;
    weight = 0;
    p = s;
    end = s + len;

    while (p <= end) {
        item = p;

        while (p < end && *p != ',') {
            p++;
        }

        n = (size_t) (p - item);
        p++;                            /* past the ',' (or the end) */

        while (n > 0 && *item == ' ') {
            item++;
            n--;
        }

        semi = memchr(item, ';', n);
        tlen = semi ? (size_t) (semi - item) : n;
        q = 1;

        if (semi != NULL) {
            if (n - tlen < 3 || strncmp(semi, ";q=", 3) != 0) {
                continue;
            }

            q = ksv_accept_q(semi + 3, n - tlen - 3);
            if (q < 0) {
                continue;
            }
        }

        while (tlen > 0 && item[tlen - 1] == ' ') {
            tlen--;
        }

        if (tlen == 0) {
            continue;
        }

        if (ksv_token_eq(item, tlen, "gzip")) {
            kind = KSV_GZIP_GZIP;

        } else if (ksv_token_eq(item, tlen, "deflate")) {
            kind = KSV_GZIP_DEFLATE;

        } else if (ksv_token_eq(item, tlen, "identity")) {
            kind = KSV_GZIP_IDENTITY;

        } else {
            continue;
        }

        if (q > weight) {
            best = kind;
            weight = q;
        }
    }

    return best;
}


/* ---- inflate --------------------------------------------------------- */

int
ksv_inflate_init(ksv_inflate_t *st, size_t limit)
{
    z_stream  *z;

    memset(st, 0, sizeof(*st));
    st->limit = limit;

    z = calloc(1, sizeof(z_stream));
    if (z == NULL) {
        return -1;
    }

    /* 15 | 32: a zlib or a gzip header, told apart by zlib (Triton's) */

    if (inflateInit2(z, 15 | 32) != Z_OK) {
        free(z);
        return -1;
    }

    st->z = z;

    return 0;
}


/* Room for more output: doubles, never past limit + 1 bytes. */

static int
ksv_inflate_grow(ksv_inflate_t *st, size_t hint)
{
    size_t    cap, most;
    uint8_t  *p;

    most = (st->limit == (size_t) -1) ? st->limit : st->limit + 1;

    if (st->cap >= most) {
        return 1;                       /* full: the limit is reached */
    }

    cap = st->cap ? st->cap * 2 : KSV_INFLATE_FIRST;

    if (cap < hint) {
        cap = hint;
    }

    if (cap > most || cap < st->cap) {
        cap = most;
    }

    p = realloc(st->out, cap);
    if (p == NULL) {
        return -1;
    }

    st->out = p;
    st->cap = cap;

    return 0;
}


ksv_inflate_rc_t
ksv_inflate_feed(ksv_inflate_t *st, const void *in, size_t len)
{
    int        rc;
    z_stream  *z;
    size_t     chunk;

    z = st->z;

    if (z == NULL) {
        return KSV_INFLATE_BAD;
    }

    while (len > 0) {
        if (st->ended) {
            return KSV_INFLATE_BAD;     /* bytes after the stream's end */
        }

        /* zlib counts in uInt: feed at most 1 GiB at a time */

        chunk = len > (1u << 30) ? (1u << 30) : len;

        z->next_in = (Bytef *) in;
        z->avail_in = (uInt) chunk;

        while (z->avail_in > 0 && !st->ended) {
            if (st->len == st->cap) {
                rc = ksv_inflate_grow(st, chunk * 4);

                if (rc < 0) {
                    return KSV_INFLATE_NOMEM;
                }

                if (rc > 0) {
                    return KSV_INFLATE_TOO_BIG;
                }
            }

            z->next_out = st->out + st->len;
            z->avail_out = (uInt) ((st->cap - st->len) > (1u << 30)
                                   ? (1u << 30) : (st->cap - st->len));

            chunk = z->avail_out;
            rc = inflate(z, Z_NO_FLUSH);
            st->len += chunk - z->avail_out;

            if (st->len > st->limit) {
                return KSV_INFLATE_TOO_BIG;
            }

            if (rc == Z_STREAM_END) {
                st->ended = 1;
                break;
            }

            if (rc == Z_BUF_ERROR && z->avail_out > 0) {
                break;                  /* needs more input */
            }

            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                return rc == Z_MEM_ERROR ? KSV_INFLATE_NOMEM
                                         : KSV_INFLATE_BAD;
            }
        }

        if (st->ended && z->avail_in > 0) {
            return KSV_INFLATE_BAD;
        }

        chunk = (size_t) ((const Bytef *) z->next_in - (const Bytef *) in);
        in = (const uint8_t *) in + chunk;
        len -= chunk;
    }

    return st->ended ? KSV_INFLATE_DONE : KSV_INFLATE_MORE;
}


ksv_inflate_rc_t
ksv_inflate_end(ksv_inflate_t *st)
{
    if (st->z == NULL || !st->ended) {
        return KSV_INFLATE_BAD;
    }

    if (st->out == NULL) {
        st->out = malloc(1);
        if (st->out == NULL) {
            return KSV_INFLATE_NOMEM;
        }
        st->cap = 1;
    }

    return KSV_INFLATE_DONE;
}


uint8_t *
ksv_inflate_take(ksv_inflate_t *st, size_t *len)
{
    uint8_t  *p;

    p = st->out;
    *len = st->len;

    st->out = NULL;
    st->len = 0;
    st->cap = 0;

    return p;
}


void
ksv_inflate_free(ksv_inflate_t *st)
{
    if (st->z != NULL) {
        inflateEnd(st->z);
        free(st->z);
        st->z = NULL;
    }

    free(st->out);
    st->out = NULL;
    st->len = 0;
    st->cap = 0;
}


/* ---- deflate ----------------------------------------------------------- */

int
ksv_deflate_pieces(ksv_gzip_kind_t kind, const void *const *data,
    const size_t *sizes, size_t n, ksv_writer_t *w)
{
    int        rc, flush;
    size_t     i, total, left, chunk, room;
    uint8_t   *out;
    z_stream   z;

    memset(&z, 0, sizeof(z));

    /* 15 | 16: a gzip wrapper; 15 alone: zlib's, as Triton writes them */

    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                     kind == KSV_GZIP_GZIP ? 15 | 16 : 15, 8,
                     Z_DEFAULT_STRATEGY)
        != Z_OK)
    {
        w->failed = 1;
        return -1;
    }

    total = 0;
    for (i = 0; i < n; i++) {
        total += sizes[i];
    }

    /* presize for the usual case: one pass, no growth */
    (void) ksv_writer_room(w, deflateBound(&z, total > (1u << 30)
                                               ? (1u << 30) : total) + 64);

    rc = Z_OK;

    for (i = 0; i <= n; i++) {
        static const uint8_t  none[1];
        const uint8_t        *p = (i < n && sizes[i]) ? data[i] : none;

        left = (i < n) ? sizes[i] : 0;
        flush = (i == n) ? Z_FINISH : Z_NO_FLUSH;

        do {
            chunk = left > (1u << 30) ? (1u << 30) : left;
            z.next_in = (Bytef *) p;
            z.avail_in = (uInt) chunk;

            do {
                room = (w->cap - w->len) < 4096 ? 64 * 1024
                                                : (w->cap - w->len);
                if (room > (1u << 30)) {
                    room = 1u << 30;
                }

                out = ksv_writer_room(w, room);
                if (out == NULL) {
                    deflateEnd(&z);
                    return -1;
                }

                z.next_out = out;
                z.avail_out = (uInt) room;

                rc = deflate(&z, (chunk == left) ? flush : Z_NO_FLUSH);
                w->len += room - z.avail_out;

                if (rc == Z_STREAM_ERROR) {
                    deflateEnd(&z);
                    w->failed = 1;
                    return -1;
                }

            } while (z.avail_out == 0);

            p += chunk;
            left -= chunk;

        } while (left > 0);
    }

    deflateEnd(&z);

    if (rc != Z_STREAM_END) {
        w->failed = 1;
        return -1;
    }

    return 0;
}
