/*
 * libFuzzer target for ngx_module/ksv_adaptive.c's ksv_adapt_parse():
 * the window counts another nginx node published to Redis
 * (kserve:adaptive:NAME), which any Redis client could have written.
 *
 * A parse either fails or yields at most max variants, each named by a
 * non-empty run of bytes inside the input without spaces or newlines;
 * what it yields formats back to exactly the input (the format is
 * canonical), and the counts, summed and fed to a derivation, give
 * shares that sum to 1 and respect the floor.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_adaptive.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)

#define MAX  8


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   n, i;
    char                 *buf;
    double                sum;
    size_t                len;
    uint64_t              ts, rng;
    ksv_adapt_conf_t      conf = { 0.05, 0.1, 0.02, 50 };
    ksv_adapt_named_t     v[MAX];
    ksv_adapt_variant_t   av[MAX];

    n = ksv_adapt_parse((const char *) data, size, &ts, v, MAX);

    FUZZ_CHECK(n >= -1 && n <= MAX);

    if (n < 0) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        FUZZ_CHECK(v[i].len > 0);
        FUZZ_CHECK(v[i].name >= (const char *) data
                   && v[i].name + v[i].len <= (const char *) data + size);
        FUZZ_CHECK(memchr(v[i].name, ' ', v[i].len) == NULL);
        FUZZ_CHECK(memchr(v[i].name, '\n', v[i].len) == NULL);
    }

    /* canonical: formatting what was parsed gives the input back */

    buf = malloc(size + 1);
    FUZZ_CHECK(buf != NULL);
    len = ksv_adapt_format(buf, size + 1, ts, v, (size_t) n);
    FUZZ_CHECK(len == size && memcmp(buf, data, size) == 0);
    free(buf);

    /* any counts give a sane derivation */

    memset(av, 0, sizeof(av));

    for (i = 0; i < n; i++) {
        av[i].window = v[i].counts;
        av[i].prior = (uint32_t) (v[i].counts.latency_us % 3);
        av[i].usable = 1;
    }

    ksv_adapt_start(&conf, av, (size_t) n);
    rng = ts;

    if (ksv_adapt_derive(&conf, av, (size_t) n, &rng) == 0) {
        return 0;
    }

    sum = 0.0;

    for (i = 0; i < n; i++) {
        FUZZ_CHECK(av[i].share >= 0.0 && av[i].share <= 1.0);
        /* at most 8 variants: the 5 % floor always fits */
        FUZZ_CHECK(av[i].prior == 0 ? av[i].share == 0.0
                                    : av[i].share >= 0.05 - 1e-9);
        sum += av[i].share;
    }

    FUZZ_CHECK(fabs(sum - 1.0) < 1e-6);

    return 0;
}
