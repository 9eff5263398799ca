#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Allowed globals. Everything the unpickler can "call" is one of these, applied by our own code.
enum {
    G_ORDERED_DICT = 1, // also collections.Counter and builtins.dict: an empty dict
    G_REBUILD_TENSOR,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_TENSOR_V3,
    G_REBUILD_PARAM,
    G_REBUILD_PARAM_STATE,
    G_REBUILD_FROM_TYPE_V2,
    G_PARAMETER, // torch.nn.parameter.Parameter (NEWOBJ, or new_type of _rebuild_from_type_v2)
    G_TENSOR,    // torch.Tensor (only as new_type)
    G_STORAGE,   // torch.*Storage classes (only inside persistent ids)
    G_DTYPE,     // torch.float32 ... (only as an argument)
    G_SIZE,      // torch.Size(tuple) -> tuple
    G_DEVICE,    // torch.device(str[, index]) -> str
    G_SET,       // builtins.set / frozenset(list) -> set
    G_BYTEARRAY, // builtins.bytearray / bytes(bytes or nothing) -> bytes
    G_ENCODE,    // _codecs.encode(str, "latin1") -> bytes (how protocol 2 stores bytes)
};

typedef struct {
    const char *name;
    int id;
    mm_dtype dtype;
} global_def;

static const global_def k_globals[] = {
    {"collections.OrderedDict", G_ORDERED_DICT, 0}, {"collections.Counter", G_ORDERED_DICT, 0},
    {"builtins.dict", G_ORDERED_DICT, 0}, {"torch._utils._rebuild_tensor", G_REBUILD_TENSOR, 0},
    {"torch._utils._rebuild_tensor_v2", G_REBUILD_TENSOR_V2, 0},
    {"torch._utils._rebuild_tensor_v3", G_REBUILD_TENSOR_V3, 0},
    {"torch._utils._rebuild_parameter", G_REBUILD_PARAM, 0},
    {"torch._utils._rebuild_parameter_with_state", G_REBUILD_PARAM_STATE, 0},
    {"torch._tensor._rebuild_from_type_v2", G_REBUILD_FROM_TYPE_V2, 0},
    {"torch.nn.parameter.Parameter", G_PARAMETER, 0}, {"torch.Tensor", G_TENSOR, 0},
    {"torch._tensor.Tensor", G_TENSOR, 0}, {"torch.Size", G_SIZE, 0}, {"torch.device", G_DEVICE, 0},
    {"builtins.set", G_SET, 0}, {"builtins.frozenset", G_SET, 0}, {"builtins.bytearray", G_BYTEARRAY, 0},
    {"builtins.bytes", G_BYTEARRAY, 0}, {"_codecs.encode", G_ENCODE, 0}, {"torch.DoubleStorage", G_STORAGE, MM_F64},
    {"torch.FloatStorage", G_STORAGE, MM_F32}, {"torch.HalfStorage", G_STORAGE, MM_F16},
    {"torch.BFloat16Storage", G_STORAGE, MM_BF16}, {"torch.LongStorage", G_STORAGE, MM_I64},
    {"torch.IntStorage", G_STORAGE, MM_I32}, {"torch.ShortStorage", G_STORAGE, MM_I16},
    {"torch.CharStorage", G_STORAGE, MM_I8}, {"torch.ByteStorage", G_STORAGE, MM_U8},
    {"torch.BoolStorage", G_STORAGE, MM_BOOL}, {"torch.UntypedStorage", G_STORAGE, MM_U8},
    {"torch.storage.UntypedStorage", G_STORAGE, MM_U8}, {"torch.storage._UntypedStorage", G_STORAGE, MM_U8},
    {"torch.float32", G_DTYPE, MM_F32}, {"torch.float", G_DTYPE, MM_F32}, {"torch.float16", G_DTYPE, MM_F16},
    {"torch.half", G_DTYPE, MM_F16}, {"torch.bfloat16", G_DTYPE, MM_BF16}, {"torch.float64", G_DTYPE, MM_F64},
    {"torch.double", G_DTYPE, MM_F64}, {"torch.int64", G_DTYPE, MM_I64}, {"torch.long", G_DTYPE, MM_I64},
    {"torch.int32", G_DTYPE, MM_I32}, {"torch.int", G_DTYPE, MM_I32}, {"torch.int16", G_DTYPE, MM_I16},
    {"torch.short", G_DTYPE, MM_I16}, {"torch.int8", G_DTYPE, MM_I8}, {"torch.uint8", G_DTYPE, MM_U8},
    {"torch.uint16", G_DTYPE, MM_U16}, {"torch.uint32", G_DTYPE, MM_U32}, {"torch.uint64", G_DTYPE, MM_U64},
    {"torch.bool", G_DTYPE, MM_BOOL},
};

// The unpickler's working state; nodes belong to doc, the rest is freed when pk_load returns.
typedef struct {
    mm_pk_doc *doc;
    const mm_pk_options *opt;
    const uint8_t *p;
    size_t len, pos, op; // op: offset of the opcode being executed (for messages)
    mm_pk **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, marks_cap;
    mm_pk **memo;
    size_t memo_cap, memo_count;
    mm_err *e;
} unpickler;

// Names from the file (members, keys, globals) may hold control bytes; an error stays one printable line.
static mm_status one_line(mm_err *e, mm_status st) {
    if (st != MM_OK && e)
        for (char *c = e->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    return st;
}

const char *pk_kind_name(mm_pk_kind k) {
    static const char *names[] = {"none", "bool",   "int",     "float",  "str",    "bytes",  "tuple",
                                  "list", "set",    "dict",    "global", "storage", "tensor", "object"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static mm_status fail(unpickler *u, const char *what) {
    return mm_errf(u->e, MM_ERR_FORMAT, "pickle offset %zu: %s", u->op, what);
}

// Grows *arr (elements of size elem) to hold at least need elements.
static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem)
            return -1;
        nc *= 2;
    }
    void *na = realloc(*arr, nc * elem);
    if (!na)
        return -1;
    *arr = na;
    *cap = nc;
    return 0;
}

static mm_pk *new_node(unpickler *u, mm_pk_kind kind) {
    mm_pk_doc *d = u->doc;
    if (grow((void **)&d->nodes, &d->cap_nodes, d->n_nodes + 1, sizeof *d->nodes)) {
        mm_errf(u->e, MM_ERR_NOMEM, "pickle offset %zu: out of memory", u->op);
        return NULL;
    }
    mm_pk *v = calloc(1, sizeof *v);
    if (!v) {
        mm_errf(u->e, MM_ERR_NOMEM, "pickle offset %zu: out of memory", u->op);
        return NULL;
    }
    v->kind = kind;
    d->nodes[d->n_nodes++] = v;
    return v;
}

static mm_status seq_push(unpickler *u, mm_pk_seq *s, mm_pk *v) {
    if (grow((void **)&s->items, &s->cap, s->n + 1, sizeof *s->items))
        return mm_errf(u->e, MM_ERR_NOMEM, "pickle offset %zu: out of memory", u->op);
    s->items[s->n++] = v;
    return MM_OK;
}

static mm_status push(unpickler *u, mm_pk *v) {
    if (!v)
        return u->e ? u->e->code : MM_ERR_NOMEM;
    if (grow((void **)&u->stack, &u->stack_cap, u->sp + 1, sizeof *u->stack))
        return mm_errf(u->e, MM_ERR_NOMEM, "pickle offset %zu: out of memory", u->op);
    u->stack[u->sp++] = v;
    return MM_OK;
}

// The lowest stack index usable by the current opcode (above the innermost MARK).
static size_t floor_sp(const unpickler *u) { return u->n_marks ? u->marks[u->n_marks - 1] : 0; }

static mm_status pop(unpickler *u, mm_pk **v) {
    if (u->sp <= floor_sp(u))
        return fail(u, "stack underflow (malformed pickle)");
    *v = u->stack[--u->sp];
    return MM_OK;
}

static mm_status top(unpickler *u, mm_pk **v) {
    if (u->sp <= floor_sp(u))
        return fail(u, "stack underflow (malformed pickle)");
    *v = u->stack[u->sp - 1];
    return MM_OK;
}

// Pops the items above the innermost MARK: they are u->stack[*start .. u->sp) until the next push.
static mm_status pop_mark(unpickler *u, size_t *start) {
    if (!u->n_marks)
        return fail(u, "opcode needs a MARK but none is open");
    *start = u->marks[--u->n_marks];
    return MM_OK;
}

static mm_status take(unpickler *u, size_t n, const uint8_t **out) {
    if (n > u->len - u->pos)
        return mm_errf(u->e, MM_ERR_FORMAT, "pickle offset %zu: opcode needs %zu bytes but only %zu remain "
                       "(truncated or oversized length)", u->op, n, u->len - u->pos);
    *out = u->p + u->pos;
    u->pos += n;
    return MM_OK;
}

static uint64_t le(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static mm_pk *new_int(unpickler *u, mm_pk_kind kind, int64_t i) {
    mm_pk *v = new_node(u, kind);
    if (v)
        v->i = i;
    return v;
}

static mm_pk *new_str(unpickler *u, mm_pk_kind kind, const uint8_t *s, size_t n) {
    mm_pk *v = new_node(u, kind);
    if (!v)
        return NULL;
    v->str.s = malloc(n + 1);
    if (!v->str.s) {
        mm_errf(u->e, MM_ERR_NOMEM, "pickle offset %zu: out of memory for a %zu-byte string", u->op, n);
        return NULL;
    }
    if (n)
        memcpy(v->str.s, s, n);
    v->str.s[n] = 0;
    v->str.len = n;
    return v;
}

// Reads a length-prefixed string/bytes operand (n_len bytes of little-endian length).
static mm_status op_string(unpickler *u, int n_len, mm_pk_kind kind) {
    const uint8_t *b = NULL, *s = NULL;
    MM_TRY(take(u, (size_t)n_len, &b));
    uint64_t n = le(b, n_len);
    if (n > u->len - u->pos)
        return mm_errf(u->e, MM_ERR_FORMAT, "pickle offset %zu: string length %llu exceeds the %zu bytes left "
                       "(truncated or oversized length)", u->op, (unsigned long long)n, u->len - u->pos);
    MM_TRY(take(u, (size_t)n, &s));
    return push(u, new_str(u, kind, s, (size_t)n));
}

static mm_status op_long(unpickler *u, int n_len) {
    const uint8_t *b = NULL, *d = NULL;
    MM_TRY(take(u, (size_t)n_len, &b));
    uint64_t n = le(b, n_len);
    if (n > 8)
        return mm_errf(u->e, MM_ERR_UNSUPPORTED, "pickle offset %zu: integer of %llu bytes does not fit 64 bits",
                       u->op, (unsigned long long)n);
    MM_TRY(take(u, (size_t)n, &d));
    uint64_t v = le(d, (int)n);
    if (n > 0 && n < 8 && (d[n - 1] & 0x80))
        v |= ~(uint64_t)0 << (8 * n); // sign-extend the two's complement value
    return push(u, new_int(u, MM_PK_INT, (int64_t)v));
}

static int name_has_prefix(const char *name, const char *const *prefixes) {
    for (; prefixes && *prefixes; prefixes++)
        if (**prefixes && strncmp(name, *prefixes, strlen(*prefixes)) == 0)
            return 1;
    return 0;
}

// Resolves module.name against the allow-list (or the caller's opaque prefixes) and pushes the result.
static mm_status push_global(unpickler *u, const char *module, size_t mlen, const char *name, size_t nlen) {
    // Protocol-2 pickles written by Python 3 spell builtins the Python 2 way.
    if (mlen == 11 && memcmp(module, "__builtin__", 11) == 0) {
        module = "builtins";
        mlen = 8;
    }
    char full[512];
    if (mlen + nlen + 2 > sizeof full)
        return fail(u, "global name too long");
    memcpy(full, module, mlen);
    full[mlen] = '.';
    memcpy(full + mlen + 1, name, nlen);
    full[mlen + 1 + nlen] = 0;
    if (strlen(full) != mlen + 1 + nlen)
        return fail(u, "global name contains a NUL byte");
    for (size_t i = 0; i < sizeof k_globals / sizeof k_globals[0]; i++) {
        if (strcmp(full, k_globals[i].name) == 0) {
            mm_pk *v = new_node(u, MM_PK_GLOBAL);
            if (!v)
                return u->e->code;
            v->global.id = k_globals[i].id;
            v->global.dtype = k_globals[i].dtype;
            v->global.untyped = strstr(full, "UntypedStorage") != NULL;
            v->global.name = strdup(full);
            if (!v->global.name)
                return mm_errf(u->e, MM_ERR_NOMEM, "out of memory");
            return push(u, v);
        }
    }
    // GPU storages of older torch name torch.cuda.FloatStorage etc.; the data is the same.
    if (strncmp(full, "torch.cuda.", 11) == 0) {
        char cpu[512];
        snprintf(cpu, sizeof cpu, "torch.%s", full + 11);
        for (size_t i = 0; i < sizeof k_globals / sizeof k_globals[0]; i++)
            if (k_globals[i].id == G_STORAGE && strcmp(cpu, k_globals[i].name) == 0)
                return push_global(u, "torch", 5, full + 11, strlen(full + 11));
    }
    if (u->opt && name_has_prefix(full, u->opt->opaque_globals)) {
        mm_pk *v = new_node(u, MM_PK_OBJECT);
        if (!v)
            return u->e->code;
        v->object.cls = strdup(full);
        if (!v->object.cls)
            return mm_errf(u->e, MM_ERR_NOMEM, "out of memory");
        return push(u, v);
    }
    return mm_errf(u->e, MM_ERR_UNSUPPORTED,
                   "refusing to load: pickle names global '%s' at offset %zu; only state dicts are read (tensors, "
                   "storages, dicts, lists, numbers, strings) and no caller option allows this class as opaque "
                   "metadata", full, u->op);
}

static mm_status op_global(unpickler *u) {
    // Two newline-terminated lines: module, then name.
    const char *line[2];
    size_t n[2];
    for (int k = 0; k < 2; k++) {
        const uint8_t *s = u->p + u->pos;
        size_t left = u->len - u->pos, max = left < 400 ? left : 400;
        const uint8_t *nl = memchr(s, '\n', max);
        if (!nl)
            return fail(u, "GLOBAL operand is not a newline-terminated name (truncated?)");
        line[k] = (const char *)s;
        n[k] = (size_t)(nl - s);
        u->pos += n[k] + 1;
    }
    return push_global(u, line[0], n[0], line[1], n[1]);
}

static mm_status op_stack_global(unpickler *u) {
    mm_pk *name = NULL, *module = NULL;
    MM_TRY(pop(u, &name));
    MM_TRY(pop(u, &module));
    if (name->kind != MM_PK_STR || module->kind != MM_PK_STR)
        return fail(u, "STACK_GLOBAL needs two strings");
    return push_global(u, module->str.s, module->str.len, name->str.s, name->str.len);
}

static int is_int(const mm_pk *v) { return v->kind == MM_PK_INT || v->kind == MM_PK_BOOL; }

// Reads a tuple (or list) of non-negative ints into out[]; returns its length or -1.
static int int_tuple(const mm_pk *v, int64_t *out) {
    if ((v->kind != MM_PK_TUPLE && v->kind != MM_PK_LIST) || v->seq.n > MM_PK_MAX_DIMS)
        return -1;
    for (size_t i = 0; i < v->seq.n; i++) {
        if (!is_int(v->seq.items[i]) || v->seq.items[i]->i < 0)
            return -1;
        out[i] = v->seq.items[i]->i;
    }
    return (int)v->seq.n;
}

static mm_pk *copy_tensor(unpickler *u, const mm_pk *t) {
    mm_pk *v = new_node(u, MM_PK_TENSOR);
    if (v)
        v->tensor = t->tensor;
    return v;
}

// _rebuild_tensor{,_v2,_v3}(storage, offset, size, stride[, requires_grad, hooks[, dtype][, metadata]])
static mm_status rebuild_tensor(unpickler *u, int id, const mm_pk *args, mm_pk **out) {
    size_t n = args->seq.n, min = id == G_REBUILD_TENSOR ? 4 : id == G_REBUILD_TENSOR_V2 ? 6 : 7;
    if (n < min || n > min + 1)
        return fail(u, "tensor rebuild call has the wrong number of arguments");
    mm_pk *const *a = args->seq.items;
    if (a[0]->kind != MM_PK_STORAGE)
        return fail(u, "tensor rebuild call does not name a storage (persistent id)");
    if (!is_int(a[1]) || a[1]->i < 0)
        return fail(u, "tensor storage offset is not a non-negative int");
    mm_pk *t = new_node(u, MM_PK_TENSOR);
    if (!t)
        return u->e->code;
    t->tensor.storage = a[0];
    t->tensor.offset = a[1]->i;
    t->tensor.dtype = a[0]->storage.dtype;
    int nd = int_tuple(a[2], t->tensor.shape), ns = int_tuple(a[3], t->tensor.stride);
    if (nd < 0 || ns != nd)
        return fail(u, "tensor size/stride are not matching tuples of at most 8 non-negative ints");
    t->tensor.ndim = nd;
    if (n >= 5)
        t->tensor.requires_grad = a[4]->kind == MM_PK_BOOL && a[4]->i;
    if (id == G_REBUILD_TENSOR_V3) {
        if (a[6]->kind != MM_PK_GLOBAL || a[6]->global.id != G_DTYPE)
            return fail(u, "_rebuild_tensor_v3 dtype argument is not a torch dtype");
        if (!a[0]->storage.untyped && a[0]->storage.dtype != a[6]->global.dtype)
            return fail(u, "_rebuild_tensor_v3 dtype differs from its typed storage");
        t->tensor.dtype = a[6]->global.dtype;
    } else if (a[0]->storage.untyped) {
        t->tensor.dtype = MM_U8;
    }
    *out = t;
    return MM_OK;
}

// Applies an allowed global to its argument tuple, as the named Python function would, without calling it.
static mm_status apply(unpickler *u, const mm_pk *g, const mm_pk *args, int depth, mm_pk **out) {
    if (args->kind != MM_PK_TUPLE)
        return fail(u, "REDUCE arguments are not a tuple");
    size_t n = args->seq.n;
    mm_pk *const *a = args->seq.items;
    switch (g->global.id) {
    case G_ORDERED_DICT:
        if (n != 0)
            return fail(u, "dict constructor with arguments is not supported");
        *out = new_node(u, MM_PK_DICT);
        return *out ? MM_OK : u->e->code;
    case G_REBUILD_TENSOR:
    case G_REBUILD_TENSOR_V2:
    case G_REBUILD_TENSOR_V3:
        return rebuild_tensor(u, g->global.id, args, out);
    case G_REBUILD_PARAM:
    case G_REBUILD_PARAM_STATE:
        if (n < 3 || n > 4 || a[0]->kind != MM_PK_TENSOR)
            return fail(u, "_rebuild_parameter needs (tensor, requires_grad, hooks[, state])");
        if (!(*out = copy_tensor(u, a[0])))
            return u->e->code;
        (*out)->tensor.is_param = 1;
        (*out)->tensor.requires_grad = a[1]->kind == MM_PK_BOOL && a[1]->i;
        return MM_OK;
    case G_REBUILD_FROM_TYPE_V2: {
        // (func, new_type, args, state): func rebuilds the tensor, new_type is Tensor or Parameter.
        if (n != 4 || a[0]->kind != MM_PK_GLOBAL || a[1]->kind != MM_PK_GLOBAL || depth > 0)
            return fail(u, "_rebuild_from_type_v2 needs (rebuild function, tensor type, args, state)");
        if (a[1]->global.id != G_TENSOR && a[1]->global.id != G_PARAMETER)
            return fail(u, "_rebuild_from_type_v2 names a tensor subclass that is not allowed");
        MM_TRY(apply(u, a[0], a[2], depth + 1, out));
        if ((*out)->kind != MM_PK_TENSOR)
            return fail(u, "_rebuild_from_type_v2 function did not rebuild a tensor");
        if (a[1]->global.id == G_PARAMETER) {
            if (!(*out = copy_tensor(u, *out)))
                return u->e->code;
            (*out)->tensor.is_param = 1;
        }
        return MM_OK;
    }
    case G_SIZE:
        if (n != 1 || (a[0]->kind != MM_PK_TUPLE && a[0]->kind != MM_PK_LIST))
            return fail(u, "torch.Size needs one tuple");
        *out = a[0];
        return MM_OK;
    case G_DEVICE:
        if (n < 1 || n > 2 || a[0]->kind != MM_PK_STR)
            return fail(u, "torch.device needs a string");
        *out = a[0];
        return MM_OK;
    case G_SET: {
        if (n > 1 || (n == 1 && a[0]->kind != MM_PK_LIST && a[0]->kind != MM_PK_TUPLE))
            return fail(u, "set() needs a list");
        mm_pk *s = new_node(u, MM_PK_SET);
        if (!s)
            return u->e->code;
        for (size_t i = 0; n == 1 && i < a[0]->seq.n; i++)
            MM_TRY(seq_push(u, &s->seq, a[0]->seq.items[i]));
        *out = s;
        return MM_OK;
    }
    case G_BYTEARRAY:
        if (n == 0) {
            *out = new_str(u, MM_PK_BYTES, NULL, 0);
            return *out ? MM_OK : u->e->code;
        }
        if (n != 1 || a[0]->kind != MM_PK_BYTES)
            return fail(u, "bytearray() needs bytes");
        *out = a[0];
        return MM_OK;
    case G_ENCODE: {
        // encode(text, "latin1"): each code point below 256 becomes one byte.
        if (n != 2 || a[0]->kind != MM_PK_STR || a[1]->kind != MM_PK_STR ||
            (strcmp(a[1]->str.s, "latin1") != 0 && strcmp(a[1]->str.s, "latin-1") != 0))
            return fail(u, "_codecs.encode is only read as encode(str, 'latin1')");
        const uint8_t *s = (const uint8_t *)a[0]->str.s;
        size_t len = a[0]->str.len, k = 0;
        mm_pk *b = new_str(u, MM_PK_BYTES, s, len);
        if (!b)
            return u->e->code;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < 0x80)
                b->str.s[k++] = (char)s[i];
            else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < len && (s[i + 1] & 0xc0) == 0x80) {
                b->str.s[k++] = (char)(((s[i] & 0x1f) << 6) | (s[i + 1] & 0x3f));
                i++;
            } else
                return fail(u, "_codecs.encode text is not latin-1");
        }
        b->str.len = k;
        b->str.s[k] = 0;
        *out = b;
        return MM_OK;
    }
    default:
        return mm_errf(u->e, MM_ERR_UNSUPPORTED, "pickle offset %zu: refusing to call '%s' (allowed only as an "
                       "argument)", u->op, g->global.name);
    }
}

static mm_status op_reduce(unpickler *u) {
    mm_pk *args = NULL, *f = NULL, *r = NULL;
    MM_TRY(pop(u, &args));
    MM_TRY(pop(u, &f));
    if (f->kind == MM_PK_OBJECT && !f->object.called) {
        if (args->kind != MM_PK_TUPLE)
            return fail(u, "REDUCE arguments are not a tuple");
        if (!(r = new_node(u, MM_PK_OBJECT)))
            return u->e->code;
        r->object.cls = strdup(f->object.cls);
        if (!r->object.cls)
            return mm_errf(u->e, MM_ERR_NOMEM, "out of memory");
        r->object.args = args;
        r->object.called = 1;
        return push(u, r);
    }
    if (f->kind != MM_PK_GLOBAL)
        return mm_errf(u->e, MM_ERR_UNSUPPORTED, "pickle offset %zu: REDUCE on a %s value (only allowed globals "
                       "are applied)", u->op, pk_kind_name(f->kind));
    MM_TRY(apply(u, f, args, 0, &r));
    return push(u, r);
}

static mm_status op_newobj(unpickler *u, int ex) {
    mm_pk *cls = NULL, *args = NULL, *kwargs = NULL;
    if (ex)
        MM_TRY(pop(u, &kwargs));
    MM_TRY(pop(u, &args));
    MM_TRY(pop(u, &cls));
    if (args->kind != MM_PK_TUPLE || (kwargs && kwargs->kind != MM_PK_DICT))
        return fail(u, "NEWOBJ arguments are not a tuple");
    if (cls->kind == MM_PK_OBJECT && !cls->object.called) {
        mm_pk *r = new_node(u, MM_PK_OBJECT);
        if (!r)
            return u->e->code;
        r->object.cls = strdup(cls->object.cls);
        if (!r->object.cls)
            return mm_errf(u->e, MM_ERR_NOMEM, "out of memory");
        r->object.args = args;
        r->object.kwargs = kwargs;
        r->object.called = 1;
        return push(u, r);
    }
    if (cls->kind == MM_PK_GLOBAL && cls->global.id == G_PARAMETER && !kwargs && args->seq.n >= 1 &&
        args->seq.n <= 2 && args->seq.items[0]->kind == MM_PK_TENSOR) {
        mm_pk *t = copy_tensor(u, args->seq.items[0]);
        if (!t)
            return u->e->code;
        t->tensor.is_param = 1;
        t->tensor.requires_grad = args->seq.n < 2 || (is_int(args->seq.items[1]) && args->seq.items[1]->i);
        return push(u, t);
    }
    return mm_errf(u->e, MM_ERR_UNSUPPORTED, "pickle offset %zu: refusing to instantiate %s (only "
                   "torch.nn.Parameter(tensor) or caller-allowed opaque classes)", u->op,
                   cls->kind == MM_PK_GLOBAL ? cls->global.name : pk_kind_name(cls->kind));
}

static mm_status op_build(unpickler *u) {
    mm_pk *state = NULL, *inst = NULL;
    MM_TRY(pop(u, &state));
    MM_TRY(top(u, &inst));
    switch (inst->kind) {
    case MM_PK_DICT:   // OrderedDict attributes such as a state_dict's _metadata: not needed
    case MM_PK_TENSOR: // tensor/parameter attributes: not needed
        return MM_OK;
    case MM_PK_OBJECT:
        inst->object.state = state == inst ? NULL : state; // addict-style dicts give themselves as state
        return MM_OK;
    default:
        return mm_errf(u->e, MM_ERR_UNSUPPORTED, "pickle offset %zu: BUILD on a %s value is not allowed", u->op,
                       pk_kind_name(inst->kind));
    }
}

// The dict that SETITEM(S) fills: a dict, or the item store of an opaque object.
static mm_status setitem_target(unpickler *u, mm_pk *v, mm_pk **d) {
    if (v->kind == MM_PK_DICT) {
        *d = v;
        return MM_OK;
    }
    if (v->kind == MM_PK_OBJECT && v->object.called) {
        if (!v->object.items && !(v->object.items = new_node(u, MM_PK_DICT)))
            return u->e->code;
        *d = v->object.items;
        return MM_OK;
    }
    return mm_errf(u->e, MM_ERR_FORMAT, "pickle offset %zu: SETITEM on a %s value", u->op, pk_kind_name(v->kind));
}

static mm_status append_target(unpickler *u, mm_pk *v, int set_op, mm_pk **l) {
    if ((!set_op && v->kind == MM_PK_LIST) || (set_op && v->kind == MM_PK_SET)) {
        *l = v;
        return MM_OK;
    }
    if (v->kind == MM_PK_OBJECT && v->object.called) {
        if (!v->object.list && !(v->object.list = new_node(u, MM_PK_LIST)))
            return u->e->code;
        *l = v->object.list;
        return MM_OK;
    }
    return mm_errf(u->e, MM_ERR_FORMAT, "pickle offset %zu: %s on a %s value", u->op, set_op ? "ADDITEMS" : "APPEND",
                   pk_kind_name(v->kind));
}

static mm_status op_setitems(unpickler *u, int batch) {
    size_t start = u->sp - 2;
    if (batch)
        MM_TRY(pop_mark(u, &start));
    else if (u->sp < floor_sp(u) + 2)
        return fail(u, "stack underflow (malformed pickle)");
    if ((u->sp - start) % 2)
        return fail(u, "SETITEMS with an odd number of items");
    mm_pk *obj, *d = NULL;
    if (start <= floor_sp(u))
        return fail(u, "stack underflow (malformed pickle)");
    obj = u->stack[start - 1];
    MM_TRY(setitem_target(u, obj, &d));
    for (size_t i = start; i < u->sp; i += 2) {
        MM_TRY(seq_push(u, &d->dict.keys, u->stack[i]));
        MM_TRY(seq_push(u, &d->dict.vals, u->stack[i + 1]));
    }
    u->sp = start;
    return MM_OK;
}

static mm_status op_appends(unpickler *u, int batch, int set_op) {
    size_t start = u->sp - 1;
    if (batch)
        MM_TRY(pop_mark(u, &start));
    else if (u->sp < floor_sp(u) + 1)
        return fail(u, "stack underflow (malformed pickle)");
    if (start <= floor_sp(u))
        return fail(u, "stack underflow (malformed pickle)");
    mm_pk *l = NULL;
    MM_TRY(append_target(u, u->stack[start - 1], set_op, &l));
    for (size_t i = start; i < u->sp; i++)
        MM_TRY(seq_push(u, &l->seq, u->stack[i]));
    u->sp = start;
    return MM_OK;
}

// Builds a sequence of kind from the top n items (or from the innermost MARK when n < 0).
static mm_status op_collect(unpickler *u, mm_pk_kind kind, int n) {
    size_t start = 0;
    if (n < 0)
        MM_TRY(pop_mark(u, &start));
    else {
        if (u->sp < floor_sp(u) + (size_t)n)
            return fail(u, "stack underflow (malformed pickle)");
        start = u->sp - (size_t)n;
    }
    mm_pk *v = new_node(u, kind);
    if (!v)
        return u->e->code;
    if (kind == MM_PK_DICT) {
        if ((u->sp - start) % 2)
            return fail(u, "DICT with an odd number of items");
        for (size_t i = start; i < u->sp; i += 2) {
            MM_TRY(seq_push(u, &v->dict.keys, u->stack[i]));
            MM_TRY(seq_push(u, &v->dict.vals, u->stack[i + 1]));
        }
    } else {
        for (size_t i = start; i < u->sp; i++)
            MM_TRY(seq_push(u, &v->seq, u->stack[i]));
    }
    u->sp = start;
    return push(u, v);
}

static mm_status memo_put(unpickler *u, uint64_t idx) {
    mm_pk *v;
    MM_TRY(top(u, &v));
    // Picklers number memo entries 0, 1, 2, ...; each PUT takes at least two bytes, so a valid index is
    // always below the stream length. This bounds the table by the input size.
    if (idx >= u->len)
        return fail(u, "memo index out of range");
    if (grow((void **)&u->memo, &u->memo_cap, (size_t)idx + 1, sizeof *u->memo))
        return mm_errf(u->e, MM_ERR_NOMEM, "pickle offset %zu: out of memory", u->op);
    for (size_t i = u->memo_count; i < idx; i++)
        u->memo[i] = NULL;
    if (idx >= u->memo_count)
        u->memo_count = (size_t)idx + 1;
    u->memo[idx] = v;
    return MM_OK;
}

static mm_status memo_get(unpickler *u, uint64_t idx) {
    if (idx >= u->memo_count || !u->memo[idx])
        return fail(u, "memo reference to an entry never stored");
    return push(u, u->memo[idx]);
}

static mm_status op_persid(unpickler *u) {
    mm_pk *pid = NULL;
    MM_TRY(pop(u, &pid));
    // ("storage", storage class, key, location, numel)
    mm_pk *const *a = pid->kind == MM_PK_TUPLE ? pid->seq.items : NULL;
    if (!a || pid->seq.n != 5 || a[0]->kind != MM_PK_STR || strcmp(a[0]->str.s, "storage") != 0)
        return fail(u, "persistent id is not a ('storage', type, key, location, numel) tuple");
    if (a[1]->kind != MM_PK_GLOBAL || a[1]->global.id != G_STORAGE)
        return fail(u, "persistent id names a storage type that is not supported (complex or quantized?)");
    if (a[2]->kind != MM_PK_STR || a[3]->kind != MM_PK_STR || !is_int(a[4]) || a[4]->i < 0)
        return fail(u, "persistent id has a malformed key, location or size");
    if (a[2]->str.len == 0 || strlen(a[2]->str.s) != a[2]->str.len || strchr(a[2]->str.s, '/') ||
        strstr(a[2]->str.s, ".."))
        return fail(u, "persistent id has an invalid storage key");
    mm_pk *s = new_node(u, MM_PK_STORAGE);
    if (!s)
        return u->e->code;
    s->storage.key = strdup(a[2]->str.s);
    s->storage.location = strdup(a[3]->str.s);
    if (!s->storage.key || !s->storage.location)
        return mm_errf(u->e, MM_ERR_NOMEM, "out of memory");
    s->storage.dtype = a[1]->global.dtype;
    s->storage.untyped = a[1]->global.untyped;
    s->storage.numel = a[4]->i;
    return push(u, s);
}

static mm_status step(unpickler *u, int *done) {
    const uint8_t *b = NULL;
    u->op = u->pos;
    MM_TRY(take(u, 1, &b));
    uint8_t code = b[0];
    mm_pk *v = NULL;
    switch (code) {
    case 0x80: // PROTO
        MM_TRY(take(u, 1, &b));
        if (b[0] > 5)
            return fail(u, "pickle protocol above 5 is not supported");
        return MM_OK;
    case 0x95: // FRAME: a hint for buffered readers; we have the whole stream
        MM_TRY(take(u, 8, &b));
        if (le(b, 8) > u->len - u->pos)
            return fail(u, "FRAME is longer than the stream (truncated)");
        return MM_OK;
    case '.': // STOP
        MM_TRY(pop(u, &u->doc->root));
        *done = 1;
        return MM_OK;
    case '(': // MARK
        if (grow((void **)&u->marks, &u->marks_cap, u->n_marks + 1, sizeof *u->marks))
            return mm_errf(u->e, MM_ERR_NOMEM, "out of memory");
        u->marks[u->n_marks++] = u->sp;
        return MM_OK;
    case '0': // POP
        return pop(u, &v);
    case '1': { // POP_MARK
        size_t start = 0;
        MM_TRY(pop_mark(u, &start));
        u->sp = start;
        return MM_OK;
    }
    case '2': // DUP
        MM_TRY(top(u, &v));
        return push(u, v);
    case 'N': return push(u, new_node(u, MM_PK_NONE));
    case 0x88: return push(u, new_int(u, MM_PK_BOOL, 1));
    case 0x89: return push(u, new_int(u, MM_PK_BOOL, 0));
    case 'J': // BININT
        MM_TRY(take(u, 4, &b));
        return push(u, new_int(u, MM_PK_INT, (int32_t)(uint32_t)le(b, 4)));
    case 'K': // BININT1
        MM_TRY(take(u, 1, &b));
        return push(u, new_int(u, MM_PK_INT, b[0]));
    case 'M': // BININT2
        MM_TRY(take(u, 2, &b));
        return push(u, new_int(u, MM_PK_INT, (int64_t)le(b, 2)));
    case 0x8a: return op_long(u, 1); // LONG1
    case 0x8b: return op_long(u, 4); // LONG4
    case 'G': { // BINFLOAT, big-endian IEEE double
        MM_TRY(take(u, 8, &b));
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | b[i];
        mm_pk *f = new_node(u, MM_PK_FLOAT);
        if (f)
            memcpy(&f->f, &bits, 8);
        return push(u, f);
    }
    case 'X': return op_string(u, 4, MM_PK_STR);     // BINUNICODE
    case 0x8c: return op_string(u, 1, MM_PK_STR);    // SHORT_BINUNICODE
    case 0x8d: return op_string(u, 8, MM_PK_STR);    // BINUNICODE8
    case 'T': return op_string(u, 4, MM_PK_STR);     // BINSTRING (Python 2 str)
    case 'U': return op_string(u, 1, MM_PK_STR);     // SHORT_BINSTRING
    case 'B': return op_string(u, 4, MM_PK_BYTES);   // BINBYTES
    case 'C': return op_string(u, 1, MM_PK_BYTES);   // SHORT_BINBYTES
    case 0x8e: return op_string(u, 8, MM_PK_BYTES);  // BINBYTES8
    case 0x96: return op_string(u, 8, MM_PK_BYTES);  // BYTEARRAY8
    case ')': return push(u, new_node(u, MM_PK_TUPLE));
    case ']': return push(u, new_node(u, MM_PK_LIST));
    case '}': return push(u, new_node(u, MM_PK_DICT));
    case 0x8f: return push(u, new_node(u, MM_PK_SET)); // EMPTY_SET
    case 't': return op_collect(u, MM_PK_TUPLE, -1);
    case 0x85: return op_collect(u, MM_PK_TUPLE, 1);
    case 0x86: return op_collect(u, MM_PK_TUPLE, 2);
    case 0x87: return op_collect(u, MM_PK_TUPLE, 3);
    case 'l': return op_collect(u, MM_PK_LIST, -1);
    case 'd': return op_collect(u, MM_PK_DICT, -1);
    case 0x91: return op_collect(u, MM_PK_SET, -1);   // FROZENSET
    case 'a': return op_appends(u, 0, 0);             // APPEND
    case 'e': return op_appends(u, 1, 0);             // APPENDS
    case 0x90: return op_appends(u, 1, 1);            // ADDITEMS
    case 's': return op_setitems(u, 0);               // SETITEM
    case 'u': return op_setitems(u, 1);               // SETITEMS
    case 'q': MM_TRY(take(u, 1, &b)); return memo_put(u, b[0]);          // BINPUT
    case 'r': MM_TRY(take(u, 4, &b)); return memo_put(u, le(b, 4));      // LONG_BINPUT
    case 0x94: return memo_put(u, u->memo_count);                        // MEMOIZE
    case 'h': MM_TRY(take(u, 1, &b)); return memo_get(u, b[0]);          // BINGET
    case 'j': MM_TRY(take(u, 4, &b)); return memo_get(u, le(b, 4));      // LONG_BINGET
    case 'c': return op_global(u);
    case 0x93: return op_stack_global(u);
    case 'R': return op_reduce(u);
    case 0x81: return op_newobj(u, 0);
    case 0x92: return op_newobj(u, 1);
    case 'b': return op_build(u);
    case 'Q': return op_persid(u);
    default:
        return mm_errf(u->e, MM_ERR_UNSUPPORTED, "pickle offset %zu: opcode 0x%02x is not accepted in a state "
                       "dict (text protocols, extensions, out-of-band buffers and INST/OBJ are refused)", u->op, code);
    }
}

void pk_free(mm_pk_doc *doc) {
    if (!doc)
        return;
    for (size_t i = 0; i < doc->n_nodes; i++) {
        mm_pk *v = doc->nodes[i];
        switch (v->kind) {
        case MM_PK_STR:
        case MM_PK_BYTES: free(v->str.s); break;
        case MM_PK_TUPLE:
        case MM_PK_LIST:
        case MM_PK_SET: free(v->seq.items); break;
        case MM_PK_DICT:
            free(v->dict.keys.items);
            free(v->dict.vals.items);
            break;
        case MM_PK_GLOBAL: free(v->global.name); break;
        case MM_PK_STORAGE:
            free(v->storage.key);
            free(v->storage.location);
            break;
        case MM_PK_OBJECT: free(v->object.cls); break;
        default: break;
        }
        free(v);
    }
    free(doc->nodes);
    memset(doc, 0, sizeof *doc);
}

mm_status pk_load(mm_pk_doc *doc, const uint8_t *data, size_t len, const mm_pk_options *opt, mm_err *e) {
    memset(doc, 0, sizeof *doc);
    mm_err local;
    unpickler u = {.doc = doc, .opt = opt, .p = data, .len = len, .e = e ? e : &local};
    mm_status st = MM_OK;
    int done = 0;
    while (!done && st == MM_OK) {
        if (u.pos >= u.len) {
            u.op = u.pos;
            st = fail(&u, "pickle ends without STOP (truncated)");
            break;
        }
        st = step(&u, &done);
    }
    free(u.stack);
    free(u.marks);
    free(u.memo);
    if (st != MM_OK)
        pk_free(doc);
    return one_line(e, st);
}

static int str_is(const mm_pk *v, const char *s) {
    return v->kind == MM_PK_STR && strlen(s) == v->str.len && memcmp(v->str.s, s, v->str.len) == 0;
}

const mm_pk *pk_dict_get(const mm_pk *v, const char *key) {
    if (v && v->kind == MM_PK_OBJECT)
        v = v->object.items;
    if (!v || v->kind != MM_PK_DICT)
        return NULL;
    for (size_t i = v->dict.keys.n; i-- > 0;)
        if (str_is(v->dict.keys.items[i], key))
            return v->dict.vals.items[i];
    return NULL;
}

static const mm_pk *find_rec(const mm_pk *v, const char *key, int depth, long *budget) {
    if (!v || depth < 0 || --*budget < 0)
        return NULL;
    const mm_pk *r = NULL;
    switch (v->kind) {
    case MM_PK_DICT:
        if ((r = pk_dict_get(v, key)))
            return r;
        for (size_t i = 0; i < v->dict.vals.n && !r; i++)
            r = find_rec(v->dict.vals.items[i], key, depth - 1, budget);
        return r;
    case MM_PK_TUPLE:
    case MM_PK_LIST:
    case MM_PK_SET:
        for (size_t i = 0; i < v->seq.n && !r; i++)
            r = find_rec(v->seq.items[i], key, depth - 1, budget);
        return r;
    case MM_PK_OBJECT:
        if (!r) r = find_rec(v->object.items, key, depth, budget);
        if (!r) r = find_rec(v->object.state, key, depth - 1, budget);
        if (!r) r = find_rec(v->object.args, key, depth - 1, budget);
        if (!r) r = find_rec(v->object.kwargs, key, depth - 1, budget);
        if (!r) r = find_rec(v->object.list, key, depth - 1, budget);
        return r;
    default:
        return NULL;
    }
}

const mm_pk *pk_find_key(const mm_pk *v, const char *key, int max_depth) {
    long budget = 100000;
    return find_rec(v, key, max_depth, &budget);
}
