/*
 * libFuzzer target for ngx_module/ksv_gzip.c: the inflater that reads
 * compressed request bodies, and the Accept-Encoding / Content-Encoding
 * readers.
 *
 * The first byte picks how the rest is cut into pieces (bodies arrive
 * in pieces) and a small limit; the rest is inflated as a body.  The
 * output never passes the limit; a stream that inflates whole must
 * agree with zlib's own one-shot inflate.  The input also goes through
 * ksv_deflate_pieces() and back: compress -> inflate gives it back.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "ksv_gzip.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


static int
inflate_in_pieces(const uint8_t *data, size_t size, size_t piece,
    size_t limit, uint8_t **out, size_t *len)
{
    size_t            off, n;
    ksv_inflate_t     st;
    ksv_inflate_rc_t  rc;

    *out = NULL;
    *len = 0;

    FUZZ_CHECK(ksv_inflate_init(&st, limit) == 0);

    rc = KSV_INFLATE_MORE;
    for (off = 0; off < size || off == 0; off += n) {
        n = size - off < piece ? size - off : piece;
        rc = ksv_inflate_feed(&st, data + off, n);
        FUZZ_CHECK(st.len <= limit + 1);
        if (rc < 0 || n == 0) {
            break;
        }
    }

    if (rc >= 0) {
        rc = ksv_inflate_end(&st);
    }

    if (rc == KSV_INFLATE_DONE) {
        FUZZ_CHECK(st.len <= limit);
        *out = ksv_inflate_take(&st, len);
        FUZZ_CHECK(*out != NULL);
    }

    ksv_inflate_free(&st);
    ksv_inflate_free(&st);

    return rc;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc;
    ksv_gzip_kind_t  gz;
    size_t         piece, limit, len, zlen, sizes[2];
    uint8_t       *out, *ref;
    z_stream       z;
    const void    *pieces[2];
    ksv_writer_t   w;

    (void) ksv_gzip_accept((const char *) data, size);
    (void) ksv_gzip_content_encoding((const char *) data, size);

    if (size < 1) {
        return 0;
    }

    piece = 1 + (data[0] & 0x3f) * 37;
    limit = (data[0] & 0x40) ? 4096 : 1024 * 1024;
    gz = (data[0] & 0x80) ? KSV_GZIP_GZIP : KSV_GZIP_DEFLATE;
    data++;
    size--;

    rc = inflate_in_pieces(data, size, piece, limit, &out, &len);

    if (rc == KSV_INFLATE_DONE) {
        /* zlib's own answer, in one go, for the same stream */
        ref = malloc(len + 1);
        FUZZ_CHECK(ref != NULL);
        memset(&z, 0, sizeof(z));
        FUZZ_CHECK(inflateInit2(&z, 15 | 32) == Z_OK);
        z.next_in = (Bytef *) data;
        z.avail_in = (uInt) size;
        z.next_out = ref;
        z.avail_out = (uInt) (len + 1);
        FUZZ_CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
        zlen = (len + 1) - z.avail_out;
        FUZZ_CHECK(zlen == len && memcmp(ref, out, len) == 0);
        inflateEnd(&z);
        free(ref);
    }
    free(out);

    /* round trip: the input compressed in two pieces, inflated back */

    pieces[0] = data;
    sizes[0] = size / 2;
    pieces[1] = data + size / 2;
    sizes[1] = size - size / 2;

    ksv_writer_init(&w);
    FUZZ_CHECK(ksv_deflate_pieces(gz, pieces, sizes, 2, &w) == 0);

    rc = inflate_in_pieces(w.buf, w.len, piece, 1024 * 1024, &out, &len);
    FUZZ_CHECK(rc == KSV_INFLATE_DONE);
    FUZZ_CHECK(len == size && memcmp(out, data, size) == 0);
    free(out);
    ksv_writer_free(&w);

    return 0;
}
