#include <stdlib.h>
#include <string.h>

#include "cli/chat_setup.h"
#include "cli/inputs.h"

int cli_model_flag(cli_model_args *a, int argc, char **argv, int *i) {
    const char *f = argv[*i];
    if (*i + 1 >= argc)
        return 0;
    const char **slot = !strcmp(f, "-m") || !strcmp(f, "--model") ? &a->model
                        : !strcmp(f, "--lora") || !strcmp(f, "--adapter") ? &a->lora
                        : !strcmp(f, "--tokenizer") ? &a->tokenizer
                                                    : NULL;
    if (slot) {
        *slot = argv[++*i];
        return 1;
    }
    if (!strcmp(f, "--ctx")) {
        a->max_ctx = atoi(argv[++*i]);
        return 1;
    }
    return 0;
}

mm_status cli_model_open(const cli_model_args *a, mm_model *m, mm_tokenizer **tok, mm_err *e) {
    mm_load_opts lo = {.adapter = a->lora};
    MM_TRY(model_load(m, a->model, &lo, e));
    mm_status s = cli_load_tokenizer(a->model, a->tokenizer, tok, e);
    if (s != MM_OK)
        model_free(m);
    return s;
}
