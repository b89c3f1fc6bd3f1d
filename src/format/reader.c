/* reader.c — validating .vib3 reader (see reader.h).
 *
 * Order of checks: header -> section table -> each section's bounds and
 * checksum -> config -> tensor directory -> page table (+ slot index) ->
 * signatures / co-activation sizes. Nothing is dereferenced before the bytes
 * holding it are known to be inside the file. All arithmetic on untrusted
 * values is overflow-checked (add_ok / mul_ok).
 * With FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION checksums are computed but
 * mismatches are ignored, so fuzzers reach the structural checks (libpng).
 */
#include "format/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vendor/vib3_xxhash.h"

#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CHECKSUMS_ENFORCED 0
#else
#define CHECKSUMS_ENFORCED 1
#endif

#define FMT(...) vib3_err_set(VIB3_ERR_FORMAT, __VA_ARGS__)
typedef unsigned long long ull;

static int add_ok(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }
static int mul_ok(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }

/* [offset, offset + bytes) inside the file */
static int in_file(const vib3_file *f, uint64_t offset, uint64_t bytes) {
    uint64_t end;
    return add_ok(offset, bytes, &end) && end <= f->file_size;
}

static int all_zero(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

static const char *tag_str(uint32_t tag, char buf[8]) {
    for (int i = 0; i < 4; i++) {
        char c = (char)(tag >> (8 * i));
        buf[i] = c >= 32 && c < 127 ? c : '?';
    }
    buf[4] = 0;
    return buf;
}

/* ---- header ------------------------------------------------------------- */
static vib3_err check_header(vib3_file *f) {
    if (f->file_size < sizeof(vib3_header))
        return FMT("%s: file is %llu bytes, too small for the %zu-byte header", f->path, (ull)f->file_size,
                   sizeof(vib3_header));
    const vib3_header *h = (const vib3_header *)f->map;
    if (memcmp(h->magic, VIB3_MAGIC, 8) != 0) {
        if (memcmp(h->magic, "3BIV", 4) == 0)
            return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: byte-swapped magic: a big-endian .vib3 file is not supported",
                                f->path);
        if (memcmp(h->magic, "VIB3", 4) == 0)
            return FMT("%s: magic bytes 4..7 damaged (file transferred in text mode?)", f->path);
        return FMT("%s: not a .vib3 file (magic %02x %02x %02x %02x)", f->path, h->magic[0], h->magic[1], h->magic[2],
                   h->magic[3]);
    }
    if (h->version == 0) return FMT("%s: header field version is 0 (invalid)", f->path);
    if (h->version > VIB3_FORMAT_VERSION)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: format version %u is newer than this vib3 reads (%u)", f->path,
                            h->version, VIB3_FORMAT_VERSION);
    if (h->header_bytes != sizeof(vib3_header))
        return FMT("%s: header field header_bytes is %u, expected %zu", f->path, h->header_bytes, sizeof(vib3_header));
    uint64_t sum = vib3_xxh3_64(h, offsetof(vib3_header, header_checksum));
    if (sum != h->header_checksum && CHECKSUMS_ENFORCED)
        return vib3_err_set(VIB3_ERR_CHECKSUM, "%s: header checksum 0x%016llx != stored 0x%016llx", f->path, (ull)sum,
                            (ull)h->header_checksum);
    if (h->flags != 0)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: header field flags is 0x%x (no flags are defined)", f->path,
                            h->flags);
    if (!all_zero(h->reserved, sizeof h->reserved)) return FMT("%s: header reserved bytes are not zero", f->path);
    if (h->file_size != f->file_size)
        return FMT("%s: header field file_size is %llu but the file is %llu bytes (truncated or appended?)", f->path,
                   (ull)h->file_size, (ull)f->file_size);
    if (h->section_count == 0 || h->section_count > VIB3_MAX_SECTIONS)
        return FMT("%s: header field section_count is %u (allowed 1..%u)", f->path, h->section_count, VIB3_MAX_SECTIONS);
    uint64_t table_bytes = (uint64_t)h->section_count * sizeof(vib3_section_entry);
    if (h->section_table_offset < VIB3_DATA_OFFSET || h->section_table_offset % VIB3_SECTION_ALIGN ||
        !in_file(f, h->section_table_offset, table_bytes))
        return FMT("%s: section table at offset 0x%llx + %llu bytes is outside the file (size %llu) or misaligned",
                   f->path, (ull)h->section_table_offset, (ull)table_bytes, (ull)f->file_size);
    sum = vib3_xxh3_64(f->map + h->section_table_offset, table_bytes);
    if (sum != h->section_table_checksum && CHECKSUMS_ENFORCED)
        return vib3_err_set(VIB3_ERR_CHECKSUM, "%s: section table checksum 0x%016llx != stored 0x%016llx", f->path,
                            (ull)sum, (ull)h->section_table_checksum);
    f->header = h;
    f->sections = (const vib3_section_entry *)(f->map + h->section_table_offset);
    f->n_sections = h->section_count;
    return VIB3_OK;
}

/* ---- section table ------------------------------------------------------ */
static int known_tag(uint32_t tag) {
    switch (tag) {
    case VIB3_SEC_CONFIG: case VIB3_SEC_TENSORS: case VIB3_SEC_PAGES: case VIB3_SEC_SIGNATURES: case VIB3_SEC_HNSW:
    case VIB3_SEC_COACT: case VIB3_SEC_TOKENIZER: case VIB3_SEC_TOKENIZER_CONFIG: case VIB3_SEC_CHAT_TEMPLATE:
    case VIB3_SEC_METADATA: case VIB3_SEC_PREDICT: return 1;
    default: return 0;
    }
}

static vib3_err check_sections(vib3_file *f) {
    char tb[8], tb2[8];
    uint64_t table_start = f->header->section_table_offset;
    for (uint32_t i = 0; i < f->n_sections; i++) {
        const vib3_section_entry *s = &f->sections[i];
        uint64_t end;
        if (s->reserved != 0) return FMT("%s: section %u (%s): reserved field is %u", f->path, i, tag_str(s->tag, tb), s->reserved);
        if (s->version != 1 && known_tag(s->tag))
            return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: section %u (%s): version %u not supported", f->path, i,
                                tag_str(s->tag, tb), s->version);
        if (s->offset < VIB3_DATA_OFFSET || s->offset % VIB3_SECTION_ALIGN || !add_ok(s->offset, s->bytes, &end) ||
            end > table_start)
            return FMT("%s: section %u (%s): offset 0x%llx + %llu bytes is outside [0x%x, 0x%llx) or misaligned", f->path, i,
                       tag_str(s->tag, tb), (ull)s->offset, (ull)s->bytes, VIB3_DATA_OFFSET, (ull)table_start);
        for (uint32_t j = 0; j < i; j++) {
            const vib3_section_entry *o = &f->sections[j];
            if (o->tag == s->tag && known_tag(s->tag))
                return FMT("%s: section %s appears twice (entries %u and %u)", f->path, tag_str(s->tag, tb), j, i);
            if (s->bytes && o->bytes && s->offset < o->offset + o->bytes && o->offset < s->offset + s->bytes)
                return FMT("%s: sections %u (%s) and %u (%s) overlap", f->path, j, tag_str(o->tag, tb2), i, tag_str(s->tag, tb));
        }
        uint64_t sum = vib3_xxh3_64(f->map + s->offset, s->bytes);
        if (sum != s->checksum && CHECKSUMS_ENFORCED)
            return vib3_err_set(VIB3_ERR_CHECKSUM, "%s: section %s checksum 0x%016llx != stored 0x%016llx", f->path,
                                tag_str(s->tag, tb), (ull)sum, (ull)s->checksum);
    }
    return VIB3_OK;
}

static const vib3_section_entry *find_section(const vib3_file *f, uint32_t tag) {
    for (uint32_t i = 0; i < f->n_sections; i++)
        if (f->sections[i].tag == tag) return &f->sections[i];
    return NULL;
}

/* ---- config ------------------------------------------------------------- */
#define CFG_RANGE(field, lo, hi)                                                                          \
    do {                                                                                                  \
        if ((uint64_t)c->field < (uint64_t)(lo) || (uint64_t)c->field > (uint64_t)(hi))                   \
            return FMT("%s: config field " #field " is %llu (allowed %llu..%llu)", f->path, (ull)c->field, \
                       (ull)(lo), (ull)(hi));                                                              \
    } while (0)

static vib3_err check_config(vib3_file *f) {
    const vib3_section_entry *s = find_section(f, VIB3_SEC_CONFIG);
    if (!s) return FMT("%s: required section CONF is missing", f->path);
    if (s->bytes != sizeof(vib3_model_config))
        return FMT("%s: section CONF is %llu bytes, expected %zu", f->path, (ull)s->bytes, sizeof(vib3_model_config));
    const vib3_model_config *c = (const vib3_model_config *)(f->map + s->offset);
    if (c->arch == 0 || c->arch >= VIB3_ARCH_COUNT_)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s: config field arch is %u (unknown architecture)", f->path, c->arch);
    CFG_RANGE(n_layers, 1, VIB3_MAX_LAYERS);
    CFG_RANGE(hidden_size, 1, VIB3_MAX_DIM);
    CFG_RANGE(vocab_size, 1, VIB3_MAX_VOCAB);
    CFG_RANGE(n_heads, 1, 4096);
    CFG_RANGE(n_kv_heads, 1, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return FMT("%s: config: n_heads %u is not a multiple of n_kv_heads %u", f->path, c->n_heads, c->n_kv_heads);
    CFG_RANGE(head_dim, 1, 4096);
    CFG_RANGE(v_head_dim, 1, 4096);
    CFG_RANGE(ffn_size, 0, VIB3_MAX_DIM);
    CFG_RANGE(moe_ffn_size, 0, VIB3_MAX_DIM);
    CFG_RANGE(n_experts, 0, VIB3_MAX_EXPERTS);
    CFG_RANGE(n_shared_experts, 0, 64);
    CFG_RANGE(shared_ffn_size, 0, VIB3_MAX_DIM);
    CFG_RANGE(first_k_dense, 0, c->n_layers);
    CFG_RANGE(max_position, 1, 1u << 24);
    if (c->n_experts) {
        CFG_RANGE(n_experts_per_tok, 1, c->n_experts);
        CFG_RANGE(moe_ffn_size, 1, VIB3_MAX_DIM);
    } else if (c->n_experts_per_tok != 0) {
        return FMT("%s: config: n_experts_per_tok is %u but the model has no experts", f->path, c->n_experts_per_tok);
    }
    if ((c->n_experts == 0 || c->first_k_dense > 0) && c->ffn_size == 0)
        return FMT("%s: config: dense layers need ffn_size > 0", f->path);
    if (c->n_shared_experts) CFG_RANGE(shared_ffn_size, 1, VIB3_MAX_DIM);
    CFG_RANGE(q_lora_rank, 0, VIB3_MAX_DIM);
    CFG_RANGE(kv_lora_rank, 0, VIB3_MAX_DIM);
    CFG_RANGE(qk_nope_head_dim, 0, 4096);
    CFG_RANGE(qk_rope_head_dim, 0, 4096);
    if (c->arch == VIB3_ARCH_DEEPSEEK_V3) {
        CFG_RANGE(kv_lora_rank, 1, VIB3_MAX_DIM);
        if (c->qk_nope_head_dim + c->qk_rope_head_dim != c->head_dim)
            return FMT("%s: config: qk_nope_head_dim %u + qk_rope_head_dim %u != head_dim %u", f->path,
                       c->qk_nope_head_dim, c->qk_rope_head_dim, c->head_dim);
    }
    CFG_RANGE(router_scoring, 0, 1);
    if (c->router_flags & ~0xFu) return FMT("%s: config field router_flags 0x%x has unknown bits", f->path, c->router_flags);
    CFG_RANGE(n_group, 0, VIB3_MAX_EXPERTS);
    if (c->n_group > 1) {
        if (c->n_experts % c->n_group)
            return FMT("%s: config: n_experts %u not divisible by n_group %u", f->path, c->n_experts, c->n_group);
        CFG_RANGE(topk_group, 1, c->n_group);
    }
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1))
        return FMT("%s: config field rms_norm_eps is %g (allowed (0, 1))", f->path, (double)c->rms_norm_eps);
    if (!(isfinite(c->routed_scaling_factor) && c->routed_scaling_factor > 0 && c->routed_scaling_factor < 1e6))
        return FMT("%s: config field routed_scaling_factor is %g", f->path, (double)c->routed_scaling_factor);
    if (!(c->rope_theta > 0 && c->rope_theta < 1e12))
        return FMT("%s: config field rope_theta is %g (allowed (0, 1e12))", f->path, c->rope_theta);
    CFG_RANGE(rope_scaling, 0, VIB3_ROPE_LLAMA3);
    if (c->rope_scaling != VIB3_ROPE_NONE && !(isfinite(c->rope_factor) && c->rope_factor >= 1 && c->rope_factor < 1e6))
        return FMT("%s: config field rope_factor is %g", f->path, (double)c->rope_factor);
    const float fs[] = {c->yarn_beta_fast, c->yarn_beta_slow, c->yarn_mscale, c->yarn_mscale_all_dim,
                        c->llama3_low_freq_factor, c->llama3_high_freq_factor};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        if (!isfinite(fs[i])) return FMT("%s: config: a rope scaling parameter is not finite", f->path);
    CFG_RANGE(rope_dim, 0, c->head_dim);
    if (c->rope_dim % 2) return FMT("%s: config field rope_dim is %u (must be even)", f->path, c->rope_dim);
    if (c->flags & ~0xFu) return FMT("%s: config field flags 0x%x has unknown bits", f->path, c->flags);
    if (c->bos_token_id != VIB3_TOKEN_NONE) CFG_RANGE(bos_token_id, 0, c->vocab_size - 1);
    if (c->eos_token_id != VIB3_TOKEN_NONE) CFG_RANGE(eos_token_id, 0, c->vocab_size - 1);
    CFG_RANGE(expert_dtype, 0, VIB3_DTYPE_COUNT_ - 1);
    CFG_RANGE(dense_dtype, 0, VIB3_DTYPE_COUNT_ - 1);
    CFG_RANGE(page_neurons, 1, VIB3_MAX_DIM);
    CFG_RANGE(sig_dim, 0, 65536);
    if (!all_zero(c->reserved, sizeof c->reserved)) return FMT("%s: config reserved bytes are not zero", f->path);
    f->config = c;
    return VIB3_OK;
}

/* ---- tensor directory --------------------------------------------------- */
static vib3_err check_tensors(vib3_file *f) {
    const vib3_section_entry *s = find_section(f, VIB3_SEC_TENSORS);
    if (!s) return FMT("%s: required section TDIR is missing", f->path);
    if (s->count > VIB3_MAX_TENSORS || s->bytes != s->count * sizeof(vib3_tensor_entry))
        return FMT("%s: section TDIR: %llu entries in %llu bytes (entry is %zu bytes, max %u entries)", f->path,
                   (ull)s->count, (ull)s->bytes, sizeof(vib3_tensor_entry), VIB3_MAX_TENSORS);
    f->tensors = (const vib3_tensor_entry *)(f->map + s->offset);
    f->n_tensors = (uint32_t)s->count;
    f->dense_bytes_total = 0;
    for (uint32_t i = 0; i < f->n_tensors; i++) {
        const vib3_tensor_entry *t = &f->tensors[i];
        size_t len = strnlen(t->name, VIB3_TENSOR_NAME_BYTES);
        if (len == 0 || len == VIB3_TENSOR_NAME_BYTES || !all_zero(t->name + len, VIB3_TENSOR_NAME_BYTES - len))
            return FMT("%s: tensor entry %u: name is empty, unterminated or not NUL-padded", f->path, i);
        if (t->dtype >= VIB3_DTYPE_COUNT_)
            return FMT("%s: tensor %s: dtype %u is unknown", f->path, t->name, t->dtype);
        if (t->n_dims < 1 || t->n_dims > VIB3_MAX_DIMS)
            return FMT("%s: tensor %s: n_dims %u (allowed 1..%u)", f->path, t->name, t->n_dims, VIB3_MAX_DIMS);
        uint64_t rows = 1;
        for (uint32_t d = 0; d < VIB3_MAX_DIMS; d++) {
            if (d >= t->n_dims) {
                if (t->dims[d]) return FMT("%s: tensor %s: unused dim %u is %llu, not 0", f->path, t->name, d, (ull)t->dims[d]);
                continue;
            }
            if (t->dims[d] == 0 || t->dims[d] > VIB3_MAX_VOCAB * 4ull)
                return FMT("%s: tensor %s: dim %u is %llu", f->path, t->name, d, (ull)t->dims[d]);
            if (d + 1 < t->n_dims && !mul_ok(rows, t->dims[d], &rows))
                return FMT("%s: tensor %s: shape product overflows", f->path, t->name);
        }
        uint64_t row_bytes = vib3_dtype_row_bytes(t->dtype, t->dims[t->n_dims - 1]);
        uint64_t bytes;
        if (row_bytes == 0)
            return FMT("%s: tensor %s: last dim %llu is not a whole number of %s blocks", f->path, t->name,
                       (ull)t->dims[t->n_dims - 1], vib3_dtype_name(t->dtype));
        if (!mul_ok(rows, row_bytes, &bytes) || bytes != t->bytes)
            return FMT("%s: tensor %s: bytes is %llu, shape and dtype %s need %llu", f->path, t->name, (ull)t->bytes,
                       vib3_dtype_name(t->dtype), (ull)bytes);
        if (t->offset < VIB3_DATA_OFFSET || t->offset % VIB3_TENSOR_ALIGN || !in_file(f, t->offset, t->bytes) ||
            t->offset + t->bytes > f->header->section_table_offset)
            return FMT("%s: tensor %s: offset 0x%llx + %llu > data end 0x%llx or misaligned", f->path, t->name,
                       (ull)t->offset, (ull)t->bytes, (ull)f->header->section_table_offset);
        f->dense_bytes_total += t->bytes;
    }
    return VIB3_OK;
}

/* ---- page table + slot index -------------------------------------------- */
static vib3_err check_pages(vib3_file *f, vib3_arena *arena) {
    const vib3_model_config *c = f->config;
    const vib3_section_entry *s = find_section(f, VIB3_SEC_PAGES);
    if (!s) return FMT("%s: required section PTAB is missing", f->path);
    if (s->count > VIB3_MAX_PAGES || s->bytes != s->count * sizeof(vib3_page_entry))
        return FMT("%s: section PTAB: %llu entries in %llu bytes (entry is %zu bytes)", f->path, (ull)s->count,
                   (ull)s->bytes, sizeof(vib3_page_entry));
    f->pages = (const vib3_page_entry *)(f->map + s->offset);
    f->n_pages = s->count;
    f->n_slots = (c->n_experts ? c->n_experts : 1) + c->n_shared_experts;
    uint64_t n_index = (uint64_t)c->n_layers * f->n_slots;
    f->slot_first_page = vib3_arena_alloc(arena, n_index * sizeof(uint64_t), 0);
    f->slot_n_pages = vib3_arena_calloc(arena, n_index, sizeof(uint32_t), 0);
    f->slot_n_neurons = vib3_arena_calloc(arena, n_index, sizeof(uint32_t), 0);
    if (!f->slot_first_page || !f->slot_n_pages || !f->slot_n_neurons) return vib3_err_prefix("%s: page index", f->path);
    for (uint64_t i = 0; i < n_index; i++) f->slot_first_page[i] = UINT64_MAX;

    uint64_t prev_slot = UINT64_MAX;
    f->expert_bytes_total = 0;
    for (uint64_t i = 0; i < f->n_pages; i++) {
        const vib3_page_entry *p = &f->pages[i];
#define PAGE_ERR(fmt, ...) FMT("%s: page table entry %llu (layer %u expert %u): " fmt, f->path, (ull)i, p->layer, p->expert, __VA_ARGS__)
        if (p->layer >= c->n_layers) return PAGE_ERR("layer %u >= n_layers %u", p->layer, c->n_layers);
        int dense_layer = c->n_experts == 0 || p->layer < c->first_k_dense;
        switch (p->kind) {
        case VIB3_PAGE_ROUTED:
            if (dense_layer) return PAGE_ERR("routed page in dense layer %u", p->layer);
            if (p->expert >= c->n_experts) return PAGE_ERR("expert %u >= n_experts %u", p->expert, c->n_experts);
            break;
        case VIB3_PAGE_SHARED:
            if (dense_layer) return PAGE_ERR("shared-expert page in dense layer %u", p->layer);
            if (p->expert >= c->n_shared_experts)
                return PAGE_ERR("shared expert %u >= n_shared_experts %u", p->expert, c->n_shared_experts);
            break;
        case VIB3_PAGE_DENSE:
            if (!dense_layer) return PAGE_ERR("dense page in MoE layer %u", p->layer);
            if (p->expert != 0) return PAGE_ERR("dense page with expert %u (must be 0)", p->expert);
            break;
        default: return PAGE_ERR("kind %u is unknown", p->kind);
        }
        if (p->dtype >= VIB3_DTYPE_COUNT_) return PAGE_ERR("dtype %u is unknown", p->dtype);
        if (p->n_neurons == 0 || p->n_neurons > VIB3_MAX_DIM || p->first_neuron > VIB3_MAX_DIM)
            return PAGE_ERR("neurons [%u, +%u) out of range", p->first_neuron, p->n_neurons);
        uint64_t expect = vib3_page_bytes(p->dtype, c->hidden_size, p->n_neurons);
        if (expect == 0 || expect != p->bytes)
            return PAGE_ERR("bytes is %llu, %u neurons of %s at hidden %u need %llu", (ull)p->bytes, p->n_neurons,
                            vib3_dtype_name(p->dtype), c->hidden_size, (ull)expect);
        if (p->offset < VIB3_DATA_OFFSET || p->offset % VIB3_PAGE_ALIGN || !in_file(f, p->offset, p->bytes) ||
            p->offset + p->bytes > f->header->section_table_offset)
            return PAGE_ERR("offset 0x%llx + %llu > data end 0x%llx (file size %llu) or not %u-aligned", (ull)p->offset,
                            (ull)p->bytes, (ull)f->header->section_table_offset, (ull)f->file_size, VIB3_PAGE_ALIGN);
        if (!all_zero(p->reserved, sizeof p->reserved)) return PAGE_ERR("reserved bytes are not zero%s", "");
        uint64_t slot = (uint64_t)p->layer * f->n_slots + vib3_file_slot(f, p->kind, p->expert);
        if (slot != prev_slot) {
            if (f->slot_first_page[slot] != UINT64_MAX)
                return PAGE_ERR("pages of this expert are not contiguous in the page table%s", "");
            if (p->first_neuron != 0) return PAGE_ERR("first page starts at neuron %u, not 0", p->first_neuron);
            f->slot_first_page[slot] = i;
        } else {
            const vib3_page_entry *q = p - 1;
            uint64_t next_off = (q->offset + q->bytes + VIB3_PAGE_ALIGN - 1) / VIB3_PAGE_ALIGN * VIB3_PAGE_ALIGN;
            if (p->first_neuron != q->first_neuron + q->n_neurons)
                return PAGE_ERR("first_neuron %u, previous page ends at %u", p->first_neuron, q->first_neuron + q->n_neurons);
            if (p->offset != next_off)
                return PAGE_ERR("offset 0x%llx, expected 0x%llx (an expert's pages are contiguous)", (ull)p->offset,
                                (ull)next_off);
            if (p->dtype != q->dtype) return PAGE_ERR("dtype %s differs from the expert's previous page", vib3_dtype_name(p->dtype));
        }
        if (f->slot_n_pages[slot] == UINT32_MAX) return PAGE_ERR("too many pages%s", "");
        f->slot_n_pages[slot]++;
        f->slot_n_neurons[slot] = p->first_neuron + p->n_neurons;
        f->expert_bytes_total += p->bytes;
        prev_slot = slot;
#undef PAGE_ERR
    }
    return VIB3_OK;
}

/* ---- optional sections -------------------------------------------------- */
static vib3_err check_pred(vib3_file *f, const vib3_section_entry *s);

static vib3_err check_optional(vib3_file *f) {
    const vib3_model_config *c = f->config;
    const vib3_section_entry *s;
    if ((s = find_section(f, VIB3_SEC_SIGNATURES))) {
        if (s->bytes < sizeof(vib3_sig_header)) return FMT("%s: section SIGS is %llu bytes, too small", f->path, (ull)s->bytes);
        const vib3_sig_header *h = (const vib3_sig_header *)(f->map + s->offset);
        uint64_t esize = h->dtype == VIB3_DTYPE_F32 ? 4 : h->dtype == VIB3_DTYPE_F16 ? 2 : 0;
        uint64_t n, total;
        if (!esize) return FMT("%s: section SIGS: dtype %u (must be f32 or f16)", f->path, h->dtype);
        if (h->dim == 0 || h->dim > 65536 || h->dim != c->sig_dim)
            return FMT("%s: section SIGS: dim %u (config sig_dim %u)", f->path, h->dim, c->sig_dim);
        if (h->count != f->n_pages) return FMT("%s: section SIGS: %llu vectors for %llu pages", f->path, (ull)h->count, (ull)f->n_pages);
        if (!mul_ok(h->count, (uint64_t)h->dim * esize, &n) || !add_ok(n, sizeof *h, &total) || total != s->bytes)
            return FMT("%s: section SIGS: %llu bytes do not match %llu x %u vectors", f->path, (ull)s->bytes, (ull)h->count, h->dim);
        if (h->reserved[0] | h->reserved[1] | h->reserved[2]) return FMT("%s: section SIGS: reserved not zero", f->path);
        f->sig = h;
        f->sig_vectors = h + 1;
    }
    if ((s = find_section(f, VIB3_SEC_COACT))) {
        if (s->bytes < sizeof(vib3_coact_header)) return FMT("%s: section COAC is %llu bytes, too small", f->path, (ull)s->bytes);
        const vib3_coact_header *h = (const vib3_coact_header *)(f->map + s->offset);
        if (h->n_layers != c->n_layers || h->n_experts != c->n_experts || c->n_experts == 0)
            return FMT("%s: section COAC: %u layers x %u experts, config has %u x %u", f->path, h->n_layers, h->n_experts,
                       c->n_layers, c->n_experts);
        uint64_t e = h->n_experts, l = h->n_layers;
        uint64_t expect = sizeof *h + 4 * (l * e + (l - 1) * e * e);
        if (s->bytes != expect) return FMT("%s: section COAC is %llu bytes, expected %llu", f->path, (ull)s->bytes, (ull)expect);
        f->coact = h;
        f->coact_freq = (const uint32_t *)(h + 1);
        f->coact_trans = f->coact_freq + l * e;
    }
    if ((s = find_section(f, VIB3_SEC_PREDICT))) {
        vib3_err rc = check_pred(f, s);
        if (rc) return rc;
    }
    struct {
        uint32_t tag;
        vib3_blob *blob;
    } blobs[] = {{VIB3_SEC_HNSW, &f->hnsw},
                 {VIB3_SEC_TOKENIZER, &f->tokenizer},
                 {VIB3_SEC_TOKENIZER_CONFIG, &f->tokenizer_config},
                 {VIB3_SEC_CHAT_TEMPLATE, &f->chat_template},
                 {VIB3_SEC_METADATA, &f->metadata}};
    for (size_t i = 0; i < sizeof blobs / sizeof blobs[0]; i++) {
        if (!(s = find_section(f, blobs[i].tag))) continue;
        blobs[i].blob->data = f->map + s->offset;
        blobs[i].blob->bytes = s->bytes;
        blobs[i].blob->flags = s->flags;
    }
    if (f->tokenizer.data && (f->tokenizer.flags < VIB3_TOKENIZER_HF_JSON || f->tokenizer.flags > VIB3_TOKENIZER_SPM))
        return FMT("%s: section TOKN: tokenizer kind %u is unknown", f->path, f->tokenizer.flags);
    return VIB3_OK;
}

/* PRED: every field against the config and the section size before anything is read through it */
static vib3_err check_pred(vib3_file *f, const vib3_section_entry *s) {
    const vib3_model_config *c = f->config;
    if (s->bytes < sizeof(vib3_pred_header)) return FMT("%s: section PRED is %llu bytes, too small", f->path, (ull)s->bytes);
    const vib3_pred_header *h = (const vib3_pred_header *)(f->map + s->offset);
    if (h->n_layers != c->n_layers) return FMT("%s: section PRED: n_layers %u, config has %u", f->path, h->n_layers, c->n_layers);
    if (h->n_experts != c->n_experts || h->n_experts == 0)
        return FMT("%s: section PRED: n_experts %u, config has %u", f->path, h->n_experts, c->n_experts);
    if (h->hidden != c->hidden_size) return FMT("%s: section PRED: hidden %u, config has %u", f->path, h->hidden, c->hidden_size);
    if (h->depth == 0 || h->depth > h->n_layers)
        return FMT("%s: section PRED: depth %u (allowed 1..%u)", f->path, h->depth, h->n_layers);
    uint64_t esize = h->dtype == VIB3_DTYPE_F32 ? 4 : h->dtype == VIB3_DTYPE_F16 ? 2 : 0;
    if (!esize) return FMT("%s: section PRED: dtype %u (must be f32 or f16)", f->path, h->dtype);
    if (h->n_pairs == 0 || h->n_pairs > (uint64_t)h->n_layers * h->depth)
        return FMT("%s: section PRED: n_pairs %u (allowed 1..%llu)", f->path, h->n_pairs, (ull)h->n_layers * h->depth);
    if (h->method != 1 && h->method != 2) return FMT("%s: section PRED: method %u (known: 1, 2)", f->path, h->method);
    for (int i = 0; i < 7; i++)
        if (h->reserved[i]) return FMT("%s: section PRED: reserved[%d] is %u (must be 0)", f->path, i, h->reserved[i]);
    uint64_t b_bytes = ((uint64_t)h->n_experts * 4 + 7) & ~7ull, w_bytes = 0, pair_bytes = 0, data = 0, table, total = 0;
    if (!mul_ok((uint64_t)h->n_experts * h->hidden, esize, &w_bytes) || !add_ok(w_bytes, 7, &w_bytes))
        return FMT("%s: section PRED: %u x %u weights overflow", f->path, h->n_experts, h->hidden);
    w_bytes &= ~7ull;
    table = (uint64_t)h->n_pairs * sizeof(vib3_pred_pair);
    if (!add_ok(b_bytes, w_bytes, &pair_bytes) || !mul_ok(pair_bytes, h->n_pairs, &data) ||
        !add_ok(sizeof *h + table, data, &total) || total != s->bytes)
        return FMT("%s: section PRED is %llu bytes, expected %llu for %u pairs of %u x %u %s", f->path, (ull)s->bytes,
                   (ull)total, h->n_pairs, h->n_experts, h->hidden, vib3_dtype_name((vib3_dtype)h->dtype));
    const vib3_pred_pair *pp = (const vib3_pred_pair *)(h + 1);
    for (uint32_t i = 0; i < h->n_pairs; i++) {
        const vib3_pred_pair *p = &pp[i];
        if (p->source >= h->n_layers || p->target >= h->n_layers)
            return FMT("%s: section PRED: pair %u: source %u / target %u (layers %u)", f->path, i, p->source, p->target,
                       h->n_layers);
        if (p->flags & ~(uint32_t)VIB3_PRED_NEXT_TOKEN) return FMT("%s: section PRED: pair %u: flags 0x%x", f->path, i, p->flags);
        uint32_t next = (p->flags & VIB3_PRED_NEXT_TOKEN) != 0;
        uint64_t dist = next ? (uint64_t)p->target + h->n_layers - p->source : (uint64_t)p->target - p->source;
        if ((!next && p->target <= p->source) || dist == 0 || dist > h->depth || (next && p->source + dist < h->n_layers))
            return FMT("%s: section PRED: pair %u: source %u -> target %u%s is not 1..%u layers ahead", f->path, i,
                       p->source, p->target, next ? " (next token)" : "", h->depth);
        float lam;
        memcpy(&lam, &p->lambda_bits, 4);
        if (!(lam >= 0 && lam < 1e30f)) return FMT("%s: section PRED: pair %u: lambda %g", f->path, i, (double)lam);
    }
    f->pred = h;
    f->pred_pairs = pp;
    f->pred_data = (const uint8_t *)(pp + h->n_pairs);
    f->pred_pair_bytes = pair_bytes;
    f->pred_w_offset = b_bytes;
    return VIB3_OK;
}

static vib3_err validate(vib3_file *f, vib3_arena *arena, unsigned flags) {
    vib3_err rc;
    if ((rc = check_header(f)) || (rc = check_sections(f)) || (rc = check_config(f)) || (rc = check_tensors(f)) ||
        (rc = check_pages(f, arena)) || (rc = check_optional(f)))
        return rc;
    if (flags & VIB3_OPEN_VERIFY_DATA) {
        for (uint32_t i = 0; i < f->n_tensors; i++)
            if ((rc = vib3_file_verify_tensor(f, &f->tensors[i]))) return rc;
        for (uint64_t i = 0; i < f->n_pages; i++)
            if ((rc = vib3_file_verify_page(f, i, f->map + f->pages[i].offset))) return rc;
    }
    return VIB3_OK;
}

static void init_file(vib3_file *f, const char *name) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    snprintf(f->path, sizeof f->path, "%s", name ? name : "(memory)");
}

vib3_err vib3_file_open_mem(vib3_file *f, const void *buf, uint64_t bytes, const char *name, vib3_arena *arena,
                            unsigned flags) {
    init_file(f, name);
    f->map = buf;
    f->file_size = bytes;
    return validate(f, arena, flags);
}

vib3_err vib3_file_open(vib3_file *f, const char *path, vib3_arena *arena, unsigned flags) {
    init_file(f, path);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        return vib3_err_set(errno == ENOENT ? VIB3_ERR_NOT_FOUND : VIB3_ERR_IO, "%s: cannot open: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        vib3_err rc = vib3_err_set(VIB3_ERR_IO, "%s: not a regular file", path);
        vib3_file_close(f);
        return rc;
    }
    f->file_size = (uint64_t)st.st_size;
    if (f->file_size < sizeof(vib3_header)) {
        vib3_err rc = FMT("%s: file is %llu bytes, too small for the %zu-byte header", path, (ull)f->file_size,
                          sizeof(vib3_header));
        vib3_file_close(f);
        return rc;
    }
    void *m = mmap(NULL, f->file_size, PROT_READ, MAP_SHARED, f->fd, 0);
    if (m == MAP_FAILED) {
        vib3_err rc = vib3_err_set(VIB3_ERR_IO, "%s: mmap of %llu bytes failed: %s", path, (ull)f->file_size, strerror(errno));
        vib3_file_close(f);
        return rc;
    }
    f->map = m;
    f->owns_map = true;
    vib3_err rc = validate(f, arena, flags);
    if (rc) {
        vib3_file_close(f);
        return rc;
    }
    return VIB3_OK;
}

void vib3_file_close(vib3_file *f) {
    if (f->owns_map && f->map) munmap((void *)f->map, f->file_size);
    if (f->fd >= 0) close(f->fd);
    f->map = NULL;
    f->fd = -1;
    f->owns_map = false;
}

const vib3_tensor_entry *vib3_file_find_tensor(const vib3_file *f, const char *name) {
    for (uint32_t i = 0; i < f->n_tensors; i++)
        if (strncmp(f->tensors[i].name, name, VIB3_TENSOR_NAME_BYTES) == 0) return &f->tensors[i];
    return NULL;
}

vib3_err vib3_file_verify_tensor(const vib3_file *f, const vib3_tensor_entry *t) {
    uint64_t sum = vib3_xxh3_64(f->map + t->offset, t->bytes);
    if (sum != t->checksum && CHECKSUMS_ENFORCED)
        return vib3_err_set(VIB3_ERR_CHECKSUM, "%s: tensor %s at offset 0x%llx: checksum 0x%016llx != stored 0x%016llx",
                            f->path, t->name, (ull)t->offset, (ull)sum, (ull)t->checksum);
    return VIB3_OK;
}

vib3_err vib3_file_verify_page(const vib3_file *f, uint64_t i, const void *data) {
    const vib3_page_entry *p = &f->pages[i];
    uint64_t sum = vib3_xxh3_64(data, p->bytes);
    if (sum != p->checksum && CHECKSUMS_ENFORCED)
        return vib3_err_set(VIB3_ERR_CHECKSUM,
                            "%s: page %llu (layer %u expert %u neurons %u..%u) at offset 0x%llx: checksum 0x%016llx != "
                            "stored 0x%016llx",
                            f->path, (ull)i, p->layer, p->expert, p->first_neuron, p->first_neuron + p->n_neurons,
                            (ull)p->offset, (ull)sum, (ull)p->checksum);
    return VIB3_OK;
}

bool vib3_file_slot_pages(const vib3_file *f, uint32_t layer, uint32_t slot, uint64_t *first, uint32_t *count) {
    if (layer >= f->config->n_layers || slot >= f->n_slots) return false;
    uint64_t k = (uint64_t)layer * f->n_slots + slot;
    if (f->slot_first_page[k] == UINT64_MAX) return false;
    *first = f->slot_first_page[k];
    *count = f->slot_n_pages[k];
    return true;
}

void vib3_file_param_counts(const vib3_file *f, uint64_t *total, uint64_t *active) {
    const vib3_model_config *c = f->config;
    uint64_t dense = 0;
    for (uint32_t i = 0; i < f->n_tensors; i++) {
        uint64_t n = 1;
        for (uint32_t d = 0; d < f->tensors[i].n_dims; d++) n *= f->tensors[i].dims[d];
        dense += n;
    }
    uint64_t h = c->hidden_size, t = dense, a = dense;
    for (uint32_t l = 0; l < c->n_layers; l++) {
        if (c->n_experts == 0 || l < c->first_k_dense) {
            t += 3 * h * c->ffn_size;
            a += 3 * h * c->ffn_size;
            continue;
        }
        t += (uint64_t)c->n_experts * 3 * h * c->moe_ffn_size + (uint64_t)c->n_shared_experts * 3 * h * c->shared_ffn_size;
        a += (uint64_t)c->n_experts_per_tok * 3 * h * c->moe_ffn_size +
             (uint64_t)c->n_shared_experts * 3 * h * c->shared_ffn_size;
    }
    *total = t;
    *active = a;
}
