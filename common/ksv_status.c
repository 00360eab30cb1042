/*
 * ngx_kserve: error codes and their HTTP statuses (see ksv_status.h).
 */

#include <stdio.h>

#include "ksv_status.h"


typedef struct {
    const char  *name;
    int          http;
} ksv_status_info_t;


/*
 * Triton's HTTP front end maps its error codes this way; clients such as
 * tritonclient raise on the status and read the "error" member.
 */
static const ksv_status_info_t  ksv_statuses[KSV_ERR_COUNT] = {
    { "UNKNOWN",        500 },
    { "INTERNAL",       500 },
    { "NOT_FOUND",      404 },
    { "INVALID_ARG",    400 },
    { "UNAVAILABLE",    503 },
    { "UNSUPPORTED",    501 },
    { "ALREADY_EXISTS", 409 },
    { "CANCELLED",      499 },
};


int
ksv_status_http(ksv_status_t code)
{
    return (unsigned) code < KSV_ERR_COUNT ? ksv_statuses[code].http : 500;
}


const char *
ksv_status_name(ksv_status_t code)
{
    return (unsigned) code < KSV_ERR_COUNT ? ksv_statuses[code].name
                                           : "UNKNOWN";
}


size_t
ksv_unknown_model(char *buf, size_t size, const char *model, size_t mlen,
    const char *version, size_t vlen)
{
    int  n;

    if (mlen > KSV_UNKNOWN_NAME_MAX) {
        mlen = KSV_UNKNOWN_NAME_MAX;
    }

    if (vlen > KSV_UNKNOWN_NAME_MAX) {
        vlen = KSV_UNKNOWN_NAME_MAX;
    }

    if (vlen == 0) {
        n = snprintf(buf, size, "Request for unknown model: '%.*s' is not "
                     "found", (int) mlen, model);

    } else {
        n = snprintf(buf, size, "Request for unknown model: '%.*s' version "
                     "%.*s is not found", (int) mlen, model, (int) vlen,
                     version);
    }

    if (n < 0 || size == 0) {
        return 0;
    }

    return (size_t) n < size ? (size_t) n : size - 1;
}
