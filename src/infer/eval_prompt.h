// Prompts and answer clean-up for the benchmark tasks (`mmgpt eval --task`), as OpenFlamingo's evaluation
// (open_flamingo/eval/evaluate.py and models/open_flamingo.py) builds them, or Multimodal-GPT's template:
//   OPENFLAMINGO  each in-context example "<image>Question:{q} Short answer:{answers[0]}<|endofchunk|>\n" (VQA) or
//                 "<image>Output:{caption[0] stripped}<|endofchunk|>\n" (captions), then the query
//                 "<image>Question:{q} Short answer:" / "<image>Output:"; with 0 shots two examples are still given
//                 as text, their "<image>" removed (Flamingo's zero-shot protocol, OpenFlamingo's
//                 compute_effective_num_shots); the model's reply is cut before the first "Question", "Answer" or
//                 "Short" and then before the first ", " (VQA: postprocess_vqa_generation) or before the first
//                 "Output" with double quotes removed (captions: postprocess_captioning_generation).
//   MMGPT         the single-turn instruction template (SPEC.md 2.3) with one image and the question (VQA) or the
//                 caption instruction as the instruction, zero-shot; the reply is cut at "### End." and stripped,
//                 then cleaned like the OPENFLAMINGO reply.
// In-context examples are drawn at random (seeded per query, so a resumed run draws the same) from a pool: the
// task's training files when given, else the evaluated set itself without the query's own image.
#ifndef MM_EVAL_PROMPT_H
#define MM_EVAL_PROMPT_H

#include <stdint.h>

#include "base/err.h"
#include "infer/evalset.h"

typedef enum { EVAL_TEMPLATE_OPENFLAMINGO = 0, EVAL_TEMPLATE_MMGPT = 1 } eval_template;

// The instruction the MMGPT template gives for captions (override with the instruction argument below).
#define EVAL_CAPTION_INSTRUCTION "Describe the image briefly."

// Picks k examples for the query at index q of set (pool NULL: the set itself, skipping items with the query's
// image): indices into the pool in out[0..k); *n_out may be < k when the pool is small.
void eval_pick_demos(const evalset *set, int q, const evalset *pool, int k, uint64_t seed, int *out, int *n_out);

// The OpenFlamingo-style prompt text for query item q with the given examples (their images included when
// with_images); a new string.
char *eval_prompt_openflamingo(const evalset *set, int q, const evalset *pool, const int *demos, int n_demos,
                               int with_images);

// The answer or caption kept from a generated reply (a new string).
char *eval_postprocess(eval_task task, eval_template tpl, const char *reply);

#endif
