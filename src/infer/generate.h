// Token generation on an engine: evaluate the prompt (re-using the cache), then pick tokens one at
// a time until a stop token, the token budget, the context's end, or the callback says stop.
#ifndef MM_GENERATE_H
#define MM_GENERATE_H

#include <stdint.h>

#include "base/err.h"
#include "infer/batcher.h"
#include "infer/engine.h"
#include "infer/sampler.h"

// Called with each new token; return non-zero to stop (cancel, or a stop string matched).
typedef int (*mm_token_cb)(int32_t token, void *user);

typedef enum { MM_STOP_EOS = 0, MM_STOP_LENGTH, MM_STOP_CONTEXT, MM_STOP_CALLBACK } mm_stop_reason;

typedef struct {
    const int32_t *stop_ids; // generation ends after emitting one of these (EOS, end-of-chunk)
    int n_stop_ids;
    const int32_t *banned;   // never generated (the added tokens without lm_head rows)
    int n_banned;
    mm_batcher *batcher; // when set, the evaluations go through it (batched with other threads')
} mm_gen_limits;

// Generates after prompt[0..n). out (capacity p->max_new_tokens) receives the new tokens including
// a final stop token; *n_out their count; *why the reason it ended. Greedy or sampling (num_beams
// is ignored here: infer/beam.h does beam search).
mm_status generate(mm_engine *en, const int32_t *prompt, int n, const mm_sampling *p, const mm_gen_limits *lim,
                   mm_token_cb cb, void *user, int32_t *out, int *n_out, mm_stop_reason *why, mm_err *e);

#endif
