// Beam search and beam-sample as Hugging Face transformers (4.28, the original demo's era) runs them for
// num_beams > 1, num_return_sequences 1, length_penalty 1 (beam_generate_lp: any), early_stopping off:
//  - each step: log_softmax of every beam's logits (banned tokens at -inf), plus the beam's score;
//    beam search keeps the top 2*beams candidates over beams x vocab; beam-sample first applies the
//    warpers (temperature, top-k with at least 2 kept, top-p) to those cumulative scores, then draws
//    2*beams candidates without replacement from their softmax and sorts them by score;
//  - candidates are taken in order: an EOS candidate within the first `beams` ranks closes a hypothesis
//    (score = sum of log-probs / full length including the prompt), others continue until `beams` are chosen;
//  - the search ends when `beams` hypotheses are closed and none of the running beams can beat the worst
//    of them, or at max_new_tokens; then the running beams are added as hypotheses and the best wins.
// The model is reached through a callback, so the search is testable on any logits function.
#ifndef MM_BEAM_H
#define MM_BEAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "infer/sampler.h"

// Logits after seq[0..n) for beam slot `beam` (a stable index in [0, beams): the callback may keep a
// cache per slot); the pointer stays valid until the next call.
typedef mm_status (*mm_beam_logits_fn)(void *ctx, int beam, const int32_t *seq, int n, const float **logits,
                                       mm_err *e);
// Logits after each of the nb beams' sequences seqs[b * stride .. + n) at once (batched decoding).
typedef mm_status (*mm_beam_step_fn)(void *ctx, int nb, const int32_t *seqs, size_t stride, int n,
                                     const float **logits, mm_err *e);
typedef struct {
    mm_beam_logits_fn logits; // one beam at a time, or
    void *ctx;
    int vocab;
    mm_beam_step_fn step;     // when non-NULL: all beams at once (logits is then unused)
} mm_beam_model;

// Runs the search after prompt[0..n) with p->num_beams beams (p->do_sample selects beam-sample). out
// (capacity p->max_new_tokens) receives the best hypothesis' new tokens, ending with EOS when it closed on
// one; *n_out their count. banned tokens never appear. cancel (may be NULL) is polled each step.
mm_status beam_generate(const mm_beam_model *m, const int32_t *prompt, int n, const mm_sampling *p, int32_t eos,
                        const int32_t *banned, int n_banned, const atomic_int *cancel, int32_t *out, int *n_out,
                        mm_err *e);
// The same with Hugging Face's length_penalty other than 1: a hypothesis scores sum of log-probs / length^lp
// (length including the prompt), in the ranking and in the stopping test (OpenFlamingo's evaluation passes 0).
mm_status beam_generate_lp(const mm_beam_model *m, const int32_t *prompt, int n, const mm_sampling *p,
                           double length_penalty, int32_t eos, const int32_t *banned, int n_banned,
                           const atomic_int *cancel, int32_t *out, int *n_out, mm_err *e);

#endif
