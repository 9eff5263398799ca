// mmgpt grad: one forward and backward on one sequence; writes the loss (scalar tensor "loss") and
// the gradient of every trainable tensor under its PEFT name, for checking against PyTorch.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "cli/inputs.h"
#include "io/safetensors.h"
#include "model/adapter.h"
#include "model/flamingo.h"

static const char *usage_text =
    "usage: mmgpt grad -m MODEL_DIR [--adapter DIR] [--unfreeze NAME]... --tokens IDS --labels IDS\n"
    "                  [--image F | --pixels F.npy]... --out FILE.safetensors\n"
    "  One forward and backward pass. Labels are aligned with the tokens (same count; -100 = not counted);\n"
    "  position t predicts labels[t+1] and the loss is the mean over counted labels, as Hugging Face's\n"
    "  causal-LM loss. Writes \"loss\" (a scalar) and the gradient of every LoRA tensor under its PEFT name\n"
    "  (base_model.model.<module>.lora_{A,B}.weight). Without --adapter the LoRA tensors come from the model.\n"
    "  --unfreeze NAME also differentiates every base tensor whose upstream name contains NAME (as a train\n"
    "  config's \"unfrozen\"); their gradients are written under the upstream names.\n";

int cmd_grad(int argc, char **argv) {
    const char *model_dir = NULL, *adapter = NULL, *tok_arg = NULL, *lab_arg = NULL, *out = NULL;
    cli_images imgs = {0};
    mm_err e = {0};
    const char *unfrozen[MM_MAX_UNFROZEN];
    int n_unfrozen = 0;
    enum { KEY_ADAPTER = CLI_KEY_LONG, KEY_UNFREEZE, KEY_TOKENS, KEY_LABELS, KEY_OUT, KEY_IMAGE, KEY_PIXELS };
    static const cli_opt own[] = {{"model", 'm', 1},         {"adapter", KEY_ADAPTER, 1}, {"lora", KEY_ADAPTER, 1},
                                  {"unfreeze", KEY_UNFREEZE, 1}, {"tokens", KEY_TOKENS, 1},   {"labels", KEY_LABELS, 1},
                                  {"out", KEY_OUT, 1},       {"image", KEY_IMAGE, 1},     {"pixels", KEY_PIXELS, 1},
                                  {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "grad", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP) {
            cli_images_free(&imgs);
            return cli_opts_stop(&p, k);
        }
        if (k == 'm') {
            model_dir = v;
        } else if (k == KEY_ADAPTER) {
            adapter = v;
        } else if (k == KEY_UNFREEZE) {
            if (n_unfrozen == MM_MAX_UNFROZEN) {
                cli_images_free(&imgs);
                return cli_usage("grad", "at most %d --unfreeze names", MM_MAX_UNFROZEN);
            }
            unfrozen[n_unfrozen++] = v;
        } else if (k == KEY_TOKENS) {
            tok_arg = v;
        } else if (k == KEY_LABELS) {
            lab_arg = v;
        } else if (k == KEY_OUT) {
            out = v;
        } else {
            if (cli_images_add(&imgs, v, k == KEY_PIXELS, &e) != MM_OK)
                return cli_fail(&e);
        }
    }
    if (p.next < argc) {
        cli_images_free(&imgs);
        fputs(usage_text, stderr);
        return cli_usage("grad", "unexpected argument '%s'", argv[p.next]);
    }
    if (!model_dir || !tok_arg || !lab_arg || !out) {
        fputs(usage_text, stderr);
        cli_images_free(&imgs);
        return cli_usage("grad", "needs -m, --tokens, --labels and --out");
    }
    int rc = 1;
    mm_model m = {0};
    mm_acts acts = {0};
    int32_t *ids = NULL, *labels = NULL;
    float *pixels = NULL, *grads = NULL;
    size_t n_ids = 0, n_lab = 0;
    mm_st_write_tensor *wt = NULL;
    char (*names)[192] = NULL;
    mm_load_opts lo = {.adapter = adapter, .n_unfrozen = n_unfrozen, .unfrozen = unfrozen};
    if (cli_parse_ids(tok_arg, "--tokens", 0, &ids, &n_ids, &e) != MM_OK ||
        cli_parse_ids(lab_arg, "--labels", 1, &labels, &n_lab, &e) != MM_OK)
        goto done;
    if (n_ids != n_lab || n_ids < 2) {
        mm_errf(&e, MM_ERR_ARG, "--tokens has %zu ids and --labels %zu; they must be equal and at least 2", n_ids, n_lab);
        goto done;
    }
    if (model_load(&m, model_dir, &lo, &e) != MM_OK)
        goto done;
    const mm_config *c = &m.w.cfg;
    if (m.w.n_trainable == 0) {
        mm_errf(&e, MM_ERR_ARG, "%s: nothing to differentiate: no LoRA adapters (config \"lora\" is null; pass --adapter) "
                "and no --unfreeze", model_dir);
        goto done;
    }
    clip_prep prep = config_clip_prep(c);
    if (cli_images_pixels(&imgs, &prep, &pixels, &e) != MM_OK)
        goto done;
    long count = flamingo_count_targets(labels, 1, (int)n_ids);
    if (count == 0) {
        mm_errf(&e, MM_ERR_ARG, "no label after the first position is counted (all -100): the loss is undefined");
        goto done;
    }
    int32_t ips = imgs.count;
    mm_batch b = {.B = 1, .T = (int)n_ids, .tokens = ids, .n_images = imgs.count, .pixels = pixels, .images_per_seq = &ips};
    grads = calloc(m.w.n_trainable, sizeof(float));
    if (!grads) {
        mm_errf(&e, MM_ERR_NOMEM, "out of memory");
        goto done;
    }
    double loss_sum;
    long counted;
    if (acts_alloc(&acts, c, 1, (int)n_ids, imgs.count, 1 | (m.w.vision_trains ? MM_ACTS_VISION : 0), &e) != MM_OK ||
        flamingo_loss_backward(&m, &b, labels, &acts, grads, 1.0f / (float)count, &loss_sum, &counted, &e) != MM_OK)
        goto done;
    float loss = (float)(loss_sum / (double)count);
    wt = calloc((size_t)m.w.n_params + 1, sizeof *wt);
    names = calloc((size_t)m.w.n_params + 1, sizeof *names);
    if (!wt || !names) {
        mm_errf(&e, MM_ERR_NOMEM, "out of memory");
        goto done;
    }
    int n = 0;
    wt[n++] = (mm_st_write_tensor){.name = "loss", .dtype = MM_F32, .ndim = 0, .data = &loss};
    for (int i = 0; i < m.w.n_params; i++) {
        const mm_param *p = &m.w.params[i];
        if (!param_trains(p))
            continue;
        if (p->kind == MM_PARAM_LORA)
            adapter_peft_name(p->name, names[n], sizeof names[n]);
        else
            snprintf(names[n], sizeof names[n], "%s", p->name);
        wt[n] = (mm_st_write_tensor){.name = names[n], .dtype = MM_F32, .ndim = p->ndim,
                                     .data = grads + ((const float *)*p->slot - m.w.trainable)};
        memcpy(wt[n].shape, p->shape, sizeof p->shape);
        n++;
    }
    if (st_write(out, wt, n, NULL, 0, &e) != MM_OK)
        goto done;
    printf("loss %.6f over %ld tokens; %d gradient tensors written to %s\n", (double)loss, counted, n - 1, out);
    rc = 0;
done:
    if (rc)
        cli_fail(&e);
    free(wt);
    free(names);
    acts_free(&acts);
    model_free(&m);
    free(ids);
    free(labels);
    free(pixels);
    free(grads);
    cli_images_free(&imgs);
    return rc;
}
