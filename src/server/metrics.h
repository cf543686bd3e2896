// metrics.h - writes the server's figures in one of two forms: the
// Prometheus text exposition format (version 0.0.4: each family's # HELP
// and # TYPE line once, then its samples, label values escaped), or one log
// line of name=value pairs (name{label="value"}=value, the names without
// their "stupidp2p_" prefix and "_total" suffix), for SIGUSR1. Knows
// nothing of what is measured; the server gathers the figures
// (Server::render_metrics) and writes them through this.
#pragma once

#include <cstdint>
#include <string>

class MetricsText {
   public:
    enum class Form { prometheus, log_line };

    explicit MetricsText(std::string& out, Form form = Form::prometheus)
        : out_(out), form_(form) {}

    // Starts a family: type is "counter" or "gauge". Names and help texts
    // are the caller's constants (no escaping needed beyond the help's).
    void family(const char* name, const char* type, const char* help);
    // One sample of the current family, without or with one label.
    void sample(uint64_t value);
    void sample(const char* label, const char* label_value, uint64_t value);

   private:
    std::string& out_;
    Form form_;
    const char* name_ = "";
};
