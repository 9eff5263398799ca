#include "io/torch_pt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const pt_mmgpt_opaque_globals[] = {"mmengine.config.config.", NULL};
const char *const pt_mmgpt_opaque_paths[] = {"tuning_config", NULL};

#define MAX_NAME 1024
#define MAX_DEPTH 32

// The pickle of a pre-1.6 torch.save starts with PROTO 2 and LONG1 0x1950a86a20f9469cfc6c (its magic).
static const uint8_t k_legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

// Names from the file (members, keys, globals) may hold control bytes; an error stays one printable line.
static mm_status one_line(mm_err *e, mm_status st) {
    if (st != MM_OK && e)
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    return st;
}

void pt_close(mm_pt *pt) {
    if (!pt)
        return;
    for (int i = 0; i < pt->n_tensors; i++)
        free(pt->tensors[i].name);
    free(pt->tensors);
    free(pt->by_name);
    for (int i = 0; i < pt->n_storages; i++) {
        free(pt->storages[i].key);
        free(pt->storages[i].owned);
    }
    free(pt->storages);
    for (int i = 0; i < pt->n_meta; i++)
        free(pt->meta[i].name);
    free(pt->meta);
    pk_free(&pt->doc);
    free(pt->pkl_owned);
    free(pt->prefix);
    mm_zip_close(&pt->zip);
    memset(pt, 0, sizeof *pt);
}

// Flattening state: the walk over the value graph, with a visit budget because memo references can
// make a small pickle a DAG with exponentially many paths.
typedef struct {
    mm_pt *pt;
    const mm_pt_options *opt;
    const char *label;
    long budget;
    int tensor_cap, meta_cap;
    const mm_pk **tensor_nodes; // the MM_PK_TENSOR node of each tensor, parallel to pt->tensors
    mm_err *e;
} flattener;

static int path_allows_opaque(const mm_pt_options *opt, const char *path) {
    if (!opt || !opt->opaque_paths)
        return 1;
    for (const char *const *p = opt->opaque_paths; *p; p++) {
        size_t n = strlen(*p);
        if (strncmp(path, *p, n) == 0 && (path[n] == 0 || path[n] == '.'))
            return 1;
    }
    return 0;
}

static mm_status add_tensor(flattener *f, const char *name, const mm_pk *v) {
    mm_pt *pt = f->pt;
    if (pt->n_tensors == f->tensor_cap) {
        int nc = f->tensor_cap ? 2 * f->tensor_cap : 64;
        mm_pt_tensor *nt = realloc(pt->tensors, (size_t)nc * sizeof *nt);
        if (!nt)
            return mm_errf(f->e, MM_ERR_NOMEM, "out of memory");
        pt->tensors = nt;
        const mm_pk **nn = realloc(f->tensor_nodes, (size_t)nc * sizeof *nn);
        if (!nn)
            return mm_errf(f->e, MM_ERR_NOMEM, "out of memory");
        f->tensor_nodes = nn;
        f->tensor_cap = nc;
    }
    mm_pt_tensor *t = &pt->tensors[pt->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return mm_errf(f->e, MM_ERR_NOMEM, "out of memory");
    f->tensor_nodes[pt->n_tensors++] = v;
    t->dtype = v->tensor.dtype;
    t->ndim = v->tensor.ndim;
    memcpy(t->shape, v->tensor.shape, sizeof t->shape);
    memcpy(t->stride, v->tensor.stride, sizeof t->stride);
    t->offset = v->tensor.offset;
    t->requires_grad = v->tensor.requires_grad;
    t->is_param = v->tensor.is_param;
    t->storage = -1;
    return MM_OK;
}

static mm_status add_meta(flattener *f, const char *name, const mm_pk *v) {
    mm_pt *pt = f->pt;
    if (pt->n_meta == f->meta_cap) {
        int nc = f->meta_cap ? 2 * f->meta_cap : 16;
        mm_pt_meta *nm = realloc(pt->meta, (size_t)nc * sizeof *nm);
        if (!nm)
            return mm_errf(f->e, MM_ERR_NOMEM, "out of memory");
        pt->meta = nm;
        f->meta_cap = nc;
    }
    if (!(pt->meta[pt->n_meta].name = strdup(name)))
        return mm_errf(f->e, MM_ERR_NOMEM, "out of memory");
    pt->meta[pt->n_meta++].value = v;
    return MM_OK;
}

// Appends component c to the name in buf (of current length n); returns the new length or -1 if too long.
static int join(char *buf, int n, const char *c, size_t clen) {
    size_t need = (size_t)n + (n ? 1 : 0) + clen;
    if (need >= MAX_NAME)
        return -1;
    if (n)
        buf[n++] = '.';
    memcpy(buf + n, c, clen);
    buf[need] = 0;
    return (int)need;
}

static mm_status walk(flattener *f, const mm_pk *v, char *name, int nlen, int depth);

static mm_status walk_child(flattener *f, const mm_pk *key, const mm_pk *child, char *name, int nlen, int depth) {
    char num[32];
    const char *c;
    size_t clen;
    if (key->kind == MM_PK_STR) {
        if (strlen(key->str.s) != key->str.len)
            return mm_errf(f->e, MM_ERR_FORMAT, "%s: a dict key under '%s' contains a NUL byte", f->label, name);
        c = key->str.s;
        clen = key->str.len;
    } else if (key->kind == MM_PK_INT) {
        clen = (size_t)snprintf(num, sizeof num, "%" PRId64, key->i);
        c = num;
    } else {
        // Keys of other kinds (tuples, ...) cannot name a tensor; such entries carry no weights we read.
        return MM_OK;
    }
    int n2 = join(name, nlen, c, clen);
    if (n2 < 0)
        return mm_errf(f->e, MM_ERR_FORMAT, "%s: tensor name longer than %d bytes under '%.64s'", f->label,
                       MAX_NAME, name);
    mm_status st = MM_OK;
    if (depth == 0 && child->kind != MM_PK_TENSOR && child->kind != MM_PK_DICT && child->kind != MM_PK_LIST &&
        child->kind != MM_PK_TUPLE)
        st = add_meta(f, name, child);
    if (st == MM_OK)
        st = walk(f, child, name, n2, depth + 1);
    name[nlen] = 0;
    return st;
}

static mm_status walk(flattener *f, const mm_pk *v, char *name, int nlen, int depth) {
    if (--f->budget < 0)
        return mm_errf(f->e, MM_ERR_FORMAT, "%s: pickle value graph is too large to flatten (shared or cyclic "
                       "references)", f->label);
    if (depth > MAX_DEPTH)
        return mm_errf(f->e, MM_ERR_FORMAT, "%s: nesting deeper than %d levels at '%.64s' (cyclic?)", f->label,
                       MAX_DEPTH, name);
    switch (v->kind) {
    case MM_PK_TENSOR:
        return add_tensor(f, name, v);
    case MM_PK_DICT:
        for (size_t i = 0; i < v->dict.keys.n; i++)
            MM_TRY(walk_child(f, v->dict.keys.items[i], v->dict.vals.items[i], name, nlen, depth));
        return MM_OK;
    case MM_PK_LIST:
    case MM_PK_TUPLE:
        for (size_t i = 0; i < v->seq.n; i++) {
            mm_pk idx = {.kind = MM_PK_INT, .i = (int64_t)i};
            MM_TRY(walk_child(f, &idx, v->seq.items[i], name, nlen, depth));
        }
        return MM_OK;
    case MM_PK_OBJECT:
        if (!path_allows_opaque(f->opt, name))
            return mm_errf(f->e, MM_ERR_UNSUPPORTED, "%s: refusing to load: opaque object '%s' at '%s' (opaque "
                           "objects are allowed only where the caller expects metadata, e.g. tuning_config)",
                           f->label, v->object.cls, name[0] ? name : "<root>");
        return MM_OK;
    default:
        return MM_OK;
    }
}

static int cmp_storage(const void *a, const void *b) {
    return strcmp(((const mm_pt_storage *)a)->key, ((const mm_pt_storage *)b)->key);
}

static int cmp_by_name(const void *a, const void *b, void *ctx) {
    const mm_pt *pt = ctx;
    return strcmp(pt->tensors[*(const int32_t *)a].name, pt->tensors[*(const int32_t *)b].name);
}

static int find_storage(const mm_pt *pt, const char *key) {
    int lo = 0, hi = pt->n_storages - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(pt->storages[mid].key, key);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

// Resolves each distinct storage key to its data member and checks every tensor lies inside its storage.
static mm_status bind_storages(flattener *f) {
    mm_pt *pt = f->pt;
    if (pt->n_tensors == 0)
        return MM_OK;
    pt->storages = mm_calloc(f->e, (size_t)pt->n_tensors * sizeof *pt->storages);
    if (!pt->storages)
        return MM_ERR_NOMEM;
    for (int i = 0; i < pt->n_tensors; i++) {
        const char *key = f->tensor_nodes[i]->tensor.storage->storage.key;
        if (!(pt->storages[pt->n_storages].key = strdup(key)))
            return mm_errf(f->e, MM_ERR_NOMEM, "out of memory");
        pt->n_storages++;
    }
    qsort(pt->storages, (size_t)pt->n_storages, sizeof *pt->storages, cmp_storage);
    int w = 0;
    for (int i = 0; i < pt->n_storages; i++) {
        if (w > 0 && strcmp(pt->storages[w - 1].key, pt->storages[i].key) == 0) {
            free(pt->storages[i].key);
            continue;
        }
        pt->storages[w++] = pt->storages[i];
    }
    pt->n_storages = w;
    char member[MAX_NAME + 64];
    for (int i = 0; i < pt->n_storages; i++) {
        mm_pt_storage *s = &pt->storages[i];
        snprintf(member, sizeof member, "%sdata/%s", pt->prefix, s->key);
        const mm_zip_entry *en = mm_zip_find(&pt->zip, member);
        if (!en)
            return mm_errf(f->e, MM_ERR_FORMAT, "%s: storage member '%s' named by the pickle is missing from the "
                           "archive", f->label, member);
        MM_TRY(mm_zip_read(&pt->zip, en, f->opt && f->opt->verify_crc, &s->data, &s->owned, f->e));
        s->nbytes = (size_t)en->size;
    }
    for (int i = 0; i < pt->n_tensors; i++) {
        mm_pt_tensor *t = &pt->tensors[i];
        const mm_pk *sn = f->tensor_nodes[i]->tensor.storage;
        t->storage = find_storage(pt, sn->storage.key);
        const mm_pt_storage *s = &pt->storages[t->storage];
        size_t es = mm_dtype_size(t->dtype);
        int64_t need_storage;
        if (__builtin_mul_overflow(sn->storage.numel, sn->storage.untyped ? 1 : (int64_t)mm_dtype_size(sn->storage.dtype),
                                   &need_storage) ||
            (uint64_t)need_storage > s->nbytes)
            return mm_errf(f->e, MM_ERR_FORMAT, "%s: storage '%s' holds %zu bytes but the pickle records %" PRId64
                           " elements of %s", f->label, s->key, s->nbytes, sn->storage.numel,
                           mm_dtype_name(sn->storage.dtype));
        // numel and the last element addressed, with overflow checks: never trust sizes.
        int64_t numel = 1, last = t->offset, expect = 1;
        int contiguous = 1, bad = 0;
        for (int d = t->ndim - 1; d >= 0; d--) {
            bad |= __builtin_mul_overflow(numel, t->shape[d], &numel);
            if (t->shape[d] != 1 && t->stride[d] != expect)
                contiguous = 0;
            if (t->shape[d] > 1) {
                int64_t span;
                bad |= __builtin_mul_overflow(t->shape[d] - 1, t->stride[d], &span);
                bad |= __builtin_add_overflow(last, span, &last);
            }
            bad |= __builtin_mul_overflow(expect, t->shape[d] ? t->shape[d] : 1, &expect);
        }
        int64_t end_bytes = 0;
        if (!bad && numel > 0) {
            bad |= __builtin_add_overflow(last, 1, &end_bytes);
            bad |= __builtin_mul_overflow(end_bytes, (int64_t)es, &end_bytes);
        }
        if (!bad && numel > 0 && (uint64_t)numel > SIZE_MAX / es)
            bad = 1;
        if (bad || (numel > 0 && (uint64_t)end_bytes > s->nbytes))
            return mm_errf(f->e, MM_ERR_FORMAT, "%s: tensor '%s' (offset %" PRId64 ", %d dims) reaches past its "
                           "%zu-byte storage '%s'", f->label, t->name, t->offset, t->ndim, s->nbytes, s->key);
        t->numel = numel;
        t->contiguous = contiguous;
    }
    return MM_OK;
}

static mm_status check_byteorder(mm_pt *pt, const char *label, mm_err *e) {
    char member[MAX_NAME];
    snprintf(member, sizeof member, "%sbyteorder", pt->prefix);
    const mm_zip_entry *en = mm_zip_find(&pt->zip, member);
    if (!en)
        return MM_OK; // older torch wrote no byteorder record and was little-endian in practice
    const uint8_t *d = NULL;
    uint8_t *owned = NULL;
    MM_TRY(mm_zip_read(&pt->zip, en, 1, &d, &owned, e));
    int little = en->size == 6 && memcmp(d, "little", 6) == 0;
    free(owned);
    if (!little)
        return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: checkpoint was written on a big-endian machine (byteorder "
                       "record); only little-endian files are read", label);
    return MM_OK;
}

// Finds "<top>/data.pkl": exactly one top-level folder holds it (its name varies with how it was saved).
static mm_status find_pickle(mm_pt *pt, const char *label, const mm_zip_entry **out, mm_err *e) {
    const mm_zip_entry *found = NULL;
    for (int i = 0; i < pt->zip.n; i++) {
        const char *n = pt->zip.entries[i].name, *slash = strchr(n, '/');
        int match = slash ? strcmp(slash + 1, "data.pkl") == 0 : strcmp(n, "data.pkl") == 0;
        if (!match)
            continue;
        if (found)
            return mm_errf(e, MM_ERR_FORMAT, "%s: archive holds two pickles ('%s' and '%s')", label, found->name, n);
        found = &pt->zip.entries[i];
    }
    if (!found)
        return mm_errf(e, MM_ERR_FORMAT, "%s: zip archive has no <folder>/data.pkl; not a torch.save checkpoint",
                       label);
    size_t plen = strlen(found->name) - strlen("data.pkl");
    pt->prefix = strndup(found->name, plen);
    if (!pt->prefix)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory");
    *out = found;
    return MM_OK;
}

static mm_status open_archive(mm_pt *pt, const char *label, const mm_pt_options *opt, mm_err *e) {
    const mm_zip_entry *pk = NULL;
    MM_TRY(find_pickle(pt, label, &pk, e));
    MM_TRY(check_byteorder(pt, label, e));
    const uint8_t *pkl = NULL;
    MM_TRY(mm_zip_read(&pt->zip, pk, 1, &pkl, &pt->pkl_owned, e));
    mm_pk_options po = {.opaque_globals = opt ? opt->opaque_globals : NULL};
    mm_status st = pk_load(&pt->doc, pkl, (size_t)pk->size, &po, e);
    if (st != MM_OK) {
        mm_err_prefix(e, "%s: %s", label, pk->name);
        return st;
    }

    flattener f = {.pt = pt, .opt = opt, .label = label, .e = e};
    f.budget = 2 * (long)pt->doc.n_nodes + 64;
    char name[MAX_NAME];
    name[0] = 0;
    st = walk(&f, pt->doc.root, name, 0, 0);
    if (st == MM_OK)
        st = bind_storages(&f);
    free(f.tensor_nodes);
    MM_TRY(st);
    if (pt->n_tensors) {
        pt->by_name = mm_alloc(e, (size_t)pt->n_tensors * sizeof *pt->by_name);
        if (!pt->by_name)
            return MM_ERR_NOMEM;
        for (int i = 0; i < pt->n_tensors; i++)
            pt->by_name[i] = i;
        qsort_r(pt->by_name, (size_t)pt->n_tensors, sizeof *pt->by_name, cmp_by_name, pt);
        for (int i = 1; i < pt->n_tensors; i++)
            if (strcmp(pt->tensors[pt->by_name[i - 1]].name, pt->tensors[pt->by_name[i]].name) == 0)
                return mm_errf(e, MM_ERR_FORMAT, "%s: tensor name '%s' appears twice", label,
                               pt->tensors[pt->by_name[i]].name);
    }
    return MM_OK;
}

static mm_status sniff(const uint8_t *d, size_t len, const char *label, mm_err *e) {
    if (mm_zip_sniff(d, len))
        return MM_OK;
    if (len >= sizeof k_legacy_magic && memcmp(d, k_legacy_magic, sizeof k_legacy_magic) == 0)
        return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: legacy (pre-1.6, non-zip) torch.save file; convert it in Python "
                       "with a newer torch: torch.save(torch.load(f), f2)", label);
    if (len >= 262 && memcmp(d + 257, "ustar", 5) == 0)
        return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: legacy tar-format torch.save file; convert it in Python with a "
                       "newer torch: torch.save(torch.load(f), f2)", label);
    if (len >= 1 && d[0] == 0x80)
        return mm_errf(e, MM_ERR_UNSUPPORTED, "%s: a bare pickle, not a torch.save zip checkpoint; if it is a "
                       "legacy torch file, convert it with torch.save(torch.load(f), f2)", label);
    return mm_errf(e, MM_ERR_FORMAT, "%s: not a PyTorch checkpoint (no zip signature)", label);
}

mm_status pt_open(mm_pt *pt, const char *path, const mm_pt_options *opt, mm_err *e) {
    memset(pt, 0, sizeof *pt);
    mm_map m;
    MM_TRY(mm_map_open(&m, path, e));
    mm_status st = sniff(m.data, m.len, path, e);
    if (st != MM_OK) {
        mm_map_close(&m);
        return st;
    }
    st = mm_zip_open_mem(&pt->zip, m.data, m.len, path, e);
    if (st != MM_OK) {
        mm_map_close(&m);
        return st;
    }
    pt->zip.owns_map = 1; // the archive now owns the mapping
    st = open_archive(pt, path, opt, e);
    if (st != MM_OK)
        pt_close(pt);
    return one_line(e, st);
}

mm_status pt_open_mem(mm_pt *pt, const uint8_t *data, size_t len, const char *label, const mm_pt_options *opt,
                      mm_err *e) {
    memset(pt, 0, sizeof *pt);
    if (!label)
        label = "<memory>";
    MM_TRY(sniff(data, len, label, e));
    MM_TRY(mm_zip_open_mem(&pt->zip, data, len, label, e));
    mm_status st = open_archive(pt, label, opt, e);
    if (st != MM_OK)
        pt_close(pt);
    return one_line(e, st);
}

const mm_pt_tensor *pt_find(const mm_pt *pt, const char *name) {
    int lo = 0, hi = pt->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const mm_pt_tensor *t = &pt->tensors[pt->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const mm_pk *pt_get(const mm_pt *pt, const char *key) { return pk_dict_get(pt->doc.root, key); }

const void *pt_tensor_data(const mm_pt *pt, const mm_pt_tensor *t) {
    return pt->storages[t->storage].data + (size_t)t->offset * mm_dtype_size(t->dtype);
}

// Calls fn(ctx, byte offset of the run in the storage, run length in elements, output index) for each
// maximal run of consecutive elements in row-major order.
typedef void (*run_fn)(void *ctx, size_t src_off, size_t n, size_t dst_index);
static void for_each_run(const mm_pt_tensor *t, run_fn fn, void *ctx) {
    size_t es = mm_dtype_size(t->dtype);
    if (t->numel == 0)
        return;
    if (t->contiguous) {
        fn(ctx, (size_t)t->offset * es, (size_t)t->numel, 0);
        return;
    }
    // Innermost dimension forms runs when its stride is 1; otherwise runs are single elements.
    int nd = t->ndim; // >= 1: a 0-dim tensor is always contiguous
    int inner_run = t->stride[nd - 1] == 1;
    size_t inner = inner_run ? (size_t)t->shape[nd - 1] : 1;
    int outer_dims = inner_run ? nd - 1 : nd;
    int64_t idx[MM_PT_MAX_DIMS] = {0};
    size_t out = 0;
    for (;;) {
        int64_t off = t->offset;
        for (int d = 0; d < outer_dims; d++)
            off += idx[d] * t->stride[d];
        fn(ctx, (size_t)off * es, inner, out);
        out += inner;
        int d = outer_dims - 1;
        while (d >= 0 && ++idx[d] == t->shape[d])
            idx[d--] = 0;
        if (d < 0)
            break;
    }
}

typedef struct {
    const uint8_t *src;
    void *dst;
    size_t es;
    mm_dtype dt;
} run_ctx;

static void copy_run(void *ctx, size_t src_off, size_t n, size_t dst_index) {
    run_ctx *c = ctx;
    memcpy((uint8_t *)c->dst + dst_index * c->es, c->src + src_off, n * c->es);
}

mm_status pt_copy_contiguous(const mm_pt *pt, const mm_pt_tensor *t, void *out, mm_err *e) {
    (void)e;
    run_ctx c = {.src = pt->storages[t->storage].data, .dst = out, .es = mm_dtype_size(t->dtype), .dt = t->dtype};
    for_each_run(t, copy_run, &c);
    return MM_OK;
}

static float elem_f32(const uint8_t *p, mm_dtype dt) {
    union {
        uint8_t b[8];
        int64_t i64;
        uint64_t u64;
        int32_t i32;
        uint32_t u32;
        int16_t i16;
        uint16_t u16;
        int8_t i8;
    } v;
    memcpy(v.b, p, mm_dtype_size(dt));
    switch (dt) {
    case MM_I64: return (float)v.i64;
    case MM_I32: return (float)v.i32;
    case MM_I16: return (float)v.i16;
    case MM_I8: return (float)v.i8;
    case MM_U8: return (float)v.b[0];
    case MM_BOOL: return v.b[0] ? 1.0f : 0.0f;
    case MM_U16: return (float)v.u16;
    case MM_U32: return (float)v.u32;
    case MM_U64: return (float)v.u64;
    default: return 0.0f;
    }
}

static void f32_run(void *ctx, size_t src_off, size_t n, size_t dst_index) {
    run_ctx *c = ctx;
    float *dst = (float *)c->dst + dst_index;
    if (mm_convert_to_f32(dst, c->src + src_off, c->dt, n) == 0)
        return;
    for (size_t i = 0; i < n; i++)
        dst[i] = elem_f32(c->src + src_off + i * c->es, c->dt);
}

mm_status pt_to_f32(const mm_pt *pt, const mm_pt_tensor *t, float *out, mm_err *e) {
    switch (t->dtype) {
    case MM_F32: case MM_F16: case MM_BF16: case MM_F64: case MM_I64: case MM_I32: case MM_I16: case MM_I8:
    case MM_U8: case MM_BOOL: case MM_U16: case MM_U32: case MM_U64:
        break;
    default:
        return one_line(e, mm_errf(e, MM_ERR_UNSUPPORTED, "tensor '%s': dtype %s cannot be converted to f32",
                                   t->name, mm_dtype_name(t->dtype)));
    }
    run_ctx c = {.src = pt->storages[t->storage].data, .dst = out, .es = mm_dtype_size(t->dtype), .dt = t->dtype};
    for_each_run(t, f32_run, &c);
    return MM_OK;
}
