/* test_writer_stream.c — the writer's streamed tensors (tensor_begin/append/
 * end): byte for byte the file add_tensor writes for the same data, whatever
 * the piece sizes; a write fault anywhere inside a streamed tensor (or any
 * later write) leaves no file and no temp file; misuse (too many rows, too
 * few, another call while a tensor is open) fails, stays failed, and leaves
 * nothing behind. */
#include <unistd.h>

#include "core/fault.h"
#include "tests/format/fixture.h"
#include "tests/test.h"

static uint8_t *load(const char *p, uint64_t *n) {
    uint8_t *b = fixture_load(p, n);
    CHECK_MSG(b != NULL, "cannot read %s", p);
    return b;
}

static char *tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", vib3_test_tmpdir(), name);
    return buf;
}

TEST(streamed_tensors_byte_identical_to_whole) {
    char a[1100], b[1100];
    fixture_opts o = fixture_default;
    o.vocab = 37; /* an odd row count: the last piece is short */
    CHECK_OK(fixture_write_ex(tmp_path(a, sizeof a, "whole.vib3"), &o, 0));
    uint64_t na = 0;
    uint8_t *ia = load(a, &na);
    static const uint64_t pieces[] = {1, 2, 3, 5, 36, 37, 1000};
    for (size_t k = 0; ia && k < sizeof pieces / sizeof pieces[0]; k++) {
        CHECK_OK(fixture_write_ex(tmp_path(b, sizeof b, "streamed.vib3"), &o, pieces[k]));
        uint64_t nb = 0;
        uint8_t *ib = load(b, &nb);
        CHECK_MSG(ib && nb == na && memcmp(ia, ib, na) == 0, "%llu-row pieces: %llu vs %llu bytes, contents differ",
                  (unsigned long long)pieces[k], (unsigned long long)nb, (unsigned long long)na);
        free(ib);
    }
    /* and the streamed file passes the full data verification */
    vib3_arena ar;
    CHECK_OK(vib3_arena_init(&ar, 16u << 20, "test", 0));
    vib3_file f;
    CHECK_OK(vib3_file_open(&f, b, &ar, VIB3_OPEN_VERIFY_DATA));
    const vib3_tensor_entry *t = vib3_file_find_tensor(&f, "token_embd.weight");
    CHECK(t && t->dims[0] == 37 && t->bytes == 37ull * 64 * 4);
    vib3_file_close(&f);
    vib3_arena_fini(&ar);
    free(ia);
}

/* every write of a streamed conversion fails in turn: IO error, no file, no temp */
TEST(write_fault_inside_streamed_tensor_leaves_nothing) {
    char p[1100], t[1200];
    tmp_path(p, sizeof p, "failing-stream.vib3");
    snprintf(t, sizeof t, "%s.tmp", p);
    fixture_opts o = fixture_default;
    o.vocab = 40;
    /* writes 2..41 are token_embd's 40 one-row appends (1 is the header area) */
    int failures = 0, in_embd = 0;
    for (uint64_t n = 1; n < 600; n++) {
        vib3_fault_arm(VIB3_FAULT_WRITE, n, false);
        int rc = fixture_write_ex(p, &o, 1);
        uint64_t injected = vib3_fault_injected(VIB3_FAULT_WRITE);
        vib3_fault_disarm(VIB3_FAULT_WRITE);
        CHECK_MSG(access(t, F_OK) != 0, "write fault %llu left %s", (unsigned long long)n, t);
        if (injected == 0) {
            CHECK_OK(rc);
            break;
        }
        failures++;
        in_embd += n >= 2 && n <= 41;
        CHECK_MSG(rc == VIB3_ERR_IO, "write fault %llu: rc %d", (unsigned long long)n, rc);
        CHECK_MSG(access(p, F_OK) != 0, "write fault %llu left %s", (unsigned long long)n, p);
    }
    CHECK_EQ_U64(in_embd, 40);
    CHECK(failures > 50);
    CHECK(access(p, F_OK) == 0);
}

static void open_writer(vib3_writer *w, const char *p) {
    CHECK_OK(vib3_writer_open(w, p));
    vib3_model_config c;
    fixture_config(&fixture_default, &c);
    vib3_writer_set_config(w, &c);
}

/* a fault in the middle of a stream is sticky: later appends, end and finish fail, nothing is left */
TEST(stream_fault_is_sticky) {
    char p[1100], t[1200];
    tmp_path(p, sizeof p, "sticky.vib3");
    snprintf(t, sizeof t, "%s.tmp", p);
    vib3_writer w;
    open_writer(&w, p);
    float rows[4 * 64];
    for (int i = 0; i < 4 * 64; i++) rows[i] = (float)i;
    uint64_t dims[2] = {16, 64};
    CHECK_OK(vib3_writer_tensor_begin(&w, "token_embd.weight", VIB3_DTYPE_F32, 2, dims));
    CHECK_OK(vib3_writer_tensor_append(&w, rows, 4));
    vib3_fault_arm(VIB3_FAULT_WRITE, 1, false);
    CHECK(vib3_writer_tensor_append(&w, rows, 4) == VIB3_ERR_IO);
    vib3_fault_disarm(VIB3_FAULT_WRITE);
    CHECK(strstr(vib3_err_msg(), "injected") != NULL);
    CHECK(vib3_writer_tensor_append(&w, rows, 4) == VIB3_ERR_IO);
    CHECK(vib3_writer_tensor_end(&w) == VIB3_ERR_IO);
    CHECK(vib3_writer_finish(&w) == VIB3_ERR_IO);
    CHECK(access(p, F_OK) != 0);
    CHECK(access(t, F_OK) != 0);
}

TEST(stream_misuse_fails_and_leaves_nothing) {
    char p[1100], t[1200];
    tmp_path(p, sizeof p, "misuse.vib3");
    snprintf(t, sizeof t, "%s.tmp", p);
    float rows[8 * 64] = {0};
    uint64_t dims[2] = {8, 64};
    vib3_writer w;
    /* more rows than the shape */
    open_writer(&w, p);
    CHECK_OK(vib3_writer_tensor_begin(&w, "token_embd.weight", VIB3_DTYPE_F32, 2, dims));
    CHECK_OK(vib3_writer_tensor_append(&w, rows, 5));
    CHECK(vib3_writer_tensor_append(&w, rows, 4) == VIB3_ERR_INVALID);
    CHECK(strstr(vib3_err_msg(), "token_embd.weight") != NULL);
    CHECK(vib3_writer_tensor_end(&w) == VIB3_ERR_INVALID); /* sticky */
    CHECK(vib3_writer_finish(&w) == VIB3_ERR_INVALID);
    CHECK(access(p, F_OK) != 0 && access(t, F_OK) != 0);
    /* ended early */
    open_writer(&w, p);
    CHECK_OK(vib3_writer_tensor_begin(&w, "token_embd.weight", VIB3_DTYPE_F32, 2, dims));
    CHECK_OK(vib3_writer_tensor_append(&w, rows, 7));
    CHECK(vib3_writer_tensor_end(&w) == VIB3_ERR_INVALID);
    CHECK(strstr(vib3_err_msg(), "7 of its 8 rows") != NULL);
    CHECK(vib3_writer_finish(&w) == VIB3_ERR_INVALID);
    CHECK(access(p, F_OK) != 0 && access(t, F_OK) != 0);
    /* other calls while a tensor is open; finish with it open */
    open_writer(&w, p);
    CHECK_OK(vib3_writer_tensor_begin(&w, "token_embd.weight", VIB3_DTYPE_F32, 2, dims));
    CHECK(vib3_writer_add_tensor(&w, "x", VIB3_DTYPE_F32, 2, dims, rows, sizeof rows) == VIB3_ERR_INTERNAL);
    CHECK(vib3_writer_tensor_begin(&w, "x", VIB3_DTYPE_F32, 2, dims) == VIB3_ERR_INTERNAL);
    CHECK(vib3_writer_section_begin(&w, VIB3_SEC_METADATA, 0, 0) == VIB3_ERR_INTERNAL);
    CHECK(vib3_writer_finish(&w) == VIB3_ERR_INTERNAL);
    CHECK(strstr(vib3_err_msg(), "still open") != NULL);
    CHECK(access(p, F_OK) != 0 && access(t, F_OK) != 0);
    /* bad shapes at begin; append / end without begin */
    open_writer(&w, p);
    uint64_t q[2] = {8, 33};
    CHECK(vib3_writer_tensor_begin(&w, "q", VIB3_DTYPE_Q8_0, 2, q) == VIB3_ERR_INVALID);
    uint64_t z[2] = {0, 64};
    CHECK(vib3_writer_tensor_begin(&w, "z", VIB3_DTYPE_F32, 2, z) == VIB3_ERR_INVALID);
    CHECK(vib3_writer_tensor_append(&w, rows, 1) == VIB3_ERR_INTERNAL);
    CHECK(vib3_writer_tensor_end(&w) == VIB3_ERR_INTERNAL);
    vib3_writer_abort(&w);
    CHECK(access(p, F_OK) != 0 && access(t, F_OK) != 0);
}
