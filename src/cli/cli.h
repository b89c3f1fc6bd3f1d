/* cli.h — shared pieces of the `vib3` command line.
 *
 * Each command lives in src/cli/cmd_<name>.c as
 *   int vib3_cmd_<name>(int argc, char **argv, vib3_config *cfg);
 * argv[0] is the command name. Exit codes: 0 ok, 1 operating error (message
 * on stderr via vib3_cli_error), 2 usage error. `--help` prints usage, exit 0.
 * Settings flags (--ram-budget, --threads, --ctx-size, ...) are applied to
 * cfg by vib3_cli_config_flag(); every command accepts them.
 */
#ifndef VIB3_CLI_H
#define VIB3_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/err.h"

#define VIB3_VERSION "0.1.0"

int vib3_cmd_pull(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_run(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_serve(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_convert(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_list(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_rm(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_info(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_hw(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_bench(int argc, char **argv, vib3_config *cfg);
int vib3_cmd_perplexity(int argc, char **argv, vib3_config *cfg);
/* `vib3 bench <what>` sub-benchmarks (src/cli/bench_<what>.c); argv[0] = "<what>" */
int vib3_bench_kernels(int argc, char **argv, vib3_config *cfg);
int vib3_bench_hnsw(int argc, char **argv, vib3_config *cfg);
int vib3_bench_model(int argc, char **argv, vib3_config *cfg);

/* "vib3 <cmd>: <message>" on stderr; returns 1 */
int vib3_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* prints vib3_err_msg() for the last error; returns 1 */
int vib3_cli_fail(const char *cmd);
/* usage error: message + "try 'vib3 <cmd> --help'"; returns 2 */
int vib3_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Settings flags (--ram-budget 2G, --ram-budget=2G, -t 4, -c 512) are grouped so that each
 * command accepts, and its --help lists, only the settings it uses. */
enum {
    VIB3_CLI_SET_MEMORY = 1u << 0,  /* --ram-budget, --vram-budget, --arena-bytes-max */
    VIB3_CLI_SET_THREADS = 1u << 1, /* -t/--threads */
    VIB3_CLI_SET_CTX = 1u << 2,     /* -c/--ctx-size */
    VIB3_CLI_SET_BATCH = 1u << 3,   /* -b/--batch-size */
    VIB3_CLI_SET_STORAGE = 1u << 4, /* --evict, --prefetch, --io-uring, --io-queue-depth */
    VIB3_CLI_SET_SERVER = 1u << 5,  /* --host, --port, --api-key, -np/--parallel, --queue-max, --body-bytes-max */
    VIB3_CLI_SET_CONVERT = 1u << 6, /* --page-neurons */
    VIB3_CLI_SET_HOME = 1u << 7,    /* --home (the model store, $VIB3_HOME) */
    VIB3_CLI_SET_ENGINE = VIB3_CLI_SET_MEMORY | VIB3_CLI_SET_THREADS | VIB3_CLI_SET_CTX | VIB3_CLI_SET_BATCH |
                          VIB3_CLI_SET_STORAGE | VIB3_CLI_SET_HOME,
    VIB3_CLI_SET_ALL = 0xffu,
};

/* If argv[*i] is a settings flag of one of the groups, applies it to cfg, advances *i past its
 * value and returns 1; returns 0 when it is not (a setting of another group included), -1 on a
 * missing or bad value (usage message printed: the caller exits with 2). */
int vib3_cli_settings_flag(vib3_config *cfg, int argc, char **argv, int *i, const char *cmd, unsigned groups);
/* prints "settings (...):" and one aligned line per flag of the groups; nothing when groups is 0 */
void vib3_cli_settings_help(FILE *out, unsigned groups);
/* every group (the bench sub-commands) */
int vib3_cli_config_flag(vib3_config *cfg, int argc, char **argv, int *i, const char *cmd);

/* For "--name value" / "--name=value": returns the value and advances *i; NULL when argv[*i]
 * is not this option. "--name" as the last argument is a usage error: the message
 * "vib3 <cmd>: option --name needs a value" goes to stderr and the process exits with 2
 * (<cmd> from vib3_cli_set_command). */
const char *vib3_cli_flag_value(int argc, char **argv, int *i, const char *name);
/* the command name used by vib3_cli_flag_value's message (main sets it) */
void vib3_cli_set_command(const char *cmd);

/* Numbers of option values: the whole string must be the number (no trailing
 * characters, no empty string, finite), within [lo, hi]. 0 when *out is set, else
 * 2 with a usage message naming the option and the value ("vib3 run: option --temp:
 * '0.7x' is not a number"). */
int vib3_cli_parse_i64(const char *cmd, const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out);
int vib3_cli_parse_u64(const char *cmd, const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out);
int vib3_cli_parse_u32(const char *cmd, const char *opt, const char *v, uint32_t lo, uint32_t hi, uint32_t *out);
int vib3_cli_parse_f32(const char *cmd, const char *opt, const char *v, double lo, double hi, float *out);
/* a size ("2G", "512M", "50%") as vib3_parse_size takes it; 0 or 2 as above */
int vib3_cli_parse_size(const char *cmd, const char *opt, const char *v, uint64_t *out);

/* Ctrl-C while a model is pulled (vib3 pull, or run/serve/info pulling a missing model):
 * the first SIGINT stops the download at once (partial downloads stay in the Hugging Face
 * cache for the next run to resume; a half-converted model is removed); on = false restores
 * the default action. */
void vib3_cli_pull_signals(bool on);

/* llama.cpp's warning on stderr when the engine's context is longer than the model's
 * trained context (positions past it give degraded output) */
struct vib3_engine;
void vib3_cli_warn_ctx(const char *cmd, const struct vib3_engine *e);

/* resolve a model argument: an existing path, or a name in the store
 * ($VIB3_HOME/models/<name>.vib3); out gets the path. */
vib3_err vib3_cli_resolve_model(const vib3_config *cfg, const char *arg, char *out, int cap);

/* the same without pulling (for `vib3 info`): a model not in the store is VIB3_ERR_NOT_FOUND
 * with a message saying how to pull it */
vib3_err vib3_cli_find_model(const vib3_config *cfg, const char *arg, char *out, int cap);

#endif
