// Whole-file reads, read-only mappings and atomic writes (temporary name, fsync, rename).
#ifndef MM_FILE_H
#define MM_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

// Reads the whole file into a new buffer (NUL-terminated for convenience; *len excludes the NUL).
mm_status mm_read_file(const char *path, uint8_t **data, size_t *len, mm_err *e);

// Whether path exists (any kind); with regular_only, only a regular file counts.
int mm_file_exists(const char *path, int regular_only);

// A read-only mapping of a whole file.
typedef struct {
    const uint8_t *data;
    size_t len;
} mm_map;
mm_status mm_map_open(mm_map *m, const char *path, mm_err *e);
void mm_map_close(mm_map *m);

// Writes a file atomically: data goes to "path.tmp.PID", is fsync-ed, then renamed over path.
mm_status mm_write_file_atomic(const char *path, const void *data, size_t len, mm_err *e);

// Streaming atomic writer for large outputs: open, write pieces, commit (or abort on error).
typedef struct mm_atomic_file mm_atomic_file;
mm_status mm_atomic_open(mm_atomic_file **f, const char *path, mm_err *e);
mm_status mm_atomic_write(mm_atomic_file *f, const void *data, size_t len, mm_err *e);
mm_status mm_atomic_commit(mm_atomic_file *f, mm_err *e); // fsync + rename; frees f
void mm_atomic_abort(mm_atomic_file *f);                  // removes the temporary; frees f

#endif
