/* cmd_rm.c — `vib3 rm <name>...`: remove models from the store (src/store/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "store/store.h"

static void usage(FILE *out) {
    fprintf(out, "usage: vib3 rm [--purge-cache] <name>...\n"
                 "\n"
                 "Remove $VIB3_HOME/models/<name>.vib3 and its source record. <name> is what\n"
                 "`vib3 list` shows, an alias, or org/repo. The downloaded safetensors stay in the\n"
                 "Hugging Face cache (other tools share it) unless --purge-cache is given.\n"
                 "\n"
                 "options:\n"
                 "  --purge-cache          also remove the model's download from the Hugging Face cache\n");
    vib3_cli_settings_help(out, VIB3_CLI_SET_HOME);
}

int vib3_cmd_rm(int argc, char **argv, vib3_config *cfg) {
    bool purge = false;
    int n_names = 0, failed = 0;
    const char **names = argc > 1 ? calloc((size_t)argc, sizeof *names) : NULL; /* start-up only */
    if (argc > 1 && !names) return vib3_cli_error("rm", "out of memory");
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            free(names);
            return 0;
        }
        if (!strcmp(argv[i], "--purge-cache")) purge = true;
        else if ((r = vib3_cli_settings_flag(cfg, argc, argv, &i, "rm", VIB3_CLI_SET_HOME)) != 0) {
            if (r < 0) {
                free(names);
                return 2;
            }
        } else if (argv[i][0] == '-') {
            free(names);
            return vib3_cli_usage_error("rm", "unknown option '%s'", argv[i]);
        } else names[n_names++] = argv[i];
    }
    if (n_names == 0) {
        free(names);
        return vib3_cli_usage_error("rm", "which model? (see `vib3 list`)");
    }
    for (int k = 0; k < n_names; k++) {
        char path[VIB3_PATH_MAX + 256];
        if (vib3_store_rm(cfg, names[k], purge, path, sizeof path) != VIB3_OK) failed |= vib3_cli_fail("rm");
        else printf("removed %s\n", path);
    }
    free(names);
    return failed ? 1 : 0;
}
