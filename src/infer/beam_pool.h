// The beams of a search on a pool of cached engines, one per beam slot: each step, the beams whose
// history a slot holds exactly advance together in one batched engine_step (one pass over the weights
// for all of them); any other beam takes a free slot, copies the caches of the slot holding the longest
// prefix of its sequence (the prompt and images are evaluated once for all beams) and evaluates the rest.
// The numbers equal evaluating every beam's sequence from scratch.
#ifndef MM_BEAM_POOL_H
#define MM_BEAM_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "infer/batcher.h"
#include "infer/engine.h"

typedef struct {
    mm_engine **eng; // [n_slots], entries may be NULL until prepared
    int n_slots;
    void *ctx;
    // Whether slot i holds the run's images (only then may its caches be shared or stepped).
    int (*ready)(void *ctx, int slot);
    // Makes slot exist, take slot `from`'s caches when from >= 0 (engine_copy), and hold the run's images.
    mm_status (*prepare)(void *ctx, int slot, int from, mm_err *e);
    mm_batcher *batcher; // when set, the step joins other threads' (infer/batcher.h; join first)
} mm_beam_pool;

// Logits after each beam's sequence seqs[b * stride .. + n) into logits[b] (b < nb <= n_slots), each valid
// until its slot's next evaluation; *evaluated (may be NULL) gains the tokens evaluated (not taken from caches).
mm_status beam_pool_logits(const mm_beam_pool *p, int nb, const int32_t *seqs, size_t stride, int n,
                           const float **logits, long *evaluated, mm_err *e);

#endif
