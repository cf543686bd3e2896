/*
 * test_client_large.c - messages of every size the server allows: 65535
 * data bytes (a 65536-byte frame, the default max_frame) sent and received
 * exactly, through SEND and SEND_TO (whose DELIVER frames exceed max_frame
 * by the sender id), and one byte more refused locally.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

static void test_65535_bytes_original_api(void **state)
{
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open(ct_port(state), NULL, 0);
    ct_ok(stupid_p2p_register_device(a, (const uint8_t *)"big-a"));
    ct_ok(stupid_p2p_subscribe_device(b, (const uint8_t *)"big-a"));
    const int32_t sizes[] = {0, 1, 255, 256, 257, 2048, 4096, 65534, 65535};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    uint8_t *bufs[NS];
    for (int i = 0; i < NS; i++) {
        bufs[i] = pattern((size_t)sizes[i] + 1, (unsigned)i);
        ct_ok(stupid_p2p_send_data(a, bufs[i], sizes[i]));
    }
    /* 65536 data bytes make a 65537-byte frame: too long. */
    uint8_t *too = pattern(65536, 99);
    assert_int_equal(stupid_p2p_send_data(a, too, 65536), STUPID_P2P_BAD_PARAM);
    ct_barrier(b);
    recv_data_buf_t *r = stupid_p2p_recv_data(b);
    assert_int_equal(r->num, NS);
    for (int i = 0; i < NS; i++) {
        assert_int_equal(r->recv_data[i]->length, sizes[i]);
        if (sizes[i])
            assert_memory_equal(r->recv_data[i]->data, bufs[i], (size_t)sizes[i]);
        free(bufs[i]);
    }
    stupid_p2p_free_recv_data_buf(r);
    free(too);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
}

static void test_65535_bytes_callback_and_send_to(void **state)
{
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open(ct_port(state), &rec, 1);
    /* The longest id, so that DELIVER frames are as long as they get. */
    char id[256];
    memset(id, 'I', 255);
    id[255] = 0;
    ct_ok(stupid_p2p_register(a, id, 255));
    ct_ok(stupid_p2p_register(b, "b", 1));
    ct_ok(stupid_p2p_subscribe(b, id, 255));
    uint8_t *big = pattern(65535, 7);
    for (int i = 0; i < 20; i++)
        ct_ok(stupid_p2p_send(a, big, 65535));
    /* SEND_TO: cmd, id_len, id and data within max_frame. */
    ct_ok(stupid_p2p_send_to(a, "b", 1, big, 65536 - 3));
    assert_int_equal(stupid_p2p_send_to(a, "b", 1, big, 65536 - 2), STUPID_P2P_BAD_PARAM);
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_msgs >= 21));
    pthread_mutex_lock(&rec.mu);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(rec.len[i], 65535);
        assert_true(rec.sum[i] == ct_checksum(big, 65535));
        assert_int_equal(rec.sender_len[i], 255);
    }
    assert_int_equal(rec.len[20], 65533);
    assert_true(rec.sum[20] == ct_checksum(big, 65533));
    assert_int_equal(rec.bad_nul, 0);
    pthread_mutex_unlock(&rec.mu);
    free(big);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    ct_rec_destroy(&rec);
}

/* A server with a larger --max-frame: the library takes the negotiated
 * limit from HELLO. */
static void test_negotiated_max_frame(void **state)
{
    (void)state;
    struct p2p_server srv;
    const char *const args[] = {"--max-frame", "200000", NULL};
    assert_int_equal(p2p_server_start(&srv, args), 0);
    int32_t a = ct_open(srv.port, NULL, 0);
    int32_t b = ct_open(srv.port, NULL, 0);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(a, &st));
    assert_int_equal(st.max_frame, 200000);
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    uint8_t *big = pattern(199999, 3);
    ct_ok(stupid_p2p_send(a, big, 199999));
    assert_int_equal(stupid_p2p_send(a, big, 200000), STUPID_P2P_BAD_PARAM);
    stupid_p2p_message_t *m = NULL;
    ct_ok(stupid_p2p_recv(b, &m, CT_WAIT_MS));
    assert_int_equal(m->length, 199999);
    assert_memory_equal(m->data, big, 199999);
    stupid_p2p_message_free(m);
    free(big);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    assert_int_equal(p2p_server_stop(&srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_65535_bytes_original_api),
        T(test_65535_bytes_callback_and_send_to),
        cmocka_unit_test(test_negotiated_max_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
