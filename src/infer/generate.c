// Greedy and sampled decoding on one cached sequence, as HF's generate does for num_beams == 1.
// Beam search and beam-sample (num_beams > 1) live in beam.c.
#include "infer/generate.h"

#include <stdlib.h>
#include <string.h>

#include "infer/batcher.h"

static mm_status eval(const mm_gen_limits *lim, mm_engine *en, const int32_t *seq, int n, const float **logits,
                      mm_err *e) {
    return lim && lim->batcher ? batcher_eval(lim->batcher, en, seq, n, logits, e) : engine_eval(en, seq, n, logits, e);
}

mm_status generate(mm_engine *en, const int32_t *prompt, int n, const mm_sampling *p, const mm_gen_limits *lim,
                   mm_token_cb cb, void *user, int32_t *out, int *n_out, mm_stop_reason *why, mm_err *e) {
    *n_out = 0;
    *why = MM_STOP_LENGTH;
    int cap = n + p->max_new_tokens;
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)(cap > 0 ? cap : 1));
    if (!seq)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)n);
    mm_rng rng;
    rng_seed(&rng, p->seed);
    const float *logits;
    batcher_join(lim ? lim->batcher : NULL);
    mm_status s = eval(lim, en, seq, n, &logits, e);
    int V = engine_vocab(en);
    float *work = malloc(sizeof(float) * (size_t)V);
    if (!work)
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    while (s == MM_OK && *n_out < p->max_new_tokens) {
        memcpy(work, logits, sizeof(float) * (size_t)V);
        sampler_repetition_penalty(work, V, seq, n + *n_out, p->repetition_penalty);
        sampler_warp(work, V, p, lim ? lim->banned : NULL, lim ? lim->n_banned : 0);
        int32_t t = sampler_pick(work, V, p->do_sample, &rng);
        out[(*n_out)++] = t;
        seq[n + *n_out - 1] = t;
        int stop = 0;
        for (int i = 0; lim && i < lim->n_stop_ids; i++)
            stop |= t == lim->stop_ids[i];
        if (cb && cb(t, user)) {
            *why = MM_STOP_CALLBACK;
            break;
        }
        if (stop) {
            *why = MM_STOP_EOS;
            break;
        }
        if (*n_out >= p->max_new_tokens)
            break;
        if (n + *n_out >= engine_max_ctx(en)) {
            *why = MM_STOP_CONTEXT;
            break;
        }
        s = eval(lim, en, seq, n + *n_out, &logits, e);
    }
    batcher_leave(lim ? lim->batcher : NULL);
    free(work);
    free(seq);
    return s;
}
