/* cmd_info.c — `vib3 info <model|file.vib3> [--json] [--verify]`: what the model
 * is (architecture, parameters, experts, quantization, pages, sections) and
 * whether it fits this machine at the configured budgets: resident bytes,
 * pages that stay on disk, and the bytes a token must read in the worst case
 * (every active expert page missing from RAM). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/json.h"
#include "format/reader.h"
#include "storage/pages.h"

static uint64_t ram_total_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
}

typedef struct fit {
    uint64_t ram_budget, kv_bytes, dense_bytes, expert_bytes, expert_bytes_padded;
    uint64_t ctx;                 /* positions the KV cache is sized for */
    uint64_t pages_resident, pages_on_disk;
    uint64_t min_ram_budget;      /* the least budget `vib3 run` starts with (storage/pages.c's rule) */
    int runs;                     /* the budget holds the frames the buffer manager needs */
    uint64_t active_expert_bytes; /* per token, worst case all misses */
    int fits;
} fit;

static void compute_fit(const vib3_file *f, const vib3_config *cfg, fit *out) {
    const vib3_model_config *c = f->config;
    memset(out, 0, sizeof *out);
    out->ram_budget = cfg->ram_budget_bytes ? cfg->ram_budget_bytes : ram_total_bytes() / 4 * 3;
    /* the context `vib3 run` opens with: -c, else the trained one capped at 4096 (runtime/engine.c) */
    uint64_t ctx = cfg->ctx_size ? cfg->ctx_size : c->max_position && c->max_position < 4096 ? c->max_position : 4096;
    out->ctx = ctx;
    uint64_t kv_per_token = c->arch == VIB3_ARCH_DEEPSEEK_V3
                                ? (uint64_t)(c->kv_lora_rank + c->qk_rope_head_dim)
                                : (uint64_t)c->n_kv_heads * (c->head_dim + c->v_head_dim);
    out->kv_bytes = ctx * c->n_layers * kv_per_token * 4; /* F32 cache */
    out->dense_bytes = f->dense_bytes_total;
    out->expert_bytes = f->expert_bytes_total;
    for (uint64_t i = 0; i < f->n_pages; i++)
        out->expert_bytes_padded += (f->pages[i].bytes + VIB3_PAGE_ALIGN - 1) / VIB3_PAGE_ALIGN * VIB3_PAGE_ALIGN;
    /* the buffer manager's rule (storage/pages.c), so info says what run will do: frames of the largest
     * page, out of the budget less dense weights + KV + runtime scratch; at least threads + 2 of them */
    vib3_config bc = *cfg;
    bc.ram_budget_bytes = out->ram_budget;
    bc.ctx_size = (uint32_t)ctx;
    uint64_t frames_bytes = vib3_pages_frames_budget(f, &bc), frame = VIB3_PAGE_ALIGN;
    for (uint64_t i = 0; i < f->n_pages; i++) {
        uint64_t b = (f->pages[i].bytes + VIB3_PAGE_ALIGN - 1) / VIB3_PAGE_ALIGN * VIB3_PAGE_ALIGN;
        if (b > frame) frame = b;
    }
    uint64_t n_frames = frames_bytes / frame, min_frames = (cfg->threads ? cfg->threads : 2) + 2;
    bc.ram_budget_bytes = 1ull << 50;
    out->min_ram_budget = min_frames * frame + ((1ull << 50) - vib3_pages_frames_budget(f, &bc));
    out->runs = f->n_pages == 0 || n_frames >= min_frames;
    out->pages_resident = n_frames < f->n_pages ? n_frames : f->n_pages;
    out->pages_on_disk = f->n_pages - out->pages_resident;
    out->fits = out->pages_on_disk == 0 && out->runs;
    /* worst case per token: the pages of top-k routed experts + shared experts + dense FFNs, all layers */
    for (uint32_t l = 0; l < c->n_layers; l++) {
        uint64_t routed_max = 0;
        for (uint32_t s = 0; s < f->n_slots; s++) {
            uint64_t first;
            uint32_t count;
            if (!vib3_file_slot_pages(f, l, s, &first, &count)) continue;
            uint64_t bytes = 0;
            for (uint32_t k = 0; k < count; k++) bytes += f->pages[first + k].bytes;
            if (f->pages[first].kind == VIB3_PAGE_ROUTED) {
                if (bytes > routed_max) routed_max = bytes;
            } else {
                out->active_expert_bytes += bytes;
            }
        }
        out->active_expert_bytes += routed_max * c->n_experts_per_tok;
    }
}

/* pages whose dtype differs from the file's expert dtype (the converter's --q8-layers): their
 * count, dtype and layer range; the largest page (frames are sized by it) */
typedef struct page_mix {
    uint64_t n_other, max_bytes;
    uint32_t other_dtype, layer_lo, layer_hi;
} page_mix;

static page_mix page_mix_of(const vib3_file *f) {
    page_mix m = {0, 0, 0, UINT32_MAX, 0};
    for (uint64_t i = 0; i < f->n_pages; i++) {
        const vib3_page_entry *p = &f->pages[i];
        if (p->bytes > m.max_bytes) m.max_bytes = p->bytes;
        if (p->dtype == f->config->expert_dtype) continue;
        m.n_other++;
        m.other_dtype = p->dtype;
        if (p->layer < m.layer_lo) m.layer_lo = p->layer;
        if (p->layer > m.layer_hi) m.layer_hi = p->layer;
    }
    return m;
}

static const char *tag_name(uint32_t tag, char *buf) {
    memcpy(buf, &tag, 4);
    buf[4] = 0;
    return buf;
}

static void print_json(const vib3_file *f, const fit *ft, int verified) {
    const vib3_model_config *c = f->config;
    uint64_t total, active;
    vib3_file_param_counts(f, &total, &active);
    char path[2200];
    vib3_json_write_str(path, sizeof path, f->path, strlen(f->path));
    page_mix mix = page_mix_of(f);
    uint64_t page_bytes = mix.max_bytes;
    printf("{\"path\": %s, \"arch\": \"%s\", \"n_layers\": %u, \"n_experts\": %u, \"n_experts_per_tok\": %u, "
           "\"n_shared_experts\": %u, \"hidden_size\": %u, \"vocab_size\": %u, \"n_heads\": %u, \"n_kv_heads\": %u, "
           "\"head_dim\": %u, \"ffn_size\": %u, \"moe_ffn_size\": %u, \"first_k_dense\": %u, \"max_position\": %u, "
           "\"params_total\": %llu, \"params_active\": %llu, \"quant\": \"%s\", \"dense_quant\": \"%s\", "
           "\"page_neurons\": %u, \"n_pages\": %llu, \"page_bytes\": %llu, \"file_bytes\": %llu, "
           "\"expert_bytes\": %llu, \"dense_bytes\": %llu, \"sig_dim\": %u, ",
           path, vib3_arch_name(c->arch), c->n_layers, c->n_experts, c->n_experts_per_tok, c->n_shared_experts,
           c->hidden_size, c->vocab_size, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_size, c->moe_ffn_size,
           c->first_k_dense, c->max_position, (unsigned long long)total, (unsigned long long)active,
           vib3_dtype_name(c->expert_dtype), vib3_dtype_name(c->dense_dtype), c->page_neurons,
           (unsigned long long)f->n_pages, (unsigned long long)page_bytes, (unsigned long long)f->file_size,
           (unsigned long long)f->expert_bytes_total, (unsigned long long)f->dense_bytes_total, c->sig_dim);
    if (mix.n_other)
        printf("\"other_page_dtype\": \"%s\", \"other_dtype_pages\": %llu, \"other_dtype_layers\": [%u, %u], ",
               vib3_dtype_name((vib3_dtype)mix.other_dtype), (unsigned long long)mix.n_other, mix.layer_lo, mix.layer_hi);
    printf("\"sections\": [");
    for (uint32_t i = 0; i < f->n_sections; i++) {
        char t[8];
        printf("%s{\"tag\": \"%s\", \"bytes\": %llu, \"checksum\": \"ok\"}", i ? ", " : "", tag_name(f->sections[i].tag, t),
               (unsigned long long)f->sections[i].bytes);
    }
    printf("], \"data_verified\": %s, \"fit\": {\"ram_budget_bytes\": %llu, \"min_ram_budget_bytes\": %llu, "
           "\"runs\": %s, \"ctx_size\": %llu, \"kv_cache_bytes\": %llu, "
           "\"fits_in_ram\": %s, \"pages_resident\": %llu, \"pages_on_disk\": %llu, "
           "\"worst_case_read_bytes_per_token\": %llu}}\n",
           verified ? "true" : "false", (unsigned long long)ft->ram_budget, (unsigned long long)ft->min_ram_budget,
           ft->runs ? "true" : "false", (unsigned long long)ft->ctx,
           (unsigned long long)ft->kv_bytes,
           ft->fits ? "true" : "false", (unsigned long long)ft->pages_resident, (unsigned long long)ft->pages_on_disk,
           (unsigned long long)ft->active_expert_bytes);
}

static void print_text(const vib3_file *f, const fit *ft, int verified) {
    const vib3_model_config *c = f->config;
    uint64_t total, active;
    char a[32], b[32], d[32];
    vib3_file_param_counts(f, &total, &active);
    printf("%s\n", f->path);
    printf("  architecture   %s, %u layers, hidden %u, vocab %u\n", vib3_arch_name(c->arch), c->n_layers,
           c->hidden_size, c->vocab_size);
    printf("  attention      %u heads (%u kv), head dim %u%s\n", c->n_heads, c->n_kv_heads, c->head_dim,
           c->arch == VIB3_ARCH_DEEPSEEK_V3 ? " (MLA)" : "");
    if (c->n_experts)
        printf("  experts        %u routed (top-%u, ffn %u), %u shared, %u dense layers first\n", c->n_experts,
               c->n_experts_per_tok, c->moe_ffn_size, c->n_shared_experts, c->first_k_dense);
    else
        printf("  ffn            dense, %u\n", c->ffn_size);
    printf("  parameters     %.3fM total, %.3fM active per token\n", total / 1e6, active / 1e6);
    page_mix mix = page_mix_of(f);
    char lay[48] = "";
    if (mix.n_other && mix.layer_lo == mix.layer_hi) snprintf(lay, sizeof lay, " (layer %u: %s)", mix.layer_lo, vib3_dtype_name((vib3_dtype)mix.other_dtype));
    else if (mix.n_other) snprintf(lay, sizeof lay, " (layers %u-%u: %s)", mix.layer_lo, mix.layer_hi, vib3_dtype_name((vib3_dtype)mix.other_dtype));
    printf("  quantization   experts %s%s, other weights %s\n", vib3_dtype_name(c->expert_dtype), lay,
           vib3_dtype_name(c->dense_dtype));
    printf("  pages          %llu of up to %u neurons, up to %s each (%s of experts, %s of other weights)\n",
           (unsigned long long)f->n_pages, c->page_neurons, vib3_format_size(mix.max_bytes, a, sizeof a),
           vib3_format_size(f->expert_bytes_total, b, sizeof b), vib3_format_size(f->dense_bytes_total, d, sizeof d));
    printf("  sections      ");
    for (uint32_t i = 0; i < f->n_sections; i++) {
        char t[8];
        printf(" %s(%s)", tag_name(f->sections[i].tag, t), vib3_format_size(f->sections[i].bytes, a, sizeof a));
    }
    printf("\n  checksums      header, section table and all sections ok; data %s\n",
           verified ? "ok (every tensor and page verified)" : "not verified (--verify)");
    char m[32];
    printf("  fit            RAM budget %s: %s; KV cache %s (%llu positions, F32); runs from %s\n",
           vib3_format_size(ft->ram_budget, a, sizeof a),
           !ft->runs ? "too small to run" : ft->fits ? "fits entirely" : "does not fit entirely",
           vib3_format_size(ft->kv_bytes, b, sizeof b), (unsigned long long)ft->ctx,
           vib3_format_size(ft->min_ram_budget, m, sizeof m));
    printf("                 %llu pages resident, %llu on disk; worst case %s read per token\n",
           (unsigned long long)ft->pages_resident, (unsigned long long)ft->pages_on_disk,
           vib3_format_size(ft->active_expert_bytes, d, sizeof d));
}

/* the budgets and context the fit is computed for */
#define INFO_SETTINGS (VIB3_CLI_SET_MEMORY | VIB3_CLI_SET_CTX | VIB3_CLI_SET_HOME)

int vib3_cmd_info(int argc, char **argv, vib3_config *cfg) {
    int json = 0, verify = 0;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        int r = vib3_cli_settings_flag(cfg, argc, argv, &i, "info", INFO_SETTINGS);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vib3 info <model|file.vib3> [--json] [--verify] [--ram-budget SIZE] [-c N]\n"
                   "describe a model and whether it fits the configured budgets\n"
                   "  --json                 machine-readable output\n"
                   "  --verify               checksum every tensor and page (reads the whole file)\n");
            vib3_cli_settings_help(stdout, INFO_SETTINGS);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--verify")) verify = 1;
        else if (argv[i][0] == '-') return vib3_cli_usage_error("info", "unknown option '%s'", argv[i]);
        else if (!model) model = argv[i];
        else return vib3_cli_usage_error("info", "unexpected argument '%s'", argv[i]);
    }
    if (!model) return vib3_cli_usage_error("info", "missing <model>");
    char path[VIB3_PATH_MAX];
    /* never a download: describing a model that is not here is not a reason to fetch it */
    if (vib3_cli_find_model(cfg, model, path, sizeof path) != VIB3_OK) return vib3_cli_fail("info");
    vib3_arena arena;
    if (vib3_arena_init(&arena, 256u << 20, "info", 0) != VIB3_OK) return vib3_cli_fail("info");
    vib3_file f;
    if (vib3_file_open(&f, path, &arena, verify ? VIB3_OPEN_VERIFY_DATA : 0) != VIB3_OK) {
        vib3_arena_fini(&arena);
        return vib3_cli_fail("info");
    }
    fit ft;
    compute_fit(&f, cfg, &ft);
    if (json) print_json(&f, &ft, verify);
    else print_text(&f, &ft, verify);
    vib3_file_close(&f);
    vib3_arena_fini(&arena);
    return 0;
}
