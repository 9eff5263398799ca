// Read-only ZIP archives (the container of torch.save files): central directory, ZIP64, stored and
// deflated members. Stored members are returned as pointers into the mapping (zero copy).
//
// Why our own reader on zlib rather than libzip: torch checkpoints are mmap-ed and their tensor data is
// used in place; that needs each stored member's byte offset in the file, which libzip does not expose
// (it only streams through zip_fread into caller buffers, i.e. a 5 GB copy). The part of ZIP a torch file
// uses (one disk, stored or deflated, optional ZIP64, no encryption) is a few hundred lines, and every
// size and offset in it is checked against the file length here before use.
#ifndef MM_ZIP_H
#define MM_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "io/file.h"

typedef struct {
    char *name;          // NUL-terminated member name
    uint64_t comp_size;  // bytes in the archive
    uint64_t size;       // bytes once extracted
    uint64_t local_off;  // offset of the local header
    uint64_t data_off;   // offset of the member's (compressed) bytes, resolved from the local header
    uint32_t crc;
    uint16_t method;     // 0 stored, 8 deflated
} mm_zip_entry;

typedef struct {
    mm_map map;          // owned mapping (mm_zip_open) or borrowed bytes (mm_zip_open_mem)
    int owns_map;
    char *label;         // the path (or label) used in error messages
    int n;               // members, sorted by name
    mm_zip_entry *entries;
} mm_zip;

// Maps path and reads its central directory; every entry's local header and data range is validated
// (inside the file, supported method, names unique and free of NUL). On error z is left closed.
mm_status mm_zip_open(mm_zip *z, const char *path, mm_err *e);
// Same over caller-owned bytes that must outlive z; label names them in errors.
mm_status mm_zip_open_mem(mm_zip *z, const uint8_t *data, size_t len, const char *label, mm_err *e);
// True when the bytes start like a ZIP archive (local header or empty-archive signature).
int mm_zip_sniff(const uint8_t *data, size_t len);
// Finds a member by exact name; NULL if absent.
const mm_zip_entry *mm_zip_find(const mm_zip *z, const char *name);
// Gives a member's bytes: stored members point into the mapping (*owned = NULL); deflated members are
// inflated into a new buffer returned in both *data and *owned (caller frees *owned). CRC is checked
// for deflated members always and for stored ones when verify_crc is set.
mm_status mm_zip_read(const mm_zip *z, const mm_zip_entry *en, int verify_crc, const uint8_t **data,
                      uint8_t **owned, mm_err *e);
void mm_zip_close(mm_zip *z);

#endif
