/*
 * ngx_kserve instances: clients' shared memory regions (ksv_shm_map.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ksv_shm_map.h"


typedef struct ksv_shm_mapping_s  ksv_shm_mapping_t;

struct ksv_shm_mapping_s {
    ksv_shm_mapping_t  *next;
    char               *key;
    dev_t               dev;
    ino_t               ino;
    uint8_t            *addr;
    size_t              size;           /* the object's, when mapped */
    uint32_t            refs;           /* frames that point into it */
    unsigned            stale:1;        /* replaced: unmap when unused */
};


static pthread_mutex_t     ksv_shm_lock = PTHREAD_MUTEX_INITIALIZER;
static ksv_shm_mapping_t  *ksv_shm_mappings;
static uint32_t            ksv_shm_count;


static void
ksv_shm_unmap(ksv_shm_mapping_t *m)
{
    ksv_shm_mapping_t  **pp;

    for (pp = &ksv_shm_mappings; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    ksv_shm_count--;
    if (m->size > 0) {
        munmap(m->addr, m->size);
    }
    free(m->key);
    free(m);
}


/* Unused mappings beyond KSV_SHM_MAP_KEEP go, oldest first (the list
 * has the newest at its head). */
static void
ksv_shm_trim(void)
{
    uint32_t            n;
    ksv_shm_mapping_t  *m, *next;

    n = 0;
    for (m = ksv_shm_mappings; m != NULL; m = next) {
        next = m->next;
        if (++n > KSV_SHM_MAP_KEEP && m->refs == 0) {
            ksv_shm_unmap(m);
        }
    }
}


/*
 * The mapping of ref's object, with a reference taken, once offset +
 * byte_size is known to lie inside the object as it is now.  NULL with
 * err filled.  Takes the lock.
 */
static ksv_shm_mapping_t *
ksv_shm_get(const ksv_shm_ref_t *ref, char *err, size_t errlen)
{
    int                 fd;
    char                key[256];
    struct stat         st;
    ksv_shm_mapping_t  *m, *next;

    if (ref->key.len >= sizeof(key)
        || !ksv_shm_key_valid(ref->key.data, ref->key.len))
    {
        snprintf(err, errlen, "Invalid shared memory region: '%.*s'",
                 (int) ref->region.len, ref->region.data);
        return NULL;
    }
    memcpy(key, ref->key.data, ref->key.len);
    key[ref->key.len] = '\0';

    fd = shm_open(key, O_RDWR, 0);
    if (fd == -1) {
        snprintf(err, errlen, "Unable to open shared memory region: '%s'",
                 key);
        return NULL;
    }
    if (fstat(fd, &st) != 0 || st.st_size < 0
        || (uint64_t) st.st_size < ref->offset
        || (uint64_t) st.st_size - ref->offset < ref->byte_size)
    {
        close(fd);
        snprintf(err, errlen, "Invalid offset + byte size for shared memory "
                 "region: '%.*s'", (int) ref->region.len, ref->region.data);
        return NULL;
    }

    pthread_mutex_lock(&ksv_shm_lock);

    for (m = ksv_shm_mappings; m != NULL; m = next) {
        next = m->next;
        if (m->stale || strcmp(m->key, key) != 0) {
            continue;
        }
        if (m->dev == st.st_dev && m->ino == st.st_ino
            && m->size >= (size_t) st.st_size)
        {
            m->refs++;
            pthread_mutex_unlock(&ksv_shm_lock);
            close(fd);
            return m;
        }
        /* another object under that name, or grown: map it anew */
        m->stale = 1;
        if (m->refs == 0) {
            ksv_shm_unmap(m);
        }
    }

    m = calloc(1, sizeof(ksv_shm_mapping_t));
    if (m == NULL || (m->key = strdup(key)) == NULL) {
        pthread_mutex_unlock(&ksv_shm_lock);
        free(m);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->dev = st.st_dev;
    m->ino = st.st_ino;
    m->size = (size_t) st.st_size;
    if (m->size > 0) {
        m->addr = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED,
                       fd, 0);
        if (m->addr == MAP_FAILED) {
            pthread_mutex_unlock(&ksv_shm_lock);
            snprintf(err, errlen, "failed to map shared memory region "
                     "'%.*s': %s", (int) ref->region.len, ref->region.data,
                     strerror(errno));
            free(m->key);
            free(m);
            close(fd);
            return NULL;
        }
    }
    close(fd);

    m->refs = 1;
    m->next = ksv_shm_mappings;
    ksv_shm_mappings = m;
    ksv_shm_count++;
    ksv_shm_trim();

    pthread_mutex_unlock(&ksv_shm_lock);
    return m;
}


static void
ksv_shm_put(ksv_shm_mapping_t *m)
{
    pthread_mutex_lock(&ksv_shm_lock);
    if (--m->refs == 0 && (m->stale || ksv_shm_count > KSV_SHM_MAP_KEEP)) {
        ksv_shm_unmap(m);
    }
    pthread_mutex_unlock(&ksv_shm_lock);
}


/* zmq_msg_init_data()'s free function for a frame inside a mapping */
static void
ksv_shm_frame_free(void *data, void *hint)
{
    (void) data;
    ksv_shm_put(hint);
}


int
ksv_shm_map_input(const ksv_shm_ref_t *ref, zmq_msg_t *frame, char *err,
    size_t errlen)
{
    ksv_shm_mapping_t  *m;

    if (zmq_msg_size(frame) != 0) {
        snprintf(err, errlen, "input in shared memory region '%.*s' also "
                 "carries %zu bytes", (int) ref->region.len,
                 ref->region.data, zmq_msg_size(frame));
        return -1;
    }

    m = ksv_shm_get(ref, err, errlen);
    if (m == NULL) {
        return -1;
    }

    zmq_msg_close(frame);
    if (ref->byte_size == 0) {
        zmq_msg_init(frame);
        ksv_shm_put(m);
        return 0;
    }
    if (zmq_msg_init_data(frame, m->addr + ref->offset,
                          (size_t) ref->byte_size, ksv_shm_frame_free, m)
        != 0)
    {
        zmq_msg_init(frame);
        ksv_shm_put(m);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}


void *
ksv_shm_pin(const ksv_shm_ref_t *ref, char *err, size_t errlen)
{
    return ksv_shm_get(ref, err, errlen);
}


void
ksv_shm_unpin(void *pin)
{
    if (pin != NULL) {
        ksv_shm_put(pin);
    }
}


/* A mapping of ref's key that is in use (pinned by the request), with a
 * reference taken: the newest that covers the tensor.  NULL when there
 * is none. */
static ksv_shm_mapping_t *
ksv_shm_held(const ksv_shm_ref_t *ref)
{
    ksv_shm_mapping_t  *m, *found;

    found = NULL;
    pthread_mutex_lock(&ksv_shm_lock);
    for (m = ksv_shm_mappings; m != NULL; m = m->next) {
        if (m->refs > 0 && strlen(m->key) == ref->key.len
            && memcmp(m->key, ref->key.data, ref->key.len) == 0
            && m->size >= ref->offset && m->size - ref->offset
                                         >= ref->byte_size
            && (found == NULL || (found->stale && !m->stale)))
        {
            found = m;
        }
    }
    if (found != NULL) {
        found->refs++;
    }
    pthread_mutex_unlock(&ksv_shm_lock);
    return found;
}


int
ksv_shm_write_output(const ksv_shm_ref_t *ref, ksv_str_t name,
    const void *data, size_t size, ksv_status_t *code, char *err,
    size_t errlen)
{
    ksv_shm_mapping_t  *m;

    if (size > ref->byte_size) {
        *code = KSV_ERR_INVALID_ARG;
        snprintf(err, errlen, "shared memory size specified with the "
                 "request for output '%.*s' (%" PRIu64 " bytes) should be "
                 "at least %zu bytes to hold the results",
                 (int) (name.len < 256 ? name.len : 256), name.data,
                 ref->byte_size, size);
        return -1;
    }

    m = ksv_shm_held(ref);
    if (m == NULL) {
        m = ksv_shm_get(ref, err, errlen);
    }
    if (m == NULL) {
        *code = KSV_ERR_INVALID_ARG;
        return -1;
    }
    if (size > 0) {
        memcpy(m->addr + ref->offset, data, size);
    }
    ksv_shm_put(m);
    return 0;
}


const ksv_shm_ref_t *
ksv_shm_find(const ksv_infer_t *m, uint8_t io, uint32_t index)
{
    uint32_t  i;

    for (i = 0; i < m->nshm; i++) {
        if (m->shm[i].io == io && m->shm[i].index == index) {
            return &m->shm[i];
        }
    }
    return NULL;
}
