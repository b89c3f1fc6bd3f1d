/* bench_kernels.c — `vib3 bench kernels`: the INT4 kernels against the
 * memory system, measured in one run.
 *
 *   1. DRAM read bandwidth: the variant's vectorised u32 sum over a 2 GiB
 *      huge-page buffer (--mem), 1 and N threads, median of --reps (3) passes.
 *   2. Q4_0 mat-vec GB/s of weights streamed for Mixtral-shaped (4096x14336,
 *      14336x4096) and Kimi-shaped (7168x2048, 2048x7168) matrices (shape=NxK:
 *      N rows = outputs, K columns = inputs, as the llama.cpp peer's
 *      ggml_matvec_bench prints), as % of the sum's GB/s over the same bytes
 *      timed alternately in the same run. Weights cycle through enough copies to fill the
 *      same buffer, so every call streams from DRAM, not from the 32 MiB L3.
 *   3. The page kernel (page_ffn, Q4_0, K = 256 neurons) GB/s over the same
 *      buffer; each thread runs whole pages into its own output row.
 *   4. Prefill: Q4_0 mat-mul GFLOP/s (2 * rows * cols * B) for B = 16, 64,
 *      512 against the int8 dot-product peak of the variant's instruction
 *      (2 ops per MAC) measured by a register-only loop.
 *
 * Text output is one `key=value` line per measurement so a script can pair
 * it with the llama.cpp peer's lines by (kernel, shape, threads).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/threadpool.h"
#include "simd/simd.h"

#define BENCH_REPS_MAX 32

typedef struct bench_opts {
    bool json, quick, l2;
    uint32_t threads;      /* the N beside 1 */
    size_t mem_bytes;      /* bandwidth / weight buffer */
    int reps;
} bench_opts;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- parallel jobs ----------------------------------------------------------- */
typedef struct sum_job {
    const vib3_simd_ops *ops;
    const uint32_t *buf;
    size_t n;
    uint32_t parts;
    uint32_t out[VIB3_THREADS_MAX];
} sum_job;
static void sum_task(void *ctx, uint32_t t, uint32_t thread) {
    sum_job *j = ctx;
    size_t lo, hi;
    vib3_split_range(j->n, j->parts, t, 1024, &lo, &hi);
    j->out[t] = j->ops->sum_u32(j->buf + lo, hi - lo);
}

typedef struct mv_job {
    const vib3_simd_ops *ops;
    const char *w;
    size_t rows, cols;
    const void *x;
    float *y;
    uint32_t parts;
} mv_job;
static void mv_task(void *ctx, uint32_t t, uint32_t thread) {
    mv_job *j = ctx;
    size_t lo, hi;
    vib3_split_range(j->rows, j->parts, t, 16, &lo, &hi);
    j->ops->matvec[VIB3_DTYPE_Q4_0](j->w, j->cols, j->x, j->y, lo, hi);
}

typedef struct mm_job {
    const vib3_simd_ops *ops;
    const char *w;
    size_t rows, cols, n_b, x_stride;
    const void *x;
    float *y;
    uint32_t parts;
} mm_job;
static void mm_task(void *ctx, uint32_t t, uint32_t thread) {
    mm_job *j = ctx;
    size_t lo, hi;
    vib3_split_range(j->rows, j->parts, t, 64, &lo, &hi);
    j->ops->matmul[VIB3_DTYPE_Q4_0](j->w, j->cols, j->x, j->x_stride, j->n_b, j->y, j->rows, lo, hi);
}

typedef struct page_job {
    const vib3_simd_ops *ops;
    const char *pages;
    size_t page_bytes, n_pages, hidden, k;
    const void *x;
    float *out; /* (threads, hidden) */
    uint32_t parts;
} page_job;
static void page_task(void *ctx, uint32_t t, uint32_t thread) {
    page_job *j = ctx;
    size_t lo, hi;
    vib3_split_range(j->n_pages, j->parts, t, 1, &lo, &hi);
    for (size_t p = lo; p < hi; p++)
        j->ops->page_ffn[VIB3_DTYPE_Q4_0](j->pages + p * j->page_bytes, j->hidden, j->k, j->x, 0.5f,
                                          j->out + (size_t)thread * j->hidden);
}

static int run_par(vib3_threadpool *tp, vib3_task_fn fn, void *ctx, uint32_t parts) {
    vib3_threadpool_run(tp, fn, ctx, parts);
    return 0;
}

/* ---- buffer fill --------------------------------------------------------------- */
/* Q4_0 blocks with sane f16 scales (no inf / nan) and pseudo-random nibbles */
static void fill_q4(void *p, size_t bytes) {
    vib3_block_q4_0 *b = p;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < bytes / sizeof *b; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        b[i].d = (uint16_t)(0x1c00 + (s & 0x3ff)); /* ~0.004 .. 0.008 */
        memcpy(b[i].qs, &s, 8);
        uint64_t s2 = s * 0x2545f4914f6cdd1dull;
        memcpy(b[i].qs + 8, &s2, 8);
    }
}

/* ---- output -------------------------------------------------------------------- */
static bool first_json;
static void out_begin(const bench_opts *o, const char *isa, const char *features) {
    if (o->json) {
        printf("{\"isa\":\"%s\",\"cpu_features\":\"%s\",\"threads\":[1,%u],\"results\":[", isa, features, o->threads);
        first_json = true;
    } else {
        printf("# vib3 bench kernels: isa=%s threads=1,%u mem=%zuMiB reps=%d features=\"%s\"\n", isa, o->threads,
               o->mem_bytes >> 20, o->reps, features);
    }
}
/* fields: "key=value key=value" pairs; numbers stay numbers in JSON */
static void out_line(const bench_opts *o, const char *fields) {
    if (!o->json) {
        printf("%s\n", fields);
        fflush(stdout);
        return;
    }
    printf("%s{", first_json ? "" : ",");
    first_json = false;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", fields);
    bool first = true;
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        char *end;
        strtod(eq + 1, &end);
        bool num = *end == 0 && eq[1];
        printf("%s\"%s\":%s%s%s", first ? "" : ",", tok, num ? "" : "\"", eq + 1, num ? "" : "\"");
        first = false;
    }
    printf("}");
}

/* ---- the benchmarks ------------------------------------------------------------ */
static double bench_dram(const bench_opts *o, vib3_threadpool *tp, uint32_t nt, const vib3_simd_ops *ops, const uint32_t *buf,
                         size_t n) {
    sum_job j = {ops, buf, n, nt, {0}};
    double t[BENCH_REPS_MAX];
    run_par(tp, sum_task, &j, nt); /* warm-up */
    for (int r = 0; r < o->reps; r++) {
        double a = now_s();
        run_par(tp, sum_task, &j, nt);
        t[r] = now_s() - a;
    }
    double s = median(t, o->reps);
    return (double)n * 4 / s / 1e9;
}

/* Alternating A/B: each rep times one pass of the vectorised sum over the weight region (A)
 * and one mat-vec pass over the same bytes (B), so both see the same machine state; the
 * ratio reported is the median of the per-rep ratios. */
static double bench_matvec(const bench_opts *o, vib3_threadpool *tp, uint32_t nt, const vib3_simd_ops *ops, char *buf,
                           size_t rows, size_t cols, const void *x, float *y, double *us_per_call, double *dram_gbps,
                           double *ratio) {
    size_t mb = rows * (cols / 32) * sizeof(vib3_block_q4_0), copies = o->mem_bytes / mb;
    if (copies == 0) copies = 1;
    mv_job j = {ops, buf, rows, cols, x, y, nt};
    sum_job sj = {ops, (const uint32_t *)buf, mb * copies / 4, nt, {0}};
    double t[BENCH_REPS_MAX], ts[BENCH_REPS_MAX], rt[BENCH_REPS_MAX];
    for (size_t c = 0; c < copies; c++) { /* warm-up pass */
        j.w = buf + c * mb;
        run_par(tp, mv_task, &j, nt);
    }
    for (int r = 0; r < o->reps; r++) {
        double a = now_s();
        run_par(tp, sum_task, &sj, nt);
        ts[r] = now_s() - a;
        a = now_s();
        for (size_t c = 0; c < copies; c++) {
            j.w = buf + c * mb;
            run_par(tp, mv_task, &j, nt);
        }
        t[r] = now_s() - a;
        rt[r] = ts[r] / t[r];
    }
    double s = median(t, o->reps);
    *us_per_call = s / (double)copies * 1e6;
    *dram_gbps = (double)(mb * copies) / median(ts, o->reps) / 1e9;
    *ratio = median(rt, o->reps);
    return (double)(mb * copies) / s / 1e9;
}

static double bench_page(const bench_opts *o, vib3_threadpool *tp, uint32_t nt, const vib3_simd_ops *ops, char *buf,
                         size_t hidden, size_t k, const void *x, float *out, double *pages_per_s, double *dram_gbps,
                         double *ratio) {
    size_t pb = (size_t)vib3_page_bytes(VIB3_DTYPE_Q4_0, (uint32_t)hidden, (uint32_t)k);
    size_t n_pages = o->mem_bytes / pb;
    page_job j = {ops, buf, pb, n_pages, hidden, k, x, out, nt};
    sum_job sj = {ops, (const uint32_t *)buf, pb * n_pages / 4, nt, {0}};
    double t[BENCH_REPS_MAX], ts[BENCH_REPS_MAX], rt[BENCH_REPS_MAX];
    run_par(tp, page_task, &j, nt);
    for (int r = 0; r < o->reps; r++) {
        double a = now_s();
        run_par(tp, sum_task, &sj, nt);
        ts[r] = now_s() - a;
        a = now_s();
        run_par(tp, page_task, &j, nt);
        t[r] = now_s() - a;
        rt[r] = ts[r] / t[r];
    }
    double s = median(t, o->reps);
    *pages_per_s = (double)n_pages / s;
    *dram_gbps = (double)(pb * n_pages) / median(ts, o->reps) / 1e9;
    *ratio = median(rt, o->reps);
    return (double)(pb * n_pages) / s / 1e9;
}

typedef struct peak_job {
    const vib3_simd_ops *ops;
    uint64_t iters, macs[VIB3_THREADS_MAX];
} peak_job;
static void peak_task(void *ctx, uint32_t t, uint32_t thread) {
    peak_job *j = ctx;
    j->macs[t] = j->ops->int8_mac_loop(j->iters);
}
/* the peak is a maximum: the best of 20 short runs, so a preempted run does not lower it */
static double bench_peak(vib3_threadpool *tp, uint32_t nt, const vib3_simd_ops *ops, uint64_t iters) {
    peak_job j = {ops, iters / 20, {0}};
    run_par(tp, peak_task, &j, nt);
    double best = 0;
    for (int r = 0; r < 20; r++) {
        double a = now_s();
        run_par(tp, peak_task, &j, nt);
        double s = now_s() - a;
        uint64_t macs = 0;
        for (uint32_t i = 0; i < nt; i++) macs += j.macs[i];
        double gops = 2.0 * (double)macs / s / 1e9;
        if (gops > best) best = gops;
    }
    return best;
}

static double bench_prefill(const bench_opts *o, vib3_threadpool *tp, uint32_t nt, const vib3_simd_ops *ops,
                            const char *w, size_t rows, size_t cols, size_t n_b, const void *x, float *y) {
    mm_job j = {ops, w, rows, cols, n_b, cols / 32 * sizeof(vib3_block_q8_0), x, y, nt * 4};
    int reps = n_b >= 256 || o->quick ? 1 : 3;
    double t[BENCH_REPS_MAX];
    run_par(tp, mm_task, &j, j.parts);
    for (int r = 0; r < reps; r++) {
        double a = now_s();
        run_par(tp, mm_task, &j, j.parts);
        t[r] = now_s() - a;
    }
    double s = median(t, reps);
    return 2.0 * (double)rows * (double)cols * (double)n_b / s / 1e9;
}

/* Compute ceilings with the data in L2 (144-288 KiB): the best of many short runs, which a
 * busy machine disturbs much less than DRAM-sized passes. 1 thread. */
static volatile uint32_t bench_sink; /* keeps the sums alive */
static void bench_l2(const bench_opts *o, const vib3_simd_ops *ops, char *buf) {
    static const size_t sh[][2] = {{256, 1024}, {64, 4096}, {128, 2048}};
    float *x = malloc(4096 * sizeof(float)), *y = malloc(256 * 64 * sizeof(float));
    vib3_block_q8_0 *xq = malloc(64 * 128 * sizeof *xq);
    if (!x || !y || !xq) goto out;
    for (int i = 0; i < 4096; i++) x[i] = sinf((float)i);
    for (int t = 0; t < 64; t++) ops->quantize_q8_0(x, xq + t * 128, 4096);
    char line[512];
    for (int dt = 0; dt < 2; dt++) {
        vib3_dtype t = dt ? VIB3_DTYPE_Q8_0 : VIB3_DTYPE_Q4_0;
        for (size_t s = 0; s < 3; s++) {
            size_t rows = sh[s][0], cols = sh[s][1], bytes = rows * (size_t)vib3_dtype_row_bytes(t, cols);
            double best = 1e9, bsum = 1e9;
            for (int r = 0; r < (o->quick ? 20 : 2000); r++) {
                double a = now_s();
                ops->matvec[t](buf, cols, xq, y, 0, rows);
                double d = now_s() - a;
                best = d < best ? d : best;
                a = now_s();
                bench_sink += ops->sum_u32((const uint32_t *)buf, bytes / 4);
                d = now_s() - a;
                bsum = d < bsum ? d : bsum;
            }
            snprintf(line, sizeof line,
                     "kernel=matvec_l2 dtype=%s shape_l2=%zux%zu threads=1 gbps=%.2f sum_gbps=%.2f", vib3_dtype_name(t),
                     rows, cols, (double)bytes / best / 1e9, (double)bytes / bsum / 1e9);
            out_line(o, line);
        }
    }
    for (size_t bi = 0; bi < 2; bi++) {
        size_t nb = bi ? 64 : 16, rows = 256, cols = 1024;
        double best = 1e9;
        for (int r = 0; r < (o->quick ? 5 : 200); r++) {
            double a = now_s();
            ops->matmul[VIB3_DTYPE_Q4_0](buf, cols, xq, 128 * sizeof *xq, nb, y, rows, 0, rows);
            double d = now_s() - a;
            best = d < best ? d : best;
        }
        snprintf(line, sizeof line, "kernel=prefill_l2 dtype=q4_0 shape_l2=%zux%zu batch=%zu threads=1 gflops=%.1f",
                 rows, cols, nb, 2.0 * (double)rows * (double)cols * (double)nb / best / 1e9);
        out_line(o, line);
    }
out:
    free(x), free(y), free(xq);
}

/* ---- command ------------------------------------------------------------------- */
static void usage(FILE *f) {
    fprintf(f, "usage: vib3 bench kernels [--json] [-t N] [--isa scalar|avx2|avx512|neon] [--mem SIZE] [--reps R]\n"
               "                          [--quick] [--l2]\n"
               "  Q4_0 mat-vec GB/s vs DRAM read bandwidth (1 and N threads), page kernel GB/s,\n"
               "  prefill GFLOP/s (B = 16, 64, 512) vs the int8 dot-product peak.\n"
               "  --mem SIZE   huge-page buffer for the bandwidth probe and weight copies (default 2G)\n"
               "  --quick      64 MiB, one rep, small shapes only (smoke test)\n"
               "  --l2         also the compute ceilings: kernels on L2-resident data, best of 2000 short runs\n"
               "               (robust on a busy machine; 1 thread)\n");
    vib3_cli_settings_help(f, VIB3_CLI_SET_THREADS); /* the only setting the kernels use */
}

/* everything one run shares: options, kernels, the huge-page buffer, a pool per thread count,
 * the quantized activations (512 rows of up to 14336) and the output rows */
typedef struct bench_run {
    bench_opts o;
    const vib3_simd_ops *ops;
    char *buf;
    uint32_t tcounts[2];
    int n_tc;
    vib3_threadpool pools[2];
    vib3_block_q8_0 *xq;
    float *y, *pout;
    double dram[2], peak[2];
} bench_run;

#define X_COLS_MAX 14336u
#define X_ROWS_MAX 512u

static void run_dram_and_matvec(bench_run *b) {
    char line[512];
    for (int i = 0; i < b->n_tc; i++) {
        b->dram[i] = bench_dram(&b->o, &b->pools[i], b->tcounts[i], b->ops, (const uint32_t *)b->buf, b->o.mem_bytes / 4);
        snprintf(line, sizeof line, "kernel=dram_read threads=%u gbps=%.2f bytes=%zu", b->tcounts[i], b->dram[i],
                 b->o.mem_bytes);
        out_line(&b->o, line);
    }
    fill_q4(b->buf, b->o.mem_bytes);
    static const size_t shapes[][2] = {{4096, 14336}, {14336, 4096}, {7168, 2048}, {2048, 7168}};
    static const size_t quick_shapes[][2] = {{512, 1024}, {1024, 512}};
    for (size_t s = 0; s < (b->o.quick ? 2u : 4u); s++) {
        size_t rows = b->o.quick ? quick_shapes[s][0] : shapes[s][0];
        size_t cols = b->o.quick ? quick_shapes[s][1] : shapes[s][1];
        for (int i = 0; i < b->n_tc; i++) {
            double us, dr, ratio;
            double g = bench_matvec(&b->o, &b->pools[i], b->tcounts[i], b->ops, b->buf, rows, cols, b->xq, b->y, &us,
                                    &dr, &ratio);
            /* shape=NxK: N rows (outputs) x K columns (inputs), as the llama.cpp peer prints it */
            snprintf(line, sizeof line,
                     "kernel=matvec dtype=q4_0 shape=%zux%zu n=%zu k=%zu threads=%u gbps=%.2f gweights_s=%.2f "
                     "dram_gbps=%.2f pct_dram=%.1f us_per_call=%.1f",
                     rows, cols, rows, cols, b->tcounts[i], g, g / 0.5625, dr, 100.0 * ratio, us);
            out_line(&b->o, line);
        }
    }
}

static void run_pages(bench_run *b) {
    static const size_t pshapes[][2] = {{4096, 256}, {7168, 256}};
    char line[512];
    for (size_t s = 0; s < (b->o.quick ? 1u : 2u); s++)
        for (int i = 0; i < b->n_tc; i++) {
            double pps, dr, ratio;
            double g = bench_page(&b->o, &b->pools[i], b->tcounts[i], b->ops, b->buf, pshapes[s][0], pshapes[s][1],
                                  b->xq, b->pout, &pps, &dr, &ratio);
            snprintf(line, sizeof line,
                     "kernel=page_ffn dtype=q4_0 hidden=%zu k=%zu threads=%u gbps=%.2f dram_gbps=%.2f pct_dram=%.1f "
                     "pages_per_s=%.0f",
                     pshapes[s][0], pshapes[s][1], b->tcounts[i], g, dr, 100.0 * ratio, pps);
            out_line(&b->o, line);
        }
}

static void run_prefill(bench_run *b) {
    char line[512];
    for (int i = 0; i < b->n_tc; i++) {
        b->peak[i] = bench_peak(&b->pools[i], b->tcounts[i], b->ops, b->o.quick ? 200000 : 20000000);
        snprintf(line, sizeof line, "kernel=int8_peak threads=%u gops=%.1f", b->tcounts[i], b->peak[i]);
        out_line(&b->o, line);
    }
    static const size_t batches[] = {16, 64, 512};
    size_t prow = b->o.quick ? 256 : 14336, pcol = b->o.quick ? 512 : 4096;
    for (size_t bi = 0; bi < (b->o.quick ? 1u : 3u); bi++)
        for (int i = 0; i < b->n_tc; i++) {
            double g = bench_prefill(&b->o, &b->pools[i], b->tcounts[i], b->ops, b->buf, prow, pcol, batches[bi], b->xq,
                                     b->y);
            snprintf(line, sizeof line,
                     "kernel=prefill dtype=q4_0 shape=%zux%zu batch=%zu threads=%u gflops=%.1f pct_int8_peak=%.1f", prow,
                     pcol, batches[bi], b->tcounts[i], g, 100.0 * g / b->peak[i]);
            out_line(&b->o, line);
        }
}

/* 0, or an exit code after printing the error / help */
static int parse_args(bench_opts *o, const char **isa, int argc, char **argv, vib3_config *cfg) {
    const char *v;
    for (int i = 1; i < argc; i++) {
        int c = vib3_cli_settings_flag(cfg, argc, argv, &i, "bench", VIB3_CLI_SET_THREADS);
        if (c < 0) return 2;
        if (c > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(argv[i], "--json")) o->json = true;
        else if (!strcmp(argv[i], "--quick")) o->quick = true;
        else if (!strcmp(argv[i], "--l2")) o->l2 = true;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "--isa"))) *isa = v;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "--mem"))) {
            uint64_t bytes;
            if (vib3_parse_size(v, &bytes) != VIB3_OK || bytes < (16u << 20))
                return vib3_cli_usage_error("bench", "--mem %s: need a size >= 16M", v);
            o->mem_bytes = (size_t)bytes;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--reps"))) {
            o->reps = atoi(v);
            if (o->reps < 1 || o->reps > BENCH_REPS_MAX)
                return vib3_cli_usage_error("bench", "--reps %s: need 1..%d", v, BENCH_REPS_MAX);
        } else
            return vib3_cli_usage_error("bench", "kernels: unknown argument '%s'", argv[i]);
    }
    if (o->quick) {
        o->mem_bytes = 64u << 20;
        o->reps = 1;
    }
    o->threads = cfg->threads ? cfg->threads : 2;
    if (o->threads > VIB3_THREADS_MAX) o->threads = VIB3_THREADS_MAX;
    o->mem_bytes &= ~(size_t)((2u << 20) - 1);
    return 0;
}

static void run_free(bench_run *b) {
    for (int i = 0; i < b->n_tc; i++) vib3_threadpool_fini(&b->pools[i]);
    free(b->xq), free(b->y), free(b->pout);
    if (b->buf && b->buf != MAP_FAILED) munmap(b->buf, b->o.mem_bytes);
}

int vib3_bench_kernels(int argc, char **argv, vib3_config *cfg) {
    static bench_run b;
    memset(&b, 0, sizeof b);
    b.o = (bench_opts){.mem_bytes = 2ull << 30, .reps = 3};
    const char *isa = NULL;
    int rc = parse_args(&b.o, &isa, argc, argv, cfg);
    if (rc) return rc < 0 ? 0 : rc;
    if (isa && vib3_simd_select(isa) != VIB3_OK) return vib3_cli_fail("bench");
    b.ops = vib3_simd();

    b.buf = mmap(NULL, b.o.mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b.buf == MAP_FAILED) return vib3_cli_error("bench", "kernels: cannot map %zu bytes (--mem)", b.o.mem_bytes);
    madvise(b.buf, b.o.mem_bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < b.o.mem_bytes / 4; i++) ((uint32_t *)b.buf)[i] = (uint32_t)i * 2654435761u;
    b.xq = malloc((size_t)X_ROWS_MAX * (X_COLS_MAX / 32) * sizeof *b.xq);
    b.y = malloc((size_t)X_ROWS_MAX * X_COLS_MAX * sizeof(float));
    b.pout = calloc((size_t)b.o.threads * 7168, sizeof(float));
    float *xf = malloc(X_COLS_MAX * sizeof(float));
    b.tcounts[0] = 1, b.tcounts[1] = b.o.threads;
    b.n_tc = b.o.threads > 1 ? 2 : 1;
    for (int i = 0; i < b.n_tc && rc == 0; i++)
        if (vib3_threadpool_init(&b.pools[i], b.tcounts[i]) != VIB3_OK) rc = vib3_cli_fail("bench"), b.n_tc = i;
    if (rc == 0 && (!b.xq || !b.y || !b.pout || !xf)) rc = vib3_cli_error("bench", "kernels: out of memory");
    if (rc) {
        free(xf);
        run_free(&b);
        return rc;
    }
    for (size_t i = 0; i < X_COLS_MAX; i++) xf[i] = sinf((float)i * 0.1f);
    for (size_t r = 0; r < X_ROWS_MAX; r++) b.ops->quantize_q8_0(xf, b.xq + r * (X_COLS_MAX / 32), X_COLS_MAX);
    free(xf);

    char feat[256];
    vib3_simd_cpu_features_str(vib3_simd_cpu_features(), feat, sizeof feat);
    out_begin(&b.o, b.ops->name, feat);
    run_dram_and_matvec(&b);
    run_pages(&b);
    if (b.o.l2) bench_l2(&b.o, b.ops, b.buf);
    run_prefill(&b);
    if (b.o.json) printf("]}\n");
    run_free(&b);
    return 0;
}
