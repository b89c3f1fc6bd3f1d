/* test_q4k16.c — the converter's Q4_K16 quantizer (src/convert/quant.c) against the
 * format (vib3_format.h) and the scalar kernels' dequantizer: round trips within a
 * measured error bound, exact codes survive, edge rows, importance weighting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convert/cvt.h"
#include "simd/simd.h"
#include "tests/test.h"

static uint64_t rng = 0x1234567;
static float gauss(void) { /* Box-Muller over a xorshift */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u1 = ((rng >> 11) + 1.0) / 9007199254740993.0;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u2 = (rng >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

static double rel_rms(const float *a, const float *b, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) e += (double)(a[i] - b[i]) * (a[i] - b[i]), s += (double)a[i] * a[i];
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* Gaussian rows: Q4_K16 loses clearly less than Q4_0 (ggml's and our least-squares one)
 * and the converter's decoder equals the kernels' reference dequantizer bit for bit */
TEST(q4k16_roundtrip_beats_q4_0) {
    static const size_t ns[] = {32, 96, 192, 256, 288, 4128};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t n = ns[t];
        float *x = malloc(n * 4), *y = malloc(n * 4), *y0 = malloc(n * 4), *yr = malloc(n * 4);
        uint8_t *q = malloc(vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, n));
        vib3_block_q4_0 *b = malloc(n / 32 * sizeof *b);
        for (size_t i = 0; i < n; i++) x[i] = 0.02f * gauss() + (i % 37 == 0 ? 0.1f : 0.0f);
        vib3_quantize_q4_k16(x, NULL, n, q);
        vib3_dequantize_q4_k16(q, n, y);
        vib3_dequant_q4_k16_ref(q, yr, n);
        CHECK(memcmp(y, yr, n * 4) == 0);
        vib3_quantize_q4_0_best(x, n, b);
        vib3_dequantize_q4_0(b, n, y0);
        double e = rel_rms(x, y, n), e0 = rel_rms(x, y0, n);
        /* measured: ~0.075 vs ~0.105 for Gaussian groups of 16 vs 32 */
        CHECK_MSG(e < 0.085 && e < 0.9 * e0, "n %zu: q4_k16 rel rms %.4f, q4_0 %.4f", n, e, e0);
        free(x), free(y), free(y0), free(yr), free(q), free(b);
    }
}

/* a row built from valid codes (f16-exact D, M; 6-bit sc, mn; 4-bit q) is reproduced */
TEST(q4k16_exact_codes_survive) {
    const size_t n = 288;
    float x[288], y[288];
    float D = vib3_f16_to_f32(vib3_f32_to_f16(0.001f)), M = vib3_f16_to_f32(vib3_f32_to_f16(0.002f));
    for (size_t g = 0; g < n / 16; g++) {
        int sc = 63 - (int)(g % 7), mn = 63 - (int)(g % 5); /* the group maxima set D, M: ratios hit exactly */
        for (size_t j = 0; j < 16; j++) {
            int qv = (int)((g * 7 + j * 5) % 16);
            if (j == 0) qv = 0;
            if (j == 1) qv = 15;
            x[g * 16 + j] = D * (float)sc * (float)qv - M * (float)mn;
        }
    }
    uint8_t q[512];
    vib3_quantize_q4_k16(x, NULL, n, q);
    vib3_dequantize_q4_k16(q, n, y);
    double e = rel_rms(x, y, n);
    CHECK_MSG(e < 2e-3, "rel rms %.6f", e);
}

/* zero rows, constant rows, all-positive groups, huge and tiny magnitudes */
TEST(q4k16_edge_rows) {
    float x[256], y[256];
    uint8_t q[160];
    memset(x, 0, sizeof x);
    vib3_quantize_q4_k16(x, NULL, 256, q);
    vib3_dequantize_q4_k16(q, 256, y);
    for (int i = 0; i < 256; i++) CHECK(y[i] == 0.0f);
    for (int i = 0; i < 256; i++) x[i] = 0.5f;             /* all positive, constant: m pinned at 0 */
    vib3_quantize_q4_k16(x, NULL, 256, q);
    vib3_dequantize_q4_k16(q, 256, y);
    CHECK(rel_rms(x, y, 256) < 0.05);
    for (int i = 0; i < 256; i++) x[i] = -0.25f;           /* all negative constant */
    vib3_quantize_q4_k16(x, NULL, 256, q);
    vib3_dequantize_q4_k16(q, 256, y);
    CHECK(rel_rms(x, y, 256) < 0.05);
    for (int i = 0; i < 256; i++) x[i] = (i % 16 < 8 ? 1.0f : 2.0f) * (float)(i % 5) * 1000.0f; /* positive, large */
    vib3_quantize_q4_k16(x, NULL, 256, q);
    vib3_dequantize_q4_k16(q, 256, y);
    CHECK(rel_rms(x, y, 256) < 0.1);
    /* super scales below f16's range (D ~ 1e-9) flush to 0, as ggml's Q4_K: finite and no larger */
    for (int i = 0; i < 256; i++) x[i] = 1e-6f * gauss();
    vib3_quantize_q4_k16(x, NULL, 256, q);
    vib3_dequantize_q4_k16(q, 256, y);
    for (int i = 0; i < 256; i++) CHECK(isfinite(y[i]) && fabsf(y[i]) <= 1e-5f);
}

/* importance weights move the error away from the important elements */
TEST(q4k16_importance_weights) {
    const size_t n = 256;
    float x[256], w[256], y[256], yw[256];
    uint8_t q[160];
    for (size_t i = 0; i < n; i++) x[i] = gauss(), w[i] = i % 16 == 3 ? 100.0f : 1.0f;
    vib3_quantize_q4_k16(x, NULL, n, q);
    vib3_dequantize_q4_k16(q, n, y);
    vib3_quantize_q4_k16(x, w, n, q);
    vib3_dequantize_q4_k16(q, n, yw);
    double e = 0, ew = 0;
    for (size_t i = 0; i < n; i++) e += w[i] * (x[i] - y[i]) * (x[i] - y[i]), ew += w[i] * (x[i] - yw[i]) * (x[i] - yw[i]);
    CHECK_MSG(ew < e, "weighted error %.5f, unweighted quantizer %.5f", ew, e);
}

/* row bytes: 4 per (possibly short) super-block + 19 per 32 elements; 0 when n % 32 */
TEST(q4k16_row_bytes) {
    CHECK_EQ_U64(vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, 256), 156);
    CHECK_EQ_U64(vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, 192), 118);
    CHECK_EQ_U64(vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, 32), 23);
    CHECK_EQ_U64(vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, 288), 8 + 171);
    CHECK_EQ_U64(vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, 4096), 16 * 156);
    CHECK_EQ_U64(vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, 48), 0);
    CHECK_STR(vib3_dtype_name(VIB3_DTYPE_Q4_K16), "q4_k16");
    CHECK_EQ_I64(vib3_dtype_from_name("q4_k16"), VIB3_DTYPE_Q4_K16);
}
