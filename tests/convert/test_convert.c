/* test_convert.c — round trips through `vib3 convert` on the real trained
 * models (tinymix-brown, stories260K-hf) and their llama.cpp GGUFs:
 *   f32 reproduces every source weight bit for bit (tensors and pages),
 *   q4/q8 pages dequantize within the quantization error bound, our Q4_0
 *   blocks are bit-identical to llama.cpp's quantizer output, GGUF Q4_0
 *   imports losslessly, GGUF F32 imports equal the safetensors import (the
 *   llama Q/K row permutation is undone), the neuron permutation preserves
 *   the FFN function, the bundled BF16 model matches the F32 original.
 */
#include <math.h>

#include "tests/convert/common.h"

/* dir := the directory of the shared model `name` (its model.safetensors); false when absent */
static bool shared_model_dir(const char *name, char dir[1024]) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/model.safetensors", name);
    const char *m = vib3_test_model_path(rel);
    if (m) snprintf(dir, 1024, "%.*s", (int)(strrchr(m, '/') - m), m);
    return m != NULL;
}

static char out_path[1024];

static const char *tmp(const char *name) {
    snprintf(out_path, sizeof out_path, "%s/%s", vib3_test_tmpdir(), name);
    return out_path;
}

/* HF name of a canonical Mixtral/Llama tensor name */
static bool hf_of(const char *canon, char *out, size_t cap) {
    static const struct {
        const char *c, *h;
    } m[] = {{"attn_norm.weight", "input_layernorm.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
             {"attn_q.weight", "self_attn.q_proj.weight"},   {"attn_k.weight", "self_attn.k_proj.weight"},
             {"attn_v.weight", "self_attn.v_proj.weight"},   {"attn_output.weight", "self_attn.o_proj.weight"},
             {"ffn_gate_inp.weight", "block_sparse_moe.gate.weight"}};
    if (!strcmp(canon, "token_embd.weight")) return snprintf(out, cap, "model.embed_tokens.weight"), true;
    if (!strcmp(canon, "output_norm.weight")) return snprintf(out, cap, "model.norm.weight"), true;
    if (!strcmp(canon, "output.weight")) return snprintf(out, cap, "lm_head.weight"), true;
    unsigned l;
    int n = 0;
    if (sscanf(canon, "blk.%u.%n", &l, &n) != 1) return false;
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (!strcmp(canon + n, m[i].c)) return snprintf(out, cap, "model.layers.%u.%s", l, m[i].h), true;
    return false;
}

/* expert weight of a page: which 0 gate (w1), 1 up (w3), 2 down (w2) */
static const vib3_src_tensor *expert_src(const vib3_src *s, const vib3_page_entry *pe, int which, bool mixtral) {
    char name[256];
    static const char *const mx[3] = {"w1", "w3", "w2"}, *const hf[3] = {"gate_proj", "up_proj", "down_proj"};
    if (pe->kind == VIB3_PAGE_DENSE)
        snprintf(name, sizeof name, "model.layers.%u.mlp.%s.weight", pe->layer, hf[which]);
    else if (mixtral)
        snprintf(name, sizeof name, "model.layers.%u.block_sparse_moe.experts.%u.%s.weight", pe->layer, pe->expert,
                 mx[which]);
    else
        snprintf(name, sizeof name, "model.layers.%u.mlp.experts.%u.%s.weight", pe->layer, pe->expert, hf[which]);
    return vib3_src_find(s, name);
}

static bool load_src(vib3_src *s, const char *dir) {
    vib3_src_init(s);
    return vib3_st_load_dir(s, dir) == VIB3_OK && vib3_src_finish(s) == VIB3_OK;
}

/* every tensor and page of an f32 --no-permute conversion equals the F32 source */
static void check_exact(const char *model_dir, const char *vib3, bool mixtral) {
    vib3_src s;
    opened o;
    CHECK(load_src(&s, model_dir));
    CHECK_MSG(open_vib3(&o, vib3), "open %s: %s", vib3, vib3_test_errmsg());
    if (!o.ok) return;
    const vib3_file *f = &o.f;
    uint32_t hidden = f->config->hidden_size;
    for (uint32_t i = 0; i < f->n_tensors; i++) {
        const vib3_tensor_entry *t = &f->tensors[i];
        char hn[256];
        CHECK_MSG(hf_of(t->name, hn, sizeof hn), "no HF name for %s", t->name);
        const vib3_src_tensor *st = vib3_src_find(&s, hn);
        CHECK_MSG(st != NULL, "source tensor %s missing", hn);
        if (!st) continue;
        CHECK_EQ_U64(t->dtype, VIB3_DTYPE_F32);
        CHECK_EQ_U64(t->bytes, st->bytes);
        CHECK_MSG(t->bytes == st->bytes && !memcmp(f->map + t->offset, st->data, t->bytes), "tensor %s differs", t->name);
    }
    uint64_t mismatches = 0;
    for (uint64_t p = 0; p < f->n_pages; p++) {
        const vib3_page_entry *pe = &f->pages[p];
        const vib3_src_tensor *g = expert_src(&s, pe, 0, mixtral), *u = expert_src(&s, pe, 1, mixtral),
                              *d = expert_src(&s, pe, 2, mixtral);
        CHECK(g && u && d);
        if (!g || !u || !d) continue;
        uint64_t ffn = g->dims[0];
        const float *gs = (const float *)(const void *)g->data, *us = (const float *)(const void *)u->data,
                    *ds = (const float *)(const void *)d->data;
        const float *pg = (const float *)(const void *)page_data(f, p);
        uint32_t n = pe->n_neurons;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t src = pe->first_neuron + i;
            for (uint32_t c = 0; c < hidden; c++) {
                float eg = src < ffn ? gs[src * hidden + c] : 0.0f, eu = src < ffn ? us[src * hidden + c] : 0.0f;
                mismatches += pg[(uint64_t)i * hidden + c] != eg;
                mismatches += pg[((uint64_t)n + i) * hidden + c] != eu;
            }
            for (uint32_t h = 0; h < hidden; h++) {
                float ed = src < ffn ? ds[h * ffn + src] : 0.0f;
                mismatches += pg[2 * (uint64_t)n * hidden + (uint64_t)h * n + i] != ed;
            }
        }
    }
    CHECK_EQ_U64(mismatches, 0);
    close_vib3(&o);
    vib3_src_fini(&s);
}

TEST(tinymix_f32_reproduces_source) {
    char dir[1024];
    if (!shared_model_dir("tinymix-brown", dir)) SKIP("tinymix-brown not available");
    CHECK_OK(convert_to(dir, tmp("tm-f32.vib3"), VIB3_DTYPE_F32, false, 0));
    check_exact(dir, out_path, true);
    opened o;
    if (open_vib3(&o, out_path)) {
        const vib3_model_config *c = o.f.config;
        CHECK_EQ_U64(c->arch, VIB3_ARCH_MIXTRAL);
        CHECK_EQ_U64(c->n_layers, 4);
        CHECK_EQ_U64(c->n_experts, 8);
        CHECK_EQ_U64(c->n_experts_per_tok, 2);
        CHECK_EQ_U64(c->moe_ffn_size, 384);
        CHECK_EQ_U64(c->n_kv_heads, 2);
        CHECK_EQ_U64(c->head_dim, 32);
        CHECK_EQ_U64(c->bos_token_id, 1);
        CHECK_EQ_U64(c->eos_token_id, 2);
        CHECK_NEAR(c->rms_norm_eps, 1e-5, 1e-12);
        CHECK_NEAR(c->rope_theta, 10000.0, 0);
        CHECK_EQ_U64(c->router_flags, VIB3_ROUTER_SOFTMAX_TOPK);
        CHECK_EQ_U64(c->flags & (VIB3_CFG_ROPE_INTERLEAVED | VIB3_CFG_TIE_EMBEDDINGS), 0);
        CHECK_EQ_U64(c->page_neurons % 32, 0);
        CHECK(o.f.tokenizer.bytes > 100000 && o.f.tokenizer.flags == VIB3_TOKENIZER_HF_JSON);
        CHECK(o.f.tokenizer_config.bytes > 0);
        CHECK(o.f.metadata.bytes > 0 && memmem(o.f.metadata.data, o.f.metadata.bytes, "\"quant\": \"f32\"", 14));
        CHECK(o.f.sig && o.f.sig->count == o.f.n_pages && o.f.sig->dim == 192);
    }
    close_vib3(&o);
}

/* Q8_0 pages within d/2 (+ f16 rounding of d) per element; Q4_0 pages (least-squares scale
 * search) with no block's squared error above ggml's reference quantizer's for the same block */
static void check_bounds(const char *dir, const char *vib3) {
    vib3_src s;
    opened o;
    CHECK(load_src(&s, dir));
    CHECK_MSG(open_vib3(&o, vib3), "open %s: %s", vib3, vib3_test_errmsg());
    if (!o.ok) return;
    const vib3_file *f = &o.f;
    uint32_t hidden = f->config->hidden_size;
    float *row = malloc(4096 * sizeof *row), *ref = malloc(4096 * sizeof *ref);
    vib3_block_q4_0 *rb = malloc(4096 / 32 * sizeof *rb);
    double sse = 0, sse_ref = 0, sum_abs = 0, max_ratio = 0;
    uint64_t worse = 0;
    for (uint64_t p = 0; p < f->n_pages; p++) {
        const vib3_page_entry *pe = &f->pages[p];
        const vib3_src_tensor *g = expert_src(&s, pe, 0, true);
        if (!g) continue;
        const float *gs = (const float *)(const void *)g->data;
        uint64_t hr = page_hrow(f, p);
        for (uint32_t i = 0; i < pe->n_neurons; i++) {
            const float *x = gs + (uint64_t)(pe->first_neuron + i) * hidden;
            page_row(f, p, 0, i, row);
            if (pe->dtype == VIB3_DTYPE_Q4_0) {
                vib3_quantize_q4_0(x, hidden, rb);
                vib3_dequantize_q4_0(rb, hidden, ref);
                for (uint32_t b = 0; b < hidden / 32; b++) {
                    double e1 = 0, e2 = 0;
                    for (uint32_t k = b * 32; k < b * 32 + 32; k++) {
                        e1 += (row[k] - x[k]) * (double)(row[k] - x[k]);
                        e2 += (ref[k] - x[k]) * (double)(ref[k] - x[k]);
                        sum_abs += fabs(x[k]);
                    }
                    worse += e1 > e2 * (1 + 1e-5) + 1e-12;
                    sse += e1;
                    sse_ref += e2;
                }
                continue;
            }
            const uint8_t *blocks = page_data(f, p) + i * hr;
            for (uint32_t c = 0; c < hidden; c++) {
                uint16_t dbits;
                memcpy(&dbits, blocks + (c / 32) * 34, 2);
                double d = fabs(vib3_cvt_f16_to_f32(dbits)), err = fabs(row[c] - x[c]);
                if (d > 0 && err / d > max_ratio) max_ratio = err / d;
                CHECK_MSG(err <= d * 0.57 + 1e-7, "page %llu neuron %u col %u: |%g - %g| > %g", (unsigned long long)p, i,
                          c, row[c], x[c], d * 0.57);
                if (err > d * 0.57 + 1e-7) goto done;
            }
        }
    }
done:
    if (sse_ref > 0)
        fprintf(stderr, "  %s: Q4_0 squared error %.4f of ggml's reference quantizer, %llu blocks worse\n", vib3,
                sse / sse_ref, (unsigned long long)worse);
    else
        fprintf(stderr, "  %s: max error %.3f block scales\n", vib3, max_ratio);
    CHECK_EQ_U64(worse, 0);
    CHECK(sse <= sse_ref);
    free(row);
    free(ref);
    free(rb);
    close_vib3(&o);
    vib3_src_fini(&s);
}

TEST(tinymix_q4_q8_within_bounds) {
    char dir[1024];
    if (!shared_model_dir("tinymix-brown", dir)) SKIP("tinymix-brown not available");
    CHECK_OK(convert_to(dir, tmp("tm-q4.vib3"), VIB3_DTYPE_Q4_0, false, 0));
    check_bounds(dir, out_path);
    CHECK_OK(convert_to(dir, tmp("tm-q8.vib3"), VIB3_DTYPE_Q8_0, false, 0));
    check_bounds(dir, out_path);
}

/* our Q4_0 pages hold exactly the blocks llama.cpp's quantizer wrote into tinymix-q4_0.gguf */
TEST(tinymix_q4_matches_llama_cpp_quantizer) {
    const char *gq = vib3_test_model_path("tinymix-brown/gguf/tinymix-q4_0.gguf");
    char dir[1024];
    if (!shared_model_dir("tinymix-brown", dir) || !gq) SKIP("tinymix-brown not available");
    vib3_convert_opts co;
    memset(&co, 0, sizeof co);
    co.model_path = dir;
    co.output_path = tmp("tm-q4-ref.vib3");
    co.expert_dtype = VIB3_DTYPE_Q4_0;
    co.no_permute = co.no_calib = co.quiet = true;
    co.q4_ggml_ref = true;
    CHECK_OK(vib3_convert(&co));
    vib3_src g;
    vib3_src_init(&g);
    CHECK_OK(vib3_gguf_load(&g, gq));
    CHECK_OK(vib3_src_finish(&g));
    opened o;
    CHECK(open_vib3(&o, out_path));
    uint64_t rows = 0, equal = 0;
    for (uint64_t p = 0; o.ok && p < o.f.n_pages; p++) {
        const vib3_page_entry *pe = &o.f.pages[p];
        const vib3_src_tensor *t = expert_src(&g, pe, 0, false);
        if (!t || t->dtype != VIB3_S_Q4_0) continue;
        uint64_t hr = page_hrow(&o.f, p);
        for (uint32_t i = 0; i < pe->n_neurons; i++, rows++)
            equal += !memcmp(page_data(&o.f, p) + i * hr, t->data + (pe->first_neuron + i) * hr, hr);
    }
    fprintf(stderr, "  %llu of %llu gate rows bit-identical to llama.cpp's Q4_0\n", (unsigned long long)equal,
            (unsigned long long)rows);
    CHECK(rows > 0);
    CHECK_EQ_U64(equal, rows);
    close_vib3(&o);
    vib3_src_fini(&g);
}

TEST(gguf_q4_0_imports_losslessly) {
    const char *gq = vib3_test_model_path("tinymix-brown/gguf/tinymix-q4_0.gguf");
    if (!gq) SKIP("tinymix-brown gguf not available");
    CHECK_OK(convert_to(gq, tmp("g-q4.vib3"), VIB3_DTYPE_Q4_0, true, 0));
    vib3_src g;
    vib3_src_init(&g);
    CHECK_OK(vib3_gguf_load(&g, gq));
    CHECK_OK(vib3_src_finish(&g));
    opened o;
    CHECK(open_vib3(&o, out_path));
    uint64_t checked = 0, bad = 0;
    for (uint64_t p = 0; o.ok && p < o.f.n_pages; p++) {
        const vib3_page_entry *pe = &o.f.pages[p];
        uint64_t hr = page_hrow(&o.f, p), n = pe->n_neurons;
        for (int w = 0; w < 3; w++) {
            const vib3_src_tensor *t = expert_src(&g, pe, w, false);
            CHECK(t && t->dtype == VIB3_S_Q4_0);
            if (!t || t->dtype != VIB3_S_Q4_0) continue;
            if (w < 2) {
                bad += memcmp(page_data(&o.f, p) + w * n * hr, t->data + pe->first_neuron * hr, n * hr) != 0;
            } else {
                uint64_t ffn = t->dims[1], dr = vib3_dtype_row_bytes(VIB3_DTYPE_Q4_0, n),
                         sr = vib3_dtype_row_bytes(VIB3_DTYPE_Q4_0, ffn);
                for (uint32_t h = 0; h < o.f.config->hidden_size; h++)
                    bad += memcmp(page_data(&o.f, p) + 2 * n * hr + h * dr,
                                  t->data + h * sr + pe->first_neuron / 32 * sizeof(vib3_block_q4_0), dr) != 0;
            }
            checked++;
        }
    }
    CHECK(checked > 0);
    CHECK_EQ_U64(bad, 0);
    close_vib3(&o);
    vib3_src_fini(&g);
}

/* GGUF F32 (llama.cpp's converter, Q/K permuted) == safetensors F32 after import */
TEST(gguf_f32_equals_safetensors) {
    const char *gf = vib3_test_model_path("tinymix-brown/gguf/tinymix-f32.gguf");
    char dir[1024], a[1024];
    if (!shared_model_dir("tinymix-brown", dir) || !gf) SKIP("tinymix-brown not available");
    CHECK_OK(convert_to(dir, tmp("hf-f32.vib3"), VIB3_DTYPE_F32, false, 0));
    snprintf(a, sizeof a, "%s", out_path);
    CHECK_OK(convert_to(gf, tmp("gg-f32.vib3"), VIB3_DTYPE_F32, false, 0));
    opened x, y;
    CHECK(open_vib3(&x, a));
    CHECK(open_vib3(&y, out_path));
    if (x.ok && y.ok) {
        CHECK_EQ_U64(x.f.n_tensors, y.f.n_tensors);
        CHECK_EQ_U64(x.f.n_pages, y.f.n_pages);
        for (uint32_t i = 0; i < x.f.n_tensors; i++) {
            const vib3_tensor_entry *t = &x.f.tensors[i], *u = vib3_file_find_tensor(&y.f, t->name);
            CHECK_MSG(u && u->bytes == t->bytes && !memcmp(x.f.map + t->offset, y.f.map + u->offset, t->bytes),
                      "tensor %s differs between the safetensors and GGUF imports", t->name);
        }
        for (uint64_t p = 0; p < x.f.n_pages && p < y.f.n_pages; p++)
            CHECK_MSG(x.f.pages[p].checksum == y.f.pages[p].checksum, "page %llu differs", (unsigned long long)p);
        CHECK(!memcmp(x.f.config, y.f.config, offsetof(vib3_model_config, max_position)));
    }
    close_vib3(&x);
    close_vib3(&y);
}

static float silu(float v) { return v / (1.0f + expf(-v)); }

/* FFN(x) of one slot from its pages */
static void ffn_pages(const vib3_file *f, uint64_t first, uint32_t count, const float *x, float *out, float *row) {
    uint32_t hidden = f->config->hidden_size;
    memset(out, 0, hidden * sizeof *out);
    for (uint64_t p = first; p < first + count; p++) {
        uint32_t n = f->pages[p].n_neurons;
        float act[1024];
        for (uint32_t i = 0; i < n; i++) {
            double g = 0, u = 0;
            page_row(f, p, 0, i, row);
            for (uint32_t c = 0; c < hidden; c++) g += (double)row[c] * x[c];
            page_row(f, p, 1, i, row);
            for (uint32_t c = 0; c < hidden; c++) u += (double)row[c] * x[c];
            act[i] = silu((float)g) * (float)u;
        }
        for (uint32_t h = 0; h < hidden; h++) {
            page_down(f, p, h, row);
            for (uint32_t i = 0; i < n; i++) out[h] += row[i] * act[i];
        }
    }
}

TEST(permutation_preserves_function) {
    char dir[1024], a[1024];
    if (!shared_model_dir("tinymix-brown", dir)) SKIP("tinymix-brown not available");
    CHECK_OK(convert_to(dir, tmp("perm.vib3"), VIB3_DTYPE_F32, true, 64));
    snprintf(a, sizeof a, "%s", out_path);
    CHECK_OK(convert_to(dir, tmp("noperm.vib3"), VIB3_DTYPE_F32, false, 64));
    opened x, y;
    CHECK(open_vib3(&x, a));
    CHECK(open_vib3(&y, out_path));
    if (!x.ok || !y.ok) return;
    CHECK(memmem(x.f.metadata.data, x.f.metadata.bytes, "\"permuted_slots\": 32", 20) != NULL);
    uint32_t hidden = x.f.config->hidden_size;
    float xin[192], o1[192], o2[192], row[512];
    uint64_t seed = 7;
    double worst = 0;
    int differing_pages = 0;
    for (uint32_t l = 0; l < x.f.config->n_layers; l++)
        for (uint32_t e = 0; e < x.f.config->n_experts; e++) {
            uint64_t f1, f2;
            uint32_t c1, c2;
            CHECK(vib3_file_slot_pages(&x.f, l, e, &f1, &c1) && vib3_file_slot_pages(&y.f, l, e, &f2, &c2));
            for (uint32_t k = 0; k < c1; k++) differing_pages += x.f.pages[f1 + k].checksum != y.f.pages[f2 + k].checksum;
            for (uint32_t c = 0; c < hidden; c++) xin[c] = vib3_test_randf(&seed);
            ffn_pages(&x.f, f1, c1, xin, o1, row);
            ffn_pages(&y.f, f2, c2, xin, o2, row);
            double num = 0, den = 0;
            for (uint32_t c = 0; c < hidden; c++) {
                num += (o1[c] - o2[c]) * (double)(o1[c] - o2[c]);
                den += (double)o2[c] * o2[c];
            }
            double rel = sqrt(num / (den + 1e-30));
            if (rel > worst) worst = rel;
        }
    fprintf(stderr, "  permuted vs source order: worst relative FFN difference %.2e, %d pages reordered\n", worst,
            differing_pages);
    CHECK(worst < 1e-5);
    CHECK(differing_pages > 0);
    close_vib3(&x);
    close_vib3(&y);
}

TEST(stories260k_dense_llama_with_spm_tokenizer) {
    char dir[1024];
    if (!shared_model_dir("stories260K-hf", dir)) SKIP("stories260K-hf not available");
    CHECK_OK(convert_to(dir, tmp("st-f32.vib3"), VIB3_DTYPE_F32, false, 0));
    check_exact(dir, out_path, false);
    opened o;
    if (open_vib3(&o, out_path)) {
        const vib3_model_config *c = o.f.config;
        CHECK_EQ_U64(c->arch, VIB3_ARCH_LLAMA);
        CHECK_EQ_U64(c->ffn_size, 172);
        CHECK_EQ_U64(c->n_experts, 0);
        CHECK(c->flags & VIB3_CFG_TIE_EMBEDDINGS);
        CHECK(vib3_file_find_tensor(&o.f, "output.weight") == NULL);
        CHECK_EQ_U64(o.f.tokenizer.flags, VIB3_TOKENIZER_SPM);
        const vib3_spm_header *h = (const vib3_spm_header *)(const void *)o.f.tokenizer.data;
        CHECK(o.f.tokenizer.bytes > sizeof *h && h->n_tokens == 512);
        /* padded neurons 172..191 are zero rows and columns */
        uint64_t first;
        uint32_t count;
        CHECK(vib3_file_slot_pages(&o.f, 0, 0, &first, &count));
        uint32_t total = 0;
        for (uint32_t k = 0; k < count; k++) total += o.f.pages[first + k].n_neurons;
        CHECK_EQ_U64(total, 192);
    }
    close_vib3(&o);
    CHECK_OK(convert_to(dir, tmp("st-q4.vib3"), VIB3_DTYPE_Q4_0, true, 0));
    CHECK(open_vib3(&o, out_path));
    close_vib3(&o);
}

TEST(bundled_bf16_model_matches_f32_original) {
    char dir[1024];
    if (!shared_model_dir("tinymix-brown", dir)) SKIP("tinymix-brown not available");
    if (!file_exists("models/tinymix-brown/model.safetensors")) SKIP("run from the repository root");
    CHECK_OK(convert_to("models/tinymix-brown", tmp("bundled.vib3"), VIB3_DTYPE_F32, false, 0));
    vib3_src s;
    CHECK(load_src(&s, "models/tinymix-brown"));
    const vib3_src_tensor *t = vib3_src_find(&s, "model.embed_tokens.weight");
    CHECK(t && t->dtype == VIB3_S_BF16);
    opened o;
    CHECK(open_vib3(&o, out_path));
    vib3_src f32;
    CHECK(load_src(&f32, dir));
    const vib3_tensor_entry *te = o.ok ? vib3_file_find_tensor(&o.f, "token_embd.weight") : NULL;
    const vib3_src_tensor *ref = vib3_src_find(&f32, "model.embed_tokens.weight");
    CHECK(te && ref && te->bytes == ref->bytes);
    if (te && ref && te->bytes == ref->bytes) {
        const float *a = (const float *)(const void *)(o.f.map + te->offset), *b = (const float *)(const void *)ref->data;
        uint64_t bad = 0;
        for (uint64_t i = 0; i < te->bytes / 4; i++) bad += fabsf(a[i] - b[i]) > fabsf(b[i]) * (1.0f / 256) + 1e-30f;
        CHECK_EQ_U64(bad, 0);
    }
    close_vib3(&o);
    vib3_src_fini(&s);
    vib3_src_fini(&f32);
}

/* calibration: COAC counts are consistent, signatures rank pages far better than chance */
TEST(calibration_coact_and_signature_recall) {
    char dir[1024];
    if (!shared_model_dir("tinymix-brown", dir)) SKIP("tinymix-brown not available");
    if (!file_exists("models/calib/default.txt")) SKIP("run from the repository root");
    vib3_convert_opts o;
    memset(&o, 0, sizeof o);
    o.model_path = dir;
    o.output_path = tmp("tm-calib.vib3");
    o.expert_dtype = VIB3_DTYPE_Q4_0;
    o.page_neurons = 32;
    o.calib_path = "models/calib/default.txt";
    o.calib_tokens = 1024;
    o.quiet = true;
    o.threads = 2;
    vib3_convert_stats st;
    CHECK_OK(vib3_convert_ex(&o, &st));
    fprintf(stderr, "  %llu calibration tokens: signature recall@10%% %.3f (random %.3f), @25%% %.3f, top 10%% pages hold %.1f%%\n",
            (unsigned long long)st.calib_tokens, st.sig_recall_10, st.sig_recall_10_random, st.sig_recall_25,
            st.act_mass_top10 * 100);
    CHECK(st.calib_tokens >= 1000 && st.calib_tokens <= 1024);
    CHECK(st.sig_recall_10 > 3 * st.sig_recall_10_random);
    opened f;
    CHECK(open_vib3(&f, out_path));
    if (f.ok) {
        CHECK(f.f.coact != NULL);
        if (f.f.coact) {
            uint32_t L = f.f.coact->n_layers, E = f.f.coact->n_experts;
            CHECK_EQ_U64(L, 4);
            CHECK_EQ_U64(E, 8);
            CHECK_EQ_U64(f.f.coact->n_tokens, st.calib_tokens);
            for (uint32_t l = 0; l < L; l++) {
                uint64_t sum = 0;
                for (uint32_t e = 0; e < E; e++) sum += f.f.coact_freq[l * E + e];
                CHECK_EQ_U64(sum, 2 * st.calib_tokens); /* top-2 */
            }
            for (uint32_t l = 0; l + 1 < L; l++) {
                uint64_t sum = 0;
                for (uint32_t i = 0; i < E * E; i++) sum += f.f.coact_trans[(size_t)l * E * E + i];
                CHECK_EQ_U64(sum, 4 * st.calib_tokens); /* 2 x 2 pairs per token */
            }
        }
        CHECK(memmem(f.f.metadata.data, f.f.metadata.bytes, "co-firing", 9) != NULL);
    }
    close_vib3(&f);
}

/* end to end: the engine on our f32 conversion reproduces reference.json's first prompt
 * (greedy ids from torch, F32), and the default q4 conversion's agreement is reported */
#include "core/config.h"
#include "runtime/engine.h"

static int greedy_agree(const char *vib3, const uint32_t *prompt, uint32_t n_prompt, const uint32_t *want,
                        uint32_t n_want) {
    vib3_engine *e;
    if (open_engine(&e, vib3, 256)) return -1;
    vib3_seq *s;
    int agree = -1;
    if (!vib3_seq_acquire(e, &s) && !vib3_seq_prefill(s, prompt, n_prompt, NULL)) {
        agree = 0;
        for (uint32_t i = 0; i < n_want; i++) {
            uint32_t t = vib3_argmax(vib3_seq_logits(s), vib3_engine_vocab(e));
            if (t != want[i]) break;
            agree++;
            if (vib3_seq_decode(s, t)) break;
        }
        vib3_seq_release(s);
    }
    vib3_engine_close(e);
    return agree;
}

TEST(engine_reproduces_reference_greedy) {
    char dir[1024], f32[1100];
    if (!shared_model_dir("tinymix-brown", dir)) SKIP("tinymix-brown not available");
    /* reference.json prompts[0]: "In the beginning God created" */
    static const uint32_t prompt[] = {1, 676, 262, 2363, 496, 3813};
    static const uint32_t want[] = {262, 2829, 271, 496, 47,  274, 262, 2829, 271, 496, 47,  274, 262, 1687, 271, 262,
                                    425, 47,   274, 262, 1687, 271, 262, 425,  47,  274, 262, 1687, 271, 262, 425, 47};
    CHECK_OK(convert_to(dir, tmp("e2e-f32.vib3"), VIB3_DTYPE_F32, true, 0));
    snprintf(f32, sizeof f32, "%s", out_path);
    int a = greedy_agree(f32, prompt, 6, want, 32);
    CHECK_MSG(a == 32, "f32 conversion: %d of 32 greedy tokens match reference.json (%s)", a, vib3_test_errmsg());
    CHECK_OK(convert_to(dir, tmp("e2e-q4.vib3"), VIB3_DTYPE_Q4_0, true, 0));
    int b = greedy_agree(out_path, prompt, 6, want, 32);
    fprintf(stderr, "  greedy prefix agreement with reference.json: f32 %d/32, q4 %d/32\n", a, b);
    CHECK(b >= 0);
}

/* the default INT4 (--quant q4): Q4_K16 pages, layer 0 in Q8_0 pages no larger than the Q4_K16
 * ones (--q8-layers 1), every page within Q4_K16's / Q8_0's error of the source; --q8-layers 0: none */
static void check_default_int4(const char *dir, const char *path, uint32_t q8_layers) {
    vib3_src s;
    opened o;
    CHECK(load_src(&s, dir));
    CHECK_MSG(open_vib3(&o, path), "open %s: %s", path, vib3_test_errmsg());
    if (!o.ok) return;
    const vib3_file *f = &o.f;
    uint32_t hidden = f->config->hidden_size;
    CHECK_EQ_U64(f->config->expert_dtype, VIB3_DTYPE_Q4_K16);
    uint64_t max_q4 = 0, max_q8 = 0, n_q8 = 0;
    double e4 = 0, s4 = 0, e8 = 0, s8 = 0;
    float row[4096];
    for (uint64_t p = 0; p < f->n_pages; p++) {
        const vib3_page_entry *pe = &f->pages[p];
        bool q8 = pe->layer < q8_layers;
        CHECK_MSG(pe->dtype == (q8 ? VIB3_DTYPE_Q8_0 : VIB3_DTYPE_Q4_K16), "page %llu layer %u dtype %s",
                  (unsigned long long)p, pe->layer, vib3_dtype_name((vib3_dtype)pe->dtype));
        if (q8) max_q8 = pe->bytes > max_q8 ? pe->bytes : max_q8, n_q8++;
        else max_q4 = pe->bytes > max_q4 ? pe->bytes : max_q4;
        const vib3_src_tensor *g = expert_src(&s, pe, 0, true);
        if (!g) continue;
        for (uint32_t i = 0; i < pe->n_neurons; i++) {
            const float *x = (const float *)(const void *)g->data + (uint64_t)(pe->first_neuron + i) * hidden;
            page_row(f, p, 0, i, row);
            for (uint32_t c = 0; c < hidden; c++) {
                double d = (double)row[c] - x[c];
                if (q8) e8 += d * d, s8 += (double)x[c] * x[c];
                else e4 += d * d, s4 += (double)x[c] * x[c];
            }
        }
    }
    CHECK(max_q8 <= max_q4);
    CHECK(q8_layers == 0 ? n_q8 == 0 : n_q8 > 0);
    /* measured on tinymix-brown: 0.056 relative RMS error of the Q4_K16 gate rows (Q4_0: ~0.08) */
    CHECK_MSG(s4 > 0 && sqrt(e4 / s4) < 0.065, "Q4_K16 gate rows: relative RMS error %.4f", s4 > 0 ? sqrt(e4 / s4) : -1);
    if (n_q8) CHECK_MSG(sqrt(e8 / s8) < 0.01, "Q8_0 gate rows: relative RMS error %.4f", sqrt(e8 / s8));
    fprintf(stderr, "  %s: Q4_K16 rel. RMS %.4f, %llu Q8_0 pages%s\n", path, s4 > 0 ? sqrt(e4 / s4) : 0.0,
            (unsigned long long)n_q8, n_q8 ? "" : "");
    close_vib3(&o);
    vib3_src_fini(&s);
}

TEST(tinymix_default_int4_layout) {
    char dir[1024];
    if (!shared_model_dir("tinymix-brown", dir)) SKIP("tinymix-brown not available");
    CHECK_OK(convert_to(dir, tmp("tm-int4.vib3"), -1, false, 0));
    check_default_int4(dir, out_path, 1);
    vib3_convert_opts o;
    memset(&o, 0, sizeof o);
    o.model_path = dir;
    o.output_path = tmp("tm-int4-noq8.vib3");
    o.expert_dtype = -1;
    o.no_permute = true;
    o.quiet = true;
    o.no_calib = true;
    o.threads = 2;
    o.q8_layers_set = true; /* --q8-layers 0 */
    CHECK_OK(vib3_convert(&o));
    check_default_int4(dir, out_path, 0);
}
