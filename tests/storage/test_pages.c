/* test_pages.c — the frame buffer manager against the mmap path: identical
 * bytes under tight budgets for io_uring and pread, LRU and LFRU, with and
 * without readahead; pinned pages survive pressure; a flipped byte in the
 * file fails only that page's acquire; VIB3_FAULT_READ fails the Nth read
 * (once and persistently) and the engine recovers; prefetch hints turn
 * faults into hits; concurrent acquirers see the right bytes. */
#include <pthread.h>
#include <unistd.h>

#include "core/fault.h"
#include "storage/pages.h"
#include "tests/storage/open_fixture.h"
#include "tests/test.h"

/* 4 layers x 8 experts x 8 pages of 32 Q4_0 neurons (3456 bytes -> 4096 frames) = 256 pages */
static const fixture_opts opts = {4, 8, 64, 256, 32, 32, VIB3_DTYPE_Q4_0, 7};
static vib3_arena arena;
static vib3_file file;
static int have_file;

static const vib3_file *fixture(void) {
    if (!have_file) have_file = fixture_open_tmp(&opts, "pages.vib3", &arena, &file) == 0;
    return have_file ? &file : NULL;
}

static void test_cfg(vib3_config *c, const char *evict, int uring) {
    vib3_config_defaults(c);
    snprintf(c->evict, sizeof c->evict, "%s", evict);
    c->io_uring = uring;
    c->io_queue_depth = 4;
    c->threads = 2;
}

/* acquire every page in a pseudo-random order, comparing with the mapping */
static void check_identical(const char *evict, int uring, int readahead, uint32_t frames) {
    const vib3_file *f = fixture();
    CHECK(f != NULL);
    if (!f) return;
    vib3_config cfg;
    test_cfg(&cfg, evict, uring);
    vib3_pages_opts o = {.frames_bytes = (uint64_t)frames * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = readahead};
    vib3_pages *p = NULL;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_STR(s.backend, uring ? "io_uring" : "pread");
    CHECK_EQ_U64(s.frames_total, frames);
    uint64_t seed = 42, bad = 0, n_acq = 0;
    for (int round = 0; round < 6; round++) {
        vib3_pages_token_begin(p);
        for (uint64_t k = 0; k < f->n_pages; k++) {
            /* skewed: half the accesses go to 1/8 of the pages */
            uint64_t r = vib3_test_rand(&seed);
            uint64_t page = (r & 1) ? (r >> 8) % (f->n_pages / 8) : (r >> 8) % f->n_pages;
            const void *d = NULL;
            vib3_err rc = vib3_pages_acquire(p, page, &d);
            CHECK_OK(rc);
            if (rc) continue;
            n_acq++;
            if (memcmp(d, f->map + f->pages[page].offset, f->pages[page].bytes) != 0) bad++;
            vib3_pages_release(p, page);
        }
    }
    CHECK_EQ_U64(bad, 0);
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.page_accesses, n_acq);
    CHECK_EQ_U64(s.page_hits + s.page_faults, s.page_accesses);
    CHECK(s.page_faults > 0);
    CHECK(s.evictions > 0);
    CHECK(s.frames_used <= frames);
    CHECK_EQ_U64(s.checksum_errors + s.io_errors, 0);
    CHECK(s.bytes_read >= s.page_faults * 3456);
    CHECK_EQ_U64(s.tokens, 6);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}

TEST(identical_uring_lru) { check_identical("lru", 1, 1, 16); }
TEST(identical_uring_lfru) { check_identical("lfru", 1, 1, 16); }
TEST(identical_uring_noreadahead_tight) { check_identical("lfru", 1, 0, 4); }
TEST(identical_pread_lru) { check_identical("lru", 0, 1, 16); }
TEST(identical_pread_lfru_tight) { check_identical("lfru", 0, 0, 5); }
TEST(identical_uring_roomy) { check_identical("lru", 1, 1, 200); }

TEST(mmap_backend_when_experts_fit) {
    const vib3_file *f = fixture();
    CHECK(f != NULL);
    if (!f) return;
    vib3_config cfg;
    test_cfg(&cfg, "lfru", 1);
    vib3_pages_opts o = {.frames_bytes = f->expert_bytes_total};
    vib3_pages *p = NULL;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    const void *d;
    CHECK_OK(vib3_pages_acquire(p, 5, &d));
    CHECK(d == f->map + f->pages[5].offset);
    vib3_pages_release(p, 5);
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_STR(s.backend, "mmap");
    CHECK_EQ_U64(s.page_hits, 1);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}

TEST(budget_rule) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    test_cfg(&cfg, "lru", 1);
    cfg.ram_budget_bytes = 1ull << 30;
    cfg.ctx_size = 128;
    uint64_t kv = 4ull * 128 * 2 * (16 + 16) * 4;
    CHECK_EQ_U64(vib3_pages_frames_budget(f, &cfg), (1ull << 30) - f->dense_bytes_total - kv - (64ull << 20));
    cfg.ram_budget_bytes = 1u << 20; /* below the dense weights + scratch */
    CHECK_EQ_U64(vib3_pages_frames_budget(f, &cfg), 0);
    vib3_pages_opts o = {.frames_bytes = 4096, .backend = VIB3_PAGES_FRAMES};
    vib3_pages *p = NULL;
    size_t mark = vib3_arena_mark(&arena);
    CHECK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o) == VIB3_ERR_LIMIT);
    CHECK(strstr(vib3_err_msg(), "ram-budget") != NULL);
    vib3_arena_reset(&arena, mark);
}

/* pinned pages keep their bytes while every other frame is recycled */
TEST(pins_survive_pressure) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    for (int pol = 0; pol < 2; pol++) {
        vib3_config cfg;
        test_cfg(&cfg, pol ? "lfru" : "lru", 1);
        vib3_pages_opts o = {.frames_bytes = 8 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 1};
        vib3_pages *p = NULL;
        size_t mark = vib3_arena_mark(&arena);
        CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
        if (!p) return;
        const uint64_t pinned[5] = {3, 17, 64, 65, 200};
        const void *pd[5];
        for (int i = 0; i < 5; i++) CHECK_OK(vib3_pages_acquire(p, pinned[i], &pd[i]));
        for (uint64_t k = 0; k < f->n_pages; k++) {
            const void *d;
            if (vib3_pages_acquire(p, k, &d) == VIB3_OK) {
                CHECK(memcmp(d, f->map + f->pages[k].offset, f->pages[k].bytes) == 0);
                vib3_pages_release(p, k);
            } else {
                CHECK_MSG(0, "acquire %llu: %s", (unsigned long long)k, vib3_err_msg());
            }
        }
        for (int i = 0; i < 5; i++) {
            CHECK(memcmp(pd[i], f->map + f->pages[pinned[i]].offset, f->pages[pinned[i]].bytes) == 0);
            CHECK(vib3_pages_resident(p, pinned[i]));
            vib3_pages_release(p, pinned[i]);
        }
        vib3_pages_close(p);
        vib3_arena_reset(&arena, mark);
    }
}

/* a flipped byte in one page: that acquire fails with a clear message, the others work, retries fail again */
TEST(checksum_corruption) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/corrupt.vib3", vib3_test_tmpdir());
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", f->path, bad);
    CHECK(system(cmd) == 0);
    const uint64_t victim = 77;
    FILE *fp = fopen(bad, "r+b");
    CHECK(fp != NULL);
    if (!fp) return;
    fseek(fp, (long)(f->pages[victim].offset + 100), SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)(f->pages[victim].offset + 100), SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
    vib3_file bf;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_file_open(&bf, bad, &arena, 0));
    for (int uring = 0; uring < 2; uring++) {
        vib3_config cfg;
        test_cfg(&cfg, "lfru", uring);
        vib3_pages_opts o = {.frames_bytes = 12 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 1};
        vib3_pages *p = NULL;
        size_t m2 = vib3_arena_mark(&arena);
        CHECK_OK(vib3_pages_open_ex(&p, &bf, &cfg, &arena, &o));
        if (!p) break;
        const void *d;
        /* the page before it reads it as readahead: the neighbour is fine */
        CHECK_OK(vib3_pages_acquire(p, victim - 1, &d));
        vib3_pages_release(p, victim - 1);
        for (int attempt = 0; attempt < 2; attempt++) {
            vib3_err rc = vib3_pages_acquire(p, victim, &d);
            CHECK_EQ_I64(rc, VIB3_ERR_CHECKSUM);
            CHECK(strstr(vib3_err_msg(), "page 77 ") != NULL);
            CHECK(strstr(vib3_err_msg(), "checksum mismatch") != NULL);
            CHECK(strstr(vib3_err_msg(), "corrupt.vib3") != NULL);
        }
        for (uint64_t k = 60; k < 100; k++) {
            if (k == victim) continue;
            CHECK_OK(vib3_pages_acquire(p, k, &d));
            CHECK(memcmp(d, f->map + f->pages[k].offset, f->pages[k].bytes) == 0);
            vib3_pages_release(p, k);
        }
        vib3_pages_stats s;
        vib3_pages_stats_get(p, &s);
        CHECK(s.checksum_errors >= 2);
        CHECK_EQ_U64(s.io_errors, 0);
        vib3_pages_close(p);
        vib3_arena_reset(&arena, m2);
    }
    /* the mmap backend reports the same page */
    vib3_config cfg;
    test_cfg(&cfg, "lfru", 1);
    vib3_pages_opts o = {.backend = VIB3_PAGES_MMAP};
    vib3_pages *p = NULL;
    CHECK_OK(vib3_pages_open_ex(&p, &bf, &cfg, &arena, &o));
    const void *d;
    CHECK_EQ_I64(vib3_pages_acquire(p, victim, &d), VIB3_ERR_CHECKSUM);
    CHECK_OK(vib3_pages_acquire(p, victim + 1, &d));
    vib3_pages_close(p);
    vib3_file_close(&bf);
    vib3_arena_reset(&arena, mark);
}

/* SQLite's loop: fail read N for N = 1, 2, ... once, then persistently; the
 * failing acquire reports it, data is never wrong, the engine recovers */
TEST(injected_read_failures) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    for (int uring = 0; uring < 2; uring++)
        for (int persist = 0; persist < 2; persist++)
            for (uint64_t nth = 1; nth <= 4; nth++) {
                vib3_config cfg;
                test_cfg(&cfg, "lru", uring);
                vib3_pages_opts o = {.frames_bytes = 6 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 0};
                vib3_pages *p = NULL;
                size_t mark = vib3_arena_mark(&arena);
                CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
                if (!p) return;
                vib3_fault_arm(VIB3_FAULT_READ, nth, persist);
                uint64_t failed = 0;
                for (uint64_t k = 0; k < 8; k++) {
                    const void *d;
                    vib3_err rc = vib3_pages_acquire(p, k * 9, &d);
                    if (rc == VIB3_OK) {
                        CHECK(memcmp(d, f->map + f->pages[k * 9].offset, f->pages[k * 9].bytes) == 0);
                        vib3_pages_release(p, k * 9);
                    } else {
                        failed++;
                        CHECK_EQ_I64(rc, VIB3_ERR_IO);
                        CHECK(strstr(vib3_err_msg(), "injected") != NULL);
                    }
                }
                vib3_fault_disarm(VIB3_FAULT_READ);
                CHECK_EQ_U64(failed, persist ? 8 - (nth - 1) : 1);
                /* recovered: everything reads again */
                for (uint64_t k = 0; k < 8; k++) {
                    const void *d;
                    CHECK_OK(vib3_pages_acquire(p, k * 9, &d));
                    vib3_pages_release(p, k * 9);
                }
                vib3_pages_stats s;
                vib3_pages_stats_get(p, &s);
                CHECK_EQ_U64(s.io_errors, failed);
                vib3_pages_close(p);
                vib3_arena_reset(&arena, mark);
            }
}

TEST(prefetch_hits) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    test_cfg(&cfg, "lfru", 1);
    vib3_pages_opts o = {.frames_bytes = 32 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 0,
                         .prefetch_inflight_max = 16};
    vib3_pages *p = NULL;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    vib3_pages_prefetch_slot(p, 2, 5); /* 8 pages */
    uint64_t first;
    uint32_t count;
    CHECK(vib3_file_slot_pages(f, 2, 5, &first, &count));
    for (int spin = 0; spin < 2000 && !vib3_pages_resident(p, first + count - 1); spin++) usleep(1000);
    for (uint32_t k = 0; k < count; k++) {
        const void *d;
        CHECK_OK(vib3_pages_acquire(p, first + k, &d));
        CHECK(memcmp(d, f->map + f->pages[first + k].offset, f->pages[first + k].bytes) == 0);
        vib3_pages_release(p, first + k);
    }
    /* a hint for pages that are never used is waste once they are evicted */
    vib3_pages_prefetch_slot(p, 0, 0);
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.prefetch_issued, 16);
    CHECK_EQ_U64(s.prefetch_used, 8);
    CHECK(s.page_hits + s.prefetch_late == 8);
    CHECK(s.prefetch_precision > 0.49 && s.prefetch_precision < 0.51);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}

/* ---- concurrency --------------------------------------------------------- */
typedef struct worker { vib3_pages *p; const vib3_file *f; uint64_t seed, bad, errors; } worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 1500; i++) {
        uint64_t r = vib3_test_rand(&w->seed);
        uint64_t page = (r >> 8) % w->f->n_pages;
        const void *d;
        if (vib3_pages_acquire(w->p, page, &d) != VIB3_OK) {
            w->errors++;
            continue;
        }
        if (memcmp(d, w->f->map + w->f->pages[page].offset, w->f->pages[page].bytes)) w->bad++;
        if (r & 1) {
            uint64_t next = (page + 8) % w->f->n_pages;
            vib3_pages_prefetch(w->p, &next, 1);
        }
        vib3_pages_release(w->p, page);
    }
    return NULL;
}

TEST(concurrent_acquirers) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    for (int uring = 0; uring < 2; uring++) {
        vib3_config cfg;
        test_cfg(&cfg, uring ? "lfru" : "lru", uring);
        cfg.threads = 4;
        vib3_pages_opts o = {.frames_bytes = 24 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 1};
        vib3_pages *p = NULL;
        size_t mark = vib3_arena_mark(&arena);
        CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
        if (!p) return;
        worker w[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            w[i] = (worker){p, f, 1000 + (uint64_t)i, 0, 0};
            pthread_create(&t[i], NULL, worker_main, &w[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            CHECK_EQ_U64(w[i].bad, 0);
            CHECK_EQ_U64(w[i].errors, 0);
        }
        vib3_pages_stats s;
        vib3_pages_stats_get(p, &s);
        CHECK_EQ_U64(s.page_accesses, 6000);
        CHECK(s.frames_used <= 24);
        vib3_pages_close(p);
        vib3_arena_reset(&arena, mark);
    }
}

/* the I/O request pool exhausted by fetches and hints while many threads miss: demand reads wait for
 * a completion instead of building a request without one (a segfault in storage_run at scale) */
static void *exhaust_main(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 300; i++) {
        uint64_t r = vib3_test_rand(&w->seed);
        uint64_t page = (r >> 8) % w->f->n_pages, more[8];
        for (int k = 0; k < 8; k++) more[k] = (page + 3 + (uint64_t)k * 5) % w->f->n_pages;
        if (r & 2) vib3_pages_fetch(w->p, more, 8);
        else vib3_pages_prefetch(w->p, more, 8);
        const void *d;
        if (vib3_pages_acquire(w->p, page, &d) != VIB3_OK) {
            w->errors++;
            continue;
        }
        if (memcmp(d, w->f->map + w->f->pages[page].offset, w->f->pages[page].bytes)) w->bad++;
        vib3_pages_release(w->p, page);
    }
    return NULL;
}

TEST(request_pool_exhaustion) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    enum { T = 24 };
    vib3_config cfg;
    test_cfg(&cfg, "lfru", 1);
    cfg.threads = T;
    cfg.io_queue_depth = 1; /* 20 requests for 24 threads */
    vib3_pages_opts o = {.frames_bytes = 64 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 1,
                         .prefetch_inflight_max = 48};
    vib3_pages *p = NULL;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    worker w[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        w[i] = (worker){p, f, 77 + (uint64_t)i, 0, 0};
        pthread_create(&t[i], NULL, exhaust_main, &w[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_U64(w[i].bad, 0);
        CHECK_EQ_U64(w[i].errors, 0);
    }
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.page_accesses, T * 300);
    fprintf(stderr, "  %llu demand misses waited for a free request\n", (unsigned long long)s.demand_waits_for_request);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}

/* SQLite's OOM loop: allocation N fails for N = 1, 2, ... until open succeeds;
 * every failure is a clean VIB3_ERR_NOMEM and a half-built manager closes */
TEST(open_allocation_failures) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    int opened = 0;
    for (uint64_t nth = 1; nth < 400 && !opened; nth++) {
        vib3_config cfg;
        test_cfg(&cfg, nth % 2 ? "lfru" : "lru", (int)(nth % 3 != 0));
        vib3_pages_opts o = {.frames_bytes = 16 * 4096, .backend = VIB3_PAGES_FRAMES};
        vib3_pages *p = NULL;
        size_t mark = vib3_arena_mark(&arena);
        vib3_fault_arm(VIB3_FAULT_ALLOC, nth, false);
        vib3_err rc = vib3_pages_open_ex(&p, f, &cfg, &arena, &o);
        vib3_fault_disarm(VIB3_FAULT_ALLOC);
        if (rc == VIB3_OK) {
            const void *d;
            CHECK_OK(vib3_pages_acquire(p, 3, &d));
            vib3_pages_release(p, 3);
            vib3_pages_close(p);
            opened = 1;
        } else {
            CHECK_EQ_I64(rc, VIB3_ERR_NOMEM);
        }
        vib3_arena_reset(&arena, mark);
    }
    CHECK(opened);
}

/* hints of a routed layer that the routing did not choose lose their
 * protection; fetched ones keep it until used */
TEST(hint_expiry) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    test_cfg(&cfg, "lfru", 1);
    vib3_pages_opts o = {.frames_bytes = 40 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 0,
                         .prefetch_inflight_max = 16};
    vib3_pages *p = NULL;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    uint64_t a, b;
    uint32_t na, nb;
    CHECK(vib3_file_slot_pages(f, 2, 5, &a, &na) && vib3_file_slot_pages(f, 2, 6, &b, &nb));
    vib3_pages_prefetch_slot(p, 2, 5);
    vib3_pages_prefetch_slot(p, 2, 6);
    for (int spin = 0; spin < 2000 && !(vib3_pages_resident(p, a + na - 1) && vib3_pages_resident(p, b + nb - 1)); spin++)
        usleep(1000);
    vib3_pages_fetch_slot(p, 2, 5); /* routing chose expert 5 */
    vib3_pages_expire_hints(p, 2);
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.hints_expired, nb);
    CHECK_EQ_U64(s.readahead_pages, 0); /* resident already: nothing read */
    /* fill the rest of the frames: the expired hints go first, the fetched pages stay */
    for (uint64_t k = 0; k < 30; k++) { /* 6 more than free: 6 evictions */
        const void *d;
        CHECK_OK(vib3_pages_acquire(p, 100 + k, &d));
        vib3_pages_release(p, 100 + k);
    }
    for (uint32_t k = 0; k < na; k++) CHECK(vib3_pages_resident(p, a + k));
    vib3_pages_stats_get(p, &s);
    CHECK(s.wasted_prefetch_bytes > 0);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}

/* reads still queued behind other hints: a page that becomes needed moves its
 * read to the demand queue; the reads of a routed layer's wrong guesses are
 * cancelled unread (and each switch off is caught) */
static void check_queued_hints(int promote, int cancel, int uring) {
    const vib3_file *f = fixture();
    if (!f) return;
    vib3_config cfg;
    test_cfg(&cfg, "lfru", uring);
    vib3_pages_opts o = {.frames_bytes = 64 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 0,
                         .prefetch_inflight_max = 40, .no_promote_queued = !promote, .no_cancel_expired = !cancel};
    vib3_pages *p = NULL;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    uint64_t a, b, c;
    uint32_t na, nb, nc;
    CHECK(vib3_file_slot_pages(f, 1, 2, &a, &na) && vib3_file_slot_pages(f, 1, 3, &b, &nb) &&
          vib3_file_slot_pages(f, 1, 4, &c, &nc));
    vib3_pages_hold_io(p, 1);
    vib3_pages_prefetch_slot(p, 1, 2);
    vib3_pages_prefetch_slot(p, 1, 3);
    vib3_pages_prefetch_slot(p, 1, 4); /* all three queued, none on the device */
    vib3_pages_fetch_slot(p, 1, 4);    /* routing chose expert 4: its read jumps the queue */
    vib3_pages_expire_hints(p, 1);     /* experts 2 and 3 were wrong guesses */
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.prefetch_promoted, (promote ? nc : 0));
    CHECK_EQ_U64(s.prefetch_cancelled, (cancel ? (uint64_t)na + nb : 0));
    vib3_pages_hold_io(p, 0);
    for (uint32_t k = 0; k < nc; k++) {
        const void *d;
        CHECK_OK(vib3_pages_acquire(p, c + k, &d));
        CHECK(memcmp(d, f->map + f->pages[c + k].offset, f->pages[c + k].bytes) == 0);
        vib3_pages_release(p, c + k);
    }
    for (int spin = 0; spin < 2000 && !cancel && !vib3_pages_resident(p, b + nb - 1); spin++) usleep(1000);
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.bytes_read, ((uint64_t)f->pages[c].bytes * (cancel ? nc : na + nb + nc)));
    CHECK(vib3_pages_resident(p, a) == !cancel && vib3_pages_resident(p, b) == !cancel);
    CHECK_EQ_U64(s.io_errors, 0);
    /* a cancelled page asked for later is read normally */
    const void *d;
    CHECK_OK(vib3_pages_acquire(p, a, &d));
    CHECK(memcmp(d, f->map + f->pages[a].offset, f->pages[a].bytes) == 0);
    vib3_pages_release(p, a);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}

TEST(queued_hints_promoted_and_cancelled) {
    if (!fixture()) SKIP("no fixture");
    check_queued_hints(1, 1, 1);
    check_queued_hints(0, 1, 1);
    check_queued_hints(1, 0, 1);
    check_queued_hints(0, 0, 1);
    check_queued_hints(1, 1, 0); /* pread workers */
}

/* expert-level counters: one access and at most one fault per (layer, expert) and token */
TEST(expert_level_faults) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    test_cfg(&cfg, "lru", 1);
    vib3_pages_opts o = {.frames_bytes = 64 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 1};
    vib3_pages *p = NULL;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    for (uint32_t tok = 0; tok < 3; tok++) {
        vib3_pages_token_begin(p);
        for (uint32_t e = 0; e < 2; e++) { /* token: layer 3, experts 0 and 1, every page twice */
            uint64_t first;
            uint32_t n;
            CHECK(vib3_file_slot_pages(f, 3, e, &first, &n));
            for (int twice = 0; twice < 2; twice++)
                for (uint32_t k = 0; k < n; k++) {
                    const void *d;
                    CHECK_OK(vib3_pages_acquire(p, first + k, &d));
                    vib3_pages_release(p, first + k);
                }
        }
    }
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.expert_accesses, 6);
    CHECK_EQ_U64(s.expert_faults, 2); /* cold in token 1, resident after */
    CHECK(s.page_faults >= s.expert_faults);
    CHECK(s.expert_fault_rate > 0.33 && s.expert_fault_rate < 0.34);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}
