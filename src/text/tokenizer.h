// SentencePiece-compatible BPE tokenizer (LLaMA's), read from a SentencePiece `tokenizer.model`
// (protobuf) or a Hugging Face `tokenizer.json` (BPE with merges), plus the tokens OpenFlamingo adds
// on top (`<|endofchunk|>`, `<image>`, `<PAD>`; SPEC.md 1.6), which are matched as whole units.
#ifndef MM_TOKENIZER_H
#define MM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct mm_tokenizer mm_tokenizer;

typedef enum {
    // Training-era transformers (< 4.34): text around an added token is stripped (left chunk rstrip,
    // right chunk lstrip) and each chunk is encoded separately with its own dummy prefix. Default.
    MM_TOK_SPLIT_STRIP = 0,
    // Newer transformers: whitespace around added tokens is kept.
    MM_TOK_SPLIT_KEEP = 1,
} mm_tok_split_mode;

// Loads a tokenizer.model or tokenizer.json (detected by content), or the tokenizer an mmgpt .gguf
// model file carries. Adds OpenFlamingo's three tokens
// after the base vocabulary unless the file already defines them.
mm_status tok_load(mm_tokenizer **tok, const char *path, mm_err *e);
// The bytes of the tokenizer file tok_load would read from path (a .gguf model's embedded copy included)
// and its file name ("tokenizer.model"); both malloc'ed.
mm_status tok_read_file(const char *path, uint8_t **bytes, size_t *len, char **name, mm_err *e);
// The same from bytes in memory (path names the source in errors); the bytes are not kept.
mm_status tok_load_memory(mm_tokenizer **tok, const uint8_t *data, size_t len, const char *path, mm_err *e);
void tok_free(mm_tokenizer *tok);

int32_t tok_vocab_size(const mm_tokenizer *tok); // base vocabulary + added tokens
int32_t tok_bos_id(const mm_tokenizer *tok);
int32_t tok_eos_id(const mm_tokenizer *tok);
int32_t tok_unk_id(const mm_tokenizer *tok);
int32_t tok_pad_id(const mm_tokenizer *tok);   // `<PAD>`, or -1 if absent
int32_t tok_image_id(const mm_tokenizer *tok); // `<image>`, or -1 if absent
int32_t tok_eoc_id(const mm_tokenizer *tok);   // `<|endofchunk|>`, or -1 if absent
// The id of a piece string exactly as stored (e.g. "▁the", "<0x0A>", "<image>"), or -1.
int32_t tok_piece_id(const mm_tokenizer *tok, const char *piece);
// The stored piece string of an id (e.g. "▁the"); NULL if out of range.
const char *tok_piece(const mm_tokenizer *tok, int32_t id);
// True for control tokens (BOS, EOS, UNK's type aside) and the added special tokens.
int tok_is_special(const mm_tokenizer *tok, int32_t id);

void tok_set_split_mode(mm_tokenizer *tok, mm_tok_split_mode mode);

// Encodes UTF-8 text. Writes at most cap ids to ids (ids may be NULL when cap is 0) and returns the
// total count needed in *n (so a call with cap 0 sizes the buffer). add_bos prepends BOS.
mm_status tok_encode(const mm_tokenizer *tok, const char *text, size_t len, int add_bos, int32_t *ids, size_t cap,
                     size_t *n, mm_err *e);

// Decodes ids to UTF-8 as SentencePiece does (the leading dummy-prefix space of the first piece is
// dropped; byte tokens are reassembled). skip_special drops control and added tokens. Returns a new
// NUL-terminated string (free with free()).
mm_status tok_decode(const mm_tokenizer *tok, const int32_t *ids, size_t n, int skip_special, char **text, mm_err *e);

// Streaming decode, one id at a time: emits only complete UTF-8 characters, holding back a partial
// multi-byte sequence until its last byte token arrives.
typedef struct {
    const mm_tokenizer *tok;
    int skip_special;
    int at_start;      // the next piece is the first of the stream (its dummy-prefix space is dropped)
    uint8_t pending[8]; // bytes of an incomplete UTF-8 character
    int n_pending;
} mm_tok_stream;
void tok_stream_init(mm_tok_stream *s, const mm_tokenizer *tok, int skip_special);
// Appends the text released by id to out (capacity cap, always NUL-terminated); returns its length.
size_t tok_stream_push(mm_tok_stream *s, int32_t id, char *out, size_t cap);
// Releases held-back bytes at the end of a stream (invalid leftovers become U+FFFD).
size_t tok_stream_flush(mm_tok_stream *s, char *out, size_t cap);

#endif
