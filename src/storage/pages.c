/* pages.c — the buffer manager behind pages.h: RAM page frames (T2) filled
 * from NVMe (T3) with io_uring, or the read-only mapping when the experts fit.
 *
 * Backends, chosen at open:
 *   mmap      every page served from the mapping of the whole file (the page
 *             cache is the RAM tier); checksum verified on first use. Used when
 *             the frame budget covers every expert page.
 *   io_uring  a fixed pool of frames (one page each, page bytes rounded up to
 *             4096) carved from one huge-page arena; O_DIRECT reads into them
 *             through a ring of cfg->io_queue_depth entries with the file and
 *             the frame region registered; one completion thread.
 *   pread     the same frames filled by a few threads calling preadv, when the
 *             ring cannot be created or cfg->io_uring is false.
 *
 * State (all under one mutex; operations are O(1) or O(log frames)):
 *   page_frame[page]  direct index page -> frame (VIB3_NONE32 when absent)
 *   frames[f]         page, pin count, state FREE/LOADING/READY/ERROR, flags
 *   evict             candidate set: READY frames with no pin (evict.h)
 *   reqs              fixed pool of read requests; a request is a run of
 *                     pages of one slot that lie back to back in the file
 *                     (one I/O); pending requests wait in two FIFOs, demand
 *                     before prefetch, and at most io_queue_depth are in flight.
 * A demand miss allocates a frame (free list, else the policy's victim),
 * reads the page plus the rest of its expert's absent pages (readahead, one
 * coalesced request) and waits on a condition variable; completions verify
 * xxHash3 outside the lock, then publish READY or ERROR and broadcast.
 * An ERROR frame is freed when its last waiter has seen it, so the next
 * acquire of that page retries the read; other pages are unaffected.
 * Prefetch hints take frames only within an in-flight budget and never wait.
 * Nothing is allocated after open except the stdio buffer of a trace file.
 */
#include "storage/pages.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/fault.h"
#include "storage/evict.h"
#include "vendor/vib3_xxhash.h"
#ifdef VIB3_CUDA
#include "cuda/vram.h"
#define VRAM_PROMOTE_HEAT 4u /* references before a page is copied to VRAM */
#endif

#define VIB3_NONE32 UINT32_MAX
#define IO_RUN_MAX 64u              /* pages per coalesced request */
#define IO_RUN_BYTES_MAX (8u << 20) /* bytes per coalesced request */
#define IO_PREAD_THREADS_MAX 8u
#define WAKE_USER_DATA UINT64_MAX
#define HUGE_2M (2u << 20)
#define RUNTIME_SCRATCH_BYTES (64ull << 20)

enum { FR_FREE = 0, FR_LOADING, FR_READY, FR_ERROR };
enum { ERR_NONE = 0, ERR_CHECKSUM = 1, ERR_INJECTED = 2 }; /* else -errno */

typedef struct frame_meta {
    uint64_t page;        /* UINT64_MAX when free */
    uint64_t got_checksum;
    int32_t err;          /* ERR_* or -errno of the read */
    uint32_t pins;
    uint8_t state;
    uint8_t prefetched;   /* loaded by a hint and not yet acquired */
    uint8_t hinted;       /* resident when hinted: protected like a prefetched page until used or expired */
    uint8_t readahead;
    uint8_t in_hints;     /* LIST_*: on a FIFO instead of the policy's set */
} frame_meta;

typedef struct io_req {
    uint64_t first_page;
    uint64_t offset;      /* file offset of the next byte to read */
    uint64_t done, total; /* bytes read so far / asked (pages rounded to 4096) */
    uint64_t need;        /* bytes that must arrive (last page not rounded) */
    uint32_t n_pages;
    uint32_t iov_first, iov_n;
    uint32_t next;        /* FIFO link */
    uint8_t prefetch;
    uint8_t fixed;        /* one contiguous registered region */
    uint16_t buf_index;
    uint8_t queued;       /* on a FIFO, not yet handed to the kernel / a worker */
    uint8_t promoted;     /* a hint's read moved to the demand FIFO: its pages became known needs */
    int32_t result;       /* 0 or -errno / ERR_INJECTED for the whole request */
    uint32_t frames[IO_RUN_MAX];
    struct iovec iov[IO_RUN_MAX];
} io_req;

typedef struct req_fifo { uint32_t head, tail; } req_fifo;

struct vib3_pages {
    const vib3_file *file;
    int backend;                    /* VIB3_PAGES_MMAP / _FRAMES */
    int use_uring;
    vib3_evict_kind evict_kind;
    char prefetch_name[16];
    int readahead;

    /* mmap backend */
    atomic_uchar *verified;         /* [n_pages] */

    /* frames */
    vib3_arena meta_arena, frame_arena;
    uint8_t *frame_base;            /* n_frames * frame_bytes, 2 MiB aligned */
    uint64_t frame_bytes;
    uint32_t n_frames;
    frame_meta *frames;             /* [n_frames] */
    uint32_t *free_list;            /* [n_frames] */
    uint32_t *frame_req;            /* [n_frames] the request loading the frame, NONE when not LOADING */
    uint32_t free_count;
    uint32_t *page_frame;           /* [n_pages] */
    uint8_t *page_seen;             /* [n_pages] read at least once (cold vs capacity misses) */
    uint64_t *slot_used, *slot_faulted; /* [n_layers * n_slots] token count + 1 when last used / faulted:
                                         * expert-level accesses and faults (one per expert and token) */
    vib3_evict evict;
    uint32_t *page_layer;           /* [n_pages] for the lfru policy */
    /* prefetched, not yet used frames: protected from the policy in FIFO
     * order up to hint_max frames, then demoted to the policy's set */
    uint32_t *hint_prev, *hint_next; /* [n_frames] links of the LIST_* FIFOs */
    uint32_t lst_head[4], lst_tail[4], lst_count[4];
    uint32_t hint_max;
    double hint_admit;              /* lfru: a hint may evict only pages not expected within this many layer steps */

    /* requests */
    io_req *reqs;                   /* [n_reqs] */
    uint32_t n_reqs;
    uint32_t *req_free;
    uint32_t req_free_count;
    req_fifo q_demand, q_prefetch;
    uint32_t inflight, inflight_max;
    uint32_t loading_frames;        /* frames in state LOADING */
    uint32_t prefetch_inflight, prefetch_inflight_max; /* pages */

    /* I/O */
    int fd;                         /* O_DIRECT when possible */
    int direct;
    struct io_uring ring;
    int ring_ok, fixed_buffers;
    int cq_efd, cq_efd_ok;          /* eventfd the ring signals per completion: the completion thread's doorbell */
    uint64_t reg_chunk_bytes;       /* registered buffer i covers [i*chunk, (i+1)*chunk) */
    uint32_t reg_count;
    pthread_t threads[IO_PREAD_THREADS_MAX];
    uint32_t n_threads;
    int stopping;
    int wake_seen;                  /* the close NOP was reaped */
    int reap_inline;                /* acquire consumes posted completions (VIB3_REAP_INLINE=0: off) */
    int hint_protect;               /* a hint protects a resident page too (VIB3_HINT_PROTECT=0: off) */
    int expired_first;              /* expired, never used prefetched pages go first (VIB3_EXPIRED_FIRST=0: off) */
    int window_fixed;               /* in-flight budget / hint_max set by the caller: prefetch_window is a no-op */
    int promote_queued;             /* a needed page's queued hint read joins the demand FIFO (VIB3_PROMOTE_QUEUED=0: off) */
    int io_held;                    /* vib3_pages_hold_io: queued requests stay queued (tests) */
    int cancel_expired;             /* queued hint reads of a layer routed elsewhere are cancelled (VIB3_CANCEL_EXPIRED=0: off) */

    pthread_mutex_t mu;
    pthread_cond_t done_cv;         /* a request completed or a frame was unpinned */
    pthread_cond_t io_cv;           /* pread workers: work queued */

    /* stats (under mu, except the mmap backend's atomics) */
    vib3_pages_stats st;
    atomic_uint_fast64_t mm_accesses;
    atomic_uint_fast64_t tokens;

    /* trace */
    FILE *trace;
#ifdef VIB3_CUDA
    vib3_vram *vram;                /* T1, NULL without a device */
    uint32_t *vram_count;           /* mmap backend: accesses per page, the promotion heat (calloc) */
#endif
};

/* ---- small helpers ------------------------------------------------------- */
static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *page_what(const vib3_pages *p, uint64_t page, char *buf, size_t cap) {
    const vib3_page_entry *e = &p->file->pages[page];
    snprintf(buf, cap, "%s: page %" PRIu64 " (layer %u, %s %u, neurons %u..%u, offset 0x%" PRIx64 ")",
             p->file->path, page, e->layer, e->kind == VIB3_PAGE_SHARED ? "shared expert" :
             e->kind == VIB3_PAGE_DENSE ? "dense ffn" : "expert", e->expert, e->first_neuron,
             e->first_neuron + e->n_neurons, e->offset);
    return buf;
}

static void trace_access(vib3_pages *p, uint64_t page, char outcome) {
    if (!p->trace) return;
    const vib3_page_entry *e = &p->file->pages[page];
    fprintf(p->trace, "A %" PRIu64 " %" PRIu64 " %u %u %c\n",
            (uint64_t)atomic_load_explicit(&p->tokens, memory_order_relaxed), page, e->layer,
            vib3_file_slot(p->file, e->kind, e->expert), outcome);
}

/* ---- budget rule ---------------------------------------------------------- */
uint64_t vib3_pages_frames_budget(const vib3_file *f, const vib3_config *cfg) {
    uint64_t budget = cfg ? cfg->ram_budget_bytes : 0;
    if (budget == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        budget = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 4 * 3 : (8ull << 30);
    }
    const vib3_model_config *c = f->config;
    uint64_t ctx = cfg && cfg->ctx_size ? cfg->ctx_size : (c->max_position && c->max_position < 4096 ? c->max_position : 4096);
    uint64_t kv = (uint64_t)c->n_layers * ctx * c->n_kv_heads * ((uint64_t)c->head_dim + c->v_head_dim) * 4u;
    uint64_t reserve = f->dense_bytes_total + kv + RUNTIME_SCRATCH_BYTES;
    return budget > reserve ? budget - reserve : 0;
}

const vib3_file *vib3_pages_file(const vib3_pages *p) { return p->file; }

/* ---- frames --------------------------------------------------------------- */
static void *frame_data(const vib3_pages *p, uint32_t f) { return p->frame_base + (uint64_t)f * p->frame_bytes; }

/* ---- eviction candidates ---------------------------------------------------
 * The policy's set (evict.h) holds ordinary pages. Two FIFOs keep pages out
 * of it until they have been used once:
 *   LIST_NEEDED  pages read because they are known to be needed (readahead of
 *                a demand miss, vib3_pages_fetch of routed experts);
 *   LIST_HINTS   prefetched pages (predictions), at most hint_max frames; the
 *                oldest is demoted to the policy's set beyond that, and
 *                vib3_pages_expire_hints() demotes those of a routed layer
 *                that the routing did not choose.
 * Victims come from the policy first, then the oldest hint, then (demand
 * only) the oldest needed page. */
enum { LIST_NONE = 0, LIST_HINTS = 1, LIST_NEEDED = 2, LIST_EXPIRED = 3 };

static void list_unlink(vib3_pages *p, uint32_t f) {
    uint8_t l = p->frames[f].in_hints;
    uint32_t pv = p->hint_prev[f], nx = p->hint_next[f];
    if (pv != VIB3_NONE32) p->hint_next[pv] = nx; else p->lst_head[l] = nx;
    if (nx != VIB3_NONE32) p->hint_prev[nx] = pv; else p->lst_tail[l] = pv;
    p->frames[f].in_hints = LIST_NONE;
    p->lst_count[l]--;
}

static void list_push(vib3_pages *p, uint8_t l, uint32_t f) {
    p->frames[f].in_hints = l;
    p->hint_prev[f] = p->lst_tail[l];
    p->hint_next[f] = VIB3_NONE32;
    if (p->lst_tail[l] != VIB3_NONE32) p->hint_next[p->lst_tail[l]] = f; else p->lst_head[l] = f;
    p->lst_tail[l] = f;
    p->lst_count[l]++;
}

/* f holds page, READY, unpinned: make it a candidate */
static void cand_insert(vib3_pages *p, uint32_t f, uint64_t page) {
    frame_meta *fm = &p->frames[f];
    if (fm->readahead) {
        list_push(p, LIST_NEEDED, f);
        if (p->lst_count[LIST_NEEDED] > p->n_frames / 2) { /* never used: stop protecting the oldest */
            uint32_t old = p->lst_head[LIST_NEEDED];
            list_unlink(p, old);
            p->frames[old].readahead = 0;
            vib3_evict_insert(&p->evict, old, p->frames[old].page);
        }
        return;
    }
    if (!(fm->prefetched || fm->hinted) || p->hint_max == 0) {
        vib3_evict_insert(&p->evict, f, page);
        return;
    }
    list_push(p, LIST_HINTS, f);
    if (p->lst_count[LIST_HINTS] > p->hint_max) {
        uint32_t old = p->lst_head[LIST_HINTS];
        list_unlink(p, old);
        p->frames[old].hinted = 0;
        vib3_evict_insert(&p->evict, old, p->frames[old].page);
    }
}

static void cand_remove(vib3_pages *p, uint32_t f) {
    if (p->frames[f].in_hints) list_unlink(p, f);
    else vib3_evict_remove(&p->evict, f);
}

static uint32_t cand_count(const vib3_pages *p) {
    return vib3_evict_count(&p->evict) + p->lst_count[LIST_HINTS] + p->lst_count[LIST_NEEDED] +
           p->lst_count[LIST_EXPIRED];
}

/* unmap a frame's page and put the frame on the free list */
static void frame_free(vib3_pages *p, uint32_t f) {
    frame_meta *fm = &p->frames[f];
    cand_remove(p, f);
    if (fm->page != UINT64_MAX) {
        if (fm->prefetched) p->st.wasted_prefetch_bytes += p->file->pages[fm->page].bytes;
        p->page_frame[fm->page] = VIB3_NONE32;
    }
    fm->page = UINT64_MAX;
    fm->state = FR_FREE;
    fm->pins = 0;
    fm->prefetched = fm->readahead = fm->hinted = 0;
    fm->err = ERR_NONE;
    p->free_list[p->free_count++] = f;
}

/* a free frame, evicting the policy's victim when none is free; NONE when
 * every frame is pinned or loading */
static uint32_t frame_alloc(vib3_pages *p, int hint) {
    if (p->free_count == 0) {
        uint32_t v = VIB3_EVICT_NONE;
        if (p->lst_count[LIST_EXPIRED]) { /* a misprediction's read, never used: the first victim */
            v = p->lst_head[LIST_EXPIRED];
            list_unlink(p, v);
        }
        if (v == VIB3_EVICT_NONE)
            v = hint ? vib3_evict_victim_min(&p->evict, p->hint_admit) : vib3_evict_victim(&p->evict);
        if (v == VIB3_EVICT_NONE && p->lst_count[LIST_HINTS]) { /* the oldest hint goes */
            v = p->lst_head[LIST_HINTS];
            list_unlink(p, v);
        }
        if (v == VIB3_EVICT_NONE && !hint && p->lst_count[LIST_NEEDED]) {
            v = p->lst_head[LIST_NEEDED];
            list_unlink(p, v);
        }
        if (v == VIB3_EVICT_NONE) return VIB3_NONE32;
        p->st.evictions++;
        frame_free(p, v);
    }
    return p->free_list[--p->free_count];
}

/* ---- request queues --------------------------------------------------------- */
static void fifo_push(vib3_pages *p, req_fifo *q, uint32_t r, int front) {
    p->reqs[r].next = VIB3_NONE32;
    p->reqs[r].queued = 1;
    if (q->head == VIB3_NONE32) {
        q->head = q->tail = r;
    } else if (front) {
        p->reqs[r].next = q->head;
        q->head = r;
    } else {
        p->reqs[q->tail].next = r;
        q->tail = r;
    }
}

static uint32_t fifo_pop(vib3_pages *p, req_fifo *q) {
    uint32_t r = q->head;
    if (r == VIB3_NONE32) return r;
    q->head = p->reqs[r].next;
    if (q->head == VIB3_NONE32) q->tail = VIB3_NONE32;
    p->reqs[r].queued = 0;
    return r;
}

/* take request r (queued on q) out of the FIFO; the queues hold at most n_reqs entries */
static void fifo_remove(vib3_pages *p, req_fifo *q, uint32_t r) {
    uint32_t prev = VIB3_NONE32;
    for (uint32_t c = q->head; c != VIB3_NONE32; prev = c, c = p->reqs[c].next) {
        if (c != r) continue;
        if (prev == VIB3_NONE32) q->head = p->reqs[c].next;
        else p->reqs[prev].next = p->reqs[c].next;
        if (q->tail == c) q->tail = prev;
        p->reqs[c].queued = 0;
        return;
    }
}

/* the FIFO a (re)queued request belongs on */
static req_fifo *req_queue(vib3_pages *p, const io_req *q) {
    return q->prefetch && !q->promoted ? &p->q_prefetch : &p->q_demand;
}

/* a page loading in frame f turned out to be needed now: if a hint's read is
 * still queued behind other hints, move it to the demand FIFO (reads of
 * correct guesses should not wait behind wrong ones) */
static int promote_frame(vib3_pages *p, uint32_t f) {
    uint32_t r = p->frame_req[f];
    if (!p->promote_queued || r == VIB3_NONE32) return 0;
    io_req *q = &p->reqs[r];
    if (!q->queued || !q->prefetch || q->promoted) return 0;
    fifo_remove(p, &p->q_prefetch, r);
    q->promoted = 1;
    fifo_push(p, &p->q_demand, r, 0);
    p->st.prefetch_promoted += q->n_pages;
    return 1;
}

static uint32_t next_pending(vib3_pages *p) {
    if (p->io_held) return VIB3_NONE32;
    uint32_t r = fifo_pop(p, &p->q_demand);
    return r != VIB3_NONE32 ? r : fifo_pop(p, &p->q_prefetch);
}

static void req_finish_locked(vib3_pages *p, uint32_t r);

/* mark the request's iovecs consumed by n bytes (short reads) */
static void req_advance(io_req *q, uint64_t n) {
    q->done += n;
    q->offset += n;
    while (n && q->iov_n) {
        struct iovec *v = &q->iov[q->iov_first];
        if (n < v->iov_len) {
            v->iov_base = (uint8_t *)v->iov_base + n;
            v->iov_len -= n;
            return;
        }
        n -= v->iov_len;
        q->iov_first++;
        q->iov_n--;
    }
}

/* io_uring: move pending requests into the ring up to the queue depth */
static void uring_submit_locked(vib3_pages *p) {
    int queued = 0;
    while (p->inflight < p->inflight_max) {
        uint32_t r = next_pending(p);
        if (r == VIB3_NONE32) break;
        io_req *q = &p->reqs[r];
        if (vib3_fault_hit(VIB3_FAULT_READ)) {
            q->result = ERR_INJECTED;
            req_finish_locked(p, r);
            continue;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
        if (!sqe) {
            fifo_push(p, req_queue(p, q), r, 1);
            break;
        }
        if (q->fixed) {
            io_uring_prep_read_fixed(sqe, 0, q->iov[q->iov_first].iov_base, (unsigned)q->iov[q->iov_first].iov_len,
                                     q->offset, q->buf_index);
        } else {
            io_uring_prep_readv(sqe, 0, &q->iov[q->iov_first], q->iov_n, q->offset);
        }
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, r);
        p->inflight++;
        queued++;
    }
    if (queued) {
        int rc;
        do rc = io_uring_submit(&p->ring); while (rc == -EINTR || rc == -EAGAIN);
    }
}

static void submit_locked(vib3_pages *p) {
    if (p->use_uring) uring_submit_locked(p);
    else pthread_cond_signal(&p->io_cv);
}

/* verify the pages of a finished read (outside the lock: frames are LOADING and owned by the request) */
static void req_verify(vib3_pages *p, io_req *q) {
    for (uint32_t k = 0; k < q->n_pages; k++) {
        frame_meta *fm = &p->frames[q->frames[k]];
        if (q->result != 0) {
            fm->err = q->result;
            continue;
        }
        const vib3_page_entry *e = &p->file->pages[q->first_page + k];
        uint64_t h = vib3_xxh3_64(frame_data(p, q->frames[k]), e->bytes);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
        h = e->checksum;
#endif
        fm->got_checksum = h;
        fm->err = h == e->checksum ? ERR_NONE : ERR_CHECKSUM;
    }
}

/* publish a finished request: frames READY or ERROR, wake waiters */
static void req_finish_locked(vib3_pages *p, uint32_t r) {
    io_req *q = &p->reqs[r];
    if (q->result != 0)
        for (uint32_t k = 0; k < q->n_pages; k++) p->frames[q->frames[k]].err = q->result;
    for (uint32_t k = 0; k < q->n_pages; k++) {
        uint32_t f = q->frames[k];
        frame_meta *fm = &p->frames[f];
        uint64_t page = q->first_page + k;
        p->loading_frames--;
        p->frame_req[f] = VIB3_NONE32;
        if (fm->err == ERR_NONE) {
            fm->state = FR_READY;
            p->st.bytes_read += p->file->pages[page].bytes;
            if (fm->pins == 0) cand_insert(p, f, page);
        } else {
            fm->state = FR_ERROR;
            if (fm->err == ERR_CHECKSUM) p->st.checksum_errors++;
            else if (fm->err != -ECANCELED) p->st.io_errors++;
            if (fm->pins == 0) {
                fm->prefetched = 0; /* a failed hint is not waste of a read */
                frame_free(p, f);
            }
        }
    }
    if (q->prefetch) p->prefetch_inflight -= q->n_pages;
    p->req_free[p->req_free_count++] = r;
    pthread_cond_broadcast(&p->done_cv);
}

/* ---- io_uring completions ------------------------------------------------------
 * Completions are consumed only under mu, by the completion thread or by an
 * acquirer about to wait on a LOADING page (uring_reap_locked): a read whose
 * CQE is already posted is then published at once instead of after the
 * completion thread has been scheduled (on a busy machine that wake-up costs
 * more than the read). The thread uses io_uring_wait_cqe only as a doorbell
 * and never reads a CQE outside the lock. */
static void uring_reap_locked(vib3_pages *p) {
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&p->ring, &cqe) == 0 && cqe) {
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&p->ring, cqe);
        if (ud == WAKE_USER_DATA) {
            p->wake_seen = 1;
            continue;
        }
        io_req *q = &p->reqs[ud];
        int complete = 1;
        p->inflight--;
        if (res == -EAGAIN || res == -EINTR) {
            complete = 0;
        } else if (res < 0) {
            q->result = res;
        } else if (res == 0 && q->done < q->need) {
            q->result = -ENODATA; /* end of file before the page */
        } else {
            req_advance(q, (uint64_t)res);
            if (q->done < q->need && q->iov_n) complete = 0; /* short read: requeue the rest */
        }
        if (!complete) {
            fifo_push(p, req_queue(p, q), (uint32_t)ud, 1);
            uring_submit_locked(p);
            continue;
        }
        /* verify outside the lock: the frames stay LOADING and belong to the request */
        pthread_mutex_unlock(&p->mu);
        req_verify(p, q);
        pthread_mutex_lock(&p->mu);
        req_finish_locked(p, (uint32_t)ud);
        uring_submit_locked(p);
    }
}

/* Waits on the ring's eventfd, so no ring memory is touched outside the lock
 * (io_uring_wait_cqe would read the CQ head while an acquirer advances it);
 * without an eventfd, io_uring_wait_cqe as the doorbell (a benign racy read). */
static void *uring_thread(void *arg) {
    vib3_pages *p = arg;
    for (;;) {
        if (p->cq_efd_ok) {
            uint64_t v;
            ssize_t n = read(p->cq_efd, &v, sizeof v);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n < 0) break;
        } else {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&p->ring, &cqe); /* doorbell only: cqe is read under the lock */
            if (rc == -EINTR || rc == -EAGAIN) continue;
            if (rc < 0) break;
        }
        pthread_mutex_lock(&p->mu);
        uring_reap_locked(p);
        int stop = p->wake_seen;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
    }
    return NULL;
}

/* ---- pread worker threads ---------------------------------------------------- */
static void *pread_thread(void *arg) {
    vib3_pages *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        uint32_t r = VIB3_NONE32;
        while (!p->stopping && (r = next_pending(p)) == VIB3_NONE32) pthread_cond_wait(&p->io_cv, &p->mu);
        if (r == VIB3_NONE32) break;
        io_req *q = &p->reqs[r];
        p->inflight++;
        int injected = vib3_fault_hit(VIB3_FAULT_READ);
        pthread_mutex_unlock(&p->mu);
        if (injected) q->result = ERR_INJECTED;
        while (!q->result && q->done < q->need && q->iov_n) {
            ssize_t n = preadv(p->fd, &q->iov[q->iov_first], (int)q->iov_n, (off_t)q->offset);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n < 0) q->result = -errno;
            else if (n == 0) q->result = -ENODATA;
            else req_advance(q, (uint64_t)n);
        }
        req_verify(p, q);
        pthread_mutex_lock(&p->mu);
        p->inflight--;
        req_finish_locked(p, r);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- building requests ---------------------------------------------------- */
/* requests a hint may not take: kept for demand reads (an acquirer without one waits for a completion) */
#define REQ_DEMAND_RESERVE 4u

/* true when page b follows page a in the same slot, back to back in the file */
static int pages_adjacent(const vib3_file *f, uint64_t a, uint64_t b) {
    if (b != a + 1 || b >= f->n_pages) return 0;
    const vib3_page_entry *x = &f->pages[a], *y = &f->pages[b];
    return x->layer == y->layer && x->kind == y->kind && x->expert == y->expert &&
           y->offset == x->offset + round_up(x->bytes, VIB3_PAGE_ALIGN);
}

/* a request for the run of pages first..first+n-1 in frames[]; frames are LOADING */
static uint32_t req_build(vib3_pages *p, uint64_t first, uint32_t n, const uint32_t *frames, int prefetch) {
    assert(p->req_free_count > 0);
    uint32_t r = p->req_free[--p->req_free_count];
    io_req *q = &p->reqs[r];
    memset(q, 0, offsetof(io_req, frames));
    q->first_page = first;
    q->n_pages = n;
    q->prefetch = (uint8_t)prefetch;
    q->offset = p->file->pages[first].offset;
    int contiguous = 1;
    for (uint32_t k = 0; k < n; k++) {
        const vib3_page_entry *e = &p->file->pages[first + k];
        uint64_t len = round_up(e->bytes, VIB3_PAGE_ALIGN);
        q->frames[k] = frames[k];
        p->frame_req[frames[k]] = r;
        q->iov[k].iov_base = frame_data(p, frames[k]);
        q->iov[k].iov_len = len;
        q->total += len;
        q->need = q->total - (len - e->bytes);
        if (k + 1 < n && (frames[k + 1] != frames[k] + 1 || len != p->frame_bytes)) contiguous = 0;
    }
    q->iov_n = n;
    if (p->fixed_buffers && contiguous) {
        uint64_t start = (uint64_t)frames[0] * p->frame_bytes;
        uint64_t chunk = start / p->reg_chunk_bytes;
        if ((start + q->total - 1) / p->reg_chunk_bytes == chunk && q->total <= UINT32_MAX) {
            q->fixed = 1;
            q->buf_index = (uint16_t)chunk;
            q->iov[0].iov_len = q->total;
            q->iov_n = 1;
        }
    }
    if (prefetch) p->prefetch_inflight += n;
    fifo_push(p, prefetch ? &p->q_prefetch : &p->q_demand, r, 0);
    return r;
}

/* claim a frame for page as LOADING; NONE when none can be had */
static uint32_t frame_claim(vib3_pages *p, uint64_t page, int hint) {
    uint32_t f = frame_alloc(p, hint);
    if (f == VIB3_NONE32) return f;
    frame_meta *fm = &p->frames[f];
    fm->page = page;
    fm->state = FR_LOADING;
    fm->pins = 0;
    fm->err = ERR_NONE;
    fm->prefetched = fm->readahead = fm->hinted = 0;
    p->page_frame[page] = f;
    if (!p->page_seen[page]) p->page_seen[page] = 1;
    p->loading_frames++;
    return f;
}

/* demand miss on page (frame f already claimed and pinned): read it plus the
 * following absent pages of its slot in one request */
static void demand_read(vib3_pages *p, uint64_t page, uint32_t f) {
    uint32_t frames[IO_RUN_MAX];
    uint32_t n = 1;
    frames[0] = f;
    uint64_t bytes = round_up(p->file->pages[page].bytes, VIB3_PAGE_ALIGN);
    if (p->readahead) {
        while (n < IO_RUN_MAX) {
            uint64_t nx = page + n;
            if (!pages_adjacent(p->file, nx - 1, nx) || p->page_frame[nx] != VIB3_NONE32) break;
            uint64_t b = round_up(p->file->pages[nx].bytes, VIB3_PAGE_ALIGN);
            if (bytes + b > IO_RUN_BYTES_MAX) break;
            /* readahead never evicts pinned data and keeps one free/evictable frame in reserve */
            if (p->free_count + cand_count(p) <= 1) break;
            uint32_t g = frame_claim(p, nx, 0);
            if (g == VIB3_NONE32) break;
            p->frames[g].readahead = 1;
            frames[n++] = g;
            bytes += b;
        }
        p->st.readahead_pages += n - 1;
    }
    req_build(p, page, n, frames, 0);
    submit_locked(p);
}

/* ---- acquire / release -------------------------------------------------------- */
static vib3_err frame_error(vib3_pages *p, uint64_t page, const frame_meta *fm) {
    char what[1400];
    page_what(p, page, what, sizeof what);
    const vib3_page_entry *e = &p->file->pages[page];
    if (fm->err == ERR_CHECKSUM)
        return vib3_err_set(VIB3_ERR_CHECKSUM, "%s: checksum mismatch: xxh3 of %" PRIu64 " bytes read is %016" PRIx64
                            ", page table says %016" PRIx64, what, e->bytes, fm->got_checksum, e->checksum);
    if (fm->err == ERR_INJECTED)
        return vib3_err_set(VIB3_ERR_IO, "%s: read failed (injected fault VIB3_FAULT_READ)", what);
    return vib3_err_set(VIB3_ERR_IO, "%s: read of %" PRIu64 " bytes failed: %s", what, e->bytes, strerror(-fm->err));
}

static vib3_err mmap_acquire(vib3_pages *p, uint64_t page, const void **data) {
    const vib3_page_entry *e = &p->file->pages[page];
    const void *d = p->file->map + e->offset;
    atomic_fetch_add_explicit(&p->mm_accesses, 1, memory_order_relaxed);
    if (p->trace) {
        pthread_mutex_lock(&p->mu);
        trace_access(p, page, 'h');
        pthread_mutex_unlock(&p->mu);
    }
    if (!atomic_load_explicit(&p->verified[page], memory_order_acquire)) {
        vib3_err rc = vib3_file_verify_page(p->file, page, d);
        if (rc != VIB3_OK) {
            pthread_mutex_lock(&p->mu);
            p->st.checksum_errors++;
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        atomic_store_explicit(&p->verified[page], 1, memory_order_release);
    }
#ifdef VIB3_CUDA
    if (p->vram_count) { /* T1: offer hot pages to VRAM (the mapping stays valid: nothing to wait for) */
        uint32_t c = __atomic_add_fetch(&p->vram_count[page], 1, __ATOMIC_RELAXED);
        if (c >= VRAM_PROMOTE_HEAT) (void)vib3_vram_promote(p->vram, page, d, e->bytes, c);
    }
#endif
    *data = d;
    return VIB3_OK;
}

vib3_err vib3_pages_acquire(vib3_pages *p, uint64_t page, const void **data) {
    if (page >= p->file->n_pages)
        return vib3_err_set(VIB3_ERR_INVALID, "%s: page %" PRIu64 " out of range (%" PRIu64 " pages)", p->file->path,
                            page, p->file->n_pages);
    if (p->backend == VIB3_PAGES_MMAP) return mmap_acquire(p, page, data);

    pthread_mutex_lock(&p->mu);
    p->st.page_accesses++;
    vib3_evict_access(&p->evict, page);
    const vib3_page_entry *pe = &p->file->pages[page];
    size_t slot_key = (size_t)pe->layer * p->file->n_slots + vib3_file_slot(p->file, pe->kind, pe->expert);
    uint64_t tok = (uint64_t)atomic_load_explicit(&p->tokens, memory_order_relaxed) + 1;
    if (pe->layer < p->file->config->n_layers && p->slot_used[slot_key] != tok) {
        p->slot_used[slot_key] = tok;
        p->st.expert_accesses++;
    }
    int waited = 0, pinned = 0;
    uint64_t t0 = 0, waited_ns_for_frame = 0;
    vib3_err rc = VIB3_OK;
    for (;;) {
        uint32_t f = p->page_frame[page];
        if (f == VIB3_NONE32) {
            if (!waited) {
                waited = 1;
                p->st.page_faults++;
                if (p->page_seen[page]) p->st.faults_capacity++;
                else p->st.faults_cold++;
                if (p->page_seen[page] == 2) p->st.faults_lost++; /* hinted, then dropped or evicted */
                else p->st.faults_unpredicted++;
                t0 = now_ns();
            }
            if (p->req_free_count == 0) {
                /* every request is queued or in flight (a deep prefetch window): a completion frees
                 * one (the completion path submits the queued ones); never build without one */
                p->st.demand_waits_for_request++;
                pthread_cond_wait(&p->done_cv, &p->mu);
                continue;
            }
            f = frame_claim(p, page, 0);
            if (f == VIB3_NONE32) {
                /* every frame pinned or loading: wait for a release or a completion */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                if (pthread_cond_timedwait(&p->done_cv, &p->mu, &ts) == ETIMEDOUT) {
                    waited_ns_for_frame += 1000000000ull;
                    if (waited_ns_for_frame >= 10000000000ull) {
                        rc = vib3_err_set(VIB3_ERR_LIMIT, "%s: page %" PRIu64 ": no frame free for 10 s: all %u frames "
                                          "(%" PRIu64 " bytes each) are pinned; raise --ram-budget",
                                          p->file->path, page, p->n_frames, p->frame_bytes);
                        break;
                    }
                }
                continue;
            }
            p->frames[f].pins = 1;
            pinned = 1;
            demand_read(p, page, f);
            continue;
        }
        frame_meta *fm = &p->frames[f];
        if (!pinned) {
            if (fm->state == FR_READY && fm->pins == 0) cand_remove(p, f);
            fm->pins++;
            pinned = 1;
        }
        if (fm->state == FR_READY) {
            if (!waited) p->st.page_hits++;
            if (fm->prefetched) {
                p->st.prefetch_used++;
                if (waited) p->st.prefetch_late++;
                fm->prefetched = 0;
            }
            fm->readahead = fm->hinted = 0;
            p->page_seen[page] = 1;
            *data = frame_data(p, f);
#ifdef VIB3_CUDA
            if (p->vram && p->evict.page_count[page] >= VRAM_PROMOTE_HEAT)
                (void)vib3_vram_promote(p->vram, page, *data, p->file->pages[page].bytes, p->evict.page_count[page]);
#endif
            break;
        }
        if (fm->state == FR_ERROR) {
            rc = frame_error(p, page, fm);
            if (--fm->pins == 0) frame_free(p, f);
            break;
        }
        /* LOADING: publish completions already posted before counting a fault */
        if (!waited && p->use_uring && p->reap_inline && io_uring_cq_ready(&p->ring)) {
            uring_reap_locked(p);
            continue; /* the frame may be READY now (or even freed after an error) */
        }
        if (!waited) {
            if (promote_frame(p, f)) submit_locked(p);
            if (p->frame_req[f] != VIB3_NONE32 && p->reqs[p->frame_req[f]].queued) p->st.faults_queued++;
            waited = 1;
            p->st.page_faults++;
            p->st.faults_inflight++;
            if (fm->prefetched) p->st.faults_late++;
            else if (p->page_seen[page] == 2) p->st.faults_lost++;
            else p->st.faults_unpredicted++;
            if (p->use_uring && io_uring_cq_ready(&p->ring)) p->st.faults_reapable++;
            t0 = now_ns();
        }
        pthread_cond_wait(&p->done_cv, &p->mu);
    }
    if (waited) p->st.io_wait_ns += now_ns() - t0;
    if (waited && pe->layer < p->file->config->n_layers && p->slot_faulted[slot_key] != tok) {
        p->slot_faulted[slot_key] = tok;
        p->st.expert_faults++;
    }
    trace_access(p, page, waited ? 'm' : 'h');
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void vib3_pages_release(vib3_pages *p, uint64_t page) {
    if (p->backend == VIB3_PAGES_MMAP || page >= p->file->n_pages) return;
    pthread_mutex_lock(&p->mu);
    uint32_t f = p->page_frame[page];
    if (f != VIB3_NONE32 && p->frames[f].pins > 0) {
        frame_meta *fm = &p->frames[f];
#ifdef VIB3_CUDA
        if (fm->pins == 1 && p->vram) vib3_vram_wait(p->vram, page); /* the copy reads the frame */
#endif
        if (--fm->pins == 0) {
            if (fm->state == FR_READY) cand_insert(p, f, page);
            else if (fm->state == FR_ERROR) frame_free(p, f);
            pthread_cond_broadcast(&p->done_cv);
        }
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- prefetch ------------------------------------------------------------------- */
/* hint == 1: a prediction (prefetch FIFO, in-flight budget, counted as
 * prefetch); hint == 0: pages known to be needed (demand FIFO, counted as
 * readahead, bounded only by the frames) */
static void prefetch_locked(vib3_pages *p, const uint64_t *idx, uint32_t n, int hint) {
    uint32_t run_frames[IO_RUN_MAX];
    uint64_t run_first = 0;
    uint32_t run_n = 0;
    uint64_t run_bytes = 0;
    for (uint32_t i = 0; i <= n; i++) {
        uint64_t page = i < n ? idx[i] : UINT64_MAX;
        if (!hint && i < n && page < p->file->n_pages && p->page_frame[page] != VIB3_NONE32) {
            uint32_t g = p->page_frame[page]; /* needed now: a hint that came true, or a cached page */
            frame_meta *gm = &p->frames[g];
            if (gm->state == FR_READY && gm->pins == 0 && gm->in_hints != LIST_NEEDED) {
                cand_remove(p, g);
                gm->readahead = 1;
                cand_insert(p, g, page);
            } else if (gm->state == FR_LOADING) {
                gm->readahead = 1;
                promote_frame(p, g);
            }
        }
        if (hint && i < n && page < p->file->n_pages && p->page_frame[page] != VIB3_NONE32) {
            /* predicted and resident: protect it like a prefetched page until used or expired,
             * so the reads of other predictions cannot push it out first */
            uint32_t g = p->page_frame[page];
            frame_meta *gm = &p->frames[g];
            p->page_seen[page] = 2;
            if (gm->state == FR_READY && gm->pins == 0 && gm->in_hints == LIST_EXPIRED) {
                cand_remove(p, g); /* an expired hint predicted again: protected again */
                cand_insert(p, g, page);
            } else if (p->hint_protect && gm->state == FR_READY && gm->pins == 0 && gm->in_hints == LIST_NONE &&
                       !gm->readahead && !gm->prefetched) {
                cand_remove(p, g);
                gm->hinted = 1;
                cand_insert(p, g, page);
                p->st.hints_resident++;
            }
        }
        int take = i < n && page < p->file->n_pages && p->page_frame[page] == VIB3_NONE32;
        if (take && !hint) {
            if (p->page_seen[page] == 2) p->st.fetch_absent_hinted++;
            else p->st.fetch_absent++;
        }
        if (take && hint) p->page_seen[page] = 2;
        int extend = take && run_n && run_n < IO_RUN_MAX && pages_adjacent(p->file, run_first + run_n - 1, page) &&
                     run_bytes + round_up(p->file->pages[page].bytes, VIB3_PAGE_ALIGN) <= IO_RUN_BYTES_MAX;
        if (run_n && !extend) {
            req_build(p, run_first, run_n, run_frames, hint);
            run_n = 0;
            run_bytes = 0;
        }
        if (!take) continue;
        /* run_n pages already claimed need one request (built below); hints leave REQ_DEMAND_RESERVE */
        if ((hint && p->prefetch_inflight + run_n >= p->prefetch_inflight_max) ||
            p->req_free_count <= (hint ? REQ_DEMAND_RESERVE : 1u) ||
            p->free_count + cand_count(p) <= 1) {
            if (hint) p->st.prefetch_dropped += n - i;
            break;
        }
        uint32_t f = frame_claim(p, page, hint);
        if (f == VIB3_NONE32) {
            if (hint) p->st.prefetch_dropped += n - i;
            break;
        }
        if (hint) {
            p->frames[f].prefetched = 1;
            p->st.prefetch_issued++;
        } else {
            p->frames[f].readahead = 1;
            p->st.readahead_pages++;
        }
        if (run_n == 0) run_first = page;
        run_frames[run_n++] = f;
        run_bytes += round_up(p->file->pages[page].bytes, VIB3_PAGE_ALIGN);
    }
    if (run_n) req_build(p, run_first, run_n, run_frames, hint);
    submit_locked(p);
}

void vib3_pages_prefetch(vib3_pages *p, const uint64_t *idx, uint32_t n) {
    if (p->backend == VIB3_PAGES_MMAP || n == 0) return;
    pthread_mutex_lock(&p->mu);
    if (p->req_free_count > REQ_DEMAND_RESERVE) prefetch_locked(p, idx, n, 1);
    pthread_mutex_unlock(&p->mu);
}

void vib3_pages_fetch(vib3_pages *p, const uint64_t *idx, uint32_t n) {
    if (p->backend == VIB3_PAGES_MMAP || n == 0) return;
    pthread_mutex_lock(&p->mu);
    if (p->req_free_count > 1) prefetch_locked(p, idx, n, 0);
    pthread_mutex_unlock(&p->mu);
}

void vib3_pages_fetch_slot(vib3_pages *p, uint32_t layer, uint32_t slot) {
    uint64_t first;
    uint32_t count;
    if (!vib3_file_slot_pages(p->file, layer, slot, &first, &count)) return;
    uint64_t idx[IO_RUN_MAX];
    for (uint32_t done = 0; done < count;) {
        uint32_t n = count - done < IO_RUN_MAX ? count - done : IO_RUN_MAX;
        for (uint32_t k = 0; k < n; k++) idx[k] = first + done + k;
        vib3_pages_fetch(p, idx, n);
        done += n;
    }
}

void vib3_pages_prefetch_slot(vib3_pages *p, uint32_t layer, uint32_t slot) {
    uint64_t first;
    uint32_t count;
    if (!vib3_file_slot_pages(p->file, layer, slot, &first, &count)) return;
    uint64_t idx[IO_RUN_MAX];
    for (uint32_t done = 0; done < count;) {
        uint32_t n = count - done < IO_RUN_MAX ? count - done : IO_RUN_MAX;
        for (uint32_t k = 0; k < n; k++) idx[k] = first + done + k;
        vib3_pages_prefetch(p, idx, n);
        done += n;
    }
}

void vib3_pages_prefetch_window(vib3_pages *p, uint32_t pages) {
    if (p->backend == VIB3_PAGES_MMAP) return;
    pthread_mutex_lock(&p->mu);
    if (!p->window_fixed) {
        uint32_t cap = (uint32_t)((uint64_t)p->n_frames * 3 / 4), w = pages < cap ? pages : cap;
        if (w > p->prefetch_inflight_max) p->prefetch_inflight_max = w;
        if (w > p->hint_max) p->hint_max = w;
    }
    pthread_mutex_unlock(&p->mu);
}

void vib3_pages_hold_io(vib3_pages *p, int hold) {
    if (p->backend == VIB3_PAGES_MMAP) return;
    pthread_mutex_lock(&p->mu);
    p->io_held = hold;
    if (!hold) {
        if (!p->use_uring) pthread_cond_broadcast(&p->io_cv);
        submit_locked(p);
    }
    pthread_mutex_unlock(&p->mu);
}

void vib3_pages_expire_hints(vib3_pages *p, uint32_t layer) {
    if (p->backend == VIB3_PAGES_MMAP) return;
    pthread_mutex_lock(&p->mu);
    /* hint reads of this layer not yet started and not needed by its routing
     * (a routed page was flagged readahead by the fetch before this call):
     * cancel them, so the disk serves the guesses that can still come true */
    if (p->cancel_expired) {
        for (uint32_t r = p->q_prefetch.head; r != VIB3_NONE32;) {
            io_req *q = &p->reqs[r];
            uint32_t next = q->next, keep = p->file->pages[q->first_page].layer != layer;
            for (uint32_t k = 0; k < q->n_pages && !keep; k++) {
                const frame_meta *fm = &p->frames[q->frames[k]];
                keep = fm->pins || fm->readahead;
            }
            if (!keep) {
                fifo_remove(p, &p->q_prefetch, r);
                for (uint32_t k = 0; k < q->n_pages; k++) p->frames[q->frames[k]].prefetched = 0;
                p->st.prefetch_cancelled += q->n_pages;
                q->result = -ECANCELED;
                req_finish_locked(p, r);
            }
            r = next;
        }
    }
    for (uint32_t f = p->lst_head[LIST_HINTS]; f != VIB3_NONE32;) {
        uint32_t next = p->hint_next[f];
        frame_meta *fm = &p->frames[f];
        if (p->file->pages[fm->page].layer == layer && !fm->readahead) {
            list_unlink(p, f);
            fm->hinted = 0;
            if (fm->prefetched && p->expired_first) list_push(p, LIST_EXPIRED, f);
            else vib3_evict_insert(&p->evict, f, fm->page);
            p->st.hints_expired++;
        }
        f = next;
    }
    pthread_mutex_unlock(&p->mu);
}

void *vib3_pages_vram(vib3_pages *p) {
#ifdef VIB3_CUDA
    return p->vram;
#else
    (void)p;
    return NULL;
#endif
}

int vib3_pages_resident(vib3_pages *p, uint64_t page) {
    if (page >= p->file->n_pages) return 0;
    if (p->backend == VIB3_PAGES_MMAP) return 1;
    pthread_mutex_lock(&p->mu);
    uint32_t f = p->page_frame[page];
    int r = f != VIB3_NONE32 && p->frames[f].state == FR_READY;
    pthread_mutex_unlock(&p->mu);
    return r;
}

void vib3_pages_token_begin(vib3_pages *p) { atomic_fetch_add_explicit(&p->tokens, 1, memory_order_relaxed); }

/* ---- stats / trace ------------------------------------------------------------- */
void vib3_pages_stats_get(const vib3_pages *pc, vib3_pages_stats *s) {
    vib3_pages *p = (vib3_pages *)pc;
    pthread_mutex_lock(&p->mu);
    *s = p->st;
    s->frames_used = p->n_frames - p->free_count;
    s->resident_bytes = s->frames_used * p->frame_bytes;
    pthread_mutex_unlock(&p->mu);
    if (p->backend == VIB3_PAGES_MMAP) {
        s->page_accesses = s->page_hits = atomic_load(&p->mm_accesses);
        s->resident_bytes = p->file->expert_bytes_total;
    }
    s->tokens = atomic_load(&p->tokens);
    s->fault_rate = s->page_accesses ? (double)s->page_faults / (double)s->page_accesses : 0;
    s->expert_fault_rate = s->expert_accesses ? (double)s->expert_faults / (double)s->expert_accesses : 0;
    s->hit_rate = s->page_accesses ? (double)s->page_hits / (double)s->page_accesses : 0;
    s->prefetch_precision = s->prefetch_issued ? (double)s->prefetch_used / (double)s->prefetch_issued : 0;
    uint64_t would_miss = s->prefetch_used + s->page_faults - s->prefetch_late;
    s->prefetch_recall = would_miss ? (double)s->prefetch_used / (double)would_miss : 0;
    s->bytes_read_per_token = s->tokens ? (double)s->bytes_read / (double)s->tokens : 0;
    s->io_wait_ms_per_token = s->tokens ? (double)s->io_wait_ns / 1e6 / (double)s->tokens : 0;
}

vib3_err vib3_pages_trace_open(vib3_pages *p, const char *path) {
    FILE *t = fopen(path, "w");
    if (!t) return vib3_err_set(VIB3_ERR_IO, "%s: cannot open trace file: %s", path, strerror(errno));
    pthread_mutex_lock(&p->mu);
    if (p->trace) fclose(p->trace);
    p->trace = t;
    fprintf(t, "# vib3 page trace v1: A token page layer slot h|m\n");
    fprintf(t, "# file %s pages %" PRIu64 " layers %u slots %u frames %u frame_bytes %" PRIu64 " backend %s evict %s\n",
            p->file->path, p->file->n_pages, p->file->config->n_layers, p->file->n_slots, p->n_frames,
            p->frame_bytes, p->st.backend, p->st.evict);
    pthread_mutex_unlock(&p->mu);
    return VIB3_OK;
}

void vib3_pages_trace_note(vib3_pages *p, const char *fmt, ...) {
    if (!p->trace) return;
    pthread_mutex_lock(&p->mu);
    if (p->trace) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(p->trace, fmt, ap);
        va_end(ap);
        fputc('\n', p->trace);
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- open / close ---------------------------------------------------------------- */
/* the O_DIRECT descriptor, the ring (registered file and frame buffers) and
 * its completion thread, or the pread threads */
static vib3_err io_setup(vib3_pages *p, const vib3_config *cfg, uint32_t qd) {
    const vib3_file *f = p->file;
    uint64_t fb = p->frame_bytes, region = (uint64_t)p->n_frames * fb;
    /* the file, O_DIRECT when the filesystem allows it */
    p->fd = open(f->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    p->direct = p->fd >= 0;
    if (p->fd < 0) p->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0) return vib3_err_set(VIB3_ERR_IO, "%s: cannot open for page reads: %s", f->path, strerror(errno));

    int want_uring = !cfg || cfg->io_uring;
    if (want_uring) {
        unsigned entries = 1;
        while (entries < qd) entries <<= 1;
        int e = io_uring_queue_init(entries, &p->ring, 0);
        if (e == 0) {
            p->ring_ok = 1;
            if (io_uring_register_files(&p->ring, &p->fd, 1) != 0) {
                io_uring_queue_exit(&p->ring);
                p->ring_ok = 0;
            }
        }
    }
    if (p->ring_ok) {
        p->use_uring = 1;
        /* registered buffers: the frame region in chunks of at most 1 GiB */
        p->reg_chunk_bytes = (1ull << 30) / fb * fb;
        uint64_t chunks = p->reg_chunk_bytes ? (region + p->reg_chunk_bytes - 1) / p->reg_chunk_bytes : 0;
        if (chunks && chunks <= 256) {
            struct iovec iov[256];
            for (uint64_t c = 0; c < chunks; c++) {
                iov[c].iov_base = p->frame_base + c * p->reg_chunk_bytes;
                uint64_t left = region - c * p->reg_chunk_bytes;
                iov[c].iov_len = left < p->reg_chunk_bytes ? left : p->reg_chunk_bytes;
            }
            p->fixed_buffers = io_uring_register_buffers(&p->ring, iov, (unsigned)chunks) == 0;
            p->reg_count = (uint32_t)chunks;
        }
        p->cq_efd = eventfd(0, EFD_CLOEXEC);
        p->cq_efd_ok = p->cq_efd >= 0;
        if (p->cq_efd_ok && io_uring_register_eventfd(&p->ring, p->cq_efd) != 0) {
            close(p->cq_efd);
            p->cq_efd_ok = 0;
        }
        if (pthread_create(&p->threads[0], NULL, uring_thread, p) != 0)
            return vib3_err_set(VIB3_ERR_NOMEM, "%s: cannot start the io_uring completion thread", f->path);
        p->n_threads = 1;
        strcpy(p->st.backend, "io_uring");
    } else {
        uint32_t n = qd < IO_PREAD_THREADS_MAX ? qd : IO_PREAD_THREADS_MAX;
        if (n > 4) n = 4;
        for (uint32_t i = 0; i < n; i++) {
            if (pthread_create(&p->threads[i], NULL, pread_thread, p) != 0)
                return vib3_err_set(VIB3_ERR_NOMEM, "%s: cannot start pread thread %u", f->path, i);
            p->n_threads++;
        }
        p->inflight_max = n;
        strcpy(p->st.backend, "pread");
    }
    return VIB3_OK;
}

#ifdef VIB3_CUDA
/* T1: a VRAM pool when a device is present and the pages are Q4_0 or Q4_K16 */
static void vram_setup(vib3_pages *p, const vib3_config *cfg) {
    const vib3_file *f = p->file;
    uint64_t fb = p->frame_bytes, region = (uint64_t)p->n_frames * fb;
    if (vib3_cuda_device_count() > 0 &&
        (f->config->expert_dtype == VIB3_DTYPE_Q4_0 || f->config->expert_dtype == VIB3_DTYPE_Q4_K16)) {
        uint32_t kmax = 32;
        for (uint64_t i = 0; i < f->n_pages; i++)
            if (f->pages[i].n_neurons > kmax) kmax = f->pages[i].n_neurons;
        kmax = (kmax + 31) / 32 * 32;
        if (vib3_vram_open(&p->vram, cfg ? cfg->vram_budget_bytes : 0, fb, f->n_pages, f->config->hidden_size, kmax) ==
            VIB3_OK)
            (void)vib3_vram_register_host(p->vram, p->frame_base, region);
        vib3_err_clear(); /* no VRAM tier is not an error: the CPU serves */
    }
}

/* T1 on the mmap backend (the model fits the RAM budget): slots of the largest page, copies from
 * the mapping (pageable: the driver stages them, so releases never wait), heat = accesses counted
 * in mmap_acquire */
static void mmap_vram_setup(vib3_pages *p, const vib3_config *cfg) {
    const vib3_file *f = p->file;
    if (f->n_pages == 0 ||
        (f->config->expert_dtype != VIB3_DTYPE_Q4_0 && f->config->expert_dtype != VIB3_DTYPE_Q4_K16) ||
        vib3_cuda_device_count() <= 0)
        return;
    uint64_t sb = VIB3_PAGE_ALIGN;
    uint32_t kmax = 32;
    for (uint64_t i = 0; i < f->n_pages; i++) {
        if (round_up(f->pages[i].bytes, VIB3_PAGE_ALIGN) > sb) sb = round_up(f->pages[i].bytes, VIB3_PAGE_ALIGN);
        if (f->pages[i].n_neurons > kmax) kmax = f->pages[i].n_neurons;
    }
    p->vram_count = calloc(f->n_pages, sizeof(uint32_t));
    if (p->vram_count && vib3_vram_open(&p->vram, cfg ? cfg->vram_budget_bytes : 0, sb, f->n_pages,
                                        f->config->hidden_size, (kmax + 31) / 32 * 32) != VIB3_OK) {
        free(p->vram_count);
        p->vram_count = NULL;
    }
    vib3_err_clear();
}
#endif

static vib3_err frames_setup(vib3_pages *p, const vib3_config *cfg, uint64_t frames_bytes, const vib3_pages_opts *o) {
    const vib3_file *f = p->file;
    uint64_t fb = VIB3_PAGE_ALIGN, max_slot_pages = 1;
    for (uint64_t i = 0; i < f->n_pages; i++) {
        uint64_t b = round_up(f->pages[i].bytes, VIB3_PAGE_ALIGN);
        if (b > fb) fb = b;
    }
    for (uint64_t i = 0; i < (uint64_t)f->config->n_layers * f->n_slots; i++)
        if (f->slot_n_pages[i] > max_slot_pages) max_slot_pages = f->slot_n_pages[i];
    p->frame_bytes = fb;
    uint64_t nfr = frames_bytes / fb;
    uint32_t threads = cfg && cfg->threads ? cfg->threads : 2;
    uint64_t min_frames = threads + 2;
    if (nfr < min_frames) {
        /* say what budget would work: the reserve (dense weights + KV + runtime scratch) plus the frames */
        uint64_t need = min_frames * fb;
        if (cfg) {
            vib3_config big = *cfg;
            big.ram_budget_bytes = 1ull << 50;
            need += big.ram_budget_bytes - vib3_pages_frames_budget(f, &big);
        }
        char nb[32];
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: frame budget %" PRIu64 " bytes holds %" PRIu64 " frames of %" PRIu64
                            " bytes; need at least %" PRIu64 " (threads + 2): --ram-budget must be at least %s",
                            f->path, frames_bytes, nfr, fb, min_frames, vib3_format_size(need, nb, sizeof nb));
    }
    if (nfr > UINT32_MAX - 1) nfr = UINT32_MAX - 1;
    p->n_frames = (uint32_t)nfr;
    (void)max_slot_pages;

    uint32_t qd = cfg && cfg->io_queue_depth ? cfg->io_queue_depth : 16;
    if (qd > 4096) qd = 4096;
    p->inflight_max = qd;
    p->n_reqs = qd * 4 + 16;
    /* frame_meta, free list, policy (<= 3 u32 + 3 u64 + 4 u32), FIFO links per frame;
     * page_frame, page_layer, page counts, seen per page; requests */
    uint64_t meta = (uint64_t)p->n_frames * (sizeof(frame_meta) + 4 + 12 + 24 + 16 + 8 + 64) +
                    f->n_pages * (4 * sizeof(uint32_t) + 1 + 64) + (uint64_t)p->n_reqs * (sizeof(io_req) + 64) +
                    (uint64_t)f->config->n_layers * 64 + (1u << 20);
    vib3_err rc = vib3_arena_init(&p->meta_arena, meta, "pages-meta", 0);
    if (rc) return vib3_err_prefix("%s", f->path);
    uint64_t region = (uint64_t)p->n_frames * fb;
    rc = vib3_arena_init(&p->frame_arena, region + HUGE_2M, "pages-frames", VIB3_ARENA_HUGEPAGES);
    if (rc) return vib3_err_prefix("%s: %u frames", f->path, p->n_frames);
    p->frame_base = vib3_arena_alloc(&p->frame_arena, region, HUGE_2M);
    p->frames = vib3_arena_calloc(&p->meta_arena, p->n_frames, sizeof(frame_meta), 0);
    p->free_list = vib3_arena_alloc(&p->meta_arena, (size_t)p->n_frames * sizeof(uint32_t), 0);
    p->frame_req = vib3_arena_alloc(&p->meta_arena, (size_t)p->n_frames * sizeof(uint32_t), 0);
    p->page_frame = vib3_arena_alloc(&p->meta_arena, f->n_pages * sizeof(uint32_t), 0);
    p->reqs = vib3_arena_calloc(&p->meta_arena, p->n_reqs, sizeof(io_req), 0);
    p->req_free = vib3_arena_alloc(&p->meta_arena, p->n_reqs * sizeof(uint32_t), 0);
    if (!p->frame_base || !p->frames || !p->free_list || !p->frame_req || !p->page_frame || !p->reqs || !p->req_free)
        return vib3_err_prefix("%s", f->path);
    rc = vib3_evict_init(&p->evict, &p->meta_arena, p->evict_kind, p->n_frames, f->n_pages);
    if (rc) return vib3_err_prefix("%s", f->path);
    p->page_layer = vib3_arena_alloc(&p->meta_arena, f->n_pages * sizeof(uint32_t), 0);
    p->page_seen = vib3_arena_calloc(&p->meta_arena, f->n_pages, 1, 0);
    if (!p->page_seen) return vib3_err_prefix("%s", f->path);
    size_t n_slot_keys = (size_t)f->config->n_layers * f->n_slots;
    p->slot_used = vib3_arena_calloc(&p->meta_arena, n_slot_keys ? n_slot_keys : 1, sizeof(uint64_t), 0);
    p->slot_faulted = vib3_arena_calloc(&p->meta_arena, n_slot_keys ? n_slot_keys : 1, sizeof(uint64_t), 0);
    if (!p->slot_used || !p->slot_faulted) return vib3_err_prefix("%s", f->path);
    p->hint_prev = vib3_arena_alloc(&p->meta_arena, (size_t)p->n_frames * sizeof(uint32_t), 0);
    p->hint_next = vib3_arena_alloc(&p->meta_arena, (size_t)p->n_frames * sizeof(uint32_t), 0);
    if (!p->page_layer || !p->hint_prev || !p->hint_next) return vib3_err_prefix("%s", f->path);
    for (int l = 0; l < 4; l++) p->lst_head[l] = p->lst_tail[l] = VIB3_NONE32;
    for (uint64_t i = 0; i < f->n_pages; i++) p->page_layer[i] = f->pages[i].layer;
    rc = vib3_evict_set_layers(&p->evict, &p->meta_arena, p->page_layer, f->config->n_layers);
    if (rc) return vib3_err_prefix("%s", f->path);
    /* seed the frequency policy with the converter's expert frequencies */
    if (p->evict_kind != VIB3_EVICT_LRU && f->coact && f->coact->n_tokens) {
        for (uint64_t i = 0; i < f->n_pages; i++) {
            const vib3_page_entry *e = &f->pages[i];
            if (e->kind != VIB3_PAGE_ROUTED || e->layer >= f->coact->n_layers || e->expert >= f->coact->n_experts) continue;
            uint64_t c = f->coact_freq[(uint64_t)e->layer * f->coact->n_experts + e->expert];
            vib3_evict_seed(&p->evict, i, (uint32_t)(c * 16 / f->coact->n_tokens)); /* worth 16 tokens */
        }
        vib3_evict_seed_tokens(&p->evict, 16);
    }
    for (uint32_t i = 0; i < p->n_frames; i++) {
        p->frames[i].page = UINT64_MAX;
        p->free_list[i] = p->n_frames - 1 - i; /* frame 0 first: cold reads land in contiguous frames */
        p->frame_req[i] = VIB3_NONE32;
    }
    p->free_count = p->n_frames;
    for (uint64_t i = 0; i < f->n_pages; i++) p->page_frame[i] = VIB3_NONE32;
    for (uint32_t i = 0; i < p->n_reqs; i++) p->req_free[i] = p->n_reqs - 1 - i;
    p->req_free_count = p->n_reqs;
    p->q_demand.head = p->q_demand.tail = p->q_prefetch.head = p->q_prefetch.tail = VIB3_NONE32;
    p->prefetch_inflight_max = o->prefetch_inflight_max ? o->prefetch_inflight_max : p->n_frames / 4;
    if (p->prefetch_inflight_max == 0) p->prefetch_inflight_max = 1;
    p->hint_max = o->hint_max ? o->hint_max : p->prefetch_inflight_max;
    p->window_fixed = o->prefetch_inflight_max || o->hint_max;
    p->hint_admit = o->hint_admit > 0 ? o->hint_admit * f->config->n_layers : o->hint_admit < 0 ? -1.0 : f->config->n_layers;

    p->reap_inline = !o->no_reap_inline;
    p->hint_protect = !o->no_hint_protect;
    p->expired_first = !o->no_expired_first;
    p->promote_queued = !o->no_promote_queued;
    p->cancel_expired = !o->no_cancel_expired;
    rc = io_setup(p, cfg, qd);
    if (rc) return rc;
#ifdef VIB3_CUDA
    vram_setup(p, cfg);
#endif
    p->st.frames_total = p->n_frames;
    p->st.frame_bytes = fb;
    p->st.fixed_buffers = p->fixed_buffers;
    p->st.direct_io = p->direct;
    return VIB3_OK;
}

vib3_err vib3_pages_open_ex(vib3_pages **out, const vib3_file *f, const vib3_config *cfg, vib3_arena *arena,
                            const vib3_pages_opts *opts) {
    vib3_pages_opts o = opts ? *opts : (vib3_pages_opts){0};
    if (o.readahead < 0) o.readahead = 1;
    vib3_pages *p = vib3_arena_calloc(arena, 1, sizeof *p, 0);
    if (!p) return vib3_err_code();
    p->file = f;
    p->fd = -1;
    p->q_demand.head = p->q_demand.tail = p->q_prefetch.head = p->q_prefetch.tail = VIB3_NONE32;
    p->readahead = o.readahead != 0;
    int k = vib3_evict_kind_from_name(cfg ? cfg->evict : "lfru");
    if (k < 0) return vib3_err_set(VIB3_ERR_INVALID, "--evict %s: unknown policy (lru, lfru, lfuda)", cfg->evict);
    p->evict_kind = (vib3_evict_kind)k;
    const char *pf = cfg && cfg->prefetch[0] ? cfg->prefetch : "auto";
    if (strcmp(pf, "auto") && strcmp(pf, "none") && strcmp(pf, "coact") && strcmp(pf, "lookahead") && strcmp(pf, "both"))
        return vib3_err_set(VIB3_ERR_INVALID, "--prefetch %s: unknown predictor (auto, none, coact, lookahead, both)", pf);
    snprintf(p->prefetch_name, sizeof p->prefetch_name, "%s", pf);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    pthread_cond_init(&p->io_cv, NULL);
    snprintf(p->st.evict, sizeof p->st.evict, "%s", vib3_evict_kind_name(p->evict_kind));
    snprintf(p->st.prefetch, sizeof p->st.prefetch, "%s", pf);

    uint64_t frames_bytes = o.frames_bytes ? o.frames_bytes : vib3_pages_frames_budget(f, cfg);
    p->st.frames_budget_bytes = frames_bytes;
    int backend = o.backend;
    if (backend == VIB3_PAGES_AUTO) backend = frames_bytes >= f->expert_bytes_total ? VIB3_PAGES_MMAP : VIB3_PAGES_FRAMES;
    if (f->fd < 0 && backend == VIB3_PAGES_FRAMES)
        backend = VIB3_PAGES_MMAP; /* in-memory image: nothing to read from */
    p->backend = backend;
    if (backend == VIB3_PAGES_MMAP) {
        p->verified = vib3_arena_calloc(arena, f->n_pages ? f->n_pages : 1, 1, 0);
        if (!p->verified) return vib3_err_code();
        strcpy(p->st.backend, "mmap");
        strcpy(p->st.evict, "none");
#ifdef VIB3_CUDA
        mmap_vram_setup(p, cfg);
#endif
        *out = p;
        return VIB3_OK;
    }
    vib3_err rc = frames_setup(p, cfg, frames_bytes, &o);
    if (rc) {
        vib3_pages_close(p);
        return rc;
    }
    *out = p;
    return VIB3_OK;
}

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

vib3_err vib3_pages_open(vib3_pages **out, const vib3_file *f, const vib3_config *cfg, vib3_arena *arena) {
    vib3_pages_opts o = {0};
    o.readahead = env_int("VIB3_READAHEAD", -1);
    o.prefetch_inflight_max = (uint32_t)env_int("VIB3_PREFETCH_INFLIGHT", 0);
    o.no_reap_inline = env_int("VIB3_REAP_INLINE", 1) == 0;
    o.no_hint_protect = env_int("VIB3_HINT_PROTECT", 1) == 0;
    o.no_expired_first = env_int("VIB3_EXPIRED_FIRST", 1) == 0;
    o.no_promote_queued = env_int("VIB3_PROMOTE_QUEUED", 1) == 0;
    o.no_cancel_expired = env_int("VIB3_CANCEL_EXPIRED", 1) == 0;
    o.hint_max = (uint32_t)env_int("VIB3_HINT_MAX", 0);
    const char *ha = getenv("VIB3_HINT_ADMIT");
    o.hint_admit = ha && *ha ? atof(ha) : 0;
    const char *b = getenv("VIB3_PAGES_BACKEND");
    if (b && !strcmp(b, "mmap")) o.backend = VIB3_PAGES_MMAP;
    if (b && !strcmp(b, "frames")) o.backend = VIB3_PAGES_FRAMES;
    const char *eb = getenv("VIB3_EXPERT_BUDGET");
    if (eb && *eb) {
        size_t n = strlen(eb);
        if (eb[n - 1] == '%') {
            double pct = atof(eb);
            if (pct <= 0) return vib3_err_set(VIB3_ERR_INVALID, "VIB3_EXPERT_BUDGET=%s: bad percentage", eb);
            o.frames_bytes = (uint64_t)((double)f->expert_bytes_total * pct / 100.0);
            if (o.frames_bytes == 0) o.frames_bytes = 1;
        } else {
            vib3_err rc = vib3_parse_size(eb, &o.frames_bytes);
            if (rc) return vib3_err_prefix("VIB3_EXPERT_BUDGET");
        }
        if (o.backend == VIB3_PAGES_AUTO && o.frames_bytes < f->expert_bytes_total) o.backend = VIB3_PAGES_FRAMES;
    }
    return vib3_pages_open_ex(out, f, cfg, arena, &o);
}

void vib3_pages_close(vib3_pages *p) {
    if (!p) return;
    if (p->backend == VIB3_PAGES_FRAMES && p->frames && p->n_threads) {
        pthread_mutex_lock(&p->mu);
        /* drop queued hints, let reads in flight finish */
        uint32_t r;
        while ((r = fifo_pop(p, &p->q_prefetch)) != VIB3_NONE32) {
            p->reqs[r].result = -ECANCELED;
            req_finish_locked(p, r);
        }
        while (p->inflight || p->q_demand.head != VIB3_NONE32) {
            if (!p->use_uring) pthread_cond_broadcast(&p->io_cv);
            pthread_cond_wait(&p->done_cv, &p->mu);
        }
        p->stopping = 1;
        pthread_cond_broadcast(&p->io_cv);
        if (p->use_uring && p->n_threads) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
            if (sqe) {
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data64(sqe, WAKE_USER_DATA);
                io_uring_submit(&p->ring);
            }
        }
        pthread_mutex_unlock(&p->mu);
        for (uint32_t i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
        p->n_threads = 0;
    }
#ifdef VIB3_CUDA
    if (p->vram) vib3_vram_close(p->vram);
    p->vram = NULL;
    free(p->vram_count);
    p->vram_count = NULL;
#endif
    if (p->ring_ok) {
        io_uring_queue_exit(&p->ring);
        p->ring_ok = 0;
    }
    if (p->cq_efd_ok) close(p->cq_efd);
    p->cq_efd_ok = 0;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    if (p->trace) fclose(p->trace);
    p->trace = NULL;
    vib3_arena_fini(&p->frame_arena);
    vib3_arena_fini(&p->meta_arena);
    p->frames = NULL;
    pthread_cond_destroy(&p->io_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
}
