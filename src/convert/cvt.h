/* cvt.h — the converter's internal pieces (src/convert only; convert.h is the
 * public entry point).
 *
 * A *source* is a set of memory-mapped files (safetensors shards or one GGUF)
 * and a table of source tensors, each a view (dtype, dims in PyTorch order,
 * pointer, byte count) into a mapping. GGUF imports add *virtual* tensors
 * under Hugging Face names (one expert's slice of a ffn_*_exps tensor, a
 * Q/K weight whose rows are read through the llama.cpp head permutation), so
 * the rest of the converter sees one naming scheme.
 *
 * A *weight* is the logical 2-D matrix behind one HF Linear: plain (any
 * float dtype, GGUF block types), FP8 E4M3 with block scales
 * (`weight_scale_inv`), or compressed-tensors pack-quantized INT4
 * (`weight_packed` + `weight_scale` + `weight_shape`). cvt_weight_row_f32()
 * decodes any column range of any row to F32; cvt_weight_row_native_q4()
 * copies whole Q4_0 blocks when the source already is Q4_0-compatible
 * (GGUF Q4_0, pack-quantized int4 with group 32), which makes those imports
 * lossless.
 */
#ifndef VIB3_CONVERT_CVT_H
#define VIB3_CONVERT_CVT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "format/vib3_format.h"

/* ---- source dtypes ------------------------------------------------------ */
typedef enum vib3_sdtype {
    VIB3_S_F32 = 0,
    VIB3_S_F16,
    VIB3_S_BF16,
    VIB3_S_F64,
    VIB3_S_F8_E4M3,
    VIB3_S_F8_E5M2,
    VIB3_S_I8,
    VIB3_S_U8,
    VIB3_S_I16,
    VIB3_S_I32,
    VIB3_S_I64,
    VIB3_S_BOOL,
    VIB3_S_Q4_0,  /* ggml blocks (GGUF) */
    VIB3_S_Q8_0,
    VIB3_S_Q4_K,
    VIB3_S_Q6_K,
    VIB3_S_Q5_0,
    VIB3_S_Q4_1,
    VIB3_S_Q5_1,
    VIB3_S_Q5_K,
    VIB3_S_COUNT_
} vib3_sdtype;

const char *vib3_sdtype_name(uint32_t t);
/* elements per block and bytes per block (1 and the element size for plain types) */
uint32_t vib3_sdtype_block(uint32_t t);
uint32_t vib3_sdtype_block_bytes(uint32_t t);
/* bytes of n elements (n a multiple of the block), 0 on overflow / misalignment */
uint64_t vib3_sdtype_bytes(uint32_t t, uint64_t n);
bool vib3_sdtype_is_float(uint32_t t);

#define VIB3_SRC_NAME_MAX 256u
#define VIB3_SRC_MAX_FILES 4096u
#define VIB3_ST_HEADER_MAX (100ull << 20) /* safetensors' own limit */

typedef struct vib3_src_tensor {
    char *name;                    /* malloc'd by the source */
    uint32_t dtype;                /* vib3_sdtype */
    uint32_t n_dims;               /* 0..4 (0 = scalar) */
    uint64_t dims[VIB3_MAX_DIMS];  /* PyTorch order: dims[n_dims-1] contiguous */
    const uint8_t *data;
    uint64_t bytes;
    uint32_t file;
    uint32_t qk_heads;             /* >0: rows are in llama.cpp's interleaved-rope order for this many heads */
} vib3_src_tensor;

typedef struct vib3_src_file {
    char path[1024];
    int fd;
    uint8_t *map;
    uint64_t size;
} vib3_src_file;

typedef struct vib3_src {
    vib3_src_file *files;
    uint32_t n_files;
    vib3_src_tensor *tensors;      /* sorted by name after vib3_src_finish() */
    uint32_t n_tensors, cap_tensors;
    uint64_t source_bytes;         /* sum of tensor bytes (throughput) */
    bool is_gguf;
    void *gguf;                    /* gguf metadata (gguf.c) */
} vib3_src;

void vib3_src_init(vib3_src *s);
void vib3_src_fini(vib3_src *s);
/* map a file read-only; returns its index */
vib3_err vib3_src_map(vib3_src *s, const char *path, uint32_t *index);
vib3_err vib3_src_add(vib3_src *s, const char *name, uint32_t dtype, uint32_t n_dims, const uint64_t *dims,
                      const uint8_t *data, uint64_t bytes, uint32_t file);
/* sort and reject duplicate names */
vib3_err vib3_src_finish(vib3_src *s);
const vib3_src_tensor *vib3_src_find(const vib3_src *s, const char *name);
/* drop the mapped pages of [data, data+bytes) from our RSS (they stay in the page cache) */
void vib3_src_release(const void *data, uint64_t bytes);

/* ---- safetensors -------------------------------------------------------- */
typedef vib3_err (*vib3_st_tensor_fn)(void *ctx, const char *name, uint32_t dtype, uint32_t n_dims,
                                      const uint64_t *dims, uint64_t begin, uint64_t end);
/* Parse and validate a safetensors image (the whole file: 8-byte length,
 * JSON header, data). Every tensor is checked (dtype known, n_dims <= 4,
 * dims <= limits, product * size == end - begin without overflow, begin <=
 * end <= data bytes, no two tensors overlapping) before fn is called for
 * each, in header order. `data_offset` gets the start of the data region. */
vib3_err vib3_st_parse(const uint8_t *buf, uint64_t size, const char *name, vib3_st_tensor_fn fn, void *ctx,
                       uint64_t *data_offset);
/* map one .safetensors file and add its tensors */
vib3_err vib3_st_load(vib3_src *s, const char *path);
/* every *.safetensors in dir (sorted); with model.safetensors.index.json the
 * shards it names must all exist */
vib3_err vib3_st_load_dir(vib3_src *s, const char *dir);

/* ---- GGUF --------------------------------------------------------------- */
typedef enum vib3_gguf_type {
    VIB3_GGUF_U8 = 0, VIB3_GGUF_I8, VIB3_GGUF_U16, VIB3_GGUF_I16, VIB3_GGUF_U32, VIB3_GGUF_I32,
    VIB3_GGUF_F32, VIB3_GGUF_BOOL, VIB3_GGUF_STRING, VIB3_GGUF_ARRAY, VIB3_GGUF_U64, VIB3_GGUF_I64,
    VIB3_GGUF_F64, VIB3_GGUF_TYPE_COUNT_
} vib3_gguf_type;

typedef struct vib3_gguf_kv {
    const char *key;       /* points into the mapping (not NUL-terminated: key_len) */
    uint32_t key_len;
    uint32_t type;         /* vib3_gguf_type */
    uint32_t arr_type;     /* for arrays */
    uint64_t arr_n;
    const uint8_t *value;  /* raw value bytes (after the type) */
    uint64_t value_bytes;
} vib3_gguf_kv;

typedef struct vib3_gguf {
    uint32_t version;
    uint64_t n_tensors, n_kv;
    vib3_gguf_kv *kv;       /* malloc'd */
    uint64_t alignment;
    uint64_t data_offset;
} vib3_gguf;

typedef vib3_err (*vib3_gguf_tensor_fn)(void *ctx, const char *name, uint32_t name_len, uint32_t ggml_type,
                                        uint32_t n_dims, const uint64_t *ne, uint64_t offset, uint64_t bytes);
/* Parse and validate a GGUF v2/v3 image; kv array malloc'd into g (free with
 * vib3_gguf_free). fn (may be NULL) gets each tensor with ne in ggml order and
 * its offset relative to the data section. */
vib3_err vib3_gguf_parse(const uint8_t *buf, uint64_t size, const char *name, vib3_gguf *g, vib3_gguf_tensor_fn fn,
                         void *ctx);
void vib3_gguf_free(vib3_gguf *g);
const vib3_gguf_kv *vib3_gguf_find(const vib3_gguf *g, const char *key);
bool vib3_gguf_get_u64(const vib3_gguf *g, const char *key, uint64_t *out);
bool vib3_gguf_get_f64(const vib3_gguf *g, const char *key, double *out);
/* string value into out (NUL-terminated, truncation = false) */
bool vib3_gguf_get_str(const vib3_gguf *g, const char *key, char *out, size_t cap);
/* map a .gguf and add its tensors under HF names */
vib3_err vib3_gguf_load(vib3_src *s, const char *path);
struct vib3_hf_model;
/* model description from the GGUF metadata of a loaded source */
vib3_err vib3_gguf_model(const vib3_src *s, const char *path, struct vib3_hf_model *m);

/* ---- weights ------------------------------------------------------------ */
typedef enum vib3_wkind { VIB3_W_PLAIN = 0, VIB3_W_FP8_BLOCK, VIB3_W_PACKED_INT4, VIB3_W_MLA_KV_B } vib3_wkind;

typedef struct vib3_weight {
    const vib3_src_tensor *t;      /* weight / weight_packed */
    const vib3_src_tensor *scale;  /* weight_scale_inv / weight_scale */
    uint32_t kind;                 /* vib3_wkind */
    uint64_t rows, cols;           /* logical (1-D: rows = 1) */
    uint32_t block_rows, block_cols; /* FP8 scale blocks */
    uint32_t group;                /* packed: group size along cols */
    uint32_t mla_nope, mla_v;      /* MLA_KV_B: per-head rows from k_b (transposed) and from v_b */
    char name[VIB3_SRC_NAME_MAX + 32]; /* full tensor name for errors */
} vib3_weight;

/* look up base + ".weight" (with FP8 scale_inv) or base + ".weight_packed";
 * an MLA "...kv_b_proj" missing in a newer deepseek2 GGUF is reassembled from
 * its split "...k_b_proj.weight" (heads, kv_lora_rank, qk_nope), read
 * transposed, and "...v_b_proj.weight" (heads, v_head_dim, kv_lora_rank)
 * (kind VIB3_W_MLA_KV_B, t = k_b, scale = v_b);
 * VIB3_ERR_NOT_FOUND (message names base) when absent */
vib3_err vib3_weight_find(const vib3_src *s, const char *base, vib3_weight *w);
/* a plain tensor by full name (biases, norms, correction bias) */
vib3_err vib3_weight_find_plain(const vib3_src *s, const char *name, vib3_weight *w);
/* decode cols [col0, col0+n) of row `row` to F32 */
void vib3_weight_row_f32(const vib3_weight *w, uint64_t row, uint64_t col0, uint64_t n, float *out);
/* true (and out filled) when cols [col0, col0+n) of row are available as
 * ggml Q4_0 blocks without requantization (col0, n multiples of 32) */
bool vib3_weight_row_native_q4(const vib3_weight *w, uint64_t row, uint64_t col0, uint64_t n, vib3_block_q4_0 *out);
bool vib3_weight_native_q4_possible(const vib3_weight *w);
/* bytes of source data behind the weight (for throughput and release) */
void vib3_weight_release(const vib3_weight *w);
/* drop the mapped source pages of logical rows [r0, r1) from our RSS (streaming
 * a huge tensor); a no-op for kinds whose rows are not contiguous source rows */
void vib3_weight_release_rows(const vib3_weight *w, uint64_t r0, uint64_t r1);
/* source bytes read per logical row (an upper bound, scales included) */
uint64_t vib3_weight_row_source_bytes(const vib3_weight *w);

/* ---- numeric conversions and quantizers (quant.c) ----------------------- */
float vib3_cvt_f16_to_f32(uint16_t h);
uint16_t vib3_cvt_f32_to_f16(float f);
float vib3_cvt_bf16_to_f32(uint16_t h);
uint16_t vib3_cvt_f32_to_bf16(float f);
float vib3_cvt_fp8_e4m3_to_f32(uint8_t v);
float vib3_cvt_fp8_e5m2_to_f32(uint8_t v);
/* decode n elements (n multiple of the block) of source dtype t at p */
void vib3_sdtype_decode(uint32_t t, const uint8_t *p, uint64_t n, float *out);
/* ggml reference quantizers (n multiple of 32) */
void vib3_quantize_q4_0(const float *x, uint64_t n, vib3_block_q4_0 *out);
void vib3_quantize_q8_0(const float *x, uint64_t n, vib3_block_q8_0 *out);
/* Q4_0 blocks with a least-squares scale search (never a larger block error than ggml's choice) */
void vib3_quantize_q4_0_best(const float *x, uint64_t n, vib3_block_q4_0 *out);
/* the same minimising the importance-weighted error sum w (x - x^)^2 (w NULL = unweighted) */
void vib3_quantize_q4_0_weighted(const float *x, const float *w, uint64_t n, vib3_block_q4_0 *out);
/* Q4_K16 rows (vib3_format.h), minimising the w-weighted squared error (w NULL = unweighted);
 * out: vib3_dtype_row_bytes(Q4_K16, n) bytes */
void vib3_quantize_q4_k16(const float *x, const float *w, uint64_t n, uint8_t *out);
void vib3_dequantize_q4_k16(const uint8_t *in, uint64_t n, float *out);
/* vib3_encode_row with the scale search for Q4_0 */
void vib3_encode_row_best(vib3_dtype t, const float *x, uint64_t n, void *out);
void vib3_dequantize_q4_0(const vib3_block_q4_0 *b, uint64_t n, float *out);
void vib3_dequantize_q8_0(const vib3_block_q8_0 *b, uint64_t n, float *out);
/* encode n floats as vib3 dtype t into out (bytes = vib3_dtype_row_bytes) */
void vib3_encode_row(vib3_dtype t, const float *x, uint64_t n, void *out);
void vib3_decode_row(vib3_dtype t, const void *in, uint64_t n, float *out);

/* ---- HF config.json (hfconfig.c) ---------------------------------------- */
typedef struct vib3_hf_model {
    vib3_model_config cfg;          /* filled except the converter's choices */
    char model_type[64];            /* as found (text_config's for K2.5) */
    char prefix[64];                /* tensor name prefix: "" or "language_model." */
    bool mixtral_names;             /* block_sparse_moe.experts.E.w1/w2/w3 */
    bool shared_gate;               /* qwen2_moe shared_expert_gate */
    bool deepseek_shared;           /* mlp.shared_experts (plural) */
    bool has_vision;                /* vision tower present and skipped */
    uint32_t hf_n_shared;           /* n_shared_experts as in config */
    char quant_method[32];          /* quantization_config.quant_method or "" */
    uint32_t pack_group;            /* compressed-tensors group size */
    uint32_t fp8_block[2];          /* weight_block_size */
} vib3_hf_model;

/* parse config.json text (untrusted); name for messages */
vib3_err vib3_hf_config_parse(const char *text, size_t len, const char *name, vib3_hf_model *m);

/* ---- thread pool (pool of workers for quantization) --------------------- */
typedef void (*vib3_par_fn)(void *ctx, uint64_t index, uint32_t worker);
typedef struct vib3_par vib3_par;
vib3_err vib3_par_create(vib3_par **out, uint32_t n_threads);
void vib3_par_destroy(vib3_par *p);
uint32_t vib3_par_threads(const vib3_par *p);
/* run fn(ctx, i, worker) for i in [0, n) on all workers; returns when done */
void vib3_par_for(vib3_par *p, uint64_t n, vib3_par_fn fn, void *ctx);

/* ---- page size choice --------------------------------------------------- */
/* automatic K for an expert of ffn neurons (padded to 32) and hidden size */
uint32_t vib3_choose_page_neurons(vib3_dtype t, uint32_t hidden, uint32_t ffn);

#endif
