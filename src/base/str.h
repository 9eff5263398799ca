// Small string helpers shared across layers.
#ifndef MM_STR_H
#define MM_STR_H

#include <string.h>

// 1 when s ends with suffix (every string ends with "").
static inline int str_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

#endif
