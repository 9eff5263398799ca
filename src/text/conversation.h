// A conversation: an optional system prompt and turns of user text (with zero or more images) and
// assistant replies. It is the one in-memory form shared by the template (training and chat
// renderings), the data builders, `mmgpt chat` (/save) and the HTTP API.
//
// JSON form (a file for `mmgpt template`, one object per line in our JSONL dataset format):
//   {"system": "optional header; default is Multimodal-GPT's H (SPEC.md 2.3)",
//    "messages": [
//      {"role": "user", "content": "What is in the image?", "images": ["img/0001.png"]},
//      {"role": "assistant", "content": "A red circle."},
//      {"role": "user", "content": "Which option?", "input": "red, blue, green"},
//      {"role": "assistant", "content": "red"}]}
// "images" (user turns only) are paths, resolved by the caller against an image root; "input" (user turns
// only) is rendered as the template's "### Input:" section. Unknown keys are errors.
#ifndef MM_CONVERSATION_H
#define MM_CONVERSATION_H

#include <stddef.h>

#include "base/err.h"

typedef enum { MM_ROLE_USER = 0, MM_ROLE_ASSISTANT = 1 } mm_role;

typedef struct {
    mm_role role;
    char *content;  // UTF-8 text, never NULL
    char *input;    // user turns: "### Input:" text, or NULL
    char **images;  // user turns: image paths in order
    int n_images;
} mm_turn;

typedef struct {
    char *system;   // NULL means the default header (template_default_system())
    mm_turn *turns;
    int n_turns, cap_turns;
} mm_conversation;

// Initialises an empty conversation (no allocation).
void conv_init(mm_conversation *c);
void conv_free(mm_conversation *c);
// Appends a turn, copying the strings; images may be NULL when n_images is 0.
mm_status conv_add(mm_conversation *c, mm_role role, const char *content, const char *input, const char *const *images,
                   int n_images, mm_err *e);
// Drops the turns from index first on (used to retry the last reply).
void conv_truncate(mm_conversation *c, int n_turns);
// Total images over all user turns.
int conv_image_count(const mm_conversation *c);

// Parses the JSON form; where names the source in errors ("data.jsonl:12"). Roles must alternate
// starting with user; a final user turn (awaiting a reply) is allowed.
mm_status conv_parse_json(mm_conversation *c, const char *json, size_t len, const char *where, mm_err *e);
// Reads a JSON file holding one conversation.
mm_status conv_load_file(mm_conversation *c, const char *path, mm_err *e);
// Serialises to the JSON form (a new NUL-terminated string, free with free()).
mm_status conv_to_json(const mm_conversation *c, char **json, mm_err *e);

#endif
