/* calib.c — calibration run: routing statistics and activation samples.
 *
 * `vib3 convert --calib TEXT` (or the default text models/calib/default.txt)
 * converts once without permutation to a temporary .vib3, runs the engine
 * over the text in windows of up to 256 tokens (fresh KV cache each), and
 * collects through the engine's MoE hook, for every MoE layer:
 *   - expert selection counts freq[l][e] and layer-to-layer transitions
 *     trans[l][i][j] (token chose i at MoE layer l and j at l+1) -> COAC;
 *   - up to S router inputs per (layer, expert) (reservoir sampling with a
 *     fixed seed: deterministic for a given text), from which pages.c computes
 *     each neuron's activation |silu(g.x) (u.x)| on tokens routed to the
 *     expert: co-firing features for permute.c;
 *   - up to R router inputs per layer (any token) as held-out queries for the
 *     signature recall measurement (pages.c);
 *   - the moments of the look-ahead probes (probe.h: router input of layer l
 *     against the selection scores of layers l+1, l+2 and the next token's
 *     first layers), solved at the end of the run -> PRED. VIB3_NO_PROBES=1
 *     skips them.
 * S is bounded by a quarter of the memory budget (S = 0 disables the
 * activation permutation, which falls back to weight similarity).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert/internal.h"
#include "convert/probe.h"
#include "core/config.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"

#define CALIB_TEXT_MAX (256u << 10)
#define CALIB_WINDOW 256u
#define CALIB_SAMPLES_MAX 64u
#define CALIB_QUERIES VIB3_CALIB_QUERIES

static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void vib3_calib_free(vib3_calib *k) {
    free(k->freq);
    free(k->trans);
    free(k->samples);
    free(k->n_seen);
    free(k->n_samples);
    free(k->queries);
    free(k->q_seen);
    free(k->n_queries);
    free(k->prev);
    vib3_probe_fit_free(k->probe);
    memset(k, 0, sizeof *k);
}

static void hook(void *ctx, uint32_t layer, const float *x, uint32_t n_rows, const int32_t *experts, uint32_t k) {
    vib3_calib *c = ctx;
    if (layer >= c->n_layers || k == 0) return;
    uint32_t E = c->n_experts, H = c->hidden;
    if (layer == c->first_moe) c->n_tokens += n_rows;
    vib3_probe_fit_rows(c->probe, layer, x, n_rows);
    for (uint32_t r = 0; r < n_rows; r++) {
        const int32_t *ex = experts + (size_t)r * k;
        for (uint32_t i = 0; i < k; i++) {
            if (ex[i] < 0 || (uint32_t)ex[i] >= E) continue;
            uint32_t e = (uint32_t)ex[i];
            c->freq[(size_t)layer * E + e]++;
            /* reservoir sample of this (layer, expert)'s router inputs */
            if (c->S) {
                size_t slot = (size_t)layer * E + e;
                uint64_t seen = c->n_seen[slot]++;
                uint64_t pos = seen < c->S ? seen : mix(&c->rng) % (seen + 1);
                if (pos < c->S) {
                    memcpy(c->samples + (slot * c->S + pos) * H, x + (size_t)r * H, H * sizeof *x);
                    if (c->n_samples[slot] < c->S) c->n_samples[slot]++;
                }
            }
        }
        uint64_t qs = c->q_seen[layer]++;
        uint64_t qpos = qs < CALIB_QUERIES ? qs : mix(&c->rng) % (qs + 1);
        if (qpos < CALIB_QUERIES) {
            memcpy(c->queries + ((size_t)layer * CALIB_QUERIES + qpos) * H, x + (size_t)r * H, H * sizeof *x);
            if (c->n_queries[layer] < CALIB_QUERIES) c->n_queries[layer]++;
        }
        /* transitions from the previous MoE layer for the same rows */
        if (c->prev_layer + 1 == (int64_t)layer && c->prev_rows == n_rows && c->prev_k == k) {
            const int32_t *pe = c->prev + (size_t)r * k;
            for (uint32_t i = 0; i < k; i++)
                for (uint32_t j = 0; j < k; j++)
                    if (pe[i] >= 0 && (uint32_t)pe[i] < E && ex[j] >= 0 && (uint32_t)ex[j] < E)
                        c->trans[((size_t)(layer - 1) * E + (uint32_t)pe[i]) * E + (uint32_t)ex[j]]++;
        }
    }
    if (n_rows * k <= c->prev_cap) {
        memcpy(c->prev, experts, (size_t)n_rows * k * sizeof *experts);
        c->prev_layer = layer;
        c->prev_rows = n_rows;
        c->prev_k = k;
    } else {
        c->prev_layer = -2;
    }
}

/* targets per source layer for the probes: VIB3_PROBE_DEPTH (1..8) or VIB3_PROBE_DEPTH_DEFAULT */
static uint32_t probe_depth(void) {
    const char *d = getenv("VIB3_PROBE_DEPTH");
    int v = d && *d ? atoi(d) : 0;
    return v >= 1 && v <= 8 ? (uint32_t)v : VIB3_PROBE_DEPTH;
}

vib3_err vib3_calib_run(const char *vib3_path, const char *text_path, uint32_t threads, uint64_t budget,
                        uint32_t max_tokens, vib3_calib *c) {
    memset(c, 0, sizeof *c);
    size_t len;
    vib3_err e;
    char *text = vib3_cvt_read_file(text_path, CALIB_TEXT_MAX * 64, &len, &e);
    if (!text) return e ? e : vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: calibration text not found", text_path);
    if (len > CALIB_TEXT_MAX) len = CALIB_TEXT_MAX; /* may cut a UTF-8 sequence: back off to a boundary */
    while (len > 0 && ((unsigned char)text[len - 1] & 0xC0) == 0x80) len--;
    if (len > 0 && (unsigned char)text[len - 1] >= 0xC0) len--;
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    cfg.ram_budget_bytes = budget / 2; /* the engine's page frames stay inside the converter's budget */
    vib3_engine_params p;
    memset(&p, 0, sizeof p);
    p.n_seq = 1;
    p.ctx_size = CALIB_WINDOW;
    p.batch_size = CALIB_WINDOW;
    p.threads = threads;
    vib3_engine *eng = NULL;
    uint32_t *ids = NULL;
    if ((e = vib3_engine_open(&eng, vib3_path, &cfg, &p))) goto out;
    vib3_tokenizer *tok = vib3_engine_tokenizer(eng);
    if (!tok) {
        e = vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: calibration needs the model's tokenizer", vib3_path);
        goto out;
    }
    const vib3_model_config *m = vib3_engine_model(eng);
    c->n_layers = m->n_layers;
    c->n_experts = m->n_experts;
    c->hidden = m->hidden_size;
    c->first_moe = m->first_k_dense;
    c->prev_layer = -2;
    c->rng = 0x5eedca1bull;
    size_t LE = (size_t)c->n_layers * c->n_experts;
    uint64_t per_sample = (uint64_t)LE * c->hidden * sizeof(float);
    c->S = per_sample ? (uint32_t)((budget / 4) / per_sample) : 0;
    if (c->S > CALIB_SAMPLES_MAX) c->S = CALIB_SAMPLES_MAX;
    c->prev_cap = CALIB_WINDOW * 64;
    c->freq = calloc(LE, sizeof *c->freq);
    c->trans = calloc(LE * c->n_experts, sizeof *c->trans);
    c->n_seen = calloc(LE, sizeof *c->n_seen);
    c->n_samples = calloc(LE, sizeof *c->n_samples);
    c->samples = c->S ? malloc(LE * c->S * c->hidden * sizeof(float)) : NULL;
    c->queries = malloc((size_t)c->n_layers * CALIB_QUERIES * c->hidden * sizeof(float));
    c->q_seen = calloc(c->n_layers, sizeof *c->q_seen);
    c->n_queries = calloc(c->n_layers, sizeof *c->n_queries);
    c->prev = malloc(c->prev_cap * sizeof *c->prev);
    ids = malloc((size_t)(max_tokens + 16) * sizeof *ids);
    if (!c->freq || !c->trans || !c->n_seen || !c->n_samples || (c->S && !c->samples) || !c->queries ||
        !c->q_seen || !c->n_queries || !c->prev || !ids) {
        e = vib3_err_set(VIB3_ERR_NOMEM, "calibration statistics");
        goto out;
    }
    size_t n_ids = 0;
    e = vib3_tokenizer_encode(tok, text, len, VIB3_TOK_ADD_SPECIAL, ids, max_tokens, &n_ids);
    if (e == VIB3_ERR_LIMIT) e = VIB3_OK, vib3_err_clear();
    if (e) {
        vib3_err_prefix("%s", text_path);
        goto out;
    }
    const char *np = getenv("VIB3_NO_PROBES");
    if (np && *np && *np != '0') snprintf(c->probe_note, sizeof c->probe_note, "none (VIB3_NO_PROBES)");
    else if ((e = vib3_probe_fit_init(&c->probe, vib3_engine_file(eng), probe_depth(), budget / 4, c->probe_note,
                                      sizeof c->probe_note)))
        goto out;
    vib3_engine_set_moe_hook(eng, hook, c);
    vib3_seq *s;
    if ((e = vib3_seq_acquire(eng, &s))) goto out;
    for (size_t pos = 0; pos < n_ids && !e; pos += CALIB_WINDOW) {
        uint32_t n = (uint32_t)(n_ids - pos < CALIB_WINDOW ? n_ids - pos : CALIB_WINDOW);
        vib3_seq_reset(s);
        c->prev_layer = -2;
        vib3_probe_fit_window(c->probe);
        e = vib3_seq_prefill(s, ids + pos, n, NULL);
    }
    if (!e && c->probe) {
        e = vib3_probe_fit_solve(c->probe);
        uint32_t feat = vib3_probe_fit_features(c->probe);
        char sk[40] = "";
        if (feat < vib3_engine_file(eng)->config->hidden_size) snprintf(sk, sizeof sk, ", sketch of %u features", feat);
        snprintf(c->probe_note, sizeof c->probe_note, "%u pairs from %llu tokens%s", vib3_probe_fit_pairs(c->probe),
                 (unsigned long long)vib3_probe_fit_tokens(c->probe), sk);
    }
    vib3_seq_release(s);
    vib3_engine_set_moe_hook(eng, NULL, NULL);
out:
    if (eng) vib3_engine_close(eng);
    free(ids);
    free(text);
    if (e) vib3_calib_free(c);
    return e;
}
