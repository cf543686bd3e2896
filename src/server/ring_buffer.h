// ring_buffer.h - a byte ring with power-of-two capacity, lazily allocated,
// grown on demand up to a cap, released when empty.
//
// Design (after Linux kfifo and HAProxy's buf.h): head and tail are
// free-running 32-bit counters; the bytes in the ring are [tail, head), their
// count is head - tail (unsigned arithmetic survives wrap-around), and a
// counter becomes an index by masking with capacity - 1. No byte is wasted to
// tell full from empty, and no branch is needed on the wrap.
//
// Memory: a ring holds no storage until the first reserve(); release() gives
// storage back when the ring is empty, so an idle connection costs only this
// object. Capacity doubles on demand and never exceeds max_capacity (rounded
// up to a power of two); callers enforce a byte cap below that with
// reserve() returning false.
//
// Spans: read_spans/write_spans describe the used/free bytes as at most two
// iovecs, so that one readv/writev moves data across the wrap.
//
// Budget: a ring may be given the server's MemoryBudget; its storage is
// charged there before it is allocated (a refused charge fails the growth
// like running out of memory) and given back when freed. While growing,
// old and new storage are both held, and both charged.
//
// Limits: the cap, the first allocation and the budget are the same for
// every ring of one kind (all connections' input rings, say), so a ring
// refers to one RingLimits that its owner keeps alive, instead of holding
// copies: the server holds two rings per client, idle or not (32 bytes
// each instead of 40).
//
// Not thread-safe; no I/O here.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "memory_budget.h"

// What the rings of one kind share; must outlive them.
struct RingLimits {
    static constexpr uint32_t kMaxCapacity = 1u << 30;

    // max_bytes: the most a ring may ever hold (clamped to 1 ..
    // kMaxCapacity). initial_capacity: the first allocation (rounded up to
    // a power of two, at least 1). budget: charged for the storage
    // (nullptr: none).
    explicit RingLimits(uint32_t max_bytes, uint32_t initial_capacity = 1024,
                        MemoryBudget* budget = nullptr);

    const uint32_t max_bytes;
    const uint32_t initial_capacity;
    MemoryBudget* const budget;
};

class RingBuffer {
   public:
    static constexpr uint32_t kMaxCapacity = RingLimits::kMaxCapacity;
    static constexpr uint32_t kRegrowMax = 128u << 10;

    explicit RingBuffer(const RingLimits& limits) : limits_(&limits) {}
    explicit RingBuffer(const RingLimits&&) = delete;  // it must outlive the ring
    ~RingBuffer();
    RingBuffer(const RingBuffer&) = delete;
    RingBuffer& operator=(const RingBuffer&) = delete;

    uint32_t size() const { return head_ - tail_; }
    bool empty() const { return head_ == tail_; }
    uint32_t capacity() const { return capacity_; }
    uint32_t max_bytes() const { return limits_->max_bytes; }
    // Bytes that can be added without growing.
    uint32_t free_space() const { return capacity_ - size(); }

    // Makes room for n more bytes, growing if needed. False when size() + n
    // would exceed max_bytes or memory is exhausted; the ring is unchanged.
    bool reserve(size_t n);

    // Appends parts[0..count) in order, as append() would one by one, but
    // in one step (the producer's hot path: a frame's header, head and
    // data). False, with nothing appended, when they do not fit.
    bool append_parts(const struct iovec* parts, int count);

    // Appends n bytes (reserve()s first). False, with nothing appended, when
    // they do not fit under max_bytes.
    bool append(const void* data, size_t n);

    // Up to two iovecs covering the used bytes, oldest first. Returns the
    // count (0 when empty).
    int read_spans(struct iovec spans[2]) const;
    // Up to two iovecs covering the free bytes of the current allocation,
    // limited to what max_bytes still allows.
    int write_spans(struct iovec spans[2]);

    // n free bytes in one piece at the head, for a producer to write into
    // and then commit(n); nullptr when the storage lacks them before the
    // wrap (then use append_parts or write_spans).
    uint8_t* contiguous_room(size_t n) {
        uint32_t start = head_ & (capacity_ - 1);
        if (capacity_ == 0 || n > free_space() || n > capacity_ - start) return nullptr;
        return data_ + start;
    }

    // After writing n bytes into write_spans(): makes them part of the ring.
    void commit(size_t n);
    // Drops the n oldest bytes (n <= size()).
    void consume(size_t n);

    // Copies n bytes starting offset bytes past the oldest into dst; returns
    // false (copying nothing) when offset + n > size().
    bool peek(void* dst, size_t offset, size_t n) const;

    // A pointer to n contiguous bytes starting offset bytes past the oldest,
    // or nullptr when they straddle the wrap (then use peek()).
    const uint8_t* contiguous(size_t offset, size_t n) const;

    // Frees the storage if the ring is empty. Returns whether it did.
    bool release();

    // Drops all but the `keep` oldest bytes (keep <= size()).
    void truncate(size_t keep);

    // Moves the bytes into the smallest storage that holds them and
    // `spare` bytes more (at least the initial capacity), freeing the larger
    // one: after truncate(), to give memory back at once. An empty ring
    // with no spare wanted is released. Keeps the storage it has when a
    // smaller one cannot be had. Returns whether the capacity shrank.
    bool shrink_to_fit(size_t spare = 0);

    // Test seam: starts both counters at `start`, so that tests can exercise
    // the 32-bit wrap-around. Only valid on an empty ring.
    void set_counters_for_test(uint32_t start);

   private:
    bool grow(uint32_t needed);
    bool move_to(uint32_t cap);
    int spans_from(uint32_t from, uint32_t n, struct iovec spans[2]) const;

    uint8_t* data_ = nullptr;
    const RingLimits* limits_;
    uint32_t capacity_ = 0;  // 0 or a power of two
    uint32_t head_ = 0;      // counter one past the newest byte
    uint32_t tail_ = 0;      // counter of the oldest byte
    // The capacity of the last storage released, so that the next burst
    // starts there instead of doubling up from the initial capacity again,
    // copying at every step (a subscriber's output ring is released each
    // time it drains: the regrowth copies were a quarter of the
    // instructions of a fan-out). At most kRegrowMax, so that one huge
    // burst does not make every later one allocate that much.
    uint32_t regrow_capacity_ = 0;
};
