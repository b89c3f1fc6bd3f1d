/* kernel_fixture.h — helpers shared by the SIMD kernel tests (tests/simd only; also built for
 * aarch64 by tests/simd/test_neon.sh). */
#ifndef VIB3_TESTS_SIMD_KERNEL_FIXTURE_H
#define VIB3_TESTS_SIMD_KERNEL_FIXTURE_H

#include <stdlib.h>
#include <string.h>

/* the variants tested against the reference; vib3_simd_variant() gives NULL for those this CPU or
 * build cannot run */
static const char *const isas[] = {"avx2", "avx512", "neon"};
#define N_ISAS (sizeof isas / sizeof isas[0])

/* a buffer whose data pointer is `off` bytes past a 64-aligned address */
static inline void *buf_at(size_t bytes, size_t off, void **base) {
    *base = aligned_alloc(64, (bytes + off + 64 + 63) / 64 * 64);
    memset(*base, 0, bytes + off + 64);
    return (char *)*base + off;
}

#endif
