/* config.c — INI + environment + flags into vib3_config (see config.h). */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { KEY_SIZE, KEY_U32, KEY_BOOL, KEY_STR } key_kind;

typedef struct config_key {
    const char *name;
    key_kind kind;
    size_t offset;
    size_t cap; /* for strings */
} config_key;

#define K_SIZE(f) {#f, KEY_SIZE, __builtin_offsetof(vib3_config, f##_bytes), 0}
#define K_SIZE_AS(f) {#f, KEY_SIZE, __builtin_offsetof(vib3_config, f), 0}
#define K_U32(f) {#f, KEY_U32, __builtin_offsetof(vib3_config, f), 0}
#define K_BOOL(f) {#f, KEY_BOOL, __builtin_offsetof(vib3_config, f), 0}
#define K_STR(f) {#f, KEY_STR, __builtin_offsetof(vib3_config, f), sizeof(((vib3_config *)0)->f)}

static const config_key config_keys[] = {
    K_SIZE(ram_budget), K_SIZE(vram_budget), K_SIZE_AS(arena_bytes_max), K_U32(threads),
    K_U32(ctx_size),    K_U32(batch_size),   K_U32(page_neurons),     K_STR(evict),
    K_STR(prefetch),    K_U32(io_queue_depth), K_BOOL(io_uring),      K_STR(host),
    K_U32(port),        K_U32(parallel),     K_U32(queue_max),        K_SIZE_AS(body_bytes_max), K_U32(shutdown_timeout),
    K_STR(cors_origins), K_STR(api_key),    K_STR(home),
};
#define N_KEYS (sizeof config_keys / sizeof config_keys[0])

void vib3_config_defaults(vib3_config *c) {
    memset(c, 0, sizeof *c);
    c->arena_bytes_max = 1ull << 40;
    c->batch_size = 64;
    strcpy(c->evict, "lfru");
    strcpy(c->prefetch, "auto");
    c->io_queue_depth = 16;
    c->io_uring = true;
    strcpy(c->host, "127.0.0.1");
    c->port = 8080;
    c->parallel = 4;
    c->queue_max = 64;
    c->body_bytes_max = 1u << 20;
    c->shutdown_timeout = 10;
    strcpy(c->cors_origins, "localhost");
    const char *home = getenv("HOME");
    snprintf(c->home, sizeof c->home, "%s/.cache/vib3", home && *home ? home : "/tmp");
}

static void normalise_key(const char *key, char *out, size_t cap) {
    size_t i = 0;
    for (; key[i] && i + 1 < cap; i++) out[i] = key[i] == '-' ? '_' : (char)tolower((unsigned char)key[i]);
    out[i] = 0;
}

static const config_key *find_key(const char *key) {
    char k[64];
    normalise_key(key, k, sizeof k);
    /* "ram_budget_bytes" is accepted as a synonym of "ram_budget" */
    size_t n = strlen(k);
    if (n > 6 && strcmp(k + n - 6, "_bytes") == 0) k[n - 6] = 0;
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].name, k) == 0) return &config_keys[i];
    return NULL;
}

bool vib3_config_has_key(const char *key) { return find_key(key) != NULL; }

static uint64_t physical_ram_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
}

vib3_err vib3_parse_size(const char *s, uint64_t *bytes_out) {
    if (!s || !*s) return vib3_err_set(VIB3_ERR_INVALID, "empty size");
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || v != v) return vib3_err_set(VIB3_ERR_INVALID, "bad size '%s'", s);
    while (*end == ' ') end++;
    double mult = 1;
    if (*end == '%') {
        if (v > 100) return vib3_err_set(VIB3_ERR_INVALID, "bad size '%s': over 100%%", s);
        mult = (double)physical_ram_bytes() / 100.0;
        end++;
    } else if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'b': mult = 1; break;
        case 'k': mult = 1024.0; break;
        case 'm': mult = 1024.0 * 1024; break;
        case 'g': mult = 1024.0 * 1024 * 1024; break;
        case 't': mult = 1024.0 * 1024 * 1024 * 1024; break;
        default: return vib3_err_set(VIB3_ERR_INVALID, "bad size '%s': unknown unit '%c'", s, *end);
        }
        end++;
        if (mult > 1 && (*end == 'i' || *end == 'I')) end++;
        if (mult > 1 && (*end == 'b' || *end == 'B')) end++;
    }
    if (*end) return vib3_err_set(VIB3_ERR_INVALID, "bad size '%s': trailing '%s'", s, end);
    double bytes = v * mult;
    if (bytes >= 18446744073709551615.0) return vib3_err_set(VIB3_ERR_INVALID, "bad size '%s': too large", s);
    *bytes_out = (uint64_t)bytes;
    return VIB3_OK;
}

const char *vib3_format_size(uint64_t bytes, char *buf, int cap) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    if (u == 0) snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

vib3_err vib3_config_set(vib3_config *c, const char *key, const char *value) {
    const config_key *k = find_key(key);
    if (!k) return vib3_err_set(VIB3_ERR_INVALID, "unknown setting '%s'", key);
    uint8_t *field = (uint8_t *)c + k->offset;
    switch (k->kind) {
    case KEY_SIZE:
        if (vib3_parse_size(value, (uint64_t *)field) != VIB3_OK) return vib3_err_prefix("setting %s", k->name);
        return VIB3_OK;
    case KEY_U32: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (end == value || *end || errno || v > UINT32_MAX || value[0] == '-')
            return vib3_err_set(VIB3_ERR_INVALID, "setting %s: '%s' is not an integer in 0..%u", k->name, value,
                                UINT32_MAX);
        if (!strcmp(k->name, "port") && v > 65535)
            return vib3_err_set(VIB3_ERR_INVALID, "setting port: %llu is not a TCP port (0..65535)", v);
        *(uint32_t *)field = (uint32_t)v;
        return VIB3_OK;
    }
    case KEY_BOOL:
        if (!strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on"))
            *(bool *)field = true;
        else if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") ||
                 !strcasecmp(value, "off"))
            *(bool *)field = false;
        else
            return vib3_err_set(VIB3_ERR_INVALID, "setting %s: '%s' is not a boolean", k->name, value);
        return VIB3_OK;
    case KEY_STR: {
        if (strlen(value) >= k->cap)
            return vib3_err_set(VIB3_ERR_INVALID, "setting %s: value longer than %zu bytes", k->name, k->cap - 1);
        /* enumerations are checked here, so a typo is a usage error at once, not a failure at model load */
        static const char *const evict[] = {"lru", "lfru", "lfuda", NULL};
        static const char *const prefetch[] = {"auto", "none", "coact", "lookahead", "both", NULL};
        const char *const *allowed = !strcmp(k->name, "evict") ? evict : !strcmp(k->name, "prefetch") ? prefetch : NULL;
        if (allowed) {
            size_t a = 0;
            while (allowed[a] && strcmp(allowed[a], value) != 0) a++;
            if (!allowed[a])
                return vib3_err_set(VIB3_ERR_INVALID, "setting %s: '%s' is not one of %s", k->name, value,
                                    allowed == evict ? "lru, lfru, lfuda" : "auto, none, coact, lookahead, both");
        }
        strcpy((char *)field, value);
        return VIB3_OK;
    }
    }
    return VIB3_ERR_INTERNAL;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

vib3_err vib3_config_load_file(vib3_config *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: cannot open config file", path);
    char line[1024];
    unsigned lineno = 0;
    vib3_err rc = VIB3_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = vib3_err_set(VIB3_ERR_FORMAT, "%s:%u: line longer than %zu bytes", path, lineno, sizeof line - 2);
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            if (s[strlen(s) - 1] != ']') {
                rc = vib3_err_set(VIB3_ERR_FORMAT, "%s:%u: unterminated section '%s'", path, lineno, s);
                break;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = vib3_err_set(VIB3_ERR_FORMAT, "%s:%u: expected key = value, got '%s'", path, lineno, s);
            break;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        /* strip an inline comment after whitespace */
        for (char *h = value; *h; h++)
            if ((*h == '#' || *h == ';') && h > value && isspace((unsigned char)h[-1])) {
                *h = 0;
                value = trim(value);
                break;
            }
        if (vib3_config_set(c, key, value) != VIB3_OK) {
            rc = vib3_err_prefix("%s:%u", path, lineno);
            break;
        }
    }
    fclose(f);
    if (rc == VIB3_OK) snprintf(c->source_path, sizeof c->source_path, "%s", path);
    return rc;
}

vib3_err vib3_config_apply_env(vib3_config *c) {
    for (size_t i = 0; i < N_KEYS; i++) {
        char var[64] = "VIB3_";
        for (size_t j = 0; config_keys[i].name[j] && j < 50; j++)
            var[5 + j] = (char)toupper((unsigned char)config_keys[i].name[j]), var[6 + j] = 0;
        const char *v = getenv(var);
        if (v && *v && vib3_config_set(c, config_keys[i].name, v) != VIB3_OK) return vib3_err_prefix("%s", var);
    }
    return VIB3_OK;
}

static bool file_exists(const char *p) { return access(p, R_OK) == 0; }

/* the config files searched, in order, into paths[] (each VIB3_PATH_MAX + 64 bytes); returns the count.
 * <exe> is the directory of the running binary, so a relocated install (DESTDIR, a tarball)
 * finds its own files:
 *   <exe>/../conf/vib3.conf              a binary in a build directory of the source tree
 *   $XDG_CONFIG_HOME/vib3/vib3.conf      (or ~/.config/vib3/vib3.conf) the user's settings
 *   /etc/vib3/vib3.conf                  the administrator's settings
 *   <exe>/../etc/vib3/vib3.conf          the same for a /usr/local or /opt install
 *   <exe>/../share/vib3/vib3.conf        the defaults `make install` puts beside bin/ */
static int config_candidates(char paths[][VIB3_PATH_MAX + 64]) {
    int n = 0;
    char exe[VIB3_PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    bool have_exe = false;
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0, have_exe = true;
    }
    if (have_exe) snprintf(paths[n++], VIB3_PATH_MAX + 64, "%s/../conf/vib3.conf", exe);
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) snprintf(paths[n++], VIB3_PATH_MAX + 64, "%s/vib3/vib3.conf", xdg);
    else if (home && *home) snprintf(paths[n++], VIB3_PATH_MAX + 64, "%s/.config/vib3/vib3.conf", home);
    snprintf(paths[n++], VIB3_PATH_MAX + 64, "/etc/vib3/vib3.conf");
    if (have_exe) {
        snprintf(paths[n++], VIB3_PATH_MAX + 64, "%s/../etc/vib3/vib3.conf", exe);
        snprintf(paths[n++], VIB3_PATH_MAX + 64, "%s/../share/vib3/vib3.conf", exe);
    }
    return n;
}

/* "/a/b/../conf/x" -> "/a/conf/x" when it resolves (messages name the real file) */
static void canonical(char *path, size_t cap) {
    char real[PATH_MAX];
    if (realpath(path, real) && strlen(real) < cap) snprintf(path, cap, "%s", real);
}

vib3_err vib3_config_load(vib3_config *c) {
    vib3_config_defaults(c);
    const char *env = getenv("VIB3_CONF");
    if (env && *env) {
        if (vib3_config_load_file(c, env) != VIB3_OK) return vib3_err_code();
        return vib3_config_apply_env(c);
    }
    char paths[5][VIB3_PATH_MAX + 64];
    int n = config_candidates(paths);
    for (int i = 0; i < n; i++) {
        if (!file_exists(paths[i])) continue;
        canonical(paths[i], sizeof paths[i]);
        if (vib3_config_load_file(c, paths[i]) != VIB3_OK) return vib3_err_code();
        break;
    }
    return vib3_config_apply_env(c);
}
