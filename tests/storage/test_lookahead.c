/* test_lookahead.c — the predictor's hints reach the buffer manager as
 * designed (deterministic, on the 4-layer x 8-expert fixture):
 *   - two-layer look-ahead: at layer l the pages of exactly the top k + margin
 *     experts of layer l+1's and of layer l+2's router (applied to layer l's
 *     input) are read, nothing else besides the routed experts of layer l;
 *   - wrap: at the last layers the next token's first layers are hinted;
 *     depth 1 without wrap hints nothing at the last layer (the old planner);
 *   - the mass threshold takes k experts when the router is sure and more
 *     when it is not;
 *   - a hint for a resident page protects it until its layer is routed;
 *   - faults are split into late / lost / unpredicted and the parts add up;
 *   - prefetched pages never used, whose layer was routed elsewhere, are the
 *     first victims.
 * A regression in any of these makes a CHECK fail (no timing involved:
 * reads are waited for with vib3_pages_resident). */
#include <unistd.h>

#include "index/prefetch.h"
#include "storage/pages.h"
#include "tests/storage/open_fixture.h"
#include "tests/test.h"

/* 4 layers x 8 experts x 8 pages of 32 Q4_0 neurons (frames of 4096 bytes) = 256 pages */
static const fixture_opts opts = {4, 8, 64, 256, 32, 32, VIB3_DTYPE_Q4_0, 11};
static vib3_arena arena;
static vib3_file file;
static int have_file;

static const vib3_file *fixture(void) {
    if (!have_file) have_file = fixture_open_tmp(&opts, "lookahead.vib3", &arena, &file) == 0;
    return have_file ? &file : NULL;
}

static void cfg_for(vib3_config *c, const char *mode) {
    vib3_config_defaults(c);
    snprintf(c->prefetch, sizeof c->prefetch, "%s", mode);
    snprintf(c->evict, sizeof c->evict, "lfru");
    c->io_queue_depth = 8;
    c->threads = 2;
}

/* router of layer t times x: the reference the predictor must agree with */
static void router_scores(const vib3_file *f, uint32_t t, const float *x, float *s) {
    char name[64];
    snprintf(name, sizeof name, "blk.%u.ffn_gate_inp.weight", t);
    const vib3_tensor_entry *te = vib3_file_find_tensor(f, name);
    const float *w = te ? vib3_file_tensor_data(f, te) : NULL;
    for (uint32_t e = 0; e < 8; e++) {
        s[e] = 0;
        for (uint32_t i = 0; i < 64 && w; i++) s[e] += w[e * 64 + i] * x[i];
    }
}

/* set[e] = 1 for the n largest scores */
static void top_set(const float *s, uint32_t n, uint8_t *set) {
    memset(set, 0, 8);
    for (uint32_t i = 0; i < n; i++) {
        int best = -1;
        for (int e = 0; e < 8; e++)
            if (!set[e] && (best < 0 || s[e] > s[best])) best = e;
        set[best] = 1;
    }
}

/* every page of (layer, expert) resident (waits for reads in flight), or none of them */
static int slot_state(vib3_pages *p, const vib3_file *f, uint32_t layer, uint32_t e, int wait) {
    uint64_t first;
    uint32_t n;
    if (!vib3_file_slot_pages(f, layer, vib3_file_slot(f, VIB3_PAGE_ROUTED, e), &first, &n)) return -1;
    for (int spin = 0; wait && spin < 3000; spin++) {
        int all = 1;
        for (uint32_t k = 0; k < n; k++) all &= vib3_pages_resident(p, first + k);
        if (all) break;
        usleep(1000);
    }
    uint32_t res = 0;
    for (uint32_t k = 0; k < n; k++) res += (uint32_t)vib3_pages_resident(p, first + k);
    return res == n ? 1 : res == 0 ? 0 : 2;
}

static vib3_pages *open_pages(const vib3_file *f, vib3_config *cfg, uint32_t frames) {
    vib3_pages_opts o = {.frames_bytes = (uint64_t)frames * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 0,
                         .prefetch_inflight_max = 256, .hint_max = 128};
    vib3_pages *p = NULL;
    CHECK_OK(vib3_pages_open_ex(&p, f, cfg, &arena, &o));
    return p;
}

/* hook at `layer` with routed experts {a, b}; then the pages resident must be
 * exactly: the routed experts of `layer` and the expected hints per layer */
static void check_hook(const vib3_file *f, uint32_t depth, int wrap, uint32_t layer, const uint8_t want[4][8],
                       const float *x) {
    vib3_config cfg;
    cfg_for(&cfg, "lookahead");
    size_t mark = vib3_arena_mark(&arena);
    vib3_pages *p = open_pages(f, &cfg, 300); /* every page fits: nothing is evicted */
    vib3_prefetcher *pf = NULL;
    if (p) CHECK_OK(vib3_prefetcher_open(&pf, f, p, &cfg, &arena));
    if (!p || !pf) return;
    vib3_prefetcher_set_lookahead(pf, depth, 0, wrap);
    int32_t ex[2] = {3, 6};
    vib3_prefetcher_moe_hook(pf, layer, x, 1, ex, 2);
    uint32_t expect_hinted = 0;
    for (uint32_t l = 0; l < 4; l++)
        for (uint32_t e = 0; e < 8; e++) {
            int expect = want[l][e] || (l == layer && (e == 3 || e == 6));
            if (want[l][e] && !(l == layer && (e == 3 || e == 6))) expect_hinted++;
            int st = slot_state(p, f, l, e, expect);
            CHECK_MSG(st == expect, "depth %u wrap %d hook at layer %u: layer %u expert %u resident %d, expected %d",
                      depth, wrap, layer, l, e, st, expect);
        }
    vib3_prefetch_stats s;
    vib3_prefetcher_stats_get(pf, &s);
    CHECK_EQ_U64(s.experts_hinted, expect_hinted);
    CHECK_EQ_U64(s.experts_fetched, 2);
    vib3_pages_stats ps;
    vib3_pages_stats_get(p, &ps);
    CHECK_EQ_U64(ps.prefetch_issued, expect_hinted * 8);
    CHECK_EQ_U64(ps.readahead_pages, 16);
    vib3_prefetcher_close(pf);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}

TEST(two_layer_lookahead_hints_the_right_pages) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    float x[64], s[8];
    uint64_t seed = 21;
    for (int i = 0; i < 64; i++) x[i] = vib3_test_randf(&seed);
    uint8_t want[4][8];
    /* at layer 1, depth 2: layers 2 and 3, k + margin = 3 experts each */
    memset(want, 0, sizeof want);
    router_scores(f, 2, x, s);
    top_set(s, 3, want[2]);
    router_scores(f, 3, x, s);
    top_set(s, 3, want[3]);
    check_hook(f, 2, 1, 1, want, x);
    /* at layer 3 (the last), depth 2 with wrap: the next token's layers 0 and 1 */
    memset(want, 0, sizeof want);
    router_scores(f, 0, x, s);
    top_set(s, 3, want[0]);
    router_scores(f, 1, x, s);
    top_set(s, 3, want[1]);
    check_hook(f, 2, 1, 3, want, x);
    /* at layer 2, depth 2 without wrap: only layer 3 */
    memset(want, 0, sizeof want);
    router_scores(f, 3, x, s);
    top_set(s, 3, want[3]);
    check_hook(f, 2, 0, 2, want, x);
    /* depth 1, no wrap (the one-layer planner): nothing after the last layer */
    memset(want, 0, sizeof want);
    check_hook(f, 1, 0, 3, want, x);
}

TEST(mass_threshold_sizes_the_guess) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    cfg_for(&cfg, "lookahead");
    size_t mark = vib3_arena_mark(&arena);
    vib3_prefetcher *pf = NULL;
    CHECK_OK(vib3_prefetcher_open(&pf, f, NULL, &cfg, &arena));
    if (!pf) return;
    float x[64], s[8];
    uint64_t seed = 5;
    for (int i = 0; i < 64; i++) x[i] = vib3_test_randf(&seed);
    uint32_t out[8];
    /* mass 0: k + margin */
    CHECK_EQ_U64(vib3_prefetcher_predict_ahead(pf, 0, 2, x, 0, out, 8), 3);
    /* a sure router (logits scaled up): the top k already hold the mass */
    float big[64], tiny[64];
    for (int i = 0; i < 64; i++) big[i] = x[i] * 1000, tiny[i] = x[i] * 1e-6f;
    uint32_t n = vib3_prefetcher_predict_ahead(pf, 0, 2, big, 0.9f, out, 8);
    CHECK_EQ_U64(n, 2);
    router_scores(f, 2, big, s);
    uint8_t top[8];
    top_set(s, 2, top);
    for (uint32_t i = 0; i < n; i++) CHECK(top[out[i]]);
    /* an unsure one (uniform softmax): up to 2k + 1 guesses */
    CHECK_EQ_U64(vib3_prefetcher_predict_ahead(pf, 0, 2, tiny, 0.9f, out, 8), 5);
    /* the next token's layer 0 from the last layer (wrap target) */
    CHECK_EQ_U64(vib3_prefetcher_predict_ahead(pf, 3, 0, x, 0, out, 8), 3);
    vib3_prefetcher_close(pf);
    vib3_arena_reset(&arena, mark);
}

/* a hint that finds its page resident protects it from eviction until the
 * page's layer is routed elsewhere; faults split late / lost / unpredicted */
TEST(hint_protects_resident_page_and_faults_split) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    cfg_for(&cfg, "none");
    snprintf(cfg.evict, sizeof cfg.evict, "lru"); /* victims in a known order */
    size_t mark = vib3_arena_mark(&arena);
    vib3_pages_opts o = {.frames_bytes = 24 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 0,
                         .prefetch_inflight_max = 16, .hint_max = 16};
    vib3_pages *p = NULL;
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    uint64_t a;
    uint32_t na;
    CHECK(vib3_file_slot_pages(f, 2, 5, &a, &na));
    const void *d;
    /* read expert (2, 5) on demand: 8 unpredicted faults */
    for (uint32_t k = 0; k < na; k++) {
        CHECK_OK(vib3_pages_acquire(p, a + k, &d));
        vib3_pages_release(p, a + k);
    }
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.page_faults, na);
    CHECK_EQ_U64(s.faults_unpredicted, na);
    /* hint it while resident, then push 40 other pages (layer 0) through 24 frames */
    vib3_pages_prefetch_slot(p, 2, 5);
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.hints_resident, na);
    CHECK_EQ_U64(s.prefetch_issued, 0);
    for (uint64_t k = 0; k < 40; k++) {
        CHECK_OK(vib3_pages_acquire(p, k, &d));
        vib3_pages_release(p, k);
    }
    for (uint32_t k = 0; k < na; k++) CHECK_MSG(vib3_pages_resident(p, a + k), "hinted page %u evicted", k);
    /* layer 2 routed elsewhere: the protection ends, more pressure evicts the pages */
    vib3_pages_expire_hints(p, 2);
    for (uint64_t k = 0; k < 40; k++) {
        CHECK_OK(vib3_pages_acquire(p, 192 + k, &d)); /* layer 3 */
        vib3_pages_release(p, 192 + k);
    }
    uint32_t left = 0;
    for (uint32_t k = 0; k < na; k++) left += (uint32_t)vib3_pages_resident(p, a + k);
    CHECK(left < na);
    /* the evicted ones fault again, counted as lost (hinted, evicted before use) */
    vib3_pages_stats before;
    vib3_pages_stats_get(p, &before);
    for (uint32_t k = 0; k < na; k++) {
        CHECK_OK(vib3_pages_acquire(p, a + k, &d));
        vib3_pages_release(p, a + k);
    }
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.faults_lost - before.faults_lost, na - left);
    CHECK_EQ_U64(s.faults_late + s.faults_lost + s.faults_unpredicted, s.page_faults);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}


/* prefetched pages that were never used and whose layer was routed
 * elsewhere are the first victims, ahead of any page the policy holds */
TEST(expired_hints_are_evicted_first) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    cfg_for(&cfg, "none");
    size_t mark = vib3_arena_mark(&arena);
    vib3_pages_opts o = {.frames_bytes = 24 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 0,
                         .prefetch_inflight_max = 16, .hint_max = 16};
    vib3_pages *p = NULL;
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    if (!p) return;
    uint64_t a;
    uint32_t na;
    CHECK(vib3_file_slot_pages(f, 2, 5, &a, &na));
    vib3_pages_prefetch_slot(p, 2, 5); /* a misprediction: 8 pages read */
    CHECK_EQ_U64(slot_state(p, f, 2, 5, 1), 1);
    const void *d;
    for (uint64_t k = 0; k < 16; k++) { /* 16 demand pages of layer 0 fill the other frames */
        CHECK_OK(vib3_pages_acquire(p, k, &d));
        vib3_pages_release(p, k);
    }
    vib3_pages_expire_hints(p, 2); /* layer 2 routed elsewhere */
    for (uint64_t k = 16; k < 16 + na; k++) {
        CHECK_OK(vib3_pages_acquire(p, k, &d));
        vib3_pages_release(p, k);
    }
    for (uint32_t k = 0; k < na; k++) CHECK_MSG(!vib3_pages_resident(p, a + k), "expired hint page %u kept", k);
    for (uint64_t k = 0; k < 16; k++) CHECK_MSG(vib3_pages_resident(p, k), "demand page %u evicted first", (unsigned)k);
    vib3_pages_stats s;
    vib3_pages_stats_get(p, &s);
    CHECK_EQ_U64(s.hints_expired, na);
    CHECK_EQ_U64(s.wasted_prefetch_bytes, (uint64_t)na * f->pages[a].bytes);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}
