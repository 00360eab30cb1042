/*
 * ngx_kserve: the module <-> worker <-> instance wire protocol.
 *
 * Every message is a ZeroMQ multipart message whose first frame is a
 * "header frame": a fixed 16-byte prefix followed by a kind-specific body
 * of little-endian fields.  Tensor bytes never sit inside the header
 * frame; each tensor travels as its own raw frame right after the header
 * frame that describes it, so both sides can hand them around with
 * zmq_msg_init_data / zmq_msg_move without copying.
 *
 *   prefix:  u16 magic (0x4B56)  u8 version  u8 kind  u32 reserved(0)
 *            u64 id
 *   string:  u16 length + bytes (no NUL on the wire)
 *   dims:    u8 ndims + ndims * i64
 *
 * Who talks to whom (docs/protocol.md is the prose version of this
 * file; change both):
 *
 *   nginx worker --INFER / CANCEL--> instance   (the data plane: one hop)
 *   nginx worker <--INFER_REPLY / ERROR-- instance
 *   nginx worker --INDEX / STATS / LOG--> kserve-worker --*_REPLY-->
 *                                                          (control)
 *   instance --READY--> kserve-worker            (control)
 *
 * EXECUTE / EXECUTE_REPLY no longer cross a socket: they are the form in
 * which an instance's scheduler hands a batch to its backend and gets
 * the answers back (backends/common/ksv_sched.h).
 *
 * Decoding never trusts the input: every read is bounds-checked, counts
 * are capped (KSV_MAX_*), and a failed decode returns -1 with nothing
 * allocated that the caller must free beyond its arena.  Decoded strings
 * point into the frame buffer (zero-copy): keep the frame alive while
 * the decoded struct is in use.
 */

#ifndef KSV_PROTO_H
#define KSV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_datatype.h"
#include "ksv_status.h"


#define KSV_PROTO_MAGIC        0x4B56
#define KSV_PROTO_VERSION      1
#define KSV_PREFIX_SIZE        16

#define KSV_MAX_DIMS           16
#define KSV_MAX_TENSORS        1024     /* inputs or outputs per message */
#define KSV_MAX_PARAMS         256
#define KSV_MAX_MODELS         4096
#define KSV_MAX_BATCH_REQUESTS 4096
#define KSV_MAX_LIST           1024     /* gpus, versions, preferred sizes,
                                           batch sizes in statistics */
#define KSV_MAX_STATS          65536    /* model versions in STATS_REPLY */
#define KSV_MAX_STRING         65535


typedef enum {
    KSV_MSG_INFER = 1,          /* module -> instance */
    KSV_MSG_INFER_REPLY = 2,    /* instance -> module */
    KSV_MSG_ERROR = 3,          /* any reply that failed */
    KSV_MSG_INDEX = 4,          /* module -> worker: repository index */
    KSV_MSG_INDEX_REPLY = 5,    /* worker -> module */
    KSV_MSG_EXECUTE = 6,        /* scheduler -> backend: one batch */
    KSV_MSG_EXECUTE_REPLY = 7,  /* backend -> scheduler */
    KSV_MSG_READY = 8,          /* instance -> daemon: loaded (or not) */
    KSV_MSG_STATS = 9,          /* module -> worker: statistics */
    KSV_MSG_STATS_REPLY = 10,   /* worker -> module */
    KSV_MSG_CANCEL = 11,        /* module -> instance: client went away */

    /* Triton's logging extension (common/ksv_logset.h); 12-15 are left
     * to other extensions */
    KSV_MSG_LOG = 16,           /* module -> worker: log settings */
    KSV_MSG_LOG_REPLY = 17,     /* worker -> module */

    /* Triton's repository extension, module -> worker (numbered from 20
     * so kinds added meanwhile elsewhere keep their numbers) */
    KSV_MSG_REPOSITORY = 20,        /* index, load or unload */
    KSV_MSG_REPOSITORY_REPLY = 21,  /* worker -> module */
    KSV_MSG_KIND_MAX
} ksv_msg_kind_t;


/* A string view; never NUL-terminated on the wire. */
typedef struct {
    const char  *data;
    uint32_t     len;
} ksv_str_t;

#define ksv_str_lit(s)  ((ksv_str_t) { (s), sizeof(s) - 1 })
int ksv_str_eq(ksv_str_t a, const char *cstr);
ksv_str_t ksv_str_c(const char *cstr);


/*
 * Allocation for decoders.  The module passes an ngx_pool_t adapter,
 * the worker an arena (ksv_arena_t below); nothing is freed piecemeal.
 */
typedef struct {
    void        *(*alloc)(void *ctx, size_t size);
    void        *ctx;
} ksv_alloc_t;


/* A simple chunked arena for the worker side and tests. */
typedef struct ksv_arena_chunk_s  ksv_arena_chunk_t;

typedef struct {
    ksv_arena_chunk_t  *head;
} ksv_arena_t;

void ksv_arena_init(ksv_arena_t *arena);
void *ksv_arena_alloc(ksv_arena_t *arena, size_t size);
void ksv_arena_free(ksv_arena_t *arena);
ksv_alloc_t ksv_arena_allocator(ksv_arena_t *arena);


/* Growable output buffer (malloc); failed is sticky after ENOMEM. */
typedef struct {
    uint8_t     *buf;
    size_t       len;
    size_t       cap;
    int          failed;
} ksv_writer_t;

void ksv_writer_init(ksv_writer_t *w);
void ksv_writer_free(ksv_writer_t *w);
/* Hands the buffer to the caller (free() it, or zmq_msg_init_data with
 * ksv_writer_free_cb); the writer is empty afterwards. */
uint8_t *ksv_writer_detach(ksv_writer_t *w, size_t *len);
void ksv_writer_free_cb(void *data, void *hint);
/* Room for n more bytes at w->buf + w->len (NULL once failed): write
 * there, then add what was written to w->len.  Also presizes a writer
 * whose final length is known or estimated. */
uint8_t *ksv_writer_room(ksv_writer_t *w, size_t n);

void ksv_put_u8(ksv_writer_t *w, uint8_t v);
void ksv_put_u16(ksv_writer_t *w, uint16_t v);
void ksv_put_u32(ksv_writer_t *w, uint32_t v);
void ksv_put_u64(ksv_writer_t *w, uint64_t v);
void ksv_put_i64(ksv_writer_t *w, int64_t v);
void ksv_put_f64(ksv_writer_t *w, double v);
void ksv_put_str(ksv_writer_t *w, ksv_str_t s);
void ksv_put_bytes(ksv_writer_t *w, const void *p, size_t n);


/* Bounds-checked reader; failed is sticky, reads after failure yield 0. */
typedef struct {
    const uint8_t  *p;
    const uint8_t  *end;
    int             failed;
} ksv_reader_t;

void ksv_reader_init(ksv_reader_t *r, const void *buf, size_t len);
uint8_t ksv_get_u8(ksv_reader_t *r);
uint16_t ksv_get_u16(ksv_reader_t *r);
uint32_t ksv_get_u32(ksv_reader_t *r);
uint64_t ksv_get_u64(ksv_reader_t *r);
int64_t ksv_get_i64(ksv_reader_t *r);
double ksv_get_f64(ksv_reader_t *r);
ksv_str_t ksv_get_str(ksv_reader_t *r);


/* ---- message prefix ---------------------------------------------------- */

typedef struct {
    uint8_t      version;
    uint8_t      kind;
    uint64_t     id;
} ksv_prefix_t;

void ksv_put_prefix(ksv_writer_t *w, ksv_msg_kind_t kind, uint64_t id);

/*
 * Reads and checks the prefix.  Returns 0, or -1 when the frame is short,
 * the magic is wrong, the version is not KSV_PROTO_VERSION or the kind is
 * unknown; *prefix is filled as far as it could be read either way, so a
 * wrong-version message can still be answered by id.
 */
int ksv_read_prefix(ksv_reader_t *r, ksv_prefix_t *prefix);

/*
 * Rewrites the id of an encoded header frame in place, so a relay (the
 * daemon between module and instances) forwards frames without
 * re-encoding them.  Returns -1 when the frame is shorter than a prefix.
 */
int ksv_patch_id(void *frame, size_t len, uint64_t id);


/* ---- tensors and parameters ---------------------------------------------- */

typedef struct {
    ksv_str_t        name;
    uint8_t          datatype;          /* ksv_datatype_t */
    uint8_t          ndims;
    int64_t          dims[KSV_MAX_DIMS];
    uint64_t         byte_size;         /* size of the raw frame */
} ksv_tensor_t;

#define KSV_OUTPUT_BINARY  0x1          /* client asked binary_data */
#define KSV_OUTPUT_SHM     0x2          /* in a shared memory region */

/*
 * class_count > 0: Triton's classification extension, the output comes
 * back as BYTES "score:index[:label]", the class_count best per batch
 * entry (the instance computes it: it has the labels).
 */
typedef struct {
    ksv_str_t        name;
    uint32_t         flags;
    uint32_t         class_count;
} ksv_output_req_t;

typedef enum {
    KSV_PARAM_BOOL = 1,
    KSV_PARAM_INT = 2,
    KSV_PARAM_STRING = 3,
    KSV_PARAM_DOUBLE = 4
} ksv_param_type_t;

typedef struct {
    ksv_str_t        key;
    uint8_t          type;              /* ksv_param_type_t */
    int64_t          i;                 /* BOOL (0/1) and INT */
    double           d;
    ksv_str_t        s;
} ksv_param_t;


/* ---- INFER / INFER_REPLY / ERROR ----------------------------------------- */

#define KSV_INFER_ALL_BINARY  0x1       /* binary_data_output: true */
#define KSV_INFER_TRACE       0x2       /* traced: the INFER_REPLY carries
                                           the instance's timestamps */

/*
 * A tensor in a client's system shared memory region (Triton's shared
 * memory extension), for an instance on nginx's host, which maps the
 * POSIX shm object itself: an input's bytes are read from key at
 * offset (its raw frame is then empty), an output's written there.
 * offset is from the start of the shm object (the region's own offset
 * already added); region is the client's name for it, for messages.
 */
#define KSV_SHM_INPUT   0
#define KSV_SHM_OUTPUT  1

/*
 * Whether key names a POSIX shared memory object as glibc's shm_open()
 * resolves it, under /dev/shm and nowhere else: leading '/'s, then 1 to
 * 255 bytes with no '/' and no NUL, neither "." nor "..".
 */
int ksv_shm_key_valid(const char *key, size_t len);

typedef struct {
    uint8_t          io;                /* KSV_SHM_INPUT / KSV_SHM_OUTPUT */
    uint32_t         index;             /* into inputs[] or outputs[] */
    ksv_str_t        region;
    ksv_str_t        key;               /* shm_open() name, "/..." */
    uint64_t         offset;
    uint64_t         byte_size;
} ksv_shm_ref_t;

/*
 * INFER: the header frame, then exactly ninputs raw frames, inputs[i]
 * described by inputs[i] (byte_size must equal the frame's size).
 * noutputs == 0 means "every output of the model".
 */
typedef struct {
    ksv_str_t          model_name;
    ksv_str_t          model_version;   /* empty: version policy decides */
    ksv_str_t          request_id;      /* the client's "id", echoed */
    uint32_t           timeout_ms;      /* budget left when sent, 0 none */
    uint32_t           flags;           /* KSV_INFER_* */
    uint32_t           ninputs;
    ksv_tensor_t      *inputs;
    uint32_t           noutputs;
    ksv_output_req_t  *outputs;
    uint32_t           nparams;
    ksv_param_t       *params;
    uint32_t           nshm;            /* tensors in shared memory */
    ksv_shm_ref_t     *shm;
} ksv_infer_t;

/*
 * A trailing section, present only when nshm > 0 (an INFER without it
 * is the same bytes as before it existed): u32 nshm, then per tensor
 * u8 io, u32 index, string region, string key, u64 offset, u64
 * byte_size.  An input named there travels as an empty frame; its
 * byte_size is the region's.  At most one entry per tensor.
 */

/*
 * Triton's trace timestamps of a traced request (KSV_INFER_TRACE), as the
 * instance takes them, CLOCK_MONOTONIC ns: arrival (queue_start), handed
 * to the backend (compute_start), the batch's compute_input and
 * compute_output measured from there (compute_input_end,
 * compute_output_start, compute_end), and the answer (request_end).
 */
#define KSV_TRACE_TIMES  6

typedef struct {
    uint64_t           queue_start;
    uint64_t           compute_start;
    uint64_t           compute_input_end;
    uint64_t           compute_output_start;
    uint64_t           compute_end;
    uint64_t           request_end;
} ksv_trace_times_t;

/*
 * INFER_REPLY: the header frame, then noutputs raw frames.  Two
 * trailing sections, each optional: when nshm > 0 or the request is
 * traced, u32 nshm, then u32 index per output that the instance wrote
 * to its shared memory region (that output's frame is empty and its
 * byte_size is what was written); then, for a traced request
 * (KSV_INFER_TRACE), u8 n (KSV_TRACE_TIMES) and n u64 timestamps in
 * ksv_trace_times_t's order (has_trace).  A header that ends after the
 * parameters has neither, so the two sides need not agree.
 */
typedef struct {
    ksv_str_t          model_name;
    ksv_str_t          model_version;
    ksv_str_t          request_id;
    uint32_t           noutputs;
    ksv_tensor_t      *outputs;
    uint32_t           nparams;
    ksv_param_t       *params;
    uint32_t           nshm;            /* outputs written to shared */
    uint32_t          *shm;             /* memory: their indexes */
    uint8_t            has_trace;
    ksv_trace_times_t  trace;
} ksv_infer_reply_t;

/* Appends the timestamps section to an encoded INFER_REPLY header that
 * ends with its shared memory section (u32 nshm, which may be 0). */
void ksv_put_trace_times(ksv_writer_t *w, const ksv_trace_times_t *t);

/* ERROR: the header frame only. */
typedef struct {
    uint16_t           code;            /* ksv_status_t */
    ksv_str_t          message;
} ksv_error_t;

void ksv_encode_infer(ksv_writer_t *w, uint64_t id, const ksv_infer_t *m);
void ksv_encode_infer_reply(ksv_writer_t *w, uint64_t id,
    const ksv_infer_reply_t *m);
void ksv_encode_error(ksv_writer_t *w, uint64_t id, ksv_status_t code,
    ksv_str_t message);

/* Body decoders: call after ksv_read_prefix on the same reader. */
int ksv_decode_infer(ksv_reader_t *r, ksv_alloc_t *a, ksv_infer_t *m);
int ksv_decode_infer_reply(ksv_reader_t *r, ksv_alloc_t *a,
    ksv_infer_reply_t *m);
int ksv_decode_error(ksv_reader_t *r, ksv_error_t *m);


/* ---- model configuration (config.pbtxt, shared shape) -------------------- */

typedef enum {
    KSV_KIND_AUTO = 0,                  /* Triton's InstanceGroup.Kind */
    KSV_KIND_GPU = 1,
    KSV_KIND_CPU = 2,
    KSV_KIND_MODEL = 3
} ksv_instance_kind_t;

typedef enum {
    KSV_VPOLICY_LATEST = 0,
    KSV_VPOLICY_ALL = 1,
    KSV_VPOLICY_SPECIFIC = 2
} ksv_version_policy_kind_t;

typedef enum {
    KSV_TIMEOUT_REJECT = 0,
    KSV_TIMEOUT_DELAY = 1
} ksv_timeout_action_t;

/* ModelInput.format, Triton's names in ksv_io_format_name() */
typedef enum {
    KSV_FORMAT_NONE = 0,
    KSV_FORMAT_NHWC = 1,
    KSV_FORMAT_NCHW = 2
} ksv_io_format_t;

typedef struct {
    ksv_str_t        name;
    uint8_t          datatype;
    uint8_t          ndims;
    uint8_t          optional;
    uint8_t          allow_ragged_batch;
    int64_t          dims[KSV_MAX_DIMS];
    uint8_t          has_reshape;
    uint8_t          reshape_ndims;
    int64_t          reshape[KSV_MAX_DIMS];
    uint8_t          format;            /* ksv_io_format_t (inputs) */
    ksv_str_t        label_filename;    /* outputs; "" none */
} ksv_io_config_t;

typedef struct {
    ksv_str_t        name;
    int32_t          count;
    uint8_t          kind;              /* ksv_instance_kind_t */
    uint32_t         ngpus;
    int32_t         *gpus;
} ksv_instance_group_t;

typedef struct {
    uint8_t          timeout_action;    /* ksv_timeout_action_t */
    uint8_t          allow_timeout_override;
    uint64_t         default_timeout_us;
    uint32_t         max_queue_size;    /* 0: unbounded (Triton) */
} ksv_queue_policy_t;

typedef struct {
    uint8_t             enabled;        /* dynamic_batching { } present */
    uint8_t             preserve_ordering;
    uint32_t            npreferred;
    int32_t            *preferred_batch_size;
    uint64_t            max_queue_delay_us;
    uint32_t            priority_levels;
    uint32_t            default_priority_level;
    ksv_queue_policy_t  default_queue_policy;
} ksv_dynamic_batching_t;

typedef struct {
    uint8_t          kind;              /* ksv_version_policy_kind_t */
    uint32_t         latest_num;        /* latest { num_versions } */
    uint32_t         nversions;         /* specific { versions } */
    int64_t         *versions;
} ksv_version_policy_t;

typedef struct {
    ksv_str_t        key;
    ksv_str_t        value;             /* parameters { value { string_value } } */
} ksv_kv_t;

/*
 * model_warmup (Triton's ModelWarmup): samples an instance runs through
 * its model before it says it is ready.  Read by the instances only:
 * not part of the wire encoding below.
 */
typedef enum {
    KSV_WARMUP_ZERO = 0,                /* zero_data */
    KSV_WARMUP_RANDOM = 1,              /* random_data */
    KSV_WARMUP_FILE = 2                 /* input_data_file */
} ksv_warmup_source_t;

typedef struct {
    ksv_io_config_t  tensor;            /* name (the inputs map's key),
                                           data_type, dims */
    uint8_t          source;            /* ksv_warmup_source_t */
    ksv_str_t        file;              /* <model dir>/warmup/<file> */
} ksv_warmup_input_t;

typedef struct {
    ksv_str_t            name;
    uint32_t             batch_size;    /* requests in the batch, >= 1 */
    uint32_t             count;         /* runs; 0 runs it once */
    uint32_t             ninputs;
    ksv_warmup_input_t  *inputs;
} ksv_warmup_t;

typedef struct {
    ksv_str_t               name;
    ksv_str_t               platform;
    ksv_str_t               backend;
    ksv_str_t               default_model_filename;
    int32_t                 max_batch_size;
    uint32_t                ninputs;
    ksv_io_config_t        *inputs;
    uint32_t                noutputs;
    ksv_io_config_t        *outputs;
    uint32_t                ngroups;
    ksv_instance_group_t   *groups;
    ksv_version_policy_t    version_policy;
    ksv_dynamic_batching_t  dynamic_batching;
    uint32_t                nparameters;
    ksv_kv_t               *parameters;
    uint32_t                nwarmup;    /* instances only (above) */
    ksv_warmup_t           *warmup;
} ksv_model_config_t;

void ksv_encode_model_config(ksv_writer_t *w, const ksv_model_config_t *c);
int ksv_decode_model_config(ksv_reader_t *r, ksv_alloc_t *a,
    ksv_model_config_t *c);


/* ---- INDEX / INDEX_REPLY --------------------------------------------------- */

typedef enum {
    KSV_VERSION_UNAVAILABLE = 0,        /* failed or not loaded */
    KSV_VERSION_LOADING = 1,
    KSV_VERSION_READY = 2,
    KSV_VERSION_DRAINING = 3            /* instances only: replaced or
                                           unloaded, finishing what it was
                                           sent; nothing new goes there */
} ksv_version_state_t;

/*
 * An instance process as nginx sees it: where it takes requests, and
 * whether it does.  An instance that died stays listed (state
 * UNAVAILABLE, reason "exited unexpectedly (signal 9)", "did not finish
 * a batch of 1 request(s) within ... killed as hung (signal 9)") until
 * its replacement is ready,
 * so an nginx worker can fail what it had in flight there with the
 * reason; the replacement has another pid and endpoint.
 */
typedef struct {
    ksv_str_t        name;              /* "<model>_<n>", n across groups */
    ksv_str_t        endpoint;          /* ipc://... or tcp://host:port */
    uint32_t         pid;
    uint8_t          state;             /* ksv_version_state_t */
    ksv_str_t        reason;            /* why not ready, "" when ready */
} ksv_instance_status_t;

typedef struct {
    int64_t                 version;
    uint8_t                 state;      /* ksv_version_state_t */
    ksv_str_t               reason;     /* why not ready, "" when ready */
    uint32_t                ninstances;
    ksv_instance_status_t  *instances;
} ksv_version_status_t;

typedef struct {
    ksv_model_config_t     config;
    uint32_t               nversions;
    ksv_version_status_t  *versions;    /* ascending version order */
} ksv_model_status_t;

/*
 * INDEX carries the generation the asker already holds.  INDEX_REPLY
 * always carries the worker's generation; it carries the models only
 * when that differs from the asker's ("full" = 1).  The generation
 * changes whenever any model's config or any version's state changes,
 * and starts from a random value so a restarted worker is noticed.
 */
typedef struct {
    uint64_t               generation;
    uint8_t                full;
    uint32_t               nmodels;
    ksv_model_status_t    *models;
} ksv_index_t;

void ksv_encode_index(ksv_writer_t *w, uint64_t id, uint64_t known);
int ksv_decode_index(ksv_reader_t *r, uint64_t *known);
void ksv_encode_index_reply(ksv_writer_t *w, uint64_t id,
    const ksv_index_t *m);
int ksv_decode_index_reply(ksv_reader_t *r, ksv_alloc_t *a, ksv_index_t *m);


/* ---- CANCEL (module -> instance) ----------------------------------------- */

/*
 * CANCEL: the header frame only; its id is that of an INFER the same
 * nginx worker sent.  A queued request is dropped unanswered; one whose
 * batch runs is marked (request.is_cancelled() says so); an unknown id
 * (already answered) is ignored.
 */
void ksv_encode_cancel(ksv_writer_t *w, uint64_t id);


/* ---- EXECUTE / EXECUTE_REPLY (scheduler <-> backend) / READY ------------ */

/*
 * EXECUTE: [EXECUTE header: u32 nrequests] then, per request, one INFER
 * header frame followed by its input frames.  The INFER frames' ids are
 * the scheduler's own request ids.
 * EXECUTE_REPLY: [EXECUTE_REPLY header: u32 nresponses, u64
 * compute_input_ns, u64 compute_infer_ns, u64 compute_output_ns] then,
 * per request in the same order, an INFER_REPLY frame with its output
 * frames, or an ERROR frame.
 *
 * The three durations are the instance's own measure of the whole batch
 * (Triton's compute_input / compute_infer / compute_output): building
 * the backend's request objects from the frames, running the model,
 * turning its responses into frames.  A reply that ends after
 * nresponses decodes with zero durations (an instance that does not
 * measure).
 */
typedef struct {
    uint64_t         compute_input_ns;
    uint64_t         compute_infer_ns;
    uint64_t         compute_output_ns;
} ksv_exec_times_t;

void ksv_encode_execute(ksv_writer_t *w, ksv_msg_kind_t kind,
    uint64_t batch_id, uint32_t count);
int ksv_decode_execute(ksv_reader_t *r, uint32_t *count);
void ksv_encode_execute_reply(ksv_writer_t *w, uint64_t batch_id,
    uint32_t count, const ksv_exec_times_t *t);
int ksv_decode_execute_reply(ksv_reader_t *r, uint32_t *count,
    ksv_exec_times_t *t);

/* READY: instance -> daemon after initialize() (ok = 0: failed, why),
 * with the endpoint the instance has bound for nginx. */
typedef struct {
    ksv_str_t        model_name;
    int64_t          version;
    uint32_t         instance;          /* index within the model */
    uint8_t          ok;
    ksv_str_t        message;
    ksv_str_t        endpoint;
} ksv_ready_t;

void ksv_encode_ready(ksv_writer_t *w, const ksv_ready_t *m);
int ksv_decode_ready(ksv_reader_t *r, ksv_ready_t *m);


/* ---- STATS / STATS_REPLY (Triton's statistics extension) -------------- */

/*
 * STATS: string model ("" = every model), string version ("" = every
 * version of it).  The worker answers STATS_REPLY, or ERROR NOT_FOUND
 * ("Request for unknown model: ...") for an unknown model or version.
 * With no model named, the reply lists the READY versions; with a model
 * named, every version of it whatever its state.
 *
 * The worker aggregates for every nginx worker and host, since the
 * counters must add up across them; the module only renders them
 * (GET /v2/models[/m[/versions/v]]/stats JSON and Prometheus /metrics).
 *
 * A {count, ns} pair is a number of events and their summed duration in
 * nanoseconds; both only grow while the worker runs (a restarted worker
 * starts from zero).
 */
typedef struct {
    uint64_t         count;
    uint64_t         ns;
} ksv_stat_duration_t;

/* One batch size's executions.  batch_size is the total of the batch:
 * rows (the sum of dim 0 over its requests) when max_batch_size > 0,
 * otherwise 1.  Each duration has count = executions of that size and
 * ns = their summed batch durations as the instance measured them. */
typedef struct {
    uint32_t             batch_size;
    ksv_stat_duration_t  compute_input;
    ksv_stat_duration_t  compute_infer;
    ksv_stat_duration_t  compute_output;
} ksv_batch_stats_t;

typedef struct {
    ksv_str_t            name;
    ksv_str_t            version;       /* decimal */

    /* when the last batch of this version finished, ms since the Unix
     * epoch (wall clock); 0 before the first one */
    uint64_t             last_inference;

    /* inferences executed: a batch adds its batch_size (rows), so one
     * request of shape [4, ...] counts 4 (Triton's inference_count) */
    uint64_t             inference_count;

    /* batches executed (calls of the model's execute()) */
    uint64_t             execution_count;

    /*
     * Per request (Triton's inference_stats).  count = requests,
     * ns = summed durations:
     *   success         requests answered with outputs; ns from their
     *                   arrival at the worker to their answer
     *   fail            requests answered with an error once they had
     *                   reached a model version (queue full, queue
     *                   timeout, model error, instance crash, ...); ns as
     *                   for success
     *   queue           successful requests' wait from arrival to being
     *                   handed to an instance
     *   compute_input   successful requests; each adds its batch's whole
     *   compute_infer   duration (as Triton does), so for a batch of 4
     *   compute_output  the count grows by 4 and ns by 4 x the duration
     */
    ksv_stat_duration_t  success;
    ksv_stat_duration_t  fail;
    ksv_stat_duration_t  queue;
    ksv_stat_duration_t  compute_input;
    ksv_stat_duration_t  compute_infer;
    ksv_stat_duration_t  compute_output;

    /* per batch size seen, ascending (at most KSV_MAX_LIST sizes) */
    uint32_t             nbatch;
    ksv_batch_stats_t   *batch;
} ksv_model_stats_t;

typedef struct {
    uint32_t             nmodels;       /* model versions */
    ksv_model_stats_t   *models;        /* by name, then version */
} ksv_stats_t;

void ksv_encode_stats(ksv_writer_t *w, uint64_t id, ksv_str_t model,
    ksv_str_t version);
int ksv_decode_stats(ksv_reader_t *r, ksv_str_t *model, ksv_str_t *version);
void ksv_encode_stats_reply(ksv_writer_t *w, uint64_t id,
    const ksv_stats_t *m);
int ksv_decode_stats_reply(ksv_reader_t *r, ksv_alloc_t *a, ksv_stats_t *m);


/* ---- REPOSITORY / REPOSITORY_REPLY (Triton's repository extension) ----- */

typedef enum {
    KSV_REPO_INDEX = 1,                 /* flags: KSV_REPO_READY_ONLY */
    KSV_REPO_LOAD = 2,                  /* a second frame: the HTTP body */
    KSV_REPO_UNLOAD = 3                 /* flags: KSV_REPO_DEPENDENTS */
} ksv_repo_action_t;

#define KSV_REPO_READY_ONLY   0x1
#define KSV_REPO_DEPENDENTS   0x1

/* the state of an index entry: a ksv_version_state_t, UNLOADING, or
 * none (a model of the repository that was never loaded: name only) */
#define KSV_REPO_UNLOADING    3
#define KSV_REPO_NAME_ONLY    255

/*
 * REPOSITORY: u8 action, u8 flags, string model ("" for INDEX), then
 * optionally one raw frame, the request body as the client sent it
 * ({"ready": true}; {"parameters": {"config": ..., "file:<path>":
 * <base64>}}; {"parameters": {"unload_dependents": true}}; a LOAD always
 * has it, possibly empty), which the worker parses.  The worker answers REPOSITORY_REPLY
 * (the index entries; none for load and unload) once a load has settled,
 * or ERROR with Triton's code and message.
 */
typedef struct {
    uint8_t          action;            /* ksv_repo_action_t */
    uint8_t          flags;
    ksv_str_t        model;
} ksv_repository_t;

typedef struct {
    ksv_str_t        name;
    int64_t          version;           /* -1: none */
    uint8_t          state;             /* see KSV_REPO_NAME_ONLY */
    ksv_str_t        reason;
} ksv_repo_entry_t;

typedef struct {
    uint32_t           nentries;
    ksv_repo_entry_t  *entries;
} ksv_repository_reply_t;

void ksv_encode_repository(ksv_writer_t *w, uint64_t id,
    const ksv_repository_t *m);
int ksv_decode_repository(ksv_reader_t *r, ksv_repository_t *m);
void ksv_encode_repository_reply(ksv_writer_t *w, uint64_t id,
    const ksv_repository_reply_t *m);
int ksv_decode_repository_reply(ksv_reader_t *r, ksv_alloc_t *a,
    ksv_repository_reply_t *m);

/* Triton's name of an entry state ("READY", ...); "" for NAME_ONLY. */
const char *ksv_repo_state_name(uint8_t state);


/* ---- shape helpers ----------------------------------------------------- */

/*
 * Product of dims into *count.  Returns -1 on a negative dim or on
 * overflow beyond limit (pass UINT64_MAX for "no limit").
 */
int ksv_shape_count(const int64_t *dims, uint32_t ndims, uint64_t limit,
    uint64_t *count);

#endif /* KSV_PROTO_H */
