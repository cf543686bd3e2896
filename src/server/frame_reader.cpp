// frame_reader.cpp - see frame_reader.h.
#include "frame_reader.h"

#include "codec.h"
#include "protocol.h"

FrameStatus next_frame(const RingBuffer& in, uint32_t max_payload, uint8_t* scratch,
                       FrameView* out) {
    // The header is almost always contiguous: read it in place.
    uint8_t copy[P2P_FRAME_HEADER_SIZE];
    const uint8_t* header = in.contiguous(0, P2P_FRAME_HEADER_SIZE);
    if (header == nullptr) {
        if (!in.peek(copy, 0, sizeof copy)) return FrameStatus::incomplete;
        header = copy;
    }
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
