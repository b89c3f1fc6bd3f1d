/* convert.c — HF safetensors directory or GGUF file -> one .vib3 file.
 *
 * Order of work (one pass over the source, streaming):
 *   1. read config.json (or GGUF metadata) into a vib3_model_config; map
 *      every source file and validate every tensor header;
 *   2. choose the page dtype (--quant), the dense dtype (Q8_0 for q4/q8, the
 *      same precision for f16/f32) and K (page_neurons, see pages.c);
 *   3. write token_embd, then per layer its attention tensors, norms, router
 *      and FFN slots (dense FFN, routed experts, shared expert) as pages,
 *      then output_norm / output; each source weight's mapped pages are
 *      released from our RSS right after use;
 *   4. append SIGS, tokenizer (TOKN/TKCF/CHAT) and META; finish() renames
 *      the temp file into place. Any error aborts the writer: no output.
 *
 * Memory: the largest buffer is one FFN slot's pages in the output dtype (or
 * a chunk of them under the budget) plus one chunk of a dense tensor's rows
 * (dense.c streams them to the writer); F32 scratch is one row per worker.
 */
#include "convert/convert.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "convert/cvt.h"
#include "convert/index.h"
#include "convert/internal.h"
#include "convert/probe.h"
#include "core/json.h"
#include "format/writer.h"
#include "runtime/engine.h"

/* ---- small helpers ------------------------------------------------------- */
double vib3_cvt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void vib3_cvt_progress(vib3_cvt *c, const char *what, bool force) {
    if (!c->o->progress || c->o->quiet) return;
    double now = vib3_cvt_now();
    if (!force && now - c->last_progress < (c->tty ? 0.2 : 5.0)) return;
    c->last_progress = now;
    double el = now - c->t0;
    double frac = c->bytes_total ? (double)c->bytes_done / (double)c->bytes_total : 1.0;
    if (frac > 1) frac = 1;
    double mbs = el > 0 ? (double)c->bytes_done / 1e6 / el : 0;
    double eta = frac > 0.001 && frac < 1 ? el * (1 - frac) / frac : 0;
    if (c->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %5.1f%%  %7.1f MB/s  ETA %4.0fs  %-28.28s", bar, frac * 100, mbs, eta, what);
        if (force) fputc('\n', stderr);
    } else {
        fprintf(stderr, "convert: %5.1f%%  %.1f MB/s  %.0fs elapsed  %s\n", frac * 100, mbs, el, what);
    }
    fflush(stderr);
}

static void done_bytes(vib3_cvt *c, const vib3_weight *w, const char *what) {
    if (w->t) c->bytes_done += w->t->bytes;
    if (w->scale) c->bytes_done += w->scale->bytes;
    vib3_weight_release(w);
    vib3_cvt_progress(c, what, false);
}

/* HF name: prefix + formatted */
static const char *hfn(vib3_cvt *c, char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static const char *hfn(vib3_cvt *c, char *buf, size_t cap, const char *fmt, ...) {
    int n = snprintf(buf, cap, "%s", c->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

static vib3_err shape_error(vib3_cvt *c, const vib3_weight *w, uint64_t rows, uint64_t cols) {
    const char *file = w->t ? c->src.files[w->t->file].path : c->o->model_path;
    return vib3_err_set(VIB3_ERR_FORMAT, "%s: tensor %s: shape mismatch: (%llu, %llu) but the config implies (%llu, %llu)",
                        file, w->name, (unsigned long long)w->rows, (unsigned long long)w->cols,
                        (unsigned long long)rows, (unsigned long long)cols);
}

static vib3_err find_matrix(vib3_cvt *c, const char *base, uint64_t rows, uint64_t cols, vib3_weight *w) {
    vib3_err e = vib3_weight_find(&c->src, base, w);
    if (e) return e == VIB3_ERR_NOT_FOUND ? vib3_err_prefix("%s", c->o->model_path) : e;
    if (w->rows != rows || w->cols != cols) return shape_error(c, w, rows, cols);
    return VIB3_OK;
}

/* ---- dense tensors ------------------------------------------------------- */
/* write w as canonical tensor `name` in dtype dt (vectors: dims = [cols]); dense.c streams it in row chunks */
static vib3_err put_tensor(vib3_cvt *c, const vib3_weight *w, const char *name, vib3_dtype dt, bool vector) {
    vib3_err e = vib3_cvt_put_dense(c, w, name, dt, vector);
    done_bytes(c, w, name);
    return e;
}

static vib3_err put_matrix(vib3_cvt *c, const char *base, const char *name, uint64_t rows, uint64_t cols, vib3_dtype dt) {
    vib3_weight w;
    vib3_err e = find_matrix(c, base, rows, cols, &w);
    if (e) return e;
    return put_tensor(c, &w, name, dt, false);
}

/* 1-D tensor kept F32; optional ones return OK when absent */
static vib3_err put_vector(vib3_cvt *c, const char *hfname, const char *name, uint64_t n, bool required) {
    vib3_weight w;
    vib3_err e = vib3_weight_find_plain(&c->src, hfname, &w);
    if (e == VIB3_ERR_NOT_FOUND && !required) {
        vib3_err_clear();
        return VIB3_OK;
    }
    if (e) return e == VIB3_ERR_NOT_FOUND ? vib3_err_prefix("%s", c->o->model_path) : e;
    if (w.rows * w.cols != n) return shape_error(c, &w, 1, n);
    w.cols = n;
    w.rows = 1;
    return put_tensor(c, &w, name, VIB3_DTYPE_F32, true);
}

/* ---- per layer ----------------------------------------------------------- */
static vib3_err put_attention(vib3_cvt *c, uint32_t l) {
    const vib3_model_config *m = &c->cfg;
    char hb[VIB3_SRC_NAME_MAX], nb[VIB3_TENSOR_NAME_BYTES];
    vib3_err e;
    uint64_t h = m->hidden_size;
    vib3_dtype dd = c->dense_dt;
#define HF(...) hfn(c, hb, sizeof hb, __VA_ARGS__)
#define NM(...) (snprintf(nb, sizeof nb, __VA_ARGS__), nb)
    if ((e = put_vector(c, HF("model.layers.%u.input_layernorm.weight", l), NM("blk.%u.attn_norm.weight", l), h, true)))
        return e;
    if (m->arch == VIB3_ARCH_DEEPSEEK_V3) {
        uint64_t qk = m->qk_nope_head_dim + m->qk_rope_head_dim;
        if (m->q_lora_rank) {
            if ((e = put_matrix(c, HF("model.layers.%u.self_attn.q_a_proj", l), NM("blk.%u.attn_q_a.weight", l),
                                m->q_lora_rank, h, dd)) ||
                (e = put_vector(c, HF("model.layers.%u.self_attn.q_a_layernorm.weight", l),
                                NM("blk.%u.attn_q_a_norm.weight", l), m->q_lora_rank, true)) ||
                (e = put_matrix(c, HF("model.layers.%u.self_attn.q_b_proj", l), NM("blk.%u.attn_q_b.weight", l),
                                m->n_heads * qk, m->q_lora_rank, dd)))
                return e;
        } else if ((e = put_matrix(c, HF("model.layers.%u.self_attn.q_proj", l), NM("blk.%u.attn_q.weight", l),
                                   m->n_heads * qk, h, dd))) {
            return e;
        }
        if ((e = put_matrix(c, HF("model.layers.%u.self_attn.kv_a_proj_with_mqa", l), NM("blk.%u.attn_kv_a_mqa.weight", l),
                            m->kv_lora_rank + m->qk_rope_head_dim, h, dd)) ||
            (e = put_vector(c, HF("model.layers.%u.self_attn.kv_a_layernorm.weight", l),
                            NM("blk.%u.attn_kv_a_norm.weight", l), m->kv_lora_rank, true)) ||
            (e = put_matrix(c, HF("model.layers.%u.self_attn.kv_b_proj", l), NM("blk.%u.attn_kv_b.weight", l),
                            (uint64_t)m->n_heads * (m->qk_nope_head_dim + m->v_head_dim), m->kv_lora_rank, dd)))
            return e;
    } else {
        uint64_t qd = (uint64_t)m->n_heads * m->head_dim, kd = (uint64_t)m->n_kv_heads * m->head_dim,
                 vd = (uint64_t)m->n_kv_heads * m->v_head_dim;
        if ((e = put_matrix(c, HF("model.layers.%u.self_attn.q_proj", l), NM("blk.%u.attn_q.weight", l), qd, h, dd)) ||
            (e = put_matrix(c, HF("model.layers.%u.self_attn.k_proj", l), NM("blk.%u.attn_k.weight", l), kd, h, dd)) ||
            (e = put_matrix(c, HF("model.layers.%u.self_attn.v_proj", l), NM("blk.%u.attn_v.weight", l), vd, h, dd)))
            return e;
        bool bias = m->flags & VIB3_CFG_QKV_BIAS;
        if ((e = put_vector(c, HF("model.layers.%u.self_attn.q_proj.bias", l), NM("blk.%u.attn_q.bias", l), qd, bias)) ||
            (e = put_vector(c, HF("model.layers.%u.self_attn.k_proj.bias", l), NM("blk.%u.attn_k.bias", l), kd, bias)) ||
            (e = put_vector(c, HF("model.layers.%u.self_attn.v_proj.bias", l), NM("blk.%u.attn_v.bias", l), vd, bias)))
            return e;
        if (m->flags & VIB3_CFG_QK_NORM) {
            if ((e = put_vector(c, HF("model.layers.%u.self_attn.q_norm.weight", l), NM("blk.%u.attn_q_norm.weight", l),
                                m->head_dim, true)) ||
                (e = put_vector(c, HF("model.layers.%u.self_attn.k_norm.weight", l), NM("blk.%u.attn_k_norm.weight", l),
                                m->head_dim, true)))
                return e;
        }
    }
    uint64_t od = (uint64_t)m->n_heads * m->v_head_dim;
    if ((e = put_matrix(c, HF("model.layers.%u.self_attn.o_proj", l), NM("blk.%u.attn_output.weight", l), h, od, dd)))
        return e;
    return put_vector(c, HF("model.layers.%u.post_attention_layernorm.weight", l), NM("blk.%u.ffn_norm.weight", l), h,
                      true);
}

static vib3_err put_ffn(vib3_cvt *c, uint32_t l) {
    const vib3_model_config *m = &c->cfg;
    char hb[VIB3_SRC_NAME_MAX], nb[VIB3_TENSOR_NAME_BYTES], g[VIB3_SRC_NAME_MAX], u[VIB3_SRC_NAME_MAX],
        d[VIB3_SRC_NAME_MAX];
    vib3_err e;
    uint64_t h = m->hidden_size;
    bool moe = m->n_experts > 0 && l >= m->first_k_dense;
    if (!moe) {
        hfn(c, g, sizeof g, "model.layers.%u.mlp.gate_proj", l);
        hfn(c, u, sizeof u, "model.layers.%u.mlp.up_proj", l);
        hfn(c, d, sizeof d, "model.layers.%u.mlp.down_proj", l);
        return vib3_cvt_put_slot(c, l, VIB3_PAGE_DENSE, 0, m->ffn_size, g, u, d);
    }
    /* router (kept F32: routing decisions are sensitive, the tensor is tiny) */
    const char *router = c->hf.mixtral_names ? "block_sparse_moe.gate" : "mlp.gate";
    if ((e = put_matrix(c, HF("model.layers.%u.%s", l, router), NM("blk.%u.ffn_gate_inp.weight", l), m->n_experts, h,
                        VIB3_DTYPE_F32)))
        return e;
    if (m->router_flags & VIB3_ROUTER_CORRECTION_BIAS) {
        if ((e = put_vector(c, HF("model.layers.%u.mlp.gate.e_score_correction_bias", l), NM("blk.%u.exp_probs_b.bias", l),
                            m->n_experts, true)))
            return e;
    }
    for (uint32_t x = 0; x < m->n_experts; x++) {
        if (c->hf.mixtral_names) {
            hfn(c, g, sizeof g, "model.layers.%u.block_sparse_moe.experts.%u.w1", l, x);
            hfn(c, u, sizeof u, "model.layers.%u.block_sparse_moe.experts.%u.w3", l, x);
            hfn(c, d, sizeof d, "model.layers.%u.block_sparse_moe.experts.%u.w2", l, x);
        } else {
            hfn(c, g, sizeof g, "model.layers.%u.mlp.experts.%u.gate_proj", l, x);
            hfn(c, u, sizeof u, "model.layers.%u.mlp.experts.%u.up_proj", l, x);
            hfn(c, d, sizeof d, "model.layers.%u.mlp.experts.%u.down_proj", l, x);
        }
        if ((e = vib3_cvt_put_slot(c, l, VIB3_PAGE_ROUTED, x, m->moe_ffn_size, g, u, d))) return e;
    }
    if (m->n_shared_experts) {
        const char *sh = c->hf.deepseek_shared ? "shared_experts" : "shared_expert";
        hfn(c, g, sizeof g, "model.layers.%u.mlp.%s.gate_proj", l, sh);
        hfn(c, u, sizeof u, "model.layers.%u.mlp.%s.up_proj", l, sh);
        hfn(c, d, sizeof d, "model.layers.%u.mlp.%s.down_proj", l, sh);
        if ((e = vib3_cvt_put_slot(c, l, VIB3_PAGE_SHARED, 0, m->shared_ffn_size, g, u, d))) return e;
        if (c->hf.shared_gate &&
            (e = put_matrix(c, HF("model.layers.%u.mlp.shared_expert_gate", l), NM("blk.%u.ffn_gate_inp_shexp.weight", l),
                            1, h, VIB3_DTYPE_F32)))
            return e;
    }
    return VIB3_OK;
#undef HF
#undef NM
}

/* ---- source discovery ----------------------------------------------------- */
static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* read a whole small file (<= cap bytes) into a malloc'd NUL-terminated buffer; NULL when absent */
char *vib3_cvt_read_file(const char *path, size_t cap, size_t *len, vib3_err *err) {
    *err = VIB3_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        *err = vib3_err_set(VIB3_ERR_IO, "%s: cannot seek", path);
        return NULL;
    }
    long n = ftell(f);
    if (n < 0 || (size_t)n > cap) {
        fclose(f);
        *err = vib3_err_set(VIB3_ERR_LIMIT, "%s: %ld bytes is over the limit of %zu", path, n, cap);
        return NULL;
    }
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        *err = vib3_err_set(VIB3_ERR_IO, "%s: read failed", path);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* with model.safetensors.index.json, every tensor of its weight_map must have been found */
static vib3_err check_index(vib3_cvt *c, const char *dir) {
    char path[2048];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    size_t len;
    vib3_err e;
    char *text = vib3_cvt_read_file(path, 256u << 20, &len, &e);
    if (!text) return e;
    vib3_arena a;
    if ((e = vib3_arena_init(&a, (len / 2 + 64) * sizeof(jsmntok_t) + 65536, "index.json", 0))) {
        free(text);
        return e;
    }
    vib3_json j;
    e = vib3_json_parse(&j, text, len, &a, 0, path);
    int wm = e ? -1 : vib3_json_get(&j, 0, "weight_map");
    if (!e && !vib3_json_is(&j, wm, JSMN_OBJECT)) e = vib3_err_set(VIB3_ERR_FORMAT, "%s: no \"weight_map\" object", path);
    for (int i = 0, k = wm + 1; !e && i < vib3_json_size(&j, wm); i++) {
        char name[VIB3_SRC_NAME_MAX], file[512];
        if (vib3_json_str(&j, k, name, sizeof name) < 0 || vib3_json_str(&j, k + 1, file, sizeof file) < 0) {
            e = vib3_err_set(VIB3_ERR_FORMAT, "%s: weight_map entry %d is not a pair of strings", path, i);
            break;
        }
        if (!vib3_src_find(&c->src, name))
            e = vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: tensor %s is listed in shard %s, which is missing or lacks it",
                             path, name, file);
        k = vib3_json_next(&j, k + 1);
    }
    vib3_arena_fini(&a);
    free(text);
    return e;
}

static vib3_err open_hf(vib3_cvt *c, const char *dir) {
    char path[2048];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    vib3_err e;
    char *text = vib3_cvt_read_file(path, 16u << 20, &len, &e);
    if (!text) return e ? e : vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: missing (not a Hugging Face model directory?)", path);
    e = vib3_hf_config_parse(text, len, path, &c->hf);
    free(text);
    if (e) return e;
    if ((e = vib3_st_load_dir(&c->src, dir)) || (e = vib3_src_finish(&c->src)) || (e = check_index(c, dir))) return e;
    /* tensor name prefix: plain, or the text model of a multimodal checkpoint */
    static const char *const prefixes[] = {"", "language_model.", "model.language_model."};
    c->prefix[0] = 0;
    bool found = false;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0] && !found; i++) {
        char name[VIB3_SRC_NAME_MAX];
        snprintf(name, sizeof name, "%smodel.embed_tokens.weight", prefixes[i]);
        if (vib3_src_find(&c->src, name)) {
            snprintf(c->prefix, sizeof c->prefix, "%s", prefixes[i]);
            found = true;
        }
    }
    if (!found) return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: tensor model.embed_tokens.weight not found in any shard", dir);
    snprintf(c->source_format, sizeof c->source_format, "safetensors");
    return VIB3_OK;
}

/* ---- driver --------------------------------------------------------------- */
/* true when the source's FFN / expert weights are Q4_0 blocks already (see vib3_weight_native_q4_possible) */
static bool source_native_q4(const vib3_cvt *c) {
    if (c->hf.quant_method[0] && c->hf.pack_group == 32) return true;
    for (uint32_t i = 0; i < c->src.n_tensors; i++) {
        const vib3_src_tensor *t = &c->src.tensors[i];
        if (t->dtype == VIB3_S_Q4_0 && (strstr(t->name, "ffn_") || strstr(t->name, "mlp."))) return true;
    }
    return false;
}


static vib3_err run(vib3_cvt *c) {
    const vib3_convert_opts *o = c->o;
    vib3_err e;
    if (!o->model_path || !o->output_path) return vib3_err_set(VIB3_ERR_INVALID, "convert: model and output paths needed");
    if (is_dir(o->model_path)) {
        e = open_hf(c, o->model_path);
    } else {
        e = vib3_gguf_load(&c->src, o->model_path);
        if (!e) e = vib3_src_finish(&c->src);
        if (!e) e = vib3_gguf_model(&c->src, o->model_path, &c->hf);
        snprintf(c->source_format, sizeof c->source_format, "gguf");
    }
    if (e) return e;
    c->cfg = c->hf.cfg;
    vib3_model_config *m = &c->cfg;
    /* default INT4 (--quant q4): Q4_K16, except sources whose FFN weights already are Q4_0 blocks
     * (GGUF Q4_0, compressed-tensors int4 with groups of 32), which stay Q4_0: lossless import */
    c->expert_dt = o->expert_dtype >= 0 ? (vib3_dtype)o->expert_dtype
                   : source_native_q4(c) ? VIB3_DTYPE_Q4_0
                                         : VIB3_DTYPE_Q4_K16;
    if (c->expert_dt == VIB3_DTYPE_BF16 || c->expert_dt >= VIB3_DTYPE_COUNT_)
        return vib3_err_set(VIB3_ERR_INVALID, "convert: --quant %s is not supported (q4, q4_k16, q4_0, q8, f16, f32)",
                            vib3_dtype_name(c->expert_dt));
    bool int4 = c->expert_dt == VIB3_DTYPE_Q4_0 || c->expert_dt == VIB3_DTYPE_Q4_K16;
    c->q8_layers = o->q8_layers_set ? o->q8_layers : 1;
    c->dense_dt = o->dense_f16 && (int4 || c->expert_dt == VIB3_DTYPE_Q8_0) ? VIB3_DTYPE_F16
                  : int4 ? (o->dense_q4 ? VIB3_DTYPE_Q4_0 : VIB3_DTYPE_Q8_0)
                         : c->expert_dt;
    if ((int4 || c->expert_dt == VIB3_DTYPE_Q8_0) && m->hidden_size % VIB3_QBLOCK)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED,
                            "%s: hidden_size %u is not a multiple of 32: quantized pages need whole blocks (use --quant f16)",
                            o->model_path, m->hidden_size);
    /* tied embeddings: no lm_head in the source */
    char name[VIB3_SRC_NAME_MAX];
    hfn(c, name, sizeof name, "lm_head.weight");
    bool have_head = vib3_src_find(&c->src, name) != NULL;
    if (!have_head) m->flags |= VIB3_CFG_TIE_EMBEDDINGS;
    if ((e = vib3_cvt_choose_k(c))) return e;
    m->expert_dtype = c->expert_dt;
    m->dense_dtype = c->dense_dt;
    m->page_neurons = c->K;
    m->sig_dim = o->no_index ? 0 : m->hidden_size;
    c->bytes_total = c->src.source_bytes;
    if (!o->quiet && c->hf.has_vision)
        fprintf(stderr, "convert: %s: the vision tower is skipped; converting the language model only\n", o->model_path);
    /* scratch: one row of the widest matrix per worker */
    uint64_t widest = m->hidden_size;
    uint64_t dims[] = {m->vocab_size, m->ffn_size, m->moe_ffn_size, m->shared_ffn_size, (uint64_t)m->n_heads * m->head_dim,
                       (uint64_t)m->n_heads * (m->v_head_dim + m->qk_nope_head_dim), m->kv_lora_rank + 64u,
                       m->q_lora_rank};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i] + 64 > widest) widest = dims[i] + 64;
    c->scratch_floats = widest + 256;
    uint32_t nt = vib3_par_threads(c->par);
    c->scratch = calloc(nt, sizeof *c->scratch);
    if (!c->scratch) return vib3_err_set(VIB3_ERR_NOMEM, "scratch");
    for (uint32_t i = 0; i < nt; i++) {
        c->scratch[i] = malloc(c->scratch_floats * 3 * sizeof(float));
        if (!c->scratch[i]) return vib3_err_set(VIB3_ERR_NOMEM, "scratch");
    }
    if ((e = vib3_writer_open(&c->w, o->output_path))) return e;
    c->writer_open = true;
    vib3_writer_set_config(&c->w, m);
    vib3_cvt_progress(c, "start", false);
    hfn(c, name, sizeof name, "model.embed_tokens");
    if ((e = put_matrix(c, name, "token_embd.weight", m->vocab_size, m->hidden_size, c->dense_dt))) return e;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        if ((e = put_attention(c, l)) || (e = put_ffn(c, l))) return e;
    }
    hfn(c, name, sizeof name, "model.norm.weight");
    if ((e = put_vector(c, name, "output_norm.weight", m->hidden_size, true))) return e;
    if (have_head) {
        hfn(c, name, sizeof name, "lm_head");
        if ((e = put_matrix(c, name, "output.weight", m->vocab_size, m->hidden_size, c->dense_dt))) return e;
    }
    vib3_cvt_recall_layer_end(c);
    if ((e = vib3_cvt_put_signatures(c)) || (e = vib3_cvt_put_index(c)) || (e = vib3_cvt_put_coact(c)) ||
        (e = vib3_probe_write(c->calib ? c->calib->probe : NULL, &c->w)) || (e = vib3_cvt_put_tokenizer(c)) ||
        (e = vib3_cvt_put_meta(c)))
        return e;
    vib3_cvt_progress(c, "done", true);
    if ((e = vib3_writer_finish(&c->w))) return e;
    c->writer_open = false;
    return VIB3_OK;
}

/* the default calibration text: $VIB3_CALIB, <exe>/../models/calib/default.txt, ./models/calib/default.txt */
static const char *default_calib(char *buf, size_t cap) {
    const char *env = getenv("VIB3_CALIB");
    if (env && *env) return access(env, R_OK) == 0 ? env : NULL;
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, cap, "%s/../models/calib/default.txt", exe);
            if (access(buf, R_OK) == 0) return buf;
        }
    }
    snprintf(buf, cap, "models/calib/default.txt");
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* pass 1 + engine run over the calibration text; a failure of the default calibration only warns */
static vib3_err calibrate(const vib3_convert_opts *o, vib3_calib *calib, char *note, size_t note_cap) {
    char dbuf[1200], tmp[1100];
    const char *text = o->calib_path ? o->calib_path : default_calib(dbuf, sizeof dbuf);
    if (!text) {
        snprintf(note, note_cap, "none (no calibration text found)");
        return VIB3_OK;
    }
    vib3_convert_opts p1 = *o;
    snprintf(tmp, sizeof tmp, "%s.calib-pass.tmp", o->output_path); /* never looks like a finished model */
    p1.output_path = tmp;
    p1.no_permute = p1.no_index = p1.no_calib = true;
    p1.quiet = true;
    p1.progress = false;
    if (!o->quiet) fprintf(stderr, "convert: calibration pass over %s\n", text);
    vib3_err e = vib3_convert_ex(&p1, NULL);
    if (!e) {
        e = vib3_calib_run(tmp, text, o->threads, o->mem_budget_bytes ? o->mem_budget_bytes : (2ull << 30),
                           o->calib_tokens ? o->calib_tokens : 4096, calib);
        unlink(tmp);
    }
    if (e) {
        if (o->calib_path) return vib3_err_prefix("calibration");
        if (!o->quiet) fprintf(stderr, "convert: calibration skipped: %s\n", vib3_err_msg());
        snprintf(note, note_cap, "failed: %.200s", vib3_err_msg());
        vib3_err_clear();
        return VIB3_OK;
    }
    const char *base = strrchr(text, '/') ? strrchr(text, '/') + 1 : text;
    snprintf(note, note_cap, "%.120s: %llu tokens, %u samples per expert; look-ahead probes: %.60s", base,
             (unsigned long long)calib->n_tokens, calib->S, calib->probe_note);
    return VIB3_OK;
}

vib3_err vib3_convert_ex(const vib3_convert_opts *o, vib3_convert_stats *stats) {
    vib3_calib calib;
    memset(&calib, 0, sizeof calib);
    char note[256] = "none";
    if (!o->no_calib && o->model_path && o->output_path) {
        vib3_err e = calibrate(o, &calib, note, sizeof note);
        if (e) return e;
    }
    /* the writer's xxh3 state is 64-byte aligned: calloc's 16 is not enough (UBSan) */
    size_t cvt_bytes = (sizeof(vib3_cvt) + 63) & ~(size_t)63;
    vib3_cvt *c = aligned_alloc(64, cvt_bytes);
    if (c) memset(c, 0, cvt_bytes);
    if (!c) {
        vib3_calib_free(&calib);
        return vib3_err_set(VIB3_ERR_NOMEM, "convert");
    }
    c->o = o;
    c->calib = calib.n_experts ? &calib : NULL;
    snprintf(c->calib_note, sizeof c->calib_note, "%s", note);
    vib3_src_init(&c->src);
    c->t0 = vib3_cvt_now();
    c->tty = isatty(2);
    c->budget_bytes = o->mem_budget_bytes ? o->mem_budget_bytes : (2ull << 30);
    uint32_t nt = o->threads;
    if (nt == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nt = n > 0 ? (uint32_t)n : 1;
    }
    vib3_err e = vib3_par_create(&c->par, nt);
    if (!e) e = run(c);
    if (e && c->writer_open) {
        vib3_err keep = e;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vib3_err_msg());
        vib3_writer_abort(&c->w);
        vib3_err_set(keep, "%s", msg);
    }
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->source_bytes = c->bytes_done;
        stats->seconds = vib3_cvt_now() - c->t0;
        stats->n_pages = c->n_pages;
        stats->page_bytes = c->page_bytes_out;
        stats->dense_bytes = c->dense_bytes_out;
        stats->page_neurons = c->K;
        stats->threads = vib3_par_threads(c->par);
        stats->peak_rss_bytes = vib3_peak_rss_bytes();
        stats->calib_tokens = calib.n_tokens;
        if (c->recall_count) {
            stats->sig_recall_10 = c->recall_sum[0] / c->recall_count;
            stats->sig_recall_25 = c->recall_sum[1] / c->recall_count;
            stats->sig_recall_10_random = c->recall_base[0] / c->recall_count;
            stats->act_mass_top10 = c->mass_top10_sum / c->recall_count;
        }
    }
    if (c->scratch) {
        for (uint32_t i = 0; i < vib3_par_threads(c->par); i++) free(c->scratch[i]);
        free(c->scratch);
    }
    vib3_par_destroy(c->par);
    vib3_cvt_sig_tmp_close(c);
    free(c->sigs);
    free(c->rec_true);
    free(c->rec_sig);
    vib3_src_fini(&c->src);
    free(c);
    vib3_calib_free(&calib);
    return e;
}

vib3_err vib3_convert(const vib3_convert_opts *o) { return vib3_convert_ex(o, NULL); }
