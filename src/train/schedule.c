#include "train/schedule.h"

#include <math.h>
#include <string.h>

int schedule_parse(const char *s, mm_schedule *out) {
    static const char *names[] = {"constant", "linear", "cosine"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (mm_schedule)i;
            return 0;
        }
    return -1;
}

const char *schedule_name(mm_schedule s) { return s == MM_SCHED_LINEAR ? "linear" : s == MM_SCHED_COSINE ? "cosine" : "constant"; }

float schedule_lr(mm_schedule s, float base, long step, long warmup, long total) {
    if (step < warmup)
        return base * (float)step / (float)(warmup > 0 ? warmup : 1);
    if (s == MM_SCHED_CONSTANT)
        return base;
    long span = total - warmup > 1 ? total - warmup : 1;
    double progress = (double)(step - warmup) / (double)span;
    if (s == MM_SCHED_LINEAR)
        return base * (float)fmax(0.0, 1.0 - progress);
    return base * (float)fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress)));
}
