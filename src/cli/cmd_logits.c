// mmgpt logits: one sequence through the forward pass; writes float32 logits [tokens, vocab] as .npy
// and prints the top next tokens after the last position.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/chat_setup.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/inputs.h"
#include "io/npy.h"
#include "model/flamingo.h"

static const char *usage_text =
    "usage: mmgpt logits -m MODEL_DIR (--prompt TEXT | --tokens ID,ID,...) [--image FILE | --pixels FILE.npy]...\n"
    "                    [--out FILE.npy] [--top K] [--tokenizer FILE] [--keep-whitespace]\n"
    "  Runs the model on one sequence and writes float32 logits [tokens, vocab] to --out.\n"
    "  --prompt is encoded with BOS by the model's tokenizer (MODEL_DIR/tokenizer.model or .json unless\n"
    "  --tokenizer); each <image> marker takes the next --image/--pixels in order. --pixels takes an\n"
    "  already preprocessed float32 [n, 3, S, S] (or [3, S, S]) array. Prints the top K (default 5)\n"
    "  next tokens after the last position.\n"
    "  --device cpu|cuda[:N]|auto (default: $MMGPT_DEVICE, else the GPU when one answers) and --precision\n"
    "  f32|bf16 (default on a GPU: bf16 frozen weights) choose where and how the forward runs.\n";

int cmd_logits(int argc, char **argv) {
    const char *model_dir = NULL, *out = NULL, *prompt = NULL, *tokens_arg = NULL, *tokenizer = NULL;
    const char *device = NULL, *precision = NULL;
    int top = 5, keep_ws = 0;
    cli_images imgs = {0};
    mm_err e = {0};
    enum { KEY_OUT = CLI_KEY_LONG, KEY_PROMPT, KEY_TOKENS, KEY_TOKENIZER, KEY_DEVICE, KEY_PRECISION, KEY_KEEP, KEY_TOP,
           KEY_IMAGE, KEY_PIXELS };
    static const cli_opt own[] = {{"model", 'm', 1},           {"out", KEY_OUT, 1},
                                  {"prompt", KEY_PROMPT, 1},   {"tokens", KEY_TOKENS, 1},
                                  {"tokenizer", KEY_TOKENIZER, 1}, {"device", KEY_DEVICE, 1},
                                  {"precision", KEY_PRECISION, 1}, {"keep-whitespace", KEY_KEEP, 0},
                                  {"top", KEY_TOP, 1},         {"image", KEY_IMAGE, 1},
                                  {"pixels", KEY_PIXELS, 1},   {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "logits", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP) {
            cli_images_free(&imgs);
            return cli_opts_stop(&p, k);
        }
        if (k == 'm') {
            model_dir = v;
        } else if (k == KEY_OUT) {
            out = v;
        } else if (k == KEY_PROMPT) {
            prompt = v;
        } else if (k == KEY_TOKENS) {
            tokens_arg = v;
        } else if (k == KEY_TOKENIZER) {
            tokenizer = v;
        } else if (k == KEY_DEVICE) {
            device = v;
        } else if (k == KEY_PRECISION) {
            precision = v;
        } else if (k == KEY_KEEP) {
            keep_ws = 1;
        } else if (k == KEY_TOP) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 0 || n > 1000)
                return cli_usage("logits", "--top expects an integer 0..1000, got '%s'", v);
            top = (int)n;
        } else {
            if (cli_images_add(&imgs, v, k == KEY_PIXELS, &e) != MM_OK)
                return cli_fail(&e);
        }
    }
    if (p.next < argc) {
        cli_images_free(&imgs);
        fputs(usage_text, stderr);
        return cli_usage("logits", "unexpected argument '%s'", argv[p.next]);
    }
    if (!model_dir || (!prompt == !tokens_arg))
        return cli_opts_refuse(&p, "needs -m MODEL_DIR and exactly one of --prompt or --tokens");
    int rc = 1;
    mm_model m = {0};
    mm_acts acts = {0};
    int32_t *ids = NULL;
    float *pixels = NULL;
    size_t n_ids = 0;
    float *host_logits = NULL;
    mm_load_opts lo = {0};
    const mm_ops *ops;
    if (cli_device_open(device, precision, &ops, &lo, &e) != MM_OK ||
        model_load(&m, model_dir, lo.force_dtype ? &lo : NULL, &e) != MM_OK || model_to_device(&m, ops, &e) != MM_OK)
        goto done;
    const mm_config *c = &m.w.cfg;
    if (tokens_arg) {
        if (cli_parse_ids(tokens_arg, "--tokens", 0, &ids, &n_ids, &e) != MM_OK)
            goto done;
    } else if (cli_encode_prompt(model_dir, tokenizer, prompt, keep_ws, &ids, &n_ids, &e) != MM_OK) {
        goto done;
    }
    if (n_ids == 0) {
        mm_errf(&e, MM_ERR_ARG, "the prompt has no tokens");
        goto done;
    }
    if ((long)n_ids > c->max_seq) {
        mm_errf(&e, MM_ERR_ARG, "the prompt has %zu tokens; the model's context is %d", n_ids, c->max_seq);
        goto done;
    }
    int markers = 0;
    for (size_t i = 0; i < n_ids; i++)
        markers += ids[i] == c->media_id;
    clip_prep prep = config_clip_prep(c);
    if (cli_images_pixels(&imgs, &prep, &pixels, &e) != MM_OK)
        goto done;
    if (markers != imgs.count) {
        mm_errf(&e, MM_ERR_ARG, "the prompt has %d <image> marker%s (id %d) but %d image%s given", markers,
                markers == 1 ? "" : "s", c->media_id, imgs.count, imgs.count == 1 ? " was" : "s were");
        goto done;
    }
    int32_t ips = imgs.count;
    mm_batch b = {.B = 1, .T = (int)n_ids, .tokens = ids, .n_images = imgs.count, .pixels = pixels,
                  .images_per_seq = &ips};
    if (acts_alloc_on(&acts, ops, c, 1, (int)n_ids, imgs.count, 0, &e) != MM_OK ||
        flamingo_forward(&m, &b, &acts, &e) != MM_OK)
        goto done;
    const float *logits = acts.logits;
    if (ops->on_device) { // the logits come back to the host for the file and the top tokens
        size_t bytes = sizeof(float) * n_ids * (size_t)c->vocab;
        if (!(host_logits = malloc(bytes))) {
            mm_errf(&e, MM_ERR_NOMEM, "out of memory for the logits");
            goto done;
        }
        ops->download(host_logits, acts.logits, bytes);
        logits = host_logits;
    }
    if (out) {
        int64_t shape[2] = {(int64_t)n_ids, c->vocab};
        if (mm_npy_write(out, MM_NPY_F32, logits, 2, shape, &e) != MM_OK)
            goto done;
    }
    cli_print_top(model_dir, tokenizer, logits + (n_ids - 1) * (size_t)c->vocab, c->vocab, top);
    rc = 0;
done:
    if (rc)
        cli_fail(&e);
    acts_free(&acts);
    model_free(&m);
    free(host_logits);
    free(ids);
    free(pixels);
    cli_images_free(&imgs);
    return rc;
}
