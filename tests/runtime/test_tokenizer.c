/* test_tokenizer.c — tokenizers against their oracles.
 *
 *   hf_oracle_*        tokenizer.json (tinymix, Mistral/"llama2", Llama-3, Qwen3, DeepSeek-V3) vs
 *                      transformers.js (@lenml/tokenizers, tests/node/tok_oracle.mjs): ids with and
 *                      without special tokens, and decode, on a corpus of hard strings
 *   spm_llama2_vectors llama2.c tokenizer.bin -> SPM table vs llama.cpp's test vectors
 *   spm_stories260k    tok512.bin: prompt ids and the reference greedy ids decode to run.c's text
 *   tiktoken_*         a synthetic tiktoken file: rank-ordered merges, specials, errors
 *   stream / errors    UTF-8 streaming, malformed inputs never crash
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/fault.h"
#include "core/json.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_internal.h"
#include "tests/runtime/fixture.h"
#include "tests/test.h"

static const char *oracle_path(void) {
    static char path[1200];
    static int state; /* 0 unknown, 1 ok, -1 unavailable */
    if (state) return state > 0 ? path : NULL;
    state = -1;
    struct stat st;
    if (stat("tests/node/node_modules/@lenml/tokenizers", &st) != 0) {
        fprintf(stderr, "test_tokenizer: SKIP oracle: tests/node/node_modules missing (run sh tests/node/install.sh)\n");
        return NULL;
    }
    const char *tiny = vib3_test_model_path("tinymix-brown");
    snprintf(path, sizeof path, "%s/tok_oracle.json", vib3_test_tmpdir());
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "node tests/node/tok_oracle.mjs '%s' %s%s%s >/dev/null 2>&1", path, tiny ? "'" : "",
             tiny ? tiny : "", tiny ? "'" : "");
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tokenizer: SKIP oracle: node tests/node/tok_oracle.mjs failed\n");
        return NULL;
    }
    state = 1;
    return path;
}

static void fmt_ids(char *buf, size_t cap, const uint32_t *ids, size_t n) {
    size_t w = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && w + 16 < cap; i++) w += (size_t)snprintf(buf + w, cap - w, "%s%u", i ? "," : "", ids[i]);
}

/* compare every case of one tokenizer of the oracle file */
static void hf_oracle(const char *name) {
    const char *op = oracle_path();
    if (!op) SKIP("transformers.js oracle unavailable (npm / node)");
    size_t on;
    char *otext = slurp(op, &on);
    CHECK(otext != NULL);
    if (!otext) return;
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)6 << 30, "test-tok", 0));
    vib3_json j;
    CHECK_OK(vib3_json_parse(&j, otext, on, &a, 0, "oracle"));
    int set = vib3_json_get(&j, 0, name);
    if (set < 0) {
        vib3_arena_fini(&a);
        free(otext);
        SKIP("tokenizer not in the oracle output (model file absent)");
    }
    char jpath[1024], cpath[1024];
    vib3_json_get_str(&j, set, "json", jpath, sizeof jpath);
    vib3_json_get_str(&j, set, "config", cpath, sizeof cpath);
    size_t jn = 0, cn = 0;
    char *jd = slurp(jpath, &jn), *cd = slurp(cpath, &cn);
    CHECK(jd != NULL);
    vib3_tokenizer *t = NULL;
    CHECK_OK(vib3_tokenizer_load(&t, VIB3_TOKENIZER_HF_JSON, jd, jn, cd, cd ? cn : 0, NULL, &a));
    if (!t) goto out;
    const vib3_tokenizer_info *info = vib3_tokenizer_info_get(t);
    int cases = vib3_json_get(&j, set, "cases");
    int n = vib3_json_size(&j, cases);
    int ok_ids = 0, ok_special = 0, ok_decode = 0, ok_roundtrip = 0, n_roundtrip = 0;
    static uint32_t ids[32768], exp[32768];
    static char text[32768], dec[65536], want[65536];
    for (int i = 0, it = cases + 1; i < n; i++, it = vib3_json_next(&j, it)) {
        long tl = vib3_json_get_str(&j, it, "text", text, sizeof text);
        CHECK(tl >= 0);
        for (int pass = 0; pass < 2; pass++) {
            int arr = vib3_json_get(&j, it, pass ? "ids_special" : "ids");
            size_t ne = (size_t)vib3_json_size(&j, arr);
            for (size_t k = 0; k < ne; k++) {
                uint64_t v = 0;
                vib3_json_u64(&j, arr + 1 + (int)k, &v);
                exp[k] = (uint32_t)v;
            }
            /* HF Python (and llama.cpp) add DeepSeek-V3's BOS (add_bos_token: true in its
             * tokenizer_config); transformers.js does not: expect the BOS in front */
            if (pass == 1 && !strcmp(name, "deepseek_v3") && info->add_bos) {
                memmove(exp + 1, exp, ne * sizeof exp[0]);
                exp[0] = info->bos_id;
                ne++;
            }
            size_t ni = 0;
            unsigned fl = VIB3_TOK_PARSE_SPECIAL | (pass ? VIB3_TOK_ADD_SPECIAL : 0);
            vib3_err e = vib3_tokenizer_encode(t, text, (size_t)tl, fl, ids, 32768, &ni);
            bool same = e == VIB3_OK && ni == ne && memcmp(ids, exp, ne * sizeof ids[0]) == 0;
            if (same) {
                if (pass) ok_special++;
                else ok_ids++;
            } else {
                char g[512], w[512];
                fmt_ids(g, sizeof g, ids, ni);
                fmt_ids(w, sizeof w, exp, ne);
                CHECK_MSG(0, "%s case %d%s \"%.60s\": got [%s] (%s) want [%s]", name, i, pass ? " (special)" : "", text, g,
                          e ? vib3_err_msg() : "ok", w);
            }
            if (pass == 0 && e == VIB3_OK) {
                size_t dl = 0;
                long wl = vib3_json_get_str(&j, it, "decoded", want, sizeof want);
                CHECK_OK(vib3_tokenizer_decode(t, ids, ni, 0, dec, sizeof dec, &dl));
                if (wl >= 0 && dl == (size_t)wl && memcmp(dec, want, dl) == 0) ok_decode++;
                else CHECK_MSG(0, "%s case %d decode \"%.60s\" != \"%.60s\"", name, i, dec, want);
                /* round trip where the oracle's own decode gives the text back */
                if (wl == tl && memcmp(want, text, (size_t)tl) == 0) {
                    n_roundtrip++;
                    if (dl == (size_t)tl && memcmp(dec, text, dl) == 0) ok_roundtrip++;
                }
            }
        }
    }
    printf("    %s: ids %d/%d, ids+special %d/%d, decode %d/%d, round trip %d/%d (vocab %u, longest piece %u bytes)\n", name,
           ok_ids, n, ok_special, n, ok_decode, n, ok_roundtrip, n_roundtrip, info->n_vocab, info->piece_bytes_max);
    CHECK(info->piece_bytes_max > 0 && info->piece_bytes_max < 1024);
    CHECK(n >= 72);
    vib3_tokenizer_fini(t);
out:
    free(jd);
    free(cd);
    free(otext);
    vib3_arena_fini(&a);
}

TEST(hf_oracle_tinymix) { hf_oracle("tinymix"); }
TEST(hf_oracle_mistral_llama2) { hf_oracle("llama2"); }
TEST(hf_oracle_llama3) { hf_oracle("llama3"); }
TEST(hf_oracle_qwen3) { hf_oracle("qwen3"); }
TEST(hf_oracle_deepseek_v3) { hf_oracle("deepseek_v3"); }

/* NFC against String.prototype.normalize("NFC") on generated strings */
TEST(nfc_oracle) {
    const char *op = oracle_path();
    if (!op) SKIP("node oracle unavailable");
    size_t on;
    char *otext = slurp(op, &on);
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)1 << 30, "test-nfc", 0));
    vib3_json j;
    CHECK_OK(vib3_json_parse(&j, otext, on, &a, 0, "oracle"));
    int arr = vib3_json_get(&j, 0, "nfc");
    int n = vib3_json_size(&j, arr), ok = 0;
    for (int i = 0, it = arr + 1; i < n; i++, it = vib3_json_next(&j, it)) {
        char in[256], want[256], got[1024];
        long il = vib3_json_str(&j, it + 1, in, sizeof in), wl = vib3_json_str(&j, it + 2, want, sizeof want);
        long gl = vib3_tok_nfc(in, (size_t)il, got, sizeof got);
        if (gl == wl && memcmp(got, want, (size_t)wl) == 0) ok++;
        else CHECK_MSG(0, "nfc case %d: got %ld bytes, want %ld", i, gl, wl);
    }
    printf("    nfc: %d/%d equal to String.normalize(\"NFC\")\n", ok, n);
    CHECK(n >= 400);
    vib3_arena_fini(&a);
    free(otext);
}

/* ---- SPM tables ---------------------------------------------------------------------------- */

static vib3_tokenizer *load_llama2c(const char *rel, uint32_t n_vocab, vib3_arena *a) {
    const char *p = vib3_test_model_path(rel);
    if (!p) return NULL;
    size_t n;
    char *bin = slurp(p, &n);
    size_t need = 0;
    CHECK_OK(vib3_tokenizer_spm_from_llama2c(bin, n, n_vocab, NULL, 0, &need));
    void *blob = vib3_arena_alloc(a, need, 0);
    size_t got = 0;
    CHECK_OK(vib3_tokenizer_spm_from_llama2c(bin, n, n_vocab, blob, need, &got));
    CHECK(got <= need && got > 32);
    free(bin);
    /* vib3_tokenizer_spm_write (the GGUF path) writes the same bytes from arrays */
    {
        const uint8_t *b = blob;
        uint32_t nt, hdr[8];
        memcpy(hdr, b, 32);
        nt = hdr[0];
        const char **texts = malloc(nt * sizeof *texts);
        uint32_t *lens = malloc(nt * 4), *types = malloc(nt * 4);
        float *scores = malloc(nt * 4);
        size_t off = 32;
        for (uint32_t i = 0; i < nt; i++) {
            memcpy(&scores[i], b + off, 4);
            memcpy(&types[i], b + off + 4, 4);
            memcpy(&lens[i], b + off + 8, 4);
            texts[i] = (const char *)b + off + 12;
            off += 12 + lens[i];
        }
        CHECK_EQ_U64(off, got);
        size_t need2 = 0, got2 = 0;
        CHECK_OK(vib3_tokenizer_spm_write(nt, texts, lens, scores, types, hdr[1], hdr[2], hdr[3], hdr[4], NULL, 0, &need2));
        CHECK_EQ_U64(need2, got);
        void *blob2 = vib3_arena_alloc(a, need2, 0);
        CHECK(vib3_tokenizer_spm_write(nt, texts, lens, scores, types, hdr[1], hdr[2], hdr[3], hdr[4], blob2, need2 - 1, &got2) ==
              VIB3_ERR_LIMIT);
        CHECK_OK(vib3_tokenizer_spm_write(nt, texts, lens, scores, types, hdr[1], hdr[2], hdr[3], hdr[4], blob2, need2, &got2));
        CHECK(got2 == got && memcmp(blob2, blob, got) == 0);
        free(texts);
        free(lens);
        free(types);
        free(scores);
    }
    vib3_tokenizer *t = NULL;
    CHECK_OK(vib3_tokenizer_load(&t, VIB3_TOKENIZER_SPM, blob, got, NULL, 0, NULL, a));
    return t;
}

/* llama.cpp tests/test-tokenizer-0 vectors for the Llama-2 vocab (no BOS, specials not parsed) */
TEST(spm_llama2_vectors) {
    const char *inp = vib3_test_model_path("llama2-vocab/ggml-vocab-llama-spm.gguf.inp");
    const char *outp = vib3_test_model_path("llama2-vocab/ggml-vocab-llama-spm.gguf.out");
    if (!inp || !outp) SKIP("llama2-vocab test vectors absent");
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)1 << 30, "test-spm", 0));
    vib3_tokenizer *t = load_llama2c("llama2-vocab/tokenizer.bin", 32000, &a);
    CHECK(t != NULL);
    if (!t) { vib3_arena_fini(&a); return; }
    size_t in_n, out_n;
    char *in = slurp(inp, &in_n), *out = slurp(outp, &out_n);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *cur = in, *line = out;
    int cases = 0, ok = 0, ok_rt = 0;
    static uint32_t ids[4096];
    static char dec[16384];
    while (cur && *cur) {
        char *end = strstr(cur, sep);
        size_t tl = end ? (size_t)(end - cur) : strlen(cur);
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        uint32_t exp[4096];
        size_t ne = 0;
        for (char *q = line; *q;) {
            char *e2;
            unsigned long v = strtoul(q, &e2, 10);
            if (e2 == q) break;
            exp[ne++] = (uint32_t)v;
            q = e2;
        }
        size_t ni = 0;
        vib3_err e = vib3_tokenizer_encode(t, cur, tl, 0, ids, 4096, &ni);
        cases++;
        if (e == VIB3_OK && ni == ne && memcmp(ids, exp, ne * 4) == 0) ok++;
        else CHECK_MSG(0, "llama2 vector %d \"%.40s\": %zu ids, want %zu (%s)", cases, cur, ni, ne, e ? vib3_err_msg() : "");
        size_t dl;
        CHECK_OK(vib3_tokenizer_decode(t, ids, ni, 0, dec, sizeof dec, &dl));
        /* SentencePiece decode drops the one space the encoder prepended */
        if (dl == tl && memcmp(dec, cur, tl) == 0) ok_rt++;
        line = nl + 1;
        cur = end ? end + strlen(sep) : NULL;
    }
    printf("    llama.cpp vectors: %d/%d ids equal, %d/%d round trip\n", ok, cases, ok_rt, cases);
    CHECK(cases >= 40);
    CHECK_EQ_I64(ok_rt, cases);
    free(in);
    free(out);
    vib3_tokenizer_fini(t);
    vib3_arena_fini(&a);
}

TEST(spm_stories260k) {
    if (!vib3_test_model_path("stories260K/tok512.bin")) SKIP("stories260K absent");
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)1 << 28, "test-spm", 0));
    vib3_tokenizer *t = load_llama2c("stories260K/tok512.bin", 512, &a);
    CHECK(t != NULL);
    if (!t) { vib3_arena_fini(&a); return; }
    const vib3_tokenizer_info *info = vib3_tokenizer_info_get(t);
    CHECK_EQ_U64(info->n_vocab, 512);
    CHECK_EQ_U64(info->bos_id, 1);
    CHECK_EQ_U64(info->eos_id, 2);
    CHECK(info->add_bos);
    CHECK(vib3_tokenizer_is_eog(t, 2));
    /* expected_greedy.txt: the reference greedy ids decode to run.c's text */
    size_t n;
    char *ref = slurp(vib3_test_model_path("stories260K/expected_greedy.txt"), &n);
    char *ids_line = ref ? strstr(ref, "IDS [") : NULL;
    CHECK(ids_line != NULL);
    if (ids_line) {
        uint32_t ids[128];
        size_t ni = 0;
        for (char *q = ids_line + 5; ni < 128;) {
            char *e;
            unsigned long v = strtoul(q, &e, 10);
            if (e == q) break;
            ids[ni++] = (uint32_t)v;
            q = e;
            while (*q == ',' || *q == ' ') q++;
        }
        CHECK(ni == 64);
        uint32_t seq[129];
        seq[0] = 1;
        memcpy(seq + 1, ids, ni * 4);
        char dec[2048];
        size_t dl;
        CHECK_OK(vib3_tokenizer_decode(t, seq, ni + 1, VIB3_DEC_SKIP_SPECIAL, dec, sizeof dec, &dl));
        const char *want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
        CHECK_MSG(strncmp(dec, want, strlen(want)) == 0, "decoded \"%.100s\"", dec);
        /* a continuation printed after its prompt keeps its leading space (run.c's rule: strip only
         * right after BOS) */
        CHECK_OK(vib3_tokenizer_decode(t, ids + 4, 3, VIB3_DEC_NO_STRIP, dec, sizeof dec, &dl));
        CHECK_MSG(dec[0] == ',' || dec[0] == ' ', "continuation \"%s\"", dec);
        vib3_tokenizer_stream st;
        vib3_tokenizer_stream_init(&st, VIB3_DEC_NO_STRIP);
        char piece[64];
        CHECK(vib3_tokenizer_stream_put(t, &st, ids[1], piece, sizeof piece) > 0 && piece[0] == ' ');
        vib3_tokenizer_stream_init(&st, 0);
        CHECK(vib3_tokenizer_stream_put(t, &st, ids[1], piece, sizeof piece) > 0 && piece[0] != ' ');
        /* and the prompt encodes to the same leading ids, BOS first */
        uint32_t enc[64];
        size_t ne;
        CHECK_OK(vib3_tokenizer_encode(t, "Once upon a time", 16, VIB3_TOK_HF_DEFAULT, enc, 64, &ne));
        CHECK(ne >= 2 && enc[0] == 1);
        CHECK_MSG(ne - 1 <= ni && memcmp(enc + 1, ids, (ne - 1) * 4) == 0, "prompt ids differ from the greedy ids (%zu)", ne);
    }
    free(ref);
    vib3_tokenizer_fini(t);
    vib3_arena_fini(&a);
}

/* ---- tiktoken (synthetic file) --------------------------------------------------------------- */

static size_t b64(const char *s, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(uint8_t)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)(uint8_t)s[i + 1] << 8;
        if (i + 2 < n) v |= (uint8_t)s[i + 2];
        out[w++] = tab[(v >> 18) & 63];
        out[w++] = tab[(v >> 12) & 63];
        out[w++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[w++] = i + 2 < n ? tab[v & 63] : '=';
    }
    return w;
}

static vib3_tokenizer *tiktoken_synthetic(vib3_arena *a) {
    static char file[1 << 16];
    size_t w = 0;
    char tok[8], enc[16];
    for (int b = 0; b < 256; b++) {
        tok[0] = (char)b;
        size_t n = b64(tok, 1, enc);
        w += (size_t)snprintf(file + w, sizeof file - w, "%.*s %d\n", (int)n, enc, b);
    }
    const char *merges[] = {"he", "ll", "llo", "hello", " w", "or", "wor", " wor", "ld", " world", "  ", "\xE4\xBD", NULL};
    for (int i = 0; merges[i]; i++) {
        size_t n = b64(merges[i], strlen(merges[i]), enc);
        w += (size_t)snprintf(file + w, sizeof file - w, "%.*s %d\n", (int)n, enc, 256 + i);
    }
    const char *cfg = "{\"added_tokens_decoder\": {\"268\": {\"content\": \"[BOS]\", \"special\": true},"
                      " \"269\": {\"content\": \"[EOS]\", \"special\": true},"
                      " \"270\": {\"content\": \"<|im_end|>\", \"special\": true}}, \"bos_token\": \"[BOS]\","
                      " \"eos_token\": \"[EOS]\"}";
    vib3_tokenizer *t = NULL;
    CHECK_OK(vib3_tokenizer_load(&t, VIB3_TOKENIZER_TIKTOKEN, file, w, cfg, strlen(cfg), NULL, a));
    return t;
}

TEST(tiktoken_synthetic) {
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)1 << 28, "test-tik", 0));
    vib3_tokenizer *t = tiktoken_synthetic(&a);
    CHECK(t != NULL);
    if (!t) { vib3_arena_fini(&a); return; }
    const vib3_tokenizer_info *info = vib3_tokenizer_info_get(t);
    CHECK_EQ_U64(info->n_vocab, 268 + 256); /* Kimi reserves 256 special ids after the base ranks */
    CHECK_EQ_U64(info->bos_id, 268);
    CHECK_EQ_U64(info->eos_id, 269);
    CHECK(vib3_tokenizer_is_eog(t, 270));
    CHECK(vib3_tokenizer_is_special(t, 300));
    uint32_t ids[64];
    size_t n;
    /* "hello" is one token (whole-piece lookup), " world": " w"(260) before "or"(261), then
     * " w"+"or" -> " wor"(263), "ld"(264), " wor"+"ld" -> " world"(265) */
    CHECK_OK(vib3_tokenizer_encode(t, "hello world<|im_end|>", 21, VIB3_TOK_PARSE_SPECIAL, ids, 64, &n));
    CHECK_EQ_U64(n, 3);
    CHECK_EQ_U64(ids[0], 259);
    CHECK_EQ_U64(ids[1], 265);
    CHECK_EQ_U64(ids[2], 270);
    /* "yellow": "ll"(257) then "llo"(258): y e llo w */
    CHECK_OK(vib3_tokenizer_encode(t, "yellow", 6, 0, ids, 64, &n));
    CHECK_EQ_U64(n, 4);
    CHECK_EQ_U64(ids[2], 258);
    /* specials not parsed: the text is plain bytes */
    CHECK_OK(vib3_tokenizer_encode(t, "[EOS]", 5, 0, ids, 64, &n));
    CHECK(n == 5 && ids[0] == '[');
    CHECK_OK(vib3_tokenizer_encode(t, "[EOS]", 5, VIB3_TOK_PARSE_SPECIAL, ids, 64, &n));
    CHECK(n == 1 && ids[0] == 269);
    /* Kimi's wrapper encodes a run of more than 25000 non-space characters in slices: "h" x 25000
     * then "e" is two slices, so the last h and the e do not merge into "he" (256) */
    {
        static char big[25002];
        static uint32_t bids[25010];
        memset(big, 'h', 25000);
        big[25000] = 'e';
        size_t bn;
        CHECK_OK(vib3_tokenizer_encode(t, big, 25001, 0, bids, 25010, &bn));
        CHECK_EQ_U64(bn, 25001);
        CHECK(bn >= 2 && bids[bn - 1] == 'e' && bids[bn - 2] == 'h');
        CHECK_OK(vib3_tokenizer_encode(t, big + 1, 25000, 0, bids, 25010, &bn)); /* 24999 h + e: one slice */
        CHECK_EQ_U64(bn, 24999);
        CHECK_EQ_U64(bids[bn - 1], 256); /* "he" */
    }
    /* round trip of mixed text (CJK uses the \p{Han} branch) */
    const char *txt = "你好 world 123456 I'M here\n\n  x";
    CHECK_OK(vib3_tokenizer_encode(t, txt, strlen(txt), 0, ids, 64, &n));
    char dec[256];
    size_t dl;
    CHECK_OK(vib3_tokenizer_decode(t, ids, n, 0, dec, sizeof dec, &dl));
    CHECK(dl == strlen(txt) && memcmp(dec, txt, dl) == 0);
    vib3_tokenizer_fini(t);
    vib3_arena_fini(&a);
}

/* ---- streaming UTF-8 ----------------------------------------------------------------------- */

TEST(stream_utf8) {
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)1 << 28, "test-stream", 0));
    vib3_tokenizer *t = tiktoken_synthetic(&a);
    if (!t) { vib3_arena_fini(&a); return; }
    /* "a🦙b" as single-byte tokens: the emoji appears only once its 4th byte arrives */
    const uint8_t bytes[] = {'a', 0xF0, 0x9F, 0xA6, 0x99, 'b'};
    vib3_tokenizer_stream s;
    vib3_tokenizer_stream_init(&s, VIB3_DEC_SKIP_SPECIAL);
    char out[64];
    long lens[6];
    size_t total = 0;
    char all[64];
    for (int i = 0; i < 6; i++) {
        lens[i] = vib3_tokenizer_stream_put(t, &s, bytes[i], out, sizeof out);
        CHECK(lens[i] >= 0);
        memcpy(all + total, out, (size_t)lens[i]);
        total += (size_t)lens[i];
    }
    CHECK(lens[0] == 1 && lens[1] == 0 && lens[2] == 0 && lens[3] == 0 && lens[4] == 4 && lens[5] == 1);
    CHECK(total == 6 && memcmp(all, bytes, 6) == 0);
    /* a special token is skipped; an incomplete tail flushes as U+FFFD */
    CHECK_EQ_I64(vib3_tokenizer_stream_put(t, &s, 270, out, sizeof out), 0);
    CHECK_EQ_I64(vib3_tokenizer_stream_put(t, &s, 0xE4, out, sizeof out), 0);
    CHECK_EQ_I64(vib3_tokenizer_stream_flush(&s, out, sizeof out), 3);
    CHECK(memcmp(out, "\xEF\xBF\xBD", 3) == 0);
    /* a broken sequence followed by ASCII: U+FFFD then the ASCII byte */
    CHECK_EQ_I64(vib3_tokenizer_stream_put(t, &s, 0xE4, out, sizeof out), 0);
    CHECK_EQ_I64(vib3_tokenizer_stream_put(t, &s, 'z', out, sizeof out), 4);
    CHECK(memcmp(out, "\xEF\xBF\xBDz", 4) == 0);
    /* complete-prefix helper */
    CHECK_EQ_U64(vib3_utf8_complete_prefix("ab\xF0\x9F\xA6", 5), 2);
    CHECK_EQ_U64(vib3_utf8_complete_prefix("ab\xF0\x9F\xA6\x99", 6), 6);
    CHECK_EQ_U64(vib3_utf8_complete_prefix("ab", 2), 2);
    vib3_tokenizer_fini(t);
    vib3_arena_fini(&a);
}

/* ---- malformed input ----------------------------------------------------------------------- */

TEST(errors_never_crash) {
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)1 << 28, "test-err", 0));
    vib3_tokenizer *t = NULL;
    const char *bad[] = {"", "{", "[]", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}",
                         "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
                         "{\"model\": {\"vocab\": {\"a\": 99999999}, \"merges\": []}}",
                         "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
                         ("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
                          "\"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}"),
                         "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"NFKD\"}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t m = vib3_arena_mark(&a);
        vib3_err e = vib3_tokenizer_load(&t, VIB3_TOKENIZER_HF_JSON, bad[i], strlen(bad[i]), NULL, 0, NULL, &a);
        CHECK_MSG(e != VIB3_OK, "bad tokenizer.json %zu accepted", i);
        CHECK(strlen(vib3_err_msg()) > 0);
        vib3_arena_reset(&a, m);
    }
    /* SPM tables: truncated, bad type, reserved bits */
    uint8_t spm[64] = {0};
    spm[0] = 1;
    CHECK(vib3_tokenizer_load(&t, VIB3_TOKENIZER_SPM, spm, 32, NULL, 0, NULL, &a) != VIB3_OK);
    spm[32 + 4] = 9;
    CHECK(vib3_tokenizer_load(&t, VIB3_TOKENIZER_SPM, spm, 44, NULL, 0, NULL, &a) != VIB3_OK);
    CHECK(vib3_tokenizer_load(&t, VIB3_TOKENIZER_TIKTOKEN, "QQ== x\n", 7, NULL, 0, NULL, &a) != VIB3_OK);
    CHECK(vib3_tokenizer_load(&t, 77, "x", 1, NULL, 0, NULL, &a) == VIB3_ERR_UNSUPPORTED);
    size_t need;
    CHECK(vib3_tokenizer_spm_from_llama2c("\x05\0\0\0\0\0\0\0\xff\xff\xff\x7f", 12, 0, NULL, 0, &need) != VIB3_OK);
    /* a catastrophic pre-tokenizer regex stops at PCRE2's match limit with an error */
    {
        const char *evil = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []},"
                           " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a+)+$\"},"
                           " \"behavior\": \"Isolated\", \"invert\": false}}";
        vib3_tokenizer *te = NULL;
        CHECK_OK(vib3_tokenizer_load(&te, VIB3_TOKENIZER_HF_JSON, evil, strlen(evil), NULL, 0, NULL, &a));
        if (te) {
            uint32_t ids[64];
            size_t n;
            const char *txt = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
            CHECK(vib3_tokenizer_encode(te, txt, strlen(txt), 0, ids, 64, &n) == VIB3_ERR_LIMIT);
            CHECK(strstr(vib3_err_msg(), "regex") != NULL);
            CHECK_OK(vib3_tokenizer_encode(te, "aab", 3, 0, ids, 64, &n));
            CHECK_EQ_U64(n, 3);
            vib3_tokenizer_fini(te);
        }
    }
    /* encode: invalid UTF-8, too long, cap too small */
    t = tiktoken_synthetic(&a);
    if (t) {
        uint32_t ids[4];
        size_t n;
        CHECK(vib3_tokenizer_encode(t, "a\xC3", 2, 0, ids, 4, &n) == VIB3_ERR_INVALID);
        CHECK(vib3_tokenizer_encode(t, "abcdefghij", 10, 0, ids, 4, &n) == VIB3_ERR_LIMIT);
        CHECK_EQ_U64(n, 4);
        char out[2];
        uint32_t one = 'x';
        size_t dl;
        CHECK(vib3_tokenizer_decode(t, &one, 1, 0, out, 1, &dl) == VIB3_ERR_LIMIT);
        uint32_t oob = 1u << 30;
        CHECK(vib3_tokenizer_decode(t, &oob, 1, 0, out, 2, &dl) == VIB3_ERR_INVALID);
        vib3_tokenizer_fini(t);
    }
    vib3_arena_fini(&a);
}

/* tiktoken path on real data: Llama-3's vocabulary is tiktoken-trained (rank = id), so the same
 * vocabulary written as a tiktoken.model file, with Llama-3's split pattern as "pat_str", must
 * give transformers.js's ids for tokenizer.json on the whole corpus */
TEST(tiktoken_llama3_oracle) {
    const char *op = oracle_path();
    if (!op) SKIP("transformers.js oracle unavailable (npm / node)");
    size_t on;
    char *otext = slurp(op, &on);
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)4 << 30, "test-tik3", 0));
    vib3_json j;
    CHECK_OK(vib3_json_parse(&j, otext, on, &a, 0, "oracle"));
    int set = vib3_json_get(&j, 0, "llama3");
    char jpath[1024];
    vib3_json_get_str(&j, set, "json", jpath, sizeof jpath);
    size_t jn;
    char *jd = slurp(jpath, &jn);
    vib3_tokenizer *hf = NULL;
    CHECK_OK(vib3_tokenizer_load(&hf, VIB3_TOKENIZER_HF_JSON, jd, jn, NULL, 0, NULL, &a));
    if (!hf) goto out;
    /* tiktoken.model: base64(bytes of id) id, for the 128000 base ranks */
    size_t cap = (size_t)128000 * 48, w = 0;
    char *tik = malloc(cap);
    for (uint32_t id = 0; id < 128000; id++) {
        size_t pl;
        const char *p = vib3_tokenizer_piece(hf, id, &pl);
        char enc[256];
        size_t el = b64(p, pl, enc);
        w += (size_t)snprintf(tik + w, cap - w, "%.*s %u\n", (int)el, enc, id);
    }
    static const char pat[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    size_t ccap = 1 << 16, cw = 0;
    char *cfg = malloc(ccap);
    cw += (size_t)snprintf(cfg, ccap, "{\"pat_str\": ");
    cw += (size_t)vib3_json_write_str(cfg + cw, ccap - cw, pat, strlen(pat));
    cw += (size_t)snprintf(cfg + cw, ccap - cw, ", \"added_tokens_decoder\": {");
    for (uint32_t id = 128000; id < 128256; id++) {
        size_t tl;
        const char *tt = vib3_tokenizer_token_text(hf, id, &tl);
        cw += (size_t)snprintf(cfg + cw, ccap - cw, "%s\"%u\": {\"content\": ", id > 128000 ? ", " : "", id);
        cw += (size_t)vib3_json_write_str(cfg + cw, ccap - cw, tt, tl);
        cw += (size_t)snprintf(cfg + cw, ccap - cw, ", \"special\": true}");
    }
    cw += (size_t)snprintf(cfg + cw, ccap - cw, "}}");
    vib3_tokenizer *tk = NULL;
    CHECK_OK(vib3_tokenizer_load(&tk, VIB3_TOKENIZER_TIKTOKEN, tik, w, cfg, cw, NULL, &a));
    if (tk) {
        CHECK_EQ_U64(vib3_tokenizer_info_get(tk)->n_vocab, 128256);
        int cases = vib3_json_get(&j, set, "cases"), n = vib3_json_size(&j, cases), ok = 0;
        static char text[32768];
        static uint32_t ids[32768], exp[32768];
        for (int i = 0, it = cases + 1; i < n; i++, it = vib3_json_next(&j, it)) {
            long tl = vib3_json_get_str(&j, it, "text", text, sizeof text);
            int arr = vib3_json_get(&j, it, "ids");
            size_t ne = (size_t)vib3_json_size(&j, arr), ni = 0;
            for (size_t k = 0; k < ne; k++) {
                uint64_t v = 0;
                vib3_json_u64(&j, arr + 1 + (int)k, &v);
                exp[k] = (uint32_t)v;
            }
            vib3_err e = vib3_tokenizer_encode(tk, text, (size_t)tl, VIB3_TOK_PARSE_SPECIAL, ids, 32768, &ni);
            if (e == VIB3_OK && ni == ne && memcmp(ids, exp, ne * 4) == 0) ok++;
            else CHECK_MSG(0, "tiktoken llama3 case %d \"%.50s\": %zu ids, want %zu", i, text, ni, ne);
        }
        printf("    tiktoken (Llama-3 vocabulary as tiktoken.model): %d/%d equal to transformers.js\n", ok, n);
        vib3_tokenizer_fini(tk);
    }
    free(tik);
    free(cfg);
    vib3_tokenizer_fini(hf);
out:
    free(jd);
    free(otext);
    vib3_arena_fini(&a);
}

/* tinymix-brown/reference.json (made with the HF tokenizers library): prompt ids with <s>, the
 * greedy ids decode to greedy_text, the full prompt + greedy ids to greedy_full_text, and
 * heldout.txt is 58628 ids with <s> (heldout_perplexity_whole_file.tokens). No node needed. */
TEST(tinymix_reference) {
    const char *rp = vib3_test_model_path("tinymix-brown/reference.json");
    const char *tp = vib3_test_model_path("tinymix-brown/tokenizer.json");
    const char *cp = vib3_test_model_path("tinymix-brown/tokenizer_config.json");
    const char *hp = vib3_test_model_path("tinymix-brown/heldout.txt");
    if (!rp || !tp || !cp || !hp) SKIP("tinymix-brown absent");
    size_t rn, tn, cn, hn;
    char *ref = slurp(rp, &rn), *tj = slurp(tp, &tn), *cj = slurp(cp, &cn), *held = slurp(hp, &hn);
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)1 << 30, "test-tinymix", 0));
    vib3_tokenizer_opts o = {hn + 64};
    vib3_tokenizer *t = NULL;
    CHECK_OK(vib3_tokenizer_load(&t, VIB3_TOKENIZER_HF_JSON, tj, tn, cj, cn, &o, &a));
    vib3_json j;
    CHECK_OK(vib3_json_parse(&j, ref, rn, &a, 0, "reference.json"));
    if (!t) goto out;
    int prompts = vib3_json_get(&j, 0, "prompts"), np = vib3_json_size(&j, prompts);
    CHECK(np == 3);
    for (int i = 0, it = prompts + 1; i < np; i++, it = vib3_json_next(&j, it)) {
        char prompt[256], want[1024], dec[2048];
        long pl = vib3_json_get_str(&j, it, "prompt", prompt, sizeof prompt);
        uint32_t ids[64], exp[64], all[128];
        size_t n = 0;
        CHECK_OK(vib3_tokenizer_encode(t, prompt, (size_t)pl, VIB3_TOK_HF_DEFAULT, ids, 64, &n));
        int arr = vib3_json_get(&j, it, "prompt_ids");
        size_t ne = (size_t)vib3_json_size(&j, arr);
        for (size_t k = 0; k < ne && k < 64; k++) {
            uint64_t v = 0;
            vib3_json_u64(&j, arr + 1 + (int)k, &v);
            exp[k] = (uint32_t)v;
        }
        CHECK_MSG(n == ne && memcmp(ids, exp, n * 4) == 0, "prompt %d \"%s\": ids differ", i, prompt);
        int g = vib3_json_get(&j, it, "greedy_ids");
        size_t ng = (size_t)vib3_json_size(&j, g), dl;
        memcpy(all, ids, n * 4);
        for (size_t k = 0; k < ng && n + k < 128; k++) {
            uint64_t v = 0;
            vib3_json_u64(&j, g + 1 + (int)k, &v);
            all[n + k] = (uint32_t)v;
        }
        CHECK_OK(vib3_tokenizer_decode(t, all + n, ng, 0, dec, sizeof dec, &dl));
        vib3_json_get_str(&j, it, "greedy_text", want, sizeof want);
        CHECK_STR(dec, want);
        CHECK_OK(vib3_tokenizer_decode(t, all, n + ng, VIB3_DEC_SKIP_SPECIAL, dec, sizeof dec, &dl));
        vib3_json_get_str(&j, it, "greedy_full_text", want, sizeof want);
        CHECK_STR(dec, want);
    }
    uint32_t *hid = malloc((hn + 64) * sizeof *hid);
    size_t nh = 0;
    CHECK_OK(vib3_tokenizer_encode(t, held, hn, VIB3_TOK_HF_DEFAULT, hid, hn + 64, &nh));
    CHECK_EQ_U64(nh, vib3_json_get_u64(&j, vib3_json_get(&j, 0, "heldout_perplexity_whole_file"), "tokens", 0));
    printf("    tinymix reference.json: 3/3 prompts, greedy texts equal; heldout.txt %zu ids\n", nh);
    free(hid);
    vib3_tokenizer_fini(t);
out:
    vib3_arena_fini(&a);
    free(ref);
    free(tj);
    free(cj);
    free(held);
}

/* SQLite's OOM loop: arena allocation N fails (once, then persistently) for every N of a clean
 * load; the load fails cleanly or succeeds, and a tokenizer that loads encodes correctly */
static void oom_loop(uint32_t kind, const char *data, size_t size, const char *cfg, size_t cfg_size, const char *text,
                     size_t expect_n) {
    vib3_arena a;
    CHECK_OK(vib3_arena_init(&a, (size_t)1 << 28, "test-oom", 0));
    vib3_tokenizer_opts o = {4096};
    vib3_tokenizer *t = NULL;
    vib3_fault_arm(VIB3_FAULT_ALLOC, UINT64_MAX, false);
    CHECK_OK(vib3_tokenizer_load(&t, kind, data, size, cfg, cfg_size, &o, &a));
    uint64_t calls = vib3_fault_calls(VIB3_FAULT_ALLOC);
    vib3_fault_disarm(VIB3_FAULT_ALLOC);
    vib3_tokenizer_fini(t);
    CHECK(calls > 5);
    int failed = 0;
    for (uint64_t nth = 1; nth <= calls; nth++) {
        for (int persist = 0; persist < 2; persist++) {
            size_t m = vib3_arena_mark(&a);
            t = NULL;
            vib3_fault_arm(VIB3_FAULT_ALLOC, nth, persist != 0);
            vib3_err e = vib3_tokenizer_load(&t, kind, data, size, cfg, cfg_size, &o, &a);
            vib3_fault_disarm(VIB3_FAULT_ALLOC);
            if (e) {
                failed++;
                CHECK(t == NULL);
                CHECK(e == VIB3_ERR_NOMEM || e == VIB3_ERR_LIMIT);
            } else {
                uint32_t ids[256];
                size_t n = 0;
                CHECK_OK(vib3_tokenizer_encode(t, text, strlen(text), 0, ids, 256, &n));
                CHECK_EQ_U64(n, expect_n);
                vib3_tokenizer_fini(t);
            }
            vib3_arena_reset(&a, m);
        }
    }
    CHECK(failed >= (int)calls); /* every persistent failure fails the load */
    vib3_arena_fini(&a);
}

TEST(oom_loop_load) {
    const char *tp = vib3_test_model_path("tinymix-brown/tokenizer.json");
    const char *cp = vib3_test_model_path("tinymix-brown/tokenizer_config.json");
    if (tp && cp) {
        size_t tn, cn;
        char *tj = slurp(tp, &tn), *cj = slurp(cp, &cn);
        uint32_t ids[64];
        size_t n = 0;
        vib3_arena a;
        CHECK_OK(vib3_arena_init(&a, (size_t)1 << 28, "test-oom0", 0));
        vib3_tokenizer *t = NULL;
        CHECK_OK(vib3_tokenizer_load(&t, VIB3_TOKENIZER_HF_JSON, tj, tn, cj, cn, NULL, &a));
        if (t) CHECK_OK(vib3_tokenizer_encode(t, "In the beginning God created", 28, 0, ids, 64, &n));
        vib3_tokenizer_fini(t);
        vib3_arena_fini(&a);
        oom_loop(VIB3_TOKENIZER_HF_JSON, tj, tn, cj, cn, "In the beginning God created", n);
        free(tj);
        free(cj);
    }
    /* SPM from llama2.c */
    if (vib3_test_model_path("stories260K/tok512.bin")) {
        size_t bn;
        char *bin = slurp(vib3_test_model_path("stories260K/tok512.bin"), &bn);
        size_t need = 0, got = 0;
        CHECK_OK(vib3_tokenizer_spm_from_llama2c(bin, bn, 512, NULL, 0, &need));
        char *blob = malloc(need);
        CHECK_OK(vib3_tokenizer_spm_from_llama2c(bin, bn, 512, blob, need, &got));
        oom_loop(VIB3_TOKENIZER_SPM, blob, got, NULL, 0, "Once upon a time", 4);
        free(blob);
        free(bin);
    }
}
