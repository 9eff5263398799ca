// Large read-mostly buffers (model weights) in 2 MB pages where the kernel lends them. Decoding streams
// every weight once per token: with 4 KB pages each page of a matrix is a TLB miss and a stop for the
// hardware prefetchers (which do not cross pages). Measured on a 2-core machine (2 threads): the 7B-shaped
// q4_k_m model decoded 2.52 -> 4.62 tokens/s; cold 1024x1024 f16 matrices 20 -> 27 GB/s.
#ifndef MM_BIGMEM_H
#define MM_BIGMEM_H

#include <stddef.h>

// n bytes (zero-filled, 2 MB aligned) asked for in transparent huge pages (madvise; without them it is
// ordinary memory); *len receives the length to give mm_big_free. NULL when out of memory.
void *mm_big_alloc(size_t n, size_t *len);
void mm_big_free(void *p, size_t len);

#endif
