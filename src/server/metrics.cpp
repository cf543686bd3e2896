// metrics.cpp - see metrics.h.
#include "metrics.h"

#include <cstdio>

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

void append_value(std::string& out, uint64_t value) {
    char digits[24];
    std::snprintf(digits, sizeof digits, " %llu\n", static_cast<unsigned long long>(value));
    out += digits;
}

}  // namespace

void MetricsText::family(const char* name, const char* type, const char* help) {
    name_ = name;
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

void MetricsText::sample(uint64_t value) {
    out_ += name_;
    append_value(out_, value);
}

void MetricsText::sample(const char* label, const char* label_value, uint64_t value) {
    out_ += name_;
    out_ += '{';
    out_ += label;
    out_ += "=\"";
    append_escaped(out_, label_value, true);
    out_ += '"';
    out_ += '}';
    append_value(out_, value);
}
