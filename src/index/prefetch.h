/* prefetch.h — predictive prefetch of expert pages (src/index/).
 *
 * Two predictors guess which experts layer l+1 will route to while layer l
 * is still computing; a planner turns their guesses into
 * vib3_pages_prefetch() hints (bounded in flight by the buffer manager, so
 * hints never starve demand reads):
 *
 *   coact      co-activation graph: counts of (layer l expert i -> layer l+1
 *              expert j) transitions, seeded from the file's COAC section
 *              (scaled to be worth ~1000 calibration tokens) and updated
 *              online from the routing the engine reports. Predicts the top-k
 *              j by sum over the row's chosen i.
 *   lookahead  layer l+1's router applied to layer l's normalised hidden
 *              state (the residual stream changes slowly between layers);
 *              the input is re-weighted from layer l's ffn_norm to layer
 *              l+1's (x / w_l * w_{l+1}), which is exact when the residual did
 *              not change. Predicts the top-k (+ margin) experts. Hints
 *              layers l+1 .. l+depth (default depth 2: a read gets two
 *              layers of compute, not one) and, with wrap (default on), past
 *              the last layer the next token's first layers from the same
 *              hidden state; optionally as many guesses per target as reach
 *              a softmax mass (VIB3_PREFETCH_MASS; off by default: on
 *              tinymix it read more and faulted more). At open it asks the
 *              buffer manager for a prefetch window of 2 x depth x (k +
 *              margin) experts' pages (vib3_pages_prefetch_window).
 *              When the file has a PRED section (look-ahead probes fitted at
 *              calibration, src/convert/probe.h) the scores for a (layer,
 *              target) pair it covers are the probe's W x + b instead of the
 *              re-weighted router (predictor "probe" in the stats; on
 *              tinymix-brown recall at 3 guesses of layer 1 from layer 0
 *              goes from 61% to 75%, docs/bench/storage.md);
 *              VIB3_PREFETCH_PROBES=0 ignores them. Hints within a target
 *              go out most likely first. With probes the default margin is 0
 *              (k guesses): at k they recall what the router does at k + 1
 *              for the weak targets, and the reads saved keep more cache.
 *   both       the union, lookahead's first (coact only for layer l+1).
 *
 * The planner also fetches the pages of the experts the current layer has
 * just routed to (vib3_pages_fetch: known needs, queued with demand reads),
 * so a layer's expert reads are in flight together instead of one fault at
 * a time. That is not a prediction and happens in every mode, "none"
 * included; "none" issues no hints.
 *
 * Accuracy is measured at the expert level, independent of the cache: at
 * layer l+1 the routed set is compared with what each predictor said at
 * layer l (precision = correct / predicted, recall = correct / routed);
 * hint_precision / hint_recall score everything hinted for a routing, every
 * depth included.
 *
 * Wire-up (runtime/engine.h):  vib3_engine_set_moe_hook(e, vib3_prefetcher_moe_hook, pf);
 * Memory: all arrays carved at open from the arena (coact: 4 * L * E * E
 * bytes; a few E- and hidden-sized scratch rows); nothing per token.
 */
#ifndef VIB3_INDEX_PREFETCH_H
#define VIB3_INDEX_PREFETCH_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "format/reader.h"
#include "storage/pages.h"

typedef struct vib3_prefetcher vib3_prefetcher;

enum {
    VIB3_PREDICT_COACT = 1u << 0,
    VIB3_PREDICT_LOOKAHEAD = 1u << 1,
};

typedef struct vib3_prefetch_stats {
    char mode[16];                 /* auto | none | coact | lookahead | both */
    char predictor[16];            /* what lookahead scores with: "probe" (the file's PRED probes) or "router" */
    uint32_t probe_pairs;          /* (source, target) probes loaded from PRED; 0 = router look-ahead */
    uint64_t layers_observed;      /* hook calls */
    /* expert-level accuracy per predictor (0 = coact, 1 = lookahead, 2 = union used) */
    uint64_t predicted[3], correct[3], routed[3];
    double precision[3], recall[3];
    uint64_t experts_hinted;       /* experts whose pages were handed to vib3_pages_prefetch */
    uint64_t experts_fetched;      /* routed experts fetched by the planner */
    /* everything hinted for a routing (every depth, the mode's predictors), at the expert level */
    uint64_t hint_predicted, hint_correct, hint_routed;
    double hint_precision, hint_recall;
    /* auto: the on/off gate (index/gate.h) */
    int gated, gate_hints_on;      /* auto mode; hints on now */
    uint64_t gate_epochs[2];       /* epochs measured with hints off / on */
    double gate_token_ms[2];       /* their recent mean decode token time (MoE layers), 0 = not measured */
    uint64_t gate_switches;        /* times the kept arm changed after the warm-up */
} vib3_prefetch_stats;

/* mode from cfg->prefetch (auto, none, coact, lookahead, both); pages may be NULL (accuracy only).
 * auto = lookahead whose hints an online A/B (index/gate.h) turns off while they cost decode time */
vib3_err vib3_prefetcher_open(vib3_prefetcher **out, const vib3_file *f, vib3_pages *pages, const vib3_config *cfg,
                              vib3_arena *arena);
void vib3_prefetcher_close(vib3_prefetcher *pf);

/* the engine's MoE hook (vib3_moe_hook_fn): ctx = the prefetcher. x (n_rows,
 * hidden) is layer `layer`'s normalised router input, experts (n_rows, k)
 * the slots chosen for it (-1 padding; shared slots >= n_experts ignored by
 * the predictors). Updates the graph, scores the previous predictions,
 * fetches this layer's routed pages and hints layer + 1's. */
void vib3_prefetcher_moe_hook(void *ctx, uint32_t layer, const float *x, uint32_t n_rows, const int32_t *experts,
                              uint32_t k);

/* lower level, for tests and offline studies: the experts each predictor
 * expects at layer + 1 for one row; returns how many were written to out */
uint32_t vib3_prefetcher_predict_coact(vib3_prefetcher *pf, uint32_t layer, const int32_t *experts, uint32_t k,
                                       uint32_t *out, uint32_t cap);
uint32_t vib3_prefetcher_predict_lookahead(vib3_prefetcher *pf, uint32_t layer, const float *x, uint32_t *out,
                                           uint32_t cap);
/* lookahead from layer to any later layer target (target < layer: the next
 * token's), mass as vib3_prefetcher_set_lookahead (0: k + margin guesses) */
uint32_t vib3_prefetcher_predict_ahead(vib3_prefetcher *pf, uint32_t layer, uint32_t target, const float *x,
                                       float mass, uint32_t *out, uint32_t cap);
/* lookahead hints: depth layers ahead (1..n_layers; default 2, VIB3_PREFETCH_DEPTH), guesses per row
 * and target until their softmax mass >= mass (default 0.9, VIB3_PREFETCH_MASS; 0 = k + margin),
 * wrap: past the last layer hint the next token's first layers (default on, VIB3_PREFETCH_WRAP).
 * depth 1, mass 0, wrap 0 is the one-layer look-ahead of k + margin experts. */
void vib3_prefetcher_set_lookahead(vib3_prefetcher *pf, uint32_t depth, float mass, int wrap);
/* experts predicted per row beyond the model's k (lookahead margin; default 1, 0 when the file's
 * probes are used; VIB3_PREFETCH_MARGIN) */
void vib3_prefetcher_set_margin(vib3_prefetcher *pf, uint32_t margin);
void vib3_prefetcher_stats_get(vib3_prefetcher *pf, vib3_prefetch_stats *s);

#endif
