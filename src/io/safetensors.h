// Hugging Face safetensors: single files, directories of shards, and sharded sets described by
// model.safetensors.index.json. Files are mmap-ed; tensor data is used in place.
#ifndef MM_SAFETENSORS_H
#define MM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/err.h"
#include "io/file.h"

#define MM_ST_MAX_DIMS 8

typedef struct {
    char *name;
    mm_dtype dtype;
    int ndim;
    int64_t shape[MM_ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data; // points into the file mapping
    size_t nbytes;
    int file;            // index into the set's files
} mm_st_tensor;

typedef struct {
    int n_files;
    char **paths;
    mm_map *maps;
    int n;               // tensors
    mm_st_tensor *tensors;
    int32_t *index;      // open-addressing hash of tensor names (cap entries, -1 = empty)
    int32_t cap;
    int borrowed;        // st_open_mem: the bytes belong to the caller
} mm_st;

// Opens PATH: a .safetensors file, a model.safetensors.index.json, or a directory (its index file if
// present, else every *.safetensors in it, sorted). Headers are validated (offsets in bounds, sizes
// consistent with dtype and shape, no overlaps, no duplicate names).
mm_status st_open(mm_st *st, const char *path, mm_err *e);
// Parses one safetensors image in memory (fuzzing, tests); the caller keeps data alive until st_close.
mm_status st_open_mem(mm_st *st, const uint8_t *data, size_t len, const char *label, mm_err *e);
// Adds one more .safetensors file to an open set (names must not repeat).
mm_status st_add_file(mm_st *st, const char *path, mm_err *e);
// Finds a tensor by exact name; NULL if absent.
const mm_st_tensor *st_find(const mm_st *st, const char *name);
void st_close(mm_st *st);

// A tensor to write: name, dtype, shape and its bytes.
typedef struct {
    const char *name;
    mm_dtype dtype;
    int ndim;
    int64_t shape[MM_ST_MAX_DIMS];
    const void *data;
} mm_st_write_tensor;

// Writes tensors (in the given order, 8-byte aligned data) atomically to path; metadata may be NULL or
// an array of n_meta key/value string pairs for "__metadata__".
mm_status st_write(const char *path, const mm_st_write_tensor *t, int n, const char *const *meta_kv, int n_meta,
                   mm_err *e);

#endif
