#include "model/quant_rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int quant_scheme_parse(const char *s, mm_quant_scheme *q) {
    static const struct {
        const char *name;
        mm_dtype base, mat;
        int mixed;
    } all[] = {
        {"f32", MM_F32, MM_F32, 0},   {"f16", MM_F16, MM_F16, 0},   {"bf16", MM_BF16, MM_BF16, 0},
        {"q8_0", MM_F16, MM_Q8_0, 0}, {"q4_0", MM_F16, MM_Q4_0, 0}, {"q4_k", MM_F16, MM_Q4_K, 0},
        {"q4_k_m", MM_F16, MM_Q4_K, 1},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, all[i].name)) {
            memset(q, 0, sizeof *q);
            snprintf(q->name, sizeof q->name, "%s", all[i].name);
            q->base = all[i].base, q->mat = all[i].mat, q->mixed = all[i].mixed;
            return 0;
        }
    return -1;
}

mm_quant_scheme quant_scheme_float(mm_dtype d) {
    mm_quant_scheme q = {.base = d, .mat = d};
    snprintf(q.name, sizeof q.name, "%s", d == MM_F16 ? "f16" : d == MM_BF16 ? "bf16" : "f32");
    return q;
}

mm_quant_scheme quant_scheme_keep(void) {
    mm_quant_scheme q = {.name = "as loaded", .base = MM_F32, .mat = MM_F32, .keep = 1};
    return q;
}

// Decoder layer index of a parameter name ("lang_encoder.model.layers.12.") or -1.
static int decoder_layer(const char *name) {
    const char *k = strstr(name, "lang_encoder.model.layers.");
    return k ? atoi(k + strlen("lang_encoder.model.layers.")) : -1;
}

static int more_bits_layer(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// t if a row of `in` is whole blocks of it, else the next finer type that fits, else base.
static mm_dtype fit(mm_dtype t, int64_t in, mm_dtype base) {
    if (!mm_dtype_is_quant(t) || in % mm_dtype_block(t) == 0)
        return t;
    return in % mm_dtype_block(MM_Q8_0) == 0 ? MM_Q8_0 : base;
}

mm_dtype quant_param_dtype(const mm_quant_scheme *q, const mm_weights *w, const mm_param *p) {
    if (q->keep)
        return weights_param_dtype(w, p);
    if (p->kind != MM_PARAM_FROZEN_MAT)
        return MM_F32;
    if (!mm_dtype_is_quant(q->mat))
        return q->mat;
    if (p->ndim != 2)
        return q->base;
    const char *n = p->name;
    int64_t in = p->shape[1];
    if (!strncmp(n, "vision_encoder.", 15) && !q->vision)
        return q->base;
    if (strstr(n, "embed_tokens") || strstr(n, "lm_head"))
        return fit(q->mat == MM_Q8_0 ? MM_Q8_0 : MM_Q6_K, in, q->base);
    int L = decoder_layer(n);
    if (q->mixed && L >= 0 && !strstr(n, "gated_cross_attn") && (strstr(n, "self_attn.v_proj") || strstr(n, "mlp.down_proj")) &&
        more_bits_layer(L, w->cfg.n_layers))
        return fit(MM_Q6_K, in, q->base);
    return fit(q->mat, in, q->base);
}
