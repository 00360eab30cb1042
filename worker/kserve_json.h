/*
 * kserve-worker: a small JSON reader for the repository extension.
 *
 * Two things arrive as JSON from clients and only the worker reads them:
 * the body of POST /v2/repository/models/{m}/load ({"parameters":
 * {"config": "<ModelConfig JSON>", "file:<path>": "<base64>"}}) and the
 * model configuration a load may carry instead of config.pbtxt.  The
 * module forwards the body untouched (common/ksv_proto.h, REPOSITORY).
 *
 * kserve_json_parse builds a tree in an arena; kserve_json_to_pbtxt
 * writes a ModelConfig tree as protobuf text, so the override goes
 * through the same parser (common/ksv_pbtxt.c) as every config.pbtxt
 * and the instances read it as they read any model's.  The JSON mapping
 * of protobuf is followed: enums as strings ("TYPE_FP32"), 64-bit
 * integers as numbers or strings ("16"), maps as objects ("parameters":
 * {"KEY": {"string_value": "..."}}).
 *
 * Everything is bounded: nesting (KSERVE_JSON_MAX_DEPTH), and the input
 * itself (the module caps the body).  Malformed input is an error with
 * the byte offset, never a crash (tests/fuzz/fuzz_load_request.c).
 */

#ifndef KSERVE_JSON_H
#define KSERVE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


#define KSERVE_JSON_MAX_DEPTH  64

typedef enum {
    KSERVE_JSON_NULL = 0,
    KSERVE_JSON_FALSE,
    KSERVE_JSON_TRUE,
    KSERVE_JSON_NUMBER,         /* text: the number as written */
    KSERVE_JSON_STRING,         /* text: unescaped, UTF-8, NUL-ended */
    KSERVE_JSON_ARRAY,
    KSERVE_JSON_OBJECT
} kserve_json_type_t;

typedef struct kserve_json_s  kserve_json_t;

struct kserve_json_s {
    kserve_json_type_t   type;
    const char          *key;       /* a member's name; NULL otherwise */
    size_t               keylen;
    const char          *text;      /* NUMBER and STRING */
    size_t               len;
    kserve_json_t       *child;     /* ARRAY and OBJECT: first element */
    kserve_json_t       *next;      /* the next sibling */
};


/* Parses text[0..len) (one value, whitespace around it).  Returns 0, or
 * -1 with "offset N: message" in err. */
int kserve_json_parse(const char *text, size_t len, ksv_arena_t *arena,
    kserve_json_t **out, char *err, size_t errlen);

/* The member named key of an object, or NULL. */
kserve_json_t *kserve_json_get(const kserve_json_t *obj, const char *key);

/* Writes a ModelConfig object as protobuf text.  Returns 0, or -1 with
 * why in err (not an object). */
int kserve_json_to_pbtxt(const kserve_json_t *obj, ksv_writer_t *w,
    char *err, size_t errlen);

/* Decodes standard base64 (padding optional, no whitespace) into out,
 * which has room for len * 3 / 4 + 3 bytes.  Returns the decoded length,
 * or -1 on a character outside the alphabet. */
long kserve_base64_decode(const char *in, size_t len, uint8_t *out);

#endif /* KSERVE_JSON_H */
