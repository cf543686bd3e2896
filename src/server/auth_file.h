// auth_file.h - reading the auth file (--auth-file) from disk, at start and
// on every SIGHUP: bounded, checked, and parsed into an AuthTable
// (auth_table.h), which knows nothing of files.
#pragma once

#include <cstddef>
#include <memory>

#include "auth_table.h"
#include "hash.h"

// Reads and parses the auth file at path: a regular file of at most
// kAuthFileMaxBytes (a FIFO or a device is refused, without blocking).
// Logs a warning when group or others may read or write it, and one for
// each PEERS id that is not itself in the file (the first few). On
// failure returns nullptr with the reason, naming the file and, for a bad
// line, the line, in err.
std::unique_ptr<AuthTable> load_auth_file(const char* path, const HashKey& key, char* err,
                                          size_t err_cap);
