// server_reload.cpp - the Server's reload (SIGHUP) and the loading of the
// auth file it shares with start-up; see server.h. What can change while
// the server runs is re-read here; today that is the auth file
// (--auth-file), and a later configuration file would join it.
#include <cstdio>

#include "auth_file.h"
#include "log.h"
#include "server.h"

void Server::reload() {
    if (options_.auth_file.empty()) {
        LOG_INFO("SIGHUP received: nothing to reload (no --auth-file)");
        return;
    }
    LOG_INFO("SIGHUP received: reloading %s", options_.auth_file.c_str());
    // systemd (Type=notify) wants to hear that a reload begins and ends.
    notifier_.reloading(EventLoop::monotonic_ms() * 1000u);
    if (!load_auth_file_now()) LOG_WARN("keeping the auth file in force before the reload");
    notifier_.ready();
}

bool Server::load_auth_file_now() {
    const char* path = options_.auth_file.c_str();
    char err[512];
    std::unique_ptr<AuthTable> table = load_auth_file(path, hash_key_, err, sizeof err);
    if (!table) {
        LOG_ERROR("%s", err);
        return false;
    }
    size_t devices = table->size();
    size_t bytes = table->memory_bytes();
    AuthChanges changes;
    if (!relay_->install_auth(std::move(table), &changes)) {
        LOG_ERROR("%s: out of memory applying it", path);
        return false;
    }
    LOG_INFO("auth file %s: %zu devices (%zu bytes)%s; %u sessions closed, %u subscriptions "
             "cancelled",
             path, devices, bytes, options_.auth_required ? ", required for every id" : "",
             changes.sessions_closed, changes.subscriptions_cancelled);
    return true;
}
