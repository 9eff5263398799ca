// Errors as values: library functions return mm_status and fill an mm_err with one line naming
// the file, offset, tensor or JSON path. Only src/cli/ prints and exits.
#ifndef MM_ERR_H
#define MM_ERR_H

#include <stddef.h>

typedef enum {
    MM_OK = 0,
    MM_ERR_IO,          // a file could not be opened, read or written
    MM_ERR_FORMAT,      // a file or message is malformed
    MM_ERR_ARG,         // a caller passed an invalid value (shape, flag, count)
    MM_ERR_NOMEM,       // an allocation failed or a limit was exceeded
    MM_ERR_UNSUPPORTED, // valid input that this build does not handle
    MM_ERR_CANCELLED,   // the caller asked to stop
} mm_status;

typedef struct {
    mm_status code;
    char msg[512];
} mm_err;

// Sets e (if non-NULL) to code and a printf-formatted message; returns code.
mm_status mm_errf(mm_err *e, mm_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// Prepends "prefix: " to an existing message (for adding context on the way up); returns e->code.
mm_status mm_err_prefix(mm_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// A short name for a status ("io", "format", ...).
const char *mm_status_name(mm_status s);

// Propagate a non-OK status to the caller.
#define MM_TRY(expr)                  \
    do {                              \
        mm_status mm_try_s_ = (expr); \
        if (mm_try_s_ != MM_OK)       \
            return mm_try_s_;         \
    } while (0)

// Checked allocation: on failure fills e with the size and call site and returns NULL.
#define mm_alloc(e, n) mm_alloc_at((e), (n), __FILE__, __LINE__)
#define mm_calloc(e, n) mm_calloc_at((e), (n), __FILE__, __LINE__)
void *mm_alloc_at(mm_err *e, size_t n, const char *file, int line);
void *mm_calloc_at(mm_err *e, size_t n, const char *file, int line);

#endif
