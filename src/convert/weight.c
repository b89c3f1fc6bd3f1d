/* weight.c — the logical matrices behind HF Linear weights (see cvt.h).
 *
 * Three storage kinds:
 *   plain          any source dtype; rows = product of the leading dims
 *   FP8 block      F8_E4M3 weight (rows, cols) and weight_scale_inv
 *                  (ceil(rows/128), ceil(cols/128)): w = q * s[r/128][c/128]
 *                  (DeepSeek-V3 / Kimi K2 checkpoints)
 *   packed INT4    compressed-tensors "pack-quantized", symmetric:
 *                  weight_packed I32 (rows, ceil(cols/8)): element c of a row is
 *                  bits [4*(c%8), 4*(c%8)+4) of word c/8, stored as q + 8;
 *                  weight_scale (rows, cols/group); weight_shape = [rows, cols];
 *                  w = (nibble - 8) * scale[r][c/group]  (Kimi K2-Thinking / K2.5
 *                  experts, group 32). With group 32 a row is ggml Q4_0 blocks
 *                  after re-packing the nibbles, so Q4_0 output is lossless.
 *   MLA kv_b split newer llama.cpp deepseek2 GGUFs store kv_b_proj (heads *
 *                  (qk_nope + v_head), kv_lora_rank) as attn_k_b (heads,
 *                  kv_lora_rank, qk_nope) = each head's first qk_nope rows
 *                  transposed, and attn_v_b (heads, v_head, kv_lora_rank) =
 *                  its last v_head rows, often without attn_kv_b itself; the
 *                  logical kv_b rows are read back from the two (no copy).
 * GGUF Q/K weights of llama-arch models carry qk_heads: their rows are in
 * llama.cpp's interleaved order and are read back in HF order.
 */
#include <stdio.h>
#include <string.h>

#include "convert/cvt.h"

#define FP8_BLOCK 128u

static uint64_t tensor_rows(const vib3_src_tensor *t) {
    uint64_t r = 1;
    for (uint32_t i = 0; i + 1 < t->n_dims; i++) r *= t->dims[i];
    return r;
}

static bool is_float_scale(uint32_t dt) { return dt == VIB3_S_F32 || dt == VIB3_S_BF16 || dt == VIB3_S_F16; }

vib3_err vib3_weight_find_plain(const vib3_src *s, const char *name, vib3_weight *w) {
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    const vib3_src_tensor *t = vib3_src_find(s, name);
    if (!t) return vib3_err_set(VIB3_ERR_NOT_FOUND, "tensor %s not found", name);
    if (!vib3_sdtype_is_float(t->dtype))
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: tensor %s: dtype %s is not a float type",
                            s->files[t->file].path, name, vib3_sdtype_name(t->dtype));
    w->t = t;
    w->kind = VIB3_W_PLAIN;
    w->cols = t->n_dims ? t->dims[t->n_dims - 1] : 1;
    w->rows = tensor_rows(t);
    if (vib3_sdtype_block(t->dtype) > 1 && w->cols % vib3_sdtype_block(t->dtype))
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: row of %llu is not a whole number of %s blocks",
                            s->files[t->file].path, name, (unsigned long long)w->cols, vib3_sdtype_name(t->dtype));
    return VIB3_OK;
}

/* base ends in "kv_b_proj" and base's k_b_proj / v_b_proj split exists */
static vib3_err find_mla_split(const vib3_src *s, const char *base, vib3_weight *w) {
    size_t n = strlen(base);
    static const char suffix[] = "kv_b_proj";
    if (n < sizeof suffix - 1 || strcmp(base + n - (sizeof suffix - 1), suffix)) return VIB3_ERR_NOT_FOUND;
    char kn[VIB3_SRC_NAME_MAX + 32], vn[VIB3_SRC_NAME_MAX + 32];
    int stem = (int)(n - (sizeof suffix - 1));
    snprintf(kn, sizeof kn, "%.*sk_b_proj.weight", stem, base);
    snprintf(vn, sizeof vn, "%.*sv_b_proj.weight", stem, base);
    const vib3_src_tensor *k = vib3_src_find(s, kn), *v = vib3_src_find(s, vn);
    if (!k && !v) return VIB3_ERR_NOT_FOUND;
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s.weight", base);
    const vib3_src_tensor *have = k ? k : v;
    const char *path = s->files[have->file].path;
    if (!k || !v)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: %s is there but %s is missing (MLA kv_b split in two)", path,
                            w->name, k ? kn : vn, k ? vn : kn);
    for (int i = 0; i < 2; i++) {
        const vib3_src_tensor *t = i ? v : k;
        const char *tn = i ? vn : kn;
        if (!vib3_sdtype_is_float(t->dtype) || t->n_dims != 3 || !t->dims[0] || !t->dims[1] || !t->dims[2])
            return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: expected a 3-D float tensor (heads, %s), got %s with %u dims",
                                path, tn, i ? "v_head_dim, kv_lora_rank" : "kv_lora_rank, qk_nope", vib3_sdtype_name(t->dtype),
                                t->n_dims);
    }
    /* k_b (heads, rank, nope), v_b (heads, v_head, rank) */
    if (k->dims[0] != v->dims[0] || k->dims[1] != v->dims[2] || k->dims[2] > UINT32_MAX || v->dims[1] > UINT32_MAX)
        return vib3_err_set(VIB3_ERR_FORMAT,
                            "%s: tensor %s (%llu, %llu, %llu) does not pair with %s (%llu, %llu, %llu): expected "
                            "(heads, kv_lora_rank, qk_nope) and (heads, v_head_dim, kv_lora_rank)",
                            path, kn, (unsigned long long)k->dims[0], (unsigned long long)k->dims[1],
                            (unsigned long long)k->dims[2], vn, (unsigned long long)v->dims[0],
                            (unsigned long long)v->dims[1], (unsigned long long)v->dims[2]);
    w->t = k;
    w->scale = v;
    w->kind = VIB3_W_MLA_KV_B;
    w->mla_nope = (uint32_t)k->dims[2];
    w->mla_v = (uint32_t)v->dims[1];
    w->rows = k->dims[0] * (k->dims[2] + v->dims[1]);
    w->cols = k->dims[1];
    return VIB3_OK;
}

vib3_err vib3_weight_find(const vib3_src *s, const char *base, vib3_weight *w) {
    char name[VIB3_SRC_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s.weight", base);
    const vib3_src_tensor *t = vib3_src_find(s, name);
    if (t) {
        vib3_err e = vib3_weight_find_plain(s, name, w);
        if (e) return e;
        snprintf(w->name, sizeof w->name, "%s", name);
        if (t->dtype == VIB3_S_F8_E4M3 || t->dtype == VIB3_S_F8_E5M2) {
            snprintf(name, sizeof name, "%s.weight_scale_inv", base);
            const vib3_src_tensor *sc = vib3_src_find(s, name);
            if (!sc) return VIB3_OK; /* per-tensor unscaled FP8 */
            uint64_t br = (w->rows + FP8_BLOCK - 1) / FP8_BLOCK, bc = (w->cols + FP8_BLOCK - 1) / FP8_BLOCK;
            if (!is_float_scale(sc->dtype) || sc->n_dims != 2 || sc->dims[0] != br || sc->dims[1] != bc)
                return vib3_err_set(VIB3_ERR_FORMAT,
                                    "%s: tensor %s: expected a float (%llu, %llu) block-scale tensor for "
                                    "(%llu, %llu) FP8 weights in 128x128 blocks",
                                    s->files[sc->file].path, name, (unsigned long long)br, (unsigned long long)bc,
                                    (unsigned long long)w->rows, (unsigned long long)w->cols);
            w->scale = sc;
            w->kind = VIB3_W_FP8_BLOCK;
            w->block_rows = w->block_cols = FP8_BLOCK;
        }
        return VIB3_OK;
    }
    snprintf(name, sizeof name, "%s.weight_packed", base);
    t = vib3_src_find(s, name);
    if (!t) {
        vib3_err e = find_mla_split(s, base, w);
        if (e != VIB3_ERR_NOT_FOUND) return e;
        return vib3_err_set(VIB3_ERR_NOT_FOUND, "tensor %s.weight not found", base);
    }
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    const char *path = s->files[t->file].path;
    char sname[VIB3_SRC_NAME_MAX + 32], shname[VIB3_SRC_NAME_MAX + 32];
    snprintf(sname, sizeof sname, "%s.weight_scale", base);
    snprintf(shname, sizeof shname, "%s.weight_shape", base);
    const vib3_src_tensor *sc = vib3_src_find(s, sname), *sh = vib3_src_find(s, shname);
    if (!sc || !sh) return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: missing %s or %s", path, name, sname, shname);
    if (t->dtype != VIB3_S_I32 || t->n_dims != 2)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: pack-quantized weights must be 2-D I32, got %s with %u dims",
                            path, name, vib3_sdtype_name(t->dtype), t->n_dims);
    uint64_t shape[2] = {0, 0};
    if ((sh->dtype != VIB3_S_I32 && sh->dtype != VIB3_S_I64) || sh->n_dims != 1 || sh->dims[0] != 2)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: weight_shape must be 2 integers", path, shname);
    for (int i = 0; i < 2; i++) {
        int64_t v;
        if (sh->dtype == VIB3_S_I32) {
            int32_t v32;
            memcpy(&v32, sh->data + 4 * i, 4);
            v = v32;
        } else {
            memcpy(&v, sh->data + 8 * i, 8);
        }
        if (v <= 0 || v > (int64_t)VIB3_MAX_DIM * 256)
            return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: weight_shape[%d] = %lld", path, shname, i, (long long)v);
        shape[i] = (uint64_t)v;
    }
    if (t->dims[0] != shape[0] || t->dims[1] != (shape[1] + 7) / 8)
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: packed shape (%llu, %llu) does not hold (%llu, %llu) int4",
                            path, name, (unsigned long long)t->dims[0], (unsigned long long)t->dims[1],
                            (unsigned long long)shape[0], (unsigned long long)shape[1]);
    if (!is_float_scale(sc->dtype) || sc->n_dims != 2 || sc->dims[0] != shape[0] || sc->dims[1] == 0 ||
        shape[1] % sc->dims[1])
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: scale shape does not divide the (%llu, %llu) weight into groups",
                            path, sname, (unsigned long long)shape[0], (unsigned long long)shape[1]);
    w->t = t;
    w->scale = sc;
    w->kind = VIB3_W_PACKED_INT4;
    w->rows = shape[0];
    w->cols = shape[1];
    w->group = (uint32_t)(shape[1] / sc->dims[1]);
    return VIB3_OK;
}

static float scale_at(const vib3_src_tensor *sc, uint64_t i) {
    float f;
    vib3_sdtype_decode(sc->dtype, sc->data + i * vib3_sdtype_block_bytes(sc->dtype), 1, &f);
    return f;
}

/* row index in the source tensor for logical (HF-order) row r */
static uint64_t source_row(const vib3_weight *w, uint64_t r) {
    uint32_t heads = w->t->qk_heads;
    if (!heads) return r;
    uint64_t hd = w->rows / heads; /* llama.cpp permute: src[h*hd + 2i + t] = hf[h*hd + t*hd/2 + i] */
    uint64_t h = r / hd, within = r % hd, half = hd / 2;
    uint64_t t = within / half, i = within % half;
    return h * hd + 2 * i + t;
}

/* cols [col0, col0+n) of row sr of a plain tensor whose rows hold cols elements */
static void decode_plain(const vib3_src_tensor *t, uint64_t cols, uint64_t sr, uint64_t col0, uint64_t n, float *out) {
    uint32_t blk = vib3_sdtype_block(t->dtype);
    uint64_t row_bytes = vib3_sdtype_bytes(t->dtype, cols);
    const uint8_t *p = t->data + sr * row_bytes;
    if (blk == 1) {
        vib3_sdtype_decode(t->dtype, p + col0 * vib3_sdtype_block_bytes(t->dtype), n, out);
        return;
    }
    float tmp[256];
    uint64_t c = col0, end = col0 + n;
    while (c < end) {
        uint64_t b = c / blk, in_b = c % blk;
        uint64_t take = blk - in_b < end - c ? blk - in_b : end - c;
        vib3_sdtype_decode(t->dtype, p + b * vib3_sdtype_block_bytes(t->dtype), blk, tmp);
        memcpy(out + (c - col0), tmp + in_b, take * sizeof(float));
        c += take;
    }
}

/* MLA kv_b row: head h's row j is k_b[h][:, j] (j < nope) or v_b[h][j - nope][:] */
static void decode_mla_kv_b(const vib3_weight *w, uint64_t row, uint64_t col0, uint64_t n, float *out) {
    uint64_t per = (uint64_t)w->mla_nope + w->mla_v, h = row / per, j = row % per;
    if (j >= w->mla_nope) {
        decode_plain(w->scale, w->cols, h * w->mla_v + (j - w->mla_nope), col0, n, out);
        return;
    }
    const vib3_src_tensor *k = w->t;
    uint32_t blk = vib3_sdtype_block(k->dtype), bb = vib3_sdtype_block_bytes(k->dtype);
    uint64_t krow_bytes = vib3_sdtype_bytes(k->dtype, w->mla_nope);
    float tmp[256];
    for (uint64_t i = 0; i < n; i++) { /* column j of k_b[h]: one element of each of its rows */
        const uint8_t *p = k->data + (h * w->cols + col0 + i) * krow_bytes;
        if (blk == 1) {
            vib3_sdtype_decode(k->dtype, p + j * bb, 1, out + i);
            continue;
        }
        if (k->dtype == VIB3_S_Q8_0) { /* one element of a block: d * q, as vib3_dequantize_q8_0 computes it */
            vib3_block_q8_0 b;
            memcpy(&b, p + (j / blk) * bb, sizeof b);
            out[i] = vib3_cvt_f16_to_f32(b.d) * (float)b.qs[j % blk];
            continue;
        }
        vib3_sdtype_decode(k->dtype, p + (j / blk) * bb, blk, tmp);
        out[i] = tmp[j % blk];
    }
}

void vib3_weight_row_f32(const vib3_weight *w, uint64_t row, uint64_t col0, uint64_t n, float *out) {
    const vib3_src_tensor *t = w->t;
    if (w->kind == VIB3_W_MLA_KV_B) {
        decode_mla_kv_b(w, row, col0, n, out);
        return;
    }
    if (w->kind == VIB3_W_PLAIN || w->kind == VIB3_W_FP8_BLOCK) {
        decode_plain(t, w->cols, source_row(w, row), col0, n, out);
        if (w->kind == VIB3_W_FP8_BLOCK) {
            uint64_t scols = w->scale->dims[1];
            for (uint64_t i = 0; i < n; i++) {
                uint64_t c = col0 + i;
                out[i] *= scale_at(w->scale, (row / w->block_rows) * scols + c / w->block_cols);
            }
        }
        return;
    }
    /* packed int4 */
    uint64_t words = t->dims[1];
    const uint8_t *p = t->data + row * words * 4;
    uint64_t groups = w->scale->dims[1];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t c = col0 + i;
        uint32_t word;
        memcpy(&word, p + (c / 8) * 4, 4);
        int q = (int)((word >> (4 * (c % 8))) & 0xF) - 8;
        out[i] = (float)q * scale_at(w->scale, row * groups + c / w->group);
    }
}

bool vib3_weight_native_q4_possible(const vib3_weight *w) {
    if (w->kind == VIB3_W_PLAIN) return w->t->dtype == VIB3_S_Q4_0;
    if (w->kind == VIB3_W_PACKED_INT4) return w->group == 32 && w->cols % 32 == 0;
    return false;
}

bool vib3_weight_row_native_q4(const vib3_weight *w, uint64_t row, uint64_t col0, uint64_t n, vib3_block_q4_0 *out) {
    if (!vib3_weight_native_q4_possible(w) || col0 % 32 || n % 32 || col0 + n > w->cols) return false;
    const vib3_src_tensor *t = w->t;
    if (w->kind == VIB3_W_PLAIN) {
        uint64_t sr = source_row(w, row);
        memcpy(out, t->data + (sr * (w->cols / 32) + col0 / 32) * sizeof(vib3_block_q4_0), n / 32 * sizeof *out);
        return true;
    }
    uint64_t words = t->dims[1];
    const uint8_t *p = t->data + row * words * 4;
    uint64_t groups = w->scale->dims[1];
    for (uint64_t b = 0; b < n / 32; b++) {
        uint64_t c0 = col0 + b * 32;
        float s = scale_at(w->scale, row * groups + c0 / 32);
        out[b].d = vib3_cvt_f32_to_f16(s);
        uint8_t nib[32];
        for (int k = 0; k < 4; k++) {
            uint32_t word;
            memcpy(&word, p + (c0 / 8 + (uint64_t)k) * 4, 4);
            for (int m = 0; m < 8; m++) nib[k * 8 + m] = (uint8_t)((word >> (4 * m)) & 0xF);
        }
        for (int j = 0; j < 16; j++) out[b].qs[j] = (uint8_t)(nib[j] | nib[j + 16] << 4);
    }
    return true;
}

void vib3_weight_release(const vib3_weight *w) {
    if (w->t) vib3_src_release(w->t->data, w->t->bytes);
    if (w->scale) vib3_src_release(w->scale->data, w->scale->bytes);
}

uint64_t vib3_weight_row_source_bytes(const vib3_weight *w) {
    if (!w->t) return 0;
    uint64_t rows = w->rows ? w->rows : 1;
    uint64_t b = w->t->bytes / rows + 1;
    if (w->scale) b += w->scale->bytes / rows + 1;
    return b;
}

void vib3_weight_release_rows(const vib3_weight *w, uint64_t r0, uint64_t r1) {
    if (!w->t || r1 <= r0 || r0 >= w->rows || w->kind == VIB3_W_MLA_KV_B) return;
    if (r1 > w->rows) r1 = w->rows;
    uint64_t src_rows = tensor_rows(w->t);
    if (w->kind == VIB3_W_PACKED_INT4) src_rows = w->t->dims[0];
    if (src_rows != w->rows || w->t->bytes % src_rows) return; /* not one source row per logical row: at the end */
    uint64_t rb = w->t->bytes / src_rows;
    if (w->t->qk_heads) { /* rows move only inside their head: release whole heads */
        uint64_t hd = w->rows / w->t->qk_heads;
        r0 = r0 / hd * hd;
        r1 = (r1 + hd - 1) / hd * hd;
    }
    /* pages shared with rows not yet read are dropped too: they fault back from the page cache */
    vib3_src_release(w->t->data + r0 * rb, (r1 - r0) * rb);
}
