// Generation from a raw prompt (token ids whose <image> tokens refer to given images in order), greedy or beam
// search, for callers that build their own prompts (the benchmark evaluation's OpenFlamingo-style few-shot
// prompts) rather than a chat. One engine per beam; each run starts from fresh caches.
#ifndef MM_PROMPT_GEN_H
#define MM_PROMPT_GEN_H

#include <stdint.h>

#include "base/err.h"
#include "infer/batcher.h"
#include "model/flamingo.h"

typedef struct mm_promptgen mm_promptgen;

typedef struct {
    int num_beams;           // <= 1: greedy
    double length_penalty;   // beam search: hypotheses score sum of log-probs / length^this (HF; 1 = mean)
    int max_new_tokens;
    const int32_t *stop_ids; // greedy stops after any of these; beam search closes hypotheses on stop_ids[0]
    int n_stop_ids;
    const int32_t *banned;   // never generated
    int n_banned;
} mm_promptgen_opts;

// max_ctx 0: the model's context; max_images: the most images one prompt holds.
mm_status promptgen_create(mm_promptgen **g, const mm_model *m, int max_ctx, int max_images, mm_err *e);
void promptgen_free(mm_promptgen *g);
// The most images a prompt may hold (the model's limit may be below what was asked).
// Shares the decoding of this generator's runs with other threads' through b (NULL: alone; infer/batcher.h).
void promptgen_set_batcher(mm_promptgen *g, mm_batcher *b);
int promptgen_max_images(const mm_promptgen *g);
int promptgen_max_ctx(const mm_promptgen *g);
// Generates after ids[0..n); pixels holds n_images preprocessed images [n_images, 3, S, S]. out (capacity
// o->max_new_tokens) receives the new tokens (a final stop token included); *n_out their count.
mm_status promptgen_run(mm_promptgen *g, const int32_t *ids, int n, const float *pixels, int n_images,
                        const mm_promptgen_opts *o, int32_t *out, int *n_out, mm_err *e);

#endif
