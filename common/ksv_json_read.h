/*
 * ngx_kserve: a small JSON reader, for the worker's repository extension.
 *
 * Two things arrive as JSON from clients and only the worker reads them:
 * the body of POST /v2/repository/models/{m}/load ({"parameters":
 * {"config": "<ModelConfig JSON>", "file:<path>": "<base64>"}}) and the
 * model configuration a load may carry instead of config.pbtxt.  The
 * module forwards the body untouched (common/ksv_proto.h, REPOSITORY).
 *
 * ksv_json_parse builds a tree in an arena; ksv_json_to_pbtxt
 * writes a ModelConfig tree as protobuf text, so the override goes
 * through the same parser (common/ksv_pbtxt.c) as every config.pbtxt
 * and the instances read it as they read any model's.  The JSON mapping
 * of protobuf is followed: enums as strings ("TYPE_FP32"), 64-bit
 * integers as numbers or strings ("16"), maps as objects ("parameters":
 * {"KEY": {"string_value": "..."}}).
 *
 * Everything is bounded: nesting (KSV_JSON_MAX_DEPTH), and the input
 * itself (the module caps the body).  Malformed input is an error with
 * the byte offset, never a crash (tests/fuzz/fuzz_load_request.c).
 */

#ifndef KSV_JSON_READ_H
#define KSV_JSON_READ_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


#define KSV_JSON_MAX_DEPTH  64

typedef enum {
    KSV_JSON_NULL = 0,
    KSV_JSON_FALSE,
    KSV_JSON_TRUE,
    KSV_JSON_NUMBER,         /* text: the number as written */
    KSV_JSON_STRING,         /* text: unescaped, UTF-8, NUL-ended */
    KSV_JSON_ARRAY,
    KSV_JSON_OBJECT
} ksv_jtype_t;

typedef struct ksv_jnode_s  ksv_jnode_t;

struct ksv_jnode_s {
    ksv_jtype_t   type;
    const char          *key;       /* a member's name; NULL otherwise */
    size_t               keylen;
    const char          *text;      /* NUMBER and STRING */
    size_t               len;
    ksv_jnode_t       *child;     /* ARRAY and OBJECT: first element */
    ksv_jnode_t       *next;      /* the next sibling */
};


/* Parses text[0..len) (one value, whitespace around it).  Returns 0, or
 * -1 with "offset N: message" in err. */
int ksv_json_parse(const char *text, size_t len, ksv_arena_t *arena,
    ksv_jnode_t **out, char *err, size_t errlen);

/* The member named key of an object, or NULL. */
ksv_jnode_t *ksv_json_get(const ksv_jnode_t *obj, const char *key);

/* Writes a ModelConfig object as protobuf text.  Returns 0, or -1 with
 * why in err (not an object). */
int ksv_json_to_pbtxt(const ksv_jnode_t *obj, ksv_writer_t *w,
    char *err, size_t errlen);

/* Decodes standard base64 (padding optional, no whitespace) into out,
 * which has room for len * 3 / 4 + 3 bytes.  Returns the decoded length,
 * or -1 on a character outside the alphabet. */
long ksv_base64_decode(const char *in, size_t len, uint8_t *out);

#endif /* KSV_JSON_READ_H */
