/*
 * client_rtt.c - measures the round trip of one
 * stupid_p2p_check_device_alive() call through libstupidp2p on loopback.
 *
 *   cc -Iinclude scripts/client_rtt.c libstupidp2p.a -lpthread -o client_rtt
 *   ./client_rtt PORT [CALLS]        (a p2pServer must listen on 127.0.0.1:PORT)
 *
 * Prints min, median, p90, p99 and max over CALLS calls (default 1000) after
 * 100 warm-up calls. A benchmark tool, not a test: nothing here is asserted.
 */
#include "stupidp2p.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [CALLS]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int calls = argc > 2 ? atoi(argv[2]) : 1000;
    if (port <= 0 || port > 65535 || calls <= 0 || calls > 10000000) {
        fprintf(stderr, "%s: bad PORT or CALLS\n", argv[0]);
        return 2;
    }
    const uint8_t *host = (const uint8_t *)"127.0.0.1";
    int32_t asker = stupid_p2p_init(host, (uint16_t)port);
    int32_t peer = stupid_p2p_init(host, (uint16_t)port);
    if (asker < 0 || peer < 0) {
        fprintf(stderr, "cannot connect to 127.0.0.1:%d\n", port);
        return 1;
    }
    if (stupid_p2p_register_device(peer, (const uint8_t *)"rtt-peer") != STUPID_P2P_NO_ERROR) {
        fprintf(stderr, "register failed\n");
        return 1;
    }
    for (int i = 0; i < 100; i++)
        stupid_p2p_check_device_alive(asker, (const uint8_t *)"rtt-peer");
    double *samples = malloc(sizeof *samples * (size_t)calls);
    if (samples == NULL)
        return 1;
    for (int i = 0; i < calls; i++) {
        double start = now_us();
        int32_t rc = stupid_p2p_check_device_alive(asker, (const uint8_t *)"rtt-peer");
        samples[i] = now_us() - start;
        if (rc != STUPID_P2P_NO_ERROR) {
            fprintf(stderr, "check_device_alive failed: %d\n", rc);
            return 1;
        }
    }
    qsort(samples, (size_t)calls, sizeof *samples, by_value);
    printf("check_device_alive round trip over %d calls: min %.1f us, median %.1f us, "
           "p90 %.1f us, p99 %.1f us, max %.1f us\n",
           calls, samples[0], samples[calls / 2], samples[calls * 9 / 10],
           samples[calls * 99 / 100], samples[calls - 1]);
    free(samples);
    stupid_p2p_deinit(asker);
    stupid_p2p_deinit(peer);
    return 0;
}
