/* test_tinymix.c — the trained tinymix-brown through the buffer manager:
 * with frames for 25% of the expert bytes (io_uring and pread, every
 * policy, every predictor) greedy output is identical to the resident (mmap)
 * run; a page read failing mid-generation fails that decode call with a
 * clear error and the engine keeps serving (the retried run is identical);
 * the trace of a run replays in the simulator with Belady on top. */
#include <stdlib.h>

#include "convert/convert.h"
#include "core/fault.h"
#include "index/prefetch.h"
#include "runtime/engine.h"
#include "storage/sim.h"
#include "tests/test.h"

#define N_PROMPT 24
#define N_GEN 24

static char model[1024];

static const char *tinymix(void) {
    if (model[0]) return model;
    const char *src = vib3_test_model_path("tinymix-brown");
    if (!src) return NULL;
    snprintf(model, sizeof model, "%s/tinymix-p64.vib3", vib3_test_tmpdir());
    vib3_convert_opts o = {0};
    o.model_path = src;
    o.output_path = model;
    o.expert_dtype = VIB3_DTYPE_Q4_0;
    o.page_neurons = 64; /* 6 pages per expert: page-level eviction matters */
    o.threads = 2;
    o.quiet = true;
    if (vib3_convert(&o) != VIB3_OK) {
        fprintf(stderr, "convert: %s\n", vib3_err_msg());
        model[0] = 0;
        return NULL;
    }
    return model;
}

typedef struct run_result {
    uint32_t ids[N_GEN];
    vib3_pages_stats st;
    vib3_prefetch_stats pst;
    vib3_err rc;
    char msg[512];
} run_result;

/* greedy: prompt of N_PROMPT ids fed one by one (decode path), then N_GEN generated */
static void run(const char *evict, const char *prefetch, int uring, const char *budget, const char *trace,
                uint64_t fail_read_nth, run_result *r) {
    memset(r, 0, sizeof *r);
    if (budget) setenv("VIB3_EXPERT_BUDGET", budget, 1);
    else unsetenv("VIB3_EXPERT_BUDGET");
    setenv("VIB3_PAGES_BACKEND", budget ? "frames" : "mmap", 1);
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    snprintf(cfg.evict, sizeof cfg.evict, "%s", evict);
    snprintf(cfg.prefetch, sizeof cfg.prefetch, "%s", prefetch);
    cfg.io_uring = uring;
    cfg.io_queue_depth = 4;
    vib3_engine_params ep = {.n_seq = 1, .ctx_size = 128, .threads = 2, .flags = VIB3_ENGINE_NO_TOKENIZER};
    vib3_engine *e = NULL;
    r->rc = vib3_engine_open(&e, model, &cfg, &ep);
    if (r->rc) {
        snprintf(r->msg, sizeof r->msg, "%s", vib3_err_msg());
        return;
    }
    vib3_arena a;
    vib3_prefetcher *pf = NULL;
    vib3_arena_init(&a, 8u << 20, "pf", 0);
    r->rc = vib3_prefetcher_open(&pf, vib3_engine_file(e), vib3_engine_pages(e), &cfg, &a);
    if (!r->rc) vib3_engine_set_moe_hook(e, vib3_prefetcher_moe_hook, pf);
    if (!r->rc && trace) r->rc = vib3_pages_trace_open(vib3_engine_pages(e), trace);
    vib3_seq *s = NULL;
    if (!r->rc) r->rc = vib3_seq_acquire(e, &s);
    uint32_t vocab = vib3_engine_vocab(e);
    for (int attempt = 0; attempt < 2 && s; attempt++) {
        if (fail_read_nth && attempt == 0) vib3_fault_arm(VIB3_FAULT_READ, fail_read_nth, false);
        vib3_seq_reset(s);
        vib3_err rc = vib3_seq_prefill(s, (const uint32_t[]){1}, 1, NULL);
        for (uint32_t i = 1; rc == VIB3_OK && i < N_PROMPT; i++) rc = vib3_seq_decode(s, 1 + (i * 37) % (vocab - 1));
        for (uint32_t i = 0; rc == VIB3_OK && i < N_GEN; i++) {
            r->ids[i] = vib3_argmax(vib3_seq_logits(s), vocab);
            rc = vib3_seq_decode(s, r->ids[i]);
        }
        vib3_fault_disarm(VIB3_FAULT_READ);
        r->rc = rc;
        if (rc) snprintf(r->msg, sizeof r->msg, "%s", vib3_err_msg());
        if (!fail_read_nth || rc == VIB3_OK) break; /* else: the engine must serve the retry */
    }
    vib3_pages_stats_get(vib3_engine_pages(e), &r->st);
    if (pf) vib3_prefetcher_stats_get(pf, &r->pst);
    if (s) vib3_seq_release(s);
    vib3_engine_close(e);
    if (pf) vib3_prefetcher_close(pf);
    vib3_arena_fini(&a);
    unsetenv("VIB3_EXPERT_BUDGET");
    unsetenv("VIB3_PAGES_BACKEND");
}

TEST(budget_25pct_identical_to_resident) {
    if (!tinymix()) SKIP("tinymix-brown not available (or convert failed)");
    static run_result ref, r;
    run("lfru", "none", 1, NULL, NULL, 0, &ref);
    CHECK_OK(ref.rc);
    CHECK_STR(ref.st.backend, "mmap");
    static const char *const ev[] = {"lru", "lfru", "lfuda"};
    static const char *const pf[] = {"none", "coact", "lookahead", "both", "auto"};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            if (i != 1 && j != 0 && j != 3) continue; /* every predictor with lfru, none/both with the others */
            for (int uring = 1; uring >= 0; uring--) {
                if (!uring && (i != 1 || j != 3)) continue;
                run(ev[i], pf[j], uring, "25%", NULL, 0, &r);
                CHECK_MSG(r.rc == VIB3_OK, "%s/%s/%s: %s", ev[i], pf[j], uring ? "io_uring" : "pread", r.msg);
                CHECK_STR(r.st.backend, uring ? "io_uring" : "pread");
                CHECK_MSG(!memcmp(r.ids, ref.ids, sizeof r.ids), "%s/%s: greedy ids differ from the resident run",
                          ev[i], pf[j]);
                CHECK(r.st.evictions > 0);
                CHECK(r.st.page_faults > 0);
                CHECK(r.st.frames_total * r.st.frame_bytes <= r.st.frames_budget_bytes + r.st.frame_bytes);
                CHECK_EQ_U64(r.st.checksum_errors + r.st.io_errors, 0);
            }
        }
}

/* --prefetch auto: epochs of hints on and off are measured (which wins depends on timing), the
 * output is the resident run's */
TEST(auto_prefetch_measures_both_arms) {
    if (!tinymix()) SKIP("tinymix-brown not available (or convert failed)");
    static run_result ref, r;
    run("lfru", "none", 1, NULL, NULL, 0, &ref);
    CHECK_OK(ref.rc);
    setenv("VIB3_PREFETCH_GATE_EPOCH", "4", 1);
    run("lfru", "auto", 1, "50%", NULL, 0, &r);
    unsetenv("VIB3_PREFETCH_GATE_EPOCH");
    CHECK_OK(r.rc);
    CHECK_MSG(!memcmp(r.ids, ref.ids, sizeof r.ids), "auto: greedy ids differ from the resident run");
    CHECK(r.pst.gated);
    CHECK_STR(r.pst.mode, "auto");
    /* 48 single-row tokens = 12 epochs of 4, the first uncounted; warm-up: 2 off, 2 on */
    CHECK_EQ_U64(r.pst.gate_epochs[0] + r.pst.gate_epochs[1], 11);
    CHECK(r.pst.gate_epochs[0] >= 2 && r.pst.gate_epochs[1] >= 2);
    CHECK(r.pst.gate_token_ms[0] > 0 && r.pst.gate_token_ms[1] > 0);
    CHECK(r.st.prefetch_issued > 0); /* the on epochs hinted */
}

TEST(read_failure_mid_generation) {
    if (!tinymix()) SKIP("tinymix-brown not available (or convert failed)");
    static run_result ref, r;
    run("lfru", "both", 1, NULL, NULL, 0, &ref);
    for (uint64_t nth = 3; nth <= 30; nth += 9) {
        run("lfru", "both", 1, "25%", NULL, nth, &r);
        CHECK_OK(r.rc); /* the retry after the failed call succeeded */
        CHECK(r.st.io_errors >= 1);
        CHECK_MSG(!memcmp(r.ids, ref.ids, sizeof r.ids), "retry after read failure %llu differs",
                  (unsigned long long)nth);
    }
    /* without the retry the error is the page's */
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    setenv("VIB3_EXPERT_BUDGET", "25%", 1);
    vib3_engine_params ep = {.n_seq = 1, .ctx_size = 64, .threads = 2, .flags = VIB3_ENGINE_NO_TOKENIZER};
    vib3_engine *e = NULL;
    CHECK_OK(vib3_engine_open(&e, model, &cfg, &ep));
    unsetenv("VIB3_EXPERT_BUDGET");
    if (!e) return;
    vib3_seq *s;
    CHECK_OK(vib3_seq_acquire(e, &s));
    vib3_fault_arm(VIB3_FAULT_READ, 1, true);
    vib3_err rc = vib3_seq_prefill(s, (const uint32_t[]){1, 5, 9}, 3, NULL);
    vib3_fault_disarm(VIB3_FAULT_READ);
    CHECK_EQ_I64(rc, VIB3_ERR_IO);
    CHECK(strstr(vib3_err_msg(), "injected") != NULL);
    CHECK(strstr(vib3_err_msg(), "page ") != NULL);
    vib3_seq_reset(s);
    CHECK_OK(vib3_seq_prefill(s, (const uint32_t[]){1, 5, 9}, 3, NULL));
    vib3_seq_release(s);
    vib3_engine_close(e);
}

TEST(trace_replays_with_belady_on_top) {
    if (!tinymix()) SKIP("tinymix-brown not available (or convert failed)");
    char trace[1100];
    snprintf(trace, sizeof trace, "%s/tinymix.trace", vib3_test_tmpdir());
    static run_result r;
    run("lfru", "none", 1, "50%", trace, 0, &r);
    CHECK_OK(r.rc);
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, 64u << 20, "trace", 0));
    vib3_trace_data t;
    CHECK_OK(vib3_sim_load_trace(trace, &a, &t));
    CHECK_EQ_U64(t.n, r.st.page_accesses);
    CHECK_EQ_U64(t.n_layers, 4);
    uint32_t frames = (uint32_t)r.st.frames_total;
    vib3_sim_result lru, lfru, opt;
    CHECK_OK(vib3_sim_run(t.pages, t.n, t.n_pages, frames, VIB3_SIM_LRU, NULL, 0, &lru));
    CHECK_OK(vib3_sim_run(t.pages, t.n, t.n_pages, frames, VIB3_SIM_LFRU, t.page_layer, t.n_layers, &lfru));
    CHECK_OK(vib3_sim_run(t.pages, t.n, t.n_pages, frames, VIB3_SIM_BELADY, NULL, 0, &opt));
    CHECK(opt.hits >= lfru.hits && opt.hits >= lru.hits);
    CHECK(opt.hits > 0);
    if (getenv("VIB3_TEST_VERBOSE"))
        printf("%u frames: lru %.3f lfru %.3f belady %.3f\n", frames, lru.hit_rate, lfru.hit_rate, opt.hit_rate);
    vib3_arena_fini(&a);
}
