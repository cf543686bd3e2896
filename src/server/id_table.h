// id_table.h - an open-addressing hash table from a key (a device id, or
// any small plain value such as a pair of pointers) to an entry.
//
// Linear probing over a power-of-two array of slots, kept at most 3/4
// full; deletion shifts later members of the probe run back (Knuth's
// Algorithm R) instead of leaving tombstones, so a delete-heavy churn of
// devices connecting and leaving never degrades lookups.
//
// A slot is the entry pointer and, in a parallel array, one tag byte: 7
// bits of the hash (the top ones; the bottom ones choose the home slot)
// and a bit that marks it used. A probe compares ids only when tags match
// (1 in 128 for a different key), so it rarely touches an entry that is not
// the one sought. The full hash is not kept: growth and the backward shift
// of a deletion hash the keys they move again. 9 bytes a slot rather than
// 16 with the hash kept: the server has two tables with an entry per
// client (devices, subscriptions), and each is up to 4/3 (after growing,
// 8/3) slots per entry.
//
// The table stores pointers and owns nothing: an Entry lives elsewhere and
// must provide `Key key() const`, stable while it is in the table. A
// string_view key is arbitrary bytes (NUL included), compared exactly; any
// other Key is hashed as its object representation (so it must have no
// padding) and compared with ==. The devices table is keyed by id, the
// subscriptions table by (subscriber, device).
//
// Cost: every probed slot is counted (probes()), so that tests can show a
// lookup's cost does not grow with the table; the slot arrays are charged
// to a MemoryBudget when one is given, and a growth the budget refuses
// fails the insert like running out of memory.
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
        std::free(entries_);
        budget_release(budget_, memory());
    }
    IdTable(const IdTable&) = delete;
    IdTable& operator=(const IdTable&) = delete;

    size_t size() const { return count_; }
    size_t capacity() const { return entries_ ? mask_ + 1 : 0; }
    // Bytes of the slot arrays.
    size_t memory() const { return capacity() * kSlotBytes; }
    // Slots examined by find, insert and erase so far.
    uint64_t probes() const { return probes_; }

    Entry* find(const Key& key) const {
        if (count_ == 0) return nullptr;
        uint64_t h = hash(key);
        uint8_t t = tag(h);
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            ++probes_;
            Entry* e = entries_[i];
            if (e == nullptr) return nullptr;
            if (tags_[i] == t && e->key() == key) return e;
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
        while (entries_[i] != nullptr) {
            ++probes_;
            i = (i + 1) & mask_;
        }
        put(i, entry, tag(h));
        ++count_;
        return true;
    }

    // Removes and returns the entry under key, or nullptr if absent.
    Entry* erase(const Key& key) {
        if (count_ == 0) return nullptr;
        uint64_t h = hash(key);
        uint8_t t = tag(h);
        size_t i = h & mask_;
        for (;; i = (i + 1) & mask_) {
            ++probes_;
            if (entries_[i] == nullptr) return nullptr;
            if (tags_[i] == t && entries_[i]->key() == key) break;
        }
        Entry* found = entries_[i];
        // Backward-shift: move each later member of the run whose home is
        // not in (hole, j] into the hole.
        size_t hole = i;
        for (size_t j = (i + 1) & mask_; entries_[j] != nullptr; j = (j + 1) & mask_) {
            ++probes_;
            size_t home = hash(entries_[j]->key()) & mask_;
            bool stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);
            if (!stays) {
                put(hole, entries_[j], tags_[j]);
                hole = j;
            }
        }
        put(hole, nullptr, 0);
        --count_;
        if (capacity() > 64 && count_ * 8 < capacity()) resize(capacity() / 2);
        return found;
    }

    // Calls fn(Entry*) for every entry; fn must not modify the table.
    template <class Fn>
    void for_each(Fn fn) const {
        for (size_t i = 0; i < capacity(); ++i)
            if (entries_[i] != nullptr) fn(entries_[i]);
    }

   private:
    // An entry pointer and its tag byte.
    static constexpr size_t kSlotBytes = sizeof(Entry*) + 1;
    static constexpr uint8_t kUsed = 0x80;

    static uint8_t tag(uint64_t h) { return static_cast<uint8_t>(kUsed | (h >> 57)); }

    uint64_t hash(const Key& key) const {
        if constexpr (std::is_same_v<Key, std::string_view>) {
            return hasher_(key_, key.data(), key.size());
        } else {
            static_assert(std::has_unique_object_representations_v<Key>,
                          "a non-string key is hashed as its bytes: no padding");
            return hasher_(key_, &key, sizeof key);
        }
    }

    void put(size_t i, Entry* entry, uint8_t t) {
        entries_[i] = entry;
        tags_[i] = t;
    }

    // The pointers, then the tags, in one zeroed block (empty slots).
    bool resize(size_t cap) {
        if (!budget_charge(budget_, cap * kSlotBytes)) return false;
        auto* fresh = static_cast<Entry**>(std::calloc(cap, kSlotBytes));
        if (fresh == nullptr) {
            budget_release(budget_, cap * kSlotBytes);
            return false;
        }
        auto* fresh_tags = reinterpret_cast<uint8_t*>(fresh + cap);
        size_t mask = cap - 1;
        for (size_t i = 0; i < capacity(); ++i) {
            Entry* e = entries_[i];
            if (e == nullptr) continue;
            size_t j = hash(e->key()) & mask;
            while (fresh[j] != nullptr) j = (j + 1) & mask;
            fresh[j] = e;
            fresh_tags[j] = tags_[i];
        }
        budget_release(budget_, memory());
        std::free(entries_);
        entries_ = fresh;
        tags_ = fresh_tags;
        mask_ = mask;
        return true;
    }

    Entry** entries_ = nullptr;  // capacity() of them; nullptr: empty slot
    uint8_t* tags_ = nullptr;    // capacity() of them, after the entries
    size_t mask_ = 0;
    size_t count_ = 0;
    mutable uint64_t probes_ = 0;
    HashKey key_;
    Hasher hasher_;
    MemoryBudget* budget_;
};
