#include "model/import.h"

#include <dirent.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/str.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/torch_pt.h"
#include "kernels/ops.h"
#include "model/names.h"

enum { SRC_LLAMA, SRC_CLIP, SRC_OF, SRC_LORA };
#define MAX_FILES 128

typedef struct {
    int is_pt, kind;
    mm_st st;
    mm_pt pt;
} src_file;

typedef struct {
    char *name;   // normalized: an upstream OpenFlamingo name (or an alias of one)
    int file, idx, order, used;
} entry;

struct mm_import {
    mm_import_opts o;
    src_file files[MAX_FILES];
    int n_files;
    entry *ents;
    int n_ents;
    mm_weights w;
    int lora_r;        // of the LoRA file (also when merging, where the table has none)
    float lora_scale;
};

// ---------------------------------------------------------------- sources
static mm_status add_file(mm_import *im, const char *path, int kind, mm_err *e) {
    if (im->n_files == MAX_FILES)
        return mm_errf(e, MM_ERR_ARG, "%s: more than %d weight files", path, MAX_FILES);
    src_file *f = &im->files[im->n_files];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    if (str_ends_with(path, ".safetensors") || str_ends_with(path, ".json")) {
        MM_TRY(st_open(&f->st, path, e));
    } else {
        mm_pt_options po = {.opaque_globals = pt_mmgpt_opaque_globals, .opaque_paths = pt_mmgpt_opaque_paths};
        mm_status s = pt_open(&f->pt, path, kind == SRC_LORA ? &po : NULL, e);
        if (s != MM_OK && e && strstr(e->msg, "__torch__")) // TorchScript: code, not a state dict
            return mm_errf(e, s, "%s: a TorchScript archive (like OpenAI's ViT-L-14.pt), which holds code, not a state "
                                 "dict; give open_clip's state dict (open_clip_pytorch_model.bin) or Hugging Face CLIP "
                                 "weights instead", path);
        if (s != MM_OK)
            return s;
        f->is_pt = 1;
    }
    im->n_files++;
    return MM_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// A Hugging Face LLaMA directory's weights: its safetensors (index or shards), else its .bin shards.
static mm_status add_llama_weights(mm_import *im, const char *dir, mm_err *e) {
    DIR *d = opendir(dir);
    if (!d)
        return mm_errf(e, MM_ERR_IO, "%s: not a directory (--llama wants a Hugging Face LLaMA directory)", dir);
    char *bins[MAX_FILES];
    int nb = 0, has_st = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (str_ends_with(de->d_name, ".safetensors"))
            has_st = 1;
        else if (str_ends_with(de->d_name, ".bin") && nb < MAX_FILES)
            bins[nb++] = strdup(de->d_name);
    }
    closedir(d);
    mm_status s = MM_OK;
    if (has_st) {
        src_file *f = &im->files[im->n_files];
        memset(f, 0, sizeof *f);
        f->kind = SRC_LLAMA;
        s = st_open(&f->st, dir, e);
        if (s == MM_OK)
            im->n_files++;
    } else if (nb == 0) {
        s = mm_errf(e, MM_ERR_IO, "%s: no *.safetensors or pytorch_model*.bin weights", dir);
    }
    qsort(bins, (size_t)nb, sizeof *bins, cmp_str);
    for (int i = 0; i < nb; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, bins[i]);
        if (s == MM_OK && !has_st)
            s = add_file(im, path, SRC_LLAMA, e);
        free(bins[i]);
    }
    return s;
}

// Hugging Face CLIPVisionModel names to open_clip's; q/k/v become parts #0..#2 of in_proj.
static int hf_clip_name(const char *n, char *out, size_t cap) {
    static const char *map[][2] = {
        {"embeddings.patch_embedding.weight", "conv1.weight"}, {"embeddings.class_embedding", "class_embedding"},
        {"embeddings.position_embedding.weight", "positional_embedding"}, {"pre_layrnorm.", "ln_pre."},
        {"post_layernorm.", "ln_post."}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strncmp(n, map[i][0], strlen(map[i][0]))) {
            snprintf(out, cap, "vision_encoder.visual.%s%s", map[i][1], n + strlen(map[i][0]));
            return 1;
        }
    int layer, off = 0;
    if (sscanf(n, "encoder.layers.%d.%n", &layer, &off) != 1 || !off)
        return 0;
    const char *rest = n + off;
    static const char *sub[][2] = {{"layer_norm1.", "ln_1."},  {"layer_norm2.", "ln_2."},
                                   {"self_attn.out_proj.", "attn.out_proj."}, {"mlp.fc1.", "mlp.c_fc."},
                                   {"mlp.fc2.", "mlp.c_proj."}};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
        if (!strncmp(rest, sub[i][0], strlen(sub[i][0]))) {
            snprintf(out, cap, "vision_encoder.visual.transformer.resblocks.%d.%s%s", layer, sub[i][1],
                     rest + strlen(sub[i][0]));
            return 1;
        }
    for (int k = 0; k < 3; k++) {
        char qkv[32];
        snprintf(qkv, sizeof qkv, "self_attn.%c_proj.", "qkv"[k]);
        if (!strncmp(rest, qkv, strlen(qkv))) {
            snprintf(out, cap, "vision_encoder.visual.transformer.resblocks.%d.attn.in_proj_%s#%d", layer,
                     rest + strlen(qkv), k);
            return 1;
        }
    }
    return 0;
}

// Maps a source tensor's name into the upstream namespace; 0 = not part of the model (text tower,
// rotary caches).
static int normalize(int kind, const char *name, char *out, size_t cap) {
    static const char *wrappers[] = {"module.", "model_state_dict.", "state_dict."};
    for (int again = 1; again && kind != SRC_LLAMA;) {
        again = 0;
        for (size_t i = 0; i < 3; i++)
            if (!strncmp(name, wrappers[i], strlen(wrappers[i]))) {
                name += strlen(wrappers[i]);
                again = 1;
            }
    }
    switch (kind) {
    case SRC_LLAMA:
        if (strstr(name, "rotary_emb.inv_freq"))
            return 0;
        snprintf(out, cap, "lang_encoder.%s", name);
        return 1;
    case SRC_CLIP:
        if (!strncmp(name, "visual.", 7)) {
            snprintf(out, cap, "vision_encoder.%s", name);
            return 1;
        }
        if (!strncmp(name, "vision_encoder.", 15)) {
            snprintf(out, cap, "%s", name);
            return 1;
        }
        if (!strncmp(name, "vision_model.", 13))
            return hf_clip_name(name + 13, out, cap);
        return 0;
    default:
        snprintf(out, cap, "%s", name);
        return 1;
    }
}

static const char *file_tensor_name(const src_file *f, int i) { return f->is_pt ? f->pt.tensors[i].name : f->st.tensors[i].name; }
static int file_tensor_count(const src_file *f) { return f->is_pt ? f->pt.n_tensors : f->st.n; }

static int cmp_entry(const void *a, const void *b) {
    const entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->order - y->order;
}

static mm_status build_index(mm_import *im, mm_err *e) {
    int total = 0;
    for (int f = 0; f < im->n_files; f++)
        total += file_tensor_count(&im->files[f]);
    im->ents = calloc((size_t)total + 1, sizeof *im->ents);
    if (!im->ents)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory indexing %d tensors", total);
    for (int f = 0; f < im->n_files; f++)
        for (int i = 0; i < file_tensor_count(&im->files[f]); i++) {
            char n[MM_NAME_MAX];
            if (!normalize(im->files[f].kind, file_tensor_name(&im->files[f], i), n, sizeof n))
                continue;
            entry *en = &im->ents[im->n_ents];
            if (!(en->name = strdup(n)))
                return mm_errf(e, MM_ERR_NOMEM, "out of memory");
            en->file = f, en->idx = i, en->order = im->n_ents++;
        }
    qsort(im->ents, (size_t)im->n_ents, sizeof *im->ents, cmp_entry);
    return MM_OK;
}

// The last source that has exactly this name (later sources override: OpenFlamingo's embed_tokens,
// with the added rows, replaces LLaMA's). Earlier ones count as used.
static entry *find_exact(mm_import *im, const char *name) {
    int lo = 0, hi = im->n_ents;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(im->ents[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    entry *found = NULL;
    for (int i = lo; i < im->n_ents && !strcmp(im->ents[i].name, name); i++) {
        im->ents[i].used = 1;
        found = &im->ents[i];
    }
    return found;
}

static entry *find(mm_import *im, const char *canonical) {
    char al[MM_MAX_ALIASES][MM_NAME_MAX];
    int n = names_aliases(canonical, al, MM_MAX_ALIASES);
    for (int i = 0; i < n; i++) {
        entry *en = find_exact(im, al[i]);
        if (en)
            return en;
    }
    return NULL;
}

static void entry_shape(const mm_import *im, const entry *en, int *ndim, const int64_t **shape, int64_t *numel) {
    const src_file *f = &im->files[en->file];
    if (f->is_pt) {
        const mm_pt_tensor *t = &f->pt.tensors[en->idx];
        *ndim = t->ndim, *shape = t->shape, *numel = t->numel;
    } else {
        const mm_st_tensor *t = &f->st.tensors[en->idx];
        *ndim = t->ndim, *shape = t->shape, *numel = t->numel;
    }
}

static mm_status entry_f32(const mm_import *im, const entry *en, float *dst, mm_err *e) {
    const src_file *f = &im->files[en->file];
    if (f->is_pt)
        return pt_to_f32(&f->pt, &f->pt.tensors[en->idx], dst, e);
    const mm_st_tensor *t = &f->st.tensors[en->idx];
    if (mm_convert_to_f32(dst, t->data, t->dtype, (size_t)t->numel) != 0)
        return mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' has dtype %s, not a float type", f->st.paths[t->file], t->name,
                       mm_dtype_name(t->dtype));
    return MM_OK;
}

static const char *entry_file(const mm_import *im, const entry *en) {
    const src_file *f = &im->files[en->file];
    return f->is_pt ? "checkpoint" : f->st.paths[f->st.tensors[en->idx].file];
}

static int64_t dim0(mm_import *im, const char *name, int axis) {
    entry *en = find(im, name);
    if (!en)
        return -1;
    int nd;
    const int64_t *sh;
    int64_t ne;
    entry_shape(im, en, &nd, &sh, &ne);
    return axis < nd ? sh[axis] : -1;
}

// The largest N + 1 over names "<prefix>N.<anything>" (a count of numbered layers).
static int count_layers(mm_import *im, const char *prefix) {
    int n = 0;
    size_t pl = strlen(prefix);
    for (int i = 0; i < im->n_ents; i++) {
        int k;
        if (!strncmp(im->ents[i].name, prefix, pl) && sscanf(im->ents[i].name + pl, "%d.", &k) == 1 && k + 1 > n)
            n = k + 1;
    }
    return n;
}

// ---------------------------------------------------------------- config (SPEC.md section 7)
static mm_status llama_config(mm_config *c, const char *dir, mm_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_object *root;
    mm_status s = json_read_object(path, &root, e);
    if (s != MM_OK)
        return s;
    struct { const char *k; int *dst; } ints[] = {{"hidden_size", &c->dim}, {"intermediate_size", &c->ffn},
                                                  {"num_hidden_layers", &c->n_layers}, {"num_attention_heads", &c->n_heads},
                                                  {"max_position_embeddings", &c->max_seq}};
    json_object *v;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && s == MM_OK; i++) {
        if (!json_object_object_get_ex(root, ints[i].k, &v) || !json_object_is_type(v, json_type_int))
            s = mm_errf(e, MM_ERR_FORMAT, "%s: \"%s\" missing or not an integer", path, ints[i].k);
        else
            *ints[i].dst = json_object_get_int(v);
    }
    if (s == MM_OK && json_object_object_get_ex(root, "num_key_value_heads", &v) && json_object_get_int(v) != c->n_heads)
        s = mm_errf(e, MM_ERR_UNSUPPORTED, "%s: grouped-query attention (num_key_value_heads %d) is not LLaMA-1; "
                                           "mmgpt supports the LLaMA-7B architecture", path, json_object_get_int(v));
    c->norm_eps = 1e-6f;
    c->rope_theta = 10000.0f;
    if (s == MM_OK && json_object_object_get_ex(root, "rms_norm_eps", &v))
        c->norm_eps = (float)json_object_get_double(v);
    if (s == MM_OK && json_object_object_get_ex(root, "rope_theta", &v))
        c->rope_theta = (float)json_object_get_double(v);
    if (s == MM_OK && json_object_object_get_ex(root, "rope_scaling", &v) && !json_object_is_type(v, json_type_null))
        s = mm_errf(e, MM_ERR_UNSUPPORTED, "%s: rope_scaling is not supported", path);
    json_object_put(root);
    return s;
}

static mm_status heads_of(int64_t inner, const char *what, int *heads, int *dim_head, mm_err *e) {
    if (inner <= 0 || inner % 64)
        return mm_errf(e, MM_ERR_FORMAT, "%s has %lld rows, not a multiple of the 64-wide heads upstream uses; "
                                         "give the config with --config", what, (long long)inner);
    *heads = (int)(inner / 64);
    *dim_head = 64;
    return MM_OK;
}

// lora_alpha from Multimodal-GPT's pickled mmengine tuning_config (kept opaque, never constructed:
// its recorded state is searched for the key), or 0 when absent.
static float tuning_config_alpha(const mm_import *im) {
    for (int f = 0; f < im->n_files; f++) {
        if (im->files[f].kind != SRC_LORA || !im->files[f].is_pt)
            continue;
        const mm_pk *tc = pt_get(&im->files[f].pt, "tuning_config");
        const mm_pk *a = tc ? pk_find_key(tc, "lora_alpha", 8) : NULL;
        if (a && a->kind == MM_PK_INT)
            return (float)a->i;
        if (a && a->kind == MM_PK_FLOAT)
            return (float)a->f;
    }
    return 0;
}

// LoRA rank and targeted module kinds, from the adapter tensors' names.
static void lora_config(mm_import *im, mm_config *c) {
    int r = 0, nt = 0;
    for (int i = 0; i < im->n_ents; i++) {
        const entry *en = &im->ents[i];
        const char *a = strstr(en->name, ".lora_A.");
        if (im->files[en->file].kind != SRC_LORA || !a)
            continue;
        int nd;
        const int64_t *sh;
        int64_t ne;
        entry_shape(im, en, &nd, &sh, &ne);
        r = (int)sh[0];
        // The module kind: its last name component, or the last two when that is a number ("ff.1").
        char mod[MM_NAME_MAX];
        snprintf(mod, sizeof mod, "%.*s", (int)(a - en->name), en->name);
        char *dot = strrchr(mod, '.'), *kind = dot ? dot + 1 : mod;
        if (dot && kind[0] >= '0' && kind[0] <= '9') {
            *dot = 0;
            char *d2 = strrchr(mod, '.');
            *dot = '.';
            kind = d2 ? d2 + 1 : mod;
        }
        int seen = 0;
        for (int k = 0; k < nt; k++)
            seen |= !strcmp(c->lora_targets[k], kind);
        if (!seen && nt < MM_MAX_LORA_TARGETS)
            snprintf(c->lora_targets[nt++], sizeof c->lora_targets[0], "%.47s", kind);
    }
    im->lora_r = r;
    float alpha = im->o.lora_alpha > 0 ? im->o.lora_alpha : tuning_config_alpha(im);
    if (!(alpha > 0))
        alpha = (float)r;
    im->lora_scale = r ? alpha / (float)r : 0;
    c->lora_r = im->o.merge_lora ? 0 : r;
    c->lora_alpha = alpha;
    c->lora_dropout = 0;
    c->n_lora_targets = nt;
    c->n_lora_scopes = 1;
    snprintf(c->lora_scopes[0], sizeof c->lora_scopes[0], "lang_encoder");
}

static mm_status infer_config(mm_import *im, mm_config *c, mm_err *e) {
    MM_TRY(config_preset(c, "openflamingo-9b", e));
    MM_TRY(llama_config(c, im->o.llama_dir, e));
    c->vocab = im->o.vocab;
    c->bos_id = im->o.bos, c->eos_id = im->o.eos, c->media_id = im->o.media, c->eoc_id = im->o.eoc, c->pad_id = im->o.pad;
    const char *conv = "vision_encoder.visual.conv1.weight";
    int64_t W = dim0(im, conv, 0), P = dim0(im, conv, 2), R = dim0(im, "vision_encoder.visual.positional_embedding", 0);
    if (W <= 0 || P <= 0 || R <= 1)
        return mm_errf(e, MM_ERR_FORMAT, "%s: no CLIP vision tower found (visual.conv1.weight, visual.positional_embedding)",
                       im->o.clip);
    int64_t g = (int64_t)llround(sqrt((double)(R - 1)));
    if (g * g != R - 1)
        return mm_errf(e, MM_ERR_FORMAT, "%s: %lld positional rows is not 1 + a square grid", im->o.clip, (long long)R);
    c->vis_width = (int)W, c->vis_patch = (int)P, c->vis_image_size = (int)(g * P);
    c->vis_layers = count_layers(im, "vision_encoder.visual.transformer.resblocks.");
    c->vis_mlp = (int)dim0(im, "vision_encoder.visual.transformer.resblocks.0.mlp.c_fc.weight", 0);
    if (W % 64)
        return mm_errf(e, MM_ERR_FORMAT, "%s: width %lld is not a multiple of open_clip's 64-wide heads; give --config",
                       im->o.clip, (long long)W);
    c->vis_heads = (int)(W / 64), c->vis_eps = 1e-5f, c->vis_ln_post = 0;
    int64_t nl = dim0(im, "perceiver.latents", 0);
    if (nl <= 0)
        return mm_errf(e, MM_ERR_FORMAT, "%s: no perceiver.latents: not an OpenFlamingo checkpoint", im->o.openflamingo);
    c->perc_latents = (int)nl;
    c->perc_depth = count_layers(im, "perceiver.layers.");
    MM_TRY(heads_of(dim0(im, "perceiver.layers.0.0.to_q.weight", 0), "perceiver.layers.0.0.to_q.weight", &c->perc_heads,
                    &c->perc_dim_head, e));
    c->perc_ff_mult = (int)(dim0(im, "perceiver.layers.0.1.1.weight", 0) / W);
    int64_t mt = dim0(im, "perceiver.media_time_embs", 0), fr = dim0(im, "perceiver.frame_embs", 0);
    c->perc_max_media = mt > 0 ? (int)mt : 0;
    c->perc_max_frames = fr > 0 ? (int)fr : 0;
    c->perc_eps = 1e-5f;
    // The first decoder layer carrying a gated block gives the spacing.
    c->xattn_every = 0;
    for (int i = 0; i < c->n_layers && !c->xattn_every; i++) {
        char n[MM_NAME_MAX];
        snprintf(n, sizeof n, "lang_encoder.model.layers.%d.gated_cross_attn_layer.attn_gate", i);
        if (find(im, n))
            c->xattn_every = i + 1;
    }
    if (!c->xattn_every)
        return mm_errf(e, MM_ERR_FORMAT, "%s: no gated cross-attention blocks", im->o.openflamingo);
    char n[MM_NAME_MAX];
    snprintf(n, sizeof n, "lang_encoder.model.layers.%d.gated_cross_attn_layer.attn.to_q.weight", c->xattn_every - 1);
    MM_TRY(heads_of(dim0(im, n, 0), "the cross-attention to_q", &c->xattn_heads, &c->xattn_dim_head, e));
    snprintf(n, sizeof n, "lang_encoder.model.layers.%d.gated_cross_attn_layer.ff.1.weight", c->xattn_every - 1);
    c->xattn_ff_mult = (int)(dim0(im, n, 0) / c->dim);
    c->xattn_eps = 1e-5f;
    c->media_rule = MM_MEDIA_NEXT;
    return MM_OK;
}

// Every parameter present with its shape (in_proj from q/k/v parts counts); names the missing ones.
static mm_status check_all(mm_import *im, mm_err *e) {
    int missing = 0;
    char first[1024] = "";
    for (int i = 0; i < im->w.n_params; i++) {
        const mm_param *p = &im->w.params[i];
        entry *en = find(im, p->name);
        if (!en) {
            char part[MM_NAME_MAX + 4];
            snprintf(part, sizeof part, "%s#0", p->name);
            if (find(im, part)) {
                for (int k = 1; k < 3; k++) {
                    snprintf(part, sizeof part, "%s#%d", p->name, k);
                    find(im, part);
                }
                continue;
            }
            if (p->optional)
                continue;
            if (missing++ < 3)
                snprintf(first + strlen(first), sizeof first - strlen(first), "%s'%s'", missing > 1 ? ", " : "", p->name);
            continue;
        }
        int nd;
        const int64_t *sh;
        int64_t ne;
        entry_shape(im, en, &nd, &sh, &ne);
        int ok = nd == p->ndim;
        for (int d = 0; ok && d < nd; d++)
            ok = sh[d] == p->shape[d] || (d == 0 && p->pad_rows_from && sh[0] >= p->pad_rows_from && sh[0] < p->shape[0]);
        if (!ok) {
            char got[96] = "[", want[96] = "[";
            for (int d = 0; d < nd; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)sh[d]);
            for (int d = 0; d < p->ndim; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)p->shape[d]);
            return mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' has shape %s], expected %s]", entry_file(im, en), p->name,
                           got, want);
        }
        if (im->o.merge_lora && p->kind == MM_PARAM_FROZEN_MAT && str_ends_with(p->name, ".weight")) {
            char mod[MM_NAME_MAX], an[MM_NAME_MAX + 16];
            snprintf(mod, sizeof mod, "%.*s", (int)(strlen(p->name) - 7), p->name);
            snprintf(an, sizeof an, "%s.lora_A.weight", mod);
            find(im, an);
            snprintf(an, sizeof an, "%s.lora_B.weight", mod);
            find(im, an);
        }
    }
    if (missing)
        return mm_errf(e, MM_ERR_FORMAT, "%d tensor%s missing from the sources: %s%s", missing, missing > 1 ? "s are" : " is",
                       first, missing > 3 ? ", ..." : "");
    return MM_OK;
}

mm_status import_open(mm_import **out, const mm_import_opts *o, mm_err *e) {
    *out = NULL;
    if (!o->llama_dir || !o->clip || !o->openflamingo)
        return mm_errf(e, MM_ERR_ARG, "importing needs the LLaMA directory, the CLIP weights and the OpenFlamingo checkpoint");
    mm_import *im = calloc(1, sizeof *im);
    if (!im)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    im->o = *o;
    mm_status s = add_llama_weights(im, o->llama_dir, e);
    if (s == MM_OK)
        s = add_file(im, o->clip, SRC_CLIP, e);
    if (s == MM_OK)
        s = add_file(im, o->openflamingo, SRC_OF, e);
    if (s == MM_OK && o->lora)
        s = add_file(im, o->lora, SRC_LORA, e);
    if (s == MM_OK)
        s = build_index(im, e);
    mm_config c;
    if (s == MM_OK && o->config)
        c = *o->config;
    else if (s == MM_OK)
        s = infer_config(im, &c, e);
    if (s == MM_OK && o->lora)
        lora_config(im, &c);
    else if (s == MM_OK && !o->config)
        c.lora_r = 0;
    if (s == MM_OK)
        s = weights_init(&im->w, &c, e);
    if (s == MM_OK) {
        im->w.mat_dtype = MM_F32;
        s = check_all(im, e);
    }
    if (s != MM_OK) {
        import_close(im);
        return s;
    }
    *out = im;
    return MM_OK;
}

const mm_weights *import_weights(const mm_import *im) { return &im->w; }

static mm_status fetch_in_proj(mm_import *im, const mm_param *p, float *dst, mm_err *e) {
    size_t off = 0;
    for (int k = 0; k < 3; k++) {
        char part[MM_NAME_MAX + 4];
        snprintf(part, sizeof part, "%s#%d", p->name, k);
        entry *en = find(im, part);
        if (!en)
            return mm_errf(e, MM_ERR_FORMAT, "missing tensor '%s' (or its q/k/v parts)", p->name);
        int nd;
        const int64_t *sh;
        int64_t ne;
        entry_shape(im, en, &nd, &sh, &ne);
        if ((size_t)ne * 3 != (size_t)(p->ndim == 2 ? p->shape[0] * p->shape[1] : p->shape[0]))
            return mm_errf(e, MM_ERR_FORMAT, "%s: a q/k/v part of '%s' has %lld elements, expected a third of the whole",
                           entry_file(im, en), p->name, (long long)ne);
        MM_TRY(entry_f32(im, en, dst + off, e));
        off += (size_t)ne;
    }
    return MM_OK;
}

mm_status import_fetch(void *user, const mm_param *p, float *dst, mm_err *e) {
    mm_import *im = user;
    size_t numel = 1;
    for (int d = 0; d < p->ndim; d++)
        numel *= (size_t)p->shape[d];
    entry *en = find(im, p->name);
    if (!en) {
        if (strstr(p->name, ".in_proj_"))
            return fetch_in_proj(im, p, dst, e);
        if (!p->optional)
            return mm_errf(e, MM_ERR_FORMAT, "missing tensor '%s'", p->name);
        for (size_t i = 0; i < numel; i++) // ln_post, unused by the default tap: identity
            dst[i] = strstr(p->name, ".weight") ? 1.0f : 0.0f;
        return MM_OK;
    }
    int nd;
    const int64_t *sh;
    int64_t ne;
    entry_shape(im, en, &nd, &sh, &ne);
    MM_TRY(entry_f32(im, en, dst, e));
    if ((size_t)ne < numel)
        memset(dst + ne, 0, sizeof(float) * (numel - (size_t)ne)); // lm_head rows of the added tokens
    if (!im->o.merge_lora || p->kind != MM_PARAM_FROZEN_MAT || !str_ends_with(p->name, ".weight") || p->ndim != 2)
        return MM_OK;
    char mod[MM_NAME_MAX], an[MM_NAME_MAX + 16], bn[MM_NAME_MAX + 16];
    snprintf(mod, sizeof mod, "%.*s", (int)(strlen(p->name) - 7), p->name);
    snprintf(an, sizeof an, "%s.lora_A.weight", mod);
    snprintf(bn, sizeof bn, "%s.lora_B.weight", mod);
    entry *ea = find(im, an), *eb = find(im, bn);
    if (!ea || !eb)
        return MM_OK;
    int r = im->lora_r, out = (int)p->shape[0], in = (int)p->shape[1];
    float *a = malloc(sizeof(float) * (size_t)r * in), *b = malloc(sizeof(float) * (size_t)out * r);
    mm_status s = a && b ? MM_OK : mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (s == MM_OK)
        s = entry_f32(im, ea, a, e);
    if (s == MM_OK)
        s = entry_f32(im, eb, b, e);
    if (s == MM_OK) // W += scale * B A, in f32 as the forward computes the adapter
        ops_cpu()->gemm(0, 0, out, in, r, im->lora_scale, b, r, a, in, 1.0f, dst, in);
    free(a);
    free(b);
    return s;
}

int import_unused(const mm_import *im, char *names, size_t n) {
    int count = 0;
    if (n)
        names[0] = 0;
    for (int i = 0; i < im->n_ents; i++) {
        if (im->ents[i].used || strstr(im->ents[i].name, "visual.proj")) // CLIP's projection: unused upstream too
            continue;
        if (count++ < 8 && n)
            snprintf(names + strlen(names), n - strlen(names), "  %s\n", im->ents[i].name);
    }
    return count;
}

void import_close(mm_import *im) {
    if (!im)
        return;
    for (int f = 0; f < im->n_files; f++) {
        if (im->files[f].is_pt)
            pt_close(&im->files[f].pt);
        else
            st_close(&im->files[f].st);
    }
    for (int i = 0; i < im->n_ents; i++)
        free(im->ents[i].name);
    free(im->ents);
    weights_free(&im->w);
    free(im);
}
