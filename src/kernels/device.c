#include "kernels/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops_cuda.h"

mm_status mm_device_parse(const char *s, mm_device_spec *d, mm_err *e) {
    *d = (mm_device_spec){MM_DEV_AUTO, 0};
    if (!s || !*s || !strcmp(s, "auto"))
        return MM_OK;
    if (!strcmp(s, "cpu")) {
        d->kind = MM_DEV_CPU;
        return MM_OK;
    }
    const char *rest = NULL;
    if (!strncmp(s, "cuda", 4))
        rest = s + 4;
    else if (!strncmp(s, "gpu", 3))
        rest = s + 3;
    if (rest) {
        d->kind = MM_DEV_CUDA;
        if (!*rest)
            return MM_OK;
        if (*rest == ':' && rest[1]) {
            char *end;
            long v = strtol(rest + 1, &end, 10);
            if (!*end && v >= 0 && v < 1024) {
                d->index = (int)v;
                return MM_OK;
            }
        }
    }
    return mm_errf(e, MM_ERR_ARG, "device '%s' is not one of cpu, cuda, cuda:N, auto", s);
}

mm_status mm_device_open(const char *spec, const mm_ops **ops, char *desc, size_t desc_len, mm_err *e) {
    const char *from = "--device";
    if (!spec) {
        spec = getenv("MMGPT_DEVICE");
        from = "MMGPT_DEVICE";
    }
    mm_device_spec d;
    if (mm_device_parse(spec, &d, e) != MM_OK)
        return mm_err_prefix(e, "%s", from);
    if (d.kind == MM_DEV_CPU) {
        *ops = ops_cpu();
        snprintf(desc, desc_len, "cpu");
        return MM_OK;
    }
    char why[160] = "";
    if (d.kind == MM_DEV_AUTO && ops_cuda_device_count(why, sizeof why) == 0) {
        *ops = ops_cpu();
        snprintf(desc, desc_len, "cpu (no CUDA device: %s)", why);
        return MM_OK;
    }
    mm_err ce = {0};
    const mm_ops *t = ops_cuda(d.index, &ce);
    if (!t) {
        if (d.kind == MM_DEV_CUDA)
            return mm_errf(e, ce.code, "%s", ce.msg);
        *ops = ops_cpu(); // auto: a device that answers the count but fails to open still leaves the CPU
        snprintf(desc, desc_len, "cpu (%s)", ce.msg);
        return MM_OK;
    }
    *ops = t;
    snprintf(desc, desc_len, "cuda:%d (%s)", d.index, ops_cuda_describe());
    return MM_OK;
}

int mm_kv_cache_parse(const char *s, mm_dtype *t) {
    if (!s || !strcmp(s, "f32"))
        *t = MM_F32;
    else if (!strcmp(s, "f16"))
        *t = MM_F16;
    else
        return -1;
    return 0;
}

mm_status mm_precision_parse(const char *s, mm_precision *p, mm_err *e) {
    *p = MM_PREC_DEFAULT;
    if (!s || !*s)
        return MM_OK;
    if (!strcmp(s, "f32") || !strcmp(s, "fp32") || !strcmp(s, "float32")) {
        *p = MM_PREC_F32;
        return MM_OK;
    }
    if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) {
        *p = MM_PREC_BF16;
        return MM_OK;
    }
    return mm_errf(e, MM_ERR_ARG, "precision '%s' is not one of f32, bf16", s);
}
