/* kernels_ref.c — the scalar reference of every kernel in simd.h.
 *
 * Plain loops, f32 accumulation in element order, ggml's block numerics
 * (integer dot product per 32-element block times d_w * d_x). These are what
 * the ISA variants are tested against and what runs when no variant fits
 * (VIB3_ISA=scalar, fuzz builds). Nothing here allocates.
 */
#include <math.h>
#include <string.h>

#include "simd/simd.h"

/* ==== conversions ========================================================== */
uint16_t vib3_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = {f};
    uint32_t x = v.u, sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                                  /* below the smallest normal: subnormal or 0 */
        if (ax < 0x33000000u) return (uint16_t)sign;         /* < 2^-25: rounds to 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;                            /* 14 .. 24 */
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((ax - 0x38000000u) >> 13), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

uint16_t vib3_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* quiet nan */
    return (uint16_t)((v.u + 0x7fff + ((v.u >> 16) & 1)) >> 16);
}

void vib3_f16_to_f32_ref(const uint16_t *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = vib3_f16_to_f32(x[i]);
}
void vib3_f32_to_f16_ref(const float *x, uint16_t *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = vib3_f32_to_f16(x[i]);
}
void vib3_bf16_to_f32_ref(const uint16_t *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = vib3_bf16_to_f32(x[i]);
}

void vib3_quantize_q8_0_ref(const float *x, vib3_block_q8_0 *y, size_t n) {
    for (size_t b = 0; b < n / VIB3_QBLOCK; b++, x += VIB3_QBLOCK) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = vib3_f32_to_f16(d);
        for (int i = 0; i < 32; i++) y[b].qs[i] = (int8_t)roundf(x[i] * id);
    }
}

void vib3_dequant_f32_ref(const void *x, float *y, size_t n) { memcpy(y, x, n * sizeof(float)); }
void vib3_dequant_f16_ref(const void *x, float *y, size_t n) { vib3_f16_to_f32_ref(x, y, n); }
void vib3_dequant_bf16_ref(const void *x, float *y, size_t n) { vib3_bf16_to_f32_ref(x, y, n); }
void vib3_dequant_q8_0_ref(const void *x, float *y, size_t n) {
    const vib3_block_q8_0 *b = x;
    for (size_t i = 0; i < n / VIB3_QBLOCK; i++) {
        float d = vib3_f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++) y[i * 32 + j] = d * b[i].qs[j];
    }
}
void vib3_dequant_q4_0_ref(const void *x, float *y, size_t n) {
    const vib3_block_q4_0 *b = x;
    for (size_t i = 0; i < n / VIB3_QBLOCK; i++) {
        float d = vib3_f16_to_f32(b[i].d);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = d * ((b[i].qs[j] & 15) - 8);
            y[i * 32 + j + 16] = d * ((b[i].qs[j] >> 4) - 8);
        }
    }
}

/* walks a Q4_K16 row (vib3_format.h) chunk by chunk: p at the next chunk, d / dm of its
 * super-block, left: chunks still to come in that super-block (a row's last one may hold < 8) */
typedef struct {
    const uint8_t *p;
    float d, dm;
    size_t left;
} k16_walk;
/* the next chunk's sub-scales sc[], sub-mins mn[] and 16 packed bytes (low nibbles: its
 * elements 0..15, high: 16..31); the caller counts chunks */
static inline const uint8_t *k16_next(k16_walk *k, int sc[2], int mn[2]) {
    if (k->left == 0) {
        const uint8_t *h = k->p;
        k->d = vib3_f16_to_f32((uint16_t)(h[0] | h[1] << 8)), k->dm = vib3_f16_to_f32((uint16_t)(h[2] | h[3] << 8));
        k->p += VIB3_Q4K16_HEAD_BYTES, k->left = 8;
    }
    const uint8_t *c = k->p;
    k->p += VIB3_Q4K16_CHUNK_BYTES, k->left--;
    vib3_q4k16_unpack(c, sc, mn);
    return c + 3;
}

/* one row of n elements (n % 32 == 0) */
void vib3_dequant_q4_k16_ref(const void *x, float *y, size_t n) {
    k16_walk k = {x, 0, 0, 0};
    for (size_t b = 0; b < n / VIB3_QBLOCK; b++) {
        int sc[2], mn[2];
        const uint8_t *qs = k16_next(&k, sc, mn);
        for (int j = 0; j < 16; j++) {
            y[b * 32 + j] = k.d * (float)sc[0] * (float)(qs[j] & 15) - k.dm * (float)mn[0];
            y[b * 32 + j + 16] = k.d * (float)sc[1] * (float)(qs[j] >> 4) - k.dm * (float)mn[1];
        }
    }
}

/* ==== row dot products ===================================================== */
static float dot_row_f32(const void *w, const float *x, size_t n) {
    const float *r = w;
    float s = 0;
    for (size_t i = 0; i < n; i++) s += r[i] * x[i];
    return s;
}
static float dot_row_f16(const void *w, const float *x, size_t n) {
    const uint16_t *r = w;
    float s = 0;
    for (size_t i = 0; i < n; i++) s += vib3_f16_to_f32(r[i]) * x[i];
    return s;
}
static float dot_row_bf16(const void *w, const float *x, size_t n) {
    const uint16_t *r = w;
    float s = 0;
    for (size_t i = 0; i < n; i++) s += vib3_bf16_to_f32(r[i]) * x[i];
    return s;
}
static float dot_row_q8_0(const void *w, const vib3_block_q8_0 *x, size_t n) {
    const vib3_block_q8_0 *r = w;
    float s = 0;
    for (size_t b = 0; b < n / VIB3_QBLOCK; b++) {
        int32_t acc = 0;
        for (int j = 0; j < 32; j++) acc += r[b].qs[j] * x[b].qs[j];
        s += (float)acc * (vib3_f16_to_f32(r[b].d) * vib3_f16_to_f32(x[b].d));
    }
    return s;
}
static float dot_row_q4_0(const void *w, const vib3_block_q8_0 *x, size_t n) {
    const vib3_block_q4_0 *r = w;
    float s = 0;
    for (size_t b = 0; b < n / VIB3_QBLOCK; b++) {
        int32_t acc = 0;
        for (int j = 0; j < 16; j++)
            acc += ((r[b].qs[j] & 15) - 8) * x[b].qs[j] + ((r[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
        s += (float)acc * (vib3_f16_to_f32(r[b].d) * vib3_f16_to_f32(x[b].d));
    }
    return s;
}

static float dot_row_q4_k16(const void *w, const vib3_block_q8_0 *x, size_t n) {
    k16_walk k = {w, 0, 0, 0};
    float s = 0;
    for (size_t b = 0; b < n / VIB3_QBLOCK; b++) {
        int sc[2], mn[2];
        const uint8_t *qs = k16_next(&k, sc, mn);
        int32_t s0 = 0, s1 = 0, t0 = 0, t1 = 0;
        for (int j = 0; j < 16; j++) {
            s0 += (qs[j] & 15) * x[b].qs[j];
            s1 += (qs[j] >> 4) * x[b].qs[j + 16];
            t0 += x[b].qs[j];
            t1 += x[b].qs[j + 16];
        }
        s += vib3_f16_to_f32(x[b].d) *
             (k.d * (float)(sc[0] * s0 + sc[1] * s1) - k.dm * (float)(mn[0] * t0 + mn[1] * t1));
    }
    return s;
}

#define REF_MAT(dt, DT, XT)                                                                                       \
    void vib3_matvec_##dt##_ref(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {     \
        size_t rb = (size_t)vib3_dtype_row_bytes(DT, cols);                                                       \
        for (size_t r = r0; r < r1; r++) y[r] = dot_row_##dt((const char *)w + r * rb, (const XT *)x, cols);     \
    }                                                                                                             \
    void vib3_matmul_##dt##_ref(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y, \
                                size_t y_ld, size_t r0, size_t r1) {                                              \
        for (size_t b = 0; b < n_b; b++)                                                                          \
            vib3_matvec_##dt##_ref(w, cols, (const char *)x + b * x_stride, y + b * y_ld, r0, r1);               \
    }
REF_MAT(f32, VIB3_DTYPE_F32, float)
REF_MAT(f16, VIB3_DTYPE_F16, float)
REF_MAT(bf16, VIB3_DTYPE_BF16, float)
REF_MAT(q8_0, VIB3_DTYPE_Q8_0, vib3_block_q8_0)
REF_MAT(q4_0, VIB3_DTYPE_Q4_0, vib3_block_q8_0)
REF_MAT(q4_k16, VIB3_DTYPE_Q4_K16, vib3_block_q8_0)

/* ==== page kernels (page_impl.h over the reference mat-vec) ================= */
#define PAGE_ISA ref
#define PAGE_QUANT vib3_quantize_q8_0_ref
#define PAGE_SWIGLU vib3_swiglu_ref
#include "simd/page_impl.h"
VIB3_PAGE_DEFINE(f32, VIB3_DTYPE_F32)
VIB3_PAGE_DEFINE(f16, VIB3_DTYPE_F16)
VIB3_PAGE_DEFINE(bf16, VIB3_DTYPE_BF16)
VIB3_PAGE_DEFINE(q8_0, VIB3_DTYPE_Q8_0)
VIB3_PAGE_DEFINE(q4_0, VIB3_DTYPE_Q4_0)
VIB3_PAGE_DEFINE(q4_k16, VIB3_DTYPE_Q4_K16)

/* ==== element-wise ========================================================= */
void vib3_rmsnorm_ref(float *y, const float *x, const float *w, size_t n, float eps) {
    float ss = 0;
    for (size_t i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0f);
}

void vib3_rope_ref(float *x, size_t n_heads, size_t head_dim, size_t rope_dim, const float *cos, const float *sin,
                   bool interleaved) {
    size_t half = rope_dim / 2;
    for (size_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (size_t i = 0; i < half; i++) {
            size_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cos[i] - x1 * sin[i];
            v[b] = x1 * cos[i] + x0 * sin[i];
        }
    }
}

void vib3_softmax_ref(float *x, size_t n) {
    float m = x[0], s = 0;
    for (size_t i = 1; i < n; i++) m = fmaxf(m, x[i]);
    for (size_t i = 0; i < n; i++) s += (x[i] = expf(x[i] - m));
    float inv = 1.0f / s;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

void vib3_silu_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void vib3_swiglu_ref(float *out, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* Selection by a k-sized sorted insertion list: O(n k), fine for the router
 * sizes (n <= 4096 experts, k <= 16) it serves. */
void vib3_topk_ref(const float *x, size_t n, size_t k, uint32_t *idx, float *val) {
    size_t len = 0;
    for (size_t i = 0; i < n && k; i++) {
        float v = x[i];
        if (len == k && !(v > x[idx[k - 1]])) continue;
        size_t j = len < k ? len++ : k - 1;
        while (j > 0 && v > x[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = (uint32_t)i;
    }
    if (val)
        for (size_t j = 0; j < len; j++) val[j] = x[idx[j]];
}

float vib3_dot_f32_ref(const float *a, const float *b, size_t n) { return dot_row_f32(a, b, n); }
void vib3_axpy_ref(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}
void vib3_scale_ref(float *x, float a, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] *= a;
}
void vib3_add_ref(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* ==== attention ============================================================ */
void vib3_attn_scores_f32_ref(const float *q, const float *k, size_t stride, size_t dim, size_t n, float scale,
                              float *s) {
    for (size_t t = 0; t < n; t++) s[t] = scale * dot_row_f32((const char *)k + t * stride, q, dim);
}
void vib3_attn_scores_f16_ref(const float *q, const uint16_t *k, size_t stride, size_t dim, size_t n, float scale,
                              float *s) {
    for (size_t t = 0; t < n; t++) s[t] = scale * dot_row_f16((const char *)k + t * stride, q, dim);
}
void vib3_attn_values_f32_ref(const float *p, const float *v, size_t stride, size_t dim, size_t n, float *out) {
    for (size_t t = 0; t < n; t++) vib3_axpy_ref(out, p[t], (const float *)((const char *)v + t * stride), dim);
}
void vib3_attn_values_f16_ref(const float *p, const uint16_t *v, size_t stride, size_t dim, size_t n, float *out) {
    for (size_t t = 0; t < n; t++) {
        const uint16_t *r = (const uint16_t *)((const char *)v + t * stride);
        for (size_t i = 0; i < dim; i++) out[i] += p[t] * vib3_f16_to_f32(r[i]);
    }
}

/* ==== benchmark helpers ===================================================== */
float vib3_sum_f32_ref(const float *x, size_t n) {
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += x[i + j];
    for (; i < n; i++) s[0] += x[i];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

uint32_t vib3_sum_u32_ref(const uint32_t *x, size_t n) {
    uint32_t s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += x[i + j];
    for (; i < n; i++) s[0] += x[i];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

uint64_t vib3_int8_mac_loop_ref(uint64_t iters) {
    volatile int8_t a[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    int32_t acc = 0;
    for (uint64_t it = 0; it < iters; it++)
        for (int j = 0; j < 16; j++) acc += a[j] * (int8_t)(j - 8);
    a[0] = (int8_t)acc;
    return iters * 16;
}
