// Pre-tokenized training records, one JSON object per line:
//   {"tokens": [1, 306, ...], "labels": [-100, ..., 306, 2], "pixels": "img.npy"}
// labels (optional) align with tokens, -100 = not counted; absent, every token after the first is
// counted except <image> markers and padding. "pixels" (optional) names a float32 [n, 3, S, S] or
// [3, S, S] .npy of preprocessed images, one per <image> marker, in order; relative paths resolve
// against the file's directory. The instruction-data pipeline produces richer sources; this one lets
// any tool that can write token ids drive training.
#ifndef MM_TOKEN_DATA_H
#define MM_TOKEN_DATA_H

#include <stdint.h>

#include "base/err.h"
#include "model/config.h"

typedef struct {
    int32_t *tokens, *labels; // [n]
    int n;
    int n_images;
    char *pixels_path;        // NULL when the record has no images
} mm_record;

typedef struct {
    mm_record *rec;
    int n;
    long max_len;
} mm_token_data;

// Reads and validates every record (ids within the vocabulary, labels -100 or ids, marker count =
// image count, length <= max_seq_len); errors name the file and line.
mm_status token_data_load(mm_token_data *d, const char *path, const mm_config *cfg, mm_err *e);
void token_data_free(mm_token_data *d);
// Loads the preprocessed pixels of a record into out (n_images * 3 * S * S floats).
mm_status token_data_pixels(const mm_record *r, int S, float *out, mm_err *e);

#endif
