/*
 * ngx_kserve: Prometheus text exposition (version 0.0.4) over
 * ksv_writer_t (nginx-free, so it can be unit-tested on its own).
 *
 * A metric family is written as "# HELP", "# TYPE" and then all of its
 * samples together, as the format requires; label values are escaped
 * (backslash, double quote, newline).
 *
 * The per-model families use Triton's names, labels and units, so
 * dashboards built for Triton read them unchanged: counters of requests,
 * inferences and executions, and cumulative durations in microseconds
 * (the worker's nanoseconds divided by 1000).
 */

#ifndef KSV_PROMETHEUS_H
#define KSV_PROMETHEUS_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


#define KSV_PROM_CONTENT_TYPE  "text/plain; version=0.0.4; charset=utf-8"


/* "# HELP name help\n# TYPE name type\n" */
void ksv_prom_family(ksv_writer_t *w, const char *name, const char *type,
    const char *help);

/* A label value between double quotes, escaped. */
void ksv_prom_label_value(ksv_writer_t *w, const void *data, size_t len);

/* The same without the quotes, for a value written in pieces. */
void ksv_prom_escape(ksv_writer_t *w, const void *data, size_t len);

/*
 * The Triton families, one sample per model version of st, labelled
 * model="..." and version="...": nv_inference_request_success,
 * nv_inference_request_failure, nv_inference_count,
 * nv_inference_exec_count, nv_inference_request_duration_us,
 * nv_inference_queue_duration_us, nv_inference_compute_input_duration_us,
 * nv_inference_compute_infer_duration_us,
 * nv_inference_compute_output_duration_us.
 */
void ksv_prom_model_stats(ksv_writer_t *w, const ksv_stats_t *st);

#endif /* KSV_PROMETHEUS_H */
