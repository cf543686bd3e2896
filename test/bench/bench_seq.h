/*
 * bench_seq.h - what every p2pBench message carries, and the check that a
 * receiver sees each message from its source exactly once and in order.
 *
 * A payload starts with [u32 source index][u64 sequence], little-endian,
 * then filler up to the message size: the layout relaybench uses, so that
 * a capture from either tool reads the same. Sequences start at 0 and go up
 * by one per message a source sends.
 *
 * A receiver keeps one bench_seq per source it listens to. Each arrival is
 * compared with the sequence it expects next:
 *   - equal: in order;
 *   - higher: a gap (the messages in between were lost, or will come late);
 *   - lower: an old message (a duplicate, or a late one after a gap).
 * A correct relay produces only the first kind; the run fails on any other.
 * Losses at the tail, which no later arrival reveals, are found at the end
 * by comparing what each receiver got with what its source sent.
 */
#ifndef P2P_BENCH_SEQ_H
#define P2P_BENCH_SEQ_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_PAYLOAD_HEADER 12u

/* Writes the header into the first BENCH_PAYLOAD_HEADER bytes of payload. */
void bench_payload_stamp(uint8_t *payload, uint32_t source, uint64_t seq);

/* Reads the header; -1 when len is shorter than BENCH_PAYLOAD_HEADER. */
int bench_payload_read(const uint8_t *payload, size_t len, uint32_t *source, uint64_t *seq);

enum bench_seq_verdict {
    BENCH_SEQ_IN_ORDER = 0,
    BENCH_SEQ_GAP = 1,   /* ahead of the expected sequence */
    BENCH_SEQ_OLD = 2    /* behind it: duplicate or late   */
};

struct bench_seq {
    uint64_t next;       /* the sequence expected next                  */
    uint64_t received;   /* arrivals of every kind                      */
    uint64_t gaps;       /* arrivals ahead of next                      */
    uint64_t skipped;    /* sequences jumped over by those gaps         */
    uint64_t old;        /* arrivals behind next                        */
};

/* Classifies one arrival and advances the state: after a gap, the
 * receiver expects the message after the one that arrived. */
enum bench_seq_verdict bench_seq_accept(struct bench_seq *s, uint64_t seq);

/* Out-of-order arrivals of every kind (gaps + old): 0 for a correct run. */
uint64_t bench_seq_disorder(const struct bench_seq *s);

/* Messages of the `sent` a source sent that this receiver has not
 * accounted for: sent minus the arrivals that moved the expected sequence
 * on (in order or ahead of it); 0 when it got all of them. Counts losses
 * at the tail, which no gap reveals. */
uint64_t bench_seq_missing(const struct bench_seq *s, uint64_t sent);

#endif /* P2P_BENCH_SEQ_H */
