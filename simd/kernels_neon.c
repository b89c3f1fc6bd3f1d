/* kernels_neon.c — AArch64 NEON + dotprod + fp16 kernels (shapes in simd.h).
 *
 * Q4_0 x Q8_0: the 16 packed bytes of a block split into low / high nibbles
 * (vand / vshr), minus 8 as signed bytes, two vdotq_s32 (sdot) against the
 * two 16-byte halves of the Q8_0 activation block, convert and FMA with
 * d_w * d_x. Q8_0 weights go straight into sdot. vcvtaq_s32_f32 rounds half
 * away from zero, which is exactly the reference's roundf. Mat-vec runs 4
 * rows at a time (activation loads shared); exp-based kernels stay scalar
 * (no SLEEF for the cross build) except where they do not matter for speed.
 * Built and run under qemu-aarch64 by tests/simd/test_neon.sh.
 */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "simd/simd_isa.h"

/* ==== conversions =========================================================== */
static void f16_to_f32_neon(const uint16_t *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
    for (; i < n; i++) y[i] = vib3_f16_to_f32(x[i]);
}
static void f32_to_f16_neon(const float *x, uint16_t *y, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) y[i] = vib3_f32_to_f16(x[i]);
}
static void bf16_to_f32_neon(const uint16_t *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(x + i), 16)));
    for (; i < n; i++) y[i] = vib3_bf16_to_f32(x[i]);
}
static void dequant_f16_neon(const void *x, float *y, size_t n) { f16_to_f32_neon(x, y, n); }
static void dequant_bf16_neon(const void *x, float *y, size_t n) { bf16_to_f32_neon(x, y, n); }

void vib3_quantize_q8_0_neon(const float *x, vib3_block_q8_0 *y, size_t n) {
    for (size_t b = 0; b < n / VIB3_QBLOCK; b++, x += VIB3_QBLOCK) {
        float32x4_t v[8];
        float32x4_t m = vdupq_n_f32(0);
        for (int j = 0; j < 8; j++) {
            v[j] = vld1q_f32(x + 4 * j);
            m = vmaxq_f32(m, vabsq_f32(v[j]));
        }
        float amax = vmaxvq_f32(m);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = vib3_f32_to_f16(d);
        for (int j = 0; j < 8; j += 2) {
            int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(v[j], id)), c = vcvtaq_s32_f32(vmulq_n_f32(v[j + 1], id));
            int16x8_t h = vcombine_s16(vqmovn_s32(a), vqmovn_s32(c));
            vst1_s8(y[b].qs + 4 * j, vqmovn_s16(h));
        }
    }
}

/* ==== Q4_0 / Q8_0 mat-vec =================================================== */
#define R_MV 4

static inline int32x4_t q4_dot(const vib3_block_q4_0 *w, int8x16_t xl, int8x16_t xh) {
    uint8x16_t q = vld1q_u8(w->qs);
    int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(15))), vdupq_n_s8(8));
    int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), lo, xl), hi, xh);
}
static inline int32x4_t q8_dot(const vib3_block_q8_0 *w, int8x16_t xl, int8x16_t xh) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), vld1q_s8(w->qs), xl), vld1q_s8(w->qs + 16), xh);
}

static inline void qrows(const char *w, size_t rb, size_t nb, const vib3_block_q8_0 *x, float *y, int nr, int q4) {
    float32x4_t acc[R_MV];
    for (int i = 0; i < R_MV; i++) acc[i] = vdupq_n_f32(0);
    const char *pf = w + (size_t)R_MV * rb; /* the next row group, in step with this one */
    const size_t step = R_MV * (q4 ? sizeof(vib3_block_q4_0) : sizeof(vib3_block_q8_0));
    for (size_t b = 0; b < nb; b++) {
        __builtin_prefetch(pf + b * step);
        __builtin_prefetch(pf + b * step + 64);
        int8x16_t xl = vld1q_s8(x[b].qs), xh = vld1q_s8(x[b].qs + 16);
        float dx = vib3_f16_to_f32(x[b].d);
        for (int i = 0; i < nr; i++) {
            int32x4_t d;
            uint16_t dw;
            if (q4) {
                const vib3_block_q4_0 *wb = (const vib3_block_q4_0 *)(w + (size_t)i * rb) + b;
                d = q4_dot(wb, xl, xh);
                dw = wb->d;
            } else {
                const vib3_block_q8_0 *wb = (const vib3_block_q8_0 *)(w + (size_t)i * rb) + b;
                d = q8_dot(wb, xl, xh);
                dw = wb->d;
            }
            acc[i] = vmlaq_n_f32(acc[i], vcvtq_f32_s32(d), vib3_f16_to_f32(dw) * dx);
        }
    }
    for (int i = 0; i < nr; i++) y[i] = vaddvq_f32(acc[i]);
}

void vib3_matvec_q4_0_neon(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    const size_t nb = cols / VIB3_QBLOCK, rb = nb * sizeof(vib3_block_q4_0);
    for (size_t r = r0; r < r1; r += R_MV)
        qrows((const char *)w + r * rb, rb, nb, x, y + r, (int)(r1 - r < R_MV ? r1 - r : R_MV), 1);
}
void vib3_matvec_q8_0_neon(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    const size_t nb = cols / VIB3_QBLOCK, rb = nb * sizeof(vib3_block_q8_0);
    for (size_t r = r0; r < r1; r += R_MV)
        qrows((const char *)w + r * rb, rb, nb, x, y + r, (int)(r1 - r < R_MV ? r1 - r : R_MV), 0);
}

/* mat-mul: 4 rows x 4 tokens per tile, rows in L2-sized strips */
static void mm_tile(const char *w, size_t rb, size_t nb, const char *x, size_t x_stride, float *y, size_t y_ld,
                    int nr, int nt, int q4) {
    float32x4_t acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < 4; t++) acc[i][t] = vdupq_n_f32(0);
    for (size_t b = 0; b < nb; b++) {
        int8x16_t xl[4], xh[4];
        float dx[4];
        for (int t = 0; t < nt; t++) {
            const vib3_block_q8_0 *xb = (const vib3_block_q8_0 *)(x + (size_t)t * x_stride) + b;
            xl[t] = vld1q_s8(xb->qs), xh[t] = vld1q_s8(xb->qs + 16), dx[t] = vib3_f16_to_f32(xb->d);
        }
        for (int i = 0; i < nr; i++) {
            int8x16_t lo, hi;
            float dw;
            if (q4) {
                const vib3_block_q4_0 *wb = (const vib3_block_q4_0 *)(w + (size_t)i * rb) + b;
                uint8x16_t q = vld1q_u8(wb->qs);
                lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(15))), vdupq_n_s8(8));
                hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
                dw = vib3_f16_to_f32(wb->d);
            } else {
                const vib3_block_q8_0 *wb = (const vib3_block_q8_0 *)(w + (size_t)i * rb) + b;
                lo = vld1q_s8(wb->qs), hi = vld1q_s8(wb->qs + 16);
                dw = vib3_f16_to_f32(wb->d);
            }
            for (int t = 0; t < nt; t++) {
                int32x4_t d = vdotq_s32(vdotq_s32(vdupq_n_s32(0), lo, xl[t]), hi, xh[t]);
                acc[i][t] = vmlaq_n_f32(acc[i][t], vcvtq_f32_s32(d), dw * dx[t]);
            }
        }
    }
    for (int i = 0; i < nr; i++)
        for (int t = 0; t < nt; t++) y[(size_t)t * y_ld + (size_t)i] = vaddvq_f32(acc[i][t]);
}
static void mm_q(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y, size_t y_ld,
                 size_t r0, size_t r1, int q4) {
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
void vib3_matmul_q4_0_neon(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y,
                           size_t y_ld, size_t r0, size_t r1) {
    mm_q(w, cols, x, x_stride, n_b, y, y_ld, r0, r1, 1);
}
void vib3_matmul_q8_0_neon(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y,
                           size_t y_ld, size_t r0, size_t r1) {
    mm_q(w, cols, x, x_stride, n_b, y, y_ld, r0, r1, 0);
}

/* ==== Q4_K16 x Q8_0 ========================================================== */
/* Per chunk and row: low / high nibbles of the 16 packed bytes (vand / vshr, 0..15 as signed
 * bytes), two sdot against the activation halves give the partial sums of S0 and S1 in four
 * int32 lanes, sc0 S0 + sc1 S1 by two vmul(a)q_n_s32, converted and FMA'd with d_x into a
 * per-super-block f32 accumulator that d scales once per super-block; the min term
 * mn0 T0 + mn1 T1 is a scalar per row (T0 / T1 by one vaddlvq_s8 each, shared by the rows of
 * the step). Four rows per step share the activation loads. */
#define K16_SB_BYTES (VIB3_Q4K16_HEAD_BYTES + 8 * VIB3_Q4K16_CHUNK_BYTES)
#define K16_MT 4 /* tokens per mat-mul tile */

static inline float f16le(const uint8_t *p) { return vib3_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* rows r[0..nr) x tokens xs[0..nt) over the whole row; y[t * y_ld + i] */
static void k16_tile(const uint8_t *const r[R_MV], int nr, size_t nch, const vib3_block_q8_0 *const xs[K16_MT], int nt,
                     float *y, size_t y_ld) {
    float32x4_t acc[R_MV][K16_MT];
    float accm[R_MV][K16_MT];
    for (int i = 0; i < R_MV; i++)
        for (int t = 0; t < K16_MT; t++) acc[i][t] = vdupq_n_f32(0), accm[i][t] = 0;
    for (size_t s = 0; s * 8 < nch; s++) {
        const size_t sb = s * K16_SB_BYTES, cn = nch - s * 8 < 8 ? nch - s * 8 : 8;
        float32x4_t ad[R_MV][K16_MT];
        float am[R_MV][K16_MT];
        for (int i = 0; i < R_MV; i++)
            for (int t = 0; t < K16_MT; t++) ad[i][t] = vdupq_n_f32(0), am[i][t] = 0;
        for (size_t j = 0; j < cn; j++) {
            const size_t off = sb + VIB3_Q4K16_HEAD_BYTES + j * VIB3_Q4K16_CHUNK_BYTES, c = s * 8 + j;
            int8x16_t xl[K16_MT], xh[K16_MT];
            int32_t t0[K16_MT], t1[K16_MT];
            float dx[K16_MT];
            for (int t = 0; t < nt; t++) {
                xl[t] = vld1q_s8(xs[t][c].qs), xh[t] = vld1q_s8(xs[t][c].qs + 16);
                t0[t] = vaddlvq_s8(xl[t]), t1[t] = vaddlvq_s8(xh[t]);
                dx[t] = vib3_f16_to_f32(xs[t][c].d);
            }
            for (int i = 0; i < nr; i++) {
                const uint8_t *p = r[i] + off;
                int sc[2], mn[2];
                vib3_q4k16_unpack(p, sc, mn);
                uint8x16_t q = vld1q_u8(p + 3);
                int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(15)));
                int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
                for (int t = 0; t < nt; t++) {
                    int32x4_t s0 = vdotq_s32(vdupq_n_s32(0), lo, xl[t]), s1 = vdotq_s32(vdupq_n_s32(0), hi, xh[t]);
                    int32x4_t v = vmlaq_n_s32(vmulq_n_s32(s0, sc[0]), s1, sc[1]);
                    ad[i][t] = vmlaq_n_f32(ad[i][t], vcvtq_f32_s32(v), dx[t]);
                    am[i][t] += dx[t] * (float)(mn[0] * t0[t] + mn[1] * t1[t]);
                }
            }
        }
        for (int i = 0; i < nr; i++) {
            float d = f16le(r[i] + sb), dm = f16le(r[i] + sb + 2);
            for (int t = 0; t < nt; t++) acc[i][t] = vmlaq_n_f32(acc[i][t], ad[i][t], d), accm[i][t] += dm * am[i][t];
        }
    }
    for (int i = 0; i < nr; i++)
        for (int t = 0; t < nt; t++) y[(size_t)t * y_ld + (size_t)i] = vaddvq_f32(acc[i][t]) - accm[i][t];
}

void vib3_matvec_q4_k16_neon(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    const size_t nch = cols / VIB3_QBLOCK, rb = (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, cols);
    const vib3_block_q8_0 *xs[K16_MT] = {x, x, x, x};
    for (size_t r = r0; r < r1; r += R_MV) {
        const int nr = (int)(r1 - r < R_MV ? r1 - r : R_MV);
        const uint8_t *rp[R_MV];
        for (int i = 0; i < R_MV; i++) rp[i] = (const uint8_t *)w + (r + (size_t)(i < nr ? i : 0)) * rb;
        k16_tile(rp, nr, nch, xs, 1, y + r, 0);
    }
}
void vib3_matmul_q4_k16_neon(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y,
                             size_t y_ld, size_t r0, size_t r1) {
    const size_t nch = cols / VIB3_QBLOCK, rb = (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, cols);
    const size_t strip = rb && 256 * 1024 / rb > R_MV ? 256 * 1024 / rb / R_MV * R_MV : R_MV;
    for (size_t s0 = r0; s0 < r1; s0 += strip) {
        const size_t s1 = s0 + strip < r1 ? s0 + strip : r1;
        for (size_t t0 = 0; t0 < n_b; t0 += K16_MT) {
            const int nt = (int)(n_b - t0 < K16_MT ? n_b - t0 : K16_MT);
            const vib3_block_q8_0 *xs[K16_MT];
            for (int t = 0; t < K16_MT; t++)
                xs[t] = (const vib3_block_q8_0 *)((const char *)x + (t0 + (size_t)(t < nt ? t : 0)) * x_stride);
            for (size_t r = s0; r < s1; r += R_MV) {
                const int nr = (int)(s1 - r < R_MV ? s1 - r : R_MV);
                const uint8_t *rp[R_MV];
                for (int i = 0; i < R_MV; i++) rp[i] = (const uint8_t *)w + (r + (size_t)(i < nr ? i : 0)) * rb;
                k16_tile(rp, nr, nch, xs, nt, y + t0 * y_ld + r, y_ld);
            }
        }
    }
}

/* ==== f32 / f16 helpers ======================================================= */
static float dot_f32_neon(const float *a, const float *b, size_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
static float dot_f16_neon(const float *q, const uint16_t *k, size_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(k + i));
        s0 = vfmaq_f32(s0, vld1q_f32(q + i), vcvt_f32_f16(vget_low_f16(h)));
        s1 = vfmaq_f32(s1, vld1q_f32(q + i + 4), vcvt_high_f32_f16(h));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; i++) s += q[i] * vib3_f16_to_f32(k[i]);
    return s;
}
static void axpy_neon(float *y, float a, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}
static void rmsnorm_neon(float *y, const float *x, const float *w, size_t n, float eps) {
    float r = 1.0f / sqrtf(dot_f32_neon(x, x, n) / (float)n + eps);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vmulq_n_f32(vld1q_f32(x + i), r);
        vst1q_f32(y + i, w ? vmulq_f32(v, vld1q_f32(w + i)) : v);
    }
    for (; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0f);
}
static void attn_scores_f32_neon(const float *q, const float *k, size_t stride, size_t dim, size_t n, float scale,
                                 float *s) {
    for (size_t t = 0; t < n; t++) s[t] = scale * dot_f32_neon(q, (const float *)((const char *)k + t * stride), dim);
}
static void attn_scores_f16_neon(const float *q, const uint16_t *k, size_t stride, size_t dim, size_t n, float scale,
                                 float *s) {
    for (size_t t = 0; t < n; t++) s[t] = scale * dot_f16_neon(q, (const uint16_t *)((const char *)k + t * stride), dim);
}
static void attn_values_f32_neon(const float *p, const float *v, size_t stride, size_t dim, size_t n, float *out) {
    for (size_t t = 0; t < n; t++) axpy_neon(out, p[t], (const float *)((const char *)v + t * stride), dim);
}
static void attn_values_f16_neon(const float *p, const uint16_t *v, size_t stride, size_t dim, size_t n, float *out) {
    for (size_t t = 0; t < n; t++) {
        const uint16_t *r = (const uint16_t *)((const char *)v + t * stride);
        size_t i = 0;
        for (; i + 4 <= dim; i += 4)
            vst1q_f32(out + i, vfmaq_n_f32(vld1q_f32(out + i), vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(r + i))), p[t]));
        for (; i < dim; i++) out[i] += p[t] * vib3_f16_to_f32(r[i]);
    }
}
static float sum_f32_neon(const float *x, size_t n) {
    float32x4_t s[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 4; j++) s[j] = vaddq_f32(s[j], vld1q_f32(x + i + 4 * j));
    float r = vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3])));
    for (; i < n; i++) r += x[i];
    return r;
}
static uint32_t sum_u32_neon(const uint32_t *x, size_t n) {
    uint32x4_t s[4] = {vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0)};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 4; j++) s[j] = vaddq_u32(s[j], vld1q_u32(x + i + 4 * j));
    uint32_t r = vaddvq_u32(vaddq_u32(vaddq_u32(s[0], s[1]), vaddq_u32(s[2], s[3])));
    for (; i < n; i++) r += x[i];
    return r;
}

/* 8 independent sdot chains: 8 x 16 int8 MACs per iteration */
static uint64_t int8_mac_loop_neon(uint64_t iters) {
    int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-2);
    int32x4_t acc[8];
    for (int j = 0; j < 8; j++) acc[j] = vdupq_n_s32(j);
    for (uint64_t it = 0; it < iters; it++) {
        __asm__ volatile("" : "+w"(a), "+w"(b));
        for (int j = 0; j < 8; j++) acc[j] = vdotq_s32(acc[j], a, b);
    }
    int32x4_t t = acc[0];
    for (int j = 1; j < 8; j++) t = veorq_s32(t, acc[j]);
    volatile int sink = vgetq_lane_s32(t, 0);
    (void)sink;
    return iters * 8 * 16;
}

/* ==== page kernels ========================================================== */
#define PAGE_ISA neon
#define PAGE_QUANT vib3_quantize_q8_0_neon
#define PAGE_SWIGLU vib3_swiglu_ref
#include "simd/page_impl.h"
VIB3_PAGE_DEFINE(q8_0, VIB3_DTYPE_Q8_0)
VIB3_PAGE_DEFINE(q4_0, VIB3_DTYPE_Q4_0)
VIB3_PAGE_DEFINE(q4_k16, VIB3_DTYPE_Q4_K16)

void vib3_simd_fill_neon(vib3_simd_ops *o) {
    o->f16_to_f32 = f16_to_f32_neon;
    o->f32_to_f16 = f32_to_f16_neon;
    o->bf16_to_f32 = bf16_to_f32_neon;
    o->quantize_q8_0 = vib3_quantize_q8_0_neon;
    o->dequant[VIB3_DTYPE_F16] = dequant_f16_neon;
    o->dequant[VIB3_DTYPE_BF16] = dequant_bf16_neon;
    VIB3_SIMD_FILL_DTYPE(o, q4_0, VIB3_DTYPE_Q4_0, neon);
    VIB3_SIMD_FILL_DTYPE(o, q8_0, VIB3_DTYPE_Q8_0, neon);
    VIB3_SIMD_FILL_DTYPE(o, q4_k16, VIB3_DTYPE_Q4_K16, neon);
    o->rmsnorm = rmsnorm_neon;
    o->dot_f32 = dot_f32_neon;
    o->axpy = axpy_neon;
    o->attn_scores_f32 = attn_scores_f32_neon;
    o->attn_scores_f16 = attn_scores_f16_neon;
    o->attn_values_f32 = attn_values_f32_neon;
    o->attn_values_f16 = attn_values_f16_neon;
    o->sum_f32 = sum_f32_neon;
    o->sum_u32 = sum_u32_neon;
    o->int8_mac_loop = int8_mac_loop_neon;
}
