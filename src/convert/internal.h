/* internal.h — the converter's state shared by convert.c, pages.c and
 * sections.c (src/convert only). */
#ifndef VIB3_CONVERT_INTERNAL_H
#define VIB3_CONVERT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "convert/convert.h"
#include "convert/cvt.h"
#include "format/writer.h"

#define VIB3_CONVERTER_VERSION "vib3-convert 0.1"

/* calibration statistics (calib.c) */
#define VIB3_CALIB_QUERIES 32u
typedef struct vib3_calib {
    uint32_t n_layers, n_experts, hidden, first_moe;
    uint64_t n_tokens;
    uint32_t *freq;          /* [n_layers][n_experts] */
    uint32_t *trans;         /* [n_layers - 1][n_experts][n_experts] (+ one spare layer) */
    uint32_t S;              /* samples kept per (layer, expert) */
    float *samples;          /* [n_layers][n_experts][S][hidden] router inputs */
    uint64_t *n_seen;
    uint32_t *n_samples;     /* [n_layers][n_experts] */
    float *queries;          /* [n_layers][VIB3_CALIB_QUERIES][hidden] */
    uint64_t *q_seen;
    uint32_t *n_queries;     /* [n_layers] */
    int32_t *prev;           /* previous MoE layer's choices for the current rows */
    uint32_t prev_cap, prev_rows, prev_k;
    int64_t prev_layer;
    uint64_t rng;
    struct vib3_probe_fit *probe; /* look-ahead probes (probe.h), fitted during the run; NULL = none */
    char probe_note[96];          /* why there are none */
} vib3_calib;

vib3_err vib3_calib_run(const char *vib3_path, const char *text_path, uint32_t threads, uint64_t budget,
                        uint32_t max_tokens, vib3_calib *c);
void vib3_calib_free(vib3_calib *c);

typedef struct vib3_cvt {
    const vib3_convert_opts *o;
    vib3_src src;
    vib3_hf_model hf;
    vib3_model_config cfg;
    vib3_writer w;
    bool writer_open;
    vib3_par *par;
    vib3_dtype expert_dt, dense_dt;
    uint32_t K;
    char prefix[64];
    char source_format[16];
    uint64_t budget_bytes;
    /* per-worker F32 scratch, 3 x scratch_floats each */
    float **scratch;
    uint64_t scratch_floats;
    /* signatures: n_pages x sig_dim F32 (pages in page-table order) */
    float *sigs;                 /* the current chunk's vectors (chunk pages x sig_dim) */
    uint64_t n_sigs, cap_sigs;
    FILE *sig_tmp;               /* all vectors so far, copied into SIGS at the end */
    char sig_tmp_path[1100];
    /* progress / stats */
    double t0, last_progress;
    bool tty;
    uint64_t bytes_done, bytes_total;
    uint64_t n_pages, page_bytes_out, dense_bytes_out;
    uint32_t n_permuted_slots, n_calib_permuted_slots;
    uint32_t q8_layers, n_q8_slots;   /* layers whose FFN pages are Q8_0 (Q4_K16 files), slots written so */
    /* calibration (NULL without) and the signature recall measurement */
    const vib3_calib *calib;
    char calib_note[256];
    float *rec_true, *rec_sig;   /* [VIB3_CALIB_QUERIES][rec_cap] for the current layer */
    uint32_t rec_n, rec_cap, rec_layer;
    double recall_sum[2], recall_base[2];
    double mass_top10_sum;       /* share of the activation mass in the top 10% pages (co-location) */
    uint32_t recall_count;
} vib3_cvt;

double vib3_cvt_now(void);
/* progress bar (tty) or a plain line every few seconds; force prints now */
void vib3_cvt_progress(vib3_cvt *c, const char *what, bool force);
/* permute.c: a function-preserving neuron order for one slot (perm[ffn_pad],
 * entries >= ffn mean padding) grouping similar gate rows into pages */
void vib3_cvt_permute(vib3_cvt *c, const vib3_weight *gate, uint32_t ffn, uint32_t ffn_pad, uint32_t K, uint32_t *perm);
/* the same from explicit per-neuron features x (ffn, d) */
void vib3_cvt_permute_features(const float *x, uint32_t d, uint32_t ffn, uint32_t ffn_pad, uint32_t K, uint32_t *perm);
char *vib3_cvt_read_file(const char *path, size_t cap, size_t *len, vib3_err *err);
/* pages.c */
vib3_err vib3_cvt_choose_k(vib3_cvt *c);
vib3_err vib3_cvt_put_slot(vib3_cvt *c, uint32_t layer, uint32_t kind, uint32_t expert, uint32_t ffn,
                           const char *gate, const char *up, const char *down);
vib3_err vib3_cvt_put_signatures(vib3_cvt *c);
void vib3_cvt_sig_tmp_close(vib3_cvt *c); /* and unlink */
/* end of a layer's routed experts: fold the recall measurement of its pages */
void vib3_cvt_recall_layer_end(vib3_cvt *c);
/* COAC from the calibration statistics */
vib3_err vib3_cvt_put_coact(vib3_cvt *c);
/* dense.c: a non-expert tensor, streamed in row chunks under the budget */
vib3_err vib3_cvt_put_dense(vib3_cvt *c, const vib3_weight *w, const char *name, vib3_dtype dt, bool vector);
/* sections.c */
vib3_err vib3_cvt_put_tokenizer(vib3_cvt *c);
vib3_err vib3_cvt_put_meta(vib3_cvt *c);
/* gguf.c: TOKN (+ CHAT) from GGUF tokenizer metadata */
vib3_err vib3_cvt_gguf_tokenizer(vib3_cvt *c);

#endif
