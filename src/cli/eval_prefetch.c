#include "cli/eval_prefetch.h"

#include <stdlib.h>

#include "infer/eval_prompt.h"

void *prefetch_main(void *arg) {
    prefetch *p = arg;
    size_t per = (size_t)3 * p->prep.size * p->prep.size;
    for (int j = 0; j < p->n_todo; j++) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && j - p->consumed >= PREFETCH)
            pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        job jb = {.item = p->todo[j]};
        eval_pick_demos(p->set, jb.item, p->pool, p->demo_k, p->seed, jb.demos, &jb.n_demos);
        const evalset *src = p->pool ? p->pool : p->set;
        jb.n_images = (p->demo_images ? jb.n_demos : 0) + 1;
        jb.pixels = malloc(sizeof(float) * per * (size_t)jb.n_images);
        jb.st = jb.pixels ? MM_OK : mm_errf(&jb.err, MM_ERR_NOMEM, "out of memory for %d images", jb.n_images);
        for (int k = 0; jb.st == MM_OK && k < jb.n_images; k++) {
            const char *path = k < jb.n_images - 1 ? src->items[jb.demos[k]].image : p->set->items[jb.item].image;
            jb.st = preprocess_clip_file(path, &p->prep, jb.pixels + per * (size_t)k, &jb.err);
        }
        jb.ready = 1;
        pthread_mutex_lock(&p->mu);
        p->slot[j % PREFETCH] = jb;
        p->produced = j + 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

// Waits for job j; the caller owns its pixels afterwards.
job prefetch_take(prefetch *p, int j) {
    pthread_mutex_lock(&p->mu);
    while (p->produced <= j)
        pthread_cond_wait(&p->cv, &p->mu);
    job jb = p->slot[j % PREFETCH];
    p->slot[j % PREFETCH].pixels = NULL;
    p->consumed = j + 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return jb;
}

void prefetch_stop(prefetch *p, pthread_t th) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(th, NULL);
    for (int i = 0; i < PREFETCH; i++)
        free(p->slot[i].pixels);
}
