/* bench_q4k16.c — 1-thread mat-vec GB/s of Q4_0 vs Q4_K16 weights (not a test; not built by make).
 *
 *   make BUILD=/tmp/k16/build -j2 /tmp/k16/build/libvib3.a
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I. -Isrc tests/simd/bench_q4k16.c /tmp/k16/build/libvib3.a \
 *      -lsleef -lm -lpthread -o /tmp/k16/bench && /tmp/k16/bench [isa] [reps] [mem_mib]
 *
 * For each shape (N rows x K cols) the weights of each dtype are laid out as `copies` matrices
 * over a mem_mib region (default 512 MiB, far above the L3), and each rep times, back to back,
 * one pass of the variant's u32 sum over the q4_0 region (the DRAM read probe), one q4_0
 * mat-vec pass over every copy, one q4_k16 pass; medians over reps, and the best rep of each
 * (median() sorts, so t[0] is the fastest: the least disturbed by other load). An L2-resident run (one
 * 64-row matrix, repeated) gives the compute ceiling.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simd/simd.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}
static uint64_t rs = 88172645463325252ull;
static uint32_t rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)rs;
}
/* valid weights of dtype t for rows x cols at w */
static void fill(vib3_dtype t, uint8_t *w, size_t rows, size_t cols) {
    size_t rb = (size_t)vib3_dtype_row_bytes(t, cols);
    for (size_t i = 0; i < rows * rb; i++) w[i] = (uint8_t)rnd();
    uint16_t d = vib3_f32_to_f16(0.01f), dm = vib3_f32_to_f16(0.02f);
    for (size_t r = 0; r < rows; r++) {
        uint8_t *p = w + r * rb;
        if (t == VIB3_DTYPE_Q4_0)
            for (size_t b = 0; b < cols / 32; b++) memcpy(p + b * 18, &d, 2);
        else
            for (size_t s = 0; s * 256 < cols; s++) memcpy(p + s * 156, &d, 2), memcpy(p + s * 156 + 2, &dm, 2);
    }
}

int main(int argc, char **argv) {
    const char *isa = argc > 1 ? argv[1] : "auto";
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    size_t mem = (argc > 3 ? (size_t)atoi(argv[3]) : 512) << 20;
    if (reps < 1 || reps > 99) reps = 7;
    if (vib3_simd_select(isa)) {
        fprintf(stderr, "isa %s not usable\n", isa);
        return 1;
    }
    const vib3_simd_ops *o = vib3_simd();
    uint8_t *buf4 = aligned_alloc(4096, mem), *bufk = aligned_alloc(4096, mem + mem / 8);
    float *xf = malloc(16384 * 4), *y = malloc(65536 * 4);
    vib3_block_q8_0 *xq = malloc(16384 / 32 * sizeof *xq);
    for (int i = 0; i < 16384; i++) xf[i] = (float)((int)(rnd() % 2001) - 1000) / 500.0f;
    o->quantize_q8_0(xf, xq, 16384);
    printf("isa %s, %d reps, %zu MiB per dtype\n", o->name, reps, mem >> 20);
    static const size_t shapes[][2] = {{4096, 14336}, {14336, 4096}, {7168, 2048}, {2048, 7168}};
    for (int s = 0; s < (argc > 4 ? 0 : 4); s++) {
        size_t rows = shapes[s][0], cols = shapes[s][1];
        size_t m4 = rows * (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_0, cols);
        size_t mk = rows * (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, cols);
        size_t copies = mem / m4;
        for (size_t c = 0; c < copies; c++) fill(VIB3_DTYPE_Q4_0, buf4 + c * m4, rows, cols);
        for (size_t c = 0; c < copies; c++) fill(VIB3_DTYPE_Q4_K16, bufk + c * mk, rows, cols);
        double t4[99], tk[99], ts[99];
        volatile uint32_t sink = 0;
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
            double a = now_s();
            sink += o->sum_u32((const uint32_t *)buf4, copies * m4 / 4);
            double b = now_s();
            for (size_t c = 0; c < copies; c++) o->matvec[VIB3_DTYPE_Q4_0](buf4 + c * m4, cols, xq, y, 0, rows);
            double d = now_s();
            for (size_t c = 0; c < copies; c++) o->matvec[VIB3_DTYPE_Q4_K16](bufk + c * mk, cols, xq, y, 0, rows);
            double e = now_s();
            if (r >= 0) ts[r] = b - a, t4[r] = d - b, tk[r] = e - d;
        }
        double s_dram = (double)(copies * m4) / median(ts, reps) / 1e9;
        double g4 = (double)(copies * m4) / median(t4, reps) / 1e9, gk = (double)(copies * mk) / median(tk, reps) / 1e9;
        double w4 = (double)(copies * rows * cols) / median(t4, reps) / 1e9;
        double wk = (double)(copies * rows * cols) / median(tk, reps) / 1e9;
        printf("%5zux%-5zu dram %.2f GB/s | q4_0 %.2f GB/s (%.2f Gw/s, %.0f us) | q4_k16 %.2f GB/s (%.2f Gw/s, %.0f us) | "
               "k16/q4_0 GB/s %.2f | best: dram %.2f q4_0 %.2f q4_k16 %.2f GB/s\n",
               rows, cols, s_dram, g4, w4, median(t4, reps) / copies * 1e6, gk, wk, median(tk, reps) / copies * 1e6, gk / g4,
               (double)(copies * m4) / ts[0] / 1e9, (double)(copies * m4) / t4[0] / 1e9, (double)(copies * mk) / tk[0] / 1e9);
    }
    /* page_ffn (gate | up | down of K neurons at hidden H) over every page of the region */
    static const size_t pshapes[][2] = {{4096, 256}, {7168, 256}};
    for (int s = 0; s < (argc > 4 ? 0 : 2); s++) {
        size_t hidden = pshapes[s][0], k = pshapes[s][1];
        size_t p4 = (size_t)vib3_page_bytes(VIB3_DTYPE_Q4_0, (uint32_t)hidden, (uint32_t)k);
        size_t pk = (size_t)vib3_page_bytes(VIB3_DTYPE_Q4_K16, (uint32_t)hidden, (uint32_t)k);
        size_t np = mem / p4;
        for (size_t i = 0; i < np; i++) {
            fill(VIB3_DTYPE_Q4_0, buf4 + i * p4, 2 * k, hidden);
            fill(VIB3_DTYPE_Q4_0, buf4 + i * p4 + 2 * k * vib3_dtype_row_bytes(VIB3_DTYPE_Q4_0, hidden), hidden, k);
            fill(VIB3_DTYPE_Q4_K16, bufk + i * pk, 2 * k, hidden);
            fill(VIB3_DTYPE_Q4_K16, bufk + i * pk + 2 * k * vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, hidden), hidden, k);
        }
        double t4[99], tk[99];
        for (int r = -1; r < reps; r++) {
            memset(y, 0, hidden * 4);
            double a = now_s();
            for (size_t i = 0; i < np; i++) o->page_ffn[VIB3_DTYPE_Q4_0](buf4 + i * p4, hidden, k, xq, 0.01f, y);
            double b = now_s();
            for (size_t i = 0; i < np; i++) o->page_ffn[VIB3_DTYPE_Q4_K16](bufk + i * pk, hidden, k, xq, 0.01f, y);
            double c = now_s();
            if (r >= 0) t4[r] = b - a, tk[r] = c - b;
        }
        double g4 = (double)(np * p4) / median(t4, reps) / 1e9, gk = (double)(np * pk) / median(tk, reps) / 1e9;
        printf("page_ffn h%zu k%zu (%zu pages): q4_0 %.2f GB/s (%.1f us/page) | q4_k16 %.2f GB/s (%.1f us/page) | "
               "k16/q4_0 GB/s %.2f\n",
               hidden, k, np, g4, median(t4, reps) / np * 1e6, gk, median(tk, reps) / np * 1e6, gk / g4);
    }
    /* L2-resident: 64 rows x 4096; best of 300 short timings (robust to other load) */
    {
        size_t rows = 64, cols = 4096, n = 10;
        fill(VIB3_DTYPE_Q4_0, buf4, rows, cols);
        fill(VIB3_DTYPE_Q4_K16, bufk, rows, cols);
        size_t m4 = rows * (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_0, cols);
        size_t mk = rows * (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, cols);
        double b4 = 1e9, bk = 1e9;
        for (int r = 0; r < 300; r++) {
            double a = now_s();
            for (size_t i = 0; i < n; i++) o->matvec[VIB3_DTYPE_Q4_0](buf4, cols, xq, y, 0, rows);
            double b = now_s();
            for (size_t i = 0; i < n; i++) o->matvec[VIB3_DTYPE_Q4_K16](bufk, cols, xq, y, 0, rows);
            double c = now_s();
            if (b - a < b4) b4 = b - a;
            if (c - b < bk) bk = c - b;
        }
        printf("L2 64x4096 best-of-300: q4_0 %.2f GB/s (%.2f Gw/s) | q4_k16 %.2f GB/s (%.2f Gw/s) | Gw/s ratio %.2f\n",
               (double)(n * m4) / b4 / 1e9, (double)(n * rows * cols) / b4 / 1e9, (double)(n * mk) / bk / 1e9,
               (double)(n * rows * cols) / bk / 1e9, b4 / bk);
    }
    /* mat-mul (prefill), L2-resident weights: 64 rows x 4096, 16 tokens; best of 100 */
    {
        size_t rows = 64, cols = 4096, nt = 16, xs = cols / 32 * sizeof(vib3_block_q8_0);
        vib3_block_q8_0 *xm = malloc(nt * xs);
        for (size_t t = 0; t < nt; t++) memcpy((char *)xm + t * xs, xq, xs);
        float *ym = malloc(nt * rows * 4);
        double b4 = 1e9, bk = 1e9;
        for (int r = 0; r < 100; r++) {
            double a = now_s();
            o->matmul[VIB3_DTYPE_Q4_0](buf4, cols, xm, xs, nt, ym, rows, 0, rows);
            double b = now_s();
            o->matmul[VIB3_DTYPE_Q4_K16](bufk, cols, xm, xs, nt, ym, rows, 0, rows);
            double c = now_s();
            if (b - a < b4) b4 = b - a;
            if (c - b < bk) bk = c - b;
        }
        printf("matmul 64x4096 x 16 tokens best-of-100: q4_0 %.1f us (%.2f Gw*tok/s) | q4_k16 %.1f us (%.2f Gw*tok/s) | "
               "ratio %.2f\n",
               b4 * 1e6, (double)(rows * cols * nt) / b4 / 1e9, bk * 1e6, (double)(rows * cols * nt) / bk / 1e9, b4 / bk);
        free(xm), free(ym);
    }
    if (argc > 4) return 0; /* L2 only */
    free(buf4), free(bufk), free(xf), free(y), free(xq);
    return 0;
}
