/*
 * ngx_kserve: KServe v2 inference replies as JSON (nginx-free, so it can
 * be unit-tested and fuzzed on its own).
 *
 * The INFER_REPLY the instance sends and its output frames become
 * Triton's JSON answer, or with the binary tensor extension the JSON
 * header that the frames follow.
 */

#ifndef KSV_INFER_REPLY_H
#define KSV_INFER_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "ksv_proto.h"


/*
 * Renders m and its output frames as {"model_name","model_version",
 * "id"?,"parameters"?,"outputs":[{"name","datatype","shape",...}]}.
 * An output with binary[i] set gets "parameters":{"binary_data_size":N}
 * instead of "data" (its bytes, the frame as it is, follow the JSON in
 * the HTTP body, in the order of the outputs); the others "data":[...],
 * always flat.  binary may be NULL (all JSON).  Returns -1 with err
 * filled when the reply does not describe its frames (wrong count,
 * sizes, malformed BYTES); w then holds garbage.
 */
/* binary[i]: how output i is answered */
#define KSV_REPLY_JSON    0             /* "data" */
#define KSV_REPLY_BINARY  1             /* its frame after the JSON */
#define KSV_REPLY_SHM     2             /* in the client's shared memory
                                           region: neither (Triton's) */

int ksv_infer_reply_header(ksv_writer_t *w, const ksv_infer_reply_t *m,
    const void *const *frames, const size_t *sizes, uint32_t nframes,
    const uint8_t *binary, char *err, size_t errlen);

#endif /* KSV_INFER_REPLY_H */
