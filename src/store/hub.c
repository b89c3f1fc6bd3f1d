/* hub.c — the Hugging Face Hub client (see hub.h): settings from the
 * environment, name rules, the model-info API, file selection, the cache
 * layout and the download of one snapshot. Transfers are in fetch.c.
 *
 * A download is two rounds: first the small files (config, tokenizer,
 * model.safetensors.index.json), then the weights — the shards the index
 * names, so repositories that also carry a consolidated copy (Mistral's
 * consolidated.safetensors) are not fetched twice. Free space is checked
 * before the weights round. refs/<revision> is written last, so an offline
 * run only trusts a snapshot that completed once.
 */
#include "store/hub.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/json.h"
#include "store/fetch.h"

#define DISK_MARGIN_BYTES (256ull << 20)

/* ---- settings ------------------------------------------------------------------ */

static void env_u32(const char *name, uint32_t *v, uint32_t lo, uint32_t hi) {
    const char *s = getenv(name);
    if (!s || !*s) return;
    char *end;
    unsigned long x = strtoul(s, &end, 10);
    if (*end || x < lo || x > hi) {
        fprintf(stderr, "vib3: ignoring %s=%s (expected an integer in %u..%u)\n", name, s, lo, hi);
        return;
    }
    *v = (uint32_t)x;
}

static bool read_token_file(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[1024];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok) return false;
    size_t n = strcspn(line, "\r\n");
    while (n && isspace((unsigned char)line[n - 1])) n--;
    line[n] = 0;
    if (!n || n >= cap) return false;
    memcpy(out, line, n + 1);
    return true;
}

/* a token goes into an HTTP header: printable ASCII only */
static bool token_ok(const char *t) {
    for (; *t; t++)
        if (*t <= 0x20 || *t >= 0x7f) return false;
    return true;
}

void vib3_hub_init(vib3_hub *h) {
    memset(h, 0, sizeof *h);
    const char *ep = getenv("HF_ENDPOINT");
    snprintf(h->endpoint, sizeof h->endpoint, "%s", ep && *ep ? ep : "https://huggingface.co");
    for (size_t n = strlen(h->endpoint); n && h->endpoint[n - 1] == '/';) h->endpoint[--n] = 0;

    char hf_home[VIB3_PATH_MAX];
    const char *e = getenv("HF_HOME"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (e && *e) snprintf(hf_home, sizeof hf_home, "%s", e);
    else if (xdg && *xdg) snprintf(hf_home, sizeof hf_home, "%s/huggingface", xdg);
    else snprintf(hf_home, sizeof hf_home, "%s/.cache/huggingface", home && *home ? home : "/tmp");

    const char *cache = getenv("HF_HUB_CACHE");
    if (!cache || !*cache) cache = getenv("HUGGINGFACE_HUB_CACHE");
    if (cache && *cache) snprintf(h->cache_dir, sizeof h->cache_dir, "%s", cache);
    else if (snprintf(h->cache_dir, sizeof h->cache_dir, "%s/hub", hf_home) >= (int)sizeof h->cache_dir)
        h->cache_dir[0] = 0; /* vib3_hub_download reports it */

    const char *tok = getenv("HF_TOKEN");
    if (!tok || !*tok) tok = getenv("HUGGING_FACE_HUB_TOKEN");
    if (tok && *tok) snprintf(h->token, sizeof h->token, "%s", tok);
    else {
        const char *tp = getenv("HF_TOKEN_PATH");
        char path[VIB3_PATH_MAX + 16];
        if (tp && *tp) snprintf(path, sizeof path, "%s", tp);
        else snprintf(path, sizeof path, "%s/token", hf_home);
        read_token_file(path, h->token, sizeof h->token);
    }
    if (h->token[0] && !token_ok(h->token)) {
        fprintf(stderr, "vib3: ignoring the Hugging Face token: it contains spaces or control characters\n");
        h->token[0] = 0;
    }

    const char *off = getenv("HF_HUB_OFFLINE");
    h->offline = off && (!strcmp(off, "1") || !strcasecmp(off, "true") || !strcasecmp(off, "yes"));
    h->parallel = 4;
    h->retries_max = 5;
    h->backoff_ms = 500;
    h->stall_s = 60;
    h->connect_timeout_s = 10;
    env_u32("VIB3_PULL_PARALLEL", &h->parallel, 1, 64);
    env_u32("VIB3_PULL_RETRIES", &h->retries_max, 0, 100);
    env_u32("VIB3_PULL_BACKOFF_MS", &h->backoff_ms, 1, 600000);
    env_u32("HF_HUB_DOWNLOAD_TIMEOUT", &h->stall_s, 1, 3600); /* huggingface_hub's read timeout */
    env_u32("VIB3_PULL_STALL_S", &h->stall_s, 1, 3600);
    env_u32("VIB3_PULL_CONNECT_TIMEOUT_S", &h->connect_timeout_s, 1, 600);
    h->progress = true;
}

static volatile sig_atomic_t g_interrupted;

void vib3_hub_interrupt(void) { g_interrupted = 1; }

bool vib3_hub_interrupted(void) { return g_interrupted != 0; }

/* ---- names ---------------------------------------------------------------------- */

static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.'; }

static vib3_err check_part(const char *repo, const char *p, size_t n) {
    if (n == 0 || n > 96)
        return vib3_err_set(VIB3_ERR_INVALID, "'%s': each part of a repository name has 1 to 96 characters", repo);
    for (size_t i = 0; i < n; i++)
        if (!name_char(p[i]))
            return vib3_err_set(VIB3_ERR_INVALID,
                                "'%s': character '%c' not allowed in a repository name (letters, digits, '_', "
                                "'-', '.')",
                                repo, isprint((unsigned char)p[i]) ? p[i] : '?');
    if (p[0] == '-' || p[0] == '.' || p[n - 1] == '-' || p[n - 1] == '.')
        return vib3_err_set(VIB3_ERR_INVALID, "'%s': a repository name part cannot start or end with '-' or '.'",
                            repo);
    return VIB3_OK;
}

vib3_err vib3_hub_check_repo(const char *repo) {
    size_t n = strlen(repo);
    if (n == 0 || n >= VIB3_HUB_REPO_BYTES)
        return vib3_err_set(VIB3_ERR_INVALID, "'%s': repository name must have 1 to %d characters", repo,
                            VIB3_HUB_REPO_BYTES - 1);
    if (strstr(repo, "--") || strstr(repo, ".."))
        return vib3_err_set(VIB3_ERR_INVALID, "'%s': '--' and '..' are not allowed in a repository name", repo);
    if (n >= 4 && !strcmp(repo + n - 4, ".git"))
        return vib3_err_set(VIB3_ERR_INVALID, "'%s': a repository name cannot end with .git", repo);
    const char *slash = strchr(repo, '/');
    if (!slash) return check_part(repo, repo, n);
    if (strchr(slash + 1, '/'))
        return vib3_err_set(VIB3_ERR_INVALID, "'%s': expected org/name (one '/')", repo);
    vib3_err rc = check_part(repo, repo, (size_t)(slash - repo));
    return rc ? rc : check_part(repo, slash + 1, strlen(slash + 1));
}

vib3_err vib3_hub_check_revision(const char *rev) {
    size_t n = strlen(rev);
    if (n == 0 || n >= VIB3_HUB_REVISION_BYTES)
        return vib3_err_set(VIB3_ERR_INVALID, "revision '%s': must have 1 to %d characters", rev,
                            VIB3_HUB_REVISION_BYTES - 1);
    for (size_t i = 0; i < n; i++)
        if (!name_char(rev[i]) && rev[i] != '/')
            return vib3_err_set(VIB3_ERR_INVALID, "revision '%s': character '%c' not allowed", rev,
                                isprint((unsigned char)rev[i]) ? rev[i] : '?');
    if (rev[0] == '/' || rev[0] == '-' || rev[0] == '.' || rev[n - 1] == '/' || strstr(rev, "..") ||
        strstr(rev, "//") || strstr(rev, "/."))
        return vib3_err_set(VIB3_ERR_INVALID, "revision '%s': not a valid branch, tag or commit name", rev);
    return VIB3_OK;
}

static bool is_hex(const char *s, size_t lo, size_t hi) {
    size_t n = strlen(s);
    if (n < lo || n > hi) return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return false;
    return true;
}

vib3_err vib3_hub_repo_dir(const vib3_hub *h, const char *repo, char *out, int cap) {
    char flat[VIB3_HUB_REPO_BYTES + 8];
    size_t o = 0;
    for (const char *p = repo; *p && o + 3 < sizeof flat; p++) {
        if (*p == '/') flat[o++] = '-', flat[o++] = '-';
        else flat[o++] = *p;
    }
    flat[o] = 0;
    if (snprintf(out, cap, "%s/models--%s", h->cache_dir, flat) >= cap)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: cache path too long", h->cache_dir);
    return VIB3_OK;
}

/* ---- which files conversion needs ---------------------------------------------------- */

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

bool vib3_hub_file_wanted(const char *name) {
    static const char *const exact[] = {
        "config.json",           "generation_config.json", "tokenizer.json",      "tokenizer_config.json",
        "tokenizer.model",       "tiktoken.model",         "special_tokens_map.json", "chat_template.jinja",
        "chat_template.json",    "model.safetensors.index.json",
    };
    if (!*name || strchr(name, '/') || strchr(name, '\\') || name[0] == '.') return false;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (!strcmp(name, exact[i])) return true;
    return ends_with(name, ".safetensors") || ends_with(name, ".tiktoken");
}

static bool is_weights(const char *name) { return ends_with(name, ".safetensors"); }

/* ---- helpers ------------------------------------------------------------------------- */

static vib3_err mkdir_p(const char *path) {
    char tmp[VIB3_PATH_MAX + 256];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: path too long", path);
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return vib3_err_set(VIB3_ERR_IO, "%s: mkdir: %s", tmp, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return VIB3_OK;
}

/* write s to path atomically (tmp + rename) */
static vib3_err write_small(const char *path, const char *s) {
    char tmp[VIB3_PATH_MAX + 600];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return vib3_err_set(VIB3_ERR_IO, "%s: %s", tmp, strerror(errno));
    bool ok = fputs(s, f) >= 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return vib3_err_set(VIB3_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return VIB3_OK;
}

static vib3_err read_small(const char *path, char *buf, size_t cap, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n == cap - 1) {
            close(fd);
            return vib3_err_set(VIB3_ERR_LIMIT, "%s: larger than %zu bytes", path, cap - 1);
        }
    }
    close(fd);
    buf[n] = 0;
    *len = n;
    return VIB3_OK;
}

/* The shard names of model.safetensors.index.json's weight_map, de-duplicated,
 * into names[] (pointers into the arena). Returns the count or -1 (error set). */
static int index_shards(const char *index_path, vib3_arena *a, char **names, int cap) {
    size_t max = 64u << 20, len;
    char *buf = vib3_arena_alloc(a, max, 0);
    if (!buf) return -1;
    if (read_small(index_path, buf, max, &len) != VIB3_OK) return -1;
    vib3_json j;
    if (vib3_json_parse(&j, buf, len, a, 0, index_path) != VIB3_OK) return -1;
    int map = vib3_json_get(&j, 0, "weight_map");
    if (map < 0 || !vib3_json_is(&j, map, JSMN_OBJECT)) {
        vib3_err_set(VIB3_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
        return -1;
    }
    int n = 0, count = vib3_json_size(&j, map);
    for (int i = 0, t = map + 1; i < count; i++) {
        int val = t + 1;
        char name[VIB3_HUB_FILE_BYTES];
        if (vib3_json_str(&j, val, name, sizeof name) < 0) {
            vib3_err_set(VIB3_ERR_FORMAT, "%s: weight_map entry %d is not a file name", index_path, i);
            return -1;
        }
        bool seen = false;
        for (int k = 0; k < n && !seen; k++) seen = !strcmp(names[k], name);
        if (!seen) {
            if (n == cap) {
                vib3_err_set(VIB3_ERR_LIMIT, "%s: more than %d shards", index_path, cap);
                return -1;
            }
            if (!(names[n++] = vib3_arena_strndup(a, name, strlen(name)))) return -1;
        }
        t = vib3_json_next(&j, val);
    }
    return n;
}

/* ---- the model-info API ------------------------------------------------------------------- */

/* parse siblings into files[] (wanted ones only); commit into snap->commit */
static vib3_err parse_model_info(const char *text, size_t len, vib3_arena *a, vib3_hub_snapshot *snap,
                                 vib3_hub_file *files, uint32_t cap, uint32_t *n_files) {
    vib3_json j;
    char what[VIB3_HUB_REPO_BYTES + 64];
    snprintf(what, sizeof what, "%s: model info", snap->repo);
    if (vib3_json_parse(&j, text, len, a, 0, what) != VIB3_OK) return vib3_err_code();
    if (!vib3_json_is(&j, 0, JSMN_OBJECT)) return vib3_err_set(VIB3_ERR_FORMAT, "%s: not a JSON object", what);
    if (vib3_json_get_str(&j, 0, "sha", snap->commit, sizeof snap->commit) < 0 || !is_hex(snap->commit, 7, 64))
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: \"sha\" is missing or not a commit hash", what);
    int gated = vib3_json_get(&j, 0, "gated"); /* false, "auto" or "manual" */
    snap->gated = gated >= 0 && vib3_json_is(&j, gated, JSMN_STRING);
    int sib = vib3_json_get(&j, 0, "siblings");
    if (sib < 0 || !vib3_json_is(&j, sib, JSMN_ARRAY))
        return vib3_err_set(VIB3_ERR_FORMAT, "%s: no \"siblings\" array", what);
    uint32_t n = 0;
    int count = vib3_json_size(&j, sib);
    for (int i = 0; i < count; i++) {
        int s = vib3_json_index(&j, sib, i);
        char name[VIB3_HUB_FILE_BYTES];
        if (vib3_json_get_str(&j, s, "rfilename", name, sizeof name) < 0) continue; /* too long: not ours */
        if (!vib3_hub_file_wanted(name)) continue;
        if (n == cap) return vib3_err_set(VIB3_ERR_LIMIT, "%s: more than %u files to fetch", what, cap);
        vib3_hub_file *f = &files[n];
        memset(f, 0, sizeof *f);
        snprintf(f->name, sizeof f->name, "%s", name);
        int lfs = vib3_json_get(&j, s, "lfs");
        if (lfs >= 0 && vib3_json_is(&j, lfs, JSMN_OBJECT)) {
            f->lfs = true;
            if (vib3_json_get_str(&j, lfs, "sha256", f->sha256, sizeof f->sha256) < 0 || !is_hex(f->sha256, 64, 64))
                return vib3_err_set(VIB3_ERR_FORMAT, "%s: siblings[%d] (%s): lfs.sha256 missing or malformed", what,
                                    i, name);
            if (!vib3_json_u64(&j, vib3_json_get(&j, lfs, "size"), &f->size_bytes))
                return vib3_err_set(VIB3_ERR_FORMAT, "%s: siblings[%d] (%s): lfs.size missing", what, i, name);
            snprintf(f->etag, sizeof f->etag, "%s", f->sha256);
        } else if (vib3_json_get_str(&j, s, "blobId", f->etag, sizeof f->etag) < 0 || !is_hex(f->etag, 40, 64) ||
                   !vib3_json_u64(&j, vib3_json_get(&j, s, "size"), &f->size_bytes)) {
            f->etag[0] = 0; /* no ?blobs=true metadata (some mirrors): asked with HEAD later */
        }
        n++;
    }
    *n_files = n;
    return VIB3_OK;
}

vib3_err vib3_hub_parse_info(const char *text, size_t len, const char *repo, char *commit, int commit_cap,
                              vib3_hub_file *files, uint32_t cap, uint32_t *n_files) {
    vib3_hub_snapshot snap;
    memset(&snap, 0, sizeof snap);
    snprintf(snap.repo, sizeof snap.repo, "%s", repo);
    vib3_arena a;
    vib3_err rc = vib3_arena_init(&a, 64u + len * 16u + (64u << 10), "hub-info", 0);
    if (rc) return rc;
    *n_files = 0;
    rc = parse_model_info(text, len, &a, &snap, files, cap, n_files);
    if (rc == VIB3_OK) snprintf(commit, commit_cap, "%s", snap.commit);
    vib3_arena_fini(&a);
    return rc;
}

static vib3_err fetch_model_info(vib3_hub *h, vib3_arena *a, vib3_hub_snapshot *snap, vib3_hub_file *files,
                                 uint32_t *n_files, bool *net_down) {
    char erepo[VIB3_HUB_REPO_BYTES * 3], erev[VIB3_HUB_REVISION_BYTES * 3], url[2048];
    vib3_fetch_url_escape(snap->repo, 1, erepo, sizeof erepo);
    vib3_fetch_url_escape(snap->revision, 0, erev, sizeof erev); /* refs/pr/1 -> refs%2Fpr%2F1 */
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s?blobs=true", h->endpoint, erepo, erev);
    char *buf = vib3_arena_alloc(a, VIB3_HUB_API_BYTES_MAX, 0);
    if (!buf) return vib3_err_code();
    size_t len = 0;
    vib3_http_info info;
    *net_down = false;
    if (vib3_fetch_mem(h, url, buf, VIB3_HUB_API_BYTES_MAX, &len, &info) != VIB3_OK) {
        *net_down = vib3_err_code() == VIB3_ERR_NET;
        return vib3_err_code();
    }
    if (info.status != 200) return vib3_fetch_http_error(h, snap->repo, snap->revision, NULL, &info);
    return parse_model_info(buf, len, a, snap, files, VIB3_HUB_FILES_MAX, n_files);
}

vib3_err vib3_hub_resolve_commit(vib3_hub *h, const char *repo, const char *revision, char *commit, int cap) {
    vib3_err rc;
    if ((rc = vib3_hub_check_repo(repo)) != VIB3_OK || (rc = vib3_hub_check_revision(revision)) != VIB3_OK)
        return rc;
    if (is_hex(revision, 40, 40)) {
        snprintf(commit, cap, "%s", revision);
        return VIB3_OK;
    }
    if (h->offline) return vib3_err_set(VIB3_ERR_NET, "HF_HUB_OFFLINE is set");
    char erepo[VIB3_HUB_REPO_BYTES * 3], erev[VIB3_HUB_REVISION_BYTES * 3], url[2048];
    vib3_fetch_url_escape(repo, 1, erepo, sizeof erepo);
    vib3_fetch_url_escape(revision, 0, erev, sizeof erev);
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", h->endpoint, erepo, erev);
    vib3_arena a;
    if ((rc = vib3_arena_init(&a, 64u << 20, "hub", 0)) != VIB3_OK) return rc;
    char *buf = vib3_arena_alloc(&a, VIB3_HUB_API_BYTES_MAX, 0);
    size_t len = 0;
    vib3_http_info info;
    if (!buf) rc = vib3_err_code();
    else if ((rc = vib3_fetch_mem(h, url, buf, VIB3_HUB_API_BYTES_MAX, &len, &info)) != VIB3_OK) {
    } else if (info.status != 200) {
        rc = vib3_fetch_http_error(h, repo, revision, NULL, &info);
    } else {
        vib3_json j;
        char sha[VIB3_HUB_ETAG_BYTES];
        if ((rc = vib3_json_parse(&j, buf, len, &a, 0, "model info")) == VIB3_OK &&
            (vib3_json_get_str(&j, 0, "sha", sha, sizeof sha) < 0 || !is_hex(sha, 7, 64)))
            rc = vib3_err_set(VIB3_ERR_FORMAT, "%s@%s: model info: \"sha\" missing or malformed", repo, revision);
        if (rc == VIB3_OK) snprintf(commit, cap, "%s", sha);
    }
    vib3_arena_fini(&a);
    return rc;
}

/* A file the model info gave no metadata for: HEAD resolve/<commit>/<file> as
 * huggingface_hub does (X-Linked-Etag = sha256 for LFS files, else ETag). */
static vib3_err head_metadata(vib3_hub *h, const vib3_hub_snapshot *snap, vib3_hub_file *f) {
    char erepo[VIB3_HUB_REPO_BYTES * 3], efile[VIB3_HUB_FILE_BYTES * 3], url[2048];
    vib3_fetch_url_escape(snap->repo, 1, erepo, sizeof erepo);
    vib3_fetch_url_escape(f->name, 1, efile, sizeof efile);
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", h->endpoint, erepo, snap->commit, efile);
    vib3_http_info info;
    vib3_err rc = vib3_fetch_head(h, url, &info);
    if (rc) return rc;
    if (info.status >= 400) return vib3_fetch_http_error(h, snap->repo, snap->revision, f->name, &info);
    if (!is_hex(info.etag, 40, 64))
        return vib3_err_set(VIB3_ERR_FORMAT, "%s@%s: %s: HEAD %s: ETag '%s' is not a blob hash", snap->repo,
                            snap->revision, f->name, url, info.etag);
    snprintf(f->etag, sizeof f->etag, "%s", info.etag);
    f->size_bytes = info.size_bytes;
    f->lfs = info.linked_etag && is_hex(info.etag, 64, 64);
    if (f->lfs) memcpy(f->sha256, info.etag, 65); /* 64 hex + NUL, checked above */
    return VIB3_OK;
}

/* ---- a snapshot already in the cache (offline) ------------------------------------------------ */

static vib3_err add_cached(vib3_hub_snapshot *snap, const char *name) {
    char p[VIB3_PATH_MAX + 300];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", snap->path, name);
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
        return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: missing from the cached snapshot", p);
    snap->n_files++;
    snap->bytes_total += (uint64_t)st.st_size;
    if (is_weights(name)) snap->safetensors_bytes += (uint64_t)st.st_size;
    return VIB3_OK;
}

static vib3_err use_cached(const vib3_hub *h, vib3_arena *a, vib3_hub_snapshot *snap) {
    char ref[VIB3_PATH_MAX + 300];
    size_t len;
    if (is_hex(snap->revision, 40, 40)) memcpy(snap->commit, snap->revision, 41);
    else {
        snprintf(ref, sizeof ref, "%s/refs/%s", snap->repo_dir, snap->revision);
        if (read_small(ref, snap->commit, sizeof snap->commit, &len) != VIB3_OK || !is_hex(snap->commit, 7, 64))
            return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s@%s is not in the Hugging Face cache (%s)", snap->repo,
                                snap->revision, h->cache_dir);
    }
    if (snprintf(snap->path, sizeof snap->path, "%s/snapshots/%s", snap->repo_dir, snap->commit) >=
        (int)sizeof snap->path)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: path too long", snap->repo_dir);
    vib3_err rc = add_cached(snap, "config.json");
    if (rc) return rc;
    char idx[VIB3_PATH_MAX + 300];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", snap->path);
    if (access(idx, R_OK) == 0) {
        char *names[VIB3_HUB_FILES_MAX];
        int n = index_shards(idx, a, names, VIB3_HUB_FILES_MAX);
        if (n < 0) return vib3_err_code();
        for (int i = 0; i < n; i++)
            if ((rc = add_cached(snap, names[i])) != VIB3_OK) return rc;
    } else if ((rc = add_cached(snap, "model.safetensors")) != VIB3_OK) {
        return rc;
    }
    snap->from_cache_only = true;
    return VIB3_OK;
}

/* ---- the download ------------------------------------------------------------------------------- */

static vib3_err check_space(const vib3_hub_snapshot *snap, vib3_hub_file *const *todo, uint32_t n) {
    uint64_t need = 0;
    for (uint32_t i = 0; i < n; i++) {
        char p[VIB3_PATH_MAX + 128];
        struct stat st;
        snprintf(p, sizeof p, "%s/blobs/%s.incomplete", snap->repo_dir, todo[i]->etag);
        uint64_t have = stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
        need += have < todo[i]->size_bytes ? todo[i]->size_bytes - have : 0;
    }
    struct statvfs vfs;
    if (statvfs(snap->repo_dir, &vfs) != 0) return VIB3_OK; /* cannot tell: let the writes say */
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (need + DISK_MARGIN_BYTES > avail) {
        char a[32], b[32];
        return vib3_err_set(VIB3_ERR_IO,
                            "%s@%s: not enough disk space in %s: the download needs %s more, %s available "
                            "(set HF_HUB_CACHE to a larger disk)",
                            snap->repo, snap->revision, snap->repo_dir, vib3_format_size(need, a, sizeof a),
                            vib3_format_size(avail, b, sizeof b));
    }
    return VIB3_OK;
}

/* the files to fetch in the weights round: the index's shards, model.safetensors, or every *.safetensors */
static vib3_err select_weights(vib3_arena *a, const vib3_hub_snapshot *snap, vib3_hub_file *files, uint32_t n_files,
                               vib3_hub_file **todo, uint32_t *n_todo) {
    char idx[VIB3_PATH_MAX + 300];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", snap->path);
    uint32_t n = 0;
    if (access(idx, R_OK) == 0) {
        char **names = vib3_arena_alloc(a, VIB3_HUB_FILES_MAX * sizeof(char *), 0);
        if (!names) return vib3_err_code();
        int k = index_shards(idx, a, names, VIB3_HUB_FILES_MAX);
        if (k < 0) return vib3_err_code();
        for (int i = 0; i < k; i++) {
            uint32_t f = 0;
            while (f < n_files && strcmp(files[f].name, names[i])) f++;
            if (f == n_files)
                return vib3_err_set(VIB3_ERR_FORMAT, "%s@%s: model.safetensors.index.json names %s, which is not a "
                                    "top-level file of the repository", snap->repo, snap->revision, names[i]);
            todo[n++] = &files[f];
        }
    } else {
        for (uint32_t f = 0; f < n_files; f++)
            if (!strcmp(files[f].name, "model.safetensors")) todo[n++] = &files[f];
        for (uint32_t f = 0; f < n_files && n == 0; f++)
            if (is_weights(files[f].name)) todo[n++] = &files[f];
        for (uint32_t f = 0; f < n_files && n > 0 && strcmp(todo[0]->name, "model.safetensors"); f++)
            if (is_weights(files[f].name) && &files[f] != todo[0]) todo[n++] = &files[f];
    }
    if (n == 0)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED,
                            "%s@%s: no safetensors weights at the top level of the repository (vib3 converts "
                            "safetensors; for a GGUF repository download the .gguf and run `vib3 convert`)",
                            snap->repo, snap->revision);
    *n_todo = n;
    return VIB3_OK;
}

static vib3_err download_in(vib3_hub *h, vib3_arena *a, vib3_hub_snapshot *snap) {
    vib3_hub_file *files = vib3_arena_calloc(a, VIB3_HUB_FILES_MAX, sizeof *files, 0);
    vib3_hub_file **todo = vib3_arena_alloc(a, VIB3_HUB_FILES_MAX * sizeof *todo, 0);
    if (!files || !todo) return vib3_err_code();
    uint32_t n_files = 0;
    bool net_down = false;
    vib3_err rc = h->offline ? VIB3_ERR_NET : fetch_model_info(h, a, snap, files, &n_files, &net_down);
    if (h->offline || (rc == VIB3_ERR_NET && net_down)) {
        char why[1024];
        snprintf(why, sizeof why, "%s", h->offline ? "HF_HUB_OFFLINE is set" : vib3_err_msg());
        if (use_cached(h, a, snap) == VIB3_OK) {
            if (!h->quiet && !h->offline)
                fprintf(stderr, "vib3 pull: %s; using the cached snapshot %s\n", why, snap->commit);
            return VIB3_OK;
        }
        if (h->offline) return vib3_err_prefix("HF_HUB_OFFLINE is set");
        return vib3_err_set(VIB3_ERR_NET,
                            "cannot reach the hub at %s (%s), and %s@%s is not complete in the cache %s: check the "
                            "network connection and HF_ENDPOINT",
                            h->endpoint, why, snap->repo, snap->revision, h->cache_dir);
    }
    if (rc) return rc;
    if (snap->gated && !h->token[0]) { /* the files will answer 401: say so before fetching anything */
        vib3_http_info info = {.status = 401};
        snprintf(info.error_code, sizeof info.error_code, "GatedRepo");
        return vib3_fetch_http_error(h, snap->repo, snap->revision, NULL, &info);
    }
    for (uint32_t i = 0; i < n_files; i++)
        if (!files[i].etag[0] && (rc = head_metadata(h, snap, &files[i])) != VIB3_OK) return rc;
    bool has_config = false;
    for (uint32_t i = 0; i < n_files; i++) has_config |= !strcmp(files[i].name, "config.json");
    if (!has_config)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "%s@%s: the repository has no config.json at the top level",
                            snap->repo, snap->revision);

    char dir[VIB3_PATH_MAX + 128], locks[VIB3_PATH_MAX + 128];
    if (snprintf(snap->path, sizeof snap->path, "%s/snapshots/%s", snap->repo_dir, snap->commit) >=
        (int)sizeof snap->path)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: path too long", snap->repo_dir);
    snprintf(dir, sizeof dir, "%s/blobs", snap->repo_dir);
    snprintf(locks, sizeof locks, "%s/.locks/%s", h->cache_dir, strrchr(snap->repo_dir, '/') + 1);
    if ((rc = mkdir_p(dir)) || (rc = mkdir_p(snap->path)) || (rc = mkdir_p(locks))) return rc;

    vib3_fetch_job job = {.hub = h, .repo = snap->repo, .revision = snap->revision, .commit = snap->commit,
                          .repo_dir = snap->repo_dir, .lock_dir = locks};
    /* round 1: everything but the weights (small) */
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_files; i++)
        if (!is_weights(files[i].name)) todo[n++] = &files[i];
    bool quiet = h->quiet;
    h->quiet = true; /* no progress bar for a few kilobytes */
    rc = vib3_fetch_files(&job, todo, n);
    h->quiet = quiet;
    if (rc) return rc;
    for (uint32_t i = 0; i < n; i++) snap->n_files++, snap->bytes_total += todo[i]->size_bytes;
    /* round 2: the weights */
    if ((rc = select_weights(a, snap, files, n_files, todo, &n)) != VIB3_OK) return rc;
    if ((rc = check_space(snap, todo, n)) != VIB3_OK) return rc;
    if (!h->quiet) {
        uint64_t total = 0;
        char s[32];
        for (uint32_t i = 0; i < n; i++) total += todo[i]->size_bytes;
        fprintf(stderr, "vib3 pull: %s@%s (commit %.12s): %u weight file%s, %s\n", snap->repo, snap->revision,
                snap->commit, n, n == 1 ? "" : "s", vib3_format_size(total, s, sizeof s));
    }
    if ((rc = vib3_fetch_files(&job, todo, n)) != VIB3_OK) return rc;
    for (uint32_t i = 0; i < n; i++) {
        snap->n_files++;
        snap->bytes_total += todo[i]->size_bytes;
        snap->safetensors_bytes += todo[i]->size_bytes;
    }
    snap->bytes_downloaded = job.bytes_downloaded;
    /* refs/<revision> last: a ref only ever names a snapshot that completed */
    if (strcmp(snap->revision, snap->commit) != 0) {
        char ref[VIB3_PATH_MAX + 300];
        snprintf(ref, sizeof ref, "%s/refs/%s", snap->repo_dir, snap->revision);
        char *slash = strrchr(ref, '/');
        *slash = 0;
        if ((rc = mkdir_p(ref)) != VIB3_OK) return rc;
        *slash = '/';
        if ((rc = write_small(ref, snap->commit)) != VIB3_OK) return rc;
    }
    return VIB3_OK;
}

vib3_err vib3_hub_download(vib3_hub *h, const char *repo, const char *revision, vib3_hub_snapshot *out) {
    memset(out, 0, sizeof *out);
    vib3_err rc;
    if ((rc = vib3_hub_check_repo(repo)) != VIB3_OK || (rc = vib3_hub_check_revision(revision)) != VIB3_OK)
        return rc;
    if (!h->cache_dir[0]) return vib3_err_set(VIB3_ERR_LIMIT, "HF_HOME: path too long");
    snprintf(out->repo, sizeof out->repo, "%s", repo);
    snprintf(out->revision, sizeof out->revision, "%s", revision);
    if ((rc = vib3_hub_repo_dir(h, repo, out->repo_dir, sizeof out->repo_dir)) != VIB3_OK) return rc;
    vib3_arena a;
    if ((rc = vib3_arena_init(&a, 512u << 20, "hub", 0)) != VIB3_OK) return rc; /* reserved, touched as used */
    rc = download_in(h, &a, out);
    vib3_arena_fini(&a);
    return rc;
}
