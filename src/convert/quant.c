/* quant.c — numeric conversions, source-dtype decoding and ggml-compatible
 * quantizers for the converter.
 *
 * Quantizers follow ggml's reference rounding exactly (quantize_row_q4_0_ref,
 * quantize_row_q8_0_ref), so a block written here is bit-identical to the one
 * llama.cpp's quantize tool would write for the same F32 input:
 *   Q4_0: d = m / -8 where m is the signed value of largest magnitude,
 *         q = min(15, (int)(x / d + 8.5))  (error <= |d| / 2 per element,
 *         except the clamped extreme which is exact);
 *   Q8_0: d = amax / 127, q = round(x / d)  (error <= d / 2).
 * K-quant decoders (Q4_K, Q6_K) and Q5_0 / Q4_1 follow the GGUF block layouts.
 */
#include <math.h>
#include <string.h>

#include "convert/cvt.h"

/* ---- half / bfloat16 / fp8 ---------------------------------------------- */
float vib3_cvt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3FFu) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | man << 13;
    } else {
        bits = sign | (exp + 112u) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t vib3_cvt_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7FFFFFFFu;
    if (absx > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);     /* NaN */
    if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);    /* overflow (rounds to inf) */
    if (absx < 0x38800000u) {                                       /* subnormal or zero in f16 */
        if (absx < 0x33000000u) return (uint16_t)sign;              /* < 2^-25: rounds to 0 */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126u - e;                                  /* 14 + (112 - e) + 1 - 1 */
        uint32_t half_m = m >> (shift - 0);
        /* value = m * 2^(e-150); f16 subnormal unit 2^-24: q = m >> (126 - e) */
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half_m & 1))) half_m++;
        return (uint16_t)(sign | half_m);
    }
    uint32_t r = absx + 0xC8000FFFu + ((absx >> 13) & 1); /* rebias (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (r >> 13));
}

float vib3_cvt_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t vib3_cvt_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* E4M3 "fn": bias 7, no infinities, S.1111.111 is NaN */
float vib3_cvt_fp8_e4m3_to_f32(uint8_t v) {
    float sign = (v & 0x80) ? -1.0f : 1.0f;
    uint32_t exp = (v >> 3) & 0xFu, man = v & 7u;
    if (exp == 15 && man == 7) return NAN;
    if (exp == 0) return sign * ldexpf((float)man, -9); /* man/8 * 2^-6 */
    return sign * ldexpf(1.0f + (float)man / 8.0f, (int)exp - 7);
}

float vib3_cvt_fp8_e5m2_to_f32(uint8_t v) { return vib3_cvt_f16_to_f32((uint16_t)((uint16_t)v << 8)); }

/* ---- source dtypes ------------------------------------------------------ */
static const struct {
    const char *name;
    uint32_t block, block_bytes;
    bool is_float;
} sdt[VIB3_S_COUNT_] = {
    [VIB3_S_F32] = {"F32", 1, 4, true},        [VIB3_S_F16] = {"F16", 1, 2, true},
    [VIB3_S_BF16] = {"BF16", 1, 2, true},      [VIB3_S_F64] = {"F64", 1, 8, true},
    [VIB3_S_F8_E4M3] = {"F8_E4M3", 1, 1, true}, [VIB3_S_F8_E5M2] = {"F8_E5M2", 1, 1, true},
    [VIB3_S_I8] = {"I8", 1, 1, false},         [VIB3_S_U8] = {"U8", 1, 1, false},
    [VIB3_S_I16] = {"I16", 1, 2, false},       [VIB3_S_I32] = {"I32", 1, 4, false},
    [VIB3_S_I64] = {"I64", 1, 8, false},       [VIB3_S_BOOL] = {"BOOL", 1, 1, false},
    [VIB3_S_Q4_0] = {"Q4_0", 32, 18, true},    [VIB3_S_Q8_0] = {"Q8_0", 32, 34, true},
    [VIB3_S_Q4_K] = {"Q4_K", 256, 144, true},  [VIB3_S_Q6_K] = {"Q6_K", 256, 210, true},
    [VIB3_S_Q5_0] = {"Q5_0", 32, 22, true},    [VIB3_S_Q4_1] = {"Q4_1", 32, 20, true},
    [VIB3_S_Q5_1] = {"Q5_1", 32, 24, true},    [VIB3_S_Q5_K] = {"Q5_K", 256, 176, true},
};

const char *vib3_sdtype_name(uint32_t t) { return t < VIB3_S_COUNT_ ? sdt[t].name : "?"; }
uint32_t vib3_sdtype_block(uint32_t t) { return t < VIB3_S_COUNT_ ? sdt[t].block : 0; }
uint32_t vib3_sdtype_block_bytes(uint32_t t) { return t < VIB3_S_COUNT_ ? sdt[t].block_bytes : 0; }
bool vib3_sdtype_is_float(uint32_t t) { return t < VIB3_S_COUNT_ && sdt[t].is_float; }

uint64_t vib3_sdtype_bytes(uint32_t t, uint64_t n) {
    if (t >= VIB3_S_COUNT_) return 0;
    uint64_t b = sdt[t].block;
    if (n % b) return 0;
    uint64_t blocks = n / b;
    if (blocks > UINT64_MAX / sdt[t].block_bytes) return 0;
    return blocks * sdt[t].block_bytes;
}

static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void decode_q4_k(const uint8_t *b, float *y) {
    float d = vib3_cvt_f16_to_f32(ld16(b)), dmin = vib3_cvt_f16_to_f32(ld16(b + 2));
    const uint8_t *scales = b + 4, *q = b + 16;
    int is = 0;
    for (int j = 0; j < 256; j += 64) {
        uint8_t sc, m;
        get_scale_min_k4(is, scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        get_scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        q += 32;
        is += 2;
    }
}

static void decode_q5_k(const uint8_t *b, float *y) {
    float d = vib3_cvt_f16_to_f32(ld16(b)), dmin = vib3_cvt_f16_to_f32(ld16(b + 2));
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
        uint8_t sc, m;
        get_scale_min_k4(is, scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        get_scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        ql += 32;
        is += 2;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

static void decode_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = vib3_cvt_f16_to_f32(ld16(b + 208));
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

void vib3_sdtype_decode(uint32_t t, const uint8_t *p, uint64_t n, float *out) {
    switch (t) {
    case VIB3_S_F32: memcpy(out, p, n * 4); break;
    case VIB3_S_F16:
        for (uint64_t i = 0; i < n; i++) out[i] = vib3_cvt_f16_to_f32(ld16(p + 2 * i));
        break;
    case VIB3_S_BF16:
        for (uint64_t i = 0; i < n; i++) out[i] = vib3_cvt_bf16_to_f32(ld16(p + 2 * i));
        break;
    case VIB3_S_F64:
        for (uint64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        break;
    case VIB3_S_F8_E4M3:
        for (uint64_t i = 0; i < n; i++) out[i] = vib3_cvt_fp8_e4m3_to_f32(p[i]);
        break;
    case VIB3_S_F8_E5M2:
        for (uint64_t i = 0; i < n; i++) out[i] = vib3_cvt_fp8_e5m2_to_f32(p[i]);
        break;
    case VIB3_S_I8:
        for (uint64_t i = 0; i < n; i++) out[i] = (float)(int8_t)p[i];
        break;
    case VIB3_S_U8:
    case VIB3_S_BOOL:
        for (uint64_t i = 0; i < n; i++) out[i] = (float)p[i];
        break;
    case VIB3_S_I16:
        for (uint64_t i = 0; i < n; i++) out[i] = (float)(int16_t)ld16(p + 2 * i);
        break;
    case VIB3_S_I32:
        for (uint64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            out[i] = (float)v;
        }
        break;
    case VIB3_S_I64:
        for (uint64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            out[i] = (float)v;
        }
        break;
    case VIB3_S_Q4_0: vib3_dequantize_q4_0((const vib3_block_q4_0 *)(const void *)p, n, out); break;
    case VIB3_S_Q8_0: vib3_dequantize_q8_0((const vib3_block_q8_0 *)(const void *)p, n, out); break;
    case VIB3_S_Q4_K:
        for (uint64_t b = 0; b < n / 256; b++) decode_q4_k(p + b * 144, out + b * 256);
        break;
    case VIB3_S_Q6_K:
        for (uint64_t b = 0; b < n / 256; b++) decode_q6_k(p + b * 210, out + b * 256);
        break;
    case VIB3_S_Q5_0:
        for (uint64_t b = 0; b < n / 32; b++) {
            const uint8_t *q = p + b * 22;
            float d = vib3_cvt_f16_to_f32(ld16(q));
            uint32_t qh;
            memcpy(&qh, q + 2, 4);
            for (int j = 0; j < 16; j++) {
                int xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
                out[b * 32 + j] = d * (float)(((q[6 + j] & 0xF) | xh0) - 16);
                out[b * 32 + j + 16] = d * (float)(((q[6 + j] >> 4) | xh1) - 16);
            }
        }
        break;
    case VIB3_S_Q5_K:
        for (uint64_t b = 0; b < n / 256; b++) decode_q5_k(p + b * 176, out + b * 256);
        break;
    case VIB3_S_Q5_1:
        for (uint64_t b = 0; b < n / 32; b++) {
            const uint8_t *q = p + b * 24;
            float d = vib3_cvt_f16_to_f32(ld16(q)), m = vib3_cvt_f16_to_f32(ld16(q + 2));
            uint32_t qh;
            memcpy(&qh, q + 4, 4);
            for (int j = 0; j < 16; j++) {
                int xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
                out[b * 32 + j] = d * (float)((q[8 + j] & 0xF) | xh0) + m;
                out[b * 32 + j + 16] = d * (float)((q[8 + j] >> 4) | xh1) + m;
            }
        }
        break;
    case VIB3_S_Q4_1:
        for (uint64_t b = 0; b < n / 32; b++) {
            const uint8_t *q = p + b * 20;
            float d = vib3_cvt_f16_to_f32(ld16(q)), m = vib3_cvt_f16_to_f32(ld16(q + 2));
            for (int j = 0; j < 16; j++) {
                out[b * 32 + j] = d * (float)(q[4 + j] & 0xF) + m;
                out[b * 32 + j + 16] = d * (float)(q[4 + j] >> 4) + m;
            }
        }
        break;
    default:
        for (uint64_t i = 0; i < n; i++) out[i] = 0;
        break;
    }
}

/* ---- ggml quantizers ---------------------------------------------------- */
void vib3_quantize_q4_0(const float *x, uint64_t n, vib3_block_q4_0 *out) {
    for (uint64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d ? 1.0f / d : 0.0f;
        out[b].d = vib3_cvt_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            float x0 = x[j] * id, x1 = x[j + 16] * id;
            int q0 = (int)(int8_t)(x0 + 8.5f), q1 = (int)(int8_t)(x1 + 8.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            out[b].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Q4_0 with a least-squares scale per block (same format and kernels as
 * ggml's Q4_0): candidates d = m / s for the signed extreme m and
 * s in {-8.5, -7.5, -7}, the best refined once by
 * d = sum(x q) / sum(q q) for its rounded q; the winner is re-evaluated
 * with d rounded to f16 as stored and kept only when its error beats
 * ggml's own block (s = -8), so no block is worse than llama.cpp's Q4_0.
 * About 3x the reference quantizer's cost. */
static float q4_eval(const float *x, const float *w, float d, uint8_t *q) {
    float id = d ? 1.0f / d : 0.0f, sse = 0;
    for (int j = 0; j < 32; j++) {
        float t = x[j] * id + 8.5f;
        int v = t <= 0 ? 0 : (int)t;
        if (v > 15) v = 15;
        q[j] = (uint8_t)v;
        float e = x[j] - d * (float)(v - 8);
        sse += (w ? w[j] : 1.0f) * e * e;
    }
    return sse;
}

void vib3_quantize_q4_0_best(const float *x, uint64_t n, vib3_block_q4_0 *out) {
    vib3_quantize_q4_0_weighted(x, NULL, n, out);
}

/* w: per-element importance (e.g. E[x_c^2] of the inputs the row multiplies, llama.cpp's imatrix
 * idea); the search minimises sum w (x - x^)^2 over the same candidates */
void vib3_quantize_q4_0_weighted(const float *x, const float *wts, uint64_t n, vib3_block_q4_0 *out) {
    static const float cand[3] = {-8.5f, -7.5f, -7.0f};
    for (uint64_t b = 0; b < n / 32; b++, x += 32) {
        const float *w = wts ? wts + b * 32 : NULL;
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        vib3_quantize_q4_0(x, 32, &out[b]); /* ggml's block: the baseline */
        if (amax == 0) continue;
        uint8_t q[32], bq[32];
        float dref = vib3_cvt_f16_to_f32(out[b].d), base = 0;
        for (int j = 0; j < 16; j++) {
            float a = x[j] - dref * (float)((out[b].qs[j] & 0xF) - 8),
                  c = x[j + 16] - dref * (float)((out[b].qs[j] >> 4) - 8);
            base += (w ? w[j] : 1.0f) * a * a + (w ? w[j + 16] : 1.0f) * c * c;
        }
        float best = 1e30f, bestd = 0;
        for (int k = 0; k < 3; k++) {
            float d = max / cand[k], sse = q4_eval(x, w, d, q);
            if (sse < best) {
                best = sse;
                bestd = d;
                memcpy(bq, q, 32);
            }
        }
        double sxq = 0, sqq = 0;
        for (int j = 0; j < 32; j++) {
            double wj = w ? w[j] : 1.0;
            sxq += wj * x[j] * (bq[j] - 8);
            sqq += wj * (bq[j] - 8) * (bq[j] - 8);
        }
        if (sqq > 0 && q4_eval(x, w, (float)(sxq / sqq), q) < best) bestd = (float)(sxq / sqq);
        float d16 = vib3_cvt_f16_to_f32(vib3_cvt_f32_to_f16(bestd));
        if (q4_eval(x, w, d16, q) < base) {
            out[b].d = vib3_cvt_f32_to_f16(d16);
            for (int j = 0; j < 16; j++) out[b].qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
        }
    }
}

void vib3_quantize_q8_0(const float *x, uint64_t n, vib3_block_q8_0 *out) {
    for (uint64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) amax = fabsf(x[j]);
        float d = amax / 127.0f;
        float id = d ? 1.0f / d : 0.0f;
        out[b].d = vib3_cvt_f32_to_f16(d);
        for (int j = 0; j < 32; j++) out[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void vib3_dequantize_q4_0(const vib3_block_q4_0 *b, uint64_t n, float *out) {
    for (uint64_t i = 0; i < n / 32; i++, out += 32) {
        float d = vib3_cvt_f16_to_f32(b[i].d);
        for (int j = 0; j < 16; j++) {
            out[j] = d * (float)((b[i].qs[j] & 0xF) - 8);
            out[j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

void vib3_dequantize_q8_0(const vib3_block_q8_0 *b, uint64_t n, float *out) {
    for (uint64_t i = 0; i < n / 32; i++, out += 32) {
        float d = vib3_cvt_f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++) out[j] = d * (float)b[i].qs[j];
    }
}

/* ---- Q4_K16 (vib3_format.h) -------------------------------------------------
 * Per 16-element group an asymmetric fit x ~ d q + m (q in 0..15, m <= 0 so
 * it is stored as -dmin * mn): the ranges (max - min) / (15 + {-0.5, 0, 0.5})
 * each refined twice by weighted least squares of (d, m) for its rounded q. Per super-block
 * D = max d / 63 and M = max -m / 63 (f16), then each group's 6-bit sc, mn is
 * the rounded ratio or a neighbour (3 x 3 candidates), whichever has the least
 * (weighted) error with q re-rounded; then (D, M) once more by least squares
 * for the chosen codes. ~6x the time of the Q4_0 scale search.
 * w: per-element importance or NULL. */
static inline float wt(const float *w, int j) { return w ? w[j] : 1.0f; }

static float k16_err(const float *x, const float *w, float d, float m, uint8_t *q) {
    float id = d > 0 ? 1.0f / d : 0.0f, sse = 0;
    for (int j = 0; j < 16; j++) {
        float t = (x[j] - m) * id + 0.5f; /* round half up: lrintf costs more than the rest */
        int v = t > 0 ? (int)t : 0;
        v = v > 15 ? 15 : v;
        if (q) q[j] = (uint8_t)v;
        float e = x[j] - (d * (float)v + m);
        sse += wt(w, j) * e * e;
    }
    return sse;
}

static void k16_fit(const float *x, const float *w, float *od, float *om) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 16; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    if (lo > 0) lo = 0; /* m <= 0: all-positive groups start at 0 */
    if (hi <= lo) {
        *od = 0;
        *om = lo;
        return;
    }
    float bd = (hi - lo) / 15.0f, bm = lo, best = k16_err(x, w, bd, bm, NULL);
    /* three starting ranges refined twice: a wider search (9 ranges x 3 refinements, 2 super-scale
     * refits) measured the same KL on tinymix-brown (0.00136 vs 0.00131) at 2.2x the time */
    for (int k = -1; k <= 1; k++) {
        float d = (hi - lo) / (15.0f + 0.5f * (float)k), m = lo;
        for (int it = 0; it < 2; it++) {
            uint8_t q[16];
            float e = k16_err(x, w, d, m, q);
            if (e < best) best = e, bd = d, bm = m;
            double s1 = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
            for (int j = 0; j < 16; j++) {
                double ww = wt(w, j);
                s1 += ww, sq += ww * q[j], sqq += ww * q[j] * q[j], sx += ww * x[j], sxq += ww * x[j] * q[j];
            }
            double det = s1 * sqq - sq * sq;
            if (det <= 0) break;
            double nd = (s1 * sxq - sq * sx) / det, nm = (sqq * sx - sq * sxq) / det;
            if (nm > 0) { /* pin m at 0, refit d alone */
                nm = 0;
                nd = sqq > 0 ? sxq / sqq : 0;
            }
            if (!(nd > 0)) break;
            d = (float)nd, m = (float)nm;
        }
    }
    *od = bd;
    *om = bm;
}

/* codes of one super-block for given D, M: per group the best (sc, mn) among the rounded ratios
 * and their neighbours, with q re-rounded; returns the weighted error */
static float k16_codes(const float *xs, const float *ws, int ng, const float *ds, const float *ms, float D, float M,
                       int *sc, int *mn, uint8_t (*q)[16]) {
    float tot = 0;
    for (int g = 0; g < ng; g++) {
        const float *xg = xs + 16 * g, *wg = ws ? ws + 16 * g : NULL;
        int s = D > 0 ? (int)lrintf(fminf(ds[g] / D, 63.0f)) : 0, mm = M > 0 ? (int)lrintf(fminf(-ms[g] / M, 63.0f)) : 0;
        float best = INFINITY;
        sc[g] = 0, mn[g] = 0;
        memset(q[g], 0, 16);
        for (int a = s - 1; a <= s + 1; a++) {
            for (int b = mm - 1; b <= mm + 1; b++) {
                if (a < 0 || a > 63 || b < 0 || b > 63) continue;
                uint8_t qq[16];
                float e = k16_err(xg, wg, D * (float)a, -M * (float)b, qq);
                if (e < best) {
                    best = e, sc[g] = a, mn[g] = b;
                    memcpy(q[g], qq, 16);
                }
            }
        }
        tot += best;
    }
    return tot;
}

void vib3_quantize_q4_k16(const float *x, const float *w, uint64_t n, uint8_t *out) {
    for (uint64_t s0 = 0; s0 < n; s0 += VIB3_Q4K16_SUPER) {
        int ng = (int)((n - s0 < VIB3_Q4K16_SUPER ? n - s0 : VIB3_Q4K16_SUPER) / 16);
        const float *xs = x + s0, *ws = w ? w + s0 : NULL;
        float ds[16], ms[16], dmax = 0, mmax = 0;
        for (int g = 0; g < ng; g++) {
            k16_fit(xs + 16 * g, ws ? ws + 16 * g : NULL, &ds[g], &ms[g]);
            dmax = ds[g] > dmax ? ds[g] : dmax;
            mmax = -ms[g] > mmax ? -ms[g] : mmax;
        }
        uint16_t hd = vib3_cvt_f32_to_f16(dmax / 63.0f), hm = vib3_cvt_f32_to_f16(mmax / 63.0f);
        int sc[16], mn[16];
        uint8_t q[16][16];
        float err = k16_codes(xs, ws, ng, ds, ms, vib3_cvt_f16_to_f32(hd), vib3_cvt_f16_to_f32(hm), sc, mn, q);
        /* (D, M) by least squares for the chosen codes (x ~ D sc q - M mn is linear in them), codes again;
         * kept while the error drops */
        for (int it = 0; it < 1; it++) {
            double aa = 0, ab = 0, bb = 0, ax = 0, bx = 0;
            for (int g = 0; g < ng; g++)
                for (int j = 0; j < 16; j++) {
                    double ww = ws ? ws[16 * g + j] : 1.0, a = (double)sc[g] * q[g][j], b = -(double)mn[g],
                           xv = xs[16 * g + j];
                    aa += ww * a * a, ab += ww * a * b, bb += ww * b * b, ax += ww * a * xv, bx += ww * b * xv;
                }
            double det = aa * bb - ab * ab;
            if (!(det > 0)) break;
            double D = (bb * ax - ab * bx) / det, M = (aa * bx - ab * ax) / det;
            if (!(D > 0) || M < 0) break;
            uint16_t nd = vib3_cvt_f32_to_f16((float)D), nm = vib3_cvt_f32_to_f16((float)M);
            int sc2[16], mn2[16];
            uint8_t q2[16][16];
            float e2 = k16_codes(xs, ws, ng, ds, ms, vib3_cvt_f16_to_f32(nd), vib3_cvt_f16_to_f32(nm), sc2, mn2, q2);
            if (!(e2 < err)) break;
            err = e2, hd = nd, hm = nm;
            memcpy(sc, sc2, sizeof sc), memcpy(mn, mn2, sizeof mn), memcpy(q, q2, sizeof q);
        }
        out[0] = (uint8_t)hd, out[1] = (uint8_t)(hd >> 8), out[2] = (uint8_t)hm, out[3] = (uint8_t)(hm >> 8);
        out += VIB3_Q4K16_HEAD_BYTES;
        for (int c = 0; c < ng / 2; c++, out += VIB3_Q4K16_CHUNK_BYTES) {
            vib3_q4k16_pack(out, sc + 2 * c, mn + 2 * c);
            for (int j = 0; j < 16; j++) out[3 + j] = (uint8_t)(q[2 * c][j] | q[2 * c + 1][j] << 4);
        }
    }
}

void vib3_dequantize_q4_k16(const uint8_t *in, uint64_t n, float *out) {
    for (uint64_t s0 = 0; s0 < n; s0 += VIB3_Q4K16_SUPER) {
        int nc = (int)((n - s0 < VIB3_Q4K16_SUPER ? n - s0 : VIB3_Q4K16_SUPER) / 32);
        float D = vib3_cvt_f16_to_f32((uint16_t)(in[0] | in[1] << 8)), M = vib3_cvt_f16_to_f32((uint16_t)(in[2] | in[3] << 8));
        in += VIB3_Q4K16_HEAD_BYTES;
        for (int c = 0; c < nc; c++, in += VIB3_Q4K16_CHUNK_BYTES, out += 32) {
            int sc[2], mn[2];
            vib3_q4k16_unpack(in, sc, mn);
            for (int j = 0; j < 16; j++) {
                out[j] = D * (float)sc[0] * (float)(in[3 + j] & 15) - M * (float)mn[0];
                out[j + 16] = D * (float)sc[1] * (float)(in[3 + j] >> 4) - M * (float)mn[1];
            }
        }
    }
}

void vib3_encode_row(vib3_dtype t, const float *x, uint64_t n, void *out) {
    switch (t) {
    case VIB3_DTYPE_F32: memcpy(out, x, n * 4); break;
    case VIB3_DTYPE_F16:
        for (uint64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = vib3_cvt_f32_to_f16(x[i]);
        break;
    case VIB3_DTYPE_BF16:
        for (uint64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = vib3_cvt_f32_to_bf16(x[i]);
        break;
    case VIB3_DTYPE_Q8_0: vib3_quantize_q8_0(x, n, out); break;
    case VIB3_DTYPE_Q4_0: vib3_quantize_q4_0(x, n, out); break;
    case VIB3_DTYPE_Q4_K16: vib3_quantize_q4_k16(x, NULL, n, out); break;
    default: break;
    }
}

void vib3_encode_row_best(vib3_dtype t, const float *x, uint64_t n, void *out) {
    if (t == VIB3_DTYPE_Q4_0) vib3_quantize_q4_0_best(x, n, out);
    else vib3_encode_row(t, x, n, out);
}

void vib3_decode_row(vib3_dtype t, const void *in, uint64_t n, float *out) {
    switch (t) {
    case VIB3_DTYPE_F32: vib3_sdtype_decode(VIB3_S_F32, in, n, out); break;
    case VIB3_DTYPE_F16: vib3_sdtype_decode(VIB3_S_F16, in, n, out); break;
    case VIB3_DTYPE_BF16: vib3_sdtype_decode(VIB3_S_BF16, in, n, out); break;
    case VIB3_DTYPE_Q8_0: vib3_sdtype_decode(VIB3_S_Q8_0, in, n, out); break;
    case VIB3_DTYPE_Q4_0: vib3_sdtype_decode(VIB3_S_Q4_0, in, n, out); break;
    case VIB3_DTYPE_Q4_K16: vib3_dequantize_q4_k16(in, n, out); break;
    default: memset(out, 0, n * sizeof(float)); break;
    }
}
