// Beam search / beam-sample (see beam.h for the rules, which follow transformers 4.28's
// BeamSearchScorer and BeamHypotheses).
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "infer/beam.h"

typedef struct {
    double score;
    int32_t *seq; // full sequence (prompt + new tokens, without the closing EOS)
    int len;
    int closed; // ended by EOS (the output then ends with EOS)
} hyp;

typedef struct {
    hyp *h;
    int n, cap;
    double worst;
    double length_penalty; // score = sum of log-probs / length^length_penalty
} hyp_set;

static double length_norm(const hyp_set *s, int len) {
    return s->length_penalty == 1.0 ? (double)len : pow((double)len, s->length_penalty);
}

typedef struct {
    float score;
    int beam;
    int32_t token;
} cand;

// BeamHypotheses.add: keeps the best `cap` hypotheses by length-normalised score.
static int hyps_add(hyp_set *s, const int32_t *seq, int len, double sum_logprobs, int closed) {
    double score = sum_logprobs / length_norm(s, len);
    if (s->n < s->cap || score > s->worst) {
        int32_t *copy = malloc(sizeof(int32_t) * (size_t)(len > 0 ? len : 1));
        if (!copy)
            return -1;
        memcpy(copy, seq, sizeof(int32_t) * (size_t)len);
        s->h[s->n++] = (hyp){score, copy, len, closed};
        if (s->n > s->cap) {
            int worst = 0, second = -1;
            for (int i = 1; i < s->n; i++)
                if (s->h[i].score < s->h[worst].score)
                    worst = i;
            for (int i = 0; i < s->n; i++)
                if (i != worst && (second < 0 || s->h[i].score < s->h[second].score))
                    second = i;
            s->worst = s->h[second].score;
            free(s->h[worst].seq);
            memmove(&s->h[worst], &s->h[worst + 1], sizeof(hyp) * (size_t)(s->n - worst - 1));
            s->n--;
        } else if (score < s->worst) {
            s->worst = score;
        }
    }
    return 0;
}

static int hyps_done(const hyp_set *s, double best_sum_logprobs, int cur_len) {
    return s->n >= s->cap && s->worst >= best_sum_logprobs / length_norm(s, cur_len);
}

static int cand_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->score, y = ((const cand *)b)->score;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void log_softmax(float *x, int V) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        mx = x[i] > mx ? x[i] : mx;
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp((double)x[i] - mx);
    float lz = mx + (float)log(z);
    for (int i = 0; i < V; i++)
        x[i] -= lz;
}

// Top 2*nb candidates of rows[nb, V] (beam search).
static void top_candidates(const float *rows, int nb, int V, cand *c, int k) {
    int n = 0;
    for (int b = 0; b < nb; b++)
        for (int v = 0; v < V; v++) {
            float s = rows[(size_t)b * V + v];
            if (n < k || s > c[n - 1].score) {
                int i = n < k ? n++ : k - 1;
                while (i > 0 && c[i - 1].score < s) {
                    c[i] = c[i - 1];
                    i--;
                }
                c[i] = (cand){s, b, v};
            }
        }
}

// k draws without replacement from softmax(rows) over all nb*V entries (torch.multinomial's
// replacement=False), then sorted by score (beam-sample).
static int sample_candidates(const float *rows, int nb, int V, cand *c, int k, mm_rng *rng) {
    size_t N = (size_t)nb * V;
    double *w = malloc(sizeof(double) * N);
    if (!w)
        return -1;
    float mx = -INFINITY;
    for (size_t i = 0; i < N; i++)
        mx = rows[i] > mx ? rows[i] : mx;
    double z = 0;
    for (size_t i = 0; i < N; i++)
        z += w[i] = rows[i] > -INFINITY ? exp((double)rows[i] - mx) : 0;
    int n = 0;
    for (; n < k && z > 0; n++) {
        double u = rng_uniform(rng) * z, acc = 0;
        size_t pick = N;
        for (size_t i = 0; i < N; i++)
            if (w[i] > 0) {
                pick = i;
                acc += w[i];
                if (acc > u)
                    break;
            }
        c[n] = (cand){rows[pick], (int)(pick / (size_t)V), (int32_t)(pick % (size_t)V)};
        z -= w[pick];
        w[pick] = 0;
    }
    free(w);
    qsort(c, (size_t)n, sizeof *c, cand_desc);
    return n;
}

mm_status beam_generate(const mm_beam_model *m, const int32_t *prompt, int n, const mm_sampling *p, int32_t eos,
                        const int32_t *banned, int n_banned, const atomic_int *cancel, int32_t *out, int *n_out,
                        mm_err *e) {
    return beam_generate_lp(m, prompt, n, p, 1.0, eos, banned, n_banned, cancel, out, n_out, e);
}

mm_status beam_generate_lp(const mm_beam_model *m, const int32_t *prompt, int n, const mm_sampling *p,
                           double length_penalty, int32_t eos, const int32_t *banned, int n_banned,
                           const atomic_int *cancel, int32_t *out, int *n_out, mm_err *e) {
    int nb = p->num_beams, V = m->vocab, max_len = n + p->max_new_tokens, k = 2 * nb;
    *n_out = 0;
    if (nb < 1 || nb > 64)
        return mm_errf(e, MM_ERR_ARG, "num_beams must be in [1, 64], not %d", nb);
    if (p->max_new_tokens <= 0)
        return MM_OK;
    int32_t *seqs = malloc(sizeof(int32_t) * (size_t)nb * max_len), *next = malloc(sizeof(int32_t) * (size_t)nb * max_len);
    float *rows = malloc(sizeof(float) * (size_t)nb * V);
    double *scores = malloc(sizeof(double) * nb), *next_scores = malloc(sizeof(double) * nb);
    cand *c = malloc(sizeof(cand) * (size_t)k);
    const float **lgs = malloc(sizeof(const float *) * (size_t)nb);
    hyp_set hs = {calloc((size_t)nb + 1, sizeof(hyp)), 0, nb, 1e9, length_penalty};
    mm_status s = MM_OK;
    if (!seqs || !next || !rows || !scores || !next_scores || !c || !lgs || !hs.h)
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory for %d beams", nb);
    mm_rng rng;
    rng_seed(&rng, p->seed);
    mm_sampling warp = *p;
    if (warp.top_k > 0 && warp.top_k < 2)
        warp.top_k = 2; // HF keeps at least 2 tokens per beam when num_beams > 1
    int cur = n, done = 0;
    for (int b = 0; s == MM_OK && b < nb; b++) {
        memcpy(seqs + (size_t)b * max_len, prompt, sizeof(int32_t) * (size_t)n);
        scores[b] = p->do_sample || b == 0 ? 0 : -1e9; // beam search starts from one live beam
    }
    while (s == MM_OK && !done && cur < max_len && !(cancel && atomic_load_explicit(cancel, memory_order_relaxed))) {
        if (m->step)
            s = m->step(m->ctx, nb, seqs, (size_t)max_len, cur, lgs, e);
        for (int b = 0; b < nb && s == MM_OK; b++) {
            if (!m->step)
                s = m->logits(m->ctx, b, seqs + (size_t)b * max_len, cur, &lgs[b], e);
            if (s != MM_OK)
                break;
            float *r = rows + (size_t)b * V;
            memcpy(r, lgs[b], sizeof(float) * (size_t)V);
            for (int i = 0; i < n_banned; i++)
                if (banned[i] >= 0 && banned[i] < V)
                    r[banned[i]] = -INFINITY;
            log_softmax(r, V);
            sampler_repetition_penalty(r, V, seqs + (size_t)b * max_len, cur, p->repetition_penalty);
            for (int v = 0; v < V; v++)
                r[v] += (float)scores[b];
            if (p->do_sample)
                sampler_warp(r, V, &warp, NULL, 0);
        }
        if (s != MM_OK)
            break;
        int nc = k;
        if (p->do_sample) {
            nc = sample_candidates(rows, nb, V, c, k, &rng);
            if (nc < 0) {
                s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
                break;
            }
        } else {
            top_candidates(rows, nb, V, c, k);
        }
        int kept = 0;
        for (int r = 0; r < nc && kept < nb; r++) {
            const int32_t *parent = seqs + (size_t)c[r].beam * max_len;
            if (c[r].token == eos) {
                if (r >= nb)
                    continue;
                if (hyps_add(&hs, parent, cur, c[r].score, 1) != 0) {
                    s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
                    break;
                }
            } else {
                int32_t *dst = next + (size_t)kept * max_len;
                memcpy(dst, parent, sizeof(int32_t) * (size_t)cur);
                dst[cur] = c[r].token;
                next_scores[kept++] = c[r].score;
            }
        }
        if (s != MM_OK)
            break;
        for (; kept < nb; kept++) { // too few live candidates (tiny vocabularies): pad with dead beams
            memcpy(next + (size_t)kept * max_len, next, sizeof(int32_t) * (size_t)(cur + 1));
            next_scores[kept] = -INFINITY;
        }
        done = nc > 0 && hyps_done(&hs, c[0].score, cur);
        int32_t *t = seqs;
        seqs = next;
        next = t;
        memcpy(scores, next_scores, sizeof(double) * nb);
        cur++;
    }
    // Finalize: running beams join the hypotheses unless the search was already done.
    for (int b = 0; s == MM_OK && !done && b < nb; b++)
        if (scores[b] > -INFINITY && hyps_add(&hs, seqs + (size_t)b * max_len, cur, scores[b], 0) != 0)
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    if (s == MM_OK && hs.n > 0) {
        int best = 0;
        for (int i = 1; i < hs.n; i++)
            if (hs.h[i].score >= hs.h[best].score) // sorted() then pop(): the last of equal scores wins
                best = i;
        const hyp *h = &hs.h[best];
        for (int i = n; i < h->len; i++)
            out[(*n_out)++] = h->seq[i];
        if (h->closed && *n_out < p->max_new_tokens)
            out[(*n_out)++] = eos;
    }
    for (int i = 0; i < hs.n; i++)
        free(hs.h[i].seq);
    free(hs.h);
    free(lgs);
    free(c);
    free(next_scores);
    free(scores);
    free(rows);
    free(next);
    free(seqs);
    return s;
}
