/*
 * test_client_resolve.c - a host name whose lookup never ends must not hold
 * init past connect_timeout_ms, nor deinit at all.
 *
 * The seam: this binary defines getaddrinfo itself. The library is linked
 * statically into it, so its calls bind to this definition; names ending
 * in NEVER block in it until the test lets them go (or a safety bound of
 * STUCK_MS passes), everything else goes to the C library's getaddrinfo.
 * That stands in for a name server that never answers, on loopback only
 * and without root, a network namespace or a resolv.conf of our own
 * (glibc reads /etc/resolv.conf and nothing else). "once.NEVER" resolves
 * to 127.0.0.1 the first time and then blocks, for a reconnect that meets
 * a dead name server.
 *
 * At the end every blocked lookup is let go and the test waits until they
 * have returned, so that the resolver threads the library abandoned
 * finish and free their jobs (LeakSanitizer checks at exit).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <netdb.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)
#define NEVER ".never.test"
#define STUCK_MS 20000   /* longer than any wait below: a stuck library fails */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int calls;           /* lookups of NEVER names                     */
    int blocked;         /* of which inside getaddrinfo now            */
    int released;        /* let them all return                        */
    int once_used;       /* "once" resolved already                    */
} gai = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static int real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                            struct addrinfo **res)
{
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (real == NULL)
        return EAI_SYSTEM;
    return real(node, service, hints, res);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    size_t n = node ? strlen(node) : 0;
    if (n < sizeof NEVER - 1 || strcmp(node + n - (sizeof NEVER - 1), NEVER) != 0 ||
        (hints != NULL && (hints->ai_flags & AI_NUMERICHOST)))
        return real_getaddrinfo(node, service, hints, res); /* numeric: never blocks */
    pthread_mutex_lock(&gai.mu);
    gai.calls++;
    if (strncmp(node, "once.", 5) == 0 && !gai.once_used) {
        gai.once_used = 1;
        pthread_mutex_unlock(&gai.mu);
        return real_getaddrinfo("127.0.0.1", service, hints, res);
    }
    gai.blocked++;
    pthread_cond_broadcast(&gai.cond);
    struct timespec until = ct_deadline(STUCK_MS);
    while (!gai.released)
        if (pthread_cond_timedwait(&gai.cond, &gai.mu, &until) == ETIMEDOUT)
            break;
    gai.blocked--;
    pthread_cond_broadcast(&gai.cond);
    pthread_mutex_unlock(&gai.mu);
    return EAI_AGAIN;
}

/* init gives up on the lookup after connect_timeout_ms: it returns while
 * getaddrinfo is still blocked. */
static void test_init_bounded_while_lookup_hangs(void **state)
{
    stupid_p2p_options_t o;
    ct_options(&o, NULL, 0);
    o.connect_timeout_ms = 300;
    int before = CT_GET(&gai, gai.calls);
    int32_t h = stupid_p2p_init_ex("stuck" NEVER, ct_port(state), &o);
    int blocked = CT_GET(&gai, gai.blocked);
    assert_int_equal(h, STUPID_P2P_NET_ERROR);
    assert_int_equal(CT_GET(&gai, gai.calls), before + 1);
    assert_true(blocked >= 1); /* init did not wait for it */
    assert_string_equal(stupid_p2p_connect_error(0), "host name resolution timed out");
}

/* A reconnect meets a lookup that never ends: deinit returns at once,
 * abandoning it, and nothing is left behind. */
static void test_deinit_while_lookup_hangs(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    stupid_p2p_options_t o;
    ct_options(&o, &rec, 0);
    o.connect_timeout_ms = 60000; /* only deinit may end the wait */
    int32_t h = stupid_p2p_init_ex("once" NEVER, srv->port, &o);
    assert_true(h > 0);
    ct_ok(stupid_p2p_register(h, "looked-up", 9));
    int blocked = CT_GET(&gai, gai.blocked);
    p2p_server_kill(srv);
    assert_true(CT_WAIT_FOR(&gai, CT_WAIT_MS, gai.blocked > blocked));
    assert_int_equal(stupid_p2p_get_state(h), STUPID_P2P_STATE_CONNECTING);
    stupid_p2p_deinit(h);
    /* Still blocked: deinit did not wait for the lookup. */
    assert_true(CT_GET(&gai, gai.blocked) > blocked);
    assert_int_equal(p2p_server_restart(srv, NULL), 0);
    ct_rec_destroy(&rec);
}

/* Lets every blocked lookup return and waits until they have. */
static void test_release_lookups(void **state)
{
    (void)state;
    pthread_mutex_lock(&gai.mu);
    gai.released = 1;
    pthread_cond_broadcast(&gai.cond);
    pthread_mutex_unlock(&gai.mu);
    assert_true(CT_WAIT_FOR(&gai, CT_WAIT_MS, gai.blocked == 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_init_bounded_while_lookup_hangs),
        T(test_deinit_while_lookup_hangs),
        cmocka_unit_test(test_release_lookups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
