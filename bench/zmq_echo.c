/*
 * ZeroMQ round-trip ceiling for the benchmark: the same transport shape as
 * the gateway (a DEALER talking to a ROUTER over ipc://), with nothing
 * behind it.  A forked child is the ROUTER and echoes every message; the
 * parent keeps CONC messages of SIZE bytes in flight on one DEALER for
 * SECONDS and prints
 *
 *     KSV_RESULT rps=<n> p50_us=<n> p99_us=<n> errors=0
 *
 * the same line bench/infer.lua prints for wrk.
 *
 *     zmq_echo ENDPOINT SIZE CONC SECONDS
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void serve(const char *endpoint)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    if (zmq_bind(s, endpoint) != 0) {
        fprintf(stderr, "zmq_echo: bind %s: %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        _exit(1);
    }
    for (;;) {  /* identity frame, then the body frames: send back as-is */
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            _exit(0);
        }
        int more = zmq_msg_more(&m);
        zmq_msg_send(&m, s, more ? ZMQ_SNDMORE : 0);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: zmq_echo ENDPOINT SIZE CONC SECONDS\n");
        return 2;
    }
    const char *endpoint = argv[1];
    size_t size = strtoul(argv[2], NULL, 10);
    int conc = atoi(argv[3]);
    double secs = atof(argv[4]);
    if (size < sizeof(uint64_t)) {
        size = sizeof(uint64_t);
    }

    pid_t child = fork();
    if (child == 0) {
        serve(endpoint);
    }

    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(s, endpoint);

    char *buf = calloc(1, size);
    size_t cap = 1 << 20, n = 0;
    uint32_t *lat = malloc(cap * sizeof(*lat));
    if (buf == NULL || lat == NULL) {
        return 1;
    }

    /* the first send waits for the connection (ipc bind may lag the fork) */
    uint64_t t = now_ns();
    memcpy(buf, &t, sizeof(t));
    zmq_send(s, buf, size, 0);
    zmq_recv(s, buf, size, 0);

    uint64_t start = now_ns(), end = start + (uint64_t) (secs * 1e9);
    for (int i = 0; i < conc; i++) {
        t = now_ns();
        memcpy(buf, &t, sizeof(t));
        zmq_send(s, buf, size, 0);
    }
    int inflight = conc;
    while (inflight > 0) {
        if (zmq_recv(s, buf, size, 0) < 0) {
            break;
        }
        inflight--;
        uint64_t sent, done = now_ns();
        memcpy(&sent, buf, sizeof(sent));
        if (n == cap) {
            cap *= 2;
            lat = realloc(lat, cap * sizeof(*lat));
            if (lat == NULL) {
                return 1;
            }
        }
        lat[n++] = (uint32_t) ((done - sent) / 1000);
        if (done < end) {
            memcpy(buf, &done, sizeof(done));
            zmq_send(s, buf, size, 0);
            inflight++;
        }
    }
    double elapsed = (now_ns() - start) / 1e9;

    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    qsort(lat, n, sizeof(*lat), cmp_u32);
    printf("KSV_RESULT rps=%.1f p50_us=%u p99_us=%u errors=0\n",
           n / elapsed, n ? lat[n / 2] : 0, n ? lat[(size_t) (n * 0.99)] : 0);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}
