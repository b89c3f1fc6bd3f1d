/* kernels_avx512.c — AVX-512 F/BW/VL/DQ + VNNI kernels (shapes in simd.h).
 *
 * Q4_0 x Q8_0 with vpdpbusd: two blocks per zmm. The 16 packed bytes of
 * each block are duplicated into 128-bit lanes [q0 q0 q1 q1], lanes 1 and 3
 * shifted right by 4 (vpsrlvq) and masked, giving the unsigned nibbles in
 * element order [b0 0..15 | b0 16..31 | b1 0..15 | b1 16..31] — exactly the
 * order of two consecutive Q8_0 activation blocks loaded as 2 x 32 bytes.
 * vpdpbusd(u8 nibble, s8 x) gives dot(w, x); the -8 offset is removed by
 * subtracting vpdpbusd(8, x) (per activation block, shared by every row).
 * Per block the int32 lanes are converted and FMA'd with d_w * d_x.
 * Q8_0 weights use (w ^ 0x80) = w + 128 as the unsigned operand and subtract
 * 128 * sum(x) the same way.
 *
 * Mat-vec walks R_MV rows together so activation loads, corrections and
 * scales are shared; mat-mul tiles 4 rows x 4 tokens. Everything streams the
 * weights once per call; rows are independent, so callers split [r0, r1).
 */
#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "simd/simd_isa.h"

/* ==== helpers =============================================================== */
static inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

/* [d0 x8 | d1 x8] as f32 from two f16 scales */
static inline __m512 scale2(uint16_t d0, uint16_t d1) {
    __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)d0)),
                                        _mm_set1_epi16((short)d1), 1);
    return _mm512_cvtph_ps(h);
}

/* unsigned nibbles of blocks b[0], b[1] in activation order */
static inline __m512i q4_unpack2(const vib3_block_q4_0 *b, __m512i shifts, __m512i m4) {
    __m256i q = _mm256_loadu2_m128i((const __m128i *)b[1].qs, (const __m128i *)b[0].qs);
    __m512i z = _mm512_castsi256_si512(q);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0));
    return _mm512_and_si512(_mm512_srlv_epi64(z, shifts), m4);
}
/* one block into a ymm: [0..15 | 16..31] */
static inline __m256i q4_unpack1(const vib3_block_q4_0 *b) {
    __m128i q = _mm_loadu_si128((const __m128i *)b->qs);
    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(z, _mm256_set1_epi8(15));
}
static inline __m512i q8_load2(const vib3_block_q8_0 *x) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x[0].qs)),
                              _mm256_loadu_si256((const __m256i *)x[1].qs), 1);
}

/* ==== quantize ============================================================== */
/* exact roundf (half away from zero) of v */
static inline __m512 round_away(__m512 v) {
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    return _mm512_mask_add_ps(t, up, t, one);
}

void vib3_quantize_q8_0_avx512(const float *x, vib3_block_q8_0 *y, size_t n) {
    for (size_t b = 0; b < n / VIB3_QBLOCK; b++, x += VIB3_QBLOCK) {
        __m512 a = _mm512_loadu_ps(x), c = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(c)));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = vib3_f32_to_f16(d);
        __m512 vid = _mm512_set1_ps(id);
        __m512i qa = _mm512_cvttps_epi32(round_away(_mm512_mul_ps(a, vid)));
        __m512i qc = _mm512_cvttps_epi32(round_away(_mm512_mul_ps(c, vid)));
        _mm_storeu_si128((__m128i *)y[b].qs, _mm512_cvtepi32_epi8(qa));
        _mm_storeu_si128((__m128i *)(y[b].qs + 16), _mm512_cvtepi32_epi8(qc));
    }
}

/* ==== Q4_0 mat-vec ========================================================== */
#define R_MV 4

/* rows [r, r + nr) (nr <= R_MV) of W against x: y[r..] */
static inline __attribute__((always_inline)) void q4_rows(const char *w, size_t rb, size_t nb,
                                                          const vib3_block_q8_0 *x, float *y, const int nr) {
    const __m512i shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0), m4 = _mm512_set1_epi8(15);
    const __m512i eight = _mm512_set1_epi8(8);
    __m512 acc[R_MV];
    for (int i = 0; i < R_MV; i++) acc[i] = _mm512_setzero_ps();
    const vib3_block_q4_0 *row[R_MV];
    for (int i = 0; i < R_MV; i++) row[i] = (const vib3_block_q4_0 *)(w + (size_t)(i < nr ? i : 0) * rb);
    size_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i xv = q8_load2(x + b);
        __m512i corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, xv);
        __m512 dx = scale2(x[b].d, x[b + 1].d);
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            __m512i wv = q4_unpack2(row[i] + b, shifts, m4);
            __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv), corr);
            __m512 s = _mm512_mul_ps(scale2(row[i][b].d, row[i][b + 1].d), dx);
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[i]);
        }
    }
    float tail[R_MV] = {0};
    if (b < nb) { /* odd block count: last block with ymm */
        __m256i xv = _mm256_loadu_si256((const __m256i *)x[b].qs);
        __m256i corr = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), xv);
        float dx = vib3_f16_to_f32(x[b].d);
        for (int i = 0; i < nr; i++) {
            __m256i dot = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q4_unpack1(row[i] + b), xv),
                                           corr);
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(dot), _mm256_extracti128_si256(dot, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
            tail[i] = (float)_mm_cvtsi128_si32(s4) * (vib3_f16_to_f32(row[i][b].d) * dx);
        }
    }
    for (int i = 0; i < nr; i++) y[i] = hsum512(acc[i]) + tail[i];
}

/* Eight rows per step with 256-bit VNNI, the structure of the AVX2 kernel (kernels_avx2.c):
 * rows A and B share a ymm (A's packed bytes in the low half), low and high nibbles
 * against the activation halves broadcast to both lanes, two vpdpbusd give int32 partial
 * sums per row and lane, three vphaddd reduce eight rows to [A C E G | B D F H], minus
 * 8 * sum(x_b); one convert / scale / FMA per block for all eight rows. */
#define CSUM_BLOCKS_MAX 1024u
static inline __attribute__((always_inline)) __m256i q4_pair_vnni(const vib3_block_q4_0 *a, const vib3_block_q4_0 *b,
                                                                  __m256i xlo, __m256i xhi, __m256i m4) {
    __m256i q = _mm256_loadu2_m128i((const __m128i *)b->qs, (const __m128i *)a->qs);
    __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, xlo), hi, xhi);
}

static inline __attribute__((always_inline)) void q4_rows8(const char *w, size_t rb, size_t nb,
                                                           const vib3_block_q8_0 *x, const int32_t *csum,
                                                           float *y) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    const vib3_block_q4_0 *r[8];
    for (int i = 0; i < 8; i++) r[i] = (const vib3_block_q4_0 *)(w + (size_t)i * rb);
    const char *pf = w + 8 * rb; /* the next 8-row group, prefetched in step (see kernels_avx2.c) */
    for (size_t b = 0; b < nb; b++) {
        _mm_prefetch(pf + b * 144, _MM_HINT_T0);
        _mm_prefetch(pf + b * 144 + 64, _MM_HINT_T0);
        _mm_prefetch(pf + b * 144 + 128, _MM_HINT_T0);
        __m256i xlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x[b].qs));
        __m256i xhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x[b].qs + 16)));
        __m256i ab = q4_pair_vnni(r[0] + b, r[1] + b, xlo, xhi, m4);
        __m256i cd = q4_pair_vnni(r[2] + b, r[3] + b, xlo, xhi, m4);
        __m256i ef = q4_pair_vnni(r[4] + b, r[5] + b, xlo, xhi, m4);
        __m256i gh = q4_pair_vnni(r[6] + b, r[7] + b, xlo, xhi, m4);
        __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(ab, cd), _mm256_hadd_epi32(ef, gh));
        s = _mm256_sub_epi32(s, _mm256_set1_epi32(csum[b]));
        __m128i d8 = _mm_cvtsi32_si128(r[0][b].d); /* lane order A C E G B D F H */
        d8 = _mm_insert_epi16(d8, r[2][b].d, 1);
        d8 = _mm_insert_epi16(d8, r[4][b].d, 2);
        d8 = _mm_insert_epi16(d8, r[6][b].d, 3);
        d8 = _mm_insert_epi16(d8, r[1][b].d, 4);
        d8 = _mm_insert_epi16(d8, r[3][b].d, 5);
        d8 = _mm_insert_epi16(d8, r[5][b].d, 6);
        d8 = _mm_insert_epi16(d8, r[7][b].d, 7);
        __m256 sc = _mm256_mul_ps(_mm256_cvtph_ps(d8), _mm256_set1_ps(vib3_f16_to_f32(x[b].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc);
    }
    acc = _mm256_permutevar8x32_ps(acc, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_ps(y, acc);
}

void vib3_matvec_q4_0_avx512(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    const size_t rb = cols / VIB3_QBLOCK * sizeof(vib3_block_q4_0), nb = cols / VIB3_QBLOCK;
    size_t r = r0;
    if (nb <= CSUM_BLOCKS_MAX && r1 - r0 >= 8) {
        int32_t csum[CSUM_BLOCKS_MAX];
        const vib3_block_q8_0 *xb = x;
        for (size_t b = 0; b < nb; b++) {
            __m256i v = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8),
                                            _mm256_loadu_si256((const __m256i *)xb[b].qs));
            __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
            t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
            csum[b] = _mm_cvtsi128_si32(t);
        }
        for (; r + 8 <= r1; r += 8) q4_rows8((const char *)w + r * rb, rb, nb, xb, csum, y + r);
    }
    for (; r + R_MV <= r1; r += R_MV) q4_rows((const char *)w + r * rb, rb, nb, x, y + r, R_MV);
    for (; r < r1; r++) q4_rows((const char *)w + r * rb, rb, nb, x, y + r, 1);
}

/* ==== Q8_0 mat-vec ========================================================== */
static inline __attribute__((always_inline)) void q8_rows(const char *w, size_t rb, size_t nb,
                                                          const vib3_block_q8_0 *x, float *y, const int nr) {
    const __m512i flip = _mm512_set1_epi8((char)0x80), k128 = _mm512_set1_epi8((char)128);
    __m512 acc[R_MV];
    for (int i = 0; i < R_MV; i++) acc[i] = _mm512_setzero_ps();
    const vib3_block_q8_0 *row[R_MV];
    for (int i = 0; i < R_MV; i++) row[i] = (const vib3_block_q8_0 *)(w + (size_t)(i < nr ? i : 0) * rb);
    size_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i xv = q8_load2(x + b);
        __m512i corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), k128, xv);
        __m512 dx = scale2(x[b].d, x[b + 1].d);
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            __m512i wv = _mm512_xor_si512(q8_load2(row[i] + b), flip);
            __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv), corr);
            __m512 s = _mm512_mul_ps(scale2(row[i][b].d, row[i][b + 1].d), dx);
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[i]);
        }
    }
    float tail[R_MV] = {0};
    if (b < nb) {
        float dx = vib3_f16_to_f32(x[b].d);
        for (int i = 0; i < nr; i++) {
            int32_t s = 0;
            for (int j = 0; j < 32; j++) s += row[i][b].qs[j] * x[b].qs[j];
            tail[i] = (float)s * (vib3_f16_to_f32(row[i][b].d) * dx);
        }
    }
    for (int i = 0; i < nr; i++) y[i] = hsum512(acc[i]) + tail[i];
}

void vib3_matvec_q8_0_avx512(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    const size_t rb = cols / VIB3_QBLOCK * sizeof(vib3_block_q8_0), nb = cols / VIB3_QBLOCK;
    size_t r = r0;
    for (; r + R_MV <= r1; r += R_MV) q8_rows((const char *)w + r * rb, rb, nb, x, y + r, R_MV);
    for (; r < r1; r++) q8_rows((const char *)w + r * rb, rb, nb, x, y + r, 1);
}

/* ==== mat-mul: 4 rows x 4 tokens per tile =================================== */
#define MM_R 4
#define MM_B 4

/* weights of one block pair for row i, as u8 lanes (Q4_0: nibbles; Q8_0: w + 128) */
static inline __m512i mm_wload(const void *row, size_t b, int q4, __m512i shifts, __m512i m4) {
    if (q4) return q4_unpack2((const vib3_block_q4_0 *)row + b, shifts, m4);
    return _mm512_xor_si512(q8_load2((const vib3_block_q8_0 *)row + b), _mm512_set1_epi8((char)0x80));
}
static inline uint16_t mm_d(const void *row, size_t b, int q4) {
    return q4 ? ((const vib3_block_q4_0 *)row)[b].d : ((const vib3_block_q8_0 *)row)[b].d;
}

static inline __attribute__((always_inline)) void mm_tile(const char *w, size_t rb, size_t nb, const char *x,
                                                          size_t x_stride, float *y, size_t y_ld, int nr, int nt,
                                                          const int q4) {
    const __m512i shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0), m4 = _mm512_set1_epi8(15);
    const __m512i off = q4 ? _mm512_set1_epi8(8) : _mm512_set1_epi8((char)128);
    __m512 acc[MM_R][MM_B];
    for (int i = 0; i < MM_R; i++)
        for (int t = 0; t < MM_B; t++) acc[i][t] = _mm512_setzero_ps();
    const void *row[MM_R];
    const vib3_block_q8_0 *xs[MM_B];
    for (int i = 0; i < MM_R; i++) row[i] = w + (size_t)(i < nr ? i : 0) * rb;
    for (int t = 0; t < MM_B; t++) xs[t] = (const vib3_block_q8_0 *)(x + (size_t)(t < nt ? t : 0) * x_stride);
    size_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i xv[MM_B], corr[MM_B];
        __m512 dx[MM_B];
#pragma GCC unroll 4
        for (int t = 0; t < MM_B; t++) {
            xv[t] = q8_load2(xs[t] + b);
            corr[t] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, xv[t]);
            dx[t] = scale2(xs[t][b].d, xs[t][b + 1].d);
        }
#pragma GCC unroll 4
        for (int i = 0; i < MM_R; i++) {
            __m512i wv = mm_wload(row[i], b, q4, shifts, m4);
            __m512 dw = scale2(mm_d(row[i], b, q4), mm_d(row[i], b + 1, q4));
#pragma GCC unroll 4
            for (int t = 0; t < MM_B; t++) {
                __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv[t]), corr[t]);
                acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, dx[t]), acc[i][t]);
            }
        }
    }
    for (int i = 0; i < nr; i++)
        for (int t = 0; t < nt; t++) {
            float s = hsum512(acc[i][t]);
            if (b < nb) { /* odd block count */
                int32_t si = 0;
                const vib3_block_q8_0 *xb = xs[t] + b;
                if (q4) {
                    const vib3_block_q4_0 *wb = (const vib3_block_q4_0 *)row[i] + b;
                    for (int j = 0; j < 16; j++)
                        si += ((wb->qs[j] & 15) - 8) * xb->qs[j] + ((wb->qs[j] >> 4) - 8) * xb->qs[j + 16];
                } else {
                    const vib3_block_q8_0 *wb = (const vib3_block_q8_0 *)row[i] + b;
                    for (int j = 0; j < 32; j++) si += wb->qs[j] * xb->qs[j];
                }
                s += (float)si * (vib3_f16_to_f32(mm_d(row[i], b, q4)) * vib3_f16_to_f32(xb->d));
            }
            y[(size_t)t * y_ld + (size_t)i] = s;
        }
}

static inline __attribute__((always_inline)) void mm_q(const void *w, size_t cols, const void *x, size_t x_stride,
                                                       size_t n_b, float *y, size_t y_ld, size_t r0, size_t r1,
                                                       const int q4) {
    const size_t nb = cols / VIB3_QBLOCK;
    const size_t rb = nb * (q4 ? sizeof(vib3_block_q4_0) : sizeof(vib3_block_q8_0));
    /* rows outer in L2-sized strips so a strip of weights is reused across all tokens */
    const size_t strip = rb ? (256 * 1024 / rb > MM_R ? 256 * 1024 / rb / MM_R * MM_R : MM_R) : MM_R;
    for (size_t s0 = r0; s0 < r1; s0 += strip) {
        size_t s1 = s0 + strip < r1 ? s0 + strip : r1;
        for (size_t t = 0; t < n_b; t += MM_B) {
            int nt = (int)(n_b - t < MM_B ? n_b - t : MM_B);
            for (size_t r = s0; r < s1; r += MM_R) {
                int nr = (int)(s1 - r < MM_R ? s1 - r : MM_R);
                mm_tile((const char *)w + r * rb, rb, nb, (const char *)x + t * x_stride, x_stride, y + t * y_ld + r,
                        y_ld, nr, nt, q4);
            }
        }
    }
}

/* Q4_0 mat-mul: 8 rows x 4 tokens with the mat-vec's 256-bit VNNI layout (rows A and B in one
 * ymm); the eight rows' nibbles of a block are unpacked once for four tokens. */
static inline __attribute__((always_inline)) void q4_tile8x4(const char *w, size_t rb, size_t nb,
                                                             const vib3_block_q8_0 *const xs[4],
                                                             int32_t (*csum)[CSUM_BLOCKS_MAX], float *y,
                                                             size_t y_ld, int nt) {
    const __m256i m4 = _mm256_set1_epi8(15);
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
        __m128i d8 = _mm_cvtsi32_si128(r[0][b].d); /* lane order A C E G B D F H */
        d8 = _mm_insert_epi16(d8, r[2][b].d, 1);
        d8 = _mm_insert_epi16(d8, r[4][b].d, 2);
        d8 = _mm_insert_epi16(d8, r[6][b].d, 3);
        d8 = _mm_insert_epi16(d8, r[1][b].d, 4);
        d8 = _mm_insert_epi16(d8, r[3][b].d, 5);
        d8 = _mm_insert_epi16(d8, r[5][b].d, 6);
        d8 = _mm_insert_epi16(d8, r[7][b].d, 7);
        __m256 dw = _mm256_cvtph_ps(d8);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const vib3_block_q8_0 *xb = xs[t] + b;
            __m256i xlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)xb->qs));
            __m256i xhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xb->qs + 16)));
            __m256i z = _mm256_setzero_si256();
            __m256i ab = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(z, lo[0], xlo), hi[0], xhi);
            __m256i cd = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(z, lo[1], xlo), hi[1], xhi);
            __m256i ef = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(z, lo[2], xlo), hi[2], xhi);
            __m256i gh = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(z, lo[3], xlo), hi[3], xhi);
            __m256i sm = _mm256_hadd_epi32(_mm256_hadd_epi32(ab, cd), _mm256_hadd_epi32(ef, gh));
            sm = _mm256_sub_epi32(sm, _mm256_set1_epi32(csum[t][b]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sm),
                                     _mm256_mul_ps(dw, _mm256_set1_ps(vib3_f16_to_f32(xb->d))), acc[t]);
        }
    }
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(y + (size_t)t * y_ld, _mm256_permutevar8x32_ps(acc[t], order));
}

static void q8_block_sums8(const vib3_block_q8_0 *x, size_t nb, int32_t *csum) {
    for (size_t b = 0; b < nb; b++) {
        __m256i v = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8),
                                        _mm256_loadu_si256((const __m256i *)x[b].qs));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
        csum[b] = _mm_cvtsi128_si32(t);
    }
}

/* Q4_0 mat-mul: the shared strip / token-group driver over the tiles above */
#define Q4MM_ISA avx512
#include "simd/q4_0_matmul_x86.h"

void vib3_matmul_q8_0_avx512(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y,
                             size_t y_ld, size_t r0, size_t r1) {
    mm_q(w, cols, x, x_stride, n_b, y, y_ld, r0, r1, 0);
}

/* ==== Q4_K16 x Q8_0 ========================================================== */
/* The AVX2 kernels (q4k16_x86.h, which says why), 256-bit, compiled here with VNNI's vpdpwssd
 * (K16_MADD_ACC) fusing the second sub-scale vpmaddwd with the add of the two groups. The
 * per-chunk sums stay in vpmaddubsw's int16 stage because the 6-bit sub-scales are applied
 * there by vpmaddwd (a vpdpbusd int32 stage would need vpmulld per row pair). */
static inline float f16s(uint16_t h) { return _cvtsh_ss(h); }
/* mask of the first n (< 8) lanes */
static inline __m256i lane_mask(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#define K16_MADD_ACC(acc, a, b) _mm256_dpwssd_epi32((acc), (a), (b))
#define K16_ISA avx512
#include "simd/q4k16_x86.h"

/* ==== f32 helpers =========================================================== */
float vib3_dot_f32_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    if (i + 16 <= n) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        i += 16;
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return hsum512(_mm512_add_ps(s0, s1));
}

static inline float dot_f16_avx512(const float *q, const uint16_t *k, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + i))), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + i + 16))), s1);
    }
    for (; i < n; i += 16) {
        size_t left = n - i < 16 ? n - i : 16;
        __mmask16 m = (__mmask16)((1u << left) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, k + i)), s0);
    }
    return hsum512(_mm512_add_ps(s0, s1));
}

void vib3_attn_scores_f32_avx512(const float *q, const float *k, size_t stride, size_t dim, size_t n, float scale,
                                 float *s) {
    for (size_t t = 0; t < n; t++) s[t] = scale * vib3_dot_f32_avx512(q, (const float *)((const char *)k + t * stride), dim);
}
void vib3_attn_scores_f16_avx512(const float *q, const uint16_t *k, size_t stride, size_t dim, size_t n, float scale,
                                 float *s) {
    for (size_t t = 0; t < n; t++) s[t] = scale * dot_f16_avx512(q, (const uint16_t *)((const char *)k + t * stride), dim);
}

void vib3_swiglu_avx512(float *out, const float *g, const float *u, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        size_t left = n - i < 16 ? n - i : 16;
        __mmask16 m = (__mmask16)((1u << left) - 1);
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), uv));
    }
}

/* ==== benchmark helpers ===================================================== */
float vib3_sum_f32_avx512(const float *x, size_t n) {
    __m512 s[8];
    for (int j = 0; j < 8; j++) s[j] = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 128 <= n; i += 128)
        for (int j = 0; j < 8; j++) s[j] = _mm512_add_ps(s[j], _mm512_loadu_ps(x + i + 16 * j));
    for (int j = 1; j < 8; j++) s[0] = _mm512_add_ps(s[0], s[j]);
    float r = hsum512(s[0]);
    for (; i < n; i++) r += x[i];
    return r;
}

uint32_t vib3_sum_u32_avx512(const uint32_t *x, size_t n) {
    __m512i s[8];
    for (int j = 0; j < 8; j++) s[j] = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 128 <= n; i += 128)
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) s[j] = _mm512_add_epi32(s[j], _mm512_loadu_si512((const void *)(x + i + 16 * j)));
    for (int j = 1; j < 8; j++) s[0] = _mm512_add_epi32(s[0], s[j]);
    uint32_t r = (uint32_t)_mm512_reduce_add_epi32(s[0]);
    for (; i < n; i++) r += x[i];
    return r;
}

/* 8 independent vpdpbusd zmm chains: 8 x 64 int8 MACs per iteration */
uint64_t vib3_int8_mac_loop_avx512(uint64_t iters) {
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2), acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm512_set1_epi32(j);
    for (uint64_t it = 0; it < iters; it++) {
        __asm__ volatile("" : "+v"(a), "+v"(b));
        for (int j = 0; j < 8; j++) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
    }
    __m512i t = acc[0];
    for (int j = 1; j < 8; j++) t = _mm512_xor_si512(t, acc[j]);
    volatile int sink = _mm_cvtsi128_si32(_mm512_castsi512_si128(t));
    (void)sink;
    return iters * 8 * 64;
}

/* ==== page kernels over the kernels above ==================================== */
#define PAGE_ISA avx512
#define PAGE_QUANT vib3_quantize_q8_0_avx512
#define PAGE_SWIGLU vib3_swiglu_avx512
#include "simd/page_impl.h"
VIB3_PAGE_DEFINE(q4_0, VIB3_DTYPE_Q4_0)
VIB3_PAGE_DEFINE(q8_0, VIB3_DTYPE_Q8_0)
VIB3_PAGE_DEFINE(q4_k16, VIB3_DTYPE_Q4_K16)

void vib3_simd_fill_avx512(vib3_simd_ops *o) {
    o->quantize_q8_0 = vib3_quantize_q8_0_avx512;
    VIB3_SIMD_FILL_DTYPE(o, q4_0, VIB3_DTYPE_Q4_0, avx512);
    VIB3_SIMD_FILL_DTYPE(o, q8_0, VIB3_DTYPE_Q8_0, avx512);
    VIB3_SIMD_FILL_DTYPE(o, q4_k16, VIB3_DTYPE_Q4_K16, avx512);
    o->dot_f32 = vib3_dot_f32_avx512;
    o->attn_scores_f32 = vib3_attn_scores_f32_avx512;
    o->attn_scores_f16 = vib3_attn_scores_f16_avx512;
    o->swiglu = vib3_swiglu_avx512;
    o->sum_f32 = vib3_sum_f32_avx512;
    o->sum_u32 = vib3_sum_u32_avx512;
    o->int8_mac_loop = vib3_int8_mac_loop_avx512;
}
