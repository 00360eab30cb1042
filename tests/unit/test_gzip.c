/*
 * ngx_kserve: compressed bodies (ngx_module/ksv_gzip.c): Content-Encoding
 * and Accept-Encoding as Triton reads them, the bounded inflater fed in
 * pieces, and deflate -> inflate.
 */

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "ksv_gzip.h"
#include "ksv_test.h"


static void
test_content_encoding(void)
{
    CHECK(ksv_gzip_content_encoding("", 0) == KSV_GZIP_IDENTITY);
    CHECK(ksv_gzip_content_encoding("identity", 8) == KSV_GZIP_IDENTITY);
    CHECK(ksv_gzip_content_encoding(" gzip ", 6) == KSV_GZIP_GZIP);
    CHECK(ksv_gzip_content_encoding("GZip", 4) == KSV_GZIP_GZIP);
    CHECK(ksv_gzip_content_encoding("deflate", 7) == KSV_GZIP_DEFLATE);
    CHECK(ksv_gzip_content_encoding("br", 2) == KSV_GZIP_UNKNOWN);
    CHECK(ksv_gzip_content_encoding("gzip, br", 8) == KSV_GZIP_UNKNOWN);
}


#define ACCEPT(s)  ksv_gzip_accept((s), strlen(s))

static void
test_accept_encoding_picks_like_triton(void)
{
    CHECK(ACCEPT("gzip") == KSV_GZIP_GZIP);
    CHECK(ACCEPT("deflate") == KSV_GZIP_DEFLATE);
    CHECK(ACCEPT("gzip, deflate") == KSV_GZIP_GZIP);     /* first of equals */
    CHECK(ACCEPT("gzip;q=0.5, deflate") == KSV_GZIP_DEFLATE);
    CHECK(ACCEPT("identity, gzip") == KSV_GZIP_IDENTITY);
    CHECK(ACCEPT("identity;q=0.1, gzip;q=0.2") == KSV_GZIP_GZIP);
    CHECK(ACCEPT("br") == KSV_GZIP_IDENTITY);
    CHECK(ACCEPT("gzip;q=x, deflate;q=0.1") == KSV_GZIP_DEFLATE);
    CHECK(ACCEPT("gzip;q=0") == KSV_GZIP_IDENTITY);
    CHECK(ACCEPT("") == KSV_GZIP_IDENTITY);
    CHECK(ACCEPT(",,, ;q=1") == KSV_GZIP_IDENTITY);
}


static size_t
compress_gzip(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
    int gzip)
{
    z_stream  z;

    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 9, Z_DEFLATED, gzip ? 31 : 15, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *) in;
    z.avail_in = (uInt) len;
    z.next_out = out;
    z.avail_out = (uInt) cap;
    deflate(&z, Z_FINISH);
    deflateEnd(&z);

    return cap - z.avail_out;
}


static void
test_inflate_in_pieces(void)
{
    size_t            n, i, len, zlen, piece;
    uint8_t          *in, *z, *out;
    ksv_inflate_t     st;
    ksv_inflate_rc_t  rc;

    n = 300000;
    in = malloc(n);
    z = malloc(n + 1024);

    for (i = 0; i < n; i++) {
        in[i] = (uint8_t) (i % 251 < 200 ? 'a' + i % 7 : rnd32());
    }

    for (piece = 1; piece <= 65536; piece *= 16) {
        zlen = compress_gzip(in, n, z, n + 1024, piece & 1);

        CHECK(ksv_inflate_init(&st, n) == 0);
        rc = KSV_INFLATE_MORE;
        for (i = 0; i < zlen && rc == KSV_INFLATE_MORE; i += piece) {
            rc = ksv_inflate_feed(&st, z + i,
                                  zlen - i < piece ? zlen - i : piece);
        }
        CHECK(rc == KSV_INFLATE_DONE);
        CHECK(ksv_inflate_end(&st) == KSV_INFLATE_DONE);
        out = ksv_inflate_take(&st, &len);
        CHECK(len == n && memcmp(out, in, n) == 0);
        free(out);
        ksv_inflate_free(&st);
    }

    free(in);
    free(z);
}


static void
test_inflate_stops_at_the_limit(void)
{
    size_t            n, zlen;
    uint8_t          *zeros, *z;
    ksv_inflate_t     st;

    /* 64 MB of zeros is ~64 KB of gzip: refused at limit + 1 bytes */

    n = 64 * 1024 * 1024;
    zeros = calloc(1, n);
    z = malloc(n / 100);
    zlen = compress_gzip(zeros, n, z, n / 100, 1);
    CHECK(zlen < n / 500);

    CHECK(ksv_inflate_init(&st, 1024 * 1024) == 0);
    CHECK(ksv_inflate_feed(&st, z, zlen) == KSV_INFLATE_TOO_BIG);
    CHECK(st.cap <= 1024 * 1024 + 1);
    ksv_inflate_free(&st);

    /* exactly the limit is fine */
    zlen = compress_gzip(zeros, 4096, z, n / 100, 1);
    CHECK(ksv_inflate_init(&st, 4096) == 0);
    CHECK(ksv_inflate_feed(&st, z, zlen) == KSV_INFLATE_DONE);
    CHECK(ksv_inflate_end(&st) == KSV_INFLATE_DONE && st.len == 4096);
    ksv_inflate_free(&st);

    free(zeros);
    free(z);
}


static void
test_inflate_refuses_bad_streams(void)
{
    size_t         zlen;
    uint8_t        z[256];
    ksv_inflate_t  st;

    CHECK(ksv_inflate_init(&st, 1000) == 0);
    CHECK(ksv_inflate_feed(&st, "not gzip", 8) == KSV_INFLATE_BAD);
    ksv_inflate_free(&st);

    zlen = compress_gzip((const uint8_t *) "{\"inputs\":[]}", 13, z,
                         sizeof(z), 1);

    /* truncated */
    CHECK(ksv_inflate_init(&st, 1000) == 0);
    CHECK(ksv_inflate_feed(&st, z, zlen - 4) == KSV_INFLATE_MORE);
    CHECK(ksv_inflate_end(&st) == KSV_INFLATE_BAD);
    ksv_inflate_free(&st);

    /* bytes after the end */
    CHECK(ksv_inflate_init(&st, 1000) == 0);
    memcpy(z + zlen, "xx", 2);
    CHECK(ksv_inflate_feed(&st, z, zlen + 2) == KSV_INFLATE_BAD);
    ksv_inflate_free(&st);

    /* empty */
    CHECK(ksv_inflate_init(&st, 1000) == 0);
    CHECK(ksv_inflate_feed(&st, "", 0) == KSV_INFLATE_MORE);
    CHECK(ksv_inflate_end(&st) == KSV_INFLATE_BAD);
    ksv_inflate_free(&st);
}


static void
test_deflate_round_trip(void)
{
    int            kind;
    size_t         len, sizes[3];
    uint8_t       *out;
    const void    *pieces[3];
    ksv_writer_t   w;
    ksv_inflate_t  st;

    pieces[0] = "{\"outputs\":";
    sizes[0] = 11;
    pieces[1] = "";
    sizes[1] = 0;
    pieces[2] = "[]}";
    sizes[2] = 3;

    for (kind = KSV_GZIP_GZIP; kind <= KSV_GZIP_DEFLATE; kind++) {
        ksv_writer_init(&w);
        CHECK(ksv_deflate_pieces(kind, pieces, sizes, 3, &w) == 0);
        /* a gzip stream starts 1f 8b, a zlib one 78 */
        CHECK(kind == KSV_GZIP_GZIP ? (w.buf[0] == 0x1f && w.buf[1] == 0x8b)
                                    : w.buf[0] == 0x78);
        CHECK(ksv_inflate_init(&st, 100) == 0);
        CHECK(ksv_inflate_feed(&st, w.buf, w.len) == KSV_INFLATE_DONE);
        CHECK(ksv_inflate_end(&st) == KSV_INFLATE_DONE);
        out = ksv_inflate_take(&st, &len);
        CHECK(len == 14 && memcmp(out, "{\"outputs\":[]}", 14) == 0);
        free(out);
        ksv_inflate_free(&st);
        ksv_writer_free(&w);
    }
}


int
main(void)
{
    test_content_encoding();
    test_accept_encoding_picks_like_triton();
    test_inflate_in_pieces();
    test_inflate_stops_at_the_limit();
    test_inflate_refuses_bad_streams();
    test_deflate_round_trip();

    KSV_TEST_END();
}
