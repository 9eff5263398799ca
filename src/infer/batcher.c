#include "infer/batcher.h"

#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

// How long a step waits for joined generations that have not submitted their token yet (they are
// sampling or streaming their last one): short against a step, long enough to gather them all.
#define GATHER_NS 5000000L

typedef struct request {
    int n; // sequences: one for a generation, a search's beams
    mm_engine *const *ens;
    const int32_t *tokens;
    const float **logits;
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
    int away;    // of them, those inside an exclusive section (they will not submit meanwhile)
    int leading; // a thread is gathering or running a step
    request *head, **tail;
    int n_pending; // requests
    int cap;       // of the arrays below (sequences)
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
    if (!b)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
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
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->compute);
    free(b->ens);
    free(b->next);
    free(b->logits);
    free(b->batch);
    free(b);
}

// Room for n sequences in the step arrays (called with mu held); 0 when out of memory.
static int reserve(mm_batcher *b, int n) {
    if (n <= b->cap)
        return 1;
    mm_engine **ens = realloc(b->ens, sizeof *ens * (size_t)n);
    if (ens)
        b->ens = ens;
    int32_t *next = realloc(b->next, sizeof *next * (size_t)n);
    if (next)
        b->next = next;
    const float **lg = realloc(b->logits, sizeof *lg * (size_t)n);
    if (lg)
        b->logits = lg;
    request **batch = realloc(b->batch, sizeof *batch * (size_t)n);
    if (batch)
        b->batch = batch;
    if (!ens || !next || !lg || !batch)
        return 0;
    b->cap = n;
    return 1;
}

// The batcher the calling thread's generation joined (NULL: none), and whether its exclusive section
// counts as away (only a joined generation is waited for, so only it may be away).
static _Thread_local mm_batcher *joined_to;
static _Thread_local int counted_away;

// Every thread that computes through the batcher has an OpenMP team of its own, and libgomp counts the idle
// teams' threads: once they outnumber the processors its workers spin only briefly at the end of a parallel
// region and then sleep, and a token's ~260 regions each paid a futex wake-up (`mmgpt serve`, one slot, 2
// cores: 15-30% slower than `mmgpt generate`). So a thread lets its team go when another thread may compute
// next (other generations joined) and when its generation leaves: then only the computing thread's team
// exists. Not after every step: starting the workers again costs 150-240 us, a tiny model's whole step.
static void release_team(void) { omp_pause_resource_all(omp_pause_soft); }

void batcher_join(mm_batcher *b) {
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->joined++;
    joined_to = b;
    pthread_mutex_unlock(&b->mu);
}

void batcher_leave(mm_batcher *b) {
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->joined--;
    joined_to = NULL;
    pthread_cond_broadcast(&b->cv); // a gathering step need not wait for it
    pthread_mutex_unlock(&b->mu);
    release_team();
}

// Whether generations other than the calling thread's are joined (another thread may compute next); mu held.
static int others_joined(const mm_batcher *b) { return b->joined - (joined_to == b) > 0; }

void batcher_exclusive_begin(mm_batcher *b) {
    if (!b)
        return;
    counted_away = joined_to == b;
    if (counted_away) { // a step need not wait for this generation meanwhile
        pthread_mutex_lock(&b->mu);
        b->away++;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_lock(&b->compute);
}

void batcher_exclusive_end(mm_batcher *b) {
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    int others = others_joined(b);
    pthread_mutex_unlock(&b->mu);
    if (others)
        release_team();
    pthread_mutex_unlock(&b->compute);
    if (counted_away) {
        pthread_mutex_lock(&b->mu);
        b->away--;
        pthread_mutex_unlock(&b->mu);
    }
    counted_away = 0;
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
    for (;;) {
        int seqs = 0;
        for (request *r = b->head; r; r = r->next)
            seqs += r->n;
        if (seqs >= b->max_batch || b->n_pending >= b->joined - b->away)
            break;
        if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT)
            break;
    }
    // Whole requests in arrival order up to max_batch sequences (the first one whatever its size).
    int nreq = 0, n = 0;
    for (request *r = b->head; r && (nreq == 0 || n + r->n <= b->max_batch); r = r->next)
        nreq++, n += r->n;
    mm_err err = {0};
    mm_status s = reserve(b, n) ? MM_OK : mm_errf(&err, MM_ERR_NOMEM, "out of memory");
    n = 0;
    for (int i = 0; i < nreq; i++) {
        request *r = b->head;
        b->head = r->next;
        for (int k = 0; s == MM_OK && k < r->n; k++)
            b->batch[n] = r, b->ens[n] = r->ens[k], b->next[n] = r->tokens[k], n++;
        if (s != MM_OK)
            r->status = s, r->err = err, r->done = 1;
    }
    if (!b->head)
        b->tail = &b->head;
    b->n_pending -= nreq;
    int others = others_joined(b);
    pthread_mutex_unlock(&b->mu);
    if (s == MM_OK) {
        pthread_mutex_lock(&b->compute);
        s = engine_step(b->ens, n, b->next, b->logits, &err);
        if (others)
            release_team();
        pthread_mutex_unlock(&b->compute);
    }
    pthread_mutex_lock(&b->mu);
    for (int i = 0, k = 0; s == MM_OK && i < n; i++) {
        request *r = b->batch[i];
        k = i > 0 && b->batch[i - 1] == r ? k + 1 : 0;
        r->logits[k] = b->logits[i];
        r->done = 1;
    }
    for (int i = 0; s != MM_OK && i < n; i++)
        b->batch[i]->status = s, b->batch[i]->err = err, b->batch[i]->done = 1;
    if (s == MM_OK) {
        b->st.steps++;
        b->st.stepped_tokens += n;
        if (n > b->st.widest)
            b->st.widest = n;
    }
    b->leading = 0;
    pthread_cond_broadcast(&b->cv);
}

// Submits a request and waits until a step (led by this thread or another) has run it.
static mm_status submit(mm_batcher *b, request *r, mm_err *e) {
    pthread_mutex_lock(&b->mu);
    *b->tail = r;
    b->tail = &r->next;
    b->n_pending++;
    pthread_cond_broadcast(&b->cv);
    while (!r->done) {
        if (!b->leading)
            lead_step(b);
        else
            pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    if (r->status != MM_OK && e)
        *e = r->err;
    return r->status;
}

mm_status batcher_step(mm_batcher *b, mm_engine *const *ens, int n, const int32_t *next, const float **logits,
                       mm_err *e) {
    if (n <= 0)
        return MM_OK;
    request r = {.n = n, .ens = ens, .tokens = next, .logits = logits};
    return submit(b, &r, e);
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
    request r = {.n = 1, .ens = &en, .tokens = &seq[n - 1], .logits = logits};
    return submit(b, &r, e);
}
