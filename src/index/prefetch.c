/* prefetch.c — co-activation graph, look-ahead router and the prefetch
 * planner (see prefetch.h). Per hook call: O(n_rows * (E * k + E * hidden))
 * arithmetic, no allocation. */
#include "index/prefetch.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/gate.h"
#include "simd/simd.h"

#define PF_MAX_K 64u           /* experts per row considered */
#define PF_PRIOR_TOKENS 1000.0 /* the COAC prior is worth this many tokens */

typedef struct pf_router {
    const uint8_t *data;       /* (n_experts, hidden) rows of dtype */
    uint32_t dtype;
    uint64_t row_bytes;
    const float *bias;         /* (n_experts) selection bias or NULL */
    const float *norm;         /* (hidden) ffn_norm weight or NULL */
} pf_router;

/* a fitted look-ahead probe from the file's PRED section (pointers into the mapping) */
typedef struct pf_probe {
    const float *b;            /* (n_experts) */
    const uint8_t *w;          /* (n_experts, hidden) of dtype F32 or F16 */
} pf_probe;

struct vib3_prefetcher {
    const vib3_file *file;
    vib3_pages *pages;
    unsigned mode;             /* VIB3_PREDICT_* */
    char mode_name[16];
    char predictor[16];        /* lookahead's scores: "probe" (PRED section) or "router" */
    uint32_t n_layers, n_experts, hidden, k, margin;
    uint32_t depth;            /* lookahead: layers ahead to hint (1 = only layer + 1) */
    int wrap;                  /* lookahead: past the last layer, hint the next token's first layers */
    float mass;                /* lookahead: guesses per row until this softmax mass (0 = k + margin) */
    uint32_t max_guess;        /* lookahead with mass: at most this many experts per row and target */
    uint8_t *hinted;           /* (n_layers, E) experts hinted for the next routing of each layer */
    pthread_mutex_t mu;

    float *trans;              /* (n_layers - 1, E, E) transition weights */
    pf_router *routers;        /* (n_layers) */
    pf_probe *probes;          /* (n_layers, probe_depth): source layer, distance - 1; NULL = none */
    uint32_t probe_depth, probe_dtype, probe_pairs;
    const vib3_simd_ops *simd; /* the probes' mat-vec (F32 / F16) */
    float *xin;                /* (hidden) re-weighted input */
    float *scores;             /* (E) */
    float *votes;              /* (E) per-call aggregate over rows */
    uint32_t *top;             /* (E) hint order */
    uint32_t *rank;            /* (E) best rank of an expert among the rows' guesses */
    /* per predictor (coact, lookahead, union): the set predicted for prev_layer + 1 */
    uint8_t *pred[3];          /* (E) */
    int32_t pred_layer;        /* layer the predictions are for, -1 = none */
    /* previous hook call's routing, for online graph updates */
    int32_t *prev_experts;     /* (rows_cap, k_cap) */
    uint32_t rows_cap, k_cap, prev_rows, prev_k;
    int32_t prev_layer;
    /* auto: look-ahead hints switched on/off by measured decode token time (index/gate.h) */
    int gated;
    vib3_prefetch_gate gate;
    uint32_t gate_last_layer;  /* layer of the previous single-row call (a smaller one starts a token) */
    vib3_prefetch_stats st;
};

/* ---- router rows ---------------------------------------------------------------- */
static float row_dot(const pf_router *r, uint32_t row, const float *x, uint32_t n) {
    const uint8_t *w = r->data + (uint64_t)row * r->row_bytes;
    float s = 0;
    switch (r->dtype) {
    case VIB3_DTYPE_F32: {
        const float *f = (const float *)w;
        for (uint32_t i = 0; i < n; i++) s += f[i] * x[i];
        break;
    }
    case VIB3_DTYPE_F16: {
        const uint16_t *h = (const uint16_t *)w;
        for (uint32_t i = 0; i < n; i++) s += vib3_f16_to_f32(h[i]) * x[i];
        break;
    }
    case VIB3_DTYPE_BF16: {
        const uint16_t *h = (const uint16_t *)w;
        for (uint32_t i = 0; i < n; i++) s += vib3_bf16_to_f32(h[i]) * x[i];
        break;
    }
    case VIB3_DTYPE_Q8_0: {
        const vib3_block_q8_0 *b = (const vib3_block_q8_0 *)w;
        for (uint32_t j = 0; j < n / VIB3_QBLOCK; j++) {
            float d = vib3_f16_to_f32(b[j].d), t = 0;
            for (uint32_t i = 0; i < VIB3_QBLOCK; i++) t += (float)b[j].qs[i] * x[j * VIB3_QBLOCK + i];
            s += d * t;
        }
        break;
    }
    case VIB3_DTYPE_Q4_0: {
        const vib3_block_q4_0 *b = (const vib3_block_q4_0 *)w;
        for (uint32_t j = 0; j < n / VIB3_QBLOCK; j++) {
            float d = vib3_f16_to_f32(b[j].d), t = 0;
            const float *xx = x + j * VIB3_QBLOCK;
            for (uint32_t i = 0; i < 16; i++)
                t += (float)((b[j].qs[i] & 15) - 8) * xx[i] + (float)((b[j].qs[i] >> 4) - 8) * xx[i + 16];
            s += d * t;
        }
        break;
    }
    default:
        break;
    }
    return s;
}

/* indices of the n largest scores (descending; ties -> lower index) */
static uint32_t top_n(const float *s, uint32_t E, uint32_t n, uint32_t *out) {
    if (n > E) n = E;
    uint32_t m = 0;
    for (uint32_t e = 0; e < E && n; e++) {
        uint32_t pos;
        if (m < n) pos = m++;
        else if (s[e] > s[out[n - 1]]) pos = n - 1;
        else continue;
        while (pos > 0 && s[e] > s[out[pos - 1]]) {
            out[pos] = out[pos - 1];
            pos--;
        }
        out[pos] = e;
    }
    return m;
}

/* ---- open ------------------------------------------------------------------------ */
/* the PRED section's probes (validated by the reader: shapes, sizes, pair
 * distances), unless VIB3_PREFETCH_PROBES=0 */
static vib3_err probes_open(vib3_prefetcher *pf, const vib3_file *f, vib3_arena *arena) {
    const char *env = getenv("VIB3_PREFETCH_PROBES");
    const vib3_pred_header *h = f->pred;
    if ((env && *env == '0') || !h || h->n_experts != pf->n_experts || h->hidden != pf->hidden ||
        h->n_layers != pf->n_layers)
        return VIB3_OK;
    pf->simd = vib3_simd();
    if (!pf->simd || !pf->simd->matvec[h->dtype]) return VIB3_OK;
    pf->probe_depth = h->depth;
    pf->probe_dtype = h->dtype;
    pf->probes = vib3_arena_calloc(arena, (size_t)pf->n_layers * h->depth, sizeof(pf_probe), 0);
    if (!pf->probes) return vib3_err_prefix("prefetcher probes");
    for (uint32_t i = 0; i < h->n_pairs; i++) {
        const vib3_pred_pair *p = &f->pred_pairs[i];
        uint32_t d = p->flags & VIB3_PRED_NEXT_TOKEN ? p->target + pf->n_layers - p->source : p->target - p->source;
        pf_probe *q = &pf->probes[(size_t)p->source * h->depth + d - 1];
        const uint8_t *base = f->pred_data + i * f->pred_pair_bytes;
        q->b = (const float *)base;
        q->w = base + f->pred_w_offset;
        pf->probe_pairs++;
    }
    snprintf(pf->predictor, sizeof pf->predictor, "probe");
    return VIB3_OK;
}

static const pf_probe *probe_for(const vib3_prefetcher *pf, uint32_t layer, uint32_t target) {
    if (!pf->probes) return NULL;
    uint32_t d = target > layer ? target - layer : target + pf->n_layers - layer;
    if (d == 0 || d > pf->probe_depth) return NULL;
    const pf_probe *q = &pf->probes[(size_t)layer * pf->probe_depth + d - 1];
    return q->w ? q : NULL;
}

static const vib3_tensor_entry *find_tensor(const vib3_file *f, const char *fmt, uint32_t l) {
    char name[96];
    snprintf(name, sizeof name, fmt, l);
    return vib3_file_find_tensor(f, name);
}

vib3_err vib3_prefetcher_open(vib3_prefetcher **out, const vib3_file *f, vib3_pages *pages, const vib3_config *cfg,
                              vib3_arena *arena) {
    const vib3_model_config *c = f->config;
    vib3_prefetcher *pf = vib3_arena_calloc(arena, 1, sizeof *pf, 0);
    if (!pf) return vib3_err_prefix("prefetcher");
    const char *mode = cfg && cfg->prefetch[0] ? cfg->prefetch : "auto";
    if (!strcmp(mode, "none")) pf->mode = 0;
    else if (!strcmp(mode, "coact")) pf->mode = VIB3_PREDICT_COACT;
    else if (!strcmp(mode, "lookahead")) pf->mode = VIB3_PREDICT_LOOKAHEAD;
    else if (!strcmp(mode, "both")) pf->mode = VIB3_PREDICT_COACT | VIB3_PREDICT_LOOKAHEAD;
    else if (!strcmp(mode, "auto")) pf->mode = VIB3_PREDICT_LOOKAHEAD, pf->gated = 1;
    else return vib3_err_set(VIB3_ERR_INVALID, "--prefetch %s: unknown predictor (auto, none, coact, lookahead, both)", mode);
    const char *ge = getenv("VIB3_PREFETCH_GATE_EPOCH"); /* tokens per A/B epoch (tests; default 32) */
    vib3_prefetch_gate_init(&pf->gate, ge && *ge ? (uint32_t)atoi(ge) : 0, 0);
    pf->gate_last_layer = UINT32_MAX;
    snprintf(pf->mode_name, sizeof pf->mode_name, "%s", mode);
    pf->file = f;
    pf->pages = pages;
    pf->n_layers = c->n_layers;
    pf->n_experts = c->n_experts;
    pf->hidden = c->hidden_size;
    pf->k = c->n_experts_per_tok;
    /* guesses beyond k: 1 for the router look-ahead; 0 with the file's probes (as
     * accurate at k guesses as the router at k + 1, with a third fewer reads:
     * docs/bench/storage.md) */
    const char *mg = getenv("VIB3_PREFETCH_MARGIN"), *pe = getenv("VIB3_PREFETCH_PROBES");
    int probes = f->pred && !(pe && *pe == '0');
    /* k guesses with full-input probes (as accurate as the router's k + 1, measured on tinymix);
     * k + 1 with sketched ones (method 2: only a correction of the router, about as accurate) */
    pf->margin = mg && *mg ? (uint32_t)atoi(mg) : probes && f->pred->method == 1 ? 0 : 1;
    /* defaults measured on tinymix-brown (docs/bench/storage.md) */
    const char *dp = getenv("VIB3_PREFETCH_DEPTH"), *ms = getenv("VIB3_PREFETCH_MASS"), *wr = getenv("VIB3_PREFETCH_WRAP");
    pf->depth = dp && *dp ? (uint32_t)atoi(dp) : 2;
    if (pf->depth < 1) pf->depth = 1;
    if (pf->depth > c->n_layers) pf->depth = c->n_layers;
    pf->mass = ms && *ms ? (float)atof(ms) : 0.0f;
    pf->wrap = wr && *wr ? atoi(wr) != 0 : 1;
    pf->max_guess = 2 * pf->k + 1;
    pf->pred_layer = pf->prev_layer = -1;
    pthread_mutex_init(&pf->mu, NULL);
    *out = pf;
    uint32_t E = pf->n_experts;
    if (E == 0) return VIB3_OK; /* dense model: nothing to predict */

    size_t L1 = pf->n_layers > 1 ? pf->n_layers - 1 : 1;
    pf->trans = vib3_arena_calloc(arena, L1 * E * E, sizeof(float), 0);
    pf->routers = vib3_arena_calloc(arena, pf->n_layers, sizeof(pf_router), 0);
    pf->xin = vib3_arena_alloc(arena, (size_t)pf->hidden * sizeof(float), 0);
    pf->scores = vib3_arena_alloc(arena, (size_t)E * sizeof(float), 0);
    pf->votes = vib3_arena_alloc(arena, (size_t)E * sizeof(float), 0);
    pf->top = vib3_arena_alloc(arena, (size_t)E * sizeof(uint32_t), 0);
    pf->rank = vib3_arena_alloc(arena, (size_t)E * sizeof(uint32_t), 0);
    for (int i = 0; i < 3; i++) pf->pred[i] = vib3_arena_calloc(arena, E, 1, 0);
    pf->hinted = vib3_arena_calloc(arena, (size_t)pf->n_layers * E, 1, 0);
    pf->rows_cap = cfg && cfg->batch_size > 1 ? cfg->batch_size : 512;
    if (cfg && cfg->parallel > pf->rows_cap) pf->rows_cap = cfg->parallel;
    pf->k_cap = pf->k + c->n_shared_experts + 1;
    pf->prev_experts = vib3_arena_alloc(arena, (size_t)pf->rows_cap * pf->k_cap * sizeof(int32_t), 0);
    if (!pf->trans || !pf->routers || !pf->xin || !pf->scores || !pf->votes || !pf->top || !pf->rank || !pf->pred[0] ||
        !pf->pred[1] || !pf->pred[2] || !pf->prev_experts || !pf->hinted)
        return vib3_err_prefix("prefetcher");

    /* the co-activation prior */
    if (f->coact && f->coact->n_experts == E && f->coact->n_layers == pf->n_layers && f->coact->n_tokens) {
        double scale = PF_PRIOR_TOKENS / (double)f->coact->n_tokens;
        if (scale > 1) scale = 1;
        for (size_t i = 0; i < (pf->n_layers - 1) * (size_t)E * E; i++)
            pf->trans[i] = (float)(f->coact_trans[i] * scale);
    }
    /* the pages' prefetch window: depth targets of k + margin guesses, twice over
     * (hints of the next targets go out while the last ones are still being read) */
    const char *pw = getenv("VIB3_PREFETCH_WINDOW"); /* 0: leave the pages' window alone (the one-layer planner's) */
    if (pages && (pf->mode & VIB3_PREDICT_LOOKAHEAD) && !(pw && *pw == '0')) {
        uint32_t per_expert = 1;
        for (uint32_t l = 0; l < pf->n_layers; l++)
            for (uint32_t e = 0; e < E; e++) {
                uint64_t first;
                uint32_t cnt;
                if (vib3_file_slot_pages(f, l, vib3_file_slot(f, VIB3_PAGE_ROUTED, e), &first, &cnt) && cnt > per_expert)
                    per_expert = cnt;
            }
        uint64_t want = 2ull * pf->depth * (pf->k + pf->margin) * per_expert;
        vib3_pages_prefetch_window(pages, want > UINT32_MAX ? UINT32_MAX : (uint32_t)want);
    }
    /* routers and norms */
    for (uint32_t l = 0; l < pf->n_layers; l++) {
        const vib3_tensor_entry *t = find_tensor(f, "blk.%u.ffn_gate_inp.weight", l);
        if (!t || t->n_dims != 2 || t->dims[0] != E || t->dims[1] != pf->hidden) continue;
        uint64_t rb = vib3_dtype_row_bytes((vib3_dtype)t->dtype, pf->hidden);
        if (!rb || rb * E != t->bytes) continue;
        pf_router *r = &pf->routers[l];
        r->data = vib3_file_tensor_data(f, t);
        r->dtype = t->dtype;
        r->row_bytes = rb;
        const vib3_tensor_entry *b = find_tensor(f, "blk.%u.exp_probs_b.bias", l);
        if (!b) b = find_tensor(f, "blk.%u.exp_probs_b", l);
        if (b && b->dtype == VIB3_DTYPE_F32 && b->bytes == (uint64_t)E * 4 && (c->router_flags & VIB3_ROUTER_CORRECTION_BIAS))
            r->bias = vib3_file_tensor_data(f, b);
        const vib3_tensor_entry *nw = find_tensor(f, "blk.%u.ffn_norm.weight", l);
        if (nw && nw->dtype == VIB3_DTYPE_F32 && nw->bytes == (uint64_t)pf->hidden * 4) r->norm = vib3_file_tensor_data(f, nw);
    }
    snprintf(pf->predictor, sizeof pf->predictor, "router");
    return probes_open(pf, f, arena);
}

void vib3_prefetcher_close(vib3_prefetcher *pf) {
    if (pf) pthread_mutex_destroy(&pf->mu);
}

void vib3_prefetcher_set_margin(vib3_prefetcher *pf, uint32_t margin) { pf->margin = margin; }

/* ---- predictors ------------------------------------------------------------------- */
uint32_t vib3_prefetcher_predict_coact(vib3_prefetcher *pf, uint32_t layer, const int32_t *experts, uint32_t k,
                                       uint32_t *out, uint32_t cap) {
    uint32_t E = pf->n_experts;
    if (!E || layer + 1 >= pf->n_layers) return 0;
    const float *T = pf->trans + (size_t)layer * E * E;
    memset(pf->scores, 0, E * sizeof(float));
    int any = 0;
    for (uint32_t j = 0; j < k; j++) {
        int32_t i = experts[j];
        if (i < 0 || (uint32_t)i >= E) continue;
        for (uint32_t t = 0; t < E; t++) pf->scores[t] += T[(size_t)i * E + t];
        any = 1;
    }
    if (!any) return 0;
    uint32_t want = pf->k < cap ? pf->k : cap;
    uint32_t n = top_n(pf->scores, E, want, out);
    while (n > 0 && pf->scores[out[n - 1]] <= 0) n--; /* never seen: no opinion */
    return n;
}

/* layer target's router logits (+ selection bias) for layer's normalised
 * input x, re-weighted from layer's ffn_norm to target's, into pf->scores;
 * 0 when target has no router */
static int ahead_scores(vib3_prefetcher *pf, uint32_t layer, uint32_t target, const float *x) {
    uint32_t E = pf->n_experts, h = pf->hidden;
    if (!E || layer >= pf->n_layers || target >= pf->n_layers) return 0;
    const pf_probe *q = probe_for(pf, layer, target);
    if (q) { /* fitted probe: W x + b, the target's selection scores (bias included) */
        pf->simd->matvec[pf->probe_dtype](q->w, h, x, pf->scores, 0, E);
        for (uint32_t e = 0; e < E; e++) pf->scores[e] += q->b[e];
        return 1;
    }
    if (!pf->routers[target].data) return 0;
    const pf_router *cur = &pf->routers[layer], *nx = &pf->routers[target];
    const float *in = x;
    if (cur->norm && nx->norm && cur->norm != nx->norm) {
        for (uint32_t i = 0; i < h; i++)
            pf->xin[i] = fabsf(cur->norm[i]) > 1e-12f ? x[i] / cur->norm[i] * nx->norm[i] : 0.0f;
        in = pf->xin;
    }
    for (uint32_t e = 0; e < E; e++) pf->scores[e] = row_dot(nx, e, in, h) + (nx->bias ? nx->bias[e] : 0.0f);
    return 1;
}

/* the experts to guess from pf->scores: the top k + margin, or (mass > 0) the
 * top ones until their softmax mass reaches pf->mass (at least k, at most
 * max_guess): a confident router costs k guesses, an unsure one more */
static uint32_t ahead_select(vib3_prefetcher *pf, float mass, uint32_t *out, uint32_t cap) {
    uint32_t E = pf->n_experts;
    if (mass <= 0) {
        uint32_t want = pf->k + pf->margin;
        return top_n(pf->scores, E, want < cap ? want : cap, out);
    }
    uint32_t lim = pf->max_guess < cap ? pf->max_guess : cap;
    uint32_t n = top_n(pf->scores, E, lim, out);
    if (n == 0) return 0;
    float mx = pf->scores[out[0]], z = 0;
    for (uint32_t e = 0; e < E; e++) z += expf(pf->scores[e] - mx);
    float cum = 0;
    uint32_t take = 0;
    while (take < n) {
        cum += expf(pf->scores[out[take]] - mx) / z;
        take++;
        if (take >= pf->k && cum >= mass) break;
    }
    return take;
}

uint32_t vib3_prefetcher_predict_lookahead(vib3_prefetcher *pf, uint32_t layer, const float *x, uint32_t *out,
                                           uint32_t cap) {
    if (layer + 1 >= pf->n_layers || !ahead_scores(pf, layer, layer + 1, x)) return 0;
    return ahead_select(pf, 0, out, cap);
}

uint32_t vib3_prefetcher_predict_ahead(vib3_prefetcher *pf, uint32_t layer, uint32_t target, const float *x,
                                       float mass, uint32_t *out, uint32_t cap) {
    if (!ahead_scores(pf, layer, target, x)) return 0;
    return ahead_select(pf, mass, out, cap);
}

void vib3_prefetcher_set_lookahead(vib3_prefetcher *pf, uint32_t depth, float mass, int wrap) {
    pf->depth = depth < 1 ? 1 : depth > pf->n_layers ? pf->n_layers : depth;
    pf->mass = mass;
    pf->wrap = wrap;
}

/* ---- the hook ---------------------------------------------------------------------- */
static void score_previous(vib3_prefetcher *pf, uint32_t layer, const int32_t *experts, uint32_t n_rows, uint32_t k) {
    uint32_t E = pf->n_experts;
    if (pf->pred_layer != (int32_t)layer) return;
    /* routed set of this layer (union over rows) in votes as 0/1 */
    memset(pf->votes, 0, E * sizeof(float));
    uint64_t routed = 0;
    for (size_t i = 0; i < (size_t)n_rows * k; i++)
        if (experts[i] >= 0 && (uint32_t)experts[i] < E && pf->votes[experts[i]] == 0) {
            pf->votes[experts[i]] = 1;
            routed++;
        }
    for (int p = 0; p < 3; p++) {
        uint64_t pred = 0, ok = 0;
        for (uint32_t e = 0; e < E; e++)
            if (pf->pred[p][e]) {
                pred++;
                ok += pf->votes[e] != 0;
            }
        if (pred == 0) continue; /* predictor not running or had no opinion */
        pf->st.predicted[p] += pred;
        pf->st.correct[p] += ok;
        pf->st.routed[p] += routed;
    }
}

/* hint the experts ord[0..n) (most likely first) for the next routing of layer t (once per routing) */
static void hint_layer(vib3_prefetcher *pf, uint32_t t, const uint32_t *ord, uint32_t n) {
    uint8_t *h = pf->hinted + (size_t)t * pf->n_experts;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = ord[i];
        if (e >= pf->n_experts || h[e]) continue;
        h[e] = 1;
        if (!pf->pages) continue;
        vib3_pages_prefetch_slot(pf->pages, t, vib3_file_slot(pf->file, VIB3_PAGE_ROUTED, e));
        pf->st.experts_hinted++;
    }
}

/* score everything hinted for this routing of layer (any depth), then clear it */
static void score_hinted(vib3_prefetcher *pf, uint32_t layer) {
    uint32_t E = pf->n_experts;
    uint8_t *h = pf->hinted + (size_t)layer * E;
    uint64_t pred = 0, ok = 0, routed = 0;
    for (uint32_t e = 0; e < E; e++) {
        routed += pf->votes[e] != 0;
        if (h[e]) {
            pred++;
            ok += pf->votes[e] != 0;
        }
    }
    if (pred) {
        pf->st.hint_predicted += pred;
        pf->st.hint_correct += ok;
        pf->st.hint_routed += routed;
    }
    memset(h, 0, E);
}

static uint64_t gate_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vib3_prefetcher_moe_hook(void *ctx, uint32_t layer, const float *x, uint32_t n_rows, const int32_t *experts,
                              uint32_t k) {
    vib3_prefetcher *pf = ctx;
    uint32_t E = pf->n_experts;
    if (!E || layer >= pf->n_layers) return;
    pthread_mutex_lock(&pf->mu);
    pf->st.layers_observed++;
    if (pf->gated && n_rows == 1) { /* decode: time the token from its first MoE layer to its last */
        if (layer <= pf->gate_last_layer) vib3_prefetch_gate_token_begin(&pf->gate, gate_now_ns());
        pf->gate_last_layer = layer;
        if (layer + 1 == pf->n_layers) vib3_prefetch_gate_token_end(&pf->gate, gate_now_ns());
    }

    /* 1. the pages this layer is about to compute: fetch them together (not a
     *    prediction: done in every mode, "none" included) */
    if (pf->pages) {
        memset(pf->votes, 0, E * sizeof(float));
        for (size_t i = 0; i < (size_t)n_rows * k; i++) {
            int32_t s = experts[i];
            if (s < 0) continue;
            if ((uint32_t)s < E) {
                if (pf->votes[s]) continue;
                pf->votes[s] = 1;
            }
            vib3_pages_fetch_slot(pf->pages, layer, (uint32_t)s);
            pf->st.experts_fetched++;
        }
        vib3_pages_expire_hints(pf->pages, layer);
    }
    /* 2. score what was predicted for this layer */
    score_previous(pf, layer, experts, n_rows, k);
    memset(pf->votes, 0, E * sizeof(float));
    for (size_t i = 0; i < (size_t)n_rows * k; i++)
        if (experts[i] >= 0 && (uint32_t)experts[i] < E) pf->votes[experts[i]] = 1;
    score_hinted(pf, layer);

    /* 3. learn the transition prev layer -> this layer, row by row */
    if (pf->prev_layer >= 0 && (uint32_t)pf->prev_layer + 1 == layer && pf->prev_rows == n_rows && layer > 0) {
        float *T = pf->trans + (size_t)(layer - 1) * E * E;
        for (uint32_t r = 0; r < n_rows; r++)
            for (uint32_t a = 0; a < pf->prev_k; a++) {
                int32_t i = pf->prev_experts[(size_t)r * pf->prev_k + a];
                if (i < 0 || (uint32_t)i >= E) continue;
                for (uint32_t b = 0; b < k; b++) {
                    int32_t j = experts[(size_t)r * k + b];
                    if (j >= 0 && (uint32_t)j < E) T[(size_t)i * E + j] += 1.0f;
                }
            }
    }
    if (n_rows <= pf->rows_cap && k <= pf->k_cap) {
        memcpy(pf->prev_experts, experts, (size_t)n_rows * k * sizeof(int32_t));
        pf->prev_rows = n_rows;
        pf->prev_k = k;
        pf->prev_layer = (int32_t)layer;
    } else {
        pf->prev_layer = -1;
    }

    /* 4. predict layer + 1 with each predictor (accuracy is measured for both
     *    whatever the mode, at one layer and k (+ margin) guesses) */
    for (int p = 0; p < 3; p++) memset(pf->pred[p], 0, E);
    pf->pred_layer = -1;
    uint32_t out[PF_MAX_K];
    uint32_t cap = E < PF_MAX_K ? E : PF_MAX_K;
    if (layer + 1 < pf->n_layers && n_rows <= 64) {
        for (uint32_t r = 0; r < n_rows; r++) {
            uint32_t n = vib3_prefetcher_predict_coact(pf, layer, experts + (size_t)r * k, k, out, cap);
            for (uint32_t i = 0; i < n; i++) pf->pred[0][out[i]] = 1;
            n = vib3_prefetcher_predict_lookahead(pf, layer, x + (size_t)r * pf->hidden, out, cap);
            for (uint32_t i = 0; i < n; i++) pf->pred[1][out[i]] = 1;
        }
        pf->pred_layer = (int32_t)layer + 1;
    }
    /* 5. hint, nearest target first. coact: layer + 1. lookahead: layers
     *    layer + 1 .. layer + depth (past the last layer, with wrap, the next
     *    token's first layers), mass-adaptive guess count: a read issued two
     *    layers early has two layers of compute to arrive instead of one. */
    if (n_rows <= 64 && (!pf->gated || vib3_prefetch_gate_on(&pf->gate))) {
        for (uint32_t d = 1; d <= pf->depth; d++) {
            uint32_t t = layer + d;
            if (t >= pf->n_layers) {
                if (!pf->wrap) break;
                t -= pf->n_layers;
            }
            /* the order the hints go out: look-ahead's guesses rank by rank over the
             * rows (most likely first), then co-activation's */
            uint32_t *ord = pf->top, n_ord = 0;
            uint8_t *want = pf->pred[2];
            memset(want, 0, E);
            if (pf->mode & VIB3_PREDICT_LOOKAHEAD) {
                uint32_t *rk = pf->rank;
                uint32_t best_n = 0;
                for (uint32_t r = 0; r < n_rows; r++) {
                    uint32_t n = vib3_prefetcher_predict_ahead(pf, layer, t, x + (size_t)r * pf->hidden, pf->mass,
                                                               out, cap);
                    for (uint32_t i = 0; i < n; i++)
                        if (!want[out[i]] || rk[out[i]] > i) rk[out[i]] = i, want[out[i]] = 1;
                    if (n > best_n) best_n = n;
                }
                for (uint32_t i = 0; i < best_n; i++)
                    for (uint32_t e = 0; e < E; e++)
                        if (want[e] == 1 && rk[e] == i) ord[n_ord++] = e, want[e] = 2;
            }
            if ((pf->mode & VIB3_PREDICT_COACT) && d == 1 && layer + 1 < pf->n_layers)
                for (uint32_t e = 0; e < E; e++)
                    if (pf->pred[0][e] && !want[e]) ord[n_ord++] = e, want[e] = 2;
            hint_layer(pf, t, ord, n_ord);
        }
        /* pred[2]: what was hinted for layer + 1 (the "used" accuracy) */
        memset(pf->pred[2], 0, E);
        if (layer + 1 < pf->n_layers) memcpy(pf->pred[2], pf->hinted + (size_t)(layer + 1) * E, E);
    }
    pthread_mutex_unlock(&pf->mu);
}

void vib3_prefetcher_stats_get(vib3_prefetcher *pf, vib3_prefetch_stats *s) {
    pthread_mutex_lock(&pf->mu);
    *s = pf->st;
    s->gated = pf->gated;
    if (pf->gated) {
        s->gate_hints_on = pf->gate.arm;
        for (int a = 0; a < 2; a++) {
            s->gate_epochs[a] = pf->gate.epochs[a];
            s->gate_token_ms[a] = pf->gate.mean_ns[a] / 1e6;
        }
        s->gate_switches = pf->gate.switches;
    }
    pthread_mutex_unlock(&pf->mu);
    snprintf(s->mode, sizeof s->mode, "%s", pf->mode_name);
    snprintf(s->predictor, sizeof s->predictor, "%s", pf->predictor[0] ? pf->predictor : "router");
    s->probe_pairs = pf->probe_pairs;
    s->hint_precision = s->hint_predicted ? (double)s->hint_correct / (double)s->hint_predicted : 0;
    s->hint_recall = s->hint_routed ? (double)s->hint_correct / (double)s->hint_routed : 0;
    for (int p = 0; p < 3; p++) {
        s->precision[p] = s->predicted[p] ? (double)s->correct[p] / (double)s->predicted[p] : 0;
        s->recall[p] = s->routed[p] ? (double)s->correct[p] / (double)s->routed[p] : 0;
    }
}
