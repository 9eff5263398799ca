#include "model/names.h"

#include <stdio.h>
#include <string.h>

// Replaces the first occurrence of from with to in s (into dst); returns 0 if from is absent.
static int replace1(char *dst, const char *s, const char *from, const char *to) {
    const char *p = strstr(s, from);
    if (!p)
        return 0;
    snprintf(dst, MM_NAME_MAX, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
    return 1;
}

static int push(char out[][MM_NAME_MAX], int n, int max, const char *s) {
    if (n >= max)
        return n;
    for (int i = 0; i < n; i++)
        if (!strcmp(out[i], s))
            return n;
    snprintf(out[n], MM_NAME_MAX, "%s", s);
    return n + 1;
}

int names_aliases(const char *canonical, char out[][MM_NAME_MAX], int max) {
    char base[4][MM_NAME_MAX];
    int nb = 0;
    snprintf(base[nb++], MM_NAME_MAX, "%s", canonical);
    char t[MM_NAME_MAX];
    // The cross-attention blocks are reachable as lang_encoder.gated_cross_attn_layers.N too.
    const char *g = strstr(canonical, ".gated_cross_attn_layer.");
    const char *ml = "lang_encoder.model.layers.";
    if (g && !strncmp(canonical, ml, strlen(ml))) {
        int idx = 0;
        if (sscanf(canonical + strlen(ml), "%d", &idx) == 1) {
            snprintf(base[nb++], MM_NAME_MAX, "lang_encoder.gated_cross_attn_layers.%d.%s", idx,
                     g + strlen(".gated_cross_attn_layer."));
        }
    }
    if (replace1(t, canonical, ".decoder_layer.", "."))
        snprintf(base[nb++], MM_NAME_MAX, "%s", t);
    int n = 0;
    for (int i = 0; i < nb; i++) {
        n = push(out, n, max, base[i]);
        // PEFT wraps the language model: lang_encoder.base_model.model.<rest>, adapters may carry ".default".
        char peft[MM_NAME_MAX], dflt[MM_NAME_MAX];
        int has_peft = replace1(peft, base[i], "lang_encoder.", "lang_encoder.base_model.model.");
        if (has_peft)
            n = push(out, n, max, peft);
        for (int k = 0; k < 2; k++) {
            const char *src = k == 0 ? base[i] : peft;
            if (k == 1 && !has_peft)
                continue;
            if (replace1(dflt, src, ".lora_A.weight", ".lora_A.default.weight") ||
                replace1(dflt, src, ".lora_B.weight", ".lora_B.default.weight"))
                n = push(out, n, max, dflt);
        }
    }
    int m = n;
    for (int i = 0; i < m; i++) {
        char mod[MM_NAME_MAX];
        snprintf(mod, sizeof mod, "module.%.*s", MM_NAME_MAX - 8, out[i]);
        n = push(out, n, max, mod);
    }
    return n;
}
