/*
 * kserve-worker: logging and time.
 *
 * One line per event on stderr: "2024-11-21T20:30:00.123 [info] text".
 * stderr is what systemd, docker and `make run` all collect, and the
 * instance processes inherit it, so their Python tracebacks interleave
 * with the daemon's lines in one place.
 */

#ifndef KSERVE_LOG_H
#define KSERVE_LOG_H

#include <stdint.h>

#include "ksv_logset.h"


typedef enum {
    KSERVE_LOG_DEBUG = 0,
    KSERVE_LOG_INFO,
    KSERVE_LOG_WARN,
    KSERVE_LOG_ERROR
} kserve_log_level_t;

extern kserve_log_level_t  kserve_log_level;

void kserve_log(kserve_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define kserve_debug(...)                                                   \
    do {                                                                    \
        if (kserve_log_level <= KSERVE_LOG_DEBUG) {                         \
            kserve_log(KSERVE_LOG_DEBUG, __VA_ARGS__);                      \
        }                                                                   \
    } while (0)

#define kserve_info(...)   kserve_log(KSERVE_LOG_INFO, __VA_ARGS__)
#define kserve_warn(...)   kserve_log(KSERVE_LOG_WARN, __VA_ARGS__)
#define kserve_error(...)  kserve_log(KSERVE_LOG_ERROR, __VA_ARGS__)

/*
 * Triton's logging extension, live: the settings kserve-worker logs by
 * (info, warning, error each on or off; debug lines when verbose >= 1;
 * "default" lines as above, "ISO8601": "2024-11-21T20:30:00Z I text")
 * and the page its instances read them from (common/ksv_logset.h).
 * kserve_log_page_open() maps <run_dir>/log.settings, keeping what a
 * previous worker left there, and logs by it; kserve_log_apply() changes
 * both; kserve_log_page_close(1) removes the page (the last worker of
 * the run directory).
 */
int kserve_log_page_open(const char *run_dir);
void kserve_log_apply(const ksv_log_settings_t *s);
void kserve_log_settings(ksv_log_settings_t *s);
void kserve_log_page_close(const char *run_dir, int remove);

/* Monotonic milliseconds: deadlines and backoff never follow the wall
 * clock when an operator (or NTP) moves it. */
int64_t kserve_now_ms(void);

#endif /* KSERVE_LOG_H */
