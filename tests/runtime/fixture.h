/* fixture.h — helpers shared by the runtime tests (tests/runtime only). */
#ifndef VIB3_TESTS_RUNTIME_FIXTURE_H
#define VIB3_TESTS_RUNTIME_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

/* the whole file at path, NUL-terminated, malloc'd (the caller frees), its size in *n (0 when it
 * cannot be opened); NULL when it cannot be opened or read */
static inline char *slurp(const char *path, size_t *n) {
    *n = 0; /* set on every path: inlined, gcc -O2 checks the callers' uses of *n */
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    if (b) b[sz] = 0;
    fclose(f);
    *n = (size_t)sz;
    return b;
}

#endif
