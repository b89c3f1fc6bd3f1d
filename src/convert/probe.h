/* probe.h — look-ahead expert probes fitted at calibration (PRED section).
 *
 * For every MoE source layer l and target t = l + 1 .. l + depth (past the
 * last layer: the next token's layer t - n_layers), a linear probe
 * W (E x H) + b maps layer l's router input x_l (what the MoE hook sees) to
 * layer t's selection scores (router logits + selection bias; sigmoid
 * scores + bias for sigmoid routers) of the same token (next token for wrap
 * targets). Fit: ridge regression on the calibration rows, in double,
 * shrunk towards the look-ahead router (W0 = R_t diag(w_t / w_l), the
 * predictor src/index/prefetch.c uses without probes; softmax routers only,
 * towards 0 otherwise), lambda (relative to the mean input power) chosen
 * from a grid by squared error on every fifth calibration window and then
 * refitted on all windows. docs/bench/storage.md has the study behind it.
 *
 * Cost: the moments are 2 x n_layers x (H + 1)^2 doubles plus
 * 2 x pairs x (H + 1) x E; accumulation is ~H^2 / 2 + 2 depth H E
 * multiply-adds per token and source layer (measured here: 0.6 ms per token
 * and layer at H 1024, 3 ms at H 2048); the solve is one Cholesky of
 * (H + 1)^2 per source layer and lambda (7 lambdas, 3 above H 1024; ~4 s
 * per source layer at H 1024). tinymix-brown (H 192, 4 layers, 1250 tokens):
 * +0.17 s and +2.7 MB RSS on the conversion, +49.6 KB of file. A
 * Qwen3-30B-A3B shape (H 2048, E 128, 48 layers, 4096 tokens) would need
 * 3.6 GB of moments (so --mem-budget >= 15G), ~10 min of accumulation and
 * ~15 min of solves, and 50 MB of f16 probes: skipped at the default budget.
 * Above VIB3_PROBE_HIDDEN_MAX (Mixtral 4096, DeepSeek / Kimi 7168) the fit
 * runs on a sketch: z = [S x, 1] with S a fixed random +-1/sqrt(r) matrix of
 * r = VIB3_PROBE_SKETCH_DIM rows, and it learns a correction of the router
 * look-ahead (residual targets y - prior, ridge towards 0), written as the
 * full W = W0 + S^T V in the same layout (PRED method 2; the prefetcher then
 * keeps the router's k + 1 guesses instead of k). The
 * moments are then r x r (2 x 32 x 513^2 doubles = 135 MB for Mixtral), plus
 * r x H + 2 depth x E x H multiply-adds per calibration row and layer. On
 * tinymix (H 192, forced with VIB3_PROBE_SKETCH=r) a sketch keeps 88% / 59% /
 * 31% of the full fit's recall gain at r = 128 / 64 / 32 (layer 1 from layer
 * 0, 2 guesses: router 45.8, full 61.8, sketches 59.9 / 55.2 / 50.9); never
 * measured on a trained model that large (none here). Skipped (no PRED
 * section; the prefetcher falls back to the router) for sigmoid routers above
 * VIB3_PROBE_HIDDEN_MAX, hidden > VIB3_PROBE_SKETCH_HIDDEN_MAX, or when the
 * moments would exceed a quarter of the converter's memory budget. Section:
 * pairs x E x H weights (f32, f16 above 16 MiB).
 */
#ifndef VIB3_CONVERT_PROBE_H
#define VIB3_CONVERT_PROBE_H

#include <stdint.h>

#include "core/err.h"
#include "format/reader.h"
#include "format/writer.h"

#define VIB3_PROBE_DEPTH 2u        /* targets per source layer (the prefetcher's default depth) */
#define VIB3_PROBE_HIDDEN_MAX 2048u         /* above: fitted on a sketch */
#define VIB3_PROBE_SKETCH_DIM 512u          /* sketch features above VIB3_PROBE_HIDDEN_MAX */
#define VIB3_PROBE_SKETCH_HIDDEN_MAX 16384u /* none above (the prior's mat-vecs per calibration row) */

typedef struct vib3_probe_fit vib3_probe_fit;

/* NULL in *out (and VIB3_OK) when the model is not MoE, hidden > VIB3_PROBE_HIDDEN_MAX or the
 * moments need more than mem_bytes; why in note. Router and norm weights are copied from f. */
vib3_err vib3_probe_fit_init(vib3_probe_fit **out, const vib3_file *f, uint32_t depth, uint64_t mem_bytes,
                             char *note, size_t note_cap);
/* the same from raw f32 arrays: router (L, E, H), bias (L, E) or NULL, norm (L, H) or NULL (for tests) */
vib3_err vib3_probe_fit_init_raw(vib3_probe_fit **out, uint32_t L, uint32_t E, uint32_t H, uint32_t depth,
                                 const float *router, const float *bias, const float *norm, int sigmoid);
void vib3_probe_fit_free(vib3_probe_fit *p);
/* a new window of consecutive tokens (fresh KV cache) starts */
void vib3_probe_fit_window(vib3_probe_fit *p);
/* the MoE hook's rows for one layer: x (n_rows, hidden), consecutive tokens of the window */
void vib3_probe_fit_rows(vib3_probe_fit *p, uint32_t layer, const float *x, uint32_t n_rows);
/* lambda selection and the final fit; after this the probes can be written */
vib3_err vib3_probe_fit_solve(vib3_probe_fit *p);
uint32_t vib3_probe_fit_pairs(const vib3_probe_fit *p);
uint64_t vib3_probe_fit_tokens(const vib3_probe_fit *p);
/* inputs the fit used: hidden, or the sketch size */
uint32_t vib3_probe_fit_features(const vib3_probe_fit *p);
/* the PRED section's bytes (malloc'd, *out NULL when there are no pairs) and the section itself */
vib3_err vib3_probe_serialize(const vib3_probe_fit *p, uint8_t **out, uint64_t *bytes);
vib3_err vib3_probe_write(const vib3_probe_fit *p, vib3_writer *w);

/* the fitted probe of pair slot i (source i / depth, distance i % depth + 1): W (E, H) row-major and b (E) */
vib3_err vib3_probe_fit_get(const vib3_probe_fit *p, uint32_t i, uint32_t *source, uint32_t *target, uint32_t *next,
                            const float **W, const float **b, float *lambda);

#endif
