/*
 * ngx_kserve: error codes and their HTTP statuses.
 *
 * The codes are Triton's TRITONSERVER_Error_Code values, which are also
 * what triton_python_backend_utils.TritonError exposes to models, so a
 * model's error code crosses every hop unchanged.
 */

#ifndef KSV_STATUS_H
#define KSV_STATUS_H

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

#endif /* KSV_STATUS_H */
