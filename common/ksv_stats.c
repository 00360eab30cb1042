/*
 * ngx_kserve: statistics pages (see ksv_stats.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "ksv_stats.h"


#define KSV_STATS_READ_TRIES  64


ksv_stats_page_t *
ksv_stats_map(const char *path, int create)
{
    int                fd;
    void              *addr;
    struct stat        st;
    ksv_stats_page_t  *p;

    fd = open(path, create ? O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC
                           : O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        return NULL;
    }

    if (create && ftruncate(fd, sizeof(ksv_stats_page_t)) != 0) {
        close(fd);
        return NULL;
    }
    if (fstat(fd, &st) != 0 || st.st_size != sizeof(ksv_stats_page_t)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }

    addr = mmap(NULL, sizeof(ksv_stats_page_t), PROT_READ | PROT_WRITE,
                MAP_SHARED, fd, 0);
    close(fd);
    if (addr == MAP_FAILED) {
        return NULL;
    }

    p = addr;
    if (create) {
        p->size = sizeof(ksv_stats_page_t);
        __atomic_store_n(&p->magic, KSV_STATS_MAGIC, __ATOMIC_RELEASE);

    } else if (__atomic_load_n(&p->magic, __ATOMIC_ACQUIRE) != KSV_STATS_MAGIC
               || p->size != sizeof(ksv_stats_page_t))
    {
        munmap(addr, sizeof(ksv_stats_page_t));
        errno = EINVAL;
        return NULL;
    }
    return p;
}


void
ksv_stats_unmap(ksv_stats_page_t *p)
{
    if (p != NULL) {
        munmap(p, sizeof(ksv_stats_page_t));
    }
}


static void
ksv_stats_begin(ksv_stats_page_t *p)
{
    __atomic_store_n(&p->seq, p->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}


static void
ksv_stats_end(ksv_stats_page_t *p)
{
    __atomic_store_n(&p->seq, p->seq + 1, __ATOMIC_RELEASE);
}


static void
ksv_duration_add(ksv_stat_duration_t *d, uint64_t count, uint64_t ns)
{
    d->count += count;
    d->ns += ns;
}


void
ksv_stats_request(ksv_stats_page_t *p, int success, uint64_t total_ns,
    uint64_t queue_ns, const ksv_exec_times_t *t)
{
    ksv_stats_begin(p);
    if (!success) {
        ksv_duration_add(&p->fail, 1, total_ns);

    } else {
        ksv_duration_add(&p->success, 1, total_ns);
        ksv_duration_add(&p->queue, 1, queue_ns);
        if (t != NULL) {
            ksv_duration_add(&p->compute_input, 1, t->compute_input_ns);
            ksv_duration_add(&p->compute_infer, 1, t->compute_infer_ns);
            ksv_duration_add(&p->compute_output, 1, t->compute_output_ns);
        }
    }
    ksv_stats_end(p);
}


/* The slot of batch_size in the sorted table, made when missing; NULL
 * when the table is full (KSV_MAX_LIST sizes). */
static ksv_batch_stats_t *
ksv_stats_slot(ksv_stats_page_t *p, uint32_t batch_size)
{
    uint32_t  lo, hi, mid;

    lo = 0;
    hi = p->nbatch;
    while (lo < hi) {
        mid = (lo + hi) / 2;
        if (p->batch[mid].batch_size < batch_size) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < p->nbatch && p->batch[lo].batch_size == batch_size) {
        return &p->batch[lo];
    }
    if (p->nbatch == KSV_MAX_LIST) {
        return NULL;
    }

    memmove(&p->batch[lo + 1], &p->batch[lo],
            (p->nbatch - lo) * sizeof(ksv_batch_stats_t));
    memset(&p->batch[lo], 0, sizeof(ksv_batch_stats_t));
    p->batch[lo].batch_size = batch_size;
    p->nbatch++;
    return &p->batch[lo];
}


static void
ksv_batch_add(ksv_batch_stats_t *b, const ksv_batch_stats_t *in)
{
    ksv_duration_add(&b->compute_input, in->compute_input.count,
                     in->compute_input.ns);
    ksv_duration_add(&b->compute_infer, in->compute_infer.count,
                     in->compute_infer.ns);
    ksv_duration_add(&b->compute_output, in->compute_output.count,
                     in->compute_output.ns);
}


void
ksv_stats_batch(ksv_stats_page_t *p, uint32_t batch_size,
    const ksv_exec_times_t *t)
{
    struct timeval      tv;
    ksv_batch_stats_t  *b, one;

    gettimeofday(&tv, NULL);

    memset(&one, 0, sizeof(one));
    one.compute_input = (ksv_stat_duration_t) { 1, t->compute_input_ns };
    one.compute_infer = (ksv_stat_duration_t) { 1, t->compute_infer_ns };
    one.compute_output = (ksv_stat_duration_t) { 1, t->compute_output_ns };

    ksv_stats_begin(p);
    p->last_inference = (uint64_t) tv.tv_sec * 1000
                        + (uint64_t) tv.tv_usec / 1000;
    p->inference_count += batch_size;
    p->execution_count++;
    b = ksv_stats_slot(p, batch_size);
    if (b != NULL) {
        ksv_batch_add(b, &one);
    }
    ksv_stats_end(p);
}


void
ksv_stats_set_reason(ksv_stats_page_t *p, const char *reason)
{
    ksv_stats_begin(p);
    strncpy(p->reason, reason, KSV_STATS_REASON - 1);
    p->reason[KSV_STATS_REASON - 1] = '\0';
    ksv_stats_end(p);
}


void
ksv_stats_read(const ksv_stats_page_t *p, ksv_stats_page_t *out)
{
    int       tries;
    uint64_t  s1, s2;

    for (tries = 0; ; tries++) {
        s1 = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
        memcpy(out, p, sizeof(*out));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&p->seq, __ATOMIC_RELAXED);
        if ((s1 == s2 && (s1 & 1) == 0) || tries == KSV_STATS_READ_TRIES) {
            break;
        }
        if (tries > 8) {
            usleep(10);
        }
    }
    if (out->nbatch > KSV_MAX_LIST) {
        out->nbatch = KSV_MAX_LIST;     /* torn: never trust it */
    }
    out->reason[KSV_STATS_REASON - 1] = '\0';
}


void
ksv_stats_add(ksv_stats_page_t *acc, const ksv_stats_page_t *in)
{
    uint32_t            i;
    ksv_batch_stats_t  *b;

    if (in->last_inference > acc->last_inference) {
        acc->last_inference = in->last_inference;
    }
    acc->inference_count += in->inference_count;
    acc->execution_count += in->execution_count;
    ksv_duration_add(&acc->success, in->success.count, in->success.ns);
    ksv_duration_add(&acc->fail, in->fail.count, in->fail.ns);
    ksv_duration_add(&acc->queue, in->queue.count, in->queue.ns);
    ksv_duration_add(&acc->compute_input, in->compute_input.count,
                     in->compute_input.ns);
    ksv_duration_add(&acc->compute_infer, in->compute_infer.count,
                     in->compute_infer.ns);
    ksv_duration_add(&acc->compute_output, in->compute_output.count,
                     in->compute_output.ns);

    for (i = 0; i < in->nbatch && i < KSV_MAX_LIST; i++) {
        b = ksv_stats_slot(acc, in->batch[i].batch_size);
        if (b != NULL) {
            ksv_batch_add(b, &in->batch[i]);
        }
    }
}


void
ksv_stats_export(const ksv_stats_page_t *p, ksv_model_stats_t *out)
{
    out->last_inference = p->last_inference;
    out->inference_count = p->inference_count;
    out->execution_count = p->execution_count;
    out->success = p->success;
    out->fail = p->fail;
    out->queue = p->queue;
    out->compute_input = p->compute_input;
    out->compute_infer = p->compute_infer;
    out->compute_output = p->compute_output;
    out->nbatch = p->nbatch;
    out->batch = (ksv_batch_stats_t *) p->batch;
}
