// mmgpt init: a model directory with fresh random weights (for training from scratch, as the bundled
// demo model is): config.json, model.safetensors and the tokenizer copied in.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "io/file.h"
#include "model/config.h"
#include "model/init.h"
#include "model/merge.h"
#include "text/tokenizer.h"

static const char *usage_text =
    "usage: mmgpt init --config CONFIG.json --tokenizer FILE --out DIR [--seed N] [--gate F] [--latent-std F]\n"
    "                  [--attn-std F]\n"
    "  Writes DIR/config.json, DIR/model.safetensors (f32 random weights) and the tokenizer. The config's\n"
    "  vocab_size and special token ids must match the tokenizer (its size includes the 3 added tokens).\n"
    "  --gate: the cross-attention tanh gates' start (OpenFlamingo: 0, closed; a model trained from scratch\n"
    "  needs them open, or the image path never gets a gradient). --latent-std: std of the perceiver\n"
    "  latents and media embeddings (OpenFlamingo: 1; small values let the image dominate the latents).\n"
    "  --attn-std: std of the perceiver's and cross-attention's to_q/to_kv (default 0.02; larger values make\n"
    "  attention selective from the start, so latents can pick out objects instead of all pooling alike).\n";

// Parses a finite number for flag into *out: 0, or the usage exit status after printing why not.
static int parse_float(const char *flag, const char *v, float *out) {
    char *end = NULL;
    double d = strtod(v, &end);
    if (!*v || *end || !(d > -1e6 && d < 1e6))
        return cli_usage("init", "%s takes a number, not '%s'", flag, v);
    *out = (float)d;
    return 0;
}

static int check_tokens(const mm_config *c, const mm_tokenizer *t, mm_err *e) {
    struct {
        const char *what;
        int32_t cfg, tok;
    } k[] = {{"vocab_size", c->vocab, tok_vocab_size(t)}, {"bos", c->bos_id, tok_bos_id(t)},
             {"eos", c->eos_id, tok_eos_id(t)},            {"media", c->media_id, tok_image_id(t)},
             {"eoc", c->eoc_id, tok_eoc_id(t)},            {"pad", c->pad_id, tok_pad_id(t)}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (k[i].cfg != k[i].tok)
            return mm_errf(e, MM_ERR_ARG, "config %s is %d but the tokenizer says %d", k[i].what, k[i].cfg, k[i].tok);
    return MM_OK;
}

int cmd_init(int argc, char **argv) {
    const char *cfg_path = NULL, *tok_path = NULL, *out = NULL;
    unsigned long long seed = 0;
    mm_init_opts opts = init_opts_default();
    enum { KEY_CONFIG = CLI_KEY_LONG, KEY_TOK, KEY_OUT, KEY_SEED, KEY_GATE, KEY_ATTN_STD, KEY_LATENT_STD };
    static const cli_opt own[] = {{"config", KEY_CONFIG, 1},     {"tokenizer", KEY_TOK, 1}, {"out", KEY_OUT, 1},
                                  {"seed", KEY_SEED, 1},         {"gate", KEY_GATE, 1},     {"attn-std", KEY_ATTN_STD, 1},
                                  {"latent-std", KEY_LATENT_STD, 1}, {NULL, 0, 0}};
    cli_opts p;
    cli_opts_init(&p, "init", usage_text, argc, argv);
    cli_opts_add(&p, own);
    const char *v;
    for (int k; (k = cli_opts_next(&p, &v)) != CLI_OPTS_END;) {
        if (k == CLI_OPTS_ERROR || k == CLI_KEY_HELP)
            return cli_opts_stop(&p, k);
        char *end = NULL;
        if (k == KEY_CONFIG) {
            cfg_path = v;
        } else if (k == KEY_TOK) {
            tok_path = v;
        } else if (k == KEY_OUT) {
            out = v;
        } else if (k == KEY_SEED) {
            seed = strtoull(v, &end, 10);
            if (!*v || *end)
                return cli_usage("init", "--seed takes a non-negative integer, not '%s'", v);
        } else if (k == KEY_GATE) {
            if (parse_float("--gate", v, &opts.gate))
                return 2;
        } else if (k == KEY_ATTN_STD) {
            if (parse_float("--attn-std", v, &opts.attn_std) || opts.attn_std <= 0)
                return opts.attn_std <= 0 ? cli_usage("init", "--attn-std must be positive") : 2;
        } else {
            if (parse_float("--latent-std", v, &opts.latent_std) || opts.latent_std < 0)
                return opts.latent_std < 0 ? cli_usage("init", "--latent-std must not be negative") : 2;
        }
    }
    if (p.next < argc)
        return cli_opts_refuse(&p, "unexpected argument '%s'", argv[p.next]);
    if (!cfg_path || !tok_path || !out)
        return cli_opts_refuse(&p, "needs --config, --tokenizer and --out");
    mm_err e = {0};
    mm_config cfg;
    if (config_load(&cfg, cfg_path, &e) != MM_OK)
        return cli_fail(&e);
    mm_tokenizer *tok = NULL;
    if (tok_load(&tok, tok_path, &e) != MM_OK)
        return cli_fail(&e);
    mm_status s = check_tokens(&cfg, tok, &e);
    tok_free(tok);
    if (s != MM_OK)
        return cli_fail(&e);
    mm_model m;
    if (model_init_random(&m, &cfg, seed, &opts, &e) != MM_OK)
        return cli_fail(&e);
    s = model_save_dir(&m, out, MM_F32, &e);
    int n_tensors = m.w.n_params;
    size_t n_floats = 0;
    for (int i = 0; i < m.w.n_params; i++)
        n_floats += weights_param_bytes(&m.w, &m.w.params[i]) / sizeof(float);
    model_free(&m);
    if (s == MM_OK) {
        const char *base = strrchr(tok_path, '/');
        base = base ? base + 1 : tok_path;
        int is_json = strlen(base) > 5 && !strcmp(base + strlen(base) - 5, ".json");
        uint8_t *data = NULL;
        size_t len = 0;
        char dst[4200];
        snprintf(dst, sizeof dst, "%s/%s", out, is_json ? "tokenizer.json" : "tokenizer.model");
        s = mm_read_file(tok_path, &data, &len, &e);
        if (s == MM_OK)
            s = mm_write_file_atomic(dst, data, len, &e);
        free(data);
    }
    if (s != MM_OK)
        return cli_fail(&e);
    printf("%s: %d tensors, %zu parameters, random init (seed %llu)\n", out, n_tensors, n_floats, seed);
    return 0;
}
