/* writer.c — streaming .vib3 writer (see writer.h).
 *
 * Layout written: 4 KiB header area (header written last), data appended in
 * call order (tensors 64-aligned, pages 4096-aligned), then the sections
 * given by the caller (8-aligned) plus CONF / TDIR / PTAB, then the section
 * table. Before the rename the temp file is re-opened with the validating
 * reader: a file that would not load is never renamed into place.
 * A streamed tensor (tensor_begin/append/end) is hashed with the streaming
 * form of the same xxh3 as add_tensor's one-shot hash, so both give the same
 * bytes; its directory entry is counted only at tensor_end, so a tensor cut
 * off by an error is never in the directory (and the error is sticky).
 */
#include "format/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/fault.h"
#include "format/reader.h"
#include "vendor/vib3_xxhash.h"

static vib3_err sticky(vib3_writer *w) {
    return vib3_err_set(w->failed, "%s", w->failed_msg);
}

static vib3_err fail(vib3_writer *w, vib3_err rc) {
    w->failed = rc;
    snprintf(w->failed_msg, sizeof w->failed_msg, "%s", vib3_err_msg());
    return rc;
}

static vib3_err write_all(vib3_writer *w, const void *data, uint64_t n) {
    const uint8_t *p = data;
    if (w->failed) return sticky(w);
    while (n > 0) {
        if (vib3_fault_hit(VIB3_FAULT_WRITE)) {
            errno = EIO;
            return fail(w, vib3_err_set(VIB3_ERR_IO, "%s: write at offset %llu failed: %s (injected fault)",
                                        w->tmp_path, (unsigned long long)w->offset, strerror(errno)));
        }
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t k = write(w->fd, p, chunk);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return fail(w, vib3_err_set(VIB3_ERR_IO, "%s: write at offset %llu failed: %s", w->tmp_path,
                                        (unsigned long long)w->offset, k < 0 ? strerror(errno) : "no progress"));
        p += k;
        n -= (uint64_t)k;
        w->offset += (uint64_t)k;
    }
    return VIB3_OK;
}

static vib3_err pad_to(vib3_writer *w, uint64_t align) {
    static const uint8_t zeros[4096];
    uint64_t target = (w->offset + align - 1) / align * align;
    while (w->offset < target) {
        uint64_t n = target - w->offset;
        if (n > sizeof zeros) n = sizeof zeros;
        vib3_err rc = write_all(w, zeros, n);
        if (rc) return rc;
    }
    return VIB3_OK;
}

vib3_err vib3_writer_open(vib3_writer *w, const char *path) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    if (strlen(path) >= sizeof w->path) return vib3_err_set(VIB3_ERR_INVALID, "%s: path too long", path);
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp", path);
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) return vib3_err_set(VIB3_ERR_IO, "%s: cannot create: %s", w->tmp_path, strerror(errno));
    static const uint8_t header_area[VIB3_DATA_OFFSET]; /* the header is written over it by finish() */
    vib3_err rc = write_all(w, header_area, sizeof header_area);
    if (rc) vib3_writer_abort(w);
    return rc;
}

void vib3_writer_set_config(vib3_writer *w, const vib3_model_config *c) {
    w->config = *c;
    w->have_config = 1;
}

static int grow(void **arr, uint64_t *cap, uint64_t need, size_t elem) {
    if (need <= *cap) return 0;
    uint64_t n = *cap ? *cap * 2 : 256;
    while (n < need) n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p) return -1;
    *arr = p;
    *cap = n;
    return 0;
}

/* checks shared by add_tensor and tensor_begin; rows (product of the leading
 * dims) and the bytes of one row of the last dim come back */
static vib3_err check_tensor(vib3_writer *w, const char *name, vib3_dtype dtype, uint32_t n_dims, const uint64_t *dims,
                             uint64_t *rows_out, uint64_t *row_bytes_out) {
    if (w->tensor_open)
        return vib3_err_set(VIB3_ERR_INTERNAL, "%s: tensor %s given while tensor %s is still open", w->path, name,
                            w->tensors[w->n_tensors].name);
    if (strlen(name) == 0 || strlen(name) >= VIB3_TENSOR_NAME_BYTES)
        return vib3_err_set(VIB3_ERR_INVALID, "%s: tensor name '%s' must be 1..%u bytes", w->path, name,
                            VIB3_TENSOR_NAME_BYTES - 1);
    if ((unsigned)dtype >= VIB3_DTYPE_COUNT_ || n_dims < 1 || n_dims > VIB3_MAX_DIMS)
        return vib3_err_set(VIB3_ERR_INVALID, "%s: tensor %s: dtype %u / n_dims %u invalid", w->path, name,
                            (unsigned)dtype, n_dims);
    uint64_t rows = 1;
    for (uint32_t i = 0; i + 1 < n_dims; i++) {
        if (dims[i] && rows > UINT64_MAX / dims[i])
            return vib3_err_set(VIB3_ERR_INVALID, "%s: tensor %s: dims overflow", w->path, name);
        rows *= dims[i];
    }
    uint64_t row_bytes = vib3_dtype_row_bytes(dtype, dims[n_dims - 1]);
    if (row_bytes && rows > UINT64_MAX / row_bytes)
        return vib3_err_set(VIB3_ERR_INVALID, "%s: tensor %s: dims overflow", w->path, name);
    *rows_out = rows;
    *row_bytes_out = row_bytes;
    if (w->n_tensors >= VIB3_MAX_TENSORS)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: more than %u tensors", w->path, VIB3_MAX_TENSORS);
    return VIB3_OK;
}

/* aligns the file and fills the next directory entry (not yet counted) */
static vib3_err start_entry(vib3_writer *w, const char *name, vib3_dtype dtype, uint32_t n_dims, const uint64_t *dims,
                            uint64_t bytes) {
    uint64_t cap = w->cap_tensors;
    if (grow((void **)&w->tensors, &cap, (uint64_t)w->n_tensors + 1, sizeof(vib3_tensor_entry)))
        return vib3_err_set(VIB3_ERR_NOMEM, "%s: tensor directory", w->path);
    w->cap_tensors = (uint32_t)cap;
    vib3_err rc = pad_to(w, VIB3_TENSOR_ALIGN);
    if (rc) return rc;
    vib3_tensor_entry *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, strlen(name));
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (uint32_t i = 0; i < n_dims; i++) t->dims[i] = dims[i];
    t->offset = w->offset;
    t->bytes = bytes;
    return VIB3_OK;
}

vib3_err vib3_writer_add_tensor(vib3_writer *w, const char *name, vib3_dtype dtype, uint32_t n_dims,
                                const uint64_t *dims, const void *data, uint64_t bytes) {
    uint64_t rows = 0, row_bytes = 0;
    vib3_err rc = check_tensor(w, name, dtype, n_dims, dims, &rows, &row_bytes);
    if (rc) return rc;
    uint64_t expect = rows * row_bytes;
    if (expect != bytes || bytes == 0)
        return vib3_err_set(VIB3_ERR_INVALID, "%s: tensor %s: %llu bytes given, %s shape needs %llu", w->path, name,
                            (unsigned long long)bytes, vib3_dtype_name(dtype), (unsigned long long)expect);
    if ((rc = start_entry(w, name, dtype, n_dims, dims, bytes))) return rc;
    w->tensors[w->n_tensors].checksum = vib3_xxh3_64(data, bytes);
    if ((rc = write_all(w, data, bytes))) return rc;
    w->n_tensors++;
    return VIB3_OK;
}

vib3_err vib3_writer_tensor_begin(vib3_writer *w, const char *name, vib3_dtype dtype, uint32_t n_dims,
                                  const uint64_t *dims) {
    if (w->failed) return sticky(w);
    uint64_t rows = 0, row_bytes = 0;
    vib3_err rc = check_tensor(w, name, dtype, n_dims, dims, &rows, &row_bytes);
    if (rc) return rc;
    if (rows == 0 || row_bytes == 0)
        return vib3_err_set(VIB3_ERR_INVALID, "%s: tensor %s: empty or not whole %s blocks (last dim %llu)", w->path,
                            name, vib3_dtype_name(dtype), (unsigned long long)dims[n_dims - 1]);
    if ((rc = start_entry(w, name, dtype, n_dims, dims, rows * row_bytes))) return rc;
    vib3_xxh3_reset(&w->tensor_hash);
    w->tensor_open = 1;
    w->tensor_row_bytes = row_bytes;
    w->tensor_rows = rows;
    w->tensor_rows_done = 0;
    return VIB3_OK;
}

vib3_err vib3_writer_tensor_append(vib3_writer *w, const void *rows, uint64_t n_rows) {
    if (w->failed) return sticky(w);
    if (!w->tensor_open) return vib3_err_set(VIB3_ERR_INTERNAL, "%s: tensor_append without tensor_begin", w->path);
    const vib3_tensor_entry *t = &w->tensors[w->n_tensors];
    if (n_rows > w->tensor_rows - w->tensor_rows_done)
        return fail(w, vib3_err_set(VIB3_ERR_INVALID, "%s: tensor %s: %llu rows appended after %llu of %llu", w->path,
                                    t->name, (unsigned long long)n_rows, (unsigned long long)w->tensor_rows_done,
                                    (unsigned long long)w->tensor_rows));
    uint64_t bytes = n_rows * w->tensor_row_bytes;
    vib3_xxh3_update(&w->tensor_hash, rows, bytes);
    vib3_err rc = write_all(w, rows, bytes);
    if (rc) return rc;
    w->tensor_rows_done += n_rows;
    return VIB3_OK;
}

vib3_err vib3_writer_tensor_end(vib3_writer *w) {
    if (w->failed) return sticky(w);
    if (!w->tensor_open) return vib3_err_set(VIB3_ERR_INTERNAL, "%s: tensor_end without tensor_begin", w->path);
    vib3_tensor_entry *t = &w->tensors[w->n_tensors];
    if (w->tensor_rows_done != w->tensor_rows)
        return fail(w, vib3_err_set(VIB3_ERR_INVALID, "%s: tensor %s ended after %llu of its %llu rows", w->path,
                                    t->name, (unsigned long long)w->tensor_rows_done,
                                    (unsigned long long)w->tensor_rows));
    t->checksum = vib3_xxh3_digest(&w->tensor_hash);
    w->tensor_open = 0;
    w->n_tensors++;
    return VIB3_OK;
}

static vib3_err no_open_tensor(vib3_writer *w, const char *what) {
    if (!w->tensor_open) return VIB3_OK;
    return vib3_err_set(VIB3_ERR_INTERNAL, "%s: %s while tensor %s is still open", w->path, what,
                        w->tensors[w->n_tensors].name);
}

vib3_err vib3_writer_add_page(vib3_writer *w, const vib3_page_entry *meta, const void *data, uint64_t bytes) {
    vib3_err busy = no_open_tensor(w, "add_page");
    if (busy) return busy;
    if (!w->have_config) return vib3_err_set(VIB3_ERR_INTERNAL, "%s: add_page before set_config", w->path);
    uint64_t expect = vib3_page_bytes(meta->dtype, w->config.hidden_size, meta->n_neurons);
    if (expect == 0 || expect != bytes)
        return vib3_err_set(VIB3_ERR_INVALID, "%s: page layer %u expert %u: %llu bytes given, %u neurons of %s need %llu",
                            w->path, meta->layer, meta->expert, (unsigned long long)bytes, meta->n_neurons,
                            vib3_dtype_name(meta->dtype), (unsigned long long)expect);
    if (grow((void **)&w->pages, &w->cap_pages, w->n_pages + 1, sizeof(vib3_page_entry)))
        return vib3_err_set(VIB3_ERR_NOMEM, "%s: page table", w->path);
    vib3_err rc = pad_to(w, VIB3_PAGE_ALIGN);
    if (rc) return rc;
    vib3_page_entry *p = &w->pages[w->n_pages];
    *p = *meta;
    memset(p->reserved, 0, sizeof p->reserved);
    p->offset = w->offset;
    p->bytes = bytes;
    p->checksum = vib3_xxh3_64(data, bytes);
    if ((rc = write_all(w, data, bytes))) return rc;
    w->n_pages++;
    return VIB3_OK;
}

vib3_err vib3_writer_section_begin(vib3_writer *w, uint32_t tag, uint32_t flags, uint64_t count) {
    vib3_err busy = no_open_tensor(w, "section_begin");
    if (busy) return busy;
    if (w->n_sections >= VIB3_MAX_SECTIONS - 3)
        return vib3_err_set(VIB3_ERR_LIMIT, "%s: too many sections", w->path);
    for (uint32_t i = 0; i < w->n_sections; i++)
        if (w->sections[i].tag == tag) return vib3_err_set(VIB3_ERR_INVALID, "%s: section %.4s written twice", w->path, (const char *)&tag);
    vib3_err rc = pad_to(w, VIB3_SECTION_ALIGN);
    if (rc) return rc;
    struct vib3_writer_section *s = &w->sections[w->n_sections];
    memset(s, 0, sizeof *s);
    s->tag = tag;
    s->flags = flags;
    s->count = count;
    s->offset = w->offset;
    vib3_xxh3_reset(&w->section_hash);
    return VIB3_OK;
}

vib3_err vib3_writer_section_append(vib3_writer *w, const void *data, uint64_t bytes) {
    vib3_xxh3_update(&w->section_hash, data, bytes);
    return write_all(w, data, bytes);
}

vib3_err vib3_writer_section_end(vib3_writer *w) {
    if (w->failed) return sticky(w);
    struct vib3_writer_section *s = &w->sections[w->n_sections];
    s->bytes = w->offset - s->offset;
    s->checksum = vib3_xxh3_digest(&w->section_hash);
    w->n_sections++;
    return VIB3_OK;
}

vib3_err vib3_writer_add_section(vib3_writer *w, uint32_t tag, uint32_t flags, uint64_t count, const void *data,
                                 uint64_t bytes) {
    vib3_err rc = vib3_writer_section_begin(w, tag, flags, count);
    if (!rc) rc = vib3_writer_section_append(w, data, bytes);
    if (!rc) rc = vib3_writer_section_end(w);
    return rc;
}

static vib3_err write_tables(vib3_writer *w) {
    vib3_err rc;
    if ((rc = vib3_writer_add_section(w, VIB3_SEC_CONFIG, 0, 1, &w->config, sizeof w->config))) return rc;
    if ((rc = vib3_writer_add_section(w, VIB3_SEC_TENSORS, 0, w->n_tensors, w->tensors,
                                      (uint64_t)w->n_tensors * sizeof(vib3_tensor_entry))))
        return rc;
    if ((rc = vib3_writer_add_section(w, VIB3_SEC_PAGES, 0, w->n_pages, w->pages,
                                      w->n_pages * sizeof(vib3_page_entry))))
        return rc;
    if ((rc = pad_to(w, VIB3_SECTION_ALIGN))) return rc;

    vib3_section_entry table[VIB3_MAX_SECTIONS];
    memset(table, 0, sizeof table);
    for (uint32_t i = 0; i < w->n_sections; i++) {
        table[i].tag = w->sections[i].tag;
        table[i].version = 1;
        table[i].offset = w->sections[i].offset;
        table[i].bytes = w->sections[i].bytes;
        table[i].checksum = w->sections[i].checksum;
        table[i].count = w->sections[i].count;
        table[i].flags = w->sections[i].flags;
    }
    uint64_t table_offset = w->offset;
    uint64_t table_bytes = (uint64_t)w->n_sections * sizeof(vib3_section_entry);
    if ((rc = write_all(w, table, table_bytes))) return rc;

    vib3_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, VIB3_MAGIC, 8);
    h.version = VIB3_FORMAT_VERSION;
    h.file_size = w->offset;
    h.section_table_offset = table_offset;
    h.section_count = w->n_sections;
    h.header_bytes = sizeof h;
    h.section_table_checksum = vib3_xxh3_64(table, table_bytes);
    h.header_checksum = vib3_xxh3_64(&h, offsetof(vib3_header, header_checksum));
    if (vib3_fault_hit(VIB3_FAULT_WRITE) || pwrite(w->fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        return vib3_err_set(VIB3_ERR_IO, "%s: writing the header failed: %s", w->tmp_path, strerror(errno ? errno : EIO));
    return VIB3_OK;
}

static void free_tables(vib3_writer *w) {
    free(w->tensors);
    free(w->pages);
    w->tensors = NULL;
    w->pages = NULL;
}

vib3_err vib3_writer_finish(vib3_writer *w) {
    vib3_err rc = w->failed ? sticky(w) : no_open_tensor(w, "finish");
    if (!rc && !w->have_config) rc = vib3_err_set(VIB3_ERR_INTERNAL, "%s: finish without a config", w->path);
    if (!rc) rc = write_tables(w);
    if (!rc && fsync(w->fd) != 0) rc = vib3_err_set(VIB3_ERR_IO, "%s: fsync failed: %s", w->tmp_path, strerror(errno));
    if (w->fd >= 0 && close(w->fd) != 0 && !rc)
        rc = vib3_err_set(VIB3_ERR_IO, "%s: close failed: %s", w->tmp_path, strerror(errno));
    w->fd = -1;
    if (!rc) {
        /* paired assertion: what we wrote must load with the validating reader */
        vib3_arena arena;
        rc = vib3_arena_init(&arena, 64u << 20 > w->n_pages * 32 + (1u << 20) ? 64u << 20 : w->n_pages * 32 + (1u << 20),
                             "writer-check", 0);
        if (!rc) {
            vib3_file f;
            rc = vib3_file_open(&f, w->tmp_path, &arena, 0);
            if (!rc) vib3_file_close(&f);
            else vib3_err_prefix("%s: written file fails validation", w->tmp_path);
            vib3_arena_fini(&arena);
        }
    }
    if (!rc && rename(w->tmp_path, w->path) != 0)
        rc = vib3_err_set(VIB3_ERR_IO, "%s: rename to %s failed: %s", w->tmp_path, w->path, strerror(errno));
    if (!rc) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", w->path);
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    if (rc) unlink(w->tmp_path);
    free_tables(w);
    return rc;
}

void vib3_writer_abort(vib3_writer *w) {
    w->tensor_open = 0;
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->tmp_path[0]) unlink(w->tmp_path);
    free_tables(w);
}
