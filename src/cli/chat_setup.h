// Loading what a conversation needs (model with optional adapters, tokenizer) from the command line
// of `mmgpt chat` / `mmgpt generate`.
#ifndef MM_CLI_CHAT_SETUP_H
#define MM_CLI_CHAT_SETUP_H

#include "model/flamingo.h"
#include "text/tokenizer.h"

typedef struct {
    const char *model, *lora, *tokenizer;
    int max_ctx;
} cli_model_args;

// Consumes -m/--model, --lora/--adapter, --tokenizer, --ctx at argv[*i]: 1 consumed, 0 not one of them.
int cli_model_flag(cli_model_args *a, int argc, char **argv, int *i);
mm_status cli_model_open(const cli_model_args *a, mm_model *m, mm_tokenizer **tok, mm_err *e);

#endif
