/* cmd_convert.c — `vib3 convert`: HF safetensors directory or GGUF file -> .vib3.
 *
 *   vib3 convert --model DIR|FILE.gguf [--output OUT.vib3] [--quant q4|q8|f16|f32]
 *                [--page-neurons K] [--calib FILE | --no-calib] [--no-probes] [--no-index] [--no-permute] [--q4-ggml]
 *                [--mem-budget SIZE] [-t N] [--quiet]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[5][1200];

static void on_fatal_signal(int sig) {
    for (int i = 0; i < 5; i++)
        if (g_tmp[i][0]) unlink(g_tmp[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}
#include "convert/convert.h"
#include "format/vib3_format.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vib3 convert --model <hf-dir | file.gguf> [--output <file.vib3>] [options]\n"
            "  --model PATH           Hugging Face directory (config.json + *.safetensors) or a .gguf file\n"
            "                         (also accepted as the first positional argument)\n"
            "  --output PATH          output .vib3, or a directory for <model name>.vib3 in it\n"
            "                         (default: <model name>.vib3 in the current directory)\n"
            "  --quant q4|q8|f16|f32  expert page dtype (default q4 = Q4_K16, or Q4_0 for a Q4_0 source; q4_k16 and\n"
            "                         q4_0 force one); with q4/q8 other matrices are Q8_0,\n"
            "                         with f16/f32 everything keeps that precision (f32 reproduces the source)\n"
            "  --dense q4|q8|f16      with --quant q4: dtype of the other matrices (default q8; q4 as llama.cpp's Q4_0\n"
            "                         files, ~half the attention / LM-head bytes per token; f16: least loss)\n"
            "  --q8-layers N          with q4 (Q4_K16): the first N layers' FFN pages in Q8_0 (default 1; 0 = none)\n"
            "  --page-neurons K       neurons per page (multiple of 32; default: automatic, 64-512 KiB pages)\n"
            "  --calib FILE           calibration text (default models/calib/default.txt): routing statistics (COAC),\n"
            "                         co-firing neuron order, signature recall measurement\n"
            "  --no-calib             skip calibration (neuron order from weight similarity)\n"
            "  --no-probes            no look-ahead probes for the prefetcher (PRED; fitted during calibration)\n"
            "  --q4-ggml              Q4_0 scales exactly as llama.cpp's quantizer (default: least-squares scale search)\n"
            "  --no-index             no page signatures\n"
            "  --no-permute           keep the source neuron order\n"
            "  --mem-budget SIZE      working memory bound (default 2G)\n"
            "  -t, --threads N        quantization threads (default 0 = all cores)\n"
            "  -q, --quiet            no progress output\n"
            "  -o PATH                same as --output\n");
}

static void default_output(const char *model, char *out, size_t cap) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", model);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = 0;
    const char *base = strrchr(tmp, '/') ? strrchr(tmp, '/') + 1 : tmp;
    char name[512];
    snprintf(name, sizeof name, "%s", base);
    char *dot = strrchr(name, '.');
    if (dot && !strcmp(dot, ".gguf")) *dot = 0;
    snprintf(out, cap, "%s.vib3", name);
}

int vib3_cmd_convert(int argc, char **argv, vib3_config *cfg) {
    vib3_convert_opts o;
    memset(&o, 0, sizeof o);
    o.expert_dtype = -1;
    o.progress = true;
    char out_buf[1024];
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if ((v = vib3_cli_flag_value(argc, argv, &i, "--model"))) {
            o.model_path = v;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--output")) ||
                   (v = vib3_cli_flag_value(argc, argv, &i, "-o"))) {
            o.output_path = v;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--quant"))) {
            /* q4: the default INT4 (Q4_K16, or Q4_0 for Q4_0 sources: lossless); q4_0 / q4_k16 force one */
            int dt = strcmp(v, "q4") ? vib3_dtype_from_name(v) : -1;
            if ((dt < 0 && strcmp(v, "q4")) || dt == VIB3_DTYPE_BF16)
                return vib3_cli_usage_error("convert", "--quant %s: expected q4, q4_k16, q4_0, q8, f16 or f32", v);
            o.expert_dtype = dt;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--dense"))) {
            if (strcmp(v, "q4") && strcmp(v, "q8") && strcmp(v, "f16"))
                return vib3_cli_usage_error("convert", "--dense %s: expected q4, q8 or f16", v);
            o.dense_q4 = !strcmp(v, "q4");
            o.dense_f16 = !strcmp(v, "f16");
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--q8-layers"))) {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (!*v || *end || n > VIB3_MAX_LAYERS || v[0] == '-')
                return vib3_cli_usage_error("convert", "--q8-layers %s: expected a layer count 0..%u", v, VIB3_MAX_LAYERS);
            o.q8_layers = (uint32_t)n;
            o.q8_layers_set = true;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--page-neurons"))) {
            uint32_t k;
            if (vib3_cli_parse_u32("convert", "--page-neurons", v, 32, VIB3_MAX_DIM, &k)) return 2;
            if (k % 32) return vib3_cli_usage_error("convert", "option --page-neurons: %s is not a multiple of 32", v);
            o.page_neurons = k;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--calib"))) {
            o.calib_path = v;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--mem-budget"))) {
            if (vib3_cli_parse_size("convert", "--mem-budget", v, &o.mem_budget_bytes)) return 2;
        } else if (!strcmp(a, "--no-index")) {
            o.no_index = true;
        } else if (!strcmp(a, "--no-permute")) {
            o.no_permute = true;
        } else if (!strcmp(a, "--q4-ggml")) {
            o.q4_ggml_ref = true;
        } else if (!strcmp(a, "--no-calib")) {
            o.no_calib = true;
        } else if (!strcmp(a, "--no-probes")) {
            setenv("VIB3_NO_PROBES", "1", 1); /* read by the calibration run (src/convert/calib.c) */
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o.quiet = true;
            o.progress = false;
        } else {
            int r = vib3_cli_settings_flag(cfg, argc, argv, &i, "convert", VIB3_CLI_SET_THREADS);
            if (r < 0) return 2;
            if (r > 0) continue;
            if (a[0] == '-') return vib3_cli_usage_error("convert", "unknown option %s", a);
            if (o.model_path) return vib3_cli_usage_error("convert", "unexpected argument %s", a);
            o.model_path = a;
        }
    }
    if (!o.model_path) return vib3_cli_usage_error("convert", "--model is required");
    struct stat ost;
    size_t olen = o.output_path ? strlen(o.output_path) : 0;
    if (!o.output_path) {
        default_output(o.model_path, out_buf, sizeof out_buf);
        o.output_path = out_buf;
    } else if ((olen && o.output_path[olen - 1] == '/') || (stat(o.output_path, &ost) == 0 && S_ISDIR(ost.st_mode))) {
        /* a directory: <model name>.vib3 inside it, as cp does */
        char name[512];
        default_output(o.model_path, name, sizeof name);
        if (snprintf(out_buf, sizeof out_buf, "%s%s%s", o.output_path, olen && o.output_path[olen - 1] == '/' ? "" : "/",
                     name) >= (int)sizeof out_buf)
            return vib3_cli_usage_error("convert", "--output %s: path too long", o.output_path);
        o.output_path = out_buf;
    }
    if (!o.page_neurons && cfg->page_neurons) o.page_neurons = cfg->page_neurons;
    o.threads = cfg->threads;
    vib3_convert_stats st;
    /* Ctrl-C / kill: remove what the writer and the calibration pass have on disk (the writer cleans up
     * on errors, but a signal ends the process first). Paths are built now: unlink is async-signal-safe. */
    snprintf(g_tmp[0], sizeof g_tmp[0], "%s.tmp", o.output_path);
    snprintf(g_tmp[1], sizeof g_tmp[1], "%s.calib-pass.tmp", o.output_path);
    snprintf(g_tmp[2], sizeof g_tmp[2], "%s.calib-pass.tmp.tmp", o.output_path);
    snprintf(g_tmp[3], sizeof g_tmp[3], "%s.sigs.tmp", o.output_path);
    snprintf(g_tmp[4], sizeof g_tmp[4], "%s.calib-pass.tmp.sigs.tmp", o.output_path);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (vib3_convert_ex(&o, &st) != VIB3_OK) return vib3_cli_fail("convert");
    if (!o.quiet) {
        char a[32], b[32], c[32];
        fprintf(stderr,
                "convert: wrote %s: %llu pages of up to %u neurons (%s), dense %s, source %s in %.2fs (%.1f MB/s, %u threads)\n",
                o.output_path, (unsigned long long)st.n_pages, st.page_neurons, vib3_format_size(st.page_bytes, a, 32),
                vib3_format_size(st.dense_bytes, b, 32), vib3_format_size(st.source_bytes, c, 32), st.seconds,
                st.seconds > 0 ? (double)st.source_bytes / 1e6 / st.seconds : 0.0, st.threads);
        char r[32];
        fprintf(stderr, "convert: peak RSS %s", vib3_format_size(st.peak_rss_bytes, r, 32));
        if (st.calib_tokens)
            fprintf(stderr, "; calibration %llu tokens: signature recall@10%% %.2f (random %.2f), top 10%% pages hold "
                            "%.0f%% of the activation mass",
                    (unsigned long long)st.calib_tokens, st.sig_recall_10, st.sig_recall_10_random,
                    st.act_mass_top10 * 100);
        fputc('\n', stderr);
    }
    return 0;
}
