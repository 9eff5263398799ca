// Instruction data: the dataset builders of Multimodal-GPT (SPEC.md 2.5) and our conversation JSONL, read
// from a data config, and turned record by record into conversations for the unified template.
//
// Data config (JSON; relative paths resolve against the config file's directory):
//   {"seed": 42, "max_turn_tokens": 512, "max_len": 0, "max_text_bytes": 1048576, "keep_whitespace": false,
//    "sources": [{"type": "llava", "path": "llava/detail_23k.json", "image_root": "coco/train2017",
//                 "weight": 1.0 | "count": N, "sample": N, "max_records": N, "split": "train" | "eval",
//                 "faithful_turn_bug": false, "choices": false, "option_prob": 0.5}]}
// type: dolly, alpaca_gpt4 (alias alpaca), baize (language); llava, llava_dial (alias coco_dial), minigpt4
// (alias cc_sbu_align), aokvqa, coco_caption, ocr_vqa, vqa (alias okvqa), text_ocr, gqa, clevr (vision);
// conversation (ours: JSONL, one conversation object per line, see text/conversation.h; vision when its
// records have images, else language).
// "sample" subsamples N records once at load (upstream's sample=N), "max_records" reads only the first N,
// "weight" scales a source's draws per epoch relative to its size (1 = upstream: proportional to size) and
// "count" fixes them. "faithful_turn_bug" pairs llava_dial turns k and k+1 as upstream's DialDataset does
// (default: the fixed 2k, 2k+1, SPEC.md 6.6); "choices" gives A-OKVQA upstream's intended multiple-choice
// variant (upstream always used prompt_qa); "option_prob" is the multiple-choice probability of vqa/text_ocr.
#ifndef MM_DATA_H
#define MM_DATA_H

#include <stdint.h>

#include "base/err.h"
#include "base/rng.h"
#include "text/conversation.h"

typedef enum {
    MM_SRC_DOLLY, MM_SRC_ALPACA, MM_SRC_BAIZE, MM_SRC_LLAVA, MM_SRC_LLAVA_DIAL, MM_SRC_MINIGPT4, MM_SRC_AOKVQA,
    MM_SRC_COCO_CAPTION, MM_SRC_OCR_VQA, MM_SRC_VQA, MM_SRC_TEXT_OCR, MM_SRC_GQA, MM_SRC_CLEVR, MM_SRC_CONVERSATION,
    MM_SRC_N
} mm_source_type;

// Why a record was not used; counted per source, never silent.
typedef enum {
    MM_SKIP_MALFORMED,        // a JSONL line that is not a JSON object
    MM_SKIP_MISSING_FIELD,    // a field the format needs is absent
    MM_SKIP_WRONG_TYPE,       // a field has the wrong JSON type
    MM_SKIP_EMPTY_RESPONSE,   // nothing to learn: the answer is empty
    MM_SKIP_BAD_UTF8,         // a string is not valid UTF-8
    MM_SKIP_TEXT_TOO_LONG,    // a string over max_text_bytes
    MM_SKIP_IMAGE_MISSING,    // the image file does not exist
    MM_SKIP_IMAGE_UNREADABLE, // it exists but cannot be read or is not a JPEG/PNG
    MM_SKIP_IMAGE_BROKEN,     // it failed to decode when the sample was prepared
    MM_SKIP_TRUNCATED,        // truncation left no answer token to learn from
    MM_SKIP_MARKERS,          // the text itself holds "<image>", so markers and images disagree
    MM_SKIP_N
} mm_skip_reason;

const char *data_skip_name(mm_skip_reason r);
const char *data_source_type_name(mm_source_type t);

// One record as read: image paths (already joined with the image root) and the format's strings.
typedef struct {
    char **images;
    int n_images;
    char **f; // type-specific fields (see data_source.c); for MM_SRC_CONVERSATION, conv is used instead
    int nf;
    mm_conversation *conv;
} mm_data_record;

typedef struct {
    mm_source_type type;
    char path[1024], image_root[1024];
    double weight;
    long count, sample, max_records;
    int eval, faithful_turn_bug, choices, vision;
    double option_prob;
    mm_data_record *rec;
    long n, n_read;           // records kept, records read
    long skipped[MM_SKIP_N];  // at load (and, for the preparation-time reasons, as counted by data_stats)
} mm_data_source;

typedef struct {
    mm_data_source *src;
    int n_src;
    uint64_t seed;
    int max_turn_tokens, max_len, keep_whitespace;
    long max_text_bytes;
    char where[1024];
} mm_data;

// Reads the config and every source; broken records are counted by reason, not fatal. Errors: an unreadable
// or malformed config, an unknown type or key, a source file that cannot be read or is not the format's JSON.
mm_status data_load(mm_data *d, const char *config_path, mm_err *e);
mm_status data_parse(mm_data *d, const char *json, const char *base_dir, const char *where, mm_err *e);
void data_free(mm_data *d);
// Reads one source's file into s (s's settings filled in); used by data_load.
mm_status data_source_read(mm_data_source *s, long max_text_bytes, uint64_t seed, mm_err *e);

// The conversation of one record, with upstream's random choices (question wording, caption, option
// display) drawn from rng. Paths of images are the record's.
mm_status data_record_conversation(const mm_data_source *s, const mm_data_record *r, mm_rng *rng,
                                   mm_conversation *out, mm_err *e);

// A question as upstream's llava builders clean it: every "<image>" and every newline removed (new string).
char *data_clean_question(const char *s);

// The 53 caption requests of minigpt4 / coco_caption and the 7 reason prompts of A-OKVQA (upstream's lists).
extern const char *const mm_caption_questions[];
extern const int mm_n_caption_questions;
extern const char *const mm_reason_questions[];
extern const int mm_n_reason_questions;

#endif
