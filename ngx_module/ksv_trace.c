/*
 * ngx_kserve: Triton's trace extension, the nginx-free part (ksv_trace.h).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ksv_datatype.h"
#include "ksv_json.h"
#include "ksv_json_write.h"
#include "ksv_trace.h"


static const char  *ksv_trace_points[KSV_TS_COUNT] = {
    "HTTP_RECV_START",
    "HTTP_RECV_END",
    "REQUEST_START",
    "QUEUE_START",
    "COMPUTE_START",
    "COMPUTE_INPUT_END",
    "COMPUTE_OUTPUT_START",
    "COMPUTE_END",
    "REQUEST_END",
    "HTTP_SEND_START",
    "HTTP_SEND_END"
};


const char *
ksv_trace_point_name(ksv_trace_point_t p)
{
    return (unsigned) p < KSV_TS_COUNT ? ksv_trace_points[p] : "UNKNOWN";
}


void
ksv_trace_table_init(ksv_trace_table_t *t, const ksv_trace_setting_t *initial)
{
    memset(t, 0, sizeof(*t));
    t->initial = *initial;
    t->initial.set = KSV_TRACE_SET_LEVEL | KSV_TRACE_SET_RATE
                     | KSV_TRACE_SET_COUNT | KSV_TRACE_SET_FREQUENCY;
    t->initial.name_len = 0;
    t->initial.seen = 0;
    t->global = t->initial;
}


static ksv_trace_setting_t *
ksv_trace_model(ksv_trace_table_t *t, const char *name, uint32_t len)
{
    uint32_t  i;

    if (len == 0) {
        return NULL;
    }

    for (i = 0; i < t->nmodels; i++) {
        if (t->models[i].name_len == len
            && memcmp(t->models[i].name, name, len) == 0)
        {
            return &t->models[i];
        }
    }

    return NULL;
}


void
ksv_trace_view(const ksv_trace_table_t *t, const char *name,
    uint32_t name_len, ksv_trace_view_t *v)
{
    const ksv_trace_setting_t  *m, *g;

    g = &t->global;
    m = ksv_trace_model((ksv_trace_table_t *) t, name, name_len);

    v->level = (m && (m->set & KSV_TRACE_SET_LEVEL)) ? m->level : g->level;
    v->rate = (m && (m->set & KSV_TRACE_SET_RATE)) ? m->rate : g->rate;
    v->count = (m && (m->set & KSV_TRACE_SET_COUNT)) ? m->count : g->count;
    v->log_frequency = (m && (m->set & KSV_TRACE_SET_FREQUENCY))
                       ? m->log_frequency : g->log_frequency;
}


int
ksv_trace_any(const ksv_trace_table_t *t)
{
    uint32_t  i;

    if (t->global.level != 0) {
        return 1;
    }

    for (i = 0; i < t->nmodels; i++) {
        if ((t->models[i].set & KSV_TRACE_SET_LEVEL)
            && t->models[i].level != 0)
        {
            return 1;
        }
    }

    return 0;
}


int
ksv_trace_sample(ksv_trace_table_t *t, const char *name, uint32_t name_len,
    ksv_trace_view_t *v)
{
    ksv_trace_setting_t  *m, *counter, *rater;

    ksv_trace_view(t, name, name_len, v);

    if (v->level == 0 || v->count == 0 || v->rate == 0) {
        return 0;
    }

    m = ksv_trace_model(t, name, name_len);

    /* the setting whose rate samples, and the one whose count is taken */

    rater = (m != NULL) ? m : &t->global;
    counter = (m != NULL && (m->set & KSV_TRACE_SET_COUNT)) ? m : &t->global;

    if (rater->seen++ % v->rate != 0) {
        return 0;
    }

    if (counter->count > 0) {
        counter->count--;
    }

    return 1;
}


/* ---- settings JSON -------------------------------------------------------- */

#define ksv_fail(...)                                                        \
    do {                                                                     \
        snprintf(err, err_size, __VA_ARGS__);                                \
        goto failed;                                                         \
    } while (0)


/* A setting's value: Triton's is a string ("100"); a JSON number too. */
static int
ksv_trace_number(json_t *v, long long lo, long long hi, long long *out)
{
    char        *end;
    const char  *s;
    long long    n;

    if (json_is_integer(v)) {
        n = json_integer_value(v);

    } else if (json_is_string(v)) {
        s = json_string_value(v);
        errno = 0;
        n = strtoll(s, &end, 10);
        if (end == s || *end != '\0' || errno != 0) {
            return -1;
        }

    } else {
        return -1;
    }

    *out = n;

    if (n < lo || n > hi) {
        return -2;
    }

    return 0;
}


int
ksv_trace_update(ksv_trace_table_t *t, const char *name, uint32_t name_len,
    const void *body, size_t len, char *err, size_t err_size, int *status)
{
    int                   rc;
    size_t                i;
    json_t               *root, *v, *e;
    long long             n;
    const char           *key, *s;
    json_error_t          jerr;
    ksv_trace_setting_t   next, *m, *cur;

    *status = 400;
    root = NULL;

    if (name_len >= KSV_TRACE_NAME) {
        snprintf(err, err_size, "model name too long");
        return -1;
    }

    m = ksv_trace_model(t, name, name_len);

    if (name_len == 0) {
        cur = &t->global;

    } else if (m != NULL) {
        cur = m;

    } else {
        cur = NULL;
    }

    if (cur != NULL) {
        next = *cur;

    } else {
        memset(&next, 0, sizeof(next));
        next.name_len = name_len;
        memcpy(next.name, name, name_len);
    }

    if (len == 0) {
        return 0;
    }

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        ksv_fail("failed to parse the request JSON buffer: %s", jerr.text);
    }

    if (!json_is_object(root)) {
        ksv_fail("the trace setting request must be a JSON object");
    }

    json_object_foreach(root, key, v) {

        if (strcmp(key, "trace_file") == 0) {
            *status = 501;
            ksv_fail("trace file location can not be updated through "
                     "network protocol");
        }

        if (strcmp(key, "trace_level") == 0) {
            if (json_is_null(v)) {
                if (name_len == 0) {
                    next.level = t->initial.level;
                }
                next.set &= ~KSV_TRACE_SET_LEVEL;
                continue;
            }

            if (!json_is_array(v)) {
                ksv_fail("attempt to access JSON non-array as array");
            }

            next.level = 0;

            json_array_foreach(v, i, e) {
                s = json_is_string(e) ? json_string_value(e) : NULL;

                if (s == NULL) {
                    ksv_fail("attempt to access JSON non-string as string");
                }

                if (strcmp(s, "OFF") == 0) {
                    if (json_array_size(v) != 1) {
                        ksv_fail("Expect only one trace level 'OFF' is "
                                 "specified");
                    }

                } else if (strcmp(s, "TIMESTAMPS") == 0) {
                    next.level |= KSV_TRACE_TIMESTAMPS;

                } else if (strcmp(s, "TENSORS") == 0) {
                    next.level |= KSV_TRACE_TENSORS;

                } else {
                    ksv_fail("unknown trace level '%.64s'", s);
                }
            }

            next.set |= KSV_TRACE_SET_LEVEL;
            continue;
        }

        if (strcmp(key, "trace_rate") == 0
            || strcmp(key, "trace_count") == 0
            || strcmp(key, "log_frequency") == 0)
        {
            if (json_is_null(v)) {
                if (key[6] == 'r') {
                    next.set &= ~KSV_TRACE_SET_RATE;
                    next.rate = t->initial.rate;

                } else if (key[6] == 'c') {
                    next.set &= ~KSV_TRACE_SET_COUNT;
                    next.count = t->initial.count;

                } else {
                    next.set &= ~KSV_TRACE_SET_FREQUENCY;
                    next.log_frequency = t->initial.log_frequency;
                }
                continue;
            }

            rc = ksv_trace_number(v, key[6] == 'c' ? -1 : 0,
                                  key[6] == 'c' ? INT32_MAX : UINT32_MAX,
                                  &n);
            if (rc == -1) {
                ksv_fail("Unable to parse '%s', got: %.64s", key,
                         json_is_string(v) ? json_string_value(v)
                                           : "a value that is not a string");
            }

            if (rc == -2) {
                if (key[6] == 'c') {
                    ksv_fail("Unable to parse 'trace_count'. Expecting "
                             "value >= -1, got:%lld", n);
                }
                ksv_fail("Unable to parse '%s', value is out of range "
                         "[ 0, %u ], got: %lld", key, UINT32_MAX, n);
            }

            if (key[6] == 'r') {
                next.rate = (uint32_t) n;
                next.set |= KSV_TRACE_SET_RATE;

            } else if (key[6] == 'c') {
                next.count = (int32_t) n;
                next.set |= KSV_TRACE_SET_COUNT;

            } else {
                next.log_frequency = (uint32_t) n;
                next.set |= KSV_TRACE_SET_FREQUENCY;
            }

            continue;
        }

        /* trace_mode and what Triton's other modes know: not ours */
        if (strcmp(key, "trace_mode") == 0) {
            s = json_is_string(v) ? json_string_value(v) : NULL;
            if (!json_is_null(v) && (s == NULL || strcmp(s, "triton") != 0)) {
                ksv_fail("trace mode '%.64s' is not supported: only "
                         "\"triton\"", s ? s : "?");
            }
        }
    }

    json_decref(root);

    if (name_len == 0) {
        next.set = t->initial.set;
        t->global = next;
        return 0;
    }

    if (cur == NULL) {
        if (next.set == 0) {
            return 0;               /* nothing of its own: the global ones */
        }

        if (t->nmodels == KSV_TRACE_MODELS) {
            snprintf(err, err_size, "too many models with trace settings of "
                     "their own (%d)", KSV_TRACE_MODELS);
            return -1;
        }

        t->models[t->nmodels++] = next;
        return 0;
    }

    if (next.set == 0) {
        /* every field cleared: the model follows the global ones */
        *cur = t->models[--t->nmodels];
        return 0;
    }

    *cur = next;

    return 0;

failed:

    if (root != NULL) {
        json_decref(root);
    }

    return -1;
}


void
ksv_trace_settings_json(ksv_writer_t *w, const ksv_trace_table_t *t,
    const char *name, uint32_t name_len, const char *file)
{
    char              num[32];
    ksv_trace_view_t  v;

    ksv_trace_view(t, name, name_len, &v);

    ksv_json_lit(w, "{\"trace_level\":[");

    if (v.level == 0) {
        ksv_json_lit(w, "\"OFF\"");

    } else {
        if (v.level & KSV_TRACE_TIMESTAMPS) {
            ksv_json_lit(w, "\"TIMESTAMPS\"");
        }

        if (v.level & KSV_TRACE_TENSORS) {
            if (v.level & KSV_TRACE_TIMESTAMPS) {
                ksv_put_u8(w, ',');
            }
            ksv_json_lit(w, "\"TENSORS\"");
        }
    }

    ksv_json_lit(w, "],\"trace_rate\":");
    snprintf(num, sizeof(num), "%u", v.rate);
    ksv_json_cstr(w, num);
    ksv_json_lit(w, ",\"trace_count\":");
    snprintf(num, sizeof(num), "%d", v.count);
    ksv_json_cstr(w, num);
    ksv_json_lit(w, ",\"log_frequency\":");
    snprintf(num, sizeof(num), "%u", v.log_frequency);
    ksv_json_cstr(w, num);
    ksv_json_lit(w, ",\"trace_file\":");
    ksv_json_cstr(w, file);
    ksv_json_lit(w, ",\"trace_mode\":\"triton\"}");
}


/* ---- records -------------------------------------------------------------- */

void
ksv_trace_record_json(ksv_writer_t *w, const ksv_trace_record_t *rec)
{
    unsigned  i;

    ksv_json_lit(w, "{\"id\":");
    ksv_json_u64(w, rec->id);
    ksv_json_lit(w, ",\"model_name\":");
    ksv_json_string(w, rec->model_name.data, rec->model_name.len);
    ksv_json_lit(w, ",\"model_version\":");
    ksv_json_i64(w, rec->model_version);

    if (rec->request_id.len > 0) {
        ksv_json_lit(w, ",\"request_id\":");
        ksv_json_string(w, rec->request_id.data, rec->request_id.len);
    }

    ksv_put_u8(w, '}');

    for (i = 0; i < KSV_TS_COUNT; i++) {
        if (rec->ns[i] == 0) {
            continue;
        }

        ksv_json_lit(w, ",{\"id\":");
        ksv_json_u64(w, rec->id);
        ksv_json_lit(w, ",\"timestamps\":[{\"name\":\"");
        ksv_put_bytes(w, ksv_trace_points[i], strlen(ksv_trace_points[i]));
        ksv_json_lit(w, "\",\"ns\":");
        ksv_json_u64(w, rec->ns[i]);
        ksv_json_lit(w, "}]}");
    }
}


/* One element, as text, into buf (at least 32 bytes); its length. */
static int
ksv_trace_element(ksv_datatype_t dt, const uint8_t *p, char *buf)
{
    int8_t    i8;
    int16_t   i16;
    int32_t   i32;
    int64_t   i64;
    uint16_t  u16;
    uint32_t  u32;
    uint64_t  u64;
    float     f;
    double    d;

    switch (dt) {
    case KSV_TYPE_BOOL:
        return snprintf(buf, 32, "%d", p[0] ? 1 : 0);
    case KSV_TYPE_UINT8:
        return snprintf(buf, 32, "%u", p[0]);
    case KSV_TYPE_INT8:
        memcpy(&i8, p, 1);
        return snprintf(buf, 32, "%d", i8);
    case KSV_TYPE_UINT16:
    case KSV_TYPE_FP16:
    case KSV_TYPE_BF16:
        memcpy(&u16, p, 2);
        return snprintf(buf, 32, "%u", u16);
    case KSV_TYPE_INT16:
        memcpy(&i16, p, 2);
        return snprintf(buf, 32, "%d", i16);
    case KSV_TYPE_UINT32:
        memcpy(&u32, p, 4);
        return snprintf(buf, 32, "%u", u32);
    case KSV_TYPE_INT32:
        memcpy(&i32, p, 4);
        return snprintf(buf, 32, "%d", i32);
    case KSV_TYPE_UINT64:
        memcpy(&u64, p, 8);
        return snprintf(buf, 32, "%" PRIu64, u64);
    case KSV_TYPE_INT64:
        memcpy(&i64, p, 8);
        return snprintf(buf, 32, "%" PRId64, i64);
    case KSV_TYPE_FP32:
        memcpy(&f, p, 4);
        return snprintf(buf, 32, "%g", (double) f);
    case KSV_TYPE_FP64:
        memcpy(&d, p, 8);
        return snprintf(buf, 32, "%g", d);
    default:
        return 0;
    }
}


void
ksv_trace_tensor_json(ksv_writer_t *w, uint64_t id, const char *activity,
    const ksv_tensor_t *t, const void *data, size_t size)
{
    int             n;
    char            buf[32];
    size_t          esize, count, i, off, len;
    uint32_t        k, slen;
    ksv_writer_t    text;
    const uint8_t  *p = data;

    /* the data text first: it is escaped once more as a JSON string */

    ksv_writer_init(&text);
    esize = ksv_datatype_size(t->datatype);
    count = 0;

    if (t->datatype == KSV_TYPE_BYTES) {
        for (off = 0; off + 4 <= size && count < KSV_TRACE_ELEMENTS;
             count++)
        {
            memcpy(&slen, p + off, 4);
            off += 4;
            if (slen > size - off) {
                break;
            }
            if (count > 0) {
                ksv_put_u8(&text, ',');
            }
            ksv_put_u8(&text, '"');
            ksv_put_bytes(&text, p + off, slen);
            ksv_put_u8(&text, '"');
            off += slen;
        }
        if (off < size) {
            ksv_put_bytes(&text, ",...", count > 0 ? 4 : 3);
        }

    } else if (esize > 0) {
        len = size / esize;
        for (i = 0; i < len && i < KSV_TRACE_ELEMENTS; i++) {
            n = ksv_trace_element(t->datatype, p + i * esize, buf);
            if (i > 0) {
                ksv_put_u8(&text, ',');
            }
            ksv_put_bytes(&text, buf, (size_t) n);
        }
        if (len > KSV_TRACE_ELEMENTS) {
            ksv_put_bytes(&text, ",...", 4);
        }
    }

    ksv_json_lit(w, ",{\"id\":");
    ksv_json_u64(w, id);
    ksv_json_lit(w, ",\"activity\":");
    ksv_json_cstr(w, activity);
    ksv_json_lit(w, ",\"tensor\":{\"name\":");
    ksv_json_string(w, t->name.data, t->name.len);
    ksv_json_lit(w, ",\"data\":");
    if (text.failed || text.len == 0) {
        ksv_json_lit(w, "\"\"");

    } else {
        ksv_json_string(w, text.buf, text.len);
    }
    ksv_json_lit(w, ",\"shape\":\"");

    for (k = 0; k < t->ndims; k++) {
        n = snprintf(buf, sizeof(buf), k ? ",%" PRId64 : "%" PRId64,
                     t->dims[k]);
        ksv_put_bytes(w, buf, (size_t) n);
    }

    ksv_json_lit(w, "\",\"dtype\":");
    ksv_json_cstr(w, ksv_datatype_name(t->datatype));
    ksv_json_lit(w, "}}");

    ksv_writer_free(&text);
}
