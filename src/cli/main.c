// mmgpt: a multimodal chatbot (OpenFlamingo + LoRA, as Multimodal-GPT) in C.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "mmgpt.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"logits", cmd_logits, "run the forward pass and write logits [tokens, vocab] as .npy"},
    {"info", cmd_info, "print a model's config and tensor summary, or any GGUF/safetensors/.pt file's contents"},
    {"eval", cmd_eval, "score a model's answers on a question set (accuracy per kind, word F1 for captions)"},
    {"convert", cmd_convert, "pack upstream checkpoints (LLaMA, CLIP, OpenFlamingo, LoRA) or a model into one GGUF file"},
    {"quantize", cmd_quantize, "rewrite a model with 8- or 4-bit matrices (q8_0, q4_0, q4_k, q4_k_m) as one GGUF file"},
    {"train", cmd_train, "LoRA fine-tuning from a JSON config (resumable)"},
    {"merge", cmd_merge, "fold LoRA adapters into the weights and write a new model directory"},
    {"grad", cmd_grad, "one forward + backward: write the loss and LoRA gradients (PEFT names)"},
    {"preprocess", cmd_preprocess, "write the CLIP-preprocessed float32 [3,224,224] tensor of an image"},
    {"init", cmd_init, "write a model directory with fresh random weights (training from scratch)"},
    {"tokenize", cmd_tokenize, "text lines to token ids (with BOS), or ids back to text with --decode"},
    {"template", cmd_template, "a conversation through the instruction template: text, ids with the loss mask, media locations"},
    {"chat", cmd_chat, "a multi-turn conversation about images in the terminal"},
    {"generate", cmd_generate, "one reply to one instruction (with images), streamed or as JSON"},
    {"serve", cmd_serve, "the chat page and an OpenAI-compatible API over HTTP"},
    {"data", cmd_data, "instruction data: preview templated samples, or stats per source (data config)"},
};

int cli_fail(const mm_err *e) {
    fprintf(stderr, "mmgpt: error: %s\n", e->msg[0] ? e->msg : mm_status_name(e->code));
    return 1;
}

int cli_vusage(const char *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "mmgpt %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    return 2;
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = cli_vusage(cmd, fmt, ap);
    va_end(ap);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "usage: mmgpt COMMAND [options]   (mmgpt COMMAND --help or mmgpt help COMMAND for its options)\n"
               "       mmgpt --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nexit status: 0 success, 1 runtime error (a file, model or image that could not be used; the\n"
               "message says which), 2 usage error (unknown command or option, missing or bad value).\n");
}

static const command *find(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || (!strcmp(argv[1], "help") && argc == 2)) {
        usage(argc < 2 ? stderr : stdout); // no command is a usage error: the usage goes to stderr
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("mmgpt %s\n", mmgpt_version());
        return 0;
    }
    if (!strcmp(argv[1], "help")) { // `mmgpt help COMMAND` is `mmgpt COMMAND --help`
        const command *c = find(argv[2]);
        if (!c || argc > 3) {
            usage(stderr);
            return cli_usage("help", c ? "takes one command name" : "unknown command '%s'", argv[2]);
        }
        char *args[] = {argv[2], "--help", NULL};
        return c->fn(2, args);
    }
    const command *c = find(argv[1]);
    if (c)
        return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "mmgpt: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
