/*
 * sp_clock.h - monotonic time in milliseconds, absolute timespecs for
 * pthread_cond_timedwait on CLOCK_MONOTONIC, and the pseudo-random numbers
 * behind the reconnect jitter. See sp_buf.h for why this is a header of
 * static functions.
 */
#ifndef SP_CLOCK_H
#define SP_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (which cannot fail for a valid clock id:
 * clock_gettime(2)). */
static uint64_t sp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The absolute CLOCK_MONOTONIC time `ms` from now. */
static struct timespec sp_deadline_ts(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* splitmix64: small, fast, good enough to spread reconnects apart. */
static uint64_t sp_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t sp_rand_seed(uint64_t salt)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (salt * 0x2545f4914f6cdd1dull);
    (void)sp_rand_next(&s);
    return s;
}

/* Full jitter (exponential backoff): a delay uniform in [0, envelope], the
 * envelope doubling with every failed attempt from initial up to max. */
static uint64_t sp_backoff_ms(uint64_t *rng, unsigned attempt, uint64_t initial, uint64_t max)
{
    uint64_t env = initial;
    for (unsigned i = 0; i < attempt && env < max; i++)
        env *= 2;
    if (env > max)
        env = max;
    return sp_rand_next(rng) % (env + 1);
}

#endif /* SP_CLOCK_H */
