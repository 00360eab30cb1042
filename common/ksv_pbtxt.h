/*
 * ngx_kserve: Triton config.pbtxt (protobuf text format) parser.
 *
 * Reads the subset of Triton's ModelConfig that the gateway uses into
 * ksv_model_config_t.  Both the worker daemon (repository scan) and the
 * Python instance process (args['model_config']) parse the same file with
 * this code, so they can never disagree about a model.
 *
 * Text-format syntax accepted:
 *   field: value          scalars: integers, quoted strings (with C
 *                         escapes; adjacent strings concatenate), enum
 *                         identifiers, true/false
 *   field { ... }         messages; "field: { ... }" and "< ... >" too
 *   field: [a, b]         lists of scalars; repetition also appends
 *   field [ {..}, {..} ]  lists of messages
 *   # comment             to the end of the line
 *   separators            optional ',' or ';' after any field
 *
 * Unknown fields (Triton has many we do not use: optimization,
 * sequence_batching, ...) are skipped whatever their
 * nesting, with one warning each through the callback.  Malformed text
 * is an error "file:line:col: message".  Everything is bounded: nesting
 * depth (KSV_PBTXT_MAX_DEPTH), list lengths (KSV_MAX_LIST), dims
 * (KSV_MAX_DIMS), tensors (KSV_MAX_TENSORS), parameters (KSV_MAX_PARAMS).
 *
 * All memory, strings included (NUL-terminated copies), comes from the
 * arena; the text may be freed after parsing.
 */

#ifndef KSV_PBTXT_H
#define KSV_PBTXT_H

#include <stddef.h>

#include "ksv_proto.h"


#define KSV_PBTXT_MAX_DEPTH  32


typedef void (*ksv_pbtxt_warn_pt)(void *ctx, const char *msg);

/*
 * Parses text[0..len) into *out (zeroed first).  Returns 0, or -1 with
 * "filename:line:col: message" in err.  warn may be NULL.  *out holds
 * exactly what the file says: call ksv_pbtxt_defaults() for the values a
 * server fills in.
 */
int ksv_pbtxt_parse(const char *text, size_t len, const char *filename,
    ksv_arena_t *arena, ksv_model_config_t *out, char *err, size_t errlen,
    ksv_pbtxt_warn_pt warn, void *warn_ctx);

/*
 * Fills the defaults Triton (python backend) applies and checks what a
 * server must refuse:
 *   - name missing: model_name (the model's directory name);
 *   - no instance_group: one group KIND_CPU count 1; a group without a
 *     name is "<model>_<index>"; KIND_AUTO becomes KIND_GPU when the
 *     group lists gpus, KIND_CPU otherwise (no GPU discovery here);
 *   - version_policy latest without num_versions: 1;
 *   - default_model_filename missing: "model.py".
 * Returns 0, or -1 with a message in err (count < 1, a name that differs
 * from the directory name, an input or output without a name or a
 * data_type; dims below -1 are refused by the parser already).
 */
int ksv_pbtxt_defaults(ksv_model_config_t *c, const char *model_name,
    ksv_arena_t *arena, char *err, size_t errlen);

#endif /* KSV_PBTXT_H */
