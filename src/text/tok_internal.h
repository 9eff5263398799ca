// The tokenizer's shared state, for its loaders (SentencePiece model, tokenizer.json) and encoder.
#ifndef MM_TOK_INTERNAL_H
#define MM_TOK_INTERNAL_H

#include <stdint.h>

#include "text/spm_proto.h"
#include "text/tokenizer.h"

struct mm_tokenizer {
    int n_base, n;                 // base vocabulary, and with the added tokens
    char **piece;                  // [n]
    float *score;                  // [n]
    uint8_t *type;                 // [n] SPM_* piece types (added tokens: SPM_USER_DEFINED kept apart below)
    int32_t *hash;                 // open addressing over ids by piece text (normal, user-defined, unused)
    uint32_t hash_cap;
    // Merge rules of a tokenizer.json (rank by pair); NULL for SentencePiece models, which merge by score.
    int64_t *merge_key;            // (left id << 32 | right id) per slot, -1 empty
    int32_t *merge_rank, *merge_out;
    uint32_t merge_cap;
    int byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws, ws_suffix, metaspace_split, fuse_unk;
    int32_t bos, eos, unk, pad, image, eoc;
    int32_t byte_id[256];
    mm_tok_split_mode split;
    int n_special;                 // strings matched as whole tokens in the text (added + control)
    int32_t *special_id;
    int n_user;                    // user-defined pieces (matched as units inside chunks)
    int32_t *user_id;
};

// Builds the lookup tables once pieces/scores/types are filled (n_base entries) and adds
// OpenFlamingo's three tokens unless present.
mm_status tok_finish(mm_tokenizer *t, const char *path, mm_err *e);
// The id of a vocabulary piece usable by the encoder, or -1.
int32_t tok_lookup(const mm_tokenizer *t, const char *s, size_t len);
mm_status tok_load_spm(mm_tokenizer *t, const uint8_t *data, size_t len, const char *path, mm_err *e);
mm_status tok_load_json(mm_tokenizer *t, const char *text, size_t len, const char *path, mm_err *e);

#endif
