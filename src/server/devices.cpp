// devices.cpp - see devices.h.
#include "devices.h"

#include <cstdio>
#include <new>

#include "invariants.h"

using invariants::broken;

Devices::Devices(const HashKey& key, uint32_t max_devices, MemoryBudget* budget)
    : table_(key, siphash13, budget),
      subscriptions_(key, siphash13, budget),
      subscription_pool_(sizeof(Subscription)),
      max_devices_(max_devices),
      budget_(budget) {}

Devices::~Devices() {
    // Sessions are ended before the relay goes, so only entries of a server
    // stopped by a fatal error can remain here.
    table_.for_each([this](Device* d) {
        while (Subscription* sub = d->subscribers.pop_front()) {
            IntrusiveList<Subscription, BySession>::unlink(*sub);
            free_subscription(sub);
        }
        d->~Device();
        ::operator delete(d);
    });
    budget_release(budget_, entry_bytes_);
}

uint64_t Devices::memory() const {
    return entry_bytes_ + table_.memory() + subscriptions_.memory();
}

Device* Devices::find_or_create(std::string_view id) {
    Device* d = table_.find(id);
    if (d != nullptr) return d;
    if (table_.size() >= max_devices_ || id.empty() || id.size() > 255) return nullptr;
    size_t bytes = sizeof(Device) + id.size();
    if (!budget_charge(budget_, bytes)) return nullptr;
    void* block = ::operator new(bytes, std::nothrow);
    if (block == nullptr) {
        budget_release(budget_, bytes);
        return nullptr;
    }
    d = new (block) Device(static_cast<uint8_t>(id.size()));
    id.copy(d->id_bytes(), id.size());
    if (!table_.insert(d)) {
        d->~Device();
        ::operator delete(block);
        budget_release(budget_, bytes);
        return nullptr;
    }
    entry_bytes_ += bytes;
    return d;
}

void Devices::destroy(Device* d) {
    size_t bytes = sizeof(Device) + d->id_len;
    table_.erase(d->key());
    d->~Device();  // unlinks it from the relay's damping list, if on it
    ::operator delete(d);
    entry_bytes_ -= bytes;
    budget_release(budget_, bytes);
}

Session* Devices::claim(Session& s, Device& d) {
    Session* old = d.holder;
    if (old != nullptr)
        old->device = nullptr;
    else
        ++online_;
    d.holder = &s;
    s.device = &d;
    return old;
}

Device* Devices::release(Session& s) {
    Device* d = s.device;
    if (d == nullptr) return nullptr;
    s.device = nullptr;
    d->holder = nullptr;
    --online_;
    return d;
}

bool Devices::subscribed(const Session& s, const Device& d) const {
    return subscriptions_.find(SubscriptionKey{&s, &d}) != nullptr;
}

bool Devices::subscribe(Session& s, Device& d) {
    if (!budget_charge(budget_, sizeof(Subscription))) return false;
    void* block = subscription_pool_.allocate();
    if (block == nullptr) {
        budget_release(budget_, sizeof(Subscription));
        return false;
    }
    auto* sub = new (block) Subscription;
    sub->subscriber = &s;
    sub->device = &d;
    if (!subscriptions_.insert(sub)) {
        free_subscription(sub);
        budget_release(budget_, sizeof(Subscription));
        return false;
    }
    entry_bytes_ += sizeof(Subscription);
    d.subscribers.push_back(*sub);
    s.subscriptions.push_back(*sub);
    ++d.subscriber_count;
    ++s.subscription_count;
    if (d.subscriber_count == 1 && watcher_ != nullptr) watcher_->first_follower(d.key());
    return true;
}

void Devices::free_subscription(Subscription* sub) {
    sub->~Subscription();
    subscription_pool_.free(sub);
}

void Devices::drop(Subscription* sub) {
    Device* d = sub->device;
    Session* s = sub->subscriber;
    subscriptions_.erase(sub->key());
    IntrusiveList<Subscription, ByDevice>::unlink(*sub);
    IntrusiveList<Subscription, BySession>::unlink(*sub);
    --d->subscriber_count;
    --s->subscription_count;
    free_subscription(sub);
    entry_bytes_ -= sizeof(Subscription);
    budget_release(budget_, sizeof(Subscription));
    if (d->subscriber_count == 0 && watcher_ != nullptr) watcher_->last_follower_gone(d->key());
    collect(d);
}

void Devices::unsubscribe(Session& s, Device& d) {
    Subscription* sub = subscriptions_.find(SubscriptionKey{&s, &d});
    if (sub != nullptr)
        drop(sub);
    else
        collect(&d);
}

void Devices::unsubscribe_all(Session& s) {
    while (Subscription* sub = s.subscriptions.front()) drop(sub);
}

void Devices::collect(Device* d) {
    if (d->online() || d->subscriber_count != 0) return;
    destroy(d);
}

// ---- invariants -----------------------------------------------------------------

bool Devices::check_invariants(char* why, size_t cap) const {
    if (table_.size() > max_devices_)
        return broken(why, cap, "%zu devices, limit %u", table_.size(), max_devices_);
    bool ok = true;
    size_t subs_seen = 0;
    uint64_t bytes = 0;
    table_.for_each([&](Device* d) {
        if (!ok) return;
        bytes += sizeof(Device) + d->id_len;
        if (table_.find(d->key()) != d) {
            ok = broken(why, cap, "device not found under its own id");
            return;
        }
        if (!d->online() && d->subscriber_count == 0) {
            ok = broken(why, cap, "device offline and unfollowed: not collected");
            return;
        }
        if (d->online() && d->holder->device != d) {
            ok = broken(why, cap, "holder does not point back at its device");
            return;
        }
        uint32_t n = 0;
        for (const Subscription* sub = d->subscribers.front(); sub != nullptr;
             sub = d->subscribers.next(*sub)) {
            ++n;
            if (sub->device != d) {
                ok = broken(why, cap, "subscription on the list of another device");
                return;
            }
            if (subscriptions_.find(sub->key()) != sub) {
                ok = broken(why, cap, "subscription missing from the table");
                return;
            }
            if (!IntrusiveList<Subscription, BySession>::linked(*sub) ||
                sub->subscriber->subscription_count == 0) {
                ok = broken(why, cap, "subscription not on its session's list");
                return;
            }
        }
        if (n != d->subscriber_count) {
            ok = broken(why, cap, "device counts %u subscribers, list has %u", d->subscriber_count,
                        n);
            return;
        }
        subs_seen += n;
        bytes += uint64_t{n} * sizeof(Subscription);
    });
    if (!ok) return false;
    if (subs_seen != subscriptions_.size())
        return broken(why, cap, "%zu subscriptions on lists, %zu in the table", subs_seen,
                      subscriptions_.size());
    if (bytes != entry_bytes_)
        return broken(why, cap, "entries take %llu bytes, %llu charged",
                      static_cast<unsigned long long>(bytes),
                      static_cast<unsigned long long>(entry_bytes_));
    return true;
}

bool Devices::check_session(const Session& s, char* why, size_t cap) const {
    uint32_t n = 0;
    for (const Subscription* sub = s.subscriptions.front(); sub != nullptr;
         sub = s.subscriptions.next(*sub)) {
        ++n;
        if (sub->subscriber != &s) return broken(why, cap, "subscription of another session");
        if (table_.find(sub->device->key()) != sub->device)
            return broken(why, cap, "subscription to a device not in the table");
        if (subscriptions_.find(sub->key()) != sub)
            return broken(why, cap, "session's subscription missing from the table");
    }
    if (n != s.subscription_count)
        return broken(why, cap, "session counts %u subscriptions, list has %u",
                      s.subscription_count, n);
    if (s.device != nullptr && (table_.find(s.device->key()) != s.device || s.device->holder != &s))
        return broken(why, cap, "session's device does not name it as holder");
    return true;
}
