// hash.cpp - see hash.h. SipHash-1-3, from the algorithm's description.
#include "hash.h"

#include "os_random.h"

namespace {

inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline uint64_t load_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

struct SipState {
    uint64_t v0, v1, v2, v3;
    void round() {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    }
};

}  // namespace

bool hash_key_from_os(HashKey* key) {
    uint8_t buf[16];
    if (!os_random(buf, sizeof buf)) return false;
    key->k0 = load_le64(buf);
    key->k1 = load_le64(buf + 8);
    return true;
}

uint64_t siphash13(const HashKey& key, const void* data, size_t len) {
    const auto* in = static_cast<const uint8_t*>(data);
    SipState s{key.k0 ^ 0x736f6d6570736575ULL, key.k1 ^ 0x646f72616e646f6dULL,
               key.k0 ^ 0x6c7967656e657261ULL, key.k1 ^ 0x7465646279746573ULL};
    size_t whole = len & ~size_t{7};
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        s.v3 ^= m;
        s.round();
        s.v0 ^= m;
    }
    uint64_t last = static_cast<uint64_t>(len) << 56;
    for (size_t i = 0; i < (len & 7); ++i) last |= static_cast<uint64_t>(in[whole + i]) << (8 * i);
    s.v3 ^= last;
    s.round();
    s.v0 ^= last;
    s.v2 ^= 0xff;
    s.round();
    s.round();
    s.round();
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
