// memory_budget.h - the server's one memory limit (--max-memory): the bytes
// of every connection's buffers and of the device and subscription tables,
// all together.
//
// Why one budget and not only per-connection caps: every delivery is copied
// into every subscriber's output ring, so per-connection caps multiply by
// the number of connections (issue 10: 300 subscribers that did not read
// took the server to 1.2 GiB under a 4 MiB cap each). Redis bounds the sum
// the same way (maxmemory-clients); what happens at the limit is the
// owners' policy (connection.cpp: the largest output buffers are cut first;
// devices.cpp: the command is refused), never the process growing.
//
// The containers that allocate (RingBuffer, IdTable) charge the budget
// before they allocate and release what they free, so used() is exactly
// the bytes they hold (requested sizes, not the allocator's overhead). A
// charge that would pass the limit is refused and nothing is allocated.
//
// A budget may have a parent: a share of it with a lower limit of its own,
// charged to both. The server gives the device table such a share (7/8 of
// the whole), so that ids and subscriptions, which are refused rather than
// evicted, can never leave the connections without room for a reply.
// Single-threaded; no allocation here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

class MemoryBudget {
   public:
    // limit: bytes; the default is no limit. parent: also charged, if any.
    explicit MemoryBudget(uint64_t limit = UINT64_MAX, MemoryBudget* parent = nullptr)
        : limit_(limit), parent_(parent) {}
    MemoryBudget(const MemoryBudget&) = delete;
    MemoryBudget& operator=(const MemoryBudget&) = delete;

    // Takes n bytes from the budget; false (and nothing taken) if that
    // would pass the limit.
    bool try_charge(uint64_t n) {
        if (n > limit_ - used_ || (parent_ != nullptr && !parent_->try_charge(n))) {
            ++refusals_;
            return false;
        }
        used_ += n;
        if (used_ > peak_) peak_ = used_;
        return true;
    }
    // Gives back n bytes taken before.
    void release(uint64_t n) {
        used_ = n <= used_ ? used_ - n : 0;
        if (parent_ != nullptr) parent_->release(n);
    }

    uint64_t limit() const { return limit_; }
    uint64_t used() const { return used_; }
    uint64_t peak() const { return peak_; }
    uint64_t refusals() const { return refusals_; }  // charges refused so far

   private:
    uint64_t limit_;
    MemoryBudget* parent_;
    uint64_t used_ = 0;
    uint64_t peak_ = 0;
    uint64_t refusals_ = 0;
};

// Charges budget (if any) for n bytes; true without a budget.
inline bool budget_charge(MemoryBudget* budget, uint64_t n) {
    return budget == nullptr || budget->try_charge(n);
}
inline void budget_release(MemoryBudget* budget, uint64_t n) {
    if (budget != nullptr) budget->release(n);
}

// Allocates bytes (nothrow) charged to budget (if any): nullptr, with
// nothing charged, when the budget or the allocator refuses. For entries
// allocated in one block with the id they are keyed by.
inline void* budget_allocate(MemoryBudget* budget, size_t bytes) {
    if (!budget_charge(budget, bytes)) return nullptr;
    void* block = ::operator new(bytes, std::nothrow);
    if (block == nullptr) budget_release(budget, bytes);
    return block;
}
// Frees what budget_allocate gave, of that size.
inline void budget_free(MemoryBudget* budget, void* block, size_t bytes) {
    ::operator delete(block);
    budget_release(budget, bytes);
}
