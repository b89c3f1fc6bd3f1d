/* test_noalloc.c — the per-token path allocates nothing.
 *
 * malloc / calloc / realloc / free / posix_memalign / aligned_alloc /
 * memalign are interposed (forwarding to glibc's __libc_* entry points) and
 * counted while armed. Between "model loaded" and "generation done" — a
 * prefill of 40 ids over several micro-batches, 32 decode steps each with a
 * sample (temperature + top-k + top-p + min-p + repeat penalty) and a
 * streamed piece, a batched decode of two sequences, reset and re-prefill —
 * the count must be zero, for F32 pages and Q4_0 pages (Q8_0 activations),
 * with a 2-thread pool; and on the frame backend at half the expert bytes
 * (io_uring reads, evictions, look-ahead hints from the file's probes, the
 * auto gate) with 64-neuron pages.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"
#include "tests/test.h"

#include "tests/alloc_count.h"

/* prefetch NULL: the defaults (the model fits: mmap backend); else the frame backend at half the
 * expert bytes with that predictor (reads, hints, probes, evictions on the token path) */
static void check_model(int dtype, const char *tag, const char *prefetch) {
    const char *src = vib3_test_model_path("tinymix-brown");
    if (!src) SKIP("tinymix-brown not available");
    char path[700];
    snprintf(path, sizeof path, "%s/%s.vib3", vib3_test_tmpdir(), tag);
    vib3_convert_opts o = {0};
    o.model_path = src;
    o.output_path = path;
    o.expert_dtype = dtype;
    o.threads = 2;
    o.quiet = true;
    if (prefetch) o.page_neurons = 64;
    CHECK_OK(vib3_convert(&o));
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    if (prefetch) {
        snprintf(cfg.prefetch, sizeof cfg.prefetch, "%s", prefetch);
        setenv("VIB3_EXPERT_BUDGET", "50%", 1);
        setenv("VIB3_PAGES_BACKEND", "frames", 1);
    }
    vib3_engine_params ep = {.n_seq = 2, .ctx_size = 128, .batch_size = 16, .threads = 2};
    vib3_engine *e = NULL;
    CHECK_OK(vib3_engine_open(&e, path, &cfg, &ep));
    unsetenv("VIB3_EXPERT_BUDGET");
    unsetenv("VIB3_PAGES_BACKEND");
    if (!e) return;
    vib3_tokenizer *tok = vib3_engine_tokenizer(e);
    CHECK(tok != NULL);
    vib3_seq *s, *s2;
    CHECK_OK(vib3_seq_acquire(e, &s));
    CHECK_OK(vib3_seq_acquire(e, &s2));
    vib3_sampler_params sp;
    vib3_sampler_defaults(&sp);
    sp.repeat_penalty = 1.1f;
    sp.seed = 42;
    vib3_seq_set_sampler(s, &sp);
    uint32_t ids[40];
    for (uint32_t i = 0; i < 40; i++) ids[i] = 1 + (i * 37) % 4000;
    char piece[256];
    vib3_tokenizer_stream st;

    /* model loaded: from here on nothing may allocate */
    atomic_store(&alloc_count, 0);
    atomic_store(&alloc_armed, 1);
    vib3_err rc = vib3_seq_prefill(s, ids, 40, NULL);
    vib3_tokenizer_stream_init(&st, 0);
    for (int t = 0; t < 32 && rc == VIB3_OK; t++) {
        uint32_t id = vib3_seq_sample(s);
        if (tok) (void)vib3_tokenizer_stream_put(tok, &st, id, piece, sizeof piece);
        rc = vib3_seq_decode(s, id);
    }
    if (rc == VIB3_OK) rc = vib3_seq_prefill(s2, ids, 5, NULL);
    vib3_seq *both[2] = {s, s2};
    for (int t = 0; t < 4 && rc == VIB3_OK; t++) {
        uint32_t next[2] = {vib3_seq_sample(s), vib3_argmax(vib3_seq_logits(s2), vib3_engine_vocab(e))};
        rc = vib3_engine_decode_batch(e, both, next, 2);
    }
    vib3_seq_reset(s);
    if (rc == VIB3_OK) rc = vib3_seq_prefill(s, ids, 20, NULL);
    vib3_seq_stats stats;
    vib3_seq_stats_get(s, &stats);
    atomic_store(&alloc_armed, 0);
    /* generation done */

    CHECK_OK(rc);
    long n = atomic_load(&alloc_count);
    CHECK_MSG(n == 0, "%s: %ld allocations on the token path", tag, n);
    if (prefetch) { /* the frame path really ran */
        vib3_pages_stats ps;
        vib3_pages_stats_get(vib3_engine_pages(e), &ps);
        CHECK_STR(ps.backend, "io_uring");
        CHECK(ps.page_faults > 0 && ps.evictions > 0 && ps.prefetch_issued > 0);
    }
    printf("    %s: %ld allocations during prefill(40) + 32 x (sample + decode) + batched decode\n", tag, n);
    vib3_seq_release(s);
    vib3_seq_release(s2);
    vib3_engine_close(e);
}

TEST(noalloc_f32_pages) { check_model(VIB3_DTYPE_F32, "noalloc-f32", NULL); }
TEST(noalloc_q4_pages) { check_model(VIB3_DTYPE_Q4_0, "noalloc-q4", NULL); }
TEST(noalloc_q4_frames_lookahead) { check_model(VIB3_DTYPE_Q4_0, "noalloc-q4-frames", "lookahead"); }
TEST(noalloc_q4_frames_auto) { check_model(VIB3_DTYPE_Q4_0, "noalloc-q4-frames-auto", "auto"); }
