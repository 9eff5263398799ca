// mmgpt: Multimodal-GPT (OpenFlamingo + LoRA) as a C library.
//
// Load a model, open a conversation, give it text and images, stream a reply; tokenize; fine-tune.
// Link with `pkg-config --cflags --libs mmgpt`. The bundled example: examples/chat_image.c.
//
// Conventions
// - Every handle is opaque and created/freed by a pair of functions (mmgpt_model_load/mmgpt_model_free...).
// - Functions that can fail return an mmgpt_status and, when err is not NULL, fill *err with the code and
//   one line saying what failed (the file, tensor or value named). The library prints nothing, and what a
//   function reads from the environment is said where it does.
// - State lives in the handles, except what belongs to the process: the CPU kernels' SIMD level, fixed on
//   first use (MMGPT_SIMD=scalar|avx2 caps it; MMGPT_AMX=0 keeps long products off the bf16 engines, AMX tiles or AVX-512 BF16); the GPU, one CUDA device per process, opened by the first
//   model or training run placed on it and kept until exit (every later one shares it; another device
//   index is then refused with MMGPT_ERR_UNSUPPORTED); and the OpenMP and OpenBLAS thread pools
//   (OMP_NUM_THREADS sizes them).
// - Strings are UTF-8. Strings the library returns are either owned by a handle (valid until the call
//   named beside them) or malloc'ed for the caller (free with mmgpt_free).
// - Thread safety is stated per function: "any thread" means it may run concurrently with any other call
//   on the same handle; otherwise one thread at a time per handle (different handles are independent).
//
// The mmgpt command line and its HTTP server are older than this header and call the internal modules
// (src/infer/chat.h and friends) directly; only `mmgpt --version` goes through it. Each command needs
// something the API leaves out on purpose:
// - chat, generate: a conversation's JSON form (/save), the reply's token ids (generate --json);
// - serve: each request carries a whole conversation (its system prompt, the assistant's earlier turns),
//   loaded into a slot's chat whose caches outlive the request (the API's chats only add user turns);
// - eval: benchmark prompts with in-context examples, questions batched together, the metrics;
// - logits, grad, preprocess: logits, gradients and image tensors as arrays;
// - tokenize, template, data: a tokenizer file without a model, the training template and data streams;
// - info, convert, quantize, merge, init: reading and writing model files;
// - train: the trainable-parameter summary and the data report (skipped records) before and after the run
//   (its config and checkpoint lookup are mmgpt_train's: src/api/train_setup.h).
#ifndef MMGPT_H
#define MMGPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Version of this header and library. The major number is the shared library's soname
// (libmmgpt.so.MAJOR): it changes when a struct or signature below changes incompatibly.
#define MMGPT_VERSION_MAJOR 0
#define MMGPT_VERSION_MINOR 2
#define MMGPT_VERSION_PATCH 0
#define MMGPT_VERSION_STRING "0.2.0"

// "0.2.0": the library's version (compare with MMGPT_VERSION_STRING to catch a header/library mismatch).
// Any thread.
const char *mmgpt_version(void);

typedef enum {
    MMGPT_OK = 0,
    MMGPT_ERR_IO = 1,          // a file could not be opened, read or written
    MMGPT_ERR_FORMAT = 2,      // a file, image or value is malformed
    MMGPT_ERR_ARG = 3,         // an invalid argument (NULL handle, bad size, call out of order)
    MMGPT_ERR_NOMEM = 4,       // an allocation failed or a limit was exceeded
    MMGPT_ERR_UNSUPPORTED = 5, // valid input this build does not handle (e.g. cuda without a GPU)
    MMGPT_ERR_CANCELLED = 6,   // the caller asked to stop
} mmgpt_status;

typedef struct {
    mmgpt_status code;
    char message[512]; // one line, NUL-terminated; "" when code is MMGPT_OK
} mmgpt_error;

// A short name for a status ("ok", "io", "format", ...). Any thread.
const char *mmgpt_status_name(mmgpt_status s);

// Frees a string or array the library allocated for the caller. Any thread.
void mmgpt_free(void *p);

// ---------------------------------------------------------------------------------------------------------
// Models

typedef struct mmgpt_model mmgpt_model;

typedef struct {
    const char *adapter;   // a PEFT LoRA adapter directory applied on load, or NULL
    const char *tokenizer; // tokenizer.model / tokenizer.json; NULL: the .gguf's own, or the directory's
    const char *device;    // "cpu", "cuda", "cuda:N", "auto"; NULL: $MMGPT_DEVICE, else "auto" (a GPU when
                           // one answers, else the CPU)
    const char *precision; // "f32" or "bf16"; NULL: bf16 frozen matrices on a GPU, the file's types on the CPU
    const char *kv_cache;  // "f32" or "f16" (half the memory per context token, within ~1e-3 of f32's
                           // logits; the CPU only); NULL: "f32". Added in 0.2.0.
} mmgpt_model_params;

// All NULL: the defaults above. Any thread.
mmgpt_model_params mmgpt_model_params_default(void);

// Loads an mmgpt .gguf file or a model directory (config.json, *.safetensors, tokenizer) onto the chosen
// device; params may be NULL. The model is read-only afterwards. Any thread (different calls load
// different models).
mmgpt_status mmgpt_model_load(const char *path, const mmgpt_model_params *params, mmgpt_model **model,
                              mmgpt_error *err);
// Frees the model; every chat opened on it must be freed first. NULL is ignored. Not while a call on the model
// runs.
void mmgpt_model_free(mmgpt_model *model);
// Where the model runs, e.g. "cpu (...)" or "cuda:0 (NVIDIA H200, sm_90, 139.8 GiB)". Owned by the model.
// Any thread.
const char *mmgpt_model_device(const mmgpt_model *model);
// Vocabulary size (the tokenizer's, equal to the model's), the longest sequence, the image side in pixels
// the vision tower takes. Any thread.
int mmgpt_model_vocab(const mmgpt_model *model);
int mmgpt_model_max_tokens(const mmgpt_model *model);
int mmgpt_model_image_size(const mmgpt_model *model);

// ---------------------------------------------------------------------------------------------------------
// Tokens (the model's tokenizer: LLaMA's SentencePiece BPE plus OpenFlamingo's <image>, <|endofchunk|>, <PAD>)

// Encodes text, with BOS first when add_bos. Writes at most cap ids (ids may be NULL when cap is 0) and the
// count needed into *n_ids, so a call with cap 0 sizes the buffer. Any thread.
mmgpt_status mmgpt_tokenize(const mmgpt_model *model, const char *text, int add_bos, int32_t *ids, size_t cap,
                            size_t *n_ids, mmgpt_error *err);
// Decodes ids into a new string (mmgpt_free it); skip_special drops BOS/EOS and the added tokens.
// Any thread.
mmgpt_status mmgpt_detokenize(const mmgpt_model *model, const int32_t *ids, size_t n_ids, int skip_special,
                              char **text, mmgpt_error *err);

// ---------------------------------------------------------------------------------------------------------
// Conversations

typedef struct mmgpt_chat mmgpt_chat;

typedef struct {
    int max_tokens;     // context window; 0: the model's longest sequence
    int max_images;     // most images the conversation holds; 0: 8
    const char *system; // the header before the turns; NULL: Multimodal-GPT's
    int exif;           // EXIF orientation of encoded images: 0 the model config's choice (off unless set),
                        // 1 turn photos upright, -1 ignore it (as the original did)
} mmgpt_chat_params;

// All zero/NULL: the defaults above. Any thread.
mmgpt_chat_params mmgpt_chat_params_default(void);

// Opens a conversation on model (borrowed: it must outlive the chat); params may be NULL. Each chat holds
// its own caches, so several chats on one model may generate in different threads at once; their decoding
// is then batched (continuous batching: each step computes the next token of every chat generating, in one
// pass over the weights, as `mmgpt serve --parallel` does), with the replies of generating alone up to
// float rounding. Any thread.
mmgpt_status mmgpt_chat_open(const mmgpt_model *model, const mmgpt_chat_params *params, mmgpt_chat **chat,
                             mmgpt_error *err);
// NULL is ignored. Not while a call on the chat runs.
void mmgpt_chat_free(mmgpt_chat *chat);
// Forgets the turns and images (the system header stays). One thread at a time.
void mmgpt_chat_reset(mmgpt_chat *chat);

// The user's next turn is built up by these calls (in any order: the prompt format puts a turn's images
// before its text, one <image> section each) and sent by mmgpt_chat_generate. Images are decoded and
// prepared for the vision tower at once, so a broken image fails here and is not added. One thread at a time.
mmgpt_status mmgpt_chat_add_text(mmgpt_chat *chat, const char *text, mmgpt_error *err);
// JPEG, PNG, WebP or GIF (first frame), from a file or from its bytes in memory (name labels it in errors).
mmgpt_status mmgpt_chat_add_image_file(mmgpt_chat *chat, const char *path, mmgpt_error *err);
mmgpt_status mmgpt_chat_add_image_bytes(mmgpt_chat *chat, const void *data, size_t len, const char *name,
                                        mmgpt_error *err);
// Raw 8-bit RGB pixels: height rows of width pixels, rows stride bytes apart (0: 3 * width).
mmgpt_status mmgpt_chat_add_image_rgb(mmgpt_chat *chat, const uint8_t *rgb, int width, int height, size_t stride,
                                      mmgpt_error *err);

typedef struct {
    int max_new_tokens;       // >= 1
    int do_sample;            // 0: the most likely token (greedy with 1 beam)
    float temperature;        // > 0
    int top_k;                // 0: off
    float top_p;              // (0, 1]; 1: off
    float repetition_penalty; // 1: off
    int num_beams;            // 1: no beam search (replies then stream token by token); at most 16
    uint64_t seed;            // sampling is deterministic per seed
    const char *const *stop;  // generation ends before any of these strings (not included); may be NULL
    int n_stop;               // at most 64
} mmgpt_gen_params;

// The original demo's settings: sampling, 3 beams, top-k 20, top-p 1, temperature 1, 512 new tokens, seed 0.
// Any thread.
mmgpt_gen_params mmgpt_gen_params_default(void);
// The same with greedy decoding (do_sample 0, 1 beam): what `mmgpt chat --greedy` uses. Any thread.
mmgpt_gen_params mmgpt_gen_params_greedy(void);

// Called with each piece of the reply as it is complete UTF-8; return non-zero to stop (the reply so
// far is kept). With beams the whole reply arrives at the end.
typedef int (*mmgpt_piece_fn)(const char *piece, void *user);

// Sends the pending user turn and generates the assistant's reply (stopping at the end-of-answer marker,
// EOS, a stop string, max_new_tokens, the callback or mmgpt_chat_cancel). The oldest turns are dropped
// when the prompt would not fit the context. *reply (may be NULL) receives the reply without surrounding
// whitespace, owned by the chat until its next generate/reset/free. A stopped reply is still MMGPT_OK
// (mmgpt_chat_timings says why it ended). params NULL: mmgpt_gen_params_default(). When the turn cannot be
// added (e.g. more images than max_images) the pending input is dropped; when the reply fails after the turn
// was added, a generate with no new input retries it (new input is refused until then; reset starts over).
// One thread at a time.
mmgpt_status mmgpt_chat_generate(mmgpt_chat *chat, const mmgpt_gen_params *params, mmgpt_piece_fn on_piece,
                                 void *user, const char **reply, mmgpt_error *err);
// Asks the running mmgpt_chat_generate to stop after the current token. Any thread, and signal handlers
// (it only sets a flag); it has no effect on a generate that starts later.
void mmgpt_chat_cancel(mmgpt_chat *chat);

typedef enum {
    MMGPT_STOP_END = 0,       // EOS, the end-of-answer marker or a stop string
    MMGPT_STOP_LENGTH = 1,    // max_new_tokens or the context was used up
    MMGPT_STOP_CANCELLED = 2, // the callback or mmgpt_chat_cancel stopped it
} mmgpt_stop_reason;

typedef struct {
    long prompt_tokens;    // tokens in the last reply's prompt
    long evaluated_tokens; // of those, evaluated (the rest came from the chat's cache); summed over beams
    long generated_tokens; // tokens of the last reply
    double prompt_s;       // seconds from the call to the first new token (images, prompt)
    double generate_s;     // seconds after that
    double tokens_per_s;   // generated_tokens / generate_s (0 when no time passed)
    long encoded_images;   // images run through the vision tower since the chat opened or was reset
    mmgpt_stop_reason stop;
} mmgpt_timings;

// Counts and timings of the last mmgpt_chat_generate. One thread at a time (not during a generate).
mmgpt_timings mmgpt_chat_timings(const mmgpt_chat *chat);

// ---------------------------------------------------------------------------------------------------------
// Training (LoRA fine-tuning, and whole tensors a config unfreezes; the config's keys are documented in
// the README and src/train/train_config.h)

typedef struct {
    const char *device;    // as in mmgpt_model_params (NULL: $MMGPT_DEVICE, else auto)
    const char *precision; // as in mmgpt_model_params
    long max_steps;        // run this many optimizer steps now, save a checkpoint and return; 0: to the end
} mmgpt_train_params;

typedef struct {
    long step, total_steps; // optimizer steps done / planned
    int epoch;
    double loss;            // mean over the step's micro-batches
    double grad_norm;       // before clipping
    float learning_rate;
    double tokens_per_s, elapsed_s, eta_s;
    int evaluated;          // 1: eval_loss was measured at this step
    double eval_loss;
    const char *saved;      // checkpoint directory written at this step, or NULL
} mmgpt_train_report;

// Called after every optimizer step, on the calling thread.
typedef void (*mmgpt_train_fn)(const mmgpt_train_report *report, void *user);

// Trains from a JSON train config, or resumes from a checkpoint directory (or an out_dir: its latest
// checkpoint-N) when resume is not NULL (config is then ignored and may be NULL). Logs and checkpoints go
// to the config's out_dir as `mmgpt train` writes them; a resumed run continues bit for bit. params may
// be NULL. Any thread (one run per out_dir).
mmgpt_status mmgpt_train(const char *config, const char *resume, const mmgpt_train_params *params,
                         mmgpt_train_fn on_step, void *user, mmgpt_error *err);

#ifdef __cplusplus
}
#endif

#endif
