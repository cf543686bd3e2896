/* bench_seq.c - see bench_seq.h. */
#include "bench_seq.h"

#include <endian.h>
#include <string.h>

/* Called for every message sent and received (millions a second): memcpy
 * and the endian.h conversions compile to plain loads and stores. */
void bench_payload_stamp(uint8_t *payload, uint32_t source, uint64_t seq)
{
    uint32_t s = htole32(source);
    uint64_t q = htole64(seq);
    memcpy(payload, &s, sizeof s);
    memcpy(payload + 4, &q, sizeof q);
}

int bench_payload_read(const uint8_t *payload, size_t len, uint32_t *source, uint64_t *seq)
{
    if (len < BENCH_PAYLOAD_HEADER)
        return -1;
    uint32_t s;
    uint64_t q;
    memcpy(&s, payload, sizeof s);
    memcpy(&q, payload + 4, sizeof q);
    *source = le32toh(s);
    *seq = le64toh(q);
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
