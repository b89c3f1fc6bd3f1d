/* storage_run — greedy decoding through the buffer manager with the
 * prefetcher wired to the engine's MoE hook; prints the ids, decode tok/s
 * and the tier statistics (for bench/storage_*.sh and tests/storage/).
 *
 *   storage_run MODEL.vib3 [--tokens N] [--prompt TEXT | --prompt-file F [--prompt-bytes N]]
 *               [--expert-budget SIZE|P%] [--trace FILE] [--json] [--teacher]
 *               [settings flags as `vib3 run`: --ram-budget, --evict, --prefetch, --threads, --io-uring ...]
 *
 * --expert-budget sets VIB3_EXPERT_BUDGET (frames bytes directly). --teacher
 * feeds the prompt one token at a time through decode (real text, decode's
 * access pattern) and then generates --tokens more. Without a
 * tokenizer the prompt is ids 1 + (i * 37) % vocab.
 * --record-routing FILE writes the routed experts of every MoE layer call;
 * --oracle FILE [--oracle-depth D] replays such a record as perfect hints D
 * layer calls ahead (a study of how early a prediction must arrive).
 * --study-layer0 K scores a logit-lens guess of the next token's layer-0
 * experts; --hint-next-token D hints the text's next token's layer-0 experts
 * (from a per-token table) D layers before the end of each token (--teacher;
 * studies, see docs/bench/storage.md). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "index/prefetch.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"
#include "storage/pages.h"
#include "simd/simd.h"

static uint32_t prompt_ids[8192];

/* --record-routing / --oracle: the routing of every MoE hook call (one row:
 * decode) in order; a run on the same text repeats it exactly (greedy,
 * teacher-forced), so an oracle can hint the true experts D calls ahead:
 * the ceiling of any predictor whose guesses arrive D layers early. */
#define REC_MAX (1u << 20)
static struct {
    vib3_prefetcher *pf;
    vib3_pages *pages;
    const vib3_file *file;
    int32_t rec[REC_MAX]; /* per call: layer, then k slots */
    uint32_t k, n_calls, pos, depth;
    int recording, oracle, skip_first;
} W;

/* --study-layer0 K: how well could layer 0 of the next token be predicted
 * during the current one? At the last layer a logit lens (final norm + LM
 * head on the last layer's normalised input, re-weighted as the look-ahead
 * does) gives K candidate tokens; a per-token table (router 0 on each token's
 * normalised embedding: the attention is ignored) maps them to experts; the
 * guess (the 3 experts with the most lens probability) is scored at the next
 * token's layer-0 routing, beside the table's answer for the true token
 * (the best a token-known predictor without attention can do). Study only:
 * nothing is hinted, and the LM head costs a full mat-vec per token. */
typedef struct study_t {
    uint32_t K, vocab, hidden, E, L;
    const vib3_tensor_entry *emb, *out, *out_norm, *norm0, *normL, *router0;
    uint8_t *table;        /* (vocab, E): 1 for the token's top-k experts at layer 0 */
    float *logits, *z, *row, *votes;
    uint8_t guess[256];
    int have_guess;
    uint32_t cur_token;
    uint64_t lens_pred, lens_ok, routed, table_pred, table_ok, top1_hits, tokens;
    int hint_next;         /* --hint-next-token D: D layers before the end of each token, hint layer 0's
                            * table experts for the next token of the text (known ahead only in prompt
                            * processing / with draft tokens) */
    uint32_t next_token;   /* the text's token after the one being decoded (UINT32_MAX: none) */
} study_t;
static study_t S;

static int tensor_row(const vib3_file *f, const vib3_tensor_entry *t, uint64_t r, uint32_t n, float *out) {
    const uint8_t *base = vib3_file_tensor_data(f, t);
    uint64_t rb = vib3_dtype_row_bytes((vib3_dtype)t->dtype, n);
    if (!base || !rb) return 0;
    const uint8_t *w = base + r * rb;
    switch (t->dtype) {
    case VIB3_DTYPE_F32: memcpy(out, w, n * sizeof(float)); return 1;
    case VIB3_DTYPE_F16: for (uint32_t i = 0; i < n; i++) out[i] = vib3_f16_to_f32(((const uint16_t *)w)[i]); return 1;
    case VIB3_DTYPE_Q8_0: {
        const vib3_block_q8_0 *b = (const vib3_block_q8_0 *)w;
        for (uint32_t j = 0; j < n / 32; j++)
            for (uint32_t i = 0; i < 32; i++) out[j * 32 + i] = vib3_f16_to_f32(b[j].d) * (float)b[j].qs[i];
        return 1;
    }
    default: return 0;
    }
}

static int study_open(const vib3_file *f, uint32_t K) {
    const vib3_model_config *c = f->config;
    char name[64];
    S.K = K, S.vocab = c->vocab_size, S.hidden = c->hidden_size, S.E = c->n_experts, S.L = c->n_layers;
    S.emb = vib3_file_find_tensor(f, "token_embd.weight");
    S.out = vib3_file_find_tensor(f, "output.weight");
    S.out_norm = vib3_file_find_tensor(f, "output_norm.weight");
    S.norm0 = vib3_file_find_tensor(f, "blk.0.ffn_norm.weight");
    snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", S.L - 1);
    S.normL = vib3_file_find_tensor(f, name);
    S.router0 = vib3_file_find_tensor(f, "blk.0.ffn_gate_inp.weight");
    if (!S.emb || !S.out || !S.out_norm || !S.norm0 || !S.normL || !S.router0 || S.E > 256 || !S.E) return 0;
    uint32_t h = S.hidden, E = S.E;
    S.table = calloc((size_t)S.vocab * E, 1);
    S.logits = malloc((size_t)S.vocab * sizeof(float));
    S.z = malloc(h * sizeof(float));
    S.row = malloc(h * sizeof(float));
    S.votes = malloc(E * sizeof(float));
    float *w0 = malloc(h * sizeof(float)), *r0 = malloc((size_t)E * h * sizeof(float)), *sc = malloc(E * sizeof(float));
    if (!S.table || !S.logits || !S.z || !S.row || !S.votes || !w0 || !r0 || !sc || !tensor_row(f, S.norm0, 0, h, w0)) return 0;
    for (uint32_t e = 0; e < E; e++)
        if (!tensor_row(f, S.router0, e, h, r0 + (size_t)e * h)) return 0;
    for (uint32_t v = 0; v < S.vocab; v++) {
        if (!tensor_row(f, S.emb, v, h, S.row)) return 0;
        double ss = 0;
        for (uint32_t i = 0; i < h; i++) ss += (double)S.row[i] * S.row[i];
        float inv = (float)(1.0 / sqrt(ss / h + 1e-5));
        for (uint32_t e = 0; e < E; e++) {
            float d = 0;
            for (uint32_t i = 0; i < h; i++) d += r0[(size_t)e * h + i] * S.row[i] * inv * w0[i];
            sc[e] = d;
        }
        for (uint32_t t = 0; t < 2 && t < E; t++) { /* top-2 (k) of the table */
            uint32_t best = UINT32_MAX;
            for (uint32_t e = 0; e < E; e++)
                if (!S.table[(size_t)v * E + e] && (best == UINT32_MAX || sc[e] > sc[best])) best = e;
            S.table[(size_t)v * E + best] = 1;
        }
    }
    free(w0), free(r0), free(sc);
    return 1;
}

static void study_hook(const vib3_file *f, uint32_t layer, const float *x, const int32_t *experts, uint32_t k) {
    uint32_t h = S.hidden, E = S.E;
    if (layer == 0) {
        uint8_t routed[256] = {0};
        uint64_t nr = 0;
        for (uint32_t j = 0; j < k; j++)
            if (experts[j] >= 0 && (uint32_t)experts[j] < E && !routed[experts[j]]) routed[experts[j]] = 1, nr++;
        if (S.have_guess) {
            for (uint32_t e = 0; e < E; e++) {
                S.lens_pred += S.guess[e];
                S.lens_ok += S.guess[e] && routed[e];
                S.table_pred += S.table[(size_t)S.cur_token * E + e];
                S.table_ok += S.table[(size_t)S.cur_token * E + e] && routed[e];
            }
            S.routed += nr;
        }
        S.have_guess = 0;
        return;
    }
    if (layer + 1 != S.L) return;
    float *wl = S.row, *wo = S.z;
    if (!tensor_row(f, S.normL, 0, h, wl)) return;
    float zz[4096];
    if (h > 4096 || !tensor_row(f, S.out_norm, 0, h, wo)) return;
    for (uint32_t i = 0; i < h; i++) zz[i] = fabsf(wl[i]) > 1e-12f ? x[i] / wl[i] * wo[i] : 0.0f;
    float mx = -1e30f;
    for (uint32_t v = 0; v < S.vocab; v++) {
        if (!tensor_row(f, S.out, v, h, S.row)) return;
        float d = 0;
        for (uint32_t i = 0; i < h; i++) d += S.row[i] * zz[i];
        S.logits[v] = d;
        if (d > mx) mx = d;
    }
    double zsum = 0;
    for (uint32_t v = 0; v < S.vocab; v++) zsum += exp(S.logits[v] - mx);
    memset(S.votes, 0, E * sizeof(float));
    uint32_t top1 = 0;
    for (uint32_t t = 0; t < S.K; t++) { /* K best tokens by repeated max (K is small) */
        uint32_t best = UINT32_MAX;
        for (uint32_t v = 0; v < S.vocab; v++)
            if (S.logits[v] > -1e29f && (best == UINT32_MAX || S.logits[v] > S.logits[best])) best = v;
        if (best == UINT32_MAX) break;
        if (t == 0) top1 = best;
        float pr = (float)(exp(S.logits[best] - mx) / zsum);
        for (uint32_t e = 0; e < E; e++)
            if (S.table[(size_t)best * E + e]) S.votes[e] += pr;
        S.logits[best] = -1e30f;
    }
    memset(S.guess, 0, sizeof S.guess);
    for (uint32_t t = 0; t < 3 && t < E; t++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t e = 0; e < E; e++)
            if (!S.guess[e] && S.votes[e] > 0 && (best == UINT32_MAX || S.votes[e] > S.votes[best])) best = e;
        if (best != UINT32_MAX) S.guess[best] = 1;
    }
    S.have_guess = 1;
    S.tokens++;
    S.cur_token = top1; /* scored against the true next token (and replaced by it) in the decode loop */
}

static void wrap_hook(void *ctx, uint32_t layer, const float *x, uint32_t n_rows, const int32_t *experts, uint32_t k) {
    if (S.K && n_rows == 1) study_hook(W.file, layer, x, experts, k);
    if (S.hint_next && n_rows == 1 && layer + (uint32_t)S.hint_next == S.L && S.next_token < S.vocab) {
        vib3_prefetcher_moe_hook(W.pf, layer, x, n_rows, experts, k); /* fetch + expire first */
        for (uint32_t e = 0; e < S.E; e++)
            if (S.table[(size_t)S.next_token * S.E + e])
                vib3_pages_prefetch_slot(W.pages, 0, vib3_file_slot(W.file, VIB3_PAGE_ROUTED, e));
        return;
    }
    (void)ctx;
    /* the predictor first: it fetches this layer and expires this layer's stale hints */
    vib3_prefetcher_moe_hook(W.pf, layer, x, n_rows, experts, k);
    if (W.oracle && n_rows == 1) {
        /* then hint the true routing of calls pos+1 .. pos+depth (depth <= layers: a hint
         * expires at the next routing of its layer) */
        for (uint32_t d = 1; d <= W.depth && W.pos + d < W.n_calls; d++) {
            const int32_t *r = W.rec + (size_t)(W.pos + d) * (W.k + 1);
            if (W.skip_first && r[0] == 0) continue; /* --oracle-skip-first: layer 0 left to the cache */
            for (uint32_t j = 0; j < W.k; j++)
                if (r[1 + j] >= 0) vib3_pages_prefetch_slot(W.pages, (uint32_t)r[0], (uint32_t)r[1 + j]);
        }
        W.pos++;
    }
    if (W.recording && n_rows == 1 && (size_t)(W.n_calls + 1) * (k + 1) <= REC_MAX) {
        int32_t *r = W.rec + (size_t)W.n_calls * (k + 1);
        r[0] = (int32_t)layer;
        memcpy(r + 1, experts, k * sizeof(int32_t));
        W.k = k;
        W.n_calls++;
    }
}

static int usage(void) {
    fprintf(stderr, "usage: storage_run MODEL.vib3 [--tokens N] [--prompt TEXT | --prompt-file F [--prompt-bytes N]]\n"
                    "       [--expert-budget SIZE|P%%] [--trace FILE] [--json] [--ctx N] [--key value ...settings]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const char *model = argv[1], *prompt = NULL, *prompt_file = NULL, *trace = NULL, *record = NULL, *oracle = NULL;
    uint32_t n_gen = 32, ctx = 0, prompt_bytes = 2000;
    int json = 0, teacher = 0;
    vib3_config cfg;
    if (vib3_config_load(&cfg)) {
        fprintf(stderr, "storage_run: %s\n", vib3_err_msg());
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--teacher")) teacher = 1;
        else if (i + 1 >= argc) return usage();
        else if (!strcmp(a, "--tokens")) n_gen = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--ctx")) ctx = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--prompt")) prompt = argv[++i];
        else if (!strcmp(a, "--prompt-file")) prompt_file = argv[++i];
        else if (!strcmp(a, "--prompt-bytes")) prompt_bytes = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--trace")) trace = argv[++i];
        else if (!strcmp(a, "--record-routing")) record = argv[++i];
        else if (!strcmp(a, "--oracle")) oracle = argv[++i];
        else if (!strcmp(a, "--oracle-depth")) W.depth = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--oracle-skip-first")) W.skip_first = atoi(argv[++i]);
        else if (!strcmp(a, "--study-layer0")) S.K = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--hint-next-token")) S.hint_next = atoi(argv[++i]);
        else if (!strcmp(a, "--expert-budget")) setenv("VIB3_EXPERT_BUDGET", argv[++i], 1);
        else if (!strncmp(a, "--", 2) && vib3_config_has_key(a + 2)) {
            if (vib3_config_set(&cfg, a + 2, argv[++i])) {
                fprintf(stderr, "storage_run: %s\n", vib3_err_msg());
                return 2;
            }
        } else return usage();
    }
    static char text[1 << 16];
    if (prompt_file) {
        FILE *f = fopen(prompt_file, "rb");
        if (!f) {
            perror(prompt_file);
            return 1;
        }
        size_t n = fread(text, 1, prompt_bytes < sizeof text - 1 ? prompt_bytes : sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
        prompt = text;
    }
    vib3_engine_params ep = {.n_seq = 1, .ctx_size = ctx, .threads = cfg.threads};
    if (!prompt) ep.flags |= VIB3_ENGINE_NO_TOKENIZER;
    vib3_engine *e = NULL;
    if (vib3_engine_open(&e, model, &cfg, &ep)) {
        fprintf(stderr, "storage_run: %s\n", vib3_err_msg());
        return 1;
    }
    vib3_pages *pages = vib3_engine_pages(e);
    vib3_arena arena;
    vib3_prefetcher *pf = NULL;
    if (vib3_arena_init(&arena, 64u << 20, "storage_run", 0) ||
        vib3_prefetcher_open(&pf, vib3_engine_file(e), pages, &cfg, &arena)) {
        fprintf(stderr, "storage_run: %s\n", vib3_err_msg());
        return 1;
    }
    /* with --prefetch none the hook only measures the predictors' accuracy */
    vib3_engine_set_moe_hook(e, vib3_prefetcher_moe_hook, pf);
    if ((S.K || S.hint_next) && !study_open(vib3_engine_file(e), S.K)) {
        fprintf(stderr, "storage_run: --study-layer0: tensors missing or unsupported dtype\n");
        return 1;
    }
    if (record || oracle || S.K || S.hint_next) {
        W.pf = pf;
        W.pages = pages;
        W.file = vib3_engine_file(e);
        W.recording = record != NULL;
        if (oracle) {
            FILE *of = fopen(oracle, "rb");
            uint32_t hdr[2];
            if (!of || fread(hdr, 4, 2, of) != 2 || (size_t)hdr[1] * (hdr[0] + 1) > REC_MAX ||
                fread(W.rec, 4, (size_t)hdr[1] * (hdr[0] + 1), of) != (size_t)hdr[1] * (hdr[0] + 1)) {
                fprintf(stderr, "storage_run: %s: cannot read the routing record\n", oracle);
                return 1;
            }
            fclose(of);
            W.k = hdr[0];
            W.n_calls = hdr[1];
            W.oracle = 1;
            if (W.depth == 0) W.depth = 1;
            /* the same window the look-ahead predictor asks for at this depth */
            uint64_t first;
            uint32_t per_expert = 1;
            if (!vib3_file_slot_pages(W.file, 0, vib3_file_slot(W.file, VIB3_PAGE_ROUTED, 0), &first, &per_expert))
                per_expert = 1;
            vib3_pages_prefetch_window(pages, 2 * W.depth * (W.k + 1) * per_expert);
        }
        vib3_engine_set_moe_hook(e, wrap_hook, NULL);
    }
    if (trace && vib3_pages_trace_open(pages, trace)) {
        fprintf(stderr, "storage_run: %s\n", vib3_err_msg());
        return 1;
    }
    size_t n_prompt = 0;
    uint32_t vocab = vib3_engine_vocab(e);
    uint32_t max_prompt = vib3_engine_ctx_size(e) > n_gen + 1 ? vib3_engine_ctx_size(e) - n_gen - 1 : 1;
    if (max_prompt > 8192) max_prompt = 8192;
    if (prompt && vib3_engine_tokenizer(e)) {
        vib3_err erc = vib3_tokenizer_encode(vib3_engine_tokenizer(e), prompt, strlen(prompt), 0, prompt_ids,
                                             max_prompt, &n_prompt);
        if (erc && erc != VIB3_ERR_LIMIT) { /* LIMIT: the prompt is cut at the context */
            fprintf(stderr, "storage_run: %s\n", vib3_err_msg());
            return 1;
        }
    } else {
        n_prompt = 16 < max_prompt ? 16 : max_prompt;
        for (size_t i = 0; i < n_prompt; i++) prompt_ids[i] = 1 + (uint32_t)(i * 37) % (vocab - 1);
    }
    if (n_prompt == 0) prompt_ids[n_prompt++] = 1;
    vib3_seq *s;
    if (vib3_seq_acquire(e, &s)) {
        fprintf(stderr, "storage_run: %s\n", vib3_err_msg());
        return 1;
    }
    static uint32_t out[65536];
    uint32_t n_out = 0;
    uint64_t t0 = vib3_now_ns(), t1;
    vib3_err rc;
    if (teacher) {
        /* the prompt one token at a time (decode's access pattern on real text);
         * the "generated" ids are the greedy predictions of the next token */
        S.next_token = n_prompt > 1 ? prompt_ids[1] : UINT32_MAX;
        rc = vib3_seq_prefill(s, prompt_ids, 1, NULL);
        t1 = vib3_now_ns();
        for (size_t i = 1; rc == VIB3_OK && i < n_prompt && n_out < 65536; i++) {
            out[n_out++] = vib3_argmax(vib3_seq_logits(s), vocab);
            if (S.K) {
                S.top1_hits += S.cur_token == prompt_ids[i]; /* lens top-1 was the true next token */
                S.cur_token = prompt_ids[i];
            }
            S.next_token = i + 1 < n_prompt ? prompt_ids[i + 1] : UINT32_MAX;
            rc = vib3_seq_decode(s, prompt_ids[i]);
        }
    } else {
        rc = vib3_seq_prefill(s, prompt_ids, (uint32_t)n_prompt, NULL);
        t1 = vib3_now_ns();
    }
    while (rc == VIB3_OK && n_out < n_gen + (teacher ? n_prompt : 0) && n_out < 65536) {
        uint32_t id = vib3_argmax(vib3_seq_logits(s), vocab);
        out[n_out++] = id;
        rc = vib3_seq_decode(s, id);
    }
    uint64_t t2 = vib3_now_ns();
    if (rc) fprintf(stderr, "storage_run: %s\n", vib3_err_msg());
    if (S.K)
        fprintf(stderr, "layer-0 study (%" PRIu64 " tokens): logit lens top-%u -> 3 experts P %.1f%% R %.1f%% "
                "(lens top-1 = next token %.1f%%); table for the true token (k experts, no attention) P %.1f%% R %.1f%%\n",
                S.tokens, S.K, S.lens_pred ? 100.0 * S.lens_ok / S.lens_pred : 0, S.routed ? 100.0 * S.lens_ok / S.routed : 0,
                S.tokens ? 100.0 * S.top1_hits / S.tokens : 0, S.table_pred ? 100.0 * S.table_ok / S.table_pred : 0,
                S.routed ? 100.0 * S.table_ok / S.routed : 0);
    if (record) {
        FILE *rf = fopen(record, "wb");
        uint32_t hdr[2] = {W.k, W.n_calls};
        if (!rf || fwrite(hdr, 4, 2, rf) != 2 ||
            fwrite(W.rec, 4, (size_t)W.n_calls * (W.k + 1), rf) != (size_t)W.n_calls * (W.k + 1) || fclose(rf)) {
            fprintf(stderr, "storage_run: %s: cannot write the routing record\n", record);
            return 1;
        }
    }
    vib3_pages_stats ps;
    vib3_pages_stats_get(pages, &ps);
    vib3_prefetch_stats fs;
    vib3_prefetcher_stats_get(pf, &fs);
    double dec_s = (double)(t2 - t1) / 1e9, pre_s = (double)(t1 - t0) / 1e9;
    double tok_s = dec_s > 0 ? n_out / dec_s : 0;
    if (json) {
        printf("{\"model\":\"%s\",\"prompt_tokens\":%zu,\"gen_tokens\":%u,\"prefill_s\":%.4f,\"decode_s\":%.4f,"
               "\"decode_tok_s\":%.3f,\"ok\":%s,\"ids\":[",
               model, n_prompt, n_out, pre_s, dec_s, tok_s, rc ? "false" : "true");
        for (uint32_t i = 0; i < n_out; i++) printf("%s%u", i ? "," : "", out[i]);
        printf("],\"tiers\":{\"backend\":\"%s\",\"evict\":\"%s\",\"prefetch\":\"%s\",\"frames_total\":%" PRIu64
               ",\"frame_bytes\":%" PRIu64 ",\"frames_budget_bytes\":%" PRIu64 ",\"page_accesses\":%" PRIu64
               ",\"page_hits\":%" PRIu64 ",\"page_faults\":%" PRIu64 ",\"fault_rate\":%.5f,\"hit_rate\":%.5f,"
               "\"prefetch_issued\":%" PRIu64 ",\"prefetch_used\":%" PRIu64 ",\"prefetch_late\":%" PRIu64
               ",\"prefetch_dropped\":%" PRIu64 ",\"prefetch_precision\":%.4f,\"prefetch_recall\":%.4f,"
               "\"readahead_pages\":%" PRIu64 ",\"evictions\":%" PRIu64 ",\"faults_cold\":%" PRIu64
               ",\"faults_capacity\":%" PRIu64 ",\"faults_inflight\":%" PRIu64 ",\"faults_late\":%" PRIu64
               ",\"faults_lost\":%" PRIu64 ",\"faults_unpredicted\":%" PRIu64 ",\"faults_reapable\":%" PRIu64 ",\"bytes_read\":%" PRIu64
               ",\"bytes_read_per_token\":%.0f,\"wasted_prefetch_bytes\":%" PRIu64 ",\"io_wait_ms_per_token\":%.4f,"
               "\"checksum_errors\":%" PRIu64 ",\"io_errors\":%" PRIu64 ",\"tokens\":%" PRIu64 ",\"direct_io\":%d,"
               "\"fixed_buffers\":%d,\"expert_accesses\":%" PRIu64 ",\"expert_faults\":%" PRIu64
               ",\"expert_fault_rate\":%.5f,\"prefetch_promoted\":%" PRIu64 ",\"prefetch_cancelled\":%" PRIu64
               ",\"faults_queued\":%" PRIu64 "},",
               ps.backend, ps.evict, ps.prefetch, ps.frames_total, ps.frame_bytes, ps.frames_budget_bytes,
               ps.page_accesses, ps.page_hits, ps.page_faults, ps.fault_rate, ps.hit_rate, ps.prefetch_issued,
               ps.prefetch_used, ps.prefetch_late, ps.prefetch_dropped, ps.prefetch_precision, ps.prefetch_recall,
               ps.readahead_pages, ps.evictions, ps.faults_cold, ps.faults_capacity, ps.faults_inflight, ps.faults_late, ps.faults_lost,
               ps.faults_unpredicted, ps.faults_reapable, ps.bytes_read, ps.bytes_read_per_token, ps.wasted_prefetch_bytes,
               ps.io_wait_ms_per_token, ps.checksum_errors, ps.io_errors, ps.tokens, ps.direct_io, ps.fixed_buffers,
               ps.expert_accesses, ps.expert_faults, ps.expert_fault_rate, ps.prefetch_promoted, ps.prefetch_cancelled,
               ps.faults_queued);
        printf("\"predictors\":{\"mode\":\"%s\",\"predictor\":\"%s\",\"probe_pairs\":%u,\"coact_precision\":%.4f,\"coact_recall\":%.4f,"
               "\"lookahead_precision\":%.4f,\"lookahead_recall\":%.4f,\"used_precision\":%.4f,\"used_recall\":%.4f,"
               "\"hinted_precision\":%.4f,\"hinted_recall\":%.4f,\"experts_hinted\":%" PRIu64 ",\"auto_hints_on\":%d,"
               "\"auto_epochs_on\":%" PRIu64 ",\"auto_epochs_off\":%" PRIu64 "}}\n",
               fs.mode, fs.predictor, fs.probe_pairs, fs.precision[0], fs.recall[0], fs.precision[1], fs.recall[1], fs.precision[2], fs.recall[2],
               fs.hint_precision, fs.hint_recall, fs.experts_hinted, fs.gated ? fs.gate_hints_on : -1, fs.gate_epochs[1],
               fs.gate_epochs[0]);
    } else {
        printf("ids:");
        for (uint32_t i = 0; i < n_out; i++) printf(" %u", out[i]);
        printf("\nprompt %zu tokens in %.3f s; %u tokens in %.3f s = %.2f tok/s\n", n_prompt, pre_s, n_out, dec_s, tok_s);
        printf("tiers: backend %s evict %s prefetch %s frames %" PRIu64 " x %" PRIu64 " B\n", ps.backend, ps.evict,
               ps.prefetch, ps.frames_total, ps.frame_bytes);
        printf("  accesses %" PRIu64 " hits %" PRIu64 " faults %" PRIu64 " (fault rate %.2f%%) evictions %" PRIu64 "\n",
               ps.page_accesses, ps.page_hits, ps.page_faults, 100 * ps.fault_rate, ps.evictions);
        printf("  faults: cold %" PRIu64 " capacity %" PRIu64 " in flight %" PRIu64 "; fetch absent %" PRIu64
               " (hinted %" PRIu64 "), hints expired %" PRIu64 "\n",
               ps.faults_cold, ps.faults_capacity, ps.faults_inflight, ps.fetch_absent, ps.fetch_absent_hinted,
               ps.hints_expired);
        printf("  faults by prediction: late prefetch %" PRIu64 " hint lost %" PRIu64 " unpredicted %" PRIu64
               " (reapable %" PRIu64 ")\n", ps.faults_late, ps.faults_lost, ps.faults_unpredicted, ps.faults_reapable);
        printf("  prefetch issued %" PRIu64 " used %" PRIu64 " late %" PRIu64 " dropped %" PRIu64
               " precision %.1f%% recall %.1f%%; readahead %" PRIu64 " pages\n",
               ps.prefetch_issued, ps.prefetch_used, ps.prefetch_late, ps.prefetch_dropped,
               100 * ps.prefetch_precision, 100 * ps.prefetch_recall, ps.readahead_pages);
        printf("  read %.1f MB (%.1f KB/token), wasted prefetch %.1f KB, io wait %.3f ms/token\n", ps.bytes_read / 1e6,
               ps.bytes_read_per_token / 1e3, ps.wasted_prefetch_bytes / 1e3, ps.io_wait_ms_per_token);
        printf("predictors (expert level): coact P %.1f%% R %.1f%%, lookahead (%s) P %.1f%% R %.1f%%; hinted (all depths) "
               "P %.1f%% R %.1f%% (%" PRIu64 " experts)\n",
               100 * fs.precision[0], 100 * fs.recall[0], fs.predictor, 100 * fs.precision[1], 100 * fs.recall[1],
               100 * fs.hint_precision, 100 * fs.hint_recall, fs.experts_hinted);
    }
    vib3_seq_release(s);
    vib3_engine_close(e);
    vib3_prefetcher_close(pf);
    vib3_arena_fini(&arena);
    return rc ? 1 : 0;
}
