// Training samples from the instruction data: templated, tokenized, truncated and with images decoded and
// preprocessed, drawn in a reproducible order, prepared ahead on worker threads.
//
// Joint training (SPEC.md 2.6) reads two streams: the vision stream (every vision source, each epoch a shuffle
// of the concatenation, so sources come in proportion to their size times their weight, as upstream's
// DistributedSampler over a ConcatDataset) and the language stream (every language source, reshuffled on each
// pass: upstream's InfiniteSampler). Draw g of a stream depends only on (seed, stream, g): its record and its
// random choices (question wording, option display). So the position (draws consumed) is the whole resume state
// and any number of threads gives the same samples.
#ifndef MM_DATA_STREAM_H
#define MM_DATA_STREAM_H

#include <stdint.h>

#include "base/err.h"
#include "text/tokenizer.h"
#include "train/data.h"
#include "vision/preprocess.h"

typedef struct {
    int32_t *tokens, *labels; // [n]; labels -100 where the loss does not count
    int n;
    int n_images;
    float *pixels;            // [n_images, 3, S, S] (NULL when no pixels were asked for or no images)
    char **image_paths;       // [n_images]
    int source;
    long record;
    int truncated;            // some of it was cut by max_turn_tokens or max_len
} mm_sample;

void sample_free(mm_sample *s);

// Prepares one record drawn with rng seed draw_seed; its images go through preprocess_clip_file with prep (the
// model's config_clip_prep), and a NULL prep (or size 0) skips image decoding. On a record that
// cannot be used, returns MM_OK with *skip set to the reason (and out empty); *skip is -1 on success.
mm_status data_prepare(const mm_data *d, const mm_tokenizer *tok, int source, long record, uint64_t draw_seed,
                       const clip_prep *prep, mm_sample *out, int *skip, mm_err *e);

typedef enum { MM_STREAM_VISION = 0, MM_STREAM_LANGUAGE = 1, MM_STREAM_EVAL = 2 } mm_stream_kind;

typedef struct mm_data_stream mm_data_stream;

// Opens a stream over d's sources of that kind (EVAL: the "split": "eval" sources, every record once in file
// order). threads 0 prepares on the caller's thread; depth is how many samples are prepared ahead.
mm_status data_stream_open(mm_data_stream **s, const mm_data *d, const mm_tokenizer *tok, mm_stream_kind kind,
                           const clip_prep *prep, int threads, int depth, mm_err *e);
void data_stream_close(mm_data_stream *s);
// Draws in one epoch (pass) of the stream; 0 when it has no records.
long data_stream_epoch_len(const mm_data_stream *s);
// The source and record of draw g (for tests of the mix; no preparation).
void data_stream_peek(mm_data_stream *s, long g, int *source, long *record);
// The next usable sample; a draw whose record fails at preparation (a broken image, an answer truncated away)
// is counted and the next draw is taken. Fails only on an allocation failure or when 1000 draws in a row fail.
mm_status data_stream_next(mm_data_stream *s, mm_sample *out, mm_err *e);
// Draws consumed so far (the resume position).
long data_stream_position(const mm_data_stream *s);
// Moves to draw g; only before the first data_stream_next.
mm_status data_stream_seek(mm_data_stream *s, long g, mm_err *e);
// Preparation-time skips so far, per source and reason (counts[source * MM_SKIP_N + reason]).
const long *data_stream_skips(const mm_data_stream *s);

#endif
