// vram.cu — VRAM page pool, asynchronous promotion and the Q4_0 / Q4_K16 page
// FFN kernels (see vram.h). Compiled by nvcc only with `make CUDA=1`.
//
// The kernels follow simd/kernels_ref.c operation for operation (integer
// block dot products, block terms summed in order with __fadd_rn / __fmul_rn so
// nvcc cannot contract them into FMAs, Q8_0 re-quantization of the
// activations with the same rounding), so a page product here matches
// vib3_page_ffn_q4_0_ref / vib3_page_ffn_q4_k16_ref up to CUDA's expf. Never executed on a GPU as of
// this writing (docs/CUDA.md); tests/cuda/device_run.sh is the first check.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/vram.h"

#define NONE32 0xFFFFFFFFu
// the kernels (QBLOCK, WARPS, k_gate_up, k_quant_q8, k_down): one source with the CPU emulation
// of tests/cuda/test_cuda_emu.c
#define VIB3_PK_DYN_SHARED(name) extern __shared__ float name[]
#define VIB3_PK_F16_TO_F32(h) __half2float(__ushort_as_half((unsigned short)(h)))
#define VIB3_PK_F32_TO_F16(f) __half_as_ushort(__float2half_rn(f))
#include "cuda/page_kernels.h"
#define SMEM_MAX (48u << 10)

// one thread's decode batch (vram.h): its own stream and buffers, so threads run batches concurrently
struct vib3_vram_batch {
    vib3_vram *v;
    int ready;               // buffers allocated (at open, for every thread)
    cudaStream_t stream;
    uint32_t n, hidden, neurons, k_max;
    uint64_t page[PK_BATCH_MAX];
    uint32_t slot[PK_BATCH_MAX];
    pk_item *h_items, *d_items; // page-locked host list, device copy
    uint8_t *h_x;            // page-locked copy of x (an asynchronous copy needs no driver staging)
    uint8_t *d_x, *d_actq;
    float *d_act, *d_out, *h_out;
};

struct vib3_vram {
    pthread_mutex_t mu;      // promote / lookup / kernels from several threads
    int device;
    cudaStream_t stream;
    uint8_t *slots;          // device: n_slots * slot_bytes
    uint64_t slot_bytes;
    uint32_t n_slots, used;
    uint64_t n_pages;
    uint32_t *page_slot;     // host [n_pages]
    uint8_t *page_pending;   // host [n_pages]: a copy from the host page may be in flight (atomic; read unlocked)
    uint64_t *slot_page;     // host [n_slots]; UINT64_MAX = empty
    uint32_t *slot_heat;     // host [n_slots]
    uint32_t heat_floor;     // lower bound of the coldest slot's heat once full (heats only grow)
    cudaEvent_t *slot_event; // [n_slots]
    uint8_t *slot_ready;     // host [n_slots]: event observed complete
    uint32_t *slot_pins;     // host [n_slots]: batches reading the slot (never replaced while > 0)
    vib3_vram_batch batch[VIB3_VRAM_BATCH_THREADS];
    uint8_t *d_x, *d_actq;   // device Q8_0 blocks: x (max_hidden), activations (max_neurons)
    float *d_act, *d_out;    // device: activations (max_neurons), page output (max_hidden)
    float *h_out;            // page-locked host copy of d_out
    uint8_t *h_x;            // page-locked copy of x
    uint32_t max_hidden, max_neurons;
    void *registered;
    int disabled, inject;
    uint64_t busy_skips;     // promotions skipped because the pool was busy (atomic)
    vib3_vram_stats st;
};

static vib3_err cuda_fail(cudaError_t e, const char *what) {
    return vib3_err_set(VIB3_ERR_IO, "cuda: %s: %s", what, cudaGetErrorString(e));
}

// the first CUDA error turns the tier off: one line on stderr, the CPU serves from then on
static void disable_locked(vib3_vram *v, cudaError_t e, const char *what) {
    v->st.errors++;
    cudaGetLastError(); // clear a non-sticky error; a sticky one stays and every later call fails
    if (v->disabled) return;
    v->disabled = 1;
    snprintf(v->st.last_error, sizeof v->st.last_error, "cuda: %s: %s (%s)", what, cudaGetErrorString(e),
             cudaGetErrorName(e));
    fprintf(stderr, "vib3: %s; VRAM tier disabled, the CPU computes every page from now on\n", v->st.last_error);
}

static int batch_alloc_locked(vib3_vram *v, vib3_vram_batch *b);

extern "C" int vib3_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" vib3_err vib3_vram_open(vib3_vram **out, uint64_t budget_bytes, uint64_t slot_bytes, uint64_t n_pages,
                                   uint32_t max_hidden, uint32_t max_neurons) {
    *out = NULL;
    if (vib3_cuda_device_count() <= 0) return vib3_err_set(VIB3_ERR_UNSUPPORTED, "cuda: no device");
    if (slot_bytes == 0 || n_pages == 0 || max_hidden == 0 || max_neurons == 0 || max_hidden % QBLOCK ||
        max_neurons % QBLOCK)
        return vib3_err_set(VIB3_ERR_INVALID, "cuda: vram pool: slot %llu bytes, %llu pages, hidden %u, neurons %u",
                            (unsigned long long)slot_bytes, (unsigned long long)n_pages, max_hidden, max_neurons);
    uint32_t terms = (max_hidden > max_neurons ? max_hidden : max_neurons) / QBLOCK;
    if ((uint64_t)WARPS * terms * sizeof(float) > SMEM_MAX)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "cuda: page kernel: hidden %u / neurons %u need %u block terms "
                            "per row, more than %u bytes of shared memory hold", max_hidden, max_neurons, terms,
                            SMEM_MAX);
    if (budget_bytes == 0) { // auto: 90% of free VRAM
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) budget_bytes = free_b / 10 * 9;
        cudaGetLastError();
    }
    uint64_t n = budget_bytes / slot_bytes;
    if (n > VIB3_VRAM_SLOTS_MAX) n = VIB3_VRAM_SLOTS_MAX;
    if (n > n_pages) n = n_pages;
    if (n == 0) return vib3_err_set(VIB3_ERR_LIMIT, "cuda: --vram-budget %llu bytes holds no %llu-byte page",
                                    (unsigned long long)budget_bytes, (unsigned long long)slot_bytes);
    vib3_vram *v = (vib3_vram *)calloc(1, sizeof *v);
    if (!v) return vib3_err_set(VIB3_ERR_NOMEM, "cuda: vram pool");
    pthread_mutex_init(&v->mu, NULL);
    v->slot_bytes = slot_bytes;
    v->n_slots = (uint32_t)n;
    v->n_pages = n_pages;
    v->max_hidden = max_hidden;
    v->max_neurons = max_neurons;
    cudaError_t e;
    cudaDeviceProp prop;
    if ((e = cudaGetDevice(&v->device)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, v->device)) != cudaSuccess) {
        cudaGetLastError();
        pthread_mutex_destroy(&v->mu);
        free(v);
        return cuda_fail(e, "device");
    }
    snprintf(v->st.device, sizeof v->st.device, "%s", prop.name);
    v->page_slot = (uint32_t *)malloc(n_pages * sizeof(uint32_t));
    v->page_pending = (uint8_t *)calloc(n_pages, 1);
    v->slot_page = (uint64_t *)calloc(n, sizeof(uint64_t));
    v->slot_heat = (uint32_t *)calloc(n, sizeof(uint32_t));
    v->slot_event = (cudaEvent_t *)calloc(n, sizeof(cudaEvent_t));
    v->slot_ready = (uint8_t *)calloc(n, 1);
    v->slot_pins = (uint32_t *)calloc(n, sizeof(uint32_t));
    if (!v->page_slot || !v->page_pending || !v->slot_page || !v->slot_heat || !v->slot_event || !v->slot_ready ||
        !v->slot_pins) {
        vib3_vram_close(v);
        return vib3_err_set(VIB3_ERR_NOMEM, "cuda: vram pool tables for %u slots", (unsigned)n);
    }
    for (uint64_t i = 0; i < n_pages; i++) v->page_slot[i] = NONE32;
    for (uint32_t i = 0; i < v->n_slots; i++) v->slot_page[i] = UINT64_MAX;
    if ((e = cudaStreamCreateWithFlags(&v->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaMalloc((void **)&v->slots, n * slot_bytes)) != cudaSuccess ||
        (e = cudaMalloc((void **)&v->d_x, (size_t)max_hidden / QBLOCK * Q8_BLOCK_BYTES)) != cudaSuccess ||
        (e = cudaMalloc((void **)&v->d_actq, (size_t)max_neurons / QBLOCK * Q8_BLOCK_BYTES)) != cudaSuccess ||
        (e = cudaMalloc((void **)&v->d_out, max_hidden * sizeof(float))) != cudaSuccess ||
        (e = cudaMalloc((void **)&v->d_act, max_neurons * sizeof(float))) != cudaSuccess ||
        (e = cudaMallocHost((void **)&v->h_out, max_hidden * sizeof(float))) != cudaSuccess ||
        (e = cudaMallocHost((void **)&v->h_x, (size_t)max_hidden / QBLOCK * Q8_BLOCK_BYTES)) != cudaSuccess) {
        cudaGetLastError();
        vib3_vram_close(v);
        return cuda_fail(e, "allocating the vram pool");
    }
    for (uint32_t i = 0; i < v->n_slots; i++) {
        if ((e = cudaEventCreateWithFlags(&v->slot_event[i], cudaEventDisableTiming)) != cudaSuccess) {
            cudaGetLastError();
            vib3_vram_close(v);
            return cuda_fail(e, "events");
        }
    }
    // everything the token path needs, now: every thread's batch buffers and the kernels' module
    // (CUDA loads modules lazily on first launch), so decoding allocates nothing on the host
    for (uint32_t t = 0; t < VIB3_VRAM_BATCH_THREADS; t++)
        if (!batch_alloc_locked(v, &v->batch[t])) {
            vib3_err rc = vib3_err_set(VIB3_ERR_IO, "cuda: allocating the decode batches: %s", v->st.last_error);
            vib3_vram_close(v);
            return rc;
        }
    cudaFuncAttributes fa;
    if ((e = cudaFuncGetAttributes(&fa, k_gate_up)) != cudaSuccess ||
        (e = cudaFuncGetAttributes(&fa, k_quant_q8)) != cudaSuccess ||
        (e = cudaFuncGetAttributes(&fa, k_down)) != cudaSuccess ||
        (e = cudaFuncGetAttributes(&fa, k_batch_gate_up)) != cudaSuccess ||
        (e = cudaFuncGetAttributes(&fa, k_batch_quant_q8)) != cudaSuccess ||
        (e = cudaFuncGetAttributes(&fa, k_batch_down)) != cudaSuccess) {
        cudaGetLastError();
        vib3_vram_close(v);
        return cuda_fail(e, "loading the page kernels");
    }
    v->st.slots_total = v->n_slots;
    *out = v;
    return VIB3_OK;
}

extern "C" void vib3_vram_close(vib3_vram *v) {
    if (!v) return;
    if (v->stream) cudaStreamSynchronize(v->stream);
    if (v->registered) cudaHostUnregister(v->registered);
    if (v->slot_event)
        for (uint32_t i = 0; i < v->n_slots; i++)
            if (v->slot_event[i]) cudaEventDestroy(v->slot_event[i]);
    cudaFree(v->slots);
    cudaFree(v->d_x);
    cudaFree(v->d_actq);
    cudaFree(v->d_out);
    cudaFree(v->d_act);
    if (v->h_out) cudaFreeHost(v->h_out);
    if (v->h_x) cudaFreeHost(v->h_x);
    if (v->stream) cudaStreamDestroy(v->stream);
    for (uint32_t t = 0; t < VIB3_VRAM_BATCH_THREADS; t++) {
        vib3_vram_batch *b = &v->batch[t];
        if (!b->ready) continue;
        cudaStreamSynchronize(b->stream);
        cudaFree(b->d_items);
        cudaFree(b->d_x);
        cudaFree(b->d_actq);
        cudaFree(b->d_act);
        cudaFree(b->d_out);
        cudaFreeHost(b->h_items);
        cudaFreeHost(b->h_out);
        cudaFreeHost(b->h_x);
        cudaStreamDestroy(b->stream);
    }
    cudaGetLastError();
    free(v->page_slot);
    free(v->page_pending);
    free(v->slot_page);
    free(v->slot_heat);
    free(v->slot_event);
    free(v->slot_ready);
    free(v->slot_pins);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

extern "C" vib3_err vib3_vram_register_host(vib3_vram *v, void *base, uint64_t bytes) {
    cudaError_t e = cudaHostRegister(base, bytes, cudaHostRegisterDefault);
    if (e != cudaSuccess) { // not fatal: copies from pageable memory are staged by the driver
        cudaGetLastError();
        return cuda_fail(e, "page-locking the host frames");
    }
    v->registered = base;
    return VIB3_OK;
}

static vib3_err promote_locked(vib3_vram *v, uint64_t page, const void *host, uint64_t bytes, uint32_t heat) {
    if (v->disabled) return VIB3_OK;
    if (page >= v->n_pages || bytes > v->slot_bytes)
        return vib3_err_set(VIB3_ERR_INVALID, "cuda: promote page %llu (%llu bytes, slots of %llu)",
                            (unsigned long long)page, (unsigned long long)bytes, (unsigned long long)v->slot_bytes);
    if (v->page_slot[page] != NONE32) {
        if (heat > v->slot_heat[v->page_slot[page]]) v->slot_heat[v->page_slot[page]] = heat;
        return VIB3_OK;
    }
    uint32_t s;
    if (v->used < v->n_slots) {
        s = v->used++;
    } else {
        // the coldest slot whose copy has finished; only a hotter page replaces it
        if (heat <= v->heat_floor) {
            v->st.rejected++;
            return VIB3_OK;
        }
        s = NONE32;
        uint32_t lo = UINT32_MAX; // the coldest heat of every slot, copying or not
        for (uint32_t i = 0; i < v->n_slots; i++) {
            if (v->slot_heat[i] < lo) lo = v->slot_heat[i];
            if (v->slot_pins[i]) continue; // a batch in flight reads it
            if (!v->slot_ready[i]) {
                cudaError_t q = cudaEventQuery(v->slot_event[i]);
                if (q == cudaErrorNotReady) continue;
                if (q != cudaSuccess) {
                    disable_locked(v, q, "promote: event query");
                    return VIB3_OK;
                }
                v->slot_ready[i] = 1;
            }
            if (s == NONE32 || v->slot_heat[i] < v->slot_heat[s]) s = i;
        }
        v->heat_floor = lo;
        if (s == NONE32 || v->slot_heat[s] >= heat) {
            v->st.rejected++;
            return VIB3_OK;
        }
        if (v->slot_page[s] != UINT64_MAX) { // the victim's copy has completed: nothing reads its frame
            v->page_slot[v->slot_page[s]] = NONE32;
            __atomic_store_n(&v->page_pending[v->slot_page[s]], 0, __ATOMIC_RELEASE);
        }
        v->st.replacements++;
    }
    cudaError_t e = cudaMemcpyAsync(v->slots + (uint64_t)s * v->slot_bytes, host, bytes, cudaMemcpyHostToDevice, v->stream);
    if (e == cudaSuccess) e = cudaEventRecord(v->slot_event[s], v->stream);
    if (e != cudaSuccess) {
        v->slot_page[s] = UINT64_MAX;
        v->slot_heat[s] = 0;
        v->slot_ready[s] = 1; // nothing in flight that reads a host frame for this slot
        disable_locked(v, e, "promote: host-to-device copy");
        return VIB3_OK; // the caller goes on without the tier
    }
    v->slot_page[s] = page;
    v->slot_heat[s] = heat;
    v->slot_ready[s] = 0;
    v->page_slot[page] = s;
    __atomic_store_n(&v->page_pending[page], 1, __ATOMIC_RELEASE);
    v->st.promotions++;
    v->st.bytes_copied += bytes;
    return VIB3_OK;
}

static void wait_locked(vib3_vram *v, uint64_t page) {
    if (page >= v->n_pages || v->page_slot[page] == NONE32) return;
    uint32_t s = v->page_slot[page];
    if (!v->slot_ready[s]) {
        cudaError_t e = cudaEventSynchronize(v->slot_event[s]);
        if (e != cudaSuccess) {
            disable_locked(v, e, "waiting for a promotion copy");
            return; // stays pending: a later wait tries again
        }
        v->slot_ready[s] = 1;
    }
    __atomic_store_n(&v->page_pending[page], 0, __ATOMIC_RELEASE);
}

static const void *lookup_locked(vib3_vram *v, uint64_t page) {
    if (v->disabled || page >= v->n_pages || v->page_slot[page] == NONE32) return NULL;
    uint32_t s = v->page_slot[page];
    if (!v->slot_ready[s]) {
        cudaError_t e = cudaEventQuery(v->slot_event[s]);
        if (e == cudaErrorNotReady) return NULL;
        if (e != cudaSuccess) {
            disable_locked(v, e, "lookup: event query");
            return NULL;
        }
        v->slot_ready[s] = 1;
        __atomic_store_n(&v->page_pending[page], 0, __ATOMIC_RELEASE);
    }
    return v->slots + (uint64_t)s * v->slot_bytes;
}

extern "C" vib3_err vib3_vram_promote(vib3_vram *v, uint64_t page, const void *host, uint64_t bytes, uint32_t heat) {
    // never waits for a page product in flight (the caller holds the buffer manager's lock):
    // a busy pool skips this promotion, the page's next access offers it again
    if (pthread_mutex_trylock(&v->mu) != 0) {
        __atomic_fetch_add(&v->busy_skips, 1, __ATOMIC_RELAXED);
        return VIB3_OK;
    }
    vib3_err rc = promote_locked(v, page, host, bytes, heat);
    pthread_mutex_unlock(&v->mu);
    return rc;
}

extern "C" void vib3_vram_wait(vib3_vram *v, uint64_t page) {
    if (page >= v->n_pages || !__atomic_load_n(&v->page_pending[page], __ATOMIC_ACQUIRE)) return; // no copy reads it
    pthread_mutex_lock(&v->mu);
    wait_locked(v, page);
    pthread_mutex_unlock(&v->mu);
}

extern "C" const void *vib3_vram_lookup(vib3_vram *v, uint64_t page) {
    pthread_mutex_lock(&v->mu);
    const void *d = lookup_locked(v, page);
    pthread_mutex_unlock(&v->mu);
    return d;
}

// ---- page product ---------------------------------------------------------------
enum { PF_DONE = 0, PF_ABSENT, PF_SHAPE, PF_CUDA };

static int page_ffn_locked(vib3_vram *v, uint64_t page, uint32_t dt, uint32_t hidden, uint32_t k, const void *xq,
                           float weight, float *out) {
    const uint8_t *d = (const uint8_t *)lookup_locked(v, page);
    if (!d) return PF_ABSENT;
    if (!pk_dtype_ok(dt) || hidden == 0 || k == 0 || hidden > v->max_hidden || k > v->max_neurons ||
        hidden % QBLOCK || k % QBLOCK || pk_page_bytes(dt, hidden, k) > v->slot_bytes)
        return PF_SHAPE;
    cudaError_t e;
    const char *what = "page ffn: input copy";
    if ((e = cudaSetDevice(v->device)) != cudaSuccess) {
        what = "page ffn: cudaSetDevice";
        goto fail;
    }
    memcpy(v->h_x, xq, (size_t)hidden / QBLOCK * Q8_BLOCK_BYTES);
    if ((e = cudaMemcpyAsync(v->d_x, v->h_x, (size_t)hidden / QBLOCK * Q8_BLOCK_BYTES, cudaMemcpyHostToDevice,
                             v->stream)) != cudaSuccess)
        goto fail;
    {
        const unsigned down_threads = v->inject ? 2048u : PK_THREADS; // 2048 > any device's limit
        v->inject = 0;
        k_gate_up<<<pk_grid_gate_up(k), PK_THREADS, pk_smem_gate_up(hidden), v->stream>>>(d, dt, hidden, k, v->d_x,
                                                                                          v->d_act);
        k_quant_q8<<<pk_grid_quant(k), PK_THREADS, 0, v->stream>>>(v->d_act, k, v->d_actq);
        k_down<<<pk_grid_down(hidden), down_threads, pk_smem_down(k), v->stream>>>(d, dt, hidden, k, v->d_actq,
                                                                                   weight, v->d_out);
        what = "page ffn: kernel launch";
        if ((e = cudaGetLastError()) != cudaSuccess) goto fail;
    }
    what = "page ffn: output copy";
    if ((e = cudaMemcpyAsync(v->h_out, v->d_out, hidden * sizeof(float), cudaMemcpyDeviceToHost, v->stream)) !=
        cudaSuccess)
        goto fail;
    what = "page ffn: stream synchronize";
    if ((e = cudaStreamSynchronize(v->stream)) != cudaSuccess) goto fail;
    for (uint32_t i = 0; i < hidden; i++) out[i] += v->h_out[i]; // out[i] += scale * y[i], as page_down
    v->st.kernel_calls++;
    return PF_DONE;
fail:
    disable_locked(v, e, what);
    return PF_CUDA;
}

extern "C" int vib3_vram_try_page_ffn_q4(vib3_vram *v, uint64_t page, uint32_t dtype, uint32_t hidden,
                                         uint32_t n_neurons, const void *xq, float weight, float *out) {
    pthread_mutex_lock(&v->mu);
    int r = page_ffn_locked(v, page, dtype, hidden, n_neurons, xq, weight, out);
    pthread_mutex_unlock(&v->mu);
    return r == PF_DONE;
}

extern "C" vib3_err vib3_vram_page_ffn_q4(vib3_vram *v, uint64_t page, uint32_t dtype, uint32_t hidden,
                                          uint32_t n_neurons, const void *xq, float weight, float *out) {
    pthread_mutex_lock(&v->mu);
    int r = page_ffn_locked(v, page, dtype, hidden, n_neurons, xq, weight, out);
    char last[sizeof v->st.last_error];
    memcpy(last, v->st.last_error, sizeof last);
    int disabled = v->disabled;
    pthread_mutex_unlock(&v->mu);
    switch (r) {
    case PF_DONE: return VIB3_OK;
    case PF_ABSENT:
        return vib3_err_set(VIB3_ERR_NOT_FOUND, "cuda: page %llu is not resident in VRAM%s", (unsigned long long)page,
                            disabled ? " (the VRAM tier is disabled)" : "");
    case PF_SHAPE:
        return vib3_err_set(VIB3_ERR_INVALID, "cuda: page %llu: dtype %u, hidden %u, neurons %u: not what the "
                            "kernel takes (q4_0 / q4_k16, multiples of 32 within the pool's %u / %u, page within "
                            "the %llu-byte slot)", (unsigned long long)page, dtype, hidden, n_neurons,
                            v->max_hidden, v->max_neurons, (unsigned long long)v->slot_bytes);
    default: return vib3_err_set(VIB3_ERR_IO, "%s", last);
    }
}

// ---- decode batches -----------------------------------------------------------------
static int batch_alloc_locked(vib3_vram *v, vib3_vram_batch *b) {
    cudaError_t e;
    const char *what = "batch: buffers";
    b->v = v;
    if ((e = cudaSetDevice(v->device)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking)) != cudaSuccess)
        goto fail;
    b->ready = 1; // from here close frees what was allocated (cudaFree(NULL) is fine)
    if ((e = cudaMalloc((void **)&b->d_items, PK_BATCH_MAX * sizeof(pk_item))) != cudaSuccess ||
        (e = cudaMalloc((void **)&b->d_x, (size_t)v->max_hidden / QBLOCK * Q8_BLOCK_BYTES)) != cudaSuccess ||
        (e = cudaMalloc((void **)&b->d_act, VIB3_VRAM_BATCH_NEURONS * sizeof(float))) != cudaSuccess ||
        (e = cudaMalloc((void **)&b->d_actq, VIB3_VRAM_BATCH_NEURONS / QBLOCK * Q8_BLOCK_BYTES)) != cudaSuccess ||
        (e = cudaMalloc((void **)&b->d_out, v->max_hidden * sizeof(float))) != cudaSuccess ||
        (e = cudaMallocHost((void **)&b->h_items, PK_BATCH_MAX * sizeof(pk_item))) != cudaSuccess ||
        (e = cudaMallocHost((void **)&b->h_out, v->max_hidden * sizeof(float))) != cudaSuccess ||
        (e = cudaMallocHost((void **)&b->h_x, (size_t)v->max_hidden / QBLOCK * Q8_BLOCK_BYTES)) != cudaSuccess)
        goto fail;
    return 1;
fail:
    disable_locked(v, e, what);
    return 0;
}

extern "C" vib3_vram_batch *vib3_vram_batch_begin(vib3_vram *v, uint32_t thread, uint32_t hidden) {
    if (!v || thread >= VIB3_VRAM_BATCH_THREADS || hidden == 0 || hidden % QBLOCK) return NULL;
    vib3_vram_batch *b = &v->batch[thread];
    pthread_mutex_lock(&v->mu);
    int ok = !v->disabled && hidden <= v->max_hidden && b->ready;
    pthread_mutex_unlock(&v->mu);
    if (!ok) return NULL;
    b->n = b->neurons = b->k_max = 0;
    b->hidden = hidden;
    return b;
}

extern "C" int vib3_vram_batch_add(vib3_vram_batch *b, uint64_t page, uint32_t dtype, uint32_t n_neurons,
                                   float weight) {
    vib3_vram *v = b->v;
    if (b->n >= PK_BATCH_MAX || !pk_dtype_ok(dtype) || n_neurons == 0 || n_neurons % QBLOCK ||
        n_neurons > v->max_neurons || b->neurons + n_neurons > VIB3_VRAM_BATCH_NEURONS ||
        pk_page_bytes(dtype, b->hidden, n_neurons) > v->slot_bytes)
        return 0;
    pthread_mutex_lock(&v->mu);
    const uint8_t *d = (const uint8_t *)lookup_locked(v, page);
    uint32_t slot = d ? v->page_slot[page] : NONE32;
    if (d) {
        v->slot_pins[slot]++; // never replaced until run releases it
        // a page served from VRAM is not acquired, so the buffer manager's count stops: count the use here
        if (v->slot_heat[slot] != UINT32_MAX) v->slot_heat[slot]++;
    }
    pthread_mutex_unlock(&v->mu);
    if (!d) return 0;
    b->page[b->n] = page;
    b->slot[b->n] = slot;
    b->h_items[b->n] = (pk_item){d, n_neurons, b->neurons, weight, dtype};
    b->neurons += n_neurons;
    if (n_neurons > b->k_max) b->k_max = n_neurons;
    b->n++;
    return 1;
}

extern "C" int vib3_vram_batch_run(vib3_vram_batch *b, const void *xq, float *out) {
    vib3_vram *v = b->v;
    if (b->n == 0) return 1;
    cudaError_t e = cudaSuccess;
    const char *what = "batch: cudaSetDevice";
    int ok = 0;
    pthread_mutex_lock(&v->mu);
    const int inject = v->inject;
    v->inject = 0;
    pthread_mutex_unlock(&v->mu);
    const uint32_t h = b->hidden;
    if ((e = cudaSetDevice(v->device)) != cudaSuccess) goto done;
    what = "batch: input copies";
    memcpy(b->h_x, xq, (size_t)h / QBLOCK * Q8_BLOCK_BYTES);
    if ((e = cudaMemcpyAsync(b->d_items, b->h_items, b->n * sizeof(pk_item), cudaMemcpyHostToDevice, b->stream)) !=
            cudaSuccess ||
        (e = cudaMemcpyAsync(b->d_x, b->h_x, (size_t)h / QBLOCK * Q8_BLOCK_BYTES, cudaMemcpyHostToDevice,
                             b->stream)) != cudaSuccess)
        goto done;
    k_batch_gate_up<<<dim3(pk_grid_gate_up(b->k_max), b->n), PK_THREADS, pk_smem_gate_up(h), b->stream>>>(
        b->d_items, h, b->d_x, b->d_act);
    k_batch_quant_q8<<<dim3(pk_grid_quant(b->k_max), b->n), PK_THREADS, 0, b->stream>>>(b->d_items, b->d_act,
                                                                                       b->d_actq);
    k_batch_down<<<pk_grid_down(h), inject ? 2048u : PK_THREADS, pk_smem_batch_down(b->n), b->stream>>>(
        b->d_items, b->n, h, b->d_actq, b->d_out);
    what = "batch: kernel launch";
    if ((e = cudaGetLastError()) != cudaSuccess) goto done;
    what = "batch: output copy";
    if ((e = cudaMemcpyAsync(b->h_out, b->d_out, h * sizeof(float), cudaMemcpyDeviceToHost, b->stream)) != cudaSuccess)
        goto done;
    what = "batch: stream synchronize";
    if ((e = cudaStreamSynchronize(b->stream)) != cudaSuccess) goto done;
    for (uint32_t i = 0; i < h; i++) out[i] += b->h_out[i];
    ok = 1;
done:
    if (!ok) cudaStreamSynchronize(b->stream); // nothing of this batch may still read the slots
    pthread_mutex_lock(&v->mu);
    for (uint32_t q = 0; q < b->n; q++) v->slot_pins[b->slot[q]]--;
    if (ok) {
        v->st.kernel_calls += b->n;
        v->st.batches++;
    } else {
        disable_locked(v, e, what);
    }
    pthread_mutex_unlock(&v->mu);
    return ok;
}

extern "C" uint32_t vib3_vram_batch_count(const vib3_vram_batch *b) { return b->n; }

extern "C" uint64_t vib3_vram_batch_page(const vib3_vram_batch *b, uint32_t i, float *weight) {
    if (weight) *weight = b->h_items[i].w;
    return b->page[i];
}

extern "C" void vib3_vram_stats_get(vib3_vram *v, vib3_vram_stats *s) {
    pthread_mutex_lock(&v->mu);
    *s = v->st;
    s->slots_used = v->used;
    s->disabled = v->disabled;
    s->busy_skips = __atomic_load_n(&v->busy_skips, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&v->mu);
}

extern "C" void vib3_vram_inject_launch_error(vib3_vram *v) {
    pthread_mutex_lock(&v->mu);
    v->inject = 1;
    pthread_mutex_unlock(&v->mu);
}
