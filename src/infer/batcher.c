#include "infer/batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

// How long a step waits for joined generations that have not submitted their token yet (they are
// sampling or streaming their last one): short against a step, long enough to gather them all.
#define GATHER_NS 5000000L

typedef struct request {
    mm_engine *en;
    int32_t token;
    const float *logits;
    mm_status status;
    mm_err err;
    int done;
    struct request *next;
} request;

struct mm_batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t compute; // one model computation at a time
    int max_batch;
    int joined;  // generations that will submit steps
    int away;    // of them, those inside a computation of their own (they will not submit meanwhile)
    int leading; // a thread is gathering or running a step
    request *head, **tail;
    int n_pending;
    mm_engine **ens;
    int32_t *next;
    const float **logits;
    request **batch;
    mm_batcher_stats st;
};

mm_status batcher_create(mm_batcher **out, int max_batch, mm_err *e) {
    *out = NULL;
    if (max_batch < 1)
        return mm_errf(e, MM_ERR_ARG, "a batch holds at least one sequence, not %d", max_batch);
    mm_batcher *b = calloc(1, sizeof *b);
    if (b) {
        b->ens = malloc(sizeof(mm_engine *) * (size_t)max_batch);
        b->next = malloc(sizeof(int32_t) * (size_t)max_batch);
        b->logits = malloc(sizeof(const float *) * (size_t)max_batch);
        b->batch = malloc(sizeof(request *) * (size_t)max_batch);
    }
    if (!b || !b->ens || !b->next || !b->logits || !b->batch) {
        batcher_free(b);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    pthread_mutex_init(&b->compute, NULL);
    b->max_batch = max_batch;
    b->tail = &b->head;
    *out = b;
    return MM_OK;
}

void batcher_free(mm_batcher *b) {
    if (!b)
        return;
    if (b->ens && b->next && b->logits && b->batch) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->compute);
    }
    free(b->ens);
    free(b->next);
    free(b->logits);
    free(b->batch);
    free(b);
}

void batcher_join(mm_batcher *b) {
    pthread_mutex_lock(&b->mu);
    b->joined++;
    pthread_mutex_unlock(&b->mu);
}

void batcher_leave(mm_batcher *b) {
    pthread_mutex_lock(&b->mu);
    b->joined--;
    pthread_cond_broadcast(&b->cv); // a gathering step need not wait for it
    pthread_mutex_unlock(&b->mu);
}

void batcher_exclusive_begin(mm_batcher *b) {
    pthread_mutex_lock(&b->mu);
    b->away++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_lock(&b->compute);
}

void batcher_exclusive_end(mm_batcher *b) {
    pthread_mutex_unlock(&b->compute);
    pthread_mutex_lock(&b->mu);
    b->away--;
    pthread_mutex_unlock(&b->mu);
}

mm_batcher_stats batcher_stats(mm_batcher *b) {
    pthread_mutex_lock(&b->mu);
    mm_batcher_stats st = b->st;
    pthread_mutex_unlock(&b->mu);
    return st;
}

// Called with mu held by the thread that leads: gathers pending steps (waiting briefly for joined
// generations that have not submitted yet), runs them outside mu, and hands out the results.
static void lead_step(mm_batcher *b) {
    b->leading = 1;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += GATHER_NS;
    if (until.tv_nsec >= 1000000000L)
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    while (b->n_pending < b->max_batch && b->n_pending < b->joined - b->away)
        if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT)
            break;
    int n = 0;
    while (b->head && n < b->max_batch) {
        request *r = b->head;
        b->head = r->next;
        b->batch[n] = r, b->ens[n] = r->en, b->next[n] = r->token;
        n++;
    }
    if (!b->head)
        b->tail = &b->head;
    b->n_pending -= n;
    pthread_mutex_unlock(&b->mu);
    mm_err err = {0};
    pthread_mutex_lock(&b->compute);
    mm_status s = engine_step(b->ens, n, b->next, b->logits, &err);
    pthread_mutex_unlock(&b->compute);
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < n; i++) {
        request *r = b->batch[i];
        r->status = s, r->done = 1;
        if (s == MM_OK)
            r->logits = b->logits[i];
        else
            r->err = err;
    }
    b->st.steps++;
    b->st.stepped_tokens += n;
    if (n > b->st.widest)
        b->st.widest = n;
    b->leading = 0;
    pthread_cond_broadcast(&b->cv);
}

mm_status batcher_eval(mm_batcher *b, mm_engine *en, const int32_t *seq, int n, const float **logits, mm_err *e) {
    if (!engine_can_step(en, seq, n)) {
        batcher_exclusive_begin(b);
        mm_status s = engine_eval(en, seq, n, logits, e);
        batcher_exclusive_end(b);
        pthread_mutex_lock(&b->mu);
        b->st.prompts++;
        pthread_mutex_unlock(&b->mu);
        return s;
    }
    request r = {.en = en, .token = seq[n - 1]};
    pthread_mutex_lock(&b->mu);
    *b->tail = &r;
    b->tail = &r.next;
    b->n_pending++;
    pthread_cond_broadcast(&b->cv);
    while (!r.done) {
        if (!b->leading)
            lead_step(b);
        else
            pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    if (r.status != MM_OK) {
        if (e)
            *e = r.err;
        return r.status;
    }
    *logits = r.logits;
    return MM_OK;
}
