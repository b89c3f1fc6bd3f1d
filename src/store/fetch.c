/* fetch.c — libcurl transfers for the hub client: parallel downloads with
 * resume, retry with exponential backoff, SHA-256 verification, progress.
 *
 * One curl multi handle drives at most hub->parallel transfers. A transfer
 * appends to blobs/<etag>.incomplete, asking for `Range: bytes=<have>-` when
 * part of it is already there; a 200 answer to a Range request restarts the
 * file, a 206 whose Content-Range does not start at <have> is refused. The
 * SHA-256 is computed while writing (the kept prefix is hashed first), so a
 * completed file is verified without reading it again. Retries: transient
 * errors only — timeouts, stalls (< 1 byte/s for stall_s), connections reset
 * or closed early, 5xx, 408 and 429 — at most retries_max attempts in a row
 * without progress, waiting backoff_ms * 2^k (capped at 4 s) in between.
 * Connection refused and unknown hosts are not retried (a wrong endpoint or
 * no network: waiting does not help). 401/403/404, a checksum mismatch or a
 * write error end the whole download at once; the other transfers stop and
 * keep their .incomplete files for the next run. vib3_hub_interrupt() (Ctrl-C)
 * ends transfers within 0.2 s and API requests within ~1 s with VIB3_ERR_CANCELLED, keeping
 * the .incomplete files too.
 */
#include "store/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/sha256.h"

#define BACKOFF_CAP_MS 4000u
#define ERRBODY_BYTES 512

uint64_t vib3_fetch_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int vib3_fetch_url_escape(const char *s, int keep_slash, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    *p == '.' || *p == '_' || *p == '~' || *p == '-' || (keep_slash && *p == '/');
        if (o + (plain ? 1 : 3) >= cap) return -1;
        if (plain) out[o++] = (char)*p;
        else out[o++] = '%', out[o++] = hex[*p >> 4], out[o++] = hex[*p & 15];
    }
    out[o] = 0;
    return (int)o;
}

/* ---- response headers ----------------------------------------------------- */

static void copy_header_value(char *dst, size_t cap, const char *v, size_t n) {
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

/* ETag: strip a weak "W/" prefix and the quotes (huggingface_hub's normalisation) */
static void normalise_etag(char *e) {
    char *p = e;
    if (p[0] == 'W' && p[1] == '/') p += 2;
    if (*p == '"') p++;
    size_t n = strlen(p);
    if (n && p[n - 1] == '"') n--;
    memmove(e, p, n);
    e[n] = 0;
}

/* one header line; a status line starts a new response (redirects) */
static void parse_header(vib3_http_info *info, bool *linked, const char *line, size_t n) {
    if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
        memset(info, 0, sizeof *info);
        *linked = false;
        const char *sp = memchr(line, ' ', n);
        if (sp) info->status = strtol(sp + 1, NULL, 10);
        return;
    }
    const char *colon = memchr(line, ':', n);
    if (!colon) return;
    size_t kn = (size_t)(colon - line), vn = n - kn - 1;
    const char *v = colon + 1;
#define IS(k) (kn == sizeof(k) - 1 && !strncasecmp(line, k, kn))
    if (IS("x-error-code")) copy_header_value(info->error_code, sizeof info->error_code, v, vn);
    else if (IS("x-error-message")) copy_header_value(info->error_message, sizeof info->error_message, v, vn);
    else if (IS("x-repo-commit")) copy_header_value(info->repo_commit, sizeof info->repo_commit, v, vn);
    else if (IS("content-range")) copy_header_value(info->content_range, sizeof info->content_range, v, vn);
    else if (IS("x-linked-size") || (IS("content-length") && !info->linked_size)) {
        char num[32];
        copy_header_value(num, sizeof num, v, vn);
        info->size_bytes = strtoull(num, NULL, 10);
        info->linked_size |= IS("x-linked-size");
    }
    else if (IS("x-linked-etag")) {
        copy_header_value(info->etag, sizeof info->etag, v, vn);
        normalise_etag(info->etag);
        *linked = info->linked_etag = true;
    } else if (IS("etag") && !*linked) {
        copy_header_value(info->etag, sizeof info->etag, v, vn);
        normalise_etag(info->etag);
    }
#undef IS
}

/* ---- errors ---------------------------------------------------------------- */

vib3_err vib3_fetch_http_error(const vib3_hub *h, const char *repo, const char *revision, const char *file,
                               const vib3_http_info *info) {
    char what[600];
    if (file) snprintf(what, sizeof what, "%s@%s: %s", repo, revision, file);
    else snprintf(what, sizeof what, "%s@%s", repo, revision);
    const char *code = info->error_code;
    const char *hub_msg = info->error_message[0] ? info->error_message : "";
    bool gated = !strcmp(code, "GatedRepo");
    if (gated || ((info->status == 401 || info->status == 403) && h->token[0] && strcmp(code, "RepoNotFound")))
        return vib3_err_set(
            VIB3_ERR_AUTH,
            "%s: HTTP %ld: %s%s%s: accept its terms at %s/%s, then give vib3 a token with read access: "
            "export HF_TOKEN=hf_... (https://huggingface.co/settings/tokens) or run `huggingface-cli login`%s",
            what, info->status, gated ? "gated model" : "access denied", hub_msg[0] ? " — " : "", hub_msg,
            h->endpoint, repo, h->token[0] ? " (the token that was sent was refused)" : "");
    if (info->status == 401 || info->status == 403 || !strcmp(code, "RepoNotFound"))
        return vib3_err_set(!strcmp(code, "RepoNotFound") || info->status == 404 ? VIB3_ERR_NOT_FOUND : VIB3_ERR_AUTH,
                            "%s: HTTP %ld: repository not found on %s (check the name; if it is private or "
                            "gated, set HF_TOKEN=hf_... or run `huggingface-cli login`%s)",
                            what, info->status, h->endpoint, h->token[0] ? "; a token was sent" : "");
    if (info->status == 404) {
        if (!strcmp(code, "RevisionNotFound"))
            return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: HTTP 404: revision '%s' not found in %s", what, revision,
                                repo);
        if (!strcmp(code, "EntryNotFound") || file)
            return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: HTTP 404: file not found at that revision", what);
        return vib3_err_set(VIB3_ERR_NOT_FOUND, "%s: HTTP 404: repository or revision not found on %s%s%s", what,
                            h->endpoint, hub_msg[0] ? ": " : "", hub_msg);
    }
    if (info->status == 429)
        return vib3_err_set(VIB3_ERR_NET,
                            "%s: HTTP 429: rate limited by %s; wait a few minutes and run the command again "
                            "(authenticated requests, HF_TOKEN, get higher limits)",
                            what, h->endpoint);
    return vib3_err_set(VIB3_ERR_NET, "%s: HTTP %ld from %s%s%s", what, info->status, h->endpoint,
                        hub_msg[0] ? ": " : "", hub_msg);
}

static bool status_retriable(long s) { return s == 408 || s == 429 || s >= 500; }

static bool curl_retriable(CURLcode c) {
    switch (c) {
    /* not CURLE_COULDNT_CONNECT / COULDNT_RESOLVE_HOST / COULDNT_RESOLVE_PROXY: nothing listens there */
    case CURLE_OPERATION_TIMEDOUT: case CURLE_PARTIAL_FILE: case CURLE_RECV_ERROR: case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING: case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

static uint32_t backoff_ms(const vib3_hub *h, uint32_t attempt) {
    uint64_t ms = h->backoff_ms;
    for (uint32_t i = 1; i < attempt && ms < BACKOFF_CAP_MS; i++) ms *= 2;
    return ms > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : (uint32_t)ms;
}

/* ---- common easy-handle settings ------------------------------------------- */

static struct curl_slist *auth_headers(const vib3_hub *h) {
    struct curl_slist *l = NULL;
    if (h->token[0]) {
        char hdr[600];
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", h->token);
        l = curl_slist_append(l, hdr);
    }
    return l;
}

/* ends a transfer soon after vib3_hub_interrupt() (CURLE_ABORTED_BY_CALLBACK) */
static int xfer_info_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)ud, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return vib3_hub_interrupted() ? 1 : 0;
}

static vib3_err interrupted_err(void) {
    return vib3_err_set(VIB3_ERR_CANCELLED, "interrupted");
}

/* sleep ms, in slices, unless interrupted; false when interrupted */
static bool sleep_unless_interrupted(uint32_t ms) {
    for (uint32_t slept = 0; slept < ms && !vib3_hub_interrupted(); slept += 50) usleep((ms - slept < 50 ? ms - slept : 50) * 1000u);
    return !vib3_hub_interrupted();
}

static void easy_common(CURL *e, const vib3_hub *h, const char *url, struct curl_slist *hdrs, char *errbuf) {
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    /* a custom Authorization header is not sent to another host after a
     * redirect (curl >= 7.58), so the token never reaches the CDN */
    curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vib3/0.1; libcurl");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)h->connect_timeout_s);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)h->stall_s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, xfer_info_cb);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string forms; the bitmask ones are deprecated there */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    errbuf[0] = 0;
}

static bool curl_ready(void) {
    static int state; /* 0 untried, 1 ok, 2 failed; the CLI is single-threaded here */
    if (!state) state = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : 2;
    return state == 1;
}

/* ---- blocking GET into memory (the JSON API) -------------------------------- */

typedef struct mem_req {
    char *buf;
    size_t cap, len;
    bool overflow, linked;
    vib3_http_info *info;
} mem_req;

static size_t mem_body(char *p, size_t sz, size_t n, void *ud) {
    mem_req *m = ud;
    size_t len = sz * n;
    if (len > m->cap - 1 - m->len) {
        m->overflow = true;
        return 0;
    }
    memcpy(m->buf + m->len, p, len);
    m->len += len;
    return len;
}

static size_t mem_header(char *p, size_t sz, size_t n, void *ud) {
    mem_req *m = ud;
    parse_header(m->info, &m->linked, p, sz * n);
    return sz * n;
}

static vib3_err request(const vib3_hub *h, const char *url, bool head, char *buf, size_t cap, size_t *len_out,
                        vib3_http_info *info) {
    if (cap < 2) return vib3_err_set(VIB3_ERR_INTERNAL, "vib3_fetch_mem: buffer too small");
    if (!curl_ready()) return vib3_err_set(VIB3_ERR_NET, "curl_global_init failed");
    CURL *e = curl_easy_init();
    if (!e) return vib3_err_set(VIB3_ERR_NOMEM, "curl_easy_init failed");
    struct curl_slist *hdrs = auth_headers(h);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    char errbuf[CURL_ERROR_SIZE];
    vib3_err rc = VIB3_OK;
    for (uint32_t attempt = 1;; attempt++) {
        mem_req m = {.buf = buf, .cap = cap, .info = info};
        memset(info, 0, sizeof *info);
        easy_common(e, h, url, hdrs, errbuf);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, mem_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &m);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, mem_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &m);
        if (head) { /* huggingface_hub's metadata request: HEAD, redirects not followed */
            curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
            curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        }
        if (vib3_hub_interrupted()) {
            rc = interrupted_err();
            break;
        }
        CURLcode c = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &info->status);
        if (c == CURLE_ABORTED_BY_CALLBACK || vib3_hub_interrupted()) {
            rc = interrupted_err();
            break;
        }
        buf[m.len] = 0;
        *len_out = m.len;
        if (m.overflow) {
            rc = vib3_err_set(VIB3_ERR_LIMIT, "%s: response larger than %zu bytes", url, cap - 1);
            break;
        }
        bool retry = c != CURLE_OK ? curl_retriable(c) : status_retriable(info->status);
        if (c == CURLE_OK && !retry) break; /* 2xx or a final 4xx: the caller maps it */
        if (!retry || attempt > h->retries_max) { /* retries_max retries after the first attempt */
            if (c != CURLE_OK)
                rc = vib3_err_set(VIB3_ERR_NET, "%s: %s (after %u attempt%s)", url,
                                  errbuf[0] ? errbuf : curl_easy_strerror(c), attempt, attempt == 1 ? "" : "s");
            break; /* a retriable status after the last attempt: the caller maps it */
        }
        uint32_t wait = backoff_ms(h, attempt);
        if (!h->quiet)
            fprintf(stderr, "vib3 pull: %s: %s; retrying in %.1f s\n", url,
                    c != CURLE_OK ? (errbuf[0] ? errbuf : curl_easy_strerror(c)) : "server error", wait / 1000.0);
        if (!sleep_unless_interrupted(wait)) {
            rc = interrupted_err();
            break;
        }
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(e);
    return rc;
}

vib3_err vib3_fetch_mem(const vib3_hub *h, const char *url, char *buf, size_t cap, size_t *len_out,
                        vib3_http_info *info) {
    return request(h, url, false, buf, cap, len_out, info);
}

vib3_err vib3_fetch_head(const vib3_hub *h, const char *url, vib3_http_info *info) {
    char buf[64];
    size_t len;
    return request(h, url, true, buf, sizeof buf, &len, info);
}

/* ---- file transfers ---------------------------------------------------------- */

typedef enum { X_QUEUED, X_ACTIVE, X_DONE } xfer_state;

typedef struct xfer {
    vib3_hub_file *file;
    xfer_state state;
    CURL *easy;
    int fd, lock_fd;
    uint64_t have_bytes;          /* in the .incomplete file */
    uint64_t start_bytes;         /* have_bytes when this attempt started */
    uint64_t have_max;            /* most bytes ever held: only beating it counts as progress */
    vib3_sha256 sha;
    uint32_t attempt;             /* consecutive attempts without progress */
    uint64_t retry_at_ms;
    bool body_started, restart, oversize;
    int write_errno;
    bool linked;
    bool cached;                  /* complete before this call: not counted in the progress */
    bool waiting;                 /* told the user another process holds the lock */
    vib3_http_info info;
    char errbody[ERRBODY_BYTES];
    size_t errbody_len;
    char errbuf[CURL_ERROR_SIZE];
    char url[2048];
    uint64_t *net_bytes;          /* job-wide counter */
} xfer;

typedef struct progress {
    bool tty, quiet;
    uint64_t total_bytes;
    uint64_t t0_ms, last_draw_ms, last_line_ms;
    uint64_t rate_bytes, rate_ms;       /* for the smoothed rate */
    double rate_bps;
    uint32_t files_done, files_total;
} progress;

static void blob_path(const vib3_fetch_job *j, const vib3_hub_file *f, const char *suffix, char *out, size_t cap) {
    snprintf(out, cap, "%s/blobs/%s%s", j->repo_dir, f->etag, suffix);
}

static void fmt_duration(double s, char *buf, size_t cap) {
    if (s < 0 || s > 99 * 3600) snprintf(buf, cap, "--:--");
    else if (s >= 3600) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else snprintf(buf, cap, "%d:%02d", (int)(s / 60), (int)s % 60);
}

/* done_bytes: on disk (drives the bar and the ETA); net_bytes: received (drives the rate) */
static void progress_draw(progress *p, uint64_t done_bytes, uint64_t net_bytes, uint32_t active, bool final) {
    if (p->quiet) return;
    uint64_t now = vib3_fetch_now_ms();
    if (!final && now - p->last_draw_ms < (p->tty ? 200u : 15000u)) return;
    if (now - p->rate_ms >= 1000 || final) {
        double inst = (double)(net_bytes - p->rate_bytes) * 1000.0 / (double)(now - p->rate_ms + 1);
        p->rate_bps = p->rate_ms == p->t0_ms ? inst : 0.6 * p->rate_bps + 0.4 * inst;
        p->rate_bytes = net_bytes, p->rate_ms = now;
    }
    p->last_draw_ms = now;
    char a[32], b[32], r[32], eta[16];
    vib3_format_size(done_bytes, a, sizeof a);
    vib3_format_size(p->total_bytes, b, sizeof b);
    if (p->rate_ms == p->t0_ms) snprintf(r, sizeof r, "--"); /* no sample yet */
    else vib3_format_size((uint64_t)p->rate_bps, r, sizeof r);
    double left = p->rate_bps > 1 ? (double)(p->total_bytes - done_bytes) / p->rate_bps : -1;
    fmt_duration(left, eta, sizeof eta);
    int pct = p->total_bytes ? (int)(done_bytes * 100 / p->total_bytes) : 100;
    if (p->tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '-';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %3d%% %s / %s  %s/s  ETA %s  files %u/%u (%u active)\033[K", bar, pct, a, b, r, eta,
                p->files_done, p->files_total, active);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "vib3 pull: %3d%% %s / %s, %s/s, ETA %s, files %u/%u\n", pct, a, b, r, eta, p->files_done,
                p->files_total);
    }
}

static size_t xfer_header(char *p, size_t sz, size_t n, void *ud) {
    xfer *x = ud;
    parse_header(&x->info, &x->linked, p, sz * n);
    return sz * n;
}

/* the first body byte of the final response decides how to write */
static bool xfer_body_start(xfer *x) {
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code == 206) {
        unsigned long long first = 0;
        if (sscanf(x->info.content_range, "bytes %llu-", &first) != 1 || first != x->have_bytes) {
            x->restart = true; /* a range we did not ask for */
            return false;
        }
    } else if (code == 200 && x->have_bytes > 0) {
        /* the server ignored Range: start the file again */
        if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
            x->write_errno = errno;
            return false;
        }
        x->have_bytes = x->start_bytes = 0;
        vib3_sha256_init(&x->sha);
    }
    return true;
}

static size_t xfer_body(char *p, size_t sz, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = sz * n;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code == 200 || code == 206) {
        if (!x->body_started) {
            x->body_started = true;
            if (!xfer_body_start(x)) return 0;
        }
    } else { /* an error page (or a redirect's body): keep its start for the message */
        size_t take = len < ERRBODY_BYTES - 1 - x->errbody_len ? len : ERRBODY_BYTES - 1 - x->errbody_len;
        memcpy(x->errbody + x->errbody_len, p, take);
        x->errbody_len += take;
        x->errbody[x->errbody_len] = 0;
        return len;
    }
    if (len > x->file->size_bytes - x->have_bytes) {
        x->oversize = true;
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(x->fd, p + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            x->write_errno = w < 0 ? errno : EIO;
            return 0;
        }
        off += (size_t)w;
    }
    if (x->file->lfs) vib3_sha256_update(&x->sha, p, len);
    x->have_bytes += len;
    *x->net_bytes += len;
    return len;
}

static void xfer_close(xfer *x) {
    if (x->fd >= 0) close(x->fd);
    if (x->lock_fd >= 0) close(x->lock_fd); /* releases the flock */
    x->fd = x->lock_fd = -1;
}

/* snapshots/<commit>/<name> -> ../../blobs/<etag> (replacing whatever is there) */
static vib3_err link_snapshot(const vib3_fetch_job *j, const vib3_hub_file *f) {
    char link[VIB3_PATH_MAX + 512], target[VIB3_HUB_ETAG_BYTES + 32], cur[VIB3_HUB_ETAG_BYTES + 32];
    snprintf(link, sizeof link, "%s/snapshots/%s/%s", j->repo_dir, j->commit, f->name);
    snprintf(target, sizeof target, "../../blobs/%s", f->etag);
    ssize_t n = readlink(link, cur, sizeof cur - 1);
    if (n >= 0) {
        cur[n] = 0;
        if (!strcmp(cur, target)) return VIB3_OK;
    }
    if (unlink(link) != 0 && errno != ENOENT)
        return vib3_err_set(VIB3_ERR_IO, "%s: cannot replace: %s", link, strerror(errno));
    if (symlink(target, link) != 0)
        return vib3_err_set(VIB3_ERR_IO, "%s: symlink to %s: %s", link, target, strerror(errno));
    return VIB3_OK;
}

/* a complete .incomplete: check size and SHA-256, rename to the blob, link it */
static vib3_err xfer_finish(vib3_fetch_job *j, xfer *x) {
    char part[VIB3_PATH_MAX + 128], blob[VIB3_PATH_MAX + 128];
    blob_path(j, x->file, ".incomplete", part, sizeof part);
    blob_path(j, x->file, "", blob, sizeof blob);
    if (x->have_bytes != x->file->size_bytes)
        return vib3_err_set(VIB3_ERR_INTERNAL, "%s: %llu bytes, expected %llu", part,
                            (unsigned long long)x->have_bytes, (unsigned long long)x->file->size_bytes);
    if (x->file->lfs) {
        uint8_t d[32];
        char hex[65];
        vib3_sha256_final(&x->sha, d);
        vib3_sha256_hex(d, hex);
        if (strcmp(hex, x->file->sha256) != 0) {
            unlink(part);
            return vib3_err_set(VIB3_ERR_CHECKSUM,
                                "%s@%s: %s: SHA-256 of the download is %s but the hub says %s; the file was "
                                "deleted: run the command again (if it repeats, a proxy or mirror is corrupting "
                                "the data)",
                                j->repo, j->revision, x->file->name, hex, x->file->sha256);
        }
    }
    if (fsync(x->fd) != 0) return vib3_err_set(VIB3_ERR_IO, "%s: fsync: %s", part, strerror(errno));
    if (rename(part, blob) != 0) return vib3_err_set(VIB3_ERR_IO, "%s: rename to %s: %s", part, blob, strerror(errno));
    return link_snapshot(j, x->file);
}

/* open the lock and the .incomplete file; 1 = started (or finished), 0 = locked by another process */
static int xfer_begin(vib3_fetch_job *j, xfer *x, CURLM *multi, struct curl_slist *hdrs, vib3_err *err) {
    char path[VIB3_PATH_MAX + 128];
    *err = VIB3_OK;
    snprintf(path, sizeof path, "%s/%s.lock", j->lock_dir, x->file->etag);
    x->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (x->lock_fd < 0) {
        *err = vib3_err_set(VIB3_ERR_IO, "%s: %s", path, strerror(errno));
        return 1;
    }
    if (flock(x->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(x->lock_fd);
        x->lock_fd = -1;
        return 0;
    }
    struct stat st;
    blob_path(j, x->file, "", path, sizeof path);
    if (stat(path, &st) == 0 && (uint64_t)st.st_size == x->file->size_bytes) { /* another process finished it */
        xfer_close(x);
        x->state = X_DONE;
        *err = link_snapshot(j, x->file);
        return 1;
    }
    blob_path(j, x->file, ".incomplete", path, sizeof path);
    x->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (x->fd < 0 || fstat(x->fd, &st) != 0) {
        *err = vib3_err_set(VIB3_ERR_IO, "%s: %s", path, strerror(errno));
        xfer_close(x);
        return 1;
    }
    x->have_bytes = (uint64_t)st.st_size;
    if (x->have_bytes > x->file->size_bytes) {
        if (ftruncate(x->fd, 0) != 0) {
            *err = vib3_err_set(VIB3_ERR_IO, "%s: truncate: %s", path, strerror(errno));
            xfer_close(x);
            return 1;
        }
        x->have_bytes = 0;
    }
    /* hash the kept prefix so the whole file is verified */
    vib3_sha256_init(&x->sha);
    if (x->file->lfs && x->have_bytes) {
        static char chunk[1 << 20];
        for (uint64_t off = 0; off < x->have_bytes;) {
            size_t want = x->have_bytes - off < sizeof chunk ? (size_t)(x->have_bytes - off) : sizeof chunk;
            ssize_t r = pread(x->fd, chunk, want, (off_t)off);
            if (r <= 0) {
                *err = vib3_err_set(VIB3_ERR_IO, "%s: read at %llu: %s", path, (unsigned long long)off,
                                    r < 0 ? strerror(errno) : "unexpected end");
                xfer_close(x);
                return 1;
            }
            vib3_sha256_update(&x->sha, chunk, (size_t)r);
            off += (uint64_t)r;
        }
    }
    if (lseek(x->fd, (off_t)x->have_bytes, SEEK_SET) < 0) {
        *err = vib3_err_set(VIB3_ERR_IO, "%s: seek: %s", path, strerror(errno));
        xfer_close(x);
        return 1;
    }
    x->start_bytes = x->have_bytes;
    if (x->have_bytes == x->file->size_bytes && x->file->size_bytes > 0) { /* downloaded, never renamed */
        *err = xfer_finish(j, x);
        if (*err == VIB3_ERR_CHECKSUM) { /* a stale or damaged leftover: fetch it again */
            vib3_err_clear();
            *err = VIB3_OK;
            xfer_close(x);
            x->retry_at_ms = 0;
            return 1;
        }
        xfer_close(x);
        x->state = X_DONE;
        return 1;
    }
    x->body_started = x->restart = x->oversize = false;
    x->write_errno = 0;
    x->errbody_len = 0;
    memset(&x->info, 0, sizeof x->info);
    x->linked = false;
    easy_common(x->easy, j->hub, x->url, hdrs, x->errbuf);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, xfer_body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, xfer_header);
    curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_BUFFERSIZE, 256L * 1024);
    char range[48];
    snprintf(range, sizeof range, "%llu-", (unsigned long long)x->have_bytes);
    curl_easy_setopt(x->easy, CURLOPT_RANGE, x->have_bytes ? range : NULL);
    if (curl_multi_add_handle(multi, x->easy) != CURLM_OK) {
        *err = vib3_err_set(VIB3_ERR_INTERNAL, "curl_multi_add_handle failed");
        xfer_close(x);
        return 1;
    }
    x->state = X_ACTIVE;
    return 1;
}

/* A transfer ended: finish it, schedule a retry, or fail the job. */
static vib3_err xfer_end(vib3_fetch_job *j, xfer *x, CURLcode c, progress *pr) {
    const vib3_hub *h = j->hub;
    char reason[CURL_ERROR_SIZE + 64];
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status) x->info.status = status;
    /* progress = more of the file than ever before (a server that restarts the
     * file and cuts it at the same place does not reset the retry count) */
    bool progressed = x->have_bytes > x->start_bytes && x->have_bytes > x->have_max;
    if (x->have_bytes > x->have_max) x->have_max = x->have_bytes;
    vib3_err rc = VIB3_OK;
    if (x->write_errno) {
        char part[VIB3_PATH_MAX + 128];
        blob_path(j, x->file, ".incomplete", part, sizeof part);
        rc = vib3_err_set(VIB3_ERR_IO, "%s@%s: %s: %s writing %s after %llu of %llu bytes%s", j->repo, j->revision,
                          x->file->name, x->write_errno == ENOSPC ? "disk full" : strerror(x->write_errno), part,
                          (unsigned long long)x->have_bytes, (unsigned long long)x->file->size_bytes,
                          x->write_errno == ENOSPC ? ": free some space and run the command again to resume" : "");
        xfer_close(x);
        return rc;
    }
    if (x->oversize || x->restart) {
        snprintf(reason, sizeof reason, "%s", x->oversize ? "server sent more bytes than the file has"
                                                          : "server answered a different byte range");
        if (ftruncate(x->fd, 0) != 0) { /* start again from zero */
        }
        progressed = false;
    } else if (c == CURLE_OK && (x->info.status == 200 || x->info.status == 206 || x->info.status == 416) &&
               x->have_bytes == x->file->size_bytes) {
        rc = xfer_finish(j, x);
        xfer_close(x);
        if (rc == VIB3_OK) {
            x->state = X_DONE;
            if (!pr->tty && !pr->quiet) {
                char s[32];
                fprintf(stderr, "vib3 pull: %s (%s) done\n", x->file->name, vib3_format_size(x->file->size_bytes, s, sizeof s));
            }
        }
        return rc;
    } else if (c == CURLE_OK && x->info.status == 416) {
        snprintf(reason, sizeof reason, "HTTP 416 at byte %llu", (unsigned long long)x->have_bytes);
        if (ftruncate(x->fd, 0) != 0) {
        }
    } else if (c == CURLE_OK && x->info.status >= 400 && !status_retriable(x->info.status)) {
        xfer_close(x);
        return vib3_fetch_http_error(h, j->repo, j->revision, x->file->name, &x->info);
    } else if (c == CURLE_OK && (x->info.status == 200 || x->info.status == 206)) {
        snprintf(reason, sizeof reason, "connection closed at byte %llu of %llu", (unsigned long long)x->have_bytes,
                 (unsigned long long)x->file->size_bytes);
    } else if (c == CURLE_OK) {
        snprintf(reason, sizeof reason, "HTTP %ld", x->info.status);
    } else if (curl_retriable(c) || c == CURLE_WRITE_ERROR) {
        snprintf(reason, sizeof reason, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(c));
    } else {
        xfer_close(x);
        return vib3_err_set(VIB3_ERR_NET, "%s@%s: %s: %s", j->repo, j->revision, x->file->name,
                            x->errbuf[0] ? x->errbuf : curl_easy_strerror(c));
    }
    /* retry */
    xfer_close(x);
    x->attempt = progressed ? 1 : x->attempt + 1;
    if (x->attempt > h->retries_max) {
        if (c == CURLE_OK && x->info.status >= 400)
            return vib3_fetch_http_error(h, j->repo, j->revision, x->file->name, &x->info);
        return vib3_err_set(VIB3_ERR_NET,
                            "%s@%s: %s: download interrupted at %llu of %llu bytes after %u attempts (%s); the "
                            "partial file %s/blobs/%s.incomplete is kept: run the same command again to resume",
                            j->repo, j->revision, x->file->name, (unsigned long long)x->have_bytes,
                            (unsigned long long)x->file->size_bytes, x->attempt - 1, reason, j->repo_dir,
                            x->file->etag);
    }
    uint32_t wait = backoff_ms(h, x->attempt);
    x->retry_at_ms = vib3_fetch_now_ms() + wait;
    x->state = X_QUEUED;
    if (!h->quiet) {
        if (pr->tty) fputc('\n', stderr);
        fprintf(stderr, "vib3 pull: %s: %s; retrying in %.1f s (attempt %u of %u)\n", x->file->name, reason,
                wait / 1000.0, x->attempt + 1, h->retries_max + 1);
    }
    return VIB3_OK;
}

static vib3_err start_ready(vib3_fetch_job *j, xfer *xs, uint32_t n, CURLM *multi, struct curl_slist *hdrs,
                            uint32_t *active, uint64_t *next_wake_ms) {
    uint64_t now = vib3_fetch_now_ms();
    *next_wake_ms = UINT64_MAX;
    for (uint32_t i = 0; i < n && *active < j->hub->parallel; i++) {
        xfer *x = &xs[i];
        if (x->state != X_QUEUED) continue;
        if (x->retry_at_ms > now) {
            if (x->retry_at_ms < *next_wake_ms) *next_wake_ms = x->retry_at_ms;
            continue;
        }
        vib3_err err;
        if (!xfer_begin(j, x, multi, hdrs, &err)) { /* another process holds the lock: look again soon */
            if (!x->waiting && !j->hub->quiet)
                fprintf(stderr, "vib3 pull: %s: another process is downloading it; waiting\n", x->file->name);
            x->waiting = true;
            x->retry_at_ms = now + 500;
            continue;
        }
        if (err != VIB3_OK) return err;
        if (x->state == X_ACTIVE) (*active)++;
    }
    return VIB3_OK;
}

vib3_err vib3_fetch_files(vib3_fetch_job *j, vib3_hub_file *const *files, uint32_t n) {
    if (n == 0) return VIB3_OK;
    if (!curl_ready()) return vib3_err_set(VIB3_ERR_NET, "curl_global_init failed");
    xfer *xs = calloc(n, sizeof *xs);
    CURLM *multi = curl_multi_init();
    struct curl_slist *hdrs = auth_headers(j->hub);
    vib3_err rc = VIB3_OK;
    if (!xs || !multi) {
        rc = vib3_err_set(VIB3_ERR_NOMEM, "out of memory for %u transfers", n);
        goto out;
    }
    progress pr = {.tty = j->hub->progress && isatty(2), .quiet = j->hub->quiet || !j->hub->progress,
                   .files_total = n};
    for (uint32_t i = 0; i < n; i++) {
        xfer *x = &xs[i];
        x->file = files[i];
        x->fd = x->lock_fd = -1;
        x->net_bytes = &j->bytes_downloaded;
        x->easy = curl_easy_init();
        if (!x->easy) {
            rc = vib3_err_set(VIB3_ERR_NOMEM, "curl_easy_init failed");
            goto out;
        }
        char efile[VIB3_HUB_FILE_BYTES * 3], erepo[VIB3_HUB_REPO_BYTES * 3];
        vib3_fetch_url_escape(x->file->name, 1, efile, sizeof efile);
        vib3_fetch_url_escape(j->repo, 1, erepo, sizeof erepo);
        snprintf(x->url, sizeof x->url, "%s/%s/resolve/%s/%s", j->hub->endpoint, erepo, j->commit, efile);
        char part[VIB3_PATH_MAX + 128];
        struct stat st;
        blob_path(j, x->file, "", part, sizeof part);
        if (stat(part, &st) == 0 && (uint64_t)st.st_size == x->file->size_bytes) { /* cached */
            if ((rc = link_snapshot(j, x->file)) != VIB3_OK) goto out;
            x->state = X_DONE;
            x->cached = true;
            pr.files_total--;
            continue;
        }
        blob_path(j, x->file, ".incomplete", part, sizeof part);
        if (stat(part, &st) == 0 && (uint64_t)st.st_size <= x->file->size_bytes) x->have_bytes = (uint64_t)st.st_size;
        pr.total_bytes += x->file->size_bytes;
    }
    pr.t0_ms = pr.last_draw_ms = pr.last_line_ms = pr.rate_ms = vib3_fetch_now_ms();
    pr.rate_bytes = j->bytes_downloaded;
    pr.last_draw_ms = 0;
    uint32_t active = 0;
    for (;;) {
        uint64_t wake;
        if (vib3_hub_interrupted()) {
            uint64_t kept = 0;
            for (uint32_t i = 0; i < n; i++) {
                if (xs[i].state == X_DONE) continue;
                kept += xs[i].have_bytes;
                if (xs[i].have_bytes == 0) { /* nothing to resume: no empty .incomplete left behind */
                    char part[VIB3_PATH_MAX + 128];
                    struct stat pst;
                    blob_path(j, xs[i].file, ".incomplete", part, sizeof part);
                    if (stat(part, &pst) == 0 && pst.st_size == 0) unlink(part);
                }
            }
            char k[32];
            if (kept)
                rc = vib3_err_set(VIB3_ERR_CANCELLED,
                                  "interrupted; %s of partial downloads kept in %s/blobs (*.incomplete): run the same "
                                  "command again to resume",
                                  vib3_format_size(kept, k, sizeof k), j->repo_dir);
            else
                rc = vib3_err_set(VIB3_ERR_CANCELLED, "interrupted before any data was received");
            break;
        }
        if ((rc = start_ready(j, xs, n, multi, hdrs, &active, &wake)) != VIB3_OK) break;
        uint32_t left = 0;
        for (uint32_t i = 0; i < n; i++) left += xs[i].state != X_DONE;
        uint64_t have = 0;
        for (uint32_t i = 0; i < n; i++)
            if (!xs[i].cached) have += xs[i].state == X_DONE ? xs[i].file->size_bytes : xs[i].have_bytes;
        pr.files_done = pr.files_total - left;
        if (pr.files_total) progress_draw(&pr, have, j->bytes_downloaded, active, left == 0);
        if (left == 0) break;
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(multi, &q))) {
            if (msg->msg != CURLMSG_DONE) continue;
            char *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            xfer *x = (xfer *)priv;
            CURLcode c = msg->data.result;
            curl_multi_remove_handle(multi, x->easy);
            active--;
            if (c == CURLE_ABORTED_BY_CALLBACK) { /* Ctrl-C: the loop's next turn reports it */
                xfer_close(x);
                x->state = X_QUEUED;
                continue;
            }
            if ((rc = xfer_end(j, x, c, &pr)) != VIB3_OK) break;
        }
        if (rc != VIB3_OK) break;
        int timeout_ms = 200;
        if (active == 0 && wake != UINT64_MAX) {
            uint64_t now = vib3_fetch_now_ms();
            timeout_ms = wake > now ? (int)(wake - now < 200 ? wake - now : 200) : 0;
        }
        curl_multi_poll(multi, NULL, 0, timeout_ms, NULL);
    }
    if (rc != VIB3_OK && pr.tty && !pr.quiet) fputc('\n', stderr);
out:
    if (xs) {
        for (uint32_t i = 0; i < n; i++) {
            if (xs[i].easy) {
                if (xs[i].state == X_ACTIVE) curl_multi_remove_handle(multi, xs[i].easy);
                curl_easy_cleanup(xs[i].easy);
            }
            xfer_close(&xs[i]);
        }
        free(xs);
    }
    if (multi) curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    return rc;
}
