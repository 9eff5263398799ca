// Random initialisation from the parameter table, so every tensor the model has is covered by name.
#include <math.h>
#include <string.h>

#include "base/str.h"
#include "base/rng.h"
#include "model/init.h"

// Box-Muller on the project's generator (two uniforms per normal keeps the stream simple to reason about).
static float normal(mm_rng *r) {
    float u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-12f)
        u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

// Projections that write into a residual stream: scaled down so the stream's variance does not grow
// with depth (GPT-2's rule).
static int is_residual_out(const char *name) {
    static const char *suf[] = {"o_proj.weight", "down_proj.weight", "out_proj.weight", "c_proj.weight",
                                "to_out.weight", "ff.3.weight",      ".1.3.weight"};
    for (size_t i = 0; i < sizeof suf / sizeof suf[0]; i++)
        if (str_ends_with(name, suf[i]))
            return 1;
    return 0;
}

mm_init_opts init_opts_default(void) { return (mm_init_opts){.gate = 0, .latent_std = 1.0f, .attn_std = 0.02f}; }

mm_status model_init_random(mm_model *m, const mm_config *cfg, uint64_t seed, const mm_init_opts *opts,
                            mm_err *e) {
    mm_init_opts o = opts ? *opts : init_opts_default();
    memset(m, 0, sizeof *m);
    m->ops = ops_cpu();
    MM_TRY(weights_init(&m->w, cfg, e));
    mm_status s = weights_alloc(&m->w, MM_F32, e);
    if (s != MM_OK) {
        weights_free(&m->w);
        return s;
    }
    mm_rng rng;
    rng_seed(&rng, seed);
    int depth = cfg->n_layers > cfg->vis_layers ? cfg->n_layers : cfg->vis_layers;
    float res_std = 0.02f / sqrtf(2.0f * (float)(depth > 0 ? depth : 1));
    for (int i = 0; i < m->w.n_params; i++) {
        mm_param *p = &m->w.params[i];
        size_t n = 1;
        for (int d = 0; d < p->ndim; d++)
            n *= (size_t)p->shape[d];
        float *x = *p->slot; // every buffer is f32 here
        float std = 0, fill = 0;
        // "perceiver.latents" itself, not the norm_latents LayerNorms (which start at 1 and 0 like any norm)
        if (!strcmp(p->name, "perceiver.latents") || strstr(p->name, "media_time_embs") ||
            strstr(p->name, "frame_embs"))
            std = o.latent_std, fill = 0;
        else if (str_ends_with(p->name, "_gate"))
            fill = o.gate;
        else if (p->kind == MM_PARAM_LORA)
            std = str_ends_with(p->name, "lora_A.weight") ? 0.02f : 0; // B = 0: a fresh adapter changes nothing
        else if (p->ndim >= 2 || strstr(p->name, "class_embedding") || strstr(p->name, "positional_embedding"))
            std = is_residual_out(p->name)                                         ? res_std
                  : strstr(p->name, ".to_q.weight") || strstr(p->name, ".to_kv.weight") ? o.attn_std
                                                                                        : 0.02f;
        else if (str_ends_with(p->name, "bias")) // ".bias" and in_proj_bias
            fill = 0;
        else
            fill = 1.0f; // norm scales
        for (size_t j = 0; j < n; j++)
            x[j] = std > 0 ? std * normal(&rng) : fill;
    }
    return MM_OK;
}
