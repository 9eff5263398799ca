#include "io/gguf.h"

#include "base/bigmem.h"
#include "base/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"

#define GGUF_MAGIC 0x46554747u // "GGUF" little-endian

static const size_t scalar_size[MM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *type_names[MM_GGUF_TYPE_COUNT] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                                     "bool", "str", "array", "u64",   "i64", "f64"};

const char *gguf_type_name(mm_gguf_type t) { return (unsigned)t < MM_GGUF_TYPE_COUNT ? type_names[t] : "?"; }

// ggml's tensor types that map to ours; the quantized ones are named in the refusal.
static int ggml_to_dtype(uint32_t t, mm_dtype *d) {
    switch (t) {
    case 0: *d = MM_F32; return 0;
    case 1: *d = MM_F16; return 0;
    case 24: *d = MM_I8; return 0;
    case 25: *d = MM_I16; return 0;
    case 26: *d = MM_I32; return 0;
    case 27: *d = MM_I64; return 0;
    case 28: *d = MM_F64; return 0;
    case 30: *d = MM_BF16; return 0;
    default: return mm_quant_from_ggml(t, d);
    }
}

static int dtype_to_ggml(mm_dtype d, uint32_t *t) {
    static const struct { mm_dtype d; uint32_t t; } m[] = {{MM_F32, 0},  {MM_F16, 1},  {MM_I8, 24}, {MM_I16, 25},
                                                          {MM_I32, 26}, {MM_I64, 27}, {MM_F64, 28}, {MM_BF16, 30}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i].d == d) {
            *t = m[i].t;
            return 0;
        }
    int q = mm_quant_ggml_type(d);
    if (q < 0)
        return -1;
    *t = (uint32_t)q;
    return 0;
}

// ---------------------------------------------------------------- reading
typedef struct {
    const uint8_t *p;
    size_t len, off;
    const char *label;
    mm_err *e;
} cursor;

static mm_status need(cursor *c, size_t n, const char *what) {
    if (n > c->len - c->off)
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: truncated at byte %zu reading %s (%zu bytes needed, %zu left)", c->label,
                       c->off, what, n, c->len - c->off);
    return MM_OK;
}

static mm_status rd(cursor *c, void *dst, size_t n, const char *what) {
    MM_TRY(need(c, n, what));
    memcpy(dst, c->p + c->off, n);
    c->off += n;
    return MM_OK;
}

// A string: u64 length then bytes; *s points into the file (not NUL-terminated).
static mm_status rd_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    MM_TRY(rd(c, len, 8, what));
    if (*len > c->len - c->off)
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: %s at byte %zu claims %" PRIu64 " bytes; only %zu remain", c->label, what,
                       c->off - 8, *len, c->len - c->off);
    *s = c->p + c->off;
    c->off += (size_t)*len;
    return MM_OK;
}

static mm_status rd_value(cursor *c, mm_gguf_kv *kv) {
    uint32_t t;
    MM_TRY(rd(c, &t, 4, "a value type"));
    if (t >= MM_GGUF_TYPE_COUNT)
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: key '%s' has unknown value type %u", c->label, kv->key, t);
    kv->type = (mm_gguf_type)t;
    if (t == MM_GGUF_STRING)
        return rd_str(c, &kv->data, &kv->count, "a string value");
    if (t != MM_GGUF_ARRAY) {
        MM_TRY(need(c, scalar_size[t], "a scalar value"));
        kv->data = c->p + c->off;
        c->off += scalar_size[t];
        return MM_OK;
    }
    uint32_t et;
    MM_TRY(rd(c, &et, 4, "an array element type"));
    MM_TRY(rd(c, &kv->count, 8, "an array length"));
    if (et >= MM_GGUF_TYPE_COUNT || et == MM_GGUF_ARRAY)
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: key '%s': array element type %u is %s", c->label, kv->key, et,
                       et == MM_GGUF_ARRAY ? "a nested array (not supported)" : "unknown");
    kv->elem_type = (mm_gguf_type)et;
    kv->data = c->p + c->off;
    if (et != MM_GGUF_STRING) {
        if (kv->count > (c->len - c->off) / scalar_size[et])
            return mm_errf(c->e, MM_ERR_FORMAT, "%s: key '%s': array of %" PRIu64 " %s exceeds the file", c->label, kv->key,
                           kv->count, type_names[et]);
        c->off += (size_t)kv->count * scalar_size[et];
        return MM_OK;
    }
    if (kv->count > (c->len - c->off) / 8) // every string takes at least its 8-byte length
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: key '%s': array of %" PRIu64 " strings exceeds the file", c->label, kv->key,
                       kv->count);
    for (uint64_t i = 0; i < kv->count; i++) {
        const uint8_t *s;
        uint64_t l;
        MM_TRY(rd_str(c, &s, &l, "an array string"));
    }
    return MM_OK;
}

static char *dup_str(const uint8_t *s, uint64_t len) {
    char *o = malloc((size_t)len + 1);
    if (o) {
        memcpy(o, s, (size_t)len);
        o[len] = 0;
    }
    return o;
}

static uint32_t hash_name(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int cmp_offset(const void *a, const void *b) {
    const mm_gguf_tensor *x = *(mm_gguf_tensor *const *)a, *y = *(mm_gguf_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static mm_status check_tensors(mm_gguf *g, const char *label, mm_err *e) {
    // Names unique (hash index), extents disjoint.
    g->cap = 16;
    while (g->cap < 2 * g->n_tensors)
        g->cap *= 2;
    g->index = malloc(sizeof(int32_t) * (size_t)g->cap);
    mm_gguf_tensor **by_off = malloc(sizeof *by_off * (size_t)(g->n_tensors + 1));
    if (!g->index || !by_off) {
        free(by_off);
        return mm_errf(e, MM_ERR_NOMEM, "%s: out of memory indexing %d tensors", label, g->n_tensors);
    }
    memset(g->index, 0xff, sizeof(int32_t) * (size_t)g->cap);
    mm_status s = MM_OK;
    for (int i = 0; i < g->n_tensors && s == MM_OK; i++) {
        uint32_t h = hash_name(g->tensors[i].name) & (uint32_t)(g->cap - 1);
        while (g->index[h] >= 0 && s == MM_OK) {
            if (!strcmp(g->tensors[g->index[h]].name, g->tensors[i].name))
                s = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' appears twice", label, g->tensors[i].name);
            h = (h + 1) & (uint32_t)(g->cap - 1);
        }
        g->index[h] = i;
        by_off[i] = &g->tensors[i];
    }
    if (s == MM_OK && g->n_tensors > 1) {
        qsort(by_off, (size_t)g->n_tensors, sizeof *by_off, cmp_offset);
        for (int i = 1; i < g->n_tensors && s == MM_OK; i++)
            if (by_off[i - 1]->data + by_off[i - 1]->nbytes > by_off[i]->data)
                s = mm_errf(e, MM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", label, by_off[i - 1]->name, by_off[i]->name);
    }
    free(by_off);
    return s;
}

static mm_status rd_tensor(cursor *c, mm_gguf_tensor *t, uint64_t *offset) {
    const uint8_t *s;
    uint64_t len;
    MM_TRY(rd_str(c, &s, &len, "a tensor name"));
    if (len == 0 || len > 4096)
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: tensor name at byte %zu is %s", c->label, c->off - (size_t)len,
                       len ? "longer than 4096 bytes" : "empty");
    if (!(t->name = dup_str(s, len)))
        return mm_errf(c->e, MM_ERR_NOMEM, "out of memory");
    if (memchr(t->name, 0, (size_t)len))
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: tensor name '%s' contains a NUL byte", c->label, t->name);
    uint32_t nd, type;
    MM_TRY(rd(c, &nd, 4, "a tensor's dimension count"));
    if (nd == 0 || nd > MM_GGUF_MAX_DIMS)
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1..%d allowed)", c->label, t->name, nd,
                       MM_GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    t->numel = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        MM_TRY(rd(c, &ne, 8, "a tensor dimension"));
        if (ne == 0 || ne > ((uint64_t)1 << 40) || (uint64_t)t->numel > ((uint64_t)1 << 42) / ne)
            return mm_errf(c->e, MM_ERR_FORMAT, "%s: tensor '%s' dimension %u is %" PRIu64 " (empty or absurd)", c->label,
                           t->name, d, ne);
        t->shape[nd - 1 - d] = (int64_t)ne;
        t->numel *= (int64_t)ne;
    }
    MM_TRY(rd(c, &type, 4, "a tensor type"));
    t->ggml_type = type;
    if (ggml_to_dtype(type, &t->dtype) != 0)
        return mm_errf(c->e, MM_ERR_UNSUPPORTED, "%s: tensor '%s' has ggml type %u (unknown or a quantization mmgpt "
                                                 "does not read); mmgpt reads F32, F16, BF16, F64, integer tensors, "
                                                 "Q8_0, Q4_0, Q4_K and Q6_K",
                       c->label, t->name, type);
    if (t->shape[nd - 1] % mm_dtype_block(t->dtype) != 0)
        return mm_errf(c->e, MM_ERR_FORMAT, "%s: tensor '%s' is %s but its rows of %" PRId64 " are not whole blocks of %d",
                       c->label, t->name, mm_dtype_name(t->dtype), t->shape[nd - 1], mm_dtype_block(t->dtype));
    t->nbytes = mm_dtype_nbytes(t->dtype, (size_t)t->numel);
    return rd(c, offset, 8, "a tensor offset");
}

mm_status gguf_parse(mm_gguf *g, const uint8_t *data, size_t len, const char *label, mm_err *e) {
    memset(g, 0, sizeof *g);
    cursor c = {.p = data, .len = len, .label = label, .e = e};
    uint32_t magic;
    uint64_t n_t, n_kv;
    MM_TRY(rd(&c, &magic, 4, "the magic"));
    if (magic != GGUF_MAGIC)
        return mm_errf(e, MM_ERR_FORMAT, "%s: not a GGUF file (bad magic)", label);
    MM_TRY(rd(&c, &g->version, 4, "the version"));
    if (g->version != 2 && g->version != 3)
        return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: GGUF version %u (mmgpt reads versions 2 and 3)", label, g->version);
    MM_TRY(rd(&c, &n_t, 8, "the tensor count"));
    MM_TRY(rd(&c, &n_kv, 8, "the metadata count"));
    // Each key/value takes at least 13 bytes and each tensor description 24: counts beyond what the
    // file could hold are refused before anything is allocated for them.
    if (n_kv > len / 13 || n_t > len / 24 || n_kv > INT32_MAX || n_t > INT32_MAX)
        return mm_errf(e, MM_ERR_FORMAT, "%s: header claims %" PRIu64 " metadata entries and %" PRIu64
                                         " tensors; a %zu-byte file cannot hold them", label, n_kv, n_t, len);
    g->kv = calloc((size_t)n_kv + 1, sizeof *g->kv);
    g->tensors = calloc((size_t)n_t + 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) {
        gguf_close(g);
        return mm_errf(e, MM_ERR_NOMEM, "%s: out of memory for the header", label);
    }
    g->alignment = 32;
    mm_status s = MM_OK;
    for (uint64_t i = 0; i < n_kv && s == MM_OK; i++) {
        const uint8_t *k;
        uint64_t kl;
        s = rd_str(&c, &k, &kl, "a metadata key");
        if (s == MM_OK && !(g->kv[i].key = dup_str(k, kl)))
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        if (s == MM_OK)
            g->n_kv++, s = rd_value(&c, &g->kv[i]);
        if (s == MM_OK && !strcmp(g->kv[i].key, "general.alignment")) {
            uint32_t a = 0;
            if (g->kv[i].type == MM_GGUF_U32)
                memcpy(&a, g->kv[i].data, 4);
            if (a == 0 || (a & (a - 1)) || a > 65536)
                s = mm_errf(e, MM_ERR_FORMAT, "%s: general.alignment must be a u32 power of two up to 65536", label);
            else
                g->alignment = a;
        }
    }
    uint64_t *offs = s == MM_OK ? calloc((size_t)n_t + 1, 8) : NULL;
    if (s == MM_OK && !offs)
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n_t && s == MM_OK; i++) {
        g->n_tensors++;
        s = rd_tensor(&c, &g->tensors[i], &offs[i]);
    }
    size_t start = (c.off + g->alignment - 1) / g->alignment * g->alignment;
    for (int i = 0; i < g->n_tensors && s == MM_OK; i++) {
        mm_gguf_tensor *t = &g->tensors[i];
        if (offs[i] % g->alignment)
            s = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %zu",
                        label, t->name, offs[i], g->alignment);
        else if (start > len || offs[i] > len - start || t->nbytes > len - start - offs[i])
            s = mm_errf(e, MM_ERR_FORMAT, "%s: tensor '%s' (%zu bytes at data offset %" PRIu64 ") extends past the end of "
                                          "the file (%zu bytes)", label, t->name, t->nbytes, offs[i], len);
        else
            t->data = data + start + offs[i];
    }
    free(offs);
    if (s == MM_OK)
        s = check_tensors(g, label, e);
    if (s != MM_OK)
        gguf_close(g);
    return s;
}

int gguf_is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    uint32_t m = 0;
    int ok = f && fread(&m, 4, 1, f) == 1 && m == GGUF_MAGIC;
    if (f)
        fclose(f);
    return ok;
}

// Opens path for reading as a regular non-empty file: *fd and *len (g cleared first).
static mm_status open_file(mm_gguf *g, const char *path, int *fd, size_t *len, mm_err *e) {
    memset(g, 0, sizeof *g);
    *fd = open(path, O_RDONLY);
    if (*fd < 0)
        return mm_errf(e, MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(*fd);
        return mm_errf(e, MM_ERR_IO, "%s: not a regular non-empty file", path);
    }
    *len = (size_t)st.st_size;
    return MM_OK;
}

// Parses the file's bytes at p, which g then owns: a file mapping (alloc 0) or mm_big_alloc memory of alloc
// bytes; freed here when parsing fails.
static mm_status parse_owned(mm_gguf *g, uint8_t *p, size_t len, size_t alloc, const char *path, mm_err *e) {
    mm_status s = gguf_parse(g, p, len, path, e);
    if (s != MM_OK) {
        if (alloc)
            mm_big_free(p, alloc);
        else
            munmap(p, len);
        return s;
    }
    g->map = p;
    g->map_len = len;
    g->map_alloc = alloc;
    return MM_OK;
}

mm_status gguf_open(mm_gguf *g, const char *path, mm_err *e) {
    int fd;
    size_t len;
    MM_TRY(open_file(g, path, &fd, &len, e));
    // Copy-on-write: views may be modified in place (merging adapters) without touching the file.
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return mm_errf(e, MM_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    return parse_owned(g, p, len, 0, path, e);
}

// The whole file read into memory of its own (2 MB pages: base/bigmem.h), then parsed as gguf_open does.
mm_status gguf_open_resident(mm_gguf *g, const char *path, mm_err *e) {
    int fd;
    size_t len, alloc;
    MM_TRY(open_file(g, path, &fd, &len, e));
    uint8_t *p = mm_big_alloc(len, &alloc);
    if (!p) {
        close(fd);
        return mm_errf(e, MM_ERR_NOMEM, "%s: out of memory for %.1f MB of model", path, (double)len / 1e6);
    }
    // 64 MB pieces read by all threads: a copy from the page cache runs at memory speed per core.
    const size_t piece = (size_t)64 << 20;
    long n_pieces = (long)((len + piece - 1) / piece);
    int bad = 0, err = 0;
#pragma omp parallel for schedule(dynamic)
    for (long i = 0; i < n_pieces; i++) {
        size_t off = (size_t)i * piece, end = off + piece < len ? off + piece : len;
        while (off < end) {
            ssize_t r = pread(fd, p + off, end - off, (off_t)off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
#pragma omp critical(gguf_read_error)
                bad = 1, err = r < 0 ? errno : 0;
                break;
            }
            off += (size_t)r;
        }
    }
    close(fd);
    if (bad) {
        mm_big_free(p, alloc);
        return mm_errf(e, MM_ERR_IO, "%s: read failed: %s", path, err ? strerror(err) : "file shrank while reading");
    }
    return parse_owned(g, p, len, alloc, path, e);
}

void gguf_close(mm_gguf *g) {
    for (int i = 0; i < g->n_kv; i++)
        free(g->kv[i].key);
    for (int i = 0; i < g->n_tensors; i++)
        free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->index);
    if (g->map && g->map_alloc)
        mm_big_free(g->map, g->map_alloc);
    else if (g->map)
        munmap(g->map, g->map_len);
    memset(g, 0, sizeof *g);
}

const mm_gguf_kv *gguf_find_kv(const mm_gguf *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

const mm_gguf_tensor *gguf_find_tensor(const mm_gguf *g, const char *name) {
    if (!g->index)
        return NULL;
    for (uint32_t h = hash_name(name) & (uint32_t)(g->cap - 1); g->index[h] >= 0; h = (h + 1) & (uint32_t)(g->cap - 1))
        if (!strcmp(g->tensors[g->index[h]].name, name))
            return &g->tensors[g->index[h]];
    return NULL;
}

static mm_status typed(const mm_gguf *g, const char *key, mm_gguf_type t, const mm_gguf_kv **kv, mm_err *e) {
    *kv = gguf_find_kv(g, key);
    if (!*kv)
        return mm_errf(e, MM_ERR_FORMAT, "GGUF metadata lacks '%s'", key);
    if ((*kv)->type != t)
        return mm_errf(e, MM_ERR_FORMAT, "GGUF metadata '%s' is a %s, expected a %s", key, type_names[(*kv)->type],
                       type_names[t]);
    return MM_OK;
}

mm_status gguf_get_str(const mm_gguf *g, const char *key, const char **s, size_t *len, mm_err *e) {
    const mm_gguf_kv *kv;
    MM_TRY(typed(g, key, MM_GGUF_STRING, &kv, e));
    *s = (const char *)kv->data;
    *len = (size_t)kv->count;
    return MM_OK;
}

mm_status gguf_get_u8_array(const mm_gguf *g, const char *key, const uint8_t **data, size_t *n, mm_err *e) {
    const mm_gguf_kv *kv;
    MM_TRY(typed(g, key, MM_GGUF_ARRAY, &kv, e));
    if (kv->elem_type != MM_GGUF_U8)
        return mm_errf(e, MM_ERR_FORMAT, "GGUF metadata '%s' is an array of %s, expected u8", key, type_names[kv->elem_type]);
    *data = kv->data;
    *n = (size_t)kv->count;
    return MM_OK;
}

static int64_t scalar_int(const mm_gguf_kv *kv, int *ok) {
    const uint8_t *d = kv->data;
    *ok = 1;
    switch (kv->type) {
    case MM_GGUF_U8: return d[0];
    case MM_GGUF_I8: return (int8_t)d[0];
    case MM_GGUF_BOOL: return d[0] != 0;
    case MM_GGUF_U16: { uint16_t v; memcpy(&v, d, 2); return v; }
    case MM_GGUF_I16: { int16_t v; memcpy(&v, d, 2); return v; }
    case MM_GGUF_U32: { uint32_t v; memcpy(&v, d, 4); return v; }
    case MM_GGUF_I32: { int32_t v; memcpy(&v, d, 4); return v; }
    case MM_GGUF_U64: { uint64_t v; memcpy(&v, d, 8); return (int64_t)v; }
    case MM_GGUF_I64: { int64_t v; memcpy(&v, d, 8); return v; }
    default: *ok = 0; return 0;
    }
}

mm_status gguf_get_int(const mm_gguf *g, const char *key, int64_t *v, mm_err *e) {
    const mm_gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return mm_errf(e, MM_ERR_FORMAT, "GGUF metadata lacks '%s'", key);
    int ok;
    *v = scalar_int(kv, &ok);
    return ok ? MM_OK : mm_errf(e, MM_ERR_FORMAT, "GGUF metadata '%s' is a %s, expected an integer", key, type_names[kv->type]);
}

void gguf_kv_format(const mm_gguf_kv *kv, char *out, size_t n) {
    int ok;
    int64_t iv = scalar_int(kv, &ok);
    if (ok) {
        snprintf(out, n, "%" PRId64, iv);
    } else if (kv->type == MM_GGUF_F32 || kv->type == MM_GGUF_F64) {
        double d;
        if (kv->type == MM_GGUF_F32) {
            float f;
            memcpy(&f, kv->data, 4);
            d = f;
        } else {
            memcpy(&d, kv->data, 8);
        }
        snprintf(out, n, "%g", d);
    } else if (kv->type == MM_GGUF_STRING) {
        int show = kv->count > 60 ? 60 : (int)kv->count;
        snprintf(out, n, "\"%.*s%s\"", show, (const char *)kv->data, kv->count > 60 ? "..." : "");
        for (char *p = out; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
    } else {
        snprintf(out, n, "[%s x %" PRIu64 "]", type_names[kv->elem_type], kv->count);
    }
}

// ---------------------------------------------------------------- writing
static void put(mm_gguf_meta *m, const void *d, size_t n) {
    if (m->failed)
        return;
    if (m->len + n > m->cap) {
        size_t nc = m->cap ? m->cap : 4096;
        while (nc < m->len + n)
            nc *= 2;
        uint8_t *b = realloc(m->buf, nc);
        if (!b) {
            m->failed = 1;
            return;
        }
        m->buf = b;
        m->cap = nc;
    }
    memcpy(m->buf + m->len, d, n);
    m->len += n;
}

static void put_str(mm_gguf_meta *m, const char *s, size_t len) {
    uint64_t l = len;
    put(m, &l, 8);
    put(m, s, len);
}

static void put_key(mm_gguf_meta *m, const char *key, mm_gguf_type t) {
    uint32_t tt = t;
    put_str(m, key, strlen(key));
    put(m, &tt, 4);
    m->n++;
}

void gguf_meta_str(mm_gguf_meta *m, const char *key, const char *v) {
    put_key(m, key, MM_GGUF_STRING);
    put_str(m, v, strlen(v));
}
void gguf_meta_u32(mm_gguf_meta *m, const char *key, uint32_t v) {
    put_key(m, key, MM_GGUF_U32);
    put(m, &v, 4);
}
void gguf_meta_i32(mm_gguf_meta *m, const char *key, int32_t v) {
    put_key(m, key, MM_GGUF_I32);
    put(m, &v, 4);
}
void gguf_meta_f32(mm_gguf_meta *m, const char *key, float v) {
    put_key(m, key, MM_GGUF_F32);
    put(m, &v, 4);
}
void gguf_meta_bool(mm_gguf_meta *m, const char *key, int v) {
    uint8_t b = v != 0;
    put_key(m, key, MM_GGUF_BOOL);
    put(m, &b, 1);
}

static void put_array_head(mm_gguf_meta *m, const char *key, mm_gguf_type et, size_t n) {
    uint32_t t = et;
    uint64_t c = n;
    put_key(m, key, MM_GGUF_ARRAY);
    put(m, &t, 4);
    put(m, &c, 8);
}

void gguf_meta_str_array(mm_gguf_meta *m, const char *key, const char *const *v, size_t n) {
    put_array_head(m, key, MM_GGUF_STRING, n);
    for (size_t i = 0; i < n; i++)
        put_str(m, v[i], strlen(v[i]));
}

void gguf_meta_u8_array(mm_gguf_meta *m, const char *key, const uint8_t *v, size_t n) {
    put_array_head(m, key, MM_GGUF_U8, n);
    put(m, v, n);
}

void gguf_meta_free(mm_gguf_meta *m) {
    free(m->buf);
    memset(m, 0, sizeof *m);
}

static size_t tensor_bytes(const mm_gguf_wtensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return mm_dtype_nbytes(t->dtype, n);
}

static size_t pad_to(size_t x) { return (x + MM_GGUF_ALIGN - 1) / MM_GGUF_ALIGN * MM_GGUF_ALIGN; }

mm_status gguf_write(const char *path, mm_gguf_meta *meta, const mm_gguf_wtensor *t, int n, mm_gguf_produce produce,
                     mm_gguf_progress progress, void *user, mm_err *e) {
    gguf_meta_u32(meta, "general.alignment", MM_GGUF_ALIGN);
    if (meta->failed)
        return mm_errf(e, MM_ERR_NOMEM, "%s: out of memory building the metadata", path);
    mm_gguf_meta head = {0}; // magic, version, counts, metadata, tensor descriptions
    uint32_t magic = GGUF_MAGIC, version = 3;
    uint64_t nt = (uint64_t)n;
    put(&head, &magic, 4);
    put(&head, &version, 4);
    put(&head, &nt, 8);
    put(&head, &meta->n, 8);
    put(&head, meta->buf, meta->len);
    size_t off = 0, total = 0, biggest = 0;
    for (int i = 0; i < n; i++) {
        uint32_t type, nd = (uint32_t)t[i].ndim;
        if (dtype_to_ggml(t[i].dtype, &type) != 0 || nd < 1 || nd > MM_GGUF_MAX_DIMS ||
            t[i].shape[nd - 1] % mm_dtype_block(t[i].dtype) != 0) {
            gguf_meta_free(&head);
            return mm_errf(e, MM_ERR_ARG, "%s: tensor '%s' (%s, %d dims) cannot be stored in GGUF", path, t[i].name,
                           mm_dtype_name(t[i].dtype), t[i].ndim);
        }
        put_str(&head, t[i].name, strlen(t[i].name));
        put(&head, &nd, 4);
        for (int d = t[i].ndim - 1; d >= 0; d--) {
            uint64_t ne = (uint64_t)t[i].shape[d];
            put(&head, &ne, 8);
        }
        put(&head, &type, 4);
        uint64_t o = off;
        put(&head, &o, 8);
        size_t b = tensor_bytes(&t[i]);
        off = pad_to(off + b);
        total += b;
        biggest = b > biggest ? b : biggest;
    }
    if (head.failed)
        return mm_errf(e, MM_ERR_NOMEM, "%s: out of memory building the header", path);
    static const uint8_t zeros[MM_GGUF_ALIGN] = {0};
    mm_atomic_file *f = NULL;
    mm_status s = mm_atomic_open(&f, path, e);
    uint8_t *buf = NULL;
    if (s == MM_OK)
        s = mm_atomic_write(f, head.buf, head.len, e);
    if (s == MM_OK)
        s = mm_atomic_write(f, zeros, pad_to(head.len) - head.len, e);
    if (s == MM_OK && produce && !(buf = malloc(biggest ? biggest : 1)))
        s = mm_errf(e, MM_ERR_NOMEM, "%s: out of memory (%zu bytes for one tensor)", path, biggest);
    size_t done = 0;
    for (int i = 0; i < n && s == MM_OK; i++) {
        size_t b = tensor_bytes(&t[i]);
        const void *src = t[i].data;
        if (!src) {
            s = produce ? produce(user, i, buf, b, e) : mm_errf(e, MM_ERR_ARG, "tensor '%s' has no data", t[i].name);
            src = buf;
        }
        if (s == MM_OK)
            s = mm_atomic_write(f, src, b, e);
        if (s == MM_OK)
            s = mm_atomic_write(f, zeros, pad_to(b) - b, e);
        done += b;
        if (s == MM_OK && progress)
            progress(user, done, total);
    }
    free(buf);
    gguf_meta_free(&head);
    if (s == MM_OK)
        return mm_atomic_commit(f, e);
    if (f)
        mm_atomic_abort(f);
    return s;
}
