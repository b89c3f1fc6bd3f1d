/* cmd_serve.c — `vib3 serve <model> [--host H] [--port P] [--api-key K] [--parallel N]`:
 * opens the engine with N sequence slots and runs the OpenAI-compatible
 * server (src/api/server.h) until SIGINT / SIGTERM.
 *
 * Shutdown is graceful, as process managers expect: the first SIGTERM / SIGINT
 * closes the listening socket and lets the requests in flight finish for up to
 * --shutdown-timeout seconds; then the ones still generating are ended
 * properly (see vib3_server_drain_force), the server stops and the process
 * exits 0. A second signal ends the process at once (killed by that signal).
 * Each phase logs one line on stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/server.h"
#include "cli/cli.h"
#include "runtime/engine.h"

static volatile sig_atomic_t stop_signal; /* the first SIGINT / SIGTERM received, 0 = none */
static void on_signal(int sig) {
    if (stop_signal) { /* the second one: no more grace */
        static const char msg[] = "vib3 serve: second signal: exiting now\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
}

#define SHUTDOWN_FLUSH_S 5.0 /* after a forced end: time for the last chunks to reach slow clients */

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: fine, the callers loop */
}

/* wait until nothing is in flight or `seconds` pass; true when drained */
static bool wait_drained(vib3_server *s, double seconds) {
    uint64_t deadline = vib3_now_ns() + (uint64_t)(seconds * 1e9);
    for (;;) {
        if (vib3_server_in_flight(s) == 0) return true;
        if (vib3_now_ns() >= deadline) return false;
        sleep_ms(20);
    }
}

/* the server settings are listed with the options above */
#define SERVE_SETTINGS VIB3_CLI_SET_ENGINE

static void usage(FILE *out) {
    fprintf(out,
            "usage: vib3 serve <model> [options]   (or -m/--model <model>, as llama-server)\n"
            "OpenAI-compatible HTTP server: POST /v1/chat/completions, POST /v1/completions (\"stream\": true for SSE),\n"
            "GET /v1/models, GET /health, GET /metrics (Prometheus)\n"
            "  --host ADDR            address or host name to listen on (default 127.0.0.1; 0.0.0.0: all)\n"
            "  --port N               TCP port (default 8080; 0 picks a free one)\n"
            "  --api-key KEY          require 'Authorization: Bearer KEY' (also VIB3_API_KEY)\n"
            "  -np, --parallel N      sequences decoded together, continuous batching (default 4)\n"
            "  --queue-max N          requests waiting for a slot before 503 (default 64)\n"
            "  --body-bytes-max SIZE  largest request body, 413 beyond (default 1M)\n"
            "  --alias NAME           model id reported by /v1/models (default: the file name)\n"
            "  --shutdown-timeout S   on SIGTERM/SIGINT, seconds the requests in flight may take to finish\n"
            "                         before they are ended (finish_reason \"length\"); default 10, 0 = end at once\n");
    vib3_cli_settings_help(out, SERVE_SETTINGS);
}

/* --host localhost (or another name), as llama-server and Ollama take it: the server binds
 * numeric addresses, so a name becomes its first address; 0 ok, else 1 (message printed) */
static int resolve_host(vib3_config *cfg) {
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, cfg->host, buf) == 1 || inet_pton(AF_INET6, cfg->host, buf) == 1) return 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(cfg->host, NULL, &hints, &res);
    if (rc != 0 || !res) return vib3_cli_error("serve", "--host %s: cannot resolve it (%s)", cfg->host, gai_strerror(rc));
    char addr[INET6_ADDRSTRLEN] = "";
    const struct addrinfo *a = res;
    for (const struct addrinfo *r = res; r; r = r->ai_next) /* IPv4 first, as "localhost" means 127.0.0.1 to most */
        if (r->ai_family == AF_INET) {
            a = r;
            break;
        }
    const void *in = a->ai_family == AF_INET ? (const void *)&((const struct sockaddr_in *)a->ai_addr)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
    const char *ok = inet_ntop(a->ai_family, in, addr, sizeof addr);
    freeaddrinfo(res);
    if (!ok) return vib3_cli_error("serve", "--host %s: %s", cfg->host, strerror(errno));
    snprintf(cfg->host, sizeof cfg->host, "%s", addr);
    return 0;
}

int vib3_cmd_serve(int argc, char **argv, vib3_config *cfg) {
    const char *model = NULL, *alias = NULL;
    double grace_s = cfg->shutdown_timeout; /* conf / VIB3_SHUTDOWN_TIMEOUT; the flag overrides */
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if ((v = vib3_cli_flag_value(argc, argv, &i, "-m")) || (v = vib3_cli_flag_value(argc, argv, &i, "--model"))) {
            if (model) return vib3_cli_usage_error("serve", "two models: %s and %s", model, v);
            model = v;
            continue;
        }
        if ((v = vib3_cli_flag_value(argc, argv, &i, "--alias"))) {
            alias = v;
            continue;
        }
        if ((v = vib3_cli_flag_value(argc, argv, &i, "--shutdown-timeout"))) {
            char *end;
            errno = 0;
            grace_s = strtod(v, &end);
            if (end == v || *end || errno || !(grace_s >= 0 && grace_s <= 86400))
                return vib3_cli_usage_error("serve", "option --shutdown-timeout: '%s' is not a number of seconds in 0..86400", v);
            continue;
        }
        int r = vib3_cli_settings_flag(cfg, argc, argv, &i, "serve", SERVE_SETTINGS | VIB3_CLI_SET_SERVER);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (argv[i][0] == '-') return vib3_cli_usage_error("serve", "unknown option '%s'", argv[i]);
        if (model) return vib3_cli_usage_error("serve", "unexpected argument '%s'", argv[i]);
        model = argv[i];
    }
    if (!model) return vib3_cli_usage_error("serve", "missing <model>");
    if (resolve_host(cfg) != 0) return 1;
    if (cfg->parallel == 0) cfg->parallel = 1;
    char path[VIB3_PATH_MAX];
    if (vib3_cli_resolve_model(cfg, model, path, sizeof path) != VIB3_OK) return vib3_cli_fail("serve");
    char id[256];
    if (alias) {
        snprintf(id, sizeof id, "%s", alias);
    } else {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        snprintf(id, sizeof id, "%.200s", base);
        char *dot = strstr(id, ".vib3");
        if (dot && dot[5] == 0) *dot = 0;
    }
    vib3_engine_params ep = {.n_seq = cfg->parallel};
    vib3_engine *e;
    if (vib3_engine_open(&e, path, cfg, &ep) != VIB3_OK) return vib3_cli_fail("serve");
    vib3_cli_warn_ctx("serve", e);
    vib3_server *s;
    if (vib3_server_start(&s, e, cfg, id) != VIB3_OK) {
        vib3_engine_close(e);
        return vib3_cli_fail("serve");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* the signal may land on any thread: MHD's and the engine's calls go on */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "vib3 serve: model '%s' (%s), %u parallel, ctx %u, listening on http://%s%s%s:%u%s\n", id, path,
            vib3_engine_n_seq(e), vib3_engine_ctx_size(e), strchr(cfg->host, ':') ? "[" : "", cfg->host,
            strchr(cfg->host, ':') ? "]" : "", vib3_server_port(s), cfg->api_key[0] ? " (API key required)" : "");
    fflush(stderr);
    while (!stop_signal) sleep_ms(50); /* the handler may run on another thread: poll the flag */

    /* phase 1: no new connections, the requests in flight finish within the grace period */
    uint64_t t0 = vib3_now_ns();
    vib3_server_drain_begin(s);
    fprintf(stderr, "vib3 serve: %s: stopped listening; finishing %u request(s) in flight (grace %g s; "
                    "a second signal exits at once)\n",
            stop_signal == SIGTERM ? "SIGTERM" : "SIGINT", vib3_server_in_flight(s), grace_s);
    if (wait_drained(s, grace_s)) {
        fprintf(stderr, "vib3 serve: all requests finished (%.2f s)\n", (vib3_now_ns() - t0) / 1e9);
    } else {
        /* phase 2: the grace period is over: end what is still running, properly */
        fprintf(stderr, "vib3 serve: grace period of %g s over: ending %u request(s) now (streams: finish_reason "
                        "\"length\" then [DONE])\n", grace_s, vib3_server_in_flight(s));
        vib3_server_drain_force(s);
        if (!wait_drained(s, SHUTDOWN_FLUSH_S))
            fprintf(stderr, "vib3 serve: %u connection(s) did not take their last bytes within %g s: closing them\n",
                    vib3_server_in_flight(s), SHUTDOWN_FLUSH_S);
    }
    vib3_server_stop(s);
    vib3_engine_close(e);
    fprintf(stderr, "vib3 serve: stopped (%.2f s after the signal)\n", (vib3_now_ns() - t0) / 1e9);
    return 0;
}
