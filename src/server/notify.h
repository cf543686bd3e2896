// notify.h - tells systemd how the service is doing, through the
// notification protocol of sd_notify(3), without libsystemd: one datagram
// of newline-separated VAR=value assignments to the AF_UNIX socket named by
// $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
//
// Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every
// call does nothing. A message that cannot be sent is dropped with a debug
// line: the service manager is told again at the next change, and the
// relay never waits for it (the socket is non-blocking).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>

class ServiceNotifier {
   public:
    ServiceNotifier() = default;
    ~ServiceNotifier();
    ServiceNotifier(const ServiceNotifier&) = delete;
    ServiceNotifier& operator=(const ServiceNotifier&) = delete;

    // Reads $NOTIFY_SOCKET and opens the socket. False (logged) when the
    // variable names no usable socket; true when it is unset.
    bool open();
    bool active() const { return fd_ != -1; }

    void ready();                                // READY=1 (also after a reload)
    void reloading(uint64_t monotonic_usec);     // RELOADING=1, MONOTONIC_USEC=
    void stopping();                             // STOPPING=1
    void status(const char* text);               // STATUS=<text>, one line

   private:
    void send(const char* message);

    int fd_ = -1;
    struct sockaddr_un addr_ = {};
    socklen_t addr_len_ = 0;
};
