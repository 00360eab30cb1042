/*
 * ngx_kserve: log settings (Triton's logging extension), one definition
 * for the module, kserve-worker and the instances.
 *
 *   POST /v2/logging  nginx worker --LOG--> kserve-worker --LOG_REPLY-->
 *                     the worker applies them to its own log and writes
 *                     them to a page (a file in its run directory that
 *                     the instances map, read-only); an instance reads
 *                     the page each time it logs, so a change reaches
 *                     every instance at once, busy or not, without a
 *                     message of its own.
 *
 * Why a page for the instances: an instance's only control channel is
 * READY (instance -> worker), and a model that runs cannot be asked to
 * read a socket; four words in shared memory are read by any thread,
 * C or Python, at the moment it logs.  The page outlives the worker, so
 * a restarted worker (and the instances it adopts) keeps the settings.
 *
 * LOG and LOG_REPLY carry the settings:  u8 info  u8 warning  u8 error
 * u8 format  u32 verbose.  LOG asks to apply them, LOG_REPLY tells what
 * the worker has after applying them (or ERROR).
 *
 * The page is KSV_LOG_PAGE_WORDS little-endian u32 words:  magic, size
 * (in bytes), generation (moves on every write), info, warning, error,
 * verbose, format; tritonclient-visible meaning as in Triton.
 */

#ifndef KSV_LOGSET_H
#define KSV_LOGSET_H

#include <stdint.h>

#include "ksv_proto.h"


#define KSV_LOG_FORMAT_DEFAULT   0
#define KSV_LOG_FORMAT_ISO8601   1

#define KSV_LOG_PAGE_MAGIC       0x474c534bu    /* "KSLG" */
#define KSV_LOG_PAGE_WORDS       8
#define KSV_LOG_PAGE_FILE        "log.settings" /* in the run directory */
#define KSV_LOG_PAGE_ENV         "KSV_LOG_SETTINGS"  /* its path, for the
                                                    Python backend */

typedef struct {
    uint8_t          info;
    uint8_t          warning;
    uint8_t          error;
    uint8_t          format;            /* KSV_LOG_FORMAT_* */
    uint32_t         verbose;           /* 0: none */
} ksv_log_settings_t;

/* Triton's defaults: info, warning and error on, verbose 0, "default". */
void ksv_log_settings_default(ksv_log_settings_t *s);

/* "default" or "ISO8601" */
const char *ksv_log_format_name(uint8_t format);

void ksv_encode_log(ksv_writer_t *w, ksv_msg_kind_t kind, uint64_t id,
    const ksv_log_settings_t *s);
int ksv_decode_log(ksv_reader_t *r, ksv_log_settings_t *s);


typedef struct {
    uint32_t         magic;
    uint32_t         size;
    uint32_t         generation;
    uint32_t         info;
    uint32_t         warning;
    uint32_t         error;
    uint32_t         verbose;
    uint32_t         format;
} ksv_log_page_t;

/*
 * Maps the page at path.  create = 1 (the worker): made when missing or
 * not a page, kept (with its settings) when valid; writable.  create = 0
 * (an instance): an existing page, read-only.  NULL with errno on
 * failure.
 */
ksv_log_page_t *ksv_log_page_map(const char *path, int create);
void ksv_log_page_unmap(ksv_log_page_t *p);

void ksv_log_page_write(ksv_log_page_t *p, const ksv_log_settings_t *s);
void ksv_log_page_read(const ksv_log_page_t *p, ksv_log_settings_t *s);

#endif /* KSV_LOGSET_H */
