/* test_convert_mla.c — DeepSeek-V2/V3 GGUFs from newer llama.cpp store MLA's
 * attn_kv_b split into attn_k_b (per head, transposed) and attn_v_b, with
 * key_length_mla / value_length_mla, often without attn_kv_b. The generator
 * writes that layout (gguf:deepseek_v3:TYPE:mla, and :mlakv with attn_kv_b
 * kept too); its conversion must be the HF-safetensors model's: same config,
 * same tensors and pages, same logits from the engine. An F16 split gives
 * the HF F16 kv_b exactly, a Q8_0 split stays within Q8_0 precision; bad k_b/v_b shapes or a missing half
 * give an error naming the GGUF tensor and leave no file. When the llama.cpp peer (tests/llama,
 * node-llama-cpp's libllama, whose deepseek2 loader reads attn_k_b/attn_v_b) is available, it runs
 * the split GGUF itself and vib3's conversion of it must give its logits. */
#include <math.h>
#include <sys/wait.h>

#include "core/config.h"
#include "runtime/engine.h"
#include "tests/convert/common.h"

static char gdir[1024];

static const char *gen(void) {
    if (!gdir[0]) {
        snprintf(gdir, sizeof gdir, "%s/gen", vib3_test_tmpdir());
        if (!gen_models(gdir, "hf:deepseek_v3:f32 hf:deepseek_v3:f16 gguf:deepseek_v3:f32:mla gguf:deepseek_v3:f16:mla "
                              "gguf:deepseek_v3:f32:mlakv gguf:deepseek_v3:q8_0:mla gguf:deepseek_v3:q8_0"))
            gdir[0] = 0;
    }
    return gdir[0] ? gdir : NULL;
}

static int conv(const char *name, const char *tag, int quant, bool permute, char *out, size_t cap) {
    char src[1100];
    snprintf(src, sizeof src, "%s/%s", gen(), name);
    snprintf(out, cap, "%s/%s-%s.vib3", vib3_test_tmpdir(), name, tag);
    int rc = convert_to(src, out, quant, permute, 0);
    CHECK_MSG(rc == 0, "convert %s: %s", name, vib3_test_errmsg());
    return rc;
}

/* logits of the prompt's last position and of 4 greedy steps after it: 5 x vocab floats */
static float *run_logits(const char *vib3, uint32_t *vocab) {
    vib3_engine *e;
    if (open_engine(&e, vib3, 64)) return NULL;
    *vocab = vib3_engine_vocab(e);
    float *all = calloc(5 * (size_t)*vocab, sizeof *all);
    static const uint32_t prompt[] = {1, 17, 203, 45, 99, 260, 7, 150};
    vib3_seq *s;
    bool ok = all && !vib3_seq_acquire(e, &s);
    if (ok) {
        ok = !vib3_seq_prefill(s, prompt, sizeof prompt / sizeof prompt[0], NULL);
        for (int k = 0; ok && k < 5; k++) {
            const float *l = vib3_seq_logits(s);
            memcpy(all + (size_t)k * *vocab, l, *vocab * sizeof *l);
            if (k < 4) ok = !vib3_seq_decode(s, vib3_argmax(l, *vocab));
        }
        vib3_seq_release(s);
    }
    vib3_engine_close(e);
    if (!ok) {
        free(all);
        return NULL;
    }
    return all;
}

static void same_model(const char *hf, const char *gguf, const char *tag, int quant, bool permute) {
    char a[1200], b[1200];
    if (conv(hf, tag, quant, permute, a, sizeof a) || conv(gguf, tag, quant, permute, b, sizeof b)) return;
    opened x, y;
    CHECK(open_vib3(&x, a));
    CHECK(open_vib3(&y, b));
    if (x.ok && y.ok) {
        CHECK_MSG(memcmp(x.f.config, y.f.config, sizeof(vib3_model_config)) == 0, "%s: config differs from %s", gguf, hf);
        CHECK_EQ_U64(x.f.n_tensors, y.f.n_tensors);
        CHECK_EQ_U64(x.f.n_pages, y.f.n_pages);
        for (uint32_t i = 0; i < x.f.n_tensors; i++) {
            const vib3_tensor_entry *t = &x.f.tensors[i], *u = vib3_file_find_tensor(&y.f, t->name);
            CHECK_MSG(u && u->checksum == t->checksum, "%s: tensor %s differs", gguf, t->name);
        }
        for (uint64_t p = 0; p < x.f.n_pages && p < y.f.n_pages; p++)
            CHECK_MSG(x.f.pages[p].checksum == y.f.pages[p].checksum, "%s: page %llu differs", gguf,
                      (unsigned long long)p);
    }
    close_vib3(&x);
    close_vib3(&y);
    uint32_t va = 0, vb = 0;
    float *la = run_logits(a, &va), *lb = run_logits(b, &vb);
    CHECK_MSG(la && lb, "engine on %s / %s: %s", a, b, vib3_test_errmsg());
    if (la && lb) {
        CHECK_EQ_U64(va, vb);
        double worst = 0, mag = 0;
        for (size_t i = 0; i < 5 * (size_t)va; i++) {
            worst = fmax(worst, fabs((double)la[i] - lb[i]));
            mag = fmax(mag, fabs((double)la[i]));
        }
        CHECK_MSG(worst == 0 && mag > 0, "%s (%s): logits differ from %s by up to %g (max |logit| %g)", gguf, tag, hf,
                  worst, mag);
    }
    free(la);
    free(lb);
}

TEST(split_kv_b_gguf_gives_the_hf_model) {
    if (!gen()) SKIP("gen_models failed");
    same_model("deepseek_v3-f32", "deepseek_v3-f32-mla.gguf", "f32", VIB3_DTYPE_F32, false);
    same_model("deepseek_v3-f32", "deepseek_v3-f32-mla.gguf", "q4", VIB3_DTYPE_Q4_0, true);
    same_model("deepseek_v3-f32", "deepseek_v3-f32-mlakv.gguf", "f32", VIB3_DTYPE_F32, false);
}

/* attn_kv_b of a split GGUF vs the HF model's, within tol x (largest |value|) / 127 (0: exact) */
static void kv_b_close(const char *hf, const char *gguf, float tol) {
    char a[1200], b[1200];
    if (conv(hf, "f32", VIB3_DTYPE_F32, false, a, sizeof a) || conv(gguf, "f32", VIB3_DTYPE_F32, false, b, sizeof b))
        return;
    opened x, y;
    CHECK(open_vib3(&x, a));
    CHECK(open_vib3(&y, b));
    for (uint32_t l = 0; x.ok && y.ok && l < x.f.config->n_layers; l++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%u.attn_kv_b.weight", l);
        const vib3_tensor_entry *t = vib3_file_find_tensor(&x.f, n), *u = vib3_file_find_tensor(&y.f, n);
        CHECK(t && u && t->bytes == u->bytes && t->dtype == VIB3_DTYPE_F32 && u->dtype == VIB3_DTYPE_F32);
        if (!t || !u || t->bytes != u->bytes) continue;
        const float *p = (const float *)(const void *)(x.f.map + t->offset),
                    *q = (const float *)(const void *)(y.f.map + u->offset);
        uint64_t cnt = t->bytes / 4, exact = 0, bad = 0;
        float amax = 0;
        for (uint64_t i = 0; i < cnt; i++) amax = fmaxf(amax, fabsf(p[i]));
        for (uint64_t i = 0; i < cnt; i++) {
            float err = fabsf(p[i] - q[i]);
            exact += err == 0;
            bad += err > tol * amax / 127;
        }
        CHECK_MSG(bad == 0, "%s %s: %llu of %llu values off by more than %g x max/127", gguf, n, (unsigned long long)bad,
                  (unsigned long long)cnt, tol);
        if (tol > 0) CHECK(exact < cnt); /* really went through the quantizer */
    }
    close_vib3(&x);
    close_vib3(&y);
}

/* F16 split: the same F16 values as the HF F16 model's kv_b_proj (norms/routers differ: GGUF keeps them F32) */
TEST(split_kv_b_f16_exact) {
    if (!gen()) SKIP("gen_models failed");
    kv_b_close("deepseek_v3-f16", "deepseek_v3-f16-mla.gguf", 0);
}

/* Q8_0 k_b (blocks along qk_nope) / v_b (along kv_lora_rank): half a step of the largest possible
 * block scale, plus the F16 rounding of the scale (127 x 2^-11 steps) */
TEST(split_kv_b_q8_0_within_precision) {
    if (!gen()) SKIP("gen_models failed");
    kv_b_close("deepseek_v3-f32", "deepseek_v3-q8_0-mla.gguf", 0.5f + 127.0f / 2048);
}

/* a copy of the f32 split GGUF with one edit in its tensor infos */
static const char *edited(const char *as, const char *tensor, int edit) {
    static char dst[1200];
    char src[1100];
    snprintf(src, sizeof src, "%s/deepseek_v3-f32-mla.gguf", gen());
    snprintf(dst, sizeof dst, "%s/%s", vib3_test_tmpdir(), as);
    FILE *f = fopen(src, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *img = malloc((size_t)n);
    size_t got = img ? fread(img, 1, (size_t)n, f) : 0;
    fclose(f);
    uint8_t *hit = got == (size_t)n ? memmem(img, (size_t)n, tensor, strlen(tensor)) : NULL;
    CHECK_MSG(hit != NULL, "%s not found in %s", tensor, src);
    if (!hit) {
        free(img);
        return NULL;
    }
    uint8_t *after = hit + strlen(tensor); /* u32 n_dims, u64 ne[n_dims], u32 type, u64 offset */
    if (edit == 0) { /* swap ne[0] and ne[1]: same bytes, wrong shape */
        uint64_t a, b;
        memcpy(&a, after + 4, 8);
        memcpy(&b, after + 12, 8);
        memcpy(after + 4, &b, 8);
        memcpy(after + 12, &a, 8);
    } else { /* rename: the tensor is gone */
        after[-8] = 'x';
    }
    f = fopen(dst, "wb");
    fwrite(img, 1, (size_t)n, f);
    fclose(f);
    free(img);
    return dst;
}

static void expect_fail(const char *model, const char *n1, const char *n2) {
    if (!model) return;
    char out[1200], tmpf[1300];
    snprintf(out, sizeof out, "%s/bad.vib3", vib3_test_tmpdir());
    snprintf(tmpf, sizeof tmpf, "%s.tmp", out);
    int rc = convert_to(model, out, VIB3_DTYPE_Q4_0, true, 0);
    const char *msg = vib3_test_errmsg();
    CHECK_MSG(rc == VIB3_ERR_FORMAT, "%s: expected VIB3_ERR_FORMAT, got %s: %s", model, vib3_err_name((vib3_err)rc), msg);
    CHECK_MSG(strstr(msg, n1), "message \"%s\" lacks \"%s\"", msg, n1);
    CHECK_MSG(!n2 || strstr(msg, n2), "message \"%s\" lacks \"%s\"", msg, n2);
    CHECK(!file_exists(out) && !file_exists(tmpf));
}

TEST(bad_split_shapes_name_the_tensor) {
    if (!gen()) SKIP("gen_models failed");
    /* k_b ne [32, 64, 3] = (qk_nope, kv_lora_rank, heads) given as [64, 32, 3] */
    expect_fail(edited("kb-shape.gguf", "blk.1.attn_k_b.weight", 0), "blk.1.attn_k_b.weight",
                "expected [32, 64, 3] = (qk_nope_head_dim, kv_lora_rank, head_count)");
    /* v_b ne [64, 32, 3] = (kv_lora_rank, v_head_dim, heads) given as [32, 64, 3] */
    expect_fail(edited("vb-shape.gguf", "blk.2.attn_v_b.weight", 0), "blk.2.attn_v_b.weight", "ne [32, 64, 3]");
    /* one half missing (renamed blk.0.attn_v_b.weight -> blk.0.attn_v_x.weight) */
    expect_fail(edited("vb-missing.gguf", "blk.0.attn_v_b.weight", 1), "blk.0.attn_v_b.weight", "attn_kv_b");
    expect_fail(edited("kb-missing.gguf", "blk.2.attn_k_b.weight", 1), "blk.2.attn_k_b.weight", "missing");
}

/* ---- llama.cpp on the same split GGUF ------------------------------------------------------ */
static int peer_state; /* 0 unknown, 1 built, 2 unavailable */
static char peer_msg[512];

static bool peer_ready(void) {
    if (peer_state == 0) {
        char log[700], cmd[1600], line[512];
        snprintf(log, sizeof log, "%s/peer-build.log", vib3_test_tmpdir());
        snprintf(cmd, sizeof cmd, "BUILD=%s sh tests/llama/build.sh > '%s' 2>&1", vib3_test_build_dir(), log);
        int rc = system(cmd);
        peer_state = WIFEXITED(rc) && WEXITSTATUS(rc) == 0 ? 1 : 2;
        snprintf(peer_msg, sizeof peer_msg, "llama.cpp peer not built (tests/llama/build.sh exit %d)",
                 WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
        FILE *f = fopen(log, "r");
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, "SKIP")) snprintf(peer_msg, sizeof peer_msg, "%s", line);
        if (f) fclose(f);
    }
    return peer_state == 1;
}

/* llama.cpp's logits at every position of ids: n x vocab floats, NULL on failure */
static float *peer_logits(const char *gguf, const uint32_t *ids, uint32_t n, uint32_t *vocab) {
    char ids_s[2048] = {0}, bin[700], cmd[4096];
    size_t o = 0;
    for (uint32_t i = 0; i < n; i++) o += (size_t)snprintf(ids_s + o, sizeof ids_s - o, "%s%u", i ? "," : "", ids[i]);
    snprintf(bin, sizeof bin, "%s/peer.bin", vib3_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s/llama/llama_logits '%s' --ids %s --all --out '%s' --threads 2 > /dev/null 2>&1",
             vib3_test_build_dir(), gguf, ids_s, bin);
    if (system(cmd) != 0) return NULL;
    FILE *f = fopen(bin, "rb");
    if (!f) return NULL;
    uint32_t h[4];
    float *v = NULL;
    if (fread(h, 4, 4, f) == 4 && h[0] == 0x54474c56u && h[1] == 1 && h[2] == n && h[3] > 0 &&
        fseek(f, 16 + 4 * (long)n, SEEK_SET) == 0) {
        v = malloc((size_t)n * h[3] * sizeof *v);
        if (v && fread(v, sizeof *v, (size_t)n * h[3], f) != (size_t)n * h[3]) {
            free(v);
            v = NULL;
        }
        *vocab = h[3];
    }
    fclose(f);
    return v;
}

/* max |logit diff| between vib3 (conversion of the GGUF) and llama.cpp (the GGUF) over 24 positions,
 * checked <= tol; -1 when not run */
static float against_llama_cpp(const char *name, int quant, float tol) {
    char src[1100], out[1200];
    snprintf(src, sizeof src, "%s/%s", gen(), name);
    snprintf(out, sizeof out, "%s/%s-peer.vib3", vib3_test_tmpdir(), name);
    vib3_convert_opts o;
    memset(&o, 0, sizeof o);
    o.model_path = src;
    o.output_path = out;
    o.expert_dtype = quant;
    o.threads = 2;
    o.quiet = true;
    o.no_calib = true;
    o.no_permute = true;
    CHECK_OK(vib3_convert(&o));
    vib3_engine *e = NULL;
    CHECK_OK(open_engine(&e, out, 64));
    if (!e) return -1;
    enum { N = 24 };
    uint32_t V = vib3_engine_vocab(e), ids[N], pv = 0;
    uint64_t st = 7;
    for (uint32_t i = 0; i < N; i++) ids[i] = (uint32_t)(vib3_test_rand(&st) % V);
    ids[0] = 1;
    float *got = malloc((size_t)N * V * sizeof *got);
    vib3_seq *s;
    CHECK_OK(vib3_seq_acquire(e, &s));
    CHECK_OK(vib3_seq_prefill(s, ids, N, got));
    float *want = peer_logits(src, ids, N, &pv);
    CHECK_MSG(want != NULL, "llama_logits failed on %s", src);
    float worst = -1;
    if (want && pv == V) {
        worst = 0;
        uint32_t agree = 0;
        for (uint32_t t = 0; t < N; t++) {
            const float *a = got + (size_t)t * V, *b = want + (size_t)t * V;
            for (uint32_t k = 0; k < V; k++) worst = fmaxf(worst, fabsf(a[k] - b[k]));
            agree += vib3_argmax(a, V) == vib3_argmax(b, V);
        }
        printf("    %s: vib3 vs llama.cpp on this GGUF: top-1 %u/%u, max |logit diff| %.3g (tol %g)\n", name, agree,
               N, worst, tol);
        CHECK_MSG(worst <= tol, "%s: max logit diff %g > %g", name, worst, tol);
        CHECK_MSG(agree >= N - 2, "%s: top-1 agreement %u/%u", name, agree, N);
    } else if (want) {
        CHECK_EQ_U64(pv, V);
    }
    free(want);
    free(got);
    vib3_seq_release(s);
    vib3_engine_close(e);
    return worst;
}

TEST(llama_cpp_reads_the_split_as_we_do) {
    if (!gen()) SKIP("gen_models failed");
    if (!peer_ready()) SKIP(peer_msg);
    against_llama_cpp("deepseek_v3-f32-mla.gguf", VIB3_DTYPE_F32, 1e-3f);
    /* Q8_0: vib3 re-encodes kv_b (blocks along kv_lora_rank) from k_b's blocks (along qk_nope), a second
     * rounding llama.cpp does not do; bounded against the same model with attn_kv_b (no split) */
    float plain = against_llama_cpp("deepseek_v3-q8_0.gguf", VIB3_DTYPE_Q8_0, 1.0f);
    if (plain >= 0) against_llama_cpp("deepseek_v3-q8_0-mla.gguf", VIB3_DTYPE_Q8_0, 2 * plain + 0.05f);
}
