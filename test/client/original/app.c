/*
 * app.c - a program written against the ORIGINAL stupidP2P C API, as its
 * users wrote them: int32_t handles from stupid_p2p_init, NUL-terminated
 * ids in uint8_t arrays, the original error enum, stupid_p2p_recv_data and
 * stupid_p2p_free_recv_data_buf, and the header's _log macro. It uses only
 * what the original header declared, and is built by original_api.sh with
 * exactly:   $CC app.c -Iinclude libstupidp2p.a -lpthread
 *
 * Usage: app SERVER_IP PORT. Two devices in one process talk to each
 * other; everything printed is checked by the script.
 */
#include "stupidP2P.h" /* the original header name, unchanged */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEVICE_ID "ABCD"
#define SUBSCRIBE_DEVICE_ID "FFSS"

static uint8_t server_ip[64];

static int check(const char *what, int32_t ret, int32_t expected)
{
    if (ret != expected) {
        _log("%s: got %d, expected %d\n", what, ret, expected);
        return 1;
    }
    printf("%s: ok\n", what);
    return 0;
}

/* Drains the queue of fd, printing each message; returns the count. */
static int32_t drain(int32_t fd, const char *who)
{
    int32_t total = 0;
    recv_data_buf_t *recv_data_buf = stupid_p2p_recv_data(fd);
    if (recv_data_buf == NULL)
        return -1;
    for (int32_t i = 0; i < recv_data_buf->num; i++) {
        uint8_t data[4096] = {0};
        memcpy(data, recv_data_buf->recv_data[i]->data, recv_data_buf->recv_data[i]->length);
        data[recv_data_buf->recv_data[i]->length] = '\0';
        printf("%s recv data: %s (%d bytes)\n", who, (char *)data, recv_data_buf->recv_data[i]->length);
        total++;
    }
    stupid_p2p_free_recv_data_buf(recv_data_buf);
    return total;
}

int main(int argc, char *argv[])
{
    int failures = 0;
    if (argc != 3) {
        printf("usage: %s SERVER_IP PORT\n", argv[0]);
        return 2;
    }
    snprintf((char *)server_ip, sizeof(server_ip), "%s", argv[1]);
    int32_t port = atoi(argv[2]);

    int32_t fd1 = stupid_p2p_init(server_ip, port);
    int32_t fd2 = stupid_p2p_init(server_ip, port);
    if (fd1 < 0 || fd2 < 0) {
        _log("init failed: %d %d\n", fd1, fd2);
        return 1;
    }
    printf("init: ok\n");

    uint8_t my_id[256] = DEVICE_ID;
    uint8_t other_id[256] = SUBSCRIBE_DEVICE_ID;
    failures += check("register " DEVICE_ID, stupid_p2p_register_device(fd1, my_id), STUPID_P2P_NO_ERROR);
    failures += check("check " SUBSCRIBE_DEVICE_ID " before it registers",
                      stupid_p2p_check_device_alive(fd1, other_id), STUPID_P2P_ERROR_COMMOND);
    failures += check("register " SUBSCRIBE_DEVICE_ID, stupid_p2p_register_device(fd2, other_id), STUPID_P2P_NO_ERROR);
    failures += check("check " SUBSCRIBE_DEVICE_ID, stupid_p2p_check_device_alive(fd1, other_id), STUPID_P2P_NO_ERROR);
    failures += check("subscribe " SUBSCRIBE_DEVICE_ID, stupid_p2p_subscribe_device(fd1, other_id), STUPID_P2P_NO_ERROR);
    failures += check("subscribe " DEVICE_ID, stupid_p2p_subscribe_device(fd2, my_id), STUPID_P2P_NO_ERROR);
    failures += check("heart beat", stupid_p2p_heart_beat(fd1), STUPID_P2P_NO_ERROR);

    uint8_t send_buf[2048] = {0};
    snprintf((char *)send_buf, sizeof(send_buf), "hello from %s", (char *)my_id);
    failures += check("send 1", stupid_p2p_send_data(fd1, send_buf, (int32_t)strlen((char *)send_buf)), STUPID_P2P_NO_ERROR);
    snprintf((char *)send_buf, sizeof(send_buf), "hello from %s", (char *)other_id);
    failures += check("send 2", stupid_p2p_send_data(fd2, send_buf, (int32_t)strlen((char *)send_buf)), STUPID_P2P_NO_ERROR);
    /* Over 256 bytes: the original refused, then crashed near 2 KB. */
    memset(send_buf, 'x', 2000);
    failures += check("send 2000 bytes", stupid_p2p_send_data(fd1, send_buf, 2000), STUPID_P2P_NO_ERROR);

    /* Every delivery to a device is queued before the server answers a
     * heartbeat sent after it: heart_beat is the barrier. */
    failures += check("heart beat 1", stupid_p2p_heart_beat(fd1), STUPID_P2P_NO_ERROR);
    failures += check("heart beat 2", stupid_p2p_heart_beat(fd2), STUPID_P2P_NO_ERROR);
    int32_t n1 = drain(fd1, DEVICE_ID);
    int32_t n2 = drain(fd2, SUBSCRIBE_DEVICE_ID);
    printf("received: %d %d\n", n1, n2);

    failures += check("unsubscribe", stupid_p2p_unsubscribe_device(fd1, other_id), STUPID_P2P_NO_ERROR);
    failures += check("unregister", stupid_p2p_unregister_device(fd1), STUPID_P2P_NO_ERROR);
    failures += check("check " DEVICE_ID " after unregister",
                      stupid_p2p_check_device_alive(fd2, my_id), STUPID_P2P_ERROR_COMMOND);
    stupid_p2p_deinit(fd1);
    stupid_p2p_deinit(fd2);
    if (STUPID_P2P_ERROR_COMMOND != (int32_t)0x80000001)
        failures++;
    printf("done: %d failures\n", failures);
    return failures ? 1 : 0;
}
