/*
 * Triton's classification extension as the instance computes it
 * (backends/common/ksv_classify.c): the k best per batch entry, best
 * first, "value:index[:label]" in BYTES' length-prefixed layout.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ksv_classify.h"
#include "ksv_datatype.h"
#include "ksv_test.h"


/* the i-th string of a serialized BYTES tensor, NUL-terminated in buf */
static const char *
nth(const ksv_writer_t *w, uint32_t i, char *buf, size_t len)
{
    size_t    pos = 0;
    uint32_t  n = 0, l;

    while (pos + 4 <= w->len) {
        memcpy(&l, w->buf + pos, 4);
        if (n++ == i) {
            snprintf(buf, len, "%.*s", (int) l, (const char *) w->buf + pos + 4);
            return buf;
        }
        pos += 4 + l;
    }
    return "";
}


static ksv_tensor_t
tensor(uint8_t dt, size_t bytes, int64_t d0, int64_t d1)
{
    ksv_tensor_t  t;

    memset(&t, 0, sizeof(t));
    t.name = ksv_str_c("OUT");
    t.datatype = dt;
    t.byte_size = bytes;
    t.dims[0] = d0;
    t.dims[1] = d1;
    t.ndims = d1 > 0 ? 2 : 1;
    return t;
}


static void
test_fp32_top_k_unbatched(void)
{
    char          err[256], s[64];
    float         v[5] = { 0.1f, 0.7f, 0.05f, 0.9f, 0.15f };
    ksv_tensor_t  t, res;
    ksv_writer_t  w;

    t = tensor(KSV_TYPE_FP32, sizeof(v), 5, 0);
    ksv_writer_init(&w);
    CHECK(ksv_classify(&t, v, 3, 0, NULL, &w, &res, err, sizeof(err)) == 0);
    CHECK(res.datatype == KSV_TYPE_BYTES);
    CHECK(res.ndims == 1 && res.dims[0] == 3);
    CHECK(res.byte_size == w.len);
    CHECK(strcmp(nth(&w, 0, s, sizeof(s)), "0.900000:3") == 0);
    CHECK(strcmp(nth(&w, 1, s, sizeof(s)), "0.700000:1") == 0);
    CHECK(strcmp(nth(&w, 2, s, sizeof(s)), "0.150000:4") == 0);
    ksv_writer_free(&w);

    /* more classes asked than there are: all of them */
    ksv_writer_init(&w);
    CHECK(ksv_classify(&t, v, 10, 0, NULL, &w, &res, err, sizeof(err)) == 0);
    CHECK(res.dims[0] == 5);
    CHECK(strcmp(nth(&w, 4, s, sizeof(s)), "0.050000:2") == 0);
    ksv_writer_free(&w);
}


static void
test_batched_int32_with_labels(void)
{
    char          err[256], s[64], path[] = "/tmp/ksv_labelsXXXXXX";
    int           fd;
    int32_t       v[6] = { 3, 9, 1,   7, 2, 8 };
    ksv_tensor_t  t, res;
    ksv_writer_t  w;
    ksv_labels_t  labels;

    fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "cat\ndog\r\nbird", 13) == 13);
    close(fd);
    CHECK(ksv_labels_load(path, &labels, err, sizeof(err)) == 0);
    unlink(path);
    CHECK(labels.n == 3 && strcmp(labels.lines[1], "dog") == 0
          && strcmp(labels.lines[2], "bird") == 0);

    t = tensor(KSV_TYPE_INT32, sizeof(v), 2, 3);
    ksv_writer_init(&w);
    CHECK(ksv_classify(&t, v, 2, 1, &labels, &w, &res, err, sizeof(err))
          == 0);
    CHECK(res.ndims == 2 && res.dims[0] == 2 && res.dims[1] == 2);
    CHECK(strcmp(nth(&w, 0, s, sizeof(s)), "9:1:dog") == 0);
    CHECK(strcmp(nth(&w, 1, s, sizeof(s)), "3:0:cat") == 0);
    CHECK(strcmp(nth(&w, 2, s, sizeof(s)), "8:2:bird") == 0);
    CHECK(strcmp(nth(&w, 3, s, sizeof(s)), "7:0:cat") == 0);
    ksv_writer_free(&w);
    ksv_labels_free(&labels);

    CHECK(ksv_labels_load("/nonexistent/labels.txt", &labels, err,
                          sizeof(err)) == -1);
    CHECK(strstr(err, "label file") != NULL);
}


static void
test_refused_types(void)
{
    char          err[256];
    uint8_t       b[8] = { 0 };
    ksv_tensor_t  t, res;
    ksv_writer_t  w;

    t = tensor(KSV_TYPE_BYTES, sizeof(b), 1, 0);
    ksv_writer_init(&w);
    CHECK(ksv_classify(&t, b, 1, 0, NULL, &w, &res, err, sizeof(err)) == -1);
    CHECK(strcmp(err, "class result not available for output due to "
                      "unsupported type 'BYTES'") == 0);
    t = tensor(KSV_TYPE_FP16, sizeof(b), 4, 0);
    CHECK(ksv_classify(&t, b, 1, 0, NULL, &w, &res, err, sizeof(err)) == -1);
    ksv_writer_free(&w);
}


/* against a plain sort, over random inputs: the selection never errs */
static void
test_matches_a_full_sort(void)
{
    char          err[256], s[64], want[64];
    double        v[40];
    uint32_t      round, i, j, k, n, best;
    ksv_tensor_t  t, res;
    ksv_writer_t  w;
    uint8_t       used[40];

    for (round = 0; round < 200; round++) {
        n = 1 + rnd32() % 40;
        k = 1 + rnd32() % n;
        for (i = 0; i < n; i++) {
            v[i] = (double) (rnd32() % 1000) / 7.0;
        }
        t = tensor(KSV_TYPE_FP64, n * sizeof(double), n, 0);
        ksv_writer_init(&w);
        CHECK(ksv_classify(&t, v, k, 0, NULL, &w, &res, err, sizeof(err))
              == 0);
        memset(used, 0, sizeof(used));
        for (j = 0; j < k; j++) {
            best = n;
            for (i = 0; i < n; i++) {
                if (!used[i] && (best == n || v[i] > v[best])) {
                    best = i;
                }
            }
            used[best] = 1;
            snprintf(want, sizeof(want), "%f:%u", v[best], best);
            CHECK(strcmp(nth(&w, j, s, sizeof(s)), want) == 0);
        }
        ksv_writer_free(&w);
    }
}


int
main(void)
{
    test_fp32_top_k_unbatched();
    test_batched_int32_with_labels();
    test_refused_types();
    test_matches_a_full_sort();
    KSV_TEST_END();
}
