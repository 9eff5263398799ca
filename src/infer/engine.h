// Incremental evaluation of one growing sequence (a chat): a self-attention K/V cache per layer,
// and per image its perceiver latents and each cross-attention block's K/V of them, computed once.
// Evaluating a new token list re-uses the cache up to the first position whose result changes: the
// first differing token, or the first position whose media index changes (under Multimodal-GPT's
// rule, a new image changes what earlier text after the previous image attends), or everything when
// the sequence gains its first image (text-only sequences skip the gated blocks). The results equal
// a full forward pass of the whole sequence.
#ifndef MM_ENGINE_H
#define MM_ENGINE_H

#include <stdint.h>

#include "base/err.h"
#include "model/flamingo.h"

typedef struct mm_engine mm_engine;

typedef struct {
    long prompt_tokens;  // tokens evaluated (not taken from the cache) by the last engine_eval
    long cached_tokens;  // tokens re-used from the cache by the last engine_eval
    double vision_s, eval_s;
} mm_engine_stats;

// max_ctx: most tokens a sequence may hold (<= the model's max_seq_len); max_images: most images.
mm_status engine_create(mm_engine **en, const mm_model *m, int max_ctx, int max_images, mm_err *e);
void engine_free(mm_engine *en);
// Forgets the sequence and its images.
void engine_reset(mm_engine *en);
// Encodes one preprocessed image (float32 [3, S, S]) as the next image of the sequence.
mm_status engine_add_image(mm_engine *en, const float *pixels, mm_err *e);
int engine_n_images(const mm_engine *en);
// Makes tokens[0..n) the sequence (its <image> markers refer to the added images in order) and
// computes the logits after its last token (returned pointer valid until the next call).
mm_status engine_eval(mm_engine *en, const int32_t *tokens, int n, const float **logits, mm_err *e);
// Batched decoding: appends next[b] to the sequence of ens[b] (each engine distinct, of one model,
// holding a sequence) and computes the logits after it into logits[b] (valid until that engine's next
// call), as engine_eval of the longer sequence would, in one pass over the weights for all sequences
// (their caches, lengths and images stay their own). next[b] must not be an <image> marker.
mm_status engine_step(mm_engine *const *ens, int n_seq, const int32_t *next, const float **logits, mm_err *e);
// Whether engine_step can append seq[n-1]: the engine holds exactly seq[0..n-1), seq[n-1] is no
// <image> marker and the context has room.
int engine_can_step(const mm_engine *en, const int32_t *seq, int n);
// Makes dst hold src's cached sequence and images by copying src's caches (nothing is recomputed), so
// that a sequence sharing src's prefix evaluates only what follows: beams share the prompt's K/V and
// image latents, and a beam that continues another's history takes its K/V. Both engines belong to
// the same model; dst's context and image capacity must hold src's contents.
mm_status engine_copy(mm_engine *dst, const mm_engine *src, mm_err *e);
// How many leading tokens of seq[0..n) the engine holds in its cache.
int engine_common_prefix(const mm_engine *en, const int32_t *seq, int n);
// The sequence currently cached.
const int32_t *engine_tokens(const mm_engine *en, int *n);
mm_engine_stats engine_stats(const mm_engine *en);
int engine_vocab(const mm_engine *en);
int engine_max_ctx(const mm_engine *en);

#endif
