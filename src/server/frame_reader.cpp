// frame_reader.cpp - see frame_reader.h.
#include "frame_reader.h"

#include "codec.h"
#include "protocol.h"

FrameStatus next_frame(const RingBuffer& in, uint32_t max_payload, uint8_t* scratch,
                       FrameView* out) {
    uint8_t header[P2P_FRAME_HEADER_SIZE];
    if (!in.peek(header, 0, sizeof header)) return FrameStatus::incomplete;
    uint32_t length = p2p_frame_header_decode(header);
    out->length = length;
    out->payload = nullptr;
    if (length > max_payload) return FrameStatus::too_long;
    if (in.size() - P2P_FRAME_HEADER_SIZE < length) return FrameStatus::incomplete;
    const uint8_t* p = in.contiguous(P2P_FRAME_HEADER_SIZE, length);
    if (p == nullptr && length != 0) {
        in.peek(scratch, P2P_FRAME_HEADER_SIZE, length);
        p = scratch;
    }
    out->payload = p;
    return FrameStatus::complete;
}
