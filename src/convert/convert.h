/* convert.h — turn an HF safetensors directory or a GGUF file into one .vib3.
 * Used by `vib3 convert` and by `vib3 pull` after a download. */
#ifndef VIB3_CONVERT_H
#define VIB3_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

typedef struct vib3_convert_opts {
    const char *model_path;     /* HF directory or .gguf file */
    const char *output_path;    /* .vib3 (written via .tmp + rename) */
    int expert_dtype;           /* vib3_dtype; -1 = default (q4_0) */
    uint32_t page_neurons;      /* 0 = automatic */
    const char *calib_path;     /* calibration text; NULL = built-in default */
    bool no_index;              /* skip signatures' HNSW index */
    bool no_calib;              /* skip calibration (weight-similarity permutation only) */
    bool no_permute;            /* keep the source neuron order (exact page-by-page comparisons) */
    uint32_t calib_tokens;      /* calibration tokens; 0 = 4096 */
    bool q4_ggml_ref;           /* Q4_0 scales exactly as ggml's reference quantizer (bit-identical to llama.cpp) */
    bool dense_q4;              /* --dense q4: with INT4 pages, other matrices Q4_0 too (default Q8_0) */
    bool dense_f16;             /* --dense f16: with INT4 / Q8 pages, other matrices F16 */
    uint32_t q8_layers;         /* --q8-layers N: with Q4_K16 pages, the first N layers' FFN pages are Q8_0 */
    bool q8_layers_set;         /* q8_layers given; otherwise 1 */
    uint32_t threads;           /* 0 = all cores */
    uint64_t mem_budget_bytes;  /* peak working memory; 0 = 2 GiB */
    bool progress;              /* progress bar on stderr (tty) or plain lines */
    bool quiet;
} vib3_convert_opts;

vib3_err vib3_convert(const vib3_convert_opts *opts);

/* what a conversion did (for the CLI's summary and benchmarks) */
typedef struct vib3_convert_stats {
    uint64_t source_bytes;   /* source weight bytes read */
    double seconds;
    uint64_t n_pages;
    uint64_t page_bytes;     /* expert page bytes written */
    uint64_t dense_bytes;    /* non-expert tensor bytes written */
    uint32_t page_neurons;
    uint32_t threads;
    uint64_t peak_rss_bytes;
    uint64_t calib_tokens;      /* 0 without calibration */
    double sig_recall_10;       /* mean recall of the true top 10% pages by signature score (0 = not measured) */
    double sig_recall_25;
    double sig_recall_10_random;/* the same for a random ranking */
    double act_mass_top10;      /* share of a token's activation mass held by the top 10% pages */
} vib3_convert_stats;

/* vib3_convert() with statistics (stats may be NULL) */
vib3_err vib3_convert_ex(const vib3_convert_opts *opts, vib3_convert_stats *stats);

#endif
