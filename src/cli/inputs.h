// Inputs shared by the model commands: token-id lists, images and preprocessed pixel arrays given on
// the command line, prompts encoded with the model's tokenizer, and the top-k printout.
#ifndef MM_CLI_INPUTS_H
#define MM_CLI_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/err.h"
#include "vision/preprocess.h"

typedef struct {
    int count;       // images, counting every image inside a --pixels array
    int n_args;
    char **paths;
    int *is_pixels;
} cli_images;

// Records an --image or --pixels argument (a --pixels file may hold several images).
mm_status cli_images_add(cli_images *im, const char *path, int is_pixels, mm_err *e);
// Decodes and preprocesses every image in order (as prep says: the model's config_clip_prep) into a new
// float32 [count, 3, S, S] array.
mm_status cli_images_pixels(const cli_images *im, const clip_prep *prep, float **pixels, mm_err *e);
void cli_images_free(cli_images *im);

// Parses "1,2,3" (commas and/or spaces) into a new int32 array; what names the flag in errors;
// allow_negative admits -100 style labels.
mm_status cli_parse_ids(const char *s, const char *what, int allow_negative, int32_t **ids, size_t *n, mm_err *e);
// Parses a --dtype value: "f32", "f16" or "bf16"; returns 0 on success.
int cli_parse_dtype(const char *s, mm_dtype *d);
// A progress bar on stderr for writing a model file ("label [####  ] 42%  1.20 / 2.85 GB"); user
// points to an int that is non-zero when stderr is a terminal (nothing is drawn otherwise).
typedef struct {
    int tty;
    const char *label;
} cli_progress;
void cli_progress_bar(void *user, size_t done, size_t total);
struct mm_gguf_file;
// Prints "matrices: B bits per weight (T), tensors: N MB" for a GGUF file: the bytes of its 2-D and larger
// tensors over their element count, and the types they are stored in.
void cli_print_bits(const struct mm_gguf_file *g);
typedef struct mm_tokenizer mm_tokenizer;
// Loads tokenizer_path, else MODEL_DIR/tokenizer.model, else MODEL_DIR/tokenizer.json.
mm_status cli_load_tokenizer(const char *model_dir, const char *tokenizer_path, mm_tokenizer **tok, mm_err *e);
// Loads the tokenizer (tokenizer_path, else MODEL_DIR/tokenizer.model, else MODEL_DIR/tokenizer.json)
// and encodes prompt with BOS.
mm_status cli_encode_prompt(const char *model_dir, const char *tokenizer_path, const char *prompt, int keep_whitespace,
                            int32_t **ids, size_t *n, mm_err *e);
// Prints the k highest logits as "rank  id  logit  piece" (pieces when a tokenizer is found).
void cli_print_top(const char *model_dir, const char *tokenizer_path, const float *logits, int vocab, int k);

#endif
