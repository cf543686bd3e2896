// server_reload.cpp - the Server's reload (SIGHUP) and the loading of the
// auth file it shares with start-up; see server.h. What can change while
// the server runs is re-read here: the configuration file (--config; the
// command line given at start still overrides it) and the auth file.
#include <cstdio>
#include <string>

#include "auth_file.h"
#include "log.h"
#include "server.h"

void Server::reload() {
    if (options_.config_file.empty() && options_.auth_file.empty()) {
        LOG_INFO("SIGHUP received: nothing to reload (no --config, no --auth-file)");
        return;
    }
    // systemd (Type=notify) wants to hear that a reload begins and ends.
    notifier_.reloading(EventLoop::monotonic_ms() * 1000u);
    if (!options_.config_file.empty()) {
        LOG_INFO("SIGHUP received: reloading %s", options_.config_file.c_str());
        ServerOptions next;
        std::string err;
        if (!reparse_options(options_, &next, &err)) {
            LOG_ERROR("reload: %s; the running configuration stays", err.c_str());
            notifier_.ready();
            return;
        }
        apply_reloaded_options(next);
    }
    if (!options_.auth_file.empty()) {
        LOG_INFO("reloading the auth file %s", options_.auth_file.c_str());
        if (!load_auth_file_now()) LOG_WARN("keeping the auth file in force before the reload");
    }
    notifier_.ready();
}

// Puts in force what a reload may change, and says what it may not.
void Server::apply_reloaded_options(const ServerOptions& next) {
    for (const std::string& name : options_needing_restart(options_, next))
        LOG_WARN("reload: %s changed: it needs a restart; ignored", name.c_str());
    if (next.auth_file.empty() && !options_.auth_file.empty()) {
        LOG_WARN("reload: auth-file removed: it needs a restart; ignored");
    } else {
        options_.auth_file = next.auth_file;
        options_.auth_required = next.auth_required;
        relay_->set_auth_required(options_.auth_required);
    }
    options_.log_level = next.log_level;
    options_.log_format = next.log_format;
    log_set_level(next.log_level);
    log_set_format(next.log_format);
    options_.idle_timeout_s = next.idle_timeout_s;
    options_.frame_timeout_s = next.frame_timeout_s;
    options_.max_subs = next.max_subs;
    relay_->set_reloadable_limits(next.idle_timeout_s, next.max_subs);
    options_.max_conns = next.max_conns;
    options_.max_conns_given = next.max_conns_given;
    apply_fd_limit();
    LOG_INFO("reload: idle timeout %u s, frame timeout %u s, max %u connections, %u subscriptions "
             "each, log level %s",
             options_.idle_timeout_s, options_.frame_timeout_s, max_conns_, options_.max_subs,
             log_level_name(options_.log_level));
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
