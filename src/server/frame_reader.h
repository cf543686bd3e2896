// frame_reader.h - takes whole frames out of a connection's input ring.
//
// The codec (src/common/codec.h) works on contiguous bytes; a ring may hold
// a frame across its wrap. next_frame() hands out a pointer into the ring
// when the payload is contiguous (the common case: no copy) and otherwise
// copies it into the caller's scratch buffer. A header announcing more than
// max_payload is reported as soon as its 4 bytes are in, before any payload
// is buffered.
#pragma once

#include <cstdint>

#include "ring_buffer.h"

enum class FrameStatus { complete, incomplete, too_long };

struct FrameView {
    const uint8_t* payload;  // valid until the ring is consumed or appended to
    uint32_t length;         // payload bytes; the frame is 4 + length bytes
};

// scratch must hold max_payload bytes. On complete, the caller handles the
// payload and then calls in.consume(4 + out->length). On too_long,
// out->length is the announced length.
FrameStatus next_frame(const RingBuffer& in, uint32_t max_payload, uint8_t* scratch,
                       FrameView* out);
