// listener.h - listening sockets.
#pragma once

#include <cstddef>
#include <cstdint>

// Opens non-blocking, close-on-exec TCP listening sockets on port.
// bind_address empty: one dual-stack socket on [::] (IPv4 and IPv6), or
// 0.0.0.0 where the kernel has no IPv6. Otherwise every address that
// bind_address (numeric or a name) resolves to. Stores up to max_fds
// descriptors in fds and returns how many; on failure returns 0 with a
// message in err.
size_t listen_tcp(const char* bind_address, uint16_t port, int* fds, size_t max_fds, char* err,
                  size_t err_cap);
