// The tokenizer a GGUF model file will carry: the original file's bytes (so it reloads exactly) and
// its pieces for the standard tokenizer.ggml.* keys, gathered from a tokenizer file, a model
// directory, or another mmgpt .gguf file.
#ifndef MM_CLI_TOK_PACK_H
#define MM_CLI_TOK_PACK_H

#include "model/model_gguf.h"

typedef struct {
    mm_gguf_tokenizer info;
    uint8_t *bytes;
    char *name;
    const char **pieces;
    struct mm_tokenizer *tok;
} cli_tok_pack;

// From tokenizer_path if given, else the model's (MODEL_DIR/tokenizer.{model,json}, or a .gguf's own).
mm_status cli_tok_pack_load(cli_tok_pack *p, const char *model, const char *tokenizer_path, mm_err *e);
void cli_tok_pack_free(cli_tok_pack *p);

#endif
