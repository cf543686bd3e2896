/* frame.c - see frame.h. */
#include "frame.h"

#include "protocol.h"

void p2p_frame_header_encode(uint8_t header[4], uint32_t length)
{
    header[0] = (uint8_t)(length >> 24);
    header[1] = (uint8_t)(length >> 16);
    header[2] = (uint8_t)(length >> 8);
    header[3] = (uint8_t)length;
}

uint32_t p2p_frame_header_decode(const uint8_t header[4])
{
    return (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
           (uint32_t)header[2] << 8 | (uint32_t)header[3];
}

enum p2p_frame_result p2p_frame_parse(const uint8_t *buf, size_t len,
                                      uint32_t max_payload,
                                      struct p2p_frame *out)
{
    out->payload = NULL;
    out->length = 0;
    out->consumed = 0;
    if (len < P2P_FRAME_HEADER_SIZE) {
        out->need = P2P_FRAME_HEADER_SIZE;
        return P2P_FRAME_INCOMPLETE;
    }
    uint32_t length = p2p_frame_header_decode(buf);
    out->length = length;
    out->need = (size_t)P2P_FRAME_HEADER_SIZE + length;
    if (length > max_payload)
        return P2P_FRAME_TOO_LONG;
    if (len - P2P_FRAME_HEADER_SIZE < length)
        return P2P_FRAME_INCOMPLETE;
    out->payload = buf + P2P_FRAME_HEADER_SIZE;
    out->consumed = out->need;
    return P2P_FRAME_COMPLETE;
}
