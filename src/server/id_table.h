// id_table.h - an open-addressing hash table from device id to entry.
//
// Linear probing over a power-of-two array of {hash, entry*} slots, kept at
// most 3/4 full; deletion shifts later members of the probe run back
// (Knuth's Algorithm R) instead of leaving tombstones, so a delete-heavy
// churn of devices connecting and leaving never degrades lookups. The full
// 64-bit hash is kept in the slot so that a probe compares ids only when
// hashes match, and growth never rehashes a key.
//
// The table stores pointers and owns nothing: an Entry lives elsewhere and
// must provide `std::string_view key() const`, stable while it is in the
// table. Keys are arbitrary bytes (NUL included), compared exactly.
//
// The hash is keyed (siphash13 with a random key in the server); tests may
// pass any function, e.g. a constant one to force every key to collide.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hash.h"

template <class Entry>
class IdTable {
   public:
    using Hasher = uint64_t (*)(const HashKey& key, const void* data, size_t len);

    explicit IdTable(const HashKey& key, Hasher hasher = siphash13) : key_(key), hasher_(hasher) {}
    ~IdTable() { std::free(slots_); }
    IdTable(const IdTable&) = delete;
    IdTable& operator=(const IdTable&) = delete;

    size_t size() const { return count_; }
    size_t capacity() const { return slots_ ? mask_ + 1 : 0; }

    Entry* find(std::string_view key) const {
        if (count_ == 0) return nullptr;
        uint64_t h = hash(key);
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.entry == nullptr) return nullptr;
            if (s.hash == h && s.entry->key() == key) return s.entry;
        }
    }

    // Adds entry under entry->key(). False if that key is present already
    // or memory is exhausted; the table is unchanged then.
    bool insert(Entry* entry) {
        if (find(entry->key()) != nullptr) return false;
        if ((count_ + 1) * 4 > capacity() * 3 && !resize(capacity() ? capacity() * 2 : 16))
            return false;
        uint64_t h = hash(entry->key());
        size_t i = h & mask_;
        while (slots_[i].entry != nullptr) i = (i + 1) & mask_;
        slots_[i] = Slot{h, entry};
        ++count_;
        return true;
    }

    // Removes and returns the entry under key, or nullptr if absent.
    Entry* erase(std::string_view key) {
        if (count_ == 0) return nullptr;
        uint64_t h = hash(key);
        size_t i = h & mask_;
        for (;; i = (i + 1) & mask_) {
            if (slots_[i].entry == nullptr) return nullptr;
            if (slots_[i].hash == h && slots_[i].entry->key() == key) break;
        }
        Entry* found = slots_[i].entry;
        // Backward-shift: move each later member of the run whose home is
        // not in (hole, j] into the hole.
        size_t hole = i;
        for (size_t j = (i + 1) & mask_; slots_[j].entry != nullptr; j = (j + 1) & mask_) {
            size_t home = slots_[j].hash & mask_;
            bool stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);
            if (!stays) {
                slots_[hole] = slots_[j];
                hole = j;
            }
        }
        slots_[hole] = Slot{0, nullptr};
        --count_;
        if (capacity() > 64 && count_ * 8 < capacity()) resize(capacity() / 2);
        return found;
    }

    // Calls fn(Entry*) for every entry; fn must not modify the table.
    template <class Fn>
    void for_each(Fn fn) const {
        for (size_t i = 0; i < capacity(); ++i)
            if (slots_[i].entry != nullptr) fn(slots_[i].entry);
    }

   private:
    struct Slot {
        uint64_t hash;
        Entry* entry;
    };

    uint64_t hash(std::string_view key) const { return hasher_(key_, key.data(), key.size()); }

    bool resize(size_t cap) {
        auto* fresh = static_cast<Slot*>(std::calloc(cap, sizeof(Slot)));
        if (fresh == nullptr) return false;
        size_t mask = cap - 1;
        for (size_t i = 0; i < capacity(); ++i) {
            const Slot& s = slots_[i];
            if (s.entry == nullptr) continue;
            size_t j = s.hash & mask;
            while (fresh[j].entry != nullptr) j = (j + 1) & mask;
            fresh[j] = s;
        }
        std::free(slots_);
        slots_ = fresh;
        mask_ = mask;
        return true;
    }

    Slot* slots_ = nullptr;
    size_t mask_ = 0;
    size_t count_ = 0;
    HashKey key_;
    Hasher hasher_;
};
