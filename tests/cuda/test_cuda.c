/* test_cuda.c — T1 (cuda/vram.h): the Q4_0 and Q4_K16 page kernels against the CPU
 * references (vib3_page_ffn_q4_0_ref, vib3_page_ffn_q4_k16_ref) on random pages of odd sizes,
 * asynchronous promotion (a page is visible only once copied, the device copy
 * equals the host page), replacement by heat in a full pool, whole-model
 * greedy decoding with a VRAM budget identical to the CPU's (Q4_0 and Q4_K16 models), and a forced
 * CUDA error that falls back to the CPU and disables the tier.
 *
 * Built with `make CUDA=1`; the device tests skip without a device (saying
 * why) and the no-device test checks the tier stays off cleanly. In builds
 * without CUDA the file reduces to one skipped test.
 * tests/cuda/device_run.sh runs these on a GPU machine with a benchmark. */
#include "tests/test.h"

#ifndef VIB3_CUDA
TEST(cuda_not_built) { SKIP("built without CUDA=1"); }
#else
#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <unistd.h>

#include "convert/convert.h"
#include "cuda/vram.h"
#include "format/vib3_format.h"
#include "runtime/engine.h"
#include "simd/simd.h"
#include "tests/cuda/cuda_fixture.h"

static char no_device[256];

/* NULL when a device is present, else the reason to skip */
static const char *device_missing(void) {
    if (vib3_cuda_device_count() > 0) return NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    snprintf(no_device, sizeof no_device, "no CUDA device (%s)", e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
    cudaGetLastError();
    return no_device;
}

static uint64_t page_bytes(uint32_t h, uint32_t k) { return 3ull * k * (h / 32) * 18; }

static uint64_t page_bytes_k16(uint32_t h, uint32_t k) {
    return 2ull * k * vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, h) + (uint64_t)h * vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, k);
}
static uint64_t page_bytes_dt(uint32_t dt, uint32_t h, uint32_t k) {
    return dt == VIB3_DTYPE_Q4_K16 ? page_bytes_k16(h, k) : page_bytes(h, k);
}
static void random_page_dt(uint32_t dt, uint8_t *page, uint32_t h, uint32_t k, uint64_t *seed) {
    if (dt == VIB3_DTYPE_Q4_K16) random_page_k16(page, h, k, seed);
    else random_page(page, h, k, seed);
}

TEST(no_device_keeps_the_tier_off) {
    if (!device_missing()) SKIP("a CUDA device is present (the device tests cover it)");
    vib3_vram *v = (vib3_vram *)1;
    CHECK(vib3_vram_open(&v, 64ull << 20, 8192, 16, 64, 32) == VIB3_ERR_UNSUPPORTED);
    CHECK(v == NULL);
}

/* GPU page product vs vib3_page_ffn_q4_0_ref on pages of several odd shapes */
TEST(page_ffn_matches_cpu_reference) {
    const char *why = device_missing();
    if (why) SKIP(why);
    static const uint32_t shapes[][2] = {{32, 32}, {96, 32}, {96, 160}, {192, 384}, {1184, 96}, {4096, 512},
                                         {160, 1056}, {7168, 64}};
    const uint32_t hmax = 7168, kmax = 1056;
    uint64_t maxb = 0, seed = 7;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        if (page_bytes(shapes[s][0], shapes[s][1]) > maxb) maxb = page_bytes(shapes[s][0], shapes[s][1]);
    uint8_t *page = malloc(maxb);
    float *x = malloc(hmax * sizeof(float)), *gpu = malloc(hmax * sizeof(float)), *cpu = malloc(hmax * sizeof(float));
    vib3_block_q8_0 *xq = malloc(hmax / 32 * sizeof(vib3_block_q8_0));
    vib3_vram *v = NULL;
    CHECK_OK(vib3_vram_open(&v, 64ull << 20, (maxb + 4095) / 4096 * 4096, 64, hmax, kmax));
    if (!v || !page || !x || !gpu || !cpu || !xq) goto out;
    const vib3_simd_ops *ref = vib3_simd_ref();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t h = shapes[s][0], k = shapes[s][1];
        random_page(page, h, k, &seed);
        for (uint32_t i = 0; i < h; i++) x[i] = 2.0f * vib3_test_randf(&seed), gpu[i] = cpu[i] = 0.01f * (float)i;
        vib3_quantize_q8_0_ref(x, xq, h);
        CHECK_OK(vib3_vram_promote(v, s, page, page_bytes(h, k), 10));
        vib3_vram_wait(v, s);
        CHECK(vib3_vram_lookup(v, s) != NULL);
        CHECK_OK(vib3_vram_page_ffn_q4(v, s, VIB3_DTYPE_Q4_0, h, k, xq, 0.75f, gpu));
        ref->page_ffn[VIB3_DTYPE_Q4_0](page, h, k, xq, 0.75f, cpu);
        double err = 0, mag = 0;
        uint32_t exact = 0;
        for (uint32_t i = 0; i < h; i++) {
            double d = fabs((double)gpu[i] - cpu[i]);
            if (d > err) err = d;
            if (fabs(cpu[i]) > mag) mag = fabs(cpu[i]);
            exact += gpu[i] == cpu[i];
        }
        /* only expf differs (<= 2 ulp): at worst an activation's Q8_0 rounding flips by one step */
        CHECK_MSG(err <= 1e-3 * mag + 1e-6, "page %ux%u: max abs error %g (output magnitude %g)", h, k, err, mag);
        printf("    page hidden %u, K %u: max |gpu - cpu| %.3g of %.3g, %u / %u outputs bit-identical\n", h, k, err,
               mag, exact, h);
    }
    /* not resident: a clear error, out untouched */
    memcpy(gpu, cpu, 32 * sizeof(float));
    CHECK(vib3_vram_page_ffn_q4(v, 63, VIB3_DTYPE_Q4_0, 32, 32, xq, 1.0f, gpu) == VIB3_ERR_NOT_FOUND);
    CHECK(!memcmp(gpu, cpu, 32 * sizeof(float)));
    vib3_vram_stats st;
    vib3_vram_stats_get(v, &st);
    CHECK_EQ_U64(st.kernel_calls, sizeof shapes / sizeof shapes[0]);
    CHECK_EQ_U64(st.errors, 0);
out:
    vib3_vram_close(v);
    free(page), free(x), free(gpu), free(cpu), free(xq);
}

/* asynchronous promotion: the device copy is the host page; full pool replaced by heat */
TEST(promotion_lookup_and_replacement_by_heat) {
    const char *why = device_missing();
    if (why) SKIP(why);
    static uint8_t page[4][8192], back[8192];
    uint64_t seed = 3;
    for (int p = 0; p < 4; p++)
        for (int i = 0; i < 8192; i++) page[p][i] = (uint8_t)vib3_test_rand(&seed);
    vib3_vram *v = NULL;
    CHECK_OK(vib3_vram_open(&v, 3 * 8192, 8192, 10, 64, 32));
    if (!v) return;
    CHECK(vib3_vram_lookup(v, 0) == NULL); /* never promoted */
    for (uint64_t p = 0; p < 3; p++) CHECK_OK(vib3_vram_promote(v, p, page[p], 8192, (uint32_t)(5 + p)));
    for (uint64_t p = 0; p < 3; p++) vib3_vram_wait(v, p);
    for (uint64_t p = 0; p < 3; p++) {
        const void *d = vib3_vram_lookup(v, p);
        CHECK(d != NULL);
        if (d && cudaMemcpy(back, d, 8192, cudaMemcpyDeviceToHost) == cudaSuccess)
            CHECK_MSG(!memcmp(back, page[p], 8192), "page %llu: device copy differs", (unsigned long long)p);
    }
    CHECK_OK(vib3_vram_promote(v, 7, page[3], 8192, 2)); /* colder than all: rejected */
    vib3_vram_wait(v, 7);
    CHECK(vib3_vram_lookup(v, 7) == NULL);
    CHECK_OK(vib3_vram_promote(v, 8, page[3], 8192, 9)); /* replaces page 0 (heat 5) */
    vib3_vram_wait(v, 8);
    const void *d8 = vib3_vram_lookup(v, 8);
    CHECK(d8 != NULL);
    if (d8 && cudaMemcpy(back, d8, 8192, cudaMemcpyDeviceToHost) == cudaSuccess) CHECK(!memcmp(back, page[3], 8192));
    CHECK(vib3_vram_lookup(v, 0) == NULL);
    CHECK(vib3_vram_lookup(v, 1) != NULL);
    CHECK_OK(vib3_vram_promote(v, 9, page[3], 8192, 5)); /* not hotter than the coldest (6): rejected */
    CHECK(vib3_vram_lookup(v, 9) == NULL);
    CHECK(vib3_vram_promote(v, 10, page[3], 8192, 99) == VIB3_ERR_INVALID); /* page out of range */
    vib3_vram_stats s;
    vib3_vram_stats_get(v, &s);
    CHECK_EQ_U64(s.slots_total, 3);
    CHECK_EQ_U64(s.promotions, 4);
    CHECK_EQ_U64(s.replacements, 1);
    CHECK_EQ_U64(s.rejected, 2);
    CHECK_EQ_U64(s.errors, 0);
    vib3_vram_close(v);
}

TEST(open_without_budget_room) {
    const char *why = device_missing();
    if (why) SKIP(why);
    vib3_vram *v;
    CHECK(vib3_vram_open(&v, 100, 8192, 10, 64, 32) == VIB3_ERR_LIMIT);
}

/* a real CUDA launch error (invalid configuration): the page falls back, the tier turns off */
TEST(forced_cuda_error_falls_back) {
    const char *why = device_missing();
    if (why) SKIP(why);
    const uint32_t h = 96, k = 64;
    static uint8_t page[3 * 64 * 3 * 18];
    float x[96], out[96], keep[96];
    vib3_block_q8_0 xq[3];
    uint64_t seed = 5;
    random_page(page, h, k, &seed);
    for (uint32_t i = 0; i < h; i++) x[i] = vib3_test_randf(&seed), out[i] = keep[i] = (float)i;
    vib3_quantize_q8_0_ref(x, xq, h);
    vib3_vram *v = NULL;
    CHECK_OK(vib3_vram_open(&v, 1 << 20, 16384, 4, h, k));
    if (!v) return;
    CHECK_OK(vib3_vram_promote(v, 1, page, sizeof page, 9));
    vib3_vram_wait(v, 1);
    CHECK(vib3_vram_try_page_ffn_q4(v, 1, VIB3_DTYPE_Q4_0, h, k, xq, 1.0f, out) == 1);
    memcpy(keep, out, sizeof out);
    vib3_vram_inject_launch_error(v);
    CHECK(vib3_vram_page_ffn_q4(v, 1, VIB3_DTYPE_Q4_0, h, k, xq, 1.0f, out) == VIB3_ERR_IO);
    CHECK_MSG(strstr(vib3_test_errmsg(), "cuda") != NULL, "error message: %s", vib3_test_errmsg());
    CHECK(!memcmp(out, keep, sizeof out)); /* the failed page left out alone */
    CHECK(vib3_vram_lookup(v, 1) == NULL); /* tier off */
    CHECK(vib3_vram_try_page_ffn_q4(v, 1, VIB3_DTYPE_Q4_0, h, k, xq, 1.0f, out) == 0);
    CHECK_OK(vib3_vram_promote(v, 2, page, sizeof page, 99)); /* a no-op now, not an error */
    vib3_vram_stats s;
    vib3_vram_stats_get(v, &s);
    CHECK(s.disabled == 1);
    CHECK_EQ_U64(s.errors, 1);
    CHECK_EQ_U64(s.kernel_calls, 1);
    CHECK_MSG(strstr(s.last_error, "cudaErrorInvalidConfiguration") != NULL, "last error: %s", s.last_error);
    vib3_vram_close(v);
}

/* a decode batch of pages of different k == the reference's page products in order; a CUDA error in
 * a batch leaves out alone, lists the pages for the CPU and unpins their slots */
TEST(batch_matches_cpu_reference_and_falls_back) {
    const char *why = device_missing();
    if (why) SKIP(why);
    static const uint32_t ks[] = {32, 64, 32, 96, 160, 32, 1056, 64, 32, 32, 128, 32, 32, 64, 32, 32, 32, 96,
                                  32, 32, 64, 32, 32, 32, 32, 32, 32, 32, 32, 32, 64, 32, 32, 96};
    const uint32_t n = sizeof ks / sizeof ks[0], h = 1184;
    uint64_t seed = 29, slot = 3ull * 1056 * (h / 32) * 18;
    uint8_t *pages[sizeof ks / sizeof ks[0]];
    float x[1184], gpu[1184], cpu[1184], keep[1184];
    vib3_block_q8_0 xq[1184 / 32];
    vib3_vram *v = NULL;
    CHECK_OK(vib3_vram_open(&v, (n + 2) * ((slot + 4095) / 4096 * 4096), (slot + 4095) / 4096 * 4096, n + 2, h, 1056));
    if (!v) return;
    for (uint32_t q = 0; q < n; q++) {
        pages[q] = malloc(page_bytes(h, ks[q]));
        random_page(pages[q], h, ks[q], &seed);
        CHECK_OK(vib3_vram_promote(v, q, pages[q], page_bytes(h, ks[q]), 10));
        vib3_vram_wait(v, q);
    }
    for (uint32_t i = 0; i < h; i++) x[i] = 2.0f * vib3_test_randf(&seed), gpu[i] = cpu[i] = 0.0f;
    vib3_quantize_q8_0_ref(x, xq, h);
    vib3_vram_batch *b = vib3_vram_batch_begin(v, 3, h);
    CHECK(b != NULL);
    if (!b) goto out;
    for (uint32_t q = 0; q < n; q++)
        CHECK(vib3_vram_batch_add(b, q, VIB3_DTYPE_Q4_0, ks[q], 0.1f + 0.05f * (float)q) == 1);
    CHECK(vib3_vram_batch_add(b, n + 1, VIB3_DTYPE_Q4_0, 32, 1.0f) == 0); /* never promoted */
    CHECK(vib3_vram_batch_add(b, 0, VIB3_DTYPE_Q8_0, ks[0], 1.0f) == 0);  /* a dtype the kernels do not take */
    CHECK_EQ_U64(vib3_vram_batch_count(b), n);
    CHECK(vib3_vram_batch_run(b, xq, gpu) == 1);
    for (uint32_t q = 0; q < n; q++)
        vib3_simd_ref()->page_ffn[VIB3_DTYPE_Q4_0](pages[q], h, ks[q], xq, 0.1f + 0.05f * (float)q, cpu);
    double err = 0, mag = 0;
    uint32_t exact = 0;
    for (uint32_t i = 0; i < h; i++) {
        double d = fabs((double)gpu[i] - cpu[i]);
        if (d > err) err = d;
        if (fabs(cpu[i]) > mag) mag = fabs(cpu[i]);
        exact += gpu[i] == cpu[i];
    }
    CHECK_MSG(err <= 1e-3 * mag + 1e-6, "batch: max abs error %g (output magnitude %g)", err, mag);
    printf("    batch of %u pages, hidden %u: max |gpu - cpu| %.3g of %.3g, %u / %u bit-identical\n", n, h, err, mag,
           exact, h);
    /* a forced error: out untouched, the pages listed for the CPU, the tier off */
    memcpy(keep, gpu, sizeof gpu);
    b = vib3_vram_batch_begin(v, 3, h);
    CHECK(b != NULL);
    if (!b) goto out;
    for (uint32_t q = 0; q < 3; q++) CHECK(vib3_vram_batch_add(b, q, VIB3_DTYPE_Q4_0, ks[q], 1.0f) == 1);
    vib3_vram_inject_launch_error(v);
    CHECK(vib3_vram_batch_run(b, xq, gpu) == 0);
    CHECK(!memcmp(gpu, keep, sizeof gpu));
    CHECK_EQ_U64(vib3_vram_batch_count(b), 3);
    float wq = 0;
    CHECK_EQ_U64(vib3_vram_batch_page(b, 2, &wq), 2);
    CHECK(wq == 1.0f);
    CHECK(vib3_vram_batch_begin(v, 3, h) == NULL); /* disabled */
    vib3_vram_stats st;
    vib3_vram_stats_get(v, &st);
    CHECK(st.disabled == 1);
    CHECK_EQ_U64(st.batches, 1);
    CHECK_EQ_U64(st.kernel_calls, n);
out:
    vib3_vram_close(v);
    for (uint32_t q = 0; q < n; q++) free(pages[q]);
}

/* GPU page product vs vib3_page_ffn_q4_k16_ref: odd hidden (192: a short super-block, 288: a full one
 * and a 1-chunk tail, 4096 + 32, 7168) and K from 32 to 256 (and 288, 1056: down rows of several
 * super-blocks). Same bound as Q4_0: only expf differs. Also: a Q4_K16 page sized by its own row
 * bytes fits a slot that 3 * K * hidden / 32 * 18 would not describe; a dtype the kernel does not take
 * is refused without touching out. */
TEST(page_ffn_q4_k16_matches_cpu_reference) {
    const char *why = device_missing();
    if (why) SKIP(why);
    static const uint32_t shapes[][2] = {{192, 32}, {192, 256}, {288, 96}, {288, 160}, {4128, 64}, {4128, 224},
                                         {96, 288}, {7168, 64}, {4096, 1056}};
    const uint32_t hmax = 7168, kmax = 1056;
    uint64_t maxb = 0, seed = 17;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        if (page_bytes_k16(shapes[s][0], shapes[s][1]) > maxb) maxb = page_bytes_k16(shapes[s][0], shapes[s][1]);
    uint8_t *page = malloc(maxb);
    float *x = malloc(hmax * sizeof(float)), *gpu = malloc(hmax * sizeof(float)), *cpu = malloc(hmax * sizeof(float));
    vib3_block_q8_0 *xq = malloc(hmax / 32 * sizeof(vib3_block_q8_0));
    vib3_vram *v = NULL;
    CHECK_OK(vib3_vram_open(&v, 128ull << 20, (maxb + 4095) / 4096 * 4096, 64, hmax, kmax));
    if (!v || !page || !x || !gpu || !cpu || !xq) goto out;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t h = shapes[s][0], k = shapes[s][1];
        random_page_k16(page, h, k, &seed);
        for (uint32_t i = 0; i < h; i++) x[i] = 2.0f * vib3_test_randf(&seed), gpu[i] = cpu[i] = 0.01f * (float)i;
        vib3_quantize_q8_0_ref(x, xq, h);
        CHECK_OK(vib3_vram_promote(v, s, page, page_bytes_k16(h, k), 10));
        vib3_vram_wait(v, s);
        CHECK(vib3_vram_lookup(v, s) != NULL);
        CHECK_OK(vib3_vram_page_ffn_q4(v, s, VIB3_DTYPE_Q4_K16, h, k, xq, 0.75f, gpu));
        vib3_page_ffn_q4_k16_ref(page, h, k, xq, 0.75f, cpu);
        double err = 0, mag = 0;
        uint32_t exact = 0;
        for (uint32_t i = 0; i < h; i++) {
            double d = fabs((double)gpu[i] - cpu[i]);
            if (d > err) err = d;
            if (fabs(cpu[i]) > mag) mag = fabs(cpu[i]);
            exact += gpu[i] == cpu[i];
        }
        CHECK_MSG(err <= 1e-3 * mag + 1e-6, "q4_k16 page %ux%u: max abs error %g (output magnitude %g)", h, k, err,
                  mag);
        printf("    q4_k16 page hidden %u, K %u: max |gpu - cpu| %.3g of %.3g, %u / %u outputs bit-identical\n", h, k,
               err, mag, exact, h);
    }
    memcpy(gpu, cpu, 32 * sizeof(float));
    CHECK(vib3_vram_page_ffn_q4(v, 0, VIB3_DTYPE_Q8_0, 192, 32, xq, 1.0f, gpu) == VIB3_ERR_INVALID);
    CHECK(vib3_vram_try_page_ffn_q4(v, 0, VIB3_DTYPE_F16, 192, 32, xq, 1.0f, gpu) == 0);
    CHECK(!memcmp(gpu, cpu, 32 * sizeof(float)));
    vib3_vram_stats st;
    vib3_vram_stats_get(v, &st);
    CHECK_EQ_U64(st.kernel_calls, sizeof shapes / sizeof shapes[0]);
    CHECK_EQ_U64(st.errors, 0);
out:
    vib3_vram_close(v);
    free(page), free(x), free(gpu), free(cpu), free(xq);
}

/* a decode batch mixing Q4_K16 and Q4_0 pages == the references' page products in order */
TEST(batch_q4_k16_matches_cpu_reference) {
    const char *why = device_missing();
    if (why) SKIP(why);
    static const uint32_t ks[] = {32, 64, 256, 96, 160, 32, 224, 64, 32, 32, 128, 32, 288, 64, 32, 32, 32, 96,
                                  32, 32, 64, 32, 32, 192, 32, 32, 32, 32, 32, 32, 64, 32, 32, 1056};
    const uint32_t n = sizeof ks / sizeof ks[0], h = 4128;
    uint64_t seed = 31, slot = (page_bytes_k16(h, 1056) + 4095) / 4096 * 4096; /* the larger of the two dtypes */
    CHECK(page_bytes_k16(h, 1056) > page_bytes(h, 1056));
    uint8_t *pages[sizeof ks / sizeof ks[0]] = {0};
    uint32_t dts[sizeof ks / sizeof ks[0]];
    static float x[4128], gpu[4128], cpu[4128];
    static vib3_block_q8_0 xq[4128 / 32];
    vib3_vram *v = NULL;
    CHECK_OK(vib3_vram_open(&v, (n + 2) * slot, slot, n + 2, h, 1056));
    if (!v) return;
    for (uint32_t q = 0; q < n; q++) {
        dts[q] = q % 5 == 3 ? VIB3_DTYPE_Q4_0 : VIB3_DTYPE_Q4_K16;
        pages[q] = malloc(page_bytes_dt(dts[q], h, ks[q]));
        random_page_dt(dts[q], pages[q], h, ks[q], &seed);
        CHECK_OK(vib3_vram_promote(v, q, pages[q], page_bytes_dt(dts[q], h, ks[q]), 10));
        vib3_vram_wait(v, q);
    }
    for (uint32_t i = 0; i < h; i++) x[i] = 2.0f * vib3_test_randf(&seed), gpu[i] = cpu[i] = 0.0f;
    vib3_quantize_q8_0_ref(x, xq, h);
    vib3_vram_batch *b = vib3_vram_batch_begin(v, 5, h);
    CHECK(b != NULL);
    if (!b) goto out;
    for (uint32_t q = 0; q < n; q++) CHECK(vib3_vram_batch_add(b, q, dts[q], ks[q], 0.1f + 0.05f * (float)q) == 1);
    CHECK(vib3_vram_batch_run(b, xq, gpu) == 1);
    for (uint32_t q = 0; q < n; q++)
        vib3_simd_ref()->page_ffn[dts[q]](pages[q], h, ks[q], xq, 0.1f + 0.05f * (float)q, cpu);
    double err = 0, mag = 0;
    uint32_t exact = 0;
    for (uint32_t i = 0; i < h; i++) {
        double d = fabs((double)gpu[i] - cpu[i]);
        if (d > err) err = d;
        if (fabs(cpu[i]) > mag) mag = fabs(cpu[i]);
        exact += gpu[i] == cpu[i];
    }
    CHECK_MSG(err <= 1e-3 * mag + 1e-6, "mixed batch: max abs error %g (output magnitude %g)", err, mag);
    printf("    mixed q4_k16 / q4_0 batch of %u pages, hidden %u: max |gpu - cpu| %.3g of %.3g, %u / %u bit-identical\n",
           n, h, err, mag, exact, h);
    vib3_vram_stats st;
    vib3_vram_stats_get(v, &st);
    CHECK_EQ_U64(st.errors, 0);
    CHECK_EQ_U64(st.kernel_calls, n);
out:
    vib3_vram_close(v);
    for (uint32_t q = 0; q < n; q++) free(pages[q]);
}

/* ---- whole model ---------------------------------------------------------- */

#define GEN 48

typedef struct decode_run {
    const char *backend;    /* "mmap" or "frames" (either opens the tier when a device is present) */
    uint64_t vram_budget;   /* cfg.vram_budget_bytes: 0 = auto; 1 = too small for a page: no pool */
    int inject_after;       /* >= 0: force a CUDA error before decoding that generated token */
    uint32_t threads, warm; /* warm: untimed decode steps before the timed ones */
    /* out */
    double tok_s;           /* timed decode steps per second */
    vib3_vram_stats vs;     /* zeros when no pool */
} decode_run;

/* greedy ids after a fixed prompt: r->warm untimed then n timed decode steps, ids (warm + n) */
static int decode(const char *model, decode_run *r, uint32_t n, uint32_t *ids) {
    setenv("VIB3_PAGES_BACKEND", r->backend, 1);
    setenv("VIB3_EXPERT_BUDGET", "100%", 1); /* frames for every page, not 75% of RAM */
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    cfg.vram_budget_bytes = r->vram_budget;
    vib3_engine_params ep = {.n_seq = 1, .ctx_size = 512, .batch_size = 8, .threads = r->threads,
                             .flags = VIB3_ENGINE_NO_TOKENIZER};
    vib3_engine *e = NULL;
    vib3_seq *s = NULL;
    int ok = 0;
    memset(&r->vs, 0, sizeof r->vs);
    r->tok_s = 0;
    CHECK_OK(vib3_engine_open(&e, model, &cfg, &ep));
    unsetenv("VIB3_PAGES_BACKEND");
    unsetenv("VIB3_EXPERT_BUDGET");
    if (!e) return 0;
    vib3_pages_stats ps;
    vib3_pages_stats_get(vib3_engine_pages(e), &ps);
    CHECK_MSG(!strcmp(ps.backend, "mmap") == !strcmp(r->backend, "mmap"), "asked for %s, the pages run on %s",
              r->backend, ps.backend);
    void *vr = vib3_pages_vram(vib3_engine_pages(e));
    CHECK_OK(vib3_seq_acquire(e, &s));
    if (!s) goto out;
    static const uint32_t prompt[] = {1, 450, 3114, 310, 278, 4086, 29892, 920};
    uint32_t vocab = vib3_engine_vocab(e), np = sizeof prompt / sizeof prompt[0];
    uint32_t p[sizeof prompt / sizeof prompt[0]];
    for (uint32_t i = 0; i < np; i++) p[i] = prompt[i] % vocab;
    CHECK_OK(vib3_seq_prefill(s, p, np, NULL));
    uint64_t t0 = 0;
    for (uint32_t t = 0; t < r->warm + n; t++) {
        if (t == r->warm) t0 = vib3_now_ns();
        ids[t] = vib3_argmax(vib3_seq_logits(s), vocab);
        if ((int)t == r->inject_after && vr) vib3_vram_inject_launch_error(vr);
        vib3_err rc = vib3_seq_decode(s, ids[t]);
        CHECK_OK(rc);
        if (rc) goto out;
    }
    r->tok_s = n ? n / ((double)(vib3_now_ns() - t0) * 1e-9) : 0;
    if (vr) vib3_vram_stats_get(vr, &r->vs);
    ok = 1;
out:
    if (s) vib3_seq_release(s);
    vib3_engine_close(e);
    return ok;
}

/* vram: 0 = no pool (budget too small for a page), else a 64 MiB pool */
static int greedy(const char *model, const char *backend, int vram, int inject_after, uint32_t *ids,
                  vib3_vram_stats *vs) {
    decode_run r = {.backend = backend, .vram_budget = vram ? 64ull << 20 : 1, .inject_after = inject_after,
                    .threads = 2};
    int ok = decode(model, &r, GEN, ids);
    *vs = r.vs;
    return ok;
}

TEST(whole_model_greedy_matches_cpu) {
    const char *why = device_missing();
    if (why) SKIP(why);
    const char *m = tinymix_q4();
    if (!m) SKIP("tinymix-brown not available (../shared/models or $VIB3_MODELS)");
    uint32_t cpu[GEN], gpu[GEN];
    vib3_vram_stats vs;
    if (!greedy(m, "mmap", 0, -1, cpu, &vs) || !greedy(m, "frames", 1, -1, gpu, &vs)) return;
    printf("    VRAM tier: %llu promotions, %llu page products on the GPU in %llu decode batches, device %s\n",
           (unsigned long long)vs.promotions, (unsigned long long)vs.kernel_calls, (unsigned long long)vs.batches,
           vs.device);
    CHECK_MSG(vs.kernel_calls > 0, "no page ran on the GPU (promotions %llu)", (unsigned long long)vs.promotions);
    CHECK_MSG(vs.batches > 0, "no decode batch ran on the GPU");
    CHECK_EQ_U64(vs.errors, 0);
    for (int t = 0; t < GEN; t++) CHECK_MSG(cpu[t] == gpu[t], "token %d: cpu %u, gpu tier %u", t, cpu[t], gpu[t]);
}

/* the same with Q4_K16 experts (the converter's default INT4), on both backends */
TEST(whole_model_q4_k16_greedy_matches_cpu) {
    const char *why = device_missing();
    if (why) SKIP(why);
    const char *m = tinymix(1);
    if (!m) SKIP("tinymix-brown not available (../shared/models or $VIB3_MODELS)");
    uint32_t cpu[GEN], gpu[GEN];
    vib3_vram_stats vs;
    if (!greedy(m, "mmap", 0, -1, cpu, &vs)) return;
    for (int be = 0; be < 2; be++) {
        const char *backend = be ? "mmap" : "frames";
        if (!greedy(m, backend, 1, -1, gpu, &vs)) return;
        printf("    q4_k16, %s: %llu promotions, %llu page products on the GPU in %llu decode batches\n", backend,
               (unsigned long long)vs.promotions, (unsigned long long)vs.kernel_calls,
               (unsigned long long)vs.batches);
        CHECK_MSG(vs.kernel_calls > 0 && vs.batches > 0, "q4_k16, %s: no page ran on the GPU", backend);
        CHECK_EQ_U64(vs.errors, 0);
        for (int t = 0; t < GEN; t++)
            CHECK_MSG(cpu[t] == gpu[t], "q4_k16, %s: token %d: cpu %u, gpu tier %u", backend, t, cpu[t], gpu[t]);
    }
}

/* the mmap backend (a model that fits the RAM budget) promotes from the mapping and uses the tier too */
TEST(whole_model_mmap_backend_uses_the_tier) {
    const char *why = device_missing();
    if (why) SKIP(why);
    const char *m = tinymix_q4();
    if (!m) SKIP("tinymix-brown not available (../shared/models or $VIB3_MODELS)");
    uint32_t cpu[GEN], gpu[GEN];
    vib3_vram_stats vs;
    if (!greedy(m, "mmap", 0, -1, cpu, &vs) || !greedy(m, "mmap", 1, -1, gpu, &vs)) return;
    CHECK_MSG(vs.kernel_calls > 0 && vs.batches > 0, "mmap backend: %llu pages in %llu batches on the GPU",
              (unsigned long long)vs.kernel_calls, (unsigned long long)vs.batches);
    CHECK_EQ_U64(vs.errors, 0);
    for (int t = 0; t < GEN; t++) CHECK_MSG(cpu[t] == gpu[t], "token %d: cpu %u, gpu tier %u", t, cpu[t], gpu[t]);
}

TEST(whole_model_cuda_error_mid_run_falls_back) {
    const char *why = device_missing();
    if (why) SKIP(why);
    const char *m = tinymix_q4();
    if (!m) SKIP("tinymix-brown not available (../shared/models or $VIB3_MODELS)");
    uint32_t cpu[GEN], gpu[GEN];
    vib3_vram_stats vs;
    if (!greedy(m, "mmap", 0, -1, cpu, &vs) || !greedy(m, "frames", 1, GEN / 2, gpu, &vs)) return;
    CHECK(vs.disabled == 1);
    CHECK_EQ_U64(vs.errors, 1);
    CHECK_MSG(vs.kernel_calls > 0, "no page ran on the GPU before the error");
    for (int t = 0; t < GEN; t++) CHECK_MSG(cpu[t] == gpu[t], "token %d: cpu %u, gpu tier %u", t, cpu[t], gpu[t]);
}
/* without a device the CUDA build's engine has no VRAM tier and decodes exactly as the CPU */
TEST(no_device_engine_runs_on_cpu) {
    if (!device_missing()) SKIP("a CUDA device is present (whole_model_greedy_matches_cpu covers it)");
    const char *m = tinymix_q4();
    if (!m) SKIP("tinymix-brown not available (../shared/models or $VIB3_MODELS)");
    uint32_t a[GEN], b[GEN];
    vib3_vram_stats vs;
    if (!greedy(m, "mmap", 1, -1, a, &vs) || !greedy(m, "frames", 1, -1, b, &vs)) return;
    CHECK_EQ_U64(vs.slots_total, 0); /* greedy() found no pool */
    for (int t = 0; t < GEN; t++) CHECK_MSG(a[t] == b[t], "token %d: mmap %u, frames %u", t, a[t], b[t]);
}

/* Decode benchmark, run by tests/cuda/device_run.sh: VIB3_CUDA_BENCH="name=model.vib3 ..." gives
 * tok/s of the CPU (mmap), the CPU on frames (no pool) and the GPU tier (frames or mmap + VRAM),
 * VIB3_CUDA_BENCH_N timed tokens (default 64) after VIB3_CUDA_BENCH_WARM untimed ones (default 32:
 * a page is promoted on its 4th access), VIB3_CUDA_BENCH_THREADS threads (default: online cores);
 * the four greedy token sequences must agree. */
TEST(bench_decode_cpu_vs_gpu_tier) {
    const char *list = getenv("VIB3_CUDA_BENCH");
    if (!list || !*list) SKIP("set VIB3_CUDA_BENCH=\"name=model.vib3 ...\" (tests/cuda/device_run.sh does)");
    const char *why = device_missing();
    if (why) SKIP(why);
    const char *ns = getenv("VIB3_CUDA_BENCH_N"), *ts = getenv("VIB3_CUDA_BENCH_THREADS");
    const char *ws = getenv("VIB3_CUDA_BENCH_WARM");
    uint32_t n = ns ? (uint32_t)atoi(ns) : 64, th = ts ? (uint32_t)atoi(ts) : (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t warm = ws ? (uint32_t)atoi(ws) : 32;
    if (n == 0 || n > 400) n = 64;
    if (warm > 64) warm = 64;
    static uint32_t ids[4][64 + 400];
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    printf("    | model | config | threads | decode tok/s | pages on GPU | GPU batches | promotions | VRAM slots |\n");
    printf("    | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        const char *name = tok, *path = eq ? eq + 1 : tok;
        if (eq) *eq = 0;
        decode_run runs[4] = {{.backend = "mmap", .vram_budget = 1, .inject_after = -1, .threads = th, .warm = warm},
                              {.backend = "frames", .vram_budget = 1, .inject_after = -1, .threads = th, .warm = warm},
                              {.backend = "frames", .vram_budget = 0, .inject_after = -1, .threads = th, .warm = warm},
                              {.backend = "mmap", .vram_budget = 0, .inject_after = -1, .threads = th, .warm = warm}};
        static const char *label[4] = {"CPU (mmap)", "CPU (frames, no VRAM pool)", "GPU tier (frames + VRAM)",
                                       "GPU tier (mmap + VRAM)"};
        for (int c = 0; c < 4; c++) {
            if (!decode(path, &runs[c], n, ids[c])) return;
            printf("    | %s | %s | %u | %.2f | %llu | %llu | %llu | %llu |\n", name, label[c], th, runs[c].tok_s,
                   (unsigned long long)runs[c].vs.kernel_calls, (unsigned long long)runs[c].vs.batches,
                   (unsigned long long)runs[c].vs.promotions, (unsigned long long)runs[c].vs.slots_total);
            fflush(stdout);
        }
        for (int c = 2; c < 4; c++) {
            CHECK_MSG(runs[c].vs.kernel_calls > 0, "%s, %s: no page ran on the GPU", name, label[c]);
            CHECK_EQ_U64(runs[c].vs.errors, 0);
        }
        for (uint32_t t = 0; t < warm + n; t++)
            CHECK_MSG(ids[0][t] == ids[1][t] && ids[0][t] == ids[2][t] && ids[0][t] == ids[3][t],
                      "%s: token %u: cpu %u, frames %u, gpu tier frames %u, mmap %u", name, t, ids[0][t], ids[1][t],
                      ids[2][t], ids[3][t]);
    }
}
#endif
