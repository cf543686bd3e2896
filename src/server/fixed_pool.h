// fixed_pool.h - blocks of one size carved from 64 KiB slabs: for the
// objects the server holds one or more of per client (connections,
// subscriptions), without malloc's per-block header.
//
// Why: glibc puts an 8-byte header before every block and rounds the two
// up to 16 bytes, so a 48-byte Subscription takes 64 and a 312-byte
// Connection 320. At 19,000 idle clients that is 24 bytes each of the 256
// that issue 12 allows (BENCHMARKS.md, "Memory and connections per
// machine"). A slab holds as many blocks as fit after its header, exactly
// block_size bytes apart.
//
// Design (after the slab allocators of Bonwick and of memcached): slabs
// are mapped (mmap) aligned to their size, so a block's slab is its address
// rounded down, found without a lookup. Each slab keeps its own list of
// free blocks and a count of blocks in use; the slabs with a free block are
// on the pool's `partial` list, and a slab whose last block is freed is
// unmapped at once, except one kept for the next allocation, so that
// a client coming and going at a slab's edge does not allocate a slab
// each time. Blocks never handed out are taken in address order (`fresh`),
// so a new slab's pages are touched only as they fill.
//
// Memory: a slab's header and tail are less than one block; the partly
// used slabs a churn leaves behind are the pool's slack, as free chunks
// are malloc's. allocate() fails (nullptr) only when mmap does (out of
// memory or address space: RLIMIT_AS).
// Under AddressSanitizer a free block is poisoned, so that a use after
// free is still reported (the reuse is LIFO, so only until it is reused).
//
// Not thread-safe. Blocks are 8-aligned (block_size is rounded up to a
// multiple of 8, and the slab header is a multiple of 8 too).
#pragma once

#include <cstddef>
#include <cstdint>

#include "intrusive_list.h"

class FixedPool {
   public:
    static constexpr size_t kSlabBytes = 64u << 10;

    // block_size: bytes of one block (rounded up to a multiple of 8; at
    // most what fits in a slab after its header).
    explicit FixedPool(size_t block_size);
    // Frees every slab, whether its blocks were freed or not.
    ~FixedPool();
    FixedPool(const FixedPool&) = delete;
    FixedPool& operator=(const FixedPool&) = delete;

    // A block of block_size() bytes, uninitialised; nullptr when no slab
    // can be had.
    void* allocate();
    // Gives back a block that allocate() of this pool returned.
    void free(void* block);

    size_t block_size() const { return block_size_; }
    size_t blocks_per_slab() const { return per_slab_; }
    size_t slabs() const { return slabs_; }          // held now
    size_t blocks_in_use() const { return in_use_; }

   private:
    struct SlabListTag {};
    struct FreeBlock {
        FreeBlock* next;
    };
    // At the start of its slab; on partial_ or full_.
    struct Slab : ListHook<SlabListTag> {
        FreeBlock* free = nullptr;  // blocks freed and not handed out again
        uint32_t used = 0;          // blocks handed out
        uint32_t fresh = 0;         // blocks [fresh, per_slab_) never handed out
    };

    static Slab* slab_of(void* block);
    uint8_t* block_at(Slab* slab, uint32_t i) const;
    Slab* new_slab();
    void release(Slab* slab);

    size_t block_size_;
    uint32_t per_slab_;
    size_t slabs_ = 0;
    size_t in_use_ = 0;
    Slab* spare_ = nullptr;  // an empty slab kept (on partial_) for the next allocation
    IntrusiveList<Slab, SlabListTag> partial_;  // slabs with a block to give
    IntrusiveList<Slab, SlabListTag> full_;     // the others
};
