/* page_kernels.h — the page FFN kernels of cuda/vram.cu (Q4_0 and Q4_K16 pages) and their
 * launch shapes, written in the common subset of CUDA C++ and C11 so that the same
 * source also runs on the CPU: tests/cuda/test_cuda_emu.c executes these
 * kernels lane by lane (32 threads per warp, a barrier for __syncwarp) in
 * every build and requires bit-identical output to vib3_page_ffn_q4_0_ref and
 * vib3_page_ffn_q4_k16_ref, which checks indexing, layout and arithmetic
 * without a GPU.
 *
 * The includer defines, before including:
 *   VIB3_PK_DYN_SHARED(name)  declares `float *name`-like dynamic shared memory
 *   VIB3_PK_F16_TO_F32(bits)  f16 bits (unsigned) -> float, exact
 *   VIB3_PK_F32_TO_F16(f)     float -> f16 bits, round to nearest even
 * and, outside nvcc, __host__ / __device__ / __global__ (empty), threadIdx / blockIdx
 * (.x), __syncwarp(), __shfl_xor_sync(), __fmul_rn(), __fadd_rn(), __fsub_rn(), __fdiv_rn().
 *
 * Arithmetic = simd/kernels_ref.c (dot_row_q4_0, dot_row_q4_k16, vib3_swiglu_ref,
 * vib3_quantize_q8_0_ref, page_down): x and the activations are Q8_0 blocks; per
 * 32-element block (Q4_0) or chunk (Q4_K16) an exact integer dot product and one f32
 * term, Q4_0: (float)acc * (d_w * d_x); Q4_K16: d_x * (d * (float)(sc0 S0 + sc1 S1) -
 * dmin * (float)(mn0 T0 + mn1 T1)); terms summed in block order by lane 0, IEEE
 * operations spelled __fmul_rn / __fadd_rn / __fsub_rn / __fdiv_rn so nvcc cannot
 * contract them into FMAs. On the GPU only expf differs (CUDA's, <= 2 ulp).
 *
 * Page layout (both dtypes): gate (k rows of hidden) | up (k rows of hidden) | down
 * (hidden rows of k), rows of pk_row_bytes(dt, n) bytes (= vib3_dtype_row_bytes).
 * A Q4_K16 row is not an array of fixed blocks: super-blocks of <= 256 elements,
 * each a 4-byte head (f16 d, f16 dmin) and 19-byte chunks (sm[3], qs[16]); every
 * super-block but the last is full, so chunk b of a row is at
 * (b / 8) * 156 + 4 + (b % 8) * 19 and its head at (b / 8) * 156.
 */
#ifndef VIB3_CUDA_PAGE_KERNELS_H
#define VIB3_CUDA_PAGE_KERNELS_H

#include <math.h>
#include <stdint.h>

#define QBLOCK 32
#define Q4_BLOCK_BYTES 18 /* f16 d, u8 qs[16] */
#define Q8_BLOCK_BYTES 34 /* f16 d, i8 qs[32] */
#define WARPS 8           /* warps per thread block: one row (neuron / output) per warp */
#define PK_THREADS (WARPS * 32)
/* page dtypes the kernels take: the values of vib3_dtype (format/vib3_format.h; the emulation
 * test checks they agree) */
#define PK_DT_Q4_0 4u
#define PK_DT_Q4_K16 5u
#define K16_SUPER_CHUNKS 8u   /* 32-element chunks per full super-block (VIB3_Q4K16_SUPER / 32) */
#define K16_HEAD_BYTES 4u     /* f16 d, f16 dmin */
#define K16_CHUNK_BYTES 19u   /* u8 sm[3], u8 qs[16] */
#define K16_SUPER_BYTES (K16_HEAD_BYTES + K16_SUPER_CHUNKS * K16_CHUNK_BYTES) /* 156 */

static inline int pk_dtype_ok(uint32_t dt) { return dt == PK_DT_Q4_0 || dt == PK_DT_Q4_K16; }
/* bytes of a row of n elements (n % 32 == 0), vib3_dtype_row_bytes of the two dtypes */
__host__ __device__ static inline uint64_t pk_row_bytes(uint32_t dt, uint32_t n) {
    if (dt == PK_DT_Q4_K16)
        return (uint64_t)K16_HEAD_BYTES * ((n + 255u) / 256u) + (uint64_t)K16_CHUNK_BYTES * (n / QBLOCK);
    return (uint64_t)(n / QBLOCK) * Q4_BLOCK_BYTES;
}
/* bytes of a page: gate and up (k rows of hidden) and down (hidden rows of k) */
static inline uint64_t pk_page_bytes(uint32_t dt, uint32_t hidden, uint32_t k) {
    return 2ull * k * pk_row_bytes(dt, hidden) + (uint64_t)hidden * pk_row_bytes(dt, k);
}

/* launch shapes: grid blocks of PK_THREADS threads and dynamic shared bytes */
static inline uint32_t pk_grid_gate_up(uint32_t k) { return (k + WARPS - 1) / WARPS; }
static inline uint32_t pk_grid_quant(uint32_t k) { return (k / QBLOCK + WARPS - 1) / WARPS; }
static inline uint32_t pk_grid_down(uint32_t hidden) { return (hidden + WARPS - 1) / WARPS; }
static inline uint32_t pk_smem_gate_up(uint32_t hidden) { return WARPS * (hidden / QBLOCK) * (uint32_t)sizeof(float); }
static inline uint32_t pk_smem_down(uint32_t k) { return WARPS * (k / QBLOCK) * (uint32_t)sizeof(float); }

__device__ static inline float pk_f16(const uint8_t *p) { /* little-endian f16 at p */
    return VIB3_PK_F16_TO_F32((unsigned)(p[0] | p[1] << 8));
}

/* the f32 term of block / chunk b of a row times the Q8_0 block x (34 bytes):
 * Q4_0    dot_row_q4_0:   (float)acc * (d_w * d_x), acc = sum (q - 8) * qx
 * Q4_K16  dot_row_q4_k16: d_x * (d * (float)(sc0*S0 + sc1*S1) - dmin * (float)(mn0*T0 + mn1*T1)),
 *         S_g = sum q * qx and T_g = sum qx over group g (elements 0..15, 16..31 of the chunk) */
__device__ static inline float pk_block_term(uint32_t dt, const uint8_t *row, uint32_t b, const uint8_t *x) {
    const int8_t *xs = (const int8_t *)(x + 2);
    if (dt == PK_DT_Q4_K16) {
        const uint8_t *sb = row + (uint64_t)(b / K16_SUPER_CHUNKS) * K16_SUPER_BYTES;
        const uint8_t *sm = sb + K16_HEAD_BYTES + (b % K16_SUPER_CHUNKS) * K16_CHUNK_BYTES, *qs = sm + 3;
        const int32_t sc0 = sm[0] & 63, sc1 = sm[1] & 63, mn0 = sm[2] & 63;
        const int32_t mn1 = (sm[0] >> 6) | ((sm[1] >> 6) << 2) | ((sm[2] >> 6) << 4);
        int32_t s0 = 0, s1 = 0, t0 = 0, t1 = 0;
        for (int j = 0; j < 16; j++) {
            s0 += (qs[j] & 15) * xs[j];
            s1 += (qs[j] >> 4) * xs[j + 16];
            t0 += xs[j];
            t1 += xs[j + 16];
        }
        return __fmul_rn(pk_f16(x), __fsub_rn(__fmul_rn(pk_f16(sb), (float)(sc0 * s0 + sc1 * s1)),
                                              __fmul_rn(pk_f16(sb + 2), (float)(mn0 * t0 + mn1 * t1))));
    }
    const uint8_t *w = row + (uint64_t)b * Q4_BLOCK_BYTES;
    int32_t acc = 0;
    for (int i = 0; i < 16; i++) acc += ((w[2 + i] & 15) - 8) * xs[i] + ((w[2 + i] >> 4) - 8) * xs[i + 16];
    return __fmul_rn((float)acc, __fmul_rn(pk_f16(w), pk_f16(x)));
}

/* One row (nb blocks of 32 elements) · Q8_0 x by one warp, dot_row_<dt>'s arithmetic:
 * lane l computes the terms of blocks l, l+32, ... into terms[], lane 0 then
 * sums them in block order. Valid on lane 0 only. */
__device__ static inline float warp_dot_q8(uint32_t dt, const uint8_t *row, const uint8_t *xq, uint32_t nb,
                                           float *terms) {
    const uint32_t lane = threadIdx.x % 32;
    for (uint32_t b = lane; b < nb; b += 32) terms[b] = pk_block_term(dt, row, b, xq + (uint64_t)b * Q8_BLOCK_BYTES);
    __syncwarp();
    float s = 0.0f;
    if (lane == 0)
        for (uint32_t b = 0; b < nb; b++) s = __fadd_rn(s, terms[b]);
    __syncwarp(); /* terms[] is reused by the warp's next row */
    return s;
}

/* act[j] = silu(gate_j · x) * (up_j · x) by one warp (vib3_swiglu_ref's expression);
 * page = gate (k, hidden) | up (k, hidden) | down (hidden, k) */
__device__ static inline void pk_gate_up_row(const uint8_t *page, uint32_t dt, uint32_t hidden, uint32_t k,
                                             uint32_t j, const uint8_t *xq, float *act, float *terms) {
    const uint32_t nb = hidden / QBLOCK;
    const uint64_t rb = pk_row_bytes(dt, hidden);
    float g = warp_dot_q8(dt, page + (uint64_t)j * rb, xq, nb, terms);
    float u = warp_dot_q8(dt, page + ((uint64_t)k + j) * rb, xq, nb, terms);
    if (threadIdx.x % 32 == 0) act[j] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

/* one warp per neuron j */
__global__ static void k_gate_up(const uint8_t *page, uint32_t dt, uint32_t hidden, uint32_t k, const uint8_t *xq,
                                 float *act) {
    VIB3_PK_DYN_SHARED(sh);
    const uint32_t warp = threadIdx.x / 32, j = blockIdx.x * WARPS + warp;
    if (j >= k) return; /* whole warp */
    pk_gate_up_row(page, dt, hidden, k, j, xq, act, sh + (uint64_t)warp * (hidden / QBLOCK));
}

/* 32 activations (block b of act) -> one Q8_0 block as vib3_quantize_q8_0_ref: d = amax / 127,
 * q = roundf(x * (1 / d)); by one warp */
__device__ static inline void pk_quant_block(const float *act, uint32_t b, uint8_t *actq) {
    const uint32_t lane = threadIdx.x % 32;
    float x = act[(uint64_t)b * QBLOCK + lane], amax = fabsf(x);
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    float d = __fdiv_rn(amax, 127.0f), id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    uint8_t *blk = actq + (uint64_t)b * Q8_BLOCK_BYTES;
    blk[2 + lane] = (uint8_t)(int8_t)roundf(__fmul_rn(x, id));
    if (lane == 0) {
        unsigned h = (unsigned)VIB3_PK_F32_TO_F16(d);
        blk[0] = (uint8_t)(h & 0xff);
        blk[1] = (uint8_t)(h >> 8);
    }
}

/* one warp per block */
__global__ static void k_quant_q8(const float *act, uint32_t k, uint8_t *actq) {
    const uint32_t b = blockIdx.x * WARPS + threadIdx.x / 32;
    if (b >= k / QBLOCK) return; /* whole warp */
    pk_quant_block(act, b, actq);
}

/* y[i] = weight * (down_i · actq), one warp per output row i (page_down's scale * yb[i]) */
__global__ static void k_down(const uint8_t *page, uint32_t dt, uint32_t hidden, uint32_t k, const uint8_t *actq,
                              float weight, float *y) {
    VIB3_PK_DYN_SHARED(sh);
    const uint32_t warp = threadIdx.x / 32, i = blockIdx.x * WARPS + warp, nbk = k / QBLOCK;
    if (i >= hidden) return; /* whole warp */
    const uint64_t rb = pk_row_bytes(dt, hidden), db = pk_row_bytes(dt, k);
    float s = warp_dot_q8(dt, page + 2 * (uint64_t)k * rb + (uint64_t)i * db, actq, nbk, sh + (uint64_t)warp * nbk);
    if (threadIdx.x % 32 == 0) y[i] = __fmul_rn(weight, s);
}


/* ---- batches: every VRAM-resident page of one decode task in one launch each ----------------
 * item q: a page (device pointer), its k (multiple of 32), its first activation koff (a
 * multiple of 32: the sum of the k before it), its routing weight and its dtype (PK_DT_*; pages
 * of both dtypes may share a batch). Grid y = item. */
typedef struct pk_item {
    const uint8_t *page;
    uint32_t k, koff;
    float w;
    uint32_t dt;
} pk_item;
#define PK_BATCH_MAX 1024u /* items per batch: k_batch_down keeps a term per item per warp in shared memory */

static inline uint32_t pk_smem_batch_down(uint32_t n_items) { return WARPS * n_items * (uint32_t)sizeof(float); }

/* grid (pk_grid_gate_up(max k), n_items): act[koff + j] of every item */
__global__ static void k_batch_gate_up(const pk_item *items, uint32_t hidden, const uint8_t *xq, float *act) {
    VIB3_PK_DYN_SHARED(sh);
    const pk_item it = items[blockIdx.y];
    const uint32_t warp = threadIdx.x / 32, j = blockIdx.x * WARPS + warp;
    if (j >= it.k) return; /* whole warp */
    pk_gate_up_row(it.page, it.dt, hidden, it.k, j, xq, act + it.koff, sh + (uint64_t)warp * (hidden / QBLOCK));
}

/* grid (pk_grid_quant(max k), n_items): each item's activations as its own Q8_0 blocks */
__global__ static void k_batch_quant_q8(const pk_item *items, const float *act, uint8_t *actq) {
    const pk_item it = items[blockIdx.y];
    const uint32_t b = blockIdx.x * WARPS + threadIdx.x / 32;
    if (b >= it.k / QBLOCK) return; /* whole warp */
    pk_quant_block(act + it.koff, b, actq + (uint64_t)(it.koff / QBLOCK) * Q8_BLOCK_BYTES);
}

/* grid pk_grid_down(hidden): y[i] = sum over items in order of (w * (down_i · actq)), one warp per
 * output row i; lane l does items l, l+32, ... (each dot in block order, as dot_row_<dt>), lane 0
 * adds the terms in item order: y equals 0 + t_0 + t_1 + ..., i.e. the reference's page_ffn of
 * every item in turn into a zeroed output */
__global__ static void k_batch_down(const pk_item *items, uint32_t n_items, uint32_t hidden, const uint8_t *actq,
                                    float *y) {
    VIB3_PK_DYN_SHARED(sh);
    const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32, i = blockIdx.x * WARPS + warp;
    if (i >= hidden) return; /* whole warp */
    float *terms = sh + (uint64_t)warp * n_items;
    for (uint32_t q = lane; q < n_items; q += 32) {
        const pk_item it = items[q];
        const uint32_t nbk = it.k / QBLOCK;
        const uint8_t *row = it.page + 2 * (uint64_t)it.k * pk_row_bytes(it.dt, hidden) +
                             (uint64_t)i * pk_row_bytes(it.dt, it.k);
        const uint8_t *aq = actq + (uint64_t)(it.koff / QBLOCK) * Q8_BLOCK_BYTES;
        float s = 0.0f;
        for (uint32_t b = 0; b < nbk; b++)
            s = __fadd_rn(s, pk_block_term(it.dt, row, b, aq + (uint64_t)b * Q8_BLOCK_BYTES));
        terms[q] = __fmul_rn(it.w, s);
    }
    __syncwarp();
    if (lane == 0) {
        float t = 0.0f;
        for (uint32_t q = 0; q < n_items; q++) t = __fadd_rn(t, terms[q]);
        y[i] = t;
    }
}

#endif
