/* common.h — helpers shared by the converter tests (tests/convert only). */
#ifndef VIB3_TESTS_CONVERT_COMMON_H
#define VIB3_TESTS_CONVERT_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/convert.h"
#include "convert/cvt.h"
#include "core/arena.h"
#include "core/config.h"
#include "format/reader.h"
#include "runtime/engine.h"
#include "tests/test.h"

/* an engine over `vib3` for one sequence of ctx positions, 2 threads, no tokenizer (the generated
 * models have none) */
static inline vib3_err open_engine(vib3_engine **e, const char *vib3, uint32_t ctx) {
    vib3_config cfg;
    vib3_config_defaults(&cfg);
    vib3_engine_params p;
    memset(&p, 0, sizeof p);
    p.n_seq = 1;
    p.ctx_size = ctx;
    p.threads = 2;
    p.flags = VIB3_ENGINE_NO_TOKENIZER;
    return vib3_engine_open(e, vib3, &cfg, &p);
}

static inline bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* convert quietly; returns the vib3_err */
static inline int convert_to(const char *model, const char *out, int quant, bool permute, uint32_t k) {
    vib3_convert_opts o;
    memset(&o, 0, sizeof o);
    o.model_path = model;
    o.output_path = out;
    o.expert_dtype = quant;
    o.no_permute = !permute;
    o.page_neurons = k;
    o.quiet = true;
    o.no_calib = true;
    o.threads = 2;
    return vib3_convert(&o);
}

typedef struct opened {
    vib3_arena arena;
    vib3_file f;
    bool ok;
} opened;

static inline bool open_vib3(opened *o, const char *path) {
    memset(o, 0, sizeof *o);
    if (vib3_arena_init(&o->arena, 64u << 20, "test", 0)) return false;
    o->ok = vib3_file_open(&o->f, path, &o->arena, VIB3_OPEN_VERIFY_DATA) == VIB3_OK;
    return o->ok;
}

static inline void close_vib3(opened *o) {
    if (o->ok) vib3_file_close(&o->f);
    vib3_arena_fini(&o->arena);
}

/* page p's pieces */
static inline const uint8_t *page_data(const vib3_file *f, uint64_t p) { return f->map + f->pages[p].offset; }
static inline uint64_t page_hrow(const vib3_file *f, uint64_t p) {
    return vib3_dtype_row_bytes((vib3_dtype)f->pages[p].dtype, f->config->hidden_size);
}
/* row i of gate (which = 0) or up (which = 1), decoded */
static inline void page_row(const vib3_file *f, uint64_t p, int which, uint32_t i, float *out) {
    const vib3_page_entry *pe = &f->pages[p];
    uint64_t hr = page_hrow(f, p);
    vib3_decode_row((vib3_dtype)pe->dtype, page_data(f, p) + ((uint64_t)which * pe->n_neurons + i) * hr,
                    f->config->hidden_size, out);
}
/* row h of down (n_neurons values), decoded */
static inline void page_down(const vib3_file *f, uint64_t p, uint32_t h, float *out) {
    const vib3_page_entry *pe = &f->pages[p];
    uint64_t hr = page_hrow(f, p), dr = vib3_dtype_row_bytes((vib3_dtype)pe->dtype, pe->n_neurons);
    vib3_decode_row((vib3_dtype)pe->dtype, page_data(f, p) + 2 * (uint64_t)pe->n_neurons * hr + h * dr, pe->n_neurons,
                    out);
}

/* run the generator tool into dir with the given specs (space separated) */
static inline bool gen_models(const char *dir, const char *specs) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/tools/gen_models %s %s", vib3_test_build_dir(), dir, specs);
    return system(cmd) == 0;
}

#endif
