#include "io/npy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

static const char *descr_of(mm_npy_dtype t) {
    switch (t) {
    case MM_NPY_F32: return "<f4";
    case MM_NPY_I32: return "<i4";
    case MM_NPY_I64: return "<i8";
    }
    return "?";
}

static size_t elem_size(mm_npy_dtype t) { return t == MM_NPY_I64 ? 8 : 4; }

mm_status mm_npy_write(const char *path, mm_npy_dtype dtype, const void *data, int ndim, const int64_t *shape,
                       mm_err *e) {
    if (ndim < 0 || ndim > MM_NPY_MAX_DIMS)
        return mm_errf(e, MM_ERR_ARG, "%s: npy supports at most %d dims", path, MM_NPY_MAX_DIMS);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr_of(dtype));
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%" PRId64 "%s", shape[i], (ndim == 1 || i + 1 < ndim) ? ", " : "");
        count *= shape[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    // Pad so that magic(6) + version(2) + len(2) + header is a multiple of 64, ending in '\n'.
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    uint8_t head[640];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = (uint16_t)(padded - 10);
    head[8] = (uint8_t)(hl & 0xff);
    head[9] = (uint8_t)(hl >> 8);
    memcpy(head + 10, dict, (size_t)n);
    memset(head + 10 + n, ' ', padded - 10 - (size_t)n);
    head[padded - 1] = '\n';
    mm_atomic_file *f;
    MM_TRY(mm_atomic_open(&f, path, e));
    if (mm_atomic_write(f, head, padded, e) != MM_OK ||
        mm_atomic_write(f, data, (size_t)count * elem_size(dtype), e) != MM_OK) {
        mm_atomic_abort(f);
        return MM_ERR_IO;
    }
    return mm_atomic_commit(f, e);
}

// Finds "'key':" in the header dict and returns a pointer just past the colon and spaces.
static const char *dict_value(const char *dict, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(dict, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    return p;
}

mm_status mm_npy_read(const char *path, mm_npy *out, mm_err *e) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    MM_TRY(mm_read_file(path, &buf, &len, e));
    mm_status st = MM_ERR_FORMAT;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        mm_errf(e, st, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hl, hstart;
    if (buf[6] == 1) {
        hl = buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if ((buf[6] == 2 || buf[6] == 3) && len >= 12) {
        hl = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        mm_errf(e, st, "%s: unsupported .npy version %d", path, buf[6]);
        goto done;
    }
    if (hl > len - hstart || hl > 65536) {
        mm_errf(e, st, "%s: header length %zu runs past the end of the file", path, hl);
        goto done;
    }
    char *dict = malloc(hl + 1);
    if (!dict) {
        st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(dict, buf + hstart, hl);
    dict[hl] = 0;
    const char *d = dict_value(dict, "descr"), *fo = dict_value(dict, "fortran_order"), *sh = dict_value(dict, "shape");
    int is_f8 = 0;
    if (!d || !fo || !sh) {
        mm_errf(e, st, "%s: header lacks descr, fortran_order or shape", path);
    } else if (strncmp(fo, "False", 5) != 0) {
        mm_errf(e, st, "%s: Fortran-order arrays are not supported; save with np.ascontiguousarray", path);
    } else {
        if (!strncmp(d, "'<f4'", 5))
            out->dtype = MM_NPY_F32;
        else if (!strncmp(d, "'<f8'", 5))
            out->dtype = MM_NPY_F32, is_f8 = 1;
        else if (!strncmp(d, "'<i4'", 5))
            out->dtype = MM_NPY_I32;
        else if (!strncmp(d, "'<i8'", 5))
            out->dtype = MM_NPY_I64;
        else {
            mm_errf(e, st, "%s: dtype %.8s is not supported (want <f4, <f8, <i4 or <i8)", path, d);
            free(dict);
            goto done;
        }
        const char *p = sh;
        if (*p != '(') {
            mm_errf(e, st, "%s: malformed shape", path);
            free(dict);
            goto done;
        }
        p++;
        out->count = 1;
        int ok = 1;
        while (ok) {
            while (*p == ' ' || *p == ',')
                p++;
            if (*p == ')')
                break;
            char *end;
            long long v = strtoll(p, &end, 10);
            if (end == p || v < 0 || out->ndim == MM_NPY_MAX_DIMS || (v > 0 && out->count > INT64_MAX / 16 / v)) {
                ok = 0;
                break;
            }
            out->shape[out->ndim++] = v;
            out->count *= v;
            p = end;
        }
        if (!ok) {
            mm_errf(e, st, "%s: malformed or too large shape", path);
            free(dict);
            goto done;
        }
        size_t esz = is_f8 ? 8 : elem_size(out->dtype);
        size_t need = (size_t)out->count * esz, have = len - hstart - hl;
        if (have < need) {
            mm_errf(e, st, "%s: truncated: data needs %zu bytes, file has %zu", path, need, have);
        } else {
            out->data = malloc(out->count ? (size_t)out->count * elem_size(out->dtype) : 1);
            if (!out->data) {
                st = mm_errf(e, MM_ERR_NOMEM, "out of memory");
            } else {
                const uint8_t *src = buf + hstart + hl;
                if (is_f8) {
                    float *dst = out->data;
                    for (int64_t i = 0; i < out->count; i++) {
                        double v;
                        memcpy(&v, src + i * 8, 8);
                        dst[i] = (float)v;
                    }
                } else {
                    memcpy(out->data, src, need);
                }
                st = MM_OK;
            }
        }
    }
    free(dict);
done:
    free(buf);
    return st;
}

void mm_npy_free(mm_npy *a) {
    free(a->data);
    a->data = NULL;
}
