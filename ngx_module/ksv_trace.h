/*
 * ngx_kserve: Triton's trace extension, the nginx-free part: settings
 * (global and per model), sampling, the settings JSON both ways, and the
 * trace records Triton writes to its trace file.
 *
 * Settings as Triton keeps them (docs/protocol/extension_trace.md): the
 * global ones, and per model only the fields a POST named; a field a
 * model does not set follows the global one, live.  null clears a
 * model's field, or puts a global one back to its configured value.
 * trace_count is the number of traces left (-1: no limit), counted down
 * in the setting that holds it; trace_rate N traces every N-th request
 * of that setting.
 *
 * A record, as Triton writes them (docs/user_guide/trace.md): one object
 * with id, model_name, model_version (and request_id when given), then
 * one {"id":N,"timestamps":[{"name":...,"ns":...}]} per timestamp, ns of
 * CLOCK_MONOTONIC (Triton's steady clock).  A file holds a JSON array of
 * them.
 */

#ifndef KSV_TRACE_H
#define KSV_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


#define KSV_TRACE_TIMESTAMPS     0x1
#define KSV_TRACE_TENSORS        0x2

/* which fields a setting holds (a model's; the global holds all) */
#define KSV_TRACE_SET_LEVEL      0x1
#define KSV_TRACE_SET_RATE       0x2
#define KSV_TRACE_SET_COUNT      0x4
#define KSV_TRACE_SET_FREQUENCY  0x8

#define KSV_TRACE_MODELS         64     /* models with settings of their own */
#define KSV_TRACE_NAME           256

typedef struct {
    uint32_t         set;               /* KSV_TRACE_SET_* */
    uint32_t         level;             /* KSV_TRACE_*, 0: OFF */
    uint32_t         rate;
    int32_t          count;             /* left, -1: no limit */
    uint32_t         log_frequency;     /* 0: every trace to the file */
    uint64_t         seen;              /* requests counted for the rate */
    uint32_t         name_len;          /* a model's; 0: the global one */
    char             name[KSV_TRACE_NAME];
} ksv_trace_setting_t;

typedef struct {
    ksv_trace_setting_t  initial;       /* as configured: null's target */
    ksv_trace_setting_t  global;
    uint32_t             nmodels;
    ksv_trace_setting_t  models[KSV_TRACE_MODELS];
} ksv_trace_table_t;

/* The effective settings of a model (name_len 0: the global ones). */
typedef struct {
    uint32_t         level;
    uint32_t         rate;
    int32_t          count;
    uint32_t         log_frequency;
} ksv_trace_view_t;

void ksv_trace_table_init(ksv_trace_table_t *t,
    const ksv_trace_setting_t *initial);

void ksv_trace_view(const ksv_trace_table_t *t, const char *name,
    uint32_t name_len, ksv_trace_view_t *v);

/*
 * One request of the model: 1 when it is to be traced (its rate says so
 * and the count allows; the count is then taken down), else 0.  *v is
 * the effective settings either way.
 */
int ksv_trace_sample(ksv_trace_table_t *t, const char *name,
    uint32_t name_len, ksv_trace_view_t *v);

/* Any setting traces at all (a fast "no" for every request). */
int ksv_trace_any(const ksv_trace_table_t *t);

/*
 * Applies a POST body (JSON) to the model's settings (name_len 0: the
 * global ones).  Returns 0, or -1 with the reason in err (nothing is
 * changed then) and *status the HTTP status (400, or 501 for
 * trace_file, which only the configuration sets).
 */
int ksv_trace_update(ksv_trace_table_t *t, const char *name,
    uint32_t name_len, const void *body, size_t len, char *err,
    size_t err_size, int *status);

/* The settings JSON of a model (or the global ones), as Triton answers. */
void ksv_trace_settings_json(ksv_writer_t *w, const ksv_trace_table_t *t,
    const char *name, uint32_t name_len, const char *file);


/* ---- records -------------------------------------------------------------- */

typedef enum {
    KSV_TS_HTTP_RECV_START = 0,
    KSV_TS_HTTP_RECV_END,
    KSV_TS_REQUEST_START,
    KSV_TS_QUEUE_START,
    KSV_TS_COMPUTE_START,
    KSV_TS_COMPUTE_INPUT_END,
    KSV_TS_COMPUTE_OUTPUT_START,
    KSV_TS_COMPUTE_END,
    KSV_TS_REQUEST_END,
    KSV_TS_HTTP_SEND_START,
    KSV_TS_HTTP_SEND_END,
    KSV_TS_COUNT
} ksv_trace_point_t;

typedef struct {
    uint64_t         id;
    ksv_str_t        model_name;
    int64_t          model_version;
    ksv_str_t        request_id;
    uint64_t         ns[KSV_TS_COUNT];  /* 0: not taken */
} ksv_trace_record_t;

/* The record's JSON array elements, comma-separated, no brackets. */
void ksv_trace_record_json(ksv_writer_t *w, const ksv_trace_record_t *rec);

const char *ksv_trace_point_name(ksv_trace_point_t p);

/*
 * A TENSORS record (Triton's "activity" elements), written with a
 * leading ',': {"id":N,"activity":"TENSOR_QUEUE_INPUT","tensor":{"name",
 * "data":"1,2,3","shape":"1,3","dtype":"INT32"}}.  data holds the
 * elements comma-separated (BOOL 0/1, integers in decimal, FP32/FP64 as
 * %g, FP16/BF16 as their bits, BYTES as \"text\"), at most
 * KSV_TRACE_ELEMENTS of them, then ",..." when there were more.
 */
#define KSV_TRACE_ELEMENTS  65536

void ksv_trace_tensor_json(ksv_writer_t *w, uint64_t id,
    const char *activity, const ksv_tensor_t *t, const void *data,
    size_t size);

#endif /* KSV_TRACE_H */
