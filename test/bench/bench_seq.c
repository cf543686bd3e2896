/* bench_seq.c - see bench_seq.h. */
#include "bench_seq.h"

#include <string.h>

static void put_le(uint8_t *p, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void bench_payload_stamp(uint8_t *payload, uint32_t source, uint64_t seq)
{
    put_le(payload, source, 4);
    put_le(payload + 4, seq, 8);
}

int bench_payload_read(const uint8_t *payload, size_t len, uint32_t *source, uint64_t *seq)
{
    if (len < BENCH_PAYLOAD_HEADER)
        return -1;
    *source = (uint32_t)get_le(payload, 4);
    *seq = get_le(payload + 4, 8);
    return 0;
}

enum bench_seq_verdict bench_seq_accept(struct bench_seq *s, uint64_t seq)
{
    ++s->received;
    if (seq == s->next) {
        ++s->next;
        return BENCH_SEQ_IN_ORDER;
    }
    if (seq > s->next) {
        ++s->gaps;
        s->skipped += seq - s->next;
        s->next = seq + 1;
        return BENCH_SEQ_GAP;
    }
    ++s->old;
    return BENCH_SEQ_OLD;
}

uint64_t bench_seq_disorder(const struct bench_seq *s)
{
    return s->gaps + s->old;
}

uint64_t bench_seq_missing(const struct bench_seq *s, uint64_t sent)
{
    /* next == in-order arrivals + gap arrivals + skipped sequences. */
    uint64_t reached = s->next - s->skipped;
    return sent > reached ? sent - reached : 0;
}
