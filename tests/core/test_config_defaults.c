/* test_config_defaults.c — the compiled-in defaults (vib3_config_defaults) equal conf/vib3.conf,
 * so a binary that finds no config file (installed without it, copied alone) behaves exactly as
 * one that reads the shipped file; and the file sets every setting (except the secret api_key and
 * the per-user home), so neither can drift without this test failing. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "tests/test.h"

TEST(config_defaults_equal_conf_file) {
    vib3_config built_in, file;
    vib3_config_defaults(&built_in);
    /* poison: a setting the file does not set keeps a value no default has */
    memset(&file, 0x5a, sizeof file);
    file.evict[0] = file.prefetch[0] = file.host[0] = file.cors_origins[0] = 0;
    file.io_uring = !built_in.io_uring;
    strcpy(file.api_key, built_in.api_key);
    strcpy(file.home, built_in.home);
    CHECK_OK(vib3_config_load_file(&file, "conf/vib3.conf"));
#define SAME_U(f) CHECK_MSG(file.f == built_in.f, "conf/vib3.conf %s = %llu, built-in default %llu", #f, \
                            (unsigned long long)file.f, (unsigned long long)built_in.f)
#define SAME_S(f) CHECK_MSG(!strcmp(file.f, built_in.f), "conf/vib3.conf %s = '%s', built-in default '%s'", #f, \
                            file.f, built_in.f)
    SAME_U(ram_budget_bytes);
    SAME_U(vram_budget_bytes);
    SAME_U(arena_bytes_max);
    SAME_U(threads);
    SAME_U(ctx_size);
    SAME_U(batch_size);
    SAME_U(page_neurons);
    SAME_S(evict);
    SAME_S(prefetch);
    SAME_U(io_queue_depth);
    SAME_U(io_uring);
    SAME_S(host);
    SAME_U(port);
    SAME_U(parallel);
    SAME_U(queue_max);
    SAME_U(body_bytes_max);
    SAME_U(shutdown_timeout);
    SAME_S(cors_origins);
    SAME_S(api_key);
    SAME_S(home);
    /* every field is compared above: a new setting must be added here (and to the file) */
    CHECK_MSG(offsetof(vib3_config, home) == offsetof(vib3_config, api_key) + sizeof built_in.api_key &&
                  offsetof(vib3_config, source_path) + sizeof built_in.source_path == sizeof(vib3_config) &&
                  sizeof(vib3_config) == 2600,
              "vib3_config changed (%zu bytes): compare the new field with conf/vib3.conf here", sizeof(vib3_config));
    CHECK_STR(file.source_path, "conf/vib3.conf");
}

/* the comparison can fail: a file value that differs from the default is caught */
TEST(config_defaults_check_catches_a_difference) {
    char path[1024];
    snprintf(path, sizeof path, "%s/drift.conf", vib3_test_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("[server]\nqueue_max = 65\n", f);
    fclose(f);
    vib3_config built_in, file;
    vib3_config_defaults(&built_in);
    vib3_config_defaults(&file);
    CHECK_OK(vib3_config_load_file(&file, path));
    CHECK(file.queue_max != built_in.queue_max);
}
