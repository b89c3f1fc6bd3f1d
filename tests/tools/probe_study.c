/* probe_study — offline study: can a trained linear probe predict a later
 * layer's experts from an earlier layer's router input better than the
 * look-ahead router (src/index/prefetch.c)? (issue 6, predictive prefetch)
 *
 *   probe_study MODEL.vib3 --calib TEXT [--calib TEXT2] --eval TEXT [--calib-tokens N] [--eval-tokens N]
 *               [--first N] [--threads N] [--ex 1]
 *
 * Runs the engine (prefill, no prefetcher) over the calibration texts in
 * windows of 256 tokens and over the evaluation text (the first --first tokens
 * in one window as bench/storage_tinymix.sh feeds them, then windows of 512),
 * recording every MoE layer's router input x_l (what the MoE hook receives)
 * and routed experts. Router logits of layer t are recomputed from x_t with
 * layer t's router weights (+ selection bias). For every source layer l and
 * target t = l+1, l+2 (same token) and the wrap targets (the next token's
 * layers 0, 1 from the last layers) it fits, on the calibration rows:
 *   probe      W (E x H) + b, ridge on [x_l, 1] -> target logits (lambda
 *              chosen on the last 20% of the calibration rows by recall at
 *              k + 1 guesses), shrunk towards 0 ("probe0") or towards the
 *              look-ahead router's weights ("probeR": lambda -> inf is the
 *              look-ahead router);
 *   probe-hot  the same to the routed k-hot indicator;
 *   diag       router_t(d (.) x_l) + b: H + E numbers per pair (the cheap
 *              form for huge hidden sizes), d shrunk towards the look-ahead's
 *              re-weighting w_t / w_l;
 * (--ex 1: the probes also see the source layer's routed experts, one-hot)
 * and prints expert-level precision / recall at 2, 3, 4 guesses on the
 * evaluation rows beside the look-ahead router's, and (row "file") the
 * probes of the model's own PRED section when it has one (what `vib3
 * convert` fitted on its calibration text). Study only: malloc'd,
 * nothing here is product code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"
#include "simd/simd.h"

#define MAXE 64u
#define MAXK 8u

typedef struct rows_t {
    uint32_t n, cap;
    float *x;         /* (L, cap, H) router inputs */
    int32_t *ex;      /* (L, cap, k) routed experts */
    uint8_t *next;    /* (cap): row n + 1 is the next token of the same sequence */
    uint32_t cnt[64]; /* rows seen per layer */
} rows_t;

static uint32_t L, E, H, K;
static uint32_t FX, DD, XB; /* extra features (--ex: the source layer's routed experts, one-hot), D = H + FX + 1, bias index */
static float *router;   /* (L, E, H) */
static float *rbias;    /* (L, E) */
static float *nrm;      /* (L, H) ffn_norm weights */
static rows_t *cur;

static int tensor_floats(const vib3_file *f, const char *name, uint64_t n_elem, float *out) {
    const vib3_tensor_entry *t = vib3_file_find_tensor(f, name);
    if (!t) return 0;
    const uint8_t *w = vib3_file_tensor_data(f, t);
    uint64_t rb = vib3_dtype_row_bytes((vib3_dtype)t->dtype, n_elem);
    if (!rb || rb > t->bytes) return 0;
    switch (t->dtype) {
    case VIB3_DTYPE_F32: memcpy(out, w, n_elem * 4); return 1;
    case VIB3_DTYPE_F16: for (uint64_t i = 0; i < n_elem; i++) out[i] = vib3_f16_to_f32(((const uint16_t *)w)[i]); return 1;
    case VIB3_DTYPE_BF16: for (uint64_t i = 0; i < n_elem; i++) out[i] = vib3_bf16_to_f32(((const uint16_t *)w)[i]); return 1;
    case VIB3_DTYPE_Q8_0: {
        const vib3_block_q8_0 *b = (const vib3_block_q8_0 *)w;
        for (uint64_t j = 0; j < n_elem / VIB3_QBLOCK; j++)
            for (uint32_t i = 0; i < VIB3_QBLOCK; i++) out[j * VIB3_QBLOCK + i] = vib3_f16_to_f32(b[j].d) * (float)b[j].qs[i];
        return 1;
    }
    default: return 0;
    }
}

static void hook(void *ctx, uint32_t layer, const float *x, uint32_t n_rows, const int32_t *experts, uint32_t k) {
    (void)ctx;
    rows_t *r = cur;
    if (layer >= L || k != K) return;
    for (uint32_t i = 0; i < n_rows; i++) {
        uint32_t n = r->cnt[layer];
        if (n >= r->cap) return;
        memcpy(r->x + ((size_t)layer * r->cap + n) * H, x + (size_t)i * H, H * sizeof(float));
        memcpy(r->ex + ((size_t)layer * r->cap + n) * K, experts + (size_t)i * k, K * sizeof(int32_t));
        r->cnt[layer]++;
    }
}

static int rows_init(rows_t *r, uint32_t cap) {
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->x = malloc((size_t)L * cap * H * sizeof(float));
    r->ex = malloc((size_t)L * cap * K * sizeof(int32_t));
    r->next = calloc(cap, 1);
    return r->x && r->ex && r->next;
}

/* run ids[0..n) in windows of `win` (fresh KV each) into r */
static int run_text(vib3_engine *e, rows_t *r, const uint32_t *ids, size_t n, uint32_t win) {
    vib3_seq *s;
    if (vib3_seq_acquire(e, &s)) return 0;
    cur = r;
    for (size_t pos = 0; pos < n && r->n < r->cap; pos += win) {
        uint32_t m = (uint32_t)(n - pos < win ? n - pos : win);
        if (r->n + m > r->cap) m = r->cap - r->n;
        vib3_seq_reset(s);
        if (vib3_seq_prefill(s, ids + pos, m, NULL)) {
            fprintf(stderr, "probe_study: %s\n", vib3_err_msg());
            return 0;
        }
        for (uint32_t l = 0; l < L; l++)
            if (r->cnt[l] != r->n + m) {
                fprintf(stderr, "probe_study: layer %u saw %u rows, want %u\n", l, r->cnt[l], r->n + m);
                return 0;
            }
        for (uint32_t i = 0; i + 1 < m; i++) r->next[r->n + i] = 1;
        r->n += m;
    }
    vib3_seq_release(s);
    return 1;
}

static const float *X(const rows_t *r, uint32_t l, uint32_t i) { return r->x + ((size_t)l * r->cap + i) * H; }
static const int32_t *EX(const rows_t *r, uint32_t l, uint32_t i) { return r->ex + ((size_t)l * r->cap + i) * K; }

static void logits(uint32_t t, const float *x, double *y) {
    for (uint32_t e = 0; e < E; e++) {
        const float *w = router + ((size_t)t * E + e) * H;
        double s = rbias[t * E + e];
        for (uint32_t i = 0; i < H; i++) s += (double)w[i] * x[i];
        y[e] = s;
    }
}

/* ---- moments and solves ------------------------------------------------------------ */
enum { T_LOGIT, T_HOT, T_N };

typedef struct mom_t {
    double *M;        /* (H+1, H+1) sum z z^T, z = [x, 1] */
    double *C[T_N];   /* (H+1, E) sum z y^T per target kind */
    uint64_t n;
} mom_t;

static void mom_add(mom_t *m, const float *x, const int32_t *exs, const double *ylog, const int32_t *hot) {
    uint32_t D = DD;
    double z[4097 + MAXE];
    for (uint32_t i = 0; i < H; i++) z[i] = x[i];
    for (uint32_t i = 0; i < FX; i++) z[H + i] = 0;
    for (uint32_t j = 0; FX && j < K; j++)
        if (exs[j] >= 0 && (uint32_t)exs[j] < E) z[H + (uint32_t)exs[j]] = 1;
    z[XB] = 1;
    for (uint32_t i = 0; i < D; i++) {
        double zi = z[i];
        double *row = m->M + (size_t)i * D;
        for (uint32_t j = 0; j <= i; j++) row[j] += zi * z[j];
        for (uint32_t e = 0; e < E; e++) m->C[T_LOGIT][(size_t)i * E + e] += zi * ylog[e];
        for (uint32_t j = 0; j < K; j++)
            if (hot[j] >= 0 && (uint32_t)hot[j] < E) m->C[T_HOT][(size_t)i * E + (uint32_t)hot[j]] += zi;
    }
    m->n++;
}

static void mom_init(mom_t *m) {
    uint32_t D = DD;
    m->M = calloc((size_t)D * D, sizeof(double));
    for (int t = 0; t < T_N; t++) m->C[t] = calloc((size_t)D * E, sizeof(double));
    m->n = 0;
}
static void mom_free(mom_t *m) {
    free(m->M);
    for (int t = 0; t < T_N; t++) free(m->C[t]);
}
static void mom_sym(mom_t *m) {
    uint32_t D = DD;
    for (uint32_t i = 0; i < D; i++)
        for (uint32_t j = i + 1; j < D; j++) m->M[(size_t)i * D + j] = m->M[(size_t)j * D + i];
}

/* solve A X = B (A n x n SPD, overwritten by its Cholesky factor; B n x m overwritten by X) */
static int chol_solve(double *A, double *B, uint32_t n, uint32_t m) {
    for (uint32_t j = 0; j < n; j++) {
        double s = A[(size_t)j * n + j];
        for (uint32_t p = 0; p < j; p++) s -= A[(size_t)j * n + p] * A[(size_t)j * n + p];
        if (s <= 0) return 0;
        double d = sqrt(s);
        A[(size_t)j * n + j] = d;
        for (uint32_t i = j + 1; i < n; i++) {
            double t = A[(size_t)i * n + j];
            for (uint32_t p = 0; p < j; p++) t -= A[(size_t)i * n + p] * A[(size_t)j * n + p];
            A[(size_t)i * n + j] = t / d;
        }
    }
    for (uint32_t c = 0; c < m; c++) {
        for (uint32_t i = 0; i < n; i++) { /* L y = b */
            double t = B[(size_t)i * m + c];
            for (uint32_t p = 0; p < i; p++) t -= A[(size_t)i * n + p] * B[(size_t)p * m + c];
            B[(size_t)i * m + c] = t / A[(size_t)i * n + i];
        }
        for (uint32_t i = n; i-- > 0;) { /* L^T x = y */
            double t = B[(size_t)i * m + c];
            for (uint32_t p = i + 1; p < n; p++) t -= A[(size_t)p * n + i] * B[(size_t)p * m + c];
            B[(size_t)i * m + c] = t / A[(size_t)i * n + i];
        }
    }
    return 1;
}

/* the look-ahead router as a (H+1, E) matrix: W0[i][e] = R_t[e][i] w_t[i] / w_l[i], bias row */
static void lookahead_matrix(uint32_t l, uint32_t t, double *W0) {
    for (uint32_t i = 0; i < H; i++) {
        double wl = nrm[l * H + i], wt = nrm[t * H + i];
        double s = fabs(wl) > 1e-12 ? wt / wl : 0;
        for (uint32_t e = 0; e < E; e++) W0[(size_t)i * E + e] = router[((size_t)t * E + e) * H + i] * s;
    }
    for (uint32_t i = H; i < XB; i++)
        for (uint32_t e = 0; e < E; e++) W0[(size_t)i * E + e] = 0;
    for (uint32_t e = 0; e < E; e++) W0[(size_t)XB * E + e] = rbias[t * E + e];
}

/* full probe: W = (M + lam D)^-1 (C + lam D W0), D = identity without the bias row */
static int fit_full(const mom_t *m, int target, double lam_rel, const double *W0, double *W) {
    uint32_t D = DD;
    double *A = malloc((size_t)D * D * sizeof(double));
    double tr = 0;
    for (uint32_t i = 0; i < H; i++) tr += m->M[(size_t)i * D + i];
    double lam = lam_rel * tr / H + 1e-9;
    memcpy(A, m->M, (size_t)D * D * sizeof(double));
    memcpy(W, m->C[target], (size_t)D * E * sizeof(double));
    for (uint32_t i = 0; i < XB; i++) {
        A[(size_t)i * D + i] += lam;
        if (W0)
            for (uint32_t e = 0; e < E; e++) W[(size_t)i * E + e] += lam * W0[(size_t)i * E + e];
    }
    A[(size_t)XB * D + XB] += 1e-9;
    int ok = chol_solve(A, W, D, E);
    free(A);
    return ok;
}

/* diag form: logit_e = sum_i R_t[e][i] d_i x_i + b_e, d shrunk to d0 = w_t / w_l; result as a (H+1, E) matrix */
static int fit_diag(const mom_t *m, uint32_t l, uint32_t t, double lam_rel, double *W) {
    if (FX) return 0;
    uint32_t D = DD, N = H + E;
    const float *R = router + (size_t)t * E * H;
    double *A = calloc((size_t)N * N, sizeof(double)), *b = calloc(N, sizeof(double));
    for (uint32_t i = 0; i < H; i++) {
        for (uint32_t j = 0; j < H; j++) {
            double g = 0;
            for (uint32_t e = 0; e < E; e++) g += (double)R[(size_t)e * H + i] * R[(size_t)e * H + j];
            A[(size_t)i * N + j] = g * m->M[(size_t)i * D + j];
        }
        for (uint32_t e = 0; e < E; e++) {
            double v = R[(size_t)e * H + i] * m->M[(size_t)i * D + H];
            A[(size_t)i * N + H + e] = v;
            A[(size_t)(H + e) * N + i] = v;
            b[i] += R[(size_t)e * H + i] * m->C[T_LOGIT][(size_t)i * E + e];
        }
    }
    for (uint32_t e = 0; e < E; e++) {
        A[(size_t)(H + e) * N + H + e] = (double)m->n + 1e-9;
        b[H + e] = m->C[T_LOGIT][(size_t)H * E + e];
    }
    double tr = 0;
    for (uint32_t i = 0; i < H; i++) tr += A[(size_t)i * N + i];
    double lam = lam_rel * tr / H + 1e-9;
    for (uint32_t i = 0; i < H; i++) {
        double wl = nrm[l * H + i], wt = nrm[t * H + i];
        A[(size_t)i * N + i] += lam;
        b[i] += lam * (fabs(wl) > 1e-12 ? wt / wl : 0);
    }
    int ok = chol_solve(A, b, N, 1);
    if (ok) {
        for (uint32_t i = 0; i < H; i++)
            for (uint32_t e = 0; e < E; e++) W[(size_t)i * E + e] = R[(size_t)e * H + i] * b[i];
        for (uint32_t e = 0; e < E; e++) W[(size_t)H * E + e] = b[H + e];
    }
    free(A), free(b);
    return ok;
}

/* ---- scoring ------------------------------------------------------------------------ */
typedef struct acc_t {
    uint64_t hit[5], rows; /* hits at g = 2, 3, 4 guesses (index g) */
} acc_t;

static void score_rows(const rows_t *r, uint32_t l, uint32_t t, int wrap, uint32_t i0, uint32_t i1, const double *W,
                       acc_t *a) {
    memset(a, 0, sizeof *a);
    for (uint32_t i = i0; i < i1; i++) {
        if (wrap && !r->next[i]) continue;
        const float *x = X(r, l, i);
        const int32_t *ex = EX(r, t, wrap ? i + 1 : i), *exs = EX(r, l, i);
        double s[MAXE];
        for (uint32_t e = 0; e < E; e++) {
            double v = W[(size_t)XB * E + e];
            for (uint32_t j = 0; j < H; j++) v += W[(size_t)j * E + e] * x[j];
            for (uint32_t j = 0; FX && j < K; j++)
                if (exs[j] >= 0 && (uint32_t)exs[j] < E) v += W[(size_t)(H + (uint32_t)exs[j]) * E + e];
            s[e] = v;
        }
        uint8_t taken[MAXE] = {0};
        uint32_t hits = 0;
        for (uint32_t g = 1; g <= 4 && g <= E; g++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t e = 0; e < E; e++)
                if (!taken[e] && (best == UINT32_MAX || s[e] > s[best])) best = e;
            taken[best] = 1;
            for (uint32_t j = 0; j < K; j++) hits += ex[j] == (int32_t)best;
            if (g >= 2) a->hit[g] += hits;
        }
        a->rows++;
    }
}

static void print_acc(const char *name, const acc_t *a, double lam) {
    printf("  %-9s", name);
    for (uint32_t g = 2; g <= 4; g++)
        printf("  g%u P %5.1f R %5.1f", g, a->rows ? 100.0 * a->hit[g] / (a->rows * (double)g) : 0,
               a->rows ? 100.0 * a->hit[g] / (a->rows * (double)K) : 0);
    if (lam >= 0) printf("   (lambda %.0e)", lam);
    printf("\n");
}

static int file_probe(const vib3_file *f, uint32_t l, uint32_t t, int wrap, double *W) {
    if (!f->pred) return 0;
    for (uint32_t i = 0; i < f->pred->n_pairs; i++) {
        const vib3_pred_pair *p = &f->pred_pairs[i];
        if (p->source != l || p->target != t || (int)(p->flags & VIB3_PRED_NEXT_TOKEN) != wrap) continue;
        const uint8_t *base = f->pred_data + i * f->pred_pair_bytes;
        const float *b = (const float *)base;
        for (uint32_t i = H; i < XB; i++)
            for (uint32_t e = 0; e < E; e++) W[(size_t)i * E + e] = 0;
        for (uint32_t e = 0; e < E; e++) {
            W[(size_t)XB * E + e] = b[e];
            for (uint32_t j = 0; j < H; j++)
                W[(size_t)j * E + e] = f->pred->dtype == VIB3_DTYPE_F32
                                           ? ((const float *)(base + f->pred_w_offset))[(size_t)e * H + j]
                                           : vib3_f16_to_f32(((const uint16_t *)(base + f->pred_w_offset))[(size_t)e * H + j]);
        }
        return 1;
    }
    return 0;
}

static uint32_t *tokenize(vib3_tokenizer *tok, const char *path, size_t cap, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[4 << 20];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    uint32_t *ids = malloc(cap * sizeof *ids);
    vib3_err e = vib3_tokenizer_encode(tok, buf, len, 0, ids, cap, n);
    if (e && e != VIB3_ERR_LIMIT) {
        fprintf(stderr, "probe_study: %s: %s\n", path, vib3_err_msg());
        return NULL;
    }
    return ids;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe_study MODEL.vib3 --calib TEXT [--calib TEXT2] --eval TEXT [--calib-tokens N] "
                        "[--eval-tokens N] [--first N] [--threads N]\n");
        return 2;
    }
    const char *calib[4] = {0}, *eval = NULL;
    int n_calib = 0;
    uint32_t calib_max = 40000, eval_max = 20000, first = 442, threads = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--calib") && n_calib < 4) calib[n_calib++] = argv[i + 1];
        else if (!strcmp(argv[i], "--eval")) eval = argv[i + 1];
        else if (!strcmp(argv[i], "--calib-tokens")) calib_max = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--eval-tokens")) eval_max = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--first")) first = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ex")) FX = (uint32_t)atoi(argv[i + 1]); /* 1: add the one-hot features */
        else {
            fprintf(stderr, "probe_study: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (!n_calib || !eval) return 2;
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    snprintf(cfg.prefetch, sizeof cfg.prefetch, "none");
    vib3_engine_params p = {.n_seq = 1, .ctx_size = 1024, .batch_size = 256, .threads = threads,
                            .flags = VIB3_ENGINE_NO_PREFETCH};
    vib3_engine *eng;
    if (vib3_engine_open(&eng, argv[1], &cfg, &p)) {
        fprintf(stderr, "probe_study: %s\n", vib3_err_msg());
        return 1;
    }
    const vib3_model_config *c = vib3_engine_model(eng);
    const vib3_file *f = vib3_engine_file(eng);
    L = c->n_layers, E = c->n_experts, H = c->hidden_size, K = c->n_experts_per_tok;
    FX = FX ? E : 0;
    DD = H + FX + 1;
    XB = H + FX;
    if (!E || E > MAXE || K > MAXK || L > 64 || H > 4096) {
        fprintf(stderr, "probe_study: unsupported shape\n");
        return 1;
    }
    router = malloc((size_t)L * E * H * sizeof(float));
    rbias = calloc((size_t)L * E, sizeof(float));
    nrm = malloc((size_t)L * H * sizeof(float));
    char name[96];
    for (uint32_t l = 0; l < L; l++) {
        snprintf(name, sizeof name, "blk.%u.ffn_gate_inp.weight", l);
        if (!tensor_floats(f, name, (uint64_t)E * H, router + (size_t)l * E * H)) return 1;
        snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", l);
        if (!tensor_floats(f, name, H, nrm + (size_t)l * H)) return 1;
        snprintf(name, sizeof name, "blk.%u.exp_probs_b.bias", l);
        if ((c->router_flags & VIB3_ROUTER_CORRECTION_BIAS)) tensor_floats(f, name, E, rbias + (size_t)l * E);
    }
    vib3_tokenizer *tok = vib3_engine_tokenizer(eng);
    vib3_engine_set_moe_hook(eng, hook, NULL);
    rows_t cr, er;
    if (!rows_init(&cr, calib_max) || !rows_init(&er, eval_max)) return 1;
    for (int i = 0; i < n_calib; i++) {
        size_t n;
        uint32_t *ids = tokenize(tok, calib[i], calib_max, &n);
        if (!ids || !run_text(eng, &cr, ids, n, 256)) return 1;
        free(ids);
    }
    size_t ne;
    uint32_t *eids = tokenize(tok, eval, eval_max, &ne);
    if (!eids) return 1;
    if (first > ne) first = (uint32_t)ne;
    if (!run_text(eng, &er, eids, first, first) || !run_text(eng, &er, eids + first, ne - first, 512)) return 1;
    printf("probe_study: %u calibration rows, %u evaluation rows (first %u as the bench), L %u E %u k %u H %u\n", cr.n,
           er.n, first, L, E, K, H);

    /* pairs: same token l -> l+1, l+2; wrap: the next token's layer t from layer l (l >= L - 2) */
    static const double lams[] = {1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3, 10, 100};
    const uint32_t n_lam = sizeof lams / sizeof lams[0];
    uint32_t D = DD;
    double *W = malloc((size_t)D * E * sizeof(double)), *W0 = malloc((size_t)D * E * sizeof(double));
    double *ylog = malloc(E * sizeof(double));
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t d = 1; d <= 2; d++) {
            uint32_t t = l + d;
            int wrap = t >= L;
            if (wrap) t -= L;
            if (t >= L) continue;
            uint32_t split = cr.n - cr.n / 5;
            mom_t tr, all;
            mom_init(&tr), mom_init(&all);
            for (uint32_t i = 0; i < cr.n; i++) {
                if (wrap && !cr.next[i]) continue;
                uint32_t j = wrap ? i + 1 : i;
                logits(t, X(&cr, t, j), ylog);
                if (i < split) mom_add(&tr, X(&cr, l, i), EX(&cr, l, i), ylog, EX(&cr, t, j));
                mom_add(&all, X(&cr, l, i), EX(&cr, l, i), ylog, EX(&cr, t, j));
            }
            mom_sym(&tr), mom_sym(&all);
            printf("layer %u -> %s%u (%llu calibration pairs)\n", l, wrap ? "next token's " : "", t,
                   (unsigned long long)all.n);
            lookahead_matrix(l, t, W0);
            acc_t a1, a2;
            score_rows(&er, l, t, wrap, 0, first, W0, &a1);
            score_rows(&er, l, t, wrap, 0, er.n, W0, &a2);
            printf(" first %u:\n", first);
            print_acc("router", &a1, -1);
            acc_t res_first[4], res_all[4];
            double lam_best[4];
            const char *names[4] = {"probe0", "probeR", "probe-hot", "diag"};
            for (int v = 0; v < 4; v++) {
                double best = -1;
                lam_best[v] = lams[0];
                for (uint32_t q = 0; q < n_lam; q++) {
                    int ok = v == 3 ? fit_diag(&tr, l, t, lams[q], W)
                                    : fit_full(&tr, v == 2 ? T_HOT : T_LOGIT, lams[q], v == 1 ? W0 : NULL, W);
                    if (!ok) continue;
                    acc_t av;
                    score_rows(&cr, l, t, wrap, split, cr.n, W, &av);
                    double sc = av.hit[K + 1] + 0.5 * av.hit[K] + 0.25 * av.hit[K + 2 <= 4 ? K + 2 : 4];
                    if (sc > best) best = sc, lam_best[v] = lams[q];
                }
                int ok = v == 3 ? fit_diag(&all, l, t, lam_best[v], W)
                                : fit_full(&all, v == 2 ? T_HOT : T_LOGIT, lam_best[v], v == 1 ? W0 : NULL, W);
                memset(&res_first[v], 0, sizeof(acc_t));
                memset(&res_all[v], 0, sizeof(acc_t));
                if (!ok) continue;
                score_rows(&er, l, t, wrap, 0, first, W, &res_first[v]);
                score_rows(&er, l, t, wrap, 0, er.n, W, &res_all[v]);
            }
            /* the file's own probe for this pair (PRED), as a (H+1, E) matrix */
            acc_t file_first, file_all;
            int have_file = file_probe(f, l, t, wrap, W);
            if (have_file) {
                score_rows(&er, l, t, wrap, 0, first, W, &file_first);
                score_rows(&er, l, t, wrap, 0, er.n, W, &file_all);
            }
            for (int v = 0; v < 4; v++) print_acc(names[v], &res_first[v], lam_best[v]);
            if (have_file) print_acc("file", &file_first, -1);
            printf(" all %u:\n", er.n);
            print_acc("router", &a2, -1);
            for (int v = 0; v < 4; v++) print_acc(names[v], &res_all[v], lam_best[v]);
            if (have_file) print_acc("file", &file_all, -1);
            mom_free(&tr), mom_free(&all);
        }
    vib3_engine_close(eng);
    return 0;
}
