/*
 * ngx_kserve: the smallest test harness that reads well.
 *
 * CHECK(cond) counts a pass or prints the failing line; KSV_TEST_END
 * prints "N passed, N failed" and turns failures into the exit code.
 */

#ifndef KSV_TEST_H
#define KSV_TEST_H

#include <stdint.h>
#include <stdio.h>

static int  ksv_test_passed;
static int  ksv_test_failed;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) {                                                          \
            ksv_test_passed++;                                               \
        } else {                                                             \
            ksv_test_failed++;                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n",                     \
                    __FILE__, __LINE__, #cond);                              \
        }                                                                    \
    } while (0)

#define KSV_TEST_END()                                                       \
    do {                                                                     \
        printf("%d passed, %d failed\n", ksv_test_passed, ksv_test_failed);  \
        return ksv_test_failed ? 1 : 0;                                      \
    } while (0)

/* A small deterministic generator (xorshift), so a failure reproduces;
 * each test binary has its own sequence. */
static inline uint32_t
rnd32(void)
{
    static uint64_t  s = 0x9e3779b97f4a7c15ULL;

    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;

    return (uint32_t) (s >> 32);
}

#endif /* KSV_TEST_H */
