// id_table.h - an open-addressing hash table from a key (a device id, or
// any small plain value such as a pair of pointers) to an entry.
//
// Linear probing over a power-of-two array of {hash, entry*} slots, kept at
// most 3/4 full; deletion shifts later members of the probe run back
// (Knuth's Algorithm R) instead of leaving tombstones, so a delete-heavy
// churn of devices connecting and leaving never degrades lookups. The full
// 64-bit hash is kept in the slot so that a probe compares ids only when
// hashes match, and growth never rehashes a key.
//
// The table stores pointers and owns nothing: an Entry lives elsewhere and
// must provide `Key key() const`, stable while it is in the table. A
// string_view key is arbitrary bytes (NUL included), compared exactly; any
// other Key is hashed as its object representation (so it must have no
// padding) and compared with ==. The devices table is keyed by id, the
// subscriptions table by (subscriber, device).
//
// Cost: every probed slot is counted (probes()), so that tests can show a
// lookup's cost does not grow with the table; the slot array is charged to
// a MemoryBudget when one is given, and a growth the budget refuses fails
// the insert like running out of memory.
//
// The hash is keyed (siphash13 with a random key in the server); tests may
// pass any function, e.g. a constant one to force every key to collide.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <type_traits>

#include "hash.h"
#include "memory_budget.h"

template <class Entry, class Key = std::string_view>
class IdTable {
   public:
    using Hasher = uint64_t (*)(const HashKey& key, const void* data, size_t len);

    explicit IdTable(const HashKey& key, Hasher hasher = siphash13, MemoryBudget* budget = nullptr)
        : key_(key), hasher_(hasher), budget_(budget) {}
    ~IdTable() {
        std::free(slots_);
        budget_release(budget_, memory());
    }
    IdTable(const IdTable&) = delete;
    IdTable& operator=(const IdTable&) = delete;

    size_t size() const { return count_; }
    size_t capacity() const { return slots_ ? mask_ + 1 : 0; }
    // Bytes of the slot array.
    size_t memory() const { return capacity() * sizeof(Slot); }
    // Slots examined by find, insert and erase so far.
    uint64_t probes() const { return probes_; }

    Entry* find(const Key& key) const {
        if (count_ == 0) return nullptr;
        uint64_t h = hash(key);
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            ++probes_;
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
        while (slots_[i].entry != nullptr) {
            ++probes_;
            i = (i + 1) & mask_;
        }
        slots_[i] = Slot{h, entry};
        ++count_;
        return true;
    }

    // Removes and returns the entry under key, or nullptr if absent.
    Entry* erase(const Key& key) {
        if (count_ == 0) return nullptr;
        uint64_t h = hash(key);
        size_t i = h & mask_;
        for (;; i = (i + 1) & mask_) {
            ++probes_;
            if (slots_[i].entry == nullptr) return nullptr;
            if (slots_[i].hash == h && slots_[i].entry->key() == key) break;
        }
        Entry* found = slots_[i].entry;
        // Backward-shift: move each later member of the run whose home is
        // not in (hole, j] into the hole.
        size_t hole = i;
        for (size_t j = (i + 1) & mask_; slots_[j].entry != nullptr; j = (j + 1) & mask_) {
            ++probes_;
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

    uint64_t hash(const Key& key) const {
        if constexpr (std::is_same_v<Key, std::string_view>) {
            return hasher_(key_, key.data(), key.size());
        } else {
            static_assert(std::has_unique_object_representations_v<Key>,
                          "a non-string key is hashed as its bytes: no padding");
            return hasher_(key_, &key, sizeof key);
        }
    }

    bool resize(size_t cap) {
        if (!budget_charge(budget_, cap * sizeof(Slot))) return false;
        auto* fresh = static_cast<Slot*>(std::calloc(cap, sizeof(Slot)));
        if (fresh == nullptr) {
            budget_release(budget_, cap * sizeof(Slot));
            return false;
        }
        size_t mask = cap - 1;
        for (size_t i = 0; i < capacity(); ++i) {
            const Slot& s = slots_[i];
            if (s.entry == nullptr) continue;
            size_t j = s.hash & mask;
            while (fresh[j].entry != nullptr) j = (j + 1) & mask;
            fresh[j] = s;
        }
        budget_release(budget_, memory());
        std::free(slots_);
        slots_ = fresh;
        mask_ = mask;
        return true;
    }

    Slot* slots_ = nullptr;
    size_t mask_ = 0;
    size_t count_ = 0;
    mutable uint64_t probes_ = 0;
    HashKey key_;
    Hasher hasher_;
    MemoryBudget* budget_;
};
