/* cmd_bench.c — `vib3 bench kernels|hnsw|<model>`: dispatches to bench_*.c.
 * `vib3 bench <model> -p 512 -n 128 -r 3 -t 2` follows llama-bench's flags. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void bench_usage(FILE *out) {
    fprintf(out, "usage: vib3 bench kernels [--json] [-t N]     INT4 kernels vs DRAM bandwidth and llama.cpp\n"
                 "       vib3 bench hnsw --base B.fvecs --queries Q.fvecs [--gt G.ivecs] [--metric l2|ip]\n"
                 "                       [--M 16] [--ef-construction 200] [--ef 16,32,64,128] [--vtype f32[,f16,i8]]\n"
                 "                       [--runs 3] [-t N] [--peer PATH | --no-peer] [--save-gt G.ivecs] [--json]\n"
                 "       vib3 bench <model> [-p 512] [-n 128] [-d 0] [-r 3] [-t N] [--json]   (llama-bench flags)\n");
}

int vib3_cmd_bench(int argc, char **argv, vib3_config *cfg) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        bench_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "kernels")) return vib3_bench_kernels(argc - 1, argv + 1, cfg);
    if (!strcmp(argv[1], "hnsw")) return vib3_bench_hnsw(argc - 1, argv + 1, cfg);
    return vib3_bench_model(argc - 1, argv + 1, cfg);
}
