/* pages.h — the buffer-manager interface the runtime reads expert pages through.
 *
 * The model code never touches page data directly: it asks for a page by its
 * page-table index, computes with the returned pointer, and releases it.
 * Between acquire and release the page is pinned (never evicted or moved).
 * Which tier serves the page (VRAM, RAM frame, NVMe read) is the buffer
 * manager's business; see docs/ARCHITECTURE.md.
 *
 * acquire may block on a disk read; it verifies the page's xxHash3 when the
 * data comes from disk and returns VIB3_ERR_CHECKSUM / VIB3_ERR_IO for that
 * page only (the caller fails the request; the engine keeps serving).
 * prefetch is a hint: it starts reads without waiting and never fails.
 * All calls are thread-safe. Nothing allocates after vib3_pages_open().
 */
#ifndef VIB3_STORAGE_PAGES_H
#define VIB3_STORAGE_PAGES_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "format/reader.h"

typedef struct vib3_pages vib3_pages;

typedef struct vib3_pages_stats {
    uint64_t page_accesses;
    uint64_t page_hits;          /* resident when acquired */
    uint64_t page_faults;        /* blocking misses */
    uint64_t prefetch_issued;
    uint64_t prefetch_used;      /* prefetched pages acquired before eviction */
    uint64_t bytes_read;
    uint64_t wasted_prefetch_bytes;
    uint64_t io_wait_ns;
    uint64_t checksum_errors, io_errors;
    uint64_t frames_total, frames_used;
    uint64_t resident_bytes;
    char backend[16];            /* "mmap", "io_uring", "pread" */
    char evict[16], prefetch[16];
    /* added by the frame buffer manager (src/storage/pages.c) */
    uint64_t tokens;             /* vib3_pages_token_begin() calls */
    uint64_t prefetch_late;      /* prefetched pages acquired while still loading (also faults) */
    uint64_t prefetch_dropped;   /* hints dropped: in-flight budget or no evictable frame */
    uint64_t readahead_pages;    /* pages read with a demand miss (rest of the expert), not prefetch */
    uint64_t evictions;
    uint64_t faults_cold;        /* page never read before */
    uint64_t faults_capacity;    /* read before, evicted since */
    uint64_t faults_inflight;    /* being read (readahead, fetch or a late prefetch) when acquired */
    uint64_t hints_expired;      /* prefetched pages whose layer was routed elsewhere */
    uint64_t fetch_absent;       /* vib3_pages_fetch found the page absent, never hinted since its last use */
    uint64_t fetch_absent_hinted;/* ... absent although hinted since its last use (evicted or dropped) */
    /* page_faults split by prediction (faults_late + faults_lost + faults_unpredicted = page_faults):
     * late: a prediction's read (prefetch hint) was in flight when acquired (predicted, not in time);
     * lost: hinted since its last use, but the hint was dropped or its frame evicted before use;
     * unpredicted: no hint since its last use (the read came from the routing-time fetch or the miss) */
    uint64_t faults_late, faults_lost, faults_unpredicted;
    /* the same per expert: an expert access is a token's first acquire of any page of one (layer, expert);
     * an expert fault, such an expert with at least one blocking page acquire in that token. A missed
     * expert's pages arrive in one read, so it costs ~1 page fault however many pages it has:
     * fault_rate ~ expert_fault_rate / pages per expert */
    uint64_t expert_accesses, expert_faults;
    uint64_t demand_waits_for_request; /* demand misses that waited for a free I/O request */
    uint64_t faults_reapable;    /* faults on a LOADING page while completions sat in the CQ (diagnostic) */
    uint64_t hints_resident;     /* hints that found their page resident and protected it */
    uint64_t prefetch_promoted;  /* queued hint reads moved to the demand FIFO (their page became needed) */
    uint64_t prefetch_cancelled; /* hinted pages whose queued read was cancelled unread (layer routed elsewhere) */
    uint64_t faults_queued;      /* faults on a page whose read was still queued, not yet submitted (diagnostic) */
    uint64_t frame_bytes;        /* bytes per frame (page bytes rounded to 4096) */
    uint64_t frames_budget_bytes;/* what the budget rule gave (docs/STORAGE.md) */
    double fault_rate;           /* page_faults / page_accesses */
    double expert_fault_rate;    /* expert_faults / expert_accesses */
    double hit_rate;             /* page_hits / page_accesses */
    double prefetch_precision;   /* prefetch_used / prefetch_issued */
    double prefetch_recall;      /* prefetch_used / (prefetch_used + page_faults - prefetch_late) */
    double bytes_read_per_token;
    double io_wait_ms_per_token;
    int fixed_buffers;           /* io_uring registered buffers in use */
    int direct_io;               /* O_DIRECT reads */
} vib3_pages_stats;

vib3_err vib3_pages_open(vib3_pages **out, const vib3_file *f, const vib3_config *cfg, vib3_arena *arena);
void vib3_pages_close(vib3_pages *p);
vib3_err vib3_pages_acquire(vib3_pages *p, uint64_t page_index, const void **data);
void vib3_pages_release(vib3_pages *p, uint64_t page_index);
void vib3_pages_prefetch(vib3_pages *p, const uint64_t *page_indices, uint32_t n);
void vib3_pages_stats_get(const vib3_pages *p, vib3_pages_stats *s);
/* optional access trace (one line per acquire) for Belady / eviction studies */
vib3_err vib3_pages_trace_open(vib3_pages *p, const char *path);
/* hint from the runtime that a new token starts (for per-token statistics) */
void vib3_pages_token_begin(vib3_pages *p);

/* ---- additions (storage engineer) ----------------------------------------
 * Budget rule (docs/STORAGE.md): frames get
 *   ram_budget - dense_bytes_total - KV estimate - 64 MiB runtime scratch
 * where KV = n_layers * ctx * n_kv_heads * (head_dim + v_head_dim) * 4 bytes,
 * ctx = cfg->ctx_size or min(max_position, 4096); ram_budget 0 = 75% of RAM.
 * When the frames would hold every expert page, the mmap backend is used.
 * Environment overrides for tests and benchmarks:
 *   VIB3_EXPERT_BUDGET=<size>|<n>%   frames bytes directly (% of expert bytes)
 *   VIB3_PAGES_BACKEND=mmap|frames   force a backend
 *   VIB3_READAHEAD=0                 a demand miss reads only its page
 *   VIB3_PREFETCH_INFLIGHT=<pages>   in-flight prefetch budget
 *   VIB3_REAP_INLINE=0               acquire never consumes io_uring completions itself */
enum { VIB3_PAGES_AUTO = 0, VIB3_PAGES_MMAP = 1, VIB3_PAGES_FRAMES = 2 };

typedef struct vib3_pages_opts {
    uint64_t frames_bytes;           /* 0 = budget rule */
    int backend;                     /* VIB3_PAGES_AUTO / _MMAP / _FRAMES */
    int readahead;                   /* -1 default (on), 0 off, 1 on */
    uint32_t prefetch_inflight_max;  /* pages; 0 = default (frames / 4, at least 1) */
    double hint_admit;               /* lfru admission for hints, in token cycles (n_layers steps);
                                      * 0 = default 1, < 0 = off (VIB3_HINT_ADMIT) */
    int no_reap_inline;              /* 1: only the completion thread publishes reads (VIB3_REAP_INLINE=0);
                                      * default: an acquirer about to wait first consumes posted completions */
    int no_hint_protect;             /* 1: a hint for a resident page does nothing (VIB3_HINT_PROTECT=0);
                                      * default: it is protected like a prefetched page until used or expired */
    uint32_t hint_max;               /* protected hinted frames; 0 = prefetch_inflight_max (VIB3_HINT_MAX) */
    int no_expired_first;            /* 1: expired hints join the policy's set (VIB3_EXPIRED_FIRST=0); default:
                                      * prefetched pages never used whose layer was routed elsewhere are the
                                      * first victims */
    int no_promote_queued;           /* 1: a needed page's hint read stays behind the other hints
                                      * (VIB3_PROMOTE_QUEUED=0); default: it moves to the demand FIFO */
    int no_cancel_expired;           /* 1: queued hint reads of a routed layer still run (VIB3_CANCEL_EXPIRED=0);
                                      * default: those its routing did not choose are cancelled unread */
} vib3_pages_opts;

/* vib3_pages_open with explicit options (env overrides not applied) */
vib3_err vib3_pages_open_ex(vib3_pages **out, const vib3_file *f, const vib3_config *cfg, vib3_arena *arena,
                            const vib3_pages_opts *opts);
/* bytes the budget rule gives the frames (0 when the budget does not even cover the dense weights) */
uint64_t vib3_pages_frames_budget(const vib3_file *f, const vib3_config *cfg);
/* the file the pages come from */
const vib3_file *vib3_pages_file(const vib3_pages *p);
/* prefetch all pages of (layer, slot); slot as vib3_file_slot() */
void vib3_pages_prefetch_slot(vib3_pages *p, uint32_t layer, uint32_t slot);
/* start reads of pages the caller knows it will acquire next (the routed
 * experts of the current layer): queued with demand reads, counted as
 * readahead (not prefetch), never wait; no-op for resident pages */
void vib3_pages_fetch(vib3_pages *p, const uint64_t *page_indices, uint32_t n);
void vib3_pages_fetch_slot(vib3_pages *p, uint32_t layer, uint32_t slot);
/* a predictor that hints about `pages` pages ahead asks for an in-flight
 * budget and a protected-hint window that large (at most 3/4 of the frames;
 * never lowered; no-op when the options or VIB3_PREFETCH_INFLIGHT /
 * VIB3_HINT_MAX set them) */
void vib3_pages_prefetch_window(vib3_pages *p, uint32_t pages);
/* layer's routing is known: prefetched pages of that layer that were not
 * fetched since (mispredictions) lose their protection and become ordinary
 * eviction candidates; their reads still queued (not yet on the device) are
 * cancelled. (A hint read still queued when its page is fetched or acquired
 * moves to the demand queue instead.) */
void vib3_pages_expire_hints(vib3_pages *p, uint32_t layer);
/* tests: hold = 1 keeps queued requests from the device (a busy device, seen
 * from the queue), 0 releases them */
void vib3_pages_hold_io(vib3_pages *p, int hold);
/* the T1 pool (cuda/vram.h vib3_vram *) when built with CUDA=1, a device is
 * present and the experts are Q4_0; NULL otherwise. Pages acquired
 * VRAM_PROMOTE_HEAT times are copied there asynchronously from their pinned
 * frame (frames backend) or from the mapping (mmap backend, counted per page);
 * vib3_vram_lookup() gives the device copy once complete (docs/CUDA.md). */
void *vib3_pages_vram(vib3_pages *p);
/* true when page is resident (READY) now; for predictors and tests */
int vib3_pages_resident(vib3_pages *p, uint64_t page_index);
/* free-form line into the trace ("# ..." or "R layer e0 e1" routing lines); no-op without a trace */
void vib3_pages_trace_note(vib3_pages *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
