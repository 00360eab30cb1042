/*
 * ngx_kserve: error codes and their HTTP statuses.
 *
 * The codes are Triton's TRITONSERVER_Error_Code values, which are also
 * what triton_python_backend_utils.TritonError exposes to models, so a
 * model's error code crosses every hop unchanged.
 */

#ifndef KSV_STATUS_H
#define KSV_STATUS_H

#include <stddef.h>
#include <stdint.h>


typedef enum {
    KSV_ERR_UNKNOWN = 0,
    KSV_ERR_INTERNAL = 1,
    KSV_ERR_NOT_FOUND = 2,
    KSV_ERR_INVALID_ARG = 3,
    KSV_ERR_UNAVAILABLE = 4,
    KSV_ERR_UNSUPPORTED = 5,
    KSV_ERR_ALREADY_EXISTS = 6,
    KSV_ERR_CANCELLED = 7,
    KSV_ERR_COUNT
} ksv_status_t;


/* Triton's HTTP mapping: INVALID_ARG 400, NOT_FOUND 404, ... */
int ksv_status_http(ksv_status_t code);

/* "INVALID_ARG" etc., for logs. */
const char *ksv_status_name(ksv_status_t code);

/*
 * Triton's NOT_FOUND text for a model that is not there, written once
 * for every endpoint that names a model: "Request for unknown model:
 * 'm' is not found", or with a version (vlen > 0) "Request for unknown
 * model: 'm' version v is not found".  The names are cut at
 * KSV_UNKNOWN_NAME_MAX bytes, so a buffer of KSV_UNKNOWN_MODEL_LEN holds
 * the whole text.  Returns the length written, the NUL not counted.
 */
#define KSV_UNKNOWN_NAME_MAX   256
#define KSV_UNKNOWN_MODEL_LEN  (64 + 2 * KSV_UNKNOWN_NAME_MAX)

size_t ksv_unknown_model(char *buf, size_t size, const char *model,
    size_t mlen, const char *version, size_t vlen);

#endif /* KSV_STATUS_H */
