/*
 * ngx_kserve: JSON output helpers over ksv_writer_t (nginx-free).
 *
 * Responses are written straight into a growable byte buffer: numbers by
 * hand, strings escaped here.  No DOM is built, so an output tensor of
 * millions of elements costs one pass over its bytes.
 *
 * Choices a client can see:
 *  - FP32 and FP64 are printed with the fewest digits that read back as
 *    the same value (0.1, not 0.100000001), laid out as printf's %.9g
 *    and %.17g lay them out: 1e+10, 1.5e-07, 100, -0.
 *  - NaN and infinities have no JSON spelling; they are written as NaN,
 *    Infinity and -Infinity, as Python's json module writes and reads
 *    them.  Clients that need strict JSON should ask for binary outputs.
 *  - Strings go through ksv_json_put_str() (common/ksv_json.c): UTF-8
 *    kept, invalid bytes written as U+FFFD so the document stays valid
 *    JSON.  Arbitrary bytes round-trip only through binary outputs.
 */

#ifndef KSV_JSON_WRITE_H
#define KSV_JSON_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_json_number.h"
#include "ksv_proto.h"


#define ksv_json_lit(w, s)  ksv_put_bytes((w), (s), sizeof(s) - 1)

/* A quoted, escaped JSON string (len < 4 GiB). */
void ksv_json_string(ksv_writer_t *w, const void *data, size_t len);
void ksv_json_cstr(ksv_writer_t *w, const char *s);
void ksv_json_i64(ksv_writer_t *w, int64_t v);
void ksv_json_u64(ksv_writer_t *w, uint64_t v);
void ksv_json_f32(ksv_writer_t *w, float v);
void ksv_json_f64(ksv_writer_t *w, double v);

/* Writes a shape array, "[-1,16]". */
void ksv_json_dims(ksv_writer_t *w, const int64_t *dims, uint32_t ndims);

/* {"key":value,...} for KServe parameters; nothing when nparams is 0. */
void ksv_json_params(ksv_writer_t *w, const ksv_param_t *params,
    uint32_t nparams);

/* {"error":"message"} */
void ksv_json_error(ksv_writer_t *w, const char *message, size_t len);

/* Server metadata: {"name":..,"version":..,"extensions":[..]}. */
void ksv_json_server_metadata(ksv_writer_t *w, const char *name,
    size_t len);

/*
 * Model metadata as Triton answers GET /v2/models/{m}[/versions/{v}]:
 * name, versions (the ready ones, as strings), platform (the config's
 * platform, else its backend), inputs and outputs with name, datatype
 * and shape (-1 prepended when max_batch_size > 0).
 */
void ksv_json_model_metadata(ksv_writer_t *w, const ksv_model_status_t *ms);

/*
 * Triton's statistics extension, GET /v2/models[/{m}[/versions/{v}]]/stats:
 * {"model_stats":[{"name","version","last_inference","inference_count",
 * "execution_count","inference_stats":{"success","fail","queue",
 * "compute_input","compute_infer","compute_output","cache_hit",
 * "cache_miss"},"response_stats":{},"batch_stats":[{"batch_size",
 * "compute_input","compute_infer","compute_output"}],"memory_usage":[]}]},
 * every duration as {"count","ns"}, in the order and with the keys
 * Triton writes (cache and memory figures are always empty here).
 */
void ksv_json_model_stats(ksv_writer_t *w, const ksv_stats_t *st);

/* what server metadata's "name" says unless kserve_server_name is set:
 * Triton's clients and tests check for it */
#define KSV_SERVER_NAME     "triton"
#define KSV_SERVER_VERSION  "0.1.0"

#endif /* KSV_JSON_WRITE_H */
