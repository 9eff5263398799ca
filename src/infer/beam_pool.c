#include "infer/beam_pool.h"

#include <stdlib.h>

#include "infer/batcher.h"

mm_status beam_pool_logits(const mm_beam_pool *p, int nb, const int32_t *seqs, size_t stride, int n,
                           const float **logits, long *evaluated, mm_err *e) {
    if (nb < 1 || nb > p->n_slots)
        return mm_errf(e, MM_ERR_ARG, "%d beams on a pool of %d engines", nb, p->n_slots);
    int *slot = malloc(sizeof(int) * (size_t)nb * 2);
    mm_engine **ens = malloc(sizeof(mm_engine *) * (size_t)nb);
    int32_t *next = malloc(sizeof(int32_t) * (size_t)nb);
    const float **step_lg = malloc(sizeof(const float *) * (size_t)nb);
    uint8_t *used = calloc((size_t)p->n_slots, 1);
    mm_status s = slot && ens && next && step_lg && used ? MM_OK : mm_errf(e, MM_ERR_NOMEM, "out of memory");
    int *beam_of = slot ? slot + nb : NULL, n_step = 0;
    // Beams whose history a slot holds exactly: that slot, to advance in the batched step.
    for (int b = 0; s == MM_OK && b < nb; b++) {
        const int32_t *seq = seqs + (size_t)b * stride;
        slot[b] = -1;
        for (int o = 0; o < p->n_slots && slot[b] < 0; o++)
            if (!used[o] && p->eng[o] && p->ready(p->ctx, o) && engine_can_step(p->eng[o], seq, n)) {
                slot[b] = o, used[o] = 1;
                ens[n_step] = p->eng[o], next[n_step] = seq[n - 1], beam_of[n_step++] = b;
            }
    }
    // The others, each on a free slot, from the longest cached prefix of any slot (not yet stepped).
    for (int b = 0; s == MM_OK && b < nb; b++) {
        if (slot[b] >= 0)
            continue;
        const int32_t *seq = seqs + (size_t)b * stride;
        int dst = 0;
        while (used[dst])
            dst++;
        used[dst] = 1;
        int best = p->eng[dst] && p->ready(p->ctx, dst) ? engine_common_prefix(p->eng[dst], seq, n) : 0, from = -1;
        for (int o = 0; o < p->n_slots; o++) {
            int k = o != dst && p->eng[o] && p->ready(p->ctx, o) ? engine_common_prefix(p->eng[o], seq, n) : 0;
            if (k > best)
                best = k, from = o;
        }
        batcher_exclusive_begin(p->batcher); // between other threads' steps
        s = p->prepare(p->ctx, dst, from, e);
        if (s == MM_OK)
            s = engine_eval(p->eng[dst], seq, n, &logits[b], e);
        batcher_exclusive_end(p->batcher);
        if (s == MM_OK && evaluated)
            *evaluated += engine_stats(p->eng[dst]).prompt_tokens;
    }
    if (s == MM_OK && n_step)
        s = p->batcher ? batcher_step(p->batcher, ens, n_step, next, step_lg, e)
                       : engine_step(ens, n_step, next, step_lg, e);
    for (int i = 0; s == MM_OK && i < n_step; i++)
        logits[beam_of[i]] = step_lg[i];
    if (s == MM_OK && evaluated)
        *evaluated += n_step;
    free(used);
    free(step_lg);
    free(next);
    free(ens);
    free(slot);
    return s;
}
