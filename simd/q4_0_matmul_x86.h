/* q4_0_matmul_x86.h — the Q4_0 x Q8_0 mat-mul driver written once for the x86 variants;
 * kernels_avx2.c and kernels_avx512.c each include it (each compiling its own copy with its own
 * flags) after defining Q4MM_ISA (the function suffix: vib3_matmul_q4_0_<isa>) and, with their
 * own instructions,
 *
 *   CSUM_BLOCKS_MAX                  the most blocks per row the per-token sums table holds
 *   q8_block_sums8(x, nb, csum)      csum[b] = 8 * sum(x_b), the Q4_0 offset per activation block
 *   q4_tile8x4(w, rb, nb, xs, csum, y, y_ld, nt)  8 rows x up to 4 tokens
 *   mm_q(w, cols, x, x_stride, n_b, y, y_ld, r0, r1, q4)  the general 4 x 4 tile path
 *
 * Rows go in L2-sized strips (256 KiB of weights), each reused by every group of four tokens;
 * the per-token sums are computed once per strip and token group. Fewer than 8 rows, or rows of
 * more than CSUM_BLOCKS_MAX blocks, take mm_q entirely; otherwise the last (r1 - r0) % 8 rows do.
 */
#ifndef VIB3_SIMD_Q4_0_MATMUL_X86_H
#define VIB3_SIMD_Q4_0_MATMUL_X86_H

#include <string.h>

#include "simd/simd.h"

#define Q4MM_CAT_(a, b) a##b
#define Q4MM_CAT(a, b) Q4MM_CAT_(a, b)
#define Q4MM_FN Q4MM_CAT(vib3_matmul_q4_0_, Q4MM_ISA)

void Q4MM_FN(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y, size_t y_ld, size_t r0,
             size_t r1) {
    const size_t nb = cols / VIB3_QBLOCK, rb = nb * sizeof(vib3_block_q4_0);
    if (nb > CSUM_BLOCKS_MAX || r1 - r0 < 8) {
        mm_q(w, cols, x, x_stride, n_b, y, y_ld, r0, r1, 1);
        return;
    }
    int32_t csum[4][CSUM_BLOCKS_MAX];
    const size_t strip = 256 * 1024 / rb > 8 ? 256 * 1024 / rb / 8 * 8 : 8;
    for (size_t s0 = r0; s0 + 8 <= r1; s0 += strip) {
        size_t s1 = s0 + strip < r1 ? s0 + strip : r1;
        s1 = s0 + (s1 - s0) / 8 * 8;
        for (size_t t0 = 0; t0 < n_b; t0 += 4) {
            int nt = (int)(n_b - t0 < 4 ? n_b - t0 : 4);
            const vib3_block_q8_0 *xs[4];
            for (int t = 0; t < 4; t++) {
                xs[t] = (const vib3_block_q8_0 *)((const char *)x + (t0 + (size_t)(t < nt ? t : 0)) * x_stride);
                if (t < nt) q8_block_sums8(xs[t], nb, csum[t]);
                else memcpy(csum[t], csum[0], nb * sizeof(int32_t));
            }
            for (size_t r = s0; r < s1; r += 8)
                q4_tile8x4((const char *)w + r * rb, rb, nb, xs, csum, y + t0 * y_ld + r, y_ld, nt);
        }
    }
    size_t done = r0 + (r1 - r0) / 8 * 8;
    if (done < r1) mm_q(w, cols, x, x_stride, n_b, y, y_ld, done, r1, 1);
}

#undef Q4MM_FN
#endif
