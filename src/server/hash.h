// hash.h - keyed hashing of device ids.
//
// SipHash-1-3 with a 128-bit key drawn from getrandom() at start-up, so a
// client cannot choose ids that collide in the device table (hash flooding).
// SipHash is the keyed PRF designed for exactly this (Aumasson & Bernstein,
// 2012); 1-3 rounds is the variant Rust and Python use for tables.
#pragma once

#include <cstddef>
#include <cstdint>

struct HashKey {
    uint64_t k0 = 0;
    uint64_t k1 = 0;
};

// Fills a key from the kernel's random pool (os_random.h).
// Returns false only if the kernel gives no randomness at all; the caller
// then decides (the server refuses to start).
bool hash_key_from_os(HashKey* key);

uint64_t siphash13(const HashKey& key, const void* data, size_t len);
