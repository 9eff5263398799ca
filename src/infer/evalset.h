// The standard benchmark sets read in the files as their authors distribute them, for `mmgpt eval --task`:
//   vqav2, okvqa  questions JSON {"questions": [{image_id, question, question_id}], "data_subtype"?} and
//                 annotations JSON {"annotations": [{question_id, answers: [{answer, ...}], answer_type?, ...}]},
//                 joined on question_id; image DIR/COCO_<subtype>_<image_id as %012d>.jpg, subtype from the
//                 questions' "data_subtype" (test-dev2015 -> test2015), else the image folder's name when it is
//                 train2014/val2014/test2015, else val2014;
//   textvqa       TextVQA_0.5.1_<split>.json {"data": [{question, question_id, image_id, answers: [10 strings]}]};
//                 image DIR/<image_id>.jpg (or the same VQA-format pair of files as above, as OpenFlamingo ships);
//   vizwiz        <split>.json [{image, question, answers: [{answer, answer_confidence}], answer_type, answerable}];
//                 image DIR/<image>; the key (and the submission's id) is the image name;
//   coco          Karpathy's dataset_coco.json {"images": [{filepath, filename, cocoid, split, sentences: [{raw}]}]}
//                 (the images of one split, default "test", as OpenFlamingo evaluates), references from the
//                 annotations file when one is given (captions_val2014.json {"images", "annotations": [{image_id,
//                 caption}]}), else the Karpathy sentences; or only the COCO annotations file (all its images);
//                 image DIR/<filename>, else DIR/<filepath>/<filename>;
//   flickr30k     Karpathy's dataset_flickr30k.json, same layout; the image id is the file name without extension.
// Answers are optional (test splits): then items have n_answers 0 and only predictions can be written.
// Errors name the file and the JSON path ("v2_questions.json: questions[12]: \"question\" is not a string").
#ifndef MM_EVALSET_H
#define MM_EVALSET_H

#include "base/err.h"

typedef enum { EVAL_VQAV2, EVAL_OKVQA, EVAL_TEXTVQA, EVAL_VIZWIZ, EVAL_COCO, EVAL_FLICKR30K } eval_task;

// "vqav2", ...; eval_task_parse returns 0 on success.
const char *eval_task_name(eval_task t);
int eval_task_parse(const char *name, eval_task *t);
int eval_task_is_vqa(eval_task t);

typedef struct {
    char *key;          // unique id as text: question_id, VizWiz image name, COCO image id, Flickr file stem
    int key_is_string;  // the submission writes the id as a JSON string (else as an integer)
    char *image;        // path of the image file
    char *question;     // VQA only
    char **answers;     // VQA: the human answers; captions: the reference captions
    int n_answers;
    char *answer_type;  // VQA answer type, or NULL
} evalset_item;

typedef struct {
    eval_task task;
    evalset_item *items;
    int n, cap;
} evalset;

typedef struct {
    const char *questions, *annotations; // VQA format (vqav2/okvqa; also textvqa/vizwiz converted to it)
    const char *data;                    // TextVQA / VizWiz / Karpathy single file
    const char *images;                  // image folder
    const char *split;                   // Karpathy split (NULL: "test")
} evalset_paths;

mm_status evalset_load(evalset *s, eval_task task, const evalset_paths *p, mm_err *e);
void evalset_free(evalset *s);

#endif
