/* mkseeds.c — writes the .vib3 fuzz seed corpus: small valid files from
 * tests/format/fixture.h with different shapes / dtypes.
 *   build/tools/mkseeds fuzz/corpus/fuzz_vib3_reader */
#include <stdio.h>

#include "core/err.h"
#include "tests/format/fixture.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds DIR\n");
        return 2;
    }
    fixture_opts v[4] = {fixture_default, fixture_default, fixture_default, fixture_default};
    v[1].n_layers = 1, v[1].n_experts = 2, v[1].moe_ffn = 32, v[1].hidden = 32, v[1].seed = 2;
    v[2].expert_dtype = VIB3_DTYPE_Q8_0, v[2].n_layers = 1, v[2].hidden = 32, v[2].seed = 3;
    v[3].expert_dtype = VIB3_DTYPE_Q4_K16, v[3].n_layers = 1, v[3].n_experts = 2, v[3].moe_ffn = 64, v[3].hidden = 96,
    v[3].seed = 4; /* hidden 96: a short super-block */
    for (int i = 0; i < 4; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/seed%d.vib3", argv[1], i);
        if (fixture_write(p, &v[i]) != 0) {
            fprintf(stderr, "%s: %s\n", p, vib3_err_msg());
            return 1;
        }
    }
    return 0;
}
