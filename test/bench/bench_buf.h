/*
 * bench_buf.h - the byte queue behind each p2pBench connection: bytes are
 * appended at the tail and consumed from the head.
 *
 * An empty, never-used queue owns no memory, so 19,000 idle connections
 * cost the generator little. Once a queue has grown it keeps its capacity
 * when it drains: a publisher refills the same buffer every loop turn, and
 * on this kind of virtual machine faulting fresh pages in costs more than
 * the traffic. Every queue has a hard cap (bench_buf_reserve fails past it).
 */
#ifndef P2P_BENCH_BUF_H
#define P2P_BENCH_BUF_H

#include <stddef.h>
#include <stdint.h>

struct bench_buf {
    uint8_t *data;
    size_t head;   /* first unconsumed byte                 */
    size_t tail;   /* one past the last byte (head <= tail) */
    size_t cap;
};

/* Bytes waiting between head and tail. */
static inline size_t bench_buf_len(const struct bench_buf *b) { return b->tail - b->head; }
static inline const uint8_t *bench_buf_bytes(const struct bench_buf *b) { return b->data + b->head; }

/* Returns room for n more bytes at the tail (follow with bench_buf_commit),
 * or NULL when the queue would pass max_bytes or memory runs out; the
 * queue is unchanged then. Live bytes are moved to the front when that
 * frees enough room and moves no more than it reclaims; otherwise the
 * capacity doubles. */
uint8_t *bench_buf_reserve(struct bench_buf *b, size_t n, size_t max_bytes);

static inline void bench_buf_commit(struct bench_buf *b, size_t n) { b->tail += n; }

/* Drops n bytes from the head (n <= bench_buf_len). */
static inline void bench_buf_consume(struct bench_buf *b, size_t n)
{
    b->head += n;
    if (b->head == b->tail)
        b->head = b->tail = 0;
}

/* bench_buf_reserve + memcpy + commit; 0, or -1 as bench_buf_reserve. */
int bench_buf_append(struct bench_buf *b, const void *src, size_t n, size_t max_bytes);

void bench_buf_free(struct bench_buf *b);

#endif /* P2P_BENCH_BUF_H */
