// test_frame_codec.cpp - unit tests for the frame codec (src/common/codec.c)
// and the server's frame reader over a RingBuffer (src/server/frame_reader).
//
// Both are fed the same streams whole, split at every offset, byte by byte,
// and many frames at once (STYLE.md practice 19), and checked byte-exactly
// against the payloads that went in. The C parser is always handed a heap
// block of exactly the bytes it may read, so that ASan catches a read past
// the end; the reader's scratch buffer is exactly max_payload bytes for the
// same reason. Frames that straddle the ring's wrap, also with the counters
// near 2^32, must come out of the scratch copy, exact.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <memory>
#include <vector>

// CMocka last among the system headers: it defines fail() and friends as
// macros. Its 1.1 header has no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

#include "codec.h"
#include "frame_reader.h"
#include "protocol.h"
#include "ring_buffer.h"

namespace {

using Bytes = std::vector<uint8_t>;

const uint32_t kMax = 1000;  // max_payload for the stream tests

Bytes pattern(uint32_t seed, size_t n) {
    Bytes v(n);
    for (size_t i = 0; i < n; ++i)
        v[i] = static_cast<uint8_t>((seed * 977u + static_cast<uint32_t>(i) * 131u + 7u) ^ (i >> 8));
    return v;
}

Bytes frame_of(const Bytes& payload) {
    Bytes f(P2P_FRAME_HEADER_SIZE);
    p2p_frame_header_encode(f.data(), static_cast<uint32_t>(payload.size()));
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

Bytes header_of(uint32_t length) {
    Bytes h(P2P_FRAME_HEADER_SIZE);
    p2p_frame_header_encode(h.data(), length);
    return h;
}

// A mix: empty frames, one-byte commands, binary ids, a maximum-size frame,
// sizes around 255/256.
std::vector<Bytes> sample_payloads() {
    std::vector<Bytes> p;
    p.push_back({});
    p.push_back({P2P_CMD_HEARTBEAT});
    p.push_back({P2P_CMD_REGISTER, 'd', 'e', 'v', '-', '1'});
    p.push_back({P2P_CMD_SEND, 0x00, 0xFF, 0x80, 0x00, 0x7F});
    p.push_back({});
    Bytes id = pattern(1, 255);
    id.insert(id.begin(), P2P_CMD_SUBSCRIBE);
    p.push_back(id);
    p.push_back(pattern(2, kMax));  // exactly the maximum
    p.push_back({0x00});
    p.push_back(pattern(3, 256));
    p.push_back({});
    p.push_back(pattern(4, 3));
    p.push_back(pattern(5, 513));
    return p;
}

Bytes stream_of(const std::vector<Bytes>& payloads) {
    Bytes s;
    for (const Bytes& p : payloads) {
        Bytes f = frame_of(p);
        s.insert(s.end(), f.begin(), f.end());
    }
    return s;
}

// ---- a receiver on the C codec: accumulates bytes, parses what it can ----

struct CodecReceiver {
    uint32_t max_payload;
    Bytes acc;
    std::vector<Bytes> frames;

    void feed(const uint8_t* data, size_t n) {
        acc.insert(acc.end(), data, data + n);
        for (;;) {
            // Exactly acc.size() bytes on the heap: a read past them is an
            // ASan error.
            std::unique_ptr<uint8_t[]> exact(new uint8_t[acc.size()]);
            if (!acc.empty()) std::memcpy(exact.get(), acc.data(), acc.size());
            struct p2p_frame f;
            std::memset(&f, 0xA5, sizeof f);
            enum p2p_frame_result r = p2p_frame_parse(exact.get(), acc.size(), max_payload, &f);
            if (r == P2P_FRAME_INCOMPLETE) {
                assert_null(f.payload);
                assert_int_equal(f.consumed, 0);
                assert_true(f.need > acc.size());
                if (acc.size() < P2P_FRAME_HEADER_SIZE) {
                    assert_int_equal(f.need, P2P_FRAME_HEADER_SIZE);
                } else {
                    assert_int_equal(f.need, P2P_FRAME_HEADER_SIZE + p2p_frame_header_decode(acc.data()));
                }
                return;
            }
            assert_int_equal(r, P2P_FRAME_COMPLETE);
            assert_int_equal(f.consumed, P2P_FRAME_HEADER_SIZE + f.length);
            assert_true(f.consumed <= acc.size());
            assert_ptr_equal(f.payload, exact.get() + P2P_FRAME_HEADER_SIZE);
            frames.emplace_back(f.payload, f.payload + f.length);
            acc.erase(acc.begin(), acc.begin() + static_cast<std::ptrdiff_t>(f.consumed));
        }
    }
};

// ---- a receiver on next_frame over a RingBuffer ---------------------------

struct RingReceiver {
    uint32_t max_payload;
    RingLimits ring_limits;
    RingBuffer ring;
    std::unique_ptr<uint8_t[]> scratch;  // exactly max_payload bytes
    std::vector<Bytes> frames;
    int copied = 0;  // frames that came through scratch (straddled the wrap)

    RingReceiver(uint32_t max, uint32_t ring_max, uint32_t ring_initial, uint32_t start)
        : max_payload(max),
          ring_limits(ring_max, ring_initial),
          ring(ring_limits),
          scratch(new uint8_t[max]) {
        ring.set_counters_for_test(start);
    }

    // Like a read handler: a read of 0 bytes is EOF, never appended (the
    // ring's own test covers zero-length appends).
    void feed(const uint8_t* data, size_t n) {
        if (n != 0) assert_true(ring.append(data, n));
        drain();
    }

    void drain() {
        for (;;) {
            FrameView v{nullptr, 0xDEADBEEF};
            FrameStatus st = next_frame(ring, max_payload, scratch.get(), &v);
            if (st == FrameStatus::incomplete) {
                if (ring.size() >= P2P_FRAME_HEADER_SIZE) {
                    uint8_t h[4];
                    assert_true(ring.peek(h, 0, 4));
                    assert_true(ring.size() - 4 < p2p_frame_header_decode(h));
                }
                return;
            }
            assert_int_equal(static_cast<int>(st), static_cast<int>(FrameStatus::complete));
            assert_true(v.length <= max_payload);
            assert_true(ring.size() >= 4 + v.length);
            // Into the ring when the payload is contiguous there, else the
            // scratch copy: nothing else.
            const uint8_t* direct = ring.contiguous(4, v.length);
            if (direct != nullptr) {
                assert_ptr_equal(v.payload, direct);
            } else {
                assert_ptr_equal(v.payload, scratch.get());
                ++copied;
            }
            if (v.length > 0) assert_non_null(v.payload);
            // The payload, byte-exact, as peek() sees it.
            Bytes p(v.length);
            assert_true(ring.peek(p.data(), 4, v.length));
            if (v.length > 0) assert_memory_equal(v.payload, p.data(), v.length);
            frames.emplace_back(v.payload, v.payload + v.length);
            ring.consume(4 + v.length);
        }
    }
};

void assert_frames(const std::vector<Bytes>& got, const std::vector<Bytes>& want) {
    assert_int_equal(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        assert_int_equal(got[i].size(), want[i].size());
        if (!want[i].empty()) assert_memory_equal(got[i].data(), want[i].data(), want[i].size());
    }
}

// ---- the C codec -----------------------------------------------------------

void test_header_encode_decode(void**) {
    uint8_t h[4];
    p2p_frame_header_encode(h, 0);
    assert_memory_equal(h, "\x00\x00\x00\x00", 4);
    p2p_frame_header_encode(h, 2);
    assert_memory_equal(h, "\x00\x00\x00\x02", 4);
    p2p_frame_header_encode(h, 0x01020304u);
    assert_memory_equal(h, "\x01\x02\x03\x04", 4);
    p2p_frame_header_encode(h, 65536);
    assert_memory_equal(h, "\x00\x01\x00\x00", 4);
    p2p_frame_header_encode(h, 0xFFFFFFFFu);
    assert_memory_equal(h, "\xff\xff\xff\xff", 4);
    p2p_frame_header_encode(h, 0x80000001u);
    assert_memory_equal(h, "\x80\x00\x00\x01", 4);

    const uint8_t a[4] = {0x00, 0x00, 0x01, 0x00};
    assert_int_equal(p2p_frame_header_decode(a), 256);
    const uint8_t b[4] = {0xFE, 0xDC, 0xBA, 0x98};
    assert_int_equal(p2p_frame_header_decode(b), 0xFEDCBA98u);
    const uint32_t values[] = {0, 1, 255, 256, 65535, 65536, 65537, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu};
    for (uint32_t v : values) {
        p2p_frame_header_encode(h, v);
        assert_int_equal(p2p_frame_header_decode(h), v);
    }
}

void test_parse_whole_frame(void**) {
    const uint8_t buf[] = {0, 0, 0, 6, 0x01, 'd', 'e', 'v', '-', '1',
                           0, 0, 0, 1, 0x07};  // and the start of another
    struct p2p_frame f;
    assert_int_equal(p2p_frame_parse(buf, 10, 65536, &f), P2P_FRAME_COMPLETE);
    assert_int_equal(f.length, 6);
    assert_int_equal(f.consumed, 10);
    assert_ptr_equal(f.payload, buf + 4);
    assert_memory_equal(f.payload, "\x01" "dev-1", 6);
    // With the next frame behind it: still the first one only.
    assert_int_equal(p2p_frame_parse(buf, sizeof buf, 65536, &f), P2P_FRAME_COMPLETE);
    assert_int_equal(f.consumed, 10);
    assert_int_equal(f.length, 6);
    assert_int_equal(p2p_frame_parse(buf + 10, 5, 65536, &f), P2P_FRAME_COMPLETE);
    assert_int_equal(f.length, 1);
    assert_int_equal(f.payload[0], 0x07);
    assert_int_equal(f.consumed, 5);
}

void test_parse_header_incomplete(void**) {
    const uint8_t hdr[4] = {0, 0, 0, 5};
    for (size_t n = 0; n < 4; ++n) {
        std::unique_ptr<uint8_t[]> exact(new uint8_t[n]);
        if (n) std::memcpy(exact.get(), hdr, n);
        struct p2p_frame f;
        std::memset(&f, 0xA5, sizeof f);
        assert_int_equal(p2p_frame_parse(exact.get(), n, 65536, &f), P2P_FRAME_INCOMPLETE);
        assert_int_equal(f.need, 4);
        assert_int_equal(f.consumed, 0);
        assert_null(f.payload);
    }
    // A null buffer with length 0 is fine too.
    struct p2p_frame f;
    assert_int_equal(p2p_frame_parse(nullptr, 0, 65536, &f), P2P_FRAME_INCOMPLETE);
    assert_int_equal(f.need, 4);
}

void test_parse_payload_incomplete(void**) {
    Bytes fr = frame_of(pattern(9, 300));
    for (size_t n = 4; n < fr.size(); ++n) {
        std::unique_ptr<uint8_t[]> exact(new uint8_t[n]);
        std::memcpy(exact.get(), fr.data(), n);
        struct p2p_frame f;
        assert_int_equal(p2p_frame_parse(exact.get(), n, 65536, &f), P2P_FRAME_INCOMPLETE);
        assert_int_equal(f.need, 304);
        assert_int_equal(f.length, 300);
        assert_int_equal(f.consumed, 0);
        assert_null(f.payload);
    }
    struct p2p_frame f;
    assert_int_equal(p2p_frame_parse(fr.data(), fr.size(), 65536, &f), P2P_FRAME_COMPLETE);
    assert_int_equal(f.consumed, 304);
}

void test_parse_empty_frame(void**) {
    const uint8_t buf[4] = {0, 0, 0, 0};
    struct p2p_frame f;
    assert_int_equal(p2p_frame_parse(buf, 4, 65536, &f), P2P_FRAME_COMPLETE);
    assert_int_equal(f.length, 0);
    assert_int_equal(f.consumed, 4);
    // Also with a max_payload of 0.
    assert_int_equal(p2p_frame_parse(buf, 4, 0, &f), P2P_FRAME_COMPLETE);
    assert_int_equal(f.consumed, 4);
    const uint8_t one[5] = {0, 0, 0, 1, 0x07};
    assert_int_equal(p2p_frame_parse(one, 5, 0, &f), P2P_FRAME_TOO_LONG);
    assert_int_equal(f.length, 1);
}

void test_parse_max_and_oversize(void**) {
    // Exactly max_payload: accepted.
    Bytes fr = frame_of(pattern(1, P2P_DEFAULT_MAX_FRAME));
    struct p2p_frame f;
    assert_int_equal(p2p_frame_parse(fr.data(), fr.size(), P2P_DEFAULT_MAX_FRAME, &f),
                     P2P_FRAME_COMPLETE);
    assert_int_equal(f.length, 65536);
    assert_int_equal(f.consumed, 65540);
    assert_memory_equal(f.payload, fr.data() + 4, 65536);
    // One byte short of it: incomplete, not too long.
    assert_int_equal(p2p_frame_parse(fr.data(), fr.size() - 1, P2P_DEFAULT_MAX_FRAME, &f),
                     P2P_FRAME_INCOMPLETE);

    // max + 1: too long as soon as the 4 header bytes are there.
    Bytes h = header_of(P2P_DEFAULT_MAX_FRAME + 1);
    assert_memory_equal(h.data(), "\x00\x01\x00\x01", 4);
    for (size_t n = 0; n < 4; ++n) {
        std::unique_ptr<uint8_t[]> exact(new uint8_t[n]);
        if (n) std::memcpy(exact.get(), h.data(), n);
        assert_int_equal(p2p_frame_parse(exact.get(), n, P2P_DEFAULT_MAX_FRAME, &f),
                         P2P_FRAME_INCOMPLETE);
    }
    std::unique_ptr<uint8_t[]> four(new uint8_t[4]);
    std::memcpy(four.get(), h.data(), 4);
    assert_int_equal(p2p_frame_parse(four.get(), 4, P2P_DEFAULT_MAX_FRAME, &f), P2P_FRAME_TOO_LONG);
    assert_int_equal(f.length, 65537);
    assert_int_equal(f.consumed, 0);
    assert_null(f.payload);
    // Also with payload bytes present.
    Bytes big = frame_of(pattern(2, P2P_DEFAULT_MAX_FRAME + 1));
    assert_int_equal(p2p_frame_parse(big.data(), big.size(), P2P_DEFAULT_MAX_FRAME, &f),
                     P2P_FRAME_TOO_LONG);
    // The largest announcement possible.
    const uint8_t ff[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(p2p_frame_parse(ff, 4, P2P_DEFAULT_MAX_FRAME, &f), P2P_FRAME_TOO_LONG);
    assert_int_equal(f.length, 0xFFFFFFFFu);
    // ... and accepted as incomplete if the caller allows it all.
    assert_int_equal(p2p_frame_parse(ff, 4, 0xFFFFFFFFu, &f), P2P_FRAME_INCOMPLETE);
    assert_int_equal(f.need, size_t{4} + 0xFFFFFFFFu);
}

// Many frames in one buffer, walked by `consumed`.
void test_parse_many_in_one_buffer(void**) {
    std::vector<Bytes> want = sample_payloads();
    Bytes s = stream_of(want);
    std::unique_ptr<uint8_t[]> exact(new uint8_t[s.size()]);
    std::memcpy(exact.get(), s.data(), s.size());
    std::vector<Bytes> got;
    size_t off = 0;
    while (off < s.size()) {
        struct p2p_frame f;
        assert_int_equal(p2p_frame_parse(exact.get() + off, s.size() - off, kMax, &f),
                         P2P_FRAME_COMPLETE);
        got.emplace_back(f.payload, f.payload + f.length);
        off += f.consumed;
    }
    assert_int_equal(off, s.size());
    assert_frames(got, want);
}

void test_parse_stream_whole_split_bytewise(void**) {
    std::vector<Bytes> want = sample_payloads();
    Bytes s = stream_of(want);
    {
        CodecReceiver rx{kMax, {}, {}};
        rx.feed(s.data(), s.size());
        assert_frames(rx.frames, want);
        assert_true(rx.acc.empty());
    }
    for (size_t k = 0; k <= s.size(); ++k) {
        CodecReceiver rx{kMax, {}, {}};
        rx.feed(s.data(), k);
        rx.feed(s.data() + k, s.size() - k);
        assert_frames(rx.frames, want);
        assert_true(rx.acc.empty());
    }
    {
        CodecReceiver rx{kMax, {}, {}};
        for (size_t i = 0; i < s.size(); ++i) rx.feed(s.data() + i, 1);
        assert_frames(rx.frames, want);
        assert_true(rx.acc.empty());
    }
}

// ---- next_frame over a RingBuffer ----------------------------------------

void test_next_frame_whole(void**) {
    const RingLimits ring_limits(1u << 16, 64);
    RingBuffer ring(ring_limits);
    std::unique_ptr<uint8_t[]> scratch(new uint8_t[kMax]);
    Bytes payload = {P2P_CMD_REGISTER, 'a', '\0', 0xFF};
    Bytes fr = frame_of(payload);
    assert_true(ring.append(fr.data(), fr.size()));
    FrameView v{nullptr, 0};
    assert_int_equal(static_cast<int>(next_frame(ring, kMax, scratch.get(), &v)),
                     static_cast<int>(FrameStatus::complete));
    assert_int_equal(v.length, 4);
    assert_ptr_equal(v.payload, ring.contiguous(4, 4));  // no copy
    assert_true(v.payload != scratch.get());
    assert_memory_equal(v.payload, payload.data(), 4);
    // next_frame does not consume.
    assert_int_equal(ring.size(), 8);
    ring.consume(4 + v.length);
    assert_int_equal(static_cast<int>(next_frame(ring, kMax, scratch.get(), &v)),
                     static_cast<int>(FrameStatus::incomplete));
}

void test_next_frame_incomplete(void**) {
    std::unique_ptr<uint8_t[]> scratch(new uint8_t[kMax]);
    Bytes fr = frame_of(pattern(3, 100));
    // Header incomplete (including an empty, never-allocated ring), then
    // payload incomplete: nothing until the last byte.
    const RingLimits ring_limits(1u << 16, 16);
    RingBuffer ring(ring_limits);
    FrameView v{nullptr, 0};
    assert_int_equal(static_cast<int>(next_frame(ring, kMax, scratch.get(), &v)),
                     static_cast<int>(FrameStatus::incomplete));
    for (size_t i = 0; i < fr.size(); ++i) {
        assert_true(ring.append(fr.data() + i, 1));
        FrameStatus st = next_frame(ring, kMax, scratch.get(), &v);
        if (i + 1 < fr.size()) {
            assert_int_equal(static_cast<int>(st), static_cast<int>(FrameStatus::incomplete));
        } else {
            assert_int_equal(static_cast<int>(st), static_cast<int>(FrameStatus::complete));
            assert_int_equal(v.length, 100);
            assert_memory_equal(v.payload, fr.data() + 4, 100);
        }
    }
}

void test_next_frame_empty_frame(void**) {
    const RingLimits ring_limits(1u << 16, 16);
    RingBuffer ring(ring_limits);
    std::unique_ptr<uint8_t[]> scratch(new uint8_t[kMax]);
    const uint8_t two[] = {0, 0, 0, 0, 0, 0, 0, 1, 0x07};
    assert_true(ring.append(two, sizeof two));
    FrameView v{nullptr, 99};
    assert_int_equal(static_cast<int>(next_frame(ring, kMax, scratch.get(), &v)),
                     static_cast<int>(FrameStatus::complete));
    assert_int_equal(v.length, 0);
    ring.consume(4);
    assert_int_equal(static_cast<int>(next_frame(ring, kMax, scratch.get(), &v)),
                     static_cast<int>(FrameStatus::complete));
    assert_int_equal(v.length, 1);
    assert_int_equal(v.payload[0], 0x07);
    ring.consume(5);
    assert_true(ring.empty());
}

// L == max_payload is accepted; max + 1 is too long as soon as the header
// is in, with the announced length reported, before any payload arrives.
void test_next_frame_max_and_too_long(void**) {
    const uint32_t max = P2P_DEFAULT_MAX_FRAME;
    std::unique_ptr<uint8_t[]> scratch(new uint8_t[max]);
    {
        const RingLimits ring_limits(max + 4, 1024);
        RingBuffer ring(ring_limits);
        Bytes fr = frame_of(pattern(7, max));
        assert_true(ring.append(fr.data(), fr.size()));
        FrameView v{nullptr, 0};
        assert_int_equal(static_cast<int>(next_frame(ring, max, scratch.get(), &v)),
                         static_cast<int>(FrameStatus::complete));
        assert_int_equal(v.length, max);
        assert_memory_equal(v.payload, fr.data() + 4, max);
    }
    {
        const RingLimits ring_limits(max + 4, 1024);
        RingBuffer ring(ring_limits);
        Bytes h = header_of(max + 1);
        FrameView v{nullptr, 0};
        for (size_t i = 0; i < 3; ++i) {
            assert_true(ring.append(h.data() + i, 1));
            assert_int_equal(static_cast<int>(next_frame(ring, max, scratch.get(), &v)),
                             static_cast<int>(FrameStatus::incomplete));
        }
        assert_true(ring.append(h.data() + 3, 1));
        assert_int_equal(static_cast<int>(next_frame(ring, max, scratch.get(), &v)),
                         static_cast<int>(FrameStatus::too_long));
        assert_int_equal(v.length, max + 1);
        assert_int_equal(ring.size(), 4);
    }
    {
        const RingLimits ring_limits(1u << 16, 16);
        RingBuffer ring(ring_limits);
        const uint8_t ff[4] = {0xFF, 0xFF, 0xFF, 0xFF};
        assert_true(ring.append(ff, 4));
        FrameView v{nullptr, 0};
        assert_int_equal(static_cast<int>(next_frame(ring, max, scratch.get(), &v)),
                         static_cast<int>(FrameStatus::too_long));
        assert_int_equal(v.length, 0xFFFFFFFFu);
    }
    {
        // max_payload 0: only empty frames pass.
        const RingLimits ring_limits(1u << 16, 16);
        RingBuffer ring(ring_limits);
        const uint8_t one[5] = {0, 0, 0, 1, 0x07};
        assert_true(ring.append(one, 5));
        FrameView v{nullptr, 0};
        assert_int_equal(static_cast<int>(next_frame(ring, 0, scratch.get(), &v)),
                         static_cast<int>(FrameStatus::too_long));
        assert_int_equal(v.length, 1);
    }
}

// A frame placed at a chosen place in a ring of capacity 64 whose counters
// start at `base`: its header starts at storage index `at`.
void place_and_read(uint32_t base, uint32_t at, uint32_t len, bool expect_copy) {
    const RingLimits ring_limits(64, 64);
    RingBuffer ring(ring_limits);
    ring.set_counters_for_test(base);
    std::unique_ptr<uint8_t[]> scratch(new uint8_t[64]);
    std::memset(scratch.get(), 0xCC, 64);
    // Move the tail to index `at` with filler bytes.
    uint32_t skip = (at - base) & 63;
    Bytes filler(skip, 0xEE);
    if (skip) {
        assert_true(ring.append(filler.data(), skip));
        ring.consume(skip);
    }
    Bytes payload = pattern(at * 31 + len, len);
    Bytes fr = frame_of(payload);
    assert_true(ring.append(fr.data(), fr.size()));
    assert_int_equal(ring.capacity(), 64);
    FrameView v{nullptr, 0};
    assert_int_equal(static_cast<int>(next_frame(ring, 60, scratch.get(), &v)),
                     static_cast<int>(FrameStatus::complete));
    assert_int_equal(v.length, len);
    if (expect_copy) {
        assert_ptr_equal(v.payload, scratch.get());
        // Only the payload was written to scratch.
        for (uint32_t i = len; i < 64; ++i) assert_int_equal(scratch[i], 0xCC);
    } else {
        assert_true(v.payload != scratch.get());
        assert_ptr_equal(v.payload, ring.contiguous(4, len));
    }
    if (len) assert_memory_equal(v.payload, payload.data(), len);
    ring.consume(4 + v.length);
    assert_true(ring.empty());
}

void test_next_frame_straddles_wrap(void**) {
    const uint32_t bases[] = {0u, 0xFFFFFFC0u, 0xFFFFFFF0u, 0xFFFFFFFFu, 0x7FFFFFE0u};
    for (uint32_t base : bases) {
        // Payload split by the end of storage: header at 40..43, payload
        // 44..63 then 0..9.
        place_and_read(base, 40, 30, true);
        // Header split by the end (62, 63, 0, 1): payload contiguous at 2.
        place_and_read(base, 62, 20, false);
        place_and_read(base, 61, 20, false);
        place_and_read(base, 63, 20, false);
        // Payload ends exactly at the end of storage: no copy.
        place_and_read(base, 40, 20, false);
        // Payload starts exactly at index 0 (header 60..63).
        place_and_read(base, 60, 20, false);
        // One payload byte on each side.
        place_and_read(base, 59, 2, true);
        // Empty frame with its header at the end.
        place_and_read(base, 60, 0, false);
        // Every start position, a payload that must straddle for most.
        for (uint32_t at = 0; at < 64; ++at) {
            uint32_t idx = (at + 4) & 63;  // payload start index
            bool straddles = idx + 40 > 64;
            place_and_read(base, at, 40, straddles);
        }
    }
}

void test_next_frame_stream_whole_split_bytewise(void**) {
    std::vector<Bytes> want = sample_payloads();
    Bytes s = stream_of(want);
    const uint32_t starts[] = {0u, 0xFFFFFFF0u, 0xFFFFFD00u};
    for (uint32_t start : starts) {
        {
            RingReceiver rx(kMax, 1u << 16, 16, start);
            rx.feed(s.data(), s.size());
            assert_frames(rx.frames, want);
            assert_true(rx.ring.empty());
        }
        for (size_t k = 0; k <= s.size(); ++k) {
            RingReceiver rx(kMax, 1u << 16, 16, start);
            rx.feed(s.data(), k);
            rx.feed(s.data() + k, s.size() - k);
            assert_frames(rx.frames, want);
            assert_true(rx.ring.empty());
        }
        {
            RingReceiver rx(kMax, 1u << 16, 16, start);
            for (size_t i = 0; i < s.size(); ++i) rx.feed(s.data() + i, 1);
            assert_frames(rx.frames, want);
            assert_true(rx.ring.empty());
        }
    }
}

// A fixed-size ring of 2048 that the stream goes round many times, fed in
// uneven chunks: frames land across the wrap at many positions, and those
// must come out of scratch exact.
void test_next_frame_stream_through_small_ring(void**) {
    std::vector<Bytes> one = sample_payloads();
    std::vector<Bytes> want;
    for (int rep = 0; rep < 25; ++rep) want.insert(want.end(), one.begin(), one.end());
    Bytes s = stream_of(want);
    const uint32_t starts[] = {0u, 0xFFFFF000u, 0xFFFFFFFFu};
    for (uint32_t start : starts) {
        RingReceiver rx(kMax, 2048, 2048, start);
        size_t off = 0, chunk = 1;
        while (off < s.size()) {
            size_t n = chunk < s.size() - off ? chunk : s.size() - off;
            rx.feed(s.data() + off, n);
            assert_int_equal(rx.ring.capacity(), 2048);  // never grew
            off += n;
            chunk = chunk * 7 % 113 + 1;  // 1..113, uneven
        }
        assert_frames(rx.frames, want);
        assert_true(rx.ring.empty());
        // The test covered what it is for.
        assert_true(rx.copied >= 10);
    }
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_encode_decode),
        cmocka_unit_test(test_parse_whole_frame),
        cmocka_unit_test(test_parse_header_incomplete),
        cmocka_unit_test(test_parse_payload_incomplete),
        cmocka_unit_test(test_parse_empty_frame),
        cmocka_unit_test(test_parse_max_and_oversize),
        cmocka_unit_test(test_parse_many_in_one_buffer),
        cmocka_unit_test(test_parse_stream_whole_split_bytewise),
        cmocka_unit_test(test_next_frame_whole),
        cmocka_unit_test(test_next_frame_incomplete),
        cmocka_unit_test(test_next_frame_empty_frame),
        cmocka_unit_test(test_next_frame_max_and_too_long),
        cmocka_unit_test(test_next_frame_straddles_wrap),
        cmocka_unit_test(test_next_frame_stream_whole_split_bytewise),
        cmocka_unit_test(test_next_frame_stream_through_small_ring),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
