// Loading what a conversation needs (model with optional adapters, tokenizer) from the command line
// of `mmgpt chat` / `mmgpt generate`.
#ifndef MM_CLI_CHAT_SETUP_H
#define MM_CLI_CHAT_SETUP_H

#include "cli/opts.h"
#include "model/flamingo.h"
#include "text/tokenizer.h"

typedef struct {
    const char *model, *lora, *tokenizer;
    int max_ctx;
    const char *device, *precision; // --device cpu|cuda[:N]|auto (NULL: $MMGPT_DEVICE, else auto), --precision
    mm_dtype kv_cache;              // --kv-cache f32|f16 (default f32)
} cli_model_args;

// -m/--model, --lora/--adapter, --tokenizer, --device, --precision, --ctx, --kv-cache as an option table for cli_opts
// (keys 'm' and CLI_KEY_MODEL + n), and what one of them sets: 1 when key is one of them, 0 when not, -1
// (the message printed, as "mmgpt CMD: ...") when its value is bad.
#define CLI_KEY_MODEL 300
extern const cli_opt cli_model_opts[];
int cli_model_opt(cli_model_args *a, const char *cmd, int key, const char *value);
// Help text lines for those options (after the command's usage, in its --help).
extern const char *cli_model_help;
// Loads the model and tokenizer onto the chosen device (the model's weights move there).
mm_status cli_model_open(const cli_model_args *a, mm_model *m, mm_tokenizer **tok, mm_err *e);
// Opens --device (NULL: $MMGPT_DEVICE, else auto) and fills the load options that --precision
// implies: on a GPU bf16 frozen weights unless f32 is asked for; on the CPU the file's types unless
// a precision is given. Says on stderr which device runs the model when it is a GPU or was asked for.
mm_status cli_device_open(const char *device, const char *precision, const mm_ops **ops, mm_load_opts *lo, mm_err *e);

#endif
