// Continuous batching across threads. Generations that run in threads of their own, each on its own
// engine (the server's parallel requests), hand their per-token evaluations to one batcher, which runs
// the next tokens of all of them as one engine_step: one pass over the weights for every active
// sequence instead of one each. A generation joins before its prompt and leaves when it ends, so
// requests enter and leave the batch between steps. All model computation passed through the batcher
// (prompts, steps, exclusive sections) runs one at a time, so parallel requests share the cores instead
// of fighting over them.
#ifndef MM_BATCHER_H
#define MM_BATCHER_H

#include <stdint.h>

#include "base/err.h"
#include "infer/engine.h"

typedef struct mm_batcher mm_batcher;

typedef struct {
    long steps;          // batched steps run
    long stepped_tokens; // tokens they computed (steps x their sequences)
    long prompts;        // evaluations that were not steps (prompts, edits)
    int widest;          // most sequences in one step
} mm_batcher_stats;

// max_batch: most sequences per step (>= 1; a request of more still runs, alone). Thread-safe from here on, every function.
mm_status batcher_create(mm_batcher **b, int max_batch, mm_err *e);
void batcher_free(mm_batcher *b);
// The calling thread's generation will submit steps until batcher_leave (a step waits for the joined).
// join, leave and the exclusive brackets do nothing for b NULL (a generation without a batcher).
void batcher_join(mm_batcher *b);
void batcher_leave(mm_batcher *b);
// engine_eval(en, seq, n) through the batcher: when en holds seq[0..n-1) the token joins the next batched
// step with the other joined generations' (the result equals engine_eval's); otherwise it is evaluated
// alone between steps. en must not be used by another thread meanwhile.
mm_status batcher_eval(mm_batcher *b, mm_engine *en, const int32_t *seq, int n, const float **logits, mm_err *e);
// engine_step(ens, n, next, logits) through the batcher: the sequences (a search's beams) join the next
// batched step together with the other joined generations'.
mm_status batcher_step(mm_batcher *b, mm_engine *const *ens, int n, const int32_t *next, const float **logits,
                       mm_err *e);
// Brackets other model computation (encoding images, beam search steps) so that it runs between steps.
void batcher_exclusive_begin(mm_batcher *b);
void batcher_exclusive_end(mm_batcher *b);
mm_batcher_stats batcher_stats(mm_batcher *b);

#endif
