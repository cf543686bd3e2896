// direct_attempts.h - the relay's table of open direct-path attempts
// (relay_direct.cpp; stupidp2p(7), DIRECT PATHS): who offered a direct path
// to whom, and how far the rendezvous got, so that an ANSWER or SYNC is
// forwarded only for an attempt that exists, between its two sessions, once,
// and RESULTs are counted once per side.
//
// What it keeps: the two ids and the two connections' session ids (and,
// when the target is on another relay of a cluster, that relay's
// incarnation), the time and a few flags. Never an address: candidates, the reflexive
// address, the nonces and the secret are forwarded and forgotten.
//
// Why a ring indexed by the attempt id: ids are handed out in sequence, so
// the slot of id N is N mod capacity, and the attempt that last held it is
// N - capacity, the oldest that could be open. Creating, finding and
// removing cost O(1) with no hashing and no scan; an attempt expires when
// it is older than the TTL (checked wherever it is looked up), so no tick
// is needed. When the next id's slot still holds an open attempt, the
// table is full: capacity attempts were opened within one TTL. The slots
// are allocated on the first offer (nothing for a server that never sees
// one); allocation failure is "full", never fatal.
#pragma once

#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "protocol.h"

constexpr uint64_t kDirectAttemptTtlMs = 30000;

struct DirectAttempt {
    uint32_t id = 0;  // 0: free
    uint64_t created_ms = 0;
    uint64_t offerer_session = 0;
    // In a cluster, the incarnation of the relay holding the target when
    // it is another (0: this one); its target_session is then the one that
    // answered, 0 until it did (relay_direct.cpp).
    uint64_t target_relay = 0;
    uint64_t target_session = 0;
    bool answered = false;  // an ANSWER was forwarded (accepting or not)
    bool accepted = false;
    bool synced = false;
    bool offerer_reported = false;  // RESULT counted from this side
    bool target_reported = false;
    uint8_t offerer_len = 0;
    uint8_t target_len = 0;
    char offerer[P2P_ID_MAX];
    char target[P2P_ID_MAX];

    std::string_view offerer_id() const { return {offerer, offerer_len}; }
    std::string_view target_id() const { return {target, target_len}; }
};

class DirectAttempts {
   public:
    // capacity: rounded up to a power of two (at least 1).
    explicit DirectAttempts(uint32_t capacity) {
        while (capacity_ < capacity && capacity_ < (1u << 30)) capacity_ <<= 1;
    }
    ~DirectAttempts() { delete[] slots_; }
    DirectAttempts(const DirectAttempts&) = delete;
    DirectAttempts& operator=(const DirectAttempts&) = delete;

    // A new attempt between the two ids, or nullptr when the table is full
    // (or its slots cannot be allocated).
    DirectAttempt* create(uint64_t now_ms, std::string_view offerer, uint64_t offerer_session,
                          std::string_view target, uint64_t target_session) {
        if (slots_ == nullptr) {
            slots_ = new (std::nothrow) DirectAttempt[capacity_];
            if (slots_ == nullptr) return nullptr;
        }
        if (next_id_ == 0) next_id_ = 1;  // 0 means "free"
        DirectAttempt& a = slots_[next_id_ & (capacity_ - 1)];
        if (open(a, now_ms)) return nullptr;
        a = DirectAttempt{};
        a.id = next_id_++;
        a.created_ms = now_ms;
        a.offerer_session = offerer_session;
        a.target_session = target_session;
        a.offerer_len = static_cast<uint8_t>(offerer.size());
        std::memcpy(a.offerer, offerer.data(), offerer.size());
        a.target_len = static_cast<uint8_t>(target.size());
        std::memcpy(a.target, target.data(), target.size());
        return &a;
    }

    // The open attempt with this id, or nullptr (unknown, expired, removed).
    DirectAttempt* find(uint32_t id, uint64_t now_ms) {
        if (slots_ == nullptr || id == 0) return nullptr;
        DirectAttempt& a = slots_[id & (capacity_ - 1)];
        return a.id == id && open(a, now_ms) ? &a : nullptr;
    }

    void remove(DirectAttempt& a) { a.id = 0; }

    uint32_t capacity() const { return capacity_; }

   private:
    static bool open(const DirectAttempt& a, uint64_t now_ms) {
        return a.id != 0 && now_ms - a.created_ms < kDirectAttemptTtlMs;
    }

    DirectAttempt* slots_ = nullptr;
    uint32_t capacity_ = 1;
    uint32_t next_id_ = 1;
};
