// Anonymous mappings rounded to 2 MB and aligned to it, so every full 2 MB of a buffer can be one page.
#include "base/bigmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer the heap, whose bounds it checks (a mapping's slack would hide overruns).
void *mm_big_alloc(size_t n, size_t *len) {
    size_t cap = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, cap ? cap : 64);
    if (p)
        memset(p, 0, cap), *len = cap;
    return p;
}

void mm_big_free(void *p, size_t len) {
    (void)len;
    free(p);
}
#else
void *mm_big_alloc(size_t n, size_t *len) {
    size_t cap = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (cap == 0)
        cap = HUGE_PAGE;
    if (cap < n) // overflow
        return NULL;
    // Over-allocate by one huge page and trim both ends to an aligned region of cap bytes.
    uint8_t *raw = mmap(NULL, cap + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    size_t tail = (size_t)(raw + cap + HUGE_PAGE - (p + cap));
    if (tail)
        munmap(p + cap, tail);
#ifdef MADV_HUGEPAGE
    madvise(p, cap, MADV_HUGEPAGE); // advice only: a kernel without THP gives 4 KB pages
#endif
    *len = cap;
    return p;
}

void mm_big_free(void *p, size_t len) {
    if (p)
        munmap(p, len);
}
#endif
