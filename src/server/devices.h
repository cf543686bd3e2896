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
// either side can drop it in O(1).
//
// Devices live in an IdTable (open addressing, keyed SipHash). Allocation
// failures are reported, never fatal: the caller refuses the command.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hash.h"
#include "id_table.h"
#include "intrusive_list.h"
#include "session.h"

struct ByDevice {};

struct Subscription : ListHook<ByDevice>, ListHook<BySession> {
    Session* subscriber = nullptr;
    struct Device* device = nullptr;
};

struct Device {
    std::string id;
    Session* holder = nullptr;  // the session that registered it, if online
    IntrusiveList<Subscription, ByDevice> subscribers;
    uint32_t subscriber_count = 0;

    std::string_view key() const { return id; }
    bool online() const { return holder != nullptr; }
};

class Devices {
   public:
    explicit Devices(const HashKey& key) : table_(key) {}
    ~Devices();
    Devices(const Devices&) = delete;
    Devices& operator=(const Devices&) = delete;

    size_t size() const { return table_.size(); }            // entries, online or not
    size_t online() const { return online_; }                // ids held by a session
    size_t subscriptions() const { return subscriptions_; }  // over all sessions

    Device* find(std::string_view id) const { return table_.find(id); }

    // The entry for id, created offline and unfollowed if absent; nullptr
    // when memory is exhausted. A created entry that is then neither
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

   private:
    void drop(Subscription* sub);

    IdTable<Device> table_;
    size_t online_ = 0;
    size_t subscriptions_ = 0;
};
