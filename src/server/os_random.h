// os_random.h - bytes from the kernel's random pool, for keys and nonces:
// the SipHash key of the device table (hash.h), the server nonce of every
// AUTH attempt (relay_auth.cpp) and the tokens of --gen-token.
#pragma once

#include <cstddef>

// Fills buf[0..len) with getrandom(2) (flags 0: blocks only until the pool
// is first initialised, at boot), retried on EINTR and short reads. False,
// with errno set, when the kernel gives no randomness.
bool os_random(void* buf, size_t len);
