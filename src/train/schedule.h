// Learning-rate schedules as Hugging Face's get_*_schedule_with_warmup compute them: the rate used
// for optimizer step k (0-based) of total.
#ifndef MM_SCHEDULE_H
#define MM_SCHEDULE_H

typedef enum { MM_SCHED_CONSTANT = 0, MM_SCHED_LINEAR, MM_SCHED_COSINE } mm_schedule;

// Parses "constant", "linear" or "cosine"; returns 0 on success.
int schedule_parse(const char *s, mm_schedule *out);
const char *schedule_name(mm_schedule s);
float schedule_lr(mm_schedule s, float base, long step, long warmup, long total);

#endif
