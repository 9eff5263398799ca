// Images of an evaluation decoded and preprocessed ahead of the model on a worker thread: job j (the
// j-th item to run) holds its query image and in-context examples' images, PREFETCH jobs ahead at most.
#ifndef MM_EVAL_PREFETCH_H
#define MM_EVAL_PREFETCH_H

#include <pthread.h>
#include <stdint.h>

#include "base/err.h"
#include "infer/evalset.h"
#include "vision/preprocess.h"

#define PREFETCH 8
#define MAX_SHOTS 32

typedef struct {
    int ready;
    int item;
    int demos[MAX_SHOTS], n_demos;
    float *pixels; // [n_images, 3, S, S]
    int n_images;
    mm_status st;
    mm_err err;
} job;

typedef struct {
    const evalset *set, *pool;
    const int *todo; // item indices to run, in order
    int n_todo;
    int demo_k, demo_images; // examples per query; whether their images go in the prompt
    uint64_t seed;
    clip_prep prep;
    job slot[PREFETCH];
    int produced, consumed, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} prefetch;

// The worker thread's body (arg: the prefetch, its fields above `slot` set, mu and cv initialised).
void *prefetch_main(void *arg);
// Waits for job j; the caller owns its pixels afterwards. Jobs are taken in order: 0, 1, 2, ...
job prefetch_take(prefetch *p, int j);
// Stops the worker th and frees the jobs not taken.
void prefetch_stop(prefetch *p, pthread_t th);

#endif
