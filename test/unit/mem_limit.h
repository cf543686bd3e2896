// mem_limit.h - out-of-memory injection for unit tests, without a seam in
// the code under test: lower RLIMIT_AS to the address space in use plus a
// little headroom, so that the next large malloc/calloc (served by mmap or
// brk, both bounded by RLIMIT_AS, see setrlimit(2)) returns NULL. Small
// allocations from memory the process already holds still succeed.
//
// Not usable under AddressSanitizer or ThreadSanitizer, which reserve
// terabytes of shadow address space: mem_limit_supported() is false there
// and tests skip through MEM_LIMIT_REQUIRED(), which says why (the test
// runner's summary lists skipped tests with their reason).
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEM_LIMIT_SUPPORTED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MEM_LIMIT_SUPPORTED 0
#endif
#endif
#ifndef MEM_LIMIT_SUPPORTED
#define MEM_LIMIT_SUPPORTED 1
#endif

inline bool mem_limit_supported() { return MEM_LIMIT_SUPPORTED != 0; }

// In a CMocka test: skips it, with the reason on a "SKIP:" line, where
// out-of-memory injection is impossible.
#define MEM_LIMIT_REQUIRED()                                                                  \
    do {                                                                                      \
        if (!mem_limit_supported()) {                                                         \
            std::printf("SKIP: out-of-memory injection lowers RLIMIT_AS, impossible under a " \
                        "sanitizer whose shadow memory reserves terabytes of address space\n"); \
            skip();                                                                           \
        }                                                                                     \
    } while (0)

// While alive, the address space may grow by at most `headroom` bytes.
class MemLimit {
   public:
    explicit MemLimit(size_t headroom) {
        ok_ = getrlimit(RLIMIT_AS, &saved_) == 0 && vm_size(&used_);
        if (!ok_) return;
        struct rlimit lim = saved_;
        rlim_t want = static_cast<rlim_t>(used_ + headroom);
        if (lim.rlim_max != RLIM_INFINITY && want > lim.rlim_max) want = lim.rlim_max;
        lim.rlim_cur = want;
        ok_ = setrlimit(RLIMIT_AS, &lim) == 0;
    }
    ~MemLimit() {
        if (ok_) setrlimit(RLIMIT_AS, &saved_);
    }
    MemLimit(const MemLimit&) = delete;
    MemLimit& operator=(const MemLimit&) = delete;

    bool ok() const { return ok_; }

   private:
    // Address space in use, from /proc/self/statm (first field, in pages).
    static bool vm_size(size_t* out) {
        FILE* f = std::fopen("/proc/self/statm", "r");
        if (f == nullptr) return false;
        unsigned long pages = 0;
        int got = std::fscanf(f, "%lu", &pages);
        std::fclose(f);
        long page = sysconf(_SC_PAGESIZE);
        if (got != 1 || page <= 0) return false;
        *out = static_cast<size_t>(pages) * static_cast<size_t>(page);
        return true;
    }

    struct rlimit saved_ {};
    size_t used_ = 0;
    bool ok_ = false;
};
