/*
 * soak_frame.h - one frame appended to a soak client's output buffer: the
 * 4-byte length, then head[0..head_len) and data[0..len). Shared by the
 * soaks (soak.c, cluster_soak.c).
 */
#ifndef STUPIDP2P_SOAK_FRAME_H
#define STUPIDP2P_SOAK_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"

/* Appends the frame to out[*used..cap); returns 0, with nothing appended,
 * when it does not fit (a client that does not drain: its loss). */
static inline int soak_put_frame(uint8_t *out, size_t *used, size_t cap, const uint8_t *head,
                                 size_t head_len, const void *data, size_t len)
{
    size_t total = P2P_FRAME_HEADER_SIZE + head_len + len;
    if (*used + total > cap)
        return 0;
    p2p_frame_header_encode(out + *used, (uint32_t)(head_len + len));
    memcpy(out + *used + P2P_FRAME_HEADER_SIZE, head, head_len);
    if (len)
        memcpy(out + *used + P2P_FRAME_HEADER_SIZE + head_len, data, len);
    *used += total;
    return 1;
}

#endif
