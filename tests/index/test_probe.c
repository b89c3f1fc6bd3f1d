/* test_probe.c — the look-ahead probes (src/convert/probe.c, PRED section,
 * src/index/prefetch.c):
 *   - ridge probes fitted on a synthetic model whose layers are known linear
 *     maps recover the product router_t * A (and predict its experts where
 *     the re-weighted router cannot);
 *   - a PRED section appended to a fixture file is read back, the
 *     prefetcher's look-ahead ranks by exactly the probe of the (layer,
 *     target) pair asked for (a probe ignored, or read for the wrong layer,
 *     fails), VIB3_PREFETCH_PROBES=0 falls back to the router;
 *   - the reader rejects a corrupted PRED section with a message naming the
 *     field and the value;
 *   - on tinymix-brown (skipped without the shared model) the probes fitted
 *     by `vib3 convert` on its default calibration text beat the router
 *     look-ahead on a held-out slice. */
#include <stdlib.h>
#include <unistd.h>

#include "convert/convert.h"
#include "convert/probe.h"
#include "index/prefetch.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"
#include "simd/simd.h"
#include "tests/format/fixture.h"
#include "tests/test.h"

static double gauss(uint64_t *s) {
    double u1 = ((double)(fixture_rand(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(fixture_rand(s) >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static void matvec(const float *M, const float *x, float *y, uint32_t rows, uint32_t cols) {
    for (uint32_t r = 0; r < rows; r++) {
        double s = 0;
        for (uint32_t c = 0; c < cols; c++) s += (double)M[(size_t)r * cols + c] * x[c];
        y[r] = (float)s;
    }
}

static uint32_t top_n(const float *s, uint32_t E, uint32_t n, uint32_t *out) {
    uint8_t taken[64] = {0};
    for (uint32_t i = 0; i < n; i++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t e = 0; e < E; e++)
            if (!taken[e] && (best == UINT32_MAX || s[e] > s[best])) best = e;
        taken[best] = 1;
        out[i] = best;
    }
    return n;
}

/* ---- a synthetic model: x_{l+1} = A_l x_l + noise, the next token's x_0 = B x_{L-1} + noise ---- */
#define SL 3u
#define SE 8u
#define SH 32u
typedef struct synth {
    float R[SL][SE * SH], A[SL][SH * SH], B[SH * SH];
    uint64_t seed;
} synth;

static void synth_init(synth *m, uint64_t seed) {
    m->seed = seed;
    for (uint32_t l = 0; l < SL; l++) {
        for (uint32_t i = 0; i < SE * SH; i++) m->R[l][i] = (float)(gauss(&m->seed) / sqrt(SH));
        for (uint32_t i = 0; i < SH * SH; i++) m->A[l][i] = (float)(gauss(&m->seed) / sqrt(SH));
    }
    for (uint32_t i = 0; i < SH * SH; i++) m->B[i] = (float)(gauss(&m->seed) / sqrt(SH));
}

/* one token's router inputs x (SL, SH) given the previous token's (NULL: none) */
static void synth_token(synth *m, const float *prev, float *x) {
    float t[SH];
    if (prev) matvec(m->B, prev + (SL - 1) * SH, t, SH, SH);
    for (uint32_t i = 0; i < SH; i++) x[i] = (prev ? 0.8f * t[i] : 0.0f) + (float)gauss(&m->seed) * (prev ? 0.6f : 1.0f);
    for (uint32_t l = 1; l < SL; l++) {
        matvec(m->A[l - 1], x + (l - 1) * SH, x + l * SH, SH, SH);
        for (uint32_t i = 0; i < SH; i++) x[l * SH + i] += (float)gauss(&m->seed) * 0.02f;
    }
}

static vib3_probe_fit *synth_fit(synth *m, uint32_t windows, uint32_t rows) {
    vib3_probe_fit *p = NULL;
    if (vib3_probe_fit_init_raw(&p, SL, SE, SH, 2, &m->R[0][0], NULL, NULL, 0)) return NULL;
    float *x = malloc((size_t)rows * SL * SH * sizeof(float)), *col = malloc((size_t)rows * SH * sizeof(float));
    for (uint32_t w = 0; w < windows; w++) {
        vib3_probe_fit_window(p);
        for (uint32_t r = 0; r < rows; r++) synth_token(m, r ? x + (size_t)(r - 1) * SL * SH : NULL, x + (size_t)r * SL * SH);
        for (uint32_t l = 0; l < SL; l++) { /* the hook's layout: (rows, hidden) per layer */
            for (uint32_t r = 0; r < rows; r++) memcpy(col + (size_t)r * SH, x + ((size_t)r * SL + l) * SH, SH * sizeof(float));
            vib3_probe_fit_rows(p, l, col, rows);
        }
    }
    free(x), free(col);
    if (vib3_probe_fit_solve(p)) {
        vib3_probe_fit_free(p);
        return NULL;
    }
    return p;
}

TEST(probe_recovers_linear_routing) {
    static synth m;
    synth_init(&m, 7);
    vib3_probe_fit *p = synth_fit(&m, 25, 64);
    CHECK(p != NULL);
    if (!p) return;
    CHECK_EQ_U64(vib3_probe_fit_pairs(p), SL * 2); /* 0->1, 0->2, 1->2, 1->0', 2->0', 2->1' */
    /* same-token pairs: W = R_t A_{t-1} ... A_l (the noise is small) */
    float RA[SE * SH], RAA[SE * SH];
    for (uint32_t e = 0; e < SE; e++)
        for (uint32_t j = 0; j < SH; j++) {
            double s = 0;
            for (uint32_t i = 0; i < SH; i++) s += (double)m.R[1][e * SH + i] * m.A[0][i * SH + j];
            RA[e * SH + j] = (float)s;
        }
    for (uint32_t e = 0; e < SE; e++)
        for (uint32_t j = 0; j < SH; j++) {
            double s = 0;
            for (uint32_t i = 0; i < SH; i++) {
                double a = 0;
                for (uint32_t q = 0; q < SH; q++) a += (double)m.A[1][i * SH + q] * m.A[0][q * SH + j];
                s += (double)m.R[2][e * SH + i] * a;
            }
            RAA[e * SH + j] = (float)s;
        }
    const float *W, *b;
    uint32_t src, tgt, next;
    float lam;
    CHECK_OK(vib3_probe_fit_get(p, 0, &src, &tgt, &next, &W, &b, &lam));
    CHECK(src == 0 && tgt == 1 && !next);
    double err = 0, mag = 0;
    for (uint32_t i = 0; i < SE * SH; i++) err = fmax(err, fabs(W[i] - RA[i])), mag = fmax(mag, fabs(RA[i]));
    CHECK_MSG(err < 0.05 * mag, "0->1: max |W - R1 A0| = %g (max %g)", err, mag);
    CHECK_OK(vib3_probe_fit_get(p, 1, &src, &tgt, &next, &W, &b, &lam));
    CHECK(src == 0 && tgt == 2 && !next);
    err = 0, mag = 0;
    for (uint32_t i = 0; i < SE * SH; i++) err = fmax(err, fabs(W[i] - RAA[i])), mag = fmax(mag, fabs(RAA[i]));
    CHECK_MSG(err < 0.05 * mag, "0->2: max |W - R2 A1 A0| = %g (max %g)", err, mag);
    CHECK_OK(vib3_probe_fit_get(p, 3, &src, &tgt, &next, &W, &b, &lam));
    CHECK(src == 1 && tgt == 0 && next); /* 1 + 2 = 3 layers: the next token's layer 0 */
    /* fresh tokens: the probe's 3 guesses hold layer 1's top-2; the router look-ahead's mostly do not */
    uint32_t hit_probe = 0, hit_router = 0, total = 0;
    CHECK_OK(vib3_probe_fit_get(p, 0, &src, &tgt, &next, &W, &b, &lam));
    float x[SL * SH], s[SE];
    for (int t = 0; t < 400; t++) {
        synth_token(&m, NULL, x);
        uint32_t truth[2], gp[3], gr[3];
        matvec(m.R[1], x + SH, s, SE, SH);
        top_n(s, SE, 2, truth);
        matvec(W, x, s, SE, SH);
        for (uint32_t e = 0; e < SE; e++) s[e] += b[e];
        top_n(s, SE, 3, gp);
        matvec(m.R[1], x, s, SE, SH);
        top_n(s, SE, 3, gr);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) hit_probe += truth[i] == gp[j], hit_router += truth[i] == gr[j];
        total += 2;
    }
    CHECK_MSG(hit_probe >= 0.95 * total, "probe recall %u / %u", hit_probe, total);
    CHECK_MSG(hit_router < 0.8 * total, "router recall %u / %u (the test cannot tell them apart)", hit_router, total);
    vib3_probe_fit_free(p);
}

/* recall of the 0 -> 1 probe's 3 guesses for layer 1's top-2 on fresh tokens (router = NULL: the fit's) */
static double recall_0_to_1(synth *m, vib3_probe_fit *p, int router) {
    const float *W, *b;
    uint32_t src, tgt, next, hit = 0, total = 0;
    float lam, x[SL * SH], s[SE];
    if (vib3_probe_fit_get(p, 0, &src, &tgt, &next, &W, &b, &lam)) return -1;
    uint64_t keep = m->seed;
    m->seed = 99; /* the same fresh tokens for every caller */
    for (int t = 0; t < 400; t++) {
        synth_token(m, NULL, x);
        uint32_t truth[2], g[3];
        matvec(m->R[1], x + SH, s, SE, SH);
        top_n(s, SE, 2, truth);
        if (router) {
            matvec(m->R[1], x, s, SE, SH);
        } else {
            matvec(W, x, s, SE, SH);
            for (uint32_t e = 0; e < SE; e++) s[e] += b[e];
        }
        top_n(s, SE, 3, g);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) hit += truth[i] == g[j];
        total += 2;
    }
    m->seed = keep;
    return (double)hit / total;
}

/* above VIB3_PROBE_HIDDEN_MAX the fit runs on a random sketch of the input and corrects the
 * router look-ahead: better than the router, not better than the full fit (VIB3_PROBE_SKETCH
 * forces it on the 32-wide synthetic model) */
TEST(sketched_probe_corrects_the_router) {
    static synth m;
    synth_init(&m, 7);
    vib3_probe_fit *full = synth_fit(&m, 25, 64);
    synth_init(&m, 7);
    setenv("VIB3_PROBE_SKETCH", "16", 1);
    vib3_probe_fit *half = synth_fit(&m, 25, 64);
    unsetenv("VIB3_PROBE_SKETCH");
    CHECK(full != NULL && half != NULL);
    if (!full || !half) return;
    CHECK_EQ_U64(vib3_probe_fit_pairs(half), SL * 2);
    double r_full = recall_0_to_1(&m, full, 0), r_half = recall_0_to_1(&m, half, 0), r_router = recall_0_to_1(&m, full, 1);
    CHECK_MSG(r_half > r_router + 0.05, "sketch recall %.3f vs router %.3f", r_half, r_router);
    CHECK_MSG(r_half <= r_full + 0.01, "sketch recall %.3f vs full fit %.3f", r_half, r_full);
    printf("    recall 0 -> 1 at 3 guesses: router %.3f, sketch (16 of 32 features) %.3f, full %.3f\n", r_router, r_half,
           r_full);
    vib3_probe_fit_free(full);
    vib3_probe_fit_free(half);
}

/* ---- a PRED section on a fixture file --------------------------------------------------- */
static const fixture_opts fopts = {4, 8, 64, 32, 32, 32, VIB3_DTYPE_Q4_0, 3};

/* fixture image with sec (bytes) appended as a PRED section */
static uint8_t *with_pred(const uint8_t *img, uint64_t size, const uint8_t *sec, uint64_t bytes, uint64_t *out_size) {
    const vib3_header *h = (const vib3_header *)img;
    uint64_t at = (h->section_table_offset + 7) & ~7ull, table = (uint64_t)h->section_count * sizeof(vib3_section_entry);
    uint64_t tab_at = (at + bytes + 7) & ~7ull, n = tab_at + table + sizeof(vib3_section_entry);
    uint8_t *o = calloc(1, n);
    memcpy(o, img, h->section_table_offset);
    memcpy(o + at, sec, bytes);
    memcpy(o + tab_at, img + h->section_table_offset, table);
    vib3_section_entry *e = (vib3_section_entry *)(o + tab_at + table);
    memset(e, 0, sizeof *e);
    e->tag = VIB3_SEC_PREDICT, e->version = 1, e->offset = at, e->bytes = bytes;
    vib3_header *oh = (vib3_header *)o;
    oh->section_table_offset = tab_at;
    oh->section_count++;
    oh->file_size = n;
    fixture_resign(o, n);
    (void)size;
    *out_size = n;
    return o;
}

/* probes for the fixture's shape (4 layers, 8 experts, hidden 64) fitted on random rows */
static uint8_t *fixture_pred(uint64_t *bytes) {
    uint32_t L = fopts.n_layers, E = fopts.n_experts, H = fopts.hidden;
    float *R = malloc((size_t)L * E * H * sizeof(float)), *x = malloc((size_t)64 * H * sizeof(float));
    uint64_t seed = 11;
    for (size_t i = 0; i < (size_t)L * E * H; i++) R[i] = (float)gauss(&seed);
    vib3_probe_fit *p = NULL;
    uint8_t *sec = NULL;
    if (vib3_probe_fit_init_raw(&p, L, E, H, 2, R, NULL, NULL, 0) == VIB3_OK) {
        for (int w = 0; w < 10; w++) {
            vib3_probe_fit_window(p);
            for (uint32_t l = 0; l < L; l++) {
                for (size_t i = 0; i < (size_t)64 * H; i++) x[i] = (float)gauss(&seed);
                vib3_probe_fit_rows(p, l, x, 64);
            }
        }
        if (vib3_probe_fit_solve(p) || vib3_probe_serialize(p, &sec, bytes)) sec = NULL;
    }
    vib3_probe_fit_free(p);
    free(R), free(x);
    return sec;
}

/* the same section with F16 weights (the layout the converter writes above 16 MiB) */
static uint8_t *pred_to_f16(const uint8_t *sec, uint64_t *bytes) {
    vib3_pred_header h;
    memcpy(&h, sec, sizeof h);
    uint64_t b_bytes = ((uint64_t)h.n_experts * 4 + 7) & ~7ull, w32 = ((uint64_t)h.n_experts * h.hidden * 4 + 7) & ~7ull;
    uint64_t w16 = ((uint64_t)h.n_experts * h.hidden * 2 + 7) & ~7ull, head = sizeof h + 16ull * h.n_pairs;
    uint64_t n = head + (uint64_t)h.n_pairs * (b_bytes + w16);
    uint8_t *o = calloc(1, n);
    h.dtype = VIB3_DTYPE_F16;
    memcpy(o, sec, head);
    memcpy(o, &h, sizeof h);
    for (uint32_t i = 0; i < h.n_pairs; i++) {
        const uint8_t *src = sec + head + i * (b_bytes + w32);
        uint8_t *dst = o + head + i * (b_bytes + w16);
        memcpy(dst, src, b_bytes);
        for (uint64_t j = 0; j < (uint64_t)h.n_experts * h.hidden; j++) {
            float v;
            memcpy(&v, src + b_bytes + 4 * j, 4);
            uint16_t hv = vib3_f32_to_f16(v);
            memcpy(dst + b_bytes + 2 * j, &hv, 2);
        }
    }
    *bytes = n;
    return o;
}

static uint8_t *pred_image(uint64_t *size, uint64_t *pred_off) {
    char path[1024];
    snprintf(path, sizeof path, "%s/probe-fixture.vib3", vib3_test_tmpdir());
    if (fixture_write(path, &fopts)) return NULL;
    uint64_t n, bytes;
    uint8_t *img = fixture_load(path, &n), *sec = fixture_pred(&bytes);
    if (!img || !sec) return NULL;
    if (getenv("PROBE_TEST_F16")) {
        uint8_t *h16 = pred_to_f16(sec, &bytes);
        free(sec);
        sec = h16;
    }
    uint8_t *o = with_pred(img, n, sec, bytes, size);
    *pred_off = fixture_section(o, VIB3_SEC_PREDICT)->offset;
    const char *seed_out = getenv("VIB3_PRED_SEED_OUT"); /* regenerates fuzz/corpus/fuzz_vib3_reader/seed-pred.vib3 */
    if (seed_out) {
        FILE *f = fopen(seed_out, "wb");
        if (f) fwrite(o, 1, *size, f), fclose(f);
    }
    free(img), free(sec);
    return o;
}

TEST(prefetcher_ranks_by_the_file_probe) {
    uint64_t size, off;
    uint8_t *img = pred_image(&size, &off);
    CHECK(img != NULL);
    if (!img) return;
    vib3_arena arena;
    vib3_file f;
    CHECK_OK(vib3_arena_init(&arena, 64u << 20, "test", 0));
    CHECK_OK(vib3_file_open_mem(&f, img, size, "pred.vib3", &arena, 0));
    CHECK(f.pred != NULL);
    if (!f.pred) return;
    CHECK_EQ_U64(f.pred->n_pairs, 8);
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    snprintf(cfg.prefetch, sizeof cfg.prefetch, "lookahead");
    vib3_prefetcher *pf, *pr;
    CHECK_OK(vib3_prefetcher_open(&pf, &f, NULL, &cfg, &arena));
    setenv("VIB3_PREFETCH_PROBES", "0", 1);
    CHECK_OK(vib3_prefetcher_open(&pr, &f, NULL, &cfg, &arena));
    unsetenv("VIB3_PREFETCH_PROBES");
    vib3_prefetch_stats st;
    vib3_prefetcher_stats_get(pf, &st);
    CHECK_STR(st.predictor, "probe");
    CHECK_EQ_U64(st.probe_pairs, 8);
    vib3_prefetcher_stats_get(pr, &st);
    CHECK_STR(st.predictor, "router");
    uint32_t g[8];
    float x0[64] = {1};
    CHECK_EQ_U64(vib3_prefetcher_predict_ahead(pf, 0, 1, x0, 0, g, 8), 2); /* with probes: k guesses by default */
    CHECK_EQ_U64(vib3_prefetcher_predict_ahead(pr, 0, 1, x0, 0, g, 8), 3); /* router: k + 1 */
    vib3_prefetcher_set_margin(pf, 1);
    uint32_t E = fopts.n_experts, H = fopts.hidden, differ = 0;
    uint64_t seed = 5;
    for (uint32_t i = 0; i < f.pred->n_pairs; i++) {
        const vib3_pred_pair *pp = &f.pred_pairs[i];
        const float *b = (const float *)(f.pred_data + i * f.pred_pair_bytes);
        const float *W = (const float *)(f.pred_data + i * f.pred_pair_bytes + f.pred_w_offset);
        for (int t = 0; t < 10; t++) {
            float x[64], s[8];
            for (uint32_t j = 0; j < H; j++) x[j] = (float)gauss(&seed);
            matvec(W, x, s, E, H);
            for (uint32_t e = 0; e < E; e++) s[e] += b[e];
            uint32_t want[3], got[8], via_router[8];
            top_n(s, E, 3, want);
            uint32_t n = vib3_prefetcher_predict_ahead(pf, pp->source, pp->target, x, 0, got, 8);
            CHECK_EQ_U64(n, 3);
            for (uint32_t j = 0; j < 3 && j < n; j++)
                CHECK_MSG(got[j] == want[j], "pair %u (%u -> %u%s) guess %u: %u, probe says %u", i, pp->source,
                          pp->target, pp->flags ? "'" : "", j, got[j], want[j]);
            n = vib3_prefetcher_predict_ahead(pr, pp->source, pp->target, x, 0, via_router, 8);
            differ += n == 3 && memcmp(via_router, want, sizeof want) != 0;
        }
    }
    CHECK_MSG(differ > 20, "router and probe agree on %u of 80 rankings: the test cannot see a probe ignored", 80 - differ);
    vib3_prefetcher_close(pf);
    vib3_prefetcher_close(pr);
    vib3_file_close(&f);
    vib3_arena_fini(&arena);
    free(img);
}

TEST(prefetcher_reads_f16_probes) {
    setenv("PROBE_TEST_F16", "1", 1);
    uint64_t size, off;
    uint8_t *img = pred_image(&size, &off);
    unsetenv("PROBE_TEST_F16");
    CHECK(img != NULL);
    if (!img) return;
    vib3_arena arena;
    vib3_file f;
    CHECK_OK(vib3_arena_init(&arena, 64u << 20, "test", 0));
    CHECK_OK(vib3_file_open_mem(&f, img, size, "pred16.vib3", &arena, 0));
    CHECK(f.pred != NULL && f.pred->dtype == VIB3_DTYPE_F16);
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    snprintf(cfg.prefetch, sizeof cfg.prefetch, "lookahead");
    vib3_prefetcher *pf = NULL;
    CHECK_OK(vib3_prefetcher_open(&pf, &f, NULL, &cfg, &arena));
    if (!f.pred || !pf) return;
    uint32_t E = fopts.n_experts, H = fopts.hidden, same = 0, total = 0;
    uint64_t seed = 6;
    for (uint32_t i = 0; i < f.pred->n_pairs; i++) {
        const vib3_pred_pair *pp = &f.pred_pairs[i];
        const float *b = (const float *)(f.pred_data + i * f.pred_pair_bytes);
        const uint16_t *W = (const uint16_t *)(f.pred_data + i * f.pred_pair_bytes + f.pred_w_offset);
        for (int t = 0; t < 10; t++) {
            float x[64], s[8];
            for (uint32_t j = 0; j < H; j++) x[j] = (float)gauss(&seed);
            for (uint32_t e = 0; e < E; e++) {
                double a = b[e];
                for (uint32_t j = 0; j < H; j++) a += (double)vib3_f16_to_f32(W[e * H + j]) * x[j];
                s[e] = (float)a;
            }
            uint32_t want[2], got[8];
            top_n(s, E, 2, want);
            uint32_t n = vib3_prefetcher_predict_ahead(pf, pp->source, pp->target, x, 0, got, 8);
            same += n == 2 && got[0] == want[0] && got[1] == want[1];
            total++;
        }
    }
    CHECK_MSG(same >= total - 2, "f16 probes: %u of %u rankings as the probe's", same, total);
    vib3_prefetcher_close(pf);
    vib3_file_close(&f);
    vib3_arena_fini(&arena);
    free(img);
}

TEST(reader_rejects_bad_pred) {
    uint64_t size, off;
    uint8_t *img = pred_image(&size, &off);
    CHECK(img != NULL);
    if (!img) return;
    struct {
        uint32_t at;     /* byte offset in the section */
        uint32_t value;
        const char *msg; /* expected in the error */
    } bad[] = {
        {0, 5, "n_layers 5"},
        {4, 7, "n_experts 7"},
        {8, 63, "hidden 63"},
        {12, 0, "depth 0"},
        {12, 9, "depth 9"},
        {16, 99, "dtype 99"},
        {20, 0, "n_pairs 0"},
        {20, 9, "n_pairs 9"},
        {20, 7, "PRED is"}, /* fewer pairs than the bytes hold */
        {32, 3, "method 3"},
        {48, 1, "reserved[3] is 1"},
        {64 + 16 * 2 + 0, 4, "source 4"},
        {64 + 16 * 2 + 4, 1, "source 1 -> target 1"},
        {64 + 16 * 1 + 8, 1, "is not 1..2 layers ahead"}, /* 0 -> 2 marked as the next token's */
        {64 + 16 * 0 + 8, 6, "flags 0x6"},
        {64 + 16 * 0 + 12, 0x7fc00000u, "lambda nan"},
        {64 + 16 * 0 + 12, 0xbf800000u, "lambda -1"},
    };
    vib3_arena arena;
    CHECK_OK(vib3_arena_init(&arena, 64u << 20, "test", 0));
    uint8_t *copy = malloc(size);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(copy, img, size);
        memcpy(copy + off + bad[i].at, &bad[i].value, 4);
        fixture_resign(copy, size);
        vib3_file f;
        size_t mark = vib3_arena_mark(&arena);
        vib3_err e = vib3_file_open_mem(&f, copy, size, "bad.vib3", &arena, 0);
        CHECK_MSG(e == VIB3_ERR_FORMAT, "case %zu (%s): open -> %d", i, bad[i].msg, (int)e);
        CHECK_MSG(strstr(vib3_err_msg(), bad[i].msg) && strstr(vib3_err_msg(), "PRED"), "case %zu: \"%s\" lacks \"%s\"", i,
                  vib3_err_msg(), bad[i].msg);
        if (!e) vib3_file_close(&f);
        vib3_arena_reset(&arena, mark);
    }
    /* a section shorter than its table says */
    memcpy(copy, img, size);
    fixture_section(copy, VIB3_SEC_PREDICT)->bytes -= 8;
    fixture_resign(copy, size);
    vib3_file f;
    CHECK(vib3_file_open_mem(&f, copy, size, "short.vib3", &arena, 0) == VIB3_ERR_FORMAT);
    CHECK_MSG(strstr(vib3_err_msg(), "section PRED is"), "%s", vib3_err_msg());
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* a flipped weight byte: the section checksum */
    memcpy(copy, img, size);
    copy[off + 200] ^= 0x40;
    CHECK(vib3_file_open_mem(&f, copy, size, "flip.vib3", &arena, 0) == VIB3_ERR_CHECKSUM);
#endif
    /* and the untouched image opens */
    CHECK_OK(vib3_file_open_mem(&f, img, size, "good.vib3", &arena, 0));
    vib3_file_close(&f);
    free(copy);
    free(img);
    vib3_arena_fini(&arena);
}

/* ---- tinymix-brown: fitted by the converter, scored on held-out text ------------------------- */
static double heldout_recall(const char *model, int probes, int margin, char *predictor) {
    if (!probes) setenv("VIB3_PREFETCH_PROBES", "0", 1);
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    snprintf(cfg.prefetch, sizeof cfg.prefetch, "lookahead");
    vib3_engine_params ep = {.n_seq = 1, .ctx_size = 1024, .threads = 2, .flags = VIB3_ENGINE_NO_PREFETCH};
    vib3_engine *e = NULL;
    vib3_arena arena;
    vib3_prefetcher *pf = NULL;
    double recall = -1;
    static uint32_t ids[2048];
    static char text[6000];
    size_t n = 1;
    FILE *fp = fopen(vib3_test_model_path("tinymix-brown/heldout.txt"), "rb");
    size_t len = fp ? fread(text, 1, sizeof text - 1, fp) : 0;
    if (fp) fclose(fp);
    while (len > 0 && ((unsigned char)text[len - 1] & 0xC0) == 0x80) len--;
    if (len > 0 && (unsigned char)text[len - 1] >= 0xC0) len--;
    if (vib3_engine_open(&e, model, &cfg, &ep) || vib3_arena_init(&arena, 16u << 20, "probe", 0) ||
        vib3_prefetcher_open(&pf, vib3_engine_file(e), NULL, &cfg, &arena) ||
        n < 1)
        goto out;
    vib3_err te = vib3_tokenizer_encode(vib3_engine_tokenizer(e), text, len, 0, ids, 2048, &n);
    if ((te && te != VIB3_ERR_LIMIT) || n < 1200) goto out;
    vib3_prefetcher_set_margin(pf, (uint32_t)margin);
    vib3_engine_set_moe_hook(e, vib3_prefetcher_moe_hook, pf);
    vib3_seq *s;
    if (vib3_seq_acquire(e, &s)) goto out;
    /* tokens 600..1200 one at a time (decode: one row per hook call) */
    if (vib3_seq_prefill(s, ids + 600, 1, NULL) == VIB3_OK) {
        size_t i = 601;
        while (i < 1200 && vib3_seq_decode(s, ids[i]) == VIB3_OK) i++;
        vib3_prefetch_stats st;
        vib3_prefetcher_stats_get(pf, &st);
        recall = i == 1200 ? st.recall[1] : -1;
        snprintf(predictor, 16, "%s", st.predictor);
    }
    vib3_seq_release(s);
out:
    if (recall < 0) fprintf(stderr, "heldout_recall: %s\n", vib3_err_msg());
    if (pf) vib3_prefetcher_close(pf), vib3_arena_fini(&arena);
    if (e) vib3_engine_close(e);
    unsetenv("VIB3_PREFETCH_PROBES");
    return recall;
}

TEST(tinymix_probe_beats_router_on_heldout) {
    const char *src = vib3_test_model_path("tinymix-brown");
    if (!src || !vib3_test_model_path("tinymix-brown/heldout.txt")) SKIP("tinymix-brown not available");
    if (access("models/calib/default.txt", R_OK) != 0) SKIP("models/calib/default.txt not found (run from the repo root)");
    char model[1024];
    snprintf(model, sizeof model, "%s/tinymix-probe.vib3", vib3_test_tmpdir());
    vib3_convert_opts o = {0};
    o.model_path = src;
    o.output_path = model;
    o.expert_dtype = VIB3_DTYPE_Q4_0;
    o.calib_path = "models/calib/default.txt"; /* not the held-out text */
    o.threads = 2;
    o.quiet = true;
    CHECK_OK(vib3_convert(&o));
    char p1[16] = "", p0[16] = "", p2[16] = "";
    double with = heldout_recall(model, 1, 1, p1), without = heldout_recall(model, 0, 1, p0);
    double with_k = heldout_recall(model, 1, 0, p2), without_k = heldout_recall(model, 0, 0, p2);
    fprintf(stderr, "  tinymix held-out tokens 600..1200: look-ahead recall of layer l+1 at 3 guesses: probe %.1f%%, router %.1f%%; "
            "at 2: probe %.1f%%, router %.1f%%\n", 100 * with, 100 * without, 100 * with_k, 100 * without_k);
    CHECK_STR(p1, "probe");
    CHECK_STR(p0, "router");
    CHECK_MSG(with > 0 && without > 0 && with >= without + 0.04, "at 3 guesses: probe %.3f vs router %.3f", with, without);
    CHECK_MSG(with_k > 0 && without_k > 0 && with_k >= without_k + 0.04, "at 2 guesses: probe %.3f vs router %.3f", with_k,
              without_k);
}
