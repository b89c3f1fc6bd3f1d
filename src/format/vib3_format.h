/* vib3_format.h — the .vib3 on-disk format (see docs/FORMAT.md).
 *
 * One file per model. All integers little-endian, fixed width, explicit
 * padding; every struct has a _Static_assert on its size and key offsets.
 *
 *   offset 0     vib3_header (128 bytes), rest of the first 4 KiB zero
 *   4096 ...     data: tensors (64-aligned) and expert pages (4096-aligned,
 *                an expert's pages contiguous, in page-table order)
 *   ...          sections (8-aligned): CONF, TDIR, PTAB, SIGS, HNSW, COAC,
 *                PRED, TOKN, TKCF, CHAT, META
 *   end          section table (vib3_section_entry[section_count])
 *
 * Checksums are xxHash3-64: the header over its first 120 bytes, the section
 * table, each section, each tensor's data and each page's data.
 *
 * A *page* is a bundle of K neurons of one expert (one FFN "slot"): for
 * neuron j its gate row, up row and down column. Page data is three
 * row-major matrices of the page's dtype, back to back:
 *   gate (K, hidden)  |  up (K, hidden)  |  down (hidden, K)
 * so out += down · (silu(gate·x) * (up·x)) can be computed from one page.
 * Quantized rows are whole blocks (hidden and K multiples of 32 for Q4_0 /
 * Q8_0; the converter zero-pads neurons, which contribute exactly 0).
 * Block formats are ggml's Q4_0 / Q8_0, so GGUF Q4_0 imports losslessly.
 */
#ifndef VIB3_FORMAT_H
#define VIB3_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define VIB3_MAGIC "VIB3\r\n\x1a\n"   /* 8 bytes; \r\n\x1a\n catch text-mode mangling (PNG) */
#define VIB3_FORMAT_VERSION 1u
#define VIB3_DATA_OFFSET 4096u
#define VIB3_PAGE_ALIGN 4096u
#define VIB3_TENSOR_ALIGN 64u
#define VIB3_SECTION_ALIGN 8u

/* limits: anything larger is rejected as malformed before any arithmetic */
#define VIB3_MAX_SECTIONS 64u
#define VIB3_MAX_TENSORS (1u << 20)
#define VIB3_MAX_PAGES (1ull << 28)
#define VIB3_MAX_LAYERS 1024u
#define VIB3_MAX_EXPERTS 4096u
#define VIB3_MAX_DIM (1u << 20)
#define VIB3_MAX_VOCAB (1u << 22)
#define VIB3_MAX_DIMS 4u
#define VIB3_TENSOR_NAME_BYTES 64u

/* ---- dtypes ------------------------------------------------------------- */
typedef enum vib3_dtype {
    VIB3_DTYPE_F32 = 0,
    VIB3_DTYPE_F16 = 1,
    VIB3_DTYPE_BF16 = 2,
    VIB3_DTYPE_Q8_0 = 3, /* ggml block_q8_0: f16 d, int8 qs[32]; x = d * q */
    VIB3_DTYPE_Q4_0 = 4, /* ggml block_q4_0: f16 d, u8 qs[16]; x[i] = d*((qs[i]&15)-8), x[i+16] = d*((qs[i]>>4)-8) */
    VIB3_DTYPE_Q4_K16 = 5, /* 4-bit asymmetric, groups of 16, 6-bit sub-scales in super-blocks of <= 256 (below) */
    VIB3_DTYPE_COUNT_
} vib3_dtype;

#define VIB3_QBLOCK 32u

typedef struct vib3_block_q4_0 {
    uint16_t d;       /* f16 scale */
    uint8_t qs[16];   /* nibbles: low = elements 0..15, high = 16..31 */
} vib3_block_q4_0;
_Static_assert(sizeof(vib3_block_q4_0) == 18, "block_q4_0 is 18 bytes (ggml)");

typedef struct vib3_block_q8_0 {
    uint16_t d;       /* f16 scale */
    int8_t qs[32];
} vib3_block_q8_0;
_Static_assert(sizeof(vib3_block_q8_0) == 34, "block_q8_0 is 34 bytes (ggml)");

/* Q4_K16 — the default expert dtype (docs/FORMAT.md "Q4_K16" says why: on tinymix-brown it
 * halves Q4_0's KL divergence for 0.375 more bits per weight). K-quant style, but
 * groups of 16 and super-blocks that may be short, so any row of n % 32 == 0 works
 * (ggml's Q4_K needs n % 256 == 0; hidden 192 or a 64-neuron page is not).
 *
 * A row is super-blocks of 256 elements, the last one holding n % 256 (a multiple of
 * 32) when that is not 0. A super-block of m = 32 c elements (1 <= c <= 8) is
 * 4 + 19 c bytes, packed:
 *     uint16 d, dmin          f16 super scale and super min scale
 *     c chunks of 19 bytes    chunk i covers elements 32 i .. 32 i + 31:
 *         uint8 sm[3]         6-bit sub-scales / sub-mins of the chunk's two groups:
 *                             sc0 = sm[0] & 63, sc1 = sm[1] & 63, mn0 = sm[2] & 63,
 *                             mn1 = sm[0] >> 6 | (sm[1] >> 6) << 2 | (sm[2] >> 6) << 4
 *         uint8 qs[16]        element j < 16: qs[j] & 15 (group 0); element j + 16: qs[j] >> 4 (group 1)
 *     x = d * sc_g * q - dmin * mn_g      (q in 0..15)
 * row bytes = 4 ceil(n / 256) + 19 n / 32: 4.875 bits per weight at n = 256. */
#define VIB3_Q4K16_SUPER 256u
#define VIB3_Q4K16_HEAD_BYTES 4u
#define VIB3_Q4K16_CHUNK_BYTES 19u
/* the chunk's sub-scales and sub-mins: sc[0..1], mn[0..1] in 0..63 */
static inline void vib3_q4k16_unpack(const uint8_t *sm, int *sc, int *mn) {
    sc[0] = sm[0] & 63;
    sc[1] = sm[1] & 63;
    mn[0] = sm[2] & 63;
    mn[1] = (sm[0] >> 6) | ((sm[1] >> 6) << 2) | ((sm[2] >> 6) << 4);
}
static inline void vib3_q4k16_pack(uint8_t *sm, const int *sc, const int *mn) {
    sm[0] = (uint8_t)((sc[0] & 63) | (mn[1] & 3) << 6);
    sm[1] = (uint8_t)((sc[1] & 63) | ((mn[1] >> 2) & 3) << 6);
    sm[2] = (uint8_t)((mn[0] & 63) | ((mn[1] >> 4) & 3) << 6);
}

/* bytes of one row of n elements of dtype; 0 when n is not a whole number of blocks */
uint64_t vib3_dtype_row_bytes(vib3_dtype t, uint64_t n);
const char *vib3_dtype_name(vib3_dtype t);          /* "q4_0"; "?" when out of range */
int vib3_dtype_from_name(const char *name);          /* -1 when unknown */

/* ---- header ------------------------------------------------------------- */
typedef struct vib3_header {
    uint8_t magic[8];
    uint32_t version;                 /* VIB3_FORMAT_VERSION; 0 and newer are rejected */
    uint32_t flags;                   /* no flags defined: must be 0 */
    uint64_t file_size;               /* must equal the real size */
    uint64_t section_table_offset;
    uint32_t section_count;
    uint32_t header_bytes;            /* sizeof(vib3_header) */
    uint64_t section_table_checksum;  /* xxh3 of the section table */
    uint8_t reserved[72];             /* zero */
    uint64_t header_checksum;         /* xxh3 of bytes [0, 120) */
} vib3_header;
_Static_assert(sizeof(vib3_header) == 128, "header is 128 bytes");
_Static_assert(offsetof(vib3_header, version) == 8, "version at 8");
_Static_assert(offsetof(vib3_header, section_table_offset) == 24, "section table at 24");
_Static_assert(offsetof(vib3_header, header_checksum) == 120, "checksum last");

/* ---- section table ------------------------------------------------------ */
#define VIB3_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
enum {
    VIB3_SEC_CONFIG = VIB3_TAG('C', 'O', 'N', 'F'),     /* vib3_model_config */
    VIB3_SEC_TENSORS = VIB3_TAG('T', 'D', 'I', 'R'),    /* vib3_tensor_entry[count] */
    VIB3_SEC_PAGES = VIB3_TAG('P', 'T', 'A', 'B'),      /* vib3_page_entry[count] */
    VIB3_SEC_SIGNATURES = VIB3_TAG('S', 'I', 'G', 'S'), /* vib3_sig_header + vectors[n_pages][dim] */
    VIB3_SEC_HNSW = VIB3_TAG('H', 'N', 'S', 'W'),       /* hnsw/ serialised index over SIGS */
    VIB3_SEC_COACT = VIB3_TAG('C', 'O', 'A', 'C'),      /* vib3_coact_header + counts */
    VIB3_SEC_TOKENIZER = VIB3_TAG('T', 'O', 'K', 'N'),  /* raw tokenizer file; flags = vib3_tokenizer_kind */
    VIB3_SEC_TOKENIZER_CONFIG = VIB3_TAG('T', 'K', 'C', 'F'), /* raw tokenizer_config.json */
    VIB3_SEC_CHAT_TEMPLATE = VIB3_TAG('C', 'H', 'A', 'T'),    /* Jinja text */
    VIB3_SEC_METADATA = VIB3_TAG('M', 'E', 'T', 'A'),   /* JSON: source, converter, quant, calibration */
    VIB3_SEC_PREDICT = VIB3_TAG('P', 'R', 'E', 'D'),    /* vib3_pred_header + pair table + probes */
};

typedef struct vib3_section_entry {
    uint32_t tag;
    uint32_t version;   /* per-section layout version, 1 */
    uint64_t offset;
    uint64_t bytes;
    uint64_t checksum;  /* xxh3 of [offset, offset + bytes) */
    uint64_t count;     /* entries where meaningful, else 0 */
    uint32_t flags;     /* section specific (TOKN: tokenizer kind) */
    uint32_t reserved;  /* zero */
} vib3_section_entry;
_Static_assert(sizeof(vib3_section_entry) == 48, "section entry is 48 bytes");
_Static_assert(offsetof(vib3_section_entry, checksum) == 24, "section checksum at 24");

typedef enum vib3_tokenizer_kind {
    VIB3_TOKENIZER_HF_JSON = 1,   /* tokenizer.json */
    VIB3_TOKENIZER_TIKTOKEN = 2,  /* tiktoken.model (Kimi) */
    VIB3_TOKENIZER_SPM = 3,       /* score-based SentencePiece table (llama2.c tokenizer.bin, GGUF "llama"):
                                   * vib3_spm_header, then n_tokens x { f32 score; u32 type; u32 len; u8 text[len] } */
} vib3_tokenizer_kind;

typedef struct vib3_spm_header {
    uint32_t n_tokens;
    uint32_t bos_id, eos_id, unk_id;  /* VIB3_TOKEN_NONE (0xFFFFFFFF) when absent */
    uint32_t flags;                   /* bit0 add_bos, bit1 add_space_prefix, bit2 byte_fallback */
    uint32_t reserved[3];
} vib3_spm_header;
_Static_assert(sizeof(vib3_spm_header) == 32, "spm header is 32 bytes");
/* token types as GGUF: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte (<0xAB>) */

/* ---- model config (CONF) ------------------------------------------------ */
typedef enum vib3_arch {
    VIB3_ARCH_LLAMA = 1,       /* dense; the FFN is one DENSE slot */
    VIB3_ARCH_MIXTRAL = 2,
    VIB3_ARCH_QWEN2_MOE = 3,
    VIB3_ARCH_QWEN3_MOE = 4,
    VIB3_ARCH_DEEPSEEK_V3 = 5, /* also kimi_k2 / Kimi K2.5 text model */
    VIB3_ARCH_COUNT_
} vib3_arch;
const char *vib3_arch_name(uint32_t arch);   /* "mixtral"; "?" */

typedef enum vib3_router_scoring { VIB3_ROUTER_SOFTMAX = 0, VIB3_ROUTER_SIGMOID = 1 } vib3_router_scoring;
enum {
    VIB3_ROUTER_NORM_TOPK = 1u << 0,       /* renormalise the top-k weights to sum 1 */
    VIB3_ROUTER_SOFTMAX_TOPK = 1u << 1,    /* Mixtral: top-k of logits, softmax over the k (== softmax then renorm) */
    VIB3_ROUTER_CORRECTION_BIAS = 1u << 2, /* DeepSeek-V3: e_score_correction_bias for selection only */
    VIB3_ROUTER_SHARED_GATE = 1u << 3,     /* Qwen2-MoE: sigmoid gate on the shared expert */
};
typedef enum vib3_rope_scaling {
    VIB3_ROPE_NONE = 0, VIB3_ROPE_LINEAR = 1, VIB3_ROPE_YARN = 2, VIB3_ROPE_LLAMA3 = 3,
} vib3_rope_scaling;
enum {
    VIB3_CFG_TIE_EMBEDDINGS = 1u << 0,
    VIB3_CFG_QK_NORM = 1u << 1,          /* Qwen3: RMSNorm on q and k per head */
    VIB3_CFG_QKV_BIAS = 1u << 2,         /* Qwen2: bias on q, k, v projections */
    VIB3_CFG_ROPE_INTERLEAVED = 1u << 3, /* rotate pairs (2i, 2i+1) (GGUF llama order) instead of (i, i+d/2) */
};

#define VIB3_TOKEN_NONE 0xFFFFFFFFu

typedef struct vib3_model_config {
    uint32_t arch;               /* vib3_arch */
    uint32_t n_layers;
    uint32_t hidden_size;
    uint32_t vocab_size;
    uint32_t n_heads;
    uint32_t n_kv_heads;         /* MLA: = n_heads */
    uint32_t head_dim;           /* q/k dim per head (MLA: qk_nope + qk_rope) */
    uint32_t v_head_dim;         /* = head_dim except MLA */
    uint32_t ffn_size;           /* dense FFN intermediate (llama, DeepSeek dense layers) */
    uint32_t moe_ffn_size;       /* routed expert intermediate */
    uint32_t n_experts;          /* routed experts; 0 for dense models */
    uint32_t n_experts_per_tok;
    uint32_t n_shared_experts;
    uint32_t shared_ffn_size;    /* intermediate of each shared expert */
    uint32_t first_k_dense;      /* layers [0, k) use a dense FFN (DeepSeek) */
    uint32_t max_position;
    /* MLA (DeepSeek-V3 / Kimi K2) */
    uint32_t q_lora_rank;        /* 0 = q not compressed */
    uint32_t kv_lora_rank;
    uint32_t qk_nope_head_dim;
    uint32_t qk_rope_head_dim;
    /* routing */
    uint32_t router_scoring;     /* vib3_router_scoring */
    uint32_t router_flags;       /* VIB3_ROUTER_* */
    uint32_t n_group;            /* group-limited top-k (DeepSeek); 1 = off */
    uint32_t topk_group;
    float routed_scaling_factor; /* 1 = off */
    float rms_norm_eps;
    /* rope */
    double rope_theta;
    uint32_t rope_scaling;       /* vib3_rope_scaling */
    uint32_t rope_orig_max_position;
    float rope_factor;
    float yarn_beta_fast, yarn_beta_slow, yarn_mscale, yarn_mscale_all_dim;
    float llama3_low_freq_factor, llama3_high_freq_factor;
    uint32_t rope_dim;           /* dims rotated per head (MLA: qk_rope_head_dim; else head_dim) */
    /* misc */
    uint32_t flags;              /* VIB3_CFG_* */
    uint32_t bos_token_id;       /* VIB3_TOKEN_NONE when absent */
    uint32_t eos_token_id;
    uint32_t sliding_window;     /* 0 = none */
    /* what the converter chose */
    uint32_t expert_dtype;       /* vib3_dtype of pages */
    uint32_t dense_dtype;        /* vib3_dtype of 2-D non-expert tensors */
    uint32_t page_neurons;       /* K (last page of an expert may hold fewer) */
    uint32_t sig_dim;            /* signature dimension, 0 = none */
    uint8_t reserved[328];       /* zero */
} vib3_model_config;
_Static_assert(sizeof(vib3_model_config) == 512, "config is 512 bytes");
_Static_assert(offsetof(vib3_model_config, rope_theta) == 104, "rope_theta 8-aligned");

/* ---- tensor directory (TDIR) -------------------------------------------- */
/* Non-expert weights, named like GGUF: token_embd.weight, output_norm.weight,
 * output.weight, blk.N.attn_norm.weight, blk.N.attn_q.weight, attn_k, attn_v,
 * attn_output, attn_q_norm, attn_k_norm, ffn_norm, ffn_gate_inp (router),
 * exp_probs_b (correction bias), ffn_gate_inp_shexp, MLA: attn_q_a,
 * attn_q_a_norm, attn_q_b, attn_kv_a_mqa, attn_kv_a_norm, attn_kv_b.
 * dims are PyTorch order: dims[n_dims-1] is contiguous; a Linear weight is
 * (out_features, in_features). */
typedef struct vib3_tensor_entry {
    char name[VIB3_TENSOR_NAME_BYTES]; /* NUL-terminated, NUL-padded */
    uint32_t dtype;
    uint32_t n_dims;                   /* 1..4 */
    uint64_t dims[VIB3_MAX_DIMS];      /* unused dims are 0 */
    uint64_t offset;                   /* absolute, VIB3_TENSOR_ALIGN-aligned */
    uint64_t bytes;                    /* = product of dims in dtype */
    uint64_t checksum;                 /* xxh3 of the data */
} vib3_tensor_entry;
_Static_assert(sizeof(vib3_tensor_entry) == 128, "tensor entry is 128 bytes");
_Static_assert(offsetof(vib3_tensor_entry, offset) == 104, "tensor offset at 104");

/* ---- expert page table (PTAB) ------------------------------------------- */
typedef enum vib3_page_kind {
    VIB3_PAGE_ROUTED = 0,  /* expert = routed expert index */
    VIB3_PAGE_SHARED = 1,  /* expert = shared expert index */
    VIB3_PAGE_DENSE = 2,   /* expert = 0; the layer's dense FFN */
} vib3_page_kind;

typedef struct vib3_page_entry {
    uint32_t layer;
    uint32_t expert;
    uint32_t kind;          /* vib3_page_kind */
    uint32_t dtype;         /* vib3_dtype */
    uint32_t first_neuron;  /* within the (permuted, padded) expert */
    uint32_t n_neurons;
    uint64_t offset;        /* absolute, VIB3_PAGE_ALIGN-aligned */
    uint64_t bytes;         /* = 3 * n_neurons * row bytes of hidden (no padding) */
    uint64_t checksum;      /* xxh3 of the data bytes */
    uint8_t reserved[16];   /* zero */
} vib3_page_entry;
_Static_assert(sizeof(vib3_page_entry) == 64, "page entry is 64 bytes");
_Static_assert(offsetof(vib3_page_entry, offset) == 24, "page offset at 24");

/* bytes of a page of n neurons for hidden size h (0 if not block aligned) */
uint64_t vib3_page_bytes(vib3_dtype t, uint32_t hidden, uint32_t n_neurons);

/* ---- signatures (SIGS) -------------------------------------------------- */
typedef struct vib3_sig_header {
    uint32_t dim;
    uint32_t dtype;        /* F32 or F16 */
    uint64_t count;        /* = number of pages; vector i belongs to page i */
    uint32_t method;       /* converter-defined (docs/FORMAT.md) */
    uint32_t reserved[3];
} vib3_sig_header;
_Static_assert(sizeof(vib3_sig_header) == 32, "sig header is 32 bytes");

/* ---- co-activation prior (COAC) ----------------------------------------- */
/* followed by u32 freq[n_layers][n_experts] and
 * u32 trans[n_layers - 1][n_experts][n_experts] (layer l expert i -> layer l+1 expert j) */
typedef struct vib3_coact_header {
    uint32_t n_layers;
    uint32_t n_experts;
    uint64_t n_tokens;     /* calibration tokens counted */
    uint32_t reserved[4];
} vib3_coact_header;
_Static_assert(sizeof(vib3_coact_header) == 32, "coact header is 32 bytes");

/* ---- look-ahead expert probes (PRED, optional) ------------------------- */
/* Linear probes fitted at calibration (src/convert/probe.c) that predict a
 * later MoE layer's router scores from an earlier layer's router input
 * (what the MoE hook sees): scores_target ~= W x_source + b, with the
 * scores the router ranks (logits + selection bias). Layout after the
 * header: vib3_pred_pair[n_pairs], then per pair, in table order,
 * pair_bytes = align8(4 n_experts) + align8(n_experts hidden esize(dtype)):
 *   b (n_experts) f32, zero pad to 8 | W (n_experts, hidden) dtype, zero pad to 8 */
enum { VIB3_PRED_NEXT_TOKEN = 1u << 0 }; /* pair flag: the target is the next token's layer */
typedef struct vib3_pred_header {
    uint32_t n_layers;
    uint32_t n_experts;
    uint32_t hidden;
    uint32_t depth;        /* targets source + 1 .. source + depth (mod n_layers: the next token's) */
    uint32_t dtype;        /* W: F32 or F16 */
    uint32_t n_pairs;      /* <= n_layers * depth */
    uint64_t calib_tokens; /* tokens the probes were fitted on */
    uint32_t method;       /* 1: ridge to the look-ahead router, lambda on a held-out split;
                            * 2: the same on a random sketch of the input (a correction of the router) */
    uint32_t reserved[7];  /* zero */
} vib3_pred_header;
_Static_assert(sizeof(vib3_pred_header) == 64, "pred header is 64 bytes");
_Static_assert(offsetof(vib3_pred_header, calib_tokens) == 24, "calib_tokens at 24");

typedef struct vib3_pred_pair {
    uint32_t source;       /* layer whose router input the probe reads */
    uint32_t target;       /* layer whose experts it predicts */
    uint32_t flags;        /* VIB3_PRED_NEXT_TOKEN (set iff source + distance >= n_layers) */
    uint32_t lambda_bits;  /* ridge strength used (relative to the mean input power), IEEE-754 f32 bits */
} vib3_pred_pair;
_Static_assert(sizeof(vib3_pred_pair) == 16, "pred pair is 16 bytes");

/* ---- little-endian helpers (the format is LE; we build only for LE hosts) */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vib3 reads its little-endian structs in place; big-endian hosts are not supported"
#endif

#endif
