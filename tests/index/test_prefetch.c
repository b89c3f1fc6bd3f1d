/* test_prefetch.c — the look-ahead router ranks experts exactly as a direct
 * product with layer l+1's router does; the co-activation graph starts from
 * the COAC prior and learns a repeated transition online; the hook fetches
 * the routed experts' pages, hints the predicted ones, and scores its
 * predictions (precision / recall) at the next layer. */
#include <unistd.h>

#include "index/prefetch.h"
#include "tests/storage/open_fixture.h"
#include "tests/test.h"

static const fixture_opts opts = {4, 8, 64, 128, 32, 32, VIB3_DTYPE_Q4_0, 3};
static vib3_arena arena;
static vib3_file file;
static int have_file;

static const vib3_file *fixture(void) {
    if (!have_file) have_file = fixture_open_tmp(&opts, "prefetch.vib3", &arena, &file) == 0;
    return have_file ? &file : NULL;
}

static void cfg_for(vib3_config *c, const char *mode) {
    vib3_config_defaults(c);
    snprintf(c->prefetch, sizeof c->prefetch, "%s", mode);
    c->io_queue_depth = 4;
    c->threads = 2;
}

TEST(lookahead_matches_router_product) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    cfg_for(&cfg, "lookahead");
    vib3_prefetcher *pf;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_prefetcher_open(&pf, f, NULL, &cfg, &arena));
    const vib3_tensor_entry *t = vib3_file_find_tensor(f, "blk.2.ffn_gate_inp.weight");
    CHECK(t != NULL && t->dtype == VIB3_DTYPE_F32);
    if (!t) return;
    const float *w = vib3_file_tensor_data(f, t);
    uint64_t seed = 9;
    for (int trial = 0; trial < 20; trial++) {
        float x[64], s[8];
        for (int i = 0; i < 64; i++) x[i] = vib3_test_randf(&seed);
        for (int e = 0; e < 8; e++) {
            s[e] = 0;
            for (int i = 0; i < 64; i++) s[e] += w[e * 64 + i] * x[i];
        }
        uint32_t out[8];
        uint32_t n = vib3_prefetcher_predict_lookahead(pf, 1, x, out, 8);
        CHECK_EQ_U64(n, 3); /* k = 2 + margin 1 */
        for (uint32_t i = 0; i + 1 < n; i++) CHECK(s[out[i]] >= s[out[i + 1]]);
        for (int e = 0; e < 8; e++) {
            int in = 0;
            for (uint32_t i = 0; i < n; i++) in |= out[i] == (uint32_t)e;
            if (!in) CHECK(s[e] <= s[out[n - 1]]);
        }
    }
    /* the last layer has nothing after it */
    float x[64] = {0};
    uint32_t out[8];
    CHECK_EQ_U64(vib3_prefetcher_predict_lookahead(pf, 3, x, out, 8), 0);
    vib3_prefetcher_close(pf);
    vib3_arena_reset(&arena, mark);
}

TEST(coact_prior_then_online) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    cfg_for(&cfg, "coact");
    vib3_prefetcher *pf;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_prefetcher_open(&pf, f, NULL, &cfg, &arena));
    /* prior: layer 0 expert 3 -> argmax_j trans[0][3][j] */
    const uint32_t *T = f->coact_trans;
    uint32_t best = 0;
    for (uint32_t j = 1; j < 8; j++)
        if (T[3 * 8 + j] > T[3 * 8 + best]) best = j;
    int32_t ex[2] = {3, -1};
    uint32_t out[8];
    uint32_t n = vib3_prefetcher_predict_coact(pf, 0, ex, 2, out, 8);
    CHECK(n >= 1);
    CHECK_EQ_U64(out[0], best);
    /* online: layer 0 routes {1, 2}, layer 1 routes {5, 6}, many times */
    float x[64] = {0};
    for (int t = 0; t < 200; t++) {
        int32_t a[2] = {1, 2}, b[2] = {5, 6};
        vib3_prefetcher_moe_hook(pf, 0, x, 1, a, 2);
        vib3_prefetcher_moe_hook(pf, 1, x, 1, b, 2);
    }
    int32_t a[2] = {1, 2};
    n = vib3_prefetcher_predict_coact(pf, 0, a, 2, out, 8);
    CHECK_EQ_U64(n, 2);
    CHECK((out[0] == 5 && out[1] == 6) || (out[0] == 6 && out[1] == 5));
    vib3_prefetch_stats s;
    vib3_prefetcher_stats_get(pf, &s);
    CHECK_EQ_U64(s.layers_observed, 400);
    CHECK(s.predicted[0] > 0);
    CHECK(s.recall[0] > 0.9); /* learned after the first few tokens */
    CHECK_STR(s.mode, "coact");
    vib3_prefetcher_close(pf);
    vib3_arena_reset(&arena, mark);
}

TEST(hook_fetches_and_hints_pages) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    cfg_for(&cfg, "both");
    vib3_pages_opts o = {.frames_bytes = 48 * 4096, .backend = VIB3_PAGES_FRAMES, .readahead = 0,
                         .prefetch_inflight_max = 32};
    vib3_pages *p;
    size_t mark = vib3_arena_mark(&arena);
    CHECK_OK(vib3_pages_open_ex(&p, f, &cfg, &arena, &o));
    vib3_prefetcher *pf;
    CHECK_OK(vib3_prefetcher_open(&pf, f, p, &cfg, &arena));
    float x[64];
    uint64_t seed = 5;
    for (int i = 0; i < 64; i++) x[i] = vib3_test_randf(&seed);
    int32_t ex[2] = {4, 7};
    vib3_prefetcher_moe_hook(pf, 0, x, 1, ex, 2);
    /* the routed experts' 4 pages each were fetched (readahead), layer 1 hinted */
    uint64_t first;
    uint32_t count;
    CHECK(vib3_file_slot_pages(f, 0, 7, &first, &count));
    for (int spin = 0; spin < 2000 && !vib3_pages_resident(p, first + count - 1); spin++) usleep(1000);
    CHECK(vib3_pages_resident(p, first));
    vib3_pages_stats ps;
    vib3_pages_stats_get(p, &ps);
    CHECK_EQ_U64(ps.readahead_pages, 8);
    CHECK(ps.prefetch_issued >= 4 * 3); /* at least lookahead's 3 experts */
    const void *d;
    for (uint32_t k = 0; k < count; k++) {
        CHECK_OK(vib3_pages_acquire(p, first + k, &d));
        vib3_pages_release(p, first + k);
    }
    int32_t ex1[2] = {0, 1};
    vib3_prefetcher_moe_hook(pf, 1, x, 1, ex1, 2);
    vib3_prefetch_stats s;
    vib3_prefetcher_stats_get(pf, &s);
    CHECK(s.routed[1] == 2);
    CHECK(s.predicted[1] == 3);
    CHECK(s.experts_fetched == 4);
    CHECK(s.experts_hinted > 0);
    vib3_prefetcher_close(pf);
    vib3_pages_close(p);
    vib3_arena_reset(&arena, mark);
}

TEST(bad_mode_rejected) {
    const vib3_file *f = fixture();
    if (!f) SKIP("no fixture");
    vib3_config cfg;
    cfg_for(&cfg, "psychic");
    vib3_prefetcher *pf;
    size_t mark = vib3_arena_mark(&arena);
    CHECK(vib3_prefetcher_open(&pf, f, NULL, &cfg, &arena) == VIB3_ERR_INVALID);
    CHECK(strstr(vib3_err_msg(), "psychic") != NULL);
    vib3_arena_reset(&arena, mark);
}
