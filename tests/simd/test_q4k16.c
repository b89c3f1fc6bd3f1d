/* test_q4k16.c — the Q4_K16 x Q8_0 kernels of every usable variant against the
 * scalar reference (vib3_matvec_q4_k16_ref & co. through vib3_simd_ref()), and
 * the reference against an independent double-precision dot product of the
 * dequantized weights and activations.
 *
 * Sizes: n = 32 (one short super-block), 96, 192 (short last super-block),
 * 256, 288 (a full one plus one chunk), 4128, and 33024 (more chunks than the
 * AVX2 kernel's per-call activation table: the multi-pass path); rows 1..37
 * with sub-ranges [r0, r1); weights (bytes) at any offset, activations and
 * outputs element-aligned but not vector-aligned. Edge scales: sub-scales / sub-mins all 0 or all 63,
 * d / dmin tiny (f16 subnormal) or large, zero rows. Tolerance: 2e-5 of the
 * row's sum of |term| magnitudes, sum_i |dx qx_i| (|d sc q_i| + |dmin mn|) —
 * the variants differ from the reference only in f32 summation order, and
 * d*S and dmin*T may cancel, so |W x| itself is not the right scale.
 * Also built for aarch64 by tests/simd/test_neon.sh and run under qemu.
 */
#include <stdlib.h>
#include <string.h>

#include "simd/simd.h"
#include "tests/simd/kernel_fixture.h"
#include "tests/test.h"

#define DT VIB3_DTYPE_Q4_K16

static uint64_t rng = 0x4b16;
static float rf(void) { return vib3_test_randf(&rng); }
static uint32_t ru(uint32_t n) { return (uint32_t)(vib3_test_rand(&rng) % n); }

typedef enum { E_NONE, E_SM_ZERO, E_SM_MAX, E_D_TINY, E_D_LARGE, E_ZERO_ROWS, E_MIXED, E_COUNT } edge_kind;

/* rows of n elements, row stride vib3_dtype_row_bytes(Q4_K16, n) */
static void fill_rows(uint8_t *w, size_t rows, size_t n, edge_kind e) {
    const size_t rb = (size_t)vib3_dtype_row_bytes(DT, n), nch = n / 32;
    for (size_t r = 0; r < rows; r++) {
        uint8_t *p = w + r * rb;
        for (size_t c = 0; c < nch;) {
            size_t cn = nch - c < 8 ? nch - c : 8;
            float d = 0.0005f + 0.001f * (rf() + 1), dm = 0.002f + 0.01f * (rf() + 1);
            if (e == E_D_TINY) d = 3e-7f * (1 + ru(3)), dm = 6e-8f * (1 + ru(5));  /* f16 subnormals */
            if (e == E_D_LARGE) d = 60.0f + 100 * (rf() + 1), dm = 900.0f * (rf() + 1.5f);
            if (e == E_MIXED && ru(3) == 0) d = 0.0f;
            if (e == E_MIXED && ru(3) == 0) dm = 0.0f;
            uint16_t hd = vib3_f32_to_f16(d), hm = vib3_f32_to_f16(dm);
            p[0] = (uint8_t)hd, p[1] = (uint8_t)(hd >> 8), p[2] = (uint8_t)hm, p[3] = (uint8_t)(hm >> 8);
            p += VIB3_Q4K16_HEAD_BYTES;
            for (size_t i = 0; i < cn; i++, c++, p += VIB3_Q4K16_CHUNK_BYTES) {
                int sc[2], mn[2];
                for (int g = 0; g < 2; g++) {
                    sc[g] = (int)ru(64), mn[g] = (int)ru(64);
                    if (e == E_SM_ZERO) sc[g] = mn[g] = 0;
                    if (e == E_SM_MAX) sc[g] = mn[g] = 63;
                    if (e == E_MIXED) sc[g] = ru(2) ? 63 : sc[g], mn[g] = ru(2) ? 0 : mn[g];
                }
                vib3_q4k16_pack(p, sc, mn);
                for (int j = 0; j < 16; j++) p[3 + j] = (uint8_t)(e == E_SM_MAX && (c & 1) ? 0xff : ru(256));
            }
        }
    }
    if (e == E_ZERO_ROWS)
        for (size_t r = 0; r < rows; r += 3) memset(w + r * rb, 0, rb);
}

/* sum over the row of |dx qx_i| (|d sc q_i| + |dmin mn|), straight from the format (not the reference) */
static double row_bound(const uint8_t *p, const vib3_block_q8_0 *x, size_t n) {
    double s = 0;
    for (size_t c = 0; c < n / 32;) {
        size_t cn = n / 32 - c < 8 ? n / 32 - c : 8;
        double d = fabs(vib3_f16_to_f32((uint16_t)(p[0] | p[1] << 8))), dm = fabs(vib3_f16_to_f32((uint16_t)(p[2] | p[3] << 8)));
        p += 4;
        for (size_t i = 0; i < cn; i++, c++, p += 19) {
            int sc[2], mn[2];
            vib3_q4k16_unpack(p, sc, mn);
            double dx = fabs(vib3_f16_to_f32(x[c].d));
            for (int j = 0; j < 32; j++) {
                int g = j >= 16, q = g ? p[3 + j - 16] >> 4 : p[3 + j] & 15;
                s += dx * abs(x[c].qs[j]) * (d * sc[g] * q + dm * mn[g]);
            }
        }
    }
    return s;
}

static void make_x(vib3_block_q8_0 *xq, size_t n, float mag) {
    float *xf = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) xf[i] = rf() * mag * (i % 7 == 3 ? 4.0f : 1.0f);
    vib3_simd_ref()->quantize_q8_0(xf, xq, n);
    free(xf);
}

/* ---- the reference itself -------------------------------------------------- */
TEST(ref_matches_dequantized_dot) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    CHECK(ref->matvec[DT] && ref->matmul[DT] && ref->dequant[DT] && ref->page_ffn[DT] && ref->page_ffn_batch[DT]);
    CHECK(vib3_simd_x_is_q8(DT));
    CHECK_EQ_U64(vib3_dtype_row_bytes(DT, 256), 156);
    CHECK_EQ_U64(vib3_dtype_row_bytes(DT, 192), 118);
    CHECK_EQ_U64(vib3_dtype_row_bytes(DT, 32), 23);
    CHECK_EQ_U64(vib3_dtype_row_bytes(DT, 288), 156 + 23);
    const size_t ns[] = {32, 192, 288, 1056};
    for (size_t k = 0; k < 4; k++)
        for (int e = 0; e < E_COUNT; e++) {
            size_t n = ns[k], rows = 5, rb = (size_t)vib3_dtype_row_bytes(DT, n);
            uint8_t *w = malloc(rows * rb);
            vib3_block_q8_0 *xq = malloc(n / 32 * sizeof *xq);
            float *wd = malloc(n * 4), *xd = malloc(n * 4), y[5];
            fill_rows(w, rows, n, (edge_kind)e);
            make_x(xq, n, 1.0f);
            ref->dequant[VIB3_DTYPE_Q8_0](xq, xd, n);
            ref->matvec[DT](w, n, xq, y, 0, rows);
            for (size_t r = 0; r < rows; r++) {
                ref->dequant[DT](w + r * rb, wd, n);
                double s = 0;
                for (size_t i = 0; i < n; i++) s += (double)wd[i] * xd[i];
                double tol = 1e-5 * row_bound(w + r * rb, xq, n) + 1e-30;
                CHECK_MSG(fabs(s - y[r]) <= tol, "ref n%zu edge %d row %zu: %.9g vs dequantized %.9g (tol %g)", n, e, r,
                          y[r], s, tol);
            }
            /* one element by hand: row 0, chunk 0, element 17 = group 1, q = qs[1] >> 4 */
            ref->dequant[DT](w, wd, n);
            int sc[2], mn[2];
            vib3_q4k16_unpack(w + 4, sc, mn);
            float d = vib3_f16_to_f32((uint16_t)(w[0] | w[1] << 8)), dm = vib3_f16_to_f32((uint16_t)(w[2] | w[3] << 8));
            CHECK_NEAR(wd[17], d * sc[1] * (w[4 + 3 + 1] >> 4) - dm * mn[1], 1e-6 * (fabs(d) * 945 + fabs(dm) * 63));
            free(w), free(xq), free(wd), free(xd);
        }
}

/* ---- mat-vec ------------------------------------------------------------------ */
static int n_checked;

static void check_matvec(size_t rows, size_t n, edge_kind e, size_t woff, size_t xoff) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    size_t rb = (size_t)vib3_dtype_row_bytes(DT, n);
    void *wb, *xb, *yb;
    uint8_t *w = buf_at(rows * rb, woff, &wb);
    vib3_block_q8_0 *xq = buf_at(n / 32 * sizeof(vib3_block_q8_0), xoff, &xb);
    float *y1 = buf_at((rows + 2) * 4, 4, &yb), *y0 = calloc(rows + 2, 4);
    fill_rows(w, rows, n, e);
    make_x(xq, n, e == E_D_LARGE ? 50.0f : 1.0f);
    size_t r0 = rows > 3 ? 1 + rows % 3 : 0, r1 = rows > 5 ? rows - 1 : rows;
    ref->matvec[DT](w, n, xq, y0, r0, r1);
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        for (size_t r = 0; r < rows + 2; r++) y1[r] = -999.0f;
        o->matvec[DT](w, n, xq, y1, r0, r1);
        int bad = 0;
        for (size_t r = 0; r < rows + 2 && bad < 3; r++) {
            if (r < r0 || r >= r1) {
                if (y1[r] != -999.0f) {
                    CHECK_MSG(0, "%s matvec q4_k16 %zux%zu wrote row %zu outside [%zu,%zu)", isas[v], rows, n, r, r0, r1);
                    bad++;
                }
                continue;
            }
            double tol = 2e-5 * row_bound(w + r * rb, xq, n) + 1e-30;
            if (!(fabs(y0[r] - y1[r]) <= tol)) {
                CHECK_MSG(0, "%s matvec q4_k16 %zux%zu edge %d off %zu/%zu row %zu: %.9g vs ref %.9g (tol %g)", isas[v],
                          rows, n, e, woff, xoff, r, y1[r], y0[r], tol);
                bad++;
            }
            if (e == E_ZERO_ROWS && r % 3 == 0 && y1[r] != 0.0f) {
                CHECK_MSG(0, "%s matvec q4_k16: zero row %zu gave %g", isas[v], r, y1[r]);
                bad++;
            }
        }
        n_checked++;
    }
    free(wb), free(xb), free(yb), free(y0);
}

TEST(matvec_sizes_rows_offsets) {
    const size_t ns[] = {32, 96, 192, 256, 288, 4096 + 32};
    for (size_t k = 0; k < 6; k++)
        for (size_t rows = 1; rows <= 37; rows += (ns[k] > 1000 ? 6 : 1))
            check_matvec(rows, ns[k], E_NONE, rows % 4, 2 * ((rows * 3) % 5));
}

TEST(matvec_edge_scales) {
    const size_t ns[] = {32, 224, 288, 1056};
    for (size_t k = 0; k < 4; k++)
        for (int e = 0; e < E_COUNT; e++) check_matvec(e % 2 ? 13 : 19, ns[k], (edge_kind)e, 1 + (size_t)e % 3, 2 * ((size_t)e % 2));
}

TEST(matvec_long_rows_multi_pass) {
    /* 1032 chunks: more than one pass of the AVX2 per-call table (1024 chunks) */
    check_matvec(9, 33024, E_NONE, 3, 6);
    check_matvec(3, 32768 + 32, E_MIXED, 0, 2);
}

/* ---- mat-mul ------------------------------------------------------------------ */
static void check_matmul(size_t rows, size_t n, size_t n_b, edge_kind e) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    size_t rb = (size_t)vib3_dtype_row_bytes(DT, n), xs = n / 32 * sizeof(vib3_block_q8_0) + 6, ld = rows + 3;
    void *wb, *xb;
    uint8_t *w = buf_at(rows * rb, 1, &wb);
    char *x = buf_at(n_b * xs, 2, &xb);
    fill_rows(w, rows, n, e);
    for (size_t b = 0; b < n_b; b++) make_x((vib3_block_q8_0 *)(x + b * xs), n, 1.0f + (float)b);
    float *y0 = malloc(n_b * ld * 4), *y1 = malloc(n_b * ld * 4);
    for (size_t i = 0; i < n_b * ld; i++) y0[i] = -999.0f;
    size_t r0 = rows > 5 ? 2 : 0, r1 = rows > 9 ? rows - 1 : rows;
    ref->matmul[DT](w, n, x, xs, n_b, y0, ld, r0, r1);
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        for (size_t i = 0; i < n_b * ld; i++) y1[i] = -999.0f;
        o->matmul[DT](w, n, x, xs, n_b, y1, ld, r0, r1);
        int bad = 0;
        for (size_t b = 0; b < n_b && bad < 3; b++)
            for (size_t r = 0; r < ld && bad < 3; r++) {
                float a = y0[b * ld + r], c = y1[b * ld + r];
                double tol = r >= r0 && r < r1 ? 2e-5 * row_bound(w + r * rb, (const vib3_block_q8_0 *)(x + b * xs), n) + 1e-30 : 0;
                if (!(fabs(a - c) <= tol)) {
                    CHECK_MSG(0, "%s matmul q4_k16 %zux%zu B=%zu edge %d: Y[%zu][%zu] %.9g vs ref %.9g (tol %g)", isas[v],
                              rows, n, n_b, e, b, r, c, a, tol);
                    bad++;
                }
            }
        n_checked++;
    }
    free(y0), free(y1), free(wb), free(xb);
}

TEST(matmul_tokens_1_to_9) {
    const size_t ns[] = {32, 96, 192, 256, 288, 4128};
    for (size_t nb = 1; nb <= 9; nb++)
        for (size_t k = 0; k < 6; k++) check_matmul(ns[k] > 1000 ? 11 : 3 + 4 * nb, ns[k], nb, (edge_kind)((nb + k) % E_COUNT));
    check_matmul(70, 2048, 17, E_NONE); /* several 8-row tiles and token groups, an L2 strip */
    check_matmul(5, 33024, 2, E_NONE);  /* rows longer than the per-token tables */
}

/* ---- page kernels through the table ----------------------------------------------- */
static void check_page(size_t hidden, size_t k, size_t n_tok, edge_kind e) {
    const vib3_simd_ops *ref = vib3_simd_ref();
    size_t pb = (size_t)vib3_page_bytes(DT, (uint32_t)hidden, (uint32_t)k), xs = hidden / 32 * sizeof(vib3_block_q8_0);
    CHECK(pb == 2 * k * vib3_dtype_row_bytes(DT, hidden) + hidden * vib3_dtype_row_bytes(DT, k));
    void *pbase, *xbase;
    uint8_t *page = buf_at(pb, 3, &pbase);
    char *x = buf_at(n_tok * xs, 2, &xbase);
    fill_rows(page, 2 * k, hidden, e);
    fill_rows(page + 2 * k * vib3_dtype_row_bytes(DT, hidden), hidden, k, e);
    for (size_t b = 0; b < n_tok; b++) make_x((vib3_block_q8_0 *)(x + b * xs), hidden, 2.0f);
    float scales[16], *a0 = malloc(k * 4), *a1 = malloc(k * 4);
    float *o0 = calloc(n_tok * hidden, 4), *o1 = calloc(n_tok * hidden, 4);
    for (size_t b = 0; b < n_tok; b++) scales[b] = 0.25f + (float)b;
    void *scratch = aligned_alloc(64, (vib3_simd_page_batch_scratch_bytes(n_tok, k) + 63) / 64 * 64);
    ref->page_act[DT](page, hidden, k, x, a0);
    double amax = 0;
    for (size_t j = 0; j < k; j++) amax = fmax(amax, fabs(a0[j]));
    for (size_t b = 0; b < n_tok; b++) {
        for (size_t i = 0; i < hidden; i++) o0[b * hidden + i] = (float)(i % 5) - 2.0f;
        ref->page_ffn[DT](page, hidden, k, x + b * xs, scales[b], o0 + b * hidden);
    }
    double omax = 0;
    for (size_t i = 0; i < n_tok * hidden; i++) omax = fmax(omax, fabs(o0[i]));
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (!o) continue;
        o->page_act[DT](page, hidden, k, x, a1);
        int bad = 0;
        for (size_t j = 0; j < k && bad < 3; j++)
            if (!(fabs(a0[j] - a1[j]) <= 1e-4 * amax + 1e-6)) {
                CHECK_MSG(0, "%s page_act q4_k16 h%zu k%zu: act[%zu] %g vs %g", isas[v], hidden, k, j, a1[j], a0[j]);
                bad++;
            }
        for (size_t b = 0; b < n_tok; b++) {
            for (size_t i = 0; i < hidden; i++) o1[b * hidden + i] = (float)(i % 5) - 2.0f;
            o->page_ffn[DT](page, hidden, k, x + b * xs, scales[b], o1 + b * hidden);
        }
        double tol = 2e-3 * omax + 1e-4; /* the Q8_0 requantization of act may round differently by 1 */
        for (size_t i = 0; i < n_tok * hidden && bad < 6; i++)
            if (!(fabs(o0[i] - o1[i]) <= tol)) {
                CHECK_MSG(0, "%s page_ffn q4_k16 h%zu k%zu: out[%zu] %g vs %g (tol %g)", isas[v], hidden, k, i, o1[i],
                          o0[i], tol);
                bad++;
            }
        for (size_t i = 0; i < n_tok * hidden; i++) o1[i] = (float)(i % hidden % 5) - 2.0f;
        o->page_ffn_batch[DT](page, hidden, k, x, xs, n_tok, scales, o1, hidden, scratch);
        for (size_t i = 0; i < n_tok * hidden && bad < 9; i++)
            if (!(fabs(o0[i] - o1[i]) <= tol)) {
                CHECK_MSG(0, "%s page_ffn_batch q4_k16 h%zu k%zu B%zu: out[%zu] %g vs %g (tol %g)", isas[v], hidden, k,
                          n_tok, i, o1[i], o0[i], tol);
                bad++;
            }
        n_checked++;
    }
    /* the reference batch form equals the reference single-token form */
    for (size_t i = 0; i < n_tok * hidden; i++) o1[i] = (float)(i % hidden % 5) - 2.0f;
    ref->page_ffn_batch[DT](page, hidden, k, x, xs, n_tok, scales, o1, hidden, scratch);
    for (size_t i = 0; i < n_tok * hidden; i++)
        if (!(fabs(o0[i] - o1[i]) <= 1e-5 * omax + 1e-6)) {
            CHECK_MSG(0, "ref page_ffn_batch q4_k16 out[%zu] %g vs single %g", i, o1[i], o0[i]);
            break;
        }
    CHECK(omax > 0);
    free(a0), free(a1), free(o0), free(o1), free(scratch), free(pbase), free(xbase);
}

TEST(page_kernels_vs_ref) {
    check_page(256, 32, 1, E_NONE);
    check_page(192, 96, 3, E_NONE);
    check_page(288, 288, 7, E_MIXED);
    check_page(96, 64, 9, E_SM_MAX);
    check_page(64, 1056, 2, E_NONE);  /* more neurons than one stack chunk (PAGE_CHUNK = 1024) */
    check_page(1088, 32, 2, E_NONE);  /* more down rows than one chunk */
}

/* the start-up self-check covers Q4_K16: a slightly wrong mat-vec or mat-mul is rejected */
static void broken_matvec(const void *w, size_t cols, const void *x, float *y, size_t r0, size_t r1) {
    vib3_simd_ref()->matvec[DT](w, cols, x, y, r0, r1);
    y[r1 - 1] *= 1.01f;
}
static void broken_matmul(const void *w, size_t cols, const void *x, size_t x_stride, size_t n_b, float *y,
                          size_t y_ld, size_t r0, size_t r1) {
    vib3_simd_ref()->matmul[DT](w, cols, x, x_stride, n_b, y, y_ld, r0, r1);
    y[(n_b - 1) * y_ld + r0] += 0.5f;
}
TEST(self_check_covers_q4_k16) {
    vib3_simd_ops copy = *vib3_simd();
    CHECK(vib3_simd_self_check(&copy));
    for (size_t v = 0; v < N_ISAS; v++) {
        const vib3_simd_ops *o = vib3_simd_variant(isas[v]);
        if (o) CHECK_MSG(vib3_simd_self_check(o), "%s fails the self-check", isas[v]);
    }
    /* through a copy of the reference table, so the scalar kernels are what is checked */
    copy = *vib3_simd_ref();
    copy.name = "copy";
    CHECK(vib3_simd_self_check(&copy));
    copy.matvec[DT] = broken_matvec;
    CHECK(!vib3_simd_self_check(&copy));
    copy = *vib3_simd_ref();
    copy.matmul[DT] = broken_matmul;
    CHECK(!vib3_simd_self_check(&copy));
}

TEST(zz_some_variant_was_tested) {
#if defined(__x86_64__) || defined(__aarch64__)
    if (!vib3_simd_variant("avx2") && !vib3_simd_variant("neon")) SKIP("no SIMD variant usable on this CPU");
    CHECK(n_checked > 0);
#else
    SKIP("no SIMD variant for this architecture");
#endif
}
