// mmgpt info: a model's config and a summary of its tensors (counts per component, storage types,
// what is missing or extra), read from the headers without loading the weights.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "io/safetensors.h"
#include "model/names.h"
#include "model/weights.h"

static const char *usage_text = "usage: mmgpt info -m MODEL_DIR\n"
                                "  Prints the config and, per component, the parameter count, the storage dtypes\n"
                                "  found in the files, and any missing or unused tensors.\n";

enum { C_VISION, C_PERCEIVER, C_XATTN, C_DECODER, C_LORA, C_COUNT };
static const char *comp_names[C_COUNT] = {"vision (CLIP ViT)", "perceiver", "gated cross-attn", "decoder (LLaMA)",
                                          "LoRA adapters"};

static int component(const mm_param *p) {
    if (p->kind == MM_PARAM_LORA)
        return C_LORA;
    if (!strncmp(p->name, "vision_encoder.", 15))
        return C_VISION;
    if (!strncmp(p->name, "perceiver.", 10))
        return C_PERCEIVER;
    if (strstr(p->name, "gated_cross_attn"))
        return C_XATTN;
    return C_DECODER;
}

int cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            dir = argv[++i];
        } else {
            fputs(usage_text, stderr);
            return cli_usage("info", "unknown or incomplete option '%s'", argv[i]);
        }
    }
    if (!dir)
        return cli_usage("info", "needs -m MODEL_DIR");
    mm_err e = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    mm_config cfg;
    if (config_load(&cfg, path, &e) != MM_OK)
        return cli_fail(&e);
    mm_st st;
    if (st_open(&st, dir, &e) != MM_OK)
        return cli_fail(&e);
    mm_weights w;
    if (weights_init(&w, &cfg, &e) != MM_OK) {
        st_close(&st);
        return cli_fail(&e);
    }
    char *js = config_to_json(&cfg);
    printf("config:\n%s\n\n", js ? js : "?");
    free(js);
    long long count[C_COUNT] = {0}, bytes[C_COUNT] = {0};
    int dtypes[C_COUNT][MM_DTYPE_COUNT] = {{0}};
    int missing = 0;
    uint8_t *used = calloc((size_t)st.n + 1, 1);
    for (int i = 0; i < w.n_params; i++) {
        mm_param *p = &w.params[i];
        int c = component(p);
        long long n = 1;
        for (int d = 0; d < p->ndim; d++)
            n *= p->shape[d];
        count[c] += n;
        char al[MM_MAX_ALIASES][MM_NAME_MAX];
        int na = names_aliases(p->name, al, MM_MAX_ALIASES);
        const mm_st_tensor *t = NULL;
        for (int k = 0; k < na && !t; k++)
            t = st_find(&st, al[k]);
        if (t) {
            dtypes[c][t->dtype]++;
            bytes[c] += (long long)t->nbytes;
            used[t - st.tensors] = 1;
        } else if (!p->optional) {
            if (missing++ < 20)
                printf("missing: %s\n", p->name);
        }
    }
    printf("%-20s %16s %12s  %s\n", "component", "parameters", "file MB", "stored as");
    long long total = 0;
    for (int c = 0; c < C_COUNT; c++) {
        char dts[128] = "";
        for (int d = 0; d < MM_DTYPE_COUNT; d++)
            if (dtypes[c][d])
                snprintf(dts + strlen(dts), sizeof dts - strlen(dts), "%s%s x%d", dts[0] ? ", " : "", mm_dtype_name((mm_dtype)d),
                         dtypes[c][d]);
        printf("%-20s %16lld %12.2f  %s\n", comp_names[c], count[c], (double)bytes[c] / 1e6, dts);
        total += count[c];
    }
    printf("%-20s %16lld\n", "total", total);
    int extra = 0;
    for (int i = 0; i < st.n; i++)
        if (!used[i] && extra++ < 10)
            printf("unused: %s\n", st.tensors[i].name);
    if (missing)
        printf("%d tensor%s missing: this model will not load\n", missing, missing == 1 ? " is" : "s are");
    if (extra)
        printf("%d tensor%s in the files %s not used by this config\n", extra, extra == 1 ? "" : "s", extra == 1 ? "is" : "are");
    free(used);
    weights_free(&w);
    st_close(&st);
    return missing ? 1 : 0;
}
