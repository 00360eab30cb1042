/*
 * ngx_kserve: Triton's logging extension, the nginx-free part: a POST
 * body read into settings, and the settings JSON Triton answers.
 *
 * A POST names only what it changes; null changes nothing; what Triton
 * does not know is ignored; log_file may not be set.  All settings are
 * checked before any is applied.
 */

#ifndef KSV_LOGGING_H
#define KSV_LOGGING_H

#include <stddef.h>

#include "ksv_logset.h"
#include "ksv_proto.h"


/*
 * Applies body (JSON, len 0: nothing) to *s.  Returns 0, or -1 with the
 * reason in err, *status its HTTP status (Triton's: 400 for a value of
 * the wrong type, 501 for log_file, 503 for an unknown log_format), and
 * *s unchanged.
 */
int ksv_logging_update(ksv_log_settings_t *s, const void *body, size_t len,
    char *err, size_t err_size, int *status);

/* {"log_file":"","log_info":true,...,"log_format":"default"} */
void ksv_logging_json(ksv_writer_t *w, const ksv_log_settings_t *s);

#endif /* KSV_LOGGING_H */
