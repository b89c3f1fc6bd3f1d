/* cmd_pull.c — `vib3 pull <alias | org/repo[:revision]>...`: download from the
 * Hugging Face Hub into its cache and convert into the store (src/store/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "format/vib3_format.h"
#include "store/store.h"

/* the converter's threads and page size, and the store */
#define PULL_SETTINGS (VIB3_CLI_SET_THREADS | VIB3_CLI_SET_CONVERT | VIB3_CLI_SET_HOME)

static void usage(FILE *out) {
    fprintf(out,
            "usage: vib3 pull [options] <alias | org/repo[:revision]>...\n"
            "\n"
            "Download a model from Hugging Face (config, tokenizer and safetensors only) into the\n"
            "Hugging Face cache, shared with huggingface_hub, transformers and llama.cpp, then\n"
            "convert it to $VIB3_HOME/models/<name>.vib3. Interrupted downloads resume.\n"
            "\n"
            "An unreachable hub (connection refused, unknown host) fails at once; timeouts\n"
            "and server errors are retried with a short backoff. Ctrl-C stops at once and\n"
            "keeps the partial download for the next run.\n"
            "\n"
            "options:\n"
            "  --force                download and convert again even when up to date\n"
            "  --quant q4|q8|f16|f32  expert page quantization, as vib3 convert (default q4)\n"
            "  -q, --quiet            only errors\n"
            "  --no-progress          no progress bar\n"
            "  --aliases              list the model aliases and exit\n");
    vib3_cli_settings_help(out, PULL_SETTINGS);
    fprintf(out,
            "\n"
            "environment: HF_TOKEN (or HF_HOME/token, `huggingface-cli login`) for gated models,\n"
            "HF_ENDPOINT (mirror), HF_HUB_CACHE / HF_HOME (download cache), HF_HUB_OFFLINE=1,\n"
            "VIB3_PULL_PARALLEL (4), VIB3_PULL_RETRIES (5), VIB3_PULL_BACKOFF_MS (500),\n"
            "VIB3_PULL_STALL_S (60), VIB3_PULL_CONNECT_TIMEOUT_S (10).\n");
}

static int list_aliases(void) {
    static vib3_store_alias al[256];
    int n = vib3_store_aliases(al, 256);
    if (n == 0) {
        char files[4 * VIB3_PATH_MAX];
        vib3_store_alias_files(files, sizeof files);
        printf("no aliases (searched %s)\n", files);
        return 0;
    }
    for (int i = 0; i < n; i++) printf("%-16s %s\n", al[i].alias, al[i].target);
    return 0;
}

int vib3_cmd_pull(int argc, char **argv, vib3_config *cfg) {
    vib3_pull_opts o;
    vib3_pull_opts_default(&o);
    const char *names[64];
    int n_names = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--aliases")) return list_aliases();
        if (!strcmp(a, "--force")) o.force = true;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o.quiet = true;
        else if (!strcmp(a, "--no-progress")) o.progress = false;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "--quant"))) {
            o.expert_dtype = strcmp(v, "q4") ? vib3_dtype_from_name(v) : -1; /* q4: convert's default INT4 */
            if ((o.expert_dtype < 0 && strcmp(v, "q4")) || o.expert_dtype == VIB3_DTYPE_BF16)
                return vib3_cli_usage_error("pull", "--quant %s: expected q4, q8, f16 or f32", v);
        } else if ((r = vib3_cli_settings_flag(cfg, argc, argv, &i, "pull", PULL_SETTINGS)) != 0) {
            if (r < 0) return 2;
        } else if (a[0] == '-') {
            return vib3_cli_usage_error("pull", "unknown option '%s'", a);
        } else if (n_names == 64) {
            return vib3_cli_usage_error("pull", "at most 64 models at once");
        } else {
            names[n_names++] = a;
        }
    }
    if (n_names == 0) return vib3_cli_usage_error("pull", "which model? (an alias from `vib3 pull --aliases`, or org/repo)");
    vib3_cli_pull_signals(true);
    int ret = 0;
    for (int k = 0; k < n_names && ret == 0; k++) {
        char path[VIB3_PATH_MAX + 256];
        if (vib3_store_pull(cfg, names[k], &o, path, sizeof path) == VIB3_OK) {
            printf("%s\n", path);
            continue;
        }
        vib3_err code = vib3_err_code();
        ret = vib3_cli_fail("pull");
        if (code == VIB3_ERR_CANCELLED) ret = 130; /* as a shell reports SIGINT */
    }
    vib3_cli_pull_signals(false);
    return ret;
}
