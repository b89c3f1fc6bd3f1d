/* bench_model.c — `vib3 bench <model> [-p 512] [-n 128] [-d 0] [-r 3] [-t N] [--json]`
 * with llama-bench's meaning of the flags:
 *   pp<p>  prompt processing: p token ids evaluated as one prefill
 *          (micro-batches of batch_size), tok/s = p / time;
 *   tg<n>  text generation: n single-token decode steps, tok/s = n / time;
 *   @ d<d> both start from a KV cache already holding d tokens (llama-bench's
 *          -d/--n-depth; filled before each repetition, not timed); d = 0 is
 *          an empty cache.
 * The context is sized to what the tests need, max(d) + max(p, n) + 1, as
 * llama-bench sizes n_ctx; so -c/--ctx-size is refused (llama-bench has no -c
 * either): a long context is measured with -d. Every option listed by --help
 * changes what is measured or how it is shown; no other option is accepted.
 * Each test runs once to warm up, then r timed repetitions; the table shows
 * mean ± sample standard deviation of the per-repetition tok/s. Token ids are
 * a fixed pseudo-random sequence (llama-bench also feeds random ids).
 * Several values are accepted as "-p 128,512". --json prints llama-bench's
 * field names (avg_ts, stddev_ts, samples_ts, n_prompt, n_gen, n_depth,
 * n_threads, n_batch, type_k, type_v).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/engine.h"

#define BENCH_LIST_MAX 16
#define BENCH_REPS_MAX 64

/* the engine settings that change a model benchmark (and are listed by --help); -b is bench's own */
#define BENCH_SETTINGS (VIB3_CLI_SET_MEMORY | VIB3_CLI_SET_THREADS | VIB3_CLI_SET_STORAGE | VIB3_CLI_SET_HOME)

static void usage(FILE *out) {
    fprintf(out,
            "usage: vib3 bench <model> [-p 512] [-n 128] [-d 0] [-r 3] [-t N] [--json] [settings]   (llama-bench flags)\n"
            "  -p, --n-prompt N[,N..] prompt tokens per pp test (0 = no pp test; default 512)\n"
            "  -n, --n-gen N[,N..]    generated tokens per tg test (0 = no tg test; default 128)\n"
            "  -d, --n-depth N[,N..]  tokens already in the KV cache when each test starts (default 0)\n"
            "  -r, --repetitions N    timed repetitions per test, after one warm-up (default 3)\n"
            "  -b, --batch-size N     prefill micro-batch (default min(p, 512))\n"
            "  --kv-f16               F16 KV cache (default F32)\n"
            "  -o, --output json|md   output format (default md: a markdown table)\n"
            "  --json, -oj            one JSON array, llama-bench field names (= -o json)\n"
            "the context is sized from -p/-n/-d (max d + max(p, n) + 1), as llama-bench does: no -c\n");
    vib3_cli_settings_help(out, BENCH_SETTINGS);
}

static int parse_list(const char *s, uint32_t *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > (1 << 24)) return -1;
        out[n++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

typedef struct bench_result {
    char test[48];
    uint32_t n_prompt, n_gen, n_depth;
    double ts[BENCH_REPS_MAX];
    uint32_t reps;
    double avg, sd;
} bench_result;

static void summarize(bench_result *r) {
    double s = 0, s2 = 0;
    for (uint32_t i = 0; i < r->reps; i++) s += r->ts[i];
    r->avg = r->reps ? s / r->reps : 0;
    for (uint32_t i = 0; i < r->reps; i++) s2 += (r->ts[i] - r->avg) * (r->ts[i] - r->avg);
    r->sd = r->reps > 1 ? sqrt(s2 / (r->reps - 1)) : 0;
}

static uint32_t bench_id(uint64_t *state, uint32_t vocab) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) % vocab);
}

/* an empty cache, then d tokens in it (not timed: llama-bench's depth); 0 ok, -1 on error */
static int fill_depth(vib3_seq *s, uint32_t *ids, uint32_t d, uint32_t vocab, uint64_t seed) {
    vib3_seq_reset(s);
    if (d == 0) return 0;
    for (uint32_t i = 0; i < d; i++) ids[i] = bench_id(&seed, vocab);
    return vib3_seq_prefill(s, ids, d, NULL) == VIB3_OK ? 0 : -1;
}

/* one pp run at depth d: returns seconds, or < 0 on error */
static double run_pp(vib3_seq *s, uint32_t *ids, uint32_t p, uint32_t d, uint32_t vocab, uint64_t seed) {
    if (fill_depth(s, ids, d, vocab, seed ^ 0x5eed) != 0) return -1;
    for (uint32_t i = 0; i < p; i++) ids[i] = bench_id(&seed, vocab);
    uint64_t t0 = vib3_now_ns();
    if (vib3_seq_prefill(s, ids, p, NULL) != VIB3_OK) return -1;
    return (vib3_now_ns() - t0) / 1e9;
}

static double run_tg(vib3_seq *s, uint32_t *ids, uint32_t n, uint32_t d, uint32_t vocab, uint64_t seed) {
    if (fill_depth(s, ids, d, vocab, seed ^ 0x5eed) != 0) return -1;
    uint64_t t0 = vib3_now_ns();
    for (uint32_t i = 0; i < n; i++)
        if (vib3_seq_decode(s, bench_id(&seed, vocab)) != VIB3_OK) return -1;
    return (vib3_now_ns() - t0) / 1e9;
}

/* weight bytes one decode step reads: every non-expert tensor (one row of an untied
 * embedding), the dense FFN pages, k / n_experts of the routed pages (their mean) and
 * the shared experts */
static uint64_t active_bytes_per_token(const vib3_file *f) {
    const vib3_model_config *c = f->config;
    uint64_t b = 0;
    bool tied = vib3_file_find_tensor(f, "output.weight") == NULL;
    for (uint32_t i = 0; i < f->n_tensors; i++) {
        const vib3_tensor_entry *t = &f->tensors[i];
        if (!tied && !strcmp(t->name, "token_embd.weight")) b += t->bytes / (t->dims[0] ? t->dims[0] : 1);
        else b += t->bytes;
    }
    for (uint32_t l = 0; l < c->n_layers; l++) {
        uint64_t routed = 0;
        for (uint32_t s = 0; s < f->n_slots; s++) {
            uint64_t first, sb = 0;
            uint32_t count;
            if (!vib3_file_slot_pages(f, l, s, &first, &count)) continue;
            for (uint32_t p = 0; p < count; p++) sb += f->pages[first + p].bytes;
            if (c->n_experts && l >= c->first_k_dense && s < c->n_experts) routed += sb;
            else b += sb;
        }
        if (c->n_experts) b += routed * c->n_experts_per_tok / c->n_experts;
    }
    return b;
}

int vib3_bench_model(int argc, char **argv, vib3_config *cfg) {
    const char *model = NULL;
    uint32_t pp[BENCH_LIST_MAX] = {512}, tg[BENCH_LIST_MAX] = {128}, dd[BENCH_LIST_MAX] = {0};
    int n_pp = 1, n_tg = 1, n_dd = 1;
    uint32_t reps = 3, batch = 0;
    bool json = false, kv_f16 = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        if (i == 0) {
            model = a;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json") || !strcmp(a, "-oj")) json = true;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "-o")) || (v = vib3_cli_flag_value(argc, argv, &i, "--output"))) {
            if (strcmp(v, "json") && strcmp(v, "md"))
                return vib3_cli_usage_error("bench", "option %s: '%s' is not json or md", a, v);
            json = !strcmp(v, "json");
        } else if (!strcmp(a, "--kv-f16")) kv_f16 = true;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "-p")) || (v = vib3_cli_flag_value(argc, argv, &i, "--n-prompt"))) {
            if ((n_pp = parse_list(v, pp, BENCH_LIST_MAX)) <= 0)
                return vib3_cli_usage_error("bench", "option %s: '%s' is not a list of token counts", a, v);
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "-n")) || (v = vib3_cli_flag_value(argc, argv, &i, "--n-gen"))) {
            if ((n_tg = parse_list(v, tg, BENCH_LIST_MAX)) <= 0)
                return vib3_cli_usage_error("bench", "option %s: '%s' is not a list of token counts", a, v);
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "-d")) || (v = vib3_cli_flag_value(argc, argv, &i, "--n-depth"))) {
            if ((n_dd = parse_list(v, dd, BENCH_LIST_MAX)) <= 0)
                return vib3_cli_usage_error("bench", "option %s: '%s' is not a list of token counts", a, v);
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "-r")) ||
                   (v = vib3_cli_flag_value(argc, argv, &i, "--repetitions"))) {
            if (vib3_cli_parse_u32("bench", a, v, 1, BENCH_REPS_MAX, &reps)) return 2;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "-b")) ||
                   (v = vib3_cli_flag_value(argc, argv, &i, "--batch-size"))) {
            if (vib3_cli_parse_u32("bench", a, v, 1, 1u << 16, &batch)) return 2;
        } else if (!strcmp(a, "-c") || !strncmp(a, "--ctx-size", 10)) {
            return vib3_cli_usage_error("bench", "option %s is not a bench option: the context is sized from -p/-n/-d "
                                                 "(as llama-bench); to measure with N tokens already cached use -d N", a);
        } else {
            int r = vib3_cli_settings_flag(cfg, argc, argv, &i, "bench", BENCH_SETTINGS);
            if (r < 0) return 2;
            if (r == 0) return vib3_cli_usage_error("bench", "unknown option %s", a);
        }
    }
    char path[VIB3_PATH_MAX];
    if (vib3_cli_resolve_model(cfg, model, path, sizeof path) != VIB3_OK) return vib3_cli_fail("bench");
    uint32_t p_max = 0, n_max = 0, d_max = 0;
    for (int i = 0; i < n_pp; i++) p_max = pp[i] > p_max ? pp[i] : p_max;
    for (int i = 0; i < n_tg; i++) n_max = tg[i] > n_max ? tg[i] : n_max;
    for (int i = 0; i < n_dd; i++) d_max = dd[i] > d_max ? dd[i] : d_max;
    if ((uint64_t)d_max + (p_max > n_max ? p_max : n_max) + 1 > (1u << 24))
        return vib3_cli_usage_error("bench", "-d %u with -p %u / -n %u: more than %u positions", d_max, p_max, n_max, 1u << 24);
    vib3_engine_params ep = {0};
    ep.n_seq = 1;
    ep.ctx_size = d_max + (p_max > n_max ? p_max : n_max) + 1;
    ep.batch_size = batch ? batch : (p_max && p_max < 512 ? p_max : 512);
    ep.kv_dtype = kv_f16 ? VIB3_DTYPE_F16 : VIB3_DTYPE_F32;
    ep.flags = VIB3_ENGINE_NO_TOKENIZER;
    vib3_engine *e;
    if (vib3_engine_open(&e, path, cfg, &ep) != VIB3_OK) return vib3_cli_fail("bench");
    vib3_seq *s;
    if (vib3_seq_acquire(e, &s) != VIB3_OK) {
        vib3_engine_close(e);
        return vib3_cli_fail("bench");
    }
    uint32_t vocab = vib3_engine_vocab(e);
    /* CLI set-up, not the token path */
    uint32_t *ids = calloc((p_max > d_max ? p_max : d_max) + 1, sizeof *ids);
    bench_result *res = calloc(2 * BENCH_LIST_MAX * BENCH_LIST_MAX, sizeof *res);
    if (!ids || !res) {
        free(ids);
        free(res);
        vib3_seq_release(s);
        vib3_engine_close(e);
        return vib3_cli_error("bench", "out of memory");
    }
    int n_res = 0, rc = 0;
    for (int kind = 0; kind < 2 && rc == 0; kind++) {
        int n = kind == 0 ? n_pp : n_tg;
        for (int i = 0; i < n * n_dd && rc == 0; i++) {
            uint32_t t = kind == 0 ? pp[i / n_dd] : tg[i / n_dd], d = dd[i % n_dd];
            if (t == 0) continue;
            bench_result *r = &res[n_res++];
            memset(r, 0, sizeof *r);
            if (d) snprintf(r->test, sizeof r->test, "%s%u @ d%u", kind == 0 ? "pp" : "tg", t, d); /* llama-bench's name */
            else snprintf(r->test, sizeof r->test, "%s%u", kind == 0 ? "pp" : "tg", t);
            r->n_prompt = kind == 0 ? t : 0;
            r->n_gen = kind == 0 ? 0 : t;
            r->n_depth = d;
            for (uint32_t rep = 0; rep <= reps; rep++) {   /* rep 0 = warm-up */
                double sec = kind == 0 ? run_pp(s, ids, t, d, vocab, 1234 + rep) : run_tg(s, ids, t, d, vocab, 4321 + rep);
                if (sec < 0) {
                    rc = vib3_cli_fail("bench");
                    break;
                }
                if (rep > 0) r->ts[r->reps++] = t / sec;
            }
            summarize(r);
        }
    }
    if (rc == 0) {
        const vib3_file *f = vib3_engine_file(e);
        uint64_t params_total = 0, params_active = 0;
        vib3_file_param_counts(f, &params_total, &params_active);
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        uint64_t active = active_bytes_per_token(f);
        char size[32];
        vib3_format_size(f->file_size, size, sizeof size);
        if (json) {
            printf("[\n");
            for (int i = 0; i < n_res; i++) {
                bench_result *r = &res[i];
                printf("  {\"model_filename\": \"%s\", \"model_type\": \"%s %s\", \"model_size\": %llu, "
                       "\"model_n_params\": %llu, \"model_n_params_active\": %llu, \"n_threads\": %u, "
                       "\"n_batch\": %u, \"n_ctx\": %u, \"type_k\": \"%s\", \"type_v\": \"%s\", \"test\": \"%s\", "
                       "\"n_prompt\": %u, \"n_gen\": %u, \"n_depth\": %u, \"avg_ts\": %.6f, "
                       "\"stddev_ts\": %.6f, \"active_bytes_per_token\": %llu, \"weight_gb_s\": %.3f, \"samples_ts\": [",
                       name, vib3_arch_name(vib3_engine_model(e)->arch),
                       vib3_dtype_name(vib3_engine_model(e)->expert_dtype), (unsigned long long)f->file_size,
                       (unsigned long long)params_total, (unsigned long long)params_active, vib3_engine_threads(e),
                       vib3_engine_batch_size(e), vib3_engine_ctx_size(e), kv_f16 ? "f16" : "f32", kv_f16 ? "f16" : "f32",
                       r->test, r->n_prompt, r->n_gen, r->n_depth, r->avg, r->sd,
                       (unsigned long long)active, r->n_gen ? r->avg * active / 1e9 : 0.0);
                for (uint32_t k = 0; k < r->reps; k++) printf("%s%.6f", k ? ", " : "", r->ts[k]);
                printf("]}%s\n", i + 1 < n_res ? "," : "");
            }
            printf("]\n");
        } else {
            printf("| model | size | params | backend | threads | test | t/s | weights GB/s |\n");
            printf("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
            for (int i = 0; i < n_res; i++) {
                char gbs[32] = "";
                if (res[i].n_gen) snprintf(gbs, sizeof gbs, "%.2f", res[i].avg * active / 1e9);
                printf("| %s %s | %s | %.2f M | CPU | %u | %s | %.2f ± %.2f | %s |\n",
                       vib3_arch_name(vib3_engine_model(e)->arch), vib3_dtype_name(vib3_engine_model(e)->expert_dtype),
                       size, params_total / 1e6, vib3_engine_threads(e), res[i].test, res[i].avg, res[i].sd, gbs);
            }
            char ab[32];
            printf("(decode reads %s of weights per token: dense tensors + k/n of the routed experts' pages)\n",
                   vib3_format_size(active, ab, sizeof ab));
        }
    }
    free(ids);
    free(res);
    vib3_seq_release(s);
    vib3_engine_close(e);
    return rc;
}
