// devices.cpp - see devices.h.
#include "devices.h"

#include <new>

Devices::~Devices() {
    // Sessions are ended before the relay goes, so only entries of a server
    // stopped by a fatal error can remain here.
    table_.for_each([](Device* d) {
        while (Subscription* sub = d->subscribers.pop_front()) {
            IntrusiveList<Subscription, BySession>::unlink(*sub);
            delete sub;
        }
        delete d;
    });
}

Device* Devices::find_or_create(std::string_view id) {
    Device* d = table_.find(id);
    if (d != nullptr) return d;
    d = new (std::nothrow) Device;
    if (d == nullptr) return nullptr;
    d->id.assign(id.data(), id.size());
    if (!table_.insert(d)) {
        delete d;
        return nullptr;
    }
    return d;
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
    // Walk the shorter of the two lists.
    if (s.subscription_count <= d.subscriber_count) {
        for (const Subscription* sub = s.subscriptions.front(); sub != nullptr;
             sub = s.subscriptions.next(*sub))
            if (sub->device == &d) return true;
    } else {
        for (const Subscription* sub = d.subscribers.front(); sub != nullptr;
             sub = d.subscribers.next(*sub))
            if (sub->subscriber == &s) return true;
    }
    return false;
}

bool Devices::subscribe(Session& s, Device& d) {
    auto* sub = new (std::nothrow) Subscription;
    if (sub == nullptr) return false;
    sub->subscriber = &s;
    sub->device = &d;
    d.subscribers.push_back(*sub);
    s.subscriptions.push_back(*sub);
    ++d.subscriber_count;
    ++s.subscription_count;
    ++subscriptions_;
    return true;
}

void Devices::drop(Subscription* sub) {
    Device* d = sub->device;
    Session* s = sub->subscriber;
    IntrusiveList<Subscription, ByDevice>::unlink(*sub);
    IntrusiveList<Subscription, BySession>::unlink(*sub);
    --d->subscriber_count;
    --s->subscription_count;
    --subscriptions_;
    delete sub;
    collect(d);
}

void Devices::unsubscribe(Session& s, Device& d) {
    for (Subscription* sub = s.subscriptions.front(); sub != nullptr;
         sub = s.subscriptions.next(*sub)) {
        if (sub->device == &d) {
            drop(sub);
            return;
        }
    }
    collect(&d);
}

void Devices::unsubscribe_all(Session& s) {
    while (Subscription* sub = s.subscriptions.front()) drop(sub);
}

void Devices::collect(Device* d) {
    if (d->online() || d->subscriber_count != 0) return;
    table_.erase(d->key());
    delete d;
}
