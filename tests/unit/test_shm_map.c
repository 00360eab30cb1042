/*
 * Unit tests for an instance's mappings of clients' shared memory
 * regions (backends/common/ksv_shm_map.c), on real POSIX shm objects.
 */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ksv_shm_map.h"
#include "ksv_test.h"


static char  key[64];


/* A fresh object of size bytes holding 0, 1, 2, ... */
static void
make_object(size_t size)
{
    int      fd;
    size_t   i;
    uint8_t  buf[8192];

    shm_unlink(key);
    fd = shm_open(key, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    for (i = 0; i < size && i < sizeof(buf); i++) {
        buf[i] = (uint8_t) i;
    }
    CHECK(ftruncate(fd, (off_t) size) == 0);
    CHECK(write(fd, buf, size < sizeof(buf) ? size : sizeof(buf)) >= 0);
    close(fd);
}


static ksv_shm_ref_t
ref_of(uint8_t io, uint64_t offset, uint64_t size)
{
    ksv_shm_ref_t  ref;

    memset(&ref, 0, sizeof(ref));
    ref.io = io;
    ref.region = ksv_str_lit("reg");
    ref.key = ksv_str_c(key);
    ref.offset = offset;
    ref.byte_size = size;
    return ref;
}


static void
test_input_is_a_view(void)
{
    char           err[512];
    zmq_msg_t      frame;
    ksv_shm_ref_t  ref;

    make_object(4096);
    ref = ref_of(KSV_SHM_INPUT, 100, 16);

    zmq_msg_init(&frame);
    CHECK(ksv_shm_map_input(&ref, &frame, err, sizeof(err)) == 0);
    CHECK(zmq_msg_size(&frame) == 16);
    CHECK(((uint8_t *) zmq_msg_data(&frame))[0] == 100);
    CHECK(((uint8_t *) zmq_msg_data(&frame))[15] == 115);

    /* the object gone (unlinked, as after an unregister): the frame's
     * mapping lives until the frame is closed */
    shm_unlink(key);
    CHECK(((uint8_t *) zmq_msg_data(&frame))[1] == 101);
    zmq_msg_close(&frame);

    zmq_msg_init(&frame);
    CHECK(ksv_shm_map_input(&ref, &frame, err, sizeof(err)) == -1);
    CHECK(strncmp(err, "Unable to open shared memory region", 35) == 0);
    zmq_msg_close(&frame);
}


static void
test_bounds(void)
{
    char           err[512];
    zmq_msg_t      frame;
    ksv_shm_ref_t  ref;

    make_object(64);

    ref = ref_of(KSV_SHM_INPUT, 60, 8);
    zmq_msg_init(&frame);
    CHECK(ksv_shm_map_input(&ref, &frame, err, sizeof(err)) == -1);
    CHECK(strcmp(err, "Invalid offset + byte size for shared memory region: "
                 "'reg'") == 0);

    ref = ref_of(KSV_SHM_INPUT, UINT64_MAX - 2, 8);
    CHECK(ksv_shm_map_input(&ref, &frame, err, sizeof(err)) == -1);

    ref = ref_of(KSV_SHM_INPUT, 0, 8);
    ref.key = ksv_str_lit("/a/b");
    CHECK(ksv_shm_map_input(&ref, &frame, err, sizeof(err)) == -1);
    CHECK(strcmp(err, "Invalid shared memory region: 'reg'") == 0);

    /* a frame that carries bytes of its own is refused */
    ref = ref_of(KSV_SHM_INPUT, 0, 8);
    zmq_msg_close(&frame);
    zmq_msg_init_size(&frame, 3);
    CHECK(ksv_shm_map_input(&ref, &frame, err, sizeof(err)) == -1);
    zmq_msg_close(&frame);
    shm_unlink(key);
}


static void
test_output_is_written(void)
{
    int            fd;
    char           err[512];
    uint8_t        data[32], *p;
    ksv_status_t   code;
    ksv_shm_ref_t  ref;

    make_object(128);
    memset(data, 0xAB, sizeof(data));

    ref = ref_of(KSV_SHM_OUTPUT, 64, 32);
    CHECK(ksv_shm_write_output(&ref, ksv_str_lit("OUT"), data, 32, &code,
                               err, sizeof(err)) == 0);

    fd = shm_open(key, O_RDONLY, 0);
    p = mmap(NULL, 128, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    CHECK(p != MAP_FAILED && p[63] == 63 && p[64] == 0xAB && p[95] == 0xAB
          && p[96] == 96);
    munmap(p, 128);

    ref = ref_of(KSV_SHM_OUTPUT, 64, 16);
    CHECK(ksv_shm_write_output(&ref, ksv_str_lit("OUT"), data, 32, &code,
                               err, sizeof(err)) == -1);
    CHECK(code == KSV_ERR_INVALID_ARG);
    CHECK(strcmp(err, "shared memory size specified with the request for "
                 "output 'OUT' (16 bytes) should be at least 32 bytes to "
                 "hold the results") == 0);

    /* replaced by a larger object under the same name: mapped anew */
    make_object(8192);
    ref = ref_of(KSV_SHM_OUTPUT, 8000, 32);
    CHECK(ksv_shm_write_output(&ref, ksv_str_lit("OUT"), data, 32, &code,
                               err, sizeof(err)) == 0);
    shm_unlink(key);
}


static void
test_pinned_output_outlives_the_object(void)
{
    int            fd;
    char           err[512];
    void          *pin;
    uint8_t        data[16], *p;
    ksv_status_t   code;
    ksv_shm_ref_t  ref;

    make_object(64);
    fd = shm_open(key, O_RDWR, 0);
    p = mmap(NULL, 64, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);

    ref = ref_of(KSV_SHM_OUTPUT, 16, 16);
    pin = ksv_shm_pin(&ref, err, sizeof(err));
    CHECK(pin != NULL);

    /* unregistered and unlinked while the model runs */
    shm_unlink(key);
    memset(data, 0x5A, sizeof(data));
    CHECK(ksv_shm_write_output(&ref, ksv_str_lit("OUT"), data, 16, &code,
                               err, sizeof(err)) == 0);
    CHECK(p[15] == 15 && p[16] == 0x5A && p[31] == 0x5A && p[32] == 32);
    ksv_shm_unpin(pin);

    /* nothing pinned any more: the object is looked for, and gone */
    CHECK(ksv_shm_write_output(&ref, ksv_str_lit("OUT"), data, 16, &code,
                               err, sizeof(err)) == -1);
    munmap(p, 64);
}


int
main(void)
{
    snprintf(key, sizeof(key), "/ksv_unit_%d", (int) getpid());

    test_input_is_a_view();
    test_bounds();
    test_output_is_written();
    test_pinned_output_outlives_the_object();

    KSV_TEST_END();
}
