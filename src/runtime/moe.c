/* moe.c — the FFN block: a dense FFN or a mixture of experts, computed as
 * sums of pages read through the buffer manager (storage/pages.h).
 *
 * Every FFN "slot" (a routed expert, a shared expert, or a dense layer's
 * FFN) is stored as pages of K neurons; since
 *     down · (silu(gate·x) * (up·x)) = sum over pages of the same per page,
 * an expert's output is the sum of its pages' outputs, each computed by the
 * simd page kernel while the page is pinned (acquire ... release).
 *
 * Routing, per architecture (router logits z = W_router · x, k = n_experts_per_tok):
 *   Mixtral   (SOFTMAX_TOPK)     top-k of z, weights = softmax over those k
 *   Qwen2/3   (softmax)          p = softmax(z), top-k of p, renormalised when NORM_TOPK
 *   DeepSeek-V3 / Kimi (sigmoid) s = sigmoid(z); selection on s + bias (CORRECTION_BIAS),
 *                                group-limited: keep the topk_group of n_group groups ranked by the
 *                                sum of their two best scores; weights = s of the chosen,
 *                                normalised when NORM_TOPK, times routed_scaling_factor
 *   DeepSeek-V2 style            softmax scoring with groups ranked by their best score
 * Shared experts (slots n_experts + s) take every row with weight 1, or
 * sigmoid(shared_gate · x) for Qwen2-MoE (SHARED_GATE).
 *
 * Execution of a micro-batch: rows are grouped per slot (counting sort); the
 * work list is every page of every used slot; the list is cut into one
 * contiguous range per thread task. A task accumulates into its own (n,
 * hidden) buffer — pages of one slot run as one batch kernel call per page
 * over the slot's gathered rows — and the task buffers are summed into the
 * residual in task order, so the result does not depend on thread timing.
 */
#include <math.h>
#include <string.h>

#include "runtime/model.h"
#include "runtime/vexpert.h"
#ifdef VIB3_CUDA
#include "cuda/vram.h"   /* T1: Q4_0 / Q4_K16 pages resident in VRAM run on the GPU (docs/CUDA.md) */
#endif

/* ==== routing ============================================================== */
static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* keep only the topk_group best of n_group groups in `choice` (others -> -inf) */
static void limit_groups(vib3_engine *e, float *choice, bool sum_top2) {
    const vib3_model_config *c = &e->mc;
    uint32_t g = c->n_group, per = c->n_experts / g;
    float gscore[256] = {0};
    uint32_t gidx[256] = {0};
    for (uint32_t i = 0; i < g; i++) {
        const float *s = choice + (size_t)i * per;
        float a = -INFINITY, b = -INFINITY;  /* best two */
        for (uint32_t j = 0; j < per; j++) {
            if (s[j] > a) b = a, a = s[j];
            else if (s[j] > b) b = s[j];
        }
        gscore[i] = sum_top2 && per > 1 ? a + b : a;
    }
    e->ops->topk(gscore, g, c->topk_group, gidx, NULL);
    for (uint32_t i = 0; i < g; i++) {
        bool keep = false;
        for (uint32_t j = 0; j < c->topk_group; j++) keep |= gidx[j] == i;
        if (!keep)
            for (uint32_t j = 0; j < per; j++) choice[(size_t)i * per + j] = -INFINITY;
    }
}

/* experts and weights for one row from its router logits z (n_experts) */
static void route_row(vib3_engine *e, const rt_layer *L, const float *z, int32_t *ex, float *w) {
    const vib3_model_config *c = &e->mc;
    uint32_t ne = c->n_experts, k = c->n_experts_per_tok;
    float *s = e->route_tmp, *choice = e->route_choice;
    uint32_t *idx = e->route_idx;
    bool groups = c->n_group > 1 && c->topk_group < c->n_group && c->n_experts % c->n_group == 0;
    if (c->router_scoring == VIB3_ROUTER_SIGMOID) {
        for (uint32_t i = 0; i < ne; i++) {
            s[i] = sigmoidf(z[i]);
            choice[i] = s[i] + (L->router_bias ? L->router_bias[i] : 0.0f);
        }
        if (groups) limit_groups(e, choice, true);
        e->ops->topk(choice, ne, k, idx, NULL);
        for (uint32_t j = 0; j < k; j++) w[j] = s[idx[j]];
    } else if (c->router_flags & VIB3_ROUTER_SOFTMAX_TOPK) {
        e->ops->topk(z, ne, k, idx, w);
        e->ops->softmax(w, k);
    } else {
        memcpy(s, z, (size_t)ne * sizeof(float));
        e->ops->softmax(s, ne);
        memcpy(choice, s, (size_t)ne * sizeof(float));
        if (groups) limit_groups(e, choice, false);
        e->ops->topk(choice, ne, k, idx, NULL);
        for (uint32_t j = 0; j < k; j++) w[j] = s[idx[j]];
    }
    if ((c->router_flags & VIB3_ROUTER_NORM_TOPK) && !(c->router_flags & VIB3_ROUTER_SOFTMAX_TOPK)) {
        float sum = 0;
        for (uint32_t j = 0; j < k; j++) sum += w[j];
        sum += c->router_scoring == VIB3_ROUTER_SIGMOID ? 1e-20f : 0.0f;
        for (uint32_t j = 0; j < k; j++) w[j] /= sum;
    }
    float scale = c->routed_scaling_factor > 0 ? c->routed_scaling_factor : 1.0f;
    for (uint32_t j = 0; j < k; j++) {
        ex[j] = (int32_t)idx[j];
        w[j] *= scale;
    }
}

static void route(vib3_engine *e, uint32_t l, uint32_t n) {
    const vib3_model_config *c = &e->mc;
    const rt_layer *L = &e->layers[l];
    uint32_t kr = e->k_route;
    for (size_t i = 0; i < (size_t)n * kr; i++) e->route_expert[i] = -1, e->route_weight[i] = 0;
    if (!L->moe) {
        for (uint32_t r = 0; r < n; r++) e->route_expert[(size_t)r * kr] = 0, e->route_weight[(size_t)r * kr] = 1;
        return;
    }
    uint32_t ne = c->n_experts, k = c->n_experts_per_tok;
    rt_linear(e, &L->router, e->xn, c->hidden_size, n, e->router_logits, ne);
    for (uint32_t r = 0; r < n; r++)
        route_row(e, L, e->router_logits + (size_t)r * ne, e->route_expert + (size_t)r * kr,
                  e->route_weight + (size_t)r * kr);
    if (c->n_shared_experts == 0) return;
    if (L->shared_gate.data) rt_linear(e, &L->shared_gate, e->xn, c->hidden_size, n, e->tmp, 1);
    for (uint32_t r = 0; r < n; r++)
        for (uint32_t s = 0; s < c->n_shared_experts; s++) {
            uint32_t slot = vib3_file_slot(&e->file, VIB3_PAGE_SHARED, s);
            uint64_t first;
            uint32_t count;
            if (!vib3_file_slot_pages(&e->file, l, slot, &first, &count)) continue;
            e->route_expert[(size_t)r * kr + k + s] = (int32_t)slot;
            e->route_weight[(size_t)r * kr + k + s] = L->shared_gate.data ? sigmoidf(e->tmp[r]) : 1.0f;
        }
}

/* group rows by slot and list every page of every used slot as a work item */
static uint32_t plan(vib3_engine *e, uint32_t l, uint32_t n) {
    uint32_t kr = e->k_route, ns = e->n_slots;
    memset(e->slot_count, 0, (size_t)ns * sizeof(uint32_t));
    for (size_t i = 0; i < (size_t)n * kr; i++)
        if (e->route_expert[i] >= 0) e->slot_count[e->route_expert[i]]++;
    e->slot_start[0] = 0;
    for (uint32_t s = 0; s < ns; s++) e->slot_start[s + 1] = e->slot_start[s] + e->slot_count[s];
    memset(e->slot_count, 0, (size_t)ns * sizeof(uint32_t));
    for (uint32_t r = 0; r < n; r++)   /* row order is kept within a slot */
        for (uint32_t j = 0; j < kr; j++) {
            int32_t s = e->route_expert[(size_t)r * kr + j];
            if (s < 0) continue;
            uint32_t at = e->slot_start[s] + e->slot_count[s]++;
            e->slot_rows[at] = r;
            e->slot_w[at] = e->route_weight[(size_t)r * kr + j];
        }
    uint32_t m = 0;
    for (uint32_t s = 0; s < ns; s++) {
        uint64_t first;
        uint32_t count;
        if (!e->slot_count[s] || !vib3_file_slot_pages(&e->file, l, s, &first, &count)) continue;
        for (uint32_t p = 0; p < count && m < e->items_cap; p++, m++) {
            e->items[m] = first + p;
            e->item_slot[m] = s;
        }
    }
    return m;
}

/* ==== execution ============================================================ */
typedef struct ffn_job {
    vib3_engine *e;
    uint32_t n, n_items, n_tasks;
} ffn_job;

/* gathered rows of one slot in a task: x rows copied in, outputs summed over the slot's pages */
typedef struct gather_state {
    int64_t slot;     /* -1 = none */
    uint32_t cnt;
    const uint32_t *rows;
} gather_state;

static void gather_flush(vib3_engine *e, rt_worker *scratch, float *acc, gather_state *g) {
    uint32_t h = e->mc.hidden_size;
    if (g->slot >= 0 && g->rows)
        for (uint32_t t = 0; t < g->cnt; t++)
            e->ops->add(acc + (size_t)g->rows[t] * h, acc + (size_t)g->rows[t] * h, scratch->gather_out + (size_t)t * h, h);
    g->slot = -1;
    g->rows = NULL;
}

static void ffn_task(void *ctx, uint32_t task, uint32_t thread) {
    const ffn_job *j = ctx;
    vib3_engine *e = j->e;
    rt_worker *scratch = &e->workers[thread];
    float *acc = e->workers[task].acc;
    uint32_t h = e->mc.hidden_size, n = j->n;
    size_t i0, i1;
    vib3_split_range(j->n_items, j->n_tasks, task, 1, &i0, &i1);
    memset(acc, 0, (size_t)n * h * sizeof(float));
    gather_state g = {-1, 0, NULL};
#ifdef VIB3_CUDA
    /* single-token decode: this task's Q4_0 / Q4_K16 pages resident in VRAM run as one GPU batch (docs/CUDA.md) */
    void *vram = vib3_pages_vram(e->pages);
    vib3_vram_batch *gb = n == 1 && vram ? vib3_vram_batch_begin(vram, thread, h) : NULL;
#endif
    for (size_t it = i0; it < i1; it++) {
        uint64_t pi = e->items[it];
        uint32_t slot = e->item_slot[it];
        const vib3_page_entry *pe = &e->file.pages[pi];
        vib3_dtype dt = (vib3_dtype)pe->dtype;
        bool q8 = vib3_simd_x_is_q8(dt);
        size_t xrb = vib3_simd_x_row_bytes(dt, h);
        const uint8_t *xs = q8 ? e->xnq : (const uint8_t *)e->xn;
        uint32_t cnt = e->slot_start[slot + 1] - e->slot_start[slot];
        const uint32_t *rows = e->slot_rows + e->slot_start[slot];
        const float *w = e->slot_w + e->slot_start[slot];
#ifdef VIB3_CUDA
        if (gb && (dt == VIB3_DTYPE_Q4_0 || dt == VIB3_DTYPE_Q4_K16) &&
            vib3_vram_batch_add(gb, pi, (uint32_t)dt, pe->n_neurons, w[0]))
            continue;
#endif
        const void *page;
        vib3_err rc = vib3_pages_acquire(e->pages, pi, &page);
        if (rc != VIB3_OK) {
            rt_worker_fail(e, rc);
            break;
        }
        if (cnt == 1) {
#ifdef VIB3_CUDA
            /* a row alone on its slot in a prefill batch: a Q4_0 / Q4_K16 page with a finished VRAM copy
             * runs on the GPU into the same acc; 0 back (absent, disabled, CUDA error) = the CPU computes it */
            if (!vram || (dt != VIB3_DTYPE_Q4_0 && dt != VIB3_DTYPE_Q4_K16) ||
                !vib3_vram_try_page_ffn_q4(vram, pi, (uint32_t)dt, h, pe->n_neurons, xs + (size_t)rows[0] * xrb,
                                           w[0], acc + (size_t)rows[0] * h))
#endif
            e->ops->page_ffn[dt](page, h, pe->n_neurons, xs + (size_t)rows[0] * xrb, w[0], acc + (size_t)rows[0] * h);
        } else if (cnt == n) {   /* every row, in order (dense or shared slot) */
            e->ops->page_ffn_batch[dt](page, h, pe->n_neurons, xs, xrb, n, w, acc, h, scratch->page_scratch);
        } else {
            if (g.slot != (int64_t)slot) {
                gather_flush(e, scratch, acc, &g);
                for (uint32_t t = 0; t < cnt; t++)
                    memcpy(scratch->gather_x + (size_t)t * xrb, xs + (size_t)rows[t] * xrb, xrb);
                memset(scratch->gather_out, 0, (size_t)cnt * h * sizeof(float));
                g = (gather_state){slot, cnt, rows};
            }
            e->ops->page_ffn_batch[dt](page, h, pe->n_neurons, scratch->gather_x, xrb, cnt, w, scratch->gather_out, h,
                                       scratch->page_scratch);
        }
        vib3_pages_release(e->pages, pi);
    }
    gather_flush(e, scratch, acc, &g);
#ifdef VIB3_CUDA
    if (gb && !vib3_vram_batch_run(gb, e->xnq, acc))   /* a CUDA error: the batch's pages on the CPU */
        for (uint32_t q = 0; q < vib3_vram_batch_count(gb); q++) {
            float wq;
            uint64_t pi = vib3_vram_batch_page(gb, q, &wq);
            const void *page;
            vib3_err rc = vib3_pages_acquire(e->pages, pi, &page);
            if (rc != VIB3_OK) {
                rt_worker_fail(e, rc);
                break;
            }
            e->ops->page_ffn[e->file.pages[pi].dtype](page, h, e->file.pages[pi].n_neurons, e->xnq, wq, acc);
            vib3_pages_release(e->pages, pi);
        }
#endif
}

vib3_err rt_ffn(vib3_engine *e, uint32_t l, uint32_t n) {
    uint32_t h = e->mc.hidden_size;
    if (vib3_ve_on(e->ve)) return rt_ve_ffn(e, l, n);   /* virtual experts bypass the router's plan */
    route(e, l, n);
    if (e->layers[l].moe && e->moe_hook)
        e->moe_hook(e->moe_hook_ctx, l, e->xn, n, e->route_expert, e->k_route);
    uint32_t m = plan(e, l, n);
    if (e->pages_need_q8)
        for (uint32_t r = 0; r < n; r++)
            e->ops->quantize_q8_0(e->xn + (size_t)r * h, (vib3_block_q8_0 *)(e->xnq + (size_t)r * (h / 32) * 34), h);
    ffn_job j = {e, n, m, m < e->n_threads ? (m ? m : 1) : e->n_threads};
    if (j.n_tasks == 1) ffn_task(&j, 0, 0);
    else vib3_threadpool_run(&e->pool, ffn_task, &j, j.n_tasks);
    vib3_err rc = rt_worker_check(e);
    if (rc) return rc;
    for (uint32_t t = 0; t < j.n_tasks; t++) e->ops->add(e->x, e->x, e->workers[t].acc, (size_t)n * h);
    return VIB3_OK;
}
