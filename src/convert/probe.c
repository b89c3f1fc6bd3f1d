/* probe.c — fitting the look-ahead expert probes (see probe.h) and writing
 * the PRED section. Converter-side code: plain malloc, freed by
 * vib3_probe_fit_free; nothing here runs at inference. */
#include "convert/probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simd/simd.h"

#define PROBE_WINDOW_MAX 256u /* rows per hook call kept for pairing (calib.c's window) */
#define PROBE_VAL_EVERY 5u    /* every fifth window is the validation split */

/* the last value is "the prior alone" in practice (W = the router look-ahead; a sketch's correction
 * V = 0): chosen when no fit beats it on the validation windows (few rows, a prior that is already
 * right: measured on a generated random 2304-wide model, where the router look-ahead is 0.87 right) */
static const double k_lambdas[] = {1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 1e4};
static const double k_lambdas_big[] = {1e-3, 1e-2, 0.1, 1e4}; /* hidden > 1024: half the factorisations */

struct vib3_probe_fit {
    uint32_t L, E, H, D, depth, n_pairs;
    uint32_t F;           /* features: H, or the sketch size r (z = [S x, 1], D = F + 1) */
    float *S;             /* sketch: (F, H) random +-1/sqrt(F) rows, NULL = z = [x, 1] */
    float *fring;         /* sketch: (depth + 1, PROBE_WINDOW_MAX, F) S x of the ring's inputs */
    float *res;           /* sketch: (PROBE_WINDOW_MAX, E) residual targets y - prior of one pair */
    float *xr;            /* sketch: (H) re-weighted input */
    int prior;            /* shrink towards the look-ahead router (softmax routers) */
    int sigmoid;          /* selection scores are sigmoid(logit) + bias */
    float *router;        /* (L, E, H) */
    float *bias;          /* (L, E) selection bias (0 when none) */
    float *norm;          /* (L, H) ffn_norm weights (1 when none) */
    uint8_t *has;         /* (L) layer has a router */
    uint32_t window;      /* windows started */
    uint32_t *rows;       /* (L) rows this window, UINT32_MAX = not seen */
    float *ring;          /* (depth + 1, PROBE_WINDOW_MAX, H) router inputs of the last layers */
    float *y;             /* (L, PROBE_WINDOW_MAX, E) selection scores of this window */
    double *M[2];         /* (L, D, D) sum z z^T, lower triangle, z = [x, 1]; split 0 train, 1 validation */
    double *C[2];         /* (L * depth, D, E) sum z y^T per pair */
    uint64_t *pair_rows;  /* (L * depth) rows paired, both splits */
    uint32_t first;       /* first layer with a router (counts tokens) */
    uint64_t tokens;
    float *W;             /* (L * depth, E, H) fitted */
    float *b;             /* (L * depth, E) */
    float *lam;           /* (L * depth); < 0: pair not fitted */
    int solved;
};

static int load_floats(const vib3_file *f, const char *name, uint64_t n, float *out) {
    const vib3_tensor_entry *t = vib3_file_find_tensor(f, name);
    if (!t) return 0;
    uint64_t rb = vib3_dtype_row_bytes((vib3_dtype)t->dtype, n);
    if (!rb || rb > t->bytes) return 0;
    const uint8_t *w = vib3_file_tensor_data(f, t);
    switch (t->dtype) {
    case VIB3_DTYPE_F32: memcpy(out, w, n * sizeof(float)); return 1;
    case VIB3_DTYPE_F16: for (uint64_t i = 0; i < n; i++) out[i] = vib3_f16_to_f32(((const uint16_t *)w)[i]); return 1;
    case VIB3_DTYPE_BF16: for (uint64_t i = 0; i < n; i++) out[i] = vib3_bf16_to_f32(((const uint16_t *)w)[i]); return 1;
    case VIB3_DTYPE_Q8_0: {
        const vib3_block_q8_0 *bl = (const vib3_block_q8_0 *)w;
        for (uint64_t j = 0; j < n / VIB3_QBLOCK; j++)
            for (uint32_t i = 0; i < VIB3_QBLOCK; i++)
                out[j * VIB3_QBLOCK + i] = vib3_f16_to_f32(bl[j].d) * (float)bl[j].qs[i];
        return 1;
    }
    default: return 0;
    }
}

void vib3_probe_fit_free(vib3_probe_fit *p) {
    if (!p) return;
    free(p->router), free(p->bias), free(p->norm), free(p->has), free(p->rows), free(p->ring), free(p->y);
    for (int s = 0; s < 2; s++) free(p->M[s]), free(p->C[s]);
    free(p->W), free(p->b), free(p->lam), free(p->pair_rows);
    free(p->S), free(p->fring), free(p->res), free(p->xr);
    free(p);
}

/* the fit's arrays for L x E x H; NULL in *out (note says why) when over the limits */
static vib3_err fit_alloc(vib3_probe_fit **out, uint32_t L, uint32_t E, uint32_t H, uint32_t depth, int sigmoid,
                          uint64_t mem_bytes, char *note, size_t note_cap) {
    *out = NULL;
    if (!E || L < 2) return snprintf(note, note_cap, "none (not a MoE model)"), VIB3_OK;
    /* above VIB3_PROBE_HIDDEN_MAX (or VIB3_PROBE_SKETCH=r, a study switch) the fit runs on a random
     * sketch S x of r features and learns a correction of the look-ahead router (probe.h) */
    const char *sk = getenv("VIB3_PROBE_SKETCH");
    uint32_t F = sk && *sk && atoi(sk) > 0 ? (uint32_t)atoi(sk) : H > VIB3_PROBE_HIDDEN_MAX ? VIB3_PROBE_SKETCH_DIM : H;
    if (F > H) F = H;
    if (F < H && (sigmoid || H > VIB3_PROBE_SKETCH_HIDDEN_MAX))
        return snprintf(note, note_cap, "none (hidden %u%s)", H, sigmoid ? ", sigmoid router" : " too large"), VIB3_OK;
    if (depth < 1) depth = 1;
    if (depth > L) depth = L;
    if (depth > 8) depth = 8;
    uint64_t D = (uint64_t)F + 1, P = (uint64_t)L * depth;
    uint64_t need = 2 * 8 * (L * D * D + P * D * E) + 4 * ((uint64_t)L * E * H + P * E * H) +
                    4 * ((uint64_t)(depth + 1) * PROBE_WINDOW_MAX * (H + (F < H ? F : 0)) +
                         (uint64_t)L * PROBE_WINDOW_MAX * E) +
                    (F < H ? 4 * (uint64_t)F * H : 0);
    if (need > mem_bytes)
        return snprintf(note, note_cap, "none (moments need %llu MiB > %llu MiB)", (unsigned long long)(need >> 20),
                        (unsigned long long)(mem_bytes >> 20)),
               VIB3_OK;
    vib3_probe_fit *p = calloc(1, sizeof *p);
    if (!p) return vib3_err_set(VIB3_ERR_NOMEM, "probes: %zu bytes", sizeof *p);
    p->L = L, p->E = E, p->H = H, p->F = F, p->D = (uint32_t)D, p->depth = depth, p->n_pairs = (uint32_t)P;
    p->sigmoid = sigmoid;
    p->prior = !p->sigmoid;
    p->router = malloc((size_t)L * E * H * sizeof(float));
    p->bias = calloc((size_t)L * E, sizeof(float));
    p->norm = malloc((size_t)L * H * sizeof(float));
    p->has = calloc(L, 1);
    p->rows = malloc(L * sizeof(uint32_t));
    p->ring = malloc((size_t)(depth + 1) * PROBE_WINDOW_MAX * H * sizeof(float));
    p->y = malloc((size_t)L * PROBE_WINDOW_MAX * E * sizeof(float));
    for (int s = 0; s < 2; s++) {
        p->M[s] = calloc((size_t)L * D * D, sizeof(double));
        p->C[s] = calloc((size_t)P * D * E, sizeof(double));
    }
    p->W = calloc((size_t)P * E * H, sizeof(float));
    p->b = calloc((size_t)P * E, sizeof(float));
    p->lam = malloc((size_t)P * sizeof(float));
    p->pair_rows = calloc((size_t)P, sizeof(uint64_t));
    if (!p->router || !p->bias || !p->norm || !p->has || !p->rows || !p->ring || !p->y || !p->M[0] || !p->M[1] ||
        !p->C[0] || !p->C[1] || !p->W || !p->b || !p->lam || !p->pair_rows) {
        vib3_probe_fit_free(p);
        return vib3_err_set(VIB3_ERR_NOMEM, "probes: %llu bytes", (unsigned long long)need);
    }
    if (F < H) {
        p->S = malloc((size_t)F * H * sizeof(float));
        p->fring = malloc((size_t)(depth + 1) * PROBE_WINDOW_MAX * F * sizeof(float));
        p->res = malloc((size_t)PROBE_WINDOW_MAX * E * sizeof(float));
        p->xr = malloc((size_t)H * sizeof(float));
        if (!p->S || !p->fring || !p->res || !p->xr) {
            vib3_probe_fit_free(p);
            return vib3_err_set(VIB3_ERR_NOMEM, "probes: sketch of %u x %u", F, H);
        }
        uint64_t seed = 0x5eed5ce7c4ull; /* fixed: the fit is deterministic */
        float a = 1.0f / sqrtf((float)F);
        for (size_t i = 0; i < (size_t)F * H; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            p->S[i] = (seed >> 63) ? a : -a;
        }
    }
    for (uint32_t i = 0; i < P; i++) p->lam[i] = -1;
    for (size_t i = 0; i < (size_t)L * H; i++) p->norm[i] = 1.0f;
    *out = p;
    return VIB3_OK;
}

vib3_err vib3_probe_fit_init_raw(vib3_probe_fit **out, uint32_t L, uint32_t E, uint32_t H, uint32_t depth,
                                 const float *router, const float *bias, const float *norm, int sigmoid) {
    char note[96];
    vib3_err e = fit_alloc(out, L, E, H, depth, sigmoid, UINT64_MAX, note, sizeof note);
    if (e) return e;
    vib3_probe_fit *p = *out;
    if (!p) return vib3_err_set(VIB3_ERR_INVALID, "probes: %s", note);
    memcpy(p->router, router, (size_t)L * E * H * sizeof(float));
    if (bias) memcpy(p->bias, bias, (size_t)L * E * sizeof(float));
    if (norm) memcpy(p->norm, norm, (size_t)L * H * sizeof(float));
    memset(p->has, 1, L);
    p->first = 0;
    vib3_probe_fit_window(p);
    return VIB3_OK;
}

vib3_err vib3_probe_fit_init(vib3_probe_fit **out, const vib3_file *f, uint32_t depth, uint64_t mem_bytes,
                             char *note, size_t note_cap) {
    const vib3_model_config *c = f->config;
    uint32_t L = c->n_layers, E = c->n_experts, H = c->hidden_size;
    vib3_err err = fit_alloc(out, L, E, H, depth, c->router_scoring == VIB3_ROUTER_SIGMOID, mem_bytes, note, note_cap);
    vib3_probe_fit *p = *out;
    if (err || !p) return err;
    char name[96];
    uint32_t n_has = 0;
    for (uint32_t l = 0; l < L; l++) {
        snprintf(name, sizeof name, "blk.%u.ffn_gate_inp.weight", l);
        if (!load_floats(f, name, (uint64_t)E * H, p->router + (size_t)l * E * H)) continue;
        snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", l);
        if (!load_floats(f, name, H, p->norm + (size_t)l * H))
            for (uint32_t i = 0; i < H; i++) p->norm[(size_t)l * H + i] = 1.0f; /* load may have half-written it */
        if (c->router_flags & VIB3_ROUTER_CORRECTION_BIAS) {
            snprintf(name, sizeof name, "blk.%u.exp_probs_b.bias", l);
            if (!load_floats(f, name, E, p->bias + (size_t)l * E)) {
                snprintf(name, sizeof name, "blk.%u.exp_probs_b", l);
                load_floats(f, name, E, p->bias + (size_t)l * E);
            }
        }
        if (!n_has) p->first = l;
        p->has[l] = 1;
        n_has++;
    }
    if (n_has < 2) {
        vib3_probe_fit_free(p);
        *out = NULL;
        return snprintf(note, note_cap, "none (fewer than 2 router tensors of a supported dtype)"), VIB3_OK;
    }
    vib3_probe_fit_window(p);
    *out = p;
    return VIB3_OK;
}

void vib3_probe_fit_window(vib3_probe_fit *p) {
    if (!p) return;
    for (uint32_t l = 0; l < p->L; l++) p->rows[l] = UINT32_MAX;
    p->window++;
}

/* pair index of (source, distance 1..depth) */
static uint32_t pair_of(const vib3_probe_fit *p, uint32_t source, uint32_t d) { return source * p->depth + d - 1; }
static uint32_t pair_target(const vib3_probe_fit *p, uint32_t i, uint32_t *next) {
    uint32_t s = i / p->depth, t = s + i % p->depth + 1;
    *next = t >= p->L;
    return *next ? t - p->L : t;
}

/* C += sum_r z_src(r) y(r + shift)^T over r < n - 1 (xs: F features per row) */
static void add_cross(const vib3_probe_fit *p, double *C, const float *xs, const float *ys, uint32_t n, uint32_t shift) {
    uint32_t H = p->F, E = p->E;
    for (uint32_t r = 0; r + 1 < n; r++) {
        const float *x = xs + (size_t)r * H, *y = ys + (size_t)(r + shift) * E;
        for (uint32_t i = 0; i < H; i++) {
            double xi = x[i];
            for (uint32_t e = 0; e < E; e++) C[(size_t)i * E + e] += xi * y[e];
        }
        for (uint32_t e = 0; e < E; e++) C[(size_t)H * E + e] += y[e];
    }
}

/* sketch: out (E) = the look-ahead router's selection scores of target t from source src's input x
 * (R_t (x * w_t / w_src) + bias_t: the prior the fit corrects; softmax routers only) */
static void prior_apply(const vib3_probe_fit *p, uint32_t src, uint32_t t, const float *x, float *out) {
    uint32_t H = p->H, E = p->E;
    const float *R = p->router + (size_t)t * E * H, *ws = p->norm + (size_t)src * H, *wt = p->norm + (size_t)t * H;
    for (uint32_t j = 0; j < H; j++) p->xr[j] = fabsf(ws[j]) > 1e-12f ? x[j] * (wt[j] / ws[j]) : 0.0f;
    for (uint32_t e = 0; e < E; e++) {
        double v = 0;
        for (uint32_t j = 0; j < H; j++) v += (double)R[(size_t)e * H + j] * p->xr[j];
        out[e] = (float)(v + p->bias[(size_t)t * E + e]);
    }
}

/* sketch: C += z_f(src rows) (y(rows + shift) - prior(src -> t))^T */
static void add_cross_residual(vib3_probe_fit *p, double *C, uint32_t src, uint32_t t, const float *xs, const float *fs,
                               const float *ys, uint32_t n, uint32_t shift) {
    uint32_t H = p->H, E = p->E;
    for (uint32_t r = 0; r + 1 < n; r++) {
        float *res = p->res + (size_t)r * E;
        prior_apply(p, src, t, xs + (size_t)r * H, res);
        for (uint32_t e = 0; e < E; e++) res[e] = ys[(size_t)(r + shift) * E + e] - res[e];
    }
    add_cross(p, C, fs, p->res, n, 0);
}

void vib3_probe_fit_rows(vib3_probe_fit *p, uint32_t layer, const float *x, uint32_t n_rows) {
    if (!p || layer >= p->L || !p->has[layer] || p->solved) return;
    uint32_t H = p->H, E = p->E, D = p->D, n = n_rows < PROBE_WINDOW_MAX ? n_rows : PROBE_WINDOW_MAX;
    int s = p->window % PROBE_VAL_EVERY == 0; /* windows 5, 10, ...: validation */
    p->rows[layer] = n;
    /* this layer's selection scores */
    float *y = p->y + (size_t)layer * PROBE_WINDOW_MAX * E;
    const float *R = p->router + (size_t)layer * E * H, *bias = p->bias + (size_t)layer * E;
    for (uint32_t r = 0; r < n; r++)
        for (uint32_t e = 0; e < E; e++) {
            double v = 0;
            for (uint32_t i = 0; i < H; i++) v += (double)R[(size_t)e * H + i] * x[(size_t)r * H + i];
            if (p->sigmoid) v = 1.0 / (1.0 + exp(-v));
            y[(size_t)r * E + e] = (float)(v + bias[e]);
        }
    float *ring = p->ring + (size_t)(layer % (p->depth + 1)) * PROBE_WINDOW_MAX * H;
    memcpy(ring, x, (size_t)n * H * sizeof(float));
    uint32_t F = p->F;
    const float *fx = x; /* the features of this layer's rows */
    if (p->S) {
        float *f = p->fring + (size_t)(layer % (p->depth + 1)) * PROBE_WINDOW_MAX * F;
        for (uint32_t r = 0; r < n; r++)
            for (uint32_t k = 0; k < F; k++) {
                const float *sk = p->S + (size_t)k * H, *xr = x + (size_t)r * H;
                float v = 0;
                for (uint32_t j = 0; j < H; j++) v += sk[j] * xr[j];
                f[(size_t)r * F + k] = v;
            }
        fx = f;
    }
    if (layer == p->first) p->tokens += n;
    if (n < 2) return;
    /* second moments of this source layer's features (lower triangle) */
    double *M = p->M[s] + (size_t)layer * D * D;
    for (uint32_t r = 0; r + 1 < n; r++) {
        const float *xr = fx + (size_t)r * F;
        for (uint32_t i = 0; i < F; i++) {
            double xi = xr[i], *row = M + (size_t)i * D;
            for (uint32_t j = 0; j <= i; j++) row[j] += xi * xr[j];
        }
        double *last = M + (size_t)F * D;
        for (uint32_t j = 0; j < F; j++) last[j] += xr[j];
        last[F] += 1;
    }
    /* same-token pairs ending here: sources layer - d, their inputs in the ring */
    for (uint32_t d = 1; d <= p->depth && d <= layer; d++) {
        uint32_t src = layer - d;
        if (!p->has[src] || p->rows[src] != n) continue;
        const float *xs = p->ring + (size_t)(src % (p->depth + 1)) * PROBE_WINDOW_MAX * H;
        double *C = p->C[s] + (size_t)pair_of(p, src, d) * D * E;
        if (p->S)
            add_cross_residual(p, C, src, layer, xs, p->fring + (size_t)(src % (p->depth + 1)) * PROBE_WINDOW_MAX * F,
                               y, n, 0);
        else
            add_cross(p, C, xs, y, n, 0);
        p->pair_rows[pair_of(p, src, d)] += n - 1;
    }
    /* wrap pairs starting here: the next token's layer t (< layer, already seen in this window) */
    for (uint32_t d = 1; d <= p->depth; d++) {
        if (layer + d < p->L) continue;
        uint32_t t = layer + d - p->L;
        if (t >= layer || !p->has[t] || p->rows[t] != n) continue;
        double *C = p->C[s] + (size_t)pair_of(p, layer, d) * D * E;
        const float *yt = p->y + (size_t)t * PROBE_WINDOW_MAX * E;
        if (p->S) add_cross_residual(p, C, layer, t, x, fx, yt, n, 1);
        else add_cross(p, C, x, yt, n, 1);
        p->pair_rows[pair_of(p, layer, d)] += n - 1;
    }
}

/* ---- solve ---------------------------------------------------------------------------- */
/* A (n, n) SPD -> its lower Cholesky factor in place; 0 when not SPD */
static int chol_factor(double *A, uint32_t n) {
    for (uint32_t j = 0; j < n; j++) {
        double sum = A[(size_t)j * n + j];
        const double *aj = A + (size_t)j * n;
        for (uint32_t k = 0; k < j; k++) sum -= aj[k] * aj[k];
        if (!(sum > 0)) return 0;
        double dj = sqrt(sum);
        A[(size_t)j * n + j] = dj;
        for (uint32_t i = j + 1; i < n; i++) {
            const double *ai = A + (size_t)i * n;
            double t = ai[j];
            for (uint32_t k = 0; k < j; k++) t -= ai[k] * aj[k];
            A[(size_t)i * n + j] = t / dj;
        }
    }
    return 1;
}

/* B (n, m) <- A^-1 B with A's Cholesky factor L (L L^T) */
static void chol_solve(const double *L, double *B, uint32_t n, uint32_t m) {
    for (uint32_t i = 0; i < n; i++) {
        const double *li = L + (size_t)i * n;
        for (uint32_t k = 0; k < i; k++)
            for (uint32_t c = 0; c < m; c++) B[(size_t)i * m + c] -= li[k] * B[(size_t)k * m + c];
        for (uint32_t c = 0; c < m; c++) B[(size_t)i * m + c] /= li[i];
    }
    for (uint32_t i = n; i-- > 0;) {
        for (uint32_t k = i + 1; k < n; k++)
            for (uint32_t c = 0; c < m; c++) B[(size_t)i * m + c] -= L[(size_t)k * n + i] * B[(size_t)k * m + c];
        for (uint32_t c = 0; c < m; c++) B[(size_t)i * m + c] /= L[(size_t)i * n + i];
    }
}

/* the absolute ridge strength for lam_rel: relative to the mean input power of M's x block */
static double lam_abs(const vib3_probe_fit *p, const double *M, double lam_rel) {
    double tr = 0;
    for (uint32_t i = 0; i < p->F; i++) tr += M[(size_t)i * p->D + i];
    return lam_rel * (tr > 0 ? tr / p->F : 1.0) + 1e-12;
}

/* A = M + lam I_x (M lower triangle -> full), factored; 0 when not SPD */
static int factor(const vib3_probe_fit *p, const double *M, double lam, double *A) {
    uint32_t D = p->D, H = p->F;
    for (uint32_t i = 0; i < D; i++)
        for (uint32_t j = 0; j <= i; j++) A[(size_t)i * D + j] = A[(size_t)j * D + i] = M[(size_t)i * D + j];
    for (uint32_t i = 0; i < H; i++) A[(size_t)i * D + i] += lam;
    A[(size_t)H * D + H] += 1e-9; /* the bias column: unpenalised */
    return chol_factor(A, D);
}

/* W (D, E) = A^-1 (C + lam W0) with A factored for lam */
static void ridge_solve(const vib3_probe_fit *p, const double *A, const double *C, const double *W0, double lam, double *W) {
    uint32_t D = p->D, H = p->F, E = p->E;
    memcpy(W, C, (size_t)D * E * sizeof(double));
    if (W0)
        for (uint32_t i = 0; i < H; i++)
            for (uint32_t e = 0; e < E; e++) W[(size_t)i * E + e] += lam * W0[(size_t)i * E + e];
    chol_solve(A, W, D, E);
}

/* sum over rows of |W^T z - y|^2 - |y|^2 from moments: w^T M w - 2 w^T c per output */
static double val_error(const vib3_probe_fit *p, const double *M, const double *C, const double *W) {
    uint32_t D = p->D, E = p->E;
    double err = 0;
    for (uint32_t e = 0; e < E; e++)
        for (uint32_t i = 0; i < D; i++) {
            double wi = W[(size_t)i * E + e], mw = 0;
            for (uint32_t j = 0; j < D; j++) {
                double m = j <= i ? M[(size_t)i * D + j] : M[(size_t)j * D + i];
                mw += m * W[(size_t)j * E + e];
            }
            err += wi * mw - 2 * wi * C[(size_t)i * E + e];
        }
    return err;
}

/* the look-ahead router as the prior of pair i: W0[j][e] = R_t[e][j] w_t[j] / w_src[j], its selection bias */
static void prior_of(const vib3_probe_fit *p, uint32_t src, uint32_t t, double *W0) {
    uint32_t H = p->H, E = p->E;
    const float *R = p->router + (size_t)t * E * H, *ws = p->norm + (size_t)src * H, *wt = p->norm + (size_t)t * H;
    for (uint32_t j = 0; j < H; j++) {
        double sc = fabsf(ws[j]) > 1e-12f ? (double)wt[j] / ws[j] : 0;
        for (uint32_t e = 0; e < E; e++) W0[(size_t)j * E + e] = R[(size_t)e * H + j] * sc;
    }
    for (uint32_t e = 0; e < E; e++) W0[(size_t)H * E + e] = p->bias[(size_t)t * E + e];
}

/* Per source layer: one factorisation per lambda of the grid serves all its
 * targets (they share the input moments); each pair takes the lambda with
 * the least validation error, then is refitted on all rows. Cost per source:
 * n_lambda x (D^3 / 3 + depth x D^2 x E) flops. */
vib3_err vib3_probe_fit_solve(vib3_probe_fit *p) {
    if (!p || p->solved) return VIB3_OK;
    uint32_t D = p->D, H = p->H, E = p->E, depth = p->depth;
    const double *grid = H > 1024 ? k_lambdas_big : k_lambdas;
    size_t n_lam = H > 1024 ? sizeof k_lambdas_big / sizeof k_lambdas_big[0] : sizeof k_lambdas / sizeof k_lambdas[0];
    double *A = malloc((size_t)D * D * sizeof(double)), *W = malloc((size_t)D * E * sizeof(double));
    /* the priors are (H + 1, E) also with a sketch (D = F + 1 there) */
    double *W0 = malloc((size_t)depth * (H + 1) * E * sizeof(double)), *Mall = malloc((size_t)D * D * sizeof(double));
    double *Call = malloc((size_t)D * E * sizeof(double)), *best = malloc(depth * sizeof(double));
    if (!A || !W || !W0 || !Mall || !Call || !best) {
        free(A), free(W), free(W0), free(Mall), free(Call), free(best);
        return vib3_err_set(VIB3_ERR_NOMEM, "probes: solve scratch for hidden %u", H);
    }
    for (uint32_t src = 0; src < p->L; src++) {
        const double *Mt = p->M[0] + (size_t)src * D * D, *Mv = p->M[1] + (size_t)src * D * D;
        uint32_t want = 0;
        for (uint32_t d = 0; d < depth; d++) {
            uint32_t i = src * depth + d, next, t = pair_target(p, i, &next);
            best[d] = INFINITY;
            if (!p->has[src] || !p->has[t] || p->pair_rows[i] < 2 * (uint64_t)D) continue; /* too few rows to fit */
            prior_of(p, src, t, W0 + (size_t)d * (H + 1) * E);
            want |= 1u << d;
        }
        if (!want) continue;
        int have_val = Mv[(size_t)p->F * D + p->F] >= 1; /* the rows count of z = [features, 1] */
        for (size_t q = 0; q < n_lam; q++) {
            double lam = lam_abs(p, Mt, grid[q]);
            if (!factor(p, Mt, lam, A)) continue;
            for (uint32_t d = 0; d < depth; d++) {
                if (!(want >> d & 1)) continue;
                uint32_t i = src * depth + d;
                /* a sketch fits the residual of the prior, towards 0 */
                ridge_solve(p, A, p->C[0] + (size_t)i * D * E, p->prior && !p->S ? W0 + (size_t)d * (H + 1) * E : NULL,
                            lam, W);
                double err = have_val ? val_error(p, Mv, p->C[1] + (size_t)i * D * E, W) : 0;
                if (p->lam[i] < 0 || err < best[d]) best[d] = err, p->lam[i] = (float)grid[q];
            }
            if (!have_val) break; /* no validation rows: the smallest lambda that solves */
        }
        for (size_t j = 0; j < (size_t)D * D; j++) Mall[j] = Mt[j] + Mv[j];
        for (uint32_t d = 0; d < depth; d++) {
            uint32_t i = src * depth + d;
            if (!(want >> d & 1) || p->lam[i] < 0) continue;
            double lam = lam_abs(p, Mall, p->lam[i]);
            const double *Ct = p->C[0] + (size_t)i * D * E, *Cv = p->C[1] + (size_t)i * D * E;
            for (size_t j = 0; j < (size_t)D * E; j++) Call[j] = Ct[j] + Cv[j];
            if (!factor(p, Mall, lam, A)) {
                p->lam[i] = -1;
                continue;
            }
            const double *w0 = W0 + (size_t)d * (H + 1) * E;
            ridge_solve(p, A, Call, p->prior && !p->S ? w0 : NULL, lam, W);
            float *Wo = p->W + (size_t)i * E * H, *bo = p->b + (size_t)i * E;
            if (p->S) { /* W = prior + correction S^T V */
                uint32_t F = p->F;
                for (uint32_t e = 0; e < E; e++) {
                    for (uint32_t j = 0; j < H; j++) {
                        double v = w0[(size_t)j * E + e];
                        for (uint32_t k = 0; k < F; k++) v += (double)p->S[(size_t)k * H + j] * W[(size_t)k * E + e];
                        Wo[(size_t)e * H + j] = (float)v;
                    }
                    bo[e] = (float)(w0[(size_t)H * E + e] + W[(size_t)F * E + e]);
                }
            } else {
                for (uint32_t e = 0; e < E; e++) {
                    for (uint32_t j = 0; j < H; j++) Wo[(size_t)e * H + j] = (float)W[(size_t)j * E + e];
                    bo[e] = (float)W[(size_t)H * E + e];
                }
            }
        }
    }
    free(A), free(W), free(W0), free(Mall), free(Call), free(best);
    p->solved = 1;
    return VIB3_OK;
}

uint32_t vib3_probe_fit_pairs(const vib3_probe_fit *p) {
    uint32_t n = 0;
    if (p && p->solved)
        for (uint32_t i = 0; i < p->n_pairs; i++) n += p->lam[i] >= 0;
    return n;
}

uint64_t vib3_probe_fit_tokens(const vib3_probe_fit *p) { return p ? p->tokens : 0; }
uint32_t vib3_probe_fit_features(const vib3_probe_fit *p) { return p ? p->F : 0; }

vib3_err vib3_probe_fit_get(const vib3_probe_fit *p, uint32_t i, uint32_t *source, uint32_t *target, uint32_t *next,
                            const float **W, const float **b, float *lambda) {
    if (!p || !p->solved || i >= p->n_pairs || p->lam[i] < 0)
        return vib3_err_set(VIB3_ERR_INVALID, "probe pair %u not fitted", i);
    *source = i / p->depth;
    *target = pair_target(p, i, next);
    *W = p->W + (size_t)i * p->E * p->H;
    *b = p->b + (size_t)i * p->E;
    *lambda = p->lam[i];
    return VIB3_OK;
}

/* ---- PRED section ----------------------------------------------------------------------- */
vib3_err vib3_probe_serialize(const vib3_probe_fit *p, uint8_t **out, uint64_t *bytes) {
    *out = NULL;
    *bytes = 0;
    uint32_t n = vib3_probe_fit_pairs(p);
    if (!n) return VIB3_OK;
    uint32_t E = p->E, H = p->H;
    uint64_t f32_bytes = (uint64_t)n * E * H * 4;
    uint32_t dtype = f32_bytes <= (16u << 20) ? VIB3_DTYPE_F32 : VIB3_DTYPE_F16;
    uint64_t esize = dtype == VIB3_DTYPE_F32 ? 4 : 2;
    uint64_t b_bytes = ((uint64_t)E * 4 + 7) & ~7ull, w_bytes = ((uint64_t)E * H * esize + 7) & ~7ull;
    vib3_pred_header h;
    memset(&h, 0, sizeof h);
    h.n_layers = p->L, h.n_experts = E, h.hidden = H, h.depth = p->depth, h.dtype = dtype, h.n_pairs = n;
    h.calib_tokens = p->tokens;
    h.method = p->S ? 2 : 1;
    uint64_t total = sizeof h + (uint64_t)n * sizeof(vib3_pred_pair) + (uint64_t)n * (b_bytes + w_bytes);
    uint8_t *buf = calloc(1, total);
    if (!buf) return vib3_err_set(VIB3_ERR_NOMEM, "PRED: %llu bytes", (unsigned long long)total);
    memcpy(buf, &h, sizeof h);
    vib3_pred_pair *pp = (vib3_pred_pair *)(buf + sizeof h);
    uint8_t *data = (uint8_t *)(pp + n);
    for (uint32_t i = 0, j = 0; i < p->n_pairs; i++) {
        if (p->lam[i] < 0) continue;
        pp[j].source = i / p->depth;
        pp[j].target = pair_target(p, i, &pp[j].flags);
        memcpy(&pp[j].lambda_bits, &p->lam[i], 4);
        uint8_t *d = data + (uint64_t)j * (b_bytes + w_bytes);
        memcpy(d, p->b + (size_t)i * E, (size_t)E * 4);
        const float *W = p->W + (size_t)i * E * H;
        if (dtype == VIB3_DTYPE_F32) memcpy(d + b_bytes, W, (size_t)E * H * 4);
        else
            for (size_t q = 0; q < (size_t)E * H; q++) {
                uint16_t v = vib3_f32_to_f16(W[q]);
                memcpy(d + b_bytes + 2 * q, &v, 2);
            }
        j++;
    }
    *out = buf;
    *bytes = total;
    return VIB3_OK;
}

vib3_err vib3_probe_write(const vib3_probe_fit *p, vib3_writer *w) {
    uint8_t *buf;
    uint64_t bytes;
    vib3_err e = vib3_probe_serialize(p, &buf, &bytes);
    if (e || !buf) return e;
    e = vib3_writer_add_section(w, VIB3_SEC_PREDICT, 0, vib3_probe_fit_pairs(p), buf, bytes);
    free(buf);
    return e;
}
