/* cli.c — error printing, settings flags and model resolution shared by the commands. */
#include "cli/cli.h"
#include "runtime/engine.h"
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vib3_cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "vib3 %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int vib3_cli_fail(const char *cmd) {
    return vib3_cli_error(cmd, "%s", vib3_err_msg()[0] ? vib3_err_msg() : vib3_err_name(vib3_err_code()));
}

int vib3_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "vib3 %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ntry 'vib3 %s --help'\n", cmd);
    return 2;
}

static const char *g_cmd = "";

void vib3_cli_set_command(const char *cmd) { g_cmd = cmd ? cmd : ""; }

const char *vib3_cli_flag_value(int argc, char **argv, int *i, const char *name) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != 0) return NULL;
    if (*i + 1 >= argc) {
        vib3_cli_usage_error(g_cmd, "option %s needs a value", name);
        exit(2);
    }
    return argv[++*i];
}

/* ---- numbers ---------------------------------------------------------------------- */

static int bad_number(const char *cmd, const char *opt, const char *v, const char *what) {
    return vib3_cli_usage_error(cmd, "option %s: '%s' is not %s", opt, v, what);
}

int vib3_cli_parse_i64(const char *cmd, const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || isspace((unsigned char)*v) || *end || end == v) return bad_number(cmd, opt, v, "an integer");
    if (errno == ERANGE || x < lo || x > hi)
        return vib3_cli_usage_error(cmd, "option %s: %s is out of range (%lld..%lld)", opt, v, (long long)lo,
                                    (long long)hi);
    *out = x;
    return 0;
}

int vib3_cli_parse_u64(const char *cmd, const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || isspace((unsigned char)*v) || *end || end == v) return bad_number(cmd, opt, v, "an integer");
    if (v[0] == '-' || errno == ERANGE || x < lo || x > hi)
        return vib3_cli_usage_error(cmd, "option %s: %s is out of range (%llu..%llu)", opt, v, (unsigned long long)lo,
                                    (unsigned long long)hi);
    *out = x;
    return 0;
}

int vib3_cli_parse_u32(const char *cmd, const char *opt, const char *v, uint32_t lo, uint32_t hi, uint32_t *out) {
    uint64_t x;
    int rc = vib3_cli_parse_u64(cmd, opt, v, lo, hi, &x);
    if (rc == 0) *out = (uint32_t)x;
    return rc;
}

int vib3_cli_parse_f32(const char *cmd, const char *opt, const char *v, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || isspace((unsigned char)*v) || *end || end == v || !isfinite(x)) return bad_number(cmd, opt, v, "a number");
    if (errno == ERANGE || x < lo || x > hi) return vib3_cli_usage_error(cmd, "option %s: %s is out of range (%g..%g)", opt, v, lo, hi);
    *out = (float)x;
    return 0;
}

int vib3_cli_parse_size(const char *cmd, const char *opt, const char *v, uint64_t *out) {
    if (vib3_parse_size(v, out) != VIB3_OK) return vib3_cli_usage_error(cmd, "option %s: %s", opt, vib3_err_msg());
    return 0;
}

/* ---- settings flags ----------------------------------------------------------------- */

static const struct setting_flag {
    const char *shortf, *longf, *key, *arg, *help;
    unsigned group;
} settings[] = {
    {NULL, "--ram-budget", "ram_budget", "SIZE", "host RAM for weights + KV cache (e.g. 2G, 50%; default 75% of RAM)", VIB3_CLI_SET_MEMORY},
    {NULL, "--vram-budget", "vram_budget", "SIZE", "GPU memory for hot pages (CUDA builds; default 90% of free VRAM)", VIB3_CLI_SET_MEMORY},
    {NULL, "--arena-bytes-max", "arena_bytes_max", "SIZE", "cap on any single memory reservation (default 1T)", VIB3_CLI_SET_MEMORY},
    {"-t", "--threads", "threads", "N", "worker threads (default 0 = all cores)", VIB3_CLI_SET_THREADS},
    {"-c", "--ctx-size", "ctx_size", "N", "context length (default 0 = the model's, at most 4096)", VIB3_CLI_SET_CTX},
    {"-b", "--batch-size", "batch_size", "N", "prefill micro-batch (default 64)", VIB3_CLI_SET_BATCH},
    {NULL, "--evict", "evict", "lru|lfru|lfuda", "expert page eviction (default lfru: layer-distance aware)", VIB3_CLI_SET_STORAGE},
    {NULL, "--prefetch", "prefetch", "MODE", "auto|none|coact|lookahead|both (default auto: look-ahead, hints kept only while they shorten decode tokens)", VIB3_CLI_SET_STORAGE},
    {NULL, "--io-uring", "io_uring", "true|false", "false forces the pread fallback (default true)", VIB3_CLI_SET_STORAGE},
    {NULL, "--io-queue-depth", "io_queue_depth", "N", "page reads in flight (default 16)", VIB3_CLI_SET_STORAGE},
    {NULL, "--host", "host", "ADDR", "listen address (default 127.0.0.1)", VIB3_CLI_SET_SERVER},
    {NULL, "--port", "port", "N", "TCP port (default 8080)", VIB3_CLI_SET_SERVER},
    {NULL, "--api-key", "api_key", "KEY", "require 'Authorization: Bearer KEY'", VIB3_CLI_SET_SERVER},
    {NULL, "--cors-origins", "cors_origins", "LIST", "browser origins allowed: localhost (default), *, or origins", VIB3_CLI_SET_SERVER},
    {"-np", "--parallel", "parallel", "N", "sequences decoded together (default 4)", VIB3_CLI_SET_SERVER},
    {NULL, "--queue-max", "queue_max", "N", "requests waiting for a slot before 503 (default 64)", VIB3_CLI_SET_SERVER},
    {NULL, "--body-bytes-max", "body_bytes_max", "SIZE", "largest request body (default 1M)", VIB3_CLI_SET_SERVER},
    {NULL, "--page-neurons", "page_neurons", "K", "neurons per page (default 0 = automatic)", VIB3_CLI_SET_CONVERT},
    {NULL, "--home", "home", "DIR", "model store (default ~/.cache/vib3)", VIB3_CLI_SET_HOME},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

void vib3_cli_settings_help(FILE *out, unsigned groups) {
    if (!groups) return;
    fprintf(out, "settings (also VIB3_<NAME> variables and conf/vib3.conf):\n");
    for (size_t s = 0; s < N_SETTINGS; s++) {
        if (!(settings[s].group & groups)) continue;
        char head[64];
        snprintf(head, sizeof head, "%s%s%s %s", settings[s].shortf ? settings[s].shortf : "",
                 settings[s].shortf ? ", " : "", settings[s].longf, settings[s].arg);
        fprintf(out, "  %-22s %s\n", head, settings[s].help);
    }
}

int vib3_cli_settings_flag(vib3_config *cfg, int argc, char **argv, int *i, const char *cmd, unsigned groups) {
    const char *a = argv[*i];
    const struct setting_flag *f = NULL;
    const char *value = NULL;
    for (size_t s = 0; s < N_SETTINGS && !f; s++) {
        size_t n = strlen(settings[s].longf);
        if (settings[s].shortf && !strcmp(a, settings[s].shortf)) f = &settings[s];
        else if (!strncmp(a, settings[s].longf, n) && (a[n] == 0 || a[n] == '=')) {
            f = &settings[s];
            if (a[n] == '=') value = a + n + 1;
        }
    }
    if (!f || !(f->group & groups)) return 0;
    const char *name = value ? f->longf : a;
    if (!value) {
        if (*i + 1 >= argc) {
            vib3_cli_usage_error(cmd, "option %s needs a value", a);
            return -1;
        }
        value = argv[++*i];
    }
    if (vib3_config_set(cfg, f->key, value) != VIB3_OK) {
        vib3_cli_usage_error(cmd, "option %s: %s", name, vib3_err_msg());
        return -1;
    }
    return 1;
}

int vib3_cli_config_flag(vib3_config *cfg, int argc, char **argv, int *i, const char *cmd) {
    return vib3_cli_settings_flag(cfg, argc, argv, i, cmd, VIB3_CLI_SET_ALL);
}

void vib3_cli_warn_ctx(const char *cmd, const vib3_engine *e) {
    const vib3_file *f = vib3_engine_file(e);
    uint32_t trained = f && f->config ? f->config->max_position : 0, ctx = vib3_engine_ctx_size(e);
    if (trained && ctx > trained)
        fprintf(stderr, "vib3 %s: warning: context %u is longer than the %u positions the model was trained on; "
                        "output past %u tokens may degrade\n", cmd, ctx, trained, trained);
}

/* ---- Ctrl-C during a pull ------------------------------------------------------------- */

static void on_pull_sigint(int sig) {
    static const char msg[] = "\nvib3: interrupted; the partial conversion was removed\n";
    if (vib3_store_interrupt()) { /* converting: the partial files are gone, end now */
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        signal(sig, SIG_DFL);
        raise(sig);
    }
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the process at once */
}

void vib3_cli_pull_signals(bool on) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on ? on_pull_sigint : SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

vib3_err vib3_cli_resolve_model(const vib3_config *cfg, const char *arg, char *out, int cap) {
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(out, cap, "%s", arg);
        return VIB3_OK;
    }
    if (strchr(arg, '/') == NULL || strchr(arg, '/') == strrchr(arg, '/')) {
        /* store name: "tinymix" or "org/repo" -> $VIB3_HOME/models/<org>--<repo>.vib3 */
        char name[512];
        snprintf(name, sizeof name, "%s", arg);
        for (char *p = name; *p; p++)
            if (*p == '/') *p = '-', memmove(p + 1, p, strlen(p) + 1), p++;
        if (strstr(name, "..") == NULL) {
            snprintf(out, cap, "%s/models/%s.vib3", cfg->home, name);
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return VIB3_OK;
        }
    }
    /* an alias or org/repo that is not in the store yet is pulled (vib3 pull) */
    vib3_cli_pull_signals(true);
    vib3_err rc = vib3_store_ensure(cfg, arg, out, cap);
    vib3_cli_pull_signals(false);
    return rc;
}

vib3_err vib3_cli_find_model(const vib3_config *cfg, const char *arg, char *out, int cap) {
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(out, cap, "%s", arg);
        return VIB3_OK;
    }
    /* a store name as `vib3 list` shows it, or an alias / org/repo that was pulled */
    vib3_store_ref r;
    if (vib3_store_path(cfg, arg, ".vib3", out, cap) == VIB3_OK && stat(out, &st) == 0 && S_ISREG(st.st_mode))
        return VIB3_OK;
    bool repo = false;
    if (vib3_store_resolve(arg, &r) == VIB3_OK) {
        repo = r.repo[0] != 0 || r.alias[0] != 0;
        if (vib3_store_path(cfg, r.name, ".vib3", out, cap) == VIB3_OK && stat(out, &st) == 0 && S_ISREG(st.st_mode))
            return VIB3_OK;
    }
    vib3_err_clear();
    if (repo)
        return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: not in the store %s/models (`vib3 pull %s` downloads it)", arg,
                            cfg->home, arg);
    return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: no such file, and no model of that name in %s/models (see `vib3 list`)",
                        arg, cfg->home);
}
