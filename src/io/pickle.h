// A restricted unpickler for torch.save state dicts. It never imports or calls anything: it reads the
// opcodes of pickle protocols 2-5 and builds a small value tree (none, bool, int, float, str, bytes, tuple,
// list, set, dict, and the torch nodes "storage" and "tensor"). The globals it accepts are the state-dict
// subset of PyTorch's weights_only allow-list (torch/_weights_only_unpickler.py): collections.OrderedDict,
// torch._utils._rebuild_tensor{,_v2,_v3}, _rebuild_parameter{,_with_state}, torch._tensor._rebuild_from_type_v2,
// torch.nn.parameter.Parameter, the torch.*Storage classes, torch dtypes, torch.Size, torch.device,
// torch.Tensor, builtins.set/bytearray and _codecs.encode (protocol-2 bytes). Any other global is refused
// with its name and offset, unless the caller lists a prefix of it in opaque_globals: then it is kept as
// an inert "object" node recording its class name, the arguments given to REDUCE/NEWOBJ, the items set or
// appended on it, and the state given to BUILD; nothing of it is ever called.
#ifndef MM_PICKLE_H
#define MM_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/err.h"

#define MM_PK_MAX_DIMS 8

typedef enum {
    MM_PK_NONE = 0,
    MM_PK_BOOL,
    MM_PK_INT,
    MM_PK_FLOAT,
    MM_PK_STR,     // UTF-8 as stored, NUL-terminated (may contain NUL bytes; len is exact)
    MM_PK_BYTES,
    MM_PK_TUPLE,
    MM_PK_LIST,
    MM_PK_SET,     // set or frozenset, items in file order
    MM_PK_DICT,    // dict, OrderedDict or Counter: entries in insertion order, duplicates kept (last wins)
    MM_PK_GLOBAL,  // a reference to an allowed global (a class, dtype or function) not yet applied
    MM_PK_STORAGE, // a persistent-id storage reference: key of "data/<key>", dtype, element count
    MM_PK_TENSOR,  // a strided view of a storage
    MM_PK_OBJECT,  // an opaque instance of a caller-allowed class; never constructed
} mm_pk_kind;

typedef struct mm_pk mm_pk;

typedef struct {
    mm_pk **items;
    size_t n, cap;
} mm_pk_seq;

struct mm_pk {
    mm_pk_kind kind;
    union {
        int64_t i;       // BOOL (0/1) and INT
        double f;        // FLOAT
        struct {
            char *s;
            size_t len;
        } str;           // STR and BYTES
        mm_pk_seq seq;   // TUPLE, LIST, SET
        struct {
            mm_pk_seq keys, vals;
        } dict;          // DICT
        struct {
            char *name;  // "module.qualname"
            int id;      // internal identifier of the allowed global
            mm_dtype dtype; // for dtype and storage-class globals
            int untyped; // torch.UntypedStorage: element count is in bytes
        } global;
        struct {
            char *key;       // the storage's member name under data/
            char *location;  // "cpu", "cuda:0", ...
            mm_dtype dtype;
            int untyped;     // numel counts bytes (UntypedStorage)
            int64_t numel;   // elements recorded by torch.save (bytes when untyped)
        } storage;
        struct {
            const mm_pk *storage;  // a MM_PK_STORAGE node
            mm_dtype dtype;
            int ndim;
            int64_t shape[MM_PK_MAX_DIMS];
            int64_t stride[MM_PK_MAX_DIMS]; // in elements
            int64_t offset;                 // storage offset in elements
            int requires_grad, is_param;
        } tensor;
        struct {
            char *cls;      // "module.qualname" of the opaque class or function
            mm_pk *args;    // TUPLE given to REDUCE/NEWOBJ (NULL for a bare global reference)
            mm_pk *kwargs;  // DICT given to NEWOBJ_EX, else NULL
            mm_pk *state;   // value given to BUILD, else NULL (NULL too when the state was the object itself)
            mm_pk *items;   // DICT of SETITEM(S) on the object (dict subclasses), else NULL
            mm_pk *list;    // LIST of APPEND(S)/ADDITEMS on the object, else NULL
            int called;     // 0: the class itself (no REDUCE/NEWOBJ yet)
        } object;
    };
};

typedef struct {
    // NULL-terminated prefixes of "module.qualname" that may be kept as opaque objects (never called),
    // e.g. "mmengine.config.config." for Multimodal-GPT's tuning_config. NULL: none (the default).
    const char *const *opaque_globals;
} mm_pk_options;

// Owns every node of one unpickled stream.
typedef struct {
    mm_pk *root;
    mm_pk **nodes;
    size_t n_nodes, cap_nodes;
} mm_pk_doc;

// Unpickles data[0..len) into doc (doc->root is the value given to STOP). opt may be NULL. Errors name
// the byte offset and, for a refused global, its name. On error doc is left empty.
mm_status pk_load(mm_pk_doc *doc, const uint8_t *data, size_t len, const mm_pk_options *opt, mm_err *e);
void pk_free(mm_pk_doc *doc);

// The value for a string key in a DICT (or in an OBJECT's SETITEM items); the last one if repeated; NULL
// if absent or v is not a dict.
const mm_pk *pk_dict_get(const mm_pk *v, const char *key);
// Depth-first search (dict values, sequence items, object args/state/items) for the first dict entry with
// string key `key`, at most max_depth levels down and a bounded number of visits (safe on cycles).
const mm_pk *pk_find_key(const mm_pk *v, const char *key, int max_depth);
// Kind name for messages ("dict", "tensor", ...).
const char *pk_kind_name(mm_pk_kind k);

#endif
