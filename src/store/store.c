/* store.c — the model store (see store.h): alias lookup, name rules, pull =
 * hub download + conversion with an atomic rename, ensure, rm, list.
 */
#include "store/store.h"

#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "convert/convert.h"
#include "core/arena.h"
#include "core/json.h"
#include "format/reader.h"

#define STORE_MARGIN_BYTES (256ull << 20)

/* snprintf that reports truncation (-1) instead of warning about it */
__attribute__((format(printf, 3, 4))) static int strf(char *dst, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- models.conf ------------------------------------------------------------------- */

static int alias_files(char paths[5][VIB3_PATH_MAX]) {
    int n = 0;
    const char *env = getenv("VIB3_MODELS_CONF");
    if (env && *env) snprintf(paths[n++], VIB3_PATH_MAX, "%s", env);
    char exe[VIB3_PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        if (snprintf(paths[n], VIB3_PATH_MAX, "%s/../conf/models.conf", exe) < VIB3_PATH_MAX) n++;
    }
    char installed[VIB3_PATH_MAX] = ""; /* `make install`: <prefix>/share/vib3/models.conf, after the user's files */
    if (len > 0 && snprintf(installed, sizeof installed, "%s/../share/vib3/models.conf", exe) >= (int)sizeof installed)
        installed[0] = 0;
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) {
        if (snprintf(paths[n], VIB3_PATH_MAX, "%s/vib3/models.conf", xdg) < VIB3_PATH_MAX) n++;
    } else if (home && *home) {
        if (snprintf(paths[n], VIB3_PATH_MAX, "%s/.config/vib3/models.conf", home) < VIB3_PATH_MAX) n++;
    }
    snprintf(paths[n++], VIB3_PATH_MAX, "/etc/vib3/models.conf");
    if (installed[0]) snprintf(paths[n++], VIB3_PATH_MAX, "%s", installed);
    return n;
}

void vib3_store_alias_files(char *out, int cap) {
    char paths[5][VIB3_PATH_MAX];
    int n = alias_files(paths), o = 0;
    out[0] = 0;
    for (int i = 0; i < n && o < cap; i++) o += snprintf(out + o, cap - o, "%s%s", i ? ", " : "", paths[i]);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

/* target of alias in the first file defining it; 1 found, 0 not, -1 error */
static int alias_lookup(const char *alias, char *target, size_t cap, char *conf, size_t conf_cap) {
    char paths[5][VIB3_PATH_MAX];
    int n = alias_files(paths);
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f) continue;
        char line[2048];
        unsigned lineno = 0;
        while (fgets(line, sizeof line, f)) {
            lineno++;
            char *s = trim(line);
            if (!*s || *s == '#' || *s == ';' || *s == '[') continue;
            char *eq = strchr(s, '=');
            if (!eq) {
                fclose(f);
                vib3_err_set(VIB3_ERR_FORMAT, "%s:%u: expected alias = org/repo[:revision] or local:DIR", paths[i],
                             lineno);
                return -1;
            }
            *eq = 0;
            char *key = trim(s), *value = trim(eq + 1);
            char *hash = strstr(value, " #");
            if (hash) *hash = 0, value = trim(value);
            if (strcmp(key, alias) != 0) continue;
            fclose(f);
            if (strlen(value) >= cap) {
                vib3_err_set(VIB3_ERR_FORMAT, "%s:%u: value of %s too long", paths[i], lineno, alias);
                return -1;
            }
            strcpy(target, value);
            strf(conf, conf_cap, "%s", paths[i]);
            return 1;
        }
        fclose(f);
    }
    return 0;
}

int vib3_store_aliases(vib3_store_alias *out, int cap) {
    char paths[5][VIB3_PATH_MAX];
    int n_files = alias_files(paths), n = 0;
    for (int i = 0; i < n_files; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f) continue;
        char line[2048];
        while (fgets(line, sizeof line, f) && n < cap) {
            char *s = trim(line), *eq = strchr(s, '=');
            if (!*s || *s == '#' || *s == ';' || *s == '[' || !eq) continue;
            *eq = 0;
            char *key = trim(s), *value = trim(eq + 1), *hash = strstr(value, " #");
            if (hash) *hash = 0, value = trim(value);
            bool dup = false;
            for (int k = 0; k < n && !dup; k++) dup = !strcmp(out[k].alias, key);
            if (dup || strf(out[n].alias, sizeof out[n].alias, "%s", key) ||
                strf(out[n].target, sizeof out[n].target, "%s", value))
                continue;
            strf(out[n].conf_path, sizeof out[n].conf_path, "%s", paths[i]);
            n++;
        }
        fclose(f);
    }
    return n;
}

/* ---- names ------------------------------------------------------------------------- */

static vib3_err check_alias(const char *a) {
    size_t n = strlen(a);
    if (n == 0 || n >= VIB3_STORE_ALIAS_BYTES || a[0] == '.' || a[0] == '-' || strstr(a, ".."))
        return vib3_err_set(VIB3_ERR_INVALID, "'%s': not a valid model name", a);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)a[i]) && a[i] != '-' && a[i] != '_' && a[i] != '.')
            return vib3_err_set(VIB3_ERR_INVALID, "'%s': character '%c' not allowed in a model name", a,
                                isprint((unsigned char)a[i]) ? a[i] : '?');
    return VIB3_OK;
}

/* "org/repo[:rev]" into ref (repo, revision, name = org--repo) */
static vib3_err parse_repo(const char *spec, vib3_store_ref *r) {
    char buf[VIB3_HUB_REPO_BYTES + VIB3_HUB_REVISION_BYTES + 2];
    if (strlen(spec) >= sizeof buf) return vib3_err_set(VIB3_ERR_INVALID, "'%.40s...': name too long", spec);
    strcpy(buf, spec);
    char *colon = strchr(buf, ':');
    if (colon) *colon = 0;
    vib3_err rc = vib3_hub_check_repo(buf);
    if (rc) return rc;
    if (colon && (rc = vib3_hub_check_revision(colon + 1)) != VIB3_OK) return rc;
    strf(r->repo, sizeof r->repo, "%s", buf);
    snprintf(r->revision, sizeof r->revision, "%s", colon ? colon + 1 : "main");
    size_t o = 0;
    for (const char *p = buf; *p; p++) {
        if (*p == '/') r->name[o++] = '-', r->name[o++] = '-';
        else r->name[o++] = *p;
    }
    r->name[o] = 0;
    return VIB3_OK;
}

vib3_err vib3_store_resolve(const char *arg, vib3_store_ref *r) {
    memset(r, 0, sizeof *r);
    char head[VIB3_HUB_REPO_BYTES + VIB3_HUB_REVISION_BYTES + 2];
    if (strlen(arg) >= sizeof head) return vib3_err_set(VIB3_ERR_INVALID, "'%.40s...': name too long", arg);
    strcpy(head, arg);
    char *colon = strchr(head, ':');
    const char *user_rev = NULL;
    if (colon) *colon = 0, user_rev = colon + 1;
    if (!strchr(head, '/')) {
        /* an alias, or a store name "org--repo" */
        if (check_alias(head) == VIB3_OK) {
            char target[VIB3_PATH_MAX];
            int found = alias_lookup(head, target, sizeof target, r->conf_path, sizeof r->conf_path);
            if (found < 0) return vib3_err_code();
            if (found) {
                strf(r->alias, sizeof r->alias, "%s", head);
                if (!strncmp(target, "local:", 6)) {
                    const char *dir = trim(target + 6);
                    if (dir[0] == '/') snprintf(r->local_path, sizeof r->local_path, "%s", dir);
                    else {
                        char base[VIB3_PATH_MAX];
                        snprintf(base, sizeof base, "%s", r->conf_path);
                        char *slash = strrchr(base, '/');
                        if (slash) *slash = 0;
                        else strcpy(base, ".");
                        if (snprintf(r->local_path, sizeof r->local_path, "%s/%s", base, dir) >=
                            (int)sizeof r->local_path)
                            return vib3_err_set(VIB3_ERR_LIMIT, "%s: alias %s: path too long", r->conf_path, head);
                    }
                    char canon[PATH_MAX];
                    if (realpath(r->local_path, canon)) strf(r->local_path, sizeof r->local_path, "%s", canon);
                    if (user_rev)
                        return vib3_err_set(VIB3_ERR_INVALID, "'%s': %s is a local model, it has no revisions", arg,
                                            head);
                } else {
                    if (parse_repo(target, r) != VIB3_OK) return vib3_err_prefix("%s: alias %s", r->conf_path, head);
                    if (user_rev) {
                        if (vib3_hub_check_revision(user_rev) != VIB3_OK) return vib3_err_code();
                        snprintf(r->revision, sizeof r->revision, "%s", user_rev);
                    }
                }
                strf(r->name, sizeof r->name, "%s", head);
                return VIB3_OK;
            }
        }
        char *dd = strstr(head, "--");
        if (dd && dd != head) { /* store name of a repo: org--repo */
            *dd = '/';
            memmove(dd + 1, dd + 2, strlen(dd + 2) + 1);
            char spec[sizeof head];
            strf(spec, sizeof spec, "%s%s%s", head, user_rev ? ":" : "", user_rev ? user_rev : "");
            return parse_repo(spec, r);
        }
        char files[4 * VIB3_PATH_MAX];
        vib3_store_alias_files(files, sizeof files);
        return vib3_err_set(VIB3_ERR_NOT_FOUND,
                            "'%s': not a model alias (aliases are read from %s) and not a Hugging Face "
                            "repository (org/name)",
                            head, files);
    }
    return parse_repo(arg, r);
}

vib3_err vib3_store_path(const vib3_config *cfg, const char *name, const char *suffix, char *out, int cap) {
    if (check_alias(name) != VIB3_OK) return vib3_err_code();
    if (snprintf(out, cap, "%s/models/%s%s", cfg->home, name, suffix) >= cap)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s/models/%s: path too long", cfg->home, name);
    return VIB3_OK;
}

/* ---- small files --------------------------------------------------------------------- */

static vib3_err mkdir_p(const char *path) {
    char tmp[VIB3_PATH_MAX + 64];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: path too long", path);
    for (char *p = tmp + 1;; p++)
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return vib3_err_set(VIB3_ERR_IO, "%s: mkdir: %s", tmp, strerror(errno));
            if (!(*p = c)) break;
        }
    return VIB3_OK;
}

static long read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0) n += (size_t)r;
    close(fd);
    buf[n] = 0;
    return (long)n;
}

/* key/value strings of the sidecar JSON */
typedef struct sidecar {
    char source[16], repo[VIB3_HUB_REPO_BYTES], revision[VIB3_HUB_REVISION_BYTES], commit[VIB3_HUB_ETAG_BYTES];
    char endpoint[512], local_path[VIB3_PATH_MAX];
} sidecar;

static bool sidecar_read(const char *path, sidecar *s) {
    memset(s, 0, sizeof *s);
    char buf[16384];
    long n = read_file(path, buf, sizeof buf);
    if (n <= 0) return false;
    vib3_arena a;
    if (vib3_arena_init(&a, 1u << 20, "sidecar", 0) != VIB3_OK) return false;
    vib3_json j;
    bool ok = vib3_json_parse(&j, buf, (size_t)n, &a, 0, path) == VIB3_OK && vib3_json_is(&j, 0, JSMN_OBJECT);
    if (ok) {
        vib3_json_get_str(&j, 0, "source", s->source, sizeof s->source);
        vib3_json_get_str(&j, 0, "repo", s->repo, sizeof s->repo);
        vib3_json_get_str(&j, 0, "revision", s->revision, sizeof s->revision);
        vib3_json_get_str(&j, 0, "commit", s->commit, sizeof s->commit);
        vib3_json_get_str(&j, 0, "endpoint", s->endpoint, sizeof s->endpoint);
        vib3_json_get_str(&j, 0, "path", s->local_path, sizeof s->local_path);
    }
    vib3_arena_fini(&a);
    vib3_err_clear();
    return ok;
}

static int put_kv(char *buf, size_t cap, size_t *o, const char *key, const char *val, bool last) {
    long w = vib3_json_write_str(buf + *o, cap - *o, key, strlen(key));
    if (w < 0) return -1;
    *o += (size_t)w;
    if (*o + 2 >= cap) return -1;
    buf[(*o)++] = ':';
    w = vib3_json_write_str(buf + *o, cap - *o, val, strlen(val));
    if (w < 0 || *o + (size_t)w + 3 >= cap) return -1;
    *o += (size_t)w;
    *o += (size_t)snprintf(buf + *o, cap - *o, "%s", last ? "}\n" : ", ");
    return 0;
}

static vib3_err sidecar_write(const char *path, const vib3_store_ref *r, const vib3_hub *h,
                              const vib3_hub_snapshot *snap) {
    char buf[16384], when[32], bytes[32], tmp[VIB3_PATH_MAX + 32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    size_t o = 1;
    buf[0] = '{';
    int bad = put_kv(buf, sizeof buf, &o, "name", r->name, false);
    if (r->alias[0]) bad |= put_kv(buf, sizeof buf, &o, "alias", r->alias, false);
    if (snap) {
        snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)snap->bytes_total);
        bad |= put_kv(buf, sizeof buf, &o, "source", "hub", false);
        bad |= put_kv(buf, sizeof buf, &o, "endpoint", h->endpoint, false);
        bad |= put_kv(buf, sizeof buf, &o, "repo", snap->repo, false);
        bad |= put_kv(buf, sizeof buf, &o, "revision", snap->revision, false);
        bad |= put_kv(buf, sizeof buf, &o, "commit", snap->commit, false);
        bad |= put_kv(buf, sizeof buf, &o, "snapshot", snap->path, false);
        bad |= put_kv(buf, sizeof buf, &o, "source_bytes", bytes, false);
    } else {
        bad |= put_kv(buf, sizeof buf, &o, "source", "local", false);
        bad |= put_kv(buf, sizeof buf, &o, "path", r->local_path, false);
    }
    bad |= put_kv(buf, sizeof buf, &o, "pulled_at", when, true);
    if (bad) return vib3_err_set(VIB3_ERR_LIMIT, "%s: sidecar larger than %zu bytes", path, sizeof buf);
    if (strf(tmp, sizeof tmp, "%s.tmp", path)) return vib3_err_set(VIB3_ERR_LIMIT, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return vib3_err_set(VIB3_ERR_IO, "%s: %s", tmp, strerror(errno));
    bool ok = write(fd, buf, o) == (ssize_t)o;
    ok = fsync(fd) == 0 && ok;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return vib3_err_set(VIB3_ERR_IO, "%s: %s", path, strerror(errno ? errno : EIO));
    }
    return VIB3_OK;
}

/* ---- pull ------------------------------------------------------------------------------- */

void vib3_pull_opts_default(vib3_pull_opts *o) {
    memset(o, 0, sizeof *o);
    o->expert_dtype = -1;
    const char *off = getenv("HF_HUB_DISABLE_PROGRESS_BARS"); /* huggingface_hub's switch */
    o->progress = !(off && *off && strcmp(off, "0") != 0);
}

static vib3_err check_store_space(const char *dir, uint64_t need, const char *what) {
    struct statvfs v;
    if (statvfs(dir, &v) != 0) return VIB3_OK;
    uint64_t avail = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    if (need + STORE_MARGIN_BYTES <= avail) return VIB3_OK;
    char a[32], b[32];
    return vib3_err_set(VIB3_ERR_IO,
                        "%s: not enough disk space in %s: converting needs about %s, %s available (set VIB3_HOME "
                        "to a larger disk)",
                        what, dir, vib3_format_size(need, a, sizeof a), vib3_format_size(avail, b, sizeof b));
}

static uint64_t dir_safetensors_bytes(const char *dir) {
    DIR *d = opendir(dir);
    uint64_t total = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors")) continue;
        char p[VIB3_PATH_MAX + 300];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0) total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* ---- Ctrl-C --------------------------------------------------------------------------- */

/* what a signal handler removes while a conversion runs (paths built before it starts:
 * unlink is async-signal-safe, building them is not) */
#define CLEANUP_PATHS 7
static char g_cleanup[CLEANUP_PATHS][VIB3_PATH_MAX + 256];
static char g_lock_path[VIB3_PATH_MAX + 256];
static volatile sig_atomic_t g_converting, g_locked;

bool vib3_store_interrupt(void) {
    vib3_hub_interrupt();
    if (!g_converting) return false;
    for (int i = 0; i < CLEANUP_PATHS; i++)
        if (g_cleanup[i][0]) unlink(g_cleanup[i]);
    if (g_locked) unlink(g_lock_path);
    return true;
}

/* the converter's files for output `part` (as cmd_convert.c removes them on a signal) */
static void cleanup_paths_set(const char *part) {
    static const char *const suffix[CLEANUP_PATHS] = {"", ".tmp", ".calib-pass.tmp", ".calib-pass.tmp.tmp",
                                                      ".sigs.tmp", ".calib-pass.tmp.sigs.tmp", ".calib-pass.tmp.tmp.tmp"};
    for (int i = 0; i < CLEANUP_PATHS; i++)
        if (strf(g_cleanup[i], sizeof g_cleanup[i], "%s%s", part, suffix[i])) g_cleanup[i][0] = 0;
}

/* convert src into <store>/.<name>.pulling.vib3, check it opens, rename to <name>.vib3, write the sidecar */
static vib3_err convert_into_store(const vib3_config *cfg, const vib3_store_ref *r, const vib3_pull_opts *o,
                                   const char *src, const vib3_hub *h, const vib3_hub_snapshot *snap,
                                   const char *final_path) {
    char dir[VIB3_PATH_MAX + 16], part[VIB3_PATH_MAX + 200], part_tmp[VIB3_PATH_MAX + 220],
        side[VIB3_PATH_MAX + 200];
    snprintf(dir, sizeof dir, "%s/models", cfg->home);
    snprintf(part, sizeof part, "%s/.%s.pulling.vib3", dir, r->name);
    snprintf(part_tmp, sizeof part_tmp, "%s.tmp", part);
    vib3_err rc = vib3_store_path(cfg, r->name, ".json", side, sizeof side);
    if (rc) return rc;
    /* q4_0 experts are 4.5 bits per weight; 0.6 x the source covers FP8 sources, BF16/F32 need less */
    uint64_t src_bytes = snap ? snap->safetensors_bytes : dir_safetensors_bytes(src);
    if ((rc = check_store_space(dir, src_bytes / 10 * 6, r->name)) != VIB3_OK) return rc;
    vib3_convert_opts co;
    memset(&co, 0, sizeof co);
    co.model_path = src;
    co.output_path = part;
    co.expert_dtype = o->expert_dtype;
    co.page_neurons = cfg->page_neurons;
    co.threads = o->threads ? o->threads : cfg->threads;
    co.progress = o->progress && !o->quiet;
    co.quiet = o->quiet;
    unlink(part); /* leftovers of an interrupted pull */
    unlink(part_tmp);
    if (!o->quiet) fprintf(stderr, "vib3 pull: converting %s into %s\n", src, final_path);
    cleanup_paths_set(part);
    g_converting = 1;
    rc = vib3_convert(&co);
    if (rc == VIB3_OK) {
        vib3_arena a;
        vib3_file f;
        if ((rc = vib3_arena_init(&a, 256u << 20, "pull-check", 0)) == VIB3_OK) {
            if ((rc = vib3_file_open(&f, part, &a, 0)) == VIB3_OK) vib3_file_close(&f);
            else vib3_err_prefix("the converted file does not validate");
            vib3_arena_fini(&a);
        }
    }
    if (rc == VIB3_OK && rename(part, final_path) != 0)
        rc = vib3_err_set(VIB3_ERR_IO, "%s: rename to %s: %s", part, final_path, strerror(errno));
    g_converting = 0;
    if (rc != VIB3_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vib3_err_msg());
        unlink(part);
        unlink(part_tmp);
        return vib3_err_set(rc, "%s: conversion failed: %s", r->name, msg);
    }
    return sidecar_write(side, r, h, snap);
}

/* flock $VIB3_HOME/models/.<name>.lock (waiting for another holder); returns the fd or -1.
 * The holder unlinks the file when done (unlock_name), so after the lock is taken the path
 * must still name the locked file, else it was removed meanwhile and the lock is taken again. */
static int lock_name(const vib3_config *cfg, const char *name, const char *who, vib3_err *rc) {
    char p[VIB3_PATH_MAX + 200];
    if (strf(p, sizeof p, "%s/models/.%s.lock", cfg->home, name)) {
        *rc = vib3_err_set(VIB3_ERR_LIMIT, "%s/models/.%s.lock: path too long", cfg->home, name);
        return -1;
    }
    bool told = false;
    for (;;) {
        int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            *rc = vib3_err_set(VIB3_ERR_IO, "%s: %s", p, strerror(errno));
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) { /* another pull or rm of this name: wait for it */
            if (!told) fprintf(stderr, "vib3 %s: waiting for another `vib3 pull` or `vib3 rm` of %s (lock %s)\n", who, name, p);
            told = true;
            while (flock(fd, LOCK_EX) != 0) {
                if (errno == EINTR && !vib3_hub_interrupted()) continue;
                *rc = errno == EINTR ? vib3_err_set(VIB3_ERR_CANCELLED, "interrupted")
                                     : vib3_err_set(VIB3_ERR_IO, "%s: flock: %s", p, strerror(errno));
                close(fd);
                return -1;
            }
        }
        struct stat held, now;
        if (fstat(fd, &held) == 0 && stat(p, &now) == 0 && held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
            snprintf(g_lock_path, sizeof g_lock_path, "%s", p);
            g_locked = 1;
            return fd;
        }
        close(fd); /* the previous holder removed it: lock the new file */
    }
}

static void unlock_name(int fd) {
    g_locked = 0;
    unlink(g_lock_path); /* still held: a waiter sees the path gone and takes a new file */
    close(fd);
}

static vib3_err pull_locked(const vib3_config *cfg, const vib3_store_ref *r, const vib3_pull_opts *o,
                            const char *final_path) {
    struct stat st;
    bool present = stat(final_path, &st) == 0 && S_ISREG(st.st_mode);
    if (r->local_path[0]) {
        if (stat(r->local_path, &st) != 0 || !S_ISDIR(st.st_mode))
            return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: alias %s names the local directory %s, which does not exist",
                                r->conf_path, r->alias, r->local_path);
        if (present && !o->force) {
            if (!o->quiet) fprintf(stderr, "vib3 pull: %s is already in the store (--force converts it again)\n", r->name);
            return VIB3_OK;
        }
        return convert_into_store(cfg, r, o, r->local_path, NULL, NULL, final_path);
    }
    vib3_hub h;
    vib3_hub_init(&h);
    h.progress = o->progress;
    h.quiet = o->quiet;
    if (present && !o->force) {
        sidecar s;
        char side[VIB3_PATH_MAX + 200], commit[VIB3_HUB_ETAG_BYTES];
        if (vib3_store_path(cfg, r->name, ".json", side, sizeof side) == VIB3_OK && sidecar_read(side, &s) &&
            !strcmp(s.repo, r->repo) && !strcmp(s.revision, r->revision)) {
            if (vib3_hub_resolve_commit(&h, r->repo, r->revision, commit, sizeof commit) != VIB3_OK) {
                if (vib3_err_code() != VIB3_ERR_NET) return vib3_err_code();
                if (!o->quiet)
                    fprintf(stderr, "vib3 pull: cannot reach %s (%s); keeping %s (commit %.12s)\n", h.endpoint,
                            vib3_err_msg(), r->name, s.commit);
                vib3_err_clear();
                return VIB3_OK;
            }
            if (!strcmp(commit, s.commit)) {
                if (!o->quiet)
                    fprintf(stderr, "vib3 pull: %s is up to date (%s@%s, commit %.12s)\n", r->name, r->repo,
                            r->revision, commit);
                return VIB3_OK;
            }
        }
    }
    vib3_hub_snapshot snap;
    vib3_err rc = vib3_hub_download(&h, r->repo, r->revision, &snap);
    if (rc) return rc;
    if (!o->quiet) {
        char a[32];
        fprintf(stderr, "vib3 pull: %s@%s: %u files, %s in %s%s\n", snap.repo, snap.revision, snap.n_files,
                vib3_format_size(snap.bytes_total, a, sizeof a), snap.path,
                snap.from_cache_only ? " (cached)" : "");
    }
    return convert_into_store(cfg, r, o, snap.path, &h, &snap, final_path);
}

vib3_err vib3_store_pull(const vib3_config *cfg, const char *arg, const vib3_pull_opts *o, char *out_path, int cap) {
    vib3_store_ref r;
    vib3_err rc;
    if ((rc = vib3_store_resolve(arg, &r)) != VIB3_OK) return rc;
    char dir[VIB3_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/models", cfg->home);
    if ((rc = mkdir_p(dir)) != VIB3_OK) return rc;
    if ((rc = vib3_store_path(cfg, r.name, ".vib3", out_path, cap)) != VIB3_OK) return rc;
    int lock = lock_name(cfg, r.name, "pull", &rc);
    if (lock < 0) return rc;
    rc = pull_locked(cfg, &r, o, out_path);
    unlock_name(lock);
    return rc;
}

static bool looks_like_path(const char *s) {
    size_t n = strlen(s);
    return s[0] == '/' || s[0] == '.' || s[0] == '~' || (n > 5 && !strcmp(s + n - 5, ".vib3")) ||
           (n > 5 && !strcmp(s + n - 5, ".gguf"));
}

vib3_err vib3_store_ensure(const vib3_config *cfg, const char *name, char *out_path, int cap) {
    vib3_store_ref r;
    struct stat st;
    if (looks_like_path(name)) /* a mistyped file name is not a repository to download */
        return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: no such file", name);
    if (vib3_store_resolve(name, &r) != VIB3_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vib3_err_msg());
        return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: no such file, and no model of that name in %s/models (%s)",
                            name, cfg->home, msg);
    }
    vib3_err rc = vib3_store_path(cfg, r.name, ".vib3", out_path, cap);
    if (rc) return rc;
    if (stat(out_path, &st) == 0 && S_ISREG(st.st_mode)) return VIB3_OK;
    fprintf(stderr, "vib3: %s is not in the store; pulling it\n", name);
    vib3_pull_opts o;
    vib3_pull_opts_default(&o);
    return vib3_store_pull(cfg, name, &o, out_path, cap);
}

/* ---- rm ------------------------------------------------------------------------------------ */

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p) != 0 && errno != ENOENT ? -1 : 0;
}

static vib3_err rm_locked(const vib3_config *cfg, const char *name, const vib3_store_ref *r, bool purge_cache,
                          const char *removed, const char *side) {
    (void)r;
    sidecar s;
    bool have_side = sidecar_read(side, &s);
    if (unlink(removed) != 0) {
        if (errno != ENOENT) return vib3_err_set(VIB3_ERR_IO, "%s: %s", removed, strerror(errno));
        if (!have_side)
            return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: no model of that name in %s/models (see `vib3 list`)", name,
                                cfg->home);
    }
    unlink(side);
    if (purge_cache && have_side && !strcmp(s.source, "hub") && s.repo[0]) {
        vib3_hub h;
        char dir[VIB3_PATH_MAX], locks[VIB3_PATH_MAX + 32];
        vib3_hub_init(&h);
        if (vib3_hub_check_repo(s.repo) == VIB3_OK && vib3_hub_repo_dir(&h, s.repo, dir, sizeof dir) == VIB3_OK) {
            if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
                return vib3_err_set(VIB3_ERR_IO, "%s: could not remove the cached download: %s", dir, strerror(errno));
            /* and its download locks, <cache>/.locks/models--org--repo */
            const char *base = strrchr(dir, '/');
            if (base && !strf(locks, sizeof locks, "%s/.locks/%s", h.cache_dir, base + 1))
                nftw(locks, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
    }
    return VIB3_OK;
}

vib3_err vib3_store_rm(const vib3_config *cfg, const char *name, bool purge_cache, char *removed, int cap) {
    vib3_store_ref r;
    char side[VIB3_PATH_MAX + 200];
    vib3_err rc;
    /* an alias, org/repo, or a store name as `vib3 list` prints it */
    if (vib3_store_resolve(name, &r) != VIB3_OK) {
        if (check_alias(name) != VIB3_OK) return vib3_err_code();
        vib3_err_clear();
        memset(&r, 0, sizeof r);
        snprintf(r.name, sizeof r.name, "%s", name);
    }
    if ((rc = vib3_store_path(cfg, r.name, ".vib3", removed, cap)) != VIB3_OK) return rc;
    if ((rc = vib3_store_path(cfg, r.name, ".json", side, sizeof side)) != VIB3_OK) return rc;
    struct stat st;
    if (stat(removed, &st) != 0 && stat(side, &st) != 0) /* nothing to lock against: no lock file created */
        return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: no model of that name in %s/models (see `vib3 list`)", name,
                            cfg->home);
    int lock = lock_name(cfg, r.name, "rm", &rc); /* not while a pull converts it */
    if (lock < 0) return rc;
    rc = rm_locked(cfg, name, &r, purge_cache, removed, side);
    unlock_name(lock);
    return rc;
}

/* ---- list ------------------------------------------------------------------------------------ */

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const vib3_store_entry *)a)->name, ((const vib3_store_entry *)b)->name);
}

static void describe(vib3_store_entry *e, vib3_arena *a, const char *side) {
    size_t mark = vib3_arena_mark(a);
    vib3_file f;
    snprintf(e->arch, sizeof e->arch, "?");
    snprintf(e->quant, sizeof e->quant, "?");
    if (vib3_file_open(&f, e->path, a, 0) == VIB3_OK) {
        snprintf(e->arch, sizeof e->arch, "%s", vib3_arch_name(f.config->arch));
        snprintf(e->quant, sizeof e->quant, "%s", vib3_dtype_name((vib3_dtype)f.config->expert_dtype));
        vib3_file_param_counts(&f, &e->params_total, &e->params_active);
        e->n_layers = f.config->n_layers;
        e->n_experts = f.config->n_experts;
        e->n_experts_used = f.config->n_experts_per_tok;
        vib3_file_close(&f);
    } else {
        snprintf(e->error, sizeof e->error, "%s", vib3_err_msg());
        vib3_err_clear();
    }
    vib3_arena_reset(a, mark);
    sidecar s;
    if (sidecar_read(side, &s)) {
        if (!strcmp(s.source, "hub"))
            snprintf(e->source, sizeof e->source, "hf:%s@%s (%.12s)", s.repo, s.revision, s.commit);
        else if (!strcmp(s.source, "local"))
            strf(e->source, sizeof e->source, "local:%s", s.local_path);
    }
}

int vib3_store_list(const vib3_config *cfg, vib3_store_entry *out, int cap, int *total) {
    char dir[VIB3_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/models", cfg->home);
    *total = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        vib3_err_set(VIB3_ERR_IO, "%s: %s", dir, strerror(errno));
        return -1;
    }
    vib3_arena a;
    if (vib3_arena_init(&a, 256u << 20, "list", 0) != VIB3_OK) {
        closedir(d);
        return -1;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".vib3")) continue;
        if (len - 5 >= VIB3_STORE_NAME_BYTES) continue;
        ++*total;
        if (n == cap) continue;
        vib3_store_entry *e = &out[n];
        memset(e, 0, sizeof *e);
        memcpy(e->name, de->d_name, len - 5);
        char side[VIB3_PATH_MAX + 200];
        struct stat st;
        if (strf(e->path, sizeof e->path, "%s/%s", dir, de->d_name)) continue;
        if (stat(e->path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        e->size_bytes = (uint64_t)st.st_size;
        e->mtime_s = (int64_t)st.st_mtime;
        snprintf(side, sizeof side, "%s/%s.json", dir, e->name);
        describe(e, &a, side);
        n++;
    }
    closedir(d);
    vib3_arena_fini(&a);
    qsort(out, (size_t)n, sizeof *out, entry_cmp);
    return n;
}
