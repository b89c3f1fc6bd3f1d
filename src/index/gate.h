/* gate.h — does prediction pay here? An online A/B of prefetch hints on/off.
 *
 * Hints cost disk bandwidth: on a disk that is already the bottleneck, reads
 * of wrong guesses delay the reads that are needed, and a predictor that
 * lowers the fault rate can still lower tokens/s (measured on tinymix and on
 * the scale model, docs/bench/storage.md). Whether it pays depends on the
 * model, the disk, the budget and the text, so `--prefetch auto` measures it:
 * decode time is split into epochs of E tokens (or, on a slow model, of at
 * least 2 tokens and 250 ms, so a short generation still decides); after one uncounted epoch
 * (cold caches) four alternate hints off / on, then the faster arm is kept
 * and the other is re-measured for one epoch in every R (so a change of text
 * or load can flip it back; the other arm must be 3% faster to take over).
 * A token's time is taken from its first MoE layer to its last (decode rows
 * only), so idle time between requests and prompt processing never count.
 *
 * No allocation, no locks: the caller (the prefetcher's hook) serialises.
 */
#ifndef VIB3_INDEX_GATE_H
#define VIB3_INDEX_GATE_H

#include <stdint.h>

typedef struct vib3_prefetch_gate {
    uint32_t epoch_tokens;   /* E */
    uint32_t explore_every;  /* R */
    int arm;                 /* hints on (1) or off (0) for the current epoch */
    int best;                /* the arm kept after the warm-up */
    uint64_t t_begin;        /* ns at the current token's first MoE layer, 0 = none */
    uint32_t in_epoch;       /* tokens timed in the current epoch */
    double epoch_ns;         /* their total time */
    double mean_ns[2];       /* per arm: mean token time of its recent epochs (EWMA over epochs), 0 = unknown */
    uint64_t epochs[2];      /* epochs measured per arm */
    uint64_t epoch_no;       /* epochs finished */
    uint64_t switches;       /* times the kept arm changed after the warm-up */
} vib3_prefetch_gate;

/* epoch_tokens 0 = 32, explore_every 0 = 8 */
void vib3_prefetch_gate_init(vib3_prefetch_gate *g, uint32_t epoch_tokens, uint32_t explore_every);
/* a decode token's first / last MoE layer ran at now_ns (CLOCK_MONOTONIC) */
void vib3_prefetch_gate_token_begin(vib3_prefetch_gate *g, uint64_t now_ns);
void vib3_prefetch_gate_token_end(vib3_prefetch_gate *g, uint64_t now_ns);
/* whether hints are on now */
static inline int vib3_prefetch_gate_on(const vib3_prefetch_gate *g) { return g->arm; }

#endif
