// A chat session: a conversation about images held against one model, rendered with the demo's
// prompt format (template CHAT style, SPEC.md 2.8 with section 6's fixes: one `<image>` per image
// given, several images per conversation), generated on a cached engine so that a new turn only
// evaluates its new tokens (images are encoded once per conversation). The CLI (`mmgpt chat`,
// `mmgpt generate`) and the HTTP server (`mmgpt serve`) both sit on this API; nothing here prints.
#ifndef MM_CHAT_H
#define MM_CHAT_H

#include <stdint.h>

#include "base/err.h"
#include "infer/batcher.h"
#include "infer/generate.h"
#include "infer/sampler.h"
#include "model/flamingo.h"
#include "text/conversation.h"
#include "text/tokenizer.h"

typedef struct mm_chat mm_chat;

typedef struct {
    int max_ctx;        // context window in tokens (<= the model's max_seq_len); 0 = the model's
    int max_images;     // most images a conversation keeps; 0 = 8
    const char *system; // header; NULL = Multimodal-GPT's H
    int exif;           // EXIF orientation of image files: 0 = the model config's (off unless set), 1 on, -1 off
    mm_batcher *batcher; // shared by chats in other threads: their decoding is batched (infer/batcher.h)
} mm_chat_opts;

typedef struct {
    long prompt_tokens;    // tokens in the last reply's prompt
    long evaluated_tokens; // prompt tokens actually evaluated (the rest came from the cache), summed over beams
    long generated_tokens; // tokens of the last reply
    double prompt_s, gen_s; // seconds spent on the prompt and on generation
    int dropped_turns;     // turns dropped from the start to fit the context (cumulative)
    mm_stop_reason stop;   // why the last reply ended (EOS or a stop string: MM_STOP_EOS; budget: MM_STOP_LENGTH)
    long encoded_images;   // images run through the vision encoder since the last reset/clear (cache misses)
} mm_chat_stats;

// Called with each decoded piece of the reply as soon as it is complete UTF-8 (streaming); return
// non-zero to stop generating (the reply so far is kept).
typedef int (*mm_piece_cb)(const char *piece, void *user);

// The model and tokenizer are borrowed and must outlive the chat.
mm_status chat_create(mm_chat **ch, const mm_model *m, const mm_tokenizer *tok, const mm_chat_opts *o, mm_err *e);
void chat_free(mm_chat *ch);
// Forgets the conversation and its images (the caches too).
void chat_reset(mm_chat *ch);
// Forgets the conversation but keeps the engines' caches: a following conversation that repeats a prefix
// of the old one (same images, same text) re-uses them (the server's per-request history).
void chat_clear(mm_chat *ch);
// Replaces the header (NULL: Multimodal-GPT's H).
mm_status chat_set_system(mm_chat *ch, const char *system, mm_err *e);
// Adds an assistant turn verbatim (history given by a client), after a user turn.
mm_status chat_add_assistant(mm_chat *ch, const char *text, mm_err *e);
// Adds a user turn; images are file paths (decoded and preprocessed now, so a broken image fails here
// and the turn is not added).
mm_status chat_add_user(mm_chat *ch, const char *text, const char *const *image_paths, int n_images, mm_err *e);
// Adds a user turn with images already preprocessed to float32 [n_images, 3, S, S] (for the server);
// image_names label them in the saved conversation (may be NULL).
mm_status chat_add_user_pixels(mm_chat *ch, const char *text, const float *pixels, int n_images,
                               const char *const *image_names, mm_err *e);
// Generates the assistant's reply to the pending user turn with sampling parameters p, stopping on EOS,
// on "### End." (the marker the training data puts after every answer) or any of stop_strings (at most
// 64; none is included in the reply), on max_new_tokens, or when cb returns non-zero
// or chat_cancel is called. Drops the oldest turns (keeping the system prompt) when the prompt would not
// fit. The reply is appended to the conversation and returned in *reply (owned by the chat, valid until
// the next call).
mm_status chat_reply(mm_chat *ch, const mm_sampling *p, const char *const *stop_strings, int n_stop, mm_piece_cb cb,
                     void *user, const char **reply, mm_err *e);
// Asks a running chat_reply to stop at the next token (safe from a signal handler or another thread).
void chat_cancel(mm_chat *ch);
const mm_conversation *chat_conversation(const mm_chat *ch);
// The preprocessed float32 [3, S, S] pixels of the conversation's i-th image (0-based), NULL if there is none:
// what the vision encoder is given, for checking an image path end to end.
const float *chat_image_pixels(const mm_chat *ch, int i);
mm_chat_stats chat_stats(const mm_chat *ch);
// The token ids the last reply generated (including a final EOS), valid until the next chat_reply.
const int32_t *chat_last_tokens(const mm_chat *ch, int *n);

#endif
