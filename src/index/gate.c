/* gate.c — hints on/off by measured decode token time (see gate.h). */
#include "index/gate.h"

#include <string.h>

#define GATE_WARMUP_EPOCHS 5u  /* on (cold caches: not counted), off, on, off, on */
#define GATE_SWITCH_MARGIN 0.03 /* the other arm must be 3% faster to take over */
#define GATE_EPOCH_NS 250e6    /* a slow model's epoch ends after this much decode time (>= 2 tokens) */

void vib3_prefetch_gate_init(vib3_prefetch_gate *g, uint32_t epoch_tokens, uint32_t explore_every) {
    memset(g, 0, sizeof *g);
    g->epoch_tokens = epoch_tokens ? epoch_tokens : 32;
    g->explore_every = explore_every >= 2 ? explore_every : 8;
    g->arm = 1;
    g->best = 1;
}

void vib3_prefetch_gate_token_begin(vib3_prefetch_gate *g, uint64_t now_ns) { g->t_begin = now_ns; }

/* the arm of epoch n (after epoch n - 1 finished) */
static int next_arm(vib3_prefetch_gate *g) {
    uint64_t n = g->epoch_no;
    if (n < GATE_WARMUP_EPOCHS) return n == 0 || !(n & 1);
    if (g->mean_ns[0] > 0 && g->mean_ns[1] > 0) {
        int other = !g->best;
        if (g->mean_ns[other] < g->mean_ns[g->best] * (1.0 - GATE_SWITCH_MARGIN)) {
            g->best = other;
            if (n > GATE_WARMUP_EPOCHS) g->switches++;
        }
    }
    /* the first epoch after the warm-up commits; then one epoch of the other arm in every explore_every */
    return (n - GATE_WARMUP_EPOCHS) % g->explore_every == g->explore_every - 1 ? !g->best : g->best;
}

void vib3_prefetch_gate_token_end(vib3_prefetch_gate *g, uint64_t now_ns) {
    if (!g->t_begin || now_ns <= g->t_begin) return;
    g->epoch_ns += (double)(now_ns - g->t_begin);
    g->t_begin = 0;
    /* an epoch is E tokens, or fewer on a slow model: at least 2 and GATE_EPOCH_NS of decode */
    if (++g->in_epoch < g->epoch_tokens && (g->in_epoch < 2 || g->epoch_ns < GATE_EPOCH_NS)) return;
    double mean = g->epoch_ns / g->in_epoch;
    int a = g->arm;
    /* the first measurement sets the mean; later epochs weigh half (text and load drift) */
    if (g->epoch_no > 0) {
        g->mean_ns[a] = g->epochs[a] ? 0.5 * g->mean_ns[a] + 0.5 * mean : mean;
        g->epochs[a]++;
    }
    g->epoch_no++;
    g->in_epoch = 0;
    g->epoch_ns = 0;
    g->arm = next_arm(g);
}
