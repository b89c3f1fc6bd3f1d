/* q4k16_x86.h — the Q4_K16 x Q8_0 mat-vec and mat-mul written once for the 256-bit x86
 * variants; kernels_avx2.c and kernels_avx512.c each include it (so each compiles its own
 * copy with its own flags) after defining
 *
 *   K16_ISA        the suffix of its functions (avx2, avx512): vib3_matvec_q4_k16_<isa>,
 *                  vib3_matmul_q4_k16_<isa>
 *   K16_MADD_ACC(acc, a, b)  acc + vpmaddwd(a, b) in int32 lanes (AVX2: vpmaddwd + vpaddd;
 *                  AVX-512 VNNI: one vpdpwssd). A macro, not an inline function: with a
 *                  function GCC 12 schedules the AVX2 mat-vec differently (same result)
 *   f16s, lane_mask  its f16 -> f32 scalar and first-n-lanes mask (n < 8)
 *
 * Layout and bounds: simd.h (VIB3_Q4K16_*); rows of up to K16_CH_MAX chunks per pass.
 *
 * Mat-vec: eight rows per step with the Q4_0 kernel's layout (rows A and B share a ymm, A's 16
 * packed bytes in the low half; one AND / one shift + AND give both rows' group-0 / group-1
 * nibbles; vpmaddubsw against the activation halves broadcast to both lanes). The two groups
 * have their own 6-bit sub-scales, so instead of Q4_0's vphaddw tree each group's int16 pair
 * sums go through one vpmaddwd with the pair's sub-scales ([sc_A x8 | sc_B x8], one vpshufb
 * from the eight rows' sub-scale words gathered into one vector per chunk): sc0 S0 + sc1 S1 in
 * int32 partial lanes [A x4 | B x4], converted and FMA'd with d_x into per-pair f32
 * accumulators — no horizontal work per chunk; d scales them once per super-block and one
 * vhaddps tree reduces them once per call. The min term mn0 T0 + mn1 T1 is one vpmaddwd of
 * the eight rows' (mn1, mn0) against the chunk's (T1, T0) (activation sums, computed once per
 * call with d_x) per chunk, scaled by dmin per super-block. Mat-mul: 8 rows x 4 tokens, the
 * rows' nibbles and sub-scales unpacked once per chunk for four tokens, a vphaddw tree that
 * keeps the groups apart (per-pair accumulators for four tokens would not fit the registers).
 * Compute ceiling (L2-resident, AVX2 Zen 3): ~25 G weights/s vs Q4_0's ~38: two scales and a
 * min per 32 weights instead of one scale (docs/bench/kernels.md, "Q4_K16"). */
#ifndef VIB3_SIMD_Q4K16_X86_H
#define VIB3_SIMD_Q4K16_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "simd/simd.h"

#define K16_CAT_(a, b) a##b
#define K16_CAT(a, b) K16_CAT_(a, b)
#define K16_MATVEC K16_CAT(vib3_matvec_q4_k16_, K16_ISA)
#define K16_MATMUL K16_CAT(vib3_matmul_q4_k16_, K16_ISA)
#define K16_CH_MAX 1024u /* chunks per pass of the per-call activation tables (32768 columns) */
#define K16_SB_BYTES (VIB3_Q4K16_HEAD_BYTES + 8 * VIB3_Q4K16_CHUNK_BYTES)

/* per chunk c of x: d_x as f32 and (T1, T0) as two int16 in one int32 (k16_mins' order) */
static void k16_prep(const vib3_block_q8_0 *x, size_t n, float *dxf, int32_t *tw) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (size_t c = 0; c < n; c++) {
        __m256i v = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, _mm256_loadu_si256((const __m256i *)x[c].qs)), ones16);
        __m128i t = _mm_hadd_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)); /* [a a b b] */
        t = _mm_hadd_epi32(t, t);                                                                /* [T0 T1 ..] */
        tw[c] = (int32_t)(((uint32_t)_mm_extract_epi32(t, 1) & 0xffffu) | ((uint32_t)_mm_extract_epi32(t, 0) << 16));
        dxf[c] = f16s(x[c].d);
    }
}
static inline uint32_t ld32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
/* 8 rows' 32-bit words at offset off, lane order A C E G B D F H (rows 0 2 4 6 1 3 5 7) */
static inline __attribute__((always_inline)) __m256i k16_words8(const char *const r[8], size_t off) {
    uint64_t a = ld32(r[0] + off) | (uint64_t)ld32(r[2] + off) << 32, b = ld32(r[4] + off) | (uint64_t)ld32(r[6] + off) << 32;
    uint64_t c = ld32(r[1] + off) | (uint64_t)ld32(r[3] + off) << 32, d = ld32(r[5] + off) | (uint64_t)ld32(r[7] + off) << 32;
    __m128i lo = _mm_insert_epi64(_mm_cvtsi64_si128((long long)a), (long long)b, 1);
    __m128i hi = _mm_insert_epi64(_mm_cvtsi64_si128((long long)c), (long long)d, 1);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}
/* (mn1, mn0) as int16 pairs from sub-scale words u (sm[0..2] in the low 3 bytes), for one
 * vpmaddwd against (T1, T0): the top two bits of sm[0..2] as bytes (h0, h1, h2, 0), one
 * vpmaddubsw by (1, 4, 16, 0) and one vpmaddwd by ones give mn1 = h0 + 4 h1 + 16 h2; mn0 =
 * sm[2] & 63 is already in place at bits 16..21 */
static inline __attribute__((always_inline)) __m256i k16_mins(__m256i u) {
    __m256i h = _mm256_and_si256(_mm256_srli_epi32(u, 6), _mm256_set1_epi32(0x00030303));
    __m256i m1 = _mm256_madd_epi16(_mm256_maddubs_epi16(h, _mm256_set1_epi32(0x00100401)), _mm256_set1_epi16(1));
    return _mm256_or_si256(m1, _mm256_and_si256(u, _mm256_set1_epi32(0x003f0000)));
}
/* from sub-scale words u: (sc0, sc1) and (mn1, mn0) as int16 pairs */
static inline __attribute__((always_inline)) void k16_scales(__m256i u, __m256i *sc, __m256i *mn) {
    const __m256i ctl = _mm256_setr_epi8(0, -1, 1, -1, 4, -1, 5, -1, 8, -1, 9, -1, 12, -1, 13, -1, 0, -1, 1, -1, 4,
                                         -1, 5, -1, 8, -1, 9, -1, 12, -1, 13, -1);
    *sc = _mm256_and_si256(_mm256_shuffle_epi8(u, ctl), _mm256_set1_epi16(63));
    *mn = k16_mins(u);
}
/* rows a (low lane) and b (high lane) of a chunk: sc0 S0 + sc1 S1 in int32 partial lanes
 * [a x4 | b x4]; usc: the sub-scale words masked to sm[0..1] & 63, sel: the pair's
 * vpshufb control ((sc0 | sc1) of the pair's word, one per 128-bit lane) */
static inline __attribute__((always_inline)) __m256i k16_pair_sc(const char *a, const char *b, __m256i xlo, __m256i xhi,
                                                                 __m256i usc, const int p) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const char w = (char)(4 * p);
    const __m256i sel0 = _mm256_setr_epi8(w, -1, w, -1, w, -1, w, -1, w, -1, w, -1, w, -1, w, -1, w, -1, w, -1, w, -1,
                                          w, -1, w, -1, w, -1, w, -1, w, -1);
    const __m256i sel1 = _mm256_add_epi8(sel0, _mm256_set1_epi16(1));
    __m256i q = _mm256_loadu2_m128i((const __m128i *)b, (const __m128i *)a);
    __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    return K16_MADD_ACC(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_shuffle_epi8(usc, sel0)),
                        _mm256_maddubs_epi16(hi, xhi), _mm256_shuffle_epi8(usc, sel1));
}

/* chunks [c0, c1) of eight rows r[] (x, dxf, tw indexed from c0); results in row order.
 * No horizontal work per chunk: each row pair's sc-weighted int32 partials are converted and
 * FMA'd with d_x into per-pair f32 accumulators; d (per pair, [d_a x4 | d_b x4]) scales them
 * once per super-block and three vhaddps reduce them once per call. The min term is one
 * vector for all eight rows per chunk (lane order A C E G B D F H). */
static inline __attribute__((always_inline)) __m256 k16_rows8(const char *const r[8], size_t c0, size_t c1,
                                                              const vib3_block_q8_0 *x, const float *dxf,
                                                              const int32_t *tw, const char *pf) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m256 accm = _mm256_setzero_ps();
    for (size_t s = c0 / 8; s * 8 < c1; s++) {
        const size_t sb = s * K16_SB_BYTES, cn = c1 - s * 8 < 8 ? c1 - s * 8 : 8;
        __m256 f[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        __m256 am = _mm256_setzero_ps();
        for (size_t j = 0; j < cn; j++) {
            const size_t off = sb + VIB3_Q4K16_HEAD_BYTES + j * VIB3_Q4K16_CHUNK_BYTES, c = s * 8 + j - c0;
            _mm_prefetch(pf + 8 * off, _MM_HINT_T0);
            _mm_prefetch(pf + 8 * off + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 8 * off + 128, _MM_HINT_T0);
            __m256i xlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x[c].qs));
            __m256i xhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x[c].qs + 16)));
            __m256i u = k16_words8(r, off);
            __m256i usc = _mm256_and_si256(u, _mm256_set1_epi32(0x3f3f));
            __m256 dx = _mm256_set1_ps(dxf[c]);
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++)
                f[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(k16_pair_sc(r[2 * p] + off + 3, r[2 * p + 1] + off + 3, xlo, xhi, usc, p)),
                                       dx, f[p]);
            am = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(k16_mins(u), _mm256_set1_epi32(tw[c]))), dx, am);
        }
        __m256i dd = _mm256_permute4x64_epi64(
            _mm256_shuffle_epi8(k16_words8(r, sb), _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                                                    0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15)),
            0xd8); /* [d A C E G B D F H | dmin A C E G B D F H] */
        __m256 d = _mm256_cvtph_ps(_mm256_castsi256_si128(dd));
        accm = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(dd, 1)), am, accm);
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) /* pair p = rows 2p, 2p+1 = lanes p, p + 4 of d */
            acc[p] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_setr_epi32(p, p, p, p, p + 4, p + 4, p + 4, p + 4)),
                                     f[p], acc[p]);
    }
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3])); /* A C E G B D F H */
    return _mm256_permutevar8x32_ps(_mm256_sub_ps(h, accm), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline void k16_rowptrs(const char *w, size_t rb, size_t nr, const char *r[8]) {
    for (size_t i = 0; i < 8; i++) r[i] = w + (i < nr ? i : 0) * rb;
}

void K16_MATVEC(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    const size_t nch = cols / VIB3_QBLOCK, rb = (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, cols);
    const vib3_block_q8_0 *xb = x;
    float dxf[K16_CH_MAX];
    int32_t tw[K16_CH_MAX];
    for (size_t c0 = 0; c0 < nch; c0 += K16_CH_MAX) { /* one pass unless cols > 32768 */
        const size_t c1 = nch - c0 < K16_CH_MAX ? nch : c0 + K16_CH_MAX;
        k16_prep(xb + c0, c1 - c0, dxf, tw);
        for (size_t r = r0; r < r1; r += 8) {
            const size_t nr = r1 - r < 8 ? r1 - r : 8;
            const char *rp[8];
            k16_rowptrs((const char *)w + r * rb, rb, nr, rp);
            /* prefetch in step with this group, at least 4 KiB ahead (a group of short rows, a
             * K = 256 page's down matrix: 8 x 156 bytes, is too close to hide DRAM latency) */
            __m256 v = k16_rows8(rp, c0, c1, xb + c0, dxf, tw, rp[0] + (8 * rb > 4096 ? 8 * rb : 4096));
            if (c0) v = _mm256_add_ps(v, nr == 8 ? _mm256_loadu_ps(y + r) : _mm256_maskload_ps(y + r, lane_mask(nr)));
            if (nr == 8) _mm256_storeu_ps(y + r, v);
            else _mm256_maskstore_ps(y + r, lane_mask(nr), v);
        }
    }
}

/* 8 rows x 4 tokens: the rows' nibbles and sub-scales of a chunk are unpacked once for four tokens */
static inline __attribute__((always_inline)) void k16_tile8x4(const char *const r[8], size_t nch,
                                                              const vib3_block_q8_0 *const xs[4],
                                                              const float (*dxf)[K16_CH_MAX],
                                                              const int32_t (*tw)[K16_CH_MAX], const char *pf,
                                                              __m256 out[4]) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t s = 0; s * 8 < nch; s++) {
        const size_t sb = s * K16_SB_BYTES, cn = nch - s * 8 < 8 ? nch - s * 8 : 8;
        __m256 ad[4], am[4];
        for (int t = 0; t < 4; t++) ad[t] = am[t] = _mm256_setzero_ps();
        for (size_t j = 0; j < cn; j++) {
            const size_t off = sb + VIB3_Q4K16_HEAD_BYTES + j * VIB3_Q4K16_CHUNK_BYTES, c = s * 8 + j;
            _mm_prefetch(pf + 8 * off, _MM_HINT_T0);
            _mm_prefetch(pf + 8 * off + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 8 * off + 128, _MM_HINT_T0);
            __m256i lo[4], hi[4];
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) {
                __m256i q = _mm256_loadu2_m128i((const __m128i *)(r[2 * p + 1] + off + 3), (const __m128i *)(r[2 * p] + off + 3));
                lo[p] = _mm256_and_si256(q, m4);
                hi[p] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            }
            __m256i sc, mn;
            k16_scales(k16_words8(r, off), &sc, &mn);
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const vib3_block_q8_0 *xb = xs[t] + c;
                __m256i xlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)xb->qs));
                __m256i xhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xb->qs + 16)));
                __m256i h[4];
#pragma GCC unroll 4
                for (int p = 0; p < 4; p++)
                    h[p] = _mm256_hadd_epi16(_mm256_maddubs_epi16(lo[p], xlo), _mm256_maddubs_epi16(hi[p], xhi));
                __m256i s16 = _mm256_hadd_epi16(_mm256_hadd_epi16(h[0], h[1]), _mm256_hadd_epi16(h[2], h[3]));
                __m256 dx = _mm256_set1_ps(dxf[t][c]);
                ad[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s16, sc)), dx, ad[t]);
                am[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(mn, _mm256_set1_epi32(tw[t][c]))), dx, am[t]);
            }
        }
        __m256i dd = _mm256_permute4x64_epi64(
            _mm256_shuffle_epi8(k16_words8(r, sb), _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                                                    0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15)),
            0xd8);
        __m256 d = _mm256_cvtph_ps(_mm256_castsi256_si128(dd)), dm = _mm256_cvtph_ps(_mm256_extracti128_si256(dd, 1));
        for (int t = 0; t < 4; t++) acc[t] = _mm256_fnmadd_ps(dm, am[t], _mm256_fmadd_ps(d, ad[t], acc[t]));
    }
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int t = 0; t < 4; t++) out[t] = _mm256_permutevar8x32_ps(acc[t], order);
}

void K16_MATMUL(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y,
                             size_t y_ld, size_t r0, size_t r1) {
    const size_t nch = cols / VIB3_QBLOCK, rb = (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, cols);
    if (nch > K16_CH_MAX || n_b == 1) { /* one token, or rows too long for the per-token tables */
        for (size_t b = 0; b < n_b; b++)
            K16_MATVEC(w, cols, (const char *)x + b * x_stride, y + b * y_ld, r0, r1);
        return;
    }
    float dxf[4][K16_CH_MAX];
    int32_t tw[4][K16_CH_MAX];
    /* rows outer in L2-sized strips, so a strip is reused by every token group */
    const size_t strip = 256 * 1024 / rb > 8 ? 256 * 1024 / rb / 8 * 8 : 8;
    for (size_t s0 = r0; s0 < r1; s0 += strip) {
        const size_t s1 = s0 + strip < r1 ? s0 + strip : r1;
        for (size_t t0 = 0; t0 < n_b; t0 += 4) {
            const int nt = (int)(n_b - t0 < 4 ? n_b - t0 : 4);
            const vib3_block_q8_0 *xs[4];
            for (int t = 0; t < 4; t++) {
                xs[t] = (const vib3_block_q8_0 *)((const char *)x + (t0 + (size_t)(t < nt ? t : 0)) * x_stride);
                if (t < nt) k16_prep(xs[t], nch, dxf[t], tw[t]);
                else memcpy(dxf[t], dxf[0], nch * sizeof(float)), memcpy(tw[t], tw[0], nch * sizeof(int32_t));
            }
            for (size_t r = s0; r < s1; r += 8) {
                const size_t nr = s1 - r < 8 ? s1 - r : 8;
                const char *rp[8];
                k16_rowptrs((const char *)w + r * rb, rb, nr, rp);
                __m256 v[4];
                k16_tile8x4(rp, nch, xs, (const float(*)[K16_CH_MAX])dxf, (const int32_t(*)[K16_CH_MAX])tw,
                            (const char *)w + (r + 8) * rb, v);
                for (int t = 0; t < nt; t++) {
                    float *yt = y + (t0 + (size_t)t) * y_ld + r;
                    if (nr == 8) _mm256_storeu_ps(yt, v[t]);
                    else _mm256_maskstore_ps(yt, lane_mask(nr), v[t]);
                }
            }
        }
    }
}

#undef K16_MATVEC
#undef K16_MATMUL
#undef K16_MADD_ACC
#endif
