/* dispatch.c — picks the kernel table once from CPUID *and* XGETBV.
 *
 * CPUID only says what the core implements; the OS must also save the wider
 * register state on context switches (XCR0 bits 1-2 for XMM/YMM, 5-7 for
 * opmask/ZMM), otherwise AVX instructions fault. ggml skips that check; we
 * don't. Each variant's table starts as a copy of the one below it (scalar
 * < avx2 < avx512; scalar < neon) and overrides what its ISA file provides,
 * so a kernel without an ISA version falls back to the best one that exists.
 * Built with VIB3_SIMD_SCALAR_ONLY (fuzzing) only the scalar table exists.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simd/simd.h"
#include "simd/simd_isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define VIB3_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define VIB3_ARM 1
#endif

/* ==== feature detection ===================================================== */
#ifdef VIB3_X86
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}
#endif

static uint32_t detect_features(void) {
    uint32_t f = 0;
#ifdef VIB3_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned c1 = c;
    if (c1 & (1u << 20)) f |= VIB3_CPU_SSE42;
    bool osxsave = c1 & (1u << 27);
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm_os = (xcr0 & 0x6) == 0x6, zmm_os = (xcr0 & 0xe6) == 0xe6;
    if (!ymm_os) return f;
    if (c1 & (1u << 28)) f |= VIB3_CPU_AVX;
    if (c1 & (1u << 12)) f |= VIB3_CPU_FMA;
    if (c1 & (1u << 29)) f |= VIB3_CPU_F16C;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    if (b & (1u << 5)) f |= VIB3_CPU_AVX2;
    uint32_t z = 0;
    if (b & (1u << 16)) z |= VIB3_CPU_AVX512F;
    if (b & (1u << 17)) z |= VIB3_CPU_AVX512DQ;
    if (b & (1u << 30)) z |= VIB3_CPU_AVX512BW;
    if (b & (1u << 31)) z |= VIB3_CPU_AVX512VL;
    if (c & (1u << 11)) z |= VIB3_CPU_AVX512VNNI;
    unsigned a1, b1, c1b, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1b, &d1)) {
        if (a1 & (1u << 5)) z |= VIB3_CPU_AVX512BF16;
        if (a1 & (1u << 4)) f |= VIB3_CPU_AVXVNNI;
    }
    if (zmm_os) f |= z;
    else if (z) f |= VIB3_CPU_AVX512_CPUID_ONLY;
#elif defined(VIB3_ARM)
    unsigned long hw = getauxval(AT_HWCAP);
    f |= VIB3_CPU_NEON; /* mandatory on AArch64 */
#ifdef HWCAP_ASIMDDP
    if (hw & HWCAP_ASIMDDP) f |= VIB3_CPU_DOTPROD;
#endif
#ifdef HWCAP_ASIMDHP
    if (hw & HWCAP_ASIMDHP) f |= VIB3_CPU_FP16;
#endif
#ifdef HWCAP_SVE
    if (hw & HWCAP_SVE) f |= VIB3_CPU_SVE;
#endif
    (void)hw;
#endif
    return f;
}

static pthread_once_t features_once = PTHREAD_ONCE_INIT;
static uint32_t features;
static void features_init(void) { features = detect_features(); }

uint32_t vib3_simd_cpu_features(void) {
    pthread_once(&features_once, features_init);
    return features;
}

const char *vib3_simd_cpu_features_str(uint32_t f, char *buf, size_t cap) {
    static const struct { uint32_t bit; const char *name; } names[] = {
        {VIB3_CPU_SSE42, "sse4.2"}, {VIB3_CPU_AVX, "avx"}, {VIB3_CPU_AVX2, "avx2"}, {VIB3_CPU_FMA, "fma"},
        {VIB3_CPU_F16C, "f16c"}, {VIB3_CPU_AVX512F, "avx512f"}, {VIB3_CPU_AVX512BW, "avx512bw"},
        {VIB3_CPU_AVX512VL, "avx512vl"}, {VIB3_CPU_AVX512DQ, "avx512dq"}, {VIB3_CPU_AVX512VNNI, "avx512vnni"},
        {VIB3_CPU_AVX512BF16, "avx512bf16"}, {VIB3_CPU_AVXVNNI, "avxvnni"}, {VIB3_CPU_NEON, "neon"},
        {VIB3_CPU_DOTPROD, "dotprod"}, {VIB3_CPU_FP16, "fp16"}, {VIB3_CPU_SVE, "sve"},
        {VIB3_CPU_AVX512_CPUID_ONLY, "avx512(cpu-only,os-disabled)"},
    };
    size_t used = 0;
    if (cap) buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(f & names[i].bit)) continue;
        int w = snprintf(buf + used, cap > used ? cap - used : 0, "%s%s", used ? " " : "", names[i].name);
        if (w > 0) used += (size_t)w;
        if (used >= cap) break;
    }
    return buf;
}

/* ==== tables ================================================================ */
static void fill_ref(vib3_simd_ops *o) {
    memset(o, 0, sizeof *o);
    o->name = "scalar";
    o->f16_to_f32 = vib3_f16_to_f32_ref;
    o->f32_to_f16 = vib3_f32_to_f16_ref;
    o->bf16_to_f32 = vib3_bf16_to_f32_ref;
    o->quantize_q8_0 = vib3_quantize_q8_0_ref;
    o->dequant[VIB3_DTYPE_F32] = vib3_dequant_f32_ref;
    o->dequant[VIB3_DTYPE_F16] = vib3_dequant_f16_ref;
    o->dequant[VIB3_DTYPE_BF16] = vib3_dequant_bf16_ref;
    o->dequant[VIB3_DTYPE_Q8_0] = vib3_dequant_q8_0_ref;
    o->dequant[VIB3_DTYPE_Q4_0] = vib3_dequant_q4_0_ref;
    o->dequant[VIB3_DTYPE_Q4_K16] = vib3_dequant_q4_k16_ref;
    VIB3_SIMD_FILL_DTYPE(o, f32, VIB3_DTYPE_F32, ref);
    VIB3_SIMD_FILL_DTYPE(o, f16, VIB3_DTYPE_F16, ref);
    VIB3_SIMD_FILL_DTYPE(o, bf16, VIB3_DTYPE_BF16, ref);
    VIB3_SIMD_FILL_DTYPE(o, q8_0, VIB3_DTYPE_Q8_0, ref);
    VIB3_SIMD_FILL_DTYPE(o, q4_0, VIB3_DTYPE_Q4_0, ref);
    VIB3_SIMD_FILL_DTYPE(o, q4_k16, VIB3_DTYPE_Q4_K16, ref);
    o->rmsnorm = vib3_rmsnorm_ref;
    o->rope = vib3_rope_ref;
    o->softmax = vib3_softmax_ref;
    o->silu = vib3_silu_ref;
    o->swiglu = vib3_swiglu_ref;
    o->topk = vib3_topk_ref;
    o->dot_f32 = vib3_dot_f32_ref;
    o->axpy = vib3_axpy_ref;
    o->scale = vib3_scale_ref;
    o->add = vib3_add_ref;
    o->attn_scores_f32 = vib3_attn_scores_f32_ref;
    o->attn_scores_f16 = vib3_attn_scores_f16_ref;
    o->attn_values_f32 = vib3_attn_values_f32_ref;
    o->attn_values_f16 = vib3_attn_values_f16_ref;
    o->sum_f32 = vib3_sum_f32_ref;
    o->sum_u32 = vib3_sum_u32_ref;
    o->int8_mac_loop = vib3_int8_mac_loop_ref;
}

enum { V_SCALAR, V_AVX2, V_AVX512, V_NEON, V_COUNT };
static const char *const variant_names[V_COUNT] = {"scalar", "avx2", "avx512", "neon"};
static vib3_simd_ops tables[V_COUNT];
static bool usable[V_COUNT];

static void tables_build(void) {
    uint32_t f = vib3_simd_cpu_features();
    fill_ref(&tables[V_SCALAR]);
    usable[V_SCALAR] = true;
    (void)f;
#if !defined(VIB3_SIMD_SCALAR_ONLY) && defined(VIB3_X86)
    const uint32_t need2 = VIB3_CPU_AVX2 | VIB3_CPU_FMA | VIB3_CPU_F16C;
    const uint32_t need512 = need2 | VIB3_CPU_AVX512F | VIB3_CPU_AVX512BW | VIB3_CPU_AVX512VL | VIB3_CPU_AVX512DQ |
                             VIB3_CPU_AVX512VNNI;
    tables[V_AVX2] = tables[V_SCALAR];
    vib3_simd_fill_avx2(&tables[V_AVX2]);
    tables[V_AVX2].name = "avx2";
    usable[V_AVX2] = (f & need2) == need2;
    tables[V_AVX512] = tables[V_AVX2];
    vib3_simd_fill_avx512(&tables[V_AVX512]);
    tables[V_AVX512].name = "avx512";
    usable[V_AVX512] = (f & need512) == need512;
#elif !defined(VIB3_SIMD_SCALAR_ONLY) && defined(VIB3_ARM)
    tables[V_NEON] = tables[V_SCALAR];
    vib3_simd_fill_neon(&tables[V_NEON]);
    tables[V_NEON].name = "neon";
    usable[V_NEON] = (f & (VIB3_CPU_DOTPROD | VIB3_CPU_FP16)) == (VIB3_CPU_DOTPROD | VIB3_CPU_FP16);
#endif
}

/* A start-up self-check of a variant's quantized kernels against the reference on a small
 * deterministic input (~50 us). A variant that disagrees (a kernel bug on a CPU the tests
 * never ran on) is not used: dispatch falls back and says so on stderr. */
static bool self_check(const vib3_simd_ops *o, const vib3_simd_ops *ref) {
    if (o == ref) return true;
    enum { ROWS = 19, COLS = 96, NB = COLS / 32, B = 3 };
    static vib3_block_q4_0 w4[200]; /* ROWS * NB for the mat-vec, 192 for the page below */
    static vib3_block_q8_0 w8[ROWS * NB], xq0[B * NB], xq1[B * NB];
    static float x[B * COLS], y0[B * ROWS], y1[B * ROWS];
    uint32_t s = 12345;
    for (int i = 0; i < 200; i++) {
        w4[i].d = vib3_f32_to_f16(0.01f + 0.001f * (float)(i % 7));
        for (int j = 0; j < 16; j++) w4[i].qs[j] = (uint8_t)((s = s * 1103515245u + 12345u) >> 16);
    }
    for (int i = 0; i < ROWS * NB; i++) {
        w8[i].d = w4[i].d;
        for (int j = 0; j < 32; j++) w8[i].qs[j] = (int8_t)((int)((s = s * 1103515245u + 12345u) >> 16) % 255 - 127);
    }
    for (int i = 0; i < B * COLS; i++) x[i] = (float)((int)((s = s * 1103515245u + 12345u) >> 16) % 2001 - 1000) / 500.0f;
    ref->quantize_q8_0(x, xq0, B * COLS);
    o->quantize_q8_0(x, xq1, B * COLS);
    if (memcmp(xq0, xq1, sizeof xq0)) return false;
    const void *ws[2] = {w4, w8};
    const int dts[2] = {VIB3_DTYPE_Q4_0, VIB3_DTYPE_Q8_0};
    for (int k = 0; k < 2; k++) {
        int t = dts[k];
        ref->matmul[t](ws[k], COLS, xq0, NB * sizeof(vib3_block_q8_0), B, y0, ROWS, 0, ROWS);
        o->matmul[t](ws[k], COLS, xq0, NB * sizeof(vib3_block_q8_0), B, y1, ROWS, 0, ROWS);
        for (int i = 0; i < B * ROWS; i++)
            if (!(fabsf(y0[i] - y1[i]) <= 1e-3f * (1.0f + fabsf(y0[i])))) return false;
        ref->matvec[t](ws[k], COLS, xq0, y0, 0, ROWS);
        o->matvec[t](ws[k], COLS, xq0, y1, 0, ROWS);
        for (int i = 0; i < ROWS; i++)
            if (!(fabsf(y0[i] - y1[i]) <= 1e-3f * (1.0f + fabsf(y0[i])))) return false;
    }
    float d0 = ref->dot_f32(x, x + 1, 77), d1 = o->dot_f32(x, x + 1, 77);
    if (!(fabsf(d0 - d1) <= 1e-3f * (1.0f + fabsf(d0)))) return false;
    /* element-wise and attention kernels on 37 values / 5 rows of 37 */
    static float a0[64], a1[64];
    static uint16_t kh[5 * 40];
    for (int i = 0; i < 5 * 40; i++) kh[i] = vib3_f32_to_f16(x[i]);
    ref->swiglu(a0, x, x + 40, 37), o->swiglu(a1, x, x + 40, 37);
    for (int i = 0; i < 37; i++)
        if (!(fabsf(a0[i] - a1[i]) <= 1e-4f * (1.0f + fabsf(a0[i])))) return false;
    ref->attn_scores_f32(x, x + 50, 40 * sizeof(float), 37, 5, 0.5f, a0);
    o->attn_scores_f32(x, x + 50, 40 * sizeof(float), 37, 5, 0.5f, a1);
    ref->attn_scores_f16(x, kh, 40 * sizeof(uint16_t), 37, 5, 0.5f, a0 + 8);
    o->attn_scores_f16(x, kh, 40 * sizeof(uint16_t), 37, 5, 0.5f, a1 + 8);
    for (int i = 0; i < 13; i++)
        if (!(fabsf(a0[i] - a1[i]) <= 1e-3f * (1.0f + fabsf(a0[i])))) return false;
    /* one Q4_0 page: hidden 64, K 32 (gate | up | down = 2 x 32 rows of 2 blocks + 64 rows of 1 block) */
    static float o0[64], o1[64];
    memset(o0, 0, sizeof o0), memset(o1, 0, sizeof o1);
    ref->page_ffn[VIB3_DTYPE_Q4_0](w4, 64, 32, xq0, 0.5f, o0);
    o->page_ffn[VIB3_DTYPE_Q4_0](w4, 64, 32, xq0, 0.5f, o1);
    for (int i = 0; i < 64; i++)
        if (!(fabsf(o0[i] - o1[i]) <= 1e-2f * (1.0f + fabsf(o0[i])))) return false;
    /* Q4_K16: mat-vec of 19 rows x 288 (a full super-block and a short one) against xq0 as one
     * 288-element row, mat-mul of 19 rows x 96 against the three tokens */
    static uint8_t wk[ROWS * 179], wm[ROWS * 61];
    uint8_t *kb[2] = {wk, wm};
    const size_t kc[2] = {288, 96};
    for (int k = 0; k < 2; k++) {
        size_t rb = (size_t)vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, kc[k]);
        for (size_t i = 0; i < ROWS * rb; i++) kb[k][i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 16);
        for (size_t r = 0; r < ROWS; r++)
            for (size_t h = 0; h < rb; h += 156) { /* d, dmin of each super-block (little endian) */
                uint16_t d = vib3_f32_to_f16(0.001f + 0.0001f * (float)(r % 5)), dm = vib3_f32_to_f16(0.002f);
                kb[k][r * rb + h] = (uint8_t)d, kb[k][r * rb + h + 1] = (uint8_t)(d >> 8);
                kb[k][r * rb + h + 2] = (uint8_t)dm, kb[k][r * rb + h + 3] = (uint8_t)(dm >> 8);
            }
    }
    ref->matvec[VIB3_DTYPE_Q4_K16](wk, 288, xq0, y0, 0, ROWS);
    o->matvec[VIB3_DTYPE_Q4_K16](wk, 288, xq0, y1, 0, ROWS);
    for (int i = 0; i < ROWS; i++)
        if (!(fabsf(y0[i] - y1[i]) <= 1e-3f * (1.0f + fabsf(y0[i])))) return false;
    ref->matmul[VIB3_DTYPE_Q4_K16](wm, 96, xq0, NB * sizeof(vib3_block_q8_0), B, y0, ROWS, 0, ROWS);
    o->matmul[VIB3_DTYPE_Q4_K16](wm, 96, xq0, NB * sizeof(vib3_block_q8_0), B, y1, ROWS, 0, ROWS);
    for (int i = 0; i < B * ROWS; i++)
        if (!(fabsf(y0[i] - y1[i]) <= 1e-3f * (1.0f + fabsf(y0[i])))) return false;
    return true;
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static const vib3_simd_ops *current;
static int best;

static int variant_index(const char *isa) {
    for (int i = 0; i < V_COUNT; i++)
        if (!strcmp(isa, variant_names[i])) return i;
    return -1;
}

static void dispatch_init(void) {
    tables_build();
    for (int i = 1; i < V_COUNT; i++)
        if (usable[i] && !self_check(&tables[i], &tables[V_SCALAR])) {
            fprintf(stderr, "vib3: the %s kernels disagree with the reference on this CPU; not using them\n",
                    variant_names[i]);
            usable[i] = false;
        }
    best = V_SCALAR;
    for (int i = V_COUNT - 1; i > 0; i--)
        if (usable[i]) {
            best = i;
            break;
        }
    current = &tables[best];
    const char *env = getenv("VIB3_ISA");
    if (env && *env && strcmp(env, "auto")) {
        int v = variant_index(env);
        if (v >= 0 && usable[v]) current = &tables[v];
        else
            fprintf(stderr, "vib3: VIB3_ISA=%s is not usable on this CPU/build; using %s\n", env,
                    variant_names[best]);
    }
}

const vib3_simd_ops *vib3_simd(void) {
    pthread_once(&tables_once, dispatch_init);
    return current;
}

const vib3_simd_ops *vib3_simd_ref(void) {
    pthread_once(&tables_once, dispatch_init);
    return &tables[V_SCALAR];
}

const vib3_simd_ops *vib3_simd_variant(const char *isa) {
    pthread_once(&tables_once, dispatch_init);
    if (!isa || !strcmp(isa, "auto")) return &tables[best];
    int v = variant_index(isa);
    return v >= 0 && usable[v] ? &tables[v] : NULL;
}

const char *vib3_simd_best_name(void) {
    pthread_once(&tables_once, dispatch_init);
    return variant_names[best];
}

vib3_err vib3_simd_select(const char *isa) {
    const vib3_simd_ops *o = vib3_simd_variant(isa);
    if (!o)
        return vib3_err_set(VIB3_ERR_UNSUPPORTED, "simd: isa \"%s\" is not usable here (best: %s)",
                            isa ? isa : "(null)", vib3_simd_best_name());
    current = o;
    return VIB3_OK;
}

bool vib3_simd_self_check(const vib3_simd_ops *ops) {
    pthread_once(&tables_once, dispatch_init);
    return self_check(ops, &tables[V_SCALAR]);
}
