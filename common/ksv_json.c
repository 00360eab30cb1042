/*
 * ngx_kserve: JSON text writing (see ksv_json.h).
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ksv_json.h"


static const char  ksv_hex[] = "0123456789abcdef";


/* Length of the valid UTF-8 sequence at p, or 0 when it is not one. */
static size_t
ksv_utf8_len(const uint8_t *p, size_t n)
{
    size_t    len, i;
    uint32_t  cp;

    if (p[0] < 0x80) {
        return 1;
    }
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }

    /* overlong forms, surrogates and values past U+10FFFF */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800)
        || (len == 4 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff))
    {
        return 0;
    }
    return len;
}


void
ksv_json_put_str(ksv_writer_t *w, ksv_str_t s)
{
    size_t          i, run, len;
    uint8_t         esc[6];
    const uint8_t  *p = (const uint8_t *) s.data;

    ksv_put_u8(w, '"');

    /* copy runs of plain bytes at once; escape the rest */
    for (i = 0, run = 0; i < s.len; /* void */) {
        if (p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') {
            i++;
            continue;
        }

        ksv_put_bytes(w, p + run, i - run);

        if (p[i] >= 0x80) {
            len = ksv_utf8_len(p + i, s.len - i);
            if (len == 0) {
                ksv_put_bytes(w, "\xef\xbf\xbd", 3);
                len = 1;
            } else {
                ksv_put_bytes(w, p + i, len);
            }
            i += len;

        } else {
            switch (p[i]) {
            case '"':  ksv_put_bytes(w, "\\\"", 2); break;
            case '\\': ksv_put_bytes(w, "\\\\", 2); break;
            case '\n': ksv_put_bytes(w, "\\n", 2); break;
            case '\r': ksv_put_bytes(w, "\\r", 2); break;
            case '\t': ksv_put_bytes(w, "\\t", 2); break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = ksv_hex[p[i] >> 4];
                esc[5] = ksv_hex[p[i] & 0xf];
                ksv_put_bytes(w, esc, 6);
            }
            i++;
        }

        run = i;
    }

    ksv_put_bytes(w, p + run, s.len - run);
    ksv_put_u8(w, '"');
}


void
ksv_json_put_raw(ksv_writer_t *w, const char *s)
{
    ksv_put_bytes(w, s, strlen(s));
}


void
ksv_json_put_int(ksv_writer_t *w, int64_t v)
{
    char  buf[24];
    int   n;

    n = snprintf(buf, sizeof(buf), "%" PRId64, v);
    ksv_put_bytes(w, buf, (size_t) n);
}


static void
ksv_json_put_key(ksv_writer_t *w, const char *key, int first)
{
    if (!first) {
        ksv_put_u8(w, ',');
    }
    ksv_put_u8(w, '"');
    ksv_json_put_raw(w, key);
    ksv_put_bytes(w, "\":", 2);
}


static void
ksv_json_put_bool(ksv_writer_t *w, int v)
{
    ksv_json_put_raw(w, v ? "true" : "false");
}


static void
ksv_json_put_dims(ksv_writer_t *w, const int64_t *dims, uint32_t n)
{
    uint32_t  i;

    ksv_put_u8(w, '[');
    for (i = 0; i < n; i++) {
        if (i > 0) {
            ksv_put_u8(w, ',');
        }
        ksv_json_put_int(w, dims[i]);
    }
    ksv_put_u8(w, ']');
}


/* ModelInput.format, as Triton's JSON names it */
static const char *
ksv_io_format_name(uint8_t format)
{
    static const char  *names[] = {
        "FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"
    };

    return format < 3 ? names[format] : names[0];
}


/* inputs carry "format", outputs "label_filename", as in Triton's */
static void
ksv_json_put_io(ksv_writer_t *w, const ksv_io_config_t *io, uint32_t n,
    int inputs)
{
    uint32_t  i;

    ksv_put_u8(w, '[');
    for (i = 0; i < n; i++) {
        if (i > 0) {
            ksv_put_u8(w, ',');
        }
        ksv_put_u8(w, '{');
        ksv_json_put_key(w, "name", 1);
        ksv_json_put_str(w, io[i].name);
        ksv_json_put_key(w, "data_type", 0);
        ksv_json_put_raw(w, "\"");
        ksv_json_put_raw(w, ksv_datatype_config_name(io[i].datatype));
        ksv_json_put_raw(w, "\"");
        ksv_json_put_key(w, "dims", 0);
        ksv_json_put_dims(w, io[i].dims, io[i].ndims);
        if (io[i].has_reshape) {
            ksv_json_put_key(w, "reshape", 0);
            ksv_json_put_raw(w, "{\"shape\":");
            ksv_json_put_dims(w, io[i].reshape, io[i].reshape_ndims);
            ksv_put_u8(w, '}');
        }
        ksv_json_put_key(w, "optional", 0);
        ksv_json_put_bool(w, io[i].optional);
        ksv_json_put_key(w, "allow_ragged_batch", 0);
        ksv_json_put_bool(w, io[i].allow_ragged_batch);
        if (inputs) {
            ksv_json_put_key(w, "format", 0);
            ksv_put_u8(w, '"');
            ksv_json_put_raw(w, ksv_io_format_name(io[i].format));
            ksv_put_u8(w, '"');
        } else {
            ksv_json_put_key(w, "label_filename", 0);
            ksv_json_put_str(w, io[i].label_filename);
        }
        ksv_put_u8(w, '}');
    }
    ksv_put_u8(w, ']');
}


static const char *
ksv_instance_kind_name(uint8_t kind)
{
    static const char  *names[] = {
        "KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"
    };

    return kind < 4 ? names[kind] : names[0];
}


static void
ksv_json_put_groups(ksv_writer_t *w, const ksv_model_config_t *c)
{
    uint32_t                     i, j;
    const ksv_instance_group_t  *g;

    ksv_put_u8(w, '[');
    for (i = 0; i < c->ngroups; i++) {
        g = &c->groups[i];
        if (i > 0) {
            ksv_put_u8(w, ',');
        }
        ksv_put_u8(w, '{');
        ksv_json_put_key(w, "name", 1);
        ksv_json_put_str(w, g->name);
        ksv_json_put_key(w, "kind", 0);
        ksv_put_u8(w, '"');
        ksv_json_put_raw(w, ksv_instance_kind_name(g->kind));
        ksv_put_u8(w, '"');
        ksv_json_put_key(w, "count", 0);
        ksv_json_put_int(w, g->count);
        ksv_json_put_key(w, "gpus", 0);
        ksv_put_u8(w, '[');
        for (j = 0; j < g->ngpus; j++) {
            if (j > 0) {
                ksv_put_u8(w, ',');
            }
            ksv_json_put_int(w, g->gpus[j]);
        }
        ksv_put_bytes(w, "]}", 2);
    }
    ksv_put_u8(w, ']');
}


static void
ksv_json_put_version_policy(ksv_writer_t *w, const ksv_version_policy_t *vp)
{
    uint32_t  i;

    switch (vp->kind) {
    case KSV_VPOLICY_ALL:
        ksv_json_put_raw(w, "{\"all\":{}}");
        break;

    case KSV_VPOLICY_SPECIFIC:
        ksv_json_put_raw(w, "{\"specific\":{\"versions\":[");
        for (i = 0; i < vp->nversions; i++) {
            if (i > 0) {
                ksv_put_u8(w, ',');
            }
            ksv_json_put_int(w, vp->versions[i]);
        }
        ksv_json_put_raw(w, "]}}");
        break;

    default:
        ksv_json_put_raw(w, "{\"latest\":{\"num_versions\":");
        ksv_json_put_int(w, vp->latest_num);
        ksv_json_put_raw(w, "}}");
    }
}


static void
ksv_json_put_batching(ksv_writer_t *w, const ksv_dynamic_batching_t *db)
{
    uint32_t                   i;
    const ksv_queue_policy_t  *qp = &db->default_queue_policy;

    ksv_json_put_raw(w, "{\"preferred_batch_size\":[");
    for (i = 0; i < db->npreferred; i++) {
        if (i > 0) {
            ksv_put_u8(w, ',');
        }
        ksv_json_put_int(w, db->preferred_batch_size[i]);
    }
    ksv_put_u8(w, ']');
    ksv_json_put_key(w, "max_queue_delay_microseconds", 0);
    ksv_json_put_int(w, (int64_t) db->max_queue_delay_us);
    ksv_json_put_key(w, "preserve_ordering", 0);
    ksv_json_put_bool(w, db->preserve_ordering);
    ksv_json_put_key(w, "priority_levels", 0);
    ksv_json_put_int(w, db->priority_levels);
    ksv_json_put_key(w, "default_priority_level", 0);
    ksv_json_put_int(w, db->default_priority_level);
    ksv_json_put_key(w, "default_queue_policy", 0);
    ksv_json_put_raw(w, "{\"timeout_action\":");
    ksv_json_put_raw(w, qp->timeout_action == KSV_TIMEOUT_DELAY
                        ? "\"DELAY\"" : "\"REJECT\"");
    ksv_json_put_key(w, "default_timeout_microseconds", 0);
    ksv_json_put_int(w, (int64_t) qp->default_timeout_us);
    ksv_json_put_key(w, "allow_timeout_override", 0);
    ksv_json_put_bool(w, qp->allow_timeout_override);
    ksv_json_put_key(w, "max_queue_size", 0);
    ksv_json_put_int(w, qp->max_queue_size);
    ksv_json_put_raw(w, "}}");
}


void
ksv_model_config_to_json(ksv_writer_t *w, const ksv_model_config_t *c)
{
    uint32_t  i;

    ksv_put_u8(w, '{');
    ksv_json_put_key(w, "name", 1);
    ksv_json_put_str(w, c->name);
    ksv_json_put_key(w, "platform", 0);
    ksv_json_put_str(w, c->platform);
    ksv_json_put_key(w, "backend", 0);
    ksv_json_put_str(w, c->backend);
    ksv_json_put_key(w, "version_policy", 0);
    ksv_json_put_version_policy(w, &c->version_policy);
    ksv_json_put_key(w, "max_batch_size", 0);
    ksv_json_put_int(w, c->max_batch_size);
    ksv_json_put_key(w, "input", 0);
    ksv_json_put_io(w, c->inputs, c->ninputs, 1);
    ksv_json_put_key(w, "output", 0);
    ksv_json_put_io(w, c->outputs, c->noutputs, 0);
    ksv_json_put_key(w, "instance_group", 0);
    ksv_json_put_groups(w, c);
    ksv_json_put_key(w, "default_model_filename", 0);
    ksv_json_put_str(w, c->default_model_filename);

    if (c->dynamic_batching.enabled) {
        ksv_json_put_key(w, "dynamic_batching", 0);
        ksv_json_put_batching(w, &c->dynamic_batching);
    }

    ksv_json_put_key(w, "parameters", 0);
    ksv_put_u8(w, '{');
    for (i = 0; i < c->nparameters; i++) {
        if (i > 0) {
            ksv_put_u8(w, ',');
        }
        ksv_json_put_str(w, c->parameters[i].key);
        ksv_json_put_raw(w, ":{\"string_value\":");
        ksv_json_put_str(w, c->parameters[i].value);
        ksv_put_u8(w, '}');
    }
    ksv_put_bytes(w, "}}", 2);
}
