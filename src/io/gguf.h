// GGUF version 3 (the single-file format of llama.cpp): a header of typed key/value metadata and
// tensor descriptions, then aligned tensor data. Reading maps the file copy-on-write and validates
// every count, length, type, shape and offset against the file before anything uses them; tensor
// data is used in place. Writing streams tensors (a callback produces each one's bytes) to a
// temporary file that is fsync-ed and renamed.
#ifndef MM_GGUF_H
#define MM_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/err.h"

#define MM_GGUF_MAX_DIMS 4
#define MM_GGUF_ALIGN 64 // what mmgpt writes (the format's default is 32)

typedef enum {
    MM_GGUF_U8 = 0, MM_GGUF_I8, MM_GGUF_U16, MM_GGUF_I16, MM_GGUF_U32, MM_GGUF_I32, MM_GGUF_F32, MM_GGUF_BOOL,
    MM_GGUF_STRING, MM_GGUF_ARRAY, MM_GGUF_U64, MM_GGUF_I64, MM_GGUF_F64, MM_GGUF_TYPE_COUNT
} mm_gguf_type;

typedef struct {
    char *key;
    mm_gguf_type type;
    mm_gguf_type elem_type;  // arrays: the elements' type (never ARRAY: nested arrays are refused)
    uint64_t count;          // arrays: elements; strings: bytes
    const uint8_t *data;     // the value's bytes in the file (scalars, string bytes, array payload)
} mm_gguf_kv;

typedef struct {
    char *name;
    mm_dtype dtype;
    uint32_t ggml_type;
    int ndim;
    int64_t shape[MM_GGUF_MAX_DIMS]; // PyTorch order (outermost first): GGUF's ne[] reversed
    int64_t numel;
    const uint8_t *data;             // in the mapping, aligned to the file's alignment
    size_t nbytes;
} mm_gguf_tensor;

typedef struct mm_gguf_file {
    uint8_t *map;
    size_t map_len;
    size_t map_alloc; // gguf_open_resident: the memory's length (0: map is the file's mapping)
    uint32_t version;
    size_t alignment;
    int n_kv, n_tensors;
    mm_gguf_kv *kv;
    mm_gguf_tensor *tensors;
    int32_t *index; // open-addressing hash of tensor names
    int32_t cap;
} mm_gguf;

// True when the file starts with the GGUF magic.
int gguf_is_gguf(const char *path);
mm_status gguf_open(mm_gguf *g, const char *path, mm_err *e);
// As gguf_open, with the file read into memory of its own in 2 MB pages (base/bigmem.h) instead of
// mapped: a model's weights for inference (decoding streams them each token; 4 KB file pages cost
// up to a third of the bandwidth). Takes the file's size in memory at once.
mm_status gguf_open_resident(mm_gguf *g, const char *path, mm_err *e);
// Parses a GGUF image already in memory (fuzzing, tests); g borrows data (not freed by gguf_close).
mm_status gguf_parse(mm_gguf *g, const uint8_t *data, size_t len, const char *label, mm_err *e);
void gguf_close(mm_gguf *g);
const mm_gguf_kv *gguf_find_kv(const mm_gguf *g, const char *key);
const mm_gguf_tensor *gguf_find_tensor(const mm_gguf *g, const char *name);
// Typed reads of a key; they fail (naming the key) when it is absent or of another type.
mm_status gguf_get_str(const mm_gguf *g, const char *key, const char **s, size_t *len, mm_err *e);
mm_status gguf_get_u8_array(const mm_gguf *g, const char *key, const uint8_t **data, size_t *n, mm_err *e);
// Any integer-typed key as int64.
mm_status gguf_get_int(const mm_gguf *g, const char *key, int64_t *v, mm_err *e);
const char *gguf_type_name(mm_gguf_type t);
// Renders a value for display (scalars, strings shortened, arrays as "[type x N]").
void gguf_kv_format(const mm_gguf_kv *kv, char *out, size_t n);

// Writing: metadata is collected in a builder, then gguf_write streams the file.
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    uint64_t n;
    int failed; // out of memory while adding: gguf_write reports it
} mm_gguf_meta;

void gguf_meta_str(mm_gguf_meta *m, const char *key, const char *v);
void gguf_meta_u32(mm_gguf_meta *m, const char *key, uint32_t v);
void gguf_meta_i32(mm_gguf_meta *m, const char *key, int32_t v);
void gguf_meta_f32(mm_gguf_meta *m, const char *key, float v);
void gguf_meta_bool(mm_gguf_meta *m, const char *key, int v);
void gguf_meta_str_array(mm_gguf_meta *m, const char *key, const char *const *v, size_t n);
void gguf_meta_u8_array(mm_gguf_meta *m, const char *key, const uint8_t *v, size_t n);
void gguf_meta_free(mm_gguf_meta *m);

typedef struct {
    const char *name;
    mm_dtype dtype; // F32, F16, BF16, F64, I8, I16, I32, I64
    int ndim;
    int64_t shape[MM_GGUF_MAX_DIMS]; // PyTorch order
    const void *data;                // or NULL: the producer fills the bytes
} mm_gguf_wtensor;

// Fills dst (nbytes) with tensor i's data.
typedef mm_status (*mm_gguf_produce)(void *user, int i, void *dst, size_t nbytes, mm_err *e);
// Called after each tensor is written (done of total bytes).
typedef void (*mm_gguf_progress)(void *user, size_t done, size_t total);

// Writes a version-3 file with general.alignment = MM_GGUF_ALIGN added to the metadata.
mm_status gguf_write(const char *path, mm_gguf_meta *meta, const mm_gguf_wtensor *t, int n, mm_gguf_produce produce,
                     mm_gguf_progress progress, void *user, mm_err *e);

#endif
