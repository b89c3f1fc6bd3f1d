/* config.h — budgets and settings: conf/vib3.conf (INI) < VIB3_* env < flags.
 *
 * Every source goes through vib3_config_set(key, value), so the INI key
 * `ram_budget` (section [memory]), the variable VIB3_RAM_BUDGET and the flag
 * --ram-budget are the same setting. Sizes accept K/M/G/T suffixes (binary),
 * and "%" of physical RAM for ram_budget ("50%").
 *
 * vib3_config_load() applies, in order: defaults, the first config file found
 * ($VIB3_CONF, <exe dir>/../conf/vib3.conf (source tree), $XDG_CONFIG_HOME/vib3/vib3.conf
 * or ~/.config/vib3/vib3.conf, /etc/vib3/vib3.conf, <exe dir>/../etc/vib3/vib3.conf,
 * <exe dir>/../share/vib3/vib3.conf (where `make install` puts the defaults)), then the
 * environment. source_path names the file read ("" = the built-in defaults, which equal
 * conf/vib3.conf: tests/core/test_config_defaults.c). Command-line flags are applied
 * after by the CLI.
 */
#ifndef VIB3_CORE_CONFIG_H
#define VIB3_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define VIB3_PATH_MAX 1024

typedef struct vib3_config {
    /* [memory] */
    uint64_t ram_budget_bytes;    /* T2 page frames + pinned weights + KV; 0 = auto (75% of RAM) */
    uint64_t vram_budget_bytes;   /* T1; 0 = auto (90% of free VRAM) when CUDA present */
    uint64_t arena_bytes_max;     /* hard cap on any single arena reservation */
    /* [runtime] */
    uint32_t threads;             /* 0 = number of online cores */
    uint32_t ctx_size;            /* tokens per sequence; 0 = model's max */
    uint32_t batch_size;          /* prefill micro-batch */
    uint32_t page_neurons;        /* converter default K; 0 = automatic */
    /* [storage] */
    char evict[16];               /* lru | lfru | ... */
    char prefetch[16];            /* none | coact | lookahead | both */
    uint32_t io_queue_depth;
    bool io_uring;                /* false forces the pread fallback */
    /* [server] */
    char host[64];
    uint32_t port;
    uint32_t parallel;            /* concurrent sequences */
    uint32_t queue_max;           /* waiting requests before 503 */
    uint32_t shutdown_timeout;    /* seconds in-flight requests may take to finish on SIGTERM/SIGINT */
    uint64_t body_bytes_max;
    char cors_origins[256];       /* browser origins allowed (CORS): "localhost" (loopback hosts, any port),
                                   * "*", or a comma-separated list of exact origins and/or "localhost" */
    char api_key[128];
    /* [store] */
    char home[VIB3_PATH_MAX];     /* $VIB3_HOME, default ~/.cache/vib3 */
    char source_path[VIB3_PATH_MAX]; /* config file that was read, "" if none */
} vib3_config;

void vib3_config_defaults(vib3_config *c);
/* defaults + first config file found + VIB3_* environment */
vib3_err vib3_config_load(vib3_config *c);
/* parse one INI file (sections are namespaces for reading only; keys are global) */
vib3_err vib3_config_load_file(vib3_config *c, const char *path);
/* VIB3_RAM_BUDGET, VIB3_THREADS, ... for every key */
vib3_err vib3_config_apply_env(vib3_config *c);
/* key uses '_' or '-' ("ram-budget" == "ram_budget"); error names key and value */
vib3_err vib3_config_set(vib3_config *c, const char *key, const char *value);
/* true when key names a setting (for CLI flag parsing) */
bool vib3_config_has_key(const char *key);

/* "2G", "512MiB", "1.5g", "123" -> bytes; "50%" -> percent of physical RAM */
vib3_err vib3_parse_size(const char *s, uint64_t *bytes_out);
/* human-readable size into buf ("1.50 GiB") */
const char *vib3_format_size(uint64_t bytes, char *buf, int cap);

#endif
