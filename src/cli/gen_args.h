// Sampling options shared by `mmgpt generate` and `mmgpt chat` (flags and the REPL's /params).
#ifndef MM_CLI_GEN_ARGS_H
#define MM_CLI_GEN_ARGS_H

#include <stdio.h>

#include "cli/opts.h"
#include "infer/sampler.h"

#define CLI_MAX_STOPS 16

typedef struct {
    mm_sampling p;
    const char *stops[CLI_MAX_STOPS];
    int n_stops;
} cli_gen;

// The original demo's defaults (sampling_defaults()).
void cli_gen_init(cli_gen *g);
// Sets one parameter by name ("temperature", "top_k", "top_p", "num_beams", "max_new_tokens",
// "do_sample", "repetition_penalty", "seed") from text; returns 0 or -1 when the name or value is bad.
int cli_gen_set(cli_gen *g, const char *name, const char *value);
// The sampling flags as an option table for cli_opts (keys CLI_KEY_GEN + n), and what one of them sets:
// 1 when key is one of them, 0 when not, -1 (message printed) when its value is bad.
#define CLI_KEY_GEN 320
extern const cli_opt cli_gen_opts[];
int cli_gen_opt(cli_gen *g, const char *cmd, int key, const char *value);
void cli_gen_print(const cli_gen *g, FILE *f);
// Help text lines for the flags.
extern const char *cli_gen_help;

#endif
