/*
 * ngx_kserve: the wire codec (see ksv_proto.h and docs/protocol.md).
 *
 * Writers append little-endian fields to a growable buffer and remember
 * failure instead of reporting it per call; readers do the same for
 * truncation.  Message codecs are therefore straight-line code that
 * checks `failed` once at the end.
 */

#include <stdlib.h>
#include <string.h>

#include "ksv_proto.h"


#define KSV_ARENA_CHUNK  8192

/* two empty strings, three u64, six {count, ns}, u32 nbatch */
#define KSV_STATS_ENTRY_MIN  (2 + 2 + 3 * 8 + 6 * 16 + 4)


struct ksv_arena_chunk_s {
    ksv_arena_chunk_t  *next;
    size_t              used;
    size_t              size;
    /* the chunk's memory follows, aligned for any scalar */
    max_align_t         data[];
};


/* ---- strings ------------------------------------------------------------ */

int
ksv_str_eq(ksv_str_t a, const char *cstr)
{
    size_t  n = strlen(cstr);

    return a.len == n && (n == 0 || memcmp(a.data, cstr, n) == 0);
}


ksv_str_t
ksv_str_c(const char *cstr)
{
    ksv_str_t  s;

    s.data = cstr;
    s.len = (uint32_t) strlen(cstr);
    return s;
}


/* ---- arena -------------------------------------------------------------- */

void
ksv_arena_init(ksv_arena_t *arena)
{
    arena->head = NULL;
}


void *
ksv_arena_alloc(ksv_arena_t *arena, size_t size)
{
    size_t              align, need, chunk;
    ksv_arena_chunk_t  *c;

    align = sizeof(max_align_t);
    need = (size + align - 1) & ~(align - 1);
    if (need < size) {
        return NULL;
    }

    c = arena->head;
    if (c == NULL || c->size - c->used < need) {
        chunk = need > KSV_ARENA_CHUNK ? need : KSV_ARENA_CHUNK;
        c = malloc(sizeof(ksv_arena_chunk_t) + chunk);
        if (c == NULL) {
            return NULL;
        }
        c->used = 0;
        c->size = chunk;
        c->next = arena->head;
        arena->head = c;
    }

    c->used += need;
    return (char *) c->data + c->used - need;
}


void
ksv_arena_free(ksv_arena_t *arena)
{
    ksv_arena_chunk_t  *c, *next;

    for (c = arena->head; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    arena->head = NULL;
}


static void *
ksv_arena_alloc_cb(void *ctx, size_t size)
{
    return ksv_arena_alloc(ctx, size);
}


ksv_alloc_t
ksv_arena_allocator(ksv_arena_t *arena)
{
    ksv_alloc_t  a;

    a.alloc = ksv_arena_alloc_cb;
    a.ctx = arena;
    return a;
}


/* Zeroed array of n elements, n capped by the caller. */
static void *
ksv_alloc_array(ksv_alloc_t *a, uint32_t n, size_t elt)
{
    void  *p;

    if (n == 0) {
        return NULL;
    }
    p = a->alloc(a->ctx, (size_t) n * elt);
    if (p != NULL) {
        memset(p, 0, (size_t) n * elt);
    }
    return p;
}


/* ---- writer ------------------------------------------------------------- */

void
ksv_writer_init(ksv_writer_t *w)
{
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    w->failed = 0;
}


void
ksv_writer_free(ksv_writer_t *w)
{
    free(w->buf);
    ksv_writer_init(w);
}


uint8_t *
ksv_writer_detach(ksv_writer_t *w, size_t *len)
{
    uint8_t  *buf = w->buf;

    *len = w->len;
    ksv_writer_init(w);
    return buf;
}


void
ksv_writer_free_cb(void *data, void *hint)
{
    (void) hint;
    free(data);
}


uint8_t *
ksv_writer_room(ksv_writer_t *w, size_t n)
{
    size_t    cap;
    uint8_t  *buf;

    if (w->failed) {
        return NULL;
    }

    if (w->cap - w->len < n) {
        cap = w->cap ? w->cap : 256;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) {
                w->failed = 1;
                return NULL;
            }
            cap *= 2;
        }
        buf = realloc(w->buf, cap);
        if (buf == NULL) {
            w->failed = 1;
            return NULL;
        }
        w->buf = buf;
        w->cap = cap;
    }

    return w->buf + w->len;
}


static uint8_t *
ksv_writer_reserve(ksv_writer_t *w, size_t n)
{
    uint8_t  *dst = ksv_writer_room(w, n);

    if (dst != NULL) {
        w->len += n;
    }

    return dst;
}


void
ksv_put_bytes(ksv_writer_t *w, const void *p, size_t n)
{
    uint8_t  *dst = ksv_writer_reserve(w, n);

    if (dst != NULL && n > 0) {
        memcpy(dst, p, n);
    }
}


/* Little-endian regardless of the host. */
static void
ksv_put_le(ksv_writer_t *w, uint64_t v, int n)
{
    int       i;
    uint8_t  *dst = ksv_writer_reserve(w, n);

    if (dst == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        dst[i] = (uint8_t) (v >> (8 * i));
    }
}


void
ksv_put_u8(ksv_writer_t *w, uint8_t v)
{
    ksv_put_le(w, v, 1);
}


void
ksv_put_u16(ksv_writer_t *w, uint16_t v)
{
    ksv_put_le(w, v, 2);
}


void
ksv_put_u32(ksv_writer_t *w, uint32_t v)
{
    ksv_put_le(w, v, 4);
}


void
ksv_put_u64(ksv_writer_t *w, uint64_t v)
{
    ksv_put_le(w, v, 8);
}


void
ksv_put_i64(ksv_writer_t *w, int64_t v)
{
    ksv_put_le(w, (uint64_t) v, 8);
}


void
ksv_put_f64(ksv_writer_t *w, double v)
{
    uint64_t  bits;

    memcpy(&bits, &v, sizeof(bits));
    ksv_put_le(w, bits, 8);
}


/* Strings longer than the wire allows are an encoding failure, not a
 * silent truncation: the sender must bound them first. */
void
ksv_put_str(ksv_writer_t *w, ksv_str_t s)
{
    if (s.len > KSV_MAX_STRING) {
        w->failed = 1;
        return;
    }
    ksv_put_u16(w, (uint16_t) s.len);
    ksv_put_bytes(w, s.data, s.len);
}


/* ---- reader ------------------------------------------------------------- */

void
ksv_reader_init(ksv_reader_t *r, const void *buf, size_t len)
{
    r->p = buf;
    r->end = r->p + len;
    r->failed = 0;
}


static const uint8_t *
ksv_reader_take(ksv_reader_t *r, size_t n)
{
    const uint8_t  *p;

    if (r->failed || (size_t) (r->end - r->p) < n) {
        r->failed = 1;
        return NULL;
    }
    p = r->p;
    r->p += n;
    return p;
}


static uint64_t
ksv_get_le(ksv_reader_t *r, int n)
{
    int             i;
    uint64_t        v = 0;
    const uint8_t  *p = ksv_reader_take(r, n);

    if (p == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        v |= (uint64_t) p[i] << (8 * i);
    }
    return v;
}


uint8_t
ksv_get_u8(ksv_reader_t *r)
{
    return (uint8_t) ksv_get_le(r, 1);
}


uint16_t
ksv_get_u16(ksv_reader_t *r)
{
    return (uint16_t) ksv_get_le(r, 2);
}


uint32_t
ksv_get_u32(ksv_reader_t *r)
{
    return (uint32_t) ksv_get_le(r, 4);
}


uint64_t
ksv_get_u64(ksv_reader_t *r)
{
    return ksv_get_le(r, 8);
}


int64_t
ksv_get_i64(ksv_reader_t *r)
{
    return (int64_t) ksv_get_le(r, 8);
}


double
ksv_get_f64(ksv_reader_t *r)
{
    double    v;
    uint64_t  bits = ksv_get_le(r, 8);

    memcpy(&v, &bits, sizeof(v));
    return v;
}


ksv_str_t
ksv_get_str(ksv_reader_t *r)
{
    ksv_str_t  s;
    uint16_t   len = ksv_get_u16(r);

    s.data = (const char *) ksv_reader_take(r, len);
    s.len = s.data != NULL ? len : 0;
    if (s.data == NULL) {
        s.data = "";
    }
    return s;
}


/* A count that must not exceed max; exceeding it fails the reader. */
static uint32_t
ksv_get_count(ksv_reader_t *r, uint32_t max)
{
    uint32_t  n = ksv_get_u32(r);

    if (n > max) {
        r->failed = 1;
        return 0;
    }
    return n;
}


/* ---- prefix ------------------------------------------------------------- */

void
ksv_put_prefix(ksv_writer_t *w, ksv_msg_kind_t kind, uint64_t id)
{
    ksv_put_u16(w, KSV_PROTO_MAGIC);
    ksv_put_u8(w, KSV_PROTO_VERSION);
    ksv_put_u8(w, (uint8_t) kind);
    ksv_put_u32(w, 0);
    ksv_put_u64(w, id);
}


int
ksv_read_prefix(ksv_reader_t *r, ksv_prefix_t *prefix)
{
    uint16_t  magic;

    prefix->version = 0;
    prefix->kind = 0;
    prefix->id = 0;

    if ((size_t) (r->end - r->p) < KSV_PREFIX_SIZE) {
        r->failed = 1;
        return -1;
    }

    magic = ksv_get_u16(r);
    prefix->version = ksv_get_u8(r);
    prefix->kind = ksv_get_u8(r);
    (void) ksv_get_u32(r);
    prefix->id = ksv_get_u64(r);

    if (magic != KSV_PROTO_MAGIC
        || prefix->version != KSV_PROTO_VERSION
        || prefix->kind == 0
        || prefix->kind >= KSV_MSG_KIND_MAX)
    {
        r->failed = 1;
        return -1;
    }

    return 0;
}


int
ksv_patch_id(void *frame, size_t len, uint64_t id)
{
    int       i;
    uint8_t  *p = frame;

    if (len < KSV_PREFIX_SIZE) {
        return -1;
    }
    for (i = 0; i < 8; i++) {
        p[8 + i] = (uint8_t) (id >> (8 * i));
    }
    return 0;
}


/* ---- tensors and parameters ------------------------------------------- */

static void
ksv_put_dims(ksv_writer_t *w, const int64_t *dims, uint8_t ndims)
{
    uint8_t  i;

    if (ndims > KSV_MAX_DIMS) {
        w->failed = 1;
        return;
    }
    ksv_put_u8(w, ndims);
    for (i = 0; i < ndims; i++) {
        ksv_put_i64(w, dims[i]);
    }
}


static uint8_t
ksv_get_dims(ksv_reader_t *r, int64_t *dims)
{
    uint8_t  i, ndims = ksv_get_u8(r);

    if (ndims > KSV_MAX_DIMS) {
        r->failed = 1;
        return 0;
    }
    for (i = 0; i < ndims; i++) {
        dims[i] = ksv_get_i64(r);
    }
    return ndims;
}


static void
ksv_put_tensors(ksv_writer_t *w, const ksv_tensor_t *t, uint32_t n)
{
    uint32_t  i;

    ksv_put_u32(w, n);
    for (i = 0; i < n; i++) {
        ksv_put_str(w, t[i].name);
        ksv_put_u8(w, t[i].datatype);
        ksv_put_dims(w, t[i].dims, t[i].ndims);
        ksv_put_u64(w, t[i].byte_size);
    }
}


static ksv_tensor_t *
ksv_get_tensors(ksv_reader_t *r, ksv_alloc_t *a, uint32_t *n)
{
    uint32_t       i;
    ksv_tensor_t  *t;

    *n = ksv_get_count(r, KSV_MAX_TENSORS);
    if (r->failed || *n == 0) {
        return NULL;
    }
    t = ksv_alloc_array(a, *n, sizeof(ksv_tensor_t));
    if (t == NULL) {
        r->failed = 1;
        return NULL;
    }
    for (i = 0; i < *n; i++) {
        t[i].name = ksv_get_str(r);
        t[i].datatype = ksv_get_u8(r);
        t[i].ndims = ksv_get_dims(r, t[i].dims);
        t[i].byte_size = ksv_get_u64(r);
        if (t[i].datatype == KSV_TYPE_INVALID
            || t[i].datatype >= KSV_TYPE_COUNT)
        {
            r->failed = 1;
        }
    }
    return t;
}


static void
ksv_put_params(ksv_writer_t *w, const ksv_param_t *p, uint32_t n)
{
    uint32_t  i;

    ksv_put_u32(w, n);
    for (i = 0; i < n; i++) {
        ksv_put_str(w, p[i].key);
        ksv_put_u8(w, p[i].type);
        switch (p[i].type) {
        case KSV_PARAM_BOOL:
        case KSV_PARAM_INT:
            ksv_put_i64(w, p[i].i);
            break;
        case KSV_PARAM_DOUBLE:
            ksv_put_f64(w, p[i].d);
            break;
        case KSV_PARAM_STRING:
            ksv_put_str(w, p[i].s);
            break;
        default:
            w->failed = 1;
        }
    }
}


static ksv_param_t *
ksv_get_params(ksv_reader_t *r, ksv_alloc_t *a, uint32_t *n)
{
    uint32_t      i;
    ksv_param_t  *p;

    *n = ksv_get_count(r, KSV_MAX_PARAMS);
    if (r->failed || *n == 0) {
        return NULL;
    }
    p = ksv_alloc_array(a, *n, sizeof(ksv_param_t));
    if (p == NULL) {
        r->failed = 1;
        return NULL;
    }
    for (i = 0; i < *n; i++) {
        p[i].key = ksv_get_str(r);
        p[i].type = ksv_get_u8(r);
        p[i].s = ksv_str_lit("");
        switch (p[i].type) {
        case KSV_PARAM_BOOL:
        case KSV_PARAM_INT:
            p[i].i = ksv_get_i64(r);
            break;
        case KSV_PARAM_DOUBLE:
            p[i].d = ksv_get_f64(r);
            break;
        case KSV_PARAM_STRING:
            p[i].s = ksv_get_str(r);
            break;
        default:
            r->failed = 1;
        }
    }
    return p;
}


/* ---- INFER / INFER_REPLY / ERROR ------------------------------------------ */

int
ksv_shm_key_valid(const char *key, size_t len)
{
    while (len > 0 && *key == '/') {
        key++;
        len--;
    }
    if (len == 0 || len > 255 || memchr(key, '/', len) != NULL
        || memchr(key, '\0', len) != NULL
        || (len == 1 && key[0] == '.')
        || (len == 2 && key[0] == '.' && key[1] == '.'))
    {
        return 0;
    }
    return 1;
}


/* The INFER's shared memory section: only when there is one. */
static void
ksv_put_shm_refs(ksv_writer_t *w, const ksv_shm_ref_t *refs, uint32_t n)
{
    uint32_t  i;

    if (n == 0) {
        return;
    }
    ksv_put_u32(w, n);
    for (i = 0; i < n; i++) {
        ksv_put_u8(w, refs[i].io);
        ksv_put_u32(w, refs[i].index);
        ksv_put_str(w, refs[i].region);
        ksv_put_str(w, refs[i].key);
        ksv_put_u64(w, refs[i].offset);
        ksv_put_u64(w, refs[i].byte_size);
    }
}


/* Absent (the body ends after the parameters) is nshm 0; present, it
 * names each input or requested output at most once. */
static int
ksv_get_shm_refs(ksv_reader_t *r, ksv_alloc_t *a, ksv_infer_t *m)
{
    uint32_t        i, k;
    ksv_shm_ref_t  *ref;

    if (r->failed || r->p == r->end) {
        return 0;
    }
    m->nshm = ksv_get_count(r, KSV_MAX_TENSORS * 2);
    if (r->failed || m->nshm == 0) {
        return -1;
    }
    m->shm = ksv_alloc_array(a, m->nshm, sizeof(ksv_shm_ref_t));
    if (m->shm == NULL) {
        return -1;
    }
    for (i = 0; i < m->nshm; i++) {
        ref = &m->shm[i];
        ref->io = ksv_get_u8(r);
        ref->index = ksv_get_u32(r);
        ref->region = ksv_get_str(r);
        ref->key = ksv_get_str(r);
        ref->offset = ksv_get_u64(r);
        ref->byte_size = ksv_get_u64(r);
        if (r->failed
            || (ref->io == KSV_SHM_INPUT && ref->index >= m->ninputs)
            || (ref->io == KSV_SHM_OUTPUT && ref->index >= m->noutputs)
            || ref->io > KSV_SHM_OUTPUT
            || ref->offset > UINT64_MAX - ref->byte_size)
        {
            return -1;
        }
        for (k = 0; k < i; k++) {
            if (m->shm[k].io == ref->io && m->shm[k].index == ref->index) {
                return -1;
            }
        }
    }
    return 0;
}


void
ksv_encode_infer(ksv_writer_t *w, uint64_t id, const ksv_infer_t *m)
{
    uint32_t  i;

    ksv_put_prefix(w, KSV_MSG_INFER, id);
    ksv_put_str(w, m->model_name);
    ksv_put_str(w, m->model_version);
    ksv_put_str(w, m->request_id);
    ksv_put_u32(w, m->timeout_ms);
    ksv_put_u32(w, m->flags);
    ksv_put_tensors(w, m->inputs, m->ninputs);

    ksv_put_u32(w, m->noutputs);
    for (i = 0; i < m->noutputs; i++) {
        ksv_put_str(w, m->outputs[i].name);
        ksv_put_u32(w, m->outputs[i].flags);
        ksv_put_u32(w, m->outputs[i].class_count);
    }

    ksv_put_params(w, m->params, m->nparams);
    ksv_put_shm_refs(w, m->shm, m->nshm);
}


int
ksv_decode_infer(ksv_reader_t *r, ksv_alloc_t *a, ksv_infer_t *m)
{
    uint32_t  i;

    memset(m, 0, sizeof(*m));
    m->model_name = ksv_get_str(r);
    m->model_version = ksv_get_str(r);
    m->request_id = ksv_get_str(r);
    m->timeout_ms = ksv_get_u32(r);
    m->flags = ksv_get_u32(r);
    m->inputs = ksv_get_tensors(r, a, &m->ninputs);

    m->noutputs = ksv_get_count(r, KSV_MAX_TENSORS);
    if (!r->failed && m->noutputs > 0) {
        m->outputs = ksv_alloc_array(a, m->noutputs,
                                     sizeof(ksv_output_req_t));
        if (m->outputs == NULL) {
            return -1;
        }
        for (i = 0; i < m->noutputs; i++) {
            m->outputs[i].name = ksv_get_str(r);
            m->outputs[i].flags = ksv_get_u32(r);
            m->outputs[i].class_count = ksv_get_u32(r);
        }
    }

    m->params = ksv_get_params(r, a, &m->nparams);
    if (ksv_get_shm_refs(r, a, m) != 0) {
        return -1;
    }
    return r->failed ? -1 : 0;
}


void
ksv_encode_infer_reply(ksv_writer_t *w, uint64_t id,
    const ksv_infer_reply_t *m)
{
    uint32_t  i;

    ksv_put_prefix(w, KSV_MSG_INFER_REPLY, id);
    ksv_put_str(w, m->model_name);
    ksv_put_str(w, m->model_version);
    ksv_put_str(w, m->request_id);
    ksv_put_tensors(w, m->outputs, m->noutputs);
    ksv_put_params(w, m->params, m->nparams);
    if (m->nshm > 0 || m->has_trace) {
        ksv_put_u32(w, m->nshm);
        for (i = 0; i < m->nshm; i++) {
            ksv_put_u32(w, m->shm[i]);
        }
    }
    if (m->has_trace) {
        ksv_put_trace_times(w, &m->trace);
    }
}


void
ksv_put_trace_times(ksv_writer_t *w, const ksv_trace_times_t *t)
{
    ksv_put_u8(w, KSV_TRACE_TIMES);
    ksv_put_u64(w, t->queue_start);
    ksv_put_u64(w, t->compute_start);
    ksv_put_u64(w, t->compute_input_end);
    ksv_put_u64(w, t->compute_output_start);
    ksv_put_u64(w, t->compute_end);
    ksv_put_u64(w, t->request_end);
}


int
ksv_decode_infer_reply(ksv_reader_t *r, ksv_alloc_t *a,
    ksv_infer_reply_t *m)
{
    uint32_t  i;

    memset(m, 0, sizeof(*m));
    m->model_name = ksv_get_str(r);
    m->model_version = ksv_get_str(r);
    m->request_id = ksv_get_str(r);
    m->outputs = ksv_get_tensors(r, a, &m->noutputs);
    m->params = ksv_get_params(r, a, &m->nparams);
    if (r->failed || r->p == r->end) {
        return r->failed ? -1 : 0;      /* no trailing sections */
    }
    m->nshm = ksv_get_count(r, KSV_MAX_TENSORS);
    if (r->failed || (m->nshm == 0 && r->p == r->end)) {
        return -1;                      /* an empty one precedes the trace */
    }
    if (m->nshm > 0) {
        m->shm = ksv_alloc_array(a, m->nshm, sizeof(uint32_t));
        if (m->shm == NULL) {
            return -1;
        }
    }
    for (i = 0; i < m->nshm; i++) {
        m->shm[i] = ksv_get_u32(r);
        if (m->shm[i] >= m->noutputs) {
            return -1;
        }
    }
    if (!r->failed && r->p < r->end) {
        /* a traced request's timestamps; a later version may add more */
        uint8_t  n = ksv_get_u8(r);

        if (n < KSV_TRACE_TIMES) {
            return -1;
        }
        m->has_trace = 1;
        m->trace.queue_start = ksv_get_u64(r);
        m->trace.compute_start = ksv_get_u64(r);
        m->trace.compute_input_end = ksv_get_u64(r);
        m->trace.compute_output_start = ksv_get_u64(r);
        m->trace.compute_end = ksv_get_u64(r);
        m->trace.request_end = ksv_get_u64(r);
        for (n -= KSV_TRACE_TIMES; n > 0; n--) {
            (void) ksv_get_u64(r);
        }
    }
    return r->failed ? -1 : 0;
}


void
ksv_encode_error(ksv_writer_t *w, uint64_t id, ksv_status_t code,
    ksv_str_t message)
{
    /* an error message is the one string we shorten rather than fail */
    if (message.len > KSV_MAX_STRING) {
        message.len = KSV_MAX_STRING;
    }
    ksv_put_prefix(w, KSV_MSG_ERROR, id);
    ksv_put_u16(w, (uint16_t) code);
    ksv_put_str(w, message);
}


int
ksv_decode_error(ksv_reader_t *r, ksv_error_t *m)
{
    m->code = ksv_get_u16(r);
    m->message = ksv_get_str(r);
    if (m->code >= KSV_ERR_COUNT) {
        m->code = KSV_ERR_UNKNOWN;
    }
    return r->failed ? -1 : 0;
}


/* ---- model configuration ---------------------------------------------- */

static void
ksv_put_io(ksv_writer_t *w, const ksv_io_config_t *io, uint32_t n)
{
    uint32_t  i;

    ksv_put_u32(w, n);
    for (i = 0; i < n; i++) {
        ksv_put_str(w, io[i].name);
        ksv_put_u8(w, io[i].datatype);
        ksv_put_u8(w, io[i].optional);
        ksv_put_u8(w, io[i].allow_ragged_batch);
        ksv_put_dims(w, io[i].dims, io[i].ndims);
        ksv_put_u8(w, io[i].has_reshape);
        ksv_put_dims(w, io[i].reshape, io[i].reshape_ndims);
        ksv_put_u8(w, io[i].format);
        ksv_put_str(w, io[i].label_filename);
    }
}


static ksv_io_config_t *
ksv_get_io(ksv_reader_t *r, ksv_alloc_t *a, uint32_t *n)
{
    uint32_t          i;
    ksv_io_config_t  *io;

    *n = ksv_get_count(r, KSV_MAX_TENSORS);
    if (r->failed || *n == 0) {
        return NULL;
    }
    io = ksv_alloc_array(a, *n, sizeof(ksv_io_config_t));
    if (io == NULL) {
        r->failed = 1;
        return NULL;
    }
    for (i = 0; i < *n; i++) {
        io[i].name = ksv_get_str(r);
        io[i].datatype = ksv_get_u8(r);
        io[i].optional = ksv_get_u8(r);
        io[i].allow_ragged_batch = ksv_get_u8(r);
        io[i].ndims = ksv_get_dims(r, io[i].dims);
        io[i].has_reshape = ksv_get_u8(r);
        io[i].reshape_ndims = ksv_get_dims(r, io[i].reshape);
        io[i].format = ksv_get_u8(r);
        io[i].label_filename = ksv_get_str(r);
        if (io[i].datatype >= KSV_TYPE_COUNT || io[i].format > 2) {
            r->failed = 1;
        }
    }
    return io;
}


static void *
ksv_get_list(ksv_reader_t *r, ksv_alloc_t *a, uint32_t *n, size_t elt)
{
    void  *p;

    *n = ksv_get_count(r, KSV_MAX_LIST);
    if (r->failed || *n == 0) {
        return NULL;
    }
    p = ksv_alloc_array(a, *n, elt);
    if (p == NULL) {
        r->failed = 1;
    }
    return p;
}


void
ksv_encode_model_config(ksv_writer_t *w, const ksv_model_config_t *c)
{
    uint32_t                       i, j;
    const ksv_dynamic_batching_t  *db = &c->dynamic_batching;

    ksv_put_str(w, c->name);
    ksv_put_str(w, c->platform);
    ksv_put_str(w, c->backend);
    ksv_put_str(w, c->default_model_filename);
    ksv_put_u32(w, (uint32_t) c->max_batch_size);
    ksv_put_io(w, c->inputs, c->ninputs);
    ksv_put_io(w, c->outputs, c->noutputs);

    ksv_put_u32(w, c->ngroups);
    for (i = 0; i < c->ngroups; i++) {
        ksv_put_str(w, c->groups[i].name);
        ksv_put_u32(w, (uint32_t) c->groups[i].count);
        ksv_put_u8(w, c->groups[i].kind);
        ksv_put_u32(w, c->groups[i].ngpus);
        for (j = 0; j < c->groups[i].ngpus; j++) {
            ksv_put_u32(w, (uint32_t) c->groups[i].gpus[j]);
        }
    }

    ksv_put_u8(w, c->version_policy.kind);
    ksv_put_u32(w, c->version_policy.latest_num);
    ksv_put_u32(w, c->version_policy.nversions);
    for (i = 0; i < c->version_policy.nversions; i++) {
        ksv_put_i64(w, c->version_policy.versions[i]);
    }

    ksv_put_u8(w, db->enabled);
    ksv_put_u8(w, db->preserve_ordering);
    ksv_put_u32(w, db->npreferred);
    for (i = 0; i < db->npreferred; i++) {
        ksv_put_u32(w, (uint32_t) db->preferred_batch_size[i]);
    }
    ksv_put_u64(w, db->max_queue_delay_us);
    ksv_put_u32(w, db->priority_levels);
    ksv_put_u32(w, db->default_priority_level);
    ksv_put_u8(w, db->default_queue_policy.timeout_action);
    ksv_put_u8(w, db->default_queue_policy.allow_timeout_override);
    ksv_put_u64(w, db->default_queue_policy.default_timeout_us);
    ksv_put_u32(w, db->default_queue_policy.max_queue_size);

    ksv_put_u32(w, c->nparameters);
    for (i = 0; i < c->nparameters; i++) {
        ksv_put_str(w, c->parameters[i].key);
        ksv_put_str(w, c->parameters[i].value);
    }
}


int
ksv_decode_model_config(ksv_reader_t *r, ksv_alloc_t *a,
    ksv_model_config_t *c)
{
    uint32_t                 i, j;
    ksv_instance_group_t    *g;
    ksv_dynamic_batching_t  *db = &c->dynamic_batching;

    memset(c, 0, sizeof(*c));
    c->name = ksv_get_str(r);
    c->platform = ksv_get_str(r);
    c->backend = ksv_get_str(r);
    c->default_model_filename = ksv_get_str(r);
    c->max_batch_size = (int32_t) ksv_get_u32(r);
    c->inputs = ksv_get_io(r, a, &c->ninputs);
    c->outputs = ksv_get_io(r, a, &c->noutputs);

    c->groups = ksv_get_list(r, a, &c->ngroups, sizeof(*c->groups));
    for (i = 0; i < c->ngroups && !r->failed; i++) {
        g = &c->groups[i];
        g->name = ksv_get_str(r);
        g->count = (int32_t) ksv_get_u32(r);
        g->kind = ksv_get_u8(r);
        g->gpus = ksv_get_list(r, a, &g->ngpus, sizeof(*g->gpus));
        for (j = 0; j < g->ngpus && !r->failed; j++) {
            g->gpus[j] = (int32_t) ksv_get_u32(r);
        }
    }

    c->version_policy.kind = ksv_get_u8(r);
    c->version_policy.latest_num = ksv_get_u32(r);
    c->version_policy.versions = ksv_get_list(r, a,
        &c->version_policy.nversions, sizeof(int64_t));
    for (i = 0; i < c->version_policy.nversions && !r->failed; i++) {
        c->version_policy.versions[i] = ksv_get_i64(r);
    }

    db->enabled = ksv_get_u8(r);
    db->preserve_ordering = ksv_get_u8(r);
    db->preferred_batch_size = ksv_get_list(r, a, &db->npreferred,
                                            sizeof(int32_t));
    for (i = 0; i < db->npreferred && !r->failed; i++) {
        db->preferred_batch_size[i] = (int32_t) ksv_get_u32(r);
    }
    db->max_queue_delay_us = ksv_get_u64(r);
    db->priority_levels = ksv_get_u32(r);
    db->default_priority_level = ksv_get_u32(r);
    db->default_queue_policy.timeout_action = ksv_get_u8(r);
    db->default_queue_policy.allow_timeout_override = ksv_get_u8(r);
    db->default_queue_policy.default_timeout_us = ksv_get_u64(r);
    db->default_queue_policy.max_queue_size = ksv_get_u32(r);

    c->parameters = ksv_get_list(r, a, &c->nparameters,
                                 sizeof(*c->parameters));
    for (i = 0; i < c->nparameters && !r->failed; i++) {
        c->parameters[i].key = ksv_get_str(r);
        c->parameters[i].value = ksv_get_str(r);
    }

    return r->failed ? -1 : 0;
}


/* ---- INDEX / INDEX_REPLY ------------------------------------------------- */

void
ksv_encode_index(ksv_writer_t *w, uint64_t id, uint64_t known)
{
    ksv_put_prefix(w, KSV_MSG_INDEX, id);
    ksv_put_u64(w, known);
}


int
ksv_decode_index(ksv_reader_t *r, uint64_t *known)
{
    *known = ksv_get_u64(r);
    return r->failed ? -1 : 0;
}


static void
ksv_put_instances(ksv_writer_t *w, const ksv_version_status_t *v)
{
    uint32_t                      i;
    const ksv_instance_status_t  *is;

    ksv_put_u32(w, v->ninstances);
    for (i = 0; i < v->ninstances; i++) {
        is = &v->instances[i];
        ksv_put_str(w, is->name);
        ksv_put_str(w, is->endpoint);
        ksv_put_u32(w, is->pid);
        ksv_put_u8(w, is->state);
        ksv_put_str(w, is->reason);
    }
}


static void
ksv_get_instances(ksv_reader_t *r, ksv_alloc_t *a, ksv_version_status_t *v)
{
    uint32_t                i;
    ksv_instance_status_t  *is;

    v->instances = ksv_get_list(r, a, &v->ninstances,
                                sizeof(*v->instances));
    for (i = 0; i < v->ninstances && !r->failed; i++) {
        is = &v->instances[i];
        is->name = ksv_get_str(r);
        is->endpoint = ksv_get_str(r);
        is->pid = ksv_get_u32(r);
        is->state = ksv_get_u8(r);
        is->reason = ksv_get_str(r);
    }
}


void
ksv_encode_index_reply(ksv_writer_t *w, uint64_t id, const ksv_index_t *m)
{
    uint32_t                   i, j;
    const ksv_model_status_t  *ms;

    ksv_put_prefix(w, KSV_MSG_INDEX_REPLY, id);
    ksv_put_u64(w, m->generation);
    ksv_put_u8(w, m->full);
    if (!m->full) {
        return;
    }

    ksv_put_u32(w, m->nmodels);
    for (i = 0; i < m->nmodels; i++) {
        ms = &m->models[i];
        ksv_encode_model_config(w, &ms->config);
        ksv_put_u32(w, ms->nversions);
        for (j = 0; j < ms->nversions; j++) {
            ksv_put_i64(w, ms->versions[j].version);
            ksv_put_u8(w, ms->versions[j].state);
            ksv_put_str(w, ms->versions[j].reason);
            ksv_put_instances(w, &ms->versions[j]);
        }
    }
}


int
ksv_decode_index_reply(ksv_reader_t *r, ksv_alloc_t *a, ksv_index_t *m)
{
    uint32_t             i, j;
    ksv_model_status_t  *ms;

    memset(m, 0, sizeof(*m));
    m->generation = ksv_get_u64(r);
    m->full = ksv_get_u8(r);
    if (!m->full) {
        return r->failed ? -1 : 0;
    }

    m->nmodels = ksv_get_count(r, KSV_MAX_MODELS);
    if (!r->failed && m->nmodels > 0) {
        m->models = ksv_alloc_array(a, m->nmodels, sizeof(*m->models));
        if (m->models == NULL) {
            return -1;
        }
    }

    for (i = 0; i < m->nmodels && !r->failed; i++) {
        ms = &m->models[i];
        if (ksv_decode_model_config(r, a, &ms->config) != 0) {
            return -1;
        }
        ms->versions = ksv_get_list(r, a, &ms->nversions,
                                    sizeof(*ms->versions));
        for (j = 0; j < ms->nversions && !r->failed; j++) {
            ms->versions[j].version = ksv_get_i64(r);
            ms->versions[j].state = ksv_get_u8(r);
            ms->versions[j].reason = ksv_get_str(r);
            ksv_get_instances(r, a, &ms->versions[j]);
        }
    }

    return r->failed ? -1 : 0;
}


/* ---- REPOSITORY / REPOSITORY_REPLY ------------------------------------- */

void
ksv_encode_repository(ksv_writer_t *w, uint64_t id, const ksv_repository_t *m)
{
    ksv_put_prefix(w, KSV_MSG_REPOSITORY, id);
    ksv_put_u8(w, m->action);
    ksv_put_u8(w, m->flags);
    ksv_put_str(w, m->model);
}


int
ksv_decode_repository(ksv_reader_t *r, ksv_repository_t *m)
{
    m->action = ksv_get_u8(r);
    m->flags = ksv_get_u8(r);
    m->model = ksv_get_str(r);
    if (r->failed || m->action < KSV_REPO_INDEX
        || m->action > KSV_REPO_UNLOAD)
    {
        return -1;
    }
    return 0;
}


void
ksv_encode_repository_reply(ksv_writer_t *w, uint64_t id,
    const ksv_repository_reply_t *m)
{
    uint32_t                 i;
    const ksv_repo_entry_t  *e;

    ksv_put_prefix(w, KSV_MSG_REPOSITORY_REPLY, id);
    ksv_put_u32(w, m->nentries);
    for (i = 0; i < m->nentries; i++) {
        e = &m->entries[i];
        ksv_put_str(w, e->name);
        ksv_put_i64(w, e->version);
        ksv_put_u8(w, e->state);
        ksv_put_str(w, e->reason);
    }
}


int
ksv_decode_repository_reply(ksv_reader_t *r, ksv_alloc_t *a,
    ksv_repository_reply_t *m)
{
    uint32_t           i;
    ksv_repo_entry_t  *e;

    memset(m, 0, sizeof(*m));
    m->nentries = ksv_get_count(r, KSV_MAX_STATS);
    if (!r->failed && m->nentries > 0) {
        m->entries = ksv_alloc_array(a, m->nentries, sizeof(*m->entries));
        if (m->entries == NULL) {
            return -1;
        }
    }
    for (i = 0; i < m->nentries && !r->failed; i++) {
        e = &m->entries[i];
        e->name = ksv_get_str(r);
        e->version = ksv_get_i64(r);
        e->state = ksv_get_u8(r);
        e->reason = ksv_get_str(r);
        if (e->state > KSV_REPO_UNLOADING && e->state != KSV_REPO_NAME_ONLY) {
            r->failed = 1;
        }
    }
    return r->failed ? -1 : 0;
}


const char *
ksv_repo_state_name(uint8_t state)
{
    switch (state) {
    case KSV_VERSION_UNAVAILABLE:
        return "UNAVAILABLE";
    case KSV_VERSION_LOADING:
        return "LOADING";
    case KSV_VERSION_READY:
        return "READY";
    case KSV_REPO_UNLOADING:
        return "UNLOADING";
    default:
        return "";
    }
}


/* ---- EXECUTE / READY ---------------------------------------------------- */

void
ksv_encode_execute(ksv_writer_t *w, ksv_msg_kind_t kind, uint64_t batch_id,
    uint32_t count)
{
    ksv_put_prefix(w, kind, batch_id);
    ksv_put_u32(w, count);
}


int
ksv_decode_execute(ksv_reader_t *r, uint32_t *count)
{
    *count = ksv_get_count(r, KSV_MAX_BATCH_REQUESTS);
    return r->failed ? -1 : 0;
}


void
ksv_encode_execute_reply(ksv_writer_t *w, uint64_t batch_id, uint32_t count,
    const ksv_exec_times_t *t)
{
    ksv_put_prefix(w, KSV_MSG_EXECUTE_REPLY, batch_id);
    ksv_put_u32(w, count);
    ksv_put_u64(w, t->compute_input_ns);
    ksv_put_u64(w, t->compute_infer_ns);
    ksv_put_u64(w, t->compute_output_ns);
}


int
ksv_decode_execute_reply(ksv_reader_t *r, uint32_t *count,
    ksv_exec_times_t *t)
{
    memset(t, 0, sizeof(*t));
    *count = ksv_get_count(r, KSV_MAX_BATCH_REQUESTS);
    if (r->failed || r->p == r->end) {
        /* an instance that does not measure stops here */
        return r->failed ? -1 : 0;
    }
    t->compute_input_ns = ksv_get_u64(r);
    t->compute_infer_ns = ksv_get_u64(r);
    t->compute_output_ns = ksv_get_u64(r);
    return r->failed ? -1 : 0;
}


void
ksv_encode_ready(ksv_writer_t *w, const ksv_ready_t *m)
{
    ksv_str_t  message = m->message;

    if (message.len > KSV_MAX_STRING) {
        message.len = KSV_MAX_STRING;
    }
    ksv_put_prefix(w, KSV_MSG_READY, 0);
    ksv_put_str(w, m->model_name);
    ksv_put_i64(w, m->version);
    ksv_put_u32(w, m->instance);
    ksv_put_u8(w, m->ok);
    ksv_put_str(w, message);
    ksv_put_str(w, m->endpoint);
}


void
ksv_encode_cancel(ksv_writer_t *w, uint64_t id)
{
    ksv_put_prefix(w, KSV_MSG_CANCEL, id);
}


int
ksv_decode_ready(ksv_reader_t *r, ksv_ready_t *m)
{
    m->model_name = ksv_get_str(r);
    m->version = ksv_get_i64(r);
    m->instance = ksv_get_u32(r);
    m->ok = ksv_get_u8(r);
    m->message = ksv_get_str(r);
    m->endpoint = ksv_get_str(r);
    return r->failed ? -1 : 0;
}


/* ---- STATS / STATS_REPLY ------------------------------------------------ */

void
ksv_encode_stats(ksv_writer_t *w, uint64_t id, ksv_str_t model,
    ksv_str_t version)
{
    ksv_put_prefix(w, KSV_MSG_STATS, id);
    ksv_put_str(w, model);
    ksv_put_str(w, version);
}


int
ksv_decode_stats(ksv_reader_t *r, ksv_str_t *model, ksv_str_t *version)
{
    *model = ksv_get_str(r);
    *version = ksv_get_str(r);
    return r->failed ? -1 : 0;
}


static void
ksv_put_duration(ksv_writer_t *w, const ksv_stat_duration_t *d)
{
    ksv_put_u64(w, d->count);
    ksv_put_u64(w, d->ns);
}


static void
ksv_get_duration(ksv_reader_t *r, ksv_stat_duration_t *d)
{
    d->count = ksv_get_u64(r);
    d->ns = ksv_get_u64(r);
}


void
ksv_encode_stats_reply(ksv_writer_t *w, uint64_t id, const ksv_stats_t *m)
{
    uint32_t                  i, j;
    const ksv_model_stats_t  *s;
    const ksv_batch_stats_t  *b;

    ksv_put_prefix(w, KSV_MSG_STATS_REPLY, id);
    ksv_put_u32(w, m->nmodels);
    for (i = 0; i < m->nmodels; i++) {
        s = &m->models[i];
        ksv_put_str(w, s->name);
        ksv_put_str(w, s->version);
        ksv_put_u64(w, s->last_inference);
        ksv_put_u64(w, s->inference_count);
        ksv_put_u64(w, s->execution_count);
        ksv_put_duration(w, &s->success);
        ksv_put_duration(w, &s->fail);
        ksv_put_duration(w, &s->queue);
        ksv_put_duration(w, &s->compute_input);
        ksv_put_duration(w, &s->compute_infer);
        ksv_put_duration(w, &s->compute_output);
        ksv_put_u32(w, s->nbatch);
        for (j = 0; j < s->nbatch; j++) {
            b = &s->batch[j];
            ksv_put_u32(w, b->batch_size);
            ksv_put_duration(w, &b->compute_input);
            ksv_put_duration(w, &b->compute_infer);
            ksv_put_duration(w, &b->compute_output);
        }
    }
}


int
ksv_decode_stats_reply(ksv_reader_t *r, ksv_alloc_t *a, ksv_stats_t *m)
{
    uint32_t            i, j;
    ksv_batch_stats_t  *b;
    ksv_model_stats_t  *s;

    memset(m, 0, sizeof(*m));
    m->nmodels = ksv_get_count(r, KSV_MAX_STATS);

    /* an entry takes at least KSV_STATS_ENTRY_MIN bytes: a count the
     * frame cannot hold allocates nothing */
    if (!r->failed
        && (size_t) (r->end - r->p) / KSV_STATS_ENTRY_MIN < m->nmodels)
    {
        r->failed = 1;
    }

    if (!r->failed && m->nmodels > 0) {
        m->models = ksv_alloc_array(a, m->nmodels, sizeof(*m->models));
        if (m->models == NULL) {
            return -1;
        }
    }

    for (i = 0; i < m->nmodels && !r->failed; i++) {
        s = &m->models[i];
        s->name = ksv_get_str(r);
        s->version = ksv_get_str(r);
        s->last_inference = ksv_get_u64(r);
        s->inference_count = ksv_get_u64(r);
        s->execution_count = ksv_get_u64(r);
        ksv_get_duration(r, &s->success);
        ksv_get_duration(r, &s->fail);
        ksv_get_duration(r, &s->queue);
        ksv_get_duration(r, &s->compute_input);
        ksv_get_duration(r, &s->compute_infer);
        ksv_get_duration(r, &s->compute_output);
        s->batch = ksv_get_list(r, a, &s->nbatch, sizeof(*s->batch));
        for (j = 0; j < s->nbatch && !r->failed; j++) {
            b = &s->batch[j];
            b->batch_size = ksv_get_u32(r);
            ksv_get_duration(r, &b->compute_input);
            ksv_get_duration(r, &b->compute_infer);
            ksv_get_duration(r, &b->compute_output);
        }
    }

    return r->failed ? -1 : 0;
}


/* ---- shapes ------------------------------------------------------------- */

int
ksv_shape_count(const int64_t *dims, uint32_t ndims, uint64_t limit,
    uint64_t *count)
{
    uint32_t  i;
    uint64_t  n = 1;

    for (i = 0; i < ndims; i++) {
        if (dims[i] < 0) {
            return -1;
        }
        if (dims[i] != 0 && n > limit / (uint64_t) dims[i]) {
            return -1;
        }
        n *= (uint64_t) dims[i];
    }

    if (n > limit) {
        return -1;
    }

    *count = n;
    return 0;
}
