// metrics.cpp - see metrics.h.
#include "metrics.h"

#include <cstdio>
#include <string_view>

namespace {

// Help text: backslash and newline escaped. Label values: also the quote.
void append_escaped(std::string& out, const char* text, bool quote) {
    for (const char* p = text; *p != '\0'; ++p) {
        if (*p == '\\') out += "\\\\";
        else if (*p == '\n') out += "\\n";
        else if (quote && *p == '"') out += "\\\"";
        else out += *p;
    }
}

// " 12\n" (Prometheus) or "=12 " (log line).
void append_value(std::string& out, uint64_t value, MetricsText::Form form) {
    char digits[24];
    std::snprintf(digits, sizeof digits,
                  form == MetricsText::Form::prometheus ? " %llu\n" : "=%llu ",
                  static_cast<unsigned long long>(value));
    out += digits;
}

}  // namespace

void MetricsText::family(const char* name, const char* type, const char* help) {
    name_ = name;
    if (form_ == Form::log_line) return;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    append_escaped(out_, help, false);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
}

// The name of the current family as written: whole for Prometheus; in a
// log line without the common prefix and the "_total" of counters.
static void append_name(std::string& out, const char* name, MetricsText::Form form) {
    if (form == MetricsText::Form::prometheus) {
        out += name;
        return;
    }
    std::string_view n(name);
    if (n.starts_with("stupidp2p_")) n.remove_prefix(10);
    if (n.ends_with("_total")) n.remove_suffix(6);
    out += n;
}

void MetricsText::sample(uint64_t value) {
    append_name(out_, name_, form_);
    append_value(out_, value, form_);
}

void MetricsText::sample(const char* label, const char* label_value, uint64_t value) {
    append_name(out_, name_, form_);
    out_ += '{';
    out_ += label;
    out_ += "=\"";
    append_escaped(out_, label_value, true);
    out_ += '"';
    out_ += '}';
    append_value(out_, value, form_);
}
