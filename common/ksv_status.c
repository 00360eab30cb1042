/*
 * ngx_kserve: error codes and their HTTP statuses (see ksv_status.h).
 */

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
