/*
 * libFuzzer target for common/ksv_pbtxt.c: config.pbtxt text as an
 * operator (or a model repository someone else wrote) hands it to the
 * worker and the Python instance.
 *
 * A parse either fails with a "file:line:col: message" error or yields
 * a configuration within the documented bounds.  What then passes
 * ksv_pbtxt_defaults() is what the worker publishes in INDEX_REPLY, so
 * it must survive the wire: encode -> decode -> encode gives the same
 * bytes, and the module renders its metadata JSON from the decoded copy.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_json_write.h"
#include "ksv_pbtxt.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


static void
warn(void *ctx, const char *msg)
{
    (void) ctx;
    FUZZ_CHECK(msg != NULL);
    (void) strlen(msg);
}


/* named: after ksv_pbtxt_defaults(), which refuses nameless and
 * typeless tensors */
static void
check_io(const ksv_io_config_t *io, uint32_t n, int named)
{
    uint32_t  i, k;

    FUZZ_CHECK(n <= KSV_MAX_TENSORS);
    FUZZ_CHECK(n == 0 || io != NULL);

    for (i = 0; i < n; i++) {
        FUZZ_CHECK(io[i].ndims <= KSV_MAX_DIMS);
        FUZZ_CHECK(io[i].reshape_ndims <= KSV_MAX_DIMS);
        for (k = 0; k < io[i].ndims; k++) {
            FUZZ_CHECK(io[i].dims[k] >= -1);
        }
        for (k = 0; k < io[i].reshape_ndims; k++) {
            FUZZ_CHECK(io[i].reshape[k] >= -1);
        }
        if (named) {
            FUZZ_CHECK(io[i].name.len > 0);
            FUZZ_CHECK(io[i].name.data[io[i].name.len] == '\0');
            FUZZ_CHECK(io[i].datatype != KSV_TYPE_INVALID
                       && io[i].datatype < KSV_TYPE_COUNT);
        }
    }
}


static void
check_bounds(const ksv_model_config_t *c, int named)
{
    uint32_t  i;

    check_io(c->inputs, c->ninputs, named);
    check_io(c->outputs, c->noutputs, named);

    FUZZ_CHECK(c->ngroups <= KSV_MAX_LIST);
    for (i = 0; i < c->ngroups; i++) {
        FUZZ_CHECK(c->groups[i].ngpus <= KSV_MAX_LIST);
    }
    FUZZ_CHECK(c->nparameters <= KSV_MAX_PARAMS);
    FUZZ_CHECK(c->version_policy.nversions <= KSV_MAX_LIST);
    FUZZ_CHECK(c->dynamic_batching.npreferred <= KSV_MAX_LIST);
}


/* INDEX_REPLY's model entry: encode -> decode -> encode is stable. */
static void
check_wire(const ksv_model_config_t *c)
{
    size_t              len1, len2;
    uint8_t            *f1, *f2;
    ksv_alloc_t         a;
    ksv_arena_t         arena;
    ksv_reader_t        r;
    ksv_writer_t        w;
    ksv_model_status_t  ms;
    ksv_version_status_t  v;

    ksv_writer_init(&w);
    ksv_encode_model_config(&w, c);
    if (w.failed) {
        /* only a string beyond the wire's 64 KiB may refuse to encode */
        ksv_writer_free(&w);
        return;
    }
    f1 = ksv_writer_detach(&w, &len1);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    memset(&ms, 0, sizeof(ms));
    ksv_reader_init(&r, f1, len1);
    FUZZ_CHECK(ksv_decode_model_config(&r, &a, &ms.config) == 0);
    FUZZ_CHECK(r.p == r.end);

    ksv_writer_init(&w);
    ksv_encode_model_config(&w, &ms.config);
    FUZZ_CHECK(!w.failed);
    f2 = ksv_writer_detach(&w, &len2);
    FUZZ_CHECK(len1 == len2 && memcmp(f1, f2, len1) == 0);

    /* GET /v2/models/{m}: metadata from the decoded copy */
    memset(&v, 0, sizeof(v));
    v.version = 1;
    v.state = KSV_VERSION_READY;
    v.reason = ksv_str_lit("");
    ms.nversions = 1;
    ms.versions = &v;

    ksv_writer_init(&w);
    ksv_json_model_metadata(&w, &ms);
    FUZZ_CHECK(!w.failed);
    ksv_writer_free(&w);

    free(f1);
    free(f2);
    ksv_arena_free(&arena);
}


int
LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    int                 rc;
    char               *text, err[512];
    ksv_arena_t         arena;
    ksv_model_config_t  c;

    /* an unterminated copy: the parser must honour len */
    text = malloc(len ? len : 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, buf, len);

    ksv_arena_init(&arena);

    err[0] = '\0';
    rc = ksv_pbtxt_parse(text, len, "config.pbtxt", &arena, &c, err,
                         sizeof(err), warn, NULL);

    if (rc != 0) {
        FUZZ_CHECK(strncmp(err, "config.pbtxt:", 13) == 0);
        goto done;
    }

    check_bounds(&c, 0);

    /* the text may go before the configuration does */
    free(text);
    text = NULL;

    /* the directory name must match a name the file gives */
    err[0] = '\0';
    if (ksv_pbtxt_defaults(&c, c.name.len ? c.name.data : "fuzzmodel",
                           &arena, err, sizeof(err))
        != 0)
    {
        FUZZ_CHECK(err[0] != '\0');
        goto done;
    }

    check_bounds(&c, 1);
    FUZZ_CHECK(c.ngroups >= 1);
    FUZZ_CHECK(c.default_model_filename.len > 0);
    check_wire(&c);

done:

    free(text);
    ksv_arena_free(&arena);
    return 0;
}
