#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Errors are one line: names taken from hostile files may carry control characters.
static void one_line(char *msg) {
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

mm_status mm_errf(mm_err *e, mm_status code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
        one_line(e->msg);
    }
    return code;
}

mm_status mm_err_prefix(mm_err *e, const char *fmt, ...) {
    if (!e)
        return MM_ERR_ARG;
    char prefix[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t pl = strnlen(prefix, sizeof e->msg - 3);
    memcpy(e->msg, prefix, pl);
    memcpy(e->msg + pl, ": ", 2);
    size_t room = sizeof e->msg - pl - 3, ol = strnlen(old, room);
    memcpy(e->msg + pl + 2, old, ol);
    e->msg[pl + 2 + ol] = 0;
    one_line(e->msg);
    return e->code;
}

const char *mm_status_name(mm_status s) {
    switch (s) {
    case MM_OK: return "ok";
    case MM_ERR_IO: return "io";
    case MM_ERR_FORMAT: return "format";
    case MM_ERR_ARG: return "argument";
    case MM_ERR_NOMEM: return "memory";
    case MM_ERR_UNSUPPORTED: return "unsupported";
    case MM_ERR_CANCELLED: return "cancelled";
    }
    return "unknown";
}

void *mm_alloc_at(mm_err *e, size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p)
        mm_errf(e, MM_ERR_NOMEM, "out of memory allocating %zu bytes (%s:%d)", n, file, line);
    return p;
}

void *mm_calloc_at(mm_err *e, size_t n, const char *file, int line) {
    void *p = calloc(1, n ? n : 1);
    if (!p)
        mm_errf(e, MM_ERR_NOMEM, "out of memory allocating %zu bytes (%s:%d)", n, file, line);
    return p;
}
