/* writer.h — streaming .vib3 writer: constant memory in the weight data.
 *
 * Data is appended as it comes (tensors 64-aligned, pages 4096-aligned) to
 * "<path>.tmp"; the small directories (tensor entries, page entries) are kept
 * in growable arrays (converter side, not the inference hot path), and
 * finish() appends the sections and the section table, writes the header
 * (asserting the checksums it wrote by re-reading), fsyncs and renames onto
 * <path>, then fsyncs the directory. abort() (or any failure) unlinks the
 * temp file: an interrupted conversion never leaves a file that looks valid.
 * VIB3_FAULT_WRITE injects write failures. A tensor may be given whole
 * (add_tensor) or streamed in rows (tensor_begin/append/end), so the
 * converter's memory does not grow with the largest dense tensor.
 */
#ifndef VIB3_FORMAT_WRITER_H
#define VIB3_FORMAT_WRITER_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "format/vib3_format.h"
#include "vendor/vib3_xxhash.h"

typedef struct vib3_writer {
    char path[1024];
    char tmp_path[1040];
    int fd;
    uint64_t offset;              /* next write position */
    vib3_model_config config;
    int have_config;
    vib3_tensor_entry *tensors;
    uint32_t n_tensors, cap_tensors;
    vib3_page_entry *pages;
    uint64_t n_pages, cap_pages;
    struct vib3_writer_section {
        uint32_t tag, flags;
        uint64_t offset, bytes, checksum, count;
    } sections[VIB3_MAX_SECTIONS];
    uint32_t n_sections;
    vib3_xxh3_state section_hash;  /* of the section being written */
    vib3_xxh3_state tensor_hash;   /* of the tensor being streamed */
    int tensor_open;               /* between tensor_begin and tensor_end */
    uint64_t tensor_row_bytes, tensor_rows, tensor_rows_done;
    vib3_err failed;               /* sticky: the first write error fails every later call */
    char failed_msg[512];
} vib3_writer;

vib3_err vib3_writer_open(vib3_writer *w, const char *path);
void vib3_writer_set_config(vib3_writer *w, const vib3_model_config *c);
/* dims in PyTorch order; bytes must equal the dtype size of the dims */
vib3_err vib3_writer_add_tensor(vib3_writer *w, const char *name, vib3_dtype dtype, uint32_t n_dims,
                                const uint64_t *dims, const void *data, uint64_t bytes);
/* The same tensor given in pieces, for tensors too large to hold at once:
 * begin checks name/dtype/dims and writes the alignment padding; append
 * writes n_rows whole rows (a row is the last dim; a 1-D tensor is one row)
 * while hashing them; end checks that every row came and records the entry.
 * The file is byte for byte what add_tensor writes for the same data (same
 * layout, same xxh3 checksum). While a tensor is open no other writer call
 * but append/end/abort is allowed; any failure is sticky, like a write error. */
vib3_err vib3_writer_tensor_begin(vib3_writer *w, const char *name, vib3_dtype dtype, uint32_t n_dims,
                                  const uint64_t *dims);
vib3_err vib3_writer_tensor_append(vib3_writer *w, const void *rows, uint64_t n_rows);
vib3_err vib3_writer_tensor_end(vib3_writer *w);
/* meta: layer, expert, kind, dtype, first_neuron, n_neurons filled by the caller;
 * offset, bytes, checksum are set here. Pages of one slot must be added in order. */
vib3_err vib3_writer_add_page(vib3_writer *w, const vib3_page_entry *meta, const void *data, uint64_t bytes);
/* opaque section (SIGS, HNSW, COAC, TOKN, TKCF, CHAT, META); may be given in pieces
 * with begin/append/end for large ones */
vib3_err vib3_writer_add_section(vib3_writer *w, uint32_t tag, uint32_t flags, uint64_t count,
                                 const void *data, uint64_t bytes);
vib3_err vib3_writer_section_begin(vib3_writer *w, uint32_t tag, uint32_t flags, uint64_t count);
vib3_err vib3_writer_section_append(vib3_writer *w, const void *data, uint64_t bytes);
vib3_err vib3_writer_section_end(vib3_writer *w);
vib3_err vib3_writer_finish(vib3_writer *w);
void vib3_writer_abort(vib3_writer *w);

#endif
