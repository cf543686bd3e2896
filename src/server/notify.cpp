// notify.cpp - see notify.h.
#include "notify.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstddef>

#include "io.h"
#include "log.h"

ServiceNotifier::~ServiceNotifier() {
    if (fd_ != -1) io_close(fd_);
}

bool ServiceNotifier::open() {
    const char* name = std::getenv("NOTIFY_SOCKET");
    if (name == nullptr || *name == '\0') return true;
    size_t len = std::strlen(name);
    if ((name[0] != '/' && name[0] != '@') || len >= sizeof addr_.sun_path) {
        LOG_WARN("NOTIFY_SOCKET '%s' is not a socket path or an abstract name: not notifying",
                 name);
        return false;
    }
    addr_.sun_family = AF_UNIX;
    std::memcpy(addr_.sun_path, name, len);
    // An abstract address starts with a NUL and is exactly as long as given.
    if (name[0] == '@') addr_.sun_path[0] = '\0';
    addr_len_ = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + len);
    int err = 0;
    fd_ = io_datagram_socket(AF_UNIX, &err);
    if (fd_ == -1) {
        LOG_WARN("cannot open a socket to notify systemd: %s", strerrordesc_np(err));
        return false;
    }
    return true;
}

void ServiceNotifier::send(const char* message) {
    if (fd_ == -1) return;
    int err = io_send_datagram(fd_, message, std::strlen(message),
                               reinterpret_cast<const struct sockaddr*>(&addr_), addr_len_);
    if (err != 0) LOG_DEBUG("notifying systemd: %s", strerrordesc_np(err));
}

void ServiceNotifier::ready() { send("READY=1\nSTATUS=serving"); }

void ServiceNotifier::reloading(uint64_t monotonic_usec) {
    char message[64];
    std::snprintf(message, sizeof message, "RELOADING=1\nMONOTONIC_USEC=%llu",
                  static_cast<unsigned long long>(monotonic_usec));
    send(message);
}

void ServiceNotifier::stopping() { send("STOPPING=1\nSTATUS=shutting down"); }

void ServiceNotifier::status(const char* text) {
    char message[256];
    std::snprintf(message, sizeof message, "STATUS=%s", text);
    // One line: systemd takes a newline as the end of the assignment.
    for (char* p = message; *p != '\0'; ++p)
        if (*p == '\n') *p = ' ';
    send(message);
}
