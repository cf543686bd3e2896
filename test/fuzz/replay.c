/*
 * replay.c - a plain driver for the libFuzzer harnesses: feeds the harness
 * every file of the corpus directory given as argument, or else of
 * FUZZ_CORPUS_ROOT/NAME for a program named fuzz_NAME (set by the
 * Makefile), once each, in name order, and prints how many. A harness
 * finds a bug by aborting, so any failure ends this program with a signal
 * and the name of the input it was given on stderr. Files are read whole
 * (at most 1 MiB each, as libFuzzer's -max_len would allow).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define REPLAY_MAX_INPUT (1u << 20)

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    char own[4096];
    (void)own;
    const char *dir = argc > 1 ? argv[1] : NULL;
#ifdef FUZZ_CORPUS_ROOT
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (dir == NULL && strncmp(base, "fuzz_", 5) == 0) {
        snprintf(own, sizeof own, "%s/%s", FUZZ_CORPUS_ROOT, base + 5);
        dir = own;
    }
#endif
    if (dir == NULL) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) {
        perror(dir);
        return 1;
    }
    static unsigned char buf[REPLAY_MAX_INPUT];
    int replayed = 0;
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] == '.') {
            free(names[i]);
            continue;
        }
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            perror(path);
            return 1;
        }
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        fprintf(stderr, "input %s (%zu bytes)\n", path, len);
        /* An exact heap copy, so that ASan sees reads past the end. */
        unsigned char *copy = malloc(len ? len : 1);
        if (copy == NULL)
            return 1;
        memcpy(copy, buf, len);
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
        replayed++;
    }
    free(names);
    if (replayed == 0) {
        fprintf(stderr, "%s: no inputs\n", dir);
        return 1;
    }
    printf("replayed %d inputs from %s\n", replayed, dir);
    return 0;
}
