/*
 * libFuzzer target for ngx_module/ksv_shm.c: what a client sends to the
 * shared memory endpoints (Triton's system and CUDA shared memory
 * extensions) before nginx looks at any shm object.
 *
 * The first byte picks the parser: 0 the path after
 * /v2/systemsharedmemory, 1 a system register body, 2 a CUDA register
 * body, 3 a shm key.  Each either fails cleanly (a message for the
 * client) or yields a result within its documented bounds.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksv_proto.h"
#include "ksv_shm.h"


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n",                 \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


int
LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    int                  rc;
    char                *copy, err[512];
    size_t               n, name_len;
    const char          *name;
    ksv_shm_register_t   req;

    if (len == 0) {
        return 0;
    }

    /* a buffer of its own: an overread of the input is caught */
    n = len - 1;
    copy = malloc(n ? n : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, buf + 1, n);

    switch (buf[0] % 4) {

    case 0:
        rc = ksv_shm_uri(copy, n, &name, &name_len);
        FUZZ_CHECK(rc == -1 || (rc >= KSV_SHM_STATUS
                                && rc <= KSV_SHM_UNREGISTER));
        if (rc != -1 && name_len > 0) {
            FUZZ_CHECK(name >= copy && name + name_len <= copy + n);
            FUZZ_CHECK(memchr(name, '/', name_len) == NULL);
        }
        break;

    case 1:
    case 2:
        err[0] = '\0';
        rc = ksv_shm_parse_register(copy, n, buf[0] % 4 == 2, &req, err,
                                    sizeof(err));
        if (rc == 0) {
            FUZZ_CHECK(strlen(req.key) <= KSV_SHM_NAME_MAX);
            FUZZ_CHECK(req.device_id >= 0);
        } else {
            FUZZ_CHECK(rc == -1 && err[0] != '\0');
            FUZZ_CHECK(strlen(err) < sizeof(err));
        }
        break;

    default:
        if (ksv_shm_key_valid(copy, n)) {
            /* one name under /dev/shm: slashes only in front */
            size_t  k = 0;

            while (k < n && copy[k] == '/') {
                k++;
            }
            FUZZ_CHECK(k < n && n - k <= 255);
            FUZZ_CHECK(memchr(copy + k, '/', n - k) == NULL);
            FUZZ_CHECK(memchr(copy, '\0', n) == NULL);
            FUZZ_CHECK(!(n - k == 2 && copy[k] == '.' && copy[k + 1] == '.'));
        }
        (void) ksv_shm_key_reserved(copy, n);
        break;
    }

    free(copy);
    return 0;
}
