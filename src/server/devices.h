// devices.h - device ids and subscriptions: who holds which id, who follows
// which, and when an entry may go. Knows nothing of the protocol (replies,
// presence, versions: relay.cpp) or of sockets.
//
// A Device exists while its id is held by a session or subscribed to by
// one: subscriptions name the device id, not the connection that holds it,
// so a subscriber keeps receiving when the device reconnects, re-registers
// from a new connection or is taken over.
//
// A Subscription links one subscriber Session and one Device and sits on two
// lists at once (the device's subscribers, the session's subscriptions), so
// either side can drop it in O(1), and in a table keyed by (session,
// device), so that "does s follow d?" (SUBSCRIBE's duplicate check,
// UNSUBSCRIBE) is one hash probe whatever the length of either list: no
// command walks a list that a client can make long, except to act on every
// element (a delivery to every subscriber, UNREGISTER dropping every
// subscription), which is paid for by the frames or SUBSCRIBEs that built it.
//
// Devices and subscriptions live in IdTables (open addressing, keyed
// SipHash). Their memory (entries and tables) is charged to the server's
// MemoryBudget, and the number of devices is capped (--max-devices): an id
// that cannot get an entry, for either reason, is refused, never fatal.
// Device ids are stored in the entry's own allocation, with no growable
// string: every allocation here is nothrow and its failure reported.
//
// A FollowWatcher, when one is set (the cluster room, through the relay),
// is told when an id gains its first follower and loses its last: what the
// relay must hear from the other relays of a cluster. Without one, that is
// one pointer test per subscription made or dropped.
#pragma once

#include <cstdint>
#include <string_view>

#include "fixed_pool.h"
#include "hash.h"
#include "id_table.h"
#include "intrusive_list.h"
#include "memory_budget.h"
#include "session.h"

struct ByDevice {};
struct PresenceDampedTag {};

struct SubscriptionKey {
    const Session* subscriber;
    const Device* device;
    bool operator==(const SubscriptionKey&) const = default;
};

struct Subscription : ListHook<ByDevice>, ListHook<BySession> {
    Session* subscriber = nullptr;
    struct Device* device = nullptr;

    SubscriptionKey key() const { return SubscriptionKey{subscriber, device}; }
};

// The relay's bookkeeping on a device: what its subscribers were last told
// and the windows that damp presence flapping and takeover fights
// (relay.cpp). Devices only stores it.
struct PresenceState {
    uint64_t window_start_ms = 0;    // presence changes counted since
    uint64_t takeover_start_ms = 0;  // takeovers counted since
    uint8_t changes = 0;             // presence changes announced in the window
    uint8_t takeovers = 0;           // takeovers in the takeover window
    bool announced_online = false;   // the state subscribers were last told
    bool fight_logged = false;       // the refusal of this window was logged
};

// One device entry, allocated with its id in one block (see Devices).
//
// Memory: one Device per id online or followed, so its fields are ordered
// for size: the 4-byte count and the 1-byte length share the last 8 bytes,
// and the id follows at once (72 bytes before it on x86-64; 80 with the
// count before the 8-aligned PresenceState).
struct Device : ListHook<PresenceDampedTag> {
    Session* holder = nullptr;  // the session that registered it, if online
    IntrusiveList<Subscription, ByDevice> subscribers;
    PresenceState presence;
    uint32_t subscriber_count = 0;

    std::string_view key() const { return std::string_view(id_bytes(), id_len); }
    bool online() const { return holder != nullptr; }

   private:
    friend class Devices;
    explicit Device(uint8_t len) : id_len(len) {}
    ~Device() = default;
    char* id_bytes() { return reinterpret_cast<char*>(this + 1); }
    const char* id_bytes() const { return reinterpret_cast<const char*>(this + 1); }

    uint8_t id_len;  // the id's bytes follow the object
};

// Told of the first follower of an id and of its last going (not of the
// ones between). Called from inside subscribe() and the unsubscribes; it
// must not change the table.
class FollowWatcher {
   public:
    virtual void first_follower(std::string_view id) = 0;
    virtual void last_follower_gone(std::string_view id) = 0;

   protected:
    ~FollowWatcher() = default;
};

class Devices {
   public:
    // max_devices: entries at most (held or only subscribed to); budget:
    // charged for entries and tables (nullptr: unlimited).
    explicit Devices(const HashKey& key, uint32_t max_devices = UINT32_MAX,
                     MemoryBudget* budget = nullptr);
    ~Devices();
    Devices(const Devices&) = delete;
    Devices& operator=(const Devices&) = delete;

    size_t size() const { return table_.size(); }  // entries, online or not
    size_t online() const { return online_; }      // ids held by a session
    size_t subscriptions() const { return subscriptions_.size(); }  // over all sessions
    // Bytes of entries, subscriptions and tables (charged to the budget).
    uint64_t memory() const;

    Device* find(std::string_view id) const { return table_.find(id); }

    // nullptr: nobody is told.
    void set_follow_watcher(FollowWatcher* watcher) { watcher_ = watcher; }

    // Calls fn(Device*) for every entry; fn must not add or remove one.
    template <class Fn>
    void for_each(Fn fn) const {
        table_.for_each(fn);
    }

    // The entry for id (1..255 bytes), created offline and unfollowed if
    // absent; nullptr when --max-devices is reached or memory (the budget
    // or the allocator) is exhausted. A created entry that is then neither
    // claimed nor subscribed to must be handed to collect().
    Device* find_or_create(std::string_view id);

    // Makes s the holder of d; s must hold no id. Returns the previous
    // holder, which holds no id any more (a takeover), or nullptr.
    Session* claim(Session& s, Device& d);

    // s lets go of its id. Returns that device, now offline but still in the
    // table so that the caller can announce it; the caller then collect()s
    // it. nullptr if s held nothing.
    Device* release(Session& s);

    bool subscribed(const Session& s, const Device& d) const;
    // Adds the subscription (s must not have it). False when out of memory.
    bool subscribe(Session& s, Device& d);
    // Drops the subscription if s has it, then collect()s d.
    void unsubscribe(Session& s, Device& d);
    void unsubscribe_all(Session& s);

    // Frees d if nobody holds or follows it.
    void collect(Device* d);

    // Subscription entries examined by lookups so far (table slots probed):
    // what a test counts to show that no command's cost grows with the
    // number of subscriptions.
    uint64_t lookup_steps() const { return subscriptions_.probes(); }

    // Checks every structural invariant (for tests and fuzzers; O(entries
    // + subscriptions)): each subscription is on both lists and in the
    // table, under its own key, and names a device in the table; counts
    // match the lists; holders point back at their device; no entry is
    // both offline and unfollowed (it should have been collected); the
    // device limit holds; memory() matches what was charged. On failure
    // writes the first broken invariant into why (cap bytes) and returns
    // false.
    bool check_invariants(char* why, size_t cap) const;
    // The same from one session's side: its subscriptions are in the
    // table and name live devices, its count matches its list, and the
    // device it holds (if any) names it as holder.
    bool check_session(const Session& s, char* why, size_t cap) const;

   private:
    void drop(Subscription* sub);
    void free_subscription(Subscription* sub);
    void destroy(Device* d);

    IdTable<Device> table_;
    IdTable<Subscription, SubscriptionKey> subscriptions_;
    // Subscriptions are many and small: pooled, they take 48 bytes, not
    // malloc's 64 (fixed_pool.h).
    FixedPool subscription_pool_;
    uint32_t max_devices_;
    MemoryBudget* budget_;
    FollowWatcher* watcher_ = nullptr;
    uint64_t entry_bytes_ = 0;  // devices and subscriptions, tables apart
    size_t online_ = 0;
};
