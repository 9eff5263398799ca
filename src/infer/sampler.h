// Choosing the next token from logits as Hugging Face's generate does for the original demo:
// repetition penalty, then temperature -> top-k -> top-p, then greedy argmax or a draw from the
// softmax; tokens listed as banned (the added tokens' zero lm_head rows, SPEC.md 6.5) never win.
#ifndef MM_SAMPLER_H
#define MM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

typedef struct {
    int do_sample;            // 0: greedy
    float temperature;        // > 0; 1 = unchanged
    int top_k;                // 0 = off
    float top_p;              // 1 = off
    float repetition_penalty; // 1 = off
    int max_new_tokens;
    int num_beams;            // 1 = no beam search
    uint64_t seed;
} mm_sampling;

// The original demo's defaults (SPEC.md 2.8): sampling with 3 beams, top_k 20, top_p 1, temperature 1,
// 512 new tokens.
mm_sampling sampling_defaults(void);

// Applies the penalty for each token id in history (HF: divide positive logits, multiply negative).
void sampler_repetition_penalty(float *logits, int V, const int32_t *history, int n, float penalty);
// Turns logits into the warped distribution's log-space scores in place: banned and filtered tokens
// become -INFINITY. Returns the number of tokens left.
int sampler_warp(float *logits, int V, const mm_sampling *p, const int32_t *banned, int n_banned);
// Picks a token: argmax when !do_sample, else a draw from softmax(logits) (after sampler_warp).
int32_t sampler_pick(const float *logits, int V, int do_sample, mm_rng *rng);

#endif
