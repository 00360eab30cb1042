/*
 * ngx_kserve: log settings (see ksv_logset.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ksv_logset.h"


void
ksv_log_settings_default(ksv_log_settings_t *s)
{
    s->info = 1;
    s->warning = 1;
    s->error = 1;
    s->format = KSV_LOG_FORMAT_DEFAULT;
    s->verbose = 0;
}


const char *
ksv_log_format_name(uint8_t format)
{
    return format == KSV_LOG_FORMAT_ISO8601 ? "ISO8601" : "default";
}


void
ksv_encode_log(ksv_writer_t *w, ksv_msg_kind_t kind, uint64_t id,
    const ksv_log_settings_t *s)
{
    ksv_put_prefix(w, kind, id);
    ksv_put_u8(w, s->info ? 1 : 0);
    ksv_put_u8(w, s->warning ? 1 : 0);
    ksv_put_u8(w, s->error ? 1 : 0);
    ksv_put_u8(w, s->format);
    ksv_put_u32(w, s->verbose);
}


int
ksv_decode_log(ksv_reader_t *r, ksv_log_settings_t *s)
{
    s->info = ksv_get_u8(r) ? 1 : 0;
    s->warning = ksv_get_u8(r) ? 1 : 0;
    s->error = ksv_get_u8(r) ? 1 : 0;
    s->format = ksv_get_u8(r);
    s->verbose = ksv_get_u32(r);

    if (s->format > KSV_LOG_FORMAT_ISO8601) {
        return -1;
    }

    return r->failed ? -1 : 0;
}


ksv_log_page_t *
ksv_log_page_map(const char *path, int create)
{
    int                  fd, fresh;
    void                *addr;
    struct stat          st;
    ksv_log_page_t      *p;
    ksv_log_settings_t   s;

    fd = open(path, create ? O_RDWR | O_CREAT | O_CLOEXEC
                           : O_RDONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        return NULL;
    }

    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }

    fresh = (st.st_size != sizeof(ksv_log_page_t));

    if (fresh && (!create || ftruncate(fd, sizeof(ksv_log_page_t)) != 0)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }

    addr = mmap(NULL, sizeof(ksv_log_page_t),
                create ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                fd, 0);
    close(fd);

    if (addr == MAP_FAILED) {
        return NULL;
    }

    p = addr;

    if (create
        && (fresh || __atomic_load_n(&p->magic, __ATOMIC_ACQUIRE)
                     != KSV_LOG_PAGE_MAGIC
            || p->size != sizeof(ksv_log_page_t)
            || p->format > KSV_LOG_FORMAT_ISO8601))
    {
        ksv_log_settings_default(&s);
        p->size = sizeof(ksv_log_page_t);
        ksv_log_page_write(p, &s);
        __atomic_store_n(&p->magic, KSV_LOG_PAGE_MAGIC, __ATOMIC_RELEASE);

    } else if (!create
               && (__atomic_load_n(&p->magic, __ATOMIC_ACQUIRE)
                   != KSV_LOG_PAGE_MAGIC
                   || p->size != sizeof(ksv_log_page_t)))
    {
        munmap(addr, sizeof(ksv_log_page_t));
        errno = EINVAL;
        return NULL;
    }

    return p;
}


void
ksv_log_page_unmap(ksv_log_page_t *p)
{
    if (p != NULL) {
        munmap(p, sizeof(ksv_log_page_t));
    }
}


/* Each word is read on its own: a reader that meets a write half done
 * sees each setting either old or new, never torn. */

void
ksv_log_page_write(ksv_log_page_t *p, const ksv_log_settings_t *s)
{
    __atomic_store_n(&p->info, s->info, __ATOMIC_RELAXED);
    __atomic_store_n(&p->warning, s->warning, __ATOMIC_RELAXED);
    __atomic_store_n(&p->error, s->error, __ATOMIC_RELAXED);
    __atomic_store_n(&p->verbose, s->verbose, __ATOMIC_RELAXED);
    __atomic_store_n(&p->format, s->format, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->generation, 1, __ATOMIC_RELEASE);
}


void
ksv_log_page_read(const ksv_log_page_t *p, ksv_log_settings_t *s)
{
    s->info = __atomic_load_n(&p->info, __ATOMIC_RELAXED) ? 1 : 0;
    s->warning = __atomic_load_n(&p->warning, __ATOMIC_RELAXED) ? 1 : 0;
    s->error = __atomic_load_n(&p->error, __ATOMIC_RELAXED) ? 1 : 0;
    s->verbose = __atomic_load_n(&p->verbose, __ATOMIC_RELAXED);
    s->format = __atomic_load_n(&p->format, __ATOMIC_RELAXED)
                == KSV_LOG_FORMAT_ISO8601 ? KSV_LOG_FORMAT_ISO8601
                                          : KSV_LOG_FORMAT_DEFAULT;
}
