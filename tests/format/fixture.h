/* fixture.h — builds small valid .vib3 files for format tests, fuzz seeds and
 * storage tests: a tiny Mixtral-shaped model (2 layers, 4 experts top-2,
 * hidden 64, expert ffn 64 in pages of 32 Q4_0 neurons) with random data,
 * every optional section present. Header-only (static functions). */
#ifndef VIB3_TESTS_FORMAT_FIXTURE_H
#define VIB3_TESTS_FORMAT_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "format/reader.h"
#include "format/writer.h"
#include "vendor/vib3_xxhash.h"

typedef struct fixture_opts {
    uint32_t n_layers, n_experts, hidden, moe_ffn, page_neurons, vocab;
    uint32_t expert_dtype;
    uint64_t seed;
} fixture_opts;

static const fixture_opts fixture_default = {2, 4, 64, 64, 32, 32, VIB3_DTYPE_Q4_0, 1};

static inline uint64_t fixture_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void fixture_config(const fixture_opts *o, vib3_model_config *c) {
    memset(c, 0, sizeof *c);
    c->arch = VIB3_ARCH_MIXTRAL;
    c->n_layers = o->n_layers;
    c->hidden_size = o->hidden;
    c->vocab_size = o->vocab;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = o->hidden / 4;
    c->v_head_dim = c->head_dim;
    c->moe_ffn_size = o->moe_ffn;
    c->n_experts = o->n_experts;
    c->n_experts_per_tok = 2;
    c->max_position = 128;
    c->router_scoring = VIB3_ROUTER_SOFTMAX;
    c->router_flags = VIB3_ROUTER_SOFTMAX_TOPK | VIB3_ROUTER_NORM_TOPK;
    c->n_group = 1;
    c->topk_group = 1;
    c->routed_scaling_factor = 1;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000;
    c->rope_dim = c->head_dim;
    c->bos_token_id = 1;
    c->eos_token_id = 2;
    c->expert_dtype = o->expert_dtype;
    c->dense_dtype = VIB3_DTYPE_F32;
    c->page_neurons = o->page_neurons;
    c->sig_dim = 8;
}

/* stream_rows 0: add_tensor; else tensor_begin/append/end, stream_rows rows per append (the
 * last append takes the rest) */
static inline int fixture_f32_tensor_ex(vib3_writer *w, const char *name, uint64_t rows, uint64_t cols, uint64_t *seed,
                                        uint64_t stream_rows) {
    uint64_t n = rows * cols;
    float *d = malloc(n * sizeof(float));
    for (uint64_t i = 0; i < n; i++) d[i] = (float)((fixture_rand(seed) >> 40) * (1.0 / 16777216.0) - 0.5);
    uint64_t dims[2] = {rows, cols};
    int rc;
    if (!stream_rows) {
        rc = vib3_writer_add_tensor(w, name, VIB3_DTYPE_F32, rows == 1 ? 1 : 2, rows == 1 ? dims + 1 : dims, d,
                                    n * sizeof(float));
    } else {
        rc = vib3_writer_tensor_begin(w, name, VIB3_DTYPE_F32, rows == 1 ? 1 : 2, rows == 1 ? dims + 1 : dims);
        for (uint64_t r = 0; !rc && r < rows; r += stream_rows) {
            uint64_t k = r + stream_rows <= rows ? stream_rows : rows - r;
            rc = vib3_writer_tensor_append(w, d + r * cols, k);
        }
        if (!rc) rc = vib3_writer_tensor_end(w);
    }
    free(d);
    return rc;
}

static inline int fixture_f32_tensor(vib3_writer *w, const char *name, uint64_t rows, uint64_t cols, uint64_t *seed) {
    return fixture_f32_tensor_ex(w, name, rows, cols, seed, 0);
}

/* writes a valid file at path, its tensors streamed in stream_rows-row pieces (0: whole);
 * returns 0 on success (vib3_err otherwise) */
static inline int fixture_write_ex(const char *path, const fixture_opts *o, uint64_t stream_rows) {
    vib3_writer w;
    vib3_model_config c;
    uint64_t seed = o->seed;
    int rc = vib3_writer_open(&w, path);
    if (rc) return rc;
    fixture_config(o, &c);
    vib3_writer_set_config(&w, &c);
    char name[64];
    if ((rc = fixture_f32_tensor_ex(&w, "token_embd.weight", o->vocab, o->hidden, &seed, stream_rows))) goto fail;
    for (uint32_t l = 0; l < o->n_layers; l++) {
        snprintf(name, sizeof name, "blk.%u.attn_norm.weight", l);
        if ((rc = fixture_f32_tensor_ex(&w, name, 1, o->hidden, &seed, stream_rows))) goto fail;
        snprintf(name, sizeof name, "blk.%u.ffn_gate_inp.weight", l);
        if ((rc = fixture_f32_tensor_ex(&w, name, o->n_experts, o->hidden, &seed, stream_rows))) goto fail;
    }
    if ((rc = fixture_f32_tensor_ex(&w, "output_norm.weight", 1, o->hidden, &seed, stream_rows))) goto fail;
    uint64_t page_bytes = vib3_page_bytes(o->expert_dtype, o->hidden, o->page_neurons);
    uint8_t *page = malloc(page_bytes);
    for (uint32_t l = 0; l < o->n_layers; l++)
        for (uint32_t e = 0; e < o->n_experts; e++)
            for (uint32_t n0 = 0; n0 < o->moe_ffn; n0 += o->page_neurons) {
                for (uint64_t i = 0; i < page_bytes; i++) page[i] = (uint8_t)fixture_rand(&seed);
                if (o->expert_dtype == VIB3_DTYPE_Q4_0) /* keep f16 scales finite and small: 0x2c00 ~ 0.0625 */
                    for (uint64_t b = 0; b + 18 <= page_bytes; b += 18) page[b] = 0, page[b + 1] = 0x2c;
                vib3_page_entry m = {.layer = l, .expert = e, .kind = VIB3_PAGE_ROUTED, .dtype = o->expert_dtype,
                                     .first_neuron = n0, .n_neurons = o->page_neurons};
                if ((rc = vib3_writer_add_page(&w, &m, page, page_bytes))) {
                    free(page);
                    goto fail;
                }
            }
    free(page);
    /* signatures: one 8-dim f32 vector per page */
    {
        uint64_t n_pages = w.n_pages;
        vib3_sig_header sh = {.dim = 8, .dtype = VIB3_DTYPE_F32, .count = n_pages};
        if ((rc = vib3_writer_section_begin(&w, VIB3_SEC_SIGNATURES, 0, n_pages))) goto fail;
        vib3_writer_section_append(&w, &sh, sizeof sh);
        for (uint64_t i = 0; i < n_pages * 8; i++) {
            float v = (float)(i % 17) * 0.1f;
            vib3_writer_section_append(&w, &v, sizeof v);
        }
        vib3_writer_section_end(&w);
    }
    {
        vib3_coact_header ch = {.n_layers = o->n_layers, .n_experts = o->n_experts, .n_tokens = 100};
        if ((rc = vib3_writer_section_begin(&w, VIB3_SEC_COACT, 0, 0))) goto fail;
        vib3_writer_section_append(&w, &ch, sizeof ch);
        uint64_t n = (uint64_t)o->n_layers * o->n_experts + (uint64_t)(o->n_layers - 1) * o->n_experts * o->n_experts;
        for (uint64_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)(i * 7 % 13);
            vib3_writer_section_append(&w, &v, sizeof v);
        }
        vib3_writer_section_end(&w);
    }
    static const char tok[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}";
    static const char meta[] = "{\"source\":\"fixture\",\"converter\":\"tests/format/fixture.h\"}";
    static const char tmpl[] = "{% for m in messages %}{{ m.content }}{% endfor %}";
    if ((rc = vib3_writer_add_section(&w, VIB3_SEC_TOKENIZER, VIB3_TOKENIZER_HF_JSON, 0, tok, sizeof tok - 1))) goto fail;
    if ((rc = vib3_writer_add_section(&w, VIB3_SEC_CHAT_TEMPLATE, 0, 0, tmpl, sizeof tmpl - 1))) goto fail;
    if ((rc = vib3_writer_add_section(&w, VIB3_SEC_METADATA, 0, 0, meta, sizeof meta - 1))) goto fail;
    return vib3_writer_finish(&w);
fail:
    vib3_writer_abort(&w);
    return rc;
}

static inline int fixture_write(const char *path, const fixture_opts *o) { return fixture_write_ex(path, o, 0); }

/* after editing an image in memory: recompute every section checksum, the
 * section table checksum and the header checksum, so structural checks (not
 * checksums) are what a test exercises */
static inline void fixture_resign(uint8_t *img, uint64_t size) {
    vib3_header *h = (vib3_header *)img;
    if (h->section_table_offset + (uint64_t)h->section_count * sizeof(vib3_section_entry) <= size &&
        h->section_count <= VIB3_MAX_SECTIONS) {
        vib3_section_entry *s = (vib3_section_entry *)(img + h->section_table_offset);
        for (uint32_t i = 0; i < h->section_count; i++)
            if (s[i].offset <= size && s[i].bytes <= size - s[i].offset)
                s[i].checksum = vib3_xxh3_64(img + s[i].offset, s[i].bytes);
        h->section_table_checksum = vib3_xxh3_64(s, (uint64_t)h->section_count * sizeof(vib3_section_entry));
    }
    h->header_checksum = vib3_xxh3_64(h, offsetof(vib3_header, header_checksum));
}

static inline uint8_t *fixture_load(const char *path, uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *size = (uint64_t)n;
    return b;
}

static inline vib3_section_entry *fixture_section(uint8_t *img, uint32_t tag) {
    vib3_header *h = (vib3_header *)img;
    vib3_section_entry *s = (vib3_section_entry *)(img + h->section_table_offset);
    for (uint32_t i = 0; i < h->section_count; i++)
        if (s[i].tag == tag) return &s[i];
    return NULL;
}

#endif
