/* pages.c — FFN slots (dense FFN, routed expert, shared expert) -> pages.
 *
 * A slot of F neurons is padded with zero neurons to a multiple of 32
 * (zero gate/up rows and down columns contribute exactly 0), optionally
 * permuted (permute.c), and cut into pages of K neurons (the last page may
 * hold fewer). Page p holds, in the page dtype,
 *   gate rows (n, hidden) | up rows (n, hidden) | down (hidden, n)
 * where down's row h is columns [p*K, p*K + n) of the (permuted) source
 * down row h. Work per chunk of pages: phase A encodes gate/up rows in
 * parallel over neurons; phase B decodes each source down row once and
 * encodes its column ranges into every page of the chunk, in parallel over
 * rows. Chunks keep the buffer under a quarter of the memory budget.
 *
 * Q4_0 sources (GGUF Q4_0, pack-quantized int4 with group 32) are copied
 * block for block when the page dtype is Q4_0 and no permutation applies:
 * lossless import.
 *
 * Choice of K (vib3_choose_page_neurons): multiples of 32 (of 128 for Q4_K16 when
 * the padded size allows: its down rows then hold whole 128-weight runs) dividing the
 * padded routed-expert size; among those whose page is 64-512 KiB the one
 * wasting the least of its last 4 KiB block, with a small preference for
 * smaller pages (more, finer-grained pages); when no candidate is in range,
 * the largest below 64 KiB (tiny models) or the smallest above 512 KiB.
 *
 * Signatures (SIGS, method 1): per page the mean of its (dequantized) gate
 * rows, dim = hidden, F32. score(page, x) = sig . x is the mean gate
 * pre-activation of the page's neurons, which ranks pages by how strongly
 * their neurons open for x once similar neurons share pages (permute.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "convert/internal.h"

#define PAGE_MIN (64u << 10)
#define PAGE_MAX (512u << 10)

uint32_t vib3_choose_page_neurons(vib3_dtype t, uint32_t hidden, uint32_t ffn) {
    uint32_t fp = (ffn + 31) / 32 * 32;
    if (fp == 0) return 32;
    uint32_t best = 0, below = 0, above = 0;
    double best_score = 1e30;
    /* Q4_K16 down rows are K long: K % 128 == 0 gives each row's super-blocks >= 4 chunks (one 4-byte
     * head per 128 weights, not per 32): 2.3B Mixtral-shaped decode 21.5 -> 32 tok/s going from K = 32
     * to K = 128 (Q4_0: 36), and 5.25 -> 5.0 bits per down weight */
    uint32_t step = t == VIB3_DTYPE_Q4_K16 && fp % 128 == 0 ? 128 : 32;
    for (uint32_t k = step; k <= fp; k += step) {
        if (fp % k) continue;
        uint64_t b = vib3_page_bytes(t, hidden, k);
        if (b == 0) continue;
        if (b < PAGE_MIN) {
            below = k;
            continue;
        }
        if (b > PAGE_MAX) {
            if (!above) above = k;
            continue;
        }
        uint64_t rounded = (b + 4095) / 4096 * 4096;
        double waste = (double)(rounded - b) / (double)rounded;
        double score = waste + 0.03 * log2((double)b / PAGE_MIN);
        if (score < best_score) {
            best_score = score;
            best = k;
        }
    }
    if (best) return best;
    if (below) return below;
    return above ? above : 32;
}

vib3_err vib3_cvt_choose_k(vib3_cvt *c) {
    const vib3_model_config *m = &c->cfg;
    uint32_t f = m->n_experts ? m->moe_ffn_size : m->ffn_size;
    if (c->o->page_neurons) {
        if (c->o->page_neurons % 32 || c->o->page_neurons > VIB3_MAX_DIM)
            return vib3_err_set(VIB3_ERR_INVALID, "convert: --page-neurons %u is not a multiple of 32 in [32, %u]",
                                c->o->page_neurons, VIB3_MAX_DIM);
        c->K = c->o->page_neurons;
    } else {
        c->K = vib3_choose_page_neurons(c->expert_dt, m->hidden_size, f);
    }
    return VIB3_OK;
}

/* ---- one slot ------------------------------------------------------------- */
#define NO_NEURON UINT32_MAX

typedef struct slot_job {
    vib3_cvt *c;
    vib3_weight gate, up, down;
    uint32_t hidden, ffn, ffn_pad, K;
    vib3_dtype dt;
    const uint32_t *perm;      /* [ffn_pad] source neuron or NO_NEURON */
    bool identity;
    uint32_t page0, n_pages;   /* chunk */
    uint8_t *buf;              /* n_pages pages of K neurons (last may be short) */
    uint64_t *page_off;        /* [n_pages] offsets into buf */
    uint32_t *page_n;          /* [n_pages] neurons */
    uint64_t hrow;             /* bytes of one hidden-length row in dt */
    uint32_t rows_per_task;
    void (*encode)(vib3_dtype, const float *, uint64_t, void *);
    float *imp_h;              /* [hidden] importance of input dims (calibration), NULL = none */
    float *imp_n;              /* [ffn] importance of neurons (mean squared activation), NULL = none */
} slot_job;

static void encode_neuron_row(slot_job *j, const vib3_weight *w, uint32_t src, float *tmp, uint8_t *out) {
    if (src == NO_NEURON) {
        memset(tmp, 0, j->hidden * sizeof(float));
        vib3_encode_row(j->dt, tmp, j->hidden, out);
        return;
    }
    if (j->dt == VIB3_DTYPE_Q4_0 && vib3_weight_row_native_q4(w, src, 0, j->hidden, (vib3_block_q4_0 *)out)) return;
    vib3_weight_row_f32(w, src, 0, j->hidden, tmp);
    if (j->imp_h && j->dt == VIB3_DTYPE_Q4_0)
        vib3_quantize_q4_0_weighted(tmp, j->imp_h, j->hidden, (vib3_block_q4_0 *)(void *)out);
    else if (j->dt == VIB3_DTYPE_Q4_K16)
        vib3_quantize_q4_k16(tmp, j->imp_h, j->hidden, out);
    else
        j->encode(j->dt, tmp, j->hidden, out);
}

/* phase A: gate and up rows, one task per neuron of the chunk */
static void phase_a(void *ctx, uint64_t index, uint32_t worker) {
    slot_job *j = ctx;
    uint32_t p = (uint32_t)(index / j->K), i = (uint32_t)(index % j->K);
    if (p >= j->n_pages || i >= j->page_n[p]) return;
    uint32_t n = j->page_n[p];
    uint32_t neuron = (j->page0 + p) * j->K + i;
    uint32_t src = j->perm[neuron];
    uint8_t *page = j->buf + j->page_off[p];
    float *tmp = j->c->scratch[worker];
    encode_neuron_row(j, &j->gate, src, tmp, page + (uint64_t)i * j->hrow);
    encode_neuron_row(j, &j->up, src, tmp, page + ((uint64_t)n + i) * j->hrow);
}

/* phase B: down rows, one task per rows_per_task hidden rows */
static void phase_b(void *ctx, uint64_t index, uint32_t worker) {
    slot_job *j = ctx;
    float *row = j->c->scratch[worker];
    float *tmp = row + j->c->scratch_floats;
    uint64_t h0 = index * j->rows_per_task, h1 = h0 + j->rows_per_task;
    if (h1 > j->hidden) h1 = j->hidden;
    for (uint64_t h = h0; h < h1; h++) {
        bool decoded = false;
        for (uint32_t p = 0; p < j->n_pages; p++) {
            uint32_t n = j->page_n[p], first = (j->page0 + p) * j->K;
            uint64_t drow = vib3_dtype_row_bytes(j->dt, n);
            uint8_t *out = j->buf + j->page_off[p] + 2 * (uint64_t)n * j->hrow + h * drow;
            if (j->identity && j->dt == VIB3_DTYPE_Q4_0 && first + n <= j->ffn &&
                vib3_weight_row_native_q4(&j->down, h, first, n, (vib3_block_q4_0 *)out))
                continue;
            if (!decoded) {
                vib3_weight_row_f32(&j->down, h, 0, j->ffn, row);
                decoded = true;
            }
            for (uint32_t i = 0; i < n; i++) {
                uint32_t src = j->perm[first + i];
                tmp[i] = src == NO_NEURON ? 0.0f : row[src];
            }
            if (j->imp_n && (j->dt == VIB3_DTYPE_Q4_0 || j->dt == VIB3_DTYPE_Q4_K16)) {
                float *w = row + 2 * j->c->scratch_floats;
                for (uint32_t i = 0; i < n; i++) {
                    uint32_t src = j->perm[first + i];
                    w[i] = src == NO_NEURON ? 1e-6f : j->imp_n[src];
                }
                if (j->dt == VIB3_DTYPE_Q4_K16)
                    vib3_quantize_q4_k16(tmp, w, n, out);
                else
                    vib3_quantize_q4_0_weighted(tmp, w, n, (vib3_block_q4_0 *)(void *)out);
            } else {
                j->encode(j->dt, tmp, n, out);
            }
        }
    }
}

static vib3_err add_signatures(vib3_cvt *c, slot_job *j) {
    if (!c->cfg.sig_dim) return VIB3_OK;
    uint32_t dim = c->cfg.sig_dim;
    /* this chunk's vectors stay in memory (recall measurement); all of them go to a temp file next to
     * the output, copied into SIGS at the end: memory does not grow with the number of pages */
    if (j->n_pages > c->cap_sigs) {
        float *ns = realloc(c->sigs, (size_t)j->n_pages * dim * sizeof(float));
        if (!ns) return vib3_err_set(VIB3_ERR_NOMEM, "signatures: %u pages", j->n_pages);
        c->sigs = ns;
        c->cap_sigs = j->n_pages;
    }
    if (!c->sig_tmp) {
        snprintf(c->sig_tmp_path, sizeof c->sig_tmp_path, "%s.sigs.tmp", c->o->output_path);
        c->sig_tmp = fopen(c->sig_tmp_path, "w+b");
        if (!c->sig_tmp) return vib3_err_set(VIB3_ERR_IO, "%s: cannot create: %s", c->sig_tmp_path, strerror(errno));
    }
    float *tmp = c->scratch[0];
    for (uint32_t p = 0; p < j->n_pages; p++) {
        float *s = c->sigs + (size_t)p * dim;
        memset(s, 0, dim * sizeof(float));
        uint32_t n = j->page_n[p];
        for (uint32_t i = 0; i < n; i++) {
            vib3_decode_row(j->dt, j->buf + j->page_off[p] + (uint64_t)i * j->hrow, j->hidden, tmp);
            for (uint32_t d = 0; d < dim; d++) s[d] += tmp[d];
        }
        for (uint32_t d = 0; d < dim; d++) s[d] /= (float)n;
    }
    if (fwrite(c->sigs, sizeof(float) * dim, j->n_pages, c->sig_tmp) != j->n_pages)
        return vib3_err_set(VIB3_ERR_IO, "%s: write failed: %s", c->sig_tmp_path, strerror(errno));
    c->n_sigs += j->n_pages;
    return VIB3_OK;
}

/* ---- calibration: activation features and the signature recall measurement ---- */
typedef struct act_job {
    slot_job *j;
    const float *xs;     /* (n, hidden) samples */
    uint32_t n;
    float *feat;         /* (ffn, n) */
    float *imp_n;        /* (ffn) mean squared activation */
} act_job;

static void act_task(void *ctx, uint64_t index, uint32_t worker) {
    act_job *a = ctx;
    slot_job *j = a->j;
    float *g = j->c->scratch[worker], *u = g + j->hidden;
    uint32_t nr = (uint32_t)index;
    vib3_weight_row_f32(&j->gate, nr, 0, j->hidden, g);
    vib3_weight_row_f32(&j->up, nr, 0, j->hidden, u);
    double norm = 0;
    for (uint32_t s = 0; s < a->n; s++) {
        const float *x = a->xs + (size_t)s * j->hidden;
        float gx = 0, ux = 0;
        for (uint32_t h = 0; h < j->hidden; h++) {
            gx += g[h] * x[h];
            ux += u[h] * x[h];
        }
        float act = fabsf(gx / (1.0f + expf(-gx)) * ux);
        a->feat[(size_t)nr * a->n + s] = act;
        norm += (double)act * act;
    }
    a->imp_n[nr] = (float)(norm / a->n);
    float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
    for (uint32_t s = 0; s < a->n; s++) a->feat[(size_t)nr * a->n + s] *= inv;
}

/* Calibration for one slot: the router inputs it saw (routed experts: its own samples; shared
 * experts: the layer's queries) give input-dim importance E[x_c^2] for gate/up rows and neuron
 * importance E[a_j^2] for down columns (importance-weighted Q4_0 scales), and co-firing features
 * for the permutation. Returns true when perm was set from co-firing. */
static bool calib_slot(vib3_cvt *c, slot_job *j, uint32_t layer, uint32_t kind, uint32_t expert, bool permute,
                       uint32_t *perm) {
    const vib3_calib *k = c->calib;
    if (!k || kind == VIB3_PAGE_DENSE || layer >= k->n_layers || expert >= k->n_experts) return false;
    if (k->hidden != j->hidden || c->scratch_floats < 2ull * j->hidden) return false;
    const float *xs;
    uint32_t n;
    if (kind == VIB3_PAGE_ROUTED) {
        size_t slot = (size_t)layer * k->n_experts + expert;
        if (!k->S) return false;
        n = k->n_samples[slot];
        xs = k->samples + slot * k->S * k->hidden;
    } else {
        n = k->n_queries[layer];
        xs = k->queries + (size_t)layer * VIB3_CALIB_QUERIES * k->hidden;
    }
    if (n < 8) return false;
    act_job a = {j, xs, n, malloc((size_t)j->ffn * n * sizeof(float)), malloc(j->ffn * sizeof(float))};
    j->imp_h = calloc(j->hidden, sizeof(float));
    if (!a.feat || !a.imp_n || !j->imp_h) {
        free(a.feat);
        free(a.imp_n);
        free(j->imp_h);
        j->imp_h = NULL;
        return false;
    }
    vib3_par_for(c->par, j->ffn, act_task, &a);
    double mean = 0;
    for (uint32_t s = 0; s < n; s++)
        for (uint32_t h = 0; h < j->hidden; h++) j->imp_h[h] += xs[(size_t)s * j->hidden + h] * xs[(size_t)s * j->hidden + h];
    for (uint32_t h = 0; h < j->hidden; h++) mean += j->imp_h[h] /= (float)n;
    mean /= j->hidden;
    for (uint32_t h = 0; h < j->hidden; h++) j->imp_h[h] += (float)(1e-3 * mean); /* no dim weighs zero */
    double nmean = 0;
    for (uint32_t i = 0; i < j->ffn; i++) nmean += a.imp_n[i];
    nmean /= j->ffn;
    for (uint32_t i = 0; i < j->ffn; i++) a.imp_n[i] += (float)(1e-3 * nmean + 1e-30);
    j->imp_n = a.imp_n;
    /* importance-weighted scales are opt-in: on tinymix-brown with 1250 calibration tokens they
     * raised the KL divergence (Q4_0 0.0051 -> 0.0056, Q4_K16 0.0029 -> 0.0032, docs/bench/convert.md) */
    const char *imx = getenv("VIB3_CONVERT_IMATRIX");
    if (!imx || strcmp(imx, "1")) {
        free(j->imp_h);
        free(j->imp_n);
        j->imp_h = j->imp_n = NULL;
    }
    const char *force = getenv("VIB3_CONVERT_PERMUTE"); /* "weights": weight similarity (experiments) */
    bool used = permute && kind == VIB3_PAGE_ROUTED && !(force && !strcmp(force, "weights"));
    if (used) {
        vib3_cvt_permute_features(a.feat, n, j->ffn, j->ffn_pad, j->K, perm);
        c->n_calib_permuted_slots++;
    }
    free(a.feat);
    return used;
}

/* per page and held-out query: true magnitude sum_j |silu(g_j.q)(u_j.q)| and signature score sig.q */
static void recall_pages(vib3_cvt *c, slot_job *j, uint32_t layer) {
    const vib3_calib *k = c->calib;
    if (!k || !c->cfg.sig_dim || layer >= k->n_layers || k->n_queries[layer] == 0) return;
    if (layer != c->rec_layer) {
        vib3_cvt_recall_layer_end(c);
        c->rec_layer = layer;
    }
    uint32_t nq = k->n_queries[layer], H = j->hidden;
    if (c->rec_n + j->n_pages > c->rec_cap) {
        uint32_t cap = c->rec_cap ? c->rec_cap * 2 : 256;
        while (cap < c->rec_n + j->n_pages) cap *= 2;
        float *t = realloc(c->rec_true, (size_t)VIB3_CALIB_QUERIES * cap * sizeof *t);
        if (!t) return;
        c->rec_true = t;
        float *s = realloc(c->rec_sig, (size_t)VIB3_CALIB_QUERIES * cap * sizeof *s);
        if (!s) return;
        c->rec_sig = s;
        c->rec_cap = cap;
    }
    float *g = c->scratch[0], *u = g + H;
    for (uint32_t p = 0; p < j->n_pages; p++) {
        uint32_t col = c->rec_n + p, n = j->page_n[p];
        const float *sig = c->sigs + (size_t)p * c->cfg.sig_dim;
        for (uint32_t q = 0; q < nq; q++) {
            const float *x = k->queries + ((size_t)layer * VIB3_CALIB_QUERIES + q) * H;
            float sc = 0;
            for (uint32_t h = 0; h < H; h++) sc += sig[h] * x[h];
            c->rec_sig[(size_t)q * c->rec_cap + col] = sc;
            c->rec_true[(size_t)q * c->rec_cap + col] = 0;
        }
        for (uint32_t i = 0; i < n; i++) {
            vib3_decode_row(j->dt, j->buf + j->page_off[p] + (uint64_t)i * j->hrow, H, g);
            vib3_decode_row(j->dt, j->buf + j->page_off[p] + ((uint64_t)n + i) * j->hrow, H, u);
            for (uint32_t q = 0; q < nq; q++) {
                const float *x = k->queries + ((size_t)layer * VIB3_CALIB_QUERIES + q) * H;
                float gx = 0, ux = 0;
                for (uint32_t h = 0; h < H; h++) {
                    gx += g[h] * x[h];
                    ux += u[h] * x[h];
                }
                c->rec_true[(size_t)q * c->rec_cap + col] += fabsf(gx / (1.0f + expf(-gx)) * ux);
            }
        }
    }
    c->rec_n += j->n_pages;
}

typedef struct fidx {
    float v;
    uint32_t i;
} fidx;

static int cmp_fidx_desc(const void *a, const void *b) {
    const fidx *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

void vib3_cvt_recall_layer_end(vib3_cvt *c) {
    const vib3_calib *k = c->calib;
    uint32_t n = c->rec_n;
    c->rec_n = 0;
    if (!k || n < 4 || c->rec_layer >= k->n_layers) return;
    uint32_t nq = k->n_queries[c->rec_layer];
    fidx *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    uint8_t *in = malloc(n);
    if (!a || !b || !in) goto out;
    static const double fracs[2] = {0.10, 0.25};
    for (uint32_t q = 0; q < nq; q++) {
        for (uint32_t i = 0; i < n; i++) {
            a[i] = (fidx){c->rec_true[(size_t)q * c->rec_cap + i], i};
            b[i] = (fidx){c->rec_sig[(size_t)q * c->rec_cap + i], i};
        }
        qsort(a, n, sizeof *a, cmp_fidx_desc);
        qsort(b, n, sizeof *b, cmp_fidx_desc);
        double total = 0, top = 0;
        uint32_t k10 = (uint32_t)(0.10 * n + 0.5) ? (uint32_t)(0.10 * n + 0.5) : 1;
        for (uint32_t i = 0; i < n; i++) total += a[i].v;
        for (uint32_t i = 0; i < k10; i++) top += a[i].v;
        c->mass_top10_sum += total > 0 ? top / total : 0;
        for (int f = 0; f < 2; f++) {
            uint32_t kk = (uint32_t)(fracs[f] * n + 0.5);
            if (kk < 1) kk = 1;
            memset(in, 0, n);
            for (uint32_t i = 0; i < kk; i++) in[a[i].i] = 1;
            uint32_t hit = 0;
            for (uint32_t i = 0; i < kk; i++) hit += in[b[i].i];
            c->recall_sum[f] += (double)hit / kk;
            c->recall_base[f] += (double)kk / n;
        }
        c->recall_count++;
    }
out:
    free(a);
    free(b);
    free(in);
}

vib3_err vib3_cvt_put_coact(vib3_cvt *c) {
    const vib3_calib *k = c->calib;
    if (!k || !k->n_experts || k->n_layers != c->cfg.n_layers || k->n_experts != c->cfg.n_experts) return VIB3_OK;
    vib3_coact_header h;
    memset(&h, 0, sizeof h);
    h.n_layers = k->n_layers;
    h.n_experts = k->n_experts;
    h.n_tokens = k->n_tokens;
    size_t LE = (size_t)k->n_layers * k->n_experts;
    vib3_err e = vib3_writer_section_begin(&c->w, VIB3_SEC_COACT, 0, 0);
    if (!e) e = vib3_writer_section_append(&c->w, &h, sizeof h);
    if (!e) e = vib3_writer_section_append(&c->w, k->freq, LE * sizeof *k->freq);
    if (!e && k->n_layers > 1)
        e = vib3_writer_section_append(&c->w, k->trans, (LE - k->n_experts) * k->n_experts * sizeof *k->trans);
    if (!e) e = vib3_writer_section_end(&c->w);
    return e;
}

vib3_err vib3_cvt_put_slot(vib3_cvt *c, uint32_t layer, uint32_t kind, uint32_t expert, uint32_t ffn,
                           const char *gate, const char *up, const char *down) {
    slot_job j;
    memset(&j, 0, sizeof j);
    j.c = c;
    j.hidden = c->cfg.hidden_size;
    j.ffn = ffn;
    j.ffn_pad = (ffn + 31) / 32 * 32;
    j.K = c->K;
    j.dt = c->expert_dt;
    if (j.dt == VIB3_DTYPE_Q4_K16 && layer < c->q8_layers) {
        /* the first layer(s) in Q8_0: on tinymix-brown layer 0's experts carry half of the Q4 loss
         * (massive activations; llama.cpp's Q4_K_M also spends more bits on early ffn_down). Pages
         * hold fewer neurons so none is larger than a Q4_K16 page: frames stay the same size. */
        uint64_t cap = vib3_page_bytes(j.dt, j.hidden, j.K);
        uint32_t k8 = 32;
        for (uint32_t k = 64; k <= j.K; k += 32)
            if (vib3_page_bytes(VIB3_DTYPE_Q8_0, j.hidden, k) <= cap) k8 = k;
        j.dt = VIB3_DTYPE_Q8_0;
        j.K = k8;
        c->n_q8_slots++;
    }
    j.hrow = vib3_dtype_row_bytes(j.dt, j.hidden);
    j.encode = c->o->q4_ggml_ref ? vib3_encode_row : vib3_encode_row_best;
    vib3_err e;
    if ((e = vib3_weight_find(&c->src, gate, &j.gate)) || (e = vib3_weight_find(&c->src, up, &j.up)) ||
        (e = vib3_weight_find(&c->src, down, &j.down)))
        return e == VIB3_ERR_NOT_FOUND ? vib3_err_prefix("%s", c->o->model_path) : e;
    const vib3_weight *ws[3] = {&j.gate, &j.up, &j.down};
    uint64_t want[3][2] = {{ffn, j.hidden}, {ffn, j.hidden}, {j.hidden, ffn}};
    for (int i = 0; i < 3; i++) {
        if (ws[i]->rows != want[i][0] || ws[i]->cols != want[i][1]) {
            const char *file = ws[i]->t ? c->src.files[ws[i]->t->file].path : c->o->model_path;
            return vib3_err_set(VIB3_ERR_FORMAT,
                                "%s: tensor %s: shape mismatch: (%llu, %llu) but the config implies (%llu, %llu)", file,
                                ws[i]->name, (unsigned long long)ws[i]->rows, (unsigned long long)ws[i]->cols,
                                (unsigned long long)want[i][0], (unsigned long long)want[i][1]);
        }
    }
    uint32_t *perm = malloc(j.ffn_pad * sizeof *perm);
    if (!perm) return vib3_err_set(VIB3_ERR_NOMEM, "permutation");
    for (uint32_t i = 0; i < j.ffn_pad; i++) perm[i] = i < ffn ? i : NO_NEURON;
    j.identity = true;
    uint32_t n_pages_total = (j.ffn_pad + j.K - 1) / j.K;
    bool lossless = j.dt == VIB3_DTYPE_Q4_0 && vib3_weight_native_q4_possible(&j.gate) &&
                    vib3_weight_native_q4_possible(&j.up) && vib3_weight_native_q4_possible(&j.down);
    bool permute = !c->o->no_permute && n_pages_total > 1 && !lossless;
    bool from_calib = !lossless && !c->o->q4_ggml_ref && calib_slot(c, &j, layer, kind, expert, permute, perm);
    if (permute) {
        if (!from_calib) vib3_cvt_permute(c, &j.gate, ffn, j.ffn_pad, j.K, perm);
        j.identity = false;
        for (uint32_t i = 0; i < ffn; i++) j.identity &= perm[i] == i;
        if (!j.identity) c->n_permuted_slots++;
    }
    j.perm = perm;
    uint64_t full_page = vib3_page_bytes(j.dt, j.hidden, j.K);
    uint64_t chunk_budget = c->budget_bytes / 4;
    uint32_t chunk_pages = full_page ? (uint32_t)(chunk_budget / full_page) : 1;
    if (chunk_pages < 1) chunk_pages = 1;
    if (chunk_pages > n_pages_total) chunk_pages = n_pages_total;
    j.page_off = malloc(chunk_pages * sizeof *j.page_off);
    j.page_n = malloc(chunk_pages * sizeof *j.page_n);
    j.buf = malloc(full_page * chunk_pages);
    if (!j.page_off || !j.page_n || !j.buf) {
        e = vib3_err_set(VIB3_ERR_NOMEM, "pages of layer %u expert %u: %llu bytes", layer, expert,
                         (unsigned long long)(full_page * chunk_pages));
        goto out;
    }
    j.rows_per_task = 1 + (uint32_t)((1u << 16) / (j.ffn_pad + 1));
    for (uint32_t p0 = 0; p0 < n_pages_total && !e; p0 += chunk_pages) {
        j.page0 = p0;
        j.n_pages = n_pages_total - p0 < chunk_pages ? n_pages_total - p0 : chunk_pages;
        uint64_t off = 0;
        for (uint32_t p = 0; p < j.n_pages; p++) {
            uint32_t first = (p0 + p) * j.K;
            j.page_n[p] = j.ffn_pad - first < j.K ? j.ffn_pad - first : j.K;
            j.page_off[p] = off;
            off += vib3_page_bytes(j.dt, j.hidden, j.page_n[p]);
        }
        vib3_par_for(c->par, (uint64_t)j.n_pages * j.K, phase_a, &j);
        vib3_par_for(c->par, (j.hidden + j.rows_per_task - 1) / j.rows_per_task, phase_b, &j);
        if ((e = add_signatures(c, &j))) break;
        if (kind == VIB3_PAGE_ROUTED) recall_pages(c, &j, layer);
        for (uint32_t p = 0; p < j.n_pages && !e; p++) {
            vib3_page_entry meta;
            memset(&meta, 0, sizeof meta);
            meta.layer = layer;
            meta.expert = expert;
            meta.kind = kind;
            meta.dtype = j.dt;
            meta.first_neuron = (p0 + p) * j.K;
            meta.n_neurons = j.page_n[p];
            uint64_t bytes = vib3_page_bytes(j.dt, j.hidden, j.page_n[p]);
            e = vib3_writer_add_page(&c->w, &meta, j.buf + j.page_off[p], bytes);
            if (!e) {
                c->n_pages++;
                c->page_bytes_out += bytes;
            }
        }
    }
out:
    free(perm);
    free(j.imp_h);
    free(j.imp_n);
    free(j.page_off);
    free(j.page_n);
    free(j.buf);
    if (!e) {
        const char *what = kind == VIB3_PAGE_DENSE ? "dense ffn" : kind == VIB3_PAGE_SHARED ? "shared expert" : "expert";
        char label[64];
        snprintf(label, sizeof label, "layer %u %s %u", layer, what, expert);
        for (int i = 0; i < 3; i++) {
            if (ws[i]->t) c->bytes_done += ws[i]->t->bytes;
            if (ws[i]->scale) c->bytes_done += ws[i]->scale->bytes;
            vib3_weight_release(ws[i]);
        }
        vib3_cvt_progress(c, label, false);
    }
    return e;
}

void vib3_cvt_sig_tmp_close(vib3_cvt *c) {
    if (!c->sig_tmp) return;
    fclose(c->sig_tmp);
    c->sig_tmp = NULL;
    unlink(c->sig_tmp_path);
}

vib3_err vib3_cvt_put_signatures(vib3_cvt *c) {
    if (!c->cfg.sig_dim || c->n_sigs == 0) return VIB3_OK;
    if (c->n_sigs != c->n_pages) return vib3_err_set(VIB3_ERR_INTERNAL, "signatures %llu != pages %llu",
                                                     (unsigned long long)c->n_sigs, (unsigned long long)c->n_pages);
    vib3_sig_header h;
    memset(&h, 0, sizeof h);
    h.dim = c->cfg.sig_dim;
    h.dtype = VIB3_DTYPE_F32;
    h.count = c->n_sigs;
    h.method = 1;
    vib3_err e = vib3_writer_section_begin(&c->w, VIB3_SEC_SIGNATURES, 0, c->n_sigs);
    if (!e) e = vib3_writer_section_append(&c->w, &h, sizeof h);
    uint64_t total = c->n_sigs * h.dim * sizeof(float), done = 0;
    /* the HNSW build (index.c) needs every vector in memory: read them back into c->sigs */
    float *all = e ? NULL : realloc(c->sigs, total);
    if (!e && !all)
        e = vib3_err_set(VIB3_ERR_NOMEM, "signatures: %llu pages x %u dims", (unsigned long long)c->n_sigs, h.dim);
    if (all) {
        c->sigs = all;
        c->cap_sigs = c->n_sigs;
    }
    if (!e && (fflush(c->sig_tmp) != 0 || fseek(c->sig_tmp, 0, SEEK_SET) != 0))
        e = vib3_err_set(VIB3_ERR_IO, "%s: %s", c->sig_tmp_path, strerror(errno));
    while (!e && done < total) {
        size_t want = total - done < (1u << 20) ? (size_t)(total - done) : (1u << 20);
        if (fread((char *)c->sigs + done, 1, want, c->sig_tmp) != want) {
            e = vib3_err_set(VIB3_ERR_IO, "%s: short read", c->sig_tmp_path);
            break;
        }
        e = vib3_writer_section_append(&c->w, (char *)c->sigs + done, want);
        done += want;
    }
    if (!e) e = vib3_writer_section_end(&c->w);
    vib3_cvt_sig_tmp_close(c);
    return e;
}
