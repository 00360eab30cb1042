/*
 * ngx_kserve: model_warmup (see ksv_warmup.h).
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ksv_frames.h"
#include "ksv_warmup.h"


static char *
ksv_warmup_printf(const char *fmt, ...)
{
    char     *s;
    va_list   ap;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
    }
    va_end(ap);
    return s;
}


static uint64_t
ksv_warmup_rand(void)
{
    uint64_t  v;

    if (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
        v = (uint64_t) rand() << 32 | (uint64_t) rand();
    }
    return v;
}


/* Random values of one element of type dt at p. */
static void
ksv_warmup_random_element(ksv_datatype_t dt, uint8_t *p, size_t size)
{
    float     f;
    double    d;
    uint64_t  v = ksv_warmup_rand();

    switch (dt) {
    case KSV_TYPE_FP32:
        f = (float) (v >> 40) / (float) (1 << 24);
        memcpy(p, &f, sizeof(f));
        break;
    case KSV_TYPE_FP64:
        d = (double) (v >> 11) / (double) (1ULL << 53);
        memcpy(p, &d, sizeof(d));
        break;
    case KSV_TYPE_BOOL:
        *p = (uint8_t) (v & 1);
        break;
    case KSV_TYPE_FP16:
    case KSV_TYPE_BF16:
        /* a value in [0.5, 1): exponent 2^-1, random mantissa bits */
        p[0] = (uint8_t) v;
        p[1] = dt == KSV_TYPE_FP16 ? (uint8_t) (0x38 | ((v >> 8) & 3))
                                   : 0x3F;
        break;
    default:
        memcpy(p, &v, size < sizeof(v) ? size : sizeof(v));
        break;
    }
}


/*
 * One warmup input's bytes for a request: malloc'd, *len set; NULL with
 * *err when its file does not fit.
 */
static uint8_t *
ksv_warmup_data(const ksv_warmup_input_t *in, const int64_t *dims,
    uint32_t ndims, const char *model_dir, size_t *len, char **err)
{
    long             flen;
    FILE            *f;
    char            *path;
    size_t           esize, i, off;
    uint8_t         *buf;
    uint64_t         n;
    ksv_datatype_t   dt = (ksv_datatype_t) in->tensor.datatype;

    if (ksv_shape_count(dims, ndims, 1ULL << 32, &n) != 0) {
        *err = ksv_warmup_printf("warmup input '%.*s': shape too large",
                                 (int) in->tensor.name.len,
                                 in->tensor.name.data);
        return NULL;
    }

    if (in->source == KSV_WARMUP_FILE) {
        path = ksv_warmup_printf("%s/warmup/%.*s", model_dir,
                                 (int) in->file.len, in->file.data);
        f = path != NULL ? fopen(path, "rb") : NULL;
        if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (flen = ftell(f)) < 0
            || fseek(f, 0, SEEK_SET) != 0)
        {
            *err = ksv_warmup_printf("warmup input '%.*s': cannot read %s: "
                                     "%s", (int) in->tensor.name.len,
                                     in->tensor.name.data,
                                     path != NULL ? path : "?",
                                     strerror(errno));
            if (f != NULL) {
                fclose(f);
            }
            free(path);
            return NULL;
        }
        esize = ksv_datatype_size(dt);
        if (dt != KSV_TYPE_BYTES && (uint64_t) flen != n * esize) {
            *err = ksv_warmup_printf("warmup input '%.*s': %s has %ld "
                                     "bytes, the tensor needs %llu",
                                     (int) in->tensor.name.len,
                                     in->tensor.name.data, path, flen,
                                     (unsigned long long) (n * esize));
            fclose(f);
            free(path);
            return NULL;
        }
        buf = malloc((size_t) flen + 1);
        if (buf == NULL || fread(buf, 1, (size_t) flen, f) != (size_t) flen) {
            *err = ksv_warmup_printf("warmup input: cannot read %s", path);
            free(buf);
            fclose(f);
            free(path);
            return NULL;
        }
        fclose(f);
        free(path);
        *len = (size_t) flen;
        return buf;
    }

    if (dt == KSV_TYPE_BYTES) {
        /* a 4-byte length per element: 0 (zero_data), 1 and a letter */
        esize = in->source == KSV_WARMUP_RANDOM ? 5 : 4;
        buf = calloc(n ? n : 1, esize);
        if (buf == NULL) {
            *err = strdup("out of memory");
            return NULL;
        }
        for (i = 0, off = 0; in->source == KSV_WARMUP_RANDOM && i < n; i++) {
            buf[off] = 1;
            buf[off + 4] = (uint8_t) ('a' + ksv_warmup_rand() % 26);
            off += 5;
        }
        *len = (size_t) n * esize;
        return buf;
    }

    esize = ksv_datatype_size(dt);
    buf = calloc(n ? n : 1, esize);
    if (buf == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    for (i = 0; in->source == KSV_WARMUP_RANDOM && i < n; i++) {
        ksv_warmup_random_element(dt, buf + i * esize, esize);
    }
    *len = (size_t) n * esize;
    return buf;
}


static void
ksv_warmup_free_data(void *data, void *hint)
{
    (void) hint;
    free(data);
}


/* One EXECUTE of batch_size requests for sample w. */
static int
ksv_warmup_batch(const ksv_model_config_t *c, const ksv_warmup_t *w,
    const char *model_dir, const char *model, const char *version,
    ksv_frames_t *in, char **err)
{
    size_t              len;
    uint8_t            *data;
    uint32_t            b, k, nd;
    zmq_msg_t          *frame;
    ksv_infer_t         m;
    ksv_tensor_t        t[KSV_MAX_TENSORS];
    ksv_writer_t        wr;
    int64_t             dims[KSV_MAX_DIMS + 1];
    ksv_frames_t        data_frames;
    const ksv_warmup_input_t  *wi;

    ksv_writer_init(&wr);
    ksv_encode_execute(&wr, KSV_MSG_EXECUTE, 1, w->batch_size);
    if (ksv_frames_push_writer(in, &wr) != 0) {
        goto nomem;
    }

    for (b = 0; b < w->batch_size; b++) {
        memset(&m, 0, sizeof(m));
        m.model_name = ksv_str_c(model);
        m.model_version = ksv_str_c(version);
        m.request_id = ksv_str_lit("warmup");
        m.ninputs = w->ninputs;
        m.inputs = t;

        for (k = 0; k < w->ninputs; k++) {
            wi = &w->inputs[k];
            nd = 0;
            if (c->max_batch_size > 0) {
                dims[nd++] = 1;
            }
            memcpy(&dims[nd], wi->tensor.dims,
                   wi->tensor.ndims * sizeof(int64_t));
            nd += wi->tensor.ndims;
            if (nd > KSV_MAX_DIMS) {
                *err = ksv_warmup_printf("warmup input '%.*s': too many "
                                         "dims", (int) wi->tensor.name.len,
                                         wi->tensor.name.data);
                return -1;
            }
            memset(&t[k], 0, sizeof(t[k]));
            t[k].name = wi->tensor.name;
            t[k].datatype = wi->tensor.datatype;
            t[k].ndims = (uint8_t) nd;
            memcpy(t[k].dims, dims, nd * sizeof(int64_t));
        }

        /* the data first: the header describes its sizes */
        ksv_frames_init(&data_frames);
        for (k = 0; k < w->ninputs; k++) {
            data = ksv_warmup_data(&w->inputs[k], t[k].dims, t[k].ndims,
                                   model_dir, &len, err);
            if (data == NULL) {
                ksv_frames_free(&data_frames);
                return -1;
            }
            t[k].byte_size = len;
            frame = ksv_frames_push(&data_frames);
            if (frame == NULL) {
                free(data);
                ksv_frames_free(&data_frames);
                goto nomem;
            }
            zmq_msg_close(frame);
            if (zmq_msg_init_data(frame, data, len, ksv_warmup_free_data,
                                  NULL) != 0)
            {
                free(data);
                zmq_msg_init(frame);
                ksv_frames_free(&data_frames);
                goto nomem;
            }
        }

        ksv_writer_init(&wr);
        ksv_encode_infer(&wr, b + 1, &m);
        if (ksv_frames_push_writer(in, &wr) != 0) {
            ksv_frames_free(&data_frames);
            goto nomem;
        }
        for (k = 0; k < data_frames.n; k++) {
            if (ksv_frames_push_move(in, &data_frames.msgs[k]) != 0) {
                ksv_frames_free(&data_frames);
                goto nomem;
            }
        }
        data_frames.n = 0;
        ksv_frames_free(&data_frames);
    }
    return 0;

nomem:

    *err = strdup("out of memory");
    return -1;
}


/* The reply's first error, if any: 0 when every request was answered. */
static int
ksv_warmup_check(const ksv_warmup_t *w, ksv_frames_t *out, char **err)
{
    size_t              i;
    uint32_t            count, done;
    ksv_arena_t         arena;
    ksv_alloc_t         a;
    ksv_error_t         e;
    ksv_reader_t        r;
    ksv_prefix_t        pre;
    ksv_exec_times_t    times;
    ksv_infer_reply_t   rep;

    if (out->n == 0) {
        *err = strdup("warmup: the backend gave no reply");
        return -1;
    }
    ksv_reader_init(&r, zmq_msg_data(&out->msgs[0]),
                    zmq_msg_size(&out->msgs[0]));
    if (ksv_read_prefix(&r, &pre) != 0 || pre.kind != KSV_MSG_EXECUTE_REPLY
        || ksv_decode_execute_reply(&r, &count, &times) != 0)
    {
        *err = strdup("warmup: the backend's reply is not an EXECUTE_REPLY");
        return -1;
    }

    ksv_arena_init(&arena);
    a = ksv_arena_allocator(&arena);
    for (i = 1, done = 0; i < out->n && done < count; done++) {
        ksv_reader_init(&r, zmq_msg_data(&out->msgs[i]),
                        zmq_msg_size(&out->msgs[i]));
        if (ksv_read_prefix(&r, &pre) != 0) {
            break;
        }
        if (pre.kind == KSV_MSG_ERROR) {
            if (ksv_decode_error(&r, &e) != 0) {
                break;
            }
            *err = ksv_warmup_printf("model_warmup '%.*s' failed: %.*s",
                                     (int) w->name.len, w->name.data,
                                     (int) e.message.len, e.message.data);
            ksv_arena_free(&arena);
            return -1;
        }
        if (pre.kind != KSV_MSG_INFER_REPLY
            || ksv_decode_infer_reply(&r, &a, &rep) != 0)
        {
            break;
        }
        i += 1 + rep.noutputs;
    }
    ksv_arena_free(&arena);

    if (done < count) {
        *err = ksv_warmup_printf("model_warmup '%.*s': the backend answered "
                                 "%u of %u requests", (int) w->name.len,
                                 w->name.data, done, count);
        return -1;
    }
    return 0;
}


int
ksv_instance_warmup(const ksv_model_config_t *c, const char *model_dir,
    const char *model, const char *version, const ksv_instance_server_t *s,
    char **err)
{
    int            rc;
    uint32_t       i, run, runs;
    ksv_frames_t   in, out;
    const ksv_warmup_t  *w;

    ksv_frames_init(&in);
    ksv_frames_init(&out);
    rc = 0;

    for (i = 0; rc == 0 && i < c->nwarmup; i++) {
        w = &c->warmup[i];
        runs = w->count > 0 ? w->count : 1;
        for (run = 0; rc == 0 && run < runs; run++) {
            ksv_frames_clear(&in);
            ksv_frames_clear(&out);
            rc = ksv_warmup_batch(c, w, model_dir, model, version, &in, err);
            if (rc != 0) {
                break;
            }
            rc = s->run(s->data, &in, &out);
            if (rc < 0) {
                *err = strdup("out of memory");
                break;
            }
            rc = rc == 0 ? (*err = strdup("warmup: no reply"), -1)
                         : ksv_warmup_check(w, &out, err);
        }
        if (rc == 0) {
            fprintf(stderr, "%s: warmup '%.*s': %u batch(es) of %u "
                    "request(s)\n", model, (int) w->name.len, w->name.data,
                    runs, w->batch_size);
        }
    }

    ksv_frames_free(&in);
    ksv_frames_free(&out);
    return rc;
}
