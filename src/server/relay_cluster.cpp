// relay_cluster.cpp - the Relay's side of a cluster (relay.h, "clusters"):
// what the other relays' sessions did, turned into what this relay's
// sessions see, exactly as if those sessions were local. How it reaches
// the relay (NATS, the replicated view of who holds what) is the cluster
// room's business (cluster.h, doc/cluster.md).
//
// What differs from one server, and why:
//  - A SEND_TO to a device held on another relay is answered 1 at once
//    (the target is online in this relay's view); the rule that a v1
//    target takes SEND_TO only from devices it subscribes to is checked
//    where the target is (deliver_remote_to), which refuses and counts
//    what breaks it instead of this relay answering 5. Nothing reaches a
//    v1 target that would not on one server.
//  - PEERS are checked at the sender's relay, before the status is
//    decided, and again here against this relay's auth file (all relays
//    of a cluster load the same one; a refusal here means they differ).
//  - Direct-path steps from the other relays enter through
//    deliver_remote_direct(), in relay_direct.cpp with the rest of the
//    rendezvous (the same rules: what cannot be checked at the sender's
//    relay is dropped here and counted).
#include "log.h"
#include "relay.h"
#include "relay_helpers.h"

using namespace relay_detail;

void Relay::set_cluster(ClusterHooks* hooks) {
    cluster_ = hooks;
    devices_.set_follow_watcher(hooks);
}

void Relay::remote_holder_changed(std::string_view id, RemoteChange change) {
    Device* d = devices_.find(id);
    if (d == nullptr) return;  // nobody here follows it
    if (change == RemoteChange::moved)
        announce_takeover(*d, nullptr);
    else
        presence_changed(*d, nullptr);
}

void Relay::lost_to_remote(std::string_view id) {
    Device* d = devices_.find(id);
    if (d == nullptr || d->holder == nullptr) return;
    Session& holder = *d->holder;
    // Let go without telling the cluster: the id has not gone offline, it
    // has moved (the cluster's view says so already).
    devices_.release(holder);
    ++stats_.takeovers;
    LOG_INFO("%s: \"%s\" was taken over on another relay", holder.label(), PrintableId(id).text);
    if (d->subscriber_count != 0) announce_takeover(*d, &holder);
    devices_.collect(d);
    holder.close(CloseReason::taken_over);
}

bool Relay::deliver_remote(std::string_view from, const uint8_t* data, size_t len) {
    Device* d = devices_.find(from);
    if (d == nullptr || d->subscriber_count == 0) return false;
    flush_presence(*d);  // PRESENCE online before the id's first delivery
    DeliveryHeads heads(from);
    for (Subscription* sub = d->subscribers.front(); sub != nullptr;
         sub = d->subscribers.next(*sub))
        deliver(*sub->subscriber, heads, data, len);
    return true;
}

RemoteDelivery Relay::deliver_remote_to(std::string_view target, std::string_view from,
                                        const uint8_t* data, size_t len) {
    Device* d = devices_.find(target);
    if (d == nullptr || d->holder == nullptr) return RemoteDelivery::not_here;
    Session& to = *d->holder;
    if (!may_reach(auth_.get(), target, from)) return RemoteDelivery::refused;
    Device* sender = devices_.find(from);
    if (!is_v2(to) && (sender == nullptr || !devices_.subscribed(to, *sender)))
        return RemoteDelivery::refused_v1;
    if (sender != nullptr) flush_presence(*sender);
    DeliveryHeads heads(from);
    deliver(to, heads, data, len);
    return RemoteDelivery::delivered;
}
