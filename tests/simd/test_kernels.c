/* test_kernels.c — every usable SIMD variant against the scalar _ref twins.
 *
 * Random inputs of odd sizes (odd row counts, odd block counts, odd float
 * lengths) at pointers that are element-aligned but not vector-aligned,
 * plus edge values: zero scales, all-0xFF nibbles, all-zero rows, large
 * magnitudes. Tolerances are explicit: conversions and quantization are
 * exact (Q8_0 quants may differ by 1 only where x/d sits on a rounding
 * tie), dot-product kernels within 2e-5 of the sum of |terms| (they differ
 * only in f32 summation order), exp-based kernels within 1e-5 relative.
 * Also built for aarch64 by tests/simd/test_neon.sh and run under qemu.
 */
#include <stdlib.h>
#include <string.h>

#include "simd/simd.h"
#include "tests/simd/kernel_fixture.h"
#include "tests/test.h"


static uint64_t rng = 0x5eed;
static float rf(void) { return vib3_test_randf(&rng); }
static uint32_t ru(uint32_t n) { return (uint32_t)(vib3_test_rand(&rng) % n); }

static int n_variants_tested;

/* ---- weights of each dtype ------------------------------------------------- */
typedef enum { EDGE_NONE, EDGE_ZERO_SCALE, EDGE_MAX_NIBBLE, EDGE_ZERO_ROWS, EDGE_LARGE, EDGE_COUNT } edge_kind;

static void fill_weights(vib3_dtype t, void *w, size_t rows, size_t cols, edge_kind edge) {
    size_t n = rows * cols;
    float mag = edge == EDGE_LARGE ? 3000.0f : 1.0f;
    switch (t) {
    case VIB3_DTYPE_F32:
        for (size_t i = 0; i < n; i++) ((float *)w)[i] = rf() * mag;
        break;
    case VIB3_DTYPE_F16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)w)[i] = vib3_f32_to_f16(rf() * mag);
        break;
    case VIB3_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)w)[i] = vib3_f32_to_bf16(rf() * mag);
        break;
    case VIB3_DTYPE_Q8_0: {
        vib3_block_q8_0 *b = w;
        for (size_t i = 0; i < n / 32; i++) {
            b[i].d = vib3_f32_to_f16(edge == EDGE_ZERO_SCALE && i % 3 == 0 ? 0.0f : (0.001f + 0.02f * (rf() + 1)) * mag);
            for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)(edge == EDGE_MAX_NIBBLE ? 127 : (int)ru(255) - 127);
        }
        break;
    }
    case VIB3_DTYPE_Q4_0: {
        vib3_block_q4_0 *b = w;
        for (size_t i = 0; i < n / 32; i++) {
            b[i].d = vib3_f32_to_f16(edge == EDGE_ZERO_SCALE && i % 3 == 0 ? 0.0f : (0.001f + 0.02f * (rf() + 1)) * mag);
            for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)(edge == EDGE_MAX_NIBBLE ? 0xFF : ru(256));
        }
        break;
    }
    default: break;
    }
    if (edge == EDGE_ZERO_ROWS) { /* every third row all zero (data and scales) */
        size_t rb = (size_t)vib3_dtype_row_bytes(t, cols);
        for (size_t r = 0; r < rows; r += 3) memset((char *)w + r * rb, 0, rb);
    }
}

static void fill_f32(float *x, size_t n, float mag) {
    for (size_t i = 0; i < n; i++) x[i] = rf() * mag;
}

/* sum_i |w_i * x_i| per row, from the reference dequantization: the scale of f32 rounding */
static double row_abs(vib3_dtype t, const void *wrow, const float *xf, size_t cols) {
    static float wd[8192];
    vib3_simd_ref()->dequant[t](wrow, wd, cols);
    double s = 0;
    for (size_t i = 0; i < cols; i++) s += fabs((double)wd[i] * xf[i]);
    return s;
}

/* ---- conversions ------------------------------------------------------------ */
TEST(f16_bf16_conversions_exact) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    enum { N = 1003 };
    static float x[N + 1], y0[N + 1], y1[N + 1];
    static uint16_t h[N + 1], h0[N + 1], h1[N + 1];
    const float edges[] = {0.0f, -0.0f, 65504.0f, 65520.0f, -70000.0f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 1e-9f, 1.0f / 3};
    for (size_t i = 0; i < N; i++) x[i] = i < 10 ? edges[i] : rf() * (i % 7 == 0 ? 60000.0f : 4.0f);
    for (size_t i = 0; i < N; i++) h[i] = (uint16_t)ru(65536) & 0x7bff; /* no inf / nan patterns */
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        ref->f32_to_f16(x + 1, h0 + 1, N - 1);
        o->f32_to_f16(x + 1, h1 + 1, N - 1);
        for (size_t i = 1; i < N; i++) CHECK_MSG(h0[i] == h1[i], "%s f32_to_f16(%g): %04x vs %04x", isas[v], x[i], h0[i], h1[i]);
        ref->f16_to_f32(h + 1, y0 + 1, N - 1);
        o->f16_to_f32(h + 1, y1 + 1, N - 1);
        CHECK_MSG(!memcmp(y0 + 1, y1 + 1, (N - 1) * sizeof(float)), "%s f16_to_f32 differs", isas[v]);
        ref->bf16_to_f32(h + 1, y0 + 1, N - 1);
        o->bf16_to_f32(h + 1, y1 + 1, N - 1);
        CHECK_MSG(!memcmp(y0 + 1, y1 + 1, (N - 1) * sizeof(float)), "%s bf16_to_f32 differs", isas[v]);
        n_variants_tested++;
    }
    /* scalar helpers: round-trip and rounding */
    CHECK_EQ_U64(vib3_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_U64(vib3_f32_to_f16(65520.0f), 0x7c00);
    CHECK_EQ_U64(vib3_f32_to_f16(2.98023224e-8f), 0x0000); /* 2^-25: tie to even -> 0 */
    CHECK_EQ_U64(vib3_f32_to_f16(5.96046448e-8f), 0x0001);
    CHECK_NEAR(vib3_f16_to_f32(0x0001), 5.96046448e-8, 1e-15);
    CHECK_EQ_U64(vib3_f32_to_bf16(1.00390625f), 0x3f80); /* tie to even */
    for (uint32_t v = 0; v < 0x7c00; v += 7) CHECK_EQ_U64(vib3_f32_to_f16(vib3_f16_to_f32((uint16_t)v)), v);
}

TEST(quantize_q8_0_matches_ref) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    enum { NB = 37, N = NB * 32 };
    static float x[N + 1];
    static vib3_block_q8_0 q0[NB], q1[NB];
    for (int edge = 0; edge < 4; edge++) {
        for (size_t i = 0; i < N; i++) x[i + 1] = rf() * (edge == 1 ? 5e4f : 1.0f);
        if (edge == 2) memset(x + 1, 0, 64 * sizeof(float));        /* zero blocks: d = 0, q = 0 */
        if (edge == 3)
            for (size_t i = 0; i < N; i++) x[i + 1] = (float)((int)i % 255 - 127) / 127.0f * 2.0f; /* ties */
        ref->quantize_q8_0(x + 1, q0, N);
        for (size_t v = 0; v < N_ISAS; v++) {
            const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
            if (!o) continue;
            memset(q1, 0x55, sizeof q1);
            o->quantize_q8_0(x + 1, q1, N);
            int worst = 0;
            for (int b = 0; b < NB; b++) {
                CHECK_MSG(q0[b].d == q1[b].d, "%s block %d d %04x vs %04x", isas[v], b, q0[b].d, q1[b].d);
                for (int j = 0; j < 32; j++) {
                    int dq = abs(q0[b].qs[j] - q1[b].qs[j]);
                    worst = dq > worst ? dq : worst;
                }
            }
            CHECK_MSG(worst == 0, "%s quantize edge %d: quant differs by %d", isas[v], edge, worst);
        }
    }
    /* the zero block really is zero */
    ref->quantize_q8_0(x + 1, q0, 32);
}

/* ---- dequant / mat-vec / mat-mul -------------------------------------------- */
static void check_matvec(vib3_dtype t, size_t rows, size_t cols, edge_kind edge) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    size_t rb = (size_t)vib3_dtype_row_bytes(t, cols);
    void *wb, *xb, *xqb;
    char *w = buf_at(rows * rb, t == VIB3_DTYPE_F32 ? 4 : 2, &wb);
    float *xf = buf_at(cols * 4, 4, &xb);
    vib3_block_q8_0 *xq = buf_at(cols / 32 * sizeof(vib3_block_q8_0) + 34, 2, &xqb);
    fill_weights(t, w, rows, cols, edge);
    fill_f32(xf, cols, edge == EDGE_LARGE ? 100.0f : 1.0f);
    const void *x = xf;
    float xd[8192];
    memcpy(xd, xf, cols * 4);
    if (vib3_simd_x_is_q8(t)) {
        ref->quantize_q8_0(xf, xq, cols);
        ref->dequant[VIB3_DTYPE_Q8_0](xq, xd, cols);
        x = xq;
    }
    float *y0 = calloc(rows + 2, 4), *y1 = calloc(rows + 2, 4), *dq0 = calloc(cols, 4), *dq1 = calloc(cols, 4);
    size_t r0 = rows > 3 ? 1 : 0, r1 = rows > 3 ? rows - 1 : rows;
    ref->matvec[t](w, cols, x, y0, r0, r1);
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        for (size_t r = 0; r < rows + 2; r++) y1[r] = -999.0f;
        o->matvec[t](w, cols, x, y1, r0, r1);
        for (size_t r = 0; r < rows; r++) {
            if (r < r0 || r >= r1) {
                CHECK_MSG(y1[r] == -999.0f, "%s matvec %s wrote row %zu outside [%zu,%zu)", isas[v], vib3_dtype_name(t), r, r0, r1);
                continue;
            }
            double tol = 2e-5 * row_abs(t, w + r * rb, xd, cols) + 1e-30;
            CHECK_MSG(fabs(y0[r] - y1[r]) <= tol, "%s matvec %s %zux%zu edge %d row %zu: %.9g vs ref %.9g (tol %g)",
                      isas[v], vib3_dtype_name(t), rows, cols, edge, r, y1[r], y0[r], tol);
            if (edge == EDGE_ZERO_ROWS && r % 3 == 0) CHECK(y1[r] == 0.0f);
        }
        /* dequant of the first row */
        ref->dequant[t](w, dq0, cols);
        o->dequant[t](w, dq1, cols);
        CHECK_MSG(!memcmp(dq0, dq1, cols * 4), "%s dequant %s differs", isas[v], vib3_dtype_name(t));
    }
    free(y0), free(y1), free(dq0), free(dq1), free(wb), free(xb), free(xqb);
}

TEST(matvec_all_dtypes_vs_ref) {
    const size_t rows[] = {1, 5, 37, 64};
    const size_t colsq[] = {32, 96, 160, 4128};
    const size_t colsf[] = {1, 7, 33, 100, 4099};
    for (int t = 0; t < VIB3_DTYPE_COUNT_; t++)
        for (size_t i = 0; i < 4; i++)
            for (size_t j = 0; j < 4; j++) {
                size_t c = vib3_simd_x_is_q8((vib3_dtype)t) ? colsq[j] : colsf[j + (i & 1)];
                check_matvec((vib3_dtype)t, rows[i], c, (edge_kind)((i * 4 + j) % EDGE_COUNT));
            }
}

TEST(matvec_edge_values) {
    for (int t = 0; t < VIB3_DTYPE_COUNT_; t++)
        for (int e = 0; e < EDGE_COUNT; e++) check_matvec((vib3_dtype)t, 13, vib3_simd_x_is_q8((vib3_dtype)t) ? 224 : 201, (edge_kind)e);
}

static void check_matmul(vib3_dtype t, size_t rows, size_t cols, size_t n_b) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    size_t rb = (size_t)vib3_dtype_row_bytes(t, cols), xs = vib3_simd_x_row_bytes(t, cols) + 8, ld = rows + 3;
    void *wb, *xb;
    char *w = buf_at(rows * rb, t == VIB3_DTYPE_F32 ? 4 : 2, &wb);
    char *x = buf_at(n_b * xs, 4, &xb);
    float *xf = malloc(cols * 4);
    fill_weights(t, w, rows, cols, EDGE_NONE);
    for (size_t b = 0; b < n_b; b++) {
        fill_f32(xf, cols, 1.0f);
        if (vib3_simd_x_is_q8(t)) ref->quantize_q8_0(xf, (vib3_block_q8_0 *)(x + b * xs), cols);
        else memcpy(x + b * xs, xf, cols * 4);
    }
    float *y0 = malloc(n_b * ld * 4), *y1 = malloc(n_b * ld * 4);
    for (size_t i = 0; i < n_b * ld; i++) y0[i] = -999.0f;
    size_t r0 = rows > 5 ? 2 : 0, r1 = rows;
    ref->matmul[t](w, cols, x, xs, n_b, y0, ld, r0, r1);
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        for (size_t i = 0; i < n_b * ld; i++) y1[i] = -999.0f;
        o->matmul[t](w, cols, x, xs, n_b, y1, ld, r0, r1);
        int bad = 0;
        for (size_t b = 0; b < n_b && bad < 3; b++)
            for (size_t r = 0; r < ld; r++) {
                float a = y0[b * ld + r], c = y1[b * ld + r];
                double tol = r >= r0 && r < r1 ? 2e-5 * cols * 0.5 : 0;
                if (!(fabs(a - c) <= tol)) {
                    CHECK_MSG(0, "%s matmul %s %zux%zu B=%zu: Y[%zu][%zu] %.9g vs ref %.9g", isas[v], vib3_dtype_name(t),
                              rows, cols, n_b, b, r, c, a);
                    bad++;
                    break;
                }
            }
    }
    free(y0), free(y1), free(xf), free(wb), free(xb);
}

TEST(matmul_all_dtypes_vs_ref) {
    const size_t nbs[] = {1, 3, 5, 17};
    for (int t = 0; t < VIB3_DTYPE_COUNT_; t++)
        for (size_t i = 0; i < 4; i++) {
            bool q = vib3_simd_x_is_q8((vib3_dtype)t);
            check_matmul((vib3_dtype)t, i & 1 ? 37 : 8, q ? (i & 1 ? 96 : 288) : (i & 1 ? 45 : 128), nbs[i]);
        }
    check_matmul(VIB3_DTYPE_Q4_0, 70, 4096, 33);
}

/* ---- page kernels ------------------------------------------------------------ */
static void check_page(vib3_dtype t, size_t hidden, size_t k, size_t n_tok) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    size_t pb = (size_t)vib3_page_bytes(t, (uint32_t)hidden, (uint32_t)k);
    if (!vib3_simd_x_is_q8(t)) pb = (2 * k * hidden + hidden * k) * (t == VIB3_DTYPE_F32 ? 4 : 2);
    size_t xs = vib3_simd_x_row_bytes(t, hidden);
    void *pbase, *xbase;
    char *page = buf_at(pb, t == VIB3_DTYPE_F32 ? 4 : 2, &pbase);
    char *x = buf_at(n_tok * xs, 4, &xbase);
    /* gate | up | down filled as one (2k + hidden) x ... buffer of the same dtype */
    fill_weights(t, page, 2 * k, hidden, EDGE_NONE);
    fill_weights(t, page + 2 * k * vib3_dtype_row_bytes(t, hidden), hidden, k, EDGE_NONE);
    float *xf = malloc(hidden * 4);
    for (size_t b = 0; b < n_tok; b++) {
        fill_f32(xf, hidden, 2.0f);
        if (vib3_simd_x_is_q8(t)) ref->quantize_q8_0(xf, (vib3_block_q8_0 *)(x + b * xs), hidden);
        else memcpy(x + b * xs, xf, hidden * 4);
    }
    float scales[64], *a0 = malloc(k * 4), *a1 = malloc(k * 4);
    float *o0 = calloc(n_tok * hidden, 4), *o1 = calloc(n_tok * hidden, 4);
    for (size_t b = 0; b < n_tok; b++) scales[b] = 0.25f + (float)b;
    void *scratch = aligned_alloc(64, (vib3_simd_page_batch_scratch_bytes(n_tok, k) + 63) / 64 * 64);
    ref->page_act[t](page, hidden, k, x, a0);
    double amax = 0;
    for (size_t j = 0; j < k; j++) amax = fmax(amax, fabs(a0[j]));
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        o->page_act[t](page, hidden, k, x, a1);
        for (size_t j = 0; j < k; j++)
            CHECK_MSG(fabs(a0[j] - a1[j]) <= 1e-4 * amax + 1e-6, "%s page_act %s h%zu k%zu: act[%zu] %g vs %g", isas[v],
                      vib3_dtype_name(t), hidden, k, j, a1[j], a0[j]);
        /* single token ffn, then the batch form, both accumulate into preset outputs */
        for (size_t i = 0; i < n_tok * hidden; i++) o0[i] = o1[i] = (float)(i % 5) - 2.0f;
        for (size_t b = 0; b < n_tok; b++) {
            ref->page_ffn[t](page, hidden, k, x + b * xs, scales[b], o0 + b * hidden);
            o->page_ffn[t](page, hidden, k, x + b * xs, scales[b], o1 + b * hidden);
        }
        double omax = 0;
        for (size_t i = 0; i < n_tok * hidden; i++) omax = fmax(omax, fabs(o0[i]));
        double tol = 2e-3 * omax + 1e-4; /* Q8_0 requantization of act may round differently by 1 */
        int bad = 0;
        for (size_t i = 0; i < n_tok * hidden && bad < 3; i++)
            if (!(fabs(o0[i] - o1[i]) <= tol)) {
                CHECK_MSG(0, "%s page_ffn %s h%zu k%zu: out[%zu] %g vs %g (tol %g)", isas[v], vib3_dtype_name(t), hidden, k, i,
                          o1[i], o0[i], tol);
                bad++;
            }
        for (size_t i = 0; i < n_tok * hidden; i++) o1[i] = (float)(i % 5) - 2.0f;
        o->page_ffn_batch[t](page, hidden, k, x, xs, n_tok, scales, o1, hidden, scratch);
        for (size_t i = 0; i < n_tok * hidden && bad < 6; i++)
            if (!(fabs(o0[i] - o1[i]) <= tol)) {
                CHECK_MSG(0, "%s page_ffn_batch %s h%zu k%zu B%zu: out[%zu] %g vs %g", isas[v], vib3_dtype_name(t), hidden,
                          k, n_tok, i, o1[i], o0[i]);
                bad++;
            }
    }
    /* the reference batch form equals the reference single-token form */
    for (size_t i = 0; i < n_tok * hidden; i++) o1[i] = (float)(i % 5) - 2.0f;
    ref->page_ffn_batch[t](page, hidden, k, x, xs, n_tok, scales, o1, hidden, scratch);
    double omax = 0;
    for (size_t i = 0; i < n_tok * hidden; i++) omax = fmax(omax, fabs(o0[i]));
    for (size_t i = 0; i < n_tok * hidden; i++)
        if (!(fabs(o0[i] - o1[i]) <= 1e-5 * omax + 1e-6)) {
            CHECK_MSG(0, "ref page_ffn_batch %s out[%zu] %g vs single %g", vib3_dtype_name(t), i, o1[i], o0[i]);
            break;
        }
    free(a0), free(a1), free(o0), free(o1), free(scratch), free(xf), free(pbase), free(xbase);
}

TEST(page_kernels_vs_ref) {
    for (int t = 0; t < VIB3_DTYPE_COUNT_; t++) {
        bool q = vib3_simd_x_is_q8((vib3_dtype)t);
        check_page((vib3_dtype)t, q ? 160 : 37, q ? 96 : 19, 3);
        check_page((vib3_dtype)t, q ? 256 : 64, q ? 32 : 300, 1);
        check_page((vib3_dtype)t, q ? 96 : 40, q ? 288 : 288, 7);
    }
    /* more neurons / hidden rows than one stack chunk (page_impl.h PAGE_CHUNK = 1024) */
    check_page(VIB3_DTYPE_Q4_0, 64, 1056, 2);
    check_page(VIB3_DTYPE_Q4_0, 1088, 32, 2);
    check_page(VIB3_DTYPE_F32, 1031, 17, 1);
    check_page(VIB3_DTYPE_F16, 33, 1029, 1);
}

/* ---- element-wise ------------------------------------------------------------- */
static void check_close(const char *what, const char *isa, const float *a, const float *b, size_t n, double rel, double abs_tol) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= rel * fabs(a[i]) + abs_tol)) {
            CHECK_MSG(0, "%s %s [%zu of %zu]: %.9g vs ref %.9g", isa, what, i, n, b[i], a[i]);
            return;
        }
}

TEST(elementwise_vs_ref) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    const size_t ns[] = {1, 7, 8, 31, 100, 1027};
    static float x[1100], w[1100], u[1100], y0[1100], y1[1100];
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        for (size_t ni = 0; ni < 6; ni++) {
            size_t n = ns[ni];
            float *xa = x + 1, *wa = w + 3, *ua = u + 1;
            fill_f32(xa, n, 8.0f), fill_f32(wa, n, 1.0f), fill_f32(ua, n, 3.0f);
            ref->rmsnorm(y0, xa, wa, n, 1e-6f), o->rmsnorm(y1, xa, wa, n, 1e-6f);
            check_close("rmsnorm", isas[v], y0, y1, n, 1e-5, 1e-6);
            ref->rmsnorm(y0, xa, NULL, n, 1e-5f), o->rmsnorm(y1, xa, NULL, n, 1e-5f);
            check_close("rmsnorm(w=NULL)", isas[v], y0, y1, n, 1e-5, 1e-6);
            memcpy(y0, xa, n * 4), memcpy(y1, xa, n * 4);
            ref->softmax(y0, n), o->softmax(y1, n);
            check_close("softmax", isas[v], y0, y1, n, 1e-5, 1e-9);
            memcpy(y0, xa, n * 4), memcpy(y1, xa, n * 4);
            ref->silu(y0, n), o->silu(y1, n);
            check_close("silu", isas[v], y0, y1, n, 1e-5, 1e-7);
            ref->swiglu(y0, xa, ua, n), o->swiglu(y1, xa, ua, n);
            check_close("swiglu", isas[v], y0, y1, n, 1e-5, 1e-7);
            float d0 = ref->dot_f32(xa, wa, n), d1 = o->dot_f32(xa, wa, n);
            CHECK_MSG(fabs(d0 - d1) <= 2e-5 * 8.0 * n, "%s dot n=%zu: %g vs %g", isas[v], n, d1, d0);
            memcpy(y0, ua, n * 4), memcpy(y1, ua, n * 4);
            ref->axpy(y0, 0.7f, xa, n), o->axpy(y1, 0.7f, xa, n);
            check_close("axpy", isas[v], y0, y1, n, 1e-6, 1e-6);
            ref->scale(y0, -1.5f, n), o->scale(y1, -1.5f, n);
            check_close("scale", isas[v], y0, y1, n, 1e-6, 1e-6);
            ref->add(y0, xa, ua, n), o->add(y1, xa, ua, n);
            check_close("add", isas[v], y0, y1, n, 0, 0);
        }
        float sf0 = ref->sum_f32(x + 1, 1027), sf1 = o->sum_f32(x + 1, 1027);
        CHECK_MSG(fabs(sf0 - sf1) <= 1e-4 * 8 * 1027, "%s sum_f32 %g vs %g", isas[v], sf1, sf0);
        uint32_t su0 = ref->sum_u32((const uint32_t *)(x + 1), 1027), su1 = o->sum_u32((const uint32_t *)(x + 1), 1027);
        CHECK_MSG(su0 == su1, "%s sum_u32 %u vs %u", isas[v], su1, su0);
        CHECK(o->int8_mac_loop(10) == ref->int8_mac_loop(10) * (o->int8_mac_loop(1) / ref->int8_mac_loop(1)));
        /* silu at extremes stays finite: -inf side -> 0, +inf side -> x */
        float ext[8] = {-100.0f, -88.0f, -20.0f, 0.0f, 20.0f, 88.0f, 100.0f, 1e30f};
        memcpy(y1, ext, sizeof ext);
        o->silu(y1, 8);
        for (int i = 0; i < 8; i++) CHECK_MSG(isfinite(y1[i]), "%s silu(%g) = %g", isas[v], ext[i], y1[i]);
        CHECK_NEAR(y1[6], 100.0, 1e-4);
        CHECK_NEAR(y1[0], 0.0, 1e-30);
        /* softmax of large logits */
        float big[5] = {1e4f, 1e4f - 1, -1e4f, 0, 1e4f};
        o->softmax(big, 5);
        CHECK_NEAR(big[0] + big[1] + big[2] + big[3] + big[4], 1.0, 1e-6);
    }
}

TEST(rope_vs_ref) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    static float x0[8 * 130], x1[8 * 130], c[64], s[64];
    const size_t dims[][2] = {{128, 128}, {130, 64}, {64, 24}, {192, 64}};
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        for (int d = 0; d < 4; d++)
            for (int il = 0; il < 2; il++) {
                size_t hd = dims[d][0], rd = dims[d][1], nh = 5;
                fill_f32(x0, nh * hd, 3.0f);
                memcpy(x1, x0, nh * hd * 4);
                for (size_t i = 0; i < rd / 2; i++) c[i] = cosf((float)i * 0.37f), s[i] = sinf((float)i * 0.37f);
                ref->rope(x0, nh, hd, rd, c, s, il), o->rope(x1, nh, hd, rd, c, s, il);
                check_close("rope", isas[v], x0, x1, nh * hd, 1e-6, 1e-6);
            }
    }
    /* rotate-half: element i pairs with i + rope_dim/2; dims past rope_dim untouched */
    float h[8] = {1, 0, 0, 0, 0, 0, 7, 9};
    float cc[2] = {0, 1}, ss[2] = {1, 0};
    ref->rope(h, 1, 8, 4, cc, ss, false);
    CHECK_NEAR(h[0], 0, 1e-7);
    CHECK_NEAR(h[2], 1, 1e-7);
    CHECK_NEAR(h[6], 7, 0);
    CHECK_NEAR(h[7], 9, 0);
    float g[4] = {1, 0, 0, 0};
    ref->rope(g, 1, 4, 4, cc, ss, true);
    CHECK_NEAR(g[0], 0, 1e-7);
    CHECK_NEAR(g[1], 1, 1e-7);
}

TEST(topk_ties_and_order) {
    const vib3_simd_ops *ops = vib3_simd();
    float x[10] = {0.5f, 2.0f, -1.0f, 2.0f, 7.0f, 0.0f, 7.0f, -3.0f, 1.0f, 2.0f};
    uint32_t idx[10];
    float val[4];
    ops->topk(x, 10, 4, idx, val);
    CHECK_EQ_U64(idx[0], 4);
    CHECK_EQ_U64(idx[1], 6);
    CHECK_EQ_U64(idx[2], 1);
    CHECK_EQ_U64(idx[3], 3);
    CHECK_NEAR(val[3], 2.0, 0);
    ops->topk(x, 10, 10, idx, NULL);
    CHECK_EQ_U64(idx[9], 7);
    float r[300];
    uint32_t id8[8];
    fill_f32(r, 300, 1.0f);
    ops->topk(r, 300, 8, id8, NULL);
    for (int i = 0; i < 300; i++) {
        int greater = 0;
        for (int j = 0; j < 300; j++) greater += r[j] > r[i];
        bool in = false;
        for (int j = 0; j < 8; j++) in |= id8[j] == (uint32_t)i;
        CHECK_MSG(in == (greater < 8), "topk: element %d (rank %d) in=%d", i, greater, in);
    }
}

TEST(attention_vs_ref) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    enum { T = 37, DIM = 129, STRIDE = 260 }; /* row stride in elements, > DIM */
    static float q[DIM + 1], kf[T * STRIDE], p[T], s0[T], s1[T], o0[DIM], o1[DIM];
    static uint16_t kh[T * STRIDE];
    fill_f32(q + 1, DIM, 1.0f), fill_f32(kf, T * STRIDE, 2.0f), fill_f32(p, T, 1.0f);
    for (size_t i = 0; i < T * STRIDE; i++) kh[i] = vib3_f32_to_f16(kf[i]);
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        ref->attn_scores_f32(q + 1, kf + 1, STRIDE * 4, DIM, T, 0.125f, s0);
        o->attn_scores_f32(q + 1, kf + 1, STRIDE * 4, DIM, T, 0.125f, s1);
        check_close("attn_scores_f32", isas[v], s0, s1, T, 1e-4, 1e-4);
        ref->attn_scores_f16(q + 1, kh + 1, STRIDE * 2, DIM, T, 0.125f, s0);
        o->attn_scores_f16(q + 1, kh + 1, STRIDE * 2, DIM, T, 0.125f, s1);
        check_close("attn_scores_f16", isas[v], s0, s1, T, 1e-4, 1e-4);
        for (int i = 0; i < DIM; i++) o0[i] = o1[i] = (float)i;
        ref->attn_values_f32(p, kf + 1, STRIDE * 4, DIM, T, o0), o->attn_values_f32(p, kf + 1, STRIDE * 4, DIM, T, o1);
        check_close("attn_values_f32", isas[v], o0, o1, DIM, 1e-5, 1e-4);
        for (int i = 0; i < DIM; i++) o0[i] = o1[i] = (float)i;
        ref->attn_values_f16(p, kh + 1, STRIDE * 2, DIM, T, o0), o->attn_values_f16(p, kh + 1, STRIDE * 2, DIM, T, o1);
        check_close("attn_values_f16", isas[v], o0, o1, DIM, 1e-5, 1e-4);
    }
}

/* ---- dispatch ------------------------------------------------------------------ */
TEST(dispatch_select_and_names) {
    const vib3_simd_ops *cur = vib3_simd();
    CHECK(cur != NULL);
    CHECK(vib3_simd_variant("scalar") == vib3_simd_ref());
    CHECK_STR(vib3_simd_ref()->name, "scalar");
    CHECK(vib3_simd_select("no-such-isa") == VIB3_ERR_UNSUPPORTED);
    CHECK(strstr(vib3_err_msg(), "no-such-isa") != NULL);
    CHECK_OK(vib3_simd_select("scalar"));
    CHECK_STR(vib3_simd()->name, "scalar");
    CHECK_OK(vib3_simd_select("auto"));
    CHECK_STR(vib3_simd()->name, vib3_simd_best_name());
    /* every usable table is complete */
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        CHECK_STR(o->name, isas[v]);
        const void *const *fp = (const void *const *)&o->f16_to_f32;
        size_t n = (sizeof *o - offsetof(vib3_simd_ops, f16_to_f32)) / sizeof(void *);
        for (size_t i = 0; i < n; i++) CHECK_MSG(fp[i] != NULL, "%s: slot %zu is NULL", isas[v], i);
    }
    char buf[256];
    printf("    cpu features: %s; best %s\n", vib3_simd_cpu_features_str(vib3_simd_cpu_features(), buf, sizeof buf),
           vib3_simd_best_name());
}

/* The accuracy cost of quantizing activations to Q8_0 (what the Q4_0 / Q8_0 kernels do):
 * relative L2 error of y = W x with x quantized vs with x in f32 (same dequantized W).
 * Gaussian-ish activations, and activations with 1% outlier channels x30 (LLM-like). */
static double q8_act_rel_err(vib3_dtype t, int outliers, double *max_rel_row) {
    enum { ROWS = 256, COLS = 4096 };
    const vib3_simd_ops *ref = vib3_simd_ref();
    size_t rb = (size_t)vib3_dtype_row_bytes(t, COLS);
    char *w = malloc(ROWS * rb);
    float *xf = malloc(COLS * 4), *wd = malloc(COLS * 4), *y = malloc(ROWS * 4);
    vib3_block_q8_0 *xq = malloc(COLS / 32 * sizeof *xq);
    fill_weights(t, w, ROWS, COLS, EDGE_NONE);
    for (int i = 0; i < COLS; i++) {
        float g = rf() + rf() + rf(); /* sum of uniforms: roughly normal */
        xf[i] = outliers && i % 100 == 7 ? g * 30.0f : g;
    }
    ref->quantize_q8_0(xf, xq, COLS);
    ref->matvec[t](w, COLS, xq, y, 0, ROWS);
    double num = 0, den = 0;
    *max_rel_row = 0;
    for (int r = 0; r < ROWS; r++) {
        ref->dequant[t](w + r * rb, wd, COLS);
        double exact = 0, absum = 0;
        for (int i = 0; i < COLS; i++) exact += (double)wd[i] * xf[i], absum += fabs((double)wd[i] * xf[i]);
        num += (y[r] - exact) * (y[r] - exact);
        den += exact * exact;
        *max_rel_row = fmax(*max_rel_row, fabs(y[r] - exact) / absum);
    }
    free(w), free(xf), free(wd), free(y), free(xq);
    return sqrt(num / den);
}

TEST(q8_activation_accuracy_cost) {
    const vib3_dtype ts[2] = {VIB3_DTYPE_Q4_0, VIB3_DTYPE_Q8_0};
    for (int k = 0; k < 2; k++)
        for (int o = 0; o < 2; o++) {
            double worst_row, e = q8_act_rel_err(ts[k], o, &worst_row);
            printf("    %s weights, %s activations: relative L2 error of W.x from Q8_0 x = %.3e "
                   "(worst row |err| / sum|w x| = %.2e)\n",
                   vib3_dtype_name(ts[k]), o ? "outlier (1 pct x30)" : "gaussian", e, worst_row);
            CHECK_MSG(e < 0.02, "Q8_0 activation error %g too large", e);
            CHECK(worst_row < 0.01);
        }
}

static void broken_matvec(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    vib3_simd_ref()->matvec[VIB3_DTYPE_Q4_0](w, cols, x, y, r0, r1);
    y[r0] += 0.5f; /* an off-by-a-bit kernel */
}

TEST(dispatch_self_check_rejects_a_wrong_kernel) {
    vib3_simd_ops copy = *vib3_simd();
    CHECK(vib3_simd_self_check(&copy));
    copy.matvec[VIB3_DTYPE_Q4_0] = broken_matvec;
    CHECK(!vib3_simd_self_check(&copy));
}

TEST(zz_some_variant_was_tested) {
    if (n_variants_tested == 0) SKIP("no SIMD variant usable on this CPU: only the scalar reference was checked");
}

/* ---- RoPE tables: expected values from a Python port of HF transformers'
 * modeling_rope_utils (_compute_yarn_parameters, _compute_llama3_parameters) ---- */
static void check_inv_freq(const char *what, const vib3_model_config *c, const int *idx, const double *want, int n,
                           double want_af) {
    float inv[256], af = 0;
    CHECK_OK(vib3_rope_inv_freq(c, inv, &af));
    for (int i = 0; i < n; i++)
        CHECK_MSG(fabs(inv[idx[i]] - want[i]) <= 1e-5 * want[i], "%s inv_freq[%d] %.9g want %.9g", what, idx[i],
                  inv[idx[i]], want[i]);
    CHECK_MSG(fabs(af - want_af) < 1e-6, "%s attention factor %g want %g", what, af, want_af);
}

TEST(rope_tables_follow_hf) {
    vib3_model_config c;
    memset(&c, 0, sizeof c);
    c.head_dim = 128, c.rope_dim = 128, c.rope_theta = 10000.0, c.rope_scaling = VIB3_ROPE_NONE;
    check_inv_freq("default", &c, (const int[]){0, 1, 63}, (const double[]){1.0, 0.8659643233600653, 0.00011547819846894582}, 3, 1.0);
    /* DeepSeek-V3: YaRN factor 40 over 4096, rope_dim 64, mscale = mscale_all_dim = 1 */
    c.rope_dim = 64, c.rope_scaling = VIB3_ROPE_YARN, c.rope_factor = 40, c.rope_orig_max_position = 4096;
    c.yarn_beta_fast = 32, c.yarn_beta_slow = 1, c.yarn_mscale = 1, c.yarn_mscale_all_dim = 1;
    check_inv_freq("yarn-deepseek", &c, (const int[]){0, 5, 10, 20, 31},
                   (const double[]){1.0, 0.23713737056616555, 0.056234132519034905, 0.0007905694150420945,
                                    3.33380358040831e-06},
                   5, 1.0);
    /* Qwen3 YaRN factor 4 over 32768, theta 1e6, no mscale fields: factor 0.1 ln 4 + 1 */
    c.rope_dim = 128, c.rope_theta = 1e6, c.rope_factor = 4, c.rope_orig_max_position = 32768;
    c.yarn_beta_fast = 0, c.yarn_beta_slow = 0, c.yarn_mscale = 0, c.yarn_mscale_all_dim = 0;
    check_inv_freq("yarn-qwen", &c, (const int[]){0, 10, 20, 40, 63},
                   (const double[]){1.0, 0.1154781984689458, 0.01333521432163324, 4.445698525097307e-05,
                                    3.102344401879299e-07},
                   5, 1.138629436111989);
    /* Llama 3.1: factor 8, low 1, high 4, original 8192, theta 500000 */
    c.rope_scaling = VIB3_ROPE_LLAMA3, c.rope_theta = 500000, c.rope_factor = 8, c.rope_orig_max_position = 8192;
    c.llama3_low_freq_factor = 1, c.llama3_high_freq_factor = 4;
    check_inv_freq("llama3", &c, (const int[]){0, 20, 30, 40, 50, 63},
                   (const double[]){1.0, 0.016560440080994446, 0.0013718935677611381, 3.428102195952591e-05,
                                    4.411534674558404e-06, 3.068925988914511e-07},
                   6, 1.0);
    /* linear: inv_freq / factor */
    c.rope_scaling = VIB3_ROPE_LINEAR, c.rope_theta = 10000, c.rope_factor = 2;
    check_inv_freq("linear", &c, (const int[]){0, 1}, (const double[]){0.5, 0.8659643233600653 / 2}, 2, 1.0);
    /* errors name the field */
    c.rope_factor = 0;
    CHECK(vib3_rope_inv_freq(&c, (float[64]){0}, &(float){0}) == VIB3_ERR_FORMAT);
    CHECK(strstr(vib3_err_msg(), "rope_factor") != NULL);
    c.rope_factor = 2, c.rope_dim = 7;
    CHECK(vib3_rope_inv_freq(&c, (float[64]){0}, &(float){0}) == VIB3_ERR_FORMAT);
    /* table rows: cos/sin of pos * inv_freq times the attention factor */
    float inv[2] = {1.0f, 0.5f}, cs[6], sn[6];
    vib3_rope_table(inv, 2, 2.0f, 5, 3, cs, sn);
    CHECK_NEAR(cs[0], 2.0 * cos(5.0), 1e-6);
    CHECK_NEAR(sn[5], 2.0 * sin(3.5), 1e-6);
}
