// os_random.cpp - see os_random.h.
#include "os_random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>

bool os_random(void* buf, size_t len) {
    auto* out = static_cast<uint8_t*>(buf);
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(out + got, len - got, 0);
        if (n == -1) {
            if (errno == EINTR) continue;
            return false;
        }
        got += static_cast<size_t>(n);
    }
    return true;
}
