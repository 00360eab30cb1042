/*
 * ngx_kserve: statistics pages (common/ksv_stats.c), as an instance
 * writes them and the worker reads, sums and exports them.
 */

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "ksv_stats.h"
#include "ksv_test.h"


static char  dir[] = "/tmp/ksv_test_stats.XXXXXX";
static char  path[sizeof(dir) + 32];


static uint64_t
now_ms(void)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);
    return (uint64_t) tv.tv_sec * 1000 + (uint64_t) tv.tv_usec / 1000;
}


static const char *
file(const char *name)
{
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}


static int
all_zero(const void *p, size_t n)
{
    size_t                i;
    const unsigned char  *c = p;

    for (i = 0; i < n; i++) {
        if (c[i] != 0) {
            return 0;
        }
    }
    return 1;
}


static void
test_create_and_map(void)
{
    ksv_stats_page_t  *w, *r;

    w = ksv_stats_map(file("page"), 1);
    CHECK(w != NULL);
    if (w == NULL) {
        return;
    }
    CHECK(w->magic == KSV_STATS_MAGIC);
    CHECK(w->size == sizeof(ksv_stats_page_t));
    CHECK(w->seq == 0);
    CHECK(all_zero(&w->last_inference,
                   sizeof(*w) - offsetof(ksv_stats_page_t, last_inference)));

    /* the reader maps the same memory */
    r = ksv_stats_map(file("page"), 0);
    CHECK(r != NULL && r != w);
    if (r != NULL) {
        w->inference_count = 42;
        CHECK(r->inference_count == 42);
        ksv_stats_unmap(r);
    }

    /* creating again starts from zero */
    ksv_stats_unmap(w);
    w = ksv_stats_map(file("page"), 1);
    CHECK(w != NULL && w->inference_count == 0);
    ksv_stats_unmap(w);

    ksv_stats_unmap(NULL);
}


static void
test_not_a_page(void)
{
    int                fd;
    struct stat        st;
    ksv_stats_page_t  *p;

    static ksv_stats_page_t  nomagic;

    /* missing */
    errno = 0;
    CHECK(ksv_stats_map(file("missing"), 0) == NULL);
    CHECK(errno == ENOENT);

    /* some other file: refused, and left as it was */
    fd = open(file("other"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, "hello", 5) == 5);
    close(fd);
    errno = 0;
    CHECK(ksv_stats_map(file("other"), 0) == NULL);
    CHECK(errno == EINVAL);
    CHECK(stat(file("other"), &st) == 0 && st.st_size == 5);

    /* the size of a page but not one (no magic) */
    nomagic.size = sizeof(ksv_stats_page_t);
    fd = open(file("nomagic"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, &nomagic, sizeof(nomagic)) == sizeof(nomagic));
    close(fd);
    errno = 0;
    CHECK(ksv_stats_map(file("nomagic"), 0) == NULL);
    CHECK(errno == EINVAL);

    /* a page cut short (its header intact): touching its end would
     * SIGBUS, so it is refused */
    p = ksv_stats_map(file("short"), 1);
    CHECK(p != NULL);
    ksv_stats_unmap(p);
    CHECK(truncate(file("short"), 4096) == 0);
    errno = 0;
    CHECK(ksv_stats_map(file("short"), 0) == NULL);
    CHECK(errno == EINVAL);

    /* a page of another layout (its size field differs) */
    p = ksv_stats_map(file("layout"), 1);
    CHECK(p != NULL);
    if (p != NULL) {
        p->size = sizeof(ksv_stats_page_t) - 8;
        ksv_stats_unmap(p);
        errno = 0;
        CHECK(ksv_stats_map(file("layout"), 0) == NULL);
        CHECK(errno == EINVAL);
    }
}


static void
test_request_counters(void)
{
    ksv_exec_times_t   t;
    ksv_stats_page_t  *p;

    p = ksv_stats_map(file("requests"), 1);
    CHECK(p != NULL);
    if (p == NULL) {
        return;
    }

    t.compute_input_ns = 10;
    t.compute_infer_ns = 200;
    t.compute_output_ns = 30;

    /* two successes (one without its batch's durations), one failure */
    ksv_stats_request(p, 1, 1000, 400, &t);
    CHECK(p->seq == 2);
    ksv_stats_request(p, 1, 3000, 600, NULL);
    ksv_stats_request(p, 0, 77, 999, &t);
    CHECK(p->seq == 6);

    CHECK(p->success.count == 2 && p->success.ns == 4000);
    CHECK(p->queue.count == 2 && p->queue.ns == 1000);
    CHECK(p->compute_input.count == 1 && p->compute_input.ns == 10);
    CHECK(p->compute_infer.count == 1 && p->compute_infer.ns == 200);
    CHECK(p->compute_output.count == 1 && p->compute_output.ns == 30);
    CHECK(p->fail.count == 1 && p->fail.ns == 77);

    /* requests are not executions */
    CHECK(p->inference_count == 0 && p->execution_count == 0);
    CHECK(p->nbatch == 0 && p->last_inference == 0);

    ksv_stats_unmap(p);
}


static void
test_batch_counters(void)
{
    uint32_t           i;
    uint64_t           before, after;
    ksv_exec_times_t   t;
    ksv_stats_page_t  *p;

    static const uint32_t  sizes[] = { 4, 1, 8, 4, 2 };

    p = ksv_stats_map(file("batches"), 1);
    CHECK(p != NULL);
    if (p == NULL) {
        return;
    }

    before = now_ms();
    for (i = 0; i < 5; i++) {
        t.compute_input_ns = 1 + i;
        t.compute_infer_ns = 100 * (1 + i);
        t.compute_output_ns = 1000 * (1 + i);
        ksv_stats_batch(p, sizes[i], &t);
    }
    after = now_ms();

    CHECK(p->seq == 10);
    CHECK(p->inference_count == 4 + 1 + 8 + 4 + 2);
    CHECK(p->execution_count == 5);
    CHECK(p->last_inference >= before && p->last_inference <= after);

    /* one entry per size, ascending */
    CHECK(p->nbatch == 4);
    CHECK(p->batch[0].batch_size == 1);
    CHECK(p->batch[1].batch_size == 2);
    CHECK(p->batch[2].batch_size == 4);
    CHECK(p->batch[3].batch_size == 8);

    /* size 4 ran twice, the first and the fourth batch */
    CHECK(p->batch[2].compute_input.count == 2);
    CHECK(p->batch[2].compute_input.ns == 1 + 4);
    CHECK(p->batch[2].compute_infer.ns == 100 + 400);
    CHECK(p->batch[2].compute_output.count == 2);
    CHECK(p->batch[2].compute_output.ns == 1000 + 4000);
    CHECK(p->batch[0].compute_infer.count == 1);
    CHECK(p->batch[0].compute_infer.ns == 200);

    /* batches are not requests */
    CHECK(p->success.count == 0 && p->compute_infer.count == 0);

    ksv_stats_unmap(p);
}


/* More sizes than the table holds: the counts go on, the table keeps
 * the sizes it has. */

static void
test_batch_table_is_capped(void)
{
    int                sorted;
    uint32_t           i;
    ksv_exec_times_t   t;
    ksv_stats_page_t  *p;

    p = ksv_stats_map(file("capped"), 1);
    CHECK(p != NULL);
    if (p == NULL) {
        return;
    }
    memset(&t, 0, sizeof(t));

    /* KSV_MAX_LIST + 1 sizes, from the largest down */
    for (i = KSV_MAX_LIST + 1; i > 0; i--) {
        ksv_stats_batch(p, i, &t);
    }
    CHECK(p->nbatch == KSV_MAX_LIST);
    CHECK(p->execution_count == KSV_MAX_LIST + 1);

    sorted = 1;
    for (i = 1; i < p->nbatch; i++) {
        if (p->batch[i - 1].batch_size >= p->batch[i].batch_size) {
            sorted = 0;
        }
    }
    CHECK(sorted);
    CHECK(p->batch[0].batch_size == 2);     /* 1 came last, no room */

    /* a size it has still counts */
    ksv_stats_batch(p, 7, &t);
    CHECK(p->batch[5].batch_size == 7);
    CHECK(p->batch[5].compute_infer.count == 2);

    ksv_stats_unmap(p);
}


static void
test_read(void)
{
    char               reason[KSV_STATS_REASON + 10];
    ksv_exec_times_t   t;
    ksv_stats_page_t  *p;

    static ksv_stats_page_t  copy;

    p = ksv_stats_map(file("read"), 1);
    CHECK(p != NULL);
    if (p == NULL) {
        return;
    }

    memset(&t, 0, sizeof(t));
    t.compute_infer_ns = 5;
    ksv_stats_batch(p, 3, &t);
    ksv_stats_request(p, 1, 10, 2, &t);

    ksv_stats_read(p, &copy);
    CHECK(memcmp(&copy, p, sizeof(copy)) == 0);

    /* the last words, truncated */
    ksv_stats_set_reason(p, "batch 7 hung for 30 s");
    ksv_stats_read(p, &copy);
    CHECK(strcmp(copy.reason, "batch 7 hung for 30 s") == 0);
    CHECK(copy.seq == 6);

    memset(reason, 'x', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    ksv_stats_set_reason(p, reason);
    CHECK(strlen(p->reason) == KSV_STATS_REASON - 1);

    /* a writer killed mid-update: seq stays odd, yet the read returns,
     * and a torn table size is not trusted */
    p->seq++;
    p->nbatch = KSV_MAX_LIST + 5;
    p->reason[KSV_STATS_REASON - 1] = 'x';
    ksv_stats_read(p, &copy);
    CHECK(copy.inference_count == 3);
    CHECK(copy.nbatch == KSV_MAX_LIST);
    CHECK(copy.reason[KSV_STATS_REASON - 1] == '\0');

    /* the next words end the reason again */
    ksv_stats_set_reason(p, "bye");
    CHECK(strcmp(p->reason, "bye") == 0);
    CHECK(p->reason[KSV_STATS_REASON - 1] == '\0');

    ksv_stats_unmap(p);
}


static void
test_add(void)
{
    ksv_exec_times_t  t;

    static ksv_stats_page_t  a, b, acc;

    memset(&t, 0, sizeof(t));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&acc, 0, sizeof(acc));

    /* two instances of a version: sizes {1, 4} and {2, 4, 8} */
    t.compute_infer_ns = 10;
    ksv_stats_batch(&a, 4, &t);
    ksv_stats_batch(&a, 1, &t);
    ksv_stats_request(&a, 1, 100, 20, &t);
    ksv_stats_request(&a, 0, 7, 0, NULL);
    a.last_inference = 5000;

    t.compute_infer_ns = 1000;
    ksv_stats_batch(&b, 8, &t);
    ksv_stats_batch(&b, 2, &t);
    ksv_stats_batch(&b, 4, &t);
    ksv_stats_request(&b, 1, 300, 40, &t);
    b.last_inference = 4000;

    ksv_stats_add(&acc, &a);
    ksv_stats_add(&acc, &b);

    CHECK(acc.last_inference == 5000);
    CHECK(acc.inference_count == 4 + 1 + 8 + 2 + 4);
    CHECK(acc.execution_count == 5);
    CHECK(acc.success.count == 2 && acc.success.ns == 400);
    CHECK(acc.queue.count == 2 && acc.queue.ns == 60);
    CHECK(acc.fail.count == 1 && acc.fail.ns == 7);
    CHECK(acc.compute_infer.count == 2 && acc.compute_infer.ns == 1010);

    /* the tables merge, sorted, sizes in both summed */
    CHECK(acc.nbatch == 4);
    CHECK(acc.batch[0].batch_size == 1 && acc.batch[1].batch_size == 2
          && acc.batch[2].batch_size == 4 && acc.batch[3].batch_size == 8);
    CHECK(acc.batch[2].compute_infer.count == 2);
    CHECK(acc.batch[2].compute_infer.ns == 1010);
    CHECK(acc.batch[1].compute_infer.ns == 1000);
    CHECK(acc.batch[0].compute_infer.ns == 10);

    /* adding into a table that already has rows keeps the later time */
    b.last_inference = 9000;
    ksv_stats_add(&acc, &b);
    CHECK(acc.last_inference == 9000);
    CHECK(acc.batch[2].compute_infer.count == 3);
    CHECK(acc.batch[3].compute_infer.count == 2);
    CHECK(acc.nbatch == 4);
}


static void
test_export(void)
{
    ksv_exec_times_t   t;
    ksv_model_stats_t  m;

    static ksv_stats_page_t  p;

    memset(&p, 0, sizeof(p));
    memset(&t, 0, sizeof(t));
    t.compute_input_ns = 1;
    t.compute_infer_ns = 2;
    t.compute_output_ns = 3;
    ksv_stats_batch(&p, 2, &t);
    ksv_stats_batch(&p, 6, &t);
    ksv_stats_request(&p, 1, 50, 5, &t);
    ksv_stats_request(&p, 0, 9, 0, NULL);

    memset(&m, 0, sizeof(m));
    m.name = ksv_str_lit("simple");
    m.version = ksv_str_lit("3");
    ksv_stats_export(&p, &m);

    CHECK(m.name.len == 6 && memcmp(m.name.data, "simple", 6) == 0);
    CHECK(m.version.len == 1);
    CHECK(m.last_inference == p.last_inference && m.last_inference != 0);
    CHECK(m.inference_count == 8);
    CHECK(m.execution_count == 2);
    CHECK(m.success.count == 1 && m.success.ns == 50);
    CHECK(m.fail.count == 1 && m.fail.ns == 9);
    CHECK(m.queue.ns == 5);
    CHECK(m.compute_input.ns == 1);
    CHECK(m.compute_infer.ns == 2);
    CHECK(m.compute_output.ns == 3);
    CHECK(m.nbatch == 2);
    CHECK(m.batch == p.batch);
    CHECK(m.batch[1].batch_size == 6);
}


static void
cleanup(void)
{
    size_t  i;

    static const char  *names[] = {
        "page", "other", "nomagic", "short", "layout", "requests", "batches",
        "capped", "read"
    };

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        unlink(file(names[i]));
    }
    rmdir(dir);
}


int
main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    test_create_and_map();
    test_not_a_page();
    test_request_counters();
    test_batch_counters();
    test_batch_table_is_capped();
    test_read();
    test_add();
    test_export();

    cleanup();

    KSV_TEST_END();
}
