/* bench_buf.c - see bench_buf.h. */
#include "bench_buf.h"

#include <stdlib.h>
#include <string.h>

/* Smallest allocation: a connection's setup requests fit in it. */
#define BENCH_BUF_MIN 256u

uint8_t *bench_buf_reserve(struct bench_buf *b, size_t n, size_t max_bytes)
{
    size_t live = b->tail - b->head;
    if (n > max_bytes || live > max_bytes - n)
        return NULL;
    if (b->cap - b->tail >= n)
        return b->data + b->tail;
    if (live + n <= b->cap && b->head >= live) {
        /* Sliding moves at most as many bytes as it reclaims: amortised
         * O(1) per byte, unlike compacting a big backlog for a little room. */
        memmove(b->data, b->data + b->head, live);
    } else {
        size_t cap = b->cap != 0 ? b->cap : BENCH_BUF_MIN;
        while (cap < live + n)
            cap *= 2;
        uint8_t *p = malloc(cap);
        if (p == NULL)
            return NULL;
        if (live != 0)
            memcpy(p, b->data + b->head, live);
        free(b->data);
        b->data = p;
        b->cap = cap;
    }
    b->head = 0;
    b->tail = live;
    return b->data + b->tail;
}

int bench_buf_append(struct bench_buf *b, const void *src, size_t n, size_t max_bytes)
{
    if (n == 0)
        return 0;
    uint8_t *w = bench_buf_reserve(b, n, max_bytes);
    if (w == NULL)
        return -1;
    memcpy(w, src, n);
    bench_buf_commit(b, n);
    return 0;
}

void bench_buf_free(struct bench_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->head = b->tail = b->cap = 0;
}
