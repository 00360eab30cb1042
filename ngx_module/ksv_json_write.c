/*
 * ngx_kserve: JSON output helpers over ksv_writer_t (nginx-free).
 */

#include <string.h>

#include "ksv_json.h"
#include "ksv_json_number.h"
#include "ksv_json_write.h"


void
ksv_json_string(ksv_writer_t *w, const void *data, size_t len)
{
    ksv_str_t  s;

    /* one escaping routine for the project: common/ksv_json.c */

    s.data = data;
    s.len = (uint32_t) len;

    ksv_json_put_str(w, s);
}


void
ksv_json_cstr(ksv_writer_t *w, const char *s)
{
    ksv_json_string(w, s, strlen(s));
}


/* ---- numbers ------------------------------------------------------------ */

void
ksv_json_u64(ksv_writer_t *w, uint64_t v)
{
    uint8_t  *p;

    p = ksv_writer_room(w, KSV_JSON_INT_MAX);
    if (p != NULL) {
        w->len += ksv_json_fmt_u64((char *) p, v);
    }
}


void
ksv_json_i64(ksv_writer_t *w, int64_t v)
{
    uint8_t  *p;

    p = ksv_writer_room(w, KSV_JSON_INT_MAX);
    if (p != NULL) {
        w->len += ksv_json_fmt_i64((char *) p, v);
    }
}


void
ksv_json_f32(ksv_writer_t *w, float v)
{
    uint8_t  *p;

    p = ksv_writer_room(w, KSV_JSON_F32_MAX);
    if (p != NULL) {
        w->len += ksv_json_fmt_f32((char *) p, v);
    }
}


void
ksv_json_f64(ksv_writer_t *w, double v)
{
    uint8_t  *p;

    p = ksv_writer_room(w, KSV_JSON_F64_MAX);
    if (p != NULL) {
        w->len += ksv_json_fmt_f64((char *) p, v);
    }
}


void
ksv_json_dims(ksv_writer_t *w, const int64_t *dims, uint32_t ndims)
{
    uint32_t  i;

    ksv_put_u8(w, '[');

    for (i = 0; i < ndims; i++) {
        if (i) {
            ksv_put_u8(w, ',');
        }

        ksv_json_i64(w, dims[i]);
    }

    ksv_put_u8(w, ']');
}


void
ksv_json_params(ksv_writer_t *w, const ksv_param_t *params,
    uint32_t nparams)
{
    uint32_t  i;

    ksv_put_u8(w, '{');

    for (i = 0; i < nparams; i++) {
        if (i) {
            ksv_put_u8(w, ',');
        }

        ksv_json_string(w, params[i].key.data, params[i].key.len);
        ksv_put_u8(w, ':');

        switch (params[i].type) {

        case KSV_PARAM_BOOL:
            if (params[i].i) {
                ksv_json_lit(w, "true");

            } else {
                ksv_json_lit(w, "false");
            }

            break;

        case KSV_PARAM_INT:
            ksv_json_i64(w, params[i].i);
            break;

        case KSV_PARAM_DOUBLE:
            ksv_json_f64(w, params[i].d);
            break;

        case KSV_PARAM_STRING:
            ksv_json_string(w, params[i].s.data, params[i].s.len);
            break;

        default:
            ksv_json_lit(w, "null");
        }
    }

    ksv_put_u8(w, '}');
}


void
ksv_json_error(ksv_writer_t *w, const char *message, size_t len)
{
    ksv_json_lit(w, "{\"error\":");
    ksv_json_string(w, message, len);
    ksv_put_u8(w, '}');
}


/*
 * The extensions the server implements, by Triton's names and in its
 * order (core's server.cc), one line each: a branch that builds one puts
 * its name on its line.  Not built: "classification" (asked of an
 * output: UNSUPPORTED), "sequence", "model_repository(unload_dependents)".
 */

static const char  *ksv_extensions[] = {

    "classification",           /* backends/common/ksv_classify.c */

    "model_repository",         /* ngx_http_kserve_repository.c */

    "model_repository(unload_dependents)",

    "schedule_policy",          /* priority, timeout (backends/common) */

    "model_configuration",

    "system_shared_memory",     /* ngx_http_kserve_shm.c */

    "cuda_shared_memory",       /* its endpoints; no GPU registration */

    "binary_tensor_data",

    "parameters",               /* request parameters reach the model */

    "statistics",

    "trace",                    /* ngx_http_kserve_trace.c */

    "logging",                  /* ngx_http_kserve_logging.c */

    NULL
};


void
ksv_json_server_metadata(ksv_writer_t *w, const char *name, size_t len)
{
    const char  **e;

    ksv_json_lit(w, "{\"name\":");
    ksv_json_string(w, name, len);
    ksv_json_lit(w, ",\"version\":\"" KSV_SERVER_VERSION "\","
                    "\"extensions\":[");

    for (e = ksv_extensions; *e != NULL; e++) {
        if (e != ksv_extensions) {
            ksv_put_u8(w, ',');
        }

        ksv_json_cstr(w, *e);
    }

    ksv_json_lit(w, "]}");
}


static void
ksv_json_duration(ksv_writer_t *w, const char *name,
    const ksv_stat_duration_t *d)
{
    ksv_json_cstr(w, name);
    ksv_json_lit(w, ":{\"count\":");
    ksv_json_u64(w, d->count);
    ksv_json_lit(w, ",\"ns\":");
    ksv_json_u64(w, d->ns);
    ksv_put_u8(w, '}');
}


void
ksv_json_model_stats(ksv_writer_t *w, const ksv_stats_t *st)
{
    uint32_t                  i, k;
    const ksv_batch_stats_t  *b;
    const ksv_model_stats_t  *s;

    ksv_json_lit(w, "{\"model_stats\":[");

    for (i = 0; i < st->nmodels; i++) {
        s = &st->models[i];

        if (i) {
            ksv_put_u8(w, ',');
        }

        ksv_json_lit(w, "{\"name\":");
        ksv_json_string(w, s->name.data, s->name.len);
        ksv_json_lit(w, ",\"version\":");
        ksv_json_string(w, s->version.data, s->version.len);
        ksv_json_lit(w, ",\"last_inference\":");
        ksv_json_u64(w, s->last_inference);
        ksv_json_lit(w, ",\"inference_count\":");
        ksv_json_u64(w, s->inference_count);
        ksv_json_lit(w, ",\"execution_count\":");
        ksv_json_u64(w, s->execution_count);

        ksv_json_lit(w, ",\"inference_stats\":{");
        ksv_json_duration(w, "success", &s->success);
        ksv_put_u8(w, ',');
        ksv_json_duration(w, "fail", &s->fail);
        ksv_put_u8(w, ',');
        ksv_json_duration(w, "queue", &s->queue);
        ksv_put_u8(w, ',');
        ksv_json_duration(w, "compute_input", &s->compute_input);
        ksv_put_u8(w, ',');
        ksv_json_duration(w, "compute_infer", &s->compute_infer);
        ksv_put_u8(w, ',');
        ksv_json_duration(w, "compute_output", &s->compute_output);

        /* there is no response cache: Triton reports zeros then */
        ksv_json_lit(w, ",\"cache_hit\":{\"count\":0,\"ns\":0}"
                        ",\"cache_miss\":{\"count\":0,\"ns\":0}}");

        /* decoupled models only, none here */
        ksv_json_lit(w, ",\"response_stats\":{}");

        ksv_json_lit(w, ",\"batch_stats\":[");

        for (k = 0; k < s->nbatch; k++) {
            b = &s->batch[k];

            if (k) {
                ksv_put_u8(w, ',');
            }

            ksv_json_lit(w, "{\"batch_size\":");
            ksv_json_u64(w, b->batch_size);
            ksv_put_u8(w, ',');
            ksv_json_duration(w, "compute_input", &b->compute_input);
            ksv_put_u8(w, ',');
            ksv_json_duration(w, "compute_infer", &b->compute_infer);
            ksv_put_u8(w, ',');
            ksv_json_duration(w, "compute_output", &b->compute_output);
            ksv_put_u8(w, '}');
        }

        ksv_json_lit(w, "],\"memory_usage\":[]}");
    }

    ksv_json_lit(w, "]}");
}


static void
ksv_json_io(ksv_writer_t *w, const ksv_io_config_t *io, uint32_t n,
    int batched)
{
    uint32_t  i, k;

    ksv_put_u8(w, '[');

    for (i = 0; i < n; i++) {
        if (i) {
            ksv_put_u8(w, ',');
        }

        ksv_json_lit(w, "{\"name\":");
        ksv_json_string(w, io[i].name.data, io[i].name.len);
        ksv_json_lit(w, ",\"datatype\":");
        ksv_json_cstr(w, ksv_datatype_name(io[i].datatype));
        ksv_json_lit(w, ",\"shape\":[");

        if (batched) {
            ksv_json_lit(w, "-1");
        }

        for (k = 0; k < io[i].ndims; k++) {
            if (k || batched) {
                ksv_put_u8(w, ',');
            }

            ksv_json_i64(w, io[i].dims[k]);
        }

        ksv_json_lit(w, "]}");
    }

    ksv_put_u8(w, ']');
}


void
ksv_json_model_metadata(ksv_writer_t *w, const ksv_model_status_t *ms)
{
    int                        batched, first;
    uint32_t                   i;
    const ksv_model_config_t  *c;

    c = &ms->config;
    batched = c->max_batch_size > 0;

    ksv_json_lit(w, "{\"name\":");
    ksv_json_string(w, c->name.data, c->name.len);
    ksv_json_lit(w, ",\"versions\":[");

    first = 1;

    for (i = 0; i < ms->nversions; i++) {
        if (ms->versions[i].state != KSV_VERSION_READY) {
            continue;
        }

        if (!first) {
            ksv_put_u8(w, ',');
        }

        first = 0;

        ksv_put_u8(w, '"');
        ksv_json_i64(w, ms->versions[i].version);
        ksv_put_u8(w, '"');
    }

    ksv_json_lit(w, "],\"platform\":");

    if (c->platform.len) {
        ksv_json_string(w, c->platform.data, c->platform.len);

    } else {
        ksv_json_string(w, c->backend.data, c->backend.len);
    }

    ksv_json_lit(w, ",\"inputs\":");
    ksv_json_io(w, c->inputs, c->ninputs, batched);
    ksv_json_lit(w, ",\"outputs\":");
    ksv_json_io(w, c->outputs, c->noutputs, batched);
    ksv_put_u8(w, '}');
}
