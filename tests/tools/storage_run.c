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
 * layer calls ahead (a study of how early a prediction must arrive). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "index/prefetch.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"
#include "storage/pages.h"

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

static void wrap_hook(void *ctx, uint32_t layer, const float *x, uint32_t n_rows, const int32_t *experts, uint32_t k) {
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
    if (record || oracle) {
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
        rc = vib3_seq_prefill(s, prompt_ids, 1, NULL);
        t1 = vib3_now_ns();
        for (size_t i = 1; rc == VIB3_OK && i < n_prompt && n_out < 65536; i++) {
            out[n_out++] = vib3_argmax(vib3_seq_logits(s), vocab);
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
               "\"fixed_buffers\":%d},",
               ps.backend, ps.evict, ps.prefetch, ps.frames_total, ps.frame_bytes, ps.frames_budget_bytes,
               ps.page_accesses, ps.page_hits, ps.page_faults, ps.fault_rate, ps.hit_rate, ps.prefetch_issued,
               ps.prefetch_used, ps.prefetch_late, ps.prefetch_dropped, ps.prefetch_precision, ps.prefetch_recall,
               ps.readahead_pages, ps.evictions, ps.faults_cold, ps.faults_capacity, ps.faults_inflight, ps.faults_late, ps.faults_lost,
               ps.faults_unpredicted, ps.faults_reapable, ps.bytes_read, ps.bytes_read_per_token, ps.wasted_prefetch_bytes,
               ps.io_wait_ms_per_token, ps.checksum_errors, ps.io_errors, ps.tokens, ps.direct_io, ps.fixed_buffers);
        printf("\"predictors\":{\"mode\":\"%s\",\"coact_precision\":%.4f,\"coact_recall\":%.4f,"
               "\"lookahead_precision\":%.4f,\"lookahead_recall\":%.4f,\"used_precision\":%.4f,\"used_recall\":%.4f,"
               "\"hinted_precision\":%.4f,\"hinted_recall\":%.4f,\"experts_hinted\":%" PRIu64 "}}\n",
               fs.mode, fs.precision[0], fs.recall[0], fs.precision[1], fs.recall[1], fs.precision[2], fs.recall[2],
               fs.hint_precision, fs.hint_recall, fs.experts_hinted);
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
        printf("predictors (expert level): coact P %.1f%% R %.1f%%, lookahead P %.1f%% R %.1f%%; hinted (all depths) "
               "P %.1f%% R %.1f%% (%" PRIu64 " experts)\n",
               100 * fs.precision[0], 100 * fs.recall[0], 100 * fs.precision[1], 100 * fs.recall[1],
               100 * fs.hint_precision, 100 * fs.hint_recall, fs.experts_hinted);
    }
    vib3_seq_release(s);
    vib3_engine_close(e);
    vib3_prefetcher_close(pf);
    vib3_arena_fini(&arena);
    return rc ? 1 : 0;
}
