// `mmgpt serve`: the chat page and an OpenAI-compatible API on libmicrohttpd. Requests queue for a fixed
// number of model slots (each a chat session whose engine caches survive between requests, so a resent
// conversation re-uses its prompt prefix and image latents); a full queue answers 503 with Retry-After; a
// client that disconnects cancels its generation.
#ifndef MM_SERVER_H
#define MM_SERVER_H

#include <stddef.h>

#include "base/err.h"
#include "infer/sampler.h"
#include "model/flamingo.h"
#include "text/tokenizer.h"

typedef struct {
    const char *host;       // "127.0.0.1" by default (loopback)
    int port;               // 0: any free port (printed)
    int parallel;           // model slots
    int queue_limit;        // requests waiting for a slot before 503
    size_t max_body_bytes;  // request body limit
    size_t max_image_bytes; // per image
    const char *api_key;    // NULL or "": no auth
    const char *model_name; // reported in /v1/models and responses
    int max_ctx;            // per slot; 0 = the model's
    mm_sampling defaults;   // the API's defaults (the demo's, with one beam so replies stream)
} mm_serve_opts;

typedef struct mm_server mm_server;

// Creates the slots and starts listening; *port receives the bound port.
mm_status server_start(mm_server **s, const mm_model *m, const mm_tokenizer *tok, const mm_serve_opts *o, int *port,
                       mm_err *e);
// Stops accepting, cancels running generations, waits for them, frees everything.
void server_stop(mm_server *s);

// The page served at / (web/index.html, built into the binary).
extern const char mm_web_index[];

#endif
