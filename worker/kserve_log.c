/*
 * kserve-worker: logging and time.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "kserve_log.h"


kserve_log_level_t  kserve_log_level = KSERVE_LOG_INFO;

static const char  *kserve_log_names[] = { "debug", "info", "warn", "error" };
static const char   kserve_log_letters[] = "DIWE";

static ksv_log_settings_t   kserve_log_set = { 1, 1, 1, 0, 0 };
static ksv_log_page_t      *kserve_log_page;
static kserve_log_level_t   kserve_log_base = KSERVE_LOG_INFO;


void
kserve_log(kserve_log_level_t level, const char *fmt, ...)
{
    char            line[2048], ts[32];
    int             n;
    va_list         ap;
    struct tm       tm;
    struct timeval  tv;

    if (level < kserve_log_level
        || (level == KSERVE_LOG_INFO && !kserve_log_set.info)
        || (level == KSERVE_LOG_WARN && !kserve_log_set.warning)
        || (level == KSERVE_LOG_ERROR && !kserve_log_set.error))
    {
        return;
    }

    gettimeofday(&tv, NULL);

    if (kserve_log_set.format == KSV_LOG_FORMAT_ISO8601) {
        gmtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        n = snprintf(line, sizeof(line), "%s %c kserve-worker: ", ts,
                     kserve_log_letters[level]);

    } else {
        localtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%03d [%s] kserve-worker: ", ts,
                     (int) (tv.tv_usec / 1000), kserve_log_names[level]);
    }

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);

    /* one write per line keeps lines whole when instances log too */
    fprintf(stderr, "%s\n", line);
}


int64_t
kserve_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int
kserve_log_page_open(const char *run_dir)
{
    char                 path[4200];
    ksv_log_settings_t   s;

    kserve_log_base = kserve_log_level;     /* --verbose, if given */

    snprintf(path, sizeof(path), "%s/" KSV_LOG_PAGE_FILE, run_dir);
    kserve_log_page = ksv_log_page_map(path, 1);

    if (kserve_log_page == NULL) {
        kserve_error("cannot map %s: %s", path, strerror(errno));
        return -1;
    }

    ksv_log_page_read(kserve_log_page, &s);
    kserve_log_apply(&s);

    return 0;
}


void
kserve_log_apply(const ksv_log_settings_t *s)
{
    kserve_log_set = *s;
    kserve_log_level = (s->verbose > 0) ? KSERVE_LOG_DEBUG : kserve_log_base;

    if (kserve_log_page != NULL) {
        ksv_log_page_write(kserve_log_page, s);
    }
}


void
kserve_log_settings(ksv_log_settings_t *s)
{
    *s = kserve_log_set;
}


void
kserve_log_page_close(const char *run_dir, int remove)
{
    char  path[4200];

    ksv_log_page_unmap(kserve_log_page);
    kserve_log_page = NULL;

    if (remove) {
        snprintf(path, sizeof(path), "%s/" KSV_LOG_PAGE_FILE, run_dir);
        unlink(path);
    }
}
