/* cmd_perplexity.c — `vib3 perplexity <model> --file text.txt [--ctx-size N] [--json]`
 *
 * Protocol (llama-perplexity's windows; the same as tinymix-brown's
 * reference.json "heldout_perplexity"): ids = tokenizer(text) with BOS when
 * the model adds one, optionally cut to the first --max-tokens ids; split
 * into consecutive non-overlapping windows of ctx ids (the last one shorter
 * unless --full-windows); each window is evaluated from position 0 with a
 * fresh KV cache. By default every id after the first of its window is
 * scored; --second-half scores only the second half of each window, as
 * llama-perplexity does. ppl = exp(mean NLL); the ± is the standard error
 * of the mean NLL carried through exp (llama.cpp's estimate).
 *
 * Quantization comparison: --save-logits FILE writes every scored position's
 * log-probabilities (F16) from this model; --kl-base FILE reads such a file
 * (made from e.g. the F32 conversion, same text and flags) and reports the
 * mean KL(base || this), its maximum, and top-1 agreement, like
 * llama-perplexity --kl-divergence.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"
#include "runtime/vexpert.h"
#include "simd/simd.h"

#define KLB_MAGIC "VIB3KLB1"

typedef struct klb_header {
    char magic[8];
    uint32_t n_vocab, n_positions;   /* positions written */
    uint32_t ctx, flags;             /* flags bit0 = second half */
    uint32_t reserved[2];
} klb_header;

/* -c/--ctx-size is listed above with its meaning here (the window length) */
#define PPL_SETTINGS (VIB3_CLI_SET_ENGINE & ~VIB3_CLI_SET_CTX)

static void usage(FILE *out) {
    fprintf(out,
            "usage: vib3 perplexity <model> --file text.txt [options]   (or -m/--model <model>, as llama-perplexity)\n"
            "  -f, --file PATH        text to score\n"
            "  -c, --ctx-size N       window length (default: 512, or the model's trained context if shorter)\n"
            "  --max-tokens N         use only the first N ids, BOS included (default 0 = all)\n"
            "  --second-half          score only the second half of each window (llama-perplexity)\n"
            "  --full-windows         drop a last window shorter than ctx\n"
            "  --save-logits FILE     write scored log-probs (F16) for a later --kl-base\n"
            "  --kl-base FILE         mean KL(base || this model) and top-1 agreement vs a saved file\n"
            "  --kv-f16               F16 KV cache (default F32)\n"
            "  --json                 one JSON object\n");
    vib3_cli_settings_help(out, PPL_SETTINGS);
    fputs(vib3_ve_cli_help, out);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0, *len = (size_t)n;
    return b;
}

int vib3_cmd_perplexity(int argc, char **argv, vib3_config *cfg) {
    const char *model = NULL, *file = NULL, *save = NULL, *base = NULL;
    uint64_t max_tokens = 0;
    bool json = false, second_half = false, full = false, kv_f16 = false;
    vib3_ve_params ve = {0};
    const char *ve_err = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--second-half")) second_half = true;
        else if (!strcmp(a, "--full-windows")) full = true;
        else if (!strcmp(a, "--kv-f16")) kv_f16 = true;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "-f")) || (v = vib3_cli_flag_value(argc, argv, &i, "--file"))) file = v;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "-m")) || (v = vib3_cli_flag_value(argc, argv, &i, "--model"))) {
            if (model) return vib3_cli_usage_error("perplexity", "two models: %s and %s", model, v);
            model = v;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--save-logits"))) save = v;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "--kl-base"))) base = v;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "--max-tokens"))) {
            if (vib3_cli_parse_u64("perplexity", "--max-tokens", v, 0, UINT64_MAX, &max_tokens)) return 2;
        }
        else if (vib3_ve_parse_flag(&ve, argc, argv, &i, &ve_err) != 0) {
            if (ve_err) return vib3_cli_usage_error("perplexity", "option %s: %s", a, ve_err);
        } else if (a[0] == '-' && a[1]) {
            int r = vib3_cli_settings_flag(cfg, argc, argv, &i, "perplexity", PPL_SETTINGS | VIB3_CLI_SET_CTX);
            if (r < 0) return 2;
            if (r == 0) return vib3_cli_usage_error("perplexity", "unknown option %s", a);
        } else if (!model) model = a;
        else return vib3_cli_usage_error("perplexity", "unexpected argument '%s'", a);
    }
    if (!model || !file) return vib3_cli_usage_error("perplexity", "need <model> and --file");
    char path[VIB3_PATH_MAX];
    if (vib3_cli_resolve_model(cfg, model, path, sizeof path) != VIB3_OK) return vib3_cli_fail("perplexity");
    size_t text_len = 0;
    char *text = slurp(file, &text_len);
    if (!text) return vib3_cli_error("perplexity", "%s: cannot read", file);

    vib3_engine_params ep = {0};
    ep.n_seq = 1;
    ep.ctx_size = cfg->ctx_size; /* 0: the engine takes the model's trained context (at most 4096) */
    ep.kv_dtype = kv_f16 ? VIB3_DTYPE_F16 : VIB3_DTYPE_F32;
    ep.text_bytes_max = text_len + 16;
    vib3_engine *e;
    if (vib3_engine_open(&e, path, cfg, &ep) != VIB3_OK) {
        free(text);
        return vib3_cli_fail("perplexity");
    }
    if (ve.mode && vib3_ve_enable(e, &ve) != VIB3_OK) {
        vib3_engine_close(e);
        free(text);
        return vib3_cli_fail("perplexity");
    }
    int ret = 0;
    vib3_seq *s = NULL;
    uint32_t *ids = NULL;
    float *logits = NULL;
    uint16_t *lp16 = NULL, *base16 = NULL;
    FILE *fsave = NULL, *fbase = NULL;
    vib3_tokenizer *tok = vib3_engine_tokenizer(e);
    uint32_t V = vib3_engine_vocab(e), ctx = vib3_engine_ctx_size(e), B = vib3_engine_batch_size(e);
    if (!cfg->ctx_size && ctx > 512) ctx = 512; /* llama-perplexity's default window, never past the trained context */
    if (ctx > vib3_engine_model(e)->max_position)
        fprintf(stderr, "vib3 perplexity: warning: window %u is longer than the model's trained context %u\n", ctx,
                vib3_engine_model(e)->max_position);
    if (!tok) {
        ret = vib3_cli_error("perplexity", "%s has no tokenizer", path);
        goto done;
    }
    size_t cap = text_len + 16, n_ids = 0;
    ids = malloc(cap * sizeof *ids);
    logits = malloc((size_t)B * V * sizeof *logits);
    lp16 = malloc((size_t)V * sizeof *lp16);
    base16 = malloc((size_t)V * sizeof *base16);
    if (!ids || !logits || !lp16 || !base16) {
        ret = vib3_cli_error("perplexity", "out of memory");
        goto done;
    }
    if (vib3_tokenizer_encode(tok, text, text_len, VIB3_TOK_ADD_SPECIAL, ids, cap, &n_ids) != VIB3_OK ||
        vib3_seq_acquire(e, &s) != VIB3_OK) {
        ret = vib3_cli_fail("perplexity");
        goto done;
    }
    /* like reference.json: BOS counts among the first N ids */
    if (max_tokens && n_ids > max_tokens) n_ids = max_tokens;
    klb_header kh = {KLB_MAGIC, V, 0, ctx, second_half ? 1u : 0u, {0, 0}};
    if (save) {
        if (!(fsave = fopen(save, "wb")) || fwrite(&kh, sizeof kh, 1, fsave) != 1) {
            ret = vib3_cli_error("perplexity", "%s: cannot write", save);
            goto done;
        }
    }
    klb_header bh;
    if (base) {
        if (!(fbase = fopen(base, "rb")) || fread(&bh, sizeof bh, 1, fbase) != 1 || memcmp(bh.magic, KLB_MAGIC, 8) ||
            bh.n_vocab != V || bh.ctx != ctx || bh.flags != kh.flags) {
            ret = vib3_cli_error("perplexity", "%s: not a logits file for vocab %u, ctx %u, same scoring", base, V, ctx);
            goto done;
        }
    }
    double nll = 0, nll2 = 0, kl_sum = 0, kl_max = 0;
    uint64_t n_scored = 0, n_kl = 0, top1_same = 0;
    uint32_t windows = 0;
    uint64_t t0 = vib3_now_ns();
    for (size_t w0 = 0; w0 + 1 < n_ids; w0 += ctx) {
        size_t wn = n_ids - w0 < ctx ? n_ids - w0 : ctx;
        if (full && wn < ctx) break;
        size_t first_scored = second_half ? wn / 2 : 0;   /* position whose logits predict the next id */
        vib3_seq_reset(s);
        windows++;
        for (size_t c0 = 0; c0 < wn; c0 += B) {
            size_t cn = wn - c0 < B ? wn - c0 : B;
            if (vib3_seq_prefill(s, ids + w0 + c0, (uint32_t)cn, logits) != VIB3_OK) {
                ret = vib3_cli_fail("perplexity");
                goto done;
            }
            for (size_t i = 0; i < cn; i++) {
                size_t pos = c0 + i;
                if (pos + 1 >= wn || pos < first_scored) continue;
                const float *lg = logits + i * V;
                float mx = lg[0];
                for (uint32_t k = 1; k < V; k++) mx = lg[k] > mx ? lg[k] : mx;
                double z = 0;
                for (uint32_t k = 0; k < V; k++) z += exp((double)lg[k] - mx);
                double lse = mx + log(z);
                double x = lse - lg[ids[w0 + pos + 1]];
                nll += x;
                nll2 += x * x;
                n_scored++;
                if (fsave || fbase)
                    for (uint32_t k = 0; k < V; k++) lp16[k] = vib3_f32_to_f16((float)(lg[k] - lse));
                if (fsave && fwrite(lp16, sizeof *lp16, V, fsave) != V) {
                    ret = vib3_cli_error("perplexity", "%s: write failed", save);
                    goto done;
                }
                if (fbase) {
                    if (fread(base16, sizeof *base16, V, fbase) != V) {
                        ret = vib3_cli_error("perplexity", "%s: fewer positions than this run", base);
                        goto done;
                    }
                    double kl = 0;
                    uint32_t am_b = 0, am_t = 0;
                    double best_b = -INFINITY;
                    for (uint32_t k = 0; k < V; k++) {
                        double lb = vib3_f16_to_f32(base16[k]), lt = vib3_f16_to_f32(lp16[k]);
                        kl += exp(lb) * (lb - lt);
                        if (lb > best_b) best_b = lb, am_b = k;
                        if (lg[k] > lg[am_t]) am_t = k;
                    }
                    kl_sum += kl;
                    kl_max = kl > kl_max ? kl : kl_max;
                    top1_same += am_b == am_t;
                    n_kl++;
                }
            }
        }
    }
    double secs = (vib3_now_ns() - t0) / 1e9;
    if (fsave) {
        kh.n_positions = (uint32_t)n_scored;
        if (fseek(fsave, 0, SEEK_SET) || fwrite(&kh, sizeof kh, 1, fsave) != 1)
            ret = vib3_cli_error("perplexity", "%s: write failed", save);
    }
    if (n_scored == 0) {
        ret = vib3_cli_error("perplexity", "%s: too few tokens (%zu) to score", file, n_ids);
        goto done;
    }
    double mean = nll / n_scored, var = nll2 / n_scored - mean * mean;
    double ppl = exp(mean), err = ppl * sqrt(var > 0 ? var / (n_scored - (n_scored > 1)) : 0);
    if (json) {
        printf("{\"model\": \"%s\", \"file\": \"%s\", \"tokens\": %zu, \"scored_tokens\": %llu, \"windows\": %u, "
               "\"ctx\": %u, \"scoring\": \"%s\", \"nll_mean\": %.8f, \"ppl\": %.6f, \"ppl_stderr\": %.6f, "
               "\"seconds\": %.3f, \"tok_s\": %.2f",
               path, file, n_ids, (unsigned long long)n_scored, windows, ctx, second_half ? "second_half" : "all",
               mean, ppl, err, secs, n_ids / secs);
        if (n_kl)
            printf(", \"kl_mean\": %.8f, \"kl_max\": %.6f, \"top1_agreement\": %.6f, \"kl_positions\": %llu",
                   kl_sum / n_kl, kl_max, (double)top1_same / n_kl, (unsigned long long)n_kl);
        printf("}\n");
    } else {
        printf("%s: %zu tokens, %u windows of %u, scoring %s: %llu predictions\n", file, n_ids, windows, ctx,
               second_half ? "the second half of each window" : "every id after the first of its window",
               (unsigned long long)n_scored);
        printf("ppl = %.4f +/- %.4f (mean NLL %.6f), %.1f tok/s\n", ppl, err, mean, n_ids / secs);
        if (n_kl)
            printf("vs %s: mean KL %.6f, max KL %.4f, top-1 agreement %.2f%% over %llu positions\n", base,
                   kl_sum / n_kl, kl_max, 100.0 * top1_same / n_kl, (unsigned long long)n_kl);
    }
done:
    if (fsave) fclose(fsave);
    if (fbase) fclose(fbase);
    free(ids);
    free(logits);
    free(lp16);
    free(base16);
    free(text);
    if (s) vib3_seq_release(s);
    vib3_engine_close(e);
    return ret;
}
