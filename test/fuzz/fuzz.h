/*
 * fuzz.h - what every harness in test/fuzz/ defines: the libFuzzer entry
 * point. `make fuzz` links a harness with libFuzzer; `make test` links it
 * with replay.c, which feeds it every file of its checked-in corpus, so the
 * corpora are replayed on every test run, with or without clang.
 */
#ifndef STUPIDP2P_FUZZ_H
#define STUPIDP2P_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C"
#endif
    int
    LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
