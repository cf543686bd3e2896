// cluster_hooks.h - what the relay tells, and asks, the other relays of a
// cluster, without knowing how they are reached: the cluster room
// (cluster.h) implements this over NATS; the relay holds a pointer to it,
// null when the server runs alone (then every hook is one pointer test
// away, and nothing else runs).
//
// Contract: every hook returns at once (it may queue a publish; it never
// waits on the network), so that replies keep their order and their speed.
// Hooks are called from inside relay commands; they must not call back
// into the relay. What comes the other way (another relay's data, claims,
// presence) enters through the Relay's "from the other relays" methods
// (relay.h), called by the cluster room from the loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "devices.h"

// How the holder of an id changed elsewhere in the cluster (an id this
// relay does not hold).
enum class RemoteChange : uint8_t {
    came,   // nobody held it; another relay's session now does
    went,   // another relay's session held it; nobody does now
    moved,  // another relay's session took it over from another (a takeover)
};

// The two ends of a direct-path step that crosses relays (relay_direct.cpp):
// a relay is named by its incarnation (unique in the cluster), a
// connection by its session id on that relay.
struct DirectHop {
    uint64_t from_relay = 0;    // the sender's relay: set by the cluster room
    uint64_t from_session = 0;  // the sender's connection there
    uint64_t to_relay = 0;      // the target's relay; 0: whichever holds it
    uint64_t to_session = 0;    // the target's connection; 0: whichever holds it
};

// FollowWatcher (devices.h): the first local subscriber of an id, and the
// last one gone, start and end this relay's interest in the id's data.
class ClusterHooks : public FollowWatcher {
   public:
    // Whether a session of another relay holds id, in this relay's view.
    virtual bool held_elsewhere(std::string_view id) const = 0;
    // The incarnation of the other relay that holds id in this relay's
    // view, or 0 when none does.
    virtual uint64_t holder_relay(std::string_view id) const = 0;
    // A local session now holds id (REGISTER, or AUTH when authenticated),
    // taking it over from whoever held it, here or elsewhere.
    virtual void claimed(std::string_view id, bool authenticated) = 0;
    // The local holder of id let it go (UNREGISTER, another id, its
    // connection ended); not called when another relay's claim took it.
    virtual void released(std::string_view id) = 0;
    // A SEND from the local holder of `from`, for its subscribers on the
    // other relays.
    virtual void sent(std::string_view from, const uint8_t* data, size_t len) = 0;
    // A SEND_TO from the local holder of `from` to `target`, which another
    // relay holds (held_elsewhere); PEERS were checked here.
    virtual void sent_to(std::string_view from, std::string_view target, const uint8_t* data,
                         size_t len) = 0;
    // A DIRECT_* step (an event, or a RESULT naming its sender: frame) from
    // the local connection hop.from_session, for the holder of `target` on
    // the relay holder_relay(target) (hop.to_relay, when not 0, is that
    // one); checks were made here. It travels in the order of the sender's
    // SEND_TOs.
    virtual void sent_direct(std::string_view target, const DirectHop& hop, const uint8_t* frame,
                             size_t len) = 0;

   protected:
    ~ClusterHooks() = default;
};

// What became of a SEND_TO, or of a direct-path step (relay_direct.cpp),
// that came from another relay.
enum class RemoteDelivery : uint8_t {
    delivered,
    not_here,    // the target is not held here (any more); for a direct-path
                 // step also: not by that connection, no such attempt here
    refused,     // the auth file's PEERS do not let the sender reach the target
    refused_v1,  // a v1 target that does not subscribe to the sender
};
