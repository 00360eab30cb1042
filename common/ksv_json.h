/*
 * ngx_kserve: JSON text writing.
 *
 * The one place that turns shared structs into JSON text: the module's
 * GET .../config answer and the Python backend's args['model_config']
 * are the same bytes, so a model sees exactly what a client sees.
 */

#ifndef KSV_JSON_H
#define KSV_JSON_H

#include "ksv_proto.h"


/* Appends `s` as a quoted JSON string.  Control characters are escaped;
 * bytes that are not valid UTF-8 are written as U+FFFD so the output is
 * always valid JSON. */
void ksv_json_put_str(ksv_writer_t *w, ksv_str_t s);

/* Appends a C string verbatim (no quoting). */
void ksv_json_put_raw(ksv_writer_t *w, const char *s);

/* Appends a signed integer. */
void ksv_json_put_int(ksv_writer_t *w, int64_t v);

/* Triton's ModelConfig JSON (as GET /v2/models/{m}/config returns it). */
void ksv_model_config_to_json(ksv_writer_t *w, const ksv_model_config_t *c);

#endif /* KSV_JSON_H */
