/* simd.h — vib3's compute kernels behind one function table.
 *
 * vib3_simd() returns the table for the best variant this CPU *and* OS can
 * run (CPUID feature bits plus XGETBV's XCR0 for YMM / ZMM state on x86;
 * getauxval(AT_HWCAP) on aarch64), filled once. VIB3_ISA=scalar|avx2|avx512|neon
 * in the environment forces a variant (ignored with a warning on stderr if
 * the CPU cannot run it). vib3_simd_select() swaps the table for tests and
 * benchmarks.
 *
 * Every kernel has a scalar `_ref` twin with the same signature
 * (vib3_<kernel>_ref, declared below); the ISA files (simd/kernels_avx2.c,
 * kernels_avx512.c, kernels_neon.c) are tested against them (tests/simd/).
 *
 * Conventions, for every kernel below:
 *   - sizes are element counts (size_t); strides named *_stride are BYTES;
 *   - a weight matrix W of `rows x cols` in dtype T is row-major with row
 *     stride vib3_dtype_row_bytes(T, cols) (no padding);
 *   - quantized dtypes (Q4_0, Q8_0) need cols % 32 == 0 and take their
 *     activations pre-quantized to Q8_0 blocks (vib3_simd_x_is_q8(T) says
 *     which): x is then `cols / 32` vib3_block_q8_0 (use quantize_q8_0);
 *     F32 / F16 / BF16 weights take f32 activations;
 *   - pointers need no alignment; inputs and outputs do not overlap unless
 *     stated;
 *   - no kernel allocates; scratch is on the stack (bounded by the limits
 *     below) or passed in by the caller.
 *
 * Q4_K16 x Q8_0 (vib3_format.h): per 32-element chunk the exact integer sums
 * S_g = sum q*qx and T_g = sum qx over each 16-element group g, then
 * dx * (d * (sc0 S0 + sc1 S1) - dmin * (mn0 T0 + mn1 T1)) summed in f32.
 *
 * Numerics: Q4_0 x Q8_0 and Q8_0 x Q8_0 follow ggml's vec_dot_q4_0_q8_0:
 * per block an exact integer dot product times d_w * d_x, summed in f32; the
 * variants differ from _ref only in f32 summation order.
 */
#ifndef VIB3_SIMD_H
#define VIB3_SIMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "format/vib3_format.h"

/* largest K (neurons of one page) the page kernels accept; the single-token
 * page kernels keep K floats + K/32 Q8_0 blocks on the stack (~81 KiB max) */
#define VIB3_SIMD_PAGE_K_MAX 16384u

/* ---- function types ------------------------------------------------------ */

/* y[r] = W[r,:] · x  for r in [r0, r1).
 * w: (rows, cols) dtype T;  x: (cols) f32, or (cols/32) q8_0 blocks;
 * y: (rows) f32 — indexed by absolute row, only [r0, r1) is written. */
typedef void (*vib3_matvec_fn)(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1);

/* Y[b][r] = W[r,:] · X[b,:]  for b < n_b, r in [r0, r1)   (prefill, n_b <= 512 typical).
 * w: (rows, cols) dtype T;  X row b at (const char *)x + b * x_stride, each row
 * (cols) f32 or (cols/32) q8_0 blocks;  Y row b at y + b * y_ld (floats; y_ld >= rows). */
typedef void (*vib3_matmul_fn)(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b,
                               float *y, size_t y_ld, size_t r0, size_t r1);

/* y[0:n) = dequantized x.  x: n elements of dtype T (n % 32 == 0 for Q4_0 / Q8_0). */
typedef void (*vib3_dequant_fn)(const void *x, float *y, size_t n);

/* Page kernels. A page of dtype T holds, back to back (vib3_format.h):
 *   gate (k, hidden) | up (k, hidden) | down (hidden, k)
 * x: the token's activations (hidden), f32 or (hidden/32) q8_0 blocks per T.
 * k <= VIB3_SIMD_PAGE_K_MAX; for Q4_0 / Q8_0 hidden % 32 == 0 and k % 32 == 0. */

/* act[j] = silu(gate[j,:]·x) * (up[j,:]·x),  act: (k) f32 */
typedef void (*vib3_page_act_fn)(const void *page, size_t hidden, size_t k, const void *x, float *act);
/* out[0:hidden) += scale * down · act,  act: (k) f32 (quantized to Q8_0 inside for Q4_0 / Q8_0) */
typedef void (*vib3_page_down_fn)(const void *page, size_t hidden, size_t k, const float *act, float scale,
                                  float *out);
/* out[0:hidden) += scale * down · (silu(gate·x) * (up·x))  — page_act then page_down */
typedef void (*vib3_page_ffn_fn)(const void *page, size_t hidden, size_t k, const void *x, float scale,
                                 float *out);
/* The same for n_tok tokens routed to this page's expert, streaming the page
 * once: token t reads x at (const char *)x + t * x_stride, adds
 * scales[t] * FFN(x_t) into out + t * out_ld (floats).
 * scratch: vib3_simd_page_batch_scratch_bytes(n_tok, k) bytes, 64-aligned. */
typedef void (*vib3_page_ffn_batch_fn)(const void *page, size_t hidden, size_t k, const void *x, size_t x_stride,
                                       size_t n_tok, const float *scales, float *out, size_t out_ld, void *scratch);

/* ---- the function table -------------------------------------------------- */
typedef struct vib3_simd_ops {
    const char *name;  /* "scalar", "avx2", "avx512", "neon" */

    /* conversions (n elements) */
    void (*f16_to_f32)(const uint16_t *x, float *y, size_t n);
    void (*f32_to_f16)(const float *x, uint16_t *y, size_t n);   /* round to nearest even */
    void (*bf16_to_f32)(const uint16_t *x, float *y, size_t n);
    /* x: (n) f32 -> y: (n/32) q8_0 blocks, n % 32 == 0; d = max|x|/127, q = round(x/d) (ggml) */
    void (*quantize_q8_0)(const float *x, vib3_block_q8_0 *y, size_t n);

    /* indexed by vib3_dtype (F32, F16, BF16, Q8_0, Q4_0) */
    vib3_dequant_fn dequant[VIB3_DTYPE_COUNT_];
    vib3_matvec_fn matvec[VIB3_DTYPE_COUNT_];
    vib3_matmul_fn matmul[VIB3_DTYPE_COUNT_];
    vib3_page_act_fn page_act[VIB3_DTYPE_COUNT_];
    vib3_page_down_fn page_down[VIB3_DTYPE_COUNT_];
    vib3_page_ffn_fn page_ffn[VIB3_DTYPE_COUNT_];
    vib3_page_ffn_batch_fn page_ffn_batch[VIB3_DTYPE_COUNT_];

    /* y = x / sqrt(mean(x^2) + eps) * w;  x, y, w: (n); w NULL = 1; y may equal x */
    void (*rmsnorm)(float *y, const float *x, const float *w, size_t n, float eps);
    /* x: (n_heads, head_dim), rotated in place over the first rope_dim dims of each head.
     * cos, sin: (rope_dim/2) for this position (a row of vib3_rope_table()).
     * interleaved: pairs (2i, 2i+1) (GGUF order); else HF rotate-half pairs (i, i + rope_dim/2). */
    void (*rope)(float *x, size_t n_heads, size_t head_dim, size_t rope_dim, const float *cos, const float *sin,
                 bool interleaved);
    void (*softmax)(float *x, size_t n);                                  /* in place; n >= 1 */
    void (*silu)(float *x, size_t n);                                     /* x * sigmoid(x), in place */
    void (*swiglu)(float *out, const float *g, const float *u, size_t n); /* silu(g) * u; out may alias g or u */
    /* the k largest of x (n) in descending order (ties: lower index first); k <= n.
     * idx: (k), val: (k) (val may be NULL) */
    void (*topk)(const float *x, size_t n, size_t k, uint32_t *idx, float *val);

    float (*dot_f32)(const float *a, const float *b, size_t n);
    void (*axpy)(float *y, float a, const float *x, size_t n);               /* y += a * x */
    void (*scale)(float *x, float a, size_t n);                              /* x *= a */
    void (*add)(float *out, const float *a, const float *b, size_t n);      /* out = a + b; may alias */

    /* attention over a KV cache: row t of K / V at (const char *)k + t * stride (bytes), t < n,
     * each row (dim) f32 or f16.
     * scores: s[t] = scale * q · K[t]          q: (dim), s: (n)
     * values: out[0:dim) += sum_t p[t] * V[t]  p: (n)                           */
    void (*attn_scores_f32)(const float *q, const float *k, size_t stride, size_t dim, size_t n, float scale,
                            float *s);
    void (*attn_scores_f16)(const float *q, const uint16_t *k, size_t stride, size_t dim, size_t n, float scale,
                            float *s);
    void (*attn_values_f32)(const float *p, const float *v, size_t stride, size_t dim, size_t n, float *out);
    void (*attn_values_f16)(const float *p, const uint16_t *v, size_t stride, size_t dim, size_t n, float *out);

    /* benchmark helpers (vib3 bench kernels, vib3 hw) */
    float (*sum_f32)(const float *x, size_t n);   /* plain vectorised f32 sum */
    /* wrapping u32 sum: the DRAM read-bandwidth probe (integer adds: no denormal or NaN
     * slow paths whatever bytes the buffer holds) */
    uint32_t (*sum_u32)(const uint32_t *x, size_t n);
    /* a register-only loop of the variant's int8 dot-product instruction (vpdpbusd, vpmaddubsw,
     * sdot): returns the int8 multiply-adds done (iters * per-iteration MACs) */
    uint64_t (*int8_mac_loop)(uint64_t iters);
} vib3_simd_ops;

/* ---- dispatch -------------------------------------------------------------- */
/* CPU features, detected once (OS support included) */
enum {
    VIB3_CPU_SSE42 = 1u << 0,
    VIB3_CPU_AVX = 1u << 1,      /* CPUID + OSXSAVE + XCR0 SSE|YMM */
    VIB3_CPU_AVX2 = 1u << 2,
    VIB3_CPU_FMA = 1u << 3,
    VIB3_CPU_F16C = 1u << 4,
    VIB3_CPU_AVX512F = 1u << 5,  /* CPUID + XCR0 opmask|ZMM_Hi256|Hi16_ZMM */
    VIB3_CPU_AVX512BW = 1u << 6,
    VIB3_CPU_AVX512VL = 1u << 7,
    VIB3_CPU_AVX512DQ = 1u << 8,
    VIB3_CPU_AVX512VNNI = 1u << 9,
    VIB3_CPU_AVX512BF16 = 1u << 10,
    VIB3_CPU_AVXVNNI = 1u << 11,
    VIB3_CPU_NEON = 1u << 16,
    VIB3_CPU_DOTPROD = 1u << 17,
    VIB3_CPU_FP16 = 1u << 18,
    VIB3_CPU_SVE = 1u << 19,
    VIB3_CPU_AVX512_CPUID_ONLY = 1u << 30, /* CPUID says AVX-512 but the OS does not save ZMM state */
};
uint32_t vib3_simd_cpu_features(void);
/* names of the set bits, space separated, into buf; returns buf */
const char *vib3_simd_cpu_features_str(uint32_t features, char *buf, size_t cap);

/* the table in use (first call detects and honours VIB3_ISA); never NULL */
const vib3_simd_ops *vib3_simd(void);
/* force a variant ("scalar", "avx2", "avx512", "neon", or "auto"); VIB3_ERR_UNSUPPORTED
 * when this build or CPU cannot run it (the table is left unchanged). Not thread-safe:
 * call before worker threads use the table. */
vib3_err vib3_simd_select(const char *isa);
/* the table for one variant, or NULL when this build / CPU cannot run it */
const vib3_simd_ops *vib3_simd_variant(const char *isa);
/* the best variant this CPU supports, ignoring VIB3_ISA */
const char *vib3_simd_best_name(void);
/* the scalar reference table */
const vib3_simd_ops *vib3_simd_ref(void);
/* the start-up check every variant passes before dispatch uses it: quantize, Q4_0 / Q8_0
 * mat-vec and mat-mul and dot_f32 against the reference on a small fixed input */
bool vib3_simd_self_check(const vib3_simd_ops *ops);

/* true when matvec/matmul/page kernels of dtype t take Q8_0 activations */
static inline bool vib3_simd_x_is_q8(vib3_dtype t) {
    return t == VIB3_DTYPE_Q4_0 || t == VIB3_DTYPE_Q8_0 || t == VIB3_DTYPE_Q4_K16;
}
/* bytes of one activation row of n elements for dtype t's kernels */
static inline size_t vib3_simd_x_row_bytes(vib3_dtype t, size_t n) {
    return vib3_simd_x_is_q8(t) ? n / VIB3_QBLOCK * sizeof(vib3_block_q8_0) : n * sizeof(float);
}
/* page_ffn_batch computes down in chunks of max(k, VIB3_SIMD_PAGE_DOWN_ROWS) output rows
 * (small pages: K = 32 would otherwise mean hidden / 32 mat-mul calls per page) */
#define VIB3_SIMD_PAGE_DOWN_ROWS 256u
static inline size_t vib3_simd_page_down_rows(size_t k) { return k > VIB3_SIMD_PAGE_DOWN_ROWS ? k : VIB3_SIMD_PAGE_DOWN_ROWS; }
/* scratch for page_ffn_batch: act (n_tok, k) f32 + up / down chunk (n_tok, page_down_rows(k)) f32
 * + q8 act (n_tok, k/32) */
static inline size_t vib3_simd_page_batch_scratch_bytes(size_t n_tok, size_t k) {
    size_t f = (n_tok * (k + vib3_simd_page_down_rows(k)) * sizeof(float) + 63) & ~(size_t)63;
    return f + ((n_tok * (k / VIB3_QBLOCK + 1) * sizeof(vib3_block_q8_0) + 63) & ~(size_t)63);
}

/* ---- scalar helpers -------------------------------------------------------- */
static inline float vib3_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);          /* inf / nan */
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (man << 13); /* normal */
    else if (man == 0) bits = sign;                                     /* zero */
    else {                                                              /* subnormal */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    union { uint32_t u; float f; } v = {bits};
    return v.f;
}
uint16_t vib3_f32_to_f16(float f); /* round to nearest even; overflow -> inf; nan kept */
static inline float vib3_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
uint16_t vib3_f32_to_bf16(float f); /* round to nearest even */

/* ---- RoPE tables (once per model, not per token) ---------------------------- */
/* inv_freq (rope_dim/2) and the attention factor that multiplies cos and sin, following
 * HF transformers' _compute_{default,linear_scaling,yarn,llama3}_parameters for
 * c->rope_scaling (base c->rope_theta, dim c->rope_dim (or head_dim if 0), factor
 * c->rope_factor, c->rope_orig_max_position, yarn_beta_fast/slow (32/1 if 0),
 * yarn_mscale / yarn_mscale_all_dim, llama3 low/high freq factors).
 * Errors name the field and value (factor <= 0, odd rope_dim, ...). */
vib3_err vib3_rope_inv_freq(const vib3_model_config *c, float *inv_freq, float *attn_factor);
/* cos, sin: (n_pos, half): row p = position pos0 + p; cos = cos(pos * inv_freq[i]) * attn_factor */
void vib3_rope_table(const float *inv_freq, size_t half, float attn_factor, size_t pos0, size_t n_pos, float *cos,
                     float *sin);

/* ---- the scalar reference kernels ------------------------------------------ */
void vib3_f16_to_f32_ref(const uint16_t *x, float *y, size_t n);
void vib3_f32_to_f16_ref(const float *x, uint16_t *y, size_t n);
void vib3_bf16_to_f32_ref(const uint16_t *x, float *y, size_t n);
void vib3_quantize_q8_0_ref(const float *x, vib3_block_q8_0 *y, size_t n);
void vib3_dequant_f32_ref(const void *x, float *y, size_t n);
void vib3_dequant_f16_ref(const void *x, float *y, size_t n);
void vib3_dequant_bf16_ref(const void *x, float *y, size_t n);
void vib3_dequant_q8_0_ref(const void *x, float *y, size_t n);
void vib3_dequant_q4_0_ref(const void *x, float *y, size_t n);
void vib3_dequant_q4_k16_ref(const void *x, float *y, size_t n); /* one row of n elements */
#define VIB3_SIMD_DECL_DTYPE_(suffix, isa)                                                                     \
    void vib3_matvec_##suffix##_##isa(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1); \
    void vib3_matmul_##suffix##_##isa(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b,    \
                                      float *y, size_t y_ld, size_t r0, size_t r1);                              \
    void vib3_page_act_##suffix##_##isa(const void *page, size_t hidden, size_t k, const void *x, float *act);   \
    void vib3_page_down_##suffix##_##isa(const void *page, size_t hidden, size_t k, const float *act,            \
                                         float scale, float *out);                                              \
    void vib3_page_ffn_##suffix##_##isa(const void *page, size_t hidden, size_t k, const void *x, float scale,   \
                                        float *out);                                                            \
    void vib3_page_ffn_batch_##suffix##_##isa(const void *page, size_t hidden, size_t k, const void *x,          \
                                              size_t x_stride, size_t n_tok, const float *scales, float *out,   \
                                              size_t out_ld, void *scratch);
VIB3_SIMD_DECL_DTYPE_(f32, ref)
VIB3_SIMD_DECL_DTYPE_(f16, ref)
VIB3_SIMD_DECL_DTYPE_(bf16, ref)
VIB3_SIMD_DECL_DTYPE_(q8_0, ref)
VIB3_SIMD_DECL_DTYPE_(q4_0, ref)
VIB3_SIMD_DECL_DTYPE_(q4_k16, ref)
void vib3_rmsnorm_ref(float *y, const float *x, const float *w, size_t n, float eps);
void vib3_rope_ref(float *x, size_t n_heads, size_t head_dim, size_t rope_dim, const float *cos, const float *sin,
                   bool interleaved);
void vib3_softmax_ref(float *x, size_t n);
void vib3_silu_ref(float *x, size_t n);
void vib3_swiglu_ref(float *out, const float *g, const float *u, size_t n);
void vib3_topk_ref(const float *x, size_t n, size_t k, uint32_t *idx, float *val);
float vib3_dot_f32_ref(const float *a, const float *b, size_t n);
void vib3_axpy_ref(float *y, float a, const float *x, size_t n);
void vib3_scale_ref(float *x, float a, size_t n);
void vib3_add_ref(float *out, const float *a, const float *b, size_t n);
void vib3_attn_scores_f32_ref(const float *q, const float *k, size_t stride, size_t dim, size_t n, float scale,
                              float *s);
void vib3_attn_scores_f16_ref(const float *q, const uint16_t *k, size_t stride, size_t dim, size_t n, float scale,
                              float *s);
void vib3_attn_values_f32_ref(const float *p, const float *v, size_t stride, size_t dim, size_t n, float *out);
void vib3_attn_values_f16_ref(const float *p, const uint16_t *v, size_t stride, size_t dim, size_t n, float *out);
float vib3_sum_f32_ref(const float *x, size_t n);
uint32_t vib3_sum_u32_ref(const uint32_t *x, size_t n);
uint64_t vib3_int8_mac_loop_ref(uint64_t iters);

#endif
