// A bounds-checked reader of SentencePiece's model file (a ModelProto protobuf): the pieces with
// their scores and types, and the trainer/normalizer settings that change how text is encoded.
#ifndef MM_SPM_PROTO_H
#define MM_SPM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4, SPM_UNUSED = 5, SPM_BYTE = 6 };
enum { SPM_MODEL_UNIGRAM = 1, SPM_MODEL_BPE = 2, SPM_MODEL_WORD = 3, SPM_MODEL_CHAR = 4 };

typedef struct {
    char *piece;
    float score;
    int type;
} spm_piece;

typedef struct {
    spm_piece *pieces;
    int n;
    int model_type;                 // SPM_MODEL_*; BPE unless the file says otherwise
    int byte_fallback, treat_ws_suffix;
    int add_dummy_prefix, remove_extra_ws, escape_ws; // NormalizerSpec (defaults true)
    int32_t unk_id, bos_id, eos_id, pad_id;           // TrainerSpec (defaults 0, 1, 2, -1)
    char normalizer[64];            // NormalizerSpec.name
    size_t charsmap_len;            // precompiled_charsmap bytes (0 for "identity")
} spm_model;

// Parses a ModelProto; errors name the file and byte offset.
mm_status spm_parse(spm_model *m, const uint8_t *data, size_t len, const char *path, mm_err *e);
void spm_free(spm_model *m);

#endif
