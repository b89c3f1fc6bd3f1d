/* gen_models.c — deterministic tiny random models of every architecture the
 * converter supports, as Hugging Face directories and as GGUF files.
 *
 *   gen_models OUTDIR [SPEC...]
 *     SPEC = hf:ARCH:DTYPE[:SHARDS]    -> OUTDIR/ARCH-DTYPE/ (config.json, *.safetensors,
 *                                         model.safetensors.index.json when sharded,
 *                                         tokenizer.json, tokenizer_config.json)
 *          | gguf:ARCH:TYPE[:mla|:mlakv] -> OUTDIR/ARCH-TYPE[-mla|-mlakv].gguf (GGUF v3)
 *     ARCH  = llama | mixtral | qwen2_moe | qwen3_moe | deepseek_v3 | kimi_k2 | kimi_k25
 *     DTYPE = f32 | f16 | bf16 | fp8 (E4M3 + 128x128 weight_scale_inv, DeepSeek-V3 style)
 *           | int4 (compressed-tensors pack-quantized routed experts, group 32, rest BF16:
 *                   Kimi K2-Thinking / K2.5 style)
 *     TYPE  = f32 | f16 | q8_0 | q4_0 (2-D weights; norms stay F32 as llama.cpp writes them)
 *     mla   (deepseek_v3 only) newer llama.cpp's MLA layout: attn_kv_b split into attn_k_b
 *           (ne [qk_nope, kv_lora_rank, heads], each head's K rows transposed) and attn_v_b
 *           (ne [kv_lora_rank, v_head_dim, heads]) with no attn_kv_b, key_length /
 *           value_length = kv_lora_rank + rope / kv_lora_rank, the per-head sizes in
 *           key_length_mla / value_length_mla, head_count_kv 1; mlakv: the same plus
 *           attn_kv_b (the transitional files that carried all three)
 *   With no SPEC a default set covering every architecture and dtype is written.
 *   hf:ARCH:DTYPE:SHARDS:HIDDEN:FFN:EXPERTS:LAYERS[:VOCAB] overrides the sizes (benchmarks:
 *   a multi-GB model for the converter's memory bound; head_dim 128). Tensors over
 *   16M elements are generated while they are written, so the generator's memory
 *   stays far below a 2 GB embedding.
 *
 * Every weight's values are a function of its Hugging Face name only
 * (splitmix64 seeded by FNV-1a of the name), so the HF and GGUF forms of one
 * architecture hold the same numbers: tests convert both and compare. GGUF
 * names/metadata follow llama.cpp's convert_hf_to_gguf (llama, Mixtral as
 * "llama" with stacked ffn_*_exps, qwen3moe, deepseek2), including its Q/K
 * row permutation for llama. Dimensions are deliberately not powers of two
 * (hidden 96, vocab 300, 3 heads, ffn 160/96/80/64).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/cvt.h"

/* ---- model shapes -------------------------------------------------------- */
typedef struct arch_def {
    const char *name;      /* HF model_type (kimi_k25 nests kimi_k2) */
    int kind;              /* 0 llama, 1 mixtral, 2 qwen2_moe, 3 qwen3_moe, 4 deepseek */
    uint32_t layers, hidden, heads, kv_heads, head_dim, vocab, ffn, moe_ffn, shared_ffn, experts, top_k;
} arch_def;

static const arch_def archs[] = {
    {"llama", 0, 2, 96, 3, 1, 32, 300, 160, 0, 0, 0, 0},
    {"mixtral", 1, 2, 96, 3, 1, 32, 300, 0, 96, 0, 6, 2},
    {"qwen2_moe", 2, 2, 96, 3, 1, 32, 300, 0, 80, 72, 6, 2},
    {"qwen3_moe", 3, 2, 96, 3, 1, 32, 300, 0, 64, 0, 6, 2},
    {"deepseek_v3", 4, 3, 96, 3, 3, 64, 300, 160, 64, 64, 8, 2},
    {"kimi_k2", 4, 3, 96, 3, 3, 64, 300, 160, 64, 64, 8, 2},
    {"kimi_k25", 4, 3, 96, 3, 3, 64, 300, 160, 64, 64, 8, 2},
};
/* deepseek MLA dims */
#define DS_Q_LORA 64u
#define DS_KV_LORA 64u
#define DS_NOPE 32u
#define DS_ROPE 32u
#define DS_V 32u
#define DS_FIRST_DENSE 1u

enum { R_VEC = 0, R_MAT, R_EXPERT, R_ROUTER, R_EMBED };

typedef struct tdef {
    char hf[192];
    uint32_t nd;
    uint64_t dims[2];
    int role;
    int layer, expert, proj; /* proj: 0 gate 1 up 2 down (experts) */
} tdef;

typedef struct tlist {
    tdef *t;
    uint32_t n, cap;
} tlist;

static void add(tlist *l, int role, int layer, int expert, int proj, uint64_t r, uint64_t c, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static void add(tlist *l, int role, int layer, int expert, int proj, uint64_t r, uint64_t c, const char *fmt, ...) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
        if (!l->t) abort();
    }
    tdef *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->hf, sizeof t->hf, fmt, ap);
    va_end(ap);
    t->role = role;
    t->layer = layer;
    t->expert = expert;
    t->proj = proj;
    if (c == 0) {
        t->nd = 1;
        t->dims[0] = r;
    } else {
        t->nd = 2;
        t->dims[0] = r;
        t->dims[1] = c;
    }
}

static void build(const arch_def *a, tlist *l) {
    uint32_t h = a->hidden, hd = a->head_dim;
    add(l, R_EMBED, -1, -1, -1, a->vocab, h, "model.embed_tokens.weight");
    for (uint32_t i = 0; i < a->layers; i++) {
        int L = (int)i;
        add(l, R_VEC, L, -1, -1, h, 0, "model.layers.%u.input_layernorm.weight", i);
        add(l, R_VEC, L, -1, -1, h, 0, "model.layers.%u.post_attention_layernorm.weight", i);
        if (a->kind == 4) {
            uint32_t qk = DS_NOPE + DS_ROPE;
            add(l, R_MAT, L, -1, -1, DS_Q_LORA, h, "model.layers.%u.self_attn.q_a_proj.weight", i);
            add(l, R_VEC, L, -1, -1, DS_Q_LORA, 0, "model.layers.%u.self_attn.q_a_layernorm.weight", i);
            add(l, R_MAT, L, -1, -1, a->heads * qk, DS_Q_LORA, "model.layers.%u.self_attn.q_b_proj.weight", i);
            add(l, R_MAT, L, -1, -1, DS_KV_LORA + DS_ROPE, h, "model.layers.%u.self_attn.kv_a_proj_with_mqa.weight", i);
            add(l, R_VEC, L, -1, -1, DS_KV_LORA, 0, "model.layers.%u.self_attn.kv_a_layernorm.weight", i);
            add(l, R_MAT, L, -1, -1, a->heads * (DS_NOPE + DS_V), DS_KV_LORA, "model.layers.%u.self_attn.kv_b_proj.weight", i);
            add(l, R_MAT, L, -1, -1, h, a->heads * DS_V, "model.layers.%u.self_attn.o_proj.weight", i);
        } else {
            add(l, R_MAT, L, -1, -1, a->heads * hd, h, "model.layers.%u.self_attn.q_proj.weight", i);
            add(l, R_MAT, L, -1, -1, a->kv_heads * hd, h, "model.layers.%u.self_attn.k_proj.weight", i);
            add(l, R_MAT, L, -1, -1, a->kv_heads * hd, h, "model.layers.%u.self_attn.v_proj.weight", i);
            add(l, R_MAT, L, -1, -1, h, a->heads * hd, "model.layers.%u.self_attn.o_proj.weight", i);
            if (a->kind == 2) {
                add(l, R_VEC, L, -1, -1, a->heads * hd, 0, "model.layers.%u.self_attn.q_proj.bias", i);
                add(l, R_VEC, L, -1, -1, a->kv_heads * hd, 0, "model.layers.%u.self_attn.k_proj.bias", i);
                add(l, R_VEC, L, -1, -1, a->kv_heads * hd, 0, "model.layers.%u.self_attn.v_proj.bias", i);
            }
            if (a->kind == 3) {
                add(l, R_VEC, L, -1, -1, hd, 0, "model.layers.%u.self_attn.q_norm.weight", i);
                add(l, R_VEC, L, -1, -1, hd, 0, "model.layers.%u.self_attn.k_norm.weight", i);
            }
        }
        bool dense = a->kind == 0 || (a->kind == 4 && i < DS_FIRST_DENSE);
        if (dense) {
            add(l, R_EXPERT, L, -2, 0, a->ffn, h, "model.layers.%u.mlp.gate_proj.weight", i);
            add(l, R_EXPERT, L, -2, 1, a->ffn, h, "model.layers.%u.mlp.up_proj.weight", i);
            add(l, R_EXPERT, L, -2, 2, h, a->ffn, "model.layers.%u.mlp.down_proj.weight", i);
            continue;
        }
        if (a->kind == 1) {
            add(l, R_ROUTER, L, -1, -1, a->experts, h, "model.layers.%u.block_sparse_moe.gate.weight", i);
            for (uint32_t x = 0; x < a->experts; x++) {
                add(l, R_EXPERT, L, (int)x, 0, a->moe_ffn, h, "model.layers.%u.block_sparse_moe.experts.%u.w1.weight", i, x);
                add(l, R_EXPERT, L, (int)x, 2, h, a->moe_ffn, "model.layers.%u.block_sparse_moe.experts.%u.w2.weight", i, x);
                add(l, R_EXPERT, L, (int)x, 1, a->moe_ffn, h, "model.layers.%u.block_sparse_moe.experts.%u.w3.weight", i, x);
            }
            continue;
        }
        add(l, R_ROUTER, L, -1, -1, a->experts, h, "model.layers.%u.mlp.gate.weight", i);
        if (a->kind == 4) add(l, R_VEC, L, -1, -1, a->experts, 0, "model.layers.%u.mlp.gate.e_score_correction_bias", i);
        for (uint32_t x = 0; x < a->experts; x++) {
            add(l, R_EXPERT, L, (int)x, 0, a->moe_ffn, h, "model.layers.%u.mlp.experts.%u.gate_proj.weight", i, x);
            add(l, R_EXPERT, L, (int)x, 1, a->moe_ffn, h, "model.layers.%u.mlp.experts.%u.up_proj.weight", i, x);
            add(l, R_EXPERT, L, (int)x, 2, h, a->moe_ffn, "model.layers.%u.mlp.experts.%u.down_proj.weight", i, x);
        }
        if (a->shared_ffn) {
            const char *sh = a->kind == 4 ? "shared_experts" : "shared_expert";
            add(l, R_EXPERT, L, -3, 0, a->shared_ffn, h, "model.layers.%u.mlp.%s.gate_proj.weight", i, sh);
            add(l, R_EXPERT, L, -3, 1, a->shared_ffn, h, "model.layers.%u.mlp.%s.up_proj.weight", i, sh);
            add(l, R_EXPERT, L, -3, 2, h, a->shared_ffn, "model.layers.%u.mlp.%s.down_proj.weight", i, sh);
            if (a->kind == 2) add(l, R_ROUTER, L, -1, -1, 1, h, "model.layers.%u.mlp.shared_expert_gate.weight", i);
        }
    }
    add(l, R_VEC, -1, -1, -1, h, 0, "model.norm.weight");
    add(l, R_EMBED, -1, -1, -1, a->vocab, h, "lm_head.weight");
}

/* ---- deterministic values ------------------------------------------------- */
static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t n_elems(const tdef *t) { return t->nd == 1 ? t->dims[0] : t->dims[0] * t->dims[1]; }

/* the next n values of tensor t from generator state *s (start: fnv(t->hf)) */
static void values_fill(const tdef *t, uint64_t *s, float *v, uint64_t n) {
    bool is_norm = t->role == R_VEC && strstr(t->hf, "norm") != NULL;
    float scale = t->nd == 2 ? 1.0f / sqrtf((float)t->dims[1]) : 0.1f;
    for (uint64_t i = 0; i < n; i++) {
        float u = (float)((double)(splitmix(s) >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
        v[i] = is_norm ? 1.0f + 0.2f * u : u * scale * 1.7f;
    }
}

/* the F32 values of tensor t (caller frees) */
static float *values(const tdef *t) {
    uint64_t n = n_elems(t);
    float *v = malloc(n * sizeof *v);
    if (!v) abort();
    uint64_t s = fnv(t->hf);
    values_fill(t, &s, v, n);
    return v;
}

/* ---- FP8 E4M3 encode (nearest of the 254 finite values, ties to even code) -- */
static uint8_t fp8_encode(float x) {
    static float table[127]; /* positive finite codes 0..126 */
    static int ready;
    if (!ready) {
        for (int c = 0; c < 127; c++) table[c] = vib3_cvt_fp8_e4m3_to_f32((uint8_t)c);
        ready = 1;
    }
    uint8_t sign = x < 0 ? 0x80 : 0;
    float a = fabsf(x);
    if (a >= 448.0f) return sign | 126;
    int lo = 0, hi = 126;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (table[mid] <= a) lo = mid;
        else hi = mid;
    }
    int c = (a - table[lo] < table[hi] - a) || (a - table[lo] == table[hi] - a && !(lo & 1)) ? lo : hi;
    return sign | (uint8_t)c;
}

/* ---- safetensors writer ------------------------------------------------- */
typedef struct blob {
    char name[256];
    const char *dtype;
    uint32_t nd;
    uint64_t dims[2];
    uint8_t *data;
    uint64_t bytes;
    bool lazy;          /* data == NULL: values of `src` encoded as dtype while writing */
    tdef src;
} blob;

typedef struct blist {
    blob *b;
    uint32_t n, cap;
} blist;

static blob *push(blist *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->b = realloc(l->b, l->cap * sizeof *l->b);
        if (!l->b) abort();
    }
    blob *b = &l->b[l->n++];
    memset(b, 0, sizeof *b);
    return b;
}

static uint64_t encode_float(const float *v, uint64_t n, const char *dt, uint8_t *out);

static int write_st(const char *path, blob *b, uint32_t n) {
    size_t cap = 4096 + (size_t)n * 320, hn = 0;
    char *h = malloc(cap);
    hn += (size_t)snprintf(h, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        hn += (size_t)snprintf(h + hn, cap - hn, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", b[i].name, b[i].dtype);
        for (uint32_t d = 0; d < b[i].nd; d++)
            hn += (size_t)snprintf(h + hn, cap - hn, "%s%llu", d ? "," : "", (unsigned long long)b[i].dims[d]);
        hn += (size_t)snprintf(h + hn, cap - hn, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                               (unsigned long long)(off + b[i].bytes));
        off += b[i].bytes;
    }
    hn += (size_t)snprintf(h + hn, cap - hn, "}");
    while (hn % 8) h[hn++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint64_t len = hn;
    fwrite(&len, 8, 1, f);
    fwrite(h, 1, hn, f);
    for (uint32_t i = 0; i < n; i++) {
        if (!b[i].lazy) {
            fwrite(b[i].data, 1, b[i].bytes, f);
            continue;
        }
        enum { CH = 1 << 20 };
        float *v = malloc(CH * sizeof *v);
        uint8_t *e = malloc(CH * 4);
        if (!v || !e) abort();
        uint64_t st = fnv(b[i].src.hf), left = n_elems(&b[i].src);
        while (left) {
            uint64_t k = left < CH ? left : CH;
            values_fill(&b[i].src, &st, v, k);
            uint64_t eb = encode_float(v, k, b[i].dtype, e);
            if (fwrite(e, 1, eb, f) != eb) abort();
            left -= k;
        }
        free(v);
        free(e);
    }
    free(h);
    return fclose(f);
}

/* n floats as F32 / F16 / BF16 bytes into out; returns the byte count */
static uint64_t encode_float(const float *v, uint64_t n, const char *dt, uint8_t *out) {
    if (!strcmp(dt, "F32")) {
        memcpy(out, v, n * 4);
        return n * 4;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint16_t x = !strcmp(dt, "F16") ? vib3_cvt_f32_to_f16(v[i]) : vib3_cvt_f32_to_bf16(v[i]);
        memcpy(out + 2 * i, &x, 2);
    }
    return n * 2;
}

static void put_float(blist *l, const char *name, uint32_t nd, const uint64_t *dims, const float *v, const char *dt) {
    blob *b = push(l);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->dtype = dt;
    b->nd = nd;
    uint64_t n = 1;
    for (uint32_t d = 0; d < nd; d++) n *= (b->dims[d] = dims[d]);
    b->data = malloc(n * 4);
    if (!b->data) abort();
    b->bytes = encode_float(v, n, dt, b->data);
}

/* a large float tensor: generated and encoded while it is written (write_st) */
#define LAZY_ELEMS (1ull << 24)
static void put_lazy(blist *l, const char *name, const tdef *t, const char *dt) {
    blob *b = push(l);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->dtype = dt;
    b->nd = t->nd;
    for (uint32_t d = 0; d < t->nd; d++) b->dims[d] = t->dims[d];
    b->bytes = n_elems(t) * (strcmp(dt, "F32") ? 2 : 4);
    b->lazy = true;
    b->src = *t;
}

static void put_fp8(blist *l, const tdef *t, const float *v) {
    uint64_t r = t->dims[0], c = t->dims[1], br = (r + 127) / 128, bc = (c + 127) / 128;
    float *sc = calloc(br * bc, sizeof *sc);
    for (uint64_t i = 0; i < r; i++)
        for (uint64_t j = 0; j < c; j++) {
            float a = fabsf(v[i * c + j]);
            if (a > sc[(i / 128) * bc + j / 128]) sc[(i / 128) * bc + j / 128] = a;
        }
    for (uint64_t k = 0; k < br * bc; k++) sc[k] = sc[k] > 0 ? sc[k] / 448.0f : 1.0f;
    blob *b = push(l);
    snprintf(b->name, sizeof b->name, "%s", t->hf);
    b->dtype = "F8_E4M3";
    b->nd = 2;
    b->dims[0] = r;
    b->dims[1] = c;
    b->bytes = r * c;
    b->data = malloc(b->bytes);
    for (uint64_t i = 0; i < r; i++)
        for (uint64_t j = 0; j < c; j++) b->data[i * c + j] = fp8_encode(v[i * c + j] / sc[(i / 128) * bc + j / 128]);
    char sname[256];
    snprintf(sname, sizeof sname, "%.200s_scale_inv", t->hf);
    uint64_t sd[2] = {br, bc};
    put_float(l, sname, 2, sd, sc, "F32");
    free(sc);
}

/* compressed-tensors pack-quantized int4, group 32, symmetric */
static void put_int4(blist *l, const tdef *t, const float *v) {
    uint64_t r = t->dims[0], c = t->dims[1], groups = c / 32;
    char base[200];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(t->hf) - strlen(".weight")) > 190 ? 190 : (int)(strlen(t->hf) - strlen(".weight")), t->hf);
    float *sc = malloc(r * groups * sizeof *sc);
    blob *b = push(l);
    snprintf(b->name, sizeof b->name, "%s.weight_packed", base);
    b->dtype = "I32";
    b->nd = 2;
    b->dims[0] = r;
    b->dims[1] = (c + 7) / 8;
    b->bytes = r * b->dims[1] * 4;
    b->data = calloc(1, b->bytes);
    for (uint64_t i = 0; i < r; i++) {
        for (uint64_t g = 0; g < groups; g++) {
            float amax = 0;
            for (int k = 0; k < 32; k++) amax = fmaxf(amax, fabsf(v[i * c + g * 32 + k]));
            float s = amax > 0 ? amax / 7.0f : 1.0f;
            s = vib3_cvt_bf16_to_f32(vib3_cvt_f32_to_bf16(s)); /* the scale is stored as BF16 */
            sc[i * groups + g] = s;
            for (int k = 0; k < 32; k++) {
                uint64_t col = g * 32 + (uint64_t)k;
                int q = (int)lrintf(v[i * c + col] / s);
                if (q < -8) q = -8;
                if (q > 7) q = 7;
                uint32_t word;
                memcpy(&word, b->data + (i * b->dims[1] + col / 8) * 4, 4);
                word |= (uint32_t)(q + 8) << (4 * (col % 8));
                memcpy(b->data + (i * b->dims[1] + col / 8) * 4, &word, 4);
            }
        }
    }
    char name[240];
    snprintf(name, sizeof name, "%s.weight_scale", base);
    uint64_t sd[2] = {r, groups};
    put_float(l, name, 2, sd, sc, "BF16");
    blob *s = push(l);
    snprintf(s->name, sizeof s->name, "%s.weight_shape", base);
    s->dtype = "I32";
    s->nd = 1;
    s->dims[0] = 2;
    s->bytes = 8;
    s->data = malloc(8);
    int32_t shape[2] = {(int32_t)r, (int32_t)c};
    memcpy(s->data, shape, 8);
    free(sc);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* a small byte-level BPE tokenizer.json (3 specials, 256 bytes, 41 merges) */
static void write_tokenizer(const char *dir, uint32_t vocab) {
    char path[1100];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
          "{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
          "{\"id\":1,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
          "{\"id\":2,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],"
          "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
          "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
          "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
          "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2",
          f);
    /* GPT-2 byte -> unicode map */
    int cp[256], n = 0;
    for (int b = 0; b < 256; b++) {
        bool direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp[b] = direct ? b : 256 + n++;
    }
    for (int b = 0; b < 256; b++) {
        char u[8];
        int c = cp[b];
        if (c < 0x80) {
            u[0] = (char)c;
            u[1] = 0;
        } else {
            u[0] = (char)(0xC0 | (c >> 6));
            u[1] = (char)(0x80 | (c & 0x3F));
            u[2] = 0;
        }
        if (c == '"' || c == '\\') fprintf(f, ",\"\\%s\":%d", u, 3 + b);
        else fprintf(f, ",\"%s\":%d", u, 3 + b);
    }
    uint32_t id = 259;
    const char *letters = "etaoinshrdlucmfwypvbgk";
    char merges[64][8];
    int nm = 0;
    for (int i = 0; letters[i] && letters[i + 1] && id < vocab; i++, id++) {
        fprintf(f, ",\"%c%c\":%u", letters[i], letters[i + 1], id);
        snprintf(merges[nm++], 8, "%c %c", letters[i], letters[i + 1]);
    }
    for (; id < vocab; id++) fprintf(f, ",\"<extra_%u>\":%u", id, id);
    fputs("},\"merges\":[", f);
    for (int i = 0; i < nm; i++) fprintf(f, "%s\"%s\"", i ? "," : "", merges[i]);
    fputs("]}}\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_text(path, "{\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"add_bos_token\":true,"
                     "\"chat_template\":\"{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                     "{% if add_generation_prompt %}<|assistant|>{% endif %}\"}\n");
}

static void config_json(const arch_def *a, const char *dtype, char *out, size_t cap) {
    char body[4096];
    const char *mt = !strcmp(a->name, "kimi_k25") ? "kimi_k2" : a->name;
    int n = snprintf(body, sizeof body,
                     "\"model_type\": \"%s\", \"vocab_size\": %u, \"hidden_size\": %u, \"num_hidden_layers\": %u, "
                     "\"num_attention_heads\": %u, \"num_key_value_heads\": %u, \"max_position_embeddings\": 512, "
                     "\"rms_norm_eps\": 1e-06, \"rope_theta\": 50000.0, \"hidden_act\": \"silu\", "
                     "\"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": [2, 0], "
                     "\"torch_dtype\": \"%s\"",
                     mt, a->vocab, a->hidden, a->layers, a->heads, a->kv_heads,
                     !strcmp(dtype, "f32") ? "float32" : !strcmp(dtype, "f16") ? "float16" : "bfloat16");
    switch (a->kind) {
    case 0: n += snprintf(body + n, sizeof body - n, ", \"intermediate_size\": %u, \"head_dim\": %u", a->ffn, a->head_dim); break;
    case 1:
        n += snprintf(body + n, sizeof body - n,
                      ", \"intermediate_size\": %u, \"num_local_experts\": %u, \"num_experts_per_tok\": %u, "
                      "\"sliding_window\": null",
                      a->moe_ffn, a->experts, a->top_k);
        break;
    case 2:
        n += snprintf(body + n, sizeof body - n,
                      ", \"intermediate_size\": 192, \"moe_intermediate_size\": %u, \"shared_expert_intermediate_size\": %u, "
                      "\"num_experts\": %u, \"num_experts_per_tok\": %u, \"norm_topk_prob\": false, "
                      "\"decoder_sparse_step\": 1, \"mlp_only_layers\": [], \"use_sliding_window\": false, "
                      "\"sliding_window\": 4096",
                      a->moe_ffn, a->shared_ffn, a->experts, a->top_k);
        break;
    case 3:
        n += snprintf(body + n, sizeof body - n,
                      ", \"intermediate_size\": 192, \"moe_intermediate_size\": %u, \"num_experts\": %u, "
                      "\"num_experts_per_tok\": %u, \"norm_topk_prob\": true, \"head_dim\": %u, "
                      "\"decoder_sparse_step\": 1, \"mlp_only_layers\": []",
                      a->moe_ffn, a->experts, a->top_k, a->head_dim);
        break;
    case 4:
        n += snprintf(body + n, sizeof body - n,
                      ", \"intermediate_size\": %u, \"moe_intermediate_size\": %u, \"n_routed_experts\": %u, "
                      "\"n_shared_experts\": 1, \"num_experts_per_tok\": %u, \"first_k_dense_replace\": %u, "
                      "\"q_lora_rank\": %u, \"kv_lora_rank\": %u, \"qk_nope_head_dim\": %u, \"qk_rope_head_dim\": %u, "
                      "\"v_head_dim\": %u, \"n_group\": 2, \"topk_group\": 1, \"routed_scaling_factor\": 2.5, "
                      "\"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\", \"norm_topk_prob\": true, "
                      "\"moe_layer_freq\": 1, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, "
                      "\"original_max_position_embeddings\": 128, \"beta_fast\": 32, \"beta_slow\": 1, \"mscale\": 1.0, "
                      "\"mscale_all_dim\": 1.0}",
                      a->ffn, a->moe_ffn, a->experts, a->top_k, DS_FIRST_DENSE, DS_Q_LORA, DS_KV_LORA, DS_NOPE, DS_ROPE,
                      DS_V);
        break;
    }
    if (!strcmp(dtype, "fp8"))
        n += snprintf(body + n, sizeof body - n,
                      ", \"quantization_config\": {\"activation_scheme\": \"dynamic\", \"fmt\": \"e4m3\", "
                      "\"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]}");
    if (!strcmp(dtype, "int4"))
        n += snprintf(body + n, sizeof body - n,
                      ", \"quantization_config\": {\"quant_method\": \"compressed-tensors\", \"format\": \"pack-quantized\", "
                      "\"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 4, "
                      "\"group_size\": 32, \"strategy\": \"group\", \"symmetric\": true, \"type\": \"int\", "
                      "\"dynamic\": false}}}, \"ignore\": [\"lm_head\", \"re:.*self_attn.*\", \"re:.*shared_experts.*\", "
                      "\"re:.*mlp\\\\.(gate|up|gate_up|down)_proj.*\"]}");
    (void)n;
    if (!strcmp(a->name, "kimi_k25"))
        snprintf(out, cap,
                 "{\"architectures\": [\"KimiK25ForConditionalGeneration\"], \"model_type\": \"kimi_k25\", "
                 "\"text_config\": {%s}, \"vision_config\": {\"patch_size\": 14, \"hidden_size\": 32}, "
                 "\"media_placeholder_token_id\": 299}\n",
                 body);
    else
        snprintf(out, cap, "{\"architectures\": [\"X\"], %s}\n", body);
}

static int gen_hf(const char *outdir, const arch_def *a, const char *dtype, int shards) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%.960s/%s-%s", outdir, a->name, dtype);
    mkdir(dir, 0755);
    tlist tl = {0};
    build(a, &tl);
    blist bl = {0};
    const char *prefix = !strcmp(a->name, "kimi_k25") ? "language_model." : "";
    bool fp8 = !strcmp(dtype, "fp8"), int4 = !strcmp(dtype, "int4");
    const char *fdt = !strcmp(dtype, "f32") ? "F32" : !strcmp(dtype, "f16") ? "F16" : "BF16";
    for (uint32_t i = 0; i < tl.n; i++) {
        tdef t = tl.t[i];
        bool big_plain = n_elems(&t) > LAZY_ELEMS && !(fp8 && t.nd == 2 && (t.role == R_MAT || t.role == R_EXPERT)) &&
                         !(int4 && t.role == R_EXPERT && t.expert >= 0);
        if (big_plain) {
            char pn[200];
            snprintf(pn, sizeof pn, "%.24s%.160s", prefix, tl.t[i].hf);
            put_lazy(&bl, pn, &tl.t[i], fdt);
            continue;
        }
        float *v = values(&t);
        snprintf(t.hf, sizeof t.hf, "%.24s%.160s", prefix, tl.t[i].hf);
        if (fp8 && t.nd == 2 && (t.role == R_MAT || t.role == R_EXPERT)) put_fp8(&bl, &t, v);
        else if (int4 && t.role == R_EXPERT && t.expert >= 0) put_int4(&bl, &t, v);
        else put_float(&bl, t.hf, t.nd, t.dims, v, fdt);
        free(v);
    }
    if (!strcmp(a->name, "kimi_k25")) { /* a vision tower the converter must skip */
        float v[64];
        for (int i = 0; i < 64; i++) v[i] = (float)i / 64;
        uint64_t d[2] = {8, 8};
        put_float(&bl, "vision_tower.patch_embed.proj.weight", 2, d, v, "BF16");
        put_float(&bl, "mm_projector.proj.0.weight", 2, d, v, "BF16");
    }
    if (shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (write_st(path, bl.b, bl.n)) return -1;
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *ix = fopen(path, "w");
        fputs("{\"metadata\": {\"total_size\": 0}, \"weight_map\": {", ix);
        uint32_t per = (bl.n + (uint32_t)shards - 1) / (uint32_t)shards;
        for (int s = 0; s < shards; s++) {
            uint32_t b0 = (uint32_t)s * per, b1 = b0 + per > bl.n ? bl.n : b0 + per;
            char fname[128];
            snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, shards);
            snprintf(path, sizeof path, "%s/%s", dir, fname);
            if (write_st(path, bl.b + b0, b1 - b0)) return -1;
            for (uint32_t k = b0; k < b1; k++) fprintf(ix, "%s\"%s\": \"%s\"", k ? ", " : "", bl.b[k].name, fname);
        }
        fputs("}}\n", ix);
        fclose(ix);
    }
    char cfg[8192];
    config_json(a, dtype, cfg, sizeof cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, cfg);
    write_tokenizer(dir, a->vocab);
    for (uint32_t i = 0; i < bl.n; i++) free(bl.b[i].data);
    free(bl.b);
    free(tl.t);
    return 0;
}

/* ---- GGUF writer ----------------------------------------------------------- */
typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void gput(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 4096;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void g32(gbuf *b, uint32_t v) { gput(b, &v, 4); }
static void g64(gbuf *b, uint64_t v) { gput(b, &v, 8); }
static void gstr(gbuf *b, const char *s) {
    g64(b, strlen(s));
    gput(b, s, strlen(s));
}
static void kv_u32(gbuf *b, uint32_t *n, const char *k, uint32_t v) {
    gstr(b, k);
    g32(b, VIB3_GGUF_U32);
    g32(b, v);
    (*n)++;
}
static void kv_f32(gbuf *b, uint32_t *n, const char *k, float v) {
    gstr(b, k);
    g32(b, VIB3_GGUF_F32);
    gput(b, &v, 4);
    (*n)++;
}
static void kv_str(gbuf *b, uint32_t *n, const char *k, const char *v) {
    gstr(b, k);
    g32(b, VIB3_GGUF_STRING);
    gstr(b, v);
    (*n)++;
}
static void kv_bool(gbuf *b, uint32_t *n, const char *k, int v) {
    gstr(b, k);
    g32(b, VIB3_GGUF_BOOL);
    uint8_t x = (uint8_t)v;
    gput(b, &x, 1);
    (*n)++;
}

typedef struct gt {
    char name[96];
    uint32_t nd;
    uint64_t ne[3];
    uint32_t type;
    uint8_t *data;
    uint64_t bytes;
} gt;

static uint8_t *encode_ggml(const float *v, uint64_t n, uint32_t type, uint64_t *bytes) {
    uint8_t *out;
    switch (type) {
    case 0:
        *bytes = n * 4;
        out = malloc(*bytes);
        memcpy(out, v, *bytes);
        return out;
    case 1:
        *bytes = n * 2;
        out = malloc(*bytes);
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = vib3_cvt_f32_to_f16(v[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return out;
    case 8:
        *bytes = n / 32 * sizeof(vib3_block_q8_0);
        out = malloc(*bytes);
        vib3_quantize_q8_0(v, n, (vib3_block_q8_0 *)out);
        return out;
    default:
        *bytes = n / 32 * sizeof(vib3_block_q4_0);
        out = malloc(*bytes);
        vib3_quantize_q4_0(v, n, (vib3_block_q4_0 *)out);
        return out;
    }
}

/* llama.cpp's permute for interleaved rope: gguf row h*hd + 2i + t = hf row h*hd + t*hd/2 + i */
static void permute_rows(float *v, uint64_t rows, uint64_t cols, uint32_t heads) {
    float *tmp = malloc(rows * cols * sizeof *tmp);
    uint64_t hd = rows / heads;
    for (uint64_t h = 0; h < heads; h++)
        for (uint64_t i = 0; i < hd / 2; i++)
            for (uint64_t t = 0; t < 2; t++)
                memcpy(tmp + (h * hd + 2 * i + t) * cols, v + (h * hd + t * hd / 2 + i) * cols, cols * sizeof *v);
    memcpy(v, tmp, rows * cols * sizeof *v);
    free(tmp);
}

static const char *gguf_name(const arch_def *a, const tdef *t, char *out, size_t cap) {
    static const struct {
        const char *hf, *gg;
    } m[] = {{"input_layernorm.weight", "attn_norm.weight"},
             {"post_attention_layernorm.weight", "ffn_norm.weight"},
             {"self_attn.q_proj.weight", "attn_q.weight"},
             {"self_attn.k_proj.weight", "attn_k.weight"},
             {"self_attn.v_proj.weight", "attn_v.weight"},
             {"self_attn.o_proj.weight", "attn_output.weight"},
             {"self_attn.q_norm.weight", "attn_q_norm.weight"},
             {"self_attn.k_norm.weight", "attn_k_norm.weight"},
             {"self_attn.q_a_proj.weight", "attn_q_a.weight"},
             {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight"},
             {"self_attn.q_b_proj.weight", "attn_q_b.weight"},
             {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight"},
             {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight"},
             {"self_attn.kv_b_proj.weight", "attn_kv_b.weight"},
             {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
             {"mlp.gate.weight", "ffn_gate_inp.weight"},
             {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias"},
             {"mlp.gate_proj.weight", "ffn_gate.weight"},
             {"mlp.up_proj.weight", "ffn_up.weight"},
             {"mlp.down_proj.weight", "ffn_down.weight"},
             {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight"},
             {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight"},
             {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight"}};
    (void)a;
    if (!strcmp(t->hf, "model.embed_tokens.weight")) return "token_embd.weight";
    if (!strcmp(t->hf, "model.norm.weight")) return "output_norm.weight";
    if (!strcmp(t->hf, "lm_head.weight")) return "output.weight";
    unsigned l;
    int n = 0;
    if (sscanf(t->hf, "model.layers.%u.%n", &l, &n) != 1) return NULL;
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (!strcmp(t->hf + n, m[i].hf)) {
            snprintf(out, cap, "blk.%u.%s", l, m[i].gg);
            return out;
        }
    return NULL;
}

static void kv_arr_hdr(gbuf *b, uint32_t *n, const char *k, uint32_t type, uint64_t count) {
    gstr(b, k);
    g32(b, VIB3_GGUF_ARRAY);
    g32(b, type);
    g64(b, count);
    (*n)++;
}

/* tokens for the GGUF vocabulary: SPM ("llama") or byte-level BPE ("gpt2") */
static void gguf_tokenizer(gbuf *b, uint32_t *nkv, uint32_t vocab, bool spm) {
    char **tok = calloc(vocab, sizeof *tok);
    int32_t *type = calloc(vocab, sizeof *type);
    static const char *const sp[3] = {"<unk>", "<s>", "</s>"};
    for (uint32_t i = 0; i < 3; i++) {
        tok[i] = strdup(sp[i]);
        type[i] = i == 0 && spm ? 2 : 3;
    }
    int cp[256], extra = 0;
    for (int c = 0; c < 256; c++) {
        bool direct = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
        cp[c] = direct ? c : 256 + extra++;
    }
    for (uint32_t c = 0; c < 256; c++) {
        char s[16];
        if (spm) {
            snprintf(s, sizeof s, "<0x%02X>", c);
            type[3 + c] = 6;
        } else {
            int u = cp[c];
            if (u < 0x80) {
                s[0] = (char)u;
                s[1] = 0;
            } else {
                s[0] = (char)(0xC0 | (u >> 6));
                s[1] = (char)(0x80 | (u & 0x3F));
                s[2] = 0;
            }
            type[3 + c] = 1;
        }
        tok[3 + c] = strdup(s);
    }
    const char *letters = "etaoinshrdlucmfwypvbgk";
    uint32_t id = 259, nm = 0;
    char merges[64][8];
    for (int i = 0; letters[i] && letters[i + 1] && id < vocab; i++, id++) {
        char s[16];
        if (spm) snprintf(s, sizeof s, "\xe2\x96\x81%c%c", letters[i], letters[i + 1]);
        else snprintf(s, sizeof s, "%c%c", letters[i], letters[i + 1]);
        snprintf(merges[nm++], 8, "%c %c", letters[i], letters[i + 1]);
        tok[id] = strdup(s);
        type[id] = 1;
    }
    for (; id < vocab; id++) {
        char s[32];
        snprintf(s, sizeof s, "<extra_%u>", id);
        tok[id] = strdup(s);
        type[id] = 4;
    }
    kv_str(b, nkv, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    if (!spm) kv_str(b, nkv, "tokenizer.ggml.pre", "qwen2");
    kv_arr_hdr(b, nkv, "tokenizer.ggml.tokens", VIB3_GGUF_STRING, vocab);
    for (uint32_t i = 0; i < vocab; i++) gstr(b, tok[i]);
    kv_arr_hdr(b, nkv, "tokenizer.ggml.token_type", VIB3_GGUF_I32, vocab);
    gput(b, type, vocab * 4);
    if (spm) {
        kv_arr_hdr(b, nkv, "tokenizer.ggml.scores", VIB3_GGUF_F32, vocab);
        for (uint32_t i = 0; i < vocab; i++) {
            float s = i < 259 ? 0.0f : -(float)i;
            gput(b, &s, 4);
        }
    } else {
        kv_arr_hdr(b, nkv, "tokenizer.ggml.merges", VIB3_GGUF_STRING, nm);
        for (uint32_t i = 0; i < nm; i++) gstr(b, merges[i]);
    }
    kv_u32(b, nkv, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(b, nkv, "tokenizer.ggml.eos_token_id", 2);
    kv_bool(b, nkv, "tokenizer.ggml.add_bos_token", 1);
    kv_str(b, nkv, "tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}");
    for (uint32_t i = 0; i < vocab; i++) free(tok[i]);
    free(tok);
    free(type);
}

/* MLA split (llama.cpp's DeepseekV2Model.modify_tensors layout): kv_b (heads * (nope + v), rank)
 * viewed as (heads, nope + v, rank); k_b = its first nope rows per head, transposed to
 * (heads, rank, nope); v_b = the last v rows, (heads, v, rank). GGUF ne is the reverse. */
static void mla_split(const float *kv, uint32_t heads, uint32_t rank, gt *kb, gt *vb, uint32_t type, uint32_t layer) {
    uint32_t per = DS_NOPE + DS_V;
    float *k = malloc((size_t)heads * rank * DS_NOPE * sizeof *k), *v = malloc((size_t)heads * DS_V * rank * sizeof *v);
    for (uint32_t h = 0; h < heads; h++) {
        for (uint32_t j = 0; j < DS_NOPE; j++)
            for (uint32_t c = 0; c < rank; c++)
                k[((size_t)h * rank + c) * DS_NOPE + j] = kv[((size_t)h * per + j) * rank + c];
        for (uint32_t i = 0; i < DS_V; i++)
            memcpy(v + ((size_t)h * DS_V + i) * rank, kv + ((size_t)h * per + DS_NOPE + i) * rank, rank * sizeof *v);
    }
    snprintf(kb->name, sizeof kb->name, "blk.%u.attn_k_b.weight", layer);
    kb->nd = 3;
    kb->ne[0] = DS_NOPE;
    kb->ne[1] = rank;
    kb->ne[2] = heads;
    kb->type = DS_NOPE % 32 && type >= 2 ? 1 : type;
    kb->data = encode_ggml(k, (uint64_t)heads * rank * DS_NOPE, kb->type, &kb->bytes);
    snprintf(vb->name, sizeof vb->name, "blk.%u.attn_v_b.weight", layer);
    vb->nd = 3;
    vb->ne[0] = rank;
    vb->ne[1] = DS_V;
    vb->ne[2] = heads;
    vb->type = rank % 32 && type >= 2 ? 1 : type;
    vb->data = encode_ggml(v, (uint64_t)heads * DS_V * rank, vb->type, &vb->bytes);
    free(k);
    free(v);
}

/* variant: "" | "mla" (k_b/v_b instead of kv_b, deepseek2) | "mlakv" (k_b/v_b and kv_b) */
static int gen_gguf(const char *outdir, const arch_def *a, const char *tname, const char *variant) {
    uint32_t type = !strcmp(tname, "f32") ? 0 : !strcmp(tname, "f16") ? 1 : !strcmp(tname, "q8_0") ? 8 : 2;
    const char *garch = a->kind <= 1 ? "llama" : a->kind == 3 ? "qwen3moe" : a->kind == 4 ? "deepseek2" : NULL;
    if (!garch) {
        fprintf(stderr, "gen_models: no GGUF form for %s\n", a->name);
        return -1;
    }
    bool mla = !strcmp(variant, "mla") || !strcmp(variant, "mlakv"), keep_kvb = !mla || !strcmp(variant, "mlakv");
    if ((mla && a->kind != 4) || (*variant && !mla)) {
        fprintf(stderr, "gen_models: GGUF variant \"%s\" is not available for %s (mla, mlakv: deepseek_v3)\n", variant,
                a->name);
        return -1;
    }
    tlist tl = {0};
    build(a, &tl);
    gt *ts = calloc(tl.n + 2 * a->layers, sizeof *ts);
    uint32_t nt = 0;
    for (uint32_t i = 0; i < tl.n; i++) {
        const tdef *t = &tl.t[i];
        gt *g = &ts[nt];
        uint64_t rows = t->dims[0], cols = t->nd == 2 ? t->dims[1] : 1;
        if (t->role == R_EXPERT && t->expert >= 0) {
            if (t->expert != 0) continue;
            static const char *const pn[3] = {"gate", "up", "down"};
            snprintf(g->name, sizeof g->name, "blk.%d.ffn_%s_exps.weight", t->layer, pn[t->proj]);
            float *all = malloc(a->experts * rows * cols * sizeof *all);
            for (uint32_t x = 0; x < a->experts; x++) {
                /* find expert x's tensor of the same (layer, proj) */
                for (uint32_t k = 0; k < tl.n; k++) {
                    const tdef *u = &tl.t[k];
                    if (u->role == R_EXPERT && u->layer == t->layer && u->expert == (int)x && u->proj == t->proj) {
                        float *v = values(u);
                        memcpy(all + (uint64_t)x * rows * cols, v, rows * cols * sizeof *v);
                        free(v);
                    }
                }
            }
            g->nd = 3;
            g->ne[0] = cols;
            g->ne[1] = rows;
            g->ne[2] = a->experts;
            g->type = cols % 32 && type >= 2 ? 1 : type;
            g->data = encode_ggml(all, a->experts * rows * cols, g->type, &g->bytes);
            free(all);
            nt++;
            continue;
        }
        char nb[96];
        const char *name = gguf_name(a, t, nb, sizeof nb);
        if (!name) {
            fprintf(stderr, "gen_models: no GGUF name for %s\n", t->hf);
            return -1;
        }
        snprintf(g->name, sizeof g->name, "%s", name);
        float *v = values(t);
        if (mla && strstr(t->hf, "self_attn.kv_b_proj.weight")) {
            mla_split(v, a->heads, (uint32_t)cols, &ts[nt], &ts[nt + 1], type, (uint32_t)t->layer);
            nt += 2;
            if (!keep_kvb) {
                free(v);
                continue;
            }
            g = &ts[nt];
            snprintf(g->name, sizeof g->name, "%s", name);
        }
        if (a->kind <= 1 && strstr(t->hf, "self_attn.q_proj.weight")) permute_rows(v, rows, cols, a->heads);
        if (a->kind <= 1 && strstr(t->hf, "self_attn.k_proj.weight")) permute_rows(v, rows, cols, a->kv_heads);
        g->nd = t->nd;
        g->ne[0] = t->nd == 2 ? cols : rows;
        g->ne[1] = rows;
        g->type = t->nd == 1 || t->role == R_ROUTER ? 0 : (cols % 32 && type >= 2 ? 1 : type);
        g->data = encode_ggml(v, rows * cols, g->type, &g->bytes);
        free(v);
        nt++;
    }
    gbuf kv = {0};
    uint32_t nkv = 0;
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", garch, s), k)
    kv_str(&kv, &nkv, "general.architecture", garch);
    kv_str(&kv, &nkv, "general.name", a->name);
    kv_u32(&kv, &nkv, "general.alignment", 32);
    kv_u32(&kv, &nkv, KEY("block_count"), a->layers);
    kv_u32(&kv, &nkv, KEY("context_length"), 512);
    kv_u32(&kv, &nkv, KEY("embedding_length"), a->hidden);
    kv_u32(&kv, &nkv, KEY("attention.head_count"), a->heads);
    kv_u32(&kv, &nkv, KEY("attention.head_count_kv"), mla ? 1 : a->kv_heads); /* llama.cpp: MLA as MQA */
    kv_f32(&kv, &nkv, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    kv_f32(&kv, &nkv, KEY("rope.freq_base"), 50000.0f);
    if (a->kind == 0) kv_u32(&kv, &nkv, KEY("feed_forward_length"), a->ffn);
    if (a->kind == 1) {
        kv_u32(&kv, &nkv, KEY("feed_forward_length"), a->moe_ffn);
        kv_u32(&kv, &nkv, KEY("expert_count"), a->experts);
        kv_u32(&kv, &nkv, KEY("expert_used_count"), a->top_k);
    }
    if (a->kind <= 1) kv_u32(&kv, &nkv, KEY("rope.dimension_count"), a->head_dim);
    if (a->kind == 3) {
        kv_u32(&kv, &nkv, KEY("feed_forward_length"), 192);
        kv_u32(&kv, &nkv, KEY("expert_feed_forward_length"), a->moe_ffn);
        kv_u32(&kv, &nkv, KEY("expert_count"), a->experts);
        kv_u32(&kv, &nkv, KEY("expert_used_count"), a->top_k);
        kv_u32(&kv, &nkv, KEY("attention.key_length"), a->head_dim);
        kv_u32(&kv, &nkv, KEY("attention.value_length"), a->head_dim);
    }
    if (a->kind == 4) {
        kv_u32(&kv, &nkv, KEY("feed_forward_length"), a->ffn);
        kv_u32(&kv, &nkv, KEY("expert_feed_forward_length"), a->moe_ffn);
        kv_u32(&kv, &nkv, KEY("expert_count"), a->experts);
        kv_u32(&kv, &nkv, KEY("expert_used_count"), a->top_k);
        kv_u32(&kv, &nkv, KEY("expert_shared_count"), 1);
        kv_u32(&kv, &nkv, KEY("leading_dense_block_count"), DS_FIRST_DENSE);
        kv_f32(&kv, &nkv, KEY("expert_weights_scale"), 2.5f);
        kv_bool(&kv, &nkv, KEY("expert_weights_norm"), 1);
        kv_u32(&kv, &nkv, KEY("expert_gating_func"), 2);
        kv_u32(&kv, &nkv, KEY("expert_group_count"), 2);
        kv_u32(&kv, &nkv, KEY("expert_group_used_count"), 1);
        kv_u32(&kv, &nkv, KEY("attention.q_lora_rank"), DS_Q_LORA);
        kv_u32(&kv, &nkv, KEY("attention.kv_lora_rank"), DS_KV_LORA);
        if (mla) {
            kv_u32(&kv, &nkv, KEY("attention.key_length"), DS_KV_LORA + DS_ROPE);
            kv_u32(&kv, &nkv, KEY("attention.value_length"), DS_KV_LORA);
            kv_u32(&kv, &nkv, KEY("attention.key_length_mla"), DS_NOPE + DS_ROPE);
            kv_u32(&kv, &nkv, KEY("attention.value_length_mla"), DS_V);
        } else {
            kv_u32(&kv, &nkv, KEY("attention.key_length"), DS_NOPE + DS_ROPE);
            kv_u32(&kv, &nkv, KEY("attention.value_length"), DS_V);
        }
        kv_u32(&kv, &nkv, KEY("rope.dimension_count"), DS_ROPE);
        kv_str(&kv, &nkv, KEY("rope.scaling.type"), "yarn");
        kv_f32(&kv, &nkv, KEY("rope.scaling.factor"), 4.0f);
        kv_u32(&kv, &nkv, KEY("rope.scaling.original_context_length"), 128);
        kv_f32(&kv, &nkv, KEY("rope.scaling.yarn_log_multiplier"), 0.1f);
    }
#undef KEY
    gguf_tokenizer(&kv, &nkv, a->vocab, a->kind <= 1);
    gbuf out = {0};
    g32(&out, 0x46554747u);
    g32(&out, 3);
    g64(&out, nt);
    g64(&out, nkv);
    gput(&out, kv.p, kv.n);
    uint64_t off = 0;
    for (uint32_t i = 0; i < nt; i++) {
        gstr(&out, ts[i].name);
        g32(&out, ts[i].nd);
        for (uint32_t d = 0; d < ts[i].nd; d++) g64(&out, ts[i].ne[d]);
        g32(&out, ts[i].type);
        g64(&out, off);
        off += (ts[i].bytes + 31) / 32 * 32;
    }
    static const uint8_t zeros[32];
    if (out.n % 32) gput(&out, zeros, 32 - out.n % 32);
    for (uint32_t i = 0; i < nt; i++) {
        gput(&out, ts[i].data, ts[i].bytes);
        if (ts[i].bytes % 32) gput(&out, zeros, 32 - ts[i].bytes % 32);
        free(ts[i].data);
    }
    char path[1200];
    snprintf(path, sizeof path, "%.1024s/%s-%s%s%s.gguf", outdir, a->name, tname, *variant ? "-" : "", variant);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(out.p, 1, out.n, f) != out.n || fclose(f)) {
        perror(path);
        return -1;
    }
    free(out.p);
    free(kv.p);
    free(ts);
    free(tl.t);
    return 0;
}

static const char *const default_specs[] = {
    "hf:llama:f32",        "hf:llama:f16:2",     "hf:mixtral:f32",      "hf:mixtral:bf16",   "hf:qwen2_moe:f32",
    "hf:qwen2_moe:bf16",   "hf:qwen3_moe:f32",   "hf:qwen3_moe:bf16:3", "hf:deepseek_v3:f32", "hf:deepseek_v3:fp8",
    "hf:kimi_k2:int4",     "hf:kimi_k25:bf16",   "gguf:llama:f32",      "gguf:llama:q4_0",   "gguf:mixtral:f32",
    "gguf:mixtral:q4_0",   "gguf:mixtral:q8_0",  "gguf:qwen3_moe:f32",  "gguf:qwen3_moe:f16", "gguf:deepseek_v3:f32",
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: gen_models OUTDIR [hf:ARCH:DTYPE[:SHARDS] | gguf:ARCH:TYPE]...\n");
        return 2;
    }
    const char *outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        perror(outdir);
        return 1;
    }
    int n = argc > 2 ? argc - 2 : (int)(sizeof default_specs / sizeof default_specs[0]);
    for (int i = 0; i < n; i++) {
        const char *spec = argc > 2 ? argv[i + 2] : default_specs[i];
        char form[8], arch[32], dt[16], extra[16] = "";
        int shards = 1;
        int got = sscanf(spec, "%7[^:]:%31[^:]:%15[^:]:%15[^:]", form, arch, dt, extra);
        if (got == 4 && !strcmp(form, "hf")) shards = atoi(extra);
        const arch_def *a = NULL;
        for (size_t k = 0; k < sizeof archs / sizeof archs[0]; k++)
            if (got >= 3 && !strcmp(archs[k].name, arch)) a = &archs[k];
        if (!a) {
            fprintf(stderr, "gen_models: bad spec %s\n", spec);
            return 2;
        }
        /* optional size override for benchmarks: hf:ARCH:DTYPE:SHARDS:HIDDEN:FFN:EXPERTS:LAYERS[:VOCAB] */
        arch_def big;
        unsigned hidden, ffn, experts, layers, vocab = 0;
        if (sscanf(spec, "%*[^:]:%*[^:]:%*[^:]:%*d:%u:%u:%u:%u:%u", &hidden, &ffn, &experts, &layers, &vocab) >= 4) {
            big = *a;
            big.hidden = hidden;
            big.heads = hidden / 128 ? hidden / 128 : 1;
            big.kv_heads = 1;
            big.head_dim = 128;
            if (big.ffn) big.ffn = ffn;
            if (big.moe_ffn) big.moe_ffn = ffn;
            if (big.experts) big.experts = experts;
            big.layers = layers;
            if (vocab) big.vocab = vocab;
            a = &big;
        }
        int rc = !strcmp(form, "hf") ? gen_hf(outdir, a, dt, shards) : gen_gguf(outdir, a, dt, extra);
        if (rc) {
            fprintf(stderr, "gen_models: %s failed\n", spec);
            return 1;
        }
    }
    return 0;
}
