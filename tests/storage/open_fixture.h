/* open_fixture.h — the fixture model (tests/format/fixture.h) written once to the test's temp
 * directory and opened, for the storage/ and index/ tests. */
#ifndef VIB3_TESTS_STORAGE_OPEN_FIXTURE_H
#define VIB3_TESTS_STORAGE_OPEN_FIXTURE_H

#include <stdio.h>

#include "tests/format/fixture.h"
#include "tests/test.h"

/* <tmpdir>/name from o, opened into *file with a fresh 64 MiB *arena; 0 on success, else -1 with
 * the reason on stderr */
static inline int fixture_open_tmp(const fixture_opts *o, const char *name, vib3_arena *arena, vib3_file *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", vib3_test_tmpdir(), name);
    if (fixture_write(path, o) != 0 || vib3_arena_init(arena, 64u << 20, "test", 0) != 0 ||
        vib3_file_open(file, path, arena, 0) != 0) {
        fprintf(stderr, "fixture %s: %s\n", path, vib3_err_msg());
        return -1;
    }
    return 0;
}

#endif
