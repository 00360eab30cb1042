/*
 * ngx_kserve: an INFER_REPLY rendered as Triton's JSON answer.
 */

#include <stdio.h>
#include <string.h>

#include "ksv_infer_reply.h"
#include "ksv_json_write.h"


static float
ksv_half_to_float(uint16_t h)
{
    float     f;
    uint32_t  sign, exp, mant, bits;

    sign = (uint32_t) (h >> 15) << 31;
    exp = (h >> 10) & 0x1f;
    mant = h & 0x3ff;

    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (mant << 13);

    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);

    } else if (mant == 0) {
        bits = sign;

    } else {
        /* subnormal half: normalize */
        exp = 113;

        while ((mant & 0x400) == 0) {
            mant <<= 1;
            exp--;
        }

        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }

    memcpy(&f, &bits, 4);

    return f;
}


static uint64_t
ksv_get_le(const uint8_t *p, size_t n)
{
    size_t    i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < n; i++) {
        v |= (uint64_t) p[i] << (8 * i);
    }

    return v;
}


/* The most one element of each datatype takes in "data", with its ','. */

static size_t
ksv_reply_element_max(ksv_datatype_t dt)
{
    switch (dt) {

    case KSV_TYPE_BOOL:
        return sizeof("false,") - 1;

    case KSV_TYPE_UINT8:
    case KSV_TYPE_INT8:
        return sizeof("-128,") - 1;

    case KSV_TYPE_UINT16:
    case KSV_TYPE_INT16:
        return sizeof("-32768,") - 1;

    case KSV_TYPE_UINT32:
    case KSV_TYPE_INT32:
        return sizeof("-2147483648,") - 1;

    case KSV_TYPE_FP16:
    case KSV_TYPE_BF16:
    case KSV_TYPE_FP32:
        return sizeof("-1.17549435e-38,") - 1;

    default:
        return sizeof("-2.2250738585072014e-308,") - 1;
    }
}


static int
ksv_reply_data(ksv_writer_t *w, const ksv_tensor_t *t, const uint8_t *p,
    size_t size, uint64_t count, char *err, size_t errlen)
{
    char           *q;
    float           f;
    double          d;
    size_t          es;
    uint8_t        *room;
    uint32_t        u32, len;
    uint64_t        i, u64;
    const uint8_t  *end;

    end = p + size;

    if (t->datatype == KSV_TYPE_BYTES) {
        for (i = 0; i < count; i++) {
            if (end - p < 4) {
                goto bad;
            }

            len = (uint32_t) ksv_get_le(p, 4);
            p += 4;

            if ((size_t) (end - p) < len) {
                goto bad;
            }

            if (i) {
                ksv_put_u8(w, ',');
            }

            ksv_json_string(w, p, len);
            p += len;
        }

        if (p != end) {
            goto bad;
        }

        return 0;
    }

    es = ksv_datatype_size(t->datatype);

    if (es == 0 || count > size / es || count * es != size) {
        goto bad;
    }

    /* each element written in place: the room for the longest, then it */

    for (i = 0; i < count; i++, p += es) {
        room = ksv_writer_room(w, 1 + KSV_JSON_F64_MAX);
        if (room == NULL) {
            return 0;           /* w->failed tells the caller */
        }

        q = (char *) room;

        if (i) {
            *q++ = ',';
        }

        switch (t->datatype) {

        case KSV_TYPE_BOOL:
            if (*p) {
                memcpy(q, "true", 4);
                q += 4;

            } else {
                memcpy(q, "false", 5);
                q += 5;
            }

            break;

        case KSV_TYPE_UINT8:
        case KSV_TYPE_UINT16:
        case KSV_TYPE_UINT32:
        case KSV_TYPE_UINT64:
            q += ksv_json_fmt_u64(q, ksv_get_le(p, es));
            break;

        case KSV_TYPE_INT8:
            q += ksv_json_fmt_i64(q, (int8_t) p[0]);
            break;

        case KSV_TYPE_INT16:
            q += ksv_json_fmt_i64(q, (int16_t) ksv_get_le(p, 2));
            break;

        case KSV_TYPE_INT32:
            q += ksv_json_fmt_i64(q, (int32_t) ksv_get_le(p, 4));
            break;

        case KSV_TYPE_INT64:
            q += ksv_json_fmt_i64(q, (int64_t) ksv_get_le(p, 8));
            break;

        case KSV_TYPE_FP16:
            q += ksv_json_fmt_f32(q,
                                  ksv_half_to_float((uint16_t)
                                                    ksv_get_le(p, 2)));
            break;

        case KSV_TYPE_BF16:
            u32 = (uint32_t) ksv_get_le(p, 2) << 16;
            memcpy(&f, &u32, 4);
            q += ksv_json_fmt_f32(q, f);
            break;

        case KSV_TYPE_FP32:
            u32 = (uint32_t) ksv_get_le(p, 4);
            memcpy(&f, &u32, 4);
            q += ksv_json_fmt_f32(q, f);
            break;

        case KSV_TYPE_FP64:
            u64 = ksv_get_le(p, 8);
            memcpy(&d, &u64, 8);
            q += ksv_json_fmt_f64(q, d);
            break;

        default:
            goto bad;
        }

        w->len += q - (char *) room;
    }

    return 0;

bad:

    snprintf(err, errlen, "output '%.*s': %llu-byte frame does not hold "
             "%llu %s elements", (int) t->name.len, t->name.data,
             (unsigned long long) size, (unsigned long long) count,
             ksv_datatype_name(t->datatype));

    return -1;
}


int
ksv_infer_reply_header(ksv_writer_t *w, const ksv_infer_reply_t *m,
    const void *const *frames, const size_t *sizes, uint32_t nframes,
    const uint8_t *binary, char *err, size_t errlen)
{
    size_t               need;
    uint32_t             i;
    uint64_t             count;
    const ksv_tensor_t  *t;

    if (nframes != m->noutputs) {
        snprintf(err, errlen, "reply has %u outputs but %u frames",
                 m->noutputs, nframes);
        return -1;
    }

    /*
     * One allocation for the whole answer: room for the longest spelling
     * of every element (BYTES: the bytes, quoted; escapes may grow it)
     */

    need = 256 + m->model_name.len + m->model_version.len
           + m->request_id.len + 64 * (size_t) m->nparams;

    for (i = 0; i < m->noutputs; i++) {
        t = &m->outputs[i];
        need += 128 + t->name.len;

        if (binary != NULL && binary[i]) {
            continue;
        }

        if (t->datatype == KSV_TYPE_BYTES) {
            need += sizes[i] + sizes[i] / 2;

        } else if (ksv_datatype_size(t->datatype) != 0) {
            need += sizes[i] / ksv_datatype_size(t->datatype)
                    * ksv_reply_element_max(t->datatype);
        }
    }

    (void) ksv_writer_room(w, need);

    ksv_json_lit(w, "{\"model_name\":");
    ksv_json_string(w, m->model_name.data, m->model_name.len);
    ksv_json_lit(w, ",\"model_version\":");
    ksv_json_string(w, m->model_version.data, m->model_version.len);

    if (m->request_id.len) {
        ksv_json_lit(w, ",\"id\":");
        ksv_json_string(w, m->request_id.data, m->request_id.len);
    }

    if (m->nparams) {
        ksv_json_lit(w, ",\"parameters\":");
        ksv_json_params(w, m->params, m->nparams);
    }

    ksv_json_lit(w, ",\"outputs\":[");

    for (i = 0; i < m->noutputs; i++) {
        t = &m->outputs[i];

        if (t->datatype == KSV_TYPE_INVALID || t->datatype >= KSV_TYPE_COUNT
            || t->byte_size != sizes[i]
            || ksv_shape_count(t->dims, t->ndims, UINT64_MAX, &count) != 0)
        {
            snprintf(err, errlen, "output '%.*s' is malformed",
                     (int) t->name.len, t->name.data);
            return -1;
        }

        if (i) {
            ksv_put_u8(w, ',');
        }

        ksv_json_lit(w, "{\"name\":");
        ksv_json_string(w, t->name.data, t->name.len);
        ksv_json_lit(w, ",\"datatype\":");
        ksv_json_cstr(w, ksv_datatype_name(t->datatype));
        ksv_json_lit(w, ",\"shape\":");
        ksv_json_dims(w, t->dims, t->ndims);

        if (binary != NULL && binary[i] == KSV_REPLY_SHM) {
            ksv_put_u8(w, '}');
            continue;
        }

        if (binary != NULL && binary[i]) {
            /* the frame follows the JSON as it is: Triton's layout */
            ksv_json_lit(w, ",\"parameters\":{\"binary_data_size\":");
            ksv_json_u64(w, sizes[i]);
            ksv_json_lit(w, "}}");
            continue;
        }

        ksv_json_lit(w, ",\"data\":[");

        if (ksv_reply_data(w, t, frames[i], sizes[i], count, err, errlen)
            != 0)
        {
            return -1;
        }

        ksv_json_lit(w, "]}");
    }

    ksv_json_lit(w, "]}");

    return 0;
}
