/* test_gate.c — the prefetch gate (index/gate.h) keeps whichever of hints
 * on / off gives the shorter decode token time, re-measures the other, flips
 * when the cost changes, and ignores time outside decode tokens. Synthetic
 * clocks: deterministic. */
#include "index/gate.h"
#include "tests/test.h"

/* run n tokens where a token takes on_ns with hints on and off_ns with hints off; count tokens per arm */
static void drive(vib3_prefetch_gate *g, uint64_t *clock, uint32_t n, uint64_t on_ns, uint64_t off_ns, uint64_t count[2]) {
    for (uint32_t i = 0; i < n; i++) {
        int on = vib3_prefetch_gate_on(g);
        count[on]++;
        vib3_prefetch_gate_token_begin(g, *clock);
        *clock += on ? on_ns : off_ns;
        vib3_prefetch_gate_token_end(g, *clock);
        *clock += 5000000000ull; /* idle between tokens (a user typing): never counted */
    }
}

TEST(keeps_the_faster_arm) {
    for (int on_faster = 0; on_faster < 2; on_faster++) {
        vib3_prefetch_gate g;
        vib3_prefetch_gate_init(&g, 8, 8);
        uint64_t clock = 1, warm[2] = {0, 0}, after[2] = {0, 0};
        drive(&g, &clock, 5 * 8, on_faster ? 80000 : 100000, on_faster ? 100000 : 80000, warm);
        CHECK_EQ_U64(warm[0], 16); /* warm-up: on (uncounted), off, on, off, on */
        CHECK_EQ_U64(warm[1], 24);
        drive(&g, &clock, 80 * 8, on_faster ? 80000 : 100000, on_faster ? 100000 : 80000, after);
        CHECK_EQ_U64(after[on_faster], 70 * 8); /* 7 of every 8 epochs on the faster arm */
        CHECK_EQ_U64(after[!on_faster], 10 * 8);
        CHECK_EQ_U64(g.switches, 0);
        CHECK(g.best == on_faster);
    }
}

TEST(flips_when_the_cost_changes) {
    vib3_prefetch_gate g;
    vib3_prefetch_gate_init(&g, 4, 4);
    uint64_t clock = 1, n[2] = {0, 0};
    drive(&g, &clock, 40 * 4, 50000, 100000, n); /* hints pay */
    CHECK(g.best == 1);
    drive(&g, &clock, 40 * 4, 150000, 100000, n); /* now they cost */
    CHECK(g.best == 0);
    CHECK(g.switches >= 1);
}

TEST(within_margin_no_flapping) {
    vib3_prefetch_gate g;
    vib3_prefetch_gate_init(&g, 4, 4);
    uint64_t clock = 1, n[2] = {0, 0};
    drive(&g, &clock, 100 * 4, 100000, 101000, n); /* 1% apart: inside the 3% margin */
    CHECK_EQ_U64(g.switches, 0);
}

TEST(ignores_unpaired_ends) {
    vib3_prefetch_gate g;
    vib3_prefetch_gate_init(&g, 4, 4);
    vib3_prefetch_gate_token_end(&g, 1000); /* no begin: not a token */
    vib3_prefetch_gate_token_begin(&g, 2000);
    vib3_prefetch_gate_token_end(&g, 1500); /* clock went backwards: dropped */
    CHECK_EQ_U64(g.in_epoch, 0);
    vib3_prefetch_gate_init(&g, 0, 0);
    CHECK_EQ_U64(g.epoch_tokens, 32);
    CHECK_EQ_U64(g.explore_every, 8);
}

TEST(slow_tokens_make_short_epochs) {
    vib3_prefetch_gate g;
    vib3_prefetch_gate_init(&g, 32, 8);
    uint64_t clock = 1, n[2] = {0, 0};
    drive(&g, &clock, 2, 400000000ull, 400000000ull, n); /* two 0.4 s tokens: one epoch */
    CHECK_EQ_U64(g.epoch_no, 1);
    drive(&g, &clock, 1, 400000000ull, 400000000ull, n); /* never an epoch of one token */
    CHECK_EQ_U64(g.epoch_no, 1);
    vib3_prefetch_gate_init(&g, 32, 8);
    drive(&g, &clock, 5 * 2 + 2, 600000000ull, 300000000ull, n); /* warm-up done within 12 slow tokens */
    CHECK(g.best == 0);
}
