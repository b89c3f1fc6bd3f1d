/* store.h — the model store: names, aliases, pull, list, rm.
 *
 * Layout: $VIB3_HOME/models/<name>.vib3 plus a sidecar <name>.json recording
 * where it came from ({"name", "source": "hub"|"local", "repo", "revision",
 * "commit", "endpoint", "snapshot", "files", "bytes", "pulled_at"}). <name>
 * is the alias ("tinymix", "mixtral") or the repository with '/' -> '--'
 * ("mistralai--Mixtral-8x7B-Instruct-v0.1"), as vib3_cli_resolve_model()
 * expects. A pull converts into .<name>.pulling.vib3 and renames it into
 * place only once the converter finished and the reader accepts the file, so
 * a model in the store is never half-converted. .<name>.lock (flock) keeps
 * two pulls of one name, or a pull and an rm, apart (the second waits, then
 * finds the model there); the holder removes it when done, so a store holds
 * nothing but models and sidecars between commands.
 *
 * Aliases come from models.conf ("alias = org/repo[:revision]" or
 * "alias = local:DIR", DIR relative to the file), looked up in
 * $VIB3_MODELS_CONF, <exe dir>/../conf/models.conf,
 * $XDG_CONFIG_HOME/vib3/models.conf (~/.config/vib3/models.conf) and
 * /etc/vib3/models.conf; the first file that defines an alias wins.
 */
#ifndef VIB3_STORE_H
#define VIB3_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "store/hub.h"

#define VIB3_STORE_NAME_BYTES 160
#define VIB3_STORE_ALIAS_BYTES 64

typedef struct vib3_store_ref {
    char name[VIB3_STORE_NAME_BYTES];        /* store name (file stem) */
    char alias[VIB3_STORE_ALIAS_BYTES];      /* "" unless the argument was an alias */
    char repo[VIB3_HUB_REPO_BYTES];          /* hub repository; "" for a local source */
    char revision[VIB3_HUB_REVISION_BYTES];  /* "main" unless given */
    char local_path[VIB3_PATH_MAX];          /* local HF directory (alias = local:DIR) */
    char conf_path[VIB3_PATH_MAX];           /* models.conf that defined the alias */
} vib3_store_ref;

/* "alias", "alias:rev", "org/repo", "org/repo:rev" or a store name
 * ("org--repo") -> ref. Names are validated (hub rules, no traversal). */
vib3_err vib3_store_resolve(const char *arg, vib3_store_ref *out);

/* $VIB3_HOME/models/<name>.vib3 (suffix ".json" for the sidecar) */
vib3_err vib3_store_path(const vib3_config *cfg, const char *name, const char *suffix, char *out, int cap);

typedef struct vib3_pull_opts {
    bool force;              /* download and convert again even when up to date */
    int expert_dtype;        /* vib3_dtype for the converter; -1 = its default */
    uint32_t threads;        /* converter threads; 0 = cfg->threads or all cores */
    bool progress;           /* progress bars (tty) or plain lines on stderr */
    bool quiet;              /* only errors */
} vib3_pull_opts;

void vib3_pull_opts_default(vib3_pull_opts *o);

/* Download (hub) or take (local alias) the model and convert it into the
 * store; out_path gets the .vib3 path. Up to date (same commit, file present)
 * and !force: nothing is done. */
vib3_err vib3_store_pull(const vib3_config *cfg, const char *arg, const vib3_pull_opts *o, char *out_path, int cap);

/* For `vib3 run` / `serve`: the store path of name, pulling it first when it
 * is missing and name is an alias or org/repo. VIB3_ERR_NOT_FOUND (message
 * naming the store) when name is neither. */
vib3_err vib3_store_ensure(const vib3_config *cfg, const char *name, char *out_path, int cap);

/* Ctrl-C during vib3_store_pull (async-signal-safe, for a signal handler). While
 * downloading: asks the download to stop (vib3_hub_interrupt; the pull returns
 * VIB3_ERR_CANCELLED, partial downloads stay in the Hugging Face cache for resume),
 * returns false. While converting (the converter cannot stop midway): removes the
 * partial .vib3 files and the lock file and returns true: the caller ends the process. */
bool vib3_store_interrupt(void);

/* Remove <name>.vib3 and its sidecar; with purge_cache also the repository's
 * directory in the Hugging Face cache. removed gets the .vib3 path. */
vib3_err vib3_store_rm(const vib3_config *cfg, const char *name, bool purge_cache, char *removed, int cap);

typedef struct vib3_store_entry {
    char name[VIB3_STORE_NAME_BYTES];
    char path[VIB3_PATH_MAX];
    uint64_t size_bytes;
    int64_t mtime_s;                 /* modification time, Unix seconds */
    char arch[32];                   /* "mixtral"; "?" when the file does not open */
    char quant[16];                  /* expert dtype: "q4_0" */
    uint64_t params_total, params_active;
    uint32_t n_layers, n_experts, n_experts_used;
    char source[VIB3_PATH_MAX];      /* "hf:org/repo@main (1a2b3c4d5e6f)", "local:/dir", "" */
    char error[256];                 /* why the file did not open; "" when it did */
} vib3_store_entry;

/* Entries of the store sorted by name, at most cap; returns the count (>= 0)
 * or -1 (error set). *total gets the number of models even when > cap. */
int vib3_store_list(const vib3_config *cfg, vib3_store_entry *out, int cap, int *total);

/* the models.conf files searched, comma-separated (for messages) */
void vib3_store_alias_files(char *out, int cap);

typedef struct vib3_store_alias {
    char alias[VIB3_STORE_ALIAS_BYTES];
    char target[VIB3_PATH_MAX];      /* as written: "org/repo[:rev]" or "local:DIR" */
    char conf_path[VIB3_PATH_MAX];
} vib3_store_alias;
/* every alias (the first definition of each), at most cap; returns the count */
int vib3_store_aliases(vib3_store_alias *out, int cap);

#endif
