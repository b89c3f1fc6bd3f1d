/* cmd_list.c — `vib3 list [--json]`: the models in the store (src/store/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/json.h"
#include "store/store.h"

#define LIST_MAX 1024

static void usage(FILE *out) {
    fprintf(out, "usage: vib3 list [--json]\n"
                 "\n"
                 "Models in $VIB3_HOME/models (default ~/.cache/vib3/models): name, architecture,\n"
                 "expert quantization, parameters (total / active per token), size, modification\n"
                 "time and source. Add models with `vib3 pull`, remove them with `vib3 rm`.\n"
                 "\n"
                 "options:\n"
                 "  --json                 one JSON array\n");
    vib3_cli_settings_help(out, VIB3_CLI_SET_HOME);
}

static const char *fmt_params(uint64_t n, char *buf, int cap) {
    if (n >= 1000000000ull) snprintf(buf, cap, "%.1fB", n / 1e9);
    else if (n >= 1000000ull) snprintf(buf, cap, "%.1fM", n / 1e6);
    else if (n >= 1000ull) snprintf(buf, cap, "%.1fK", n / 1e3);
    else snprintf(buf, cap, "%llu", (unsigned long long)n);
    return buf;
}

static void json_str(const char *key, const char *val, bool comma) {
    char buf[4 * VIB3_PATH_MAX];
    long n = vib3_json_write_str(buf, sizeof buf, val, strlen(val));
    printf("\"%s\": %s%s", key, n < 0 ? "\"\"" : buf, comma ? ", " : "");
}

static void print_json(const vib3_store_entry *es, int n) {
    printf("[");
    for (int i = 0; i < n; i++) {
        const vib3_store_entry *e = &es[i];
        char when[32];
        struct tm tm;
        time_t t = (time_t)e->mtime_s;
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        printf("%s\n  {", i ? "," : "");
        json_str("name", e->name, true);
        json_str("path", e->path, true);
        printf("\"size_bytes\": %llu, ", (unsigned long long)e->size_bytes);
        json_str("modified", when, true);
        json_str("arch", e->arch, true);
        json_str("quant", e->quant, true);
        printf("\"params_total\": %llu, \"params_active\": %llu, \"n_layers\": %u, \"n_experts\": %u, "
               "\"n_experts_used\": %u, ",
               (unsigned long long)e->params_total, (unsigned long long)e->params_active, e->n_layers, e->n_experts,
               e->n_experts_used);
        json_str("source", e->source, e->error[0] != 0);
        if (e->error[0]) json_str("error", e->error, false);
        printf("}");
    }
    printf("%s]\n", n ? "\n" : "");
}

int vib3_cmd_list(int argc, char **argv, vib3_config *cfg) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        int r;
        if (!strcmp(argv[i], "--json")) json = true;
        else if ((r = vib3_cli_settings_flag(cfg, argc, argv, &i, "list", VIB3_CLI_SET_HOME)) != 0) {
            if (r < 0) return 2;
        } else if (argv[i][0] == '-') return vib3_cli_usage_error("list", "unknown option '%s'", argv[i]);
        else return vib3_cli_usage_error("list", "unexpected argument '%s' (list takes no model name)", argv[i]);
    }
    vib3_store_entry *es = calloc(LIST_MAX, sizeof *es);
    if (!es) return vib3_cli_error("list", "out of memory");
    int total = 0, n = vib3_store_list(cfg, es, LIST_MAX, &total);
    if (n < 0) {
        free(es);
        return vib3_cli_fail("list");
    }
    if (json) print_json(es, n);
    else if (n == 0) printf("no models in %s/models (add one with `vib3 pull tinymix`)\n", cfg->home);
    else {
        printf("%-28s %-12s %-6s %-15s %10s  %-16s %s\n", "NAME", "ARCH", "QUANT", "PARAMS", "SIZE", "MODIFIED",
               "SOURCE");
        for (int i = 0; i < n; i++) {
            const vib3_store_entry *e = &es[i];
            char size[32], when[32], pt[16], pa[16], params[40];
            struct tm tm;
            time_t t = (time_t)e->mtime_s;
            strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime_r(&t, &tm));
            if (e->error[0]) snprintf(params, sizeof params, "-");
            else snprintf(params, sizeof params, "%s/%s", fmt_params(e->params_total, pt, sizeof pt),
                          fmt_params(e->params_active, pa, sizeof pa));
            printf("%-28s %-12s %-6s %-15s %10s  %-16s %s\n", e->name, e->error[0] ? "invalid" : e->arch, e->quant,
                   params, vib3_format_size(e->size_bytes, size, sizeof size), when,
                   e->error[0] ? e->error : (e->source[0] ? e->source : "-"));
        }
        if (total > n) printf("(%d more not shown)\n", total - n);
    }
    free(es);
    return 0;
}
