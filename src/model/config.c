#include "model/config.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"

static void lora_mmgpt(mm_config *c) {
    static const char *t[] = {"q_proj", "k_proj", "v_proj", "o_proj", "to_q", "to_kv", "to_out", "ff.1", "ff.3"};
    c->lora_r = 16;
    c->lora_alpha = 16;
    c->lora_dropout = 0;
    c->n_lora_targets = 9;
    for (int i = 0; i < 9; i++)
        snprintf(c->lora_targets[i], sizeof c->lora_targets[i], "%s", t[i]);
    c->n_lora_scopes = 1;
    snprintf(c->lora_scopes[0], sizeof c->lora_scopes[0], "lang_encoder");
}

mm_status config_preset(mm_config *c, const char *name, mm_err *e) {
    memset(c, 0, sizeof *c);
    // OpenFlamingo-9B: CLIP ViT-L/14, perceiver 6x8x64 with 64 latents, LLaMA-7B + 8 gated blocks.
    *c = (mm_config){
        .vis_image_size = 224, .vis_patch = 14, .vis_width = 1024, .vis_layers = 24, .vis_heads = 16, .vis_mlp = 4096,
        .vis_eps = 1e-5f, .perc_depth = 6, .perc_heads = 8, .perc_dim_head = 64, .perc_latents = 64, .perc_ff_mult = 4,
        .perc_eps = 1e-5f, .dim = 4096, .n_layers = 32, .n_heads = 32, .ffn = 11008, .vocab = 32003, .max_seq = 2048,
        .rope_theta = 10000.0f, .norm_eps = 1e-6f, .xattn_every = 4, .xattn_heads = 8, .xattn_dim_head = 64,
        .xattn_ff_mult = 4, .xattn_eps = 1e-5f, .media_rule = MM_MEDIA_NEXT, .bos_id = 1, .eos_id = 2, .pad_id = 32002,
        .media_id = 32001, .eoc_id = 32000,
    };
    lora_mmgpt(c);
    if (!strcmp(name, "openflamingo-9b"))
        return MM_OK;
    if (!strcmp(name, "tiny")) {
        // Small and deliberately awkward: odd widths, 3 heads, several cross-attention blocks.
        c->vis_image_size = 28, c->vis_patch = 7, c->vis_width = 48, c->vis_layers = 2, c->vis_heads = 3,
        c->vis_mlp = 80;
        c->perc_depth = 2, c->perc_heads = 3, c->perc_dim_head = 8, c->perc_latents = 5, c->perc_ff_mult = 2;
        c->dim = 36, c->n_layers = 4, c->n_heads = 3, c->ffn = 52, c->vocab = 101, c->max_seq = 256;
        c->xattn_every = 2, c->xattn_heads = 3, c->xattn_dim_head = 10, c->xattn_ff_mult = 2;
        c->bos_id = 1, c->eos_id = 2, c->eoc_id = 98, c->media_id = 99, c->pad_id = 100;
        c->lora_r = 4, c->lora_alpha = 8;
        return MM_OK;
    }
    return mm_errf(e, MM_ERR_ARG, "unknown config preset '%s' (known: openflamingo-9b, tiny)", name);
}

// Field readers: each returns 0 when the key is absent, 1 when read, -1 on a type error.
static int get_int(json_object *o, const char *k, int *v) {
    json_object *x;
    if (!json_object_object_get_ex(o, k, &x) || json_object_is_type(x, json_type_null))
        return 0;
    if (!json_object_is_type(x, json_type_int))
        return -1;
    int64_t n = json_object_get_int64(x);
    if (n < -2147483647 || n > 2147483647)
        return -1;
    *v = (int)n;
    return 1;
}

static int get_float(json_object *o, const char *k, float *v) {
    json_object *x;
    if (!json_object_object_get_ex(o, k, &x) || json_object_is_type(x, json_type_null))
        return 0;
    if (!json_object_is_type(x, json_type_int) && !json_object_is_type(x, json_type_double))
        return -1;
    *v = (float)json_object_get_double(x);
    return 1;
}

static int get_bool(json_object *o, const char *k, int *v) {
    json_object *x;
    if (!json_object_object_get_ex(o, k, &x))
        return 0;
    if (!json_object_is_type(x, json_type_boolean))
        return -1;
    *v = json_object_get_boolean(x);
    return 1;
}

typedef struct {
    const char *key;
    char type; // i, f, b
    size_t off;
} field;

#define FI(k, m) {k, 'i', offsetof(mm_config, m)}
#define FF(k, m) {k, 'f', offsetof(mm_config, m)}
#define FB(k, m) {k, 'b', offsetof(mm_config, m)}
// A switch written only when on, so models that leave it off keep the files they had before it existed.
#define FO(k, m) {k, 'o', offsetof(mm_config, m)}

static const field vision_fields[] = {FI("image_size", vis_image_size), FI("patch_size", vis_patch), FI("width", vis_width),
                                      FI("layers", vis_layers), FI("heads", vis_heads), FI("mlp_dim", vis_mlp),
                                      FF("eps", vis_eps), FB("ln_post", vis_ln_post),
                                      FO("open_clip_order", vis_open_clip_order), FO("exif_orientation", vis_exif),
                                      {0}};
static const field perceiver_fields[] = {FI("depth", perc_depth), FI("heads", perc_heads), FI("dim_head", perc_dim_head),
                                         FI("num_latents", perc_latents), FI("ff_mult", perc_ff_mult),
                                         FI("max_num_media", perc_max_media), FI("max_num_frames", perc_max_frames),
                                         FF("eps", perc_eps), {0}};
static const field decoder_fields[] = {FI("dim", dim), FI("layers", n_layers), FI("heads", n_heads), FI("ffn_dim", ffn),
                                       FI("vocab_size", vocab), FI("max_seq_len", max_seq), FF("rope_theta", rope_theta),
                                       FF("norm_eps", norm_eps), {0}};
static const field xattn_fields[] = {FI("every_n_layers", xattn_every), FI("heads", xattn_heads),
                                     FI("dim_head", xattn_dim_head), FI("ff_mult", xattn_ff_mult), FF("eps", xattn_eps), {0}};
static const field token_fields[] = {FI("bos", bos_id), FI("eos", eos_id), FI("pad", pad_id), FI("media", media_id),
                                     FI("eoc", eoc_id), {0}};
static const field lora_fields[] = {FI("r", lora_r), FF("alpha", lora_alpha), FF("dropout", lora_dropout), {0}};

static mm_status read_section(mm_config *c, json_object *root, const char *sec, const field *f, const char *where,
                              mm_err *e) {
    json_object *o;
    if (!json_object_object_get_ex(root, sec, &o) || json_object_is_type(o, json_type_null))
        return MM_OK;
    if (!json_object_is_type(o, json_type_object))
        return mm_errf(e, MM_ERR_FORMAT, "%s: %s: expected an object", where, sec);
    for (; f->key; f++) {
        char *p = (char *)c + f->off;
        int r = f->type == 'i' ? get_int(o, f->key, (int *)p)
                : f->type == 'f' ? get_float(o, f->key, (float *)p)
                                 : get_bool(o, f->key, (int *)p);
        if (r < 0)
            return mm_errf(e, MM_ERR_FORMAT, "%s: %s.%s: expected %s", where, sec, f->key,
                           f->type == 'i' ? "an integer" : f->type == 'f' ? "a number" : "true or false");
    }
    // Unknown keys are refused so a misspelt field cannot silently keep a default.
    json_object_object_foreach(o, key, val) {
        (void)val;
        int known = 0;
        for (const field *h = (sec[0] == 'v' ? vision_fields : sec[0] == 'p' ? perceiver_fields : sec[0] == 'd' ? decoder_fields
                               : sec[0] == 'c' ? xattn_fields : sec[0] == 't' ? token_fields : lora_fields);
             h->key; h++)
            if (!strcmp(h->key, key))
                known = 1;
        if (!strcmp(sec, "cross_attn") && !strcmp(key, "media_rule"))
            known = 1;
        if (!strcmp(sec, "lora") && (!strcmp(key, "targets") || !strcmp(key, "scope")))
            known = 1;
        if (!known)
            return mm_errf(e, MM_ERR_FORMAT, "%s: %s.%s: unknown field", where, sec, key);
    }
    return MM_OK;
}

static mm_status read_strings(json_object *o, const char *key, char *dst, int max, size_t width, int *n,
                              const char *where, mm_err *e) {
    json_object *a;
    if (!json_object_object_get_ex(o, key, &a))
        return MM_OK;
    if (!json_object_is_type(a, json_type_array) || (int)json_object_array_length(a) > max)
        return mm_errf(e, MM_ERR_FORMAT, "%s: lora.%s: expected an array of at most %d strings", where, key, max);
    *n = (int)json_object_array_length(a);
    for (int i = 0; i < *n; i++) {
        json_object *s = json_object_array_get_idx(a, (size_t)i);
        if (!json_object_is_type(s, json_type_string) || strlen(json_object_get_string(s)) >= width)
            return mm_errf(e, MM_ERR_FORMAT, "%s: lora.%s[%d]: expected a string shorter than %zu", where, key, i, width);
        snprintf(dst + (size_t)i * width, width, "%s", json_object_get_string(s));
    }
    return MM_OK;
}

mm_status config_parse(mm_config *c, const char *json, const char *where, mm_err *e) {
    json_object *root;
    MM_TRY(json_parse_object(json, strlen(json), where, &root, e));
    mm_status s = MM_OK;
    json_object *p;
    const char *preset = "openflamingo-9b";
    if (json_object_object_get_ex(root, "preset", &p)) {
        if (!json_object_is_type(p, json_type_string))
            s = mm_errf(e, MM_ERR_FORMAT, "%s: preset: expected a string", where);
        else
            preset = json_object_get_string(p);
    }
    if (s == MM_OK)
        s = config_preset(c, preset, e);
    static const char *secs[] = {"vision", "perceiver", "decoder", "cross_attn", "tokens", "lora"};
    const field *fs[] = {vision_fields, perceiver_fields, decoder_fields, xattn_fields, token_fields, lora_fields};
    for (int i = 0; i < 6 && s == MM_OK; i++)
        s = read_section(c, root, secs[i], fs[i], where, e);
    json_object *x;
    if (s == MM_OK && json_object_object_get_ex(root, "cross_attn", &x) && json_object_object_get_ex(x, "media_rule", &p)) {
        const char *r = json_object_get_string(p);
        if (json_object_is_type(p, json_type_string) && !strcmp(r, "next"))
            c->media_rule = MM_MEDIA_NEXT;
        else if (json_object_is_type(p, json_type_string) && !strcmp(r, "previous"))
            c->media_rule = MM_MEDIA_PREV;
        else
            s = mm_errf(e, MM_ERR_FORMAT, "%s: cross_attn.media_rule: expected \"next\" (Multimodal-GPT) or \"previous\"", where);
    }
    if (s == MM_OK && json_object_object_get_ex(root, "lora", &x)) {
        if (json_object_is_type(x, json_type_null)) {
            c->lora_r = 0;
        } else {
            s = read_strings(x, "targets", &c->lora_targets[0][0], MM_MAX_LORA_TARGETS, sizeof c->lora_targets[0],
                             &c->n_lora_targets, where, e);
            if (s == MM_OK)
                s = read_strings(x, "scope", &c->lora_scopes[0][0], 4, sizeof c->lora_scopes[0], &c->n_lora_scopes, where, e);
        }
    }
    json_object_object_foreach(root, key, val) {
        (void)val;
        if (s != MM_OK)
            break;
        int known = !strcmp(key, "preset");
        for (int i = 0; i < 6; i++)
            known |= !strcmp(key, secs[i]);
        if (!known)
            s = mm_errf(e, MM_ERR_FORMAT, "%s: %s: unknown section", where, key);
    }
    json_object_put(root);
    if (s == MM_OK)
        s = config_validate(c, e);
    if (s != MM_OK && e && !strstr(e->msg, where))
        mm_err_prefix(e, "%s", where);
    return s;
}

mm_status config_load(mm_config *c, const char *path, mm_err *e) {
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(path, &buf, &len, e));
    mm_status s = config_parse(c, (const char *)buf, path, e);
    free(buf);
    return s;
}

mm_status config_validate(const mm_config *c, mm_err *e) {
#define NEED(cond, what) \
    if (!(cond))         \
    return mm_errf(e, MM_ERR_FORMAT, "config: %s", what)
    NEED(c->vis_patch > 0 && c->vis_image_size > 0 && c->vis_image_size % c->vis_patch == 0,
         "vision.image_size must be a positive multiple of vision.patch_size");
    NEED(c->vis_width > 0 && c->vis_layers >= 0 && c->vis_heads > 0 && c->vis_width % c->vis_heads == 0,
         "vision.width must be divisible by vision.heads");
    NEED(c->vis_mlp > 0, "vision.mlp_dim must be positive");
    NEED(c->perc_depth >= 0 && c->perc_heads > 0 && c->perc_dim_head > 0 && c->perc_latents > 0 && c->perc_ff_mult > 0,
         "perceiver sizes must be positive");
    NEED(c->perc_max_media >= 0 && c->perc_max_frames >= 0, "perceiver.max_num_media/max_num_frames must be >= 0");
    NEED(c->dim > 0 && c->n_layers > 0 && c->n_heads > 0 && c->dim % c->n_heads == 0,
         "decoder.dim must be divisible by decoder.heads");
    NEED((c->dim / c->n_heads) % 2 == 0, "decoder head dim (dim / heads) must be even for rotary embeddings");
    NEED(c->ffn > 0 && c->vocab > 0 && c->max_seq > 0, "decoder.ffn_dim, vocab_size, max_seq_len must be positive");
    NEED(c->xattn_every >= 0 && c->xattn_heads > 0 && c->xattn_dim_head > 0 && c->xattn_ff_mult > 0,
         "cross_attn sizes must be positive");
    NEED(c->bos_id >= 0 && c->bos_id < c->vocab && c->eos_id >= 0 && c->eos_id < c->vocab, "tokens.bos/eos out of the vocabulary");
    NEED(c->media_id >= 0 && c->media_id < c->vocab, "tokens.media out of the vocabulary");
    NEED(c->lora_r >= 0 && (c->lora_r == 0 || c->lora_alpha != 0), "lora.r must be >= 0 with a non-zero alpha");
#undef NEED
    return MM_OK;
}

char *config_to_json(const mm_config *c) {
    json_object *root = json_object_new_object();
    const char *secs[] = {"vision", "perceiver", "decoder", "cross_attn", "tokens", "lora"};
    const field *fs[] = {vision_fields, perceiver_fields, decoder_fields, xattn_fields, token_fields, lora_fields};
    for (int i = 0; i < 6; i++) {
        if (i == 5 && c->lora_r == 0) {
            json_object_object_add(root, "lora", NULL);
            continue;
        }
        json_object *o = json_object_new_object();
        for (const field *f = fs[i]; f->key; f++) {
            const char *p = (const char *)c + f->off;
            if (f->type == 'o' && !*(const int *)p)
                continue;
            json_object *v = f->type == 'i'   ? json_object_new_int(*(const int *)p)
                             : f->type == 'f' ? json_object_new_double(*(const float *)p)
                                              : json_object_new_boolean(*(const int *)p);
            json_object_object_add(o, f->key, v);
        }
        if (i == 3)
            json_object_object_add(o, "media_rule", json_object_new_string(c->media_rule == MM_MEDIA_NEXT ? "next" : "previous"));
        if (i == 5) {
            json_object *t = json_object_new_array(), *s = json_object_new_array();
            for (int k = 0; k < c->n_lora_targets; k++)
                json_object_array_add(t, json_object_new_string(c->lora_targets[k]));
            for (int k = 0; k < c->n_lora_scopes; k++)
                json_object_array_add(s, json_object_new_string(c->lora_scopes[k]));
            json_object_object_add(o, "targets", t);
            json_object_object_add(o, "scope", s);
        }
        json_object_object_add(root, secs[i], o);
    }
    char *out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
    json_object_put(root);
    return out;
}

int config_lora_targets(const mm_config *c, const char *module) {
    if (c->lora_r <= 0)
        return 0;
    int in_scope = 0;
    for (int i = 0; i < c->n_lora_scopes; i++) {
        size_t l = strlen(c->lora_scopes[i]);
        if (!strncmp(module, c->lora_scopes[i], l) && (module[l] == '.' || module[l] == 0))
            in_scope = 1;
    }
    if (!in_scope)
        return 0;
    size_t ml = strlen(module);
    for (int i = 0; i < c->n_lora_targets; i++) {
        // PEFT matches a target when the module name ends with it (and, in later versions, at a dot).
        size_t tl = strlen(c->lora_targets[i]);
        if (tl <= ml && !strcmp(module + ml - tl, c->lora_targets[i]) && (tl == ml || module[ml - tl - 1] == '.'))
            return 1;
    }
    return 0;
}

clip_prep config_clip_prep(const mm_config *c) {
    clip_prep p = clip_prep_default(c->vis_image_size);
    p.open_clip_order = c->vis_open_clip_order;
    p.exif_orientation = c->vis_exif;
    return p;
}
