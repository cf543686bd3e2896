// ring_buffer.cpp - see ring_buffer.h.
#include "ring_buffer.h"

#include <cstdlib>
#include <cstring>

namespace {

uint32_t round_up_pow2(uint32_t n) {
    uint32_t p = 1;
    while (p < n && p < RingBuffer::kMaxCapacity) p <<= 1;
    return p;
}

}  // namespace

RingLimits::RingLimits(uint32_t max, uint32_t initial, MemoryBudget* charged)
    : max_bytes(max == 0 ? 1 : (max > kMaxCapacity ? kMaxCapacity : max)),
      initial_capacity(round_up_pow2(initial == 0 ? 1 : initial)),
      budget(charged) {}

RingBuffer::~RingBuffer() {
    std::free(data_);
    budget_release(limits_->budget, capacity_);
}

bool RingBuffer::grow(uint32_t needed) {
    uint32_t initial = limits_->initial_capacity;
    uint32_t cap = capacity_ ? capacity_ : (regrow_capacity_ > initial ? regrow_capacity_ : initial);
    while (cap < needed && cap < kMaxCapacity) cap <<= 1;
    // Never allocate beyond what max_bytes can use.
    uint32_t limit = round_up_pow2(limits_->max_bytes);
    if (cap > limit) cap = limit;
    if (cap < needed) return false;
    return move_to(cap);
}

// New storage of cap bytes (a power of two holding size()), the bytes moved
// into it, the old storage freed.
bool RingBuffer::move_to(uint32_t cap) {
    if (!budget_charge(limits_->budget, cap)) return false;
    auto* fresh = static_cast<uint8_t*>(std::malloc(cap));
    if (fresh == nullptr) {
        budget_release(limits_->budget, cap);
        return false;
    }
    // Lay the bytes out where the unchanged counters map under the new mask:
    // the oldest at tail_ & (cap - 1), wrapping to the start if needed.
    uint32_t n = size();
    uint32_t start = tail_ & (cap - 1);
    uint32_t first = cap - start < n ? cap - start : n;
    peek(fresh + start, 0, first);
    peek(fresh, first, n - first);
    std::free(data_);
    budget_release(limits_->budget, capacity_);
    data_ = fresh;
    capacity_ = cap;
    return true;
}

void RingBuffer::truncate(size_t keep) {
    if (keep < size()) head_ = tail_ + static_cast<uint32_t>(keep);
}

bool RingBuffer::shrink_to_fit(size_t spare) {
    if (capacity_ == 0) return false;
    if (empty() && spare == 0) return release();
    uint64_t want = uint64_t{size()} + spare;
    if (want > kMaxCapacity) return false;
    uint32_t need = static_cast<uint32_t>(want);
    uint32_t initial = limits_->initial_capacity;
    uint32_t cap = round_up_pow2(need > initial ? need : initial);
    if (cap >= capacity_) return false;
    return move_to(cap);
}

bool RingBuffer::reserve(size_t n) {
    if (n > limits_->max_bytes - size()) return false;
    uint32_t needed = size() + static_cast<uint32_t>(n);
    if (needed <= capacity_) return true;
    return grow(needed);
}

namespace {

// memcpy for the few bytes of a frame header or a v1 head, where a call to
// the library's memcpy costs more than the copy.
inline void copy_bytes(uint8_t* dst, const uint8_t* src, size_t n) {
    if (n > 16) {
        std::memcpy(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
}

}  // namespace

bool RingBuffer::append(const void* data, size_t n) {
    if (n == 0) return true;  // no storage may exist yet: touch nothing
    struct iovec part = {const_cast<void*>(data), n};
    return append_parts(&part, 1);
}

bool RingBuffer::append_parts(const struct iovec* parts, int count) {
    size_t total = 0;
    for (int i = 0; i < count; ++i) total += parts[i].iov_len;
    if (total == 0) return true;  // no storage may exist yet: touch nothing
    if (!reserve(total)) return false;
    uint32_t mask = capacity_ - 1;
    uint32_t start = head_ & mask;
    if (capacity_ - start >= total) {
        // The usual case: everything fits before the wrap.
        uint8_t* dst = data_ + start;
        for (int i = 0; i < count; ++i) {
            copy_bytes(dst, static_cast<const uint8_t*>(parts[i].iov_base), parts[i].iov_len);
            dst += parts[i].iov_len;
        }
    } else {
        uint32_t at = head_;
        for (int i = 0; i < count; ++i) {
            const auto* src = static_cast<const uint8_t*>(parts[i].iov_base);
            uint32_t len = static_cast<uint32_t>(parts[i].iov_len);
            uint32_t pos = at & mask;
            uint32_t first = capacity_ - pos < len ? capacity_ - pos : len;
            copy_bytes(data_ + pos, src, first);
            if (first < len) copy_bytes(data_, src + first, len - first);
            at += len;
        }
    }
    head_ += static_cast<uint32_t>(total);
    return true;
}

// The n bytes starting at free-running counter `from`, as one or two spans.
int RingBuffer::spans_from(uint32_t from, uint32_t n, struct iovec spans[2]) const {
    if (n == 0) return 0;
    uint32_t start = from & (capacity_ - 1);
    uint32_t first = capacity_ - start < n ? capacity_ - start : n;
    spans[0].iov_base = data_ + start;
    spans[0].iov_len = first;
    if (first == n) return 1;
    spans[1].iov_base = data_;
    spans[1].iov_len = n - first;
    return 2;
}

int RingBuffer::read_spans(struct iovec spans[2]) const { return spans_from(tail_, size(), spans); }

int RingBuffer::write_spans(struct iovec spans[2]) {
    // Free bytes of the allocation, but never more than max_bytes allows.
    uint32_t n = free_space();
    uint32_t allowed = limits_->max_bytes - size();
    if (n > allowed) n = allowed;
    return spans_from(head_, n, spans);
}

void RingBuffer::commit(size_t n) { head_ += static_cast<uint32_t>(n); }

void RingBuffer::consume(size_t n) { tail_ += static_cast<uint32_t>(n); }

bool RingBuffer::peek(void* dst, size_t offset, size_t n) const {
    uint32_t used = size();
    if (offset > used || n > used - offset) return false;
    if (n == 0) return true;
    uint32_t mask = capacity_ - 1;
    uint32_t start = (tail_ + static_cast<uint32_t>(offset)) & mask;
    uint32_t len = static_cast<uint32_t>(n);
    uint32_t first = capacity_ - start < len ? capacity_ - start : len;
    auto* out = static_cast<uint8_t*>(dst);
    std::memcpy(out, data_ + start, first);
    std::memcpy(out + first, data_, len - first);
    return true;
}

const uint8_t* RingBuffer::contiguous(size_t offset, size_t n) const {
    uint32_t used = size();
    if (offset > used || n > used - offset) return nullptr;
    if (capacity_ == 0) return nullptr;
    uint32_t mask = capacity_ - 1;
    uint32_t start = (tail_ + static_cast<uint32_t>(offset)) & mask;
    if (n > capacity_ - start) return nullptr;
    return data_ + start;
}

bool RingBuffer::release() {
    if (!empty()) return false;
    if (capacity_ != 0) regrow_capacity_ = capacity_ < kRegrowMax ? capacity_ : kRegrowMax;
    std::free(data_);
    budget_release(limits_->budget, capacity_);
    data_ = nullptr;
    capacity_ = 0;
    return true;
}

void RingBuffer::set_counters_for_test(uint32_t start) {
    if (!empty()) return;
    head_ = tail_ = start;
}
