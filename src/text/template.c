// The instruction template: conversation -> text -> ids, labels and media locations, the way
// Multimodal-GPT's datasets (TRAIN) and its Gradio demo (CHAT) build them (SPEC.md 2.3, 2.4, 2.8).
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/template.h"

static const char *HEADER =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.";

const char *template_default_system(void) { return HEADER; }

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->oom)
        return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = (b->n + k + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

typedef struct {
    int32_t *ids, *labels;
    size_t n, cap;
    int oom;
} tbuf;

static void tb_add(tbuf *b, const int32_t *ids, size_t n, size_t n_masked) {
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 16;
        int32_t *a = realloc(b->ids, sizeof(int32_t) * cap), *l = a ? realloc(b->labels, sizeof(int32_t) * cap) : NULL;
        if (a)
            b->ids = a;
        if (!a || !l) {
            b->oom = 1;
            return;
        }
        b->labels = l;
        b->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        b->ids[b->n + i] = ids[i];
        b->labels[b->n + i] = i < n_masked ? MM_IGNORE_INDEX : ids[i];
    }
    b->n += n;
}

// The user part of a turn: [header] [image sections] instruction [input] and the response cue.
static void render_user(sbuf *b, const mm_turn *t, const char *header) {
    if (header)
        sb_add(b, header);
    for (int i = 0; i < t->n_images; i++)
        sb_add(b, "\n\n### Image:\n<image>");
    sb_add(b, "\n\n### Instruction:\n");
    sb_add(b, t->content);
    if (t->input && t->input[0]) {
        sb_add(b, "\n\n### Input:\n");
        sb_add(b, t->input);
    }
    sb_add(b, "\n\n### Response:\n");
}

static mm_status encode(const mm_tokenizer *tok, const char *text, int32_t **ids, size_t *n, mm_err *e) {
    // One pass: a piece covers at least one byte, so 2 * bytes + 2 bounds the ids (BOS, each chunk's dummy
    // prefix); the sizing pass only runs if that ever falls short.
    size_t len = strlen(text), cap = 2 * len + 2;
    *ids = malloc(sizeof(int32_t) * cap);
    if (!*ids)
        return mm_errf(e, MM_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    mm_status s = tok_encode(tok, text, len, 1, *ids, cap, n, e);
    if (s == MM_OK && *n > cap) {
        int32_t *grown = realloc(*ids, sizeof(int32_t) * *n);
        s = grown ? tok_encode(tok, text, len, 1, grown, *n, n, e) : mm_errf(e, MM_ERR_NOMEM, "out of memory");
        if (grown)
            *ids = grown;
    }
    if (s != MM_OK) {
        free(*ids);
        *ids = NULL;
    }
    return s;
}

static mm_status check_turns(const mm_conversation *c, mm_template_style style, mm_err *e) {
    if (c->n_turns == 0)
        return mm_errf(e, MM_ERR_ARG, "the conversation has no turns");
    for (int i = 0; i < c->n_turns; i++)
        if (c->turns[i].role != (i % 2 ? MM_ROLE_ASSISTANT : MM_ROLE_USER))
            return mm_errf(e, MM_ERR_ARG, "turn %d: turns must alternate user, assistant, ... starting with user", i);
    if (style == MM_TEMPLATE_TRAIN && c->n_turns % 2)
        return mm_errf(e, MM_ERR_ARG, "a training conversation must end with an assistant reply");
    return MM_OK;
}

// One (user, assistant) pair as the datasets tokenize it: ids = tok(prompt + answer + "### End.") cut at
// max_len, EOS appended when it is not already last and there is room, and the first
// len(tok(prompt)) labels masked (BOS, header and question, "### Response:\n").
static mm_status train_pair(const mm_tokenizer *tok, const mm_turn *u, const mm_turn *a, const char *header,
                            int max_len, sbuf *text, tbuf *out, int *truncated, mm_err *e) {
    sbuf prompt = {0};
    render_user(&prompt, u, header);
    sbuf full = {0};
    sb_add(&full, prompt.s ? prompt.s : "");
    sb_add(&full, a->content);
    sb_add(&full, MM_TEMPLATE_END);
    sb_add(text, full.s ? full.s : "");
    if (prompt.oom || full.oom) {
        free(prompt.s);
        free(full.s);
        return mm_errf(e, MM_ERR_NOMEM, "out of memory rendering a turn");
    }
    int32_t *pi = NULL, *fi = NULL;
    size_t np = 0, nf = 0;
    mm_status s = encode(tok, prompt.s, &pi, &np, e);
    if (s == MM_OK)
        s = encode(tok, full.s, &fi, &nf, e);
    free(prompt.s);
    free(full.s);
    if (s == MM_OK) {
        if (max_len > 0 && np > (size_t)max_len)
            np = (size_t)max_len;
        if (max_len > 0 && nf > (size_t)max_len) {
            nf = (size_t)max_len;
            (*truncated)++;
        }
        int32_t eos = tok_eos_id(tok);
        tb_add(out, fi, nf, np);
        if (nf && fi[nf - 1] != eos && (max_len <= 0 || nf < (size_t)max_len))
            tb_add(out, &eos, 1, 0);
    }
    free(pi);
    free(fi);
    return s;
}

mm_status template_build(const mm_tokenizer *tok, const mm_conversation *c, mm_template_style style,
                         int max_turn_tokens, mm_templated *out, mm_err *e) {
    memset(out, 0, sizeof *out);
    MM_TRY(check_turns(c, style, e));
    const char *header = c->system ? c->system : HEADER;
    sbuf text = {0};
    tbuf tb = {0};
    mm_status s = MM_OK;
    if (style == MM_TEMPLATE_TRAIN) {
        for (int i = 0; i + 1 < c->n_turns && s == MM_OK; i += 2)
            s = train_pair(tok, &c->turns[i], &c->turns[i + 1], i == 0 ? header : NULL, max_turn_tokens, &text, &tb,
                           &out->n_truncated_turns, e);
    } else {
        // The demo's PromptGenerator: one string, past replies verbatim, no EOS between turns.
        sb_add(&text, header);
        for (int i = 0; i < c->n_turns; i++) {
            const mm_turn *t = &c->turns[i];
            if (t->role == MM_ROLE_USER)
                render_user(&text, t, NULL); // ends with the reply cue
            else
                sb_add(&text, t->content);
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if (text.oom)
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory rendering the conversation");
        if (s == MM_OK)
            s = encode(tok, text.s, &ids, &n, e);
        if (s == MM_OK)
            tb_add(&tb, ids, n, n);
        free(ids);
    }
    if (s == MM_OK && (text.oom || tb.oom))
        s = mm_errf(e, MM_ERR_NOMEM, "out of memory building the template");
    out->text = text.s;
    out->ids = tb.ids;
    out->labels = tb.labels;
    out->n = tb.n;
    if (s == MM_OK) {
        int32_t img = tok_image_id(tok);
        int nm = 0;
        for (size_t i = 0; i < tb.n; i++)
            if (tb.ids[i] == img) {
                nm++;
                tb.labels[i] = MM_IGNORE_INDEX; // <image> never counts (the collate rule)
            }
        out->media_locations = malloc(sizeof(int32_t) * (size_t)(nm ? nm : 1));
        if (!out->media_locations)
            s = mm_errf(e, MM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; out->media_locations && i < tb.n; i++)
            if (tb.ids[i] == img)
                out->media_locations[out->n_media++] = (int32_t)i;
        if (s == MM_OK && out->n_media != conv_image_count(c))
            s = mm_errf(e, MM_ERR_ARG,
                        "the conversation has %d images but its text holds %d <image> tokens (a turn's text "
                        "contains \"<image>\", or a long turn was truncated)",
                        conv_image_count(c), out->n_media);
    }
    if (s != MM_OK)
        template_free(out);
    return s;
}

void template_free(mm_templated *t) {
    free(t->text);
    free(t->ids);
    free(t->labels);
    free(t->media_locations);
    memset(t, 0, sizeof *t);
}
