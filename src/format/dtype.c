/* dtype.c — sizes and names of vib3 dtypes, archs, page sizes. */
#include <string.h>

#include "format/vib3_format.h"

static const char *const dtype_names[VIB3_DTYPE_COUNT_] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k16"};

uint64_t vib3_dtype_row_bytes(vib3_dtype t, uint64_t n) {
    switch (t) {
    case VIB3_DTYPE_F32: return n > UINT64_MAX / 4 ? 0 : n * 4;
    case VIB3_DTYPE_F16:
    case VIB3_DTYPE_BF16: return n > UINT64_MAX / 2 ? 0 : n * 2;
    case VIB3_DTYPE_Q8_0: return n % VIB3_QBLOCK ? 0 : n / VIB3_QBLOCK * sizeof(vib3_block_q8_0);
    case VIB3_DTYPE_Q4_0: return n % VIB3_QBLOCK ? 0 : n / VIB3_QBLOCK * sizeof(vib3_block_q4_0);
    case VIB3_DTYPE_Q4_K16:
        if (n % VIB3_QBLOCK || n > UINT64_MAX / 2) return 0;
        return (n + VIB3_Q4K16_SUPER - 1) / VIB3_Q4K16_SUPER * VIB3_Q4K16_HEAD_BYTES +
               n / VIB3_QBLOCK * VIB3_Q4K16_CHUNK_BYTES;
    default: return 0;
    }
}

const char *vib3_dtype_name(vib3_dtype t) { return (unsigned)t < VIB3_DTYPE_COUNT_ ? dtype_names[t] : "?"; }

int vib3_dtype_from_name(const char *name) {
    for (int i = 0; i < VIB3_DTYPE_COUNT_; i++)
        if (!strcmp(name, dtype_names[i])) return i;
    if (!strcmp(name, "q4")) return VIB3_DTYPE_Q4_0;
    if (!strcmp(name, "q8")) return VIB3_DTYPE_Q8_0;
    return -1;
}

const char *vib3_arch_name(uint32_t arch) {
    static const char *const names[VIB3_ARCH_COUNT_] = {"?", "llama", "mixtral", "qwen2_moe", "qwen3_moe",
                                                        "deepseek_v3"};
    return arch < VIB3_ARCH_COUNT_ ? names[arch] : "?";
}

uint64_t vib3_page_bytes(vib3_dtype t, uint32_t hidden, uint32_t n_neurons) {
    uint64_t gate_row = vib3_dtype_row_bytes(t, hidden);
    uint64_t down_row = vib3_dtype_row_bytes(t, n_neurons);
    if (!gate_row || !down_row) return 0;
    return 2 * (uint64_t)n_neurons * gate_row + (uint64_t)hidden * down_row;
}
