// The whole forward pass: images -> CLIP -> perceiver latents; tokens -> embeddings -> for each
// decoder layer, the gated cross-attention block (where present) then the LLaMA layer -> RMSNorm ->
// lm_head logits.
#include "model/flamingo.h"

#include <stdlib.h>
#include <string.h>

#include "model/gated_xattn.h"
#include "model/llama.h"

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

mm_status acts_alloc(mm_acts *a, const mm_config *c, int B, int T, int n_images, mm_err *e) {
    memset(a, 0, sizeof *a);
    if (B <= 0 || T <= 0 || n_images < 0)
        return mm_errf(e, MM_ERR_ARG, "batch shape B=%d T=%d images=%d is invalid", B, T, n_images);
    a->B = B;
    a->T = T;
    a->n_images = n_images;
    size_t BT = (size_t)B * T, np = (size_t)(c->vis_image_size / c->vis_patch) * (c->vis_image_size / c->vis_patch);
    size_t W = (size_t)c->vis_width, nl = (size_t)c->perc_latents;
    size_t scratch = llama_layer_scratch_floats(c, (int)BT);
    scratch = max_sz(scratch, xattn_scratch_floats(c, (int)BT, (int)(n_images * nl)));
    if (n_images) {
        scratch = max_sz(scratch, clip_scratch_floats(c, n_images));
        scratch = max_sz(scratch, perceiver_scratch_floats(c, n_images));
    }
    size_t floats[] = {(size_t)n_images * np * W, (size_t)n_images * nl * W, ((size_t)c->n_layers + 1) * BT * c->dim,
                       BT * (size_t)c->vocab, scratch};
    size_t ints[] = {BT, BT, (size_t)B, (size_t)B};
    size_t total = 0;
    for (size_t i = 0; i < 5; i++)
        total += (floats[i] * 4 + 63) / 64 * 64;
    for (size_t i = 0; i < 4; i++)
        total += (ints[i] * 4 + 63) / 64 * 64;
    a->mem = aligned_alloc(64, total);
    if (!a->mem)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory planning activations (%.1f MB for B=%d T=%d images=%d)",
                       (double)total / 1e6, B, T, n_images);
    a->bytes = total;
    char *p = a->mem;
    float **fv[] = {&a->vis_tokens, &a->latents, &a->layer_out, &a->logits, &a->scratch};
    for (size_t i = 0; i < 5; i++) {
        *fv[i] = (float *)p;
        p += (floats[i] * 4 + 63) / 64 * 64;
    }
    int32_t **iv[] = {&a->q_media, &a->pos, &a->kv_start, &a->kv_len};
    for (size_t i = 0; i < 4; i++) {
        *iv[i] = (int32_t *)p;
        p += (ints[i] * 4 + 63) / 64 * 64;
    }
    a->scratch_floats = scratch;
    return MM_OK;
}

void acts_free(mm_acts *a) {
    free(a->mem);
    memset(a, 0, sizeof *a);
}

static mm_status check_batch(const mm_config *c, const mm_batch *b, const mm_acts *a, mm_err *e) {
    if (b->B != a->B || b->T != a->T || b->n_images != a->n_images)
        return mm_errf(e, MM_ERR_ARG, "batch B=%d T=%d images=%d does not match the planned activations (B=%d T=%d images=%d)",
                       b->B, b->T, b->n_images, a->B, a->T, a->n_images);
    if (b->T > c->max_seq)
        return mm_errf(e, MM_ERR_ARG, "sequence of %d tokens exceeds the model's max_seq_len %d", b->T, c->max_seq);
    int sum = 0;
    for (int s = 0; s < b->B; s++) {
        if (b->images_per_seq[s] < 0)
            return mm_errf(e, MM_ERR_ARG, "sequence %d: negative image count", s);
        if (c->perc_max_media && b->images_per_seq[s] > c->perc_max_media)
            return mm_errf(e, MM_ERR_ARG, "sequence %d has %d images; the perceiver's max_num_media is %d", s,
                           b->images_per_seq[s], c->perc_max_media);
        sum += b->images_per_seq[s];
    }
    if (sum != b->n_images)
        return mm_errf(e, MM_ERR_ARG, "images_per_seq sums to %d but %d images were given", sum, b->n_images);
    for (long i = 0; i < (long)b->B * b->T; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= c->vocab)
            return mm_errf(e, MM_ERR_ARG, "token %d at sequence %ld position %ld is outside the vocabulary (0..%d)",
                           b->tokens[i], i / b->T, i % b->T, c->vocab - 1);
    return MM_OK;
}

mm_status flamingo_forward(const mm_model *m, const mm_batch *b, mm_acts *a, mm_err *e) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    MM_TRY(check_batch(c, b, a, e));
    int B = b->B, T = b->T, BT = B * T, D = c->dim, nl = c->perc_latents;
    uint8_t *seq_on = calloc((size_t)B, 1);
    int32_t *media_index = malloc(sizeof(int32_t) * (size_t)(b->n_images ? b->n_images : 1));
    if (!seq_on || !media_index) {
        free(seq_on);
        free(media_index);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    // Images: each sequence's images, in order, own consecutive latent rows.
    for (int s = 0, img = 0; s < B; s++) {
        seq_on[s] = b->images_per_seq[s] > 0;
        a->kv_start[s] = img * nl;
        a->kv_len[s] = b->images_per_seq[s] * nl;
        for (int j = 0; j < b->images_per_seq[s]; j++)
            media_index[img++] = j;
    }
    if (b->n_images) {
        clip_forward(m, a->vis_tokens, b->pixels, b->n_images, a->scratch);
        perceiver_forward(m, a->latents, a->vis_tokens, media_index, b->n_images, a->scratch);
    }
    media_index_compute(a->q_media, b->tokens, B, T, c->media_id, c->media_rule, b->images_per_seq);
    // Positions as HF computes them with an attention mask: cumsum(mask) - 1, and 1 at padding.
    for (int s = 0; s < B; s++)
        for (int i = 0, p = 0; i < T; i++) {
            int valid = !b->attn_mask || b->attn_mask[(size_t)s * T + i];
            a->pos[(size_t)s * T + i] = valid ? p : 1;
            p += valid;
        }
    float *x = a->layer_out;
    ops->embed(x, b->tokens, m->w.llm.embed, BT, D);
    for (int l = 0; l < c->n_layers; l++) {
        const llama_layer *L = &m->w.llm.layers[l];
        float *next = x + (size_t)BT * D;
        memcpy(next, x, sizeof(float) * (size_t)BT * D);
        if (L->xattn && b->n_images)
            xattn_forward(m, L->xattn, next, a->latents, b->n_images * nl, a, seq_on, a->scratch);
        llama_layer_forward(m, L, next, B, T, a->pos, b->attn_mask, a->scratch);
        x = next;
    }
    float *h = a->scratch;
    ops->rmsnorm(h, x, m->w.llm.norm, BT, D, c->norm_eps);
    ops->linear(a->logits, h, m->w.llm.lm_head, NULL, BT, D, c->vocab, 0);
    free(seq_on);
    free(media_index);
    return MM_OK;
}

void model_free(mm_model *m) {
    weights_free(&m->w);
    memset(m, 0, sizeof *m);
}
