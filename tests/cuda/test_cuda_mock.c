/* test_cuda_mock.c — the runtime and buffer-manager side of the CUDA tier
 * (src/runtime/moe.c's decode batches, per-page path and CPU fall-back;
 * src/storage/pages.c's promotion hooks for both backends) without a GPU.
 *
 * This binary defines every function of cuda/vram.h itself, so the linker
 * never pulls cuda/vram.cu's object out of libvib3.a: a "device" whose VRAM
 * is host memory and whose page products are the reference page kernels of the
 * page's dtype (vib3_page_ffn_q4_0_ref / _q4_k16_ref: the arithmetic the real kernels
 * reproduce). Models converted both ways: --quant q4_0 and q4_k16 (the converter's default INT4). Whole-model greedy decoding with
 * this tier must give the CPU's tokens, decode batches must actually take
 * pages (and those pages must not be acquired from the buffer manager), and
 * a failure in the middle of a run must fall back to the CPU with the same
 * tokens. Only in CUDA=1 builds (elsewhere moe.c / pages.c do not call the
 * tier); what this cannot check is vram.cu itself (test_cuda.c on a GPU,
 * test_cuda_emu.c for its kernels). */
#include "tests/test.h"

#ifndef VIB3_CUDA
TEST(cuda_mock_not_built) { SKIP("built without CUDA=1 (the runtime calls the tier only in CUDA builds)"); }
#else
#include <pthread.h>
#include <stdlib.h>

#include "convert/convert.h"
#include "cuda/vram.h"
#include "runtime/engine.h"
#include "simd/simd.h"
#include "tests/cuda/cuda_fixture.h"

/* ---- the mock device ------------------------------------------------------------------ */
static int mock_devices;     /* what vib3_cuda_device_count says */
static uint64_t mock_opens;  /* pools opened */

struct vib3_vram_batch {
    vib3_vram *v;
    uint32_t n, hidden;
    uint64_t page[1024];
    uint32_t k[1024], dt[1024];
    float w[1024];
};

struct vib3_vram {
    pthread_mutex_t mu;
    uint64_t n_pages, slot_bytes;
    uint32_t n_slots, used;
    uint8_t *data, **copy;   /* slots; page -> its copy or NULL */
    int disabled, fail_next;
    vib3_vram_stats st;
    vib3_vram_batch batch[VIB3_VRAM_BATCH_THREADS];
    float *tmp[VIB3_VRAM_BATCH_THREADS]; /* a batch's sum (hidden) */
    uint32_t max_hidden;
};

int vib3_cuda_device_count(void) { return mock_devices; }

vib3_err vib3_vram_open(vib3_vram **out, uint64_t budget, uint64_t slot_bytes, uint64_t n_pages, uint32_t max_hidden,
                        uint32_t max_neurons) {
    *out = NULL;
    if (!mock_devices) return vib3_err_set(VIB3_ERR_UNSUPPORTED, "mock: no device");
    uint64_t n = budget ? budget / slot_bytes : n_pages;
    if (n > n_pages) n = n_pages;
    if (n == 0) return vib3_err_set(VIB3_ERR_LIMIT, "mock: budget holds no page");
    vib3_vram *v = calloc(1, sizeof *v);
    v->data = malloc(n * slot_bytes);
    v->copy = calloc(n_pages, sizeof *v->copy);
    for (uint32_t t = 0; t < VIB3_VRAM_BATCH_THREADS; t++) v->tmp[t] = malloc(max_hidden * sizeof(float));
    pthread_mutex_init(&v->mu, NULL);
    v->n_pages = n_pages, v->slot_bytes = slot_bytes, v->n_slots = (uint32_t)n, v->max_hidden = max_hidden;
    v->st.slots_total = n;
    snprintf(v->st.device, sizeof v->st.device, "mock");
    (void)max_neurons;
    mock_opens++;
    *out = v;
    return VIB3_OK;
}

void vib3_vram_close(vib3_vram *v) {
    if (!v) return;
    for (uint32_t t = 0; t < VIB3_VRAM_BATCH_THREADS; t++) free(v->tmp[t]);
    free(v->data);
    free(v->copy);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

vib3_err vib3_vram_register_host(vib3_vram *v, void *base, uint64_t bytes) { return VIB3_OK; }

vib3_err vib3_vram_promote(vib3_vram *v, uint64_t page, const void *host, uint64_t bytes, uint32_t heat) {
    pthread_mutex_lock(&v->mu);
    if (!v->disabled && page < v->n_pages && !v->copy[page] && bytes <= v->slot_bytes) {
        if (v->used < v->n_slots) {
            v->copy[page] = v->data + (uint64_t)v->used++ * v->slot_bytes;
            memcpy(v->copy[page], host, bytes);
            v->st.promotions++;
            v->st.bytes_copied += bytes;
        } else {
            v->st.rejected++;
        }
    }
    pthread_mutex_unlock(&v->mu);
    return VIB3_OK;
}

void vib3_vram_wait(vib3_vram *v, uint64_t page) {}

const void *vib3_vram_lookup(vib3_vram *v, uint64_t page) {
    pthread_mutex_lock(&v->mu);
    const void *d = !v->disabled && page < v->n_pages ? v->copy[page] : NULL;
    pthread_mutex_unlock(&v->mu);
    return d;
}

static int fail_now(vib3_vram *v) { /* the injected error: disables the tier, as vram.cu */
    pthread_mutex_lock(&v->mu);
    int f = v->fail_next;
    if (f) v->fail_next = 0, v->disabled = 1, v->st.errors++, v->st.disabled = 1;
    pthread_mutex_unlock(&v->mu);
    return f;
}

static uint64_t mock_dtype_calls[VIB3_DTYPE_COUNT_]; /* page products per dtype (atomic) */

int vib3_vram_try_page_ffn_q4(vib3_vram *v, uint64_t page, uint32_t dt, uint32_t hidden, uint32_t k, const void *xq,
                              float w, float *out) {
    if (dt != VIB3_DTYPE_Q4_0 && dt != VIB3_DTYPE_Q4_K16) return 0; /* as vram.cu: the kernels take these two */
    const void *d = vib3_vram_lookup(v, page);
    if (!d || fail_now(v)) return 0;
    vib3_simd_ref()->page_ffn[dt](d, hidden, k, xq, w, out);
    __atomic_fetch_add(&mock_dtype_calls[dt], 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&v->mu);
    v->st.kernel_calls++;
    pthread_mutex_unlock(&v->mu);
    return 1;
}

vib3_err vib3_vram_page_ffn_q4(vib3_vram *v, uint64_t page, uint32_t dt, uint32_t hidden, uint32_t k, const void *xq,
                               float w, float *out) {
    return vib3_vram_try_page_ffn_q4(v, page, dt, hidden, k, xq, w, out) ? VIB3_OK
                                                                          : vib3_err_set(VIB3_ERR_NOT_FOUND, "mock");
}

vib3_vram_batch *vib3_vram_batch_begin(vib3_vram *v, uint32_t thread, uint32_t hidden) {
    if (!v || thread >= VIB3_VRAM_BATCH_THREADS || hidden > v->max_hidden) return NULL;
    pthread_mutex_lock(&v->mu);
    int off = v->disabled;
    pthread_mutex_unlock(&v->mu);
    if (off) return NULL;
    vib3_vram_batch *b = &v->batch[thread];
    b->v = v, b->n = 0, b->hidden = hidden;
    return b;
}

int vib3_vram_batch_add(vib3_vram_batch *b, uint64_t page, uint32_t dt, uint32_t k, float w) {
    if (b->n >= 1024 || (dt != VIB3_DTYPE_Q4_0 && dt != VIB3_DTYPE_Q4_K16) || !vib3_vram_lookup(b->v, page)) return 0;
    b->page[b->n] = page, b->k[b->n] = k, b->dt[b->n] = dt, b->w[b->n] = w, b->n++;
    return 1;
}

int vib3_vram_batch_run(vib3_vram_batch *b, const void *xq, float *out) {
    vib3_vram *v = b->v;
    if (b->n == 0) return 1;
    if (fail_now(v)) return 0;
    float *t = v->tmp[b - v->batch];
    memset(t, 0, b->hidden * sizeof(float)); /* the batch sum, then one add (as vram.cu) */
    for (uint32_t q = 0; q < b->n; q++) {
        vib3_simd_ref()->page_ffn[b->dt[q]](v->copy[b->page[q]], b->hidden, b->k[q], xq, b->w[q], t);
        __atomic_fetch_add(&mock_dtype_calls[b->dt[q]], 1, __ATOMIC_RELAXED);
    }
    for (uint32_t i = 0; i < b->hidden; i++) out[i] += t[i];
    pthread_mutex_lock(&v->mu);
    v->st.kernel_calls += b->n;
    v->st.batches++;
    pthread_mutex_unlock(&v->mu);
    return 1;
}

uint32_t vib3_vram_batch_count(const vib3_vram_batch *b) { return b->n; }
uint64_t vib3_vram_batch_page(const vib3_vram_batch *b, uint32_t i, float *w) {
    if (w) *w = b->w[i];
    return b->page[i];
}

void vib3_vram_stats_get(vib3_vram *v, vib3_vram_stats *s) {
    pthread_mutex_lock(&v->mu);
    *s = v->st;
    s->slots_used = v->used;
    pthread_mutex_unlock(&v->mu);
}

void vib3_vram_inject_launch_error(vib3_vram *v) {
    pthread_mutex_lock(&v->mu);
    v->fail_next = 1;
    pthread_mutex_unlock(&v->mu);
}

/* ---- whole model ---------------------------------------------------------------------- */

#define GEN 40

typedef struct run_out {
    vib3_vram_stats vs;
    uint64_t page_accesses;
    int had_pool;
} run_out;

/* greedy ids after a prompt; devices: 0 = CPU only, 1 = the mock tier; inject_after >= 0: fail then */
static int greedy(const char *model, const char *backend, int devices, int inject_after, uint32_t *ids, run_out *o) {
    mock_devices = devices;
    setenv("VIB3_PAGES_BACKEND", backend, 1);
    setenv("VIB3_EXPERT_BUDGET", "100%", 1);
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    vib3_engine_params ep = {.n_seq = 1, .ctx_size = 256, .batch_size = 8, .threads = 2,
                             .flags = VIB3_ENGINE_NO_TOKENIZER};
    vib3_engine *e = NULL;
    vib3_seq *s = NULL;
    int ok = 0;
    memset(o, 0, sizeof *o);
    CHECK_OK(vib3_engine_open(&e, model, &cfg, &ep));
    unsetenv("VIB3_PAGES_BACKEND");
    unsetenv("VIB3_EXPERT_BUDGET");
    if (!e) return 0;
    void *vr = vib3_pages_vram(vib3_engine_pages(e));
    o->had_pool = vr != NULL;
    CHECK_OK(vib3_seq_acquire(e, &s));
    if (!s) goto out;
    static const uint32_t prompt[] = {1, 450, 3114, 310, 278, 4086, 29892, 920, 17, 5};
    uint32_t vocab = vib3_engine_vocab(e), np = sizeof prompt / sizeof prompt[0], p[sizeof prompt / sizeof prompt[0]];
    for (uint32_t i = 0; i < np; i++) p[i] = prompt[i] % vocab;
    CHECK_OK(vib3_seq_prefill(s, p, np, NULL));
    for (int t = 0; t < GEN; t++) {
        ids[t] = vib3_argmax(vib3_seq_logits(s), vocab);
        if (t == inject_after && vr) vib3_vram_inject_launch_error(vr);
        vib3_err rc = vib3_seq_decode(s, ids[t]);
        CHECK_OK(rc);
        if (rc) goto out;
    }
    vib3_pages_stats ps;
    vib3_pages_stats_get(vib3_engine_pages(e), &ps);
    o->page_accesses = ps.page_accesses;
    if (vr) vib3_vram_stats_get(vr, &o->vs);
    ok = 1;
out:
    if (s) vib3_seq_release(s);
    vib3_engine_close(e);
    mock_devices = 0;
    return ok;
}

static void tier_matches_cpu(const char *backend, int k16) {
    const char *m = tinymix(k16);
    if (!m) SKIP("tinymix-brown not available (../shared/models or $VIB3_MODELS)");
    uint32_t cpu[GEN], tier[GEN];
    run_out a, b;
    const vib3_dtype want = k16 ? VIB3_DTYPE_Q4_K16 : VIB3_DTYPE_Q4_0, other = k16 ? VIB3_DTYPE_Q4_0 : VIB3_DTYPE_Q4_K16;
    uint64_t before = mock_dtype_calls[want], before_other = mock_dtype_calls[other];
    if (!greedy(m, backend, 0, -1, cpu, &a) || !greedy(m, backend, 1, -1, tier, &b)) return;
    /* the pages the tier computed were of the model's dtype */
    CHECK_MSG(mock_dtype_calls[want] - before == b.vs.kernel_calls && mock_dtype_calls[other] == before_other,
              "%s pages: %llu of %llu tier page products were %s", vib3_dtype_name(want),
              (unsigned long long)(mock_dtype_calls[want] - before), (unsigned long long)b.vs.kernel_calls,
              vib3_dtype_name(want));
    CHECK(!a.had_pool);
    CHECK_MSG(b.had_pool, "%s backend: no pool with a (mock) device", backend);
    printf("    %s: %llu promotions, %llu pages on the tier in %llu decode batches; %llu vs %llu buffer-manager "
           "accesses\n", backend, (unsigned long long)b.vs.promotions, (unsigned long long)b.vs.kernel_calls,
           (unsigned long long)b.vs.batches, (unsigned long long)b.page_accesses,
           (unsigned long long)a.page_accesses);
    CHECK_MSG(b.vs.batches > 0 && b.vs.kernel_calls > 0, "%s: the decode batches took no page", backend);
    /* pages a batch computes are not acquired */
    CHECK_MSG(b.page_accesses < a.page_accesses, "%s: %llu accesses with the tier, %llu without", backend,
              (unsigned long long)b.page_accesses, (unsigned long long)a.page_accesses);
    for (int t = 0; t < GEN; t++)
        CHECK_MSG(cpu[t] == tier[t], "%s: token %d: cpu %u, tier %u", backend, t, cpu[t], tier[t]);
}

TEST(mock_tier_frames_backend_matches_cpu) { tier_matches_cpu("frames", 0); }
TEST(mock_tier_mmap_backend_matches_cpu) { tier_matches_cpu("mmap", 0); }
/* the converter's default INT4 (Q4_K16): the pool opens and the decode batches take its pages */
TEST(mock_tier_q4_k16_frames_backend_matches_cpu) { tier_matches_cpu("frames", 1); }
TEST(mock_tier_q4_k16_mmap_backend_matches_cpu) { tier_matches_cpu("mmap", 1); }

/* a CUDA error before generated token GEN / 2 of model m: the tier turns itself off after one
 * error, batches ran before it, and the tokens are the CPU's */
static void failure_mid_run_falls_back(const char *m) {
    uint32_t cpu[GEN], tier[GEN];
    run_out a, b;
    if (!greedy(m, "frames", 0, -1, cpu, &a) || !greedy(m, "frames", 1, GEN / 2, tier, &b)) return;
    CHECK(b.vs.disabled == 1);
    CHECK_EQ_U64(b.vs.errors, 1);
    CHECK_MSG(b.vs.batches > 0, "no batch ran before the failure");
    for (int t = 0; t < GEN; t++) CHECK_MSG(cpu[t] == tier[t], "token %d: cpu %u, tier %u", t, cpu[t], tier[t]);
}

TEST(mock_tier_failure_mid_run_falls_back_to_cpu) {
    const char *m = tinymix_q4();
    if (!m) SKIP("tinymix-brown not available (../shared/models or $VIB3_MODELS)");
    failure_mid_run_falls_back(m);
}

/* the same with Q4_K16 pages: moe.c's fall-back must compute the failed batch's pages with the
 * page's own dtype (a Q4_0 kernel on Q4_K16 bytes would change the tokens) */
TEST(mock_tier_q4_k16_failure_mid_run_falls_back_to_cpu) {
    const char *m = tinymix(1);
    if (!m) SKIP("tinymix-brown not available (../shared/models or $VIB3_MODELS)");
    failure_mid_run_falls_back(m);
}
#endif
