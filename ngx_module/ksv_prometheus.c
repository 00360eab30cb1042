/*
 * ngx_kserve: Prometheus text exposition over ksv_writer_t (nginx-free).
 */

#include <string.h>

#include "ksv_json_write.h"
#include "ksv_prometheus.h"


typedef enum {
    KSV_PROM_SUCCESS = 0,
    KSV_PROM_FAILURE,
    KSV_PROM_INFERENCES,
    KSV_PROM_EXECUTIONS,
    KSV_PROM_REQUEST_US,
    KSV_PROM_QUEUE_US,
    KSV_PROM_INPUT_US,
    KSV_PROM_INFER_US,
    KSV_PROM_OUTPUT_US
} ksv_prom_field_e;


typedef struct {
    const char        *name;
    const char        *help;
    ksv_prom_field_e   field;
} ksv_prom_metric_t;


/* Triton's names and help texts (src/metrics.cc in triton core) */

static const ksv_prom_metric_t  ksv_prom_model_metrics[] = {

    { "nv_inference_request_success",
      "Number of successful inference requests, all batch sizes",
      KSV_PROM_SUCCESS },

    { "nv_inference_request_failure",
      "Number of failed inference requests, all batch sizes",
      KSV_PROM_FAILURE },

    { "nv_inference_count",
      "Number of inferences performed (does not include cached requests)",
      KSV_PROM_INFERENCES },

    { "nv_inference_exec_count",
      "Number of model executions performed (does not include cached "
      "requests)",
      KSV_PROM_EXECUTIONS },

    { "nv_inference_request_duration_us",
      "Cumulative inference request duration in microseconds (includes "
      "cached requests)",
      KSV_PROM_REQUEST_US },

    { "nv_inference_queue_duration_us",
      "Cumulative inference queuing duration in microseconds (includes "
      "cached requests)",
      KSV_PROM_QUEUE_US },

    { "nv_inference_compute_input_duration_us",
      "Cumulative compute input duration in microseconds (does not "
      "include cached requests)",
      KSV_PROM_INPUT_US },

    { "nv_inference_compute_infer_duration_us",
      "Cumulative compute inference duration in microseconds (does not "
      "include cached requests)",
      KSV_PROM_INFER_US },

    { "nv_inference_compute_output_duration_us",
      "Cumulative inference compute output duration in microseconds "
      "(does not include cached requests)",
      KSV_PROM_OUTPUT_US }
};


void
ksv_prom_family(ksv_writer_t *w, const char *name, const char *type,
    const char *help)
{
    ksv_json_lit(w, "# HELP ");
    ksv_put_bytes(w, name, strlen(name));
    ksv_put_u8(w, ' ');
    ksv_put_bytes(w, help, strlen(help));
    ksv_json_lit(w, "\n# TYPE ");
    ksv_put_bytes(w, name, strlen(name));
    ksv_put_u8(w, ' ');
    ksv_put_bytes(w, type, strlen(type));
    ksv_put_u8(w, '\n');
}


void
ksv_prom_label_value(ksv_writer_t *w, const void *data, size_t len)
{
    ksv_put_u8(w, '"');
    ksv_prom_escape(w, data, len);
    ksv_put_u8(w, '"');
}


void
ksv_prom_escape(ksv_writer_t *w, const void *data, size_t len)
{
    const char  *p, *end, *run;

    p = data;
    end = p + len;

    for (run = p; p < end; p++) {
        if (*p != '\\' && *p != '"' && *p != '\n') {
            continue;
        }

        ksv_put_bytes(w, run, p - run);
        ksv_put_u8(w, '\\');
        ksv_put_u8(w, *p == '\n' ? 'n' : *p);
        run = p + 1;
    }

    ksv_put_bytes(w, run, p - run);
}


static uint64_t
ksv_prom_value(const ksv_model_stats_t *s, ksv_prom_field_e field)
{
    switch (field) {

    case KSV_PROM_SUCCESS:
        return s->success.count;

    case KSV_PROM_FAILURE:
        return s->fail.count;

    case KSV_PROM_INFERENCES:
        return s->inference_count;

    case KSV_PROM_EXECUTIONS:
        return s->execution_count;

    case KSV_PROM_REQUEST_US:
        return s->success.ns / 1000;

    case KSV_PROM_QUEUE_US:
        return s->queue.ns / 1000;

    case KSV_PROM_INPUT_US:
        return s->compute_input.ns / 1000;

    case KSV_PROM_INFER_US:
        return s->compute_infer.ns / 1000;

    default: /* KSV_PROM_OUTPUT_US */
        return s->compute_output.ns / 1000;
    }
}


void
ksv_prom_model_stats(ksv_writer_t *w, const ksv_stats_t *st)
{
    size_t                    name_len;
    uint32_t                  i, k;
    const ksv_model_stats_t  *s;
    const ksv_prom_metric_t  *m;

    for (k = 0;
         k < sizeof(ksv_prom_model_metrics) / sizeof(ksv_prom_metric_t);
         k++)
    {
        m = &ksv_prom_model_metrics[k];
        name_len = strlen(m->name);

        ksv_prom_family(w, m->name, "counter", m->help);

        for (i = 0; i < st->nmodels; i++) {
            s = &st->models[i];

            ksv_put_bytes(w, m->name, name_len);
            ksv_json_lit(w, "{model=");
            ksv_prom_label_value(w, s->name.data, s->name.len);
            ksv_json_lit(w, ",version=");
            ksv_prom_label_value(w, s->version.data, s->version.len);
            ksv_json_lit(w, "} ");
            ksv_json_u64(w, ksv_prom_value(s, m->field));
            ksv_put_u8(w, '\n');
        }
    }
}
