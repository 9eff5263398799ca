// Multimodal-GPT's unified instruction template (SPEC.md 2.3, 2.4, 2.8): a conversation becomes token
// ids, the positions of its `<image>` tokens (media locations) and labels with the prompt masked.
//
// Two renderings:
//  - TRAIN (the datasets'): each (user, assistant) pair is tokenized on its own, with its own BOS; the
//    first pair starts with the header, every pair is
//      [H] ["\n\n### Image:\n<image>" per image] "\n\n### Instruction:\n{q}" ["\n\n### Input:\n{in}"]
//      "\n\n### Response:\n" {answer} "### End." EOS
//    ("### End." right after the answer, no newline: upstream's VQADataset/DollyDataset.tokenize append it;
//    SPEC.md 2.4 missed it),
//    and the labels are -100 over BOS and the prompt; the answer, "### End." and EOS count. The pairs are concatenated.
//  - CHAT (the demo's PromptGenerator): the whole history as one string with one BOS, past replies
//    verbatim, no EOS between turns, ending in "\n\n### Response:\n" when the last turn is the user's.
// A single turn with one image renders identically in both (upstream's prompt_qa).
#ifndef MM_TEMPLATE_H
#define MM_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "text/conversation.h"
#include "text/tokenizer.h"

#define MM_IGNORE_INDEX (-100)
// What the training data appends to every answer (so trained models end replies with it).
#define MM_TEMPLATE_END "### End."

typedef enum { MM_TEMPLATE_TRAIN = 0, MM_TEMPLATE_CHAT = 1 } mm_template_style;

typedef struct {
    char *text;               // the templated text (all pairs concatenated, without BOS/EOS markers)
    int32_t *ids;             // (n)
    int32_t *labels;          // (n): ids where the loss counts, MM_IGNORE_INDEX elsewhere
    size_t n;
    int32_t *media_locations; // (n_media): positions of the `<image>` tokens in ids, ascending
    int n_media;
    int n_truncated_turns;    // TRAIN: pairs cut at max_turn_tokens
} mm_templated;

// Multimodal-GPT's header H ("Below is an instruction that describes a task. ...").
const char *template_default_system(void);

// Renders conversation c. max_turn_tokens (TRAIN only; 0 = no limit; upstream uses 512) truncates each
// pair as upstream's tokenizer(truncation=True, max_length) does. Fails on a conversation that does
// not alternate user/assistant, or (TRAIN) that does not end with an assistant reply.
mm_status template_build(const mm_tokenizer *tok, const mm_conversation *c, mm_template_style style,
                         int max_turn_tokens, mm_templated *out, mm_err *e);
void template_free(mm_templated *t);

#endif
