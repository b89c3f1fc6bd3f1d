/* kernels_avx2.c — AVX2 + FMA + F16C kernels (shapes in simd.h).
 *
 * Q4_0 x Q8_0: one block per ymm, nibbles unpacked to u8 [0..15 | 16..31];
 * vpmaddubsw(u8 w, s8 x) - vpmaddubsw(8, x) gives the int16 pair sums of
 * (w - 8) * x without saturation (|15 * 127 * 2| < 32767), vpmaddwd folds
 * them to int32, then convert and FMA with d_w * d_x. Q8_0 weights use the
 * sign trick maddubs(|w|, sign(x, w)). Mat-vec runs 4 rows together to share
 * the activation work. The f32 / f16 / bf16 mat-vecs, element-wise kernels
 * (exp from SLEEF), conversions and attention helpers also live here and are
 * inherited by the AVX-512 table where it has nothing better.
 */
#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "simd/simd_isa.h"

/* ==== helpers =============================================================== */
/* eight f16 block scales, in the lane order given, as 8 floats: assembled in two 64-bit GPRs
 * (integer ALUs) rather than eight vpinsrw on the shuffle ports the unpack trees also need */
static inline __m256 scales8_f16(uint16_t a, uint16_t b, uint16_t c, uint16_t d, uint16_t e, uint16_t f, uint16_t g,
                                 uint16_t h) {
    uint64_t lo = (uint64_t)a | (uint64_t)b << 16 | (uint64_t)c << 32 | (uint64_t)d << 48;
    uint64_t hi = (uint64_t)e | (uint64_t)f << 16 | (uint64_t)g << 32 | (uint64_t)h << 48;
    return _mm256_cvtph_ps(_mm_insert_epi64(_mm_cvtsi64_si128((long long)lo), (long long)hi, 1));
}

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float f16s(uint16_t h) { return _cvtsh_ss(h); }
static inline __m256i q4_unpack(const vib3_block_q4_0 *b) {
    __m128i q = _mm_loadu_si128((const __m128i *)b->qs);
    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(z, _mm256_set1_epi8(15));
}
/* mask of the first n (< 8) lanes */
static inline __m256i lane_mask(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ==== conversions =========================================================== */
void vib3_f16_to_f32_avx2(const uint16_t *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = f16s(x[i]);
}
void vib3_f32_to_f16_avx2(const float *x, uint16_t *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = vib3_f32_to_f16(x[i]);
}
void vib3_bf16_to_f32_avx2(const uint16_t *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) y[i] = vib3_bf16_to_f32(x[i]);
}
static void dequant_f16_avx2(const void *x, float *y, size_t n) { vib3_f16_to_f32_avx2(x, y, n); }
static void dequant_bf16_avx2(const void *x, float *y, size_t n) { vib3_bf16_to_f32_avx2(x, y, n); }
static void dequant_q4_0_avx2(const void *x, float *y, size_t n) {
    const vib3_block_q4_0 *b = x;
    for (size_t i = 0; i < n / VIB3_QBLOCK; i++) {
        __m256i q = _mm256_sub_epi8(q4_unpack(b + i), _mm256_set1_epi8(8));
        __m256 d = _mm256_set1_ps(f16s(b[i].d));
        for (int j = 0; j < 4; j++) {
            __m128i part = j < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
            if (j & 1) part = _mm_srli_si128(part, 8);
            _mm256_storeu_ps(y + i * 32 + (size_t)j * 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part))));
        }
    }
}

/* exact roundf (half away from zero) */
static inline __m256 round_away(__m256 v) {
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
    __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_set1_ps(1.0f), sign)));
}

void vib3_quantize_q8_0_avx2(const float *x, vib3_block_q8_0 *y, size_t n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (size_t b = 0; b < n / VIB3_QBLOCK; b++, x += VIB3_QBLOCK) {
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(x + j * 8);
            m = _mm256_max_ps(m, _mm256_and_ps(v[j], absmask));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = vib3_f32_to_f16(d);
        __m256 vid = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[0], vid)));
        __m256i i1 = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[1], vid)));
        __m256i i2 = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[2], vid)));
        __m256i i3 = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[3], vid)));
        __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
        __m256i p = _mm256_packs_epi16(p01, p23);
        /* packs work per 128-bit lane: restore element order */
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[b].qs, p);
    }
}

/* ==== Q4_0 / Q8_0 mat-vec =================================================== */
#define R_MV 4

static inline __m256i q4_dot_i32(__m256i w, __m256i x, __m256i corr16) {
    __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(w, x), corr16);
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
static inline __m256i q8_dot_i32(__m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Four rows per step. Per row and block the int16 pair sums are folded to int32 lanes by
 * vpmaddwd; three vphaddd and one 128-bit add reduce the four rows' lanes to one int32 per
 * row, so the f32 work (convert, scale, FMA) is done once per block for all four rows with
 * their four f16 scales converted by one vcvtph2ps. The nibbles are unpacked with a
 * vbroadcasti128 load, vpsrlvd by (0, 4) per 128-bit half and a 0x0F mask. */
static inline __attribute__((always_inline)) __m256i q4_unpack_b(const vib3_block_q4_0 *b) {
    const __m256i shifts = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b->qs));
    return _mm256_and_si256(_mm256_srlv_epi32(q, shifts), _mm256_set1_epi8(15));
}

static inline __attribute__((always_inline)) void qrows4(const char *w, size_t rb, size_t nb,
                                                         const vib3_block_q8_0 *x, float *y, const int nr,
                                                         const int q4) {
    const char *r0 = w, *r1 = w + (nr > 1 ? rb : 0), *r2 = w + (nr > 2 ? 2 * rb : 0), *r3 = w + (nr > 3 ? 3 * rb : 0);
    const __m256i eight = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);
    __m128 acc = _mm_setzero_ps();
    const char *pf = w + 4 * rb; /* the next 4-row group, in step (see q4_rows8) */
    const size_t step = q4 ? 4 * sizeof(vib3_block_q4_0) : 4 * sizeof(vib3_block_q8_0);
    for (size_t b = 0; b < nb; b++) {
        _mm_prefetch(pf + b * step, _MM_HINT_T0);
        _mm_prefetch(pf + b * step + 64, _MM_HINT_T0);
        if (!q4) _mm_prefetch(pf + b * step + 128, _MM_HINT_T0);
        __m256i xv = _mm256_loadu_si256((const __m256i *)x[b].qs);
        __m256i p0, p1, p2, p3;
        __m128i d4;
        if (q4) {
            const vib3_block_q4_0 *b0 = (const vib3_block_q4_0 *)r0 + b, *b1 = (const vib3_block_q4_0 *)r1 + b;
            const vib3_block_q4_0 *b2 = (const vib3_block_q4_0 *)r2 + b, *b3 = (const vib3_block_q4_0 *)r3 + b;
            __m256i corr = _mm256_maddubs_epi16(eight, xv);
            p0 = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q4_unpack_b(b0), xv), corr), ones);
            p1 = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q4_unpack_b(b1), xv), corr), ones);
            p2 = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q4_unpack_b(b2), xv), corr), ones);
            p3 = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q4_unpack_b(b3), xv), corr), ones);
            d4 = _mm_cvtsi32_si128(b0->d);
            d4 = _mm_insert_epi16(d4, b1->d, 1);
            d4 = _mm_insert_epi16(d4, b2->d, 2);
            d4 = _mm_insert_epi16(d4, b3->d, 3);
        } else {
            const vib3_block_q8_0 *b0 = (const vib3_block_q8_0 *)r0 + b, *b1 = (const vib3_block_q8_0 *)r1 + b;
            const vib3_block_q8_0 *b2 = (const vib3_block_q8_0 *)r2 + b, *b3 = (const vib3_block_q8_0 *)r3 + b;
            p0 = q8_dot_i32(_mm256_loadu_si256((const __m256i *)b0->qs), xv);
            p1 = q8_dot_i32(_mm256_loadu_si256((const __m256i *)b1->qs), xv);
            p2 = q8_dot_i32(_mm256_loadu_si256((const __m256i *)b2->qs), xv);
            p3 = q8_dot_i32(_mm256_loadu_si256((const __m256i *)b3->qs), xv);
            d4 = _mm_cvtsi32_si128(b0->d);
            d4 = _mm_insert_epi16(d4, b1->d, 1);
            d4 = _mm_insert_epi16(d4, b2->d, 2);
            d4 = _mm_insert_epi16(d4, b3->d, 3);
        }
        __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        __m128 sc = _mm_mul_ps(_mm_cvtph_ps(d4), _mm_set1_ps(f16s(x[b].d)));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(s4), sc, acc);
    }
    float out[4];
    _mm_storeu_ps(out, acc);
    for (int i = 0; i < nr; i++) y[i] = out[i];
}

/* Q4_0, eight rows per step (the hot path). Two rows share a ymm: row A's 16 packed bytes in
 * the low 128-bit half, row B's in the high half, so one AND gives both rows' low nibbles
 * (elements 0..15) and one shift + AND their high nibbles (16..31), multiplied by the
 * activation halves broadcast to both 128-bit lanes. maddubs without the -8 correction stays
 * within int16 through the vphaddw tree (16 products of at most 15 * 128); three vphaddw and
 * one vpmaddwd reduce eight rows to int32 block sums in lane order [A C E G | B D F H],
 * minus 8 * sum(x_b) (csum, computed once per call). One convert, scale and FMA per block
 * serve all eight rows. */
#define CSUM_BLOCKS_MAX 1024u
#ifndef VIB3_Q4_PREFETCH
#define VIB3_Q4_PREFETCH 1
#endif
static inline __attribute__((always_inline)) __m256i q4_pair(const vib3_block_q4_0 *a, const vib3_block_q4_0 *b,
                                                             __m256i xlo, __m256i xhi, __m256i m4) {
    __m256i q = _mm256_loadu2_m128i((const __m128i *)b->qs, (const __m128i *)a->qs);
    __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    return _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
}

/* eight rows' block sums, lane order A C E G B D F H; pf: the bytes to prefetch in step
 * (8 x 18 per block) */
static inline __attribute__((always_inline)) __m256 q4_rows8_acc(const char *w, size_t rb, size_t nb,
                                                                 const vib3_block_q8_0 *x, const int32_t *csum,
                                                                 const char *pf) {
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    const vib3_block_q4_0 *r[8];
    for (int i = 0; i < 8; i++) r[i] = (const vib3_block_q4_0 *)(w + (size_t)i * rb);
    for (size_t b = 0; b < nb; b++) {
#if VIB3_Q4_PREFETCH
        _mm_prefetch(pf + b * 144, _MM_HINT_T0);
        _mm_prefetch(pf + b * 144 + 64, _MM_HINT_T0);
        _mm_prefetch(pf + b * 144 + 128, _MM_HINT_T0);
#else
        (void)pf;
#endif
        __m256i xlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x[b].qs));
        __m256i xhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x[b].qs + 16)));
        __m256i ab = q4_pair(r[0] + b, r[1] + b, xlo, xhi, m4);
        __m256i cd = q4_pair(r[2] + b, r[3] + b, xlo, xhi, m4);
        __m256i ef = q4_pair(r[4] + b, r[5] + b, xlo, xhi, m4);
        __m256i gh = q4_pair(r[6] + b, r[7] + b, xlo, xhi, m4);
        __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(ab, cd), _mm256_hadd_epi16(ef, gh));
        __m256i s = _mm256_sub_epi32(_mm256_madd_epi16(h, ones), _mm256_set1_epi32(csum[b]));
        /* lane order A C E G B D F H */
        __m256 sc = _mm256_mul_ps(scales8_f16(r[0][b].d, r[2][b].d, r[4][b].d, r[6][b].d, r[1][b].d, r[3][b].d,
                                              r[5][b].d, r[7][b].d),
                                  _mm256_set1_ps(f16s(x[b].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc);
    }
    /* back to row order */
    return _mm256_permutevar8x32_ps(acc, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline __attribute__((always_inline)) void q4_rows8(const char *w, size_t rb, size_t nb,
                                                           const vib3_block_q8_0 *x, const int32_t *csum,
                                                           float *y) {
    /* the next group of eight rows, prefetched in step: 8 x 18 bytes per block. With short
     * rows (K = 2048: 1152 bytes) eight interleaved streams inside a few 4 KiB pages do not
     * train the hardware prefetcher; this keeps DRAM busy ahead of the loads. */
    _mm256_storeu_ps(y, q4_rows8_acc(w, rb, nb, x, csum, w + 8 * rb));
}

/* 8 * sum(x_b) per activation block: the -8 offset of the Q4_0 nibbles, shared by every row */
static void q8_block_sums8(const vib3_block_q8_0 *x, size_t nb, int32_t *csum) {
    for (size_t b = 0; b < nb; b++) {
        __m256i v = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), _mm256_loadu_si256((const __m256i *)x[b].qs)),
                                      _mm256_set1_epi16(1));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
        csum[b] = _mm_cvtsi128_si32(t);
    }
}

void vib3_matvec_q4_0_avx2(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    const size_t nb = cols / VIB3_QBLOCK, rb = nb * sizeof(vib3_block_q4_0);
    size_t r = r0;
    if (nb <= CSUM_BLOCKS_MAX && r1 - r0 >= 8) {
        int32_t csum[CSUM_BLOCKS_MAX];
        const vib3_block_q8_0 *xb = x;
        q8_block_sums8(xb, nb, csum);
        for (; r + 8 <= r1; r += 8) q4_rows8((const char *)w + r * rb, rb, nb, xb, csum, y + r);
    }
    for (; r + R_MV <= r1; r += R_MV) qrows4((const char *)w + r * rb, rb, nb, x, y + r, R_MV, 1);
    if (r < r1) qrows4((const char *)w + r * rb, rb, nb, x, y + r, (int)(r1 - r), 1);
}

/* y[0:rows) += scale * (W x) for the page's down matrix (rows = hidden, cols = k, usually
 * a single block per row): fused accumulate (no chunk buffer, one csum per page), the
 * prefetch runs at least 4 KiB ahead since a group of eight short rows is only 8 * rb
 * bytes. Same numerics as matvec then y[i] += scale * v[i] (multiply, then add). */
static int q4_down_acc_avx2(const void *w, size_t cols, const void *x, float scale, float *y, size_t rows) {
    const size_t nb = cols / VIB3_QBLOCK, rb = nb * sizeof(vib3_block_q4_0);
    if (nb > CSUM_BLOCKS_MAX) return 0;
    int32_t csum[CSUM_BLOCKS_MAX];
    const vib3_block_q8_0 *xb = x;
    q8_block_sums8(xb, nb, csum);
    const size_t ahead = 8 * rb > 4096 ? 8 * rb : 4096;
    const __m256 vs = _mm256_set1_ps(scale);
    size_t r = 0;
    if (nb == 1) /* K = 32: the activation block is loop-invariant once nb is a constant */
        for (; r + 8 <= rows; r += 8) {
            const char *g = (const char *)w + r * rb;
            __m256 v = q4_rows8_acc(g, rb, 1, xb, csum, g + ahead);
            _mm256_storeu_ps(y + r, _mm256_add_ps(_mm256_loadu_ps(y + r), _mm256_mul_ps(vs, v)));
        }
    for (; r + 8 <= rows; r += 8) {
        const char *g = (const char *)w + r * rb;
        __m256 v = q4_rows8_acc(g, rb, nb, xb, csum, g + ahead);
        _mm256_storeu_ps(y + r, _mm256_add_ps(_mm256_loadu_ps(y + r), _mm256_mul_ps(vs, v)));
    }
    if (r < rows) {
        float t[8];
        vib3_matvec_q4_0_avx2(w, cols, x, t, r, rows);
        for (size_t i = r; i < rows; i++) y[i] += scale * t[i - r];
    }
    return 1;
}

void vib3_matvec_q8_0_avx2(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    const size_t nb = cols / VIB3_QBLOCK, rb = nb * sizeof(vib3_block_q8_0);
    size_t r = r0;
    for (; r + R_MV <= r1; r += R_MV) qrows4((const char *)w + r * rb, rb, nb, x, y + r, R_MV, 0);
    if (r < r1) qrows4((const char *)w + r * rb, rb, nb, x, y + r, (int)(r1 - r), 0);
}

/* ==== mat-mul: 4 rows x 4 tokens ============================================= */
static inline __attribute__((always_inline)) void mm_tile(const char *w, size_t rb, size_t nb, const char *x,
                                                          size_t x_stride, float *y, size_t y_ld, int nr, int nt,
                                                          const int q4) {
    __m256 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < 4; t++) acc[i][t] = _mm256_setzero_ps();
    const char *row[4];
    const vib3_block_q8_0 *xs[4];
    for (int i = 0; i < 4; i++) row[i] = w + (size_t)(i < nr ? i : 0) * rb;
    for (int t = 0; t < 4; t++) xs[t] = (const vib3_block_q8_0 *)(x + (size_t)(t < nt ? t : 0) * x_stride);
    const __m256i eight = _mm256_set1_epi8(8);
    for (size_t b = 0; b < nb; b++) {
        __m256i xv[4], corr[4];
        float dx[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            xv[t] = _mm256_loadu_si256((const __m256i *)xs[t][b].qs);
            corr[t] = _mm256_maddubs_epi16(eight, xv[t]);
            dx[t] = f16s(xs[t][b].d);
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m256i wv;
            float dw;
            if (q4) {
                const vib3_block_q4_0 *wb = (const vib3_block_q4_0 *)row[i] + b;
                wv = q4_unpack(wb);
                dw = f16s(wb->d);
            } else {
                const vib3_block_q8_0 *wb = (const vib3_block_q8_0 *)row[i] + b;
                wv = _mm256_loadu_si256((const __m256i *)wb->qs);
                dw = f16s(wb->d);
            }
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                __m256i dot = q4 ? q4_dot_i32(wv, xv[t], corr[t]) : q8_dot_i32(wv, xv[t]);
                acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw * dx[t]), acc[i][t]);
            }
        }
    }
    for (int i = 0; i < nr; i++)
        for (int t = 0; t < nt; t++) y[(size_t)t * y_ld + (size_t)i] = hsum256(acc[i][t]);
}

static inline __attribute__((always_inline)) void mm_q(const void *w, size_t cols, const void *x, size_t x_stride,
                                                       size_t n_b, float *y, size_t y_ld, size_t r0, size_t r1,
                                                       const int q4) {
    const size_t nb = cols / VIB3_QBLOCK;
    const size_t rb = nb * (q4 ? sizeof(vib3_block_q4_0) : sizeof(vib3_block_q8_0));
    const size_t strip = rb && 256 * 1024 / rb > 4 ? 256 * 1024 / rb / 4 * 4 : 4;
    for (size_t s0 = r0; s0 < r1; s0 += strip) {
        size_t s1 = s0 + strip < r1 ? s0 + strip : r1;
        for (size_t t = 0; t < n_b; t += 4)
            for (size_t r = s0; r < s1; r += 4)
                mm_tile((const char *)w + r * rb, rb, nb, (const char *)x + t * x_stride, x_stride, y + t * y_ld + r,
                        y_ld, (int)(s1 - r < 4 ? s1 - r : 4), (int)(n_b - t < 4 ? n_b - t : 4), q4);
    }
}
/* Q4_0 mat-mul: 8 rows x 4 tokens per tile with the mat-vec's layout (two rows per ymm,
 * vphaddw tree); the eight rows' nibbles of a block are unpacked once and used by four
 * tokens. 8 * sum(x) per token and block (csum) is computed per token tile. */
static inline __attribute__((always_inline)) void q4_tile8x4(const char *w, size_t rb, size_t nb,
                                                             const vib3_block_q8_0 *const xs[4],
                                                             int32_t (*csum)[CSUM_BLOCKS_MAX], float *y,
                                                             size_t y_ld, int nt) {
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const vib3_block_q4_0 *r[8];
    for (int i = 0; i < 8; i++) r[i] = (const vib3_block_q4_0 *)(w + (size_t)i * rb);
    const char *pf = w + 8 * rb; /* next 8-row group, in step (see the mat-vec) */
    for (size_t b = 0; b < nb; b++) {
        _mm_prefetch(pf + b * 144, _MM_HINT_T0);
        _mm_prefetch(pf + b * 144 + 64, _MM_HINT_T0);
        _mm_prefetch(pf + b * 144 + 128, _MM_HINT_T0);
        __m256i lo[4], hi[4];
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m256i q = _mm256_loadu2_m128i((const __m128i *)r[2 * p + 1][b].qs, (const __m128i *)r[2 * p][b].qs);
            lo[p] = _mm256_and_si256(q, m4);
            hi[p] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        }
        __m256 dw = scales8_f16(r[0][b].d, r[2][b].d, r[4][b].d, r[6][b].d, r[1][b].d, r[3][b].d, r[5][b].d,
                                r[7][b].d);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const vib3_block_q8_0 *xb = xs[t] + b;
            __m256i xlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)xb->qs));
            __m256i xhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xb->qs + 16)));
            __m256i ab = _mm256_add_epi16(_mm256_maddubs_epi16(lo[0], xlo), _mm256_maddubs_epi16(hi[0], xhi));
            __m256i cd = _mm256_add_epi16(_mm256_maddubs_epi16(lo[1], xlo), _mm256_maddubs_epi16(hi[1], xhi));
            __m256i ef = _mm256_add_epi16(_mm256_maddubs_epi16(lo[2], xlo), _mm256_maddubs_epi16(hi[2], xhi));
            __m256i gh = _mm256_add_epi16(_mm256_maddubs_epi16(lo[3], xlo), _mm256_maddubs_epi16(hi[3], xhi));
            __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(ab, cd), _mm256_hadd_epi16(ef, gh));
            __m256i sm = _mm256_sub_epi32(_mm256_madd_epi16(h, ones), _mm256_set1_epi32(csum[t][b]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sm), _mm256_mul_ps(dw, _mm256_set1_ps(f16s(xb->d))), acc[t]);
        }
    }
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(y + (size_t)t * y_ld, _mm256_permutevar8x32_ps(acc[t], order));
}

/* Q8_0 mat-mul: 8 rows x 4 tokens. |w| of the eight rows is computed once per block and
 * shared by the four tokens; per token and row vpsignb moves w's sign onto x, vpmaddubsw and
 * vpmaddwd give int32 lanes (pair sums reach 2 x 127 x 127, too large for a vphaddw tree), and
 * a vphaddd tree + one 128-bit lane swap reduce the eight rows to one vector. */
static inline __attribute__((always_inline)) __m256i hsum8_rows(__m256i p0, __m256i p1, __m256i p2, __m256i p3,
                                                               __m256i p4, __m256i p5, __m256i p6, __m256i p7) {
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3)); /* [0 1 2 3 | 0 1 2 3] */
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p4, p5), _mm256_hadd_epi32(p6, p7)); /* [4 5 6 7 | 4 5 6 7] */
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

static inline __attribute__((always_inline)) void q8_tile8x4(const char *w, size_t rb, size_t nb,
                                                             const vib3_block_q8_0 *const xs[4], float *y,
                                                             size_t y_ld, int nt) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const vib3_block_q8_0 *r[8];
    for (int i = 0; i < 8; i++) r[i] = (const vib3_block_q8_0 *)(w + (size_t)i * rb);
    const char *pf = w + 8 * rb; /* next 8-row group: 8 x 34 bytes per block */
    for (size_t b = 0; b < nb; b++) {
        for (int k = 0; k < 5; k++) _mm_prefetch(pf + b * 272 + 64 * k, _MM_HINT_T0);
        __m256i wv[8], wa[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            wv[i] = _mm256_loadu_si256((const __m256i *)r[i][b].qs);
            wa[i] = _mm256_sign_epi8(wv[i], wv[i]);
        }
        __m256 dw = scales8_f16(r[0][b].d, r[1][b].d, r[2][b].d, r[3][b].d, r[4][b].d, r[5][b].d, r[6][b].d,
                                r[7][b].d);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const vib3_block_q8_0 *xb = xs[t] + b;
            __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
            __m256i p[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                p[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(wa[i], _mm256_sign_epi8(xv, wv[i])), ones);
            __m256i sm = hsum8_rows(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sm), _mm256_mul_ps(dw, _mm256_set1_ps(f16s(xb->d))), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(y + (size_t)t * y_ld, acc[t]);
}

/* Q4_0 mat-mul: the shared strip / token-group driver over the tiles above */
#define Q4MM_ISA avx2
#include "simd/q4_0_matmul_x86.h"

void vib3_matmul_q8_0_avx2(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y,
                           size_t y_ld, size_t r0, size_t r1) {
    const size_t nb = cols / VIB3_QBLOCK, rb = nb * sizeof(vib3_block_q8_0);
    const size_t strip = 256 * 1024 / rb > 8 ? 256 * 1024 / rb / 8 * 8 : 8;
    for (size_t s0 = r0; s0 + 8 <= r1; s0 += strip) {
        size_t s1 = s0 + strip < r1 ? s0 + strip : r1;
        s1 = s0 + (s1 - s0) / 8 * 8;
        for (size_t t0 = 0; t0 < n_b; t0 += 4) {
            int nt = (int)(n_b - t0 < 4 ? n_b - t0 : 4);
            const vib3_block_q8_0 *xs[4];
            for (int t = 0; t < 4; t++)
                xs[t] = (const vib3_block_q8_0 *)((const char *)x + (t0 + (size_t)(t < nt ? t : 0)) * x_stride);
            for (size_t r = s0; r < s1; r += 8) q8_tile8x4((const char *)w + r * rb, rb, nb, xs, y + t0 * y_ld + r, y_ld, nt);
        }
    }
    size_t done = r1 - r0 >= 8 ? r0 + (r1 - r0) / 8 * 8 : r0;
    if (done < r1) mm_q(w, cols, x, x_stride, n_b, y, y_ld, done, r1, 0);
}

/* ==== Q4_K16 x Q8_0 ========================================================== */
/* written once in q4k16_x86.h (which says how); here the second sub-scale group's product is
 * one vpmaddwd + vpaddd */
#define K16_MADD_ACC(acc, a, b) _mm256_add_epi32((acc), _mm256_madd_epi16((a), (b)))
#define K16_ISA avx2
#include "simd/q4k16_x86.h"

/* ==== f32 / f16 / bf16 rows ================================================= */
/* load 8 weights of dtype kind (0 f32, 1 f16, 2 bf16) as f32; masked tail when n < 8 */
static inline __m256 wload(const void *w, size_t i, int kind) {
    if (kind == 0) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (kind == 1) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline float wscalar(const void *w, size_t i, int kind) {
    if (kind == 0) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    return kind == 1 ? f16s(h) : vib3_bf16_to_f32(h);
}
static inline float dot_row(const void *w, const float *x, size_t n, int kind) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(wload(w, i, kind), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(wload(w, i + 8, kind), _mm256_loadu_ps(x + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(wload(w, i, kind), _mm256_loadu_ps(x + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += wscalar(w, i, kind) * x[i];
    return s;
}

#define AVX2_FMAT(dt, kind, esize)                                                                                \
    void vib3_matvec_##dt##_avx2(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {    \
        for (size_t r = r0; r < r1; r++) y[r] = dot_row((const char *)w + r * cols * (esize), x, cols, kind);    \
    }                                                                                                             \
    void vib3_matmul_##dt##_avx2(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b,         \
                                 float *y, size_t y_ld, size_t r0, size_t r1) {                                   \
        for (size_t r = r0; r < r1; r++)                                                                          \
            for (size_t b = 0; b < n_b; b++)                                                                      \
                y[b * y_ld + r] = dot_row((const char *)w + r * cols * (esize),                                   \
                                          (const float *)((const char *)x + b * x_stride), cols, kind);           \
    }
AVX2_FMAT(f32, 0, 4)
AVX2_FMAT(f16, 1, 2)
AVX2_FMAT(bf16, 2, 2)

/* ==== element-wise ========================================================== */
float vib3_dot_f32_avx2(const float *a, const float *b, size_t n) { return dot_row(a, b, n, 0); }

void vib3_axpy_avx2(float *y, float a, const float *x, size_t n) {
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
void vib3_scale_avx2(float *x, float a, size_t n) {
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(va, _mm256_loadu_ps(x + i)));
    for (; i < n; i++) x[i] *= a;
}
void vib3_add_avx2(float *out, const float *a, const float *b, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) out[i] = a[i] + b[i];
}

void vib3_rmsnorm_avx2(float *y, const float *x, const float *w, size_t n, float eps) {
    float ss = vib3_dot_f32_avx2(x, x, n);
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    __m256 vr = _mm256_set1_ps(r);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vr);
        _mm256_storeu_ps(y + i, w ? _mm256_mul_ps(v, _mm256_loadu_ps(w + i)) : v);
    }
    for (; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0f);
}

/* silu / swiglu / softmax: 8 lanes at a time with a masked tail through a buffer */
static inline __m256 silu8(__m256 g) {
    __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}
void vib3_silu_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, silu8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = lane_mask(n - i);
        _mm256_maskstore_ps(x + i, m, silu8(_mm256_maskload_ps(x + i, m)));
    }
}
void vib3_swiglu_avx2(float *out, const float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    if (i < n) {
        __m256i m = lane_mask(n - i);
        _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(silu8(_mm256_maskload_ps(g + i, m)), _mm256_maskload_ps(u + i, m)));
    }
}
void vib3_softmax_avx2(float *x, size_t n) {
    float mx = x[0];
    for (size_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    __m256 vm = _mm256_set1_ps(mx), sum = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float s = hsum256(sum);
    for (; i < n; i++) s += (x[i] = expf(x[i] - mx));
    vib3_scale_avx2(x, 1.0f / s, n);
}

void vib3_rope_avx2(float *x, size_t n_heads, size_t head_dim, size_t rope_dim, const float *cos, const float *sin,
                    bool interleaved) {
    if (interleaved) { /* pairs are adjacent: the scalar loop vectorises poorly but rope is tiny */
        vib3_rope_ref(x, n_heads, head_dim, rope_dim, cos, sin, true);
        return;
    }
    size_t half = rope_dim / 2;
    for (size_t h = 0; h < n_heads; h++) {
        float *a = x + h * head_dim, *b = a + half;
        size_t i = 0;
        for (; i + 8 <= half; i += 8) {
            __m256 x0 = _mm256_loadu_ps(a + i), x1 = _mm256_loadu_ps(b + i);
            __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
            _mm256_storeu_ps(a + i, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
            _mm256_storeu_ps(b + i, _mm256_fmadd_ps(x1, c, _mm256_mul_ps(x0, s)));
        }
        for (; i < half; i++) {
            float x0 = a[i], x1 = b[i];
            a[i] = x0 * cos[i] - x1 * sin[i];
            b[i] = x1 * cos[i] + x0 * sin[i];
        }
    }
}

/* ==== attention ============================================================= */
void vib3_attn_scores_f32_avx2(const float *q, const float *k, size_t stride, size_t dim, size_t n, float scale,
                               float *s) {
    for (size_t t = 0; t < n; t++) s[t] = scale * dot_row((const char *)k + t * stride, q, dim, 0);
}
void vib3_attn_scores_f16_avx2(const float *q, const uint16_t *k, size_t stride, size_t dim, size_t n, float scale,
                               float *s) {
    for (size_t t = 0; t < n; t++) s[t] = scale * dot_row((const char *)k + t * stride, q, dim, 1);
}
void vib3_attn_values_f32_avx2(const float *p, const float *v, size_t stride, size_t dim, size_t n, float *out) {
    for (size_t t = 0; t < n; t++) vib3_axpy_avx2(out, p[t], (const float *)((const char *)v + t * stride), dim);
}
void vib3_attn_values_f16_avx2(const float *p, const uint16_t *v, size_t stride, size_t dim, size_t n, float *out) {
    for (size_t t = 0; t < n; t++) {
        const uint16_t *r = (const uint16_t *)((const char *)v + t * stride);
        __m256 vp = _mm256_set1_ps(p[t]);
        size_t i = 0;
        for (; i + 8 <= dim; i += 8)
            _mm256_storeu_ps(out + i, _mm256_fmadd_ps(vp, wload(r, i, 1), _mm256_loadu_ps(out + i)));
        for (; i < dim; i++) out[i] += p[t] * f16s(r[i]);
    }
}

/* ==== benchmark helpers ===================================================== */
float vib3_sum_f32_avx2(const float *x, size_t n) {
    __m256 s[8];
    for (int j = 0; j < 8; j++) s[j] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 8; j++) s[j] = _mm256_add_ps(s[j], _mm256_loadu_ps(x + i + 8 * j));
    for (int j = 1; j < 8; j++) s[0] = _mm256_add_ps(s[0], s[j]);
    float r = hsum256(s[0]);
    for (; i < n; i++) r += x[i];
    return r;
}

uint32_t vib3_sum_u32_avx2(const uint32_t *x, size_t n) {
    __m256i s[8];
    for (int j = 0; j < 8; j++) s[j] = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) s[j] = _mm256_add_epi32(s[j], _mm256_loadu_si256((const __m256i *)(x + i + 8 * j)));
    for (int j = 1; j < 8; j++) s[0] = _mm256_add_epi32(s[0], s[j]);
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s[0]), _mm256_extracti128_si256(s[0], 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    uint32_t r = (uint32_t)_mm_cvtsi128_si32(t);
    for (; i < n; i++) r += x[i];
    return r;
}

/* 8 vpmaddubsw per iteration off the dependency chains (only the vpaddw accumulate is
 * chained): 8 x 32 int8 MACs per iteration, the instruction's throughput */
uint64_t vib3_int8_mac_loop_avx2(uint64_t iters) {
    __m256i a = _mm256_set1_epi8(3), b[8], acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_si256(), b[j] = _mm256_set1_epi8((char)(j + 1));
    for (uint64_t it = 0; it < iters; it++) {
        __asm__ volatile("" : "+x"(a));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[j] = _mm256_add_epi16(acc[j], _mm256_maddubs_epi16(a, b[j]));
    }
    __m256i t = acc[0];
    for (int j = 1; j < 8; j++) t = _mm256_xor_si256(t, acc[j]);
    volatile int sink = _mm256_extract_epi32(t, 0);
    (void)sink;
    return iters * 8 * 32;
}

/* ==== page kernels ========================================================== */
#define PAGE_ISA avx2
#define PAGE_QUANT vib3_quantize_q8_0_avx2
#define PAGE_SWIGLU vib3_swiglu_avx2
#define PAGE_AXPY vib3_axpy_avx2
#define PAGE_DOWN_ACC(DT, w, cols, x, scale, y, rows) \
    ((DT) == VIB3_DTYPE_Q4_0 && q4_down_acc_avx2(w, cols, x, scale, y, rows))
#include "simd/page_impl.h"
VIB3_PAGE_DEFINE(f32, VIB3_DTYPE_F32)
VIB3_PAGE_DEFINE(f16, VIB3_DTYPE_F16)
VIB3_PAGE_DEFINE(bf16, VIB3_DTYPE_BF16)
VIB3_PAGE_DEFINE(q8_0, VIB3_DTYPE_Q8_0)
VIB3_PAGE_DEFINE(q4_0, VIB3_DTYPE_Q4_0)
VIB3_PAGE_DEFINE(q4_k16, VIB3_DTYPE_Q4_K16)

void vib3_simd_fill_avx2(vib3_simd_ops *o) {
    o->f16_to_f32 = vib3_f16_to_f32_avx2;
    o->f32_to_f16 = vib3_f32_to_f16_avx2;
    o->bf16_to_f32 = vib3_bf16_to_f32_avx2;
    o->quantize_q8_0 = vib3_quantize_q8_0_avx2;
    o->dequant[VIB3_DTYPE_F16] = dequant_f16_avx2;
    o->dequant[VIB3_DTYPE_BF16] = dequant_bf16_avx2;
    o->dequant[VIB3_DTYPE_Q4_0] = dequant_q4_0_avx2;
    VIB3_SIMD_FILL_DTYPE(o, f32, VIB3_DTYPE_F32, avx2);
    VIB3_SIMD_FILL_DTYPE(o, f16, VIB3_DTYPE_F16, avx2);
    VIB3_SIMD_FILL_DTYPE(o, bf16, VIB3_DTYPE_BF16, avx2);
    VIB3_SIMD_FILL_DTYPE(o, q8_0, VIB3_DTYPE_Q8_0, avx2);
    VIB3_SIMD_FILL_DTYPE(o, q4_0, VIB3_DTYPE_Q4_0, avx2);
    VIB3_SIMD_FILL_DTYPE(o, q4_k16, VIB3_DTYPE_Q4_K16, avx2);
    o->rmsnorm = vib3_rmsnorm_avx2;
    o->rope = vib3_rope_avx2;
    o->softmax = vib3_softmax_avx2;
    o->silu = vib3_silu_avx2;
    o->swiglu = vib3_swiglu_avx2;
    o->dot_f32 = vib3_dot_f32_avx2;
    o->axpy = vib3_axpy_avx2;
    o->scale = vib3_scale_avx2;
    o->add = vib3_add_avx2;
    o->attn_scores_f32 = vib3_attn_scores_f32_avx2;
    o->attn_scores_f16 = vib3_attn_scores_f16_avx2;
    o->attn_values_f32 = vib3_attn_values_f32_avx2;
    o->attn_values_f16 = vib3_attn_values_f16_avx2;
    o->sum_f32 = vib3_sum_f32_avx2;
    o->sum_u32 = vib3_sum_u32_avx2;
    o->int8_mac_loop = vib3_int8_mac_loop_avx2;
}
