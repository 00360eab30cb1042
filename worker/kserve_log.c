/*
 * kserve-worker: logging and time.
 */

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "kserve_log.h"


kserve_log_level_t  kserve_log_level = KSERVE_LOG_INFO;

static const char  *kserve_log_names[] = { "debug", "info", "warn", "error" };


void
kserve_log(kserve_log_level_t level, const char *fmt, ...)
{
    char            line[2048], ts[32];
    int             n;
    va_list         ap;
    struct tm       tm;
    struct timeval  tv;

    if (level < kserve_log_level) {
        return;
    }

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    n = snprintf(line, sizeof(line), "%s.%03d [%s] kserve-worker: ", ts,
                 (int) (tv.tv_usec / 1000), kserve_log_names[level]);

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
