/* hub.h — a Hugging Face Hub client: list a revision's files, download the
 * ones conversion needs into the standard hub cache, resume, retry, verify.
 *
 * Conventions are huggingface_hub's, so the files are shared with it,
 * transformers and llama.cpp:
 *   endpoint   $HF_ENDPOINT (default https://huggingface.co)
 *   token      $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, $HF_TOKEN_PATH,
 *              $HF_HOME/token (default ~/.cache/huggingface/token); sent as
 *              "Authorization: Bearer" to the endpoint only (never to the CDN
 *              a download is redirected to)
 *   cache      $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub
 *              (default $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub)
 *   layout     <cache>/models--<org>--<repo>/blobs/<etag>
 *                                          /snapshots/<commit>/<file> -> ../../blobs/<etag>
 *                                          /refs/<revision>   (holds the commit hash)
 *              <cache>/.locks/models--<org>--<repo>/<etag>.lock  (flock while downloading)
 *   offline    $HF_HUB_OFFLINE=1 uses refs/<revision> and a complete snapshot only
 *
 * API used (the hub's public HTTP API):
 *   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true
 *       -> {"id", "sha": commit, "siblings": [{"rfilename", "size", "blobId",
 *           "lfs": {"sha256", "size", "pointerSize"}}], ...}
 *   GET {endpoint}/{repo}/resolve/{commit}/{file}   (302 to a CDN for LFS
 *       files; X-Repo-Commit, X-Linked-Etag, X-Linked-Size, ETag headers)
 *   errors carry X-Error-Code: RepoNotFound (401/404), GatedRepo (401/403),
 *   RevisionNotFound / EntryNotFound (404).
 *
 * Blob names are the hub's ETags: the LFS sha256 for LFS files, the git blob
 * id otherwise. A download goes to blobs/<etag>.incomplete and is renamed
 * when complete; an interrupted one is resumed with Range next time. LFS
 * files are checked against lfs.sha256 (mismatch: the file is deleted,
 * VIB3_ERR_CHECKSUM); every file against its size.
 *
 * Transfers run in parallel on one curl multi handle (at most `parallel`),
 * each retried on transient errors only (timeouts and stalls, a connection
 * reset or closed early, 5xx, 408, 429) with a short exponential backoff
 * (backoff_ms, 2x, ... capped at 4 s; retries_max attempts without progress —
 * an attempt that received bytes resets the count). An endpoint that cannot
 * be reached at all (connection refused, unknown host or proxy) fails at once:
 * retrying does not fix a wrong HF_ENDPOINT or a machine without network.
 *
 * vib3_hub_interrupt() (async-signal-safe: for a SIGINT handler) stops every
 * request and download at the next check (0.2 s for downloads, curl's ~1 s
 * progress tick for an API request): they return
 * VIB3_ERR_CANCELLED, the .incomplete files stay for the next run to resume.
 */
#ifndef VIB3_STORE_HUB_H
#define VIB3_STORE_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

#define VIB3_HUB_REPO_BYTES 128      /* org/name: 96 per part, as the hub allows */
#define VIB3_HUB_REVISION_BYTES 256
#define VIB3_HUB_FILE_BYTES 256
#define VIB3_HUB_ETAG_BYTES 72
#define VIB3_HUB_FILES_MAX 4096      /* files considered per repository */
#define VIB3_HUB_API_BYTES_MAX (32u << 20) /* largest model-info JSON accepted */

typedef struct vib3_hub {
    char endpoint[512];
    char token[512];                 /* "" = anonymous */
    char cache_dir[VIB3_PATH_MAX];   /* hub cache root (…/huggingface/hub) */
    uint32_t parallel;               /* concurrent transfers (VIB3_PULL_PARALLEL, default 4) */
    uint32_t retries_max;            /* attempts without progress (VIB3_PULL_RETRIES, default 5) */
    uint32_t backoff_ms;             /* first retry delay (VIB3_PULL_BACKOFF_MS, default 500) */
    uint32_t stall_s;                /* abort a transfer idle this long (VIB3_PULL_STALL_S, default 60) */
    uint32_t connect_timeout_s;      /* VIB3_PULL_CONNECT_TIMEOUT_S, default 10 */
    bool offline;                    /* HF_HUB_OFFLINE */
    bool progress;                   /* progress bar on a tty, plain lines otherwise */
    bool quiet;                      /* nothing on stderr but errors */
} vib3_hub;

typedef struct vib3_hub_file {
    char name[VIB3_HUB_FILE_BYTES];  /* rfilename (top level only: no '/') */
    char etag[VIB3_HUB_ETAG_BYTES];  /* blob name: lfs sha256 or git blob id */
    char sha256[65];                 /* "" when not an LFS file */
    uint64_t size_bytes;
    bool lfs;
} vib3_hub_file;

typedef struct vib3_hub_snapshot {
    char repo[VIB3_HUB_REPO_BYTES];
    char revision[VIB3_HUB_REVISION_BYTES];
    char commit[VIB3_HUB_ETAG_BYTES];
    char repo_dir[VIB3_PATH_MAX];    /* <cache>/models--org--repo */
    char path[VIB3_PATH_MAX];        /* <repo_dir>/snapshots/<commit>: what to convert */
    uint32_t n_files;                /* files fetched (or found) in the snapshot */
    uint64_t bytes_total;            /* their sizes */
    uint64_t bytes_downloaded;       /* received over the network by this call */
    uint64_t safetensors_bytes;      /* of which *.safetensors */
    bool from_cache_only;            /* offline / network down: cached snapshot used */
    bool gated;                      /* model info says "gated": "auto" | "manual" */
} vib3_hub_snapshot;

/* defaults from the environment (see above) */
void vib3_hub_init(vib3_hub *h);

/* Ctrl-C: ask every request and transfer of this process to stop (async-signal-safe) */
void vib3_hub_interrupt(void);
/* true once vib3_hub_interrupt() was called */
bool vib3_hub_interrupted(void);

/* "org/name" (or "name") with the hub's rules: [A-Za-z0-9_.-], 1..96 per
 * part, no "--" or "..", not starting or ending with '-' or '.', no ".git"
 * suffix. Error names the value and the rule. */
vib3_err vib3_hub_check_repo(const char *repo);
/* branch, tag or commit: [A-Za-z0-9_.-/], no "..", no leading '/' or '-', no "//" */
vib3_err vib3_hub_check_revision(const char *revision);

/* Download (or find in the cache) the files of repo@revision that conversion
 * needs: config.json, generation_config.json, tokenizer files, chat template,
 * model.safetensors.index.json and the safetensors it names (or
 * model.safetensors, or every top-level *.safetensors). Checks free disk
 * space first. On success out->path is the snapshot directory. */
vib3_err vib3_hub_download(vib3_hub *h, const char *repo, const char *revision, vib3_hub_snapshot *out);

/* The commit a revision points to now (one small API call; 40-hex revisions
 * are returned as they are). Used to tell whether a stored model is current. */
vib3_err vib3_hub_resolve_commit(vib3_hub *h, const char *repo, const char *revision, char *commit, int cap);

/* Parse a model-info JSON document (untrusted): the commit ("sha") and the
 * wanted files of "siblings" (files without blobs metadata get etag ""), at
 * most cap. For tests and fuzzing; vib3_hub_download() uses the same code. */
vib3_err vib3_hub_parse_info(const char *text, size_t len, const char *repo, char *commit, int commit_cap,
                              vib3_hub_file *files, uint32_t cap, uint32_t *n_files);

/* the cache directory of a repo: <cache>/models--org--repo */
vib3_err vib3_hub_repo_dir(const vib3_hub *h, const char *repo, char *out, int cap);

/* true when name is one of the files conversion needs (top-level only) */
bool vib3_hub_file_wanted(const char *name);

#endif
