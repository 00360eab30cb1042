/*
 * ngx_kserve: Triton's logging extension, the nginx-free part
 * (ksv_logging.h).
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ksv_json_write.h"
#include "ksv_logging.h"


int
ksv_logging_update(ksv_log_settings_t *s, const void *body, size_t len,
    char *err, size_t err_size, int *status)
{
    json_t              *root, *v;
    json_int_t           n;
    const char          *key, *fmt;
    json_error_t         jerr;
    ksv_log_settings_t   next;

    *status = 400;

    if (len == 0) {
        return 0;                   /* an empty body changes nothing */
    }

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, err_size, "failed to parse the request JSON buffer: "
                 "%s", jerr.text);
        return -1;
    }

    if (!json_is_object(root)) {
        snprintf(err, err_size, "the dynamic logging request must be a "
                 "JSON object");
        goto failed;
    }

    next = *s;

    json_object_foreach(root, key, v) {

        if (json_is_null(v)) {
            continue;
        }

        if (strcmp(key, "log_file") == 0) {
            *status = 501;
            snprintf(err, err_size, "log file location can not be updated "
                     "through network protocol");
            goto failed;
        }

        if (strcmp(key, "log_info") == 0 || strcmp(key, "log_warning") == 0
            || strcmp(key, "log_error") == 0)
        {
            if (!json_is_boolean(v)) {
                snprintf(err, err_size, "unable to parse '%s': expected a "
                         "boolean", key);
                goto failed;
            }

            if (key[4] == 'i') {
                next.info = json_is_true(v);

            } else if (key[4] == 'w') {
                next.warning = json_is_true(v);

            } else {
                next.error = json_is_true(v);
            }

            continue;
        }

        if (strcmp(key, "log_verbose_level") == 0) {
            n = json_is_integer(v) ? json_integer_value(v) : -1;

            if (n < 0 || n > INT32_MAX) {
                snprintf(err, err_size, "unable to parse "
                         "'log_verbose_level': expected an integer >= 0");
                goto failed;
            }

            next.verbose = (uint32_t) n;
            continue;
        }

        if (strcmp(key, "log_format") == 0) {
            fmt = json_is_string(v) ? json_string_value(v) : NULL;

            if (fmt != NULL && strcmp(fmt, "default") == 0) {
                next.format = KSV_LOG_FORMAT_DEFAULT;

            } else if (fmt != NULL && strcmp(fmt, "ISO8601") == 0) {
                next.format = KSV_LOG_FORMAT_ISO8601;

            } else {
                *status = 503;
                snprintf(err, err_size, "invalid argument for --log_format, "
                         "got: %.128s",
                         fmt ? fmt : "a value that is not a string");
                goto failed;
            }

            continue;
        }

        /* Triton ignores what it does not know */
    }

    json_decref(root);
    *s = next;

    return 0;

failed:

    json_decref(root);

    return -1;
}


static void
ksv_logging_bool(ksv_writer_t *w, int v)
{
    if (v) {
        ksv_json_lit(w, "true");

    } else {
        ksv_json_lit(w, "false");
    }
}


void
ksv_logging_json(ksv_writer_t *w, const ksv_log_settings_t *s)
{
    ksv_json_lit(w, "{\"log_file\":\"\",\"log_info\":");
    ksv_logging_bool(w, s->info);
    ksv_json_lit(w, ",\"log_warning\":");
    ksv_logging_bool(w, s->warning);
    ksv_json_lit(w, ",\"log_error\":");
    ksv_logging_bool(w, s->error);
    ksv_json_lit(w, ",\"log_verbose_level\":");
    ksv_json_u64(w, s->verbose);
    ksv_json_lit(w, ",\"log_format\":");
    ksv_json_cstr(w, ksv_log_format_name(s->format));
    ksv_put_u8(w, '}');
}
