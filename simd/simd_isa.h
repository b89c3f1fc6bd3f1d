/* simd_isa.h — internal: each ISA file's table filler (dispatch.c calls the
 * ones this CPU can run) and the ISA-suffixed kernels tests call directly.
 * Not for the runtime: it goes through vib3_simd(). */
#ifndef VIB3_SIMD_ISA_H
#define VIB3_SIMD_ISA_H

#include "simd/simd.h"

void vib3_simd_fill_avx2(vib3_simd_ops *ops);   /* simd/kernels_avx2.c */
void vib3_simd_fill_avx512(vib3_simd_ops *ops); /* simd/kernels_avx512.c */
void vib3_simd_fill_neon(vib3_simd_ops *ops);   /* simd/kernels_neon.c */

/* the table entries of dtype DT (spelled dt in kernel names) from one ISA's kernels: its
 * vib3_matvec_<dt>_<isa> / vib3_matmul_<dt>_<isa> and the page kernels page_impl.h defines */
#define VIB3_SIMD_FILL_DTYPE(ops, dt, DT, isa)                            \
    do {                                                                  \
        (ops)->matvec[DT] = vib3_matvec_##dt##_##isa;                     \
        (ops)->matmul[DT] = vib3_matmul_##dt##_##isa;                     \
        (ops)->page_act[DT] = vib3_page_act_##dt##_##isa;                 \
        (ops)->page_down[DT] = vib3_page_down_##dt##_##isa;               \
        (ops)->page_ffn[DT] = vib3_page_ffn_##dt##_##isa;                 \
        (ops)->page_ffn_batch[DT] = vib3_page_ffn_batch_##dt##_##isa;     \
    } while (0)

#endif
