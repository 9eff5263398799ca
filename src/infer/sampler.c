#include "infer/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

mm_sampling sampling_defaults(void) {
    return (mm_sampling){.do_sample = 1, .temperature = 1.0f, .top_k = 20, .top_p = 1.0f, .repetition_penalty = 1.0f,
                         .max_new_tokens = 512, .num_beams = 3, .seed = 0};
}

void sampler_repetition_penalty(float *logits, int V, const int32_t *history, int n, float penalty) {
    if (penalty == 1.0f)
        return;
    // Each distinct id once, as HF gathers the scores of the ids present.
    uint8_t *seen = calloc((size_t)V, 1);
    if (!seen)
        return;
    for (int i = 0; i < n; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= V || seen[t])
            continue;
        seen[t] = 1;
        logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty;
    }
    free(seen);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int sampler_warp(float *logits, int V, const mm_sampling *p, const int32_t *banned, int n_banned) {
    for (int i = 0; i < n_banned; i++)
        if (banned[i] >= 0 && banned[i] < V)
            logits[banned[i]] = -INFINITY;
    if (p->do_sample && p->temperature > 0 && p->temperature != 1.0f)
        for (int i = 0; i < V; i++)
            logits[i] /= p->temperature;
    float *sorted = malloc(sizeof(float) * (size_t)V);
    if (!sorted)
        return V;
    if (p->do_sample && p->top_k > 0 && p->top_k < V) {
        // Keep every token at least as likely as the k-th (ties included, as HF's >= threshold).
        memcpy(sorted, logits, sizeof(float) * (size_t)V);
        qsort(sorted, (size_t)V, sizeof(float), cmp_desc);
        float kth = sorted[p->top_k - 1];
        for (int i = 0; i < V; i++)
            if (logits[i] < kth)
                logits[i] = -INFINITY;
    }
    if (p->do_sample && p->top_p < 1.0f) {
        // HF sorts ascending and removes the tokens whose cumulative probability is <= 1 - top_p,
        // always keeping the most likely: walk up from the least likely until the mass passes it.
        memcpy(sorted, logits, sizeof(float) * (size_t)V);
        qsort(sorted, (size_t)V, sizeof(float), cmp_desc);
        double z = 0;
        for (int i = 0; i < V && sorted[i] > -INFINITY; i++)
            z += exp((double)sorted[i] - sorted[0]);
        double cum = 0;
        float cut = sorted[0];
        for (int r = V - 1; r >= 1; r--) {
            if (sorted[r] == -INFINITY)
                continue;
            cum += exp((double)sorted[r] - sorted[0]) / z;
            if (cum > 1.0 - p->top_p) {
                cut = sorted[r];
                break;
            }
        }
        for (int i = 0; i < V; i++)
            if (logits[i] < cut)
                logits[i] = -INFINITY;
    }
    free(sorted);
    int left = 0;
    for (int i = 0; i < V; i++)
        left += logits[i] > -INFINITY;
    return left;
}

int32_t sampler_pick(const float *logits, int V, int do_sample, mm_rng *rng) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    if (!do_sample)
        return best;
    double z = 0;
    for (int i = 0; i < V; i++)
        if (logits[i] > -INFINITY)
            z += exp((double)logits[i] - logits[best]);
    double u = (double)rng_uniform(rng) * z, acc = 0;
    for (int i = 0; i < V; i++) {
        if (logits[i] == -INFINITY)
            continue;
        acc += exp((double)logits[i] - logits[best]);
        if (acc > u)
            return i;
    }
    return best;
}
