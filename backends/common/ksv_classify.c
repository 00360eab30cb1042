/*
 * ngx_kserve instances: Triton's classification extension (see
 * ksv_classify.h).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_classify.h"
#include "ksv_datatype.h"


/* every datatype Triton ranks, read as a double (exact for all but the
 * 64-bit integers beyond 2^53, where ties may order differently) */
static double
ksv_classify_value(const uint8_t *p, uint8_t dt)
{
    union {
        uint8_t   u8;   uint16_t  u16;  uint32_t  u32;  uint64_t  u64;
        int8_t    i8;   int16_t   i16;  int32_t   i32;  int64_t   i64;
        float     f32;  double    f64;
    } v;

    memcpy(&v, p, ksv_datatype_size(dt));

    switch (dt) {
    case KSV_TYPE_UINT8:   return v.u8;
    case KSV_TYPE_UINT16:  return v.u16;
    case KSV_TYPE_UINT32:  return v.u32;
    case KSV_TYPE_UINT64:  return (double) v.u64;
    case KSV_TYPE_INT8:    return v.i8;
    case KSV_TYPE_INT16:   return v.i16;
    case KSV_TYPE_INT32:   return v.i32;
    case KSV_TYPE_INT64:   return (double) v.i64;
    case KSV_TYPE_FP32:    return v.f32;
    default:               return v.f64;
    }
}


static int
ksv_classify_ranked(uint8_t dt)
{
    switch (dt) {
    case KSV_TYPE_UINT8: case KSV_TYPE_UINT16: case KSV_TYPE_UINT32:
    case KSV_TYPE_UINT64: case KSV_TYPE_INT8: case KSV_TYPE_INT16:
    case KSV_TYPE_INT32: case KSV_TYPE_INT64: case KSV_TYPE_FP32:
    case KSV_TYPE_FP64:
        return 1;
    default:
        return 0;
    }
}


/* one entry's k best: a partial selection, best first, ties by index */
static void
ksv_classify_entry(const uint8_t *base, size_t count, uint8_t dt,
    uint32_t k, const ksv_labels_t *labels, ksv_writer_t *out,
    uint32_t *best, double *score)
{
    int          len;
    char         text[64];
    size_t       i, llen, esize;
    double       v;
    uint32_t     j, m, lo;
    const char  *label;

    esize = ksv_datatype_size(dt);

    m = 0;
    for (i = 0; i < count; i++) {
        v = ksv_classify_value(base + i * esize, dt);
        if (m == k && !(v > score[m - 1])) {
            continue;
        }
        lo = m < k ? m++ : m - 1;
        while (lo > 0 && v > score[lo - 1]) {
            score[lo] = score[lo - 1];
            best[lo] = best[lo - 1];
            lo--;
        }
        score[lo] = v;
        best[lo] = (uint32_t) i;
    }

    for (j = 0; j < m; j++) {
        if (dt == KSV_TYPE_FP32 || dt == KSV_TYPE_FP64) {
            len = snprintf(text, sizeof(text), "%f:%u", score[j], best[j]);
        } else {
            len = snprintf(text, sizeof(text), "%.0f:%u", score[j], best[j]);
        }
        len = len < (int) sizeof(text) ? len : (int) sizeof(text) - 1;
        label = labels != NULL && best[j] < labels->n
                ? labels->lines[best[j]] : NULL;
        llen = label != NULL ? strlen(label) : 0;

        /* BYTES: a u32 length (little-endian) before each string */
        ksv_put_u32(out, (uint32_t) (len + (label != NULL ? 1 + llen : 0)));
        ksv_put_bytes(out, text, (size_t) len);
        if (label != NULL) {
            ksv_put_u8(out, ':');
            ksv_put_bytes(out, label, llen);
        }
    }
}


int
ksv_classify(const ksv_tensor_t *t, const void *data, uint32_t k,
    int batched, const ksv_labels_t *labels, ksv_writer_t *out,
    ksv_tensor_t *res, char *err, size_t errlen)
{
    size_t     esize, count, per, entries, e, start;
    double    *score;
    uint32_t  *best, kk;
    uint8_t    d;

    if (!ksv_classify_ranked(t->datatype)) {
        snprintf(err, errlen, "class result not available for output due "
                 "to unsupported type '%s'", ksv_datatype_name(t->datatype));
        return -1;
    }

    esize = ksv_datatype_size(t->datatype);
    count = t->byte_size / esize;
    entries = 1;
    if (batched && t->ndims > 0) {
        entries = t->dims[0] > 0 ? (size_t) t->dims[0] : 0;
    }
    per = entries > 0 ? count / entries : 0;
    if (per > KSV_CLASSIFY_MAX_ELEMENTS) {
        snprintf(err, errlen, "classification output tensor too large");
        return -1;
    }
    kk = per < k ? (uint32_t) per : k;

    memset(res, 0, sizeof(*res));
    res->name = t->name;
    res->datatype = KSV_TYPE_BYTES;
    d = 0;
    if (batched && t->ndims > 0) {
        res->dims[d++] = (int64_t) entries;
    }
    res->dims[d++] = kk;
    res->ndims = d;

    if (kk == 0) {
        return 0;
    }
    best = malloc(kk * sizeof(uint32_t));
    score = malloc(kk * sizeof(double));
    if (best == NULL || score == NULL) {
        free(best);
        free(score);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    start = out->len;
    for (e = 0; e < entries; e++) {
        ksv_classify_entry((const uint8_t *) data + e * per * esize, per,
                           t->datatype, kk, labels, out, best, score);
    }
    free(best);
    free(score);

    if (out->failed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    res->byte_size = out->len - start;
    return 0;
}


int
ksv_labels_load(const char *path, ksv_labels_t *l, char *err, size_t errlen)
{
    long      size;
    char     *p, *end;
    FILE     *f;
    uint32_t  n;

    memset(l, 0, sizeof(*l));
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "failed to open label file '%s': %s", path,
                 strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        snprintf(err, errlen, "failed to read label file '%s'", path);
        fclose(f);
        return -1;
    }

    l->text = malloc((size_t) size + 1);
    if (l->text == NULL
        || fread(l->text, 1, (size_t) size, f) != (size_t) size)
    {
        snprintf(err, errlen, "failed to read label file '%s'", path);
        fclose(f);
        ksv_labels_free(l);
        return -1;
    }
    fclose(f);
    l->text[size] = '\0';

    end = l->text + size;
    n = 0;
    for (p = l->text; p < end; p++) {
        n += (*p == '\n');
    }
    if (size > 0 && end[-1] != '\n') {
        n++;
    }

    l->lines = malloc((n ? n : 1) * sizeof(char *));
    if (l->lines == NULL) {
        snprintf(err, errlen, "out of memory");
        ksv_labels_free(l);
        return -1;
    }
    for (p = l->text; p < end && l->n < n; ) {
        l->lines[l->n++] = p;
        p += strcspn(p, "\n");
        if (p > l->lines[l->n - 1] && p[-1] == '\r') {
            p[-1] = '\0';
        }
        *p++ = '\0';
    }
    return 0;
}


void
ksv_labels_free(ksv_labels_t *l)
{
    free(l->lines);
    free(l->text);
    memset(l, 0, sizeof(*l));
}
