// Kernels of the CPU backend that live in their own files (shared by ops_cpu.c's table).
#ifndef MM_CPU_INTERNAL_H
#define MM_CPU_INTERNAL_H

#include "kernels/ops.h"

void cpu_attention(float *out, int out_stride, const float *q, int q_stride, const float *k, const float *v,
                   int kv_stride, const mm_attn_mask *m, int B, int Tq, int Tk, int H, int Dh, float scale);
void cpu_attention_kv(float *out, int out_stride, const float *q, int q_stride, const void *k, const void *v,
                      mm_dtype kv_type, int kv_stride, const mm_attn_mask *m, int Tq, int Tk, int H, int Dh,
                      float scale);
void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, int out_stride, const float *q,
                            int q_stride, const float *k, const float *v, int kv_stride, const mm_attn_mask *m, int B,
                            int Tq, int Tk, int H, int Dh, float scale);
// Memory members (mem_cpu.c): the C library's allocation and copies.
void *cpu_alloc(size_t bytes);
void cpu_free(void *p);
void cpu_copy(void *dst, const void *src, size_t bytes);
void cpu_copy_rows(void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width, size_t rows);
void cpu_zero(void *p, size_t bytes);
void cpu_sync(void);
mm_status cpu_status(mm_err *e);
// Training helpers (train_cpu.c).
double cpu_dot(const float *a, const float *b, size_t n);
void cpu_lora_dropout(float *out, const float *x, size_t n, uint64_t seed, size_t module, float p);
void cpu_scale(float *x, float s, size_t n);
void cpu_adamw(float *p, float *m, float *v, const float *g, const uint8_t *decay, size_t n, float b1, float b2, float eps,
               float step_size, float bc2_sqrt, float keep);

#endif
