/* main.c — `vib3 <command> [options]`: loads the configuration (conf/vib3.conf <
 * VIB3_* environment) and dispatches to src/cli/cmd_<command>.c. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef int (*cmd_fn)(int, char **, vib3_config *);
static const struct {
    const char *name;
    cmd_fn fn;
    const char *summary;
} commands[] = {
    {"pull", vib3_cmd_pull, "download a model from Hugging Face and convert it to .vib3"},
    {"run", vib3_cmd_run, "generate text from a prompt, or chat interactively"},
    {"serve", vib3_cmd_serve, "OpenAI-compatible HTTP server"},
    {"convert", vib3_cmd_convert, "convert safetensors / GGUF to a .vib3 file"},
    {"list", vib3_cmd_list, "list models in the store"},
    {"rm", vib3_cmd_rm, "remove a model from the store"},
    {"info", vib3_cmd_info, "describe a model and whether it fits this machine"},
    {"hw", vib3_cmd_hw, "detect CPU, ISA, RAM, disks and GPUs"},
    {"bench", vib3_cmd_bench, "benchmarks: kernels, a model (llama-bench flags), hnsw"},
    {"perplexity", vib3_cmd_perplexity, "perplexity of a model over a text file"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    fprintf(out, "usage: vib3 <command> [options]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'vib3 <command> --help' for a command's options; 'vib3 --version'.\n"
                 "settings come from conf/vib3.conf, then VIB3_* variables, then flags.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-v")) {
        printf("vib3 %s\n", VIB3_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        vib3_config cfg;
        vib3_cli_set_command(argv[1]);
        if (vib3_config_load(&cfg) != VIB3_OK) return vib3_cli_fail(argv[1]);
        return commands[i].fn(argc - 1, argv + 1, &cfg);
    }
    fprintf(stderr, "vib3: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
