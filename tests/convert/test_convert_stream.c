/* test_convert_stream.c — dense tensors streamed to the writer in row chunks
 * (src/convert/dense.c): the same file, byte for byte, as the one-shot
 * (buffered) path on generated models of every source kind; a write fault in
 * the middle of a streamed tensor leaves no file; a model whose embedding and
 * LM head are each 4x the --mem-budget converts with the child's peak RSS
 * (wait4 ru_maxrss) under the budget. */
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "core/fault.h"
#include "tests/convert/common.h"

static char gdir[1024];

static const char *gen(void) {
    if (!gdir[0]) {
        snprintf(gdir, sizeof gdir, "%s/gen", vib3_test_tmpdir());
        if (!gen_models(gdir, "hf:llama:f32 hf:deepseek_v3:fp8 hf:kimi_k2:int4 hf:qwen2_moe:bf16 gguf:llama:q4_0 "
                              "gguf:mixtral:q8_0 gguf:deepseek_v3:f16:mla"))
            gdir[0] = 0;
    }
    return gdir[0] ? gdir : NULL;
}

static uint8_t *slurp(const char *p, uint64_t *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (uint64_t)len;
    return b;
}

/* convert with VIB3_CONVERT_DENSE_CHUNK = chunk (NULL: default); returns the write calls */
static uint64_t convert_chunked(const char *model, const char *out, int quant, const char *chunk, int *rc) {
    if (chunk) setenv("VIB3_CONVERT_DENSE_CHUNK", chunk, 1);
    else unsetenv("VIB3_CONVERT_DENSE_CHUNK");
    vib3_fault_arm(VIB3_FAULT_WRITE, UINT64_MAX, false); /* counts the writes */
    *rc = convert_to(model, out, quant, true, 0);
    uint64_t calls = vib3_fault_calls(VIB3_FAULT_WRITE);
    vib3_fault_disarm(VIB3_FAULT_WRITE);
    unsetenv("VIB3_CONVERT_DENSE_CHUNK");
    return calls;
}

TEST(streamed_dense_tensors_byte_identical_to_buffered) {
    if (!gen()) SKIP("gen_models failed");
    static const char *const models[] = {"llama-f32",      "deepseek_v3-fp8",   "kimi_k2-int4",
                                         "qwen2_moe-bf16", "llama-q4_0.gguf",   "mixtral-q8_0.gguf",
                                         "deepseek_v3-f16-mla.gguf"};
    char src[1200], a[1200], b[1200];
    snprintf(a, sizeof a, "%s/buffered.vib3", vib3_test_tmpdir());
    snprintf(b, sizeof b, "%s/streamed.vib3", vib3_test_tmpdir());
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        for (int q = 0; q < 2; q++) {
            int quant = q ? VIB3_DTYPE_F32 : VIB3_DTYPE_Q4_0, ra, rb;
            snprintf(src, sizeof src, "%s/%s", gen(), models[i]);
            uint64_t wa = convert_chunked(src, a, quant, NULL, &ra);
            /* 700 bytes: one or two rows per piece, a few hundred pieces per embedding */
            uint64_t wb = convert_chunked(src, b, quant, "700", &rb);
            CHECK_MSG(ra == 0 && rb == 0, "%s: %s", models[i], vib3_test_errmsg());
            CHECK_MSG(wb >= wa + 100, "%s: %llu writes streamed vs %llu buffered: no streaming happened", models[i],
                      (unsigned long long)wb, (unsigned long long)wa);
            uint64_t na = 0, nb = 0;
            uint8_t *x = slurp(a, &na), *y = slurp(b, &nb);
            CHECK_MSG(x && y && na == nb && memcmp(x, y, na) == 0, "%s (%s): streamed file differs from buffered",
                      models[i], vib3_dtype_name((vib3_dtype)quant));
            free(x);
            free(y);
            opened o;
            CHECK_MSG(open_vib3(&o, b), "%s: %s", models[i], vib3_test_errmsg());
            close_vib3(&o);
        }
    }
}

/* a write fault in the middle of token_embd's stream (and, persistent, everything after it) */
TEST(write_fault_mid_stream_leaves_nothing) {
    if (!gen()) SKIP("gen_models failed");
    char src[1200], out[1200], tmp[1300];
    snprintf(src, sizeof src, "%s/llama-f32", gen());
    snprintf(out, sizeof out, "%s/fault.vib3", vib3_test_tmpdir());
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    setenv("VIB3_CONVERT_DENSE_CHUNK", "700", 1);
    /* token_embd (300 rows) is the first tensor: writes 2..301 are its one-row pieces */
    static const uint64_t nths[] = {2, 150, 301};
    for (size_t k = 0; k < sizeof nths / sizeof nths[0]; k++) {
        vib3_fault_arm(VIB3_FAULT_WRITE, nths[k], k == 1);
        int rc = convert_to(src, out, VIB3_DTYPE_Q4_0, true, 0);
        vib3_fault_disarm(VIB3_FAULT_WRITE);
        CHECK_MSG(rc == VIB3_ERR_IO, "fault at write %llu: rc %d: %s", (unsigned long long)nths[k], rc,
                  vib3_test_errmsg());
        CHECK(strstr(vib3_test_errmsg(), "fault.vib3.tmp") != NULL);
        CHECK_MSG(!file_exists(out), "%s left behind", out);
        CHECK_MSG(!file_exists(tmp), "%s left behind", tmp);
    }
    CHECK_OK(convert_to(src, out, VIB3_DTYPE_Q4_0, true, 0));
    CHECK(file_exists(out));
    unsetenv("VIB3_CONVERT_DENSE_CHUNK");
}

/* peak RSS of `vib3 convert ... --mem-budget budget` in a child (KiB), -1 on failure */
static long convert_child_rss(const char *model, const char *out, const char *quant, const char *budget) {
    char bin[1100];
    snprintf(bin, sizeof bin, "%s/vib3", vib3_test_build_dir());
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "convert", "--model", model, "--output", out, "--quant", quant, "--no-calib", "--mem-budget",
              budget, "-t", "2", "--quiet", (char *)NULL);
        _exit(127);
    }
    if (pid < 0) return -1;
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    return ru.ru_maxrss;
}

TEST(huge_embedding_converts_under_the_budget) {
    char dir[1100], model[1200], out[1200];
    snprintf(dir, sizeof dir, "%s/big", vib3_test_tmpdir());
    /* llama, hidden 2048, 1 layer, vocab 32768: embed_tokens and lm_head are 256 MiB of F32 each */
    if (!gen_models(dir, "hf:llama:f32:1:2048:64:0:1:32768")) SKIP("gen_models failed");
    snprintf(model, sizeof model, "%s/llama-f32", dir);
    snprintf(out, sizeof out, "%s/big.vib3", vib3_test_tmpdir());
    const long budget_kib = 64 * 1024;
    static const char *const quants[] = {"q4", "f32"}; /* Q8_0 embedding 68 MiB; F32 256 MiB */
    for (int q = 0; q < 2; q++) {
        long rss = convert_child_rss(model, out, quants[q], "64M");
        CHECK_MSG(rss > 0, "vib3 convert --quant %s --mem-budget 64M failed", quants[q]);
        fprintf(stderr, "  --quant %s, 256 MiB F32 embedding + LM head, --mem-budget 64M: peak RSS %.1f MiB\n",
                quants[q], rss / 1024.0);
#ifndef __SANITIZE_ADDRESS__
        CHECK_MSG(rss < budget_kib, "--quant %s: peak RSS %ld KiB over the 64 MiB budget", quants[q], rss);
#else
        (void)budget_kib; /* ASan's shadow memory and quarantine are in the RSS: only the conversion is checked */
#endif
        opened o;
        if (rss > 0 && open_vib3(&o, out)) {
            const vib3_tensor_entry *t = vib3_file_find_tensor(&o.f, "token_embd.weight");
            CHECK(t && t->dims[0] == 32768 && t->dims[1] == 2048);
            CHECK(vib3_file_find_tensor(&o.f, "output.weight") != NULL);
        }
        close_vib3(&o);
        unlink(out);
    }
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
#ifdef __SANITIZE_ADDRESS__
    SKIP("the peak-RSS bound is not checked under ASan (shadow memory and quarantine count as RSS)");
#endif
}
