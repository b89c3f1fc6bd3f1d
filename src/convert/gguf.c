/* gguf.c — GGUF v2/v3 import (untrusted input).
 *
 * Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv x {string key,
 * u32 type, value}, n_tensors x {string name, u32 n_dims, u64 ne[n_dims],
 * u32 ggml_type, u64 offset}, padding to general.alignment (default 32),
 * tensor data. Strings are u64 length + bytes. Checked before use: magic
 * (and the byte-swapped magic of a big-endian file), version 2..3, every
 * count and string length against the bytes left, value types in range, no
 * nested arrays, n_dims 1..4, each ne <= 2^40 with an overflow-checked
 * product, ggml type supported, ne[0] a whole number of blocks, offsets
 * aligned, data inside the file, tensors not overlapping, alignment a power
 * of two.
 *
 * Import: tensors are added under Hugging Face names (token_embd.weight ->
 * model.embed_tokens.weight, blk.N.ffn_gate_exps.weight -> one virtual
 * model.layers.N.mlp.experts.E.gate_proj.weight per expert, ...), so the
 * rest of the converter is shared with the safetensors path. llama-arch Q/K
 * rows, permuted by llama.cpp's converter for interleaved rope, are read back
 * in HF order (qk_heads). The tokenizer becomes a VIB3_TOKENIZER_SPM table
 * (tokenizer.ggml.model "llama") or a synthesized tokenizer.json (BPE, "gpt2").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/internal.h"
#include "core/json.h"
#include "runtime/tokenizer.h"

#define GGUF_MAGIC 0x46554747u   /* "GGUF" little-endian */
#define GGUF_MAGIC_BE 0x47475546u
#define GGUF_DIM_MAX (1ull << 40)
#define GGUF_KEY_MAX 65535u

/* ---- parsing -------------------------------------------------------------- */
typedef struct rd {
    const uint8_t *p;
    uint64_t pos, size;
    const char *name;
} rd;

static bool need(rd *r, uint64_t n) { return n <= r->size - r->pos; }

static vib3_err rd_u32(rd *r, uint32_t *v, const char *what) {
    if (!need(r, 4)) return vib3_err_set(VIB3_ERR_FORMAT, "%s: truncated at byte %llu reading %s", r->name,
                                         (unsigned long long)r->pos, what);
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return VIB3_OK;
}

static vib3_err rd_u64(rd *r, uint64_t *v, const char *what) {
    if (!need(r, 8)) return vib3_err_set(VIB3_ERR_FORMAT, "%s: truncated at byte %llu reading %s", r->name,
                                         (unsigned long long)r->pos, what);
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return VIB3_OK;
}

static vib3_err rd_str(rd *r, const char **s, uint64_t *len, uint64_t max, const char *what) {
    *len = 0;
    vib3_err e = rd_u64(r, len, what);
    if (e) return e;
    if (*len > max || !need(r, *len))
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: %s: string length %llu at byte %llu exceeds %s", r->name, what,
                            (unsigned long long)*len, (unsigned long long)r->pos,
                            *len > max ? "the limit" : "the file");
    *s = (const char *)r->p + r->pos;
    r->pos += *len;
    return VIB3_OK;
}

static const uint32_t scalar_bytes[VIB3_GGUF_TYPE_COUNT_] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static vib3_err skip_value(rd *r, uint32_t type, uint32_t *arr_type, uint64_t *arr_n, const char *key) {
    if (type >= VIB3_GGUF_TYPE_COUNT_)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: key %s: value type %u out of range", r->name, key, type);
    if (type == VIB3_GGUF_STRING) {
        const char *s;
        uint64_t n;
        return rd_str(r, &s, &n, UINT64_MAX, key);
    }
    if (type != VIB3_GGUF_ARRAY) {
        if (!need(r, scalar_bytes[type]))
            return vib3_err_set(VIB3_ERR_FORMAT, "%s: key %s: truncated value", r->name, key);
        r->pos += scalar_bytes[type];
        return VIB3_OK;
    }
    uint32_t at = 0;
    uint64_t n = 0;
    vib3_err e;
    if ((e = rd_u32(r, &at, key)) || (e = rd_u64(r, &n, key))) return e;
    if (at >= VIB3_GGUF_TYPE_COUNT_ || at == VIB3_GGUF_ARRAY)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: key %s: array element type %u not supported", r->name, key, at);
    *arr_type = at;
    *arr_n = n;
    if (at == VIB3_GGUF_STRING) {
        if (n > (r->size - r->pos) / 8)
            return vib3_err_set(VIB3_ERR_FORMAT, "%s: key %s: %llu strings cannot fit in the file", r->name, key,
                                (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            const char *s;
            uint64_t len;
            if ((e = rd_str(r, &s, &len, UINT64_MAX, key))) return e;
        }
        return VIB3_OK;
    }
    uint64_t sz = scalar_bytes[at];
    if (n > (r->size - r->pos) / sz)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: key %s: array of %llu x %llu bytes exceeds the file", r->name, key,
                            (unsigned long long)n, (unsigned long long)sz);
    r->pos += n * sz;
    return VIB3_OK;
}

/* ggml type -> source dtype; -1 unsupported */
static int ggml_to_sdtype(uint32_t t) {
    switch (t) {
    case 0: return VIB3_S_F32;
    case 1: return VIB3_S_F16;
    case 2: return VIB3_S_Q4_0;
    case 3: return VIB3_S_Q4_1;
    case 6: return VIB3_S_Q5_0;
    case 7: return VIB3_S_Q5_1;
    case 8: return VIB3_S_Q8_0;
    case 12: return VIB3_S_Q4_K;
    case 13: return VIB3_S_Q5_K;
    case 14: return VIB3_S_Q6_K;
    case 24: return VIB3_S_I8;
    case 25: return VIB3_S_I16;
    case 26: return VIB3_S_I32;
    case 27: return VIB3_S_I64;
    case 28: return VIB3_S_F64;
    case 30: return VIB3_S_BF16;
    default: return -1;
    }
}

typedef struct g_range {
    uint64_t begin, end;
} g_range;

static int cmp_grange(const void *a, const void *b) {
    const g_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

void vib3_gguf_free(vib3_gguf *g) {
    if (!g) return;
    free(g->kv);
    g->kv = NULL;
}

vib3_err vib3_gguf_parse(const uint8_t *buf, uint64_t size, const char *name, vib3_gguf *g, vib3_gguf_tensor_fn fn,
                         void *ctx) {
    memset(g, 0, sizeof *g);
    rd r = {buf, 0, size, name};
    uint32_t magic = 0;
    vib3_err e;
    if ((e = rd_u32(&r, &magic, "magic"))) return e;
    if (magic == GGUF_MAGIC_BE)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", name);
    if (magic != GGUF_MAGIC) return vib3_err_set(VIB3_ERR_FORMAT, "%s: not a GGUF file (magic 0x%08x)", name, magic);
    if ((e = rd_u32(&r, &g->version, "version"))) return e;
    if (g->version < 2 || g->version > 3)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (2, 3)", name, g->version);
    if ((e = rd_u64(&r, &g->n_tensors, "tensor count")) || (e = rd_u64(&r, &g->n_kv, "metadata count"))) return e;
    /* each kv needs >= 8 + 4 + 1 bytes, each tensor info >= 8 + 4 + 8 + 4 + 8 */
    if (g->n_kv > (size - r.pos) / 13 || g->n_tensors > (size - r.pos) / 32 || g->n_tensors > VIB3_MAX_TENSORS * 4u)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: %llu metadata entries / %llu tensors cannot fit in %llu bytes", name,
                            (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, (unsigned long long)size);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    if (!g->kv) return vib3_err_set(VIB3_ERR_NOMEM, "%s: metadata table", name);
    g->alignment = 32;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        vib3_gguf_kv *kv = &g->kv[i];
        uint64_t klen;
        if ((e = rd_str(&r, &kv->key, &klen, GGUF_KEY_MAX, "metadata key"))) goto fail;
        kv->key_len = (uint32_t)klen;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(klen > 120 ? 120 : klen), kv->key);
        if ((e = rd_u32(&r, &kv->type, key))) goto fail;
        uint64_t start = r.pos;
        if (kv->type == VIB3_GGUF_ARRAY) kv->value = r.p + r.pos + 12; /* after element type and count */
        else kv->value = r.p + r.pos;
        if ((e = skip_value(&r, kv->type, &kv->arr_type, &kv->arr_n, key))) goto fail;
        kv->value_bytes = r.pos - start - (kv->type == VIB3_GGUF_ARRAY ? 12 : 0);
        if (!strcmp(key, "general.alignment")) {
            uint32_t a = 0;
            if (kv->type == VIB3_GGUF_U32) memcpy(&a, kv->value, 4);
            if (a == 0 || (a & (a - 1)) || a > (1u << 20)) {
                e = vib3_err_set(VIB3_ERR_FORMAT, "%s: general.alignment %u is not a power of two <= 1 MiB", name, a);
                goto fail;
            }
            g->alignment = a;
        }
    }
    uint64_t info_pos = r.pos;
    g_range *ranges = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *ranges);
    if (!ranges) {
        e = vib3_err_set(VIB3_ERR_NOMEM, "%s: tensor table", name);
        goto fail;
    }
    /* pass 1: validate infos (data offset known only after all infos) */
    for (int pass = 0; pass < 2 && !e; pass++) {
        r.pos = info_pos;
        for (uint64_t i = 0; i < g->n_tensors && !e; i++) {
            const char *tname;
            uint64_t nlen;
            uint32_t nd = 0, type = 0;
            uint64_t ne[4] = {1, 1, 1, 1}, off = 0;
            if ((e = rd_str(&r, &tname, &nlen, VIB3_SRC_NAME_MAX - 1, "tensor name"))) break;
            char tn[VIB3_SRC_NAME_MAX];
            snprintf(tn, sizeof tn, "%.*s", (int)nlen, tname);
            if ((e = rd_u32(&r, &nd, tn))) break;
            if (nd < 1 || nd > 4) {
                e = vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: %u dims (1..4)", name, tn, nd);
                break;
            }
            uint64_t count = 1;
            for (uint32_t d = 0; d < nd && !e; d++) {
                if ((e = rd_u64(&r, &ne[d], tn))) break;
                if (ne[d] > GGUF_DIM_MAX || (ne[d] && count > UINT64_MAX / ne[d]))
                    e = vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: ne[%u] = %llu too large", name, tn, d,
                                     (unsigned long long)ne[d]);
                else
                    count *= ne[d];
            }
            if (e || (e = rd_u32(&r, &type, tn)) || (e = rd_u64(&r, &off, tn))) break;
            int sdt = ggml_to_sdtype(type);
            if (sdt < 0) {
                e = vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: tensor %s: ggml type %u is not supported (F32, F16, BF16, "
                                 "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)", name, tn, type);
                break;
            }
            uint64_t bytes = vib3_sdtype_bytes((uint32_t)sdt, count);
            if (ne[0] % vib3_sdtype_block((uint32_t)sdt) || (count && !bytes)) {
                e = vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: row of %llu is not a whole number of %s blocks", name,
                                 tn, (unsigned long long)ne[0], vib3_sdtype_name((uint32_t)sdt));
                break;
            }
            if (off % g->alignment) {
                e = vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: offset %llu not aligned to %llu", name, tn,
                                 (unsigned long long)off, (unsigned long long)g->alignment);
                break;
            }
            if (pass == 0) {
                ranges[i].begin = off;
                ranges[i].end = off + bytes;
                if (ranges[i].end < off) e = vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: offset overflows", name, tn);
                continue;
            }
            if (off > size - g->data_offset || bytes > size - g->data_offset - off) {
                e = vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: data [%llu, +%llu) runs past the end of the file", name,
                                 tn, (unsigned long long)(g->data_offset + off), (unsigned long long)bytes);
                break;
            }
            if (fn) e = fn(ctx, tname, (uint32_t)nlen, (uint32_t)sdt, nd, ne, off, bytes);
        }
        if (!e && pass == 0) {
            uint64_t a = g->alignment;
            g->data_offset = (r.pos + a - 1) / a * a;
            if (g->data_offset > size && g->n_tensors > 0) {
                e = vib3_err_set(VIB3_ERR_FORMAT, "%s: data section starts past the end of the file", name);
                break;
            }
            qsort(ranges, g->n_tensors, sizeof *ranges, cmp_grange);
            for (uint64_t i = 1; i < g->n_tensors && !e; i++)
                if (ranges[i].begin < ranges[i - 1].end && ranges[i].begin != ranges[i].end)
                    e = vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor data ranges overlap at offset %llu", name,
                                     (unsigned long long)ranges[i].begin);
        }
    }
    free(ranges);
    if (!e) return VIB3_OK;
fail:
    vib3_gguf_free(g);
    return e;
}

const vib3_gguf_kv *vib3_gguf_find(const vib3_gguf *g, const char *key) {
    size_t n = strlen(key);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == n && !memcmp(g->kv[i].key, key, n)) return &g->kv[i];
    return NULL;
}

static bool kv_num(const vib3_gguf_kv *kv, double *d, uint64_t *u, bool *is_int) {
    if (!kv) return false;
    const uint8_t *p = kv->value;
    *is_int = true;
    switch (kv->type) {
    case VIB3_GGUF_U8: *u = p[0]; break;
    case VIB3_GGUF_I8: *u = (uint64_t)(int64_t)(int8_t)p[0]; break;
    case VIB3_GGUF_BOOL: *u = p[0] != 0; break;
    case VIB3_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *u = v; break; }
    case VIB3_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *u = (uint64_t)(int64_t)v; break; }
    case VIB3_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *u = v; break; }
    case VIB3_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *u = (uint64_t)(int64_t)v; break; }
    case VIB3_GGUF_U64: memcpy(u, p, 8); break;
    case VIB3_GGUF_I64: memcpy(u, p, 8); break;
    case VIB3_GGUF_F32: { float v; memcpy(&v, p, 4); *d = v; *is_int = false; return true; }
    case VIB3_GGUF_F64: memcpy(d, p, 8); *is_int = false; return true;
    default: return false;
    }
    *d = kv->type == VIB3_GGUF_I8 || kv->type == VIB3_GGUF_I16 || kv->type == VIB3_GGUF_I32 || kv->type == VIB3_GGUF_I64
             ? (double)(int64_t)*u
             : (double)*u;
    return true;
}

bool vib3_gguf_get_u64(const vib3_gguf *g, const char *key, uint64_t *out) {
    double d;
    uint64_t u;
    bool is_int;
    if (!kv_num(vib3_gguf_find(g, key), &d, &u, &is_int)) return false;
    if (!is_int || d < 0) return false;
    *out = u;
    return true;
}

bool vib3_gguf_get_f64(const vib3_gguf *g, const char *key, double *out) {
    uint64_t u;
    bool is_int;
    return kv_num(vib3_gguf_find(g, key), out, &u, &is_int);
}

bool vib3_gguf_get_str(const vib3_gguf *g, const char *key, char *out, size_t cap) {
    const vib3_gguf_kv *kv = vib3_gguf_find(g, key);
    if (!kv || kv->type != VIB3_GGUF_STRING) return false;
    uint64_t n;
    memcpy(&n, kv->value, 8);
    if (n >= cap) return false;
    memcpy(out, kv->value + 8, n);
    out[n] = 0;
    return true;
}

/* ---- import: HF names ------------------------------------------------------ */
typedef struct load_ctx {
    vib3_src *s;
    uint32_t file;
    const vib3_gguf *g;
    char arch[32];
    uint32_t n_head, n_head_kv;
    bool permute_qk;
} load_ctx;

static vib3_err add_named(load_ctx *c, const char *name, uint32_t dtype, uint32_t nd, const uint64_t *ne,
                          const uint8_t *data, uint64_t bytes, uint32_t qk_heads) {
    uint64_t dims[4];
    for (uint32_t d = 0; d < nd; d++) dims[d] = ne[nd - 1 - d]; /* ggml order -> PyTorch order */
    vib3_err e = vib3_src_add(c->s, name, dtype, nd, dims, data, bytes, c->file);
    if (!e) c->s->tensors[c->s->n_tensors - 1].qk_heads = qk_heads;
    return e;
}

static const struct {
    const char *gguf, *hf;
} layer_map[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
    {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
    {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
    {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
    {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
    {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate_inp.weight", "mlp.gate.weight"},
    {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
    {"exp_probs_b", "mlp.gate.e_score_correction_bias"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"},
    {"ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"},
    {"ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"},
    {"ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight"},
};

static vib3_err gguf_tensor(void *vctx, const char *name, uint32_t name_len, uint32_t dtype, uint32_t nd,
                            const uint64_t *ne, uint64_t offset, uint64_t bytes) {
    load_ctx *c = vctx;
    char tn[VIB3_SRC_NAME_MAX], hf[VIB3_SRC_NAME_MAX + 64];
    snprintf(tn, sizeof tn, "%.*s", (int)name_len, name);
    const uint8_t *data = c->s->files[c->file].map + c->g->data_offset + offset;
    if (!strcmp(tn, "token_embd.weight")) return add_named(c, "model.embed_tokens.weight", dtype, nd, ne, data, bytes, 0);
    if (!strcmp(tn, "output_norm.weight")) return add_named(c, "model.norm.weight", dtype, nd, ne, data, bytes, 0);
    if (!strcmp(tn, "output.weight")) return add_named(c, "lm_head.weight", dtype, nd, ne, data, bytes, 0);
    unsigned layer;
    int n = 0;
    if (sscanf(tn, "blk.%u.%n", &layer, &n) != 1 || n == 0 || layer >= VIB3_MAX_LAYERS) {
        /* unknown global tensors (rope_freqs, ...) are kept under their own name and ignored */
        return vib3_src_add(c->s, tn, dtype, 0, ne, data, bytes, c->file);
    }
    const char *rest = tn + n;
    for (size_t i = 0; i < sizeof layer_map / sizeof layer_map[0]; i++) {
        if (strcmp(rest, layer_map[i].gguf)) continue;
        snprintf(hf, sizeof hf, "model.layers.%u.%s", layer, layer_map[i].hf);
        uint32_t heads = 0;
        if (c->permute_qk && !strcmp(rest, "attn_q.weight")) heads = c->n_head;
        if (c->permute_qk && !strcmp(rest, "attn_k.weight")) heads = c->n_head_kv;
        return add_named(c, hf, dtype, nd, ne, data, bytes, heads);
    }
    /* stacked experts: ne = [cols, rows, n_expert] */
    static const char *const exps[3][2] = {{"ffn_gate_exps.weight", "gate_proj"}, {"ffn_up_exps.weight", "up_proj"},
                                           {"ffn_down_exps.weight", "down_proj"}};
    for (int k = 0; k < 3; k++) {
        if (strcmp(rest, exps[k][0])) continue;
        if (nd != 3 || ne[2] == 0 || ne[2] > VIB3_MAX_EXPERTS)
            return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: expected 3 dims (cols, rows, experts)",
                                c->s->files[c->file].path, tn);
        uint64_t per = bytes / ne[2];
        for (uint64_t x = 0; x < ne[2]; x++) {
            snprintf(hf, sizeof hf, "model.layers.%u.mlp.experts.%llu.%s.weight", layer, (unsigned long long)x,
                     exps[k][1]);
            vib3_err e = add_named(c, hf, dtype, 2, ne, data + x * per, per, 0);
            if (e) return e;
        }
        return VIB3_OK;
    }
    /* old Mixtral GGUFs: blk.N.ffn_gate.E.weight */
    unsigned x;
    char which[8];
    if (sscanf(rest, "ffn_%4[a-z].%u.weight", which, &x) == 2 && x < VIB3_MAX_EXPERTS) {
        const char *proj = !strcmp(which, "gate") ? "gate_proj" : !strcmp(which, "up") ? "up_proj"
                                                  : !strcmp(which, "down")             ? "down_proj"
                                                                                       : NULL;
        if (proj) {
            snprintf(hf, sizeof hf, "model.layers.%u.mlp.experts.%u.%s.weight", layer, x, proj);
            return add_named(c, hf, dtype, nd, ne, data, bytes, 0);
        }
    }
    /* newer deepseek2 GGUFs split attn_kv_b into attn_k_b (per head, transposed) and attn_v_b, often
     * without attn_kv_b: imported as k_b_proj / v_b_proj, from which the weight layer reads kv_b_proj
     * back when it is absent (weight.c); with attn_kv_b present they are unused */
    if (!strcmp(rest, "attn_k_b.weight") || !strcmp(rest, "attn_v_b.weight")) {
        snprintf(hf, sizeof hf, "model.layers.%u.self_attn.%s_b_proj.weight", layer, rest[5] == 'k' ? "k" : "v");
        return add_named(c, hf, dtype, nd, ne, data, bytes, 0);
    }
    return vib3_src_add(c->s, tn, dtype, 0, ne, data, bytes, c->file);
}

static bool arch_key(const vib3_gguf *g, const char *arch, const char *suffix, uint64_t *v) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return vib3_gguf_get_u64(g, key, v);
}

vib3_err vib3_gguf_load(vib3_src *s, const char *path) {
    uint32_t idx;
    vib3_err e = vib3_src_map(s, path, &idx);
    if (e) return e;
    vib3_gguf *g = calloc(1, sizeof *g);
    if (!g) return vib3_err_set(VIB3_ERR_NOMEM, "%s", path);
    e = vib3_gguf_parse(s->files[idx].map, s->files[idx].size, path, g, NULL, NULL);
    if (e) {
        free(g);
        return e;
    }
    s->gguf = g;
    s->is_gguf = true;
    load_ctx c = {s, idx, g, "", 0, 0, false};
    if (!vib3_gguf_get_str(g, "general.architecture", c.arch, sizeof c.arch))
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: missing general.architecture", path);
    uint64_t v = 0;
    if (arch_key(g, c.arch, "attention.head_count", &v)) c.n_head = (uint32_t)v;
    c.n_head_kv = c.n_head;
    if (arch_key(g, c.arch, "attention.head_count_kv", &v)) c.n_head_kv = (uint32_t)v;
    c.permute_qk = !strcmp(c.arch, "llama") || !strcmp(c.arch, "mixtral");
    vib3_gguf tmp;
    e = vib3_gguf_parse(s->files[idx].map, s->files[idx].size, path, &tmp, gguf_tensor, &c);
    vib3_gguf_free(&tmp);
    return e;
}

/* ---- model description ------------------------------------------------------ */
/* a layer without attn_kv_b needs attn_k_b (qk_nope, kv_lora_rank, heads) and attn_v_b
 * (kv_lora_rank, v_head_dim, heads) in ggml order: checked here, where the GGUF names and
 * the config are known */
static vib3_err check_mla_split(const vib3_src *s, const char *path, const vib3_model_config *cfg) {
    char n[128];
    for (uint32_t l = 0; l < cfg->n_layers; l++) {
        snprintf(n, sizeof n, "model.layers.%u.self_attn.kv_b_proj.weight", l);
        if (vib3_src_find(s, n)) continue;
        uint64_t want[2][3] = {{cfg->qk_nope_head_dim, cfg->kv_lora_rank, cfg->n_heads},
                               {cfg->kv_lora_rank, cfg->v_head_dim, cfg->n_heads}};
        static const char *const what[2] = {"(qk_nope_head_dim, kv_lora_rank, head_count)",
                                            "(kv_lora_rank, v_head_dim, head_count)"};
        for (int k = 0; k < 2; k++) {
            snprintf(n, sizeof n, "model.layers.%u.self_attn.%s_b_proj.weight", l, k ? "v" : "k");
            const vib3_src_tensor *t = vib3_src_find(s, n);
            if (!t)
                return vib3_err_set(VIB3_ERR_FORMAT,
                                    "%s: layer %u: tensor blk.%u.attn_kv_b.weight is missing and so is blk.%u.attn_%s_b.weight "
                                    "(MLA needs attn_kv_b or both attn_k_b and attn_v_b)",
                                    path, l, l, l, k ? "v" : "k");
            /* dims are in PyTorch order here: ggml ne reversed */
            if (t->n_dims != 3 || t->dims[2] != want[k][0] || t->dims[1] != want[k][1] || t->dims[0] != want[k][2]) {
                char got[96];
                int o = snprintf(got, sizeof got, "[");
                for (uint32_t d = 0; d < t->n_dims && o < (int)sizeof got - 24; d++)
                    o += snprintf(got + o, sizeof got - (size_t)o, "%s%llu", d ? ", " : "",
                                  (unsigned long long)t->dims[t->n_dims - 1 - d]);
                snprintf(got + o, sizeof got - (size_t)o, "]");
                return vib3_err_set(VIB3_ERR_FORMAT,
                                    "%s: tensor blk.%u.attn_%s_b.weight: ne %s, expected [%llu, %llu, %llu] = %s", path,
                                    l, k ? "v" : "k", got, (unsigned long long)want[k][0],
                                    (unsigned long long)want[k][1],
                                    (unsigned long long)want[k][2], what[k]);
            }
        }
    }
    return VIB3_OK;
}

vib3_err vib3_gguf_model(const vib3_src *s, const char *path, vib3_hf_model *m) {
    const vib3_gguf *g = s->gguf;
    memset(m, 0, sizeof *m);
    vib3_model_config *cfg = &m->cfg;
    char arch[32];
    vib3_gguf_get_str(g, "general.architecture", arch, sizeof arch);
    snprintf(m->model_type, sizeof m->model_type, "gguf:%s", arch);
    uint64_t v;
#define REQ(suffix, field, lo, hi)                                                                              \
    do {                                                                                                        \
        if (!arch_key(g, arch, suffix, &v) || v < (lo) || v > (hi))                                             \
            return vib3_err_set(VIB3_ERR_FORMAT, "%s: metadata %s.%s missing or out of range [%llu, %llu]", path, \
                                arch, suffix, (unsigned long long)(lo), (unsigned long long)(hi));              \
        field = (uint32_t)v;                                                                                    \
    } while (0)
#define OPT(suffix, field, def, hi) (field = arch_key(g, arch, suffix, &v) && v <= (hi) ? (uint32_t)v : (def))
    bool llama = !strcmp(arch, "llama") || !strcmp(arch, "mixtral");
    bool q3 = !strcmp(arch, "qwen3moe"), q2 = !strcmp(arch, "qwen2moe"), ds = !strcmp(arch, "deepseek2");
    if (!llama && !q3 && !q2 && !ds)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED,
                            "%s: GGUF architecture \"%s\" is not supported (llama, qwen2moe, qwen3moe, deepseek2)", path,
                            arch);
    REQ("block_count", cfg->n_layers, 1, VIB3_MAX_LAYERS);
    REQ("embedding_length", cfg->hidden_size, 1, VIB3_MAX_DIM);
    REQ("attention.head_count", cfg->n_heads, 1, 65536);
    OPT("attention.head_count_kv", cfg->n_kv_heads, cfg->n_heads, 65536);
    if (!cfg->n_kv_heads || cfg->n_heads % cfg->n_kv_heads)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: head_count %u not a multiple of head_count_kv %u", path, cfg->n_heads,
                            cfg->n_kv_heads);
    OPT("context_length", cfg->max_position, 4096, 1u << 30);
    OPT("expert_count", cfg->n_experts, 0, VIB3_MAX_EXPERTS);
    OPT("expert_used_count", cfg->n_experts_per_tok, 0, VIB3_MAX_EXPERTS);
    if (cfg->n_experts && (cfg->n_experts_per_tok == 0 || cfg->n_experts_per_tok > cfg->n_experts))
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: expert_used_count %u not in [1, %u]", path, cfg->n_experts_per_tok,
                            cfg->n_experts);
    uint32_t ff = 0;
    OPT("feed_forward_length", ff, 0, VIB3_MAX_DIM);
    double d;
    char key[160];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    cfg->rms_norm_eps = vib3_gguf_get_f64(g, key, &d) && d >= 0 && d < 1 ? (float)d : 1e-5f;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    cfg->rope_theta = vib3_gguf_get_f64(g, key, &d) && d >= 1 && d < 1e12 ? d : 10000.0;
    cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    OPT("attention.key_length", cfg->head_dim, cfg->head_dim, 65536);
    OPT("attention.value_length", cfg->v_head_dim, cfg->head_dim, 65536);
    OPT("rope.dimension_count", cfg->rope_dim, cfg->head_dim, 65536);
    cfg->routed_scaling_factor = 1;
    cfg->n_group = cfg->topk_group = cfg->n_experts ? 1 : 0;
    if (llama) {
        cfg->arch = cfg->n_experts ? VIB3_ARCH_MIXTRAL : VIB3_ARCH_LLAMA;
        if (cfg->n_experts) {
            cfg->moe_ffn_size = ff;
            cfg->router_flags = VIB3_ROUTER_SOFTMAX_TOPK;
        } else {
            cfg->ffn_size = ff;
        }
        cfg->rope_dim = cfg->head_dim;
    } else if (q3 || q2) {
        cfg->arch = q3 ? VIB3_ARCH_QWEN3_MOE : VIB3_ARCH_QWEN2_MOE;
        OPT("expert_feed_forward_length", cfg->moe_ffn_size, ff, VIB3_MAX_DIM);
        uint32_t norm = 1;
        OPT("expert_weights_norm", norm, q3 ? 1u : 0u, 1);
        if (norm) cfg->router_flags |= VIB3_ROUTER_NORM_TOPK;
        if (q3) cfg->flags |= VIB3_CFG_QK_NORM;
        if (q2) {
            cfg->flags |= VIB3_CFG_QKV_BIAS;
            OPT("expert_shared_feed_forward_length", cfg->shared_ffn_size, 0, VIB3_MAX_DIM);
            m->deepseek_shared = true; /* ffn_*_shexp are imported as mlp.shared_experts.* */
            if (cfg->shared_ffn_size) {
                cfg->n_shared_experts = 1;
                cfg->router_flags |= VIB3_ROUTER_SHARED_GATE;
                m->shared_gate = true;
            }
        }
        cfg->rope_dim = cfg->head_dim;
    } else { /* deepseek2 */
        cfg->arch = VIB3_ARCH_DEEPSEEK_V3;
        m->deepseek_shared = true;
        OPT("expert_feed_forward_length", cfg->moe_ffn_size, 0, VIB3_MAX_DIM);
        OPT("leading_dense_block_count", cfg->first_k_dense, 0, VIB3_MAX_LAYERS);
        cfg->ffn_size = cfg->first_k_dense ? ff : 0;
        uint32_t n_shared = 0;
        OPT("expert_shared_count", n_shared, 0, 64);
        if (n_shared) {
            cfg->n_shared_experts = 1;
            cfg->shared_ffn_size = cfg->moe_ffn_size * n_shared;
        }
        OPT("attention.q_lora_rank", cfg->q_lora_rank, 0, VIB3_MAX_DIM);
        REQ("attention.kv_lora_rank", cfg->kv_lora_rank, 1, VIB3_MAX_DIM);
        /* llama.cpp since its MLA rework writes key_length = kv_lora_rank + rope and value_length =
         * kv_lora_rank (the decode-time MQA view) and the per-head sizes as *_mla */
        if (arch_key(g, arch, "attention.key_length_mla", &v)) {
            if (v < 1 || v > 65536)
                return vib3_err_set(VIB3_ERR_FORMAT, "%s: metadata %s.attention.key_length_mla = %llu out of range", path,
                                    arch, (unsigned long long)v);
            cfg->head_dim = (uint32_t)v;
            REQ("attention.value_length_mla", cfg->v_head_dim, 1, 65536);
        }
        cfg->qk_rope_head_dim = cfg->rope_dim;
        if (cfg->head_dim <= cfg->rope_dim)
            return vib3_err_set(VIB3_ERR_FORMAT, "%s: key_length %u <= rope dims %u", path, cfg->head_dim, cfg->rope_dim);
        cfg->qk_nope_head_dim = cfg->head_dim - cfg->rope_dim;
        cfg->n_kv_heads = cfg->n_heads;
        uint32_t gating = 1;
        OPT("expert_gating_func", gating, 1, 3);
        cfg->router_scoring = gating == 2 ? VIB3_ROUTER_SIGMOID : VIB3_ROUTER_SOFTMAX;
        uint32_t norm = 0;
        OPT("expert_weights_norm", norm, 0, 1);
        if (norm) cfg->router_flags |= VIB3_ROUTER_NORM_TOPK;
        snprintf(key, sizeof key, "%s.expert_weights_scale", arch);
        if (vib3_gguf_get_f64(g, key, &d) && d > 0 && d < 1e6) cfg->routed_scaling_factor = (float)d;
        OPT("expert_group_count", cfg->n_group, 1, VIB3_MAX_EXPERTS);
        OPT("expert_group_used_count", cfg->topk_group, cfg->n_group, VIB3_MAX_EXPERTS);
        if (!cfg->n_group) cfg->n_group = 1;
        if (!cfg->topk_group || cfg->topk_group > cfg->n_group) cfg->topk_group = cfg->n_group;
        if (cfg->n_experts % cfg->n_group)
            return vib3_err_set(VIB3_ERR_FORMAT, "%s: %u experts not divisible into %u groups", path, cfg->n_experts,
                                cfg->n_group);
        cfg->flags |= VIB3_CFG_ROPE_INTERLEAVED; /* llama.cpp's deepseek2 rotates adjacent pairs, as HF does */
        char bn[96];
        snprintf(bn, sizeof bn, "model.layers.%u.mlp.gate.e_score_correction_bias", cfg->first_k_dense);
        if (vib3_src_find(s, bn)) cfg->router_flags |= VIB3_ROUTER_CORRECTION_BIAS;
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        char st[32] = "";
        if (vib3_gguf_get_str(g, key, st, sizeof st) && !strcmp(st, "yarn")) {
            cfg->rope_scaling = VIB3_ROPE_YARN;
            snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
            cfg->rope_factor = vib3_gguf_get_f64(g, key, &d) && d > 0 && d < 1e6 ? (float)d : 1;
            OPT("rope.scaling.original_context_length", cfg->rope_orig_max_position, cfg->max_position, 1u << 30);
            snprintf(key, sizeof key, "%s.rope.scaling.yarn_log_multiplier", arch);
            double mul = vib3_gguf_get_f64(g, key, &d) && d >= 0 && d < 1e3 ? d : 0;
            cfg->yarn_beta_fast = 32;
            cfg->yarn_beta_slow = 1;
            cfg->yarn_mscale_all_dim = (float)(mul / 0.1);
            cfg->yarn_mscale = cfg->yarn_mscale_all_dim;
        }
    }
    if (cfg->n_experts && !cfg->moe_ffn_size)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: expert feed_forward_length missing", path);
    if (!cfg->n_experts && !cfg->ffn_size) return vib3_err_set(VIB3_ERR_FORMAT, "%s: feed_forward_length missing", path);
    if (cfg->rope_dim % 2 || cfg->rope_dim > cfg->head_dim)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: rope dims %u do not fit head size %u", path, cfg->rope_dim,
                            cfg->head_dim);
    /* vocabulary: token_embd rows */
    const vib3_src_tensor *emb = vib3_src_find(s, "model.embed_tokens.weight");
    if (!emb || emb->n_dims != 2 || emb->dims[0] == 0 || emb->dims[0] > VIB3_MAX_VOCAB)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor token_embd.weight missing or not (vocab, hidden)", path);
    cfg->vocab_size = (uint32_t)emb->dims[0];
    if (ds) {
        vib3_err e = check_mla_split(s, path, cfg);
        if (e) return e;
    }
    cfg->bos_token_id = cfg->eos_token_id = VIB3_TOKEN_NONE;
    if (vib3_gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &v) && v < cfg->vocab_size) cfg->bos_token_id = (uint32_t)v;
    if (vib3_gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &v) && v < cfg->vocab_size) cfg->eos_token_id = (uint32_t)v;
    if (!vib3_src_find(s, "lm_head.weight")) cfg->flags |= VIB3_CFG_TIE_EMBEDDINGS;
    return VIB3_OK;
#undef REQ
#undef OPT
}

/* ---- tokenizer ---------------------------------------------------------------- */
/* pointers to the n strings of a string array kv (validated at parse) */
static vib3_err str_array(const vib3_gguf_kv *kv, const char ***texts, uint32_t **lens, uint64_t n_expect) {
    if (!kv || kv->type != VIB3_GGUF_ARRAY || kv->arr_type != VIB3_GGUF_STRING || kv->arr_n != n_expect)
        return vib3_err_set(VIB3_ERR_FORMAT, "tokenizer.ggml.tokens: not an array of %llu strings",
                            (unsigned long long)n_expect);
    *texts = malloc(n_expect * sizeof **texts);
    *lens = malloc(n_expect * sizeof **lens);
    if (!*texts || !*lens) return vib3_err_set(VIB3_ERR_NOMEM, "tokenizer");
    const uint8_t *p = kv->value;
    for (uint64_t i = 0; i < n_expect; i++) {
        uint64_t len;
        memcpy(&len, p, 8);
        if (len > UINT32_MAX) return vib3_err_set(VIB3_ERR_FORMAT, "token %llu too long", (unsigned long long)i);
        (*texts)[i] = (const char *)p + 8;
        (*lens)[i] = (uint32_t)len;
        p += 8 + len;
    }
    return VIB3_OK;
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool fail;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->fail) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->fail = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_json(sbuf *b, const char *s, size_t n) {
    size_t cap = n * 6 + 3;
    char *tmp = malloc(cap);
    if (!tmp) {
        b->fail = true;
        return;
    }
    long w = vib3_json_write_str(tmp, cap, s, n);
    if (w < 0)
        b->fail = true;
    else
        sb_put(b, tmp, (size_t)w);
    free(tmp);
}

/* tokenizer.json for a GGUF "gpt2" (byte-level BPE) vocabulary */
static vib3_err synth_bpe_json(vib3_cvt *c, const vib3_gguf *g, uint64_t n, const char **texts, const uint32_t *lens,
                               const uint32_t *types) {
    const vib3_gguf_kv *mk = vib3_gguf_find(g, "tokenizer.ggml.merges");
    const char **mt = NULL;
    uint32_t *ml = NULL;
    vib3_err e = VIB3_OK;
    if (mk && (e = str_array(mk, &mt, &ml, mk->arr_n))) goto out;
    char pre[64] = "default";
    vib3_gguf_get_str(g, "tokenizer.ggml.pre", pre, sizeof pre);
    /* pre-tokenizer split pattern by llama.cpp pre name */
    const char *regex = NULL;
    if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-v3") ||
        !strcmp(pre, "kimi-k2"))
        regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    sbuf b = {0};
    sb_str(&b, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    bool first = true;
    for (uint64_t i = 0; i < n; i++) {
        if (!types || (types[i] != 3 && types[i] != 4)) continue;
        char head[96];
        snprintf(head, sizeof head, "%s{\"id\":%llu,\"content\":", first ? "" : ",", (unsigned long long)i);
        sb_str(&b, head);
        sb_json(&b, texts[i], lens[i]);
        sb_str(&b, types[i] == 3 ? ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
                                   "\"special\":true}"
                                 : ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
                                   "\"special\":false}");
        first = false;
    }
    sb_str(&b, "],\"normalizer\":null,\"pre_tokenizer\":");
    if (regex) {
        sb_str(&b, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":");
        sb_json(&b, regex, strlen(regex));
        sb_str(&b, "},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                   "\"trim_offsets\":true,\"use_regex\":false}]}");
    } else {
        sb_str(&b, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}");
    }
    sb_str(&b, ",\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
               "\"trim_offsets\":true,\"use_regex\":true},\"model\":{\"type\":\"BPE\",\"dropout\":null,"
               "\"unk_token\":null,\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
               "\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{");
    for (uint64_t i = 0; i < n; i++) {
        if (i) sb_str(&b, ",");
        sb_json(&b, texts[i], lens[i]);
        char id[32];
        snprintf(id, sizeof id, ":%llu", (unsigned long long)i);
        sb_str(&b, id);
    }
    sb_str(&b, "},\"merges\":[");
    for (uint64_t i = 0; mk && i < mk->arr_n; i++) {
        if (i) sb_str(&b, ",");
        sb_json(&b, mt[i], ml[i]);
    }
    sb_str(&b, "]}}");
    if (b.fail)
        e = vib3_err_set(VIB3_ERR_NOMEM, "%s: synthesizing tokenizer.json", c->o->model_path);
    else
        e = vib3_writer_add_section(&c->w, VIB3_SEC_TOKENIZER, VIB3_TOKENIZER_HF_JSON, 0, b.p, b.n);
    free(b.p);
out:
    free(mt);
    free(ml);
    return e;
}

vib3_err vib3_cvt_gguf_tokenizer(vib3_cvt *c) {
    const vib3_gguf *g = c->src.gguf;
    char model[32] = "";
    if (!vib3_gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model)) {
        if (!c->o->quiet) fprintf(stderr, "convert: %s: no tokenizer in the GGUF metadata\n", c->o->model_path);
        return VIB3_OK;
    }
    const vib3_gguf_kv *tk = vib3_gguf_find(g, "tokenizer.ggml.tokens");
    if (!tk || tk->type != VIB3_GGUF_ARRAY || tk->arr_n == 0 || tk->arr_n > VIB3_MAX_VOCAB)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or empty", c->o->model_path);
    uint64_t n = tk->arr_n;
    const char **texts = NULL;
    uint32_t *lens = NULL, *types = NULL;
    float *scores = NULL;
    vib3_err e = str_array(tk, &texts, &lens, n);
    const vib3_gguf_kv *ty = vib3_gguf_find(g, "tokenizer.ggml.token_type");
    const vib3_gguf_kv *sc = vib3_gguf_find(g, "tokenizer.ggml.scores");
    if (!e && ty && ty->type == VIB3_GGUF_ARRAY && ty->arr_n == n &&
        (ty->arr_type == VIB3_GGUF_I32 || ty->arr_type == VIB3_GGUF_U32)) {
        types = malloc(n * sizeof *types);
        if (types) memcpy(types, ty->value, n * 4);
    }
    if (!e && sc && sc->type == VIB3_GGUF_ARRAY && sc->arr_n == n && sc->arr_type == VIB3_GGUF_F32) {
        scores = malloc(n * sizeof *scores);
        if (scores) memcpy(scores, sc->value, n * 4);
    }
    if (!e && !strcmp(model, "llama")) {
        uint32_t flags = 0;
        uint64_t v;
        if (!vib3_gguf_get_u64(g, "tokenizer.ggml.add_bos_token", &v) || v) flags |= 1u;
        if (!vib3_gguf_get_u64(g, "tokenizer.ggml.add_space_prefix", &v) || v) flags |= 2u;
        bool byte_tokens = false;
        for (uint64_t i = 0; types && i < n; i++) byte_tokens |= types[i] == 6;
        if (byte_tokens) flags |= 4u;
        uint32_t unk = VIB3_TOKEN_NONE;
        if (vib3_gguf_get_u64(g, "tokenizer.ggml.unknown_token_id", &v) && v < n) unk = (uint32_t)v;
        float *sc0 = scores ? scores : calloc(n, sizeof *sc0);
        uint32_t *ty0 = types ? types : malloc(n * sizeof *ty0);
        if (ty0 && !types)
            for (uint64_t i = 0; i < n; i++) ty0[i] = 1;
        size_t need = 0;
        if (!sc0 || !ty0) e = vib3_err_set(VIB3_ERR_NOMEM, "tokenizer");
        if (!e) {
            e = vib3_tokenizer_spm_write((uint32_t)n, texts, lens, sc0, ty0, c->cfg.bos_token_id, c->cfg.eos_token_id,
                                         unk, flags, NULL, 0, &need);
            void *out = e ? NULL : malloc(need ? need : 1);
            if (!e && !out) e = vib3_err_set(VIB3_ERR_NOMEM, "tokenizer");
            if (!e)
                e = vib3_tokenizer_spm_write((uint32_t)n, texts, lens, sc0, ty0, c->cfg.bos_token_id,
                                             c->cfg.eos_token_id, unk, flags, out, need, &need);
            if (!e) e = vib3_writer_add_section(&c->w, VIB3_SEC_TOKENIZER, VIB3_TOKENIZER_SPM, 0, out, need);
            free(out);
        }
        if (sc0 != scores) free(sc0);
        if (ty0 != types) free(ty0);
    } else if (!e && !strcmp(model, "gpt2")) {
        e = synth_bpe_json(c, g, n, texts, lens, types);
    } else if (!e) {
        if (!c->o->quiet)
            fprintf(stderr, "convert: %s: tokenizer model \"%s\" not supported; no tokenizer embedded\n",
                    c->o->model_path, model);
    }
    /* tokenizer_config.json-like TKCF and the chat template */
    if (!e) {
        sbuf b = {0};
        uint64_t v;
        sb_str(&b, "{\"source\":\"gguf\"");
        const char *keys[2] = {"bos_token", "eos_token"};
        uint32_t ids[2] = {c->cfg.bos_token_id, c->cfg.eos_token_id};
        for (int k = 0; k < 2; k++) {
            if (ids[k] >= n) continue;
            sb_str(&b, ",\"");
            sb_str(&b, keys[k]);
            sb_str(&b, "\":");
            sb_json(&b, texts[ids[k]], lens[ids[k]]);
        }
        if (vib3_gguf_get_u64(g, "tokenizer.ggml.add_bos_token", &v)) sb_str(&b, v ? ",\"add_bos_token\":true" : ",\"add_bos_token\":false");
        if (vib3_gguf_get_u64(g, "tokenizer.ggml.add_eos_token", &v)) sb_str(&b, v ? ",\"add_eos_token\":true" : ",\"add_eos_token\":false");
        sb_str(&b, "}");
        if (b.fail) e = vib3_err_set(VIB3_ERR_NOMEM, "tokenizer config");
        else e = vib3_writer_add_section(&c->w, VIB3_SEC_TOKENIZER_CONFIG, 0, 0, b.p, b.n);
        free(b.p);
    }
    const vib3_gguf_kv *ct = vib3_gguf_find(g, "tokenizer.chat_template");
    if (!e && ct && ct->type == VIB3_GGUF_STRING) {
        uint64_t len;
        memcpy(&len, ct->value, 8);
        e = vib3_writer_add_section(&c->w, VIB3_SEC_CHAT_TEMPLATE, 0, 0, ct->value + 8, len);
    }
    free(texts);
    free(lens);
    free(types);
    free(scores);
    return e;
}
