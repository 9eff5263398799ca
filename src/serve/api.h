// The OpenAI chat-completions request and response bodies (no networking here): a request becomes a
// conversation (system header, user turns with decoded and preprocessed images, assistant turns) and sampling
// parameters; replies become completion objects, stream chunks and error objects.
#ifndef MM_API_H
#define MM_API_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "vision/preprocess.h"
#include "infer/sampler.h"

#define API_MAX_STOPS 4

typedef struct {
    int role;         // MM_ROLE_USER or MM_ROLE_ASSISTANT
    char *text;
    float *pixels;    // [n_images, 3, S, S]
    int n_images;
    uint64_t *hashes; // content hash of each image's encoded bytes
} api_message;

typedef struct {
    mm_sampling p;
    char *stops[API_MAX_STOPS];
    int n_stops;
    int stream, include_usage;
    char *system;     // NULL: the default header
    api_message *msgs;
    int n_msgs;       // alternating user/assistant, starting and ending with user
    char model[128];
} api_request;

typedef struct {
    clip_prep prep;         // how the model's images are prepared (S, order, EXIF orientation by default)
    size_t max_image_bytes; // per decoded image file
    int max_images;         // per request
    mm_sampling defaults;   // the demo's
} api_limits;

// Parses a /v1/chat/completions body. On bad input returns an error with *http_status set (400, 413) and a
// message naming the field (e.g. "messages[2].content[1].image_url: only data: URLs are accepted").
mm_status api_parse_chat(const char *body, size_t len, const api_limits *lim, api_request *r, int *http_status,
                         char *param, size_t param_cap, mm_err *e);
void api_request_free(api_request *r);

// {"error": {"message", "type", "param", "code"}} (new string).
char *api_error_json(const char *message, const char *type, const char *param, const char *code);
// A chat.completion object (new string).
char *api_completion_json(const char *id, long created, const char *model, const char *text, const char *finish,
                          long prompt_tokens, long completion_tokens);
// A chat.completion.chunk: role set on the first, content for pieces, finish_reason on the last; usage when
// prompt_tokens >= 0 (the extra final chunk of stream_options.include_usage). A new string.
char *api_chunk_json(const char *id, long created, const char *model, const char *role, const char *content,
                     const char *finish, long prompt_tokens, long completion_tokens);

// Standard base64 (with or without padding, no whitespace); returns the byte count or -1.
long base64_decode(const char *in, size_t len, uint8_t *out);

#endif
