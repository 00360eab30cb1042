/*
 * ngx_kserve: compressed request and reply bodies (zlib, nginx-free).
 *
 * As Triton's HTTP frontend: a request body with "Content-Encoding:
 * gzip" or "deflate" is inflated before it is parsed, and bounded AFTER
 * inflation (a small body that inflates past the limit is refused as
 * soon as the limit is crossed, with no more than limit + 1 bytes ever
 * allocated); a reply is compressed when "Accept-Encoding" prefers gzip
 * or deflate.  Both encodings are read by zlib's automatic header
 * detection (a gzip or a zlib stream either way), as Triton reads them;
 * replies are written as gzip (RFC 1952) or zlib (RFC 1950) streams.
 *
 * The inflater is incremental: feed it the body in the pieces it came
 * in.  It is the one parser of outside bytes here (tests/fuzz/fuzz_gzip.c).
 */

#ifndef KSV_GZIP_H
#define KSV_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


typedef enum {
    KSV_GZIP_IDENTITY = 0,
    KSV_GZIP_GZIP = 1,
    KSV_GZIP_DEFLATE = 2,
    KSV_GZIP_UNKNOWN = 3            /* an encoding we do not read */
} ksv_gzip_kind_t;

/* Content-Encoding's value: "" and "identity" are IDENTITY. */
ksv_gzip_kind_t ksv_gzip_content_encoding(const char *s, size_t len);

/*
 * The reply encoding for an Accept-Encoding value, chosen as Triton
 * chooses: the listed coding with the highest q among gzip, deflate and
 * identity (ties: the first listed); a malformed or unknown coding is
 * skipped.  IDENTITY when neither gzip nor deflate wins.
 */
ksv_gzip_kind_t ksv_gzip_accept(const char *s, size_t len);


typedef enum {
    KSV_INFLATE_MORE = 0,           /* fed; the stream has not ended */
    KSV_INFLATE_DONE = 1,           /* the stream ended */
    KSV_INFLATE_TOO_BIG = -1,       /* the output would pass the limit */
    KSV_INFLATE_BAD = -2,           /* not a valid stream, or trailing
                                       bytes after its end */
    KSV_INFLATE_NOMEM = -3
} ksv_inflate_rc_t;

typedef struct {
    void            *z;             /* z_stream, NULL when not started */
    size_t           limit;
    uint8_t         *out;
    size_t           len;
    size_t           cap;
    int              ended;
} ksv_inflate_t;

/* Returns 0, or -1 out of memory.  limit: the most bytes it may make. */
int ksv_inflate_init(ksv_inflate_t *st, size_t limit);

/* Inflates one piece of the body (len may be 0). */
ksv_inflate_rc_t ksv_inflate_feed(ksv_inflate_t *st, const void *in,
    size_t len);

/*
 * After the last piece: DONE, or BAD for a truncated stream.  The output
 * (st->out, st->len; malloc'd, never NULL after DONE) then belongs to
 * the caller when taken with ksv_inflate_take().
 */
ksv_inflate_rc_t ksv_inflate_end(ksv_inflate_t *st);
uint8_t *ksv_inflate_take(ksv_inflate_t *st, size_t *len);

/* Frees what is left (safe after take, and twice). */
void ksv_inflate_free(ksv_inflate_t *st);


/*
 * Compresses the n pieces into w as one gzip or zlib stream (level:
 * zlib's default, as Triton).  Returns 0, or -1 (out of memory; w is
 * then failed).
 */
int ksv_deflate_pieces(ksv_gzip_kind_t kind, const void *const *data,
    const size_t *sizes, size_t n, ksv_writer_t *w);

#endif /* KSV_GZIP_H */
