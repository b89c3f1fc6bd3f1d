/* test_cuda_emu.c — the CUDA page kernels (cuda/page_kernels.h, the source
 * cuda/vram.cu compiles for the GPU; Q4_0 and Q4_K16 pages) executed on the CPU: every warp runs as
 * 32 coroutines that meet at every __syncwarp (and exchange values through
 * an array for __shfl_xor_sync), thread blocks and their warps one after another (the
 * kernels share nothing across warps), with the launch shapes vram.cu uses.
 * With the host's expf every operation is the reference's, so the output must
 * be bit-identical to vib3_page_ffn_q4_0_ref / vib3_page_ffn_q4_k16_ref on random pages of odd shapes:
 * this checks the kernels' indexing, page / block layout and arithmetic
 * order in every build, without a GPU. What it cannot check: CUDA's expf
 * (<= 2 ulp), the device memory model, launches and copies (test_cuda.c on a
 * GPU does). tests/cuda/test_cuda_emu_mutants.sh rebuilds this test against mutated copies of
 * the kernel source (wrong nibble, sub-scale, sub-min, super-block offset, ...) and requires each
 * to fail, so these comparisons are shown to catch decoding mistakes. */
#include "tests/test.h"

#include <stdlib.h>
#include <ucontext.h>

#include "format/vib3_format.h"
#include "simd/simd.h"
#include "tests/cuda/cuda_fixture.h"

/* ---- the CUDA built-ins the kernels use, on coroutines ------------------------------------
 * A warp's 32 lanes are ucontext coroutines on this thread, run round robin: a
 * lane runs until its next __syncwarp (or its end), then the next lane; every
 * lane passes the same barriers (the kernels' control flow is warp-uniform), so
 * when lane 0 resumes, all 32 have arrived. Cheaper than 32 threads and
 * barriers by two orders of magnitude on a busy machine. */
typedef struct { uint32_t x, y; } emu_dim3;
static emu_dim3 threadIdx, blockIdx;
static uint32_t emu_block_y;
static float *emu_shared;
static ucontext_t emu_sched, emu_lane[32];
static uint32_t emu_cur;
static int emu_done[32];
static float emu_xch[32];
static void (*emu_body)(void);

#define __host__
#define __device__
#define __global__
static inline void __syncwarp(void) { swapcontext(&emu_lane[emu_cur], &emu_sched); }
static inline float __shfl_xor_sync(unsigned mask, float v, int o) {
    (void)mask;
    uint32_t lane = threadIdx.x % 32;
    emu_xch[lane] = v;
    __syncwarp();
    float r = emu_xch[lane ^ (uint32_t)o];
    __syncwarp();
    return r;
}
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
#define VIB3_PK_DYN_SHARED(name) float *name = emu_shared
#define VIB3_PK_F16_TO_F32(h) vib3_f16_to_f32((uint16_t)(h))
#define VIB3_PK_F32_TO_F16(f) vib3_f32_to_f16(f)
#include "cuda/page_kernels.h"

static void emu_lane_entry(void) {
    emu_body();
    emu_done[emu_cur] = 1; /* returns to emu_sched through uc_link */
}

/* <<<grid, PK_THREADS, smem>>>: blocks and their warps in order, each warp as 32 coroutines */
static void emu_launch(void (*body)(void), uint32_t grid, uint32_t smem) {
    static char stacks[32][32768];
    emu_body = body;
    emu_shared = calloc(smem / sizeof(float) + 1, sizeof(float));
    for (volatile uint32_t b = 0; b < grid; b++) /* volatile: live across swapcontext */
        for (volatile uint32_t wp = 0; wp < WARPS; wp++) {
            for (uint32_t l = 0; l < 32; l++) {
                getcontext(&emu_lane[l]);
                emu_lane[l].uc_stack.ss_sp = stacks[l];
                emu_lane[l].uc_stack.ss_size = sizeof stacks[l];
                emu_lane[l].uc_link = &emu_sched;
                makecontext(&emu_lane[l], emu_lane_entry, 0);
                emu_done[l] = 0;
            }
            for (volatile int left = 32; left > 0;) {
                left = 0;
                for (volatile uint32_t l = 0; l < 32; l++) {
                    if (emu_done[l]) continue;
                    emu_cur = l;
                    threadIdx.x = wp * 32 + l;
                    blockIdx.x = b;
                    blockIdx.y = emu_block_y;
                    swapcontext(&emu_sched, &emu_lane[l]);
                    left += !emu_done[l];
                }
            }
        }
    free(emu_shared);
}

/* the kernel arguments (one launch at a time) */
static struct {
    const uint8_t *page, *xq;
    uint32_t dt, hidden, k;
    float *act, *y, weight;
    uint8_t *actq;
    const pk_item *items;
    uint32_t n_items;
} ka;
static void run_gate_up(void) { k_gate_up(ka.page, ka.dt, ka.hidden, ka.k, ka.xq, ka.act); }
static void run_quant(void) { k_quant_q8(ka.act, ka.k, ka.actq); }
static void run_down(void) { k_down(ka.page, ka.dt, ka.hidden, ka.k, ka.actq, ka.weight, ka.y); }
static void run_batch_gate_up(void) { k_batch_gate_up(ka.items, ka.hidden, ka.xq, ka.act); }
static void run_batch_quant(void) { k_batch_quant_q8(ka.items, ka.act, ka.actq); }
static void run_batch_down(void) { k_batch_down(ka.items, ka.n_items, ka.hidden, ka.actq, ka.y); }

/* <<<dim3(grid, grid_y), PK_THREADS, smem>>> */
static void emu_launch2(void (*body)(void), uint32_t grid, uint32_t grid_y, uint32_t smem) {
    for (uint32_t yb = 0; yb < grid_y; yb++) {
        emu_block_y = yb;
        emu_launch(body, grid, smem);
    }
    emu_block_y = 0;
}

/* vram.cu's page_ffn_locked on the emulator: out += weight * page_ffn(xq) */
static void emu_page_ffn(const uint8_t *page, uint32_t dt, uint32_t h, uint32_t k, const uint8_t *xq, float weight,
                         float *out, float *act, uint8_t *actq, float *y) {
    ka.page = page, ka.dt = dt, ka.hidden = h, ka.k = k, ka.xq = xq, ka.act = act, ka.actq = actq, ka.y = y, ka.weight = weight;
    emu_launch(run_gate_up, pk_grid_gate_up(k), pk_smem_gate_up(h));
    emu_launch(run_quant, pk_grid_quant(k), 0);
    emu_launch(run_down, pk_grid_down(h), pk_smem_down(k));
    for (uint32_t i = 0; i < h; i++) out[i] += y[i];
}

TEST(cuda_kernels_emulated_match_reference_bit_for_bit) {
    /* odd block counts, tail warps, rows of more than 32 blocks (lanes loop) in gate/up and in down */
    static const uint32_t shapes[][2] = {{32, 32}, {96, 32}, {96, 160}, {192, 384}, {1184, 96}, {160, 1056},
                                         {2048, 64}, {64, 2048}};
    const uint32_t hmax = 2048, kmax = 2048;
    uint64_t maxb = 0, seed = 11;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint64_t b = 3ull * shapes[s][1] * (shapes[s][0] / 32) * 18;
        if (b > maxb) maxb = b;
    }
    uint8_t *page = malloc(maxb), *actq = malloc(kmax / 32 * 34);
    float *x = malloc(hmax * 4), *gpu = malloc(hmax * 4), *cpu = malloc(hmax * 4), *act = malloc(kmax * 4),
          *y = malloc(hmax * 4);
    vib3_block_q8_0 *xq = malloc(hmax / 32 * sizeof(vib3_block_q8_0));
    const vib3_simd_ops *ref = vib3_simd_ref();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t h = shapes[s][0], k = shapes[s][1];
        random_page(page, h, k, &seed);
        for (uint32_t i = 0; i < h; i++) x[i] = 2.0f * vib3_test_randf(&seed), gpu[i] = cpu[i] = 0.01f * (float)i;
        vib3_quantize_q8_0_ref(x, xq, h);
        float wgt = 0.25f + 0.5f * (vib3_test_randf(&seed) + 1.0f);
        memset(act, 0xff, kmax * 4); /* NaN: what a kernel fails to write shows */
        emu_page_ffn(page, VIB3_DTYPE_Q4_0, h, k, (const uint8_t *)xq, wgt, gpu, act, actq, y);
        ref->page_ffn[VIB3_DTYPE_Q4_0](page, h, k, xq, wgt, cpu);
        uint32_t diff = 0, first = h;
        for (uint32_t i = 0; i < h; i++)
            if (memcmp(&gpu[i], &cpu[i], 4)) diff++, first = first < i ? first : i;
        CHECK_MSG(diff == 0, "page hidden %u, K %u: %u of %u outputs differ (first %u: %.9g vs %.9g)", h, k, diff, h,
                  first, first < h ? gpu[first] : 0.0, first < h ? cpu[first] : 0.0);
    }
    free(page), free(actq), free(x), free(gpu), free(cpu), free(act), free(y), free(xq);
}

/* the launch shapes cover every row exactly once and fit the shared memory vram_open allows */
TEST(cuda_launch_shapes_cover_the_page) {
    for (uint32_t k = 32; k <= VIB3_SIMD_PAGE_K_MAX; k += 32) {
        CHECK(pk_grid_gate_up(k) * WARPS >= k && (pk_grid_gate_up(k) - 1) * WARPS < k);
        CHECK(pk_grid_quant(k) * WARPS >= k / 32 && (pk_grid_quant(k) - 1) * WARPS < k / 32);
        CHECK(pk_grid_down(k) * WARPS >= k && (pk_grid_down(k) - 1) * WARPS < k);
        CHECK(pk_smem_down(k) == WARPS * (k / 32) * 4);
    }
    CHECK(pk_smem_down(VIB3_SIMD_PAGE_K_MAX) <= 48u << 10);
}

/* vram.cu's vib3_vram_batch_run on the emulator, for each hidden size hs[0..n_hs): a batch of the
 * n random pages (from seed) of k = ks[q], Q4_0 (with mixed: Q4_K16 but where q % 5 == 3), must
 * give, bit for bit, the reference's page_ffn of every page in turn into a zeroed output */
static void check_batch(const uint32_t *hs, size_t n_hs, const uint32_t *ks, uint32_t n, uint64_t seed, bool mixed) {
    uint32_t ktot = 0, hmax = 0;
    for (uint32_t q = 0; q < n; q++) ktot += ks[q];
    for (size_t hi = 0; hi < n_hs; hi++) hmax = hs[hi] > hmax ? hs[hi] : hmax;
    uint8_t **pages = malloc(n * sizeof *pages);
    pk_item *items = malloc(n * sizeof *items);
    float *x = malloc(hmax * 4), *cpu = malloc(hmax * 4), *act = malloc(ktot * 4), *y = malloc(hmax * 4);
    uint8_t *actq = malloc(ktot / 32 * 34);
    vib3_block_q8_0 *xq = malloc(hmax / 32 * sizeof(vib3_block_q8_0));
    const vib3_simd_ops *ref = vib3_simd_ref();
    for (size_t hi = 0; hi < n_hs; hi++) {
        uint32_t h = hs[hi], k_max = 0;
        for (uint32_t q = 0, off = 0; q < n; off += ks[q], q++) {
            uint32_t dt = mixed && q % 5 != 3 ? PK_DT_Q4_K16 : PK_DT_Q4_0;
            /* sizes from the format (vib3_dtype_row_bytes), not from the kernels' header under test */
            pages[q] = malloc(2ull * ks[q] * vib3_dtype_row_bytes(dt, h) + h * vib3_dtype_row_bytes(dt, ks[q]));
            if (dt == PK_DT_Q4_K16) random_page_k16(pages[q], h, ks[q], &seed);
            else random_page(pages[q], h, ks[q], &seed);
            items[q] = (pk_item){pages[q], ks[q], off, 0.1f + (float)q * 0.05f, dt};
            if (ks[q] > k_max) k_max = ks[q];
        }
        for (uint32_t i = 0; i < h; i++) x[i] = 2.0f * vib3_test_randf(&seed), cpu[i] = 0.0f;
        vib3_quantize_q8_0_ref(x, xq, h);
        memset(act, 0xff, ktot * 4);
        ka.items = items, ka.n_items = n, ka.hidden = h, ka.xq = (const uint8_t *)xq, ka.act = act, ka.actq = actq;
        ka.y = y;
        emu_launch2(run_batch_gate_up, pk_grid_gate_up(k_max), n, pk_smem_gate_up(h));
        emu_launch2(run_batch_quant, pk_grid_quant(k_max), n, 0);
        emu_launch(run_batch_down, pk_grid_down(h), pk_smem_batch_down(n));
        for (uint32_t q = 0; q < n; q++) ref->page_ffn[items[q].dt](pages[q], h, ks[q], xq, items[q].w, cpu);
        uint32_t diff = 0, first = h;
        for (uint32_t i = 0; i < h; i++)
            if (memcmp(&y[i], &cpu[i], 4)) diff++, first = first < i ? first : i;
        CHECK_MSG(diff == 0, "%sbatch of %u pages, hidden %u: %u of %u outputs differ (first %u: %.9g vs %.9g)",
                  mixed ? "mixed " : "", n, h, diff, h, first, first < h ? y[first] : 0.0, first < h ? cpu[first] : 0.0);
        for (uint32_t q = 0; q < n; q++) free(pages[q]);
    }
    free(pages), free(items), free(x), free(cpu), free(act), free(y), free(actq), free(xq);
}

/* a batch of Q4_0 pages of different k (the last page of an expert may be shorter; 34 > 32 lanes) */
TEST(cuda_batch_kernels_emulated_match_reference_bit_for_bit) {
    static const uint32_t hs[] = {96, 1184};
    static const uint32_t ks[] = {32, 64, 32, 96, 160, 32, 1056, 64, 32, 32, 128, 32, 32, 64, 32, 32, 32, 96,
                                  32, 32, 64, 32, 32, 32, 32, 32, 32, 32, 32, 32, 64, 32, 32, 96}; /* 34: > 32 lanes */
    check_batch(hs, sizeof hs / sizeof hs[0], ks, sizeof ks / sizeof ks[0], 23, false);
}

/* ---- Q4_K16 pages ------------------------------------------------------------------------- */
_Static_assert(PK_DT_Q4_0 == VIB3_DTYPE_Q4_0 && PK_DT_Q4_K16 == VIB3_DTYPE_Q4_K16, "kernel dtype codes");
_Static_assert(K16_SUPER_CHUNKS * 32 == VIB3_Q4K16_SUPER && K16_HEAD_BYTES == VIB3_Q4K16_HEAD_BYTES &&
                   K16_CHUNK_BYTES == VIB3_Q4K16_CHUNK_BYTES,
               "kernel Q4_K16 layout");

/* the kernels' row and page sizes are the format's */
TEST(cuda_row_bytes_are_the_formats) {
    for (uint32_t n = 32; n <= 3 * 4096 + 32; n += 32) {
        CHECK_EQ_U64(pk_row_bytes(PK_DT_Q4_0, n), vib3_dtype_row_bytes(VIB3_DTYPE_Q4_0, n));
        CHECK_EQ_U64(pk_row_bytes(PK_DT_Q4_K16, n), vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, n));
    }
    CHECK_EQ_U64(pk_page_bytes(PK_DT_Q4_K16, 192, 64),
                 2 * 64 * vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, 192) + 192 * vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, 64));
    CHECK(pk_dtype_ok(VIB3_DTYPE_Q4_0) && pk_dtype_ok(VIB3_DTYPE_Q4_K16));
    CHECK(!pk_dtype_ok(VIB3_DTYPE_Q8_0) && !pk_dtype_ok(VIB3_DTYPE_F32) && !pk_dtype_ok(VIB3_DTYPE_F16));
}

/* odd shapes: hidden 192 (one short super-block: 6 chunks), 288 (a full one and a 1-chunk tail),
 * 4128 (16 full + 1 chunk: rows of 129 chunks, more than 32 lanes' worth); K from 32 to 256 (down
 * rows of 1..8 chunks, one super-block), plus K 288 (down rows of two super-blocks) */
TEST(cuda_q4_k16_kernels_emulated_match_reference_bit_for_bit) {
    static const uint32_t shapes[][2] = {{192, 32},  {288, 64},   {4128, 96}, {192, 128}, {288, 160},
                                         {4128, 192}, {192, 224}, {288, 256}, {4128, 256}, {192, 256},
                                         {4128, 32},  {96, 288},  {288, 96}}; /* every K of 32..256 */
    const uint32_t hmax = 4128, kmax = 288;
    uint64_t maxb = 0, seed = 41;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint64_t b = pk_page_bytes(PK_DT_Q4_K16, shapes[s][0], shapes[s][1]);
        if (b > maxb) maxb = b;
    }
    uint8_t *page = malloc(maxb), *actq = malloc(kmax / 32 * 34);
    float *x = malloc(hmax * 4), *gpu = malloc(hmax * 4), *cpu = malloc(hmax * 4), *act = malloc(kmax * 4),
          *y = malloc(hmax * 4);
    vib3_block_q8_0 *xq = malloc(hmax / 32 * sizeof(vib3_block_q8_0));
    const vib3_simd_ops *ref = vib3_simd_ref();
    CHECK(ref->page_ffn[VIB3_DTYPE_Q4_K16] == vib3_page_ffn_q4_k16_ref);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t h = shapes[s][0], k = shapes[s][1];
        random_page_k16(page, h, k, &seed);
        for (uint32_t i = 0; i < h; i++) x[i] = 2.0f * vib3_test_randf(&seed), gpu[i] = cpu[i] = 0.01f * (float)i;
        vib3_quantize_q8_0_ref(x, xq, h);
        float wgt = 0.25f + 0.5f * (vib3_test_randf(&seed) + 1.0f);
        memset(act, 0xff, kmax * 4); /* NaN: what a kernel fails to write shows */
        emu_page_ffn(page, PK_DT_Q4_K16, h, k, (const uint8_t *)xq, wgt, gpu, act, actq, y);
        vib3_page_ffn_q4_k16_ref(page, h, k, xq, wgt, cpu);
        uint32_t diff = 0, first = h, moved = 0;
        for (uint32_t i = 0; i < h; i++) {
            if (memcmp(&gpu[i], &cpu[i], 4)) diff++, first = first < i ? first : i;
            moved += cpu[i] != 0.01f * (float)i; /* the page added something: the comparison is not vacuous */
        }
        CHECK_MSG(diff == 0, "q4_k16 page hidden %u, K %u: %u of %u outputs differ (first %u: %.9g vs %.9g)", h, k,
                  diff, h, first, first < h ? gpu[first] : 0.0, first < h ? cpu[first] : 0.0);
        CHECK_MSG(moved > h / 2, "q4_k16 page hidden %u, K %u: only %u outputs changed", h, k, moved);
    }
    free(page), free(actq), free(x), free(gpu), free(cpu), free(act), free(y), free(xq);
}

/* a decode batch mixing Q4_K16 and Q4_0 pages of different k (34 > 32 lanes) */
TEST(cuda_q4_k16_batch_kernels_emulated_match_reference_bit_for_bit) {
    static const uint32_t hs[] = {192, 288};
    static const uint32_t ks[] = {32, 64, 256, 96, 160, 32, 224, 64, 32, 32, 128, 32, 288, 64, 32, 32, 32, 96,
                                  32, 32, 64, 32, 32, 192, 32, 32, 32, 32, 32, 32, 64, 32, 32, 96};
    check_batch(hs, sizeof hs / sizeof hs[0], ks, sizeof ks / sizeof ks[0], 43, true);
}
