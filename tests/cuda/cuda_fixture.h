/* cuda_fixture.h — helpers shared by the CUDA tier's tests (test_cuda.c on a GPU, test_cuda_emu.c
 * on the CPU emulator, test_cuda_mock.c on a host-memory mock): random pages (the same seed gives
 * the same page in each) and the tinymix conversions. */
#ifndef VIB3_TESTS_CUDA_FIXTURE_H
#define VIB3_TESTS_CUDA_FIXTURE_H

#include <stdint.h>

#include "convert/convert.h"
#include "format/vib3_format.h"
#include "simd/simd.h"
#include "tests/test.h"

/* a Q4_0 page gate (k, h) | up (k, h) | down (h, k): random nibbles, scales in [0.004, 0.02) */
static inline void random_page(uint8_t *page, uint32_t h, uint32_t k, uint64_t *seed) {
    uint64_t blocks = 3ull * k * (h / 32);
    for (uint64_t b = 0; b < blocks; b++) {
        uint8_t *blk = page + b * 18;
        uint16_t d = vib3_f32_to_f16(0.004f + 0.008f * (vib3_test_randf(seed) + 1.0f));
        blk[0] = (uint8_t)(d & 0xff);
        blk[1] = (uint8_t)(d >> 8);
        for (int i = 0; i < 16; i++) blk[2 + i] = (uint8_t)vib3_test_rand(seed);
    }
}

/* a random Q4_K16 row of n elements: random nibbles and sub-scale / sub-min bytes (every bit of
 * sm[] in use: mn1's high bits too), super scales d in [1e-4, 5e-4], dmin in [0, 4e-4] */
static inline void random_row_k16(uint8_t *row, uint32_t n, uint64_t *seed) {
    uint64_t rb = vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, n);
    for (uint64_t i = 0; i < rb; i++) row[i] = (uint8_t)vib3_test_rand(seed);
    for (uint32_t e = 0; e < n; e += VIB3_Q4K16_SUPER) {
        uint8_t *hd = row + (uint64_t)(e / VIB3_Q4K16_SUPER) * (VIB3_Q4K16_HEAD_BYTES + 8 * VIB3_Q4K16_CHUNK_BYTES);
        uint16_t d = vib3_f32_to_f16(3e-4f + 2e-4f * vib3_test_randf(seed));
        uint16_t dm = vib3_f32_to_f16(2e-4f + 2e-4f * vib3_test_randf(seed));
        hd[0] = (uint8_t)(d & 0xff), hd[1] = (uint8_t)(d >> 8), hd[2] = (uint8_t)(dm & 0xff), hd[3] = (uint8_t)(dm >> 8);
    }
}

/* a Q4_K16 page: gate (k rows of h) | up (k rows of h) | down (h rows of k) */
static inline void random_page_k16(uint8_t *page, uint32_t h, uint32_t k, uint64_t *seed) {
    uint64_t rb = vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, h), db = vib3_dtype_row_bytes(VIB3_DTYPE_Q4_K16, k);
    for (uint32_t r = 0; r < 2 * k; r++) random_row_k16(page + r * rb, h, seed);
    for (uint32_t r = 0; r < h; r++) random_row_k16(page + 2 * k * rb + r * db, k, seed);
}

/* tinymix converted with --quant q4_0 (k16 = 0) or --quant q4_k16 (k16 = 1: the converter's default INT4) */
static inline const char *tinymix(int k16) {
    static char path[2][700];
    static int state[2]; /* 0 untried, 1 ok, 2 unavailable */
    if (state[k16] == 0) {
        const char *src = vib3_test_model_path("tinymix-brown");
        state[k16] = 2;
        if (src) {
            snprintf(path[k16], sizeof path[k16], "%s/tm-%s.vib3", vib3_test_tmpdir(), k16 ? "q4k16" : "q4");
            vib3_convert_opts o = {0};
            o.model_path = src;
            o.output_path = path[k16];
            o.expert_dtype = k16 ? VIB3_DTYPE_Q4_K16 : VIB3_DTYPE_Q4_0;
            o.threads = 2;
            o.quiet = true;
            CHECK_OK(vib3_convert(&o));
            if (!vib3_test_failed_now()) state[k16] = 1;
        }
    }
    return state[k16] == 1 ? path[k16] : NULL;
}
static inline const char *tinymix_q4(void) { return tinymix(0); }

#endif
