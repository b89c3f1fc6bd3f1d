/* reader.h — open and validate a .vib3 file (untrusted input).
 *
 * vib3_file_open() maps the file read-only and validates, before anything is
 * used: the header (magic, byte-swapped magic, version, flags, reserved bytes,
 * checksum, file size), the section table (bounds, alignment, overlaps,
 * duplicate tags, checksums), the config (every field against the limits in
 * vib3_format.h and against each other), every tensor entry (name, dtype,
 * dims, size product, bounds, alignment) and every page entry (layer, expert,
 * kind, neuron ranges, contiguity per expert, size, bounds, alignment), and
 * the sizes of SIGS/COAC against the page table and config. Any failure
 * returns VIB3_ERR_FORMAT / VIB3_ERR_CHECKSUM / VIB3_ERR_UNSUPPORTED with a
 * message naming the file, the field and the value.
 *
 * Tensor and page *data* checksums are not verified by open (a 500 GB model
 * would be read whole): vib3_file_verify_tensor()/vib3_file_verify_page() do
 * it when the data is loaded (storage/ for pages).
 *
 * Metadata stays zero-copy in the mapping; the per-expert page index is
 * allocated from the caller's arena.
 */
#ifndef VIB3_FORMAT_READER_H
#define VIB3_FORMAT_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "format/vib3_format.h"

typedef struct vib3_blob {
    const uint8_t *data;
    uint64_t bytes;
    uint32_t flags;   /* section flags (TOKN: vib3_tokenizer_kind) */
} vib3_blob;

typedef struct vib3_file {
    char path[1024];
    int fd;                         /* -1 for in-memory files */
    const uint8_t *map;             /* whole file */
    uint64_t file_size;
    bool owns_map;

    const vib3_header *header;
    const vib3_section_entry *sections;
    uint32_t n_sections;

    const vib3_model_config *config;
    const vib3_tensor_entry *tensors;
    uint32_t n_tensors;
    const vib3_page_entry *pages;
    uint64_t n_pages;

    const vib3_sig_header *sig;     /* NULL when absent */
    const void *sig_vectors;        /* count x dim of sig->dtype */
    const vib3_coact_header *coact; /* NULL when absent */
    const uint32_t *coact_freq;     /* [n_layers][n_experts] */
    const uint32_t *coact_trans;    /* [n_layers-1][n_experts][n_experts] */
    const vib3_pred_header *pred;   /* look-ahead probes (PRED); NULL when absent */
    const vib3_pred_pair *pred_pairs; /* [pred->n_pairs] */
    const uint8_t *pred_data;       /* pair i's b at pred_data + i * pred_pair_bytes, W at + pred_w_offset */
    uint64_t pred_pair_bytes, pred_w_offset;
    vib3_blob hnsw, tokenizer, tokenizer_config, chat_template, metadata;

    /* per-slot page index: slot = expert (ROUTED), n_experts + s (SHARED),
     * or 0 (DENSE, only in dense layers); n_slots = max(n_experts,1) + n_shared */
    uint32_t n_slots;
    uint64_t *slot_first_page;      /* [n_layers][n_slots]; UINT64_MAX = none */
    uint32_t *slot_n_pages;         /* [n_layers][n_slots] */
    uint32_t *slot_n_neurons;       /* [n_layers][n_slots] total neurons in the slot */
    uint64_t expert_bytes_total;    /* sum of page bytes */
    uint64_t dense_bytes_total;     /* sum of tensor bytes */
} vib3_file;

enum {
    VIB3_OPEN_VERIFY_DATA = 1u << 0, /* also checksum every tensor and page at open */
};

vib3_err vib3_file_open(vib3_file *f, const char *path, vib3_arena *arena, unsigned flags);
/* validate an in-memory image (fuzzing, tests); buf must outlive f */
vib3_err vib3_file_open_mem(vib3_file *f, const void *buf, uint64_t bytes, const char *name,
                            vib3_arena *arena, unsigned flags);
void vib3_file_close(vib3_file *f);

const vib3_tensor_entry *vib3_file_find_tensor(const vib3_file *f, const char *name);
/* tensor data in the mapping (validated bounds) */
static inline const void *vib3_file_tensor_data(const vib3_file *f, const vib3_tensor_entry *t) {
    return f->map + t->offset;
}
vib3_err vib3_file_verify_tensor(const vib3_file *f, const vib3_tensor_entry *t);
vib3_err vib3_file_verify_page(const vib3_file *f, uint64_t page_index, const void *data);

/* slot index helpers (see n_slots) */
static inline uint32_t vib3_file_slot(const vib3_file *f, uint32_t kind, uint32_t expert) {
    uint32_t routed = f->config->n_experts ? f->config->n_experts : 1;
    return kind == 1 /* SHARED */ ? routed + expert : expert;
}
/* pages of (layer, slot): first index and count; false when the slot has none */
bool vib3_file_slot_pages(const vib3_file *f, uint32_t layer, uint32_t slot, uint64_t *first, uint32_t *count);
/* total and active-per-token parameter counts derived from the config */
void vib3_file_param_counts(const vib3_file *f, uint64_t *total, uint64_t *active);

#endif
