// The whole forward pass: images -> CLIP -> perceiver latents; tokens -> embeddings -> for each
// decoder layer, the gated cross-attention block (where present) then the LLaMA layer -> RMSNorm ->
// lm_head logits. And the training pass: loss and LoRA gradients, recomputing each layer's
// intermediates from its saved input on the way back (activation checkpointing per layer).
#include "model/flamingo.h"

#include <stdlib.h>
#include <string.h>

#include "model/gated_xattn.h"
#include "model/llama.h"

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

// Layer-stage scratch: one layer's saved intermediates and work (training: also the gradient of
// the residual stream, and with MM_ACTS_TRAIN_KEEP every layer's saved intermediates).
static size_t layer_scratch(const mm_config *c, int BT, int n_lat, int training) {
    size_t ls = llama_saved_floats(c, BT), lw = llama_work_floats(c, BT);
    size_t xs = xattn_saved_floats(c, BT, n_lat), xw = xattn_work_floats(c, BT, n_lat);
    if (training == MM_ACTS_TRAIN_KEEP)
        return (ls + xs) * (size_t)c->n_layers + (size_t)BT * c->dim + lw + xw;
    if (training)
        return ls + xs + (size_t)BT * c->dim + lw + xw;
    return max_sz(ls + lw, xs + xw);
}

// Lays out the activation views for (B, T, n_images) from mem (NULL: only sizes); returns the bytes.
static size_t acts_layout(mm_acts *a, const mm_config *c, int B, int T, int n_images, int mode, char *mem) {
    int training = mode & 3, vision = training && (mode & MM_ACTS_VISION);
    size_t BT = (size_t)B * T, np = (size_t)(c->vis_image_size / c->vis_patch) * (c->vis_image_size / c->vis_patch);
    size_t W = (size_t)c->vis_width, nl = (size_t)c->perc_latents;
    size_t scratch = layer_scratch(c, (int)BT, (int)(n_images * nl), training);
    if (n_images) {
        scratch = max_sz(scratch, clip_scratch_floats(c, n_images));
        scratch = max_sz(scratch, perceiver_scratch_floats(c, n_images));
        if (training)
            scratch = max_sz(scratch, perceiver_backward_scratch_floats(c, n_images));
        if (vision)
            scratch = max_sz(scratch, clip_backward_scratch_floats(c, n_images));
    }
    size_t lat = (size_t)n_images * nl * W, tr = training ? 1 : 0, vis = (size_t)n_images * np * W;
    size_t floats[] = {vis, lat, ((size_t)c->n_layers + 1) * BT * c->dim, BT * (size_t)c->vocab,
                       scratch, tr * ((size_t)c->perc_depth + 1) * lat, tr * lat,
                       vision ? clip_saved_floats(c, n_images) : 0, vision ? vis : 0};
    size_t ints[] = {BT, BT, (size_t)B, (size_t)B, BT};
    float **fv[] = {&a->vis_tokens, &a->latents, &a->layer_out, &a->logits, &a->scratch, &a->perc_saved, &a->dlatents,
                    &a->vis_saved, &a->dvis};
    int32_t **iv[] = {&a->q_media, &a->pos, &a->kv_start, &a->kv_len, &a->tokens};
    size_t off = 0;
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        if (mem)
            *fv[i] = (float *)(mem + off);
        off += (floats[i] * 4 + 63) / 64 * 64;
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (mem)
            *iv[i] = (int32_t *)(mem + off);
        off += (ints[i] * 4 + 63) / 64 * 64;
    }
    if (mem)
        a->key_valid = (uint8_t *)(mem + off);
    off += (BT + 63) / 64 * 64;
    if (mem) {
        a->B = B, a->T = T, a->n_images = n_images, a->training = training, a->vision = vision;
        a->scratch_floats = scratch;
    }
    return off;
}

mm_status acts_alloc(mm_acts *a, const mm_config *c, int B, int T, int n_images, int training, mm_err *e) {
    return acts_alloc_on(a, ops_cpu(), c, B, T, n_images, training, e);
}

mm_status acts_alloc_on(mm_acts *a, const mm_ops *ops, const mm_config *c, int B, int T, int n_images, int training,
                        mm_err *e) {
    memset(a, 0, sizeof *a);
    if (B <= 0 || T <= 0 || n_images < 0)
        return mm_errf(e, MM_ERR_ARG, "batch shape B=%d T=%d images=%d is invalid", B, T, n_images);
    size_t total = acts_layout(a, c, B, T, n_images, training, NULL);
    a->ops = ops;
    a->mem = ops->alloc(total);
    if (!a->mem)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory planning activations (%.1f MB for B=%d T=%d images=%d)",
                       (double)total / 1e6, B, T, n_images);
    a->bytes = total;
    acts_layout(a, c, B, T, n_images, training, a->mem);
    return MM_OK;
}

mm_status acts_reshape(mm_acts *a, const mm_config *c, int B, int T, int n_images, mm_err *e) {
    if (B <= 0 || T <= 0 || n_images < 0)
        return mm_errf(e, MM_ERR_ARG, "batch shape B=%d T=%d images=%d is invalid", B, T, n_images);
    int mode = a->training | (a->vision ? MM_ACTS_VISION : 0);
    size_t need = acts_layout(a, c, B, T, n_images, mode, NULL);
    if (need > a->bytes)
        return mm_errf(e, MM_ERR_ARG, "batch B=%d T=%d images=%d needs %.1f MB of activations; %.1f MB were planned", B, T,
                       n_images, (double)need / 1e6, (double)a->bytes / 1e6);
    acts_layout(a, c, B, T, n_images, mode, a->mem);
    return MM_OK;
}

void acts_free(mm_acts *a) {
    if (a->ops)
        a->ops->free(a->mem);
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

// Per-sequence bookkeeping shared by forward and backward: which sequences have images, where
// their latents start, each token's media index and rotary position. Computed on the host (in
// stage: q_media [BT], pos [BT], kv_start [B], kv_len [B]) and uploaded with the batch's ids and
// mask into the activations, which may live in a device's memory.
static void plan_batch(const mm_ops *ops, const mm_config *c, const mm_batch *b, mm_acts *a, uint8_t *seq_on,
                       int32_t *media_index, int32_t *stage) {
    int B = b->B, T = b->T, nl = c->perc_latents;
    size_t BT = (size_t)B * T;
    int32_t *q_media = stage, *pos = q_media + BT, *kv_start = pos + BT, *kv_len = kv_start + B;
    for (int s = 0, img = 0; s < B; s++) {
        seq_on[s] = b->images_per_seq[s] > 0;
        kv_start[s] = img * nl;
        kv_len[s] = b->images_per_seq[s] * nl;
        for (int j = 0; j < b->images_per_seq[s]; j++)
            media_index[img++] = j;
    }
    media_index_compute(q_media, b->tokens, B, T, c->media_id, c->media_rule, b->images_per_seq);
    // Positions as HF computes them with an attention mask: cumsum(mask) - 1, and 1 at padding.
    for (int s = 0; s < B; s++)
        for (int i = 0, p = 0; i < T; i++) {
            int valid = !b->attn_mask || b->attn_mask[(size_t)s * T + i];
            pos[(size_t)s * T + i] = valid ? p : 1;
            p += valid;
        }
    ops->upload(a->q_media, q_media, sizeof(int32_t) * BT);
    ops->upload(a->pos, pos, sizeof(int32_t) * BT);
    ops->upload(a->kv_start, kv_start, sizeof(int32_t) * (size_t)B);
    ops->upload(a->kv_len, kv_len, sizeof(int32_t) * (size_t)B);
    ops->upload(a->tokens, b->tokens, sizeof(int32_t) * BT);
    if (b->attn_mask)
        ops->upload(a->key_valid, b->attn_mask, BT);
}

// The self-attention's padding mask in the activations' memory, or NULL when the batch has none.
static const uint8_t *key_valid_of(const mm_batch *b, const mm_acts *a) { return b->attn_mask ? a->key_valid : NULL; }

// One Flamingo layer (gated block, then LLaMA layer) in place on x, keeping intermediates in the
// given saved sets.
static void flamingo_layer_forward(const mm_model *m, int l, float *x, const mm_batch *b, const mm_acts *a,
                                   const uint8_t *seq_on, xattn_saved *xs, llama_saved *ls, float *work) {
    const llama_layer *L = &m->w.llm.layers[l];
    xattn_rows rows = {b->B, b->T, a->q_media, a->kv_start, a->kv_len};
    if (L->xattn && b->n_images)
        xattn_forward(m, L->xattn, x, a->latents, b->n_images * m->w.cfg.perc_latents, &rows, seq_on, xs, work, NULL);
    llama_layer_forward(m, L, x, b->B, b->T, a->pos, key_valid_of(b, a), NULL, ls, work);
}

typedef struct {
    xattn_saved xs;
    llama_saved ls;
    float *work, *dx;
    float *saves;      // the saved sets: one layer's, or (keep) every layer's
    size_t per_layer;  // floats of one layer's saved sets
    int keep, BT, n_lat;
} layer_bufs;

static void layer_bufs_plan(layer_bufs *lb, const mm_config *c, float *scratch, int BT, int n_lat, int training) {
    size_t ls = llama_saved_floats(c, BT), xs = xattn_saved_floats(c, BT, n_lat);
    *lb = (layer_bufs){.saves = scratch, .keep = training == MM_ACTS_TRAIN_KEEP, .BT = BT, .n_lat = n_lat};
    llama_saved_views(&lb->ls, scratch, c, BT);
    if (!training) {
        // Inference runs the two blocks one after the other, so their saved sets share space.
        xattn_saved_views(&lb->xs, scratch, c, BT, n_lat);
        lb->dx = NULL;
        lb->work = scratch + max_sz(ls, xs);
        return;
    }
    lb->per_layer = ls + xs;
    xattn_saved_views(&lb->xs, scratch + ls, c, BT, n_lat);
    lb->dx = scratch + lb->per_layer * (size_t)(lb->keep ? c->n_layers : 1);
    lb->work = lb->dx + (size_t)BT * c->dim;
}

// Points the saved sets at layer l's slot (keep mode; otherwise the one slot is re-used).
static void layer_bufs_select(layer_bufs *lb, const mm_config *c, int l) {
    if (!lb->keep)
        return;
    float *p = lb->saves + lb->per_layer * (size_t)l;
    llama_saved_views(&lb->ls, p, c, lb->BT);
    xattn_saved_views(&lb->xs, p + llama_saved_floats(c, lb->BT), c, lb->BT, lb->n_lat);
}

// The batch's per-sequence state that forward and backward share.
typedef struct {
    uint8_t *seq_on;       // [B] sequence has images
    int32_t *media_index;  // [n_images] each image's index within its sequence
    int32_t *stage;        // host staging of plan_batch's arrays (2 BT + 2 B)
} batch_plan;

static void batch_plan_free(batch_plan *p) {
    free(p->seq_on);
    free(p->media_index);
    free(p->stage);
}

static mm_status forward_common(const mm_model *m, const mm_batch *b, mm_acts *a, batch_plan *bp, layer_bufs *lb,
                                mm_err *e) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    memset(bp, 0, sizeof *bp);
    MM_TRY(check_batch(c, b, a, e));
    if (a->ops->on_device != ops->on_device)
        return mm_errf(e, MM_ERR_ARG, "the activations were planned for the %s backend but the model runs on %s",
                       a->ops->name, ops->name);
    int BT = b->B * b->T, D = c->dim, nl = c->perc_latents;
    bp->seq_on = calloc((size_t)b->B, 1);
    bp->media_index = malloc(sizeof(int32_t) * (size_t)(b->n_images ? b->n_images : 1));
    bp->stage = malloc(sizeof(int32_t) * (2 * (size_t)BT + 2 * (size_t)b->B));
    if (!bp->seq_on || !bp->media_index || !bp->stage) {
        batch_plan_free(bp);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    uint8_t *seq_on = bp->seq_on;
    plan_batch(ops, c, b, a, seq_on, bp->media_index, bp->stage);
    if (b->n_images) {
        clip_forward(m, a->vis_tokens, b->pixels, b->n_images, a->vision ? a->vis_saved : NULL, a->scratch);
        perceiver_forward(m, a->latents, a->vis_tokens, bp->media_index, b->n_images, a->training ? a->perc_saved : NULL,
                          a->scratch);
    }
    layer_bufs_plan(lb, c, a->scratch, BT, b->n_images * nl, a->training);
    float *x = a->layer_out;
    ops->embed(x, a->tokens, m->w.llm.embed, BT, D);
    for (int l = 0; l < c->n_layers; l++) {
        float *next = x + (size_t)BT * D;
        ops->copy(next, x, sizeof(float) * (size_t)BT * D);
        layer_bufs_select(lb, c, l);
        flamingo_layer_forward(m, l, next, b, a, seq_on, &lb->xs, &lb->ls, lb->work);
        x = next;
    }
    // Final norm into the work area, then the one [BT, vocab] buffer.
    m->ops->rmsnorm(lb->work, x, m->w.llm.norm, BT, D, c->norm_eps);
    m->ops->linear(a->logits, lb->work, m->w.llm.lm_head, NULL, BT, D, c->vocab, 0);
    return MM_OK;
}

mm_status flamingo_forward(const mm_model *m, const mm_batch *b, mm_acts *a, mm_err *e) {
    batch_plan bp;
    layer_bufs lb;
    MM_TRY(forward_common(m, b, a, &bp, &lb, e));
    batch_plan_free(&bp);
    return m->ops->status(e); // a device's failures surface here, not inside its asynchronous ops
}

long flamingo_count_targets(const int32_t *labels, int B, int T) {
    long n = 0;
    for (int s = 0; s < B; s++)
        for (int t = 0; t + 1 < T; t++)
            n += labels[(size_t)s * T + t + 1] >= 0;
    return n;
}

// Writes the shifted targets (labels[t+1], -1 where not counted) into target and returns their count.
static long shift_targets(int32_t *target, const int32_t *labels, int B, int T) {
    long count = 0;
    for (int s = 0; s < B; s++)
        for (int t = 0; t < T; t++) {
            int32_t l = t + 1 < T ? labels[(size_t)s * T + t + 1] : -100;
            target[(size_t)s * T + t] = l >= 0 ? l : -1;
            count += l >= 0;
        }
    return count;
}

static mm_status check_labels(const mm_config *c, const int32_t *labels, int B, int T, mm_err *e) {
    for (long i = 0; i < (long)B * T; i++)
        if (labels[i] != -100 && (labels[i] < 0 || labels[i] >= c->vocab))
            return mm_errf(e, MM_ERR_ARG, "label %d at sequence %ld position %ld is neither -100 nor a token id",
                           labels[i], i / T, i % T);
    return MM_OK;
}

mm_status flamingo_loss(const mm_model *m, const mm_batch *b, const int32_t *labels, mm_acts *a, double *loss_sum,
                        long *n_tokens, mm_err *e) {
    MM_TRY(check_labels(&m->w.cfg, labels, b->B, b->T, e));
    batch_plan bp;
    layer_bufs lb;
    MM_TRY(forward_common(m, b, a, &bp, &lb, e));
    // Positions are no longer needed once the logits exist: the targets take their place (staged
    // on the host, where plan_batch kept them, then uploaded).
    int32_t *target = bp.stage + (size_t)b->B * b->T;
    *n_tokens = shift_targets(target, labels, b->B, b->T);
    m->ops->upload(a->pos, target, sizeof(int32_t) * (size_t)b->B * b->T);
    *loss_sum = m->ops->cross_entropy(a->logits, a->pos, b->B * b->T, m->w.cfg.vocab, 0.0f);
    batch_plan_free(&bp);
    return m->ops->status(e);
}

mm_status flamingo_loss_backward(const mm_model *m, const mm_batch *b, const int32_t *labels, mm_acts *a,
                                 float *grads, float scale, double *loss_sum, long *n_tokens, mm_err *e) {
    const mm_config *c = &m->w.cfg;
    const mm_ops *ops = m->ops;
    if (!a->training)
        return mm_errf(e, MM_ERR_ARG, "activations were planned for inference; plan them for training");
    if (m->w.vision_trains && b->n_images && !a->vision)
        return mm_errf(e, MM_ERR_ARG, "the vision tower has trainable tensors: plan the activations with MM_ACTS_VISION");
    int B = b->B, T = b->T, BT = B * T, D = c->dim;
    MM_TRY(check_labels(c, labels, B, T, e));
    batch_plan bp;
    layer_bufs lb;
    MM_TRY(forward_common(m, b, a, &bp, &lb, e));
    mm_lora_ctx lc = model_lora_ctx(m, grads);
    // Targets: position t predicts labels[t+1]; the last position predicts nothing. Staged on the
    // host (where plan_batch's positions were) and uploaded into dx, borrowed until the head's
    // backward fills it.
    int32_t *target = (int32_t *)lb.dx, *staged = bp.stage + BT;
    long count = shift_targets(staged, labels, B, T);
    ops->upload(target, staged, sizeof(int32_t) * (size_t)BT);
    *loss_sum = ops->cross_entropy(a->logits, target, BT, c->vocab, scale);
    *n_tokens = count;
    // Head: logits = RMSNorm(x_L) @ lm_head^T.
    float *x_last = a->layer_out + (size_t)c->n_layers * BT * D, *dh = lb.work;
    float *dhead = param_grad(&lc, m->w.llm.lm_head.data);
    if (dhead) { // dW = dlogits^T RMSNorm(x_L), the normed rows recomputed
        ops->rmsnorm(dh, x_last, m->w.llm.norm, BT, D, c->norm_eps);
        ops->gemm(1, 0, c->vocab, D, BT, 1.0f, a->logits, c->vocab, dh, D, 1.0f, dhead, D);
    }
    ops->linear_backward_input(dh, a->logits, m->w.llm.lm_head, BT, D, c->vocab, 0);
    norm_params_backward(ops, &lc, m->w.llm.norm, NULL, dh, x_last, BT, D, c->norm_eps, 1);
    ops->rmsnorm_backward(lb.dx, dh, x_last, m->w.llm.norm, BT, D, c->norm_eps, 0);
    // Gradients reach the latents when the perceiver or the vision tower below it trains.
    int vis_trains = m->w.vision_trains && b->n_images;
    float *dlat = (m->w.perceiver_trains || vis_trains) && b->n_images ? a->dlatents : NULL;
    if (dlat)
        ops->zero(dlat, sizeof(float) * (size_t)b->n_images * c->perc_latents * c->vis_width);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const llama_layer *L = &m->w.llm.layers[l];
        layer_bufs_select(&lb, c, l);
        if (!lb.keep) {
            // Recompute this layer's intermediates from its saved input, then go back through it.
            float *x = lb.work;
            ops->copy(x, a->layer_out + (size_t)l * BT * D, sizeof(float) * (size_t)BT * D);
            flamingo_layer_forward(m, l, x, b, a, bp.seq_on, &lb.xs, &lb.ls, lb.work + (size_t)BT * D);
        }
        llama_layer_backward(m, L, lb.dx, B, T, a->pos, key_valid_of(b, a), &lb.ls, grads, lb.work);
        xattn_rows rows = {B, T, a->q_media, a->kv_start, a->kv_len};
        if (L->xattn && b->n_images)
            xattn_backward(m, L->xattn, lb.dx, dlat, a->latents, b->n_images * c->perc_latents, &rows, bp.seq_on, &lb.xs,
                           grads, lb.work);
    }
    float *dembed = param_grad(&lc, m->w.llm.embed.data);
    if (dembed)
        ops->embed_backward(dembed, a->tokens, lb.dx, BT, D);
    // The layer buffers are done with; the perceiver's backward re-uses the scratch.
    if (dlat)
        perceiver_backward(m, dlat, a->vis_tokens, bp.media_index, b->n_images, a->perc_saved, grads,
                           vis_trains ? a->dvis : NULL, a->scratch);
    if (vis_trains)
        clip_backward(m, a->dvis, b->pixels, b->n_images, a->vis_saved, grads, a->scratch);
    batch_plan_free(&bp);
    return ops->status(e);
}
