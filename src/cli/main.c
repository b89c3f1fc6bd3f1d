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

/* Ollama's spellings */
static const struct {
    const char *alias, *name;
} aliases[] = {{"ls", "list"}, {"show", "info"}};

static const char *command_name(const char *s) {
    for (size_t a = 0; a < sizeof aliases / sizeof aliases[0]; a++)
        if (!strcmp(s, aliases[a].alias)) return aliases[a].name;
    return s;
}

static void usage(FILE *out) {
    fprintf(out, "usage: vib3 <command> [options]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s", commands[i].name);
        for (size_t a = 0; a < sizeof aliases / sizeof aliases[0]; a++)
            if (!strcmp(aliases[a].name, commands[i].name))
                snprintf(name, sizeof name, "%s, %s", commands[i].name, aliases[a].alias);
        fprintf(out, "  %-16s %s\n", name, commands[i].summary);
    }
    fprintf(out, "\n'vib3 <command> --help' for a command's options; 'vib3 --version'.\n"
                 "settings come from conf/vib3.conf, then VIB3_* variables, then flags.\n");
}

/* the command within edit distance 2 of s (a typo: "rnu", "serv", "perplexty"), or NULL */
static const char *nearest_command(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 32) return NULL;
    const char *best = NULL;
    unsigned best_d = 3;
    for (int c = 0; c < N_COMMANDS; c++) {
        const char *t = commands[c].name;
        size_t m = strlen(t);
        unsigned d[33][33];
        for (size_t i = 0; i <= n; i++) d[i][0] = (unsigned)i;
        for (size_t j = 0; j <= m; j++) d[0][j] = (unsigned)j;
        for (size_t i = 1; i <= n; i++)
            for (size_t j = 1; j <= m; j++) {
                unsigned sub = d[i - 1][j - 1] + (s[i - 1] != t[j - 1]), del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
                unsigned v = sub < del ? sub : del;
                v = v < ins ? v : ins;
                if (i > 1 && j > 1 && s[i - 1] == t[j - 2] && s[i - 2] == t[j - 1] && d[i - 2][j - 2] + 1 < v)
                    v = d[i - 2][j - 2] + 1; /* a transposition */
                d[i][j] = v;
            }
        if (d[n][m] < best_d && d[n][m] < m) best_d = d[n][m], best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "help") && argc > 2) { /* `vib3 help run`, as `ollama help run` */
        const char *want = command_name(argv[2]);
        for (int i = 0; i < N_COMMANDS; i++) {
            if (strcmp(want, commands[i].name) != 0) continue;
            char *help_argv[] = {argv[2], "--help", NULL};
            vib3_config cfg;
            vib3_cli_set_command(argv[2]);
            vib3_config_defaults(&cfg);
            return commands[i].fn(2, help_argv, &cfg);
        }
        fprintf(stderr, "vib3: unknown command '%s'\n\n", argv[2]);
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
    const char *want = command_name(argv[1]);
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(want, commands[i].name) != 0) continue;
        vib3_config cfg;
        vib3_cli_set_command(argv[1]);
        if (vib3_config_load(&cfg) != VIB3_OK) return vib3_cli_fail(argv[1]);
        return commands[i].fn(argc - 1, argv + 1, &cfg);
    }
    fprintf(stderr, "vib3: unknown command '%s'", argv[1]);
    const char *near = nearest_command(argv[1]);
    if (near) fprintf(stderr, "; did you mean '%s'?", near);
    fprintf(stderr, "\n\n");
    usage(stderr);
    return 2;
}
