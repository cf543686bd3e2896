/*
 * sp_buf.h - a growable byte queue: bytes are appended at the back and
 * consumed from the front. Used for the output queue (frames written by
 * callers, drained by send) and the input buffer (bytes read, parsed into
 * frames).
 *
 * Like every sp_*.h file, this holds static functions and is included by
 * exactly one translation unit (stupidp2p.c): nothing but the public
 * stupid_p2p_* names leaves libstupidp2p.a. Not thread-safe: the owner
 * holds whatever lock guards it.
 */
#ifndef SP_BUF_H
#define SP_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sp_buf {
    uint8_t *data;
    size_t off;   /* first unconsumed byte            */
    size_t len;   /* end of the valid bytes (>= off)  */
    size_t cap;
};

static size_t sp_buf_used(const struct sp_buf *b) { return b->len - b->off; }
/* NULL for a buffer never filled (data NULL, off 0): NULL + 0 is undefined
 * in C, and callers take the head of an empty buffer (a fallback with
 * nothing to re-send). */
static const uint8_t *sp_buf_head(const struct sp_buf *b) { return b->data == NULL ? NULL : b->data + b->off; }

static void sp_buf_free(struct sp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

static void sp_buf_clear(struct sp_buf *b) { b->off = b->len = 0; }

/* Makes room for `extra` more bytes after len. Returns 0, or -1 when out of
 * memory (the buffer is unchanged). */
static int sp_buf_reserve(struct sp_buf *b, size_t extra)
{
    if (b->off > 0 && (b->off == b->len || b->cap - b->len < extra)) {
        size_t used = b->len - b->off;
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
    }
    if (b->cap - b->len >= extra)
        return 0;
    size_t want = b->cap ? b->cap : 4096;
    while (want - b->len < extra) {
        if (want > SIZE_MAX / 2)
            return -1;
        want *= 2;
    }
    uint8_t *p = realloc(b->data, want);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = want;
    return 0;
}

/* Appends n bytes (reserve first, or check the result). */
static int sp_buf_append(struct sp_buf *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    if (sp_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static void sp_buf_consume(struct sp_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

/* Gives memory back after a burst: a buffer that grew past `keep` and is
 * empty now shrinks to nothing (it is reallocated on demand). */
static void sp_buf_trim(struct sp_buf *b, size_t keep)
{
    if (b->off == b->len && b->cap > keep)
        sp_buf_free(b);
}

#endif /* SP_BUF_H */
