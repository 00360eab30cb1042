/*
 * libFuzzer target for common/ksv_proto.c, the frame codec every process
 * uses on what another process sent it.
 *
 * The input is one header frame.  Its prefix is read as a receiver reads
 * it, then every body decoder runs on what follows the prefix (whatever
 * kind the prefix claims, so each decoder sees every input).  Whatever
 * decodes must survive the trip back: encode -> decode -> encode gives
 * the same bytes and consumes the whole frame.  The messages the module
 * renders for clients (model metadata from INDEX_REPLY, statistics JSON
 * and Prometheus text from STATS_REPLY) are rendered too.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_json_write.h"
#include "ksv_prometheus.h"
#include "ksv_proto.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


typedef enum {
    DEC_INFER,
    DEC_INFER_REPLY,
    DEC_ERROR,
    DEC_INDEX,
    DEC_INDEX_REPLY,
    DEC_EXECUTE,
    DEC_EXECUTE_REPLY,
    DEC_READY,
    DEC_STATS,
    DEC_STATS_REPLY,
    DEC_MODEL_CONFIG,           /* the body of an INDEX_REPLY entry */
    DEC_COUNT
} decoder_t;


typedef union {
    ksv_infer_t          infer;
    ksv_infer_reply_t    reply;
    ksv_error_t          error;
    uint64_t             known;
    ksv_index_t          index;
    uint32_t             count;
    struct {
        uint32_t          count;
        ksv_exec_times_t  t;
    }                    exec_reply;
    ksv_ready_t          ready;
    struct {
        ksv_str_t         model;
        ksv_str_t         version;
    }                    stats;
    ksv_stats_t          stats_reply;
    ksv_model_config_t   config;
} message_t;


/* Decodes the body in r as d; the prefix was read before. */
static int
decode(decoder_t d, ksv_reader_t *r, ksv_alloc_t *a, message_t *m)
{
    memset(m, 0, sizeof(*m));

    switch (d) {

    case DEC_INFER:
        return ksv_decode_infer(r, a, &m->infer);

    case DEC_INFER_REPLY:
        return ksv_decode_infer_reply(r, a, &m->reply);

    case DEC_ERROR:
        return ksv_decode_error(r, &m->error);

    case DEC_INDEX:
        return ksv_decode_index(r, &m->known);

    case DEC_INDEX_REPLY:
        return ksv_decode_index_reply(r, a, &m->index);

    case DEC_EXECUTE:
        return ksv_decode_execute(r, &m->count);

    case DEC_EXECUTE_REPLY:
        return ksv_decode_execute_reply(r, &m->exec_reply.count,
                                        &m->exec_reply.t);

    case DEC_READY:
        return ksv_decode_ready(r, &m->ready);

    case DEC_STATS:
        return ksv_decode_stats(r, &m->stats.model, &m->stats.version);

    case DEC_STATS_REPLY:
        return ksv_decode_stats_reply(r, a, &m->stats_reply);

    case DEC_MODEL_CONFIG:
        return ksv_decode_model_config(r, a, &m->config);

    default:
        abort();
    }
}


/* Encodes m as d's message (prefix included, except for a bare model
 * configuration). */
static void
encode(decoder_t d, ksv_writer_t *w, uint64_t id, const message_t *m)
{
    switch (d) {

    case DEC_INFER:
        ksv_encode_infer(w, id, &m->infer);
        break;

    case DEC_INFER_REPLY:
        ksv_encode_infer_reply(w, id, &m->reply);
        break;

    case DEC_ERROR:
        ksv_encode_error(w, id, (ksv_status_t) m->error.code,
                         m->error.message);
        break;

    case DEC_INDEX:
        ksv_encode_index(w, id, m->known);
        break;

    case DEC_INDEX_REPLY:
        ksv_encode_index_reply(w, id, &m->index);
        break;

    case DEC_EXECUTE:
        ksv_encode_execute(w, KSV_MSG_EXECUTE, id, m->count);
        break;

    case DEC_EXECUTE_REPLY:
        ksv_encode_execute_reply(w, id, m->exec_reply.count,
                                 &m->exec_reply.t);
        break;

    case DEC_READY:
        ksv_encode_ready(w, &m->ready);
        break;

    case DEC_STATS:
        ksv_encode_stats(w, id, m->stats.model, m->stats.version);
        break;

    case DEC_STATS_REPLY:
        ksv_encode_stats_reply(w, id, &m->stats_reply);
        break;

    case DEC_MODEL_CONFIG:
        ksv_encode_model_config(w, &m->config);
        break;

    default:
        abort();
    }
}


/* What the module renders for a client from the decoded message. */
static void
render(decoder_t d, const message_t *m)
{
    uint32_t            i;
    ksv_writer_t        w;
    ksv_model_status_t  ms;

    ksv_writer_init(&w);

    switch (d) {

    case DEC_ERROR:
        ksv_json_error(&w, m->error.message.data, m->error.message.len);
        (void) ksv_status_http((ksv_status_t) m->error.code);
        break;

    case DEC_INDEX_REPLY:
        for (i = 0; i < m->index.nmodels; i++) {
            ksv_json_model_metadata(&w, &m->index.models[i]);
        }
        break;

    case DEC_STATS_REPLY:
        ksv_json_model_stats(&w, &m->stats_reply);
        ksv_prom_model_stats(&w, &m->stats_reply);
        break;

    case DEC_MODEL_CONFIG:
        memset(&ms, 0, sizeof(ms));
        ms.config = m->config;
        ksv_json_model_metadata(&w, &ms);
        break;

    case DEC_INFER_REPLY:
        ksv_json_params(&w, m->reply.params, m->reply.nparams);
        break;

    default:
        break;
    }

    FUZZ_CHECK(!w.failed);
    ksv_writer_free(&w);
}


static void
round_trip(decoder_t d, uint64_t id, const message_t *m)
{
    size_t        len1, len2;
    uint8_t      *f1, *f2;
    message_t     m2;
    ksv_alloc_t   a;
    ksv_arena_t   arena;
    ksv_prefix_t  prefix;
    ksv_reader_t  r;
    ksv_writer_t  w;

    ksv_writer_init(&w);
    encode(d, &w, id, m);
    FUZZ_CHECK(!w.failed);
    f1 = ksv_writer_detach(&w, &len1);

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);

    ksv_reader_init(&r, f1, len1);
    if (d != DEC_MODEL_CONFIG) {
        FUZZ_CHECK(ksv_read_prefix(&r, &prefix) == 0);
        FUZZ_CHECK(d == DEC_READY || prefix.id == id);
    }
    FUZZ_CHECK(decode(d, &r, &a, &m2) == 0);
    FUZZ_CHECK(r.p == r.end);

    ksv_writer_init(&w);
    encode(d, &w, id, &m2);
    FUZZ_CHECK(!w.failed);
    f2 = ksv_writer_detach(&w, &len2);

    if (len1 != len2 || memcmp(f1, f2, len1) != 0) {
        fprintf(stderr, "decoder %d: re-encoding differs (%zu, %zu bytes)\n",
                (int) d, len1, len2);
        abort();
    }

    free(f1);
    free(f2);
    ksv_arena_free(&arena);
}


int
LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    int           d;
    size_t        off;
    uint8_t      *frame;
    message_t     m;
    ksv_alloc_t   a;
    ksv_arena_t   arena;
    ksv_prefix_t  prefix;
    ksv_reader_t  r;

    /* a frame of its own: an overread of the input is caught */
    frame = malloc(len ? len : 1);
    FUZZ_CHECK(frame != NULL);
    memcpy(frame, buf, len);

    ksv_reader_init(&r, frame, len);
    (void) ksv_read_prefix(&r, &prefix);

    off = len >= KSV_PREFIX_SIZE ? KSV_PREFIX_SIZE : len;

    for (d = 0; d < DEC_COUNT; d++) {
        ksv_arena_init(&arena);
        a = ksv_arena_allocator(&arena);

        ksv_reader_init(&r, frame + off, len - off);

        if (decode((decoder_t) d, &r, &a, &m) == 0) {
            FUZZ_CHECK(!r.failed && r.p <= r.end);
            render((decoder_t) d, &m);
            round_trip((decoder_t) d, prefix.id, &m);
        }

        ksv_arena_free(&arena);
    }

    (void) ksv_patch_id(frame, len, 7);

    free(frame);
    return 0;
}
