/* cmd_run.c — `vib3 run <model> [prompt]`: one-shot generation streamed to
 * stdout, or an interactive chat when stdin is a terminal and no prompt is
 * given (or -i).
 *
 * Prompt handling: when the model has a chat template (rendered by
 * runtime/chat.h's Jinja interpreter) and --raw is not given, the prompt becomes a user turn
 * (plus --system) rendered with the generation prompt and encoded without
 * adding BOS (the template writes it), like HF apply_chat_template; else the
 * text is encoded as HF's tokenizer(text) does (BOS when the model adds one).
 * Generation stops at an end-of-generation id (unless --ignore-eos), after
 * -n tokens, or when the context is full.
 *
 * Interactive chat keeps the KV cache across turns: each turn re-renders the
 * whole conversation, keeps the cached prefix that matches its tokens and
 * prefills only the rest. /reset clears the conversation, /exit (or Ctrl-D)
 * leaves; Ctrl-C stops the current answer (the sequence's cancel flag, set
 * from the signal handler) and, at the prompt, exits.
 *
 * Memory: the engine allocates at open; this command takes its text and id
 * buffers from one arena sized from the context at start-up.
 */
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/json.h"
#include "index/prefetch.h"
#include "runtime/chat.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"
#include "runtime/vexpert.h"

#define RUN_MSGS_MAX 512
#define RUN_LINE_BYTES (64u << 10)

typedef struct run_opts {
    const char *model, *prompt, *file, *system, *trace;
    int64_t max_tokens;          /* < 0: until end of generation or context */
    vib3_sampler_params sp;
    bool stats, json, chat, raw, ignore_eos, kv_f16, interactive, verbose_prompt;
    vib3_ve_params ve;        /* --virtual-experts / --ve-* (runtime/vexpert.h) */
} run_opts;

typedef struct run_ctx {
    run_opts o;
    vib3_engine *e;
    vib3_tokenizer *tok;
    vib3_seq *seq;
    vib3_arena arena;
    bool use_chat;
    const char *tmpl;
    size_t tmpl_len;
    vib3_chat_opts chat_opts;
    char bos_text[64], eos_text[64];
    uint32_t *prompt_ids;        /* (ctx) */
    size_t n_prompt;
    uint32_t *gen_ids;           /* (ctx) */
    size_t n_gen;
    char *render;                /* (render_cap) rendered conversation / prompt text */
    size_t render_cap;
    char *text;                  /* (text_cap) decoded answer */
    size_t text_cap;
    /* interactive conversation */
    vib3_chat_msg msgs[RUN_MSGS_MAX];
    size_t n_msgs;
    vib3_arena convo;            /* message texts; reset by /reset */
} run_ctx;

static volatile sig_atomic_t g_generating, g_quit;
static vib3_seq *volatile g_seq;

static void on_sigint(int sig) {
    (void)sig;
    if (g_generating && g_seq) vib3_seq_cancel(g_seq);
    else g_quit = 1;
}

#define RUN_SETTINGS VIB3_CLI_SET_ENGINE

static void usage(FILE *out) {
    fprintf(out,
            "usage: vib3 run <model> [prompt] [options]   (after --, a prompt may start with '-')\n"
            "  <model>, -m, --model M a .vib3 file, a model name in the store, or an alias / org/repo to pull\n"
            "  -p, --prompt TEXT      prompt (also the first positional argument after the model)\n"
            "  -f, --file PATH        read the prompt from a file (default: stdin when it is not a terminal)\n"
            "  -n, --max-tokens N     tokens to generate (default -1 = until end of generation or a full context)\n"
            "  --temp T               temperature, 0..100 (default 0.8; 0 = greedy)\n"
            "  --top-k N              0..16777216 (default 40; 0 = off)\n"
            "  --top-p P              0..1 (default 0.95; 1 = off)\n"
            "  --min-p P              0..1 (default 0.05; 0 = off)\n"
            "  --repeat-penalty R     (0, 10] (default 1.0 = off)\n"
            "  --repeat-last-n N      ids the penalty looks back over (default 64; -1 = the whole context)\n"
            "  -s, --seed N           sampling seed: same seed, same tokens (default -1 = random, as llama.cpp)\n"
            "  --chat                 use the model's chat template (default when it has one)\n"
            "  --raw, --no-chat       encode the prompt as plain text\n"
            "  -sys, --system TEXT    system message for the chat template\n"
            "  --ignore-eos           do not stop at end-of-generation tokens\n"
            "  -i, --interactive      chat interactively (default when stdin is a terminal and no prompt);\n"
            "                         a prompt given is the first turn\n"
            "  --kv-f16               F16 KV cache (default F32)\n"
            "  --stats                print prompt / decode tok/s, time to first token, memory on stderr\n"
            "  --json                 print one JSON object {prompt_ids, ids, text, stats} when done\n"
            "  --verbose-prompt       print the prompt's token ids on stderr\n"
            "  --trace FILE           write every expert-page access (for trace_sim / eviction studies)\n");
    vib3_cli_settings_help(out, RUN_SETTINGS);
    fputs(vib3_ve_cli_help, out);
}

static int parse_args(run_opts *o, int argc, char **argv, vib3_config *cfg) {
    memset(o, 0, sizeof *o);
    o->max_tokens = -1;
    vib3_sampler_defaults(&o->sp);
    const char *ve_err = NULL;
    bool seed_set = false, positional_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        if (!positional_only && !strcmp(a, "--")) { /* what follows is <model> [prompt], even "-x" */
            positional_only = true;
            continue;
        }
        if (positional_only) {
            if (!o->model) o->model = a;
            else if (!o->prompt) o->prompt = a;
            else return vib3_cli_usage_error("run", "unexpected argument '%s' (quote a prompt with spaces)", a);
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--stats")) o->stats = true;
        else if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--chat")) o->chat = true;
        else if (!strcmp(a, "--raw") || !strcmp(a, "--no-chat")) o->raw = true;
        else if (!strcmp(a, "--ignore-eos")) o->ignore_eos = true;
        else if (!strcmp(a, "--kv-f16")) o->kv_f16 = true;
        else if (!strcmp(a, "-i") || !strcmp(a, "--interactive")) o->interactive = true;
        else if (!strcmp(a, "--verbose-prompt")) o->verbose_prompt = true;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "-p")) || (v = vib3_cli_flag_value(argc, argv, &i, "--prompt")))
            o->prompt = v;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "-f")) || (v = vib3_cli_flag_value(argc, argv, &i, "--file")))
            o->file = v;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "-m")) || (v = vib3_cli_flag_value(argc, argv, &i, "--model"))) {
            if (o->model && o->prompt) return vib3_cli_usage_error("run", "two models: %s and %s", o->model, v);
            if (o->model && !o->prompt) o->prompt = o->model; /* `run "prompt" -m M`: the positional was the prompt */
            o->model = v;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--trace")))
            o->trace = v;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "--system")) || (v = vib3_cli_flag_value(argc, argv, &i, "-sys")))
            o->system = v;
        else if ((v = vib3_cli_flag_value(argc, argv, &i, "-n")) || (v = vib3_cli_flag_value(argc, argv, &i, "--max-tokens")) ||
                 (v = vib3_cli_flag_value(argc, argv, &i, "--n-predict"))) {
            /* llama.cpp: -1 = no limit, -2 = until the context is full (the same here: generation stops there) */
            if (vib3_cli_parse_i64("run", "-n/--max-tokens", v, -2, INT64_MAX, &o->max_tokens)) return 2;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--temp")) || (v = vib3_cli_flag_value(argc, argv, &i, "--temperature"))) {
            if (vib3_cli_parse_f32("run", "--temp", v, 0, 100, &o->sp.temperature)) return 2;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--top-k"))) {
            if (vib3_cli_parse_u32("run", "--top-k", v, 0, 1u << 24, &o->sp.top_k)) return 2;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--top-p"))) {
            if (vib3_cli_parse_f32("run", "--top-p", v, 0, 1, &o->sp.top_p)) return 2;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--min-p"))) {
            if (vib3_cli_parse_f32("run", "--min-p", v, 0, 1, &o->sp.min_p)) return 2;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--repeat-penalty"))) {
            if (vib3_cli_parse_f32("run", "--repeat-penalty", v, 0, 10, &o->sp.repeat_penalty)) return 2;
            if (!(o->sp.repeat_penalty > 0))
                return vib3_cli_usage_error("run", "option --repeat-penalty: %s is out of range (0, 10]", v);
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--repeat-last-n"))) {
            if (vib3_cli_parse_i64("run", "--repeat-last-n", v, -1, UINT32_MAX, &n)) return 2;
            o->sp.repeat_last_n = n < 0 ? UINT32_MAX : (uint32_t)n;
        } else if ((v = vib3_cli_flag_value(argc, argv, &i, "--seed")) || (v = vib3_cli_flag_value(argc, argv, &i, "-s"))) {
            if (!strcmp(v, "-1")) seed_set = false; /* llama.cpp's "random" */
            else if (vib3_cli_parse_u64("run", "--seed", v, 0, UINT64_MAX, &o->sp.seed)) return 2;
            else seed_set = true;
        } else if (vib3_ve_parse_flag(&o->ve, argc, argv, &i, &ve_err) != 0) {
            if (ve_err) return vib3_cli_usage_error("run", "option %s: %s", a, ve_err);
        } else if (a[0] == '-' && a[1]) {
            int r = vib3_cli_settings_flag(cfg, argc, argv, &i, "run", RUN_SETTINGS);
            if (r < 0) return 2;
            if (r == 0 && (!strcmp(a, "-ngl") || !strncmp(a, "--n-gpu-layers", 14) || !strncmp(a, "--gpu-layers", 12)))
                return vib3_cli_usage_error("run", "unknown option %s: vib3 keeps the hottest expert pages in VRAM "
                                                   "by --vram-budget (CUDA builds), not by layers", a);
            if (r == 0) return vib3_cli_usage_error("run", "unknown option %s", a);
        } else if (!o->model) o->model = a;
        else if (!o->prompt) o->prompt = a;
        else return vib3_cli_usage_error("run", "unexpected argument '%s' (quote a prompt with spaces)", a);
    }
    if (!o->model) return vib3_cli_usage_error("run", "missing <model>");
    if (!seed_set) { /* llama.cpp's default: a fresh seed per run */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        o->sp.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    if (o->chat && o->raw) return vib3_cli_usage_error("run", "--chat and --raw exclude each other");
    if (o->prompt && o->file) return vib3_cli_usage_error("run", "give the prompt as text or with --file, not both");
    return -1;  /* continue */
}

/* ==== prompt -> ids ======================================================= */
static vib3_err encode(run_ctx *r, const char *text, size_t len, unsigned flags, uint32_t *ids, size_t cap,
                       size_t *n) {
    return vib3_tokenizer_encode(r->tok, text, len, flags, ids, cap, n);
}

/* render the conversation msgs (with the generation prompt) into r->render */
static vib3_err render_chat(run_ctx *r, const vib3_chat_msg *msgs, size_t n, size_t *len) {
    return vib3_chat_render(r->tmpl, r->tmpl_len, msgs, n, &r->chat_opts, r->render, r->render_cap, len);
}

/* ==== generation ========================================================== */
static void print_piece(run_ctx *r, vib3_tokenizer_stream *st, uint32_t id) {
    char buf[512];
    long n = vib3_tokenizer_stream_put(r->tok, st, id, buf, sizeof buf);
    if (n > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
        fflush(stdout);
    }
}

/* prefill ids[keep..n) after keeping `keep` cached positions, then sample and decode */
static vib3_err generate(run_ctx *r, const uint32_t *ids, size_t n, bool stream) {
    vib3_seq *s = r->seq;
    uint32_t ctx = vib3_engine_ctx_size(r->e);
    size_t keep = 0;
    const uint32_t *cached = vib3_seq_tokens(s);
    while (keep < n && keep < vib3_seq_pos(s) && cached[keep] == ids[keep]) keep++;
    if (keep == n && n > 0) keep--;   /* re-evaluate the last id to get fresh logits */
    vib3_seq_truncate(s, (uint32_t)keep);
    if (n > ctx) return vib3_err_set(VIB3_ERR_LIMIT, "prompt of %zu tokens exceeds ctx_size %u (use -c)", n, ctx);
    vib3_seq_stats_reset(s);
    r->n_gen = 0;
    g_generating = 1;
    vib3_err rc = vib3_seq_prefill(s, ids + keep, (uint32_t)(n - keep), NULL);
    vib3_tokenizer_stream st;
    vib3_tokenizer_stream_init(&st, r->use_chat ? 0 : VIB3_DEC_NO_STRIP);
    uint64_t limit = r->o.max_tokens < 0 ? UINT64_MAX : (uint64_t)r->o.max_tokens;
    while (rc == VIB3_OK && r->n_gen < limit) {
        if (vib3_seq_cancelled(s)) {
            rc = vib3_err_set(VIB3_ERR_CANCELLED, "cancelled");
            break;
        }
        uint32_t id = vib3_seq_sample(s);
        if (!r->o.ignore_eos && vib3_tokenizer_is_eog(r->tok, id)) break;
        r->gen_ids[r->n_gen++] = id;
        if (stream) print_piece(r, &st, id);
        if (r->n_gen >= limit) break;
        if (vib3_seq_pos(s) >= ctx) { /* context full: stop like llama.cpp without context shift, and say so */
            fprintf(stderr, "\n(context full at %u tokens; -c raises it)\n", ctx);
            break;
        }
        rc = vib3_seq_decode(s, id);
    }
    g_generating = 0;
    if (stream) {
        char tail[8];
        long t = vib3_tokenizer_stream_flush(&st, tail, sizeof tail);
        if (t > 0) fwrite(tail, 1, (size_t)t, stdout);
        fflush(stdout);
    }
    return rc;
}

static void print_stats(run_ctx *r, FILE *out) {
    vib3_seq_stats st;
    vib3_seq_stats_get(r->seq, &st);
    vib3_engine_memory m;
    vib3_engine_memory_get(r->e, &m);
    char rss[32], kv[32], w[32];
    fprintf(out,
            "\nprompt: %u tokens in %.2f ms (%.2f tok/s)\n"
            "decode: %u tokens in %.2f ms (%.2f tok/s)\n"
            "time to first token: %.2f ms; peak RSS %s; KV cache %s; weights %s\n",
            st.prompt_tokens, st.prompt_ns / 1e6, st.prompt_tok_s, st.gen_tokens, st.decode_ns / 1e6, st.decode_tok_s,
            st.ttft_ns / 1e6, vib3_format_size(vib3_peak_rss_bytes(), rss, sizeof rss),
            vib3_format_size(m.kv_bytes, kv, sizeof kv),
            vib3_format_size(m.dense_weight_bytes + m.expert_weight_bytes, w, sizeof w));
    vib3_pages_stats ps;
    vib3_pages_stats_get(vib3_engine_pages(r->e), &ps);
    char rd[32], experts[96] = "";
    if (ps.expert_accesses) /* the frame backend counts them; mmap (everything resident) has no faults */
        snprintf(experts, sizeof experts, "; experts: %llu of %llu uses blocked, %.2f%%",
                 (unsigned long long)ps.expert_faults, (unsigned long long)ps.expert_accesses,
                 100.0 * ps.expert_fault_rate);
    fprintf(out,
            "expert pages: %s backend, evict %s, prefetch %s; %llu accesses, %llu hits, %llu faults (%.2f%%%s); "
            "prefetch %llu issued, %llu used (precision %.2f, recall %.2f); read %s (%.0f B/token), io wait "
            "%.3f ms/token\n",
            ps.backend, ps.evict, ps.prefetch, (unsigned long long)ps.page_accesses, (unsigned long long)ps.page_hits,
            (unsigned long long)ps.page_faults, 100.0 * ps.fault_rate, experts, (unsigned long long)ps.prefetch_issued,
            (unsigned long long)ps.prefetch_used, ps.prefetch_precision, ps.prefetch_recall,
            vib3_format_size(ps.bytes_read, rd, sizeof rd), ps.bytes_read_per_token, ps.io_wait_ms_per_token);
    struct vib3_prefetcher *pf = vib3_engine_prefetcher(r->e);
    if (pf) {
        vib3_prefetch_stats fs;
        vib3_prefetcher_stats_get(pf, &fs);
        fprintf(out, "predictor: %s (%s%s), look-ahead accuracy layer l+1 precision %.2f recall %.2f\n", fs.mode,
                fs.predictor, fs.probe_pairs ? ", the file's PRED probes" : "", fs.precision[1], fs.recall[1]);
        if (fs.gated && strcmp(ps.backend, "mmap") != 0 && fs.gate_epochs[0] + fs.gate_epochs[1] > 0)
            fprintf(out, "auto: hints %s now; decode token (MoE layers) %.3f ms with hints over %llu epochs, %.3f ms "
                    "without over %llu\n", fs.gate_hints_on ? "on" : "off", fs.gate_token_ms[1],
                    (unsigned long long)fs.gate_epochs[1], fs.gate_token_ms[0], (unsigned long long)fs.gate_epochs[0]);
    }
}

/* stats.tiers of --json: the buffer manager's counters (storage/pages.h) */
static void print_tiers_json(run_ctx *r) {
    vib3_pages_stats ps;
    vib3_pages_stats_get(vib3_engine_pages(r->e), &ps);
    vib3_prefetch_stats fs;
    struct vib3_prefetcher *pf = vib3_engine_prefetcher(r->e);
    if (pf) vib3_prefetcher_stats_get(pf, &fs);
    printf("{\"predictor\": \"%s\", \"probe_pairs\": %u, ", pf ? fs.predictor : "none", pf ? fs.probe_pairs : 0u);
    if (pf && fs.gated)
        printf("\"auto\": {\"hints_on\": %s, \"token_ms_hints_on\": %.4f, \"epochs_hints_on\": %llu, "
               "\"token_ms_hints_off\": %.4f, \"epochs_hints_off\": %llu, \"switches\": %llu}, ",
               fs.gate_hints_on ? "true" : "false", fs.gate_token_ms[1], (unsigned long long)fs.gate_epochs[1],
               fs.gate_token_ms[0], (unsigned long long)fs.gate_epochs[0], (unsigned long long)fs.gate_switches);
    printf("\"backend\": \"%s\", \"evict\": \"%s\", \"prefetch\": \"%s\", \"page_accesses\": %llu, "
           "\"page_hits\": %llu, \"page_faults\": %llu, \"fault_rate\": %.6f, \"expert_accesses\": %llu, "
           "\"expert_faults\": %llu, \"expert_fault_rate\": %.6f, \"prefetch_issued\": %llu, "
           "\"prefetch_used\": %llu, \"prefetch_precision\": %.6f, \"prefetch_recall\": %.6f, \"bytes_read\": %llu, "
           "\"bytes_read_per_token\": %.1f, \"wasted_prefetch_bytes\": %llu, \"io_wait_ms_per_token\": %.6f, "
           "\"frames_total\": %llu, \"frames_used\": %llu, \"resident_bytes\": %llu, \"checksum_errors\": %llu, "
           "\"io_errors\": %llu}",
           ps.backend, ps.evict, ps.prefetch, (unsigned long long)ps.page_accesses, (unsigned long long)ps.page_hits,
           (unsigned long long)ps.page_faults, ps.fault_rate, (unsigned long long)ps.expert_accesses,
           (unsigned long long)ps.expert_faults, ps.expert_fault_rate, (unsigned long long)ps.prefetch_issued,
           (unsigned long long)ps.prefetch_used, ps.prefetch_precision, ps.prefetch_recall,
           (unsigned long long)ps.bytes_read, ps.bytes_read_per_token, (unsigned long long)ps.wasted_prefetch_bytes,
           ps.io_wait_ms_per_token, (unsigned long long)ps.frames_total, (unsigned long long)ps.frames_used,
           (unsigned long long)ps.resident_bytes, (unsigned long long)ps.checksum_errors,
           (unsigned long long)ps.io_errors);
}

static void print_ids(const uint32_t *ids, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf("%s%u", i ? ", " : "", ids[i]);
    putchar(']');
}

static void print_json(run_ctx *r) {
    vib3_seq_stats st;
    vib3_seq_stats_get(r->seq, &st);
    size_t len = 0;
    if (vib3_tokenizer_decode(r->tok, r->gen_ids, r->n_gen, r->use_chat ? 0 : VIB3_DEC_NO_STRIP, r->text, r->text_cap,
                              &len) != VIB3_OK)
        len = 0;
    size_t qcap = r->render_cap;
    long q = vib3_json_write_str(r->render, qcap, r->text, len);
    printf("{\"prompt_ids\": ");
    print_ids(r->prompt_ids, r->n_prompt);
    printf(", \"ids\": ");
    print_ids(r->gen_ids, r->n_gen);
    printf(", \"text\": %.*s, \"stats\": {\"prompt_tokens\": %zu, \"gen_tokens\": %zu, \"ttft_ms\": %.3f, "
           "\"prompt_ms\": %.3f, \"decode_ms\": %.3f, \"prompt_tok_s\": %.3f, \"decode_tok_s\": %.3f, "
           "\"decoded_tokens\": %u, \"peak_rss_bytes\": %llu, \"threads\": %u, \"ctx_size\": %u, \"chat\": %s, "
           "\"tiers\": ",
           q > 0 ? (int)q : 2, q > 0 ? r->render : "\"\"", r->n_prompt, r->n_gen, st.ttft_ns / 1e6,
           st.prompt_ns / 1e6, st.decode_ns / 1e6, st.prompt_tok_s, st.decode_tok_s, st.gen_tokens,
           (unsigned long long)vib3_peak_rss_bytes(), vib3_engine_threads(r->e), vib3_engine_ctx_size(r->e),
           r->use_chat ? "true" : "false");
    print_tiers_json(r);
    printf("}}\n");
}

/* ==== one-shot ============================================================ */
static char *read_all(run_ctx *r, FILE *f, size_t *len) {
    size_t cap = vib3_arena_free_bytes(&r->arena) / 2, n = 0;
    char *buf = vib3_arena_alloc(&r->arena, cap, 1);
    if (!buf) return NULL;
    size_t got;
    while (n + 1 < cap && (got = fread(buf + n, 1, cap - 1 - n, f)) > 0) n += got;
    buf[n] = 0;
    *len = n;
    return buf;
}

static int run_once(run_ctx *r, const char *prompt, size_t plen) {
    vib3_err rc;
    uint32_t ctx = vib3_engine_ctx_size(r->e);
    if (r->use_chat) {
        vib3_chat_msg msgs[2];
        size_t n = 0, len = 0;
        if (r->o.system) msgs[n++] = (vib3_chat_msg){"system", r->o.system};
        msgs[n++] = (vib3_chat_msg){"user", prompt};
        if ((rc = render_chat(r, msgs, n, &len))) {
            vib3_cli_fail("run");
            return vib3_cli_error("run", "the chat template could not be rendered; --raw skips it");
        }
        rc = encode(r, r->render, len, VIB3_TOK_PARSE_SPECIAL, r->prompt_ids, ctx, &r->n_prompt);
    } else {
        rc = encode(r, prompt, plen, VIB3_TOK_HF_DEFAULT, r->prompt_ids, ctx, &r->n_prompt);
    }
    if (rc == VIB3_ERR_LIMIT)
        return vib3_cli_error("run", "the prompt has more tokens than ctx_size %u (use -c)", ctx);
    if (rc) return vib3_cli_fail("run");
    if (r->n_prompt == 0) return vib3_cli_error("run", "empty prompt (the model adds no BOS)");
    if (r->o.verbose_prompt) {
        fprintf(stderr, "prompt ids (%zu):", r->n_prompt);
        for (size_t i = 0; i < r->n_prompt; i++) fprintf(stderr, " %u", r->prompt_ids[i]);
        fputc('\n', stderr);
    }
    rc = generate(r, r->prompt_ids, r->n_prompt, !r->o.json);
    if (rc && rc != VIB3_ERR_CANCELLED) return vib3_cli_fail("run");
    if (r->o.json) print_json(r);
    else putchar('\n');
    if (r->o.stats) print_stats(r, stderr);
    return rc == VIB3_ERR_CANCELLED ? 130 : 0;
}

/* ==== interactive ========================================================= */
static const char *convo_dup(run_ctx *r, const char *s, size_t n) { return vib3_arena_strndup(&r->convo, s, n); }

/* length of the valid UTF-8 sequence at s (1..4), 0 when invalid */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    size_t len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xC2)) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (len == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0;
    if (len == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || s[0] > 0xF4 || (s[0] == 0xF4 && s[1] >= 0x90))) return 0;
    return len;
}

/* in place: invalid bytes (a model may emit any byte tokens, an answer may stop mid-character)
 * become U+FFFD so the next turn's rendered conversation is valid UTF-8 for the tokenizer;
 * the result is at most 3x longer, written into out (cap) */
static size_t utf8_sanitize(const char *in, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap;) {
        size_t l = utf8_seq((const unsigned char *)in + i, n - i);
        if (l) {
            memcpy(out + o, in + i, l);
            o += l, i += l;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3, i++;
        }
    }
    out[o] = 0;
    return o;
}

static int run_interactive(run_ctx *r, const char *first) {
    char *line = vib3_arena_alloc(&r->arena, RUN_LINE_BYTES, 1);
    if (!line) return vib3_cli_fail("run");
    uint32_t ctx = vib3_engine_ctx_size(r->e);
    fprintf(stderr, "vib3 chat (%s). /reset clears the conversation, /exit or Ctrl-D leaves, Ctrl-C stops an "
                    "answer.\n", r->use_chat ? "chat template" : "plain text continuation");
    if (r->o.system && r->use_chat) r->msgs[r->n_msgs++] = (vib3_chat_msg){"system", convo_dup(r, r->o.system, strlen(r->o.system))};
    size_t convo_mark = vib3_arena_mark(&r->convo);
    size_t plain_len = 0;  /* plain mode: the transcript lives in r->render */
    for (;;) {
        fputs("\n> ", stdout);
        fflush(stdout);
        g_quit = 0;
        if (first) { /* -i with a prompt: it is the first turn, as llama.cpp's -i -p */
            snprintf(line, RUN_LINE_BYTES, "%s", first);
            printf("%s\n", line);
            first = NULL;
        } else if (!fgets(line, RUN_LINE_BYTES, stdin) || g_quit) break;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit") || !strcmp(line, "/bye")) break;
        if (!strcmp(line, "/reset")) {
            vib3_seq_reset(r->seq);
            r->n_msgs = (r->o.system && r->use_chat) ? 1 : 0;
            vib3_arena_reset(&r->convo, convo_mark);
            plain_len = 0;
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        if (n == 0) continue;
        vib3_err rc;
        size_t len = 0;
        if (r->use_chat) {
            if (r->n_msgs + 2 > RUN_MSGS_MAX) {
                fprintf(stderr, "(conversation too long: /reset)\n");
                continue;
            }
            const char *u = convo_dup(r, line, n);
            if (!u) {
                fprintf(stderr, "(conversation too long: /reset)\n");
                continue;
            }
            r->msgs[r->n_msgs++] = (vib3_chat_msg){"user", u};
            rc = render_chat(r, r->msgs, r->n_msgs, &len);
        } else {
            if (plain_len + n + 2 >= r->render_cap) {
                fprintf(stderr, "(conversation too long: /reset)\n");
                continue;
            }
            if (plain_len) r->render[plain_len++] = '\n';
            memcpy(r->render + plain_len, line, n);
            plain_len += n;
            r->render[plain_len] = 0;
            len = plain_len;
            rc = VIB3_OK;
        }
        if (rc == VIB3_OK)
            rc = encode(r, r->render, len, r->use_chat ? VIB3_TOK_PARSE_SPECIAL : VIB3_TOK_HF_DEFAULT, r->prompt_ids,
                        ctx, &r->n_prompt);
        if (rc == VIB3_OK) rc = generate(r, r->prompt_ids, r->n_prompt, true);
        if (rc == VIB3_ERR_CANCELLED) {
            vib3_seq_uncancel(r->seq);
            fprintf(stderr, "\n(stopped)");
            rc = VIB3_OK;
        }
        if (rc) {
            if (rc == VIB3_ERR_LIMIT)
                fprintf(stderr, "\n(context full: the conversation needs more than %u tokens; /reset starts a new one, "
                                "-c raises the limit)\n", ctx);
            else
                fprintf(stderr, "\nerror: %s\n", vib3_err_msg());
            if (r->use_chat) r->n_msgs--;   /* drop the turn that failed */
            else plain_len = plain_len >= n ? plain_len - n : 0;
            continue;
        }
        size_t tlen = 0;
        if (vib3_tokenizer_decode(r->tok, r->gen_ids, r->n_gen, VIB3_DEC_SKIP_SPECIAL, r->text, r->text_cap, &tlen))
            tlen = 0;
        char *clean = r->text + tlen + 1;   /* text_cap leaves room: ctx * 64 bytes for <= ctx tokens */
        size_t room = r->text_cap - tlen - 1;
        if (room > 4 * tlen + 8) {
            tlen = utf8_sanitize(r->text, tlen, clean, room);
            memmove(r->text, clean, tlen + 1);
        }
        if (r->use_chat) {
            const char *a = convo_dup(r, r->text, tlen);
            if (a) r->msgs[r->n_msgs++] = (vib3_chat_msg){"assistant", a};
        } else if (plain_len + tlen + 1 < r->render_cap) {
            memcpy(r->render + plain_len, r->text, tlen);
            plain_len += tlen;
            r->render[plain_len] = 0;
        }
        if (r->o.stats) print_stats(r, stderr);
    }
    putchar('\n');
    return 0;
}

/* ==== entry =============================================================== */
int vib3_cmd_run(int argc, char **argv, vib3_config *cfg) {
    run_ctx *r = calloc(1, sizeof *r);   /* start-up only */
    if (!r) return vib3_cli_error("run", "out of memory");
    int rc = parse_args(&r->o, argc, argv, cfg);
    if (rc >= 0) {
        free(r);
        return rc;
    }
    char path[VIB3_PATH_MAX];
    if (vib3_cli_resolve_model(cfg, r->o.model, path, sizeof path) != VIB3_OK) {
        free(r);
        return vib3_cli_fail("run");
    }
    vib3_engine_params ep = {0};
    ep.n_seq = 1;
    ep.kv_dtype = r->o.kv_f16 ? VIB3_DTYPE_F16 : VIB3_DTYPE_F32;
    if (vib3_engine_open(&r->e, path, cfg, &ep) != VIB3_OK) {
        free(r);
        return vib3_cli_fail("run");
    }
    vib3_cli_warn_ctx("run", r->e);
    if (r->o.trace && vib3_pages_trace_open(vib3_engine_pages(r->e), r->o.trace) != VIB3_OK) {
        vib3_engine_close(r->e);
        free(r);
        return vib3_cli_fail("run");
    }
    if (r->o.ve.mode && vib3_ve_enable(r->e, &r->o.ve) != VIB3_OK) {
        vib3_engine_close(r->e);
        free(r);
        return vib3_cli_fail("run");
    }
    r->tok = vib3_engine_tokenizer(r->e);
    int ret = 0;
    if (!r->tok) {
        ret = vib3_cli_error("run", "%s has no tokenizer section", path);
        goto done;
    }
    uint32_t ctx = vib3_engine_ctx_size(r->e);
    r->render_cap = (size_t)ctx * 64 + (1u << 20);
    r->text_cap = (size_t)ctx * 64 + 4096;
    size_t bytes = 2 * (size_t)ctx * sizeof(uint32_t) + r->render_cap + r->text_cap + RUN_LINE_BYTES + (64u << 20);
    if (vib3_arena_init(&r->arena, bytes, "run", 0) || vib3_arena_init(&r->convo, (size_t)ctx * 64 + (4u << 20), "chat", 0)) {
        ret = vib3_cli_fail("run");
        goto done;
    }
    r->prompt_ids = vib3_arena_alloc(&r->arena, (size_t)ctx * sizeof(uint32_t), 64);
    r->gen_ids = vib3_arena_alloc(&r->arena, (size_t)ctx * sizeof(uint32_t), 64);
    r->render = vib3_arena_alloc(&r->arena, r->render_cap, 64);
    r->text = vib3_arena_alloc(&r->arena, r->text_cap, 64);
    if (!r->prompt_ids || !r->gen_ids || !r->render || !r->text) {
        ret = vib3_cli_fail("run");
        goto done;
    }
    const vib3_file *f = vib3_engine_file(r->e);
    r->tmpl = (const char *)f->chat_template.data;
    r->tmpl_len = f->chat_template.data ? f->chat_template.bytes : 0;
    bool has_template = r->tmpl_len > 0;
    if (r->o.chat && !has_template) {
        ret = vib3_cli_error("run", "--chat: %s has no chat template", path);
        goto done;
    }
    r->use_chat = !r->o.raw && has_template;
    const vib3_tokenizer_info *ti = vib3_tokenizer_info_get(r->tok);
    size_t l;
    const char *t;
    if (ti->bos_id != VIB3_TOKEN_NONE && (t = vib3_tokenizer_token_text(r->tok, ti->bos_id, &l)) && l < sizeof r->bos_text)
        memcpy(r->bos_text, t, l);
    if (ti->eos_id != VIB3_TOKEN_NONE && (t = vib3_tokenizer_token_text(r->tok, ti->eos_id, &l)) && l < sizeof r->eos_text)
        memcpy(r->eos_text, t, l);
    r->chat_opts = (vib3_chat_opts){.add_generation_prompt = true, .bos_token = r->bos_text,
                                    .eos_token = r->eos_text, .enable_thinking = -1};
    if (vib3_seq_acquire(r->e, &r->seq) != VIB3_OK) {
        ret = vib3_cli_fail("run");
        goto done;
    }
    vib3_seq_set_sampler(r->seq, &r->o.sp);
    g_seq = r->seq;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;   /* no SA_RESTART: fgets returns at the prompt */
    sigaction(SIGINT, &sa, NULL);

    bool tty = isatty(STDIN_FILENO);
    if (r->o.interactive || (!r->o.prompt && !r->o.file && tty)) {
        ret = run_interactive(r, r->o.prompt);
    } else {
        const char *prompt = r->o.prompt;
        size_t plen = prompt ? strlen(prompt) : 0;
        if (!prompt) {
            FILE *in = r->o.file ? fopen(r->o.file, "rb") : stdin;
            if (!in) {
                ret = vib3_cli_error("run", "%s: %s", r->o.file, strerror(errno));
                goto done;
            }
            prompt = read_all(r, in, &plen);
            if (in != stdin) fclose(in);
            if (!prompt) {
                ret = vib3_cli_fail("run");
                goto done;
            }
        }
        ret = run_once(r, prompt, plen);
    }
    signal(SIGINT, SIG_DFL);
    g_seq = NULL;
    vib3_seq_release(r->seq);
done:
    vib3_engine_close(r->e);
    if (r->arena.base) vib3_arena_fini(&r->arena);
    if (r->convo.base) vib3_arena_fini(&r->convo);
    free(r);
    return ret;
}
