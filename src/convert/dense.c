/* dense.c — non-expert tensors (embeddings, attention, LM head, routers,
 * norms) from a source weight to one .vib3 tensor, in bounded memory.
 *
 * Rows are decoded to F32 and encoded in the output dtype on the worker pool,
 * a chunk of rows at a time; each chunk is streamed to the writer
 * (vib3_writer_tensor_begin/append/end, xxh3 computed incrementally) and the
 * source rows it read are dropped from our RSS before the next chunk. A chunk
 * holds at most a quarter of --mem-budget (capped at 64 MiB) counting both
 * the encoded rows and the mapped source rows they came from, so the largest
 * embedding / LM head (DeepSeek-V3's 129280 x 7168, Kimi K2's 163840 x 7168)
 * costs one chunk, not the tensor. A tensor that fits in one chunk (nearly
 * every tensor) takes the writer's one-shot add_tensor; both give the same
 * bytes (test_convert_stream). VIB3_CONVERT_DENSE_CHUNK=BYTES overrides the
 * chunk size (tests: many tiny chunks; 0 or unset: the default).
 */
#include <stdlib.h>

#include "convert/internal.h"

#define DENSE_CHUNK_MAX (64ull << 20)

typedef struct rows_job {
    vib3_cvt *c;
    const vib3_weight *w;
    vib3_dtype dt;
    uint8_t *out;       /* row r0 of the chunk */
    uint64_t r0, r1;    /* the chunk's rows */
    uint64_t row_bytes;
    uint64_t rows_per_task;
} rows_job;

static void rows_task(void *ctx, uint64_t index, uint32_t worker) {
    rows_job *j = ctx;
    float *tmp = j->c->scratch[worker];
    uint64_t a = j->r0 + index * j->rows_per_task, b = a + j->rows_per_task;
    if (b > j->r1) b = j->r1;
    for (uint64_t r = a; r < b; r++) {
        vib3_weight_row_f32(j->w, r, 0, j->w->cols, tmp);
        vib3_encode_row(j->dt, tmp, j->w->cols, j->out + (r - j->r0) * j->row_bytes);
    }
}

static void encode_rows(rows_job *j, uint64_t r0, uint64_t r1) {
    j->r0 = r0;
    j->r1 = r1;
    vib3_par_for(j->c->par, (r1 - r0 + j->rows_per_task - 1) / j->rows_per_task, rows_task, j);
}

/* rows per chunk: the encoded rows and their source rows within the chunk budget */
static uint64_t chunk_rows(const vib3_cvt *c, const vib3_weight *w, uint64_t row_bytes) {
    uint64_t cap = c->budget_bytes / 4;
    if (cap > DENSE_CHUNK_MAX) cap = DENSE_CHUNK_MAX;
    const char *env = getenv("VIB3_CONVERT_DENSE_CHUNK");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == 0 && v > 0) cap = v;
    }
    uint64_t per_row = row_bytes + vib3_weight_row_source_bytes(w);
    uint64_t n = cap / per_row;
    if (n < 1) n = 1;
    return n < w->rows ? n : w->rows;
}

vib3_err vib3_cvt_put_dense(vib3_cvt *c, const vib3_weight *w, const char *name, vib3_dtype dt, bool vector) {
    if ((dt == VIB3_DTYPE_Q4_0 || dt == VIB3_DTYPE_Q8_0) && w->cols % VIB3_QBLOCK) dt = VIB3_DTYPE_F16;
    if (c->expert_dt == VIB3_DTYPE_F32 && dt != VIB3_DTYPE_F32) dt = VIB3_DTYPE_F32;
    uint64_t row_bytes = vib3_dtype_row_bytes(dt, w->cols);
    if (!row_bytes || !w->rows || w->rows > UINT64_MAX / row_bytes)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: tensor %s: (%llu, %llu) cannot be stored as %s", c->o->model_path,
                            w->name, (unsigned long long)w->rows, (unsigned long long)w->cols, vib3_dtype_name(dt));
    if (w->cols > c->scratch_floats)
        return vib3_err_set(VIB3_ERR_INTERNAL, "tensor %s: row of %llu over scratch", w->name, (unsigned long long)w->cols);
    uint64_t bytes = row_bytes * w->rows;
    uint64_t dims[2];
    uint32_t nd;
    if (vector) {
        dims[0] = w->rows * w->cols;
        nd = 1;
    } else {
        dims[0] = w->rows;
        dims[1] = w->cols;
        nd = 2;
    }
    uint64_t n = chunk_rows(c, w, row_bytes);
    uint8_t *buf = malloc(n * row_bytes);
    if (!buf) return vib3_err_set(VIB3_ERR_NOMEM, "tensor %s: %llu bytes", w->name, (unsigned long long)(n * row_bytes));
    rows_job j = {c, w, dt, buf, 0, 0, row_bytes, 1 + (1u << 16) / (w->cols + 1)};
    vib3_err e;
    if (n == w->rows) { /* fits in one chunk: the one-shot path */
        encode_rows(&j, 0, w->rows);
        e = vib3_writer_add_tensor(&c->w, name, dt, nd, dims, buf, bytes);
    } else {
        /* a vector is one row: only matrices reach here, dims as for add_tensor */
        uint64_t src_row = vib3_weight_row_source_bytes(w), shown = 0;
        e = vib3_writer_tensor_begin(&c->w, name, dt, nd, dims);
        for (uint64_t r0 = 0; !e && r0 < w->rows; r0 += n) {
            uint64_t r1 = r0 + n < w->rows ? r0 + n : w->rows;
            encode_rows(&j, r0, r1);
            e = vib3_writer_tensor_append(&c->w, buf, r1 - r0);
            vib3_weight_release_rows(w, r0, r1);
            c->bytes_done += (r1 - r0) * src_row; /* progress inside the tensor; the caller counts it whole */
            shown += (r1 - r0) * src_row;
            vib3_cvt_progress(c, name, false);
        }
        c->bytes_done -= shown;
        if (!e) e = vib3_writer_tensor_end(&c->w);
    }
    free(buf);
    if (!e) c->dense_bytes_out += bytes;
    return e;
}
