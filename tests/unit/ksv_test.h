/*
 * ngx_kserve: the smallest test harness that reads well.
 *
 * CHECK(cond) counts a pass or prints the failing line; KSV_TEST_END
 * prints "N passed, N failed" and turns failures into the exit code.
 */

#ifndef KSV_TEST_H
#define KSV_TEST_H

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

#endif /* KSV_TEST_H */
