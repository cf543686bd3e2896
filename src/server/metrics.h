// metrics.h - the Prometheus text exposition format (version 0.0.4), as a
// writer: each family's # HELP and # TYPE line once, then its samples, with
// label values escaped. Knows nothing of what is measured; the server
// gathers the figures (Server::render_metrics) and writes them through this.
#pragma once

#include <cstdint>
#include <string>

class MetricsText {
   public:
    explicit MetricsText(std::string& out) : out_(out) {}

    // Starts a family: type is "counter" or "gauge". Names and help texts
    // are the caller's constants (no escaping needed beyond the help's).
    void family(const char* name, const char* type, const char* help);
    // One sample of the current family, without or with one label.
    void sample(uint64_t value);
    void sample(const char* label, const char* label_value, uint64_t value);

   private:
    std::string& out_;
    const char* name_ = "";
};
