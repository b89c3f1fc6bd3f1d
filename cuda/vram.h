/* vram.h — T1: a VRAM page pool and the INT4 (Q4_0, Q4_K16) page product on the GPU.
 *
 * Built only with `make CUDA=1` (the .cu files of cuda/ by nvcc); C callers guard every
 * use with #ifdef VIB3_CUDA. Without a device vib3_cuda_device_count()
 * returns 0 and vib3_vram_open() fails with VIB3_ERR_UNSUPPORTED: the CPU
 * path serves everything. docs/CUDA.md says what runs where.
 *
 * Pool: budget_bytes / slot_bytes slots (at most VIB3_VRAM_SLOTS_MAX) carved
 * from one cudaMalloc at open, a direct index page -> slot, one event per
 * slot. vib3_vram_promote() queues an asynchronous host-to-device copy on the
 * pool's stream (from page-locked host frames: vib3_vram_register_host()
 * pins the buffer manager's frame region once) and returns at once; the page
 * becomes visible to vib3_vram_lookup() when its copy event has completed.
 * When the pool is full the slot with the lowest heat (the caller's
 * frequency count) is replaced, and only by a hotter page.
 *
 * Kernel: out += weight * down · (silu(gate·x) ⊙ (up·x)) for one Q4_0 or Q4_K16 page
 * (gate (K, hidden) | up (K, hidden) | down (hidden, K), rows of vib3_dtype_row_bytes)
 * with the CPU's numerics (simd/kernels_ref.c, vib3_page_ffn_q4_0_ref /
 * vib3_page_ffn_q4_k16_ref): x is the Q8_0 blocks the CPU kernels take, each
 * 32-element block is exact integer sums times the f16 scales in the
 * reference's order (cuda/page_kernels.h), the block terms are summed in block order
 * without FMA contraction, the activations are re-quantized to Q8_0 with the
 * same rounding before down, and out[i] += (weight * s) is added on the host.
 * Only expf() (CUDA's, <= 2 ulp) can differ from the CPU reference.
 *
 * Errors: any CUDA error in promote or in a page product disables the pool
 * for good (one line on stderr naming the call and the CUDA error); from then
 * on lookup returns NULL, promote does nothing and the CPU computes every
 * page. The page whose product failed has not touched `out`.
 */
#ifndef VIB3_CUDA_VRAM_H
#define VIB3_CUDA_VRAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/err.h"

#define VIB3_VRAM_SLOTS_MAX 65536u

typedef struct vib3_vram vib3_vram;

typedef struct vib3_vram_stats {
    uint64_t slots_total, slots_used;
    uint64_t promotions, replacements, rejected; /* rejected: not hotter than the coldest slot */
    uint64_t busy_skips;     /* promotions skipped because a page product held the pool (retried later) */
    uint64_t bytes_copied;
    uint64_t kernel_calls;   /* page products done on the GPU (single pages and pages of batches) */
    uint64_t batches;        /* decode batches run (vib3_vram_batch_run) */
    uint64_t errors;         /* CUDA errors seen (the first one disables the pool) */
    int disabled;            /* 1 after a CUDA error: the CPU serves everything */
    char device[64];
    char last_error[160];    /* the message printed when the pool was disabled */
} vib3_vram_stats;

int vib3_cuda_device_count(void);
/* slot_bytes: bytes per page slot (the frame size); max_hidden / max_neurons size the kernel scratch */
vib3_err vib3_vram_open(vib3_vram **out, uint64_t budget_bytes, uint64_t slot_bytes, uint64_t n_pages,
                        uint32_t max_hidden, uint32_t max_neurons);
void vib3_vram_close(vib3_vram *v);
/* page-lock a host region (the frames) so copies from it are asynchronous */
vib3_err vib3_vram_register_host(vib3_vram *v, void *base, uint64_t bytes);
/* start copying page (bytes from host) into a slot if it is hot enough; never blocks on the copy nor
 * on a page product in flight (then skipped, counted in busy_skips: the next access offers it again) */
vib3_err vib3_vram_promote(vib3_vram *v, uint64_t page, const void *host, uint64_t bytes, uint32_t heat);
/* block until page's copy (if any) has finished reading its host frame; one atomic load when none */
void vib3_vram_wait(vib3_vram *v, uint64_t page);
/* device pointer of a resident, completely copied page; NULL otherwise (and always once disabled) */
const void *vib3_vram_lookup(vib3_vram *v, uint64_t page);
/* out (hidden, f32, host) += weight * page_ffn(xq); dtype: the page's vib3_dtype, VIB3_DTYPE_Q4_0 or
 * VIB3_DTYPE_Q4_K16 (others: VIB3_ERR_INVALID); xq: hidden / 32 vib3_block_q8_0 in host memory.
 * VIB3_ERR_NOT_FOUND when the page is not resident (or the pool is disabled), VIB3_ERR_IO on a CUDA
 * error (the pool is then disabled); out is unchanged on any error. */
vib3_err vib3_vram_page_ffn_q4(vib3_vram *v, uint64_t page, uint32_t dtype, uint32_t hidden, uint32_t n_neurons,
                               const void *xq, float weight, float *out);
/* the runtime's form: 1 when the GPU did the page (out updated), 0 when the caller must compute it on
 * the CPU (not resident, dtype or shape the kernel does not take, pool disabled, or a CUDA error just
 * now); sets no error message on the per-token path */
int vib3_vram_try_page_ffn_q4(vib3_vram *v, uint64_t page, uint32_t dtype, uint32_t hidden, uint32_t n_neurons,
                              const void *xq, float weight, float *out);
void vib3_vram_stats_get(vib3_vram *v, vib3_vram_stats *s);

/* Decode batches: the runtime's single-token FFN task collects its Q4_0 / Q4_K16 pages that are resident in
 * VRAM and runs them in one go (three launches, one copy each way, one synchronize) on the calling
 * thread's own stream; out += sum over the pages, added in page order (cuda/page_kernels.h).
 *   b = vib3_vram_batch_begin(v, thread, hidden)   NULL: no batch (disabled, thread >= the max)
 *   vib3_vram_batch_add(b, page, dtype, k, weight)  1: the GPU takes the page (its slot is pinned
 *                                                   until run); 0: the caller computes it (also a
 *                                                   dtype other than Q4_0 / Q4_K16); a batch may
 *                                                   mix the two dtypes
 *   vib3_vram_batch_run(b, xq, out)                 1: done; 0: a CUDA error (tier disabled): the
 *                                                   caller computes the listed pages on the CPU
 *   vib3_vram_batch_count / _page                   the listed pages (for that fall-back)
 * run must follow every begin that added pages (it releases the slots). One batch per thread at a
 * time; batches of different threads run concurrently. Every thread's buffers (~0.7 MB of VRAM
 * each) and the kernels are set up by vib3_vram_open, so decoding allocates no host memory of ours
 * (what the CUDA driver does inside copies and launches is not under our control). */
#define VIB3_VRAM_BATCH_THREADS 64u
#define VIB3_VRAM_BATCH_NEURONS (1u << 17) /* activations per batch (sum of the pages' k) */
typedef struct vib3_vram_batch vib3_vram_batch;
vib3_vram_batch *vib3_vram_batch_begin(vib3_vram *v, uint32_t thread, uint32_t hidden);
int vib3_vram_batch_add(vib3_vram_batch *b, uint64_t page, uint32_t dtype, uint32_t n_neurons, float weight);
int vib3_vram_batch_run(vib3_vram_batch *b, const void *xq, float *out);
uint32_t vib3_vram_batch_count(const vib3_vram_batch *b);
uint64_t vib3_vram_batch_page(const vib3_vram_batch *b, uint32_t i, float *weight);
/* tests: make the next page product launch its down kernel with an invalid configuration (a real
 * cudaErrorInvalidConfiguration from the runtime), to exercise the fall-back */
void vib3_vram_inject_launch_error(vib3_vram *v);

#ifdef __cplusplus
}
#endif

#endif
